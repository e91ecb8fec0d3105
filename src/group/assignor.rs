//! Partition assignors: given the members of a group (their subscriptions and what they owned
//! before) and the partition counts of the topics, decide who owns which partition.
//!
//! Pure functions with no I/O, so property tests cover them cheaply. Every assignor gives each
//! partition of a subscribed topic to exactly one member subscribed to that topic.

use std::collections::{BTreeMap, BTreeSet};

use crate::topic::TopicPartition;

/// How a group divides partitions among its members (Kafka's `partition.assignment.strategy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Assignor {
    /// Per topic, consecutive ranges of partitions to members in member-id order; the first
    /// `partitions % members` members get one more. Kafka's default (`RangeAssignor`).
    #[default]
    Range,
    /// All partitions of all topics, dealt to members in turn (`RoundRobinAssignor`).
    RoundRobin,
    /// Balanced like round-robin, but keeps as many partitions as possible with their previous
    /// owner across rebalances (`StickyAssignor`).
    Sticky,
}

/// One member as an assignor sees it.
#[derive(Clone, Debug, Default)]
pub struct MemberSpec {
    /// Topics the member subscribed to.
    pub subscription: BTreeSet<String>,
    /// Partitions the member owned in the previous generation.
    pub previous: Vec<TopicPartition>,
}

/// Assigns `partitions` (topic → partition count) to `members` (member id → spec).
pub fn assign(
    kind: Assignor,
    members: &BTreeMap<String, MemberSpec>,
    partitions: &BTreeMap<String, u32>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut out: BTreeMap<String, Vec<TopicPartition>> =
        members.keys().map(|m| (m.clone(), Vec::new())).collect();
    match kind {
        Assignor::Range => range(members, partitions, &mut out),
        Assignor::RoundRobin => round_robin(members, partitions, &mut out),
        Assignor::Sticky => sticky(members, partitions, &mut out),
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

fn subscribers<'a>(members: &'a BTreeMap<String, MemberSpec>, topic: &str) -> Vec<&'a String> {
    members
        .iter()
        .filter(|(_, s)| s.subscription.contains(topic))
        .map(|(m, _)| m)
        .collect()
}

fn range(
    members: &BTreeMap<String, MemberSpec>,
    partitions: &BTreeMap<String, u32>,
    out: &mut BTreeMap<String, Vec<TopicPartition>>,
) {
    for (topic, &n) in partitions {
        let subs = subscribers(members, topic);
        if subs.is_empty() {
            continue;
        }
        let m = subs.len() as u32;
        let (per, extra) = (n / m, n % m);
        let mut next = 0;
        for (i, member) in subs.iter().enumerate() {
            let count = per + u32::from((i as u32) < extra);
            let owned = out.entry((*member).clone()).or_default();
            owned.extend((next..next + count).map(|p| TopicPartition::new(topic.clone(), p)));
            next += count;
        }
    }
}

fn all_partitions(
    members: &BTreeMap<String, MemberSpec>,
    partitions: &BTreeMap<String, u32>,
) -> Vec<TopicPartition> {
    partitions
        .iter()
        .filter(|(t, _)| !subscribers(members, t).is_empty())
        .flat_map(|(t, &n)| (0..n).map(move |p| TopicPartition::new(t.clone(), p)))
        .collect()
}

fn round_robin(
    members: &BTreeMap<String, MemberSpec>,
    partitions: &BTreeMap<String, u32>,
    out: &mut BTreeMap<String, Vec<TopicPartition>>,
) {
    let ids: Vec<&String> = members.keys().collect();
    if ids.is_empty() {
        return;
    }
    let mut i = 0;
    for tp in all_partitions(members, partitions) {
        // Deal to the next member in the circle that subscribed to this topic.
        for _ in 0..ids.len() {
            let m = ids[i % ids.len()];
            i += 1;
            if members[m].subscription.contains(&tp.topic) {
                out.entry(m.clone()).or_default().push(tp);
                break;
            }
        }
    }
}

