//! The files that hold what a partition log knows about producers and transactions, mangled on
//! disk: the `producer-state` snapshot and the per-segment `.txnindex` files (lists of aborted
//! transactions) are caches of what the batch headers say, so flipping bits in them, cutting
//! them short or deleting them must never change what a `read_committed` reader sees; opening
//! rebuilds them. Also: a snapshot left behind by a log that was later cut shorter must not be
//! trusted, and version 1 batches (43-byte header, no producer fields) written by hand still
//! read back.

use std::path::{Path, PathBuf};

use riverbed::{
    AbortedTxn, BatchBuilder, Compression, ConsumerGroupMetadata, FlushPolicy, IsolationLevel, Log,
    LogConfig, OffsetAndMetadata, ProducerFields, ProducerRecord, RecordBatch, Store, TopicConfig,
    TopicPartition,
};
use tempfile::TempDir;

mod common;
use common::{batches_in, copy_dir, copy_tree, log_path, read_all_consumed, Seen, FILE_HEADER_LEN};

const PARTITIONS: u32 = 2;

fn log_config() -> LogConfig {
    LogConfig::default()
        // A few batches per segment, so that aborted transactions land in sealed segments.
        .segment_bytes(700)
        .max_message_bytes(600)
        .segment_ms(None)
        .retention_ms(None)
        .flush(FlushPolicy::Manual)
}

fn parts() -> Vec<TopicPartition> {
    (0..PARTITIONS)
        .map(|p| TopicPartition::new("t", p))
        .collect()
}

fn partition_dir(store_dir: &Path, p: u32) -> PathBuf {
    store_dir.join(format!("t-{p}"))
}

/// A closed store whose partitions hold committed and aborted transactions of two producers,
/// interleaved with plain records, over several sealed segments, and a transaction left open
/// at the end (aborted by the next open).
fn pristine() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let config = TopicConfig::new(PARTITIONS).log(log_config());
    store.create_topic("t", config).unwrap();
    let a = store.transactional_producer("a").unwrap();
    let b = store.transactional_producer("b").unwrap();
    let plain = store.producer();
    let group = ConsumerGroupMetadata::new("g");
    for i in 0..24u32 {
        let (p, other) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        p.begin().unwrap();
        other.begin().unwrap();
        for j in 0..(2 + i % 3) {
            p.send(
                ProducerRecord::new("t")
                    .partition((i + j) % PARTITIONS)
                    .value(format!("txn{i}-{j}")),
            )
            .unwrap();
            other
                .send(
                    ProducerRecord::new("t")
                        .partition(j % PARTITIONS)
                        .value(format!("side{i}-{j}")),
                )
                .unwrap();
            plain
                .send(
                    ProducerRecord::new("t")
                        .partition(j % PARTITIONS)
                        .value(format!("plain{i}-{j}")),
                )
                .unwrap();
        }
        p.send_offsets(
            &group,
            &[(
                TopicPartition::new("in", 0),
                OffsetAndMetadata::new(u64::from(i)),
            )],
        )
        .unwrap();
        // Every third transaction of each kind aborts.
        if i % 3 == 0 {
            p.abort().unwrap();
        } else {
            p.commit().unwrap();
        }
        if i % 4 == 1 {
            other.abort().unwrap();
        } else {
            other.commit().unwrap();
        }
    }
    a.begin().unwrap();
    a.send(ProducerRecord::new("t").partition(0).value("left-open"))
        .unwrap();
    drop((a, b, plain));
    drop(store);
    dir
}

/// What the store shows: per partition, the `read_committed` and the `read_uncommitted`
/// records; the group's offsets.
#[derive(Debug, PartialEq)]
struct View {
    committed: Vec<Vec<Seen>>,
    uncommitted: Vec<Vec<Seen>>,
    offsets: Vec<(TopicPartition, OffsetAndMetadata)>,
}

