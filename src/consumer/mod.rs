//! The consumer: reads records from its own positions and commits them.
//!
//! This module is private: the user-facing documentation (with an example) is on
//! [`Consumer`].

pub(crate) use crate::coordinator::offsets;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::group::assignor::Assignor;
use crate::group::{Checkin, Group};
use crate::log::AbortedTxn;
use crate::partition::Partition;
use crate::record::{BatchRef, ControlType, HeaderIter, RecordIter};
use crate::segment::BatchView;
use crate::store::Store;
use crate::topic::{validate_topic_name, TopicPartition};
pub use offsets::OffsetAndMetadata;

/// Where a consumer starts in a partition for which its group has no committed offset
/// (Kafka's `auto.offset.reset`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OffsetReset {
    /// The first offset still in the log.
    Earliest,
    /// The end of the log: only records produced from now on. Kafka's default.
    #[default]
    Latest,
    /// No reset. Without a committed offset or a seek, `poll` and `position` return a
    /// [`NoOffset`](ErrorKind::NoOffset) error; a committed or sought position outside the log
    /// (below its start, or past its end) makes `poll` return
    /// [`OffsetOutOfRange`](ErrorKind::OffsetOutOfRange) naming the partition and the valid
    /// range, and the position stays until a seek (Kafka's `NoOffsetForPartitionException` and
    /// `OffsetOutOfRangeException`).
    None,
}

/// An offset found by [`Consumer::offsets_for_times`], with its record's timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OffsetAndTimestamp {
    /// The offset.
    pub offset: u64,
    /// The record's timestamp.
    pub timestamp: i64,
}

impl OffsetAndTimestamp {
    /// An offset and its record's timestamp (Kafka's `new OffsetAndTimestamp(offset, timestamp)`).
    pub fn new(offset: u64, timestamp: i64) -> OffsetAndTimestamp {
        OffsetAndTimestamp { offset, timestamp }
    }
}

/// Consumer settings. Defaults follow Kafka's consumer.
///
/// Built from `ConsumerConfig::default()` with one setter per setting, e.g.
/// `ConsumerConfig::default().max_poll_records(..)`, and read with
/// the `get_` getters (see ARCHITECTURE.md, "Configuration style").
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    pub(crate) group_id: Option<String>,
    pub(crate) auto_offset_reset: OffsetReset,
    pub(crate) max_poll_records: usize,
    pub(crate) max_partition_fetch_bytes: usize,
    pub(crate) max_poll_interval: Duration,
    pub(crate) assignor: Assignor,
    pub(crate) enable_auto_commit: bool,
    pub(crate) auto_commit_interval: Duration,
    pub(crate) isolation_level: IsolationLevel,
}

impl ConsumerConfig {
    /// The group the consumer commits for (and, with `subscribe`, shares partitions with).
    /// Default: none (`assign` only, no commits).
    #[must_use = "a setter returns the changed configuration"]
    pub fn group_id(mut self, group_id: Option<String>) -> ConsumerConfig {
        self.group_id = group_id;
        self
    }

    /// Where to start without a committed offset. Default: [`OffsetReset::Latest`].
    #[must_use = "a setter returns the changed configuration"]
    pub fn auto_offset_reset(mut self, auto_offset_reset: OffsetReset) -> ConsumerConfig {
        self.auto_offset_reset = auto_offset_reset;
        self
    }

    /// Most records one `poll` returns. Default: 500.
    #[must_use = "a setter returns the changed configuration"]
    pub fn max_poll_records(mut self, max_poll_records: usize) -> ConsumerConfig {
        self.max_poll_records = max_poll_records;
        self
    }

    /// Most bytes read from one partition per `poll` (at least one batch is read). Default: 1 MiB
    /// (`max.partition.fetch.bytes`).
    #[must_use = "a setter returns the changed configuration"]
    pub fn max_partition_fetch_bytes(mut self, max_partition_fetch_bytes: usize) -> ConsumerConfig {
        self.max_partition_fetch_bytes = max_partition_fetch_bytes;
        self
    }

    /// A group member that does not poll for this long is removed from its group and its
    /// partitions go to others. Default: 5 minutes.
    #[must_use = "a setter returns the changed configuration"]
    pub fn max_poll_interval(mut self, max_poll_interval: Duration) -> ConsumerConfig {
        self.max_poll_interval = max_poll_interval;
        self
    }

    /// How the group divides partitions (the first member's choice wins). Default: range.
    #[must_use = "a setter returns the changed configuration"]
    pub fn assignor(mut self, assignor: Assignor) -> ConsumerConfig {
        self.assignor = assignor;
        self
    }

    /// Commit positions automatically from `poll` every `auto_commit_interval`, before a
    /// rebalance takes partitions away, and at `close`. Default: true.
    #[must_use = "a setter returns the changed configuration"]
    pub fn enable_auto_commit(mut self, enable_auto_commit: bool) -> ConsumerConfig {
        self.enable_auto_commit = enable_auto_commit;
        self
    }

    /// Default: 5 s.
    #[must_use = "a setter returns the changed configuration"]
    pub fn auto_commit_interval(mut self, auto_commit_interval: Duration) -> ConsumerConfig {
        self.auto_commit_interval = auto_commit_interval;
        self
    }

    /// Which records of transactions `poll` returns. Default: [`IsolationLevel::ReadUncommitted`]
    /// (Kafka's default).
    #[must_use = "a setter returns the changed configuration"]
    pub fn isolation_level(mut self, isolation_level: IsolationLevel) -> ConsumerConfig {
        self.isolation_level = isolation_level;
        self
    }

    /// The [`group_id`](Self::group_id) setting.
    pub fn get_group_id(&self) -> Option<&str> {
        self.group_id.as_deref()
    }

    /// The [`auto_offset_reset`](Self::auto_offset_reset) setting.
    pub fn get_auto_offset_reset(&self) -> OffsetReset {
        self.auto_offset_reset
    }

    /// The [`max_poll_records`](Self::max_poll_records) setting.
    pub fn get_max_poll_records(&self) -> usize {
        self.max_poll_records
    }

    /// The [`max_partition_fetch_bytes`](Self::max_partition_fetch_bytes) setting.
    pub fn get_max_partition_fetch_bytes(&self) -> usize {
        self.max_partition_fetch_bytes
    }

    /// The [`max_poll_interval`](Self::max_poll_interval) setting.
    pub fn get_max_poll_interval(&self) -> Duration {
        self.max_poll_interval
    }

    /// The [`assignor`](Self::assignor) setting.
    pub fn get_assignor(&self) -> Assignor {
        self.assignor
    }

    /// The [`enable_auto_commit`](Self::enable_auto_commit) setting.
    pub fn get_enable_auto_commit(&self) -> bool {
        self.enable_auto_commit
    }

