//! A suppression buffer keeps each buffered record's own headers (Kafka keeps the record
//! context with the buffered record): whatever emits an entry (stream time passing its due
//! time while another record is processed, a stream-time punctuation, or emit-early when the
//! buffer is full), the forwarded record carries the headers of its key's last update, not
//! those of the record being processed then. Checked against models in the test driver, and
//! across an `App` restart that restores the buffer from its checkpoint or its changelog. A
//! buffer entry of the unversioned layout (FORMAT.md 8.6) stops the application with an error
//! naming the buffer.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use riverbed::streams::{
    App, BufferConfig, Builder, Headers, Materialized, Serde, StreamsConfig, Suppressed,
    TimeWindows, Topology, TopologyTestDriver, Window, Windowed,
};
use riverbed::{
    CleanupPolicy, ConsumerConfig, OffsetReset, ProducerRecord, Store, TopicConfig, TopicPartition,
};

use crate::common;

fn headers_of(pairs: &[(&str, &str)]) -> Headers {
    pairs.iter().copied().collect()
}

/// The headers the tests give input record number `i`: its own `seq`, none for every fourth
/// (so that "no headers" is buffered and emitted too).
fn seq_headers(i: usize) -> Headers {
    if i % 4 == 3 {
        Headers::new()
    } else {
        headers_of(&[("seq", &i.to_string()), ("src", "test")])
    }
}

fn key(k: u8) -> String {
    format!("k{k}")
}

/// Windowed counts of `in`, suppressed until their window closes, to `final`.
fn final_counts(app_id: &str, size: i64, advance: i64, grace: i64) -> Topology {
    let b = Builder::new(app_id);
    b.stream::<String, i64>("in")
        .group_by_key()
        .windowed_by(
            TimeWindows::of_size_and_grace(
                Duration::from_millis(size as u64),
                Duration::from_millis(grace as u64),
            )
            .advance_by(Duration::from_millis(advance as u64)),
        )
        .count(Materialized::named("counts"))
        .suppress(Suppressed::until_window_closes().with_name("final-buffer"))
        .to_stream()
        .to("final");
    b.build().unwrap()
}

type WindowFinal = ((String, Window), i64, Headers);

fn read_finals(d: &mut TopologyTestDriver) -> Vec<WindowFinal> {
    d.read_output_with_headers::<Windowed<String>, i64>("final")
        .unwrap()
        .into_iter()
        .map(|(r, h)| ((r.key.key, r.key.window), r.value, h))
        .collect()
}

#[test]
fn final_results_carry_the_headers_of_their_last_update_not_of_the_closing_record() {
    let mut d = TopologyTestDriver::new(final_counts("finals", 100, 100, 0)).unwrap();
    let inputs = [
        ("a", 10, headers_of(&[("id", "a-first")])),
        ("b", 20, headers_of(&[("id", "b-only"), ("id", "twice")])),
        ("a", 70, headers_of(&[("id", "a-last")])),
        ("c", 80, headers_of(&[("id", "c-first")])),
        ("c", 90, Headers::new()),
    ];
    for (k, ts, h) in &inputs {
        d.pipe_input_with_headers("in", &k.to_string(), &0i64, *ts, h.clone())
            .unwrap();
    }
    assert!(read_finals(&mut d).is_empty(), "no window has closed yet");
    // Stream time 150 closes [0, 100); the closing record has headers of its own.
    d.pipe_input_with_headers(
        "in",
        &"z".to_string(),
        &0i64,
        150,
        headers_of(&[("id", "closer")]),
    )
    .unwrap();
    let w = Window::new(0, 100);
    assert_eq!(
        read_finals(&mut d),
        [
            (("a".to_string(), w), 2, headers_of(&[("id", "a-last")])),
            (
                ("b".to_string(), w),
                1,
                headers_of(&[("id", "b-only"), ("id", "twice")])
            ),
            // c's last update had none: none, even though the closing record has some.
            (("c".to_string(), w), 2, Headers::new()),
        ]
    );
}

