//! Opening a log directory: find the segments, trust what the recovery checkpoint vouches for,
//! scan the rest, cut a torn tail, rebuild indexes that fail their checks.
//!
//! After a clean close the checkpoint sits at the end of the log, so nothing is scanned and open
//! time does not depend on the size of the log. After a crash only the segments from the
//! checkpoint on are scanned, from the checkpoint's position.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{LogConfig, RecoveryMode};
use crate::error::{Error, Result};
use crate::log::checkpoint::Checkpoint;
use crate::segment::cleaned::{self, with_suffix};
use crate::segment::file_header::{self, FileKind, FILE_HEADER_LEN};
use crate::segment::index::{self, OffsetEntry, TimeEntry, OFFSET_ENTRY_LEN, TIME_ENTRY_LEN};
use crate::segment::mmap::Mapping;
use crate::segment::{
    parse_file_name, scan, ActiveSegment, Capacity, IndexPolicy, Reopened, Segment, SegmentPaths,
};

/// What opening a log found and did. See [`Log::recovery_report`](crate::Log::recovery_report).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Whether a valid recovery checkpoint was found and used.
    pub checkpoint_used: bool,
    /// Bytes of segment data scanned and checked (0 after a clean close).
    pub scanned_bytes: u64,
    /// Batches found valid by the scan.
    pub scanned_batches: u64,
    /// Set when an invalid tail was cut away.
    pub truncation: Option<Truncation>,
    /// Index files that were missing or damaged and were rebuilt from their data file.
    pub rebuilt_indexes: Vec<PathBuf>,
    /// Files removed: leftovers of an interrupted roll, retention pass, atomic write or
    /// compaction, and segments that lay wholly after a truncation point.
    pub removed_files: Vec<PathBuf>,
    /// Base offsets of compacted segments whose swap was committed but not finished when the
    /// log was last open, and which opening finished.
    pub finished_swaps: Vec<u64>,
    /// Files that opening would have written but could not for lack of space, and opened
    /// without: a new active segment (created by the first append), the recovery point (the
    /// next open scans the log), rebuilt indexes (kept in memory, rebuilt again at the next
    /// open) and `.txnindex` files (rebuilt at the next open). Nothing acknowledged depends on
    /// them.
    pub deferred_writes: Vec<PathBuf>,
}

/// Where and why recovery cut the log.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Truncation {
    /// The data file that was cut.
    pub path: PathBuf,
    /// Byte position of the cut: everything from here on was removed.
    pub position: u64,
    /// The first offset that is no longer in the log.
    pub offset: u64,
    /// What was wrong at `position`.
    pub reason: String,
}

/// The outcome of opening: sealed segments in order, the active one, and the report.
pub(crate) struct Opened {
    pub sealed: Vec<Arc<Segment>>,
    /// `None` when a new active segment was needed and the disk had no room for it: the log
    /// opens with only sealed segments, and the first append creates it.
    pub active: Option<ActiveSegment>,
    /// The offset the next batch gets.
    pub next_offset: u64,
    pub report: RecoveryReport,
    /// Whether data was scanned, so it must be synced and a new checkpoint written.
    pub needs_checkpoint: bool,
    /// The checkpoint file as found (valid or not), for the caller to compare with the end.
    pub disk_checkpoint: Option<Checkpoint>,
}

pub(crate) fn capacity(config: &LogConfig) -> Capacity {
    Capacity {
        data: config.segment_bytes as usize,
        index_entries: config.index_entries(),
        // Reading and recovery bound a batch by what a segment can hold, not by today's
        // `max_message_bytes`: lowering that must not make older, larger batches unreadable.
        max_batch_bytes: config.segment_bytes as usize,
        index_interval: config.index_interval_bytes as usize,
        pwrite_from: if config.flush == crate::config::FlushPolicy::EveryAppend {
            0
        } else {
            crate::segment::PWRITE_FROM
        },
    }
}

