//! Log compaction: rewriting sealed segments so that of the records with the same key at least
//! the last survives (Kafka's log cleaner).
//!
//! A run is made of passes. Each pass:
//!
//! 1. finds the **cleanable** part of the log: the sealed segments before the first one that is
//!    too young (`min_compaction_lag_ms`, by the segment's newest timestamp), before the segment
//!    the recovery checkpoint names, and never the active segment;
//! 2. builds a [`KeyMap`] (key hash → offset of the key's last record) over the **dirty** part:
//!    the cleanable records from the *clean offset* (where the previous pass stopped) on, batch by
//!    batch, until the map's memory budget is full; the mapped part ends at a batch boundary;
//! 3. rewrites every cleanable segment below the mapped end, from the start of the log, in groups
//!    of consecutive segments that together fit in one segment: a record is dropped when the map
//!    holds a later offset for its key, or when it is a tombstone whose batch's delete horizon
//!    has passed. A batch that keeps a tombstone and has no horizon yet gets one: this pass's time
//!    plus `delete_retention_ms` (KIP-534: stored in the batch, FORMAT.md 3.1, so it survives
//!    restarts and later passes; see [`Pass::keep`]). Control batches and everything at or past
//!    the mapped end are kept as they are. A group from which nothing is dropped and in which
//!    nothing is stamped is left alone (unless it is several segments, which are then merged). The new segment replaces the group with the crash-safe
//!    swap of `segment::cleaned`, group by group in offset order;
//! 4. moves the clean offset to the mapped end and records it in `cleaner-checkpoint`.
//!
//! **Why this keeps the last record of every key.** A record is dropped only when a later record
//! of its key exists (the map holds only offsets of records that exist and stay: the last one of
//! its key in the mapped part), or when it is a tombstone whose delete horizon has passed (a
//! horizon is stamped only by a pass that had the tombstone in its mapped part, or in the clean
//! part, so the older records of its key went in that pass, before it). The part below the clean
//! offset holds at most one record per key (every pass cleans all of it against the map), so a
//! tombstone dropped there leaves no older value behind; groups are swapped in offset order, so a
//! crash part way leaves older values removed before the tombstone that deletes them. A clean
//! offset lower than the truth (a lost `cleaner-checkpoint`) only costs work.
//!
//! **Transaction markers stay.** Kafka also removes a commit or abort marker once its
//! transaction has no records left and the marker's own delete horizon has passed
//! (`LogCleanerTest.testCommitMarkerRemoval`, `testAbortMarkerRemoval`). Riverbed keeps every
//! control batch: a marker costs a few dozen bytes, and removing one needs proof that no record
//! of its transaction is left anywhere below it (and a `.txnindex` rewrite). Keeping it is the
//! safe side: nothing a reader needs is removed.
//!
//! **Memory.** The map is a fixed table of 24-byte slots, `buffer_bytes / 24` of them, filled to
//! at most 80%. A key is stored as a 128-bit hash: a randomly keyed SipHash-1-3 (so nobody can
//! make two keys collide on purpose) and a randomly seeded multiply-xorshift hash. A chance
//! collision of both (probability about `n² / 2¹²⁹` for `n` keys in a pass: 2⁻⁶⁵ for four billion
//! keys) is the only way a record could be dropped for another key's later record; the key
//! bytes are not kept, which is what lets the map hold a key in 24 bytes. When the dirty part has more
//! keys than fit, it is cleaned in several passes.
//!
//! **Concurrency.** A run holds the log's `cleaner` lock (one run at a time) and neither the
//! writer lock nor the segment list lock while it reads and writes files: producers and readers
//! go on. Each swap takes the `maint` lock, which retention and segment deletion also take, so
//! that no segment is deleted while it is being replaced, and the segment list lock for as long as
//! replacing the `Arc` takes; a roll does not wait for `maint` (it skips its retention pass when
//! a swap holds it). Readers holding batches of a replaced segment keep its mapping.
//!
//! **I/O throttle.** A run's reads and writes are held to
//! [`CompactionConfig::io_max_bytes_per_second`] (Kafka's `log.cleaner.io.max.bytes.per.second`,
//! 32 MiB/s by default here) by a [`Throttler`] that sleeps between batches, holding only the
//! `cleaner` lock: on a machine with few cores, the cleaner then takes a small share of the
//! CPU, memory bandwidth and writeback that appends need.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::Path;
use std::sync::Arc;

use super::{now_ms, AbortedTxn, Inner};
use crate::error::{Error, Result};
use crate::record::codec::BatchHeader;
use crate::record::{filter_batch, to_kafka, BatchRef, Filtered, RecordView};
use crate::segment::cleaned::{self, CleanedWriter};
use crate::segment::file_header::FILE_HEADER_LEN;
use crate::segment::Segment;
use crate::small_file::{self, Binary, Durability, CRC_LEN};

/// Options of one compaction run: [`Log::compact`](crate::Log::compact),
/// [`Store::compact_now_with`](crate::Store::compact_now_with).
///
/// Built from `CompactionConfig::default()` with one setter per setting, e.g.
/// `CompactionConfig::default().buffer_bytes(..)`, and read with
/// the `get_` getters (see ARCHITECTURE.md, "Configuration style").
#[derive(Clone, Debug)]
pub struct CompactionConfig {
    pub(crate) buffer_bytes: usize,
    pub(crate) now_ms: Option<i64>,
    pub(crate) force: bool,
    pub(crate) io_max_bytes_per_second: Option<u64>,
}

/// The default cleaner I/O limit, of [`CompactionConfig::io_max_bytes_per_second`] and
/// [`CleanerConfig::io_max_bytes_per_second`](crate::CleanerConfig::io_max_bytes_per_second):
/// 32 MiB/s of reads and writes.
///
/// Kafka's `log.cleaner.io.max.bytes.per.second` defaults to unlimited; a broker has cores to
/// spare for its cleaner threads. An embedded log shares a small machine with its application:
/// unthrottled, a pass takes a core, the memory bandwidth and the page cache's writeback, and
/// appends during it ran at 0.58x of idle on a 2-core machine (issue 16). At 32 MiB/s the
/// cleaner is busy a small share of the time its pass takes (a fraction of the rate it reaches
/// unthrottled), so appends keep at least 0.8x of their idle rate even if they made no progress
/// at all while it works, and a pass over a 1 GiB dirty log still ends within a couple of
/// minutes. A log whose compacted writes outrun this (more than about a third of it, as a
/// pass reads the dirty part twice and writes what stays) should raise it.
pub(crate) const DEFAULT_CLEANER_IO_MAX_BYTES_PER_SECOND: u64 = 32 << 20;

