//! `poll` waits for new data without spinning and returns as soon as a producer appends, long
//! before its timeout: for manually assigned and for subscribed consumers, for `send` and
//! `send_batch`. With nothing to read it waits out its timeout.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use riverbed::{
    Consumer, ConsumerConfig, OffsetReset, ProducerRecord, Store, TopicConfig, TopicPartition,
};

const LONG: Duration = Duration::from_secs(10);

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(2)).unwrap();
    (dir, store)
}

/// CPU time (user + system) of the calling thread, if the platform tells.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux configuration in practice.
    Some(Duration::from_millis(ticks * 10))
}

/// What a blocked poll saw: how long it took, the (partition, offset)s it got, the CPU it used.
type PollOutcome = (Duration, Vec<(u32, u64)>, Option<Duration>);

/// Runs `c.poll(LONG)` on a thread.
fn blocked_poll(mut c: Consumer, ready: mpsc::Sender<()>) -> std::thread::JoinHandle<PollOutcome> {
    std::thread::spawn(move || {
        ready.send(()).unwrap();
        let cpu0 = thread_cpu();
        let t = Instant::now();
        let recs = c.poll(LONG).unwrap();
        let took = t.elapsed();
        let cpu = match (cpu0, thread_cpu()) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        let got = recs.iter().map(|r| (r.partition(), r.offset())).collect();
        (took, got, cpu)
    })
}

fn check(took: Duration, slept: Duration, cpu: Option<Duration>) {
    assert!(
        took < Duration::from_secs(2),
        "poll returned after {took:?}, not soon after the append (timeout {LONG:?})"
    );
    assert!(
        took + Duration::from_millis(20) >= slept,
        "poll returned after {took:?}, before anything was appended ({slept:?})"
    );
    if let Some(cpu) = cpu {
        assert!(
            cpu < Duration::from_millis(150),
            "poll used {cpu:?} of CPU while waiting {took:?}: spinning?"
        );
    }
}

#[test]
fn assigned_consumer_wakes_on_send() {
    let (_dir, store) = store();
    let mut c = store
        .consumer(
            ConsumerConfig::default()
                .group_id(None)
                .auto_offset_reset(OffsetReset::Latest),
        )
        .unwrap();
    c.assign(&[TopicPartition::new("t", 0), TopicPartition::new("t", 1)])
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let h = blocked_poll(c, tx);
    rx.recv().unwrap();
    let pause = Duration::from_millis(300);
    std::thread::sleep(pause);
    store
        .producer()
        .send(ProducerRecord::new("t").partition(1).value("wake up"))
        .unwrap();
    let (took, got, cpu) = h.join().unwrap();
    assert_eq!(got, [(1, 0)]);
    check(took, pause, cpu);
}

#[test]
fn subscribed_consumer_wakes_on_send_batch() {
    let (_dir, store) = store();
    let mut c = store
        .consumer(ConsumerConfig::new("g").auto_offset_reset(OffsetReset::Latest))
        .unwrap();
    c.subscribe(&["t"]).unwrap();
    // Settle the group and the positions first.
    assert!(c.poll(Duration::from_millis(50)).unwrap().is_empty());
    assert_eq!(c.assignment().len(), 2);
    c.position(&TopicPartition::new("t", 0)).unwrap();
    c.position(&TopicPartition::new("t", 1)).unwrap();
    let (tx, rx) = mpsc::channel();
    let h = blocked_poll(c, tx);
    rx.recv().unwrap();
    let pause = Duration::from_millis(300);
    std::thread::sleep(pause);
    store
        .producer()
        .send_batch([
            ProducerRecord::new("t").partition(0).value("a"),
            ProducerRecord::new("t").partition(0).value("b"),
        ])
        .unwrap();
    let (took, got, cpu) = h.join().unwrap();
    assert_eq!(got, [(0, 0), (0, 1)]);
    check(took, pause, cpu);
}

#[test]
fn a_later_append_wakes_a_later_poll() {
    // Repeated wake-ups: the consumer must not miss an append that lands between two polls.
    let (_dir, store) = store();
    let mut c = store
        .consumer(
            ConsumerConfig::default()
                .group_id(None)
                .auto_offset_reset(OffsetReset::Earliest),
        )
        .unwrap();
    c.assign(&[TopicPartition::new("t", 0)]).unwrap();
    let producer = store.producer();
    let h = std::thread::spawn(move || {
        for i in 0..20 {
            std::thread::sleep(Duration::from_millis(10));
            producer
                .send(ProducerRecord::new("t").partition(0).value(format!("{i}")))
                .unwrap();
        }
    });
    let t = Instant::now();
    let mut got = Vec::new();
    while got.len() < 20 {
        assert!(t.elapsed() < Duration::from_secs(5), "got only {got:?}");
        got.extend(c.poll(LONG).unwrap().iter().map(|r| r.offset()));
    }
    h.join().unwrap();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[test]
fn idle_poll_waits_out_its_timeout() {
    let (_dir, store) = store();
    let mut c = store
        .consumer(ConsumerConfig::new("g").auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    c.subscribe(&["t"]).unwrap();
    c.poll(Duration::from_millis(10)).unwrap();
    let cpu0 = thread_cpu();
    let t = Instant::now();
    assert!(c.poll(Duration::from_millis(400)).unwrap().is_empty());
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(390) && took < Duration::from_secs(2),
        "{took:?}"
    );
    if let (Some(a), Some(b)) = (cpu0, thread_cpu()) {
        assert!(
            b - a < Duration::from_millis(150),
            "idle poll used {:?} CPU",
            b - a
        );
    }
    // A zero timeout returns at once.
    let t = Instant::now();
    assert!(c.poll(Duration::ZERO).unwrap().is_empty());
    assert!(t.elapsed() < Duration::from_millis(200));
}

/// A consumer that polls in a loop with a short timeout sees each record one producer sends,
/// one at a time, each sent only after the previous one was seen (the shape of
/// `benches/produce_consume.rs`'s latency group, which once waited forever for a record).
#[test]
fn a_polling_loop_sees_every_record_sent_one_at_a_time() {
    let (_dir, store) = store();
    let tp = TopicPartition::new("t", 0);
    let (tx, rx) = mpsc::channel();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (store, tp, stop) = (store.clone(), tp.clone(), std::sync::Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut c = store
                .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Latest))
                .unwrap();
            c.assign(std::slice::from_ref(&tp)).unwrap();
            c.position(&tp).unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for r in c.poll(Duration::from_millis(100)).unwrap().iter() {
                    tx.send(r.offset()).unwrap();
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    let producer = store.producer();
    for i in 0..200u64 {
        producer
            .send(
                ProducerRecord::new("t")
                    .partition(0)
                    .value(i.to_le_bytes().to_vec()),
            )
            .unwrap();
        let got = rx.recv_timeout(LONG);
        assert_eq!(got, Ok(i), "record {i} was not seen");
        if i % 20 == 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    poller.join().unwrap();
}
