//! Real process crashes: a child process (this very test binary, re-executed) appends to a log
//! until the parent kills it with SIGKILL at a pseudo-random moment; the parent then recovers the
//! log and checks that every acknowledged batch is there byte for byte and that the log is a
//! contiguous prefix of what the child appended. Repeated many times in the same directory, so
//! every child appends after the tail its predecessor (and recovery) left behind.
//!
//! The child reports each append that returned on stdout (`ACK ...`, flushed at once). Batch
//! content is a pure function of a batch id `(run, thread, seq)` that the first record's key
//! carries, so the parent can rebuild every batch and compare it with what the log holds, even
//! when several threads append concurrently and nobody knows an offset before the append returns.
//!
//! When `RIVERBED_CRASH_CHILD_DIR` is set, `crash_child_entry` is the child: it never returns.
//! When it is unset (a normal `cargo test`), that test returns at once.

mod common;

use common::{mix, XorShift};

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use riverbed::{
    BatchBuilder, Compression, ErrorKind, FlushPolicy, Log, LogConfig, RecordBatch, RecoveryMode,
};

const CHILD_DIR_ENV: &str = "RIVERBED_CRASH_CHILD_DIR";
const CHILD_MODE_ENV: &str = "RIVERBED_CRASH_CHILD_MODE";
const CHILD_RUN_ENV: &str = "RIVERBED_CRASH_CHILD_RUN";
const CHILD_THREADS_ENV: &str = "RIVERBED_CRASH_CHILD_THREADS";
const CHILD_TEST_NAME: &str = "crash_child_entry";

const T0: i64 = 1_700_000_000_000;

// ---- deterministic content --------------------------------------------------------------------

/// Identifies a batch: appended by thread `thread` of child run `run` as its `seq`-th batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct BatchId {
    run: u32,
    thread: u32,
    seq: u64,
}

const KEY_LEN: usize = 20;

fn record_key(id: BatchId, index: u32) -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    k[0..4].copy_from_slice(&id.run.to_le_bytes());
    k[4..8].copy_from_slice(&id.thread.to_le_bytes());
    k[8..16].copy_from_slice(&id.seq.to_le_bytes());
    k[16..20].copy_from_slice(&index.to_le_bytes());
    k
}

fn parse_key(key: &[u8]) -> Option<(BatchId, u32)> {
    if key.len() != KEY_LEN {
        return None;
    }
    let u32_at = |i: usize| u32::from_le_bytes(key[i..i + 4].try_into().unwrap());
    let seq = u64::from_le_bytes(key[8..16].try_into().unwrap());
    Some((
        BatchId {
            run: u32_at(0),
            thread: u32_at(4),
            seq,
        },
        u32_at(16),
    ))
}

/// The batch with id `id`: 1..=50 records, values of 0..600 bytes (some compressible, some
/// random, a few tombstones), 0..2 headers, sometimes zstd. Everything follows from `id`.
fn build_batch(id: BatchId) -> RecordBatch {
    let mut rng = XorShift::new(
        mix(u64::from(id.run)) ^ mix(u64::from(id.thread) << 40 ^ 0xABCD) ^ mix(id.seq ^ 1 << 63),
    );
    let count = 1 + rng.below(50) as u32;
    let compression = if rng.below(4) == 0 {
        Compression::Zstd { level: 1 }
    } else {
        Compression::None
    };
    let mut b = BatchBuilder::new(compression);
    let mut value = Vec::new();
    for i in 0..count {
        let ts = T0 + (id.seq as i64) * 7 + rng.below(1000) as i64;
        let key = record_key(id, i);
        value.clear();
        let tombstone = rng.below(32) == 0;
        let len = if rng.below(8) == 0 {
            200 + rng.below(400)
        } else {
            rng.below(200)
        } as usize;
        if rng.below(2) == 0 {
            let step = rng.next() as u8 | 1;
            let start = rng.next() as u8;
            value.extend((0..len).map(|j| start.wrapping_add(step.wrapping_mul((j / 7) as u8))));
        } else {
            value.extend((0..len).map(|_| rng.next() as u8));
        }
        let hv = rng.next().to_le_bytes();
        let headers: Vec<(&str, Option<&[u8]>)> = match rng.below(3) {
            0 => vec![],
            1 => vec![("trace", Some(&hv[..]))],
            _ => vec![("trace", Some(&hv[..3])), ("empty", None)],
        };
        b.append(
            ts,
            Some(&key),
            if tombstone { None } else { Some(&value) },
            &headers,
        );
    }
    b.build().expect("build batch")
}

