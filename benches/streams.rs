//! Streams: throughput and latency of `App` pipelines, each against a same-run baseline that
//! does the same work by hand with a plain consumer and producer, and the restore of a large
//! store from a checkpoint snapshot against a replay of its whole changelog.
//!
//! `cargo bench --bench streams` (`-- <group>` for one group). Sizes:
//! `RIVERBED_BENCH_STREAMS_RECORDS` (default 500 000 records of 100 bytes, 8-byte keys over
//! 10 000 distinct keys, 2 partitions, one stream thread unless the name says two),
//! `RIVERBED_BENCH_RESTORE_KEYS` (default 1 000 000), `RIVERBED_BENCH_LATENCY_ROUNDS` (default
//! 2 000 round trips a sample).
//!
//! **What a throughput figure includes.** Every throughput bench (`stateless`, `count_by_key`,
//! `windowed_count`, `stream_table_join`) reads its input from the start with a fresh
//! application id (or consumer group), and is timed in the steady state: from the moment the
//! first record was processed until the last one was, then scaled up to the whole input (the
//! elapsed time times `records / records processed in it`). So group join, task creation,
//! restore and the final commit and close are *not* in the figure, while everything that runs
//! per poll is: consumer polls, decoding, the topology, sending the outputs, and the commits the
//! commit interval makes (every 100 ms exactly-once; at-least-once every 30 s, so none).
//! The `hand_written` baselines are timed the same way (from the first poll that returned
//! records) and commit their offsets after every poll, like `examples/group_by_count.rs`.
//!
//! - `stateless/{map_filter,map_filter_2_threads,hand_written}`: `filter` + `map_values` + `to`,
//!   at-least-once, with one stream thread and with two (one per input partition: both cores);
//!   the hand-written loop is one thread.
//! - `count_by_key/{streams_alos,streams_eos,streams_alos_2_threads,hand_written}`:
//!   `group_by_key().count()` with each update written to an output topic (one output record per
//!   input record; the changelog is written at commit); the hand loop sends one output per
//!   changed key per poll.
//! - `windowed_count/{streams_alos,hand_written}`: a count per key and 1-minute tumbling window,
//!   each update written to an output topic.
//! - `stream_table_join/{streams_alos,hand_written}`: the input joined with a table of the
//!   10 000 keys (read from its own topic, filled before the stream); the joined values are
//!   written to an output topic. The table's records count as processed.
//! - `latency/{streams_alos,consumer_round_trip}`: one record sent, then waited for until its
//!   result can be read from the application's output topic (a `map_values` + `to` topology,
//!   at-least-once, running), repeated; the baseline is the same produce -> consumer poll round
//!   trip without the application in between. Each sample also prints its p50/p99/max.
//! - `restore/{checkpoint,changelog}`: a task restoring a store of `RIVERBED_BENCH_RESTORE_KEYS`
//!   keys, from `App::start` until the store's committed view holds every key: from the
//!   snapshot its last close wrote (an empty changelog tail), or with the snapshot removed,
//!   from the whole changelog.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use riverbed::streams::{
    App, Builder, Materialized, Serde, StreamsConfig, TimeWindows, Topology, Windowed,
};
use riverbed::{
    CleanupPolicy, Consumer, ConsumerConfig, OffsetAndMetadata, OffsetReset, ProducerRecord, Store,
    TopicConfig, TopicPartition,
};

mod common;

const PARTITIONS: u32 = 2;
const KEYS: u64 = 10_000;
const WINDOW_MS: i64 = 60_000;

fn records() -> u64 {
    common::env_usize("RIVERBED_BENCH_STREAMS_RECORDS", 500_000) as u64
}

fn key(i: u64) -> String {
    format!("k{:07}", i % KEYS)
}

fn fill(store: &Store, topic: &str, records: u64) {
    let p = store.producer();
    let mut i = 0;
    while i < records {
        let n = 1000.min(records - i);
        p.send_batch((i..i + n).map(|i| {
            ProducerRecord::new(topic)
                .key(key(i))
                .value(common::value(i, 100))
        }))
        .expect("send");
        i += n;
    }
    p.flush().expect("flush");
}

