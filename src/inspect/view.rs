//! Read-only views of a partition log and of a store directory.
//!
//! A view takes no lock and writes nothing: no recovery cut, no checkpoint, no index rebuild. It
//! lists the segments, trusts sealed ones to end where the next begins, and finds the end of the
//! active segment by scanning, with CRC checks, from the furthest point it can vouch for: the
//! recovery checkpoint or the last offset index entry, whichever is later and holds. A writer in
//! another process writes whole batches before it publishes them, so the view ends at the last
//! batch that was completely written when it looked. For a log that fsyncs every append that may
//! include a batch whose fsync is still under way.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{corrupt, Error, ErrorKind, Result};
use crate::inspect::scanner::{read_at, BatchScanner, Step};
use crate::log::checkpoint::Checkpoint;
use crate::record::codec::BatchHeader;
use crate::record::BatchRef;
use crate::segment::file_header::{self, FileKind, FILE_HEADER_LEN};
use crate::segment::index::{self, OffsetEntry, TimeEntry, OFFSET_ENTRY_LEN, TIME_ENTRY_LEN};
use crate::segment::{parse_file_name, SegmentPaths};

/// One segment as a read-only view sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentSummary {
    /// Offset of its first batch (its file name).
    pub base_offset: u64,
    /// Offset after its last batch.
    pub next_offset: u64,
    /// Bytes of data, file header included (for the active segment: up to its last whole batch).
    pub size_bytes: u64,
    /// The `.log` file.
    pub path: PathBuf,
    /// Whether this is the last (active) segment.
    pub active: bool,
}

/// A read-only view of one partition log directory, as it was when opened.
///
/// ```
/// use riverbed::{inspect::PartitionView, BatchBuilder, Compression, Log, LogConfig};
///
/// let dir = tempfile::tempdir()?;
/// let log = Log::open(dir.path(), LogConfig::default())?;       // the writer keeps it open
/// let mut b = BatchBuilder::new(Compression::None);
/// b.append(1_700_000_000_000, None, Some(b"hello"), &[]);
/// log.append(&b.build()?)?;
///
/// let view = PartitionView::open(dir.path())?;                 // no lock taken
/// assert_eq!((view.log_start_offset(), view.log_end_offset()), (0, 1));
/// let mut reader = view.reader(0)?;
/// let batch = reader.next_batch()?.expect("one batch");
/// assert_eq!(batch.records()?.iter().next().unwrap()?.value(), Some(&b"hello"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct PartitionView {
    dir: PathBuf,
    segments: Vec<SegmentSummary>,
}

impl PartitionView {
    /// Opens a view of the log in `dir`.
    ///
    /// # Errors
    /// [`Io`](ErrorKind::Io) if the directory cannot be listed or a file read;
    /// [`Corruption`](ErrorKind::Corruption) if a segment's file header is bad.
    pub fn open(dir: impl AsRef<Path>) -> Result<PartitionView> {
        let dir = dir.as_ref();
        // Retention may delete the oldest segment between the listing and the look at it: list
        // again then.
        let mut attempts = 0;
        loop {
            match Self::try_open(dir) {
                Err(e) if attempts < 5 && is_not_found(&e) => attempts += 1,
                other => return other,
            }
        }
    }

