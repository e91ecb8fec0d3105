//! The store: the one handle users open. It owns a data directory — its lock, the topic
//! registry and metadata, every partition log, the committed offsets and the consumer groups.
//!
//! ```
//! use riverbed::{Record, Store, TopicConfig};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! store.create_topic("payments", TopicConfig::new(4))?;
//! let meta = store.producer().send(Record::new("payments").key("alice").value("+50"))?;
//! assert_eq!(meta.offset, 0);
//! assert_eq!(store.list_topics(), ["payments"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::config::FlushPolicy;
use crate::consumer::offsets::OffsetStore;
use crate::error::{Error, ErrorKind, Result};
use crate::fs::DirLock;
use crate::group::Group;
use crate::log::{CompactionConfig, CompactionReport, Log};
use crate::partitioner::Sticky;
use crate::producer::ProduceQueue;
use crate::topic::{self, TopicConfig, TopicPartition};
use crate::txn::coordinator::{Coordinator, TXN_LOG_DIR};

/// Store-wide settings.
#[derive(Clone, Debug, Default)]
pub struct StoreConfig {
    /// Create a topic (with `default_topic`) when a producer sends to one that does not exist.
    /// Default: false (an [`UnknownTopic`](ErrorKind::UnknownTopic) error), unlike Kafka's broker
    /// default, because a typo should not create a topic.
    pub auto_create_topics: bool,
    /// Configuration of automatically created topics. Default: `TopicConfig::new(1)`.
    pub default_topic: TopicConfig,
    /// The background log cleaner. Default: [`CleanerConfig::default`].
    pub cleaner: CleanerConfig,
}

/// Settings of the store's background log cleaner: one thread that compacts the partitions of
/// compacted topics (see [`Log::compact`]).
#[derive(Clone, Debug)]
pub struct CleanerConfig {
    /// Whether the thread runs. Without it, compaction happens only through
    /// [`Store::compact_now`]. Default: true (`log.cleaner.enable`).
    pub enabled: bool,
    /// Memory for the key map of one compaction pass. Default: 32 MiB.
    pub buffer_bytes: usize,
    /// How long the cleaner sleeps when no partition needed cleaning (it checks again at once
    /// after cleaning one). Default: 15 s (`log.cleaner.backoff.ms`).
    pub backoff: Duration,
}

impl Default for CleanerConfig {
    fn default() -> CleanerConfig {
        CleanerConfig {
            enabled: true,
            buffer_bytes: CompactionConfig::default().buffer_bytes,
            backoff: Duration::from_secs(15),
        }
    }
}

/// A Riverbed data directory. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Store {
    // NOTE: declared first so that it is dropped first: the cleaner thread stops before the
    // store's logs close.
    _maintenance: Arc<MaintenanceThread>,
    pub(crate) inner: Arc<StoreInner>,
}

/// The maintenance thread (transaction timeouts, the cleaner); stopped and joined when the last
/// `Store` handle goes.
struct MaintenanceThread {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for MaintenanceThread {
    fn drop(&mut self) {
        let (flag, cv) = &*self.stop;
        *flag.lock() = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) struct StoreInner {
    pub dir: PathBuf,
    pub config: StoreConfig,
    pub topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Serialises topic creation, deletion and partition changes.
    admin: Mutex<()>,
    pub offsets: OffsetStore,
    /// The transaction coordinator (producer ids, transactional ids, commit decisions).
    pub txns: Coordinator,
    pub groups: Mutex<HashMap<String, Arc<Group>>>,
    /// Bumped on every topic change, so groups notice they must rebalance.
    pub metadata_version: AtomicU64,
    pub notify: Notify,
    /// Bumped by every group change; `groups_published` is the value last written to the
    /// membership file (see `group::published`).
    group_changes: Arc<AtomicU64>,
    groups_published: Mutex<u64>,
    _lock: DirLock,
}

/// A topic and its open partitions.
pub(crate) struct Topic {
    pub name: String,
    pub config: TopicConfig,
    pub partitions: RwLock<Arc<Vec<Arc<Partition>>>>,
    pub sticky: Sticky,
}

/// One open partition: its log and the queue that coalesces concurrent sends into batches.
pub(crate) struct Partition {
    pub tp: TopicPartition,
    pub log: Log,
    pub queue: ProduceQueue,
}

impl Topic {
    pub fn partition_count(&self) -> u32 {
        self.partitions.read().len() as u32
    }