/// A store with the topics `in` (filled with `records()` records) and `out`.
fn input_store(extra_topics: &[&str]) -> (tempfile::TempDir, Store) {
    let dir = common::temp_dir();
    let store = Store::open(dir.path()).expect("open");
    for t in ["in", "out"].iter().chain(extra_topics) {
        store
            .create_topic(t, TopicConfig::new(PARTITIONS))
            .expect("topic");
    }
    fill(&store, "in", records());
    (dir, store)
}

/// A group's input, made when one of its benchmarks first runs, so that a filter selecting
/// one group (`-- stateless`) does not fill every group's input first.
struct Lazy<T> {
    made: std::cell::OnceCell<T>,
    make: Box<dyn Fn() -> T>,
}

impl<T> Lazy<T> {
    fn new(make: impl Fn() -> T + 'static) -> Lazy<T> {
        Lazy {
            made: std::cell::OnceCell::new(),
            make: Box::new(make),
        }
    }

    fn get(&self) -> &T {
        self.made.get_or_init(&self.make)
    }
}

/// The store of an [`input_store`] made lazily.
fn lazy_input(extra_topics: &'static [&'static str]) -> Lazy<(tempfile::TempDir, Store)> {
    Lazy::new(move || input_store(extra_topics))
}

/// Steady-state time for `total` records: the time from when `first` records had been
/// processed to when `last` had, scaled to `total` records.
fn scaled(elapsed: Duration, first: u64, last: u64, total: u64) -> Duration {
    let done = last.saturating_sub(first).max(1);
    elapsed.mul_f64(total as f64 / done as f64)
}

/// Runs `topology` from the start of its input until `records` are processed, then closes it;
/// returns the steady-state time (see the module docs).
fn run_app(store: &Store, topology: Topology, config: StreamsConfig, records: u64) -> Duration {
    let app = App::start(store, topology, config).expect("start");
    let (first, t0) = loop {
        let n = app.metrics().processed_records;
        if n > 0 {
            break (n, Instant::now());
        }
        assert!(app.error().is_none(), "{:?}", app.error());
        std::thread::sleep(Duration::from_micros(50));
    };
    let last = loop {
        let n = app.metrics().processed_records;
        if n >= records {
            break n.min(records);
        }
        assert!(app.error().is_none(), "{:?}", app.error());
        std::thread::sleep(Duration::from_micros(200));
    };
    let took = t0.elapsed();
    app.close().expect("close");
    scaled(took, first, last, records)
}

/// A fresh consumer group reading `topics` from the start, committing by hand.
fn hand_consumer(store: &Store, group: &str, topics: &[&str]) -> Consumer {
    let mut consumer = store
        .consumer(
            ConsumerConfig::new(group)
                .auto_offset_reset(OffsetReset::Earliest)
                .enable_auto_commit(false)
                .max_poll_records(1000),
        )
        .expect("consumer");
    consumer.subscribe(topics).expect("subscribe");
    consumer
}

/// The loop every hand-written baseline shares: polls `topics` until `records` were seen,
/// calls `work` with each poll's records (it returns the outputs to send), sends them, commits
/// the offsets; returns the steady-state time.
fn hand_loop(
    store: &Store,
    group: &str,
    topics: &[&str],
    records: u64,
    mut work: impl FnMut(&riverbed::ConsumerRecords) -> Vec<ProducerRecord>,
) -> Duration {
    let producer = store.producer();
    let mut consumer = hand_consumer(store, group, topics);
    let mut seen = 0u64;
    let mut start: Option<(Instant, u64)> = None;
    while seen < records {
        let batch = consumer.poll(Duration::from_millis(100)).expect("poll");
        let mut positions: HashMap<TopicPartition, u64> = HashMap::new();
        for r in batch.iter() {
            positions.insert(
                TopicPartition::new(r.topic(), r.partition()),
                r.offset() + 1,
            );
        }
        seen += batch.iter().count() as u64;
        let outputs = work(&batch);
        producer.send_batch(outputs).expect("send");
        producer.flush().expect("flush");
        let offsets: Vec<_> = positions
            .into_iter()
            .map(|(tp, o)| (tp, OffsetAndMetadata::new(o)))
            .collect();
        consumer.commit_offsets(&offsets).expect("commit");
        if start.is_none() && seen > 0 {
            start = Some((Instant::now(), seen));
        }
    }
    let (t0, first) = start.expect("records were seen");
    let took = t0.elapsed();
    consumer.close().expect("close");
    scaled(took, first, seen.min(records), records)
}

