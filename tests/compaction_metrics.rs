//! The cleaner's progress in `Store::metrics`: totals of what compaction removed, the clean
//! offset, and no compaction figures for a topic that is not compacted.

use riverbed::{CleanerConfig, CleanupPolicy, ProducerRecord, Store, StoreConfig, TopicConfig};

#[test]
fn metrics_show_what_compaction_did() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::default().cleaner(CleanerConfig::default().enabled(false));
    let store = Store::open_with(dir.path(), config).unwrap();
    let table = TopicConfig::new(1)
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(2048)
        .max_message_bytes(1024);
    store.create_topic("table", table).unwrap();
    store.create_topic("plain", TopicConfig::new(1)).unwrap();
    let p = store.producer();
    for i in 0..200 {
        p.send(
            ProducerRecord::new("table")
                .key(format!("k{}", i % 5))
                .value(format!("v{i}")),
        )
        .unwrap();
    }
    p.send(ProducerRecord::new("plain").value("x")).unwrap();

    let before = store.metrics();
    let table_metrics = |m: &riverbed::Metrics| {
        m.partitions
            .iter()
            .find(|p| p.partition.topic == "table")
            .and_then(|p| p.log.compaction.clone())
            .expect("a compacted topic has compaction metrics")
    };
    assert_eq!(table_metrics(&before).totals.passes, 0);
    assert_eq!(table_metrics(&before).clean_offset, 0);
    assert!(table_metrics(&before).dirty_ratio > 0.0);

    let report = store.compact_now("table").unwrap();
    assert!(report.records_removed > 0);
    let after = store.metrics();
    let t = table_metrics(&after);
    assert_eq!(t.totals, report, "the totals are the one run's report");
    assert!(t.clean_offset > 0);
    let plain = after
        .partitions
        .iter()
        .find(|p| p.partition.topic == "plain")
        .unwrap();
    assert!(plain.log.compaction.is_none());
}
