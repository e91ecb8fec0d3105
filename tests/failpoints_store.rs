//! Fault injection through the store (feature `failpoints`): the same contract as
//! `failpoints_model.rs`, with the store's own write paths in the workload — sends across segment
//! rolls, committed offsets, transactions (data, offsets, decision, markers) and topic creation.
//!
//! For every site and a few hit counts, one hit fails with `ENOSPC`; then: every error was
//! `NoSpace` (or, at a sync or data-write site, poisoned a log), everything acknowledged is
//! readable at its offset, committed offsets are the last ones acknowledged, and — unless a log
//! was poisoned — the store goes on working without a reopen; a reopen finds the same.
#![cfg(feature = "failpoints")]

mod common;

use std::path::Path;
use std::time::Duration;

use riverbed::failpoint::{self, sites};
use riverbed::{
    ConsumerConfig, ErrorKind, FlushPolicy, IsolationLevel, OffsetAndMetadata, ProducerRecord,
    Store, TopicConfig, TopicPartition,
};

fn unclean(site: &str) -> bool {
    [
        sites::SEGMENT_FSYNC,
        sites::SEGMENT_WRITE,
        sites::FILE_FSYNC,
    ]
    .contains(&site)
}

/// Values read by a read-committed consumer from offset 0 of `t-0`, with their offsets.
fn read_all(store: &Store) -> Vec<(u64, Vec<u8>)> {
    let mut c = store
        .consumer(ConsumerConfig::new("reader").isolation_level(IsolationLevel::ReadCommitted))
        .unwrap();
    let tp = TopicPartition::new("t", 0);
    c.assign(std::slice::from_ref(&tp)).unwrap();
    c.seek(&tp, 0).unwrap();
    let mut out = Vec::new();
    loop {
        let recs = c.poll(Duration::from_millis(20)).unwrap();
        if recs.is_empty() {
            return out;
        }
        for r in recs.iter() {
            out.push((r.offset(), r.value().unwrap_or_default().to_vec()));
        }
    }
}

struct Model {
    /// Acknowledged (offset, value) of `t-0`, committed transactions included.
    acked: Vec<(u64, Vec<u8>)>,
    committed: Option<u64>,
    poisoned: bool,
}

fn allowed(site: &str, e: &riverbed::Error, what: &str, m: &mut Model) {
    match e.kind() {
        ErrorKind::NoSpace { .. } => {}
        ErrorKind::Io { .. } | ErrorKind::Poisoned { .. } if unclean(site) => m.poisoned = true,
        ErrorKind::InvalidTransactionState { .. } => {}
        _ => panic!("{what}: {e}"),
    }
}

fn check(store: &Store, m: &Model, what: &str) {
    let got = read_all(store);
    for (offset, v) in &m.acked {
        assert!(
            got.iter().any(|(o, g)| o == offset && g == v),
            "{what}: acknowledged offset {offset} lost (read {} records)",
            got.len()
        );
    }
    let tp = TopicPartition::new("t", 0);
    let committed = store
        .committed_offsets("g")
        .into_iter()
        .find(|(p, _)| *p == tp)
        .map(|(_, o)| o.offset);
    if let Some(c) = m.committed {
        assert!(
            committed >= Some(c),
            "{what}: committed {committed:?} < {c}"
        );
    }
}

