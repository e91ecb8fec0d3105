//! The transaction coordinator: producer ids, the state of each transactional id, the durable
//! commit decisions, and recovery of transactions a crash left open.
//!
//! Its state is an internal log, `__transaction_state-0`, of records keyed by transactional id;
//! the latest record per key wins and the whole state is replayed at open. What is durable, and
//! when (FORMAT.md section 8.3):
//! - a producer's registration (`init`: id, epoch) is fsynced before the producer is returned;
//! - a commit decision (`PrepareCommit`, with each partition and the sequence number of the
//!   transaction's first batch there) is fsynced after the transaction's data is durable and
//!   before any commit marker is written;
//! - abort decisions and completions are not fsynced: an undecided transaction is aborted at
//!   open, and markers are idempotent.
//!
//! Recovery: every partition log knows the transactions it holds with no marker
//! ([`Log::open_transactions`]). A transaction is committed there if the latest record of its
//! producer is a commit decision of the same epoch naming that partition with the same first
//! sequence; otherwise it is aborted. Because commit markers are written without an fsync of
//! their own, the coordinator makes a transaction's commit markers durable before it writes the
//! next durable record of the same transactional id (usually free: the next transaction's data
//! appends sync the same logs).
//!
//! A full disk never fails the end of a decided transaction nor the open: markers without room
//! are kept (a running transaction's in [`TxnEntry::unfinished`], recovery's in the coordinator,
//! see [`Coordinator::finish_recovery`]) and written in order by the store's maintenance thread
//! once there is room, and before the same producer id writes again; the completion record
//! follows its markers. Meanwhile the open transaction holds its partition's last stable offset.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::{FlushPolicy, LogConfig};
use crate::coordinator::offsets::OffsetStore;
use crate::error::{corrupt, Error, ErrorKind, Result};
use crate::log::Log;
use crate::partition::Partition;
use crate::record::{BatchBuilder, Compression, ControlType, ProducerFields};
use crate::topic::TopicPartition;

/// Directory of the transaction state log inside the store.
pub(crate) const TXN_LOG_DIR: &str = "__transaction_state-0";
/// Producer ids are reserved in blocks, one durable record per block.
const PID_BLOCK: i64 = 1000;
const KEY_PID_BLOCK: &[u8] = b"P";
const KEY_TXN_PREFIX: u8 = b'T';
/// A transaction's timeout when its producer gave none (Kafka's `transaction.timeout.ms`).
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// What the latest record of a transactional id says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// No transaction open (after `init` or a completed transaction).
    Empty = 0,
    /// Decided to commit; markers may be missing.
    PrepareCommit = 2,
    /// Committed, markers written.
    CompleteCommit = 3,
    /// Aborted, markers written.
    CompleteAbort = 4,
}

impl Phase {
    fn from_byte(b: u8) -> Result<Phase> {
        Ok(match b {
            0 => Phase::Empty,
            2 => Phase::PrepareCommit,
            3 => Phase::CompleteCommit,
            4 => Phase::CompleteAbort,
            _ => {
                return Err(corrupt(
                    11,
                    "a transaction phase 0, 2, 3 or 4",
                    format!("{b}"),
                ))
            }
        })
    }
}

/// One record of the transaction log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TxnRecord {
    pub producer_id: i64,
    pub epoch: i16,
    pub phase: Phase,
    /// Partitions of the decided transaction with the first sequence used in each.
    pub partitions: Vec<(TopicPartition, i32)>,
}