fn view(store_dir: &Path) -> View {
    let store = common::retry_locked(|| Store::open(store_dir));
    let v = View {
        // Small fetches, so that readers start in the middle of transactions.
        committed: read_all_consumed(&store, &parts(), IsolationLevel::ReadCommitted, 150),
        uncommitted: read_all_consumed(&store, &parts(), IsolationLevel::ReadUncommitted, 1 << 20),
        offsets: store.committed_offsets("g"),
    };
    drop(store);
    v
}

/// What the logs of the partitions know directly: every aborted transaction, the last stable
/// offset, and which `.txnindex` files exist with what bytes.
#[derive(Debug, PartialEq)]
struct LogFacts {
    aborted: Vec<AbortedTxn>,
    lso: u64,
    end: u64,
    txn_indexes: Vec<(String, Vec<u8>)>,
}

fn txn_indexes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txnindex"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Opens the partition log directly; returns its facts and the `.txnindex` files its open
/// reported as rebuilt.
fn log_facts(dir: &Path) -> (LogFacts, Vec<PathBuf>) {
    let log = Log::open(dir, log_config()).unwrap();
    let rebuilt: Vec<PathBuf> = log
        .recovery_report()
        .rebuilt_indexes
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "txnindex"))
        .cloned()
        .collect();
    let read = log
        .read_committed(log.log_start_offset(), usize::MAX)
        .unwrap();
    let facts = LogFacts {
        aborted: read.aborted,
        lso: log.last_stable_offset(),
        end: log.high_watermark(),
        txn_indexes: Vec::new(),
    };
    log.close().unwrap();
    (
        LogFacts {
            txn_indexes: txn_indexes(dir),
            ..facts
        },
        rebuilt,
    )
}

/// Compares two views and names the first difference (the whole views are too long to read).
#[track_caller]
fn assert_same_view(got: &View, expected: &View, what: &str) {
    let show = |r: &Seen| {
        format!(
            "offset {} value {:?}",
            r.0,
            String::from_utf8_lossy(r.2.as_deref().unwrap_or_default())
        )
    };
    for (level, g, e) in [
        ("read_committed", &got.committed, &expected.committed),
        ("read_uncommitted", &got.uncommitted, &expected.uncommitted),
    ] {
        for (p, (g, e)) in g.iter().zip(e).enumerate() {
            if let Some(i) = (0..g.len().max(e.len())).find(|&i| g.get(i) != e.get(i)) {
                panic!(
                    "{what}: a {level} reader of partition {p} sees {} records instead of {}; \
                     the first difference is at index {i}: {} instead of {}",
                    g.len(),
                    e.len(),
                    g.get(i).map_or("nothing".into(), show),
                    e.get(i).map_or("nothing".into(), show),
                );
            }
        }
    }
    assert_eq!(got.offsets, expected.offsets, "{what}: committed offsets");
}

struct Baseline {
    dir: TempDir,
    view: View,
    facts: Vec<LogFacts>,
}

fn baseline() -> Baseline {
    let dir = pristine();
    // The first open aborts the transaction left open; from then on the store is settled.
    let view = view(dir.path());
    let facts: Vec<LogFacts> = (0..PARTITIONS)
        .map(|p| log_facts(&partition_dir(dir.path(), p)).0)
        .collect();
    for (p, f) in facts.iter().enumerate() {
        assert!(
            f.txn_indexes.len() >= 2,
            "partition {p} needs aborts in several sealed segments: {:?}",
            f.txn_indexes.iter().map(|t| &t.0).collect::<Vec<_>>()
        );
        assert!(f.aborted.len() >= 6, "partition {p}: {:?}", f.aborted);
        assert_eq!(f.lso, f.end, "no transaction stays open");
    }
    assert!(dir.path().join("t-0/producer-state").exists());
    // The view is what it was before the files were touched.
    assert!(view.committed.iter().flatten().all(|(_, _, v)| {
        let v = String::from_utf8(v.clone().unwrap()).unwrap();
        !v.starts_with("left-open")
    }));
    Baseline { dir, view, facts }
}

