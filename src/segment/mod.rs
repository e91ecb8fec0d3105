//! A segment: one `{base_offset:020}.log` data file with its `.index` and `.timeindex`.
//!
//! [`Segment`] is the shared, read-side view that readers hold (`Arc<Segment>`); the active
//! segment is also owned by one [`ActiveSegment`], the write side, until it is sealed. This module
//! owns every byte-level file format of a segment; `mmap` is the one place with `unsafe`.

#[expect(
    unsafe_code,
    reason = "file-backed shared memory maps; the SAFETY contract is at the top of mmap.rs"
)]
pub(crate) mod mmap;

pub(crate) mod cleaned;
pub mod file_header;
pub mod index;
pub mod scan;
pub(crate) mod verified;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::failpoint::sites;
use crate::record::codec::{self, BatchHeader, Layout};
use crate::record::{BatchRef, Records};
use file_header::{FileKind, FILE_HEADER_LEN};
use index::{OffsetEntry, TimeEntry, OFFSET_ENTRY_LEN, TIME_ENTRY_LEN};
use mmap::{MapWriter, Mapping};
use verified::Verified;

/// The file paths of a segment (the `.txnindex` exists only for sealed segments with aborts).
#[derive(Clone, Debug)]
pub(crate) struct SegmentPaths {
    pub log: PathBuf,
    pub index: PathBuf,
    pub time_index: PathBuf,
    pub txn_index: PathBuf,
}

impl SegmentPaths {
    pub fn new(dir: &Path, base_offset: u64) -> SegmentPaths {
        SegmentPaths {
            log: dir.join(format!("{base_offset:020}.log")),
            index: dir.join(format!("{base_offset:020}.index")),
            time_index: dir.join(format!("{base_offset:020}.timeindex")),
            txn_index: dir.join(format!("{base_offset:020}.txnindex")),
        }
    }
}

/// Parses a segment file name (`00000000000000000042.log`) into its base offset and extension.
pub(crate) fn parse_file_name(name: &str) -> Option<(u64, &str)> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, ext))
}

/// The read side of a segment, shared by the writer and all readers.
#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: u64,
    pub paths: SegmentPaths,
    data: Arc<Mapping>,
    index: Arc<Mapping>,
    time_index: Arc<Mapping>,
    /// Offset after the last batch (the next segment's base once sealed).
    next_offset: AtomicU64,
    /// Largest timestamp in the segment, `i64::MIN` while empty.
    max_timestamp: AtomicI64,
    max_batch_bytes: usize,
    /// Set once no batch will be added: its data then ends exactly at `next_offset` (for a
    /// compacted segment: its last batch ends at or before it).
    sealed: AtomicBool,
    /// Written by the log cleaner (file header flag): offsets may leave gaps between batches, and
    /// the segment covers exactly `base_offset .. next_offset` whatever its batches hold.
    compacted: bool,
    /// The batches of `data` whose CRC a read has checked since it was mapped (`verified.rs`).
    verified: Verified,
    /// The layout of its batches, from the data file's header version (Kafka's in format 3).
    layout: Layout,
}

/// Whether a read filled its budget or ran off the end of the segment.
pub(crate) enum ReadProgress {
    Full,
    SegmentExhausted,
}

/// How much a read may still return: bytes of batches, and offsets in them from the read's
/// start on. A read returns at least one batch whatever its size.
pub(crate) struct ReadBudget {
    max_bytes: usize,
    used: usize,
    records: u64,
}

impl ReadBudget {
    pub fn new(max_bytes: usize, max_records: u64) -> ReadBudget {
        ReadBudget {
            max_bytes,
            used: 0,
            records: max_records,
        }
    }

    pub fn used_bytes(&self) -> usize {
        self.used
    }

    /// Whether a batch of `len` bytes may still be added.
    fn admits(&self, len: usize) -> bool {
        self.used == 0 || self.used + len <= self.max_bytes
    }

    /// Counts a batch holding `offsets` offsets at or after the read's start; returns whether
    /// the budget is now spent.
    fn take(&mut self, len: usize, offsets: u64) -> bool {
        self.used += len;
        self.records = self.records.saturating_sub(offsets);
        self.used >= self.max_bytes || self.records == 0
    }
}

impl Segment {
    /// Whether the segment is sealed: synced and cut to its content, no batch will be added. A
    /// segment the log rolled away from stays unsealed while its seal runs in the background.
    pub fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    /// Bytes in the data file, header included.
    pub fn size(&self) -> u64 {
        self.data.published() as u64
    }

    pub fn next_offset(&self) -> u64 {
        self.next_offset.load(Ordering::Acquire)
    }

    pub fn set_next_offset(&self, next: u64) {
        self.next_offset.store(next, Ordering::Release);
    }

