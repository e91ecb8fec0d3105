//! Topic administration: create, list, describe, delete and add partitions; the topic metadata
//! survives a reopen, deleted topics stay deleted, and a topic recreated after deletion starts
//! empty.

use std::time::{Duration, Instant};

use riverbed::{
    Compression, ConsumerConfig, ErrorKind, OffsetAndMetadata, OffsetReset, ProducerRecord, Store,
    TimestampType, TopicConfig, TopicPartition,
};

/// Reads every record of `tp` from the beginning, without a group: (offset, value).
fn read_all(store: &Store, tp: &TopicPartition) -> Vec<(u64, Vec<u8>)> {
    let mut c = store
        .consumer(
            ConsumerConfig::default()
                .group_id(None)
                .auto_offset_reset(OffsetReset::Earliest),
        )
        .unwrap();
    c.assign(std::slice::from_ref(tp)).unwrap();
    let end =
        store.describe_topic(&tp.topic).unwrap().partitions[tp.partition as usize].log_end_offset;
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while (out.len() as u64) < end {
        assert!(Instant::now() < deadline, "timed out reading {tp}");
        for r in c.poll(Duration::from_millis(100)).unwrap().iter() {
            out.push((r.offset(), r.value().unwrap_or_default().to_vec()));
        }
    }
    out
}

fn ends(store: &Store, topic: &str) -> Vec<u64> {
    store
        .describe_topic(topic)
        .unwrap()
        .partitions
        .iter()
        .map(|p| p.log_end_offset)
        .collect()
}

#[test]
fn create_list_describe() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(store.list_topics().is_empty());

    store.create_topic("orders", TopicConfig::new(3)).unwrap();
    store
        .create_topic(
            "audit.log",
            TopicConfig::new(1)
                .timestamp_type(TimestampType::LogAppendTime)
                .compression(Compression::Zstd { level: 3 })
                .max_message_bytes(4096),
        )
        .unwrap();
    store
        .create_topic("a_first", TopicConfig::default())
        .unwrap();
    assert_eq!(store.list_topics(), ["a_first", "audit.log", "orders"]);

    let d = store.describe_topic("orders").unwrap();
    assert_eq!(d.name, "orders");
    assert_eq!(d.config.get_partitions(), 3);
    assert_eq!(d.partitions.len(), 3);
    for (i, p) in d.partitions.iter().enumerate() {
        assert_eq!(p.partition, i as u32);
        assert_eq!((p.log_start_offset, p.log_end_offset), (0, 0));
    }
    let d = store.describe_topic("audit.log").unwrap();
    assert_eq!(
        d.config.get_log().get_timestamp_type(),
        TimestampType::LogAppendTime
    );
    assert_eq!(d.config.get_compression(), Compression::Zstd { level: 3 });
    assert_eq!(d.config.get_log().get_max_message_bytes(), 4096);

    let e = store
        .create_topic("orders", TopicConfig::new(5))
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::TopicExists { topic } if topic == "orders"),
        "{e:?}"
    );
    // The refused create changed nothing.
    assert_eq!(store.describe_topic("orders").unwrap().partitions.len(), 3);

    let p = store.producer();
    for i in 0..5u32 {
        p.send(
            ProducerRecord::new("orders")
                .partition(i % 3)
                .value(format!("v{i}")),
        )
        .unwrap();
    }
    assert_eq!(ends(&store, "orders"), [2, 2, 1]);
    let d = store.describe_topic("orders").unwrap();
    assert!(d.partitions[0].size_bytes > 0);
    assert!(d.partitions[0].segments >= 1);
}

