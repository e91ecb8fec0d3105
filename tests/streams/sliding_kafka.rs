//! Sliding-window aggregation against Kafka Streams' own unit tests, case by case: each test
//! cites the Kafka test it translates (apache/kafka,
//! `streams/src/test/java/org/apache/kafka/streams/kstream/internals/`
//! `KStreamSlidingWindowAggregateTest.java` and `SlidingWindowedKStreamImplTest.java`), with
//! its inputs and the results Kafka expects with emit-on-update (no cache). Kafka's
//! `MockInitializer.STRING_INIT` is `"0"`, `MockAggregator.TOSTRING_ADDER` is
//! `agg + "+" + value` and `MockReducer.STRING_ADDER` is `a + "+" + b`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use riverbed::streams::{Builder, Materialized, SlidingWindows, TopologyTestDriver, Windowed};

fn ms(n: i64) -> Duration {
    Duration::from_millis(n as u64)
}

#[derive(Clone, Copy)]
enum Agg {
    Aggregate,
    Reduce,
}

/// An output record: key, window start, window end, value, timestamp.
type Out = (String, i64, i64, String, i64);

fn driver(agg: Agg, windows: SlidingWindows) -> TopologyTestDriver {
    let b = Builder::new("sliding-kafka");
    let w = b
        .stream::<String, String>("topic")
        .group_by_key()
        .windowed_by(windows);
    let table = match agg {
        Agg::Aggregate => w.aggregate(
            || "0".to_string(),
            |_k, v, agg| format!("{agg}+{v}"),
            Materialized::named("store"),
        ),
        Agg::Reduce => w.reduce(|a, b| format!("{a}+{b}"), Materialized::named("store")),
    };
    table.to_stream().to("out");
    TopologyTestDriver::new(b.build().unwrap()).unwrap()
}

fn pipe(d: &mut TopologyTestDriver, input: &[(&str, &str, i64)]) -> Vec<Out> {
    for (k, v, t) in input {
        d.pipe_input("topic", &k.to_string(), &v.to_string(), *t)
            .unwrap();
    }
    d.read_output::<Windowed<String>, String>("out")
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.key.key,
                r.key.window.start,
                r.key.window.end,
                r.value,
                r.timestamp,
            )
        })
        .collect()
}

fn run(agg: Agg, difference: i64, grace: i64, input: &[(&str, &str, i64)]) -> Vec<Out> {
    let mut d = driver(
        agg,
        SlidingWindows::of_time_difference_and_grace(ms(difference), ms(grace)),
    );
    let out = pipe(&mut d, input);
    for (_, start, end, _, _) in &out {
        assert_eq!(
            end - start,
            difference,
            "a sliding window is as long as the difference"
        );
    }
    out
}

/// Kafka's `gatherOutput`: window start -> the set of (value, timestamp) forwarded for it.
fn by_start(out: &[Out]) -> BTreeMap<i64, BTreeSet<(String, i64)>> {
    let mut m: BTreeMap<i64, BTreeSet<(String, i64)>> = BTreeMap::new();
    for (_, s, _, v, t) in out {
        m.entry(*s).or_default().insert((v.clone(), *t));
    }
    m
}

fn by_start_expected(expected: &[(i64, &str, i64)]) -> BTreeMap<i64, BTreeSet<(String, i64)>> {
    let mut m: BTreeMap<i64, BTreeSet<(String, i64)>> = BTreeMap::new();
    for (s, v, t) in expected {
        m.entry(*s).or_default().insert((v.to_string(), *t));
    }
    m
}

/// The output sorted (stably) by key then window start, as the Kafka tests compare it.
fn sorted_by_key_and_start(out: &[Out]) -> Vec<Out> {
    let mut v = out.to_vec();
    v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    v
}

fn list_expected(expected: &[(&str, i64, i64, &str, i64)]) -> Vec<Out> {
    expected
        .iter()
        .map(|(k, s, e, v, t)| (k.to_string(), *s, *e, v.to_string(), *t))
        .collect()
}

