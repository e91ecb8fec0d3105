//! After an unclean stop, the tail of the active segment may hold garbage or a partially written
//! batch. Reopening must cut the log at the end of the last whole, valid batch, say so in the
//! `RecoveryReport` (file and byte position), keep every earlier record intact, and continue
//! appending at the offset after the last batch kept.
//!
//! An unclean stop is simulated by copying the log directory while the `Log` is still open: the
//! copy holds everything appended so far (it is in the page cache) but no clean-close checkpoint,
//! exactly as after the process was killed.

use std::path::Path;

use riverbed::{BatchBuilder, Compression, Log, LogConfig, RecordBatch, Truncation};
use tempfile::TempDir;

mod common;
use common::{batches_in, copy_dir, log_path, FILE_HEADER_LEN};

fn config() -> LogConfig {
    common::small_log(4096, 128, 1024)
}

/// The record with offset `offset`: (timestamp, key, value).
fn record(offset: u64) -> (i64, Vec<u8>, Vec<u8>) {
    let value = format!("value {offset} ").repeat(1 + (offset % 7) as usize);
    (
        1_700_000_000_000 + offset as i64 * 3,
        format!("key-{}", offset % 5).into_bytes(),
        value.into_bytes(),
    )
}

/// A batch of `n` records starting at `first`.
fn batch(first: u64, n: u64) -> RecordBatch {
    let mut b = BatchBuilder::new(Compression::None);
    for o in first..first + n {
        let (ts, k, v) = record(o);
        b.append(ts, Some(&k), Some(&v), &[("o", Some(&o.to_le_bytes()))]);
    }
    b.build().unwrap()
}

/// Appends batches of 1..=3 records until the log holds `until` records.
fn fill(log: &Log, until: u64) {
    while log.high_watermark() < until {
        let next = log.high_watermark();
        let n = (1 + next % 3).min(until - next);
        let info = log.append(&batch(next, n)).unwrap();
        assert_eq!(info.base_offset, next);
    }
}

/// Reads every record from the log start on and checks each against `record`.
fn check_records(log: &Log, expected_next: u64) {
    assert_eq!(log.high_watermark(), expected_next);
    let mut next = log.log_start_offset();
    while next < expected_next {
        let batches = log.read(next, 1000).unwrap();
        assert!(!batches.is_empty(), "read({next}) returned nothing");
        for b in &batches {
            for r in b.records().unwrap().iter() {
                let r = r.unwrap();
                if r.offset() < next {
                    continue;
                }
                assert_eq!(r.offset(), next, "offsets must be contiguous");
                let (ts, k, v) = record(next);
                assert_eq!(r.timestamp(), ts, "timestamp of {next}");
                assert_eq!(r.key(), Some(&k[..]), "key of {next}");
                assert_eq!(r.value(), Some(&v[..]), "value of {next}");
                let headers: Vec<_> = r.headers().map(|h| h.unwrap()).collect();
                assert_eq!(headers, [("o", Some(&next.to_le_bytes()[..]))]);
                next += 1;
            }
        }
    }
    assert_eq!(next, expected_next);
    assert!(log.read(expected_next, 1000).unwrap().is_empty());
}

/// An unclean stop of a log holding `records` records (a few segments): the copy of the
/// directory, the active segment's base, and the end of its data.
fn crashed_log(records: u64) -> (TempDir, u64, usize) {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    fill(&log, records);
    let bases = log.segment_base_offsets();
    assert!(
        bases.len() >= 3,
        "the test wants sealed segments: {bases:?}"
    );
    let copy = copy_dir(dir.path());
    drop(log);
    let active = *bases.last().unwrap();
    let file = std::fs::read(log_path(copy.path(), active)).unwrap();
    let end = batches_in(&file)
        .last()
        .map_or(FILE_HEADER_LEN, |(pos, _, len)| pos + len);
    (copy, active, end)
}

fn write_at(path: &Path, position: usize, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, position as u64).unwrap();
}

fn expect_cut(log: &Log, path: &Path, position: usize, offset: u64) -> Truncation {
    let report = log.recovery_report();
    let t = report
        .truncation
        .clone()
        .unwrap_or_else(|| panic!("no truncation reported: {report:?}"));
    assert_eq!(t.path, path, "{report:?}");
    assert_eq!(t.position, position as u64, "{report:?}");
    assert_eq!(t.offset, offset, "{report:?}");
    assert!(!t.reason.is_empty());
    t
}

/// After the cut: appends continue at `next`, and survive a clean reopen and another crash.
fn continue_after_cut(dir: TempDir, log: Log, next: u64) {
    fill(&log, next + 20);
    check_records(&log, next + 20);
    log.close().unwrap();

    let log = Log::open(dir.path(), config()).unwrap();
    let r = log.recovery_report();
    assert!(r.truncation.is_none(), "{r:?}");
    assert_eq!(r.scanned_bytes, 0, "{r:?}");
    check_records(&log, next + 20);
    fill(&log, next + 30);

    let again = copy_dir(dir.path());
    drop(log);
    let log = Log::open(again.path(), config()).unwrap();
    assert!(
        log.recovery_report().truncation.is_none(),
        "{:?}",
        log.recovery_report()
    );
    check_records(&log, next + 30);
}

