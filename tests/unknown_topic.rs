//! A topic that does not exist is an `UnknownTopic` error everywhere, and nothing is created —
//! unless the store has `auto_create_topics`, in which case a producer's first send creates it
//! with the store's default topic configuration.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use riverbed::{
    ConsumerConfig, ErrorKind, OffsetReset, ProducerRecord, Store, StoreConfig, TimestampType,
    TopicConfig, TopicPartition,
};

fn is_unknown(e: &riverbed::Error, name: &str) -> bool {
    matches!(e.kind(), ErrorKind::UnknownTopic { topic } if topic == name)
}

#[test]
fn unknown_topic_without_auto_create() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("known", TopicConfig::new(1)).unwrap();
    let p = store.producer();

    let e = p
        .send(ProducerRecord::new("missing").value("v"))
        .unwrap_err();
    assert!(is_unknown(&e, "missing"), "{e:?}");
    let e = p
        .send(ProducerRecord::new("missing").key("k").value("v"))
        .unwrap_err();
    assert!(is_unknown(&e, "missing"), "{e:?}");
    let e = p
        .send(ProducerRecord::new("missing").partition(0).value("v"))
        .unwrap_err();
    assert!(is_unknown(&e, "missing"), "{e:?}");

    // A batch naming an unknown topic writes nothing, not even its records for known topics.
    let e = p
        .send_batch([
            ProducerRecord::new("known").value("a"),
            ProducerRecord::new("missing").value("b"),
        ])
        .unwrap_err();
    assert!(is_unknown(&e, "missing"), "{e:?}");
    assert_eq!(
        store.describe_topic("known").unwrap().partitions[0].log_end_offset,
        0
    );

    let e = store.describe_topic("missing").unwrap_err();
    assert!(is_unknown(&e, "missing"), "{e:?}");
    let e = store.delete_topic("missing").unwrap_err();
    assert!(is_unknown(&e, "missing"), "{e:?}");
    let e = store.add_partitions("missing", 3).unwrap_err();
    assert!(is_unknown(&e, "missing"), "{e:?}");

    let mut c = store.consumer(ConsumerConfig::new("g")).unwrap();
    let e = c.assign(&[TopicPartition::new("missing", 0)]).unwrap_err();
    assert!(is_unknown(&e, "missing"), "{e:?}");
    let e = c
        .offsets_for_times(&[(TopicPartition::new("missing", 0), 0)])
        .unwrap_err();
    assert!(is_unknown(&e, "missing"), "{e:?}");
    let e = c
        .end_offsets(&[TopicPartition::new("missing", 0)])
        .unwrap_err();
    assert!(is_unknown(&e, "missing"), "{e:?}");
    let e = c.lag(&TopicPartition::new("missing", 0)).unwrap_err();
    assert!(is_unknown(&e, "missing"), "{e:?}");

    assert_eq!(store.list_topics(), ["known"]);
    drop((p, c, store));
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.list_topics(), ["known"]);
}

#[test]
fn subscribing_to_a_topic_before_it_exists() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut c = store
        .consumer(ConsumerConfig::new("g").auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    c.subscribe(&["later"]).unwrap();
    assert!(c.poll(Duration::from_millis(50)).unwrap().is_empty());
    assert!(c.assignment().is_empty());
    assert!(store.list_topics().is_empty(), "subscribe created a topic");

    store.create_topic("later", TopicConfig::new(2)).unwrap();
    store
        .producer()
        .send(ProducerRecord::new("later").partition(1).value("hello"))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut got = Vec::new();
    while got.is_empty() && Instant::now() < deadline {
        for r in c.poll(Duration::from_millis(50)).unwrap().iter() {
            got.push((r.partition(), r.offset(), r.value().unwrap().to_vec()));
        }
    }
    assert_eq!(got, [(1, 0, b"hello".to_vec())]);
    assert_eq!(c.assignment().len(), 2);
}

#[test]
fn auto_create_uses_the_default_topic_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::default()
        .auto_create_topics(true)
        .default_topic(TopicConfig::new(3).timestamp_type(TimestampType::LogAppendTime));
    {
        let store = Store::open_with(dir.path(), config.clone()).unwrap();
        let p = store.producer();
        let m = p
            .send(ProducerRecord::new("auto").partition(2).value("v"))
            .unwrap();
        assert_eq!((m.topic.as_str(), m.partition, m.offset), ("auto", 2, 0));
        let d = store.describe_topic("auto").unwrap();
        assert_eq!(d.config.get_partitions(), 3);
        assert_eq!(d.partitions.len(), 3);
        assert_eq!(
            d.config.get_log().get_timestamp_type(),
            TimestampType::LogAppendTime
        );

        // send_batch creates too.
        let ms = p
            .send_batch([
                ProducerRecord::new("auto2").key("k").value("a"),
                ProducerRecord::new("auto2").key("k").value("b"),
            ])
            .unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[0].partition, riverbed::partition_for_key(b"k", 3));
        assert_eq!(ms[1].offset, ms[0].offset + 1);

        // A partition beyond the default count is still an error, and the topic exists.
        let e = p
            .send(ProducerRecord::new("auto3").partition(7).value("v"))
            .unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::UnknownPartition { partition: 7, .. }),
            "{e:?}"
        );
        assert_eq!(store.list_topics(), ["auto", "auto2", "auto3"]);

        // Admin calls and consumers never auto-create.
        let e = store.describe_topic("other").unwrap_err();
        assert!(is_unknown(&e, "other"), "{e:?}");
        let mut c = store.consumer(ConsumerConfig::new("g")).unwrap();
        let e = c.assign(&[TopicPartition::new("other", 0)]).unwrap_err();
        assert!(is_unknown(&e, "other"), "{e:?}");
        assert_eq!(store.list_topics(), ["auto", "auto2", "auto3"]);
        store.flush().unwrap();
    }
    // Auto-created topics are real topics: they persist.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.list_topics(), ["auto", "auto2", "auto3"]);
    let d = store.describe_topic("auto").unwrap();
    assert_eq!(d.config.get_partitions(), 3);
    assert_eq!(d.partitions[2].log_end_offset, 1);
    // Reopened without auto-create, unknown topics are errors again.
    let e = store
        .producer()
        .send(ProducerRecord::new("auto4").value("v"))
        .unwrap_err();
    assert!(is_unknown(&e, "auto4"), "{e:?}");
}

#[test]
fn concurrent_first_sends_create_the_topic_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        StoreConfig::default()
            .auto_create_topics(true)
            .default_topic(TopicConfig::new(1)),
    )
    .unwrap();
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let p = store.producer();
            let b = Arc::clone(&barrier);
            std::thread::spawn(move || {
                b.wait();
                p.send(ProducerRecord::new("race").value(format!("{i}")))
                    .map(|m| m.offset)
            })
        })
        .collect();
    let mut offsets: Vec<u64> = handles
        .into_iter()
        .map(|h| h.join().unwrap().expect("auto-create race must not fail"))
        .collect();
    offsets.sort();
    assert_eq!(offsets, (0..threads as u64).collect::<Vec<_>>());
    assert_eq!(store.list_topics(), ["race"]);
}
