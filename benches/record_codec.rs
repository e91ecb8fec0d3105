//! Record codec layer: building a batch (encode + CRC, optionally zstd) and decoding it (CRC
//! check + iterating every record), for batches of 1, 10, 100 and 1000 records of 100-byte values.
//!
//! Baseline, in the same groups: the least work that gives the same guarantees with the simplest
//! possible framing — copy each value behind a `u32` length and CRC the result; to decode, CRC the
//! bytes and walk the length-prefixed values.
//!
//! ```sh
//! cargo bench --bench record_codec
//! cargo bench --bench record_codec -- --warm-up-time 3 --measurement-time 5   # steadier
//! ```
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use riverbed::{BatchBuilder, BatchRef, Compression};

mod common;

const VALUE_LEN: usize = 100;
const BATCH_SIZES: [usize; 4] = [1, 10, 100, 1000];
const CODECS: [(&str, Compression); 2] = [
    ("riverbed_none", Compression::None),
    ("riverbed_zstd3", Compression::Zstd { level: 3 }),
];

fn values(n: usize) -> Vec<Vec<u8>> {
    (0..n as u64).map(|i| common::value(i, VALUE_LEN)).collect()
}

/// The baseline framing: `{ len u32 | value }*`, then a CRC over all of it.
fn baseline_encode(values: &[Vec<u8>]) -> (Vec<u8>, u32) {
    let total: usize = values.iter().map(|v| 4 + v.len()).sum();
    let mut out = Vec::with_capacity(total);
    for v in values {
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    }
    let crc = crc32fast::hash(&out);
    (out, crc)
}

/// Touches a value (first and last byte) so that decoding cannot be optimised away.
fn touch(v: &[u8]) -> u64 {
    match (v.first(), v.last()) {
        (Some(a), Some(b)) => u64::from(*a) + u64::from(*b) + v.len() as u64,
        _ => 0,
    }
}

fn build(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec_build");
    for n in BATCH_SIZES {
        let vals = values(n);
        let ts = common::now_ms();
        group.throughput(Throughput::Elements(n as u64));
        for (name, compression) in CODECS {
            let mut builder = BatchBuilder::new(compression);
            group.bench_with_input(BenchmarkId::new(name, n), &vals, |b, vals| {
                b.iter(|| {
                    builder.clear();
                    for (i, v) in vals.iter().enumerate() {
                        builder.append(ts + i as i64, None, Some(v), &[]);
                    }
                    black_box(builder.build().expect("build"))
                })
            });
        }
        group.bench_with_input(
            BenchmarkId::new("baseline_copy_crc", n),
            &vals,
            |b, vals| b.iter(|| black_box(baseline_encode(vals))),
        );
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec_decode");
    for n in BATCH_SIZES {
        let vals = values(n);
        group.throughput(Throughput::Elements(n as u64));
        for (name, compression) in CODECS {
            let batch = common::batch(n, VALUE_LEN, compression);
            let bytes = batch.as_bytes().to_vec();
            group.bench_with_input(BenchmarkId::new(name, n), &bytes, |b, bytes| {
                b.iter(|| {
                    let batch = BatchRef::parse(black_box(bytes), usize::MAX).expect("parse");
                    let records = batch.records().expect("records");
                    let mut acc = 0u64;
                    for r in records.iter() {
                        acc += touch(r.expect("record").value().unwrap_or(&[]));
                    }
                    debug_assert_eq!(acc > 0, n > 0);
                    acc
                })
            });
        }
        let (bytes, crc) = baseline_encode(&vals);
        group.bench_with_input(
            BenchmarkId::new("baseline_crc_walk", n),
            &bytes,
            |b, bytes| {
                b.iter(|| {
                    let bytes = black_box(bytes.as_slice());
                    assert_eq!(crc32fast::hash(bytes), crc);
                    let mut acc = 0u64;
                    let mut rest = bytes;
                    while let Some((len, tail)) = rest.split_first_chunk::<4>() {
                        let len = u32::from_le_bytes(*len) as usize;
                        let (v, tail) = tail.split_at(len);
                        acc += touch(v);
                        rest = tail;
                    }
                    acc
                })
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = build, decode
}
criterion_main!(benches);
