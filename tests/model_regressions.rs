//! Shrunk failing cases of the model test (`tests/model.rs`), replayed step by step against the
//! `Log` API. Each test spells out the operation sequence the model printed.
//!
//! The first three came from one cause, fixed since (commit a460503, "Recovery syncs what it kept
//! and moves the recovery point"): an open that recovered something (scanned after a crash, or
//! cut a damaged tail) wrote no new recovery checkpoint, because `Inner::sync_locked` skipped a
//! checkpoint equal to the last one and `Log::open` initialised "the last one" to the state it
//! had just recovered rather than to what was on disk; a close with nothing appended skipped it
//! too. The fourth is what is left of it: an open that finds less than the checkpoint on disk
//! claims, without scanning or cutting anything, still keeps that checkpoint.

use riverbed::{BatchBuilder, Compression, Log, LogConfig};

mod common;
use common::copy_dir;

/// The configuration of the shrunk cases: `Cfg { segment_bytes: 2048, index_interval_bytes: 64,
/// max_message_bytes: 700, flush: Manual, no retention, no segment_ms, default checkpoint bytes,
/// create time }` (the shrunk cases differ only in sizes, which do not matter here).
fn config() -> LogConfig {
    common::small_log(2048, 64, 700)
}

/// `Append { records: [one record] }` (its content does not matter).
fn append_one(log: &Log) {
    let mut b = BatchBuilder::new(Compression::None);
    b.append(1_700_000_000_000, None, Some(b""), &[]);
    let info = log.append(&b.build().unwrap()).unwrap();
    assert_eq!(info.base_offset, 0);
}

/// Found by model testing.
///
/// ops = [Read { from: Valid(0), max_bytes: 1 }], then the final clean `Reopen`.
///
/// A new, empty log is opened and closed: no recovery checkpoint was ever written (open skipped
/// it as "unchanged", close as "nothing appended"), so the next open found none. FORMAT.md
/// section 5: the checkpoint is written at close and after recovery.
#[test]
fn new_log_closed_cleanly_reopens_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    assert!(log.read(0, 1).unwrap().is_empty());
    log.close().unwrap();

    let log = Log::open(dir.path(), config()).unwrap();
    let r = log.recovery_report();
    assert!(r.checkpoint_used, "clean reopen without checkpoint: {r:?}");
    assert_eq!(r.scanned_bytes, 0);
}

/// Found by model testing.
///
/// ops = [Append { 1 record }, CrashReopen], then the final clean `Reopen`.
///
/// After the crash the copy is scanned (50 bytes) and recovered, but no checkpoint was written
/// (FORMAT.md section 6, step 5: "If anything was scanned, it is synced and a new checkpoint
/// written"), and the clean close that followed wrote none either: the next open after a clean
/// close scanned again (README: "After a clean close nothing is scanned").
#[test]
fn clean_close_after_crash_recovery_leaves_nothing_to_scan() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    append_one(&log);

    // CrashReopen: copy the directory while the log is open, continue with the copy.
    let copy = copy_dir(dir.path());
    let log2 = Log::open(copy.path(), config()).unwrap();
    drop(log);
    assert!(log2.recovery_report().scanned_bytes > 0);
    assert_eq!(log2.high_watermark(), 1);

    // Reopen.
    log2.close().unwrap();
    let log3 = Log::open(copy.path(), config()).unwrap();
    let r = log3.recovery_report();
    assert!(r.checkpoint_used, "clean reopen without checkpoint: {r:?}");
    assert_eq!(r.scanned_bytes, 0, "a clean reopen scanned: {r:?}");
    assert_eq!(log3.high_watermark(), 1);
}

