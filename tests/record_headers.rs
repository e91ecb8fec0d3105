//! Record headers reach the consumer exactly as sent: in order, with repeated keys, empty and
//! binary values, through `send` and `send_batch`, compressed or not. Keys, values and
//! tombstones (no value) round-trip too.

use std::time::{Duration, Instant};

use riverbed::{
    Compression, ConsumerConfig, OffsetReset, ProducerRecord, Store, TopicConfig, TopicPartition,
};

type Seen = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Option<Vec<u8>>)>,
);

fn read(store: &Store, topic: &str, n: usize) -> Vec<Seen> {
    let mut c = store
        .consumer(
            ConsumerConfig::default()
                .group_id(None)
                .auto_offset_reset(OffsetReset::Earliest),
        )
        .unwrap();
    c.assign(&[TopicPartition::new(topic, 0)]).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while out.len() < n {
        assert!(Instant::now() < deadline);
        for r in c.poll(Duration::from_millis(50)).unwrap().iter() {
            let headers = r
                .headers()
                .map(|h| {
                    let (k, v) = h.unwrap();
                    (k.to_string(), v.map(<[u8]>::to_vec))
                })
                .collect();
            out.push((
                r.key().map(<[u8]>::to_vec),
                r.value().map(<[u8]>::to_vec),
                headers,
            ));
        }
    }
    out
}

fn records(topic: &str) -> (Vec<ProducerRecord>, Vec<Seen>) {
    let binary: Vec<u8> = (0..=255).collect();
    let rs = vec![
        ProducerRecord::new(topic).key("k1").value("v1"),
        ProducerRecord::new(topic)
            .key("k2")
            .value("v2")
            .header("trace", "abc")
            .header("trace", "def")
            .header("empty", "")
            .header("bin", binary.clone())
            .header("ключ-🔑", "значение"),
        ProducerRecord::new(topic).key("tombstone"),
        ProducerRecord::new(topic)
            .value("no key")
            .header("only", "one"),
        ProducerRecord::new(topic).key("").value(""),
    ];
    let s = |v: &str| Some(v.as_bytes().to_vec());
    let want = vec![
        (s("k1"), s("v1"), vec![]),
        (
            s("k2"),
            s("v2"),
            vec![
                ("trace".into(), s("abc")),
                ("trace".into(), s("def")),
                ("empty".into(), Some(vec![])),
                ("bin".into(), Some(binary)),
                ("ключ-🔑".into(), s("значение")),
            ],
        ),
        (s("tombstone"), None, vec![]),
        (None, s("no key"), vec![("only".into(), s("one"))]),
        (Some(vec![]), Some(vec![]), vec![]),
    ];
    (rs, want)
}

#[test]
fn headers_keys_and_values_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for (topic, compression) in [
        ("plain", Compression::None),
        ("zstd", Compression::Zstd { level: 3 }),
    ] {
        store
            .create_topic(topic, TopicConfig::new(1).compression(compression))
            .unwrap();
        let p = store.producer();
        let (rs, want) = records(topic);
        for r in rs.clone() {
            p.send(r.partition(0)).unwrap();
        }
        p.send_batch(rs.into_iter().map(|r| r.partition(0)))
            .unwrap();
        let got = read(&store, topic, 2 * want.len());
        let mut want2 = want.clone();
        want2.extend(want);
        assert_eq!(got, want2, "topic {topic}");
    }
}
