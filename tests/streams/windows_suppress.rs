//! `suppress` over random out-of-order inputs: `until_window_closes` emits exactly one final
//! result per window (carrying the latest timestamp of its records), only once stream time
//! reaches window end + grace, and every closed window has been emitted; `until_time_limit`
//! matches a model of the rate limit. Also: timestamp extractors drive windows, and
//! `until_window_closes` needs a windowed table. A table downstream of a suppression sees the
//! previous forwarded value with each update.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use riverbed::streams::{
    Builder, Consumed, Materialized, SessionWindows, Suppressed, TimeWindows, TopologyTestDriver,
    Window, Windowed,
};

use crate::common;

fn key(k: u8) -> String {
    format!("k{k}")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn until_window_closes_emits_each_final_result_once(
        records in common::out_of_order_input(),
        size in 40i64..150,
        hopping in any::<bool>(),
        grace in 0i64..200,
    ) {
        let advance = if hopping { (size / 2).max(1) } else { size };
        let b = Builder::new("final");
        b.stream::<String, i64>("in")
            .group_by_key()
            .windowed_by(
                TimeWindows::of_size_and_grace(
                    Duration::from_millis(size as u64),
                    Duration::from_millis(grace as u64),
                )
                .advance_by(Duration::from_millis(advance as u64)),
            )
            .reduce(|a, b| a + b, Materialized::named("sums"))
            .suppress(Suppressed::until_window_closes())
            .to_stream()
            .to("final");
        let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();

        let mut st = i64::MIN;
        // Per window: the sum and the latest timestamp of its records, which the final result
        // carries (its last update's, KIP-259).
        let mut model: BTreeMap<(String, Window), (i64, i64)> = BTreeMap::new();
        let mut emitted: BTreeMap<(String, Window), (i64, i64)> = BTreeMap::new();
        for (k, v, t) in &records {
            d.pipe_input("in", &key(*k), v, *t).unwrap();
            st = st.max(*t);
            let mut s = 0;
            while s <= *t {
                if s + size > *t && s + size + grace > st {
                    let row = model.entry((key(*k), Window::new(s, s + size))).or_insert((0, *t));
                    row.0 += v;
                    row.1 = row.1.max(*t);
                }
                s += advance;
            }
            for r in d.read_output::<Windowed<String>, i64>("final").unwrap() {
                let w = (r.key.key.clone(), r.key.window);
                // Only once the window has closed, and only once.
                prop_assert!(r.key.window.end + grace <= st, "{:?} emitted early at {}", w, st);
                prop_assert!(
                    emitted.insert(w.clone(), (r.value, r.timestamp)).is_none(),
                    "{:?} emitted twice",
                    w
                );
            }
            // Every closed window has been emitted, with its final value and timestamp.
            for (w, final_result) in &model {
                if w.1.end + grace <= st {
                    prop_assert_eq!(emitted.get(w), Some(final_result));
                }
            }
        }
        prop_assert_eq!(emitted.len(), model.keys().filter(|w| w.1.end + grace <= st).count());
    }

    #[test]
    fn until_time_limit_matches_the_model(records in common::out_of_order_input(), limit in 0i64..250) {
        let b = Builder::new("limited");
        let limited = b
            .stream::<String, i64>("in")
            .group_by_key()
            .aggregate(|| 0, |_k, v, s| s + v, Materialized::named("sums"))
            .suppress(Suppressed::until_time_limit(Duration::from_millis(limit as u64)));
        limited.to_stream().to("limited");
        // A table downstream of the suppression sees each forwarded update with the value
        // forwarded before it (its subtractor takes that one away again).
        limited
            .group_by(|_k, v| ("all".to_string(), *v))
            .reduce(|a, b| a + b, |a, b| a - b, Materialized::named("total"));
        let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
        for (k, v, t) in &records {
            d.pipe_input("in", &key(*k), v, *t).unwrap();
        }

        // key -> (due, latest sum, latest timestamp); sums per key.
        let mut buffer: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
        let mut sums: BTreeMap<String, i64> = BTreeMap::new();
        let mut want = Vec::new();
        let mut st = i64::MIN;
        // The aggregate's updates carry the latest timestamp of the key's records (KIP-258):
        // the buffer times and forwards them with that.
        let mut latest: BTreeMap<String, i64> = BTreeMap::new();
        for (k, v, t) in &records {
            st = st.max(*t);
            let sum = sums.entry(key(*k)).or_default();
            *sum += v;
            let l = latest.entry(key(*k)).or_insert(*t);
            *l = (*l).max(*t);
            let t = &*l;
            let due = buffer.get(&key(*k)).map_or(t + limit, |e| e.0);
            buffer.insert(key(*k), (due, *sum, *t));
            let mut due_now: Vec<(i64, String)> = buffer
                .iter()
                .filter(|(_, e)| e.0 <= st)
                .map(|(k, e)| (e.0, k.clone()))
                .collect();
            due_now.sort();
            for (_, k) in due_now {
                if let Some((_, s, ts)) = buffer.remove(&k) {
                    want.push((k, s, ts));
                }
            }
        }
        let got: Vec<(String, i64, i64)> = d
            .read_output::<String, i64>("limited")
            .unwrap()
            .into_iter()
            .map(|r| (r.key, r.value, r.timestamp))
            .collect();
        let last: BTreeMap<&String, i64> = want.iter().map(|(k, s, _)| (k, *s)).collect();
        let total = d.store::<String, i64>("total").unwrap().get("all").unwrap();
        prop_assert_eq!(total, (!last.is_empty()).then(|| last.values().sum::<i64>()));
        prop_assert_eq!(got, want);
    }
}

