//! [`App`]: runs a topology against a [`Store`] with stream threads.
//!
//! Each thread is a member of the consumer group named by the application id, subscribed to the
//! source topics of every sub-topology (range assignor: partition `p` of topics with the same
//! partition count goes to the same member, so each sub-topology's co-partitioned topics move
//! together) and runs the tasks of the partitions it owns: task `s_p` for partition `p` of a
//! topic of sub-topology `s` (see [`subtopology`](crate::streams::topology::subtopology)). A rebalance commits the
//! thread's work and drops its tasks (`on_revoked`); the new owner creates them again and
//! restores their stores from the changelogs before processing (`on_assigned`). A thread that
//! was removed from the group (`on_lost`) drops its uncommitted work without committing it.
//! A thread that fails drops its uncommitted work the same way; it then either stops the
//! application or, if the application's handler says so, leaves the group and starts over as a
//! new member (`run_thread`).
//!
//! A thread that gives a task up after committing (revocation, clean close) writes checkpoint
//! snapshots of its stores, so the next owner restores from them plus the changelog after them
//! (see `restore.rs`). Several `App` instances with the same application id on one store share
//! the group, which is how an application scales out and in while it runs; each live instance
//! takes its own slot of transactional ids.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::config::CleanupPolicy;
use crate::consumer::{
    Consumer, ConsumerConfig, IsolationLevel, OffsetAndMetadata, OffsetReset, RebalanceListener,
};
use crate::error::{Error, ErrorKind, Result};
use crate::group::assignor::Assignor;
use crate::producer::{Producer, Record};
use crate::store::Store;
use crate::streams::headers::Headers;
use crate::streams::runtime::global::{registry_of, GlobalThread};
use crate::streams::runtime::processor::OutRecord;
use crate::streams::runtime::restore::{restore_task, save_task};
use crate::streams::runtime::task::Task;
use crate::streams::serde::Serde;
use crate::streams::state::checkpoint;
use crate::streams::state::store::{
    changelog_topic, ReadOnlyKeyValueStore, Registry, ROW_TIMESTAMP_HEADER, UNKNOWN_TIMESTAMP,
};
use crate::streams::topology::subtopology::{self, TaskId};
use crate::streams::topology::Topology;
use crate::streams::{
    Counters, ProcessingGuarantee, StreamThreadAction, StreamsConfig, StreamsMetrics,
};
use crate::topic::{TopicConfig, TopicPartition};
use crate::txn::TransactionalProducer;

/// A running streams application; see the module docs.
///
/// **Errors.** An error or panic in user code, a record that does not deserialize (with the
/// default [`DeserializationHandler::Fail`](crate::streams::DeserializationHandler::Fail)), a key, value
/// or state that does not serialize ([`Serde::encode`](crate::streams::Serde::encode) failed; it comes
/// as [`StreamsProcessing`](crate::ErrorKind::StreamsProcessing) naming the node, with the
/// [`Serialization`](crate::ErrorKind::Serialization) message) or a failed restore or commit
/// fails its stream thread: the thread's uncommitted work is discarded
/// (aborted, with exactly-once) and [`StreamsConfig::thread_error_handler`] decides what
/// follows ([`StreamThreadAction`]). By default the whole application stops: every thread
/// stops, the others commit their work, [`App::error`] and [`App::close`] return the error, and
/// [`StreamsConfig::on_error`] is told; after a restart the discarded work is processed again.
/// With [`StreamThreadAction::ReplaceThread`] a fresh group member takes the failed thread's
/// place and the application goes on: the discarded work is processed again at once.
///
/// ```
/// use std::time::Duration;
/// use riverbed::streams::{App, Builder, Materialized, Serde, StreamsConfig};
/// use riverbed::{Record, Store, TopicConfig};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// store.create_topic("payments", TopicConfig::new(2))?;
/// store.create_topic("balances", TopicConfig::new(2))?;
///
/// let b = Builder::new("balances-app");
/// b.stream::<String, i64>("payments")
///     .group_by_key()
///     .aggregate(|| 0, |_account, amount, balance| balance + amount, Materialized::named("balances"))
///     .to_stream()
///     .to("balances");
/// let config = StreamsConfig::new().threads(2).exactly_once();
/// let app = App::start(&store, b.build()?, config)?;
///
/// let p = store.producer();
/// for (who, amount) in [("alice", 50i64), ("bob", 18), ("alice", 25), ("alice", -60)] {
///     p.send(Record::new("payments").key(who).value(amount.encode()?))?;
/// }
/// let balances = app.store::<String, i64>("balances")?;          // interactive query
/// while balances.get("alice")? != Some(15) || balances.get("bob")? != Some(18) {
///     std::thread::sleep(Duration::from_millis(10));
/// }
/// app.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct App {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    registry: Registry,
    /// The stores whose rows carry a timestamp, which queries strip.
    timestamped_stores: Vec<String>,
    window_stores: Vec<String>,
    counters: Arc<Counters>,
    /// Stopped after the stream threads (fields drop after `Drop::drop`).
    _global: Option<GlobalThread>,
    started: Instant,
    /// This instance's slot among the live instances of the application in this process.
    _slot: InstanceSlot,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("threads", &self.threads.len())
            .field("running", &self.is_running())
            .finish_non_exhaustive()
    }
}

