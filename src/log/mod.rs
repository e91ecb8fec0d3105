//! The partition log: an append-only, totally ordered sequence of segments.
//!
//! [`Log`] assigns offsets, rolls segments, applies retention, enforces the flush policy and
//! recovers after a crash. One writer at a time appends (appends are serialised by a mutex);
//! readers never take that mutex: they read the published high watermark and a snapshot of the
//! segment list, and get [`BatchView`]s that borrow the memory-mapped files.
//!
//! Lock order, outermost first: `sync` → `writer` → `checkpoint`; `cleaner` → `maint`, and
//! `writer` → `maint`; `segments` is only ever held for the moment it takes to clone or replace
//! the snapshot. `cleaner` serialises compaction runs (see `cleaner`); `maint` is held while
//! segments are deleted (retention) or replaced (a compaction swap), so that neither happens to
//! a segment the other is working on. `seals` (the background seals under way) is a leaf: held
//! only to push, remove or copy its entries.
//!
//! **Rolls seal in the background.** A roll takes the old segment out of the writer, creates
//! and publishes the next one under the writer lock, and leaves the expensive part of sealing
//! (msync of the data, cutting the preallocated rest, fsync of the files) to a `riverbed-seal`
//! thread, so no append waits for it. The rules that keep this safe:
//! - the recovery point never moves past a segment whose seal is pending
//!   ([`Inner::write_checkpoint`] refuses to; once the seal ended, the next append or
//!   compaction moves the point to the next segment's start, in its own thread: the seal
//!   thread writes only the sealed segment's files);
//! - a sync (`flush`, the flush policy, close) waits for the seals of every segment before the
//!   end it makes durable, so "durable" still covers the rolled segment's tail;
//! - retention and compaction only touch segments that are sealed;
//! - a failed seal poisons the log, and the next append or flush reports it;
//! - a crash before the seal ends leaves an older segment with preallocated zeros after its
//!   last batch, which recovery cuts and seals (`recovery::open`).

pub mod checkpoint;
pub(crate) mod cleaner;
mod group_commit;
pub(crate) mod metrics;
pub(crate) mod producer_state;
pub(crate) mod recovery;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};

use crate::clock::now_ms;
use crate::config::{FlushPolicy, LogConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::fs::DirLock;
use crate::record::codec::BatchHeader;
use crate::record::{BatchBuilder, ControlType, ProducerFields, RecordBatch, TimestampType};
use crate::segment::file_header::FILE_HEADER_LEN;
use crate::segment::{ActiveSegment, BatchView, ReadBudget, ReadProgress, Segment};
use checkpoint::Checkpoint;
pub use cleaner::{CompactionConfig, CompactionReport};
use metrics::LogCounters;
pub use metrics::{CompactionMetrics, FsyncMetrics, LatencyHistogram, LogMetrics, Rate};
pub use producer_state::AbortedTxn;
use producer_state::{OpenTxn, ProducerStates, Verdict};
pub use recovery::{RecoveryReport, Truncation};

/// How long a log remembers an idle producer's sequence numbers (Kafka's
/// `producer.id.expiration.ms` default): a retry after a longer silence is not recognised.
const PRODUCER_EXPIRATION_MS: i64 = 24 * 60 * 60 * 1000;

/// Batches of the log up to its last stable offset, with what a `read_committed` reader needs to
/// drop the records of aborted transactions.
#[derive(Debug)]
#[non_exhaustive]
pub struct CommittedRead {
    /// Batches from the requested offset, all below `last_stable_offset`. Control batches and
    /// records of aborted transactions are included: skip them (see `aborted`).
    pub batches: Vec<BatchView>,
    /// The aborted transactions that overlap the batches, in the order of their markers.
    pub aborted: Vec<AbortedTxn>,
    /// The last stable offset when the read was made.
    pub last_stable_offset: u64,
}

/// Where an appended batch landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppendInfo {
    /// Offset of the batch's first record.
    pub base_offset: u64,
    /// Offset of its last record.
    pub last_offset: u64,
    /// The batch's max timestamp as stored (the append time for a log-append-time log).
    pub timestamp: i64,
}

/// What a retention pass deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionReport {
    /// Base offsets of the deleted segments.
    pub deleted_segments: Vec<u64>,
    /// Bytes freed.
    pub deleted_bytes: u64,
    /// The log start offset after the pass.
    pub log_start_offset: u64,
}

/// A partition log stored in one directory. `Send + Sync`: share it with an `Arc`.
///
/// ```
/// use riverbed::{BatchBuilder, Compression, FlushPolicy, Log, LogConfig};
///
/// let dir = tempfile::tempdir()?;
/// let config = LogConfig::default().flush(FlushPolicy::EveryAppend);
/// let log = Log::open(dir.path(), config.clone())?;
/// let mut batch = BatchBuilder::new(Compression::None);
/// batch.append(1_700_000_000_000, Some(b"k"), Some(b"v"), &[]);
/// let info = log.append(&batch.build()?)?;          // durable when this returns
/// assert_eq!(info.base_offset, 0);
/// log.close()?;
///
/// let log = Log::open(dir.path(), config)?;
/// let batches = log.read(0, 1 << 20)?;
/// let records = batches[0].records()?;
/// let record = records.iter().next().unwrap()?;
/// assert_eq!(record.value(), Some(&b"v"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Log {
    inner: Arc<Inner>,
    /// The flush thread; taken (and joined) by the first close.
    flusher: Mutex<Option<JoinHandle<()>>>,
}

struct Inner {
    dir: PathBuf,
    /// The current configuration. Replaced whole by [`Log::alter_config`] (under the writer
    /// lock); each append, roll, retention or cleaner pass reads one snapshot of it.
    config: RwLock<Arc<LogConfig>>,
    writer: Mutex<Writer>,
    segments: RwLock<Arc<Vec<Arc<Segment>>>>,
    /// The high watermark: offsets below it are readable.
    next_offset: AtomicU64,
    log_start: AtomicU64,
    poisoned: AtomicBool,
    /// Set when the log's directory was deleted (its topic was deleted): nothing may be written
    /// to the old path any more, where a new log of the same name may live.
    deleted: AtomicBool,
    /// Producer sequences, open and aborted transactions. Taken inside `writer` (never the other
    /// way round), and briefly by readers for the aborted transactions.
    producers: Mutex<ProducerStates>,
    /// First offset of the oldest open transaction (`u64::MAX`: none). Stored before the high
    /// watermark moves past the batch that opened or closed a transaction, so that
    /// `min(high watermark, this)` loaded in that order is a stable offset.
    first_unstable: AtomicU64,
    /// Whether any aborted transaction is known (lets `read_committed` skip the lock).
    has_aborts: AtomicBool,
    /// What poisoned the log (empty while it is not), and the I/O error kind of that failure.
    poison_cause: Mutex<(String, Option<std::io::ErrorKind>)>,
    sync: Mutex<SyncState>,
    /// Shares fsyncs between concurrent callers of `sync_to` (see `group_commit`); its lock is
    /// taken with no other held, and is held only to take `poison_cause`.
    group: group_commit::GroupCommit,
    checkpoint: Mutex<Checkpoint>,
    /// Whether the checkpoint on disk carries the clean flag (cleared before the next append).
    clean_on_disk: AtomicBool,
    report: RecoveryReport,
    counters: LogCounters,
    shutdown: (Mutex<bool>, Condvar),
    /// Held by a compaction run from start to end.
    cleaner: Mutex<cleaner::CleanerState>,
    /// Held while segments are deleted or swapped (see the module documentation).
    maint: Mutex<()>,
    /// Seals under way in the background, oldest first (see the module documentation).
    seals: Mutex<Vec<Arc<SealJob>>>,
    /// The base of the segment after the newest one whose background seal ended.
    sealed_upto: AtomicU64,
    /// `sealed_upto` as far as `checkpoint_sealed` last took it into the recovery point.
    sealed_checkpointed: AtomicU64,
    /// This log, for the seal threads (set once the log is built).
    me: std::sync::OnceLock<std::sync::Weak<Inner>>,
    _lock: DirLock,
}

/// A segment rolled away from, whose seal runs (or is about to run) in the background.
struct SealJob {
    /// The segment's base offset.
    base: u64,
    /// The offset after its last batch: the next segment's base.
    next: u64,
    /// The write side to seal; taken by whoever runs the seal.
    segment: Mutex<Option<ActiveSegment>>,
    /// `Some(true)` once sealed, `Some(false)` if the seal failed (the log is then poisoned).
    done: Mutex<Option<bool>>,
    ended: Condvar,
}

impl SealJob {
    /// Records the end of the seal (`ok`: it succeeded) and wakes the waiters.
    fn finish(&self, ok: bool) {
        *self.done.lock() = Some(ok);
        self.ended.notify_all();
    }
}

struct Writer {
    /// `None` after close, or after a roll sealed the old segment and could not create the new
    /// one for lack of space: the next append (or roll) creates it (`start_segment`).
    active: Option<ActiveSegment>,
    /// Set by close: no segment is created any more.
    closed: bool,
    next_offset: u64,
    unflushed_messages: u64,
}

/// What the group commit has made durable.
struct SyncState {
    durable_offset: u64,
    segment_base: u64,
    position: usize,
}

