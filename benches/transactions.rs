//! Transactions: throughput of transactional sends against the same records sent without a
//! transaction (in the same run), and a `read_committed` scan against `read_uncommitted` on the
//! same log.
//!
//! `cargo bench --bench transactions`
//! - `txn_send/<policy>/{transaction,plain}/<n>`: `n` 100-byte records sent one `send` at a time
//!   to one partition. `transaction` is begin + n sends + commit; `plain` is n sends + `flush`
//!   (the same durability: a commit makes its records durable). `<policy>` is the topic's flush
//!   policy: `manual` (default) or `every_append` (each send fsynced; plain then needs no flush).
//! - `scan/{read_committed,read_uncommitted}`: a consumer polling through a log of
//!   `RIVERBED_BENCH_RECORDS` (default 1 M) records written in committed transactions of 1000.
#![allow(missing_docs)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use riverbed::{
    ConsumerConfig, FlushPolicy, IsolationLevel, LogConfig, OffsetReset, ProducerRecord, Store,
    TopicConfig, TopicPartition,
};

mod common;

fn record(i: u64) -> ProducerRecord {
    ProducerRecord::new("t")
        .partition(0)
        .value(common::value(i, 100))
}

fn txn_send(c: &mut Criterion) {
    for (name, flush) in [
        ("manual", FlushPolicy::Manual),
        ("every_append", FlushPolicy::EveryAppend),
    ] {
        let dir = common::temp_dir();
        let store = Store::open(dir.path()).expect("open");
        let config = TopicConfig::new(1).log(LogConfig::default().flush(flush));
        store.create_topic("t", config).expect("topic");
        let txn = store.transactional_producer("bench").expect("producer");
        let plain = store.producer();
        let mut g = c.benchmark_group(format!("txn_send/{name}"));
        for n in common::env_list("RIVERBED_BENCH_TXN_SIZES", &[10, 100, 1000]) {
            let n = n as u64;
            g.throughput(Throughput::Elements(n));
            let mut i = 0u64;
            g.bench_with_input(BenchmarkId::new("transaction", n), &n, |b, &n| {
                b.iter(|| {
                    txn.begin().expect("begin");
                    for _ in 0..n {
                        txn.send(record(i)).expect("send");
                        i += 1;
                    }
                    txn.commit().expect("commit");
                })
            });
            g.bench_with_input(BenchmarkId::new("plain", n), &n, |b, &n| {
                b.iter(|| {
                    for _ in 0..n {
                        plain.send(record(i)).expect("send");
                        i += 1;
                    }
                    plain.flush().expect("flush");
                })
            });
        }
        g.finish();
    }
}

fn scan(c: &mut Criterion) {
    let records = common::env_usize("RIVERBED_BENCH_RECORDS", 1_000_000) as u64;
    let dir = common::temp_dir();
    let store = Store::open(dir.path()).expect("open");
    store.create_topic("t", TopicConfig::new(1)).expect("topic");
    let txn = store.transactional_producer("writer").expect("producer");
    let mut i = 0;
    while i < records {
        txn.begin().expect("begin");
        let n = 1000.min(records - i);
        txn.send_batch((i..i + n).map(record)).expect("send");
        txn.commit().expect("commit");
        i += n;
    }
    let tp = TopicPartition::new("t", 0);
    let mut g = c.benchmark_group("scan");
    g.throughput(Throughput::Elements(records));
    g.sample_size(10);
    for (name, level) in [
        ("read_uncommitted", IsolationLevel::ReadUncommitted),
        ("read_committed", IsolationLevel::ReadCommitted),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut consumer = store
                    .consumer(
                        ConsumerConfig::default()
                            .auto_offset_reset(OffsetReset::Earliest)
                            .isolation_level(level)
                            .max_poll_records(10_000),
                    )
                    .expect("consumer");
                consumer.assign(std::slice::from_ref(&tp)).expect("assign");
                let mut seen = 0u64;
                while seen < records {
                    let batch = consumer.poll(Duration::from_secs(1)).expect("poll");
                    for r in batch.iter() {
                        criterion::black_box(r.value());
                        seen += 1;
                    }
                }
                seen
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(2));
    targets = txn_send, scan
}
criterion_main!(benches);
