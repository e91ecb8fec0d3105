//! Windowed aggregations (tumbling, hopping, sliding, session), run by the test driver over
//! random out-of-order inputs, against plain in-memory computations of the same windows:
//! store contents, the change stream, and the count of records dropped as late.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use riverbed::streams::{
    Builder, Materialized, SessionWindows, SlidingWindows, TimeWindows, TopologyTestDriver, Window,
    Windowed,
};

use crate::common;

fn key(k: u8) -> String {
    format!("k{k}")
}

/// Replays a table's change stream into the table it describes (`None` deletes).
fn replay<V>(changes: Vec<(Windowed<String>, Option<V>)>) -> BTreeMap<(String, Window), V> {
    let mut m = BTreeMap::new();
    for (k, v) in changes {
        match v {
            Some(v) => m.insert((k.key, k.window), v),
            None => m.remove(&(k.key, k.window)),
        };
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Tumbling and hopping windows: each window's value is its accepted records' values
    /// concatenated in arrival order; a record counts one drop per window of it that has closed
    /// (stream time >= end + grace), as in Kafka; windows leave the store `retention` after
    /// they close.
    #[test]
    fn time_windows_match_the_model(
        records in common::out_of_order_input(),
        size in 40i64..150,
        advance_div in 1i64..4,
        grace in 0i64..200,
        retention in prop::sample::select(vec![0i64, 150, 86_400_000]),
    ) {
        let advance = (size / advance_div).max(1);
        let windows = TimeWindows::of_size_and_grace(
            Duration::from_millis(size as u64),
            Duration::from_millis(grace as u64),
        )
        .advance_by(Duration::from_millis(advance as u64))
        .with_retention(Duration::from_millis(retention as u64));
        let b = Builder::new("tw");
        b.stream::<String, i64>("in")
            .group_by_key()
            .windowed_by(windows)
            .aggregate(String::new, |_k, v, agg| format!("{agg}{v},"), Materialized::named("w"))
            .to_stream()
            .to("out");
        let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
        for (k, v, t) in &records {
            d.pipe_input("in", &key(*k), v, *t).unwrap();
        }

        let mut st = i64::MIN;
        let mut model: BTreeMap<(String, Window), String> = BTreeMap::new();
        let mut updates = 0usize;
        let mut dropped = 0u64;
        for (k, v, t) in &records {
            st = st.max(*t);
            let mut open = Vec::new();
            let mut s = 0;
            while s <= *t {
                if s + size > *t {
                    if s + size + grace > st {
                        open.push(Window::new(s, s + size));
                    } else {
                        // Kafka counts one drop per closed window of the record.
                        dropped += 1;
                    }
                }
                s += advance;
            }
            if !open.is_empty() {
                for w in open {
                    model.entry((key(*k), w)).or_default().push_str(&format!("{v},"));
                    updates += 1;
                }
                model.retain(|(_, w), _| w.end + grace + retention > st);
            }
        }

        let store = d.window_store::<String, String>("w").unwrap();
        let got: BTreeMap<(String, Window), String> = store
            .all()
            .unwrap()
            .into_iter()
            .map(|(k, v)| ((k.key, k.window), v))
            .collect();
        prop_assert_eq!(&got, &model);
        prop_assert_eq!(d.metrics().dropped_records, dropped);
        // A key-value view of a window store is refused, as Kafka's keyValueStore() query type
        // refuses a window store (tests/streams/queries.rs has the cases).
        let kv = d.store::<Windowed<String>, String>("w");
        prop_assert!(
            matches!(
                kv.as_ref().map_err(|e| e.kind()),
                Err(riverbed::ErrorKind::InvalidStateStore { .. })
            ),
            "{:?}",
            kv.map(|_| ())
        );

        let changes = d.read_output::<Windowed<String>, String>("out").unwrap();
        prop_assert_eq!(changes.len(), updates);
        let replayed = replay(changes.into_iter().map(|r| (r.key, Some(r.value))).collect());
        for (k, v) in &model {
            prop_assert_eq!(replayed.get(k), Some(v));
        }

        // Interactive queries: fetch by key and start range.
        for k in 0..3u8 {
            let (from, to) = (size, 3 * size);
            let want: Vec<(Window, String)> = model
                .iter()
                .filter(|((mk, w), _)| *mk == key(k) && w.start >= from && w.start <= to)
                .map(|((_, w), v)| (*w, v.clone()))
                .collect();
            prop_assert_eq!(store.fetch(key(k), from, to).unwrap(), want);
        }
        let all_in_range = store.fetch_all(0, size).unwrap();
        prop_assert!(all_in_range.iter().all(|(w, _)| w.window.start <= size));
        prop_assert_eq!(
            all_in_range.len(),
            model.keys().filter(|(_, w)| w.start <= size).count()
        );
    }

    /// Sliding windows against Kafka's `KStreamSlidingWindowAggregate` written out plainly (its
    /// `processReverse` and `processEarly`, see `kafka_sliding`): the change stream (windows,
    /// values, timestamps, order), the store and the drops.
    #[test]
    fn sliding_windows_match_the_model(
        records in common::out_of_order_input(),
        diff in 0i64..120,
        grace in 0i64..200,
    ) {
        let b = Builder::new("sw");
        b.stream::<String, i64>("in")
            .group_by_key()
            .windowed_by(SlidingWindows::of_time_difference_and_grace(
                Duration::from_millis(diff as u64),
                Duration::from_millis(grace as u64),
            ))
            .aggregate(String::new, |_k, v, agg| format!("{agg}{v},"), Materialized::named("w"))
            .to_stream()
            .to("out");
        let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
        for (k, v, t) in &records {
            d.pipe_input("in", &key(*k), v, *t).unwrap();
        }

        let model = kafka_sliding(&records, diff, grace);
        let got: BTreeMap<(String, Window), String> = d
            .window_store::<String, String>("w")
            .unwrap()
            .all()
            .unwrap()
            .into_iter()
            .map(|(k, v)| ((k.key, k.window), v))
            .collect();
        let want: BTreeMap<(String, Window), String> = model
            .windows
            .iter()
            .map(|((k, s), (v, _))| ((k.clone(), Window::new(*s, s + diff)), v.clone()))
            .collect();
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(d.metrics().dropped_records, model.dropped);
        let changes: Vec<(String, Window, String, i64)> = d
            .read_output::<Windowed<String>, String>("out")
            .unwrap()
            .into_iter()
            .map(|r| (r.key.key, r.key.window, r.value, r.timestamp))
            .collect();
        prop_assert_eq!(changes, model.changes);
    }

    /// Session windows: the sessions of a key are the groups of its accepted records' times
    /// no more than `gap` apart; a record is dropped when the session it would make has closed
    /// (stream time >= end + gap + 1 + grace, Kafka's rule: issue 13 item 8). Counts and sums
    /// per session; the change stream, with `None` for merged-away sessions, replays to the
    /// same sessions.
    #[test]
    fn session_windows_match_the_model(
        records in common::out_of_order_input(),
        gap in 1i64..150,
        grace in 0i64..200,
    ) {
        let b = Builder::new("sess");
        let grouped = b.stream::<String, i64>("in").group_by_key();
        let windows = SessionWindows::of_inactivity_gap_and_grace(
            Duration::from_millis(gap as u64),
            Duration::from_millis(grace as u64),
        );
        grouped
            .windowed_by(windows)
            .count(Materialized::named("counts"))
            .to_stream_with_tombstones()
            .to("count-changes");
        grouped
            .windowed_by(windows)
            .reduce(|a, b| a + b, Materialized::named("sums"))
            .to_stream_with_tombstones()
            .to("sum-changes");
        let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
        for (k, v, t) in &records {
            d.pipe_input("in", &key(*k), v, *t).unwrap();
        }

        // The sessions of a set of times: sorted, split where consecutive times are > gap apart.
        let sessions = |times: &[(i64, i64)]| -> Vec<(Window, i64, i64)> {
            let mut sorted = times.to_vec();
            sorted.sort();
            let mut out: Vec<(Window, i64, i64)> = Vec::new();
            for (t, v) in sorted {
                match out.last_mut() {
                    Some((w, n, s)) if t - w.end <= gap => {
                        w.end = t;
                        *n += 1;
                        *s += v;
                    }
                    _ => out.push((Window::new(t, t), 1, v)),
                }
            }
            out
        };
        let mut st = i64::MIN;
        let mut accepted: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
        let mut dropped = 0u64;
        for (k, v, t) in &records {
            st = st.max(*t);
            let mut with = accepted.get(&key(*k)).cloned().unwrap_or_default();
            with.push((*t, *v));
            let Some((merged, _, _)) =
                sessions(&with).into_iter().find(|(w, _, _)| w.start <= *t && *t <= w.end)
            else {
                unreachable!("a record is in one of the sessions of a set holding it");
            };
            if merged.end + gap + 1 + grace <= st {
                dropped += 2; // by both aggregations
            } else {
                accepted.insert(key(*k), with);
            }
        }
        let mut counts = BTreeMap::new();
        let mut sums = BTreeMap::new();
        for (k, times) in &accepted {
            for (w, n, s) in sessions(times) {
                counts.insert((k.clone(), w), n);
                sums.insert((k.clone(), w), s);
            }
        }

        let read = |name: &str| -> BTreeMap<(String, Window), i64> {
            d.window_store::<String, i64>(name)
                .unwrap()
                .all()
                .unwrap()
                .into_iter()
                .map(|(k, v)| ((k.key, k.window), v))
                .collect()
        };
        prop_assert_eq!(&read("counts"), &counts);
        prop_assert_eq!(&read("sums"), &sums);
        prop_assert_eq!(d.metrics().dropped_records, dropped);
        let count_changes = d.read_output::<Windowed<String>, Option<i64>>("count-changes").unwrap();
        prop_assert_eq!(&replay(count_changes.into_iter().map(|r| (r.key, r.value)).collect()), &counts);
        let sum_changes = d.read_output::<Windowed<String>, Option<i64>>("sum-changes").unwrap();
        prop_assert_eq!(&replay(sum_changes.into_iter().map(|r| (r.key, r.value)).collect()), &sums);

        // find_sessions: the sessions overlapping [from, to].
        let store = d.window_store::<String, i64>("counts").unwrap();
        for (k, _) in accepted.iter().take(1) {
            let want: Vec<(Window, i64)> = counts
                .iter()
                .filter(|((k2, w), _)| k2 == k && w.end >= 100 && w.start <= 400)
                .map(|((_, w), n)| (*w, *n))
                .collect();
            prop_assert_eq!(store.find_sessions(k.clone(), 100, 400).unwrap(), want);
        }
    }
}

/// Bad window specifications are refused by `build`.
#[test]
fn bad_specs_are_refused() {
    let ms = Duration::from_millis;
    let b = Builder::new("bad");
    b.stream::<String, i64>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(ms(10)).advance_by(ms(20)))
        .count(Materialized::unnamed());
    assert!(b.build().unwrap_err().to_string().contains("advance"));

    let b = Builder::new("bad");
    b.stream::<String, i64>("in")
        .group_by_key()
        .windowed_by(SessionWindows::of_inactivity_gap_with_no_grace(ms(0)))
        .count(Materialized::unnamed());
    assert!(b.build().unwrap_err().to_string().contains("gap"));
}

