//! A stream thread (Kafka's `StreamThread`): one consumer-group member with its rebalance
//! listener (commit and drop tasks on revoke, restore on assign), the poll-process-commit loop,
//! and what happens when it fails: stop the application, or replace the member
//! ([`StreamThreadAction`](crate::streams::StreamThreadAction)).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::app::Shared;
use super::task_manager::{Output, ThreadState};
use crate::consumer::{Consumer, ConsumerConfig, IsolationLevel, OffsetReset, RebalanceListener};
use crate::error::{ErrorKind, Result};
use crate::group::assignor::Assignor;
use crate::store::Store;
use crate::streams::state::store::Registry;
use crate::streams::topology::subtopology::TaskId;
use crate::streams::topology::Topology;
use crate::streams::{Counters, StreamThreadAction, StreamsConfig};
use crate::topic::TopicPartition;

struct Listener(Arc<Mutex<ThreadState>>);

impl RebalanceListener for Listener {
    fn on_revoked(&mut self, consumer: &mut Consumer, _partitions: &[TopicPartition]) {
        let mut st = self.0.lock();
        match st.commit(consumer) {
            Ok(()) if !st.failed => st.save_snapshots(),
            Ok(()) => {}
            Err(e) => {
                if st.error.is_none() && !matches!(e.kind(), ErrorKind::CommitFailed { .. }) {
                    st.error = Some(e);
                }
            }
        }
        st.drop_tasks();
    }

    fn on_lost(&mut self, _consumer: &mut Consumer, _partitions: &[TopicPartition]) {
        self.0.lock().drop_tasks();
    }

    fn on_assigned(&mut self, _consumer: &mut Consumer, partitions: &[TopicPartition]) {
        let mut st = self.0.lock();
        if st.failed {
            return;
        }
        let ids: Result<std::collections::BTreeSet<TaskId>> = partitions
            .iter()
            .map(|tp| st.task_of(&tp.topic, tp.partition))
            .collect();
        let ids = match ids {
            Ok(ids) => ids,
            Err(e) => {
                st.error.get_or_insert(e);
                return;
            }
        };
        for id in ids {
            if st.tasks.contains_key(&id) {
                continue;
            }
            if let Err(e) = st.create_task(id) {
                st.error.get_or_insert(e);
                return;
            }
        }
    }
}

/// What a stream thread's group member is made of: enough to make the first one at start, and
/// a fresh one for each replacement after a failure.
pub(super) struct MemberSpec {
    pub(super) store: Store,
    pub(super) app_id: String,
    /// The thread's transactional id, with exactly-once. A replacement reuses it, which fences
    /// the failed member's producer.
    pub(super) transactional_id: Option<String>,
    pub(super) topics: Vec<String>,
    pub(super) topology: Arc<Topology>,
    pub(super) registry: Registry,
    pub(super) counters: Arc<Counters>,
    pub(super) config: StreamsConfig,
    /// `(store, changelog topic)`.
    pub(super) changelogs: Vec<(String, String)>,
    /// Per sub-topology, its `(store, changelog topic)` pairs.
    pub(super) sub_changelogs: Arc<Vec<Vec<(String, String)>>>,
    /// The sub-topology reading each source topic.
    pub(super) topic_subs: Arc<HashMap<String, u32>>,
}

/// One group member of a stream thread: its consumer and its state (tasks, producer).
pub(super) struct Member {
    consumer: Consumer,
    state: Arc<Mutex<ThreadState>>,
}

