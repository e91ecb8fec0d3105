//! The store: the one handle users open. It owns a data directory — its lock, the topic
//! registry and metadata, every partition log, the committed offsets and the consumer groups.
//!
//! This module is private: the user-facing documentation (with an example) is on
//! [`Store`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::config::FlushPolicy;
use crate::coordinator::offsets::OffsetStore;
use crate::coordinator::txn::{Coordinator, TXN_LOG_DIR};
use crate::error::{Error, ErrorKind, Result};
use crate::fs::DirLock;
use crate::group::Group;
#[cfg(doc)]
use crate::log::Log;
use crate::log::{CompactionConfig, CompactionReport};
use crate::partition::{open_partition, open_topic, Notify, Partition, Registry, Topic};
use crate::partitioner::Sticky;
use crate::topic::{self, TopicConfig, TopicPartition};

mod groups;
pub(crate) mod layout;
mod metrics;
pub(crate) mod server_metrics;

pub use layout::{MetadataRebuild, RebuildOptions, RebuiltTopic};
pub use metrics::{GroupMetrics, GroupPartitionLag, Metrics, PartitionMetrics};
pub use server_metrics::{ApiMetrics, ServerMetrics};

/// Store-wide settings.
///
/// Built from `StoreConfig::default()` with one setter per setting, e.g.
/// `StoreConfig::default().auto_create_topics(..)`, and read with
/// the `get_` getters (see ARCHITECTURE.md, "Configuration style").
#[derive(Clone, Debug, Default)]
pub struct StoreConfig {
    pub(crate) auto_create_topics: bool,
    pub(crate) default_topic: TopicConfig,
    pub(crate) cleaner: CleanerConfig,
}

impl StoreConfig {
    /// Create a topic (with `default_topic`) when a producer sends to one that does not exist.
    /// Default: false (an [`UnknownTopic`](ErrorKind::UnknownTopic) error), unlike Kafka's broker
    /// default, because a typo should not create a topic.
    #[must_use = "a setter returns the changed configuration"]
    pub fn auto_create_topics(mut self, auto_create_topics: bool) -> StoreConfig {
        self.auto_create_topics = auto_create_topics;
        self
    }

    /// Configuration of automatically created topics. Default: `TopicConfig::new(1)`.
    #[must_use = "a setter returns the changed configuration"]
    pub fn default_topic(mut self, default_topic: TopicConfig) -> StoreConfig {
        self.default_topic = default_topic;
        self
    }

    /// The background log cleaner. Default: [`CleanerConfig::default`].
    #[must_use = "a setter returns the changed configuration"]
    pub fn cleaner(mut self, cleaner: CleanerConfig) -> StoreConfig {
        self.cleaner = cleaner;
        self
    }

    /// The [`auto_create_topics`](Self::auto_create_topics) setting.
    pub fn get_auto_create_topics(&self) -> bool {
        self.auto_create_topics
    }

    /// The [`default_topic`](Self::default_topic) setting.
    pub fn get_default_topic(&self) -> &TopicConfig {
        &self.default_topic
    }

    /// The [`cleaner`](Self::cleaner) setting.
    pub fn get_cleaner(&self) -> &CleanerConfig {
        &self.cleaner
    }
}

/// Settings of the store's background log cleaner: one thread that compacts the partitions of
/// compacted topics (see [`Log::compact`]).
///
/// Built from `CleanerConfig::default()` with one setter per setting, e.g.
/// `CleanerConfig::default().enabled(..)`, and read with
/// the `get_` getters (see ARCHITECTURE.md, "Configuration style").
#[derive(Clone, Debug)]
pub struct CleanerConfig {
    pub(crate) enabled: bool,
    pub(crate) buffer_bytes: usize,
    pub(crate) backoff: Duration,
    pub(crate) io_max_bytes_per_second: Option<u64>,
}

impl CleanerConfig {
    /// Whether the thread runs. Without it, compaction happens only through
    /// [`Store::compact_now`]. Default: true (`log.cleaner.enable`).
    #[must_use = "a setter returns the changed configuration"]
    pub fn enabled(mut self, enabled: bool) -> CleanerConfig {
        self.enabled = enabled;
        self
    }

    /// Memory for the key map of one compaction pass. Default: 32 MiB.
    #[must_use = "a setter returns the changed configuration"]
    pub fn buffer_bytes(mut self, buffer_bytes: usize) -> CleanerConfig {
        self.buffer_bytes = buffer_bytes;
        self
    }

    /// How long the cleaner sleeps when no partition needed cleaning (it checks again at once
    /// after cleaning one). Default: 15 s (`log.cleaner.backoff.ms`).
    #[must_use = "a setter returns the changed configuration"]
    pub fn backoff(mut self, backoff: Duration) -> CleanerConfig {
        self.backoff = backoff;
        self
    }