    /// Checks, at open, the tail of a sealed segment: from its last offset-index entry (a short
    /// walk) to the end, the batches must be well framed and end exactly at the next segment's
    /// base. If not (the file was cut or damaged), the segment is marked as possibly holding
    /// every timestamp, so that time lookups walk into it and report the damage instead of
    /// skipping it, and retention keeps it for a person to look at; reads report it anyway.
    /// Returns whether the tail is sound.
    pub fn check_tail(&self) -> bool {
        let entries = Self::entries(&self.index);
        let last = (entries.len() / OFFSET_ENTRY_LEN)
            .checked_sub(1)
            .and_then(|i| OffsetEntry::at(entries, i))
            .map_or(self.base_offset, |e| {
                self.base_offset + u64::from(e.relative_offset)
            });
        let sound = self.walk_from_offset(last).all(|item| item.is_ok());
        if !sound {
            self.max_timestamp.store(i64::MAX, Ordering::Release);
        }
        sound
    }

    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp.load(Ordering::Acquire)
    }

    fn entries(map: &Mapping) -> &[u8] {
        map.bytes().get(FILE_HEADER_LEN..).unwrap_or(&[])
    }

    /// The framing-checked header of the batch at `pos` (CRC not verified).
    fn header_at(&self, bytes: &[u8], pos: usize) -> Result<BatchHeader> {
        BatchHeader::parse_stored(
            bytes.get(pos..).unwrap_or(&[]),
            self.max_batch_bytes,
            self.layout,
        )
        .map_err(|e| e.in_file(&self.paths.log, pos as u64))
    }

    /// Where to start scanning for `offset`, and the base offset the batch there must have.
    fn start_for(&self, offset: u64) -> (usize, u64) {
        let rel = u32::try_from(offset - self.base_offset).unwrap_or(u32::MAX);
        match index::offset_floor(Self::entries(&self.index), rel) {
            Some(e) => (
                e.position as usize,
                self.base_offset + u64::from(e.relative_offset),
            ),
            None => (FILE_HEADER_LEN, self.base_offset),
        }
    }

    /// Walks the batches from where the index says `offset` starts, checking framing and that
    /// offsets continue from batch to batch.
    fn walk_from_offset(&self, offset: u64) -> Walk<'_> {
        // NOTE: `sealed` before the bytes: if it is set, the bytes loaded after it are final.
        let sealed = self.sealed.load(Ordering::Acquire);
        let bytes = self.data.bytes();
        let (pos, expected) = self.start_for(offset.max(self.base_offset));
        Walk {
            seg: self,
            sealed,
            bytes,
            pos,
            expected,
            from_index: pos != FILE_HEADER_LEN,
            done: false,
        }
    }

    /// Whether the log cleaner wrote this segment (its offsets may have gaps).
    pub fn is_compacted(&self) -> bool {
        self.compacted
    }

    /// The layout of the segment's batches (from its data file's format version).
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The batches of a sealed segment from its start, each framing- and CRC-checked, as
    /// `(position, header, bytes)`. Offsets must continue as the format requires.
    pub fn batches(&self) -> impl Iterator<Item = Result<(usize, BatchRef<'_>)>> + '_ {
        let walk = Walk {
            seg: self,
            sealed: self.sealed.load(Ordering::Acquire),
            bytes: self.data.bytes(),
            pos: FILE_HEADER_LEN,
            expected: self.base_offset,
            from_index: false,
            done: false,
        };
        let bytes = walk.bytes;
        let path = &self.paths.log;
        walk.map(move |item| {
            let (pos, h) = item?;
            let batch = &bytes[pos..pos + h.total_len()];
            h.verify_crc(batch)
                .map_err(|e| e.in_file(path, pos as u64))?;
            Ok((pos, BatchRef::from_checked(batch, h)))
        })
    }

    /// Whether a read has checked the CRC of the batch at byte `pos` through this mapping.
    #[cfg(test)]
    pub(crate) fn is_verified(&self, pos: usize) -> bool {
        self.verified.contains(pos)
    }

    /// Checks the CRC of the batch at `pos` (framing-checked header `h`) unless a read already
    /// checked it through this mapping (see `verified.rs`), and remembers that it passed.
    #[inline]
    fn verify_once(&self, bytes: &[u8], pos: usize, h: &BatchHeader) -> Result<()> {
        if !self.verified.contains(pos) {
            h.verify_crc(bytes.get(pos..).unwrap_or(&[]))
                .map_err(|e| e.in_file(&self.paths.log, pos as u64))?;
            self.verified.insert(pos);
        }
        Ok(())
    }

    /// Appends to `out` the batches holding offsets `from..hw` until `budget` is spent (at least
    /// one batch overall is always returned). Every batch returned passed its CRC check, on this
    /// read or on an earlier read through the same mapping (`verified.rs`).
    pub fn read(
        &self,
        from: u64,
        hw: u64,
        budget: &mut ReadBudget,
        out: &mut Vec<BatchView>,
    ) -> Result<ReadProgress> {
        let walk = self.walk_from_offset(from);
        let bytes = walk.bytes;
        for item in walk {
            let (pos, h) = item?;
            if h.base_offset >= hw {
                return Ok(ReadProgress::Full);
            }
            let total = h.total_len();
            if h.last_offset() >= from {
                if !budget.admits(total) {
                    return Ok(ReadProgress::Full);
                }
                self.verify_once(bytes, pos, &h)?;
                out.push(BatchView {
                    map: Arc::clone(&self.data),
                    start: pos,
                    header: h,
                });
                // Offsets, not records: a compacted batch may hold fewer records than its span,
                // and then the read stops a little early.
                let offsets = h.last_offset() + 1 - h.base_offset.max(from);
                if budget.take(total, offsets) {
                    return Ok(ReadProgress::Full);
                }
            }
        }
        Ok(ReadProgress::SegmentExhausted)
    }

    /// Calls `f` with the header and bytes of every batch holding offsets from `from` below
    /// `hw`, in order, without verifying CRCs (the callers replay headers that recovery or the
    /// writer already checked, and verify what they decode further).
    pub fn for_each_batch(
        &self,
        from: u64,
        hw: u64,
        mut f: impl FnMut(&BatchHeader, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let walk = self.walk_from_offset(from);
        let bytes = walk.bytes;
        for item in walk {
            let (pos, h) = item?;
            if h.base_offset >= hw {
                break;
            }
            if h.last_offset() >= from {
                let batch = bytes.get(pos..pos + h.total_len()).unwrap_or(&[]);
                f(&h, batch).map_err(|e| e.in_file(&self.paths.log, pos as u64))?;
            }
        }
        Ok(())
    }

    /// The first record from offset `from` on and below `hw` whose timestamp is `>= ts`, with
    /// its timestamp (`from`: the log start offset, which may lie inside this segment).
    pub fn find_by_time(&self, ts: i64, from: u64, hw: u64) -> Result<Option<(u64, i64)>> {
        if self.max_timestamp() < ts {
            return Ok(None);
        }
        let start = index::time_floor(Self::entries(&self.time_index), ts)
            .map_or(self.base_offset, |e| {
                self.base_offset + u64::from(e.relative_offset)
            })
            .max(from);
        let walk = self.walk_from_offset(start);
        let bytes = walk.bytes;
        for item in walk {
            let (pos, h) = item?;
            if h.base_offset >= hw {
                break;
            }
            // Checked before its max timestamp is trusted to skip it.
            self.verify_once(bytes, pos, &h)?;
            if h.max_timestamp >= ts {
                let batch = BatchRef::from_checked(&bytes[pos..pos + h.total_len()], h);
                let records = batch
                    .records()
                    .map_err(|e| e.in_file(&self.paths.log, pos as u64))?;
                for r in records.iter() {
                    let r = r.map_err(|e| e.in_file(&self.paths.log, pos as u64))?;
                    if r.timestamp() >= ts && r.offset() < hw && r.offset() >= from {
                        return Ok(Some((r.offset(), r.timestamp())));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Opens a sealed segment read-only. Indexes that are missing or fail their checks are
    /// rebuilt from the data file; the returned flag says whether that happened.
    pub fn open_sealed(
        dir: &Path,
        base_offset: u64,
        max_batch_bytes: usize,
        index_interval: usize,
    ) -> Result<(Segment, bool)> {
        let paths = SegmentPaths::new(dir, base_offset);
        let file = File::open(&paths.log).map_err(|e| Error::io("open segment", &paths.log, e))?;
        let len = file_len(&file, &paths.log)?;
        let (data, info) = map_checked(&file, len, FileKind::Log, base_offset, &paths.log)?;
        let index = open_index(
            &paths.index,
            FileKind::OffsetIndex,
            base_offset,
            OFFSET_ENTRY_LEN,
            len,
        );
        let time_index = open_index(
            &paths.time_index,
            FileKind::TimeIndex,
            base_offset,
            TIME_ENTRY_LEN,
            len,
        );
        let (index, time_index, rebuilt) = match (index, time_index) {
            (Some(i), Some(t)) => (i, t, false),
            _ => {
                let (i, t) = rebuild_indexes(
                    &paths,
                    &data,
                    base_offset,
                    max_batch_bytes,
                    index_interval,
                    info.compacted(),
                )?;
                (i, t, true)
            }
        };
        let max_ts = last_time_entry(&time_index).map_or(i64::MIN, |e| e.timestamp);
        Ok((
            Segment {
                base_offset,
                paths,
                data,
                index,
                time_index,
                // A compacted segment knows its end; the caller sets the others' from the next
                // segment's base.
                next_offset: AtomicU64::new(base_offset + u64::from(info.span)),
                max_timestamp: AtomicI64::new(max_ts),
                max_batch_bytes,
                sealed: AtomicBool::new(true),
                compacted: info.compacted(),
                verified: Verified::new(len),
                layout: info.layout(),
            },
            rebuilt,
        ))
    }
}

/// Iterator over the batches of a segment from a starting position: each item is a batch's
/// position and framing-checked header. It checks that the first batch has the offset the index
/// promised, that each next batch starts right after the previous one's last offset, and that a
/// sealed segment ends exactly where the next begins; a violation ends the walk with a
/// corruption error naming the file. In a compacted segment, batches need only start after the
/// previous one's last offset, and the last one end at or before the segment's end.
struct Walk<'a> {
    seg: &'a Segment,
    /// Whether the segment was sealed before `bytes` was loaded (so `bytes` is all of it).
    sealed: bool,
    bytes: &'a [u8],
    pos: usize,
    expected: u64,
    from_index: bool,
    done: bool,
}

impl Iterator for Walk<'_> {
    type Item = Result<(usize, BatchHeader)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let seg = self.seg;
        if self.pos >= self.bytes.len() {
            self.done = true;
            let short = if seg.compacted {
                self.expected > seg.next_offset()
            } else {
                self.expected != seg.next_offset()
            };
            if self.sealed && short {
                return Some(Err(crate::error::corrupt(
                    self.pos as u64,
                    format!("more batches, up to offset {}", seg.next_offset()),
                    format!(
                        "the end of the segment after offset {}",
                        self.expected.wrapping_sub(1)
                    ),
                )
                .in_file(&seg.paths.log, 0)));
            }
            return None;
        }
        let h = match seg.header_at(self.bytes, self.pos) {
            Ok(h) => h,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        // In a compacted segment a batch may start past the expected offset (the cleaner removed
        // what lay between), except where an index entry names it exactly, and it must end
        // within the segment.
        let out_of_order = if seg.compacted && !self.from_index {
            h.base_offset < self.expected || (self.sealed && h.next_offset() > seg.next_offset())
        } else {
            h.base_offset != self.expected
        };
        if out_of_order {
            self.done = true;
            let e = if self.from_index {
                crate::error::corrupt(
                    0,
                    format!(
                        "an index entry naming the base offset of the batch at byte {} ({})",
                        self.pos, h.base_offset
                    ),
                    format!("an entry naming offset {}", self.expected),
                )
                .in_file(&seg.paths.index, 0)
            } else {
                let expected = if seg.compacted {
                    format!(
                        "a batch with base offset {} or more, ending by offset {}",
                        self.expected,
                        seg.next_offset()
                    )
                } else {
                    format!("a batch with base offset {}", self.expected)
                };
                crate::error::corrupt(
                    self.pos as u64,
                    expected,
                    format!("base offset {}", h.base_offset),
                )
                .in_file(&seg.paths.log, 0)
            };
            return Some(Err(e));
        }
        self.from_index = false;
        let item = (self.pos, h);
        self.pos += h.total_len();
        self.expected = h.next_offset();
        Some(Ok(item))
    }
}

fn last_time_entry(map: &Mapping) -> Option<TimeEntry> {
    let entries = Segment::entries(map);
    let n = entries.len() / TIME_ENTRY_LEN;
    n.checked_sub(1).and_then(|i| TimeEntry::at(entries, i))
}

fn file_len(file: &File, path: &Path) -> Result<usize> {
    let len = file
        .metadata()
        .map_err(|e| Error::io("stat", path, e))?
        .len();
    usize::try_from(len)
        .map_err(|_| Error::invalid(format!("{} is too large to map", path.display())))
}

/// Maps a sealed file read-only after checking its header.
fn map_checked(
    file: &File,
    len: usize,
    kind: FileKind,
    base: u64,
    path: &Path,
) -> Result<(Arc<Mapping>, file_header::HeaderInfo)> {
    if len < FILE_HEADER_LEN {
        return Err(crate::error::corrupt(
            0,
            format!("a {FILE_HEADER_LEN}-byte file header"),
            format!("a file of {len} bytes"),
        )
        .in_file(path, 0));
    }
    let map = Mapping::read_only(file, len).map_err(|e| Error::io("map segment file", path, e))?;
    let info = file_header::check(map.bytes(), kind, base, path)?;
    Ok((map, info))
}

/// Opens a sealed index if it passes the cheap checks: header, whole entries, every entry
/// well-ordered and pointing inside the data file.
fn open_index(
    path: &Path,
    kind: FileKind,
    base: u64,
    entry_len: usize,
    data_len: usize,
) -> Option<Arc<Mapping>> {
    let file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len() as usize;
    if len < FILE_HEADER_LEN || !(len - FILE_HEADER_LEN).is_multiple_of(entry_len) {
        return None;
    }
    let (map, _) = map_checked(&file, len, kind, base, path).ok()?;
    let entries = Segment::entries(&map);
    let n = entries.len() / entry_len;
    let valid = match kind {
        FileKind::TimeIndex => index::valid_time_prefix(entries, data_len),
        _ => index::valid_offset_prefix(entries, data_len),
    };
    // Sealing always writes a final time entry, so a non-empty segment without one is damaged.
    let time_entry_missing = kind == FileKind::TimeIndex && n == 0 && data_len > FILE_HEADER_LEN;
    (valid == n && !time_entry_missing).then_some(map)
}

/// Rebuilds both indexes of a sealed segment by scanning its data file, writes them atomically
/// (temp file, fsync, rename) and maps them.
fn rebuild_indexes(
    paths: &SegmentPaths,
    data: &Mapping,
    base: u64,
    max_batch_bytes: usize,
    interval: usize,
    gaps: bool,
) -> Result<(Arc<Mapping>, Arc<Mapping>)> {
    let mut policy = IndexPolicy::new(interval, base);
    let mut offsets = file_header::encode(FileKind::OffsetIndex, base).to_vec();
    let mut times = file_header::encode(FileKind::TimeIndex, base).to_vec();
    let scanned = scan::scan(
        data.bytes(),
        FILE_HEADER_LEN,
        base,
        max_batch_bytes,
        gaps,
        |pos, h| {
            let (o, t) = policy.note(pos, h);
            if let Some(o) = o {
                offsets.extend_from_slice(&o.encode());
            }
            if let Some(t) = t {
                times.extend_from_slice(&t.encode());
            }
        },
    );
    if let Some(t) = policy.final_time_entry() {
        times.extend_from_slice(&t.encode());
    }
    // A sealed segment is entirely below the recovery point, so a bad batch is corruption of
    // acknowledged data: report it rather than cut it away.
    if let Some(err) = scanned.error {
        return Err(err.in_file(&paths.log, 0));
    }
    // Fewer than 12 bytes after the last whole batch (the scan takes them for the zeros of an
    // unwritten tail) can only be the start of a batch cut short: a sealed file is cut to its
    // last batch, and a preallocated tail is far longer. Kafka's big-endian `baseOffset` starts
    // with zero bytes, so such a cut looks like zeros.
    let rest = data.bytes().len().saturating_sub(scanned.end);
    if rest > 0 && rest < codec::BATCH_LENGTH.end {
        return Err(crate::error::corrupt(
            scanned.end as u64,
            "a whole batch or the end of the sealed data file",
            format!("{rest} bytes, too few for a batch header"),
        )
        .in_file(&paths.log, 0));
    }
    let index = write_sealed_file(&paths.index, &offsets, FileKind::OffsetIndex, base)?;
    let time_index = write_sealed_file(&paths.time_index, &times, FileKind::TimeIndex, base)?;
    Ok((index, time_index))
}

/// Writes a rebuilt index and maps it; on a full disk, keeps it in memory only (the next open
/// rebuilds it again), so that a log opens on a full disk.
fn write_sealed_file(path: &Path, bytes: &[u8], kind: FileKind, base: u64) -> Result<Arc<Mapping>> {
    match crate::fs::write_atomic(path, bytes) {
        Ok(()) => {}
        Err(e) if e.is_no_space() => {
            tracing::warn!(
                target: "riverbed::recovery",
                file = %path.display(),
                "no space to write a rebuilt index; kept in memory until the next open"
            );
            // A damaged file left in place would be rejected again by the next open.
            let _ = std::fs::remove_file(path);
            return Mapping::in_memory(bytes).map_err(|e| Error::io("map rebuilt index", path, e));
        }
        Err(e) => return Err(e),
    }
    let file = File::open(path).map_err(|e| Error::io("open index", path, e))?;
    map_checked(&file, bytes.len(), kind, base, path).map(|(map, _)| map)
}

/// Decides which index entries a batch gets (Kafka's rule: an offset entry, and a time entry if
/// the segment's max timestamp grew, whenever `index_interval_bytes` have been written since the
/// last entry).
#[derive(Clone, Debug)]
pub(crate) struct IndexPolicy {
    interval: usize,
    base: u64,
    bytes_since_entry: usize,
    pub max_timestamp: i64,
    max_ts_rel: u32,
    max_ts_pos: u32,
    /// The timestamp of the last time index entry, `None` before the first (so that even a
    /// segment whose only timestamps are `i64::MIN` gets its entry).
    last_time_entry: Option<i64>,
    pub first_batch_timestamp: Option<i64>,
}

impl IndexPolicy {
    pub fn new(interval: usize, base: u64) -> IndexPolicy {
        IndexPolicy {
            interval,
            base,
            bytes_since_entry: 0,
            max_timestamp: i64::MIN,
            max_ts_rel: 0,
            max_ts_pos: 0,
            last_time_entry: None,
            first_batch_timestamp: None,
        }
    }

    /// Whether the next batch gets index entries.
    pub fn due(&self) -> bool {
        self.bytes_since_entry >= self.interval
    }

    /// Records a batch appended at `pos`; returns the entries to append.
    pub fn note(
        &mut self,
        pos: usize,
        h: &BatchHeader,
    ) -> (Option<OffsetEntry>, Option<TimeEntry>) {
        let rel = (h.base_offset - self.base) as u32;
        if self.first_batch_timestamp.is_none() {
            self.first_batch_timestamp = Some(h.max_timestamp);
        }
        // Positions start at 24, so a zero one means no batch was seen yet.
        let first = self.max_ts_pos == 0;
        if first || h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.max_ts_rel = rel;
            self.max_ts_pos = pos as u32;
        }
        let mut out = (None, None);
        if self.due() {
            out.0 = Some(OffsetEntry {
                relative_offset: rel,
                position: pos as u32,
            });
            out.1 = self.final_time_entry();
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += h.total_len();
        out
    }

    /// The policy's state for a segment whose batches before `position` were indexed by earlier
    /// runs (`last_offset` and `last_time` are the last entries kept).
    pub fn resume(
        interval: usize,
        base: u64,
        position: usize,
        last_offset: Option<OffsetEntry>,
        last_time: Option<TimeEntry>,
        first_batch_timestamp: Option<i64>,
    ) -> IndexPolicy {
        let mut p = IndexPolicy::new(interval, base);
        p.bytes_since_entry =
            position - last_offset.map_or(FILE_HEADER_LEN, |e| e.position as usize);
        if let Some(t) = last_time {
            p.max_timestamp = t.timestamp;
            p.max_ts_rel = t.relative_offset;
            p.max_ts_pos = t.position;
            p.last_time_entry = Some(t.timestamp);
        }
        p.first_batch_timestamp = first_batch_timestamp;
        p
    }

    /// A time entry for the current maximum, if the index does not have it yet.
    pub fn final_time_entry(&mut self) -> Option<TimeEntry> {
        let seen_a_batch = self.max_ts_pos != 0;
        if seen_a_batch
            && self
                .last_time_entry
                .is_none_or(|last| self.max_timestamp > last)
        {
            self.last_time_entry = Some(self.max_timestamp);
            Some(TimeEntry {
                timestamp: self.max_timestamp,
                relative_offset: self.max_ts_rel,
                position: self.max_ts_pos,
            })
        } else {
            None
        }
    }
}

/// The write side of the active segment.
pub(crate) struct ActiveSegment {
    pub seg: Arc<Segment>,
    data: MapWriter,
    index: MapWriter,
    time: MapWriter,
    pub policy: IndexPolicy,
    pwrite_from: usize,
}

/// Sizes of a new or reopened active segment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Capacity {
    pub data: usize,
    pub index_entries: usize,
    pub max_batch_bytes: usize,
    pub index_interval: usize,
    /// Batches of at least this many bytes are written with `pwrite` into reserved blocks
    /// instead of stored through the map. Large batches: storing through the map first has the
    /// kernel zero-fill each fresh page (see mmap.rs), which costs about as much as the copy.
    /// Every batch (`0`) for logs that fsync every append: on Linux a store into a shared map
    /// dirties the page through a write fault, and after each fsync the page is write-protected
    /// again, so every durable append paid a fault and a slower writeback; `pwrite` +
    /// `fdatasync` does not.
    pub pwrite_from: usize,
}

/// Where [`Capacity::pwrite_from`] starts for logs that do not fsync every append. Below it a
/// store through the map (no system call) is cheaper than a `pwrite`; from about two pages on,
/// the zero-fill the map's prefault costs is the larger price (`benches/segment_append.rs`).
pub(crate) const PWRITE_FROM: usize = 8 << 10;

/// What recovery found in an active segment that is being reopened.
pub(crate) struct Reopened {
    /// Whether the files may hold stale bytes past the valid content (anything was scanned or
    /// found wrong), which must then be cut away. After a clean close they hold only zeros there,
    /// and leaving their lengths alone spares the next fsync a journal commit.
    pub cut: bool,
    pub data_len: usize,
    pub next_offset: u64,
    pub offset_entries: usize,
    pub time_entries: usize,
    pub policy: IndexPolicy,
}

fn open_rw(path: &Path, create: bool) -> Result<File> {
    if create {
        crate::failpoint::hit(sites::SEGMENT_CREATE, path)
            .map_err(|e| Error::io("create segment file", path, e))?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(create)
        .open(path)
        .map_err(|e| {
            Error::io(
                if create {
                    "create segment file"
                } else {
                    "open segment file"
                },
                path,
                e,
            )
        })
}

/// Opens an index file of the active segment for writing; one that is missing or has a bad
/// header is recreated empty (recovery has then scheduled all its entries for rebuilding).
fn open_index_rw(path: &Path, kind: FileKind, base: u64) -> Result<File> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io("open index file", path, e))?;
    let mut head = Vec::with_capacity(FILE_HEADER_LEN);
    (&mut file)
        .take(FILE_HEADER_LEN as u64)
        .read_to_end(&mut head)
        .map_err(|e| Error::io("read index file", path, e))?;
    if file_header::check(&head, kind, base, path).is_err() {
        file.set_len(0)
            .map_err(|e| Error::io("reset index file", path, e))?;
        std::io::Seek::rewind(&mut file).map_err(|e| Error::io("reset index file", path, e))?;
        crate::failpoint::hit(sites::SEGMENT_HEADER, path)
            .and_then(|()| file.write_all(&file_header::encode(kind, base)))
            .map_err(|e| Error::io("write index header", path, e))?;
    }
    Ok(file)
}

/// Rewrites the header of an active data file that holds no batch and was created by an older
/// build (format 1/2) as format 3, so that the Kafka batches about to be appended to it match
/// its version. Synced before any batch can follow it.
fn upgrade_empty_header(file: &File, path: &Path, base_offset: u64) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; FILE_HEADER_LEN];
    if file.read_exact_at(&mut head, 0).is_err() {
        return Ok(()); // too short: the header check that follows reports it
    }
    let Ok(info) = file_header::check(&head, FileKind::Log, base_offset, path) else {
        return Ok(());
    };
    if info.layout() == Layout::Kafka {
        return Ok(());
    }
    file.write_all_at(&file_header::encode(FileKind::Log, base_offset), 0)
        .map_err(|e| Error::io("write segment header", path, e))?;
    file.sync_all()
        .map_err(|e| fsync_err("fsync segment file", path, e))
}

