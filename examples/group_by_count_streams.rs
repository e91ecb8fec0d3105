//! `group_by_count_exactly_once` in a few lines of the streams DSL: count the records of topics
//! `A` and `B` by key, exactly once, writing each updated count to `group-by-counts` (the
//! counts are 8-byte big-endian integers here, Kafka's `LongSerde`).
//!
//! `cargo run --release --example group_by_count_streams [DIR] [RECORDS_PER_TOPIC]`
//!
//! Runs until the inputs are produced (RECORDS_PER_TOPIC per topic over all runs, default
//! 20 000) and counted, then prints the counts. Killed and restarted, it goes on where the last
//! commit left it: state is restored from the changelog, inputs resume at committed offsets.

use std::time::Duration;

use riverbed::streams::{App, Builder, Materialized, StreamsConfig};
use riverbed::{Record, Store, TopicConfig};

const PARTITIONS: u32 = 4;
const KEYS: [&str; 7] = [
    "apple", "banana", "cherry", "damson", "elder", "fig", "grape",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let temp;
    let dir = match args.next() {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let per_topic: u64 = args.next().map_or(Ok(20_000), |n| n.parse())?;
    let store = Store::open(&dir)?;
    for topic in ["A", "B", "group-by-counts"] {
        if !store.list_topics().iter().any(|t| t == topic) {
            store.create_topic(topic, TopicConfig::new(PARTITIONS))?;
        }
    }

    // The whole job: both topics, grouped by key, counted, the changes written out.
    let b = Builder::new("group-by-count-streams");
    for topic in ["A", "B"] {
        let counts = b
            .stream::<String, String>(topic)
            .group_by_key()
            .count(Materialized::named(format!("counts-{topic}")));
        counts.to_stream().to("group-by-counts");
    }
    let app = App::start(
        &store,
        b.build()?,
        StreamsConfig::new().threads(2).exactly_once(),
    )?;

    let producer = store.producer();
    for topic in ["A", "B"] {
        let mut sent: u64 = store
            .describe_topic(topic)?
            .partitions
            .iter()
            .map(|p| p.log_end_offset)
            .sum();
        while sent < per_topic {
            let to = (sent + 500).min(per_topic);
            producer.send_batch((sent..to).map(|i| {
                Record::new(topic)
                    .key(KEYS[(i % KEYS.len() as u64) as usize])
                    .value(format!("{topic}-{i}"))
            }))?;
            sent = to;
        }
    }
    // Wait until every input is counted (the stores are the committed counts).
    let stores = [
        app.store::<String, i64>("counts-A")?,
        app.store::<String, i64>("counts-B")?,
    ];
    let total =
        |s: &riverbed::streams::ReadOnlyKeyValueStore<String, i64>| -> riverbed::Result<i64> {
            Ok(s.all()?.iter().map(|(_, c)| c).sum())
        };
    while stores.iter().map(total).sum::<riverbed::Result<i64>>()? < 2 * per_topic as i64 {
        if let Some(e) = app.error() {
            return Err(e.into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for (topic, s) in ["A", "B"].iter().zip(&stores) {
        println!("counts of topic {topic}:");
        for (k, c) in s.all()? {
            println!("  {k:<8} {c}");
        }
    }
    app.close()?;
    Ok(())
}
