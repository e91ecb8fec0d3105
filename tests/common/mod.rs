//! Helpers shared by the integration tests that look at or mangle files on disk.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// Size of the header that opens every segment file (FORMAT.md, section 2).
pub const FILE_HEADER_LEN: usize = 24;

/// A copy of the regular files of `from` in a new temporary directory. Copying the directory of
/// a log that is still open gives the files a process crash would leave.
pub fn copy_dir(from: &Path) -> TempDir {
    let to = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
        }
    }
    to
}

/// The data file of the segment with base offset `base`.
pub fn log_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

/// (position, base offset, length) of each batch of a data file, found from the length fields.
pub fn batches_in(file: &[u8]) -> Vec<(usize, u64, usize)> {
    let mut out = Vec::new();
    let mut pos = FILE_HEADER_LEN;
    while pos + 12 <= file.len() && file[pos..pos + 12].iter().any(|b| *b != 0) {
        let base = u64::from_le_bytes(file[pos..pos + 8].try_into().unwrap());
        let len = u32::from_le_bytes(file[pos + 8..pos + 12].try_into().unwrap()) as usize + 12;
        out.push((pos, base, len));
        pos += len;
    }
    out
}

/// A record as read back: offset, key, value, timestamp.
pub type ReadRecord = (u64, Option<Vec<u8>>, Option<Vec<u8>>, i64);

/// Every record of `log` from its start to its end, read in chunks of `max_bytes` the way a
/// consumer does: the next read starts after the last batch returned, so gaps left by
/// compaction (inside batches, between batches and between segments) are skipped. Checks that
/// offsets strictly increase.
pub fn read_all(log: &riverbed::Log, max_bytes: usize) -> Vec<ReadRecord> {
    let mut out: Vec<ReadRecord> = Vec::new();
    let mut pos = log.log_start_offset();
    while pos < log.next_offset() {
        let batches = log.read(pos, max_bytes).unwrap();
        if batches.is_empty() {
            // A gap reaching to the end of the sealed part: nothing until the next append.
            break;
        }
        for b in &batches {
            assert!(
                b.last_offset() >= pos,
                "batch ending at {} for {pos}",
                b.last_offset()
            );
            for r in b.records().unwrap().iter() {
                let r = r.unwrap();
                if r.offset() < pos {
                    continue;
                }
                if let Some(last) = out.last() {
                    assert!(
                        r.offset() > last.0,
                        "offset {} after {}",
                        r.offset(),
                        last.0
                    );
                }
                out.push((
                    r.offset(),
                    r.key().map(<[u8]>::to_vec),
                    r.value().map(<[u8]>::to_vec),
                    r.timestamp(),
                ));
            }
            pos = b.last_offset() + 1;
        }
    }
    out
}
