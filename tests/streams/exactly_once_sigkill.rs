//! Streams under SIGKILL: runs `examples/group_by_count_streams` once to completion on a third of
//! the input (so a clean close leaves checkpoint snapshots), then kills it at random points many
//! times while it produces more input and counts it, lets a last run finish, and checks the
//! output topic `group-by-counts`:
//! - exactly-once: a `read_committed` reader sees for every key exactly the number of input
//!   records with that key, and each key's committed counts strictly grow (a count from an
//!   aborted cycle that became visible would repeat or go back after the restart recounts);
//! - at-least-once: no key's final count is below the truth (work may be counted twice, never
//!   lost).
//!
//! In both, the application's committed offsets cover every input.

use crate::common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use riverbed::{IsolationLevel, Store, TopicPartition};

const EXAMPLE: &str = "group_by_count_streams";
const APP_ID: &str = "group-by-count-streams";
const PER_TOPIC: u64 = 30_000;

fn read_all(store: &Store, topic: &str, isolation: IsolationLevel) -> Vec<(u32, Vec<u8>, Vec<u8>)> {
    common::read_topic(store, topic, isolation)
        .into_iter()
        .map(|r| {
            (
                r.partition,
                r.key.unwrap_or_default(),
                r.value.unwrap_or_default(),
            )
        })
        .collect()
}

fn run_to_end(bin: &Path, dir: &Path, records: u64, mode: &str) {
    let out = Command::new(bin)
        .arg(dir)
        .arg(records.to_string())
        .arg("0")
        .arg(mode)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "a run to the end failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn kill_many_times(mode: &str) {
    let bin = common::example_binary(EXAMPLE);
    let dir = tempfile::tempdir().unwrap();
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64);
    println!("{mode}: seed {seed}");
    let mut rng = common::Lcg(seed);
    // A clean run first: its close writes checkpoint snapshots, which every later restore
    // starts from (plus the changelog the killed runs committed after them).
    run_to_end(&bin, dir.path(), PER_TOPIC / 3, mode);
    assert!(
        dir.path().join("streams").read_dir().unwrap().count() > 0,
        "the clean close wrote checkpoints"
    );
    for _ in 0..15 {
        // 200 µs of "work" per record, so that kills often land inside a commit cycle; a run
        // spends its first ~200 ms opening the store and starting, so the kills come later.
        let mut child = Command::new(&bin)
            .arg(dir.path())
            .arg(PER_TOPIC.to_string())
            .arg("200")
            .arg(mode)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(150 + rng.below(700)));
        // SIGKILL: no destructor, no flush, no clean close.
        let _ = child.kill();
        child.wait().unwrap();
    }
    run_to_end(&bin, dir.path(), PER_TOPIC, mode);

    let store = common::retry_locked(|| Store::open(dir.path()));
    let mut truth: HashMap<Vec<u8>, i64> = HashMap::new();
    for topic in ["A", "B"] {
        let inputs = read_all(&store, topic, IsolationLevel::ReadUncommitted);
        assert_eq!(
            inputs.len() as u64,
            PER_TOPIC,
            "every input of {topic} once"
        );
        for (_, k, _) in inputs {
            let key = format!("{topic}:{}", String::from_utf8(k).unwrap());
            *truth.entry(key.into_bytes()).or_insert(0) += 1;
        }
    }
    let eos = mode == "eos";
    let isolation = if eos {
        IsolationLevel::ReadCommitted
    } else {
        IsolationLevel::ReadUncommitted
    };
    let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
    for (p, k, v) in read_all(&store, "group-by-counts", isolation) {
        let count = <i64 as riverbed::streams::Serde>::decode(&v).unwrap();
        if eos {
            if let Some(prev) = latest.get(&k) {
                assert!(
                    count > *prev,
                    "key {:?} in partition {p}: count {count} after {prev} (seed {seed})",
                    String::from_utf8_lossy(&k)
                );
            }
        }
        latest.insert(k, count);
    }
    if eos {
        assert_eq!(latest, truth, "committed counts differ (seed {seed})");
    } else {
        assert_eq!(latest.len(), truth.len(), "every key has a count");
        for (k, n) in &truth {
            let got = latest.get(k).copied().unwrap_or(0);
            assert!(
                got >= *n,
                "key {:?}: count {got} below the truth {n} (seed {seed})",
                String::from_utf8_lossy(k),
            );
        }
    }

    let offsets = store.committed_offsets(APP_ID);
    for topic in ["A", "B"] {
        for p in store.describe_topic(topic).unwrap().partitions {
            let tp = TopicPartition::new(topic, p.partition);
            let committed = offsets
                .iter()
                .find(|(t, _)| *t == tp)
                .map_or(0, |(_, o)| o.offset);
            assert_eq!(committed, p.log_end_offset, "{tp} not fully committed");
        }
    }
}

#[test]
fn exactly_once_counts_are_exact_after_many_kills() {
    kill_many_times("eos");
}

#[test]
fn at_least_once_counts_are_never_below_the_truth_after_many_kills() {
    kill_many_times("alos");
}