impl CompactionConfig {
    /// Memory for the key map of one pass, in bytes (24 bytes a key, at most 80% full); a dirty
    /// part with more keys is cleaned in several passes. At least 1 KiB.
    /// Default: 32 MiB (Kafka's `log.cleaner.dedupe.buffer.size` is 128 MiB shared by all cleaner
    /// threads).
    #[must_use = "a setter returns the changed configuration"]
    pub fn buffer_bytes(mut self, buffer_bytes: usize) -> CompactionConfig {
        self.buffer_bytes = buffer_bytes;
        self
    }

    /// The time the run takes as now, in ms since the Unix epoch: it sets the delete horizon of
    /// the tombstones first kept in this run, decides which tombstones' horizons have passed, and
    /// which segments `min_compaction_lag_ms` protects.
    /// Default: `None`, the wall clock.
    #[must_use = "a setter returns the changed configuration"]
    pub fn now_ms(mut self, now_ms: Option<i64>) -> CompactionConfig {
        self.now_ms = now_ms;
        self
    }

    /// Clean whatever is dirty even when the log's dirty ratio is below its
    /// `min_cleanable_dirty_ratio`. Default: true (the background cleaner uses false).
    #[must_use = "a setter returns the changed configuration"]
    pub fn force(mut self, force: bool) -> CompactionConfig {
        self.force = force;
        self
    }

    /// The most bytes per second the run reads and writes (segments read to build the key map
    /// and to copy, plus the compacted segments written), like Kafka's
    /// `log.cleaner.io.max.bytes.per.second`: past it, the run sleeps between batches, holding
    /// no lock an append, a read or a roll needs, so that appends keep their pace while a pass
    /// runs. `None`: unlimited (Kafka's default).
    /// Default: `Some(32 << 20)`, 32 MiB/s: Kafka's default suits a broker with cores to spare;
    /// an embedded log shares a small machine with its application, and unthrottled, a pass
    /// slowed appends to 0.58x of idle on 2 cores (issue 16). At 32 MiB/s the cleaner works a
    /// small share of a pass's time, so appends keep at least 0.8x of their idle pace even if
    /// they stalled completely while it works, and a pass over a 1 GiB dirty log still ends
    /// within a couple of minutes. Raise it for compacted logs written faster than about a third
    /// of it (a pass reads the dirty part twice and writes what stays).
    #[must_use = "a setter returns the changed configuration"]
    pub fn io_max_bytes_per_second(
        mut self,
        io_max_bytes_per_second: Option<u64>,
    ) -> CompactionConfig {
        self.io_max_bytes_per_second = io_max_bytes_per_second;
        self
    }

    /// The [`buffer_bytes`](Self::buffer_bytes) setting.
    pub fn get_buffer_bytes(&self) -> usize {
        self.buffer_bytes
    }

    /// The [`io_max_bytes_per_second`](Self::io_max_bytes_per_second) setting.
    pub fn get_io_max_bytes_per_second(&self) -> Option<u64> {
        self.io_max_bytes_per_second
    }

    /// The [`now_ms`](Self::now_ms) setting.
    pub fn get_now_ms(&self) -> Option<i64> {
        self.now_ms
    }

    /// The [`force`](Self::force) setting.
    pub fn get_force(&self) -> bool {
        self.force
    }
}

impl Default for CompactionConfig {
    fn default() -> CompactionConfig {
        CompactionConfig {
            buffer_bytes: 32 << 20,
            now_ms: None,
            force: true,
            io_max_bytes_per_second: Some(DEFAULT_CLEANER_IO_MAX_BYTES_PER_SECOND),
        }
    }
}

/// What a compaction run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactionReport {
    /// Passes made (each maps as much of the dirty part as fits in the key map).
    pub passes: u32,
    /// Sealed segments rewritten (merged groups count each segment).
    pub segments_cleaned: u64,
    /// Segment files written in their place.
    pub segments_written: u64,
    /// Bytes of the rewritten segments' data files before the run.
    pub bytes_before: u64,
    /// Bytes of the data files written in their place.
    pub bytes_after: u64,
    /// Records removed, tombstones included.
    pub records_removed: u64,
    /// Tombstones removed because they outlived `delete_retention_ms`.
    pub tombstones_removed: u64,
    /// Bytes of dirty segments mapped (the work a run was worth).
    pub dirty_bytes: u64,
}

impl CompactionReport {
    /// Adds another run's figures to these (for a report over several partitions).
    pub fn add(&mut self, other: &CompactionReport) {
        self.passes += other.passes;
        self.segments_cleaned += other.segments_cleaned;
        self.segments_written += other.segments_written;
        self.bytes_before += other.bytes_before;
        self.bytes_after += other.bytes_after;
        self.records_removed += other.records_removed;
        self.tombstones_removed += other.tombstones_removed;
        self.dirty_bytes += other.dirty_bytes;
    }
}

/// The cleaner's state of one log, behind the log's `cleaner` lock.
#[derive(Debug)]
pub(super) struct CleanerState {
    /// Everything below this offset holds at most one record per key.
    pub clean_offset: u64,
}

// ---- the clean offset file ----------------------------------------------------------------

/// File name of the clean offset inside a log directory.
pub(super) const CHECKPOINT_FILE: &str = "cleaner-checkpoint";
const CHECKPOINT_FORMAT: Binary = Binary {
    magic: *b"RVBK",
    version: 1,
};
const CHECKPOINT_LEN: usize = 20;

// Format (file `cleaner-checkpoint`, 20 bytes):
// { magic "RVBK" | version u16 (1) | reserved u16 (0) | clean_offset u64 | crc u32 (of 0..16) }
fn encode_checkpoint(clean_offset: u64) -> [u8; CHECKPOINT_LEN] {
    let mut b = [0u8; CHECKPOINT_LEN];
    b[0..6].copy_from_slice(&CHECKPOINT_FORMAT.header());
    b[8..16].copy_from_slice(&clean_offset.to_le_bytes());
    small_file::seal_fixed(&mut b);
    b
}

/// The clean offset on disk; 0 (clean everything again) if the file is missing or not valid,
/// which is always safe.
pub(super) fn read_checkpoint(dir: &Path) -> u64 {
    let Ok(Some(b)) = small_file::read(&dir.join(CHECKPOINT_FILE), "read cleaner checkpoint")
    else {
        return 0;
    };
    let Some(b) = CHECKPOINT_FORMAT
        .check(&b)
        .ok()
        .and_then(|b| <[u8; CHECKPOINT_LEN - CRC_LEN]>::try_from(b).ok())
    else {
        return 0;
    };
    if b[6..8] != [0, 0] {
        return 0;
    }
    let mut o = [0u8; 8];
    o.copy_from_slice(&b[8..16]);
    u64::from_le_bytes(o)
}

