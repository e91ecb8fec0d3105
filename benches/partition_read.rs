//! Read path: `Log::read` + `records().iter()` over a log of 100-byte records, against a plain
//! file read in the same benchmark group.
//!
//! Groups:
//! - `scan_sequential`: read every record from offset 0 (fetches of 1 MiB, as a consumer would),
//!   touching each value; records/s. The log holds `RIVERBED_BENCH_SCAN_RECORDS` (default
//!   1,000,000) records in batches of 100. Baseline `file_bufreader_crc`: the same values in a
//!   plain file framed as `{ len u32 | crc u32 | payload }` per batch of 100, where the payload is
//!   `{ len u32 | value }*`, read with a `BufReader`, CRC checked, every value touched.
//! - `random_read`: `Log::read(offset, 1)` at a random offset (one batch comes back) and find the
//!   record with that offset in it; lookups/s. The log holds `RIVERBED_BENCH_RECORDS` (default
//!   5,000,000) records; one log per batch size (1, 10, 100 records a batch). Baseline
//!   `file_pread_crc`: fixed-size `{ len u32 | crc u32 | value }` records in a plain file, so a
//!   record's position is its offset times the record size: one `pread` and a CRC check.
//!
//! ```sh
//! cargo bench --bench partition_read -- --warm-up-time 3 --measurement-time 5
//! RIVERBED_BENCH_RECORDS=500000 cargo bench --bench partition_read     # quick run
//! ```
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use riverbed::{Compression, Log, LogConfig};

mod common;

const VALUE_LEN: usize = 100;
const FETCH_BYTES: usize = 1 << 20;

/// Touches a value (first and last byte) so that reading it cannot be optimised away.
fn touch(v: &[u8]) -> u64 {
    match (v.first(), v.last()) {
        (Some(a), Some(b)) => u64::from(*a) + u64::from(*b) + v.len() as u64,
        _ => 0,
    }
}

/// A log of `records` records of `VALUE_LEN` bytes in batches of `per_batch`, left open.
fn build_log(dir: &Path, records: usize, per_batch: usize) -> Log {
    let config = LogConfig::default().segment_ms(None).retention_ms(None);
    let log = Log::open(dir, config).expect("open log");
    let batch = common::batch(per_batch, VALUE_LEN, Compression::None);
    for _ in 0..(records / per_batch).max(1) {
        log.append(&batch).expect("append");
    }
    log
}

/// Reads the whole log from offset 0, touching every value; returns (records, checksum).
fn scan_log(log: &Log, end: u64) -> (u64, u64) {
    let mut offset = 0;
    let mut count = 0;
    let mut acc = 0u64;
    while offset < end {
        let batches = log.read(offset, FETCH_BYTES).expect("read");
        let Some(last) = batches.last() else { break };
        offset = last.last_offset() + 1;
        for batch in &batches {
            let records = batch.records().expect("records");
            for r in records.iter() {
                acc += touch(r.expect("record").value().unwrap_or(&[]));
                count += 1;
            }
        }
    }
    (count, acc)
}

/// Writes the scan baseline file: per batch `{ len u32 | crc u32 | { len u32 | value }* }`.
fn write_scan_baseline(path: &Path, records: usize, per_batch: usize) {
    let mut out = BufWriter::new(File::create(path).expect("create"));
    let mut payload = Vec::new();
    let mut i = 0;
    while i < records {
        payload.clear();
        for j in 0..per_batch.min(records - i) {
            let v = common::value((i + j) as u64, VALUE_LEN);
            payload.extend_from_slice(&(v.len() as u32).to_le_bytes());
            payload.extend_from_slice(&v);
        }
        out.write_all(&(payload.len() as u32).to_le_bytes())
            .unwrap();
        out.write_all(&crc32fast::hash(&payload).to_le_bytes())
            .unwrap();
        out.write_all(&payload).unwrap();
        i += per_batch;
    }
    out.into_inner().unwrap().sync_all().unwrap();
}

