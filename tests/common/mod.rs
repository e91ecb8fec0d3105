//! Helpers shared by the integration tests that look at or mangle files on disk.
#![allow(dead_code)] // each test binary uses its own subset

pub mod wire;

use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// Size of the header that opens every segment file (FORMAT.md, section 2).
pub const FILE_HEADER_LEN: usize = 24;

/// A copy of the regular files of `from` in a new temporary directory. Copying the directory of
/// a log that is still open gives the files a process crash would leave.
pub fn copy_dir(from: &Path) -> TempDir {
    let to = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
        }
    }
    to
}

/// The data file of the segment with base offset `base`.
pub fn log_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

/// (position, base offset, length) of each batch of a data file, found from the length fields:
/// big-endian in a format 3 file (Kafka v2 batches), little-endian in a format 1/2 one.
#[allow(clippy::big_endian_bytes)] // Kafka's wire format is big-endian
pub fn batches_in(file: &[u8]) -> Vec<(usize, u64, usize)> {
    let kafka = file.len() >= 6 && u16::from_le_bytes([file[4], file[5]]) >= 3;
    let u64_at = |b: &[u8]| {
        let a: [u8; 8] = b.try_into().unwrap();
        if kafka {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        }
    };
    let u32_at = |b: &[u8]| {
        let a: [u8; 4] = b.try_into().unwrap();
        if kafka {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    };
    let mut out = Vec::new();
    let mut pos = FILE_HEADER_LEN;
    while pos + 12 <= file.len() && file[pos..pos + 12].iter().any(|b| *b != 0) {
        let base = u64_at(&file[pos..pos + 8]);
        let len = u32_at(&file[pos + 8..pos + 12]) as usize + 12;
        out.push((pos, base, len));
        pos += len;
    }
    out
}

/// A record as read back: offset, key, value, timestamp.
pub type ReadRecord = (u64, Option<Vec<u8>>, Option<Vec<u8>>, i64);

/// Every record of `log` from its start to its end, read in chunks of `max_bytes` the way a
/// consumer does: the next read starts after the last batch returned, so gaps left by
/// compaction (inside batches, between batches and between segments) are skipped. Checks that
/// offsets strictly increase.
pub fn read_all(log: &riverbed::Log, max_bytes: usize) -> Vec<ReadRecord> {
    let mut out: Vec<ReadRecord> = Vec::new();
    let mut pos = log.log_start_offset();
    while pos < log.high_watermark() {
        let batches = log.read(pos, max_bytes).unwrap();
        if batches.is_empty() {
            // A gap reaching to the end of the sealed part: nothing until the next append.
            break;
        }
        for b in &batches {
            assert!(
                b.last_offset() >= pos,
                "batch ending at {} for {pos}",
                b.last_offset()
            );
            for r in b.records().unwrap().iter() {
                let r = r.unwrap();
                if r.offset() < pos {
                    continue;
                }
                if let Some(last) = out.last() {
                    assert!(
                        r.offset() > last.0,
                        "offset {} after {}",
                        r.offset(),
                        last.0
                    );
                }
                out.push((
                    r.offset(),
                    r.key().map(<[u8]>::to_vec),
                    r.value().map(<[u8]>::to_vec),
                    r.timestamp(),
                ));
            }
            pos = b.last_offset() + 1;
        }
    }
    out
}

/// A recursive copy of `from` (regular files and directories) in a new temporary directory.
/// Copying the directory of a store that is still open gives the files a process crash would
/// leave (the `.lock` files come along but lock nothing: locks belong to open descriptors).
/// Holes stay holes: the internal logs of a store preallocate tens of MiB each.
pub fn copy_tree(from: &Path) -> TempDir {
    fn copy(from: &Path, to: &Path) {
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let ty = e.file_type().unwrap();
            let target = to.join(e.file_name());
            if ty.is_dir() {
                std::fs::create_dir(&target).unwrap();
                copy(&e.path(), &target);
            } else if ty.is_file() {
                copy_sparse(&e.path(), &target);
            }
        }
    }
    let to = tempfile::tempdir().unwrap();
    // One GNU `cp` for the whole tree finds holes without reading them; without it, the loop
    // above.
    let cp = std::process::Command::new("cp")
        .args(["-R", "--sparse=always"])
        .arg(from.join("."))
        .arg(to.path())
        .status();
    if !cp.is_ok_and(|s| s.success()) {
        copy(from, to.path());
    }
    to
}

