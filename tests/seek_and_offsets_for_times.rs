//! Moving a consumer's position: `seek` to an offset, `seek_to_beginning`, `seek_to_end`; and
//! finding offsets by time with `offsets_for_times` (the first offset whose timestamp is at least
//! the one asked for), across segments and with out-of-order timestamps. A position outside the
//! log is handled at the next poll as `auto_offset_reset` says.

use std::time::{Duration, Instant};

use riverbed::{
    Consumer, ConsumerConfig, ErrorKind, OffsetAndTimestamp, OffsetReset, ProducerRecord, Store,
    TopicConfig, TopicPartition,
};

const T0: i64 = 1_700_000_000_000;

fn tp(p: u32) -> TopicPartition {
    TopicPartition::new("t", p)
}

/// A topic "t" of 2 partitions with small segments (and no time retention: the timestamps are
/// old); partition 0 holds `n` records with
/// timestamps T0, T0+100, T0+200, ...; partition 1 holds 3 records at T0+1000.
fn setup(n: u64) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic(
            "t",
            TopicConfig::new(2)
                .segment_bytes(1024)
                .max_message_bytes(512)
                .retention_ms(None),
        )
        .unwrap();
    let p = store.producer();
    for i in 0..n {
        p.send(
            ProducerRecord::new("t")
                .partition(0)
                .value(format!("value-{i:04}-{}", "x".repeat(40)))
                .timestamp(T0 + 100 * i as i64),
        )
        .unwrap();
    }
    for _ in 0..3 {
        p.send(
            ProducerRecord::new("t")
                .partition(1)
                .value("p1")
                .timestamp(T0 + 1000),
        )
        .unwrap();
    }
    (dir, store)
}

fn consumer(store: &Store, reset: OffsetReset) -> Consumer {
    store
        .consumer(
            ConsumerConfig::default()
                .group_id(None)
                .auto_offset_reset(reset)
                .max_poll_records(1000),
        )
        .unwrap()
}

/// Offsets of the next records of partition `p` (polling until at least `n` or 2 s).
fn next_offsets(c: &mut Consumer, p: u32, n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while out.len() < n && Instant::now() < deadline {
        out.extend(
            c.poll(Duration::from_millis(50))
                .unwrap()
                .iter()
                .filter(|r| r.partition() == p)
                .map(|r| r.offset()),
        );
    }
    out
}

#[test]
fn seek_moves_the_position() {
    let (_dir, store) = setup(60);
    assert!(
        store.describe_topic("t").unwrap().partitions[0].segments > 1,
        "the test wants several segments"
    );
    let mut c = consumer(&store, OffsetReset::Earliest);
    c.assign(&[tp(0)]).unwrap();

    c.seek(&tp(0), 42).unwrap();
    assert_eq!(c.position(&tp(0)).unwrap(), 42);
    assert_eq!(next_offsets(&mut c, 0, 18), (42..60).collect::<Vec<_>>());
    assert_eq!(c.position(&tp(0)).unwrap(), 60);

    // Back to an earlier offset: the records are read again.
    c.seek(&tp(0), 7).unwrap();
    let got = next_offsets(&mut c, 0, 53);
    assert_eq!(got, (7..60).collect::<Vec<_>>());

    c.seek_to_beginning(&[tp(0)]).unwrap();
    assert_eq!(c.position(&tp(0)).unwrap(), 0);
    assert_eq!(next_offsets(&mut c, 0, 60), (0..60).collect::<Vec<_>>());

    c.seek(&tp(0), 10).unwrap();
    c.seek_to_end(&[tp(0)]).unwrap();
    assert_eq!(c.position(&tp(0)).unwrap(), 60);
    assert!(c.poll(Duration::from_millis(50)).unwrap().is_empty());
    store
        .producer()
        .send(ProducerRecord::new("t").partition(0).value("late"))
        .unwrap();
    assert_eq!(next_offsets(&mut c, 0, 1), [60]);

    // Seeking to the exact end is a valid position: nothing now, the next record later.
    c.seek(&tp(0), 61).unwrap();
    assert!(c.poll(Duration::from_millis(50)).unwrap().is_empty());
    assert_eq!(c.position(&tp(0)).unwrap(), 61);

    // Seeks of partitions not assigned are refused.
    for e in [
        c.seek(&tp(1), 0).unwrap_err(),
        c.seek_to_beginning(&[tp(1)]).unwrap_err(),
        c.seek_to_end(&[tp(1)]).unwrap_err(),
    ] {
        assert!(
            matches!(e.kind(), ErrorKind::NotAssigned { partition: 1, .. }),
            "{e:?}"
        );
    }
}