impl Log {
    /// Opens the log in `dir`, creating the directory and an empty log if need be, and recovers
    /// it if it was not closed cleanly (see [`recovery_report`](Self::recovery_report)).
    ///
    /// # Errors
    /// [`InvalidConfig`](ErrorKind::InvalidConfig); [`Locked`](ErrorKind::Locked) if another
    /// handle has the directory open; [`Corruption`](ErrorKind::Corruption) for damage recovery
    /// cannot repair (a bad sealed segment while rebuilding its index, or any cut in
    /// [`Strict`](crate::RecoveryMode::Strict) mode); [`Io`](ErrorKind::Io).
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Log> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create log directory", &dir, e))?;
        let lock = DirLock::acquire(&dir)?;
        let opened = recovery::open(&dir, &config)?;
        log_recovery(&dir, &opened.report);
        let active = opened.active;
        let next = opened.next_offset;
        let mut segments = opened.sealed;
        if let Some(a) = &active {
            segments.push(Arc::clone(&a.seg));
        }
        let mut log_start = segments.first().map_or(next, |s| s.base_offset);
        if let Some(recorded) = checkpoint::read_log_start(&dir)? {
            // A start that `delete_records_before` moved into a segment. Past the end (records
            // lost to a crash after it was recorded), the log starts at its end.
            log_start = log_start.max(recorded.min(next));
        }
        let mut report = opened.report;
        let loaded = producer_state::load(&dir, &segments, next, active.is_some())?;
        let clean_offset = cleaner::read_checkpoint(&dir);
        report.rebuilt_indexes.extend(loaded.rebuilt);
        report.deferred_writes.extend(loaded.deferred);
        let producers = loaded.state;
        let on_disk = opened.disk_checkpoint;
        let none = Checkpoint {
            next_offset: 0,
            segment_base: 0,
            position: 0,
            offset_entries: 0,
            time_entries: 0,
            clean: false,
        };
        let (needs_checkpoint, cp, sync) = match &active {
            None => {
                // No active segment (the disk had no room for one): every segment is sealed,
                // so synced. No recovery point can name the end; an old one must not mislead.
                let path = dir.join(checkpoint::FILE_NAME);
                if on_disk.is_some() {
                    crate::fs::remove_durably(&path)?;
                    report.deferred_writes.push(path);
                }
                let sync = SyncState {
                    durable_offset: next,
                    segment_base: next,
                    position: FILE_HEADER_LEN,
                };
                (false, none, sync)
            }
            Some(active) => {
                let at_end = checkpoint_of(active, next);
                // Also when nothing was scanned, a checkpoint that does not name the recovered
                // end (say it lies past a cut-off end of file) must not survive to mislead the
                // next open.
                let needs_checkpoint =
                    opened.needs_checkpoint || !on_disk.is_some_and(|c| c.same_point(&at_end));
                if needs_checkpoint {
                    // What recovery kept may be only in the page cache (the process died, the
                    // machine did not): nothing of the active segment counts as synced, and no
                    // checkpoint vouches for it yet.
                    let sync = SyncState {
                        durable_offset: active.seg.base_offset,
                        segment_base: active.seg.base_offset,
                        position: FILE_HEADER_LEN,
                    };
                    (true, none, sync)
                } else {
                    let cp = on_disk.unwrap_or(at_end);
                    let sync = SyncState {
                        durable_offset: next,
                        segment_base: active.seg.base_offset,
                        position: active.position(),
                    };
                    (false, cp, sync)
                }
            }
        };
        let mut inner = Arc::new(Inner {
            group: group_commit::GroupCommit::new(sync.durable_offset),
            sync: Mutex::new(sync),
            writer: Mutex::new(Writer {
                active,
                closed: false,
                next_offset: next,
                unflushed_messages: 0,
            }),
            segments: RwLock::new(Arc::new(segments)),
            next_offset: AtomicU64::new(next),
            log_start: AtomicU64::new(log_start),
            poisoned: AtomicBool::new(false),
            deleted: AtomicBool::new(false),
            first_unstable: AtomicU64::new(producers.first_unstable_offset().unwrap_or(u64::MAX)),
            has_aborts: AtomicBool::new(!producers.aborted_overlapping(0, u64::MAX).is_empty()),
            producers: Mutex::new(producers),
            poison_cause: Mutex::new((String::new(), None)),
            clean_on_disk: AtomicBool::new(cp.clean),
            checkpoint: Mutex::new(cp),
            report,
            counters: {
                let c = LogCounters::default();
                c.clean_offset.store(clean_offset, Ordering::Relaxed);
                c
            },
            shutdown: (Mutex::new(false), Condvar::new()),
            cleaner: Mutex::new(cleaner::CleanerState { clean_offset }),
            maint: Mutex::new(()),
            seals: Mutex::new(Vec::new()),
            sealed_upto: AtomicU64::new(0),
            sealed_checkpointed: AtomicU64::new(0),
            me: std::sync::OnceLock::new(),
            dir,
            config: RwLock::new(Arc::new(config)),
            _lock: lock,
        });
        if needs_checkpoint {
            // What recovery kept may still be only in the page cache (the process died, the
            // machine did not): make it durable before vouching for it. (On a full disk the
            // recovery point is removed instead of written: see `write_checkpoint`.)
            inner.sync_and_checkpoint(false)?;
            if !recovery_point_exists(&inner.dir) {
                // Not written for lack of space: say so. No other handle exists yet (the
                // flusher starts below), so the report can still be changed in place.
                if let Some(inner_mut) = Arc::get_mut(&mut inner) {
                    let path = inner_mut.dir.join(checkpoint::FILE_NAME);
                    inner_mut.report.deferred_writes.push(path);
                }
            }
        }
        let _ = inner.me.set(Arc::downgrade(&inner));
        let flusher = match inner.config().flush {
            FlushPolicy::Interval {
                interval: Some(every),
                ..
            } => Some(spawn_flusher(Arc::clone(&inner), every)?),
            _ => None,
        };
        Ok(Log {
            inner,
            flusher: Mutex::new(flusher),
        })
    }

    /// Appends a batch, stamping offsets (and, for a log-append-time log, timestamps) into it.
    /// Returns once the batch is readable, and durable if the flush policy says so.
    ///
    /// # Errors
    /// [`RecordTooLarge`](ErrorKind::RecordTooLarge) (nothing written);
    /// [`KeyRequired`](ErrorKind::KeyRequired) for a record without a key in a compacted log
    /// (nothing written); [`Poisoned`](ErrorKind::Poisoned) after an earlier failure; [`Io`](ErrorKind::Io) — a
    /// full disk is reported before anything is written, a failed fsync poisons the log.
    pub fn append(&self, batch: &RecordBatch) -> Result<AppendInfo> {
        if batch.header().is_control() {
            return Err(Error::invalid(
                "control batches (transaction markers) are written by the transaction \
                 coordinator, not appended",
            ));
        }
        if batch.header().delete_horizon().is_some() {
            // The horizon decides when the cleaner may drop the batch's tombstones: only the
            // cleaner sets it (FORMAT.md 3.1), from its own clock.
            return Err(Error::invalid(
                "batches with a delete horizon (attribute bit 6) are written by the log cleaner, \
                 not appended",
            ));
        }
        self.append_batch(batch, None)?
            .ok_or_else(|| Error::invalid("a user batch was not appended"))
    }

    /// Ends `producer`'s open transaction in this log with a commit or abort marker, and returns
    /// the marker's offset (`None`: the producer has no open transaction here, nothing written).
    ///
    /// The marker is readable when this returns but, for an `EveryAppend` log whose earlier
    /// batches are all on disk, not yet fsynced: the coordinator's durable decision, not the
    /// marker, is what survives a crash, and opening the store writes a lost marker again.
    pub(crate) fn append_marker(
        &self,
        producer: ProducerFields,
        kind: ControlType,
    ) -> Result<Option<u64>> {
        let marker = BatchBuilder::control(
            kind,
            ProducerFields {
                base_sequence: -1,
                ..producer
            },
            now_ms(),
        )?;
        Ok(self
            .append_batch(&marker, Some(kind))?
            .map(|info| info.base_offset))
    }

    /// Appends a user batch, or a marker (`control`); `None` when a marker finds no open
    /// transaction to end.
    fn append_batch(
        &self,
        batch: &RecordBatch,
        control: Option<ControlType>,
    ) -> Result<Option<AppendInfo>> {
        let inner = &*self.inner;
        inner.check_poison()?;
        // One snapshot per append (see `alter_config`).
        let config = inner.config();
        if batch.len() < crate::record::kafka::HEADER_LEN {
            return Err(Error::invalid("cannot append an empty (unbuilt) batch"));
        }
        if batch.len() > config.max_message_bytes {
            return Err(ErrorKind::RecordTooLarge {
                size: batch.len(),
                max: config.max_message_bytes,
            }
            .into());
        }
        if config.cleanup_policy.compacts() {
            refuse_keyless(batch)?;
        }
        let stamped;
        let batch = if config.timestamp_type == TimestampType::LogAppendTime {
            let mut b = batch.clone();
            b.stamp_log_append_time(now_ms());
            stamped = b;
            &stamped
        } else {
            batch
        };
        let mut w = inner.writer.lock();
        inner.check_poison()?;
        if w.closed {
            return Err(inner.closed());
        }
        let mut header = batch.header();
        if u64::from(header.record_count) != u64::from(header.last_offset_delta) + 1 {
            // Offsets inside a batch are contiguous in this format version (FORMAT.md 3.1).
            return Err(Error::invalid(format!(
                "a batch of {} records must span {} offsets, not {}",
                header.record_count,
                header.record_count,
                u64::from(header.last_offset_delta) + 1
            )));
        }
        if header.has_producer() && control.is_none() {
            match inner.producers.lock().check(&header)? {
                Verdict::Append => {}
                Verdict::Duplicate {
                    base_offset,
                    last_offset,
                    timestamp,
                } => {
                    drop(w);
                    // The original append may still wait for its fsync: so must the retry.
                    if config.flush == FlushPolicy::EveryAppend {
                        inner.sync_to(last_offset + 1)?;
                    }
                    return Ok(Some(AppendInfo {
                        base_offset,
                        last_offset,
                        timestamp,
                    }));
                }
            }
        } else if control.is_some()
            && !inner
                .producers
                .lock()
                .has_open_transaction(header.producer_id)
        {
            return Ok(None);
        }
        header.base_offset = w.next_offset;
        // Seals that ended since the last append move the recovery point on.
        inner.checkpoint_sealed().map_err(|e| inner.poison(e))?;
        if w.active.is_none() {
            // A roll that found no room for the new segment: create it now.
            inner.start_segment(&mut w)?;
        }
        let roll = match &w.active {
            Some(a) => {
                !a.is_empty()
                    && (!a.has_room(batch.len())
                        || inner.time_to_roll(a, header.max_timestamp)
                        // An active segment of format 1/2 (left by an older build) takes no
                        // Kafka batch: the first append after the upgrade starts format 3.
                        || a.seg.layout() != header.layout)
            }
            None => return Err(inner.closed()),
        };
        if roll {
            inner.roll_locked(&mut w)?;
        }
        let Some(active) = w.active.as_mut() else {
            return Err(inner.closed());
        };
        if !active.has_room(batch.len()) {
            return Err(ErrorKind::RecordTooLarge {
                size: batch.len(),
                max: config.segment_bytes as usize - FILE_HEADER_LEN,
            }
            .into());
        }
        active.prepare(batch.len())?;
        if inner.clean_on_disk.load(Ordering::Acquire) {
            // The checkpoint says nothing follows it; that stops being true now.
            let cp = checkpoint_of(active, header.base_offset);
            inner.write_checkpoint(cp).map_err(|e| inner.poison(e))?;
            inner.clean_on_disk.store(false, Ordering::Release);
        }
        let Some(active) = w.active.as_mut() else {
            return Err(inner.closed());
        };
        if let Err(e) = active.append(batch.as_bytes(), &header) {
            return Err(inner.poison(e));
        }
        let next = header.next_offset();
        w.next_offset = next;
        w.unflushed_messages += u64::from(header.record_count);
        if header.has_producer() {
            inner.note_producer_batch(&header, control);
        }
        // A marker right after durable data need not wait for an fsync of its own (see
        // `append_marker`); after unsynced data it must not make that data readable early.
        let deferred_marker = control.is_some()
            && config.flush == FlushPolicy::EveryAppend
            && inner.next_offset.load(Ordering::Acquire) == header.base_offset;
        if config.flush != FlushPolicy::EveryAppend || deferred_marker {
            inner.next_offset.store(next, Ordering::Release);
        }
        // NOTE: with EveryAppend the high watermark moves only once the batch is on disk (in
        // `sync_locked`), so no consumer can read, and commit past, what a machine crash could
        // still take away.
        let flush = match config.flush {
            FlushPolicy::EveryAppend => !deferred_marker,
            FlushPolicy::Interval {
                messages: Some(n), ..
            } => w.unflushed_messages >= n,
            _ => false,
        };
        drop(w);
        LogCounters::add(
            &inner.counters.appended_records,
            u64::from(header.record_count),
        );
        LogCounters::add(&inner.counters.appended_bytes, batch.len() as u64);
        if flush {
            inner.sync_to(next)?;
        }
        Ok(Some(AppendInfo {
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
            timestamp: header.max_timestamp,
        }))
    }

    /// Reads batches holding offsets from `from` on, up to about `max_bytes` (at least one batch
    /// is returned whatever its size, as in Kafka). The first batch may start before `from`:
    /// skip records with smaller offsets (`RecordIter::skip_to` does it without decoding them).
    /// Returns an empty vector at the end of the log. The convenient form: a reader that reads
    /// in a loop should use [`read_into`](Self::read_into), which reuses one vector.
    ///
    /// # Verification
    /// Every batch returned has had its framing checked on this read (lengths, version,
    /// attributes, offsets continuing from batch to batch) and its CRC checked **once since its
    /// segment file was mapped**: the first read of a batch computes its CRC, and later reads of
    /// the same batch through the same open log trust that check instead of hashing the whole
    /// batch again (Kafka likewise checks a batch once, when it is produced, and its consumers
    /// check CRCs on what they receive, `check.crcs`; here the first read is that consumer
    /// check). The bytes of a mapped segment below its published end never change while the log
    /// is open (nothing writes them, and the directory lock keeps other processes out), so a
    /// batch that passed still holds what passed. A bit flipped in memory or on the device
    /// *after* that first check is not seen by later reads of that batch until the log is
    /// reopened (which checks every batch again on its first read); records still decode
    /// through bounds-checked decoders, so such damage can give wrong bytes, never a panic.
    /// Damage to a batch no read has reached yet is always found: its first read returns
    /// [`Corruption`](ErrorKind::Corruption). FORMAT.md section 7 states this among the
    /// assumptions about the storage.
    ///
    /// # Errors
    /// [`OffsetOutOfRange`](ErrorKind::OffsetOutOfRange) if `from` is below the log start or
    /// above the next offset; [`Corruption`](ErrorKind::Corruption) if a batch fails its checks.
    pub fn read(&self, from: u64, max_bytes: usize) -> Result<Vec<BatchView>> {
        let mut out = Vec::new();
        self.read_bounded(from, max_bytes, u64::MAX, &mut out)?;
        Ok(out)
    }

    /// [`read`](Self::read) into a vector the caller keeps: `out` is cleared, then filled with
    /// the batches `read` would return. A reader that reads in a loop (a scan, point reads)
    /// reuses one vector and allocates nothing per call. The batches are checked as `read`
    /// says. On an error `out` holds the batches read before the failing one.
    ///
    /// ```
    /// # use riverbed::{BatchBuilder, Compression, Log, LogConfig};
    /// # let dir = tempfile::tempdir()?;
    /// # let log = Log::open(dir.path(), LogConfig::default())?;
    /// # let mut b = BatchBuilder::new(Compression::None);
    /// # for i in 0..10u8 { b.append(1, Some(&[i]), Some(b"v"), &[]); }
    /// # log.append(&b.build()?)?;
    /// let mut batches = Vec::new();
    /// let offset = 7;
    /// log.read_into(offset, 1, &mut batches)?; // the one batch holding offset 7
    /// let records = batches[0].records()?;
    /// let mut it = records.iter();
    /// it.skip_to(offset)?; // skips records 0..7 by their lengths
    /// assert_eq!(it.next().unwrap()?.key(), Some(&[7u8][..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn read_into(&self, from: u64, max_bytes: usize, out: &mut Vec<BatchView>) -> Result<()> {
        out.clear();
        self.read_bounded(from, max_bytes, u64::MAX, out)
    }

    /// [`read`](Self::read) that also stops once the batches read hold `max_records` offsets
    /// from `from` on (at least one batch is still returned), appending to `out`. A consumer
    /// that returns a few hundred records per poll reads just those batches, not `max_bytes`
    /// of them each time.
    pub(crate) fn read_bounded(
        &self,
        from: u64,
        max_bytes: usize,
        max_records: u64,
        out: &mut Vec<BatchView>,
    ) -> Result<()> {
        let inner = &*self.inner;
        // NOTE: load the high watermark before the segment snapshot: a roll publishes the new
        // segment before the watermark moves into it.
        let hw = inner.next_offset.load(Ordering::Acquire);
        let start = inner.log_start.load(Ordering::Acquire);
        let out_of_range = || -> Error {
            ErrorKind::OffsetOutOfRange {
                partition: None,
                requested: from,
                log_start: inner.log_start.load(Ordering::Acquire),
                log_end: inner.next_offset.load(Ordering::Acquire),
            }
            .into()
        };
        if from < start || from > hw {
            return Err(out_of_range());
        }
        if from == hw {
            return Ok(());
        }
        let segments = inner.segments.read().clone();
        let Some(first) = segments
            .partition_point(|s| s.base_offset <= from)
            .checked_sub(1)
        else {
            return Err(out_of_range());
        };
        let mut budget = ReadBudget::new(max_bytes, max_records);
        let before = out.len();
        for seg in &segments[first..] {
            if let ReadProgress::Full = seg.read(from, hw, &mut budget, out)? {
                break;
            }
        }
        let used = budget.used_bytes();
        let records: u64 = out[before..]
            .iter()
            .map(|b| u64::from(b.record_count()))
            .sum();
        LogCounters::add(&inner.counters.reads.records, records);
        LogCounters::add(&inner.counters.reads.bytes, used as u64);
        Ok(())
    }

    /// Like [`read`](Self::read) for a `read_committed` reader: batches from `from` below the
    /// [last stable offset](Self::last_stable_offset), and the aborted transactions among them.
    /// Returns no batches when `from` is at the last stable offset.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn read_committed(&self, from: u64, max_bytes: usize) -> Result<CommittedRead> {
        let mut batches = Vec::new();
        let (aborted, last_stable_offset) =
            self.read_committed_bounded(from, max_bytes, u64::MAX, &mut batches)?;
        Ok(CommittedRead {
            batches,
            aborted,
            last_stable_offset,
        })
    }

    /// [`read_committed`](Self::read_committed) bounded like
    /// [`read_bounded`](Self::read_bounded): appends the batches below the last stable offset to
    /// `out` and returns the aborted transactions among them, and the last stable offset the
    /// read stopped at.
    pub(crate) fn read_committed_bounded(
        &self,
        from: u64,
        max_bytes: usize,
        max_records: u64,
        out: &mut Vec<BatchView>,
    ) -> Result<(Vec<AbortedTxn>, u64)> {
        let inner = &*self.inner;
        let lso = self.last_stable_offset();
        if from >= lso && from <= inner.next_offset.load(Ordering::Acquire) {
            return Ok((Vec::new(), lso));
        }
        let before = out.len();
        self.read_bounded(from, max_bytes, max_records, out)?;
        let Some(first) = out.get(before) else {
            return Ok((Vec::new(), lso));
        };
        let start = first.base_offset();
        let stable = out[before..]
            .iter()
            .take_while(|b| b.base_offset() < lso)
            .count();
        out.truncate(before + stable);
        if inner.has_aborts.load(Ordering::Acquire) {
            let end = out[before..].last().map_or(start, |b| b.last_offset() + 1);
            return Ok((inner.producers.lock().aborted_overlapping(start, end), lso));
        }
        Ok((Vec::new(), lso))
    }

    /// The last stable offset (LSO): the first offset of the oldest transaction still open, or
    /// the high watermark when none is. `read_committed` readers read only below it.
    pub fn last_stable_offset(&self) -> u64 {
        // NOTE: the high watermark first: the writer stores `first_unstable` before it moves the
        // watermark past the batch that changed it.
        let hw = self.inner.next_offset.load(Ordering::Acquire);
        let start = self.inner.log_start.load(Ordering::Acquire);
        // An open transaction below the log start (its first records deleted) holds back
        // nothing before the start: there is nothing there to read.
        hw.min(self.inner.first_unstable.load(Ordering::Acquire))
            .max(start.min(hw))
    }

    /// Transactions with records in this log and no marker yet.
    pub(crate) fn open_transactions(&self) -> Vec<OpenTxn> {
        self.inner.producers.lock().open_transactions()
    }

    /// The offset and timestamp of the first record whose timestamp is at least `timestamp`
    /// (Kafka's `offsetsForTimes`), or `None` if every record is older.
    ///
    /// # Errors
    /// [`Corruption`](ErrorKind::Corruption) if a batch on the way fails its checks.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(u64, i64)>> {
        let hw = self.inner.next_offset.load(Ordering::Acquire);
        let segments = self.inner.segments.read().clone();
        let start = self.inner.log_start.load(Ordering::Acquire);
        for seg in segments.iter() {
            if let Some(found) = seg.find_by_time(timestamp, start, hw)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The offset and timestamp of the first record holding the log's largest timestamp
    /// (Kafka's ListOffsets `MAX_TIMESTAMP`, KIP-734), or `None` for an empty log. Walks the
    /// batch headers of every segment (their max timestamps), then finds the record through the
    /// time index: cost grows with the number of batches, which suits an admin call.
    ///
    /// # Errors
    /// [`Corruption`](ErrorKind::Corruption) if a batch on the way fails its checks.
    pub(crate) fn offset_of_max_timestamp(&self) -> Result<Option<(u64, i64)>> {
        let hw = self.inner.next_offset.load(Ordering::Acquire);
        let segments = self.inner.segments.read().clone();
        let mut max: Option<i64> = None;
        for seg in segments.iter() {
            seg.for_each_batch(seg.base_offset, hw, |h, _| {
                if !h.is_control() {
                    max = Some(max.map_or(h.max_timestamp, |m| m.max(h.max_timestamp)));
                }
                Ok(())
            })?;
        }
        match max {
            Some(ts) => self.offset_for_timestamp(ts),
            None => Ok(None),
        }
    }

    /// The first offset still in the log.
    pub fn log_start_offset(&self) -> u64 {
        self.inner.log_start.load(Ordering::Acquire)
    }

    /// The offset the next record will get: the high watermark. Every offset below it is
    /// readable.
    pub fn high_watermark(&self) -> u64 {
        self.inner.next_offset.load(Ordering::Acquire)
    }

    /// Offsets below this are known to be on disk.
    pub fn durable_offset(&self) -> u64 {
        self.inner.group.durable()
    }

    /// Bytes in all segment data files.
    pub fn size_in_bytes(&self) -> u64 {
        self.inner.segments.read().iter().map(|s| s.size()).sum()
    }

    /// Number of segments, the active one included.
    pub fn segment_count(&self) -> usize {
        self.inner.segments.read().len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<u64> {
        self.inner
            .segments
            .read()
            .iter()
            .map(|s| s.base_offset)
            .collect()
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The log's current configuration (the one it was opened with, as changed since by
    /// [`alter_config`](Self::alter_config)).
    pub fn config(&self) -> Arc<LogConfig> {
        self.inner.config()
    }

    /// Replaces the log's configuration while it is open (what
    /// [`Store::alter_topic_config`](crate::Store::alter_topic_config) does to every partition
    /// of a topic). The swap happens under the writer lock; each append reads one snapshot of
    /// the configuration, so it runs wholly under the old or wholly under the new one. What
    /// each setting affects:
    /// - `max_message_bytes`, `timestamp_type`, `cleanup_policy` (keyless records refused on a
    ///   compacting log), `flush` (when an append fsyncs): the next append;
    /// - `segment_bytes`, `segment_ms`, `index_interval_bytes`, `index_max_bytes`: the next
    ///   segment (the active one keeps the sizes it was created with);
    /// - `retention_ms`, `retention_bytes`, the compaction settings: the next retention or
    ///   cleaner pass;
    /// - `recovery_checkpoint_bytes`: the next sync; `recovery`: the next open.
    ///
    /// Refused ([`InvalidConfig`](ErrorKind::InvalidConfig), nothing changed):
    /// - an invalid configuration ([`LogConfig::validate`]);
    /// - a smaller `segment_bytes`: opening a log bounds every batch by the segment size, so
    ///   batches already written under the larger size could read as corrupt at the next open;
    /// - a different flush interval timer (`FlushPolicy::Interval { interval: Some(..), .. }`
    ///   added, removed or changed): its thread is started at open; close and reopen the log
    ///   with the new policy instead. Every other flush change is allowed.
    ///
    /// # Errors
    /// As above; [`Poisoned`](ErrorKind::Poisoned).
    pub fn alter_config(&self, config: LogConfig) -> Result<()> {
        check_alter(&self.inner.config(), &config)?;
        self.inner.check_poison()?;
        self.set_config(config);
        Ok(())
    }

    /// Swaps in `config`, which [`check_alter`] accepted against the current one.
    pub(crate) fn set_config(&self, config: LogConfig) {
        let _w = self.inner.writer.lock();
        *self.inner.config.write() = Arc::new(config);
    }

    /// A snapshot of the log's figures: offsets, size, and what was appended, read and synced
    /// since it was opened.
    pub fn metrics(&self) -> LogMetrics {
        let inner = &*self.inner;
        let c = &inner.counters;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let latency = c.fsync_latency.snapshot();
        let fsync = metrics::FsyncMetrics {
            count: latency.count(),
            failures: load(&c.fsync_failures),
            latency,
        };
        LogMetrics {
            log_start_offset: self.log_start_offset(),
            log_end_offset: self.high_watermark(),
            size_bytes: self.size_in_bytes(),
            segments: self.segment_count(),
            appended_records: load(&c.appended_records),
            appended_bytes: load(&c.appended_bytes),
            read_records: load(&c.reads.records),
            read_bytes: load(&c.reads.bytes),
            compaction: inner.config().cleanup_policy.compacts().then(|| {
                metrics::CompactionMetrics {
                    totals: c.compaction.lock().clone(),
                    clean_offset: load(&c.clean_offset),
                    dirty_ratio: self.dirty_ratio(now_ms()),
                }
            }),
            fsync,
            uptime: c.opened.elapsed(),
        }
    }

    /// What opening the log found: what was scanned, cut, rebuilt or removed.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// Makes everything appended so far durable.
    ///
    /// # Errors
    /// [`Poisoned`](ErrorKind::Poisoned); [`Io`](ErrorKind::Io) (which poisons the log).
    pub fn flush(&self) -> Result<()> {
        self.inner.sync_to(self.high_watermark())
    }

    /// Seals the active segment and starts a new one (if the active one holds anything). The
    /// seal (msync, cut, fsync of the old segment) runs in the background; a failure of it
    /// poisons the log and is reported by the next append, flush or close.
    ///
    /// # Errors
    /// [`Poisoned`](ErrorKind::Poisoned); [`Io`](ErrorKind::Io) (which poisons the log).
    pub fn roll(&self) -> Result<()> {
        let mut w = self.inner.writer.lock();
        self.inner.check_poison()?;
        if w.closed {
            return Err(self.inner.closed());
        }
        match &w.active {
            Some(a) if !a.is_empty() => self.inner.roll_locked(&mut w),
            Some(_) => Ok(()),
            None => self.inner.start_segment(&mut w),
        }
    }

    /// Deletes sealed segments past the retention limits, using the current wall-clock time.
    ///
    /// # Errors
    /// [`Io`](ErrorKind::Io) if a file cannot be removed.
    pub fn apply_retention(&self) -> Result<RetentionReport> {
        self.apply_retention_at(now_ms())
    }

    /// Deletes sealed segments past the retention limits as of `now_ms`: oldest first, those whose
    /// newest record is older than `retention_ms`, and those whose removal keeps the log at or
    /// above `retention_bytes`. The active segment is never deleted. Readers holding batches of a
    /// deleted segment keep them. Does nothing for a log whose cleanup policy is
    /// [`Compact`](crate::CleanupPolicy::Compact) only.
    ///
    /// # Errors
    /// [`Io`](ErrorKind::Io) if a file cannot be removed.
    pub fn apply_retention_at(&self, now_ms: i64) -> Result<RetentionReport> {
        self.inner.settle_seals();
        let _w = self.inner.writer.lock();
        self.inner.retention_locked(now_ms)
    }

    /// Deletes the sealed segments all of whose records are below `offset` (Kafka's
    /// `deleteRecords`, at segment granularity): the log start offset moves to the base of the
    /// first segment kept.
    ///
    /// # Errors
    /// [`Io`](ErrorKind::Io) if a file cannot be removed.
    pub fn delete_segments_below(&self, offset: u64) -> Result<RetentionReport> {
        self.inner.settle_seals();
        let _w = self.inner.writer.lock();
        let _maint = self.inner.maint.lock();
        let segments = self.inner.segments.read().clone();
        let sealed = &segments[..segments.len().saturating_sub(1)];
        let doomed = sealed
            .iter()
            .take_while(|s| s.next_offset() <= offset)
            .count();
        self.inner.delete_front_locked(doomed)
    }

    /// Moves the log start offset to `offset` (Kafka's `deleteRecordsBefore`, the DeleteRecords
    /// API): records below it are no longer readable, and the sealed segments all of whose
    /// records are below it are deleted. A start inside a segment is recorded durably in the
    /// `log-start` file (FORMAT.md 5.3) before readers see it, so it holds across restarts.
    /// Returns the log start offset after the call (unchanged if `offset` is not above it).
    ///
    /// # Errors
    /// [`OffsetOutOfRange`](ErrorKind::OffsetOutOfRange) if `offset` is above the high watermark
    /// (Kafka's rule); [`Io`](ErrorKind::Io) if the file cannot be written or a segment removed.
    pub fn delete_records_before(&self, offset: u64) -> Result<u64> {
        let inner = &*self.inner;
        inner.settle_seals();
        let w = inner.writer.lock();
        if w.closed {
            return Err(inner.closed());
        }
        let hw = inner.next_offset.load(Ordering::Acquire);
        let start = inner.log_start.load(Ordering::Acquire);
        if offset > hw {
            return Err(ErrorKind::OffsetOutOfRange {
                partition: None,
                requested: offset,
                log_start: start,
                log_end: hw,
            }
            .into());
        }
        if offset <= start {
            return Ok(start);
        }
        checkpoint::write_log_start(&inner.dir, offset)?;
        inner.log_start.fetch_max(offset, Ordering::AcqRel);
        let _maint = inner.maint.lock();
        let segments = inner.segments.read().clone();
        let sealed = &segments[..segments.len().saturating_sub(1)];
        let doomed = sealed
            .iter()
            .take_while(|s| s.next_offset() <= offset)
            .count();
        inner.delete_front_locked(doomed)?;
        drop(w);
        tracing::info!(
            target: "riverbed::log",
            dir = %inner.dir.display(),
            log_start_offset = offset,
            "records deleted below the new log start"
        );
        Ok(inner.log_start.load(Ordering::Acquire))
    }

    /// Compacts the log (its cleanup policy must include
    /// [`Compact`](crate::CleanupPolicy::Compact)): rewrites its sealed segments so that of the
    /// records with the same key at least the last one survives, and removes tombstones older
    /// than `delete_retention_ms`. Offsets never change (removed records leave gaps, which reads
    /// skip), control batches stay, the active segment is never touched, nor anything younger
    /// than `min_compaction_lag_ms`. Appends and reads go on meanwhile; readers holding batches
    /// of a rewritten segment keep them. Crash-safe: after a crash at any point the log opens
    /// with either the old or the new segments.
    ///
    /// ```
    /// use riverbed::{BatchBuilder, CleanupPolicy, CompactionConfig, Compression, Log, LogConfig};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let config = LogConfig::default().cleanup_policy(CleanupPolicy::Compact);
    /// let log = Log::open(dir.path(), config)?;
    /// for value in [&b"1"[..], b"2", b"3"] {
    ///     let mut b = BatchBuilder::new(Compression::None);
    ///     b.append(1_700_000_000_000, Some(b"k"), Some(value), &[]);
    ///     log.append(&b.build()?)?;
    /// }
    /// log.roll()?; // the active segment is never cleaned
    /// let report = log.compact(&CompactionConfig::default())?;
    /// assert_eq!(report.records_removed, 2);
    /// let batches = log.read(0, 1 << 20)?;
    /// assert_eq!(batches.len(), 1);
    /// assert_eq!(batches[0].base_offset(), 2); // offsets 0 and 1 are a gap now
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`InvalidArgument`](ErrorKind::InvalidArgument) if the log is not compacted;
    /// [`InvalidConfig`](ErrorKind::InvalidConfig) for a key map too small for one batch;
    /// [`Corruption`](ErrorKind::Corruption) if a segment to clean is damaged (nothing is
    /// changed); [`Io`](ErrorKind::Io) (a failure once a swap is committed poisons the log);
    /// [`Poisoned`](ErrorKind::Poisoned).
    pub fn compact(&self, options: &CompactionConfig) -> Result<CompactionReport> {
        self.compact_until(options, &|| false)
    }

    /// Like [`compact`](Self::compact), stopping between segment groups once `stop` says so.
    pub(crate) fn compact_until(
        &self,
        options: &CompactionConfig,
        stop: &dyn Fn() -> bool,
    ) -> Result<CompactionReport> {
        self.compact_until_on(options, stop, &cleaner::SystemClock::new())
    }

    /// [`compact_until`](Self::compact_until) with the I/O throttle on `clock`.
    fn compact_until_on(
        &self,
        options: &CompactionConfig,
        stop: &dyn Fn() -> bool,
        clock: &dyn cleaner::Clock,
    ) -> Result<CompactionReport> {
        // Segments rolled away from are cleanable once sealed: wait for the seals under way (a
        // few fsyncs, never the writer), so a roll followed by a compaction cleans them.
        let pending = self.inner.seals.lock().clone();
        self.inner.wait_seals(&pending)?;
        self.inner
            .checkpoint_sealed()
            .map_err(|e| self.inner.poison(e))?;
        let report = match cleaner::run_on(&self.inner, options, stop, clock) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(
                    target: "riverbed::log",
                    dir = %self.inner.dir.display(),
                    error = %e,
                    "compaction failed"
                );
                return Err(e);
            }
        };
        if report.passes > 0 {
            tracing::info!(
                target: "riverbed::log",
                dir = %self.inner.dir.display(),
                passes = report.passes,
                segments_cleaned = report.segments_cleaned,
                bytes_before = report.bytes_before,
                bytes_after = report.bytes_after,
                records_removed = report.records_removed,
                tombstones_removed = report.tombstones_removed,
                "compaction pass"
            );
        }
        self.inner.counters.compaction.lock().add(&report);
        Ok(report)
    }

    /// The share of the cleanable log written since it was last compacted (Kafka's dirty ratio),
    /// as of `now_ms`; 0 when nothing is cleanable.
    pub(crate) fn dirty_ratio(&self, now_ms: i64) -> f64 {
        cleaner::current_dirty_ratio(&self.inner, now_ms)
    }

    /// Flushes everything, records a recovery point at the end of the log so that the next open
    /// scans nothing, and releases the directory.
    ///
    /// # Errors
    /// [`Poisoned`](ErrorKind::Poisoned); [`Io`](ErrorKind::Io).
    pub fn close(self) -> Result<()> {
        self.shutdown()
    }

    /// [`close`](Self::close) for a log others may still hold (a store's partitions, behind
    /// `Arc`s): later calls on it fail with [`Closed`](ErrorKind::Closed). Closing twice is a
    /// no-op.
    pub(crate) fn close_shared(&self) -> Result<()> {
        self.shutdown()
    }

    /// Marks the log as deleted after its directory was moved away: every later write or flush
    /// fails, and dropping it writes nothing (a new log may be created at the old path).
    pub(crate) fn mark_deleted(&self) {
        // Under the writer lock: an append (and the roll or retention pass it may run) that is
        // under way finishes first, and every later one sees the flag.
        let _w = self.inner.writer.lock();
        // And under `maint`: a compaction swap under way finishes first, and none starts after.
        let _maint = self.inner.maint.lock();
        self.inner.deleted.store(true, Ordering::Release);
    }

    /// Undoes [`mark_deleted`](Self::mark_deleted) once the directory is back in place (a topic
    /// deletion that failed before it was committed).
    pub(crate) fn unmark_deleted(&self) {
        let _w = self.inner.writer.lock();
        let _maint = self.inner.maint.lock();
        self.inner.deleted.store(false, Ordering::Release);
    }

    /// Whether [`mark_deleted`](Self::mark_deleted) was called.
    pub(crate) fn is_deleted(&self) -> bool {
        self.inner.deleted.load(Ordering::Acquire)
    }

    fn shutdown(&self) -> Result<()> {
        {
            let (flag, cv) = &self.inner.shutdown;
            *flag.lock() = true;
            cv.notify_all();
        }
        let flusher = self.flusher.lock().take();
        if let Some(t) = flusher {
            let _ = t.join();
        }
        // NOTE: refuse appends and rolls from here on (a store closed while producers still
        // hold its partitions): an append after the clean checkpoint below samples the end of
        // the log would land past a recovery point that says nothing follows it.
        self.inner.writer.lock().closed = true;
        // No roll happens any more: wait for the seals under way (a failed one poisoned the log,
        // which `check_poison` below reports).
        let pending = self.inner.seals.lock().clone();
        let _ = self.inner.wait_seals(&pending);
        if self.inner.deleted.load(Ordering::Acquire) {
            let mut w = self.inner.writer.lock();
            w.active = None;
            w.closed = true;
            return Ok(());
        }
        self.inner.check_poison()?;
        let snapshot = {
            let mut w = self.inner.writer.lock();
            let Some(active) = &w.active else {
                // Closed already, or the last segment is sealed (so synced) and no new one
                // could be created: the next open makes the sealed one active again.
                w.closed = true;
                return Ok(());
            };
            // Before the clean checkpoint: a clean open trusts the snapshot to be at the end.
            self.inner
                .write_producer_snapshot(w.next_offset, active.seg.base_offset)
        };
        match snapshot {
            Ok(()) => self.inner.sync_and_checkpoint(true)?,
            // Without a snapshot at the end the close is not clean: everything is synced, and
            // the next open replays the producer state from the older snapshot.
            Err(e) if e.is_no_space() => self.inner.sync_and_checkpoint(false)?,
            Err(e) => return Err(e),
        }
        let mut w = self.inner.writer.lock();
        w.active = None;
        w.closed = true;
        Ok(())
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        // Best effort: a failure leaves the log to crash recovery at the next open.
        let _ = self.shutdown();
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.inner.dir)
            .field("log_start_offset", &self.log_start_offset())
            .field("next_offset", &self.high_watermark())
            .finish()
    }
}

