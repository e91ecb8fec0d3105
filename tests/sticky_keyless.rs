//! Keyless records stick to one partition until about `batch_size` bytes went there, then move
//! to a different partition (Kafka's sticky partitioning, KIP-480). Each topic sticks on its
//! own; keyed records and explicit partitions are unaffected.

use std::time::{Duration, Instant};

use riverbed::{
    BatchBuilder, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, Store, TopicConfig,
    TopicPartition,
};

/// Maximal runs of equal partitions: (partition, length).
fn runs(parts: &[u32]) -> Vec<(u32, usize)> {
    let mut out: Vec<(u32, usize)> = Vec::new();
    for &p in parts {
        match out.last_mut() {
            Some((q, n)) if *q == p => *n += 1,
            _ => out.push((p, 1)),
        }
    }
    out
}

fn producer(store: &Store, batch_size: usize) -> riverbed::Producer {
    store
        .producer_with(
            ProducerConfig::default()
                .batch_size(batch_size)
                .linger(Duration::ZERO),
        )
        .unwrap()
}

#[test]
fn keyless_records_stick_then_move() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(4)).unwrap();
    let batch_size = 2000;
    let value = vec![b'v'; 100];
    let p = producer(&store, batch_size);

    let mut parts = Vec::new();
    let mut next = [0u64; 4];
    for i in 0..300 {
        let mut v = value.clone();
        v[..4].copy_from_slice(&(i as u32).to_le_bytes());
        let m = p.send(ProducerRecord::new("t").value(v)).unwrap();
        assert_eq!(m.offset, next[m.partition as usize], "record {i}");
        next[m.partition as usize] += 1;
        parts.push(m.partition);
    }
    let rs = runs(&parts);
    let record_bytes = BatchBuilder::record_size_upper_bound(None, Some(&value), &[]);
    let most = batch_size / record_bytes + 1;
    assert!(rs.len() >= 300 / most, "too few switches: {rs:?}");
    // The stickiness: runs of several records, all interior runs the same length (equal-sized
    // records), never longer than a batch's worth.
    let interior: Vec<usize> = rs[1..rs.len() - 1].iter().map(|r| r.1).collect();
    assert!(interior.iter().all(|&n| n >= 2 && n <= most), "{rs:?}");
    assert!(
        interior.windows(2).all(|w| w[0] == w[1]),
        "interior runs differ in length: {rs:?}"
    );
    assert!(rs[0].1 <= most, "{rs:?}");
    // A move goes to a different partition, and over time every partition is used.
    assert!(rs.windows(2).all(|w| w[0].0 != w[1].0), "{rs:?}");
    assert!(next.iter().all(|&n| n > 0), "unused partition: {next:?}");

    // What a consumer reads matches where the producer said each record went.
    let mut c = store
        .consumer(
            ConsumerConfig::default()
                .group_id(None)
                .auto_offset_reset(OffsetReset::Earliest),
        )
        .unwrap();
    c.assign(
        &(0..4)
            .map(|p| TopicPartition::new("t", p))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let mut seen = vec![None; 300];
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut n = 0;
    while n < 300 {
        assert!(Instant::now() < deadline, "read only {n} records");
        for r in c.poll(Duration::from_millis(100)).unwrap().iter() {
            let v = r.value().unwrap();
            let i = u32::from_le_bytes(v[..4].try_into().unwrap()) as usize;
            assert!(seen[i].is_none(), "record {i} read twice");
            seen[i] = Some(r.partition());
            n += 1;
        }
    }
    let seen: Vec<u32> = seen.into_iter().map(Option::unwrap).collect();
    assert_eq!(seen, parts);
}

#[test]
fn keyed_and_explicit_records_do_not_break_a_run_and_topics_stick_separately() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("a", TopicConfig::new(5)).unwrap();
    store.create_topic("b", TopicConfig::new(5)).unwrap();
    let p = producer(&store, 1 << 20);
    // With a huge batch size, keyless records never move.
    let first = p
        .send(ProducerRecord::new("a").value("x"))
        .unwrap()
        .partition;
    for i in 0..50 {
        let key = format!("k{i}");
        let m = p
            .send(ProducerRecord::new("a").key(key.as_str()).value("x"))
            .unwrap();
        assert_eq!(m.partition, riverbed::partition_for_key(key.as_bytes(), 5));
        let m = p
            .send(
                ProducerRecord::new("a")
                    .partition((first + 1) % 5)
                    .value("x"),
            )
            .unwrap();
        assert_eq!(m.partition, (first + 1) % 5);
        p.send(ProducerRecord::new("b").value(vec![0u8; 500]))
            .unwrap();
        let m = p.send(ProducerRecord::new("a").value("x")).unwrap();
        assert_eq!(m.partition, first, "keyless record {i} moved");
    }
    // send_batch follows the same sticky partition.
    let ms = p
        .send_batch((0..20).map(|_| ProducerRecord::new("a").value("y")))
        .unwrap();
    assert!(ms.iter().all(|m| m.partition == first), "{ms:?}");
}

#[test]
fn large_records_move_every_time_and_single_partition_topics_stay() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("big", TopicConfig::new(3)).unwrap();
    store.create_topic("one", TopicConfig::new(1)).unwrap();
    let p = producer(&store, 100);
    let parts: Vec<u32> = (0..30)
        .map(|_| {
            p.send(ProducerRecord::new("big").value(vec![1u8; 400]))
                .unwrap()
                .partition
        })
        .collect();
    // Each record alone exceeds batch_size, so no two consecutive ones share a partition
    // (after the first).
    assert!(parts[1..].windows(2).all(|w| w[0] != w[1]), "{parts:?}");
    for _ in 0..30 {
        assert_eq!(
            p.send(ProducerRecord::new("one").value(vec![1u8; 400]))
                .unwrap()
                .partition,
            0
        );
    }
}
