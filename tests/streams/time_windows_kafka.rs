//! Tumbling and hopping window aggregation against Kafka Streams' own unit tests, case by case
//! (apache/kafka, `streams/src/test/java/org/apache/kafka/streams/kstream/internals/`
//! `KStreamWindowAggregateTest.java` and `TimeWindowedKStreamImplTest.java`), with their inputs
//! and the results Kafka expects with emit-on-update (no cache). Kafka's
//! `MockInitializer.STRING_INIT` is `"0"`, `MockAggregator.TOSTRING_ADDER` is
//! `agg + "+" + value`, `MockReducer.STRING_ADDER` is `a + "+" + b`.

use std::time::Duration;

use riverbed::streams::{Builder, Materialized, TimeWindows, TopologyTestDriver, Window, Windowed};

fn ms(n: i64) -> Duration {
    Duration::from_millis(n as u64)
}

/// An output record: key, window start, window end, value, timestamp.
type Out = (String, i64, i64, String, i64);

fn aggregate_driver(windows: TimeWindows, init: &'static str) -> TopologyTestDriver {
    let b = Builder::new("time-windows-kafka");
    b.stream::<String, String>("topic")
        .group_by_key()
        .windowed_by(windows)
        .aggregate(
            move || init.to_string(),
            |_k, v, agg| format!("{agg}+{v}"),
            Materialized::named("store"),
        )
        .to_stream()
        .to("out");
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

fn list(expected: &[(&str, i64, i64, &str, i64)]) -> Vec<Out> {
    expected
        .iter()
        .map(|(k, s, e, v, t)| (k.to_string(), *s, *e, v.to_string(), *t))
        .collect()
}

/// `KStreamWindowAggregateTest.testAggBasic`: hopping windows (size 10, advance 5, grace 100);
/// every update in order, with the window's latest timestamp.
#[test]
fn kafka_test_agg_basic() {
    let mut d = aggregate_driver(
        TimeWindows::of_size_and_grace(ms(10), ms(100)).advance_by(ms(5)),
        "0",
    );
    let out = pipe(
        &mut d,
        &[
            ("A", "1", 0),
            ("B", "2", 1),
            ("C", "3", 2),
            ("D", "4", 3),
            ("A", "1", 4),
            ("A", "1", 5),
            ("B", "2", 6),
            ("D", "4", 7),
            ("B", "2", 8),
            ("C", "3", 9),
            ("A", "1", 10),
            ("B", "2", 11),
            ("D", "4", 12),
            ("B", "2", 13),
            ("C", "3", 14),
            ("B", "1", 3),
            ("B", "2", 2),
            ("B", "3", 9),
        ],
    );
    assert_eq!(
        out,
        list(&[
            ("A", 0, 10, "0+1", 0),
            ("B", 0, 10, "0+2", 1),
            ("C", 0, 10, "0+3", 2),
            ("D", 0, 10, "0+4", 3),
            ("A", 0, 10, "0+1+1", 4),
            ("A", 0, 10, "0+1+1+1", 5),
            ("A", 5, 15, "0+1", 5),
            ("B", 0, 10, "0+2+2", 6),
            ("B", 5, 15, "0+2", 6),
            ("D", 0, 10, "0+4+4", 7),
            ("D", 5, 15, "0+4", 7),
            ("B", 0, 10, "0+2+2+2", 8),
            ("B", 5, 15, "0+2+2", 8),
            ("C", 0, 10, "0+3+3", 9),
            ("C", 5, 15, "0+3", 9),
            ("A", 5, 15, "0+1+1", 10),
            ("A", 10, 20, "0+1", 10),
            ("B", 5, 15, "0+2+2+2", 11),
            ("B", 10, 20, "0+2", 11),
            ("D", 5, 15, "0+4+4", 12),
            ("D", 10, 20, "0+4", 12),
            ("B", 5, 15, "0+2+2+2+2", 13),
            ("B", 10, 20, "0+2+2", 13),
            ("C", 5, 15, "0+3+3", 14),
            ("C", 10, 20, "0+3", 14),
            ("B", 0, 10, "0+2+2+2+1", 8),
            ("B", 0, 10, "0+2+2+2+1+2", 8),
            ("B", 0, 10, "0+2+2+2+1+2+3", 9),
            ("B", 5, 15, "0+2+2+2+2+3", 13),
        ])
    );
    assert_eq!(d.metrics().dropped_records, 0);
}

/// `KStreamWindowAggregateTest.shouldLogAndMeterWhenSkippingExpiredWindow`: hopping windows
/// (size 10, advance 5, grace 90). k@0..k@6 arrive at stream time 100 (close time 10): window
/// [0, 10) has closed, [5, 15) has not. Kafka logs and counts one drop per closed window of a
/// record, so k@5 and k@6 count one each although they still update [5, 15): seven drops.
#[test]
fn kafka_should_log_and_meter_when_skipping_expired_window() {
    let mut d = aggregate_driver(
        TimeWindows::of_size_and_grace(ms(10), ms(90)).advance_by(ms(5)),
        "",
    );
    let out = pipe(
        &mut d,
        &[
            ("k", "100", 100),
            ("k", "0", 0),
            ("k", "1", 1),
            ("k", "2", 2),
            ("k", "3", 3),
            ("k", "4", 4),
            ("k", "5", 5),
            ("k", "6", 6),
            ("k", "105", 105),
            ("k", "106", 106),
        ],
    );
    assert_eq!(d.metrics().dropped_records, 7);
    assert_eq!(
        out,
        list(&[
            ("k", 95, 105, "+100", 100),
            ("k", 100, 110, "+100", 100),
            ("k", 5, 15, "+5", 5),
            ("k", 5, 15, "+5+6", 6),
            ("k", 100, 110, "+100+105", 105),
            ("k", 105, 115, "+105", 105),
            ("k", 100, 110, "+100+105+106", 106),
            ("k", 105, 115, "+105+106", 106),
        ])
    );
}

/// `KStreamWindowAggregateTest.shouldLogAndMeterWhenSkippingExpiredWindowByGrace`: tumbling
/// windows (size 10, grace 90); at stream time 200 the windows [100, 110) and [0, 10) have
/// closed: seven drops, one output.
#[test]
fn kafka_should_log_and_meter_when_skipping_expired_window_by_grace() {
    let mut d = aggregate_driver(
        TimeWindows::of_size_and_grace(ms(10), ms(90)).advance_by(ms(10)),
        "",
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
            ("k", "6", 6),
        ],
    );
    assert_eq!(d.metrics().dropped_records, 7);
    assert_eq!(out, list(&[("k", 200, 210, "+100", 200)]));
}

