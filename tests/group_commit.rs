//! Four threads append to one log with `FlushPolicy::EveryAppend`, so their fsyncs are shared
//! (group commit). Whatever the sharing, each append must get its own offsets, read back exactly
//! as appended, and be durable when it returns. Timing is for the benches, not for here.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::thread;

use riverbed::{
    AppendInfo, BatchBuilder, Compression, FlushPolicy, Log, LogConfig, RecordBatch, TimestampType,
};

const THREADS: u64 = 4;
const APPENDS_PER_THREAD: u64 = 250;
const T0: i64 = 1_700_000_000_000;

fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `seq`-th batch of thread `thread`: 1..=20 records whose keys name the batch and the record.
fn batch_for(thread: u64, seq: u64) -> RecordBatch {
    let h = mix(thread << 32 | seq);
    let count = 1 + h % 20;
    let mut b = BatchBuilder::new(if h.is_multiple_of(7) {
        Compression::Zstd { level: 1 }
    } else {
        Compression::None
    });
    for i in 0..count {
        let key = format!("t{thread}-s{seq}-r{i}");
        let value = vec![(h >> 8) as u8 ^ i as u8; ((h >> 16) % 300) as usize + i as usize];
        b.append(
            T0 + (seq * 100 + i) as i64,
            Some(key.as_bytes()),
            Some(&value),
            &[],
        );
    }
    b.build().unwrap()
}

fn config(timestamp_type: TimestampType) -> LogConfig {
    LogConfig::default()
        .flush(FlushPolicy::EveryAppend)
        // Small segments: rolls happen between one thread's append and its shared fsync.
        .segment_bytes(64 << 10)
        .segment_ms(None)
        .max_message_bytes(32 << 10)
        .index_interval_bytes(1024)
        .recovery_checkpoint_bytes(16 << 10)
        .retention_ms(None)
        .timestamp_type(timestamp_type)
}

/// Reads the batch at `info.base_offset` and checks it is `batch` with the offsets of `info`.
fn check_read_back(log: &Log, info: &AppendInfo, batch: &RecordBatch, what: &str) {
    let views = log
        .read(info.base_offset, 1)
        .unwrap_or_else(|e| panic!("{what}: read({}) : {e}", info.base_offset));
    let v = views
        .first()
        .unwrap_or_else(|| panic!("{what}: nothing read back"));
    assert_eq!(
        (v.base_offset(), v.last_offset()),
        (info.base_offset, info.last_offset),
        "{what}: the batch read back has other offsets than the append returned"
    );
    assert_eq!(v.max_timestamp(), info.timestamp, "{what}: timestamp");
    let stored = v.as_bytes();
    assert_eq!(stored.len(), batch.len(), "{what}: length");
    assert_eq!(
        &stored[0..8],
        &common::stamped_base_offset(info.base_offset),
        "{what}"
    );
    if v.as_batch().timestamp_type() == TimestampType::CreateTime {
        assert!(
            stored[8..] == batch.as_bytes()[8..],
            "{what}: stored bytes differ from the appended batch"
        );
    }
    let appended: Vec<_> = batch
        .as_batch()
        .records()
        .unwrap()
        .iter()
        .map(|r| {
            let r = r.unwrap();
            (r.key().map(<[u8]>::to_vec), r.value().map(<[u8]>::to_vec))
        })
        .collect();
    let records = v.records().unwrap();
    let mut n = 0;
    for (i, r) in records.iter().enumerate() {
        let r = r.unwrap();
        assert_eq!(r.offset(), info.base_offset + i as u64, "{what}");
        assert_eq!(
            (r.key().map(<[u8]>::to_vec), r.value().map(<[u8]>::to_vec)),
            appended[i],
            "{what}: record {i}"
        );
        if v.as_batch().timestamp_type() == TimestampType::LogAppendTime {
            assert_eq!(r.timestamp(), info.timestamp, "{what}: log-append time");
        }
        n += 1;
    }
    assert_eq!(n, appended.len(), "{what}: record count");
}

