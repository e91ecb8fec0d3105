//! The Processor API: user-written processing steps and the context they run in.
//!
//! A [`Processor`] receives one [`StreamRecord`] at a time, may read and write the task's state
//! stores, and forwards any number of records to its children in the topology. It may also ask
//! to be called back periodically ([`ProcessorContext::schedule`]), by stream time (the largest
//! record timestamp the task has seen) or by wall-clock time.
//!
//! Every task (a sub-topology on one partition of its source topics, see
//! [`subtopology`](crate::streams::topology::subtopology)) has its own instance of each processor
//! of its sub-topology (made by the supplier given to
//! [`Topology::add_processor`](crate::streams::Topology::add_processor)), so a processor is
//! single-threaded and needs no locking.
//!
//! **Headers.** Each record carries the [`Headers`] of the input record it came from: a
//! processor reads them with [`ProcessorContext::headers`], and the records it forwards carry
//! them too unless it changes them first ([`ProcessorContext::headers_mut`],
//! [`ProcessorContext::set_headers`]). Records forwarded from a punctuation carry none unless
//! set. Sinks write the headers with the record; changelog records carry none. (Kafka's
//! record-context semantics: every DSL operator passes its input's headers on.)

use std::any::Any;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::streams::headers::Headers;
use crate::streams::state::store::{KeyValueStore, KvState};

/// Bounds every key and value type of a topology meets: records move between processors by
/// value and are cloned when a node has several children.
pub trait Data: Clone + Send + 'static {}
impl<T: Clone + Send + 'static> Data for T {}

/// A record inside a topology: typed key and value, and a timestamp in milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamRecord<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
    /// Milliseconds since the epoch (the input record's timestamp unless a processor changed it).
    pub timestamp: i64,
}

impl<K, V> StreamRecord<K, V> {
    /// A record.
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        StreamRecord {
            key,
            value,
            timestamp,
        }
    }
}

/// Which clock a punctuation follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PunctuationType {
    /// Stream time: the largest timestamp among the records the task has processed. It only
    /// moves when records arrive; the first punctuation is at the first record.
    StreamTime,
    /// The system clock (in the test driver, the driver's clock). Checked between records.
    WallClockTime,
}

/// A processing step; see the module docs.
///
/// # Implementer notes
/// Returning an error (or panicking) stops the application (see
/// [`App`](crate::streams::App)): the failed work is not committed and is processed again when the
/// application restarts. `KOut`/`VOut` are the types forwarded to children.
pub trait Processor<KIn, VIn, KOut = KIn, VOut = VIn>: Send + 'static {
    /// Called once per task before any record, after its stores were restored. Schedule
    /// punctuations here.
    ///
    /// # Errors
    /// Any error stops the application.
    fn init(&mut self, ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Processes one record.
    ///
    /// # Errors
    /// Any error stops the application.
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
        record: StreamRecord<KIn, VIn>,
    ) -> Result<()>;

    /// A punctuation scheduled with [`ProcessorContext::schedule`] is due; `timestamp` is the
    /// stream time or the wall-clock time (milliseconds) that triggered it.
    ///
    /// # Errors
    /// Any error stops the application.
    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
        kind: PunctuationType,
        timestamp: i64,
    ) -> Result<()> {
        let _ = (ctx, kind, timestamp);
        Ok(())
    }
}

/// A record moving between nodes, with its types erased (they are checked when the topology
/// is built, so the downcasts in [`ProcessorNode`] cannot fail for a built topology). Key and
/// value share one box: every hop between nodes costs one allocation, not two. The headers
/// cost none when empty (see [`Headers`]).
pub(crate) struct Msg {
    pub pair: Box<dyn Any + Send>,
    pub timestamp: i64,
    pub headers: Headers,
    pub clone: fn(&Msg) -> Msg,
}

impl Msg {
    /// A record without headers (a source's decoder makes these; the task gives them the input
    /// record's headers).
    pub fn new<K: Data, V: Data>(key: K, value: V, timestamp: i64) -> Msg {
        Msg::with_headers(key, value, timestamp, Headers::new())
    }

    pub fn with_headers<K: Data, V: Data>(
        key: K,
        value: V,
        timestamp: i64,
        headers: Headers,
    ) -> Msg {
        Msg {
            pair: Box::new((key, value)),
            timestamp,
            headers,
            clone: clone_msg::<K, V>,
        }
    }

