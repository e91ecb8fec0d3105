//! Kafka's timestamp semantics for tables and aggregations (Kafka Streams >= 2.3, KIP-258):
//! an aggregate's result carries the latest timestamp of the records that made it, a
//! table-table join's the latest of its two rows', and the row timestamps survive a restart,
//! whether the store comes back from a checkpoint snapshot or from its changelog. Each model
//! test runs the topology in the test driver over random out-of-order input and compares every
//! output's timestamp with a plain in-memory computation of Kafka's rule. Time windows
//! (tumbling and hopping) follow KIP-259: a window's update carries the latest timestamp of the
//! records aggregated into it so far.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use riverbed::streams::{
    App, Builder, Materialized, Serde, SessionWindows, SlidingWindows, StreamsConfig, TimeWindows,
    TopologyTestDriver, Window, Windowed,
};
use riverbed::{CleanupPolicy, IsolationLevel, ProducerRecord, Store, TopicConfig};

use crate::common;

fn key(k: u8) -> String {
    format!("k{k}")
}

/// Keyed records with timestamps that jump back and forth (out of order).
fn keyed_input() -> impl Strategy<Value = Vec<(u8, i64, i64)>> {
    prop::collection::vec((0u8..4, -20i64..20, 0i64..1000), 0..60)
}

/// Table updates: which table (0 left, 1 right), key, value (`None`: a tombstone), timestamp.
fn table_updates() -> impl Strategy<Value = Vec<(u8, u8, Option<i64>, i64)>> {
    prop::collection::vec(
        (
            0u8..2,
            0u8..4,
            prop::option::weighted(0.75, -20i64..20),
            0i64..1000,
        ),
        0..60,
    )
}

/// An output record: key, value, timestamp.
type Triple = (String, Option<String>, i64);

fn triples<K: Serde, V: Serde>(d: &mut TopologyTestDriver, topic: &str) -> Vec<(K, V, i64)> {
    d.read_output::<K, V>(topic)
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect()
}

