//! The stream-table duality: a stream of payments aggregated by account is a table of
//! balances, and the changes of that table are a stream again. Prints the table after each
//! payment (queried from the running application) and the change stream at the end.
//!
//! `cargo run --release --example balances`

use std::time::{Duration, Instant};

use riverbed::streams::{App, Builder, Materialized, Serde, StreamsConfig};
use riverbed::{ConsumerConfig, OffsetReset, ProducerRecord, Store, TopicConfig, TopicPartition};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    store.create_topic("payments", TopicConfig::new(1))?;
    store.create_topic("balances", TopicConfig::new(1))?;

    let b = Builder::new("balances-app");
    b.stream::<String, i64>("payments")
        .group_by_key()
        .aggregate(
            || 0,
            |_account, amount, balance| balance + amount,
            Materialized::named("balances"),
        )
        .to_stream()
        .to("balances");
    let app = App::start(&store, b.build()?, StreamsConfig::new().exactly_once())?;
    let balances = app.store::<String, i64>("balances")?;

    let producer = store.producer();
    let payments = [("alice", 50i64), ("bob", 18), ("alice", 25), ("alice", -60)];
    for (n, (who, amount)) in payments.iter().enumerate() {
        producer.send(
            ProducerRecord::new("payments")
                .key(*who)
                .value(amount.encode()?),
        )?;
        // Wait until the application committed this payment (a commit every 100 ms).
        let deadline = Instant::now() + Duration::from_secs(30);
        while balances.get(*who)? != Some(expected(&payments[..=n], who)) {
            if Instant::now() > deadline {
                return Err("the application did not catch up".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let table: Vec<String> = balances
            .all()?
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!(
            "payment {who} {amount:+} -> balances {{{}}}",
            table.join(", ")
        );
    }
    app.close()?;

    let mut changes =
        store.consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))?;
    changes.assign(&[TopicPartition::new("balances", 0)])?;
    print!("the table's changes, a stream:");
    for r in changes.poll(Duration::from_millis(100))?.iter() {
        let (k, v) = (
            String::decode(r.key().unwrap_or_default())?,
            i64::decode(r.value().unwrap_or_default())?,
        );
        print!(" {k}={v}");
    }
    println!();
    Ok(())
}

/// The balance of `who` after `payments`.
fn expected(payments: &[(&str, i64)], who: &str) -> i64 {
    payments
        .iter()
        .filter(|(w, _)| *w == who)
        .map(|(_, a)| a)
        .sum()
}
