//! Session windows against Kafka Streams' own unit tests (apache/kafka,
//! `streams/src/test/java/org/apache/kafka/streams/...`), case by case, through the test driver.
//! Each test names the Kafka file and test it translates. Kafka's tests that these follow run
//! with the record cache disabled, as Riverbed (which has none) always is; Kafka's `toStream`
//! forwards tombstones, so the outputs here go through `to_stream_with_tombstones`.
//!
//! Not translated: the null-key cases (a Riverbed key is never null), the null-argument cases
//! (Rust's types rule them out), negative gaps and graces (a `Duration` is never negative), the
//! `EmitStrategy.onWindowClose()` variants (Riverbed has no emit strategy; its
//! `suppress(until_window_closes)` gives final results, tested in `tests/streams/suppress_kafka.rs`)
//! and the caching-enabled variants (Riverbed has no record cache).

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use riverbed::streams::{
    Builder, KTable, Materialized, SessionWindows, TopologyTestDriver, Window, Windowed,
};

use crate::common;

const GAP_MS: i64 = 5 * 60 * 1000;

fn ms(n: i64) -> Duration {
    Duration::from_millis(n as u64)
}

/// Kafka's `Windowed.toString()` for a session: `[key@start/end]`.
fn kafka_key(w: &Windowed<String>) -> String {
    format!("[{}@{}/{}]", w.key, w.window.start, w.window.end)
}

/// Every change written to `topic`: (key as Kafka prints it, value or tombstone, timestamp).
fn changes<V: riverbed::streams::Serde>(
    d: &mut TopologyTestDriver,
    topic: &str,
) -> Vec<(String, Option<V>, i64)> {
    d.read_output::<Windowed<String>, Option<V>>(topic)
        .unwrap()
        .into_iter()
        .map(|r| (kafka_key(&r.key), r.value, r.timestamp))
        .collect()
}

/// The sessions of a store, as (key, window, value).
fn sessions<V: riverbed::streams::Serde>(
    d: &TopologyTestDriver,
    store: &str,
) -> Vec<(String, Window, V)> {
    d.window_store::<String, V>(store)
        .unwrap()
        .all()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k.key, k.window, v))
        .collect()
}

fn w(start: i64, end: i64) -> Window {
    Window::new(start, end)
}

/// A count of `input` by session windows `windows` into store "counts", its changes (with
/// tombstones) to "out".
fn counting(windows: SessionWindows) -> TopologyTestDriver {
    let b = Builder::new("sessions");
    let counts: KTable<'_, Windowed<String>, i64> = b
        .stream::<String, String>("input")
        .group_by_key()
        .windowed_by(windows)
        .count(Materialized::named("counts"));
    counts.to_stream_with_tombstones().to("out");
    TopologyTestDriver::new(b.build().unwrap()).unwrap()
}

fn pipe(d: &mut TopologyTestDriver, key: &str, value: &str, ts: i64) {
    d.pipe_input("input", &key.to_string(), &value.to_string(), ts)
        .unwrap();
}

/// Issue 13 item 8(a): a session closes at end + gap + grace, not end + 1 + grace. Gap 10,
/// grace 1: at stream time 11 a record at 0 still lands in [0,0].
/// Kafka: KStreamSessionWindowAggregateProcessorTest
/// `shouldLogAndMeterWhenSkippingLateRecordWithNonzeroGrace`.
#[test]
fn a_late_record_within_gap_plus_grace_is_accepted() {
    let mut d = counting(SessionWindows::of_inactivity_gap_and_grace(ms(10), ms(1)));
    // Dummy record: stream time 0.
    pipe(&mut d, "dummy", "dummy", 0);
    // On time.
    pipe(&mut d, "OnTime1", "1", 0);
    // Stream time 11: 10 for the gap plus 1 to place [0,0] at the edge of its grace.
    pipe(&mut d, "dummy", "dummy", 11);
    // Delayed but within the grace period: accepted.
    pipe(&mut d, "OnTime2", "1", 0);
    assert_eq!(d.metrics().dropped_records, 0);
    // Stream time 12: [0,0] has closed.
    pipe(&mut d, "dummy", "dummy", 12);
    pipe(&mut d, "Late1", "1", 0);
    assert_eq!(d.metrics().dropped_records, 1);
    let got = sessions::<i64>(&d, "counts");
    assert!(
        got.contains(&("OnTime2".to_string(), w(0, 0), 1)),
        "{got:?}"
    );
    assert!(!got.iter().any(|(k, _, _)| k == "Late1"), "{got:?}");
}