    pub fn partition(&self, p: u32) -> Result<Arc<Partition>> {
        let parts = self.partitions.read();
        parts.get(p as usize).cloned().ok_or_else(|| {
            ErrorKind::UnknownPartition {
                topic: self.name.clone(),
                partition: p,
                partitions: parts.len() as u32,
            }
            .into()
        })
    }
}

/// Wakes consumers waiting in `poll` when anything is appended (or a group changes).
pub(crate) struct Notify {
    seq: AtomicU64,
    waiters: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Notify {
    fn new() -> Notify {
        Notify {
            seq: AtomicU64::new(0),
            waiters: AtomicUsize::new(0),
            lock: Mutex::new(()),
            cv: Condvar::new(),
        }
    }

    /// Registers the caller as a possible waiter, before it looks for work, and returns the
    /// event count to pass to [`wait`](Self::wait). Dropping the guard unregisters.
    pub fn register(&self) -> (WaiterGuard<'_>, u64) {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        // Pairs with the fence in `notify`: the caller's later look for work (an acquire load
        // of a high watermark) cannot move before the registration.
        std::sync::atomic::fence(Ordering::SeqCst);
        (WaiterGuard(self), self.seq.load(Ordering::SeqCst))
    }

    /// Signals an event (after the change it announces is published). Costs one fence and a
    /// shared load when nobody waits, so producers can call it on every send.
    pub fn notify(&self) {
        // NOTE: the fence orders the caller's publication (say a high watermark store) before
        // the `waiters` load. A waiter registers (SeqCst) before it looks for work, so either it
        // sees the publication, or we see it registered and wake it.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::Relaxed) > 0 {
            self.seq.fetch_add(1, Ordering::SeqCst);
            let _g = self.lock.lock();
            self.cv.notify_all();
        }
    }

    /// Sleeps until an event after `seen` or `deadline`, whichever comes first. The caller must
    /// hold the guard from [`register`](Self::register) that returned `seen`.
    pub fn wait(&self, seen: u64, deadline: Instant) {
        let mut g = self.lock.lock();
        while self.seq.load(Ordering::SeqCst) == seen && Instant::now() < deadline {
            self.cv.wait_until(&mut g, deadline);
        }
    }
}

/// Unregisters a waiter of [`Notify`] when dropped.
pub(crate) struct WaiterGuard<'a>(&'a Notify);

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What [`Store::describe_topic`] reports about one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionDescription {
    /// Partition number.
    pub partition: u32,
    /// First offset still in the log.
    pub log_start_offset: u64,
    /// Next offset to be written (the high watermark).
    pub log_end_offset: u64,
    /// Bytes of segment data.
    pub size_bytes: u64,
    /// Number of segments.
    pub segments: usize,
}

/// What [`Store::describe_topic`] reports.
#[derive(Clone, Debug)]
pub struct TopicDescription {
    /// Topic name.
    pub name: String,
    /// Its configuration.
    pub config: TopicConfig,
    /// Each partition, in order.
    pub partitions: Vec<PartitionDescription>,
}

pub(crate) const OFFSETS_DIR: &str = "__consumer_offsets-0";
/// The name under which transactions list the committed offsets log among their partitions.
pub(crate) const OFFSETS_TOPIC: &str = "__consumer_offsets";

impl Store {
    /// Opens (creating if need be) the store in `dir` with default settings.
    ///
    /// # Errors
    /// See [`open_with`](Self::open_with).
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(dir, StoreConfig::default())
    }

