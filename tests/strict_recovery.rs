//! `RecoveryMode::Strict` refuses to open a log that recovery would cut (a torn tail after an
//! unclean stop, a segment that does not continue where the previous one ends) with a
//! `Corruption` error naming the file and position, and changes nothing on disk; the same
//! directory then opens in `TruncateTail` mode, which cuts at the same place.

use std::collections::BTreeMap;
use std::path::Path;

use riverbed::{BatchBuilder, Compression, ErrorKind, Log, LogConfig, RecordBatch, RecoveryMode};
use tempfile::TempDir;

mod common;
use common::{batches_in, copy_dir, log_path};

fn config(recovery: RecoveryMode) -> LogConfig {
    LogConfig::default()
        .segment_bytes(2048)
        .index_interval_bytes(256)
        .max_message_bytes(1024)
        .retention_ms(None)
        .segment_ms(None)
        .recovery(recovery)
}

fn value(offset: u64) -> Vec<u8> {
    format!("strict value {offset}").into_bytes()
}

fn batch(first: u64, n: u64) -> RecordBatch {
    let mut b = BatchBuilder::new(Compression::None);
    for o in first..first + n {
        b.append(1_700_000_000_000 + o as i64, None, Some(&value(o)), &[]);
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

fn check_records(log: &Log, end: u64) {
    assert_eq!(log.high_watermark(), end);
    let mut next = log.log_start_offset();
    for b in log.read(next, 1 << 30).unwrap() {
        for r in b.records().unwrap().iter() {
            let r = r.unwrap();
            assert_eq!(r.offset(), next);
            assert_eq!(r.value(), Some(&value(next)[..]));
            next += 1;
        }
    }
    assert_eq!(next, end);
}

/// Every file of a directory but the lock, by name.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != ".lock")
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// An unclean stop of a log of 90 records: the copied directory and its segment bases.
fn crashed_log() -> (TempDir, Vec<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(RecoveryMode::TruncateTail)).unwrap();
    fill(&log, 90);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 3, "{bases:?}");
    let copy = copy_dir(dir.path());
    drop(log);
    (copy, bases)
}

/// Opens `dir` in Strict mode, expecting a refusal naming `path` at `position`; then checks that
/// nothing changed and that TruncateTail mode cuts at the same place.
fn refused_then_cut(dir: &Path, path: &Path, position: u64, kept: u64, what: &str) {
    let before = snapshot(dir);
    let e = Log::open(dir, config(RecoveryMode::Strict)).expect_err(what);
    assert!(
        matches!(e.kind(), ErrorKind::Corruption { path: Some(p), position: at, .. }
            if p == path && *at == position),
        "{what}: expected a corruption error in {} at {position}: {e:?}",
        path.display()
    );
    let text = e.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains(&format!("byte {position}")), "{text}");
    assert!(
        snapshot(dir) == before,
        "{what}: a refused open changed the directory"
    );
    // Refusing again gives the same answer (and the lock was released).
    let again = Log::open(dir, config(RecoveryMode::Strict)).expect_err(what);
    assert_eq!(again.to_string(), text);

    let log = Log::open(dir, config(RecoveryMode::TruncateTail)).unwrap();
    let t = log
        .recovery_report()
        .truncation
        .clone()
        .unwrap_or_else(|| panic!("{what}: TruncateTail did not cut"));
    assert_eq!(t.path, path, "{what}");
    assert_eq!(t.position, position, "{what}");
    assert_eq!(t.offset, kept, "{what}");
    check_records(&log, kept);
    fill(&log, kept + 10);
    log.close().unwrap();

    // Once cut (and closed cleanly), Strict mode opens it.
    let log = Log::open(dir, config(RecoveryMode::Strict)).unwrap();
    check_records(&log, kept + 10);
}

#[test]
fn strict_opens_clean_logs_and_clean_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(RecoveryMode::Strict)).unwrap();
    fill(&log, 90);
    let copy = copy_dir(dir.path());
    log.close().unwrap();
    let log = Log::open(dir.path(), config(RecoveryMode::Strict)).unwrap();
    assert!(log.recovery_report().truncation.is_none());
    check_records(&log, 90);

    // A crash with nothing torn: scanned, nothing cut, so Strict opens it.
    let log = Log::open(copy.path(), config(RecoveryMode::Strict)).unwrap();
    assert!(log.recovery_report().truncation.is_none());
    assert!(log.recovery_report().scanned_bytes > 0);
    check_records(&log, 90);
}

