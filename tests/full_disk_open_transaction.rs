//! A store opens on a full disk even when a crash left a transaction open (issue 13 item 3).
//!
//! Recovery at open ends such a transaction with a marker in every log it wrote (commit where the
//! coordinator durably decided to commit, abort otherwise). When the disk has no room for the
//! markers the open still succeeds and serves reads: `read_uncommitted` sees everything,
//! `read_committed` stops at the open transaction (its partition's last stable offset), and a
//! transactional producer cannot register (a new epoch must not write before the old
//! transaction's marker) — it fails with a clean `NoSpace`. Once there is room the maintenance
//! thread writes the markers, then the completion record; a reopen finds the same.
//!
//! The disk is made full with the failpoint seam (feature `failpoints`): every block reservation
//! and segment creation under the store fails with `ENOSPC` until disarmed.
//!
//! Kafka's reference: a producer's `InitProducerId` while its id's previous transaction is in
//! `PrepareCommit`/`PrepareAbort` (markers pending) gets the retriable `CONCURRENT_TRANSACTIONS`
//! (`TransactionCoordinator.prepareInitProducerIdTransit` in
//! core/src/main/scala/kafka/coordinator/transaction/TransactionCoordinator.scala; tests
//! `TransactionCoordinatorTest.shouldWaitForCommitToCompleteOnHandleInitPidAndExistingTransactionInPrepareCommitState`
//! and `...InPrepareAbortState`); here that wait is the retriable `NoSpace`.
#![cfg(feature = "failpoints")]

use std::path::Path;
use std::time::{Duration, Instant};

use riverbed::failpoint::{self, sites};
use riverbed::{
    ConsumerConfig, ConsumerGroupMetadata, FlushPolicy, IsolationLevel, OffsetAndMetadata,
    ProducerRecord, Store, TopicConfig, TopicPartition,
};

fn tp(p: u32) -> TopicPartition {
    TopicPartition::new("t", p)
}

/// The values of `t-p` from offset 0 that a reader at `level` sees.
fn read(store: &Store, p: u32, level: IsolationLevel) -> Vec<Vec<u8>> {
    let mut c = store
        .consumer(ConsumerConfig::new("reader").isolation_level(level))
        .unwrap();
    c.assign(&[tp(p)]).unwrap();
    c.seek(&tp(p), 0).unwrap();
    let mut out = Vec::new();
    loop {
        let recs = c.poll(Duration::from_millis(20)).unwrap();
        if recs.is_empty() {
            return out;
        }
        for r in recs.iter() {
            out.push(r.value().unwrap_or_default().to_vec());
        }
    }
}

const BIG: usize = 3950;

/// Leaves a transaction of "tx" open in `t-0`, `t-1` and the offsets log, as a crash would:
/// decided to commit (its `PrepareCommit` durable, no marker written) or undecided.
fn crash_with_open_transaction(dir: &Path, decided: bool) {
    let store = Store::open(dir).unwrap();
    store
        .create_topic(
            "t",
            TopicConfig::new(2)
                .flush(FlushPolicy::EveryAppend)
                .segment_bytes(4096)
                .max_message_bytes(4072),
        )
        .unwrap();
    let p = store.producer();
    for part in 0..2 {
        p.send(ProducerRecord::new("t").partition(part).value("before"))
            .unwrap();
    }
    let txn = store.transactional_producer("tx").unwrap();
    txn.begin().unwrap();
    // Fills t-0's segment: its marker cannot be written without a new segment.
    txn.send(ProducerRecord::new("t").partition(0).value(vec![5u8; BIG]))
        .unwrap();
    txn.send(ProducerRecord::new("t").partition(1).value("in-txn"))
        .unwrap();
    let group = ConsumerGroupMetadata::new("g");
    txn.send_offsets(&group, &[(tp(0), OffsetAndMetadata::new(1))])
        .unwrap();
    if decided {
        // The decision is written; the first marker (t-0) finds no room, so none is written
        // before the "crash" (the store is dropped with the disk still full).
        failpoint::arm_times(
            sites::SEGMENT_CREATE,
            &dir.join("t-0"),
            1,
            u64::MAX,
            failpoint::ENOSPC,
        );
        txn.commit().unwrap();
    }
    drop(txn);
    drop(store);
    failpoint::disarm(&dir.join("t-0"));
}

/// Every block reservation and segment creation under `dir` fails until disarmed.
fn fill_disk(dir: &Path) {
    failpoint::arm_times(sites::SEGMENT_ALLOCATE, dir, 1, u64::MAX, failpoint::ENOSPC);
    failpoint::arm_times(sites::SEGMENT_CREATE, dir, 1, u64::MAX, failpoint::ENOSPC);
}

