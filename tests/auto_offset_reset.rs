//! Where a consumer starts without a committed offset: `Earliest` at the log start, `Latest` at
//! the log end (only new records), `None` with a `NoOffset` error. A committed offset always
//! wins over the reset policy. A committed or sought position outside the log is reset by
//! `Earliest`/`Latest`, and with `None` is an `OffsetOutOfRange` error naming the partition and
//! the valid range (Kafka's `OffsetOutOfRangeException`), never `NoOffset`.

use std::time::{Duration, Instant};

use riverbed::{
    Consumer, ConsumerConfig, ErrorKind, OffsetAndMetadata, OffsetReset, ProducerRecord, Store,
    TopicConfig, TopicPartition,
};

fn setup(records: usize) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(1)).unwrap();
    let p = store.producer();
    for i in 0..records {
        p.send(ProducerRecord::new("t").value(format!("r{i}")))
            .unwrap();
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
        ConsumerConfig::new("g").get_auto_offset_reset(),
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
    p.send(ProducerRecord::new("t").value("new1")).unwrap();
    p.send(ProducerRecord::new("t").value("new2")).unwrap();
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
        .consumer(
            ConsumerConfig::default()
                .group_id(None)
                .auto_offset_reset(OffsetReset::None),
        )
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
        .send(ProducerRecord::new("t").value("first"))
        .unwrap();
    assert_eq!(offsets(&mut c, 1), [0]);
}

// ---- positions that exist but lie outside the log (issue 13, item 4) ----------------------
//
// Kafka's rule (clients/.../consumer/internals/FetchCollector.java, the OFFSET_OUT_OF_RANGE
// case; FetcherTest's offset-out-of-range tests): a fetch position outside the log is reset
// when a reset policy is configured, and otherwise raises `OffsetOutOfRangeException` with the
// partition and the position, which stays; `NoOffsetForPartitionException` is only for a
// partition with nothing committed. The log end itself is a valid position. An error after
// records were gathered in the same poll is deferred (`if (fetch.isEmpty()) throw e`).

/// Topic `t` with `partitions` partitions of small segments and size retention; partition 0
/// holds 5 records.
fn retained(partitions: u32) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic(
            "t",
            TopicConfig::new(partitions)
                .segment_bytes(4096)
                .max_message_bytes(2048)
                .retention_bytes(Some(8192)),
        )
        .unwrap();
    let p = store.producer();
    for i in 0..5 {
        p.send(
            ProducerRecord::new("t")
                .partition(0)
                .value(format!("first {i}")),
        )
        .unwrap();
    }
    (dir, store)
}

fn log_range(store: &Store) -> (u64, u64) {
    let d = store.describe_topic("t").unwrap();
    let p = &d.partitions[0];
    (p.log_start_offset, p.log_end_offset)
}

/// Appends to `t-0` until retention has moved its log start well past the first records;
/// returns the new `(start, end)`.
fn expire(store: &Store) -> (u64, u64) {
    let p = store.producer();
    for i in 0..200 {
        p.send(ProducerRecord::new("t").partition(0).value(format!(
            "record {i:04} with some padding to fill the segments"
        )))
        .unwrap();
    }
    store.apply_retention().unwrap();
    let (start, end) = log_range(store);
    assert!(start > 10 && start < end, "retention left {start}..{end}");
    (start, end)
}

/// Polls until an error (or 3 s); records polled before it are returned too.
fn poll_until_error(c: &mut Consumer) -> (Vec<(u32, u64)>, riverbed::Error) {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        match c.poll(Duration::from_millis(20)) {
            Ok(r) => seen.extend(r.iter().map(|r| (r.partition(), r.offset()))),
            Err(e) => return (seen, e),
        }
    }
    panic!("poll never failed; records: {seen:?}");
}

fn assert_out_of_range(e: &riverbed::Error, requested_offset: u64, start: u64, end: u64) {
    assert!(
        matches!(
            e.kind(),
            ErrorKind::OffsetOutOfRange { partition: Some(p), requested, log_start, log_end }
                if *p == tp() && *requested == requested_offset && *log_start == start
                    && *log_end == end
        ),
        "expected OffsetOutOfRange for t-0 at {requested_offset} in {start}..{end}: {e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("t-0") && text.contains(&format!("{start}..{end}")),
        "{text}"
    );
}