/// Whether `new` may replace `old` in an open log (see [`Log::alter_config`]).
pub(crate) fn check_alter(old: &LogConfig, new: &LogConfig) -> Result<()> {
    new.validate()?;
    if new.segment_bytes < old.segment_bytes {
        return Err(Error::config(
            "segment_bytes",
            format!(
                "cannot be lowered while the log is open ({} to {}): segments already written may \
                 hold batches up to the old size, which a log opened with the smaller size would \
                 read as corrupt",
                old.segment_bytes, new.segment_bytes
            ),
        ));
    }
    let timer = |f: &FlushPolicy| match f {
        FlushPolicy::Interval { interval, .. } => *interval,
        _ => None,
    };
    if timer(&old.flush) != timer(&new.flush) {
        return Err(Error::config(
            "flush",
            format!(
                "the flush interval timer cannot change while the log is open ({:?} to {:?}): its \
                 thread is started at open; change it when the log is closed",
                timer(&old.flush),
                timer(&new.flush)
            ),
        ));
    }
    Ok(())
}

fn spawn_flusher(inner: Arc<Inner>, every: Duration) -> Result<JoinHandle<()>> {
    let dir = inner.dir.clone();
    std::thread::Builder::new()
        .name("riverbed-flush".into())
        .spawn(move || loop {
            {
                let (flag, cv) = &inner.shutdown;
                let mut stop = flag.lock();
                if !*stop {
                    cv.wait_for(&mut stop, every);
                }
                if *stop {
                    return;
                }
            }
            // An error poisons the log; appenders and `flush` report it.
            let _ = inner.sync_to(inner.next_offset.load(Ordering::Acquire));
        })
        .map_err(|e| Error::io("spawn flush thread", dir, e))
}

