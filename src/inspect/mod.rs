//! Read-only inspection of a data directory, for tools such as the `riverbed` command: views of
//! a store, its topics, partitions, committed offsets and group members; a batch-by-batch dump
//! of segment and index files; a full verification of every file.
//!
//! Nothing here takes the directory's lock or writes a byte, so all of it works on a directory
//! that an application has open. Files are read with `pread`, never mapped (a mapped file that
//! another process writes or cuts is not something Rust code may borrow). What a view shows is
//! consistent up to what the writer had written when the view was opened: see [`PartitionView`].
//!
//! ```
//! use riverbed::{inspect::StoreView, ProducerRecord, Store, TopicConfig};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! store.create_topic("events", TopicConfig::new(2))?;
//! store.producer().send(ProducerRecord::new("events").partition(1).value("x"))?;
//!
//! let view = StoreView::open(dir.path())?;                  // while `store` is open
//! let d = view.describe_topic("events")?;
//! assert_eq!(d.partitions[1].log_end_offset, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod dump;
mod lock;
pub(crate) mod scanner;
mod verify;
mod view;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use dump::{dump_file, BatchSummary, DumpItem, IndexEntrySummary};
pub use lock::{lock_state, LockState};
pub use verify::{verify, Problem, Severity, VerifyProgress, VerifyReport};
pub use view::{PartitionView, SegmentSummary, ViewReader};

use crate::consumer::offsets::{decode_key, decode_value, OffsetAndMetadata};
use crate::error::{Error, ErrorKind, Result};
use crate::group::{published, GroupDescription};
use crate::store::{partition_dir, PartitionDescription, TopicDescription, OFFSETS_DIR};
use crate::topic::{self, TopicConfig, TopicPartition};