/// Returns whether the armed hit was reached.
fn run(root: &Path, site: &'static str, nth: u64) -> bool {
    let dir = root.join(format!("{}-{nth}", site.replace('.', "_")));
    let what = format!("{site} hit {nth}");
    let store = Store::open(&dir).unwrap();
    store
        .create_topic(
            "t",
            TopicConfig::new(1)
                .flush(FlushPolicy::EveryAppend)
                .segment_bytes(16 << 10)
                .max_message_bytes(8 << 10),
        )
        .unwrap();
    let producer = store.producer();
    let txn = store.transactional_producer("tx").unwrap();
    let mut consumer = store.consumer(ConsumerConfig::new("g")).unwrap();
    let tp = TopicPartition::new("t", 0);
    consumer.assign(std::slice::from_ref(&tp)).unwrap();
    let mut m = Model {
        acked: Vec::new(),
        committed: None,
        poisoned: false,
    };
    failpoint::arm(site, &dir, nth, failpoint::ENOSPC);
    for step in 0..30u64 {
        let value = vec![(step % 251) as u8; 1500];
        match step % 10 {
            4 => {
                let at = m.acked.last().map_or(0, |(o, _)| o + 1);
                match consumer.commit_offsets(&[(tp.clone(), OffsetAndMetadata::new(at))]) {
                    Ok(()) => m.committed = Some(at),
                    Err(e) => allowed(site, &e, &what, &mut m),
                }
            }
            7 => {
                let r = txn.begin().and_then(|()| {
                    let a = txn.send(ProducerRecord::new("t").partition(0).value(value.clone()))?;
                    txn.commit()?;
                    Ok(a)
                });
                match r {
                    Ok(meta) => m.acked.push((meta.offset, value)),
                    Err(e) => {
                        allowed(site, &e, &what, &mut m);
                        let _ = txn.abort();
                    }
                }
            }
            8 => {
                if let Err(e) = store.create_topic(&format!("u{step}"), TopicConfig::new(1)) {
                    allowed(site, &e, &what, &mut m);
                }
            }
            _ => match producer.send(ProducerRecord::new("t").partition(0).value(value.clone())) {
                Ok(meta) => m.acked.push((meta.offset, value)),
                Err(e) => allowed(site, &e, &what, &mut m),
            },
        }
        if m.poisoned {
            break;
        }
    }
    let fired = failpoint::disarm(&dir);
    if !m.poisoned {
        // Without a reopen: a send, a transaction and a commit of offsets all work again.
        let value = vec![200u8; 100];
        let meta = producer
            .send(ProducerRecord::new("t").partition(0).value(value.clone()))
            .unwrap_or_else(|e| panic!("{what}: send after the fault: {e}"));
        m.acked.push((meta.offset, value.clone()));
        txn.begin()
            .unwrap_or_else(|e| panic!("{what}: begin after the fault: {e}"));
        let meta = txn
            .send(ProducerRecord::new("t").partition(0).value(value.clone()))
            .unwrap();
        txn.commit().unwrap();
        m.acked.push((meta.offset, value));
        let at = meta.offset + 1;
        consumer
            .commit_offsets(&[(tp.clone(), OffsetAndMetadata::new(at))])
            .unwrap();
        m.committed = Some(at);
        check(&store, &m, &what);
    }
    drop(consumer);
    drop(txn);
    drop(producer);
    drop(store);
    let store = common::retry_locked(|| Store::open(&dir));
    check(&store, &m, &format!("{what}, reopened"));
    let p = store.producer();
    p.send(ProducerRecord::new("t").partition(0).value(vec![1u8; 10]))
        .unwrap_or_else(|e| panic!("{what}: send after reopen: {e}"));
    fired
}

#[test]
fn enospc_at_every_site_through_the_store() {
    let root = tempfile::tempdir().unwrap();
    for &site in sites::ALL {
        let mut fired = false;
        for nth in [1, 6] {
            fired |= run(root.path(), site, nth);
        }
        // The store's workload has no compaction: the cleaner's site is `failpoints_model`'s.
        assert!(
            fired || site == sites::CLEANED_WRITE,
            "site {site} never reached"
        );
    }
}

/// A full disk after a transaction's commit decision (the commit marker's segment roll finds no
/// room) does not lose the commit nor leave the partition's last stable offset stuck until a
/// reopen: `commit` succeeds (Kafka answers EndTxn once PrepareCommit is written), and the
/// marker is written once there is room, by the store's maintenance thread, without a reopen.
#[test]
fn a_full_disk_at_the_commit_marker_puts_it_off_until_there_is_room() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let store = Store::open(&dir).unwrap();
    store
        .create_topic(
            "t",
            TopicConfig::new(1)
                .flush(FlushPolicy::EveryAppend)
                .segment_bytes(4096)
                .max_message_bytes(4072),
        )
        .unwrap();
    let txn = store.transactional_producer("tx").unwrap();
    txn.begin().unwrap();
    // Fills the segment so that the commit marker does not fit: writing it rolls the segment.
    let meta = txn
        .send(ProducerRecord::new("t").partition(0).value(vec![5u8; 3950]))
        .unwrap();
    failpoint::arm(
        sites::SEGMENT_CREATE,
        &dir.join("t-0"),
        1,
        failpoint::ENOSPC,
    );
    txn.commit()
        .unwrap_or_else(|e| panic!("the decision is durable, the commit stands: {e}"));
    assert!(failpoint::fired(sites::SEGMENT_CREATE, &dir.join("t-0")));
    assert!(read_all(&store).is_empty(), "no marker yet");
    failpoint::disarm(&dir.join("t-0"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = read_all(&store);
        if !got.is_empty() {
            assert_eq!(got, vec![(meta.offset, vec![5u8; 3950])]);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the marker was never written"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // And the producer goes on.
    txn.begin().unwrap();
    txn.send(ProducerRecord::new("t").partition(0).value(vec![6u8; 10]))
        .unwrap();
    txn.commit().unwrap();
    assert_eq!(read_all(&store).len(), 2);
}