// ---- configuration ----------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    EveryAppend,
    Manual,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::EveryAppend => "every",
            Mode::Manual => "manual",
        }
    }

    fn parse(s: &str) -> Mode {
        match s {
            "every" => Mode::EveryAppend,
            "manual" => Mode::Manual,
            other => panic!("unknown child mode {other:?}"),
        }
    }

    fn config(self) -> LogConfig {
        match self {
            Mode::EveryAppend => LogConfig::default()
                .flush(FlushPolicy::EveryAppend)
                .segment_bytes(64 << 10)
                .segment_ms(None)
                .index_interval_bytes(1024)
                .max_message_bytes(60 << 10)
                .retention_ms(None)
                .retention_bytes(None)
                // Small, so the recovery point also moves within a segment and recovery
                // resumes scanning from the middle of a file.
                .recovery_checkpoint_bytes(16 << 10)
                .recovery(RecoveryMode::TruncateTail),
            Mode::Manual => LogConfig::default()
                .flush(FlushPolicy::Manual)
                .segment_bytes(256 << 10)
                .segment_ms(None)
                .index_interval_bytes(1024)
                .max_message_bytes(60 << 10)
                .retention_ms(None)
                .retention_bytes(None)
                .recovery(RecoveryMode::TruncateTail),
        }
    }
}

// ---- the child --------------------------------------------------------------------------------

/// The child writer. Returns at once in a normal test run; in a child process it appends until
/// it is killed and never returns.
#[test]
fn crash_child_entry() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    child_main(PathBuf::from(dir));
}

fn child_fail(msg: String) -> ! {
    let out = std::io::stdout();
    let mut out = out.lock();
    let _ = writeln!(out, "\nERR {}", msg.replace('\n', " | "));
    let _ = out.flush();
    std::process::exit(3);
}

fn child_main(dir: PathBuf) -> ! {
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| child_fail(format!("{k} not set")));
    let mode = Mode::parse(&env(CHILD_MODE_ENV));
    let run: u32 = env(CHILD_RUN_ENV).parse().unwrap();
    let threads: u32 = env(CHILD_THREADS_ENV).parse().unwrap();
    // The parent closed the log before spawning us, but another test thread of the parent may
    // have forked (to spawn its own child) while the log was open: until that process execs, it
    // holds a duplicate of the lock file's descriptor, and with it the lock. Wait that out.
    let deadline = Instant::now() + Duration::from_secs(5);
    let log = loop {
        match Log::open(&dir, mode.config()) {
            Ok(l) => break Arc::new(l),
            Err(e) if matches!(e.kind(), ErrorKind::Locked { .. }) && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => child_fail(format!("open: {e}")),
        }
    };
    {
        let r = log.recovery_report();
        let trunc = r
            .truncation
            .as_ref()
            .map_or("-".to_string(), |t| t.offset.to_string());
        let out = std::io::stdout();
        let mut out = out.lock();
        // The leading newline separates us from whatever the test harness printed.
        let _ = writeln!(
            out,
            "\nSTART {} {} {} {}",
            log.high_watermark(),
            r.scanned_bytes,
            r.scanned_batches,
            trunc
        );
        let _ = out.flush();
    }
    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            let log = Arc::clone(&log);
            thread::spawn(move || child_append_forever(&log, mode, run, thread))
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    child_fail("an appending thread stopped".into());
}

