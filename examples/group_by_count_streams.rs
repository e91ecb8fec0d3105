//! `group_by_count_exactly_once` in a few lines of the streams DSL: count the records of topics
//! `A` and `B` by key, exactly once, writing each updated count to `group-by-counts` keyed
//! `<topic>:<key>` (the counts are 8-byte big-endian integers here, Kafka's `LongSerde`).
//!
//! `cargo run --release --example group_by_count_streams [DIR] [RECORDS_PER_TOPIC] [WORK_US] [eos|alos]`
//!
//! A thread produces the inputs (RECORDS_PER_TOPIC per topic over all runs, default 20 000)
//! while the application counts them; the program prints the counts and its streams metrics
//! once every input is produced and the application's committed offsets cover them all.
//! WORK_US (default 0) is a pause per record in the topology, standing in for real work, so
//! that a kill often lands inside a commit cycle. The last argument picks the processing
//! guarantee: `eos` (exactly-once, the default) or `alos` (at-least-once). Both commit every
//! 100 ms.
//!
//! Killed and restarted, it goes on where the last commit left it: state is restored from the
//! checkpoint snapshot its last clean close wrote plus the changelog after it, inputs resume at
//! committed offsets. `tests/streams/exactly_once_sigkill.rs` kills it at random points many
//! times and checks the counts it leaves behind.

use std::time::Duration;

use riverbed::streams::{App, Builder, Materialized, StreamsConfig};
use riverbed::{ProducerRecord, Store, TopicConfig};

const APP_ID: &str = "group-by-count-streams";
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
    let work = Duration::from_micros(args.next().map_or(Ok(0), |n| n.parse())?);
    let config = match args.next().as_deref() {
        None | Some("eos") => StreamsConfig::new().exactly_once(),
        Some("alos") => StreamsConfig::new().at_least_once(),
        Some(other) => return Err(format!("expected eos or alos, got {other:?}").into()),
    };
    let store = Store::open(&dir)?;
    for topic in ["A", "B", "group-by-counts"] {
        if !store.list_topics().iter().any(|t| t == topic) {
            store.create_topic(topic, TopicConfig::new(PARTITIONS))?;
        }
    }

    // The whole job: both topics, grouped by key, counted, the changes written out.
    let b = Builder::new(APP_ID);
    for topic in ["A", "B"] {
        let counts = b
            .stream::<String, String>(topic)
            .peek(move |_, _| std::thread::sleep(work))
            .group_by_key()
            .count(Materialized::named(format!("counts-{topic}")));
        counts
            .to_stream()
            .map(move |k, c| (format!("{topic}:{k}"), c))
            .to("group-by-counts");
    }
    let app = App::start(
        &store,
        b.build()?,
        config
            .threads(2)
            .commit_interval(Duration::from_millis(100)),
    )?;

    let input = std::thread::spawn({
        let store = store.clone();
        move || produce_inputs(&store, per_topic)
    });
    // Wait until every input is produced and the committed offsets cover it.
    let consumed = || -> riverbed::Result<bool> {
        let committed = store.committed_offsets(APP_ID);
        for topic in ["A", "B"] {
            for p in store.describe_topic(topic)?.partitions {
                let at = committed
                    .iter()
                    .find(|(tp, _)| tp.topic == topic && tp.partition == p.partition)
                    .map_or(0, |(_, o)| o.offset);
                if at < p.log_end_offset {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    };
    while !input.is_finished() || !consumed()? {
        if let Some(e) = app.error() {
            return Err(e.into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    input.join().map_err(|_| "the input thread panicked")??;
    for topic in ["A", "B"] {
        println!("counts of topic {topic}:");
        for (k, c) in app
            .store::<String, i64>(&format!("counts-{topic}"))?
            .all()?
        {
            println!("  {k:<8} {c}");
        }
    }
    println!("{:#?}", app.metrics());
    app.close()?;
    Ok(())
}

/// Produces the input records that earlier runs did not, in small batches so that production
/// overlaps the counting. Record `i` of a topic has key `KEYS[i % 7]`.
fn produce_inputs(store: &Store, per_topic: u64) -> riverbed::Result<()> {
    let producer = store.producer();
    let mut sent = Vec::new();
    for topic in ["A", "B"] {
        let d = store.describe_topic(topic)?;
        sent.push(d.partitions.iter().map(|p| p.log_end_offset).sum::<u64>());
    }
    while sent.iter().any(|n| *n < per_topic) {
        for (t, topic) in ["A", "B"].iter().enumerate() {
            let to = (sent[t] + 200).min(per_topic);
            producer.send_batch((sent[t]..to).map(|i| {
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
