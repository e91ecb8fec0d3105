//! A custom `Serde` whose `encode` refuses some values, used as a state store value: the record
//! whose new state does not encode fails like an error in user code (test driver, Processor
//! API, `App` with exactly-once), and the store keeps the last state that did encode. No feature
//! needed: this is the path of hand-written serdes.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use riverbed::streams::{
    serialization_error, App, Builder, Materialized, Processor, ProcessorContext, Serde,
    SessionWindows, SlidingWindows, StreamRecord, StreamsConfig, TimeWindows, Topology,
    TopologyTestDriver, Window,
};
use riverbed::{
    Error, ErrorKind, IsolationLevel, ProducerRecord, Store, TopicConfig, TopicPartition,
};

use crate::common;

/// The largest total a [`Capped`] encodes.
const CAP: i64 = 100;

/// A running total whose format has room for totals up to [`CAP`] only: encoding a larger one
/// is a `Serialization` error.
#[derive(Clone, Debug, PartialEq)]
struct Capped(i64);

impl Serde for Capped {
    fn encode(&self) -> riverbed::Result<Vec<u8>> {
        if self.0 > CAP {
            return Err(serialization_error(format!(
                "Capped: {} is above the cap {CAP}",
                self.0
            )));
        }
        self.0.encode()
    }

    fn decode(bytes: &[u8]) -> riverbed::Result<Self> {
        i64::decode(bytes).map(Capped)
    }
}

/// The error of a record whose new state did not encode: a processing error naming the task and
/// node, whose reason is the serialization error.
fn assert_failed_to_serialize(e: &Error, total: i64) {
    let ErrorKind::StreamsProcessing { reason, cause, .. } = e.kind() else {
        panic!("expected a processing error, got {e}");
    };
    assert!(reason.contains("cannot serialize"), "{e}");
    assert!(
        reason.contains(&format!("Capped: {total} is above the cap")),
        "{e}"
    );
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

/// Totals per key in the store "totals", each change also written to "out".
fn totals_topology(app_id: &str) -> Topology {
    let b = Builder::new(app_id);
    b.stream::<String, i64>("in")
        .group_by_key()
        .aggregate(
            || Capped(0),
            |_, n, total| Capped(total.0 + n),
            Materialized::named("totals"),
        )
        .to_stream()
        .to("out");
    b.build().unwrap()
}

#[test]
fn an_aggregate_that_does_not_encode_fails_the_record_and_keeps_the_last_state() {
    let mut d = TopologyTestDriver::new(totals_topology("totals-app")).unwrap();
    d.pipe_input("in", &"a".to_string(), &50i64, 0).unwrap();
    d.pipe_input("in", &"b".to_string(), &7i64, 1).unwrap();
    d.pipe_input("in", &"a".to_string(), &40i64, 2).unwrap();
    let e = d.pipe_input("in", &"a".to_string(), &20i64, 3).unwrap_err();
    assert_failed_to_serialize(&e, 110);
    let totals = d.store::<String, Capped>("totals").unwrap();
    assert_eq!(totals.get("a").unwrap(), Some(Capped(90)));
    assert_eq!(totals.get("b").unwrap(), Some(Capped(7)));
    let out: Vec<(String, i64)> = d
        .read_output::<String, Capped>("out")
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value.0))
        .collect();
    assert_eq!(out, [("a".into(), 50), ("b".into(), 7), ("a".into(), 90)]);
}

#[test]
fn the_state_update_itself_fails_when_nothing_downstream_encodes() {
    // No sink: the store update is the only place the total is encoded.
    let b = Builder::new("store-only");
    b.stream::<String, i64>("in").group_by_key().aggregate(
        || Capped(0),
        |_, n, total| Capped(total.0 + n),
        Materialized::named("totals"),
    );
    let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    d.pipe_input("in", &"a".to_string(), &60i64, 0).unwrap();
    let e = d.pipe_input("in", &"a".to_string(), &41i64, 1).unwrap_err();
    assert_failed_to_serialize(&e, 101);
    let totals = d.store::<String, Capped>("totals").unwrap();
    assert_eq!(totals.all().unwrap(), [("a".to_string(), Capped(60))]);
}

