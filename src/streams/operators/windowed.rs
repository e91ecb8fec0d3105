//! The windowed DSL: per-source timestamp extractors ([`Consumed`]),
//! [`KGroupedStream::windowed_by`] and the windowed aggregations it leads to
//! ([`TimeWindowedKStream`], [`SlidingWindowedKStream`], [`SessionWindowedKStream`]), each a
//! processor over a window store. See [`window`](crate::streams::dsl::window) for the semantics.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::error::Result;
use crate::streams::dsl::window::{
    split_windowed, windowed_bytes, CloseRule, SessionWindows, SlidingWindows, TimeWindows, Window,
    Windowed,
};
use crate::streams::dsl::{
    store_getter, Builder, Change, KGroupedStream, KStream, KTable, Materialized,
};
use crate::streams::serde::Serde;
use crate::streams::state::store::KvState;
use crate::streams::topology::processor::{Data, Processor, ProcessorContext, StreamRecord};
use crate::streams::topology::StoreKind;

/// How a source reads its topic: the timestamp extractor (Kafka's `Consumed`).
///
/// ```
/// use riverbed::streams::{Builder, Consumed, TopologyTestDriver};
///
/// // The event time is in the value: "<millis>,<payload>".
/// let b = Builder::new("event-time");
/// b.stream_with::<String, String>(
///     "events",
///     Consumed::with_timestamp_extractor(|_k, v: &String, record_ts| {
///         v.split(',').next().and_then(|t| t.parse().ok()).unwrap_or(record_ts)
///     }),
/// )
/// .to("out");
/// let mut d = TopologyTestDriver::new(b.build()?)?;
/// d.pipe_input("events", &"k".to_string(), &"42,hello".to_string(), 1_000)?;
/// assert_eq!(d.read_output::<String, String>("out")?[0].timestamp, 42);
/// # Ok::<(), riverbed::Error>(())
/// ```
pub struct Consumed<K, V> {
    extractor: Option<crate::streams::topology::Extractor<K, V>>,
}

impl<K, V> std::fmt::Debug for Consumed<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumed")
            .field("timestamp_extractor", &self.extractor.is_some())
            .finish()
    }
}

impl<K, V> Default for Consumed<K, V> {
    fn default() -> Self {
        Consumed { extractor: None }
    }
}

impl<K, V> Consumed<K, V> {
    /// The record's own timestamp is its event time (the default).
    pub fn with_record_timestamp() -> Self {
        Self::default()
    }

    /// Each record's event time is `extractor(key, value, record_timestamp)` in milliseconds.
    pub fn with_timestamp_extractor(
        extractor: impl Fn(&K, &V, i64) -> i64 + Send + Sync + 'static,
    ) -> Self {
        Consumed {
            extractor: Some(Arc::new(extractor)),
        }
    }
}

impl Builder {
    /// The stream of records of `topic` read as `consumed` says (a timestamp extractor); see
    /// [`Builder::stream`].
    pub fn stream_with<K: Serde + Data, V: Serde + Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
    ) -> KStream<'_, K, V> {
        let name = self.name("KSTREAM-SOURCE");
        self.add(|t| match consumed.extractor {
            None => t.add_source::<K, V>(&name, &[topic]).map(|_| ()),
            Some(f) => t
                .add_source_with_timestamp_extractor::<K, V>(&name, &[topic], move |k, v, ts| {
                    f(k, v, ts)
                })
                .map(|_| ()),
        });
        KStream::new(self, name, false)
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::streams::TimeWindows {}
    impl Sealed for crate::streams::SlidingWindows {}
    impl Sealed for crate::streams::SessionWindows {}
}

/// A window specification [`KGroupedStream::windowed_by`] takes: [`TimeWindows`],
/// [`SlidingWindows`] or [`SessionWindows`]. Sealed.
pub trait WindowedBy<'b, K, V>: sealed::Sealed {
    /// The windowed stream the specification gives.
    type Stream;
    /// The windowed stream of `grouped` (what `windowed_by` returns).
    fn windowed(self, grouped: &KGroupedStream<'b, K, V>) -> Self::Stream;
}

impl<'b, K: Data + Serde, V: Data> WindowedBy<'b, K, V> for TimeWindows {
    type Stream = TimeWindowedKStream<'b, K, V>;
    fn windowed(self, grouped: &KGroupedStream<'b, K, V>) -> Self::Stream {
        if let Err(e) = self.validate() {
            grouped.stream.builder.fail(e);
        }
        TimeWindowedKStream {
            stream: grouped.stream.clone(),
            windows: self,
        }
    }
}

impl<'b, K: Data + Serde, V: Data + Serde> WindowedBy<'b, K, V> for SlidingWindows {
    type Stream = SlidingWindowedKStream<'b, K, V>;
    fn windowed(self, grouped: &KGroupedStream<'b, K, V>) -> Self::Stream {
        SlidingWindowedKStream {
            stream: grouped.stream.clone(),
            windows: self,
        }
    }
}

