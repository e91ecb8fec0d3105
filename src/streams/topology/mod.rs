//! The topology: a graph of sources (input topics), processors and sinks (output topics), plus
//! the state stores its processors use.
//!
//! Nodes are added parents first, so the key and value types of every edge are checked when
//! the node is added: a processor whose input types differ from its parent's output types is
//! refused then, not found at run time. A topology holds suppliers, not processors: each task
//! (input partition) gets its own instances.
//!
//! A topology splits into sub-topologies (see
//! [`subtopology`](crate::streams::topology::subtopology)): the parts connected by edges or by
//! shared state stores, so a repartition (a sink to a topic and a source reading it) starts a new
//! one. Each sub-topology's source topics must be co-partitioned; task `s_p` runs sub-topology `s`
//! on partition `p` of them. A store belongs to the sub-topology of the processors connected to it
//! ([`connect_processor_and_state_stores`](Topology::connect_processor_and_state_stores));
//! in a topology of one sub-topology an unconnected store belongs to it. Global tables are
//! read whole by every instance, beside the tasks.

pub(crate) mod processor;
mod stores;
pub mod subtopology;

use std::any::TypeId;
use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::streams::serde::Serde;
use crate::streams::topology::processor::{Data, Msg, Node, Processor, ProcessorNode, SinkNode};
pub(crate) use stores::{GlobalStoreSpec, StoreKind, StoreSpec};
use subtopology::SubtopologyDescription;

/// Decodes a raw record into a message of the source's types.
pub(crate) type Decoder =
    Arc<dyn Fn(Option<&[u8]>, Option<&[u8]>, i64) -> Result<Msg> + Send + Sync>;

/// A per-source timestamp extractor: `(key, value, record timestamp) -> event time` (ms).
pub(crate) type Extractor<K, V> = Arc<dyn Fn(&K, &V, i64) -> i64 + Send + Sync>;
type Factory = Arc<dyn Fn() -> Box<dyn Node> + Send + Sync>;

