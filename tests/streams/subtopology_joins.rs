//! Operators whose halves land in different sub-topologies, run by an `App` whose topics have
//! different partition counts: a foreign-key join of a 2-partition table with a 3-partition
//! table (the subscriptions are partitioned like the right table, the responses like the left),
//! and a windowed count after a key change (the windows must be kept by the task of the new
//! key, so the records are repartitioned first).

use std::collections::BTreeMap;
use std::time::Duration;

use riverbed::streams::{App, Builder, Materialized, StreamsConfig, TimeWindows, Windowed};
use riverbed::{ProducerRecord, Store, TopicConfig};

use crate::common;

#[test]
fn a_foreign_key_join_of_tables_with_different_partition_counts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("orders", TopicConfig::new(2)).unwrap();
    store
        .create_topic("customers", TopicConfig::new(3))
        .unwrap();

    let b = Builder::new("fk-apart");
    let customers = b.table::<String, String>("customers", Materialized::named("customers"));
    b.table::<String, String>("orders", Materialized::named("orders"))
        .join_foreign_key(
            &customers,
            |order: &String| order.split(':').next().unwrap_or_default().to_string(),
            |order: &String, name: &String| format!("{order}@{name}"),
            Materialized::named("orders-with-names"),
        );
    let topology = b.build().unwrap();
    assert!(
        topology.subtopologies().len() >= 2,
        "{}",
        topology.describe()
    );
    let app = App::start(
        &store,
        topology,
        StreamsConfig::new()
            .threads(2)
            .commit_interval(Duration::from_millis(20)),
    )
    .unwrap();
    let p = store.producer();
    let mut truth = BTreeMap::new();
    for c in 0..20 {
        p.send(
            ProducerRecord::new("customers")
                .key(format!("c{c}"))
                .value(format!("name{c}")),
        )
        .unwrap();
    }
    for o in 0..200u32 {
        let customer = (o * 7) % 20;
        p.send(
            ProducerRecord::new("orders")
                .key(format!("o{o}"))
                .value(format!("c{customer}:{o}")),
        )
        .unwrap();
        truth.insert(format!("o{o}"), format!("c{customer}:{o}@name{customer}"));
    }
    // Renaming a customer reaches every order that refers to it, whichever partitions hold them.
    p.send(ProducerRecord::new("customers").key("c7").value("renamed"))
        .unwrap();
    for v in truth.values_mut() {
        if v.starts_with("c7:") {
            *v = format!("{}@renamed", v.split('@').next().unwrap());
        }
    }
    p.flush().unwrap();
    let results = app.store::<String, String>("orders-with-names").unwrap();
    common::wait_for("the join results", || {
        results
            .all()
            .unwrap()
            .into_iter()
            .collect::<BTreeMap<_, _>>()
            == truth
    });
    for (topic, partitions) in [
        (
            "fk-apart-orders-with-names-subscription-registration-repartition",
            3,
        ),
        (
            "fk-apart-orders-with-names-subscription-response-repartition",
            2,
        ),
    ] {
        assert_eq!(
            store.describe_topic(topic).unwrap().partitions.len(),
            partitions,
            "{topic}"
        );
    }
    app.close().unwrap();
}

#[test]
fn a_windowed_count_after_a_key_change_is_repartitioned() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("clicks", TopicConfig::new(2)).unwrap();

    // Clicks keyed by session id, counted per page (the value) in one-minute windows.
    let b = Builder::new("pages");
    b.stream::<String, String>("clicks")
        .group_by(|_session, page| page.clone())
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_secs(60),
            Duration::from_secs(600),
        ))
        .count(Materialized::named("page-counts"));
    let topology = b.build().unwrap();
    assert_eq!(topology.repartition_topics().len(), 1, "{topology:?}");
    let app = App::start(
        &store,
        topology,
        StreamsConfig::new()
            .threads(2)
            .commit_interval(Duration::from_millis(20)),
    )
    .unwrap();
    let p = store.producer();
    let mut truth: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for i in 0..300i64 {
        let page = format!("page{}", i % 5);
        let ts = (i % 3) * 60_000 + i;
        p.send(
            ProducerRecord::new("clicks")
                .key(format!("session{}", i % 17))
                .value(page.clone())
                .timestamp(ts),
        )
        .unwrap();
        *truth.entry((page, ts / 60_000 * 60_000)).or_default() += 1;
    }
    p.flush().unwrap();
    let counts = app.window_store::<String, i64>("page-counts").unwrap();
    common::wait_for("the windowed counts", || {
        let got: BTreeMap<(String, i64), i64> = counts
            .fetch_all(i64::MIN, i64::MAX)
            .unwrap()
            .into_iter()
            .map(|(w, n): (Windowed<String>, i64)| ((w.key, w.window.start), n))
            .collect();
        got == truth
    });
    app.close().unwrap();
}
