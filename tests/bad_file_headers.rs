//! Segment files whose 24-byte header is wrong: bad magic, bad CRC, a base offset other than the
//! file name's, or a format version this build does not know. A sealed data file with a bad
//! header fails open with `Corruption` (naming the file and the byte); one from a newer version
//! with `UnsupportedVersion`. Index files are caches and are rebuilt; a damaged recovery
//! checkpoint only means "scan everything".

use std::path::{Path, PathBuf};

use riverbed::{BatchBuilder, Compression, ErrorKind, Log, LogConfig, RecordBatch, RecoveryMode};
use tempfile::TempDir;

mod common;
use common::{copy_dir, FILE_HEADER_LEN};

fn config() -> LogConfig {
    common::small_log(2048, 256, 1024)
}

fn value(offset: u64) -> Vec<u8> {
    format!("header test value {offset}").into_bytes()
}

fn batch(first: u64, n: u64) -> RecordBatch {
    let mut b = BatchBuilder::new(Compression::None);
    for o in first..first + n {
        b.append(
            1_700_000_000_000 + o as i64,
            Some(b"k"),
            Some(&value(o)),
            &[],
        );
    }
    b.build().unwrap()
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

fn seg_path(dir: &Path, base: u64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

/// A cleanly closed log of 100 records over several segments, and its segment bases.
fn closed_log() -> (TempDir, Vec<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    while log.high_watermark() < 100 {
        let next = log.high_watermark();
        log.append(&batch(next, (1 + next % 2).min(100 - next)))
            .unwrap();
    }
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 3, "{bases:?}");
    log.close().unwrap();
    (dir, bases)
}

/// Rewrites the header of `path` with `edit`, then recomputes its CRC if `fix_crc`.
fn edit_header(path: &Path, fix_crc: bool, edit: impl FnOnce(&mut [u8])) {
    let mut bytes = std::fs::read(path).unwrap();
    edit(&mut bytes[..FILE_HEADER_LEN]);
    if fix_crc {
        // Versions 2 and 3 (what this build writes) cover bytes 0..16 and 20..24; version 1 and
        // unknown versions are checked over bytes 0..16 (FORMAT.md section 2).
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        let crc = if version == 2 || version == 3 {
            let mut covered = bytes[0..16].to_vec();
            covered.extend_from_slice(&bytes[20..24]);
            crc32fast::hash(&covered)
        } else {
            crc32fast::hash(&bytes[0..16])
        };
        bytes[16..20].copy_from_slice(&crc.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

fn set_version(version: u16) -> impl FnOnce(&mut [u8]) {
    move |h| h[4..6].copy_from_slice(&version.to_le_bytes())
}

#[test]
fn sealed_data_file_with_a_bad_header_fails_open_with_corruption() {
    let (dir, bases) = closed_log();
    type Edit = Box<dyn Fn(&mut [u8])>;
    let cases: Vec<(&str, bool, Edit, std::ops::Range<u64>)> = vec![
        (
            "magic of an index file",
            false,
            Box::new(|h| h[0..4].copy_from_slice(b"RVBI")),
            0..1,
        ),
        ("magic zeroed", false, Box::new(|h| h[0..4].fill(0)), 0..1),
        ("CRC wrong", false, Box::new(|h| h[17] ^= 0x20), 0..24),
        (
            "base offset flipped, CRC stale",
            false,
            Box::new(|h| h[8] ^= 1),
            0..24,
        ),
        (
            "base offset of another segment",
            true,
            Box::new(|h| h[8..16].copy_from_slice(&7u64.to_le_bytes())),
            8..9,
        ),
    ];
    for (what, fix_crc, edit, positions) in cases {
        for base in [bases[0], bases[1]] {
            let copy = copy_dir(dir.path());
            let path = seg_path(copy.path(), base, "log");
            edit_header(&path, fix_crc, &*edit);
            let e = Log::open(copy.path(), config()).unwrap_err();
            assert!(
                matches!(e.kind(), ErrorKind::Corruption { path: Some(p), position, .. }
                    if *p == path && positions.contains(position)),
                "{what} in {}: {e:?}",
                path.display()
            );
            let text = e.to_string();
            assert!(text.contains(&path.display().to_string()), "{text}");
        }
    }
}

#[test]
fn sealed_data_file_from_a_future_version_fails_open_with_unsupported_version() {
    let (dir, bases) = closed_log();
    for version in [4u16, 9, u16::MAX] {
        let copy = copy_dir(dir.path());
        let path = seg_path(copy.path(), bases[1], "log");
        let before = std::fs::read(&path).unwrap();
        edit_header(&path, true, set_version(version));
        let edited = std::fs::read(&path).unwrap();
        assert_ne!(before, edited);
        let e = Log::open(copy.path(), config()).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::UnsupportedVersion { path: p, found, supported: 3 }
                if *p == path && *found == version),
            "version {version}: {e:?}"
        );
        assert!(e.to_string().contains("upgrade"), "{e}");
        // Refusing leaves the newer file as it was.
        assert!(
            std::fs::read(&path).unwrap() == edited,
            "the file was changed"
        );
    }
}

#[test]
fn data_file_of_version_zero_is_refused() {
    let (dir, bases) = closed_log();
    let copy = copy_dir(dir.path());
    let path = seg_path(copy.path(), bases[0], "log");
    edit_header(&path, true, set_version(0));
    let e = Log::open(copy.path(), config()).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::UnsupportedVersion { found: 0, .. }),
        "{e:?}"
    );
}