    /// The most bytes per second the cleaner reads and writes (Kafka's
    /// `log.cleaner.io.max.bytes.per.second`); past it, it sleeps between batches, holding no
    /// lock appends need. `None`: unlimited (Kafka's default). Also used by
    /// [`Store::compact_now`]. Default: `Some(32 << 20)`, 32 MiB/s, so that appends during a
    /// pass keep at least 0.8x of their idle pace on a small machine (see
    /// [`CompactionConfig::io_max_bytes_per_second`]).
    #[must_use = "a setter returns the changed configuration"]
    pub fn io_max_bytes_per_second(
        mut self,
        io_max_bytes_per_second: Option<u64>,
    ) -> CleanerConfig {
        self.io_max_bytes_per_second = io_max_bytes_per_second;
        self
    }

    /// The [`io_max_bytes_per_second`](Self::io_max_bytes_per_second) setting.
    pub fn get_io_max_bytes_per_second(&self) -> Option<u64> {
        self.io_max_bytes_per_second
    }

    /// The [`enabled`](Self::enabled) setting.
    pub fn get_enabled(&self) -> bool {
        self.enabled
    }

    /// The [`buffer_bytes`](Self::buffer_bytes) setting.
    pub fn get_buffer_bytes(&self) -> usize {
        self.buffer_bytes
    }

    /// The [`backoff`](Self::backoff) setting.
    pub fn get_backoff(&self) -> Duration {
        self.backoff
    }
}

impl Default for CleanerConfig {
    fn default() -> CleanerConfig {
        CleanerConfig {
            enabled: true,
            buffer_bytes: CompactionConfig::default().buffer_bytes,
            backoff: Duration::from_secs(15),
            io_max_bytes_per_second: CompactionConfig::default().io_max_bytes_per_second,
        }
    }
}

/// A Riverbed data directory: the one handle users open. It owns the directory's lock, the
/// topic registry and metadata, every partition log, the committed offsets and the consumer
/// groups. Cheap to clone; `Send + Sync`.
///
/// ```
/// use riverbed::{ProducerRecord, Store, TopicConfig};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// store.create_topic("payments", TopicConfig::new(4))?;
/// let meta = store.producer().send(ProducerRecord::new("payments").key("alice").value("+50"))?;
/// assert_eq!(meta.offset, 0);
/// assert_eq!(store.list_topics(), ["payments"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Store {
    // NOTE: declared first so that it is dropped first: the cleaner thread stops before the
    // store's logs close.
    _maintenance: Arc<MaintenanceThread>,
    inner: Arc<StoreInner>,
}