#[test]
fn a_count_carries_the_latest_timestamp_so_far() {
    // The example of KIP-258: input timestamps 1,2,5,6,4,3,7,9 give 1,2,5,6,6,6,7,9.
    let b = Builder::new("kip258");
    b.stream::<String, i64>("in")
        .group_by_key()
        .count(Materialized::named("counts"))
        .to_stream()
        .to("out");
    let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    for ts in [1, 2, 5, 6, 4, 3, 7, 9] {
        d.pipe_input("in", &"a".to_string(), &0i64, ts).unwrap();
    }
    let got: Vec<_> = d
        .read_output::<String, i64>("out")
        .unwrap()
        .into_iter()
        .map(|r| (r.value, r.timestamp))
        .collect();
    assert_eq!(
        got,
        [
            (1, 1),
            (2, 2),
            (3, 5),
            (4, 6),
            (5, 6),
            (6, 6),
            (7, 7),
            (8, 9)
        ]
    );
    // Queries see plain values, not the stored timestamps, unless they ask for them.
    let counts = d.store::<String, i64>("counts").unwrap();
    assert_eq!(counts.get("a").unwrap(), Some(8));
    assert_eq!(counts.get_with_timestamp("a").unwrap(), Some((8, 9)));
    assert_eq!(counts.get_with_timestamp("b").unwrap(), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// count, reduce and aggregate of a grouped stream: each update carries the latest
    /// timestamp of its key's records so far.
    #[test]
    fn stream_aggregates_carry_the_latest_timestamp_of_their_key(records in keyed_input()) {
        let b = Builder::new("stream-aggs");
        let g = b.stream::<String, i64>("in").group_by_key();
        g.count(Materialized::named("counts")).to_stream().to("counts-out");
        g.reduce(|a, v| a + v, Materialized::named("sums")).to_stream().to("sums-out");
        g.aggregate(String::new, |_k, v, acc| format!("{acc}{v},"), Materialized::named("lists"))
            .to_stream()
            .to("lists-out");
        let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
        let mut latest: BTreeMap<String, i64> = BTreeMap::new();
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        let mut sums: BTreeMap<String, i64> = BTreeMap::new();
        let mut lists: BTreeMap<String, String> = BTreeMap::new();
        let (mut want_counts, mut want_sums, mut want_lists) = (vec![], vec![], vec![]);
        for (k, v, ts) in &records {
            d.pipe_input("in", &key(*k), v, *ts).unwrap();
            let t = latest.entry(key(*k)).or_insert(*ts);
            *t = (*t).max(*ts);
            let c = counts.entry(key(*k)).or_insert(0);
            *c += 1;
            want_counts.push((key(*k), *c, *t));
            let s = sums.entry(key(*k)).or_insert(0);
            *s += v;
            want_sums.push((key(*k), *s, *t));
            let l = lists.entry(key(*k)).or_default();
            l.push_str(&format!("{v},"));
            want_lists.push((key(*k), l.clone(), *t));
        }
        prop_assert_eq!(triples::<String, i64>(&mut d, "counts-out"), want_counts);
        prop_assert_eq!(triples::<String, i64>(&mut d, "sums-out"), want_sums);
        prop_assert_eq!(triples::<String, String>(&mut d, "lists-out"), want_lists);
        let store = d.store::<String, i64>("sums").unwrap();
        prop_assert_eq!(store.all().unwrap(), sums.into_iter().collect::<Vec<_>>());
    }

    /// Inner, left and outer table-table joins: a result carries the latest of the update's
    /// timestamp and the other side's row's (the update's alone without an other row). A source
    /// table's updates carry their record's timestamp.
    #[test]
    fn table_joins_carry_the_latest_timestamp_of_both_rows(updates in table_updates()) {
        let b = Builder::new("table-joins");
        let l = b.table::<String, i64>("left", Materialized::named("l"));
        let r = b.table::<String, i64>("right", Materialized::named("r"));
        l.to_stream_with_tombstones().to("left-rows");
        l.join(&r, |a, b| format!("{a}|{b}")).to_stream_with_tombstones().to("inner");
        l.left_join(&r, |a, b| format!("{a}|{b:?}")).to_stream_with_tombstones().to("left-join");
        l.outer_join(&r, |a, b| format!("{a:?}|{b:?}"))
            .to_stream_with_tombstones()
            .to("outer");
        let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();

        // Rows: key -> (value, timestamp), per side.
        let mut rows: [BTreeMap<String, (i64, i64)>; 2] = [BTreeMap::new(), BTreeMap::new()];
        type Joiner = fn(Option<i64>, Option<i64>) -> Option<String>;
        let joiners: [(&str, Joiner); 3] = [
            ("inner", |a, b| Some(format!("{}|{}", a?, b?))),
            ("left-join", |a, b| Some(format!("{}|{b:?}", a?))),
            ("outer", |a, b| (a.is_some() || b.is_some()).then(|| format!("{a:?}|{b:?}"))),
        ];
        let mut want: BTreeMap<&str, Vec<Triple>> = BTreeMap::new();
        let mut left_rows = Vec::new();
        for (side, k, v, ts) in &updates {
            let (side, k) = (usize::from(*side), key(*k));
            d.pipe_input(if side == 0 { "left" } else { "right" }, &k, v, *ts).unwrap();
            let before = rows[side].get(&k).map(|(v, _)| *v);
            match v {
                Some(v) => { rows[side].insert(k.clone(), (*v, *ts)); }
                None => { rows[side].remove(&k); }
            }
            if side == 0 {
                left_rows.push((k.clone(), *v, *ts));
            }
            let other = rows[1 - side].get(&k).copied();
            let result_ts = other.map_or(*ts, |(_, o)| o.max(*ts));
            let other = other.map(|(v, _)| v);
            let (old, new) = if side == 0 { ((before, other), (*v, other)) } else { ((other, before), (other, *v)) };
            for (name, j) in joiners {
                let (was, now) = (j(old.0, old.1), j(new.0, new.1));
                if was.is_some() || now.is_some() {
                    want.entry(name).or_default().push((k.clone(), now, result_ts));
                }
            }
        }
        prop_assert_eq!(triples::<String, Option<i64>>(&mut d, "left-rows"), left_rows);
        for (name, _) in joiners {
            prop_assert_eq!(
                triples::<String, Option<String>>(&mut d, name),
                want.remove(name).unwrap_or_default(),
                "{}", name
            );
        }
    }

    /// A regrouped table's aggregate (adder and subtractor), as Kafka's KTableAggregate: the
    /// result's timestamp is the latest of the stored aggregate's and the change's, the
    /// change's alone when the group has no aggregate yet. A row that moves groups sends both
    /// groups a change with its timestamp.
    #[test]
    fn regrouped_table_aggregates_follow_kafkas_rule(
        updates in prop::collection::vec(
            (0u8..5, prop::option::weighted(0.8, 0i64..9), 0i64..1000),
            0..60,
        )
    ) {
        let b = Builder::new("regroup-ts");
        let t = b.table::<String, i64>("in", Materialized::named("rows"));
        t.group_by(|_, v| (v.rem_euclid(3), *v))
            .aggregate(|| 0i64, |_g, v, acc| acc + v, |_g, v, acc| acc - v, Materialized::named("sums"))
            .to_stream()
            .to("sums-out");
        let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();

        let group = |v: i64| v.rem_euclid(3);
        let mut table: BTreeMap<String, i64> = BTreeMap::new();
        // group -> (sum, timestamp)
        let mut sums: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        let mut want = Vec::new();
        for (k, v, ts) in &updates {
            d.pipe_input("in", &key(*k), v, *ts).unwrap();
            let old = match v {
                Some(v) => table.insert(key(*k), *v),
                None => table.remove(&key(*k)),
            };
            let steps: Vec<(i64, Option<i64>, Option<i64>)> = match (*v, old) {
                (Some(n), Some(o)) if group(n) == group(o) => vec![(group(n), Some(n), Some(o))],
                (n, o) => o.map(|o| (group(o), None, Some(o))).into_iter()
                    .chain(n.map(|n| (group(n), Some(n), None)))
                    .collect(),
            };
            for (g, new, old) in steps {
                let stored = sums.get(&g).copied();
                let t = stored.map_or(*ts, |(_, s)| s.max(*ts));
                let mut sum = stored.map_or(0, |(s, _)| s);
                if let (Some(o), Some(_)) = (old, stored) {
                    sum -= o;
                }
                if let Some(n) = new {
                    sum += n;
                }
                if stored.is_some() || new.is_some() {
                    sums.insert(g, (sum, t));
                    want.push((g, sum, t));
                }
            }
        }
        prop_assert_eq!(triples::<i64, i64>(&mut d, "sums-out"), want);
    }

    /// Sliding windows: a window's update carries the latest timestamp of its records; session
    /// windows: a session's updates (and the removal of sessions merged into another) carry
    /// the session's end, which is its latest record's timestamp.
    #[test]
    fn windowed_updates_carry_the_latest_timestamp_of_their_window(records in keyed_input()) {
        let b = Builder::new("windows-ts");
        let g = b.stream::<String, i64>("in").group_by_key();
        // A grace longer than any jump back: no record is dropped.
        g.windowed_by(SlidingWindows::of_time_difference_and_grace(
            Duration::from_millis(100),
            Duration::from_millis(2000),
        ))
        .count(Materialized::named("sliding"))
        .to_stream()
        .to("sliding-out");
        g.windowed_by(SessionWindows::of_inactivity_gap_and_grace(
            Duration::from_millis(50),
            Duration::from_millis(2000),
        ))
        .count(Materialized::named("sessions"))
        .to_stream_with_tombstones()
        .to("sessions-out");
        let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
        let mut seen: Vec<(String, i64)> = Vec::new();
        for (k, v, ts) in &records {
            d.pipe_input("in", &key(*k), v, *ts).unwrap();
            seen.push((key(*k), *ts));
            for r in d.read_output::<Windowed<String>, i64>("sliding-out").unwrap() {
                let w = r.key.window;
                let latest = seen
                    .iter()
                    .filter(|(k2, t)| *k2 == r.key.key && *t >= w.start && *t <= w.end)
                    .map(|(_, t)| *t)
                    .max();
                prop_assert_eq!(Some(r.timestamp), latest, "{:?}", r.key);
            }
            for r in d.read_output::<Windowed<String>, Option<i64>>("sessions-out").unwrap() {
                prop_assert_eq!(r.timestamp, r.key.window.end, "{:?}", r.key);
            }
        }
    }
}

/// The time-window specifications of the model test: tumbling and hopping, both with a grace
/// shorter than the input's jumps back, so that some records come too late and are dropped.
fn time_windows() -> [(&'static str, TimeWindows); 2] {
    let grace = Duration::from_millis(50);
    [
        (
            "tumbling",
            TimeWindows::of_size_and_grace(Duration::from_millis(100), grace),
        ),
        (
            "hopping",
            TimeWindows::of_size_and_grace(Duration::from_millis(100), grace)
                .advance_by(Duration::from_millis(40)),
        ),
    ]
}

/// Per key and window: the sum of the records aggregated into it and their latest timestamp.
type WindowModel = BTreeMap<(String, Window), (i64, i64)>;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Tumbling and hopping windows (KIP-259): every update of a window carries the latest
    /// timestamp of the records aggregated into it so far (a record that comes after its
    /// window closed is dropped, and counts for nothing), with the right sum; the window-store
    /// queries return the plain sums, and the store's rows hold the latest timestamps.
    #[test]
    fn time_window_updates_carry_the_latest_timestamp_of_their_window(
        records in prop::collection::vec((0u8..3, -20i64..20, 0i64..1000), 0..80),
    ) {
        let b = Builder::new("time-windows-ts");
        let g = b.stream::<String, i64>("in").group_by_key();
        for (name, windows) in time_windows() {
            g.windowed_by(windows)
                .aggregate(|| 0i64, |_k, v, sum| sum + v, Materialized::named(name))
                .to_stream()
                .to(&format!("{name}-out"));
        }
        let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
        let grace = 50;
        let mut stream_time = i64::MIN;
        let mut models: [WindowModel; 2] = Default::default();
        for (k, v, ts) in &records {
            d.pipe_input("in", &key(*k), v, *ts).unwrap();
            stream_time = stream_time.max(*ts);
            for ((name, windows), model) in time_windows().iter().zip(models.iter_mut()) {
                let mut want = Vec::new();
                // A window takes the record until stream time reaches its end plus the grace.
                for w in windows
                    .windows_for(*ts)
                    .into_iter()
                    .filter(|w| w.end + grace > stream_time)
                {
                    let row = model.entry((key(*k), w)).or_insert((0, *ts));
                    row.0 += v;
                    row.1 = row.1.max(*ts);
                    want.push((Windowed::new(key(*k), w), row.0, row.1));
                }
                let got = triples::<Windowed<String>, i64>(&mut d, &format!("{name}-out"));
                prop_assert_eq!(got, want, "{} after ({}, {}, {})", name, k, v, ts);
            }
        }
        for ((name, _), model) in time_windows().iter().zip(models.iter()) {
            let windows = d.window_store::<String, i64>(name).unwrap();
            for k in 0u8..3 {
                let want: Vec<(Window, i64)> = model
                    .iter()
                    .filter(|((k2, _), _)| *k2 == key(k))
                    .map(|((_, w), (sum, _))| (*w, *sum))
                    .collect();
                prop_assert_eq!(windows.fetch(key(k), 0, i64::MAX).unwrap(), want, "{}", name);
            }
            let all: Vec<(Windowed<String>, i64)> = model
                .iter()
                .map(|((k, w), (sum, _))| (Windowed::new(k.clone(), *w), *sum))
                .collect();
            prop_assert_eq!(windows.all().unwrap(), all, "{}", name);
            for ((k, w), (sum, latest)) in model {
                prop_assert_eq!(
                    windows.fetch_with_timestamp(k.clone(), *w).unwrap(),
                    Some((*sum, *latest)),
                    "{}", name
                );
            }
        }
    }
}

/// Only the stores of tables and aggregations answer timestamped queries; others refuse with a
/// typed error.
#[test]
fn a_store_without_row_timestamps_refuses_a_timestamped_query() {
    use riverbed::streams::{Processor, ProcessorContext, StreamRecord, Topology};
    struct Keep;
    impl Processor<String, i64, String, i64> for Keep {
        fn process(
            &mut self,
            ctx: &mut ProcessorContext<'_, String, i64>,
            r: StreamRecord<String, i64>,
        ) -> riverbed::Result<()> {
            ctx.store::<String, i64>("plain")?.put(&r.key, &r.value)
        }
    }
    let mut t = Topology::new("plain-app");
    t.add_source::<String, i64>("src", &["in"]).unwrap();
    t.add_processor::<_, String, i64, String, i64>("keep", || Keep, &["src"])
        .unwrap();
    t.add_state_store_for("plain", &["keep"]).unwrap();
    let mut d = TopologyTestDriver::new(t).unwrap();
    d.pipe_input("in", &"a".to_string(), &5i64, 3).unwrap();
    let plain = d.store::<String, i64>("plain").unwrap();
    assert_eq!(plain.get("a").unwrap(), Some(5));
    let e = plain.get_with_timestamp("a").unwrap_err();
    assert!(
        matches!(e.kind(), riverbed::ErrorKind::InvalidArgument { .. }),
        "{e}"
    );
}

/// A foreign-key join's result carries the latest of the left row's and the right row's
/// timestamps (Kafka's subscription answer); a right-side update, its own.
#[test]
fn a_foreign_key_join_result_carries_the_latest_of_both_rows() {
    let b = Builder::new("fk-ts");
    let orders = b.table::<String, i64>("orders", Materialized::named("orders"));
    let customers = b.table::<i64, String>("customers", Materialized::named("customers"));
    orders
        .join_foreign_key(
            &customers,
            |customer| *customer,
            |order, name| format!("{order}:{name}"),
            Materialized::named("joined"),
        )
        .to_stream_with_tombstones()
        .to("out");
    let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    d.pipe_input("customers", &7i64, &Some("Ann".to_string()), 50)
        .unwrap();
    d.pipe_input("orders", &"o1".to_string(), &Some(7i64), 10)
        .unwrap();
    d.pipe_input("orders", &"o2".to_string(), &Some(7i64), 80)
        .unwrap();
    d.pipe_input("customers", &7i64, &Some("Bo".to_string()), 60)
        .unwrap();
    let got: Vec<_> = triples::<String, Option<String>>(&mut d, "out");
    assert_eq!(
        got,
        [
            ("o1".to_string(), Some("7:Ann".to_string()), 50),
            ("o2".to_string(), Some("7:Ann".to_string()), 80),
            ("o1".to_string(), Some("7:Bo".to_string()), 60),
            ("o2".to_string(), Some("7:Bo".to_string()), 60),
        ]
    );
}

const APP: &str = "ts-app";
const CHANGELOG: &str = "ts-app-counts-changelog";

fn counting() -> riverbed::streams::Topology {
    let b = Builder::new(APP);
    b.stream::<String, String>("in")
        .group_by_key()
        .count(Materialized::named("counts"))
        .to_stream()
        .to("out");
    b.build().unwrap()
}

fn setup() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for t in ["in", "out"] {
        store.create_topic(t, TopicConfig::new(1)).unwrap();
    }
    (dir, store)
}