impl MemberSpec {
    /// A new consumer (not yet subscribed) and producer, with no tasks.
    pub(super) fn new_member(&self) -> Result<Member> {
        let eos = self.transactional_id.is_some();
        let output = match &self.transactional_id {
            Some(id) => Output::Txn {
                producer: self.store.transactional_producer(id)?,
                open: false,
            },
            None => Output::Plain(self.store.producer()),
        };
        let consumer = self.store.consumer(
            ConsumerConfig::new(self.app_id.clone())
                .auto_offset_reset(OffsetReset::Earliest)
                .enable_auto_commit(false)
                .assignor(Assignor::Range)
                .max_poll_records(self.config.max_poll_records)
                .isolation_level(if eos {
                    IsolationLevel::ReadCommitted
                } else {
                    IsolationLevel::ReadUncommitted
                }),
        )?;
        let state = Arc::new(Mutex::new(ThreadState {
            store: self.store.clone(),
            topology: Arc::clone(&self.topology),
            registry: Arc::clone(&self.registry),
            counters: Arc::clone(&self.counters),
            config: self.config.clone(),
            changelogs: self.changelogs.clone(),
            sub_changelogs: Arc::clone(&self.sub_changelogs),
            topic_subs: Arc::clone(&self.topic_subs),
            tasks: BTreeMap::new(),
            positions: HashMap::new(),
            output,
            error: None,
            failed: false,
        }));
        Ok(Member { consumer, state })
    }
}

/// A stream thread: runs its member until the application stops. When the member fails, the
/// application's [`StreamThreadAction`](crate::streams::StreamThreadAction) decides: stop the
/// application, or put a fresh member in its place and go on.
pub(super) fn run_thread(mut member: Member, spec: &MemberSpec, shared: &Shared) {
    let last = loop {
        let Member {
            mut consumer,
            state,
        } = member;
        let Err(e) = thread_loop(&mut consumer, &state, &spec.topics, shared) else {
            break Some(consumer);
        };
        // Nothing of the failed work may be committed, not even by the rebalance listener
        // when the consumer leaves the group.
        {
            let mut st = state.lock();
            st.failed = true;
            st.drop_tasks();
        }
        let action = shared.config.thread_action(&e);
        if action != StreamThreadAction::ReplaceThread || !shared.running.load(Ordering::SeqCst) {
            shared.fail(e);
            break Some(consumer);
        }
        tracing::warn!(target: "riverbed::streams", error = %e, "stream thread failed; replacing it");
        // The failed member leaves the group now, so that the rebalance handing its tasks out
        // does not wait for it to time out.
        close_consumer(consumer);
        drop(state);
        match spec.new_member() {
            Ok(fresh) => {
                spec.counters
                    .threads_replaced
                    .fetch_add(1, Ordering::Relaxed);
                member = fresh;
            }
            Err(e) => {
                shared.fail(e);
                break None;
            }
        }
    };
    shared.done.fetch_add(1, Ordering::SeqCst);
    while !shared.release.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    if let Some(consumer) = last {
        close_consumer(consumer);
    }
}

fn close_consumer(consumer: Consumer) {
    if let Err(e) = consumer.close() {
        tracing::warn!(target: "riverbed::streams", error = %e, "closing a stream thread's consumer failed");
    }
}

fn thread_loop(
    consumer: &mut Consumer,
    state: &Arc<Mutex<ThreadState>>,
    topics: &[String],
    shared: &Shared,
) -> Result<()> {
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe_with_listener(&topics, Listener(Arc::clone(state)))?;
    let interval = shared.config.effective_commit_interval();
    let mut last_commit = Instant::now();
    while shared.running.load(Ordering::SeqCst) {
        let records = consumer.poll(Duration::from_millis(20))?;
        let mut st = state.lock();
        if let Some(e) = st.error.take() {
            return Err(e);
        }
        st.process(&records)?;
        if last_commit.elapsed() >= interval {
            match st.commit(consumer) {
                Ok(()) => {}
                // The group moved on (this member was too slow): the work is redone by the
                // partitions' next owner.
                Err(e) if matches!(e.kind(), ErrorKind::CommitFailed { .. }) => st.drop_tasks(),
                Err(e) => return Err(e),
            }
            last_commit = Instant::now();
        }
    }
    let mut st = state.lock();
    st.commit(consumer)?;
    st.save_snapshots();
    Ok(())
}
