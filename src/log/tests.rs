use super::*;
use crate::record::{BatchBuilder, Compression};

fn batch(ts: i64, n: usize, tag: &str) -> RecordBatch {
    let mut b = BatchBuilder::new(Compression::None);
    for i in 0..n {
        let v = format!("{tag}-{i}");
        b.append(
            ts + i as i64,
            Some(tag.as_bytes()),
            Some(v.as_bytes()),
            &[("h", Some(b"x"))],
        );
    }
    b.build().unwrap()
}

fn values(log: &Log, from: u64) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let batches = log.read(next, 4096).unwrap();
        if batches.is_empty() {
            return out;
        }
        for b in &batches {
            for r in b.records().unwrap().iter() {
                let r = r.unwrap();
                if r.offset() >= next {
                    out.push((
                        r.offset(),
                        String::from_utf8(r.value().unwrap().to_vec()).unwrap(),
                    ));
                }
            }
            next = b.last_offset() + 1;
        }
    }
}

fn small() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        max_message_bytes: 2048,
        retention_ms: None,
        ..LogConfig::default()
    }
}

#[test]
fn append_read_roll_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    let mut expected = Vec::new();
    for i in 0..200 {
        let info = log.append(&batch(1000 + i, 3, &format!("b{i}"))).unwrap();
        assert_eq!(info.base_offset, (i * 3) as u64);
        for j in 0..3 {
            expected.push((info.base_offset + j, format!("b{i}-{j}")));
        }
    }
    assert!(log.segment_count() > 3, "rolled: {}", log.segment_count());
    assert_eq!(values(&log, 0), expected);
    assert_eq!(values(&log, 301), expected[301..].to_vec());
    log.close().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    assert_eq!(
        log.recovery_report().scanned_bytes,
        0,
        "{:?}",
        log.recovery_report()
    );
    assert_eq!(log.high_watermark(), 600);
    assert_eq!(values(&log, 0), expected);
    let info = log.append(&batch(5000, 1, "after")).unwrap();
    assert_eq!(info.base_offset, 600);
    assert_eq!(values(&log, 599).len(), 2);
}

#[test]
fn reopen_without_clean_close_scans_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    for i in 0..50 {
        log.append(&batch(i, 2, "x")).unwrap();
    }
    // Simulate a crash: leak the handle so no close runs, then break the lock by dropping the
    // lock through a forget of the whole log is impossible; instead copy the files.
    let copy = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
    }
    let log2 = Log::open(copy.path(), small()).unwrap();
    eprintln!(
        "{:?} {:?}",
        log2.recovery_report(),
        log2.segment_base_offsets()
    );
    for e in std::fs::read_dir(copy.path()).unwrap() {
        let e = e.unwrap();
        eprintln!("{:?} {}", e.file_name(), e.metadata().unwrap().len());
    }
    assert_eq!(log2.high_watermark(), 100);
    assert!(log2.recovery_report().scanned_bytes > 0);
    assert_eq!(values(&log2, 0).len(), 100);
    drop(log);
}

#[test]
fn out_of_range_and_time_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    for i in 0..100 {
        log.append(&batch(i * 10, 1, "t")).unwrap();
    }
    let e = log.read(101, 100).unwrap_err();
    assert!(matches!(
        e.kind(),
        ErrorKind::OffsetOutOfRange {
            partition: None,
            requested: 101,
            log_start: 0,
            log_end: 100
        }
    ));
    assert!(log.read(100, 100).unwrap().is_empty());
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 0)));
    assert_eq!(log.offset_for_timestamp(555).unwrap(), Some((56, 560)));
    assert_eq!(log.offset_for_timestamp(990).unwrap(), Some((99, 990)));
    assert_eq!(log.offset_for_timestamp(991).unwrap(), None);
}

