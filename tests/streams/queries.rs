//! Interactive queries ask for a store as a type, and a store of another type is refused with
//! a typed error, as Kafka Streams refuses it (`InvalidStateStoreException`: "Cannot get state
//! store X because the queryable store type [...] does not accept the actual store type
//! [...]"). `App` and `TopologyTestDriver` answer through the same query code, so the same
//! topology gives the same answers and the same errors in both.
//!
//! Cases translated from Kafka's own tests:
//! - `streams/src/test/java/org/apache/kafka/streams/integration/QueryableStateIntegrationTest.java`,
//!   `shouldRejectWronglyTypedStore`: a table's key-value store asked for as a session store
//!   is refused; as a key-value store it answers.
//! - `streams/src/test/java/org/apache/kafka/streams/state/internals/StreamThreadStateStoreProviderTest.java`,
//!   `shouldFindWindowStores`, `shouldFindSessionStores`, `shouldNotFindKeyValueStoresAsTimestampedStore`
//!   (the message), `shouldReturnEmptyListIfNoStoresFoundWithName`: window and session stores
//!   are found as such, a store of another type is refused naming both types, an unknown name
//!   finds nothing.

use crate::common;

use std::time::Duration;

use riverbed::streams::{
    App, Builder, Materialized, Serde, SessionWindows, StreamsConfig, TimeWindows, Topology,
    TopologyTestDriver, Window, Windowed,
};
use riverbed::{ErrorKind, ProducerRecord, Store, TopicConfig};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A table `table` read from `table-in`, a tumbling-window count `window-counts` and a session
/// count `session-counts` of `clicks`, and a global table `global` of `global-in`.
fn topology() -> Topology {
    let b = Builder::new("queries-app");
    b.table::<String, String>("table-in", Materialized::named("table"));
    let clicks = b.stream::<String, String>("clicks");
    clicks
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(ms(10)))
        .count(Materialized::named("window-counts"));
    clicks
        .group_by_key()
        .windowed_by(SessionWindows::of_inactivity_gap_with_no_grace(ms(5)))
        .count(Materialized::named("session-counts"));
    b.global_table::<String, String>("global-in", Materialized::named("global"));
    b.build().unwrap()
}

/// The kind of `r`'s error, or a panic naming what it was.
fn invalid_store<T>(r: riverbed::Result<T>) -> (String, &'static str, &'static str, String) {
    let Err(e) = r else {
        panic!("the query was accepted");
    };
    match e.kind() {
        ErrorKind::InvalidStateStore {
            store,
            requested,
            actual,
        } => (store.clone(), requested, actual, e.to_string()),
        other => panic!("expected InvalidStateStore, got {other:?}"),
    }
}

fn fill(d: &mut TopologyTestDriver) {
    d.pipe_input("table-in", &"k".to_string(), &"v".to_string(), 1)
        .unwrap();
    d.pipe_input("global-in", &"g".to_string(), &"w".to_string(), 1)
        .unwrap();
    for ts in [1, 3, 12] {
        d.pipe_input("clicks", &"a".to_string(), &"/".to_string(), ts)
            .unwrap();
    }
}

/// StreamThreadStateStoreProviderTest `shouldFindWindowStores` / `shouldFindSessionStores`,
/// with the key-value query type refused for both: a window store's keys are windows, not the
/// record keys, and its stream-time bookkeeping is no entry of anyone's.
#[test]
fn window_and_session_stores_answer_window_queries_and_refuse_key_value_queries() {
    let mut d = TopologyTestDriver::new(topology()).unwrap();
    fill(&mut d);
    let windows = d.window_store::<String, i64>("window-counts").unwrap();
    assert_eq!(
        windows.fetch("a", 0, 100).unwrap(),
        [(Window::new(0, 10), 2), (Window::new(10, 20), 1)]
    );
    assert_eq!(
        windows
            .fetch_with_timestamp("a", Window::new(0, 10))
            .unwrap(),
        Some((2, 3))
    );
    let sessions = d.window_store::<String, i64>("session-counts").unwrap();
    assert_eq!(
        sessions.find_sessions("a", 0, 100).unwrap(),
        [(Window::new(1, 3), 2), (Window::new(12, 12), 1)]
    );
    // A session aggregation keeps no row timestamps: refused, not made up.
    let e = sessions
        .fetch_with_timestamp("a", Window::new(1, 3))
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidArgument(_)), "{e}");

    let (store, requested, actual, text) =
        invalid_store(d.store::<Windowed<String>, i64>("window-counts"));
    assert_eq!(
        (store.as_str(), requested, actual),
        ("window-counts", "key-value store", "window store")
    );
    assert_eq!(
        text,
        "cannot get state store \"window-counts\" because the queryable store type \
         [key-value store] does not accept the actual store type [window store]"
    );
    let (store, requested, actual, _) = invalid_store(d.store::<String, i64>("session-counts"));
    assert_eq!(
        (store.as_str(), requested, actual),
        ("session-counts", "key-value store", "session store")
    );
}

