//! `Json<T>` (feature `json`) end to end: structured values through an `App` against a real
//! store and through the test driver, and malformed JSON handled by the deserialization
//! handler like any other bad record.

use std::time::Duration;

use riverbed::streams::{
    App, Builder, DeserializationHandler, Json, Materialized, Serde, StreamsConfig,
    TopologyTestDriver,
};
use riverbed::{ErrorKind, ProducerRecord, Store, TopicConfig};
use serde::{Deserialize, Serialize};

use crate::common;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Order {
    customer: String,
    cents: i64,
}

/// Spend per customer, from JSON orders keyed by customer.
fn spend_app() -> riverbed::streams::Topology {
    let b = Builder::new("spend-app");
    b.stream::<String, Json<Order>>("orders")
        .map_values(|o| o.cents)
        .group_by_key()
        .reduce(|total, cents| total + cents, Materialized::named("spend"))
        .to_stream()
        .to("spend");
    b.build().unwrap()
}

fn setup() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("orders", TopicConfig::new(2)).unwrap();
    store.create_topic("spend", TopicConfig::new(2)).unwrap();
    (dir, store)
}

fn order(customer: &str, cents: i64) -> Vec<u8> {
    Json(Order {
        customer: customer.to_string(),
        cents,
    })
    .encode()
    .unwrap()
}

const MALFORMED: &[u8] = br#"{"customer":"bob","cents":"#;

#[test]
fn json_values_flow_through_an_app_and_malformed_ones_are_skipped_and_counted() {
    let (_dir, store) = setup();
    let config = StreamsConfig::new()
        .threads(2)
        .commit_interval(Duration::from_millis(20))
        .deserialization_handler(DeserializationHandler::LogAndContinue);
    let app = App::start(&store, spend_app(), config).unwrap();
    let p = store.producer();
    p.send(
        ProducerRecord::new("orders")
            .key("ada")
            .value(order("ada", 250)),
    )
    .unwrap();
    p.send(ProducerRecord::new("orders").key("bob").value(MALFORMED))
        .unwrap();
    p.send(
        ProducerRecord::new("orders")
            .key("bob")
            .value(b"not json".to_vec()),
    )
    .unwrap();
    p.send(
        ProducerRecord::new("orders")
            .key("bob")
            .value(order("bob", 7)),
    )
    .unwrap();
    p.send(
        ProducerRecord::new("orders")
            .key("ada")
            .value(order("ada", 100)),
    )
    .unwrap();
    let spend = app.store::<String, i64>("spend").unwrap();
    common::wait_for("both customers' spend", || {
        spend.get("ada").unwrap() == Some(350) && spend.get("bob").unwrap() == Some(7)
    });
    let m = app.metrics();
    assert_eq!(m.skipped_records, 2, "{m:?}");
    assert_eq!(m.processed_records, 3, "{m:?}");
    assert!(app.is_running());
    app.close().unwrap();
}

#[test]
fn a_malformed_json_record_stops_an_app_with_the_fail_handler() {
    let (_dir, store) = setup();
    let config = StreamsConfig::new().commit_interval(Duration::from_millis(20));
    let app = App::start(&store, spend_app(), config).unwrap();
    let p = store.producer();
    p.send(
        ProducerRecord::new("orders")
            .key("ada")
            .value(order("ada", 250)),
    )
    .unwrap();
    p.send(ProducerRecord::new("orders").key("bob").value(MALFORMED))
        .unwrap();
    common::wait_for("the app to stop", || !app.is_running());
    let e = app.close().unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Deserialization { .. }), "{e}");
    assert!(e.to_string().contains("Order"), "{e}");
}

#[test]
fn the_test_driver_fails_on_or_skips_malformed_json() {
    let mut d = TopologyTestDriver::new(spend_app()).unwrap();
    d.pipe_raw("orders", Some(b"ada"), Some(&order("ada", 1)), 0)
        .unwrap();
    let e = d
        .pipe_raw("orders", Some(b"bob"), Some(MALFORMED), 0)
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Deserialization { .. }), "{e}");

    let config =
        StreamsConfig::new().deserialization_handler(DeserializationHandler::LogAndContinue);
    let mut d = TopologyTestDriver::with_config(spend_app(), &config).unwrap();
    d.pipe_raw("orders", Some(b"bob"), Some(MALFORMED), 0)
        .unwrap();
    d.pipe_raw("orders", Some(b"bob"), None, 0).unwrap(); // a null is no Order either
    d.pipe_input(
        "orders",
        &"bob".to_string(),
        &Json(Order {
            customer: "bob".into(),
            cents: 4,
        }),
        0,
    )
    .unwrap();
    assert_eq!(d.metrics().skipped_records, 2);
    assert_eq!(d.metrics().processed_records, 1);
    let out = d.read_output::<String, i64>("spend").unwrap();
    assert_eq!(out.iter().map(|r| r.value).collect::<Vec<_>>(), [4]);
}

#[test]
fn a_value_that_cannot_be_json_is_a_processing_error_not_a_crash() {
    // JSON object keys are strings: a map keyed by lists does not serialize.
    type Unserializable = std::collections::BTreeMap<Vec<u8>, i64>;
    let b = Builder::new("bad-type");
    b.stream::<String, i64>("orders")
        .map_values(|v| Json(Unserializable::from([(vec![1], v)])))
        .to("spend");
    let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let e = d
        .pipe_input("orders", &"k".to_string(), &1i64, 0)
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::StreamsProcessing { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("does not serialize"), "{e}");
}
