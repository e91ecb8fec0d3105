//! The DSL operators, run by the test driver over random inputs, against a plain in-memory
//! computation of the same job.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use riverbed::streams::{Builder, Materialized, TopologyTestDriver};

fn input() -> impl Strategy<Value = Vec<(u8, i64, i64)>> {
    prop::collection::vec((0u8..6, -50i64..50, 0i64..1000), 0..60)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn stateless_operators_match_the_model(records in input()) {
        let b = Builder::new("stateless");
        let seen = Arc::new(Mutex::new(0usize));
        let s = b.stream::<String, i64>("in");
        let peeked = Arc::clone(&seen);
        s.filter(|_, v| v % 3 != 0)
            .peek(move |_, _| *peeked.lock().unwrap() += 1)
            .map_values(|v| v * 2)
            .flat_map_values(|v| (0..(v.rem_euclid(3))).map(move |i| v + i))
            .to("out-a");
        s.filter_not(|k, _| k.ends_with('1'))
            .map(|k, v| (v, format!("{k}:{v}")))
            .to("out-b");
        // One record per unit of |v| mod 4, keyed by the value and its index.
        s.flat_map(|k, v| (0..v.rem_euclid(4)).map(move |i| (format!("{v}/{i}"), k.clone())))
            .to("out-c");
        let foreach = Arc::new(Mutex::new(Vec::new()));
        let f2 = Arc::clone(&foreach);
        s.foreach(move |k, v| f2.lock().unwrap().push((k.clone(), *v)));
        let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
        for (k, v, ts) in &records {
            d.pipe_input("in", &format!("k{k}"), v, *ts).unwrap();
        }

        let mut want_a = Vec::new();
        let mut want_b = Vec::new();
        let mut want_c = Vec::new();
        let mut want_peek = 0;
        for (k, v, ts) in &records {
            let key = format!("k{k}");
            if v % 3 != 0 {
                want_peek += 1;
                let v2 = v * 2;
                for i in 0..v2.rem_euclid(3) {
                    want_a.push((key.clone(), v2 + i, *ts));
                }
            }
            if !key.ends_with('1') {
                want_b.push((*v, format!("{key}:{v}"), *ts));
            }
            for i in 0..v.rem_euclid(4) {
                want_c.push((format!("{v}/{i}"), key.clone(), *ts));
            }
        }
        let got_a: Vec<_> = d.read_output::<String, i64>("out-a").unwrap()
            .into_iter().map(|r| (r.key, r.value, r.timestamp)).collect();
        let got_b: Vec<_> = d.read_output::<i64, String>("out-b").unwrap()
            .into_iter().map(|r| (r.key, r.value, r.timestamp)).collect();
        prop_assert_eq!(got_a, want_a);
        let got_c: Vec<_> = d.read_output::<String, String>("out-c").unwrap()
            .into_iter().map(|r| (r.key, r.value, r.timestamp)).collect();
        prop_assert_eq!(got_b, want_b);
        prop_assert_eq!(got_c, want_c);
        prop_assert_eq!(*seen.lock().unwrap(), want_peek);
        let all: Vec<_> = records.iter().map(|(k, v, _)| (format!("k{k}"), *v)).collect();
        prop_assert_eq!(foreach.lock().unwrap().clone(), all);
        prop_assert_eq!(d.metrics().processed_records, records.len() as u64);
    }

    #[test]
    fn aggregations_match_the_model(records in input()) {
        let b = Builder::new("aggs");
        let g = b.stream::<String, i64>("in").group_by_key();
        g.count(Materialized::named("counts")).to_stream().to("counts-out");
        g.reduce(|a, v| a.max(v), Materialized::named("maxes")).to_stream().to("maxes-out");
        g.aggregate(String::new, |k, v, acc| format!("{acc}{k}{v};"), Materialized::unnamed())
            .to_stream()
            .to("concat-out");
        let topology = b.build().unwrap();
        let concat_store = topology.store_names()[2].clone();
        let mut d = TopologyTestDriver::new(topology).unwrap();
        for (k, v, ts) in &records {
            d.pipe_input("in", &format!("k{k}"), v, *ts).unwrap();
        }

        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        let mut maxes: BTreeMap<String, i64> = BTreeMap::new();
        let mut concat: BTreeMap<String, String> = BTreeMap::new();
        // An aggregate's timestamp is the latest of its records' (Kafka >= 2.3, KIP-258).
        let mut latest: BTreeMap<String, i64> = BTreeMap::new();
        let (mut want_counts, mut want_maxes, mut want_concat) = (vec![], vec![], vec![]);
        for (k, v, ts) in &records {
            let key = format!("k{k}");
            let t = latest.entry(key.clone()).or_insert(*ts);
            *t = (*t).max(*ts);
            let ts = *t;
            let c = counts.entry(key.clone()).or_insert(0);
            *c += 1;
            want_counts.push((key.clone(), *c, ts));
            let m = maxes.entry(key.clone()).or_insert(*v);
            *m = (*m).max(*v);
            want_maxes.push((key.clone(), *m, ts));
            let s = concat.entry(key.clone()).or_default();
            s.push_str(&format!("{key}{v};"));
            want_concat.push((key.clone(), s.clone(), ts));
        }
        let triples = |v: Vec<riverbed::streams::StreamRecord<String, i64>>| -> Vec<_> {
            v.into_iter().map(|r| (r.key, r.value, r.timestamp)).collect()
        };
        prop_assert_eq!(triples(d.read_output("counts-out").unwrap()), want_counts);
        prop_assert_eq!(triples(d.read_output("maxes-out").unwrap()), want_maxes);
        let got_concat: Vec<_> = d.read_output::<String, String>("concat-out").unwrap()
            .into_iter().map(|r| (r.key, r.value, r.timestamp)).collect();
        prop_assert_eq!(got_concat, want_concat);

        let store = d.store::<String, i64>("counts").unwrap();
        prop_assert_eq!(store.all().unwrap(), counts.clone().into_iter().collect::<Vec<_>>());
        for (k, c) in &counts {
            prop_assert_eq!(store.get(k.as_str()).unwrap(), Some(*c));
        }
        prop_assert_eq!(store.get("absent").unwrap(), None);
        prop_assert_eq!(
            store.range("k1", "k3").unwrap(),
            counts.range("k1".to_string()..="k3".to_string()).map(|(k, v)| (k.clone(), *v)).collect::<Vec<_>>()
        );
        let cs = d.store::<String, String>(&concat_store).unwrap();
        prop_assert_eq!(cs.all().unwrap(), concat.into_iter().collect::<Vec<_>>());
    }
}