impl<'b, K: Data + Serde, V: Data> WindowedBy<'b, K, V> for SessionWindows {
    type Stream = SessionWindowedKStream<'b, K, V>;
    fn windowed(self, grouped: &KGroupedStream<'b, K, V>) -> Self::Stream {
        if let Err(e) = self.validate() {
            grouped.stream.builder.fail(e);
        }
        SessionWindowedKStream {
            stream: grouped.stream.clone(),
            windows: self,
        }
    }
}

impl<'b, K: Data + Serde, V: Data + Serde> KGroupedStream<'b, K, V> {
    /// Windows the grouped stream by event time: [`TimeWindows`] (tumbling or hopping) and
    /// [`SlidingWindows`] give tables keyed by [`Windowed<K>`] with one entry per window;
    /// [`SessionWindows`] gives one per session. A bad specification (zero size, an advance
    /// larger than the size, a zero gap) is reported by [`Builder::build`].
    ///
    /// If an operation before changed the key ([`KStream::map`], [`KStream::select_key`],
    /// [`KStream::group_by`]), the records first go through a repartition topic
    /// (`<app-id>-KSTREAM-WINDOWED-<n>-repartition`), so that every record of a key reaches the
    /// task that holds its windows.
    pub fn windowed_by<W: WindowedBy<'b, K, V>>(&self, windows: W) -> W::Stream {
        if self.stream.key_changed {
            let name = self.stream.builder.name("KSTREAM-WINDOWED");
            let grouped = KGroupedStream {
                stream: self.stream.through_repartition(&name),
            };
            return windows.windowed(&grouped);
        }
        windows.windowed(self)
    }
}

/// The step of an aggregation: the old aggregate (if any), the key and the value give the new.
type Step<K, V, VA> = Arc<dyn Fn(Option<VA>, &K, V) -> VA + Send + Sync>;

/// The step of a `reduce`: a window's first value is its aggregate, later ones are combined.
fn reduce_step<K, V: 'static>(
    reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
) -> Step<K, V, V> {
    Arc::new(move |old, _k, v| match old {
        Some(a) => reducer(a, v),
        None => v,
    })
}

/// The step of an `aggregate`: `adder` on the old aggregate, or on `initializer()` for a new one.
fn aggregate_step<K, V, VA: 'static>(
    initializer: impl Fn() -> VA + Send + Sync + 'static,
    adder: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
) -> Step<K, V, VA> {
    Arc::new(move |old, k, v| adder(k, v, old.unwrap_or_else(&initializer)))
}

/// A session merger: two sessions' aggregates give the merged session's.
type Merger<K, VA> = Arc<dyn Fn(&K, VA, VA) -> VA + Send + Sync>;

/// Adds a windowed aggregation processor (and its store) after `stream` and returns its table.
/// A `timestamped` store keeps each window's row timestamp (see
/// [`state`](crate::streams::state::store)).
fn add_windowed<'b, K: Data, V: Data, KT: Data + Serde, VT: Data + Serde, P>(
    stream: &KStream<'b, K, V>,
    store_name: Option<String>,
    kind: StoreKind,
    extra_stores: &[(&str, StoreKind)],
    timestamped: bool,
    rule: CloseRule,
    supplier: impl Fn(Arc<str>) -> P + Send + Sync + 'static,
) -> KTable<'b, KT, VT>
where
    P: Processor<K, V, KT, Change<VT>>,
{
    let b = stream.builder;
    let store = store_name.unwrap_or_else(|| b.name("KSTREAM-AGGREGATE-STATE-STORE"));
    let node = b.name("KSTREAM-WINDOWAGGREGATE");
    let store_arc: Arc<str> = Arc::from(store.as_str());
    b.add(|t| {
        t.add_store(&store, kind, timestamped)?;
        for (extra, extra_kind) in extra_stores {
            t.add_store(&format!("{store}{extra}"), *extra_kind, false)?;
        }
        t.add_processor::<_, K, V, KT, Change<VT>>(
            &node,
            move || supplier(Arc::clone(&store_arc)),
            &[&stream.node],
        )
        .map(|_| ())
    });
    b.windowed.borrow_mut().insert(node.clone(), rule);
    let mut stores = vec![store.clone()];
    stores.extend(
        extra_stores
            .iter()
            .map(|(extra, _)| format!("{store}{extra}")),
    );
    b.connect(&node, &stores);
    KTable::new(b, node, Some(store.clone()), store_getter::<KT, VT>(store))
}

/// A grouped stream windowed by [`TimeWindows`]; aggregate it into a table of windows.
pub struct TimeWindowedKStream<'b, K, V> {
    stream: KStream<'b, K, V>,
    windows: TimeWindows,
}

