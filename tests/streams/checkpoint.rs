//! Checkpoint snapshots: a restart after a clean close restores each store from its snapshot and
//! replays only the changelog records written after it; after a failure the last snapshot plus
//! the longer tail still gives the committed state; a damaged, stale, mismatched or deleted-topic
//! snapshot makes the restore replay the whole changelog, never produce a wrong state.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use riverbed::streams::{App, Builder, Materialized, StreamsConfig, StreamsMetrics, Topology};
use riverbed::{
    CleanupPolicy, ConsumerConfig, IsolationLevel, OffsetReset, ProducerRecord, Store, TopicConfig,
    TopicPartition,
};

use crate::common;

const PARTITIONS: u32 = 2;
const APP: &str = "ckpt-app";
const CHANGELOG: &str = "ckpt-app-counts-changelog";

/// Counts `in` by key into store `counts`; a record keyed `poison` panics while `armed`.
fn counting(armed: &Arc<AtomicBool>) -> Topology {
    let armed = Arc::clone(armed);
    let b = Builder::new(APP);
    b.stream::<String, String>("in")
        .peek(move |k, _| {
            if armed.load(Ordering::SeqCst) && k == "poison" {
                panic!("poison record");
            }
        })
        .group_by_key()
        .count(Materialized::named("counts"))
        .to_stream()
        .to("out");
    b.build().unwrap()
}

fn setup() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for t in ["in", "out"] {
        store.create_topic(t, TopicConfig::new(PARTITIONS)).unwrap();
    }
    (dir, store)
}

fn config(eos: bool) -> StreamsConfig {
    let c = StreamsConfig::new().commit_interval(Duration::from_millis(20));
    if eos {
        c.exactly_once()
    } else {
        c
    }
}

/// Sends records `from..to`, keyed `k<i % 37>`; remembers them in `truth`.
fn produce(store: &Store, from: u64, to: u64, truth: &mut BTreeMap<String, i64>) {
    let p = store.producer();
    for i in from..to {
        let k = format!("k{}", i % 37);
        *truth.entry(k.clone()).or_insert(0) += 1;
        p.send(ProducerRecord::new("in").key(k).value(format!("v{i}")))
            .unwrap();
    }
}

fn counts(app: &App) -> BTreeMap<String, i64> {
    app.store::<String, i64>("counts")
        .unwrap()
        .all()
        .unwrap()
        .into_iter()
        .collect()
}

/// Runs until the committed counts are `truth`, then closes; returns the final metrics.
fn run_to(store: &Store, eos: bool, truth: &BTreeMap<String, i64>) -> StreamsMetrics {
    let armed = Arc::new(AtomicBool::new(false));
    let app = App::start(store, counting(&armed), config(eos)).unwrap();
    common::wait_for_apps("the counts", &[&app], || counts(&app) == *truth);
    let m = app.metrics();
    app.close().unwrap();
    m
}

fn snapshot_path(dir: &std::path::Path, p: u32) -> PathBuf {
    dir.join("streams")
        .join(format!("{CHANGELOG}-{p}.checkpoint"))
}

/// The changelog offset a snapshot file reflects (FORMAT.md 8.5: bytes 8..16).
fn snapshot_offset(dir: &std::path::Path, p: u32) -> u64 {
    let b = std::fs::read(snapshot_path(dir, p)).unwrap();
    u64::from_le_bytes(b[8..16].try_into().unwrap())
}

/// Records in partition `p` of the changelog from `from` on, as a restore reads them.
fn changelog_records(store: &Store, p: u32, from: u64, eos: bool) -> u64 {
    let mut c = store
        .consumer(
            ConsumerConfig::default()
                .auto_offset_reset(OffsetReset::Earliest)
                .isolation_level(if eos {
                    IsolationLevel::ReadCommitted
                } else {
                    IsolationLevel::ReadUncommitted
                }),
        )
        .unwrap();
    let tp = TopicPartition::new(CHANGELOG, p);
    c.assign(std::slice::from_ref(&tp)).unwrap();
    c.seek(&tp, from).unwrap();
    let end = c.end_offsets(std::slice::from_ref(&tp)).unwrap()[0].1;
    let mut n = 0;
    while c.position(&tp).unwrap() < end {
        n += c
            .poll(Duration::from_millis(50))
            .unwrap()
            .iter()
            .filter(|r| r.offset() < end)
            .count() as u64;
    }
    n
}