impl Inner {
    /// A snapshot of the current configuration.
    fn config(&self) -> Arc<LogConfig> {
        Arc::clone(&self.config.read())
    }

    fn check_poison(&self) -> Result<()> {
        if self.deleted.load(Ordering::Acquire) {
            return Err(Error::invalid(format!(
                "the log in {} was deleted",
                self.dir.display()
            )));
        }
        if self.poisoned.load(Ordering::Acquire) {
            let (cause, io_kind) = self.poison_cause.lock().clone();
            return Err(ErrorKind::Poisoned { cause, io_kind }.into());
        }
        Ok(())
    }

    /// Takes an appended producer batch into the producer state. Holds the writer lock; runs
    /// before the high watermark moves past the batch.
    fn note_producer_batch(&self, header: &BatchHeader, control: Option<ControlType>) {
        let mut p = self.producers.lock();
        p.apply(header, control);
        let unstable = p.first_unstable_offset().unwrap_or(u64::MAX);
        self.first_unstable.store(unstable, Ordering::Release);
        if control == Some(ControlType::Abort) {
            self.has_aborts.store(true, Ordering::Release);
        }
    }

    /// Saves the producer state as of `offset` (the writer's next offset; holds the writer lock)
    /// so that the next open replays only what follows.
    fn write_producer_snapshot(&self, offset: u64, active_base: u64) -> Result<()> {
        let sealed: Vec<(u64, u64)> = self
            .segments
            .read()
            .iter()
            .filter(|s| s.base_offset < active_base)
            .map(|s| (s.base_offset, s.next_offset()))
            .collect();
        let bytes = {
            let mut p = self.producers.lock();
            p.expire(now_ms().saturating_sub(PRODUCER_EXPIRATION_MS));
            p.encode_snapshot(offset, active_base, &sealed)
        };
        crate::small_file::write(
            &self.dir.join(producer_state::SNAPSHOT_FILE),
            &bytes,
            crate::small_file::Durability::Replace,
        )
    }