fn child_append_forever(log: &Log, mode: Mode, run: u32, thread: u32) -> ! {
    let mut seq = 0u64;
    loop {
        let id = BatchId { run, thread, seq };
        let batch = build_batch(id);
        let info = match log.append(&batch) {
            Ok(i) => i,
            Err(e) => child_fail(format!("append {id:?}: {e}")),
        };
        if info.last_offset - info.base_offset + 1 != u64::from(batch.record_count()) {
            child_fail(format!("append {id:?} returned {info:?}"));
        }
        if mode == Mode::EveryAppend && log.durable_offset() <= info.last_offset {
            child_fail(format!(
                "append {id:?} returned {info:?} but durable_offset is {}",
                log.durable_offset()
            ));
        }
        let out = std::io::stdout();
        let mut out = out.lock();
        let _ = writeln!(
            out,
            "ACK {run} {thread} {seq} {} {}",
            info.base_offset, info.last_offset
        );
        let _ = out.flush();
        drop(out);
        seq += 1;
    }
}

// ---- the parent -------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct Ack {
    id: BatchId,
    base: u64,
    last: u64,
}

#[derive(Debug)]
struct Start {
    next_offset: u64,
    scanned_bytes: u64,
    truncation: Option<u64>,
}

enum Line {
    Start(Start),
    Ack(Ack),
    Err(String),
}

fn parse_line(line: &str) -> Option<Line> {
    let mut w = line.split_whitespace();
    let tag = w.next()?;
    let mut num = || -> u64 { w.next().expect("field").parse().expect("number") };
    match tag {
        "START" => {
            let next_offset = num();
            let scanned_bytes = num();
            let _batches = num();
            let t = line.split_whitespace().nth(4)?;
            Some(Line::Start(Start {
                next_offset,
                scanned_bytes,
                truncation: t.parse().ok(),
            }))
        }
        "ACK" => {
            let run = num() as u32;
            let thread = num() as u32;
            let seq = num();
            let base = num();
            let last = num();
            Some(Line::Ack(Ack {
                id: BatchId { run, thread, seq },
                base,
                last,
            }))
        }
        "ERR" => Some(Line::Err(line.to_string())),
        _ => None,
    }
}

struct Spawned {
    child: Child,
    lines: Receiver<Line>,
    stdout_thread: thread::JoinHandle<()>,
    stderr_thread: thread::JoinHandle<String>,
}

fn spawn_child(dir: &Path, mode: Mode, run: u32, threads: u32) -> Spawned {
    let mut child = common::child_command(CHILD_TEST_NAME)
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_MODE_ENV, mode.name())
        .env(CHILD_RUN_ENV, run.to_string())
        .env(CHILD_THREADS_ENV, threads.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout_thread = thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            // A line without its newline was cut by the kill: it was never acknowledged.
            if buf.last() != Some(&b'\n') {
                return;
            }
            if let Some(l) = parse_line(&String::from_utf8_lossy(&buf)) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        }
    });
    let stderr_thread = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    Spawned {
        child,
        lines: rx,
        stdout_thread,
        stderr_thread,
    }
}

/// What a full read of the recovered log found.
struct Contents {
    /// `(base_offset, last_offset, id)` of every batch, in offset order.
    batches: Vec<(u64, u64, BatchId)>,
}