/// Decodes one record of the committed-offsets log (the `__consumer_offsets-0` directory,
/// FORMAT.md): the group and partition its key names and the offset its value commits (`None`
/// for a tombstone: the offset was deleted). What `riverbed dump --offsets-decoder` prints.
///
/// # Errors
/// [`Corruption`](ErrorKind::Corruption) if the key or value is not in the format.
pub fn decode_committed_offset(
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<(String, TopicPartition, Option<OffsetAndMetadata>)> {
    let (group, tp) = decode_key(key)?;
    let value = value.map(decode_value).transpose()?;
    Ok((group, tp, value))
}

/// A read-only view of a store directory: its topics as the metadata file names them.
#[derive(Clone, Debug)]
pub struct StoreView {
    dir: PathBuf,
    topics: BTreeMap<String, TopicConfig>,
}

/// Committed offsets of every group: `(group, partition) -> offset`.
pub type CommittedOffsets = BTreeMap<(String, TopicPartition), OffsetAndMetadata>;

impl StoreView {
    /// Reads the store's topic metadata. A directory without a `topics` file and without
    /// partition directories is a store without topics.
    ///
    /// # Errors
    /// [`Io`](ErrorKind::Io) if `dir` is not a readable directory;
    /// [`Corruption`](ErrorKind::Corruption) if the metadata file is damaged;
    /// [`MetadataMismatch`](ErrorKind::MetadataMismatch) if it is missing while partition
    /// directories exist (their data is not hidden behind an empty topic list).
    pub fn open(dir: impl AsRef<Path>) -> Result<StoreView> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::read_dir(&dir).map_err(|e| Error::io("open store directory", &dir, e))?;
        let meta = dir.join(topic::METADATA_FILE);
        let topics = match std::fs::read(&meta) {
            Ok(bytes) => topic::decode_metadata(&bytes, &meta)?.into_iter().collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let unaccounted = crate::store::layout::partition_dirs(&dir)?;
                if !unaccounted.is_empty() {
                    return Err(ErrorKind::MetadataMismatch {
                        metadata: meta,
                        metadata_missing: true,
                        unaccounted,
                        missing: Vec::new(),
                    }
                    .into());
                }
                BTreeMap::new()
            }
            Err(e) => return Err(Error::io("read topic metadata", &meta, e)),
        };
        Ok(StoreView { dir, topics })
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Names of all topics, sorted.
    pub fn topics(&self) -> Vec<String> {
        self.topics.keys().cloned().collect()
    }

    /// A topic's configuration.
    ///
    /// # Errors
    /// [`UnknownTopic`](ErrorKind::UnknownTopic).
    pub fn topic_config(&self, name: &str) -> Result<&TopicConfig> {
        self.topics.get(name).ok_or_else(|| {
            ErrorKind::UnknownTopic {
                topic: name.to_string(),
            }
            .into()
        })
    }

    /// A view of one partition.
    ///
    /// # Errors
    /// [`UnknownTopic`](ErrorKind::UnknownTopic), [`UnknownPartition`](ErrorKind::UnknownPartition),
    /// or an error of [`PartitionView::open`].
    pub fn partition(&self, topic: &str, partition: u32) -> Result<PartitionView> {
        let partitions = self.topic_config(topic)?.partitions;
        if partition >= partitions {
            return Err(ErrorKind::UnknownPartition {
                topic: topic.to_string(),
                partition,
                partitions,
            }
            .into());
        }
        PartitionView::open(partition_dir(&self.dir, topic, partition))
    }

    /// A topic's configuration and the state of its partitions. Reads no more than the end of
    /// each active segment past its last index entry.
    ///
    /// # Errors
    /// As [`partition`](Self::partition).
    pub fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let config = self.topic_config(name)?.clone();
        let mut partitions = Vec::with_capacity(config.partitions as usize);
        for p in 0..config.partitions {
            let v = self.partition(name, p)?;
            partitions.push(PartitionDescription {
                partition: p,
                log_start_offset: v.log_start_offset(),
                log_end_offset: v.log_end_offset(),
                size_bytes: v.size_bytes(),
                segments: v.segments().len(),
            });
        }
        Ok(TopicDescription {
            name: name.to_string(),
            config,
            partitions,
        })
    }

    /// Every group's committed offsets, replayed from the offsets log.
    ///
    /// # Errors
    /// [`Corruption`](ErrorKind::Corruption) if a commit record is damaged; [`Io`](ErrorKind::Io).
    pub fn committed_offsets(&self) -> Result<CommittedOffsets> {
        let mut state = CommittedOffsets::new();
        let dir = self.dir.join(OFFSETS_DIR);
        if !dir.exists() {
            return Ok(state);
        }
        let view = PartitionView::open(&dir)?;
        let mut reader = view.reader(view.log_start_offset())?;
        while let Some(batch) = reader.next_batch()? {
            for r in batch.records()?.iter() {
                let r = r?;
                let Some(key) = r.key() else { continue };
                let at = |e: Error| e.in_file(&dir, 0);
                let key = decode_key(key).map_err(at)?;
                match r.value() {
                    Some(v) => {
                        state.insert(key, decode_value(v).map_err(at)?);
                    }
                    None => {
                        state.remove(&key);
                    }
                }
            }
        }
        Ok(state)
    }

    /// The groups with live members: those the process holding the store's lock published.
    /// Empty when no process holds the store (membership lives only in the process that has the
    /// store open).
    ///
    /// # Errors
    /// [`Io`](ErrorKind::Io) if the membership file exists but cannot be read.
    pub fn live_groups(&self) -> Result<Vec<GroupDescription>> {
        let path = self.dir.join(published::FILE_NAME);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("read group membership", &path, e)),
        };
        let Some((pid, groups)) = published::decode(&bytes) else {
            return Ok(Vec::new());
        };
        Ok(if self.is_live_writer(pid) {
            groups
        } else {
            Vec::new()
        })
    }

    /// The Kafka wire fronts serving the store, as the process holding its lock last published
    /// them (every second; see `riverbed::server`). Empty when no server runs.
    ///
    /// # Errors
    /// [`Io`](ErrorKind::Io) if the file exists but cannot be read.
    pub fn live_servers(&self) -> Result<Vec<crate::store::ServerMetrics>> {
        let path = self.dir.join(crate::store::server_metrics::FILE_NAME);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("read server metrics", &path, e)),
        };
        let Some((pid, servers)) = crate::store::server_metrics::decode(&bytes) else {
            return Ok(Vec::new());
        };
        Ok(if self.is_live_writer(pid) {
            servers
        } else {
            Vec::new()
        })
    }

    /// Whether `pid`, the writer of a published file, still holds the store.
    fn is_live_writer(&self, pid: u32) -> bool {
        match lock_state(&self.dir) {
            LockState::Held { pid: holder } => holder.is_none_or(|h| h == pid),
            LockState::Free => false,
            LockState::Unknown { .. } => Path::new(&format!("/proc/{pid}")).exists(),
        }
    }

    /// Who holds the store's lock.
    pub fn lock_state(&self) -> LockState {
        lock_state(&self.dir)
    }
}
