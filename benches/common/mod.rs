//! Helpers shared by the benchmark files: record payloads, batches, sizes from the environment,
//! and where benchmark data lives.
//!
//! Every benchmark file includes this with `mod common;`; not every file uses every helper.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use riverbed::{BatchBuilder, Compression, RecordBatch};

/// A `len`-byte record value that looks like a small JSON document (so zstd has something to
/// compress), different for every `i`.
pub fn value(i: u64, len: usize) -> Vec<u8> {
    let head = format!("{{\"id\":{i:012},\"kind\":\"payment\",\"payload\":\"");
    let mut v = head.into_bytes();
    let filler = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut k = i as usize;
    while v.len() < len.saturating_sub(2) {
        v.push(filler[k % filler.len()]);
        k = k.wrapping_mul(31).wrapping_add(7);
    }
    v.extend_from_slice(b"\"}");
    v.truncate(len);
    v
}

/// The current wall-clock time in milliseconds, the timestamp benchmark records get (so that no
/// segment ever looks old enough for time-based retention or rolling).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A batch of `records` keyless, header-less records with `value_len`-byte values.
pub fn batch(records: usize, value_len: usize, compression: Compression) -> RecordBatch {
    let ts = now_ms();
    let mut b = BatchBuilder::new(compression);
    for i in 0..records {
        b.append(ts, None, Some(&value(i as u64, value_len)), &[]);
    }
    b.build().expect("build benchmark batch")
}

/// `name` from the environment as a number, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// `name` from the environment as a comma-separated list of numbers, or `default`.
pub fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .split(',')
            .map(|s| {
                s.trim()
                    .replace('_', "")
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={v:?} is not a list of numbers"))
            })
            .collect(),
        Err(_) => default.to_vec(),
    }
}

/// A fresh temporary directory for benchmark data, under `RIVERBED_BENCH_DIR` if set (for
/// example `/dev/shm` to take the disk out of the measurement) or the system temp directory.
pub fn temp_dir() -> tempfile::TempDir {
    let parent = std::env::var_os("RIVERBED_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    tempfile::Builder::new()
        .prefix("riverbed-bench-")
        .tempdir_in(parent)
        .expect("create benchmark directory")
}

/// A small deterministic PRNG (xorshift64*), so benchmarks need no extra dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
