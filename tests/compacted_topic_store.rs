//! Compacted topics through the `Store`: the policy and its settings survive a reopen (topics
//! metadata v2), `compact_now` compacts every partition and reports it, the background cleaner
//! compacts dirty partitions by itself and stops when the store goes, `min_compaction_lag_ms`
//! protects young records, and a compact-only log ignores retention.

use std::time::{Duration, Instant};

use riverbed::{
    BatchBuilder, CleanerConfig, CleanupPolicy, CompactionConfig, Compression, ErrorKind, Log,
    LogConfig, ProducerRecord, Store, StoreConfig, TopicConfig,
};

mod common;
use common::read_all;

fn table(partitions: u32) -> TopicConfig {
    let c = TopicConfig::new(partitions)
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(4096)
        .max_message_bytes(2048);
    let log = c
        .get_log()
        .clone()
        .min_cleanable_dirty_ratio(0.25)
        .delete_retention_ms(5);
    c.log(log)
}

fn latest(store: &Store, topic: &str, partitions: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = std::collections::BTreeMap::new();
    let mut c = store.consumer(Default::default()).unwrap();
    for p in 0..partitions {
        let tp = riverbed::TopicPartition::new(topic, p);
        c.assign(std::slice::from_ref(&tp)).unwrap();
        c.seek(&tp, 0).unwrap();
        loop {
            let recs = c.poll(Duration::from_millis(50)).unwrap();
            if recs.is_empty() {
                break;
            }
            for r in recs.iter() {
                out.insert(r.key().unwrap().to_vec(), r.value().map(<[u8]>::to_vec));
            }
        }
    }
    out.into_iter().filter_map(|(k, v)| Some((k, v?))).collect()
}

#[test]
fn compact_now_compacts_every_partition_and_settings_persist() {
    let dir = tempfile::tempdir().unwrap();
    let no_cleaner = StoreConfig::default().cleaner(CleanerConfig::default().enabled(false));
    let expected = {
        let store = Store::open_with(dir.path(), no_cleaner.clone()).unwrap();
        store.create_topic("table", table(2)).unwrap();
        store.create_topic("stream", TopicConfig::new(1)).unwrap();
        let p = store.producer();
        for i in 0..600u32 {
            let key = format!("user-{}", i % 20);
            let rec = ProducerRecord::new("table").key(key.clone());
            let rec = if i % 50 == 49 {
                rec
            } else {
                rec.value(format!("v{i}-{}", "z".repeat(30)))
            };
            p.send(rec).unwrap();
        }
        let e = store.compact_now("stream").unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidArgument(_)), "{e:?}");
        latest(&store, "table", 2)
    };
    let store = Store::open_with(dir.path(), no_cleaner).unwrap();
    let d = store.describe_topic("table").unwrap();
    assert_eq!(
        d.config.get_log().get_cleanup_policy(),
        CleanupPolicy::Compact
    );
    assert_eq!(d.config.get_log().get_min_cleanable_dirty_ratio(), 0.25);
    assert_eq!(d.config.get_log().get_delete_retention_ms(), 5);
    let before: u64 = d.partitions.iter().map(|p| p.size_bytes).sum();
    let report = store.compact_now("table").unwrap();
    assert!(report.records_removed > 400, "{report:?}");
    assert!(report.bytes_after < report.bytes_before, "{report:?}");
    let after: u64 = store
        .describe_topic("table")
        .unwrap()
        .partitions
        .iter()
        .map(|p| p.size_bytes)
        .sum();
    assert!(after < before, "{before} -> {after}");
    assert_eq!(latest(&store, "table", 2), expected);
    let ends: Vec<u64> = d.partitions.iter().map(|p| p.log_end_offset).collect();
    let ends_after: Vec<u64> = store
        .describe_topic("table")
        .unwrap()
        .partitions
        .iter()
        .map(|p| p.log_end_offset)
        .collect();
    assert_eq!(ends, ends_after, "offsets moved");
}