/// Issue 13, item 10 (difference 5, grace 15; k@10, k@24, k@5, k@90): k@5 comes when its own
/// left window [0, 5] has closed (5 + 15 < 24), but [5, 10] is still open (10 + 15 >= 24), so
/// Kafka adds it there (final count 2) and creates its right window [6, 11] from [5, 10]; only
/// [0, 5] counts as a drop.
#[test]
fn late_record_updates_the_later_windows_that_are_still_open() {
    let mut d = driver(
        Agg::Aggregate,
        SlidingWindows::of_time_difference_and_grace(ms(5), ms(15)),
    );
    let out = pipe(
        &mut d,
        &[
            ("k", "a", 10),
            ("k", "b", 24),
            ("k", "c", 5),
            ("k", "d", 90),
        ],
    );
    let want = list_expected(&[
        ("k", 5, 10, "0+a", 10),
        ("k", 19, 24, "0+b", 24),
        ("k", 5, 10, "0+a+c", 10),
        ("k", 6, 11, "0+a", 10),
        ("k", 85, 90, "0+d", 90),
    ]);
    assert_eq!(out, want);
    assert_eq!(d.metrics().dropped_records, 1);
    let store = d.window_store::<String, String>("store").unwrap();
    let windows: Vec<_> = store
        .fetch("k", 0, 100)
        .unwrap()
        .into_iter()
        .map(|(w, v)| (w.start, w.end, v))
        .collect();
    assert_eq!(
        windows,
        [
            (5, 10, "0+a+c".to_string()),
            (6, 11, "0+a".to_string()),
            (19, 24, "0+b".to_string()),
            (85, 90, "0+d".to_string()),
        ]
    );
}

/// Riverbed's deliberate difference (see `SlidingWindows`): a window created after a record
/// in it arrived holds that record. Difference 23, grace 162; stream time reaches 208 (another
/// key), then k@23 comes when its windows [0, 23] and [1, 24] have closed (23 + 162 < 208), and
/// k@46 creates [23, 46]. Kafka copies the aggregate of the closed [0, 23] (which never got
/// k@23) and finds no previous record in it, so its [23, 46] holds k@46 alone and it never
/// creates [24, 47]; Riverbed's [23, 46] holds k@23 and k@46, and k@23's right window
/// [24, 47] holds k@46. Found by the model test in tests/streams/windows_model.rs.
#[test]
fn a_window_created_later_holds_every_accepted_record_within_it() {
    let mut d = driver(
        Agg::Aggregate,
        SlidingWindows::of_time_difference_and_grace(ms(23), ms(162)),
    );
    let out = pipe(
        &mut d,
        &[
            ("k", "a", 0),
            ("j", "x", 208),
            ("k", "b", 23),
            ("k", "c", 46),
        ],
    );
    assert_eq!(
        out,
        list_expected(&[
            ("k", 0, 23, "0+a", 0),
            ("j", 185, 208, "0+x", 208),
            ("k", 24, 47, "0+c", 46),
            ("k", 23, 46, "0+b+c", 46),
        ])
    );
    // k@23: [0, 23] and [1, 24] closed.
    assert_eq!(d.metrics().dropped_records, 2);
}

/// `KStreamSlidingWindowAggregateTest.shouldLogAndMeterWhenSkippingExpiredWindowByGrace`
/// (difference 10, grace 90): k@100..k@105 arrive at stream time 200 (close time 110), so
/// each one's left window has closed (one drop each) while no window holding them exists to
/// update; k@15 is dropped whole (15 + 10 < 110). Seven drops; only the windows of k@200,
/// k@300 and k@400 come out.
#[test]
fn kafka_should_log_and_meter_when_skipping_expired_window_by_grace() {
    let mut d = driver(
        Agg::Aggregate,
        SlidingWindows::of_time_difference_and_grace(ms(10), ms(90)),
    );
    let out = pipe(
        &mut d,
        &[
            ("k", "100", 200),
            ("k", "0", 100),
            ("k", "1", 101),
            ("k", "2", 102),
            ("k", "3", 103),
            ("k", "4", 104),
            ("k", "5", 105),
            ("k", "6", 15),
            ("k", "101", 300),
            ("k", "102", 400),
        ],
    );
    assert_eq!(d.metrics().dropped_records, 7);
    assert_eq!(
        out,
        list_expected(&[
            ("k", 190, 200, "0+100", 200),
            ("k", 290, 300, "0+101", 300),
            ("k", 390, 400, "0+102", 400),
        ])
    );
}

