//! Riverbed Streams: an in-process stream-table layer in the spirit of Kafka Streams, built
//! only on Riverbed's public producer, consumer and transaction API.
//!
//! A stream is a sequence of facts (payments); a table is the latest value per key (balances).
//! Each is the other seen differently: aggregating a stream by key gives a table, and the
//! changes of a table are a stream. Ten lines show both:
//!
//! ```
//! use riverbed::streams::{Builder, Materialized, TopologyTestDriver};
//!
//! let b = Builder::new("balances-app");
//! b.stream::<String, i64>("payments")
//!     .group_by_key()
//!     .aggregate(|| 0, |_account, amount, balance| balance + amount, Materialized::named("balances"))
//!     .to_stream()
//!     .to("balances");
//! let mut driver = TopologyTestDriver::new(b.build()?)?;
//! for (who, amount) in [("alice", 50i64), ("bob", 18), ("alice", 25), ("alice", -60)] {
//!     driver.pipe_input("payments", &who.to_string(), &amount, 0)?;
//! }
//! assert_eq!(driver.store::<String, i64>("balances")?.get("alice")?, Some(15));
//! let changes = driver.read_output::<String, i64>("balances")?;
//! assert_eq!(changes.last().map(|r| r.value), Some(-60 + 75));
//! # Ok::<(), riverbed::Error>(())
//! ```
//!
//! The pieces:
//! - [`Serde`]: how keys and values become bytes (Kafka's layouts for the built-in types);
//!   with the `json` feature, `Json<T>` for any serde type.
//! - [`Topology`], [`Processor`], [`ProcessorContext`]: the Processor API — sources, processors,
//!   sinks, state stores, punctuation, record [`Headers`].
//! - [`Builder`], [`KStream`], [`KGroupedStream`], [`KTable`], [`KGroupedTable`],
//!   [`GlobalKTable`]: the DSL, which builds a topology (with repartition topics and joins,
//!   including windowed stream-stream joins over [`JoinWindows`] and foreign-key table joins,
//!   [`KTable::join_foreign_key`]).
//! - [`window`]: event time and windows — [`Consumed`] (timestamp extractors),
//!   [`KGroupedStream::windowed_by`] with [`TimeWindows`], [`SlidingWindows`] or
//!   [`SessionWindows`], [`Windowed`] keys, window stores, [`KTable::suppress`].
//! - [`subtopology`]: how a topology splits into sub-topologies at repartition topics, and how
//!   many partitions (hence tasks) each gets.
//! - [`TopologyTestDriver`]: runs a topology deterministically, without threads or a store.
//! - [`App`]: runs a topology against a [`Store`](crate::Store) with stream threads in a
//!   consumer group, at-least-once or exactly-once, with interactive queries of its stores.
//!
//! **Timestamps of results.** As in Kafka Streams (2.3 and later, KIP-258), tables and
//! aggregations keep a timestamp with each row, and a result record carries:
//! - `count`, `reduce`, `aggregate` of a [`KGroupedStream`] or a [`KGroupedTable`]: the latest
//!   timestamp of the records processed for its key so far (the stored aggregate's and the
//!   record's, the record's alone for a key's first record): input timestamps 1, 2, 5, 6, 4, 3
//!   give results at 1, 2, 5, 6, 6, 6;
//! - a table-table join (inner, left, outer): the latest of the two rows' timestamps (the
//!   present side's when the other has no row); a foreign-key join: the latest of the left and
//!   right rows' when a left row's subscription is answered, the right row's on a right update;
//! - a source table ([`Builder::table`]): each row the timestamp of its record; `filter`,
//!   `map_values` and `to_stream` keep the row's; a stream-table join, the stream record's;
//! - time (tumbling and hopping) windows (KIP-259) and sliding windows: the latest timestamp
//!   of the records aggregated into the window so far (a time window keeps it as its row's
//!   timestamp); session windows: the session's end (its latest record's timestamp).
//!
//! The row timestamps survive restarts: they are in the changelog (as the records' timestamps)
//! and in checkpoint snapshots (FORMAT.md 8.5 and 8.6). Interactive queries return plain
//! values.

