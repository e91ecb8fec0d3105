//! A bit flipped inside a sealed segment after a clean close (bit rot, a stray write). Sealed
//! segments are trusted at open and not scanned, so the damage is found on read: a read that
//! reaches the bad batch returns `ErrorKind::Corruption` naming the `.log` file and a byte
//! position, reads of other batches still work, and nothing returns wrong data or panics.

use std::path::Path;

use riverbed::{
    BatchBuilder, BatchView, Compression, Error, ErrorKind, Log, LogConfig, RecordBatch,
};
use tempfile::TempDir;

mod common;
use common::{copy_dir, log_path, FILE_HEADER_LEN};

fn config() -> LogConfig {
    common::small_log(2048, 256, 1024)
}

/// Record `offset`: (timestamp, key, value). Timestamps grow by 10 per offset.
fn record(offset: u64) -> (i64, Vec<u8>, Vec<u8>) {
    (
        1_700_000_000_000 + offset as i64 * 10,
        format!("k{}", offset % 3).into_bytes(),
        format!("value of record {offset}").into_bytes(),
    )
}

fn batch(first: u64, n: u64) -> RecordBatch {
    let mut b = BatchBuilder::new(Compression::None);
    for o in first..first + n {
        let (ts, k, v) = record(o);
        b.append(ts, Some(&k), Some(&v), &[]);
    }
    b.build().unwrap()
}

/// One batch as laid out in a data file.
#[derive(Clone, Copy, Debug)]
struct Placed {
    pos: usize,
    len: usize,
    base: u64,
    last: u64,
}

/// The batches of a format 3 data file (Kafka v2 batches, big-endian; FORMAT.md 3.1).
#[allow(clippy::big_endian_bytes)]
fn batches_in(file: &[u8]) -> Vec<Placed> {
    let mut out = Vec::new();
    let mut pos = FILE_HEADER_LEN;
    while pos + 61 <= file.len() && file[pos..pos + 12].iter().any(|b| *b != 0) {
        let base = u64::from_be_bytes(file[pos..pos + 8].try_into().unwrap());
        let len = u32::from_be_bytes(file[pos + 8..pos + 12].try_into().unwrap()) as usize + 12;
        let delta = u32::from_be_bytes(file[pos + 23..pos + 27].try_into().unwrap());
        out.push(Placed {
            pos,
            len,
            base,
            last: base + u64::from(delta),
        });
        pos += len;
    }
    out
}

/// A cleanly closed log of 200 records in batches of 1..=4 (several sealed segments), and the
/// batches of its first segment.
fn closed_log() -> (TempDir, Vec<Placed>) {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    while log.high_watermark() < 200 {
        let next = log.high_watermark();
        let n = (1 + next % 4).min(200 - next);
        log.append(&batch(next, n)).unwrap();
    }
    assert!(log.segment_count() >= 3, "{:?}", log.segment_base_offsets());
    log.close().unwrap();
    let file = std::fs::read(log_path(dir.path(), 0)).unwrap();
    let placed = batches_in(&file);
    assert_eq!(
        placed.iter().map(|b| b.len).sum::<usize>() + FILE_HEADER_LEN,
        file.len(),
        "a sealed segment is cut to its last batch"
    );
    (dir, placed)
}

fn flip(path: &Path, position: usize, mask: u8) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[position] ^= mask;
    std::fs::write(path, bytes).unwrap();
}

/// Checks that `e` is a corruption error in `path` at a byte of `bad` (or, with `exact` false,
/// at or after it: a bad length is noticed where the batch after it should start).
fn assert_names_bad_batch(e: &Error, path: &Path, bad: &Placed, exact: bool, what: &str) {
    let ErrorKind::Corruption {
        path: Some(p),
        position,
        ..
    } = e.kind()
    else {
        panic!("{what}: expected a corruption error naming a file, got {e:?}");
    };
    assert_eq!(p, path, "{what}: {e}");
    let end = if exact {
        (bad.pos + bad.len) as u64
    } else {
        std::fs::metadata(path).unwrap().len()
    };
    assert!(
        (bad.pos as u64..end).contains(position),
        "{what}: position {position} is outside the bad batch at {}..{}: {e}",
        bad.pos,
        bad.pos + bad.len
    );
    let text = e.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains(&format!("byte {position}")), "{text}");
}