/// Reads the whole log and checks every batch against the generator, byte for byte.
fn verify_log(log: &Log, expected_cache: &mut HashMap<BatchId, RecordBatch>) -> Contents {
    assert_eq!(
        log.log_start_offset(),
        0,
        "no retention: the log must start at 0"
    );
    let end = log.high_watermark();
    let mut next = 0u64;
    let mut batches = Vec::new();
    while next < end {
        let views = log
            .read(next, 256 << 10)
            .unwrap_or_else(|e| panic!("read at {next} (log end {end}): {e}"));
        assert!(
            !views.is_empty(),
            "read at {next} below the end {end} returned nothing"
        );
        for v in &views {
            assert_eq!(
                v.base_offset(),
                next,
                "batches must be contiguous: expected a batch at {next}"
            );
            let records = v
                .records()
                .unwrap_or_else(|e| panic!("records of batch at {next}: {e}"));
            let mut id = None;
            let mut n = 0u64;
            for r in records.iter() {
                let r = r.unwrap_or_else(|e| panic!("record in batch at {next}: {e}"));
                assert_eq!(r.offset(), next + n, "record offsets in batch at {next}");
                let (rid, index) = r
                    .key()
                    .and_then(parse_key)
                    .unwrap_or_else(|| panic!("record {} has a foreign key", r.offset()));
                assert_eq!(u64::from(index), n, "record index at offset {}", r.offset());
                if let Some(prev) = id {
                    assert_eq!(prev, rid, "one batch id per batch at {next}");
                }
                id = Some(rid);
                n += 1;
            }
            let id = id.expect("a batch has records");
            assert_eq!(n, u64::from(v.record_count()));
            assert_eq!(v.last_offset(), next + n - 1);
            let expected = expected_cache.entry(id).or_insert_with(|| build_batch(id));
            let stored = v.as_bytes();
            assert_eq!(
                stored.len(),
                expected.len(),
                "length of batch {id:?} at offset {next}"
            );
            // Kafka's big-endian baseOffset (FORMAT.md 3.1).
            #[allow(clippy::big_endian_bytes)]
            let stamped = (next as i64).to_be_bytes();
            assert_eq!(&stored[0..8], &stamped, "stamped base offset of {id:?}");
            assert!(
                stored[8..] == expected.as_bytes()[8..],
                "batch {id:?} at offset {next} differs from what was appended"
            );
            batches.push((v.base_offset(), v.last_offset(), id));
            next = v.last_offset() + 1;
        }
    }
    assert_eq!(next, end, "the last batch must end at next_offset");
    // Random access goes through the offset indexes that recovery kept, rebuilt or extended:
    // every lookup must land on the batch holding the offset.
    let mut rng = XorShift::new(end);
    for _ in 0..if end == 0 { 0 } else { 200 } {
        let o = rng.below(end);
        let i = batches.partition_point(|b| b.1 < o);
        let (base, last, id) = batches[i];
        let views = log
            .read(o, 1)
            .unwrap_or_else(|e| panic!("random read at {o}: {e}"));
        let v = views
            .first()
            .unwrap_or_else(|| panic!("random read at {o} returned nothing"));
        assert_eq!(
            (v.base_offset(), v.last_offset()),
            (base, last),
            "random read at {o} found the wrong batch (expected {id:?})"
        );
    }
    Contents { batches }
}

/// Checks the structure of the log against what the children did and said.
fn check_contents(contents: &Contents, acks: &[Ack], what: &str) {
    let by_base: HashMap<u64, (u64, BatchId)> = contents
        .batches
        .iter()
        .map(|&(b, l, id)| (b, (l, id)))
        .collect();
    for a in acks {
        match by_base.get(&a.base) {
            Some(&(last, id)) => {
                assert_eq!(
                    (id, last),
                    (a.id, a.last),
                    "{what}: acknowledged batch {a:?} was replaced"
                )
            }
            None => panic!(
                "{what}: acknowledged batch {a:?} is missing (log ends at {})",
                contents.batches.last().map_or(0, |b| b.1 + 1)
            ),
        }
    }
    // Children run one after another, and each thread appends its batches in order, one at a
    // time: in offset order the runs never go back, and each thread's sequence numbers are
    // 0, 1, 2, ... with no gap (the log is a prefix of what was appended).
    let mut last_run = 0u32;
    let mut next_seq: HashMap<(u32, u32), u64> = HashMap::new();
    for &(base, _, id) in &contents.batches {
        assert!(
            id.run >= last_run,
            "{what}: batch {id:?} at {base} after a batch of run {last_run}"
        );
        last_run = id.run;
        let expected = next_seq.entry((id.run, id.thread)).or_insert(0);
        assert_eq!(
            id.seq, *expected,
            "{what}: batch {id:?} at offset {base}: thread's batches must be a gap-free prefix"
        );
        *expected += 1;
    }
}