#[test]
fn strict_refuses_a_torn_tail() {
    let (dir, bases) = crashed_log();
    let active = *bases.last().unwrap();
    let file = std::fs::read(log_path(dir.path(), active)).unwrap();
    let batches = batches_in(&file);
    let (last_pos, last_base, last_len) = *batches.last().unwrap();
    let end = last_pos + last_len;

    type Tear = Box<dyn Fn(&Path)>;
    let tears: Vec<(&str, Tear, u64, u64)> = vec![
        (
            "garbage after the last batch",
            Box::new(move |p| write_at(p, end, b"\x01\x02garbage")),
            end as u64,
            90,
        ),
        (
            "last batch half written",
            Box::new(move |p| write_at(p, last_pos + last_len / 2, &vec![0; last_len])),
            last_pos as u64,
            last_base,
        ),
        (
            "file ends inside the last batch",
            Box::new(move |p| set_len(p, last_pos + 20)),
            last_pos as u64,
            last_base,
        ),
        (
            "last batch's length field torn",
            Box::new(move |p| write_at(p, last_pos + 8, &[0xff, 0xff])),
            last_pos as u64,
            last_base,
        ),
    ];
    for (what, tear, position, kept) in tears {
        let copy = copy_dir(dir.path());
        let path = log_path(copy.path(), active);
        tear(&path);
        refused_then_cut(copy.path(), &path, position, kept, what);
    }
}

/// After a roll the new segment's header is synced before anything is written to it; one that is
/// torn anyway (shorter than a header) would be recreated empty by TruncateTail, and is refused
/// by Strict.
#[test]
fn strict_refuses_an_active_segment_without_a_header() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(RecoveryMode::TruncateTail)).unwrap();
    fill(&log, 40);
    log.roll().unwrap();
    let copy = copy_dir(dir.path());
    drop(log);
    let path = log_path(copy.path(), 40);
    set_len(&path, 10);
    let e = Log::open(copy.path(), config(RecoveryMode::Strict)).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Corruption { path: Some(p), .. } if *p == path),
        "{e:?}"
    );
    let log = Log::open(copy.path(), config(RecoveryMode::TruncateTail)).unwrap();
    let t = log.recovery_report().truncation.clone().unwrap();
    assert_eq!(t.path, path);
    assert_eq!(t.offset, 40);
    check_records(&log, 40);
    fill(&log, 50);
    check_records(&log, 50);
}

/// With an old recovery checkpoint (from before several rolls), recovery scans the sealed
/// segments after it too. If one of them is missing, the segment before the gap does not
/// continue into the next one: TruncateTail cuts the log there (deleting the segments after the
/// gap), Strict refuses.
#[test]
fn strict_refuses_a_missing_segment_after_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(RecoveryMode::TruncateTail)).unwrap();
    fill(&log, 5);
    log.roll().unwrap();
    // The checkpoint written by this roll, at the start of segment 5.
    let old_checkpoint = std::fs::read(dir.path().join("recovery-point")).unwrap();
    fill(&log, 250);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 5, "{bases:?}");
    let copy = copy_dir(dir.path());
    drop(log);
    std::fs::write(copy.path().join("recovery-point"), &old_checkpoint).unwrap();
    // Remove the third segment's data file.
    std::fs::remove_file(log_path(copy.path(), bases[2])).unwrap();

    let before_gap = log_path(copy.path(), bases[1]);
    let end = std::fs::metadata(&before_gap).unwrap().len();
    let before = snapshot(copy.path());
    let e = Log::open(copy.path(), config(RecoveryMode::Strict)).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Corruption { path: Some(p), position, .. }
            if *p == before_gap && *position == end),
        "{e:?}"
    );
    // The leftover index files of the missing segment may be cleaned away; data files stay.
    let after = snapshot(copy.path());
    for (name, bytes) in &before {
        if name.ends_with(".log") || name == "recovery-point" {
            assert!(after.get(name) == Some(bytes), "{name} changed");
        }
    }

    // A missing sealed segment is damage to acknowledged data, not a torn tail: TruncateTail
    // refuses it too, rather than cut away every segment after the gap, and changes nothing.
    let e = Log::open(copy.path(), config(RecoveryMode::TruncateTail)).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Corruption { path: Some(p), position, .. }
            if *p == before_gap && *position == end),
        "{e:?}"
    );
    for later in &bases[3..] {
        assert!(
            log_path(copy.path(), *later).exists(),
            "segment {later} was removed"
        );
    }
}

fn write_at(path: &Path, position: usize, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, position as u64).unwrap();
}

fn set_len(path: &Path, len: usize) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len as u64)
        .unwrap();
}