/// The batches a read of `from` with `max_bytes` must return (the first always, the next ones
/// while they fit), given every batch of the log in order.
fn expected_read(all: &[Placed], from: u64, max_bytes: usize) -> Vec<Placed> {
    let mut out = Vec::new();
    let mut used = 0;
    for b in all.iter().filter(|b| b.last >= from) {
        if used > 0 && used + b.len > max_bytes {
            break;
        }
        used += b.len;
        out.push(*b);
        if used >= max_bytes {
            break;
        }
    }
    out
}

/// Checks that a successful read returned exactly the original batches and records.
fn assert_original(views: &[BatchView], expected: &[Placed], what: &str) {
    assert_eq!(
        views.iter().map(|v| v.base_offset()).collect::<Vec<_>>(),
        expected.iter().map(|b| b.base).collect::<Vec<_>>(),
        "{what}: wrong batches"
    );
    for v in views {
        let mut offset = v.base_offset();
        for r in v.records().unwrap().iter() {
            let r = r.unwrap();
            let (ts, k, val) = record(offset);
            assert_eq!(r.offset(), offset, "{what}");
            assert_eq!(r.timestamp(), ts, "{what}: timestamp of {offset}");
            assert_eq!(r.key(), Some(&k[..]), "{what}: key of {offset}");
            assert_eq!(r.value(), Some(&val[..]), "{what}: value of {offset}");
            offset += 1;
        }
        assert_eq!(offset, v.last_offset() + 1, "{what}");
    }
}

/// All batches of the log (every segment), as placed in their files.
fn all_batches(dir: &Path, bases: &[u64]) -> Vec<Placed> {
    bases
        .iter()
        .flat_map(|b| batches_in(&std::fs::read(log_path(dir, *b)).unwrap()))
        .collect()
}

/// Flips `mask` at byte `at` of the first segment and checks every read and time lookup: each
/// either gives the original answer or, if it needs the bad batch, a corruption error naming it.
/// Returns the number of reads that failed.
fn flip_and_check(original: &Path, bad: &Placed, at: usize, mask: u8, strict: bool) -> usize {
    let copy = copy_dir(original);
    let path = log_path(copy.path(), 0);
    flip(&path, at, mask);
    let what = format!(
        "bit 0x{mask:02x} of byte {at} (batch {}..={})",
        bad.base, bad.last
    );

    let log = Log::open(copy.path(), config())
        .unwrap_or_else(|e| panic!("{what}: open must not scan a sealed segment: {e}"));
    let report = log.recovery_report();
    assert_eq!(report.scanned_bytes, 0, "{what}: {report:?}");
    assert!(report.truncation.is_none(), "{what}: {report:?}");
    assert_eq!(log.high_watermark(), 200, "{what}");

    let bases = log.segment_base_offsets();
    let all = all_batches(original, &bases);
    let first_segment_end = bases[1];
    let mut failures = 0;
    for from in 0..200u64 {
        for max_bytes in [1usize, 300, 1 << 20] {
            let expected = expected_read(&all, from, max_bytes);
            let case = format!("{what}: read({from}, {max_bytes})");
            // A read walks the first segment from an index entry at or before `from`, so it may
            // pass the bad batch even if it does not return it, and it parses the header of the
            // batch after the last one it returns.
            let last_index = all
                .iter()
                .position(|b| b.base == expected.last().unwrap().base)
                .unwrap();
            let may_fail = from < first_segment_end
                && all[..=(last_index + 1).min(all.len() - 1)]
                    .iter()
                    .any(|b| b.base == bad.base);
            match log.read(from, max_bytes) {
                Ok(views) => {
                    // What came back is original. It may stop short only right before the bad
                    // batch (if that batch's length now says it does not fit).
                    let n = views.len();
                    assert!(n >= 1 && n <= expected.len(), "{case}: {n} batches");
                    assert!(
                        n == expected.len() || expected[n].base == bad.base,
                        "{case} stopped after {n} batches of {}",
                        expected.len()
                    );
                    assert!(
                        expected[..n].iter().all(|b| b.base != bad.base),
                        "{case} returned the bad batch without error"
                    );
                    assert_original(&views, &expected[..n], &case);
                }
                Err(e) => {
                    assert!(
                        may_fail,
                        "{case} failed though it does not reach the bad batch: {e}"
                    );
                    if strict {
                        assert_names_bad_batch(&e, &path, bad, false, &case);
                    } else {
                        assert!(e.is_corruption(), "{case}: {e:?}");
                    }
                    failures += 1;
                }
            }
        }
    }
    for offset in 0..200u64 {
        let ts = record(offset).0;
        for t in [ts, ts - 5] {
            match log.offset_for_timestamp(t) {
                Ok(found) => assert_eq!(found, Some((offset, ts)), "{what}: time lookup {t}"),
                Err(e) => {
                    // A lookup may have to walk over the bad batch (its first candidate is at or
                    // after it, and a damaged segment is searched rather than skipped): it then
                    // reports the damage instead of guessing.
                    assert!(
                        offset >= bad.base,
                        "{what}: time lookup {t} failed though it does not reach the bad batch: {e}"
                    );
                    assert!(e.is_corruption(), "{what}: {e:?}");
                }
            }
        }
    }
    failures
}