/// `SlidingWindowedKStreamImplTest.processData` (difference 100, grace 1000).
const IMPL_DATA: &[(&str, &str, i64)] = &[
    ("1", "1", 100),
    ("1", "2", 150),
    ("1", "3", 500),
    ("2", "10", 200),
    ("2", "20", 150),
];

/// The last value and timestamp per window (Kafka's `lastValueAndTimestampPerKey`).
fn last_per_window(out: &[Out]) -> BTreeMap<(String, i64, i64), (String, i64)> {
    out.iter()
        .map(|(k, s, e, v, t)| ((k.clone(), *s, *e), (v.clone(), *t)))
        .collect()
}

/// `SlidingWindowedKStreamImplTest.shouldAggregateSlidingWindows`, `shouldReduceSlidingWindows`
/// and (through the store) `shouldMaterializeReduced`.
#[test]
fn kafka_sliding_windowed_kstream_impl_aggregate_and_reduce() {
    let windows = SlidingWindows::of_time_difference_and_grace(ms(100), ms(1000));
    for (agg, want) in [
        (
            Agg::Aggregate,
            [
                ("1", 0, 100, "0+1", 100),
                ("1", 50, 150, "0+1+2", 150),
                ("1", 101, 201, "0+2", 150),
                ("1", 400, 500, "0+3", 500),
                ("2", 50, 150, "0+20", 150),
                ("2", 100, 200, "0+10+20", 200),
                ("2", 151, 251, "0+10", 200),
            ],
        ),
        (
            Agg::Reduce,
            [
                ("1", 0, 100, "1", 100),
                ("1", 50, 150, "1+2", 150),
                ("1", 101, 201, "2", 150),
                ("1", 400, 500, "3", 500),
                ("2", 50, 150, "20", 150),
                ("2", 100, 200, "10+20", 200),
                ("2", 151, 251, "10", 200),
            ],
        ),
    ] {
        let mut d = driver(agg, windows);
        let out = pipe(&mut d, IMPL_DATA);
        let want: BTreeMap<(String, i64, i64), (String, i64)> = want
            .iter()
            .map(|(k, s, e, v, t)| ((k.to_string(), *s, *e), (v.to_string(), *t)))
            .collect();
        assert_eq!(last_per_window(&out), want);
        let store = d.window_store::<String, String>("store").unwrap();
        let stored: BTreeMap<(String, i64, i64), String> = store
            .fetch_all(0, 1000)
            .unwrap()
            .into_iter()
            .map(|(w, v)| ((w.key, w.window.start, w.window.end), v))
            .collect();
        let want_stored: BTreeMap<(String, i64, i64), String> =
            want.into_iter().map(|(k, (v, _))| (k, v)).collect();
        assert_eq!(stored, want_stored);
    }
}

/// `SlidingWindowedKStreamImplTest.shouldCountSlidingWindows` and `shouldMaterializeCount`.
#[test]
fn kafka_sliding_windowed_kstream_impl_count() {
    let b = Builder::new("sliding-count");
    b.stream::<String, String>("topic")
        .group_by_key()
        .windowed_by(SlidingWindows::of_time_difference_and_grace(
            ms(100),
            ms(1000),
        ))
        .count(Materialized::named("count-store"))
        .to_stream()
        .to("out");
    let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    for (k, v, t) in IMPL_DATA {
        d.pipe_input("topic", &k.to_string(), &v.to_string(), *t)
            .unwrap();
    }
    let mut last = BTreeMap::new();
    for r in d.read_output::<Windowed<String>, i64>("out").unwrap() {
        last.insert(
            (r.key.key, r.key.window.start, r.key.window.end),
            (r.value, r.timestamp),
        );
    }
    let want: BTreeMap<(String, i64, i64), (i64, i64)> = [
        ("1", 0, 100, 1, 100),
        ("1", 50, 150, 2, 150),
        ("1", 101, 201, 1, 150),
        ("1", 400, 500, 1, 500),
        ("2", 50, 150, 1, 150),
        ("2", 100, 200, 2, 200),
        ("2", 151, 251, 1, 200),
    ]
    .into_iter()
    .map(|(k, s, e, n, t)| ((k.to_string(), s, e), (n, t)))
    .collect();
    assert_eq!(last, want);
    let store = d.window_store::<String, i64>("count-store").unwrap();
    let stored: BTreeMap<(String, i64, i64), i64> = store
        .fetch_all(0, 1000)
        .unwrap()
        .into_iter()
        .map(|(w, v)| ((w.key, w.window.start, w.window.end), v))
        .collect();
    let want_stored: BTreeMap<_, _> = want.into_iter().map(|(k, (n, _))| (k, n)).collect();
    assert_eq!(stored, want_stored);
}

