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

/// One step of a translated Kafka join test: a left or right record (key, value, timestamp),
/// or the results expected since the last check, in order.
enum Step {
    L(i32, &'static str, i64),
    R(i32, &'static str, i64),
    Check(&'static [(i32, &'static str, i64)]),
}

/// `topic1` and `topic2` (both i32 -> String, as in `KStreamKStreamJoinTest`) joined by
/// `kind`, fed `steps`.
fn run_steps(kind: Kind, windows: JoinWindows, steps: &[Step]) {
    let b = Builder::new("stream-join-kafka-steps");
    let s1 = b.stream::<i32, String>("topic1");
    let s2 = b.stream::<i32, String>("topic2");
    let joined = match kind {
        Kind::Inner => s1.join_stream(&s2, |l, r| format!("{l}+{r}"), windows),
        Kind::Left => s1.left_join_stream(&s2, |l, r| format!("{l}+{}", show(r)), windows),
        Kind::Outer => {
            s1.outer_join_stream(&s2, |l, r| format!("{}+{}", show(l), show(r)), windows)
        }
    };
    joined.to("out");
    let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::L(k, v, t) => d.pipe_input("topic1", k, &v.to_string(), *t).unwrap(),
            Step::R(k, v, t) => d.pipe_input("topic2", k, &v.to_string(), *t).unwrap(),
            Step::Check(expected) => {
                assert_eq!(results(&mut d), want(expected), "check at step {i}");
            }
        }
    }
}

// The cases below are generated from KStreamKStreamJoinTest.java: its inputs (the loops over
// `expectedKeys` {0, 1, 2, 3} unrolled) and each `checkAndClearProcessResult`.

/// `KStreamKStreamJoinTest.testJoin`.
#[test]
fn kafka_kstreamjointest_test_join() {
    let steps: &[Step] = &[
        Step::L(0, "A0", 0),
        Step::L(1, "A1", 0),
        Step::Check(&[]),
        Step::R(0, "a0", 0),
        Step::R(1, "a1", 0),
        Step::Check(&[(0, "A0+a0", 0), (1, "A1+a1", 0)]),
        Step::L(0, "B0", 0),
        Step::L(1, "B1", 0),
        Step::L(2, "B2", 0),
        Step::L(3, "B3", 0),
        Step::Check(&[(0, "B0+a0", 0), (1, "B1+a1", 0)]),
        Step::R(0, "b0", 0),
        Step::R(1, "b1", 0),
        Step::R(2, "b2", 0),
        Step::R(3, "b3", 0),
        Step::Check(&[
            (0, "A0+b0", 0),
            (0, "B0+b0", 0),
            (1, "A1+b1", 0),
            (1, "B1+b1", 0),
            (2, "B2+b2", 0),
            (3, "B3+b3", 0),
        ]),
        Step::L(0, "C0", 0),
        Step::L(1, "C1", 0),
        Step::L(2, "C2", 0),
        Step::L(3, "C3", 0),
        Step::Check(&[
            (0, "C0+a0", 0),
            (0, "C0+b0", 0),
            (1, "C1+a1", 0),
            (1, "C1+b1", 0),
            (2, "C2+b2", 0),
            (3, "C3+b3", 0),
        ]),
        Step::R(0, "c0", 0),
        Step::R(1, "c1", 0),
        Step::Check(&[
            (0, "A0+c0", 0),
            (0, "B0+c0", 0),
            (0, "C0+c0", 0),
            (1, "A1+c1", 0),
            (1, "B1+c1", 0),
            (1, "C1+c1", 0),
        ]),
    ];
    run_steps(
        Kind::Inner,
        JoinWindows::of_time_difference_and_grace(ms(100), ms(0)),
        steps,
    );
}