    /// The [`auto_commit_interval`](Self::auto_commit_interval) setting.
    pub fn get_auto_commit_interval(&self) -> Duration {
        self.auto_commit_interval
    }

    /// The [`isolation_level`](Self::isolation_level) setting.
    pub fn get_isolation_level(&self) -> IsolationLevel {
        self.isolation_level
    }
}

/// Which transactional records a consumer sees (Kafka's `isolation.level`). Control batches
/// (transaction markers) are never returned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IsolationLevel {
    /// Every record, including those of open and aborted transactions, up to the high
    /// watermark.
    #[default]
    ReadUncommitted,
    /// Only records outside transactions and of committed transactions, up to the last stable
    /// offset (the first offset of the oldest open transaction); `seek_to_end`, `end_offsets`,
    /// `lag` and the `Latest` reset use the last stable offset too.
    ReadCommitted,
}

/// What a transactional producer needs to commit offsets for a consumer's group
/// ([`TransactionalProducer::send_offsets`](crate::TransactionalProducer::send_offsets)): the
/// group, and the member and generation whose ownership of the partitions is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerGroupMetadata {
    /// The group id.
    pub group_id: String,
    /// The generation of the member's assignment (0 without group management).
    pub generation: u32,
    /// The member id (`None` for a consumer with manually assigned partitions).
    pub member_id: Option<String>,
}

impl ConsumerGroupMetadata {
    /// The metadata of a group without a member: generation 0, no member id (Kafka's
    /// `new ConsumerGroupMetadata(groupId)`). A transactional producer committing offsets for
    /// it checks no ownership, as for a consumer with manually assigned partitions.
    pub fn new(group_id: impl Into<String>) -> ConsumerGroupMetadata {
        ConsumerGroupMetadata {
            group_id: group_id.into(),
            generation: 0,
            member_id: None,
        }
    }
}

impl Default for ConsumerConfig {
    fn default() -> ConsumerConfig {
        ConsumerConfig {
            group_id: None,
            auto_offset_reset: OffsetReset::Latest,
            max_poll_records: 500,
            max_partition_fetch_bytes: 1 << 20,
            max_poll_interval: Duration::from_secs(300),
            assignor: Assignor::Range,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            isolation_level: IsolationLevel::ReadUncommitted,
        }
    }
}

impl ConsumerConfig {
    /// A consumer in group `group_id`.
    pub fn new(group_id: impl Into<String>) -> ConsumerConfig {
        ConsumerConfig {
            group_id: Some(group_id.into()),
            ..ConsumerConfig::default()
        }
    }
}

/// Called when a group rebalance takes partitions from, or gives partitions to, this consumer
/// (Kafka's `ConsumerRebalanceListener`). Both methods receive the consumer, so a listener can
/// commit (in `on_revoked`, before the partitions go to another member) or seek (in
/// `on_assigned`).
pub trait RebalanceListener: Send {
    /// The partitions are about to be taken away. Commits made here still succeed.
    fn on_revoked(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        let _ = (consumer, partitions);
    }

    /// The partitions were taken away without warning: the consumer was removed from the group
    /// (it did not poll within `max_poll_interval`), so another member may own them already and
    /// a commit here fails. Kafka's `onPartitionsLost`; by default calls `on_revoked`.
    fn on_lost(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        self.on_revoked(consumer, partitions);
    }

    /// The partitions now belong to this consumer.
    fn on_assigned(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        let _ = (consumer, partitions);
    }
}

/// Reads records from its own positions and commits them. `Send`, not `Sync`: one thread
/// polls a consumer.
///
/// A consumer either gets partitions [`assign`](Consumer::assign)ed by hand, or
/// [`subscribe`](Consumer::subscribe)s to topics and lets its group divide their partitions among
/// the group's members (see the `group` module for the protocol). Its *position* in a partition
/// is the next offset it will read; [`poll`](Consumer::poll) returns records from the positions
/// and moves them past what it returned; [`commit`](Consumer::commit) stores the positions
/// durably for the group, so that whoever owns the partition next resumes from there.
///
/// ```
/// use std::time::Duration;
/// use riverbed::{ConsumerConfig, OffsetReset, ProducerRecord, Store, TopicConfig};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// store.create_topic("payments", TopicConfig::new(2))?;
/// store.producer().send(ProducerRecord::new("payments").key("alice").value("+50"))?;
///
/// let mut consumer = store.consumer(ConsumerConfig::new("balances").auto_offset_reset(OffsetReset::Earliest))?;
/// consumer.subscribe(&["payments"])?;
/// let records = consumer.poll(Duration::from_secs(1))?;
/// let r = records.iter().next().unwrap();
/// assert_eq!((r.topic(), r.key(), r.value()), ("payments", Some(&b"alice"[..]), Some(&b"+50"[..])));
/// consumer.commit()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Consumer {
    store: Store,
    config: ConsumerConfig,
    group: Option<Arc<Group>>,
    member: Option<String>,
    subscription: BTreeSet<String>,
    manual: bool,
    generation: u32,
    assignment: Vec<TopicPartition>,
    /// Positions by partition (a `BTreeMap`: a lookup compares a few names, where hashing a
    /// `TopicPartition` costs more than the rest of a one-record poll's bookkeeping).
    positions: BTreeMap<TopicPartition, u64>,
    paused: HashSet<TopicPartition>,
    listener: Option<Box<dyn RebalanceListener>>,
    last_auto_commit: Instant,
    rotation: usize,
    /// The batches of the current fetch, kept between polls so that a poll allocates no vector
    /// for them.
    batches: Vec<BatchView>,
    /// Topic names handed to `ConsumerRecords`, kept so that a poll allocates no name.
    topic_names: Vec<Arc<str>>,
    /// The open partitions of the assignment found by earlier polls (`parts[i]` for
    /// `assignment[i]`, checked to name it), valid while the store's metadata version is
    /// `parts_version`: every topic create, delete or partition change bumps it after the
    /// change, so a poll that loads the version and then looks a partition up never keeps a
    /// partition that was replaced.
    parts: Vec<Option<Arc<Partition>>>,
    parts_version: u64,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("group", &self.config.group_id)
            .field("member", &self.member)
            .field("assignment", &self.assignment)
            .finish()
    }
}