    /// Marks the log unusable after a failed write or fsync and returns the error (a full disk
    /// met here is not clean: it comes back as `Io`, not the retryable `NoSpace`).
    fn poison(&self, e: Error) -> Error {
        let e = e.into_unclean();
        tracing::error!(
            target: "riverbed::log",
            dir = %self.dir.display(),
            error = %e,
            "write or fsync failed; the log is poisoned until it is reopened"
        );
        let mut cause = self.poison_cause.lock();
        if cause.0.is_empty() {
            *cause = (e.to_string(), e.io_kind());
        }
        self.poisoned.store(true, Ordering::Release);
        e
    }

    fn closed(&self) -> Error {
        ErrorKind::Closed {
            path: self.dir.clone(),
        }
        .into()
    }

    fn time_to_roll(&self, active: &ActiveSegment, batch_max_ts: i64) -> bool {
        match (
            self.config().segment_ms,
            active.policy.first_batch_timestamp,
        ) {
            (Some(ms), Some(first)) => batch_max_ts.saturating_sub(first) >= ms as i64,
            _ => false,
        }
    }

    /// Rolls: takes the active segment out of the writer, hands its seal to the background
    /// ([`seal_in_background`](Self::seal_in_background)) and starts the next. Holds the writer
    /// lock, for the O(1) part only: no fsync of the old segment happens here.
    ///
    /// A full disk never leaves the log half-rolled: before the roll only the final time entry
    /// needs room (prefaulted by every append; failing, the old segment stays active and
    /// appendable); after it the new segment's files are created, and if they cannot be, the
    /// log is left with no active segment, and the next append (or roll) creates it. Either way
    /// the error is [`NoSpace`](ErrorKind::NoSpace) and nothing acknowledged changed. A failed
    /// seal poisons the log.
    fn roll_locked(&self, w: &mut Writer) -> Result<()> {
        let Some(old) = w.active.as_mut() else {
            return self.start_segment(w);
        };
        old.record_max_timestamp()?;
        let Some(old) = w.active.take() else {
            return Err(self.closed());
        };
        let sealed = Arc::clone(&old.seg);
        self.seal_in_background(old, w.next_offset);
        let aborted = self
            .producers
            .lock()
            .aborted_with_marker_in(sealed.base_offset, w.next_offset)
            .to_vec();
        if !aborted.is_empty() {
            let bytes = producer_state::encode_txn_index(sealed.base_offset, &aborted);
            match crate::fs::write_atomic(&sealed.paths.txn_index, &bytes) {
                Ok(()) => {}
                Err(e) if e.is_no_space() => {
                    // The `.txnindex` is derived. Without the snapshot, the next open replays
                    // the log and writes it again; the one in memory is complete.
                    tracing::warn!(
                        target: "riverbed::log",
                        file = %sealed.paths.txn_index.display(),
                        error = %e,
                        "no space for a transaction index; it is rebuilt at the next open"
                    );
                    crate::fs::remove_durably(&self.dir.join(producer_state::SNAPSHOT_FILE))
                        .map_err(|e| self.poison(e))?;
                }
                Err(e) => return Err(self.poison(e)),
            }
        }
        self.start_segment(w)
    }