/// Sanity checks of what recovery reports after a crash.
fn check_report(log: &Log, mode: Mode, max_acked_next: u64, what: &str) {
    let r = log.recovery_report();
    let config = mode.config();
    // A roll always writes a recovery point (and so does a clean close); only a log that never
    // rolled may lack one.
    assert!(
        r.checkpoint_used || log.segment_count() == 1,
        "{what}: {} segments but no usable recovery point: {r:?}",
        log.segment_count()
    );
    assert!(
        r.scanned_bytes <= log.size_in_bytes(),
        "{what}: scanned more than the log holds: {r:?}"
    );
    assert!(
        r.scanned_batches * 57 <= r.scanned_bytes,
        "{what}: {} batches cannot fit in {} bytes",
        r.scanned_batches,
        r.scanned_bytes
    );
    if mode == Mode::EveryAppend {
        // Every acknowledged byte was synced, and the recovery point follows synced data within
        // recovery_checkpoint_bytes (and moves at every roll): recovery scans a bounded tail.
        let bound = 2 * config.get_segment_bytes();
        assert!(
            r.scanned_bytes <= bound,
            "{what}: recovery scanned {} bytes, more than {bound}: the checkpoint is not \
             bounding recovery ({r:?})",
            r.scanned_bytes
        );
    }
    if let Some(t) = &r.truncation {
        assert_eq!(
            t.offset,
            log.high_watermark(),
            "{what}: the cut is where the log ends: {t:?}"
        );
        assert!(
            t.offset >= max_acked_next,
            "{what}: recovery cut acknowledged data: {t:?}"
        );
        assert!(t.position >= 24, "{what}: cut inside a file header: {t:?}");
        assert!(t.path.starts_with(log.dir()), "{t:?}");
        assert!(
            t.path.exists(),
            "{what}: the cut file is the active one: {t:?}"
        );
    }
    // A segment whose file was created but not yet given its header when the process died is
    // removed and created afresh as the active segment; anything else removed stays removed.
    let active = format!("{:020}.", log.segment_base_offsets().last().unwrap());
    for f in &r.removed_files {
        assert!(f.starts_with(log.dir()), "{what}: removed {f:?}");
        let recreated = f
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(&active));
        assert!(
            recreated || !f.exists(),
            "{what}: reported removed but exists: {f:?}; {r:?}, segments {:?}",
            log.segment_base_offsets()
        );
    }
    assert!(
        log.durable_offset() >= log.high_watermark(),
        "{what}: recovery syncs what it keeps: durable {} < next {}",
        log.durable_offset(),
        log.high_watermark()
    );
}

struct Totals {
    acks: usize,
    truncations: usize,
    scanned_batches: u64,
    iterations_with_acks: usize,
    /// Opens after a clean close that scanned anyway (FORMAT.md section 6: they must not).
    rescans_after_clean_close: Vec<String>,
}