/// The active segment is scanned, not trusted, but a version from the future is still not
/// something to cut away: the log must refuse to open (FORMAT.md section 2), not delete the
/// newer segment and start it afresh.
#[test]
fn active_data_file_from_a_future_version_is_refused_not_deleted() {
    let (dir, bases) = closed_log();
    let active = *bases.last().unwrap();
    let copy = copy_dir(dir.path());
    let path = seg_path(copy.path(), active, "log");
    edit_header(&path, true, set_version(4));
    let edited = std::fs::read(&path).unwrap();
    let result = Log::open(copy.path(), config());
    let now = std::fs::read(&path).ok();
    assert!(
        now.as_deref() == Some(&edited[..]),
        "the newer segment was changed: its header now reads {:?}",
        now.as_ref().map(|b| &b[..8])
    );
    let e = result.expect_err("a log with a segment of a newer version was opened");
    assert!(
        matches!(e.kind(), ErrorKind::UnsupportedVersion { path: p, found: 4, .. } if *p == path),
        "{e:?}"
    );
}

/// An active data file whose magic or CRC is bad while batches follow the header: the header is
/// made durable before any batch is written, so this is damage to acknowledged data, never an
/// interrupted creation. Open fails with `Corruption` naming the file in either recovery mode,
/// and nothing is removed. (Before issue 13 the file was "started afresh": every record in it
/// was deleted.)
#[test]
fn active_data_file_with_a_bad_header_and_data_fails_open_and_is_kept() {
    let (dir, bases) = closed_log();
    let active = *bases.last().unwrap();
    type Edit = Box<dyn Fn(&mut [u8])>;
    let cases: Vec<(&str, Edit)> = vec![
        ("bad magic", Box::new(|h| h[0..4].copy_from_slice(b"XXXX"))),
        ("bad CRC", Box::new(|h| h[18] ^= 1)),
    ];
    for (what, edit) in cases {
        let copy = copy_dir(dir.path());
        let path = seg_path(copy.path(), active, "log");
        edit_header(&path, false, &*edit);
        let damaged = std::fs::read(&path).unwrap();
        for recovery in [RecoveryMode::Strict, RecoveryMode::TruncateTail] {
            let e = Log::open(copy.path(), config().recovery(recovery)).unwrap_err();
            assert!(
                matches!(e.kind(), ErrorKind::Corruption { path: Some(p), .. } if *p == path),
                "{what}, {recovery:?}: {e:?}"
            );
            assert_eq!(
                std::fs::read(&path).unwrap(),
                damaged,
                "{what}: file changed"
            );
        }
    }
}