#[test]
fn retention_by_size_advances_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention_bytes: Some(8192),
        ..small()
    };
    let log = Log::open(dir.path(), cfg).unwrap();
    for i in 0..300 {
        log.append(&batch(i, 3, "r")).unwrap();
    }
    let r = log.apply_retention().unwrap();
    assert!(log.size_in_bytes() >= 8192);
    let start = log.log_start_offset();
    assert!(start > 0, "{r:?}");
    assert!(matches!(
        log.read(start - 1, 10).unwrap_err().kind(),
        ErrorKind::OffsetOutOfRange { .. }
    ));
    assert_eq!(values(&log, start).len() as u64, 900 - start);
}

#[test]
fn views_survive_retention() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention_ms: Some(60_000),
        ..small()
    };
    let log = Log::open(dir.path(), cfg).unwrap();
    let now = now_ms();
    for _ in 0..100 {
        log.append(&batch(now, 3, "v")).unwrap();
    }
    let held = log.read(0, 100).unwrap();
    assert_eq!(
        log.apply_retention_at(now + 1000).unwrap().deleted_segments,
        Vec::<u64>::new()
    );
    log.apply_retention_at(now + 600_000).unwrap();
    assert!(log.log_start_offset() > 0);
    let r = held[0].records().unwrap();
    assert_eq!(r.iter().next().unwrap().unwrap().value(), Some(&b"v-0"[..]));
}

#[test]
fn second_open_is_locked_and_oversized_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    assert!(matches!(
        Log::open(dir.path(), small()).unwrap_err().kind(),
        ErrorKind::Locked { .. }
    ));
    let mut b = BatchBuilder::new(Compression::None);
    b.append(0, None, Some(&[7u8; 3000]), &[]);
    let e = log.append(&b.build().unwrap()).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::RecordTooLarge { .. }));
    assert_eq!(log.high_watermark(), 0);
}

#[test]
fn zstd_batches_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    let mut b = BatchBuilder::new(Compression::Zstd { level: 3 });
    for i in 0..20 {
        b.append(
            i,
            Some(b"key"),
            Some(b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            &[],
        );
    }
    let batch = b.build().unwrap();
    assert!(batch.as_batch().is_compressed());
    log.append(&batch).unwrap();
    let got = log.read(0, 10).unwrap();
    assert_eq!(got[0].records().unwrap().iter().count(), 20);
}

/// A roll does not wait for `maint`, which a compaction swap holds through its fsyncs (issue
/// 16: appends during a compaction pass): the append that rolls a `compact,delete` log skips
/// the retention pass a roll makes when `maint` is taken, and the next roll (or
/// `apply_retention`) makes it.
#[test]
fn a_roll_does_not_wait_for_a_compaction_swap() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        cleanup_policy: crate::CleanupPolicy::CompactDelete,
        ..small()
    };
    let log = Arc::new(Log::open(dir.path(), config).unwrap());
    let swap = log.inner.maint.lock();
    let (tx, rx) = std::sync::mpsc::channel();
    let appender = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut i = 0;
            while log.segment_count() < 3 {
                log.append(&batch(1000 + i, 3, &format!("b{i}"))).unwrap();
                i += 1;
            }
            tx.send(()).unwrap();
        })
    };
    let rolled = rx.recv_timeout(Duration::from_secs(30));
    drop(swap);
    appender.join().unwrap();
    assert!(rolled.is_ok(), "the append that rolls waited for the swap");
}

