//! Log compaction: how fast the cleaner gets through a dirty log, and what a running cleaner
//! costs producers.
//!
//! Groups:
//! - `cleaner_{10k,1M}_keys` (`Throughput::Bytes` of dirty log): `Log::compact` of a log of
//!   `RIVERBED_BENCH_COMPACT_MB` (default 64) MiB of 100-byte-value records whose keys are drawn
//!   from 10 000 or 1 000 000 keys, in 16 MiB segments, all sealed and dirty. Each sample compacts
//!   a fresh copy of the same log (the copy is not timed). Baseline `file_copy`: the same segment
//!   files read and written with plain `File` calls and fsynced, as the cleaner fsyncs what it
//!   writes: the cost of moving the bytes at all.
//! - `append_during_cleaning` (`Throughput::Bytes` appended): 100-record batches appended to a
//!   compacted log, `idle` vs `cleaning` (another thread compacts the same log in a loop, with
//!   the default I/O throttle, and the log rolls every 4 MiB, so the cleaner always has work).
//!   `benches/compaction_interference.rs` compares throttled and unthrottled passes.
//!
//! ```sh
//! cargo bench --bench compaction -- --warm-up-time 2 --measurement-time 10
//! RIVERBED_BENCH_DIR=/dev/shm cargo bench --bench compaction   # without the disk
//! ```
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use riverbed::{
    BatchBuilder, CleanupPolicy, CompactionConfig, Compression, FlushPolicy, Log, LogConfig,
    RecordBatch,
};

mod common;

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig::default()
        .segment_bytes(segment_bytes)
        .segment_ms(None)
        .max_message_bytes(1 << 20)
        .flush(FlushPolicy::Manual)
        .retention_ms(None)
        .cleanup_policy(CleanupPolicy::Compact)
}

/// A batch of 100 records with keys drawn from `keys`, 100-byte values.
fn keyed_batch(rng: &mut common::Rng, keys: u64, ts: i64) -> RecordBatch {
    let mut b = BatchBuilder::new(Compression::None);
    for _ in 0..100 {
        let k = rng.below(keys);
        b.append(
            ts,
            Some(format!("key-{k:08}").as_bytes()),
            Some(&common::value(k, 100)),
            &[],
        );
    }
    b.build().expect("build batch")
}

/// A closed compacted log of about `bytes` of dirty records, all in sealed segments.
fn dirty_log(keys: u64, bytes: u64) -> tempfile::TempDir {
    let dir = common::temp_dir();
    let log = Log::open(dir.path(), config(16 << 20)).expect("open");
    let mut rng = common::Rng::new(keys);
    let ts = common::now_ms();
    while log.size_in_bytes() < bytes {
        log.append(&keyed_batch(&mut rng, keys, ts))
            .expect("append");
    }
    log.roll().expect("roll");
    log.close().expect("close");
    dir
}

fn copy_into(from: &Path, to: &Path, sync: bool) -> u64 {
    let mut total = 0;
    let mut buf = vec![0u8; 1 << 20];
    for e in std::fs::read_dir(from).expect("list") {
        let e = e.expect("entry");
        if !e.file_type().expect("type").is_file() {
            continue;
        }
        let mut src = std::fs::File::open(e.path()).expect("open");
        let mut dst = std::fs::File::create(to.join(e.file_name())).expect("create");
        loop {
            let n = src.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            dst.write_all(&buf[..n]).expect("write");
            total += n as u64;
        }
        if sync {
            dst.sync_all().expect("fsync");
        }
    }
    total
}

/// Bytes of the sealed data files (what the cleaner reads).
fn dirty_bytes(dir: &Path) -> u64 {
    let log = Log::open(dir, config(16 << 20)).expect("open");
    let bytes = log.size_in_bytes();
    log.close().expect("close");
    bytes
}

fn cleaner_groups(c: &mut Criterion) {
    let mb = common::env_usize("RIVERBED_BENCH_COMPACT_MB", 64) as u64;
    for (name, keys) in [("10k", 10_000u64), ("1M", 1_000_000)] {
        let template = dirty_log(keys, mb << 20);
        let bytes = dirty_bytes(template.path());
        let mut group = c.benchmark_group(format!("cleaner_{name}_keys"));
        group.sample_size(10);
        group.throughput(Throughput::Bytes(bytes));
        group.bench_function(BenchmarkId::from_parameter("file_copy"), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let to = common::temp_dir();
                    let start = Instant::now();
                    copy_into(template.path(), to.path(), true);
                    spent += start.elapsed();
                }
                spent
            });
        });
        group.bench_function(BenchmarkId::from_parameter("compact"), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let to = common::temp_dir();
                    copy_into(template.path(), to.path(), false);
                    let log = Log::open(to.path(), config(16 << 20)).expect("open");
                    let start = Instant::now();
                    // The cleaner's own speed: no I/O throttle.
                    let report = log
                        .compact(&CompactionConfig::default().io_max_bytes_per_second(None))
                        .expect("compact");
                    spent += start.elapsed();
                    assert!(report.dirty_bytes > 0, "{report:?}");
                    log.close().expect("close");
                }
                spent
            });
        });
        group.finish();
    }
}

fn append_groups(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_during_cleaning");
    let batch_bytes = keyed_batch(&mut common::Rng::new(1), 10_000, 0).len() as u64;
    const BATCHES: u64 = 200;
    group.throughput(Throughput::Bytes(batch_bytes * BATCHES));
    for cleaning in [false, true] {
        let dir = common::temp_dir();
        let log = Arc::new(Log::open(dir.path(), config(4 << 20)).expect("open"));
        let stop = Arc::new(AtomicBool::new(false));
        let cleaner = cleaning.then(|| {
            let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    log.compact(&CompactionConfig::default()).expect("compact");
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        });
        let mut rng = common::Rng::new(7);
        let ts = common::now_ms();
        let id = if cleaning { "cleaning" } else { "idle" };
        group.bench_function(BenchmarkId::from_parameter(id), |b| {
            b.iter_custom(|iters| {
                let batches: Vec<RecordBatch> = (0..BATCHES)
                    .map(|_| keyed_batch(&mut rng, 10_000, ts))
                    .collect();
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    for batch in &batches {
                        log.append(batch).expect("append");
                    }
                    spent += start.elapsed();
                    if !cleaning {
                        // Untimed: keeps the idle log (and the disk it uses) as small as the
                        // other one.
                        log.compact(&CompactionConfig::default().io_max_bytes_per_second(None))
                            .expect("compact");
                    }
                }
                spent
            });
        });
        stop.store(true, Ordering::Relaxed);
        if let Some(t) = cleaner {
            t.join().expect("cleaner thread");
        }
    }
    group.finish();
}

criterion_group!(benches, cleaner_groups, append_groups);
criterion_main!(benches);
