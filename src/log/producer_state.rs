//! What a partition log knows about its producers: the last batches of each idempotent producer
//! (to acknowledge retries instead of writing them twice), each producer's open transaction (for
//! the last stable offset) and the transactions that ended in an abort (for `read_committed`
//! readers).
//!
//! All of it is derived from the batch headers in the data files and can be rebuilt by replaying
//! them ([`ProducerStates::apply`]). To keep opening cheap it is saved:
//! - in the `producer-state` snapshot (FORMAT.md section 5.2), written when a segment rolls and
//!   when the log closes; opening replays only the batches after the snapshot's offset;
//! - in one `.txnindex` file per sealed segment that holds abort markers (FORMAT.md section
//!   4.3), so that the aborted transactions of the whole log are known without a scan.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{corrupt, Error, ErrorKind, Result};
use crate::record::codec::BatchHeader;
use crate::record::crc;
use crate::record::{BatchRef, ControlType};
use crate::segment::file_header::{self, FileKind, FILE_HEADER_LEN};
use crate::segment::Segment;
use crate::small_file::{self, Binary};

/// How many of a producer's most recent batches a log remembers for spotting retries (Kafka's
/// `max.in.flight.requests.per.connection` bound for idempotence).
pub const RETAINED_BATCHES: usize = 5;

/// File name of the producer state snapshot in a log directory.
pub const SNAPSHOT_FILE: &str = "producer-state";
const SNAPSHOT_FORMAT: Binary = Binary {
    magic: *b"RVBP",
    version: 1,
};
/// Size of one `.txnindex` entry.
pub const TXN_ENTRY_LEN: usize = 32;

/// A transaction that ended with an abort marker: `read_committed` readers skip the producer's
/// transactional records from `first_offset` up to the marker at `last_offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AbortedTxn {
    /// The producer whose records are aborted.
    pub producer_id: i64,
    /// Offset of the transaction's first record in this partition.
    pub first_offset: u64,
    /// Offset of the abort marker.
    pub last_offset: u64,
}

/// A transaction with records in the partition and no marker yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OpenTxn {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub first_offset: u64,
    /// Sequence number of the transaction's first batch in this partition.
    pub first_sequence: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    base_offset: u64,
    last_offset: u64,
    timestamp: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
    /// The open transaction: first offset and first sequence.
    txn: Option<(u64, i32)>,
    /// Largest batch timestamp seen (for expiring idle producers).
    last_timestamp: i64,
}

/// The verdict on a producer's batch before it is appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A new batch in sequence: append it.
    Append,
    /// A retry of a batch the log holds: acknowledge these offsets and write nothing.
    Duplicate {
        base_offset: u64,
        last_offset: u64,
        timestamp: i64,
    },
}

/// The producer state of one partition log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions by first offset: the smallest key is the last stable offset.
    ongoing: BTreeMap<u64, i64>,
    /// Aborted transactions, in the order of their markers.
    aborted: Vec<AbortedTxn>,
}

fn next_sequence(last: i32) -> i32 {
    if last == i32::MAX {
        0
    } else {
        last + 1
    }
}

impl ProducerStates {
    /// Decides what to do with a producer's batch (`h.producer_id >= 0`, not a control batch).
    pub(crate) fn check(&self, h: &BatchHeader) -> Result<Verdict> {
        if h.base_sequence < 0 {
            return Err(Error::invalid(format!(
                "a batch of producer {} needs a base sequence >= 0, not {}",
                h.producer_id, h.base_sequence
            )));
        }
        let Some(p) = self.producers.get(&h.producer_id) else {
            // A producer the log does not know (new, or its state expired or went with
            // retention): any sequence starts it, as after Kafka's UNKNOWN_PRODUCER_ID reset.
            return Ok(Verdict::Append);
        };
        if h.producer_epoch < p.epoch {
            return Err(ErrorKind::Fenced {
                reason: format!(
                    "producer {} wrote with epoch {}, but the partition has seen epoch {}",
                    h.producer_id, h.producer_epoch, p.epoch
                ),
            }
            .into());
        }
        if h.producer_epoch > p.epoch {
            if h.base_sequence != 0 {
                return Err(ErrorKind::OutOfOrderSequence {
                    producer_id: h.producer_id,
                    expected: 0,
                    found: h.base_sequence,
                }
                .into());
            }
            return Ok(Verdict::Append);
        }
        let last_seq = h.last_sequence();
        if let Some(b) = p
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
        {
            return Ok(Verdict::Duplicate {
                base_offset: b.base_offset,
                last_offset: b.last_offset,
                timestamp: b.timestamp,
            });
        }
        let expected = p.batches.back().map_or(0, |b| next_sequence(b.last_seq));
        if p.batches.is_empty() || h.base_sequence == expected {
            if !h.is_transactional() && p.txn.is_some() {
                return Err(ErrorKind::InvalidTransactionState {
                    reason: format!(
                        "producer {} sent a non-transactional batch while its transaction is open",
                        h.producer_id
                    ),
                }
                .into());
            }
            return Ok(Verdict::Append);
        }
        Err(ErrorKind::OutOfOrderSequence {
            producer_id: h.producer_id,
            expected,
            found: h.base_sequence,
        }
        .into())
    }

