//! [`TopologyTestDriver`]: runs a topology in the calling thread, deterministically, with no
//! store, consumer or producer: pipe input records in, read what the sinks wrote, query the
//! stores, advance the wall clock to fire punctuations.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::streams::headers::Headers;
use crate::streams::runtime::global::{global_tables, queries_of, registry_of};
use crate::streams::runtime::task::Task;
use crate::streams::serde::Serde;
use crate::streams::state::query::StoreQueries;
use crate::streams::state::store::global_apply;
use crate::streams::state::store::ReadOnlyKeyValueStore;
use crate::streams::topology::processor::{OutRecord, StreamRecord};
use crate::streams::topology::subtopology::{split, TaskId};
use crate::streams::topology::Topology;
use crate::streams::{Counters, StreamsConfig, StreamsMetrics};

/// Runs a [`Topology`] as one task per sub-topology (partition 0 of every topic: tasks `0_0`,
/// `1_0`, ...), committing after every input record: outputs become readable and store changes
/// queryable at once. Records a sink writes to a topic that a source reads (a repartition
/// topic, say) are processed too, by the task of the sub-topology reading it, after the record
/// that caused them and in the order they were written.
///
/// The wall clock starts at 0 and moves only with [`advance_wall_clock`](Self::advance_wall_clock).
/// After an error (an error or panic in user code, a key, value or state that does not
/// serialize, or a deserialization error with
/// [`Fail`](crate::streams::DeserializationHandler::Fail)) the driver's state is whatever the
/// failed record left; make a new driver to go on.
///
/// ```
/// use riverbed::streams::{Builder, TopologyTestDriver};
///
/// let b = Builder::new("evens");
/// b.stream::<String, i64>("numbers").filter(|_, n| n % 2 == 0).to("evens");
/// let mut driver = TopologyTestDriver::new(b.build()?)?;
/// for n in 1..=4 {
///     driver.pipe_input("numbers", &"k".to_string(), &n, 1000 + n)?;
/// }
/// let out = driver.read_output::<String, i64>("evens")?;
/// assert_eq!(out.iter().map(|r| (r.value, r.timestamp)).collect::<Vec<_>>(), [(2, 1002), (4, 1004)]);
/// # Ok::<(), riverbed::Error>(())
/// ```
pub struct TopologyTestDriver {
    /// One per sub-topology, by sub-topology number.
    tasks: Vec<Task>,
    /// Source topic -> the sub-topology (task) reading it.
    topic_tasks: HashMap<String, usize>,
    sources: Vec<String>,
    /// Each global table: its topic and its store's contents.
    globals: Vec<(String, crate::streams::state::store::Committed)>,
    outputs: HashMap<String, VecDeque<OutRecord>>,
    offsets: HashMap<String, u64>,
    /// Interactive queries of the stores.
    queries: StoreQueries,
    counters: Arc<Counters>,
    wall_clock_ms: i64,
}

impl std::fmt::Debug for TopologyTestDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopologyTestDriver")
            .field("sources", &self.sources)
            .field("wall_clock_ms", &self.wall_clock_ms)
            .finish_non_exhaustive()
    }
}

impl TopologyTestDriver {
    /// A driver with the default [`StreamsConfig`].
    ///
    /// # Errors
    /// As [`with_config`](Self::with_config).
    pub fn new(topology: Topology) -> Result<Self> {
        Self::with_config(topology, &StreamsConfig::default())
    }

    /// A driver; of `config` only the deserialization handler matters.
    ///
    /// # Errors
    /// [`InvalidArgument`](crate::ErrorKind::InvalidArgument) for a topology without sources;
    /// [`StreamsProcessing`](crate::ErrorKind::StreamsProcessing) if a processor's `init` fails.
    pub fn with_config(topology: Topology, config: &StreamsConfig) -> Result<Self> {
        topology.validate()?;
        let registry = registry_of(&topology);
        let queries = queries_of(&topology, &registry, "the topology");
        let counters = Arc::new(Counters::default());
        let sources = topology.source_topics();
        let globals = global_tables(&topology, &registry);
        let split = split(&topology);
        let topic_tasks = split
            .topic_map()
            .into_iter()
            .map(|(t, s)| (t, s as usize))
            .collect();
        let topology = Arc::new(topology);
        let mut tasks = Vec::new();
        for sub in &split.subs {
            let id = TaskId {
                subtopology: sub.id,
                partition: 0,
            };
            let mut task = Task::new(
                Arc::clone(&topology),
                id,
                Arc::clone(&registry),
                config.deserialization,
                Arc::clone(&counters),
            );
            task.set_wall_clock(0);
            task.init()?;
            tasks.push(task);
        }
        Ok(TopologyTestDriver {
            tasks,
            topic_tasks,
            sources,
            globals,
            outputs: HashMap::new(),
            offsets: HashMap::new(),
            queries,
            counters,
            wall_clock_ms: 0,
        })
    }

