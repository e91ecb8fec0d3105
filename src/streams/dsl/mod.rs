//! The DSL: [`KStream`], [`KGroupedStream`] and [`KTable`] are thin handles that add nodes to
//! a [`Builder`]'s topology; [`Builder::build`] returns it. They run nothing themselves.
//!
//! Tables forward every update downstream (Kafka with record caching disabled), so
//! [`KTable::to_stream`] is the full stream of the table's updates and
//! [`KTable::to_stream_with_tombstones`] adds its deletions. Inside the topology a table's node
//! forwards each change with the key's previous value (Kafka's `Change`), which table
//! filters, joins and [`KGroupedTable`]'s subtractor need.
//!
//! Besides stateless operators and aggregations: tables ([`Builder::table`],
//! [`Builder::global_table`], [`KTable::filter`], [`KTable::map_values`], [`KTable::group_by`]),
//! joins (stream-table, stream-global-table, table-table by key or by foreign key, and
//! stream-stream over [`JoinWindows`]), repartitioning
//! ([`KStream::select_key`], [`KStream::group_by`], [`KStream::repartition`], and automatically
//! before a grouping or join after a key change), and [`KStream::split`], [`KStream::merge`],
//! [`KStream::to_topic_chooser`].
//!
//! Windowed aggregations ([`KGroupedStream::windowed_by`]), [`KTable::suppress`], per-source
//! timestamp extractors ([`Consumed`](crate::streams::Consumed)) and the stream-stream and
//! foreign-key joins are operators, each with the DSL methods that add it (`operators/`).

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::streams::serde::Serde;
use crate::streams::topology::processor::{Data, Processor, ProcessorContext, StreamRecord};
use crate::streams::topology::{StoreKind, Topology};

mod branch;
mod join;
mod repartition;
pub(crate) mod table;
pub mod window;

pub use branch::BranchedKStream;
pub use join::GlobalKTable;
pub use repartition::Repartitioned;
pub(crate) use table::Change;
pub use table::KGroupedTable;
pub(crate) use table::{store_getter, Getter};

/// Builds a [`Topology`] with the DSL.
///
/// ```
/// use riverbed::streams::{Builder, Materialized};
///
/// let b = Builder::new("word-lengths");
/// let words = b.stream::<String, String>("words");
/// words
///     .clone()
///     .filter(|_, w| !w.is_empty())
///     .map_values(|w| w.len() as i64)
///     .to("lengths");
/// words.group_by_key().count(Materialized::named("counts"));
/// let topology = b.build()?;
/// assert_eq!(topology.sink_topics(), ["lengths"]);
/// assert_eq!(topology.store_names(), ["counts"]);
/// # Ok::<(), riverbed::Error>(())
/// ```
pub struct Builder {
    /// Windowed aggregation nodes and how their windows close (for `suppress`).
    pub(super) windowed:
        RefCell<std::collections::HashMap<String, crate::streams::dsl::window::CloseRule>>,
    topology: RefCell<Topology>,
    error: RefCell<Option<Error>>,
    counter: Cell<u32>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("topology", &self.topology.borrow())
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// A builder for the application `app_id` (see [`Topology::new`]).
    pub fn new(app_id: impl Into<String>) -> Builder {
        Builder {
            windowed: RefCell::default(),
            topology: RefCell::new(Topology::new(app_id)),
            error: RefCell::new(None),
            counter: Cell::new(0),
        }
    }

    /// The stream of records of `topic`, keys decoded as `K` and values as `V`.
    pub fn stream<K: Serde + Data, V: Serde + Data>(&self, topic: &str) -> KStream<'_, K, V> {
        let name = self.name("KSTREAM-SOURCE");
        self.add(|t| t.add_source::<K, V>(&name, &[topic]).map(|_| ()));
        KStream::new(self, name, false)
    }

    /// The topology built, or the first error a DSL call ran into.
    ///
    /// # Errors
    /// [`InvalidArgument`](crate::ErrorKind::InvalidArgument): a topic read twice, a duplicate
    /// store name, an operation that needs a repartition topic, no source.
    pub fn build(self) -> Result<Topology> {
        if let Some(e) = self.error.into_inner() {
            return Err(e);
        }
        let t = self.topology.into_inner();
        t.validate()?;
        Ok(t)
    }

    pub(super) fn name(&self, prefix: &str) -> String {
        let n = self.counter.get();
        self.counter.set(n + 1);
        format!("{prefix}-{n:010}")
    }

    /// Runs a change of the topology, keeping the first error for `build`.
    pub(super) fn add(&self, f: impl FnOnce(&mut Topology) -> Result<()>) {
        if self.error.borrow().is_some() {
            return;
        }
        if let Err(e) = f(&mut self.topology.borrow_mut()) {
            *self.error.borrow_mut() = Some(e);
        }
    }

    pub(super) fn fail(&self, e: Error) {
        self.add(|_| Err(e));
    }

    /// Connects the processor `node` to the state stores it reads or writes, which puts it in
    /// their sub-topology.
    pub(super) fn connect(&self, node: &str, stores: &[String]) {
        if stores.is_empty() {
            return;
        }
        self.add(|t| {
            let stores: Vec<&str> = stores.iter().map(String::as_str).collect();
            t.connect_processor_and_state_stores(node, &stores)
                .map(|_| ())
        });
    }
}

