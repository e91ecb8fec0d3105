//! A member that stops polling for longer than `max_poll_interval` is removed from its group,
//! its partitions go to the others, and its commits are refused with `CommitFailed` (they would
//! overwrite the new owner's progress). Polling again rejoins it. Commits of the current
//! generation, including those during a rebalance before the member has given up its
//! partitions, succeed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use riverbed::{
    Consumer, ConsumerConfig, ErrorKind, OffsetAndMetadata, OffsetReset, ProducerRecord,
    RebalanceListener, Store, TopicConfig, TopicPartition,
};

fn tp(p: u32) -> TopicPartition {
    TopicPartition::new("t", p)
}

fn setup() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(2)).unwrap();
    let p = store.producer();
    for i in 0..20u32 {
        p.send(
            ProducerRecord::new("t")
                .partition(i % 2)
                .value(format!("v{i}")),
        )
        .unwrap();
    }
    (dir, store)
}

fn config(max_poll_interval: Duration) -> ConsumerConfig {
    ConsumerConfig::new("g")
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false)
        .max_poll_records(4)
        .max_poll_interval(max_poll_interval)
}

/// Polls `c` (short timeouts) until `cond` holds or 3 s pass; returns the offsets read per
/// partition.
fn poll_until(c: &mut Consumer, cond: impl Fn(&Consumer) -> bool) -> Vec<(u32, u64)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while !cond(c) {
        assert!(
            Instant::now() < deadline,
            "condition not reached; assignment {:?}",
            c.assignment()
        );
        got.extend(
            c.poll(Duration::from_millis(20))
                .unwrap()
                .iter()
                .map(|r| (r.partition(), r.offset())),
        );
    }
    got
}

fn is_commit_failed(e: &riverbed::Error) -> bool {
    matches!(e.kind(), ErrorKind::CommitFailed { reason } if !reason.is_empty())
}

/// A listener callback seen: "assigned" or "revoked", with the partition numbers.
type Event = (&'static str, Vec<u32>);

/// Records every listener callback.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<Event>>>);

impl RebalanceListener for Events {
    fn on_revoked(&mut self, _: &mut Consumer, partitions: &[TopicPartition]) {
        if !partitions.is_empty() {
            let ps = partitions.iter().map(|tp| tp.partition).collect();
            self.0.lock().unwrap().push(("revoked", ps));
        }
    }
    fn on_assigned(&mut self, _: &mut Consumer, partitions: &[TopicPartition]) {
        let ps = partitions.iter().map(|tp| tp.partition).collect();
        self.0.lock().unwrap().push(("assigned", ps));
    }
}

#[test]
fn member_that_stopped_polling_cannot_commit() {
    let (_dir, store) = setup();
    let mut a = store.consumer(config(Duration::from_millis(200))).unwrap();
    a.subscribe(&["t"]).unwrap();
    poll_until(&mut a, |c| c.assignment().len() == 2);
    let gen_a = a.generation();
    // A reads a little and commits it.
    a.seek_to_beginning(&[tp(0), tp(1)]).unwrap();
    a.poll(Duration::from_millis(50)).unwrap();
    a.commit().unwrap();
    let committed_by_a = store.committed_offsets("g");
    assert!(!committed_by_a.is_empty());
    // A reads more, but then stalls before committing it.
    a.poll(Duration::from_millis(50)).unwrap();

    // B joins; A does not poll; after A's max_poll_interval B gets everything.
    let mut b = store.consumer(config(Duration::from_secs(30))).unwrap();
    b.subscribe(&["t"]).unwrap();
    let t = Instant::now();
    let b_read = poll_until(&mut b, |c| c.assignment().len() == 2);
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "A was removed after {:?}, before its max_poll_interval",
        t.elapsed()
    );
    let d = store.describe_group("g");
    assert_eq!(d.members.len(), 1, "{d:?}");
    assert!(d.generation > gen_a);
    assert_eq!(a.generation(), gen_a, "A has not noticed yet");

    // A still believes it owns both partitions, but its commits are refused.
    assert_eq!(a.assignment(), [tp(0), tp(1)]);
    let e = a.commit().unwrap_err();
    assert!(is_commit_failed(&e), "{e:?}");
    let e = a
        .commit_offsets(&[(
            tp(0),
            OffsetAndMetadata {
                offset: 9,
                metadata: "stale".into(),
            },
        )])
        .unwrap_err();
    assert!(is_commit_failed(&e), "{e:?}");
    assert_eq!(
        store.committed_offsets("g"),
        committed_by_a,
        "a refused commit changed the committed offsets"
    );

    // B started from A's last successful commit, not from where A had read to.
    let mut b_read = b_read;
    let deadline = Instant::now() + Duration::from_secs(3);
    while !(0..2).all(|p| b_read.iter().any(|r| r.0 == p)) {
        assert!(Instant::now() < deadline, "B read only {b_read:?}");
        b_read.extend(
            b.poll(Duration::from_millis(20))
                .unwrap()
                .iter()
                .map(|r| (r.partition(), r.offset())),
        );
    }
    for (tp, o) in &committed_by_a {
        let first = b_read.iter().find(|r| r.0 == tp.partition).unwrap().1;
        assert_eq!(
            first, o.offset,
            "B did not resume {tp} at the committed offset"
        );
    }

    // Polling again makes A a member again; once B has let go, A gets a share and may commit.
    let deadline = Instant::now() + Duration::from_secs(3);
    while a.assignment().len() != 1 || b.assignment().len() != 1 {
        assert!(Instant::now() < deadline, "{:?}", store.describe_group("g"));
        a.poll(Duration::from_millis(10)).unwrap();
        b.poll(Duration::from_millis(10)).unwrap();
    }
    assert!(a.generation() > gen_a);
    a.commit().unwrap();
    b.commit().unwrap();
}