/// QueryableStateIntegrationTest `shouldRejectWronglyTypedStore`: a table's key-value store
/// answers key-value queries and refuses a window (or session) query; a global table's store
/// is a key-value store too. StreamThreadStateStoreProviderTest
/// `shouldReturnEmptyListIfNoStoresFoundWithName`: an unknown name is no store.
#[test]
fn key_value_stores_refuse_window_queries_and_unknown_names_are_no_store() {
    let mut d = TopologyTestDriver::new(topology()).unwrap();
    fill(&mut d);
    assert_eq!(
        d.store::<String, String>("table")
            .unwrap()
            .get("k")
            .unwrap(),
        Some("v".to_string())
    );
    assert_eq!(
        d.store::<String, String>("global")
            .unwrap()
            .get("g")
            .unwrap(),
        Some("w".to_string())
    );
    for name in ["table", "global"] {
        let (store, requested, actual, _) = invalid_store(d.window_store::<String, String>(name));
        assert_eq!(
            (store.as_str(), requested, actual),
            (name, "window store", "key-value store")
        );
    }
    for e in [
        d.store::<String, String>("no-such-store").unwrap_err(),
        d.window_store::<String, String>("no-such-store")
            .unwrap_err(),
    ] {
        assert!(matches!(e.kind(), ErrorKind::InvalidArgument(_)), "{e}");
        assert!(e.to_string().contains("no-such-store"), "{e}");
    }
}

/// An application answers like the test driver: the same views, the same refusals.
#[test]
fn an_application_answers_queries_like_the_test_driver() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for t in ["table-in", "clicks", "global-in"] {
        store.create_topic(t, TopicConfig::new(2)).unwrap();
    }
    let p = store.producer();
    p.send(
        ProducerRecord::new("global-in")
            .key("g")
            .value("w".to_string().encode().unwrap()),
    )
    .unwrap();
    let config = StreamsConfig::new().commit_interval(ms(10));
    let app = App::start(&store, topology(), config).unwrap();
    p.send(
        ProducerRecord::new("table-in")
            .key("k")
            .value("v".to_string().encode().unwrap())
            .timestamp(1),
    )
    .unwrap();
    for ts in [1, 3, 12] {
        p.send(
            ProducerRecord::new("clicks")
                .key("a")
                .value("/".to_string().encode().unwrap())
                .timestamp(ts),
        )
        .unwrap();
    }
    let windows = app.window_store::<String, i64>("window-counts").unwrap();
    let table = app.store::<String, String>("table").unwrap();
    common::wait_for_apps("the counts", &[&app], || {
        windows.fetch("a", 0, 100).unwrap().len() == 2 && table.get("k").unwrap().is_some()
    });
    assert_eq!(
        windows
            .fetch_with_timestamp("a", Window::new(0, 10))
            .unwrap(),
        Some((2, 3))
    );
    assert_eq!(
        app.store::<String, String>("global")
            .unwrap()
            .get("g")
            .unwrap(),
        Some("w".to_string())
    );

    let mut d = TopologyTestDriver::new(topology()).unwrap();
    fill(&mut d);
    let from_app = [
        invalid_store(app.store::<Windowed<String>, i64>("window-counts")),
        invalid_store(app.store::<String, i64>("session-counts")),
        invalid_store(app.window_store::<String, String>("table")),
    ];
    let from_driver = [
        invalid_store(d.store::<Windowed<String>, i64>("window-counts")),
        invalid_store(d.store::<String, i64>("session-counts")),
        invalid_store(d.window_store::<String, String>("table")),
    ];
    assert_eq!(from_app, from_driver);
    app.close().unwrap();
}