/// A processor made of a function of the context and the record.
struct FnProcessor<F>(Arc<F>);

impl<F, KIn, VIn, KOut, VOut> Processor<KIn, VIn, KOut, VOut> for FnProcessor<F>
where
    F: Fn(&mut ProcessorContext<'_, KOut, VOut>, StreamRecord<KIn, VIn>) -> Result<()>
        + Send
        + Sync
        + 'static,
    KOut: Data,
    VOut: Data,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
        record: StreamRecord<KIn, VIn>,
    ) -> Result<()> {
        (self.0)(ctx, record)
    }
}

/// A stream of records; see the module docs. Cheap to clone: clones read the same node, so
/// `s.clone().filter(..)` and `s.map(..)` branch the stream.
pub struct KStream<'b, K, V> {
    pub(super) builder: &'b Builder,
    pub(super) node: String,
    /// An operation changed the key since the last repartition: a grouping or join must
    /// repartition first.
    pub(super) key_changed: bool,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> Clone for KStream<'_, K, V> {
    fn clone(&self) -> Self {
        KStream {
            builder: self.builder,
            node: self.node.clone(),
            key_changed: self.key_changed,
            _types: PhantomData,
        }
    }
}

impl<K, V> std::fmt::Debug for KStream<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KStream").field("node", &self.node).finish()
    }
}

impl<'b, K: Data, V: Data> KStream<'b, K, V> {
    pub(super) fn new(builder: &'b Builder, node: String, key_changed: bool) -> Self {
        KStream {
            builder,
            node,
            key_changed,
            _types: PhantomData,
        }
    }

    /// Adds a processor node running `f` after this stream's node.
    pub(crate) fn then<K2: Data, V2: Data>(
        &self,
        prefix: &str,
        key_changed: bool,
        f: impl Fn(&mut ProcessorContext<'_, K2, V2>, StreamRecord<K, V>) -> Result<()>
            + Send
            + Sync
            + 'static,
    ) -> KStream<'b, K2, V2> {
        let name = self.builder.name(prefix);
        let f = Arc::new(f);
        self.builder.add(|t| {
            t.add_processor::<_, K, V, K2, V2>(
                &name,
                move || FnProcessor(Arc::clone(&f)),
                &[&self.node],
            )
            .map(|_| ())
        });
        KStream::new(self.builder, name, self.key_changed || key_changed)
    }

    /// The records for which `predicate` holds.
    pub fn filter(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<'b, K, V> {
        self.then("KSTREAM-FILTER", false, move |ctx, r| {
            if predicate(&r.key, &r.value) {
                ctx.forward(r);
            }
            Ok(())
        })
    }

    /// The records for which `predicate` does not hold.
    pub fn filter_not(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<'b, K, V> {
        self.filter(move |k, v| !predicate(k, v))
    }

    /// Each record mapped to a new key and value (the timestamp is kept). A later grouping or
    /// join repartitions the stream by the new key (see [`group_by_key`](Self::group_by_key)).
    pub fn map<K2: Data, V2: Data>(
        &self,
        f: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<'b, K2, V2> {
        self.then("KSTREAM-MAP", true, move |ctx, r| {
            let (k, v) = f(r.key, r.value);
            ctx.forward(StreamRecord::new(k, v, r.timestamp));
            Ok(())
        })
    }

