//! The tasks of one stream thread (Kafka's `TaskManager`): creating a task when its partition
//! is assigned (restoring its stores), routing polled records to the task of (topic's
//! sub-topology, partition), sending what the sinks wrote, committing (changelogs, outputs and
//! input offsets; in one transaction with exactly-once) and dropping tasks, with checkpoint
//! snapshots, when they leave the thread.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::consumer::{Consumer, OffsetAndMetadata};
use crate::error::{Error, Result};
use crate::producer::{Producer, ProducerRecord};
use crate::store::Store;
use crate::streams::headers::Headers;
use crate::streams::runtime::restore::{restore_task, save_task};
use crate::streams::runtime::task::Task;
use crate::streams::state::store::{Registry, ROW_TIMESTAMP_HEADER, UNKNOWN_TIMESTAMP};
use crate::streams::topology::processor::OutRecord;
use crate::streams::topology::subtopology::TaskId;
use crate::streams::topology::Topology;
use crate::streams::{Counters, StreamsConfig};
use crate::topic::TopicPartition;
use crate::txn::TransactionalProducer;

pub(super) enum Output {
    Plain(Producer),
    Txn {
        producer: TransactionalProducer,
        open: bool,
    },
}

pub(super) struct ThreadState {
    pub(super) store: Store,
    pub(super) topology: Arc<Topology>,
    pub(super) registry: Registry,
    pub(super) counters: Arc<Counters>,
    pub(super) config: StreamsConfig,
    /// `(store, changelog topic)`.
    pub(super) changelogs: Vec<(String, String)>,
    /// Sub-topology -> its stores' `(store, changelog topic)`.
    pub(super) sub_changelogs: Arc<Vec<Vec<(String, String)>>>,
    /// Source topic -> the sub-topology reading it.
    pub(super) topic_subs: Arc<HashMap<String, u32>>,
    pub(super) tasks: BTreeMap<TaskId, Task>,
    /// Next offset of each input partition processed since the last commit.
    pub(super) positions: HashMap<TopicPartition, u64>,
    pub(super) output: Output,
    /// An error the rebalance listener ran into, for the thread's loop.
    pub(super) error: Option<Error>,
    /// The thread failed: nothing may be committed any more.
    pub(super) failed: bool,
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn to_record(o: OutRecord) -> ProducerRecord {
    let mut r = ProducerRecord::with_shared_topic(o.topic)
        .timestamp(o.timestamp)
        .with_headers(o.headers.into_entries());
    if let Some(k) = o.key {
        r = r.key(k);
    }
    if let Some(v) = o.value {
        r = r.value(v);
    }
    r
}

impl ThreadState {
    /// Sends what the sinks wrote (into the open transaction, with exactly-once).
    pub(super) fn send_outputs(&mut self) -> Result<()> {
        let records: Vec<ProducerRecord> = self
            .tasks
            .values_mut()
            .flat_map(Task::take_outputs)
            .map(to_record)
            .collect();
        if records.is_empty() {
            return Ok(());
        }
        // Nothing reads where the outputs went: `send_all` builds no metadata for them.
        match &mut self.output {
            Output::Plain(p) => p.send_all(records),
            Output::Txn { producer, open } => {
                if !*open {
                    producer.begin()?;
                    *open = true;
                }
                producer.send_all(records)
            }
        }
    }

