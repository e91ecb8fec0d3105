//! Joins (stream-table, stream-global-table, table-table), repartitioning operators
//! (select_key, group_by), split, merge and to_topic_chooser, run by the test driver over
//! random inputs against a plain in-memory computation of Kafka's semantics.

use std::collections::BTreeMap;

use proptest::prelude::*;
use riverbed::streams::{Builder, Materialized, Serde, TopologyTestDriver};

/// An input record: which topic (0: the stream or left table, 1: the right table), key,
/// value (`None`: a tombstone, for tables), timestamp.
type Input = (u8, u8, Option<i64>, i64);

fn inputs() -> impl Strategy<Value = Vec<Input>> {
    prop::collection::vec(
        (
            0u8..2,
            0u8..5,
            prop::option::weighted(0.8, -20i64..20),
            0i64..1000,
        ),
        0..80,
    )
}

fn read<K: Serde, V: Serde>(d: &mut TopologyTestDriver, topic: &str) -> Vec<(K, V, i64)> {
    d.read_output::<K, V>(topic)
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect()
}

fn apply(table: &mut BTreeMap<u8, i64>, k: u8, v: Option<i64>) -> Option<i64> {
    match v {
        Some(v) => table.insert(k, v),
        None => table.remove(&k),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn stream_table_and_stream_global_joins_match_the_model(records in inputs()) {
        let b = Builder::new("st");
        let table = b.table::<i32, i64>("table", Materialized::named("table"));
        let global = b.global_table::<i32, i64>("global", Materialized::named("global"));
        let s = b.stream::<i32, i64>("stream");
        s.join(&table, |v, t| v * 100 + t).to("inner");
        s.left_join(&table, |v, t| (*v, t.copied())).map_values(|(v, t)| format!("{v}/{t:?}")).to("left");
        // The filtered table's getter filters what the join reads.
        s.join(&table.filter(|_, t| *t > 0), |v, t| v + t).to("inner-positive");
        s.join_global(&global, |k, _| k + 1, |v, g| v - g).to("global-inner");
        s.left_join_global(&global, |k, _| k + 1, |v, g| g.map_or(*v, |g| v * g)).to("global-left");
        let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();

        let mut t: BTreeMap<u8, i64> = BTreeMap::new();
        let mut g: BTreeMap<u8, i64> = BTreeMap::new();
        let (mut inner, mut left, mut pos, mut ginner, mut gleft) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (which, k, v, ts) in &records {
            let key = i32::from(*k);
            match (which, v) {
                // Table updates (and tombstones) go to both tables; they produce no output.
                (0, _) => {
                    d.pipe_input("table", &key, v, *ts).unwrap();
                    apply(&mut t, *k, *v);
                    d.pipe_input("global", &key, v, *ts).unwrap();
                    apply(&mut g, *k, *v);
                }
                (_, Some(v)) => {
                    d.pipe_input("stream", &key, v, *ts).unwrap();
                    if let Some(tv) = t.get(k) {
                        inner.push((key, v * 100 + tv, *ts));
                    }
                    left.push((key, format!("{v}/{:?}", t.get(k)), *ts));
                    if let Some(tv) = t.get(k).filter(|tv| **tv > 0) {
                        pos.push((key, v + tv, *ts));
                    }
                    let gk = k + 1;
                    if let Some(gv) = g.get(&gk) {
                        ginner.push((key, v - gv, *ts));
                    }
                    gleft.push((key, g.get(&gk).map_or(*v, |gv| v * gv), *ts));
                }
                (_, None) => {}
            }
        }
        prop_assert_eq!(read::<i32, i64>(&mut d, "inner"), inner);
        prop_assert_eq!(read::<i32, String>(&mut d, "left"), left);
        prop_assert_eq!(read::<i32, i64>(&mut d, "inner-positive"), pos);
        prop_assert_eq!(read::<i32, i64>(&mut d, "global-inner"), ginner);
        prop_assert_eq!(read::<i32, i64>(&mut d, "global-left"), gleft);
        let gs = d.store::<i32, i64>("global").unwrap();
        let want: Vec<(i32, i64)> = g.iter().map(|(k, v)| (i32::from(*k), *v)).collect();
        prop_assert_eq!(gs.all().unwrap(), want);
    }

    #[test]
    fn table_table_joins_match_the_model(records in inputs()) {
        let b = Builder::new("tt");
        let l = b.table::<i32, i64>("left", Materialized::named("l"));
        let r = b.table::<i32, i64>("right", Materialized::named("r"));
        l.join(&r, |a, b| a * 100 + b).to_stream_with_tombstones().to("inner");
        l.left_join(&r, |a, b| format!("{a}/{b:?}")).to_stream_with_tombstones().to("left-out");
        l.outer_join(&r, |a, b| format!("{a:?}/{b:?}")).to_stream_with_tombstones().to("outer");
        // A join of a join: its getter reads through the first join.
        l.join(&r, |a, b| a + b)
            .join(&l.map_values(|a| a * 2), |ab, a2| ab * a2)
            .to_stream_with_tombstones()
            .to("nested");
        let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();

        type J = fn(Option<i64>, Option<i64>) -> Option<String>;
        let inner_j = |a: Option<i64>, b: Option<i64>| Some(a? * 100 + b?);
        let left_j: J = |a, b| Some(format!("{}/{b:?}", a?));
        let outer_j: J = |a, b| (a.is_some() || b.is_some()).then(|| format!("{a:?}/{b:?}"));
        let nested_j = |a: Option<i64>, b: Option<i64>| Some((a? + b?) * (a? * 2));
        let (mut lt, mut rt) = (BTreeMap::new(), BTreeMap::new());
        // The rows' timestamps: a result's is the latest of the update's and the other side's
        // row's (Kafka >= 2.3, KIP-258), the update's alone without an other row.
        let (mut l_ts, mut r_ts): (BTreeMap<u8, i64>, BTreeMap<u8, i64>) = (BTreeMap::new(), BTreeMap::new());
        let (mut inner, mut left, mut outer, mut nested) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (which, k, v, ts) in &records {
            let key = i32::from(*k);
            let topic = if *which == 0 { "left" } else { "right" };
            d.pipe_input(topic, &key, v, *ts).unwrap();
            // A change of one side is a change of the result row: forwarded unless the key is
            // out of the result before and after.
            let before = (lt.get(k).copied(), rt.get(k).copied());
            apply(if *which == 0 { &mut lt } else { &mut rt }, *k, *v);
            let row_ts = if *which == 0 { &mut l_ts } else { &mut r_ts };
            match v { Some(_) => { row_ts.insert(*k, *ts); } None => { row_ts.remove(k); } }
            let after = (lt.get(k).copied(), rt.get(k).copied());
            let other_ts = if *which == 0 { r_ts.get(k) } else { l_ts.get(k) };
            let result_ts = other_ts.map_or(*ts, |o| (*o).max(*ts));
            let emit = |j: &dyn Fn(Option<i64>, Option<i64>) -> Option<String>, out: &mut Vec<(i32, Option<String>, i64)>| {
                let (was, now) = (j(before.0, before.1), j(after.0, after.1));
                if was.is_some() || now.is_some() {
                    out.push((key, now, result_ts));
                }
            };
            emit(&|a, b| inner_j(a, b).map(|x| x.to_string()), &mut inner);
            emit(&left_j, &mut left);
            emit(&outer_j, &mut outer);
            if *which == 0 {
                // The left table feeds both sides of the nested join: its change reaches the
                // outer join twice (through the inner join, then through map_values), each
                // time with the other side read from the stores as they are now.
                let ab = |x: Option<i64>| Some(x? + after.1?);
                let (ab_old, ab_new) = (ab(before.0), ab(after.0));
                let step = |ab: Option<i64>, a2: Option<i64>| Some(ab? * a2?);
                let (was, now) = (step(ab_old, after.0.map(|a| a * 2)), step(ab_new, after.0.map(|a| a * 2)));
                // Through the inner join: the update against the right row, then against the
                // left row (the update itself).
                if was.is_some() || now.is_some() {
                    nested.push((key, now, result_ts));
                }
                // Through map_values: the update against the inner join's row, which is the
                // latest of both rows when both are there.
                let joined_ts = if after.0.is_some() { result_ts } else { *ts };
                let (was, now) = (step(ab_new, before.0.map(|a| a * 2)), step(ab_new, after.0.map(|a| a * 2)));
                if was.is_some() || now.is_some() {
                    nested.push((key, now, joined_ts));
                }
            } else {
                let (was, now) = (nested_j(before.0, before.1), nested_j(after.0, after.1));
                if was.is_some() || now.is_some() {
                    nested.push((key, now, result_ts));
                }
            }
        }
        let ints: Vec<_> = read::<i32, Option<i64>>(&mut d, "inner").into_iter()
            .map(|(k, v, ts)| (k, v.map(|v| v.to_string()), ts)).collect();
        prop_assert_eq!(ints, inner);
        prop_assert_eq!(read::<i32, Option<String>>(&mut d, "left-out"), left);
        prop_assert_eq!(read::<i32, Option<String>>(&mut d, "outer"), outer);
        prop_assert_eq!(read::<i32, Option<i64>>(&mut d, "nested"), nested);
    }

    #[test]
    fn rekeying_branching_and_merging_match_the_model(
        records in prop::collection::vec((0u8..6, -30i64..30, 0i64..1000), 0..60)
    ) {
        let b = Builder::new("rekey");
        let s = b.stream::<String, i64>("in");
        // Re-keyed by the value's sign, counted (through a repartition topic).
        s.group_by(|_, v| v.signum()).count(Materialized::named("by-sign"));
        // select_key then group_by_key: the same thing by hand, summing.
        s.select_key(|k, _| k.len() as i64 + 100)
            .group_by_key()
            .reduce(|a, v| a + v, Materialized::named("by-len"));
        let parts = s.split().branch(|_, v| *v < 0).branch(|_, v| v % 2 == 0).default_branch();
        parts[0].to("negative");
        parts[1].merge(&parts[2]).to("non-negative");
        s.to_topic_chooser(|k, _| format!("out-{k}"));
        let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
        for (k, v, ts) in &records {
            d.pipe_input("in", &format!("k{k}"), v, *ts).unwrap();
        }

        let mut by_sign: BTreeMap<i64, i64> = BTreeMap::new();
        let mut by_len: BTreeMap<i64, i64> = BTreeMap::new();
        let (mut neg, mut nonneg) = (Vec::new(), Vec::new());
        let mut chosen: BTreeMap<String, Vec<(String, i64, i64)>> = BTreeMap::new();
        for (k, v, ts) in &records {
            let key = format!("k{k}");
            *by_sign.entry(v.signum()).or_default() += 1;
            *by_len.entry(key.len() as i64 + 100).or_default() += v;
            if *v < 0 { neg.push((key.clone(), *v, *ts)) } else { nonneg.push((key.clone(), *v, *ts)) }
            chosen.entry(format!("out-{key}")).or_default().push((key, *v, *ts));
        }
        let sign = d.store::<i64, i64>("by-sign").unwrap();
        for g in -1..=1 {
            prop_assert_eq!(sign.get(g).unwrap(), by_sign.get(&g).copied());
        }
        let len = d.store::<i64, i64>("by-len").unwrap();
        prop_assert_eq!(len.all().unwrap(), by_len.into_iter().collect::<Vec<_>>());
        prop_assert_eq!(read::<String, i64>(&mut d, "negative"), neg);
        prop_assert_eq!(read::<String, i64>(&mut d, "non-negative"), nonneg);
        for (topic, want) in chosen {
            prop_assert_eq!(read::<String, i64>(&mut d, &topic), want);
        }
    }
}

#[test]
fn a_stream_rekeyed_before_a_join_is_repartitioned() {
    let b = Builder::new("rejoin");
    let names = b.table::<String, String>("names", Materialized::named("names"));
    b.stream::<String, String>("orders")
        .select_key(|_order, customer| customer.clone())
        .join(&names, |_customer, name| name.clone())
        .to("named-orders");
    let t = b.build().unwrap();
    assert_eq!(t.repartition_topics().len(), 1);
    assert!(t.repartition_topics()[0].starts_with("rejoin-KSTREAM-JOIN-"));
    let mut d = TopologyTestDriver::new(t).unwrap();
    d.pipe_input("names", &"c1".to_string(), &Some("Ann".to_string()), 0)
        .unwrap();
    d.pipe_input("orders", &"o1".to_string(), &"c1".to_string(), 1)
        .unwrap();
    let out = d.read_output::<String, String>("named-orders").unwrap();
    assert_eq!(
        out.iter()
            .map(|r| (r.key.as_str(), r.value.as_str()))
            .collect::<Vec<_>>(),
        [("c1", "Ann")]
    );
}

#[test]
fn a_topic_chooser_naming_an_invalid_topic_fails_the_record() {
    let b = Builder::new("bad-chooser");
    b.stream::<String, String>("in")
        .to_topic_chooser(|_, v| v.clone());
    let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    d.pipe_input("in", &"k".to_string(), &"fine".to_string(), 0)
        .unwrap();
    let e = d
        .pipe_input("in", &"k".to_string(), &"not a topic!".to_string(), 0)
        .unwrap_err();
    assert!(e.to_string().contains("not a topic!"), "{e}");
}
