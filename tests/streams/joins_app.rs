//! Repartitioning, joins and global tables through the real App runtime (stream threads,
//! consumer group, transactions), and the co-partitioning error at start.

use std::collections::BTreeMap;
use std::time::Duration;

use riverbed::streams::{App, Builder, Materialized, Serde, StreamsConfig};
use riverbed::{
    ConsumerConfig, ErrorKind, OffsetReset, ProducerRecord, Store, TopicConfig, TopicPartition,
};

use crate::common;

/// A deterministic pseudo-random sequence (xorshift).
fn random(seed: u64, n: usize) -> Vec<u64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect()
}

/// Every record of `topic` so far, as `(key, value)`, sorted.
fn read_all<K: Serde + Ord, V: Serde + Ord>(
    store: &Store,
    topic: &str,
    want: usize,
) -> Vec<(K, V)> {
    let n = store.describe_topic(topic).unwrap().partitions.len();
    let mut c = store
        .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    let tps: Vec<_> = (0..n as u32)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    c.assign(&tps).unwrap();
    let mut got = Vec::new();
    common::wait_for(&format!("{want} records in {topic}"), || {
        for r in c.poll(Duration::from_millis(20)).unwrap().iter() {
            got.push((
                K::decode_nullable(r.key()).unwrap(),
                V::decode_nullable(r.value()).unwrap(),
            ));
        }
        got.len() >= want
    });
    got.sort();
    got
}

#[test]
fn a_four_partition_topic_regrouped_by_a_new_key_matches_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("events", TopicConfig::new(4)).unwrap();
    let b = Builder::new("regroup");
    let by_bucket = b
        .stream::<String, i64>("events")
        .group_by(|_user, amount| amount.rem_euclid(7));
    by_bucket.count(Materialized::named("counts"));
    by_bucket.aggregate(|| 0i64, |_b, v, sum| sum + v, Materialized::named("sums"));
    let app = App::start(
        &store,
        b.build().unwrap(),
        StreamsConfig::new().threads(2).exactly_once(),
    )
    .unwrap();
    for t in ["regroup-counts-repartition", "regroup-sums-repartition"] {
        assert_eq!(store.describe_topic(t).unwrap().partitions.len(), 4, "{t}");
    }

    let (mut counts, mut sums) = (BTreeMap::<i64, i64>::new(), BTreeMap::<i64, i64>::new());
    let p = store.producer();
    for x in random(7, 600) {
        let user = format!("user-{}", x % 23);
        let amount = (x % 1000) as i64 - 500;
        *counts.entry(amount.rem_euclid(7)).or_default() += 1;
        *sums.entry(amount.rem_euclid(7)).or_default() += amount;
        p.send(
            ProducerRecord::new("events")
                .key(user)
                .value(amount.encode().unwrap()),
        )
        .unwrap();
    }
    let (qc, qs) = (
        app.store::<i64, i64>("counts").unwrap(),
        app.store::<i64, i64>("sums").unwrap(),
    );
    let want_c: Vec<_> = counts.into_iter().collect();
    let want_s: Vec<_> = sums.into_iter().collect();
    let sorted = |mut v: Vec<(i64, i64)>| {
        v.sort();
        v
    };
    common::wait_for("the aggregates match the reference", || {
        sorted(qc.all().unwrap()) == want_c && sorted(qs.all().unwrap()) == want_s
    });
    app.close().unwrap();
}