/// Creates the active segment at `base`, or — on a full disk — leaves it to the first append
/// and says so in the report.
fn create_active(
    dir: &Path,
    base: u64,
    cap: Capacity,
    report: &mut RecoveryReport,
) -> Result<Option<ActiveSegment>> {
    match ActiveSegment::create(dir, base, cap) {
        Ok(a) => Ok(Some(a)),
        Err(e) if e.is_no_space() => {
            report
                .deferred_writes
                .push(SegmentPaths::new(dir, base).log);
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Seals the last segment where it stands, for an open on a full disk: the data file is cut to
/// `data_len` and synced, its index files (whose tail could not be written) removed and rebuilt
/// from the data — in memory if there is no room for them either.
fn seal_in_place(
    dir: &Path,
    base: u64,
    data_len: usize,
    next: u64,
    cap: Capacity,
    report: &mut RecoveryReport,
) -> Result<Arc<Segment>> {
    let paths = SegmentPaths::new(dir, base);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&paths.log)
        .map_err(|e| Error::io("open segment file", &paths.log, e))?;
    file.set_len(data_len as u64)
        .map_err(|e| Error::io("cut segment file", &paths.log, e).into_unclean())?;
    file.sync_all()
        .map_err(|e| Error::io("fsync segment", &paths.log, e).into_unclean())?;
    crate::fs::remove_durably(&paths.index)?;
    crate::fs::remove_durably(&paths.time_index)?;
    let (seg, _) = Segment::open_sealed(dir, base, cap.max_batch_bytes, cap.index_interval)?;
    seg.set_next_offset(next);
    report.rebuilt_indexes.push(seg.paths.index.clone());
    note_unwritten_index(&seg, report);
    seg.check_tail();
    Ok(Arc::new(seg))
}

/// A rebuilt index that the disk had no room for is kept in memory only: say so.
fn note_unwritten_index(seg: &Segment, report: &mut RecoveryReport) {
    for path in [&seg.paths.index, &seg.paths.time_index] {
        if !path.exists() {
            report.deferred_writes.push(path.clone());
        }
    }
}

fn remove(path: &Path, report: &mut RecoveryReport) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            report.removed_files.push(path.to_path_buf());
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove file", path, e)),
    }
}

fn remove_segment(dir: &Path, base: u64, report: &mut RecoveryReport) -> Result<()> {
    let p = SegmentPaths::new(dir, base);
    remove(&p.log, report)?;
    remove(&p.index, report)?;
    remove(&p.time_index, report)?;
    remove(&p.txn_index, report)
}

/// Lists segment base offsets and removes leftovers (temp files, indexes without a data file).
fn list_segments(dir: &Path, report: &mut RecoveryReport) -> Result<Vec<u64>> {
    let mut logs = BTreeSet::new();
    let mut others = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("list directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") {
            remove(&entry.path(), report)?;
            continue;
        }
        match parse_file_name(name) {
            Some((base, "log")) => {
                logs.insert(base);
            }
            Some((base, "index" | "timeindex" | "txnindex")) => others.push((base, entry.path())),
            _ => {}
        }
    }
    for (base, path) in others {
        if !logs.contains(&base) {
            remove(&path, report)?;
        }
    }
    Ok(logs.into_iter().collect())
}

/// Finishes the log cleaner's committed swaps and rolls back the others (see
/// `segment::cleaned`): a data `.swap` file is moved over its segment after the segments inside
/// its span are deleted; `.cleaned` files, and index `.swap` files without their data file
/// (together with the index they would have replaced), are deleted.
fn settle_swaps(dir: &Path, report: &mut RecoveryReport) -> Result<()> {
    let mut logs = BTreeSet::new();
    let mut data_swaps = BTreeSet::new();
    let mut index_swaps = Vec::new();
    let mut leftovers = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("list directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list directory", dir, e))?;
        let name = entry.file_name();
        let Some((base, ext)) = name.to_str().and_then(parse_file_name) else {
            continue;
        };
        match ext.split_once('.') {
            None if ext == "log" => {
                logs.insert(base);
            }
            Some((_, cleaned::CLEANED)) => leftovers.push(entry.path()),
            Some(("log", cleaned::SWAP)) => {
                data_swaps.insert(base);
            }
            Some(("index" | "timeindex", cleaned::SWAP)) => index_swaps.push((base, entry.path())),
            _ => {}
        }
    }
    if leftovers.is_empty() && data_swaps.is_empty() && index_swaps.is_empty() {
        return Ok(());
    }
    for path in &leftovers {
        remove(path, report)?;
    }
    for (base, path) in &index_swaps {
        if !data_swaps.contains(base) {
            // Ambiguous (an uncommitted swap, or one whose data file was already moved): the
            // index it would replace may not match the data file, so rebuild that index.
            let p = SegmentPaths::new(dir, *base);
            let current = if path.to_string_lossy().ends_with(".timeindex.swap") {
                p.time_index
            } else {
                p.index
            };
            remove(path, report)?;
            remove(&current, report)?;
        }
    }
    for &base in &data_swaps {
        let path = with_suffix(&SegmentPaths::new(dir, base).log, cleaned::SWAP);
        let head = read_head(&path)?;
        let info = file_header::check(&head, FileKind::Log, base, &path)?;
        if !info.compacted() {
            return Err(crate::error::corrupt(
                6,
                "the compacted flag of a segment written by the log cleaner",
                format!("flags 0x{:04x}", info.flags),
            )
            .in_file(&path, 0));
        }
        let end = base + u64::from(info.span);
        let replaced: Vec<u64> = logs.range(base + 1..end).copied().collect();
        let removed = cleaned::finish(dir, base, &replaced)?;
        report.removed_files.extend(removed);
        report.finished_swaps.push(base);
    }
    crate::fs::sync_dir(dir)
}