    /// Commits: outputs, changelogs, then offsets (in one transaction with exactly-once).
    pub(super) fn commit(&mut self, consumer: &mut Consumer) -> Result<()> {
        if self.failed {
            return Ok(());
        }
        self.send_outputs()?;
        let dirty = self.tasks.values().any(|t| t.uncommitted > 0);
        if !dirty
            && self.positions.is_empty()
            && !matches!(self.output, Output::Txn { open: true, .. })
        {
            return Ok(());
        }
        let mut changelog = Vec::new();
        // Each changelog topic's name is made once per commit and shared by its records.
        let mut topics: Vec<(&str, Arc<str>)> = Vec::new();
        for task in self.tasks.values() {
            for (store, key, value, timestamp) in task.changelog() {
                let topic = match topics.iter().find(|(s, _)| *s == store) {
                    Some((_, t)) => Arc::clone(t),
                    None => {
                        let Some((_, topic)) = self.changelogs.iter().find(|(s, _)| s == store)
                        else {
                            continue;
                        };
                        let t: Arc<str> = Arc::from(topic.as_str());
                        topics.push((store, Arc::clone(&t)));
                        t
                    }
                };
                let mut r = ProducerRecord::with_shared_topic(topic)
                    .partition(task.partition())
                    .key(key.to_vec());
                if let Some(v) = value {
                    r = r.value(v.to_vec());
                }
                // A timestamped store's row timestamp travels as the record's timestamp
                // (marked, so a restore tells it from the commit time older records carry).
                if let Some(ts) = timestamp.filter(|&ts| ts != UNKNOWN_TIMESTAMP) {
                    r = r.timestamp(ts).header(ROW_TIMESTAMP_HEADER, Vec::new());
                }
                changelog.push(r);
            }
        }
        let offsets: Vec<(TopicPartition, OffsetAndMetadata)> = self
            .positions
            .iter()
            .map(|(tp, o)| (tp.clone(), OffsetAndMetadata::new(*o)))
            .collect();
        match &mut self.output {
            Output::Plain(p) => {
                if !changelog.is_empty() {
                    p.send_all(changelog)?;
                }
                p.flush()?;
                consumer.commit_offsets(&offsets)?;
            }
            Output::Txn { producer, open } => {
                if !*open {
                    producer.begin()?;
                    *open = true;
                }
                if !changelog.is_empty() {
                    producer.send_all(changelog)?;
                }
                let group = consumer
                    .group_metadata()
                    .ok_or_else(|| Error::invalid("a stream thread's consumer has a group"))?;
                producer.send_offsets(&group, &offsets)?;
                producer.commit()?;
                *open = false;
            }
        }
        for t in self.tasks.values_mut() {
            t.commit_stores();
        }
        self.positions.clear();
        self.counters.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Writes a checkpoint snapshot of every task's stores; call right after a successful commit.
    pub(super) fn save_snapshots(&self) {
        let eos = matches!(self.output, Output::Txn { .. });
        for task in self.tasks.values() {
            let changelogs = self.changelogs_of(task.id());
            save_task(&self.store, task, changelogs, eos, &self.counters);
        }
    }

    /// The `(store, changelog topic)` of the stores of task `id`'s sub-topology.
    pub(super) fn changelogs_of(&self, id: TaskId) -> &[(String, String)] {
        self.sub_changelogs
            .get(id.subtopology as usize)
            .map_or(&[], Vec::as_slice)
    }

    /// Drops every task and the uncommitted work (aborting the open transaction).
    pub(super) fn drop_tasks(&mut self) {
        if let Output::Txn { producer, open } = &mut self.output {
            if *open {
                if let Err(e) = producer.abort() {
                    tracing::warn!(target: "riverbed::streams", error = %e, "abort failed");
                }
                *open = false;
            }
        }
        self.tasks.clear();
        self.positions.clear();
    }

    /// Creates task `id`, restores its stores and initialises it.
    pub(super) fn create_task(&mut self, id: TaskId) -> Result<()> {
        let mut task = Task::new(
            Arc::clone(&self.topology),
            id,
            Arc::clone(&self.registry),
            self.config.deserialization,
            Arc::clone(&self.counters),
        );
        let eos = matches!(self.output, Output::Txn { .. });
        let changelogs = self.changelogs_of(id);
        restore_task(&self.store, &mut task, changelogs, eos, &self.counters)?;
        task.set_wall_clock(now_ms());
        task.init()?;
        self.tasks.insert(id, task);
        Ok(())
    }

    /// The task a record of `topic`-`partition` goes to.
    pub(super) fn task_of(&self, topic: &str, partition: u32) -> Result<TaskId> {
        match self.topic_subs.get(topic) {
            Some(&subtopology) => Ok(TaskId {
                subtopology,
                partition,
            }),
            None => Err(Error::invalid(format!(
                "a record of {topic}-{partition} arrived, but no source reads {topic:?}"
            ))),
        }
    }

    pub(super) fn process(&mut self, records: &crate::consumer::ConsumerRecords) -> Result<()> {
        let now = now_ms();
        // The next offset of the partition being read and its task, recorded in `positions`
        // when the partition changes (records come in runs per partition): one map update and
        // one task lookup per run, not a `TopicPartition` allocation per record.
        let mut run: Option<(&str, u32, u64, TaskId)> = None;
        for r in records.iter() {
            match &mut run {
                Some((t, p, next, _)) if *t == r.topic() && *p == r.partition() => {
                    *next = r.offset() + 1;
                }
                _ => {
                    if let Some((t, p, next, _)) = run.take() {
                        self.positions.insert(TopicPartition::new(t, p), next);
                    }
                    let id = self.task_of(r.topic(), r.partition())?;
                    run = Some((r.topic(), r.partition(), r.offset() + 1, id));
                }
            }
            let Some(task) = run.and_then(|(.., id)| self.tasks.get_mut(&id)) else {
                return Err(Error::invalid(format!(
                    "a record of {}-{} arrived without its task",
                    r.topic(),
                    r.partition()
                )));
            };
            task.set_wall_clock(now);
            task.process(
                r.topic(),
                r.partition(),
                r.offset(),
                r.timestamp(),
                r.key(),
                r.value(),
                Headers::read(r.headers())?,
            )?;
        }
        if let Some((t, p, next, _)) = run {
            self.positions.insert(TopicPartition::new(t, p), next);
        }
        for task in self.tasks.values_mut() {
            task.set_wall_clock(now);
            task.punctuate_wall_clock()?;
        }
        self.send_outputs()
    }
}