    /// Seals `old` (rolled away from at `next`) on a `riverbed-seal` thread; in the caller's
    /// thread if no thread can be started. Holds the writer lock: the job is listed before the
    /// next segment exists, so a sync that sees the next segment also sees the job.
    fn seal_in_background(&self, old: ActiveSegment, next: u64) {
        let job = Arc::new(SealJob {
            base: old.seg.base_offset,
            next,
            segment: Mutex::new(Some(old)),
            done: Mutex::new(None),
            ended: Condvar::new(),
        });
        self.seals.lock().push(Arc::clone(&job));
        if let Some(me) = self.me.get().and_then(std::sync::Weak::upgrade) {
            let j = Arc::clone(&job);
            let spawned = std::thread::Builder::new()
                .name("riverbed-seal".into())
                .spawn(move || {
                    let ok = me.run_seal(&j);
                    // Before saying it is done: a close that waited for this seal must find
                    // the log (and its directory lock) free of this thread when it returns.
                    drop(me);
                    j.finish(ok);
                });
            match spawned {
                Ok(_) => return,
                Err(e) => tracing::warn!(
                    target: "riverbed::log",
                    dir = %self.dir.display(),
                    error = %e,
                    "cannot start a seal thread; sealing in the appending thread"
                ),
            }
        }
        let ok = self.run_seal(&job);
        job.finish(ok);
    }

