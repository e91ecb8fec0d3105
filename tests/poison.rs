//! A write that fails poisons the log; reopening recovers everything that was acknowledged.
//!
//! Making `fsync` fail needs root (a device-mapper error target or fault injection), but a
//! failing *write* can be had without privileges: a process whose file-size limit
//! (`RLIMIT_FSIZE`, `ulimit -f`) is below `segment_bytes`, with `SIGXFSZ` ignored, gets `EFBIG`
//! when the log extends a new segment file to its preallocated size at a roll. Writing through
//! the map into an already preallocated file is not affected, so a log created without the limit
//! opens and appends normally until its first roll.
//!
//! The limit applies to the whole process, so the failing side runs in a child process: this test
//! binary re-executed through `sh -c 'trap "" XFSZ; ulimit -f ...; exec ...'`, with
//! `RIVERBED_POISON_CHILD_DIR` set. `poison_child_entry` returns at once in a normal run.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use riverbed::{BatchBuilder, Compression, ErrorKind, FlushPolicy, Log, LogConfig, RecordBatch};

const CHILD_DIR_ENV: &str = "RIVERBED_POISON_CHILD_DIR";
const SEGMENT_BYTES: u64 = 1 << 20;
/// `ulimit -f` blocks: 512 bytes each in dash (256 KiB), 1024 in bash (512 KiB); both far below
/// `SEGMENT_BYTES` and far above the index files and the checkpoint.
const ULIMIT_BLOCKS: u32 = 512;

fn config() -> LogConfig {
    LogConfig::default()
        .flush(FlushPolicy::EveryAppend)
        .segment_bytes(SEGMENT_BYTES)
        .segment_ms(None)
        .max_message_bytes(64 << 10)
        .retention_ms(None)
}

/// Batch `n`: 8 records of 1000 bytes, content from `n`.
fn batch(n: u64) -> RecordBatch {
    let mut b = BatchBuilder::new(Compression::None);
    for i in 0..8u64 {
        let v = vec![(n * 8 + i) as u8; 1000];
        b.append(
            1_700_000_000_000 + n as i64,
            Some(&(n * 8 + i).to_le_bytes()),
            Some(&v),
            &[],
        );
    }
    b.build().unwrap()
}

fn kind_name(e: &riverbed::Error) -> &'static str {
    match e.kind() {
        ErrorKind::Io { .. } => "io",
        ErrorKind::Poisoned { .. } => "poisoned",
        ErrorKind::Corruption { .. } => "corruption",
        _ => "other",
    }
}

fn say(line: String) {
    let out = std::io::stdout();
    let mut out = out.lock();
    let _ = writeln!(out, "\n{}", line.replace('\n', " | "));
    let _ = out.flush();
}