/// Copies a file byte for byte, leaving holes where `from` has runs of zeros.
fn copy_sparse(from: &Path, to: &Path) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut src = std::fs::File::open(from).unwrap();
    let mut dst = std::fs::File::create(to).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = src.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        if buf[..n].iter().all(|b| *b == 0) {
            dst.seek(SeekFrom::Current(n as i64)).unwrap();
        } else {
            dst.write_all(&buf[..n]).unwrap();
        }
        len += n as u64;
    }
    dst.set_len(len).unwrap();
}

/// One record as a consumer returned it: (offset, key, value).
pub type Seen = (u64, Option<Vec<u8>>, Option<Vec<u8>>);

/// Reads `partitions` of `store` from the beginning up to their end for `isolation` (the last
/// stable offset for `ReadCommitted`, the high watermark otherwise), fetching at most
/// `max_fetch_bytes` per partition and poll, and returns the records of each partition in the
/// order given. Panics if a consumer stops short of the end or steps past it.
pub fn read_all_consumed(
    store: &riverbed::Store,
    partitions: &[riverbed::TopicPartition],
    isolation: riverbed::IsolationLevel,
    max_fetch_bytes: usize,
) -> Vec<Vec<Seen>> {
    let mut c = store
        .consumer(
            riverbed::ConsumerConfig::default()
                .isolation_level(isolation)
                .max_partition_fetch_bytes(max_fetch_bytes)
                .max_poll_records(7),
        )
        .unwrap();
    c.assign(partitions).unwrap();
    c.seek_to_beginning(partitions).unwrap();
    let ends = c.end_offsets(partitions).unwrap();
    let mut out: Vec<Vec<Seen>> = vec![Vec::new(); partitions.len()];
    // Each poll returns at least one record or moves a position past skipped batches, so this
    // bound is only reached if the consumer is stuck.
    for _ in 0..100_000 {
        let done = ends.iter().all(|(tp, end)| c.position(tp).unwrap() >= *end);
        if done {
            break;
        }
        let records = c.poll(std::time::Duration::ZERO).unwrap();
        for r in records.iter() {
            let i = partitions
                .iter()
                .position(|tp| tp.topic == r.topic() && tp.partition == r.partition())
                .unwrap();
            out[i].push((
                r.offset(),
                r.key().map(<[u8]>::to_vec),
                r.value().map(<[u8]>::to_vec),
            ));
        }
    }
    for (tp, end) in &ends {
        assert_eq!(
            c.position(tp).unwrap(),
            *end,
            "a {isolation:?} consumer of {tp} must stop exactly at the end it reported"
        );
    }
    out
}

/// Runs `open` until it does not fail with `Locked`, for up to 5 s. For tests that reopen a
/// directory while other tests of the same binary spawn child processes: a child forked at that
/// moment shares the lock's open file until it execs (the lock is an `flock`, see README), so the
/// directory can look locked for an instant after its handle was dropped.
pub fn retry_locked<T>(mut open: impl FnMut() -> riverbed::Result<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match open() {
            Ok(v) => return v,
            Err(e)
                if matches!(e.kind(), riverbed::ErrorKind::Locked { .. })
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            Err(e) => panic!("open failed: {e}"),
        }
    }
}

/// The binary of example `name`, next to the running test's (cargo builds examples for
/// `cargo test`); built here when the test runs alone (`cargo test --test X` builds none).
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = profile_dir.join("examples").join(name);
    if !bin.exists() {
        let target_dir = profile_dir.parent().expect("target dir");
        let profile = profile_dir.file_name().and_then(|n| n.to_str());
        let mut cmd = std::process::Command::new(option_env!("CARGO").unwrap_or("cargo"));
        cmd.args(["build", "--example", name, "--target-dir"])
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile == Some("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "building example {name} failed");
    }
    bin
}

