//! Tables: [`Builder::table`], the [`KTable`] operators and [`KGroupedTable`].
//!
//! Inside the topology a table's node forwards [`Change`]s: the key's new value and its previous
//! one (`None`: absent). A table also has a *getter* that reads a key's current value: from its
//! store if it has one, else computed from the tables it derives from (a filtered table reads
//! its parent and filters), so only source and aggregated tables keep stores, as in Kafka.

use std::sync::Arc;

use crate::error::Result;
use crate::streams::dsl::{Builder, KStream, KTable, Materialized};
use crate::streams::serde::{deserialization_error, Serde};
use crate::streams::topology::processor::{Data, ProcessorContext, StreamRecord};
use crate::streams::topology::StoreKind;

/// A change of a table row: the key's new value and its previous one (`None`: absent), as
/// Kafka's `Change`. A deletion has `new: None`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Change<V> {
    pub new: Option<V>,
    pub old: Option<V>,
}

impl<V> Change<V> {
    pub fn new(new: Option<V>, old: Option<V>) -> Self {
        Change { new, old }
    }
}

/// Layout (for repartition topics): a flags byte (1: new present, 2: old present), then if
/// both are present the new value's length (4 bytes, big-endian), then the new value's bytes,
/// then the old value's.
impl<V: Serde> Serde for Change<V> {
    #[allow(clippy::big_endian_bytes, reason = "a fixed, documented layout")]
    fn encode(&self) -> Result<Vec<u8>> {
        let new = self.new.as_ref().map(Serde::encode).transpose()?;
        let old = self.old.as_ref().map(Serde::encode).transpose()?;
        let flags = u8::from(new.is_some()) | (u8::from(old.is_some()) << 1);
        let mut out = vec![flags];
        if let (Some(n), Some(_)) = (&new, &old) {
            let len = u32::try_from(n.len()).unwrap_or(u32::MAX);
            out.extend(len.to_be_bytes());
        }
        out.extend(new.unwrap_or_default());
        out.extend(old.unwrap_or_default());
        Ok(out)
    }

    #[allow(clippy::big_endian_bytes, reason = "a fixed, documented layout")]
    fn decode(bytes: &[u8]) -> Result<Self> {
        let Some((&flags, rest)) = bytes.split_first() else {
            return Err(deserialization_error("Change: no flags byte"));
        };
        match flags {
            0 if rest.is_empty() => Ok(Change::new(None, None)),
            1 => Ok(Change::new(Some(V::decode(rest)?), None)),
            2 => Ok(Change::new(None, Some(V::decode(rest)?))),
            3 if rest.len() >= 4 => {
                let (len, rest) = rest.split_at(4);
                let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
                if len > rest.len() {
                    return Err(deserialization_error("Change: length past the end"));
                }
                let (new, old) = rest.split_at(len);
                Ok(Change::new(Some(V::decode(new)?), Some(V::decode(old)?)))
            }
            _ => Err(deserialization_error(format!(
                "Change: bad flags {flags} or length"
            ))),
        }
    }
}

/// Reads raw bytes from a store of the running task: `(store, key) -> (value, row timestamp)`
/// (`UNKNOWN_TIMESTAMP` for a store that keeps none).
pub(crate) type Lookup<'a> = dyn FnMut(&str, &[u8]) -> Result<Option<(Vec<u8>, i64)>> + 'a;

