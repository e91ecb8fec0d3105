//! Model-based test of transactions: random sequences of begin, send, send_offsets, commit and
//! abort by two transactional producers, plain and idempotent sends, fencing by a new producer
//! with the same transactional id, clean reopens and simulated crashes run against a store and
//! against an in-memory model, compared after every step:
//! - a `read_committed` consumer reading from the beginning sees exactly the plain records and
//!   the records of committed transactions below the last stable offset (the first offset of the
//!   oldest open transaction), at the offsets the model predicts;
//! - a `read_committed` consumer that has been reading along since the start (small fetches, so
//!   it often starts in the middle of a transaction) has seen the same;
//! - a `read_uncommitted` consumer sees every record appended, aborted ones included, and no
//!   transaction marker (each marker still takes an offset);
//! - the group's committed offsets are those of committed `send_offsets` calls only.
//!
//! The model predicts offsets exactly: every send here is one record (one batch), and each
//! commit or abort writes one marker into each partition its transaction wrote to. A reopen, a
//! crash and a fence abort the open transactions (there is no commit decision for them).
//! A crash is a copy of the store directory taken while the store is open, then opened.
//!
//! Also: a store whose transactional producers started its timeout thread can be reopened right
//! after its last handle is dropped.

use std::collections::BTreeMap;

use proptest::prelude::*;
use riverbed::{
    Consumer, ConsumerConfig, ConsumerGroupMetadata, ErrorKind, FlushPolicy, IsolationLevel,
    LogConfig, OffsetAndMetadata, Producer, ProducerConfig, ProducerRecord, Store, TopicConfig,
    TopicPartition, TransactionalProducer,
};
use tempfile::TempDir;

mod common;
use common::{copy_tree, read_all_consumed, Seen};

/// Held while `copy_tree` spawns `cp`, and by the test that reopens a store right after dropping
/// it: a child forked by one test thread shares the directory lock of a store another thread
/// just dropped until the child execs (see `common::retry_locked`).
static NO_FORKS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn copy_quietly(from: &std::path::Path) -> TempDir {
    let _g = NO_FORKS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    copy_tree(from)
}

const TOPICS: [&str; 2] = ["a", "b"];
const TXN_IDS: [&str; 2] = ["tx0", "tx1"];
const GROUP: &str = "g";

fn tps() -> Vec<TopicPartition> {
    TOPICS
        .iter()
        .flat_map(|t| (0..2).map(move |p| TopicPartition::new(*t, p)))
        .collect()
}

#[derive(Clone, Debug)]
enum Op {
    Begin(usize),
    Send {
        producer: usize,
        tp: usize,
        key: u8,
    },
    SendOffsets {
        producer: usize,
        tp: usize,
        offset: u64,
    },
    Commit(usize),
    Abort(usize),
    Plain {
        tp: usize,
        key: u8,
        idempotent: bool,
    },
    /// A new producer for the transactional id: fences the old one.
    Fence(usize),
    Reopen,
    Crash,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let p = 0..TXN_IDS.len();
    prop_oneof![
        4 => p.clone().prop_map(Op::Begin),
        10 => (p.clone(), 0..4usize, 0..4u8)
            .prop_map(|(producer, tp, key)| Op::Send { producer, tp, key }),
        2 => (p.clone(), 0..4usize, 0..1000u64)
            .prop_map(|(producer, tp, offset)| Op::SendOffsets { producer, tp, offset }),
        3 => p.clone().prop_map(Op::Commit),
        2 => p.clone().prop_map(Op::Abort),
        4 => (0..4usize, 0..4u8, any::<bool>())
            .prop_map(|(tp, key, idempotent)| Op::Plain { tp, key, idempotent }),
        1 => p.prop_map(Op::Fence),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Plain,
    /// In the open transaction with this serial number.
    Open(u64),
    Committed,
    Aborted,
}

#[derive(Clone, Debug)]
struct ModelRecord {
    offset: u64,
    key: Vec<u8>,
    value: Vec<u8>,
    state: State,
}

#[derive(Default)]
struct ModelTxn {
    serial: u64,
    /// Partitions (indexes into `tps()`) written, in first-write order.
    touched: Vec<usize>,
    offsets: Vec<(TopicPartition, u64)>,
}

struct Model {
    parts: Vec<Vec<ModelRecord>>,
    next: Vec<u64>,
    open: Vec<Option<ModelTxn>>,
    committed: BTreeMap<TopicPartition, u64>,
    serial: u64,
    values: u64,
}

impl Model {
    fn new() -> Model {
        Model {
            parts: vec![Vec::new(); 4],
            next: vec![0; 4],
            open: (0..TXN_IDS.len()).map(|_| None).collect(),
            committed: BTreeMap::new(),
            serial: 0,
            values: 0,
        }
    }

