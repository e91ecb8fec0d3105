//! Joins: stream-table, stream-global-table and table-table, with Kafka's semantics.
//!
//! - **Stream-table** ([`KStream::join`], [`KStream::left_join`]): each stream record is
//!   joined with the table's value of its key at the time the record is processed; table
//!   updates produce no output. The inner join drops records whose key is not in the table; the
//!   left join gives the joiner `None`.
//! - **Stream-global-table** ([`KStream::join_global`], [`KStream::left_join_global`]): as
//!   stream-table, with the table key chosen from the record, and no co-partitioning needed.
//! - **Table-table** ([`KTable::join`], [`KTable::left_join`], [`KTable::outer_join`]): an
//!   update of either side updates the result row of its key (a deletion when the row leaves
//!   the result); an update that leaves the key out of the result before and after is not
//!   forwarded.
//! - **Stream-stream** ([`KStream::join_stream`], [`KStream::left_join_stream`],
//!   [`KStream::outer_join_stream`]): records of the two streams whose timestamps are close
//!   enough ([`JoinWindows`](crate::streams::JoinWindows)) are paired; see
//!   `operators/stream_join.rs` for the windowed semantics and state.
//! - **Foreign-key table-table** ([`KTable::join_foreign_key`],
//!   [`KTable::left_join_foreign_key`], in `fk_join.rs`): each row of the left
//!   table joins the right row whose key a function extracts from the left value; the two
//!   tables need not be keyed alike. Subscriptions and responses travel through two
//!   repartition topics, and responses to an earlier value of a row are dropped.
//!
//! The two sides of a stream-table or table-table join must be co-partitioned: the same number
//! of partitions, records of a key in the same partition. A stream whose key was changed is
//! repartitioned before the join (the repartition topic gets the other side's partition count
//! unless [`KStream::repartition_with`] gives it one);
//! [`App::start`](crate::streams::App::start) refuses input topics with different partition
//! counts, naming both. Output timestamps are those of the record that
//! triggered the output.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::error::Error;
use crate::streams::dsl::table::{read, read_value, Change, Getter};
use crate::streams::dsl::{Builder, FnProcessor, KStream, KTable, Materialized};
use crate::streams::serde::Serde;
use crate::streams::state::store::UNKNOWN_TIMESTAMP;
use crate::streams::topology::processor::{Data, StreamRecord};
use crate::streams::topology::GlobalStoreSpec;
use crate::streams::topology::{NodeKind, Topology};

/// A table read whole by every instance of the application ([`Builder::global_table`]), for
/// joins with streams of any partitioning ([`KStream::join_global`]).
pub struct GlobalKTable<K, V> {
    global: GlobalStoreSpec,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> Clone for GlobalKTable<K, V> {
    fn clone(&self) -> Self {
        GlobalKTable {
            global: self.global.clone(),
            _types: PhantomData,
        }
    }
}

impl<K, V> std::fmt::Debug for GlobalKTable<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalKTable")
            .field("topic", &self.global.topic)
            .field("store", &self.global.store)
            .finish()
    }
}

impl<K, V> GlobalKTable<K, V> {
    /// The name of the table's store, queryable like any store.
    pub fn store_name(&self) -> &str {
        &self.global.store
    }
}

impl Builder {
    /// The global table of `topic`: every partition of it, read by the application before it
    /// processes anything and kept up to date while it runs (see
    /// [`App::start`](crate::streams::App::start)); a tombstone deletes a key. Its store is
    /// queryable by the name `materialized` gives.
    ///
    /// ```
    /// use riverbed::streams::{Builder, Materialized, TopologyTestDriver};
    ///
    /// let b = Builder::new("fx-app");
    /// let rates = b.global_table::<String, f64>("rates", Materialized::named("rates"));
    /// b.stream::<String, f64>("usd-payments")
    ///     .join_global(&rates, |_, _| "USD".to_string(), |amount, rate| amount * rate)
    ///     .to("eur-payments");
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// driver.pipe_input("rates", &"USD".to_string(), &Some(0.5f64), 0)?;
    /// assert_eq!(driver.store::<String, f64>("rates")?.get("USD")?, Some(0.5));
    /// driver.pipe_input("usd-payments", &"p1".to_string(), &8.0f64, 1)?;
    /// assert_eq!(driver.read_output::<String, f64>("eur-payments")?[0].value, 4.0);
    /// # Ok::<(), riverbed::Error>(())
    /// ```
    pub fn global_table<K: Serde + Data, V: Serde + Data>(
        &self,
        topic: &str,
        materialized: Materialized<K, V>,
    ) -> GlobalKTable<K, V> {
        let store = materialized
            .name
            .unwrap_or_else(|| self.name("GLOBALKTABLE-STATE-STORE"));
        let global = GlobalStoreSpec {
            topic: topic.to_string(),
            store: store.clone(),
        };
        self.add(|t| {
            crate::validate_topic_name(topic)?;
            if t.source_topics().iter().any(|s| s == topic)
                || t.globals.iter().any(|g| g.topic == topic)
            {
                return Err(Error::invalid(format!(
                    "topic {topic:?} is read by a source or a global table already"
                )));
            }
            if t.store(&store).is_some() || t.globals.iter().any(|g| g.store == store) {
                return Err(Error::invalid(format!(
                    "state store {store:?} exists already"
                )));
            }
            t.globals.push(global.clone());
            Ok(())
        });
        GlobalKTable {
            global,
            _types: PhantomData,
        }
    }
}