impl<K, V> std::fmt::Debug for TimeWindowedKStream<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeWindowedKStream")
            .field("node", &self.stream.node)
            .field("windows", &self.windows)
            .finish()
    }
}

impl<'b, K: Data + Serde, V: Data> TimeWindowedKStream<'b, K, V> {
    /// The number of records per key and window.
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<'b, Windowed<K>, i64> {
        self.aggregate(|| 0, |_k, _v, n| n + 1, materialized)
    }

    /// Per key and window, the values combined with `reducer(aggregate, value)`; a window's
    /// first value is its initial aggregate.
    pub fn reduce(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<'b, Windowed<K>, V>
    where
        V: Serde,
    {
        self.build(reduce_step(reducer), materialized)
    }

    /// Per key and window, `adder(key, value, aggregate)` folded over the window's records in
    /// arrival order, starting from `initializer()`.
    pub fn aggregate<VA: Data + Serde>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        adder: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<'b, Windowed<K>, VA> {
        self.build(aggregate_step(initializer, adder), materialized)
    }

    fn build<VA: Data + Serde>(
        &self,
        step: Step<K, V, VA>,
        materialized: Materialized<K, VA>,
    ) -> KTable<'b, Windowed<K>, VA> {
        let windows = self.windows;
        add_windowed(
            &self.stream,
            materialized.name,
            StoreKind::Window,
            &[],
            true,
            windows.close_rule(),
            move |store| TimeWindowAggregate {
                windows,
                store,
                step: Arc::clone(&step),
                index: Expiry::default(),
            },
        )
    }
}

/// Stored windows by close time, to delete them once their retention is over; and the
/// aggregation's stream time, kept as its store's stream time (`KvState::stream_time`, which
/// the changelog and snapshots carry) so that a restarted task does not reopen windows that
/// had closed.
#[derive(Default)]
struct Expiry {
    by_close: BTreeSet<(i64, Vec<u8>)>,
    stream_time: Option<i64>,
}

impl Expiry {
    /// Indexes every window of `state` and reads the stream time (after a restore).
    fn rebuild(&mut self, state: &KvState, rule: CloseRule) -> Result<()> {
        self.by_close.clear();
        self.stream_time = state.stream_time();
        for k in state.data.keys() {
            let (_, w) = split_windowed(k)?;
            self.by_close.insert((rule.close(w), k.clone()));
        }
        Ok(())
    }

    /// The stream time for a record at `ts`: the task's, or the one restored if larger; set as
    /// the store's stream time when it moves.
    fn observe(&mut self, state: &mut KvState, task_time: Option<i64>, ts: i64) -> i64 {
        let now = task_time
            .unwrap_or(ts)
            .max(self.stream_time.unwrap_or(i64::MIN));
        if self.stream_time != Some(now) {
            self.stream_time = Some(now);
            state.set_stream_time(now);
        }
        now
    }

    fn insert(&mut self, close: i64, key: Vec<u8>) {
        self.by_close.insert((close, key));
    }

    /// Deletes the windows that closed at least `retention` before `now`.
    fn expire(&mut self, state: &mut KvState, now: i64, retention: i64) {
        while let Some((close, _)) = self.by_close.first() {
            if close.saturating_add(retention) > now {
                break;
            }
            let Some((_, key)) = self.by_close.pop_first() else {
                break;
            };
            if state.data.contains_key(&key) {
                state.delete(&key);
            }
        }
    }
}

/// Logs and counts a dropped record (a windowed aggregation's or a stream-stream join's).
pub(crate) fn drop_record<KO: Data, VO: Data>(
    ctx: &mut ProcessorContext<'_, KO, VO>,
    timestamp: i64,
    why: &str,
) {
    tracing::warn!(
        target: "riverbed::streams",
        node = ctx.node_name(),
        timestamp,
        stream_time = ctx.stream_time(),
        topic = ctx.topic(),
        partition = ctx.partition(),
        offset = ctx.offset(),
        "dropping a record: {why}"
    );
    ctx.record_dropped();
}

struct TimeWindowAggregate<K, V, VA> {
    windows: TimeWindows,
    store: Arc<str>,
    step: Step<K, V, VA>,
    index: Expiry,
}

