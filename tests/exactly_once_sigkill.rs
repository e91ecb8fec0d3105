//! Exactly-once, killed: runs the `group_by_count_exactly_once` example, SIGKILLs it at random
//! points many times while it produces input and counts it, lets a last run finish, and checks
//! that a `read_committed` reader of `group-by-counts` sees for every key exactly the number of
//! input records with that key — no double counting, nothing missed — and that the group's
//! committed offsets cover every input.

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use riverbed::{IsolationLevel, Store, TopicPartition};

const EXAMPLE: &str = "group_by_count_exactly_once";

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

#[test]
fn counts_are_exact_after_many_kills() {
    let bin = common::example_binary(EXAMPLE);
    let dir = tempfile::tempdir().unwrap();
    let per_topic = "30000";
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64);
    println!("seed {seed}");
    let mut rng = common::Lcg(seed);
    for _ in 0..20 {
        // 3 ms of "work" inside each transaction, so that kills often land there.
        let mut child = Command::new(&bin)
            .arg(dir.path())
            .arg(per_topic)
            .arg("3")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(10 + rng.below(400)));
        // SIGKILL: no destructor, no flush, no clean close.
        let _ = child.kill();
        child.wait().unwrap();
    }
    let out = Command::new(&bin)
        .arg(dir.path())
        .arg(per_topic)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "final run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let store = common::retry_locked(|| Store::open(dir.path()));
    let mut truth: HashMap<Vec<u8>, u64> = HashMap::new();
    for topic in ["A", "B"] {
        let inputs = read_all(&store, topic, IsolationLevel::ReadUncommitted);
        assert_eq!(
            inputs.len(),
            30_000,
            "every input of {topic} was produced once"
        );
        for (_, k, _) in inputs {
            *truth.entry(k).or_insert(0) += 1;
        }
    }
    let mut latest: HashMap<Vec<u8>, u64> = HashMap::new();
    for (p, k, v) in read_all(&store, "group-by-counts", IsolationLevel::ReadCommitted) {
        let count: u64 = std::str::from_utf8(&v).unwrap().parse().unwrap();
        // Committed counts of a key only grow: a count from an aborted cycle that became
        // visible would repeat or go back when the next run recounts from the committed state.
        if let Some(prev) = latest.get(&k) {
            assert!(
                count > *prev,
                "key {:?} in partition {p}: count {count} after {prev}",
                String::from_utf8_lossy(&k)
            );
        }
        latest.insert(k, count);
    }
    assert_eq!(
        latest, truth,
        "committed counts differ from the inputs (seed {seed})"
    );

    let offsets = store.committed_offsets("group-by-count");
    for topic in ["A", "B"] {
        let d = store.describe_topic(topic).unwrap();
        for p in d.partitions {
            let tp = TopicPartition::new(topic, p.partition);
            let committed = offsets
                .iter()
                .find(|(t, _)| *t == tp)
                .map_or(0, |(_, o)| o.offset);
            assert_eq!(committed, p.log_end_offset, "{tp} not fully committed");
        }
    }
}