impl TxnRecord {
    // Format: { version u8 (1) | producer_id i64 | epoch i16 | phase u8 | count u32 |
    //           [ topic_len u16 | topic | partition u32 | first_sequence i32 ] }
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(16 + self.partitions.len() * 32);
        b.push(1);
        b.extend_from_slice(&self.producer_id.to_le_bytes());
        b.extend_from_slice(&self.epoch.to_le_bytes());
        b.push(self.phase as u8);
        b.extend_from_slice(&(self.partitions.len() as u32).to_le_bytes());
        for (tp, seq) in &self.partitions {
            b.extend_from_slice(&(tp.topic.len() as u16).to_le_bytes());
            b.extend_from_slice(tp.topic.as_bytes());
            b.extend_from_slice(&tp.partition.to_le_bytes());
            b.extend_from_slice(&seq.to_le_bytes());
        }
        b
    }

    fn decode(b: &[u8]) -> Result<TxnRecord> {
        let mut r = Bytes { b, pos: 0 };
        let version = r.take(1)?[0];
        if version != 1 {
            return Err(corrupt(
                0,
                "transaction record version 1",
                format!("{version}"),
            ));
        }
        let producer_id = i64::from_le_bytes(r.array()?);
        let epoch = i16::from_le_bytes(r.array()?);
        let phase = Phase::from_byte(r.take(1)?[0])?;
        let count = u32::from_le_bytes(r.array()?);
        let mut partitions = Vec::new();
        for _ in 0..count {
            let len = u16::from_le_bytes(r.array()?) as usize;
            let topic = String::from_utf8(r.take(len)?.to_vec())
                .map_err(|_| corrupt(r.pos as u64, "a UTF-8 topic name", "invalid UTF-8"))?;
            let partition = u32::from_le_bytes(r.array()?);
            let seq = i32::from_le_bytes(r.array()?);
            partitions.push((TopicPartition::new(topic, partition), seq));
        }
        if r.pos != b.len() || producer_id < 0 {
            return Err(corrupt(
                r.pos as u64,
                "a transaction record with a producer id >= 0 and nothing after it",
                format!("producer id {producer_id}, {} more bytes", b.len() - r.pos),
            ));
        }
        Ok(TxnRecord {
            producer_id,
            epoch,
            phase,
            partitions,
        })
    }
}

struct Bytes<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos + n).ok_or_else(|| {
            corrupt(
                self.pos as u64,
                format!("{n} more bytes"),
                "the end of the record",
            )
        })?;
        self.pos += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
}

/// Where a transaction wrote: a topic partition or the committed offsets.
#[derive(Clone)]
pub(crate) enum Target {
    Partition(Arc<Partition>),
    Offsets,
}

/// [`Member::first_sequence`] of a partition added before anything was written to it (a wire
/// client's `AddPartitionsToTxn`); filled in from the log at commit.
pub(crate) const UNKNOWN_SEQUENCE: i32 = -1;

/// A partition of the open transaction.
#[derive(Clone)]
pub(crate) struct Member {
    pub target: Target,
    pub first_sequence: i32,
}

/// The live state of one transactional id, shared by its producer handles.
pub(crate) struct TxnEntry {
    pub id: String,
    pub producer_id: i64,
    pub epoch: i16,
    /// The open transaction: when it began and the partitions it wrote.
    pub open: Option<OpenTxn>,
    /// Set when the coordinator aborted the open transaction (its timeout): the producer's
    /// calls fail until it calls `abort`.
    pub aborted_by_timeout: bool,
    /// Next sequence number per partition, for the current epoch.
    pub sequences: HashMap<TopicPartition, i32>,
    /// Commit markers written without an fsync of their own, to make durable before the next
    /// durable record of this id.
    pub unsynced_markers: Vec<(Target, u64)>,
    /// The markers (and the closing record) of an ended transaction that a full disk kept from
    /// being written: written before anything else this id does, and by the store's
    /// maintenance thread once there is room (see [`Coordinator::finish_markers`]).
    pub unfinished: Option<Unfinished>,
    /// How the last transaction of the current epoch ended (`None` since `init`, or while one
    /// is open): a retried `EndTxn` of the same outcome succeeds again, as Kafka's coordinator
    /// answers a retry in `CompleteCommit`/`CompleteAbort`.
    pub last_end: Option<ControlType>,
    /// The transaction timeout a wire client gave in `InitProducerId`, for the transactions it
    /// opens with `AddPartitionsToTxn`/`AddOffsetsToTxn` (in-process producers give theirs at
    /// `begin`).
    pub timeout: Duration,
}

/// What is left to write of a transaction's end (commit decided, or abort).
pub(crate) struct Unfinished {
    kind: ControlType,
    fields: ProducerFields,
    /// Where markers are still missing, in order.
    targets: Vec<Target>,
    /// The `CompleteCommit`/`CompleteAbort` record, appended after the last marker.
    complete: TxnRecord,
}

pub(crate) struct OpenTxn {
    pub started: Instant,
    pub timeout: Duration,
    pub members: Vec<(TopicPartition, Member)>,
    /// Set after a failed send: the transaction can only be aborted.
    pub failed: Option<String>,
}

