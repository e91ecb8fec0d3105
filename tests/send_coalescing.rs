//! Concurrent sends to one partition coalesce into shared batch appends, and every sender still
//! gets exactly its own record's metadata: offsets are unique and contiguous, each thread's
//! offsets increase in send order, and each `RecordMetadata` names the offset (and timestamp)
//! where a consumer finds that very record, with its key, value and headers.

use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use riverbed::{
    ConsumerConfig, FlushPolicy, OffsetReset, ProducerConfig, ProducerRecord, RecordMetadata,
    Store, TopicConfig, TopicPartition,
};

#[derive(Debug, PartialEq, Eq)]
struct Read {
    key: Vec<u8>,
    value: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    timestamp: i64,
}

fn read_partition(store: &Store, tp: &TopicPartition, n: u64) -> HashMap<u64, Read> {
    let mut c = store
        .consumer(
            ConsumerConfig::default()
                .group_id(None)
                .auto_offset_reset(OffsetReset::Earliest)
                .max_poll_records(10_000),
        )
        .unwrap();
    c.assign(std::slice::from_ref(tp)).unwrap();
    let mut out = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while (out.len() as u64) < n {
        assert!(Instant::now() < deadline, "read {} of {n}", out.len());
        for r in c.poll(Duration::from_millis(100)).unwrap().iter() {
            let headers = r
                .headers()
                .map(|h| {
                    let (k, v) = h.unwrap();
                    (k.to_string(), v.unwrap().to_vec())
                })
                .collect();
            let prev = out.insert(
                r.offset(),
                Read {
                    key: r.key().unwrap().to_vec(),
                    value: r.value().unwrap().to_vec(),
                    headers,
                    timestamp: r.timestamp(),
                },
            );
            assert!(prev.is_none(), "offset {} read twice", r.offset());
        }
    }
    out
}

/// Record `i` of thread `t`.
fn record(topic: &str, partition: u32, t: usize, i: usize) -> ProducerRecord {
    ProducerRecord::new(topic)
        .partition(partition)
        .key(format!("t{t}-{i}"))
        .value(format!("value of thread {t} record {i}").repeat(1 + i % 3))
        .header("thread", format!("{t}"))
        .header("seq", format!("{i}"))
        .timestamp(1_600_000_000_000 + (t * 100_000 + i) as i64)
}

/// Sends `per_thread` records from each of `threads` threads to partition `partition` of
/// `topic`; returns, per thread, the metadata of its sends in order.
fn hammer(
    store: &Store,
    config: ProducerConfig,
    topic: &str,
    partition: u32,
    threads: usize,
    per_thread: usize,
) -> Vec<Vec<(ProducerRecord, RecordMetadata)>> {
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let p = store.producer_with(config.clone()).unwrap();
            let b = Arc::clone(&barrier);
            let topic = topic.to_string();
            std::thread::spawn(move || {
                b.wait();
                (0..per_thread)
                    .map(|i| {
                        let r = record(&topic, partition, t, i);
                        let m = p.send(r.clone()).unwrap();
                        (r, m)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn check(
    store: &Store,
    topic: &str,
    partition: u32,
    sent: &[Vec<(ProducerRecord, RecordMetadata)>],
) {
    let total: usize = sent.iter().map(Vec::len).sum();
    let mut offsets: Vec<u64> = Vec::with_capacity(total);
    for (t, sends) in sent.iter().enumerate() {
        for w in sends.windows(2) {
            assert!(
                w[0].1.offset < w[1].1.offset,
                "thread {t}: a later send got an earlier offset: {:?} then {:?}",
                w[0].1,
                w[1].1
            );
        }
        for (_, m) in sends {
            assert_eq!((m.topic.as_str(), m.partition), (topic, partition));
            offsets.push(m.offset);
        }
    }
    offsets.sort_unstable();
    assert_eq!(
        offsets,
        (0..total as u64).collect::<Vec<_>>(),
        "offsets not unique and contiguous"
    );
    let d = store.describe_topic(topic).unwrap();
    assert_eq!(
        d.partitions[partition as usize].log_end_offset,
        total as u64
    );

    let read = read_partition(store, &TopicPartition::new(topic, partition), total as u64);
    for (t, sends) in sent.iter().enumerate() {
        for (i, (_, m)) in sends.iter().enumerate() {
            let r = &read[&m.offset];
            let want_value = format!("value of thread {t} record {i}").repeat(1 + i % 3);
            assert_eq!(
                (r.key.as_slice(), r.value.as_slice()),
                (format!("t{t}-{i}").as_bytes(), want_value.as_bytes()),
                "offset {} holds another record than its sender was told",
                m.offset
            );
            assert_eq!(
                r.headers,
                [
                    ("thread".to_string(), format!("{t}").into_bytes()),
                    ("seq".to_string(), format!("{i}").into_bytes())
                ]
            );
            assert_eq!(r.timestamp, m.timestamp);
            assert_eq!(r.timestamp, 1_600_000_000_000 + (t * 100_000 + i) as i64);
        }
    }
}

#[test]
fn many_threads_one_partition() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(3)).unwrap();
    let sent = hammer(&store, ProducerConfig::default(), "t", 1, 8, 400);
    check(&store, "t", 1, &sent);
    let d = store.describe_topic("t").unwrap();
    assert_eq!(d.partitions[0].log_end_offset, 0);
    assert_eq!(d.partitions[2].log_end_offset, 0);
}

#[test]
fn fsync_per_append_topic_many_threads() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic(
            "durable",
            TopicConfig::new(1).flush(FlushPolicy::EveryAppend),
        )
        .unwrap();
    let sent = hammer(&store, ProducerConfig::default(), "durable", 0, 6, 60);
    check(&store, "durable", 0, &sent);
}

/// With a linger, the appending sender waits for the others to queue, so the records of many
/// threads really do share batches: the log holds far fewer batch headers than records.
#[test]
fn lingering_sends_share_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("single", TopicConfig::new(1)).unwrap();
    store.create_topic("shared", TopicConfig::new(1)).unwrap();

    // The size of the same records appended one batch each (one sender, no concurrency).
    let p = store.producer();
    for t in 0..8 {
        for i in 0..30 {
            p.send(record("single", 0, t, i)).unwrap();
        }
    }
    let single_bytes = store.describe_topic("single").unwrap().partitions[0].size_bytes;

    let config = ProducerConfig::default()
        .batch_size(64 * 1024)
        .linger(Duration::from_millis(3));
    let sent = hammer(&store, config, "shared", 0, 8, 30);
    check(&store, "shared", 0, &sent);
    let shared_bytes = store.describe_topic("shared").unwrap().partitions[0].size_bytes;
    // Each batch costs a 57-byte header (plus per-record deltas); 240 records in batches of
    // several records each must take clearly less space than 240 one-record batches.
    assert!(
        shared_bytes + 240 * 20 < single_bytes,
        "no coalescing: {shared_bytes} bytes coalesced vs {single_bytes} one by one"
    );
}
