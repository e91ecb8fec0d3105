//! Idempotent appends (FORMAT.md section 3.4): a log acknowledges a retry of one of a producer's
//! last five batches with the original offsets and writes nothing, refuses sequence gaps and old
//! epochs, and remembers all of this across a clean reopen (snapshot), a crash (snapshot of the
//! last roll plus a replay of the tail, or no snapshot at all) and the loss of the snapshot file.
//! Also: `ProducerConfig::default().idempotent(true)` producers stamp their batches with distinct ids
//! and consecutive sequences.

use std::path::Path;

use riverbed::{
    AppendInfo, BatchBuilder, Compression, ErrorKind, FlushPolicy, Log, LogConfig, ProducerConfig,
    ProducerFields, ProducerRecord, RecordBatch, Store, TopicConfig,
};

mod common;
use common::copy_dir;

/// Record timestamps: now, so that no producer looks idle long enough to be expired (expiry
/// goes by the batches' timestamps, as in Kafka).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig::default()
        .segment_bytes(segment_bytes)
        .segment_ms(None)
        .retention_ms(None)
        .max_message_bytes(1024.min(segment_bytes as usize - 24))
        .flush(FlushPolicy::Manual)
}

/// A batch of `n` records of producer `pid`/`epoch` starting at sequence `seq`; the values name
/// the sequence numbers, so that a batch written twice would show.
fn batch(pid: i64, epoch: i16, seq: i32, n: u32, transactional: bool) -> RecordBatch {
    let mut b = BatchBuilder::new(Compression::None);
    let ts = now_ms();
    for i in 0..n {
        let v = format!("p{pid}e{epoch}s{}", seq as i64 + i64::from(i));
        b.append(ts, Some(b"k"), Some(v.as_bytes()), &[]);
    }
    b.producer(ProducerFields {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
    })
    .transactional(transactional);
    b.build().unwrap()
}

fn plain(n: u32) -> RecordBatch {
    let mut b = BatchBuilder::new(Compression::None);
    for _ in 0..n {
        b.append(now_ms(), None, Some(b"plain"), &[]);
    }
    b.build().unwrap()
}

/// Every record value of the log, in offset order, with its batch's producer fields.
fn contents(log: &Log) -> Vec<(u64, Vec<u8>, ProducerFields)> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.high_watermark() {
        let views = log.read(next, 1 << 20).unwrap();
        assert!(!views.is_empty());
        for v in &views {
            let fields = v.as_batch().producer();
            for r in v.records().unwrap().iter() {
                let r = r.unwrap();
                if r.offset() >= next {
                    out.push((r.offset(), r.value().unwrap_or_default().to_vec(), fields));
                }
            }
            next = v.last_offset() + 1;
        }
    }
    out
}

#[track_caller]
fn assert_kind(r: riverbed::Result<AppendInfo>, what: &str, ok: impl Fn(&ErrorKind) -> bool) {
    match r {
        Ok(info) => panic!("{what}: expected an error, got {info:?}"),
        Err(e) => assert!(ok(e.kind()), "{what}: unexpected error {e:?}"),
    }
}

#[test]
fn a_retried_batch_gets_its_original_offsets_and_is_not_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(1 << 20)).unwrap();
    log.append(&plain(2)).unwrap();
    let b = batch(7, 0, 0, 3, false);
    let first = log.append(&b).unwrap();
    assert_eq!((first.base_offset, first.last_offset), (2, 4));
    let end = log.high_watermark();
    let before = contents(&log);
    let again = log.append(&b).unwrap();
    assert_eq!(again, first);
    assert_eq!(log.high_watermark(), end);
    assert_eq!(contents(&log), before);
    // Other producers' appends in between do not hide the retry.
    log.append(&plain(1)).unwrap();
    log.append(&batch(8, 0, 0, 1, false)).unwrap();
    assert_eq!(log.append(&b).unwrap(), first);
    assert_eq!(log.high_watermark(), end + 2);
}

