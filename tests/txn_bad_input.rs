//! Misuse of a transactional producer: every bad call answers with a typed error and changes
//! nothing a reader can see (log ends, last stable offsets, committed offsets, what
//! `read_committed` returns). Also fencing by a second producer with the same transactional id,
//! the transaction timeout, and errors that must leave the transaction able to commit.

use std::time::{Duration, Instant};

use riverbed::{
    Consumer, ConsumerConfig, ConsumerGroupMetadata, ErrorKind, IsolationLevel, OffsetAndMetadata,
    ProducerRecord, Result, Store, TopicConfig, TopicPartition, TransactionConfig,
    TransactionalProducer,
};
use tempfile::TempDir;

mod common;
use common::read_all_consumed;

fn tp(topic: &str, p: u32) -> TopicPartition {
    TopicPartition::new(topic, p)
}

fn parts() -> Vec<TopicPartition> {
    vec![tp("out", 0), tp("out", 1)]
}

fn setup() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("out", TopicConfig::new(2)).unwrap();
    store.create_topic("in", TopicConfig::new(2)).unwrap();
    (dir, store)
}

fn rec(p: u32, v: &str) -> ProducerRecord {
    ProducerRecord::new("out")
        .partition(p)
        .key("k")
        .value(v.as_bytes())
}

/// A manual group without members: its offsets may be committed by anyone.
fn group(name: &str) -> ConsumerGroupMetadata {
    ConsumerGroupMetadata::new(name)
}

/// Everything a reader can observe.
#[derive(Debug, PartialEq)]
struct Observed {
    /// (high watermark, last stable offset) per partition of `out`.
    ends: Vec<(u64, u64)>,
    committed: Vec<(TopicPartition, OffsetAndMetadata)>,
    /// Values a `read_committed` consumer reads from each partition.
    visible: Vec<Vec<Vec<u8>>>,
}

fn observe(store: &Store) -> Observed {
    let c = |level| {
        store
            .consumer(ConsumerConfig::default().isolation_level(level))
            .unwrap()
    };
    let hw = c(IsolationLevel::ReadUncommitted)
        .end_offsets(&parts())
        .unwrap();
    let lso = c(IsolationLevel::ReadCommitted)
        .end_offsets(&parts())
        .unwrap();
    Observed {
        ends: hw.iter().zip(&lso).map(|(h, l)| (h.1, l.1)).collect(),
        committed: store.committed_offsets("g"),
        visible: visible(store),
    }
}

fn visible(store: &Store) -> Vec<Vec<Vec<u8>>> {
    read_all_consumed(store, &parts(), IsolationLevel::ReadCommitted, 1 << 20)
        .into_iter()
        .map(|p| p.into_iter().filter_map(|(_, _, v)| v).collect())
        .collect()
}

fn values(vs: &[&str]) -> Vec<Vec<u8>> {
    vs.iter().map(|v| v.as_bytes().to_vec()).collect()
}

#[track_caller]
fn assert_invalid_state<T: std::fmt::Debug>(r: Result<T>) {
    let e = r.expect_err("must fail");
    assert!(
        matches!(e.kind(), ErrorKind::InvalidTransactionState { .. }),
        "expected InvalidTransactionState, got {e:?}"
    );
}

#[track_caller]
fn assert_fenced<T: std::fmt::Debug>(r: Result<T>) {
    let e = r.expect_err("must fail");
    assert!(
        matches!(e.kind(), ErrorKind::Fenced { .. }),
        "expected Fenced, got {e:?}"
    );
}

#[track_caller]
fn assert_commit_failed<T: std::fmt::Debug>(r: Result<T>) {
    let e = r.expect_err("must fail");
    assert!(
        matches!(e.kind(), ErrorKind::CommitFailed { .. }),
        "expected CommitFailed, got {e:?}"
    );
}

/// A committed transaction first, so that "nothing changed" compares non-trivial state.
fn with_history(store: &Store) -> TransactionalProducer {
    let p = store.transactional_producer("t").unwrap();
    p.begin().unwrap();
    p.send(rec(0, "old0")).unwrap();
    p.send(rec(1, "old1")).unwrap();
    p.send_offsets(&group("g"), &[(tp("in", 0), OffsetAndMetadata::new(3))])
        .unwrap();
    p.commit().unwrap();
    p
}

