//! A compaction swap replaces segment files under readers: batches a reader already holds
//! (`BatchView`s into the old mappings) keep reading the old bytes, byte for byte, after the
//! segments were rewritten, merged and their files renamed over or deleted; and appends and reads
//! go on while a compaction runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use riverbed::{BatchBuilder, CleanupPolicy, CompactionConfig, Compression, Log, LogConfig};

mod common;
use common::read_all;

const T0: i64 = 1_700_000_000_000;

fn config() -> LogConfig {
    LogConfig::default()
        .segment_bytes(4096)
        .segment_ms(None)
        .max_message_bytes(2048)
        .retention_ms(None)
        .cleanup_policy(CleanupPolicy::Compact)
}

fn append(log: &Log, key: u64, tag: &str) -> u64 {
    let mut b = BatchBuilder::new(Compression::None);
    let value = format!("{tag}-{key}-{}", "p".repeat(40));
    b.append(
        T0,
        Some(format!("key-{}", key % 10).as_bytes()),
        Some(value.as_bytes()),
        &[],
    );
    log.append(&b.build().unwrap()).unwrap().base_offset
}

#[test]
fn views_held_across_a_compaction_read_the_old_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    for i in 0..400 {
        append(&log, i, "v");
    }
    log.roll().unwrap();
    let views = log.read(0, usize::MAX).unwrap();
    assert_eq!(views.len(), 400);
    let copies: Vec<Vec<u8>> = views.iter().map(|v| v.as_bytes().to_vec()).collect();
    let segments_before = log.segment_count();
    let report = log.compact(&CompactionConfig::default()).unwrap();
    assert!(report.records_removed >= 390, "{report:?}");
    // Groups are made by size before cleaning: the small segments left are merged by the next run.
    log.compact(&CompactionConfig::default()).unwrap();
    assert!(
        log.segment_count() < segments_before,
        "merged: {segments_before} -> {}",
        log.segment_count()
    );
    for (v, c) in views.iter().zip(&copies) {
        assert_eq!(v.as_bytes(), &c[..]);
        let records = v.records().unwrap();
        let r = records.iter().next().unwrap().unwrap();
        assert_eq!(r.offset(), v.base_offset());
    }
    // The old files are gone from the directory; the new ones hold only the last of each key.
    assert_eq!(read_all(&log, 1 << 20).len(), 10);
    drop(views);
    log.close().unwrap();
}

#[test]
fn appends_and_reads_go_on_during_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), config()).unwrap());
    for i in 0..2000 {
        append(&log, i, "old");
    }
    log.roll().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (log, done) = (Arc::clone(&log), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut n = 0u64;
            while (!done.load(Ordering::Acquire) && n < 3000) || n < 100 {
                append(&log, n, "new");
                n += 1;
            }
            n
        })
    };
    let reader = {
        let (log, done) = (Arc::clone(&log), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut reads = 0;
            while !done.load(Ordering::Acquire) {
                let all = read_all(&log, 8192);
                assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
                reads += 1;
            }
            reads
        })
    };
    for _ in 0..3 {
        log.compact(&CompactionConfig::default()).unwrap();
        log.roll().unwrap();
    }
    done.store(true, Ordering::Release);
    let appended = writer.join().unwrap();
    assert!(reader.join().unwrap() > 0);
    log.roll().unwrap();
    log.compact(&CompactionConfig::default()).unwrap();
    let all = read_all(&log, 1 << 20);
    assert_eq!(all.len(), 10, "one record per key");
    assert_eq!(log.high_watermark(), 2000 + appended);
    for r in &all {
        assert!(String::from_utf8_lossy(r.2.as_ref().unwrap()).starts_with("new-"));
    }
}
