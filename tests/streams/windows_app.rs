//! Windowed aggregation and `suppress` under the `App` runtime: the window store and the
//! suppress buffer are restored from their changelogs after a restart, so counts go on from
//! where they were, every window's final result is emitted exactly once (exactly-once), and
//! a window that closed before the restart stays closed.

use std::collections::BTreeMap;
use std::time::Duration;

use riverbed::streams::{
    App, Builder, Materialized, Serde, StreamsConfig, Suppressed, TimeWindows, Topology, Windowed,
};
use riverbed::{IsolationLevel, ProducerRecord, Store, TopicConfig};

use crate::common;

const PARTITIONS: u32 = 2;

fn topology() -> Topology {
    let b = Builder::new("windowed-app");
    b.stream::<String, i64>("events")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_millis(1000),
            Duration::from_millis(500),
        ))
        .count(Materialized::named("counts"))
        .suppress(Suppressed::until_window_closes().with_name("final-buffer"))
        .to_stream()
        .to("final");
    b.build().unwrap()
}

/// Event times are `BASE +` the numbers the test uses: recent, so the topics' time-based
/// retention keeps them, and a multiple of the window size.
fn base() -> i64 {
    static BASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        i64::try_from(now.as_millis()).unwrap() / 1000 * 1000
    })
}

fn send(store: &Store, events: &[(&str, i64)]) {
    let p = store.producer();
    for (k, ts) in events {
        p.send(
            ProducerRecord::new("events")
                .key(*k)
                .value(1i64.encode().unwrap())
                .timestamp(base() + ts),
        )
        .unwrap();
    }
}

/// Every committed record of `final`: `((key, window start), count)`.
fn finals(store: &Store) -> Vec<((String, i64), i64)> {
    let mut out: Vec<_> = common::read_topic(store, "final", IsolationLevel::ReadCommitted)
        .into_iter()
        .map(|r| {
            let k = Windowed::<String>::decode(&r.key.unwrap()).unwrap();
            (
                (k.key, k.window.start - base()),
                i64::decode(&r.value.unwrap()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn counts(app: &App) -> BTreeMap<(String, i64), i64> {
    app.window_store::<String, i64>("counts")
        .unwrap()
        .all()
        .unwrap()
        .into_iter()
        .map(|(k, n)| ((k.key, k.window.start - base()), n))
        .collect()
}

#[test]
fn window_store_and_suppress_buffer_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic("events", TopicConfig::new(PARTITIONS))
        .unwrap();
    store
        .create_topic("final", TopicConfig::new(PARTITIONS))
        .unwrap();
    let config = || StreamsConfig::new().exactly_once();

    // Before the restart: a's window [0, 1000) closes (stream time 1600 >= 1000 + 500) and is
    // emitted; b's windows stay open in the suppress buffer.
    let app = App::start(&store, topology(), config()).unwrap();
    send(&store, &[("a", 100), ("a", 200), ("a", 1600)]);
    send(&store, &[("b", 1100), ("b", 1200)]);
    let want_before: BTreeMap<(String, i64), i64> = [
        (("a".to_string(), 0), 2),
        (("a".to_string(), 1000), 1),
        (("b".to_string(), 1000), 2),
    ]
    .into_iter()
    .collect();
    common::wait_for("the counts before the restart", || {
        counts(&app) == want_before
    });
    app.close().unwrap();
    assert_eq!(finals(&store), [(("a".to_string(), 0), 2)]);

    // After the restart the stores are restored before any record is processed.
    let app = App::start(&store, topology(), config()).unwrap();
    common::wait_for("the restored counts", || counts(&app) == want_before);
    // a@300 is for a's closed window: dropped even though it is the task's first record since
    // the restart. b@1300 is late but within grace. Then stream time moves to 3000 on both
    // partitions' keys, closing every window from before.
    send(&store, &[("a", 300), ("b", 1300), ("a", 3000), ("b", 3000)]);
    common::wait_for("the final results", || finals(&store).len() == 3);
    let m = app.metrics();
    app.close().unwrap();
    assert_eq!(
        finals(&store),
        [
            (("a".to_string(), 0), 2),
            (("a".to_string(), 1000), 1),
            (("b".to_string(), 1000), 3),
        ]
    );
    assert_eq!(m.dropped_records, 1);
}