    /// Opens (creating if need be) the store in `dir`: takes its lock, reads the topic metadata
    /// and opens (recovering if need be) every partition log and the committed offsets.
    ///
    /// # Errors
    /// [`Locked`](ErrorKind::Locked) if another handle, in this process or another, has the
    /// directory open; [`Corruption`](ErrorKind::Corruption) if the metadata file is damaged;
    /// [`Io`](ErrorKind::Io); any error of [`Log::open`].
    pub fn open_with(dir: impl AsRef<Path>, config: StoreConfig) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create store directory", &dir, e))?;
        let lock = DirLock::acquire(&dir)?;
        remove_deleted_dirs(&dir)?;
        let meta_path = dir.join(topic::METADATA_FILE);
        let topics = match std::fs::read(&meta_path) {
            Ok(bytes) => topic::decode_metadata(&bytes, &meta_path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io("read topic metadata", &meta_path, e)),
        };
        remove_orphans(&dir, &topics)?;
        // Membership is not durable: what a previous process published is stale.
        let members = dir.join(crate::group::published::FILE_NAME);
        for path in [crate::fs::tmp_path(&members), members] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove stale group membership", &path, e)),
            }
        }
        let mut map = HashMap::new();
        for (name, cfg) in topics {
            let t = open_topic(&dir, &name, cfg, false)?;
            map.insert(name, Arc::new(t));
        }
        let offsets = OffsetStore::open(&dir.join(OFFSETS_DIR))?;
        let (txns, decisions) = Coordinator::open(&dir.join(TXN_LOG_DIR))?;
        recover_transactions(&map, &offsets, &txns, &decisions)?;
        let inner = Arc::new(StoreInner {
            dir,
            config,
            topics: RwLock::new(map),
            admin: Mutex::new(()),
            offsets,
            txns,
            groups: Mutex::new(HashMap::new()),
            metadata_version: AtomicU64::new(0),
            notify: Notify::new(),
            group_changes: Arc::default(),
            groups_published: Mutex::new(0),
            _lock: lock,
        });
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = {
            let (weak, stop) = (Arc::downgrade(&inner), Arc::clone(&stop));
            Some(
                std::thread::Builder::new()
                    .name("riverbed-maintenance".into())
                    .spawn(move || maintenance_loop(&weak, &stop))
                    .map_err(|e| Error::io("spawn maintenance thread", &inner.dir, e))?,
            )
        };
        Ok(Store {
            _maintenance: Arc::new(MaintenanceThread { stop, thread }),
            inner,
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Creates a topic.
    ///
    /// # Errors
    /// [`InvalidArgument`](ErrorKind::InvalidArgument) for a bad name;
    /// [`InvalidConfig`](ErrorKind::InvalidConfig); [`TopicExists`](ErrorKind::TopicExists);
    /// [`Io`](ErrorKind::Io). Nothing is changed on error.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<()> {
        topic::validate_topic_name(name)?;
        config.validate()?;
        let _admin = self.inner.admin.lock();
        if self.inner.topics.read().contains_key(name) {
            return Err(ErrorKind::TopicExists {
                topic: name.to_string(),
            }
            .into());
        }
        let t = Arc::new(open_topic(&self.inner.dir, name, config, true)?);
        let mut next = self.inner.topics.read().clone();
        next.insert(name.to_string(), Arc::clone(&t));
        if let Err(e) = self.inner.write_metadata(&next) {
            // Not in the metadata, so not a topic: remove what was created.
            drop(t);
            for p in 0..next[name].config.partitions {
                let _ = std::fs::remove_dir_all(partition_dir(&self.inner.dir, name, p));
            }
            return Err(e);
        }
        *self.inner.topics.write() = next;
        self.inner.topics_changed();
        Ok(())
    }

    /// Deletes a topic and all its data. Consumers holding records of it keep them; later reads
    /// see [`UnknownTopic`](ErrorKind::UnknownTopic).
    ///
    /// # Errors
    /// [`UnknownTopic`](ErrorKind::UnknownTopic); [`Io`](ErrorKind::Io).
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        let _admin = self.inner.admin.lock();
        let mut next = self.inner.topics.read().clone();
        let Some(t) = next.remove(name) else {
            return Err(ErrorKind::UnknownTopic {
                topic: name.to_string(),
            }
            .into());
        };
        // As in Kafka, a deleted topic's committed offsets go with it: first, so that a crash
        // part way cannot leave them to a new topic of the same name.
        self.inner.offsets.delete_topic(name)?;
        // The metadata is the truth: once it no longer names the topic, the topic is gone, and
        // directories it leaves behind after a crash are removed at the next open.
        self.inner.write_metadata(&next)?;
        *self.inner.topics.write() = next;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        for part in t.partitions.read().iter() {
            part.log.mark_deleted();
        }
        for p in 0..t.partition_count() {
            let from = partition_dir(&self.inner.dir, name, p);
            // Bounded, so that the longest topic name still makes a valid file name.
            let short: String = name.chars().take(100).collect();
            let to = self.inner.dir.join(format!("{short}-{p}.{stamp}.deleted"));
            if std::fs::rename(&from, &to).is_err() {
                // The metadata no longer names the topic; remove the data in place.
                std::fs::remove_dir_all(&from)
                    .map_err(|e| Error::io("remove deleted partition", &from, e))?;
            }
        }
        crate::fs::sync_dir(&self.inner.dir)?;
        drop(t);
        remove_deleted_dirs(&self.inner.dir)?;

        self.inner.topics_changed();
        Ok(())
    }

    /// Raises a topic's partition count to `total` (partitions cannot be removed, as in Kafka;
    /// keys may map to different partitions afterwards).
    ///
    /// # Errors
    /// [`UnknownTopic`](ErrorKind::UnknownTopic); [`InvalidArgument`](ErrorKind::InvalidArgument)
    /// if `total` is not larger than the current count; [`Io`](ErrorKind::Io).
    pub fn add_partitions(&self, name: &str, total: u32) -> Result<()> {
        let _admin = self.inner.admin.lock();
        let t = self.inner.topic(name)?;
        let current = t.partition_count();
        if total <= current || total > 100_000 {
            return Err(Error::invalid(format!(
                "topic {name:?} has {current} partitions; the new count must be larger (and at most 100000), got {total}"
            )));
        }
        let mut added = Vec::new();
        for p in current..total {
            added.push(Arc::new(open_partition(
                &self.inner.dir,
                name,
                p,
                &t.config,
                true,
            )?));
        }
        let mut config = t.config.clone();
        config.partitions = total;
        let new_topic = Arc::new(Topic {
            name: name.to_string(),
            config,
            partitions: RwLock::new(Arc::new({
                let mut v = t.partitions.read().as_ref().clone();
                v.extend(added);
                v
            })),
            sticky: Sticky::default(),
        });
        let mut next = self.inner.topics.read().clone();
        next.insert(name.to_string(), new_topic);
        self.inner.write_metadata(&next)?;
        *self.inner.topics.write() = next;
        self.inner.topics_changed();
        Ok(())
    }

    /// Names of all topics, sorted.
    pub fn list_topics(&self) -> Vec<String> {
        let mut v: Vec<String> = self.inner.topics.read().keys().cloned().collect();
        v.sort();
        v
    }

    /// A topic's configuration and the state of its partitions.
    ///
    /// # Errors
    /// [`UnknownTopic`](ErrorKind::UnknownTopic).
    pub fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let t = self.inner.topic(name)?;
        let partitions = t
            .partitions
            .read()
            .iter()
            .map(|p| PartitionDescription {
                partition: p.tp.partition,
                log_start_offset: p.log.log_start_offset(),
                log_end_offset: p.log.next_offset(),
                size_bytes: p.log.size_in_bytes(),
                segments: p.log.segment_count(),
            })
            .collect();
        Ok(TopicDescription {
            name: t.name.clone(),
            config: t.config.clone(),
            partitions,
        })
    }

    /// Makes everything produced so far, on every partition, durable.
    ///
    /// # Errors
    /// [`Io`](ErrorKind::Io) or [`Poisoned`](ErrorKind::Poisoned) from a partition log.
    pub fn flush(&self) -> Result<()> {
        self.inner.flush_all()
    }

    /// Deletes, on every partition of every topic, the sealed segments past their retention
    /// limits. Returns the number of segments deleted.
    ///
    /// # Errors
    /// [`Io`](ErrorKind::Io).
    pub fn apply_retention(&self) -> Result<usize> {
        let topics: Vec<Arc<Topic>> = self.inner.topics.read().values().cloned().collect();
        let mut n = 0;
        for t in topics {
            for p in t.partitions.read().iter() {
                n += p.log.apply_retention()?.deleted_segments.len();
            }
        }
        Ok(n)
    }
}

