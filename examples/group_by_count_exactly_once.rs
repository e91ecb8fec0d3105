//! The consume-transform-produce loop, exactly once: consume topics `A` and `B`, count records
//! by key, and in one transaction per cycle write the updated counts to `group-by-counts` and the
//! input positions to the group's committed offsets.
//!
//! Either both the counts and the positions of a cycle become visible, or neither does — also if
//! the process is killed at any point. At start the counts are restored from the `read_committed`
//! view of `group-by-counts` (the latest count per key) and consumption resumes from the
//! committed positions, so no input is counted twice or missed. (Compare `group_by_count`, which
//! is at-least-once.) A thread in the same process produces the input while the loop runs, up to
//! RECORDS_PER_TOPIC records per input topic in all runs together.
//!
//! `cargo run --release --example group_by_count_exactly_once [DIR] [RECORDS_PER_TOPIC] [WORK_MS]`
//!
//! WORK_MS (default 0) is a pause in each cycle between writing the counts and committing,
//! standing in for real processing time; the crash test uses it so that kills often land inside
//! a transaction.
//!
//! `tests/exactly_once_sigkill.rs` kills this program at random points many times and checks the
//! counts it leaves behind.

use std::collections::HashMap;
use std::time::Duration;

use riverbed::{
    ConsumerConfig, IsolationLevel, OffsetAndMetadata, OffsetReset, ProducerRecord, Store,
    TopicConfig, TopicPartition,
};

const INPUTS: [&str; 2] = ["A", "B"];
const OUTPUT: &str = "group-by-counts";
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
    let per_topic: u64 = args.next().map_or(Ok(50_000), |n| n.parse())?;
    let work = Duration::from_millis(args.next().map_or(Ok(0), |n| n.parse())?);
    let store = Store::open(&dir)?;
    for topic in INPUTS.iter().chain([&OUTPUT]) {
        if !store.list_topics().iter().any(|t| t == topic) {
            store.create_topic(topic, TopicConfig::new(PARTITIONS))?;
        }
    }

    let input = std::thread::spawn({
        let store = store.clone();
        move || produce_inputs(&store, per_topic)
    });

    // Registering the transactional id fences an earlier incarnation and aborts whatever it
    // left open (opening the store already ended a crashed one's transactions).
    let producer = store.transactional_producer("group-by-count")?;
    let mut counts = restore_counts(&store)?;
    let mut consumer = store.consumer(
        ConsumerConfig::new("group-by-count")
            .auto_offset_reset(OffsetReset::Earliest)
            .enable_auto_commit(false)
            .isolation_level(IsolationLevel::ReadCommitted)
            .max_poll_records(2000),
    )?;
    consumer.subscribe(&INPUTS)?;
    let mut processed = 0u64;
    let mut idle = 0;
    while idle < 5 || !input.is_finished() {
        let records = consumer.poll(Duration::from_millis(50))?;
        if records.is_empty() {
            idle += 1;
            continue;
        }
        idle = 0;
        producer.begin()?;
        let mut changed: HashMap<Vec<u8>, u64> = HashMap::new();
        let mut positions: HashMap<TopicPartition, u64> = HashMap::new();
        for r in records.iter() {
            positions.insert(
                TopicPartition::new(r.topic(), r.partition()),
                r.offset() + 1,
            );
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
        std::thread::sleep(work);
        let offsets: Vec<(TopicPartition, OffsetAndMetadata)> = positions
            .into_iter()
            .map(|(tp, next)| (tp, OffsetAndMetadata::new(next)))
            .collect();
        let group = consumer
            .group_metadata()
            .ok_or("the consumer has a group id")?;
        producer.send_offsets(&group, &offsets)?;
        producer.commit()?;
    }
    input.join().map_err(|_| "the input thread panicked")??;
    println!("processed {processed} records this run; counts by key:");
    let mut sorted: Vec<_> = counts.into_iter().collect();
    sorted.sort();
    for (k, c) in sorted {
        println!("  {:<8} {c}", String::from_utf8_lossy(&k));
    }
    consumer.close()?;
    Ok(())
}

/// Produces the input records that earlier runs did not, in small batches so that production
/// overlaps the counting loop. Record `i` of a topic has key `KEYS[i % 7]`.
fn produce_inputs(store: &Store, per_topic: u64) -> riverbed::Result<()> {
    let producer = store.producer();
    let mut sent: Vec<u64> = Vec::new();
    for topic in INPUTS {
        let mut n = 0;
        for p in 0..PARTITIONS {
            n += store.describe_topic(topic)?.partitions[p as usize].log_end_offset;
        }
        sent.push(n);
    }
    while sent.iter().any(|n| *n < per_topic) {
        for (t, topic) in INPUTS.iter().enumerate() {
            let from = sent[t];
            let to = (from + 200).min(per_topic);
            producer.send_batch((from..to).map(|i| {
                ProducerRecord::new(*topic)
                    .key(KEYS[(i % KEYS.len() as u64) as usize])
                    .value(format!("{topic}-{i}"))
            }))?;
            sent[t] = to;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// The table of counts: the latest committed value per key in the output topic.
fn restore_counts(store: &Store) -> riverbed::Result<HashMap<Vec<u8>, u64>> {
    let mut table = HashMap::new();
    let mut reader = store.consumer(
        ConsumerConfig::default()
            .auto_offset_reset(OffsetReset::Earliest)
            .isolation_level(IsolationLevel::ReadCommitted)
            .max_poll_records(10_000),
    )?;
    let parts: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(OUTPUT, p))
        .collect();
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