fn set_len(file: &File, len: usize, path: &Path) -> Result<()> {
    crate::failpoint::hit(sites::SEGMENT_SET_LEN, path)
        .and_then(|()| file.set_len(len as u64))
        .map_err(|e| Error::io("resize segment file", path, e))
}

/// An fsync failure: never clean, whatever the OS said (ARCHITECTURE.md, "fsync is never
/// retried").
fn fsync_err(op: &'static str, path: &Path, e: std::io::Error) -> Error {
    Error::io(op, path, e).into_unclean()
}

impl ActiveSegment {
    /// Creates the three files of a new segment, each with its header, synced.
    ///
    /// A full disk ([`NoSpace`](crate::ErrorKind::NoSpace)) while creating, writing or sizing a
    /// file is clean: the files created so far are removed again, so no half-created segment is
    /// left for the next open to trip over, and the call can be retried. A failed fsync is not
    /// clean ([`Io`](crate::ErrorKind::Io)); the files are removed all the same.
    pub fn create(dir: &Path, base_offset: u64, cap: Capacity) -> Result<ActiveSegment> {
        let paths = SegmentPaths::new(dir, base_offset);
        let made = Self::create_files(dir, base_offset, cap, &paths);
        if made.is_err() {
            // Best effort: these files hold nothing but headers (no batch was ever written).
            for path in [&paths.log, &paths.index, &paths.time_index] {
                let _ = std::fs::remove_file(path);
            }
        }
        made
    }

