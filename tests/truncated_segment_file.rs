//! A segment data file cut short by an outside force (a bad restore, a full disk during a copy, a
//! tool that "repaired" it) after a clean close, so below the recovery checkpoint.
//!
//! What the code does deliberately:
//! - the active segment is rescanned (its length no longer covers the checkpoint) and cut at the
//!   end of its last whole batch, which the `RecoveryReport` names; cut into its header, it is
//!   started afresh at its base offset;
//! - a sealed segment is trusted: if its indexes still pass their checks the damage is reported
//!   when a read reaches it (`Corruption`); if an index points past the new end, the index is
//!   rebuilt, and the rebuild's scan fails open with `Corruption` naming the file;
//! - a sealed file shorter than its header fails open with `Corruption`.
//!
//! Nothing may panic, and no read may return records other than those appended at the offsets
//! asked for.

use std::path::Path;

use riverbed::{BatchBuilder, Compression, Error, ErrorKind, Log, LogConfig, RecordBatch};
use tempfile::TempDir;

mod common;
use common::{batches_in, copy_dir, log_path, FILE_HEADER_LEN};

const RECORDS: u64 = 100;

fn config() -> LogConfig {
    common::small_log(2048, 256, 1024)
}

fn ts(offset: u64) -> i64 {
    1_700_000_000_000 + offset as i64 * 10
}

fn value(offset: u64) -> Vec<u8> {
    format!("value-{offset:030}").into_bytes()
}

fn batch(first: u64, n: u64) -> RecordBatch {
    let mut b = BatchBuilder::new(Compression::None);
    for o in first..first + n {
        b.append(ts(o), Some(b"k"), Some(&value(o)), &[]);
    }
    b.build().unwrap()
}

fn fill(log: &Log, until: u64) {
    while log.high_watermark() < until {
        let next = log.high_watermark();
        log.append(&batch(next, (1 + next % 2).min(until - next)))
            .unwrap();
    }
}

fn closed_log() -> (TempDir, Vec<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    fill(&log, RECORDS);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 4, "{bases:?}");
    log.close().unwrap();
    (dir, bases)
}

fn cut(path: &Path, len: usize) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len as u64)
        .unwrap();
}

/// Reads `offset` alone and checks the record; an error if the read failed.
fn read_one(log: &Log, offset: u64) -> Result<(), Error> {
    let views = log.read(offset, 1)?;
    assert_eq!(views.len(), 1, "read({offset})");
    let b = &views[0];
    assert!(
        b.base_offset() <= offset && offset <= b.last_offset(),
        "read({offset}) returned batch {}..={} instead of an error",
        b.base_offset(),
        b.last_offset()
    );
    let records = b.records()?;
    let r = records
        .iter()
        .map(|r| r.unwrap())
        .find(|r| r.offset() == offset)
        .unwrap();
    assert_eq!(r.value(), Some(&value(offset)[..]), "value of {offset}");
    assert_eq!(r.timestamp(), ts(offset));
    Ok(())
}

fn check_prefix(log: &Log, end: u64) {
    assert_eq!(log.high_watermark(), end);
    for o in log.log_start_offset()..end {
        read_one(log, o).unwrap_or_else(|e| panic!("read({o}): {e}"));
    }
    assert!(log.read(end, 100).unwrap().is_empty());
    for o in log.log_start_offset()..end {
        assert_eq!(log.offset_for_timestamp(ts(o)).unwrap(), Some((o, ts(o))));
    }
    assert_eq!(log.offset_for_timestamp(ts(end)).unwrap(), None);
}

fn assert_corruption_in(e: &Error, path: &Path, range: std::ops::Range<u64>, what: &str) {
    let ErrorKind::Corruption {
        path: Some(p),
        position,
        ..
    } = e.kind()
    else {
        panic!("{what}: expected a corruption error naming a file, got {e:?}");
    };
    assert_eq!(p, path, "{what}: {e}");
    assert!(
        range.contains(position),
        "{what}: position {position} not in {range:?}: {e}"
    );
    let text = e.to_string();
    assert!(text.contains(&path.display().to_string()), "{what}: {text}");
}