/// `TimeWindowedKStreamImplTest.processData` (tumbling, size 500, no grace).
const IMPL_DATA: &[(&str, &str, i64)] = &[
    ("1", "1", 10),
    ("1", "2", 15),
    ("1", "3", 500),
    ("2", "10", 550),
    ("2", "20", 500),
    ("2", "30", 1000),
];

/// `TimeWindowedKStreamImplTest.shouldAggregateWindowed` and `shouldReduceWindowed`.
#[test]
fn kafka_time_windowed_kstream_impl_aggregate_and_reduce() {
    let windows = TimeWindows::of_size_with_no_grace(ms(500));
    let mut d = aggregate_driver(windows, "0");
    assert_eq!(
        pipe(&mut d, IMPL_DATA),
        list(&[
            ("1", 0, 500, "0+1", 10),
            ("1", 0, 500, "0+1+2", 15),
            ("1", 500, 1000, "0+3", 500),
            ("2", 500, 1000, "0+10", 550),
            ("2", 500, 1000, "0+10+20", 550),
            ("2", 1000, 1500, "0+30", 1000),
        ])
    );

    let b = Builder::new("time-windows-reduce");
    b.stream::<String, String>("topic")
        .group_by_key()
        .windowed_by(windows)
        .reduce(|a, b| format!("{a}+{b}"), Materialized::named("reduced"))
        .to_stream()
        .to("out");
    let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    assert_eq!(
        pipe(&mut d, IMPL_DATA),
        list(&[
            ("1", 0, 500, "1", 10),
            ("1", 0, 500, "1+2", 15),
            ("1", 500, 1000, "3", 500),
            ("2", 500, 1000, "10", 550),
            ("2", 500, 1000, "10+20", 550),
            ("2", 1000, 1500, "30", 1000),
        ])
    );
    let store = d.window_store::<String, String>("reduced").unwrap();
    let got: Vec<(String, Window, String)> = store
        .fetch_all(0, 1000)
        .unwrap()
        .into_iter()
        .map(|(w, v)| (w.key, w.window, v))
        .collect();
    assert_eq!(
        got,
        [
            ("1".to_string(), Window::new(0, 500), "1+2".to_string()),
            ("1".to_string(), Window::new(500, 1000), "3".to_string()),
            ("2".to_string(), Window::new(500, 1000), "10+20".to_string()),
            ("2".to_string(), Window::new(1000, 1500), "30".to_string()),
        ]
    );
}