#[test]
fn seek_in_a_subscribed_consumer_and_from_on_assigned() {
    let (_dir, store) = setup(20);
    struct SeekTo5;
    impl riverbed::RebalanceListener for SeekTo5 {
        fn on_assigned(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
            for tp in partitions {
                if tp.partition == 0 {
                    consumer.seek(tp, 5).unwrap();
                }
            }
        }
    }
    let mut c = store
        .consumer(ConsumerConfig::new("g").auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    c.subscribe_with_listener(&["t"], SeekTo5).unwrap();
    assert_eq!(next_offsets(&mut c, 0, 15), (5..20).collect::<Vec<_>>());
}

/// Kafka resets a position outside the log at the next fetch, as `auto_offset_reset` says; the
/// `seek` docs promise the same. A consumer must not sit silently past the end of the log.
#[test]
fn seek_past_the_end_is_reset_at_the_next_poll() {
    let (_dir, store) = setup(10);
    let mut c = consumer(&store, OffsetReset::Earliest);
    c.assign(&[tp(0)]).unwrap();
    c.seek(&tp(0), 500).unwrap();
    assert_eq!(
        next_offsets(&mut c, 0, 10),
        (0..10).collect::<Vec<_>>(),
        "a position past the log end was not reset to the earliest offset"
    );

    let mut c = consumer(&store, OffsetReset::Latest);
    c.assign(&[tp(0)]).unwrap();
    c.seek(&tp(0), 500).unwrap();
    c.poll(Duration::from_millis(50)).unwrap();
    store
        .producer()
        .send(ProducerRecord::new("t").partition(0).value("new"))
        .unwrap();
    assert_eq!(
        next_offsets(&mut c, 0, 1),
        [10],
        "a position past the log end was not reset to the latest offset"
    );

    let mut c = consumer(&store, OffsetReset::None);
    c.assign(&[tp(0)]).unwrap();
    c.seek(&tp(0), 500).unwrap();
    let e = c
        .poll(Duration::from_millis(50))
        .expect_err("a position past the log end with reset None must be an error");
    // Kafka's OffsetOutOfRangeException, naming the partition; NoOffset is only for "nothing
    // committed or sought".
    assert!(
        matches!(
            e.kind(),
            ErrorKind::OffsetOutOfRange { partition: Some(p), requested: 500, .. } if *p == tp(0)
        ),
        "{e:?}"
    );
}

#[test]
fn offsets_for_times_finds_the_first_offset_at_or_after() {
    let (_dir, store) = setup(60);
    let c = consumer(&store, OffsetReset::Earliest);
    let q = |ts: i64| {
        let r = c.offsets_for_times(&[(tp(0), ts)]).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0, tp(0));
        r[0].1
    };
    let at = |offset: u64| Some(OffsetAndTimestamp::new(offset, T0 + 100 * offset as i64));
    assert_eq!(q(i64::MIN), at(0));
    assert_eq!(q(0), at(0));
    assert_eq!(q(T0), at(0));
    assert_eq!(q(T0 + 1), at(1));
    assert_eq!(q(T0 + 100), at(1));
    assert_eq!(q(T0 + 2550), at(26));
    assert_eq!(q(T0 + 5900), at(59));
    assert_eq!(q(T0 + 5901), None);
    assert_eq!(q(i64::MAX), None);
    // Every record, in every segment, is found by its own timestamp.
    for i in 0..60 {
        assert_eq!(q(T0 + 100 * i as i64), at(i), "record {i}");
        assert_eq!(q(T0 + 100 * i as i64 - 50), at(i), "before record {i}");
    }

    // Several partitions at once, answered in the order asked.
    let r = c
        .offsets_for_times(&[(tp(1), T0 + 999), (tp(0), T0 + 150), (tp(1), T0 + 1001)])
        .unwrap();
    assert_eq!(
        r,
        [
            (tp(1), Some(OffsetAndTimestamp::new(0, T0 + 1000))),
            (tp(0), at(2)),
            (tp(1), None),
        ]
    );

    // An empty partition has no such offset; an unknown partition is an error.
    store.add_partitions("t", 3).unwrap();
    assert_eq!(c.offsets_for_times(&[(tp(2), 0)]).unwrap()[0].1, None);
    let e = c.offsets_for_times(&[(tp(7), 0)]).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::UnknownPartition { partition: 7, .. }),
        "{e:?}"
    );

    // Seeking to the offset found reads from there.
    let mut c = consumer(&store, OffsetReset::Earliest);
    c.assign(&[tp(0)]).unwrap();
    let found = c.offsets_for_times(&[(tp(0), T0 + 5000)]).unwrap()[0]
        .1
        .unwrap();
    c.seek(&tp(0), found.offset).unwrap();
    assert_eq!(next_offsets(&mut c, 0, 10), (50..60).collect::<Vec<_>>());
}

#[test]
fn offsets_for_times_with_out_of_order_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic(
            "t",
            TopicConfig::new(1)
                .segment_bytes(1024)
                .max_message_bytes(512)
                .retention_ms(None),
        )
        .unwrap();
    // Create-time timestamps need not increase: every third record is stamped a second early,
    // and record 20 far in the future.
    let stamps: Vec<i64> = (0..40i64)
        .map(|i| match i {
            20 => T0 + 1_000_000,
            _ if i % 3 == 2 => T0 + 100 * i - 1050,
            _ => T0 + 100 * i,
        })
        .collect();
    let p = store.producer();
    for (i, ts) in stamps.iter().enumerate() {
        p.send(
            ProducerRecord::new("t")
                .value(format!("{i:03}{}", "y".repeat(60)))
                .timestamp(*ts),
        )
        .unwrap();
    }
    let c = consumer(&store, OffsetReset::Earliest);
    let mut queries: Vec<i64> = stamps.clone();
    queries.extend(stamps.iter().map(|t| t + 1));
    queries.extend(stamps.iter().map(|t| t - 1));
    queries.extend([
        T0 - 5000,
        T0 + 2500,
        T0 + 4999,
        T0 + 100_000,
        T0 + 1_000_001,
    ]);
    for q in queries {
        let want = stamps
            .iter()
            .position(|&ts| ts >= q)
            .map(|i| OffsetAndTimestamp::new(i as u64, stamps[i]));
        let got = c.offsets_for_times(&[(tp(0), q)]).unwrap()[0].1;
        assert_eq!(got, want, "query {}", q - T0);
    }
}