/// `SlidingWindowedKStreamImplTest.shouldDropWindowsOutsideOfRetention`. Kafka's store there
/// keeps windows 1200 ms from their start; Riverbed's retention counts from a window's close
/// (and never ends before `2 * difference` after it), so retention 0 gives the same store at
/// stream time 2000: the windows of k@1000 and k@2000 only.
#[test]
fn kafka_should_drop_windows_outside_of_retention() {
    let mut d = driver(
        Agg::Aggregate,
        SlidingWindows::of_time_difference_and_grace(ms(100), ms(1000)).with_retention(ms(0)),
    );
    pipe(
        &mut d,
        &[
            ("1", "2", 100),
            ("1", "3", 500),
            ("1", "4", 799),
            ("1", "4", 1000),
            ("1", "5", 2000),
        ],
    );
    let store = d.window_store::<String, String>("store").unwrap();
    let got: Vec<_> = store
        .fetch("1", 0, 10_000)
        .unwrap()
        .into_iter()
        .map(|(w, v)| (w.start, w.end, v))
        .collect();
    assert_eq!(
        got,
        [
            (900, 1000, "0+4".to_string()),
            (1900, 2000, "0+5".to_string())
        ]
    );
}

// The cases below are generated from KStreamSlidingWindowAggregateTest.java: its inputs, its
// windows, and its expected output for emit-on-update.

/// `KStreamSlidingWindowAggregateTest.testAggregateSmallInput` (emit on window update).
#[test]
fn kafka_test_aggregate_small_input() {
    let input: &[(&str, &str, i64)] = &[
        ("A", "1", 10),
        ("A", "2", 10),
        ("A", "3", 14),
        ("A", "4", 15),
        ("A", "5", 20),
        ("A", "6", 22),
        ("A", "7", 30),
    ];
    let out = run(Agg::Aggregate, 10, 5, input);
    let expected: &[(i64, &str, i64)] = &[
        (0, "0+1", 10),
        (0, "0+1+2", 10),
        (4, "0+1+2+3", 14),
        (5, "0+1+2+3+4", 15),
        (10, "0+1+2+3+4+5", 20),
        (11, "0+3", 14),
        (11, "0+3+4", 15),
        (11, "0+3+4+5", 20),
        (12, "0+3+4+5+6", 22),
        (15, "0+4", 15),
        (15, "0+4+5", 20),
        (15, "0+4+5+6", 22),
        (16, "0+5", 20),
        (16, "0+5+6", 22),
        (20, "0+5+6+7", 30),
        (21, "0+6", 22),
        (21, "0+6+7", 30),
        (23, "0+7", 30),
    ];
    assert_eq!(by_start(&out), by_start_expected(expected));
}

/// `KStreamSlidingWindowAggregateTest.testReduceSmallInput` (emit on window update).
#[test]
fn kafka_test_reduce_small_input() {
    let input: &[(&str, &str, i64)] = &[
        ("A", "1", 10),
        ("A", "2", 14),
        ("A", "3", 15),
        ("A", "4", 22),
        ("A", "5", 26),
        ("A", "6", 30),
    ];
    let out = run(Agg::Reduce, 10, 5, input);
    let expected: &[(i64, &str, i64)] = &[
        (0, "1", 10),
        (4, "1+2", 14),
        (5, "1+2+3", 15),
        (11, "2", 14),
        (11, "2+3", 15),
        (12, "2+3+4", 22),
        (15, "3", 15),
        (15, "3+4", 22),
        (16, "4", 22),
        (16, "4+5", 26),
        (20, "4+5+6", 30),
        (23, "5", 26),
        (23, "5+6", 30),
        (27, "6", 30),
    ];
    assert_eq!(by_start(&out), by_start_expected(expected));
}