/// A sync does not wait for the seal of a segment whose batches it already made durable (under
/// `EveryAppend`, the segment an append rolls away from), and does wait for one that holds
/// batches not yet synced (FORMAT.md 6, rule 4b relies on it). A seal that never ends stands in
/// for a slow one.
#[test]
fn a_sync_waits_only_for_seals_of_segments_holding_unsynced_batches() {
    let stuck = |inner: &Inner, next: u64| {
        let job = Arc::new(SealJob {
            base: 0,
            next,
            segment: Mutex::new(None),
            done: Mutex::new(None),
            ended: Condvar::new(),
        });
        inner.seals.lock().push(Arc::clone(&job));
        job
    };
    let release = |inner: &Inner, job: &Arc<SealJob>| {
        inner.seals.lock().retain(|j| !Arc::ptr_eq(j, job));
        job.finish(true);
    };

    // EveryAppend: offset 0 is durable once its append returned; a pending seal of a segment
    // ending there does not hold the next append's fsync.
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(
        Log::open(
            dir.path(),
            LogConfig {
                flush: FlushPolicy::EveryAppend,
                ..small()
            },
        )
        .unwrap(),
    );
    log.append(&batch(1000, 1, "a")).unwrap();
    let job = stuck(&log.inner, 1);
    let (tx, rx) = std::sync::mpsc::channel();
    let appender = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            let r = log.append(&batch(1001, 1, "b"));
            tx.send(r.is_ok()).unwrap();
        })
    };
    let acked = rx.recv_timeout(Duration::from_secs(30));
    release(&log.inner, &job);
    appender.join().unwrap();
    assert_eq!(
        acked,
        Ok(true),
        "the append waited for the seal of a synced segment"
    );
    assert_eq!(log.durable_offset(), 2);

    // Manual: offset 0 is not synced; a flush must wait for the seal that makes it durable.
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(
        Log::open(
            dir.path(),
            LogConfig {
                flush: FlushPolicy::Manual,
                ..small()
            },
        )
        .unwrap(),
    );
    log.append(&batch(1000, 1, "a")).unwrap();
    let job = stuck(&log.inner, 1);
    let (tx, rx) = std::sync::mpsc::channel();
    let flusher = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            let r = log.flush();
            tx.send(r.is_ok()).unwrap();
        })
    };
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "the flush did not wait for the seal of a segment holding unsynced batches"
    );
    release(&log.inner, &job);
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)), Ok(true));
    flusher.join().unwrap();
}

/// Only the batches a read returns are remembered as checked: not the batch the index walk
/// passes on its way to `from`, nor the one after the budget ran out, nor any batch of a
/// reopened log (`segment/verified.rs`).
#[test]
fn reads_remember_exactly_the_batches_they_checked() {
    let dir = tempfile::tempdir().unwrap();
    // One index entry per 1 KiB: a walk from an entry passes batches before the target.
    let config = LogConfig {
        index_interval_bytes: 1024,
        ..small()
    };
    let log = Log::open(dir.path(), config.clone()).unwrap();
    let mut placed = Vec::new(); // (base offset, position)
    let mut pos = FILE_HEADER_LEN;
    for i in 0..12 {
        let b = batch(1000 + i, 2, "k");
        let info = log.append(&b).unwrap();
        placed.push((info.base_offset, pos));
        pos += b.len();
    }
    assert_eq!(log.segment_count(), 1);
    let seg = Arc::clone(&log.inner.segments.read()[0]);
    assert!(placed.iter().all(|&(_, p)| !seg.is_verified(p)));
    // Batches 5 and 6 (offsets 10..14), about 2 batches of budget: the walk starts at an earlier
    // index entry, and batch 7 does not fit.
    let len = batch(0, 2, "k").len();
    let got = log.read(placed[5].0 + 1, 2 * len).unwrap();
    let got: Vec<u64> = got.iter().map(BatchView::base_offset).collect();
    assert_eq!(got, vec![placed[5].0, placed[6].0]);
    let verified: Vec<usize> = (0..placed.len())
        .filter(|&i| seg.is_verified(placed[i].1))
        .collect();
    assert_eq!(verified, vec![5, 6]);
    // A second read of them, and one more batch.
    let got = log.read(placed[6].0, 2 * len).unwrap();
    assert_eq!(got.len(), 2);
    let verified: Vec<usize> = (0..placed.len())
        .filter(|&i| seg.is_verified(placed[i].1))
        .collect();
    assert_eq!(verified, vec![5, 6, 7]);
    drop(seg);
    log.close().unwrap();
    let log = Log::open(dir.path(), config).unwrap();
    let seg = Arc::clone(&log.inner.segments.read()[0]);
    assert!(
        placed.iter().all(|&(_, p)| !seg.is_verified(p)),
        "a reopened log checks every batch again"
    );
}