// ---- the key map --------------------------------------------------------------------------

/// Bytes of one key map slot: `{ hash_a u64 | hash_b u64 | offset + 1 u64 (0: empty) }`.
const SLOT_BYTES: usize = 24;

/// Key hash → offset of the key's last record, in a fixed budget (open addressing, linear
/// probing). The table starts small and doubles up to the budget, so that a map of few keys stays
/// in the CPU caches. See the module documentation for collisions.
pub(crate) struct KeyMap {
    slots: Vec<[u64; 3]>,
    len: usize,
    /// Slots the budget allows.
    budget_slots: usize,
    hash_a: RandomState,
    seed_b: u64,
}

/// The share of slots a table may fill, as a fraction (4/5).
const fn fill_limit(slots: usize) -> usize {
    slots / 5 * 4
}

impl KeyMap {
    /// A map using at most about `buffer_bytes` of memory.
    pub fn new(buffer_bytes: usize) -> Result<KeyMap> {
        if buffer_bytes < 1024 {
            return Err(Error::config(
                "buffer_bytes",
                "the compaction key map needs at least 1 KiB",
            ));
        }
        let budget_slots = buffer_bytes / SLOT_BYTES;
        Ok(KeyMap {
            slots: vec![[0u64; 3]; budget_slots.min(1 << 14)],
            len: 0,
            budget_slots,
            hash_a: RandomState::new(),
            seed_b: RandomState::new().hash_one(0x5eed_u64),
        })
    }

    /// Whether `more` new keys surely fit in the budget.
    pub fn has_room(&self, more: usize) -> bool {
        self.len + more <= fill_limit(self.budget_slots)
    }

    /// Number of keys.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn clear(&mut self) {
        if self.len > 0 {
            self.slots.fill([0; 3]);
            self.len = 0;
        }
    }

    fn hash(&self, key: &[u8]) -> (u64, u64) {
        (self.hash_a.hash_one(key), mix_hash(self.seed_b, key))
    }

    /// The slot holding `hash`, or the empty slot where it would go.
    fn slot(&self, (a, b): (u64, u64)) -> usize {
        let n = self.slots.len();
        // Lemire's multiply-shift: a uniform index without a power-of-two table.
        let mut i = ((u128::from(a) * n as u128) >> 64) as usize;
        loop {
            let s = &self.slots[i];
            if s[2] == 0 || (s[0] == a && s[1] == b) {
                return i;
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
    }

    /// Records `offset` as the last offset of `key` (offsets come in increasing order). The
    /// caller checks [`has_room`](Self::has_room) first, so the table is never full.
    pub fn put(&mut self, key: &[u8], offset: u64) {
        if self.len + 1 > fill_limit(self.slots.len()) && self.slots.len() < self.budget_slots {
            self.grow();
        }
        let h = self.hash(key);
        let i = self.slot(h);
        let s = &mut self.slots[i];
        if s[2] == 0 {
            self.len += 1;
        }
        *s = [h.0, h.1, offset + 1];
    }

    /// Doubles the table (up to the budget) and moves every entry.
    fn grow(&mut self) {
        let n = (self.slots.len() * 2).min(self.budget_slots);
        let old = std::mem::replace(&mut self.slots, vec![[0u64; 3]; n]);
        for s in old.into_iter().filter(|s| s[2] != 0) {
            let i = self.slot((s[0], s[1]));
            self.slots[i] = s;
        }
    }

    /// The last offset recorded for `key`.
    pub fn get(&self, key: &[u8]) -> Option<u64> {
        let s = self.slots[self.slot(self.hash(key))];
        s[2].checked_sub(1)
    }
}

/// The second half of a key's 128-bit hash: a fast multiply-xorshift hash with a random seed.
/// Nobody can aim a collision at the map, because the first half is a randomly keyed SipHash;
/// this half only has to make chance collisions of the first half harmless.
fn mix_hash(seed: u64, key: &[u8]) -> u64 {
    const M: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(M);
        h ^= h >> 29;
    }
    let mut w = [0u8; 8];
    w[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h ^ u64::from_le_bytes(w)).wrapping_mul(M);
    h ^= h >> 32;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^ (h >> 29)
}

// ---- the I/O throttle ---------------------------------------------------------------------

/// Time as the throttle sees it: a monotonic clock and a way to wait. The run uses the real one
/// ([`SystemClock`]); tests inject one whose sleeps only move its hands.
pub(crate) trait Clock {
    /// Time since some fixed instant.
    fn now(&self) -> std::time::Duration;
    /// Waits for `d`.
    fn sleep(&self, d: std::time::Duration);
}

/// The wall clock: `Instant` and `thread::sleep`.
pub(crate) struct SystemClock(std::time::Instant);

impl SystemClock {
    pub(crate) fn new() -> SystemClock {
        SystemClock(std::time::Instant::now())
    }
}

impl Clock for SystemClock {
    fn now(&self) -> std::time::Duration {
        self.0.elapsed()
    }
    fn sleep(&self, d: std::time::Duration) {
        std::thread::sleep(d);
    }
}

/// Holds a run's reads and writes to a rate, as Kafka's cleaner does with its `Throttler`
/// (`core/src/main/scala/kafka/utils/Throttler.scala`, called from `LogCleaner.scala` for every
/// chunk read while building the offset map and while copying, and for every chunk written):
/// bytes are counted as they are read or written, and when they came faster than the rate
/// allows since the period began, the run sleeps until the rate is met.
///
/// Kafka compares once every 300 ms, so its cleaner runs at full speed for up to 300 ms and
/// then sleeps; this throttle compares at every call and sleeps as soon as it is
/// [`MIN_NAP`] ahead, so the cleaner alternates with appends in steps of about a millisecond.
/// A period lasts [`THROTTLE_PERIOD`]: time the cleaner spent idle (or waiting for a lock)
/// earlier is not saved up for a burst later. The callers throttle between batches, holding
/// only the `cleaner` lock, which no append, read or roll takes.
pub(crate) struct Throttler<'c> {
    rate: Option<u64>,
    clock: &'c dyn Clock,
    /// The run's stop request: once it is set, the throttle sleeps no more, so that a run asked
    /// to stop (a closing store) reaches its next stop check at full speed.
    stop: &'c dyn Fn() -> bool,
    period_start: std::time::Duration,
    observed: u64,
    /// Time spent sleeping, for the tests.
    slept: std::time::Duration,
}