pub(crate) struct Coordinator {
    log: Log,
    state: Mutex<State>,
    /// The latest value of every key in the log: what a snapshot rewrites. Held while appending,
    /// so that a snapshot sees every record before it.
    live: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
    /// [`SNAPSHOT_MIN_BYTES`], lowered by tests.
    snapshot_min_bytes: u64,
    /// What recovery at open could not write for lack of space (see
    /// [`Coordinator::finish_recovery`]); empty once written.
    recovery: Mutex<Recovery>,
}

/// A marker that recovery owes a log: it ends a transaction a crash left open.
pub(crate) struct RecoveryMarker {
    target: Target,
    fields: ProducerFields,
    kind: ControlType,
}

/// The rest of recovery, put off by a full disk: markers first (each durable once written),
/// then the `CompleteCommit` records of the decided transactions.
#[derive(Default)]
struct Recovery {
    markers: Vec<RecoveryMarker>,
    /// Logs that received a marker not yet fsynced: synced before any completion record.
    unflushed: Vec<Target>,
    complete: Vec<(String, TxnRecord)>,
}

/// The transaction log is rewritten (its live records appended anew, older segments deleted)
/// once it is this large and four times its live records, so that replay at open stays short.
const SNAPSHOT_MIN_BYTES: u64 = 16 << 20;

struct State {
    next_pid: i64,
    pid_block_end: i64,
    entries: HashMap<String, Arc<Mutex<TxnEntry>>>,
}

impl Coordinator {
    /// Closes the transaction log ([`Store::close`](crate::Store::close)).
    pub(crate) fn close(&self) -> Result<()> {
        self.log.close_shared()
    }

    /// Opens the transaction log in `dir` and replays it.
    pub(crate) fn open(dir: &Path) -> Result<(Coordinator, HashMap<String, TxnRecord>)> {
        let config = LogConfig {
            segment_bytes: 64 << 20,
            flush: FlushPolicy::Manual,
            retention_ms: None,
            retention_bytes: None,
            ..LogConfig::default()
        };
        let log = Log::open(dir, config)?;
        let mut records: HashMap<String, TxnRecord> = HashMap::new();
        let mut live: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut pid_block_end = 0i64;
        let mut next = log.log_start_offset();
        while next < log.high_watermark() {
            let batches = log.read(next, 1 << 20)?;
            let Some(last) = batches.last() else { break };
            next = last.last_offset() + 1;
            for batch in &batches {
                for r in batch.records()?.iter() {
                    let r = r?;
                    let at = |e: Error| e.in_file(dir, 0);
                    if let (Some(k), Some(v)) = (r.key(), r.value()) {
                        live.insert(k.to_vec(), v.to_vec());
                    }
                    match (r.key(), r.value()) {
                        (Some(KEY_PID_BLOCK), Some(v)) => {
                            let v: [u8; 8] = v.try_into().map_err(|_| {
                                at(corrupt(0, "an 8-byte producer id block", "other bytes"))
                            })?;
                            pid_block_end = pid_block_end.max(i64::from_le_bytes(v));
                        }
                        (Some([KEY_TXN_PREFIX, id @ ..]), Some(v)) => {
                            let id = String::from_utf8(id.to_vec()).map_err(|_| {
                                at(corrupt(0, "a UTF-8 transactional id", "invalid UTF-8"))
                            })?;
                            records.insert(id, TxnRecord::decode(v).map_err(at)?);
                        }
                        (key, _) => {
                            return Err(at(corrupt(
                                0,
                                "a producer id block or transaction record",
                                format!("key {key:?}"),
                            )))
                        }
                    }
                }
            }
        }
        let mut entries = HashMap::new();
        for (id, rec) in &records {
            entries.insert(
                id.clone(),
                Arc::new(Mutex::new(TxnEntry {
                    id: id.clone(),
                    producer_id: rec.producer_id,
                    epoch: rec.epoch,
                    open: None,
                    aborted_by_timeout: false,
                    sequences: HashMap::new(),
                    unsynced_markers: Vec::new(),
                    unfinished: None,
                    last_end: None,
                    timeout: DEFAULT_TIMEOUT,
                })),
            );
        }
        let coordinator = Coordinator {
            log,
            state: Mutex::new(State {
                // Ids of the last block may have been handed out before the crash: skip it.
                next_pid: pid_block_end,
                pid_block_end,
                entries,
            }),
            live: Mutex::new(live),
            snapshot_min_bytes: SNAPSHOT_MIN_BYTES,
            recovery: Mutex::new(Recovery::default()),
        };
        Ok((coordinator, records))
    }