// The layers, bottom up: `topology` (the node graph a program describes), `state` (stores,
// snapshots, the query facade), `runtime` (tasks, stream threads, the application, the test
// driver), `operators` (the processors the DSL creates) and `dsl` (the builder and its streams
// and tables). `serde`, `headers` and `json` are shared by all.
pub(crate) mod dsl;
mod headers;
#[cfg(feature = "json")]
mod json;
pub(crate) mod operators;
pub(crate) mod runtime;
mod serde;
pub(crate) mod state;
pub(crate) mod topology;

pub use dsl::window;
pub use topology::subtopology;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use self::serde::{deserialization_error, serialization_error, Serde};
pub use dsl::{
    BranchedKStream, Builder, GlobalKTable, KGroupedStream, KGroupedTable, KStream, KTable,
    Materialized, Repartitioned,
};
pub use headers::Headers;
#[cfg(feature = "json")]
pub use json::Json;
pub use operators::stream_join::JoinWindows;
pub use operators::suppress::{BufferConfig, Suppressed};
pub use operators::windowed::{
    Consumed, SessionWindowedKStream, SlidingWindowedKStream, TimeWindowedKStream, WindowedBy,
};
pub use runtime::app::App;
pub use runtime::test_driver::TopologyTestDriver;
pub use state::store::{KeyValueStore, ReadOnlyKeyValueStore};
pub use subtopology::SubtopologyDescription;
pub use topology::processor::{Data, Processor, ProcessorContext, PunctuationType, StreamRecord};
pub use topology::Topology;
pub use window::{
    ReadOnlyWindowStore, SessionWindows, SlidingWindows, TimeWindows, Window, Windowed,
};

use crate::error::Error;

/// What to do with an input record whose key or value does not deserialize.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeserializationHandler {
    /// Stop the application with the [`Deserialization`](crate::ErrorKind::Deserialization)
    /// error (Kafka's `LogAndFailExceptionHandler`). The default.
    #[default]
    Fail,
    /// Log a warning (target `riverbed::streams`), count the record in
    /// [`StreamsMetrics::skipped_records`] and go on (Kafka's
    /// `LogAndContinueExceptionHandler`).
    LogAndContinue,
}

/// Kafka's processing guarantees.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProcessingGuarantee {
    /// Outputs are sent as they are produced; at each commit the changelogs are written and
    /// flushed, then the input offsets committed. After a crash, the work since the last commit
    /// is done again: outputs and state updates may repeat, none is lost. The default.
    #[default]
    AtLeastOnce,
    /// Each commit writes the outputs, the changelog records and the input offsets of a thread's
    /// tasks in one transaction; inputs are read `read_committed`. After a crash, the work
    /// since the last commit is aborted and done again: every input affects the committed
    /// outputs and state exactly once.
    ExactlyOnce,
}

/// A callback told about the error that stopped an application.
type ErrorCallback = Arc<dyn Fn(&Error) + Send + Sync>;

/// The application's decision about a stream thread that failed.
type ThreadErrorHandler = Arc<dyn Fn(&Error) -> StreamThreadAction + Send + Sync>;

/// What an [`App`] does when a stream thread fails: an error or panic in user code, a record
/// that does not deserialize with [`DeserializationHandler::Fail`], a key, value or state that
/// does not serialize, a failed restore or commit.
/// The application's [`StreamsConfig::thread_error_handler`] returns it (Kafka's
/// `StreamsUncaughtExceptionHandler` responses).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamThreadAction {
    /// Stop the whole application with the error: every thread stops, the failed thread's
    /// uncommitted work is discarded, the others commit theirs; [`App::error`] and
    /// [`App::close`] return the error. The default.
    #[default]
    ShutdownApplication,
    /// Replace the failed thread and keep the application running. The failed thread's
    /// uncommitted work is discarded (with exactly-once its open transaction is aborted, and
    /// the replacement's transactional producer, with the same transactional id, fences it)
    /// and its consumer leaves the group; a fresh group member with a new consumer and producer
    /// joins in its place. The rebalance hands the tasks out again; their stores are restored
    /// from the changelogs and checkpoints, and their input is processed again from the last
    /// commit. Counted in [`StreamsMetrics::threads_replaced`].
    ///
    /// A failure that repeats deterministically (a record that always fails) is met again
    /// after every replacement, forever: the handler sees each error and decides when to stop
    /// (count them, or look at the error).
    ReplaceThread,
}

