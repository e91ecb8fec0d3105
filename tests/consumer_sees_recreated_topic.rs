//! A consumer keeps the open partitions of its assignment between polls (they are looked up
//! again only when the store's topics change). A topic deleted and created again under the same
//! name is a new log: a consumer that keeps polling it must read the new topic's records, never
//! the old topic's (whose files stay mapped while anything holds the old log). Kafka's consumer
//! likewise drops its cached metadata for a topic that was deleted and recreated (its topic id
//! changes, KIP-516) and fetches from the new one.

use std::time::Duration;

use riverbed::{ConsumerConfig, OffsetReset, ProducerRecord, Store, TopicConfig, TopicPartition};

fn produce(store: &Store, values: &[&str]) {
    let producer = store.producer();
    for v in values {
        producer
            .send(
                ProducerRecord::new("t")
                    .partition(0)
                    .key(b"k".to_vec())
                    .value(v.as_bytes().to_vec()),
            )
            .unwrap();
    }
    producer.flush().unwrap();
}

fn values_from(consumer: &mut riverbed::Consumer, tp: &TopicPartition, from: u64) -> Vec<String> {
    consumer.seek(tp, from).unwrap();
    let mut out = Vec::new();
    loop {
        let polled = consumer.poll(Duration::ZERO).unwrap();
        if polled.is_empty() {
            return out;
        }
        out.extend(
            polled
                .iter()
                .map(|r| String::from_utf8(r.value().unwrap().to_vec()).unwrap()),
        );
    }
}

#[test]
fn polls_after_a_delete_and_create_read_the_new_topic() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(1)).unwrap();
    produce(&store, &["old-0", "old-1", "old-2"]);
    let tp = TopicPartition::new("t", 0);
    let mut consumer = store
        .consumer(
            ConsumerConfig::default()
                .enable_auto_commit(false)
                .auto_offset_reset(OffsetReset::Earliest)
                .max_poll_records(2),
        )
        .unwrap();
    consumer.assign(std::slice::from_ref(&tp)).unwrap();
    assert_eq!(
        values_from(&mut consumer, &tp, 0),
        ["old-0", "old-1", "old-2"]
    );

    store.delete_topic("t").unwrap();
    // The deleted topic's partition yields nothing (and is not an error) until it is back.
    assert!(consumer.poll(Duration::ZERO).unwrap().is_empty());
    store.create_topic("t", TopicConfig::new(1)).unwrap();
    produce(&store, &["new-0", "new-1", "new-2", "new-3"]);
    assert_eq!(
        values_from(&mut consumer, &tp, 0),
        ["new-0", "new-1", "new-2", "new-3"]
    );

    // The same, without a poll between the delete and the create.
    store.delete_topic("t").unwrap();
    store.create_topic("t", TopicConfig::new(1)).unwrap();
    produce(&store, &["newer-0"]);
    assert_eq!(values_from(&mut consumer, &tp, 0), ["newer-0"]);
}