#[test]
fn flipped_bit_in_records_is_reported_on_read() {
    let (dir, placed) = closed_log();
    let bad = placed[placed.len() / 2];
    let copy = copy_dir(dir.path());
    let copy_path = log_path(copy.path(), 0);
    // A byte in the middle of the batch's records.
    flip(&copy_path, bad.pos + 61 + (bad.len - 61) / 2, 0x04);

    let log = Log::open(copy.path(), config()).unwrap();
    assert_eq!(log.recovery_report().scanned_bytes, 0);
    let e = log.read(bad.base, 1 << 20).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Corruption { .. }), "{e:?}");
    assert_names_bad_batch(&e, &copy_path, &bad, true, "read of the bad batch");
    let e = log.read(bad.last, 1).unwrap_err();
    assert_names_bad_batch(
        &e,
        &copy_path,
        &bad,
        true,
        "read of the bad batch's last record",
    );
    // A read from before it that would include it fails too; one that stops before it works.
    let e = log.read(0, 1 << 20).unwrap_err();
    assert_names_bad_batch(&e, &copy_path, &bad, true, "read of everything");
    let before = log.read(placed[0].base, 1).unwrap();
    assert_eq!(before.len(), 1);
    // Everything after it still reads.
    let after = log.read(bad.last + 1, 1 << 20).unwrap();
    assert_eq!(after.first().unwrap().base_offset(), bad.last + 1);
    assert_eq!(after.last().unwrap().last_offset(), 199);
    // Time lookups: into the bad batch fails; past it, either the right answer (when the time
    // index starts the search after the bad batch) or the damage is reported (when the search
    // must walk over it: its timestamps are unknown), never a wrong answer.
    let e = log.offset_for_timestamp(record(bad.base).0).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Corruption { .. }), "{e:?}");
    let t = record(bad.last + 1).0;
    match log.offset_for_timestamp(t) {
        Ok(found) => assert_eq!(found, Some((bad.last + 1, t))),
        Err(e) => {
            assert_names_bad_batch(&e, &copy_path, &bad, true, "time lookup past the bad batch")
        }
    }
    // Appends are unaffected.
    log.append(&batch(200, 2)).unwrap();
    assert_eq!(log.high_watermark(), 202);
    drop(log);
    // The original, untouched, is fine.
    let log = Log::open(dir.path(), config()).unwrap();
    assert_eq!(log.read(bad.base, 1).unwrap()[0].base_offset(), bad.base);

    // Every read and lookup, in detail.
    let failures = flip_and_check(dir.path(), &bad, bad.pos + 50, 0x01, true);
    assert!(failures > 0);
}

/// Every bit flip in the CRC-covered part of a batch (attributes to the end), and in the CRC,
/// length, partition leader epoch (outside the CRC; the log stamps 0 and readers check it) and
/// magic fields, is caught.
#[test]
fn every_flip_in_checked_bytes_is_reported_not_returned() {
    let (dir, placed) = closed_log();
    let bad = placed[placed.len() / 2];
    // Bytes 8.. of the batch: length, leader epoch, magic, CRC, and everything the CRC covers.
    for offset_in_batch in 8..bad.len {
        let mask = 1u8 << (offset_in_batch % 8);
        let failures = flip_and_check(dir.path(), &bad, bad.pos + offset_in_batch, mask, false);
        assert!(failures > 0, "byte {offset_in_batch}: nothing noticed");
    }
    // And the most significant bit of some bytes, where a length or timestamp jumps far
    // (Kafka's layout: length 8..12, last offset delta 23..27, base timestamp 27..35, max
    // timestamp 35..43, record count 57..61, all big-endian).
    for offset_in_batch in [8, 9, 11, 24, 26, 34, 42, 60] {
        let failures = flip_and_check(dir.path(), &bad, bad.pos + offset_in_batch, 0x80, false);
        assert!(failures > 0, "byte {offset_in_batch}: nothing noticed");
    }
}

