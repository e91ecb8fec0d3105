//! Keys are partitioned exactly as Kafka's Java producer does: `murmur2` matches Kafka's
//! published test vectors, `partition_for_key` is `toPositive(murmur2(key)) % n`, and a keyed
//! send lands on that partition (an explicit partition wins over the key).

use std::collections::HashMap;

use riverbed::{murmur2, partition_for_key, ProducerRecord, Store, TopicConfig};

/// Kafka's `UtilsTest.testMurmur2`.
const VECTORS: [(&str, i32); 6] = [
    ("21", -973_932_308),
    ("foobar", -790_332_482),
    ("a-little-bit-long-string", -985_981_536),
    ("a-little-bit-longer-string", -1_486_304_829),
    (
        "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
        -58_897_971,
    ),
    ("abc", 479_470_107),
];

/// Kafka's `Utils.toPositive(murmur2(key)) % numPartitions`, written out independently.
fn kafka_partition(hash: i32, n: u32) -> u32 {
    ((hash & 0x7fff_ffff) as u32) % n
}

#[test]
fn murmur2_matches_kafka_vectors() {
    for (key, want) in VECTORS {
        assert_eq!(murmur2(key.as_bytes()), want, "murmur2({key:?})");
    }
}

#[test]
fn partition_for_key_is_positive_hash_modulo() {
    for (key, hash) in VECTORS {
        for n in [1u32, 2, 3, 6, 7, 50, 1000, 100_000] {
            assert_eq!(
                partition_for_key(key.as_bytes(), n),
                kafka_partition(hash, n),
                "key {key:?}, {n} partitions"
            );
        }
    }
    // Worked by hand: toPositive(-790332482) = 1357151166; 1357151166 % 50 = 16.
    assert_eq!(partition_for_key(b"foobar", 50), 16);
    // toPositive(-973932308) = 1173551340; 1173551340 % 7 = 3.
    assert_eq!(partition_for_key(b"21", 7), 3);
    assert_eq!(partition_for_key(b"abc", 1), 0);
}

#[test]
fn keyed_sends_land_on_the_kafka_partition() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let n = 7;
    store.create_topic("t", TopicConfig::new(n)).unwrap();
    let p = store.producer();

    for (key, hash) in VECTORS {
        let m = p
            .send(ProducerRecord::new("t").key(key).value("v"))
            .unwrap();
        assert_eq!(m.partition, kafka_partition(hash, n), "key {key:?}");
    }

    // Many keys: the same key always lands on the same partition, and every partition is used.
    let mut expected_end = vec![0u64; n as usize];
    for (_, hash) in VECTORS {
        expected_end[kafka_partition(hash, n) as usize] += 1;
    }
    let mut seen = HashMap::new();
    for round in 0..2 {
        for i in 0..200 {
            let key = format!("user-{i}");
            let m = p
                .send(
                    ProducerRecord::new("t")
                        .key(key.as_str())
                        .value(format!("{round}")),
                )
                .unwrap();
            let want = partition_for_key(key.as_bytes(), n);
            assert_eq!(m.partition, want, "key {key:?}");
            assert_eq!(m.offset, expected_end[want as usize], "key {key:?}");
            expected_end[want as usize] += 1;
            assert_eq!(*seen.entry(key).or_insert(m.partition), m.partition);
        }
    }
    assert!(expected_end.iter().all(|&e| e > 0), "{expected_end:?}");

    // An empty key is a key, hashed like any other.
    let m = p.send(ProducerRecord::new("t").key("").value("v")).unwrap();
    assert_eq!(m.partition, partition_for_key(b"", n));

    // An explicit partition wins over the key.
    assert_eq!(
        kafka_partition(479_470_107, n),
        4,
        "\"abc\" hashes to partition 4"
    );
    let m = p
        .send(ProducerRecord::new("t").key("abc").partition(0).value("v"))
        .unwrap();
    assert_eq!(m.partition, 0);

    // send_batch partitions the same way.
    let ms = p
        .send_batch(
            VECTORS
                .iter()
                .map(|(k, _)| ProducerRecord::new("t").key(*k).value("b")),
        )
        .unwrap();
    for ((key, hash), m) in VECTORS.iter().zip(&ms) {
        assert_eq!(m.partition, kafka_partition(*hash, n), "batch key {key:?}");
    }
}
