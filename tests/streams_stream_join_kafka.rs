//! Stream-stream joins against Kafka Streams' own unit tests, case by case (apache/kafka,
//! `streams/src/test/java/org/apache/kafka/streams/kstream/internals/`
//! `KStreamKStreamOuterJoinTest.java`, `KStreamKStreamLeftJoinTest.java`,
//! `KStreamKStreamJoinTest.java`), with their inputs and the results Kafka expects, in
//! Kafka's order. Kafka's `MockValueJoiner.TOSTRING_JOINER` is `left + "+" + right`, a missing
//! side printing as `null`.

use std::time::Duration;

use riverbed::streams::{Builder, JoinWindows, TopologyTestDriver};

fn ms(n: i64) -> Duration {
    Duration::from_millis(n as u64)
}

fn show<T: ToString>(v: Option<&T>) -> String {
    v.map_or_else(|| "null".to_string(), ToString::to_string)
}

#[derive(Clone, Copy)]
enum Kind {
    Inner,
    Left,
    Outer,
}

/// `topic1` (i32 -> String) joined with `topic2` (i32 -> i64) by `kind` over `windows`.
fn driver(kind: Kind, windows: JoinWindows) -> TopologyTestDriver {
    let b = Builder::new("stream-join-kafka");
    let s1 = b.stream::<i32, String>("topic1");
    let s2 = b.stream::<i32, i64>("topic2");
    let joined = match kind {
        Kind::Inner => s1.join_stream(&s2, |l, r| format!("{l}+{r}"), windows),
        Kind::Left => s1.left_join_stream(&s2, |l, r| format!("{l}+{}", show(r)), windows),
        Kind::Outer => {
            s1.outer_join_stream(&s2, |l, r| format!("{}+{}", show(l), show(r)), windows)
        }
    };
    joined.to("out");
    TopologyTestDriver::new(b.build().unwrap()).unwrap()
}

fn left(d: &mut TopologyTestDriver, k: i32, v: &str, ts: i64) {
    d.pipe_input("topic1", &k, &v.to_string(), ts).unwrap();
}

fn right(d: &mut TopologyTestDriver, k: i32, v: i64, ts: i64) {
    d.pipe_input("topic2", &k, &v, ts).unwrap();
}

/// What came out since the last call: (key, value, timestamp), in order.
fn results(d: &mut TopologyTestDriver) -> Vec<(i32, String, i64)> {
    d.read_output::<i32, String>("out")
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect()
}

fn want(expected: &[(i32, &str, i64)]) -> Vec<(i32, String, i64)> {
    expected
        .iter()
        .map(|(k, v, t)| (*k, v.to_string(), *t))
        .collect()
}

/// `KStreamKStreamOuterJoinTest.testOuterJoinDuplicates`: the unmatched records that close
/// together come out by timestamp, right side first at equal timestamps, duplicates in arrival
/// order (issue 13, item 11: Riverbed used to emit them by side, left first).
#[test]
fn kafka_outer_join_duplicates() {
    let mut d = driver(
        Kind::Outer,
        JoinWindows::of_time_difference_and_grace(ms(100), ms(10)),
    );
    left(&mut d, 0, "A0", 0);
    left(&mut d, 0, "A0-0", 0);
    right(&mut d, 1, 11, 0);
    right(&mut d, 1, 12, 0);
    right(&mut d, 1, 10, 111);
    right(&mut d, 3, 100, 211);
    assert_eq!(
        results(&mut d),
        want(&[
            (1, "null+11", 0),
            (1, "null+12", 0),
            (0, "A0+null", 0),
            (0, "A0-0+null", 0),
        ])
    );
    left(&mut d, 2, "A2", 200);
    left(&mut d, 2, "A2-0", 200);
    right(&mut d, 2, 13, 201);
    right(&mut d, 2, 14, 201);
    assert_eq!(
        results(&mut d),
        want(&[
            (2, "A2+13", 201),
            (2, "A2-0+13", 201),
            (2, "A2+14", 201),
            (2, "A2-0+14", 201),
        ])
    );
    right(&mut d, 3, 100, 1500);
    assert_eq!(
        results(&mut d),
        want(&[(1, "null+10", 111), (3, "null+100", 211)])
    );
}

