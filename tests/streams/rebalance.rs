//! Rebalancing while processing: instances of one application (same application id, same
//! store) are started and closed while input is produced — Kafka Streams scales by instances,
//! and so does Riverbed: each instance's threads join the application's consumer group, and
//! every rebalance moves tasks with their state (the old owner commits and writes checkpoint
//! snapshots; the new one restores from them and the changelog). At the end no update is lost:
//! exactly-once, the committed counts and the last committed output per key are the true
//! counts and each key's outputs strictly grow; at-least-once, no count is below the truth.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use riverbed::streams::{App, Builder, Materialized, Serde, StreamsConfig, Topology};
use riverbed::{
    ConsumerConfig, IsolationLevel, OffsetReset, ProducerRecord, Store, TopicConfig, TopicPartition,
};

use crate::common;

const APP: &str = "rebalance-app";
const PARTITIONS: u32 = 6;
const RECORDS: u64 = 20_000;

fn counting() -> Topology {
    let b = Builder::new(APP);
    b.stream::<String, String>("in")
        .group_by_key()
        .count(Materialized::named("counts"))
        .to_stream()
        .to("out");
    b.build().unwrap()
}

fn key(i: u64) -> String {
    format!("k{}", i % 101)
}

fn start(store: &Store, eos: bool, threads: usize) -> App {
    let c = StreamsConfig::new()
        .threads(threads)
        .commit_interval(Duration::from_millis(30));
    let c = if eos { c.exactly_once() } else { c };
    App::start(store, counting(), c).unwrap()
}

fn all_committed(store: &Store) -> bool {
    let committed = store.committed_offsets(APP);
    store
        .describe_topic("in")
        .unwrap()
        .partitions
        .iter()
        .all(|p| {
            committed
                .iter()
                .find(|(tp, _)| tp.partition == p.partition)
                .is_some_and(|(_, o)| o.offset == p.log_end_offset)
        })
}

fn scale_up_and_down(eos: bool) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for t in ["in", "out"] {
        store.create_topic(t, TopicConfig::new(PARTITIONS)).unwrap();
    }
    let produced = Arc::new(AtomicU64::new(0));
    let input = std::thread::spawn({
        let (store, produced) = (store.clone(), Arc::clone(&produced));
        move || {
            let p = store.producer();
            for from in (0..RECORDS).step_by(100) {
                p.send_batch(
                    (from..from + 100).map(|i| ProducerRecord::new("in").key(key(i)).value("x")),
                )
                .unwrap();
                produced.store(from + 100, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    let at = |n: u64| {
        let produced = Arc::clone(&produced);
        move || produced.load(Ordering::SeqCst) >= n
    };

    let a = start(&store, eos, 2);
    common::wait_for_apps("a fifth of the input", &[&a], at(RECORDS / 5));
    let b = start(&store, eos, 1);
    common::wait_for_apps("two fifths", &[&a, &b], at(2 * RECORDS / 5));
    let c = start(&store, eos, 2);
    // Its tasks came from the others, which wrote snapshots when they gave them up.
    common::wait_for_apps("c to restore from snapshots", &[&a, &b, &c], || {
        c.metrics().snapshots_used > 0
    });
    common::wait_for_apps("three fifths", &[&a, &b, &c], at(3 * RECORDS / 5));
    a.close().unwrap();
    common::wait_for_apps("four fifths", &[&b, &c], at(4 * RECORDS / 5));
    b.close().unwrap();
    let d = start(&store, eos, 1);
    input.join().unwrap();
    c.close().unwrap();
    common::wait_for_apps("every input committed", &[&d], || all_committed(&store));

    let mut truth: BTreeMap<String, i64> = BTreeMap::new();
    for i in 0..RECORDS {
        *truth.entry(key(i)).or_insert(0) += 1;
    }
    d.close().unwrap();

    let counts = latest(&store, "rebalance-app-counts-changelog", false);
    let outputs = latest(&store, "out", eos);
    if eos {
        assert_eq!(counts, truth, "committed state");
        assert_eq!(outputs, truth, "committed output");
    } else {
        for (k, n) in &truth {
            assert!(
                counts.get(k).is_some_and(|c| c >= n),
                "state of {k}: {:?} < {n}",
                counts.get(k)
            );
            assert!(
                outputs.get(k).is_some_and(|c| c >= n),
                "output of {k}: {:?} < {n}",
                outputs.get(k)
            );
        }
    }
}

/// The last committed value per key of `topic` (a changelog: the stores' committed state);
/// with `growing`, checks that each key's values strictly grow.
fn latest(store: &Store, topic: &str, growing: bool) -> BTreeMap<String, i64> {
    let mut c = store
        .consumer(
            ConsumerConfig::default()
                .auto_offset_reset(OffsetReset::Earliest)
                .isolation_level(IsolationLevel::ReadCommitted),
        )
        .unwrap();
    let tps: Vec<_> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    c.assign(&tps).unwrap();
    let ends = c.end_offsets(&tps).unwrap();
    let mut latest: BTreeMap<String, i64> = BTreeMap::new();
    while ends.iter().any(|(tp, e)| c.position(tp).unwrap() < *e) {
        for r in c.poll(Duration::from_millis(50)).unwrap().iter() {
            let k = String::decode(r.key().unwrap()).unwrap();
            let n = i64::decode(r.value().unwrap()).unwrap();
            if growing {
                let prev = latest.get(&k).copied().unwrap_or(0);
                assert!(n > prev, "{topic}: {k}: {n} after {prev}");
            }
            latest.insert(k, n);
        }
    }
    latest
}

#[test]
fn exactly_once_instances_come_and_go_without_losing_updates() {
    scale_up_and_down(true);
}

#[test]
fn at_least_once_instances_come_and_go_without_losing_updates() {
    scale_up_and_down(false);
}