#[test]
fn calls_outside_a_transaction_fail_and_change_nothing() {
    let (_dir, store) = setup();
    let p = with_history(&store);
    let before = observe(&store);
    assert_eq!(before.visible, [values(&["old0"]), values(&["old1"])]);

    assert_invalid_state(p.commit());
    assert_invalid_state(p.abort());
    assert_invalid_state(p.send(rec(0, "stray")));
    assert_invalid_state(p.send_batch([rec(0, "stray"), rec(1, "stray")]));
    assert_invalid_state(p.send_offsets(&group("g"), &[(tp("in", 0), OffsetAndMetadata::new(99))]));
    assert_eq!(observe(&store), before);

    // A later transaction is unaffected by the refused calls: in particular the refused offsets
    // were not left pending to be committed with it.
    p.begin().unwrap();
    p.send(rec(0, "new")).unwrap();
    p.commit().unwrap();
    let after = observe(&store);
    assert_eq!(after.committed, before.committed);
    assert_eq!(after.visible, [values(&["old0", "new"]), values(&["old1"])]);
}

#[test]
fn commit_and_abort_twice_fail_the_second_time() {
    let (_dir, store) = setup();
    let p = with_history(&store);
    assert_invalid_state(p.commit());
    p.begin().unwrap();
    p.send(rec(0, "dropped")).unwrap();
    p.abort().unwrap();
    let before = observe(&store);
    assert_invalid_state(p.abort());
    assert_invalid_state(p.commit());
    assert_eq!(observe(&store), before);
    assert_eq!(before.visible, [values(&["old0"]), values(&["old1"])]);
}

#[test]
fn begin_twice_fails_and_keeps_the_open_transaction() {
    let (_dir, store) = setup();
    let p = with_history(&store);
    p.begin().unwrap();
    p.send(rec(0, "a")).unwrap();
    let before = observe(&store);
    assert_invalid_state(p.begin());
    assert_eq!(observe(&store), before);
    // Still the same transaction: what was sent before the bad begin commits with it.
    p.send(rec(1, "b")).unwrap();
    p.commit().unwrap();
    assert_eq!(
        visible(&store),
        [values(&["old0", "a"]), values(&["old1", "b"])]
    );
}

#[test]
fn validation_errors_inside_a_transaction_write_nothing_and_it_can_still_commit() {
    let (_dir, store) = setup();
    let p = with_history(&store);
    p.begin().unwrap();
    p.send(rec(0, "a")).unwrap();
    let before = observe(&store);

    let e = p
        .send(ProducerRecord::new("nope").key("k").value("x"))
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::UnknownTopic { .. }), "{e:?}");
    // A batch with one bad record is refused as a whole, before anything is appended.
    let e = p
        .send_batch([rec(1, "half"), ProducerRecord::new("nope").value("x")])
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::UnknownTopic { .. }), "{e:?}");
    let e = p.send(rec(7, "bad partition")).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::UnknownPartition { .. }),
        "{e:?}"
    );
    assert_eq!(observe(&store), before);

    p.send(rec(1, "b")).unwrap();
    p.commit().unwrap();
    assert_eq!(
        visible(&store),
        [values(&["old0", "a"]), values(&["old1", "b"])]
    );
}

#[test]
fn bad_configurations_are_refused() {
    let (_dir, store) = setup();
    let e = store.transactional_producer("").unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidConfig { .. }), "{e:?}");
    let e = store
        .transactional_producer_with("t", TransactionConfig::default().timeout(Duration::ZERO))
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidConfig { .. }), "{e:?}");
    let long = "x".repeat(40_000);
    let e = store.transactional_producer(&long).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidConfig { .. }), "{e:?}");
    // None of the refused ones registered (and so fenced) anything: a producer made before
    // them still works.
    let p = store.transactional_producer("u").unwrap();
    let _ = store.transactional_producer("");
    p.begin().unwrap();
    p.send(rec(0, "a")).unwrap();
    p.commit().unwrap();
    assert_eq!(visible(&store), [values(&["a"]), values(&[])]);
}