/// Reads a table's current row of a key: its value and timestamp.
pub(crate) type Getter<K, V> =
    Arc<dyn Fn(&mut Lookup<'_>, &K) -> Result<Option<(V, i64)>> + Send + Sync>;

/// The getter of a table kept in the task store `store`.
pub(crate) fn store_getter<K: Serde + Data, V: Serde + Data>(store: String) -> Getter<K, V> {
    Arc::new(move |lookup, k| match lookup(&store, &k.encode()?)? {
        Some((bytes, ts)) => Ok(Some((V::decode(&bytes)?, ts))),
        None => Ok(None),
    })
}

/// Runs `getter` against the stores of the task `ctx` belongs to: the key's row, with its
/// timestamp.
pub(crate) fn read<K, V, KO: Data, VO: Data>(
    getter: &Getter<K, V>,
    ctx: &mut ProcessorContext<'_, KO, VO>,
    key: &K,
) -> Result<Option<(V, i64)>> {
    let mut lookup = |store: &str, k: &[u8]| {
        ctx.store::<Vec<u8>, Vec<u8>>(store)?
            .get_timestamped(&k.to_vec())
    };
    getter(&mut lookup, key)
}

/// [`read`] without the row's timestamp.
pub(crate) fn read_value<K, V, KO: Data, VO: Data>(
    getter: &Getter<K, V>,
    ctx: &mut ProcessorContext<'_, KO, VO>,
    key: &K,
) -> Result<Option<V>> {
    Ok(read(getter, ctx, key)?.map(|(v, _)| v))
}

impl Builder {
    /// The table of `topic`: per key the latest value, a record with a null value (a
    /// tombstone) deleting the key. It is kept in the state store `materialized` names (with a
    /// changelog, restored before a task runs) and queryable by that name. Each row keeps the
    /// timestamp of the record that wrote it (its updates go downstream with it).
    ///
    /// ```
    /// use riverbed::streams::{Builder, Materialized, TopologyTestDriver};
    ///
    /// let b = Builder::new("prices-app");
    /// b.table::<String, i64>("prices", Materialized::named("prices"))
    ///     .filter(|_, price| *price > 0)
    ///     .to_stream_with_tombstones()
    ///     .to("positive-prices");
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// driver.pipe_input("prices", &"tea".to_string(), &Some(3i64), 0)?;
    /// driver.pipe_input("prices", &"tea".to_string(), &None::<i64>, 1)?; // a tombstone
    /// assert_eq!(driver.store::<String, i64>("prices")?.get("tea")?, None);
    /// let out = driver.read_output::<String, Option<i64>>("positive-prices")?;
    /// assert_eq!(out.iter().map(|r| r.value).collect::<Vec<_>>(), [Some(3), None]);
    /// # Ok::<(), riverbed::Error>(())
    /// ```
    pub fn table<K: Serde + Data, V: Serde + Data>(
        &self,
        topic: &str,
        materialized: Materialized<K, V>,
    ) -> KTable<'_, K, V> {
        let source = self.name("KTABLE-SOURCE");
        self.add(|t| t.add_source::<K, Option<V>>(&source, &[topic]).map(|_| ()));
        let store = materialized
            .name
            .unwrap_or_else(|| self.name("KTABLE-SOURCE-STATE-STORE"));
        self.add(|t| t.add_store(&store, StoreKind::KeyValue, true).map(|_| ()));
        let records: KStream<'_, K, Option<V>> = KStream::new(self, source, false);
        let store_name = store.clone();
        let node = records.then::<K, Change<V>>("KTABLE-MATERIALIZE", false, move |ctx, r| {
            let mut s = ctx.store::<K, V>(&store_name)?;
            let old = match &r.value {
                Some(v) => {
                    let old = s.get(&r.key)?;
                    s.put_timestamped(&r.key, v, r.timestamp)?;
                    old
                }
                None => s.delete(&r.key)?,
            };
            ctx.forward(StreamRecord::new(
                r.key,
                Change::new(r.value, old),
                r.timestamp,
            ));
            Ok(())
        });
        self.connect(&node.node, std::slice::from_ref(&store));
        KTable::new(self, node.node, Some(store.clone()), store_getter(store))
    }
}

