//! Bad input is refused with the precise error kind, and changes nothing: invalid topic names
//! and configurations, partitions out of range on send and assign (`UnknownPartition`),
//! operations on partitions a consumer was not assigned (`NotAssigned`), records larger than
//! the topic allows (`RecordTooLarge`, with nothing written), and misused consumers.

use std::time::Duration;

use riverbed::{
    ConsumerConfig, ErrorKind, OffsetAndMetadata, OffsetReset, ProducerRecord, Store, TopicConfig,
    TopicPartition,
};

fn setup() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic("t", TopicConfig::new(3).max_message_bytes(1024))
        .unwrap();
    (dir, store)
}

fn ends(store: &Store) -> Vec<u64> {
    store
        .describe_topic("t")
        .unwrap()
        .partitions
        .iter()
        .map(|p| p.log_end_offset)
        .collect()
}

fn tp(p: u32) -> TopicPartition {
    TopicPartition::new("t", p)
}

#[test]
fn invalid_topic_names_and_configs() {
    let (_dir, store) = setup();
    for name in ["", ".", "..", "a b", "a/b", "ü", &"x".repeat(250)] {
        let e = store.create_topic(name, TopicConfig::new(1)).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidArgument(_)),
            "{name:?}: {e:?}"
        );
    }
    for (cfg, field) in [
        (TopicConfig::new(0), "partitions"),
        (TopicConfig::new(100_001), "partitions"),
        (TopicConfig::new(1).segment_bytes(10), "segment_bytes"),
        (
            TopicConfig::new(1).max_message_bytes(10),
            "max_message_bytes",
        ),
        (
            TopicConfig::new(1).compression(riverbed::Compression::Zstd { level: 99 }),
            "compression",
        ),
    ] {
        let e = store.create_topic("ok", cfg).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidConfig { field: f, .. } if *f == field),
            "{field}: {e:?}"
        );
    }
    assert_eq!(store.list_topics(), ["t"]);
}

#[test]
fn partition_out_of_range_on_send() {
    let (_dir, store) = setup();
    let p = store.producer();
    p.send(ProducerRecord::new("t").partition(0).value("ok"))
        .unwrap();
    let e = p
        .send(ProducerRecord::new("t").partition(3).value("v"))
        .unwrap_err();
    assert!(
        matches!(
            e.kind(),
            ErrorKind::UnknownPartition { topic, partition: 3, partitions: 3 } if topic == "t"
        ),
        "{e:?}"
    );
    let e = p
        .send(
            ProducerRecord::new("t")
                .partition(u32::MAX)
                .key("k")
                .value("v"),
        )
        .unwrap_err();
    assert!(
        matches!(
            e.kind(),
            ErrorKind::UnknownPartition {
                partition: u32::MAX,
                ..
            }
        ),
        "{e:?}"
    );
    // A batch with one bad record writes none of them.
    let e = p
        .send_batch([
            ProducerRecord::new("t").partition(0).value("a"),
            ProducerRecord::new("t").partition(1).value("b"),
            ProducerRecord::new("t").partition(9).value("c"),
        ])
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::UnknownPartition { partition: 9, .. }),
        "{e:?}"
    );
    assert_eq!(ends(&store), [1, 0, 0]);
}

#[test]
fn partition_out_of_range_on_assign() {
    let (_dir, store) = setup();
    let mut c = store.consumer(ConsumerConfig::new("g")).unwrap();
    c.assign(&[tp(0)]).unwrap();
    let e = c.assign(&[tp(1), tp(3)]).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            ErrorKind::UnknownPartition { topic, partition: 3, partitions: 3 } if topic == "t"
        ),
        "{e:?}"
    );
    assert_eq!(
        c.assignment(),
        [tp(0)],
        "a refused assign changed the assignment"
    );
    let e = c.assign(&[TopicPartition::new("nope", 0)]).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::UnknownTopic { .. }), "{e:?}");
    for e in [
        c.end_offsets(&[tp(5)]).unwrap_err(),
        c.beginning_offsets(&[tp(5)]).unwrap_err(),
        c.offsets_for_times(&[(tp(5), 0)]).unwrap_err(),
    ] {
        assert!(
            matches!(e.kind(), ErrorKind::UnknownPartition { partition: 5, .. }),
            "{e:?}"
        );
    }
}

