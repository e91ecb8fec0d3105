//! [`App`]: runs a topology against a [`Store`] with stream threads.
//!
//! Each thread is a member of the consumer group named by the application id, subscribed to the
//! source topics of every sub-topology (range assignor: partition `p` of topics with the same
//! partition count goes to the same member, so each sub-topology's co-partitioned topics move
//! together) and runs the tasks of the partitions it owns: task `s_p` for partition `p` of a
//! topic of sub-topology `s` (see [`subtopology`](crate::streams::topology::subtopology)). A
//! rebalance commits the thread's work and drops its tasks (`on_revoked`); the new owner creates
//! them again and restores their stores from the changelogs before processing (`on_assigned`). A
//! thread that was removed from the group (`on_lost`) drops its uncommitted work without committing
//! it. A thread that fails drops its uncommitted work the same way; it then either stops the
//! application or, if the application's handler says so, leaves the group and starts over as a
//! new member (`run_thread`).
//!
//! A thread that gives a task up after committing (revocation, clean close) writes checkpoint
//! snapshots of its stores, so the next owner restores from them plus the changelog after them
//! (see `restore.rs`). Several `App` instances with the same application id on one store share
//! the group, which is how an application scales out and in while it runs; each live instance
//! takes its own slot of transactional ids.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::stream_thread::{run_thread, MemberSpec};
use crate::config::CleanupPolicy;
use crate::error::{Error, ErrorKind, Result};
use crate::store::Store;
use crate::streams::runtime::global::{queries_of, registry_of, GlobalThread};
use crate::streams::serde::Serde;
use crate::streams::state::checkpoint;
use crate::streams::state::query::StoreQueries;
use crate::streams::state::store::ReadOnlyKeyValueStore;
use crate::streams::topology::subtopology::{self};
use crate::streams::topology::Topology;
use crate::streams::{Counters, ProcessingGuarantee, StreamsConfig, StreamsMetrics};
use crate::topic::TopicConfig;

/// A running streams application; see the module docs.
///
/// **Errors.** An error or panic in user code, a record that does not deserialize (with the
/// default [`DeserializationHandler::Fail`](crate::streams::DeserializationHandler::Fail)), a key,
/// value or state that does not serialize ([`Serde::encode`](crate::streams::Serde::encode) failed;
/// it comes as [`StreamsProcessing`](crate::ErrorKind::StreamsProcessing) naming the node, with the
/// [`Serialization`](crate::ErrorKind::Serialization) message) or a failed restore or commit
/// fails its stream thread: the thread's uncommitted work is discarded
/// (aborted, with exactly-once) and [`StreamsConfig::thread_error_handler`] decides what
/// follows ([`StreamThreadAction`](crate::streams::StreamThreadAction)). By default the whole
/// application stops: every thread stops, the others commit their work, [`App::error`] and
/// [`App::close`] return the error, and [`StreamsConfig::on_error`] is told; after a restart the
/// discarded work is processed again. With
/// [`StreamThreadAction::ReplaceThread`](crate::streams::StreamThreadAction::ReplaceThread) a fresh
/// group member takes the failed thread's place and the application goes on: the discarded work is
/// processed again at once.
///
/// ```
/// use std::time::Duration;
/// use riverbed::streams::{App, Builder, Materialized, Serde, StreamsConfig};
/// use riverbed::{ProducerRecord, Store, TopicConfig};
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
///     p.send(ProducerRecord::new("payments").key(who).value(amount.encode()?))?;
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
    /// Interactive queries of the stores.
    queries: StoreQueries,
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

pub(super) struct Shared {
    /// False once the application is stopping (close, or an error).
    pub(super) running: AtomicBool,
    /// Threads that made their final commit, or exited.
    pub(super) done: AtomicUsize,
    /// Set by `close` once every thread is done: they may leave the group now.
    pub(super) release: AtomicBool,
    pub(super) error: Mutex<Option<Error>>,
    pub(super) config: StreamsConfig,
}

impl Shared {
    pub(super) fn fail(&self, e: Error) {
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
    /// [`subtopology`](crate::streams::topology::subtopology) module docs give; a changelog,
    /// compacted, with its sub-topology's count), reads the global tables' topics to their end, and
    /// starts [`StreamsConfig::threads`] stream threads (and a global thread if there are global
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
            let Some(sub) = split.sub_of_store(&s.name) else {
                continue;
            };
            let partitions = plan.subs[sub as usize];
            let topic = s.changelog(&app_id);
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
            sub_changelogs[sub as usize].push((s.name.clone(), topic.clone()));
            changelogs.push((s.name.clone(), topic));
        }
        let topic_subs = Arc::new(split.topic_map());
        let sub_changelogs = Arc::new(sub_changelogs);
        let registry = registry_of(&topology);
        let queries = queries_of(&topology, &registry, "the application");
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
        let global =
            GlobalThread::start(store, &topology, &registry, eos, move |e| failing.fail(e))?;
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
            queries,
            counters,
            _global: global,
            started,
            _slot: slot,
        })
    }

    /// A read-only view of the committed state of a store, across all tasks.
    ///
    /// # Errors
    /// [`InvalidArgument`](ErrorKind::InvalidArgument) for an unknown store;
    /// [`InvalidStateStore`](ErrorKind::InvalidStateStore) for a window or session store (query
    /// those with `window_store`), as Kafka's key-value query type refuses them.
    pub fn store<K: Serde, V: Serde>(&self, name: &str) -> Result<ReadOnlyKeyValueStore<K, V>> {
        self.queries.key_value(name)
    }

    /// A read-only view of the committed state of a window store (a windowed aggregation's),
    /// keyed by the record key type `K`, across all tasks.
    ///
    /// # Errors
    /// [`InvalidArgument`](ErrorKind::InvalidArgument) for an unknown store;
    /// [`InvalidStateStore`](ErrorKind::InvalidStateStore) for a store that is not a windowed
    /// aggregation's.
    pub fn window_store<K: Serde, V: Serde>(
        &self,
        name: &str,
    ) -> Result<crate::streams::ReadOnlyWindowStore<K, V>> {
        self.queries.window(name)
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