/// Issue 13 item 8(a) as reported: gap 10, grace 1, a@0, b@11, c@0 for one key: c joins [0,0].
#[test]
fn issue_13_item_8a_the_reported_case() {
    let mut d = counting(SessionWindows::of_inactivity_gap_and_grace(ms(10), ms(1)));
    for (v, t) in [("a", 0), ("b", 11), ("c", 0)] {
        pipe(&mut d, "k", v, t);
    }
    assert_eq!(d.metrics().dropped_records, 0);
    assert_eq!(
        sessions::<i64>(&d, "counts"),
        [
            ("k".to_string(), w(0, 0), 2),
            ("k".to_string(), w(11, 11), 1)
        ]
    );
}

/// With no grace a session still waits out its gap: gap 10, stream time 11 drops a record for
/// [0,0] (end 0 + gap 10 + grace 0 < 11).
/// Kafka: KStreamSessionWindowAggregateProcessorTest
/// `shouldLogAndMeterWhenSkippingLateRecordWithZeroGrace`.
#[test]
fn a_late_record_past_gap_with_zero_grace_is_dropped() {
    let mut d = counting(SessionWindows::of_inactivity_gap_with_no_grace(ms(10)));
    pipe(&mut d, "dummy", "dummy", 0);
    pipe(&mut d, "OnTime1", "1", 0);
    pipe(&mut d, "dummy", "dummy", 11);
    pipe(&mut d, "Late1", "1", 0);
    assert_eq!(d.metrics().dropped_records, 1);
    // And at stream time 10 (end + gap) it would still have been accepted.
    let mut d = counting(SessionWindows::of_inactivity_gap_with_no_grace(ms(10)));
    pipe(&mut d, "dummy", "dummy", 0);
    pipe(&mut d, "dummy", "dummy", 10);
    pipe(&mut d, "OnTime1", "1", 0);
    assert_eq!(d.metrics().dropped_records, 0);
}

/// Issue 13 item 11: a record landing inside an existing session first deletes it (a
/// tombstone), then writes it again, as Kafka forwards without a cache.
/// Kafka: SuppressScenarioTest `shouldSupportFinalResultsForSessionWindows` (its raw output:
/// `[k1@0/5]` null, then 3, for the record at 1), KStreamSessionWindowAggregateProcessorTest
/// `shouldImmediatelyForwardRemovedSessionsWhenMerging`.
#[test]
fn a_record_inside_a_session_forwards_a_tombstone_for_it_first() {
    let mut d = counting(SessionWindows::of_inactivity_gap_with_no_grace(ms(GAP_MS)));
    pipe(&mut d, "a", "1", 0);
    pipe(&mut d, "a", "1", 5);
    pipe(&mut d, "a", "1", 3);
    assert_eq!(
        changes::<i64>(&mut d, "out"),
        [
            ("[a@0/0]".to_string(), Some(1), 0),
            ("[a@0/0]".to_string(), None, 0),
            ("[a@0/5]".to_string(), Some(2), 5),
            ("[a@0/5]".to_string(), None, 5),
            ("[a@0/5]".to_string(), Some(3), 5),
        ]
    );
}

/// A record at the time of a single-record session [t,t] updates it in place: no tombstone.
/// Kafka: KStreamSessionWindowAggregateProcessorTest `shouldUpdateSessionIfTheSameTime` (the
/// merged window equals the record's own, so nothing is removed).
#[test]
fn a_record_at_the_time_of_a_single_record_session_updates_it_in_place() {
    let mut d = counting(SessionWindows::of_inactivity_gap_with_no_grace(ms(GAP_MS)));
    pipe(&mut d, "mel", "first", 0);
    pipe(&mut d, "mel", "second", 0);
    assert_eq!(
        sessions::<i64>(&d, "counts"),
        [("mel".to_string(), w(0, 0), 2)]
    );
    assert_eq!(
        changes::<i64>(&mut d, "out"),
        [
            ("[mel@0/0]".to_string(), Some(1), 0),
            ("[mel@0/0]".to_string(), Some(2), 0),
        ]
    );
}