#[test]
fn background_cleaner_compacts_and_stops_with_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        StoreConfig::default().cleaner(CleanerConfig::default().backoff(Duration::from_millis(20)));
    let store = Store::open_with(dir.path(), config.clone()).unwrap();
    store.create_topic("table", table(1)).unwrap();
    let p = store.producer();
    for i in 0..2000u32 {
        p.send(
            ProducerRecord::new("table")
                .key(format!("k{}", i % 10))
                .value(format!("{i:0>60}")),
        )
        .unwrap();
    }
    let size = || store.describe_topic("table").unwrap().partitions[0].size_bytes;
    let full = 2000 * 60;
    let deadline = Instant::now() + Duration::from_secs(20);
    while size() > full / 4 {
        assert!(
            Instant::now() < deadline,
            "the cleaner did not run: {} bytes",
            size()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let expected = latest(&store, "table", 1);
    assert_eq!(expected.len(), 10);
    drop(p);
    drop(store);
    // The cleaner thread let go of the logs: the store opens again at once.
    let store = Store::open_with(dir.path(), config).unwrap();
    assert_eq!(latest(&store, "table", 1), expected);
}

fn log_config() -> LogConfig {
    LogConfig::default()
        .segment_bytes(1024)
        .segment_ms(None)
        .max_message_bytes(512)
        .retention_ms(Some(1))
        .cleanup_policy(CleanupPolicy::Compact)
        .min_compaction_lag_ms(3_600_000)
}

fn fill(log: &Log, now: i64) {
    for i in 0..100u32 {
        let mut b = BatchBuilder::new(Compression::None);
        b.append(
            now,
            Some(&[(i % 5) as u8]),
            Some(format!("{i:0>40}").as_bytes()),
            &[],
        );
        log.append(&b.build().unwrap()).unwrap();
    }
    log.roll().unwrap();
}

#[test]
fn min_compaction_lag_protects_young_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), log_config()).unwrap();
    let now = 1_700_000_000_000;
    fill(&log, now);
    let at = |t| CompactionConfig::default().now_ms(Some(t));
    let r = log.compact(&at(now + 3_599_999)).unwrap();
    assert_eq!(r.records_removed, 0, "{r:?}");
    assert_eq!(read_all(&log, 1 << 20).len(), 100);
    let r = log.compact(&at(now + 3_600_000)).unwrap();
    assert_eq!(r.records_removed, 95, "{r:?}");
    assert_eq!(read_all(&log, 1 << 20).len(), 5);
}

#[test]
fn compact_only_log_ignores_retention_and_compact_delete_applies_it() {
    for (policy, kept) in [
        (CleanupPolicy::Compact, true),
        (CleanupPolicy::CompactDelete, false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), log_config().cleanup_policy(policy)).unwrap();
        fill(&log, 1_000);
        // Rolls run retention too.
        let r = log.apply_retention().unwrap();
        assert_eq!(r.log_start_offset == 0, kept, "{policy:?}: {r:?}");
        assert_eq!(log.log_start_offset() == 0, kept, "{policy:?}");
    }
}

/// The cleaner's I/O limit (Kafka's `log.cleaner.io.max.bytes.per.second`): 32 MiB/s unless set,
/// `None` for unlimited, the same default as a `CompactionConfig`'s, and kept by the store's
/// configuration.
#[test]
fn cleaner_io_limit_round_trips() {
    use riverbed::{CleanerConfig, CompactionConfig, StoreConfig};
    let default = CleanerConfig::default();
    assert_eq!(default.get_io_max_bytes_per_second(), Some(32 << 20));
    assert_eq!(
        default.get_io_max_bytes_per_second(),
        CompactionConfig::default().get_io_max_bytes_per_second()
    );
    let none = CleanerConfig::default().io_max_bytes_per_second(None);
    assert_eq!(none.get_io_max_bytes_per_second(), None);
    let set = StoreConfig::default()
        .cleaner(CleanerConfig::default().io_max_bytes_per_second(Some(7 << 20)));
    assert_eq!(
        set.get_cleaner().get_io_max_bytes_per_second(),
        Some(7 << 20)
    );
}