    fn create_files(
        dir: &Path,
        base_offset: u64,
        cap: Capacity,
        paths: &SegmentPaths,
    ) -> Result<ActiveSegment> {
        for (path, kind) in [
            (&paths.log, FileKind::Log),
            (&paths.index, FileKind::OffsetIndex),
            (&paths.time_index, FileKind::TimeIndex),
        ] {
            // A file left by a roll that crashed before its segment held a batch: start over.
            if path.exists() {
                std::fs::remove_file(path)
                    .map_err(|e| Error::io("remove stale segment file", path, e))?;
            }
            let mut f = open_rw(path, true)?;
            crate::failpoint::hit(sites::SEGMENT_HEADER, path)
                .and_then(|()| f.write_all(&file_header::encode(kind, base_offset)))
                .map_err(|e| Error::io("write segment header", path, e))?;
            // NOTE: the header must be durable before any batch is, or recovery could find
            // batches in a file it cannot identify.
            crate::failpoint::hit(sites::SEGMENT_FSYNC, path)
                .and_then(|()| f.sync_all())
                .map_err(|e| fsync_err("fsync segment file", path, e))?;
        }
        crate::fs::sync_dir(dir).map_err(Error::into_unclean)?;
        let reopened = Reopened {
            cut: false,
            data_len: FILE_HEADER_LEN,
            next_offset: base_offset,
            offset_entries: 0,
            time_entries: 0,
            policy: IndexPolicy::new(cap.index_interval, base_offset),
        };
        Self::reopen(dir, base_offset, cap, reopened)
    }