    fn append(&self, key: &[u8], value: &[u8], durable: bool) -> Result<()> {
        {
            let mut live = self.live.lock();
            let mut b = BatchBuilder::new(Compression::None);
            b.append(crate::clock::now_ms(), Some(key), Some(value), &[]);
            self.log.append(&b.build()?)?;
            live.insert(key.to_vec(), value.to_vec());
            // The record is in the log: a snapshot that finds no room is put off (it only
            // shortens replay; nothing is deleted before it is whole), and must not make the
            // record look unwritten to the caller, nor skip its flush below.
            match self.maybe_snapshot(&live) {
                Err(e) if e.is_no_space() => tracing::warn!(
                    target: "riverbed::txn",
                    error = %e,
                    "no space to rewrite the transaction log; put off"
                ),
                other => other?,
            }
        }
        // NOTE: outside `live`, so that producers of different ids share fsyncs.
        if durable {
            self.log.flush()?;
        }
        Ok(())
    }

    /// Rewrites the live records and drops the segments before them once the log is mostly
    /// superseded records. The rewrite is flushed before anything is deleted.
    fn maybe_snapshot(&self, live: &HashMap<Vec<u8>, Vec<u8>>) -> Result<()> {
        let live_bytes: u64 = live
            .iter()
            .map(|(k, v)| (k.len() + v.len() + 16) as u64)
            .sum();
        if self.log.size_in_bytes() < self.snapshot_min_bytes.max(4 * live_bytes) {
            return Ok(());
        }
        self.log.roll()?;
        let start = self.log.high_watermark();
        let now = crate::clock::now_ms();
        let mut b = BatchBuilder::new(Compression::None);
        for (k, v) in live {
            b.append(now, Some(k), Some(v), &[]);
            if b.size_in_bytes() > 512 << 10 {
                self.log.append(&b.build()?)?;
                b.clear();
            }
        }
        if !b.is_empty() {
            self.log.append(&b.build()?)?;
        }
        self.log.flush()?;
        self.log.delete_segments_below(start)?;
        Ok(())
    }

    /// A new producer id (durably reserved).
    pub(crate) fn allocate_producer_id(&self) -> Result<i64> {
        let mut s = self.state.lock();
        if s.next_pid >= s.pid_block_end {
            let end = s.pid_block_end + PID_BLOCK;
            self.append(KEY_PID_BLOCK, &end.to_le_bytes(), true)?;
            s.pid_block_end = end;
        }
        let pid = s.next_pid;
        s.next_pid += 1;
        Ok(pid)
    }

    /// The entry of `id`, if a producer ever registered it.
    pub(crate) fn existing_entry(&self, id: &str) -> Option<Arc<Mutex<TxnEntry>>> {
        self.state.lock().entries.get(id).cloned()
    }

    /// The entry of `id`, created with a fresh producer id if it has none.
    pub(crate) fn entry(&self, id: &str) -> Result<Arc<Mutex<TxnEntry>>> {
        if let Some(e) = self.state.lock().entries.get(id) {
            return Ok(Arc::clone(e));
        }
        let pid = self.allocate_producer_id()?;
        let mut s = self.state.lock();
        let e = s.entries.entry(id.to_string()).or_insert_with(|| {
            Arc::new(Mutex::new(TxnEntry {
                id: id.to_string(),
                producer_id: pid,
                epoch: -1,
                open: None,
                aborted_by_timeout: false,
                sequences: HashMap::new(),
                unsynced_markers: Vec::new(),
                unfinished: None,
                last_end: None,
                timeout: DEFAULT_TIMEOUT,
            }))
        });
        Ok(Arc::clone(e))
    }