impl<K: Data + Serde, V: Data, VA: Data + Serde> Processor<K, V, Windowed<K>, Change<VA>>
    for TimeWindowAggregate<K, V, VA>
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>) -> Result<()> {
        let rule = self.windows.close_rule();
        self.index.rebuild(ctx.raw_store(&self.store)?, rule)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        r: StreamRecord<K, V>,
    ) -> Result<()> {
        let st = ctx.stream_time();
        let now = self
            .index
            .observe(ctx.raw_store(&self.store)?, st, r.timestamp);
        if r.timestamp < 0 {
            drop_record(ctx, r.timestamp, "negative timestamp (in no window)");
            return Ok(());
        }
        let rule = self.windows.close_rule();
        // Kafka's `KStreamWindowAggregate`: each closed window of the record is logged and
        // counted as one dropped record; the record still updates its open windows.
        let mut open: Vec<Window> = Vec::new();
        for w in self.windows.windows_for(r.timestamp) {
            if rule.close(w) > now {
                open.push(w);
            } else {
                drop_record(
                    ctx,
                    r.timestamp,
                    &format!("the time window [{}, {}) has closed", w.start, w.end),
                );
            }
        }
        if open.is_empty() {
            return Ok(());
        }
        let kb = r.key.encode()?;
        let last = open.len() - 1;
        let mut value = Some(r.value);
        for (i, w) in open.into_iter().enumerate() {
            let v = if i == last {
                value.take()
            } else {
                value.clone()
            };
            let Some(v) = v else { break };
            let wk = windowed_bytes(&kb, w);
            let step = &self.step;
            let key = &r.key;
            // Kafka's rule (KIP-258/259): a window's result carries the latest timestamp of the
            // records aggregated into it so far, kept as the window's row timestamp.
            let (old, new, timestamp) =
                ctx.raw_store(&self.store)?
                    .update_timestamped(wk.clone(), |stored| {
                        let (old, timestamp) = match stored {
                            Some((ts, bytes)) => (Some(VA::decode(bytes)?), ts.max(r.timestamp)),
                            None => (None, r.timestamp),
                        };
                        let new = step(old.clone(), key, v);
                        Ok((timestamp, new.encode()?, (old, new, timestamp)))
                    })?;
            self.index.insert(rule.close(w), wk);
            ctx.forward(StreamRecord::new(
                Windowed::new(r.key.clone(), w),
                Change::new(Some(new), old),
                timestamp,
            ));
        }
        let state = ctx.raw_store(&self.store)?;
        self.index.expire(state, now, self.windows.retention);
        Ok(())
    }
}

/// A grouped stream windowed by [`SlidingWindows`]; aggregate it into a table of windows.
pub struct SlidingWindowedKStream<'b, K, V> {
    stream: KStream<'b, K, V>,
    windows: SlidingWindows,
}

impl<K, V> std::fmt::Debug for SlidingWindowedKStream<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlidingWindowedKStream")
            .field("node", &self.stream.node)
            .field("windows", &self.windows)
            .finish()
    }
}

impl<'b, K: Data + Serde, V: Data + Serde> SlidingWindowedKStream<'b, K, V> {
    /// The number of records per key and window.
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<'b, Windowed<K>, i64> {
        self.aggregate(|| 0, |_k, _v, n| n + 1, materialized)
    }

    /// Per key and window, the window's values combined with `reducer(aggregate, value)` in
    /// arrival order.
    pub fn reduce(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<'b, Windowed<K>, V> {
        self.build(reduce_step(reducer), materialized)
    }

    /// Per key and window, `adder(key, value, aggregate)` folded over the window's records in
    /// arrival order, starting from `initializer()`.
    pub fn aggregate<VA: Data + Serde>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        adder: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<'b, Windowed<K>, VA> {
        self.build(aggregate_step(initializer, adder), materialized)
    }

    fn build<VA: Data + Serde>(
        &self,
        step: Step<K, V, VA>,
        materialized: Materialized<K, VA>,
    ) -> KTable<'b, Windowed<K>, VA> {
        let windows = self.windows;
        add_windowed(
            &self.stream,
            materialized.name,
            StoreKind::Window,
            &[(RECORDS_SUFFIX, StoreKind::SlidingRecords)],
            false,
            windows.close_rule(),
            move |store| SlidingWindowAggregate {
                windows,
                records: Arc::from(format!("{store}{RECORDS_SUFFIX}")),
                store,
                step: Arc::clone(&step),
                index: Expiry::default(),
                record_index: BTreeSet::new(),
                next_seq: 0,
            },
        )
    }
}

/// The suffix of the name of a sliding aggregation's raw-record store.
const RECORDS_SUFFIX: &str = "-records";

struct SlidingWindowAggregate<K, V, VA> {
    windows: SlidingWindows,
    store: Arc<str>,
    /// Raw records: `key | timestamp (8) | arrival sequence (8)` -> value.
    records: Arc<str>,
    step: Step<K, V, VA>,
    index: Expiry,
    /// Raw records by timestamp, to prune them.
    record_index: BTreeSet<(i64, Vec<u8>)>,
    next_seq: u64,
}

impl<K: Data + Serde, V: Data + Serde, VA: Data + Serde> SlidingWindowAggregate<K, V, VA> {
    /// The rule by which the sliding store deletes windows: `retention` after they close, but
    /// never before `2 * difference` more, so that every window a record that is still accepted
    /// consults (Kafka fetches windows starting from `ts - 2 * difference`) is still there.
    fn expiry_rule(&self) -> CloseRule {
        CloseRule {
            grace: self
                .windows
                .grace
                .saturating_add(self.windows.difference.saturating_mul(2)),
            inclusive_end: true,
        }
    }
}