/// `KStreamSlidingWindowAggregateTest.testAggregateLargeInput` (emit on window update).
#[test]
fn kafka_test_aggregate_large_input() {
    let input: &[(&str, &str, i64)] = &[
        ("A", "1", 10),
        ("A", "2", 20),
        ("A", "3", 22),
        ("A", "4", 15),
        ("B", "1", 12),
        ("B", "2", 13),
        ("B", "3", 18),
        ("B", "4", 19),
        ("B", "5", 25),
        ("B", "6", 14),
        ("C", "1", 11),
        ("C", "2", 15),
        ("C", "3", 16),
        ("C", "4", 21),
        ("C", "5", 23),
        ("D", "4", 11),
        ("D", "2", 12),
        ("D", "3", 29),
        ("D", "5", 16),
    ];
    let out = run(Agg::Aggregate, 10, 50, input);
    let expected: &[(&str, i64, i64, &str, i64)] = &[
        ("A", 0, 10, "0+1", 10),
        ("A", 5, 15, "0+1+4", 15),
        ("A", 10, 20, "0+1+2", 20),
        ("A", 10, 20, "0+1+2+4", 20),
        ("A", 11, 21, "0+2", 20),
        ("A", 11, 21, "0+2+4", 20),
        ("A", 12, 22, "0+2+3", 22),
        ("A", 12, 22, "0+2+3+4", 22),
        ("A", 16, 26, "0+2+3", 22),
        ("A", 21, 31, "0+3", 22),
        ("B", 2, 12, "0+1", 12),
        ("B", 3, 13, "0+1+2", 13),
        ("B", 4, 14, "0+1+2+6", 14),
        ("B", 8, 18, "0+1+2+3", 18),
        ("B", 8, 18, "0+1+2+3+6", 18),
        ("B", 9, 19, "0+1+2+3+4", 19),
        ("B", 9, 19, "0+1+2+3+4+6", 19),
        ("B", 13, 23, "0+2", 13),
        ("B", 13, 23, "0+2+3", 18),
        ("B", 13, 23, "0+2+3+4", 19),
        ("B", 13, 23, "0+2+3+4+6", 19),
        ("B", 14, 24, "0+3", 18),
        ("B", 14, 24, "0+3+4", 19),
        ("B", 14, 24, "0+3+4+6", 19),
        ("B", 15, 25, "0+3+4+5", 25),
        ("B", 19, 29, "0+4", 19),
        ("B", 19, 29, "0+4+5", 25),
        ("B", 20, 30, "0+5", 25),
        ("C", 1, 11, "0+1", 11),
        ("C", 5, 15, "0+1+2", 15),
        ("C", 6, 16, "0+1+2+3", 16),
        ("C", 11, 21, "0+1+2+3+4", 21),
        ("C", 12, 22, "0+2", 15),
        ("C", 12, 22, "0+2+3", 16),
        ("C", 12, 22, "0+2+3+4", 21),
        ("C", 13, 23, "0+2+3+4+5", 23),
        ("C", 16, 26, "0+3", 16),
        ("C", 16, 26, "0+3+4", 21),
        ("C", 16, 26, "0+3+4+5", 23),
        ("C", 17, 27, "0+4", 21),
        ("C", 17, 27, "0+4+5", 23),
        ("C", 22, 32, "0+5", 23),
        ("D", 1, 11, "0+4", 11),
        ("D", 2, 12, "0+4+2", 12),
        ("D", 6, 16, "0+4+2+5", 16),
        ("D", 12, 22, "0+2", 12),
        ("D", 12, 22, "0+2+5", 16),
        ("D", 13, 23, "0+5", 16),
        ("D", 19, 29, "0+3", 29),
    ];
    assert_eq!(sorted_by_key_and_start(&out), list_expected(expected));
}

