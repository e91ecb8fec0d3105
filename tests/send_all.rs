//! `Producer::send_all` and `TransactionalProducer::send_all`: the metadata-free batch send
//! must write exactly what `send_batch` writes (same partitions, order, keys, values,
//! timestamps), validate the same way, and take part in transactions like `send_batch`.

use std::sync::Arc;

use proptest::prelude::*;
use riverbed::{ErrorKind, IsolationLevel, ProducerRecord, Store, TopicConfig, TopicPartition};

mod common;

const PARTITIONS: u32 = 3;

fn tps(topic: &str) -> Vec<TopicPartition> {
    (0..PARTITIONS)
        .map(|p| TopicPartition::new(topic, p))
        .collect()
}

/// `(partition, key, value, timestamp)` inputs; a partition of `None` lets the producer route.
type Input = (Option<u32>, Option<Vec<u8>>, Option<Vec<u8>>, i64);

/// `input` as a record, starting from `r` (which names the topic).
fn build(r: ProducerRecord, (partition, key, value, ts): &Input) -> ProducerRecord {
    let mut r = r.timestamp(*ts);
    if let Some(p) = partition {
        r = r.partition(*p);
    }
    if let Some(k) = key {
        r = r.key(k.clone());
    }
    if let Some(v) = value {
        r = r.value(v.clone());
    }
    r
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// The model: `send_batch` into one topic. `send_all` into a twin topic (with shared topic
    /// names) must leave every partition with the same records at the same offsets.
    #[test]
    fn send_all_writes_what_send_batch_writes(
        inputs in prop::collection::vec(
            (
                prop::option::of(0..PARTITIONS),
                prop::option::of(prop::collection::vec(any::<u8>(), 0..6)),
                prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
                0i64..1_000_000,
            ),
            0..120,
        ),
        chunk in 1usize..50,
    ) {
        // Keyless records stick to a partition by size, which depends on history: give both
        // topics the same history by routing keyless records to explicit partitions.
        let inputs: Vec<Input> = inputs
            .into_iter()
            .enumerate()
            .map(|(i, (p, k, v, ts))| match (&p, &k) {
                (None, None) => (Some(i as u32 % PARTITIONS), k, v, ts),
                _ => (p, k, v, ts),
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create_topic("model", TopicConfig::new(PARTITIONS)).unwrap();
        store.create_topic("quiet", TopicConfig::new(PARTITIONS)).unwrap();
        let producer = store.producer();
        let quiet: Arc<str> = Arc::from("quiet");
        for part in inputs.chunks(chunk) {
            producer
                .send_batch(part.iter().map(|i| build(ProducerRecord::new("model"), i)))
                .unwrap();
            producer
                .send_all(
                    part.iter()
                        .map(|i| build(ProducerRecord::with_shared_topic(Arc::clone(&quiet)), i)),
                )
                .unwrap();
        }
        let model = common::read_all_consumed(&store, &tps("model"), IsolationLevel::ReadUncommitted, 1 << 20);
        let quiet = common::read_all_consumed(&store, &tps("quiet"), IsolationLevel::ReadUncommitted, 1 << 20);
        prop_assert_eq!(model.iter().map(Vec::len).sum::<usize>(), inputs.len());
        prop_assert_eq!(model, quiet);
    }
}

#[test]
fn send_all_validates_everything_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic("t", TopicConfig::new(PARTITIONS))
        .unwrap();
    let producer = store.producer();
    let err = producer
        .send_all([
            ProducerRecord::new("t").partition(0).value("ok"),
            ProducerRecord::new("t")
                .partition(PARTITIONS)
                .value("no such partition"),
        ])
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::UnknownPartition { .. }),
        "{err}"
    );
    let seen =
        common::read_all_consumed(&store, &tps("t"), IsolationLevel::ReadUncommitted, 1 << 20);
    assert!(
        seen.iter().all(Vec::is_empty),
        "nothing was written: {seen:?}"
    );
}

#[test]
fn transactional_send_all_is_visible_only_when_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic("t", TopicConfig::new(PARTITIONS))
        .unwrap();
    let txn = store.transactional_producer("sender").unwrap();
    let batch = |tag: &str| {
        (0..10u32)
            .map(|i| {
                ProducerRecord::new("t")
                    .key(i.to_le_bytes())
                    .value(format!("{tag}{i}"))
            })
            .collect::<Vec<_>>()
    };
    txn.begin().unwrap();
    txn.send_all(batch("aborted-")).unwrap();
    txn.abort().unwrap();
    txn.begin().unwrap();
    txn.send_all(batch("committed-")).unwrap();
    txn.commit().unwrap();
    let committed =
        common::read_all_consumed(&store, &tps("t"), IsolationLevel::ReadCommitted, 1 << 20);
    let mut values: Vec<String> = committed
        .iter()
        .flatten()
        .map(|(_, _, v)| String::from_utf8(v.clone().unwrap()).unwrap())
        .collect();
    values.sort();
    let mut expected: Vec<String> = (0..10).map(|i| format!("committed-{i}")).collect();
    expected.sort();
    assert_eq!(values, expected);
    // Outside a transaction it is refused, like send_batch.
    let err = txn.send_all(batch("late-")).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::InvalidTransactionState { .. }),
        "{err}"
    );
}
