//! Verification of every file of a store or partition directory: each batch's framing and CRC,
//! offset order within and across segments, and each index entry against its data file.
//!
//! The data files are read once, sequentially; the index entries are checked in the same pass
//! (entries are sorted by position, so a cursor into each index follows the scan). Memory use is
//! the size of one segment's indexes.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};
use crate::inspect::scanner::{BatchScanner, Step};
use crate::inspect::view::list_segments;
use crate::log::checkpoint::Checkpoint;
use crate::segment::file_header::{self, FileKind, FILE_HEADER_LEN};
use crate::segment::index::{OffsetEntry, TimeEntry, OFFSET_ENTRY_LEN, TIME_ENTRY_LEN};
use crate::segment::SegmentPaths;
use crate::topic;

/// How bad a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Severity {
    /// Data or an index is damaged.
    Corruption,
    /// Not damage: something the next open repairs or that a running writer explains (a missing
    /// index, a torn tail after the last whole batch of the active segment).
    Warning,
    /// The file could not be read (permissions, an I/O error): nothing is known of its bytes,
    /// so it is neither sound nor damaged. The check did not cover it.
    Unreadable,
}

/// One finding of [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// How bad it is.
    pub severity: Severity,
    /// The file.
    pub path: PathBuf,
    /// Byte position in the file.
    pub position: u64,
    /// What the format requires there.
    pub expected: String,
    /// What was found.
    pub found: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.severity {
            Severity::Corruption => "corrupt",
            Severity::Warning => "warning",
            Severity::Unreadable => "unreadable",
        };
        write!(
            f,
            "{}:{}: {tag}: expected {}, found {}",
            self.path.display(),
            self.position,
            self.expected,
            self.found
        )
    }
}

/// What [`verify`] checked and found.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Everything found, in the order found.
    pub problems: Vec<Problem>,
    /// Partition directories checked.
    pub partitions: u64,
    /// Files checked.
    pub files: u64,
    /// Batches checked.
    pub batches: u64,
    /// Bytes of data files read.
    pub bytes: u64,
}

impl VerifyReport {
    /// Whether every file was read ([`Severity::Unreadable`] counts against it).
    pub fn is_complete(&self) -> bool {
        self.count(Severity::Unreadable) == 0
    }

    /// Whether nothing that was read is damaged (warnings allowed; see also
    /// [`is_complete`](Self::is_complete)).
    pub fn is_sound(&self) -> bool {
        self.problems
            .iter()
            .all(|p| p.severity != Severity::Corruption)
    }

    /// Number of problems of a severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == severity)
            .count()
    }
}

/// Progress of a [`verify`] run, for a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyProgress {
    /// Bytes of data files read so far.
    pub done: u64,
    /// Bytes of data files to read in all.
    pub total: u64,
}

