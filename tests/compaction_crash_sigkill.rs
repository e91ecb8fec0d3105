//! Real process crashes during compaction: a child process (this test binary, re-executed)
//! opens a compacted log and compacts it over and over, with a small key map (many passes) and
//! small segments (many swaps), until the parent kills it with SIGKILL at a pseudo-random moment,
//! often in the middle of a swap. The parent then reopens the log and checks that it opens
//! cleanly, that no `.cleaned` or `.swap` file is left, that every record still there is the one
//! appended at its offset, and that every key's latest value is there. Between kills the parent
//! appends a new round of records (so each child has dirty work) and rolls.
//!
//! When `RIVERBED_COMPACT_CHILD_DIR` is set, `compaction_child_entry` is the child and never
//! returns; in a normal test run it returns at once.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use riverbed::{
    BatchBuilder, CleanupPolicy, CompactionConfig, Compression, ErrorKind, Log, LogConfig,
};

mod common;

use common::mix;
use common::read_all;

const CHILD_DIR_ENV: &str = "RIVERBED_COMPACT_CHILD_DIR";
const CHILD_TEST_NAME: &str = "compaction_child_entry";
const T0: i64 = 1_700_000_000_000;
const KEYS: u64 = 300;
const ROUND: u64 = 1_200;

fn config() -> LogConfig {
    LogConfig::default()
        .segment_bytes(8 << 10)
        .segment_ms(None)
        .index_interval_bytes(512)
        .max_message_bytes(4 << 10)
        .retention_ms(None)
        .cleanup_policy(CleanupPolicy::Compact)
        .delete_retention_ms(0)
}

/// The record at `offset`: its key and value (every 13th is a tombstone) are a function of it.
fn record(offset: u64) -> (Vec<u8>, Option<Vec<u8>>) {
    let key = format!("key-{:05}", mix(offset) % KEYS).into_bytes();
    let value = (!offset.is_multiple_of(13)).then(|| {
        format!(
            "value-at-{offset}-{}",
            "v".repeat((mix(offset) % 50) as usize)
        )
        .into_bytes()
    });
    (key, value)
}

/// Appends the records `from..from + ROUND` (batches of 1 to 7, some zstd) and rolls.
fn append_round(log: &Log) {
    let end = log.high_watermark() + ROUND;
    while log.high_watermark() < end {
        let next = log.high_watermark();
        let n = (1 + mix(next) % 7).min(end - next);
        let compression = if mix(next).is_multiple_of(3) {
            Compression::Zstd { level: 1 }
        } else {
            Compression::None
        };
        let mut b = BatchBuilder::new(compression);
        for o in next..next + n {
            let (k, v) = record(o);
            b.append(T0 + o as i64, Some(&k), v.as_deref(), &[]);
        }
        log.append(&b.build().unwrap()).unwrap();
    }
    log.roll().unwrap();
}

fn open(dir: &Path) -> Log {
    // A child killed a moment ago may still hold the lock until the kernel reaps it.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Log::open(dir, config()) {
            Ok(l) => return l,
            Err(e) if matches!(e.kind(), ErrorKind::Locked { .. }) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("open {}: {e}", dir.display()),
        }
    }
}

#[test]
fn compaction_child_entry() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let log = open(&PathBuf::from(dir));
    let options = CompactionConfig::default()
        .buffer_bytes(4 << 10) // about 130 keys: several passes
        .now_ms(Some(T0 + 1_000_000_000))
        .force(true);
    let mut out = std::io::stdout();
    let _ = writeln!(out, "\nREADY");
    let _ = out.flush();
    loop {
        let report = log.compact(&options).unwrap_or_else(|e| {
            let _ = writeln!(out, "\nERR {e}");
            let _ = out.flush();
            std::process::exit(3)
        });
        let _ = writeln!(out, "\nDONE {}", report.segments_cleaned);
        let _ = out.flush();
    }
}

/// Checks the reopened log against the records appended: same offsets, same contents, every
/// key's latest value present (a key whose last record is a tombstone may be gone entirely).
fn verify(log: &Log, appended: u64, what: &str) {
    assert_eq!(log.high_watermark(), appended, "{what}");
    assert_eq!(log.log_start_offset(), 0, "{what}");
    let read = read_all(log, 64 << 10);
    let mut latest_read: HashMap<Vec<u8>, u64> = HashMap::new();
    for (offset, key, value, ts) in &read {
        let (k, v) = record(*offset);
        assert_eq!(key.as_deref(), Some(&k[..]), "{what}: key at {offset}");
        assert_eq!(value, &v, "{what}: value at {offset}");
        assert_eq!(*ts, T0 + *offset as i64, "{what}: timestamp at {offset}");
        latest_read.insert(k, *offset);
    }
    let mut latest: HashMap<Vec<u8>, u64> = HashMap::new();
    for o in 0..appended {
        latest.insert(record(o).0, o);
    }
    for (k, o) in latest {
        match (record(o).1, latest_read.get(&k)) {
            (Some(_), got) => assert_eq!(got, Some(&o), "{what}: latest of {k:?}"),
            (None, Some(got)) => assert_eq!(*got, o, "{what}: {k:?} came back after its delete"),
            (None, None) => {}
        }
    }
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
        .collect()
}

#[test]
fn sigkill_during_compaction_loses_nothing_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path());
        append_round(&log);
        log.close().unwrap();
    }
    let mut appended = ROUND;
    let mut killed_mid_swap = 0;
    let mut finished = 0;
    for run in 0..14u64 {
        let mut child = common::child_command(CHILD_TEST_NAME)
            .env(CHILD_DIR_ENV, dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                lines.read_line(&mut line).unwrap() > 0,
                "run {run}: child exited early"
            );
            assert!(!line.starts_with("ERR"), "run {run}: {line}");
            if line.starts_with("READY") {
                break;
            }
        }
        // Mostly early kills (inside the first runs' swaps), sometimes after some runs finished.
        let window = if run % 3 == 2 { 600_000 } else { 40_000 };
        std::thread::sleep(Duration::from_micros(mix(run) % window));
        child.kill().unwrap();
        let _ = child.wait();
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut lines, &mut rest);
        assert!(!rest.contains("ERR"), "run {run}: {rest}");
        finished += rest.matches("DONE").count();
        if !leftovers(dir.path()).is_empty() {
            killed_mid_swap += 1;
        }
        let log = open(dir.path());
        let what = format!("run {run}");
        assert!(
            leftovers(dir.path()).is_empty(),
            "{what}: {:?}",
            leftovers(dir.path())
        );
        verify(&log, appended, &what);
        append_round(&log);
        appended += ROUND;
        log.close().unwrap();
    }
    // A last, uninterrupted compaction leaves one record per live key.
    let log = open(dir.path());
    log.compact(&CompactionConfig::default().now_ms(Some(T0 + 1_000_000_000)))
        .unwrap();
    verify(&log, appended, "final");
    eprintln!("{killed_mid_swap} kills left swap files behind; {finished} runs finished");
    assert!(
        killed_mid_swap > 0,
        "no kill landed inside a swap: the test proves little"
    );
}