    pub fn downcast<K: Data, V: Data>(self) -> Result<StreamRecord<K, V>> {
        match self.pair.downcast::<(K, V)>() {
            Ok(pair) => {
                let (key, value) = *pair;
                Ok(StreamRecord::new(key, value, self.timestamp))
            }
            Err(_) => Err(Error::invalid(format!(
                "record types differ from ({}, {}) (a topology type check was bypassed)",
                std::any::type_name::<K>(),
                std::any::type_name::<V>()
            ))),
        }
    }
}

fn clone_msg<K: Data, V: Data>(m: &Msg) -> Msg {
    let Some((k, v)) = m.pair.downcast_ref::<(K, V)>() else {
        unreachable!("a Msg's clone function is made with its own types");
    };
    Msg::with_headers(k.clone(), v.clone(), m.timestamp, m.headers.clone())
}

/// Where the record being processed came from.
#[derive(Clone, Debug)]
pub(crate) struct RecordMeta {
    pub topic: Arc<str>,
    pub partition: u32,
    pub offset: u64,
    pub timestamp: i64,
}

/// A record a sink wrote, before it is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OutRecord {
    /// Shared by every record of its sink.
    pub topic: Arc<str>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
    pub headers: Headers,
}

/// A punctuation request made by a node in `init`.
pub(crate) struct ScheduleRequest {
    pub kind: PunctuationType,
    pub interval_ms: i64,
}

/// The task-wide state behind every [`ProcessorContext`].
pub(crate) struct TaskContext {
    pub app_id: Arc<str>,
    pub partition: u32,
    /// The name of every node of the topology, by index, and the index of the node running
    /// (out of range outside any node): moving from node to node is an index store, not a
    /// reference-count update per record and hop.
    pub node_names: Arc<[Arc<str>]>,
    pub node: usize,
    pub current: Option<RecordMeta>,
    /// The headers of the record the running node processes (as it changed them), which the
    /// records it forwards carry; empty in `init` and punctuations unless the node set some.
    pub headers: Headers,
    pub stream_time: Option<i64>,
    pub wall_clock_ms: i64,
    /// By name. A task has a handful of stores and looks one up per record that uses it: an
    /// ordered map's few name comparisons cost less than hashing the name.
    pub stores: BTreeMap<String, KvState>,
    /// What the running node forwarded.
    pub forwarded: Vec<Msg>,
    /// What the sinks wrote since the outputs were last taken.
    pub outputs: Vec<OutRecord>,
    pub schedules: Vec<ScheduleRequest>,
    pub counters: Arc<crate::streams::Counters>,
    /// The committed view of every store of the application, by name: where global joins
    /// find their global table's store.
    pub registry: crate::streams::state::store::Registry,
}

impl TaskContext {
    /// The name of the node running (empty outside any node).
    pub fn node_name(&self) -> &str {
        node_name_at(&self.node_names, self.node)
    }
}

fn node_name_at(names: &[Arc<str>], node: usize) -> &str {
    names.get(node).map_or("", |n| n)
}

/// What a processor can do besides computing: forward records, use state stores, schedule
/// punctuations, and see where the current record came from.
pub struct ProcessorContext<'a, KOut, VOut> {
    task: &'a mut TaskContext,
    _types: PhantomData<fn(KOut, VOut)>,
}

impl<'a, KOut: Data, VOut: Data> ProcessorContext<'a, KOut, VOut> {
    pub(crate) fn new(task: &'a mut TaskContext) -> Self {
        ProcessorContext {
            task,
            _types: PhantomData,
        }
    }

    /// Sends a record to every child of this processor. The children run after this call
    /// returns to the task, in the order records were forwarded (depth first). The record
    /// carries the [`headers`](Self::headers) as they are at this call.
    pub fn forward(&mut self, record: StreamRecord<KOut, VOut>) {
        self.task.forwarded.push(Msg::with_headers(
            record.key,
            record.value,
            record.timestamp,
            self.task.headers.clone(),
        ));
    }

    /// [`forward`](Self::forward)s a record with `headers` instead of the current ones, which
    /// stay as they are: for a node that forwards a record it kept from an earlier step (a
    /// suppression buffer), which carries that record's own headers as Kafka's record context.
    pub(crate) fn forward_with_headers(
        &mut self,
        record: StreamRecord<KOut, VOut>,
        headers: Headers,
    ) {
        self.task.forwarded.push(Msg::with_headers(
            record.key,
            record.value,
            record.timestamp,
            headers,
        ));
    }

