//! A tombstone stays readable for `delete_retention_ms` after the first cleaning that keeps it,
//! whatever its own timestamp (issue 13, item 6). Kafka's rule since KIP-534: the first cleaning
//! pass that retains a tombstone stamps a delete horizon (cleaning time + `delete.retention.ms`)
//! on its batch, and later passes drop the tombstone once their time reaches the horizon
//! (`LogCleaner.shouldRetainRecord`; `LogCleanerTest.testCleanTombstone`, which appends a
//! tombstone whose timestamp is already older than the retention and checks that cleaning
//! keeps it). Riverbed used to drop a tombstone once its segment's newest timestamp was
//! `delete_retention_ms` old, so a replayed, mirrored or clock-skewed delete vanished at its
//! first cleaning and a consumer that had read the old value kept it forever.

use proptest::prelude::*;
use riverbed::{
    BatchBuilder, CleanupPolicy, CompactionConfig, Compression, Log, LogConfig, TimestampType,
};

mod common;
use common::read_all;

const DAY: i64 = 24 * 60 * 60 * 1000;
const NOW: i64 = 1_800_000_000_000;

fn config(retention_ms: u64) -> LogConfig {
    LogConfig::default()
        .cleanup_policy(CleanupPolicy::Compact)
        .delete_retention_ms(retention_ms)
        .segment_ms(None)
}

fn append(log: &Log, zstd: bool, ts: i64, key: &str, value: Option<&str>) {
    let mut b = BatchBuilder::new(if zstd {
        Compression::Zstd { level: 1 }
    } else {
        Compression::None
    });
    b.append(ts, Some(key.as_bytes()), value.map(str::as_bytes), &[]);
    log.append(&b.build().unwrap()).unwrap();
}

fn compact(log: &Log, now: i64) {
    log.compact(&CompactionConfig::default().now_ms(Some(now)))
        .unwrap();
}

/// `(offset, key, value, timestamp)` of every record, as text.
fn records(log: &Log) -> Vec<(u64, String, Option<String>, i64)> {
    read_all(log, 1 << 20)
        .into_iter()
        .map(|(o, k, v, ts)| {
            let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
            (o, text(k.unwrap()), v.map(text), ts)
        })
        .collect()
}

/// The scenario: `user-1=alice` two days ago, its tombstone a millisecond later, a
/// current record, default retention of a day; the log is cleaned now.
fn scenario(dir: &std::path::Path, zstd: bool) -> Log {
    let log = Log::open(dir, config(DAY as u64)).unwrap();
    append(&log, zstd, NOW - 2 * DAY, "user-1", Some("alice"));
    log.roll().unwrap();
    append(&log, zstd, NOW - 2 * DAY + 1, "user-1", None);
    log.roll().unwrap();
    append(&log, zstd, NOW, "other", Some("x"));
    log.roll().unwrap();
    log
}

fn tombstone() -> (u64, String, Option<String>, i64) {
    (1, "user-1".into(), None, NOW - 2 * DAY + 1)
}

fn other() -> (u64, String, Option<String>, i64) {
    (2, "other".into(), Some("x".into()), NOW)
}

#[test]
fn an_old_timestamped_tombstone_survives_its_first_cleaning_for_the_retention() {
    for zstd in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = scenario(dir.path(), zstd);
        compact(&log, NOW);
        // The value is gone, the tombstone stays, with its own timestamp (the batch now counts
        // record timestamps from the horizon).
        assert_eq!(records(&log), [tombstone(), other()], "zstd {zstd}");
        assert_eq!(
            log.offset_for_timestamp(NOW - 2 * DAY).unwrap(),
            Some((1, NOW - 2 * DAY + 1))
        );
        // The horizon is on disk: it survives a reopen.
        log.close().unwrap();
        log = Log::open(dir.path(), config(DAY as u64)).unwrap();
        compact(&log, NOW + DAY - 1);
        assert_eq!(records(&log), [tombstone(), other()], "zstd {zstd}");
        // At the horizon the next cleaning (here a forced run with nothing dirty) removes it.
        compact(&log, NOW + DAY);
        assert_eq!(records(&log), [other()], "zstd {zstd}");
        log.close().unwrap();
    }
}

