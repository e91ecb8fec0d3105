//! Borrowed records (`ProducerRecord::borrowed`) go through the same batch sends as owned ones.
//! A model of Kafka's producer contract checks both: records go to their explicit partition or
//! to their key's (`partition_for_key`), land in the order given at consecutive offsets, keep
//! key, value, headers and timestamp, and a call holding one invalid record (an unknown
//! partition, a record over `max_message_bytes`, a keyless record for a compacted topic) fails
//! whole and writes nothing. Calls mix topics and partitions, and one topic's small
//! `max_message_bytes` splits batches, so both the one-pass path (every record to one partition,
//! one batch) and the routed path are taken, and a call can leave the one-pass path half way.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use riverbed::{
    partition_for_key, CleanupPolicy, ConsumerConfig, ErrorKind, OffsetReset, ProducerRecord,
    RecordMetadata, Store, TopicConfig, TopicPartition,
};

/// (name, partitions, max_message_bytes, compacted)
const TOPICS: [(&str, u32, usize, bool); 3] = [
    ("wide", 3, 1 << 20, false),
    ("narrow", 2, 300, false),
    ("compact", 2, 1 << 20, true),
];

/// One record to send: topic index, explicit partition (maybe out of range), key, value,
/// headers, timestamp.
#[derive(Clone, Debug)]
struct Input {
    topic: usize,
    partition: Option<u32>,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    timestamp: i64,
}

/// What a partition holds, in offset order: key, value, headers, timestamp.
type Stored = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Vec<u8>)>,
    i64,
);

fn input() -> impl Strategy<Value = Input> {
    (
        0..TOPICS.len(),
        prop::option::weighted(0.5, 0u32..4),
        prop::option::weighted(0.7, prop::collection::vec(any::<u8>(), 0..8)),
        // Values well below or well above the narrow topic's limit, never near it (where the
        // exact batch size, the library's to compute, would decide).
        prop::option::weighted(
            0.9,
            prop_oneof![
                20 => prop::collection::vec(any::<u8>(), 0..150),
                1 => prop::collection::vec(any::<u8>(), 400..450),
            ],
        ),
        prop::collection::vec(
            ("[a-c]{1,3}", prop::collection::vec(any::<u8>(), 0..6)),
            0..2,
        ),
        0i64..1_000_000,
    )
        .prop_map(|(topic, partition, key, value, headers, timestamp)| {
            // Keyless records without a partition stick by size (history-dependent): give them
            // a partition, so that the model knows where they go.
            let partition = match (&partition, &key) {
                (None, None) => Some(timestamp as u32 % 2),
                _ => partition,
            };
            Input {
                topic,
                partition,
                key,
                value,
                headers,
                timestamp,
            }
        })
}

/// Where the model sends `i`, or the error kind the call must fail with.
fn route(i: &Input, index: usize) -> Result<u32, ErrorKind> {
    let (_, partitions, max, compacted) = TOPICS[i.topic];
    if compacted && i.key.is_none() {
        return Err(ErrorKind::KeyRequired {
            record: index as u32,
        });
    }
    // Records are either at most about 250 bytes as a batch, or hold a value of 400 or more.
    let value_len = i.value.as_ref().map_or(0, Vec::len);
    if value_len >= 400 && max < 400 {
        return Err(ErrorKind::RecordTooLarge {
            size: value_len,
            max,
        });
    }
    match (i.partition, &i.key) {
        (Some(p), _) if p < partitions => Ok(p),
        (Some(p), _) => Err(ErrorKind::UnknownPartition {
            topic: TOPICS[i.topic].0.to_string(),
            partition: p,
            partitions,
        }),
        (None, Some(k)) => Ok(partition_for_key(k, partitions)),
        (None, None) => unreachable!("keyless records are given a partition"),
    }
}

fn owned(topics: &[Arc<str>], i: &Input) -> ProducerRecord {
    let mut r =
        ProducerRecord::with_shared_topic(Arc::clone(&topics[i.topic])).timestamp(i.timestamp);
    if let Some(p) = i.partition {
        r = r.partition(p);
    }
    if let Some(k) = &i.key {
        r = r.key(k.clone());
    }
    if let Some(v) = &i.value {
        r = r.value(v.clone());
    }
    for (k, v) in &i.headers {
        r = r.header(k.clone(), v.clone());
    }
    r
}

fn borrowed<'a>(topics: &[Arc<str>], i: &'a Input) -> ProducerRecord<&'a [u8]> {
    let mut r = ProducerRecord::borrowed(Arc::clone(&topics[i.topic])).timestamp(i.timestamp);
    if let Some(p) = i.partition {
        r = r.partition(p);
    }
    if let Some(k) = &i.key {
        r = r.key(k);
    }
    if let Some(v) = &i.value {
        r = r.value(v);
    }
    for (k, v) in &i.headers {
        r = r.header(k.clone(), v.clone());
    }
    r
}

/// A store with the topics twice: as named in [`TOPICS`] (for owned sends) and with a `b-`
/// prefix (for borrowed sends).
fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for (name, partitions, max, compacted) in TOPICS {
        let name = name.to_string();
        for name in [name.clone(), format!("b-{name}")] {
            let mut config = TopicConfig::new(partitions).max_message_bytes(max);
            if compacted {
                config = config.cleanup_policy(CleanupPolicy::Compact);
            }
            store.create_topic(&name, config).unwrap();
        }
    }
    (dir, store)
}

