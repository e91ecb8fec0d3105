//! Sub-topologies, tasks, and the partition counts of repartition topics (Kafka's node groups,
//! `TaskId` and repartition-topic sizing).
//!
//! A topology is split into sub-topologies: the connected components of its node graph, where
//! two nodes are connected by an edge (parent and child) or by sharing a state store. A
//! repartition is a sink writing a topic and a separate source reading it, with no edge between
//! them, so it is where a topology splits. Each sub-topology runs as one task per partition of
//! its source topics, which must be co-partitioned (the same partition count); task `s_p`
//! (sub-topology `s`, partition `p`) reads partition `p` of each of them and owns partition `p`
//! of the changelogs of the sub-topology's stores.
//!
//! **Partition counts.** An input topic has the count it was created with. A repartition topic
//! has the count given with
//! [`Repartitioned::with_number_of_partitions`](crate::streams::Repartitioned::with_number_of_partitions),
//! else the count of the other source topics of the sub-topology that reads it (so that a
//! repartition feeding a join is co-partitioned with the other side, as Kafka's
//! `CopartitionedTopicsEnforcer` does), else the largest count of the source topics of the
//! sub-topologies that write it (Kafka's rule), worked out upstream first.

use std::collections::{BTreeMap, HashMap};

use crate::error::{Error, ErrorKind, Result};
use crate::store::Store;
use crate::streams::topology::{NodeKind, Topology};
use crate::topic::TopicConfig;

/// A task: sub-topology `subtopology`'s instance for partition `partition` of its source topics.
/// Shown as Kafka shows it: `1_3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TaskId {
    pub subtopology: u32,
    pub partition: u32,
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

/// One sub-topology of a [`Topology`], as [`Topology::subtopologies`] describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubtopologyDescription {
    /// Its number: sub-topologies are numbered in the order their first node was added.
    pub id: u32,
    /// Its nodes, in the order they were added.
    pub nodes: Vec<String>,
    /// The topics its sources read (input and repartition topics).
    pub source_topics: Vec<String>,
    /// The topics its sinks write (output and repartition topics), without duplicates.
    pub sink_topics: Vec<String>,
    /// Its state stores (each belongs to exactly one sub-topology).
    pub stores: Vec<String>,
}

/// The sub-topologies of a topology, and the stores that belong to none (possible only with
/// several sub-topologies: with one, an unconnected store belongs to it).
pub(crate) struct Split {
    pub subs: Vec<SubtopologyDescription>,
    /// Node index -> sub-topology.
    pub node_sub: Vec<u32>,
    pub unconnected_stores: Vec<String>,
}

impl Split {
    /// Topic -> the sub-topology reading it, for routing records to tasks.
    pub fn topic_map(&self) -> HashMap<String, u32> {
        self.subs
            .iter()
            .flat_map(|s| s.source_topics.iter().map(move |t| (t.clone(), s.id)))
            .collect()
    }

    /// The sub-topology a store belongs to.
    pub fn sub_of_store(&self, store: &str) -> Option<u32> {
        self.subs
            .iter()
            .find(|s| s.stores.iter().any(|t| t == store))
            .map(|s| s.id)
    }
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

fn unite(parent: &mut [usize], a: usize, b: usize) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    // The smaller index is the root, so a component's root is its first node.
    if ra < rb {
        parent[rb] = ra;
    } else {
        parent[ra] = rb;
    }
}

/// Splits `t` into sub-topologies; see the module docs.
pub(crate) fn split(t: &Topology) -> Split {
    let n = t.nodes.len();
    let mut parent: Vec<usize> = (0..n).collect();
    for (i, node) in t.nodes.iter().enumerate() {
        for &c in &node.children {
            unite(&mut parent, i, c);
        }
    }
    for store in &t.stores {
        for w in store.users.windows(2) {
            unite(&mut parent, w[0], w[1]);
        }
    }
    let mut root_sub: HashMap<usize, u32> = HashMap::new();
    let mut subs: Vec<SubtopologyDescription> = Vec::new();
    let mut node_sub = Vec::with_capacity(n);
    for (i, node) in t.nodes.iter().enumerate() {
        let root = find(&mut parent, i);
        let id = *root_sub.entry(root).or_insert_with(|| {
            let id = u32::try_from(subs.len()).unwrap_or(u32::MAX);
            subs.push(SubtopologyDescription {
                id,
                nodes: Vec::new(),
                source_topics: Vec::new(),
                sink_topics: Vec::new(),
                stores: Vec::new(),
            });
            id
        });
        node_sub.push(id);
        let sub = &mut subs[id as usize];
        sub.nodes.push(node.name.to_string());
        match &node.kind {
            NodeKind::Source { topics, .. } => sub.source_topics.extend(topics.iter().cloned()),
            NodeKind::Sink { topic, .. } if !sub.sink_topics.contains(topic) => {
                sub.sink_topics.push(topic.clone());
            }
            _ => {}
        }
    }
    let mut unconnected_stores = Vec::new();
    for store in &t.stores {
        let owner = match store.users.first() {
            Some(&node) => Some(node_sub[node]),
            None if subs.len() == 1 => Some(0),
            None => None,
        };
        match owner {
            Some(s) => subs[s as usize].stores.push(store.name.clone()),
            None => unconnected_stores.push(store.name.clone()),
        }
    }
    Split {
        subs,
        node_sub,
        unconnected_stores,
    }
}