/// The same, asserting that every error names the `.log` file and a byte of the bad batch.
#[test]
fn every_flip_in_checked_bytes_is_blamed_on_the_data_file() {
    let (dir, placed) = closed_log();
    let bad = placed[placed.len() / 2];
    for offset_in_batch in 8..bad.len {
        let mask = 1u8 << (offset_in_batch % 8);
        flip_and_check(dir.path(), &bad, bad.pos + offset_in_batch, mask, true);
    }
}

/// The base offset is not covered by the CRC (the log stamps it at append time), so a flip there
/// must be caught by the offset continuity the format requires.
#[test]
fn every_flip_in_the_base_offset_is_reported_not_returned() {
    let (dir, placed) = closed_log();
    let mut wrong = Vec::new();
    for bad in [
        placed[placed.len() / 2],
        placed[placed.len() - 1],
        placed[0],
    ] {
        for byte in 0..8 {
            for bit in [0, 1, 2, 5, 7] {
                let result = std::panic::catch_unwind(|| {
                    flip_and_check(dir.path(), &bad, bad.pos + byte, 1 << bit, false)
                });
                if let Err(panic) = result {
                    wrong.push(panic_message(&panic));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of 120 flips went wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// Every read of a flipped batch fails with an error rather than a panic, also through the
/// record iterator: flips in a record's length and varints, checked with the CRC skipped
/// (the CRC is recomputed so that only the record decoder stands between the flip and the
/// caller).
#[test]
fn flips_behind_a_valid_crc_are_decoding_errors() {
    let (dir, placed) = closed_log();
    let bad = placed[placed.len() / 2];
    for offset_in_batch in 61..bad.len {
        for mask in [0x01u8, 0x40, 0x80] {
            let copy = copy_dir(dir.path());
            let path = log_path(copy.path(), 0);
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[bad.pos + offset_in_batch] ^= mask;
            common::fix_batch_crc(&mut bytes, bad.pos, bad.len);
            std::fs::write(&path, bytes).unwrap();

            let log = Log::open(copy.path(), config()).unwrap();
            let what = format!("byte {offset_in_batch} ^ 0x{mask:02x}");
            // The batch itself passes its checks; decoding its records may not.
            let views = log.read(bad.base, 1).unwrap();
            assert_eq!(views.len(), 1, "{what}");
            match views[0].records() {
                Err(e) => assert!(e.is_corruption(), "{what}: {e:?}"),
                Ok(records) => {
                    for r in records.iter() {
                        match r {
                            Ok(r) => {
                                for h in r.headers() {
                                    if let Err(e) = h {
                                        assert!(e.is_corruption(), "{what}: {e:?}");
                                    }
                                }
                                assert!((bad.base..=bad.last).contains(&r.offset()), "{what}");
                            }
                            Err(e) => assert!(e.is_corruption(), "{what}: {e:?}"),
                        }
                    }
                }
            }
            // Time lookups decode records: errors, not panics.
            for o in bad.base..=bad.last {
                if let Err(e) = log.offset_for_timestamp(record(o).0) {
                    assert!(e.is_corruption(), "{what}: {e:?}");
                }
            }
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
        .replace('\n', " ")
}

/// `max_timestamp` is covered by the CRC, but a time lookup uses it to skip batches before it has
/// checked the CRC. A flip that lowers it (still at least the first timestamp, so the framing
/// checks pass) must not make a lookup skip the batch and answer with a later record.
#[test]
fn flip_in_max_timestamp_is_reported_not_skipped() {
    let (dir, placed) = closed_log();
    let bad = placed[placed.len() / 2];
    assert!(bad.last > bad.base, "the batch must hold several records");
    let mut wrong = Vec::new();
    for bit in 0..6 {
        let result = std::panic::catch_unwind(|| {
            // The least significant byte of Kafka's big-endian maxTimestamp (35..43).
            flip_and_check(dir.path(), &bad, bad.pos + 42, 1 << bit, false)
        });
        if let Err(panic) = result {
            wrong.push(panic_message(&panic));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of 6 flips went wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