fn run_crash_iterations(mode: Mode, iterations: u32, seed: u64) -> Totals {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let config = mode.config();
    let mut acks: Vec<Ack> = Vec::new();
    let mut cache: HashMap<BatchId, RecordBatch> = HashMap::new();
    // Set when the parent recovered, verified and closed the log after the previous run.
    let mut clean_next: Option<u64> = Some(0);
    // What the parent's recovery of the previous run found, for messages.
    let mut last_report = String::from("(fresh log)");
    let mut totals = Totals {
        acks: 0,
        truncations: 0,
        scanned_batches: 0,
        iterations_with_acks: 0,
        rescans_after_clean_close: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(50);
    for run in 0..iterations {
        let mut rng = XorShift::new(seed ^ u64::from(run) << 20);
        let threads = if run == 0 {
            1
        } else {
            [1, 1, 2, 3, 4][rng.below(5) as usize]
        };
        let delay = Duration::from_millis(5 + rng.below(196));
        // Every fourth run the parent does not look: the next child recovers the crash itself
        // and appends after whatever recovery kept.
        let parent_checks = run % 4 != 2 || run + 1 == iterations;
        let what = format!("{mode:?} run {run} ({threads} threads, kill after {delay:?})");

        let mut sp = spawn_child(&path, mode, run, threads);
        let start = match sp.lines.recv_timeout(Duration::from_secs(20)) {
            Ok(Line::Start(s)) => s,
            Ok(Line::Err(e)) => {
                let _ = sp.child.wait();
                panic!(
                    "{what}: child failed: {e}\n{}",
                    sp.stderr_thread.join().unwrap()
                )
            }
            Ok(Line::Ack(_)) => panic!("{what}: ACK before START"),
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                let _ = sp.child.kill();
                let _ = sp.child.wait();
                panic!(
                    "{what}: child did not start\n{}",
                    sp.stderr_thread.join().unwrap()
                )
            }
        };
        let max_acked_next = acks.iter().map(|a| a.last + 1).max().unwrap_or(0);
        match clean_next {
            Some(n) => {
                assert_eq!(
                    start.next_offset, n,
                    "{what}: child must find the log where the parent closed it"
                );
                assert_eq!(
                    start.truncation, None,
                    "{what}: nothing cut after a clean close"
                );
                // Checked at the end, so that one failure does not hide the data checks.
                if start.scanned_bytes != 0 {
                    totals.rescans_after_clean_close.push(format!(
                        "run {run}: the child scanned {} bytes although the parent had closed \
                         the log cleanly after recovery; the parent's recovery: {last_report}",
                        start.scanned_bytes
                    ));
                }
            }
            None => {
                assert!(
                    start.next_offset >= max_acked_next,
                    "{what}: child recovered to {} but {max_acked_next} was acknowledged",
                    start.next_offset
                );
                if let Some(t) = start.truncation {
                    assert_eq!(t, start.next_offset, "{what}");
                }
            }
        }

        thread::sleep(delay);
        if let Ok(Some(status)) = sp.child.try_wait() {
            let lines: Vec<Line> = sp.lines.try_iter().collect();
            let errs: Vec<&String> = lines
                .iter()
                .filter_map(|l| match l {
                    Line::Err(e) => Some(e),
                    _ => None,
                })
                .collect();
            panic!(
                "{what}: child exited by itself ({status}): {errs:?}\n{}",
                sp.stderr_thread.join().unwrap()
            );
        }
        sp.child.kill().expect("kill child");
        let status = sp.child.wait().expect("wait child");
        assert!(!status.success(), "{what}: child was killed: {status}");
        sp.stdout_thread.join().unwrap();
        let stderr = sp.stderr_thread.join().unwrap();
        let mut run_acks = 0;
        for l in sp.lines.try_iter() {
            match l {
                Line::Ack(a) => {
                    assert_eq!(a.id.run, run, "{what}");
                    acks.push(a);
                    run_acks += 1;
                }
                Line::Err(e) => panic!("{what}: child reported {e}\n{stderr}"),
                Line::Start(_) => panic!("{what}: second START"),
            }
        }
        totals.acks += run_acks;
        if run_acks > 0 {
            totals.iterations_with_acks += 1;
        }

        if parent_checks {
            let max_acked_next = acks.iter().map(|a| a.last + 1).max().unwrap_or(0);
            let log = common::retry_locked(|| Log::open(&path, config.clone()));
            if log.recovery_report().truncation.is_some() {
                totals.truncations += 1;
            }
            totals.scanned_batches += log.recovery_report().scanned_batches;
            check_report(&log, mode, max_acked_next, &what);
            let contents = verify_log(&log, &mut cache);
            check_contents(&contents, &acks, &what);
            // The recovered log takes appends again at its end.
            let next = log.high_watermark();
            last_report = format!(
                "{:?}, segments {:?}",
                log.recovery_report(),
                log.segment_base_offsets()
            );
            log.close()
                .unwrap_or_else(|e| panic!("{what}: close after recovery: {e}"));
            clean_next = Some(next);
        } else {
            clean_next = None;
        }
        if Instant::now() > deadline {
            eprintln!(
                "{mode:?}: stopping after {} runs to bound the run time",
                run + 1
            );
            break;
        }
    }
    // A final reopen still holds everything.
    let log = common::retry_locked(|| Log::open(&path, config.clone()));
    let contents = verify_log(&log, &mut cache);
    check_contents(&contents, &acks, "final reopen");
    log.close().unwrap();
    totals
}