fn run(timestamp_type: TimestampType) {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), config(timestamp_type)).unwrap());
    let barrier = Arc::new(Barrier::new(THREADS as usize));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (log, barrier) = (Arc::clone(&log), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                let mut infos = Vec::new();
                let mut prev: Option<AppendInfo> = None;
                for seq in 0..APPENDS_PER_THREAD {
                    let batch = batch_for(t, seq);
                    let info = log.append(&batch).unwrap();
                    let what = format!("thread {t} batch {seq} ({info:?})");
                    assert_eq!(
                        info.last_offset - info.base_offset + 1,
                        u64::from(batch.record_count()),
                        "{what}"
                    );
                    // Durable when append returns, whoever did the fsync.
                    let durable = log.durable_offset();
                    assert!(
                        durable > info.last_offset,
                        "{what}: durable_offset {durable} after append returned"
                    );
                    assert!(log.high_watermark() > info.last_offset, "{what}");
                    if let Some(p) = prev {
                        assert!(
                            info.base_offset > p.last_offset,
                            "{what}: a thread's appends go forward"
                        );
                    }
                    check_read_back(&log, &info, &batch, &what);
                    prev = Some(info);
                    infos.push((seq, info));
                }
                infos
            })
        })
        .collect();
    let mut all: Vec<(u64, u64, AppendInfo)> = Vec::new();
    for (t, h) in handles.into_iter().enumerate() {
        for (seq, info) in h.join().expect("appending thread") {
            all.push((t as u64, seq, info));
        }
    }

    // Offsets are unique and contiguous: the batches tile 0..next_offset.
    all.sort_by_key(|(_, _, i)| i.base_offset);
    let mut next = 0;
    for (t, seq, info) in &all {
        assert_eq!(
            info.base_offset, next,
            "thread {t} batch {seq}: offsets must be unique and contiguous"
        );
        next = info.last_offset + 1;
    }
    assert_eq!(all.len() as u64, THREADS * APPENDS_PER_THREAD);
    assert_eq!(log.high_watermark(), next);
    assert_eq!(log.durable_offset(), next);
    assert!(
        log.segment_count() > 3,
        "rolls happened: {}",
        log.segment_count()
    );

    // A full read finds exactly these batches, in this order.
    let by_base: HashMap<u64, (u64, u64, AppendInfo)> = all
        .iter()
        .map(|&(t, s, i)| (i.base_offset, (t, s, i)))
        .collect();
    let check_all = |log: &Log, what: &str| {
        let mut at = 0;
        let mut seen = 0;
        while at < log.high_watermark() {
            for v in log.read(at, 256 << 10).unwrap() {
                let (t, seq, info) = by_base[&v.base_offset()];
                check_read_back(log, &info, &batch_for(t, seq), what);
                at = v.last_offset() + 1;
                seen += 1;
            }
        }
        assert_eq!(seen, all.len(), "{what}");
    };
    check_all(&log, "after the appends");

    // Close and reopen: nothing to recover, the same log.
    Arc::try_unwrap(log).unwrap().close().unwrap();
    let log = Log::open(dir.path(), config(timestamp_type)).unwrap();
    assert_eq!(log.recovery_report().scanned_bytes, 0);
    assert_eq!(log.high_watermark(), next);
    check_all(&log, "after reopening");
    log.close().unwrap();
}

#[test]
fn concurrent_every_append_offsets_are_unique_contiguous_and_durable() {
    run(TimestampType::CreateTime);
}

/// With log-append time each batch is restamped (and its CRC recomputed) under concurrency; the
/// timestamp an append returns is the one stored.
#[test]
fn concurrent_every_append_with_log_append_time() {
    run(TimestampType::LogAppendTime);
}