/// Polls every consumer until all share one generation and split the two partitions of `in`.
fn settle(consumers: &mut [&mut Consumer]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for c in consumers.iter_mut() {
            c.poll(Duration::from_millis(10)).unwrap();
        }
        let gens: Vec<u32> = consumers.iter().map(|c| c.generation()).collect();
        let all_assigned = consumers.iter().all(|c| !c.assignment().is_empty());
        if all_assigned && gens.windows(2).all(|w| w[0] == w[1]) {
            let total: usize = consumers.iter().map(|c| c.assignment().len()).sum();
            if total == 2 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the group did not settle: {gens:?}"
        );
    }
}

#[test]
fn send_offsets_for_partitions_the_member_does_not_own_fail_with_commit_failed() {
    let (_dir, store) = setup();
    let p = with_history(&store);
    let config = || (ConsumerConfig::new("g")).enable_auto_commit(false);
    let mut c1 = store.consumer(config()).unwrap();
    let mut c2 = store.consumer(config()).unwrap();
    c1.subscribe(&["in"]).unwrap();
    c2.subscribe(&["in"]).unwrap();
    settle(&mut [&mut c1, &mut c2]);
    let mine = c1.assignment()[0].clone();
    let theirs = c2.assignment()[0].clone();
    assert_ne!(mine, theirs);
    let meta = c1.group_metadata().expect("a group member has metadata");
    assert_eq!(meta.group_id, "g");
    assert!(meta.member_id.is_some());

    p.begin().unwrap();
    p.send(rec(0, "a")).unwrap();
    let before = observe(&store);
    let om = OffsetAndMetadata::new;
    assert_commit_failed(p.send_offsets(&meta, &[(theirs.clone(), om(50))]));
    // One foreign partition spoils the whole call: the owned one is not written either.
    assert_commit_failed(
        p.send_offsets(&meta, &[(mine.clone(), om(51)), (theirs.clone(), om(52))]),
    );
    assert_commit_failed(p.send_offsets(&meta, &[(tp("in", 9), om(53))]));
    assert_commit_failed(p.send_offsets(&meta, &[(tp("nope", 0), om(54))]));
    // A member id the group does not know, and a stale generation.
    let mut stranger = meta.clone();
    stranger.member_id = Some("not-a-member".into());
    assert_commit_failed(p.send_offsets(&stranger, &[(mine.clone(), om(55))]));
    let mut stale = meta.clone();
    stale.generation = meta.generation.wrapping_sub(1);
    assert_commit_failed(p.send_offsets(&stale, &[(mine.clone(), om(56))]));
    // A manual-assignment identity may not commit for a group that has members.
    assert_commit_failed(p.send_offsets(&group("g"), &[(mine.clone(), om(57))]));
    assert_eq!(observe(&store), before);

    // The transaction is intact: an offset for an owned partition commits with it, and nothing
    // of the refused calls does.
    p.send_offsets(&meta, &[(mine.clone(), om(60))]).unwrap();
    p.commit().unwrap();
    let mut expected = before.committed.clone();
    expected.retain(|(t, _)| *t != mine);
    expected.push((mine.clone(), om(60)));
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(store.committed_offsets("g"), expected);
    assert_eq!(
        store
            .committed_offsets("g")
            .iter()
            .find(|(t, _)| *t == theirs),
        before.committed.iter().find(|(t, _)| *t == theirs)
    );
}

