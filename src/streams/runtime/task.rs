//! A task: one sub-topology's instance for one partition of its source topics (task `s_p`,
//! see [`subtopology`](crate::streams::topology::subtopology)), with the sub-topology's stores,
//! stream time and punctuation schedules. The test driver and the stream threads both run tasks;
//! neither knows about processors, and a task knows nothing about consumers, producers or threads.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::streams::headers::Headers;
use crate::streams::state::store::{KvState, Registry, STREAM_TIME_KEY};
use crate::streams::topology::processor::{
    Msg, Node, OutRecord, PunctuationType, RecordMeta, TaskContext,
};
use crate::streams::topology::subtopology::{split, TaskId};
use crate::streams::topology::{Decoder, NodeKind, Topology};
use crate::streams::{Counters, DeserializationHandler};

struct Schedule {
    node: usize,
    kind: PunctuationType,
    interval: i64,
    next: Option<i64>,
}

impl Schedule {
    /// Whether the schedule is due at `now`; if so, moves it to its next time (skipping
    /// punctuations that are already past, as Kafka does).
    fn due(&mut self, now: i64) -> bool {
        match self.next {
            Some(n) if now < n => false,
            prev => {
                let base = prev.unwrap_or(now);
                let next = base.saturating_add(self.interval);
                self.next = Some(if now >= next {
                    now.saturating_add(self.interval)
                } else {
                    next
                });
                true
            }
        }
    }
}

/// `(store, key, value or None for a deletion, the row's timestamp in a timestamped store)`.
pub(crate) type ChangelogEntry<'a> = (&'a str, &'a [u8], Option<&'a [u8]>, Option<i64>);

pub(crate) struct Task {
    id: TaskId,
    topology: Arc<Topology>,
    nodes: Vec<Option<Box<dyn Node>>>,
    /// Per source topic: the source node, its decoder and the topic name shared by the
    /// records' metadata (so a record's `RecordMeta` costs no allocation).
    /// Searched per record: a task reads a handful of topics, so a scan of their names costs
    /// less than hashing the record's topic name.
    sources: Vec<(String, usize, Decoder, Arc<str>)>,
    ctx: TaskContext,
    schedules: Vec<Schedule>,
    registry: Registry,
    deser: DeserializationHandler,
    counters: Arc<Counters>,
    /// Records processed since the last commit.
    pub uncommitted: u64,
}

impl Task {
    /// The task `id`: the nodes and stores of sub-topology `id.subtopology` (the other
    /// sub-topologies' nodes are left out), reading partition `id.partition`.
    pub fn new(
        topology: Arc<Topology>,
        id: TaskId,
        registry: Registry,
        deser: DeserializationHandler,
        counters: Arc<Counters>,
    ) -> Task {
        let split = split(&topology);
        let mut nodes = Vec::new();
        let mut sources: Vec<(String, usize, Decoder, Arc<str>)> = Vec::new();
        for (i, n) in topology.nodes.iter().enumerate() {
            if split.node_sub[i] != id.subtopology {
                nodes.push(None);
                continue;
            }
            match &n.kind {
                NodeKind::Source { topics, decode } => {
                    for t in topics {
                        // One entry per topic: the last source naming it wins.
                        sources.retain(|(name, ..)| name != t);
                        sources.push((t.clone(), i, Arc::clone(decode), Arc::from(t.as_str())));
                    }
                    nodes.push(None);
                }
                NodeKind::Processor { factory } | NodeKind::Sink { factory, .. } => {
                    nodes.push(Some(factory()));
                }
            }
        }
        let ctx = TaskContext {
            app_id: Arc::from(topology.application_id()),
            partition: id.partition,
            node_names: topology.nodes.iter().map(|n| Arc::clone(&n.name)).collect(),
            node: usize::MAX,
            current: None,
            headers: Headers::new(),
            stream_time: None,
            wall_clock_ms: 0,
            stores: split
                .subs
                .get(id.subtopology as usize)
                .map(|sub| {
                    sub.stores
                        .iter()
                        .map(|s| {
                            let spec = topology.store(s);
                            let state = KvState::new(
                                spec.is_some_and(|s| s.timestamped),
                                spec.is_some_and(|s| s.kind.keeps_stream_time()),
                            );
                            (s.clone(), state)
                        })
                        .collect()
                })
                .unwrap_or_default(),
            forwarded: Vec::new(),
            outputs: Vec::new(),
            schedules: Vec::new(),
            counters: Arc::clone(&counters),
            registry: Arc::clone(&registry),
        };
        Task {
            id,
            topology,
            nodes,
            sources,
            ctx,
            schedules: Vec::new(),
            registry,
            deser,
            counters,
            uncommitted: 0,
        }
    }