/// `KStreamSlidingWindowAggregateTest.testEarlyRecordsSmallInput` (emit on window update).
#[test]
fn kafka_test_early_records_small_input() {
    let input: &[(&str, &str, i64)] = &[
        ("A", "1", 0),
        ("A", "2", 5),
        ("A", "3", 6),
        ("A", "4", 3),
        ("A", "5", 13),
        ("A", "6", 10),
        ("A", "7", 70),
    ];
    let out = run(Agg::Aggregate, 50, 0, input);
    let expected: &[(i64, &str, i64)] = &[
        (0, "0+1", 0),
        (0, "0+1+2", 5),
        (0, "0+1+2+3", 6),
        (0, "0+1+2+3+4", 6),
        (0, "0+1+2+3+4+5", 13),
        (0, "0+1+2+3+4+5+6", 13),
        (1, "0+2", 5),
        (1, "0+2+3", 6),
        (1, "0+2+3+4", 6),
        (1, "0+2+3+4+5", 13),
        (1, "0+2+3+4+5+6", 13),
        (4, "0+2+3", 6),
        (4, "0+2+3+5", 13),
        (4, "0+2+3+5+6", 13),
        (6, "0+3", 6),
        (6, "0+3+5", 13),
        (6, "0+3+5+6", 13),
        (7, "0+5", 13),
        (7, "0+5+6", 13),
        (11, "0+5", 13),
        (20, "0+7", 70),
    ];
    assert_eq!(by_start(&out), by_start_expected(expected));
}

/// `KStreamSlidingWindowAggregateTest.testEarlyRecordsRepeatedInput` (emit on window update).
#[test]
fn kafka_test_early_records_repeated_input() {
    let input: &[(&str, &str, i64)] = &[
        ("A", "1", 0),
        ("A", "2", 2),
        ("A", "3", 4),
        ("A", "4", 0),
        ("A", "5", 2),
        ("A", "6", 2),
        ("A", "7", 0),
        ("A", "8", 7),
    ];
    let out = run(Agg::Aggregate, 5, 0, input);
    let expected: &[(i64, &str, i64)] = &[
        (0, "0+1", 0),
        (0, "0+1+2", 2),
        (0, "0+1+2+3+4+5", 4),
        (0, "0+1+2+3+4+5+6", 4),
        (0, "0+1+2+3", 4),
        (0, "0+1+2+3+4", 4),
        (0, "0+1+2+3+4+5+6+7", 4),
        (1, "0+2+3+5+6", 4),
        (1, "0+2", 2),
        (1, "0+2+3", 4),
        (1, "0+2+3+5", 4),
        (2, "0+2+3+5+6+8", 7),
        (3, "0+3", 4),
        (3, "0+3+8", 7),
        (5, "0+8", 7),
    ];
    assert_eq!(by_start(&out), by_start_expected(expected));
}

/// `KStreamSlidingWindowAggregateTest.testEarlyRecordsLargeInput` (emit on window update).
#[test]
fn kafka_test_early_records_large_input() {
    let input: &[(&str, &str, i64)] = &[
        ("E", "1", 0),
        ("E", "3", 5),
        ("E", "4", 6),
        ("E", "2", 3),
        ("E", "6", 13),
        ("E", "5", 10),
        ("E", "7", 4),
        ("E", "8", 2),
        ("E", "9", 15),
    ];
    let out = run(Agg::Aggregate, 10, 50, input);
    let expected: &[(&str, i64, i64, &str, i64)] = &[
        ("E", 0, 10, "0+1", 0),
        ("E", 0, 10, "0+1+3", 5),
        ("E", 0, 10, "0+1+3+4", 6),
        ("E", 0, 10, "0+1+3+4+2", 6),
        ("E", 0, 10, "0+1+3+4+2+5", 10),
        ("E", 0, 10, "0+1+3+4+2+5+7", 10),
        ("E", 0, 10, "0+1+3+4+2+5+7+8", 10),
        ("E", 1, 11, "0+3", 5),
        ("E", 1, 11, "0+3+4", 6),
        ("E", 1, 11, "0+3+4+2", 6),
        ("E", 1, 11, "0+3+4+2+5", 10),
        ("E", 1, 11, "0+3+4+2+5+7", 10),
        ("E", 1, 11, "0+3+4+2+5+7+8", 10),
        ("E", 3, 13, "0+3+4+2+6", 13),
        ("E", 3, 13, "0+3+4+2+6+5", 13),
        ("E", 3, 13, "0+3+4+2+6+5+7", 13),
        ("E", 4, 14, "0+3+4", 6),
        ("E", 4, 14, "0+3+4+6", 13),
        ("E", 4, 14, "0+3+4+6+5", 13),
        ("E", 4, 14, "0+3+4+6+5+7", 13),
        ("E", 5, 15, "0+3+4+6+5", 13),
        ("E", 5, 15, "0+3+4+6+5+9", 15),
        ("E", 6, 16, "0+4", 6),
        ("E", 6, 16, "0+4+6", 13),
        ("E", 6, 16, "0+4+6+5", 13),
        ("E", 6, 16, "0+4+6+5+9", 15),
        ("E", 7, 17, "0+6", 13),
        ("E", 7, 17, "0+6+5", 13),
        ("E", 7, 17, "0+6+5+9", 15),
        ("E", 11, 21, "0+6", 13),
        ("E", 11, 21, "0+6+9", 15),
        ("E", 14, 24, "0+9", 15),
    ];
    assert_eq!(sorted_by_key_and_start(&out), list_expected(expected));
}