/// After this long the throttle starts a new period (forgets what it observed).
pub(crate) const THROTTLE_PERIOD: std::time::Duration = std::time::Duration::from_secs(1);

/// The throttle sleeps once the run is this far ahead of its rate (not for less: a sleep has a
/// cost of its own).
pub(crate) const MIN_NAP: std::time::Duration = std::time::Duration::from_millis(1);

/// The longest single sleep: a stop request is noticed within this.
const NAP_SLICE: std::time::Duration = std::time::Duration::from_millis(10);

impl<'c> Throttler<'c> {
    /// A throttle to `rate` bytes a second (`None`, or 0: unlimited) on `clock`, lifted once
    /// `stop` says so.
    pub(crate) fn new(
        rate: Option<u64>,
        clock: &'c dyn Clock,
        stop: &'c dyn Fn() -> bool,
    ) -> Throttler<'c> {
        Throttler {
            rate: rate.filter(|&r| r > 0),
            period_start: clock.now(),
            clock,
            stop,
            observed: 0,
            slept: std::time::Duration::ZERO,
        }
    }

    /// Counts `bytes` read or written, and sleeps if the period's bytes are now more than the
    /// rate allows for its time so far (by [`MIN_NAP`] or more).
    pub(crate) fn observe(&mut self, bytes: usize) {
        let Some(rate) = self.rate else {
            return;
        };
        self.observed += bytes as u64;
        let mut elapsed = self.clock.now().saturating_sub(self.period_start);
        // The time these bytes take at the rate; whatever of it has not passed yet is slept.
        let due = std::time::Duration::from_secs_f64(self.observed as f64 / rate as f64);
        if let Some(mut nap) = due.checked_sub(elapsed).filter(|d| *d >= MIN_NAP) {
            // In slices, so that a stop request cuts a long nap short.
            while !nap.is_zero() {
                if (self.stop)() {
                    self.rate = None;
                    return;
                }
                let slice = nap.min(NAP_SLICE);
                self.clock.sleep(slice);
                self.slept += slice;
                nap -= slice;
            }
            elapsed = self.clock.now().saturating_sub(self.period_start);
        }
        if elapsed >= THROTTLE_PERIOD {
            self.period_start = self.clock.now();
            self.observed = 0;
        }
    }

    /// Time slept so far.
    #[cfg(test)]
    pub(crate) fn slept(&self) -> std::time::Duration {
        self.slept
    }
}

// ---- a run --------------------------------------------------------------------------------

/// What the decisions of a run depend on besides the key map.
struct Pass {
    now: i64,
    delete_retention_ms: i64,
    /// The log's aborted transactions when the pass started, in marker order (the cleaned part
    /// lies below the last stable offset, so no transaction in it ends later).
    aborted: Vec<AbortedTxn>,
}

impl Pass {
    /// The one place that decides whether the records of a (non-control) batch are live: whether
    /// they count in the key map (and so can make older records of their keys go) and may
    /// survive. Records of aborted transactions are not: they must neither shadow an older
    /// committed value nor survive (their markers stay, as control batches always do).
    fn records_are_live(&self, batch: &BatchRef<'_>) -> bool {
        if !batch.is_transactional() {
            return true;
        }
        let pid = batch.producer().producer_id;
        // A producer's transactions follow one another: the one holding this batch ends at the
        // producer's first marker after it.
        let after = self
            .aborted
            .partition_point(|a| a.last_offset <= batch.last_offset());
        let ending = self.aborted[after..].iter().find(|a| a.producer_id == pid);
        ending.is_none_or(|a| a.first_offset > batch.base_offset())
    }