    pub fn partition(&self) -> u32 {
        self.ctx.partition
    }

    pub fn id(&self) -> TaskId {
        self.id
    }

    pub fn set_wall_clock(&mut self, now_ms: i64) {
        self.ctx.wall_clock_ms = now_ms;
    }

    /// Applies one changelog record to a store (before `init`); `timestamp` is the row's
    /// timestamp if the record carries one.
    ///
    /// # Errors
    /// As [`KvState::restore`].
    pub fn restore(
        &mut self,
        store: &str,
        key: &[u8],
        value: Option<&[u8]>,
        timestamp: Option<i64>,
    ) -> Result<()> {
        match self.ctx.stores.get_mut(store) {
            Some(s) => s.restore(key, value, timestamp),
            None => Ok(()),
        }
    }

    /// Replaces a store's contents with a checkpoint snapshot (before `init` and before the
    /// changelog tail is restored).
    ///
    /// # Errors
    /// As [`KvState::load_snapshot`].
    pub fn load_snapshot(
        &mut self,
        store: &str,
        data: std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
    ) -> Result<()> {
        match self.ctx.stores.get_mut(store) {
            Some(s) => s.load_snapshot(data),
            None => Ok(()),
        }
    }

    /// A store's working contents (the committed state right after a commit) as a checkpoint
    /// snapshot holds them (with its stream time, see [`KvState::snapshot_data`]).
    pub fn store_data(
        &self,
        store: &str,
    ) -> Option<std::borrow::Cow<'_, std::collections::BTreeMap<Vec<u8>, Vec<u8>>>> {
        self.ctx.stores.get(store).map(KvState::snapshot_data)
    }

    /// Publishes the restored stores as committed and runs every processor's `init`. The view
    /// shares each restored map with the working state (no copy; the first write copies it,
    /// see [`state`](crate::streams::state::store)).
    pub fn init(&mut self) -> Result<()> {
        for (name, s) in &self.ctx.stores {
            if let Some(c) = self.registry.get(name) {
                c.write().insert(self.ctx.partition, Arc::clone(&s.data));
            }
        }
        for i in 0..self.nodes.len() {
            self.ctx.node = i;
            let Some(node) = self.nodes[i].as_mut() else {
                continue;
            };
            self.ctx.headers = Headers::new();
            let ctx = &mut self.ctx;
            let r = guarded(|| node.init(ctx));
            self.check(r)?;
            for req in std::mem::take(&mut self.ctx.schedules) {
                self.schedules.push(Schedule {
                    node: i,
                    kind: req.kind,
                    interval: req.interval_ms,
                    next: match req.kind {
                        PunctuationType::StreamTime => None,
                        PunctuationType::WallClockTime => {
                            Some(self.ctx.wall_clock_ms.saturating_add(req.interval_ms))
                        }
                    },
                });
            }
        }
        self.forward_all()
    }

    /// Processes one input record; the source's record carries `headers`. A record that does
    /// not decode fails the task, or with [`DeserializationHandler::LogAndContinue`] is
    /// counted as skipped.
    #[allow(clippy::too_many_arguments)]
    pub fn process(
        &mut self,
        topic: &str,
        partition: u32,
        offset: u64,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: Headers,
    ) -> Result<()> {
        self.uncommitted += 1;
        let Some((_, source, decode, topic_name)) =
            self.sources.iter().find(|(name, ..)| name == topic)
        else {
            return Err(Error::invalid(format!(
                "task {} got a record of {topic:?}, which none of its sources reads",
                self.id
            )));
        };
        let source = *source;
        let mut msg = match decode(key, value, timestamp) {
            Ok(m) => m,
            Err(e) => {
                let e = match e.into_kind() {
                    ErrorKind::Deserialization { reason } => ErrorKind::Deserialization {
                        reason: format!("record {topic}-{partition}@{offset}: {reason}"),
                    },
                    other => other,
                };
                return match self.deser {
                    DeserializationHandler::Fail => Err(e.into()),
                    DeserializationHandler::LogAndContinue => {
                        tracing::warn!(
                            target: "riverbed::streams",
                            app = %self.ctx.app_id,
                            error = %Error::from(e),
                            "skipping a record that does not deserialize"
                        );
                        self.counters.skipped.fetch_add(1, Ordering::Relaxed);
                        Ok(())
                    }
                };
            }
        };
        msg.headers = headers;
        // The source's timestamp extractor has run: this is the record's event time.
        let timestamp = msg.timestamp;
        self.ctx.current = Some(RecordMeta {
            topic: Arc::clone(topic_name),
            partition,
            offset,
            timestamp,
        });
        let now = self.ctx.stream_time.map_or(timestamp, |t| t.max(timestamp));
        self.ctx.stream_time = Some(now);
        self.dispatch_children(source, msg)?;
        self.counters.processed.fetch_add(1, Ordering::Relaxed);
        self.ctx.current = None;
        self.ctx.headers = Headers::new();
        self.punctuate(PunctuationType::StreamTime, now)
    }

    /// Runs the wall-clock punctuations due at the task's wall clock.
    pub fn punctuate_wall_clock(&mut self) -> Result<()> {
        self.punctuate(PunctuationType::WallClockTime, self.ctx.wall_clock_ms)
    }

    fn punctuate(&mut self, kind: PunctuationType, now: i64) -> Result<()> {
        for s in 0..self.schedules.len() {
            if self.schedules[s].kind != kind || !self.schedules[s].due(now) {
                continue;
            }
            let i = self.schedules[s].node;
            self.ctx.node = i;
            let Some(node) = self.nodes[i].as_mut() else {
                continue;
            };
            // A punctuation is about no record: what it forwards carries no headers unless it
            // sets some.
            self.ctx.headers = Headers::new();
            let ctx = &mut self.ctx;
            let r = guarded(|| node.punctuate(ctx, kind, now));
            self.check(r)?;
            let forwarded = std::mem::take(&mut self.ctx.forwarded);
            for m in forwarded {
                self.dispatch_children(i, m)?;
            }
        }
        Ok(())
    }

    /// Forwards what `init` forwarded (processors may forward from `init`).
    fn forward_all(&mut self) -> Result<()> {
        let forwarded = std::mem::take(&mut self.ctx.forwarded);
        if forwarded.is_empty() {
            return Ok(());
        }
        Err(Error::invalid(
            "a processor forwarded records from init; forward from process or punctuate",
        ))
    }

    /// Gives `msg` to each child of `node` (cloned for all but the last), depth first. The
    /// children are looked up by index at each step, so that no handle on the topology (a
    /// reference-count update per record and hop) is needed to borrow them across the calls.
    fn dispatch_children(&mut self, node: usize, msg: Msg) -> Result<()> {
        let count = self.topology.nodes[node].children.len();
        let Some(last) = count.checked_sub(1) else {
            return Ok(());
        };
        for i in 0..last {
            let child = self.topology.nodes[node].children[i];
            let copy = (msg.clone)(&msg);
            self.dispatch(child, copy)?;
        }
        let child = self.topology.nodes[node].children[last];
        self.dispatch(child, msg)
    }

    fn dispatch(&mut self, node: usize, mut msg: Msg) -> Result<()> {
        self.ctx.node = node;
        // The node sees (and forwards) the headers of the record it processes.
        self.ctx.headers = std::mem::take(&mut msg.headers);
        let Some(n) = self.nodes[node].as_mut() else {
            return Ok(());
        };
        let ctx = &mut self.ctx;
        let r = guarded(|| n.process(ctx, msg));
        self.check(r)?;
        if self.ctx.forwarded.is_empty() {
            return Ok(());
        }
        let mut forwarded = std::mem::take(&mut self.ctx.forwarded);
        for m in forwarded.drain(..) {
            self.dispatch_children(node, m)?;
        }
        // Hand the emptied buffer back so the next forward does not allocate one (unless a
        // child's forwards left one there meanwhile).
        if self.ctx.forwarded.capacity() == 0 {
            self.ctx.forwarded = forwarded;
        }
        Ok(())
    }

    /// Passes success through; turns an error or panic of user code into
    /// [`StreamsProcessing`](ErrorKind::StreamsProcessing) naming the task and node.
    fn check(&self, r: std::result::Result<Result<()>, String>) -> Result<()> {
        let (reason, cause) = match r {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) if matches!(e.kind(), ErrorKind::StreamsProcessing { .. }) => return Err(e),
            Ok(Err(e)) => (e.to_string(), Some(e)),
            Err(panic) => (format!("panicked: {panic}"), None),
        };
        Err(ErrorKind::StreamsProcessing {
            location: format!(
                "task {} of application {:?}, node {:?}",
                self.id,
                self.ctx.app_id,
                self.ctx.node_name()
            ),
            reason,
            cause,
        }
        .into())
    }

    /// The records the sinks wrote since the last call.
    pub fn take_outputs(&mut self) -> Vec<OutRecord> {
        std::mem::take(&mut self.ctx.outputs)
    }

    /// The changelog records of the stores' changes since the last commit:
    /// `(store, key, value or None for a deletion, row timestamp)`.
    pub fn changelog(&self) -> Vec<ChangelogEntry<'_>> {
        let mut out = Vec::new();
        for (name, s) in &self.ctx.stores {
            // In key order, whatever order the keys changed in.
            let mut keys: Vec<&Vec<u8>> = s.dirty.iter().collect();
            keys.sort_unstable();
            for k in keys {
                let (value, timestamp) = match s.data.get(k) {
                    // A row too short for its timestamp is never stored (every write adds
                    // one); were there one, it would go out as it is, without a timestamp.
                    Some(stored) => match s.row(stored) {
                        Ok((value, ts)) => (Some(value), ts),
                        Err(_) => (Some(stored.as_slice()), None),
                    },
                    None => (None, None),
                };
                out.push((name.as_str(), k.as_slice(), value, timestamp));
            }
            if let Some((value, timestamp)) = s.stream_time_change() {
                out.push((name.as_str(), STREAM_TIME_KEY, Some(value), timestamp));
            }
        }
        out
    }

    /// Marks the stores' changes committed: the interactive-query view takes them.
    pub fn commit_stores(&mut self) {
        for (name, s) in &mut self.ctx.stores {
            s.stream_time_committed();
            let dirty = std::mem::take(&mut s.dirty);
            if dirty.is_empty() {
                continue;
            }
            let Some(c) = self.registry.get(name) else {
                continue;
            };
            let mut c = c.write();
            // The working state wrote since the view shared its map (it has `dirty` keys), so
            // it owns a copy by now and this updates the view's map in place.
            let map = Arc::make_mut(c.entry(self.ctx.partition).or_default());
            for k in dirty {
                match s.data.get(&k) {
                    Some(v) => map.insert(k, v.clone()),
                    None => map.remove(&k),
                };
            }
        }
        self.uncommitted = 0;
    }
}

/// Runs user code; `Err` carries the message of a panic.
fn guarded(f: impl FnOnce() -> Result<()>) -> std::result::Result<Result<()>, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic with a non-string payload".to_string())
    })
}