/// The topics of the sources `node` descends from (nodes are added parents first, so a node's
/// ancestors come before it).
fn source_topics_of(t: &Topology, node: &str) -> Vec<String> {
    let Some(id) = t.nodes.iter().position(|n| &*n.name == node) else {
        return Vec::new();
    };
    let mut reaches = vec![false; id + 1];
    reaches[id] = true;
    let mut topics = Vec::new();
    for i in (0..=id).rev() {
        reaches[i] |= t.nodes[i].children.iter().any(|&c| c <= id && reaches[c]);
        if let (true, NodeKind::Source { topics: ts, .. }) = (reaches[i], &t.nodes[i].kind) {
            topics.extend(ts.iter().cloned());
        }
    }
    topics
}

impl Builder {
    /// Records that the sources of `a` and `b` must be co-partitioned, for `what`.
    pub(crate) fn require_copartitioned(&self, what: &str, a: &str, b: &str) {
        self.add(|t| {
            let mut topics = source_topics_of(t, a);
            topics.extend(source_topics_of(t, b));
            topics.dedup();
            t.copartition_groups.push((what.to_string(), topics));
            Ok(())
        });
    }
}

impl<'b, K: Data + Serde, V: Data + Serde> KStream<'b, K, V> {
    /// Each record joined with the table's value of its key: `joiner(value, table value)`;
    /// records whose key is not in the table are dropped (inner join). See the module docs.
    ///
    /// ```
    /// use riverbed::streams::{Builder, Materialized, TopologyTestDriver};
    ///
    /// let b = Builder::new("enrich");
    /// let names = b.table::<i64, String>("customers", Materialized::named("customers"));
    /// b.stream::<i64, i64>("orders")
    ///     .join(&names, |amount, name| format!("{name} ordered {amount}"))
    ///     .to("enriched");
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// driver.pipe_input("orders", &7i64, &100i64, 0)?; // no customer 7 yet: dropped
    /// driver.pipe_input("customers", &7i64, &Some("ann".to_string()), 1)?;
    /// driver.pipe_input("orders", &7i64, &250i64, 2)?;
    /// let out = driver.read_output::<i64, String>("enriched")?;
    /// assert_eq!(out.iter().map(|r| r.value.as_str()).collect::<Vec<_>>(), ["ann ordered 250"]);
    /// # Ok::<(), riverbed::Error>(())
    /// ```
    pub fn join<VT: Data, VR: Data>(
        &self,
        table: &KTable<'b, K, VT>,
        joiner: impl Fn(&V, &VT) -> VR + Send + Sync + 'static,
    ) -> KStream<'b, K, VR> {
        self.table_join(table, "KSTREAM-JOIN", move |v, t| t.map(|t| joiner(v, t)))
    }

    /// Each record joined with the table's value of its key, `None` if the key is not in the
    /// table: `joiner(value, table value)` (left join). See the module docs.
    pub fn left_join<VT: Data, VR: Data>(
        &self,
        table: &KTable<'b, K, VT>,
        joiner: impl Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
    ) -> KStream<'b, K, VR> {
        self.table_join(table, "KSTREAM-LEFTJOIN", move |v, t| Some(joiner(v, t)))
    }

    fn table_join<VT: Data, VR: Data>(
        &self,
        table: &KTable<'b, K, VT>,
        what: &str,
        joiner: impl Fn(&V, Option<&VT>) -> Option<VR> + Send + Sync + 'static,
    ) -> KStream<'b, K, VR> {
        let stream = self.keyed_for_join(what);
        self.builder
            .require_copartitioned("a stream-table join", &stream.node, &table.node);
        let getter = Arc::clone(&table.getter);
        let joined = stream.then(what, false, move |ctx, r| {
            let t = read_value(&getter, ctx, &r.key)?;
            if let Some(v) = joiner(&r.value, t.as_ref()) {
                ctx.forward(StreamRecord::new(r.key, v, r.timestamp));
            }
            Ok(())
        });
        self.builder.connect(&joined.node, &table.getter_stores);
        joined
    }
}