    fn try_open(dir: &Path) -> Result<PartitionView> {
        let bases = list_segments(dir)?;
        let mut segments = Vec::with_capacity(bases.len());
        for (i, &base) in bases.iter().enumerate() {
            let paths = SegmentPaths::new(dir, base);
            let file =
                File::open(&paths.log).map_err(|e| Error::io("open segment", &paths.log, e))?;
            let len = file
                .metadata()
                .map_err(|e| Error::io("stat segment", &paths.log, e))?
                .len();
            if let Some(&next) = bases.get(i + 1) {
                // Sealed: cut to its last batch, and the next segment starts where it ends.
                segments.push(SegmentSummary {
                    base_offset: base,
                    next_offset: next,
                    size_bytes: len,
                    path: paths.log,
                    active: false,
                });
                continue;
            }
            let (end, next) = if header_ok(&file, &paths.log, base, len) {
                find_end(dir, &paths, base, len)?
            } else {
                // Being created (a roll under way) or damaged: nothing readable in it.
                (FILE_HEADER_LEN as u64, base)
            };
            segments.push(SegmentSummary {
                base_offset: base,
                next_offset: next,
                size_bytes: end,
                path: paths.log,
                active: true,
            });
        }
        Ok(PartitionView {
            dir: dir.to_path_buf(),
            segments,
        })
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// First offset in the log.
    pub fn log_start_offset(&self) -> u64 {
        self.segments.first().map_or(0, |s| s.base_offset)
    }

    /// Offset after the last whole batch.
    pub fn log_end_offset(&self) -> u64 {
        self.segments.last().map_or(0, |s| s.next_offset)
    }

    /// Bytes of segment data.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size_bytes).sum()
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> &[SegmentSummary] {
        &self.segments
    }

    /// A reader of the batches holding offsets from `from` on, up to the end of the view.
    ///
    /// # Errors
    /// [`OffsetOutOfRange`](ErrorKind::OffsetOutOfRange) outside `[log start, log end]`.
    pub fn reader(&self, from: u64) -> Result<ViewReader> {
        let (start, end) = (self.log_start_offset(), self.log_end_offset());
        if from < start || from > end {
            return Err(ErrorKind::OffsetOutOfRange {
                partition: None,
                requested: from,
                log_start: start,
                log_end: end,
            }
            .into());
        }
        let first = self
            .segments
            .partition_point(|s| s.base_offset <= from)
            .saturating_sub(1);
        Ok(ViewReader {
            dir: self.dir.clone(),
            segments: self.segments[first.min(self.segments.len())..].to_vec(),
            from,
            scanner: None,
            expected: 0,
            gaps: false,
            current: None,
        })
    }

    /// The offset and timestamp of the first record whose timestamp is at least `timestamp`, or
    /// `None` if every record is older.
    ///
    /// # Errors
    /// [`Corruption`](ErrorKind::Corruption) if a batch on the way fails its checks;
    /// [`Io`](ErrorKind::Io).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(u64, i64)>> {
        for seg in &self.segments {
            let paths = SegmentPaths::new(&self.dir, seg.base_offset);
            let times = IndexReader::open(&paths.time_index, FileKind::TimeIndex, seg)?;
            let (mut from, mut max_known) = (seg.base_offset, None);
            if let Some(times) = &times {
                let n = times.len();
                max_known = n
                    .checked_sub(1)
                    .and_then(|i| times.time_entry(i))
                    .map(|e| e.timestamp);
                // The last entry whose timestamp is below the target: start there.
                if let Some(e) =
                    index::time_floor_by(times.len(), |i| times.time_entry(i), timestamp)
                {
                    from = seg.base_offset + u64::from(e.relative_offset);
                }
            }
            if !seg.active && max_known.is_some_and(|m| m < timestamp) {
                continue;
            }
            let mut reader = ViewReader {
                dir: self.dir.clone(),
                segments: vec![seg.clone()],
                from,
                scanner: None,
                expected: 0,
                gaps: false,
                current: None,
            };
            while let Some(batch) = reader.next_batch()? {
                if batch.max_timestamp() < timestamp {
                    continue;
                }
                for r in batch.records()?.iter() {
                    let r = r?;
                    if r.timestamp() >= timestamp && r.offset() >= from {
                        return Ok(Some((r.offset(), r.timestamp())));
                    }
                }
            }
        }
        Ok(None)
    }
}

/// Reads batches of a [`PartitionView`] in order, checking framing, CRC and offset continuity.
#[derive(Debug)]
pub struct ViewReader {
    dir: PathBuf,
    segments: Vec<SegmentSummary>,
    from: u64,
    scanner: Option<BatchScanner>,
    expected: u64,
    /// Whether the segment being read is a compacted one (gaps between batches allowed).
    gaps: bool,
    current: Option<BatchHeader>,
}