/// Applies `mangle` to partition 0 of a copy of the baseline store; opening the partition log
/// must report as rebuilt exactly `expect_rebuilt` (if given), and the log and the store must
/// then show what the baseline shows, with the `.txnindex` files restored byte for byte.
fn check(base: &Baseline, what: &str, expect_rebuilt: Option<bool>, mangle: impl Fn(&Path)) {
    let copy = copy_tree(base.dir.path());
    let p0 = partition_dir(copy.path(), 0);
    mangle(&p0);
    // Opened as a log first, for its recovery report; then what a user sees, then the files.
    let (facts, rebuilt) = log_facts(&p0);
    assert_same_view(&view(copy.path()), &base.view, what);
    assert_eq!(
        facts.aborted, base.facts[0].aborted,
        "{what}: aborted transactions"
    );
    assert_eq!(
        (facts.lso, facts.end),
        (base.facts[0].lso, base.facts[0].end),
        "{what}"
    );
    assert_eq!(
        facts.txn_indexes, base.facts[0].txn_indexes,
        "{what}: the .txnindex files must be written again as they were"
    );
    if let Some(expected) = expect_rebuilt {
        assert_eq!(
            !rebuilt.is_empty(),
            expected,
            "{what}: rebuilt .txnindex files reported: {rebuilt:?}"
        );
    }
    // And once more, after the repaired files were used for a clean open and close.
    assert_same_view(
        &view(copy.path()),
        &base.view,
        &format!("{what}, second open"),
    );
}

fn flip(path: &Path, at: impl Fn(usize) -> usize, bit: u8) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = at(bytes.len());
    bytes[i] ^= 1 << bit;
    std::fs::write(path, bytes).unwrap();
}

fn cut(path: &Path, len: impl Fn(usize) -> usize) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..len(bytes.len())]).unwrap();
}

fn txn_index_paths(dir: &Path) -> Vec<PathBuf> {
    txn_indexes(dir)
        .into_iter()
        .map(|(name, _)| dir.join(name))
        .collect()
}

#[test]
fn a_damaged_or_missing_producer_snapshot_changes_nothing() {
    let base = baseline();
    let snap = |d: &Path| d.join("producer-state");
    for at in [0usize, 9, 25] {
        check(&base, &format!("snapshot bit flip at {at}"), None, |d| {
            flip(&snap(d), |len| at.min(len - 1), 3)
        });
    }
    check(&base, "snapshot last byte flipped", None, |d| {
        flip(&snap(d), |len| len - 1, 0)
    });
    check(&base, "snapshot middle flipped", None, |d| {
        flip(&snap(d), |len| len / 2, 6)
    });
    for keep in [0usize, 20] {
        check(&base, &format!("snapshot cut to {keep} bytes"), None, |d| {
            cut(&snap(d), |len| keep.min(len))
        });
    }
    check(&base, "snapshot cut by one byte", None, |d| {
        cut(&snap(d), |len| len - 1)
    });
    check(&base, "snapshot deleted", None, |d| {
        std::fs::remove_file(snap(d)).unwrap()
    });
    check(&base, "snapshot replaced by garbage", None, |d| {
        std::fs::write(snap(d), vec![0xAB; 300]).unwrap()
    });
}

#[test]
fn a_damaged_txn_index_is_rebuilt() {
    let base = baseline();
    let first = |d: &Path| txn_index_paths(d)[0].clone();
    let last = |d: &Path| txn_index_paths(d).last().unwrap().clone();
    check(&base, "txnindex header flipped", Some(true), |d| {
        flip(&first(d), |_| 2, 1)
    });
    check(&base, "txnindex base offset flipped", Some(true), |d| {
        flip(&first(d), |_| 9, 0)
    });
    check(
        &base,
        "txnindex entry producer id flipped",
        Some(true),
        |d| flip(&last(d), |_| FILE_HEADER_LEN + 1, 2),
    );
    check(&base, "txnindex entry offsets flipped", Some(true), |d| {
        flip(&first(d), |_| FILE_HEADER_LEN + 9, 0)
    });
    check(&base, "txnindex entry crc flipped", Some(true), |d| {
        flip(&last(d), |len| len - 6, 7)
    });
    check(&base, "txnindex cut mid-entry", Some(true), |d| {
        cut(&first(d), |len| len - 5)
    });
    check(&base, "txnindex cut into its header", Some(true), |d| {
        cut(&first(d), |_| 10)
    });
    check(&base, "every txnindex flipped", Some(true), |d| {
        for p in txn_index_paths(d) {
            flip(&p, |len| len - 10, 4);
        }
    });
}