    fn value(&mut self, what: &str) -> Vec<u8> {
        self.values += 1;
        format!("{what}-{}", self.values).into_bytes()
    }

    fn append(&mut self, tp: usize, key: u8, value: Vec<u8>, state: State) {
        let offset = self.next[tp];
        self.next[tp] += 1;
        self.parts[tp].push(ModelRecord {
            offset,
            key: vec![b'k', key],
            value,
            state,
        });
    }

    /// Ends producer `p`'s open transaction (if any): one marker per partition it wrote.
    fn end(&mut self, p: usize, commit: bool) {
        let Some(txn) = self.open[p].take() else {
            return;
        };
        for &tp in &txn.touched {
            for r in &mut self.parts[tp] {
                if r.state == State::Open(txn.serial) {
                    r.state = if commit {
                        State::Committed
                    } else {
                        State::Aborted
                    };
                }
            }
            self.next[tp] += 1;
        }
        if commit {
            for (tp, o) in txn.offsets {
                self.committed.insert(tp, o);
            }
        }
    }

    fn lso(&self, tp: usize) -> u64 {
        self.parts[tp]
            .iter()
            .find(|r| matches!(r.state, State::Open(_)))
            .map_or(self.next[tp], |r| r.offset)
    }

    fn seen(r: &ModelRecord) -> Seen {
        (r.offset, Some(r.key.clone()), Some(r.value.clone()))
    }

    fn committed_view(&self) -> Vec<Vec<Seen>> {
        (0..4)
            .map(|tp| {
                let lso = self.lso(tp);
                self.parts[tp]
                    .iter()
                    .filter(|r| r.offset < lso)
                    .filter(|r| matches!(r.state, State::Plain | State::Committed))
                    .map(Model::seen)
                    .collect()
            })
            .collect()
    }

    fn uncommitted_view(&self) -> Vec<Vec<Seen>> {
        self.parts
            .iter()
            .map(|p| p.iter().map(Model::seen).collect())
            .collect()
    }
}

struct Harness {
    dir: TempDir,
    store: Option<Store>,
    producers: Vec<TransactionalProducer>,
    plain: Option<Producer>,
    idempotent: Option<Producer>,
    /// A `read_committed` consumer reading along, and what it has seen.
    follower: Option<Consumer>,
    followed: Vec<Vec<Seen>>,
    follower_positions: Vec<u64>,
    model: Model,
}

/// A closed store with the two topics and nothing else, made once per flush policy: each case
/// starts from a copy (creating topics costs a few dozen fsyncs).
fn template(flush: FlushPolicy) -> &'static std::path::Path {
    static MANUAL: std::sync::OnceLock<TempDir> = std::sync::OnceLock::new();
    static EVERY: std::sync::OnceLock<TempDir> = std::sync::OnceLock::new();
    let cell = if flush == FlushPolicy::EveryAppend {
        &EVERY
    } else {
        &MANUAL
    };
    cell.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for t in TOPICS {
            let c = TopicConfig::new(2).log(
                LogConfig::default()
                    // Small segments: rolls (producer snapshots, `.txnindex` files) happen often.
                    .segment_bytes(600)
                    .max_message_bytes(500)
                    .segment_ms(None)
                    .retention_ms(None)
                    .flush(flush),
            );
            store.create_topic(t, c).unwrap();
        }
        dir
    })
    .path()
}

fn group() -> ConsumerGroupMetadata {
    ConsumerGroupMetadata::new(GROUP)
}

impl Harness {
    fn new(flush: FlushPolicy) -> Harness {
        let dir = copy_quietly(template(flush));
        let mut h = Harness {
            dir,
            store: None,
            producers: Vec::new(),
            plain: None,
            idempotent: None,
            follower: None,
            followed: vec![Vec::new(); 4],
            follower_positions: vec![0; 4],
            model: Model::new(),
        };
        h.open();
        h
    }

    fn store(&self) -> &Store {
        self.store.as_ref().unwrap()
    }