fn config(eos: bool) -> StreamsConfig {
    let c = StreamsConfig::new().commit_interval(Duration::from_millis(20));
    if eos {
        c.exactly_once()
    } else {
        c
    }
}

/// The timestamps of the app tests are offsets from an hour ago: records far older than that
/// would fall to the topics' time retention.
fn base_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(now.as_millis()).unwrap() - 3_600_000
}

/// Starts the counting app, sends `("a", base + ts)` for each of `timestamps`, waits until the
/// count of `a` is `count`, closes; returns the metrics and the timestamp of the last output
/// for `a`, less `base`.
fn run(
    store: &Store,
    base: i64,
    eos: bool,
    timestamps: &[i64],
    count: i64,
) -> (riverbed::streams::StreamsMetrics, i64) {
    let app = App::start(store, counting(), config(eos)).unwrap();
    send_a(store, base, timestamps);
    let counts = app.store::<String, i64>("counts").unwrap();
    common::wait_for_apps("the count", &[&app], || {
        counts.get("a").unwrap() == Some(count)
    });
    // The committed row's timestamp, as a timestamped-store query reads it.
    let (_, row_ts) = counts.get_with_timestamp("a").unwrap().unwrap();
    let m = app.metrics();
    app.close().unwrap();
    let last = last_output(store, eos, b"a", count, row_ts);
    (m, last - base)
}

