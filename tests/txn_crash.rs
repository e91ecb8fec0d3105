//! Transactions and real process crashes: a child process (this test binary, re-executed) runs
//! a transactional producer in a loop — begin, send records to two partitions, send offsets,
//! commit (or abort every fifth) — until the parent kills it with SIGKILL at a pseudo-random
//! moment. The parent reopens the store (which ends what the crash left open) and checks with a
//! `read_committed` reader:
//! - every transaction the child reported committed is fully visible in both partitions;
//! - no record of an aborted transaction is visible, and every visible transaction is complete
//!   (all its records in both partitions): atomicity across partitions;
//! - the group's committed offset is the one the last visible transaction sent;
//! - nothing stays open: the last stable offset is the end of each log.
//!
//! Also two crashes placed exactly, by editing a copy of the files: after the commit decision
//! but before the markers (the commit completes at open), and before the decision (aborted).
//!
//! When `RIVERBED_TXN_CRASH_DIR` is set, `txn_crash_child_entry` is the child and never
//! returns; in a normal test run it returns at once.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use riverbed::{
    ConsumerGroupMetadata, ErrorKind, FlushPolicy, IsolationLevel, LogConfig, OffsetAndMetadata,
    ProducerRecord, Store, TopicConfig, TopicPartition,
};

mod common;
use common::{batches_in, copy_tree, log_path, read_all_consumed};

const DIR_ENV: &str = "RIVERBED_TXN_CRASH_DIR";
const RUN_ENV: &str = "RIVERBED_TXN_CRASH_RUN";
const CHILD_TEST: &str = "txn_crash_child_entry";
const TOPIC: &str = "out";
const GROUP: &str = "copiers";

fn input() -> TopicPartition {
    TopicPartition::new("in", 0)
}

fn parts() -> Vec<TopicPartition> {
    vec![TopicPartition::new(TOPIC, 0), TopicPartition::new(TOPIC, 1)]
}

/// Transaction `g` writes this many records to each of the two partitions.
fn records_per_partition(g: u64) -> u32 {
    1 + (g % 4) as u32
}

/// Every fifth transaction is aborted by the child.
fn aborts(g: u64) -> bool {
    g % 5 == 4
}

fn value(g: u64, partition: u32, i: u32) -> String {
    format!("{g}:{partition}:{i}")
}

fn parse_value(v: &[u8]) -> (u64, u32, u32) {
    let s = std::str::from_utf8(v).unwrap();
    let mut it = s.split(':').map(|x| x.parse::<u64>().unwrap());
    let (g, p, i) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    (g, p as u32, i as u32)
}

fn group() -> ConsumerGroupMetadata {
    ConsumerGroupMetadata::new(GROUP)
}

fn topic_config(flush: FlushPolicy) -> TopicConfig {
    TopicConfig::new(2).log(
        LogConfig::default()
            // Small segments, so that crashes also hit rolls (snapshots, `.txnindex` files).
            .segment_bytes(16 << 10)
            .max_message_bytes(8 << 10)
            .segment_ms(None)
            .retention_ms(None)
            .flush(flush),
    )
}

// ---- the child --------------------------------------------------------------------------------

#[test]
fn txn_crash_child_entry() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let run: u64 = std::env::var(RUN_ENV).unwrap().parse().unwrap();
    child_main(Path::new(&dir), run);
}

fn say(line: &str) {
    let out = std::io::stdout();
    let mut out = out.lock();
    // The leading newline separates us from whatever the test harness printed.
    let _ = writeln!(out, "\n{line}");
    let _ = out.flush();
}

fn child_fail(msg: String) -> ! {
    say(&format!("ERR {}", msg.replace('\n', " | ")));
    std::process::exit(3);
}

fn child_main(dir: &Path, run: u64) -> ! {
    // Another test thread of the parent may have forked while the store was open: until that
    // process execs it holds the lock with a duplicated descriptor. Wait that out.
    let deadline = Instant::now() + Duration::from_secs(10);
    let store = loop {
        match Store::open(dir) {
            Ok(s) => break s,
            Err(e) if matches!(e.kind(), ErrorKind::Locked { .. }) && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => child_fail(format!("open: {e}")),
        }
    };
    let producer = store
        .transactional_producer("copier")
        .unwrap_or_else(|e| child_fail(format!("producer: {e}")));
    say("START");
    let mut k = 0u64;
    loop {
        let g = run * 1_000_000 + k;
        let result = (|| -> riverbed::Result<()> {
            producer.begin()?;
            let n = records_per_partition(g);
            let records: Vec<ProducerRecord> = (0..n)
                .flat_map(|i| {
                    (0..2).map(move |p| {
                        ProducerRecord::new(TOPIC)
                            .partition(p)
                            .value(value(g, p, i))
                    })
                })
                .collect();
            if k.is_multiple_of(2) {
                producer.send_batch(records)?;
            } else {
                for r in records {
                    producer.send(r)?;
                }
            }
            producer.send_offsets(&group(), &[(input(), OffsetAndMetadata::new(g + 1))])?;
            if aborts(g) {
                producer.abort()?;
                say(&format!("aborted {g}"));
            } else {
                producer.commit()?;
                say(&format!("committed {g}"));
            }
            Ok(())
        })();
        if let Err(e) = result {
            child_fail(format!("transaction {g}: {e}"));
        }
        k += 1;
    }
}