    fn open(&mut self) {
        // The previous store was dropped: its directory is free at once (the maintenance
        // thread is joined by the drop; see
        // `a_store_with_transactions_can_be_reopened_right_after_the_drop`).
        let store = common::retry_locked(|| Store::open(self.dir.path()));
        self.producers = TXN_IDS
            .iter()
            .map(|id| store.transactional_producer(id).unwrap())
            .collect();
        self.plain = Some(store.producer());
        self.idempotent = Some(
            store
                .producer_with(ProducerConfig::default().idempotent(true))
                .unwrap(),
        );
        let mut follower = store
            .consumer(
                ConsumerConfig::default()
                    .isolation_level(IsolationLevel::ReadCommitted)
                    .max_partition_fetch_bytes(100)
                    .max_poll_records(3),
            )
            .unwrap();
        follower.assign(&tps()).unwrap();
        for (tp, pos) in tps().iter().zip(&self.follower_positions) {
            follower.seek(tp, *pos).unwrap();
        }
        self.follower = Some(follower);
        self.store = Some(store);
    }

    fn close(&mut self) {
        self.follower = None;
        self.producers.clear();
        self.plain = None;
        self.idempotent = None;
        self.store = None;
    }

    fn run(&mut self, op: &Op) {
        match *op {
            Op::Begin(p) => {
                let r = self.producers[p].begin();
                if self.model.open[p].is_some() {
                    expect_invalid_state(r, op);
                } else {
                    r.unwrap();
                    self.model.serial += 1;
                    self.model.open[p] = Some(ModelTxn {
                        serial: self.model.serial,
                        ..ModelTxn::default()
                    });
                }
            }
            Op::Send { producer, tp, key } => {
                let t = &tps()[tp];
                let value = self.model.value("txn");
                let r = self.producers[producer].send(
                    ProducerRecord::new(t.topic.clone())
                        .partition(t.partition)
                        .key(vec![b'k', key])
                        .value(value.clone()),
                );
                match &mut self.model.open[producer] {
                    None => expect_invalid_state(r, op),
                    Some(txn) => {
                        let meta = r.unwrap();
                        assert_eq!(meta.offset, self.model.next[tp], "{op:?}");
                        if !txn.touched.contains(&tp) {
                            txn.touched.push(tp);
                        }
                        let serial = txn.serial;
                        self.model.append(tp, key, value, State::Open(serial));
                    }
                }
            }
            Op::SendOffsets {
                producer,
                tp,
                offset,
            } => {
                let t = tps()[tp].clone();
                let r = self.producers[producer]
                    .send_offsets(&group(), &[(t.clone(), OffsetAndMetadata::new(offset))]);
                match &mut self.model.open[producer] {
                    None => expect_invalid_state(r, op),
                    Some(txn) => {
                        r.unwrap();
                        txn.offsets.push((t, offset));
                    }
                }
            }
            Op::Commit(p) | Op::Abort(p) => {
                let commit = matches!(op, Op::Commit(_));
                let r = if commit {
                    self.producers[p].commit()
                } else {
                    self.producers[p].abort()
                };
                if self.model.open[p].is_none() {
                    expect_invalid_state(r, op);
                } else {
                    r.unwrap();
                    self.model.end(p, commit);
                }
            }
            Op::Plain {
                tp,
                key,
                idempotent,
            } => {
                let t = &tps()[tp];
                let value = self.model.value("plain");
                let producer = if idempotent {
                    self.idempotent.as_ref()
                } else {
                    self.plain.as_ref()
                };
                let meta = producer
                    .unwrap()
                    .send(
                        ProducerRecord::new(t.topic.clone())
                            .partition(t.partition)
                            .key(vec![b'k', key])
                            .value(value.clone()),
                    )
                    .unwrap();
                assert_eq!(meta.offset, self.model.next[tp], "{op:?}");
                self.model.append(tp, key, value, State::Plain);
            }
            Op::Fence(p) => {
                let new = self.store().transactional_producer(TXN_IDS[p]).unwrap();
                let old = std::mem::replace(&mut self.producers[p], new);
                self.model.end(p, false);
                let e = old.begin().unwrap_err();
                assert!(matches!(e.kind(), ErrorKind::Fenced { .. }), "{e:?}");
            }
            Op::Reopen => {
                self.close();
                self.end_all_open();
                self.open();
            }
            Op::Crash => {
                // The files as a killed process leaves them (nothing is lost: the page cache
                // survives a process crash), opened without the clean close's snapshots.
                let copy = copy_quietly(self.dir.path());
                self.close();
                self.dir = copy;
                self.end_all_open();
                self.open();
            }
        }
    }