/// Benches `name` by running `once(run number)` per iteration and adding up its durations.
fn bench_runs(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    run: &mut u64,
    mut once: impl FnMut(u64) -> Duration,
) {
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                *run += 1;
                total += once(*run);
            }
            total
        })
    });
}

fn stateless(c: &mut Criterion) {
    let input = lazy_input(&[]);
    let store = || &input.get().1;
    let records = records();
    let mut g = c.benchmark_group("stateless");
    g.throughput(Throughput::Elements(records));
    g.sample_size(10);
    let mut run = 0u64;
    for (name, threads) in [("map_filter", 1), ("map_filter_2_threads", 2)] {
        bench_runs(&mut g, name, &mut run, |run| {
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
            run_app(store(), t, StreamsConfig::new().threads(threads), records)
        });
    }
    bench_runs(&mut g, "hand_written", &mut run, |run| {
        hand_loop(store(), &format!("hand-{run}"), &["in"], records, |batch| {
            batch
                .iter()
                .filter(|r| r.value().and_then(|v| v.first()) != Some(&b'#'))
                .map(|r| {
                    let mut v = r.value().unwrap_or_default().to_vec();
                    v.reverse();
                    let mut out = ProducerRecord::new("out").value(v).timestamp(r.timestamp());
                    if let Some(k) = r.key() {
                        out = out.key(k.to_vec());
                    }
                    out
                })
                .collect()
        })
    });
    g.finish();
}

fn count_by_key(c: &mut Criterion) {
    let input = lazy_input(&[]);
    let store = || &input.get().1;
    let records = records();
    let mut g = c.benchmark_group("count_by_key");
    g.throughput(Throughput::Elements(records));
    g.sample_size(10);
    let mut run = 0u64;
    for (name, eos, threads) in [
        ("streams_alos", false, 1),
        ("streams_eos", true, 1),
        ("streams_alos_2_threads", false, 2),
    ] {
        bench_runs(&mut g, name, &mut run, |run| {
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
            let config = config.threads(threads);
            run_app(store(), t, config, records)
        });
    }
    // The consumer loop of `examples/group_by_count.rs`.
    bench_runs(&mut g, "hand_written", &mut run, |run| {
        let mut counts: HashMap<Vec<u8>, i64> = HashMap::new();
        hand_loop(store(), &format!("hand-{run}"), &["in"], records, |batch| {
            let mut changed: HashMap<Vec<u8>, i64> = HashMap::new();
            for r in batch.iter() {
                let Some(k) = r.key() else { continue };
                let c = counts.entry(k.to_vec()).or_insert(0);
                *c += 1;
                changed.insert(k.to_vec(), *c);
            }
            changed
                .into_iter()
                .map(|(k, c)| {
                    ProducerRecord::new("out")
                        .key(k)
                        .value(c.encode().expect("an i64 encodes"))
                })
                .collect()
        })
    });
    g.finish();
}

fn windowed_count(c: &mut Criterion) {
    let input = lazy_input(&[]);
    let store = || &input.get().1;
    let records = records();
    let mut g = c.benchmark_group("windowed_count");
    g.throughput(Throughput::Elements(records));
    g.sample_size(10);
    let mut run = 0u64;
    bench_runs(&mut g, "streams_alos", &mut run, |run| {
        let builder = Builder::new(format!("windowed-{run}"));
        builder
            .stream::<Vec<u8>, Vec<u8>>("in")
            .group_by_key()
            .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(
                WINDOW_MS as u64,
            )))
            .count(Materialized::named("counts"))
            .to_stream()
            .to("out");
        let t = builder.build().expect("topology");
        run_app(store(), t, StreamsConfig::new(), records)
    });
    bench_runs(&mut g, "hand_written", &mut run, |run| {
        let mut counts: HashMap<(Vec<u8>, i64), i64> = HashMap::new();
        hand_loop(store(), &format!("hand-{run}"), &["in"], records, |batch| {
            let mut out = Vec::new();
            for r in batch.iter() {
                let Some(k) = r.key() else { continue };
                let start = r.timestamp() - r.timestamp().rem_euclid(WINDOW_MS);
                let c = counts.entry((k.to_vec(), start)).or_insert(0);
                *c += 1;
                let windowed = Windowed::new(
                    k.to_vec(),
                    riverbed::streams::Window::new(start, start + WINDOW_MS),
                );
                out.push(
                    ProducerRecord::new("out")
                        .key(windowed.encode().expect("a windowed key encodes"))
                        .value(c.encode().expect("an i64 encodes"))
                        .timestamp(r.timestamp()),
                );
            }
            out
        })
    });
    g.finish();
}