    /// Registers a new producer for `entry`'s id: aborts the open transaction of the previous
    /// one, bumps the epoch (fencing it) and records the new epoch durably.
    pub(crate) fn init(&self, entry: &mut TxnEntry, offsets: &OffsetStore) -> Result<()> {
        self.finish_markers(entry, offsets)?;
        if entry.open.is_some() {
            tracing::warn!(
                target: "riverbed::txn",
                transactional_id = %entry.id,
                producer_id = entry.producer_id,
                fenced_epoch = entry.epoch,
                "a new producer fenced the previous one; its open transaction is aborted"
            );
            self.abort(entry, offsets)?;
        }
        entry.aborted_by_timeout = false;
        entry.last_end = None;
        self.sync_markers(entry, offsets)?;
        if entry.epoch == i16::MAX {
            entry.producer_id = self.allocate_producer_id()?;
            entry.epoch = 0;
        } else {
            entry.epoch += 1;
        }
        entry.sequences.clear();
        let rec = TxnRecord {
            producer_id: entry.producer_id,
            epoch: entry.epoch,
            phase: Phase::Empty,
            partitions: Vec::new(),
        };
        self.append(&txn_key(&entry.id), &rec.encode(), true)
    }

    fn sync_markers(&self, entry: &mut TxnEntry, offsets: &OffsetStore) -> Result<()> {
        for (target, offset) in entry.unsynced_markers.drain(..) {
            let log = match &target {
                Target::Partition(p) => &p.log,
                Target::Offsets => offsets.log(),
            };
            if log.durable_offset() <= offset {
                log.flush()?;
            }
        }
        Ok(())
    }

    /// Commits `entry`'s open transaction: data durable, decision durable, then markers.
    pub(crate) fn commit(&self, entry: &mut TxnEntry, offsets: &OffsetStore) -> Result<()> {
        self.finish_markers(entry, offsets)?;
        let Some(mut open) = entry.open.take() else {
            return Err(invalid_state("commit without begin"));
        };
        if let Some(reason) = &open.failed {
            let reason = format!("a send of this transaction failed ({reason}): abort it");
            entry.open = Some(open);
            return Err(invalid_state(&reason));
        }
        // A partition a wire client added (`AddPartitionsToTxn`) was written by its own Produce
        // requests, with its own sequence numbers: the decision names the first sequence the
        // log saw from this producer in the open transaction, which is what recovery matches.
        for (_, m) in &mut open.members {
            if let (Target::Partition(p), UNKNOWN_SEQUENCE) = (&m.target, m.first_sequence) {
                if let Some(t) = p
                    .log
                    .open_transactions()
                    .iter()
                    .find(|t| t.producer_id == entry.producer_id)
                {
                    m.first_sequence = t.first_sequence;
                }
            }
        }
        let fields = producer_fields(entry);
        let prepared = (|| -> Result<()> {
            for (_, m) in &open.members {
                match &m.target {
                    Target::Partition(p) => p.log.flush()?,
                    Target::Offsets => offsets.log().flush()?,
                }
            }
            self.sync_markers(entry, offsets)?;
            let rec = TxnRecord {
                producer_id: entry.producer_id,
                epoch: entry.epoch,
                phase: Phase::PrepareCommit,
                partitions: open
                    .members
                    .iter()
                    .map(|(tp, m)| (tp.clone(), m.first_sequence))
                    .collect(),
            };
            self.append(&txn_key(&entry.id), &rec.encode(), true)
        })();
        if let Err(e) = prepared {
            // Nothing decided: the transaction is still open and may be aborted.
            entry.open = Some(OpenTxn {
                failed: Some(e.to_string()),
                ..open
            });
            return Err(e);
        }
        // Decided (Kafka answers EndTxn here too, and sends the markers afterwards). A full disk
        // from here on leaves the markers to `finish_markers`: the commit stands, and
        // `read_committed` readers see it once they are written. Other errors leave them to the
        // next open, which completes the commit from the durable decision.
        let unfinished = Unfinished {
            kind: ControlType::Commit,
            fields,
            targets: open.members.iter().map(|(_, m)| m.target.clone()).collect(),
            complete: TxnRecord {
                producer_id: entry.producer_id,
                epoch: entry.epoch,
                phase: Phase::CompleteCommit,
                partitions: open
                    .members
                    .iter()
                    .map(|(tp, m)| (tp.clone(), m.first_sequence))
                    .collect(),
            },
        };
        entry.last_end = Some(ControlType::Commit);
        self.write_markers(entry, offsets, unfinished)
    }