/// A tombstone in a batch next to live records: the batch is rewritten with the horizon even
/// though every record stays, and the other records keep their timestamps and values.
#[test]
fn stamping_keeps_the_other_records_of_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(1000)).unwrap();
    let mut b = BatchBuilder::new(Compression::None);
    b.append(NOW - 5000, Some(b"a"), Some(b"1"), &[("h", Some(b"v"))]);
    b.append(NOW - 4000, Some(b"b"), None, &[]);
    b.append(NOW + 7000, Some(b"c"), Some(b"3"), &[]);
    log.append(&b.build().unwrap()).unwrap();
    log.roll().unwrap();
    compact(&log, NOW);
    let expected = vec![
        (0, "a".to_string(), Some("1".to_string()), NOW - 5000),
        (1, "b".to_string(), None, NOW - 4000),
        (2, "c".to_string(), Some("3".to_string()), NOW + 7000),
    ];
    assert_eq!(records(&log), expected);
    let batches = log.read(0, 1 << 20).unwrap();
    let batch = batches[0].as_batch();
    assert_eq!(batch.delete_horizon(), Some(NOW + 1000));
    assert_eq!(batch.max_timestamp(), NOW + 7000);
    let r = batch.records().unwrap();
    let first = r.iter().next().unwrap().unwrap();
    assert_eq!(
        first.headers().next().unwrap().unwrap(),
        ("h", Some(&b"v"[..]))
    );
    // A later pass before the horizon leaves the batch as it is (no rewrite each pass).
    compact(&log, NOW + 999);
    assert_eq!(records(&log), expected);
    compact(&log, NOW + 1000);
    assert_eq!(records(&log), [expected[0].clone(), expected[2].clone()]);
}

#[derive(Clone, Debug)]
enum Step {
    /// Move the clock by this many ms, then compact.
    Compact(i64),
    /// Close and open the log again.
    Reopen,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Over random clock advances, passes and reopens: a tombstone (with any timestamp, past or
    /// future) is there for a reader from offset 0 at every pass before the first pass's time
    /// plus `delete_retention_ms`, and gone at every pass from then on.
    #[test]
    fn a_tombstone_lives_exactly_its_retention_after_the_first_pass(
        tombstone_age in -3 * DAY..3 * DAY,
        zstd in any::<bool>(),
        log_append_time in any::<bool>(),
        steps in prop::collection::vec(
            prop_oneof![3 => (0..2_000i64).prop_map(Step::Compact), 1 => Just(Step::Reopen)],
            1..16,
        ),
    ) {
        const RETENTION: i64 = 1000;
        let cfg = (config(RETENTION as u64)).timestamp_type(if log_append_time {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            });
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), cfg.clone()).unwrap();
        append(&log, zstd, NOW - tombstone_age - 1, "k", Some("old"));
        log.roll().unwrap();
        append(&log, zstd, NOW - tombstone_age, "k", None);
        log.roll().unwrap();
        append(&log, zstd, NOW, "other", Some("x"));
        log.roll().unwrap();
        let mut clock = NOW;
        let mut first_pass = None;
        for step in steps.iter().chain([&Step::Compact(0), &Step::Compact(RETENTION)]) {
            match step {
                Step::Reopen => {
                    log.close().unwrap();
                    log = Log::open(dir.path(), cfg.clone()).unwrap();
                }
                Step::Compact(dt) => {
                    clock += dt;
                    compact(&log, clock);
                    let first = *first_pass.get_or_insert(clock);
                    let got = records(&log);
                    let keys: Vec<(u64, Option<String>)> =
                        got.iter().map(|r| (r.0, r.2.clone())).collect();
                    if clock < first + RETENTION {
                        prop_assert_eq!(
                            keys,
                            vec![(1, None), (2, Some("x".to_string()))],
                            "at {} (first pass {})", clock, first
                        );
                        if !log_append_time {
                            prop_assert_eq!(got[0].3, NOW - tombstone_age);
                        }
                    } else {
                        prop_assert_eq!(
                            keys,
                            vec![(2, Some("x".to_string()))],
                            "at {} (first pass {})", clock, first
                        );
                    }
                }
            }
        }
        log.close().unwrap();
    }
}

/// Only the cleaner sets a delete horizon: a batch that arrives with one is refused, else a
/// producer could pick when its tombstones go.
#[test]
fn a_batch_with_a_delete_horizon_is_refused_on_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(1000)).unwrap();
    let mut b = BatchBuilder::new(Compression::None);
    b.append(NOW, Some(b"k"), None, &[]);
    let mut bytes = b.build().unwrap().as_bytes().to_vec();
    bytes[22] |= 0x40; // attributes (Kafka's 21..23, big-endian), bit 6
    let crc = crc32c::crc32c(&bytes[21..]);
    #[allow(clippy::big_endian_bytes)]
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    let batch = riverbed::RecordBatch::from_bytes(bytes).unwrap();
    assert_eq!(batch.as_batch().delete_horizon(), Some(NOW));
    let e = log.append(&batch).unwrap_err();
    assert!(e.to_string().contains("delete horizon"), "{e}");
    assert_eq!(log.high_watermark(), 0);
}