/// Kafka: KStreamSessionWindowAggregateProcessorTest `shouldCreateSingleSessionWhenWithinGap`.
#[test]
fn records_within_the_gap_make_one_session() {
    let mut d = counting(SessionWindows::of_inactivity_gap_with_no_grace(ms(GAP_MS)));
    pipe(&mut d, "john", "first", 0);
    pipe(&mut d, "john", "second", 500);
    let store = d.window_store::<String, i64>("counts").unwrap();
    assert_eq!(
        store.find_sessions("john", 0, 2000).unwrap(),
        [(w(0, 500), 2)]
    );
}

/// Kafka: KStreamSessionWindowAggregateProcessorTest `shouldMergeSessions`.
#[test]
fn a_record_between_two_sessions_merges_them() {
    let mut d = counting(SessionWindows::of_inactivity_gap_with_no_grace(ms(GAP_MS)));
    pipe(&mut d, "mel", "first", 0);
    let store = d.window_store::<String, i64>("counts").unwrap();
    assert_eq!(store.find_sessions("mel", 0, 0).unwrap().len(), 1);
    // Beyond the gap: a second session; the first is still there.
    pipe(&mut d, "mel", "second", GAP_MS + 1);
    let store = d.window_store::<String, i64>("counts").unwrap();
    assert_eq!(
        store
            .find_sessions("mel", GAP_MS + 1, GAP_MS + 1)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.find_sessions("mel", 0, 0).unwrap().len(), 1);
    // Back in time, within the gap of both: one session.
    pipe(&mut d, "mel", "third", GAP_MS / 2);
    let store = d.window_store::<String, i64>("counts").unwrap();
    assert_eq!(
        store.find_sessions("mel", 0, GAP_MS + 1).unwrap(),
        [(w(0, GAP_MS + 1), 3)]
    );
    assert_eq!(d.metrics().dropped_records, 0);
}

/// Kafka: KStreamSessionWindowAggregateProcessorTest
/// `shouldHaveMultipleSessionsForSameIdWhenTimestampApartBySessionGap` (its uncached
/// variant: every update is forwarded).
#[test]
fn records_a_gap_apart_make_separate_sessions() {
    let mut d = counting(SessionWindows::of_inactivity_gap_with_no_grace(ms(GAP_MS)));
    let t1 = GAP_MS + 1;
    let t2 = t1 + GAP_MS + 1;
    for (v, t) in [
        ("first", 0),
        ("second", t1),
        ("second", t1),
        ("third", t2),
        ("third", t2),
        ("third", t2),
    ] {
        pipe(&mut d, "mel", v, t);
    }
    let mel = |a, b, n| ("mel".to_string(), w(a, b), n);
    assert_eq!(
        sessions::<i64>(&d, "counts"),
        [mel(0, 0, 1), mel(t1, t1, 2), mel(t2, t2, 3)]
    );
    let got = changes::<i64>(&mut d, "out");
    let key = |t: i64| format!("[mel@{t}/{t}]");
    assert_eq!(
        got,
        [
            (key(0), Some(1), 0),
            (key(t1), Some(1), t1),
            (key(t1), Some(2), t1),
            (key(t2), Some(1), t2),
            (key(t2), Some(2), t2),
            (key(t2), Some(3), t2),
        ]
    );
}

