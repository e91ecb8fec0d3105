//! The assignors, through real consumer groups: range (the default) gives each member a
//! consecutive range of every topic, round-robin deals all partitions in turn, sticky balances
//! and keeps partitions with their previous owners across rebalances. The group uses the
//! assignor of its first member. Members are ordered by join order (member id), as Kafka orders
//! them by member id.

use std::time::{Duration, Instant};

use riverbed::{
    Assignor, Consumer, ConsumerConfig, OffsetReset, Store, TopicConfig, TopicPartition,
};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t0", TopicConfig::new(3)).unwrap();
    store.create_topic("t1", TopicConfig::new(3)).unwrap();
    store.create_topic("six", TopicConfig::new(6)).unwrap();
    store.create_topic("seven", TopicConfig::new(7)).unwrap();
    (dir, store)
}

fn join(store: &Store, group: &str, assignor: Assignor, topics: &[&str]) -> Consumer {
    let mut c = store
        .consumer(
            ConsumerConfig::new(group)
                .auto_offset_reset(OffsetReset::Earliest)
                .assignor(assignor),
        )
        .unwrap();
    c.subscribe(topics).unwrap();
    c
}

/// Polls every consumer in turn until the group is stable and each has its assignment.
fn settle(store: &Store, group: &str, cs: &mut [&mut Consumer]) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        for c in cs.iter_mut() {
            c.poll(Duration::from_millis(5)).unwrap();
        }
        let d = store.describe_group(group);
        if !d.rebalancing && cs.iter().all(|c| c.generation() == d.generation) {
            // The consumers' view agrees with the group's.
            for c in cs.iter() {
                let id = c.member_id().unwrap();
                let (_, owned) = d.members.iter().find(|(m, _)| m == id).unwrap();
                assert_eq!(owned.as_slice(), c.assignment(), "{id}");
            }
            return;
        }
        assert!(Instant::now() < deadline, "group never settled: {d:?}");
    }
}

fn names(c: &Consumer) -> Vec<String> {
    c.assignment()
        .iter()
        .map(TopicPartition::to_string)
        .collect()
}

#[test]
fn range_is_the_default() {
    assert_eq!(ConsumerConfig::new("g").get_assignor(), Assignor::Range);
}

#[test]
fn range_assigns_consecutive_ranges_per_topic() {
    let (_dir, store) = store();
    // Kafka's RangeAssignor example: two consumers, two topics of three partitions.
    let mut c0 = join(&store, "r", Assignor::Range, &["t0", "t1"]);
    let mut c1 = join(&store, "r", Assignor::Range, &["t0", "t1"]);
    settle(&store, "r", &mut [&mut c0, &mut c1]);
    assert_eq!(names(&c0), ["t0-0", "t0-1", "t1-0", "t1-1"]);
    assert_eq!(names(&c1), ["t0-2", "t1-2"]);

    // Seven partitions over three members: the first gets the extra one.
    let mut m: Vec<Consumer> = (0..3)
        .map(|_| join(&store, "r7", Assignor::Range, &["seven"]))
        .collect();
    let [a, b, c] = &mut m[..] else {
        unreachable!()
    };
    settle(&store, "r7", &mut [a, b, c]);
    assert_eq!(names(&m[0]), ["seven-0", "seven-1", "seven-2"]);
    assert_eq!(names(&m[1]), ["seven-3", "seven-4"]);
    assert_eq!(names(&m[2]), ["seven-5", "seven-6"]);
}

#[test]
fn round_robin_deals_partitions_in_turn() {
    let (_dir, store) = store();
    // Kafka's RoundRobinAssignor example.
    let mut c0 = join(&store, "rr", Assignor::RoundRobin, &["t0", "t1"]);
    let mut c1 = join(&store, "rr", Assignor::RoundRobin, &["t0", "t1"]);
    settle(&store, "rr", &mut [&mut c0, &mut c1]);
    assert_eq!(names(&c0), ["t0-0", "t0-2", "t1-1"]);
    assert_eq!(names(&c1), ["t0-1", "t1-0", "t1-2"]);
}

#[test]
fn subscriptions_limit_what_a_member_gets() {
    let (_dir, store) = store();
    for assignor in [Assignor::Range, Assignor::RoundRobin, Assignor::Sticky] {
        let group = format!("{assignor:?}");
        let mut a = join(&store, &group, assignor, &["t0"]);
        let mut b = join(&store, &group, assignor, &["t0", "t1"]);
        settle(&store, &group, &mut [&mut a, &mut b]);
        assert!(
            a.assignment().iter().all(|tp| tp.topic == "t0"),
            "{assignor:?}: {:?}",
            a.assignment()
        );
        let mut all: Vec<String> = names(&a).into_iter().chain(names(&b)).collect();
        all.sort();
        assert_eq!(
            all,
            ["t0-0", "t0-1", "t0-2", "t1-0", "t1-1", "t1-2"],
            "{assignor:?}"
        );
        // t1 is b's alone.
        assert!(names(&b).iter().filter(|n| n.starts_with("t1")).count() == 3);
    }
}

#[test]
fn sticky_keeps_partitions_with_their_owners() {
    let (_dir, store) = store();
    let mut a = join(&store, "s", Assignor::Sticky, &["six"]);
    let mut b = join(&store, "s", Assignor::Sticky, &["six"]);
    settle(&store, "s", &mut [&mut a, &mut b]);
    assert_eq!((a.assignment().len(), b.assignment().len()), (3, 3));
    let (a1, b1) = (a.assignment().to_vec(), b.assignment().to_vec());

    // A third member joins: it gets two partitions, each old member keeps two of its three.
    let mut c = join(&store, "s", Assignor::Sticky, &["six"]);
    settle(&store, "s", &mut [&mut a, &mut b, &mut c]);
    for (name, before, now) in [("a", &a1, a.assignment()), ("b", &b1, b.assignment())] {
        assert_eq!(now.len(), 2, "{name}: {now:?}");
        assert!(
            now.iter().all(|tp| before.contains(tp)),
            "{name} got a partition it did not own before: {before:?} -> {now:?}"
        );
    }
    assert_eq!(c.assignment().len(), 2);
    let (a2, c2) = (a.assignment().to_vec(), c.assignment().to_vec());

    // The middle member leaves: the others keep everything and split its two.
    b.close().unwrap();
    settle(&store, "s", &mut [&mut a, &mut c]);
    for (name, before, now) in [("a", &a2, a.assignment()), ("c", &c2, c.assignment())] {
        assert_eq!(now.len(), 3, "{name}: {now:?}");
        assert!(
            before.iter().all(|tp| now.contains(tp)),
            "{name} lost a partition: {before:?} -> {now:?}"
        );
    }
}

#[test]
fn the_first_members_assignor_wins() {
    let (_dir, store) = store();
    let mut c0 = join(&store, "mixed", Assignor::RoundRobin, &["t0", "t1"]);
    let mut c1 = join(&store, "mixed", Assignor::Range, &["t0", "t1"]);
    settle(&store, "mixed", &mut [&mut c0, &mut c1]);
    assert_eq!(names(&c0), ["t0-0", "t0-2", "t1-1"], "round-robin layout");
    assert_eq!(names(&c1), ["t0-1", "t1-0", "t1-2"]);
}