#[test]
fn operations_on_unassigned_partitions() {
    let (_dir, store) = setup();
    let mut c = store
        .consumer(ConsumerConfig::new("g").auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    c.assign(&[tp(0), tp(1)]).unwrap();
    c.commit_offsets(&[(tp(0), OffsetAndMetadata::new(0))])
        .unwrap();
    let not_assigned = |e: riverbed::Error| {
        assert!(
            matches!(e.kind(), ErrorKind::NotAssigned { topic, partition: 2 } if topic == "t"),
            "{e:?}"
        );
    };
    not_assigned(
        c.commit_offsets(&[
            (tp(1), OffsetAndMetadata::new(0)),
            (tp(2), OffsetAndMetadata::new(0)),
        ])
        .unwrap_err(),
    );
    assert_eq!(
        store.committed_offsets("g"),
        [(tp(0), OffsetAndMetadata::new(0))],
        "a refused commit committed something"
    );
    not_assigned(c.position(&tp(2)).unwrap_err());
    not_assigned(c.seek(&tp(2), 0).unwrap_err());
    not_assigned(c.seek_to_beginning(&[tp(2)]).unwrap_err());
    not_assigned(c.seek_to_end(&[tp(2)]).unwrap_err());
    not_assigned(c.pause(&[tp(2)]).unwrap_err());
    // Another topic's partition is not assigned either, even with the same number.
    store.create_topic("u", TopicConfig::new(1)).unwrap();
    let e = c
        .commit_offsets(&[(TopicPartition::new("u", 0), OffsetAndMetadata::new(0))])
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::NotAssigned { .. }), "{e:?}");
    // A subscribed consumer that has not been given the partition yet.
    let mut s = store
        .consumer(ConsumerConfig::new("h").auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    s.subscribe(&["u"]).unwrap();
    s.poll(Duration::from_millis(20)).unwrap();
    let e = s
        .commit_offsets(&[(tp(0), OffsetAndMetadata::new(0))])
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::NotAssigned { .. }), "{e:?}");
    assert!(store.committed_offsets("h").is_empty());
}

#[test]
fn oversized_records_are_refused_and_nothing_is_written() {
    let (_dir, store) = setup();
    let p = store.producer();
    p.send(ProducerRecord::new("t").partition(0).value("before"))
        .unwrap();
    let max = 1024;
    for r in [
        ProducerRecord::new("t").partition(0).value(vec![7u8; 2000]),
        ProducerRecord::new("t").partition(0).key(vec![7u8; 2000]),
        ProducerRecord::new("t")
            .partition(0)
            .header("h", vec![7u8; 2000]),
        ProducerRecord::new("t").key("k").value(vec![7u8; max]),
        ProducerRecord::new("t").value(vec![7u8; 5000]),
    ] {
        let e = p.send(r).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::RecordTooLarge { size, max: m } if *m == max && *size > max),
            "{e:?}"
        );
    }
    assert_eq!(ends(&store), [1, 0, 0], "a refused record was written");
    // In a batch, one oversized record refuses the whole call.
    let e = p
        .send_batch([
            ProducerRecord::new("t").partition(1).value("small"),
            ProducerRecord::new("t").partition(2).value(vec![0u8; 1500]),
        ])
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::RecordTooLarge { .. }),
        "{e:?}"
    );
    assert_eq!(ends(&store), [1, 0, 0]);
    // Records that fit still go through, at the next offsets.
    let m = p
        .send(ProducerRecord::new("t").partition(0).value(vec![1u8; 900]))
        .unwrap();
    assert_eq!((m.partition, m.offset), (0, 1));
    // A batch of many small records is split to fit rather than refused.
    let ms = p
        .send_batch((0..10).map(|_| ProducerRecord::new("t").partition(1).value(vec![2u8; 300])))
        .unwrap();
    assert_eq!(
        ms.iter().map(|m| m.offset).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(ends(&store), [2, 10, 0]);
}

#[test]
fn misused_consumers() {
    let (_dir, store) = setup();
    for cfg in [
        ConsumerConfig::new("g").max_poll_records(0),
        ConsumerConfig::new(""),
    ] {
        let e = store.consumer(cfg).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidConfig { .. }), "{e:?}");
    }
    // Without a group: no subscribe, no commits.
    let mut c = store.consumer(ConsumerConfig::default()).unwrap();
    let e = c.subscribe(&["t"]).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidArgument(_)), "{e:?}");
    c.assign(&[tp(0)]).unwrap();
    let e = c
        .commit_offsets(&[(tp(0), OffsetAndMetadata::new(0))])
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidArgument(_)), "{e:?}");
    let e = c.committed(&tp(0)).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidArgument(_)), "{e:?}");

    // Subscribed and assigned at once is refused both ways.
    let mut s = store.consumer(ConsumerConfig::new("g")).unwrap();
    s.subscribe(&["t"]).unwrap();
    let e = s.assign(&[tp(0)]).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidArgument(_)), "{e:?}");
    let mut a = store.consumer(ConsumerConfig::new("g2")).unwrap();
    a.assign(&[tp(0)]).unwrap();
    let e = a.subscribe(&["t"]).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidArgument(_)), "{e:?}");

    // A manually assigned consumer may not commit for a group that has live members.
    let mut m = store.consumer(ConsumerConfig::new("g")).unwrap();
    m.assign(&[tp(0)]).unwrap();
    let e = m
        .commit_offsets(&[(tp(0), OffsetAndMetadata::new(1))])
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::CommitFailed { .. }), "{e:?}");
    assert!(store.committed_offsets("g").is_empty());
}
