//! The client API end to end: produce → poll latency, producer throughput by thread and
//! partition count, and consumer-group scan throughput.
//!
//! `cargo bench --bench produce_consume`. The latency benchmark also prints p50 / p99 / p99.9 of
//! the one-way produce → poll latency it observed (sorted samples), since criterion reports means
//! and medians of whole iterations only. Set `RIVERBED_BENCH_RECORDS` to scale the scan log.
#![allow(missing_docs)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use parking_lot::Mutex;
use riverbed::{ConsumerConfig, OffsetReset, ProducerRecord, Store, TopicConfig, TopicPartition};

fn value_100b(i: u64) -> Vec<u8> {
    let mut v = vec![b'x'; 100];
    v[..8].copy_from_slice(&i.to_le_bytes());
    v
}

/// One-way latency from just before `send` to the moment a consumer
/// blocked in `poll` sees the record.
fn latency(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    store
        .create_topic("lat", TopicConfig::new(1))
        .expect("topic");
    let base = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let last_latency = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(Mutex::new(Vec::<u64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (store, received, last, samples, stop) = (
            store.clone(),
            Arc::clone(&received),
            Arc::clone(&last_latency),
            Arc::clone(&samples),
            Arc::clone(&stop),
        );
        std::thread::spawn(move || {
            let mut c = store
                .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Latest))
                .expect("consumer");
            c.assign(&[TopicPartition::new("lat", 0)]).expect("assign");
            c.position(&TopicPartition::new("lat", 0))
                .expect("position");
            while !stop.load(Ordering::Relaxed) {
                let records = c.poll(Duration::from_millis(100)).expect("poll");
                let now = base.elapsed().as_nanos() as u64;
                for r in records.iter() {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&r.value().expect("value")[..8]);
                    let l = now - u64::from_le_bytes(b);
                    last.store(l, Ordering::Release);
                    samples.lock().push(l);
                    received.fetch_add(1, Ordering::Release);
                }
            }
        })
    };
    let producer = store.producer();
    let mut group = c.benchmark_group("produce_to_poll_latency");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_record_fsync_off", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let seen = received.load(Ordering::Acquire);
                let sent_at = base.elapsed().as_nanos() as u64;
                producer
                    .send(
                        ProducerRecord::new("lat")
                            .partition(0)
                            .value(value_100b(sent_at)),
                    )
                    .expect("send");
                while received.load(Ordering::Acquire) == seen {
                    std::hint::spin_loop();
                }
                total += Duration::from_nanos(last_latency.load(Ordering::Acquire));
                // Let the consumer go back to sleep in poll, so that every sample measures a
                // wake-up rather than a consumer that is still running.
                std::thread::sleep(Duration::from_micros(50));
            }
            total
        });
    });
    group.finish();
    stop.store(true, Ordering::Relaxed);
    consumer.join().expect("consumer thread");
    let mut s = std::mem::take(&mut *samples.lock());
    s.sort_unstable();
    if !s.is_empty() {
        let q = |p: f64| s[((s.len() as f64 * p) as usize).min(s.len() - 1)] as f64 / 1000.0;
        eprintln!(
            "produce->poll one-way latency over {} samples: p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us",
            s.len(),
            q(0.50),
            q(0.99),
            q(0.999)
        );
    }
}

fn produce_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("produce_send_100b");
    group.throughput(Throughput::Elements(1));
    for partitions in [1u32, 8] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let topic = TopicConfig::new(partitions)
            .retention_bytes(Some(256 << 20))
            .segment_bytes(64 << 20);
        store.create_topic("t", topic).expect("topic");
        for threads in [1u64, 2, 4] {
            let id = BenchmarkId::new(
                format!("{partitions}_partitions"),
                format!("{threads}_threads"),
            );
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let per = iters.div_ceil(threads);
                    let start = Instant::now();
                    std::thread::scope(|s| {
                        for t in 0..threads {
                            let p = store.producer();
                            s.spawn(move || {
                                let v = value_100b(t);
                                for i in 0..per {
                                    let r = ProducerRecord::new("t")
                                        .partition(((i + t) % u64::from(partitions)) as u32);
                                    p.send(r.value(v.clone())).expect("send");
                                }
                            });
                        }
                    });
                    start.elapsed()
                });
            });
        }
        store.apply_retention().expect("retention");
    }
    group.finish();
}

fn group_scan(c: &mut Criterion) {
    let records: u64 = std::env::var("RIVERBED_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    store
        .create_topic("scan", TopicConfig::new(8))
        .expect("topic");
    let p = store.producer();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..records {
        batch.push(
            ProducerRecord::new("scan")
                .partition((i % 8) as u32)
                .value(value_100b(i)),
        );
        if batch.len() == 1000 {
            p.send_batch(std::mem::take(&mut batch)).expect("send");
        }
    }
    p.send_batch(batch).expect("send");
    let mut group = c.benchmark_group("consumer_group_scan_100b");
    group.throughput(Throughput::Elements(records));
    group.sample_size(10);
    let mut n = 0;
    group.bench_function("one_member_8_partitions", |b| {
        b.iter(|| {
            n += 1;
            let config = ConsumerConfig::new(format!("g{n}"))
                .auto_offset_reset(OffsetReset::Earliest)
                .max_poll_records(10_000)
                .enable_auto_commit(false);
            let mut c = store.consumer(config).expect("consumer");
            c.subscribe(&["scan"]).expect("subscribe");
            let mut seen = 0u64;
            let mut checksum = 0u64;
            while seen < records {
                let polled = c.poll(Duration::from_secs(1)).expect("poll");
                for r in polled.iter() {
                    checksum = checksum.wrapping_add(u64::from(r.value().map_or(0, |v| v[0])));
                    seen += 1;
                }
            }
            checksum
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(4));
    targets = latency, produce_throughput, group_scan
}
criterion_main!(benches);