fn read_head(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::with_capacity(FILE_HEADER_LEN);
    std::fs::File::open(path)
        .and_then(|f| f.take(FILE_HEADER_LEN as u64).read_to_end(&mut head))
        .map_err(|e| Error::io("read segment header", path, e))?;
    Ok(head)
}

/// Sets the end of a sealed segment to the next segment's base; a compacted segment knows its
/// end, which must be that base.
fn bind_end(seg: &Segment, next_base: u64) -> Result<()> {
    if !seg.is_compacted() {
        seg.set_next_offset(next_base);
        return Ok(());
    }
    if seg.next_offset() != next_base {
        return Err(crate::error::corrupt(
            20,
            format!("a compacted segment that ends where the next segment starts ({next_base})"),
            format!("one that ends at offset {}", seg.next_offset()),
        )
        .in_file(&seg.paths.log, 0));
    }
    Ok(())
}

/// Opens (recovering if need be) the log in `dir`, which must be locked by the caller.
pub(crate) fn open(dir: &Path, config: &LogConfig) -> Result<Opened> {
    let mut report = RecoveryReport::default();
    let cap = capacity(config);
    settle_swaps(dir, &mut report)?;
    let bases = list_segments(dir, &mut report)?;
    let cp = Checkpoint::read(dir)?;
    let on_disk = cp;
    if bases.is_empty() {
        let active = create_active(dir, 0, cap, &mut report)?;
        return Ok(Opened {
            sealed: Vec::new(),
            active,
            next_offset: 0,
            report,
            needs_checkpoint: true,
            disk_checkpoint: on_disk,
        });
    }
    let cp = cp.filter(|c| bases.contains(&c.segment_base));
    report.checkpoint_used = cp.is_some();
    let first_scanned = cp.map_or(0, |c| {
        bases.iter().position(|b| *b == c.segment_base).unwrap_or(0)
    });

    let mut sealed = Vec::new();
    for (i, &base) in bases.iter().enumerate().take(first_scanned) {
        let (seg, rebuilt) =
            Segment::open_sealed(dir, base, cap.max_batch_bytes, cap.index_interval)?;
        if rebuilt {
            report.rebuilt_indexes.push(seg.paths.index.clone());
            note_unwritten_index(&seg, &mut report);
        }
        bind_end(&seg, bases[i + 1])?;
        seg.check_tail();
        sealed.push(Arc::new(seg));
    }

    let mut expected_next = bases[first_scanned];
    for (j, &base) in bases.iter().enumerate().skip(first_scanned) {
        let is_last = j + 1 == bases.len();
        let resume = cp.filter(|c| c.segment_base == base);
        let outcome = scan_segment(dir, base, expected_next, resume, cap, &mut report)?;
        let clean_to_end = outcome.error.is_none() && outcome.reached_file_end;
        let continues = match bases.get(j + 1) {
            Some(&next) if outcome.compacted => outcome.next_offset <= next,
            Some(&next) => outcome.next_offset == next,
            None => false,
        };
        if clean_to_end && (continues || (is_last && outcome.compacted)) {
            // A sealed segment; a compacted one never takes appends, so if it is the last (its
            // successor's creation did not survive a crash), a new active segment follows it.
            let (seg, rebuilt) =
                Segment::open_sealed(dir, base, cap.max_batch_bytes, cap.index_interval)?;
            if rebuilt {
                report.rebuilt_indexes.push(seg.paths.index.clone());
                note_unwritten_index(&seg, &mut report);
            }
            if let Some(&next) = bases.get(j + 1) {
                bind_end(&seg, next)?;
            }
            seg.check_tail();
            expected_next = seg.next_offset();
            sealed.push(Arc::new(seg));
            if is_last {
                let active = create_active(dir, expected_next, cap, &mut report)?;
                return Ok(Opened {
                    sealed,
                    active,
                    next_offset: expected_next,
                    report,
                    needs_checkpoint: true,
                    disk_checkpoint: on_disk,
                });
            }
            continue;
        }
        if !is_last
            && !outcome.compacted
            && outcome.error.is_none()
            && !outcome.reached_file_end
            && Some(&outcome.next_offset) == bases.get(j + 1)
        {
            // A segment rolled away from whose background seal the crash interrupted: whole,
            // continuing into the next one, followed by its preallocated zeros (the scan stops at
            // them without an error). Finish the seal: cut it to its batches, sync, rebuild its
            // indexes.
            let seg = seal_in_place(
                dir,
                base,
                outcome.end,
                outcome.next_offset,
                cap,
                &mut report,
            )?;
            expected_next = seg.next_offset();
            sealed.push(seg);
            continue;
        }
        let lost_tail = if is_last || base != expected_next {
            None
        } else {
            lost_unsealed_tail(dir, &outcome, &bases[j + 1..])?
        };
        if !is_last && lost_tail.is_none() {
            // A roll seals and syncs a segment before the next one exists, so a sealed segment
            // never holds a torn write: damage here is corruption of acknowledged data, which
            // recovery must not cut away (with every segment after it).
            let found = match &outcome.error {
                Some(e) => e.to_string(),
                None => format!(
                    "a segment that ends at offset {} (byte {}), where the next segment starts at {}",
                    outcome.next_offset,
                    outcome.end,
                    bases[j + 1]
                ),
            };
            return Err(crate::error::corrupt(
                outcome.end as u64,
                "a sealed segment that is whole and continues into the next one",
                found,
            )
            .in_file(&SegmentPaths::new(dir, base).log, 0));
        }
        // The last segment: a torn tail after a crash is cut. (Or, rule 4b, a segment before
        // the last whose unsealed tail a power loss took: it becomes the last.)
        let cut_something = outcome.error.is_some() || lost_tail.is_some();
        if cut_something {
            let reason = match (&lost_tail, &outcome.error) {
                (Some(lost), _) => lost.clone(),
                (None, Some(e)) => e.to_string(),
                (None, None) => "unreachable: only an error cuts the last segment".to_string(),
            };
            if config.recovery == RecoveryMode::Strict {
                return Err(crate::error::corrupt(
                    outcome.end as u64,
                    "a valid batch or the end of the log (recovery mode is Strict)",
                    reason,
                )
                .in_file(&SegmentPaths::new(dir, base).log, 0));
            }
            if lost_tail.is_some() {
                // Rule 4b: the segments after the gap go, newest first (a crash in between
                // leaves the same gap for the next open to find), then the transaction index
                // the roll wrote for this segment (derived; written again at its next seal),
                // and the removals are made durable before anything is written at the gap.
                for &later in bases[j + 1..].iter().rev() {
                    remove_segment(dir, later, &mut report)?;
                }
                remove(&SegmentPaths::new(dir, base).txn_index, &mut report)?;
                crate::fs::sync_dir(dir)?;
            }
            report.truncation = Some(Truncation {
                path: SegmentPaths::new(dir, base).log,
                position: outcome.end as u64,
                offset: outcome.next_offset,
                reason,
            });
        }
        if outcome.header_invalid {
            // Nothing in this file can be trusted, not even its header: it was being created
            // when the process died. Start it afresh at the offset where the log ends.
            remove_segment(dir, base, &mut report)?;
            let active = create_active(dir, expected_next, cap, &mut report)?;
            return Ok(Opened {
                sealed,
                active,
                next_offset: expected_next,
                report,
                needs_checkpoint: true,
                disk_checkpoint: on_disk,
            });
        }
        // Scanning anywhere (also in segments that turned out sealed) moves the recovery point.
        let scanned_any = report.scanned_bytes > 0;
        // Room for every entry recovery found, even if the configuration shrank the indexes.
        let needed = outcome
            .reopened
            .offset_entries
            .max(outcome.reopened.time_entries)
            + outcome
                .new_offset_entries
                .len()
                .max(outcome.new_time_entries.len())
            + 2;
        let cap = Capacity {
            index_entries: cap.index_entries.max(needed),
            ..cap
        };
        let holds_nothing = outcome.reopened.data_len <= FILE_HEADER_LEN && base == expected_next;
        let mut reopened = outcome.reopened;
        // What follows a lost tail may hold pages that did reach the disk: never read them back.
        reopened.cut |= lost_tail.is_some();
        let mut active = match ActiveSegment::reopen(dir, base, cap, reopened) {
            Ok(active) => active,
            // A segment that holds no batch (a roll that was creating it when the process died,
            // its index files missing) and no room to finish it: drop it, and let the first
            // append create it, so that the log still opens on a full disk.
            Err(e) if e.is_no_space() && holds_nothing => {
                remove_segment(dir, base, &mut report)?;
                report
                    .deferred_writes
                    .push(SegmentPaths::new(dir, base).log);
                return Ok(Opened {
                    sealed,
                    active: None,
                    next_offset: expected_next,
                    report,
                    needs_checkpoint: false,
                    disk_checkpoint: on_disk,
                });
            }
            Err(e) => return Err(e),
        };
        let pushed = (|| -> Result<()> {
            for e in &outcome.new_offset_entries {
                active.push_offset_entry(e)?;
            }
            for e in &outcome.new_time_entries {
                active.push_time_entry(e)?;
            }
            Ok(())
        })();
        match pushed {
            Ok(()) => {}
            // No room for the index entries the scan found: the segment is sealed as it stands
            // (cut to its data, synced; its indexes, derived, are rebuilt — in memory while the
            // disk is full), and the first append creates the next one. The log opens.
            Err(e) if e.is_no_space() => {
                let next = active.seg.next_offset();
                let data_len = active.position();
                drop(active);
                let seg = seal_in_place(dir, base, data_len, next, cap, &mut report)?;
                sealed.push(seg);
                report
                    .deferred_writes
                    .push(SegmentPaths::new(dir, next).log);
                return Ok(Opened {
                    sealed,
                    active: None,
                    next_offset: next,
                    report,
                    needs_checkpoint: false,
                    disk_checkpoint: on_disk,
                });
            }
            Err(e) => return Err(e),
        }
        if cut_something {
            // The cut must be durable before new batches land where the garbage was.
            active.sync_files()?;
        }
        return Ok(Opened {
            sealed,
            next_offset: active.seg.next_offset(),
            active: Some(active),
            report,
            needs_checkpoint: scanned_any || cut_something,
            disk_checkpoint: on_disk,
        });
    }
    // Unreachable in practice: the loop returns at the last segment at the latest. Fall back to
    // a fresh segment after everything sealed rather than panic.
    let active = create_active(dir, expected_next, cap, &mut report)?;
    Ok(Opened {
        sealed,
        active,
        next_offset: expected_next,
        report,
        needs_checkpoint: true,
        disk_checkpoint: on_disk,
    })
}