/// What the sliding aggregation knows of one record while it processes it: the key, the
/// record, the accepted records near it and the stream time windows must reach.
struct SlidingStep<'a, K> {
    key: &'a K,
    kb: &'a [u8],
    t: i64,
    /// The current record's arrival sequence number.
    seq: u64,
    /// The raw records of the key near `t` (the current one included), as
    /// `(timestamp, sequence, value bytes)` in arrival order.
    near: &'a [(i64, u64, Vec<u8>)],
    /// Windows ending before this are closed (stream time minus grace).
    close_time: i64,
}

impl<K: Data + Serde> SlidingStep<'_, K> {
    /// The latest timestamp of the records other than the current one in `w` (the window's
    /// timestamp before the record, Kafka's `ValueAndTimestamp.timestamp()`).
    fn latest_in(&self, w: Window) -> Option<i64> {
        self.near
            .iter()
            .filter(|(u, seq, _)| *seq != self.seq && *u >= w.start && *u <= w.end)
            .map(|(u, _, _)| *u)
            .max()
    }
}

impl<K: Data + Serde, V: Data + Serde, VA: Data + Serde> SlidingWindowAggregate<K, V, VA> {
    /// The aggregate of the accepted records in `w`, in arrival order, and their latest
    /// timestamp.
    fn fold(&self, s: &SlidingStep<'_, K>, w: Window) -> Result<Option<(VA, i64)>> {
        let mut agg: Option<(VA, i64)> = None;
        for (u, _, v) in s
            .near
            .iter()
            .filter(|(u, _, _)| *u >= w.start && *u <= w.end)
        {
            agg = Some(match agg {
                None => ((self.step)(None, s.key, V::decode(v)?), *u),
                Some((a, l)) => ((self.step)(Some(a), s.key, V::decode(v)?), l.max(*u)),
            });
        }
        Ok(agg)
    }

    /// Puts window `w` with the aggregate of its records and forwards the update (`old` is the
    /// stored aggregate, `None` for a window being created).
    fn put_window(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        s: &SlidingStep<'_, K>,
        w: Window,
        old: Option<VA>,
    ) -> Result<()> {
        let Some((new, timestamp)) = self.fold(s, w)? else {
            return Ok(());
        };
        let wk = windowed_bytes(s.kb, w);
        ctx.raw_store(&self.store)?.put(wk.clone(), new.encode()?);
        self.index.insert(self.expiry_rule().close(w), wk);
        ctx.forward(StreamRecord::new(
            Windowed::new(s.key.clone(), w),
            Change::new(Some(new), old),
            timestamp,
        ));
        Ok(())
    }

    /// Kafka's `updateWindowAndForward`: the record goes into window `w` (stored with
    /// aggregate `old`, or being created) if `w` is still open; otherwise it is logged and
    /// counted as dropped for `w` (one drop per closed window it would have updated or
    /// created).
    fn update_window(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        s: &SlidingStep<'_, K>,
        w: Window,
        old: Option<VA>,
    ) -> Result<()> {
        if w.end < s.close_time {
            drop_record(
                ctx,
                s.t,
                &format!("the sliding window [{}, {}] has closed", w.start, w.end),
            );
            return Ok(());
        }
        self.put_window(ctx, s, w, old)
    }

    /// Creates the record's right window `[t + 1, t + 1 + d]` (Kafka's
    /// `createCurrentRecordRightWindow`: it holds later records only, so it is open).
    fn create_right_window(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        s: &SlidingStep<'_, K>,
    ) -> Result<()> {
        let start = s.t.saturating_add(1);
        let w = Window::new(start, start.saturating_add(self.windows.difference));
        self.put_window(ctx, s, w, None)
    }

    /// The stored windows of the key starting in `[from, to]`, by start.
    fn stored_windows(
        &self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        kb: &[u8],
        from: i64,
        to: i64,
    ) -> Result<Vec<(Window, VA)>> {
        let lo = windowed_bytes(kb, Window::new(from, 0));
        let hi = windowed_bytes(kb, Window::new(to, i64::MAX));
        let mut out = Vec::new();
        for (k, v) in ctx.raw_store(&self.store)?.data.range(lo..=hi) {
            let (kb2, w) = split_windowed(k)?;
            // Longer keys with this key as a prefix sort in between; windows of an older
            // layout (negative starts) are never consulted.
            if kb2 == kb && w.start >= from && w.start <= to {
                out.push((w, VA::decode(v)?));
            }
        }
        out.sort_by_key(|(w, _)| *w);
        Ok(out)
    }

