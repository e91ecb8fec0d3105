//! Where a consumer starts without a committed offset: `Earliest` at the log start, `Latest` at
//! the log end (only new records), `None` with a `NoOffset` error. A committed offset always
//! wins over the reset policy.

use std::time::{Duration, Instant};

use riverbed::{
    Consumer, ConsumerConfig, ErrorKind, OffsetAndMetadata, OffsetReset, Record, Store,
    TopicConfig, TopicPartition,
};

fn setup(records: usize) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(1)).unwrap();
    let p = store.producer();
    for i in 0..records {
        p.send(Record::new("t").value(format!("r{i}"))).unwrap();
    }
    (dir, store)
}

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

/// Polls until `n` records arrived (or 3 s passed); returns their offsets.
fn offsets(c: &mut Consumer, n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while out.len() < n && Instant::now() < deadline {
        out.extend(
            c.poll(Duration::from_millis(50))
                .unwrap()
                .iter()
                .map(|r| r.offset()),
        );
    }
    out
}

fn config(group: &str, reset: OffsetReset) -> ConsumerConfig {
    ConsumerConfig::new(group)
        .auto_offset_reset(reset)
        .enable_auto_commit(false)
}

#[test]
fn latest_is_the_default() {
    assert_eq!(
        ConsumerConfig::new("g").auto_offset_reset,
        OffsetReset::Latest
    );
}

#[test]
fn earliest_reads_from_the_start() {
    let (_dir, store) = setup(5);
    let mut c = store.consumer(config("g", OffsetReset::Earliest)).unwrap();
    c.subscribe(&["t"]).unwrap();
    assert_eq!(offsets(&mut c, 5), [0, 1, 2, 3, 4]);
    assert_eq!(c.position(&tp()).unwrap(), 5);

    let mut m = store.consumer(config("m", OffsetReset::Earliest)).unwrap();
    m.assign(&[tp()]).unwrap();
    assert_eq!(m.position(&tp()).unwrap(), 0);
    assert_eq!(offsets(&mut m, 5), [0, 1, 2, 3, 4]);
}

#[test]
fn latest_reads_only_new_records() {
    let (_dir, store) = setup(5);
    let mut c = store.consumer(config("g", OffsetReset::Latest)).unwrap();
    c.subscribe(&["t"]).unwrap();
    assert!(c.poll(Duration::from_millis(50)).unwrap().is_empty());
    assert_eq!(c.assignment(), [tp()]);
    assert_eq!(c.position(&tp()).unwrap(), 5);
    let p = store.producer();
    p.send(Record::new("t").value("new1")).unwrap();
    p.send(Record::new("t").value("new2")).unwrap();
    assert_eq!(offsets(&mut c, 2), [5, 6]);

    let mut m = store.consumer(config("m", OffsetReset::Latest)).unwrap();
    m.assign(&[tp()]).unwrap();
    assert_eq!(m.position(&tp()).unwrap(), 7);
    assert!(m.poll(Duration::from_millis(50)).unwrap().is_empty());
}

#[test]
fn none_without_a_committed_offset_is_an_error() {
    let (_dir, store) = setup(5);
    let mut c = store.consumer(config("g", OffsetReset::None)).unwrap();
    c.subscribe(&["t"]).unwrap();
    let mut err = None;
    let deadline = Instant::now() + Duration::from_secs(3);
    while err.is_none() && Instant::now() < deadline {
        match c.poll(Duration::from_millis(50)) {
            Ok(r) => assert!(r.is_empty(), "records without an offset to start from"),
            Err(e) => err = Some(e),
        }
    }
    let e = err.expect("poll never failed");
    assert!(
        matches!(e.kind(), ErrorKind::NoOffset { topic, partition: 0 } if topic == "t"),
        "{e:?}"
    );
    let e = c.position(&tp()).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::NoOffset { .. }), "{e:?}");
    // The error repeats until a position is set; a seek fixes it.
    let e = c.poll(Duration::from_millis(10)).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::NoOffset { .. }), "{e:?}");
    c.seek(&tp(), 3).unwrap();
    assert_eq!(offsets(&mut c, 2), [3, 4]);

    // Manual assignment behaves the same.
    let mut m = store.consumer(config("m", OffsetReset::None)).unwrap();
    m.assign(&[tp()]).unwrap();
    let e = m.position(&tp()).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::NoOffset { .. }), "{e:?}");
    let e = m.poll(Duration::from_millis(10)).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::NoOffset { .. }), "{e:?}");
    // A consumer without a group has nothing committed either.
    let mut n = store
        .consumer(ConsumerConfig {
            group_id: None,
            auto_offset_reset: OffsetReset::None,
            ..ConsumerConfig::default()
        })
        .unwrap();
    n.assign(&[tp()]).unwrap();
    let e = n.poll(Duration::from_millis(10)).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::NoOffset { .. }), "{e:?}");
}

#[test]
fn a_committed_offset_wins_over_every_policy() {
    let (_dir, store) = setup(5);
    for (group, reset) in [
        ("ge", OffsetReset::Earliest),
        ("gl", OffsetReset::Latest),
        ("gn", OffsetReset::None),
    ] {
        {
            let mut m = store.consumer(config(group, reset)).unwrap();
            m.assign(&[tp()]).unwrap();
            m.commit_offsets(&[(tp(), OffsetAndMetadata::new(2))])
                .unwrap();
        }
        let mut c = store.consumer(config(group, reset)).unwrap();
        c.subscribe(&["t"]).unwrap();
        assert_eq!(offsets(&mut c, 3), [2, 3, 4], "group {group}");
        let mut m = store.consumer(config(group, reset)).unwrap();
        m.assign(&[tp()]).unwrap();
        assert_eq!(m.position(&tp()).unwrap(), 2, "group {group}");
    }
}

#[test]
fn empty_partition_earliest_and_latest_agree() {
    let (_dir, store) = setup(0);
    for reset in [OffsetReset::Earliest, OffsetReset::Latest] {
        let mut c = store
            .consumer(config(&format!("{reset:?}"), reset))
            .unwrap();
        c.assign(&[tp()]).unwrap();
        assert_eq!(c.position(&tp()).unwrap(), 0);
    }
    let mut c = store.consumer(config("late", OffsetReset::Latest)).unwrap();
    c.subscribe(&["t"]).unwrap();
    assert!(c.poll(Duration::from_millis(50)).unwrap().is_empty());
    store
        .producer()
        .send(Record::new("t").value("first"))
        .unwrap();
    assert_eq!(offsets(&mut c, 1), [0]);
}