#[test]
fn data_and_metadata_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.create_topic("keep", TopicConfig::new(2)).unwrap();
        store
            .create_topic(
                "stamped",
                TopicConfig::new(1).timestamp_type(TimestampType::LogAppendTime),
            )
            .unwrap();
        store.create_topic("doomed", TopicConfig::new(2)).unwrap();
        let p = store.producer();
        for i in 0..4 {
            p.send(
                ProducerRecord::new("keep")
                    .partition(1)
                    .value(format!("k{i}")),
            )
            .unwrap();
            p.send(ProducerRecord::new("doomed").partition(0).value("x"))
                .unwrap();
        }
        store.delete_topic("doomed").unwrap();
        assert_eq!(store.list_topics(), ["keep", "stamped"]);
        store.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.list_topics(), ["keep", "stamped"]);
    let e = store.describe_topic("doomed").unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::UnknownTopic { .. }), "{e:?}");
    assert_eq!(ends(&store, "keep"), [0, 4]);
    assert_eq!(
        store
            .describe_topic("stamped")
            .unwrap()
            .config
            .get_log()
            .get_timestamp_type(),
        TimestampType::LogAppendTime
    );
    let got = read_all(&store, &TopicPartition::new("keep", 1));
    let want: Vec<(u64, Vec<u8>)> = (0..4u64)
        .map(|i| (i, format!("k{i}").into_bytes()))
        .collect();
    assert_eq!(got, want);
    // No directory of the deleted topic is left behind.
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("doomed"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn delete_topic() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("gone", TopicConfig::new(2)).unwrap();
    store.create_topic("stays", TopicConfig::new(1)).unwrap();
    let p = store.producer();
    p.send(ProducerRecord::new("gone").partition(0).value("a"))
        .unwrap();
    p.send(ProducerRecord::new("stays").value("b")).unwrap();

    store.delete_topic("gone").unwrap();
    assert_eq!(store.list_topics(), ["stays"]);
    for e in [
        store.describe_topic("gone").unwrap_err(),
        store.delete_topic("gone").unwrap_err(),
        store.add_partitions("gone", 4).unwrap_err(),
        p.send(ProducerRecord::new("gone").value("c")).unwrap_err(),
    ] {
        assert!(
            matches!(e.kind(), ErrorKind::UnknownTopic { topic } if topic == "gone"),
            "{e:?}"
        );
    }
    assert_eq!(ends(&store, "stays"), [1]);
}

#[test]
fn recreate_after_delete_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tp = TopicPartition::new("t", 0);
    store.create_topic("t", TopicConfig::new(2)).unwrap();
    let p = store.producer();
    for i in 0..5 {
        p.send(
            ProducerRecord::new("t")
                .partition(0)
                .value(format!("old{i}")),
        )
        .unwrap();
    }
    store.delete_topic("t").unwrap();
    store.create_topic("t", TopicConfig::new(1)).unwrap();
    let d = store.describe_topic("t").unwrap();
    assert_eq!(d.partitions.len(), 1, "the new config applies");
    assert_eq!(ends(&store, "t"), [0]);
    let m = p.send(ProducerRecord::new("t").value("new0")).unwrap();
    assert_eq!((m.partition, m.offset), (0, 0));
    assert_eq!(read_all(&store, &tp), [(0, b"new0".to_vec())]);
    drop(p);
    drop(store);
    // And after a reopen.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(ends(&store, "t"), [1]);
    assert_eq!(read_all(&store, &tp), [(0, b"new0".to_vec())]);
}