/// Appends ten batches of varying sizes for producer 7 and returns where each landed, with the
/// sequence range of each.
fn ten_batches(log: &Log) -> Vec<(RecordBatch, AppendInfo)> {
    let mut seq = 0;
    let mut out = Vec::new();
    for i in 0..10u32 {
        let n = 1 + i % 3;
        let b = batch(7, 0, seq, n, false);
        let info = log.append(&b).unwrap();
        // Interleave another producer so offsets and sequences differ.
        log.append(&plain(1)).unwrap();
        out.push((b, info));
        seq += n as i32;
    }
    out
}

/// What a log that has seen `ten_batches` must do with retries, gaps and the next batch.
fn check_dedupe_state(log: &Log, sent: &[(RecordBatch, AppendInfo)], what: &str) {
    let end = log.high_watermark();
    let before = contents(log);
    for (i, (b, info)) in sent.iter().enumerate().rev().take(5) {
        assert_eq!(
            log.append(b).unwrap(),
            *info,
            "{what}: a retry of batch {i} (one of the last five) must get its original offsets"
        );
    }
    // The sixth-newest is forgotten: a retry of it is out of order, not a duplicate.
    let (oldest, _) = &sent[sent.len() - 6];
    assert_kind(log.append(oldest), what, |k| {
        matches!(k, ErrorKind::OutOfOrderSequence { producer_id: 7, .. })
    });
    let next_seq: i32 = sent.iter().map(|(b, _)| b.record_count() as i32).sum();
    assert_kind(
        log.append(&batch(7, 0, next_seq + 1, 1, false)),
        what,
        |k| {
            matches!(
                k,
                ErrorKind::OutOfOrderSequence { producer_id: 7, expected, found }
                    if *expected == next_seq && *found == next_seq + 1
            )
        },
    );
    assert_kind(log.append(&batch(7, 0, 0, 1, false)), what, |k| {
        matches!(k, ErrorKind::OutOfOrderSequence { .. })
    });
    assert_eq!(
        log.high_watermark(),
        end,
        "{what}: refused batches wrote nothing"
    );
    assert_eq!(
        contents(log),
        before,
        "{what}: refused batches wrote nothing"
    );
    let info = log.append(&batch(7, 0, next_seq, 2, false)).unwrap();
    assert_eq!(
        info.base_offset, end,
        "{what}: the next sequence is appended"
    );
}

#[test]
fn retries_of_the_last_five_batches_are_recognised_and_older_ones_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(1 << 20)).unwrap();
    let sent = ten_batches(&log);
    check_dedupe_state(&log, &sent, "live");
}

#[test]
fn gaps_old_epochs_and_late_epoch_starts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(1 << 20)).unwrap();
    log.append(&batch(3, 0, 0, 2, false)).unwrap();
    let end = log.high_watermark();
    assert_kind(log.append(&batch(3, 0, 5, 1, false)), "gap", |k| {
        matches!(
            k,
            ErrorKind::OutOfOrderSequence {
                producer_id: 3,
                expected: 2,
                found: 5
            }
        )
    });
    // A new epoch starts at sequence 0 and nowhere else.
    assert_kind(
        log.append(&batch(3, 1, 2, 1, false)),
        "new epoch at 2",
        |k| matches!(k, ErrorKind::OutOfOrderSequence { expected: 0, .. }),
    );
    assert_eq!(log.high_watermark(), end);
    log.append(&batch(3, 1, 0, 1, false)).unwrap();
    // The old epoch is fenced now, whatever its sequence, retries of its batches included.
    assert_kind(log.append(&batch(3, 0, 2, 1, false)), "old epoch", |k| {
        matches!(k, ErrorKind::Fenced { .. })
    });
    assert_kind(
        log.append(&batch(3, 0, 0, 2, false)),
        "old epoch retry",
        |k| matches!(k, ErrorKind::Fenced { .. }),
    );
    // A negative sequence is not a producer batch the log can place.
    assert!(log.append(&batch(3, 1, -5, 1, false)).is_err());
    assert_eq!(log.high_watermark(), end + 1);
    // The new epoch goes on from where it is.
    log.append(&batch(3, 1, 1, 1, false)).unwrap();
    assert_eq!(log.high_watermark(), end + 2);
}