    /// What opening the store does to transactions without a commit decision.
    fn end_all_open(&mut self) {
        for p in 0..TXN_IDS.len() {
            self.model.end(p, false);
        }
    }

    fn check(&mut self, step: &str) {
        let store = self.store.as_ref().unwrap();
        let lsos: Vec<u64> = (0..4).map(|tp| self.model.lso(tp)).collect();
        let c = store
            .consumer(ConsumerConfig::default().isolation_level(IsolationLevel::ReadCommitted))
            .unwrap();
        let ends: Vec<u64> = c
            .end_offsets(&tps())
            .unwrap()
            .into_iter()
            .map(|e| e.1)
            .collect();
        assert_eq!(ends, lsos, "{step}: last stable offsets");
        let hws: Vec<u64> = TOPICS
            .iter()
            .flat_map(|t| store.describe_topic(t).unwrap().partitions)
            .map(|p| p.log_end_offset)
            .collect();
        assert_eq!(hws, self.model.next, "{step}: log end offsets");

        let committed = read_all_consumed(store, &tps(), IsolationLevel::ReadCommitted, 120);
        assert_views(
            &committed,
            &self.model.committed_view(),
            step,
            "read_committed",
        );
        let uncommitted =
            read_all_consumed(store, &tps(), IsolationLevel::ReadUncommitted, 1 << 20);
        assert_views(
            &uncommitted,
            &self.model.uncommitted_view(),
            step,
            "read_uncommitted",
        );

        // The follower reads what became stable since its last look.
        let follower = self.follower.as_mut().unwrap();
        for _ in 0..10_000 {
            let done = tps()
                .iter()
                .zip(&lsos)
                .all(|(tp, lso)| follower.position(tp).unwrap() >= *lso);
            if done {
                break;
            }
            let records = follower.poll(std::time::Duration::ZERO).unwrap();
            for r in records.iter() {
                let i = tps()
                    .iter()
                    .position(|tp| tp.topic == r.topic() && tp.partition == r.partition())
                    .unwrap();
                self.followed[i].push((
                    r.offset(),
                    r.key().map(<[u8]>::to_vec),
                    r.value().map(<[u8]>::to_vec),
                ));
            }
        }
        for (i, tp) in tps().iter().enumerate() {
            let pos = follower.position(tp).unwrap();
            assert_eq!(
                pos, lsos[i],
                "{step}: the follower must stop at the LSO of {tp}"
            );
            self.follower_positions[i] = pos;
        }
        assert_views(
            &self.followed,
            &self.model.committed_view(),
            step,
            "following read_committed",
        );

        let expected: Vec<(TopicPartition, OffsetAndMetadata)> = self
            .model
            .committed
            .iter()
            .map(|(tp, o)| (tp.clone(), OffsetAndMetadata::new(*o)))
            .collect();
        assert_eq!(
            store.committed_offsets(GROUP),
            expected,
            "{step}: committed offsets"
        );
    }
}

#[track_caller]
fn expect_invalid_state<T: std::fmt::Debug>(r: riverbed::Result<T>, op: &Op) {
    match r {
        Ok(v) => panic!("{op:?} without an open transaction must fail, got {v:?}"),
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::InvalidTransactionState { .. }),
            "{op:?}: {e:?}"
        ),
    }
}

#[track_caller]
fn assert_views(got: &[Vec<Seen>], expected: &[Vec<Seen>], step: &str, who: &str) {
    let show = |r: &Seen| {
        format!(
            "offset {} value {:?}",
            r.0,
            String::from_utf8_lossy(r.2.as_deref().unwrap_or_default())
        )
    };
    for (tp, (g, e)) in tps().iter().zip(got.iter().zip(expected)) {
        if let Some(i) = (0..g.len().max(e.len())).find(|&i| g.get(i) != e.get(i)) {
            panic!(
                "{step}: a {who} reader of {tp} saw {} records, the model says {}; first \
                 difference at index {i}: {} where the model has {}",
                g.len(),
                e.len(),
                g.get(i).map_or("nothing".into(), show),
                e.get(i).map_or("nothing".into(), show),
            );
        }
    }
}