impl Store {
    /// Compacts every partition of a compacted topic now, whatever its dirty ratio (see
    /// [`Log::compact`]), with the cleaner's key map size and the wall clock. Returns the sum of
    /// the partitions' reports.
    ///
    /// # Errors
    /// [`UnknownTopic`](ErrorKind::UnknownTopic); as [`Log::compact`] (including
    /// [`InvalidArgument`](ErrorKind::InvalidArgument) for a topic that is not compacted).
    pub fn compact_now(&self, topic: &str) -> Result<CompactionReport> {
        self.compact_now_with(
            topic,
            &CompactionConfig {
                buffer_bytes: self.inner.config.cleaner.buffer_bytes,
                ..CompactionConfig::default()
            },
        )
    }

    /// Like [`compact_now`](Self::compact_now) with explicit options (a clock for tests, a key
    /// map size).
    ///
    /// # Errors
    /// As [`compact_now`](Self::compact_now).
    pub fn compact_now_with(
        &self,
        topic: &str,
        options: &CompactionConfig,
    ) -> Result<CompactionReport> {
        let t = self.inner.topic(topic)?;
        let mut report = CompactionReport::default();
        let parts = t.partitions.read().clone();
        for p in parts.iter() {
            report.add(&p.log.compact(options)?);
        }
        Ok(report)
    }
}