/// Polls `cs` in turn until the group is stable with every consumer at its generation.
fn settle(store: &Store, cs: &mut [&mut Consumer]) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        for c in cs.iter_mut() {
            c.poll(Duration::from_millis(10)).unwrap();
        }
        let d = store.describe_group("g");
        if !d.rebalancing && cs.iter().all(|c| c.generation() == d.generation) {
            return;
        }
        assert!(Instant::now() < deadline, "{d:?}");
    }
}

#[test]
fn commits_during_a_rebalance() {
    let (_dir, store) = setup();
    let mut a = store.consumer(config(Duration::from_secs(30))).unwrap();
    a.subscribe(&["t"]).unwrap();
    let mut c = store.consumer(config(Duration::from_secs(30))).unwrap();
    c.subscribe(&["t"]).unwrap();
    settle(&store, &mut [&mut a, &mut c]);
    let gen = a.generation();
    assert_eq!(a.assignment().len(), 1);
    let mine = a.assignment()[0].clone();

    // A rebalance starts; until A polls, A still owns its partition and may commit it (as it
    // would from on_revoked).
    let mut b = store.consumer(config(Duration::from_secs(30))).unwrap();
    b.subscribe(&["t"]).unwrap();
    b.poll(Duration::from_millis(10)).unwrap();
    assert!(store.describe_group("g").rebalancing);
    a.commit_offsets(&[(mine.clone(), OffsetAndMetadata::new(3))])
        .unwrap();
    assert_eq!(a.committed(&mine).unwrap().unwrap().offset, 3);

    // A's poll gives up the partition; C has not polled, so the rebalance is still waiting.
    assert!(a.poll(Duration::from_millis(10)).unwrap().is_empty());
    assert!(a.assignment().is_empty());
    assert!(store.describe_group("g").rebalancing);
    // Committing the partition given up is refused, and changes nothing.
    let e = a
        .commit_offsets(&[(mine.clone(), OffsetAndMetadata::new(4))])
        .unwrap_err();
    assert!(
        matches!(
            e.kind(),
            ErrorKind::NotAssigned { .. } | ErrorKind::CommitFailed { .. }
        ),
        "{e:?}"
    );
    assert_eq!(a.committed(&mine).unwrap().unwrap().offset, 3);

    // Once all have their new partitions, each commits its own, and not another's.
    settle(&store, &mut [&mut a, &mut b, &mut c]);
    assert!(a.generation() > gen);
    let d = store.describe_group("g");
    assert_eq!(d.members.len(), 3);
    let theirs = b
        .assignment()
        .iter()
        .chain(c.assignment())
        .next()
        .unwrap()
        .clone();
    for x in [&mut a, &mut b, &mut c] {
        x.commit().unwrap();
    }
    if let Some(mine) = a.assignment().first().cloned() {
        a.commit_offsets(&[(mine, OffsetAndMetadata::new(1))])
            .unwrap();
    }
    let e = a
        .commit_offsets(&[(theirs, OffsetAndMetadata::new(1))])
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::NotAssigned { .. }), "{e:?}");
}