/// Session windows with `until_window_closes`: a merged-away session that was never emitted
/// does not come out at all (Kafka drops final results' tombstones, issue 13 item 9); the
/// merged session comes out once, when stream time passes its end + gap + grace.
#[test]
fn suppressed_sessions_emit_once_each() {
    let b = Builder::new("sessions");
    b.stream::<String, i64>("in")
        .group_by_key()
        .windowed_by(SessionWindows::of_inactivity_gap_and_grace(
            Duration::from_millis(10),
            Duration::from_millis(20),
        ))
        .count(Materialized::named("s"))
        .suppress(Suppressed::until_window_closes())
        .to_stream_with_tombstones()
        .to("out");
    let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let a = "a".to_string();
    for t in [0, 18, 9, 100] {
        d.pipe_input("in", &a, &1i64, t).unwrap();
    }
    let out: Vec<(Window, Option<i64>)> = d
        .read_output::<Windowed<String>, Option<i64>>("out")
        .unwrap()
        .into_iter()
        .map(|r| (r.key.window, r.value))
        .collect();
    // 9 merges [0,0] and [18,18] into [0,18] (which closes at 18 + 10 + 1 + 20 = 49); the
    // tombstones of [0,0] and [18,18], never emitted, are dropped.
    assert_eq!(out, [(Window::new(0, 18), Some(3))]);
    assert_eq!(d.metrics().dropped_records, 0);
}

/// A timestamp extractor sets the event time that windows, stream time and outputs go by.
#[test]
fn timestamp_extractor_drives_windows() {
    let b = Builder::new("extract");
    b.stream_with::<String, i64>(
        "in",
        Consumed::with_timestamp_extractor(|_k, v: &i64, _record_ts| *v),
    )
    .group_by_key()
    .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(
        100,
    )))
    .count(Materialized::named("c"))
    .to_stream()
    .to("out");
    let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let k = "k".to_string();
    // Record timestamps are all 0; the values are the event times.
    for v in [10i64, 150, 20, 160, 260] {
        d.pipe_input("in", &k, &v, 0).unwrap();
    }
    let store = d.window_store::<String, i64>("c").unwrap();
    let got: Vec<(i64, i64)> = store
        .fetch("k", 0, 1000)
        .unwrap()
        .into_iter()
        .map(|(w, n)| (w.start, n))
        .collect();
    // 20 arrives after stream time 150 passed [0, 100): dropped.
    assert_eq!(got, [(0, 1), (100, 2), (200, 1)]);
    assert_eq!(d.metrics().dropped_records, 1);
    let stamps: Vec<i64> = d
        .read_output::<Windowed<String>, i64>("out")
        .unwrap()
        .iter()
        .map(|r| r.timestamp)
        .collect();
    assert_eq!(stamps, [10, 150, 160, 260]);
}

#[test]
fn until_window_closes_needs_a_windowed_table() {
    let b = Builder::new("bad");
    b.stream::<String, i64>("in")
        .group_by_key()
        .count(Materialized::named("c"))
        .suppress(Suppressed::until_window_closes());
    let e = b.build().unwrap_err();
    assert!(
        matches!(e.kind(), riverbed::ErrorKind::InvalidArgument(_)),
        "{e}"
    );
}
