//! Compaction of a compacted topic written by transactions: records of an aborted transaction
//! never supersede a committed value of their key (they are dropped instead), markers stay, and
//! nothing at or past the last stable offset is cleaned.

mod common;

use riverbed::{
    CleanerConfig, CleanupPolicy, IsolationLevel, ProducerRecord, Store, StoreConfig, TopicConfig,
    TopicPartition,
};

fn store(dir: &std::path::Path) -> Store {
    // Compaction only when the test asks.
    let config = StoreConfig::default().cleaner(CleanerConfig::default().enabled(false));
    Store::open_with(dir, config).unwrap()
}

fn compacted(store: &Store) {
    let config = TopicConfig::new(1)
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(1024)
        .max_message_bytes(512);
    store.create_topic("table", config).unwrap();
}

/// The latest value per key that a reader at `isolation` sees.
fn latest(store: &Store, isolation: IsolationLevel) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let tp = TopicPartition::new("table", 0);
    let seen = common::read_all_consumed(store, &[tp], isolation, 1 << 20);
    let mut map = std::collections::BTreeMap::new();
    for (_, k, v) in &seen[0] {
        map.insert(k.clone().unwrap_or_default(), v.clone());
    }
    map.into_iter().collect()
}

fn fill_segment(store: &Store, from: usize) {
    // Enough plain records with other keys to roll past the transactional ones.
    let p = store.producer();
    for i in from..from + 30 {
        p.send(
            ProducerRecord::new("table")
                .key(format!("filler-{i}"))
                .value(vec![b'f'; 40]),
        )
        .unwrap();
    }
}

#[test]
fn aborted_records_neither_supersede_nor_survive() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    compacted(&store);
    let txn = store.transactional_producer("writer").unwrap();
    txn.begin().unwrap();
    txn.send(ProducerRecord::new("table").key("k").value("committed"))
        .unwrap();
    txn.commit().unwrap();
    txn.begin().unwrap();
    txn.send(ProducerRecord::new("table").key("k").value("aborted"))
        .unwrap();
    txn.abort().unwrap();
    fill_segment(&store, 0);

    let before = latest(&store, IsolationLevel::ReadCommitted);
    assert!(before.contains(&(b"k".to_vec(), Some(b"committed".to_vec()))));
    let report = store.compact_now("table").unwrap();
    assert!(
        report.segments_cleaned > 0,
        "nothing was compacted: {report:?}"
    );

    // The committed value is still the latest committed one...
    assert_eq!(latest(&store, IsolationLevel::ReadCommitted), before);
    // ...and the aborted record is gone even for readers of uncommitted data.
    let uncommitted = latest(&store, IsolationLevel::ReadUncommitted);
    assert!(
        uncommitted.contains(&(b"k".to_vec(), Some(b"committed".to_vec()))),
        "{uncommitted:?}"
    );
    drop(txn);
    drop(store);
    // After a reopen (the producer state and .txnindex files reloaded) the same holds.
    let store = self::store(dir.path());
    assert_eq!(latest(&store, IsolationLevel::ReadCommitted), before);
}

#[test]
fn an_open_transaction_is_not_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    compacted(&store);
    let p = store.producer();
    p.send(ProducerRecord::new("table").key("k").value("old"))
        .unwrap();
    let txn = store.transactional_producer("writer").unwrap();
    txn.begin().unwrap();
    txn.send(ProducerRecord::new("table").key("k").value("pending"))
        .unwrap();
    fill_segment(&store, 0);
    store.compact_now("table").unwrap();
    // Whether "pending" commits is undecided: "old" must survive until it is.
    assert!(latest(&store, IsolationLevel::ReadUncommitted)
        .iter()
        .any(|(k, _)| k == b"k"));
    let tp = TopicPartition::new("table", 0);
    let all = common::read_all_consumed(&store, &[tp], IsolationLevel::ReadUncommitted, 1 << 20);
    assert!(
        all[0]
            .iter()
            .any(|(_, _, v)| v.as_deref() == Some(&b"old"[..])),
        "a record below an open transaction's value was compacted away"
    );
    txn.abort().unwrap();
    fill_segment(&store, 100);
    store.compact_now("table").unwrap();
    assert!(latest(&store, IsolationLevel::ReadCommitted)
        .contains(&(b"k".to_vec(), Some(b"old".to_vec()))));
}