fn clean_close_then_crash(eos: bool) {
    let (dir, store) = setup();
    let mut truth = BTreeMap::new();
    produce(&store, 0, 2000, &mut truth);
    let first = run_to(&store, eos, &truth);
    assert_eq!(first.snapshots_used, 0);
    assert_eq!(first.snapshots_written, 0, "written at close, not before");
    for p in 0..PARTITIONS {
        assert!(snapshot_path(dir.path(), p).exists(), "snapshot {p}");
    }

    // A clean restart: the snapshots are the whole state; nothing to replay.
    let armed = Arc::new(AtomicBool::new(true));
    let app = App::start(&store, counting(&armed), config(eos)).unwrap();
    common::wait_for_apps("the restored counts", &[&app], || counts(&app) == truth);
    let m = app.metrics();
    assert_eq!(m.snapshots_used, u64::from(PARTITIONS));
    assert_eq!(m.snapshots_rejected, 0);
    assert_eq!(m.restored_records, 0, "nothing after the snapshots");
    assert_eq!(m.restored_from_snapshots, truth.len() as u64);
    assert_eq!(m.restore_remaining, 0);
    let snap_offsets: Vec<u64> = (0..PARTITIONS)
        .map(|p| snapshot_offset(dir.path(), p))
        .collect();

    // More work, committed; then a failure: this run writes no snapshot.
    produce(&store, 2000, 3000, &mut truth);
    common::wait_for_apps("the second batch", &[&app], || counts(&app) == truth);
    store
        .producer()
        .send(ProducerRecord::new("in").key("poison").value("x"))
        .unwrap();
    *truth.entry("poison".into()).or_insert(0) += 1;
    let start = Instant::now();
    while app.is_running() {
        assert!(start.elapsed() < Duration::from_secs(60), "poison ignored");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(app.close().is_err());
    for p in 0..PARTITIONS {
        assert_eq!(snapshot_offset(dir.path(), p), snap_offsets[p as usize]);
    }

    // Restart: the old snapshots plus the tail the failed run committed.
    produce(&store, 3000, 3500, &mut truth);
    let tail: u64 = (0..PARTITIONS)
        .map(|p| changelog_records(&store, p, snap_offsets[p as usize], eos))
        .sum();
    let whole: u64 = (0..PARTITIONS)
        .map(|p| changelog_records(&store, p, 0, eos))
        .sum();
    assert!(tail > 0 && tail < whole, "tail {tail} of {whole}");
    armed.store(false, Ordering::SeqCst);
    let app = App::start(&store, counting(&armed), config(eos)).unwrap();
    common::wait_for_apps("the final counts", &[&app], || counts(&app) == truth);
    let m = app.metrics();
    assert_eq!(m.snapshots_used, u64::from(PARTITIONS));
    assert_eq!(m.restored_records, tail, "only the tail is replayed");
    assert_eq!(m.restore_remaining, 0);
    app.close().unwrap();
}

#[test]
fn at_least_once_restores_from_snapshot_and_tail() {
    clean_close_then_crash(false);
}

#[test]
fn exactly_once_restores_from_snapshot_and_tail() {
    clean_close_then_crash(true);
}

#[test]
fn damaged_snapshots_make_a_full_replay() {
    let (dir, store) = setup();
    let mut truth = BTreeMap::new();
    produce(&store, 0, 3000, &mut truth);
    run_to(&store, true, &truth);
    let whole: u64 = (0..PARTITIONS)
        .map(|p| changelog_records(&store, p, 0, true))
        .sum();
    let pristine: Vec<Vec<u8>> = (0..PARTITIONS)
        .map(|p| std::fs::read(snapshot_path(dir.path(), p)).unwrap())
        .collect();
    type Damage = fn(&mut Vec<u8>);
    let damages: [(&str, Damage); 4] = [
        ("a flipped byte in an entry", |b| {
            let n = b.len();
            b[n / 2] ^= 1;
        }),
        ("a cut", |b| b.truncate(b.len() - 9)),
        ("an empty file", Vec::clear),
        ("another version, CRC fixed", |b| {
            b[4] = 9;
            let n = b.len() - 4;
            let crc = crc32(&b[..n]);
            b[n..].copy_from_slice(&crc.to_le_bytes());
        }),
    ];
    for (what, damage) in damages {
        for (p, bytes) in pristine.iter().enumerate() {
            let mut b = bytes.clone();
            damage(&mut b);
            std::fs::write(snapshot_path(dir.path(), p as u32), b).unwrap();
        }
        let m = run_to(&store, true, &truth);
        assert_eq!(m.snapshots_used, 0, "{what}");
        assert_eq!(m.snapshots_rejected, u64::from(PARTITIONS), "{what}");
        assert_eq!(m.restored_records, whole, "{what}: a full replay");
    }
}

/// CRC-32 (IEEE), as FORMAT.md specifies, for re-sealing a deliberately changed file.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn unusable_snapshots_are_not_used() {
    // Written at-least-once: not a read_committed prefix, so exactly-once does not trust it;
    // at-least-once does.
    let (dir, store) = setup();
    let mut truth = BTreeMap::new();
    produce(&store, 0, 1000, &mut truth);
    run_to(&store, false, &truth);
    let m = run_to(&store, true, &truth);
    assert_eq!((m.snapshots_used, m.snapshots_rejected), (0, 2));
    // That close wrote exactly-once snapshots, which at-least-once may use.
    let m = run_to(&store, false, &truth);
    assert_eq!((m.snapshots_used, m.snapshots_rejected), (2, 0));

    // The changelog deleted: the app creates a new one and removes the old snapshots, which
    // describe another log.
    store.delete_topic(CHANGELOG).unwrap();
    let armed = Arc::new(AtomicBool::new(false));
    let app = App::start(&store, counting(&armed), config(false)).unwrap();
    for p in 0..PARTITIONS {
        assert!(!snapshot_path(dir.path(), p).exists());
    }
    app.close().unwrap();
}

#[test]
fn snapshots_older_than_the_delete_retention_are_not_used() {
    let (_dir, store) = setup();
    // A changelog whose tombstones may go at once: no snapshot is young enough.
    let c = TopicConfig::new(PARTITIONS).cleanup_policy(CleanupPolicy::Compact);
    let c = c.clone().log(c.get_log().clone().delete_retention_ms(0));
    store.create_topic(CHANGELOG, c).unwrap();
    let mut truth = BTreeMap::new();
    produce(&store, 0, 500, &mut truth);
    run_to(&store, false, &truth);
    let m = run_to(&store, false, &truth);
    assert_eq!((m.snapshots_used, m.snapshots_rejected), (0, 2));
    let whole: HashMap<u32, u64> = (0..PARTITIONS)
        .map(|p| (p, changelog_records(&store, p, 0, false)))
        .collect();
    assert_eq!(m.restored_records, whole.values().sum::<u64>());
}
