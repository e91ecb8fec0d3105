//! Any number of groups read one topic independently: each group divides all partitions among
//! its own members, reads every record, and has its own committed offsets; a consumer without a
//! group reads on its own.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use riverbed::{
    Consumer, ConsumerConfig, OffsetAndMetadata, OffsetReset, ProducerRecord, Store, TopicConfig,
    TopicPartition,
};

fn config(group: &str) -> ConsumerConfig {
    ConsumerConfig::new(group)
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false)
}

/// Polls all consumers in turn until together they read `n` records (or 5 s); returns, per
/// consumer, partition -> offsets.
fn read_n(cs: &mut [&mut Consumer], n: usize) -> Vec<BTreeMap<u32, Vec<u64>>> {
    let mut out = vec![BTreeMap::<u32, Vec<u64>>::new(); cs.len()];
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut total = 0;
    while total < n {
        assert!(Instant::now() < deadline, "read {total} of {n}: {out:?}");
        for (i, c) in cs.iter_mut().enumerate() {
            for r in c.poll(Duration::from_millis(10)).unwrap().iter() {
                out[i].entry(r.partition()).or_default().push(r.offset());
                total += 1;
            }
        }
    }
    out
}

#[test]
fn groups_do_not_share_partitions_or_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(4)).unwrap();
    let p = store.producer();
    for i in 0..40u32 {
        p.send(
            ProducerRecord::new("t")
                .partition(i % 4)
                .value(format!("{i}")),
        )
        .unwrap();
    }

    // Group "two" has two members; group "one" has one; both read the whole topic.
    let mut a1 = store.consumer(config("two")).unwrap();
    let mut a2 = store.consumer(config("two")).unwrap();
    let mut b = store.consumer(config("one")).unwrap();
    a1.subscribe(&["t"]).unwrap();
    a2.subscribe(&["t"]).unwrap();
    b.subscribe(&["t"]).unwrap();
    let got = read_n(&mut [&mut a1, &mut a2, &mut b], 80);

    let all: Vec<u64> = (0..10).collect();
    // "one" alone owns and reads every partition.
    assert_eq!(b.assignment().len(), 4);
    for p in 0..4 {
        assert_eq!(got[2][&p], all, "group one, partition {p}");
    }
    // "two" split the partitions: each read by exactly one of its members, once.
    assert_eq!(a1.assignment().len(), 2);
    assert_eq!(a2.assignment().len(), 2);
    for p in 0..4u32 {
        let by1 = got[0].get(&p);
        let by2 = got[1].get(&p);
        assert!(
            by1.is_some() != by2.is_some(),
            "partition {p}: {by1:?} / {by2:?}"
        );
        assert_eq!(by1.or(by2).unwrap(), &all, "group two, partition {p}");
    }
    let d1 = store.describe_group("two");
    let d2 = store.describe_group("one");
    assert_eq!(d1.members.len(), 2);
    assert_eq!(d2.members.len(), 1);
    assert_eq!(d2.members[0].1.len(), 4);

    // Commits are per group.
    a1.commit().unwrap();
    a2.commit().unwrap();
    let tp0 = TopicPartition::new("t", 0);
    b.commit_offsets(&[(tp0.clone(), OffsetAndMetadata::new(3))])
        .unwrap();
    let two: Vec<u64> = store
        .committed_offsets("two")
        .iter()
        .map(|(_, o)| o.offset)
        .collect();
    assert_eq!(two, [10, 10, 10, 10]);
    assert_eq!(
        store.committed_offsets("one"),
        [(tp0.clone(), OffsetAndMetadata::new(3))]
    );
    assert_eq!(store.list_groups(), ["one", "two"]);
    assert_eq!(b.lag(&tp0).unwrap(), 7);
    assert_eq!(a1.lag(&tp0).unwrap(), 0);

    // Membership changes in one group do not rebalance the other.
    let gen_one = store.describe_group("one").generation;
    a2.close().unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while a1.assignment().len() != 4 {
        assert!(Instant::now() < deadline);
        a1.poll(Duration::from_millis(10)).unwrap();
        b.poll(Duration::from_millis(10)).unwrap();
    }
    assert_eq!(store.describe_group("one").generation, gen_one);
    assert_eq!(b.assignment().len(), 4);

    // A new group starts from scratch, regardless of what the others committed.
    let mut c = store.consumer(config("three")).unwrap();
    c.subscribe(&["t"]).unwrap();
    let got = read_n(&mut [&mut c], 40);
    for p in 0..4 {
        assert_eq!(got[0][&p], all);
    }
}

#[test]
fn groupless_consumers_read_alongside_groups() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(2)).unwrap();
    let p = store.producer();
    for i in 0..10u32 {
        p.send(
            ProducerRecord::new("t")
                .partition(i % 2)
                .value(format!("{i}")),
        )
        .unwrap();
    }
    let mut g = store.consumer(config("g")).unwrap();
    g.subscribe(&["t"]).unwrap();
    let mut solo = store
        .consumer(
            ConsumerConfig::default()
                .group_id(None)
                .auto_offset_reset(OffsetReset::Earliest),
        )
        .unwrap();
    solo.assign(&[TopicPartition::new("t", 0), TopicPartition::new("t", 1)])
        .unwrap();
    let mut solo2 = store
        .consumer(
            ConsumerConfig::default()
                .group_id(None)
                .auto_offset_reset(OffsetReset::Earliest),
        )
        .unwrap();
    solo2.assign(&[TopicPartition::new("t", 1)]).unwrap();
    let got = read_n(&mut [&mut g, &mut solo, &mut solo2], 25);
    assert_eq!(got[0].values().map(Vec::len).sum::<usize>(), 10);
    assert_eq!(got[1].values().map(Vec::len).sum::<usize>(), 10);
    assert_eq!(got[2][&1], (0..5).collect::<Vec<_>>());
    // The groupless consumers are not members of anything.
    assert_eq!(store.describe_group("g").members.len(), 1);
    assert_eq!(store.list_groups(), ["g"]);
}