impl Store {
    /// A consumer with the given settings.
    ///
    /// # Errors
    /// [`InvalidConfig`](ErrorKind::InvalidConfig) for a zero `max_poll_records` or an empty
    /// group id.
    pub fn consumer(&self, config: ConsumerConfig) -> Result<Consumer> {
        if config.max_poll_interval < Duration::from_millis(1) {
            return Err(Error::config("max_poll_interval", "must be at least 1 ms"));
        }
        if config.max_poll_records == 0 {
            return Err(Error::config("max_poll_records", "must be at least 1"));
        }
        let group = match &config.group_id {
            Some(g) if g.is_empty() || g.len() > u16::MAX as usize => {
                return Err(Error::config("group_id", "must be 1 to 65535 bytes long"))
            }
            Some(g) => Some(self.group(g)),
            None => None,
        };
        Ok(Consumer {
            store: self.clone(),
            config,
            group,
            member: None,
            subscription: BTreeSet::new(),
            manual: false,
            generation: 0,
            assignment: Vec::new(),
            positions: BTreeMap::new(),
            paused: HashSet::new(),
            listener: None,
            last_auto_commit: Instant::now(),
            rotation: 0,
            batches: Vec::new(),
            topic_names: Vec::new(),
            parts: Vec::new(),
            parts_version: 0,
        })
    }
}

impl Consumer {
    fn partition_count(&self, topic: &str) -> Option<u32> {
        self.store.topic(topic).ok().map(|t| t.partition_count())
    }

    /// Joins the group and asks for partitions of `topics` (replacing an earlier subscription).
    /// Partitions arrive at the next [`poll`](Self::poll). Topics that do not exist yet are
    /// assigned once they are created.
    ///
    /// # Errors
    /// [`InvalidArgument`](ErrorKind::InvalidArgument) without a group id, with partitions
    /// assigned by hand, or for an invalid topic name.
    pub fn subscribe(&mut self, topics: &[&str]) -> Result<()> {
        let Some(group) = self.group.clone() else {
            return Err(Error::invalid(
                "subscribe needs a group_id in the ConsumerConfig",
            ));
        };
        if self.manual {
            return Err(Error::invalid(
                "the consumer has manually assigned partitions: unsubscribe() first",
            ));
        }
        for t in topics {
            validate_topic_name(t)?;
        }
        self.subscription = topics.iter().map(|t| t.to_string()).collect();
        match &self.member {
            Some(m) => group.resubscribe(m, self.subscription.clone()),
            None => {
                self.member = Some(group.join(
                    self.subscription.clone(),
                    self.config.assignor,
                    self.config.max_poll_interval,
                    Instant::now(),
                ));
            }
        }
        self.store.notify().notify();
        Ok(())
    }

    /// Like [`subscribe`](Self::subscribe), with a listener for rebalances.
    ///
    /// # Errors
    /// As [`subscribe`](Self::subscribe).
    pub fn subscribe_with_listener(
        &mut self,
        topics: &[&str],
        listener: impl RebalanceListener + 'static,
    ) -> Result<()> {
        self.listener = Some(Box::new(listener));
        self.subscribe(topics)
    }

    /// Leaves the group (after revoking, with the listener and an auto-commit) or drops the
    /// manual assignment.
    ///
    /// # Errors
    /// A failed auto-commit.
    pub fn unsubscribe(&mut self) -> Result<()> {
        let r = self.revoke(true);
        if let (Some(g), Some(m)) = (&self.group, self.member.take()) {
            g.leave(&m);
            self.store.publish_groups();
            self.store.notify().notify();
        }
        self.subscription.clear();
        self.manual = false;
        self.assignment.clear();
        self.positions.clear();
        self.paused.clear();
        r
    }

    /// Takes these partitions by hand, without group management (replacing an earlier manual
    /// assignment).
    ///
    /// # Errors
    /// [`InvalidArgument`](ErrorKind::InvalidArgument) while subscribed;
    /// [`UnknownTopic`](ErrorKind::UnknownTopic); [`UnknownPartition`](ErrorKind::UnknownPartition).
    pub fn assign(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        if self.member.is_some() {
            return Err(Error::invalid(
                "the consumer is subscribed: unsubscribe() before assign()",
            ));
        }
        for tp in partitions {
            self.store.partition(tp)?;
        }
        self.manual = true;
        self.assignment = partitions.to_vec();
        self.assignment.sort();
        self.assignment.dedup();
        self.positions.retain(|tp, _| partitions.contains(tp));
        self.paused.retain(|tp| partitions.contains(tp));
        Ok(())
    }

    /// The partitions this consumer owns now.
    pub fn assignment(&self) -> &[TopicPartition] {
        &self.assignment
    }

    /// The group generation of the current assignment (0 without group management).
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The member id in the group, while subscribed.
    pub fn member_id(&self) -> Option<&str> {
        self.member.as_deref()
    }