/// SIGKILL during `FlushPolicy::EveryAppend` appends from 1..=4 threads (group commit), with
/// segment rolls and mid-segment recovery points: every acknowledged batch survives byte for
/// byte, and the log stays a gap-free prefix of what was appended.
#[test]
fn sigkill_every_append_keeps_acknowledged_prefix() {
    let t = Instant::now();
    let totals = run_crash_iterations(Mode::EveryAppend, 60, 0x5EED_0001);
    eprintln!(
        "every-append: {} acks, {} truncations, {} batches scanned in {:?}",
        totals.acks,
        totals.truncations,
        totals.scanned_batches,
        t.elapsed()
    );
    assert!(
        totals.iterations_with_acks >= 10,
        "too few runs appended anything ({}); the test is not testing",
        totals.iterations_with_acks
    );
    assert!(
        totals.rescans_after_clean_close.is_empty(),
        "{:#?}",
        totals.rescans_after_clean_close
    );
}

/// SIGKILL during `FlushPolicy::Manual` appends (nothing fsynced except at rolls): whatever an
/// `append` returned for is still there after the crash, because the page cache survives the
/// process; recovery must keep the written-but-unsynced tail it scans.
#[test]
fn sigkill_manual_flush_keeps_page_cache_data() {
    let t = Instant::now();
    let totals = run_crash_iterations(Mode::Manual, 30, 0x5EED_0002);
    eprintln!(
        "manual: {} acks, {} truncations, {} batches scanned in {:?}",
        totals.acks,
        totals.truncations,
        totals.scanned_batches,
        t.elapsed()
    );
    assert!(
        totals.iterations_with_acks >= 5,
        "too few runs appended anything ({})",
        totals.iterations_with_acks
    );
    // Unsynced appends lie past the recovery point: recovery found them by scanning.
    assert!(
        totals.scanned_batches > 0,
        "recovery never scanned a batch: nothing unflushed was at stake"
    );
    assert!(
        totals.rescans_after_clean_close.is_empty(),
        "{:#?}",
        totals.rescans_after_clean_close
    );
}

/// Spawns a child, waits until it acknowledged at least `acks` batches, and kills it.
fn crash_after_acks(path: &Path, mode: Mode, run: u32, acks: usize) -> Vec<Ack> {
    let mut sp = spawn_child(path, mode, run, 1);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < acks {
        match sp
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(Line::Start(_)) => {}
            Ok(Line::Ack(a)) => got.push(a),
            Ok(Line::Err(e)) => panic!("child failed: {e}"),
            Err(e) => {
                let _ = sp.child.kill();
                let _ = sp.child.wait();
                panic!("child gave {} of {acks} acks: {e:?}", got.len())
            }
        }
    }
    sp.child.kill().unwrap();
    sp.child.wait().unwrap();
    sp.stdout_thread.join().unwrap();
    got.extend(sp.lines.try_iter().filter_map(|l| match l {
        Line::Ack(a) => Some(a),
        _ => None,
    }));
    got
}

/// FORMAT.md section 6: "If anything was scanned, it is synced and a new checkpoint written",
/// and after a clean close nothing is scanned. So: crash with unflushed batches past the
/// recovery point, recover (which scans them), close cleanly, reopen: nothing may be scanned.
#[test]
fn clean_close_after_crash_recovery_scans_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let config = Mode::Manual.config();
    let acks = crash_after_acks(&path, Mode::Manual, 0, 5);
    let acked_next = acks.iter().map(|a| a.last + 1).max().unwrap();

    let log = common::retry_locked(|| Log::open(&path, config.clone()));
    let first = log.recovery_report().clone();
    assert!(
        first.scanned_batches >= acks.len() as u64,
        "the unflushed batches lie past the recovery point: {first:?}"
    );
    assert!(log.high_watermark() >= acked_next);
    let next = log.high_watermark();
    log.close().unwrap();

    let log = common::retry_locked(|| Log::open(&path, config.clone()));
    let second = log.recovery_report().clone();
    assert_eq!(log.high_watermark(), next);
    assert_eq!(
        (second.scanned_bytes, second.scanned_batches),
        (0, 0),
        "reopening after a clean close scanned again: recovery (scanned {} bytes) did not \
         move the recovery point, and neither did close. First open: {first:?}; second: \
         {second:?}",
        first.scanned_bytes
    );
    log.close().unwrap();
}