/// Checks that every store belongs to a sub-topology.
///
/// # Errors
/// [`InvalidArgument`](crate::ErrorKind::InvalidArgument) naming the first store connected to
/// no processor in a topology with several sub-topologies.
pub(crate) fn check_stores(split: &Split) -> Result<()> {
    match split.unconnected_stores.first() {
        None => Ok(()),
        Some(store) => Err(Error::invalid(format!(
            "state store {store:?} is not connected to any processor, and the topology has {} \
             sub-topologies, so it is not known which one it belongs to; connect it to the \
             processors that use it (Topology::connect_processor_and_state_stores or \
             Topology::add_state_store_for)",
            split.subs.len()
        ))),
    }
}

/// The partition counts a topology runs with: every source topic's and every sub-topology's.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub topics: BTreeMap<String, u32>,
    /// Sub-topology -> its partition count (that of all its source topics).
    pub subs: Vec<u32>,
}

/// Works out the partition counts of the repartition topics and checks co-partitioning; see the
/// module docs. `count_of` gives the partition count of an input (not repartition) topic.
///
/// # Errors
/// [`InvalidArgument`](crate::ErrorKind::InvalidArgument) naming the topics and their counts
/// when a join or a sub-topology reads topics that are not co-partitioned, or when a
/// repartition topic's explicit count does not match the topics read with it; the errors of
/// `count_of`.
pub(crate) fn plan(
    t: &Topology,
    split: &Split,
    mut count_of: impl FnMut(&str) -> Result<u32>,
) -> Result<Plan> {
    let internal = |topic: &str| t.repartition_topics.iter().any(|r| r == topic);
    let mut known: BTreeMap<String, u32> = BTreeMap::new();
    for sub in &split.subs {
        for topic in sub.source_topics.iter().filter(|x| !internal(x)) {
            known.insert(topic.clone(), count_of(topic)?);
        }
    }
    // A join's message names the join; check those first.
    for (what, topics) in &t.copartition_groups {
        let externals: Vec<&String> = topics.iter().filter(|x| !internal(x)).collect();
        if let Some(((a, m), (b, n))) = first_mismatch(&externals, &known) {
            return Err(Error::invalid(format!(
                "{what} reads topics that are not co-partitioned: {a:?} has {m} partitions, \
                 {b:?} has {n}; give them the same number of partitions, or repartition one \
                 side (KStream::repartition_with) to the other's count"
            )));
        }
    }
    let what_reads = |sub: &SubtopologyDescription, topic: &str| -> String {
        t.copartition_groups
            .iter()
            .find(|(_, ts)| ts.iter().any(|x| x == topic))
            .map_or(format!("sub-topology {}", sub.id), |(what, _)| {
                format!("{what} (sub-topology {})", sub.id)
            })
    };
    // The fixed count of each sub-topology: its input topics', else its explicit repartitions'.
    let mut fixed: Vec<Option<(String, u32)>> = Vec::new();
    for sub in &split.subs {
        let externals: Vec<&String> = sub.source_topics.iter().filter(|x| !internal(x)).collect();
        if let Some(((a, m), (b, n))) = first_mismatch(&externals, &known) {
            return Err(Error::invalid(format!(
                "sub-topology {} reads topics that are not co-partitioned: {a:?} has {m} \
                 partitions, {b:?} has {n}; the source topics of a sub-topology (connected \
                 by edges or shared state stores) must have the same number of partitions",
                sub.id
            )));
        }
        let mut fix = externals.first().map(|x| ((*x).clone(), known[*x]));
        for topic in sub.source_topics.iter().filter(|x| internal(x)) {
            let Some(&explicit) = t.repartition_partitions.get(topic) else {
                continue;
            };
            match &fix {
                Some((other, n)) if *n != explicit => {
                    return Err(Error::invalid(format!(
                        "repartition topic {topic:?} is set to {explicit} partitions, but {} \
                         also reads {other:?}, which has {n}, and needs them co-partitioned; \
                         give the repartition {n} partitions (or leave its count unset)",
                        what_reads(sub, topic)
                    )))
                }
                Some(_) => {}
                None => fix = Some((topic.clone(), explicit)),
            }
            known.insert(topic.clone(), explicit);
        }
        if let Some((_, n)) = &fix {
            for topic in sub.source_topics.iter().filter(|x| internal(x)) {
                known.entry(topic.clone()).or_insert(*n);
            }
        }
        fixed.push(fix);
    }
    // The rest take the largest count of the sub-topologies writing them, upstream first.
    loop {
        let mut progress = false;
        let mut pending = false;
        for sub in &split.subs {
            let unknown: Vec<&String> = sub
                .source_topics
                .iter()
                .filter(|x| !known.contains_key(*x))
                .collect();
            if unknown.is_empty() {
                continue;
            }
            pending = true;
            let mut count = None;
            for topic in &unknown {
                let writers = split
                    .subs
                    .iter()
                    .filter(|w| w.sink_topics.iter().any(|s| s == *topic));
                let mut best: Option<u32> = None;
                let mut ready = true;
                for w in writers {
                    let counts: Option<Vec<u32>> = w
                        .source_topics
                        .iter()
                        .map(|s| known.get(s).copied())
                        .collect();
                    match counts.and_then(|c| c.into_iter().max()) {
                        Some(n) => best = Some(best.map_or(n, |b| b.max(n))),
                        None => ready = false,
                    }
                }
                match (ready, best) {
                    (true, Some(n)) => count = Some(count.map_or(n, |c: u32| c.max(n))),
                    _ => {
                        count = None;
                        break;
                    }
                }
            }
            if let Some(n) = count {
                for topic in unknown {
                    known.insert(topic.clone(), n);
                }
                progress = true;
            }
        }
        if !pending {
            break;
        }
        if !progress {
            let stuck: Vec<&String> = split
                .subs
                .iter()
                .flat_map(|s| s.source_topics.iter())
                .filter(|x| !known.contains_key(*x))
                .collect();
            return Err(Error::invalid(format!(
                "cannot work out the partition count of repartition topics {stuck:?}: no \
                 sub-topology with known partition counts writes them; give them one with \
                 Repartitioned::with_number_of_partitions"
            )));
        }
    }
    let mut subs = Vec::new();
    for sub in &split.subs {
        let topics: Vec<&String> = sub.source_topics.iter().collect();
        if let Some(((a, m), (b, n))) = first_mismatch(&topics, &known) {
            return Err(Error::invalid(format!(
                "sub-topology {} reads topics that are not co-partitioned: {a:?} has {m} \
                 partitions, {b:?} has {n} (repartition topics without an explicit count take \
                 the count of the sub-topology writing them)",
                sub.id
            )));
        }
        subs.push(topics.first().map_or(1, |x| known[*x]));
    }
    Ok(Plan {
        topics: known,
        subs,
    })
}