    /// The group metadata a transactional producer needs to commit this consumer's offsets
    /// (`None` without a group id).
    pub fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        let group = self.group.as_ref()?;
        Some(ConsumerGroupMetadata {
            group_id: group.name.clone(),
            generation: self.generation,
            member_id: if self.manual {
                None
            } else {
                self.member.clone()
            },
        })
    }

    /// The end of `log` for this consumer: the high watermark, or the last stable offset when
    /// reading committed records only.
    fn end_of(&self, log: &crate::Log) -> u64 {
        match self.config.isolation_level {
            IsolationLevel::ReadUncommitted => log.high_watermark(),
            IsolationLevel::ReadCommitted => log.last_stable_offset(),
        }
    }

    /// Reads the batches holding `pos` and after into `out` (cleared first), and returns the
    /// aborted transactions among them (none when reading uncommitted records): up to
    /// `max_partition_fetch_bytes`, and no more batches than it takes to hold `records` offsets
    /// (a poll that returns one record reads the one batch holding it, not a megabyte).
    fn read(
        &self,
        log: &crate::Log,
        pos: u64,
        records: u64,
        out: &mut Vec<BatchView>,
    ) -> Result<Vec<AbortedTxn>> {
        out.clear();
        let max = self.config.max_partition_fetch_bytes;
        match self.config.isolation_level {
            IsolationLevel::ReadUncommitted => {
                log.read_bounded(pos, max, records, out)?;
                Ok(Vec::new())
            }
            IsolationLevel::ReadCommitted => {
                Ok(log.read_committed_bounded(pos, max, records, out)?.0)
            }
        }
    }

    fn check_assigned(&self, tp: &TopicPartition) -> Result<()> {
        if self.assignment.contains(tp) {
            Ok(())
        } else {
            Err(ErrorKind::NotAssigned {
                topic: tp.topic.clone(),
                partition: tp.partition,
            }
            .into())
        }
    }

    /// The next offset `poll` will return from `tp`: the committed offset, or where
    /// `auto_offset_reset` says, if no position was set yet.
    ///
    /// # Errors
    /// [`NotAssigned`](ErrorKind::NotAssigned); [`NoOffset`](ErrorKind::NoOffset).
    pub fn position(&mut self, tp: &TopicPartition) -> Result<u64> {
        self.check_assigned(tp)?;
        if let Some(p) = self.positions.get(tp) {
            return Ok(*p);
        }
        let part = self.store.partition(tp)?;
        self.initial_position(tp, &part.log)
    }

    /// The position of an assigned partition that has none yet: the committed offset, or
    /// where `auto_offset_reset` says.
    fn initial_position(&mut self, tp: &TopicPartition, log: &crate::Log) -> Result<u64> {
        let committed = match &self.group {
            Some(g) => self
                .store
                .offsets()
                .committed(&g.name, tp)
                .map(|o| o.offset),
            None => None,
        };
        let pos = match committed {
            Some(o) => o,
            None => self.reset_position(tp, log)?,
        };
        self.positions.insert(tp.clone(), pos);
        Ok(pos)
    }

    /// Sets the position of a partition that has one (or gets one now), without allocating.
    fn set_position(&mut self, tp: &TopicPartition, pos: u64) {
        match self.positions.get_mut(tp) {
            Some(p) => *p = pos,
            None => {
                self.positions.insert(tp.clone(), pos);
            }
        }
    }

    fn reset_position(&self, tp: &TopicPartition, log: &crate::Log) -> Result<u64> {
        match self.config.auto_offset_reset {
            OffsetReset::Earliest => Ok(log.log_start_offset()),
            OffsetReset::Latest => Ok(self.end_of(log)),
            OffsetReset::None => Err(ErrorKind::NoOffset {
                topic: tp.topic.clone(),
                partition: tp.partition,
            }
            .into()),
        }
    }

    /// Sets the position of `tp`. An offset outside the log is handled at the next `poll` as
    /// `auto_offset_reset` says: reset to the log start or end, or (with `None`) an
    /// [`OffsetOutOfRange`](ErrorKind::OffsetOutOfRange) error. The log end itself is a valid
    /// position (the next record produced).
    ///
    /// # Errors
    /// [`NotAssigned`](ErrorKind::NotAssigned).
    pub fn seek(&mut self, tp: &TopicPartition, offset: u64) -> Result<()> {
        self.check_assigned(tp)?;
        self.set_position(tp, offset);
        Ok(())
    }

    /// Moves to the first offset still in each log.
    ///
    /// # Errors
    /// [`NotAssigned`](ErrorKind::NotAssigned); [`UnknownTopic`](ErrorKind::UnknownTopic).
    pub fn seek_to_beginning(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        for tp in partitions {
            self.check_assigned(tp)?;
            let start = self.store.partition(tp)?.log.log_start_offset();
            self.positions.insert(tp.clone(), start);
        }
        Ok(())
    }

    /// Moves to the end of each log.
    ///
    /// # Errors
    /// [`NotAssigned`](ErrorKind::NotAssigned); [`UnknownTopic`](ErrorKind::UnknownTopic).
    pub fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        for tp in partitions {
            self.check_assigned(tp)?;
            let end = self.end_of(&self.store.partition(tp)?.log);
            self.positions.insert(tp.clone(), end);
        }
        Ok(())
    }

    /// For each partition, the first offset whose timestamp is at least the given one, with that
    /// record's timestamp (`None` if every record is older). Kafka's `offsetsForTimes`.
    ///
    /// # Errors
    /// [`UnknownTopic`](ErrorKind::UnknownTopic); [`UnknownPartition`](ErrorKind::UnknownPartition);
    /// [`Corruption`](ErrorKind::Corruption).
    pub fn offsets_for_times(
        &self,
        query: &[(TopicPartition, i64)],
    ) -> Result<Vec<(TopicPartition, Option<OffsetAndTimestamp>)>> {
        query
            .iter()
            .map(|(tp, ts)| {
                let found = self.store.partition(tp)?.log.offset_for_timestamp(*ts)?;
                let found =
                    found.map(|(offset, timestamp)| OffsetAndTimestamp { offset, timestamp });
                Ok((tp.clone(), found))
            })
            .collect()
    }

    /// The first offset of each partition.
    ///
    /// # Errors
    /// [`UnknownTopic`](ErrorKind::UnknownTopic); [`UnknownPartition`](ErrorKind::UnknownPartition).
    pub fn beginning_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, u64)>> {
        partitions
            .iter()
            .map(|tp| Ok((tp.clone(), self.store.partition(tp)?.log.log_start_offset())))
            .collect()
    }

    /// The end of each partition: the next offset to be written, or with
    /// [`ReadCommitted`](IsolationLevel::ReadCommitted) the last stable offset.
    ///
    /// # Errors
    /// [`UnknownTopic`](ErrorKind::UnknownTopic); [`UnknownPartition`](ErrorKind::UnknownPartition).
    pub fn end_offsets(&self, partitions: &[TopicPartition]) -> Result<Vec<(TopicPartition, u64)>> {
        partitions
            .iter()
            .map(|tp| Ok((tp.clone(), self.end_of(&self.store.partition(tp)?.log))))
            .collect()
    }

    /// Stops returning records from these partitions until [`resume`](Self::resume)d (positions
    /// and ownership are kept).
    ///
    /// # Errors
    /// [`NotAssigned`](ErrorKind::NotAssigned).
    pub fn pause(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        for tp in partitions {
            self.check_assigned(tp)?;
        }
        self.paused.extend(partitions.iter().cloned());
        Ok(())
    }

    /// Undoes [`pause`](Self::pause).
    pub fn resume(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            self.paused.remove(tp);
        }
    }

    /// The paused partitions.
    pub fn paused(&self) -> Vec<TopicPartition> {
        let mut v: Vec<_> = self.paused.iter().cloned().collect();
        v.sort();
        v
    }

    /// Commits the current position of every assigned partition that has one.
    ///
    /// # Errors
    /// As [`commit_offsets`](Self::commit_offsets).
    pub fn commit(&mut self) -> Result<()> {
        let offsets: Vec<(TopicPartition, OffsetAndMetadata)> = self
            .assignment
            .iter()
            .filter_map(|tp| {
                self.positions
                    .get(tp)
                    .map(|p| (tp.clone(), OffsetAndMetadata::new(*p)))
            })
            .collect();
        self.commit_offsets(&offsets)
    }

    /// Commits the given offsets (each the next offset to consume) durably and atomically.
    ///
    /// # Errors
    /// [`InvalidArgument`](ErrorKind::InvalidArgument) without a group id;
    /// [`NotAssigned`](ErrorKind::NotAssigned) for a partition not assigned to this consumer;
    /// [`CommitFailed`](ErrorKind::CommitFailed) if the group rebalanced since the assignment;
    /// [`Io`](ErrorKind::Io). Nothing is committed on error.
    pub fn commit_offsets(
        &mut self,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
    ) -> Result<()> {
        let Some(group) = &self.group else {
            return Err(Error::invalid(
                "commit needs a group_id in the ConsumerConfig",
            ));
        };
        if offsets.is_empty() {
            return Ok(());
        }
        for (tp, _) in offsets {
            self.check_assigned(tp)?;
        }
        let tps: Vec<&TopicPartition> = offsets.iter().map(|(tp, _)| tp).collect();
        let member = if self.manual {
            None
        } else {
            self.member.as_deref()
        };
        group.check_commit(member, self.generation, &tps)?;
        let entries: Vec<(TopicPartition, Option<OffsetAndMetadata>)> = offsets
            .iter()
            .map(|(tp, o)| (tp.clone(), Some(o.clone())))
            .collect();
        self.store.offsets().commit(&group.name, &entries)?;
        self.last_auto_commit = Instant::now();
        Ok(())
    }

    /// The group's committed offset for `tp`.
    ///
    /// # Errors
    /// [`InvalidArgument`](ErrorKind::InvalidArgument) without a group id.
    pub fn committed(&self, tp: &TopicPartition) -> Result<Option<OffsetAndMetadata>> {
        let Some(group) = &self.group else {
            return Err(Error::invalid(
                "committed offsets need a group_id in the ConsumerConfig",
            ));
        };
        Ok(self.store.offsets().committed(&group.name, tp))
    }

    /// How far the group's committed offset is behind the end of the partition (from the log
    /// start when nothing is committed).
    ///
    /// # Errors
    /// [`UnknownTopic`](ErrorKind::UnknownTopic); [`UnknownPartition`](ErrorKind::UnknownPartition);
    /// [`InvalidArgument`](ErrorKind::InvalidArgument) without a group id.
    pub fn lag(&self, tp: &TopicPartition) -> Result<u64> {
        let log = &self.store.partition(tp)?.log;
        let from = self
            .committed(tp)?
            .map_or(log.log_start_offset(), |o| o.offset);
        Ok(self
            .end_of(log)
            .saturating_sub(from.max(log.log_start_offset())))
    }

    /// Returns up to `max_poll_records` records from the assigned, unpaused partitions, waiting up
    /// to `timeout` for some to arrive (it wakes as soon as a producer appends). Also where the
    /// group's rebalances happen: the listener runs from here.
    ///
    /// # Errors
    /// [`NoOffset`](ErrorKind::NoOffset) (nothing committed or sought, reset `None`);
    /// [`OffsetOutOfRange`](ErrorKind::OffsetOutOfRange) (a position outside the log, reset
    /// `None`); [`Corruption`](ErrorKind::Corruption) (also for a record that does not decode
    /// in a batch whose CRC passed: it names the partition and the batch's offsets). An error
    /// of one partition is raised only by a poll that has no records yet; one that gathered some
    /// returns them, and a later poll raises it. A failed auto-commit ([`CommitFailed`](ErrorKind::CommitFailed) or [`Io`](ErrorKind::Io)).
    pub fn poll(&mut self, timeout: Duration) -> Result<ConsumerRecords> {
        // A timeout too large to add counts as a century.
        // The clock is read only for a poll that may wait.
        let started = (!timeout.is_zero()).then(Instant::now);
        // First look without registering as a waiter: while a poller is registered every append
        // takes the notifier's lock to wake it, so a poll that finds records waiting (the busy
        // case) should not make producers pay for a wake-up nobody needs.
        if self.maintain_group()? {
            self.maybe_auto_commit()?;
            let records = self.fetch()?;
            if !records.is_empty() {
                return Ok(records);
            }
        }
        let Some(started) = started else {
            return Ok(ConsumerRecords::default());
        };
        // A timeout too large to add counts as a century.
        let deadline = started
            .checked_add(timeout)
            .unwrap_or_else(|| started + Duration::from_secs(100 * 365 * 24 * 3600));
        // Then register before each look, so that an append after the look wakes the wait.
        loop {
            let store = self.store.clone();
            let (_waiting, seen) = store.notify().register();
            let stable = self.maintain_group()?;
            if stable {
                self.maybe_auto_commit()?;
                let records = self.fetch()?;
                if !records.is_empty() {
                    return Ok(records);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(ConsumerRecords::default());
            }
            // While a rebalance waits for others, look again now and then: a silent member is
            // only removed when someone checks in after its max_poll_interval.
            let wake = if !stable {
                deadline.min(now + Duration::from_millis(50))
            } else if self.member.is_some() {
                // A member waiting in poll is polling: check in often enough not to be taken
                // for a silent one.
                deadline.min(
                    now.checked_add(self.config.max_poll_interval / 3)
                        .unwrap_or(deadline),
                )
            } else {
                deadline
            };
            store.notify().wait(seen, wake);
        }
    }

    /// Runs the group protocol; returns whether the consumer may fetch.
    fn maintain_group(&mut self) -> Result<bool> {
        let (Some(group), Some(member)) = (self.group.clone(), self.member.clone()) else {
            return Ok(true);
        };
        let counts = |t: &str| self.partition_count(t);
        let version = self.store.metadata_version();
        let checkin = group.checkin(&member, Instant::now(), version, &counts);
        self.store.publish_groups();
        match checkin {
            Checkin::NotMember => {
                // Removed (it did not poll in time): its partitions may already be elsewhere, so
                // drop them without committing, and rejoin.
                let lost = self.assignment.clone();
                if !lost.is_empty() {
                    if let Some(mut l) = self.listener.take() {
                        l.on_lost(self, &lost);
                        self.listener = Some(l);
                    }
                }
                self.lose_partitions();
                self.member = Some(group.join(
                    self.subscription.clone(),
                    self.config.assignor,
                    self.config.max_poll_interval,
                    Instant::now(),
                ));
                self.store.notify().notify();
                Ok(false)
            }
            Checkin::Revoke => {
                let r = self.revoke(true);
                group.rejoin(&member);
                self.store.notify().notify();
                r.map(|()| false)
            }
            Checkin::Waiting => Ok(false),
            Checkin::Stable {
                generation,
                assignment,
            } => {
                if generation != self.generation || assignment != self.assignment {
                    self.generation = generation;
                    self.assignment = assignment.clone();
                    self.positions.retain(|tp, _| assignment.contains(tp));
                    self.paused.retain(|tp| assignment.contains(tp));
                    if let Some(mut l) = self.listener.take() {
                        l.on_assigned(self, &assignment);
                        self.listener = Some(l);
                    }
                }
                Ok(true)
            }
        }
    }

    /// Gives up the assignment: auto-commit (if on), listener, then forget.
    fn revoke(&mut self, commit: bool) -> Result<()> {
        let mut result = Ok(());
        if commit
            && self.config.enable_auto_commit
            && self.group.is_some()
            && !self.assignment.is_empty()
        {
            result = self.commit();
        }
        // The assignment stays in place while the listener runs, so that it can still commit.
        let revoked = self.assignment.clone();
        if let Some(mut l) = self.listener.take() {
            l.on_revoked(self, &revoked);
            self.listener = Some(l);
        }
        self.lose_partitions();
        result
    }

    fn lose_partitions(&mut self) {
        self.assignment.clear();
        self.positions.clear();
        self.paused.clear();
    }

    fn maybe_auto_commit(&mut self) -> Result<()> {
        if self.config.enable_auto_commit
            && self.group.is_some()
            && self.last_auto_commit.elapsed() >= self.config.auto_commit_interval
        {
            self.commit()?;
            self.last_auto_commit = Instant::now();
        }
        Ok(())
    }

    fn fetch(&mut self) -> Result<ConsumerRecords> {
        let mut out = ConsumerRecords::default();
        // The assignment is taken out for the fetch (nothing below reads or changes it), so that
        // its partitions are borrowed rather than cloned.
        let assignment = std::mem::take(&mut self.assignment);
        let result = self.fetch_from(&assignment, &mut out);
        self.assignment = assignment;
        result.map(|()| out)
    }

    fn fetch_from(
        &mut self,
        assignment: &[TopicPartition],
        out: &mut ConsumerRecords,
    ) -> Result<()> {
        let n = assignment.len();
        if n == 0 {
            return Ok(());
        }
        // NOTE: the version before any lookup (see `parts`).
        let version = self.store.metadata_version();
        if version != self.parts_version || self.parts.len() != n {
            self.parts.clear();
            self.parts.resize(n, None);
            self.parts_version = version;
        }
        let mut remaining = self.config.max_poll_records as u64;
        self.rotation = self.rotation.wrapping_add(1);
        // The unpaused partitions by index (none listed, and nothing allocated, when none is
        // paused); the rotation picks the first of them.
        let unpaused: Vec<usize> = if self.paused.is_empty() {
            Vec::new()
        } else {
            (0..n)
                .filter(|i| !self.paused.contains(&assignment[*i]))
                .collect()
        };
        let active = if self.paused.is_empty() {
            n
        } else {
            unpaused.len()
        };
        for i in 0..active {
            if remaining == 0 {
                break;
            }
            let k = (self.rotation + i) % active;
            let index = if self.paused.is_empty() {
                k
            } else {
                unpaused[k]
            };
            let tp = &assignment[index];
            if let Err(e) = self.fetch_partition(index, tp, out, &mut remaining) {
                // As Kafka's FetchCollector: an error is raised only when no records were
                // gathered yet. The records already gathered have moved their partitions'
                // positions on, so dropping them would hide them from this consumer for good;
                // the failing partition's position stays where the error is, and a later poll
                // (the partition order rotates) raises it.
                if out.is_empty() {
                    return Err(e);
                }
                break;
            }
        }
        Ok(())
    }

    /// The open partition `tp`, `assignment[index]`: from `parts` if an earlier poll found it
    /// under the same metadata version, else from the store.
    fn partition_at(&mut self, index: usize, tp: &TopicPartition) -> Result<Arc<Partition>> {
        if let Some(Some(p)) = self.parts.get(index) {
            if p.tp == *tp {
                return Ok(Arc::clone(p));
            }
        }
        let p = self.store.partition(tp)?;
        if let Some(slot) = self.parts.get_mut(index) {
            *slot = Some(Arc::clone(&p));
        }
        Ok(p)
    }

    /// Adds what `tp` has from its position on to `out`, at most `remaining` records, and moves
    /// the position past what was added (also when it fails part way: the records added stay
    /// in `out`, and the position is where the failure is).
    fn fetch_partition(
        &mut self,
        index: usize,
        tp: &TopicPartition,
        out: &mut ConsumerRecords,
        remaining: &mut u64,
    ) -> Result<()> {
        let part = match self.partition_at(index, tp) {
            Ok(p) => p,
            // A deleted topic's partitions yield nothing until the group rebalances.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::UnknownTopic { .. } | ErrorKind::UnknownPartition { .. }
                ) =>
            {
                return Ok(())
            }
            Err(e) => return Err(e),
        };
        let mut pos = match self.positions.get(tp) {
            Some(p) => *p,
            None => self.initial_position(tp, &part.log)?,
        };
        // At the end: nothing yet. Past the end or below the start: `read` says
        // OffsetOutOfRange and the position is reset below (or, without a reset policy, the
        // error is the caller's).
        if pos == part.log.high_watermark() {
            return Ok(());
        }
        let mut batches = std::mem::take(&mut self.batches);
        let result = self.fetch_batches(tp, &part.log, &mut pos, &mut batches, out, remaining);
        batches.clear();
        self.batches = batches;
        self.set_position(tp, pos);
        result
    }

    /// The reads of [`fetch_partition`](Self::fetch_partition), into `batches`.
    fn fetch_batches(
        &mut self,
        tp: &TopicPartition,
        log: &crate::Log,
        pos: &mut u64,
        batches: &mut Vec<BatchView>,
        out: &mut ConsumerRecords,
        remaining: &mut u64,
    ) -> Result<()> {
        let aborted = match self.read(log, *pos, *remaining, batches) {
            Ok(a) => a,
            Err(e) => {
                let ErrorKind::OffsetOutOfRange {
                    log_start, log_end, ..
                } = *e.kind()
                else {
                    return Err(e);
                };
                *pos = self.reset_out_of_range(tp, log, *pos, log_start, log_end)?;
                match self.read(log, *pos, *remaining, batches) {
                    Ok(a) => a,
                    Err(e) if matches!(e.kind(), ErrorKind::OffsetOutOfRange { .. }) => {
                        return Ok(())
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        let topic = self.topic_name(&tp.topic);
        self.gather(tp, topic, log, batches, aborted, pos, out, remaining)
    }

    /// The shared name of `topic` for `ConsumerRecords` (allocated once per topic).
    fn topic_name(&mut self, topic: &str) -> Arc<str> {
        if let Some(t) = self.topic_names.iter().find(|t| &***t == topic) {
            return Arc::clone(t);
        }
        let t: Arc<str> = Arc::from(topic);
        self.topic_names.push(Arc::clone(&t));
        t
    }

    /// Where a position found outside the log goes (Kafka's fetcher on `OFFSET_OUT_OF_RANGE`):
    /// the reset policy's offset, or with `auto_offset_reset = None` an
    /// [`OffsetOutOfRange`](ErrorKind::OffsetOutOfRange) error naming the partition and the
    /// range, the position left as it is.
    fn reset_out_of_range(
        &self,
        tp: &TopicPartition,
        log: &crate::Log,
        requested: u64,
        log_start: u64,
        log_end: u64,
    ) -> Result<u64> {
        match self.config.auto_offset_reset {
            OffsetReset::None => Err(ErrorKind::OffsetOutOfRange {
                partition: Some(tp.clone()),
                requested,
                log_start,
                log_end,
            }
            .into()),
            _ => self.reset_position(tp, log),
        }
    }

    /// Decodes and adds the records of `batches` from `pos` on (and of further reads, while
    /// markers or aborted records leave the poll short) to `out`, moving `pos` past each batch
    /// added. Each record returned is decoded once, here: `out` keeps where its key and value
    /// lie, and iterating it decodes nothing again (see [`ConsumerRecords::iter`]).
    #[allow(clippy::too_many_arguments)]
    fn gather(
        &self,
        tp: &TopicPartition,
        topic: Arc<str>,
        log: &crate::Log,
        batches: &mut Vec<BatchView>,
        mut aborted: Vec<AbortedTxn>,
        pos: &mut u64,
        out: &mut ConsumerRecords,
        remaining: &mut u64,
    ) -> Result<()> {
        let mut bytes_read = 0;
        loop {
            if batches.is_empty() {
                break;
            }
            let mut filter = AbortFilter::new(std::mem::take(&mut aborted));
            // Room for what this read can add, in one allocation each.
            let offsets: u64 = batches.iter().map(|b| u64::from(b.record_count())).sum();
            out.sources.reserve(batches.len());
            out.slots
                .reserve(usize::try_from(offsets.min(*remaining)).unwrap_or(0));
            for view in batches.drain(..) {
                if *remaining == 0 {
                    break;
                }
                bytes_read += view.len();
                if filter.skip(&view)? {
                    // A marker, or a batch of an aborted transaction: step over it.
                    *pos = (*pos).max(view.last_offset() + 1);
                    continue;
                }
                let start = view.base_offset().max(*pos);
                let end = (view.last_offset() + 1).min(start.saturating_add(*remaining));
                let decompressed = view
                    .as_batch()
                    .decompressed_section()
                    .map_err(|e| undecodable(tp, &view, None, &e))?;
                let mut source = Source {
                    topic: Arc::clone(&topic),
                    partition: tp.partition,
                    view,
                    decompressed,
                    slots: out.slots.len()..out.slots.len(),
                };
                let decoded = source.decode(tp, start, end, &mut out.slots);
                source.slots.end = out.slots.len();
                // On an undecodable record, the records before it are returned (as Kafka's
                // fetcher does) and the position stops at it, where the next poll raises it.
                let next = match &decoded {
                    Ok(()) => end,
                    Err(_) => out
                        .slots
                        .get(source.slots.clone())
                        .and_then(<[Slot]>::last)
                        .map_or(start, |s| s.offset + 1),
                };
                *remaining = remaining.saturating_sub(next - start);
                *pos = next;
                if !source.slots.is_empty() {
                    out.sources.push(source);
                }
                decoded?;
            }
            // The read held only as many offsets as the poll could still return; when some
            // were markers or aborted records, read on (up to the partition's byte limit)
            // rather than return short, or nothing, while records are waiting.
            if *remaining == 0 || bytes_read >= self.config.max_partition_fetch_bytes {
                break;
            }
            aborted = match self.read(log, *pos, *remaining, batches) {
                Ok(a) => a,
                // Retention moved the log start past `pos` meanwhile: the next poll resets.
                Err(e) if matches!(e.kind(), ErrorKind::OffsetOutOfRange { .. }) => break,
                Err(e) => return Err(e),
            };
        }
        Ok(())
    }

    /// Commits (if auto-commit is on), runs the listener and leaves the group.
    ///
    /// # Errors
    /// A failed auto-commit; the consumer leaves the group anyway.
    pub fn close(mut self) -> Result<()> {
        self.unsubscribe()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // Leave without committing: a dropped consumer is like one that crashed.
        if let (Some(g), Some(m)) = (&self.group, self.member.take()) {
            g.leave(&m);
            self.store.publish_groups();
            self.store.notify().notify();
        }
    }
}

/// Records returned by one [`Consumer::poll`]. They borrow the memory-mapped segments (compressed
/// batches are decompressed once), so iterating copies nothing; `poll` decoded each record once,
/// and iterating decodes nothing again.
#[derive(Default)]
pub struct ConsumerRecords {
    sources: Vec<Source>,
    /// The records, in order: each source's are `slots[source.slots]`.
    slots: Vec<Slot>,
}

/// Drops control batches, and the batches of aborted transactions when given the aborted
/// transactions of the fetched range (Kafka's consumer-side filtering for `read_committed`).
struct AbortFilter {
    /// Aborted transactions not yet reached, by first offset (largest first, to pop).
    upcoming: Vec<AbortedTxn>,
    /// Producers inside an aborted transaction at the current batch.
    aborting: HashSet<i64>,
}

impl AbortFilter {
    fn new(mut aborted: Vec<AbortedTxn>) -> AbortFilter {
        aborted.sort_by_key(|a| std::cmp::Reverse(a.first_offset));
        AbortFilter {
            upcoming: aborted,
            aborting: HashSet::new(),
        }
    }

    fn skip(&mut self, view: &BatchView) -> Result<bool> {
        let batch = view.as_batch();
        if !batch.is_transactional() {
            return Ok(false);
        }
        while self
            .upcoming
            .last()
            .is_some_and(|a| a.first_offset <= batch.last_offset())
        {
            if let Some(a) = self.upcoming.pop() {
                self.aborting.insert(a.producer_id);
            }
        }
        let pid = batch.producer().producer_id;
        if batch.is_control() {
            if batch.control_type()? == Some(ControlType::Abort) {
                self.aborting.remove(&pid);
            }
            return Ok(true);
        }
        Ok(self.aborting.contains(&pid))
    }
}

/// A record of `view` that passed the batch CRC but does not decode: corruption (or a bug),
/// reported with the partition, the batch's offsets, the last record that did decode and the
/// decoder's own finding, never skipped (Kafka's consumer raises `CorruptRecordException`).
fn undecodable(tp: &TopicPartition, view: &BatchView, last: Option<u64>, e: &Error) -> Error {
    let (position, expected, found) = match e.kind() {
        ErrorKind::Corruption {
            position,
            expected,
            found,
            ..
        } => (*position, expected.clone(), found.clone()),
        _ => (0, String::from("a decodable record"), e.to_string()),
    };
    let after = match last {
        Some(o) => format!("after the record at offset {o}"),
        None => String::from("before any of its records decoded"),
    };
    ErrorKind::Corruption {
        // The position is the decoder's, within the batch (or its decompressed records).
        path: None,
        position,
        expected: format!(
            "{expected}, {after}, in the batch at offsets {}..={} of {}-{} (the batch passed \
             its CRC, so its bytes are as written: corruption before the checksum or a bug)",
            view.base_offset(),
            view.last_offset(),
            tp.topic,
            tp.partition
        ),
        found,
    }
    .into()
}

/// One batch of a poll's records.
struct Source {
    topic: Arc<str>,
    partition: u32,
    view: BatchView,
    decompressed: Option<Vec<u8>>,
    /// Its records in `ConsumerRecords::slots`.
    slots: std::ops::Range<usize>,
}

/// Where a byte string of a record lies in its batch's records section (`None`: null).
#[derive(Clone, Copy, Debug)]
struct Span(Option<(u32, u32)>);

impl Span {
    /// The span of `bytes`, a slice of `section` (the decoder's output borrows the section).
    fn of(bytes: Option<&[u8]>, section: &[u8]) -> Span {
        Span(bytes.map(|b| {
            let start = (b.as_ptr() as usize).wrapping_sub(section.as_ptr() as usize);
            // A records section is at most a batch (or `MAX_UNCOMPRESSED_RECORDS`): u32.
            (start as u32, b.len() as u32)
        }))
    }

    fn get(self, section: &[u8]) -> Option<&[u8]> {
        let (start, len) = self.0?;
        let bytes = section.get(start as usize..start as usize + len as usize);
        debug_assert!(bytes.is_some(), "a span inside its records section");
        bytes
    }
}

/// One record as `poll` decoded it.
#[derive(Clone, Copy, Debug)]
struct Slot {
    offset: u64,
    timestamp: i64,
    key: Span,
    value: Span,
    /// Whether it has headers (they are walked again only if asked for).
    headers: bool,
}

impl Source {
    /// The (decompressed) records section.
    fn section(&self) -> &[u8] {
        match &self.decompressed {
            Some(d) => d.as_slice(),
            None => {
                let batch = self.view.as_batch();
                batch
                    .as_bytes()
                    .get(batch.header().records_start()..)
                    .unwrap_or(&[])
            }
        }
    }

    fn records(&self) -> RecordIter<'_> {
        BatchRef::iter_section(self.section(), self.view.as_batch().header())
    }

    /// Decodes the records at offsets `start..end` into `slots`. The records before `start`
    /// are skipped by their lengths (they were covered by the batch CRC, and a length that
    /// does not fit is an error); every record returned is decoded and checked here, with its
    /// headers, so that iterating cannot fail. When the poll takes the batch to its end, the
    /// batch must end with its last record.
    fn decode(
        &self,
        tp: &TopicPartition,
        start: u64,
        end: u64,
        slots: &mut Vec<Slot>,
    ) -> Result<()> {
        let section = self.section();
        let mut it = self.records();
        let mut last = None;
        it.skip_to(start)
            .map_err(|e| undecodable(tp, &self.view, last, &e))?;
        for r in it {
            let r = r.map_err(|e| undecodable(tp, &self.view, last, &e))?;
            let offset = r.offset();
            last = Some(offset);
            if offset >= end {
                break;
            }
            if offset < start {
                continue; // a batch with gaps: skip_to could not count
            }
            slots.push(Slot {
                offset,
                timestamp: r.timestamp(),
                key: Span::of(r.key(), section),
                value: Span::of(r.value(), section),
                headers: r.headers().next().is_some(),
            });
            if offset + 1 >= end && end <= self.view.last_offset() {
                // The last record wanted, before the batch's end: the next poll decodes on.
                break;
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for ConsumerRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerRecords")
            .field("count", &self.count())
            .finish()
    }
}

/// The bytes of an empty header list.
const NO_HEADERS: &[u8] = &[0];

/// An iterator over no headers.
fn no_headers() -> HeaderIter<'static> {
    match HeaderIter::split(NO_HEADERS) {
        Ok((h, _)) => h,
        Err(_) => unreachable!("a header count of zero decodes"),
    }
}

impl ConsumerRecords {
    /// Number of records.
    pub fn count(&self) -> usize {
        self.slots.len()
    }

    /// True when the poll returned nothing.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The records, partition by partition, each partition's in offset order.
    ///
    /// Iterating cannot fail and decodes nothing: `poll` decoded every one of these records
    /// (and checked their headers) before returning them, and returned an error instead if one
    /// did not decode; each item is built from where `poll` found its key and value. The
    /// headers of a record that has any are walked again when it is reached (from the same
    /// immutable bytes that `poll` checked: the segment's read-only mapping, or the batch
    /// decompressed once at poll).
    pub fn iter(&self) -> impl Iterator<Item = ConsumerRecord<'_>> + '_ {
        self.sources.iter().flat_map(move |s| {
            let section = s.section();
            let slots = self.slots.get(s.slots.clone()).unwrap_or(&[]);
            // Positioned lazily, and only moving forward, for records with headers.
            let mut decoder: Option<RecordIter<'_>> = None;
            let none = no_headers();
            slots.iter().map(move |slot| ConsumerRecord {
                topic: &s.topic,
                partition: s.partition,
                offset: slot.offset,
                timestamp: slot.timestamp,
                key: slot.key.get(section),
                value: slot.value.get(section),
                headers: if slot.headers {
                    headers_at(s, &mut decoder, slot.offset)
                } else {
                    none.clone()
                },
            })
        })
    }

    /// The partitions that returned records.
    pub fn partitions(&self) -> Vec<TopicPartition> {
        let mut v: Vec<TopicPartition> = self
            .sources
            .iter()
            .map(|s| TopicPartition::new(&*s.topic, s.partition))
            .collect();
        v.dedup();
        v
    }
}

/// The headers of the record at `offset` of `source`, found with `decoder` (created on first
/// use, then moved forward: it skips records by their lengths up to `offset` and decodes that
/// one). `poll` checked the record, so this cannot fail; were it to, the record shows no
/// headers (and debug builds panic).
fn headers_at<'a>(
    source: &'a Source,
    decoder: &mut Option<RecordIter<'a>>,
    offset: u64,
) -> HeaderIter<'a> {
    let it = decoder.get_or_insert_with(|| source.records());
    let skipped = it.skip_to(offset);
    debug_assert!(skipped.is_ok(), "poll checked this batch: {skipped:?}");
    for r in it.by_ref() {
        match r {
            Ok(r) if r.offset() == offset => return r.headers(),
            Ok(r) if r.offset() < offset => continue,
            other => {
                debug_assert!(false, "poll decoded the record at {offset}: {other:?}");
                break;
            }
        }
    }
    no_headers()
}

/// One consumed record, borrowed from its [`ConsumerRecords`].
#[derive(Clone, Debug)]
pub struct ConsumerRecord<'a> {
    topic: &'a str,
    partition: u32,
    offset: u64,
    timestamp: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    headers: HeaderIter<'a>,
}

impl<'a> ConsumerRecord<'a> {
    /// The topic.
    pub fn topic(&self) -> &'a str {
        self.topic
    }
    /// The partition.
    pub fn partition(&self) -> u32 {
        self.partition
    }
    /// The offset.
    pub fn offset(&self) -> u64 {
        self.offset
    }
    /// Milliseconds since the Unix epoch.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }
    /// The key.
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key
    }
    /// The value (`None` for a tombstone).
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value
    }
    /// The headers.
    pub fn headers(&self) -> HeaderIter<'a> {
        self.headers.clone()
    }
}