#[test]
fn a_fenced_producer_loses_its_open_transaction_and_every_later_call() {
    let (_dir, store) = setup();
    let old = with_history(&store);
    old.begin().unwrap();
    old.send(rec(0, "doomed0")).unwrap();
    old.send(rec(1, "doomed1")).unwrap();
    old.send_offsets(&group("g"), &[(tp("in", 0), OffsetAndMetadata::new(100))])
        .unwrap();
    let committed_before = store.committed_offsets("g");

    let new = store.transactional_producer("t").unwrap();
    let (old_pid, old_epoch) = old.producer_id_and_epoch();
    let (new_pid, new_epoch) = new.producer_id_and_epoch();
    assert!(
        (new_pid, new_epoch) != (old_pid, old_epoch)
            && (new_pid != old_pid || new_epoch > old_epoch),
        "the new producer must outrank the old one: {old_pid}/{old_epoch} vs {new_pid}/{new_epoch}"
    );
    // The old transaction was aborted: none of its records or offsets is visible, and it no
    // longer holds back the last stable offset.
    let after_fence = observe(&store);
    assert_eq!(after_fence.visible, [values(&["old0"]), values(&["old1"])]);
    assert_eq!(after_fence.committed, committed_before);
    for (hw, lso) in &after_fence.ends {
        assert_eq!(hw, lso, "no open transaction may remain after the fence");
    }

    assert_fenced(old.send(rec(0, "zombie")));
    assert_fenced(old.send_offsets(&group("g"), &[(tp("in", 0), OffsetAndMetadata::new(7))]));
    assert_fenced(old.commit());
    assert_fenced(old.abort());
    assert_fenced(old.begin());
    assert_fenced(old.send(rec(1, "zombie")));
    assert_eq!(observe(&store), after_fence);

    new.begin().unwrap();
    new.send(rec(1, "fresh")).unwrap();
    // The old producer cannot touch the new producer's transaction either.
    assert_fenced(old.commit());
    assert_fenced(old.abort());
    new.commit().unwrap();
    assert_eq!(
        visible(&store),
        [values(&["old0"]), values(&["old1", "fresh"])]
    );
}

#[test]
fn a_fenced_producer_stays_fenced_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let old_pe;
    {
        let store = Store::open(dir.path()).unwrap();
        store.create_topic("out", TopicConfig::new(2)).unwrap();
        let p = store.transactional_producer("t").unwrap();
        old_pe = p.producer_id_and_epoch();
        p.begin().unwrap();
        p.send(rec(0, "x")).unwrap();
        p.commit().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let p = store.transactional_producer("t").unwrap();
    let pe = p.producer_id_and_epoch();
    assert!(
        pe.0 != old_pe.0 || pe.1 > old_pe.1,
        "a producer registered after a reopen must outrank the one before: {old_pe:?} vs {pe:?}"
    );
    p.begin().unwrap();
    p.send(rec(0, "y")).unwrap();
    p.commit().unwrap();
    assert_eq!(visible(&store), [values(&["x", "y"]), values(&[])]);
}

/// Waits (without a deadline that is part of the assertion) until `cond` holds.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_transaction_past_its_timeout_is_aborted_by_the_store() {
    let (_dir, store) = setup();
    let _history = with_history(&store);
    let p = store
        .transactional_producer_with(
            "slow",
            TransactionConfig::default().timeout(Duration::from_millis(200)),
        )
        .unwrap();
    p.begin().unwrap();
    p.send(rec(0, "late0")).unwrap();
    p.send(rec(1, "late1")).unwrap();
    p.send_offsets(&group("g"), &[(tp("in", 1), OffsetAndMetadata::new(42))])
        .unwrap();
    let committed_before = store.committed_offsets("g");
    // While it is open, it holds back the last stable offset.
    let open = observe(&store);
    assert!(open.ends.iter().all(|(hw, lso)| lso < hw), "{open:?}");

    std::thread::sleep(Duration::from_millis(1000));
    wait_until("the timed-out transaction to be aborted", || {
        observe(&store).ends.iter().all(|(hw, lso)| hw == lso)
    });
    let aborted = observe(&store);
    assert_eq!(aborted.visible, [values(&["old0"]), values(&["old1"])]);
    assert_eq!(aborted.committed, committed_before);

    assert_invalid_state(p.send(rec(0, "after")));
    assert_invalid_state(p.send_offsets(&group("g"), &[(tp("in", 1), OffsetAndMetadata::new(43))]));
    assert_invalid_state(p.commit());
    assert_invalid_state(p.begin());
    assert_eq!(observe(&store), aborted);

    // Acknowledging the abort frees the producer for a new transaction.
    p.abort().unwrap();
    assert_invalid_state(p.abort());
    p.begin().unwrap();
    p.send(rec(1, "retry")).unwrap();
    p.send_offsets(&group("g"), &[(tp("in", 1), OffsetAndMetadata::new(44))])
        .unwrap();
    p.commit().unwrap();
    assert_eq!(
        visible(&store),
        [values(&["old0"]), values(&["old1", "retry"])]
    );
    assert!(store
        .committed_offsets("g")
        .contains(&(tp("in", 1), OffsetAndMetadata::new(44))));
}