/// Where to cut the last data file: in the middle of its last batch, at the start of its last
/// batch, in the middle of its first batch, inside the header, right after the header.
fn active_cuts(file: &[u8]) -> Vec<(&'static str, usize, usize, u64)> {
    let batches = batches_in(file);
    let (last_pos, last_base, last_len) = *batches.last().unwrap();
    let (first_pos, first_base, first_len) = batches[0];
    // (what, cut position, where the last whole batch ends, the first offset lost)
    vec![
        (
            "mid last batch",
            last_pos + last_len / 2,
            last_pos,
            last_base,
        ),
        ("start of last batch", last_pos, last_pos, last_base),
        (
            "mid first batch",
            first_pos + first_len / 2,
            first_pos,
            first_base,
        ),
        ("inside the header", 10, FILE_HEADER_LEN, first_base),
        (
            "after the header",
            FILE_HEADER_LEN,
            FILE_HEADER_LEN,
            first_base,
        ),
    ]
}

#[test]
fn active_log_cut_short_is_cut_at_open_and_appends_continue() {
    let (dir, bases) = closed_log();
    let active = *bases.last().unwrap();
    let file = std::fs::read(log_path(dir.path(), active)).unwrap();
    for (what, at, end, lost) in active_cuts(&file) {
        let copy = copy_dir(dir.path());
        let path = log_path(copy.path(), active);
        cut(&path, at);

        let log = Log::open(copy.path(), config()).unwrap_or_else(|e| panic!("{what}: {e}"));
        let report = log.recovery_report().clone();
        match &report.truncation {
            // A cut at a batch boundary leaves nothing torn to report.
            None => assert_eq!(at, end, "{what}: {report:?}"),
            Some(t) => {
                assert_eq!(t.path, path, "{what}");
                assert_eq!(t.offset, lost, "{what}");
                if at >= FILE_HEADER_LEN {
                    assert_eq!(t.position, end as u64, "{what}");
                }
            }
        }
        assert_eq!(log.segment_base_offsets(), bases, "{what}");
        check_prefix(&log, lost);

        fill(&log, lost + 30);
        check_prefix(&log, lost + 30);
        log.close().unwrap();
        let log = Log::open(copy.path(), config()).unwrap();
        assert!(log.recovery_report().truncation.is_none(), "{what}");
        check_prefix(&log, lost + 30);
    }
}

/// Found by the model test (fixed since): the open that cut the log wrote no new recovery
/// checkpoint, and a close with nothing appended wrote none either. The old checkpoint, past the
/// cut, was still on disk: the next open resumed there, found the zeros the file was re-extended
/// with, took them for the clean end of the segment, and the cut offsets were back, unreadable.
#[test]
fn active_log_cut_short_stays_cut_after_a_clean_reopen() {
    let (dir, bases) = closed_log();
    let active = *bases.last().unwrap();
    let file = std::fs::read(log_path(dir.path(), active)).unwrap();
    let cuts = active_cuts(&file)
        .into_iter()
        .filter(|c| c.1 != FILE_HEADER_LEN);
    stays_cut(dir.path(), active, cuts);
}

/// The same when the cut leaves nothing to scan and nothing torn: the file ends right after its
/// header. The open finds an empty segment, scans nothing, reports nothing, and so writes no new
/// checkpoint; the stale one (past the cut) brings the lost offsets back at the next open.
#[test]
fn active_log_cut_to_its_header_stays_cut_after_a_clean_reopen() {
    let (dir, bases) = closed_log();
    let active = *bases.last().unwrap();
    let file = std::fs::read(log_path(dir.path(), active)).unwrap();
    let cuts = active_cuts(&file)
        .into_iter()
        .filter(|c| c.1 == FILE_HEADER_LEN);
    stays_cut(dir.path(), active, cuts);
}