/// Time, sliding and session window aggregations (store only, no sink): the window update is
/// where the total is encoded, and the windows stored before stay as they were.
#[test]
fn a_window_aggregate_that_does_not_encode_fails_the_record() {
    let ms = Duration::from_millis;
    let add = |_: &String, n: i64, total: Capped| Capped(total.0 + n);
    let a = "a".to_string();
    // One topology per window kind, so that each one's own update is what fails.
    for kind in ["time", "sliding"] {
        let b = Builder::new(kind);
        let grouped = b.stream::<String, i64>("in").group_by_key();
        if kind == "time" {
            grouped
                .windowed_by(TimeWindows::of_size_with_no_grace(ms(100)))
                .aggregate(|| Capped(0), add, Materialized::named(kind));
        } else {
            grouped
                .windowed_by(SlidingWindows::of_time_difference_with_no_grace(ms(100)))
                .aggregate(|| Capped(0), add, Materialized::named(kind));
        }
        let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
        d.pipe_input("in", &a, &60i64, 10).unwrap();
        let e = d.pipe_input("in", &a, &50i64, 20).unwrap_err();
        assert_failed_to_serialize(&e, 110);
        let store = d.window_store::<String, Capped>(kind).unwrap();
        let stored: Vec<Capped> = store
            .fetch("a", -1000, 1000)
            .unwrap()
            .into_iter()
            .map(|(_, total)| total)
            .collect();
        assert_eq!(stored, [Capped(60)], "{kind}");
    }

    // Two sessions that a record between them would merge into one whose total does not
    // encode: both stay.
    let b = Builder::new("sessions");
    b.stream::<String, i64>("in")
        .group_by_key()
        .windowed_by(SessionWindows::of_inactivity_gap_with_no_grace(ms(5)))
        .aggregate(
            || Capped(0),
            add,
            |_, x, y| Capped(x.0 + y.0),
            Materialized::named("sessions"),
        );
    let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    d.pipe_input("in", &a, &60i64, 0).unwrap();
    d.pipe_input("in", &a, &30i64, 10).unwrap();
    let e = d.pipe_input("in", &a, &20i64, 5).unwrap_err();
    assert_failed_to_serialize(&e, 110);
    let sessions = d.window_store::<String, Capped>("sessions").unwrap();
    assert_eq!(
        sessions.find_sessions("a", 0, 100).unwrap(),
        [
            (Window::new(0, 0), Capped(60)),
            (Window::new(10, 10), Capped(30))
        ]
    );
}

proptest! {
    /// Model: totals per key; the first record that takes its key's total above the cap fails,
    /// with that total in the error; the outputs and the store are those of the records before.
    #[test]
    fn a_driver_run_matches_the_model_up_to_the_first_unencodable_total(
        input in prop::collection::vec((0u8..3, 0i64..40), 1..30),
    ) {
        let mut d = TopologyTestDriver::new(totals_topology("model")).unwrap();
        let mut totals: BTreeMap<String, i64> = BTreeMap::new();
        let mut expected_out = Vec::new();
        let mut failed_at = None;
        for (i, (k, n)) in input.iter().enumerate() {
            let key = format!("k{k}");
            let total = totals.get(&key).copied().unwrap_or(0) + n;
            let result = d.pipe_input("in", &key, n, i as i64);
            if total > CAP {
                let e = result.expect_err("a total above the cap must fail the record");
                assert_failed_to_serialize(&e, total);
                failed_at = Some(i);
                break;
            }
            prop_assert!(result.is_ok(), "{:?}", result);
            totals.insert(key.clone(), total);
            expected_out.push((key, total));
        }
        let out: Vec<(String, i64)> = d
            .read_output::<String, Capped>("out")
            .unwrap()
            .into_iter()
            .map(|r| (r.key, r.value.0))
            .collect();
        prop_assert_eq!(out, expected_out);
        let store: BTreeMap<String, i64> = d
            .store::<String, Capped>("totals")
            .unwrap()
            .all()
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        prop_assert_eq!(store, totals);
        let sum: i64 = input.iter().map(|(_, n)| n).sum();
        // A run whose sum stays under the cap cannot fail.
        if sum <= CAP {
            prop_assert_eq!(failed_at, None);
        }
    }
}