/// Found by model testing.
///
/// ops = [Append { 1 record }, TruncateTail { crash: false, cut: Header(0) }], then the final
/// clean `Reopen`.
///
/// The last data file is cut to 0 bytes after a clean close. The open that follows reports the
/// cut and starts the segment afresh (next offset 0), but left the old checkpoint (next offset
/// 1, position 24 + batch) on disk, and the clean close skipped writing one. The next open resumed
/// from that checkpoint, found zeros in the re-extended file, took them for the end of the
/// segment, and the log claimed offset 0 again, whose bytes are gone: reading it failed.
#[test]
fn cut_log_stays_cut_after_a_clean_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    append_one(&log);

    // TruncateTail { crash: false, cut: Header(0) }: close, cut the last .log to 0 bytes, open.
    log.close().unwrap();
    let path = dir.path().join(format!("{:020}.log", 0));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    let t = log.recovery_report().truncation.clone().unwrap();
    assert_eq!(t.path, path);
    assert_eq!(t.offset, 0);
    assert_eq!(log.high_watermark(), 0);

    // Reopen.
    log.close().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    assert_eq!(log.high_watermark(), 0, "the cut offset came back");
    assert!(log.read(0, 1 << 20).unwrap().is_empty());
}

/// Found by model testing.
///
/// ops = [Append { 1 record }, Append { 1 record }, Reopen,
///        TruncateTail { crash: false, cut: Data(Index(16802974799814641076)) }],
/// then the final clean `Reopen`. (Each record: key None, value None, no headers; each batch is
/// 68 bytes in segment format 3 (64 in format 2, 50 in the version 1 format the case was found
/// with), so the data ends at 160 (152 in format 2) and the
/// cut keeps 32 bytes: the header and the first 8
/// bytes, all zero, of the batch at offset 0.)
///
/// The open after the cut finds the checkpoint (next offset 2, position 152) beyond the end of
/// the file, so it scans from byte 24, where it sees zeros: the clean end of an empty segment.
/// Nothing was scanned and nothing reported cut, so no checkpoint is written and the old one
/// stays. The close writes none either (nothing appended). The next open resumes at position 152
/// of the re-extended file, finds zeros there too, and the log claims offsets 0 and 1 again,
/// whose bytes are gone: reading them fails with a corruption error. The same happens whenever
/// the last data file loses all its batches (cut to exactly its 24-byte header, for one).
#[test]
fn data_file_cut_before_its_first_batch_stays_cut_after_a_clean_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    for expected in 0..2u64 {
        let mut b = BatchBuilder::new(Compression::None);
        b.append(1_700_000_000_000, None, None, &[]);
        let batch = b.build().unwrap();
        assert_eq!(batch.len(), 68);
        assert_eq!(log.append(&batch).unwrap().base_offset, expected);
    }
    // Reopen.
    log.close().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();

    // TruncateTail: close, keep the first 32 bytes of the last data file, open.
    log.close().unwrap();
    let path = dir.path().join(format!("{:020}.log", 0));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(32)
        .unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    assert_eq!(log.high_watermark(), 0);
    assert!(log.read(0, 1 << 20).unwrap().is_empty());

    // Reopen.
    log.close().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    assert_eq!(log.high_watermark(), 0, "the cut offsets came back");
    assert!(log.read(0, 1 << 20).unwrap().is_empty());
}

/// Found by model testing: `Append { records: [Rec { ts: Wild(0) (i64::MIN), .. }] }, Roll`,
/// then a clean reopen rebuilt segment 0's indexes on every open. A segment whose only
/// timestamp is `i64::MIN` got no time index entry (the entry was written only when the maximum
/// grew above `i64::MIN`), and a sealed non-empty segment without one counts as damaged.
#[test]
fn segment_whose_only_timestamp_is_i64_min_keeps_its_time_entry() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    let mut b = BatchBuilder::new(Compression::None);
    b.append(i64::MIN, None, None, &[]);
    log.append(&b.build().unwrap()).unwrap();
    log.roll().unwrap();
    log.close().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    let r = log.recovery_report();
    assert!(r.rebuilt_indexes.is_empty(), "{r:?}");
    assert_eq!(r.scanned_bytes, 0, "{r:?}");
    assert_eq!(
        log.offset_for_timestamp(i64::MIN).unwrap(),
        Some((0, i64::MIN))
    );
    assert_eq!(log.offset_for_timestamp(i64::MIN + 1).unwrap(), None);
}
