//! Writes the seed corpus in `corpus/<target>/`: small valid inputs (built with `BatchBuilder` and
//! taken from real log files) and a few damaged ones. Deterministic: rerunning rewrites the same
//! bytes. Files named `regress-*` are not generated: they are inputs the fuzzers found, kept so
//! that `tests/fuzz_corpus.rs` replays them.
//!
//! ```sh
//! cd fuzz && cargo run --release --example gen_corpus
//! ```
//!
//! NOTE: the seeds in `corpus/` were written by builds before segment format 3, so their
//! batches have the format 1/2 layout (which the targets still decode, beside Kafka's); the
//! `kafka_*` seeds are copies of `tests/data/kafka/*.bin`. The damaged seeds below patch bytes
//! at format 1/2 positions: before rerunning this with a format 3 build (whose `BatchBuilder`
//! writes Kafka v2 batches), move those positions to FORMAT.md section 3.1's.

use std::path::{Path, PathBuf};

use riverbed::internals::index::{OffsetEntry, TimeEntry};
use riverbed::{BatchBuilder, Compression, FlushPolicy, Log, LogConfig, RecordBatch};

const TS: i64 = 1_700_000_000_000;

fn write(target: &str, name: &str, bytes: &[u8]) {
    assert!(
        bytes.len() < 10 << 10,
        "{target}/{name} is {} bytes",
        bytes.len()
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join(name), bytes).expect("write");
}

fn batch(records: usize, compression: Compression, seed: u64) -> RecordBatch {
    let mut b = BatchBuilder::new(compression);
    for i in 0..records as u64 {
        let key = format!("key-{}", (seed + i) % 7);
        let value = format!(
            "{{\"n\":{},\"text\":\"the quick brown fox {}\"}}",
            seed + i,
            i % 3
        );
        match i % 5 {
            // A tombstone, a keyless record, headers (one repeated, one null) and a timestamp
            // below the first one.
            0 => b.append(TS + i as i64, Some(key.as_bytes()), None, &[]),
            1 => b.append(TS - 5, None, Some(value.as_bytes()), &[]),
            2 => b.append(
                TS + 3,
                Some(key.as_bytes()),
                Some(value.as_bytes()),
                &[("trace", Some(b"abc")), ("trace", None), ("ü", Some(b""))],
            ),
            _ => b.append(
                TS + i as i64,
                Some(key.as_bytes()),
                Some(value.as_bytes()),
                &[],
            ),
        };
    }
    b.build().expect("build")
}

/// Sets the log-append-time attribute bit and `max_timestamp`, and recomputes the CRC.
fn log_append_time(batch: &RecordBatch, now: i64) -> Vec<u8> {
    let mut b = batch.as_bytes().to_vec();
    let attrs = u16::from_le_bytes([b[17], b[18]]) | 1 << 3;
    b[17..19].copy_from_slice(&attrs.to_le_bytes());
    b[31..39].copy_from_slice(&now.to_le_bytes());
    let crc = crc32fast::hash(&b[17..]);
    b[13..17].copy_from_slice(&crc.to_le_bytes());
    b
}

/// A closed log holding `batches`; returns its directory (kept alive by the TempDir).
fn real_log(batches: &[RecordBatch], index_interval: u32) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig::default().flush(FlushPolicy::Manual).index_interval_bytes(index_interval).segment_bytes(1 << 20).max_message_bytes(64 << 10);
    let log = Log::open(dir.path(), config).expect("open");
    for b in batches {
        log.append(b).expect("append");
    }
    log.close().expect("close");
    let path = dir.path().to_path_buf();
    (dir, path)
}

/// The content of a log file: header stripped, cut at the end of the last batch.
fn file_body(path: &Path, keep: usize) -> Vec<u8> {
    let bytes = std::fs::read(path).expect("read");
    bytes[24..24 + keep].to_vec()
}

/// The entries of an active segment's index file: header stripped, zero-filled tail dropped.
fn index_entries(path: &Path, entry_len: usize) -> Vec<u8> {
    let bytes = std::fs::read(path).expect("read");
    let entries = &bytes[24..];
    let n = entries
        .chunks(entry_len)
        .rposition(|e| e.iter().any(|b| *b != 0))
        .map_or(0, |i| i + 1);
    entries[..n * entry_len].to_vec()
}