/// How often the maintenance thread looks for transactions past their timeout.
const TXN_TIMEOUT_TICK: std::time::Duration = std::time::Duration::from_millis(100);

/// The store's maintenance thread. Every `TXN_TIMEOUT_TICK` it aborts transactions open past
/// their timeout; when the cleaner is enabled it also compacts the dirtiest partition whose dirty
/// ratio reached its topic's `min_cleanable_dirty_ratio`, looking again after `backoff` when
/// there is none. It holds the store only weakly between rounds (never while it sleeps), and a
/// compaction round stops between segment groups once asked to; the last `Store` handle stops
/// and joins it, so a dropped store has released its directory when the drop returns.
fn maintenance_loop(store: &Weak<StoreInner>, stop: &(Mutex<bool>, Condvar)) {
    let should_stop = || *stop.0.lock();
    let mut next_clean = Instant::now();
    loop {
        {
            let Some(inner) = store.upgrade() else { return };
            if inner.txns.expire(Instant::now(), &inner.offsets) > 0 {
                inner.notify.notify();
            }
            let config = &inner.config.cleaner;
            if config.enabled
                && Instant::now() >= next_clean
                && !clean_dirtiest(&inner, &should_stop)
            {
                next_clean = Instant::now() + config.backoff;
            }
        }
        let (flag, cv) = stop;
        let mut s = flag.lock();
        if !*s {
            cv.wait_for(&mut s, TXN_TIMEOUT_TICK);
        }
        if *s {
            return;
        }
    }
}

