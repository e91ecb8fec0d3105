//! Stream-stream joins under the `App` runtime: the join buffers are restored from their
//! changelogs, so left records processed before a restart join right records sent after it;
//! and streams that are not co-partitioned are refused at start.

use std::time::Duration;

use riverbed::streams::{App, Builder, JoinWindows, StreamsConfig, Topology};
use riverbed::{ErrorKind, IsolationLevel, ProducerRecord, Store, TopicConfig};

use crate::common;

const PARTITIONS: u32 = 2;

fn topology() -> Topology {
    let b = Builder::new("ssj-app");
    let left = b.stream::<String, String>("left");
    let right = b.stream::<String, String>("right");
    left.left_join_stream(
        &right,
        |l, r| format!("{l}+{}", r.map_or("-", |r| r.as_str())),
        JoinWindows::of_time_difference_and_grace(Duration::from_secs(60), Duration::ZERO),
    )
    .to("out");
    b.build().unwrap()
}

/// Event times are `base() +` small offsets: recent, so the topics' time-based retention
/// keeps them.
fn base() -> i64 {
    static BASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        i64::try_from(now.as_millis()).unwrap()
    })
}

fn send(store: &Store, topic: &str, records: &[(String, String, i64)]) {
    let p = store.producer();
    for (k, v, ts) in records {
        p.send(
            ProducerRecord::new(topic)
                .key(k.as_str())
                .value(v.as_str())
                .timestamp(base() + ts),
        )
        .unwrap();
    }
}

/// Every committed record of `out`: `(key, value, timestamp - base)`, sorted.
fn outputs(store: &Store) -> Vec<(String, String, i64)> {
    let mut out: Vec<_> = common::read_topic(store, "out", IsolationLevel::ReadCommitted)
        .into_iter()
        .map(|r| {
            (
                String::from_utf8(r.key.unwrap()).unwrap(),
                String::from_utf8(r.value.unwrap()).unwrap(),
                r.timestamp - base(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn left_records_from_before_a_restart_join_right_records_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for t in ["left", "right", "out"] {
        store.create_topic(t, TopicConfig::new(PARTITIONS)).unwrap();
    }
    let config = || StreamsConfig::new().exactly_once();
    let lefts: Vec<(String, String, i64)> = (0..8)
        .map(|i| (format!("k{i}"), format!("L{i}"), i * 100))
        .collect();

    let app = App::start(&store, topology(), config()).unwrap();
    send(&store, "left", &lefts);
    common::wait_for("the left records to be processed", || {
        app.metrics().processed_records == lefts.len() as u64
    });
    app.close().unwrap();
    // Every window is open (60 s): nothing joined, nothing emitted alone.
    assert_eq!(outputs(&store), []);

    let app = App::start(&store, topology(), config()).unwrap();
    // Keys 0..6 get a right record within the window, k6 and k7 none. Then a right record far
    // ahead for every key moves stream time past every left window on both partitions: k6
    // and k7 come out alone; the left records that had a pair do not (their flag was
    // restored too).
    let mut rights: Vec<(String, String, i64)> = (0..6)
        .map(|i| (format!("k{i}"), format!("R{i}"), i * 100 + 50))
        .collect();
    rights.extend((0..8).map(|i| (format!("k{i}"), format!("far{i}"), 200_000)));
    send(&store, "right", &rights);
    let mut want: Vec<(String, String, i64)> = (0..6)
        .map(|i| (format!("k{i}"), format!("L{i}+R{i}"), i * 100 + 50))
        .collect();
    want.push(("k6".to_string(), "L6+-".to_string(), 600));
    want.push(("k7".to_string(), "L7+-".to_string(), 700));
    common::wait_for("the joined results", || outputs(&store).len() >= want.len());
    let m = app.metrics();
    app.close().unwrap();
    assert_eq!(outputs(&store), want);
    assert!(
        m.restored_records + m.restored_from_snapshots > 0,
        "the join stores were not restored: {m:?}"
    );
    assert_eq!(m.dropped_records, 0);
}

#[test]
fn streams_that_are_not_co_partitioned_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("left", TopicConfig::new(2)).unwrap();
    store.create_topic("right", TopicConfig::new(3)).unwrap();
    store.create_topic("out", TopicConfig::new(2)).unwrap();
    let e = App::start(&store, topology(), StreamsConfig::new()).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidArgument { .. }), "{e}");
    let msg = e.to_string();
    for part in ["stream-stream join", "\"left\" has 2", "\"right\" has 3"] {
        assert!(msg.contains(part), "{part:?} not in {msg}");
    }
}
