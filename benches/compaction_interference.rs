//! What a compaction pass costs the appends that run beside it (issue 16: appends during a pass
//! at least 0.8x of idle), with and without the cleaner's I/O throttle
//! (`CompactionConfig::io_max_bytes_per_second`, Kafka's `log.cleaner.io.max.bytes.per.second`).
//!
//! Group `compaction_interference` (`Throughput::Elements`: records appended), one run, three
//! rows on the same workload:
//! - `idle`: 100-record batches of 100-byte values with 8-byte keys appended to a compacted
//!   log (`FlushPolicy::Manual`, 4 MiB segments) that nobody compacts while it is measured;
//! - `during_pass_default`: the same appends while another thread compacts the same log in a
//!   loop with the default throttle (32 MiB/s);
//! - `during_pass_unthrottled`: the same with no throttle (Kafka's default), the 0.58x of
//!   issue 16.
//!
//! Each row's log starts with `RIVERBED_BENCH_COMPACT_MB` (default 64) MiB of keyed records in
//! sealed segments, all dirty, so the first pass has that much to read and rewrite, and the
//! appends roll a segment every 4 MiB, so later passes always find new dirty segments. Keys
//! are drawn from 100 000, so every pass rewrites most segments. The ratio the target is
//! written in is `idle`'s median over a `during_pass_*` median (the times are per iteration of
//! 200 batches).
//!
//! ```sh
//! cargo bench --bench compaction_interference -- --warm-up-time 2 --measurement-time 10
//! ```
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use riverbed::{
    BatchBuilder, CleanupPolicy, CompactionConfig, Compression, FlushPolicy, Log, LogConfig,
    RecordBatch,
};

mod common;

const KEYS: u64 = 100_000;
const RECORDS: u64 = 100;
const BATCHES: u64 = 200;

fn config() -> LogConfig {
    LogConfig::default()
        .segment_bytes(4 << 20)
        .segment_ms(None)
        .max_message_bytes(1 << 20)
        .flush(FlushPolicy::Manual)
        .retention_ms(None)
        .cleanup_policy(CleanupPolicy::Compact)
}

/// 100 records with 8-byte keys drawn from `KEYS` and 100-byte values.
fn keyed_batch(rng: &mut common::Rng, ts: i64) -> RecordBatch {
    let mut b = BatchBuilder::new(Compression::None);
    for _ in 0..RECORDS {
        let k = rng.below(KEYS);
        b.append(
            ts,
            Some(&k.to_le_bytes()),
            Some(&common::value(k, 100)),
            &[],
        );
    }
    b.build().expect("build batch")
}

fn interference(c: &mut Criterion) {
    let prefill = (common::env_usize("RIVERBED_BENCH_COMPACT_MB", 64) as u64) << 20;
    let mut group = c.benchmark_group("compaction_interference");
    group.throughput(Throughput::Elements(RECORDS * BATCHES));
    let rows: [(&str, Option<Option<u64>>); 3] = [
        ("idle", None),
        (
            "during_pass_default",
            Some(CompactionConfig::default().get_io_max_bytes_per_second()),
        ),
        ("during_pass_unthrottled", Some(None)),
    ];
    for (id, cleaner) in rows {
        let dir = common::temp_dir();
        let log = Arc::new(Log::open(dir.path(), config()).expect("open"));
        let mut rng = common::Rng::new(7);
        let ts = common::now_ms();
        while log.size_in_bytes() < prefill {
            log.append(&keyed_batch(&mut rng, ts)).expect("append");
        }
        log.roll().expect("roll");
        let stop = Arc::new(AtomicBool::new(false));
        let passes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let thread = cleaner.map(|rate| {
            let (log, stop, passes) = (Arc::clone(&log), Arc::clone(&stop), Arc::clone(&passes));
            std::thread::spawn(move || {
                let options = CompactionConfig::default().io_max_bytes_per_second(rate);
                while !stop.load(Ordering::Relaxed) {
                    let report = log.compact(&options).expect("compact");
                    passes.fetch_add(u64::from(report.passes), Ordering::Relaxed);
                    if report.passes == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            })
        });
        group.bench_function(BenchmarkId::from_parameter(id), |b| {
            b.iter_custom(|iters| {
                let batches: Vec<RecordBatch> =
                    (0..BATCHES).map(|_| keyed_batch(&mut rng, ts)).collect();
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    for batch in &batches {
                        log.append(batch).expect("append");
                    }
                    spent += start.elapsed();
                }
                spent
            });
        });
        stop.store(true, Ordering::Relaxed);
        if let Some(t) = thread {
            t.join().expect("cleaner thread");
            assert!(
                passes.load(Ordering::Relaxed) > 0,
                "{id}: no compaction pass ran while appends were measured"
            );
        }
    }
    group.finish();
}

criterion_group!(benches, interference);
criterion_main!(benches);
