//! Foreign-key table-table joins ([`KTable::join_foreign_key`],
//! [`KTable::left_join_foreign_key`]), Kafka's KIP-213.
//!
//! A primary-key table join needs both tables keyed alike. A foreign-key join joins each row of
//! this (the *left*) table with the row of another (the *right*) table whose key the
//! `foreign_key` function extracts from the left value, e.g. orders (keyed by order id) with
//! the customer each order names. The result is a table keyed by the left key:
//!
//! - a left row whose foreign-key row exists: `joiner(left value, right value)`;
//! - a left row whose foreign-key row does not exist, or whose foreign key is null (a `None`
//!   or `()` key): no row in the inner join ([`join_foreign_key`](KTable::join_foreign_key)),
//!   `joiner(left value, None)` in the left join
//!   ([`left_join_foreign_key`](KTable::left_join_foreign_key));
//! - a deleted left row: no row (a tombstone downstream if it had one).
//!
//! An update of a right row updates the result of every left row that refers to it; an update
//! of a left row updates its own result, also when its foreign key changes. A result row that
//! is absent before and after an update is not forwarded, so an inner join emits no tombstone
//! for a row that never had a result. The result table is kept in the state store
//! `materialized` names and is queryable by that name.
//!
//! # Data flow
//!
//! The two tables are partitioned by different keys, so a left row and the right row it refers
//! to are usually in different tasks. The join moves messages between them through two
//! repartition topics (created by [`App::start`](crate::streams::App::start) like every
//! repartition topic; `<store>` is the result store's name):
//!
//! 1. **Subscription** (`<app-id>-<store>-subscription-registration-repartition`, keyed by the
//!    foreign key, so co-partitioned with the right table): when a left row changes, the left
//!    side sends *subscribe* (left key, a 128-bit MurmurHash3 of the new left value) to its
//!    foreign key, and *unsubscribe* (left key) to its previous foreign key if that differs.
//! 2. The right side keeps a **subscription store** (`<store>-subscription-store`) keyed by
//!    (foreign key, left key) — the foreign key's bytes prefixed by their length, so that all
//!    subscribers of one foreign key are one contiguous prefix range — with the subscribing
//!    value's hash. A *subscribe* is answered at once with the foreign key's current right
//!    value (or its absence); an update of a right row is sent to every subscriber found by a
//!    prefix scan.
//! 3. **Response** (`<app-id>-<store>-subscription-response-repartition`, keyed by the left
//!    key, so co-partitioned with the left table): (hash, right value). The left side reads its
//!    current left value; if the row is gone or the hash differs from the current value's
//!    hash, the response answers an earlier version of the row and is dropped (a *stale*
//!    response, possible because responses from the old and the new foreign key's tasks race);
//!    otherwise it computes the joiner and updates the result store.
//!
//! A left deletion, and a left value whose foreign key is null, are resolved on the left side
//! at once (after unsubscribing from the old foreign key): their result does not depend on the
//! right table, and any response still in flight for an earlier value is then stale.
//!
//! Why the result is right under any interleaving: the last message the left side sends for a
//! left row is a *subscribe* with the hash of the row's current value, to its current foreign
//! key. That foreign key's task answers it, and then every later update of the right row, in
//! order, on one response partition; responses with the current hash can only come from there.
//! So the last response the left side accepts carries the latest right value. Unlike Kafka, a
//! *subscribe* is always answered (even for an inner join of a new left row whose right row is
//! absent): otherwise a left row deleted and re-inserted with the same value could accept a
//! late answer to its first subscription, carrying a right value deleted since.
//!
//! All three stores (the two sides' subscription and result stores, plus the tables') have
//! changelogs, so the join survives restarts and rebalances. Output timestamps are those of
//! the update that caused them.
//!
//! Wire layouts (for the repartition topics and the subscription store; version 0):
//! subscription value `[0, 1 (subscribe), hash (16 bytes), left key...]` or
//! `[0, 0 (unsubscribe), left key...]`; response value `[0, hash (16 bytes), 0]` (no right
//! row) or `[0, hash, 1, right value...]`; subscription store key `[foreign key length (4
//! bytes, big-endian), foreign key, left key]`, value: the hash.