impl ViewReader {
    /// The next batch holding an offset at or after the start (the first one may begin before
    /// it: skip its smaller offsets), or `None` at the end of the view. CRC checked.
    ///
    /// # Errors
    /// [`Corruption`](ErrorKind::Corruption) naming the file and position; [`Io`](ErrorKind::Io).
    pub fn next_batch(&mut self) -> Result<Option<BatchRef<'_>>> {
        self.current = None;
        loop {
            let Some(seg) = self.segments.first() else {
                return Ok(None);
            };
            if self.scanner.is_none() {
                // An active segment that held nothing when the view was taken may be one a roll
                // is still creating (its file may not have its header yet): nothing to read.
                if seg.active && seg.next_offset <= seg.base_offset {
                    self.segments.remove(0);
                    continue;
                }
                let (pos, expected, gaps) = self.start_in(seg)?;
                self.scanner = Some(BatchScanner::open(&seg.path, pos, Some(seg.size_bytes))?);
                self.expected = expected;
                self.gaps = gaps;
            }
            let Some(scanner) = self.scanner.as_mut() else {
                continue;
            };
            match scanner.step()? {
                Step::Batch {
                    pos,
                    header,
                    crc_ok,
                } => {
                    let in_order = if self.gaps {
                        header.base_offset >= self.expected
                    } else {
                        header.base_offset == self.expected
                    };
                    if !in_order {
                        return Err(corrupt(
                            pos,
                            format!("a batch with base offset {}", self.expected),
                            format!("base offset {}", header.base_offset),
                        )
                        .in_file(scanner.path(), 0));
                    }
                    if !crc_ok {
                        return Err(scanner.crc_error(&header).in_file(scanner.path(), 0));
                    }
                    self.expected = header.next_offset();
                    if header.last_offset() >= self.from && header.base_offset < seg.next_offset {
                        self.current = Some(header);
                        break;
                    }
                }
                Step::Bad { error, .. } => return Err(error),
                Step::Zeros { .. } | Step::End => {
                    if !seg.active && !self.gaps && self.expected != seg.next_offset {
                        return Err(corrupt(
                            scanner.pos(),
                            format!("more batches, up to offset {}", seg.next_offset),
                            format!("the end of the segment after offset {}", self.expected),
                        )
                        .in_file(scanner.path(), 0));
                    }
                    self.segments.remove(0);
                    self.scanner = None;
                }
            }
        }
        match (&self.scanner, self.current) {
            (Some(s), Some(h)) => Ok(Some(BatchRef::from_checked(s.batch_bytes(), h))),
            _ => Ok(None),
        }
    }

    /// Where to start in `seg`: the offset index's floor for the start offset in the first
    /// segment (checked when the batch is read), the first batch otherwise.
    /// Also says whether the segment is compacted (its batches may leave gaps).
    fn start_in(&self, seg: &SegmentSummary) -> Result<(u64, u64, bool)> {
        let mut head = [0u8; FILE_HEADER_LEN];
        let file = File::open(&seg.path).map_err(|e| Error::io("open segment", &seg.path, e))?;
        read_at(&file, &seg.path, &mut head, 0)?;
        let gaps =
            file_header::check(&head, FileKind::Log, seg.base_offset, &seg.path)?.compacted();
        let start = (FILE_HEADER_LEN as u64, seg.base_offset, gaps);
        if self.from <= seg.base_offset {
            return Ok(start);
        }
        let paths = SegmentPaths::new(&self.dir, seg.base_offset);
        let Some(index) = IndexReader::open(&paths.index, FileKind::OffsetIndex, seg)? else {
            return Ok(start);
        };
        // Every relative offset is at most `u32::MAX`: a larger target is past all of them.
        let target = u32::try_from(self.from - seg.base_offset).unwrap_or(u32::MAX);
        let found = index::offset_floor_by(index.len(), |i| index.offset_entry(i), target);
        Ok(found.map_or(start, |e| {
            (
                u64::from(e.position),
                seg.base_offset + u64::from(e.relative_offset),
                gaps,
            )
        }))
    }
}

/// Entries of an index file read with `pread`, one at a time (so a preallocated index of the
/// active segment costs a binary search, not a read of the whole file).
pub(crate) struct IndexReader {
    file: File,
    path: PathBuf,
    entry_len: usize,
    n: usize,
    data_len: u64,
}

impl IndexReader {
    /// Opens an index whose header is sound; `None` when it is missing or its header is bad (the
    /// reader then walks from the first batch). The entry count is the file's for a sealed
    /// segment, and the non-zero prefix for the active one.
    pub fn open(path: &Path, kind: FileKind, seg: &SegmentSummary) -> Result<Option<IndexReader>> {
        let Ok(file) = File::open(path) else {
            return Ok(None);
        };
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat index", path, e))?
            .len();
        let mut head = [0u8; FILE_HEADER_LEN];
        if len < FILE_HEADER_LEN as u64
            || read_at(&file, path, &mut head, 0).is_err()
            || file_header::check(&head, kind, seg.base_offset, path).is_err()
        {
            return Ok(None);
        }
        let entry_len = match kind {
            FileKind::TimeIndex => TIME_ENTRY_LEN,
            _ => OFFSET_ENTRY_LEN,
        };
        let mut r = IndexReader {
            file,
            path: path.to_path_buf(),
            entry_len,
            n: 0,
            data_len: seg.size_bytes,
        };
        // Entries must point inside the data the view vouches for: positions only grow, so the
        // valid entries are a prefix (zeros, and entries of batches past the end, follow).
        let in_file = (len as usize - FILE_HEADER_LEN) / entry_len;
        r.n = index::last_true(in_file, |i| {
            r.position(i).is_some_and(|p| p != 0 && p < r.data_len)
        })
        .map_or(0, |i| i + 1);
        Ok(Some(r))
    }