/// Sends `("a", base + ts)` to `in` for each of `timestamps`.
fn send_a(store: &Store, base: i64, timestamps: &[i64]) {
    let p = store.producer();
    for ts in timestamps {
        p.send(
            ProducerRecord::new("in")
                .key("a")
                .value("v")
                .timestamp(base + ts),
        )
        .unwrap();
    }
}

/// The timestamp of the last output for `key` (read as the guarantee lets a reader see it),
/// after checking that it holds `count` and that the store's row had the same timestamp.
fn last_output(store: &Store, eos: bool, key: &[u8], count: i64, row_ts: i64) -> i64 {
    let isolation = if eos {
        IsolationLevel::ReadCommitted
    } else {
        IsolationLevel::ReadUncommitted
    };
    let out = common::read_topic(store, "out", isolation);
    let last = out
        .iter()
        .rfind(|r| r.key.as_deref() == Some(key))
        .unwrap_or_else(|| panic!("eos {eos}: no output for {key:?} in {out:?}"));
    assert_eq!(last.value.as_deref(), Some(&count.encode().unwrap()[..]));
    assert_eq!(row_ts, last.timestamp, "the query sees the row's timestamp");
    last.timestamp
}

fn snapshot_path(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("streams")
        .join(format!("{CHANGELOG}-0.checkpoint"))
}