/// The parent side never leaves a lock behind: a killed child's lock is released by the kernel.
#[test]
fn killed_child_releases_the_directory_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let mut sp = spawn_child(&path, Mode::Manual, 0, 1);
    match sp.lines.recv_timeout(Duration::from_secs(20)) {
        Ok(Line::Start(_)) => {}
        _ => panic!("child did not start"),
    }
    // While the child lives, the directory is locked against us.
    match Log::open(&path, Mode::Manual.config()) {
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::Locked { .. }),
            "expected Locked, got {e}"
        ),
        Ok(_) => panic!("opened a log another process holds"),
    }
    sp.child.kill().unwrap();
    sp.child.wait().unwrap();
    sp.stdout_thread.join().unwrap();
    let log = Log::open(&path, Mode::Manual.config()).expect("lock released by the kernel");
    log.close().unwrap();
}

// ---- crash states built in-process ------------------------------------------------------------
//
// A crash can leave an older recovery point than the data (FORMAT.md section 5: finding an older
// version after a crash is harmless, recovery just scans more). Putting back a saved
// `recovery-point` file reproduces that state exactly, without a child process.

fn append_batches(log: &Log, run: u32, count: u64) {
    for seq in 0..count {
        log.append(&build_batch(BatchId {
            run,
            thread: 0,
            seq,
        }))
        .unwrap();
    }
}

/// The log crashed with unsynced batches after its recovery point *in the active segment*.
#[test]
fn recovery_in_active_segment_moves_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let config = Mode::Manual.config();
    let cp_path = dir.path().join("recovery-point");
    let log = common::retry_locked(|| Log::open(dir.path(), config.clone()));
    append_batches(&log, 1, 3);
    log.close().unwrap();
    let old_point = std::fs::read(&cp_path).expect("close writes a recovery point");
    let log = common::retry_locked(|| Log::open(dir.path(), config.clone()));
    append_batches(&log, 2, 3);
    assert_eq!(log.segment_count(), 1);
    let next = log.high_watermark();
    log.close().unwrap();
    std::fs::write(&cp_path, &old_point).unwrap();

    let log = common::retry_locked(|| Log::open(dir.path(), config.clone()));
    let first = log.recovery_report().clone();
    assert_eq!(first.scanned_batches, 3, "{first:?}");
    assert_eq!(log.high_watermark(), next);
    log.close().unwrap();

    let log = common::retry_locked(|| Log::open(dir.path(), config.clone()));
    let second = log.recovery_report().clone();
    assert_eq!(
        second.scanned_batches, 0,
        "after recovering (first open: {first:?}) and closing cleanly, the next open scanned \
         again ({second:?}): neither recovery nor close wrote a new recovery point"
    );
    log.close().unwrap();
}

/// The log crashed in a roll: the new segment exists, the recovery point is still in the
/// previous (now sealed) segment, before batches that were synced by the seal.
#[test]
fn recovery_in_sealed_segment_moves_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let config = Mode::Manual.config();
    let cp_path = dir.path().join("recovery-point");
    let log = common::retry_locked(|| Log::open(dir.path(), config.clone()));
    append_batches(&log, 1, 3);
    log.close().unwrap();
    let old_point = std::fs::read(&cp_path).expect("close writes a recovery point");
    let log = common::retry_locked(|| Log::open(dir.path(), config.clone()));
    append_batches(&log, 2, 3);
    log.roll().unwrap();
    assert_eq!(log.segment_count(), 2);
    let next = log.high_watermark();
    log.close().unwrap();
    std::fs::write(&cp_path, &old_point).unwrap();

    let log = common::retry_locked(|| Log::open(dir.path(), config.clone()));
    let first = log.recovery_report().clone();
    assert_eq!(first.scanned_batches, 3, "{first:?}");
    assert_eq!(log.high_watermark(), next);
    assert_eq!(log.segment_count(), 2);
    log.close().unwrap();

    let log = common::retry_locked(|| Log::open(dir.path(), config.clone()));
    let second = log.recovery_report().clone();
    assert_eq!(
        second.scanned_batches, 0,
        "after recovering (first open: {first:?}) and closing cleanly, the next open scanned \
         the sealed segment again ({second:?}): no new recovery point was written"
    );
    log.close().unwrap();
}