/// Verifies `dir`: a store directory (every partition, the committed offsets and the topic
/// metadata) or a single partition log directory. Reads only; takes no lock. `progress` is called
/// now and then.
///
/// # Errors
/// Only when it cannot run: `dir` is missing or unreadable ([`Io`](ErrorKind::Io)), or holds
/// neither segments nor partition directories ([`InvalidArgument`](ErrorKind::InvalidArgument)).
/// Damage is reported in the [`VerifyReport`], never as an error.
pub fn verify(dir: &Path, progress: &mut dyn FnMut(VerifyProgress)) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut logs = Vec::new();
    if !list_segments(dir)?.is_empty() {
        logs.push(dir.to_path_buf());
    } else {
        let meta = dir.join(topic::METADATA_FILE);
        match std::fs::read(&meta) {
            Ok(bytes) => {
                report.files += 1;
                match topic::decode_metadata(&bytes, &meta) {
                    Ok(topics) => {
                        for (name, config) in topics {
                            for p in 0..config.partitions {
                                let pdir = dir.join(format!("{name}-{p}"));
                                if !pdir.is_dir() {
                                    report.problems.push(Problem {
                                        severity: Severity::Corruption,
                                        path: meta.clone(),
                                        position: 0,
                                        expected: format!(
                                            "a directory {} for a partition the metadata names",
                                            pdir.display()
                                        ),
                                        found: "none".into(),
                                    });
                                }
                            }
                        }
                    }
                    Err(e) => report
                        .problems
                        .push(problem_from(Severity::Corruption, &e, &meta)),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let orphans = crate::store::layout::partition_dirs(dir)?;
                if !orphans.is_empty() {
                    report.problems.push(Problem {
                        severity: Severity::Corruption,
                        path: meta.clone(),
                        position: 0,
                        expected: "the topic metadata file naming the store's partition \
                                   directories"
                            .into(),
                        found: format!(
                            "no file, and {} partition directories (rebuild it with `riverbed \
                             topics rebuild-metadata`)",
                            orphans.len()
                        ),
                    });
                }
            }
            Err(e) => return Err(Error::io("read topic metadata", &meta, e)),
        }
        let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io("list directory", dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_dir()
                    && p.extension()
                        .is_none_or(|e| e != "deleted" && e != "creating")
            })
            .collect();
        subdirs.sort();
        for sub in subdirs {
            if !list_segments(&sub)?.is_empty() {
                logs.push(sub);
            }
        }
        if logs.is_empty() && report.files == 0 {
            return Err(Error::invalid(format!(
                "{} holds neither segment files nor a riverbed store",
                dir.display()
            )));
        }
    }
    let mut total = 0;
    for log in &logs {
        for base in list_segments(log)? {
            total += std::fs::metadata(SegmentPaths::new(log, base).log).map_or(0, |m| m.len());
        }
    }
    let mut tick = Ticker {
        done: 0,
        total,
        last: 0,
        progress,
    };
    for log in &logs {
        report.partitions += 1;
        verify_log(log, &mut report, &mut tick)?;
    }
    (tick.progress)(VerifyProgress {
        done: tick.total.max(tick.done),
        total: tick.total.max(tick.done),
    });
    Ok(report)
}

struct Ticker<'a> {
    done: u64,
    total: u64,
    last: u64,
    progress: &'a mut dyn FnMut(VerifyProgress),
}

impl Ticker<'_> {
    fn add(&mut self, n: u64) {
        self.done += n;
        if self.done - self.last >= 32 << 20 {
            self.last = self.done;
            (self.progress)(VerifyProgress {
                done: self.done,
                total: self.total.max(self.done),
            });
        }
    }
}

fn problem_from(severity: Severity, e: &Error, fallback: &Path) -> Problem {
    match e.kind() {
        ErrorKind::Corruption {
            path,
            position,
            expected,
            found,
        } => Problem {
            severity,
            path: path.clone().unwrap_or_else(|| fallback.to_path_buf()),
            position: *position,
            expected: expected.clone(),
            found: found.clone(),
        },
        _ => Problem {
            severity,
            path: fallback.to_path_buf(),
            position: 0,
            expected: "a readable file".into(),
            found: e.to_string(),
        },
    }
}