impl<'b, K: Data, V: Data> KTable<'b, K, V> {
    /// The table's changes as a stream of `Change`s (its node).
    pub(crate) fn changes(&self) -> KStream<'b, K, Change<V>> {
        KStream::new(self.builder, self.node.clone(), false)
    }

    /// The stream of the table's changes, a deletion as `None` (which a sink writes as a
    /// tombstone, a null value).
    pub fn to_stream_with_tombstones(&self) -> KStream<'b, K, Option<V>> {
        self.changes()
            .then::<K, Option<V>>("KTABLE-TOSTREAM", false, |ctx, r| {
                ctx.forward(StreamRecord::new(r.key, r.value.new, r.timestamp));
                Ok(())
            })
    }

    /// The rows for which `predicate` holds. A row that stops matching is deleted from the
    /// result (a tombstone downstream); an update that neither matches now nor matched
    /// before is not forwarded.
    pub fn filter(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KTable<'b, K, V> {
        let predicate = Arc::new(predicate);
        let p = Arc::clone(&predicate);
        let node = self
            .changes()
            .then::<K, Change<V>>("KTABLE-FILTER", false, move |ctx, r| {
                let keep = |v: Option<V>| v.filter(|v| p(&r.key, v));
                let (new, old) = (keep(r.value.new), keep(r.value.old));
                if new.is_some() || old.is_some() {
                    ctx.forward(StreamRecord::new(r.key, Change::new(new, old), r.timestamp));
                }
                Ok(())
            });
        let parent = Arc::clone(&self.getter);
        let getter: Getter<K, V> =
            Arc::new(move |lookup, k| Ok(parent(lookup, k)?.filter(|(v, _)| predicate(k, v))));
        KTable::new(self.builder, node.node, None, getter).reading(&self.getter_stores)
    }

    /// The rows for which `predicate` does not hold; see [`filter`](Self::filter).
    pub fn filter_not(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KTable<'b, K, V> {
        self.filter(move |k, v| !predicate(k, v))
    }

    /// Every row's value mapped by `f` (a deletion stays a deletion).
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(V) -> V2 + Send + Sync + 'static,
    ) -> KTable<'b, K, V2> {
        let f = Arc::new(f);
        let g = Arc::clone(&f);
        let node =
            self.changes()
                .then::<K, Change<V2>>("KTABLE-MAPVALUES", false, move |ctx, r| {
                    let c = Change::new(r.value.new.map(&*g), r.value.old.map(&*g));
                    ctx.forward(StreamRecord::new(r.key, c, r.timestamp));
                    Ok(())
                });
        let parent = Arc::clone(&self.getter);
        let getter: Getter<K, V2> =
            Arc::new(move |lookup, k| Ok(parent(lookup, k)?.map(|(v, ts)| (f(v), ts))));
        KTable::new(self.builder, node.node, None, getter).reading(&self.getter_stores)
    }

    /// Groups the rows by the key `selector` gives them (with a value it gives too), for an
    /// aggregation with an adder and a subtractor (Kafka's `KGroupedTable`): when a row changes,
    /// its old value is subtracted from its old group and its new value added to its new group.
    /// The changes go through the repartition topic `<app-id>-<store>-repartition`. Rows whose
    /// selected key is null (a `()` or `None` key) are left out.
    pub fn group_by<K2: Data + Serde, V2: Data + Serde>(
        &self,
        selector: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KGroupedTable<'b, K2, V2> {
        let node = self
            .changes()
            .then::<K2, Change<V2>>("KTABLE-SELECT", false, move |ctx, r| {
                let old = r.value.old.map(|v| selector(&r.key, &v));
                let new = r.value.new.map(|v| selector(&r.key, &v));
                match (new, old) {
                    (Some((nk, nv)), Some((ok, ov))) if nk.encode()? == ok.encode()? => {
                        ctx.forward(StreamRecord::new(
                            nk,
                            Change::new(Some(nv), Some(ov)),
                            r.timestamp,
                        ));
                    }
                    (new, old) => {
                        if let Some((ok, ov)) = old {
                            ctx.forward(StreamRecord::new(
                                ok,
                                Change::new(None, Some(ov)),
                                r.timestamp,
                            ));
                        }
                        if let Some((nk, nv)) = new {
                            ctx.forward(StreamRecord::new(
                                nk,
                                Change::new(Some(nv), None),
                                r.timestamp,
                            ));
                        }
                    }
                }
                Ok(())
            });
        KGroupedTable { changes: node }
    }
}

/// A table regrouped by a new key ([`KTable::group_by`]), ready to aggregate with an adder and a
/// subtractor.
///
/// ```
/// use riverbed::streams::{Builder, Materialized, TopologyTestDriver};
///
/// // Users and their cities; count the users per city.
/// let b = Builder::new("cities-app");
/// b.table::<String, String>("user-cities", Materialized::named("user-cities"))
///     .group_by(|_user, city| (city.clone(), 1i64))
///     .count(Materialized::named("users-per-city"));
/// let mut driver = TopologyTestDriver::new(b.build()?)?;
/// driver.pipe_input("user-cities", &"ann".to_string(), &Some("Oslo".to_string()), 0)?;
/// driver.pipe_input("user-cities", &"bob".to_string(), &Some("Oslo".to_string()), 1)?;
/// driver.pipe_input("user-cities", &"ann".to_string(), &Some("Rome".to_string()), 2)?; // moves
/// let counts = driver.store::<String, i64>("users-per-city")?;
/// assert_eq!((counts.get("Oslo")?, counts.get("Rome")?), (Some(1), Some(1)));
/// # Ok::<(), riverbed::Error>(())
/// ```
pub struct KGroupedTable<'b, K, V> {
    /// Forwards `(new key, Change)`, before the repartition.
    changes: KStream<'b, K, Change<V>>,
}