#[test]
fn a_rekeyed_stream_joins_a_table_and_a_global_table_through_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for (t, n) in [("customers", 4), ("orders", 4), ("out", 4), ("regions", 2)] {
        store.create_topic(t, TopicConfig::new(n)).unwrap();
    }
    let p = store.producer();
    // The global table's topic (2 partitions: global tables need no co-partitioning) is
    // written before the start: the application reads it to the end before processing.
    for (code, name) in [("N", "north"), ("S", "south")] {
        p.send(ProducerRecord::new("regions").key(code).value(name))
            .unwrap();
    }
    let b = Builder::new("enrich-app");
    let customers = b.table::<String, String>("customers", Materialized::named("customers"));
    let regions = b.global_table::<String, String>("regions", Materialized::named("regions"));
    // Orders keyed by order id, valued "customer:amount"; re-keyed by customer to join.
    b.stream::<String, String>("orders")
        .select_key(|_, v| v.split(':').next().unwrap_or_default().to_string())
        .left_join(&customers, |order, c| {
            format!("{order}@{}", c.map_or("?", |c| c.as_str()))
        })
        .join_global(
            &regions,
            |customer, _| customer[..1].to_string(),
            |order, region| format!("{order}/{region}"),
        )
        .to("out");
    let app = App::start(
        &store,
        b.build().unwrap(),
        StreamsConfig::new().threads(3).exactly_once(),
    )
    .unwrap();

    let names: Vec<(String, String)> = (0..12)
        .map(|i| {
            (
                format!("{}{i}", if i % 2 == 0 { "N" } else { "S" }),
                format!("name{i}"),
            )
        })
        .collect();
    for (id, name) in &names {
        p.send(
            ProducerRecord::new("customers")
                .key(id.as_str())
                .value(name.as_str()),
        )
        .unwrap();
    }
    let table = app.store::<String, String>("customers").unwrap();
    common::wait_for("the customers table is loaded", || {
        table.approximate_num_entries() == names.len()
    });

    let mut want = Vec::new();
    for (i, x) in random(11, 200).into_iter().enumerate() {
        // Customers 0..14: 12 and 13 are unknown (the left join gives "?").
        let c = x % 14;
        let customer = format!("{}{c}", if c % 2 == 0 { "N" } else { "S" });
        let order = format!("{customer}:{}", x % 100);
        let name = names
            .iter()
            .find(|(id, _)| *id == customer)
            .map_or("?", |(_, n)| n.as_str());
        let region = if c % 2 == 0 { "north" } else { "south" };
        want.push((customer.clone(), format!("{order}@{name}/{region}")));
        p.send(
            ProducerRecord::new("orders")
                .key(format!("o{i}"))
                .value(order),
        )
        .unwrap();
    }
    want.sort();
    assert_eq!(read_all::<String, String>(&store, "out", want.len()), want);
    assert_eq!(
        app.store::<String, String>("regions")
            .unwrap()
            .get("S")
            .unwrap(),
        Some("south".to_string())
    );
    app.close().unwrap();
}

#[test]
fn joining_topics_that_are_not_co_partitioned_fails_at_start_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("orders", TopicConfig::new(4)).unwrap();
    store
        .create_topic("customers", TopicConfig::new(2))
        .unwrap();
    store.create_topic("out", TopicConfig::new(1)).unwrap();
    let b = Builder::new("mismatch");
    let customers = b.table::<String, String>("customers", Materialized::named("customers"));
    b.stream::<String, String>("orders")
        .join(&customers, |o, c| format!("{o}{c}"))
        .to("out");
    let e = App::start(&store, b.build().unwrap(), StreamsConfig::new()).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidArgument { .. }), "{e}");
    let msg = e.to_string();
    for part in [
        "stream-table join",
        "\"orders\" has 4",
        "\"customers\" has 2",
    ] {
        assert!(msg.contains(part), "{part:?} not in {msg}");
    }

    // A repartition topic left with another partition count is refused too.
    store.create_topic("events", TopicConfig::new(2)).unwrap();
    store
        .create_topic("stale-c-repartition", TopicConfig::new(3))
        .unwrap();
    let b = Builder::new("stale");
    b.stream::<String, i64>("events")
        .group_by(|_, v| *v)
        .count(Materialized::named("c"));
    let e = App::start(&store, b.build().unwrap(), StreamsConfig::new()).unwrap_err();
    assert!(e.to_string().contains("stale-c-repartition"), "{e}");
}