/// An active data file whose header is bad and which holds nothing after it: its creation was
/// interrupted before the header was durable. It is started afresh (a cut at its base offset is
/// reported), or refused in Strict mode; the sealed segments before it are untouched.
#[test]
fn active_data_file_torn_at_creation_is_started_afresh() {
    let (dir, bases) = closed_log();
    let active = *bases.last().unwrap();
    let copy = copy_dir(dir.path());
    let path = seg_path(copy.path(), active, "log");
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    let mut torn = vec![0u8; len];
    torn[0..2].copy_from_slice(b"RV");
    std::fs::write(&path, &torn).unwrap();

    let strict = config().recovery(RecoveryMode::Strict);
    let e = Log::open(copy.path(), strict).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Corruption { path: Some(p), .. } if *p == path),
        "{e:?}"
    );

    let log = Log::open(copy.path(), config()).unwrap();
    let t = log.recovery_report().truncation.clone().expect("a cut");
    assert_eq!(t.path, path);
    assert_eq!(t.offset, active);
    assert_eq!(log.segment_base_offsets(), bases);
    check_records(&log, active);
    log.append(&batch(active, 3)).unwrap();
    check_records(&log, active + 3);
    log.close().unwrap();
    let log = Log::open(copy.path(), config()).unwrap();
    check_records(&log, active + 3);
}

/// Index files with a bad magic (each other's), CRC, base offset or a future version are caches
/// to rebuild, for sealed and active segments alike.
#[test]
fn index_files_with_bad_headers_are_rebuilt() {
    let (dir, bases) = closed_log();
    let active = *bases.last().unwrap();
    type Edit = Box<dyn Fn(&mut [u8])>;
    let cases: Vec<(&str, bool, Edit)> = vec![
        (
            "swapped magic",
            true,
            Box::new(|h| h[3] = if h[3] == b'I' { b'T' } else { b'I' }),
        ),
        ("bad CRC", false, Box::new(|h| h[16] ^= 4)),
        ("other base", true, Box::new(|h| h[9] ^= 1)),
        ("future version", true, Box::new(|h| h[4] = 4)),
    ];
    for (what, fix_crc, edit) in cases {
        for base in [bases[0], active] {
            for ext in ["index", "timeindex"] {
                let copy = copy_dir(dir.path());
                let path = seg_path(copy.path(), base, ext);
                edit_header(&path, fix_crc, &*edit);
                let log = Log::open(copy.path(), config())
                    .unwrap_or_else(|e| panic!("{what} {}: {e}", path.display()));
                let r = log.recovery_report();
                assert!(
                    !r.rebuilt_indexes.is_empty(),
                    "{what} {}: {r:?}",
                    path.display()
                );
                assert!(r.truncation.is_none(), "{r:?}");
                check_records(&log, 100);
                for o in [0u64, 1, 50, 99] {
                    assert_eq!(
                        log.offset_for_timestamp(1_700_000_000_000 + o as i64)
                            .unwrap(),
                        Some((o, 1_700_000_000_000 + o as i64)),
                        "{what} {}",
                        path.display()
                    );
                }
                let header = std::fs::read(&path).unwrap();
                let expected_magic: &[u8] = if ext == "index" { b"RVBI" } else { b"RVBT" };
                assert_eq!(&header[0..4], expected_magic, "{what}: not rewritten");
            }
        }
    }
}

/// A recovery checkpoint that fails its checks is ignored: everything is scanned, nothing lost.
#[test]
fn damaged_recovery_checkpoint_means_scan_everything() {
    let (dir, _) = closed_log();
    type Edit = fn(&mut Vec<u8>);
    let cases: [(&str, Edit); 4] = [
        ("bad magic", |b| b[0] = b'X'),
        ("bad CRC", |b| b[33] ^= 1),
        ("future version", |b| b[4] = 2),
        ("short", |b| b.truncate(20)),
    ];
    for (what, edit) in cases {
        let copy = copy_dir(dir.path());
        let path = copy.path().join("recovery-point");
        let mut bytes = std::fs::read(&path).unwrap();
        edit(&mut bytes);
        std::fs::write(&path, bytes).unwrap();
        let log = Log::open(copy.path(), config()).unwrap();
        let r = log.recovery_report();
        assert!(!r.checkpoint_used, "{what}: {r:?}");
        assert!(r.scanned_bytes > 0, "{what}: {r:?}");
        assert!(r.truncation.is_none(), "{what}: {r:?}");
        check_records(&log, 100);
    }
}
