//! Topics and partitions at run time: the layer between the store (which opens, creates and
//! deletes them) and the logs. A [`Topic`] is its configuration and its open partitions; a
//! [`Partition`] is one log and the [`ProduceQueue`] that coalesces concurrent sends to it;
//! [`Notify`] wakes pollers when anything is appended. The producer, the consumer and the
//! transaction coordinator reach logs through this layer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::error::{ErrorKind, Result};
use crate::log::Log;
use crate::partitioner::Sticky;
use crate::topic::{TopicConfig, TopicPartition};

mod notify;
mod queue;
mod registry;

pub(crate) use notify::Notify;
pub(crate) use queue::ProduceQueue;
pub(crate) use registry::Registry;

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

pub(crate) fn partition_dir(dir: &Path, topic: &str, partition: u32) -> PathBuf {
    dir.join(format!("{topic}-{partition}"))
}

pub(crate) fn open_partition(
    dir: &Path,
    name: &str,
    p: u32,
    config: &TopicConfig,
) -> Result<Partition> {
    let pdir = partition_dir(dir, name, p);
    Ok(Partition {
        tp: TopicPartition::new(name, p),
        log: Log::open(&pdir, config.log.clone())?,
        queue: ProduceQueue::default(),
    })
}

pub(crate) fn open_topic(dir: &Path, name: &str, config: TopicConfig) -> Result<Topic> {
    let mut parts = Vec::with_capacity(config.partitions as usize);
    for p in 0..config.partitions {
        parts.push(Arc::new(open_partition(dir, name, p, &config)?));
    }
    Ok(Topic {
        name: name.to_string(),
        config,
        partitions: RwLock::new(Arc::new(parts)),
        sticky: Sticky::default(),
    })
}
