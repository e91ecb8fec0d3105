//! Riverbed: Kafka's partitioned, append-only log as an embedded Rust library.
//!
//! The storage core is the [`Log`]: one partition, kept as a sequence of memory-mapped segment
//! files named by their base offset, each with a sparse offset index and a time index beside it.
//! A producer builds a [`RecordBatch`] with a [`BatchBuilder`] and appends it; the log assigns
//! offsets, rolls segments at [`LogConfig::segment_bytes`], fsyncs per its [`FlushPolicy`]
//! (concurrent appenders share one fsync), deletes old segments per its retention settings, and
//! after a crash cuts a torn tail at the first batch whose CRC fails. Readers get [`BatchView`]s,
//! zero-copy views into the mapped files that stay valid while segments roll or are deleted.
//!
//! ```
//! use riverbed::{BatchBuilder, Compression, Log, LogConfig};
//!
//! let dir = tempfile::tempdir()?;
//! let log = Log::open(dir.path(), LogConfig::default())?;
//! for i in 0..3u8 {
//!     let mut b = BatchBuilder::new(Compression::None);
//!     b.append(1_700_000_000_000 + i64::from(i), Some(&[i]), Some(b"payload"), &[]);
//!     log.append(&b.build()?)?;
//! }
//! log.flush()?;
//! let mut offsets = Vec::new();
//! for batch in log.read(1, 1 << 20)? {
//!     for record in batch.records()?.iter() {
//!         offsets.push(record?.offset());
//!     }
//! }
//! assert_eq!(offsets, [1, 2]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! FORMAT.md specifies every byte on disk; ARCHITECTURE.md maps the modules.

mod config;
mod consumer;
mod error;
mod fs;
mod group;
pub mod inspect;
mod log;
mod metrics;
mod partitioner;
mod producer;
mod record;
mod segment;
mod store;
pub mod streams;
mod topic;
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
    AbortedTxn, AppendInfo, CommittedRead, CompactionConfig, CompactionReport, Log, RecoveryReport,
    RetentionReport, Truncation,
};
pub use metrics::{
    CompactionMetrics, FsyncMetrics, GroupMetrics, GroupPartitionLag, LatencyHistogram, LogMetrics,
    Metrics, PartitionMetrics, Rate,
};
pub use partitioner::{murmur2, partition_for_key};
pub use producer::{Producer, ProducerConfig, Record, RecordMetadata};
pub use record::{
    BatchBuilder, BatchRef, Compression, ControlType, HeaderIter, ProducerFields, RecordBatch,
    RecordIter, RecordView, Records, TimestampType,
};
pub use segment::BatchView;
pub use store::{CleanerConfig, PartitionDescription, Store, StoreConfig, TopicDescription};
pub use topic::{validate_topic_name, TopicConfig, TopicPartition};
pub use txn::{TransactionConfig, TransactionalProducer};

/// Building blocks below the public API, for the benchmarks, fuzz targets and inspection tools.
/// Not covered by semver.
#[cfg(feature = "internals")]
pub mod internals {
    pub use crate::log::checkpoint::Checkpoint;
    pub use crate::record::codec::{self, BatchHeader};
    pub use crate::segment::file_header::{self, FileKind, FILE_HEADER_LEN};
    pub use crate::segment::index;
    pub use crate::segment::scan::{scan, ScanEnd};
}