/// The aggregate's timestamp survives a restart from the checkpoint snapshot and one from the
/// changelog alone: an older record after the restart still gives the stored latest timestamp.
#[test]
fn the_row_timestamp_survives_restarts_from_the_checkpoint_and_from_the_changelog() {
    for eos in [false, true] {
        let (dir, store) = setup();
        let base = base_ms();
        let (_, ts) = run(&store, base, eos, &[100, 500, 300], 3);
        assert_eq!(ts, 500);
        // The changelog record carries the row's timestamp.
        let log = common::read_topic(&store, CHANGELOG, IsolationLevel::ReadCommitted);
        assert_eq!(log.last().unwrap().timestamp, base + 500, "eos {eos}");
        assert!(snapshot_path(dir.path()).exists());

        let (m, ts) = run(&store, base, eos, &[200], 4);
        assert_eq!(m.snapshots_used, 1, "eos {eos}: restored from the snapshot");
        assert_eq!(ts, 500, "eos {eos}: after a restore from the snapshot");

        std::fs::remove_file(snapshot_path(dir.path())).unwrap();
        let (m, ts) = run(&store, base, eos, &[250], 5);
        assert_eq!(
            m.snapshots_used, 0,
            "eos {eos}: restored from the changelog"
        );
        assert!(m.restored_records > 0);
        assert_eq!(ts, 500, "eos {eos}: after a restore from the changelog");

        let (_, ts) = run(&store, base, eos, &[900], 6);
        assert_eq!(ts, 900, "eos {eos}: a later record moves it on");
    }
}