/// `KStreamKStreamJoinTest.testOuterJoin`.
#[test]
fn kafka_kstreamjointest_test_outer_join() {
    let steps: &[Step] = &[
        Step::L(0, "A0", 0),
        Step::L(1, "A1", 0),
        Step::Check(&[]),
        Step::R(0, "a0", 0),
        Step::R(1, "a1", 0),
        Step::Check(&[(0, "A0+a0", 0), (1, "A1+a1", 0)]),
        Step::L(0, "B0", 0),
        Step::L(1, "B1", 0),
        Step::L(2, "B2", 0),
        Step::L(3, "B3", 0),
        Step::Check(&[(0, "B0+a0", 0), (1, "B1+a1", 0)]),
        Step::R(0, "b0", 0),
        Step::R(1, "b1", 0),
        Step::R(2, "b2", 0),
        Step::R(3, "b3", 0),
        Step::Check(&[
            (0, "A0+b0", 0),
            (0, "B0+b0", 0),
            (1, "A1+b1", 0),
            (1, "B1+b1", 0),
            (2, "B2+b2", 0),
            (3, "B3+b3", 0),
        ]),
        Step::L(0, "C0", 0),
        Step::L(1, "C1", 0),
        Step::L(2, "C2", 0),
        Step::L(3, "C3", 0),
        Step::Check(&[
            (0, "C0+a0", 0),
            (0, "C0+b0", 0),
            (1, "C1+a1", 0),
            (1, "C1+b1", 0),
            (2, "C2+b2", 0),
            (3, "C3+b3", 0),
        ]),
        Step::R(0, "c0", 0),
        Step::R(1, "c1", 0),
        Step::Check(&[
            (0, "A0+c0", 0),
            (0, "B0+c0", 0),
            (0, "C0+c0", 0),
            (1, "A1+c1", 0),
            (1, "B1+c1", 0),
            (1, "C1+c1", 0),
        ]),
    ];
    run_steps(
        Kind::Outer,
        JoinWindows::of_time_difference_and_grace(ms(100), ms(86400000)),
        steps,
    );
}

/// `KStreamKStreamJoinTest.testWindowing`.
#[test]
fn kafka_kstreamjointest_test_windowing() {
    let steps: &[Step] = &[
        Step::L(0, "A0", 0),
        Step::L(1, "A1", 0),
        Step::Check(&[]),
        Step::R(0, "a0", 0),
        Step::R(1, "a1", 0),
        Step::Check(&[(0, "A0+a0", 0), (1, "A1+a1", 0)]),
        Step::L(0, "B0", 1000),
        Step::L(1, "B1", 1001),
        Step::L(2, "B2", 1002),
        Step::L(3, "B3", 1003),
        Step::Check(&[]),
        Step::R(0, "b0", 1100),
        Step::R(1, "b1", 1100),
        Step::R(2, "b2", 1100),
        Step::R(3, "b3", 1100),
        Step::Check(&[
            (0, "B0+b0", 1100),
            (1, "B1+b1", 1100),
            (2, "B2+b2", 1100),
            (3, "B3+b3", 1100),
        ]),
        Step::R(0, "c0", 1101),
        Step::R(1, "c1", 1101),
        Step::R(2, "c2", 1101),
        Step::R(3, "c3", 1101),
        Step::Check(&[(1, "B1+c1", 1101), (2, "B2+c2", 1101), (3, "B3+c3", 1101)]),
        Step::R(0, "d0", 1102),
        Step::R(1, "d1", 1102),
        Step::R(2, "d2", 1102),
        Step::R(3, "d3", 1102),
        Step::Check(&[(2, "B2+d2", 1102), (3, "B3+d3", 1102)]),
        Step::R(0, "e0", 1103),
        Step::R(1, "e1", 1103),
        Step::R(2, "e2", 1103),
        Step::R(3, "e3", 1103),
        Step::Check(&[(3, "B3+e3", 1103)]),
        Step::R(0, "f0", 1104),
        Step::R(1, "f1", 1104),
        Step::R(2, "f2", 1104),
        Step::R(3, "f3", 1104),
        Step::Check(&[]),
        Step::R(0, "g0", 899),
        Step::R(1, "g1", 899),
        Step::R(2, "g2", 899),
        Step::R(3, "g3", 899),
        Step::Check(&[]),
        Step::R(0, "h0", 900),
        Step::R(1, "h1", 900),
        Step::R(2, "h2", 900),
        Step::R(3, "h3", 900),
        Step::Check(&[(0, "B0+h0", 1000)]),
        Step::R(0, "i0", 901),
        Step::R(1, "i1", 901),
        Step::R(2, "i2", 901),
        Step::R(3, "i3", 901),
        Step::Check(&[(0, "B0+i0", 1000), (1, "B1+i1", 1001)]),
        Step::R(0, "j0", 902),
        Step::R(1, "j1", 902),
        Step::R(2, "j2", 902),
        Step::R(3, "j3", 902),
        Step::Check(&[(0, "B0+j0", 1000), (1, "B1+j1", 1001), (2, "B2+j2", 1002)]),
        Step::R(0, "k0", 903),
        Step::R(1, "k1", 903),
        Step::R(2, "k2", 903),
        Step::R(3, "k3", 903),
        Step::Check(&[
            (0, "B0+k0", 1000),
            (1, "B1+k1", 1001),
            (2, "B2+k2", 1002),
            (3, "B3+k3", 1003),
        ]),
        Step::R(0, "l0", 2000),
        Step::R(1, "l1", 2001),
        Step::R(2, "l2", 2002),
        Step::R(3, "l3", 2003),
        Step::Check(&[]),
        Step::L(0, "C0", 2100),
        Step::L(1, "C1", 2100),
        Step::L(2, "C2", 2100),
        Step::L(3, "C3", 2100),
        Step::Check(&[
            (0, "C0+l0", 2100),
            (1, "C1+l1", 2100),
            (2, "C2+l2", 2100),
            (3, "C3+l3", 2100),
        ]),
        Step::L(0, "D0", 2101),
        Step::L(1, "D1", 2101),
        Step::L(2, "D2", 2101),
        Step::L(3, "D3", 2101),
        Step::Check(&[(1, "D1+l1", 2101), (2, "D2+l2", 2101), (3, "D3+l3", 2101)]),
        Step::L(0, "E0", 2102),
        Step::L(1, "E1", 2102),
        Step::L(2, "E2", 2102),
        Step::L(3, "E3", 2102),
        Step::Check(&[(2, "E2+l2", 2102), (3, "E3+l3", 2102)]),
        Step::L(0, "F0", 2103),
        Step::L(1, "F1", 2103),
        Step::L(2, "F2", 2103),
        Step::L(3, "F3", 2103),
        Step::Check(&[(3, "F3+l3", 2103)]),
        Step::L(0, "G0", 2104),
        Step::L(1, "G1", 2104),
        Step::L(2, "G2", 2104),
        Step::L(3, "G3", 2104),
        Step::Check(&[]),
        Step::L(0, "H0", 1899),
        Step::L(1, "H1", 1899),
        Step::L(2, "H2", 1899),
        Step::L(3, "H3", 1899),
        Step::Check(&[]),
        Step::L(0, "I0", 1900),
        Step::L(1, "I1", 1900),
        Step::L(2, "I2", 1900),
        Step::L(3, "I3", 1900),
        Step::Check(&[(0, "I0+l0", 2000)]),
        Step::L(0, "J0", 1901),
        Step::L(1, "J1", 1901),
        Step::L(2, "J2", 1901),
        Step::L(3, "J3", 1901),
        Step::Check(&[(0, "J0+l0", 2000), (1, "J1+l1", 2001)]),
        Step::L(0, "K0", 1902),
        Step::L(1, "K1", 1902),
        Step::L(2, "K2", 1902),
        Step::L(3, "K3", 1902),
        Step::Check(&[(0, "K0+l0", 2000), (1, "K1+l1", 2001), (2, "K2+l2", 2002)]),
        Step::L(0, "L0", 1903),
        Step::L(1, "L1", 1903),
        Step::L(2, "L2", 1903),
        Step::L(3, "L3", 1903),
        Step::Check(&[
            (0, "L0+l0", 2000),
            (1, "L1+l1", 2001),
            (2, "L2+l2", 2002),
            (3, "L3+l3", 2003),
        ]),
    ];
    run_steps(
        Kind::Inner,
        JoinWindows::of_time_difference_and_grace(ms(100), ms(0)),
        steps,
    );
}

