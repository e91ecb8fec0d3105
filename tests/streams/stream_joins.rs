//! Stream-stream windowed joins (inner, left, outer) run by the test driver over random
//! interleavings of left and right records (few keys, out-of-order timestamps, records within
//! and beyond grace), compared step by step with a plain declarative model of the semantics;
//! plus the dropped-record metric at the grace boundary and a join after a key change.

use std::time::Duration;

use proptest::prelude::*;
use riverbed::streams::{Builder, JoinWindows, Topology, TopologyTestDriver};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Inner,
    Left,
    Outer,
}

/// An input record: left side?, key, timestamp. Its value is `L<i>` or `R<i>` (`i` its index).
type Input = (bool, u8, i64);

/// An output record: key, value, timestamp.
type Output = (String, String, i64);

fn show(v: Option<&String>) -> &str {
    v.map_or("-", |v| v.as_str())
}

fn topology(kind: Kind, windows: JoinWindows) -> Topology {
    let b = Builder::new("ssj");
    let left = b.stream::<String, String>("left");
    let right = b.stream::<String, String>("right");
    let joined = match kind {
        Kind::Inner => left.join_stream(&right, |l, r| format!("{l}+{r}"), windows),
        Kind::Left => left.left_join_stream(&right, |l, r| format!("{l}+{}", show(r)), windows),
        Kind::Outer => {
            left.outer_join_stream(&right, |l, r| format!("{}+{}", show(l), show(r)), windows)
        }
    };
    joined.to("out");
    b.build().unwrap()
}

/// The model, step by step (Kafka's rules, with Riverbed's one deliberate difference: a
/// record emitted alone never pairs later). With `now_j` the largest timestamp among inputs
/// `0..=j`, a record's window open while `now <= ts + reach + grace` (reach `after` for left
/// records, `before` for right ones) and Kafka's join store retaining it while
/// `now <= ts + before + after + grace`:
/// - a record with a negative timestamp is dropped;
/// - record `j` pairs with each earlier record `i` on the other side, same key,
///   `l.ts - before <= r.ts <= l.ts + after`, that is still held: stored, retained, and either
///   its window is open or it had a pair before its window closed (or its side's unmatched
///   records are not emitted);
/// - a record that arrives after its window closed: if it finds no pair and its side's
///   unmatched records are emitted, it comes out alone at once and is not stored; otherwise it
///   is stored unless it is past retention (then it counts as dropped, as Kafka's store
///   meters it);
/// - a stored record with no pair by the time its window closes is emitted (left: left and
///   outer joins; right: outer join) at the first step after it whose `now` is past its
///   window, and forgotten.
///
/// Returns the outputs of each step and the number of dropped records.
fn model(
    kind: Kind,
    (before, after, grace): (i64, i64, i64),
    inputs: &[Input],
) -> (Vec<Vec<Output>>, u64) {
    let last_open = |(left, _, ts): Input| ts + if left { after } else { before } + grace;
    let retained = |(_, _, ts): Input| ts + before + after + grace;
    let emits = |(left, _, _): Input| match kind {
        Kind::Inner => false,
        Kind::Left => left,
        Kind::Outer => true,
    };
    let value = |i: usize| format!("{}{i}", if inputs[i].0 { "L" } else { "R" });
    let alone = |i: usize| {
        let v = if inputs[i].0 {
            format!("{}+-", value(i))
        } else {
            format!("-+{}", value(i))
        };
        (format!("k{}", inputs[i].1), v, inputs[i].2)
    };
    let mut now = Vec::new();
    for (j, &(_, _, ts)) in inputs.iter().enumerate() {
        now.push(if j == 0 { ts } else { ts.max(now[j - 1]) });
    }
    let in_range = |a: Input, b: Input| {
        let (l, r) = if a.0 { (a, b) } else { (b, a) };
        a.0 != b.0 && a.1 == b.1 && l.2 - before <= r.2 && r.2 <= l.2 + after
    };
    let n = inputs.len();
    let mut steps: Vec<Vec<Output>> = vec![Vec::new(); n];
    let mut stored = vec![false; n];
    // The step at which a record first paired, and the step at which its window closed.
    let mut first_pair: Vec<Option<usize>> = vec![None; n];
    let mut closed_at: Vec<Option<usize>> = vec![None; n];
    let mut dropped = 0u64;
    for j in 0..n {
        // Windows closing at this step: unmatched records of an emitting side come out.
        for i in 0..j {
            if stored[i] && closed_at[i].is_none() && now[j] > last_open(inputs[i]) {
                closed_at[i] = Some(j);
                if first_pair[i].is_none() && emits(inputs[i]) {
                    steps[j].push(alone(i));
                    stored[i] = false;
                }
            }
        }
        if inputs[j].2 < 0 {
            dropped += 1;
            continue;
        }
        let mut paired = false;
        for i in 0..j {
            if stored[i] && retained(inputs[i]) >= now[j] && in_range(inputs[i], inputs[j]) {
                paired = true;
                first_pair[i].get_or_insert(j);
                let (l, r) = if inputs[i].0 { (i, j) } else { (j, i) };
                steps[j].push((
                    format!("k{}", inputs[j].1),
                    format!("{}+{}", value(l), value(r)),
                    inputs[i].2.max(inputs[j].2),
                ));
            }
        }
        if paired {
            first_pair[j] = Some(j);
        }
        let late = last_open(inputs[j]) < now[j];
        if late && !paired && emits(inputs[j]) {
            steps[j].push(alone(j));
            continue;
        }
        if retained(inputs[j]) < now[j] {
            dropped += 1;
            continue;
        }
        stored[j] = true;
        if late {
            closed_at[j] = Some(j);
        }
    }
    (steps, dropped)
}