#[test]
fn random_garbage_after_the_last_batch_is_cut() {
    for len in [1usize, 11, 12, 13, 43, 100, 1000] {
        let (dir, active, end) = crashed_log(120);
        let path = log_path(dir.path(), active);
        // Pseudo-random, never starting with twelve zero bytes.
        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ len as u64;
        let garbage: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x as u8) | 1
            })
            .collect();
        write_at(&path, end, &garbage);

        let log = Log::open(dir.path(), config()).unwrap();
        expect_cut(&log, &path, end, 120);
        check_records(&log, 120);
        continue_after_cut(dir, log, 120);
    }
}

#[test]
fn plausible_batches_after_the_last_batch_are_cut() {
    let (dir, active, end) = crashed_log(120);
    let path = log_path(dir.path(), active);
    let file = std::fs::read(&path).unwrap();
    let (last_pos, last_base, last_len) = *batches_in(&file).last().unwrap();
    let last = file[last_pos..last_pos + last_len].to_vec();

    // 1: the last batch again: framing and CRC are fine, but its offsets repeat.
    // 2: a batch with the right next offset whose records were not all written.
    // 3: a batch with the right next offset and a flipped bit in its records.
    // 4: a batch header claiming more bytes than a batch may have.
    let mut repeated = last.clone();
    let mut torn = batch(120, 3).as_bytes().to_vec();
    torn[0..8].copy_from_slice(&common::stamped_base_offset(120));
    let torn_len = torn.len();
    torn[torn_len - 10..].fill(0);
    let mut flipped = batch(120, 2).as_bytes().to_vec();
    flipped[0..8].copy_from_slice(&common::stamped_base_offset(120));
    let flipped_len = flipped.len();
    flipped[flipped_len - 5] ^= 0x10;
    let mut huge = batch(120, 1).as_bytes().to_vec();
    huge[0..8].copy_from_slice(&common::stamped_base_offset(120));
    #[allow(clippy::big_endian_bytes)]
    huge[8..12].copy_from_slice(&100_000u32.to_be_bytes());
    repeated[0..8].copy_from_slice(&common::stamped_base_offset(last_base));

    for (i, tail) in [repeated, torn, flipped, huge].iter().enumerate() {
        let copy = copy_dir(dir.path());
        let path = log_path(copy.path(), active);
        write_at(&path, end, tail);
        let log = Log::open(copy.path(), config()).unwrap();
        let t = expect_cut(&log, &path, end, 120);
        eprintln!("case {i}: {}", t.reason);
        check_records(&log, 120);
        continue_after_cut(copy, log, 120);
    }
}

#[test]
fn partially_written_last_batch_is_cut() {
    let (dir, active, _) = crashed_log(121);
    let file = std::fs::read(log_path(dir.path(), active)).unwrap();
    let (last_pos, last_base, last_len) = *batches_in(&file).last().unwrap();
    assert!(last_base > 0 && last_base < 121);

    // The batch was written only up to `written` bytes: the rest of the preallocated file is
    // still zero (a torn write), or the file itself ends there.
    let cuts: Vec<usize> = [
        1,
        4,
        8,
        11,
        12,
        13,
        20,
        42,
        43,
        44,
        last_len / 2,
        last_len - 1,
    ]
    .into_iter()
    .filter(|w| *w < last_len)
    .collect();
    for written in cuts {
        for shorten_file in [false, true] {
            let copy = copy_dir(dir.path());
            let path = log_path(copy.path(), active);
            if shorten_file {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_len((last_pos + written) as u64)
                    .unwrap();
            } else {
                write_at(&path, last_pos + written, &vec![0u8; last_len - written]);
            }
            let log = Log::open(copy.path(), config()).unwrap();
            let what = format!("batch at {last_pos} written up to {written} of {last_len} bytes");
            let unwritten = &file[last_pos + written..last_pos + last_len];
            if !shorten_file && unwritten.iter().all(|b| *b == 0) {
                // The bytes not written were zeros anyway: the batch is whole.
                assert!(log.recovery_report().truncation.is_none(), "{what}");
                check_records(&log, 121);
                continue;
            }
            if file[last_pos..last_pos + written.min(12)]
                .iter()
                .all(|b| *b == 0)
            {
                // Indistinguishable from the zeroed end of the file: nothing to report.
                assert!(log.recovery_report().truncation.is_none(), "{what}");
            } else {
                let t = log.recovery_report().truncation.clone();
                assert!(t.is_some(), "{what}: no truncation reported");
                expect_cut(&log, &path, last_pos, last_base);
            }
            check_records(&log, last_base);
            continue_after_cut(copy, log, last_base);
        }
    }
}

#[test]
fn garbage_in_a_fresh_active_segment_is_cut_at_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    fill(&log, 90);
    log.roll().unwrap();
    let active = *log.segment_base_offsets().last().unwrap();
    assert_eq!(active, 90);
    let copy = copy_dir(dir.path());
    drop(log);

    let path = log_path(copy.path(), active);
    write_at(
        &path,
        FILE_HEADER_LEN,
        b"\xffgarbage where the first batch would be",
    );
    let log = Log::open(copy.path(), config()).unwrap();
    expect_cut(&log, &path, FILE_HEADER_LEN, 90);
    check_records(&log, 90);
    continue_after_cut(copy, log, 90);
}
