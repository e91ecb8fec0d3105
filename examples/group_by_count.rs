//! The classic consume-transform-produce loop: consume topics `A` and `B`, count records by key,
//! produce each updated count to `group-by-counts`, then commit the input positions.
//!
//! Counts are stored as decimal text. At startup the counts are restored from `group-by-counts` (the latest count per key), so a
//! restarted run continues where the last commit left off. Without transactions this is
//! at-least-once: a crash between producing counts and committing may count a record twice.
//!
//! `cargo run --release --example group_by_count [DIR] [RECORDS_PER_TOPIC]`

use std::collections::HashMap;
use std::time::Duration;

use riverbed::{ConsumerConfig, OffsetReset, ProducerRecord, Store, TopicConfig, TopicPartition};

const OUTPUT: &str = "group-by-counts";

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
    let per_topic: u64 = args.next().map_or(Ok(50_000), |n| n.parse())?;
    let store = Store::open(&dir)?;
    for (topic, partitions) in [("A", 4), ("B", 4), (OUTPUT, 4)] {
        if !store.list_topics().iter().any(|t| t == topic) {
            store.create_topic(topic, TopicConfig::new(partitions))?;
        }
    }

    // Some input: keys from a small set, so the counts are interesting.
    let producer = store.producer();
    let keys = [
        "apple", "banana", "cherry", "damson", "elder", "fig", "grape",
    ];
    for topic in ["A", "B"] {
        let records = (0..per_topic).map(|i| {
            let key = keys[(i * 7 + topic.len() as u64 * i / 3) as usize % keys.len()];
            ProducerRecord::new(topic)
                .key(key)
                .value(format!("{topic}-{i}"))
        });
        producer.send_batch(records)?;
    }

    let mut counts = restore_counts(&store)?;
    let mut consumer = store.consumer(
        ConsumerConfig::new("group-by-count")
            .auto_offset_reset(OffsetReset::Earliest)
            .enable_auto_commit(false)
            .max_poll_records(2000),
    )?;
    consumer.subscribe(&["A", "B"])?;
    let mut processed = 0u64;
    let mut idle = 0;
    while idle < 3 {
        let records = consumer.poll(Duration::from_millis(100))?;
        if records.is_empty() {
            idle += 1;
            continue;
        }
        idle = 0;
        let mut changed: HashMap<Vec<u8>, u64> = HashMap::new();
        for r in records.iter() {
            let Some(key) = r.key() else { continue };
            let c = counts.entry(key.to_vec()).or_insert(0);
            *c += 1;
            changed.insert(key.to_vec(), *c);
            processed += 1;
        }
        producer.send_batch(
            changed
                .into_iter()
                .map(|(k, c)| ProducerRecord::new(OUTPUT).key(k).value(c.to_string())),
        )?;
        producer.flush()?; // the outputs are durable before the inputs are marked done
        consumer.commit()?;
    }
    println!("processed {processed} records this run; counts by key:");
    let mut sorted: Vec<_> = counts.into_iter().collect();
    sorted.sort();
    for (k, c) in sorted {
        println!("  {:<8} {c}", String::from_utf8_lossy(&k));
    }
    for tp in ["A", "B"]
        .iter()
        .flat_map(|t| (0..4).map(move |p| TopicPartition::new(*t, p)))
    {
        assert_eq!(consumer.lag(&tp)?, 0, "{tp} not fully consumed");
    }
    consumer.close()?;
    Ok(())
}

/// The table of counts: the latest value per key in the output topic.
fn restore_counts(store: &Store) -> riverbed::Result<HashMap<Vec<u8>, u64>> {
    let mut table = HashMap::new();
    let mut reader = store.consumer(
        riverbed::ConsumerConfig::default()
            .auto_offset_reset(OffsetReset::Earliest)
            .max_poll_records(10_000),
    )?;
    let parts: Vec<TopicPartition> = (0..4).map(|p| TopicPartition::new(OUTPUT, p)).collect();
    reader.assign(&parts)?;
    let ends = reader.end_offsets(&parts)?;
    loop {
        let mut done = true;
        for (tp, end) in &ends {
            if reader.position(tp)? < *end {
                done = false;
            }
        }
        if done {
            return Ok(table);
        }
        for r in reader.poll(Duration::from_millis(100))?.iter() {
            let (Some(k), Some(v)) = (r.key(), r.value()) else {
                continue;
            };
            if let Some(count) = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()) {
                table.insert(k.to_vec(), count);
            }
        }
    }
}