fn read(d: &mut TopologyTestDriver) -> Vec<Output> {
    let mut out: Vec<Output> = d
        .read_output::<String, String>("out")
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect();
    out.sort();
    out
}

/// Pipes `inputs` (then a record far ahead, on a key of its own, that closes every window) and
/// checks each step's outputs, the dropped count, and that closed windows left the stores.
fn check(kind: Kind, spec: (i64, i64, i64), inputs: &[Input]) -> Result<(), TestCaseError> {
    let (before, after, grace) = spec;
    let ms = |x: i64| Duration::from_millis(x as u64);
    let windows =
        JoinWindows::of_time_difference_and_grace(ms(after), ms(grace)).before(ms(before));
    let topology = topology(kind, windows);
    let stores = topology.store_names().to_vec();
    prop_assert_eq!(stores.len(), 2);
    let mut d = TopologyTestDriver::new(topology).unwrap();

    let mut all = inputs.to_vec();
    all.push((true, 9, 1_000_000));
    let (want, dropped) = model(kind, spec, &all);
    for (i, &(left, key, ts)) in all.iter().enumerate() {
        let (topic, v) = if left { ("left", "L") } else { ("right", "R") };
        d.pipe_input(topic, &format!("k{key}"), &format!("{v}{i}"), ts)
            .unwrap();
        let mut w = want[i].clone();
        w.sort();
        prop_assert_eq!(read(&mut d), w, "step {} ({:?})", i, all[i]);
    }
    prop_assert_eq!(d.metrics().dropped_records, dropped);
    // Every window but the last record's has closed: the left store keeps that record, the
    // right store nothing. (The join's stream time is the left store's metadata, no entry.)
    let sizes: Vec<usize> = stores
        .iter()
        .map(|s| {
            d.store::<Vec<u8>, Vec<u8>>(s)
                .unwrap()
                .approximate_num_entries()
        })
        .collect();
    prop_assert_eq!(sizes, vec![1, 0]);
    Ok(())
}

fn inputs() -> impl Strategy<Value = Vec<Input>> {
    prop::collection::vec((any::<bool>(), 0u8..3, -3i64..160), 0..40)
}

fn spec() -> impl Strategy<Value = (i64, i64, i64)> {
    (0i64..25, 0i64..25, 0i64..25)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn inner_join_matches_the_model(spec in spec(), inputs in inputs()) {
        check(Kind::Inner, spec, &inputs)?;
    }

    #[test]
    fn left_join_matches_the_model(spec in spec(), inputs in inputs()) {
        check(Kind::Left, spec, &inputs)?;
    }

    #[test]
    fn outer_join_matches_the_model(spec in spec(), inputs in inputs()) {
        check(Kind::Outer, spec, &inputs)?;
    }
}