#[test]
fn sequences_wrap_from_i32_max_to_zero() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(1 << 20)).unwrap();
    let b = batch(4, 0, i32::MAX - 1, 3, false); // sequences MAX-1, MAX, 0
    let info = log.append(&b).unwrap();
    assert_eq!(log.append(&b).unwrap(), info);
    assert_kind(
        log.append(&batch(4, 0, 0, 1, false)),
        "reused sequence",
        |k| matches!(k, ErrorKind::OutOfOrderSequence { expected: 1, .. }),
    );
    log.append(&batch(4, 0, 1, 1, false)).unwrap();
}

#[test]
fn a_non_transactional_batch_inside_the_producers_open_transaction_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(1 << 20)).unwrap();
    log.append(&batch(5, 0, 0, 1, true)).unwrap();
    assert_eq!(log.last_stable_offset(), 0);
    let end = log.high_watermark();
    assert!(log.append(&batch(5, 0, 1, 1, false)).is_err());
    assert_eq!(log.high_watermark(), end);
    // Transactional batches go on, and the transaction keeps the last stable offset at its
    // start.
    log.append(&batch(5, 0, 1, 1, true)).unwrap();
    assert_eq!(log.last_stable_offset(), 0);
    // Control batches are the coordinator's, never a user's.
    let mut marker = batch(5, 0, -1, 1, true).as_bytes().to_vec();
    // Kafka's layout: attributes 21..23 (big-endian, bit 5 in the low byte), CRC-32C at 17..21.
    marker[22] |= 1 << 5;
    let crc = crc32c::crc32c(&marker[21..]);
    #[allow(clippy::big_endian_bytes)]
    marker[17..21].copy_from_slice(&crc.to_be_bytes());
    if let Ok(b) = RecordBatch::from_bytes(marker) {
        assert!(log.append(&b).is_err());
    }
    assert_eq!(log.last_stable_offset(), 0);
}

/// Runs `ten_batches` on a log with small segments (so it rolls and snapshots along the way),
/// lets `reopen` produce the directory to open, and checks the dedupe state there.
fn survives(what: &str, reopen: impl FnOnce(Log, &Path) -> tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(400)).unwrap();
    let sent = ten_batches(&log);
    assert!(log.segment_count() > 2, "the log must have rolled");
    let to = reopen(log, dir.path());
    let log = Log::open(to.path(), config(400)).unwrap();
    check_dedupe_state(&log, &sent, what);
    // And once more after a clean close of the recovered log.
    log.close().unwrap();
    let log = Log::open(to.path(), config(400)).unwrap();
    let end = log.high_watermark();
    let (b, info) = &sent[9];
    assert_eq!(log.append(b).unwrap(), *info, "{what}, reopened again");
    assert_eq!(log.high_watermark(), end);
}

#[test]
fn dedupe_state_survives_a_clean_reopen() {
    survives("clean reopen", |log, dir| {
        log.close().unwrap();
        assert!(dir.join("producer-state").exists());
        copy_dir(dir)
    });
}

#[test]
fn dedupe_state_survives_a_crash() {
    // Copying the files of the open log gives what a killed process leaves: the snapshot of the
    // last roll, and a tail after it that must be replayed.
    survives("crash", |log, dir| {
        let copy = copy_dir(dir);
        drop(log);
        copy
    });
}

#[test]
fn dedupe_state_survives_a_crash_before_any_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(1 << 20)).unwrap();
    let sent = ten_batches(&log);
    let copy = copy_dir(dir.path());
    drop(log);
    assert!(!copy.path().join("producer-state").exists());
    let log = Log::open(copy.path(), config(1 << 20)).unwrap();
    check_dedupe_state(&log, &sent, "crash without snapshot");
}

#[test]
fn dedupe_state_survives_the_loss_of_the_snapshot() {
    survives("snapshot deleted", |log, dir| {
        log.close().unwrap();
        std::fs::remove_file(dir.join("producer-state")).unwrap();
        copy_dir(dir)
    });
}