fn verify_log(dir: &Path, report: &mut VerifyReport, tick: &mut Ticker<'_>) -> Result<()> {
    let bases = list_segments(dir)?;
    let checkpoint = Checkpoint::read(dir).ok().flatten();
    let mut expected = bases.first().copied().unwrap_or(0);
    for (i, &base) in bases.iter().enumerate() {
        let last = i + 1 == bases.len();
        let paths = SegmentPaths::new(dir, base);
        if i > 0 && base != expected {
            report.problems.push(Problem {
                severity: Severity::Corruption,
                path: paths.log.clone(),
                position: 0,
                expected: format!("a segment starting at offset {expected}"),
                found: format!("a segment named for offset {base}"),
            });
        }
        // Where the checkpoint vouches that data is synced: damage before it is never a torn
        // write.
        let synced_to = match checkpoint {
            Some(c) if c.segment_base == base => c.position,
            Some(c) if c.segment_base > base => u64::MAX,
            _ => 0,
        };
        let seg = SegmentCheck {
            paths: &paths,
            base,
            last,
            synced_to,
            // A roll seals the old segment in the background (FORMAT.md 6, rule 4a), and the
            // recovery point never passes a segment before its seal has ended: one the
            // checkpoint does not pass may still be unsealed.
            next_base: (!last && synced_to != u64::MAX)
                .then(|| bases.get(i + 1).copied())
                .flatten(),
        };
        match seg.run(report, tick) {
            Ok(next) => expected = next,
            Err(e) if e.is_io() => {
                report
                    .problems
                    .push(problem_from(Severity::Unreadable, &e, &paths.log));
                expected = bases.get(i + 1).copied().unwrap_or(expected);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

struct SegmentCheck<'a> {
    paths: &'a SegmentPaths,
    base: u64,
    last: bool,
    synced_to: u64,
    /// For a segment that may still be sealing (see above): the base of the next segment.
    next_base: Option<u64>,
}

/// The entries of an index file and a cursor that follows the data scan.
struct IndexCursor {
    path: PathBuf,
    kind: FileKind,
    bytes: Vec<u8>,
    entry_len: usize,
    next: usize,
    prev: Option<(u64, u32, i64)>,
}

impl IndexCursor {
    fn entry(&self, i: usize) -> Option<(u32, u32, Option<i64>)> {
        let raw = self
            .bytes
            .get(i * self.entry_len..(i + 1) * self.entry_len)?;
        if raw.iter().all(|b| *b == 0) {
            return None;
        }
        Some(if self.kind == FileKind::TimeIndex {
            let e = TimeEntry::at(raw, 0)?;
            (e.relative_offset, e.position, Some(e.timestamp))
        } else {
            let e = OffsetEntry::at(raw, 0)?;
            (e.relative_offset, e.position, None)
        })
    }

    fn file_pos(&self, i: usize) -> u64 {
        (FILE_HEADER_LEN + i * self.entry_len) as u64
    }
}

impl SegmentCheck<'_> {
    fn problem(
        &self,
        severity: Severity,
        path: &Path,
        pos: u64,
        exp: String,
        found: String,
    ) -> Problem {
        Problem {
            severity,
            path: path.to_path_buf(),
            position: pos,
            expected: exp,
            found,
        }
    }

    /// Loads an index for checking; `None` (with a problem noted) when missing or unusable.
    fn load_index(&self, kind: FileKind, report: &mut VerifyReport) -> Option<IndexCursor> {
        let path = match kind {
            FileKind::TimeIndex => &self.paths.time_index,
            _ => &self.paths.index,
        };
        let entry_len = if kind == FileKind::TimeIndex {
            TIME_ENTRY_LEN
        } else {
            OFFSET_ENTRY_LEN
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                let (sev, found) = if e.kind() == std::io::ErrorKind::NotFound {
                    (
                        Severity::Warning,
                        "no file (it is rebuilt at the next open)".into(),
                    )
                } else {
                    (Severity::Unreadable, e.to_string())
                };
                report
                    .problems
                    .push(self.problem(sev, path, 0, "an index file".into(), found));
                return None;
            }
        };
        report.files += 1;
        if let Err(e) = file_header::check(&bytes, kind, self.base, path) {
            report
                .problems
                .push(problem_from(Severity::Corruption, &e, path));
            return None;
        }
        let body = bytes.get(FILE_HEADER_LEN..).unwrap_or(&[]).to_vec();
        if !self.last && self.next_base.is_none() && body.len() % entry_len != 0 {
            report.problems.push(self.problem(
                Severity::Corruption,
                path,
                bytes.len() as u64,
                format!("whole {entry_len}-byte entries"),
                format!("{} stray bytes at the end", body.len() % entry_len),
            ));
        }
        Some(IndexCursor {
            path: path.clone(),
            kind,
            bytes: body,
            entry_len,
            next: 0,
            prev: None,
        })
    }

    /// Checks the index entries that point at or before the batch at `pos` (base offset `base`,
    /// max timestamp `max_ts`, or `None` once the data has ended).
    fn advance(
        &self,
        idx: &mut IndexCursor,
        batch: Option<(u64, u64, i64)>,
        report: &mut VerifyReport,
    ) {
        while let Some((rel, position, ts)) = idx.entry(idx.next) {
            let at = idx.file_pos(idx.next);
            let offset = self.base + u64::from(rel);
            let position64 = u64::from(position);
            if let Some((pos, base, max_ts)) = batch {
                if position64 > pos {
                    return; // a later batch
                }
                let ordered = idx.prev.is_none_or(|(po, pp, pt)| match ts {
                    Some(t) => t > pt && offset >= po && position >= pp,
                    None => offset > po && position > pp,
                });
                if !ordered {
                    report.problems.push(self.problem(
                        Severity::Corruption,
                        &idx.path,
                        at,
                        "entries increasing in offset, position and timestamp".into(),
                        format!("offset {offset}, position {position} after a larger one"),
                    ));
                } else if position64 < pos {
                    report.problems.push(self.problem(
                        Severity::Corruption,
                        &idx.path,
                        at,
                        format!("a position where a batch starts (offset {offset})"),
                        format!("position {position}, inside a batch"),
                    ));
                } else if offset != base {
                    report.problems.push(self.problem(
                        Severity::Corruption,
                        &idx.path,
                        at,
                        format!("offset {base}, the base offset of the batch at byte {pos}"),
                        format!("offset {offset}"),
                    ));
                } else if ts.is_some_and(|t| t != max_ts) {
                    report.problems.push(self.problem(
                        Severity::Corruption,
                        &idx.path,
                        at,
                        format!("timestamp {max_ts}, the max timestamp of the batch at byte {pos}"),
                        format!("timestamp {}", ts.unwrap_or_default()),
                    ));
                }
            } else if self.last {
                // Past the data: entries of batches a running writer has not finished, or
                // stale ones that the next open cuts.
                report.problems.push(self.problem(
                    Severity::Warning,
                    &idx.path,
                    at,
                    "entries only for whole batches".into(),
                    format!("an entry for offset {offset} at byte {position}, past the last whole batch (cut at the next open)"),
                ));
                return;
            } else {
                report.problems.push(self.problem(
                    Severity::Corruption,
                    &idx.path,
                    at,
                    "entries pointing at batches of the segment".into(),
                    format!("an entry for offset {offset} at byte {position}, past the last batch"),
                ));
            }
            idx.prev = Some((offset, position, ts.unwrap_or(i64::MIN)));
            idx.next += 1;
        }
        // Zeros end the entries of an active (or still sealing) index; in a sealed one they are
        // damage.
        if !self.last
            && self.next_base.is_none()
            && idx.next * idx.entry_len < idx.bytes.len()
            && batch.is_none()
        {
            report.problems.push(self.problem(
                Severity::Corruption,
                &idx.path,
                idx.file_pos(idx.next),
                "an entry (sealed indexes are cut to their entries)".into(),
                "zeros".into(),
            ));
        }
    }

    /// Checks the segment; returns the offset after its last valid batch.
    fn run(&self, report: &mut VerifyReport, tick: &mut Ticker<'_>) -> Result<u64> {
        let log = &self.paths.log;
        report.files += 1;
        let mut s = BatchScanner::open(log, 0, None)?;
        let len = s.end();
        let mut head = [0u8; FILE_HEADER_LEN];
        let head_ok = len >= FILE_HEADER_LEN as u64 && s.read_at(&mut head, 0).is_ok();
        let info = file_header::check(
            &head[..if head_ok { FILE_HEADER_LEN } else { 0 }],
            FileKind::Log,
            self.base,
            log,
        );
        // A compacted data file (FORMAT.md 2, 6.1) may have gaps between its batches and covers
        // exactly `base .. base + span`.
        let compacted_end = match &info {
            Ok(i) if i.compacted() => Some(self.base + u64::from(i.span)),
            _ => None,
        };
        if let Err(e) = info {
            let sev = if self.last && len <= FILE_HEADER_LEN as u64 {
                Severity::Warning // a roll under way, or torn by a crash: recreated at open
            } else {
                Severity::Corruption
            };
            report.problems.push(problem_from(sev, &e, log));
            tick.add(len);
            return Ok(self.base);
        }
        s.seek(FILE_HEADER_LEN as u64);
        let mut offsets = self.load_index(FileKind::OffsetIndex, report);
        let mut times = self.load_index(FileKind::TimeIndex, report);
        let mut expected = self.base;
        let mut max_ts = i64::MIN;
        let mut seen_batch = false;
        // A CRC failure in the active segment is a torn tail if nothing but the end follows.
        let mut pending: Option<Problem> = None;
        let flush_pending = |report: &mut VerifyReport, pending: &mut Option<Problem>| {
            if let Some(p) = pending.take() {
                report.problems.push(p);
            }
        };
        let mut done_at = FILE_HEADER_LEN as u64;
        let mut unsealed = false;
        loop {
            let step = s.step()?;
            match step {
                Step::Batch {
                    pos,
                    header,
                    crc_ok,
                } => {
                    flush_pending(report, &mut pending);
                    report.batches += 1;
                    report.bytes += header.total_len() as u64;
                    tick.add(header.total_len() as u64);
                    done_at = s.pos();
                    let in_order = match compacted_end {
                        None => header.base_offset == expected,
                        Some(end) => header.base_offset >= expected && header.last_offset() < end,
                    };
                    if !in_order {
                        let wanted = match compacted_end {
                            None => format!("a batch with base offset {expected}"),
                            Some(end) => format!(
                                "a batch with base offset at least {expected}, ending before {end} \
                                 (the compacted segment's span)"
                            ),
                        };
                        report.problems.push(self.problem(
                            Severity::Corruption,
                            log,
                            pos,
                            wanted,
                            format!("base offset {}", header.base_offset),
                        ));
                    }
                    if !crc_ok {
                        if let Err(e) = header.verify_crc(s.batch_bytes()) {
                            let mut p = problem_from(Severity::Corruption, &e, log);
                            p.path = log.clone();
                            p.position = pos;
                            pending = Some(p);
                        }
                    }
                    expected = header.next_offset();
                    max_ts = if seen_batch {
                        max_ts.max(header.max_timestamp)
                    } else {
                        header.max_timestamp
                    };
                    seen_batch = true;
                    let b = Some((pos, header.base_offset, max_ts));
                    if let Some(i) = offsets.as_mut() {
                        self.advance(i, b, report);
                    }
                    if let Some(t) = times.as_mut() {
                        // A time entry names the batch where the max was first reached: compare
                        // with that batch's own max timestamp.
                        self.advance(
                            t,
                            Some((pos, header.base_offset, header.max_timestamp)),
                            report,
                        );
                    }
                }
                Step::End => {
                    self.tail(&mut pending, report);
                    break;
                }
                Step::Zeros { pos } => {
                    self.tail(&mut pending, report);
                    if self.next_base == Some(expected) {
                        // Every offset up to the next segment is here: the zeros are the
                        // preallocated tail of a seal still under way (or cut by a crash),
                        // which the next open finishes.
                        unsealed = true;
                        report.problems.push(self.problem(
                            Severity::Warning,
                            log,
                            pos,
                            "a sealed segment (cut at its last batch)".into(),
                            format!(
                                "{} bytes of preallocated zeros after the last batch: its seal after a roll has not finished (the next open finishes it)",
                                len - pos
                            ),
                        ));
                    } else if !self.last {
                        report.problems.push(self.problem(
                            Severity::Corruption,
                            log,
                            pos,
                            "a batch (a sealed segment ends at its last batch)".into(),
                            format!("zeros, {} bytes before the end of the file", len - pos),
                        ));
                    }
                    break;
                }
                Step::Bad { pos, error } => {
                    flush_pending(report, &mut pending);
                    let mut p = problem_from(Severity::Corruption, &error, log);
                    if self.last && pos >= self.synced_to {
                        p.severity = Severity::Warning;
                        p.found = format!(
                            "{} (a torn or unfinished write after the last whole batch; the next open cuts it)",
                            p.found
                        );
                    }
                    report.problems.push(p);
                    break;
                }
            }
        }
        tick.add(len.saturating_sub(done_at));
        for idx in [offsets.as_mut(), times.as_mut()].into_iter().flatten() {
            self.advance(idx, None, report);
        }
        if !self.last && !unsealed && seen_batch {
            let has_max = times.as_ref().is_some_and(|t| {
                t.next
                    .checked_sub(1)
                    .and_then(|i| t.entry(i))
                    .is_some_and(|(_, _, ts)| ts == Some(max_ts))
            });
            if times.is_some() && !has_max {
                report.problems.push(self.problem(
                    Severity::Corruption,
                    &self.paths.time_index,
                    0,
                    format!("a last entry with the segment's max timestamp {max_ts}"),
                    "none".into(),
                ));
            }
        }
        Ok(compacted_end.unwrap_or(expected))
    }

    /// Settles a pending CRC failure once the data has ended at `pos`.
    fn tail(&self, pending: &mut Option<Problem>, report: &mut VerifyReport) {
        if let Some(mut p) = pending.take() {
            if self.last && p.position >= self.synced_to {
                p.severity = Severity::Warning;
                p.found = format!(
                    "{} in the last batch of the active segment (a torn or unfinished write; the next open cuts it)",
                    p.found
                );
            }
            report.problems.push(p);
        }
    }
}
