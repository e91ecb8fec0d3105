//! The tool as a Kafka user drives it, with kcat's and Kafka's `kafka-*.sh` habits (issue "The
//! `riverbed` tool as a Kafka user expects it"): streamed input, signals, per-partition
//! offsets, kcat's format letters and flags, exit codes, group and topic options.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{bin, json, ok, run_in, store_with};

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Consumes the whole topic (`-e`) in the given format.
fn all(dir: &Path, topic: &str, format: &str) -> String {
    ok(dir, &["consume", topic, "-e", "-f", format], "")
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
}

/// Lines written to `produce` reach consumers while its input is still open (the linger, not
/// the end of the input, sends them), as kcat's producer does.
#[test]
fn streamed_input_is_visible_before_end_of_input() {
    let (_t, dir) = store_with("t", "1", &[]);
    let mut child = bin()
        .arg("-d")
        .arg(&dir)
        .args(["produce", "t"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(b"first\n").expect("write");
    input.flush().expect("flush");
    wait_until("the first line", || all(&dir, "t", "%s\\n") == "first\n");
    input.write_all(b"second\n").expect("write");
    wait_until("the second line", || {
        all(&dir, "t", "%s\\n") == "first\nsecond\n"
    });
    drop(input);
    assert!(child.wait().expect("wait").success());
}

/// SIGINT and SIGTERM send what was read (here held back by a long linger), make it durable
/// and end the command successfully.
#[test]
fn a_signal_sends_what_was_read_then_exits() {
    for sig in ["-INT", "-TERM"] {
        let (_t, dir) = store_with("t", "1", &[]);
        let mut child = bin()
            .arg("-d")
            .arg(&dir)
            .args(["produce", "t", "--linger-ms", "600000"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(b"a\nb\nc\n").expect("write");
        input.flush().expect("flush");
        // Nothing is sent before the linger or the signal.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(all(&dir, "t", "%s\\n"), "", "{sig}");
        signal(child.id(), sig);
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "{sig}: {}", stderr_of(&out));
        assert!(stderr_of(&out).contains("produced 3 records"), "{sig}");
        assert_eq!(all(&dir, "t", "%s\\n"), "a\nb\nc\n", "{sig}");
        drop(input);
    }
}

/// `-o N` without `-p` applies N to every partition; a partition without offset N is named on
/// stderr and starts at its nearest end (kcat's per-partition offsets).
#[test]
fn an_absolute_offset_applies_per_partition() {
    let (_t, dir) = store_with("t", "2", &[]);
    ok(&dir, &["produce", "t", "-p", "0"], "a\nb\nc\n");
    ok(&dir, &["produce", "t", "-p", "1"], "x\n");
    let out = run_in(
        &dir,
        &["consume", "t", "-o", "2", "-e", "-f", "%p:%s\\n"],
        "",
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0:c\n");
    let err = stderr_of(&out);
    assert!(
        err.contains("partition 1") && err.contains("out of range") && err.contains("end 1"),
        "{err}"
    );
}

/// `max_message_bytes` limits the batch as stored: a one-record batch of exactly the limit is
/// accepted, one byte more is refused.
#[test]
fn max_record_bytes_is_checked_against_the_real_batch_size() {
    // A one-byte value with no key makes a 69-byte batch (Kafka's 61-byte header + 8-byte
    // record).
    let (_t, dir) = store_with("t", "1", &["--config", "max_message_bytes=69"]);
    ok(&dir, &["produce", "t"], "x\n");
    let out = run_in(&dir, &["produce", "t"], "xy\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("line 1") && stderr_of(&out).contains("70 bytes"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(all(&dir, "t", "%s\\n"), "x\n");
}

/// A segment size that leaves no room for max_message_bytes' default names both settings and
/// what would fit; it is a usage error.
#[test]
fn conflicting_settings_are_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = run_in(
        tmp.path(),
        &["topics", "create", "t", "--config", "segment_bytes=1048576"],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.contains("segment_bytes=1048576")
            && err.contains("max_message_bytes is 1048576")
            && err.contains("at most 1048552"),
        "{err}"
    );
}

/// One message that cannot be sent is reported with its line number and the others are sent
/// (exit 1); --stop-on-error stops there.
#[test]
fn a_bad_line_fails_alone() {
    let (_t, dir) = store_with("t", "1", &["--config", "cleanup_policy=compact"]);
    let out = run_in(&dir, &["produce", "t", "-K", ":"], "a:1\nnokey\nb:2\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("line 2"), "{}", stderr_of(&out));
    assert_eq!(all(&dir, "t", "%k=%s\\n"), "a=1\nb=2\n");
    let out = run_in(
        &dir,
        &["produce", "t", "-K", ":", "--stop-on-error"],
        "c:3\nnokey\nd:4\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("line 2"));
    assert_eq!(all(&dir, "t", "%k=%s\\n"), "a=1\nb=2\nc=3\n");
}

/// kcat's escapes in -K and -D; -Z sends empty values as null (tombstones) and prints nulls as
/// NULL; consume -K prints key, separator, value.
#[test]
fn kcat_delimiters_nulls_and_escapes() {
    let (_t, dir) = store_with("t", "1", &[]);
    ok(&dir, &["produce", "t", "-K", "\\t"], "k1\tv1\n");
    ok(
        &dir,
        &["produce", "t", "-K", "\\x3d", "-D", ";;"],
        "k2=v2;;k3=v3",
    );
    ok(&dir, &["produce", "t", "-K", ":", "-Z"], "k4:\n:v5\n");
    assert_eq!(
        ok(&dir, &["consume", "t", "-e", "-K", " -> ", "-Z"], ""),
        "k1 -> v1\nk2 -> v2\nk3 -> v3\nk4 -> NULL\nNULL -> v5\n"
    );
    // %S is -1 for null; %R is the value length as a 4-byte big-endian integer.
    assert_eq!(all(&dir, "t", "%K %S\\n"), "2 2\n2 2\n2 2\n2 -1\n-1 2\n");
    let raw = ok(&dir, &["consume", "t", "-e", "-o", "4", "-f", "%R%s"], "");
    assert_eq!(raw.as_bytes(), b"\0\0\0\x02v5");
    // A whole file as one message (kcat's file arguments).
    let file = dir.parent().expect("parent").join("blob.txt");
    std::fs::write(&file, "line one\nline two\n").expect("write");
    ok(&dir, &["produce", "t", file.to_str().expect("utf8")], "");
    assert_eq!(
        ok(&dir, &["consume", "t", "-e", "-o", "5", "-f", "[%s]"], ""),
        "[line one\nline two\n]"
    );
    // A typo in an escape is a usage error, not a literal.
    let out = run_in(&dir, &["produce", "t", "-K", "\\q"], "a\n");
    assert_eq!(out.status.code(), Some(2));
}

/// A group consuming from the end with nothing new commits that position, so the next run does
/// not replay (Kafka commits the reset position).
#[test]
fn a_group_commits_its_reset_position() {
    let (_t, dir) = store_with("t", "1", &[]);
    ok(&dir, &["produce", "t"], "old1\nold2\n");
    assert_eq!(
        ok(&dir, &["consume", "t", "-g", "g", "-o", "end", "-e"], ""),
        ""
    );
    ok(&dir, &["produce", "t"], "new\n");
    assert_eq!(
        ok(
            &dir,
            &["consume", "t", "-g", "g", "-o", "beginning", "-e"],
            ""
        ),
        "new\n"
    );
    let d = json(&dir, &["groups", "describe", "g", "--json"]);
    assert_eq!(d["partitions"][0]["committed_offset"], 3);
    // -c stops part way through a poll: the commit is what was printed, not the position.
    ok(&dir, &["produce", "t"], "a\nb\nc\n");
    assert_eq!(
        ok(&dir, &["consume", "t", "-g", "g", "-e", "-c", "1"], ""),
        "a\n"
    );
    assert_eq!(ok(&dir, &["consume", "t", "-g", "g", "-e"], ""), "b\nc\n");
    // stored: only the committed offsets, no reset.
    let out = run_in(
        &dir,
        &["consume", "t", "-g", "fresh", "-o", "stored", "-e"],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
}

/// Arguments the command itself refuses exit 2, like clap's own usage errors.
#[test]
fn every_usage_error_exits_2() {
    let (_t, dir) = store_with("t", "1", &[]);
    ok(&dir, &["produce", "t"], "a\n");
    for (args, stdin) in [
        (vec!["consume", "t", "-o", "sideways", "-e"], ""),
        (vec!["consume", "t", "-f", "%x", "-e"], ""),
        (vec!["consume", "t", "-o", "stored", "-e"], ""),
        (vec!["consume", "t", "-o", "1", "-o", "2", "-e"], ""),
        (vec!["topics", "create", "u", "--config", "nosuch=1"], ""),
        (
            vec!["topics", "create", "u", "--config", "partitions=5"],
            "",
        ),
        (vec!["topics", "create", "u", "-p", "0"], ""),
        (vec!["produce", "t", "-H", "noeq"], "a\n"),
        (vec!["produce", "t", "-K", ""], "a\n"),
        (vec!["consume", "t", "-g", "g", "-o", "5", "-e"], ""),
        (
            vec![
                "groups",
                "reset-offsets",
                "g",
                "--topic",
                "t",
                "--to-datetime",
                "2024-02-31",
            ],
            "",
        ),
        (vec!["groups", "reset-offsets", "g", "--to-earliest"], ""),
        (
            vec![
                "groups",
                "reset-offsets",
                "",
                "--topic",
                "t",
                "--to-earliest",
            ],
            "",
        ),
        (
            vec![
                "groups",
                "reset-offsets",
                "g",
                "--topic",
                "t",
                "--by-duration",
                "1h",
            ],
            "",
        ),
    ] {
        let out = run_in(&dir, &args, stdin);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr_of(&out));
        assert!(stderr_of(&out).starts_with("riverbed: "), "{args:?}");
    }
    // Nothing was created or written by any of them.
    assert_eq!(all(&dir, "t", "%s\\n"), "a\n");
    let topics = json(&dir, &["topics", "list", "--json"]);
    assert_eq!(topics.as_array().map(Vec::len), Some(1));
}

/// `verify` takes the directory from -d (or RIVERBED_DIR) like the other commands; a file it
/// cannot read is not corruption: exit 2, "could not check everything".
#[test]
fn verify_exit_codes() {
    let (_t, dir) = store_with("t", "1", &[]);
    ok(&dir, &["produce", "t"], "a\n");
    let out = bin()
        .arg("-d")
        .arg(&dir)
        .arg("verify")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr_of(&out));
    let out = bin()
        .env("RIVERBED_DIR", &dir)
        .arg("verify")
        .output()
        .expect("run");
    assert!(out.status.success());
    // An index replaced by a directory cannot be read (the tests run as root, where a mode
    // bit would not stop a read).
    let index = dir.join("t-0").join(format!("{:020}.index", 0));
    std::fs::remove_file(&index).expect("remove index");
    std::fs::create_dir(&index).expect("dir in its place");
    let out = bin()
        .arg("-d")
        .arg(&dir)
        .arg("verify")
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("unreadable"));
}

/// Group commands on groups that do not exist, or with nothing to act on, fail and change
/// nothing.
#[test]
fn group_edge_cases() {
    let (_t, dir) = store_with("t", "2", &[]);
    ok(&dir, &["produce", "t", "-p", "0"], "a\nb\n");
    let out = run_in(&dir, &["groups", "delete", "nosuch"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("nosuch"));
    let out = run_in(
        &dir,
        &[
            "groups",
            "reset-offsets",
            "nosuch",
            "--all-topics",
            "--to-earliest",
            "--execute",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("no committed offsets"));
    // --dry-run (Kafka's spelling), --export and --from-file.
    ok(&dir, &["consume", "t", "-g", "g", "-e"], "");
    let plan = ok(
        &dir,
        &[
            "groups",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-earliest",
            "--dry-run",
            "--export",
        ],
        "",
    );
    assert_eq!(plan, "t,0,0\nt,1,0\n");
    let file = dir.parent().expect("parent").join("plan.csv");
    std::fs::write(&file, "t,0,1\n").expect("write");
    ok(
        &dir,
        &[
            "groups",
            "reset-offsets",
            "g",
            "--from-file",
            file.to_str().expect("utf8"),
            "--execute",
        ],
        "",
    );
    assert_eq!(ok(&dir, &["consume", "t", "-g", "g", "-e"], ""), "b\n");
    // --to-current keeps committed offsets; a partition with none goes to its end.
    let d = json(&dir, &["groups", "describe", "g", "--json"]);
    assert_eq!(d["partitions"][0]["committed_offset"], 2);
    // --by-duration: everything is younger than a day.
    ok(
        &dir,
        &[
            "groups",
            "reset-offsets",
            "g",
            "--topic",
            "t:0",
            "--by-duration",
            "P1D",
            "--execute",
        ],
        "",
    );
    assert_eq!(ok(&dir, &["consume", "t", "-g", "g", "-e"], ""), "a\nb\n");
    // --delete-offsets removes one topic's offsets and keeps the group.
    ok(&dir, &["topics", "create", "u"], "");
    ok(&dir, &["produce", "u"], "z\n");
    ok(&dir, &["consume", "u", "-g", "g", "-e"], "");
    ok(
        &dir,
        &["groups", "delete", "g", "--delete-offsets", "--topic", "t"],
        "",
    );
    let d = json(&dir, &["groups", "describe", "g", "--json"]);
    let parts = d["partitions"].as_array().expect("partitions");
    assert!(parts.iter().all(|p| p["topic"] == "u"), "{d}");
    // --state and --all-groups.
    let states = json(
        &dir,
        &["groups", "describe", "--all-groups", "--state", "--json"],
    );
    assert_eq!(states[0]["group"], "g");
    assert_eq!(states[0]["state"], "Empty");
}

/// Times in Kafka's own format (no zone: UTC) work; impossible dates do not.
#[test]
fn kafka_time_formats() {
    let (_t, dir) = store_with("t", "1", &[]);
    ok(&dir, &["produce", "t"], "a\n");
    ok(
        &dir,
        &["consume", "t", "-e", "-o", "s@2024-05-01T12:00:00.000"],
        "",
    );
    for bad in [
        "@2024-02-31",
        "@99999999999-01-01",
        "s@2024-05-01T25:00:00Z",
    ] {
        let out = run_in(&dir, &["consume", "t", "-e", "-o", bad], "");
        assert_eq!(out.status.code(), Some(2), "{bad}");
    }
}

/// s@ and e@ bound what is printed by record time.
#[test]
fn start_and_stop_times() {
    use riverbed::{ProducerRecord, Store};
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    {
        let store = Store::open(&dir).expect("open");
        store
            .create_topic("t", riverbed::TopicConfig::new(1))
            .expect("create");
        let p = store.producer();
        for (ts, v) in [(1000, "a"), (2000, "b"), (3000, "c"), (4000, "d")] {
            p.send(ProducerRecord::new("t").value(v).timestamp(ts))
                .expect("send");
        }
        store.flush().expect("flush");
    }
    assert_eq!(
        ok(
            &dir,
            &["consume", "t", "-e", "-o", "s@2000", "-o", "e@4000"],
            ""
        ),
        "b\nc\n"
    );
    // e@ alone ends the command even without -e once every partition passed it.
    assert_eq!(ok(&dir, &["consume", "t", "-o", "e@2500"], ""), "a\nb\n");
}

/// --isolation-level read_committed hides aborted and open transactions, in both reading
/// modes.
#[test]
fn read_committed_hides_aborted_transactions() {
    use riverbed::{ProducerRecord, Store};
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    {
        let store = Store::open(&dir).expect("open");
        store
            .create_topic("t", riverbed::TopicConfig::new(1))
            .expect("create");
        store
            .producer()
            .send(ProducerRecord::new("t").value("plain"))
            .expect("send");
        let tx = store.transactional_producer("tx").expect("txn producer");
        tx.begin().expect("begin");
        tx.send(ProducerRecord::new("t").value("aborted"))
            .expect("send");
        tx.abort().expect("abort");
        tx.begin().expect("begin");
        tx.send(ProducerRecord::new("t").value("committed"))
            .expect("send");
        tx.commit().expect("commit");
        store
            .producer()
            .send(ProducerRecord::new("t").value("after"))
            .expect("send");
        store.flush().expect("flush");
    }
    assert_eq!(
        all(&dir, "t", "%s\\n"),
        "plain\naborted\ncommitted\nafter\n"
    );
    for extra in [&[][..], &["-g", "g"][..]] {
        let mut args = vec!["consume", "t", "-e", "--isolation-level", "read_committed"];
        args.extend_from_slice(extra);
        assert_eq!(
            ok(&dir, &args, ""),
            "plain\ncommitted\nafter\n",
            "{extra:?}"
        );
    }
}

/// Following a topic sees partitions added after the command started; a follower whose reader
/// went away (`| head -1`) exits while idle.
#[test]
fn following_sees_new_partitions_and_exits_when_its_reader_goes() {
    let (_t, dir) = store_with("t", "1", &[]);
    ok(&dir, &["produce", "t"], "first\n");
    let mut child = bin()
        .arg("-d")
        .arg(&dir)
        .args(["consume", "t", "-f", "%p:%s\\n"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    lines.read_line(&mut line).expect("read");
    assert_eq!(line, "0:first\n");
    ok(&dir, &["topics", "add-partitions", "t", "--total", "2"], "");
    ok(&dir, &["produce", "t", "-p", "1"], "later\n");
    line.clear();
    lines.read_line(&mut line).expect("read");
    assert_eq!(line, "1:later\n");
    // The reader goes away; the idle follower notices and exits.
    drop(lines);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            assert!(st.success());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "consume kept running after its reader left"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kafka's setting names work; messages name the path or the command to run.
#[test]
fn kafka_setting_names_and_clear_messages() {
    let (_t, dir) = store_with(
        "t",
        "1",
        &[
            "--config",
            "retention.ms=-1",
            "--config",
            "max.message.bytes=4096",
        ],
    );
    let d = json(&dir, &["topics", "describe", "t", "--json"]);
    assert_eq!(d["config"]["retention_ms"], "none");
    assert_eq!(d["config"]["max_message_bytes"], "4096");
    // Describe without a name describes every topic.
    ok(&dir, &["topics", "create", "u"], "");
    let d = json(&dir, &["topics", "describe", "--json"]);
    assert_eq!(d.as_array().map(Vec::len), Some(2));
    // --if-not-exists / --if-exists.
    ok(&dir, &["topics", "create", "u", "--if-not-exists"], "");
    ok(&dir, &["topics", "delete", "nosuch", "--if-exists"], "");
    let out = run_in(&dir, &["topics", "delete", "nosuch"], "");
    assert_eq!(out.status.code(), Some(1));
    // A directory given as input is named.
    let out = run_in(
        &dir,
        &["produce", "t", "-f", dir.to_str().expect("utf8")],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains(dir.to_str().expect("utf8")));
    // An unknown topic points at the command that creates it.
    let out = run_in(&dir, &["produce", "nosuch"], "a\n");
    assert!(stderr_of(&out).contains("riverbed topics create nosuch"));
    assert!(!stderr_of(&out).contains("auto_create_topics"));
    // A file as the store, and a directory that is not a store.
    let file = dir.parent().expect("parent").join("afile");
    std::fs::write(&file, "x").expect("write");
    let out = run_in(&file, &["topics", "create", "x"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("not a directory"),
        "{}",
        stderr_of(&out)
    );
    let empty = dir.parent().expect("parent").join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    for args in [
        vec!["topics", "list"],
        vec!["groups", "list"],
        vec!["stats"],
    ] {
        let out = run_in(&empty, &args, "");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr_of(&out).contains("not a Riverbed store"), "{args:?}");
    }
}

/// A second `consume -g` beside the process that holds the store says why it cannot join.
#[test]
fn a_group_beside_the_holder_is_refused_with_the_reason() {
    let (_t, dir) = store_with("t", "1", &[]);
    let mut holder = bin()
        .arg("-d")
        .arg(&dir)
        .args(["consume", "t", "-g", "g"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_until("the holder's lock", || {
        matches!(
            riverbed::inspect::lock_state(&dir),
            riverbed::inspect::LockState::Held { .. }
        )
    });
    let out = run_in(&dir, &["consume", "t", "-g", "g", "-e"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("wire front"),
        "{}",
        stderr_of(&out)
    );
    holder.kill().expect("kill");
    holder.wait().expect("wait");
}

/// `dump` takes several files and decodes the committed-offsets log; compaction and retention
/// can be run from the tool.
#[test]
fn dump_offsets_log_and_maintenance_commands() {
    let (_t, dir) = store_with("t", "1", &["--config", "cleanup_policy=compact"]);
    ok(&dir, &["produce", "t", "-K", ":"], "k:1\nk:2\nk:3\n");
    ok(&dir, &["consume", "t", "-g", "billing", "-e"], "");
    let log = dir
        .join("__consumer_offsets-0")
        .join(format!("{:020}.log", 0));
    let out = ok(
        &dir,
        &["dump", log.to_str().expect("utf8"), "--offsets-decoder"],
        "",
    );
    assert!(
        out.contains("group: billing topic: t partition: 0 committedOffset: 3"),
        "{out}"
    );
    let data = dir.join("t-0").join(format!("{:020}.log", 0));
    let index = dir.join("t-0").join(format!("{:020}.index", 0));
    let out = ok(
        &dir,
        &[
            "dump",
            data.to_str().expect("utf8"),
            index.to_str().expect("utf8"),
        ],
        "",
    );
    assert_eq!(out.matches("Dumping ").count(), 2, "{out}");
    // The active segment is not compacted; the command runs and reports.
    let out = ok(&dir, &["topics", "compact", "t"], "");
    assert!(out.starts_with("compacted t:"), "{out}");
    let out = ok(&dir, &["topics", "apply-retention"], "");
    assert!(out.contains("deleted 0 segments"), "{out}");
    let out = run_in(&dir, &["topics", "compact", "nosuch"], "");
    assert_eq!(out.status.code(), Some(1));
}

/// The tool never panics on bad input and leaves the store's data as it was: every command
/// below is refused (exit 1 or 2, a message starting `riverbed:` or clap's `error:`), and the
/// store still verifies sound and holds exactly the records it held.
#[test]
fn bad_inputs_never_panic_and_leave_data_intact() {
    let (_t, dir) = store_with("t", "2", &["--config", "cleanup_policy=compact"]);
    ok(&dir, &["produce", "t", "-K", ":"], "a:1\nb:2\nc:3\n");
    ok(&dir, &["consume", "t", "-g", "g", "-e"], "");
    let before = all(&dir, "t", "%p %o %k=%s\\n");
    let parent = dir.parent().expect("parent").to_path_buf();
    let a_file = parent.join("afile");
    std::fs::write(&a_file, "x").expect("write");
    let bad_csv = parent.join("bad.csv");
    std::fs::write(&bad_csv, "t,zero,1\n").expect("write");
    let data_file = dir.join("t-0").join(format!("{:020}.log", 0));
    let cases: Vec<(Vec<String>, &str)> = [
        (vec!["produce", "t"], "no key here\n"),
        (vec!["produce", "t", "-p", "7"], "a:1\n"),
        (vec!["produce", "nosuch"], "a\n"),
        (vec!["produce", "t", "-K", ":", "-D", ""], "a:1"),
        (vec!["produce", "t", "-K", "\\x4"], "a\n"),
        (vec!["produce", "t", "-K", ":", "-f", "/nonexistent/x"], ""),
        (vec!["consume", "t", "-o", "@not-a-time", "-e"], ""),
        (vec!["consume", "t", "-o", "e@2024-13-01", "-e"], ""),
        (vec!["consume", "t", "-p", "9", "-e"], ""),
        (vec!["consume", "t", "-f", "%", "-e"], ""),
        (vec!["consume", "t", "-f", "\\", "-e"], ""),
        (vec!["consume", "nosuch", "-e"], ""),
        (
            vec!["consume", "t", "-o", "99999999999999999999999", "-e"],
            "",
        ),
        (vec!["topics", "create", "t"], ""),
        (vec!["topics", "create", "bad/name"], ""),
        (vec!["topics", "create", ""], ""),
        (
            vec!["topics", "create", "u", "--config", "segment_bytes=-1"],
            "",
        ),
        (
            vec!["topics", "create", "u", "--config", "retention.ms=soon"],
            "",
        ),
        (vec!["topics", "add-partitions", "t", "--total", "1"], ""),
        (vec!["topics", "delete", "nosuch"], ""),
        (vec!["topics", "describe", "nosuch"], ""),
        (vec!["topics", "compact", "nosuch"], ""),
        (vec!["groups", "describe", "nosuch"], ""),
        (vec!["groups", "delete", "nosuch"], ""),
        (
            vec![
                "groups",
                "reset-offsets",
                "g",
                "--topic",
                "t:9",
                "--to-earliest",
            ],
            "",
        ),
        (
            vec![
                "groups",
                "reset-offsets",
                "g",
                "--topic",
                "t:x",
                "--to-earliest",
            ],
            "",
        ),
        (
            vec![
                "groups",
                "reset-offsets",
                "g",
                "--by-duration",
                "P",
                "--topic",
                "t",
            ],
            "",
        ),
        (
            vec![
                "groups",
                "reset-offsets",
                "g",
                "--from-file",
                "/nonexistent",
            ],
            "",
        ),
        (
            vec![
                "groups",
                "reset-offsets",
                "g",
                "--from-file",
                bad_csv.to_str().unwrap_or(""),
            ],
            "",
        ),
        (vec!["dump", "/nonexistent.log"], ""),
        (vec!["dump", a_file.to_str().unwrap_or("")], ""),
        (
            vec![
                "dump",
                data_file.to_str().unwrap_or(""),
                "--offsets-decoder",
            ],
            "",
        ),
        (vec!["stats", a_file.to_str().unwrap_or("")], ""),
        (vec!["verify", a_file.to_str().unwrap_or("")], ""),
    ]
    .into_iter()
    .map(|(args, stdin)| (args.into_iter().map(String::from).collect(), stdin))
    .collect();
    for (args, stdin) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_in(&dir, &args, stdin);
        let err = stderr_of(&out);
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        // The offsets decoder on a data file fails per record but the dump itself runs.
        if args.contains(&"--offsets-decoder") {
            continue;
        }
        assert!(
            matches!(out.status.code(), Some(1 | 2)),
            "{args:?}: {:?} {err}",
            out.status.code()
        );
        assert!(
            err.contains("riverbed: ") || err.contains("error:"),
            "{args:?}: {err}"
        );
    }
    let out = bin()
        .arg("-d")
        .arg(&dir)
        .arg("verify")
        .output()
        .expect("verify");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(all(&dir, "t", "%p %o %k=%s\\n"), before);
    let d = json(&dir, &["groups", "describe", "g", "--json"]);
    let committed: Vec<_> = d["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| p["committed_offset"].clone())
        .collect();
    assert!(committed.iter().all(|c| c.is_u64()), "{d}");
}

/// `topics alter` as `kafka-configs.sh --alter --entity-type topics --add-config k=v
/// --delete-config k`: Kafka's names and comma lists, `describe` shows the new settings,
/// `produce` honours the new limit at once, a reset goes back to the default, and a bad key is a
/// usage error that changes nothing.
#[test]
fn topics_alter_sets_and_resets_settings() {
    let (_t, dir) = store_with("t", "1", &["--config", "max_message_bytes=69"]);
    let out = run_in(&dir, &["produce", "t"], "xy\n");
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let altered = json(
        &dir,
        &[
            "topics",
            "alter",
            "t",
            "--add-config",
            "retention.ms=3600000,max.message.bytes=70",
            "--config",
            "cleanup.policy=compact,delete",
            "--json",
        ],
    );
    assert_eq!(altered["config"]["retention_ms"], "3600000");
    assert_eq!(altered["config"]["max_message_bytes"], "70");
    let d = json(&dir, &["topics", "describe", "t", "--json"]);
    assert_eq!(d["config"]["retention_ms"], "3600000");
    assert_eq!(d["config"]["max_message_bytes"], "70");
    assert_eq!(d["config"]["cleanup_policy"], "compact,delete");
    // The 70-byte batch the old limit refused now goes through (compacted: it needs a key, so
    // reset the policy first, with Kafka's name).
    let text = ok(
        &dir,
        &["topics", "alter", "t", "--delete-config", "cleanup.policy"],
        "",
    );
    assert!(text.contains("cleanup_policy=delete"), "{text}");
    ok(&dir, &["produce", "t"], "xy\n");
    assert_eq!(all(&dir, "t", "%s\\n"), "xy\n");
    let out = run_in(&dir, &["produce", "t"], "xyz\n");
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));

    // Bad keys, values and combinations are usage errors; nothing changes.
    let before = json(&dir, &["topics", "describe", "t", "--json"])["config"].clone();
    for args in [
        &["--add-config", "nonsense=1"][..],
        &["--add-config", "retention.ms=soon"],
        &["--delete-config", "nonsense"],
        &["--add-config", "partitions=3"],
        &["--add-config", "segment.bytes=1000"],
        &["--add-config", "max.message.bytes=66,retention.ms"],
        &[],
    ] {
        let mut all_args = vec!["topics", "alter", "t"];
        all_args.extend_from_slice(args);
        let out = run_in(&dir, &all_args, "");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr_of(&out));
        let after = json(&dir, &["topics", "describe", "t", "--json"])["config"].clone();
        assert_eq!(after, before, "{args:?}");
    }
    let out = run_in(
        &dir,
        &[
            "topics",
            "alter",
            "nosuch",
            "--add-config",
            "retention.ms=1",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
}
