//! What opening a log does with the files an interrupted compaction swap leaves (see
//! `segment::cleaned`): a committed swap (its data `.swap` file exists) is finished, whatever
//! index `.swap` files made it; everything else is rolled back: `.cleaned` files (whole, cut short
//! or garbage) are deleted, and index `.swap` files without their data file are deleted together
//! with the index they would have replaced (which is rebuilt). The files are made by a real
//! compaction, then arranged on disk as a crash at each step would leave them.

use std::path::{Path, PathBuf};

use riverbed::{BatchBuilder, CleanupPolicy, CompactionConfig, Compression, Log, LogConfig};

mod common;
use common::{copy_dir, read_all, ReadRecord};

const T0: i64 = 1_700_000_000_000;

fn config() -> LogConfig {
    common::small_log(2048, 128, 1024).cleanup_policy(CleanupPolicy::Compact)
}

fn seg(dir: &Path, base: u64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

fn with(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}.{suffix}", path.display()))
}

/// An uncompacted, closed log of 8 keys over several segments, and a compacted copy of it.
fn logs() -> (tempfile::TempDir, tempfile::TempDir) {
    let before = tempfile::tempdir().unwrap();
    let log = Log::open(before.path(), config()).unwrap();
    for o in 0..240u64 {
        let mut b = BatchBuilder::new(Compression::None);
        let value = format!("value-{o}-{}", "x".repeat((o % 17) as usize));
        b.append(
            T0 + o as i64,
            Some(format!("k{}", o % 8).as_bytes()),
            Some(value.as_bytes()),
            &[],
        );
        log.append(&b.build().unwrap()).unwrap();
    }
    log.roll().unwrap();
    log.close().unwrap();
    let after = copy_dir(before.path());
    let log = Log::open(after.path(), config()).unwrap();
    let report = log.compact(&CompactionConfig::default()).unwrap();
    assert!(report.segments_written >= 2, "{report:?}");
    log.close().unwrap();
    (before, after)
}

fn contents(dir: &Path) -> Vec<ReadRecord> {
    let log = Log::open(dir, config()).unwrap();
    let r = read_all(&log, 1 << 20);
    log.close().unwrap();
    r
}

/// Bases of the compacted segments in `dir`, with the end of each one's span.
fn compacted(dir: &Path) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let Some(stem) = name.strip_suffix(".log") else {
            continue;
        };
        let base: u64 = stem.parse().unwrap();
        let head = std::fs::read(seg(dir, base, "log")).unwrap();
        // Compacted data files: version 2 (older builds) or 3, flag bit 0.
        if (head[4] == 2 || head[4] == 3) && head[6] & 1 == 1 {
            let span = u32::from_le_bytes(head[20..24].try_into().unwrap());
            out.push((base, base + u64::from(span)));
        }
    }
    out.sort();
    out
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
        .collect()
}

/// `before`'s records with those in `lo..hi` replaced by `after`'s.
fn spliced(before: &[ReadRecord], after: &[ReadRecord], lo: u64, hi: u64) -> Vec<ReadRecord> {
    let mut v: Vec<ReadRecord> = before
        .iter()
        .filter(|r| r.0 < lo || r.0 >= hi)
        .chain(after.iter().filter(|r| r.0 >= lo && r.0 < hi))
        .cloned()
        .collect();
    v.sort_by_key(|r| r.0);
    v
}

/// The crash came after the commit point: the data `.swap` file exists, with all, one or none
/// of the index `.swap` files (and, for the later steps, with the other segments of the group
/// already deleted). Open finishes the swap.
#[test]
fn committed_swap_is_finished() {
    let (before, after) = logs();
    let (want_before, want_after) = (contents(before.path()), contents(after.path()));
    for (base, end) in compacted(after.path()) {
        for indexes in [&["index", "timeindex"][..], &["timeindex"], &[]] {
            for others_deleted in [false, true] {
                let dir = copy_dir(before.path());
                let d = dir.path();
                for ext in ["log"].iter().chain(indexes) {
                    std::fs::copy(
                        seg(after.path(), base, ext),
                        with(&seg(d, base, ext), "swap"),
                    )
                    .unwrap();
                }
                if others_deleted {
                    for o in base + 1..end {
                        let _ = std::fs::remove_file(seg(d, o, "log"));
                    }
                }
                let log = Log::open(d, config()).unwrap();
                let what = format!(
                    "swap of {base}..{end} with {indexes:?}, others deleted: {others_deleted}"
                );
                assert_eq!(log.recovery_report().finished_swaps, vec![base], "{what}");
                assert!(leftovers(d).is_empty(), "{what}: {:?}", leftovers(d));
                assert_eq!(
                    read_all(&log, 1 << 20),
                    spliced(&want_before, &want_after, base, end),
                    "{what}"
                );
                for o in [base, end.saturating_sub(1)] {
                    let found = log.offset_for_timestamp(T0 + o as i64).unwrap();
                    assert!(
                        found.is_some_and(|(f, _)| f >= o),
                        "{what}: time lookup {o}: {found:?}"
                    );
                }
                log.close().unwrap();
                // And it stays that way.
                assert_eq!(
                    contents(d),
                    spliced(&want_before, &want_after, base, end),
                    "{what}"
                );
            }
        }
    }
}