/// A group's committed offsets belong to the topic they were committed for: after the topic is
/// deleted and recreated, the group must read the new topic from its start (Kafka deletes a
/// deleted topic's offsets), not skip records at the old offsets.
#[test]
fn recreated_topic_does_not_inherit_committed_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tp = TopicPartition::new("t", 0);
    store.create_topic("t", TopicConfig::new(1)).unwrap();
    let p = store.producer();
    for i in 0..5 {
        p.send(ProducerRecord::new("t").value(format!("old{i}")))
            .unwrap();
    }
    {
        let mut c = store
            .consumer(ConsumerConfig::new("g").auto_offset_reset(OffsetReset::Earliest))
            .unwrap();
        c.assign(std::slice::from_ref(&tp)).unwrap();
        c.commit_offsets(&[(tp.clone(), OffsetAndMetadata::new(4))])
            .unwrap();
    }
    store.delete_topic("t").unwrap();
    store.create_topic("t", TopicConfig::new(1)).unwrap();
    for i in 0..3 {
        p.send(ProducerRecord::new("t").value(format!("new{i}")))
            .unwrap();
    }
    let mut c = store
        .consumer(
            ConsumerConfig::new("g")
                .auto_offset_reset(OffsetReset::Earliest)
                .enable_auto_commit(false),
        )
        .unwrap();
    c.assign(std::slice::from_ref(&tp)).unwrap();
    assert_eq!(
        c.committed(&tp).unwrap(),
        None,
        "offsets committed for the deleted topic must not apply to the new one"
    );
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while got.len() < 3 && Instant::now() < deadline {
        for r in c.poll(Duration::from_millis(50)).unwrap().iter() {
            got.push((r.offset(), r.value().unwrap().to_vec()));
        }
    }
    assert_eq!(
        got,
        [
            (0, b"new0".to_vec()),
            (1, b"new1".to_vec()),
            (2, b"new2".to_vec())
        ],
        "the group skipped records of the recreated topic"
    );
}

#[test]
fn add_partitions() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.create_topic("t", TopicConfig::new(2)).unwrap();
        let p = store.producer();
        p.send(ProducerRecord::new("t").partition(1).value("before"))
            .unwrap();
        let e = p
            .send(ProducerRecord::new("t").partition(3).value("x"))
            .unwrap_err();
        assert!(
            matches!(
                e.kind(),
                ErrorKind::UnknownPartition {
                    partition: 3,
                    partitions: 2,
                    ..
                }
            ),
            "{e:?}"
        );

        store.add_partitions("t", 5).unwrap();
        let d = store.describe_topic("t").unwrap();
        assert_eq!(d.config.get_partitions(), 5);
        assert_eq!(d.partitions.len(), 5);
        assert_eq!(ends(&store, "t"), [0, 1, 0, 0, 0], "old data is kept");
        let m = p
            .send(ProducerRecord::new("t").partition(3).value("new"))
            .unwrap();
        assert_eq!((m.partition, m.offset), (3, 0));
        // Keys now spread over five partitions.
        let m = p
            .send(ProducerRecord::new("t").key("k").value("v"))
            .unwrap();
        assert_eq!(m.partition, riverbed::partition_for_key(b"k", 5));

        for bad in [5, 4, 1] {
            let e = store.add_partitions("t", bad).unwrap_err();
            assert!(
                matches!(e.kind(), ErrorKind::InvalidArgument(_)),
                "add_partitions to {bad}: {e:?}"
            );
        }
        assert_eq!(store.describe_topic("t").unwrap().partitions.len(), 5);
        let e = store.add_partitions("nope", 9).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::UnknownTopic { .. }), "{e:?}");
        store.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let d = store.describe_topic("t").unwrap();
    assert_eq!(d.config.get_partitions(), 5);
    let mut want = vec![0, 1, 0, 1, 0];
    want[riverbed::partition_for_key(b"k", 5) as usize] += 1;
    assert_eq!(ends(&store, "t"), want);
    assert_eq!(
        read_all(&store, &TopicPartition::new("t", 3))[0],
        (0, b"new".to_vec())
    );
}

#[test]
fn subscribed_group_picks_up_added_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(1)).unwrap();
    let mut c = store
        .consumer(ConsumerConfig::new("g").auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    c.subscribe(&["t"]).unwrap();
    c.poll(Duration::from_millis(50)).unwrap();
    assert_eq!(c.assignment(), [TopicPartition::new("t", 0)]);
    store.add_partitions("t", 3).unwrap();
    store
        .producer()
        .send(ProducerRecord::new("t").partition(2).value("p2"))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut got = Vec::new();
    while got.is_empty() && Instant::now() < deadline {
        for r in c.poll(Duration::from_millis(50)).unwrap().iter() {
            got.push((r.partition(), r.offset()));
        }
    }
    assert_eq!(got, [(2, 0)]);
    assert_eq!(c.assignment().len(), 3);
}