// ---- the parent -------------------------------------------------------------------------------

struct RunResult {
    committed: Vec<u64>,
    errors: Vec<String>,
    started: bool,
}

fn run_child(dir: &Path, run: u64, delay: Duration) -> RunResult {
    let mut child = common::child_command(CHILD_TEST)
        .env(DIR_ENV, dir)
        .env(RUN_ENV, run.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            // A line cut by the kill was never fully said.
            if buf.last() != Some(&b'\n') {
                return;
            }
            if tx
                .send(String::from_utf8_lossy(&buf).trim().to_string())
                .is_err()
            {
                return;
            }
        }
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut out = RunResult {
        committed: Vec::new(),
        errors: Vec::new(),
        started: false,
    };
    let handle = |line: String, out: &mut RunResult| {
        if line == "START" {
            out.started = true;
        } else if let Some(g) = line.strip_prefix("committed ") {
            out.committed.push(g.parse().unwrap());
        } else if line.starts_with("ERR") {
            out.errors.push(line);
        }
    };
    // The delay counts from the child's start line, so that it is spent in the loop.
    let start_deadline = Instant::now() + Duration::from_secs(30);
    while !out.started && out.errors.is_empty() && Instant::now() < start_deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
            handle(line, &mut out);
        }
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
    }
    thread::sleep(delay);
    // SIGKILL on Unix.
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    for line in rx.try_iter() {
        handle(line, &mut out);
    }
    let stderr = err_reader.join().unwrap_or_default();
    assert!(
        out.errors.is_empty(),
        "child run {run} failed: {:?}\n{stderr}",
        out.errors
    );
    assert!(out.started, "child run {run} did not start:\n{stderr}");
    out
}

/// Opens the store and checks everything the file doc promises; returns the transactions
/// visible.
fn verify(dir: &Path, reported: &BTreeSet<u64>, what: &str) -> BTreeSet<u64> {
    let store = common::retry_locked(|| Store::open(dir));
    let committed = read_all_consumed(&store, &parts(), IsolationLevel::ReadCommitted, 4096);
    let lso: Vec<u64> = {
        let c = store
            .consumer(
                riverbed::ConsumerConfig::default().isolation_level(IsolationLevel::ReadCommitted),
            )
            .unwrap();
        c.end_offsets(&parts())
            .unwrap()
            .into_iter()
            .map(|e| e.1)
            .collect()
    };
    let hw: Vec<u64> = store
        .describe_topic(TOPIC)
        .unwrap()
        .partitions
        .iter()
        .map(|p| p.log_end_offset)
        .collect();
    assert_eq!(
        lso, hw,
        "{what}: no transaction may stay open after the open"
    );

    // Per transaction and partition: the record indexes seen, in order.
    let mut seen: BTreeMap<u64, [Vec<u32>; 2]> = BTreeMap::new();
    for (p, records) in committed.iter().enumerate() {
        let mut last_g = None;
        for (offset, _, v) in records {
            let (g, vp, i) = parse_value(v.as_deref().unwrap());
            assert_eq!(
                vp as usize, p,
                "{what}: record of partition {vp} in partition {p}"
            );
            assert!(
                !aborts(g),
                "{what}: record {i} of aborted transaction {g} is visible in partition {p} at \
                 offset {offset}"
            );
            assert!(
                last_g.is_none_or(|l| l <= g),
                "{what}: transaction {g} after {last_g:?} in partition {p}"
            );
            last_g = Some(g);
            seen.entry(g).or_default()[p].push(i);
        }
    }
    for (g, per_partition) in &seen {
        let expected: Vec<u32> = (0..records_per_partition(*g)).collect();
        for (p, got) in per_partition.iter().enumerate() {
            assert_eq!(
                got, &expected,
                "{what}: transaction {g} is visible but incomplete in partition {p}"
            );
        }
    }
    for g in reported {
        assert!(
            seen.contains_key(g),
            "{what}: transaction {g} was reported committed but is not visible"
        );
    }
    let offsets = store.committed_offsets(GROUP);
    match seen.keys().next_back() {
        Some(last) => assert_eq!(
            offsets,
            [(input(), OffsetAndMetadata::new(last + 1))],
            "{what}: the committed offset must be the last visible transaction's"
        ),
        None => assert!(offsets.is_empty(), "{what}: {offsets:?}"),
    }
    drop(store);
    seen.into_keys().collect()
}