fn stream_table_join(c: &mut Criterion) {
    let input = Lazy::new(|| {
        let (dir, store) = input_store(&["table"]);
        let p = store.producer();
        p.send_batch((0..KEYS).map(|i| {
            ProducerRecord::new("table")
                .key(key(i))
                .value(format!("t{i}"))
        }))
        .expect("send");
        p.flush().expect("flush");
        (dir, store)
    });
    let store = || &input.get().1;
    let records = records() + KEYS;
    let mut g = c.benchmark_group("stream_table_join");
    g.throughput(Throughput::Elements(records));
    g.sample_size(10);
    let mut run = 0u64;
    bench_runs(&mut g, "streams_alos", &mut run, |run| {
        let builder = Builder::new(format!("join-{run}"));
        let table = builder.table::<Vec<u8>, Vec<u8>>("table", Materialized::named("table"));
        builder
            .stream::<Vec<u8>, Vec<u8>>("in")
            .join(&table, |v, t| {
                let mut out = Vec::with_capacity(v.len() + t.len());
                out.extend_from_slice(t);
                out.extend_from_slice(v);
                out
            })
            .to("out");
        let t = builder.build().expect("topology");
        run_app(store(), t, StreamsConfig::new(), records)
    });
    bench_runs(&mut g, "hand_written", &mut run, |run| {
        let mut table: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let topics = ["in", "table"];
        hand_loop(store(), &format!("hand-{run}"), &topics, records, |batch| {
            let mut out = Vec::new();
            for r in batch.iter() {
                let Some(k) = r.key() else { continue };
                if r.topic() == "table" {
                    match r.value() {
                        Some(v) => table.insert(k.to_vec(), v.to_vec()),
                        None => table.remove(k),
                    };
                    continue;
                }
                let (Some(t), Some(v)) = (table.get(k), r.value()) else {
                    continue;
                };
                let mut joined = Vec::with_capacity(v.len() + t.len());
                joined.extend_from_slice(t);
                joined.extend_from_slice(v);
                out.push(
                    ProducerRecord::new("out")
                        .key(k.to_vec())
                        .value(joined)
                        .timestamp(r.timestamp()),
                );
            }
            out
        })
    });
    g.finish();
}

/// Percentiles of one sample's round trips, printed (criterion reports the mean per round).
fn report(name: &str, mut rounds: Vec<Duration>) {
    if rounds.is_empty() {
        return;
    }
    rounds.sort_unstable();
    let at = |q: f64| rounds[((rounds.len() - 1) as f64 * q).round() as usize];
    println!(
        "latency/{name}: {} rounds: p50 {:?} p99 {:?} max {:?}",
        rounds.len(),
        at(0.5),
        at(0.99),
        rounds[rounds.len() - 1]
    );
}

/// Sends one record to `input` and polls `reader` until one arrives, `iters` times; returns
/// each round trip.
fn round_trips(store: &Store, input: &str, reader: &mut Consumer, iters: u64) -> Vec<Duration> {
    let p = store.producer();
    let mut out = Vec::with_capacity(iters as usize);
    for i in 0..iters {
        let start = Instant::now();
        p.send(
            ProducerRecord::new(input)
                .partition(0)
                .key(key(i))
                .value(common::value(i, 100)),
        )
        .expect("send");
        loop {
            let got = reader.poll(Duration::from_millis(100)).expect("poll");
            if !got.is_empty() {
                assert_eq!(got.iter().count(), 1, "one result per record");
                break;
            }
        }
        out.push(start.elapsed());
    }
    out
}

