//! The runtime: `App` against a real store, with several stream threads in a group.

use std::collections::HashMap;
use std::time::Duration;

use riverbed::streams::{App, Builder, Materialized, Serde, StreamsConfig};
use riverbed::{
    ConsumerConfig, IsolationLevel, OffsetReset, ProducerRecord, Store, TopicConfig, TopicPartition,
};

use crate::common;

const PARTITIONS: u32 = 4;

fn balances_app() -> riverbed::streams::Topology {
    let b = Builder::new("balances-app");
    b.stream::<String, i64>("payments")
        .group_by_key()
        .aggregate(
            || 0,
            |_who, amount, balance| balance + amount,
            Materialized::named("balances"),
        )
        .to_stream()
        .to("balances");
    b.build().unwrap()
}

fn setup() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic("payments", TopicConfig::new(PARTITIONS))
        .unwrap();
    store
        .create_topic("balances", TopicConfig::new(PARTITIONS))
        .unwrap();
    (dir, store)
}

fn pay(store: &Store, payments: &[(&str, i64)]) {
    let p = store.producer();
    for (who, amount) in payments {
        p.send(
            ProducerRecord::new("payments")
                .key(*who)
                .value(amount.encode().unwrap()),
        )
        .unwrap();
    }
}

/// The last committed value per key of a topic.
fn latest(store: &Store, topic: &str) -> HashMap<String, i64> {
    common::read_topic(store, topic, IsolationLevel::ReadCommitted)
        .into_iter()
        .map(|r| {
            let k = String::decode(&r.key.unwrap()).unwrap();
            (k, i64::decode(&r.value.unwrap()).unwrap())
        })
        .collect()
}

#[test]
fn balances_duality_exactly_once_with_two_threads() {
    let (_dir, store) = setup();
    let app = App::start(
        &store,
        balances_app(),
        StreamsConfig::new().threads(2).exactly_once(),
    )
    .unwrap();
    pay(
        &store,
        &[("alice", 50), ("bob", 18), ("alice", 25), ("alice", -60)],
    );
    let balances = app.store::<String, i64>("balances").unwrap();
    common::wait_for("the balances", || {
        balances.get("alice").unwrap() == Some(15) && balances.get("bob").unwrap() == Some(18)
    });
    assert_eq!(
        balances.all().unwrap(),
        [("alice".to_string(), 15), ("bob".to_string(), 18)]
    );
    app.close().unwrap();
    // The changes stream ends in the table; the changelog holds the table too.
    let out = latest(&store, "balances");
    assert_eq!(
        out,
        HashMap::from([("alice".to_string(), 15), ("bob".to_string(), 18)])
    );
    let changelog = latest(&store, "balances-app-balances-changelog");
    assert_eq!(changelog, out);
    let d = store
        .describe_topic("balances-app-balances-changelog")
        .unwrap();
    assert_eq!(d.partitions.len(), PARTITIONS as usize);
    assert!(d.config.get_log().get_cleanup_policy().compacts());
}

#[test]
fn state_is_restored_from_the_changelog_after_a_restart() {
    let (_dir, store) = setup();
    let config = || {
        StreamsConfig::new()
            .threads(2)
            .commit_interval(Duration::from_millis(20))
    };
    let app = App::start(&store, balances_app(), config()).unwrap();
    pay(&store, &[("alice", 50), ("bob", 18)]);
    let b = app.store::<String, i64>("balances").unwrap();
    common::wait_for("first run", || {
        b.get("alice").unwrap() == Some(50) && b.get("bob").unwrap() == Some(18)
    });
    app.close().unwrap();

    let app = App::start(&store, balances_app(), config()).unwrap();
    let b = app.store::<String, i64>("balances").unwrap();
    // Before any new input, the restored state is queryable.
    common::wait_for("restore", || b.get("alice").unwrap() == Some(50));
    pay(&store, &[("alice", 25), ("alice", -60), ("carol", 7)]);
    common::wait_for("second run", || {
        b.get("alice").unwrap() == Some(15) && b.get("carol").unwrap() == Some(7)
    });
    assert_eq!(b.get("bob").unwrap(), Some(18));
    // Offsets were committed at close: the first run's inputs were not processed again.
    assert_eq!(app.metrics().processed_records, 3);
    app.close().unwrap();
}