fn index_input(target: u32, ts: i64, data_len: u32, entries: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&target.to_le_bytes());
    v.extend_from_slice(&ts.to_le_bytes());
    v.extend_from_slice(&data_len.to_le_bytes());
    v.extend_from_slice(entries);
    v
}

fn main() {
    // decode_batch
    let one = batch(1, Compression::None, 0);
    let ten = batch(10, Compression::None, 10);
    let zstd = batch(40, Compression::Zstd { level: 3 }, 20);
    assert!(
        zstd.as_batch().is_compressed(),
        "the zstd seed must be compressed"
    );
    write("decode_batch", "none_1", one.as_bytes());
    write("decode_batch", "none_10", ten.as_bytes());
    write("decode_batch", "zstd_40", zstd.as_bytes());
    write(
        "decode_batch",
        "log_append_time_10",
        &log_append_time(&ten, TS + 1000),
    );
    let t = ten.as_bytes();
    write("decode_batch", "truncated_10", &t[..t.len() / 2]);
    let mut bad = t.to_vec();
    bad[60] ^= 0x40;
    write("decode_batch", "bad_crc_10", &bad);
    let z = zstd.as_bytes();
    write("decode_batch", "truncated_zstd", &z[..z.len() - 7]);
    // Two batches back to back: parse must take only the first.
    write("decode_batch", "two_batches", &[one.as_bytes(), t].concat());

    // recover_segment: real log contents.
    let batches: Vec<RecordBatch> = (0..6)
        .map(|i| batch(1 + i % 4, Compression::None, i as u64 * 100))
        .chain([zstd.clone()])
        .collect();
    let (_keep, dir) = real_log(&batches, 256);
    let data_len: usize = batches.iter().map(RecordBatch::len).sum();
    let body = file_body(&dir.join("00000000000000000000.log"), data_len);
    write("recover_segment", "valid_7_batches", &body);
    write(
        "recover_segment",
        "torn_last_batch",
        &body[..body.len() - 9],
    );
    let mut flipped = body.clone();
    let second = batches[0].len() + 50;
    flipped[second] ^= 1;
    write("recover_segment", "bad_crc_second_batch", &flipped);
    let mut gap = body.clone();
    // Stamp a wrong base offset (outside the CRC) into the third batch.
    let third = batches[0].len() + batches[1].len();
    gap[third..third + 8].copy_from_slice(&99u64.to_le_bytes());
    write("recover_segment", "offset_gap", &gap);
    let mut after_zeros = body[..batches[0].len()].to_vec();
    after_zeros.extend_from_slice(&[0u8; 16]);
    after_zeros.extend_from_slice(&body[batches[0].len()..]);
    write("recover_segment", "garbage_after_zeros", &after_zeros);
    write("recover_segment", "empty", &[]);

    // index_lookup: a real offset and time index, and hand-made ones.
    let offsets = index_entries(&dir.join("00000000000000000000.index"), 8);
    let times = index_entries(&dir.join("00000000000000000000.timeindex"), 16);
    assert!(!offsets.is_empty() && !times.is_empty());
    let file_len = (24 + data_len) as u32;
    write(
        "index_lookup",
        "real_offset_index",
        &index_input(5, TS, file_len, &offsets),
    );
    write(
        "index_lookup",
        "real_time_index",
        &index_input(3, TS + 2, file_len, &times),
    );
    let made: Vec<u8> = (0..40u32)
        .flat_map(|i| {
            OffsetEntry {
                relative_offset: i * 7 + 3,
                position: 24 + i * 100,
            }
            .encode()
        })
        .collect();
    write(
        "index_lookup",
        "offsets_40",
        &index_input(150, 0, 10_000, &made),
    );
    let made: Vec<u8> = (0..20i64)
        .flat_map(|i| {
            TimeEntry {
                timestamp: TS + i * 10,
                relative_offset: i as u32 * 3,
                position: 24 + i as u32 * 64,
            }
            .encode()
        })
        .collect();
    write(
        "index_lookup",
        "times_20",
        &index_input(0, TS + 55, 2_000, &made),
    );
    let mut unordered = made.clone();
    unordered.rotate_left(16 * 7);
    write(
        "index_lookup",
        "times_rotated",
        &index_input(0, TS + 55, 2_000, &unordered),
    );
    write("index_lookup", "zeros", &[0u8; 16 + 64]);
}