use std::sync::Arc;

use crate::error::Result;
use crate::streams::dsl::table::{read, read_value, store_getter, Change};
use crate::streams::dsl::{KTable, Materialized};
use crate::streams::serde::{deserialization_error, Serde};
use crate::streams::topology::processor::{Data, ProcessorContext, StreamRecord};
use crate::streams::topology::StoreKind;

/// The result of joining a left value with its right value (`None`: absent or null foreign
/// key), or `None` if the left row has no result row.
type FkJoiner<V, VO, VR> = Arc<dyn Fn(&V, Option<&VO>) -> Option<VR> + Send + Sync>;

/// The extractor of a left value's foreign key.
type ForeignKey<V, KO> = Arc<dyn Fn(&V) -> KO + Send + Sync>;

/// The hash of a left value that subscriptions and responses carry.
type ValueHash = [u8; 16];

/// The first byte of every message and store entry this module writes.
const LAYOUT_VERSION: u8 = 0;

impl<'b, K: Data + Serde, V: Data + Serde> KTable<'b, K, V> {
    /// Joins each row with the row of `other` whose key `foreign_key` extracts from the row's
    /// value: `joiner(value, other value)`, keyed by this table's key (Kafka's foreign-key
    /// join, KIP-213). Rows whose foreign key is null (a `None` or `()` key) or not in `other`
    /// have no result row (inner join). The result is kept in the store `materialized` names
    /// (`<store>` below), queryable by that name.
    ///
    /// An update of a row of `other` updates the result of every row that refers to it; an
    /// update of a row of this table updates its result, also when its foreign key changes; a
    /// deleted row's result is deleted. A result row absent before and after an update is not
    /// forwarded (no tombstone for a row that never had a result). Output timestamps are those
    /// of the update that caused them.
    ///
    /// How: a changed row *subscribes* to its foreign key (and unsubscribes from its old one)
    /// through the repartition topic `<app-id>-<store>-subscription-registration-repartition`,
    /// keyed by the foreign key, so it reaches the task of `other`'s row. That task records
    /// the subscription in the store `<store>-subscription-store` and answers it, and every
    /// later update of the row, through `<app-id>-<store>-subscription-response-repartition`,
    /// keyed by this table's key. A subscription and its answers carry a hash of the
    /// subscribing value; an answer whose hash is not that of the row's current value
    /// answers an earlier value (the answers from an old and a new foreign key race) and is
    /// dropped. So the result is right under any interleaving, and every store has a
    /// changelog. `other` must be co-partitioned with the subscription topic (its records
    /// partitioned by key bytes, as producers and repartitions do); the application creates
    /// both topics at start.
    ///
    /// ```
    /// use riverbed::streams::{Builder, Materialized, TopologyTestDriver};
    ///
    /// // Orders keyed by order id; each value names its customer ("customer:amount").
    /// let b = Builder::new("shop");
    /// let orders = b.table::<String, String>("orders", Materialized::named("orders"));
    /// let customers = b.table::<String, String>("customers", Materialized::named("customers"));
    /// orders
    ///     .join_foreign_key(
    ///         &customers,
    ///         |order| order.split(':').next().unwrap_or_default().to_string(),
    ///         |order, name| format!("{order} by {name}"),
    ///         Materialized::named("orders-with-names"),
    ///     )
    ///     .to_stream_with_tombstones()
    ///     .to("orders-with-names");
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// let s = |x: &str| x.to_string();
    /// driver.pipe_input("orders", &s("o1"), &Some(s("c1:30")), 0)?; // no customer c1 yet
    /// driver.pipe_input("customers", &s("c1"), &Some(s("Ann")), 1)?;
    /// driver.pipe_input("customers", &s("c1"), &Some(s("Ann Lee")), 2)?; // renamed
    /// driver.pipe_input("orders", &s("o1"), &None::<String>, 3)?; // order cancelled
    /// let out = driver.read_output::<String, Option<String>>("orders-with-names")?;
    /// let values: Vec<_> = out.into_iter().map(|r| r.value).collect();
    /// assert_eq!(values, [Some(s("c1:30 by Ann")), Some(s("c1:30 by Ann Lee")), None]);
    /// assert_eq!(driver.store::<String, String>("orders-with-names")?.get("o1")?, None);
    /// # Ok::<(), riverbed::Error>(())
    /// ```
    pub fn join_foreign_key<KO, VO, VR>(
        &self,
        other: &KTable<'b, KO, VO>,
        foreign_key: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<'b, K, VR>
    where
        KO: Data + Serde,
        VO: Data + Serde,
        VR: Data + Serde,
    {
        self.foreign_key_join(
            other,
            "KTABLE-FK-JOIN",
            Arc::new(foreign_key),
            Arc::new(move |v, o| o.map(|o| joiner(v, o))),
            materialized,
        )
    }

    /// Joins each row with the row of `other` whose key `foreign_key` extracts from the row's
    /// value, or `None` if the foreign key is null or not in `other`: `joiner(value, other
    /// value)`, keyed by this table's key; every row of this table has a result row (left
    /// join). Otherwise as [`join_foreign_key`](Self::join_foreign_key), which describes the
    /// semantics and the topics and stores the join uses.
    ///
    /// ```
    /// use riverbed::streams::{Builder, Materialized, TopologyTestDriver};
    ///
    /// let b = Builder::new("shop");
    /// let orders = b.table::<String, String>("orders", Materialized::named("orders"));
    /// let customers = b.table::<String, String>("customers", Materialized::named("customers"));
    /// orders.left_join_foreign_key(
    ///     &customers,
    ///     |order| order.split(':').next().unwrap_or_default().to_string(),
    ///     |order, name| format!("{order} by {}", name.map_or("?", |n| n.as_str())),
    ///     Materialized::named("orders-with-names"),
    /// );
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// let s = |x: &str| x.to_string();
    /// driver.pipe_input("orders", &s("o1"), &Some(s("c1:30")), 0)?;
    /// let results = driver.store::<String, String>("orders-with-names")?;
    /// assert_eq!(results.get("o1")?, Some(s("c1:30 by ?")));
    /// driver.pipe_input("customers", &s("c1"), &Some(s("Ann")), 1)?;
    /// assert_eq!(results.get("o1")?, Some(s("c1:30 by Ann")));
    /// driver.pipe_input("customers", &s("c1"), &None::<String>, 2)?; // customer deleted
    /// assert_eq!(results.get("o1")?, Some(s("c1:30 by ?")));
    /// # Ok::<(), riverbed::Error>(())
    /// ```
    pub fn left_join_foreign_key<KO, VO, VR>(
        &self,
        other: &KTable<'b, KO, VO>,
        foreign_key: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<'b, K, VR>
    where
        KO: Data + Serde,
        VO: Data + Serde,
        VR: Data + Serde,
    {
        self.foreign_key_join(
            other,
            "KTABLE-FK-LEFTJOIN",
            Arc::new(foreign_key),
            Arc::new(move |v, o| Some(joiner(v, o))),
            materialized,
        )
    }

    /// Builds the nodes of the module docs' data flow.
    fn foreign_key_join<KO, VO, VR>(
        &self,
        other: &KTable<'b, KO, VO>,
        what: &str,
        foreign_key: ForeignKey<V, KO>,
        joiner: FkJoiner<V, VO, VR>,
        materialized: Materialized<K, VR>,
    ) -> KTable<'b, K, VR>
    where
        KO: Data + Serde,
        VO: Data + Serde,
        VR: Data + Serde,
    {
        let b = self.builder;
        let result_store = materialized
            .name
            .unwrap_or_else(|| b.name(&format!("{what}-STATE-STORE")));
        let subscription_store = format!("{result_store}-subscription-store");
        b.add(|t| {
            t.add_state_store(&result_store)?;
            t.add_store(&subscription_store, StoreKind::Subscriptions, false)?;
            Ok(())
        });

        // Left side: subscribe the changed row to its foreign key (unsubscribing it from the
        // old one) ...
        let fk = Arc::clone(&foreign_key);
        let subscriptions = self
            .changes()
            .then::<KO, Subscription>(&format!("{what}-SUBSCRIBE"), false, move |ctx, r| {
                send_subscriptions(ctx, &*fk, r)
            })
            .through_repartition(&format!("{result_store}-subscription-registration"));
        // ... and resolve at once what does not depend on the right table.
        let (fk, j, store) = (
            Arc::clone(&foreign_key),
            Arc::clone(&joiner),
            result_store.clone(),
        );
        let resolved_locally = self.changes().then::<K, Change<VR>>(
            &format!("{what}-RESOLVE-LOCAL"),
            false,
            move |ctx, r| {
                if r.key.encode_nullable()?.is_none() {
                    return Ok(());
                }
                let result = match &r.value.new {
                    None => None,
                    Some(v) if fk(v).encode_nullable()?.is_none() => j(v, None),
                    // Resolved when the foreign key's task answers the subscription.
                    Some(_) => return Ok(()),
                };
                update_result(ctx, &store, r.key, result, r.timestamp)
            },
        );

        // Right side: record subscriptions and answer them ...
        let (store, right_getter) = (subscription_store.clone(), Arc::clone(&other.getter));
        let answers = subscriptions.then::<Vec<u8>, Response<VO>>(
            &format!("{what}-SUBSCRIPTION-STORE"),
            false,
            move |ctx, r| {
                let entry = subscription_key(&r.key.encode()?, &r.value.left_key);
                match r.value.hash {
                    None => {
                        ctx.raw_store(&store)?.delete(&entry);
                    }
                    Some(hash) => {
                        ctx.raw_store(&store)?.put(entry, hash.to_vec());
                        // As in Kafka: the answer (and so the result) carries the latest of
                        // the subscribing row's timestamp and the right row's.
                        let (right, timestamp) = match read(&right_getter, ctx, &r.key)? {
                            Some((v, ts)) => (Some(v), r.timestamp.max(ts)),
                            None => (None, r.timestamp),
                        };
                        ctx.forward(StreamRecord::new(
                            r.value.left_key,
                            Response { hash, right },
                            timestamp,
                        ));
                    }
                }
                Ok(())
            },
        );
        // ... and send every right update to the subscribers of its key.
        let store = subscription_store.clone();
        let updates = other.changes().then::<Vec<u8>, Response<VO>>(
            &format!("{what}-FOREIGN-UPDATE"),
            false,
            move |ctx, r| {
                let unchanged = r.value.new.as_ref().map(Serde::encode).transpose()?
                    == r.value.old.as_ref().map(Serde::encode).transpose()?;
                if unchanged {
                    return Ok(());
                }
                let prefix = subscription_prefix(&r.key.encode()?);
                let subscribers = subscribers_of(&ctx.raw_store(&store)?.data, &prefix)?;
                for (left_key, hash) in subscribers {
                    let right = r.value.new.clone();
                    ctx.forward(StreamRecord::new(
                        left_key,
                        Response { hash, right },
                        r.timestamp,
                    ));
                }
                Ok(())
            },
        );
        let responses = answers
            .merge(&updates)
            .through_repartition(&format!("{result_store}-subscription-response"));

        // Left side again: join the responses that answer the current value.
        let (store, left_getter) = (result_store.clone(), Arc::clone(&self.getter));
        let resolved = responses.then::<K, Change<VR>>(
            &format!("{what}-RESOLVE-RESPONSE"),
            false,
            move |ctx, r| {
                let key = K::decode_nullable(Some(&r.key))?;
                let Some(current) = read_value(&left_getter, ctx, &key)? else {
                    // The row was deleted after it subscribed; its deletion removed the result.
                    return Ok(());
                };
                if value_hash(&current.encode()?) != r.value.hash {
                    return Ok(()); // answers an earlier value of the row
                }
                let result = joiner(&current, r.value.right.as_ref());
                update_result(ctx, &store, key, result, r.timestamp)
            },
        );

        // Each node joins the sub-topology of the stores it uses: the left side (the left
        // table, the responses, the result) and the right side (the subscriptions, the right
        // table) split at the two repartition topics, as in Kafka.
        let subscribed: Vec<String> = std::iter::once(subscription_store.clone())
            .chain(other.getter_stores.iter().cloned())
            .collect();
        b.connect(&answers.node, &subscribed);
        b.connect(&updates.node, std::slice::from_ref(&subscription_store));
        b.connect(&resolved_locally.node, std::slice::from_ref(&result_store));
        let left_reads: Vec<String> = std::iter::once(result_store.clone())
            .chain(self.getter_stores.iter().cloned())
            .collect();
        b.connect(&resolved.node, &left_reads);
        b.require_copartitioned(
            "a foreign-key join (the subscriptions and the foreign table)",
            &subscriptions.node,
            &other.node,
        );
        b.require_copartitioned(
            "a foreign-key join (the responses and the table)",
            &responses.node,
            &self.node,
        );
        let result = resolved_locally.merge(&resolved);
        KTable::new(
            b,
            result.node,
            Some(result_store.clone()),
            store_getter(result_store),
        )
    }
}

/// The subscribe and unsubscribe messages for a change of the left row `r.key`.
fn send_subscriptions<K: Serde, V: Serde, KO: Data + Serde>(
    ctx: &mut ProcessorContext<'_, KO, Subscription>,
    foreign_key: &(dyn Fn(&V) -> KO + Send + Sync),
    r: StreamRecord<K, Change<V>>,
) -> Result<()> {
    let Some(left_key) = r.key.encode_nullable()? else {
        return Ok(()); // a table row needs a key
    };
    // A foreign key with its bytes, or None for a null one.
    let non_null = |k: KO| -> Result<Option<(KO, Vec<u8>)>> {
        Ok(k.encode_nullable()?.map(|bytes| (k, bytes)))
    };
    let old_fk = match r.value.old.as_ref() {
        Some(v) => non_null(foreign_key(v))?,
        None => None,
    };
    let new = match r.value.new.as_ref() {
        Some(v) => match non_null(foreign_key(v))? {
            Some(fk) => Some((fk, value_hash(&v.encode()?))),
            None => None,
        },
        None => None,
    };
    if let Some((old, old_bytes)) = old_fk {
        let moved = new
            .as_ref()
            .is_none_or(|((_, bytes), _)| *bytes != old_bytes);
        if moved {
            let unsubscribe = Subscription {
                left_key: left_key.clone(),
                hash: None,
            };
            ctx.forward(StreamRecord::new(old, unsubscribe, r.timestamp));
        }
    }
    if let Some(((fk, _), hash)) = new {
        let subscribe = Subscription {
            left_key,
            hash: Some(hash),
        };
        ctx.forward(StreamRecord::new(fk, subscribe, r.timestamp));
    }
    Ok(())
}

/// Sets the result row of `key` to `result` and forwards the change, unless the row is absent
/// before and after.
fn update_result<K: Data + Serde, VR: Data + Serde>(
    ctx: &mut ProcessorContext<'_, K, Change<VR>>,
    store: &str,
    key: K,
    result: Option<VR>,
    timestamp: i64,
) -> Result<()> {
    let mut s = ctx.store::<K, VR>(store)?;
    let old = match &result {
        Some(v) => {
            let old = s.get(&key)?;
            s.put(&key, v)?;
            old
        }
        None => s.delete(&key)?,
    };
    if result.is_some() || old.is_some() {
        ctx.forward(StreamRecord::new(key, Change::new(result, old), timestamp));
    }
    Ok(())
}

/// The subscription store's key prefix of a foreign key: its length (4 bytes, big-endian), then
/// its bytes. The length keeps the foreign key `ab` with left key `c` apart from the foreign key
/// `a` with left key `bc`.
#[allow(clippy::big_endian_bytes, reason = "a fixed, documented layout")]
fn subscription_prefix(foreign_key: &[u8]) -> Vec<u8> {
    let len = u32::try_from(foreign_key.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(4 + foreign_key.len());
    out.extend(len.to_be_bytes());
    out.extend(foreign_key);
    out
}

/// The subscription store's key of a left row subscribed to a foreign key.
fn subscription_key(foreign_key: &[u8], left_key: &[u8]) -> Vec<u8> {
    let mut out = subscription_prefix(foreign_key);
    out.extend(left_key);
    out
}

/// The subscribers of the foreign key whose prefix is `prefix`: `(left key, hash)`, by a range
/// scan of the entries that start with it.
fn subscribers_of(
    data: &std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
    prefix: &[u8],
) -> Result<Vec<(Vec<u8>, ValueHash)>> {
    data.range(prefix.to_vec()..)
        .take_while(|(k, _)| k.starts_with(prefix))
        .map(|(k, v)| {
            let hash = ValueHash::try_from(v.as_slice()).map_err(|_| {
                deserialization_error(format!(
                    "foreign-key join subscription store: a hash of {} bytes, not 16",
                    v.len()
                ))
            })?;
            Ok((k[prefix.len()..].to_vec(), hash))
        })
        .collect()
}

/// A message on the subscription topic (keyed by the foreign key): the left row `left_key`
/// subscribes with the hash of its value, or unsubscribes (`hash: None`).
#[derive(Clone, Debug, PartialEq)]
struct Subscription {
    /// The left row's key, as its record key bytes.
    left_key: Vec<u8>,
    hash: Option<ValueHash>,
}

impl Serde for Subscription {
    fn encode(&self) -> Result<Vec<u8>> {
        let mut out = vec![LAYOUT_VERSION];
        match &self.hash {
            None => out.push(0),
            Some(h) => {
                out.push(1);
                out.extend(h);
            }
        }
        out.extend(&self.left_key);
        Ok(out)
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let (hash, left_key) = match bytes {
            [LAYOUT_VERSION, 0, left_key @ ..] => (None, left_key),
            [LAYOUT_VERSION, 1, rest @ ..] if rest.len() >= 16 => {
                let (hash, left_key) = rest.split_at(16);
                (ValueHash::try_from(hash).ok(), left_key)
            }
            _ => {
                return Err(deserialization_error(format!(
                    "foreign-key join subscription: unknown version, instruction or length \
                     ({} bytes, starting {:?})",
                    bytes.len(),
                    &bytes[..bytes.len().min(2)]
                )))
            }
        };
        Ok(Subscription {
            left_key: left_key.to_vec(),
            hash,
        })
    }
}

/// A message on the response topic (keyed by the left key): the right value (`None`: absent)
/// for the left value with hash `hash`.
#[derive(Clone, Debug, PartialEq)]
struct Response<VO> {
    hash: ValueHash,
    right: Option<VO>,
}

impl<VO: Serde> Serde for Response<VO> {
    fn encode(&self) -> Result<Vec<u8>> {
        let mut out = vec![LAYOUT_VERSION];
        out.extend(self.hash);
        match &self.right {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                out.extend(v.encode()?);
            }
        }
        Ok(out)
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let bad = || {
            deserialization_error(format!(
                "foreign-key join response: unknown version or length ({} bytes)",
                bytes.len()
            ))
        };
        let [LAYOUT_VERSION, rest @ ..] = bytes else {
            return Err(bad());
        };
        if rest.len() < 17 {
            return Err(bad());
        }
        let (hash, rest) = rest.split_at(16);
        let hash = ValueHash::try_from(hash).map_err(|_| bad())?;
        let right = match rest {
            [0] => None,
            [1, value @ ..] => Some(VO::decode(value)?),
            _ => return Err(bad()),
        };
        Ok(Response { hash, right })
    }
}

/// The hash that tells a response to the current left value from one to an earlier value:
/// MurmurHash3 x64 128-bit (seed 0) of the value's bytes, as Kafka uses. Stable across
/// versions and platforms, since hashes are kept in stores and topics.
fn value_hash(bytes: &[u8]) -> ValueHash {
    murmur3_x64_128(bytes, 0)
}

/// MurmurHash3, x64 128-bit variant (Austin Appleby's public-domain algorithm): `h1` then `h2`,
/// each little-endian.
fn murmur3_x64_128(data: &[u8], seed: u32) -> [u8; 16] {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    let mix_k1 = |k: u64| k.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
    let mix_k2 = |k: u64| k.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
    let fmix = |mut k: u64| {
        k ^= k >> 33;
        k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
        k ^= k >> 33;
        k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        k ^ (k >> 33)
    };
    let le_u64 = |b: &[u8]| {
        let mut word = [0u8; 8];
        word[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(word)
    };
    let (mut h1, mut h2) = (u64::from(seed), u64::from(seed));
    let blocks = data.chunks_exact(16);
    let tail = blocks.remainder();
    for block in blocks {
        let (k1, k2) = (le_u64(&block[..8]), le_u64(&block[8..]));
        h1 ^= mix_k1(k1);
        h1 = h1
            .rotate_left(27)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
        h2 ^= mix_k2(k2);
        h2 = h2
            .rotate_left(31)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }
    if tail.len() > 8 {
        h2 ^= mix_k2(le_u64(&tail[8..]));
    }
    if !tail.is_empty() {
        h1 ^= mix_k1(le_u64(&tail[..tail.len().min(8)]));
    }
    let len = data.len() as u64;
    h1 ^= len;
    h2 ^= len;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix(h1);
    h2 = fmix(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&h1.to_le_bytes());
    out[8..].copy_from_slice(&h2.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_matches_published_vectors() {
        // mmh3.hash_bytes("foo"): seed 0.
        assert_eq!(
            murmur3_x64_128(b"foo", 0),
            *b"aE\xf5\x01W\x86q\xe2\x87}\xba+\xe4\x87\xaf~"
        );
        // mmh3.hash64("foo", 42, True): h1 and h2 as signed 64-bit numbers.
        let h = murmur3_x64_128(b"foo", 42);
        let h1 = i64::from_le_bytes(h[..8].try_into().unwrap());
        let h2 = i64::from_le_bytes(h[8..].try_into().unwrap());
        assert_eq!(
            (h1, h2),
            (-840_311_307_571_801_102, -6_739_155_424_061_121_879)
        );
        // Every tail length and a full block hash differently.
        let long = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let hashes: std::collections::HashSet<_> = (0..=long.len())
            .map(|n| murmur3_x64_128(&long[..n], 0))
            .collect();
        assert_eq!(hashes.len(), long.len() + 1);
    }

    #[test]
    fn messages_roundtrip_and_refuse_bad_bytes() {
        for s in [
            Subscription {
                left_key: b"order-1".to_vec(),
                hash: Some([7; 16]),
            },
            Subscription {
                left_key: Vec::new(),
                hash: None,
            },
        ] {
            assert_eq!(Subscription::decode(&s.encode().unwrap()).unwrap(), s);
        }
        for r in [
            Response {
                hash: [1; 16],
                right: Some("Ann".to_string()),
            },
            Response {
                hash: [2; 16],
                right: None,
            },
        ] {
            assert_eq!(Response::<String>::decode(&r.encode().unwrap()).unwrap(), r);
        }
        for bad in [&[][..], &[1, 0], &[0, 2], &[0, 1, 3, 3]] {
            assert!(Subscription::decode(bad).is_err(), "{bad:?}");
        }
        for bad in [&[][..], &[0; 17], &[0; 19], &[1; 18]] {
            assert!(Response::<String>::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prefix_scan_finds_exactly_the_subscribers_of_one_foreign_key() {
        let mut data = std::collections::BTreeMap::new();
        for (fk, left) in [
            (&b"a"[..], &b"bc"[..]),
            (b"ab", b"c"),
            (b"a", b"x"),
            (b"b", b""),
        ] {
            data.insert(subscription_key(fk, left), vec![left.len() as u8; 16]);
        }
        let found = subscribers_of(&data, &subscription_prefix(b"a")).unwrap();
        let keys: Vec<_> = found.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, [&b"bc"[..], b"x"]);
        assert_eq!(found[0].1, [2; 16]);
        data.insert(subscription_key(b"z", b"k"), vec![1, 2, 3]);
        assert!(subscribers_of(&data, &subscription_prefix(b"z")).is_err());
    }
}
