//! The store-wide metrics report: [`Store::metrics`] gathers every partition's
//! [`LogMetrics`] (kept by the log, `log::metrics`) and every group's
//! committed offsets and lag.

use crate::log::{FsyncMetrics, LogMetrics};
use crate::topic::TopicPartition;
use crate::Store;

/// A snapshot of one topic partition.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PartitionMetrics {
    /// The partition.
    pub partition: TopicPartition,
    /// Its log.
    pub log: LogMetrics,
}

/// One partition of a group: committed offset, end offset, lag.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupPartitionLag {
    /// The partition.
    pub partition: TopicPartition,
    /// The group's committed offset, if any.
    pub committed: Option<u64>,
    /// The partition's end offset.
    pub log_end_offset: u64,
    /// Records between the committed offset (or the log start) and the end.
    pub lag: u64,
}

/// A snapshot of one consumer group.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupMetrics {
    /// Group id.
    pub group: String,
    /// Members in this process.
    pub members: usize,
    /// Current generation.
    pub generation: u32,
    /// Whether a rebalance is under way.
    pub rebalancing: bool,
    /// Every partition the group has committed offsets for or is assigned.
    pub partitions: Vec<GroupPartitionLag>,
    /// Sum of the partitions' lag.
    pub total_lag: u64,
}

/// A snapshot of a whole store: see [`Store::metrics`](crate::Store::metrics).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Metrics {
    /// Wall-clock time of the snapshot, ms since the Unix epoch.
    pub taken_at_ms: i64,
    /// Every topic partition, sorted.
    pub partitions: Vec<PartitionMetrics>,
    /// fsyncs of every log of the store (the committed offsets log included).
    pub fsync: FsyncMetrics,
    /// Every group with members or committed offsets, sorted.
    pub groups: Vec<GroupMetrics>,
    /// The Kafka wire fronts serving the store (`riverbed::server`, feature `server`): their
    /// connections, bytes, and requests, errors and latency per API.
    pub servers: Vec<super::server_metrics::ServerMetrics>,
}

impl Store {
    /// A snapshot of the store's figures: per partition offsets, size, append and read counters;
    /// fsync count and latency; per group members, committed offsets and lag.
    ///
    /// Cheap: it reads counters and offsets, never the log files.
    ///
    /// ```
    /// use riverbed::{ProducerRecord, Store, TopicConfig};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// store.create_topic("t", TopicConfig::new(1))?;
    /// store.producer().send(ProducerRecord::new("t").value("v"))?;
    /// let m = store.metrics();
    /// assert_eq!(m.partitions[0].log.log_end_offset, 1);
    /// assert_eq!(m.partitions[0].log.appended_records, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn metrics(&self) -> Metrics {
        let inner = &self.inner;
        let mut topics: Vec<_> = inner.topics.all();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        let mut partitions = Vec::new();
        let mut fsync = FsyncMetrics::default();
        for t in &topics {
            for p in t.partitions.read().iter() {
                let log = p.log.metrics();
                fsync.merge(&log.fsync);
                partitions.push(PartitionMetrics {
                    partition: p.tp.clone(),
                    log,
                });
            }
        }
        fsync.merge(&inner.offsets.log_metrics().fsync);
        let mut groups = Vec::new();
        for name in self.list_groups() {
            let d = self.describe_group(&name);
            let mut parts: std::collections::BTreeMap<TopicPartition, Option<u64>> = self
                .committed_offsets(&name)
                .into_iter()
                .map(|(tp, o)| (tp, Some(o.offset)))
                .collect();
            for (_, assigned) in &d.members {
                for tp in assigned {
                    parts.entry(tp.clone()).or_insert(None);
                }
            }
            let mut lags = Vec::new();
            for (tp, committed) in parts {
                let Ok(p) = inner.partition(&tp) else {
                    continue;
                };
                let (start, end) = (p.log.log_start_offset(), p.log.high_watermark());
                lags.push(GroupPartitionLag {
                    lag: end.saturating_sub(committed.unwrap_or(start).max(start)),
                    partition: tp,
                    committed,
                    log_end_offset: end,
                });
            }
            groups.push(GroupMetrics {
                total_lag: lags.iter().map(|l| l.lag).sum(),
                group: name,
                members: d.members.len(),
                generation: d.generation,
                rebalancing: d.rebalancing,
                partitions: lags,
            });
        }
        Metrics {
            taken_at_ms: crate::clock::now_ms(),
            partitions,
            fsync,
            groups,
            servers: self.server_metrics(),
        }
    }
}