/// What the sliding-window aggregation gives for a sequence of records.
struct SlidingModel {
    /// (key, window start) -> (aggregate, latest timestamp).
    windows: BTreeMap<(String, i64), (String, i64)>,
    /// Every update forwarded: key, window, aggregate, timestamp.
    changes: Vec<(String, Window, String, i64)>,
    dropped: u64,
}

/// Kafka's `KStreamSlidingWindowAggregate` (apache/kafka, streams/src/main/java/org/apache/
/// kafka/streams/kstream/internals/), its `processReverse` and `processEarly` written out
/// plainly: a window `[s, s + d]` is open while `s + d >= stream time - grace`; a record is
/// dropped whole when `t + d` is below that; it updates the stored windows holding it and
/// creates the windows Kafka creates, one drop per closed one. Riverbed's deliberate
/// difference: a window's aggregate and timestamp are those of all accepted records within it
/// (Kafka copies a neighbour window's aggregate and timestamp, which misses a record that
/// arrived after that neighbour had closed), so here a window's content is computed from the
/// accepted records, and "a window's latest timestamp" is that of the accepted records in it.
fn kafka_sliding(records: &[(u8, i64, i64)], d: i64, grace: i64) -> SlidingModel {
    let mut m = SlidingModel {
        windows: BTreeMap::new(),
        changes: Vec::new(),
        dropped: 0,
    };
    let mut accepted: Vec<(String, i64, i64)> = Vec::new();
    let mut st = i64::MIN;
    for (k, v, t) in records {
        let (k, t) = (key(*k), *t);
        st = st.max(t);
        let close = st - grace;
        if t + d < close {
            m.dropped += 1;
            continue;
        }
        accepted.push((k.clone(), t, *v));
        let before = &accepted[..accepted.len() - 1];
        // The latest of the records accepted before this one within [s, s + d].
        let latest = |s: i64| -> Option<i64> {
            before
                .iter()
                .filter(|(k2, u, _)| *k2 == k && *u >= s && *u <= s + d)
                .map(|(_, u, _)| *u)
                .max()
        };
        let content = |s: i64| -> (String, i64) {
            let mine = accepted
                .iter()
                .filter(|(k2, u, _)| *k2 == k && *u >= s && *u <= s + d);
            let agg = mine.clone().map(|(_, _, v)| format!("{v},")).collect();
            (agg, mine.map(|(_, u, _)| *u).max().unwrap())
        };
        let put = |m: &mut SlidingModel, s: i64| {
            let (agg, ts) = content(s);
            m.windows.insert((k.clone(), s), (agg.clone(), ts));
            m.changes.push((k.clone(), Window::new(s, s + d), agg, ts));
        };
        // updateWindowAndForward
        let update = |m: &mut SlidingModel, s: i64| {
            if s + d >= close {
                put(m, s);
            } else {
                m.dropped += 1;
            }
        };
        let stored: Vec<i64> = m
            .windows
            .range((k.clone(), 0)..=(k.clone(), t + 1))
            .map(|((_, s), _)| *s)
            .filter(|s| t < d || *s >= t - 2 * d)
            .collect();
        let starts: BTreeSet<i64> = stored.iter().copied().collect();
        if t < d {
            // processEarly
            let mut combined = false;
            let mut right = None;
            let mut right_exists = false;
            let mut previous = None;
            for s in stored {
                if s == 0 {
                    combined = true;
                    previous = latest(0).filter(|l| *l < t);
                } else if s <= t {
                    right = latest(s);
                    update(&mut m, s);
                } else {
                    right_exists = true;
                }
            }
            if right.is_none() && combined {
                right = latest(0);
            }
            if !right_exists && right.is_some_and(|l| l > t) {
                put(&mut m, t + 1);
            }
            if let Some(p) = previous {
                if !starts.contains(&(p + 1)) {
                    update(&mut m, p + 1);
                }
            }
            update(&mut m, 0);
        } else {
            // processReverse
            let mut right: Option<Option<i64>> = None;
            let (mut left_exists, mut right_exists) = (false, false);
            let mut previous = None;
            let mut done = false;
            for s in stored.into_iter().rev() {
                if s == t + 1 {
                    right_exists = true;
                } else if s + d > t {
                    if right.is_none() {
                        right = Some(latest(s));
                    }
                    update(&mut m, s);
                } else if s + d == t {
                    left_exists = true;
                    update(&mut m, s);
                    match latest(s) {
                        Some(l) if l >= t => {
                            done = true;
                            break;
                        }
                        l => previous = l,
                    }
                } else {
                    previous = latest(s);
                    break;
                }
            }
            if done {
                continue;
            }
            if let Some(p) = previous {
                if !starts.contains(&(p + 1)) && p + 1 + d >= t {
                    update(&mut m, p + 1);
                }
            }
            if !left_exists {
                update(&mut m, t - d);
            }
            if !right_exists && right.flatten().is_some_and(|l| l > t) {
                put(&mut m, t + 1);
            }
        }
    }
    m
}