/// Compacts the dirtiest partition worth cleaning; false when there was none (or it failed: an
/// error is retried after the backoff; a poisoned log reports it to its own users).
fn clean_dirtiest(inner: &StoreInner, should_stop: &dyn Fn() -> bool) -> bool {
    let config = &inner.config.cleaner;
    let now = crate::log::now_ms();
    let topics: Vec<Arc<Topic>> = inner.topics.read().values().cloned().collect();
    let dirtiest = topics
        .iter()
        .filter(|t| t.config.log.cleanup_policy.compacts())
        .flat_map(|t| t.partitions.read().iter().cloned().collect::<Vec<_>>())
        .filter(|p| !p.log.is_deleted())
        .map(|p| (p.log.dirty_ratio(now), p))
        .filter(|(ratio, p)| *ratio > 0.0 && *ratio >= p.log.config().min_cleanable_dirty_ratio)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let Some((_, p)) = dirtiest else {
        return false;
    };
    let options = CompactionConfig {
        buffer_bytes: config.buffer_bytes,
        now_ms: Some(now),
        force: false,
    };
    matches!(p.log.compact_until(&options, &should_stop), Ok(report) if report.passes > 0)
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

impl StoreInner {
    pub fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.topics.read().get(name).cloned().ok_or_else(|| {
            ErrorKind::UnknownTopic {
                topic: name.to_string(),
            }
            .into()
        })
    }

    /// The topic, created with the default configuration if the store allows that.
    pub fn topic_or_create(&self, name: &str, store: &Store) -> Result<Arc<Topic>> {
        match self.topic(name) {
            Ok(t) => Ok(t),
            Err(e)
                if self.config.auto_create_topics
                    && matches!(e.kind(), ErrorKind::UnknownTopic { .. }) =>
            {
                match store.create_topic(name, self.config.default_topic.clone()) {
                    Ok(()) => {}
                    Err(e) if matches!(e.kind(), ErrorKind::TopicExists { .. }) => {}
                    Err(e) => return Err(e),
                }
                self.topic(name)
            }
            Err(e) => Err(e),
        }
    }

    pub fn partition(&self, tp: &TopicPartition) -> Result<Arc<Partition>> {
        self.topic(&tp.topic)?.partition(tp.partition)
    }

    fn write_metadata(&self, topics: &HashMap<String, Arc<Topic>>) -> Result<()> {
        let mut names: Vec<&String> = topics.keys().collect();
        names.sort();
        let bytes = topic::encode_metadata(names.iter().map(|n| (n.as_str(), &topics[*n].config)));
        crate::fs::write_atomic(&self.dir.join(topic::METADATA_FILE), &bytes)
    }

    pub fn group_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.group_changes)
    }

    /// Writes the membership file if a group changed since it was last written, so that tools
    /// in other processes can show members and assignments. Best effort: a failure to write it
    /// affects only what tools show (and is retried at the next change).
    pub fn publish_groups(&self) {
        let now = self.group_changes.load(Ordering::Acquire);
        let mut published = self.groups_published.lock();
        if *published == now {
            return;
        }
        let mut groups: Vec<crate::GroupDescription> =
            self.groups.lock().values().map(|g| g.describe()).collect();
        groups.sort_by(|a, b| a.group.cmp(&b.group));
        let bytes = crate::group::published::encode(std::process::id(), &groups);
        let path = self.dir.join(crate::group::published::FILE_NAME);
        match crate::fs::write_unsynced(&path, &bytes) {
            Ok(()) => *published = now,
            Err(e) => tracing::debug!(
                target: "riverbed::group",
                error = %e,
                "could not publish group membership"
            ),
        }
    }

    fn topics_changed(&self) {
        self.metadata_version.fetch_add(1, Ordering::SeqCst);
        self.notify.notify();
    }

    pub fn flush_all(&self) -> Result<()> {
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        for t in topics {
            if t.config.log.flush == FlushPolicy::EveryAppend {
                continue;
            }
            let parts = t.partitions.read().clone();
            for p in parts.iter() {
                p.log.flush()?;
            }
        }
        Ok(())
    }
}

