//! A process killed (SIGKILL) while it appends and moves its log start with
//! `Log::delete_records_before` (Kafka's DeleteRecords): after reopening, the log start is at
//! least every start the child was told about (the call returned, so it must hold), never past
//! the end, and every record from it on is readable.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use riverbed::{BatchBuilder, Compression, Log, LogConfig};

const DIR_ENV: &str = "RIVERBED_DELETE_RECORDS_CRASH_DIR";

fn config() -> LogConfig {
    LogConfig::default()
        .segment_bytes(4096)
        .max_message_bytes(4000)
        .retention_ms(None)
}

#[test]
fn delete_records_crash_child_entry() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let log = Log::open(Path::new(&dir), config()).unwrap();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\nSTART");
    let _ = out.flush();
    for i in 0u64.. {
        let mut b = BatchBuilder::new(Compression::None);
        for j in 0..3u64 {
            let o = log.high_watermark() + j;
            b.append(1_700_000_000_000, None, Some(&o.to_le_bytes()), &[]);
        }
        log.append(&b.build().unwrap()).unwrap();
        // Inside the batch just written, most of the time: the start lands mid-segment.
        let target = log.high_watermark() - 1 - (i % 3);
        let start = log.delete_records_before(target).unwrap();
        let _ = writeln!(out, "\ndeleted {start}");
        let _ = out.flush();
    }
}

#[test]
fn sigkill_while_deleting_records_keeps_every_acknowledged_start() {
    let exe = std::env::current_exe().unwrap();
    for run in 0..6u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(&exe)
            .args(["--exact", "delete_records_crash_child_entry", "--nocapture"])
            .env(DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut acknowledged = 0u64;
        let mut started = false;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !started && Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
                started = line == "START";
            }
        }
        assert!(started, "the child never started");
        std::thread::sleep(Duration::from_millis(30 + 37 * run));
        let _ = child.kill(); // SIGKILL on Unix
        let _ = child.wait();
        let _ = reader.join();
        for line in rx.try_iter() {
            // A line cut by the kill was never fully said.
            if let Some(s) = line.strip_prefix("deleted ") {
                if let Ok(s) = s.parse::<u64>() {
                    acknowledged = acknowledged.max(s);
                }
            }
        }
        assert!(
            acknowledged > 0,
            "run {run}: the child acknowledged nothing"
        );
        let log = Log::open(dir.path(), config()).unwrap();
        let start = log.log_start_offset();
        let end = log.high_watermark();
        assert!(
            start >= acknowledged,
            "run {run}: start {start} below the acknowledged {acknowledged}"
        );
        assert!(start <= end, "run {run}: start {start} past the end {end}");
        let mut offset = start;
        while offset < end {
            for b in log.read(offset, 1 << 20).unwrap() {
                for r in b.records().unwrap().iter() {
                    let r = r.unwrap();
                    if r.offset() >= offset {
                        assert_eq!(r.value(), Some(&r.offset().to_le_bytes()[..]));
                        offset = r.offset() + 1;
                    }
                }
            }
        }
        log.close().unwrap();
    }
}
