//! Sending to a topic while it is being deleted: every send either succeeds (before the delete)
//! or fails with `UnknownTopic` — never another kind of error — and consumers of the topic keep
//! polling without errors. After a recreate, sends go to the new, empty topic.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use riverbed::{ConsumerConfig, ErrorKind, OffsetReset, ProducerRecord, Store, TopicConfig};

#[test]
fn racing_sends_get_unknown_topic() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut unexpected: BTreeMap<String, usize> = BTreeMap::new();
    let mut unknown = 0usize;
    for _round in 0..15 {
        store.create_topic("t", TopicConfig::new(2)).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let senders: Vec<_> = (0..3)
            .map(|_| {
                let p = store.producer();
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut errors = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        if let Err(e) = p.send(ProducerRecord::new("t").value("x")) {
                            errors.push(e);
                        }
                    }
                    errors
                })
            })
            .collect();
        let mut c = store
            .consumer(ConsumerConfig::new("g").auto_offset_reset(OffsetReset::Earliest))
            .unwrap();
        c.subscribe(&["t"]).unwrap();
        c.poll(Duration::from_millis(5)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        store.delete_topic("t").unwrap();
        for _ in 0..3 {
            if let Err(e) = c.poll(Duration::from_millis(5)) {
                *unexpected.entry(format!("poll: {e}")).or_default() += 1;
            }
        }
        stop.store(true, Ordering::SeqCst);
        for h in senders {
            for e in h.join().unwrap() {
                if matches!(e.kind(), ErrorKind::UnknownTopic { topic } if topic == "t") {
                    unknown += 1;
                } else {
                    *unexpected.entry(format!("send: {e:?}")).or_default() += 1;
                }
            }
        }
        c.close().ok();
    }
    assert!(unknown > 0, "the senders never saw the topic gone");
    assert!(
        unexpected.is_empty(),
        "errors other than UnknownTopic while the topic was deleted: {unexpected:#?}"
    );

    // Recreated, the topic is empty and takes sends again.
    store.create_topic("t", TopicConfig::new(1)).unwrap();
    let m = store
        .producer()
        .send(ProducerRecord::new("t").value("fresh"))
        .unwrap();
    assert_eq!((m.partition, m.offset), (0, 0));
}