/// How an [`App`] runs (and how a [`TopologyTestDriver`] handles bad records).
#[derive(Clone)]
pub struct StreamsConfig {
    pub(crate) threads: usize,
    pub(crate) guarantee: ProcessingGuarantee,
    pub(crate) commit_interval: Option<Duration>,
    pub(crate) deserialization: DeserializationHandler,
    pub(crate) max_poll_records: usize,
    pub(crate) on_error: Option<ErrorCallback>,
    pub(crate) thread_error_handler: Option<ThreadErrorHandler>,
}

impl std::fmt::Debug for StreamsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamsConfig")
            .field("threads", &self.threads)
            .field("guarantee", &self.guarantee)
            .field("commit_interval", &self.effective_commit_interval())
            .field("deserialization", &self.deserialization)
            .field("max_poll_records", &self.max_poll_records)
            .field("on_error", &self.on_error.is_some())
            .field("thread_error_handler", &self.thread_error_handler.is_some())
            .finish()
    }
}

impl Default for StreamsConfig {
    fn default() -> Self {
        StreamsConfig {
            threads: 1,
            guarantee: ProcessingGuarantee::AtLeastOnce,
            commit_interval: None,
            deserialization: DeserializationHandler::Fail,
            max_poll_records: 1000,
            on_error: None,
            thread_error_handler: None,
        }
    }
}

impl StreamsConfig {
    /// The defaults: one thread, at-least-once, fail on deserialization errors.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of stream threads. Default: 1. Tasks (a sub-topology on one partition) are
    /// spread over them by the consumer group; more threads than partitions leaves some idle.
    #[must_use = "a setter returns the changed configuration"]
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// Exactly-once processing ([`ProcessingGuarantee::ExactlyOnce`]).
    #[must_use = "a setter returns the changed configuration"]
    pub fn exactly_once(mut self) -> Self {
        self.guarantee = ProcessingGuarantee::ExactlyOnce;
        self
    }

    /// At-least-once processing ([`ProcessingGuarantee::AtLeastOnce`]), the default.
    #[must_use = "a setter returns the changed configuration"]
    pub fn at_least_once(mut self) -> Self {
        self.guarantee = ProcessingGuarantee::AtLeastOnce;
        self
    }