    /// Maps an existing active segment whose valid content recovery has established. Anything in
    /// the files past that content is cut away first (so stale bytes can never be read back as
    /// data), then the files are extended back to their capacity.
    pub fn reopen(
        dir: &Path,
        base_offset: u64,
        cap: Capacity,
        r: Reopened,
    ) -> Result<ActiveSegment> {
        let paths = SegmentPaths::new(dir, base_offset);
        let data_file = open_rw(&paths.log, false)?;
        if r.data_len <= FILE_HEADER_LEN {
            upgrade_empty_header(&data_file, &paths.log, base_offset)?;
        }
        let index_file = open_index_rw(&paths.index, FileKind::OffsetIndex, base_offset)?;
        let time_file = open_index_rw(&paths.time_index, FileKind::TimeIndex, base_offset)?;
        let data_cap = cap.data.max(r.data_len);
        let index_len = FILE_HEADER_LEN + r.offset_entries * OFFSET_ENTRY_LEN;
        let time_len = FILE_HEADER_LEN + r.time_entries * TIME_ENTRY_LEN;
        let index_cap =
            FILE_HEADER_LEN + (cap.index_entries.max(r.offset_entries + 2)) * OFFSET_ENTRY_LEN;
        let time_cap =
            FILE_HEADER_LEN + (cap.index_entries.max(r.time_entries + 2)) * TIME_ENTRY_LEN;
        for (file, path, len, capacity) in [
            (&data_file, &paths.log, r.data_len, data_cap),
            (&index_file, &paths.index, index_len, index_cap),
            (&time_file, &paths.time_index, time_len, time_cap),
        ] {
            let mut current = file_len(file, path)?;
            if current > len && r.cut {
                set_len(file, len, path)?;
                current = len;
            }
            if current < capacity {
                set_len(file, capacity, path)?;
            }
        }
        let io = |what: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |e| Error::io(what, path, e)
        };
        let data = MapWriter::new(data_file, &paths.log, data_cap, r.data_len)
            .map_err(io("map segment", &paths.log))?;
        let index = MapWriter::new(index_file, &paths.index, index_cap, index_len)
            .map_err(io("map index", &paths.index))?;
        let time = MapWriter::new(time_file, &paths.time_index, time_cap, time_len)
            .map_err(io("map time index", &paths.time_index))?;
        let info = file_header::check(
            data.mapping().bytes(),
            FileKind::Log,
            base_offset,
            &paths.log,
        )?;
        file_header::check(
            index.mapping().bytes(),
            FileKind::OffsetIndex,
            base_offset,
            &paths.index,
        )?;
        file_header::check(
            time.mapping().bytes(),
            FileKind::TimeIndex,
            base_offset,
            &paths.time_index,
        )?;
        let seg = Arc::new(Segment {
            base_offset,
            paths,
            data: Arc::clone(data.mapping()),
            index: Arc::clone(index.mapping()),
            time_index: Arc::clone(time.mapping()),
            next_offset: AtomicU64::new(r.next_offset),
            max_timestamp: AtomicI64::new(r.policy.max_timestamp),
            max_batch_bytes: cap.max_batch_bytes,
            sealed: AtomicBool::new(false),
            compacted: false,
            verified: Verified::new(data_cap),
            layout: info.layout(),
        });
        Ok(ActiveSegment {
            seg,
            data,
            index,
            time,
            policy: r.policy,
            pwrite_from: cap.pwrite_from,
        })
    }

    /// Byte position where the next batch goes.
    pub fn position(&self) -> usize {
        self.data.position()
    }

    /// Number of entries in the offset index and the time index.
    pub fn entry_counts(&self) -> (u32, u32) {
        (
            ((self.index.position() - FILE_HEADER_LEN) / OFFSET_ENTRY_LEN) as u32,
            ((self.time.position() - FILE_HEADER_LEN) / TIME_ENTRY_LEN) as u32,
        )
    }

    pub fn is_empty(&self) -> bool {
        self.data.position() <= FILE_HEADER_LEN
    }

    /// Whether a batch of `len` bytes fits, with room for its index entries and the final time
    /// entry written when the segment is sealed.
    pub fn has_room(&self, len: usize) -> bool {
        self.data.position() + len <= self.data.capacity()
            && self.index.position() + 2 * OFFSET_ENTRY_LEN <= self.index.capacity()
            && self.time.position() + 2 * TIME_ENTRY_LEN <= self.time.capacity()
    }

    /// Whether a batch of `len` bytes is written with `pwrite` (else stored through the map).
    /// Where blocks cannot be reserved, only logs that fsync every append take `pwrite` (and a
    /// full disk then shows up as a failed write, which poisons the log).
    fn writes_through(&self, len: usize) -> bool {
        len >= self.pwrite_from && (self.pwrite_from == 0 || self.data.can_reserve())
    }

    /// Allocates room for a batch of `len` bytes and its index entries (and the final time
    /// entry sealing adds). An error here — [`NoSpace`](crate::ErrorKind::NoSpace) for a full
    /// disk — leaves the segment untouched: nothing was written, and the append can be retried.
    pub fn prepare(&mut self, len: usize) -> Result<()> {
        let p = &self.seg.paths;
        let preallocate_err = |e| Error::io("preallocate segment", &p.log, e);
        if self.writes_through(len) {
            self.data.reserve(len).map_err(preallocate_err)?;
        }
        // Checked again: `reserve` may just have found that blocks cannot be reserved here.
        if !self.writes_through(len) {
            self.data.spare(len).map_err(preallocate_err)?;
        }
        // The time index also takes the final entry written at sealing: room for two entries.
        let entries = if self.policy.due() { 2 } else { 1 };
        if self.policy.due() {
            self.index
                .spare(OFFSET_ENTRY_LEN)
                .map_err(|e| Error::io("preallocate index", &p.index, e))?;
        }
        self.time
            .spare(entries * TIME_ENTRY_LEN)
            .map_err(|e| Error::io("preallocate time index", &p.time_index, e))?;
        Ok(())
    }

    /// Copies an encoded batch into the segment with `base_offset` stamped in, indexes it and
    /// publishes it to readers. Call [`prepare`](Self::prepare) first; an error here means the
    /// segment may hold unpublished bytes and the log must be poisoned.
    pub fn append(&mut self, batch: &[u8], header: &BatchHeader) -> Result<usize> {
        if header.layout != self.seg.layout || batch.len() < 16 {
            // The log rolls past a segment of an older format before appending (format 3
            // batches never go into a format 1/2 file); reaching here would be a bug.
            return Err(Error::invalid(format!(
                "a {:?} batch cannot be appended to {} (a segment of {:?} batches)",
                header.layout,
                self.seg.paths.log.display(),
                self.seg.layout
            )));
        }
        let pos = self.data.position();
        if self.writes_through(batch.len()) {
            use std::os::unix::fs::FileExt;
            // Bytes may have reached the file: never clean (the log is poisoned).
            let write_err = |e| Error::io("write segment", &self.seg.paths.log, e).into_unclean();
            if pos + batch.len() > self.data.capacity() {
                return Err(write_err(std::io::Error::from(
                    std::io::ErrorKind::InvalidInput,
                )));
            }
            // Invariant 1 of mmap.rs: these bytes lie at or after the published length.
            // The first 16 bytes (outside the CRC in both layouts) are stamped in a copy.
            let mut head = [0u8; 16];
            head.copy_from_slice(&batch[..16]);
            codec::set_base_offset(&mut head, header.base_offset, header.layout);
            let rest = batch.get(16..).unwrap_or(&[]);
            let file = self.data.file();
            crate::failpoint::hit(sites::SEGMENT_WRITE, &self.seg.paths.log)
                .and_then(|()| file.write_all_at(&head, pos as u64))
                .and_then(|()| file.write_all_at(rest, (pos + 16) as u64))
                .map_err(write_err)?;
        } else {
            let dst = self
                .data
                .spare(batch.len())
                .map_err(|e| Error::io("write segment", &self.seg.paths.log, e).into_unclean())?;
            dst.copy_from_slice(batch);
            codec::set_base_offset(dst, header.base_offset, header.layout);
        }
        self.data.advance(batch.len());
        let (o, t) = self.policy.note(pos, header);
        if let Some(o) = o {
            self.push_entry(true, &o.encode())?;
        }
        if let Some(t) = t {
            self.push_entry(false, &t.encode())?;
        }
        self.data.publish();
        self.seg
            .max_timestamp
            .fetch_max(header.max_timestamp, Ordering::AcqRel);
        self.seg.set_next_offset(header.next_offset());
        Ok(pos)
    }

    /// Appends an offset index entry found by recovery.
    pub fn push_offset_entry(&mut self, e: &OffsetEntry) -> Result<()> {
        self.push_entry(true, &e.encode())
    }

    /// Appends a time index entry found by recovery.
    pub fn push_time_entry(&mut self, e: &TimeEntry) -> Result<()> {
        self.push_entry(false, &e.encode())
    }

    /// fsyncs all three files, contents and lengths.
    pub fn sync_files(&self) -> Result<()> {
        let p = &self.seg.paths;
        for (w, path, op) in [
            (&self.data, &p.log, "fsync segment"),
            (&self.index, &p.index, "fsync index"),
            (&self.time, &p.time_index, "fsync time index"),
        ] {
            crate::failpoint::hit(sites::SEGMENT_FSYNC, path)
                .and_then(|()| w.file().sync_all())
                .map_err(|e| fsync_err(op, path, e))?;
        }
        Ok(())
    }

    fn push_entry(&mut self, offset_index: bool, entry: &[u8]) -> Result<()> {
        let (w, path) = if offset_index {
            (&mut self.index, &self.seg.paths.index)
        } else {
            (&mut self.time, &self.seg.paths.time_index)
        };
        let dst = w
            .spare(entry.len())
            .map_err(|e| Error::io("write index", path, e))?;
        dst.copy_from_slice(entry);
        w.advance(entry.len());
        w.publish();
        Ok(())
    }

    /// Appends a time entry for the current max timestamp if the index lacks one, so the time
    /// index alone tells the segment's max timestamp after a restart. Its room is prefaulted
    /// with each append ([`prepare`](Self::prepare)), and a failure to find room is clean
    /// ([`NoSpace`](crate::ErrorKind::NoSpace), the index unchanged).
    pub fn record_max_timestamp(&mut self) -> Result<()> {
        if let Some(t) = self.policy.final_time_entry() {
            self.push_entry(false, &t.encode())?;
        }
        Ok(())
    }

    /// Syncs the data written between byte `from` and the cursor.
    pub fn sync_data_from(seg: &Segment, from: usize, to: usize) -> Result<()> {
        crate::failpoint::hit(sites::SEGMENT_FSYNC, &seg.paths.log)
            .and_then(|()| seg.data.sync_range(from, to.saturating_sub(from)))
            .map_err(|e| fsync_err("fsync segment", &seg.paths.log, e))
    }

    /// Syncs both index files (all published entries).
    pub fn sync_indexes(seg: &Segment) -> Result<()> {
        crate::failpoint::hit(sites::SEGMENT_FSYNC, &seg.paths.index)
            .and_then(|()| seg.index.sync_range(0, seg.index.published()))
            .map_err(|e| fsync_err("fsync index", &seg.paths.index, e))?;
        seg.time_index
            .sync_range(0, seg.time_index.published())
            .map_err(|e| fsync_err("fsync time index", &seg.paths.time_index, e))
    }

    /// Makes the segment immutable: final time entry, everything synced, every file cut to its
    /// content. Readers keep their mappings. Call
    /// [`record_max_timestamp`](Self::record_max_timestamp) first: its failure (a full disk)
    /// is clean, while a failure here (of an fsync or of the cut) is not.
    pub fn seal(mut self) -> Result<Arc<Segment>> {
        self.record_max_timestamp().map_err(Error::into_unclean)?;
        let p = self.seg.paths.clone();
        self.index
            .seal()
            .map_err(|e| fsync_err("seal index", &p.index, e))?;
        self.time
            .seal()
            .map_err(|e| fsync_err("seal time index", &p.time_index, e))?;
        self.data
            .seal()
            .map_err(|e| fsync_err("seal segment", &p.log, e))?;
        self.seg.sealed.store(true, Ordering::Release);
        Ok(self.seg)
    }
}