    /// Writes what is left of `u`, in order; on a failure keeps the rest in `entry.unfinished`.
    /// A full disk is not the caller's error (the transaction's end is decided): it is logged
    /// and `Ok` returned; the rest is written by the next call for this id or by the store's
    /// maintenance thread.
    fn write_markers(
        &self,
        entry: &mut TxnEntry,
        offsets: &OffsetStore,
        mut u: Unfinished,
    ) -> Result<()> {
        let result = (|| -> Result<()> {
            while let Some(target) = u.targets.first().cloned() {
                let at = match &target {
                    Target::Partition(p) => p.log.append_marker(u.fields, u.kind)?,
                    Target::Offsets => offsets.end_transaction(u.fields, u.kind)?,
                };
                if let (ControlType::Commit, Some(at)) = (u.kind, at) {
                    entry.unsynced_markers.push((target, at));
                }
                u.targets.remove(0);
            }
            self.append(&txn_key(&entry.id), &u.complete.encode(), false)
        })();
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                entry.unfinished = Some(u);
                if !e.is_no_space() {
                    return Err(e);
                }
                tracing::warn!(
                    target: "riverbed::txn",
                    transactional_id = %entry.id,
                    error = %e,
                    "no space for transaction markers; written once there is room"
                );
                Ok(())
            }
        }
    }

    /// Writes the markers a full disk held back (see [`TxnEntry::unfinished`]). Called before
    /// anything else the id does (a new transaction's batches must follow the old one's
    /// markers), and by the maintenance thread. A disk still full is
    /// [`NoSpace`](ErrorKind::NoSpace).
    pub(crate) fn finish_markers(&self, entry: &mut TxnEntry, offsets: &OffsetStore) -> Result<()> {
        let Some(u) = entry.unfinished.take() else {
            return Ok(());
        };
        self.write_markers(entry, offsets, u)?;
        match &entry.unfinished {
            Some(u) => Err(ErrorKind::NoSpace {
                op: "write transaction markers",
                path: match u.targets.first() {
                    Some(Target::Partition(p)) => p.log.dir().to_path_buf(),
                    _ => offsets.log().dir().to_path_buf(),
                },
                source: std::io::Error::from_raw_os_error(libc::ENOSPC),
            }
            .into()),
            None => Ok(()),
        }
    }

    /// Aborts `entry`'s open transaction (no-op without one).
    pub(crate) fn abort(&self, entry: &mut TxnEntry, offsets: &OffsetStore) -> Result<()> {
        self.finish_markers(entry, offsets)?;
        let Some(open) = entry.open.take() else {
            return Ok(());
        };
        // Without a commit decision the transaction is aborted (an open after a crash aborts
        // it too): a full disk only puts off its markers (see `write_markers`).
        let unfinished = Unfinished {
            kind: ControlType::Abort,
            fields: producer_fields(entry),
            targets: open.members.iter().map(|(_, m)| m.target.clone()).collect(),
            complete: TxnRecord {
                producer_id: entry.producer_id,
                epoch: entry.epoch,
                phase: Phase::CompleteAbort,
                partitions: Vec::new(),
            },
        };
        entry.last_end = Some(ControlType::Abort);
        self.write_markers(entry, offsets, unfinished)
    }

    /// Aborts the transactions open longer than their timeout. Returns how many.
    pub(crate) fn expire(&self, now: Instant, offsets: &OffsetStore) -> usize {
        let entries: Vec<Arc<Mutex<TxnEntry>>> =
            self.state.lock().entries.values().cloned().collect();
        let mut aborted = 0;
        for e in entries {
            // A producer holding its entry is busy, not idle: look again at the next tick
            // rather than wait for it (the store may be closing).
            let Some(mut e) = e.try_lock() else { continue };
            // Markers a full disk held back: written once there is room (errors: still none).
            let _ = self.finish_markers(&mut e, offsets);
            let expired = e
                .open
                .as_ref()
                .is_some_and(|o| now.saturating_duration_since(o.started) > o.timeout);
            if expired && self.abort(&mut e, offsets).is_ok() {
                tracing::warn!(
                    target: "riverbed::txn",
                    transactional_id = %e.id,
                    producer_id = e.producer_id,
                    epoch = e.epoch,
                    "transaction aborted after its timeout"
                );
                e.aborted_by_timeout = true;
                aborted += 1;
            }
        }
        aborted
    }

    /// The markers that end the transactions a crash left open in `target` (a partition log or
    /// the offsets log), from the durable decisions in `records`: commit where the coordinator
    /// decided to commit with this partition and first sequence, abort everywhere else. Nothing
    /// is written here: [`complete_recovered`](Self::complete_recovered) writes them.
    pub(crate) fn recovery_markers(
        target: &Target,
        records: &HashMap<i64, &TxnRecord>,
        offsets: &OffsetStore,
    ) -> Vec<RecoveryMarker> {
        let (log, tp) = match target {
            Target::Partition(p) => (&p.log, Some(&p.tp)),
            Target::Offsets => (offsets.log(), None),
        };
        let mut markers = Vec::new();
        for t in &log.open_transactions() {
            let committed = records.get(&t.producer_id).is_some_and(|r| {
                r.epoch == t.producer_epoch
                    && matches!(r.phase, Phase::PrepareCommit | Phase::CompleteCommit)
                    && r.partitions.iter().any(|(p, seq)| {
                        *seq == t.first_sequence
                            && match tp {
                                Some(tp) => p == tp,
                                None => p.topic == crate::coordinator::offsets::OFFSETS_TOPIC,
                            }
                    })
            });
            let kind = if committed {
                ControlType::Commit
            } else {
                ControlType::Abort
            };
            tracing::info!(
                target: "riverbed::txn",
                dir = %log.dir().display(),
                producer_id = t.producer_id,
                epoch = t.producer_epoch,
                first_offset = t.first_offset,
                outcome = ?kind,
                "recovery ends a transaction left open"
            );
            markers.push(RecoveryMarker {
                target: target.clone(),
                fields: ProducerFields {
                    producer_id: t.producer_id,
                    producer_epoch: t.producer_epoch,
                    base_sequence: -1,
                },
                kind,
            });
        }
        markers
    }

    /// Ends recovery at open: writes `markers` (from [`recovery_markers`](Self::recovery_markers)),
    /// then records every decided transaction as complete. A full disk does not fail the open:
    /// what did not fit is kept, in order, and written by [`finish_recovery`](Self::finish_recovery)
    /// (the maintenance thread, and every transactional producer's init) once there is room.
    /// Meanwhile each transaction still open holds its partition's last stable offset, so
    /// `read_committed` readers stop before it; a new open redoes the same recovery from the
    /// durable decisions.
    pub(crate) fn complete_recovered(
        &self,
        records: &HashMap<String, TxnRecord>,
        markers: Vec<RecoveryMarker>,
        offsets: &OffsetStore,
    ) -> Result<()> {
        {
            let mut r = self.recovery.lock();
            r.markers = markers;
            r.complete = records
                .iter()
                .filter(|(_, r)| r.phase == Phase::PrepareCommit)
                .map(|(id, r)| {
                    let rec = TxnRecord {
                        phase: Phase::CompleteCommit,
                        ..r.clone()
                    };
                    (id.clone(), rec)
                })
                .collect();
        }
        match self.finish_recovery(offsets) {
            Err(e) if e.is_no_space() => {
                tracing::warn!(
                    target: "riverbed::txn",
                    error = %e,
                    "no space to end the transactions a crash left open; ended once there is room"
                );
                Ok(())
            }
            other => other,
        }
    }

    /// Whether recovery at open left markers or records for lack of space.
    pub(crate) fn recovery_pending(&self) -> bool {
        let r = self.recovery.lock();
        !(r.markers.is_empty() && r.unflushed.is_empty() && r.complete.is_empty())
    }

    /// Writes what recovery at open left for lack of space: every marker that fits (each log
    /// fsynced after its markers), then — once none is left — the completion records. Called by
    /// the store's maintenance thread, and before a transactional producer registers (a new
    /// epoch's batches must not precede the marker that ends its previous transaction).
    ///
    /// Every transactional producer's init waits, not only those of the ids concerned: the log
    /// holds producer ids, not transactional ids, and a registration needs room too. Nothing
    /// else waits: other producers append, offsets are committed, readers read (an open
    /// transaction holds its partition's last stable offset, so `read_committed` readers stop
    /// before it, as Kafka's do while its markers are pending).
    ///
    /// # Errors
    /// [`NoSpace`](ErrorKind::NoSpace) while some of it still does not fit; what is left is
    /// kept for the next call. Another error (a poisoned log) is returned likewise.
    pub(crate) fn finish_recovery(&self, offsets: &OffsetStore) -> Result<()> {
        let mut r = self.recovery.lock();
        let r = &mut *r;
        if r.markers.is_empty() && r.unflushed.is_empty() && r.complete.is_empty() {
            return Ok(());
        }
        let mut first_err: Option<Error> = None;
        let mut left = Vec::new();
        for m in std::mem::take(&mut r.markers) {
            if first_err.as_ref().is_some_and(|e| !e.is_no_space()) {
                left.push(m);
                continue;
            }
            let written = match &m.target {
                // A partition deleted meanwhile needs no marker.
                Target::Partition(p) if p.log.is_deleted() => Ok(()),
                Target::Partition(p) => p.log.append_marker(m.fields, m.kind).map(drop),
                Target::Offsets => offsets.end_transaction(m.fields, m.kind).map(drop),
            };
            match written {
                Ok(()) => r.unflushed.push(m.target),
                Err(e) => {
                    first_err.get_or_insert(e);
                    left.push(m);
                }
            }
        }
        r.markers = left;
        while let Some(target) = r.unflushed.last() {
            match target {
                Target::Partition(p) if p.log.is_deleted() => {}
                Target::Partition(p) => p.log.flush()?,
                Target::Offsets => offsets.log().flush()?,
            }
            r.unflushed.pop();
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        if !r.complete.is_empty() {
            while let Some((id, rec)) = r.complete.last() {
                self.append(&txn_key(id), &rec.encode(), false)?;
                r.complete.pop();
            }
            self.log.flush()?;
        }
        tracing::info!(
            target: "riverbed::txn",
            "recovery ended every transaction a crash left open"
        );
        Ok(())
    }
}