#[test]
fn a_late_record_is_kept_while_retained_and_dropped_past_retention() {
    let windows = JoinWindows::of_time_difference_without_grace(Duration::from_millis(10));
    let mut d = TopologyTestDriver::new(topology(Kind::Inner, windows)).unwrap();
    let k = "k1".to_string();
    d.pipe_input("left", &k, &"L0".to_string(), 100).unwrap();
    d.pipe_input("right", &k, &"R1".to_string(), 200).unwrap();
    // Window [180, 200] ends exactly at stream time: still open, pairs with R1.
    d.pipe_input("left", &k, &"L2".to_string(), 190).unwrap();
    assert_eq!(read(&mut d), [("k1".to_string(), "L2+R1".to_string(), 200)]);
    assert_eq!(d.metrics().dropped_records, 0);
    // Window [140, 160] closed before stream time 200, and the record is past the join
    // store's retention (150 + 10 + 10 < 200): dropped, as Kafka's store meters it.
    d.pipe_input("right", &k, &"R3".to_string(), 150).unwrap();
    assert_eq!(d.metrics().dropped_records, 1);
    // Window [179, 199] ended before stream time 200, but Kafka's store still retains the
    // record (189 + 20 >= 200): a later right record whose window is open pairs with it.
    d.pipe_input("left", &k, &"L4".to_string(), 189).unwrap();
    assert_eq!(read(&mut d), []);
    d.pipe_input("right", &k, &"R5".to_string(), 195).unwrap();
    assert_eq!(
        read(&mut d),
        [
            ("k1".to_string(), "L2+R5".to_string(), 195),
            ("k1".to_string(), "L4+R5".to_string(), 195)
        ]
    );
    assert_eq!(d.metrics().dropped_records, 1);
}

#[test]
fn a_left_record_waits_for_its_window_before_it_is_emitted_alone() {
    let windows = JoinWindows::of_time_difference_and_grace(
        Duration::from_millis(10),
        Duration::from_millis(5),
    );
    let mut d = TopologyTestDriver::new(topology(Kind::Left, windows)).unwrap();
    let s = |x: &str| x.to_string();
    d.pipe_input("left", &s("k1"), &s("L0"), 100).unwrap();
    // Stream time 115 = 100 + 10 + 5: the window is open (grace), nothing is emitted.
    d.pipe_input("left", &s("k2"), &s("L1"), 115).unwrap();
    assert_eq!(read(&mut d), []);
    // A late right record within grace still pairs with L0: no "L0+-" ever.
    d.pipe_input("right", &s("k1"), &s("R2"), 105).unwrap();
    assert_eq!(read(&mut d), [(s("k1"), s("L0+R2"), 105)]);
    d.pipe_input("left", &s("k3"), &s("L3"), 200).unwrap();
    // L1's window closed (200 > 130) unmatched; L0's closed too, but it had a pair.
    assert_eq!(read(&mut d), [(s("k2"), s("L1+-"), 115)]);
}

#[test]
fn a_rekeyed_stream_is_repartitioned_before_the_join() {
    let b = Builder::new("rekey");
    // Payments keyed by payment id, valued by order id; re-keyed by order to join orders.
    let payments = b
        .stream::<String, String>("payments")
        .select_key(|_, order| order.clone());
    let orders = b.stream::<String, i64>("orders");
    orders
        .join_stream(
            &payments,
            |amount, _| *amount,
            JoinWindows::of_time_difference_without_grace(Duration::from_secs(1)),
        )
        .to("paid");
    let topology = b.build().unwrap();
    assert_eq!(topology.repartition_topics().len(), 1);
    assert!(topology.repartition_topics()[0].starts_with("rekey-KSTREAM-JOIN-"));
    let mut d = TopologyTestDriver::new(topology).unwrap();
    d.pipe_input("orders", &"o1".to_string(), &25i64, 1_000)
        .unwrap();
    d.pipe_input("payments", &"p1".to_string(), &"o1".to_string(), 1_500)
        .unwrap();
    let out = d.read_output::<String, i64>("paid").unwrap();
    assert_eq!(
        out.iter()
            .map(|r| (r.key.as_str(), r.value, r.timestamp))
            .collect::<Vec<_>>(),
        [("o1", 25, 1_500)]
    );
}