    /// Processes a record with key `key` and value `value` (encoded by their serdes) from
    /// `topic`, with `timestamp` in milliseconds.
    ///
    /// # Errors
    /// As [`pipe_raw`](Self::pipe_raw);
    /// [`Serialization`](crate::ErrorKind::Serialization) if `key` or `value` does not encode
    /// (nothing is processed then).
    pub fn pipe_input<K: Serde, V: Serde>(
        &mut self,
        topic: &str,
        key: &K,
        value: &V,
        timestamp: i64,
    ) -> Result<()> {
        self.pipe_raw(
            topic,
            key.encode_nullable()?.as_deref(),
            value.encode_nullable()?.as_deref(),
            timestamp,
        )
    }

    /// Processes a record like [`pipe_input`](Self::pipe_input) that carries `headers`: the
    /// source's record gets them (see
    /// [`ProcessorContext::headers`](crate::streams::ProcessorContext::headers)).
    ///
    /// # Errors
    /// As [`pipe_input`](Self::pipe_input).
    pub fn pipe_input_with_headers<K: Serde, V: Serde>(
        &mut self,
        topic: &str,
        key: &K,
        value: &V,
        timestamp: i64,
        headers: Headers,
    ) -> Result<()> {
        self.pipe_record(OutRecord {
            topic: Arc::from(topic),
            key: key.encode_nullable()?,
            value: value.encode_nullable()?,
            timestamp,
            headers,
        })
    }

    /// Processes a record given as raw (nullable) bytes, e.g. to test bad input. A record of a
    /// global table's topic updates the table (a null value deletes the key; a null key is
    /// ignored).
    ///
    /// # Errors
    /// [`InvalidArgument`](crate::ErrorKind::InvalidArgument) for a topic no source reads;
    /// [`Deserialization`](crate::ErrorKind::Deserialization) with the
    /// [`Fail`](crate::streams::DeserializationHandler::Fail) handler;
    /// [`StreamsProcessing`](crate::ErrorKind::StreamsProcessing) for an error or panic in user
    /// code, or a key, value or state the processing made that does not serialize (the
    /// reason carries the [`Serialization`](crate::ErrorKind::Serialization) message).
    pub fn pipe_raw(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
    ) -> Result<()> {
        self.pipe_record(OutRecord {
            topic: Arc::from(topic),
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            timestamp,
            headers: Headers::new(),
        })
    }

    /// Processes `input`, then the records its processing wrote to topics that sources read.
    fn pipe_record(&mut self, input: OutRecord) -> Result<()> {
        let topic = &*input.topic;
        if self.globals.iter().any(|(t, _)| t == topic) {
            if let Some(key) = input.key.as_deref() {
                for (_, data) in self.globals.iter().filter(|(t, _)| t == topic) {
                    global_apply(data, key, input.value.as_deref());
                }
            }
            return Ok(());
        }
        if !self.topic_tasks.contains_key(topic) {
            return Err(Error::invalid(format!(
                "no source of the topology reads {topic:?}"
            )));
        }
        let mut pending = VecDeque::from([input]);
        while let Some(r) = pending.pop_front() {
            let offset = self.offsets.entry(r.topic.to_string()).or_insert(0);
            let at = *offset;
            *offset += 1;
            let Some(&task) = self.topic_tasks.get(&*r.topic) else {
                continue;
            };
            self.tasks[task].process(
                &r.topic,
                0,
                at,
                r.timestamp,
                r.key.as_deref(),
                r.value.as_deref(),
                r.headers,
            )?;
            self.collect(&mut pending);
        }
        Ok(())
    }