    /// The headers of the record being processed, including the changes this processor made
    /// to them so far (empty in [`Processor::init`] and [`Processor::punctuate`] unless set
    /// there). They are what the records this processor forwards next carry.
    ///
    /// ```
    /// use riverbed::streams::{
    ///     Headers, Processor, ProcessorContext, StreamRecord, Topology, TopologyTestDriver,
    /// };
    ///
    /// /// Tags each record with the number of headers it came with.
    /// struct Tag;
    /// impl Processor<String, String> for Tag {
    ///     fn process(
    ///         &mut self,
    ///         ctx: &mut ProcessorContext<'_, String, String>,
    ///         r: StreamRecord<String, String>,
    ///     ) -> riverbed::Result<()> {
    ///         let seen = ctx.headers().len().to_string();
    ///         ctx.headers_mut().remove("secret").add("seen", seen);
    ///         ctx.forward(r);
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let mut t = Topology::new("tagger");
    /// t.add_source::<String, String>("in", &["input"])?
    ///     .add_processor("tag", || Tag, &["in"])?
    ///     .add_sink::<String, String>("out", "output", &["tag"])?;
    /// let mut driver = TopologyTestDriver::new(t)?;
    /// let headers: Headers = [("trace", "t-1"), ("secret", "x")].into_iter().collect();
    /// driver.pipe_input_with_headers("input", &"k".to_string(), &"v".to_string(), 0, headers)?;
    /// let (_record, out) = driver.read_output_with_headers::<String, String>("output")?.remove(0);
    /// assert_eq!(out, [("trace", "t-1"), ("seen", "2")].into_iter().collect::<Headers>());
    /// # Ok::<(), riverbed::Error>(())
    /// ```
    pub fn headers(&self) -> &Headers {
        &self.task.headers
    }

