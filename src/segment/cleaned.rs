//! Segments written by the log cleaner, and the crash-safe swap that puts one in place of the
//! segments it was made from.
//!
//! The cleaner writes a group of consecutive sealed segments, minus the records it removes, into
//! one new segment named after the group's first base offset and flagged as compacted, covering
//! exactly the group's offsets (file header `span`). The swap, as in Kafka:
//!
//! 1. write `<base>.log.cleaned`, `.index.cleaned`, `.timeindex.cleaned`; fsync each;
//! 2. rename the two index files to `.swap`, then the data file: **the rename of
//!    `<base>.log.cleaned` to `<base>.log.swap` is the commit point**; fsync the directory;
//! 3. delete the group's other segments (data file first), rename the index `.swap` files over
//!    the originals, then the data `.swap` file; fsync the directory.
//!
//! Opening a log finishes a swap whose data `.swap` file exists (step 3 again: the segments to
//! delete are those inside the span its header names) and rolls back everything else: `.cleaned`
//! files are deleted, and an index `.swap` without its data file is deleted together with the
//! index it would have replaced (indexes are caches, rebuilt from the data file).
//!
//! Readers holding the old segments keep their mappings: a rename over a file or an unlink leaves
//! a mapped file's pages alive until the last mapping goes.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64};
use std::sync::Arc;

use super::file_header::{self, FileKind, FILE_HEADER_LEN};
use super::mmap::Mapping;
use super::{IndexPolicy, Segment, SegmentPaths};
use crate::error::{Error, Result};
use crate::record::codec::BatchHeader;

/// Suffix of a file being written by the cleaner (deleted at open).
pub(crate) const CLEANED: &str = "cleaned";
/// Suffix of a cleaned file past the commit point (finished at open).
pub(crate) const SWAP: &str = "swap";

/// `path` with `.suffix` appended (`00…42.log` → `00…42.log.cleaned`).
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

fn remove_if_exists(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("remove file", path, e)),
    }
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| Error::io("rename cleaned segment file", from, e))
}

/// The three final paths of a segment, in swap order: indexes first, the data file last.
fn swap_order(p: &SegmentPaths) -> [&PathBuf; 3] {
    [&p.index, &p.time_index, &p.log]
}

/// Writes one cleaned segment: batches are appended in offset order, and [`finish`]
/// (Self::finish) syncs the files and maps them.
pub(crate) struct CleanedWriter {
    paths: SegmentPaths,
    base: u64,
    end: u64,
    data: BufWriter<File>,
    position: usize,
    policy: IndexPolicy,
    offsets: Vec<u8>,
    times: Vec<u8>,
    max_batch_bytes: usize,
}

