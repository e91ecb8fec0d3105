//! The `riverbed` binary driven as a user would: produce and consume, formats, groups and lag,
//! reset-offsets, verify on sound and damaged directories, read-only commands beside a process
//! that holds the store, and usage errors.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_riverbed"));
    c.env_remove("RIVERBED_DIR");
    c
}

/// Runs `riverbed -d DIR args...` with `stdin`; returns the output.
fn run_in(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = bin()
        .arg("-d")
        .arg(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn riverbed");
    let mut input = child.stdin.take().expect("stdin");
    if !stdin.is_empty() {
        // A command that does not read its input (or refuses to run) may exit first: its exit
        // status and output tell what happened, not the broken pipe.
        if let Err(e) = input.write_all(stdin.as_bytes()) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
        }
    }
    drop(input);
    child.wait_with_output().expect("wait")
}

fn ok(dir: &Path, args: &[&str], stdin: &str) -> String {
    let out = run_in(dir, args, stdin);
    assert!(
        out.status.success(),
        "riverbed {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn json(dir: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(dir, args, "")).expect("JSON output")
}

fn store_with(topic: &str, partitions: &str, extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let mut args = vec!["topics", "create", topic, "-p", partitions];
    args.extend_from_slice(extra);
    ok(&dir, &args, "");
    (tmp, dir)
}

#[test]
fn produce_lines_and_consume_them_back() {
    let (_t, dir) = store_with("events", "1", &[]);
    let input = "k1:v1\nk2:v2\nno-key-here\n";
    ok(
        &dir,
        &["produce", "events", "-K", ":", "-H", "src=test"],
        input,
    );
    let out = ok(
        &dir,
        &["consume", "events", "-e", "-f", "%o|%k|%s|%h\\n"],
        "",
    );
    assert_eq!(
        out,
        "0|k1|v1|src=test\n1|k2|v2|src=test\n2||no-key-here|src=test\n"
    );
    // From a file, to an explicit partition.
    let (_t2, dir2) = store_with("two", "2", &[]);
    let file = dir2.join("input.txt");
    std::fs::write(&file, "a\nb\n").expect("write input");
    ok(
        &dir2,
        &[
            "produce",
            "two",
            "-p",
            "1",
            "-f",
            file.to_str().expect("path"),
        ],
        "",
    );
    let d = json(&dir2, &["topics", "describe", "two", "--json"]);
    assert_eq!(d["partitions"][0]["log_end_offset"], 0);
    assert_eq!(d["partitions"][1]["log_end_offset"], 2);
    assert_eq!(d["config"]["flush"], "manual");
}

#[test]
fn consume_start_positions_counts_and_json() {
    let (_t, dir) = store_with("t", "1", &[]);
    let lines: String = (0..10).map(|i| format!("v{i}\n")).collect();
    ok(&dir, &["produce", "t"], &lines);
    let vals = |args: &[&str]| {
        ok(&dir, args, "")
            .lines()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        vals(&["consume", "t", "-e", "-o", "-3"]),
        ["v7", "v8", "v9"]
    );
    assert_eq!(
        vals(&["consume", "t", "-e", "-o", "5", "-c", "2"]),
        ["v5", "v6"]
    );
    assert!(vals(&["consume", "t", "-e", "-o", "end"]).is_empty());
    // A timestamp after everything: nothing; the epoch: everything.
    assert!(vals(&["consume", "t", "-e", "-o", "@9999-01-01T00:00:00Z"]).is_empty());
    assert_eq!(vals(&["consume", "t", "-e", "-o", "@0"]).len(), 10);
    let out = ok(&dir, &["consume", "t", "-e", "-c", "2", "--json"], "");
    let recs: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1]["offset"], 1);
    assert_eq!(recs[1]["value"], "v1");
    assert_eq!(recs[1]["key"], Value::Null);
    assert!(recs[1]["timestamp"].as_i64().is_some());
    assert!(recs[1]["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    let fmt = ok(
        &dir,
        &[
            "consume",
            "t",
            "-e",
            "-c",
            "1",
            "-f",
            "%t/%p/%o %S %K %T%%\\n",
        ],
        "",
    );
    let ts = recs[0]["timestamp"].as_i64().expect("ts");
    assert_eq!(fmt, format!("t/0/0 2 -1 {ts}%\n"));
}