/// `KStreamKStreamJoinTest.testAsymmetricWindowingAfter`.
#[test]
fn kafka_kstreamjointest_test_asymmetric_windowing_after() {
    let steps: &[Step] = &[
        Step::L(0, "A0", 1000),
        Step::L(1, "A1", 1001),
        Step::L(2, "A2", 1002),
        Step::L(3, "A3", 1003),
        Step::Check(&[]),
        Step::R(0, "a0", 999),
        Step::R(1, "a1", 999),
        Step::R(2, "a2", 999),
        Step::R(3, "a3", 999),
        Step::Check(&[]),
        Step::R(0, "b0", 1000),
        Step::R(1, "b1", 1000),
        Step::R(2, "b2", 1000),
        Step::R(3, "b3", 1000),
        Step::Check(&[(0, "A0+b0", 1000)]),
        Step::R(0, "c0", 1001),
        Step::R(1, "c1", 1001),
        Step::R(2, "c2", 1001),
        Step::R(3, "c3", 1001),
        Step::Check(&[(0, "A0+c0", 1001), (1, "A1+c1", 1001)]),
        Step::R(0, "d0", 1002),
        Step::R(1, "d1", 1002),
        Step::R(2, "d2", 1002),
        Step::R(3, "d3", 1002),
        Step::Check(&[(0, "A0+d0", 1002), (1, "A1+d1", 1002), (2, "A2+d2", 1002)]),
        Step::R(0, "e0", 1003),
        Step::R(1, "e1", 1003),
        Step::R(2, "e2", 1003),
        Step::R(3, "e3", 1003),
        Step::Check(&[
            (0, "A0+e0", 1003),
            (1, "A1+e1", 1003),
            (2, "A2+e2", 1003),
            (3, "A3+e3", 1003),
        ]),
        Step::R(0, "f0", 1100),
        Step::R(1, "f1", 1100),
        Step::R(2, "f2", 1100),
        Step::R(3, "f3", 1100),
        Step::Check(&[
            (0, "A0+f0", 1100),
            (1, "A1+f1", 1100),
            (2, "A2+f2", 1100),
            (3, "A3+f3", 1100),
        ]),
        Step::R(0, "g0", 1101),
        Step::R(1, "g1", 1101),
        Step::R(2, "g2", 1101),
        Step::R(3, "g3", 1101),
        Step::Check(&[(1, "A1+g1", 1101), (2, "A2+g2", 1101), (3, "A3+g3", 1101)]),
        Step::R(0, "h0", 1102),
        Step::R(1, "h1", 1102),
        Step::R(2, "h2", 1102),
        Step::R(3, "h3", 1102),
        Step::Check(&[(2, "A2+h2", 1102), (3, "A3+h3", 1102)]),
        Step::R(0, "i0", 1103),
        Step::R(1, "i1", 1103),
        Step::R(2, "i2", 1103),
        Step::R(3, "i3", 1103),
        Step::Check(&[(3, "A3+i3", 1103)]),
        Step::R(0, "j0", 1104),
        Step::R(1, "j1", 1104),
        Step::R(2, "j2", 1104),
        Step::R(3, "j3", 1104),
        Step::Check(&[]),
    ];
    run_steps(
        Kind::Inner,
        JoinWindows::of_time_difference_and_grace(ms(0), ms(0)).after(ms(100)),
        steps,
    );
}