impl<'b, K: Data, V: Data> KStream<'b, K, V> {
    /// Each record joined with the global table's value of the key `key_selector` picks:
    /// `joiner(value, table value)`; records whose table key is absent are dropped. The stream
    /// needs no repartition.
    ///
    /// ```
    /// use riverbed::streams::{Builder, Materialized, TopologyTestDriver};
    ///
    /// let b = Builder::new("fx-app");
    /// let rates = b.global_table::<String, f64>("rates", Materialized::named("rates"));
    /// // Payments keyed by id, valued (currency, amount); converted to euros.
    /// b.stream::<String, String>("payments")
    ///     .join_global(&rates, |_id, p| p[..3].to_string(), |p, rate| {
    ///         p[4..].parse::<f64>().unwrap_or(0.0) * rate
    ///     })
    ///     .to("payments-eur");
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// driver.pipe_input("rates", &"USD".to_string(), &Some(0.5f64), 0)?;
    /// driver.pipe_input("payments", &"p1".to_string(), &"USD 10".to_string(), 1)?;
    /// driver.pipe_input("payments", &"p2".to_string(), &"NOK 10".to_string(), 2)?; // no rate
    /// let out = driver.read_output::<String, f64>("payments-eur")?;
    /// assert_eq!(out.iter().map(|r| (r.key.as_str(), r.value)).collect::<Vec<_>>(), [("p1", 5.0)]);
    /// # Ok::<(), riverbed::Error>(())
    /// ```
    pub fn join_global<KG: Serde + Data, VG: Serde + Data, VR: Data>(
        &self,
        global: &GlobalKTable<KG, VG>,
        key_selector: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(&V, &VG) -> VR + Send + Sync + 'static,
    ) -> KStream<'b, K, VR> {
        self.global_join(global, "KSTREAM-GLOBAL-JOIN", key_selector, move |v, g| {
            g.map(|g| joiner(v, g))
        })
    }

    /// As [`join_global`](Self::join_global), but a record whose table key is absent is
    /// joined with `None` (left join).
    pub fn left_join_global<KG: Serde + Data, VG: Serde + Data, VR: Data>(
        &self,
        global: &GlobalKTable<KG, VG>,
        key_selector: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&VG>) -> VR + Send + Sync + 'static,
    ) -> KStream<'b, K, VR> {
        self.global_join(
            global,
            "KSTREAM-GLOBAL-LEFTJOIN",
            key_selector,
            move |v, g| Some(joiner(v, g)),
        )
    }

    fn global_join<KG: Serde + Data, VG: Serde + Data, VR: Data>(
        &self,
        global: &GlobalKTable<KG, VG>,
        what: &str,
        key_selector: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&VG>) -> Option<VR> + Send + Sync + 'static,
    ) -> KStream<'b, K, VR> {
        // The store is found by name when a record is joined: the topology holds no table.
        let store = global.store_name().to_string();
        self.then(what, false, move |ctx, r| {
            let key = key_selector(&r.key, &r.value).encode()?;
            let g = match ctx.global_value(&store, &key)? {
                Some(bytes) => Some(VG::decode(&bytes)?),
                None => None,
            };
            if let Some(v) = joiner(&r.value, g.as_ref()) {
                ctx.forward(StreamRecord::new(r.key, v, r.timestamp));
            }
            Ok(())
        })
    }
}

/// A table-table joiner: the result row for the two sides' values of a key, or `None` if the
/// key is not in the result.
type TableJoiner<V, VO, VR> = Arc<dyn Fn(Option<&V>, Option<&VO>) -> Option<VR> + Send + Sync>;