fn txn_key(id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + id.len());
    k.push(KEY_TXN_PREFIX);
    k.extend_from_slice(id.as_bytes());
    k
}

pub(crate) fn producer_fields(entry: &TxnEntry) -> ProducerFields {
    ProducerFields {
        producer_id: entry.producer_id,
        producer_epoch: entry.epoch,
        base_sequence: -1,
    }
}

pub(crate) fn invalid_state(reason: &str) -> Error {
    ErrorKind::InvalidTransactionState {
        reason: reason.to_string(),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_rewritten_when_mostly_superseded_and_replays_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, _) = Coordinator::open(dir.path()).unwrap();
        c.snapshot_min_bytes = 64 << 10;
        let pid = c.allocate_producer_id().unwrap();
        for i in 0..4000i16 {
            let rec = TxnRecord {
                producer_id: pid,
                epoch: i,
                phase: Phase::Empty,
                partitions: vec![(TopicPartition::new("t", 0), 0)],
            };
            c.append(&txn_key(&format!("id-{}", i % 3)), &rec.encode(), false)
                .unwrap();
        }
        let size = c.log.size_in_bytes();
        assert!(size < 200 << 10, "never rewritten: {size} bytes");
        assert!(
            c.log.log_start_offset() > 0,
            "old segments were not deleted"
        );
        let next_pid = c.allocate_producer_id().unwrap();
        drop(c);
        let (c, records) = Coordinator::open(dir.path()).unwrap();
        assert_eq!(records.len(), 3);
        for (id, last) in [("id-0", 3999), ("id-1", 3997), ("id-2", 3998)] {
            assert_eq!(records[id].epoch, last, "{id}");
        }
        assert!(
            c.allocate_producer_id().unwrap() > next_pid,
            "a producer id came back"
        );
    }

    #[test]
    fn records_round_trip_and_garbage_is_refused() {
        let rec = TxnRecord {
            producer_id: 9,
            epoch: 3,
            phase: Phase::PrepareCommit,
            partitions: vec![(TopicPartition::new("out", 2), 17)],
        };
        let bytes = rec.encode();
        assert_eq!(TxnRecord::decode(&bytes).unwrap(), rec);
        for cut in 0..bytes.len() {
            assert!(TxnRecord::decode(&bytes[..cut]).is_err());
        }
        let mut bad = bytes.clone();
        bad[11] = 1; // phase 1 does not exist
        assert!(TxnRecord::decode(&bad).is_err());
    }
}
