//! KTable operators (source tables with tombstones, filter, map_values, to_stream,
//! group_by with adder and subtractor) run by the test driver over random updates, against a
//! plain in-memory computation of Kafka's semantics.

use std::collections::BTreeMap;

use proptest::prelude::*;
use riverbed::streams::{Builder, Materialized, TopologyTestDriver};

/// Table updates: key, value (`None`: a tombstone), timestamp.
fn updates() -> impl Strategy<Value = Vec<(u8, Option<i64>, i64)>> {
    prop::collection::vec(
        (0u8..6, prop::option::weighted(0.75, -20i64..20), 0i64..1000),
        0..60,
    )
}

fn key(k: u8) -> String {
    format!("k{k}")
}

fn out<V: riverbed::streams::Serde>(
    d: &mut TopologyTestDriver,
    topic: &str,
) -> Vec<(String, V, i64)> {
    d.read_output::<String, V>(topic)
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn source_filter_and_map_values_match_the_model(records in updates()) {
        let b = Builder::new("tables");
        let t = b.table::<String, i64>("in", Materialized::named("source"));
        t.to_stream_with_tombstones().to("source-changes");
        t.to_stream().to("source-updates");
        let even = t.filter(|_, v| v % 2 == 0);
        even.to_stream_with_tombstones().to("even-changes");
        even.map_values(|v| format!("<{v}>"))
            .to_stream_with_tombstones()
            .to("even-mapped");
        t.filter_not(|k, _| k == "k0")
            .map_values(|v| v * 10)
            .to_stream_with_tombstones()
            .to("not-k0-times-10");
        let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
        for (k, v, ts) in &records {
            d.pipe_input("in", &key(*k), v, *ts).unwrap();
        }

        let mut table: BTreeMap<String, i64> = BTreeMap::new();
        let (mut changes, mut updates, mut evens, mut mapped, mut tens) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (k, v, ts) in &records {
            let k = key(*k);
            let old = match v {
                Some(v) => table.insert(k.clone(), *v),
                None => table.remove(&k),
            };
            changes.push((k.clone(), *v, *ts));
            if let Some(v) = v {
                updates.push((k.clone(), *v, *ts));
            }
            // A filter forwards unless the row is out of the result before and after.
            let ev = |x: Option<i64>| x.filter(|x| x % 2 == 0);
            if ev(*v).is_some() || ev(old).is_some() {
                evens.push((k.clone(), ev(*v), *ts));
                mapped.push((k.clone(), ev(*v).map(|x| format!("<{x}>")), *ts));
            }
            let not0 = |x: Option<i64>| x.filter(|_| k != "k0");
            if not0(*v).is_some() || not0(old).is_some() {
                tens.push((k.clone(), not0(*v).map(|x| x * 10), *ts));
            }
        }
        prop_assert_eq!(out::<Option<i64>>(&mut d, "source-changes"), changes);
        prop_assert_eq!(out::<i64>(&mut d, "source-updates"), updates);
        prop_assert_eq!(out::<Option<i64>>(&mut d, "even-changes"), evens);
        prop_assert_eq!(out::<Option<String>>(&mut d, "even-mapped"), mapped);
        prop_assert_eq!(out::<Option<i64>>(&mut d, "not-k0-times-10"), tens);
        let store = d.store::<String, i64>("source").unwrap();
        prop_assert_eq!(store.all().unwrap(), table.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn group_by_with_adder_and_subtractor_matches_the_model(records in updates()) {
        // Rows regrouped by `value mod 3`, summed, counted, and reduced to a sum of squares.
        let b = Builder::new("regroup");
        let t = b.table::<String, i64>("in", Materialized::named("rows"));
        let g = t.group_by(|_, v| (v.rem_euclid(3), *v));
        g.aggregate(|| 0i64, |_g, v, acc| acc + v, |_g, v, acc| acc - v, Materialized::named("sums"))
            .to_stream_with_tombstones()
            .to("sums-out");
        g.count(Materialized::named("counts")).to_stream().to("counts-out");
        t.group_by(|_, v| (v.rem_euclid(3), v * v))
            .reduce(|a, v| a + v, |a, v| a - v, Materialized::named("squares"));
        let topology = b.build().unwrap();
        prop_assert_eq!(
            topology.repartition_topics(),
            ["regroup-sums-repartition", "regroup-counts-repartition", "regroup-squares-repartition"]
        );
        let mut d = TopologyTestDriver::new(topology).unwrap();
        for (k, v, ts) in &records {
            d.pipe_input("in", &key(*k), v, *ts).unwrap();
        }

        // The model: Kafka's KTableAggregate over the regrouped changes (old and new in one
        // step when the group stays the same; else subtract from the old group, then add).
        let mut table: BTreeMap<String, i64> = BTreeMap::new();
        let mut sums: BTreeMap<i64, i64> = BTreeMap::new();
        let mut counts: BTreeMap<i64, i64> = BTreeMap::new();
        let mut squares: BTreeMap<i64, i64> = BTreeMap::new();
        // Kafka's result timestamps (KIP-258): the latest of the stored aggregate's and the
        // change's, the change's alone for a group without an aggregate.
        let mut sums_ts: BTreeMap<i64, i64> = BTreeMap::new();
        let mut counts_ts: BTreeMap<i64, i64> = BTreeMap::new();
        let result_ts = |stored: &mut BTreeMap<i64, i64>, g: i64, ts: i64| {
            let t = stored.get(&g).map_or(ts, |s| (*s).max(ts));
            stored.insert(g, t);
            t
        };
        let (mut sums_out, mut counts_out) = (Vec::new(), Vec::new());
        for (k, v, ts) in &records {
            let k = key(*k);
            let old = match v {
                Some(v) => table.insert(k.clone(), *v),
                None => table.remove(&k),
            };
            let group = |x: i64| x.rem_euclid(3);
            let steps: Vec<(i64, Option<i64>, Option<i64>)> = match (*v, old) {
                (Some(n), Some(o)) if group(n) == group(o) => vec![(group(n), Some(n), Some(o))],
                (n, o) => o.map(|o| (group(o), None, Some(o))).into_iter()
                    .chain(n.map(|n| (group(n), Some(n), None)))
                    .collect(),
            };
            for (g, new, old) in steps {
                let before = sums.get(&g).copied();
                let mid = match (old, before) { (Some(o), Some(a)) => Some(a - o), (_, a) => a };
                let after = match new { Some(n) => Some(mid.unwrap_or(0) + n), None => mid };
                let t = result_ts(&mut sums_ts, g, *ts);
                match after { Some(a) => { sums.insert(g, a); } None => { sums.remove(&g); sums_ts.remove(&g); } }
                sums_out.push((g, after, t));

                let before = counts.get(&g).copied();
                let mid = match (old, before) { (Some(_), Some(c)) => Some(c - 1), (_, c) => c };
                let after = match new { Some(_) => Some(mid.unwrap_or(0) + 1), None => mid };
                let t = result_ts(&mut counts_ts, g, *ts);
                match after { Some(c) => { counts.insert(g, c); counts_out.push((g, c, t)); } None => { counts.remove(&g); counts_ts.remove(&g); } }

                let before = squares.get(&g).copied();
                let mid = match (old, before) { (Some(o), Some(a)) => Some(a - o * o), (_, a) => a };
                let after = match new { Some(n) => Some(mid.map_or(n * n, |m| m + n * n)), None => mid };
                match after { Some(a) => { squares.insert(g, a); } None => { squares.remove(&g); } }
            }
        }
        let got_sums: Vec<_> = d.read_output::<i64, Option<i64>>("sums-out").unwrap()
            .into_iter().map(|r| (r.key, r.value, r.timestamp)).collect();
        prop_assert_eq!(got_sums, sums_out);
        let got_counts: Vec<_> = d.read_output::<i64, i64>("counts-out").unwrap()
            .into_iter().map(|r| (r.key, r.value, r.timestamp)).collect();
        prop_assert_eq!(got_counts, counts_out);
        // Every group's aggregate is also what recomputing it from the final table gives.
        for (g, sum) in &sums {
            let rows: Vec<i64> = table.values().copied().filter(|v| v.rem_euclid(3) == *g).collect();
            prop_assert_eq!(*sum, rows.iter().sum::<i64>());
            prop_assert_eq!(counts.get(g).copied(), Some(rows.len() as i64));
            prop_assert_eq!(squares.get(g).copied(), Some(rows.iter().map(|v| v * v).sum::<i64>()));
        }
        let s = d.store::<i64, i64>("sums").unwrap();
        let c = d.store::<i64, i64>("counts").unwrap();
        let q = d.store::<i64, i64>("squares").unwrap();
        for g in 0..3 {
            prop_assert_eq!(s.get(g).unwrap(), sums.get(&g).copied());
            prop_assert_eq!(c.get(g).unwrap(), counts.get(&g).copied());
            prop_assert_eq!(q.get(g).unwrap(), squares.get(&g).copied());
        }
    }
}

#[test]
fn a_table_and_a_stream_cannot_read_the_same_topic() {
    let b = Builder::new("twice");
    b.table::<String, i64>("t", Materialized::named("t"));
    b.stream::<String, i64>("t").to("out");
    let e = b.build().unwrap_err();
    assert!(e.to_string().contains("\"t\""), "{e}");

    let b = Builder::new("twice-global");
    b.table::<String, i64>("t", Materialized::unnamed());
    b.global_table::<String, i64>("t", Materialized::unnamed());
    assert!(b.build().is_err());
}

#[test]
fn a_table_is_restored_from_its_changelog_after_a_restart() {
    use riverbed::streams::{App, Serde, StreamsConfig};
    use riverbed::{ProducerRecord, Store, TopicConfig};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("prices", TopicConfig::new(2)).unwrap();
    store.create_topic("dear", TopicConfig::new(2)).unwrap();
    let topology = || {
        let b = Builder::new("restore-table");
        b.table::<String, i64>("prices", Materialized::named("prices"))
            .filter(|_, p| *p >= 100)
            .to_stream_with_tombstones()
            .to("dear");
        b.build().unwrap()
    };
    let p = store.producer();
    let send = |k: &str, v: Option<i64>| {
        let mut r = ProducerRecord::new("prices").key(k);
        if let Some(v) = v {
            r = r.value(v.encode().unwrap());
        }
        p.send(r).unwrap();
    };
    let wait = |app: &App, want: &[(String, i64)]| {
        let q = app.store::<String, i64>("prices").unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while q.all().unwrap() != want {
            assert!(Instant::now() < deadline, "the table never became {want:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let config = StreamsConfig::new().exactly_once();
    let app = App::start(&store, topology(), config.clone()).unwrap();
    send("tea", Some(150));
    send("jam", Some(20));
    send("oil", Some(300));
    send("oil", None);
    wait(&app, &[("jam".into(), 20), ("tea".into(), 150)]);
    app.close().unwrap();

    // After a restart the table comes from its changelog: deleting "tea" is a change of a
    // row that passed the filter, so the result gets its tombstone.
    let app = App::start(&store, topology(), config).unwrap();
    wait(&app, &[("jam".into(), 20), ("tea".into(), 150)]);
    send("tea", None);
    wait(&app, &[("jam".into(), 20)]);
    app.close().unwrap();

    let mut c = store
        .consumer(
            riverbed::ConsumerConfig::default().auto_offset_reset(riverbed::OffsetReset::Earliest),
        )
        .unwrap();
    c.assign(&[
        riverbed::TopicPartition::new("dear", 0),
        riverbed::TopicPartition::new("dear", 1),
    ])
    .unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < 4 && Instant::now() < deadline {
        for r in c.poll(Duration::from_millis(50)).unwrap().iter() {
            got.push((
                String::decode(r.key().unwrap()).unwrap(),
                r.value().map(|v| i64::decode(v).unwrap()),
            ));
        }
    }
    got.sort();
    assert_eq!(
        got,
        [
            ("oil".to_string(), None),
            ("oil".to_string(), Some(300)),
            ("tea".to_string(), None),
            ("tea".to_string(), Some(150)),
        ]
    );
}