#[test]
fn a_deleted_txn_index_is_rebuilt() {
    let base = baseline();
    check(&base, "first txnindex deleted", Some(true), |d| {
        std::fs::remove_file(&txn_index_paths(d)[0]).unwrap()
    });
}

#[test]
fn a_txn_index_cut_at_an_entry_boundary_is_rebuilt() {
    // Whole entries gone: every entry left is valid, so only knowing how many there should be
    // tells the damage apart.
    let base = baseline();
    let first = |d: &Path| txn_index_paths(d)[0].clone();
    check(&base, "txnindex cut to its header", Some(true), |d| {
        cut(&first(d), |_| FILE_HEADER_LEN)
    });
    check(&base, "txnindex cut by one entry", Some(true), |d| {
        cut(&first(d), |len| len - 32)
    });
}

#[test]
fn snapshot_and_txn_indexes_all_gone_are_rebuilt() {
    let base = baseline();
    check(
        &base,
        "snapshot and every txnindex deleted",
        Some(true),
        |d| {
            std::fs::remove_file(d.join("producer-state")).unwrap();
            for p in txn_index_paths(d) {
                std::fs::remove_file(p).unwrap();
            }
        },
    );
}

#[test]
fn a_stray_txn_index_for_a_segment_without_aborts_is_removed_or_ignored() {
    // A `.txnindex` that names an aborted transaction the data does not hold must not hide
    // anything once the snapshot cannot vouch for the indexes.
    let base = baseline();
    let copy = copy_tree(base.dir.path());
    let p0 = partition_dir(copy.path(), 0);
    let sealed: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&p0)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        v.sort();
        v.pop(); // the active segment
        v
    };
    let with_index: Vec<PathBuf> = txn_index_paths(&p0);
    let Some(bare) = sealed
        .iter()
        .find(|l| !with_index.contains(&l.with_extension("txnindex")))
    else {
        panic!("the pristine store needs a sealed segment without aborts in partition 0");
    };
    // Copy another segment's index under this name: its entries lie outside this segment.
    std::fs::copy(&with_index[0], bare.with_extension("txnindex")).unwrap();
    std::fs::remove_file(p0.join("producer-state")).unwrap();
    let (facts, _) = log_facts(&p0);
    assert_eq!(facts.aborted, base.facts[0].aborted);
    assert_eq!(facts.txn_indexes, base.facts[0].txn_indexes);
    assert_same_view(&view(copy.path()), &base.view, "stray txnindex");
}

// ---- a snapshot newer than the log ------------------------------------------------------------

