//! The central guarantee of consumer groups: each partition is owned by at most one member at a
//! time, and nothing is lost across rebalances.
//!
//! Three consumer "slots" of one group, each on its own thread, consume a 6-partition topic
//! while two producer threads write to it. Each slot keeps replacing its consumer: a consumer
//! lives a few hundred milliseconds, then leaves by `close` (committing in `on_revoked`) or by
//! being dropped (a crash: nothing committed), and a new one joins. Every consumer records from
//! its `RebalanceListener` when it owns which partition, in one map shared by all:
//! `on_assigned` asserts that no one else owns the partition, `on_revoked` that it owned it.
//! Every polled record must come from a partition its consumer owns in that map, at exactly the
//! next offset (starting from the committed one). A watcher checks that committed offsets never
//! go backwards. At the end every produced record was consumed, and the committed offsets equal
//! the end offsets.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use riverbed::{
    Consumer, ConsumerConfig, OffsetReset, ProducerRecord, RebalanceListener, Store, TopicConfig,
    TopicPartition,
};

const TOPIC: &str = "events";
const GROUP: &str = "g";
const PARTITIONS: u32 = 6;
const PRODUCERS: usize = 2;
const PER_PRODUCER: usize = 900;
const SLOTS: usize = 3;
/// Hard limit for the whole scenario; the test normally needs about 2 s.
const DEADLINE: Duration = Duration::from_secs(8);

#[derive(Default)]
struct Shared {
    /// partition -> the consumer incarnation that owns it.
    owners: Mutex<HashMap<u32, u64>>,
    /// Per partition, every offset consumed by anyone.
    consumed: Mutex<Vec<BTreeSet<u64>>>,
    /// Records consumed more than once (allowed only after a dropped consumer).
    duplicates: AtomicUsize,
    violations: Mutex<Vec<String>>,
    producers_done: AtomicBool,
    stop: AtomicBool,
    joins: AtomicUsize,
    drops: AtomicUsize,
    closes: AtomicUsize,
    assigned_events: AtomicUsize,
}

impl Shared {
    fn violation(&self, msg: String) {
        eprintln!("VIOLATION: {msg}");
        self.violations.lock().unwrap().push(msg);
        self.stop.store(true, Ordering::SeqCst);
    }

    fn all_committed(&self, store: &Store) -> bool {
        let ends: Vec<u64> = store
            .describe_topic(TOPIC)
            .unwrap()
            .partitions
            .iter()
            .map(|p| p.log_end_offset)
            .collect();
        let committed: HashMap<u32, u64> = store
            .committed_offsets(GROUP)
            .into_iter()
            .map(|(tp, o)| (tp.partition, o.offset))
            .collect();
        ends.iter()
            .enumerate()
            .all(|(p, &end)| committed.get(&(p as u32)).copied().unwrap_or(0) == end)
    }
}

/// Per consumer incarnation: the next offset it must see from each partition it owns.
type Expected = Arc<Mutex<HashMap<u32, u64>>>;

struct Listener {
    me: u64,
    shared: Arc<Shared>,
    expected: Expected,
}

impl RebalanceListener for Listener {
    fn on_assigned(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        {
            let mut owners = self.shared.owners.lock().unwrap();
            for tp in partitions {
                if let Some(other) = owners.insert(tp.partition, self.me) {
                    self.shared.violation(format!(
                        "{tp} assigned to consumer {} while consumer {other} still owns it",
                        self.me
                    ));
                }
            }
        }
        if !partitions.is_empty() {
            self.shared.assigned_events.fetch_add(1, Ordering::SeqCst);
        }
        let mut expected = self.expected.lock().unwrap();
        expected.clear();
        for tp in partitions {
            let committed = consumer.committed(tp).unwrap().map_or(0, |o| o.offset);
            match consumer.position(tp) {
                Ok(pos) if pos == committed => {}
                other => self.shared.violation(format!(
                    "consumer {}: position of newly assigned {tp} is {other:?}, committed is {committed}",
                    self.me
                )),
            }
            expected.insert(tp.partition, committed);
        }
    }

