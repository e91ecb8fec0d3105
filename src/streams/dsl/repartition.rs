//! Repartitioning: [`KStream::select_key`], [`KStream::group_by`], [`KStream::repartition`],
//! [`KStream::repartition_with`], and the repartition a grouping or a join inserts after a key
//! change.
//!
//! A repartition is a sink writing the repartition topic `<app-id>-<name>-repartition`
//! (partitioned by the murmur2 hash of the key bytes, like every keyed record) and a source
//! reading it, so that after it every record of a key is in the same partition, hence task.
//! The two sides are in different sub-topologies (see
//! [`subtopology`](crate::streams::topology::subtopology)), so the topic may have its own partition
//! count: the one [`Repartitioned`] gives, else the count of the topics it is read with (the
//! other side of a join), else that of the topics upstream. The application creates the topic
//! when it starts. Records whose key is null (a `()` or `None` key) are dropped before a
//! repartition, as in Kafka.

use crate::error::Error;
use crate::streams::dsl::{KGroupedStream, KStream};
use crate::streams::serde::Serde;
use crate::streams::topology::processor::{Data, StreamRecord};

/// How [`KStream::repartition_with`] repartitions: the topic's name and partition count
/// (Kafka's `Repartitioned`).
///
/// ```
/// use riverbed::streams::Repartitioned;
///
/// let r = Repartitioned::named("by-customer").with_number_of_partitions(3);
/// assert_eq!((r.name(), r.number_of_partitions()), (Some("by-customer"), Some(3)));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Repartitioned {
    name: Option<String>,
    partitions: Option<u32>,
}

impl Repartitioned {
    /// A repartition through `<app-id>-<name>-repartition`.
    pub fn named(name: impl Into<String>) -> Self {
        Repartitioned {
            name: Some(name.into()),
            partitions: None,
        }
    }

    /// A repartition through a topic with a generated name
    /// (`<app-id>-KSTREAM-REPARTITION-<n>-repartition`).
    pub fn unnamed() -> Self {
        Repartitioned::default()
    }

    /// The repartition topic gets `n` partitions, so the sub-topology reading it runs `n`
    /// tasks. Without it, it gets the partition count of the topics it is read with, else of
    /// the topics upstream (see [`subtopology`](crate::streams::topology::subtopology)). Zero is
    /// refused by [`Builder::build`](crate::streams::dsl::Builder::build).
    pub fn with_number_of_partitions(mut self, n: u32) -> Self {
        self.partitions = Some(n);
        self
    }

    /// The name given, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The partition count given, if any.
    pub fn number_of_partitions(&self) -> Option<u32> {
        self.partitions
    }
}

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

    /// The same records, sent through a repartition topic named and sized by `repartitioned`
    /// (Kafka's `repartition(Repartitioned)`). The sub-topology after it runs one task per
    /// partition of that topic: this is how a join gets co-partitioned with a table of another
    /// partition count, or how the work after a key change is spread over more tasks.
    ///
    /// ```
    /// use riverbed::streams::{Builder, Materialized, Repartitioned, TopologyTestDriver};
    ///
    /// // Orders keyed by order id, valued by customer; counted per customer over 3 partitions.
    /// let b = Builder::new("orders-app");
    /// b.stream::<String, String>("orders")
    ///     .select_key(|_order, customer| customer.clone())
    ///     .repartition_with(Repartitioned::named("by-customer").with_number_of_partitions(3))
    ///     .group_by_key()
    ///     .count(Materialized::named("orders-per-customer"));
    /// let topology = b.build()?;
    /// assert_eq!(topology.repartition_topics(), ["orders-app-by-customer-repartition"]);
    /// assert_eq!(topology.subtopologies().len(), 2);
    /// let mut driver = TopologyTestDriver::new(topology)?;
    /// for (order, customer) in [("o1", "ann"), ("o2", "bob"), ("o3", "ann")] {
    ///     driver.pipe_input("orders", &order.to_string(), &customer.to_string(), 0)?;
    /// }
    /// assert_eq!(driver.store::<String, i64>("orders-per-customer")?.get("ann")?, Some(2));
    /// # Ok::<(), riverbed::Error>(())
    /// ```
    pub fn repartition_with(&self, repartitioned: Repartitioned) -> KStream<'b, K, V> {
        let b = self.builder;
        if repartitioned.partitions == Some(0) {
            b.fail(Error::invalid(
                "a repartition topic needs at least one partition",
            ));
        }
        let name = repartitioned
            .name
            .unwrap_or_else(|| b.name("KSTREAM-REPARTITION"));
        let out = self.through_repartition(&name);
        if let Some(n) = repartitioned.partitions.filter(|n| *n > 0) {
            let topic = repartition_topic(b.topology.borrow().application_id(), &name);
            b.add(|t| {
                t.repartition_partitions.insert(topic, n);
                Ok(())
            });
        }
        out
    }

    /// The stream itself if its key was not changed, else repartitioned through
    /// `<app-id>-<generated name>-repartition`; for a join.
    pub(crate) fn keyed_for_join(&self, what: &str) -> KStream<'b, K, V> {
        if self.key_changed {
            let name = self.builder.name(what);
            self.through_repartition(&name)
        } else {
            self.clone()
        }
    }

    /// Adds the sink to, and the source from, `<app-id>-<name>-repartition`.
    pub(in crate::streams) fn through_repartition(&self, name: &str) -> KStream<'b, K, V> {
        let b = self.builder;
        let topic = repartition_topic(b.topology.borrow().application_id(), name);
        let keyed = self.then::<K, V>("KSTREAM-FILTER-NULL-KEY", false, |ctx, r| {
            if r.key.encode_nullable()?.is_some() {
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

/// The repartition topic of the repartition `name`.
fn repartition_topic(app_id: &str, name: &str) -> String {
    format!("{app_id}-{name}-repartition")
}
