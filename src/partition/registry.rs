//! [`Registry`]: the open topics by name.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use super::{Partition, Topic};
use crate::error::{ErrorKind, Result};
use crate::topic::TopicPartition;

/// The open topics by name. Lookups clone an `Arc` under a short read lock; a change (made by
/// the store under its admin lock) builds the next map from a [`snapshot`](Self::snapshot) and
/// swaps it in with [`replace`](Self::replace), so a reader never sees a half-made change.
pub(crate) struct Registry {
    topics: RwLock<HashMap<String, Arc<Topic>>>,
}

impl Registry {
    pub fn new(topics: HashMap<String, Arc<Topic>>) -> Registry {
        Registry {
            topics: RwLock::new(topics),
        }
    }

    /// The topic `name`, or [`UnknownTopic`](ErrorKind::UnknownTopic).
    pub fn get(&self, name: &str) -> Result<Arc<Topic>> {
        self.find(name).ok_or_else(|| {
            ErrorKind::UnknownTopic {
                topic: name.to_string(),
            }
            .into()
        })
    }

    /// The topic `name`, if open.
    pub fn find(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    /// An open partition, or [`UnknownTopic`](ErrorKind::UnknownTopic) /
    /// [`UnknownPartition`](ErrorKind::UnknownPartition).
    pub fn partition(&self, tp: &TopicPartition) -> Result<Arc<Partition>> {
        self.get(&tp.topic)?.partition(tp.partition)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.topics.read().contains_key(name)
    }

    /// Every open topic, in no particular order.
    pub fn all(&self) -> Vec<Arc<Topic>> {
        self.topics.read().values().cloned().collect()
    }

    /// The names of the open topics, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.topics.read().keys().cloned().collect();
        v.sort();
        v
    }

    /// A copy of the map, to build the next one from.
    pub fn snapshot(&self) -> HashMap<String, Arc<Topic>> {
        self.topics.read().clone()
    }

    /// Swaps in the next map.
    pub fn replace(&self, next: HashMap<String, Arc<Topic>>) {
        *self.topics.write() = next;
    }
}