/// `KStreamKStreamOuterJoinTest.testOrdering` and `KStreamKStreamLeftJoinTest.testOrdering`:
/// the unmatched record whose window the new record closes comes out before the new record's
/// join result.
#[test]
fn kafka_outer_and_left_ordering() {
    for (kind, joined) in [(Kind::Outer, "A1+11"), (Kind::Left, "A1+11")] {
        let mut d = driver(kind, JoinWindows::of_time_difference_without_grace(ms(100)));
        left(&mut d, 0, "A0", 0);
        left(&mut d, 1, "A1", 100);
        assert!(results(&mut d).is_empty());
        right(&mut d, 1, 11, 110);
        assert_eq!(
            results(&mut d),
            want(&[(0, "A0+null", 0), (1, joined, 110)])
        );
    }
}

/// `KStreamKStreamOuterJoinTest.testGracePeriod`: nothing before the windows close (ended is
/// not closed), then the right record first at the equal timestamp.
#[test]
fn kafka_outer_grace_period() {
    let mut d = driver(
        Kind::Outer,
        JoinWindows::of_time_difference_and_grace(ms(100), ms(10)),
    );
    left(&mut d, 0, "A0", 0);
    right(&mut d, 1, 11, 0);
    assert!(results(&mut d).is_empty());
    left(&mut d, 1, "A1", 101);
    right(&mut d, 0, 10, 101);
    assert!(results(&mut d).is_empty());
    right(&mut d, 0, 100, 112);
    assert_eq!(
        results(&mut d),
        want(&[(1, "null+11", 0), (0, "A0+null", 0)])
    );
}

/// `KStreamKStreamOuterJoinTest.testEmitAllNonJoinedResultsForAsymmetricWindow` (before 5,
/// after 20, no grace): a left record's window closes at ts + 20, a right one's at ts + 5; the
/// ones closing together come out by timestamp (A0@29 before null+13@36), not by close time.
#[test]
fn kafka_outer_emit_all_non_joined_results_for_asymmetric_window() {
    let mut d = driver(
        Kind::Outer,
        JoinWindows::of_time_difference_without_grace(ms(5)).after(ms(20)),
    );
    left(&mut d, 0, "A0", 29);
    left(&mut d, 1, "A1", 30);
    right(&mut d, 2, 12, 31);
    right(&mut d, 3, 13, 36);
    assert!(results(&mut d).is_empty());
    right(&mut d, 4, 14, 37);
    assert_eq!(results(&mut d), want(&[(2, "null+12", 31)]));
    right(&mut d, 5, 15, 50);
    assert_eq!(
        results(&mut d),
        want(&[(0, "A0+null", 29), (3, "null+13", 36), (4, "null+14", 37)])
    );
}

/// `KStreamKStreamLeftJoinTest.testLeftJoinDuplicates` (right values are numbers here; Kafka's
/// are strings `a0`, `dummy`, `a2`, `a3`).
#[test]
fn kafka_left_join_duplicates() {
    let mut d = driver(
        Kind::Left,
        JoinWindows::of_time_difference_and_grace(ms(100), ms(10)),
    );
    left(&mut d, 0, "A0", 0);
    left(&mut d, 0, "A0-0", 0);
    right(&mut d, 1, 0, 111);
    right(&mut d, 2, -1, 500);
    assert_eq!(
        results(&mut d),
        want(&[(0, "A0+null", 0), (0, "A0-0+null", 0)])
    );
    left(&mut d, 2, "A2", 1000);
    left(&mut d, 2, "A2-0", 1000);
    right(&mut d, 2, 2, 1001);
    assert_eq!(
        results(&mut d),
        want(&[(2, "A2+2", 1001), (2, "A2-0+2", 1001)])
    );
    right(&mut d, 3, 3, 315);
    assert!(results(&mut d).is_empty());
}

/// `KStreamKStreamLeftJoinTest.testGracePeriod`: left records A0, A1 at 0; right records at
/// 101 (outside the 100 ms window); at 1201 the left ones come out unmatched, by key.
#[test]
fn kafka_left_grace_period() {
    let mut d = driver(
        Kind::Left,
        JoinWindows::of_time_difference_and_grace(ms(100), ms(10)),
    );
    for k in 0..2 {
        left(&mut d, k, &format!("A{k}"), 0);
    }
    assert!(results(&mut d).is_empty());
    for k in 0..4 {
        right(&mut d, k, i64::from(k), 101);
    }
    assert!(results(&mut d).is_empty());
    right(&mut d, 0, -1, 1201);
    assert_eq!(
        results(&mut d),
        want(&[(0, "A0+null", 0), (1, "A1+null", 0)])
    );
}