impl<'b, K: Data, V: Data> KTable<'b, K, V> {
    /// The rows whose key is in both tables, `joiner(value, other value)` (inner join). See
    /// the module docs.
    ///
    /// ```
    /// use riverbed::streams::{Builder, Materialized, TopologyTestDriver};
    ///
    /// let b = Builder::new("profiles");
    /// let names = b.table::<i64, String>("names", Materialized::named("names"));
    /// let emails = b.table::<i64, String>("emails", Materialized::named("emails"));
    /// names
    ///     .join(&emails, |n, e| format!("{n} <{e}>"))
    ///     .to_stream_with_tombstones()
    ///     .to("contacts");
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// driver.pipe_input("names", &1i64, &Some("Ann".to_string()), 0)?;
    /// driver.pipe_input("emails", &1i64, &Some("ann@example.org".to_string()), 1)?;
    /// driver.pipe_input("names", &1i64, &None::<String>, 2)?; // Ann leaves
    /// let out = driver.read_output::<i64, Option<String>>("contacts")?;
    /// let values: Vec<_> = out.into_iter().map(|r| r.value).collect();
    /// assert_eq!(values, [Some("Ann <ann@example.org>".to_string()), None]);
    /// # Ok::<(), riverbed::Error>(())
    /// ```
    pub fn join<VO: Data, VR: Data>(
        &self,
        other: &KTable<'b, K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
    ) -> KTable<'b, K, VR> {
        self.join_tables(
            other,
            "KTABLE-JOIN",
            Arc::new(move |l, r| Some(joiner(l?, r?))),
        )
    }

    /// The rows of this table, each with the other table's value of its key or `None`:
    /// `joiner(value, other value)` (left join). See the module docs.
    pub fn left_join<VO: Data, VR: Data>(
        &self,
        other: &KTable<'b, K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<'b, K, VR> {
        self.join_tables(
            other,
            "KTABLE-LEFTJOIN",
            Arc::new(move |l, r| Some(joiner(l?, r))),
        )
    }

    /// The rows whose key is in either table: `joiner(value, other value)`, `None` for a
    /// side without the key (outer join). See the module docs.
    pub fn outer_join<VO: Data, VR: Data>(
        &self,
        other: &KTable<'b, K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<'b, K, VR> {
        self.join_tables(
            other,
            "KTABLE-OUTERJOIN",
            Arc::new(move |l, r| (l.is_some() || r.is_some()).then(|| joiner(l, r))),
        )
    }

    fn join_tables<VO: Data, VR: Data>(
        &self,
        other: &KTable<'b, K, VO>,
        what: &str,
        joiner: TableJoiner<V, VO, VR>,
    ) -> KTable<'b, K, VR> {
        let b = self.builder;
        b.require_copartitioned("a table-table join", &self.node, &other.node);
        let forward_result = |new: Option<VR>, old: Option<VR>| {
            (new.is_some() || old.is_some()).then(|| Change::new(new, old))
        };
        let (j, other_getter) = (Arc::clone(&joiner), Arc::clone(&other.getter));
        let left = self
            .changes()
            .then::<K, Change<VR>>(what, false, move |ctx, r| {
                let (o, timestamp) = with_other_row(read(&other_getter, ctx, &r.key)?, r.timestamp);
                let new = j(r.value.new.as_ref(), o.as_ref());
                let old = j(r.value.old.as_ref(), o.as_ref());
                if let Some(c) = forward_result(new, old) {
                    ctx.forward(StreamRecord::new(r.key, c, timestamp));
                }
                Ok(())
            });
        let (j, this_getter) = (Arc::clone(&joiner), Arc::clone(&self.getter));
        let right = other
            .changes()
            .then::<K, Change<VR>>(what, false, move |ctx, r| {
                let (t, timestamp) = with_other_row(read(&this_getter, ctx, &r.key)?, r.timestamp);
                let new = j(t.as_ref(), r.value.new.as_ref());
                let old = j(t.as_ref(), r.value.old.as_ref());
                if let Some(c) = forward_result(new, old) {
                    ctx.forward(StreamRecord::new(r.key, c, timestamp));
                }
                Ok(())
            });
        b.connect(&left.node, &other.getter_stores);
        b.connect(&right.node, &self.getter_stores);
        let merge = b.name("KTABLE-MERGE");
        let pass = Arc::new(
            |ctx: &mut crate::streams::ProcessorContext<'_, K, Change<VR>>,
             r: StreamRecord<K, Change<VR>>| {
                ctx.forward(r);
                Ok(())
            },
        );
        b.add(|t| {
            t.add_processor::<_, K, Change<VR>, K, Change<VR>>(
                &merge,
                move || FnProcessor(Arc::clone(&pass)),
                &[&left.node, &right.node],
            )
            .map(|_| ())
        });
        let (gl, gr) = (Arc::clone(&self.getter), Arc::clone(&other.getter));
        let getter: Getter<K, VR> = Arc::new(move |lookup, k| {
            let (l, lt) = gl(lookup, k)?.unzip();
            let (r, rt) = gr(lookup, k)?.unzip();
            // The joined row's timestamp: the latest of its present sides' (as its updates').
            let timestamp = lt.max(rt).unwrap_or(UNKNOWN_TIMESTAMP);
            Ok(joiner(l.as_ref(), r.as_ref()).map(|v| (v, timestamp)))
        });
        KTable::new(b, merge, None, getter)
            .reading(&self.getter_stores)
            .reading(&other.getter_stores)
    }
}

/// The other side's value for a table-table join of an update with timestamp `timestamp`, and
/// the result's timestamp: Kafka's rule, the latest of the update's and the other row's (the
/// update's alone when the other side has no row).
fn with_other_row<V>(other: Option<(V, i64)>, timestamp: i64) -> (Option<V>, i64) {
    match other {
        Some((v, ts)) => (Some(v), timestamp.max(ts)),
        None => (None, timestamp),
    }
}