/// What the topics named with `prefix` hold, by (topic index, partition).
fn read(store: &Store, prefix: &str) -> BTreeMap<(usize, u32), Vec<Stored>> {
    let mut c = store
        .consumer(
            ConsumerConfig::default()
                .group_id(None)
                .auto_offset_reset(OffsetReset::Earliest),
        )
        .unwrap();
    let tps: Vec<TopicPartition> = TOPICS
        .iter()
        .flat_map(|(name, n, _, _)| {
            (0..*n).map(move |p| TopicPartition::new(format!("{prefix}{name}"), p))
        })
        .collect();
    c.assign(&tps).unwrap();
    let mut out: BTreeMap<(usize, u32), Vec<Stored>> = BTreeMap::new();
    loop {
        let polled = c.poll(Duration::ZERO).unwrap();
        if polled.is_empty() {
            return out;
        }
        for r in polled.iter() {
            let t = TOPICS
                .iter()
                .position(|(n, ..)| format!("{prefix}{n}") == r.topic())
                .unwrap();
            let part = out.entry((t, r.partition())).or_default();
            assert_eq!(r.offset(), part.len() as u64, "offsets are dense from 0");
            let headers = r
                .headers()
                .map(|h| {
                    let (k, v) = h.unwrap();
                    (k.to_string(), v.unwrap().to_vec())
                })
                .collect();
            part.push((
                r.key().map(<[u8]>::to_vec),
                r.value().map(<[u8]>::to_vec),
                headers,
                r.timestamp(),
            ));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn borrowed_and_owned_sends_follow_the_model(
        calls in prop::collection::vec(prop::collection::vec(input(), 1..30), 1..12),
        metadata_free in any::<u64>(),
    ) {
        let (_dir, store) = open();
        let (pa, pb) = (store.producer(), store.producer());
        let topics: Vec<Arc<str>> = TOPICS.iter().map(|(n, ..)| Arc::from(*n)).collect();
        let b_topics: Vec<Arc<str>> =
            TOPICS.iter().map(|(n, ..)| Arc::from(format!("b-{n}"))).collect();
        let mut model: BTreeMap<(usize, u32), Vec<Stored>> = BTreeMap::new();
        for (c, call) in calls.iter().enumerate() {
            let routes: Result<Vec<u32>, ErrorKind> =
                call.iter().enumerate().map(|(k, i)| route(i, k)).collect();
            // The model's metadata: per record, (topic, partition, offset, timestamp).
            let expected = routes.as_ref().ok().map(|routes| {
                let mut next: BTreeMap<(usize, u32), u64> = BTreeMap::new();
                call.iter()
                    .zip(routes)
                    .map(|(i, &p)| {
                        let n = next
                            .entry((i.topic, p))
                            .or_insert_with(|| model.get(&(i.topic, p)).map_or(0, Vec::len) as u64);
                        *n += 1;
                        (TOPICS[i.topic].0.to_string(), p, *n - 1, i.timestamp)
                    })
                    .collect::<Vec<_>>()
            });
            let skip_metadata = metadata_free >> (c % 64) & 1 == 1;
            let got_a = pa.send_batch(call.iter().map(|i| owned(&topics, i)));
            let got_b: riverbed::Result<Vec<RecordMetadata>> = if skip_metadata {
                pb.send_all(call.iter().map(|i| borrowed(&b_topics, i))).map(|()| Vec::new())
            } else {
                pb.send_batch(call.iter().map(|i| borrowed(&b_topics, i)))
            };
            match (&routes, expected) {
                (Err(kind), _) => {
                    for (what, got) in [("owned", got_a.map(|_| ())), ("borrowed", got_b.map(|_| ()))] {
                        let e = got.expect_err(what);
                        // The exact size is the library's to compute: compare the kind only.
                        prop_assert_eq!(
                            std::mem::discriminant(e.kind()),
                            std::mem::discriminant(kind),
                            "call {}, {}: {}", c, what, e
                        );
                        if !matches!(kind, ErrorKind::RecordTooLarge { .. }) {
                            prop_assert_eq!(
                                format!("{:?}", e.kind()).replace("\"b-", "\""),
                                format!("{kind:?}"),
                                "call {}, {}", c, what
                            );
                        }
                    }
                }
                (Ok(routes), Some(expected)) => {
                    for (what, got, skipped) in [("owned", got_a, false), ("borrowed", got_b, skip_metadata)] {
                        let got = got.unwrap_or_else(|e| panic!("call {c}, {what}: {e}"));
                        if skipped {
                            prop_assert!(got.is_empty());
                            continue;
                        }
                        let got: Vec<_> = got
                            .into_iter()
                            .map(|m| {
                                let topic = m.topic.strip_prefix("b-").unwrap_or(&m.topic).to_string();
                                (topic, m.partition, m.offset, m.timestamp)
                            })
                            .collect();
                        prop_assert_eq!(&got, &expected, "call {}, {}", c, what);
                    }
                    for (i, &p) in call.iter().zip(routes) {
                        model.entry((i.topic, p)).or_default().push((
                            i.key.clone(),
                            i.value.clone(),
                            i.headers.clone(),
                            i.timestamp,
                        ));
                    }
                }
                (Ok(_), None) => unreachable!(),
            }
        }
        let (ra, rb) = (read(&store, ""), read(&store, "b-"));
        prop_assert_eq!(&ra, &model, "owned sends");
        prop_assert_eq!(&rb, &model, "borrowed sends");
    }
}