    /// A record at or after `difference` (Kafka's `processReverse`): updates the stored
    /// windows holding it, latest start first, then creates the previous record's right
    /// window, the record's left window `[t - d, t]` and its right window `[t + 1, t + 1 + d]`
    /// where Kafka does.
    fn process_in_order(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        s: &SlidingStep<'_, K>,
    ) -> Result<()> {
        let d = self.windows.difference;
        let t = s.t;
        let stored = self.stored_windows(
            ctx,
            s.kb,
            t.saturating_sub(d.saturating_mul(2)).max(0),
            t.saturating_add(1),
        )?;
        let starts: BTreeSet<i64> = stored.iter().map(|(w, _)| w.start).collect();
        // The latest timestamp of the window holding the later records nearest the record:
        // if after `t`, the record's right window is not empty.
        let mut right_latest: Option<i64> = None;
        let mut left_exists = false;
        let mut right_exists = false;
        let mut previous: Option<i64> = None;
        for (w, agg) in stored.into_iter().rev() {
            let latest = s.latest_in(w);
            if w.start == t.saturating_add(1) {
                right_exists = true;
            } else if w.end > t {
                if right_latest.is_none() {
                    right_latest = Some(latest.unwrap_or(i64::MIN));
                }
                self.update_window(ctx, s, w, Some(agg))?;
            } else if w.end == t {
                left_exists = true;
                self.update_window(ctx, s, w, Some(agg))?;
                match latest {
                    // A record at `t` came before: every window of this one exists already.
                    Some(l) if l >= t => return Ok(()),
                    l => previous = l,
                }
            } else {
                // The latest window ending before the record: its latest record is the
                // previous one.
                previous = latest;
                break;
            }
        }
        if let Some(p) = previous {
            let start = p.saturating_add(1);
            if !starts.contains(&start) && start.saturating_add(d) >= t {
                let w = Window::new(start, start.saturating_add(d));
                self.update_window(ctx, s, w, None)?;
            }
        }
        if !left_exists {
            self.update_window(ctx, s, Window::new(t.saturating_sub(d), t), None)?;
        }
        if !right_exists && right_latest.is_some_and(|l| l > t) {
            self.create_right_window(ctx, s)?;
        }
        Ok(())
    }

    /// A record earlier than `difference` (Kafka's `processEarly`): its left window would
    /// start before 0, so it goes into `[0, d]`, the window of every such record; the windows
    /// starting in `(0, t]` are updated (earliest first), then the record's right window and
    /// the previous record's are created where needed, then `[0, d]` updated or created.
    fn process_early(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        s: &SlidingStep<'_, K>,
    ) -> Result<()> {
        let d = self.windows.difference;
        let t = s.t;
        let stored = self.stored_windows(ctx, s.kb, 0, t.saturating_add(1))?;
        let starts: BTreeSet<i64> = stored.iter().map(|(w, _)| w.start).collect();
        let mut combined: Option<(Window, VA, Option<i64>)> = None;
        let mut right_latest: Option<i64> = None;
        let mut right_exists = false;
        let mut previous: Option<i64> = None;
        for (w, agg) in stored {
            let latest = s.latest_in(w);
            if w.start == 0 {
                if let Some(l) = latest.filter(|l| *l < t) {
                    previous = Some(l);
                }
                combined = Some((w, agg, latest));
            } else if w.start <= t {
                right_latest = Some(latest.unwrap_or(i64::MIN));
                self.update_window(ctx, s, w, Some(agg))?;
            } else {
                right_exists = true;
            }
        }
        if right_latest.is_none() {
            right_latest = combined.as_ref().and_then(|(_, _, l)| *l);
        }
        if !right_exists && right_latest.is_some_and(|l| l > t) {
            self.create_right_window(ctx, s)?;
        }
        if let Some(p) = previous {
            let start = p.saturating_add(1);
            if !starts.contains(&start) {
                let w = Window::new(start, start.saturating_add(d));
                self.update_window(ctx, s, w, None)?;
            }
        }
        match combined {
            Some((w, agg, _)) => self.update_window(ctx, s, w, Some(agg)),
            None => self.update_window(ctx, s, Window::new(0, d), None),
        }
    }
}