    /// Takes an appended batch into account (`h.base_offset` stamped). `control` is the marker
    /// type of a control batch.
    pub(crate) fn apply(&mut self, h: &BatchHeader, control: Option<ControlType>) {
        if h.producer_id < 0 {
            return;
        }
        let p = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: h.producer_epoch,
                batches: VecDeque::new(),
                txn: None,
                last_timestamp: h.max_timestamp,
            });
        if h.producer_epoch > p.epoch {
            p.epoch = h.producer_epoch;
            p.batches.clear();
        }
        p.last_timestamp = p.last_timestamp.max(h.max_timestamp);
        if let Some(kind) = control {
            if let Some((first, _)) = p.txn.take() {
                self.ongoing.remove(&first);
                let after_last = self
                    .aborted
                    .last()
                    .is_none_or(|l| l.last_offset < h.base_offset);
                if kind == ControlType::Abort && after_last {
                    self.aborted.push(AbortedTxn {
                        producer_id: h.producer_id,
                        first_offset: first,
                        last_offset: h.base_offset,
                    });
                }
            }
            return;
        }
        if h.base_sequence >= 0 {
            if p.batches.len() == RETAINED_BATCHES {
                p.batches.pop_front();
            }
            p.batches.push_back(BatchMeta {
                first_seq: h.base_sequence,
                last_seq: h.last_sequence(),
                base_offset: h.base_offset,
                last_offset: h.last_offset(),
                timestamp: h.max_timestamp,
            });
        }
        if h.is_transactional() && p.txn.is_none() {
            p.txn = Some((h.base_offset, h.base_sequence));
            self.ongoing.insert(h.base_offset, h.producer_id);
        }
    }

    /// The first offset of the oldest open transaction.
    pub(crate) fn first_unstable_offset(&self) -> Option<u64> {
        self.ongoing.keys().next().copied()
    }

    /// Every open transaction.
    pub(crate) fn open_transactions(&self) -> Vec<OpenTxn> {
        self.ongoing
            .iter()
            .filter_map(|(&first_offset, pid)| {
                let p = self.producers.get(pid)?;
                let (_, first_sequence) = p.txn?;
                Some(OpenTxn {
                    producer_id: *pid,
                    producer_epoch: p.epoch,
                    first_offset,
                    first_sequence,
                })
            })
            .collect()
    }

    /// Whether `producer_id` has an open transaction here.
    pub(crate) fn has_open_transaction(&self, producer_id: i64) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|p| p.txn.is_some())
    }

    /// Aborted transactions that overlap offsets `from..to`, in marker order.
    pub(crate) fn aborted_overlapping(&self, from: u64, to: u64) -> Vec<AbortedTxn> {
        if self.aborted.is_empty() {
            return Vec::new();
        }
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted[start..]
            .iter()
            .filter(|a| a.first_offset < to)
            .copied()
            .collect()
    }

    /// Aborted transactions whose marker lies in `from..to` (one segment's range).
    pub(crate) fn aborted_with_marker_in(&self, from: u64, to: u64) -> &[AbortedTxn] {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        let end = self.aborted.partition_point(|a| a.last_offset < to);
        &self.aborted[start..end]
    }

    /// Adds aborted transactions (in marker order) whose markers are after every known one.
    fn extend_aborted(&mut self, entries: &[AbortedTxn]) {
        for a in entries {
            if self
                .aborted
                .last()
                .is_none_or(|l| l.last_offset < a.last_offset)
            {
                self.aborted.push(*a);
            }
        }
    }

    /// Replays the batches of `segments` from `from` below `end`.
    fn replay(&mut self, segments: &[Arc<Segment>], from: u64, end: u64) -> Result<()> {
        for seg in segments.iter().filter(|s| s.next_offset() > from) {
            seg.for_each_batch(from, end, |h, bytes| {
                if h.producer_id < 0 {
                    return Ok(());
                }
                let control = if h.is_control() {
                    BatchRef::parse_as(bytes, bytes.len(), h.layout)?.control_type()?
                } else {
                    None
                };
                self.apply(h, control);
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Forgets aborted transactions whose markers are below the new log start.
    pub(crate) fn forget_below(&mut self, log_start: u64) {
        let n = self.aborted.partition_point(|a| a.last_offset < log_start);
        self.aborted.drain(..n);
    }

    /// Drops producers idle since before `cutoff_ms` that have no open transaction (Kafka's
    /// `producer.id.expiration.ms`), so the table does not grow with every producer ever seen.
    pub(crate) fn expire(&mut self, cutoff_ms: i64) {
        self.producers
            .retain(|_, p| p.txn.is_some() || p.last_timestamp >= cutoff_ms);
    }

    // ---- snapshot ---------------------------------------------------------------------------

    /// What the `.txnindex` file of each sealed segment (`base..next`) with aborts must hold:
    /// `(base, entry count, CRC of the entries)`.
    fn txn_index_figures(&self, sealed: &[(u64, u64)]) -> Vec<(u64, u32, u32)> {
        sealed
            .iter()
            .filter_map(|&(base, next)| {
                let entries = self.aborted_with_marker_in(base, next);
                (!entries.is_empty()).then(|| {
                    let body = &encode_txn_index(base, entries)[FILE_HEADER_LEN..];
                    (base, entries.len() as u32, crc::checksum(body))
                })
            })
            .collect()
    }

    /// Encodes the state as of `offset` (FORMAT.md section 5.2): the producers, the aborted
    /// transactions whose markers are at or after `active_base` (those of the `sealed` segments,
    /// `(base, next)` in order, live in their `.txnindex` files), and what each of those files
    /// holds, so that a missing or cut one is noticed.
    pub(crate) fn encode_snapshot(
        &self,
        offset: u64,
        active_base: u64,
        sealed: &[(u64, u64)],
    ) -> Vec<u8> {
        let aborted = &self.aborted[self
            .aborted
            .partition_point(|a| a.last_offset < active_base)..];
        let indexes = self.txn_index_figures(sealed);
        let mut out = SNAPSHOT_FORMAT.begin(36 + self.producers.len() * 80 + aborted.len() * 24);
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&(self.producers.len() as u32).to_le_bytes());
        out.extend_from_slice(&(aborted.len() as u32).to_le_bytes());
        out.extend_from_slice(&(indexes.len() as u32).to_le_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort();
        for id in ids {
            let p = &self.producers[id];
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&p.epoch.to_le_bytes());
            out.push(p.batches.len() as u8);
            out.push(u8::from(p.txn.is_some()));
            out.extend_from_slice(&p.last_timestamp.to_le_bytes());
            let (first, seq) = p.txn.unwrap_or((0, -1));
            out.extend_from_slice(&first.to_le_bytes());
            out.extend_from_slice(&seq.to_le_bytes());
            for b in &p.batches {
                out.extend_from_slice(&b.first_seq.to_le_bytes());
                out.extend_from_slice(&b.last_seq.to_le_bytes());
                out.extend_from_slice(&b.base_offset.to_le_bytes());
                out.extend_from_slice(&b.last_offset.to_le_bytes());
                out.extend_from_slice(&b.timestamp.to_le_bytes());
            }
        }
        for a in aborted {
            out.extend_from_slice(&a.producer_id.to_le_bytes());
            out.extend_from_slice(&a.first_offset.to_le_bytes());
            out.extend_from_slice(&a.last_offset.to_le_bytes());
        }
        for (base, count, entries_crc) in indexes {
            out.extend_from_slice(&base.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            out.extend_from_slice(&entries_crc.to_le_bytes());
        }
        small_file::seal(&mut out);
        out
    }

    /// Decodes a snapshot: the offset it was taken at, the state (with only the aborted
    /// transactions it holds) and the `.txnindex` figures. Positions in errors are byte
    /// positions in the file.
    pub(crate) fn decode_snapshot(bytes: &[u8]) -> Result<Snapshot> {
        let body = SNAPSHOT_FORMAT.check(bytes)?;
        let mut r = Reader {
            b: body,
            pos: small_file::HEADER_LEN,
        };
        r.u16()?;
        let offset = r.u64()?;
        let producers = r.u32()?;
        let aborted = r.u32()?;
        let index_count = r.u32()?;
        let mut s = ProducerStates::default();
        for _ in 0..producers {
            let id = r.u64()? as i64;
            let epoch = r.u16()? as i16;
            let batches = r.take(1)?[0] as usize;
            let has_txn = r.take(1)?[0];
            let last_timestamp = r.u64()? as i64;
            let first = r.u64()?;
            let seq = r.u32()? as i32;
            if batches > RETAINED_BATCHES || has_txn > 1 || id < 0 {
                return Err(corrupt(
                    r.pos as u64,
                    format!("a producer entry (id >= 0, <= {RETAINED_BATCHES} batches)"),
                    format!("id {id}, {batches} batches, txn flag {has_txn}"),
                ));
            }
            let mut entry = ProducerEntry {
                epoch,
                batches: VecDeque::with_capacity(batches),
                txn: (has_txn == 1).then_some((first, seq)),
                last_timestamp,
            };
            for _ in 0..batches {
                entry.batches.push_back(BatchMeta {
                    first_seq: r.u32()? as i32,
                    last_seq: r.u32()? as i32,
                    base_offset: r.u64()?,
                    last_offset: r.u64()?,
                    timestamp: r.u64()? as i64,
                });
            }
            if entry.txn.is_some() {
                s.ongoing.insert(first, id);
            }
            s.producers.insert(id, entry);
        }
        for _ in 0..aborted {
            let a = AbortedTxn {
                producer_id: r.u64()? as i64,
                first_offset: r.u64()?,
                last_offset: r.u64()?,
            };
            if s.aborted
                .last()
                .is_some_and(|l| l.last_offset >= a.last_offset)
            {
                return Err(corrupt(
                    r.pos as u64,
                    "aborted transactions in marker order",
                    format!("marker {} after a later one", a.last_offset),
                ));
            }
            s.aborted.push(a);
        }
        let mut indexes = Vec::new();
        for _ in 0..index_count {
            indexes.push((r.u64()?, r.u32()?, r.u32()?));
        }
        if r.pos != body.len() {
            return Err(corrupt(
                r.pos as u64,
                "the end of the snapshot",
                format!("{} more bytes", body.len() - r.pos),
            ));
        }
        Ok(Snapshot {
            offset,
            state: s,
            indexes,
        })
    }
}

/// A decoded `producer-state` file.
pub(crate) struct Snapshot {
    pub offset: u64,
    pub state: ProducerStates,
    /// `(segment base, entry count, CRC of the entries)` of each `.txnindex` the snapshot's
    /// sealed segments had.
    pub indexes: Vec<(u64, u32, u32)>,
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let s = self
            .b
            .get(self.pos..self.pos + n)
            .ok_or_else(|| corrupt(self.pos as u64, format!("{n} more bytes"), "the end"))?;
        self.pos += n;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
}

/// What [`load`] found.
pub(crate) struct Loaded {
    pub state: ProducerStates,
    /// `.txnindex` files that were missing or damaged and were written again.
    pub rebuilt: Vec<PathBuf>,
    /// `.txnindex` files that were missing or damaged and could not be written for lack of
    /// space (the state in memory has their entries; the next open rebuilds them).
    pub deferred: Vec<PathBuf>,
}

/// Rebuilds the producer state of a log whose segments (sealed ones first, then the active one)
/// end at `end`: the `.txnindex` files of the sealed segments, the snapshot, and a replay of the
/// batches after the snapshot. Without a usable snapshot (a log written before producer ids, or
/// a damaged file) or with a damaged `.txnindex`, every batch is replayed and the `.txnindex`
/// files are written again.
///
/// `has_active` says whether the last segment is the active one (else all are sealed: a log
/// that opened on a full disk without room for a new active segment).
pub(crate) fn load(
    dir: &Path,
    segments: &[Arc<Segment>],
    end: u64,
    has_active: bool,
) -> Result<Loaded> {
    let log_start = segments.first().map_or(end, |s| s.base_offset);
    let sealed = if has_active {
        &segments[..segments.len().saturating_sub(1)]
    } else {
        segments
    };
    let snapshot_path = dir.join(SNAPSHOT_FILE);
    let snapshot = match small_file::read(&snapshot_path, "read producer state") {
        Ok(Some(bytes)) => {
            let usable = ProducerStates::decode_snapshot(&bytes)
                .ok()
                .filter(|s| s.offset <= end);
            if usable.is_none() {
                // A snapshot from beyond a cut tail must not come back into use once the log
                // grows past its offset again with other batches.
                std::fs::remove_file(&snapshot_path)
                    .map_err(|e| Error::io("remove stale producer snapshot", &snapshot_path, e))?;
            }
            usable
        }
        Ok(None) | Err(_) => None,
    };
    let mut indexed = Vec::new();
    let mut indexes_ok = true;
    for seg in sealed {
        let path = &seg.paths.txn_index;
        // What the snapshot says this segment's file holds (a segment sealed after it has no
        // figures: its file, if any, is checked entry by entry only).
        let expected = snapshot
            .as_ref()
            .and_then(|s| s.indexes.iter().find(|(b, _, _)| *b == seg.base_offset));
        if !path.exists() {
            indexes_ok &= expected.is_none();
            continue;
        }
        match read_txn_index(path, seg.base_offset, seg.next_offset()) {
            Ok(entries) => {
                if let Some(&(_, count, entries_crc)) = expected {
                    let body = &encode_txn_index(seg.base_offset, &entries)[FILE_HEADER_LEN..];
                    indexes_ok &=
                        count as usize == entries.len() && entries_crc == crc::checksum(body);
                }
                indexed.extend(entries);
            }
            Err(_) => indexes_ok = false,
        }
    }
    if let (Some(snapshot), true) = (snapshot, indexes_ok) {
        let (offset, snap) = (snapshot.offset, snapshot.state);
        let mut state = ProducerStates {
            aborted: indexed,
            ..snap.clone()
        };
        // The snapshot's own aborted transactions are those of the segment that was active when
        // it was taken; the ones since sealed are already in their `.txnindex` files.
        state.extend_aborted(&snap.aborted);
        let from = offset.max(log_start);
        state.replay(segments, from, end)?;
        return Ok(Loaded {
            state,
            rebuilt: Vec::new(),
            deferred: Vec::new(),
        });
    }
    let mut state = ProducerStates::default();
    state.replay(segments, log_start, end)?;
    let mut rebuilt = Vec::new();
    let mut deferred = Vec::new();
    for seg in sealed {
        let entries = state.aborted_with_marker_in(seg.base_offset, seg.next_offset());
        let path = &seg.paths.txn_index;
        let intact = path.exists()
            && read_txn_index(path, seg.base_offset, seg.next_offset())
                .is_ok_and(|found| found == entries);
        if entries.is_empty() && path.exists() {
            std::fs::remove_file(path)
                .map_err(|e| Error::io("remove transaction index", path, e))?;
            rebuilt.push(path.clone());
        } else if !entries.is_empty() && !intact {
            match crate::fs::write_atomic(path, &encode_txn_index(seg.base_offset, entries)) {
                Ok(()) => rebuilt.push(path.clone()),
                // A damaged file must not stay to be trusted next time; a missing one is
                // noticed again (the snapshot is not rewritten before it exists).
                Err(e) if e.is_no_space() => {
                    crate::fs::remove_durably(path)?;
                    crate::fs::remove_durably(&dir.join(SNAPSHOT_FILE))?;
                    deferred.push(path.clone());
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(Loaded {
        state,
        rebuilt,
        deferred,
    })
}

// ---- .txnindex ------------------------------------------------------------------------------

/// Encodes a `.txnindex` file: the file header, then one 32-byte entry per aborted transaction
/// whose marker is in the segment (FORMAT.md section 4.3).
pub(crate) fn encode_txn_index(base_offset: u64, entries: &[AbortedTxn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FILE_HEADER_LEN + entries.len() * TXN_ENTRY_LEN);
    out.extend_from_slice(&file_header::encode(FileKind::TxnIndex, base_offset));
    for a in entries {
        let start = out.len();
        out.extend_from_slice(&a.producer_id.to_le_bytes());
        out.extend_from_slice(&a.first_offset.to_le_bytes());
        out.extend_from_slice(&a.last_offset.to_le_bytes());
        let c = crc::checksum(&out[start..]);
        out.extend_from_slice(&c.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
    }
    out
}

/// Reads a `.txnindex` file of the segment `base_offset..next_offset`, checking every entry.
pub(crate) fn read_txn_index(
    path: &Path,
    base_offset: u64,
    next_offset: u64,
) -> Result<Vec<AbortedTxn>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read transaction index", path, e))?;
    decode_txn_index(&bytes, path, base_offset, next_offset)
}

/// Decodes the bytes of the `.txnindex` file at `path` (named in errors) of the segment
/// `base_offset..next_offset`, checking every entry.
pub(crate) fn decode_txn_index(
    bytes: &[u8],
    path: &Path,
    base_offset: u64,
    next_offset: u64,
) -> Result<Vec<AbortedTxn>> {
    file_header::check(bytes, FileKind::TxnIndex, base_offset, path)?;
    let body = &bytes[FILE_HEADER_LEN..];
    if !body.len().is_multiple_of(TXN_ENTRY_LEN) {
        return Err(corrupt(
            bytes.len() as u64,
            format!("whole {TXN_ENTRY_LEN}-byte entries"),
            format!("{} bytes of entries", body.len()),
        )
        .in_file(path, 0));
    }
    let mut out: Vec<AbortedTxn> = Vec::with_capacity(body.len() / TXN_ENTRY_LEN);
    for (i, e) in body.chunks_exact(TXN_ENTRY_LEN).enumerate() {
        let at = (FILE_HEADER_LEN + i * TXN_ENTRY_LEN) as u64;
        let stored = u32::from_le_bytes([e[24], e[25], e[26], e[27]]);
        crc::verify(&e[..24], stored, at + 24).map_err(|err| err.in_file(path, 0))?;
        let mut r = Reader { b: e, pos: 0 };
        let a = AbortedTxn {
            producer_id: r.u64()? as i64,
            first_offset: r.u64()?,
            last_offset: r.u64()?,
        };
        let in_segment = a.last_offset >= base_offset && a.last_offset < next_offset;
        let ordered = out.last().is_none_or(|l| l.last_offset < a.last_offset);
        if !in_segment || !ordered || a.first_offset > a.last_offset || a.producer_id < 0 {
            return Err(corrupt(
                at,
                format!(
                    "an aborted transaction with its marker in {base_offset}..{next_offset}, \
                     after the previous entry"
                ),
                format!("{a:?}"),
            )
            .in_file(path, 0));
        }
        out.push(a);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, base: u64, n: u32, txn: bool) -> BatchHeader {
        BatchHeader {
            base_offset: base,
            batch_length: 0,
            magic: 2,
            crc: 0,
            attributes: if txn {
                crate::record::codec::ATTR_TRANSACTIONAL
            } else {
                0
            },
            last_offset_delta: n - 1,
            first_timestamp: 1,
            max_timestamp: 1,
            record_count: n,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            layout: crate::record::codec::Layout::Kafka,
            leader_epoch: 0,
        }
    }

    #[test]
    fn sequences_duplicates_and_fencing() {
        let mut s = ProducerStates::default();
        let h = header(7, 0, 0, 0, 3, false);
        assert_eq!(s.check(&h).unwrap(), Verdict::Append);
        s.apply(&h, None);
        // The same batch again is a duplicate with its original offsets.
        assert_eq!(
            s.check(&h).unwrap(),
            Verdict::Duplicate {
                base_offset: 0,
                last_offset: 2,
                timestamp: 1
            }
        );
        // A gap is refused; the next sequence is accepted.
        assert!(matches!(
            s.check(&header(7, 0, 4, 0, 1, false)).unwrap_err().kind(),
            ErrorKind::OutOfOrderSequence { expected: 3, .. }
        ));
        assert_eq!(
            s.check(&header(7, 0, 3, 0, 1, false)).unwrap(),
            Verdict::Append
        );
        // A newer epoch starts over at 0 and fences the old one.
        s.apply(&header(7, 1, 0, 3, 1, false), None);
        assert!(matches!(
            s.check(&header(7, 0, 1, 0, 1, false)).unwrap_err().kind(),
            ErrorKind::Fenced { .. }
        ));
    }

    #[test]
    fn transactions_move_the_stable_offset_and_aborts_are_listed() {
        let mut s = ProducerStates::default();
        s.apply(&header(1, 0, 0, 10, 2, true), None);
        s.apply(&header(2, 0, 0, 12, 1, true), None);
        assert_eq!(s.first_unstable_offset(), Some(10));
        let mut marker = header(1, 0, -1, 13, 1, true);
        marker.attributes |= crate::record::codec::ATTR_CONTROL;
        s.apply(&marker, Some(ControlType::Abort));
        assert_eq!(s.first_unstable_offset(), Some(12));
        assert_eq!(
            s.aborted_overlapping(0, 100),
            vec![AbortedTxn {
                producer_id: 1,
                first_offset: 10,
                last_offset: 13
            }]
        );
        assert!(s.aborted_overlapping(14, 100).is_empty());
        let back = ProducerStates::decode_snapshot(&s.encode_snapshot(14, 0, &[])).unwrap();
        assert_eq!(back.offset, 14);
        assert_eq!(back.state, s);
        // As of a roll at 14 with the segment 0..14 sealed, its aborts move to its index.
        let back = ProducerStates::decode_snapshot(&s.encode_snapshot(14, 14, &[(0, 14)])).unwrap();
        assert!(back.state.aborted.is_empty());
        assert_eq!(back.indexes.len(), 1);
        assert_eq!((back.indexes[0].0, back.indexes[0].1), (0, 1));
    }

    #[test]
    fn damaged_snapshots_and_indexes_are_errors() {
        let mut s = ProducerStates::default();
        s.apply(&header(1, 0, 0, 0, 1, true), None);
        let bytes = s.encode_snapshot(1, 0, &[]);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(ProducerStates::decode_snapshot(&b).is_err(), "flip at {i}");
        }
        assert!(ProducerStates::decode_snapshot(&bytes[..bytes.len() - 1]).is_err());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.txnindex");
        let entries = [AbortedTxn {
            producer_id: 3,
            first_offset: 2,
            last_offset: 5,
        }];
        std::fs::write(&path, encode_txn_index(0, &entries)).unwrap();
        assert_eq!(read_txn_index(&path, 0, 10).unwrap(), entries);
        assert!(
            read_txn_index(&path, 0, 5).is_err(),
            "marker outside the segment"
        );
        let mut b = encode_txn_index(0, &entries);
        b[FILE_HEADER_LEN + 3] ^= 1;
        std::fs::write(&path, &b).unwrap();
        assert!(read_txn_index(&path, 0, 10).is_err());
    }
}

/// This file's bytes against those the code before `small_file` wrote (captured from it, same
/// inputs: the shared helper must not change a byte on disk), and mangled (bad CRC, truncated,
/// another version with a valid CRC) with the outcome this file has always had.
#[cfg(test)]
mod small_file_bytes {
    #[allow(unused_imports)]
    use std::path::Path;

    #[allow(unused_imports)]
    use crate::record::crc::checksum;
    #[allow(unused_imports)]
    use crate::small_file::damage::{corruption_at, hex, mangled_binary, mangled_text};

    fn g_producer_state() -> Vec<u8> {
        let mut s = crate::log::producer_state::ProducerStates::default();
        let h = crate::record::codec::BatchHeader {
            base_offset: 10,
            batch_length: 0,
            magic: 2,
            crc: 0,
            attributes: crate::record::codec::ATTR_TRANSACTIONAL,
            last_offset_delta: 2,
            first_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_005,
            record_count: 3,
            producer_id: 42,
            producer_epoch: 1,
            base_sequence: 0,
            layout: crate::record::codec::Layout::Kafka,
            leader_epoch: 0,
        };
        s.apply(&h, None);
        s.encode_snapshot(13, 0, &[])
    }

    // Captured from the code before `small_file` existed (commit 8471fcb), same inputs.
    const PRODUCER_STATE: &str = "52564250010000000d000000000000000100000000000000000000002a00000000000000010001010568e5cf8b0100000a000000000000000000000000000000020000000a000000000000000c000000000000000568e5cf8b01000091b1ec20";

    #[test]
    fn producer_state_bytes_and_damage_are_corruption_errors() {
        use crate::log::producer_state::ProducerStates;
        let good = g_producer_state();
        assert_eq!(hex(&good), PRODUCER_STATE);
        assert_eq!(ProducerStates::decode_snapshot(&good).unwrap().offset, 13);
        for (what, bytes) in mangled_binary(&good, 2) {
            let Err(e) = ProducerStates::decode_snapshot(&bytes) else {
                panic!("{what}: decoded");
            };
            let (_, position) = corruption_at(&e);
            let want = match what {
                "wrong version" => 4,
                "empty" => 0,
                _ => bytes.len() as u64 - 4,
            };
            assert_eq!(position, want, "{what}: {e}");
        }
    }
}
