//! Shutting a store down on purpose: `Store::close` reports the errors that dropping the last
//! handle can only ignore, and every handle left over fails with `ErrorKind::Closed`;
//! `create_topic_if_absent` creates or leaves alone; a poisoned log keeps the operating
//! system's error kind of the failure that poisoned it.

use std::time::Duration;

use riverbed::{
    ConsumerConfig, ErrorKind, OffsetReset, ProducerRecord, Store, TopicConfig, TopicPartition,
};

fn values(store: &Store, topic: &str) -> Vec<String> {
    let mut c = store
        .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    c.assign(&[TopicPartition::new(topic, 0)]).unwrap();
    let mut out = Vec::new();
    for _ in 0..20 {
        let recs = c.poll(Duration::from_millis(50)).unwrap();
        if recs.is_empty() && !out.is_empty() {
            break;
        }
        for r in recs.iter() {
            out.push(String::from_utf8(r.value().unwrap().to_vec()).unwrap());
        }
    }
    out
}

#[test]
fn close_then_reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(1)).unwrap();
    let p = store.producer();
    for i in 0..10 {
        p.send(ProducerRecord::new("t").value(format!("v{i}")))
            .unwrap();
    }
    drop(p);
    store.close().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let want: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
    assert_eq!(values(&store, "t"), want);
}

/// Handles that outlive `close` get `Closed`, not a generic invalid-argument error, and what
/// they were refused is not in the log after a reopen.
#[test]
fn handles_of_a_closed_store_fail_with_closed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(1)).unwrap();
    let p = store.producer();
    p.send(ProducerRecord::new("t").value("before")).unwrap();
    store.clone().close().unwrap();
    let e = p.send(ProducerRecord::new("t").value("after")).unwrap_err();
    let ErrorKind::Closed { path } = e.kind() else {
        panic!("expected Closed, got {e:?}");
    };
    assert!(path.starts_with(dir.path()), "{path:?}");
    assert!(e.to_string().contains("closed"), "{e}");
    // Closing again (the last handle's drop does the same) is harmless.
    drop(p);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(values(&store, "t"), ["before"]);
}

/// Kafka's `kafka-topics.sh --create --if-not-exists`: an existing topic is success, and is left
/// as it is (its partition count and settings are not compared with the request).
#[test]
fn create_topic_if_absent_creates_once_and_leaves_an_existing_topic_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(store
        .create_topic_if_absent("t", TopicConfig::new(2).retention_ms(None))
        .unwrap());
    assert!(!store
        .create_topic_if_absent("t", TopicConfig::new(5).retention_ms(Some(1000)))
        .unwrap());
    let d = store.describe_topic("t").unwrap();
    assert_eq!(d.partitions.len(), 2);
    assert_eq!(d.config.get_log().get_retention_ms(), None);
    // Plain create_topic still refuses.
    let e = store.create_topic("t", TopicConfig::new(2)).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::TopicExists { .. }), "{e:?}");
    // A bad name or configuration is an error whether or not the topic exists.
    let e = store
        .create_topic_if_absent("t", TopicConfig::new(0))
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidConfig { .. }), "{e:?}");
    let e = store
        .create_topic_if_absent("no/slash", TopicConfig::new(1))
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidArgument(_)), "{e:?}");
    // Two racing callers: exactly one creates.
    let created: Vec<bool> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| store.create_topic_if_absent("race", TopicConfig::new(1))))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
    });
    assert_eq!(created.iter().filter(|c| **c).count(), 1, "{created:?}");
}

#[cfg(feature = "failpoints")]
mod failpoints {
    use riverbed::failpoint::{self, sites};
    use riverbed::{
        BatchBuilder, Compression, ErrorKind, FlushPolicy, Log, LogConfig, ProducerRecord, Store,
        TopicConfig,
    };

    /// The fsync `close` makes fails: `close` says so (dropping would have said nothing), and
    /// the records, which reached the page cache, are all there after a reopen.
    #[test]
    fn close_reports_a_failed_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create_topic("t", TopicConfig::new(1)).unwrap();
        let p = store.producer();
        for i in 0..10 {
            p.send(ProducerRecord::new("t").value(format!("v{i}")))
                .unwrap();
        }
        drop(p);
        failpoint::arm(sites::SEGMENT_FSYNC, dir.path(), 1, failpoint::EIO);
        let e = store.close().unwrap_err();
        assert!(failpoint::disarm(dir.path()));
        assert!(e.is_io(), "{e:?}");
        assert_eq!(
            e.io_kind(),
            Some(std::io::Error::from_raw_os_error(failpoint::EIO).kind())
        );
        let store = Store::open(dir.path()).unwrap();
        let want: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
        assert_eq!(super::values(&store, "t"), want);
    }

    /// A disk that fills up under an fsync poisons the log; every later call's `Poisoned` error
    /// still says it was a full disk (`StorageFull`), not just in its message.
    #[test]
    fn poisoned_keeps_the_io_error_kind() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(
            dir.path(),
            LogConfig::default().flush(FlushPolicy::EveryAppend),
        )
        .unwrap();
        let batch = || {
            let mut b = BatchBuilder::new(Compression::None);
            b.append(1_700_000_000_000, Some(b"k"), Some(b"v"), &[]);
            b.build().unwrap()
        };
        log.append(&batch()).unwrap();
        failpoint::arm(sites::SEGMENT_FSYNC, dir.path(), 1, failpoint::ENOSPC);
        let e = log.append(&batch()).unwrap_err();
        assert!(failpoint::disarm(dir.path()));
        assert!(matches!(e.kind(), ErrorKind::Io { .. }), "{e:?}");
        assert_eq!(e.io_kind(), Some(std::io::ErrorKind::StorageFull));
        let e = log.append(&batch()).unwrap_err();
        let ErrorKind::Poisoned { io_kind, .. } = e.kind() else {
            panic!("expected Poisoned, got {e:?}");
        };
        assert_eq!(*io_kind, Some(std::io::ErrorKind::StorageFull));
        assert_eq!(e.io_kind(), Some(std::io::ErrorKind::StorageFull));
    }
}
