//! Streams: throughput of `App` pipelines against a hand-written consumer loop over the same
//! records in the same run, and the restore of a large store from a checkpoint snapshot against
//! a replay of its whole changelog.
//!
//! `cargo bench --bench streams`
//! - `stateless/map_filter`: `RIVERBED_BENCH_STREAMS_RECORDS` (default 200 000) records of 100
//!   bytes (8-byte keys) through `filter` + `map_values` + `to`, at-least-once, one thread. One
//!   iteration is a fresh application (new application id, so it reads from the start): from
//!   `App::start` until every record is processed and the app has closed (its final commit).
//! - `count_by_key/{streams_alos,streams_eos,hand_written}`: the same number of records over
//!   10 000 distinct keys, counted by key with each update written to an output topic.
//!   `streams_*` is `group_by_key().count()` (one output record per input record, the changelog
//!   written at commit; exactly-once commits every 100 ms, at-least-once at close);
//!   `hand_written` is the loop of `examples/group_by_count.rs` (a `HashMap`, one output record
//!   per changed key per poll, offsets committed per poll), the baseline. Timed from start to
//!   the final commit.
//! - `restore/{checkpoint,changelog}`: a task restoring a store of `RIVERBED_BENCH_RESTORE_KEYS`
//!   (default 1 000 000) keys, from `App::start` until the store's committed view holds every
//!   key: from the snapshot its last close wrote (an empty changelog tail), or with the snapshot
//!   removed, from the whole changelog.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use riverbed::streams::{App, Builder, Materialized, Serde, StreamsConfig, Topology};
use riverbed::{
    CleanupPolicy, ConsumerConfig, OffsetAndMetadata, OffsetReset, Record, Store, TopicConfig,
    TopicPartition,
};

mod common;

const PARTITIONS: u32 = 2;
const KEYS: u64 = 10_000;

fn fill(store: &Store, topic: &str, records: u64, keys: u64) {
    let p = store.producer();
    let mut i = 0;
    while i < records {
        let n = 1000.min(records - i);
        p.send_batch((i..i + n).map(|i| {
            Record::new(topic)
                .key(format!("k{:07}", i % keys))
                .value(common::value(i, 100))
        }))
        .expect("send");
        i += n;
    }
    p.flush().expect("flush");
}

/// Runs `topology` from the start of its input until `records` are processed and it closed.
fn run_app(store: &Store, topology: Topology, config: StreamsConfig, records: u64) -> Duration {
    let start = Instant::now();
    let app = App::start(store, topology, config).expect("start");
    while app.metrics().processed_records < records {
        assert!(app.error().is_none(), "{:?}", app.error());
        std::thread::sleep(Duration::from_micros(200));
    }
    app.close().expect("close");
    start.elapsed()
}

fn stateless(c: &mut Criterion) {
    let records = common::env_usize("RIVERBED_BENCH_STREAMS_RECORDS", 200_000) as u64;
    let dir = common::temp_dir();
    let store = Store::open(dir.path()).expect("open");
    for t in ["in", "out"] {
        store
            .create_topic(t, TopicConfig::new(PARTITIONS))
            .expect("topic");
    }
    fill(&store, "in", records, KEYS);
    let mut g = c.benchmark_group("stateless");
    g.throughput(Throughput::Elements(records));
    g.sample_size(10);
    let mut run = 0u64;
    g.bench_function("map_filter", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                run += 1;
                let builder = Builder::new(format!("stateless-{run}"));
                builder
                    .stream::<Vec<u8>, Vec<u8>>("in")
                    .filter(|_, v| v.first() != Some(&b'#'))
                    .map_values(|mut v: Vec<u8>| {
                        v.reverse();
                        v
                    })
                    .to("out");
                let t = builder.build().expect("topology");
                total += run_app(&store, t, StreamsConfig::new(), records);
            }
            total
        })
    });
    g.finish();
}