    /// How often the threads commit. Default: 30 s at-least-once, 100 ms exactly-once (as in
    /// Kafka Streams).
    #[must_use = "a setter returns the changed configuration"]
    pub fn commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = Some(interval);
        self
    }

    /// What to do with records that do not deserialize. Default:
    /// [`DeserializationHandler::Fail`].
    #[must_use = "a setter returns the changed configuration"]
    pub fn deserialization_handler(mut self, handler: DeserializationHandler) -> Self {
        self.deserialization = handler;
        self
    }

    /// The most records a thread takes per poll. Default: 1000.
    #[must_use = "a setter returns the changed configuration"]
    pub fn max_poll_records(mut self, n: usize) -> Self {
        self.max_poll_records = n;
        self
    }

    /// A callback told about the error that stops the application, for logging or alerting:
    /// a stream thread's error that the [`thread_error_handler`](Self::thread_error_handler)
    /// answered with [`StreamThreadAction::ShutdownApplication`] (every one, by default), or
    /// a failure of the global thread. Errors after which a thread is replaced do not stop
    /// the application and are not passed here.
    #[must_use = "a setter returns the changed configuration"]
    pub fn on_error(mut self, f: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(f));
        self
    }

    /// Decides what happens when a stream thread fails (an error or panic in user code, a
    /// record that does not deserialize with [`DeserializationHandler::Fail`], a key, value or
    /// state that does not serialize, a failed restore or commit): stop the application, or
    /// replace the thread ([`StreamThreadAction`]). Called on the failed thread, once per
    /// failure, after its uncommitted work was discarded. Default: every failure stops the
    /// application. A failure inside the topology is a
    /// [`StreamsProcessing`](crate::ErrorKind::StreamsProcessing) error whose `cause` is the error
    /// the code returned (`None` for a panic).
    ///
    /// Replacing the thread retries the work that failed; an error that happens every time
    /// comes back after every replacement, so a handler that replaces should count (or look at
    /// the error) and stop at some point. The global thread (global tables) is never replaced:
    /// its failure stops the application without asking the handler.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use riverbed::streams::{StreamThreadAction, StreamsConfig};
    /// use riverbed::ErrorKind;
    ///
    /// let replaced = AtomicU32::new(0);
    /// let config = StreamsConfig::new().thread_error_handler(move |e| {
    ///     // Retry processing errors (a flaky lookup, say) a few times; stop on anything else,
    ///     // and at once on a value that cannot be serialized: retrying cannot help it.
    ///     let retry = match e.kind() {
    ///         ErrorKind::StreamsProcessing { cause: Some(c), .. }
    ///             if matches!(c.kind(), ErrorKind::Serialization { .. }) => false,
    ///         ErrorKind::StreamsProcessing { .. } => replaced.fetch_add(1, Ordering::SeqCst) < 3,
    ///         _ => false,
    ///     };
    ///     if retry {
    ///         StreamThreadAction::ReplaceThread
    ///     } else {
    ///         StreamThreadAction::ShutdownApplication
    ///     }
    /// });
    /// # let _ = config;
    /// ```
    #[must_use = "a setter returns the changed configuration"]
    pub fn thread_error_handler(
        mut self,
        f: impl Fn(&Error) -> StreamThreadAction + Send + Sync + 'static,
    ) -> Self {
        self.thread_error_handler = Some(Arc::new(f));
        self
    }

    /// What the [`thread_error_handler`](Self::thread_error_handler) decides about `e`
    /// (stop, without one). A panic in the handler stops the application.
    pub(crate) fn thread_action(&self, e: &Error) -> StreamThreadAction {
        let Some(handler) = &self.thread_error_handler else {
            return StreamThreadAction::ShutdownApplication;
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(e))).unwrap_or_else(|_| {
            tracing::error!(target: "riverbed::streams", "the thread error handler panicked");
            StreamThreadAction::ShutdownApplication
        })
    }

    /// The commit interval in effect: the one set, or the default for the guarantee.
    pub fn effective_commit_interval(&self) -> Duration {
        self.commit_interval.unwrap_or(match self.guarantee {
            ProcessingGuarantee::AtLeastOnce => Duration::from_secs(30),
            ProcessingGuarantee::ExactlyOnce => Duration::from_millis(100),
        })
    }

    /// The [`threads`](Self::threads) setting.
    pub fn get_threads(&self) -> usize {
        self.threads
    }

    /// The processing guarantee ([`exactly_once`](Self::exactly_once) or
    /// [`at_least_once`](Self::at_least_once)).
    pub fn get_guarantee(&self) -> ProcessingGuarantee {
        self.guarantee
    }

    /// The [`deserialization_handler`](Self::deserialization_handler) setting.
    pub fn get_deserialization_handler(&self) -> DeserializationHandler {
        self.deserialization
    }

    /// The [`max_poll_records`](Self::max_poll_records) setting.
    pub fn get_max_poll_records(&self) -> usize {
        self.max_poll_records
    }
}

