//! Global tables at run time.
//!
//! A global table ([`Builder::global_table`](crate::streams::Builder::global_table)) is read whole
//! by the application, not split into tasks: [`App::start`](crate::streams::App::start) first reads
//! every partition of its topic to the end (bootstrapping), then a global thread keeps reading it
//! while the application runs. The table's store is the topic itself (no changelog): it is read
//! again from the beginning at every start. The topology only names the table's store; its contents
//! are the application's (in its store registry), and the join processors find them by name
//! through their processor context. Updates arrive independently of the tasks' records, as in
//! Kafka.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::consumer::{ConsumerConfig, IsolationLevel, OffsetReset};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::streams::state::query::StoreQueries;
use crate::streams::state::store::{global_apply, Committed, Registry};
use crate::streams::topology::StoreKind;
use crate::streams::topology::Topology;
use crate::topic::TopicPartition;

/// Each global table of `topology` as `(topic, its store's contents in registry)`.
pub(crate) fn global_tables(topology: &Topology, registry: &Registry) -> Vec<(String, Committed)> {
    topology
        .globals
        .iter()
        .filter_map(|g| {
            let data = registry.get(&g.store)?;
            Some((g.topic.clone(), Arc::clone(data)))
        })
        .collect()
}

/// The committed view of every store of `topology`, all empty: one per task store (filled by
/// the tasks), one per global table (filled by the global thread or the test driver).
pub(crate) fn registry_of(topology: &Topology) -> Registry {
    let mut map: HashMap<String, Committed> = topology
        .stores
        .iter()
        .map(|s| (s.name.clone(), Committed::default()))
        .collect();
    for g in &topology.globals {
        map.insert(g.store.clone(), Committed::default());
    }
    Arc::new(map)
}

/// The interactive queries of `topology`'s stores (task stores and global tables') over their
/// committed views in `registry`; `owner` names the application or driver in messages.
pub(crate) fn queries_of(
    topology: &Topology,
    registry: &Registry,
    owner: &'static str,
) -> StoreQueries {
    let tasks = topology
        .stores
        .iter()
        .map(|s| (s.name.clone(), s.kind, s.timestamped));
    let globals = topology
        .globals
        .iter()
        .map(|g| (g.store.clone(), StoreKind::KeyValue, false));
    StoreQueries::new(tasks.chain(globals), Arc::clone(registry), owner)
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
        registry: &Registry,
        read_committed: bool,
        on_error: impl Fn(Error) + Send + 'static,
    ) -> Result<Option<GlobalThread>> {
        if topology.globals.is_empty() {
            return Ok(None);
        }
        let globals = global_tables(topology, registry);
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
        for (topic, _) in &globals {
            let n = store.describe_topic(topic)?.partitions.len();
            for p in 0..u32::try_from(n).unwrap_or(u32::MAX) {
                tps.push(TopicPartition::new(topic.as_str(), p));
            }
        }
        consumer.assign(&tps)?;
        let ends: BTreeMap<TopicPartition, u64> = consumer.end_offsets(&tps)?.into_iter().collect();
        let apply = move |records: &crate::consumer::ConsumerRecords| {
            for r in records.iter() {
                let Some(key) = r.key() else { continue };
                for (_, data) in globals.iter().filter(|(t, _)| t == r.topic()) {
                    global_apply(data, key, r.value());
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