/// What `final_counts` emits: for each closed window, its count and the headers of the last
/// record counted in it; windows keyed `(key, window)`.
#[derive(Default)]
struct WindowModel {
    open: BTreeMap<(String, Window), (i64, Headers)>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Over random out-of-order input (late records dropped, hopping or tumbling windows), each
    /// window's final result carries the headers of the last record counted in it.
    #[test]
    fn final_results_carry_their_last_updates_headers(
        records in common::out_of_order_input(),
        size in 40i64..150,
        hopping in any::<bool>(),
        grace in 0i64..200,
    ) {
        let advance = if hopping { (size / 2).max(1) } else { size };
        let mut d = TopologyTestDriver::new(final_counts("finals", size, advance, grace)).unwrap();
        let mut model = WindowModel::default();
        let mut emitted: BTreeMap<(String, Window), (i64, Headers)> = BTreeMap::new();
        let mut st = i64::MIN;
        for (i, (k, _, t)) in records.iter().enumerate() {
            let h = seq_headers(i);
            d.pipe_input_with_headers("in", &key(*k), &1i64, *t, h.clone()).unwrap();
            st = st.max(*t);
            let mut s = 0;
            while s <= *t {
                if s + size > *t && s + size + grace > st {
                    let e = model.open.entry((key(*k), Window::new(s, s + size))).or_default();
                    *e = (e.0 + 1, h.clone());
                }
                s += advance;
            }
            for (w, n, h) in read_finals(&mut d) {
                prop_assert!(emitted.insert(w, (n, h)).is_none());
            }
        }
        let closed: BTreeMap<(String, Window), (i64, Headers)> = model
            .open
            .into_iter()
            .filter(|(w, _)| w.1.end + grace <= st)
            .collect();
        prop_assert_eq!(emitted, closed);
    }
}

const LIMIT_MS: i64 = 100;

/// `scores` with negative values filtered out, summed per key, suppressed for `LIMIT_MS` of
/// stream time, to `out`. A filtered record moves stream time without reaching the buffer, so
/// what it makes due goes out from the buffer's stream-time punctuation.
fn rate_limited(buffer: BufferConfig) -> Topology {
    let b = Builder::new("limited");
    b.stream::<String, i64>("scores")
        .filter(|_, v| *v >= 0)
        .group_by_key()
        .reduce(|a, b| a + b, Materialized::named("sums"))
        .suppress(
            Suppressed::until_time_limit(Duration::from_millis(LIMIT_MS as u64))
                .with_buffer(buffer),
        )
        .to_stream()
        .to("out");
    b.build().unwrap()
}

type Emitted = (String, i64, i64, Headers);

fn read_limited(d: &mut TopologyTestDriver) -> Vec<Emitted> {
    d.read_output_with_headers::<String, i64>("out")
        .unwrap()
        .into_iter()
        .map(|(r, h)| (r.key, r.value, r.timestamp, h))
        .collect()
}

#[test]
fn a_time_limited_entry_keeps_its_headers_when_a_record_or_a_punctuation_evicts_it() {
    let mut d = TopologyTestDriver::new(rate_limited(BufferConfig::unbounded())).unwrap();
    let send = |d: &mut TopologyTestDriver, k: &str, v: i64, ts: i64, h: Headers| {
        d.pipe_input_with_headers("scores", &k.to_string(), &v, ts, h)
            .unwrap()
    };
    send(&mut d, "a", 1, 0, headers_of(&[("u", "a0")]));
    send(&mut d, "a", 2, 10, headers_of(&[("u", "a1")]));
    send(&mut d, "b", 5, 20, headers_of(&[("u", "b0")]));
    // c@100 is processed by the buffer and makes a (due 100) due: a goes out with a1's
    // headers and timestamp, not c's.
    send(&mut d, "c", 7, 100, headers_of(&[("u", "c0")]));
    assert_eq!(
        read_limited(&mut d),
        [("a".to_string(), 3, 10, headers_of(&[("u", "a1")]))]
    );
    // A filtered record moves stream time to 200 without reaching the buffer: b (due 120) and
    // c (due 200) go out from the punctuation, whose context has no headers, with their own.
    send(&mut d, "x", -1, 200, headers_of(&[("u", "filtered")]));
    assert_eq!(
        read_limited(&mut d),
        [
            ("b".to_string(), 5, 20, headers_of(&[("u", "b0")])),
            ("c".to_string(), 7, 100, headers_of(&[("u", "c0")])),
        ]
    );
}

#[test]
fn emit_early_when_full_forwards_the_evicted_entry_with_its_own_headers() {
    let mut d = TopologyTestDriver::new(rate_limited(
        BufferConfig::max_records(2).emit_early_when_full(),
    ))
    .unwrap();
    for (k, v, ts, h) in [
        ("a", 1i64, 0, headers_of(&[("u", "a0")])),
        ("b", 2, 1, headers_of(&[("u", "b0")])),
        ("a", 3, 2, headers_of(&[("u", "a1"), ("more", "x")])),
    ] {
        d.pipe_input_with_headers("scores", &k.to_string(), &v, ts, h)
            .unwrap();
    }
    assert!(read_limited(&mut d).is_empty(), "two keys fit");
    // A third key overflows the buffer: a, due first, goes out early with a1's headers.
    d.pipe_input_with_headers(
        "scores",
        &"c".to_string(),
        &9i64,
        3,
        headers_of(&[("u", "c0")]),
    )
    .unwrap();
    assert_eq!(
        read_limited(&mut d),
        [(
            "a".to_string(),
            4,
            2,
            headers_of(&[("u", "a1"), ("more", "x")])
        )]
    );
}

