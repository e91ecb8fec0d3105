//! Topic names that begin with `__` are legal, as in Kafka (`Topic.validate` in
//! clients/src/main/java/org/apache/kafka/common/internals/Topic.java checks only the length,
//! the characters and `.`/`..`); only the exact names of the store's internal logs,
//! `__consumer_offsets` and `__transaction_state` (Kafka's `Topic.INTERNAL_TOPICS` holds the
//! same two), are reserved, because their partition directories are the store's own.
//!
//! Before issue 13 (item 5) every name starting with `__` was refused.

use std::time::Duration;

use riverbed::{
    validate_topic_name, ConsumerConfig, ErrorKind, OffsetReset, ProducerRecord, Store,
    TopicConfig, TopicPartition,
};

fn consume_all(store: &Store, topic: &str, group: &str, want: usize) -> Vec<String> {
    let mut c = store
        .consumer(ConsumerConfig::new(group).auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while out.len() < want {
        assert!(std::time::Instant::now() < deadline, "timed out on {topic}");
        for r in c.poll(Duration::from_millis(100)).unwrap().iter() {
            out.push(String::from_utf8(r.value().unwrap().to_vec()).unwrap());
        }
    }
    c.commit().unwrap();
    out.sort();
    out
}

#[test]
fn double_underscore_topics_work_end_to_end_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "__my_topic",
        "__",
        "__consumer_offsets_v2",
        "__transaction_state.x",
    ];
    let want: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
    {
        let store = Store::open(dir.path()).unwrap();
        for name in names {
            validate_topic_name(name).unwrap_or_else(|e| panic!("{name:?} refused: {e}"));
            store
                .create_topic(name, TopicConfig::new(2))
                .unwrap_or_else(|e| panic!("create {name:?}: {e}"));
            for v in &want {
                store
                    .producer()
                    .send(ProducerRecord::new(name).key(v.as_str()).value(v.as_str()))
                    .unwrap();
            }
            assert_eq!(consume_all(&store, name, "g", want.len()), want, "{name}");
        }
        store.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let mut listed = names.to_vec();
    listed.sort();
    assert_eq!(store.list_topics(), listed);
    for name in names {
        // A new group reads everything again; the old one committed its offsets.
        assert_eq!(consume_all(&store, name, "g2", want.len()), want, "{name}");
        let committed = store
            .consumer(ConsumerConfig::new("g"))
            .unwrap()
            .committed(&TopicPartition::new(name, 0))
            .unwrap();
        assert!(
            committed.is_some(),
            "{name}: the committed offsets were lost"
        );
    }
    store.delete_topic("__my_topic").unwrap();
    store
        .create_topic("__my_topic", TopicConfig::new(1))
        .unwrap();
    assert_eq!(
        store.describe_topic("__my_topic").unwrap().partitions[0].log_end_offset,
        0
    );
}

#[test]
fn the_internal_log_names_are_reserved_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(1)).unwrap();
    store
        .producer()
        .send(ProducerRecord::new("t").value("v"))
        .unwrap();
    let mut c = store.consumer(ConsumerConfig::new("g")).unwrap();
    c.assign(&[TopicPartition::new("t", 0)]).unwrap();
    c.seek(&TopicPartition::new("t", 0), 1).unwrap();
    c.commit().unwrap();
    drop(c);
    let before = std::fs::read_dir(dir.path()).unwrap().count();
    for name in ["__consumer_offsets", "__transaction_state"] {
        let e = validate_topic_name(name).unwrap_err();
        let ErrorKind::InvalidArgument(msg) = e.kind() else {
            panic!("{e:?}")
        };
        assert!(msg.contains(name) && msg.contains("reserved"), "{msg}");
        let e = store.create_topic(name, TopicConfig::new(1)).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidArgument(_)), "{e:?}");
        let e = store
            .producer()
            .send(ProducerRecord::new(name).value("v"))
            .unwrap_err();
        assert!(
            matches!(
                e.kind(),
                ErrorKind::InvalidArgument(_) | ErrorKind::UnknownTopic { .. }
            ),
            "{e:?}"
        );
    }
    assert_eq!(store.list_topics(), ["t"]);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), before);
    drop(store);
    // The internal logs were not touched: the committed offset is still there.
    let store = Store::open(dir.path()).unwrap();
    let c = store.consumer(ConsumerConfig::new("g")).unwrap();
    assert_eq!(
        c.committed(&TopicPartition::new("t", 0))
            .unwrap()
            .map(|o| o.offset),
        Some(1)
    );
}