#[test]
fn group_lag_is_described_and_reset_offsets_moves_it() {
    let (_t, dir) = store_with("t", "2", &[]);
    let lines: String = (0..5).map(|i| format!("v{i}\n")).collect();
    ok(&dir, &["produce", "t", "-p", "0"], &lines);
    ok(&dir, &["produce", "t", "-p", "1"], &lines);
    // Commit both partitions, then move partition 1 back so the group lags 6 in all.
    ok(
        &dir,
        &["consume", "t", "-g", "g", "-o", "beginning", "-e"],
        "",
    );
    ok(
        &dir,
        &[
            "groups",
            "reset-offsets",
            "g",
            "--topic",
            "t:1",
            "--to-offset",
            "0",
            "--execute",
        ],
        "",
    );
    ok(
        &dir,
        &[
            "groups",
            "reset-offsets",
            "g",
            "--topic",
            "t:0",
            "--to-offset",
            "4",
            "--execute",
        ],
        "",
    );
    let d = json(&dir, &["groups", "describe", "g", "--json"]);
    assert_eq!(d["total_lag"], 6, "{d}");
    let parts = d["partitions"].as_array().expect("partitions");
    let committed: u64 = parts
        .iter()
        .map(|p| p["committed_offset"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(committed, 4);
    for p in parts {
        assert_eq!(
            p["lag"].as_u64().expect("lag"),
            p["log_end_offset"].as_u64().expect("end")
                - p["committed_offset"].as_u64().unwrap_or(0)
        );
    }
    let text = ok(&dir, &["groups", "describe", "g"], "");
    assert!(text.contains("Total lag: 6"), "{text}");
    assert!(ok(&dir, &["groups", "list"], "").contains("g "));

    // Dry run: the plan, and nothing changes.
    let plan = ok(
        &dir,
        &[
            "groups",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-earliest",
        ],
        "",
    );
    assert!(plan.contains("Dry run"), "{plan}");
    assert_eq!(
        json(&dir, &["groups", "describe", "g", "--json"])["total_lag"],
        6
    );
    // Execute: to the start of partition 0 and 1.
    ok(
        &dir,
        &[
            "groups",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-earliest",
            "--execute",
        ],
        "",
    );
    assert_eq!(
        json(&dir, &["groups", "describe", "g", "--json"])["total_lag"],
        10
    );
    // A consumer of the group resumes from there: all 10 records again.
    let again = ok(&dir, &["consume", "t", "-g", "g", "-e"], "");
    assert_eq!(again.lines().count(), 10, "{again}");
    assert_eq!(
        json(&dir, &["groups", "describe", "g", "--json"])["total_lag"],
        0
    );
    // Shift back by 2 on partition 0 only.
    ok(
        &dir,
        &[
            "groups",
            "reset-offsets",
            "g",
            "--topic",
            "t:0",
            "--shift-by",
            "-2",
            "--execute",
        ],
        "",
    );
    assert_eq!(
        json(&dir, &["groups", "describe", "g", "--json"])["total_lag"],
        2
    );
    // Delete the group.
    ok(&dir, &["groups", "delete", "g"], "");
    assert!(!ok(&dir, &["groups", "list"], "").contains("g "));
}

fn segment_logs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

#[test]
fn verify_sound_then_a_flipped_bit_in_a_sealed_segment() {
    let (_t, dir) = store_with(
        "t",
        "1",
        &[
            "--config",
            "segment_bytes=4096",
            "--config",
            "max_message_bytes=1024",
        ],
    );
    let lines: String = (0..200).map(|i| format!("value number {i:05}\n")).collect();
    for chunk in lines.lines().collect::<Vec<_>>().chunks(20) {
        ok(&dir, &["produce", "t"], &(chunk.join("\n") + "\n"));
    }
    let out = bin().arg("verify").arg(&dir).output().expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("sound"));

    let logs = segment_logs(&dir.join("t-0"));
    assert!(logs.len() >= 2, "expected a sealed segment: {logs:?}");
    let sealed = &logs[0];
    let mut bytes = std::fs::read(sealed).expect("read");
    let at = 24 + 70; // inside the first batch's records
    bytes[at] ^= 0x04;
    std::fs::write(sealed, &bytes).expect("write");
    let out = bin().arg("verify").arg(&dir).output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let expected = format!("{}:24: corrupt: expected CRC", sealed.display());
    assert!(text.contains(&expected), "{text}\nwanted {expected}");
    assert!(text.contains("CORRUPT"), "{text}");

    // dump shows the bad CRC, and a reader reports it with file and position.
    let dump = bin().arg("dump").arg(sealed).output().expect("run");
    assert!(String::from_utf8_lossy(&dump.stdout).contains("crcValid: false"));
    let out = run_in(&dir, &["consume", "t", "-e"], "");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        // The CRC field: file header (24) + its place in a Kafka v2 batch (17).
        err.contains("00000000000000000000.log") && err.contains("byte 41"),
        "{err}"
    );

    // A directory that is not a store cannot be verified: exit 2.
    let empty = tempfile::tempdir().expect("tempdir");
    let out = bin().arg("verify").arg(empty.path()).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let out = bin()
        .arg("verify")
        .arg(empty.path().join("missing"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

/// Every file under `dir` with its length and modification time.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("list") {
            let p = e.expect("entry").path();
            let m = std::fs::metadata(&p).expect("stat");
            if m.is_dir() {
                stack.push(p);
            } else {
                out.push((p, m.len(), m.modified().expect("mtime")));
            }
        }
    }
    out.sort();
    out
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn read_only_commands_beside_a_process_that_holds_the_store() {
    let (_t, dir) = store_with("t", "2", &[]);
    let lines: String = (0..6).map(|i| format!("k{i}:v{i}\n")).collect();
    ok(&dir, &["produce", "t", "-K", ":"], &lines);
    // Another process holds the store: a group member waiting for records.
    let holder = bin()
        .arg("-d")
        .arg(&dir)
        .args(["consume", "t", "-g", "live", "-o", "beginning"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn holder");
    let pid = holder.id();
    let _holder = Kill(holder);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = run_in(&dir, &["groups", "describe", "live", "--json"], "");
        if d.status.success() {
            let v: Value = serde_json::from_slice(&d.stdout).expect("json");
            if v["members"].as_array().is_some_and(|m| m.len() == 1) && v["total_lag"] == 0 {
                assert_eq!(v["state"], "Stable");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the holder never joined and caught up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = snapshot(&dir);
    // Read-only commands work and change nothing.
    ok(&dir, &["topics", "list"], "");
    let d = json(&dir, &["topics", "describe", "t", "--json"]);
    let end: u64 = (0..2)
        .map(|p| d["partitions"][p]["log_end_offset"].as_u64().expect("end"))
        .sum();
    assert_eq!(end, 6);
    assert_eq!(ok(&dir, &["consume", "t", "-e"], "").lines().count(), 6);
    let g = ok(&dir, &["groups", "describe", "live"], "");
    assert!(
        g.contains("live-member-0") && g.contains(&format!("process {pid}")),
        "{g}"
    );
    ok(&dir, &["stats"], "");
    let out = bin().arg("verify").arg(&dir).output().expect("verify");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for log in segment_logs(&dir.join("t-0")) {
        assert!(bin()
            .arg("dump")
            .arg(&log)
            .output()
            .expect("dump")
            .status
            .success());
    }
    assert_eq!(
        before,
        snapshot(&dir),
        "a read-only command changed the directory"
    );

    // Writing commands refuse, name the process, and change nothing.
    let out = run_in(&dir, &["produce", "t"], "x\n");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("process {pid}")), "{err}");
    let out = run_in(
        &dir,
        &[
            "groups",
            "reset-offsets",
            "live",
            "--topic",
            "t",
            "--to-earliest",
            "--execute",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("live member") && err.contains(&pid.to_string()),
        "{err}"
    );
    let out = run_in(&dir, &["topics", "delete", "t"], "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        before,
        snapshot(&dir),
        "a refused command changed the directory"
    );
}

#[test]
fn bad_arguments_are_usage_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for args in [
        vec!["bogus"],
        vec!["consume"],
        vec!["topics", "create"],
        vec!["groups", "reset-offsets", "g", "--topic", "t"],
        vec!["consume", "t", "--count", "many"],
    ] {
        let out = run_in(tmp.path(), &args, "");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("error:"),
            "{args:?}"
        );
    }
    // A command that needs the directory without one.
    let out = bin().args(["topics", "list"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    // Every command's help has an example.
    for cmd in [
        vec!["topics", "list"],
        vec!["topics", "create"],
        vec!["topics", "describe"],
        vec!["topics", "delete"],
        vec!["topics", "add-partitions"],
        vec!["produce"],
        vec!["consume"],
        vec!["groups", "list"],
        vec!["groups", "describe"],
        vec!["groups", "reset-offsets"],
        vec!["groups", "delete"],
        vec!["dump"],
        vec!["verify"],
        vec!["stats"],
    ] {
        let out = bin().args(&cmd).arg("--help").output().expect("run");
        assert!(out.status.success(), "{cmd:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Example"),
            "{cmd:?} --help has no example"
        );
    }
}

/// A compacted topic written by transactions: `verify` accepts the gaps compaction leaves,
/// `consume` skips them and never prints transaction markers, and `dump` shows the markers.
#[test]
fn compacted_and_transactional_data_is_sound_and_readable() {
    use riverbed::{CleanerConfig, CleanupPolicy, ProducerRecord, Store, StoreConfig, TopicConfig};
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    {
        let config = StoreConfig::default().cleaner(CleanerConfig::default().enabled(false));
        let store = Store::open_with(&dir, config).unwrap();
        let t = TopicConfig::new(1)
            .cleanup_policy(CleanupPolicy::Compact)
            .segment_bytes(4096)
            .max_message_bytes(2048);
        store.create_topic("table", t).unwrap();
        let p = store.producer();
        let txn = store.transactional_producer("writer").unwrap();
        txn.begin().unwrap();
        txn.send(ProducerRecord::new("table").key("gone").value("aborted"))
            .unwrap();
        txn.abort().unwrap();
        txn.begin().unwrap();
        txn.send(ProducerRecord::new("table").key("kept").value("committed"))
            .unwrap();
        txn.commit().unwrap();
        for i in 0..300 {
            p.send(
                ProducerRecord::new("table")
                    .key(format!("k{}", i % 3))
                    .value(format!("v{i}")),
            )
            .unwrap();
        }
        let report = store.compact_now("table").unwrap();
        assert!(report.records_removed > 0);
    }
    let verified = ok(&dir, &["verify", dir.to_str().unwrap()], "");
    assert!(verified.contains("0 corrupt"), "{verified}");
    let out = ok(&dir, &["consume", "table", "-e", "-f", "%o %k=%s\n"], "");
    assert!(out.contains("kept=committed"), "{out}");
    assert!(
        !out.contains("gone="),
        "the aborted record was compacted away: {out}"
    );
    // Three distinct filler keys: only their latest values (and the records of the active
    // segment) remain, with their original offsets.
    assert!(out.lines().count() < 300, "{out}");
    for line in out.lines() {
        let (offset, _) = line.split_once(' ').unwrap();
        offset.parse::<u64>().expect("an offset");
        assert!(line.contains('='), "a marker was printed: {line:?}");
    }
    let dump = ok(
        &dir,
        &[
            "dump",
            dir.join("table-0/00000000000000000000.log")
                .to_str()
                .unwrap(),
        ],
        "",
    );
    assert!(
        dump.contains("controlType: abort") || dump.contains("controlType: commit"),
        "{dump}"
    );
}

#[path = "cli/kafka_user.rs"]
mod kafka_user;

#[path = "cli/metadata_rebuild.rs"]
mod metadata_rebuild;