#[test]
fn group_by_key_after_a_key_change_goes_through_a_repartition_topic() {
    let b = Builder::new("rekeyed");
    b.stream::<String, i64>("in")
        .map(|k, v| (v, k))
        .group_by_key()
        .count(Materialized::named("c"));
    let t = b.build().unwrap();
    assert_eq!(t.repartition_topics(), ["rekeyed-c-repartition"]);
    assert!(t
        .source_topics()
        .contains(&"rekeyed-c-repartition".to_string()));
    let mut d = TopologyTestDriver::new(t).unwrap();
    for (k, v) in [("a", 1i64), ("b", 1), ("c", 2)] {
        d.pipe_input("in", &k.to_string(), &v, 0).unwrap();
    }
    let c = d.store::<i64, i64>("c").unwrap();
    assert_eq!((c.get(1).unwrap(), c.get(2).unwrap()), (Some(2), Some(1)));
}

#[test]
fn deserialization_errors_fail_or_are_skipped() {
    use riverbed::streams::{DeserializationHandler, StreamsConfig};
    let topology = || {
        let b = Builder::new("deser");
        b.stream::<String, i64>("in").to("out");
        b.build().unwrap()
    };
    let mut d = TopologyTestDriver::new(topology()).unwrap();
    let e = d.pipe_raw("in", Some(b"k"), Some(b"abc"), 0).unwrap_err();
    assert!(
        matches!(e.kind(), riverbed::ErrorKind::Deserialization { .. }),
        "{e}"
    );

    let config =
        StreamsConfig::new().deserialization_handler(DeserializationHandler::LogAndContinue);
    let mut d = TopologyTestDriver::with_config(topology(), &config).unwrap();
    d.pipe_raw("in", Some(b"k"), Some(b"abc"), 0).unwrap();
    d.pipe_raw(
        "in",
        None,
        Some(&riverbed::streams::Serde::encode(&7i64).unwrap()),
        0,
    )
    .unwrap(); // null key for a String
    d.pipe_input("in", &"k".to_string(), &5i64, 1).unwrap();
    let out = d.read_output::<String, i64>("out").unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].value, 5);
    assert_eq!(d.metrics().skipped_records, 2);
    assert_eq!(d.metrics().processed_records, 1);
}

#[test]
fn a_panic_in_user_code_is_an_error_naming_the_node() {
    let b = Builder::new("panics");
    b.stream::<String, i64>("in")
        .map_values(|v| if v == 13 { panic!("unlucky") } else { v })
        .to("out");
    let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    d.pipe_input("in", &"k".to_string(), &1i64, 0).unwrap();
    let e = d.pipe_input("in", &"k".to_string(), &13i64, 0).unwrap_err();
    assert!(
        matches!(e.kind(), riverbed::ErrorKind::StreamsProcessing { .. }),
        "{e}"
    );
    assert!(
        e.to_string().contains("unlucky") && e.to_string().contains("KSTREAM-MAPVALUES"),
        "{e}"
    );
}