/// `TimeWindowedKStreamImplTest.shouldCountWindowed` and `shouldMaterializeCount`.
#[test]
fn kafka_time_windowed_kstream_impl_count() {
    let b = Builder::new("time-windows-count");
    b.stream::<String, String>("topic")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(ms(500)))
        .count(Materialized::named("count-store"))
        .to_stream()
        .to("out");
    let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    for (k, v, t) in IMPL_DATA {
        d.pipe_input("topic", &k.to_string(), &v.to_string(), *t)
            .unwrap();
    }
    let out: Vec<(String, i64, i64, i64)> = d
        .read_output::<Windowed<String>, i64>("out")
        .unwrap()
        .into_iter()
        .map(|r| (r.key.key, r.key.window.start, r.value, r.timestamp))
        .collect();
    let want: Vec<(String, i64, i64, i64)> = [
        ("1", 0, 1, 10),
        ("1", 0, 2, 15),
        ("1", 500, 1, 500),
        ("2", 500, 1, 550),
        ("2", 500, 2, 550),
        ("2", 1000, 1, 1000),
    ]
    .into_iter()
    .map(|(k, s, n, t)| (k.to_string(), s, n, t))
    .collect();
    assert_eq!(out, want);
    let store = d.window_store::<String, i64>("count-store").unwrap();
    let got: Vec<(String, i64, i64)> = store
        .fetch_all(0, 1000)
        .unwrap()
        .into_iter()
        .map(|(w, n)| (w.key, w.window.start, n))
        .collect();
    assert_eq!(
        got,
        [
            ("1".to_string(), 0, 2),
            ("1".to_string(), 500, 1),
            ("2".to_string(), 500, 2),
            ("2".to_string(), 1000, 1),
        ]
    );
}

/// `TimeWindowsTest.shouldComputeWindowsForHoppingWindows`,
/// `shouldComputeWindowsForBarelyOverlappingHoppingWindows` and
/// `shouldComputeWindowsForTumblingWindows` (streams/src/test/java/org/apache/kafka/streams/
/// kstream/TimeWindowsTest.java).
#[test]
fn kafka_time_windows_test_windows_for() {
    let hopping = TimeWindows::of_size_with_no_grace(ms(12)).advance_by(ms(5));
    assert_eq!(
        hopping.windows_for(21),
        [
            Window::new(10, 22),
            Window::new(15, 27),
            Window::new(20, 32)
        ]
    );
    let barely = TimeWindows::of_size_with_no_grace(ms(6)).advance_by(ms(5));
    assert_eq!(barely.windows_for(7), [Window::new(5, 11)]);
    let tumbling = TimeWindows::of_size_with_no_grace(ms(12));
    assert_eq!(tumbling.windows_for(21), [Window::new(12, 24)]);
}

/// `TimeWindowsTest.advanceIntervalMustNotBeZero`, `advanceIntervalMustNotBeLargerThanWindowSize`
/// and `windowSizeMustNotBeZero`: Kafka refuses these when the windows are made; Riverbed when
/// the topology is built. (Negative sizes cannot be written: `Duration` is unsigned.)
#[test]
fn kafka_time_windows_test_bad_specs() {
    for windows in [
        TimeWindows::of_size_with_no_grace(ms(10)).advance_by(ms(0)),
        TimeWindows::of_size_with_no_grace(ms(10)).advance_by(ms(11)),
        TimeWindows::of_size_with_no_grace(ms(0)),
    ] {
        let b = Builder::new("bad-windows");
        b.stream::<String, String>("topic")
            .group_by_key()
            .windowed_by(windows)
            .count(Materialized::named("c"));
        assert!(b.build().is_err(), "{windows:?} must be refused");
    }
}