/// Segments of 1 MiB: the active one is preallocated, and the tests copy it.
fn small_segments() -> LogConfig {
    LogConfig::default()
        .segment_bytes(1 << 20)
        .max_message_bytes(64 << 10)
        .segment_ms(None)
        .retention_ms(None)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn producer_batch(pid: i64, seq: i32) -> RecordBatch {
    let mut b = BatchBuilder::new(Compression::None);
    b.append(
        now_ms(),
        None,
        Some(format!("p{pid}s{seq}").as_bytes()),
        &[],
    );
    b.producer(ProducerFields {
        producer_id: pid,
        producer_epoch: 0,
        base_sequence: seq,
    });
    b.build().unwrap()
}

#[test]
fn a_snapshot_from_before_a_cut_tail_is_not_trusted_later() {
    // The snapshot written at a clean close describes producer 1 up to sequence 9 (offsets 0..9).
    // Then the data file loses its tail (offsets 5..9: a restore, a torn tail after power loss
    // that kept the fsynced snapshot), and the log goes on with another producer past offset 10
    // before a crash. The old snapshot's offset (10) is now inside the log again, but it
    // describes data that is no longer there: trusting it makes the log acknowledge producer
    // 1's next batch (sequence 5) as a "retry" of a batch that was lost, at an offset that holds
    // producer 2's record — and the batch is never written.
    let config = small_segments();
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), config.clone()).unwrap();
        for seq in 0..10 {
            log.append(&producer_batch(1, seq)).unwrap();
        }
        log.close().unwrap();
    }
    let data = log_path(dir.path(), 0);
    let bytes = std::fs::read(&data).unwrap();
    let batches = batches_in(&bytes);
    assert_eq!(batches.len(), 10);
    let (cut_at, base, _) = batches[5];
    assert_eq!(base, 5);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&data)
        .unwrap()
        .set_len(cut_at as u64)
        .unwrap();

    let log = Log::open(dir.path(), config.clone()).unwrap();
    assert_eq!(log.high_watermark(), 5, "the cut tail is gone");
    for seq in 0..8 {
        log.append(&producer_batch(2, seq)).unwrap();
    }
    assert_eq!(log.high_watermark(), 13);
    // Producer 1 really is at sequence 4 here.
    let crashed = copy_dir(dir.path());
    drop(log);

    let log = Log::open(crashed.path(), config).unwrap();
    assert_eq!(log.high_watermark(), 13);
    let info = log.append(&producer_batch(1, 5)).unwrap();
    assert_eq!(
        info.base_offset, 13,
        "producer 1's sequence 5 was never in this log: it must be appended, not acknowledged \
         at offset {} (which holds another producer's record)",
        info.base_offset
    );
    let at = log.read(info.base_offset, 1 << 20).unwrap();
    let records = at[0].records().unwrap();
    let v = records.iter().next().unwrap().unwrap();
    assert_eq!(v.value(), Some(&b"p1s5"[..]));
}

// ---- version 1 batches ------------------------------------------------------------------------

/// `batch` (as a format 2 batch without producer fields) rewritten as version 1: the same first 43
/// bytes without the 14 bytes of producer fields, magic 1, its length and CRC adjusted.
fn to_v1(batch: &RecordBatch, base_offset: u64, extra_attributes: u16) -> Vec<u8> {
    // This build writes Kafka v2 batches; the format 2 batch an older build wrote for it:
    let v2 = &common::legacy_v2_bytes(batch)[..];
    assert_eq!(v2[12], 2);
    let mut v1 = Vec::with_capacity(v2.len() - 14);
    v1.extend_from_slice(&v2[..43]);
    v1.extend_from_slice(&v2[57..]);
    v1[0..8].copy_from_slice(&base_offset.to_le_bytes());
    let length = (v1.len() - 12) as u32;
    v1[8..12].copy_from_slice(&length.to_le_bytes());
    v1[12] = 1;
    let attributes = u16::from_le_bytes([v1[17], v1[18]]) | extra_attributes;
    v1[17..19].copy_from_slice(&attributes.to_le_bytes());
    let crc = crc32fast::hash(&v1[17..]);
    v1[13..17].copy_from_slice(&crc.to_le_bytes());
    v1
}