fn crash_loop(flush: FlushPolicy, runs: u64, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = common::retry_locked(|| Store::open(dir.path()));
        store.create_topic(TOPIC, topic_config(flush)).unwrap();
    }
    let mut rng = common::XorShift::from_state(seed | 1);
    let mut reported = BTreeSet::new();
    let mut visible = BTreeSet::new();
    for run in 0..runs {
        let delay = Duration::from_millis(5 + rng.below(300));
        let r = run_child(dir.path(), run, delay);
        reported.extend(r.committed);
        let what = format!("{flush:?}, after run {run} (killed {delay:?} after its start)");
        let now = verify(dir.path(), &reported, &what);
        // What was visible stays visible (a reopen never takes back a commit).
        assert!(
            visible.is_subset(&now),
            "{what}: a visible transaction disappeared"
        );
        visible = now;
    }
    assert!(
        !reported.is_empty(),
        "no transaction committed in any run: the test checked nothing"
    );
    eprintln!(
        "{flush:?}: {runs} runs, {} transactions reported committed, {} visible",
        reported.len(),
        visible.len()
    );
}

#[test]
fn sigkill_during_transactions_every_append() {
    crash_loop(FlushPolicy::EveryAppend, 12, 0x5eed_0001);
}

#[test]
fn sigkill_during_transactions_manual_flush() {
    crash_loop(FlushPolicy::Manual, 12, 0x5eed_0002);
}

// ---- crashes placed exactly -------------------------------------------------------------------

/// Zeroes the last `n` batches of the active segment of the log in `dir`: what a crash right
/// before they were written leaves (the file is preallocated, so the rest of it is zeros).
fn unwrite_last_batches(dir: &Path, n: usize) {
    let mut bases: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort();
    let path: PathBuf = log_path(dir, *bases.last().unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    let batches = batches_in(&bytes);
    assert!(batches.len() >= n, "{path:?} has {} batches", batches.len());
    let from = batches[batches.len() - n].0;
    let to = batches.last().map(|b| b.0 + b.2).unwrap();
    bytes[from..to].fill(0);
    std::fs::write(&path, bytes).unwrap();
}

/// Transaction `g` as the child writes it, committed.
fn commit_transaction(p: &riverbed::TransactionalProducer, g: u64) {
    p.begin().unwrap();
    for i in 0..records_per_partition(g) {
        for part in 0..2 {
            p.send(
                ProducerRecord::new(TOPIC)
                    .partition(part)
                    .value(value(g, part, i)),
            )
            .unwrap();
        }
    }
    p.send_offsets(&group(), &[(input(), OffsetAndMetadata::new(g + 1))])
        .unwrap();
    p.commit().unwrap();
}

/// A committed transaction and one more, copied while the store is open, with the files edited
/// by `edit` to place the crash inside the second transaction's commit.
fn two_transactions(edit: impl Fn(&Path)) -> (tempfile::TempDir, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = common::retry_locked(|| Store::open(dir.path()));
    store
        .create_topic(TOPIC, topic_config(FlushPolicy::Manual))
        .unwrap();
    let p = store.transactional_producer("copier").unwrap();
    for g in [0u64, 1] {
        commit_transaction(&p, g);
    }
    let copy = copy_tree(dir.path());
    drop(p);
    drop(store);
    edit(copy.path());
    (dir, copy)
}

#[test]
fn a_commit_decided_before_the_crash_is_completed_at_open() {
    // The decision (PrepareCommit) is durable; the crash came before any marker and before the
    // completion record: the markers of both partitions and of the offsets log are gone.
    let (_dir, copy) = two_transactions(|d| {
        for p in 0..2 {
            unwrite_last_batches(&d.join(format!("{TOPIC}-{p}")), 1);
        }
        unwrite_last_batches(&d.join("__consumer_offsets-0"), 1);
        unwrite_last_batches(&d.join("__transaction_state-0"), 1);
    });
    let visible = verify(copy.path(), &[0, 1].into(), "decided, no markers");
    assert_eq!(visible, [0, 1].into());
}

#[test]
fn a_commit_decided_with_some_markers_written_is_completed_at_open() {
    let (_dir, copy) = two_transactions(|d| {
        unwrite_last_batches(&d.join(format!("{TOPIC}-1")), 1);
        unwrite_last_batches(&d.join("__transaction_state-0"), 1);
    });
    let visible = verify(copy.path(), &[0, 1].into(), "decided, one marker");
    assert_eq!(visible, [0, 1].into());
}

#[test]
fn a_transaction_without_a_decision_is_aborted_at_open() {
    // The crash came after the data but before the decision: no PrepareCommit, no markers.
    let (_dir, copy) = two_transactions(|d| {
        for p in 0..2 {
            unwrite_last_batches(&d.join(format!("{TOPIC}-{p}")), 1);
        }
        unwrite_last_batches(&d.join("__consumer_offsets-0"), 1);
        unwrite_last_batches(&d.join("__transaction_state-0"), 2);
    });
    let visible = verify(copy.path(), &[0].into(), "undecided");
    assert_eq!(visible, [0].into());
    // And the producer goes on: its next transaction commits.
    let store = common::retry_locked(|| Store::open(copy.path()));
    let p = store.transactional_producer("copier").unwrap();
    commit_transaction(&p, 2);
    drop(p);
    drop(store);
    let visible = verify(copy.path(), &[0, 2].into(), "after the next transaction");
    assert_eq!(visible, [0, 2].into());
}