/// A topic and its partition count.
type Counted<'a> = (&'a str, u32);

/// The first topic whose count differs from the first topic's: `((first, count), (other,
/// count))`.
fn first_mismatch<'a>(
    topics: &[&'a String],
    known: &BTreeMap<String, u32>,
) -> Option<(Counted<'a>, Counted<'a>)> {
    let (first, rest) = topics.split_first()?;
    let m = *known.get(*first)?;
    rest.iter().find_map(|x| match known.get(*x) {
        Some(&n) if n != m => Some(((first.as_str(), m), (x.as_str(), n))),
        _ => None,
    })
}

/// Works out the partition counts ([`plan`], with the input topics' counts from `store`), then
/// creates the repartition topics that do not exist with their counts.
///
/// # Errors
/// As [`plan`]; [`UnknownTopic`](ErrorKind::UnknownTopic) for a missing input topic;
/// [`InvalidArgument`](ErrorKind::InvalidArgument) for a repartition topic that exists with
/// another partition count; the errors of creating topics.
pub(crate) fn prepare_internal_topics(
    store: &Store,
    topology: &Topology,
    split: &Split,
) -> Result<Plan> {
    let plan = plan(topology, split, |t| {
        let n = store.describe_topic(t)?.partitions.len();
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    })?;
    for t in &topology.repartition_topics {
        let Some(&want) = plan.topics.get(t) else {
            continue;
        };
        match store.describe_topic(t) {
            Ok(d) if d.partitions.len() as u64 != u64::from(want) => {
                return Err(Error::invalid(format!(
                    "repartition topic {t:?} exists with {} partitions, but the topology needs \
                     {want} (its explicit count, or that of the topics it is co-partitioned \
                     with); a repartition topic's count cannot change under a running \
                     application",
                    d.partitions.len()
                )))
            }
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::UnknownTopic { .. }) => {
                match store.create_topic(t, TopicConfig::new(want)) {
                    Ok(()) => {}
                    Err(e) if matches!(e.kind(), ErrorKind::TopicExists { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::{Builder, Materialized, Repartitioned};

    /// The plan of `t` with the input topics' counts from `inputs`.
    fn plan_of(t: &Topology, inputs: &[(&str, u32)]) -> Result<Plan> {
        plan(t, &split(t), |topic| {
            inputs
                .iter()
                .find(|(name, _)| *name == topic)
                .map(|(_, n)| *n)
                .ok_or_else(|| Error::invalid(format!("no topic {topic}")))
        })
    }

    /// `a` and `b` counted per value, the two counts joined: the join reads two repartition
    /// topics and no input topic.
    fn joined_counts(a: Option<u32>, b: Option<u32>) -> Topology {
        let builder = Builder::new("j");
        let count = |topic: &str, n: Option<u32>| {
            let mut r = Repartitioned::named(format!("{topic}-by-value"));
            if let Some(n) = n {
                r = r.with_number_of_partitions(n);
            }
            builder
                .stream::<String, String>(topic)
                .select_key(|_, v| v.clone())
                .repartition_with(r)
                .group_by_key()
                .count(Materialized::named(format!("{topic}-counts")))
        };
        let left = count("a", a);
        let right = count("b", b);
        left.join(&right, |l, r| l + r);
        builder.build().unwrap()
    }

    #[test]
    fn repartitions_read_together_take_the_largest_upstream_count() {
        let t = joined_counts(None, None);
        let split = split(&t);
        assert_eq!(split.subs.len(), 3, "{}", t.describe());
        let p = plan_of(&t, &[("a", 2), ("b", 3)]).unwrap();
        assert_eq!(p.topics["j-a-by-value-repartition"], 3);
        assert_eq!(p.topics["j-b-by-value-repartition"], 3);
        let join = split.sub_of_store("a-counts").unwrap();
        assert_eq!(split.sub_of_store("b-counts"), Some(join));
        assert_eq!(p.subs[join as usize], 3);
        assert_eq!(p.subs[split.topic_map()["a"] as usize], 2);
    }

    #[test]
    fn an_explicit_count_sizes_the_repartitions_read_with_it() {
        let t = joined_counts(None, Some(5));
        let p = plan_of(&t, &[("a", 2), ("b", 3)]).unwrap();
        assert_eq!(p.topics["j-a-by-value-repartition"], 5);
        assert_eq!(p.topics["j-b-by-value-repartition"], 5);
    }

    #[test]
    fn explicit_counts_read_together_must_agree() {
        let t = joined_counts(Some(2), Some(4));
        let e = plan_of(&t, &[("a", 2), ("b", 2)]).unwrap_err().to_string();
        assert!(
            e.contains("\"j-b-by-value-repartition\" is set to 4"),
            "{e}"
        );
        assert!(
            e.contains("\"j-a-by-value-repartition\", which has 2"),
            "{e}"
        );
        assert!(e.contains("table-table join"), "{e}");
    }

    #[test]
    fn a_missing_input_topic_is_the_count_error() {
        let t = joined_counts(None, None);
        let e = plan_of(&t, &[("a", 2)]).unwrap_err().to_string();
        assert!(e.contains("no topic b"), "{e}");
    }

    #[test]
    fn task_ids_show_as_kafka_shows_them() {
        let id = TaskId {
            subtopology: 1,
            partition: 3,
        };
        assert_eq!(id.to_string(), "1_3");
        assert!(
            id < TaskId {
                subtopology: 2,
                partition: 0
            }
        );
    }
}