/// `KStreamSlidingWindowAggregateTest.testEarlyNoGracePeriodSmallInput` (emit on window update).
#[test]
fn kafka_test_early_no_grace_period_small_input() {
    let input: &[(&str, &str, i64)] = &[
        ("A", "1", 0),
        ("A", "2", 5),
        ("A", "3", 6),
        ("A", "4", 3),
        ("A", "5", 13),
        ("A", "6", 10),
        ("A", "6", 70),
    ];
    let out = run(Agg::Aggregate, 50, 0, input);
    let expected: &[(i64, &str, i64)] = &[
        (0, "0+1", 0),
        (0, "0+1+2", 5),
        (0, "0+1+2+3", 6),
        (0, "0+1+2+3+4", 6),
        (0, "0+1+2+3+4+5", 13),
        (0, "0+1+2+3+4+5+6", 13),
        (1, "0+2", 5),
        (1, "0+2+3", 6),
        (1, "0+2+3+4", 6),
        (1, "0+2+3+4+5", 13),
        (1, "0+2+3+4+5+6", 13),
        (4, "0+2+3", 6),
        (4, "0+2+3+5", 13),
        (4, "0+2+3+5+6", 13),
        (6, "0+3", 6),
        (6, "0+3+5", 13),
        (6, "0+3+5+6", 13),
        (7, "0+5", 13),
        (7, "0+5+6", 13),
        (11, "0+5", 13),
        (20, "0+6", 70),
    ];
    assert_eq!(by_start(&out), by_start_expected(expected));
}

/// `KStreamSlidingWindowAggregateTest.testNoGracePeriodSmallInput` (emit on window update).
#[test]
fn kafka_test_no_grace_period_small_input() {
    let input: &[(&str, &str, i64)] = &[
        ("A", "1", 100),
        ("A", "2", 105),
        ("A", "3", 106),
        ("A", "4", 103),
        ("A", "5", 113),
        ("A", "6", 110),
    ];
    let out = run(Agg::Aggregate, 50, 0, input);
    let expected: &[(i64, &str, i64)] = &[
        (50, "0+1", 100),
        (55, "0+1+2", 105),
        (56, "0+1+2+3", 106),
        (56, "0+1+2+3+4", 106),
        (63, "0+1+2+3+4+5", 113),
        (63, "0+1+2+3+4+5+6", 113),
        (101, "0+2", 105),
        (101, "0+2+3", 106),
        (101, "0+2+3+4", 106),
        (101, "0+2+3+4+5", 113),
        (101, "0+2+3+4+5+6", 113),
        (104, "0+2+3", 106),
        (104, "0+2+3+5", 113),
        (104, "0+2+3+5+6", 113),
        (106, "0+3", 106),
        (106, "0+3+5", 113),
        (106, "0+3+5+6", 113),
        (107, "0+5", 113),
        (107, "0+5+6", 113),
        (111, "0+5", 113),
    ];
    assert_eq!(by_start(&out), by_start_expected(expected));
}

