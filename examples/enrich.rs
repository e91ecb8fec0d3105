//! A stream of orders joined with a table of customers. Orders are keyed by order id and carry
//! `customer,amount`; the application re-keys them by customer (through a repartition topic,
//! created when it starts), joins each with the customer's current name (a left join: an
//! unknown customer gives `?`), and writes `enriched-orders`. A customer deleted by a tombstone
//! is unknown from then on; a renamed one is joined with the new name.
//!
//! `cargo run --release --example enrich`

use std::time::{Duration, Instant};

use riverbed::streams::{App, Builder, Materialized, StreamsConfig};
use riverbed::{
    ConsumerConfig, IsolationLevel, OffsetReset, ProducerRecord, Store, TopicConfig, TopicPartition,
};

const PARTITIONS: u32 = 2;

/// Customer changes (`None`: delete), then orders `(order id, "customer,amount")`.
type Round = (
    &'static [(&'static str, Option<&'static str>)],
    &'static [(&'static str, &'static str)],
);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    for t in ["customers", "orders", "enriched-orders"] {
        store.create_topic(t, TopicConfig::new(PARTITIONS))?;
    }

    let b = Builder::new("enrich-app");
    let customers = b.table::<String, String>("customers", Materialized::named("customers"));
    b.stream::<String, String>("orders")
        .select_key(|_order_id, order| order.split(',').next().unwrap_or("").to_string())
        .left_join(&customers, |order, name| {
            let amount = order.split(',').nth(1).unwrap_or("0");
            format!("{} ordered {amount}", name.map_or("?", String::as_str))
        })
        .to("enriched-orders");
    let topology = b.build()?;
    println!("{}", topology.describe());
    let app = App::start(&store, topology, StreamsConfig::new().exactly_once())?;

    let producer = store.producer();
    let customers_store = app.store::<String, String>("customers")?;
    let mut consumer = store.consumer(
        ConsumerConfig::default()
            .auto_offset_reset(OffsetReset::Earliest)
            .isolation_level(IsolationLevel::ReadCommitted),
    )?;
    let tps: Vec<_> = (0..PARTITIONS)
        .map(|p| TopicPartition::new("enriched-orders", p))
        .collect();
    consumer.assign(&tps)?;
    let rounds: [Round; 2] = [
        (
            &[("c1", Some("Ada")), ("c2", Some("Grace"))],
            &[("o1", "c1,30"), ("o2", "c2,12"), ("o3", "c3,7")],
        ),
        // Ada renamed, Grace deleted (a tombstone).
        (
            &[("c1", Some("Ada L.")), ("c2", None)],
            &[("o4", "c1,5"), ("o5", "c2,40")],
        ),
    ];
    for (n, (customers, orders)) in rounds.into_iter().enumerate() {
        println!("round {n}: customers {customers:?}");
        for (id, name) in customers {
            let r = ProducerRecord::new("customers").key(*id);
            producer.send(match name {
                Some(n) => r.value(*n),
                None => r,
            })?;
        }
        // An order is joined with the table as its task sees it when the order is processed:
        // wait until the customer changes are in (committed) before sending the orders, and
        // until the orders are joined before changing the customers again.
        wait_until(|| {
            Ok(customers
                .iter()
                .all(|(id, name)| customers_store.get(*id).ok().flatten().as_deref() == *name))
        })?;
        for (order_id, order) in orders {
            producer.send(ProducerRecord::new("orders").key(*order_id).value(*order))?;
        }
        let mut seen = 0;
        wait_until(|| {
            for r in consumer.poll(Duration::from_millis(20))?.iter() {
                let key = String::from_utf8_lossy(r.key().unwrap_or_default());
                let value = String::from_utf8_lossy(r.value().unwrap_or_default());
                println!("  {key}: {value}");
                seen += 1;
            }
            Ok(seen == orders.len())
        })?;
    }
    app.close()?;
    Ok(())
}

/// Calls `done` until it returns true; an error after 30 s.
fn wait_until(
    mut done: impl FnMut() -> Result<bool, Box<dyn std::error::Error>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done()? {
        if Instant::now() > deadline {
            return Err("the application did not catch up".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}
