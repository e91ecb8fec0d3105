//! Timestamps per topic: a create-time topic keeps the producer's timestamp (now, if none was
//! given); a log-append-time topic replaces it with the time of the append. `RecordMetadata`
//! reports the timestamp as stored, and consumers and `offsets_for_times` see that same value.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use riverbed::{
    ConsumerConfig, OffsetReset, ProducerRecord, Store, TimestampType, TopicConfig, TopicPartition,
};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// (offset, timestamp) of every record of `tp`.
fn timestamps(store: &Store, tp: &TopicPartition) -> Vec<(u64, i64)> {
    let end =
        store.describe_topic(&tp.topic).unwrap().partitions[tp.partition as usize].log_end_offset;
    let mut c = store
        .consumer(
            ConsumerConfig::default()
                .group_id(None)
                .auto_offset_reset(OffsetReset::Earliest),
        )
        .unwrap();
    c.assign(std::slice::from_ref(tp)).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while (out.len() as u64) < end {
        assert!(Instant::now() < deadline, "read {out:?} of {end}");
        for r in c.poll(Duration::from_millis(100)).unwrap().iter() {
            out.push((r.offset(), r.timestamp()));
        }
    }
    out
}

const OLD: i64 = 1_000_000_000_000; // September 2001

#[test]
fn create_time_keeps_the_producer_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Old timestamps must not be deleted by time retention while the test runs.
    store
        .create_topic("c", TopicConfig::new(1).retention_ms(None))
        .unwrap();
    assert_eq!(
        store
            .describe_topic("c")
            .unwrap()
            .config
            .get_log()
            .get_timestamp_type(),
        TimestampType::CreateTime,
        "create time is the default"
    );
    let p = store.producer();
    let a = p
        .send(ProducerRecord::new("c").value("a").timestamp(OLD))
        .unwrap();
    assert_eq!(a.timestamp, OLD);
    let before = now_ms();
    let b = p.send(ProducerRecord::new("c").value("b")).unwrap();
    let after = now_ms();
    assert!(
        (before..=after).contains(&b.timestamp),
        "{before} <= {} <= {after}",
        b.timestamp
    );
    let batch = p
        .send_batch([
            ProducerRecord::new("c").value("c").timestamp(OLD + 5),
            ProducerRecord::new("c").value("d").timestamp(OLD - 5),
        ])
        .unwrap();
    assert_eq!(batch[0].timestamp, OLD + 5);
    assert_eq!(batch[1].timestamp, OLD - 5);
    assert_eq!(
        timestamps(&store, &TopicPartition::new("c", 0)),
        [(0, OLD), (1, b.timestamp), (2, OLD + 5), (3, OLD - 5)]
    );
}

#[test]
fn log_append_time_replaces_the_producer_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("l", 0);
    let metas;
    {
        let store = Store::open(dir.path()).unwrap();
        store
            .create_topic(
                "l",
                TopicConfig::new(1)
                    .retention_ms(None)
                    .timestamp_type(TimestampType::LogAppendTime),
            )
            .unwrap();
        let p = store.producer();
        let before = now_ms();
        let a = p
            .send(ProducerRecord::new("l").value("a").timestamp(OLD))
            .unwrap();
        let b = p.send(ProducerRecord::new("l").value("b")).unwrap();
        let batch = p
            .send_batch([
                ProducerRecord::new("l").value("c").timestamp(OLD),
                ProducerRecord::new("l").value("d").timestamp(i64::MAX / 2),
            ])
            .unwrap();
        let after = now_ms();
        for m in [&a, &b, &batch[0], &batch[1]] {
            assert!(
                (before..=after).contains(&m.timestamp),
                "offset {}: stored timestamp {} is not the append time ({before}..={after})",
                m.offset,
                m.timestamp
            );
        }
        // Records of one append share its time.
        assert_eq!(batch[0].timestamp, batch[1].timestamp);
        metas = vec![a, b, batch[0].clone(), batch[1].clone()];
        let want: Vec<(u64, i64)> = metas.iter().map(|m| (m.offset, m.timestamp)).collect();
        assert_eq!(timestamps(&store, &tp), want);
        store.flush().unwrap();
    }
    // The topic's timestamp type and the stored times survive a reopen, and later appends
    // are stamped too.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store
            .describe_topic("l")
            .unwrap()
            .config
            .get_log()
            .get_timestamp_type(),
        TimestampType::LogAppendTime
    );
    let want: Vec<(u64, i64)> = metas.iter().map(|m| (m.offset, m.timestamp)).collect();
    assert_eq!(timestamps(&store, &tp), want);
    let before = now_ms();
    let e = store
        .producer()
        .send(ProducerRecord::new("l").value("e").timestamp(OLD))
        .unwrap();
    assert!(e.timestamp >= before);

    // offsets_for_times searches the stored (append) times, not the producer's.
    let c = store.consumer(ConsumerConfig::new("g")).unwrap();
    let found = c.offsets_for_times(&[(tp.clone(), OLD)]).unwrap();
    assert_eq!(found[0].1.unwrap().offset, 0);
    assert_eq!(found[0].1.unwrap().timestamp, metas[0].timestamp);
    let found = c.offsets_for_times(&[(tp.clone(), e.timestamp)]).unwrap();
    let hit = found[0].1.unwrap();
    assert!(
        hit.offset <= e.offset && hit.timestamp >= e.timestamp,
        "{hit:?} for {e:?}"
    );
    let found = c
        .offsets_for_times(&[(tp.clone(), e.timestamp + 60_000)])
        .unwrap();
    assert_eq!(found[0].1, None);
}

#[test]
fn concurrent_sends_report_the_timestamp_consumers_see() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic(
            "l",
            TopicConfig::new(1)
                .retention_ms(None)
                .timestamp_type(TimestampType::LogAppendTime),
        )
        .unwrap();
    let threads = 6;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let p = store.producer();
            let b = Arc::clone(&barrier);
            std::thread::spawn(move || {
                b.wait();
                (0..150)
                    .map(|i| {
                        let m = p
                            .send(
                                ProducerRecord::new("l")
                                    .value(format!("{t}-{i}"))
                                    .timestamp(OLD + i),
                            )
                            .unwrap();
                        (m.offset, m.timestamp)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut sent: Vec<(u64, i64)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    sent.sort_unstable();
    assert!(sent.iter().all(|&(_, ts)| ts > OLD + 1_000_000));
    assert_eq!(timestamps(&store, &TopicPartition::new("l", 0)), sent);
}
