//! Bounded suppression buffers (`BufferConfig`): `emit_early_when_full` against a model of the
//! buffer over random updates; `shut_down_when_full` fails the update that would overflow (in
//! the test driver and in a running `App`, which stops without committing it);
//! `until_window_closes` refuses to emit early; a byte limit counts keys and entries.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use riverbed::streams::{
    App, BufferConfig, Builder, Materialized, Serde, StreamsConfig, Suppressed, TimeWindows,
    TopologyTestDriver,
};
use riverbed::{ConsumerConfig, ErrorKind, ProducerRecord, Store, TopicConfig, TopicPartition};

use crate::common;

const LIMIT_MS: i64 = 100;

fn rate_limited(buffer: BufferConfig) -> riverbed::streams::Topology {
    let b = Builder::new("limited");
    b.table::<String, i64>("scores", Materialized::named("scores"))
        .suppress(
            Suppressed::until_time_limit(Duration::from_millis(LIMIT_MS as u64))
                .with_buffer(buffer),
        )
        .to_stream()
        .to("out");
    b.build().unwrap()
}

/// What the suppression emits, computed the plain way: a map of buffered keys with their due
/// time, emptied in due order whenever something is due or the buffer holds too many keys.
fn model(updates: &[(u8, i64, i64)], max_records: usize) -> Vec<(String, i64, i64)> {
    let mut due_of: BTreeMap<String, i64> = BTreeMap::new();
    let mut buffer: BTreeMap<(i64, String), (i64, i64)> = BTreeMap::new();
    let mut stream_time = i64::MIN;
    let mut out = Vec::new();
    for &(k, v, ts) in updates {
        let key = format!("k{k}");
        stream_time = stream_time.max(ts);
        let due = *due_of.entry(key.clone()).or_insert(ts + LIMIT_MS);
        buffer.insert((due, key), (ts, v));
        while let Some(((due, _), _)) = buffer.first_key_value() {
            if *due > stream_time && buffer.len() <= max_records {
                break;
            }
            let ((_, key), (ts, v)) = buffer.pop_first().unwrap();
            due_of.remove(&key);
            out.push((key, v, ts));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn emit_early_when_full_matches_the_model(
        updates in common::timed_records(6, -50..50, -40..90, 0..60),
        max_records in 1usize..5,
    ) {
        let mut d = TopologyTestDriver::new(rate_limited(
            BufferConfig::max_records(max_records).emit_early_when_full(),
        ))
        .unwrap();
        for &(k, v, ts) in &updates {
            d.pipe_input("scores", &format!("k{k}"), &v, ts).unwrap();
        }
        let got: Vec<(String, i64, i64)> = d
            .read_output::<String, i64>("out")
            .unwrap()
            .into_iter()
            .map(|r| (r.key, r.value, r.timestamp))
            .collect();
        prop_assert_eq!(got, model(&updates, max_records));
    }
}

#[test]
fn shut_down_when_full_fails_the_overflowing_update() {
    let mut d = TopologyTestDriver::new(rate_limited(BufferConfig::max_records(2))).unwrap();
    d.pipe_input("scores", &"a".to_string(), &1i64, 0).unwrap();
    d.pipe_input("scores", &"b".to_string(), &1i64, 1).unwrap();
    // Updating a buffered key does not grow the buffer.
    d.pipe_input("scores", &"a".to_string(), &2i64, 2).unwrap();
    let err = d
        .pipe_input("scores", &"c".to_string(), &1i64, 3)
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::StreamsProcessing { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("is full") && text.contains("limit 2 keys"),
        "{text}"
    );
    assert!(d.read_output::<String, i64>("out").unwrap().is_empty());
}

#[test]
fn byte_limit_counts_keys_and_entries() {
    // Each buffered entry: 1-byte key + 17 bytes (version, due time, timestamp) + 1 byte for no
    // headers + the change (new and old value).
    let mut sizes = Vec::new();
    for limit in [1usize, 40, 1000] {
        let mut d = TopologyTestDriver::new(rate_limited(
            BufferConfig::max_bytes(limit).emit_early_when_full(),
        ))
        .unwrap();
        for (i, k) in ["a", "b", "c"].into_iter().enumerate() {
            d.pipe_input("scores", &k.to_string(), &7i64, i as i64)
                .unwrap();
        }
        sizes.push(d.read_output::<String, i64>("out").unwrap().len());
    }
    // 1 byte: nothing fits, every update goes out at once; 1000 bytes: all three wait for the
    // time limit; 40 bytes: fewer than three fit.
    assert_eq!(sizes[0], 3);
    assert_eq!(sizes[2], 0);
    assert!(sizes[1] > 0 && sizes[1] < 3, "{sizes:?}");
}

#[test]
fn until_window_closes_refuses_to_emit_early() {
    let b = Builder::new("finals");
    b.stream::<String, i64>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_secs(60),
            Duration::ZERO,
        ))
        .count(Materialized::named("counts"))
        .suppress(
            Suppressed::until_window_closes()
                .with_buffer(BufferConfig::max_records(10).emit_early_when_full()),
        )
        .to_stream()
        .to("out");
    let err = b.build().unwrap_err();
    assert!(err.to_string().contains("cannot emit early"), "{err}");
}

#[test]
fn a_full_buffer_stops_a_running_app_without_committing_the_update() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for t in ["scores", "out"] {
        store.create_topic(t, TopicConfig::new(1)).unwrap();
    }
    let p = store.producer();
    for (k, ts) in [("a", 0), ("b", 1), ("c", 2)] {
        p.send(
            ProducerRecord::new("scores")
                .key(k)
                .value(5i64.encode().unwrap())
                .timestamp(ts),
        )
        .unwrap();
    }
    p.flush().unwrap();
    let app = App::start(
        &store,
        rate_limited(BufferConfig::max_records(2).shut_down_when_full()),
        StreamsConfig::new().commit_interval(Duration::from_millis(10)),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.is_running() {
        assert!(Instant::now() < deadline, "the app kept running");
        std::thread::sleep(Duration::from_millis(5));
    }
    let err = app.close().unwrap_err();
    assert!(err.to_string().contains("is full"), "{err}");
    // The failed update was not committed: the group's position is before "c".
    let consumer = store.consumer(ConsumerConfig::new("limited")).unwrap();
    let committed = consumer
        .committed(&TopicPartition::new("scores", 0))
        .unwrap()
        .map(|o| o.offset);
    assert!(committed.is_none_or(|o| o <= 2), "{committed:?}");
}
