//! The read-only inspection layer behind the `riverbed` command, each with a same-run baseline:
//!
//! - `verify`: `inspect::verify` over a store, against reading the same data files with plain
//!   `File` reads in 4 MiB chunks and CRC-32 over them (the floor for checking every byte).
//! - `consume`: the read-only reader (`PartitionView`, `pread`) printing each value and a newline
//!   to a sink (what `consume -e -f '%s\n' > /dev/null` does), against the library's own
//!   memory-mapped `Log::read` decoding the same records.
//! - `describe`: `StoreView::describe_topic` (finds each active segment's end without scanning
//!   the log), against `std::fs::metadata` of every segment file (the least a description needs).
//!
//! `RIVERBED_BENCH_CLI_MB` sets the size of the log (default 256 MiB of 100-byte records).
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use riverbed::inspect::{self, StoreView};
use riverbed::{Compression, Log, LogConfig, Store, TopicConfig};

const VALUE_LEN: usize = 100;
const BATCH_RECORDS: usize = 100;

struct Fixture {
    _tmp: tempfile::TempDir,
    store: PathBuf,
    records: u64,
    bytes: u64,
}

fn fixture() -> Fixture {
    let mb = common::env_usize("RIVERBED_BENCH_CLI_MB", 256) as u64;
    let tmp = common::temp_dir();
    let store_dir = tmp.path().join("store");
    let store = Store::open(&store_dir).expect("open store");
    store
        .create_topic("t", TopicConfig::new(1).segment_bytes(256 << 20))
        .expect("create topic");
    drop(store);
    // Write through the partition log directly: faster to build than record by record.
    let log = Log::open(
        store_dir.join("t-0"),
        LogConfig::default().segment_bytes(256 << 20),
    )
    .expect("open log");
    let batch = common::batch(BATCH_RECORDS, VALUE_LEN, Compression::None);
    while log.size_in_bytes() < mb << 20 {
        log.append(&batch).expect("append");
    }
    let records = log.high_watermark();
    let bytes = log.size_in_bytes();
    log.close().expect("close");
    Fixture {
        _tmp: tmp,
        store: store_dir,
        records,
        bytes,
    }
}

fn data_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    let log_dir = f.store.join("t-0");

    let mut g = c.benchmark_group("verify");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(f.bytes));
    g.bench_function("baseline_read_and_crc", |b| {
        let mut buf = vec![0u8; 4 << 20];
        b.iter(|| {
            let mut crc = 0u32;
            for p in data_files(&log_dir) {
                let mut file = File::open(&p).expect("open");
                loop {
                    let n = file.read(&mut buf).expect("read");
                    if n == 0 {
                        break;
                    }
                    crc ^= crc32fast::hash(&buf[..n]);
                }
            }
            black_box(crc)
        })
    });
    g.bench_function("inspect_verify", |b| {
        b.iter(|| {
            let r = inspect::verify(&f.store, &mut |_| {}).expect("verify");
            assert!(r.is_sound());
            black_box(r.batches)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("consume_to_sink");
    g.sample_size(10);
    g.throughput(Throughput::Elements(f.records));
    g.bench_function("baseline_log_read_mmap", |b| {
        let log = Log::open(&log_dir, LogConfig::default()).expect("open");
        b.iter(|| {
            let mut out = std::io::sink();
            let mut next = 0;
            while next < log.high_watermark() {
                let batches = log.read(next, 1 << 20).expect("read");
                for batch in &batches {
                    for r in batch.records().expect("records").iter() {
                        let r = r.expect("record");
                        out.write_all(r.value().unwrap_or_default()).expect("write");
                        out.write_all(b"\n").expect("write");
                    }
                    next = batch.last_offset() + 1;
                }
            }
            black_box(next)
        });
        drop(log);
    });
    g.bench_function("view_reader_pread", |b| {
        b.iter(|| {
            let view = StoreView::open(&f.store).expect("view");
            let p = view.partition("t", 0).expect("partition");
            let mut reader = p.reader(p.log_start_offset()).expect("reader");
            let mut out = std::io::BufWriter::new(std::io::sink());
            let mut n = 0u64;
            while let Some(batch) = reader.next_batch().expect("batch") {
                for r in batch.records().expect("records").iter() {
                    let r = r.expect("record");
                    out.write_all(r.value().unwrap_or_default()).expect("write");
                    out.write_all(b"\n").expect("write");
                    n += 1;
                }
            }
            assert_eq!(n, f.records);
            black_box(n)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("describe");
    g.bench_function("baseline_stat_segments", |b| {
        b.iter(|| {
            let total: u64 = data_files(&log_dir)
                .iter()
                .map(|p| std::fs::metadata(p).expect("stat").len())
                .sum();
            black_box(total)
        })
    });
    g.bench_function("store_view_describe_topic", |b| {
        b.iter(|| {
            let d = StoreView::open(&f.store)
                .and_then(|v| v.describe_topic("t"))
                .expect("describe");
            assert_eq!(d.partitions[0].log_end_offset, f.records);
            black_box(d)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