fn sticky(
    members: &BTreeMap<String, MemberSpec>,
    partitions: &BTreeMap<String, u32>,
    out: &mut BTreeMap<String, Vec<TopicPartition>>,
) {
    let all = all_partitions(members, partitions);
    if members.is_empty() || all.is_empty() {
        return;
    }
    let exists: BTreeSet<&TopicPartition> = all.iter().collect();
    // Each member may keep up to the balanced quota; the first `total % members` members (in
    // order of how much they owned) may keep one more.
    let total = all.len();
    let m = members.len();
    let (base, extra) = (total / m, total % m);
    let mut order: Vec<&String> = members.keys().collect();
    order.sort_by_key(|id| std::cmp::Reverse(members[*id].previous.len()));
    let quota: BTreeMap<&String, usize> = order
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, base + usize::from(i < extra)))
        .collect();
    let mut taken: BTreeSet<TopicPartition> = BTreeSet::new();
    for id in &order {
        let spec = &members[*id];
        let mine = out.entry((*id).clone()).or_default();
        for tp in &spec.previous {
            if mine.len() >= quota[id] {
                break;
            }
            if exists.contains(tp)
                && spec.subscription.contains(&tp.topic)
                && taken.insert(tp.clone())
            {
                mine.push(tp.clone());
            }
        }
    }
    // The rest go, one at a time, to the least-loaded member that subscribed to the topic.
    for tp in all {
        if taken.contains(&tp) {
            continue;
        }
        let best = members
            .iter()
            .filter(|(_, s)| s.subscription.contains(&tp.topic))
            .map(|(id, _)| id)
            .min_by_key(|id| (out.get(*id).map_or(0, Vec::len), (*id).clone()));
        if let Some(id) = best {
            out.entry(id.clone()).or_default().push(tp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn members(n: usize, topics: &[&str]) -> BTreeMap<String, MemberSpec> {
        (0..n)
            .map(|i| {
                (
                    format!("m{i}"),
                    MemberSpec {
                        subscription: topics.iter().map(|t| t.to_string()).collect(),
                        previous: Vec::new(),
                    },
                )
            })
            .collect()
    }

    proptest! {
        /// What streams tasks rely on: with every member subscribed to the same topics, the
        /// range assignor gives partition `p` of topics with the same partition count to the
        /// same member, whatever the counts of the other topics.
        #[test]
        fn range_keeps_equal_count_topics_together(
            n in 1usize..6,
            counts in proptest::collection::vec(1u32..7, 1..6),
        ) {
            let topics: Vec<String> = (0..counts.len()).map(|i| format!("t{i}")).collect();
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            let parts: BTreeMap<String, u32> =
                topics.iter().cloned().zip(counts.iter().copied()).collect();
            let a = assign(Assignor::Range, &members(n, &names), &parts);
            let owner: BTreeMap<&TopicPartition, &String> =
                a.iter().flat_map(|(m, tps)| tps.iter().map(move |tp| (tp, m))).collect();
            for (x, &cx) in topics.iter().zip(&counts) {
                for (y, &cy) in topics.iter().zip(&counts) {
                    if cx != cy {
                        continue;
                    }
                    for p in 0..cx {
                        let tx = TopicPartition::new(x.clone(), p);
                        let ty = TopicPartition::new(y.clone(), p);
                        prop_assert_eq!(owner[&tx], owner[&ty]);
                    }
                }
            }
        }
    }

    #[test]
    fn range_matches_kafka_example() {
        // Kafka's RangeAssignor doc: 2 consumers, 2 topics of 3 partitions:
        // C0: [t0p0, t0p1, t1p0, t1p1], C1: [t0p2, t1p2].
        let parts: BTreeMap<String, u32> = [("t0".to_string(), 3), ("t1".to_string(), 3)].into();
        let a = assign(Assignor::Range, &members(2, &["t0", "t1"]), &parts);
        let names = |m: &str| a[m].iter().map(|tp| tp.to_string()).collect::<Vec<_>>();
        assert_eq!(names("m0"), ["t0-0", "t0-1", "t1-0", "t1-1"]);
        assert_eq!(names("m1"), ["t0-2", "t1-2"]);
    }

    #[test]
    fn round_robin_matches_kafka_example() {
        let parts: BTreeMap<String, u32> = [("t0".to_string(), 3), ("t1".to_string(), 3)].into();
        let a = assign(Assignor::RoundRobin, &members(2, &["t0", "t1"]), &parts);
        let names = |m: &str| a[m].iter().map(|tp| tp.to_string()).collect::<Vec<_>>();
        assert_eq!(names("m0"), ["t0-0", "t0-2", "t1-1"]);
        assert_eq!(names("m1"), ["t0-1", "t1-0", "t1-2"]);
    }

    fn arb_case() -> impl Strategy<Value = (BTreeMap<String, MemberSpec>, BTreeMap<String, u32>)> {
        let topics = prop::collection::btree_map("[a-c]", 1u32..8, 1..4);
        (topics, 1usize..6)
            .prop_flat_map(|(topics, n)| {
                let names: Vec<String> = topics.keys().cloned().collect();
                let subs = prop::collection::vec(
                    prop::sample::subsequence(names.clone(), 1..=names.len()),
                    n,
                );
                (subs, Just(topics))
            })
            .prop_map(|(subs, topics)| {
                let members = subs
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| {
                        (
                            format!("m{i}"),
                            MemberSpec {
                                subscription: s.into_iter().collect(),
                                previous: Vec::new(),
                            },
                        )
                    })
                    .collect();
                (members, topics)
            })
    }

    proptest! {
        /// Every partition of a subscribed topic has exactly one owner, and it subscribed.
        #[test]
        fn every_partition_has_one_subscribed_owner((members, parts) in arb_case(), kind in prop::sample::select(vec![Assignor::Range, Assignor::RoundRobin, Assignor::Sticky])) {
            let a = assign(kind, &members, &parts);
            let mut seen = BTreeSet::new();
            for (m, tps) in &a {
                for tp in tps {
                    prop_assert!(members[m].subscription.contains(&tp.topic));
                    prop_assert!(seen.insert(tp.clone()), "{tp} assigned twice");
                }
            }
            let expected: usize = parts.iter().filter(|(t, _)| members.values().any(|s| s.subscription.contains(*t))).map(|(_, n)| *n as usize).sum();
            prop_assert_eq!(seen.len(), expected);
        }

        /// With identical subscriptions, round-robin and sticky are balanced, and sticky keeps
        /// every member's previous partitions up to its fair share when a member joins.
        #[test]
        fn sticky_is_balanced_and_sticky(n in 1usize..6, parts in 1u32..20) {
            let p: BTreeMap<String, u32> = [("t".to_string(), parts)].into();
            let mut ms = members(n, &["t"]);
            let first = assign(Assignor::Sticky, &ms, &p);
            for (m, tps) in &first { ms.get_mut(m).unwrap().previous = tps.clone(); }
            ms.insert("z-new".into(), MemberSpec { subscription: ["t".to_string()].into(), previous: vec![] });
            let second = assign(Assignor::Sticky, &ms, &p);
            let sizes: Vec<usize> = second.values().map(Vec::len).collect();
            prop_assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{sizes:?}");
            let fair = parts as usize / (n + 1);
            for (m, prev) in &first {
                let kept = prev.iter().filter(|tp| second[m].contains(tp)).count();
                prop_assert!(kept >= fair.min(prev.len()), "{m} kept {kept} of {prev:?}");
            }
            let rr = assign(Assignor::RoundRobin, &ms, &p);
            let sizes: Vec<usize> = rr.values().map(Vec::len).collect();
            prop_assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
        }
    }
}
