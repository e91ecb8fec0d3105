//! The read-only view of a partition log and a store while a writer appends in the same
//! directory (in this process, which is the same as another: the view takes no lock).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use riverbed::inspect::{self, PartitionView, StoreView};
use riverbed::{BatchBuilder, Compression, Log, LogConfig, ProducerRecord, Store, TopicConfig};

fn batch(first: u64, n: u64) -> riverbed::RecordBatch {
    let mut b = BatchBuilder::new(Compression::None);
    for i in first..first + n {
        b.append(
            1_700_000_000_000 + i as i64,
            None,
            Some(format!("v{i}").as_bytes()),
            &[],
        );
    }
    b.build().expect("build")
}

#[test]
fn views_see_a_growing_prefix_while_a_writer_appends_and_rolls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig::default()
        .segment_bytes(16 << 10)
        .index_interval_bytes(256)
        .max_message_bytes(8 << 10)
        .retention_ms(None);
    let log = Arc::new(Log::open(dir.path(), config).expect("open"));
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (log, done) = (Arc::clone(&log), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut next = 0;
            for _ in 0..400 {
                log.append(&batch(next, 5)).expect("append");
                next += 5;
            }
            done.store(true, Ordering::Release);
        })
    };
    let mut last_end = 0;
    let mut views = 0;
    loop {
        let finished = done.load(Ordering::Acquire);
        let view = PartitionView::open(dir.path()).expect("view");
        let end = view.log_end_offset();
        assert!(
            end >= last_end,
            "the end went back from {last_end} to {end}"
        );
        assert_eq!(end % 5, 0, "a view ended inside a batch");
        // Everything up to the end reads back, in order, with the right values; from the middle
        // too (through the offset index).
        for from in [0, end / 2] {
            let mut reader = view.reader(from).expect("reader");
            let mut expect = from;
            loop {
                let b = match reader.next_batch() {
                    Ok(Some(b)) => b,
                    Ok(None) => break,
                    Err(e) => {
                        let lens: Vec<(u64, u64)> = view
                            .segments()
                            .iter()
                            .map(|s| {
                                (
                                    s.size_bytes,
                                    std::fs::metadata(&s.path).map_or(0, |m| m.len()),
                                )
                            })
                            .collect();
                        panic!("{e:?} {:?} {lens:?}", view.segments());
                    }
                };
                for r in b.records().expect("records").iter() {
                    let r = r.expect("record");
                    if r.offset() < from {
                        continue;
                    }
                    assert_eq!(r.offset(), expect);
                    assert_eq!(r.value(), Some(format!("v{expect}").as_bytes()));
                    expect += 1;
                }
            }
            assert_eq!(expect, end);
        }
        last_end = end;
        views += 1;
        if finished {
            break;
        }
    }
    writer.join().expect("writer");
    assert_eq!(last_end, 2000);
    assert!(views >= 1);
    assert!(
        PartitionView::open(dir.path())
            .expect("view")
            .segments()
            .len()
            >= 2
    );
    // Timestamps: record i has timestamp base + i.
    let view = PartitionView::open(dir.path()).expect("view");
    assert_eq!(
        view.offset_for_timestamp(1_700_000_000_000 + 1234)
            .expect("time"),
        Some((1234, 1_700_000_000_000 + 1234))
    );
    assert_eq!(view.offset_for_timestamp(i64::MAX).expect("time"), None);
    // The last rolled segment may still be sealing in the background (cut and synced), and
    // `verify` reports a segment before the last that still ends in its preallocated zeros as
    // damage (a known false alarm on a live directory: see the issue 16 note). A flush waits for
    // the seals, so the check below sees the writer's finished files.
    log.flush().expect("flush");
    let report = inspect::verify(dir.path(), &mut |_| {}).expect("verify");
    assert!(report.is_sound(), "{:?}", report.problems);
    assert_eq!(report.batches, 400);
}

#[test]
fn store_view_matches_the_store_and_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    store
        .create_topic("a", TopicConfig::new(3))
        .expect("create");
    let p = store.producer();
    for i in 0..30u32 {
        p.send(ProducerRecord::new("a").partition(i % 3).value("x"))
            .expect("send");
    }
    p.flush().expect("flush");
    let view = StoreView::open(dir.path()).expect("view");
    let (lib, ro) = (
        store.describe_topic("a").expect("describe"),
        view.describe_topic("a").expect("describe"),
    );
    assert_eq!(lib.partitions, ro.partitions);
    let m = store.metrics();
    assert_eq!(m.partitions.len(), 3);
    assert!(m
        .partitions
        .iter()
        .all(|p| p.log.log_end_offset == 10 && p.log.appended_records == 10));
    assert!(m.fsync.count > 0, "flush synced");
    assert!(m.fsync.latency.percentile(0.99) > std::time::Duration::ZERO);
}