/// The maintenance thread (transaction timeouts, the cleaner); stopped and joined when the last
/// `Store` handle goes.
struct MaintenanceThread {
    stop: Arc<(Mutex<bool>, Condvar)>,
    /// Taken (and joined) by the first [`stop`](Self::stop).
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl MaintenanceThread {
    /// Stops the thread and waits for it (a compaction under way finishes first).
    fn stop(&self) {
        let (flag, cv) = &*self.stop;
        *flag.lock() = true;
        cv.notify_all();
        let thread = self.thread.lock().take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for MaintenanceThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The state behind every `Store` handle; private to this module, which is the only code that
/// changes it. Clients reach what they need through the `pub(crate)` methods below.
struct StoreInner {
    dir: PathBuf,
    config: StoreConfig,
    topics: Registry,
    /// Serialises topic creation, deletion and partition changes.
    admin: Mutex<()>,
    offsets: OffsetStore,
    /// The transaction coordinator (producer ids, transactional ids, commit decisions).
    txns: Coordinator,
    groups: Mutex<HashMap<String, Arc<Group>>>,
    /// Bumped on every topic change, so groups notice they must rebalance.
    metadata_version: AtomicU64,
    notify: Notify,
    /// Bumped by every group change; `groups_published` is the value last written to the
    /// membership file (see `group::published`).
    group_changes: Arc<AtomicU64>,
    groups_published: Mutex<u64>,
    /// The Kafka wire fronts serving this store (feature `server`), for `Store::metrics`.
    servers: Mutex<Vec<std::sync::Weak<server_metrics::ServerCounters>>>,
    _lock: DirLock,
}

/// What [`Store::describe_topic`] reports about one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
#[non_exhaustive]
pub struct TopicDescription {
    /// Topic name.
    pub name: String,
    /// Its configuration.
    pub config: TopicConfig,
    /// Each partition, in order.
    pub partitions: Vec<PartitionDescription>,
}

/// Re-exported for the tools, which read the offsets log (`inspect`).
pub(crate) use crate::coordinator::offsets::OFFSETS_DIR;
pub(crate) use crate::partition::partition_dir;

impl Store {
    /// Opens (creating if need be) the store in `dir` with default settings.
    ///
    /// # Errors
    /// See [`open_with`](Self::open_with).
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(dir, StoreConfig::default())
    }

    /// Opens (creating if need be) the store in `dir`: takes its lock, reads the topic metadata
    /// (the file `topics`), finishes or undoes topic changes a crash interrupted, and opens
    /// (recovering if need be) every partition log and the committed offsets.
    ///
    /// Riverbed removes nothing at open that it cannot prove it put there itself: only the
    /// marked directories of interrupted creates and deletes, and its own temp files (FORMAT.md,
    /// section 8). A partition directory `<topic>-<n>` the metadata does not name is data it
    /// cannot account for, so the store is not opened: a missing `topics` file in a directory
    /// that holds partitions, or a stale one, is a
    /// [`MetadataMismatch`](ErrorKind::MetadataMismatch) error naming the file and the
    /// directories, and `riverbed topics rebuild-metadata` (or [`Store::rebuild_metadata`])
    /// writes a metadata file from the directories. A directory without a `topics` file and
    /// without partition directories is a new store.
    ///
    /// Transactions a crash left open are ended from the coordinator's durable decisions (commit
    /// markers where it decided to commit, abort markers elsewhere). A full disk does not fail
    /// the open: markers without room are written by the maintenance thread once there is room;
    /// meanwhile `read_committed` readers stop at those transactions and
    /// [`transactional_producer`](Self::transactional_producer) fails with
    /// [`NoSpace`](ErrorKind::NoSpace).
    ///
    /// # Errors
    /// [`Locked`](ErrorKind::Locked) if another handle, in this process or another, has the
    /// directory open; [`Corruption`](ErrorKind::Corruption) naming the metadata file if it is
    /// damaged; [`MetadataMismatch`](ErrorKind::MetadataMismatch) if it does not account for
    /// the partition directories (or names partitions whose directory is gone);
    /// [`Io`](ErrorKind::Io); any error of [`Log::open`].
    pub fn open_with(dir: impl AsRef<Path>, config: StoreConfig) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create store directory", &dir, e))?;
        let lock = DirLock::acquire(&dir)?;
        let meta_path = dir.join(topic::METADATA_FILE);
        let topics = match std::fs::read(&meta_path) {
            Ok(bytes) => Some(topic::decode_metadata(&bytes, &meta_path)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("read topic metadata", &meta_path, e)),
        };
        layout::settle(&dir, topics.as_deref())?;
        let topics = topics.unwrap_or_default();
        // Membership is not durable: what a previous process published is stale.
        // Nor are a server's figures: no server of this store runs yet.
        let members = dir.join(crate::group::published::FILE_NAME);
        let servers = dir.join(server_metrics::FILE_NAME);
        for path in [
            crate::fs::tmp_path(&members),
            members,
            crate::fs::tmp_path(&servers),
            servers,
        ] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove stale group membership", &path, e)),
            }
        }
        let mut map = HashMap::new();
        for (name, cfg) in topics {
            let t = open_topic(&dir, &name, cfg)?;
            map.insert(name, Arc::new(t));
        }
        let offsets = OffsetStore::open(&dir.join(OFFSETS_DIR))?;
        let (txns, decisions) = Coordinator::open(&dir.join(TXN_LOG_DIR))?;
        recover_transactions(&map, &offsets, &txns, &decisions)?;
        let inner = Arc::new(StoreInner {
            dir,
            config,
            topics: Registry::new(map),
            admin: Mutex::new(()),
            offsets,
            txns,
            groups: Mutex::new(HashMap::new()),
            metadata_version: AtomicU64::new(0),
            notify: Notify::new(),
            group_changes: Arc::default(),
            groups_published: Mutex::new(0),
            servers: Mutex::new(Vec::new()),
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
            _maintenance: Arc::new(MaintenanceThread {
                stop,
                thread: Mutex::new(thread),
            }),
            inner,
        })
    }

    /// Writes the topic metadata file of the store in `dir` from the partition directories it
    /// holds, for a store that [`open`](Self::open) refuses because its metadata file is
    /// missing, stale or damaged ([`MetadataMismatch`](ErrorKind::MetadataMismatch),
    /// [`Corruption`](ErrorKind::Corruption)). The CLI runs it as `riverbed topics
    /// rebuild-metadata`.
    ///
    /// Every topic with a directory `<topic>-<n>` is named, with the partition count the
    /// directories show (`<topic>-0` to `<topic>-<n>` must all be there). A topic the existing
    /// metadata file describes keeps its settings. The settings of any other topic are unknown,
    /// so it gets the defaults, except that retention deletes nothing (`retention_ms=none`) and
    /// the segment and index sizes are at least those of its files, then
    /// [`RebuildOptions::settings`]; check them (`riverbed topics describe`). Topics the old file
    /// names without any directory hold no data and are left out. Nothing is moved or removed
    /// (a damaged file is kept under another name); the file is replaced atomically, under the
    /// store's lock.
    ///
    /// # Errors
    /// [`Locked`](ErrorKind::Locked) if the store is open; [`Corruption`](ErrorKind::Corruption)
    /// for a damaged metadata file without [`RebuildOptions::replace_damaged`];
    /// [`InvalidArgument`](ErrorKind::InvalidArgument) if a topic's partition directories have
    /// a gap (or fewer than the old file names), or for a bad setting; [`Io`](ErrorKind::Io).
    pub fn rebuild_metadata(
        dir: impl AsRef<Path>,
        options: &RebuildOptions,
    ) -> Result<MetadataRebuild> {
        layout::rebuild_metadata(dir.as_ref(), options)
    }

    /// Closes the store and reports what dropping it would only log: stops the maintenance
    /// thread (the cleaner and transaction timeouts; a compaction under way finishes first),
    /// then flushes and closes every partition log and the store's own logs (committed offsets,
    /// transactions), each with a recovery point at its end so that the next open scans
    /// nothing. A log that fails to close does not stop the others from closing; the first
    /// error is returned. Transactions still open stay open, to be aborted by their timeout
    /// after the next open, as after a crash.
    ///
    /// Other handles of the store (clones, producers, consumers, streams applications) stay
    /// valid objects, but their sends, commits and appends fail with
    /// [`Closed`](ErrorKind::Closed) from now on; the directory lock is released when the last
    /// of them is dropped. Dropping the last handle without `close` does the same work and
    /// ignores its errors; the next open then recovers whatever did not reach the disk.
    ///
    /// # Errors
    /// [`Io`](ErrorKind::Io) or [`NoSpace`](ErrorKind::NoSpace) when a flush, fsync or
    /// recovery-point write fails; [`Poisoned`](ErrorKind::Poisoned) for a log an earlier
    /// failure poisoned (its unflushed data is left to recovery at the next open).
    pub fn close(self) -> Result<()> {
        self._maintenance.stop();
        let _admin = self.inner.admin.lock();
        let mut first_error = None;
        let topics = self.inner.topics.snapshot();
        let mut names: Vec<&String> = topics.keys().collect();
        names.sort();
        for name in names {
            for p in topics[name].partitions.read().iter() {
                if let Err(e) = p.log.close_shared() {
                    first_error.get_or_insert(e);
                }
            }
        }
        for r in [self.inner.offsets.close(), self.inner.txns.close()] {
            if let Err(e) = r {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
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
    /// [`MetadataMismatch`](ErrorKind::MetadataMismatch) if a directory of one of its
    /// partitions already exists (data the store does not account for, which is never
    /// deleted); [`Io`](ErrorKind::Io). Nothing is changed on error.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<()> {
        topic::validate_topic_name(name)?;
        config.validate()?;
        let _admin = self.inner.admin.lock();
        if self.inner.topics.contains(name) {
            return Err(ErrorKind::TopicExists {
                topic: name.to_string(),
            }
            .into());
        }
        let parts = self
            .inner
            .create_partitions(name, &config, 0..config.partitions)?;
        let t = Arc::new(Topic {
            name: name.to_string(),
            config,
            partitions: RwLock::new(Arc::new(parts)),
            sticky: Sticky::default(),
        });
        let mut next = self.inner.topics.snapshot();
        next.insert(name.to_string(), t);
        self.inner.topics.replace(next);
        self.inner.topics_changed();
        Ok(())
    }

    /// Creates a topic unless one of that name exists, and says which happened: `true` when it
    /// was created, `false` when it existed. An existing topic is left exactly as it is, with
    /// its own partition count and settings, which are not compared with `config` (read them
    /// with [`describe_topic`](Self::describe_topic), change them with
    /// [`alter_topic_config`](Self::alter_topic_config)). This is Kafka's
    /// `kafka-topics.sh --create --if-not-exists`, which treats the `TopicExistsException` of
    /// `CreateTopics` as success without looking at the configuration, so that every
    /// application need not write that guard itself. The check and the creation are one step:
    /// of two callers racing, one creates and the other sees `false`.
    ///
    /// # Errors
    /// As [`create_topic`](Self::create_topic), except
    /// [`TopicExists`](ErrorKind::TopicExists). A bad name or configuration is an error even
    /// when the topic exists.
    pub fn create_topic_if_absent(&self, name: &str, config: TopicConfig) -> Result<bool> {
        match self.create_topic(name, config) {
            Ok(()) => Ok(true),
            Err(e) if matches!(e.kind(), ErrorKind::TopicExists { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes a topic and all its data. Consumers holding records of it keep them; later reads
    /// see [`UnknownTopic`](ErrorKind::UnknownTopic).
    ///
    /// # Errors
    /// [`UnknownTopic`](ErrorKind::UnknownTopic); [`Io`](ErrorKind::Io).
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        let _admin = self.inner.admin.lock();
        let mut next = self.inner.topics.snapshot();
        let Some(t) = next.remove(name) else {
            return Err(ErrorKind::UnknownTopic {
                topic: name.to_string(),
            }
            .into());
        };
        let dir = &self.inner.dir;
        // Earlier deletions' leftovers go first, so that a crash of this one leaves a single
        // marked copy of each of its partitions (see `layout`).
        layout::remove_committed_leftovers(dir, &self.inner.partition_counts())?;
        // As in Kafka, a deleted topic's committed offsets go with it: first, so that a crash
        // part way cannot leave them to a new topic of the same name.
        self.inner.offsets.delete_topic(name)?;
        let parts = t.partitions.read().clone();
        for part in parts.iter() {
            part.log.mark_deleted();
        }
        // Move every partition into a marked directory, then commit by writing the metadata
        // without the topic. A crash before the commit leaves the topic named with its
        // partitions marked, and the next open moves them back; after it, only the marked
        // directory, which the next open removes.
        let marked = dir.join(layout::marker_name(layout::DELETED_SUFFIX));
        let mut moved = Vec::new();
        let result = std::fs::create_dir(&marked)
            .map_err(|e| Error::io("create deletion directory", &marked, e))
            .and_then(|()| {
                for p in 0..parts.len() as u32 {
                    let from = partition_dir(dir, name, p);
                    let to = marked.join(format!("{name}-{p}"));
                    std::fs::rename(&from, &to)
                        .map_err(|e| Error::io("move deleted partition", &from, e))?;
                    moved.push((from, to));
                }
                crate::fs::sync_dir(dir)?;
                self.inner.write_metadata(&next)
            });
        if let Err(e) = result {
            // Not committed: put everything back as it was.
            for (from, to) in moved.iter().rev() {
                if let Err(e) = std::fs::rename(to, from) {
                    tracing::warn!(
                        target: "riverbed::store",
                        path = %to.display(),
                        error = %e,
                        "could not move a partition back after a failed delete; the next open will"
                    );
                }
            }
            let _ = std::fs::remove_dir(&marked);
            let _ = crate::fs::sync_dir(dir);
            for part in parts.iter() {
                part.log.unmark_deleted();
            }
            return Err(e);
        }
        self.inner.topics.replace(next);
        drop(parts);
        drop(t);
        // Committed: what is left to remove is marked, and the next open removes it if this
        // fails.
        if let Err(e) = std::fs::remove_dir_all(&marked)
            .and_then(|()| std::fs::File::open(dir).and_then(|d| d.sync_all()))
        {
            tracing::warn!(
                target: "riverbed::store",
                path = %marked.display(),
                error = %e,
                "could not remove a deleted topic's data; the next open will"
            );
        }
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
        let mut config = t.config.clone();
        config.partitions = total;
        let added = self
            .inner
            .create_partitions(name, &config, current..total)?;
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
        let mut next = self.inner.topics.snapshot();
        next.insert(name.to_string(), new_topic);
        self.inner.topics.replace(next);
        self.inner.topics_changed();
        Ok(())
    }

    /// Changes settings of a topic while the store is open, as Kafka's `incrementalAlterConfigs`
    /// (`kafka-configs.sh --alter --add-config k=v --delete-config k`): each `(key, Some(value))`
    /// sets a key, each `(key, None)` resets it to its default (Kafka's SET and DELETE). Keys and
    /// values are spelled as in [`TopicConfig::entries`] and [`TopicConfig::apply`] (e.g.
    /// `("retention_ms", Some("none"))`, `("cleanup_policy", Some("compact"))`); all are applied
    /// together. Returns the new configuration.
    ///
    /// Key/value pairs rather than a closure over [`TopicConfig`]: the same spelling serves the
    /// metadata file, the CLI and `describe`, a reset to the default can be said, and nothing
    /// can touch `partitions` by accident.
    ///
    /// The whole new configuration is validated and checked against the open logs first (see
    /// [`Log::alter_config`] for what each setting affects and when). Then the metadata file is
    /// replaced atomically with the new settings: the commit point. If that write fails (a
    /// full disk is [`NoSpace`](ErrorKind::NoSpace)), nothing changed, in memory or on disk.
    /// After it every partition log and the producers use the new settings.
    ///
    /// A delete-policy topic may become compacted, as in Kafka. From then on producers must
    /// give keys; records written without one before stay: Riverbed's cleaner keeps keyless
    /// records (Kafka's drops them), so the change deletes nothing.
    ///
    /// # Errors
    /// [`UnknownTopic`](ErrorKind::UnknownTopic); [`InvalidConfig`](ErrorKind::InvalidConfig)
    /// for `partitions` (use [`add_partitions`](Self::add_partitions)), an invalid
    /// configuration or a change an open log cannot honour (see [`Log::alter_config`]);
    /// [`InvalidArgument`](ErrorKind::InvalidArgument) for an unknown key or a value that
    /// does not parse; [`NoSpace`](ErrorKind::NoSpace) or [`Io`](ErrorKind::Io) writing the
    /// metadata. Nothing is changed on error.
    pub fn alter_topic_config(
        &self,
        name: &str,
        settings: &[(&str, Option<&str>)],
    ) -> Result<TopicConfig> {
        let _admin = self.inner.admin.lock();
        let t = self.inner.topic(name)?;
        let old = t.config.clone();
        if let Some((key, _)) = settings.iter().find(|(k, _)| *k == "partitions") {
            return Err(Error::config(
                "partitions",
                format!(
                    "{key} cannot be altered as a setting of topic {name:?}; add partitions with \
                     add_partitions (riverbed topics alter --partitions)"
                ),
            ));
        }
        let defaults = TopicConfig::new(old.partitions).entries();
        let mut resolved: Vec<(&str, String)> = Vec::with_capacity(settings.len());
        for (key, value) in settings {
            let key = topic::canonical_key(key);
            let value = match value {
                Some(v) => (*v).to_string(),
                None => match defaults.iter().find(|(k, _)| k == key) {
                    Some((_, v)) => v.clone(),
                    None => {
                        return Err(Error::invalid(format!(
                            "unknown topic setting {key:?}; known: {}",
                            defaults
                                .iter()
                                .map(|(k, _)| k.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )))
                    }
                },
            };
            resolved.push((key, value));
        }
        let mut config = old.clone();
        let pairs: Vec<(&str, &str)> = resolved.iter().map(|(k, v)| (*k, v.as_str())).collect();
        config.apply_unvalidated(&pairs)?;
        config.validate()?;
        crate::log::check_alter(&old.log, &config.log)?;
        // The commit point.
        self.inner.write_metadata_with(name, &config)?;
        let parts = t.partitions.read().clone();
        for p in parts.iter() {
            p.log.set_config(config.log.clone());
        }
        let new_topic = Arc::new(Topic {
            name: name.to_string(),
            config: config.clone(),
            partitions: RwLock::new(parts),
            sticky: Sticky::default(),
        });
        let mut next = self.inner.topics.snapshot();
        next.insert(name.to_string(), new_topic);
        self.inner.topics.replace(next);
        tracing::info!(
            target: "riverbed::store",
            topic = name,
            settings = ?settings,
            "topic configuration altered"
        );
        Ok(config)
    }

    /// Names of all topics, sorted.
    pub fn list_topics(&self) -> Vec<String> {
        self.inner.topics.names()
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
                log_end_offset: p.log.high_watermark(),
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
        let topics: Vec<Arc<Topic>> = self.inner.topics.all();
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
                io_max_bytes_per_second: self.inner.config.cleaner.io_max_bytes_per_second,
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

/// The store's maintenance thread. Every `TXN_TIMEOUT_TICK` it writes the transaction markers a
/// full disk held back (of recovery at open, and of transactions ended since) and aborts
/// transactions open past their timeout; when the cleaner is enabled it also compacts the
/// dirtiest partition whose dirty ratio reached its topic's `min_cleanable_dirty_ratio`, looking
/// again after `backoff` when there is none. It holds the store only weakly between rounds (never
/// while it sleeps), and a compaction round stops between segment groups once asked to; the last
/// `Store` handle stops and joins it, so a dropped store has released its directory when the drop
/// returns.
fn maintenance_loop(store: &Weak<StoreInner>, stop: &(Mutex<bool>, Condvar)) {
    let should_stop = || *stop.0.lock();
    let mut next_clean = Instant::now();
    loop {
        {
            let Some(inner) = store.upgrade() else { return };
            // Markers a full disk kept recovery at open from writing (an error: still no room;
            // tried again at the next tick). Readers waiting on a last stable offset wake.
            if inner.txns.recovery_pending() && inner.txns.finish_recovery(&inner.offsets).is_ok() {
                inner.notify.notify();
            }
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
    let now = crate::clock::now_ms();
    let topics: Vec<Arc<Topic>> = inner.topics.all();
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
        io_max_bytes_per_second: config.io_max_bytes_per_second,
    };
    matches!(p.log.compact_until(&options, &should_stop), Ok(report) if report.passes > 0)
}

/// What the clients built on the store (producer, consumer, transactional producer) reach
/// through the handle they keep.
impl Store {
    /// The topic `name`, or [`UnknownTopic`](ErrorKind::UnknownTopic).
    pub(crate) fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.inner.topic(name)
    }

    /// The topic `name`, created with the default configuration if the store allows that.
    pub(crate) fn topic_or_create(&self, name: &str) -> Result<Arc<Topic>> {
        self.inner.topic_or_create(name, self)
    }

    /// An open partition, or [`UnknownTopic`](ErrorKind::UnknownTopic) /
    /// [`UnknownPartition`](ErrorKind::UnknownPartition).
    pub(crate) fn partition(&self, tp: &TopicPartition) -> Result<Arc<Partition>> {
        self.inner.partition(tp)
    }

    /// Wakes pollers: signalled after every append and group change.
    pub(crate) fn notify(&self) -> &Notify {
        &self.inner.notify
    }

    /// The committed offsets log.
    pub(crate) fn offsets(&self) -> &OffsetStore {
        &self.inner.offsets
    }

    /// The configuration a topic gets when its creator does not give one (`StoreConfig::default_topic`).
    pub(crate) fn default_topic_config(&self) -> &TopicConfig {
        &self.inner.config.default_topic
    }

    /// Whether a topic that does not exist is created on first use
    /// (`StoreConfig::auto_create_topics`).
    pub(crate) fn auto_creates_topics(&self) -> bool {
        self.inner.config.auto_create_topics
    }

    /// The transaction coordinator.
    pub(crate) fn txns(&self) -> &Coordinator {
        &self.inner.txns
    }

    /// Bumped on every topic change, so that groups notice they must rebalance.
    pub(crate) fn metadata_version(&self) -> u64 {
        self.inner.metadata_version.load(Ordering::SeqCst)
    }

    /// The group `name` if this process has seen it.
    pub(crate) fn existing_group(&self, name: &str) -> Option<Arc<Group>> {
        self.inner.groups.lock().get(name).cloned()
    }

    /// Writes the membership file if a group changed (see `StoreInner::publish_groups`).
    pub(crate) fn publish_groups(&self) {
        self.inner.publish_groups();
    }

    /// Registers a wire front's counters: [`Store::metrics`] reports them while the server
    /// holds them.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn register_server(&self, counters: &Arc<server_metrics::ServerCounters>) {
        self.inner.servers.lock().push(Arc::downgrade(counters));
    }

    /// The running servers' figures.
    pub(crate) fn server_metrics(&self) -> Vec<server_metrics::ServerMetrics> {
        server_metrics::live(&mut self.inner.servers.lock())
    }

    /// Writes `<store>/server-metrics` (see `store::server_metrics`) with the running servers'
    /// figures, or removes it when none runs. Best effort: the file is for tools only.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn publish_server_metrics(&self) {
        let servers = self.server_metrics();
        let path = self.inner.dir.join(server_metrics::FILE_NAME);
        let result = if servers.is_empty() {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                r => r,
            }
        } else {
            crate::fs::write_unsynced(&path, &server_metrics::encode(std::process::id(), &servers))
                .map_err(|e| std::io::Error::other(e.to_string()))
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "could not publish server metrics");
        }
    }
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
        self.topics.get(name)
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
        self.topics.partition(tp)
    }

    fn write_metadata(&self, topics: &HashMap<String, Arc<Topic>>) -> Result<()> {
        let mut names: Vec<&String> = topics.keys().collect();
        names.sort();
        let bytes = topic::encode_metadata(names.iter().map(|n| (n.as_str(), &topics[*n].config)));
        crate::fs::write_atomic(&self.dir.join(topic::METADATA_FILE), &bytes)
    }

    /// Writes the metadata of the current topics with `name`'s configuration replaced by (or,
    /// for a new topic, added as) `config`.
    fn write_metadata_with(&self, name: &str, config: &TopicConfig) -> Result<()> {
        let topics = self.topics.snapshot();
        let mut configs: Vec<(&str, &TopicConfig)> = topics
            .iter()
            .filter(|(n, _)| n.as_str() != name)
            .map(|(n, t)| (n.as_str(), &t.config))
            .collect();
        configs.push((name, config));
        configs.sort_by(|a, b| a.0.cmp(b.0));
        let bytes = topic::encode_metadata(configs.into_iter());
        crate::fs::write_atomic(&self.dir.join(topic::METADATA_FILE), &bytes)
    }

    /// Every topic and its partition count, as the metadata names them.
    fn partition_counts(&self) -> std::collections::BTreeMap<String, u32> {
        self.topics
            .all()
            .iter()
            .map(|t| (t.name.clone(), t.config.partitions))
            .collect()
    }

    /// Creates partitions `new` of topic `name`, whose configuration is `config` once they
    /// exist, and commits them to the metadata (the caller holds the admin lock):
    /// 1. empty directories for them are staged in a marked `<stamp>.creating` directory;
    /// 2. the metadata is written with `config`: the commit point;
    /// 3. they are moved into place and their logs opened.
    ///
    /// A crash before 2 leaves only the marked directory, which the next open removes; a crash
    /// after it leaves partitions the metadata names in the marked directory, which the next
    /// open moves into place. No unmarked partition directory ever exists that the metadata
    /// does not name, so an unmarked one that does is never Riverbed's to remove.
    fn create_partitions(
        &self,
        name: &str,
        config: &TopicConfig,
        new: std::ops::Range<u32>,
    ) -> Result<Vec<Arc<Partition>>> {
        let dir = &self.dir;
        let in_the_way: Vec<PathBuf> = new
            .clone()
            .map(|p| partition_dir(dir, name, p))
            .filter(|d| d.symlink_metadata().is_ok())
            .collect();
        if !in_the_way.is_empty() {
            return Err(ErrorKind::MetadataMismatch {
                metadata: dir.join(topic::METADATA_FILE),
                metadata_missing: false,
                unaccounted: in_the_way,
                missing: Vec::new(),
            }
            .into());
        }
        let staging = dir.join(layout::marker_name(layout::CREATING_SUFFIX));
        let staged = |p: u32| staging.join(format!("{name}-{p}"));
        let unstage = || {
            for p in new.clone() {
                let _ = std::fs::remove_dir(staged(p));
            }
            let _ = std::fs::remove_dir(&staging);
        };
        let result = std::fs::create_dir(&staging)
            .map_err(|e| Error::io("create staging directory", &staging, e))
            .and_then(|()| {
                for p in new.clone() {
                    let d = staged(p);
                    std::fs::create_dir(&d)
                        .map_err(|e| Error::io("create partition directory", &d, e))?;
                }
                crate::fs::sync_dir(&staging)?;
                crate::fs::sync_dir(dir)?;
                self.write_metadata_with(name, config)
            });
        if let Err(e) = result {
            unstage();
            return Err(e);
        }
        // Committed.
        let opened = (|| {
            for p in new.clone() {
                let (from, to) = (staged(p), partition_dir(dir, name, p));
                std::fs::rename(&from, &to)
                    .map_err(|e| Error::io("move partition into place", &to, e))?;
            }
            crate::fs::sync_dir(dir)?;
            let _ = std::fs::remove_dir(&staging);
            new.clone()
                .map(|p| open_partition(dir, name, p, config).map(Arc::new))
                .collect::<Result<Vec<_>>>()
        })();
        match opened {
            Ok(parts) => Ok(parts),
            Err(e) => {
                // Undo the commit, so that the metadata matches what this process serves, then
                // remove what this call created (through a marked directory, like a delete).
                // Should the undo fail, the metadata names partitions whose directories are in
                // place or staged, which the next open completes.
                let undone = match self.topics.find(name) {
                    Some(t) => self.write_metadata_with(name, &t.config),
                    None => {
                        let topics = self.topics.snapshot();
                        self.write_metadata(&topics)
                    }
                };
                if undone.is_ok() {
                    let discard = dir.join(layout::marker_name(layout::DELETED_SUFFIX));
                    if std::fs::create_dir(&discard).is_ok() {
                        for p in new.clone() {
                            let from = partition_dir(dir, name, p);
                            let _ = std::fs::rename(&from, discard.join(format!("{name}-{p}")));
                        }
                        let _ = crate::fs::sync_dir(dir);
                        let _ = std::fs::remove_dir_all(&discard);
                    }
                    unstage();
                }
                tracing::warn!(
                    target: "riverbed::store",
                    topic = name,
                    error = %e,
                    "creating partitions failed after the metadata named them; undone"
                );
                Err(e)
            }
        }
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
        let topics: Vec<Arc<Topic>> = self.topics.all();
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
/// where the coordinator durably decided to commit, abort everywhere else. A full disk does not
/// fail the open: the markers that do not fit are written by the maintenance thread once there
/// is room (see [`Coordinator::complete_recovered`]).
fn recover_transactions(
    topics: &HashMap<String, Arc<Topic>>,
    offsets: &OffsetStore,
    txns: &Coordinator,
    decisions: &HashMap<String, crate::coordinator::txn::TxnRecord>,
) -> Result<()> {
    use crate::coordinator::txn::Target;
    let by_pid: HashMap<i64, &crate::coordinator::txn::TxnRecord> =
        decisions.values().map(|r| (r.producer_id, r)).collect();
    let mut markers = Vec::new();
    for t in topics.values() {
        for p in t.partitions.read().iter() {
            let target = Target::Partition(Arc::clone(p));
            markers.extend(Coordinator::recovery_markers(&target, &by_pid, offsets));
        }
    }
    markers.extend(Coordinator::recovery_markers(
        &Target::Offsets,
        &by_pid,
        offsets,
    ));
    txns.complete_recovered(decisions, markers, offsets)
}