fn decode<K: Serde + Data, V: Serde + Data>(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    ts: i64,
) -> Result<Msg> {
    Ok(Msg::new(
        K::decode_nullable(key)?,
        V::decode_nullable(value)?,
        ts,
    ))
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Types {
    ids: (TypeId, TypeId),
    names: (&'static str, &'static str),
}

impl Types {
    fn of<K: 'static, V: 'static>() -> Types {
        Types {
            ids: (TypeId::of::<K>(), TypeId::of::<V>()),
            names: (std::any::type_name::<K>(), std::any::type_name::<V>()),
        }
    }
}

pub(crate) enum NodeKind {
    Source {
        topics: Vec<String>,
        decode: Decoder,
    },
    Processor {
        factory: Factory,
    },
    Sink {
        topic: String,
        factory: Factory,
    },
}

pub(crate) struct NodeSpec {
    pub name: Arc<str>,
    pub kind: NodeKind,
    pub children: Vec<usize>,
    /// The types this node forwards (`None` for a sink).
    out: Option<Types>,
}

/// A processing graph; see the module docs. Build one with the Processor API methods below or
/// with the DSL ([`Builder`](crate::streams::Builder)).
///
/// ```
/// use riverbed::streams::{Processor, ProcessorContext, StreamRecord, Topology};
///
/// struct Upper;
/// impl Processor<String, String> for Upper {
///     fn process(
///         &mut self,
///         ctx: &mut ProcessorContext<'_, String, String>,
///         r: StreamRecord<String, String>,
///     ) -> riverbed::Result<()> {
///         ctx.forward(StreamRecord::new(r.key, r.value.to_uppercase(), r.timestamp));
///         Ok(())
///     }
/// }
///
/// let mut t = Topology::new("shout");
/// t.add_source::<String, String>("in", &["words"])?
///     .add_processor("upper", || Upper, &["in"])?
///     .add_sink::<String, String>("out", "loud-words", &["upper"])?;
/// assert_eq!(t.source_topics(), ["words"]);
/// # Ok::<(), riverbed::Error>(())
/// ```
pub struct Topology {
    app_id: String,
    pub(crate) nodes: Vec<NodeSpec>,
    by_name: HashMap<Arc<str>, usize>,
    /// The state stores, in the order they were added, each with its kind and users.
    pub(crate) stores: Vec<StoreSpec>,
    /// The repartition topics (`<app-id>-<name>-repartition`) its sinks write and sources read.
    pub(crate) repartition_topics: Vec<String>,
    /// The repartition topics given an explicit partition count.
    pub(crate) repartition_partitions: BTreeMap<String, u32>,
    /// Topics that must be co-partitioned, with the operation that needs it (a join).
    pub(crate) copartition_groups: Vec<(String, Vec<String>)>,
    /// The global tables' stores.
    pub(crate) globals: Vec<GlobalStoreSpec>,
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Topology {
    /// An empty topology for the application `app_id`, which names its consumer group, its
    /// transactional ids and its changelog topics.
    pub fn new(app_id: impl Into<String>) -> Topology {
        Topology {
            app_id: app_id.into(),
            nodes: Vec::new(),
            by_name: HashMap::new(),
            stores: Vec::new(),
            repartition_topics: Vec::new(),
            repartition_partitions: BTreeMap::new(),
            copartition_groups: Vec::new(),
            globals: Vec::new(),
        }
    }

    /// The application id.
    pub fn application_id(&self) -> &str {
        &self.app_id
    }

    /// Adds a source node reading `topics`, decoding keys as `K` and values as `V`.
    ///
    /// # Errors
    /// [`InvalidArgument`](crate::ErrorKind::InvalidArgument) for a duplicate node name, no
    /// topics, or a topic another source reads already.
    pub fn add_source<K: Serde + Data, V: Serde + Data>(
        &mut self,
        name: &str,
        topics: &[&str],
    ) -> Result<&mut Topology> {
        self.add_source_decoding::<K, V>(name, topics, Arc::new(decode::<K, V>))
    }

    /// Adds a source node like [`add_source`](Self::add_source) whose records get their
    /// timestamp from `extractor(key, value, record_timestamp)` (milliseconds): the event time
    /// that stream time, punctuation by stream time and windows go by, and the timestamp
    /// processors see and sinks write.
    ///
    /// # Errors
    /// As [`add_source`](Self::add_source).
    pub fn add_source_with_timestamp_extractor<K: Serde + Data, V: Serde + Data>(
        &mut self,
        name: &str,
        topics: &[&str],
        extractor: impl Fn(&K, &V, i64) -> i64 + Send + Sync + 'static,
    ) -> Result<&mut Topology> {
        let extractor: Extractor<K, V> = Arc::new(extractor);
        self.add_source_decoding::<K, V>(
            name,
            topics,
            Arc::new(move |key, value, ts| {
                let (k, v) = (K::decode_nullable(key)?, V::decode_nullable(value)?);
                let ts = extractor(&k, &v, ts);
                Ok(Msg::new(k, v, ts))
            }),
        )
    }

    fn add_source_decoding<K: Serde + Data, V: Serde + Data>(
        &mut self,
        name: &str,
        topics: &[&str],
        decode: Decoder,
    ) -> Result<&mut Topology> {
        if topics.is_empty() {
            return Err(Error::invalid(format!("source {name:?} has no topics")));
        }
        for t in topics {
            crate::validate_topic_name(t)?;
            if self.source_topics().iter().any(|s| s == t)
                || self.globals.iter().any(|g| g.topic == *t)
            {
                return Err(Error::invalid(format!(
                    "topic {t:?} is read by two sources (or a source and a global table)"
                )));
            }
        }
        self.push(
            name,
            NodeKind::Source {
                topics: topics.iter().map(|t| t.to_string()).collect(),
                decode,
            },
            Some(Types::of::<K, V>()),
            &[],
            None,
        )
    }

    /// Adds a processor made by `supplier` (called once per task), fed by `parents`.
    ///
    /// # Errors
    /// [`InvalidArgument`](crate::ErrorKind::InvalidArgument) for a duplicate name, no or
    /// unknown parents, or a parent that forwards other types than `(KIn, VIn)`.
    pub fn add_processor<P, KIn, VIn, KOut, VOut>(
        &mut self,
        name: &str,
        supplier: impl Fn() -> P + Send + Sync + 'static,
        parents: &[&str],
    ) -> Result<&mut Topology>
    where
        P: Processor<KIn, VIn, KOut, VOut>,
        KIn: Data,
        VIn: Data,
        KOut: Data,
        VOut: Data,
    {
        let factory: Factory = Arc::new(move || {
            Box::new(ProcessorNode {
                processor: supplier(),
                _types: PhantomData::<fn(KIn, VIn, KOut, VOut)>,
            })
        });
        self.push(
            name,
            NodeKind::Processor { factory },
            Some(Types::of::<KOut, VOut>()),
            parents,
            Some(Types::of::<KIn, VIn>()),
        )
    }

    /// Adds a sink writing what `parents` forward to `topic`, encoding keys as `K` and values as
    /// `V`. Records are partitioned by their key bytes (Kafka's murmur2 partitioner; a null key
    /// goes to a sticky partition).
    ///
    /// # Errors
    /// As [`add_processor`](Self::add_processor); an invalid topic name.
    pub fn add_sink<K: Serde + Data, V: Serde + Data>(
        &mut self,
        name: &str,
        topic: &str,
        parents: &[&str],
    ) -> Result<&mut Topology> {
        crate::validate_topic_name(topic)?;
        // One name for every task's sink and every record they write.
        let topic_shared: Arc<str> = Arc::from(topic);
        let factory: Factory = Arc::new(move || {
            Box::new(SinkNode::<K, V> {
                topic: Arc::clone(&topic_shared),
                _types: PhantomData,
            })
        });
        self.push(
            name,
            NodeKind::Sink {
                topic: topic.to_string(),
                factory,
            },
            None,
            parents,
            Some(Types::of::<K, V>()),
        )
    }

    /// Adds a sink made by `factory` whose topic is chosen per record (so not listed by
    /// [`sink_topics`](Self::sink_topics)); fed by `parents`, which forward `(K, V)`.
    pub(crate) fn add_dynamic_sink<K: Data, V: Data>(
        &mut self,
        name: &str,
        factory: Arc<dyn Fn() -> Box<dyn Node> + Send + Sync>,
        parents: &[&str],
    ) -> Result<&mut Topology> {
        self.push(
            name,
            NodeKind::Processor { factory },
            None,
            parents,
            Some(Types::of::<K, V>()),
        )
    }

    /// Adds an in-memory key-value store named `name`, which processors use through
    /// [`ProcessorContext::store`](crate::streams::ProcessorContext::store). It is backed by the
    /// compacted changelog topic `<app-id>-<name>-changelog`, which the application creates.
    ///
    /// In a topology of one sub-topology every processor can use it as it is. In a topology
    /// of several, connect it to the processors that use it (with
    /// [`connect_processor_and_state_stores`](Self::connect_processor_and_state_stores), or add
    /// it with [`add_state_store_for`](Self::add_state_store_for)): that says which
    /// sub-topology it belongs to, and its processors are then in that one.
    ///
    /// # Errors
    /// [`InvalidArgument`](crate::ErrorKind::InvalidArgument) for a duplicate store name or a
    /// name that makes an invalid topic name.
    pub fn add_state_store(&mut self, name: &str) -> Result<&mut Topology> {
        self.add_store(name, StoreKind::KeyValue, false)
    }

    /// Adds the store `name` like [`add_state_store`](Self::add_state_store), of kind `kind`,
    /// its rows keeping their timestamp if `timestamped` (the DSL's stores).
    pub(crate) fn add_store(
        &mut self,
        name: &str,
        kind: StoreKind,
        timestamped: bool,
    ) -> Result<&mut Topology> {
        if self.store(name).is_some() || self.globals.iter().any(|g| g.store == name) {
            return Err(Error::invalid(format!(
                "state store {name:?} exists already"
            )));
        }
        let spec = StoreSpec {
            name: name.to_string(),
            kind,
            timestamped,
            users: Vec::new(),
        };
        crate::validate_topic_name(&spec.changelog(&self.app_id))?;
        self.stores.push(spec);
        Ok(self)
    }

    /// The state store `name` (not a global table's).
    pub(crate) fn store(&self, name: &str) -> Option<&StoreSpec> {
        self.stores.iter().find(|s| s.name == name)
    }

    /// Adds the store `name` like [`add_state_store`](Self::add_state_store) and connects it
    /// to `processors` (Kafka's `addStateStore(store, processorNames...)`).
    ///
    /// # Errors
    /// As [`add_state_store`](Self::add_state_store) and
    /// [`connect_processor_and_state_stores`](Self::connect_processor_and_state_stores); on
    /// error the store is not added.
    pub fn add_state_store_for(
        &mut self,
        name: &str,
        processors: &[&str],
    ) -> Result<&mut Topology> {
        for p in processors {
            self.processor_id(p)?;
        }
        self.add_state_store(name)?;
        for p in processors {
            self.connect_processor_and_state_stores(p, &[name])?;
        }
        Ok(self)
    }

    /// Connects the processor `processor` to `stores`: the processor uses them, so it is in
    /// the same sub-topology as every other processor connected to them (Kafka's
    /// `connectProcessorAndStateStores`). Connecting twice is harmless.
    ///
    /// ```
    /// use riverbed::streams::{Processor, ProcessorContext, StreamRecord, Topology};
    ///
    /// struct Count;
    /// impl Processor<String, String> for Count {
    ///     fn process(
    ///         &mut self,
    ///         ctx: &mut ProcessorContext<'_, String, String>,
    ///         r: StreamRecord<String, String>,
    ///     ) -> riverbed::Result<()> {
    ///         let mut s = ctx.store::<String, i64>("counts")?;
    ///         let n = s.get(&r.key)?.unwrap_or(0) + 1;
    ///         s.put(&r.key, &n)?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let mut t = Topology::new("counter");
    /// t.add_source::<String, String>("in", &["words"])?
    ///     .add_processor("count", || Count, &["in"])?
    ///     .add_state_store("counts")?
    ///     .connect_processor_and_state_stores("count", &["counts"])?;
    /// assert_eq!(t.subtopologies()[0].stores, ["counts"]);
    /// # Ok::<(), riverbed::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`InvalidArgument`](crate::ErrorKind::InvalidArgument) if `processor` is not a processor
    /// of the topology or a store is not one of its state stores (a global table's store needs
    /// no connection: every task reads it).
    pub fn connect_processor_and_state_stores(
        &mut self,
        processor: &str,
        stores: &[&str],
    ) -> Result<&mut Topology> {
        let id = self.processor_id(processor)?;
        for store in stores {
            if self.store(store).is_none() {
                let why = if self.globals.iter().any(|g| g.store == *store) {
                    " (it is a global table's store, which every task reads without a connection)"
                } else {
                    " (add it with add_state_store first)"
                };
                return Err(Error::invalid(format!(
                    "cannot connect processor {processor:?} to state store {store:?}: the \
                     topology has no such state store{why}"
                )));
            }
        }
        for store in stores {
            if let Some(spec) = self.stores.iter_mut().find(|s| s.name == *store) {
                if !spec.users.contains(&id) {
                    spec.users.push(id);
                }
            }
        }
        Ok(self)
    }

    /// The index of the processor node `name`.
    fn processor_id(&self, name: &str) -> Result<usize> {
        match self.by_name.get(name) {
            Some(&i) if matches!(self.nodes[i].kind, NodeKind::Processor { .. }) => Ok(i),
            Some(_) => Err(Error::invalid(format!(
                "node {name:?} is a source or a sink; only processors use state stores"
            ))),
            None => Err(Error::invalid(format!(
                "unknown processor {name:?} (add it before connecting stores to it)"
            ))),
        }
    }

    fn push(
        &mut self,
        name: &str,
        kind: NodeKind,
        out: Option<Types>,
        parents: &[&str],
        input: Option<Types>,
    ) -> Result<&mut Topology> {
        if self.by_name.contains_key(name) {
            return Err(Error::invalid(format!("node {name:?} exists already")));
        }
        if input.is_some() && parents.is_empty() {
            return Err(Error::invalid(format!("node {name:?} has no parents")));
        }
        let mut parent_ids = Vec::new();
        for p in parents {
            let Some(&i) = self.by_name.get(*p) else {
                return Err(Error::invalid(format!(
                    "node {name:?}: unknown parent {p:?} (add parents first)"
                )));
            };
            match (self.nodes[i].out, input) {
                (None, _) => {
                    return Err(Error::invalid(format!(
                        "node {name:?}: parent {p:?} is a sink"
                    )))
                }
                (Some(o), Some(want)) if o != want => {
                    return Err(Error::invalid(format!(
                        "node {name:?} takes ({}, {}) but parent {p:?} forwards ({}, {})",
                        want.names.0, want.names.1, o.names.0, o.names.1
                    )))
                }
                _ => {}
            }
            parent_ids.push(i);
        }
        let id = self.nodes.len();
        let name: Arc<str> = Arc::from(name);
        for i in parent_ids {
            self.nodes[i].children.push(id);
        }
        self.nodes.push(NodeSpec {
            name: Arc::clone(&name),
            kind,
            children: Vec::new(),
            out,
        });
        self.by_name.insert(name, id);
        Ok(self)
    }

    /// The topics the sources read, in the order they were added.
    pub fn source_topics(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter_map(|n| match &n.kind {
                NodeKind::Source { topics, .. } => Some(topics.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// The topics the sinks write, without duplicates.
    pub fn sink_topics(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for n in &self.nodes {
            if let NodeKind::Sink { topic, .. } = &n.kind {
                if !out.contains(topic) {
                    out.push(topic.clone());
                }
            }
        }
        out
    }

    /// The names of the state stores (not those of global tables).
    pub fn store_names(&self) -> Vec<String> {
        self.stores.iter().map(|s| s.name.clone()).collect()
    }

    /// The repartition topics, `<app-id>-<name>-repartition`, which the application creates
    /// when it starts (with the count given by
    /// [`Repartitioned::with_number_of_partitions`](crate::streams::Repartitioned::with_number_of_partitions),
    /// else as the [`subtopology`](crate::streams::topology::subtopology) module docs say).
    pub fn repartition_topics(&self) -> &[String] {
        &self.repartition_topics
    }

    /// The sub-topologies, numbered in the order their first node was added. A store connected
    /// to no processor in a topology of several sub-topologies is in none of them (and
    /// [`Builder::build`](crate::streams::Builder::build) or
    /// [`App::start`](crate::streams::App::start) refuse the topology).
    pub fn subtopologies(&self) -> Vec<SubtopologyDescription> {
        subtopology::split(self).subs
    }

    /// The topics read whole as global tables.
    pub fn global_topics(&self) -> Vec<String> {
        self.globals.iter().map(|g| g.topic.clone()).collect()
    }

    /// A text description: each sub-topology with its nodes (kind and children) and stores,
    /// then the repartition topics and global stores.
    pub fn describe(&self) -> String {
        let split = subtopology::split(self);
        let mut s = format!("Topology {:?}\n", self.app_id);
        for sub in &split.subs {
            s.push_str(&format!("  Sub-topology {}\n", sub.id));
            for (i, n) in self
                .nodes
                .iter()
                .enumerate()
                .filter(|(i, _)| split.node_sub[*i] == sub.id)
            {
                let kind = match &n.kind {
                    NodeKind::Source { topics, .. } => format!("source {topics:?}"),
                    NodeKind::Processor { .. } => "processor".to_string(),
                    NodeKind::Sink { topic, .. } => format!("sink {topic:?}"),
                };
                let children: Vec<&str> =
                    n.children.iter().map(|&c| &*self.nodes[c].name).collect();
                let stores: Vec<&str> = self
                    .stores
                    .iter()
                    .filter(|st| st.users.contains(&i))
                    .map(|st| st.name.as_str())
                    .collect();
                let stores = if stores.is_empty() {
                    String::new()
                } else {
                    format!(" stores {stores:?}")
                };
                s.push_str(&format!(
                    "    {} ({kind}){stores} -> {children:?}\n",
                    n.name
                ));
            }
            for st in &sub.stores {
                s.push_str(&format!(
                    "    store {st:?} (changelog {:?})\n",
                    crate::streams::state::store::changelog_topic(&self.app_id, st)
                ));
            }
        }
        for st in &split.unconnected_stores {
            s.push_str(&format!(
                "  store {st:?} connected to no processor (invalid with several sub-topologies)\n"
            ));
        }
        for t in &self.repartition_topics {
            match self.repartition_partitions.get(t) {
                Some(n) => s.push_str(&format!("  repartition topic {t:?} ({n} partitions)\n")),
                None => s.push_str(&format!("  repartition topic {t:?}\n")),
            }
        }
        for g in &self.globals {
            s.push_str(&format!(
                "  global store {:?} (topic {:?})\n",
                g.store, g.topic
            ));
        }
        s
    }

    /// Checks that the topology can run: at least one source, and every store in a
    /// sub-topology.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.source_topics().is_empty() {
            return Err(Error::invalid("the topology has no source"));
        }
        subtopology::check_stores(&subtopology::split(self))
    }
}