impl<K: Data + Serde, V: Data + Serde, VA: Data + Serde> Processor<K, V, Windowed<K>, Change<VA>>
    for SlidingWindowAggregate<K, V, VA>
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>) -> Result<()> {
        let rule = self.expiry_rule();
        self.index.rebuild(ctx.raw_store(&self.store)?, rule)?;
        self.record_index.clear();
        for k in ctx.raw_store(&self.records)?.data.keys() {
            let (_, w) = split_windowed(k)?;
            // The "window" of a raw-record key is (timestamp, sequence).
            self.record_index.insert((w.start, k.clone()));
            self.next_seq = self.next_seq.max(w.end as u64 + 1);
        }
        Ok(())
    }

    /// Kafka's `KStreamSlidingWindowAggregate`: a window `[s, e]` is closed once
    /// `e < stream time - grace`; the record is dropped only when the latest window that could
    /// hold it, `[t, t + d]`, has closed; otherwise it updates every open window holding it and
    /// creates the windows Kafka creates, each closed one counted as a drop.
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        r: StreamRecord<K, V>,
    ) -> Result<()> {
        let st = ctx.stream_time();
        let now = self
            .index
            .observe(ctx.raw_store(&self.store)?, st, r.timestamp);
        let t = r.timestamp;
        if t < 0 {
            drop_record(ctx, t, "negative timestamp (in no window)");
            return Ok(());
        }
        let d = self.windows.difference;
        let close_time = now.saturating_sub(self.windows.grace);
        if t.saturating_add(d) < close_time {
            drop_record(ctx, t, "every sliding window of the record has closed");
            return Ok(());
        }
        let kb = r.key.encode()?;
        // Store the raw record; the sequence keeps arrival order (as a second "window" bound).
        let seq = self.next_seq;
        self.next_seq += 1;
        let rk = windowed_bytes(&kb, Window::new(t, seq as i64));
        ctx.raw_store(&self.records)?
            .put(rk.clone(), r.value.encode()?);
        self.record_index.insert((t, rk));

        // The windows consulted start in [t - 2d, t + 1] and end by t + 1 + d.
        let lo = windowed_bytes(
            &kb,
            Window::new(t.saturating_sub(d.saturating_mul(2)).max(0), 0),
        );
        let hi = windowed_bytes(&kb, Window::new(t.saturating_add(d).saturating_add(1), -1));
        let mut near: Vec<(i64, u64, Vec<u8>)> = Vec::new();
        for (k, v) in ctx.raw_store(&self.records)?.data.range(lo..=hi) {
            let (kb2, w) = split_windowed(k)?;
            if kb2 == kb.as_slice() {
                near.push((w.start, w.end as u64, v.clone()));
            }
        }
        near.sort_by_key(|(_, seq, _)| *seq);
        let s = SlidingStep {
            key: &r.key,
            kb: &kb,
            t,
            seq,
            near: &near,
            close_time,
        };
        if t < d {
            self.process_early(ctx, &s)?;
        } else {
            self.process_in_order(ctx, &s)?;
        }

        let state = ctx.raw_store(&self.store)?;
        self.index.expire(state, now, self.windows.retention);
        // A raw record at u is consulted while a record at u + 3d + 1 or later can still be
        // accepted (that one fetches windows from 2d before it): until u + 3d + 1 < now - grace.
        let records = ctx.raw_store(&self.records)?;
        while let Some((u, _)) = self.record_index.first() {
            let horizon = u.saturating_add(d.saturating_mul(3)).saturating_add(1);
            if horizon >= close_time {
                break;
            }
            let Some((_, k)) = self.record_index.pop_first() else {
                break;
            };
            records.delete(&k);
        }
        Ok(())
    }
}

/// A grouped stream windowed by [`SessionWindows`]; aggregate it into a table of sessions.
///
/// A session that a later record merged into another is deleted from the table (see
/// [`SessionWindows`]): [`KTable::to_stream_with_tombstones`] shows it as `None`.
pub struct SessionWindowedKStream<'b, K, V> {
    stream: KStream<'b, K, V>,
    windows: SessionWindows,
}

impl<K, V> std::fmt::Debug for SessionWindowedKStream<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionWindowedKStream")
            .field("node", &self.stream.node)
            .field("windows", &self.windows)
            .finish()
    }
}

/// How sessions aggregate: an optional initial value, the step per record and the merger of
/// two sessions' aggregates.
struct SessionOps<K, V, VA> {
    init: Option<Arc<dyn Fn() -> VA + Send + Sync>>,
    step: Step<K, V, VA>,
    merge: Merger<K, VA>,
}

impl<K, V, VA> Clone for SessionOps<K, V, VA> {
    fn clone(&self) -> Self {
        SessionOps {
            init: self.init.clone(),
            step: Arc::clone(&self.step),
            merge: Arc::clone(&self.merge),
        }
    }
}

