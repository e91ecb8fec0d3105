//! `pause` stops a consumer returning records of some partitions without losing their position
//! or ownership; `resume` picks them up exactly where they stopped.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use riverbed::{
    Consumer, ConsumerConfig, ErrorKind, OffsetReset, ProducerRecord, Store, TopicConfig,
    TopicPartition,
};

fn tp(p: u32) -> TopicPartition {
    TopicPartition::new("t", p)
}

fn setup() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(3)).unwrap();
    let p = store.producer();
    for i in 0..10 {
        for part in 0..3 {
            p.send(
                ProducerRecord::new("t")
                    .partition(part)
                    .value(format!("{part}-{i}")),
            )
            .unwrap();
        }
    }
    (dir, store)
}

/// Polls for `wait`, returning partition -> offsets read.
fn poll_for(c: &mut Consumer, wait: Duration) -> BTreeMap<u32, Vec<u64>> {
    let mut out: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        for r in c.poll(Duration::from_millis(20)).unwrap().iter() {
            out.entry(r.partition()).or_default().push(r.offset());
        }
    }
    out
}

#[test]
fn paused_partitions_return_nothing_until_resumed() {
    let (_dir, store) = setup();
    let mut c = store
        .consumer(
            ConsumerConfig::default()
                .group_id(None)
                .auto_offset_reset(OffsetReset::Earliest)
                .max_poll_records(4),
        )
        .unwrap();
    c.assign(&[tp(0), tp(1), tp(2)]).unwrap();
    // Read a little of partition 0 first, so that its position is in the middle.
    c.pause(&[tp(1), tp(2)]).unwrap();
    let mut first = Vec::new();
    while first.len() < 3 {
        first.extend(c.poll(Duration::from_millis(50)).unwrap().iter().map(|r| {
            assert_eq!(r.partition(), 0);
            r.offset()
        }));
    }
    let pos0 = c.position(&tp(0)).unwrap();
    assert_eq!(first, (0..pos0).collect::<Vec<_>>());

    c.resume(&[tp(1), tp(2)]);
    c.pause(&[tp(0)]).unwrap();
    assert_eq!(c.paused(), [tp(0)]);
    // New records for the paused partition arrive meanwhile.
    store
        .producer()
        .send(ProducerRecord::new("t").partition(0).value("late"))
        .unwrap();
    let got = poll_for(&mut c, Duration::from_millis(300));
    assert!(!got.contains_key(&0), "paused partition returned {got:?}");
    assert_eq!(got[&1], (0..10).collect::<Vec<_>>());
    assert_eq!(got[&2], (0..10).collect::<Vec<_>>());
    assert_eq!(
        c.position(&tp(0)).unwrap(),
        pos0,
        "pausing moved the position"
    );
    assert!(c.assignment().contains(&tp(0)));

    // With only paused partitions left with data, poll waits out its timeout and returns
    // nothing.
    let t = Instant::now();
    assert!(c.poll(Duration::from_millis(100)).unwrap().is_empty());
    assert!(t.elapsed() >= Duration::from_millis(90));

    c.resume(&[tp(0)]);
    assert!(c.paused().is_empty());
    let got = poll_for(&mut c, Duration::from_millis(200));
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), [0]);
    assert_eq!(
        got[&0],
        (pos0..11).collect::<Vec<_>>(),
        "resume skipped records"
    );

    // Resuming what is not paused is harmless; pausing what is not assigned is refused.
    c.resume(&[tp(1), TopicPartition::new("other", 9)]);
    let e = c.pause(&[tp(1), TopicPartition::new("t", 7)]).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::NotAssigned { partition: 7, .. }),
        "{e:?}"
    );
    assert!(c.paused().is_empty(), "a refused pause paused something");
}

#[test]
fn pause_keeps_ownership_in_a_group() {
    let (_dir, store) = setup();
    let mut c = store
        .consumer(
            ConsumerConfig::new("g")
                .auto_offset_reset(OffsetReset::Earliest)
                .enable_auto_commit(false),
        )
        .unwrap();
    c.subscribe(&["t"]).unwrap();
    // The first poll joins the group (and may already return records): start over after it.
    c.poll(Duration::from_millis(20)).unwrap();
    assert_eq!(c.assignment().len(), 3);
    c.seek_to_beginning(&[tp(0), tp(1), tp(2)]).unwrap();
    c.pause(&[tp(0), tp(1), tp(2)]).unwrap();
    let generation = c.generation();
    let got = poll_for(&mut c, Duration::from_millis(200));
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(c.generation(), generation, "pausing caused a rebalance");
    assert_eq!(c.assignment().len(), 3);
    let d = store.describe_group("g");
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].1.len(), 3);
    c.resume(&[tp(2)]);
    let got = poll_for(&mut c, Duration::from_millis(200));
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), [2]);
    assert_eq!(got[&2], (0..10).collect::<Vec<_>>());
}
