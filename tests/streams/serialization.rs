//! Values that cannot be encoded (feature `json`): `Json<T>::encode` returns a `Serialization`
//! error instead of panicking, and a record whose output does not encode fails like an error in
//! user code: the test driver returns it, an `App` stops through its thread error handler with
//! nothing of the failed record committed (with exactly-once, its transaction aborted), and an
//! interactive query whose key does not encode returns it.

use std::collections::HashMap;
use std::time::Duration;

use riverbed::streams::{App, Builder, Json, Serde, StreamsConfig, TopologyTestDriver};
use riverbed::{
    Error, ErrorKind, IsolationLevel, ProducerRecord, Store, TopicConfig, TopicPartition,
};
use serde::{Deserialize, Serialize};

use crate::common;

/// A map keyed by grid cells: JSON object keys must be strings, so a non-empty one has no JSON.
type Grid = HashMap<(i32, i32), i32>;

/// What the test topologies write for an input number: a reading for a non-negative one, a
/// grid (which does not encode) for a negative one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
enum Reading {
    Level(i64),
    Cells(Grid),
}

fn reading(n: i64) -> Json<Reading> {
    if n < 0 {
        Json(Reading::Cells(HashMap::from([((0, 0), 1)])))
    } else {
        Json(Reading::Level(n))
    }
}

/// A `Serialize` implementation that refuses some values, as a hand-written one may.
#[derive(Debug, Deserialize)]
struct Cents(i64);

impl Serialize for Cents {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.unsigned_abs() > 1 << 53 {
            return Err(serde::ser::Error::custom("beyond an exact JSON number"));
        }
        s.serialize_i64(self.0)
    }
}

fn assert_serialization(e: &Error, type_name: &str) {
    assert!(matches!(e.kind(), ErrorKind::Serialization { .. }), "{e}");
    assert!(e.to_string().contains(type_name), "{e}");
}

/// The error a record whose output did not encode failed with: a processing error naming the
/// task and node, whose reason is the serialization error.
fn assert_processing_failed_to_serialize(e: &Error, type_name: &str) {
    let ErrorKind::StreamsProcessing { reason, cause, .. } = e.kind() else {
        panic!("expected a processing error, got {e}");
    };
    assert!(reason.contains("cannot serialize"), "{e}");
    assert!(reason.contains(type_name), "{e}");
    // The cause keeps its kind, for a thread error handler to match on.
    let cause = cause
        .as_ref()
        .expect("the error user code returned is kept");
    assert!(
        matches!(cause.kind(), ErrorKind::Serialization { .. }),
        "{cause}"
    );
    assert!(std::error::Error::source(e).is_some(), "{e}");
}

#[test]
fn json_encode_returns_an_error_for_a_value_without_json() {
    let grid: Grid = HashMap::from([((1, 2), 3)]);
    let e = Json(grid.clone()).encode().unwrap_err();
    assert_serialization(&e, "HashMap<(i32, i32), i32>");
    assert!(e.to_string().contains("key must be a string"), "{e}");
    assert_serialization(
        &Json(grid.clone()).encode_nullable().unwrap_err(),
        "HashMap",
    );
    assert_serialization(&Json(grid.clone()).into_encoded().unwrap_err(), "HashMap");
    assert_serialization(&Json(grid).into_nullable().unwrap_err(), "HashMap");
    // Nested in an enum and in an Option (a store value's tag byte, a record field's null).
    assert_serialization(&reading(-1).encode().unwrap_err(), "Reading");
    assert_serialization(&Some(reading(-1)).encode().unwrap_err(), "Reading");
    assert_serialization(&Some(reading(-1)).into_nullable().unwrap_err(), "Reading");

    let e = Json(Cents(1 << 60)).encode().unwrap_err();
    assert_serialization(&e, "Cents");
    assert!(e.to_string().contains("beyond an exact JSON number"), "{e}");
    // An empty grid and a small amount do have JSON.
    assert_eq!(Json(Grid::new()).encode().unwrap(), b"{}");
    assert_eq!(Json(Cents(12)).encode().unwrap(), b"12");
}