    pub fn len(&self) -> usize {
        self.n
    }

    fn raw(&self, i: usize) -> Option<[u8; TIME_ENTRY_LEN]> {
        let mut b = [0u8; TIME_ENTRY_LEN];
        let pos = (FILE_HEADER_LEN + i * self.entry_len) as u64;
        read_at(&self.file, &self.path, &mut b[..self.entry_len], pos).ok()?;
        Some(b)
    }

    fn position(&self, i: usize) -> Option<u64> {
        let position = if self.entry_len == TIME_ENTRY_LEN {
            self.time_entry(i)?.position
        } else {
            self.offset_entry(i)?.position
        };
        Some(u64::from(position))
    }

    pub fn offset_entry(&self, i: usize) -> Option<OffsetEntry> {
        OffsetEntry::at(&self.raw(i)?[..OFFSET_ENTRY_LEN], 0)
    }

    pub fn time_entry(&self, i: usize) -> Option<TimeEntry> {
        TimeEntry::at(&self.raw(i)?, 0)
    }
}

fn is_not_found(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

/// Base offsets of the `.log` files in `dir`, sorted.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut bases = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("list directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list directory", dir, e))?;
        if let Some((base, "log")) = entry.file_name().to_str().and_then(parse_file_name) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

fn header_ok(file: &File, path: &Path, base: u64, len: u64) -> bool {
    let mut head = [0u8; FILE_HEADER_LEN];
    len >= FILE_HEADER_LEN as u64
        && read_at(file, path, &mut head, 0).is_ok()
        && file_header::check(&head, FileKind::Log, base, path).is_ok()
}

/// Whether a whole, CRC-valid batch with base offset `expected` (or the zeros of an unwritten
/// tail) is at `pos`.
fn starts_batch(path: &Path, pos: u64, expected: u64, len: u64) -> Result<bool> {
    let mut s = BatchScanner::open(path, pos, Some(len))?;
    Ok(match s.step()? {
        Step::Batch { header, crc_ok, .. } => crc_ok && header.base_offset == expected,
        Step::Zeros { .. } | Step::End => true,
        Step::Bad { .. } => false,
    })
}

/// Finds where the active segment's whole batches end: scans, with CRC checks, from the furthest
/// of the checkpoint and the last offset index entry that holds.
fn find_end(dir: &Path, paths: &SegmentPaths, base: u64, len: u64) -> Result<(u64, u64)> {
    let mut candidates = vec![(FILE_HEADER_LEN as u64, base)];
    if let Some(cp) = Checkpoint::read(dir)?.filter(|c| c.segment_base == base) {
        if cp.position >= FILE_HEADER_LEN as u64 && cp.position <= len {
            candidates.push((cp.position, cp.next_offset));
        }
    }
    let whole = SegmentSummary {
        base_offset: base,
        next_offset: base,
        size_bytes: len,
        path: paths.log.clone(),
        active: true,
    };
    if let Some(index) = IndexReader::open(&paths.index, FileKind::OffsetIndex, &whole)? {
        if let Some(e) = index
            .len()
            .checked_sub(1)
            .and_then(|i| index.offset_entry(i))
        {
            candidates.push((u64::from(e.position), base + u64::from(e.relative_offset)));
        }
    }
    candidates.sort_unstable();
    let mut start = (FILE_HEADER_LEN as u64, base);
    for &(pos, next) in candidates.iter().rev() {
        if starts_batch(&paths.log, pos, next, len)? {
            start = (pos, next);
            break;
        }
    }
    let mut s = BatchScanner::open(&paths.log, start.0, Some(len))?;
    let mut next = start.1;
    loop {
        match s.step()? {
            Step::Batch {
                pos,
                header,
                crc_ok,
            } => {
                if !crc_ok || header.base_offset != next {
                    return Ok((pos, next));
                }
                next = header.next_offset();
            }
            Step::Zeros { pos } | Step::Bad { pos, .. } => return Ok((pos, next)),
            Step::End => return Ok((s.pos(), next)),
        }
    }
}