/// A checkpoint of the format before row timestamps (version 1) is refused with a typed error,
/// not read: the store comes from the changelog, timestamps included.
#[test]
fn a_version_1_checkpoint_is_refused_and_the_changelog_restores_the_timestamps() {
    let (dir, store) = setup();
    let base = base_ms();
    run(&store, base, false, &[100, 500], 2);
    let path = snapshot_path(dir.path());
    let mut b = std::fs::read(&path).unwrap();
    assert_eq!(
        u16::from_le_bytes([b[4], b[5]]),
        2,
        "FORMAT.md 8.5: version 2"
    );
    // The same file as version 1 would have it (a valid CRC, so only the version is wrong).
    b[4..6].copy_from_slice(&1u16.to_le_bytes());
    let n = b.len() - 4;
    let crc = crc32fast::hash(&b[..n]);
    b[n..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &b).unwrap();

    let (m, ts) = run(&store, base, false, &[200], 3);
    assert_eq!((m.snapshots_used, m.snapshots_rejected), (0, 1));
    assert_eq!(ts, 500);
}

/// A changelog written before rows kept timestamps (records without the row-timestamp header,
/// whose timestamps are commit times) restores the values with an unknown timestamp, which the
/// next record's replaces: the commit time is never taken for the row's.
#[test]
fn a_changelog_without_row_timestamps_restores_values_with_an_unknown_timestamp() {
    let (_dir, store) = setup();
    let base = base_ms();
    store
        .create_topic(
            CHANGELOG,
            TopicConfig::new(1).cleanup_policy(CleanupPolicy::Compact),
        )
        .unwrap();
    store
        .producer()
        .send(
            ProducerRecord::new(CHANGELOG)
                .partition(0)
                .key("a")
                .value(7i64.encode().unwrap())
                .timestamp(base + 1_000_000),
        )
        .unwrap();
    let (m, ts) = run(&store, base, false, &[10], 8);
    assert_eq!(m.restored_records, 1);
    assert_eq!(ts, 10);
    // From then on the row has a timestamp, and keeps it over a restart.
    let (_, ts) = run(&store, base, false, &[5], 9);
    assert_eq!(ts, 10);
}