fn readings_topology(app_id: &str) -> riverbed::streams::Topology {
    let b = Builder::new(app_id);
    b.stream::<String, i64>("in").map_values(reading).to("out");
    b.build().unwrap()
}

#[test]
fn the_test_driver_returns_the_error_of_a_record_whose_output_does_not_encode() {
    let mut driver = TopologyTestDriver::new(readings_topology("readings")).unwrap();
    driver
        .pipe_input("in", &"a".to_string(), &1i64, 10)
        .unwrap();
    driver
        .pipe_input("in", &"b".to_string(), &2i64, 20)
        .unwrap();
    let e = driver
        .pipe_input("in", &"c".to_string(), &-1i64, 30)
        .unwrap_err();
    assert_processing_failed_to_serialize(&e, "Reading");
    // The records before it were processed and their outputs are there; the failed record
    // wrote nothing.
    let out: Vec<(String, Reading)> = driver
        .read_output::<String, Json<Reading>>("out")
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value.0))
        .collect();
    assert_eq!(
        out,
        [
            ("a".to_string(), Reading::Level(1)),
            ("b".to_string(), Reading::Level(2))
        ]
    );
    // (After an error the driver's documented state is whatever the failed record left; a new
    // driver goes on.)
    let mut driver = TopologyTestDriver::new(readings_topology("readings")).unwrap();
    driver
        .pipe_input("in", &"d".to_string(), &4i64, 40)
        .unwrap();
    let out = driver.read_output::<String, Json<Reading>>("out").unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].value.0, Reading::Level(4));
}

