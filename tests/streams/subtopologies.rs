//! Sub-topologies: a topology split at its repartition topics, each part running one task per
//! partition of its own (co-partitioned) source topics; repartition topics sized by
//! `Repartitioned`, by the other side of a join, or by the sub-topology upstream.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use riverbed::streams::{
    App, Builder, Materialized, Processor, ProcessorContext, Repartitioned, Serde, StreamRecord,
    StreamsConfig, Topology, TopologyTestDriver,
};
use riverbed::{IsolationLevel, ProducerRecord, Store, TopicConfig};

use crate::common;

fn store_with(topics: &[(&str, u32)]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for (t, n) in topics {
        store.create_topic(t, TopicConfig::new(*n)).unwrap();
    }
    (dir, store)
}

fn partitions(store: &Store, topic: &str) -> usize {
    store.describe_topic(topic).unwrap().partitions.len()
}

/// Commits every 20 ms, so the stores' committed view (what `App::store` shows) keeps up.
fn fast() -> StreamsConfig {
    StreamsConfig::new().commit_interval(Duration::from_millis(20))
}

/// Every committed record of `topic` (all partitions), decoded as strings.
fn read_all(store: &Store, topic: &str) -> Vec<(String, String)> {
    common::read_topic(store, topic, IsolationLevel::ReadCommitted)
        .into_iter()
        .map(|r| {
            (
                String::decode(&r.key.unwrap()).unwrap(),
                String::decode(&r.value.unwrap()).unwrap(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// (1) A join after a key change, with an input of 4 partitions and a table of 2.

const CUSTOMERS: [&str; 5] = ["ann", "bob", "cy", "dee", "eve"];

/// Orders (4 partitions, keyed by order id, valued by customer) re-keyed by customer and joined
/// with the customers table (2 partitions): `repartition` None is the automatic repartition.
fn order_join(app: &str, repartition: Option<Repartitioned>) -> Topology {
    let b = Builder::new(app);
    let customers = b.table::<String, String>("customers", Materialized::named("customers"));
    let by_customer = b
        .stream::<String, String>("orders")
        .select_key(|_order, customer| customer.clone());
    let by_customer = match repartition {
        Some(r) => by_customer.repartition_with(r),
        None => by_customer,
    };
    by_customer
        .join(&customers, |order_customer, city| {
            format!("{order_customer}@{city}")
        })
        .to("enriched");
    b.build().unwrap()
}

fn join_store() -> (tempfile::TempDir, Store) {
    store_with(&[("orders", 4), ("customers", 2), ("enriched", 2)])
}

/// Runs the join with two threads: every order comes out joined with its customer's city.
fn run_join(store: &Store, topology: Topology) {
    let p = store.producer();
    for (i, c) in CUSTOMERS.iter().enumerate() {
        p.send(
            ProducerRecord::new("customers")
                .key(*c)
                .value(format!("city{i}")),
        )
        .unwrap();
    }
    let app = App::start(store, topology, fast().threads(2)).unwrap();
    let table = app.store::<String, String>("customers").unwrap();
    common::wait_for_apps("the customers table", &[&app], || {
        table.all().unwrap().len() == CUSTOMERS.len()
    });
    let mut expected = Vec::new();
    for i in 0..60 {
        let c = CUSTOMERS[i % CUSTOMERS.len()];
        p.send(
            ProducerRecord::new("orders")
                .key(format!("o{i}"))
                .value(c.to_string()),
        )
        .unwrap();
        let city = CUSTOMERS.iter().position(|x| x == &c).unwrap();
        expected.push((c.to_string(), format!("{c}@city{city}")));
    }
    expected.sort();
    common::wait_for_apps("the joined orders", &[&app], || {
        read_all(store, "enriched").len() >= expected.len()
    });
    app.close().unwrap();
    let mut got = read_all(store, "enriched");
    got.sort();
    assert_eq!(got, expected);
}

#[test]
fn a_join_after_a_key_change_repartitions_to_the_table_partition_count() {
    let (_dir, store) = join_store();
    let topology = order_join("auto", None);
    let repartition = topology.repartition_topics()[0].clone();
    // Orders and the re-keyed orders are two sub-topologies; the join reads the repartition
    // topic and the table in the second.
    // (The table was added first, so its sub-topology is number 0.)
    let subs = topology.subtopologies();
    assert_eq!(subs.len(), 2, "{}", topology.describe());
    assert_eq!(
        subs[0].source_topics,
        ["customers".to_string(), repartition.clone()]
    );
    assert_eq!(subs[0].stores, ["customers"]);
    assert_eq!(subs[0].sink_topics, ["enriched"]);
    assert_eq!(subs[1].source_topics, ["orders"]);
    assert_eq!(subs[1].sink_topics, std::slice::from_ref(&repartition));
    run_join(&store, topology);
    // Sized like the table it is joined with, not like the orders.
    assert_eq!(partitions(&store, &repartition), 2);
    assert_eq!(partitions(&store, "auto-customers-changelog"), 2);
}

#[test]
fn an_explicit_repartition_count_that_matches_the_table_joins() {
    let (_dir, store) = join_store();
    let r = Repartitioned::named("by-customer").with_number_of_partitions(2);
    run_join(&store, order_join("explicit", Some(r)));
    assert_eq!(partitions(&store, "explicit-by-customer-repartition"), 2);
}

#[test]
fn an_explicit_repartition_count_that_does_not_match_the_table_is_refused() {
    let (_dir, store) = join_store();
    let r = Repartitioned::named("by-customer").with_number_of_partitions(4);
    let e = App::start(&store, order_join("wrong", Some(r)), StreamsConfig::new()).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e.kind(), riverbed::ErrorKind::InvalidArgument { .. }),
        "{e}"
    );
    for part in [
        "\"wrong-by-customer-repartition\"",
        "4 partitions",
        "\"customers\"",
        "has 2",
        "stream-table join",
    ] {
        assert!(msg.contains(part), "{part:?} not in: {msg}");
    }
    // Nothing was created for the refused topology.
    assert!(store
        .describe_topic("wrong-by-customer-repartition")
        .is_err());
}

#[test]
fn a_join_of_input_topics_with_different_counts_is_refused_naming_both() {
    let (_dir, store) = join_store();
    let b = Builder::new("direct");
    let customers = b.table::<String, String>("customers", Materialized::named("customers"));
    b.stream::<String, String>("orders")
        .join(&customers, |o, c| format!("{o}{c}"))
        .to("enriched");
    let e = App::start(&store, b.build().unwrap(), StreamsConfig::new()).unwrap_err();
    let msg = e.to_string();
    for part in [
        "stream-table join",
        "not co-partitioned",
        "\"orders\" has 4",
        "\"customers\" has 2",
    ] {
        assert!(msg.contains(part), "{part:?} not in: {msg}");
    }
}

#[test]
fn an_existing_repartition_topic_with_another_count_is_refused() {
    let (_dir, store) = join_store();
    let topology = order_join("auto", None);
    let repartition = topology.repartition_topics()[0].clone();
    store
        .create_topic(&repartition, TopicConfig::new(3))
        .unwrap();
    let e = App::start(&store, topology, StreamsConfig::new()).unwrap_err();
    assert!(e.to_string().contains("exists with 3 partitions"), "{e}");
    assert!(e.to_string().contains("needs 2"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// (2) Group-by-count through a repartition topic of 3 partitions from an input of 2.

const APP: &str = "regroup";

/// Counts `clicks` (2 partitions, keyed by click id, valued by user) per user through a
/// repartition topic of 3 partitions. A record whose user is `poison` panics while `armed`, in
/// the sub-topology after the repartition.
fn regroup(armed: &Arc<AtomicBool>) -> Topology {
    let armed = Arc::clone(armed);
    let b = Builder::new(APP);
    b.stream::<String, String>("clicks")
        .select_key(|_click, user| user.clone())
        .repartition_with(Repartitioned::named("by-user").with_number_of_partitions(3))
        .peek(move |user, _| {
            if armed.load(Ordering::SeqCst) && user == "poison" {
                panic!("poison record");
            }
        })
        .group_by_key()
        .count(Materialized::named("per-user"));
    b.build().unwrap()
}

fn produce(store: &Store, from: u64, to: u64, truth: &mut BTreeMap<String, i64>) {
    let p = store.producer();
    for i in from..to {
        let user = format!("u{}", (i * 7) % 23);
        *truth.entry(user.clone()).or_insert(0) += 1;
        p.send(
            ProducerRecord::new("clicks")
                .key(format!("c{i}"))
                .value(user),
        )
        .unwrap();
    }
}

fn counts(app: &App) -> BTreeMap<String, i64> {
    app.store::<String, i64>("per-user")
        .unwrap()
        .all()
        .unwrap()
        .into_iter()
        .collect()
}

fn regroup_config(eos: bool) -> StreamsConfig {
    let c = StreamsConfig::new()
        .threads(2)
        .commit_interval(Duration::from_millis(20));
    if eos {
        c.exactly_once()
    } else {
        c
    }
}

fn group_by_count_through_a_wider_repartition(eos: bool) {
    let (_dir, store) = store_with(&[("clicks", 2)]);
    let disarmed = Arc::new(AtomicBool::new(false));
    let mut truth = BTreeMap::new();
    produce(&store, 0, 400, &mut truth);
    let app = App::start(&store, regroup(&disarmed), regroup_config(eos)).unwrap();
    common::wait_for_apps("the first counts", &[&app], || counts(&app) == truth);
    app.close().unwrap();
    assert_eq!(partitions(&store, "regroup-by-user-repartition"), 3);
    // The store is in the sub-topology after the repartition: 3 tasks, 3 changelog partitions.
    assert_eq!(partitions(&store, "regroup-per-user-changelog"), 3);

    // A restart restores the counts of each task of the second sub-topology, then goes on.
    let app = App::start(&store, regroup(&disarmed), regroup_config(eos)).unwrap();
    produce(&store, 400, 700, &mut truth);
    common::wait_for_apps("the counts after a restart", &[&app], || {
        counts(&app) == truth
    });
    let m = app.metrics();
    assert!(
        m.snapshots_used >= 3 && m.restored_from_snapshots > 0,
        "each of the 3 tasks restores its snapshot: {m:?}"
    );
    app.close().unwrap();

    // A failure in the second sub-topology stops the application; what it had not committed
    // is done again after the restart.
    let armed = Arc::new(AtomicBool::new(true));
    let app = App::start(&store, regroup(&armed), regroup_config(eos)).unwrap();
    produce(&store, 700, 900, &mut truth);
    let p = store.producer();
    p.send(
        ProducerRecord::new("clicks")
            .key("boom")
            .value("poison".to_string()),
    )
    .unwrap();
    *truth.entry("poison".to_string()).or_insert(0) += 1;
    let start = Instant::now();
    while app.error().is_none() {
        assert!(start.elapsed() < Duration::from_secs(60), "no failure");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(app.close().is_err());
    let app = App::start(&store, regroup(&disarmed), regroup_config(eos)).unwrap();
    if eos {
        common::wait_for_apps("the exact counts after a failure", &[&app], || {
            counts(&app) == truth
        });
    } else {
        // At-least-once may count the redone records twice, never fewer.
        common::wait_for_apps("the counts after a failure", &[&app], || {
            let got = counts(&app);
            truth
                .iter()
                .all(|(k, n)| got.get(k).is_some_and(|g| g >= n))
        });
    }
    app.close().unwrap();
}

#[test]
fn group_by_count_through_a_wider_repartition_at_least_once() {
    group_by_count_through_a_wider_repartition(false);
}

#[test]
fn group_by_count_through_a_wider_repartition_exactly_once() {
    group_by_count_through_a_wider_repartition(true);
}

#[test]
fn a_repartition_without_a_count_takes_the_upstream_count_through_a_chain() {
    // clicks (2) -> by-user (5) -> auto -> counts: the second repartition has no co-partitioned
    // input beside it, so it takes its upstream sub-topology's count, 5.
    let (_dir, store) = store_with(&[("clicks", 2)]);
    let b = Builder::new("chain");
    b.stream::<String, String>("clicks")
        .select_key(|_click, user| user.clone())
        .repartition_with(Repartitioned::named("by-user").with_number_of_partitions(5))
        .select_key(|user, _| user.len().to_string())
        .group_by_key()
        .count(Materialized::named("per-length"));
    let topology = b.build().unwrap();
    assert_eq!(topology.subtopologies().len(), 3);
    let app = App::start(&store, topology, fast()).unwrap();
    let p = store.producer();
    for (i, user) in ["ann", "bob", "carla", "di"].iter().enumerate() {
        p.send(
            ProducerRecord::new("clicks")
                .key(format!("c{i}"))
                .value(user.to_string()),
        )
        .unwrap();
    }
    let per_length = app.store::<String, i64>("per-length").unwrap();
    common::wait_for_apps("the counts", &[&app], || {
        per_length.all().unwrap()
            == [
                ("2".to_string(), 1),
                ("3".to_string(), 2),
                ("5".to_string(), 1),
            ]
    });
    app.close().unwrap();
    assert_eq!(partitions(&store, "chain-by-user-repartition"), 5);
    assert_eq!(partitions(&store, "chain-per-length-repartition"), 5);
    assert_eq!(partitions(&store, "chain-per-length-changelog"), 5);
}

// ---------------------------------------------------------------------------------------------
// (3) Stores and sub-topologies in the Processor API; describe.

/// Counts records per key into the store `store`.
struct CountInto(&'static str);

impl Processor<String, String> for CountInto {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        r: StreamRecord<String, String>,
    ) -> riverbed::Result<()> {
        let mut s = ctx.store::<String, i64>(self.0)?;
        let n = s.get(&r.key)?.unwrap_or(0) + 1;
        s.put(&r.key, &n)?;
        Ok(())
    }
}

/// Two independent source -> processor chains, `a` and `b`.
fn two_chains() -> Topology {
    let mut t = Topology::new("chains");
    t.add_source::<String, String>("src-a", &["a"])
        .unwrap()
        .add_processor("count-a", || CountInto("store-a"), &["src-a"])
        .unwrap()
        .add_source::<String, String>("src-b", &["b"])
        .unwrap()
        .add_processor("count-b", || CountInto("store-b"), &["src-b"])
        .unwrap();
    t
}

#[test]
fn an_unconnected_store_is_refused_with_several_subtopologies() {
    let mut t = two_chains();
    t.add_state_store("store-a").unwrap();
    let e = TopologyTestDriver::new(t).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("\"store-a\""), "{msg}");
    assert!(msg.contains("not connected"), "{msg}");
    assert!(msg.contains("2 sub-topologies"), "{msg}");
}

#[test]
fn an_unconnected_store_belongs_to_the_only_subtopology() {
    let mut t = Topology::new("one");
    t.add_source::<String, String>("src", &["a"])
        .unwrap()
        .add_processor("count", || CountInto("counts"), &["src"])
        .unwrap()
        .add_state_store("counts")
        .unwrap();
    assert_eq!(t.subtopologies()[0].stores, ["counts"]);
    let mut d = TopologyTestDriver::new(t).unwrap();
    d.pipe_input("a", &"k".to_string(), &"v".to_string(), 0)
        .unwrap();
    assert_eq!(
        d.store::<String, i64>("counts").unwrap().get("k").unwrap(),
        Some(1)
    );
}

#[test]
fn connected_stores_place_each_store_in_its_subtopology() {
    let mut t = two_chains();
    t.add_state_store_for("store-a", &["count-a"])
        .unwrap()
        .add_state_store("store-b")
        .unwrap()
        .connect_processor_and_state_stores("count-b", &["store-b"])
        .unwrap();
    let subs = t.subtopologies();
    assert_eq!(subs.len(), 2);
    assert_eq!(
        (
            subs[0].id,
            subs[0].source_topics.as_slice(),
            subs[0].stores.as_slice()
        ),
        (0, &["a".to_string()][..], &["store-a".to_string()][..])
    );
    assert_eq!(
        (
            subs[1].id,
            subs[1].source_topics.as_slice(),
            subs[1].stores.as_slice()
        ),
        (1, &["b".to_string()][..], &["store-b".to_string()][..])
    );
    assert_eq!(subs[1].nodes, ["src-b", "count-b"]);
    let described = t.describe();
    for part in [
        "Sub-topology 0",
        "Sub-topology 1",
        "count-a (processor) stores [\"store-a\"]",
        "store \"store-b\" (changelog \"chains-store-b-changelog\")",
    ] {
        assert!(described.contains(part), "{part:?} not in:\n{described}");
    }
    assert!(
        described.find("store \"store-a\"") < described.find("Sub-topology 1"),
        "{described}"
    );
    let mut d = TopologyTestDriver::new(t).unwrap();
    d.pipe_input("a", &"k".to_string(), &"v".to_string(), 0)
        .unwrap();
    d.pipe_input("b", &"k".to_string(), &"v".to_string(), 0)
        .unwrap();
    d.pipe_input("b", &"k".to_string(), &"v".to_string(), 0)
        .unwrap();
    assert_eq!(
        d.store::<String, i64>("store-a").unwrap().get("k").unwrap(),
        Some(1)
    );
    assert_eq!(
        d.store::<String, i64>("store-b").unwrap().get("k").unwrap(),
        Some(2)
    );
}

#[test]
fn a_store_shared_by_two_chains_makes_them_one_subtopology() {
    let mut t = two_chains();
    t.add_state_store_for("store-a", &["count-a"]).unwrap();
    t.add_state_store_for("store-b", &["count-b"]).unwrap();
    assert_eq!(t.subtopologies().len(), 2);
    // count-b now also uses store-a: both chains must run in the same task.
    t.connect_processor_and_state_stores("count-b", &["store-a"])
        .unwrap();
    let subs = t.subtopologies();
    assert_eq!(subs.len(), 1, "{}", t.describe());
    assert_eq!(subs[0].source_topics, ["a", "b"]);
    assert_eq!(subs[0].stores, ["store-a", "store-b"]);
    // ... so their topics must be co-partitioned.
    let (_dir, store) = store_with(&[("a", 2), ("b", 3)]);
    let e = App::start(&store, t, StreamsConfig::new()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("sub-topology 0"), "{msg}");
    assert!(msg.contains("\"a\" has 2"), "{msg}");
    assert!(msg.contains("\"b\" has 3"), "{msg}");
}

#[test]
fn independent_subtopologies_need_not_be_copartitioned() {
    let mut t = two_chains();
    t.add_state_store_for("store-a", &["count-a"]).unwrap();
    t.add_state_store_for("store-b", &["count-b"]).unwrap();
    let (_dir, store) = store_with(&[("a", 2), ("b", 3)]);
    let app = App::start(&store, t, fast().threads(2)).unwrap();
    let p = store.producer();
    for i in 0..30 {
        p.send(
            ProducerRecord::new("a")
                .key(format!("k{}", i % 4))
                .value("x".to_string()),
        )
        .unwrap();
        p.send(
            ProducerRecord::new("b")
                .key(format!("k{}", i % 5))
                .value("x".to_string()),
        )
        .unwrap();
    }
    let (a, b) = (
        app.store::<String, i64>("store-a").unwrap(),
        app.store::<String, i64>("store-b").unwrap(),
    );
    common::wait_for_apps("both stores", &[&app], || {
        a.all().unwrap().iter().map(|(_, n)| n).sum::<i64>() == 30
            && b.all().unwrap().iter().map(|(_, n)| n).sum::<i64>() == 30
    });
    app.close().unwrap();
    assert_eq!(partitions(&store, "chains-store-a-changelog"), 2);
    assert_eq!(partitions(&store, "chains-store-b-changelog"), 3);
}

#[test]
fn bad_connections_are_refused() {
    let mut t = two_chains();
    t.add_state_store("store-a").unwrap();
    let e = t
        .connect_processor_and_state_stores("count-a", &["nope"])
        .unwrap_err();
    assert!(e.to_string().contains("no such state store"), "{e}");
    let e = t
        .connect_processor_and_state_stores("src-a", &["store-a"])
        .unwrap_err();
    assert!(e.to_string().contains("source or a sink"), "{e}");
    let e = t
        .connect_processor_and_state_stores("ghost", &["store-a"])
        .unwrap_err();
    assert!(e.to_string().contains("unknown processor"), "{e}");
    // A failed add_state_store_for adds nothing.
    assert!(t.add_state_store_for("store-b", &["ghost"]).is_err());
    assert_eq!(t.store_names(), ["store-a"]);
}

#[test]
fn a_repartition_of_zero_partitions_is_refused() {
    let b = Builder::new("zero");
    b.stream::<String, String>("in")
        .repartition_with(Repartitioned::unnamed().with_number_of_partitions(0))
        .to("out");
    let e = b.build().unwrap_err();
    assert!(e.to_string().contains("at least one partition"), "{e}");
}

#[test]
fn describe_shows_the_dsl_subtopologies() {
    let b = Builder::new("orders-app");
    b.stream::<String, String>("orders")
        .group_by(|_order, customer| customer.clone())
        .count(Materialized::named("per-customer"))
        .to_stream()
        .to("counts");
    let t = b.build().unwrap();
    let subs = t.subtopologies();
    assert_eq!(subs.len(), 2);
    assert_eq!(subs[0].source_topics, ["orders"]);
    assert_eq!(subs[0].sink_topics, ["orders-app-per-customer-repartition"]);
    assert!(subs[0].stores.is_empty());
    assert_eq!(
        subs[1].source_topics,
        ["orders-app-per-customer-repartition"]
    );
    assert_eq!(subs[1].sink_topics, ["counts"]);
    assert_eq!(subs[1].stores, ["per-customer"]);
    let d = t.describe();
    let (s0, s1) = (
        d.find("Sub-topology 0").unwrap(),
        d.find("Sub-topology 1").unwrap(),
    );
    let sink = d
        .find("sink \"orders-app-per-customer-repartition\"")
        .unwrap();
    let store = d.find("store \"per-customer\"").unwrap();
    assert!(s0 < sink && sink < s1 && s1 < store, "{d}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The test driver runs each sub-topology as a task: counts through two repartitions (the
    /// second regrouping the first's table) equal a plain model's.
    #[test]
    fn driver_counts_through_subtopologies_match_a_model(
        clicks in proptest::collection::vec((0u8..6, 0u8..4), 0..60),
    ) {
        let b = Builder::new("model");
        b.stream::<String, String>("clicks")
            .select_key(|_click, user| user.clone())
            .repartition_with(Repartitioned::named("by-user").with_number_of_partitions(3))
            .group_by_key()
            .count(Materialized::named("per-user"))
            .group_by(|user, n| (user.len().to_string(), *n))
            .reduce(|a, b| a + b, |a, b| a - b, Materialized::named("per-length"));
        let topology = b.build().unwrap();
        prop_assert_eq!(topology.subtopologies().len(), 3);
        let mut d = TopologyTestDriver::new(topology).unwrap();
        let mut per_user: BTreeMap<String, i64> = BTreeMap::new();
        for (i, (user, pad)) in clicks.iter().enumerate() {
            let user = format!("u{}{}", user, "x".repeat(*pad as usize));
            *per_user.entry(user.clone()).or_insert(0) += 1;
            d.pipe_input("clicks", &format!("c{i}"), &user, i as i64).unwrap();
        }
        let mut per_length: BTreeMap<String, i64> = BTreeMap::new();
        for (u, n) in &per_user {
            *per_length.entry(u.len().to_string()).or_insert(0) += n;
        }
        let got_users: BTreeMap<String, i64> =
            d.store::<String, i64>("per-user").unwrap().all().unwrap().into_iter().collect();
        let got_lengths: BTreeMap<String, i64> =
            d.store::<String, i64>("per-length").unwrap().all().unwrap().into_iter().collect();
        prop_assert_eq!(got_users, per_user);
        prop_assert_eq!(got_lengths, per_length);
    }
}