/// The child: appends under a file-size limit until the log fails, then probes the handle.
#[test]
fn poison_child_entry() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let fsize = limits
        .lines()
        .find(|l| l.starts_with("Max file size"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or("?")
        .to_string();
    say(format!("LIMIT {fsize}"));

    // A new log needs a preallocated segment bigger than the limit: open fails, cleanly.
    match Log::open(dir.join("fresh"), config()) {
        Ok(_) => say("FRESH ok".into()),
        Err(e) => say(format!("FRESH {} {e}", kind_name(&e))),
    }

    let log = match Log::open(dir.join("log"), config()) {
        Ok(l) => l,
        Err(e) => {
            say(format!("OPEN {} {e}", kind_name(&e)));
            std::process::exit(0);
        }
    };
    say(format!("START {}", log.high_watermark()));
    let mut n = 1000;
    let first_error = loop {
        match log.append(&batch(n)) {
            Ok(info) => say(format!("ACK {n} {} {}", info.base_offset, info.last_offset)),
            Err(e) => break e,
        }
        n += 1;
        if n > 1000 + 4 * SEGMENT_BYTES / 8000 {
            say("NOERR".into());
            std::process::exit(0);
        }
    };
    say(format!(
        "FAIL1 {} {} {first_error}",
        kind_name(&first_error),
        log.high_watermark()
    ));
    match log.append(&batch(n + 1)) {
        Ok(info) => say(format!("FAIL2 ok {}", info.base_offset)),
        Err(e) => say(format!("FAIL2 {} {e}", kind_name(&e))),
    }
    match log.roll() {
        Ok(()) => say("ROLL ok".into()),
        Err(e) => say(format!("ROLL {} {e}", kind_name(&e))),
    }
    // Reads do not depend on the writer: everything acknowledged is still readable.
    let mut at = log.log_start_offset();
    let mut read_error = None;
    while at < log.high_watermark() {
        match log.read(at, 1 << 20) {
            Ok(v) if !v.is_empty() => at = v.last().unwrap().last_offset() + 1,
            Ok(_) => break,
            Err(e) => {
                read_error = Some(e);
                break;
            }
        }
    }
    match read_error {
        None => say(format!("READ ok {at}")),
        Some(e) => say(format!("READ {} {e}", kind_name(&e))),
    }
    match log.close() {
        Ok(()) => say("CLOSE ok".into()),
        Err(e) => say(format!("CLOSE {} {e}", kind_name(&e))),
    }
    std::process::exit(0);
}

fn run_limited_child(dir: &Path) -> Vec<String> {
    let exe = std::env::current_exe().unwrap();
    let script = format!("trap '' XFSZ; ulimit -f {ULIMIT_BLOCKS} && exec \"$0\" \"$@\"");
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(exe)
        .args([
            "poison_child_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, dir)
        .stdin(Stdio::null())
        .output()
        .expect("run sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter(|l| {
            l.split_whitespace().next().is_some_and(|w| {
                w.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                    && w.len() >= 3
            })
        })
        .map(str::to_string)
        .collect()
}

fn field<'a>(lines: &'a [String], tag: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {tag} line in {lines:#?}"))
}

#[test]
fn failed_write_poisons_the_log_and_reopening_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    // Created without the limit: the active segment is preallocated to its full size.
    let log = common::retry_locked(|| Log::open(&path, config()));
    for n in 0..3 {
        log.append(&batch(n)).unwrap();
    }
    log.close().unwrap();

    let lines = run_limited_child(dir.path());
    for l in lines.iter().filter(|l| !l.starts_with("ACK ")) {
        eprintln!("child: {l}");
    }
    let limit: u64 = field(&lines, "LIMIT").parse().unwrap_or_else(|_| {
        panic!("the child has no file-size limit: {lines:#?}");
    });
    assert!(
        limit < SEGMENT_BYTES,
        "limit {limit} not below the segment size"
    );

    // Opening a new log under the limit fails with an I/O error (no SIGXFSZ, no panic).
    let fresh = field(&lines, "FRESH");
    assert!(fresh.starts_with("io "), "open of a fresh log: {fresh}");

    let start: u64 = field(&lines, "START").parse().unwrap();
    assert_eq!(start, 24, "the child sees the parent's three batches");
    let acks: Vec<(u64, u64, u64)> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("ACK "))
        .map(|r| {
            let v: Vec<u64> = r.split(' ').map(|x| x.parse().unwrap()).collect();
            (v[0], v[1], v[2])
        })
        .collect();
    assert!(
        !lines.iter().any(|l| l == "NOERR"),
        "no append failed under the limit: {lines:#?}"
    );
    assert!(
        acks.len() > 10,
        "the first segment filled before the failure"
    );
    // The first failure is the I/O error itself (from the write, or from the roll that needed a
    // new file), reported by the append that hit the limit.
    let fail1 = field(&lines, "FAIL1");
    assert!(fail1.starts_with("io "), "first failure: {fail1}");
    let acked_next = acks.last().unwrap().2 + 1;
    let fail1_next: u64 = fail1.split(' ').nth(1).unwrap().parse().unwrap();
    assert_eq!(
        fail1_next, acked_next,
        "the failed append must not have advanced the log"
    );
    // From then on the handle is poisoned: writes refuse with Poisoned until reopened.
    assert!(
        field(&lines, "FAIL2").starts_with("poisoned "),
        "append after the failure: {lines:#?}"
    );
    assert!(
        field(&lines, "ROLL").starts_with("poisoned "),
        "roll after the failure: {lines:#?}"
    );
    assert_eq!(
        field(&lines, "READ"),
        format!("ok {acked_next}"),
        "reads keep working on a poisoned log"
    );
    assert!(
        field(&lines, "CLOSE").starts_with("poisoned "),
        "close of a poisoned log reports it: {lines:#?}"
    );

    // Reopened without the limit: every acknowledged batch is there, nothing else, and the log
    // takes appends again.
    let log = common::retry_locked(|| Log::open(&path, config()));
    let report = log.recovery_report().clone();
    // The failed write may have left part of its batch in the file (an EveryAppend log writes
    // with pwrite, which the limit stops part way): recovery then cuts exactly that torn batch,
    // right after the last acknowledged one.
    if let Some(t) = &report.truncation {
        assert_eq!(t.offset, acked_next, "{report:?}");
    }
    assert_eq!(log.high_watermark(), acked_next, "{report:?}");
    let mut expected: Vec<(u64, u64)> = (0..3).map(|n| (n, n * 8)).collect();
    expected.extend(acks.iter().map(|&(n, base, _)| (n, base)));
    let mut at = 0;
    let mut i = 0;
    while at < log.high_watermark() {
        for v in log.read(at, 1 << 20).unwrap() {
            let (n, base) = expected[i];
            assert_eq!(v.base_offset(), base);
            assert!(
                v.as_bytes()[8..] == batch(n).as_bytes()[8..],
                "batch {n} at {base} differs"
            );
            at = v.last_offset() + 1;
            i += 1;
        }
    }
    assert_eq!(i, expected.len());
    let info = log.append(&batch(9999)).unwrap();
    assert_eq!(info.base_offset, acked_next);
    log.roll().unwrap();
    log.append(&batch(10000)).unwrap();
    log.close().unwrap();
}
