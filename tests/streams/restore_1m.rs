//! Restoring a store of one million keys, exactly-once, on two partitions:
//! (a) after a clean close, from the checkpoint snapshots the close wrote (and nothing else:
//!     the changelog tail after them is empty), checking every key's count;
//! (b) after a real crash: this test binary runs itself again as a child process (with
//!     `RESTORE_1M_CHILD` set) that counts more input and is killed with SIGKILL mid-way, after
//!     some commits. The next start restores from the snapshots of (a) plus the changelog
//!     records the child committed, reprocesses what the child did not commit, and every key's
//!     count must equal the number of input records with that key.

use crate::common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use riverbed::streams::{App, Builder, Materialized, StreamsConfig, Topology};
use riverbed::{ProducerRecord, Store, TopicConfig};

const KEYS: u64 = 1_000_000;
const PARTITIONS: u32 = 2;
/// Records of the second round (the one the child is killed in): key `i * 5 % KEYS`, so every
/// multiple of 5 gets two more.
const SECOND_ROUND: u64 = 400_000;
const CHILD_ENV: &str = "RESTORE_1M_CHILD";
const TEST_NAME: &str = "restore_1m::one_million_keys_restore_from_checkpoint_and_after_sigkill";

fn key(i: u64) -> String {
    format!("k{i:07}")
}

fn topology() -> Topology {
    let b = Builder::new("restore-1m");
    b.stream::<String, String>("in")
        .group_by_key()
        .count(Materialized::named("counts"));
    b.build().unwrap()
}

fn config() -> StreamsConfig {
    StreamsConfig::new().exactly_once()
}

fn send(store: &Store, records: impl Iterator<Item = ProducerRecord>) {
    let p = store.producer();
    let mut batch = Vec::with_capacity(10_000);
    for r in records {
        batch.push(r);
        if batch.len() == 10_000 {
            p.send_batch(std::mem::take(&mut batch)).unwrap();
        }
    }
    p.send_batch(batch).unwrap();
    p.flush().unwrap();
}

/// Waits (up to a minute) until `done` holds, failing on an application error.
fn wait(app: &App, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(app.error().is_none(), "{what}: {:?}", app.error());
        assert!(Instant::now() < deadline, "{what}: timed out");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every key of the store's committed view against `expected` (keys not in it: 0 = absent).
fn check_all(app: &App, expected: impl Fn(&str) -> i64, extra: &[&str]) {
    let view = app.store::<String, i64>("counts").unwrap();
    let all = view.all().unwrap();
    assert_eq!(all.len() as u64, KEYS + extra.len() as u64);
    let mut wrong = Vec::new();
    for (k, v) in &all {
        let want = if extra.contains(&k.as_str()) {
            1
        } else {
            expected(k)
        };
        if *v != want {
            wrong.push((k.clone(), *v, want));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} keys with a wrong count, e.g. (key, got, want) {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
}

/// The child: counts the second round exactly-once, printing its progress, until killed.
fn child(dir: &Path) {
    let store = common::retry_locked(|| Store::open(dir));
    let app = App::start(&store, topology(), config()).unwrap();
    loop {
        let m = app.metrics();
        println!(
            "CHILD processed={} commits={}",
            m.processed_records, m.commits
        );
        assert!(app.error().is_none(), "{:?}", app.error());
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn one_million_keys_restore_from_checkpoint_and_after_sigkill() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic("in", TopicConfig::new(PARTITIONS))
        .unwrap();
    send(
        &store,
        (0..KEYS).map(|i| ProducerRecord::new("in").key(key(i)).value("x")),
    );

    // Count the first round (every key once) and close cleanly: the close writes snapshots.
    let app = App::start(&store, topology(), config()).unwrap();
    wait(&app, "first round", || {
        app.metrics().processed_records >= KEYS
    });
    app.close().unwrap();

    // (a) Restore from the snapshots alone.
    let started = Instant::now();
    let app = App::start(&store, topology(), config()).unwrap();
    let view = app.store::<String, i64>("counts").unwrap();
    wait(&app, "restore from the checkpoint", || {
        view.approximate_num_entries() as u64 == KEYS
    });
    eprintln!(
        "restored {KEYS} keys from checkpoints in {:?}",
        started.elapsed()
    );
    let m = app.metrics();
    assert_eq!(m.snapshots_used, u64::from(PARTITIONS), "{m:?}");
    assert_eq!(m.restored_from_snapshots, KEYS, "{m:?}");
    assert_eq!(m.restored_records, 0, "nothing after the snapshots: {m:?}");
    assert_eq!(m.snapshots_rejected, 0, "{m:?}");
    check_all(&app, |_| 1, &[]);
    app.close().unwrap();

    // (b) The second round, counted by a child process killed with SIGKILL after it committed
    // part of it.
    send(
        &store,
        (0..SECOND_ROUND).map(|i| ProducerRecord::new("in").key(key(i * 5 % KEYS)).value("y")),
    );
    drop(store);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut progress = (0, 0);
    for line in lines {
        let line = line.unwrap();
        let Some(rest) = line.strip_prefix("CHILD ") else {
            continue;
        };
        let fields: HashMap<&str, u64> = rest
            .split(' ')
            .filter_map(|f| f.split_once('='))
            .map(|(k, v)| (k, v.parse().unwrap()))
            .collect();
        progress = (fields["processed"], fields["commits"]);
        // Mid-way, with some of the round committed (and the rest not).
        if progress.0 >= SECOND_ROUND / 4 && progress.1 >= 2 {
            break;
        }
    }
    // SIGKILL (`Child::kill` on Unix): no close, no final commit, no snapshot.
    child.kill().unwrap();
    assert!(
        progress.0 >= SECOND_ROUND / 4 && progress.1 >= 2,
        "the child stopped reporting before it got far: {progress:?}"
    );
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed: {status:?}");
    assert!(
        progress.0 < SECOND_ROUND,
        "killed before the end of the round: {progress:?}"
    );

    let store = common::retry_locked(|| Store::open(dir.path()));
    // A marker per partition, after the rest: once its count is committed, so is everything
    // before it in that partition (commits are atomic per thread, processing is in order).
    let markers: Vec<String> = (0..PARTITIONS).map(|p| format!("end-{p}")).collect();
    send(
        &store,
        markers.iter().zip(0..).map(|(k, p)| {
            ProducerRecord::new("in")
                .partition(p)
                .key(k.clone())
                .value("z")
        }),
    );
    let app = App::start(&store, topology(), config()).unwrap();
    let view = app.store::<String, i64>("counts").unwrap();
    wait(&app, "recovery after the crash", || {
        markers
            .iter()
            .all(|k| view.get(k.clone()).unwrap() == Some(1))
    });
    let m = app.metrics();
    assert_eq!(m.snapshots_used, u64::from(PARTITIONS), "{m:?}");
    assert_eq!(m.restored_from_snapshots, KEYS, "{m:?}");
    assert!(
        m.restored_records > 0,
        "the child's commits were replayed from the changelog: {m:?}"
    );
    let extra: Vec<&str> = markers.iter().map(String::as_str).collect();
    check_all(
        &app,
        |k| {
            let i: u64 = k[1..].parse().unwrap();
            if i.is_multiple_of(5) {
                3
            } else {
                1
            }
        },
        &extra,
    );
    app.close().unwrap();
}