/// Counters shared by an application's tasks.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub processed: AtomicU64,
    pub skipped: AtomicU64,
    pub commits: AtomicU64,
    pub dropped: AtomicU64,
    pub restored: AtomicU64,
    pub restore_remaining: AtomicU64,
    pub snapshot_entries: AtomicU64,
    pub snapshots_used: AtomicU64,
    pub snapshots_rejected: AtomicU64,
    pub snapshots_written: AtomicU64,
    pub threads_replaced: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> StreamsMetrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StreamsMetrics {
            processed_records: get(&self.processed),
            skipped_records: get(&self.skipped),
            commits: get(&self.commits),
            restored_records: get(&self.restored),
            restore_remaining: get(&self.restore_remaining),
            restored_from_snapshots: get(&self.snapshot_entries),
            snapshots_used: get(&self.snapshots_used),
            snapshots_rejected: get(&self.snapshots_rejected),
            snapshots_written: get(&self.snapshots_written),
            threads_replaced: get(&self.threads_replaced),
            uptime: Duration::ZERO,
            dropped_records: get(&self.dropped),
        }
    }
}

/// A snapshot of an application's counters ([`App::metrics`], [`TopologyTestDriver::metrics`]).
///
/// The restore figures cover every task restore since the application started: the first
/// start, restarts, and tasks moving between threads or instances at rebalances. A restore
/// loads each store's checkpoint snapshot when it has a usable one (`snapshots_used`,
/// `restored_from_snapshots`) and then replays the changelog from the snapshot's offset, or
/// from the start without one (`restored_records`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamsMetrics {
    /// Input records processed (including ones whose work was later redone after a failure).
    pub processed_records: u64,
    /// Input records skipped because they did not deserialize
    /// ([`DeserializationHandler::LogAndContinue`]).
    pub skipped_records: u64,
    /// Successful commits (by all threads).
    pub commits: u64,
    /// Input records a windowed aggregation dropped because every window they belong to had
    /// closed (their timestamp is later than window end + grace), or because their timestamp is
    /// negative; each is also logged (target `riverbed::streams`). See [`TimeWindows`]. As in
    /// Kafka, time and sliding windows count a record once per closed window it falls into,
    /// also when it still updates its open windows (see [`window`]).
    pub dropped_records: u64,
    /// Changelog records applied to stores while restoring them.
    pub restored_records: u64,
    /// Restore progress: changelog offsets that restores in progress still have to read (0 when
    /// no task is restoring). A restore adds its whole range when it starts and counts it down
    /// as it reads.
    pub restore_remaining: u64,
    /// Store entries loaded from checkpoint snapshots.
    pub restored_from_snapshots: u64,
    /// Store restores that started from a checkpoint snapshot.
    pub snapshots_used: u64,
    /// Checkpoint snapshots found but not used (damaged, stale, or not valid for the
    /// processing guarantee); those stores were restored from the whole changelog.
    pub snapshots_rejected: u64,
    /// Checkpoint snapshots written (at clean close and when a rebalance takes a task away).
    pub snapshots_written: u64,
    /// Stream threads replaced after a failure ([`StreamThreadAction::ReplaceThread`]).
    pub threads_replaced: u64,
    /// Time since the application started (zero in the test driver).
    pub uptime: Duration,
}

impl StreamsMetrics {
    /// The mean process rate since the start: input records per second over
    /// [`uptime`](Self::uptime) (0 while the uptime is zero).
    pub fn process_rate(&self) -> f64 {
        rate(self.processed_records, self.uptime)
    }

    /// The process rate between an `earlier` snapshot of the same application and this one:
    /// input records per second (0 if no time passed).
    pub fn process_rate_since(&self, earlier: &StreamsMetrics) -> f64 {
        rate(
            self.processed_records
                .saturating_sub(earlier.processed_records),
            self.uptime.saturating_sub(earlier.uptime),
        )
    }
}

fn rate(records: u64, over: Duration) -> f64 {
    if over.is_zero() {
        0.0
    } else {
        records as f64 / over.as_secs_f64()
    }
}