/// A batch returned by a read: a view into the memory-mapped segment that stays valid as long as
/// it is held, even after its segment is rolled, sealed or deleted by retention. Its framing was
/// checked when it was read, and its CRC on the first read of it since its segment was mapped
/// (see [`Log::read`](crate::Log::read), "Verification").
#[derive(Clone, Debug)]
pub struct BatchView {
    map: Arc<Mapping>,
    start: usize,
    header: BatchHeader,
}

impl BatchView {
    /// The batch's bytes, exactly as stored (header included).
    pub fn as_bytes(&self) -> &[u8] {
        self.map
            .bytes()
            .get(self.start..self.start + self.header.total_len())
            .unwrap_or(&[])
    }

    /// A decoding view of the batch.
    pub fn as_batch(&self) -> BatchRef<'_> {
        BatchRef::from_checked(self.as_bytes(), self.header)
    }

    /// The records of the batch (borrowed from the mapping unless compressed).
    ///
    /// # Errors
    /// [`Corruption`](crate::ErrorKind::Corruption) if a record is malformed.
    pub fn records(&self) -> Result<Records<'_>> {
        self.as_batch().records()
    }

    /// Offset of the first record.
    pub fn base_offset(&self) -> u64 {
        self.header.base_offset
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> u64 {
        self.header.last_offset()
    }

    /// Number of records.
    pub fn record_count(&self) -> u32 {
        self.header.record_count
    }

    /// Largest timestamp in the batch.
    pub fn max_timestamp(&self) -> i64 {
        self.header.max_timestamp
    }

    /// Size of the batch in bytes.
    pub fn len(&self) -> usize {
        self.header.total_len()
    }

    /// Always false: a batch holds at least one record.
    pub fn is_empty(&self) -> bool {
        false
    }
}