/// A Processor API node that stores the value of each record: `put` returns the serialization
/// error, and the processor passes it on.
struct Keep;

impl Processor<String, i64, String, i64> for Keep {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        r: StreamRecord<String, i64>,
    ) -> riverbed::Result<()> {
        let mut s = ctx.store::<String, Capped>("kept")?;
        if let Err(e) = s.put(&r.key, &Capped(r.value)) {
            assert!(matches!(e.kind(), ErrorKind::Serialization { .. }), "{e}");
            // The store did not change.
            assert_ne!(s.get(&r.key)?, Some(Capped(r.value)));
            return Err(e);
        }
        ctx.forward(r);
        Ok(())
    }
}

#[test]
fn a_processor_put_of_a_value_that_does_not_encode_returns_the_error() {
    let mut t = Topology::new("keep");
    t.add_source::<String, i64>("src", &["in"])
        .unwrap()
        .add_state_store("kept")
        .unwrap()
        .add_processor("keep", || Keep, &["src"])
        .unwrap()
        .add_sink::<String, i64>("sink", "out", &["keep"])
        .unwrap();
    let mut d = TopologyTestDriver::new(t).unwrap();
    d.pipe_input("in", &"a".to_string(), &5i64, 0).unwrap();
    let e = d
        .pipe_input("in", &"a".to_string(), &500i64, 1)
        .unwrap_err();
    assert_failed_to_serialize(&e, 500);
    assert!(e.to_string().contains("keep"), "names the node: {e}");
    let kept = d.store::<String, Capped>("kept").unwrap();
    assert_eq!(kept.get("a").unwrap(), Some(Capped(5)));
}

/// The offset the application committed for its input partition.
fn committed_input(store: &Store, app_id: &str) -> Option<u64> {
    store
        .committed_offsets(app_id)
        .into_iter()
        .find(|(tp, _)| *tp == TopicPartition::new("in", 0))
        .map(|(_, o)| o.offset)
}

#[test]
fn an_exactly_once_app_stops_on_an_aggregate_that_does_not_encode_and_commits_none_of_it() {
    const APP: &str = "capped-eos";
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("in", TopicConfig::new(1)).unwrap();
    store.create_topic("out", TopicConfig::new(1)).unwrap();
    let config = StreamsConfig::new()
        .exactly_once()
        .commit_interval(Duration::from_millis(20));
    let app = App::start(&store, totals_topology(APP), config).unwrap();
    let input = |k: &str, n: i64| ProducerRecord::new("in").key(k).value(n.encode().unwrap());
    let p = store.producer();
    p.send_batch([input("a", 50), input("a", 40)]).unwrap();
    common::wait_for_apps("the first two records committed", &[&app], || {
        committed_input(&store, APP) == Some(2)
    });
    // One batch, so one poll and one transaction: b's update is aborted with a's failure.
    p.send_batch([input("b", 3), input("a", 20)]).unwrap();
    common::wait_for("the app to stop", || !app.is_running());
    let e = app.error().expect("the app stopped with an error");
    assert_failed_to_serialize(&e, 110);
    // The interactive query view holds what was committed.
    let totals = app.store::<String, Capped>("totals").unwrap();
    assert_eq!(totals.get("a").unwrap(), Some(Capped(90)));
    assert_eq!(totals.get("b").unwrap(), None);
    assert_failed_to_serialize(&app.close().unwrap_err(), 110);

    assert_eq!(committed_input(&store, APP), Some(2));
    let committed = |topic: &str| -> Vec<(String, i64)> {
        common::read_topic(&store, topic, IsolationLevel::ReadCommitted)
            .into_iter()
            .map(|r| {
                (
                    String::decode(&r.key.unwrap()).unwrap(),
                    i64::decode(&r.value.unwrap()).unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(committed("out"), [("a".into(), 50), ("a".into(), 90)]);
    // The changelog has a's last committed total and nothing of b (its transaction aborted).
    let changelog = committed(&format!("{APP}-totals-changelog"));
    assert_eq!(changelog.last(), Some(&("a".to_string(), 90)));
    assert!(changelog.iter().all(|(k, _)| k == "a"), "{changelog:?}");
}