    /// Moves the wall clock forward by `by` and runs the wall-clock punctuations due.
    ///
    /// # Errors
    /// [`StreamsProcessing`](crate::ErrorKind::StreamsProcessing) for an error or panic in a
    /// punctuation.
    pub fn advance_wall_clock(&mut self, by: Duration) -> Result<()> {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.wall_clock_ms = self.wall_clock_ms.saturating_add(ms);
        let mut pending = VecDeque::new();
        for task in &mut self.tasks {
            task.set_wall_clock(self.wall_clock_ms);
            task.punctuate_wall_clock()?;
        }
        self.collect(&mut pending);
        while let Some(r) = pending.pop_front() {
            self.pipe_record(r)?;
        }
        Ok(())
    }

    /// Commits the tasks' work: outputs become readable, store changes queryable; outputs to
    /// topics that sources read are queued in `pending`.
    fn collect(&mut self, pending: &mut VecDeque<OutRecord>) {
        let mut outputs = Vec::new();
        for task in &mut self.tasks {
            task.commit_stores();
            outputs.extend(task.take_outputs());
        }
        for out in outputs {
            if self.sources.iter().any(|s| **s == *out.topic) {
                pending.push_back(out.clone());
            }
            self.outputs
                .entry(out.topic.to_string())
                .or_default()
                .push_back(out);
        }
    }

    /// Takes every record written to `topic` so far (and not read yet), decoded.
    ///
    /// # Errors
    /// [`Deserialization`](crate::ErrorKind::Deserialization) if a record does not decode as
    /// `(K, V)`; the records are consumed anyway.
    pub fn read_output<K: Serde, V: Serde>(
        &mut self,
        topic: &str,
    ) -> Result<Vec<StreamRecord<K, V>>> {
        let records = self.outputs.remove(topic).unwrap_or_default();
        records
            .into_iter()
            .map(|r| {
                Ok(StreamRecord::new(
                    K::decode_nullable(r.key.as_deref())?,
                    V::decode_nullable(r.value.as_deref())?,
                    r.timestamp,
                ))
            })
            .collect()
    }

    /// Takes every record written to `topic` so far (and not read yet) like
    /// [`read_output`](Self::read_output), each with the headers it was written with.
    ///
    /// # Errors
    /// As [`read_output`](Self::read_output).
    pub fn read_output_with_headers<K: Serde, V: Serde>(
        &mut self,
        topic: &str,
    ) -> Result<Vec<(StreamRecord<K, V>, Headers)>> {
        let records = self.outputs.remove(topic).unwrap_or_default();
        records
            .into_iter()
            .map(|r| {
                let record = StreamRecord::new(
                    K::decode_nullable(r.key.as_deref())?,
                    V::decode_nullable(r.value.as_deref())?,
                    r.timestamp,
                );
                Ok((record, r.headers))
            })
            .collect()
    }

    /// A read-only view of a state store.
    ///
    /// # Errors
    /// [`InvalidArgument`](crate::ErrorKind::InvalidArgument) for an unknown store;
    /// [`InvalidStateStore`](crate::ErrorKind::InvalidStateStore) for a window or session store
    /// (query those with `window_store`), as Kafka's key-value query type refuses them.
    pub fn store<K: Serde, V: Serde>(&self, name: &str) -> Result<ReadOnlyKeyValueStore<K, V>> {
        self.queries.key_value(name)
    }

    /// A read-only view of a window store (a windowed aggregation's), keyed by the record key
    /// type `K`.
    ///
    /// # Errors
    /// [`InvalidArgument`](crate::ErrorKind::InvalidArgument) for an unknown store;
    /// [`InvalidStateStore`](crate::ErrorKind::InvalidStateStore) for a store that is not a
    /// windowed aggregation's.
    pub fn window_store<K: Serde, V: Serde>(
        &self,
        name: &str,
    ) -> Result<crate::streams::ReadOnlyWindowStore<K, V>> {
        self.queries.window(name)
    }

    /// The driver's counters (processed, skipped and dropped records).
    pub fn metrics(&self) -> StreamsMetrics {
        self.counters.snapshot()
    }
}
