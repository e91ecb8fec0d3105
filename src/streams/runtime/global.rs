//! Global tables at run time.
//!
//! A global table ([`Builder::global_table`](crate::streams::Builder::global_table)) is read whole by
//! the application, not split into tasks: [`App::start`](crate::streams::App::start) first reads every
//! partition of its topic to the end (bootstrapping), then a global thread keeps reading it while
//! the application runs. The table's store is the topic itself (no changelog): it is read again
//! from the beginning at every start. Tasks read it through the join processors; updates arrive
//! independently of the tasks' records, as in Kafka.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::consumer::{ConsumerConfig, IsolationLevel, OffsetReset};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::streams::state::store::{Committed, Registry};
use crate::streams::topology::Topology;
use crate::topic::TopicPartition;

/// A global table's store: the latest value of every key of its topic, shared by all tasks.
#[derive(Clone)]
pub(crate) struct GlobalStore {
    pub topic: String,
    pub store: String,
    /// One map (under partition 0), so that interactive queries read it like any store.
    pub data: Committed,
}

impl GlobalStore {
    pub fn new(topic: &str, store: &str) -> GlobalStore {
        GlobalStore {
            topic: topic.to_string(),
            store: store.to_string(),
            data: Committed::default(),
        }
    }

    /// Applies a record of the topic: a value replaces the key's, a tombstone deletes it.
    pub fn apply(&self, key: &[u8], value: Option<&[u8]>) {
        let mut data = self.data.write();
        // The global store's map is never shared with a task's working state, so this never
        // copies it.
        let map = Arc::make_mut(data.entry(0).or_default());
        match value {
            Some(v) => map.insert(key.to_vec(), v.to_vec()),
            None => map.remove(key),
        };
    }

    /// The current value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.data.read().get(&0).and_then(|m| m.get(key).cloned())
    }
}

/// The query view of every store of `topology`: a fresh one per task store, the global
/// tables' own.
pub(crate) fn registry_of(topology: &Topology) -> Registry {
    let mut map: HashMap<String, Committed> = topology
        .stores
        .iter()
        .map(|s| (s.name.clone(), Committed::default()))
        .collect();
    for g in &topology.globals {
        map.insert(g.store.clone(), Arc::clone(&g.data));
    }
    Arc::new(map)
}

/// The thread that keeps an application's global tables up to date; stopped and joined when
/// dropped.
pub(crate) struct GlobalThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl GlobalThread {
    /// Reads every global table's topic to its end, then starts the thread reading on.
    /// `None` if the topology has no global table. An error of the thread is given to
    /// `on_error`, and the thread stops.
    ///
    /// # Errors
    /// [`UnknownTopic`](ErrorKind::UnknownTopic) for a missing topic; read errors.
    pub fn start(
        store: &Store,
        topology: &Topology,
        read_committed: bool,
        on_error: impl Fn(Error) + Send + 'static,
    ) -> Result<Option<GlobalThread>> {
        if topology.globals.is_empty() {
            return Ok(None);
        }
        let globals: Vec<GlobalStore> = topology.globals.clone();
        let mut consumer = store.consumer(
            ConsumerConfig::default()
                .auto_offset_reset(OffsetReset::Earliest)
                .max_poll_records(10_000)
                .isolation_level(if read_committed {
                    IsolationLevel::ReadCommitted
                } else {
                    IsolationLevel::ReadUncommitted
                }),
        )?;
        let mut tps = Vec::new();
        for g in &globals {
            let n = store.describe_topic(&g.topic)?.partitions.len();
            for p in 0..u32::try_from(n).unwrap_or(u32::MAX) {
                tps.push(TopicPartition::new(g.topic.as_str(), p));
            }
        }
        consumer.assign(&tps)?;
        let ends: BTreeMap<TopicPartition, u64> = consumer.end_offsets(&tps)?.into_iter().collect();
        let apply = move |records: &crate::consumer::ConsumerRecords| {
            for r in records.iter() {
                let Some(key) = r.key() else { continue };
                for g in globals.iter().filter(|g| g.topic == r.topic()) {
                    g.apply(key, r.value());
                }
            }
        };
        loop {
            let mut behind = false;
            for (tp, end) in &ends {
                behind |= consumer.position(tp)? < *end;
            }
            if !behind {
                break;
            }
            apply(&consumer.poll(Duration::from_millis(50))?);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name(format!("{}-global", topology.application_id()))
            .spawn(move || {
                while !stopping.load(Ordering::SeqCst) {
                    match consumer.poll(Duration::from_millis(20)) {
                        Ok(records) => apply(&records),
                        Err(e) => {
                            on_error(e);
                            break;
                        }
                    }
                }
                if let Err(e) = consumer.close() {
                    tracing::warn!(target: "riverbed::streams", error = %e, "closing the global consumer failed");
                }
            })
            .map_err(|e| Error::io("spawn global stream thread", "", e))?;
        Ok(Some(GlobalThread {
            stop,
            handle: Some(handle),
        }))
    }
}

impl Drop for GlobalThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            if h.join().is_err() {
                tracing::warn!(target: "riverbed::streams", "the global stream thread panicked");
            }
        }
    }
}
