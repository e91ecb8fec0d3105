//! Repartitioning: [`KStream::select_key`], [`KStream::group_by`], [`KStream::repartition`],
//! and the repartition a grouping or a join inserts after a key change.
//!
//! A repartition is a sink writing the repartition topic `<app-id>-<name>-repartition`
//! (partitioned by the murmur2 hash of the key bytes, like every keyed record) and a source
//! reading it, so that after it every record of a key is in the same partition, hence task.
//! The application creates the topic when it starts, with the input topics' partition count.
//! Records whose key is null (a `()` or `None` key) are dropped before a repartition, as in
//! Kafka.

use super::{KGroupedStream, KStream};
use crate::streams::processor::{Data, StreamRecord};
use crate::streams::serde::Serde;

impl<'b, K: Data, V: Data> KStream<'b, K, V> {
    /// Each record with the key `f` gives it (value and timestamp kept). A later grouping or
    /// join repartitions the stream by the new key.
    pub fn select_key<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KStream<'b, K2, V> {
        self.then("KSTREAM-KEY-SELECT", true, move |ctx, r| {
            let k = f(&r.key, &r.value);
            ctx.forward(StreamRecord::new(k, r.value, r.timestamp));
            Ok(())
        })
    }
}

impl<'b, K: Data + Serde, V: Data + Serde> KStream<'b, K, V> {
    /// Groups the records by the key `f` gives them, for an aggregation: `select_key(f)`
    /// then [`group_by_key`](Self::group_by_key), so the aggregation reads the records
    /// through the repartition topic `<app-id>-<store>-repartition`.
    ///
    /// ```
    /// use riverbed::streams::{Builder, Materialized, TopologyTestDriver};
    ///
    /// // Orders keyed by order id, counted per customer (the value).
    /// let b = Builder::new("orders-app");
    /// b.stream::<String, String>("orders")
    ///     .group_by(|_order, customer| customer.clone())
    ///     .count(Materialized::named("orders-per-customer"));
    /// let topology = b.build()?;
    /// assert_eq!(topology.repartition_topics(), ["orders-app-orders-per-customer-repartition"]);
    /// let mut driver = TopologyTestDriver::new(topology)?;
    /// for (order, customer) in [("o1", "ann"), ("o2", "bob"), ("o3", "ann")] {
    ///     driver.pipe_input("orders", &order.to_string(), &customer.to_string(), 0)?;
    /// }
    /// assert_eq!(driver.store::<String, i64>("orders-per-customer")?.get("ann")?, Some(2));
    /// # Ok::<(), riverbed::Error>(())
    /// ```
    pub fn group_by<K2: Data + Serde>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KGroupedStream<'b, K2, V> {
        self.select_key(f).group_by_key()
    }

    /// The same records, sent through the repartition topic `<app-id>-<name>-repartition`
    /// (Kafka's `repartition`), so that records are in the partition of their current key.
    pub fn repartition(&self, name: &str) -> KStream<'b, K, V> {
        self.through_repartition(name)
    }

    /// The stream itself if its key was not changed, else repartitioned through
    /// `<app-id>-<generated name>-repartition`; for a join.
    pub(super) fn keyed_for_join(&self, what: &str) -> KStream<'b, K, V> {
        if self.key_changed {
            let name = self.builder.name(what);
            self.through_repartition(&name)
        } else {
            self.clone()
        }
    }

    /// Adds the sink to, and the source from, `<app-id>-<name>-repartition`.
    pub(super) fn through_repartition(&self, name: &str) -> KStream<'b, K, V> {
        let b = self.builder;
        let topic = format!(
            "{}-{name}-repartition",
            b.topology.borrow().application_id()
        );
        let keyed = self.then::<K, V>("KSTREAM-FILTER-NULL-KEY", false, |ctx, r| {
            if r.key.encode_nullable().is_some() {
                ctx.forward(r);
            }
            Ok(())
        });
        let sink = b.name("KSTREAM-REPARTITION-SINK");
        let source = b.name("KSTREAM-REPARTITION-SOURCE");
        b.add(|t| {
            t.add_sink::<K, V>(&sink, &topic, &[&keyed.node])?;
            t.add_source::<K, V>(&source, &[&topic])?;
            t.repartition_topics.push(topic.clone());
            Ok(())
        });
        KStream::new(b, source, false)
    }
}