fn stays_cut(
    dir: &Path,
    active: u64,
    cuts: impl Iterator<Item = (&'static str, usize, usize, u64)>,
) {
    for (what, at, _, lost) in cuts {
        let copy = copy_dir(dir);
        cut(&log_path(copy.path(), active), at);
        let log = Log::open(copy.path(), config()).unwrap();
        assert_eq!(log.high_watermark(), lost, "{what}");
        log.close().unwrap();

        let log = Log::open(copy.path(), config()).unwrap();
        assert_eq!(log.high_watermark(), lost, "{what}: cut offsets came back");
        check_prefix(&log, lost);
        fill(&log, lost + 10);
        check_prefix(&log, lost + 10);
    }
}

/// A sealed segment cut in the middle of its last batch, after all its index entries: open
/// succeeds, reads and time lookups of the lost records fail with a corruption error naming the
/// file; everything else still reads, and appends work.
#[test]
fn sealed_log_cut_after_its_index_entries_is_reported_on_read() {
    let (dir, bases) = closed_log();
    for k in [0, bases.len() - 2] {
        let base = bases[k];
        let file = std::fs::read(log_path(dir.path(), base)).unwrap();
        let (last_pos, last_base, last_len) = *batches_in(&file).last().unwrap();
        let at = last_pos + last_len / 2;
        let copy = copy_dir(dir.path());
        let path = log_path(copy.path(), base);
        cut(&path, at);

        let log = Log::open(copy.path(), config()).unwrap();
        assert_eq!(log.high_watermark(), RECORDS);
        assert_eq!(log.segment_base_offsets(), bases);
        let lost = last_base..bases[k + 1];
        for o in 0..RECORDS {
            match read_one(&log, o) {
                Ok(()) => assert!(!lost.contains(&o), "read({o}) of a lost record succeeded"),
                Err(e) => {
                    assert!(lost.contains(&o), "read({o}): {e}");
                    assert_corruption_in(&e, &path, last_pos as u64..at as u64, "read");
                }
            }
            match log.offset_for_timestamp(ts(o)) {
                Ok(found) => {
                    assert!(
                        !lost.contains(&o),
                        "time lookup of a lost record: {found:?}"
                    );
                    assert_eq!(found, Some((o, ts(o))));
                }
                Err(e) => {
                    // A lookup whose answer may lie in the lost records (any at or after them:
                    // their timestamps are unknown) reports the damage rather than guess.
                    assert!(o >= lost.start, "time lookup {o}: {e}");
                    assert_corruption_in(&e, &path, last_pos as u64..at as u64, "lookup");
                }
            }
        }
        let e = log.read(0, 1 << 20).unwrap_err();
        if k == 0 {
            assert_corruption_in(&e, &path, last_pos as u64..at as u64, "read all");
        }
        fill(&log, RECORDS + 5);
        read_one(&log, RECORDS + 4).unwrap();
    }
}

/// A sealed segment cut before some of its index entries: the index fails its checks, the
/// rebuild scans the file and meets the cut: open refuses with a corruption error naming it.
#[test]
fn sealed_log_cut_before_its_index_entries_fails_open() {
    let (dir, bases) = closed_log();
    let file = std::fs::read(log_path(dir.path(), bases[1])).unwrap();
    let batches = batches_in(&file);
    let (pos, _, len) = batches[batches.len() / 3];
    for at in [pos + len / 2, pos + 5, pos + 42] {
        let copy = copy_dir(dir.path());
        let path = log_path(copy.path(), bases[1]);
        cut(&path, at);
        let e = Log::open(copy.path(), config()).unwrap_err();
        assert_corruption_in(&e, &path, pos as u64..at as u64 + 1, "open");
        // Nothing was changed by the failed open: the same error again.
        let e2 = Log::open(copy.path(), config()).unwrap_err();
        assert_eq!(e.to_string(), e2.to_string());
    }
}

#[test]
fn sealed_log_shorter_than_its_header_fails_open() {
    let (dir, bases) = closed_log();
    for at in [0, 1, 10, 23] {
        let copy = copy_dir(dir.path());
        let path = log_path(copy.path(), bases[1]);
        cut(&path, at);
        let e = Log::open(copy.path(), config()).unwrap_err();
        assert_corruption_in(&e, &path, 0..1, &format!("cut to {at} bytes"));
    }
}

/// A sealed segment cut exactly at a batch boundary holds only whole, valid batches, but ends
/// before the offset the next segment starts at. Reads of the lost offsets must fail (or open
/// must), not skip silently to the next segment.
#[test]
fn sealed_log_cut_at_a_batch_boundary_is_not_a_silent_gap() {
    let (dir, bases) = closed_log();
    let file = std::fs::read(log_path(dir.path(), bases[0])).unwrap();
    let batches = batches_in(&file);
    let cuts = [
        batches[batches.len() - 1].0,
        batches[batches.len() - 3].0,
        FILE_HEADER_LEN,
    ];
    for at in cuts {
        let copy = copy_dir(dir.path());
        let path = log_path(copy.path(), bases[0]);
        cut(&path, at);
        let Ok(log) = Log::open(copy.path(), config()) else {
            continue; // refusing to open is an acceptable answer
        };
        let lost = batches.iter().find(|b| b.0 == at).map_or(bases[1], |b| b.1);
        for o in lost..bases[1] {
            let e = read_one(&log, o).expect_err("a lost offset was read");
            assert!(e.is_corruption(), "{e:?}");
        }
        if let Ok(found) = log.offset_for_timestamp(ts(lost)) {
            assert_ne!(
                found,
                Some((bases[1], ts(bases[1]))),
                "time lookup skipped the lost records"
            );
        }
    }
}