/// `KStreamSlidingWindowAggregateTest.testEarlyNoGracePeriodLargeInput` (emit on window update).
#[test]
fn kafka_test_early_no_grace_period_large_input() {
    let input: &[(&str, &str, i64)] = &[
        ("E", "1", 0),
        ("E", "3", 5),
        ("E", "4", 6),
        ("E", "2", 3),
        ("E", "6", 13),
        ("E", "5", 10),
        ("E", "7", 4),
        ("E", "8", 2),
        ("E", "9", 15),
    ];
    let out = run(Agg::Aggregate, 10, 0, input);
    let expected: &[(&str, i64, i64, &str, i64)] = &[
        ("E", 0, 10, "0+1", 0),
        ("E", 0, 10, "0+1+3", 5),
        ("E", 0, 10, "0+1+3+4", 6),
        ("E", 0, 10, "0+1+3+4+2", 6),
        ("E", 1, 11, "0+3", 5),
        ("E", 1, 11, "0+3+4", 6),
        ("E", 1, 11, "0+3+4+2", 6),
        ("E", 3, 13, "0+3+4+2+6", 13),
        ("E", 3, 13, "0+3+4+2+6+5", 13),
        ("E", 3, 13, "0+3+4+2+6+5+7", 13),
        ("E", 4, 14, "0+3+4", 6),
        ("E", 4, 14, "0+3+4+6", 13),
        ("E", 4, 14, "0+3+4+6+5", 13),
        ("E", 4, 14, "0+3+4+6+5+7", 13),
        ("E", 5, 15, "0+3+4+6+5", 13),
        ("E", 5, 15, "0+3+4+6+5+9", 15),
        ("E", 6, 16, "0+4", 6),
        ("E", 6, 16, "0+4+6", 13),
        ("E", 6, 16, "0+4+6+5", 13),
        ("E", 6, 16, "0+4+6+5+9", 15),
        ("E", 7, 17, "0+6", 13),
        ("E", 7, 17, "0+6+5", 13),
        ("E", 7, 17, "0+6+5+9", 15),
        ("E", 11, 21, "0+6", 13),
        ("E", 11, 21, "0+6+9", 15),
        ("E", 14, 24, "0+9", 15),
    ];
    assert_eq!(sorted_by_key_and_start(&out), list_expected(expected));
}

/// `KStreamSlidingWindowAggregateTest.testNoGracePeriodLargeInput` (emit on window update).
#[test]
fn kafka_test_no_grace_period_large_input() {
    let input: &[(&str, &str, i64)] = &[
        ("E", "1", 100),
        ("E", "3", 105),
        ("E", "4", 106),
        ("E", "2", 103),
        ("E", "6", 113),
        ("E", "5", 110),
        ("E", "7", 104),
        ("E", "8", 102),
        ("E", "9", 115),
    ];
    let out = run(Agg::Aggregate, 10, 0, input);
    let expected: &[(&str, i64, i64, &str, i64)] = &[
        ("E", 90, 100, "0+1", 100),
        ("E", 95, 105, "0+1+3", 105),
        ("E", 96, 106, "0+1+3+4", 106),
        ("E", 96, 106, "0+1+3+4+2", 106),
        ("E", 101, 111, "0+3", 105),
        ("E", 101, 111, "0+3+4", 106),
        ("E", 101, 111, "0+3+4+2", 106),
        ("E", 103, 113, "0+3+4+2+6", 113),
        ("E", 103, 113, "0+3+4+2+6+5", 113),
        ("E", 103, 113, "0+3+4+2+6+5+7", 113),
        ("E", 104, 114, "0+3+4", 106),
        ("E", 104, 114, "0+3+4+6", 113),
        ("E", 104, 114, "0+3+4+6+5", 113),
        ("E", 104, 114, "0+3+4+6+5+7", 113),
        ("E", 105, 115, "0+3+4+6+5", 113),
        ("E", 105, 115, "0+3+4+6+5+9", 115),
        ("E", 106, 116, "0+4", 106),
        ("E", 106, 116, "0+4+6", 113),
        ("E", 106, 116, "0+4+6+5", 113),
        ("E", 106, 116, "0+4+6+5+9", 115),
        ("E", 107, 117, "0+6", 113),
        ("E", 107, 117, "0+6+5", 113),
        ("E", 107, 117, "0+6+5+9", 115),
        ("E", 111, 121, "0+6", 113),
        ("E", 111, 121, "0+6+9", 115),
        ("E", 114, 124, "0+9", 115),
    ];
    assert_eq!(sorted_by_key_and_start(&out), list_expected(expected));
}