fn latency(c: &mut Criterion) {
    let rounds = common::env_usize("RIVERBED_BENCH_LATENCY_ROUNDS", 2_000) as u64;
    let dir = common::temp_dir();
    let store = Store::open(dir.path()).expect("open");
    for t in ["lat-in", "lat-out", "plain"] {
        store.create_topic(t, TopicConfig::new(1)).expect("topic");
    }
    let tail = |topic: &str| {
        let mut c = store
            .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Latest))
            .expect("consumer");
        let tp = TopicPartition::new(topic, 0);
        c.assign(std::slice::from_ref(&tp)).expect("assign");
        // Pinned now: a position left to the first poll would be taken after the first
        // round's record was sent, and that round would wait forever.
        let end = c.end_offsets(std::slice::from_ref(&tp)).expect("end")[0].1;
        c.seek(&tp, end).expect("seek");
        c
    };
    let builder = Builder::new("latency-bench");
    builder
        .stream::<Vec<u8>, Vec<u8>>("lat-in")
        .map_values(|mut v: Vec<u8>| {
            v.reverse();
            v
        })
        .to("lat-out");
    let app = App::start(
        &store,
        builder.build().expect("topology"),
        StreamsConfig::new(),
    )
    .expect("start");
    let mut out_reader = tail("lat-out");
    // Until the application owns its partition, a record waits for the group join.
    round_trips(&store, "lat-in", &mut out_reader, 1);
    let mut plain_reader = tail("plain");
    let mut g = c.benchmark_group("latency");
    g.sample_size(10);
    g.throughput(Throughput::Elements(rounds));
    for (name, input) in [("streams_alos", "lat-in"), ("consumer_round_trip", "plain")] {
        let reader = if input == "plain" {
            &mut plain_reader
        } else {
            &mut out_reader
        };
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let all = round_trips(&store, input, reader, iters * rounds);
                let total = all.iter().sum();
                report(name, all);
                total
            })
        });
    }
    g.finish();
    assert!(app.error().is_none(), "{:?}", app.error());
    app.close().expect("close");
}

/// A store whose changelog holds `keys` counts, restored once (which leaves a snapshot).
fn restore_input(keys: u64) -> (tempfile::TempDir, Store) {
    let dir = common::temp_dir();
    let store = Store::open(dir.path()).expect("open");
    store
        .create_topic("rin", TopicConfig::new(1))
        .expect("topic");
    store
        .create_topic(
            RESTORE_CHANGELOG,
            TopicConfig::new(1).cleanup_policy(CleanupPolicy::Compact),
        )
        .expect("changelog");
    let p = store.producer();
    let mut i = 0;
    while i < keys {
        let n = 10_000.min(keys - i);
        p.send_batch((i..i + n).map(|i| {
            ProducerRecord::new(RESTORE_CHANGELOG)
                .partition(0)
                .key(format!("k{i:09}"))
                .value((i as i64).encode().expect("an i64 encodes"))
        }))
        .expect("send");
        i += n;
    }
    p.flush().expect("flush");
    // The first run replays the changelog and leaves a snapshot.
    restore_once(&dir, &store, keys, false);
    (dir, store)
}

const RESTORE_CHANGELOG: &str = "restore-bench-counts-changelog";

/// Starts the count application and waits until its store holds all `keys`: from the snapshot
/// the last close left, or (`snapshot` false) with it removed, from the whole changelog.
fn restore_once(dir: &tempfile::TempDir, store: &Store, keys: u64, snapshot: bool) -> Duration {
    let path = dir
        .path()
        .join("streams")
        .join(format!("{RESTORE_CHANGELOG}-0.checkpoint"));
    if !snapshot {
        let _ = std::fs::remove_file(&path);
    }
    let b = Builder::new("restore-bench");
    b.stream::<String, String>("rin")
        .group_by_key()
        .count(Materialized::named("counts"));
    let topology = b.build().expect("topology");
    let start = Instant::now();
    let app = App::start(store, topology, StreamsConfig::new()).expect("start");
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
}

fn restore(c: &mut Criterion) {
    let keys = common::env_usize("RIVERBED_BENCH_RESTORE_KEYS", 1_000_000) as u64;
    let input = Lazy::new(move || restore_input(keys));
    let mut g = c.benchmark_group("restore");
    g.throughput(Throughput::Elements(keys));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(15));
    for (name, snapshot) in [("checkpoint", true), ("changelog", false)] {
        g.bench_function(name, |b| {
            let (dir, store) = input.get();
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| restore_once(dir, store, keys, snapshot))
                    .sum()
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = stateless, count_by_key, windowed_count, stream_table_join, latency, restore
}
criterion_main!(benches);
