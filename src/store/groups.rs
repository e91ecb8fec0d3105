//! The store's consumer groups as users see them: listing and describing groups, their
//! committed offsets, deleting them. The membership protocol itself is in `group`; what a
//! consumer does in a group is in `consumer`.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::Store;
use crate::coordinator::offsets::OffsetAndMetadata;
#[cfg(doc)]
use crate::error::ErrorKind;
use crate::error::{Error, Result};
use crate::group::{Group, GroupDescription};
use crate::topic::TopicPartition;

impl Store {
    /// The group `name`, made (empty) if this process has not seen it yet.
    pub(crate) fn group(&self, name: &str) -> Arc<Group> {
        Arc::clone(
            self.inner
                .groups
                .lock()
                .entry(name.to_string())
                .or_insert_with(|| Arc::new(Group::with_counter(name, self.inner.group_counter()))),
        )
    }

    /// Names of the groups that have members or committed offsets, sorted.
    pub fn list_groups(&self) -> Vec<String> {
        let mut names: BTreeSet<String> = self.inner.offsets.groups().into_iter().collect();
        names.extend(
            self.inner
                .groups
                .lock()
                .iter()
                .filter(|(_, g)| !g.is_empty())
                .map(|(n, _)| n.clone()),
        );
        names.into_iter().collect()
    }

    /// A group's members and their partitions.
    pub fn describe_group(&self, group: &str) -> GroupDescription {
        self.group(group).describe()
    }

    /// A group's committed offsets.
    pub fn committed_offsets(&self, group: &str) -> Vec<(TopicPartition, OffsetAndMetadata)> {
        self.inner.offsets.group_offsets(group)
    }

    /// Deletes a group's committed offsets (Kafka's `deleteConsumerGroups`), in one atomic
    /// commit. Returns how many partitions it had offsets for.
    ///
    /// # Errors
    /// [`InvalidArgument`](ErrorKind::InvalidArgument) while the group has members (a group in
    /// use cannot be deleted, as in Kafka); [`Io`](ErrorKind::Io).
    pub fn delete_group(&self, group: &str) -> Result<usize> {
        let g = self.group(group);
        if !g.is_empty() {
            return Err(Error::invalid(format!(
                "group {group:?} has active members; close them first"
            )));
        }
        let doomed: Vec<(TopicPartition, Option<OffsetAndMetadata>)> = self
            .inner
            .offsets
            .group_offsets(group)
            .into_iter()
            .map(|(tp, _)| (tp, None))
            .collect();
        self.inner.offsets.commit(group, &doomed)?;
        Ok(doomed.len())
    }

    /// Deletes a group's committed offsets of some partitions (Kafka's
    /// `deleteConsumerGroupOffsets`), in one atomic commit; the group keeps its other offsets.
    /// Returns how many of `partitions` had an offset.
    ///
    /// # Errors
    /// [`InvalidArgument`](ErrorKind::InvalidArgument) while the group has members (Kafka
    /// refuses to delete the offsets of partitions a live group consumes); [`Io`](ErrorKind::Io).
    pub fn delete_committed_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<usize> {
        if !self.group(group).is_empty() {
            return Err(Error::invalid(format!(
                "group {group:?} has active members; close them first"
            )));
        }
        let doomed: Vec<(TopicPartition, Option<OffsetAndMetadata>)> = partitions
            .iter()
            .filter(|tp| self.inner.offsets.committed(group, tp).is_some())
            .map(|tp| (tp.clone(), None))
            .collect();
        if !doomed.is_empty() {
            self.inner.offsets.commit(group, &doomed)?;
        }
        Ok(doomed.len())
    }
}