    /// Each record with its value mapped (key and timestamp kept).
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(V) -> V2 + Send + Sync + 'static,
    ) -> KStream<'b, K, V2> {
        self.then("KSTREAM-MAPVALUES", false, move |ctx, r| {
            let v = f(r.value);
            ctx.forward(StreamRecord::new(r.key, v, r.timestamp));
            Ok(())
        })
    }

    /// Each record replaced by zero or more records with the same key and timestamp and the
    /// values `f` returns, in order.
    pub fn flat_map_values<V2: Data, I: IntoIterator<Item = V2>>(
        &self,
        f: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> KStream<'b, K, V2> {
        self.then("KSTREAM-FLATMAPVALUES", false, move |ctx, r| {
            for v in f(r.value) {
                ctx.forward(StreamRecord::new(r.key.clone(), v, r.timestamp));
            }
            Ok(())
        })
    }

    /// Each record replaced by zero or more records with the keys and values `f` returns, in
    /// order, each with the input record's timestamp. The key may change, so a later grouping
    /// or join repartitions the stream (as after [`map`](Self::map)).
    ///
    /// ```
    /// use riverbed::streams::{Builder, TopologyTestDriver};
    ///
    /// // Sentences keyed by author become one record per word, keyed by the word.
    /// let b = Builder::new("words");
    /// b.stream::<String, String>("sentences")
    ///     .flat_map(|author, sentence| {
    ///         sentence
    ///             .split_whitespace()
    ///             .map(|w| (w.to_lowercase(), author.clone()))
    ///             .collect::<Vec<_>>()
    ///     })
    ///     .to("words");
    /// let mut d = TopologyTestDriver::new(b.build()?)?;
    /// d.pipe_input("sentences", &"ann".to_string(), &"Hello big World".to_string(), 7)?;
    /// let out = d.read_output::<String, String>("words")?;
    /// let words: Vec<_> = out.iter().map(|r| (r.key.as_str(), r.value.as_str(), r.timestamp)).collect();
    /// assert_eq!(words, [("hello", "ann", 7), ("big", "ann", 7), ("world", "ann", 7)]);
    /// # Ok::<(), riverbed::Error>(())
    /// ```
    pub fn flat_map<K2: Data, V2: Data, I: IntoIterator<Item = (K2, V2)>>(
        &self,
        f: impl Fn(K, V) -> I + Send + Sync + 'static,
    ) -> KStream<'b, K2, V2> {
        self.then("KSTREAM-FLATMAP", true, move |ctx, r| {
            for (k, v) in f(r.key, r.value) {
                ctx.forward(StreamRecord::new(k, v, r.timestamp));
            }
            Ok(())
        })
    }

    /// The same stream, calling `f` on each record as it passes (for logging or metrics).
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<'b, K, V> {
        self.then("KSTREAM-PEEK", false, move |ctx, r| {
            f(&r.key, &r.value);
            ctx.forward(r);
            Ok(())
        })
    }

    /// Calls `f` on each record; the end of this branch.
    pub fn foreach(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) {
        let _: KStream<'b, K, V> = self.then("KSTREAM-FOREACH", false, move |_ctx, r| {
            f(&r.key, &r.value);
            Ok(())
        });
    }

    /// Writes the stream to `topic` (which must exist when the application starts),
    /// partitioned by key bytes.
    pub fn to(&self, topic: &str)
    where
        K: Serde,
        V: Serde,
    {
        let name = self.builder.name("KSTREAM-SINK");
        self.builder
            .add(|t| t.add_sink::<K, V>(&name, topic, &[&self.node]).map(|_| ()));
    }

    /// Groups the records by their key, for an aggregation. If an operation before changed the
    /// key ([`map`](Self::map), [`select_key`](Self::select_key)), the aggregation first sends
    /// the records through the repartition topic `<app-id>-<store>-repartition`, so that every
    /// record of a key reaches the same task.
    pub fn group_by_key(&self) -> KGroupedStream<'b, K, V> {
        KGroupedStream {
            stream: self.clone(),
        }
    }
}

/// How an aggregation's table is stored: the state store name (and with it the changelog
/// topic `<app-id>-<name>-changelog` and the name for interactive queries).
pub struct Materialized<K, V> {
    pub(super) name: Option<String>,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> std::fmt::Debug for Materialized<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Materialized")
            .field("name", &self.name)
            .finish()
    }
}

impl<K, V> Materialized<K, V> {
    /// A store named `name`, queryable with [`App::store`](crate::streams::App::store).
    pub fn named(name: impl Into<String>) -> Self {
        Materialized {
            name: Some(name.into()),
            _types: PhantomData,
        }
    }

    /// A store with a generated name (`KSTREAM-AGGREGATE-STATE-STORE-<n>`).
    pub fn unnamed() -> Self {
        Materialized {
            name: None,
            _types: PhantomData,
        }
    }
}

/// A stream grouped by key, ready to aggregate into a [`KTable`].
pub struct KGroupedStream<'b, K, V> {
    pub(super) stream: KStream<'b, K, V>,
}

impl<K, V> std::fmt::Debug for KGroupedStream<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KGroupedStream")
            .field("node", &self.stream.node)
            .finish()
    }
}

