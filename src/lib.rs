//! Riverbed: Kafka's partitioned, append-only log as an embedded Rust library.
//!
//! Open a [`Store`] on a directory, create topics, send records with a [`Producer`] and read them
//! with a [`Consumer`], which commits its position for its group so that whoever owns the
//! partition next resumes there. A [`TransactionalProducer`] makes sends and offset commits
//! visible atomically, and [`streams`] is a Kafka-Streams-like layer on top.
//!
//! ```
//! use std::time::Duration;
//! use riverbed::{ConsumerConfig, OffsetReset, ProducerRecord, Store, TopicConfig};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! store.create_topic_if_absent("payments", TopicConfig::new(3))?;
//!
//! let producer = store.producer();
//! for (account, amount) in [("alice", "+50"), ("bob", "-20"), ("alice", "+25")] {
//!     producer.send(ProducerRecord::new("payments").key(account).value(amount))?;
//! }
//!
//! let mut consumer = store.consumer(
//!     ConsumerConfig::new("balances").auto_offset_reset(OffsetReset::Earliest),
//! )?;
//! consumer.subscribe(&["payments"])?;
//! let mut alice = Vec::new();
//! for r in consumer.poll(Duration::from_secs(1))?.iter() {
//!     if r.key() == Some(b"alice") {
//!         alice.push(String::from_utf8_lossy(r.value().unwrap()).into_owned());
//!     }
//! }
//! assert_eq!(alice, ["+50", "+25"]); // one key, one partition, in order
//! consumer.commit()?;
//! drop(consumer);
//! store.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Underneath, each partition is a [`Log`]: a sequence of memory-mapped segment files named by
//! their base offset, each with a sparse offset index and a time index beside it. The log
//! assigns offsets, rolls segments at [`LogConfig::segment_bytes`], fsyncs per its
//! [`FlushPolicy`] (concurrent appenders share one fsync), deletes old segments per its
//! retention settings, and after a crash cuts a torn tail at the first batch whose CRC fails.
//! Readers get [`BatchView`]s, zero-copy views into the mapped files that stay valid while
//! segments roll or are deleted. A `Log` can be used on its own (see its docs).
//!
//! FORMAT.md specifies every byte on disk; ARCHITECTURE.md maps the modules.

mod clock;
mod config;
/// The Rust snippets of README.md, compiled and run as doc tests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The shape of the public API (ARCHITECTURE.md, "Configuration style"), as doc tests that
/// must not compile: a configuration cannot be built as a struct literal (its fields are
/// private, so adding a setting breaks nobody), and a report cannot be built or matched
/// without `..` (it is `#[non_exhaustive]`, so adding a field breaks nobody).
///
/// ```compile_fail
/// let c = riverbed::LogConfig { segment_bytes: 1 << 20, ..Default::default() };
/// ```
///
/// ```compile_fail
/// let c = riverbed::ConsumerConfig { max_poll_records: 10, ..Default::default() };
/// ```
///
/// ```compile_fail
/// let m = riverbed::RecordMetadata { topic: "t".into(), partition: 0, offset: 0, timestamp: 0 };
/// ```
///
/// ```compile_fail
/// fn f(m: riverbed::RecordMetadata) -> u64 {
///     let riverbed::RecordMetadata { topic: _, partition: _, offset, timestamp: _ } = m;
///     offset
/// }
/// ```
///
/// ```compile_fail
/// fn f(c: riverbed::Compression) -> &'static str {
///     match c {
///         riverbed::Compression::None => "none",
///         riverbed::Compression::Zstd { .. } => "zstd",
///     }
/// }
/// ```
///
/// And the setters and getters that replace the literals:
///
/// ```
/// let c = riverbed::LogConfig::default().segment_bytes(1 << 20).retention_ms(None);
/// assert_eq!((c.get_segment_bytes(), c.get_retention_ms()), (1 << 20, None));
/// ```
#[cfg(doctest)]
pub struct ApiShapeDoctests;
mod consumer;
mod coordinator;
mod error;
#[cfg(feature = "failpoints")]
pub mod failpoint;
#[cfg(not(feature = "failpoints"))]
mod failpoint;
mod fs;
mod group;
pub mod inspect;
mod log;
mod partition;
mod partitioner;
mod producer;
mod record;
mod segment;
#[cfg(feature = "server")]
pub mod server;
mod small_file;
mod store;
pub mod streams;
mod topic;
mod topic_partition;
mod txn;