    /// Runs a seal job: seals the segment and unlists it. A failure poisons the log and leaves
    /// the job listed. Returns whether it succeeded; the caller then calls
    /// [`SealJob::finish`].
    fn run_seal(&self, job: &SealJob) -> bool {
        let Some(segment) = job.segment.lock().take() else {
            return false;
        };
        let sealed = segment.seal();
        let ok = match sealed {
            Ok(_) => {
                // Sealed: no longer pending. (A failed job stays listed, so the recovery point
                // never passes its segment.) The recovery point moves on in a caller's thread
                // (`checkpoint_sealed`): this thread writes nothing but the segment's own files.
                self.seals.lock().retain(|j| !std::ptr::eq(j.as_ref(), job));
                self.sealed_upto.fetch_max(job.next, Ordering::AcqRel);
                true
            }
            Err(e) => {
                self.poison(e);
                false
            }
        };
        ok
    }

    /// Moves the recovery point to the start of the first segment not known sealed (the oldest
    /// whose seal is pending, else the one after the newest sealed), if seals ended since it was
    /// last moved: what the roll itself did before seals ran in the background. Called by the
    /// next append (holding the writer lock) and by compaction, whose cleanable range ends at
    /// the recovery point.
    fn checkpoint_sealed(&self) -> Result<()> {
        let upto = self.sealed_upto.load(Ordering::Acquire);
        if upto <= self.sealed_checkpointed.load(Ordering::Acquire) {
            return Ok(());
        }
        let to = self
            .seals
            .lock()
            .iter()
            .map(|j| j.base)
            .fold(upto, u64::min);
        self.write_checkpoint(Checkpoint {
            next_offset: to,
            segment_base: to,
            position: FILE_HEADER_LEN as u64,
            offset_entries: 0,
            time_entries: 0,
            clean: false,
        })?;
        self.sealed_checkpointed.fetch_max(to, Ordering::AcqRel);
        Ok(())
    }

    /// Waits for the seals under way, so that a retention pass after a roll can delete the
    /// rolled segment. A failed seal leaves its segment unsealed, which retention keeps; the
    /// poisoned log reports the failure elsewhere.
    fn settle_seals(&self) {
        let pending = self.seals.lock().clone();
        let _ = self.wait_seals(&pending);
    }

    /// Waits for the seal jobs `jobs`; fails (the log is poisoned) if one of them failed.
    fn wait_seals(&self, jobs: &[Arc<SealJob>]) -> Result<()> {
        for job in jobs {
            let mut done = job.done.lock();
            while done.is_none() {
                job.ended.wait(&mut done);
            }
        }
        self.check_poison()
    }

    /// Creates the active segment at the writer's next offset, after a seal: at a roll, or at
    /// the next append or roll after a roll (or an open) found no room for it. Holds the writer
    /// lock. A full disk is [`NoSpace`](ErrorKind::NoSpace) and leaves the log as it was.
    fn start_segment(&self, w: &mut Writer) -> Result<()> {
        if w.closed {
            return Err(self.closed());
        }
        let cap = recovery::capacity(&self.config());
        let new = match ActiveSegment::create(&self.dir, w.next_offset, cap) {
            Ok(new) => new,
            Err(e) if e.is_no_space() => {
                tracing::warn!(
                    target: "riverbed::log",
                    dir = %self.dir.display(),
                    error = %e,
                    "no space for a new segment; the next append tries again"
                );
                return Err(e);
            }
            Err(e) => return Err(self.poison(e)),
        };
        {
            let mut segs = self.segments.write();
            let mut v: Vec<Arc<Segment>> = segs.as_ref().clone();
            v.push(Arc::clone(&new.seg));
            *segs = Arc::new(v);
        }
        let cp = checkpoint_of(&new, w.next_offset);
        tracing::debug!(
            target: "riverbed::log",
            dir = %self.dir.display(),
            new_segment = w.next_offset,
            "segment rolled"
        );
        w.active = Some(new);
        match self.write_producer_snapshot(w.next_offset, w.next_offset) {
            Ok(()) => {}
            // Derived: the previous snapshot stays, and the next open replays from it.
            Err(e) if e.is_no_space() => tracing::warn!(
                target: "riverbed::log",
                dir = %self.dir.display(),
                error = %e,
                "no space for the producer state snapshot; skipped"
            ),
            Err(e) => return Err(self.poison(e)),
        }
        self.write_checkpoint(cp).map_err(|e| self.poison(e))?;
        // Not waiting for a compaction swap under way (it holds `maint` through its fsyncs).
        self.retention_locked_if(now_ms(), false)?;
        Ok(())
    }