#[test]
fn at_least_once_counts_are_never_below_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("words", TopicConfig::new(3)).unwrap();
    store
        .create_topic("word-counts", TopicConfig::new(3))
        .unwrap();
    let b = Builder::new("wc");
    b.stream::<String, String>("words")
        .group_by_key()
        .count(Materialized::named("counts"))
        .to_stream()
        .to("word-counts");
    let app = App::start(
        &store,
        b.build().unwrap(),
        StreamsConfig::new()
            .threads(3)
            .commit_interval(Duration::from_millis(10)),
    )
    .unwrap();
    let p = store.producer();
    let mut truth: HashMap<String, i64> = HashMap::new();
    for i in 0..3000u32 {
        let k = format!("w{}", i % 17);
        *truth.entry(k.clone()).or_default() += 1;
        p.send(ProducerRecord::new("words").key(k).value("x"))
            .unwrap();
    }
    let counts = app.store::<String, i64>("counts").unwrap();
    common::wait_for("all counted", || {
        truth
            .iter()
            .all(|(k, n)| counts.get(k.as_str()).unwrap().unwrap_or(0) >= *n)
    });
    app.close().unwrap();
    let out = {
        let mut c = store
            .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))
            .unwrap();
        let tps: Vec<_> = (0..3)
            .map(|p| TopicPartition::new("word-counts", p))
            .collect();
        c.assign(&tps).unwrap();
        let ends = c.end_offsets(&tps).unwrap();
        let mut out: HashMap<String, i64> = HashMap::new();
        while ends.iter().any(|(tp, end)| c.position(tp).unwrap() < *end) {
            for r in c.poll(Duration::from_millis(50)).unwrap().iter() {
                out.insert(
                    String::decode(r.key().unwrap()).unwrap(),
                    i64::decode(r.value().unwrap()).unwrap(),
                );
            }
        }
        out
    };
    for (k, n) in &truth {
        assert!(out[k] >= *n, "{k}: {} < {n}", out[k]);
    }
}

#[test]
fn an_error_in_user_code_stops_the_app() {
    let (_dir, store) = setup();
    let b = Builder::new("fragile");
    b.stream::<String, i64>("payments")
        .map_values(|v| if v < 0 { panic!("negative payment") } else { v })
        .to("balances");
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = std::sync::Arc::clone(&seen);
    let config =
        StreamsConfig::new().on_error(move |_| s2.store(true, std::sync::atomic::Ordering::SeqCst));
    let app = App::start(&store, b.build().unwrap(), config).unwrap();
    pay(&store, &[("alice", 5), ("bob", -1)]);
    common::wait_for("the app to stop", || !app.is_running());
    assert!(seen.load(std::sync::atomic::Ordering::SeqCst));
    let e = app.close().unwrap_err();
    assert!(
        matches!(e.kind(), riverbed::ErrorKind::StreamsProcessing { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("negative payment"), "{e}");
}

#[test]
fn missing_topics_and_bad_co_partitioning_are_refused_at_start() {
    let (_dir, store) = setup();
    let b = Builder::new("x");
    b.stream::<String, i64>("nope").to("balances");
    assert!(App::start(&store, b.build().unwrap(), StreamsConfig::new()).is_err());
    store.create_topic("other", TopicConfig::new(2)).unwrap();
    // Merged, the two streams are one sub-topology, whose topics must be co-partitioned.
    let b = Builder::new("y");
    b.stream::<String, i64>("payments")
        .merge(&b.stream::<String, i64>("other"))
        .to("balances");
    let e = App::start(&store, b.build().unwrap(), StreamsConfig::new()).unwrap_err();
    assert!(e.to_string().contains("co-partitioned"), "{e}");
    assert!(e.to_string().contains("\"other\" has 2"), "{e}");
}