fn run_case(every_append: bool, ops: &[Op]) {
    let flush = if every_append {
        FlushPolicy::EveryAppend
    } else {
        FlushPolicy::Manual
    };
    let mut h = Harness::new(flush);
    h.check("start");
    for (i, op) in ops.iter().enumerate() {
        h.run(op);
        h.check(&format!("after step {i} ({op:?})"));
    }
    // Whatever the sequence left, a final clean reopen aborts what is open and keeps the rest.
    h.run(&Op::Reopen);
    h.check("final reopen");
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Every operation, checked against the model after each.
    #[test]
    fn transactions_agree_with_model(
        every_append in prop::bool::weighted(0.3),
        ops in prop::collection::vec(op_strategy(), 1..32),
    ) {
        run_case(every_append, &ops);
    }
}

/// A long fixed history: many rolls, both producers interleaved in every partition, and a
/// crash and a reopen with transactions open, so that the `.txnindex` files and snapshots of
/// several sealed segments are used.
#[test]
fn long_interleaved_history() {
    let mut ops = Vec::new();
    for i in 0..50u64 {
        let (p, q) = ((i % 2) as usize, ((i + 1) % 2) as usize);
        ops.push(Op::Begin(p));
        ops.push(Op::Begin(q));
        for j in 0..3 {
            let tp = ((i + j) % 4) as usize;
            ops.push(Op::Send {
                producer: p,
                tp,
                key: j as u8,
            });
            ops.push(Op::Send {
                producer: q,
                tp: (tp + 1) % 4,
                key: j as u8,
            });
            ops.push(Op::Plain {
                tp,
                key: 9,
                idempotent: j == 1,
            });
        }
        ops.push(Op::SendOffsets {
            producer: p,
            tp: (i % 4) as usize,
            offset: i,
        });
        ops.push(if i % 3 == 0 {
            Op::Abort(p)
        } else {
            Op::Commit(p)
        });
        match i % 10 {
            4 => ops.push(Op::Crash),
            7 => ops.push(Op::Reopen),
            9 => ops.push(Op::Fence(q)),
            _ => ops.push(if i % 4 == 1 {
                Op::Abort(q)
            } else {
                Op::Commit(q)
            }),
        }
    }
    for every_append in [false, true] {
        let mut h = Harness::new(if every_append {
            FlushPolicy::EveryAppend
        } else {
            FlushPolicy::Manual
        });
        for (i, op) in ops.iter().enumerate() {
            h.run(op);
            // Checking after every step would be slow for this length; every tenth step and
            // around every reopen is enough.
            if i % 10 == 0 || matches!(op, Op::Crash | Op::Reopen | Op::Fence(_)) {
                h.check(&format!("after step {i} ({op:?})"));
            }
        }
        h.run(&Op::Reopen);
        h.check("final reopen");
    }
}

/// Dropping every handle of a store releases its directory at once, also when a transactional
/// producer started the store's timeout thread: a reopen right after the drop must not find the
/// directory locked. The thread wakes every 100 ms and holds the store while it looks for expired
/// transactions, waiting for each producer's lock. Here it is made to wait: `send_batch` holds
/// the producer's lock while it collects its records, and the record iterator takes 150 ms. When
/// the send returns and the user drops everything, the thread is left with the last reference,
/// and the store (and its directory lock) goes away only when that thread gets to drop it.
#[test]
fn a_store_with_transactions_can_be_reopened_right_after_the_drop() {
    // No other test of this file spawns `cp` meanwhile: a forked child would share the lock.
    let _no_forks = NO_FORKS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let config = TopicConfig::new(8)
        .segment_bytes(1 << 20)
        .max_message_bytes(1 << 16);
    store.create_topic("a", config).unwrap();
    drop(store);
    for i in 0..3 {
        let store = match Store::open(dir.path()) {
            Ok(s) => s,
            Err(e) => panic!("reopen {i} right after the drop: {e:?}"),
        };
        let p = store.transactional_producer("t").unwrap();
        p.begin().unwrap();
        let slow = (0..8u32).map(|part| {
            if part == 0 {
                std::thread::sleep(std::time::Duration::from_millis(150));
            }
            ProducerRecord::new("a").partition(part).value("v")
        });
        p.send_batch(slow).unwrap();
        drop(p);
        drop(store);
    }
    let reopened = Store::open(dir.path());
    assert!(
        reopened.is_ok(),
        "reopen right after the last drop: {:?}",
        reopened.err()
    );
}