/// A small deterministic generator (for kill delays; tests print the seed for reruns).
pub struct Lcg(pub u64);

impl Lcg {
    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Waits until `done` holds: up to a minute, so that a stuck run fails the test instead of
/// hanging it.
pub fn wait_for(what: &str, done: impl FnMut() -> bool) {
    wait_for_apps(what, &[], done)
}

/// [`wait_for`], failing at once if one of `apps` stopped with an error.
pub fn wait_for_apps(what: &str, apps: &[&riverbed::streams::App], mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        for app in apps {
            assert!(app.error().is_none(), "an app failed: {:?}", app.error());
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// One record of a topic as [`read_topic`] returns it.
#[derive(Clone, Debug)]
pub struct TopicRecord {
    pub partition: u32,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
}

/// Every record of every partition of `topic` up to its end for `isolation` (the last stable
/// offset for `ReadCommitted`), partition by partition in offset order.
pub fn read_topic(
    store: &riverbed::Store,
    topic: &str,
    isolation: riverbed::IsolationLevel,
) -> Vec<TopicRecord> {
    let partitions = store.describe_topic(topic).unwrap().partitions.len() as u32;
    let mut c = store
        .consumer(
            riverbed::ConsumerConfig::default()
                .auto_offset_reset(riverbed::OffsetReset::Earliest)
                .isolation_level(isolation)
                .max_poll_records(10_000),
        )
        .unwrap();
    let tps: Vec<_> = (0..partitions)
        .map(|p| riverbed::TopicPartition::new(topic, p))
        .collect();
    c.assign(&tps).unwrap();
    let ends = c.end_offsets(&tps).unwrap();
    let mut out = Vec::new();
    while ends.iter().any(|(tp, end)| c.position(tp).unwrap() < *end) {
        for r in c.poll(std::time::Duration::from_millis(50)).unwrap().iter() {
            out.push(TopicRecord {
                partition: r.partition(),
                key: r.key().map(<[u8]>::to_vec),
                value: r.value().map(<[u8]>::to_vec),
                timestamp: r.timestamp(),
            });
        }
    }
    out.sort_by_key(|r| r.partition);
    out
}

/// `(key, value, timestamp)` records for the window tests: 3 keys, small values, timestamps that
/// mostly rise but jump back now and then (by up to 300 ms), so some records are out of order
/// within a window's grace and some beyond it.
pub fn out_of_order_input() -> impl proptest::strategy::Strategy<Value = Vec<(u8, i64, i64)>> {
    timed_records(3, -9..10, -300..120, 0..80)
}

/// `len` `(key, value, timestamp)` records: keys below `keys`, values in `values`, and a
/// timestamp that moves by a step drawn from `steps` from one record to the next (back in time
/// for a negative step, never below 0).
pub fn timed_records(
    keys: u8,
    values: std::ops::Range<i64>,
    steps: std::ops::Range<i64>,
    len: std::ops::Range<usize>,
) -> impl proptest::strategy::Strategy<Value = Vec<(u8, i64, i64)>> {
    use proptest::prelude::*;
    prop::collection::vec((0..keys, values, steps), len).prop_map(|steps| {
        let mut t = 0i64;
        steps
            .into_iter()
            .map(|(k, v, dt)| {
                t = (t + dt).max(0);
                (k, v, t)
            })
            .collect()
    })
}

/// Every file and directory under `dir` (the lock files aside, whose pid changes) with its
/// bytes.
pub fn dir_snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            if p.is_dir() {
                stack.push(p.clone());
                out.insert(rel, b"<dir>".to_vec());
            } else if p.file_name().unwrap() != ".lock" {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Reads every record of every partition of `topic`: partition -> values in offset order.
pub fn values_by_partition(store: &riverbed::Store, topic: &str) -> Vec<Vec<String>> {
    let d = store.describe_topic(topic).unwrap();
    let mut out = Vec::new();
    for p in &d.partitions {
        let mut c = store
            .consumer(
                riverbed::ConsumerConfig::default()
                    .group_id(None)
                    .auto_offset_reset(riverbed::OffsetReset::Earliest),
            )
            .unwrap();
        c.assign(&[riverbed::TopicPartition::new(topic, p.partition)])
            .unwrap();
        let mut values = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while (values.len() as u64) < p.log_end_offset {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out reading {topic}-{}",
                p.partition
            );
            for r in c.poll(std::time::Duration::from_millis(50)).unwrap().iter() {
                values.push(String::from_utf8(r.value().unwrap().to_vec()).unwrap());
            }
        }
        out.push(values);
    }
    out
}

// ---- deterministic randomness --------------------------------------------------------------

/// splitmix64: turns any seed into a well-mixed 64-bit value (also a pure function for content
/// that must be recomputed from an offset or an id).
pub fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xorshift64*: a small seeded generator, the only randomness of the crash tests (they print
/// their seeds, so a failure reruns exactly).
pub struct XorShift(u64);

impl XorShift {
    /// A generator from any seed (mixed first, so that nearby seeds give unrelated streams).
    pub fn new(seed: u64) -> XorShift {
        XorShift(mix(seed) | 1)
    }

    /// A generator whose state is `state` as given (must not be 0).
    pub fn from_state(state: u64) -> XorShift {
        XorShift(state)
    }

    /// The next number.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ---- the kill-the-child harness ------------------------------------------------------------

/// A command that runs this test binary again with only the test `child_test`, output not
/// captured: the child side of a crash test, which the parent configures (environment, pipes),
/// spawns and kills. The child test returns at once unless its environment variable is set, so
/// it passes in a normal run.
pub fn child_command(child_test: &str) -> std::process::Command {
    let exe = std::env::current_exe().expect("current_exe");
    let mut c = std::process::Command::new(exe);
    c.args([child_test, "--exact", "--nocapture", "--test-threads=1"]);
    c
}

// ---- log configuration fixtures ------------------------------------------------------------

/// A log configuration for tests that look at files: small segments (so that a few batches
/// roll them), an index entry every `index_interval_bytes`, batches up to `max_message_bytes`,
/// and nothing deleted or rolled by time (so that the files depend on the test's data only).
pub fn small_log(
    segment_bytes: u64,
    index_interval_bytes: u32,
    max_message_bytes: usize,
) -> riverbed::LogConfig {
    riverbed::LogConfig::default()
        .segment_bytes(segment_bytes)
        .index_interval_bytes(index_interval_bytes)
        .max_message_bytes(max_message_bytes)
        .retention_ms(None)
        .segment_ms(None)
}

/// Recomputes the CRC of the batch at `pos` (`len` bytes) of a whole data file `file`, so that a
/// test can damage what only the record decoder checks: CRC-32C, big-endian at batch bytes
/// 17..21 over 21.. in a format 3 file (Kafka v2 batches); CRC-32, little-endian at 13..17 over
/// 17.. in a format 1/2 file.
#[allow(clippy::big_endian_bytes)] // Kafka's wire format is big-endian
pub fn fix_batch_crc(file: &mut [u8], pos: usize, len: usize) {
    if u16::from_le_bytes([file[4], file[5]]) >= 3 {
        let crc = crc32c::crc32c(&file[pos + 21..pos + len]);
        file[pos + 17..pos + 21].copy_from_slice(&crc.to_be_bytes());
    } else {
        let crc = crc32fast::hash(&file[pos + 17..pos + len]);
        file[pos + 13..pos + 17].copy_from_slice(&crc.to_le_bytes());
    }
}

/// The `last_offset_delta` of the batch at `pos` in a data file `file`: big-endian at batch
/// bytes 23..27 in a format 3 file (Kafka v2 batches), little-endian at 19..23 otherwise.
#[allow(clippy::big_endian_bytes)] // Kafka's wire format is big-endian
pub fn last_offset_delta(file: &[u8], pos: usize) -> u32 {
    if u16::from_le_bytes([file[4], file[5]]) >= 3 {
        u32::from_be_bytes(file[pos + 23..pos + 27].try_into().unwrap())
    } else {
        u32::from_le_bytes(file[pos + 19..pos + 23].try_into().unwrap())
    }
}

/// Where the records of a batch start in a data file `file`: after Kafka's 61-byte header in a
/// format 3 file, after the 57-byte format 2 header otherwise.
pub fn records_start(file: &[u8]) -> usize {
    if u16::from_le_bytes([file[4], file[5]]) >= 3 {
        61
    } else {
        57
    }
}

/// The `baseOffset` field of a batch the log stamped at `offset`, as a format 3 data file holds
/// it (Kafka's big-endian i64).
#[allow(clippy::big_endian_bytes)] // Kafka's wire format is big-endian
pub fn stamped_base_offset(offset: u64) -> [u8; 8] {
    (offset as i64).to_be_bytes()
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_nullable(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// `batch` (built by this build: a Kafka v2 batch) as a batch of segment format 2 holds it
/// (FORMAT.md 3.5: little-endian 57-byte header, CRC-32, unsigned varints for lengths and
/// counts, zstd as codec 1 behind a 4-byte length), so that tests can write the files older
/// builds wrote. Encoded here, independently of the crate's own (read-only) format 2 code.
pub fn legacy_v2_bytes(batch: &riverbed::RecordBatch) -> Vec<u8> {
    let b = batch.as_batch();
    let mut records = Vec::new();
    for (i, r) in b.records().unwrap().iter().enumerate() {
        let r = r.unwrap();
        let mut body = vec![0u8];
        put_varint(&mut body, r.timestamp().wrapping_sub(b.first_timestamp()));
        put_uvarint(&mut body, r.offset() - b.base_offset());
        put_nullable(&mut body, r.key());
        put_nullable(&mut body, r.value());
        let headers: Vec<_> = r.headers().map(Result::unwrap).collect();
        put_uvarint(&mut body, headers.len() as u64);
        for (k, v) in headers {
            put_uvarint(&mut body, k.len() as u64);
            body.extend_from_slice(k.as_bytes());
            put_nullable(&mut body, v);
        }
        put_uvarint(&mut records, body.len() as u64);
        records.extend_from_slice(&body);
        let _ = i;
    }
    let mut attributes: u16 = 0;
    if b.timestamp_type() == riverbed::TimestampType::LogAppendTime {
        attributes |= 1 << 3;
    }
    if b.is_transactional() {
        attributes |= 1 << 4;
    }
    if b.is_control() {
        attributes |= 1 << 5;
    }
    let mut out = vec![0u8; 57];
    if b.is_compressed() {
        attributes |= 1;
        out.extend_from_slice(&(records.len() as u32).to_le_bytes());
        out.extend_from_slice(&zstd::bulk::compress(&records, 1).unwrap());
    } else {
        out.extend_from_slice(&records);
    }
    let len = (out.len() - 12) as u32;
    out[0..8].copy_from_slice(&b.base_offset().to_le_bytes());
    out[8..12].copy_from_slice(&len.to_le_bytes());
    out[12] = 2;
    out[17..19].copy_from_slice(&attributes.to_le_bytes());
    out[19..23].copy_from_slice(&((b.last_offset() - b.base_offset()) as u32).to_le_bytes());
    out[23..31].copy_from_slice(&b.first_timestamp().to_le_bytes());
    out[31..39].copy_from_slice(&b.max_timestamp().to_le_bytes());
    out[39..43].copy_from_slice(&b.record_count().to_le_bytes());
    let p = b.producer();
    out[43..51].copy_from_slice(&p.producer_id.to_le_bytes());
    out[51..53].copy_from_slice(&p.producer_epoch.to_le_bytes());
    out[53..57].copy_from_slice(&p.base_sequence.to_le_bytes());
    let crc = crc32fast::hash(&out[17..]);
    out[13..17].copy_from_slice(&crc.to_le_bytes());
    out
}