impl CleanedWriter {
    /// Starts `<base>.log.cleaned` for a segment covering offsets `base..end` (replacing any
    /// leftover `.cleaned` files of that base).
    pub fn create(
        dir: &Path,
        base: u64,
        end: u64,
        index_interval: usize,
        max_batch_bytes: usize,
    ) -> Result<CleanedWriter> {
        let paths = SegmentPaths::new(dir, base);
        let span = end
            .checked_sub(base)
            .and_then(|s| u32::try_from(s).ok())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "a cleaned segment cannot cover offsets {base}..{end} (at most 2^32 - 1)"
                ))
            })?;
        abandon(&paths)?;
        let path = with_suffix(&paths.log, CLEANED);
        let file = crate::failpoint::hit(crate::failpoint::sites::CLEANED_WRITE, &path)
            .and_then(|()| {
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&path)
            })
            .map_err(|e| Error::io("create cleaned segment", &path, e))?;
        let mut data = BufWriter::with_capacity(1 << 20, file);
        data.write_all(&file_header::encode_compacted(base, span))
            .map_err(|e| Error::io("write cleaned segment", &path, e))?;
        Ok(CleanedWriter {
            base,
            end,
            data,
            position: FILE_HEADER_LEN,
            policy: IndexPolicy::new(index_interval, base),
            offsets: file_header::encode(FileKind::OffsetIndex, base).to_vec(),
            times: file_header::encode(FileKind::TimeIndex, base).to_vec(),
            max_batch_bytes,
            paths,
        })
    }

    /// Appends a whole, checked batch whose offsets lie in the segment, after the previous one.
    pub fn push(&mut self, batch: &[u8], header: &BatchHeader) -> Result<()> {
        debug_assert!(header.base_offset >= self.base && header.next_offset() <= self.end);
        if header.layout != crate::record::codec::Layout::Kafka {
            // The cleaner converts format 1/2 batches before pushing them.
            return Err(Error::invalid(
                "a cleaned segment (format 3) holds Kafka v2 batches only",
            ));
        }
        let path = &self.paths.log;
        crate::failpoint::hit(crate::failpoint::sites::CLEANED_WRITE, path)
            .and_then(|()| self.data.write_all(batch))
            .map_err(|e| Error::io("write cleaned segment", with_suffix(path, CLEANED), e))?;
        let (o, t) = self.policy.note(self.position, header);
        if let Some(o) = o {
            self.offsets.extend_from_slice(&o.encode());
        }
        if let Some(t) = t {
            self.times.extend_from_slice(&t.encode());
        }
        self.position += batch.len();
        Ok(())
    }

    /// Writes the indexes, fsyncs all three `.cleaned` files and maps them as a sealed,
    /// compacted segment under its final paths (which the swap then moves the files to).
    pub fn finish(mut self) -> Result<Arc<Segment>> {
        if let Some(t) = self.policy.final_time_entry() {
            self.times.extend_from_slice(&t.encode());
        }
        let log_path = with_suffix(&self.paths.log, CLEANED);
        let file = self
            .data
            .into_inner()
            .map_err(|e| Error::io("write cleaned segment", &log_path, e.into_error()))?;
        // NOTE: the content must be durable before the rename that commits it.
        file.sync_all()
            .map_err(|e| Error::io("fsync cleaned segment", &log_path, e))?;
        let data = Mapping::read_only(&file, self.position)
            .map_err(|e| Error::io("map cleaned segment", &log_path, e))?;
        let index = write_synced(&with_suffix(&self.paths.index, CLEANED), &self.offsets)?;
        let time_index = write_synced(&with_suffix(&self.paths.time_index, CLEANED), &self.times)?;
        let max_ts = if self.position > FILE_HEADER_LEN {
            self.policy.max_timestamp
        } else {
            i64::MIN
        };
        Ok(Arc::new(Segment {
            base_offset: self.base,
            paths: self.paths,
            data,
            index,
            time_index,
            next_offset: AtomicU64::new(self.end),
            max_timestamp: AtomicI64::new(max_ts),
            max_batch_bytes: self.max_batch_bytes,
            sealed: AtomicBool::new(true),
            compacted: true,
            verified: super::verified::Verified::new(self.position),
            layout: crate::record::codec::Layout::Kafka,
        }))
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<Arc<Mapping>> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| Error::io("create cleaned index", path, e))?;
    f.write_all(bytes)
        .map_err(|e| Error::io("write cleaned index", path, e))?;
    f.sync_all()
        .map_err(|e| Error::io("fsync cleaned index", path, e))?;
    Mapping::read_only(&f, bytes.len()).map_err(|e| Error::io("map cleaned index", path, e))
}

/// Removes the `.cleaned` files of a segment (a swap that will not happen).
pub(crate) fn abandon(paths: &SegmentPaths) -> Result<()> {
    for p in swap_order(paths) {
        remove_if_exists(&with_suffix(p, CLEANED))?;
    }
    Ok(())
}

/// Step 2 of the swap: renames the `.cleaned` files to `.swap`, the data file last (the commit
/// point), and syncs the directory. After this returns the swap is decided.
pub(crate) fn commit(dir: &Path, paths: &SegmentPaths) -> Result<()> {
    for p in swap_order(paths) {
        rename(&with_suffix(p, CLEANED), &with_suffix(p, SWAP))?;
    }
    crate::fs::sync_dir(dir)
}

/// Step 3 of the swap: deletes the replaced segments `replaced` (not the swapped one itself),
/// moves the `.swap` files over the originals (data last; an index without a `.swap` file is
/// deleted, to be rebuilt) and syncs the directory. Returns the files removed.
pub(crate) fn finish(dir: &Path, base: u64, replaced: &[u64]) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for &other in replaced {
        let p = SegmentPaths::new(dir, other);
        // The data file first: what recovery looks for. Indexes left alone are removed at open.
        for path in [&p.log, &p.index, &p.time_index] {
            if remove_if_exists(path)? {
                removed.push(path.clone());
            }
        }
    }
    let paths = SegmentPaths::new(dir, base);
    for p in swap_order(&paths) {
        let swap = with_suffix(p, SWAP);
        if swap.exists() {
            rename(&swap, p)?;
        } else if p != &paths.log && remove_if_exists(p)? {
            // An index of the old data without its replacement: useless, rebuild it.
            removed.push(p.clone());
        }
    }
    crate::fs::sync_dir(dir)?;
    Ok(removed)
}