/// Recovery rule 4b (FORMAT.md 6): whether the scanned segment before `later` (the bases of the
/// segments after it) ends in a tail that a power loss took while its background seal was
/// pending, and if so why, for the [`Truncation`] report. `None`: it is corruption (refused).
///
/// The segment qualifies when all of this holds:
/// - it is scanned, so it lies at or after the recovery point (which never passes a segment
///   whose seal is pending);
/// - it is not compacted, and its scan stopped before the end of its file: bytes follow its
///   valid batches, as the preallocated rest follows them in a segment not yet sealed. A
///   sealed segment is cut after its last batch and synced before its seal ends, so after a
///   crash it is whole to its last byte (a missing sealed segment, say, is refused);
/// - offsets are missing: its batches end before the next segment's base offset;
/// - every later segment has a valid header and is not compacted (the cleaner only writes
///   below segments whose seal is pending, so a compacted one after the gap proves the segment
///   before it was sealed).
///
/// Why cutting there loses nothing acknowledged as durable. Without damage from outside, such a
/// segment is one whose seal had not ended at the crash (above), and it was rolled away from
/// at its next segment's base offset. What it holds was made durable only by an fsync that
/// covered it: one that ended before the roll (its bytes are on disk, so they lie before the
/// gap), or one after the roll, which a sync performs only once the seal of every rolled segment
/// holding data it has not synced itself has ended (`Inner::sync_locked`); that seal had not
/// ended. So no byte after the gap, in this segment or a later one, was acknowledged as
/// durable: every later byte was acknowledged only after a sync that waited for this seal.
/// (With `EveryAppend` every batch was synced before its ack, so the seal does not hold the ack
/// back, and a gap cannot arise without outside damage.) The cut is the torn tail of rule 5,
/// taken one segment earlier; `Strict` refuses it as it refuses that.
fn lost_unsealed_tail(dir: &Path, outcome: &ScanOutcome, later: &[u64]) -> Result<Option<String>> {
    let Some(&next_base) = later.first() else {
        return Ok(None);
    };
    if outcome.compacted
        || outcome.header_invalid
        || outcome.reached_file_end
        || outcome.next_offset >= next_base
    {
        return Ok(None);
    }
    for (i, &base) in later.iter().enumerate() {
        let path = SegmentPaths::new(dir, base).log;
        let head = read_head(&path)?;
        match file_header::check(&head, FileKind::Log, base, &path) {
            Ok(info) if !info.compacted() => {}
            Ok(_) => return Ok(None),
            // The last one's creation the crash interrupted (rule 3: nothing after its header).
            Err(_) if i + 1 == later.len() && holds_only_zeros(&path)? => {}
            Err(_) => return Ok(None),
        }
    }
    let what = match &outcome.error {
        Some(e) => format!("an invalid batch ({e})"),
        None => "zeros".to_string(),
    };
    Ok(Some(format!(
        "offsets {} to {} are missing: at byte {} the segment holds {what} where its batches \
         should continue up to the next segment's base offset {next_base}; a background seal \
         that a crash interrupted lost this unsynced tail (recovery rule 4b), so the {} \
         segment(s) after it, never acknowledged as durable, are removed",
        outcome.next_offset,
        next_base - 1,
        outcome.end,
        later.len()
    )))
}