    /// Whether a live record of a batch whose delete horizon is `horizon` stays.
    ///
    /// A tombstone stays until `now` reaches its batch's delete horizon, which the first pass
    /// that keeps it stamps `delete_retention_ms` after that pass (KIP-534; Kafka's
    /// `LogCleaner.shouldRetainRecord`, `LogCleanerTest.testCleanTombstone`). So a consumer that
    /// reads the log from the start within `delete_retention_ms` of the cleaning that first saw
    /// the tombstone sees it, whatever the tombstone's own timestamp says: records replayed,
    /// mirrored or stamped by a skewed clock are not dropped at their first cleaning. A batch
    /// without a horizon (written before this rule, or never cleaned) keeps its tombstones and
    /// gets one at this pass.
    fn keep(&self, map: &KeyMap, r: &RecordView<'_>, horizon: Option<i64>) -> Keep {
        let Some(key) = r.key() else {
            // Written before the log was compacted: no later record can stand for it.
            return Keep::Yes;
        };
        if map.get(key).is_some_and(|last| r.offset() < last) {
            return Keep::Superseded;
        }
        if r.value().is_none() && horizon.is_some_and(|h| self.now >= h) {
            return Keep::ExpiredTombstone;
        }
        Keep::Yes
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    Yes,
    Superseded,
    ExpiredTombstone,
}

/// Runs compaction on the log until its cleanable part is clean, or (unless `force`) until its
/// dirty ratio is below the configured minimum. `stop` is polled between groups; the I/O
/// throttle ([`CompactionConfig::io_max_bytes_per_second`]) runs on `clock`.
pub(super) fn run_on(
    inner: &Inner,
    options: &CompactionConfig,
    stop: &dyn Fn() -> bool,
    clock: &dyn Clock,
) -> Result<CompactionReport> {
    let mut throttle = Throttler::new(options.io_max_bytes_per_second, clock, stop);
    let config = inner.config();
    let config = &*config;
    if !config.cleanup_policy.compacts() {
        return Err(Error::invalid(format!(
            "the log in {} is not compacted (its cleanup policy is {:?})",
            inner.dir.display(),
            config.cleanup_policy
        )));
    }
    inner.check_poison()?;
    let now = options.now_ms.unwrap_or_else(now_ms);
    let mut state = inner.cleaner.lock();
    let mut map = KeyMap::new(options.buffer_bytes)?;
    let mut report = CompactionReport::default();
    let mut first = true;
    let mut scratch = Scratch::default();
    let pass = Pass {
        now,
        delete_retention_ms: i64::try_from(config.delete_retention_ms).unwrap_or(i64::MAX),
        aborted: inner.producers.lock().aborted_overlapping(0, u64::MAX),
    };
    while !stop() {
        inner.check_poison()?;
        let segments = inner.segments.read().clone();
        let cleanable = cleanable_segments(inner, &segments, now);
        let Some(first_seg) = cleanable.first() else {
            break;
        };
        let clean_offset = state.clean_offset.max(first_seg.base_offset);
        let dirty: Vec<Arc<Segment>> = cleanable
            .iter()
            .filter(|s| s.next_offset() > clean_offset)
            .cloned()
            .collect();
        map.clear();
        let (mapped_end, mapped_bytes) = if dirty.is_empty() {
            // Nothing new, but a forced run still drops the tombstones that expired since: one
            // pass over the clean part with an empty map (which drops nothing else: the clean
            // part holds one record per key).
            if !(first && options.force) {
                break;
            }
            (clean_offset, 0)
        } else {
            if first
                && !options.force
                && dirty_ratio(&cleanable, clean_offset) < config.min_cleanable_dirty_ratio
            {
                break;
            }
            let mapped = build_map(&pass, &mut map, &dirty, clean_offset, &mut throttle)?;
            if mapped.0 <= clean_offset {
                return Err(Error::config(
                    "buffer_bytes",
                    format!(
                        "the compaction key map ({} bytes) cannot hold the keys of one batch",
                        options.buffer_bytes
                    ),
                ));
            }
            mapped
        };
        first = false;
        report.dirty_bytes += mapped_bytes;
        let to_clean: Vec<Arc<Segment>> = cleanable
            .iter()
            .take_while(|s| s.base_offset < mapped_end)
            .cloned()
            .collect();
        for group in groups(&to_clean, config.segment_bytes) {
            if stop() {
                // The clean offset stays: the groups done so far are clean, which is all the
                // invariant needs, and the next run maps this dirty part again.
                return Ok(report);
            }
            clean_group(
                inner,
                group,
                &map,
                &pass,
                mapped_end,
                &mut scratch,
                &mut throttle,
                &mut report,
            )?;
        }
        report.passes += 1;
        if dirty.is_empty() {
            break;
        }
        state.clean_offset = mapped_end;
        inner
            .counters
            .clean_offset
            .store(mapped_end, std::sync::atomic::Ordering::Relaxed);
        match small_file::write(
            &inner.dir.join(CHECKPOINT_FILE),
            &encode_checkpoint(mapped_end),
            Durability::Replace,
        ) {
            Ok(()) => {}
            // Derived: an older clean offset only makes the next run look at more of the log.
            Err(e) if e.is_no_space() => tracing::warn!(
                target: "riverbed::log",
                dir = %inner.dir.display(),
                error = %e,
                "no space for the cleaner checkpoint; skipped"
            ),
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}

/// The dirty ratio of the log (0 when nothing is cleanable), as the background cleaner sees it
/// at `now`.
pub(super) fn current_dirty_ratio(inner: &Inner, now: i64) -> f64 {
    let segments = inner.segments.read().clone();
    let cleanable = cleanable_segments(inner, &segments, now);
    let Some(first) = cleanable.first() else {
        return 0.0;
    };
    // A run in progress holds the lock: it is already doing what the ratio would ask for.
    let Some(state) = inner.cleaner.try_lock() else {
        return 0.0;
    };
    dirty_ratio(&cleanable, state.clean_offset.max(first.base_offset))
}

/// Kafka's ratio: bytes of the cleanable segments from the clean offset on, over all cleanable
/// bytes.
fn dirty_ratio(cleanable: &[Arc<Segment>], clean_offset: u64) -> f64 {
    let total: u64 = cleanable.iter().map(|s| s.size()).sum();
    let dirty: u64 = cleanable
        .iter()
        .filter(|s| s.next_offset() > clean_offset)
        .map(|s| s.size())
        .sum();
    if total == 0 {
        0.0
    } else {
        dirty as f64 / total as f64
    }
}

/// The sealed segments the cleaner may touch, oldest first: before the active segment, before
/// the segment the recovery checkpoint names (recovery resumes inside it by byte position), and
/// before the first segment with a record younger than `min_compaction_lag_ms`.
fn cleanable_segments(inner: &Inner, segments: &[Arc<Segment>], now: i64) -> Vec<Arc<Segment>> {
    let Some(active) = segments.last() else {
        return Vec::new();
    };
    let checkpoint_base = inner.checkpoint.lock().segment_base;
    let mut end = active.base_offset.min(checkpoint_base);
    let lag = i64::try_from(inner.config().min_compaction_lag_ms).unwrap_or(i64::MAX);
    if lag > 0 {
        let horizon = now.saturating_sub(lag);
        if let Some(young) = segments.iter().find(|s| s.max_timestamp() > horizon) {
            end = end.min(young.base_offset);
        }
    }
    // Nor at or past the last stable offset: whether an open transaction's records are live is
    // not decided yet.
    let hw = inner.next_offset.load(std::sync::atomic::Ordering::Acquire);
    end = end.min(
        hw.min(
            inner
                .first_unstable
                .load(std::sync::atomic::Ordering::Acquire),
        ),
    );
    segments
        .iter()
        // Only sealed ones: a segment whose background seal is pending is not touched.
        .take_while(|s| s.is_sealed() && s.base_offset < end && s.next_offset() <= end)
        .cloned()
        .collect()
}

/// Maps the keys of the dirty segments from `from` on, batch by batch, while they fit. Returns
/// the offset the mapped part ends at and the bytes of the segments (wholly or partly) mapped.
fn build_map(
    pass: &Pass,
    map: &mut KeyMap,
    dirty: &[Arc<Segment>],
    from: u64,
    throttle: &mut Throttler<'_>,
) -> Result<(u64, u64)> {
    let mut end = from;
    let mut bytes = 0;
    for seg in dirty {
        bytes += seg.size();
        for item in seg.batches() {
            let (_, batch) = item?;
            throttle.observe(batch.as_bytes().len());
            if batch.last_offset() < from || batch.is_control() || !pass.records_are_live(&batch) {
                continue;
            }
            if !map.has_room(batch.record_count() as usize) {
                return Ok((batch.base_offset().max(end), bytes));
            }
            let records = batch.records()?;
            for r in records.iter() {
                let r = r?;
                if let Some(key) = r.key() {
                    map.put(key, r.offset());
                }
            }
        }
        end = seg.next_offset();
    }
    Ok((end, bytes))
}

/// Splits consecutive segments into groups whose data fits in one segment (so that the small
/// segments compaction leaves behind are merged over time).
fn groups(segments: &[Arc<Segment>], segment_bytes: u64) -> Vec<&[Arc<Segment>]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = 0u64;
    for (i, seg) in segments.iter().enumerate() {
        let data = seg.size().saturating_sub(FILE_HEADER_LEN as u64);
        let span = seg.next_offset() - segments[start].base_offset;
        if i > start && (size + data > segment_bytes || span > u64::from(u32::MAX)) {
            out.push(&segments[start..i]);
            start = i;
            size = 0;
        }
        size += data;
    }
    if start < segments.len() {
        out.push(&segments[start..]);
    }
    out
}

#[derive(Default)]
struct Scratch {
    batch: Vec<u8>,
    records: Vec<u8>,
}

/// Cleans one group of segments into one new segment and swaps it in; leaves a single segment
/// alone when nothing in it goes.
#[allow(clippy::too_many_arguments)] // the run's state, each passed where it is used
fn clean_group(
    inner: &Inner,
    group: &[Arc<Segment>],
    map: &KeyMap,
    pass: &Pass,
    mapped_end: u64,
    scratch: &mut Scratch,
    throttle: &mut Throttler<'_>,
    report: &mut CompactionReport,
) -> Result<()> {
    let (Some(first), Some(last)) = (group.first(), group.last()) else {
        return Ok(());
    };
    let base = first.base_offset;
    let end = last.next_offset();
    let cap = super::recovery::capacity(&inner.config());
    let open = || {
        CleanedWriter::create(
            &inner.dir,
            base,
            end,
            cap.index_interval,
            cap.max_batch_bytes,
        )
    };
    let mut writer = if group.len() > 1 { Some(open()?) } else { None };
    // Batches kept as they are before the first change, written only if a change comes.
    let mut pending: Vec<BatchRef<'_>> = Vec::new();
    let mut removed = 0u64;
    let mut tombstones = 0u64;
    let result = (|| -> Result<()> {
        for seg in group {
            for item in seg.batches() {
                let (_, batch) = item?;
                // Read (and, when it stays, written): both count, as in Kafka's cleaner.
                throttle.observe(batch.as_bytes().len());
                let verdict = if batch.base_offset() >= mapped_end || batch.is_control() {
                    Filtered::All
                } else if !pass.records_are_live(&batch) {
                    Filtered::Nothing
                } else {
                    let horizon = batch.delete_horizon();
                    filter_batch(
                        &batch,
                        |r| match pass.keep(map, r, horizon) {
                            Keep::Yes => true,
                            Keep::Superseded => false,
                            Keep::ExpiredTombstone => {
                                tombstones += 1;
                                false
                            }
                        },
                        // A tombstone kept without a horizon gets one now.
                        Some(pass.now.saturating_add(pass.delete_retention_ms)),
                        &mut scratch.batch,
                        &mut scratch.records,
                    )?
                };
                if verdict == Filtered::All {
                    match writer.as_mut() {
                        Some(w) => {
                            push_whole(w, &batch, scratch)?;
                            throttle.observe(batch.as_bytes().len());
                        }
                        None => pending.push(batch),
                    }
                    continue;
                }
                if writer.is_none() {
                    let mut w = open()?;
                    for b in pending.drain(..) {
                        push_whole(&mut w, &b, scratch)?;
                        throttle.observe(b.as_bytes().len());
                    }
                    writer = Some(w);
                }
                let Some(w) = writer.as_mut() else {
                    continue;
                };
                if verdict == Filtered::Some {
                    let h = BatchHeader::parse(&scratch.batch, usize::MAX)?;
                    removed += u64::from(batch.record_count() - h.record_count);
                    w.push(&scratch.batch, &h)?;
                    throttle.observe(scratch.batch.len());
                } else {
                    removed += u64::from(batch.record_count());
                }
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        if writer.is_some() {
            let _ = cleaned::abandon(&crate::segment::SegmentPaths::new(&inner.dir, base));
        }
        return Err(e);
    }
    let Some(w) = writer else {
        return Ok(()); // nothing to do
    };
    let written = match w.finish() {
        Ok(seg) => seg,
        Err(e) => {
            let _ = cleaned::abandon(&crate::segment::SegmentPaths::new(&inner.dir, base));
            return Err(e);
        }
    };
    if inner.swap_in(group, &written)? {
        report.segments_cleaned += group.len() as u64;
        report.segments_written += 1;
        report.bytes_before += group.iter().map(|s| s.size()).sum::<u64>();
        report.bytes_after += written.size();
        report.records_removed += removed;
        report.tombstones_removed += tombstones;
    }
    Ok(())
}

/// Writes a batch that keeps all its records to a cleaned segment (format 3): a Kafka batch as
/// it is, a format 1/2 batch re-encoded as a Kafka one (same offsets, records and timestamps).
fn push_whole(w: &mut CleanedWriter, batch: &BatchRef<'_>, scratch: &mut Scratch) -> Result<()> {
    if batch.layout() == crate::record::codec::Layout::Kafka {
        return w.push(batch.as_bytes(), &batch.header());
    }
    to_kafka(batch, &mut scratch.batch, &mut scratch.records)?;
    let h = BatchHeader::parse(&scratch.batch, usize::MAX)?;
    w.push(&scratch.batch, &h)
}

impl Inner {
    /// After a swap: the compacted segment's `.txnindex` lists the aborts of its whole span, and
    /// the replaced segments' files go. (Not part of the atomic swap: a crash in between leaves
    /// files the producer snapshot's figures disagree with, and the next open rebuilds them.)
    fn rewrite_txn_indexes(&self, written: &Segment, others: &[u64]) -> Result<()> {
        for &base in others {
            let path = crate::segment::SegmentPaths::new(&self.dir, base).txn_index;
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove transaction index", &path, e)),
            }
        }
        let entries = self
            .producers
            .lock()
            .aborted_with_marker_in(written.base_offset, written.next_offset())
            .to_vec();
        let path = &written.paths.txn_index;
        if entries.is_empty() {
            if path.exists() {
                std::fs::remove_file(path)
                    .map_err(|e| Error::io("remove transaction index", path, e))?;
            }
            return Ok(());
        }
        let bytes = super::producer_state::encode_txn_index(written.base_offset, &entries);
        match crate::fs::write_atomic(path, &bytes) {
            Ok(()) => Ok(()),
            // The swap is committed and the state in memory is whole: without the snapshot the
            // next open replays the log and writes the `.txnindex` again.
            Err(e) if e.is_no_space() => {
                tracing::warn!(
                    target: "riverbed::log",
                    file = %path.display(),
                    error = %e,
                    "no space for a transaction index; it is rebuilt at the next open"
                );
                crate::fs::remove_durably(path)?;
                crate::fs::remove_durably(&self.dir.join(super::producer_state::SNAPSHOT_FILE))
            }
            Err(e) => Err(e),
        }
    }

    /// Puts `written` (whose files are `.cleaned` and synced) in place of `group`, unless the
    /// group is no longer in the log (deleted by retention or with its topic meanwhile). Returns
    /// whether it did. A failure after the commit point poisons the log: the files on disk are
    /// then ahead of the segment list, and only a reopen (which finishes the swap) reconciles
    /// them.
    fn swap_in(&self, group: &[Arc<Segment>], written: &Arc<Segment>) -> Result<bool> {
        let paths = &written.paths;
        let _maint = self.maint.lock();
        let current = self.segments.read().clone();
        let at = current
            .iter()
            .position(|s| Arc::ptr_eq(s, &group[0]))
            .filter(|&i| {
                current.len() > i + group.len()
                    && group
                        .iter()
                        .zip(&current[i..])
                        .all(|(a, b)| Arc::ptr_eq(a, b))
            });
        let Some(at) = at.filter(|_| !self.deleted.load(std::sync::atomic::Ordering::Acquire))
        else {
            cleaned::abandon(paths)?;
            return Ok(false);
        };
        cleaned::commit(&self.dir, paths).map_err(|e| self.poison(e))?;
        let others: Vec<u64> = group[1..].iter().map(|s| s.base_offset).collect();
        cleaned::finish(&self.dir, written.base_offset, &others).map_err(|e| self.poison(e))?;
        self.rewrite_txn_indexes(written, &others)
            .map_err(|e| self.poison(e))?;
        let mut segs = self.segments.write();
        // The list may have grown (a roll) since `current`, never shrunk (retention takes
        // `maint`): the group is still at `at`.
        let mut v: Vec<Arc<Segment>> = segs.as_ref().clone();
        v.splice(at..at + group.len(), [Arc::clone(written)]);
        *segs = Arc::new(v);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_map_keeps_the_last_offset_and_respects_its_budget() {
        let mut m = KeyMap::new(24 * 100).unwrap();
        assert!(m.has_room(80) && !m.has_room(81));
        for i in 0..80u64 {
            assert!(m.has_room(1));
            m.put(&i.to_le_bytes(), i);
        }
        assert!(!m.has_room(1));
        m.put(&7u64.to_le_bytes(), 1000); // an existing key takes no room
        assert_eq!(m.len(), 80);
        assert_eq!(m.get(&7u64.to_le_bytes()), Some(1000));
        assert_eq!(m.get(&8u64.to_le_bytes()), Some(8));
        assert_eq!(m.get(b"absent"), None);
        assert_eq!(m.get(b""), None);
        m.clear();
        assert_eq!(m.get(&8u64.to_le_bytes()), None);
        // Growing keeps every entry.
        let mut m = KeyMap::new(24 << 20).unwrap();
        for i in 0..100_000u64 {
            m.put(&i.to_le_bytes(), i * 2);
        }
        assert!(m.slots.len() > 1 << 14);
        for i in 0..100_000u64 {
            assert_eq!(m.get(&i.to_le_bytes()), Some(i * 2));
        }
        assert!(KeyMap::new(100).is_err());
    }

    /// A clock whose time moves only by `tick` at each reading (the work between two readings)
    /// and by the sleeps asked of it.
    struct FakeClock {
        now: std::cell::Cell<std::time::Duration>,
        tick: std::time::Duration,
        slept: std::cell::Cell<std::time::Duration>,
    }

    impl FakeClock {
        fn new(tick: std::time::Duration) -> FakeClock {
            FakeClock {
                now: std::cell::Cell::new(std::time::Duration::ZERO),
                tick,
                slept: std::cell::Cell::new(std::time::Duration::ZERO),
            }
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> std::time::Duration {
            self.now.set(self.now.get() + self.tick);
            self.now.get()
        }
        fn sleep(&self, d: std::time::Duration) {
            self.now.set(self.now.get() + d);
            self.slept.set(self.slept.get() + d);
        }
    }

    /// Work that runs at 1 GB/s (64 KiB chunks, 65.5 µs each) held to a rate: after any amount,
    /// the time taken is what the rate asks for, give or take a nap a period, and never more
    /// than that plus the time the work itself took.
    #[test]
    fn throttle_holds_io_to_its_rate() {
        for rate in [10_000_000u64, 32 << 20, 1 << 20] {
            let tick = std::time::Duration::from_nanos(65_536);
            let clock = FakeClock::new(tick);
            let mut t = Throttler::new(Some(rate), &clock, &|| false);
            let chunk = 64 << 10;
            let mut total = 0u64;
            for i in 1..=2_000u64 {
                t.observe(chunk);
                total += chunk as u64;
                if i.is_multiple_of(50) {
                    let ideal = total as f64 / rate as f64;
                    let took = clock.now.get().as_secs_f64();
                    let periods = took / THROTTLE_PERIOD.as_secs_f64() + 2.0;
                    let slack = periods * MIN_NAP.as_secs_f64();
                    assert!(
                        took + slack >= ideal,
                        "rate {rate}: {total} bytes in {took} s, faster than {ideal} s"
                    );
                    // Two clock readings per call at most.
                    let work = 2.0 * i as f64 * tick.as_secs_f64();
                    assert!(
                        took <= ideal + work + MIN_NAP.as_secs_f64(),
                        "rate {rate}: {total} bytes in {took} s, slower than {ideal} s"
                    );
                }
            }
            assert!(!t.slept().is_zero());
            assert_eq!(t.slept(), clock.slept.get());
        }
    }

    /// Unlimited (`None`, or 0) never sleeps, nor does work slower than the limit.
    #[test]
    fn throttle_sleeps_only_past_its_rate() {
        for rate in [None, Some(0)] {
            let clock = FakeClock::new(std::time::Duration::from_micros(1));
            let mut t = Throttler::new(rate, &clock, &|| false);
            for _ in 0..100_000 {
                t.observe(1 << 20);
            }
            assert!(clock.slept.get().is_zero(), "{rate:?}");
        }
        // 64 KiB every 10 ms is 6.5 MB/s, under a 10 MB/s limit.
        let clock = FakeClock::new(std::time::Duration::from_millis(10));
        let mut t = Throttler::new(Some(10_000_000), &clock, &|| false);
        for _ in 0..1_000 {
            t.observe(64 << 10);
        }
        assert!(clock.slept.get().is_zero());
    }

    /// A stop request lifts the throttle: the nap under way ends within a slice, and no later
    /// call sleeps (a closing store's cleaner reaches its next stop check at full speed).
    #[test]
    fn a_stop_request_lifts_the_throttle() {
        let clock = FakeClock::new(std::time::Duration::from_micros(1));
        // Asked to stop while the first nap (a second's worth of bytes) is three slices in.
        let checks = std::cell::Cell::new(0);
        let stop = || {
            checks.set(checks.get() + 1);
            checks.get() > 3
        };
        let mut t = Throttler::new(Some(1 << 20), &clock, &stop);
        t.observe(1 << 20);
        assert_eq!(clock.slept.get(), 3 * NAP_SLICE);
        for _ in 0..100 {
            t.observe(1 << 20);
        }
        assert_eq!(clock.slept.get(), 3 * NAP_SLICE);
        // Not asked to stop, the same nap is slept whole.
        let clock = FakeClock::new(std::time::Duration::from_micros(1));
        let mut t = Throttler::new(Some(1 << 20), &clock, &|| false);
        t.observe(1 << 20);
        assert!(clock.slept.get() >= std::time::Duration::from_millis(990));
    }

    #[test]
    fn config_roundtrips() {
        let c = CompactionConfig::default();
        assert_eq!(
            c.get_io_max_bytes_per_second(),
            Some(DEFAULT_CLEANER_IO_MAX_BYTES_PER_SECOND)
        );
        assert_eq!(
            c.clone()
                .io_max_bytes_per_second(None)
                .get_io_max_bytes_per_second(),
            None
        );
        assert_eq!(
            c.io_max_bytes_per_second(Some(5))
                .get_io_max_bytes_per_second(),
            Some(5)
        );
    }

    /// A pass throttled to 256 KiB/s (on a fake clock: nothing really sleeps) completes, keeps
    /// exactly what an unthrottled pass over a copy of the same log keeps, and took at least
    /// the time its reads and writes need at that rate.
    #[test]
    fn a_throttled_pass_completes_and_keeps_what_an_unthrottled_one_keeps() {
        use crate::record::{BatchBuilder, Compression};
        use crate::{CleanupPolicy, Log, LogConfig};
        let config = LogConfig::default()
            .segment_bytes(16 << 10)
            .max_message_bytes(8 << 10)
            .cleanup_policy(CleanupPolicy::Compact)
            .segment_ms(None)
            .min_compaction_lag_ms(0);
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), config.clone()).unwrap();
        for i in 0..600u64 {
            let mut b = BatchBuilder::new(Compression::None);
            let key = format!("k{}", (i * 7) % 50);
            let value = vec![(i % 251) as u8; 200 + (i as usize % 100)];
            b.append(1_000 + i as i64, Some(key.as_bytes()), Some(&value), &[]);
            log.append(&b.build().unwrap()).unwrap();
        }
        log.roll().unwrap();
        log.close().unwrap();
        let copy = tempfile::tempdir().unwrap();
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() && e.file_name() != ".lock" {
                std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
            }
        }
        let rate = 256 << 10;
        let clock = FakeClock::new(std::time::Duration::from_micros(50));
        let throttled = Log::open(dir.path(), config.clone()).unwrap();
        let report = throttled
            .compact_until_on(
                &CompactionConfig::default()
                    .now_ms(Some(10_000))
                    .io_max_bytes_per_second(Some(rate)),
                &|| false,
                &clock,
            )
            .unwrap();
        let free = Log::open(copy.path(), config).unwrap();
        let free_report = free
            .compact(
                &CompactionConfig::default()
                    .now_ms(Some(10_000))
                    .io_max_bytes_per_second(None),
            )
            .unwrap();
        assert!(report.records_removed > 0, "{report:?}");
        assert_eq!(report.records_removed, free_report.records_removed);
        assert_eq!(report.bytes_after, free_report.bytes_after);
        let records = |log: &Log| {
            let mut out = Vec::new();
            let mut next = 0;
            loop {
                let batches = log.read(next, 1 << 20).unwrap();
                if batches.is_empty() {
                    return out;
                }
                for b in &batches {
                    for r in b.records().unwrap().iter() {
                        let r = r.unwrap();
                        out.push((
                            r.offset(),
                            r.key().map(<[u8]>::to_vec),
                            r.value().map(<[u8]>::to_vec),
                        ));
                    }
                    next = b.last_offset() + 1;
                }
            }
        };
        let kept = records(&throttled);
        assert_eq!(kept, records(&free));
        assert_eq!(kept.len(), 50);
        // Every segment cleaned was read at least once, and what was written, written.
        let io = report.bytes_before + report.bytes_after;
        let need = 0.9 * io as f64 / rate as f64;
        assert!(
            clock.now.get().as_secs_f64() >= need,
            "{io} bytes in {:?} at {rate} B/s",
            clock.now.get()
        );
        assert!(!clock.slept.get().is_zero());
    }

    #[test]
    fn checkpoint_roundtrips_and_damage_reads_as_zero() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_checkpoint(dir.path()), 0);
        let path = dir.path().join(CHECKPOINT_FILE);
        std::fs::write(&path, encode_checkpoint(12345)).unwrap();
        assert_eq!(read_checkpoint(dir.path()), 12345);
        for i in 0..CHECKPOINT_LEN {
            let mut b = encode_checkpoint(12345);
            b[i] ^= 0x10;
            std::fs::write(&path, b).unwrap();
            assert_eq!(read_checkpoint(dir.path()), 0, "byte {i}");
        }
        std::fs::write(&path, &encode_checkpoint(9)[..10]).unwrap();
        assert_eq!(read_checkpoint(dir.path()), 0);
    }

    #[test]
    fn checkpoint_bytes_are_format_md_and_another_version_reads_as_zero() {
        // FORMAT.md 5.1: { "RVBK" | version 1 | reserved 0 | clean_offset | CRC-32 of 0..16 }.
        let mut want = b"RVBK\x01\x00\x00\x00".to_vec();
        want.extend_from_slice(&12345u64.to_le_bytes());
        let c = crate::record::crc::checksum(&want);
        want.extend_from_slice(&c.to_le_bytes());
        assert_eq!(encode_checkpoint(12345).to_vec(), want);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CHECKPOINT_FILE);
        // Another version, or a reserved field set, each with a valid CRC: clean again from 0.
        for (at, value) in [(4, 2u8), (6, 1)] {
            let mut b = want.clone();
            b[at] = value;
            let c = crate::record::crc::checksum(&b[..16]);
            b[16..].copy_from_slice(&c.to_le_bytes());
            std::fs::write(&path, &b).unwrap();
            assert_eq!(read_checkpoint(dir.path()), 0, "byte {at} = {value}");
        }
    }
}