/// Kafka: KStreamSessionWindowAggregateProcessorTest `shouldRemoveMergedSessionsFromStateStore`
/// and `shouldGetAggregatedValuesFromValueGetter` (the store holds the merged session only).
#[test]
fn merged_sessions_leave_the_store() {
    let mut d = counting(SessionWindows::of_inactivity_gap_with_no_grace(ms(GAP_MS)));
    pipe(&mut d, "a", "1", 0);
    assert_eq!(
        sessions::<i64>(&d, "counts"),
        [("a".to_string(), w(0, 0), 1)]
    );
    pipe(&mut d, "a", "2", 100);
    assert_eq!(
        sessions::<i64>(&d, "counts"),
        [("a".to_string(), w(0, 100), 2)]
    );

    let mut d = counting(SessionWindows::of_inactivity_gap_with_no_grace(ms(GAP_MS)));
    pipe(&mut d, "a", "1", 0);
    pipe(&mut d, "a", "1", GAP_MS + 1);
    pipe(&mut d, "a", "2", GAP_MS + 1);
    let store = d.window_store::<String, i64>("counts").unwrap();
    assert_eq!(store.find_sessions("a", 0, 0).unwrap(), [(w(0, 0), 1)]);
    assert_eq!(
        store.find_sessions("a", GAP_MS + 1, GAP_MS + 1).unwrap(),
        [(w(GAP_MS + 1, GAP_MS + 1), 2)]
    );
}

/// Kafka: KStreamSessionWindowAggregateProcessorTest `shouldHandleMultipleSessionsAndMerging`
/// (the sessions it ends with) and `shouldImmediatelyForwardNewSessionWhenNonCachedStore`.
#[test]
fn several_keys_sessions_and_merges() {
    let mut d = counting(SessionWindows::of_inactivity_gap_with_no_grace(ms(GAP_MS)));
    pipe(&mut d, "a", "1", 0);
    pipe(&mut d, "b", "1", 0);
    pipe(&mut d, "c", "1", 0);
    // New sessions are forwarded at once.
    assert_eq!(
        changes::<i64>(&mut d, "out"),
        [
            ("[a@0/0]".to_string(), Some(1), 0),
            ("[b@0/0]".to_string(), Some(1), 0),
            ("[c@0/0]".to_string(), Some(1), 0),
        ]
    );
    pipe(&mut d, "d", "1", 0);
    pipe(&mut d, "d", "2", GAP_MS / 2);
    pipe(&mut d, "a", "2", GAP_MS + 1);
    pipe(&mut d, "b", "2", GAP_MS + 1);
    pipe(&mut d, "a", "3", GAP_MS + 1 + GAP_MS / 2);
    pipe(&mut d, "c", "3", GAP_MS + 1 + GAP_MS / 2);
    let s = |k: &str, a, b, n| (k.to_string(), w(a, b), n);
    let late = GAP_MS + 1 + GAP_MS / 2;
    assert_eq!(
        sessions::<i64>(&d, "counts"),
        [
            s("a", 0, 0, 1),
            s("a", GAP_MS + 1, late, 2),
            s("b", 0, 0, 1),
            s("b", GAP_MS + 1, GAP_MS + 1, 1),
            s("c", 0, 0, 1),
            s("c", late, late, 1),
            s("d", 0, GAP_MS / 2, 2),
        ]
    );
}

/// The input of SessionWindowedKStreamImplTest (`processData`): gap 500, no grace.
fn process_data(d: &mut TopologyTestDriver) {
    pipe(d, "1", "1", 10);
    pipe(d, "1", "2", 15);
    pipe(d, "1", "3", 600);
    pipe(d, "2", "1", 600);
    pipe(d, "2", "2", 599);
}

fn impl_test_windows() -> SessionWindows {
    SessionWindows::of_inactivity_gap_with_no_grace(ms(500))
}

/// Kafka: SessionWindowedKStreamImplTest `shouldCountSessionWindowedWithCachingDisabled` and
/// `shouldMaterializeCount`.
#[test]
fn session_windowed_count() {
    let mut d = counting(impl_test_windows());
    process_data(&mut d);
    assert_eq!(
        changes::<i64>(&mut d, "out"),
        [
            ("[1@10/10]".to_string(), Some(1), 10),
            ("[1@10/10]".to_string(), None, 10),
            ("[1@10/15]".to_string(), Some(2), 15),
            ("[1@600/600]".to_string(), Some(1), 600),
            ("[2@600/600]".to_string(), Some(1), 600),
            ("[2@600/600]".to_string(), None, 600),
            ("[2@599/600]".to_string(), Some(2), 600),
        ]
    );
    let s = |k: &str, a, b, n| (k.to_string(), w(a, b), n);
    assert_eq!(
        sessions::<i64>(&d, "counts"),
        [s("1", 10, 15, 2), s("1", 600, 600, 1), s("2", 599, 600, 2)]
    );
}