/// Whether every byte of the file after its header's place is zero.
fn holds_only_zeros(path: &Path) -> Result<bool> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("open segment", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("stat", path, e))?
        .len() as usize;
    if len <= FILE_HEADER_LEN {
        return Ok(true);
    }
    let map = Mapping::read_only(&file, len).map_err(|e| Error::io("map segment", path, e))?;
    Ok(map.bytes()[FILE_HEADER_LEN..].iter().all(|&b| b == 0))
}

struct ScanOutcome {
    /// Whether the file header says the log cleaner wrote the segment.
    compacted: bool,
    reopened: Reopened,
    new_offset_entries: Vec<OffsetEntry>,
    new_time_entries: Vec<TimeEntry>,
    end: usize,
    next_offset: u64,
    error: Option<Error>,
    reached_file_end: bool,
    header_invalid: bool,
}

/// Scans one segment from the checkpoint's position (or its start), keeping the index entries
/// that lie before that position.
fn scan_segment(
    dir: &Path,
    base: u64,
    expected_first: u64,
    resume: Option<Checkpoint>,
    cap: Capacity,
    report: &mut RecoveryReport,
) -> Result<ScanOutcome> {
    let paths = SegmentPaths::new(dir, base);
    let file =
        std::fs::File::open(&paths.log).map_err(|e| Error::io("open segment", &paths.log, e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("stat", &paths.log, e))?
        .len() as usize;
    let empty_outcome = |error: Option<Error>, header_invalid: bool| ScanOutcome {
        compacted: false,
        reopened: Reopened {
            cut: true,
            data_len: FILE_HEADER_LEN,
            next_offset: base,
            offset_entries: 0,
            time_entries: 0,
            policy: IndexPolicy::new(cap.index_interval, base),
        },
        new_offset_entries: Vec::new(),
        new_time_entries: Vec::new(),
        end: FILE_HEADER_LEN,
        next_offset: base,
        error,
        reached_file_end: false,
        header_invalid,
    };
    if len < FILE_HEADER_LEN {
        let e = crate::error::corrupt(0, "a segment file header", format!("a file of {len} bytes"));
        return Ok(empty_outcome(Some(e.in_file(&paths.log, 0)), true));
    }
    let map =
        Mapping::read_only(&file, len).map_err(|e| Error::io("map segment", &paths.log, e))?;
    let bytes = map.bytes();
    let info = match file_header::check(bytes, FileKind::Log, base, &paths.log) {
        Ok(info) => info,
        Err(e) => {
            if matches!(e.kind(), crate::error::ErrorKind::UnsupportedVersion { .. }) {
                // A newer build wrote this: never treat its data as a torn file.
                return Err(e);
            }
            // The header is durable before any batch is written (`ActiveSegment::create`), so
            // a file whose creation was interrupted holds nothing past it. Anything there is
            // data under a damaged header: corruption, which recovery must not delete.
            if bytes[FILE_HEADER_LEN..].iter().any(|&b| b != 0) {
                return Err(e);
            }
            return Ok(empty_outcome(Some(e), true));
        }
    };
    if info.compacted() {
        // Written whole and synced by the cleaner before it was committed: a sealed segment,
        // whose batches may leave gaps. Never resumed from a checkpoint (the cleaner leaves the
        // checkpoint's segment alone), never cut.
        let mut outcome = scan_from(
            bytes,
            &paths,
            base,
            FILE_HEADER_LEN,
            base,
            Vec::new(),
            Vec::new(),
            cap,
            true,
            report,
        )?;
        outcome.compacted = true;
        if let Some(e) = outcome.error.take() {
            return Err(e);
        }
        if outcome.next_offset > base + u64::from(info.span) {
            return Err(crate::error::corrupt(
                outcome.end as u64,
                format!("batches ending by offset {}", base + u64::from(info.span)),
                format!("a batch ending at offset {}", outcome.next_offset),
            )
            .in_file(&paths.log, 0));
        }
        return Ok(outcome);
    }
    if base != expected_first {
        let e = crate::error::corrupt(
            0,
            format!("a segment starting at offset {expected_first}"),
            format!("a segment named for offset {base}"),
        );
        return Ok(empty_outcome(Some(e.in_file(&paths.log, 0)), false));
    }

    // Index entries before the resume position are covered by the checkpoint.
    let (start, next) = match resume {
        Some(c) if (c.position as usize) >= FILE_HEADER_LEN && (c.position as usize) <= len => {
            (c.position as usize, c.next_offset)
        }
        _ => (FILE_HEADER_LEN, base),
    };
    if start > FILE_HEADER_LEN {
        let counts = resume.map_or((0, 0), |c| (c.offset_entries, c.time_entries));
        if let Some(kept) = kept_entries(&paths, base, start, counts) {
            let mut outcome = scan_from(
                bytes,
                &paths,
                base,
                start,
                next,
                kept.offsets,
                kept.times,
                cap,
                false,
                report,
            )?;
            // After a clean close only zeros follow the checkpoint. Otherwise what follows the
            // valid end may be a torn write: cut it, so it can never be read back as data.
            outcome.reopened.cut |= kept.stale_after || !resume.is_some_and(|c| c.clean);
            return Ok(outcome);
        }
        // Without the index prefix we cannot resume mid-file: rebuild the index from the start.
        report.rebuilt_indexes.push(paths.index.clone());
    }
    let mut outcome = scan_from(
        bytes,
        &paths,
        base,
        FILE_HEADER_LEN,
        base,
        Vec::new(),
        Vec::new(),
        cap,
        false,
        report,
    )?;
    outcome.reopened.cut |=
        !resume.is_some_and(|c| c.clean && c.position as usize == FILE_HEADER_LEN);
    Ok(outcome)
}

/// The valid index entries of a segment that point below `position`, or `None` when an index
/// file is missing or its header is bad.
struct Kept {
    offsets: Vec<OffsetEntry>,
    times: Vec<TimeEntry>,
    /// Whether non-zero bytes follow the kept entries (entries of batches that did not survive),
    /// which must then be cut away.
    stale_after: bool,
}

fn kept_entries(
    paths: &SegmentPaths,
    base: u64,
    position: usize,
    counts: (u32, u32),
) -> Option<Kept> {
    // Mapped, not read: only the pages of the valid prefix are touched, however large the
    // preallocated index is.
    let map = |path: &Path, kind: FileKind| -> Option<std::sync::Arc<Mapping>> {
        let file = std::fs::File::open(path).ok()?;
        let len = file.metadata().ok()?.len() as usize;
        let map = Mapping::read_only(&file, len).ok()?;
        file_header::check(map.bytes(), kind, base, path).ok()?;
        Some(map)
    };
    let offsets = map(&paths.index, FileKind::OffsetIndex)?;
    let times = map(&paths.time_index, FileKind::TimeIndex)?;
    let offsets = &offsets.bytes()[FILE_HEADER_LEN..];
    let times = &times.bytes()[FILE_HEADER_LEN..];
    if !offsets.len().is_multiple_of(OFFSET_ENTRY_LEN)
        || !times.len().is_multiple_of(TIME_ENTRY_LEN)
    {
        return None; // a ragged file is damaged: rebuild
    }
    let n = index::valid_offset_prefix(offsets, position);
    let m = index::valid_time_prefix(times, position);
    if (n as u64, m as u64) != (u64::from(counts.0), u64::from(counts.1)) {
        return None; // the checkpoint vouched for other entries: damaged, rebuild
    }
    // What follows the valid prefix: zeros (the preallocated rest), entries of batches after
    // `position` that a crash left behind (stale: cut them), or anything else (damage: rebuild).
    let offset_after = OffsetEntry::at(offsets, n).filter(|e| {
        *e != OffsetEntry {
            relative_offset: 0,
            position: 0,
        }
    });
    let time_after = TimeEntry::at(times, m)
        .filter(|e| e.timestamp != 0 || e.relative_offset != 0 || e.position != 0);
    let stale = |p: u32| (p as usize) >= position;
    if offset_after.is_some_and(|e| !stale(e.position))
        || time_after.is_some_and(|e| !stale(e.position))
    {
        return None;
    }
    Some(Kept {
        offsets: (0..n).filter_map(|i| OffsetEntry::at(offsets, i)).collect(),
        times: (0..m).filter_map(|i| TimeEntry::at(times, i)).collect(),
        stale_after: offset_after.is_some() || time_after.is_some(),
    })
}

#[allow(clippy::too_many_arguments)]
fn scan_from(
    bytes: &[u8],
    paths: &SegmentPaths,
    base: u64,
    start: usize,
    next: u64,
    kept_offsets: Vec<OffsetEntry>,
    kept_times: Vec<TimeEntry>,
    cap: Capacity,
    gaps: bool,
    report: &mut RecoveryReport,
) -> Result<ScanOutcome> {
    let mut policy = IndexPolicy::resume(
        cap.index_interval,
        base,
        start,
        kept_offsets.last().copied(),
        kept_times.last().copied(),
        first_batch_timestamp(bytes, start),
    );
    let mut new_offsets = Vec::new();
    let mut new_times = Vec::new();
    let scanned = scan::scan(bytes, start, next, cap.max_batch_bytes, gaps, |pos, h| {
        let (o, t) = policy.note(pos, h);
        new_offsets.extend(o);
        new_times.extend(t);
    });
    report.scanned_bytes += (scanned.end - start) as u64;
    report.scanned_batches += scanned.batches;
    Ok(ScanOutcome {
        compacted: false,
        reopened: Reopened {
            cut: scanned.error.is_some() || scanned.end != start,
            data_len: scanned.end,
            next_offset: scanned.next_offset,
            offset_entries: kept_offsets.len(),
            time_entries: kept_times.len(),
            policy,
        },
        new_offset_entries: new_offsets,
        new_time_entries: new_times,
        end: scanned.end,
        next_offset: scanned.next_offset,
        reached_file_end: scanned.end == bytes.len(),
        error: scanned.error.map(|e| e.in_file(&paths.log, 0)),
        header_invalid: false,
    })
}

/// The max timestamp of the first batch of a segment, if the scan starts after it.
fn first_batch_timestamp(bytes: &[u8], start: usize) -> Option<i64> {
    if start <= FILE_HEADER_LEN {
        return None;
    }
    crate::record::codec::BatchHeader::parse_stored(
        bytes.get(FILE_HEADER_LEN..)?,
        usize::MAX,
        crate::segment::scan::layout_of_file(bytes),
    )
    .ok()
    .map(|h| h.max_timestamp)
}