impl<'b, K: Data + Serde, V: Data> SessionWindowedKStream<'b, K, V> {
    /// The number of records per session.
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<'b, Windowed<K>, i64> {
        self.aggregate(|| 0, |_k, _v, n| n + 1, |_k, a, b| a + b, materialized)
    }

    /// Per session, the values combined with `reducer(aggregate, value)`; merging sessions
    /// combines their aggregates with `reducer` too (in session start order).
    pub fn reduce(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<'b, Windowed<K>, V>
    where
        V: Serde,
    {
        let reducer = Arc::new(reducer);
        let r2 = Arc::clone(&reducer);
        self.build(
            SessionOps {
                init: None,
                step: reduce_step(move |a, b| reducer(a, b)),
                merge: Arc::new(move |_k, a, b| r2(a, b)),
            },
            materialized,
        )
    }

    /// Per session, `adder(key, value, aggregate)` over its records. A new record's session
    /// starts from `initializer()`, merged (`merger(key, aggregate, session_aggregate)`, in
    /// session start order) with every session the record joins, as in Kafka.
    pub fn aggregate<VA: Data + Serde>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        adder: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        merger: impl Fn(&K, VA, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<'b, Windowed<K>, VA> {
        let init: Arc<dyn Fn() -> VA + Send + Sync> = Arc::new(initializer);
        let i2 = Arc::clone(&init);
        self.build(
            SessionOps {
                init: Some(init),
                step: Arc::new(move |old, k, v| adder(k, v, old.unwrap_or_else(|| i2()))),
                merge: Arc::new(merger),
            },
            materialized,
        )
    }

    fn build<VA: Data + Serde>(
        &self,
        ops: SessionOps<K, V, VA>,
        materialized: Materialized<K, VA>,
    ) -> KTable<'b, Windowed<K>, VA> {
        let windows = self.windows;
        add_windowed(
            &self.stream,
            materialized.name,
            StoreKind::Session,
            &[],
            false,
            windows.close_rule(),
            move |store| SessionAggregate {
                windows,
                store,
                ops: ops.clone(),
                index: Expiry::default(),
            },
        )
    }
}

struct SessionAggregate<K, V, VA> {
    windows: SessionWindows,
    store: Arc<str>,
    ops: SessionOps<K, V, VA>,
    index: Expiry,
}

impl<K: Data + Serde, V: Data, VA: Data + Serde> Processor<K, V, Windowed<K>, Change<VA>>
    for SessionAggregate<K, V, VA>
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>) -> Result<()> {
        let rule = self.windows.close_rule();
        self.index.rebuild(ctx.raw_store(&self.store)?, rule)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        r: StreamRecord<K, V>,
    ) -> Result<()> {
        let st = ctx.stream_time();
        let now = self
            .index
            .observe(ctx.raw_store(&self.store)?, st, r.timestamp);
        let t = r.timestamp;
        if t < 0 {
            drop_record(ctx, t, "negative timestamp (in no session)");
            return Ok(());
        }
        let gap = self.windows.gap;
        let rule = self.windows.close_rule();
        let kb = r.key.encode()?;
        let lo = windowed_bytes(&kb, Window::new(0, 0));
        let hi = windowed_bytes(&kb, Window::new(-1, -1));
        let mut overlapping: Vec<(Window, Vec<u8>)> = Vec::new();
        for (k, v) in ctx.raw_store(&self.store)?.data.range(lo..=hi) {
            let (kb2, w) = split_windowed(k)?;
            if kb2 == kb.as_slice()
                && w.start.saturating_sub(gap) <= t
                && t <= w.end.saturating_add(gap)
            {
                overlapping.push((w, v.clone()));
            }
        }
        overlapping.sort_by_key(|(w, _)| *w);
        let merged = overlapping.iter().fold(Window::new(t, t), |m, (w, _)| {
            Window::new(m.start.min(w.start), m.end.max(w.end))
        });
        if rule.close(merged) <= now {
            drop_record(ctx, t, "the record's session has closed");
            return Ok(());
        }
        // Kafka's rule: unless the record only repeats a single-record session [t, t], every
        // session it merges, the one it lands in included, is deleted (a tombstone) and the
        // merged session written anew (with no old value: it was just deleted).
        let in_place = merged == Window::new(t, t);
        let mut agg = self.ops.init.as_ref().map(|f| f());
        let mut merged_old = None;
        let mut removed = Vec::new();
        for (w, bytes) in &overlapping {
            let v = VA::decode(bytes)?;
            if in_place {
                merged_old = Some(v.clone());
            } else {
                removed.push((*w, v.clone()));
            }
            agg = Some(match agg {
                None => v,
                Some(a) => (self.ops.merge)(&r.key, a, v),
            });
        }
        let new = (self.ops.step)(agg, &r.key, r.value);
        // Encoded before the merged sessions are deleted, so a value without bytes leaves them.
        let new_bytes = new.encode()?;
        let state = ctx.raw_store(&self.store)?;
        for (w, _) in &removed {
            state.delete(&windowed_bytes(&kb, *w));
        }
        let mk = windowed_bytes(&kb, merged);
        state.put(mk.clone(), new_bytes);
        self.index.insert(rule.close(merged), mk);
        // As in Kafka, a session's updates carry its end: its latest record's timestamp.
        for (w, old) in removed {
            ctx.forward(StreamRecord::new(
                Windowed::new(r.key.clone(), w),
                Change::new(None, Some(old)),
                w.end,
            ));
        }
        ctx.forward(StreamRecord::new(
            Windowed::new(r.key, merged),
            Change::new(Some(new), merged_old),
            merged.end,
        ));
        let state = ctx.raw_store(&self.store)?;
        self.index.expire(state, now, self.windows.retention);
        Ok(())
    }
}