/// Kafka: SessionWindowedKStreamImplTest `shouldReduceWindowed` and `shouldMaterializeReduced`
/// (`MockReducer.STRING_ADDER`: `a + "+" + b`).
#[test]
fn session_windowed_reduce() {
    let b = Builder::new("sessions");
    b.stream::<String, String>("input")
        .group_by_key()
        .windowed_by(impl_test_windows())
        .reduce(|a, b| format!("{a}+{b}"), Materialized::named("reduced"))
        .to_stream_with_tombstones()
        .to("out");
    let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    process_data(&mut d);
    let v = |s: &str| Some(s.to_string());
    assert_eq!(
        changes::<String>(&mut d, "out"),
        [
            ("[1@10/10]".to_string(), v("1"), 10),
            ("[1@10/10]".to_string(), None, 10),
            ("[1@10/15]".to_string(), v("1+2"), 15),
            ("[1@600/600]".to_string(), v("3"), 600),
            ("[2@600/600]".to_string(), v("1"), 600),
            ("[2@600/600]".to_string(), None, 600),
            ("[2@599/600]".to_string(), v("1+2"), 600),
        ]
    );
    let s = |k: &str, a, b, v: &str| (k.to_string(), w(a, b), v.to_string());
    assert_eq!(
        sessions::<String>(&d, "reduced"),
        [
            s("1", 10, 15, "1+2"),
            s("1", 600, 600, "3"),
            s("2", 599, 600, "1+2")
        ]
    );
}

/// Kafka: SessionWindowedKStreamImplTest `shouldAggregateSessionWindowed` and
/// `shouldMaterializeAggregated` (`MockInitializer.STRING_INIT` "0",
/// `MockAggregator.TOSTRING_ADDER` `agg + "+" + value`, merger `a + "+" + b`): a merged
/// session's aggregate starts from the initializer, merged with each session in turn, then
/// the record is added.
#[test]
fn session_windowed_aggregate() {
    let b = Builder::new("sessions");
    b.stream::<String, String>("input")
        .group_by_key()
        .windowed_by(impl_test_windows())
        .aggregate(
            || "0".to_string(),
            |_k, v, agg| format!("{agg}+{v}"),
            |_k, a, b| format!("{a}+{b}"),
            Materialized::named("aggregated"),
        )
        .to_stream_with_tombstones()
        .to("out");
    let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    process_data(&mut d);
    let v = |s: &str| Some(s.to_string());
    assert_eq!(
        changes::<String>(&mut d, "out"),
        [
            ("[1@10/10]".to_string(), v("0+1"), 10),
            ("[1@10/10]".to_string(), None, 10),
            ("[1@10/15]".to_string(), v("0+0+1+2"), 15),
            ("[1@600/600]".to_string(), v("0+3"), 600),
            ("[2@600/600]".to_string(), v("0+1"), 600),
            ("[2@600/600]".to_string(), None, 600),
            ("[2@599/600]".to_string(), v("0+0+1+2"), 600),
        ]
    );
    let s = |k: &str, a, b, v: &str| (k.to_string(), w(a, b), v.to_string());
    assert_eq!(
        sessions::<String>(&d, "aggregated"),
        [
            s("1", 10, 15, "0+0+1+2"),
            s("1", 600, 600, "0+3"),
            s("2", 599, 600, "0+0+1+2")
        ]
    );
}

/// Kafka: SessionWindowsTest `windowSizeMustNotBeZero` (a negative gap, Kafka's
/// `windowSizeMustNotBeNegative`, cannot be written: a `Duration` is never negative).
#[test]
fn a_zero_gap_is_refused() {
    let b = Builder::new("bad");
    b.stream::<String, String>("input")
        .group_by_key()
        .windowed_by(SessionWindows::of_inactivity_gap_with_no_grace(ms(0)))
        .count(Materialized::unnamed());
    let err = b.build().unwrap_err().to_string();
    assert!(err.contains("inactivity gap must be positive"), "{err}");
    // SessionWindowsTest `gracePeriodShouldEnforceBoundaries`: a zero grace is fine.
    let b = Builder::new("ok");
    b.stream::<String, String>("input")
        .group_by_key()
        .windowed_by(SessionWindows::of_inactivity_gap_and_grace(ms(3), ms(0)))
        .count(Materialized::unnamed());
    b.build().unwrap();
}

