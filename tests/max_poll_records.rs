//! `poll` returns at most `max_poll_records` records, takes them from every partition with data
//! in turn (none starves), and `count()` matches what iterating yields.

use std::collections::BTreeMap;
use std::time::Duration;

use riverbed::{ConsumerConfig, OffsetReset, ProducerRecord, Store, TopicConfig, TopicPartition};

#[test]
fn poll_is_bounded_and_fair() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(3)).unwrap();
    let p = store.producer();
    for part in 0..3 {
        // Large batches, so that one partition alone could fill every poll.
        p.send_batch((0..100).map(|i| {
            ProducerRecord::new("t")
                .partition(part)
                .value(format!("{i}"))
        }))
        .unwrap();
    }
    let mut c = store
        .consumer(
            ConsumerConfig::default()
                .group_id(None)
                .auto_offset_reset(OffsetReset::Earliest)
                .max_poll_records(7),
        )
        .unwrap();
    c.assign(
        &(0..3)
            .map(|p| TopicPartition::new("t", p))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let mut per_partition: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    let mut polls = 0;
    while per_partition.values().map(Vec::len).sum::<usize>() < 300 {
        polls += 1;
        assert!(polls < 200, "{per_partition:?}");
        let recs = c.poll(Duration::from_millis(100)).unwrap();
        let n = recs.iter().count();
        assert_eq!(recs.count(), n);
        assert!(n <= 7, "poll returned {n} records, max_poll_records is 7");
        assert!(n > 0, "poll returned nothing with 300 records waiting");
        for r in recs.iter() {
            per_partition
                .entry(r.partition())
                .or_default()
                .push(r.offset());
        }
        if polls == 3 {
            assert_eq!(
                per_partition.len(),
                3,
                "a partition starved in the first three polls: {per_partition:?}"
            );
        }
    }
    for (p, offs) in &per_partition {
        assert_eq!(offs, &(0..100).collect::<Vec<_>>(), "partition {p}");
    }
    assert!(c.poll(Duration::from_millis(10)).unwrap().is_empty());
}

/// A poll reads only as many batches as it can return records from, but records it must skip
/// (an aborted transaction, markers) do not make it come back short: a read_committed poll
/// behind a long aborted transaction still returns the committed records after it, in one poll.
#[test]
fn a_poll_reads_past_skipped_records_to_fill_itself() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(1)).unwrap();
    let txn = store.transactional_producer("aborter").unwrap();
    txn.begin().unwrap();
    for i in 0..60 {
        // One batch each: the aborted run spans far more offsets than a poll returns.
        txn.send_batch([ProducerRecord::new("t").value(format!("aborted {i}"))])
            .unwrap();
    }
    txn.abort().unwrap();
    let p = store.producer();
    for i in 0..5 {
        p.send(ProducerRecord::new("t").value(format!("kept {i}")))
            .unwrap();
    }
    p.flush().unwrap();
    let mut c = store
        .consumer(
            ConsumerConfig::default()
                .group_id(None)
                .auto_offset_reset(OffsetReset::Earliest)
                .isolation_level(riverbed::IsolationLevel::ReadCommitted)
                .max_poll_records(10),
        )
        .unwrap();
    c.assign(&[TopicPartition::new("t", 0)]).unwrap();
    // A zero timeout: a poll that came back empty would not be retried inside `poll`.
    let recs = c.poll(Duration::ZERO).unwrap();
    let values: Vec<String> = recs
        .iter()
        .map(|r| String::from_utf8(r.value().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(
        values,
        (0..5).map(|i| format!("kept {i}")).collect::<Vec<_>>()
    );
    assert_eq!(c.position(&TopicPartition::new("t", 0)).unwrap(), 66);
}