impl<'b, K: Data + Serde, V: Data + Serde> KGroupedStream<'b, K, V> {
    /// The number of records per key.
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<'b, K, i64> {
        self.aggregate(|| 0, |_k, _v, n| n + 1, materialized)
    }

    /// Per key, the values combined with `reducer(aggregate, value)`; the first value of a key
    /// is its initial aggregate.
    pub fn reduce(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<'b, K, V>
    where
        V: Serde,
    {
        self.build_aggregate(
            move |old: Option<V>, _k: &K, v: V| match old {
                Some(agg) => reducer(agg, v),
                None => v,
            },
            materialized,
        )
    }

    /// Per key, `adder(key, value, aggregate)` folded over the values, starting from
    /// `initializer()`.
    pub fn aggregate<VA: Data + Serde>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        adder: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<'b, K, VA> {
        self.build_aggregate(
            move |old: Option<VA>, k: &K, v: V| adder(k, v, old.unwrap_or_else(&initializer)),
            materialized,
        )
    }

    fn build_aggregate<VA: Data + Serde>(
        &self,
        step: impl Fn(Option<VA>, &K, V) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<'b, K, VA> {
        let b = self.stream.builder;
        let store = materialized
            .name
            .unwrap_or_else(|| b.name("KSTREAM-AGGREGATE-STATE-STORE"));
        b.add(|t| t.add_store(&store, StoreKind::KeyValue, true).map(|_| ()));
        let input = if self.stream.key_changed {
            self.stream.through_repartition(&store)
        } else {
            self.stream.clone()
        };
        let store_name = store.clone();
        let table = input.then("KSTREAM-AGGREGATE", false, move |ctx, r| {
            let mut s = ctx.store::<K, VA>(&store_name)?;
            // Kafka's rule: the aggregate's timestamp is the latest of its records'.
            let (old, (new, timestamp)) = s.update_timestamped(&r.key, |old| match old {
                Some((agg, ts)) => (step(Some(agg), &r.key, r.value), ts.max(r.timestamp)),
                None => (step(None, &r.key, r.value), r.timestamp),
            })?;
            ctx.forward(StreamRecord::new(
                r.key,
                Change::new(Some(new), old.map(|(agg, _)| agg)),
                timestamp,
            ));
            Ok(())
        });
        b.connect(&table.node, std::slice::from_ref(&store));
        KTable::new(b, table.node, Some(store.clone()), store_getter(store))
    }
}

/// A table: the latest value per key; see the module docs. Cheap to clone.
pub struct KTable<'b, K, V> {
    pub(super) builder: &'b Builder,
    /// The node forwarding `(K, Change<V>)`.
    pub(super) node: String,
    pub(super) store: Option<String>,
    /// Reads the table's current value of a key (from its store, or computed from the stores
    /// of the tables it derives from).
    pub(super) getter: Getter<K, V>,
    /// The stores `getter` reads: a processor that uses the getter is connected to them.
    pub(super) getter_stores: Vec<String>,
}

impl<K, V> Clone for KTable<'_, K, V> {
    fn clone(&self) -> Self {
        KTable {
            builder: self.builder,
            node: self.node.clone(),
            store: self.store.clone(),
            getter: Arc::clone(&self.getter),
            getter_stores: self.getter_stores.clone(),
        }
    }
}

impl<K, V> std::fmt::Debug for KTable<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KTable")
            .field("node", &self.node)
            .field("store", &self.store)
            .finish()
    }
}

impl<'b, K: Data, V: Data> KTable<'b, K, V> {
    /// A table forwarding from `node`; its getter reads `store` if it has one (else see
    /// [`reading`](Self::reading)).
    pub(super) fn new(
        builder: &'b Builder,
        node: String,
        store: Option<String>,
        getter: Getter<K, V>,
    ) -> Self {
        KTable {
            builder,
            node,
            getter_stores: store.iter().cloned().collect(),
            store,
            getter,
        }
    }

    /// The same table, its getter reading `stores` (for a table computed from others).
    pub(super) fn reading(mut self, stores: &[String]) -> Self {
        for s in stores {
            if !self.getter_stores.contains(s) {
                self.getter_stores.push(s.clone());
            }
        }
        self
    }

    /// The stream of the table's updates: one record per update, with the new value.
    /// Deletions are not in it; see [`to_stream_with_tombstones`](Self::to_stream_with_tombstones).
    pub fn to_stream(&self) -> KStream<'b, K, V> {
        let changes: KStream<'b, K, Change<V>> =
            KStream::new(self.builder, self.node.clone(), false);
        changes.then("KTABLE-TOSTREAM", false, |ctx, r| {
            if let Some(v) = r.value.new {
                ctx.forward(StreamRecord::new(r.key, v, r.timestamp));
            }
            Ok(())
        })
    }

    /// The name of the state store holding the table: `None` for a table that is computed
    /// from others and not stored itself (a [`filter`](Self::filter), a join, ...).
    pub fn store_name(&self) -> Option<&str> {
        self.store.as_deref()
    }
}