struct Shared {
    /// False once the application is stopping (close, or an error).
    running: AtomicBool,
    /// Threads that made their final commit, or exited.
    done: AtomicUsize,
    /// Set by `close` once every thread is done: they may leave the group now.
    release: AtomicBool,
    error: Mutex<Option<Error>>,
    config: StreamsConfig,
}

impl Shared {
    fn fail(&self, e: Error) {
        tracing::error!(target: "riverbed::streams", error = %e, "stream thread failed; stopping the application");
        if let Some(f) = &self.config.on_error {
            f(&e);
        }
        let mut slot = self.error.lock();
        if slot.is_none() {
            *slot = Some(e);
        }
        self.running.store(false, Ordering::SeqCst);
    }
}

impl App {
    /// Starts the application: checks the topics, creates the repartition and changelog topics
    /// that do not exist (a repartition topic with the count the
    /// [`subtopology`](crate::streams::topology::subtopology) module docs give; a changelog, compacted, with its
    /// sub-topology's count), reads the global tables' topics to their end, and starts
    /// [`StreamsConfig::threads`] stream threads (and a global thread if there are global
    /// tables).
    ///
    /// # Errors
    /// [`UnknownTopic`](ErrorKind::UnknownTopic) for a missing input or output topic;
    /// [`InvalidArgument`](ErrorKind::InvalidArgument) if the source topics of a sub-topology
    /// have different partition counts (naming the topics and their counts, and the join if a
    /// join reads them), if a repartition topic's explicit count differs from the topics it must
    /// be co-partitioned with, or if a changelog or repartition topic exists with another
    /// partition count;
    /// [`InvalidConfig`](ErrorKind::InvalidConfig) for zero threads; the errors of creating
    /// topics, consumers and transactional producers.
    pub fn start(store: &Store, topology: Topology, config: StreamsConfig) -> Result<App> {
        if config.threads == 0 {
            return Err(Error::config(
                "threads",
                "at least one stream thread is needed",
            ));
        }
        if config.max_poll_records == 0 {
            return Err(Error::config("max_poll_records", "must be at least 1"));
        }
        topology.validate()?;
        let split = subtopology::split(&topology);
        let plan = subtopology::prepare_internal_topics(store, &topology, &split)?;
        let sources = topology.source_topics();
        for t in topology.sink_topics() {
            store.describe_topic(&t)?;
        }
        let app_id = topology.application_id().to_string();
        let mut changelogs = Vec::new();
        let mut sub_changelogs: Vec<Vec<(String, String)>> = vec![Vec::new(); split.subs.len()];
        for s in &topology.stores {
            let Some(sub) = split.sub_of_store(s) else {
                continue;
            };
            let partitions = plan.subs[sub as usize];
            let topic = changelog_topic(&app_id, s);
            match store.describe_topic(&topic) {
                Ok(d) if d.partitions.len() as u64 != u64::from(partitions) => {
                    return Err(Error::invalid(format!(
                        "changelog topic {topic:?} has {} partitions, but its store's \
                         sub-topology {sub} reads topics of {partitions}",
                        d.partitions.len()
                    )))
                }
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::UnknownTopic { .. }) => {
                    match store.create_topic(
                        &topic,
                        TopicConfig::new(partitions).cleanup_policy(CleanupPolicy::Compact),
                    ) {
                        Ok(()) => {
                            // Snapshots of an earlier topic of that name describe another log.
                            for p in 0..partitions {
                                checkpoint::remove(&checkpoint::path(store.dir(), &topic, p))?;
                            }
                        }
                        Err(e) if matches!(e.kind(), ErrorKind::TopicExists { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
            sub_changelogs[sub as usize].push((s.clone(), topic.clone()));
            changelogs.push((s.clone(), topic));
        }
        let topic_subs = Arc::new(split.topic_map());
        let sub_changelogs = Arc::new(sub_changelogs);
        let registry = registry_of(&topology);
        let timestamped_stores = topology.timestamped_stores.clone();
        let window_stores = topology.window_stores.clone();
        let counters = Arc::new(Counters::default());
        let started = Instant::now();
        let slot = InstanceSlot::take(store, &app_id);
        let shared = Arc::new(Shared {
            running: AtomicBool::new(true),
            done: AtomicUsize::new(0),
            release: AtomicBool::new(false),
            error: Mutex::new(None),
            config: config.clone(),
        });
        let eos = config.guarantee == ProcessingGuarantee::ExactlyOnce;
        let failing = Arc::clone(&shared);
        let global = GlobalThread::start(store, &topology, eos, move |e| failing.fail(e))?;
        let topology = Arc::new(topology);
        let mut threads = Vec::new();
        for i in 0..config.threads {
            let spec = MemberSpec {
                store: store.clone(),
                app_id: app_id.clone(),
                transactional_id: eos.then(|| slot.transactional_id(&app_id, i)),
                topics: sources.clone(),
                topology: Arc::clone(&topology),
                registry: Arc::clone(&registry),
                counters: Arc::clone(&counters),
                config: config.clone(),
                changelogs: changelogs.clone(),
                sub_changelogs: Arc::clone(&sub_changelogs),
                topic_subs: Arc::clone(&topic_subs),
            };
            let member = spec.new_member()?;
            let shared = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name(format!("{app_id}-stream-{i}"))
                .spawn(move || run_thread(member, &spec, &shared))
                .map_err(|e| Error::io("spawn stream thread", "", e))?;
            threads.push(handle);
        }
        Ok(App {
            shared,
            threads,
            registry,
            timestamped_stores,
            window_stores,
            counters,
            _global: global,
            started,
            _slot: slot,
        })
    }

    /// A read-only view of the committed state of a store, across all tasks.
    ///
    /// # Errors
    /// [`InvalidArgument`](ErrorKind::InvalidArgument) for an unknown store.
    pub fn store<K: Serde, V: Serde>(&self, name: &str) -> Result<ReadOnlyKeyValueStore<K, V>> {
        match self.registry.get(name) {
            Some(c) => Ok(ReadOnlyKeyValueStore::new(
                name,
                Arc::clone(c),
                self.timestamped_stores.iter().any(|s| s == name),
                self.window_stores.iter().any(|s| s == name),
            )),
            None => Err(Error::invalid(format!(
                "the application has no state store {name:?}"
            ))),
        }
    }

    /// A read-only view of the committed state of a window store (a windowed aggregation's),
    /// keyed by the record key type `K`, across all tasks.
    ///
    /// # Errors
    /// [`InvalidArgument`](ErrorKind::InvalidArgument) for an unknown store.
    pub fn window_store<K: Serde, V: Serde>(
        &self,
        name: &str,
    ) -> Result<crate::streams::ReadOnlyWindowStore<K, V>> {
        crate::streams::dsl::window::window_store(
            &self.registry,
            name,
            self.timestamped_stores.iter().any(|s| s == name),
            "the application",
        )
    }

    /// Whether the application is running (not closed, not stopped by an error).
    pub fn is_running(&self) -> bool {
        self.shared.running.load(Ordering::SeqCst)
    }

    /// The error that stopped the application, if one did.
    pub fn error(&self) -> Option<Error> {
        self.shared.error.lock().as_ref().map(Error::duplicate)
    }

    /// The application's counters.
    pub fn metrics(&self) -> StreamsMetrics {
        StreamsMetrics {
            uptime: self.started.elapsed(),
            ..self.counters.snapshot()
        }
    }

    /// Stops the application: every thread commits its work and leaves the group.
    ///
    /// # Errors
    /// The error that stopped the application earlier, or that a final commit ran into.
    pub fn close(mut self) -> Result<()> {
        self.stop();
        match self.shared.error.lock().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn stop(&mut self) {
        self.shared.running.store(false, Ordering::SeqCst);
        // Every thread commits before any leaves the group: a member leaving rebalances the
        // group, which would make the others' final commits fail.
        while self.shared.done.load(Ordering::SeqCst) < self.threads.len()
            && self.threads.iter().any(|t| !t.is_finished())
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.shared.release.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                self.shared
                    .fail(Error::invalid("a stream thread panicked outside user code"));
            }
        }
    }
}

impl Drop for App {
    /// Stops the application like [`close`](App::close), ignoring errors.
    fn drop(&mut self) {
        self.stop();
    }
}

/// The live instances of each application (by store directory and application id) in this
/// process. Each instance takes the lowest free slot; its threads' transactional ids are
/// `<app-id>-<thread>` in slot 0 and `<app-id>-instance<slot>-<thread>` in the others, so that
/// several instances of one application can run side by side without fencing each other, and a
/// restarted application reuses (and so fences) the ids of the one it replaces.
static INSTANCES: Mutex<Vec<(std::path::PathBuf, String, usize)>> = Mutex::new(Vec::new());

struct InstanceSlot {
    dir: std::path::PathBuf,
    app_id: String,
    slot: usize,
}

impl InstanceSlot {
    fn take(store: &Store, app_id: &str) -> InstanceSlot {
        let dir = store.dir().to_path_buf();
        let mut live = INSTANCES.lock();
        let slot = (0..)
            .find(|n| {
                !live
                    .iter()
                    .any(|(d, a, s)| *d == dir && a == app_id && s == n)
            })
            .unwrap_or(0);
        live.push((dir.clone(), app_id.to_string(), slot));
        InstanceSlot {
            dir,
            app_id: app_id.to_string(),
            slot,
        }
    }

    fn transactional_id(&self, app_id: &str, thread: usize) -> String {
        match self.slot {
            0 => format!("{app_id}-{thread}"),
            n => format!("{app_id}-instance{n}-{thread}"),
        }
    }
}

impl Drop for InstanceSlot {
    fn drop(&mut self) {
        INSTANCES
            .lock()
            .retain(|(d, a, s)| !(*d == self.dir && *a == self.app_id && *s == self.slot));
    }
}

enum Output {
    Plain(Producer),
    Txn {
        producer: TransactionalProducer,
        open: bool,
    },
}

struct ThreadState {
    store: Store,
    topology: Arc<Topology>,
    registry: Registry,
    counters: Arc<Counters>,
    config: StreamsConfig,
    /// `(store, changelog topic)`.
    changelogs: Vec<(String, String)>,
    /// Sub-topology -> its stores' `(store, changelog topic)`.
    sub_changelogs: Arc<Vec<Vec<(String, String)>>>,
    /// Source topic -> the sub-topology reading it.
    topic_subs: Arc<HashMap<String, u32>>,
    tasks: BTreeMap<TaskId, Task>,
    /// Next offset of each input partition processed since the last commit.
    positions: HashMap<TopicPartition, u64>,
    output: Output,
    /// An error the rebalance listener ran into, for the thread's loop.
    error: Option<Error>,
    /// The thread failed: nothing may be committed any more.
    failed: bool,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn to_record(o: OutRecord) -> Record {
    let mut r = Record::with_shared_topic(o.topic)
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
    fn send_outputs(&mut self) -> Result<()> {
        let records: Vec<Record> = self
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
    fn commit(&mut self, consumer: &mut Consumer) -> Result<()> {
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
                let mut r = Record::with_shared_topic(topic)
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
    fn save_snapshots(&self) {
        let eos = matches!(self.output, Output::Txn { .. });
        for task in self.tasks.values() {
            let changelogs = self.changelogs_of(task.id());
            save_task(&self.store, task, changelogs, eos, &self.counters);
        }
    }

    /// The `(store, changelog topic)` of the stores of task `id`'s sub-topology.
    fn changelogs_of(&self, id: TaskId) -> &[(String, String)] {
        self.sub_changelogs
            .get(id.subtopology as usize)
            .map_or(&[], Vec::as_slice)
    }

    /// Drops every task and the uncommitted work (aborting the open transaction).
    fn drop_tasks(&mut self) {
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
    fn create_task(&mut self, id: TaskId) -> Result<()> {
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
    fn task_of(&self, topic: &str, partition: u32) -> Result<TaskId> {
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

    fn process(&mut self, records: &crate::consumer::ConsumerRecords) -> Result<()> {
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
struct MemberSpec {
    store: Store,
    app_id: String,
    /// The thread's transactional id, with exactly-once. A replacement reuses it, which fences
    /// the failed member's producer.
    transactional_id: Option<String>,
    topics: Vec<String>,
    topology: Arc<Topology>,
    registry: Registry,
    counters: Arc<Counters>,
    config: StreamsConfig,
    /// `(store, changelog topic)`.
    changelogs: Vec<(String, String)>,
    /// Per sub-topology, its `(store, changelog topic)` pairs.
    sub_changelogs: Arc<Vec<Vec<(String, String)>>>,
    /// The sub-topology reading each source topic.
    topic_subs: Arc<HashMap<String, u32>>,
}

/// One group member of a stream thread: its consumer and its state (tasks, producer).
struct Member {
    consumer: Consumer,
    state: Arc<Mutex<ThreadState>>,
}

impl MemberSpec {
    /// A new consumer (not yet subscribed) and producer, with no tasks.
    fn new_member(&self) -> Result<Member> {
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
fn run_thread(mut member: Member, spec: &MemberSpec, shared: &Shared) {
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
