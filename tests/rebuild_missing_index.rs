//! Index files are caches: an `.index` or `.timeindex` that is missing, cut to a ragged length or
//! overwritten with garbage is rebuilt from its `.log` at open (and listed in
//! `RecoveryReport::rebuilt_indexes`), and reads and time lookups still give the right answers,
//! for sealed segments and for the active one.

use std::path::{Path, PathBuf};

use riverbed::{BatchBuilder, Compression, Log, LogConfig, RecordBatch};
use tempfile::TempDir;

mod common;
use common::{copy_dir, FILE_HEADER_LEN};

const RECORDS: u64 = 260;

fn config() -> LogConfig {
    common::small_log(2048, 128, 1024)
}

/// Timestamp of record `offset`: mostly increasing, with some records out of order.
fn ts(offset: u64) -> i64 {
    let jitter = if offset % 7 == 3 {
        -45
    } else {
        (offset % 3) as i64
    };
    1_700_000_000_000 + offset as i64 * 10 + jitter
}

fn value(offset: u64) -> Vec<u8> {
    format!("value {offset}").into_bytes()
}

fn batch(first: u64, n: u64) -> RecordBatch {
    let mut b = BatchBuilder::new(Compression::None);
    for o in first..first + n {
        b.append(ts(o), Some(b"key"), Some(&value(o)), &[]);
    }
    b.build().unwrap()
}

fn fill(log: &Log, until: u64) {
    while log.high_watermark() < until {
        let next = log.high_watermark();
        log.append(&batch(next, (1 + next % 3).min(until - next)))
            .unwrap();
    }
}

fn seg_path(dir: &Path, base: u64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

/// A cleanly closed log of `RECORDS` records over several segments; returns the segment bases.
fn closed_log() -> (TempDir, Vec<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    fill(&log, RECORDS);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 4, "{bases:?}");
    log.close().unwrap();
    (dir, bases)
}

/// The first record with a timestamp at or above `t` among offsets `start..end`.
fn first_at_or_after(t: i64, start: u64, end: u64) -> Option<(u64, i64)> {
    (start..end).map(|o| (o, ts(o))).find(|(_, s)| *s >= t)
}

/// Every read and time lookup gives the right answer.
fn check_answers(log: &Log, end: u64, what: &str) {
    assert_eq!(log.high_watermark(), end, "{what}");
    let start = log.log_start_offset();
    for from in start..end {
        let views = log
            .read(from, 1)
            .unwrap_or_else(|e| panic!("{what}: read({from}): {e}"));
        assert_eq!(views.len(), 1, "{what}: read({from})");
        let b = &views[0];
        assert!(b.base_offset() <= from && from <= b.last_offset(), "{what}");
        let records = b.records().unwrap();
        let r = records
            .iter()
            .map(|r| r.unwrap())
            .find(|r| r.offset() == from)
            .unwrap_or_else(|| panic!("{what}: read({from}) lacks the record"));
        assert_eq!(r.value(), Some(&value(from)[..]), "{what}: value of {from}");
        assert_eq!(r.timestamp(), ts(from), "{what}: timestamp of {from}");
    }
    let all: u64 = log
        .read(start, 1 << 30)
        .unwrap()
        .iter()
        .map(|b| u64::from(b.record_count()))
        .sum();
    assert_eq!(all, end - start, "{what}: one read of everything");
    let mut queries = vec![i64::MIN, ts(0) - 100, i64::MAX];
    for o in start..end {
        queries.extend([ts(o) - 1, ts(o), ts(o) + 1]);
    }
    for t in queries {
        assert_eq!(
            log.offset_for_timestamp(t)
                .unwrap_or_else(|e| panic!("{what}: offset_for_timestamp({t}): {e}")),
            first_at_or_after(t, start, end),
            "{what}: offset_for_timestamp({t})"
        );
    }
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    Delete,
    /// Cut inside the last entry (of those that hold data).
    RaggedLast,
    /// Cut inside the first entry.
    RaggedFirst,
    /// The header kept, every entry overwritten with pseudo-random bytes.
    GarbageEntries,
    /// The whole file overwritten with pseudo-random bytes.
    GarbageAll,
    /// Cut inside the header.
    HeaderCut,
    /// Cut to nothing.
    Empty,
}

const ALL: [Damage; 7] = [
    Damage::Delete,
    Damage::RaggedLast,
    Damage::RaggedFirst,
    Damage::GarbageEntries,
    Damage::GarbageAll,
    Damage::HeaderCut,
    Damage::Empty,
];