pub use config::{CleanupPolicy, FlushPolicy, LogConfig, RecoveryMode};
pub use consumer::{
    Consumer, ConsumerConfig, ConsumerGroupMetadata, ConsumerRecord, ConsumerRecords,
    IsolationLevel, OffsetAndMetadata, OffsetAndTimestamp, OffsetReset, RebalanceListener,
};
pub use error::{Error, ErrorKind, Result};
pub use group::assignor::Assignor;
pub use group::GroupDescription;
pub use log::{
    AbortedTxn, AppendInfo, CommittedRead, CompactionConfig, CompactionMetrics, CompactionReport,
    FsyncMetrics, LatencyHistogram, Log, LogMetrics, Rate, RecoveryReport, RetentionReport,
    Truncation,
};
pub use partitioner::{murmur2, partition_for_key};
pub use producer::{Producer, ProducerConfig, ProducerRecord, RecordMetadata};
pub use record::{
    codec::Layout as BatchLayout, BatchBuilder, BatchRef, Compression, ControlType, HeaderIter,
    ProducerFields, RecordBatch, RecordIter, RecordView, Records, TimestampType,
};
pub use segment::BatchView;
pub use store::{
    ApiMetrics, CleanerConfig, GroupMetrics, GroupPartitionLag, MetadataRebuild, Metrics,
    PartitionDescription, PartitionMetrics, RebuildOptions, RebuiltTopic, ServerMetrics, Store,
    StoreConfig, TopicDescription,
};
pub use topic::{validate_topic_name, TopicConfig};
pub use topic_partition::TopicPartition;
pub use txn::{TransactionConfig, TransactionalProducer};

/// Building blocks below the public API, for the benchmarks, fuzz targets and inspection tools.
/// Not covered by semver.
#[cfg(feature = "internals")]
pub mod internals {
    pub use crate::log::checkpoint::Checkpoint;
    pub use crate::record::codec::{self, BatchHeader};
    pub use crate::record::kafka;
    pub use crate::segment::file_header::{self, FileKind, FILE_HEADER_LEN};
    pub use crate::segment::index;
    pub use crate::segment::scan::{scan, ScanEnd};

    /// The decoders (and encoders) of the store's small files, for the fuzz targets:
    /// `producer-state` snapshots (FORMAT.md 5.2), `.txnindex` files (4.3), the `topics` file
    /// (8.1) and streams checkpoint snapshots (8.5), with plain types in and out.
    pub mod files {
        use std::collections::BTreeMap;
        use std::path::Path;

        use crate::log::producer_state::{self, AbortedTxn, ProducerStates};
        use crate::{Result, TopicConfig};

        /// A `producer-state` file: the offset it was taken at, and its state encoded again
        /// (with every aborted transaction it holds and no sealed segments).
        pub fn decode_producer_state(bytes: &[u8]) -> Result<(u64, Vec<u8>)> {
            let s = ProducerStates::decode_snapshot(bytes)?;
            Ok((s.offset, s.state.encode_snapshot(s.offset, 0, &[])))
        }

        /// A `.txnindex` file of the segment `base..next`: `(producer id, first offset, marker
        /// offset)` per aborted transaction.
        pub fn decode_txn_index(
            bytes: &[u8],
            base: u64,
            next: u64,
        ) -> Result<Vec<(i64, u64, u64)>> {
            Ok(
                producer_state::decode_txn_index(bytes, Path::new(".txnindex"), base, next)?
                    .into_iter()
                    .map(|a| (a.producer_id, a.first_offset, a.last_offset))
                    .collect(),
            )
        }

        /// Encodes a `.txnindex` file of the segment at `base`.
        pub fn encode_txn_index(base: u64, entries: &[(i64, u64, u64)]) -> Vec<u8> {
            let entries: Vec<AbortedTxn> = entries
                .iter()
                .map(|&(producer_id, first_offset, last_offset)| AbortedTxn {
                    producer_id,
                    first_offset,
                    last_offset,
                })
                .collect();
            producer_state::encode_txn_index(base, &entries)
        }

        /// The `topics` file.
        pub fn decode_topics(bytes: &[u8]) -> Result<Vec<(String, TopicConfig)>> {
            crate::topic::decode_metadata(bytes, Path::new("topics"))
        }

        /// Encodes a `topics` file.
        pub fn encode_topics(topics: &[(String, TopicConfig)]) -> Vec<u8> {
            crate::topic::encode_metadata(topics.iter().map(|(n, c)| (n.as_str(), c)))
        }

        /// A streams checkpoint snapshot of partition `partition` of `changelog`: `(offset,
        /// read_committed, written_ms, entries)`.
        #[allow(clippy::type_complexity)]
        pub fn decode_streams_checkpoint(
            bytes: &[u8],
            changelog: &str,
            partition: u32,
        ) -> Result<(u64, bool, i64, BTreeMap<Vec<u8>, Vec<u8>>)> {
            let s = crate::streams::state::checkpoint::decode(bytes, changelog, partition)?;
            Ok((s.offset, s.read_committed, s.written_ms, s.data))
        }

        /// Encodes a streams checkpoint snapshot.
        pub fn encode_streams_checkpoint(
            changelog: &str,
            partition: u32,
            offset: u64,
            read_committed: bool,
            written_ms: i64,
            entries: &BTreeMap<Vec<u8>, Vec<u8>>,
        ) -> Result<Vec<u8>> {
            crate::streams::state::checkpoint::encode(
                changelog,
                partition,
                offset,
                read_committed,
                written_ms,
                entries,
            )
        }
    }
}