/// The consumer loop of `examples/group_by_count.rs`: count by key, send the changed counts
/// and commit the offsets after every poll.
fn hand_written(store: &Store, group: &str, records: u64) -> Duration {
    let start = Instant::now();
    let producer = store.producer();
    let mut consumer = store
        .consumer(
            ConsumerConfig::new(group)
                .auto_offset_reset(OffsetReset::Earliest)
                .enable_auto_commit(false)
                .max_poll_records(1000),
        )
        .expect("consumer");
    consumer.subscribe(&["in"]).expect("subscribe");
    let mut counts: std::collections::HashMap<Vec<u8>, i64> = Default::default();
    let mut seen = 0u64;
    while seen < records {
        let batch = consumer.poll(Duration::from_millis(100)).expect("poll");
        let mut changed: std::collections::HashMap<Vec<u8>, i64> = Default::default();
        let mut positions: std::collections::HashMap<TopicPartition, u64> = Default::default();
        for r in batch.iter() {
            seen += 1;
            positions.insert(
                TopicPartition::new(r.topic(), r.partition()),
                r.offset() + 1,
            );
            let Some(k) = r.key() else { continue };
            let c = counts.entry(k.to_vec()).or_insert(0);
            *c += 1;
            changed.insert(k.to_vec(), *c);
        }
        producer
            .send_batch(
                changed
                    .into_iter()
                    .map(|(k, c)| Record::new("out").key(k).value(c.encode())),
            )
            .expect("send");
        producer.flush().expect("flush");
        let offsets: Vec<_> = positions
            .into_iter()
            .map(|(tp, o)| (tp, OffsetAndMetadata::new(o)))
            .collect();
        consumer.commit_offsets(&offsets).expect("commit");
    }
    consumer.close().expect("close");
    start.elapsed()
}

fn count_by_key(c: &mut Criterion) {
    let records = common::env_usize("RIVERBED_BENCH_STREAMS_RECORDS", 200_000) as u64;
    let dir = common::temp_dir();
    let store = Store::open(dir.path()).expect("open");
    for t in ["in", "out"] {
        store
            .create_topic(t, TopicConfig::new(PARTITIONS))
            .expect("topic");
    }
    fill(&store, "in", records, KEYS);
    let mut g = c.benchmark_group("count_by_key");
    g.throughput(Throughput::Elements(records));
    g.sample_size(10);
    let mut run = 0u64;
    for (name, eos) in [("streams_alos", false), ("streams_eos", true)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    run += 1;
                    let builder = Builder::new(format!("count-{run}"));
                    builder
                        .stream::<Vec<u8>, Vec<u8>>("in")
                        .group_by_key()
                        .count(Materialized::named("counts"))
                        .to_stream()
                        .to("out");
                    let t = builder.build().expect("topology");
                    let config = if eos {
                        StreamsConfig::new().exactly_once()
                    } else {
                        StreamsConfig::new()
                    };
                    total += run_app(&store, t, config, records);
                }
                total
            })
        });
    }
    g.bench_function("hand_written", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                run += 1;
                total += hand_written(&store, &format!("hand-{run}"), records);
            }
            total
        })
    });
    g.finish();
}

fn restore(c: &mut Criterion) {
    let keys = common::env_usize("RIVERBED_BENCH_RESTORE_KEYS", 1_000_000) as u64;
    let dir = common::temp_dir();
    let store = Store::open(dir.path()).expect("open");
    store
        .create_topic("rin", TopicConfig::new(1))
        .expect("topic");
    let changelog = "restore-bench-counts-changelog";
    store
        .create_topic(
            changelog,
            TopicConfig::new(1).cleanup_policy(CleanupPolicy::Compact),
        )
        .expect("changelog");
    let p = store.producer();
    let mut i = 0;
    while i < keys {
        let n = 10_000.min(keys - i);
        p.send_batch((i..i + n).map(|i| {
            Record::new(changelog)
                .partition(0)
                .key(format!("k{i:09}"))
                .value((i as i64).encode())
        }))
        .expect("send");
        i += n;
    }
    p.flush().expect("flush");
    let topology = || {
        let b = Builder::new("restore-bench");
        b.stream::<String, String>("rin")
            .group_by_key()
            .count(Materialized::named("counts"));
        b.build().expect("topology")
    };
    let restore_once = |snapshot: bool| {
        let path = dir
            .path()
            .join("streams")
            .join(format!("{changelog}-0.checkpoint"));
        if !snapshot {
            let _ = std::fs::remove_file(&path);
        }
        let start = Instant::now();
        let app = App::start(&store, topology(), StreamsConfig::new()).expect("start");
        let view = app.store::<String, i64>("counts").expect("store");
        while view.approximate_num_entries() < keys as usize {
            assert!(app.error().is_none(), "{:?}", app.error());
            std::thread::sleep(Duration::from_micros(200));
        }
        let took = start.elapsed();
        let m = app.metrics();
        assert_eq!(m.snapshots_used, u64::from(snapshot), "{m:?}");
        app.close().expect("close");
        assert!(path.exists(), "the close wrote a snapshot");
        took
    };
    // The first run replays the changelog and leaves a snapshot.
    restore_once(false);
    let mut g = c.benchmark_group("restore");
    g.throughput(Throughput::Elements(keys));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(15));
    for (name, snapshot) in [("checkpoint", true), ("changelog", false)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| restore_once(snapshot)).sum())
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = stateless, count_by_key, restore
}
criterion_main!(benches);