fn garbage(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn damage(path: &Path, how: Damage) {
    let entry = if path.extension().unwrap() == "timeindex" {
        16
    } else {
        8
    };
    let bytes = std::fs::read(path).unwrap();
    // Entries holding data (the active segment's file is preallocated with zeros after them).
    let used = bytes[FILE_HEADER_LEN..]
        .chunks(entry)
        .take_while(|e| e.iter().any(|b| *b != 0))
        .count();
    assert!(used >= 2, "{} has {used} entries", path.display());
    let new: Vec<u8> = match how {
        Damage::Delete => {
            std::fs::remove_file(path).unwrap();
            return;
        }
        Damage::RaggedLast => bytes[..FILE_HEADER_LEN + (used - 1) * entry + entry / 2].to_vec(),
        Damage::RaggedFirst => bytes[..FILE_HEADER_LEN + 3].to_vec(),
        Damage::GarbageEntries => {
            let mut b = bytes[..FILE_HEADER_LEN].to_vec();
            b.extend(garbage(bytes.len() - FILE_HEADER_LEN, bytes.len() as u64));
            b
        }
        Damage::GarbageAll => garbage(bytes.len(), 7 + bytes.len() as u64),
        Damage::HeaderCut => bytes[..10].to_vec(),
        Damage::Empty => Vec::new(),
    };
    std::fs::write(path, new).unwrap();
}

/// Damages one index file of segment `base` of a copy of `dir`, reopens and checks the answers,
/// then appends, closes and reopens (the rebuilt files must now pass as they are).
fn damage_and_check(dir: &Path, base: u64, ext: &str, how: Damage, expect_reported: bool) {
    let copy = copy_dir(dir);
    let path = seg_path(copy.path(), base, ext);
    damage(&path, how);
    let what = format!("{how:?} {}", path.file_name().unwrap().to_string_lossy());

    let log = Log::open(copy.path(), config()).unwrap_or_else(|e| panic!("{what}: open: {e}"));
    let report = log.recovery_report().clone();
    assert!(report.truncation.is_none(), "{what}: {report:?}");
    if expect_reported {
        let stem = format!("{base:020}");
        assert!(
            report
                .rebuilt_indexes
                .iter()
                .any(|p| p.file_stem().unwrap().to_string_lossy() == stem),
            "{what}: not reported as rebuilt: {report:?}"
        );
    }
    assert!(
        seg_path(copy.path(), base, ext).exists(),
        "{what}: not recreated"
    );
    check_answers(&log, RECORDS, &what);

    fill(&log, RECORDS + 40);
    check_answers(&log, RECORDS + 40, &format!("{what}, after appends"));
    log.close().unwrap();
    let log = Log::open(copy.path(), config()).unwrap();
    let report = log.recovery_report();
    assert!(
        report.rebuilt_indexes.is_empty() && report.scanned_bytes == 0,
        "{what}: the second open found work to do: {report:?}"
    );
    check_answers(&log, RECORDS + 40, &format!("{what}, reopened"));
}

#[test]
fn damaged_indexes_of_sealed_segments_are_rebuilt() {
    let (dir, bases) = closed_log();
    for base in [bases[0], bases[bases.len() / 2]] {
        for ext in ["index", "timeindex"] {
            for how in ALL {
                damage_and_check(dir.path(), base, ext, how, true);
            }
        }
    }
}

#[test]
fn missing_or_headerless_indexes_of_the_active_segment_are_rebuilt() {
    let (dir, bases) = closed_log();
    let active = *bases.last().unwrap();
    for ext in ["index", "timeindex"] {
        for how in [
            Damage::Delete,
            Damage::GarbageAll,
            Damage::HeaderCut,
            Damage::Empty,
        ] {
            damage_and_check(dir.path(), active, ext, how, true);
        }
    }
}

/// An active segment's offset index with a ragged length or garbage entries: reads still find
/// every record.
#[test]
fn damaged_offset_index_of_the_active_segment_still_answers() {
    let (dir, bases) = closed_log();
    let active = *bases.last().unwrap();
    for how in [
        Damage::RaggedLast,
        Damage::RaggedFirst,
        Damage::GarbageEntries,
    ] {
        damage_and_check(dir.path(), active, "index", how, false);
    }
}

/// FORMAT.md: an index with a ragged length or entries out of order is rebuilt at open. For the
/// active segment it is not: the valid prefix is kept (possibly none of it) and the segment's
/// max timestamp is taken from it, so time lookups miss the segment's newer records.
#[test]
fn damaged_time_index_of_the_active_segment_is_rebuilt() {
    let (dir, bases) = closed_log();
    let active = *bases.last().unwrap();
    for how in [
        Damage::RaggedLast,
        Damage::RaggedFirst,
        Damage::GarbageEntries,
    ] {
        damage_and_check(dir.path(), active, "timeindex", how, false);
    }
}

/// FORMAT.md lists a ragged length and out-of-order entries among the damage that makes an index
/// be rebuilt (and the report lists what was rebuilt); the active segment's indexes are instead
/// silently cut to their valid prefix.
#[test]
fn damaged_indexes_of_the_active_segment_are_reported_rebuilt() {
    let (dir, bases) = closed_log();
    let active = *bases.last().unwrap();
    for ext in ["index", "timeindex"] {
        for how in [
            Damage::RaggedLast,
            Damage::RaggedFirst,
            Damage::GarbageEntries,
        ] {
            damage_and_check(dir.path(), active, ext, how, true);
        }
    }
}

/// A sealed segment's time index cut to its header (a whole number of entries: none) passes the
/// cheap checks, although sealing always writes at least one time entry. The segment's max
/// timestamp then reads as "none": time lookups skip the segment, and age retention deletes it
/// however new its records are.
#[test]
fn sealed_time_index_cut_to_its_header_is_rebuilt() {
    let (dir, bases) = closed_log();
    let copy = copy_dir(dir.path());
    let path = seg_path(copy.path(), bases[0], "timeindex");
    let header = std::fs::read(&path).unwrap()[..FILE_HEADER_LEN].to_vec();
    std::fs::write(&path, header).unwrap();

    // A week of retention, and a clock a day after the newest record.
    let config = config().retention_ms(Some(7 * 86_400_000));
    let log = Log::open(copy.path(), config).unwrap();
    check_answers(&log, RECORDS, "timeindex cut to its header");
    let report = log.apply_retention_at(ts(RECORDS) + 86_400_000).unwrap();
    assert!(
        report.deleted_segments.is_empty(),
        "a segment of one-day-old records was deleted by a week's retention: {report:?}"
    );
}