fn scan_baseline(path: &Path) -> (u64, u64) {
    let mut input = BufReader::new(File::open(path).expect("open"));
    let mut head = [0u8; 8];
    let mut payload = Vec::new();
    let (mut count, mut acc) = (0u64, 0u64);
    while input.read_exact(&mut head).is_ok() {
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        payload.resize(len, 0);
        input.read_exact(&mut payload).expect("payload");
        assert_eq!(crc32fast::hash(&payload), crc, "baseline CRC");
        let mut rest = payload.as_slice();
        while let Some((len, tail)) = rest.split_first_chunk::<4>() {
            let (v, tail) = tail.split_at(u32::from_le_bytes(*len) as usize);
            acc += touch(v);
            count += 1;
            rest = tail;
        }
    }
    (count, acc)
}

fn sequential(c: &mut Criterion) {
    let records = common::env_usize("RIVERBED_BENCH_SCAN_RECORDS", 1_000_000);
    let dir = common::temp_dir();
    let log = build_log(&dir.path().join("log"), records, 100);
    let end = log.high_watermark();
    let file = dir.path().join("baseline.data");
    write_scan_baseline(&file, end as usize, 100);
    assert_eq!(scan_log(&log, end).0, end);
    assert_eq!(scan_baseline(&file).0, end);

    let mut group = c.benchmark_group("scan_sequential");
    group.sample_size(20);
    group.throughput(Throughput::Elements(end));
    group.bench_function(BenchmarkId::new("riverbed", end), |b| {
        b.iter(|| scan_log(&log, end))
    });
    group.bench_function(BenchmarkId::new("file_bufreader_crc", end), |b| {
        b.iter(|| scan_baseline(&file))
    });
    group.finish();
    log.close().expect("close");
}

/// Fixed-size baseline records: `{ len u32 | crc u32 | value }`.
const FRAME_LEN: usize = 8 + VALUE_LEN;

fn write_random_baseline(path: &Path, records: usize) {
    let mut out = BufWriter::new(File::create(path).expect("create"));
    for i in 0..records {
        let v = common::value(i as u64, VALUE_LEN);
        out.write_all(&(v.len() as u32).to_le_bytes()).unwrap();
        out.write_all(&crc32fast::hash(&v).to_le_bytes()).unwrap();
        out.write_all(&v).unwrap();
    }
    out.into_inner().unwrap().sync_all().unwrap();
}

fn random_offsets(end: u64) -> Vec<u64> {
    let mut rng = common::Rng::new(0x5eed);
    (0..1 << 16).map(|_| rng.below(end)).collect()
}

fn random(c: &mut Criterion) {
    let records = common::env_usize("RIVERBED_BENCH_RECORDS", 5_000_000);
    let dir = common::temp_dir();
    let mut group = c.benchmark_group("random_read");
    group.throughput(Throughput::Elements(1));

    for per_batch in [1usize, 10, 100] {
        let path: PathBuf = dir.path().join(format!("log-{per_batch}"));
        let log = build_log(&path, records, per_batch);
        let end = log.high_watermark();
        let offsets = random_offsets(end);
        let mut next = 0usize;
        group.bench_function(BenchmarkId::new("riverbed_batch", per_batch), |b| {
            b.iter(|| {
                let offset = offsets[next % offsets.len()];
                next += 1;
                let batches = log.read(offset, 1).expect("read");
                let records = batches[0].records().expect("records");
                let mut iter = records.iter();
                iter.skip_to(offset).expect("skip");
                let found = iter
                    .map(|r| r.expect("record"))
                    .find(|r| r.offset() == offset)
                    .expect("the record is in the first batch");
                touch(found.value().unwrap_or(&[]))
            })
        });
        log.close().expect("close");
        std::fs::remove_dir_all(&path).expect("remove log");
    }

    let path = dir.path().join("baseline.data");
    write_random_baseline(&path, records);
    let file = File::open(&path).expect("open");
    let offsets = random_offsets(records as u64);
    let mut next = 0usize;
    let mut frame = [0u8; FRAME_LEN];
    group.bench_function(BenchmarkId::new("file_pread_crc", "fixed_108B"), |b| {
        b.iter(|| {
            let offset = offsets[next % offsets.len()];
            next += 1;
            file.read_exact_at(&mut frame, offset * FRAME_LEN as u64)
                .expect("pread");
            let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
            let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
            let value = &frame[8..8 + len];
            assert_eq!(crc32fast::hash(value), crc);
            touch(black_box(value))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(3));
    targets = sequential, random
}
criterion_main!(benches);
