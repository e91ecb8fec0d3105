//! Real crashes of topic creates, partition adds and deletes: a child process (this test binary,
//! re-executed) creates, fills, grows and deletes topics in a loop until the parent kills it with
//! SIGKILL at a pseudo-random moment. After every kill the store must open, hold every topic
//! whose create (and first sends) returned with all its acknowledged records, hold none whose
//! delete returned, leave no marked directory behind, and keep an untouched topic whole. Many
//! runs share one directory, so each child starts from what the previous crash and open left.
//!
//! When `RIVERBED_META_CHILD_DIR` is set, `meta_child_entry` is the child and never returns;
//! otherwise it returns at once.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use riverbed::{
    ConsumerConfig, ErrorKind, FlushPolicy, OffsetReset, ProducerRecord, Store, TopicConfig,
    TopicPartition,
};

const DIR_ENV: &str = "RIVERBED_META_CHILD_DIR";
const RUN_ENV: &str = "RIVERBED_META_CHILD_RUN";

fn open_retrying(dir: &Path) -> Store {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Store::open(dir) {
            Ok(s) => return s,
            Err(e) if matches!(e.kind(), ErrorKind::Locked { .. }) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("open {}: {e}", dir.display()),
        }
    }
}

fn config(partitions: u32) -> TopicConfig {
    TopicConfig::new(partitions).flush(FlushPolicy::EveryAppend)
}

fn values(store: &Store, topic: &str) -> BTreeSet<String> {
    let d = store.describe_topic(topic).unwrap();
    let mut c = store
        .consumer(
            ConsumerConfig::default()
                .group_id(None)
                .auto_offset_reset(OffsetReset::Earliest),
        )
        .unwrap();
    let tps: Vec<TopicPartition> = (0..d.partitions.len() as u32)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    c.assign(&tps).unwrap();
    let total: u64 = d.partitions.iter().map(|p| p.log_end_offset).sum();
    let mut out = BTreeSet::new();
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while n < total {
        assert!(Instant::now() < deadline, "timed out reading {topic}");
        for r in c.poll(Duration::from_millis(50)).unwrap().iter() {
            out.insert(String::from_utf8(r.value().unwrap().to_vec()).unwrap());
            n += 1;
        }
    }
    out
}

/// The child: creates `r<run>_<i>` (2 partitions), sends 3 records, sometimes adds a
/// partition, deletes the topic before, forever. Reports each step that returned.
#[test]
fn meta_child_entry() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let run: u32 = std::env::var(RUN_ENV).unwrap().parse().unwrap();
    let store = open_retrying(Path::new(&dir));
    let mut out = std::io::stdout().lock();
    let producer = store.producer();
    for i in 0u32.. {
        let name = format!("r{run}_{i}");
        writeln!(out, "CREATING {name}").unwrap();
        out.flush().unwrap();
        store.create_topic(&name, config(2)).unwrap();
        for k in 0..3 {
            producer
                .send(
                    ProducerRecord::new(name.as_str())
                        .key(format!("k{k}"))
                        .value(format!("{name}/{k}")),
                )
                .unwrap();
        }
        writeln!(out, "CREATED {name}").unwrap();
        out.flush().unwrap();
        if i % 3 == 1 {
            writeln!(out, "GROWING {name}").unwrap();
            out.flush().unwrap();
            store.add_partitions(&name, 3).unwrap();
            producer
                .send(
                    ProducerRecord::new(name.as_str())
                        .partition(2)
                        .value(format!("{name}/p2")),
                )
                .unwrap();
            writeln!(out, "GREW {name}").unwrap();
            out.flush().unwrap();
        }
        if i > 0 && i % 2 == 0 {
            let old = format!("r{run}_{}", i - 1);
            writeln!(out, "DELETING {old}").unwrap();
            out.flush().unwrap();
            store.delete_topic(&old).unwrap();
            writeln!(out, "DELETED {old}").unwrap();
            out.flush().unwrap();
        }
    }
}

#[test]
fn topic_changes_survive_sigkill_at_any_moment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let keep: BTreeSet<String> = (0..20).map(|i| format!("keep/{i}")).collect();
    {
        let store = Store::open(dir).unwrap();
        store.create_topic("keep", config(2)).unwrap();
        for v in &keep {
            store
                .producer()
                .send(
                    ProducerRecord::new("keep")
                        .key(v.as_str())
                        .value(v.as_str()),
                )
                .unwrap();
        }
    }
    let mut lcg = common::Lcg(0x9E37_79B9_7F4A_7C15);
    let mut created_total = 0;
    for run in 0..12u32 {
        let delay = Duration::from_millis(30 + lcg.below(400));
        let mut child = common::child_command("meta_child_entry")
            .env(DIR_ENV, dir)
            .env(RUN_ENV, run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        std::thread::sleep(delay);
        child.kill().unwrap();
        child.wait().unwrap();
        let lines = reader.join().unwrap();

        let mut created = BTreeSet::new();
        let mut grew = BTreeSet::new();
        let mut deleting = BTreeSet::new();
        let mut deleted = BTreeSet::new();
        for l in &lines {
            let Some((what, name)) = l.split_once(' ') else {
                continue;
            };
            match what {
                "CREATED" => {
                    created.insert(name.to_string());
                }
                "GREW" => {
                    grew.insert(name.to_string());
                }
                "DELETING" => {
                    deleting.insert(name.to_string());
                }
                "DELETED" => {
                    deleted.insert(name.to_string());
                }
                _ => {}
            }
        }
        created_total += created.len();
        let store = open_retrying(dir);
        let listed: BTreeSet<String> = store.list_topics().into_iter().collect();
        assert_eq!(values(&store, "keep"), keep, "run {run}");
        for t in &created {
            if deleted.contains(t) {
                assert!(!listed.contains(t), "run {run}: deleted {t} came back");
                continue;
            }
            if deleting.contains(t) && !listed.contains(t) {
                continue;
            }
            assert!(
                listed.contains(t),
                "run {run}: created {t} is gone: {lines:?}"
            );
            let got = values(&store, t);
            for k in 0..3 {
                assert!(
                    got.contains(&format!("{t}/{k}")),
                    "run {run}: {t} lost record {k}"
                );
            }
            if grew.contains(t) {
                assert_eq!(store.describe_topic(t).unwrap().partitions.len(), 3);
                assert!(got.contains(&format!("{t}/p2")), "run {run}: {t} lost p2");
            }
        }
        for t in &listed {
            // Every topic that opened is whole: each partition readable.
            values(&store, t);
        }
        let markers: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".creating") || n.ends_with(".deleted"))
            .collect();
        assert!(markers.is_empty(), "run {run}: {markers:?}");
    }
    assert!(created_total > 0, "no child ever created a topic");
}