#[test]
fn none_with_a_committed_offset_below_the_log_start_is_out_of_range_not_no_offset() {
    let (_dir, store) = retained(1);
    for group in ["gn", "ge", "gl"] {
        let mut m = store.consumer(config(group, OffsetReset::None)).unwrap();
        m.assign(&[tp()]).unwrap();
        m.commit_offsets(&[(tp(), OffsetAndMetadata::new(3))])
            .unwrap();
    }
    let (start, end) = expire(&store);

    let mut c = store.consumer(config("gn", OffsetReset::None)).unwrap();
    c.subscribe(&["t"]).unwrap();
    let (seen, e) = poll_until_error(&mut c);
    assert!(seen.is_empty(), "{seen:?}");
    assert_out_of_range(&e, 3, start, end);
    // The committed position stays (Kafka's `position` does not validate it) and the error
    // repeats until a seek.
    assert_eq!(c.position(&tp()).unwrap(), 3);
    let e = c.poll(Duration::from_millis(10)).unwrap_err();
    assert_out_of_range(&e, 3, start, end);
    c.seek(&tp(), start).unwrap();
    assert_eq!(offsets(&mut c, 2)[..2], [start, start + 1]);

    // With a reset policy the same committed offset is reset, not reported.
    let mut c = store.consumer(config("ge", OffsetReset::Earliest)).unwrap();
    c.subscribe(&["t"]).unwrap();
    assert_eq!(offsets(&mut c, 1)[0], start);
    let mut c = store.consumer(config("gl", OffsetReset::Latest)).unwrap();
    c.assign(&[tp()]).unwrap();
    assert!(c.poll(Duration::from_millis(50)).unwrap().is_empty());
    assert_eq!(c.position(&tp()).unwrap(), end);
}

#[test]
fn none_with_a_seek_past_the_end_is_out_of_range_and_the_end_itself_is_valid() {
    let (_dir, store) = setup(5);
    let mut c = store.consumer(config("g", OffsetReset::None)).unwrap();
    c.assign(&[tp()]).unwrap();
    c.seek(&tp(), 500).unwrap();
    let e = c.poll(Duration::from_millis(10)).unwrap_err();
    assert_out_of_range(&e, 500, 0, 5);
    assert_eq!(c.position(&tp()).unwrap(), 500);
    // Position == log end: nothing to read yet, and no error.
    c.seek(&tp(), 5).unwrap();
    assert!(c.poll(Duration::from_millis(20)).unwrap().is_empty());
    store
        .producer()
        .send(ProducerRecord::new("t").value("r5"))
        .unwrap();
    assert_eq!(offsets(&mut c, 1), [5]);
    // One past the end is out of range.
    c.seek(&tp(), 7).unwrap();
    let e = c.poll(Duration::from_millis(10)).unwrap_err();
    assert_out_of_range(&e, 7, 0, 6);
}

#[test]
fn retention_passing_a_consumer_mid_consumption_follows_the_policy() {
    for reset in [
        OffsetReset::None,
        OffsetReset::Earliest,
        OffsetReset::Latest,
    ] {
        let (_dir, store) = retained(1);
        let mut c = store
            .consumer(config("g", reset).max_poll_records(2))
            .unwrap();
        c.assign(&[tp()]).unwrap();
        c.seek(&tp(), 0).unwrap();
        assert_eq!(offsets(&mut c, 2), [0, 1], "{reset:?}");
        let (start, end) = expire(&store);
        match reset {
            OffsetReset::None => {
                let (seen, e) = poll_until_error(&mut c);
                assert!(seen.is_empty(), "{seen:?}");
                assert_out_of_range(&e, 2, start, end);
                assert_eq!(c.position(&tp()).unwrap(), 2);
            }
            OffsetReset::Earliest => assert_eq!(offsets(&mut c, 2)[..2], [start, start + 1]),
            OffsetReset::Latest => {
                assert!(c.poll(Duration::from_millis(20)).unwrap().is_empty());
                assert_eq!(c.position(&tp()).unwrap(), end);
            }
            other => unreachable!("{other:?} is not in the list"),
        }
    }
}

/// An out-of-range partition must not take the records of another partition of the same poll
/// with it: they are returned, and the error comes at a later poll.
#[test]
fn an_error_of_one_partition_does_not_lose_the_records_of_another() {
    let (_dir, store) = retained(2);
    let p = store.producer();
    for i in 0..20 {
        p.send(
            ProducerRecord::new("t")
                .partition(1)
                .value(format!("p1 {i}")),
        )
        .unwrap();
    }
    let (start, end) = expire(&store);
    let mut c = store
        .consumer(config("g", OffsetReset::None).max_poll_records(3))
        .unwrap();
    let p1 = TopicPartition::new("t", 1);
    c.assign(&[tp(), p1.clone()]).unwrap();
    c.seek(&tp(), 0).unwrap();
    c.seek(&p1, 0).unwrap();
    let mut seen = Vec::new();
    let mut errors = 0;
    let deadline = Instant::now() + Duration::from_secs(3);
    while seen.len() < 20 && Instant::now() < deadline {
        match c.poll(Duration::from_millis(10)) {
            Ok(r) => seen.extend(r.iter().map(|r| (r.partition(), r.offset()))),
            Err(e) => {
                assert_out_of_range(&e, 0, start, end);
                errors += 1;
            }
        }
    }
    let expected: Vec<(u32, u64)> = (0..20).map(|o| (1, o)).collect();
    assert_eq!(seen, expected, "records of t-1 lost or repeated");
    assert!(errors > 0, "the out-of-range partition never reported");
    assert_eq!(c.position(&p1).unwrap(), 20);
}