/// The crash came before the commit point: `.cleaned` files (whole, cut short, or garbage) and
/// index `.swap` files without a data `.swap` file. Open rolls back to the old segments.
#[test]
fn uncommitted_swap_is_rolled_back() {
    let (before, after) = logs();
    let want = contents(before.path());
    let (base, _) = compacted(after.path())[0];
    type Arrange = Box<dyn Fn(&Path)>;
    let a = after.path().to_path_buf();
    let cases: Vec<(&str, Arrange)> = vec![
        ("whole .cleaned set", {
            let a = a.clone();
            Box::new(move |d: &Path| {
                for ext in ["log", "index", "timeindex"] {
                    std::fs::copy(seg(&a, base, ext), with(&seg(d, base, ext), "cleaned")).unwrap();
                }
            })
        }),
        ("cut-short .cleaned data file", {
            let a = a.clone();
            Box::new(move |d: &Path| {
                let bytes = std::fs::read(seg(&a, base, "log")).unwrap();
                std::fs::write(
                    with(&seg(d, base, "log"), "cleaned"),
                    &bytes[..bytes.len() / 2],
                )
                .unwrap();
                std::fs::write(with(&seg(d, base, "index"), "cleaned"), b"").unwrap();
            })
        }),
        (
            "garbage .cleaned files",
            Box::new(move |d: &Path| {
                std::fs::write(with(&seg(d, base, "log"), "cleaned"), [0xAB; 100]).unwrap();
                std::fs::write(with(&seg(d, 999, "timeindex"), "cleaned"), [1; 7]).unwrap();
            }),
        ),
        ("index .swap files without the data file", {
            let a = a.clone();
            Box::new(move |d: &Path| {
                for ext in ["index", "timeindex"] {
                    std::fs::copy(seg(&a, base, ext), with(&seg(d, base, ext), "swap")).unwrap();
                }
                std::fs::copy(seg(&a, base, "log"), with(&seg(d, base, "log"), "cleaned")).unwrap();
            })
        }),
        (
            "one index .swap file",
            Box::new(move |d: &Path| {
                std::fs::copy(
                    seg(&a, base, "timeindex"),
                    with(&seg(d, base, "timeindex"), "swap"),
                )
                .unwrap();
            }),
        ),
    ];
    for (what, arrange) in cases {
        let dir = copy_dir(before.path());
        arrange(dir.path());
        let log = Log::open(dir.path(), config()).unwrap_or_else(|e| panic!("{what}: {e}"));
        let r = log.recovery_report();
        assert!(r.finished_swaps.is_empty(), "{what}: {r:?}");
        assert!(!r.removed_files.is_empty(), "{what}: {r:?}");
        assert!(
            leftovers(dir.path()).is_empty(),
            "{what}: {:?}",
            leftovers(dir.path())
        );
        assert_eq!(read_all(&log, 1 << 20), want, "{what}");
        for o in [0u64, 100, 239] {
            assert_eq!(
                log.offset_for_timestamp(T0 + o as i64).unwrap(),
                Some((o, T0 + o as i64)),
                "{what}"
            );
        }
        log.close().unwrap();
    }
}

/// A committed swap whose data file is damaged is not guessed at: open fails naming it.
#[test]
fn damaged_committed_swap_fails_open() {
    let (before, after) = logs();
    let (base, _) = compacted(after.path())[0];
    let dir = copy_dir(before.path());
    let mut bytes = std::fs::read(seg(after.path(), base, "log")).unwrap();
    bytes[21] ^= 1; // the span, covered by the header CRC
    let path = with(&seg(dir.path(), base, "log"), "swap");
    std::fs::write(&path, bytes).unwrap();
    let e = Log::open(dir.path(), config()).unwrap_err();
    assert!(e.is_corruption(), "{e:?}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
}