const WINDOWED_APP: &str = "ts-window-app";
const WINDOW_CHANGELOG: &str = "ts-window-app-window-counts-changelog";

/// Tumbling one-minute windows counted per key (a grace of an hour: nothing here is late).
fn window_counting() -> riverbed::streams::Topology {
    let b = Builder::new(WINDOWED_APP);
    b.stream::<String, String>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_secs(60),
            Duration::from_secs(3600),
        ))
        .count(Materialized::named("window-counts"))
        .to_stream()
        .to("out");
    b.build().unwrap()
}

/// Starts the window-counting app, sends `("a", start + ts)` for each of `timestamps` (all in
/// the window `[start, start + 60 s)`), waits until the window's count is `count`, closes;
/// returns the metrics and the timestamp of the last output for the window, less `start`.
fn run_windowed(
    store: &Store,
    start: i64,
    eos: bool,
    timestamps: &[i64],
    count: i64,
) -> (riverbed::streams::StreamsMetrics, i64) {
    let app = App::start(store, window_counting(), config(eos)).unwrap();
    send_a(store, start, timestamps);
    let window = Window::new(start, start + 60_000);
    let windows = app.window_store::<String, i64>("window-counts").unwrap();
    common::wait_for_apps("the window count", &[&app], || {
        windows.fetch("a", start, start).unwrap() == [(window, count)]
    });
    // The committed row's timestamp, as a timestamped-store query reads it.
    let (value, row_ts) = windows.fetch_with_timestamp("a", window).unwrap().unwrap();
    assert_eq!(value, count);
    let m = app.metrics();
    app.close().unwrap();
    let key = Windowed::new("a".to_string(), window).encode().unwrap();
    let last = last_output(store, eos, &key, count, row_ts);
    (m, last - start)
}

/// A time window's row timestamp (its latest record's) survives a restart from the checkpoint
/// snapshot and one from the changelog alone: an older record into the same window after the
/// restart forwards the stored latest timestamp, not its own.
#[test]
fn a_time_window_row_timestamp_survives_restarts_from_the_checkpoint_and_from_the_changelog() {
    for eos in [false, true] {
        let (dir, store) = setup();
        // A window boundary an hour or so ago (the topics' time retention keeps that).
        let start = base_ms() / 60_000 * 60_000;
        let (_, ts) = run_windowed(&store, start, eos, &[100, 5_000, 3_000], 3);
        assert_eq!(ts, 5_000, "eos {eos}");
        // The window's changelog record carries the row's timestamp.
        let log = common::read_topic(&store, WINDOW_CHANGELOG, IsolationLevel::ReadCommitted);
        let key = Windowed::new("a".to_string(), Window::new(start, start + 60_000))
            .encode()
            .unwrap();
        let row = log
            .iter()
            .rfind(|r| r.key.as_deref() == Some(&key[..]))
            .unwrap();
        assert_eq!(row.timestamp, start + 5_000, "eos {eos}");
        let snapshot = dir
            .path()
            .join("streams")
            .join(format!("{WINDOW_CHANGELOG}-0.checkpoint"));
        assert!(snapshot.exists());

        let (m, ts) = run_windowed(&store, start, eos, &[2_000], 4);
        assert_eq!(m.snapshots_used, 1, "eos {eos}: restored from the snapshot");
        assert_eq!(ts, 5_000, "eos {eos}: after a restore from the snapshot");

        std::fs::remove_file(&snapshot).unwrap();
        let (m, ts) = run_windowed(&store, start, eos, &[2_500], 5);
        assert_eq!(
            m.snapshots_used, 0,
            "eos {eos}: restored from the changelog"
        );
        assert!(m.restored_records > 0);
        assert_eq!(ts, 5_000, "eos {eos}: after a restore from the changelog");

        let (_, ts) = run_windowed(&store, start, eos, &[9_000], 6);
        assert_eq!(ts, 9_000, "eos {eos}: a later record moves it on");
    }
}