    /// Makes offsets below `target` durable. Concurrent callers share one fsync (group commit,
    /// see `group_commit`): a round's leader syncs everything appended so far, and the others
    /// wait for it and find their data covered, or fail with the poisoned log if it failed.
    fn sync_to(&self, target: u64) -> Result<()> {
        self.check_poison()?;
        match self.group.join(target, || self.check_poison())? {
            group_commit::Role::Done => return Ok(()),
            group_commit::Role::Lead => {}
        }
        /// Ends the round however the leader leaves (an error, a panic).
        struct EndRound<'a>(&'a group_commit::GroupCommit, Option<std::time::Duration>);
        impl Drop for EndRound<'_> {
            fn drop(&mut self) {
                self.0.finish(self.1);
            }
        }
        let mut round = EndRound(&self.group, None);
        let mut s = self.sync.lock();
        if s.durable_offset >= target {
            return Ok(());
        }
        let started = std::time::Instant::now();
        self.sync_locked(&mut s, false, false)?;
        round.1 = Some(started.elapsed());
        Ok(())
    }

    /// Syncs everything and writes a checkpoint at the end (marked clean when closing).
    fn sync_and_checkpoint(&self, closing: bool) -> Result<()> {
        let mut s = self.sync.lock();
        self.check_poison()?;
        self.sync_locked(&mut s, true, closing)
    }

    fn sync_locked(&self, s: &mut SyncState, force_checkpoint: bool, clean: bool) -> Result<()> {
        let last_cp = *self.checkpoint.lock();
        let (seg, position, next, checkpoint, pending) = {
            let mut w = self.writer.lock();
            let next = w.next_offset;
            // Taken with `next`: every segment before the active one is sealed or in this list,
            // and what it holds below `next` is durable once its seal ends. A segment whose
            // batches all lie below the durable offset (synced by earlier syncs, as under
            // `EveryAppend`) holds nothing its seal still has to make durable: its seal only
            // cuts the preallocated rest and syncs the indexes, which recovery redoes (FORMAT.md
            // 6, rule 4a), so this sync does not wait for it. (The recovery point still waits:
            // it never passes a segment whose seal is pending.)
            let pending: Vec<Arc<SealJob>> = self
                .seals
                .lock()
                .iter()
                .filter(|j| j.next > s.durable_offset)
                .cloned()
                .collect();
            if w.active.is_none() && !w.closed {
                // The last segment is sealed (and so synced, once its seal ends) and the next is
                // not created yet.
                drop(w);
                self.wait_seals(&pending)?;
                s.durable_offset = next;
                self.group.set_durable(next);
                self.next_offset.fetch_max(next, Ordering::AcqRel);
                return Ok(());
            }
            let Some(a) = w.active.as_mut() else {
                return Err(self.closed());
            };
            let pos = a.position();
            let since_cp = if last_cp.segment_base == a.seg.base_offset {
                pos.saturating_sub(last_cp.position as usize)
            } else {
                pos - FILE_HEADER_LEN
            };
            let mut checkpoint =
                force_checkpoint || since_cp as u64 >= self.config().recovery_checkpoint_bytes;
            if checkpoint {
                match a.record_max_timestamp() {
                    Ok(()) => {}
                    // No room for the entry that lets a checkpoint vouch for the time index:
                    // sync without a checkpoint (the next one tries again). One that was due
                    // at once (open, close) replaces a recovery point that may mislead: remove
                    // that instead.
                    Err(e) if e.is_no_space() => {
                        checkpoint = false;
                        if force_checkpoint {
                            self.drop_checkpoint(&e).map_err(|e| self.poison(e))?;
                        }
                    }
                    Err(e) => return Err(self.poison(e)),
                }
            }
            let cp = Checkpoint {
                clean,
                ..checkpoint_of(a, next)
            };
            let seg = Arc::clone(&a.seg);
            w.unflushed_messages = 0;
            (seg, pos, next, checkpoint.then_some(cp), pending)
        };
        // The rolled segments' tails are made durable by their seals: wait for them.
        self.wait_seals(&pending)?;
        if checkpoint.is_some_and(|cp| cp == last_cp) && s.durable_offset >= next {
            // Nothing appended since the last checkpoint (a close right after an open).
            return Ok(());
        }
        let from = if s.segment_base == seg.base_offset {
            s.position
        } else {
            FILE_HEADER_LEN
        };
        let started = std::time::Instant::now();
        if let Err(e) = ActiveSegment::sync_data_from(&seg, from, position) {
            LogCounters::add(&self.counters.fsync_failures, 1);
            return Err(self.poison(e));
        }
        self.counters.fsync_latency.record(started.elapsed());
        s.durable_offset = next;
        self.group.set_durable(next);
        self.next_offset.fetch_max(next, Ordering::AcqRel);
        s.segment_base = seg.base_offset;
        s.position = position;
        if let Some(cp) = checkpoint {
            ActiveSegment::sync_indexes(&seg).map_err(|e| self.poison(e))?;
            self.write_checkpoint(cp).map_err(|e| self.poison(e))?;
        }
        Ok(())
    }

    /// Replaces the checkpoint file, unless a newer one was written meanwhile.
    ///
    /// The recovery point is derived, so a full disk does not fail the caller: the file is
    /// removed instead (durably; removing needs no space), which makes the next open scan the
    /// whole log rather than trust a point that may no longer be true (a clean mark, or a point
    /// past a cut), and the next checkpoint writes it again.
    ///
    /// Nor does the point move past a segment whose seal is pending (its tail may not be on
    /// disk): such a checkpoint is skipped, or, if the one on disk carries the clean flag,
    /// replaced by the same point without it. Once the seal ended, `checkpoint_sealed` moves
    /// the point to the next segment's start, and later syncs move it on.
    fn write_checkpoint(&self, cp: Checkpoint) -> Result<()> {
        let mut last = self.checkpoint.lock();
        if self.deleted.load(Ordering::Acquire) {
            return Ok(());
        }
        let cp = if self.seals.lock().iter().any(|j| j.base < cp.segment_base) {
            if !last.clean {
                return Ok(());
            }
            Checkpoint {
                clean: false,
                ..*last
            }
        } else {
            cp
        };
        if cp.next_offset < last.next_offset || (cp == *last && recovery_point_exists(&self.dir)) {
            return Ok(());
        }
        let path = self.dir.join(checkpoint::FILE_NAME);
        let written = if last.clean && !cp.clean {
            // Losing this rename in a crash would bring back a clean mark over data written
            // after it: make it durable with the directory.
            crate::fs::write_atomic(&path, &cp.encode())
        } else {
            cp.write(&self.dir)
        };
        match written {
            Ok(()) => {
                self.clean_on_disk.store(cp.clean, Ordering::Release);
                *last = cp;
            }
            Err(e) if e.is_no_space() => {
                drop(last);
                self.drop_checkpoint(&e)?;
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Removes the recovery point (durably) when a new one cannot be written for lack of space
    /// (`cause`): the next open scans the whole log rather than trust a point that may no longer
    /// be true; the next checkpoint writes it again.
    fn drop_checkpoint(&self, cause: &Error) -> Result<()> {
        let mut last = self.checkpoint.lock();
        let path = self.dir.join(checkpoint::FILE_NAME);
        tracing::warn!(
            target: "riverbed::log",
            file = %path.display(),
            error = %cause,
            "no space for the recovery point; removed it (the next open scans the log)"
        );
        crate::fs::remove_durably(&path)?;
        self.clean_on_disk.store(false, Ordering::Release);
        *last = Checkpoint {
            next_offset: last.next_offset,
            segment_base: 0,
            position: 0,
            offset_entries: 0,
            time_entries: 0,
            clean: false,
        };
        Ok(())
    }

    fn retention_locked(&self, now_ms: i64) -> Result<RetentionReport> {
        self.retention_locked_if(now_ms, true)
    }

    /// [`retention_locked`](Self::retention_locked); with `wait` false, nothing is done (and an
    /// empty report returned) if `maint` is taken: a roll does not wait for a compaction swap's
    /// fsyncs, and the next roll (or `apply_retention`) deletes what is due.
    fn retention_locked_if(&self, now_ms: i64, wait: bool) -> Result<RetentionReport> {
        let config = self.config();
        let nothing = || RetentionReport {
            log_start_offset: self.log_start.load(Ordering::Acquire),
            ..RetentionReport::default()
        };
        if self.deleted.load(Ordering::Acquire) {
            return Ok(nothing());
        }
        // Segments wholly below the log start (moved by `delete_records_before`) go whatever the
        // policy, as Kafka's `deleteLogStartOffsetBreachedSegments`; time and size only with
        // `delete`.
        let deletes = config.cleanup_policy.deletes();
        let _maint = if wait {
            self.maint.lock()
        } else {
            match self.maint.try_lock() {
                Some(m) => m,
                None => return Ok(nothing()),
            }
        };
        let segments = self.segments.read().clone();
        let sealed = &segments[..segments.len().saturating_sub(1)];
        let mut total: u64 = segments.iter().map(|s| s.size()).sum();
        let mut doomed = 0;
        let start = self.log_start.load(Ordering::Acquire);
        for seg in sealed {
            let below_start = seg.next_offset() <= start;
            let expired = deletes
                && config
                    .retention_ms
                    .is_some_and(|ms| seg.max_timestamp() < now_ms.saturating_sub(ms as i64));
            let oversize = deletes
                && config
                    .retention_bytes
                    .is_some_and(|limit| total.saturating_sub(seg.size()) >= limit);
            if !(below_start || expired || oversize) {
                break;
            }
            total -= seg.size();
            doomed += 1;
        }
        self.delete_front_locked(doomed)
    }

    /// Deletes the first `doomed` segments (all sealed). Holds the writer and `maint` locks.
    fn delete_front_locked(&self, doomed: usize) -> Result<RetentionReport> {
        let segments = self.segments.read().clone();
        // Never a segment whose seal is pending (nor any after it).
        let sealed_prefix = segments.iter().take_while(|s| s.is_sealed()).count();
        let doomed = doomed
            .min(segments.len().saturating_sub(1))
            .min(sealed_prefix);
        let mut report = RetentionReport {
            log_start_offset: self.log_start.load(Ordering::Acquire),
            ..RetentionReport::default()
        };
        if doomed == 0 {
            return Ok(report);
        }
        let keep: Vec<Arc<Segment>> = segments[doomed..].to_vec();
        // Never backwards: `delete_records_before` may have moved the start into a kept segment.
        // The start moves first: a reader that sees the new start may still use the old list
        // (it holds the kept segments too), never the other way round.
        let new_start = self
            .log_start
            .fetch_max(keep[0].base_offset, Ordering::AcqRel)
            .max(keep[0].base_offset);
        *self.segments.write() = Arc::new(keep);
        self.producers.lock().forget_below(new_start);
        report.log_start_offset = new_start;
        for seg in &segments[..doomed] {
            // The data file goes first: it is what recovery looks for; an index left behind by a
            // crash here is removed at the next open.
            let paths = &seg.paths;
            for path in [
                &paths.log,
                &paths.index,
                &paths.time_index,
                &paths.txn_index,
            ] {
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("delete segment", path, e)),
                }
            }
            report.deleted_segments.push(seg.base_offset);
            report.deleted_bytes += seg.size();
        }
        crate::fs::sync_dir(&self.dir)?;
        tracing::info!(
            target: "riverbed::log",
            dir = %self.dir.display(),
            deleted_segments = report.deleted_segments.len(),
            deleted_bytes = report.deleted_bytes,
            log_start_offset = report.log_start_offset,
            "retention deleted segments"
        );
        Ok(report)
    }
}

/// The open and recovery events: what was scanned, cut, rebuilt and removed.
fn log_recovery(dir: &Path, r: &RecoveryReport) {
    if let Some(t) = &r.truncation {
        tracing::warn!(
            target: "riverbed::recovery",
            file = %t.path.display(),
            position = t.position,
            offset = t.offset,
            reason = %t.reason,
            "recovery cut a torn tail"
        );
    }
    for path in &r.rebuilt_indexes {
        tracing::info!(target: "riverbed::recovery", file = %path.display(), "index rebuilt");
    }
    tracing::info!(
        target: "riverbed::recovery",
        dir = %dir.display(),
        checkpoint_used = r.checkpoint_used,
        scanned_bytes = r.scanned_bytes,
        scanned_batches = r.scanned_batches,
        truncated = r.truncation.is_some(),
        rebuilt_indexes = r.rebuilt_indexes.len(),
        removed_files = r.removed_files.len(),
        "log opened"
    );
}

/// Refuses a batch holding a record without a key (for a compacted log), before anything is
/// written.
fn refuse_keyless(batch: &RecordBatch) -> Result<()> {
    let batch = batch.as_batch();
    if batch.is_control() {
        return Ok(());
    }
    let records = batch.records()?;
    for (i, r) in records.iter().enumerate() {
        if r?.key().is_none() {
            return Err(ErrorKind::KeyRequired { record: i as u32 }.into());
        }
    }
    Ok(())
}

/// A checkpoint at the current end of the active segment.
fn checkpoint_of(active: &ActiveSegment, next_offset: u64) -> Checkpoint {
    let (offset_entries, time_entries) = active.entry_counts();
    Checkpoint {
        next_offset,
        segment_base: active.seg.base_offset,
        position: active.position() as u64,
        offset_entries,
        time_entries,
        clean: false,
    }
}

fn recovery_point_exists(dir: &Path) -> bool {
    dir.join(checkpoint::FILE_NAME).exists()
}

#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Log>();
    is::<BatchView>();
}