#[test]
fn piping_an_input_that_does_not_encode_is_a_serialization_error_and_processes_nothing() {
    let b = Builder::new("grids");
    b.stream::<String, Json<Grid>>("grids").to("out");
    let mut driver = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let bad = Json(HashMap::from([((0, 0), 1)]));
    let e = driver
        .pipe_input("grids", &"k".to_string(), &bad, 0)
        .unwrap_err();
    assert_serialization(&e, "HashMap");
    let e = driver
        .pipe_input_with_headers("grids", &"k".to_string(), &bad, 0, Default::default())
        .unwrap_err();
    assert_serialization(&e, "HashMap");
    assert!(driver
        .read_output::<String, Json<Grid>>("out")
        .unwrap()
        .is_empty());
    // The driver is fine: nothing was processed.
    driver
        .pipe_input("grids", &"k".to_string(), &Json(Grid::new()), 1)
        .unwrap();
    assert_eq!(
        driver
            .read_output::<String, Json<Grid>>("out")
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_query_whose_key_does_not_encode_returns_the_error() {
    let b = Builder::new("counts");
    b.stream::<String, i64>("in")
        .group_by_key()
        .count(riverbed::streams::Materialized::named("counts"));
    let mut driver = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    driver.pipe_input("in", &"a".to_string(), &1i64, 0).unwrap();
    let counts = driver.store::<Json<Grid>, i64>("counts").unwrap();
    let bad = || Json(HashMap::from([((0, 0), 1)]));
    assert_serialization(&counts.get(bad()).unwrap_err(), "HashMap");
    assert_serialization(
        &counts.range(bad(), Json(Grid::new())).unwrap_err(),
        "HashMap",
    );
    assert_serialization(
        &counts.range(Json(Grid::new()), bad()).unwrap_err(),
        "HashMap",
    );
    // A key that encodes is looked up as usual (there is no `{}` key).
    assert_eq!(counts.get(Json(Grid::new())).unwrap(), None);
}

fn setup() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("in", TopicConfig::new(1)).unwrap();
    store.create_topic("out", TopicConfig::new(1)).unwrap();
    (dir, store)
}

fn input(key: &str, n: i64) -> ProducerRecord {
    ProducerRecord::new("in")
        .key(key)
        .value(n.encode().unwrap())
}

/// The offset the application committed for its input partition.
fn committed_input(store: &Store, app_id: &str) -> Option<u64> {
    store
        .committed_offsets(app_id)
        .into_iter()
        .find(|(tp, _)| *tp == TopicPartition::new("in", 0))
        .map(|(_, o)| o.offset)
}

/// The `(key, reading)` records of `out` visible at `isolation`.
fn outputs(store: &Store, isolation: IsolationLevel) -> Vec<(String, Reading)> {
    common::read_topic(store, "out", isolation)
        .into_iter()
        .map(|r| {
            (
                String::decode(&r.key.unwrap()).unwrap(),
                Json::<Reading>::decode(&r.value.unwrap()).unwrap().0,
            )
        })
        .collect()
}

/// Runs the readings topology with `config`: two good records that get committed, then in one
/// batch (one poll, so one transaction with exactly-once) a good record and one whose output
/// does not encode. Returns the store after the application stopped.
fn run_until_the_unencodable_record(
    config: StreamsConfig,
    app_id: &str,
) -> (tempfile::TempDir, Store) {
    let (dir, store) = setup();
    let app = App::start(
        &store,
        readings_topology(app_id),
        config.commit_interval(Duration::from_millis(20)),
    )
    .unwrap();
    let p = store.producer();
    p.send_batch([input("a", 1), input("b", 2)]).unwrap();
    common::wait_for_apps("a and b committed", &[&app], || {
        committed_input(&store, app_id) == Some(2)
    });
    p.send_batch([input("x", 3), input("c", -1)]).unwrap();
    common::wait_for("the app to stop", || !app.is_running());

    // The default thread error handler stopped the application with the error.
    let e = app.error().expect("the app stopped with an error");
    assert_processing_failed_to_serialize(&e, "Reading");
    let closed = app.close().unwrap_err();
    assert_processing_failed_to_serialize(&closed, "Reading");
    // Neither the failed record nor the good one processed with it was committed: both are
    // processed again on restart.
    assert_eq!(committed_input(&store, app_id), Some(2));
    (dir, store)
}

#[test]
fn an_unencodable_output_stops_an_at_least_once_app_without_committing_the_record() {
    let (_dir, store) =
        run_until_the_unencodable_record(StreamsConfig::new().at_least_once(), "alo");
    let out = outputs(&store, IsolationLevel::ReadUncommitted);
    assert_eq!(
        out[..2],
        [
            ("a".to_string(), Reading::Level(1)),
            ("b".to_string(), Reading::Level(2))
        ]
    );
    // At least once: x's output may have been written before the failure (it comes again on
    // restart); c has none.
    assert!(
        out[2..].is_empty() || out[2..] == [("x".to_string(), Reading::Level(3))],
        "{out:?}"
    );
}

#[test]
fn an_unencodable_output_aborts_the_exactly_once_transaction() {
    let (_dir, store) =
        run_until_the_unencodable_record(StreamsConfig::new().exactly_once(), "eos");
    // Nothing of the failed transaction (x's output) is visible to read_committed readers.
    assert_eq!(
        outputs(&store, IsolationLevel::ReadCommitted),
        [
            ("a".to_string(), Reading::Level(1)),
            ("b".to_string(), Reading::Level(2))
        ]
    );
    // And the partition is not blocked by a transaction left open: the end of the topic is
    // stable (read_topic reads up to the last stable offset; a new transactional write lands).
    let after_abort = store.producer();
    after_abort
        .send(
            ProducerRecord::new("out")
                .key("z")
                .value(reading(9).encode().unwrap()),
        )
        .unwrap();
    let out = outputs(&store, IsolationLevel::ReadCommitted);
    assert_eq!(out.last(), Some(&("z".to_string(), Reading::Level(9))));
    assert_eq!(out.len(), 3, "{out:?}");
}