/// Ends every transaction a crash left open, in every partition log and the offsets log: commit
/// where the coordinator durably decided to commit, abort everywhere else.
fn recover_transactions(
    topics: &HashMap<String, Arc<Topic>>,
    offsets: &OffsetStore,
    txns: &Coordinator,
    decisions: &HashMap<String, crate::txn::coordinator::TxnRecord>,
) -> Result<()> {
    let by_pid: HashMap<i64, &crate::txn::coordinator::TxnRecord> =
        decisions.values().map(|r| (r.producer_id, r)).collect();
    for t in topics.values() {
        for p in t.partitions.read().iter() {
            Coordinator::recover_log(&p.log, Some(&p.tp), &by_pid, None)?;
        }
    }
    Coordinator::recover_log(offsets.log(), None, &by_pid, Some(offsets))?;
    txns.complete_recovered(decisions)
}

pub(crate) fn partition_dir(dir: &Path, topic: &str, partition: u32) -> PathBuf {
    dir.join(format!("{topic}-{partition}"))
}

fn open_partition(
    dir: &Path,
    name: &str,
    p: u32,
    config: &TopicConfig,
    fresh: bool,
) -> Result<Partition> {
    let pdir = partition_dir(dir, name, p);
    if fresh && pdir.exists() {
        // Left by a create that crashed before the metadata named the topic: not a partition.
        std::fs::remove_dir_all(&pdir)
            .map_err(|e| Error::io("remove stale partition directory", &pdir, e))?;
    }
    Ok(Partition {
        tp: TopicPartition::new(name, p),
        log: Log::open(&pdir, config.log.clone())?,
        queue: ProduceQueue::default(),
    })
}

fn open_topic(dir: &Path, name: &str, config: TopicConfig, fresh: bool) -> Result<Topic> {
    let mut parts = Vec::with_capacity(config.partitions as usize);
    for p in 0..config.partitions {
        parts.push(Arc::new(open_partition(dir, name, p, &config, fresh)?));
    }
    if fresh {
        crate::fs::sync_dir(dir)?;
    }
    Ok(Topic {
        name: name.to_string(),
        config,
        partitions: RwLock::new(Arc::new(parts)),
        sticky: Sticky::default(),
    })
}

/// Removes what no topic owns: partition directories (`<topic>-<n>`) of topics the metadata does
/// not name (left by a create or delete that crashed part way) and a leftover `topics.tmp`.
fn remove_orphans(dir: &Path, topics: &[(String, TopicConfig)]) -> Result<()> {
    let _ = std::fs::remove_file(crate::fs::tmp_path(&dir.join(topic::METADATA_FILE)));
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("list store directory", dir, e))?;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((topic, p)) = name.rsplit_once('-') else {
            continue;
        };
        let owned = topics
            .iter()
            .any(|(t, c)| t == topic && p.parse::<u32>().is_ok_and(|p| p < c.partitions));
        let partition_dir = p.parse::<u32>().is_ok() && topic::validate_topic_name(topic).is_ok();
        if partition_dir && !owned && e.path().is_dir() {
            let path = e.path();
            std::fs::remove_dir_all(&path)
                .map_err(|e| Error::io("remove orphaned partition", &path, e))?;
        }
    }
    Ok(())
}

/// Removes partition directories of deleted topics (renamed `*.deleted` before removal).
fn remove_deleted_dirs(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("list store directory", dir, e))?;
    for e in entries.flatten() {
        if e.file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(".deleted"))
        {
            let p = e.path();
            std::fs::remove_dir_all(&p)
                .map_err(|e| Error::io("remove deleted partition", &p, e))?;
        }
    }
    Ok(())
}