fn segment_header(base: u64) -> Vec<u8> {
    let mut h = vec![0u8; FILE_HEADER_LEN];
    h[0..4].copy_from_slice(b"RVBL");
    h[4..6].copy_from_slice(&1u16.to_le_bytes());
    h[8..16].copy_from_slice(&base.to_le_bytes());
    let crc = crc32fast::hash(&h[0..16]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

fn v2_batch(values: &[&str], compression: Compression) -> RecordBatch {
    let mut b = BatchBuilder::new(compression);
    for (i, v) in values.iter().enumerate() {
        b.append(
            1_700_000_000_000 + i as i64,
            Some(b"key"),
            Some(v.as_bytes()),
            &[],
        );
    }
    b.build().unwrap()
}

/// Every record of the log: (offset, value, producer fields, transactional).
fn all_records(log: &Log) -> Vec<(u64, Vec<u8>, ProducerFields, bool)> {
    let mut out = Vec::new();
    let mut next = 0;
    while next < log.high_watermark() {
        for v in log.read(next, 1 << 20).unwrap() {
            let b = v.as_batch();
            for r in v.records().unwrap().iter() {
                let r = r.unwrap();
                out.push((
                    r.offset(),
                    r.value().unwrap().to_vec(),
                    b.producer(),
                    b.is_transactional(),
                ));
            }
            next = v.last_offset() + 1;
        }
    }
    out
}

#[test]
fn hand_written_version_1_batches_read_back_without_a_producer() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = segment_header(0);
    file.extend(to_v1(&v2_batch(&["a", "b"], Compression::None), 0, 0));
    file.extend(to_v1(
        &v2_batch(&["c"], Compression::Zstd { level: 1 }),
        2,
        0,
    ));
    file.extend(to_v1(&v2_batch(&["d", "e", "f"], Compression::None), 3, 0));
    std::fs::write(log_path(dir.path(), 0), &file).unwrap();

    let config = small_segments();
    let expected_v1: Vec<(u64, Vec<u8>, ProducerFields, bool)> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v.as_bytes().to_vec(), ProducerFields::NONE, false))
        .collect();
    {
        let log = Log::open(dir.path(), config.clone()).unwrap();
        assert!(log.recovery_report().truncation.is_none());
        assert_eq!(log.high_watermark(), 6);
        assert_eq!(all_records(&log), expected_v1);
        assert_eq!(
            ProducerFields::NONE,
            ProducerFields {
                producer_id: -1,
                producer_epoch: -1,
                base_sequence: -1
            }
        );
        // Version 2 batches go after them in the same segment, producer batches included.
        log.append(&v2_batch(&["g"], Compression::None)).unwrap();
        let mut b = BatchBuilder::new(Compression::None);
        b.append(1_700_000_000_000, None, Some(b"h"), &[]);
        b.producer(ProducerFields {
            producer_id: 3,
            producer_epoch: 0,
            base_sequence: 0,
        });
        let idem = b.build().unwrap();
        log.append(&idem).unwrap();
        assert_eq!(
            log.append(&idem).unwrap().base_offset,
            7,
            "dedupe next to v1 batches"
        );
        assert_eq!(log.last_stable_offset(), 8);
        log.close().unwrap();
    }
    for crash in [false, true] {
        let copy = copy_dir(dir.path());
        if !crash {
            // Without the snapshot the whole segment, version 1 batches first, is replayed.
            let _ = std::fs::remove_file(copy.path().join("producer-state"));
        }
        let log = Log::open(copy.path(), config.clone()).unwrap();
        let recs = all_records(&log);
        assert_eq!(recs[..6], expected_v1[..]);
        assert_eq!(recs[6].1, b"g");
        assert_eq!(recs[7].1, b"h");
        assert_eq!(recs[7].2.producer_id, 3);
        let read = log.read_committed(0, 1 << 20).unwrap();
        assert_eq!(read.last_stable_offset, 8);
        assert!(read.aborted.is_empty());
        let n: u32 = read.batches.iter().map(|b| b.record_count()).sum();
        assert_eq!(n, 8);
    }
}

#[test]
fn a_version_1_batch_with_transaction_bits_is_refused() {
    // Bits 4 and 5 do not exist in version 1: such a batch at the tail is invalid and cut.
    for bit in [4u16, 5] {
        let dir = tempfile::tempdir().unwrap();
        let mut file = segment_header(0);
        file.extend(to_v1(&v2_batch(&["a"], Compression::None), 0, 0));
        file.extend(to_v1(&v2_batch(&["b"], Compression::None), 1, 1 << bit));
        std::fs::write(log_path(dir.path(), 0), &file).unwrap();
        let log = Log::open(dir.path(), small_segments()).unwrap();
        assert_eq!(log.high_watermark(), 1, "bit {bit}");
        assert!(log.recovery_report().truncation.is_some());
        assert_eq!(log.last_stable_offset(), 1);
    }
}