    fn on_revoked(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        if !partitions.is_empty() {
            if let Err(e) = consumer.commit() {
                self.shared.violation(format!(
                    "consumer {}: commit in on_revoked({partitions:?}) failed: {e}",
                    self.me
                ));
            }
            let expected = self.expected.lock().unwrap();
            for tp in partitions {
                let committed = consumer.committed(tp).unwrap().map(|o| o.offset);
                if committed != expected.get(&tp.partition).copied() {
                    self.shared.violation(format!(
                        "consumer {}: after committing in on_revoked, {tp} is at {committed:?}, \
                         but the consumer had read up to {:?}",
                        self.me,
                        expected.get(&tp.partition)
                    ));
                }
            }
        }
        let mut owners = self.shared.owners.lock().unwrap();
        for tp in partitions {
            match owners.remove(&tp.partition) {
                Some(o) if o == self.me => {}
                other => self.shared.violation(format!(
                    "{tp} revoked from consumer {} but the owner was {other:?}",
                    self.me
                )),
            }
        }
        self.expected.lock().unwrap().clear();
    }
}

/// A small deterministic pseudo-random sequence per slot.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

fn slot(store: Store, shared: Arc<Shared>, slot: usize) {
    let mut rng = Lcg(slot as u64 * 7919 + 1);
    let mut incarnation = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        incarnation += 1;
        let me = slot as u64 * 1000 + incarnation;
        let last = shared.producers_done.load(Ordering::SeqCst);
        let lifetime = Duration::from_millis(80 + rng.next(250));
        let expected: Expected = Arc::default();
        let mut c = store
            .consumer(
                ConsumerConfig::new(GROUP)
                    .auto_offset_reset(OffsetReset::Earliest)
                    .enable_auto_commit(false)
                    .max_poll_records(40),
            )
            .unwrap();
        c.subscribe_with_listener(
            &[TOPIC],
            Listener {
                me,
                shared: Arc::clone(&shared),
                expected: Arc::clone(&expected),
            },
        )
        .unwrap();
        shared.joins.fetch_add(1, Ordering::SeqCst);
        let born = Instant::now();
        loop {
            if shared.stop.load(Ordering::SeqCst) {
                break;
            }
            let records = match c.poll(Duration::from_millis(30)) {
                Ok(r) => r,
                Err(e) => {
                    shared.violation(format!("consumer {me}: poll failed: {e}"));
                    break;
                }
            };
            if !records.is_empty() {
                let owners = shared.owners.lock().unwrap();
                let mut expected = expected.lock().unwrap();
                let mut consumed = shared.consumed.lock().unwrap();
                for r in records.iter() {
                    let p = r.partition();
                    if owners.get(&p) != Some(&me) {
                        shared.violation(format!(
                            "consumer {me} got a record of partition {p} owned by {:?}",
                            owners.get(&p)
                        ));
                    }
                    match expected.get_mut(&p) {
                        Some(next) if *next == r.offset() => *next += 1,
                        other => shared.violation(format!(
                            "consumer {me}: partition {p} offset {} but expected {other:?}",
                            r.offset()
                        )),
                    }
                    if !consumed[p as usize].insert(r.offset()) {
                        shared.duplicates.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            // Commit now and then (always in the final phase), so that a dropped consumer
            // leaves records behind for its successor to read again.
            if !c.assignment().is_empty() && (last || rng.next(3) == 0) {
                if let Err(e) = c.commit() {
                    shared.violation(format!(
                        "consumer {me}: commit of owned partitions {:?} failed: {e}",
                        c.assignment()
                    ));
                }
            }
            // Simulated processing time.
            if rng.next(4) == 0 {
                std::thread::sleep(Duration::from_millis(rng.next(25)));
            }
            let done = if last {
                shared.all_committed(&store)
            } else {
                born.elapsed() >= lifetime
            };
            if done {
                break;
            }
        }
        if last || incarnation % 2 == (slot % 2) as u64 {
            shared.closes.fetch_add(1, Ordering::SeqCst);
            if let Err(e) = c.close() {
                shared.violation(format!("consumer {me}: close failed: {e}"));
            }
        } else {
            // A crash: the partitions are given up without on_revoked and without a commit.
            // Clear them from the ownership map first; the group hands them out only after
            // the drop below removes the member.
            {
                let mut owners = shared.owners.lock().unwrap();
                for tp in c.assignment() {
                    if owners.remove(&tp.partition) != Some(me) {
                        shared.violation(format!("dropped consumer {me} did not own {tp}"));
                    }
                }
            }
            shared.drops.fetch_add(1, Ordering::SeqCst);
            drop(c);
        }
        if last {
            break;
        }
        std::thread::sleep(Duration::from_millis(rng.next(40)));
    }
}

#[test]
fn a_partition_never_has_two_owners_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic(TOPIC, TopicConfig::new(PARTITIONS))
        .unwrap();
    let shared = Arc::new(Shared {
        consumed: Mutex::new(vec![BTreeSet::new(); PARTITIONS as usize]),
        ..Shared::default()
    });
    let start = Instant::now();

    let slots: Vec<_> = (0..SLOTS)
        .map(|i| {
            let (store, shared) = (store.clone(), Arc::clone(&shared));
            std::thread::spawn(move || slot(store, shared, i))
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|t| {
            let p = store.producer();
            std::thread::spawn(move || {
                for i in 0..PER_PRODUCER {
                    p.send(
                        ProducerRecord::new(TOPIC)
                            .key(format!("p{t}-k{}", i % 97))
                            .value(format!("{t}:{i}")),
                    )
                    .unwrap();
                    if i % 4 == 0 {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            })
        })
        .collect();

    // Watch the committed offsets: they must never go backwards.
    let mut last_seen: HashMap<u32, u64> = HashMap::new();
    let mut producers = Some(producers);
    loop {
        for (tp, o) in store.committed_offsets(GROUP) {
            let prev = last_seen.insert(tp.partition, o.offset).unwrap_or(0);
            if o.offset < prev {
                shared.violation(format!(
                    "committed offset of {tp} went back from {prev} to {}",
                    o.offset
                ));
            }
        }
        if producers
            .as_ref()
            .is_some_and(|ps| ps.iter().all(|h| h.is_finished()))
        {
            for h in producers.take().unwrap() {
                h.join().unwrap();
            }
            shared.producers_done.store(true, Ordering::SeqCst);
        }
        if slots.iter().all(|h| h.is_finished()) {
            break;
        }
        if start.elapsed() > DEADLINE {
            shared.violation(format!(
                "scenario did not finish within {DEADLINE:?}: group {:?}, committed {:?}, ends {:?}",
                store.describe_group(GROUP),
                store.committed_offsets(GROUP),
                store.describe_topic(TOPIC).unwrap().partitions
            ));
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    shared.stop.store(true, Ordering::SeqCst);
    for h in slots {
        h.join().expect("a consumer thread panicked");
    }
    if let Some(ps) = producers {
        for h in ps {
            h.join().unwrap();
        }
    }

    let violations = shared.violations.lock().unwrap().clone();
    assert!(violations.is_empty(), "{violations:#?}");

    let ends: Vec<u64> = store
        .describe_topic(TOPIC)
        .unwrap()
        .partitions
        .iter()
        .map(|p| p.log_end_offset)
        .collect();
    assert_eq!(ends.iter().sum::<u64>(), (PRODUCERS * PER_PRODUCER) as u64);
    let consumed = shared.consumed.lock().unwrap();
    for (p, &end) in ends.iter().enumerate() {
        let missing: Vec<u64> = (0..end).filter(|o| !consumed[p].contains(o)).collect();
        assert!(
            missing.is_empty(),
            "partition {p}: {} records never consumed, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        assert_eq!(consumed[p].len() as u64, end);
    }
    let committed = store.committed_offsets(GROUP);
    assert_eq!(committed.len(), PARTITIONS as usize);
    for (tp, o) in &committed {
        assert_eq!(
            o.offset, ends[tp.partition as usize],
            "committed offset of {tp}"
        );
    }
    // Everyone left at the end, and the owner map agrees.
    assert!(store.describe_group(GROUP).members.is_empty());
    assert!(shared.owners.lock().unwrap().is_empty());

    // The scenario really exercised rebalances.
    let joins = shared.joins.load(Ordering::SeqCst);
    let drops = shared.drops.load(Ordering::SeqCst);
    let closes = shared.closes.load(Ordering::SeqCst);
    let generation = store.describe_group(GROUP).generation;
    eprintln!(
        "joins {joins}, closes {closes}, drops {drops}, generation {generation}, \
         assignments {}, duplicates {}, took {:?}",
        shared.assigned_events.load(Ordering::SeqCst),
        shared.duplicates.load(Ordering::SeqCst),
        start.elapsed()
    );
    assert!(joins >= 9, "only {joins} joins");
    assert!(drops >= 2 && closes >= 2, "drops {drops}, closes {closes}");
    assert!(generation >= 10, "only {generation} generations");
    if drops == 0 {
        assert_eq!(shared.duplicates.load(Ordering::SeqCst), 0);
    }
    assert!(
        shared.duplicates.load(Ordering::SeqCst) < PRODUCERS * PER_PRODUCER,
        "consumers re-read more than everything"
    );
}