/// `KStreamKStreamJoinTest.testAsymmetricWindowingBefore`.
#[test]
fn kafka_kstreamjointest_test_asymmetric_windowing_before() {
    let steps: &[Step] = &[
        Step::L(0, "A0", 1000),
        Step::L(1, "A1", 1001),
        Step::L(2, "A2", 1002),
        Step::L(3, "A3", 1003),
        Step::Check(&[]),
        Step::R(0, "a0", 899),
        Step::R(1, "a1", 899),
        Step::R(2, "a2", 899),
        Step::R(3, "a3", 899),
        Step::Check(&[]),
        Step::R(0, "b0", 900),
        Step::R(1, "b1", 900),
        Step::R(2, "b2", 900),
        Step::R(3, "b3", 900),
        Step::Check(&[(0, "A0+b0", 1000)]),
        Step::R(0, "c0", 901),
        Step::R(1, "c1", 901),
        Step::R(2, "c2", 901),
        Step::R(3, "c3", 901),
        Step::Check(&[(0, "A0+c0", 1000), (1, "A1+c1", 1001)]),
        Step::R(0, "d0", 902),
        Step::R(1, "d1", 902),
        Step::R(2, "d2", 902),
        Step::R(3, "d3", 902),
        Step::Check(&[(0, "A0+d0", 1000), (1, "A1+d1", 1001), (2, "A2+d2", 1002)]),
        Step::R(0, "e0", 903),
        Step::R(1, "e1", 903),
        Step::R(2, "e2", 903),
        Step::R(3, "e3", 903),
        Step::Check(&[
            (0, "A0+e0", 1000),
            (1, "A1+e1", 1001),
            (2, "A2+e2", 1002),
            (3, "A3+e3", 1003),
        ]),
        Step::R(0, "f0", 1000),
        Step::R(1, "f1", 1000),
        Step::R(2, "f2", 1000),
        Step::R(3, "f3", 1000),
        Step::Check(&[
            (0, "A0+f0", 1000),
            (1, "A1+f1", 1001),
            (2, "A2+f2", 1002),
            (3, "A3+f3", 1003),
        ]),
        Step::R(0, "g0", 1001),
        Step::R(1, "g1", 1001),
        Step::R(2, "g2", 1001),
        Step::R(3, "g3", 1001),
        Step::Check(&[(1, "A1+g1", 1001), (2, "A2+g2", 1002), (3, "A3+g3", 1003)]),
        Step::R(0, "h0", 1002),
        Step::R(1, "h1", 1002),
        Step::R(2, "h2", 1002),
        Step::R(3, "h3", 1002),
        Step::Check(&[(2, "A2+h2", 1002), (3, "A3+h3", 1003)]),
        Step::R(0, "i0", 1003),
        Step::R(1, "i1", 1003),
        Step::R(2, "i2", 1003),
        Step::R(3, "i3", 1003),
        Step::Check(&[(3, "A3+i3", 1003)]),
        Step::R(0, "j0", 1004),
        Step::R(1, "j1", 1004),
        Step::R(2, "j2", 1004),
        Step::R(3, "j3", 1004),
        Step::Check(&[]),
    ];
    run_steps(
        Kind::Inner,
        JoinWindows::of_time_difference_and_grace(ms(0), ms(0)).before(ms(100)),
        steps,
    );
}