#[test]
fn a_byte_limit_counts_the_buffered_headers() {
    // Without headers an entry is 1 (key) + 17 + 1 (no headers) + 9 (the change) = 28 bytes;
    // a 20-byte header makes it 51.
    let mut d = TopologyTestDriver::new(rate_limited(
        BufferConfig::max_bytes(40).emit_early_when_full(),
    ))
    .unwrap();
    d.pipe_input_with_headers("scores", &"a".to_string(), &1i64, 0, Headers::new())
        .unwrap();
    assert!(read_limited(&mut d).is_empty(), "28 bytes fit in 40");
    let big = headers_of(&[("h", &"x".repeat(20))]);
    d.pipe_input_with_headers("scores", &"b".to_string(), &2i64, 1, big.clone())
        .unwrap();
    // 28 + 51 bytes do not fit, nor do 51: both go out early, b with its headers.
    assert_eq!(
        read_limited(&mut d),
        [
            ("a".to_string(), 1, 0, Headers::new()),
            ("b".to_string(), 2, 1, big)
        ]
    );
}

/// What `rate_limited` emits: buffered keys with due time, sum, timestamp and headers of
/// their last update, emptied in due order when due or when more than `max_records` are held.
fn limited_model(updates: &[(u8, i64, i64)], max_records: usize) -> Vec<Emitted> {
    let mut sums: BTreeMap<String, i64> = BTreeMap::new();
    let mut due_of: BTreeMap<String, i64> = BTreeMap::new();
    let mut buffer: BTreeMap<(i64, String), (i64, i64, Headers)> = BTreeMap::new();
    let mut stream_time = i64::MIN;
    // The sum's updates carry the latest timestamp of the key's records (KIP-258).
    let mut latest: BTreeMap<String, i64> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, &(k, v, ts)) in updates.iter().enumerate() {
        stream_time = stream_time.max(ts);
        if v >= 0 {
            let key = key(k);
            let sum = sums.entry(key.clone()).or_default();
            *sum += v;
            let ts = *latest
                .entry(key.clone())
                .and_modify(|l| *l = (*l).max(ts))
                .or_insert(ts);
            let due = *due_of.entry(key.clone()).or_insert(ts + LIMIT_MS);
            buffer.insert((due, key), (*sum, ts, seq_headers(i)));
        }
        while let Some(((due, _), _)) = buffer.first_key_value() {
            if *due > stream_time && buffer.len() <= max_records {
                break;
            }
            let ((_, key), (sum, ts, h)) = buffer.pop_first().unwrap();
            due_of.remove(&key);
            out.push((key, sum, ts, h));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random updates (some filtered, so punctuations evict too) through a bounded buffer that
    /// emits early: every emitted record has the headers of its key's last update.
    #[test]
    fn time_limited_and_early_emits_match_the_model_with_headers(
        updates in common::timed_records(6, -10..50, -40..90, 0..60),
        max_records in 1usize..6,
    ) {
        let mut d = TopologyTestDriver::new(rate_limited(
            BufferConfig::max_records(max_records).emit_early_when_full(),
        ))
        .unwrap();
        for (i, &(k, v, ts)) in updates.iter().enumerate() {
            d.pipe_input_with_headers("scores", &key(k), &v, ts, seq_headers(i)).unwrap();
        }
        prop_assert_eq!(read_limited(&mut d), limited_model(&updates, max_records));
    }
}

/// Every record of `topic` (one partition) with its headers: `(key, value, headers)`.
fn read_with_headers(store: &Store, topic: &str) -> Vec<(Vec<u8>, Vec<u8>, Headers)> {
    let mut c = store
        .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    let tp = TopicPartition::new(topic, 0);
    c.assign(std::slice::from_ref(&tp)).unwrap();
    let end = c.end_offsets(std::slice::from_ref(&tp)).unwrap()[0].1;
    let mut out = Vec::new();
    while c.position(&tp).unwrap() < end {
        for r in c.poll(Duration::from_millis(50)).unwrap().iter() {
            let mut h = Headers::new();
            for header in r.headers() {
                let (k, v) = header.unwrap();
                h.add_nullable(k, v.map(<[u8]>::to_vec));
            }
            out.push((
                r.key().unwrap_or_default().to_vec(),
                r.value().unwrap_or_default().to_vec(),
                h,
            ));
        }
    }
    out
}

/// Event times are `base() +` the test's numbers: recent, so time-based retention keeps them,
/// and a multiple of the window size.
fn base() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(now.as_millis()).unwrap() / 1000 * 1000
}