/// Committing the positions of no partitions at all is nothing to refuse: the usual
/// `loop { poll; process; commit()? }` must not fail just because a poll returned while the
/// group was waiting for others to rebalance (Kafka's commitSync returns at once when there is
/// nothing to commit).
#[test]
fn commit_of_nothing_during_a_rebalance_is_a_no_op() {
    let (_dir, store) = setup();
    let mut a = store.consumer(config(Duration::from_secs(30))).unwrap();
    a.subscribe(&["t"]).unwrap();
    let mut c = store.consumer(config(Duration::from_secs(30))).unwrap();
    c.subscribe(&["t"]).unwrap();
    settle(&store, &mut [&mut a, &mut c]);
    let mut b = store.consumer(config(Duration::from_secs(30))).unwrap();
    b.subscribe(&["t"]).unwrap();
    // A gives up its partition; C has not polled, so the rebalance waits.
    a.poll(Duration::from_millis(10)).unwrap();
    assert!(a.assignment().is_empty());
    assert!(store.describe_group("g").rebalancing);
    let before = store.committed_offsets("g");
    a.commit()
        .expect("commit() with nothing assigned, during a rebalance");
    assert_eq!(store.committed_offsets("g"), before);
}

/// Kafka tells the listener of a member that was removed for not polling that its partitions
/// are gone (`onPartitionsLost`, which by default is `onPartitionsRevoked`) before it gets new
/// ones; a listener that tracks ownership must not be left believing it still owns them.
#[test]
fn removed_member_listener_learns_its_partitions_are_gone() {
    let (_dir, store) = setup();
    let events = Events::default();
    let mut a = store.consumer(config(Duration::from_millis(150))).unwrap();
    a.subscribe_with_listener(&["t"], events.clone()).unwrap();
    poll_until(&mut a, |c| c.assignment().len() == 2);

    let mut b = store.consumer(config(Duration::from_secs(30))).unwrap();
    b.subscribe(&["t"]).unwrap();
    poll_until(&mut b, |c| c.assignment().len() == 2);

    let deadline = Instant::now() + Duration::from_secs(3);
    while a.assignment().len() != 1 || b.assignment().len() != 1 {
        assert!(Instant::now() < deadline);
        a.poll(Duration::from_millis(10)).unwrap();
        b.poll(Duration::from_millis(10)).unwrap();
    }
    let events = events.0.lock().unwrap().clone();
    let assigned: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.0 == "assigned" && !e.1.is_empty())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(assigned.len(), 2, "{events:?}");
    assert!(
        events[assigned[0]..assigned[1]]
            .iter()
            .any(|e| e.0 == "revoked" && e.1 == [0, 1]),
        "A's listener was never told it lost partitions 0 and 1 before getting new ones: \
         {events:?}"
    );
}

/// `max_poll_interval` bounds the time between calls to `poll`; a consumer waiting inside a
/// long `poll` (no records arriving) is polling, and must not be removed from its group.
#[test]
fn member_waiting_inside_poll_is_not_removed() {
    let (_dir, store) = setup();
    let mut a = store.consumer(config(Duration::from_millis(300))).unwrap();
    a.subscribe(&["t"]).unwrap();
    let mut b = store.consumer(config(Duration::from_secs(30))).unwrap();
    b.subscribe(&["t"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while a.assignment().len() != 1 || b.assignment().len() != 1 {
        assert!(Instant::now() < deadline);
        a.poll(Duration::from_millis(10)).unwrap();
        b.poll(Duration::from_millis(10)).unwrap();
    }
    // Both read everything they have, so that polls now wait.
    for c in [&mut a, &mut b] {
        let tp = c.assignment()[0].clone();
        c.seek_to_end(&[tp]).unwrap();
    }
    let generation = a.generation();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let ha = std::thread::spawn(move || {
        let mut changes = Vec::new();
        while !stop2.load(Ordering::SeqCst) {
            a.poll(Duration::from_millis(1000)).unwrap();
            if a.generation() != generation || a.assignment().len() != 1 {
                changes.push((a.generation(), a.assignment().to_vec()));
            }
        }
        changes
    });
    // B keeps polling briskly for well over A's max_poll_interval.
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(1200) {
        b.poll(Duration::from_millis(20)).unwrap();
    }
    let d = store.describe_group("g");
    stop.store(true, Ordering::SeqCst);
    let changes = ha.join().unwrap();
    assert_eq!(
        d.members.len(),
        2,
        "the member waiting in poll was removed: {d:?}"
    );
    assert_eq!(d.generation, generation, "{d:?}");
    assert!(changes.is_empty(), "A's assignment changed: {changes:?}");
    assert_eq!(b.generation(), generation);
}