impl<K, V> std::fmt::Debug for KGroupedTable<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KGroupedTable")
            .field("node", &self.changes.node)
            .finish()
    }
}

impl<'b, K: Data + Serde, V: Data + Serde> KGroupedTable<'b, K, V> {
    /// The number of rows per key (a moved or deleted row is subtracted). A key whose count
    /// drops to 0 stays in the table with 0, as in Kafka.
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<'b, K, i64> {
        self.aggregate(|| 0, |_k, _v, n| n + 1, |_k, _v, n| n - 1, materialized)
    }

    /// Per key, `adder(aggregate, value)` for a value that joins the group and
    /// `subtractor(aggregate, value)` for one that leaves it; a key's first value is its initial
    /// aggregate.
    pub fn reduce(
        &self,
        adder: impl Fn(V, V) -> V + Send + Sync + 'static,
        subtractor: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<'b, K, V> {
        self.build(
            move |agg: Option<V>, _k: &K, v: V| match agg {
                Some(a) => adder(a, v),
                None => v,
            },
            move |agg: V, _k: &K, v: V| subtractor(agg, v),
            materialized,
        )
    }

    /// Per key, `adder(key, value, aggregate)` for a value that joins the group and
    /// `subtractor(key, value, aggregate)` for one that leaves it, starting from
    /// `initializer()`. An update within the same group subtracts the old value, then adds the
    /// new one, in one step.
    pub fn aggregate<VA: Data + Serde>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        adder: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        subtractor: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<'b, K, VA> {
        self.build(
            move |agg: Option<VA>, k: &K, v: V| adder(k, v, agg.unwrap_or_else(&initializer)),
            move |agg: VA, k: &K, v: V| subtractor(k, v, agg),
            materialized,
        )
    }

    /// Kafka's `KTableAggregate`: subtract the old value (if the key has an aggregate), add the
    /// new one; an aggregate that is absent after both steps is deleted.
    fn build<VA: Data + Serde>(
        &self,
        add: impl Fn(Option<VA>, &K, V) -> VA + Send + Sync + 'static,
        sub: impl Fn(VA, &K, V) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<'b, K, VA> {
        let b = self.changes.builder;
        let store = materialized
            .name
            .unwrap_or_else(|| b.name("KTABLE-AGGREGATE-STATE-STORE"));
        b.add(|t| t.add_store(&store, StoreKind::KeyValue, true).map(|_| ()));
        let store_name = store.clone();
        let node = self
            .changes
            .through_repartition(&store)
            .then::<K, Change<VA>>("KTABLE-AGGREGATE", false, move |ctx, r| {
                let mut s = ctx.store::<K, VA>(&store_name)?;
                let (old_agg, old_ts) = match s.get_timestamped(&r.key)? {
                    Some((agg, ts)) => (Some(agg), Some(ts)),
                    None => (None, None),
                };
                // Kafka's rule: the result's timestamp is the latest of the stored
                // aggregate's and the record's, the record's alone for a new aggregate.
                let timestamp = old_ts.map_or(r.timestamp, |ts| ts.max(r.timestamp));
                let mid = match (r.value.old, old_agg.clone()) {
                    (Some(v), Some(agg)) => Some(sub(agg, &r.key, v)),
                    (_, agg) => agg,
                };
                let new_agg = match r.value.new {
                    Some(v) => Some(add(mid, &r.key, v)),
                    None => mid,
                };
                match &new_agg {
                    Some(a) => s.put_timestamped(&r.key, a, timestamp)?,
                    None => {
                        s.delete(&r.key)?;
                    }
                }
                ctx.forward(StreamRecord::new(
                    r.key,
                    Change::new(new_agg, old_agg),
                    timestamp,
                ));
                Ok(())
            });
        b.connect(&node.node, std::slice::from_ref(&store));
        KTable::new(b, node.node, Some(store.clone()), store_getter(store))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_roundtrips_and_refuses_bad_bytes() {
        for c in [
            Change::new(None, None),
            Change::new(Some("a".to_string()), None),
            Change::new(None, Some("bc".to_string())),
            Change::new(Some(String::new()), Some("x".to_string())),
        ] {
            assert_eq!(Change::<String>::decode(&c.encode().unwrap()).unwrap(), c);
        }
        for bad in [&[][..], &[0, 1], &[3, 0, 0], &[3, 0, 0, 0, 9, 1], &[7]] {
            assert!(Change::<String>::decode(bad).is_err(), "{bad:?}");
        }
    }
}
