//! `riverbed verify` on a segment whose seal after a roll has not finished (FORMAT.md 6, rule
//! 4a: a background seal; or a crash during it): its preallocated zeros after the last batch
//! are a warning when every offset up to the next segment is there, and damage when offsets
//! are missing or the recovery point vouches that the segment was sealed.

mod common;

use std::path::Path;

use riverbed::inspect::{self, Severity};
use riverbed::{BatchBuilder, Log};

/// A closed log of three segments (two sealed, one active).
fn three_segments() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), common::small_log(4096, 512, 2048)).unwrap();
    let mut n = 0;
    while std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count()
        < 3
    {
        let mut b = BatchBuilder::new(riverbed::Compression::None);
        for _ in 0..10 {
            b.append(
                1_700_000_000_000 + n,
                None,
                Some(format!("value-{n:06}").as_bytes()),
                &[],
            );
            n += 1;
        }
        log.append(&b.build().unwrap()).unwrap();
    }
    log.close().unwrap();
    dir
}

fn segment_bases(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "log").then(|| p.file_stem()?.to_str()?.parse().ok())?
        })
        .collect();
    v.sort_unstable();
    v
}

/// Appends `n` zeros to a file, as the preallocation of an unsealed segment leaves them.
fn pad(path: &Path, n: usize) {
    let mut b = std::fs::read(path).unwrap();
    b.extend(std::iter::repeat_n(0u8, n));
    std::fs::write(path, b).unwrap();
}

fn severities(dir: &Path) -> Vec<(Severity, String)> {
    let r = inspect::verify(dir, &mut |_| {}).unwrap();
    r.problems
        .iter()
        .map(|p| (p.severity, p.to_string()))
        .collect()
}

#[test]
fn zeros_after_a_whole_segment_not_yet_passed_by_the_recovery_point_are_a_warning() {
    let dir = three_segments();
    let first = segment_bases(dir.path())[0];
    // The recovery point of an unfinished seal does not pass the segment.
    std::fs::remove_file(dir.path().join("recovery-point")).unwrap();
    pad(&common::log_path(dir.path(), first), 8192);
    pad(&dir.path().join(format!("{first:020}.index")), 4096);
    pad(&dir.path().join(format!("{first:020}.timeindex")), 4096);
    let found = severities(dir.path());
    assert!(!found.is_empty(), "the pending seal is reported");
    assert!(
        found.iter().all(|(s, _)| *s == Severity::Warning),
        "only warnings: {found:#?}"
    );
    assert!(inspect::verify(dir.path(), &mut |_| {}).unwrap().is_sound());
    // And the next open agrees: it finishes the seal and reads every record.
    let log = Log::open(dir.path(), common::small_log(4096, 512, 2048)).unwrap();
    assert_eq!(log.log_start_offset(), 0);
    drop(log);
}

#[test]
fn zeros_where_offsets_are_missing_before_the_next_segment_are_damage() {
    let dir = three_segments();
    let first = segment_bases(dir.path())[0];
    std::fs::remove_file(dir.path().join("recovery-point")).unwrap();
    let path = common::log_path(dir.path(), first);
    let bytes = std::fs::read(&path).unwrap();
    let batches = common::batches_in(&bytes);
    // Zero the last batch: its offsets are missing before the next segment.
    let (pos, _, _) = *batches.last().unwrap();
    let mut cut = bytes[..pos].to_vec();
    cut.extend(std::iter::repeat_n(0u8, bytes.len() - pos + 4096));
    std::fs::write(&path, cut).unwrap();
    let found = severities(dir.path());
    assert!(
        found.iter().any(|(s, _)| *s == Severity::Corruption),
        "{found:#?}"
    );
}

#[test]
fn zeros_after_a_segment_the_recovery_point_has_passed_are_damage() {
    let dir = three_segments();
    let first = segment_bases(dir.path())[0];
    // A clean close leaves the recovery point in the last segment: the first one was sealed.
    pad(&common::log_path(dir.path(), first), 8192);
    let found = severities(dir.path());
    assert!(
        found.iter().any(|(s, _)| *s == Severity::Corruption),
        "{found:#?}"
    );
}