/// A failed fsync under group commit: every append whose round failed gets an error (the
/// leader's `Io`, or `Poisoned` for the followers that waited on it), every later append fails,
/// and no append is acknowledged before its data is synced — each acked batch ends below the
/// durable offset, which the failed round did not move, and is there after reopening. The
/// injected failure is the `n`th fsync of the log's files (`segment.fsync`), so it falls on a
/// round with followers in one run and on a lone leader in another; every `n` must hold.
#[cfg(feature = "failpoints")]
#[test]
fn failed_group_fsync_fails_every_waiter_and_acks_only_synced_data() {
    use riverbed::failpoint::{self, sites};
    use riverbed::ErrorKind;

    for nth in [2u64, 5, 11, 23, 40] {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(Log::open(dir.path(), config(TimestampType::CreateTime)).unwrap());
        failpoint::arm(sites::SEGMENT_FSYNC, dir.path(), nth, failpoint::EIO);
        let barrier = Arc::new(Barrier::new(THREADS as usize));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (log, barrier) = (Arc::clone(&log), Arc::clone(&barrier));
                thread::spawn(move || {
                    barrier.wait();
                    let mut acked = Vec::new();
                    for seq in 0..APPENDS_PER_THREAD {
                        let batch = batch_for(t, seq);
                        match log.append(&batch) {
                            Ok(info) => {
                                // Acked only once synced, whoever ran the fsync.
                                let durable = log.durable_offset();
                                assert!(
                                    durable > info.last_offset,
                                    "nth {nth}, thread {t} batch {seq}: acked {info:?} with \
                                     durable_offset {durable}"
                                );
                                acked.push((seq, info));
                            }
                            Err(e) => {
                                assert!(
                                    matches!(
                                        e.kind(),
                                        ErrorKind::Io { .. } | ErrorKind::Poisoned { .. }
                                    ),
                                    "nth {nth}, thread {t} batch {seq}: {e}"
                                );
                                // Poisoned: every later append fails too.
                                let again = log.append(&batch_for(t, seq + 1)).unwrap_err();
                                assert!(
                                    matches!(again.kind(), ErrorKind::Poisoned { .. }),
                                    "nth {nth}, thread {t}: after a failed fsync: {again}"
                                );
                                return (acked, Some(log.durable_offset()));
                            }
                        }
                    }
                    (acked, None)
                })
            })
            .collect();
        let mut acked: Vec<(u64, u64, AppendInfo)> = Vec::new();
        // The durable offset each thread saw when its append failed.
        let mut failed = Vec::new();
        for (t, h) in handles.into_iter().enumerate() {
            let (a, f) = h.join().expect("appending thread");
            failed.extend(f);
            acked.extend(a.into_iter().map(|(seq, info)| (t as u64, seq, info)));
        }
        assert!(
            failpoint::fired(sites::SEGMENT_FSYNC, dir.path()),
            "nth {nth}"
        );
        failpoint::disarm(dir.path());
        // The log is poisoned: a thread that was not done appending stopped with an error.
        assert!(!failed.is_empty(), "nth {nth}: nobody saw the failed fsync");
        let durable = log.durable_offset();
        // fsync is never retried: nothing became durable after the failure.
        assert!(
            failed.iter().all(|&d| d == durable),
            "nth {nth}: durable offset {durable} at the end, {failed:?} when appends failed"
        );
        for (t, seq, info) in &acked {
            assert!(
                info.last_offset < durable,
                "nth {nth}, thread {t} batch {seq}: acked {info:?} past the durable offset \
                 {durable} the failed round left"
            );
        }
        // Reopen (recovery decides what reached the disk): every acked batch is there.
        drop(Arc::try_unwrap(log).expect("the only handle"));
        let log = Log::open(dir.path(), config(TimestampType::CreateTime)).unwrap();
        for (t, seq, info) in &acked {
            check_read_back(
                &log,
                info,
                &batch_for(*t, *seq),
                &format!("nth {nth}, thread {t} batch {seq} after reopening"),
            );
        }
        log.close().unwrap();
    }
}