/// Kafka: SessionWindowsTest `equalsAndHashcodeShouldBeValidForPositiveCases` and
/// `...NegativeCases`: two specs are equal when gap and grace are.
#[test]
fn session_window_specs_compare_by_gap_and_grace() {
    let g = |gap, grace| SessionWindows::of_inactivity_gap_and_grace(ms(gap), ms(grace));
    assert_eq!(
        SessionWindows::of_inactivity_gap_with_no_grace(ms(1)),
        SessionWindows::of_inactivity_gap_with_no_grace(ms(1))
    );
    assert_eq!(g(1, 11), g(1, 11));
    // noGraceAPIShouldNotSetGracePeriod: no grace is grace 0.
    assert_eq!(
        SessionWindows::of_inactivity_gap_with_no_grace(ms(3)),
        g(3, 0)
    );
    assert_ne!(
        SessionWindows::of_inactivity_gap_with_no_grace(ms(9)),
        SessionWindows::of_inactivity_gap_with_no_grace(ms(1))
    );
    assert_ne!(g(9, 9), g(1, 9));
    assert_ne!(g(1, 9), g(1, 6));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Kafka's forwarding rule (`KStreamSessionWindowAggregate.process`, uncached), record by
    /// record over random out-of-order input: the record's sessions are those of its key with
    /// start - gap <= t <= end + gap; if the session they make is closed (end + gap + 1 + grace
    /// <= stream time) the record is dropped; otherwise, unless the merged session is the
    /// record's own [t, t], each merged session is forwarded as a tombstone (stamped with its
    /// end), and then the merged session with its count (stamped with its end).
    #[test]
    fn session_changes_follow_kafkas_forwarding_rule(
        records in common::out_of_order_input(),
        gap in 1i64..120,
        grace in 0i64..150,
    ) {
        let mut d = counting(SessionWindows::of_inactivity_gap_and_grace(ms(gap), ms(grace)));
        // Per key: (start, end) -> count.
        let mut model: BTreeMap<String, BTreeMap<(i64, i64), i64>> = BTreeMap::new();
        let mut st = i64::MIN;
        let mut dropped = 0u64;
        for (k, _v, t) in &records {
            let t = *t;
            let key = format!("k{k}");
            pipe(&mut d, &key, "v", t);
            st = st.max(t);
            let mine = model.entry(key.clone()).or_default();
            let near: Vec<((i64, i64), i64)> = mine
                .iter()
                .filter(|((s, e), _)| s - gap <= t && t <= e + gap)
                .map(|(w, n)| (*w, *n))
                .collect();
            let start = near.iter().map(|((s, _), _)| *s).chain([t]).min().unwrap_or(t);
            let end = near.iter().map(|((_, e), _)| *e).chain([t]).max().unwrap_or(t);
            let mut want = Vec::new();
            if end + gap + 1 + grace <= st {
                dropped += 1;
            } else {
                if (start, end) != (t, t) {
                    for ((s, e), _) in &near {
                        mine.remove(&(*s, *e));
                        want.push((format!("[{key}@{s}/{e}]"), None, *e));
                    }
                }
                let n = near.iter().map(|(_, n)| n).sum::<i64>() + 1;
                mine.insert((start, end), n);
                want.push((format!("[{key}@{start}/{end}]"), Some(n), end));
            }
            prop_assert_eq!(changes::<i64>(&mut d, "out"), want, "record {}@{}", key, t);
        }
        prop_assert_eq!(d.metrics().dropped_records, dropped);
        let stored: Vec<(String, Window, i64)> = model
            .iter()
            .flat_map(|(k, m)| m.iter().map(move |((s, e), n)| (k.clone(), w(*s, *e), *n)))
            .collect();
        prop_assert_eq!(sessions::<i64>(&d, "counts"), stored);
    }
}