fn send(store: &Store, base: i64, k: &str, ts: i64, h: &Headers) {
    let mut r = ProducerRecord::new("in")
        .key(k)
        .value(1i64.encode().unwrap())
        .timestamp(base + ts);
    for (hk, hv) in h.iter() {
        r = r.header(hk, hv.unwrap_or_default());
    }
    store.producer().send(r).unwrap();
}

const BUFFER_CHANGELOG: &str = "restarted-final-buffer-changelog";

#[test]
fn buffered_headers_survive_a_restart_from_the_checkpoint_or_the_changelog() {
    for from_checkpoint in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for t in ["in", "final"] {
            store.create_topic(t, TopicConfig::new(1)).unwrap();
        }
        let config = || StreamsConfig::new().commit_interval(Duration::from_millis(10));
        let topology = || final_counts("restarted", 1000, 1000, 0);
        let base = base();
        let inputs = [
            ("a", 100, headers_of(&[("id", "a-first")])),
            ("b", 200, headers_of(&[("id", "b-last"), ("n", "")])),
            ("a", 300, headers_of(&[("id", "a-last")])),
        ];
        let app = App::start(&store, topology(), config()).unwrap();
        for (k, ts, h) in &inputs {
            send(&store, base, k, *ts, h);
        }
        common::wait_for_apps("the buffered updates", &[&app], || {
            app.metrics().processed_records >= inputs.len() as u64
        });
        app.close().unwrap();
        assert!(read_with_headers(&store, "final").is_empty());
        let snapshot = dir
            .path()
            .join("streams")
            .join(format!("{BUFFER_CHANGELOG}-0.checkpoint"));
        assert!(
            snapshot.exists(),
            "a clean close writes the buffer's snapshot"
        );
        if !from_checkpoint {
            std::fs::remove_file(&snapshot).unwrap();
        }

        // Restored, then closed by a record that has headers of its own.
        let app = App::start(&store, topology(), config()).unwrap();
        send(&store, base, "z", 1500, &headers_of(&[("id", "closer")]));
        common::wait_for_apps("the final results", &[&app], || {
            read_with_headers(&store, "final").len() >= 2
        });
        app.close().unwrap();
        let finals: Vec<(String, i64, Headers)> = read_with_headers(&store, "final")
            .into_iter()
            .map(|(k, v, h)| {
                let k = Windowed::<String>::decode(&k).unwrap();
                assert_eq!(k.window.start, base);
                (k.key, i64::decode(&v).unwrap(), h)
            })
            .collect();
        assert_eq!(
            finals,
            [
                ("a".to_string(), 2, headers_of(&[("id", "a-last")])),
                (
                    "b".to_string(),
                    1,
                    headers_of(&[("id", "b-last"), ("n", "")])
                ),
            ],
            "from_checkpoint: {from_checkpoint}"
        );
    }
}

#[test]
fn an_entry_of_the_unversioned_layout_stops_the_app_with_an_error_naming_the_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for t in ["in", "final"] {
        store.create_topic(t, TopicConfig::new(1)).unwrap();
    }
    // The buffer's changelog as an earlier build wrote it: due time (i64), timestamp (i64),
    // Change<i64> (flags 1: new value only; the value) — no version byte, no headers.
    store
        .create_topic(
            BUFFER_CHANGELOG,
            TopicConfig::new(1).cleanup_policy(CleanupPolicy::Compact),
        )
        .unwrap();
    let base = base();
    let mut old_entry = Vec::new();
    old_entry.extend((base + 1000).encode().unwrap());
    old_entry.extend((base + 300).encode().unwrap());
    old_entry.push(1);
    old_entry.extend(2i64.encode().unwrap());
    let key = Windowed::new("a".to_string(), Window::new(base, base + 1000));
    let p = store.producer();
    p.send(
        ProducerRecord::new(BUFFER_CHANGELOG)
            .key(key.encode().unwrap())
            .value(old_entry),
    )
    .unwrap();
    p.flush().unwrap();

    let app = App::start(
        &store,
        final_counts("restarted", 1000, 1000, 0),
        StreamsConfig::new(),
    )
    .unwrap();
    // The task is made (and its buffer restored) once the thread joins the group and polls.
    send(&store, base, "z", 1500, &headers_of(&[("id", "closer")]));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while app.is_running() {
        assert!(std::time::Instant::now() < deadline, "the app kept running");
        std::thread::sleep(Duration::from_millis(5));
    }
    let err = app.close().unwrap_err().to_string();
    assert!(
        err.contains(
            "corrupt data at byte 0: expected an entry of layout version 1 of \
                          suppression buffer \"final-buffer\""
        ) && err.contains("found layout version 0"),
        "{err}"
    );
    assert!(read_with_headers(&store, "final").is_empty());
}