    /// Changes the headers the records this processor forwards next carry (from the headers of
    /// the record being processed; see [`headers`](Self::headers)). Changes last until this
    /// call of `process` or `punctuate` returns.
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.task.headers
    }

    /// Replaces the headers the records this processor forwards next carry; see
    /// [`headers_mut`](Self::headers_mut).
    pub fn set_headers(&mut self, headers: Headers) {
        self.task.headers = headers;
    }

    /// A state store of the task's sub-topology, typed. Writes are part of the task's next
    /// commit.
    ///
    /// # Errors
    /// [`InvalidArgument`](crate::ErrorKind::InvalidArgument) if the task's sub-topology has no
    /// store with this name.
    pub fn store<K: crate::streams::Serde, V: crate::streams::Serde>(
        &mut self,
        name: &str,
    ) -> Result<KeyValueStore<'_, K, V>> {
        let (names, node) = (&self.task.node_names, self.task.node);
        let record_timestamp = self.task.current.as_ref().map(|m| m.timestamp);
        match self.task.stores.get_mut(name) {
            Some(s) => Ok(KeyValueStore::new(s, record_timestamp)),
            None => Err(Error::invalid(format!(
                "processor {} asked for state store {name:?}, which its task does not have \
                 (add it with add_state_store; in a topology of several sub-topologies, connect \
                 it to the processors that use it with connect_processor_and_state_stores)",
                node_name_at(names, node)
            ))),
        }
    }

    /// The value of `key` (bytes) in the global table store `store`, for global joins: the
    /// topology names the store, the running application holds it.
    pub(crate) fn global_value(&self, store: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.task.registry.get(store) {
            Some(data) => Ok(crate::streams::state::store::global_get(data, key)),
            None => Err(Error::invalid(format!(
                "processor {} asked for global table store {store:?}, which the application \
                 does not have",
                self.task.node_name()
            ))),
        }
    }

    /// A store's working state as bytes, for the windowed operators.
    pub(crate) fn raw_store(&mut self, name: &str) -> Result<&mut KvState> {
        let (names, node) = (&self.task.node_names, self.task.node);
        self.task.stores.get_mut(name).ok_or_else(|| {
            Error::invalid(format!(
                "processor {} asked for unknown state store {name:?}",
                node_name_at(names, node)
            ))
        })
    }

    /// Counts an input record a windowed operator dropped
    /// ([`StreamsMetrics::dropped_records`](crate::streams::StreamsMetrics::dropped_records)).
    pub(crate) fn record_dropped(&mut self) {
        self.task
            .counters
            .dropped
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Asks for [`Processor::punctuate`] every `interval` of stream time or wall-clock time.
    /// Only takes effect when called from [`Processor::init`].
    pub fn schedule(&mut self, interval: Duration, kind: PunctuationType) {
        let ms = i64::try_from(interval.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        self.task.schedules.push(ScheduleRequest {
            kind,
            interval_ms: ms,
        });
    }

    /// The application id.
    pub fn application_id(&self) -> &str {
        &self.task.app_id
    }

    /// The task's partition: the partition number of its input topics.
    pub fn task_partition(&self) -> u32 {
        self.task.partition
    }

    /// The topic of the input record being processed (`None` in a punctuation).
    pub fn topic(&self) -> Option<&str> {
        self.task.current.as_ref().map(|m| &*m.topic)
    }

    /// The partition of the input record being processed (`None` in a punctuation).
    pub fn partition(&self) -> Option<u32> {
        self.task.current.as_ref().map(|m| m.partition)
    }

    /// The offset of the input record being processed (`None` in a punctuation).
    pub fn offset(&self) -> Option<u64> {
        self.task.current.as_ref().map(|m| m.offset)
    }

    /// The timestamp of the input record being processed (`None` in a punctuation).
    pub fn timestamp(&self) -> Option<i64> {
        self.task.current.as_ref().map(|m| m.timestamp)
    }

    /// The task's stream time: the largest timestamp processed so far (`None` before the first
    /// record).
    pub fn stream_time(&self) -> Option<i64> {
        self.task.stream_time
    }

    /// The wall-clock time in milliseconds as of the current step (the driver's clock in the
    /// test driver).
    pub fn wall_clock_time(&self) -> i64 {
        self.task.wall_clock_ms
    }

    /// The name of the node running.
    pub fn node_name(&self) -> &str {
        self.task.node_name()
    }
}

/// A node as a task runs it, with its types erased.
pub(crate) trait Node: Send {
    fn init(&mut self, ctx: &mut TaskContext) -> Result<()>;
    fn process(&mut self, ctx: &mut TaskContext, msg: Msg) -> Result<()>;
    fn punctuate(&mut self, ctx: &mut TaskContext, kind: PunctuationType, ts: i64) -> Result<()>;
}

/// A user [`Processor`] as a [`Node`].
pub(crate) struct ProcessorNode<P, KIn, VIn, KOut, VOut> {
    pub processor: P,
    pub _types: PhantomData<fn(KIn, VIn, KOut, VOut)>,
}

impl<P, KIn, VIn, KOut, VOut> Node for ProcessorNode<P, KIn, VIn, KOut, VOut>
where
    P: Processor<KIn, VIn, KOut, VOut>,
    KIn: Data,
    VIn: Data,
    KOut: Data,
    VOut: Data,
{
    fn init(&mut self, ctx: &mut TaskContext) -> Result<()> {
        self.processor.init(&mut ProcessorContext::new(ctx))
    }

    fn process(&mut self, ctx: &mut TaskContext, msg: Msg) -> Result<()> {
        let record = msg.downcast::<KIn, VIn>()?;
        self.processor
            .process(&mut ProcessorContext::new(ctx), record)
    }

    fn punctuate(&mut self, ctx: &mut TaskContext, kind: PunctuationType, ts: i64) -> Result<()> {
        self.processor
            .punctuate(&mut ProcessorContext::new(ctx), kind, ts)
    }
}

/// A sink: encodes records and queues them for the task's next send.
pub(crate) struct SinkNode<K, V> {
    pub topic: Arc<str>,
    pub _types: PhantomData<fn(K, V)>,
}

impl<K: Data + crate::streams::Serde, V: Data + crate::streams::Serde> Node for SinkNode<K, V> {
    fn init(&mut self, _ctx: &mut TaskContext) -> Result<()> {
        Ok(())
    }

    fn process(&mut self, ctx: &mut TaskContext, msg: Msg) -> Result<()> {
        let r = msg.downcast::<K, V>()?;
        // The record is the sink's to drop: its bytes move into the output where they can.
        // A sink forwards nothing, so it takes the headers rather than sharing them.
        ctx.outputs.push(OutRecord {
            topic: Arc::clone(&self.topic),
            key: r.key.into_nullable()?,
            value: r.value.into_nullable()?,
            timestamp: r.timestamp,
            headers: std::mem::take(&mut ctx.headers),
        });
        Ok(())
    }

    fn punctuate(&mut self, _: &mut TaskContext, _: PunctuationType, _: i64) -> Result<()> {
        Ok(())
    }
}