#[test]
fn dedupe_state_survives_a_damaged_snapshot() {
    survives("snapshot damaged", |log, dir| {
        log.close().unwrap();
        let path = dir.join("producer-state");
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x04;
        std::fs::write(&path, bytes).unwrap();
        copy_dir(dir)
    });
}

#[test]
fn fencing_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), config(1 << 20)).unwrap();
        log.append(&batch(9, 0, 0, 1, false)).unwrap();
        log.append(&batch(9, 2, 0, 1, false)).unwrap();
        log.close().unwrap();
    }
    for crash in [false, true] {
        let log = Log::open(dir.path(), config(1 << 20)).unwrap();
        let end = log.high_watermark();
        assert_kind(log.append(&batch(9, 1, 0, 1, false)), "old epoch", |k| {
            matches!(k, ErrorKind::Fenced { .. })
        });
        assert_eq!(log.high_watermark(), end);
        if crash {
            let copy = copy_dir(dir.path());
            drop(log);
            let log = Log::open(copy.path(), config(1 << 20)).unwrap();
            assert_kind(log.append(&batch(9, 1, 0, 1, false)), "old epoch", |k| {
                matches!(k, ErrorKind::Fenced { .. })
            });
        } else {
            log.close().unwrap();
        }
    }
}

#[test]
fn idempotent_producers_stamp_distinct_ids_and_consecutive_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(2)).unwrap();
    let idempotent = || {
        store
            .producer_with(ProducerConfig::default().idempotent(true))
            .unwrap()
    };
    let a = idempotent();
    let b = idempotent();
    let plain = store.producer();
    assert_eq!(plain.producer_id(), None);
    let (pa, pb) = (a.producer_id().unwrap(), b.producer_id().unwrap());
    assert_ne!(pa, pb);
    assert!(pa >= 0 && pb >= 0);
    for i in 0..6u32 {
        a.send(
            ProducerRecord::new("t")
                .partition(i % 2)
                .value(format!("a{i}")),
        )
        .unwrap();
        b.send(ProducerRecord::new("t").partition(0).value(format!("b{i}")))
            .unwrap();
        plain
            .send(ProducerRecord::new("t").partition(0).value(format!("x{i}")))
            .unwrap();
    }
    drop((a, b, plain));
    drop(store);
    // Ids survive a reopen too: a producer made after it must not reuse one.
    let store = Store::open(dir.path()).unwrap();
    let c = store
        .producer_with(ProducerConfig::default().idempotent(true))
        .unwrap();
    let pc = c.producer_id().unwrap();
    assert!(
        pc != pa && pc != pb,
        "producer id {pc} reused after a reopen"
    );
    c.send(ProducerRecord::new("t").partition(1).value("c0"))
        .unwrap();
    drop(c);
    drop(store);

    let mut seen: std::collections::HashMap<(i64, u32), Vec<i32>> = Default::default();
    for p in 0..2u32 {
        let log = Log::open(dir.path().join(format!("t-{p}")), LogConfig::default()).unwrap();
        for (_, value, fields) in contents(&log) {
            let v = String::from_utf8(value).unwrap();
            let expected_pid = match &v[..1] {
                "a" => pa,
                "b" => pb,
                "c" => pc,
                _ => -1,
            };
            assert_eq!(fields.producer_id, expected_pid, "producer of {v}");
            if expected_pid < 0 {
                assert_eq!((fields.producer_epoch, fields.base_sequence), (-1, -1));
            } else {
                assert_eq!(fields.producer_epoch, 0);
                seen.entry((expected_pid, p))
                    .or_default()
                    .push(fields.base_sequence);
            }
        }
    }
    // One record per send: each partition's sequences of a producer are 0, 1, 2, ...
    for ((pid, p), seqs) in &seen {
        let expected: Vec<i32> = (0..seqs.len() as i32).collect();
        assert_eq!(
            seqs, &expected,
            "sequences of producer {pid} in partition {p}"
        );
    }
    assert_eq!(seen[&(pa, 0)].len(), 3);
    assert_eq!(seen[&(pa, 1)].len(), 3);
    assert_eq!(seen[&(pb, 0)].len(), 6);
    assert_eq!(seen[&(pc, 1)].len(), 1);
}