/// Opens on the full disk and checks what is served while the markers are pending.
fn open_full(dir: &Path) -> Store {
    fill_disk(dir);
    let store =
        Store::open(dir).unwrap_or_else(|e| panic!("a full disk must not fail the open: {e}"));
    for _ in 0..3 {
        assert_eq!(
            read(&store, 0, IsolationLevel::ReadUncommitted),
            vec![b"before".to_vec(), vec![5u8; BIG]]
        );
        assert_eq!(
            read(&store, 1, IsolationLevel::ReadUncommitted),
            vec![b"before".to_vec(), b"in-txn".to_vec()]
        );
        for p in 0..2 {
            assert_eq!(
                read(&store, p, IsolationLevel::ReadCommitted),
                vec![b"before".to_vec()],
                "read_committed went past the open transaction in t-{p}"
            );
        }
        assert!(store.committed_offsets("g").is_empty());
        let Err(e) = store.transactional_producer("tx") else {
            panic!("a producer registered before its previous transaction ended")
        };
        assert!(e.is_no_space(), "not NoSpace: {e}");
        // Several maintenance ticks pass; nothing changes while the disk is full.
        std::thread::sleep(Duration::from_millis(150));
    }
    store
}

/// Disarms and waits for the maintenance thread to write the markers: a record appended after
/// the transaction becomes visible to `read_committed` once the last stable offset moves.
fn room_again(store: &Store, dir: &Path, decided: bool) {
    failpoint::disarm(dir);
    store
        .producer()
        .send(ProducerRecord::new("t").partition(1).value("after"))
        .unwrap();
    let want1: Vec<Vec<u8>> = if decided {
        vec![b"before".to_vec(), b"in-txn".to_vec(), b"after".to_vec()]
    } else {
        vec![b"before".to_vec(), b"after".to_vec()]
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while read(store, 1, IsolationLevel::ReadCommitted) != want1 {
        assert!(
            Instant::now() < deadline,
            "the recovery marker never landed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What every reader sees once the markers are written (with `next` committed afterwards).
fn check_ended(store: &Store, decided: bool, next: bool) {
    let mut want0 = vec![b"before".to_vec()];
    let mut want1 = vec![b"before".to_vec()];
    if decided {
        want0.push(vec![5u8; BIG]);
        want1.push(b"in-txn".to_vec());
    }
    want1.push(b"after".to_vec());
    if next {
        want1.push(b"next".to_vec());
    }
    assert_eq!(read(store, 0, IsolationLevel::ReadCommitted), want0);
    assert_eq!(read(store, 1, IsolationLevel::ReadCommitted), want1);
    let offsets = store.committed_offsets("g");
    if decided {
        assert_eq!(offsets, vec![(tp(0), OffsetAndMetadata::new(1))]);
    } else {
        assert!(offsets.is_empty(), "{offsets:?}");
    }
}

fn scenario(decided: bool) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    crash_with_open_transaction(&dir, decided);

    let store = open_full(&dir);
    // Closing with the markers pending is fine: the next open redoes recovery.
    drop(store);
    failpoint::disarm(&dir);
    let store = open_full(&dir);

    room_again(&store, &dir, decided);
    check_ended(&store, decided, false);
    let txn = store
        .transactional_producer("tx")
        .unwrap_or_else(|e| panic!("the markers are written, init must succeed: {e}"));
    txn.begin().unwrap();
    txn.send(ProducerRecord::new("t").partition(1).value("next"))
        .unwrap();
    txn.commit().unwrap();
    check_ended(&store, decided, true);
    drop(txn);
    drop(store);

    let store = Store::open(&dir).unwrap();
    check_ended(&store, decided, true);
    assert_eq!(
        read(&store, 0, IsolationLevel::ReadUncommitted),
        vec![b"before".to_vec(), vec![5u8; BIG]]
    );
}

#[test]
fn a_decided_commit_is_completed_once_there_is_room() {
    scenario(true);
}

#[test]
fn an_undecided_transaction_is_aborted_once_there_is_room() {
    scenario(false);
}

/// Only the old transaction's marker lacks room (here: only `t-0`'s directory is full; the
/// transaction log has room for a new registration). The producer still waits: registering a
/// new epoch before the marker would let the new epoch's batches precede it.
#[test]
fn a_producer_waits_for_the_marker_even_when_its_own_record_fits() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    crash_with_open_transaction(&dir, false);
    fill_disk(&dir.join("t-0"));
    let store = Store::open(&dir).unwrap();
    let Err(e) = store.transactional_producer("tx") else {
        panic!("a producer registered before its previous transaction's marker")
    };
    assert!(e.is_no_space(), "not NoSpace: {e}");
    assert_eq!(
        read(&store, 0, IsolationLevel::ReadCommitted),
        vec![b"before".to_vec()]
    );
    failpoint::disarm(&dir.join("t-0"));
    let txn = store.transactional_producer("tx").unwrap();
    txn.begin().unwrap();
    txn.send(ProducerRecord::new("t").partition(0).value("next"))
        .unwrap();
    txn.commit().unwrap();
    assert_eq!(
        read(&store, 0, IsolationLevel::ReadCommitted),
        vec![b"before".to_vec(), b"next".to_vec()]
    );
}
