//! Foreign-key table-table joins (`KTable::join_foreign_key`, `KTable::left_join_foreign_key`):
//! a proptest model through the test driver (checked after every step, with stale responses
//! replayed at random), a deterministic stale-response test, and an App end to end with two
//! partitions, two threads and a restart, at-least-once and exactly-once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use riverbed::streams::{App, Builder, Materialized, StreamsConfig, Topology, TopologyTestDriver};
use riverbed::{ProducerRecord, Store, TopicConfig};

use crate::common;

/// The model's left values: `c<fk>:<payload>`, or `-:<payload>` for a null foreign key.
fn left_value(fk: Option<u8>, payload: u8) -> String {
    match fk {
        Some(c) => format!("c{c}:{payload}"),
        None => format!("-:{payload}"),
    }
}

/// The foreign key of a model left value (`None`: null).
fn foreign_key(v: &str) -> Option<i64> {
    v.strip_prefix('c')?.split(':').next()?.parse().ok()
}

fn inner_joiner(v: &String, r: &String) -> String {
    format!("{v}+{r}")
}

fn left_joiner(v: &String, r: Option<&String>) -> String {
    format!("{v}+{r:?}")
}

/// Both joins of the `orders` table (keyed by order id) with the `customers` table (keyed by
/// an optional customer id, so a foreign key can be null), results sunk with tombstones.
fn model_topology() -> Topology {
    let b = Builder::new("fk");
    let orders = b.table::<String, String>("orders", Materialized::named("orders"));
    let customers = b.table::<Option<i64>, String>("customers", Materialized::named("customers"));
    orders
        .join_foreign_key(
            &customers,
            |v| foreign_key(v),
            inner_joiner,
            Materialized::named("inner"),
        )
        .to_stream_with_tombstones()
        .to("inner-out");
    orders
        .left_join_foreign_key(
            &customers,
            |v| foreign_key(v),
            left_joiner,
            Materialized::named("left"),
        )
        .to_stream_with_tombstones()
        .to("left-out");
    b.build().unwrap()
}

const RESPONSE_TOPICS: [&str; 2] = [
    "fk-inner-subscription-response-repartition",
    "fk-left-subscription-response-repartition",
];

#[derive(Clone, Debug)]
enum Op {
    LeftPut(u8, Option<u8>, u8),
    LeftDelete(u8),
    RightPut(u8, u8),
    RightDelete(u8),
    /// Replays a response captured earlier, if it answers a value its row no longer has.
    ReplayStale(usize),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        5 => (0u8..6, prop::option::weighted(0.85, 0u8..4), 0u8..4)
            .prop_map(|(k, fk, p)| Op::LeftPut(k, fk, p)),
        2 => (0u8..6).prop_map(Op::LeftDelete),
        4 => (0u8..4, 0u8..4).prop_map(|(c, p)| Op::RightPut(c, p)),
        2 => (0u8..4).prop_map(Op::RightDelete),
        2 => any::<usize>().prop_map(Op::ReplayStale),
    ];
    prop::collection::vec(op, 0..60)
}

/// Applies the output stream of a result table to `table`, checking that it has no no-op
/// tombstones (a tombstone for a row that is not there).
fn apply_output(
    d: &mut TopologyTestDriver,
    topic: &str,
    table: &mut BTreeMap<String, String>,
) -> Result<usize, TestCaseError> {
    let out = d.read_output::<String, Option<String>>(topic).unwrap();
    for r in &out {
        match &r.value {
            Some(v) => {
                table.insert(r.key.clone(), v.clone());
            }
            None => prop_assert!(
                table.remove(&r.key).is_some(),
                "{topic}: a tombstone for {:?}, which has no result row",
                r.key
            ),
        }
    }
    Ok(out.len())
}

/// A captured response: its topic, raw key and value, and the left value its row had then.
type Captured = (&'static str, Vec<u8>, Vec<u8>, Option<String>);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn foreign_key_joins_match_the_model_after_every_step(ops in ops()) {
        let mut d = TopologyTestDriver::new(model_topology()).unwrap();
        let mut left: BTreeMap<String, String> = BTreeMap::new();
        let mut right: BTreeMap<i64, String> = BTreeMap::new();
        let (mut inner_out, mut left_out) = (BTreeMap::new(), BTreeMap::new());
        let mut captured: Vec<Captured> = Vec::new();
        for (step, op) in ops.into_iter().enumerate() {
            let ts = step as i64;
            let mut replayed = false;
            match op {
                Op::LeftPut(k, fk, p) => {
                    let (k, v) = (format!("o{k}"), left_value(fk, p));
                    d.pipe_input("orders", &k, &Some(v.clone()), ts).unwrap();
                    left.insert(k, v);
                }
                Op::LeftDelete(k) => {
                    let k = format!("o{k}");
                    d.pipe_input("orders", &k, &None::<String>, ts).unwrap();
                    left.remove(&k);
                }
                Op::RightPut(c, p) => {
                    let v = format!("name{p}");
                    d.pipe_input("customers", &Some(i64::from(c)), &Some(v.clone()), ts).unwrap();
                    right.insert(i64::from(c), v);
                }
                Op::RightDelete(c) => {
                    d.pipe_input("customers", &Some(i64::from(c)), &None::<String>, ts).unwrap();
                    right.remove(&i64::from(c));
                }
                Op::ReplayStale(i) => {
                    let stale: Vec<&Captured> = captured
                        .iter()
                        .filter(|(_, k, _, then)| {
                            left.get(&String::from_utf8(k.clone()).unwrap()) != then.as_ref()
                        })
                        .collect();
                    if !stale.is_empty() {
                        let (topic, k, v, _) = stale[i % stale.len()].clone();
                        d.pipe_raw(topic, Some(&k), Some(&v), ts).unwrap();
                        replayed = true;
                    }
                }
            }
            // Every response of this step answers the value its row has now: the driver runs
            // each input's consequences to the end before the next input.
            for topic in RESPONSE_TOPICS {
                for r in d.read_output::<Vec<u8>, Vec<u8>>(topic).unwrap() {
                    let then = left.get(&String::from_utf8(r.key.clone()).unwrap()).cloned();
                    captured.push((topic, r.key, r.value, then));
                }
            }

            let want_inner: BTreeMap<String, String> = left
                .iter()
                .filter_map(|(k, v)| {
                    let r = right.get(&foreign_key(v)?)?;
                    Some((k.clone(), inner_joiner(v, r)))
                })
                .collect();
            let want_left: BTreeMap<String, String> = left
                .iter()
                .map(|(k, v)| {
                    let r = foreign_key(v).and_then(|c| right.get(&c));
                    (k.clone(), left_joiner(v, r))
                })
                .collect();
            let stored = |name: &str| -> BTreeMap<String, String> {
                d.store::<String, String>(name).unwrap().all().unwrap().into_iter().collect()
            };
            prop_assert_eq!(&stored("inner"), &want_inner, "inner store after step {}", step);
            prop_assert_eq!(&stored("left"), &want_left, "left store after step {}", step);
            let n = apply_output(&mut d, "inner-out", &mut inner_out)?
                + apply_output(&mut d, "left-out", &mut left_out)?;
            prop_assert_eq!(&inner_out, &want_inner, "inner output after step {}", step);
            prop_assert_eq!(&left_out, &want_left, "left output after step {}", step);
            if replayed {
                prop_assert_eq!(n, 0, "a stale response changed a result");
            }
        }
    }
}

#[test]
fn the_join_uses_two_repartition_topics_and_a_subscription_store_per_join() {
    let t = model_topology();
    assert_eq!(
        t.repartition_topics(),
        [
            "fk-inner-subscription-registration-repartition",
            "fk-inner-subscription-response-repartition",
            "fk-left-subscription-registration-repartition",
            "fk-left-subscription-response-repartition",
        ]
    );
    for s in [
        "inner",
        "inner-subscription-store",
        "left",
        "left-subscription-store",
    ] {
        assert!(t.store_names().iter().any(|n| n == s), "{s}: {t:?}");
    }
}

#[test]
fn a_response_to_an_earlier_value_of_the_row_is_dropped() {
    let mut d = TopologyTestDriver::new(model_topology()).unwrap();
    let topic = RESPONSE_TOPICS[0];
    let o1 = "o1".to_string();
    for (c, name) in [(1, "Ann"), (2, "Bob")] {
        d.pipe_input("customers", &Some(c as i64), &Some(name.to_string()), 0)
            .unwrap();
    }
    d.pipe_input("orders", &o1, &Some("c1:5".to_string()), 1)
        .unwrap();
    // The answer of customer 1's task to o1's subscription, as if it were delayed ...
    let early = d.read_output::<Vec<u8>, Vec<u8>>(topic).unwrap();
    assert_eq!(early.len(), 1);
    // ... while o1 moves to customer 2.
    d.pipe_input("orders", &o1, &Some("c2:5".to_string()), 2)
        .unwrap();
    let results = d.store::<String, String>("inner").unwrap();
    assert_eq!(results.get("o1").unwrap().as_deref(), Some("c2:5+Bob"));
    d.read_output::<String, Option<String>>("inner-out")
        .unwrap();
    d.read_output::<Vec<u8>, Vec<u8>>(topic).unwrap();

    // The delayed answer arrives: it carries the hash of "c1:5", not of "c2:5", so it is
    // dropped; without the hash check o1 would be joined with Ann.
    d.pipe_raw(topic, Some(&early[0].key), Some(&early[0].value), 3)
        .unwrap();
    assert_eq!(results.get("o1").unwrap().as_deref(), Some("c2:5+Bob"));
    assert!(d
        .read_output::<String, Option<String>>("inner-out")
        .unwrap()
        .is_empty());

    // Control: the same replay of an answer for the current value is applied (so the drop
    // above is the hash check's doing, not the replay's). Such a replay cannot happen in a
    // real run: answers from one foreign key's task arrive in order.
    d.pipe_input("customers", &Some(2i64), &Some("Bo".to_string()), 4)
        .unwrap();
    let current = d.read_output::<Vec<u8>, Vec<u8>>(topic).unwrap();
    assert_eq!(results.get("o1").unwrap().as_deref(), Some("c2:5+Bo"));
    d.pipe_input("customers", &Some(2i64), &Some("Bob Ray".to_string()), 5)
        .unwrap();
    assert_eq!(results.get("o1").unwrap().as_deref(), Some("c2:5+Bob Ray"));
    d.pipe_raw(topic, Some(&current[0].key), Some(&current[0].value), 6)
        .unwrap();
    assert_eq!(results.get("o1").unwrap().as_deref(), Some("c2:5+Bo"));
}

#[test]
fn deleting_a_left_row_or_nulling_its_foreign_key_resolves_without_the_right_side() {
    let mut d = TopologyTestDriver::new(model_topology()).unwrap();
    let o = "o".to_string();
    d.pipe_input("customers", &Some(1i64), &Some("Ann".to_string()), 0)
        .unwrap();
    d.pipe_input("orders", &o, &Some("c1:1".to_string()), 1)
        .unwrap();
    d.pipe_input("orders", &o, &Some("-:1".to_string()), 2)
        .unwrap();
    let inner = d
        .read_output::<String, Option<String>>("inner-out")
        .unwrap();
    let inner: Vec<_> = inner.into_iter().map(|r| (r.value, r.timestamp)).collect();
    assert_eq!(inner, [(Some("c1:1+Ann".to_string()), 1), (None, 2)]);
    let left = d.read_output::<String, Option<String>>("left-out").unwrap();
    let left: Vec<_> = left.into_iter().map(|r| r.value).collect();
    assert_eq!(
        left,
        [
            Some("c1:1+Some(\"Ann\")".to_string()),
            Some("-:1+None".to_string())
        ]
    );
    // The row left customer 1: a later rename of customer 1 does not reach it.
    d.pipe_input("customers", &Some(1i64), &Some("Ann Lee".to_string()), 3)
        .unwrap();
    assert!(d
        .read_output::<String, Option<String>>("left-out")
        .unwrap()
        .is_empty());
    let subscriptions = d
        .store::<Vec<u8>, Vec<u8>>("left-subscription-store")
        .unwrap();
    assert_eq!(subscriptions.approximate_num_entries(), 0);
    d.pipe_input("orders", &o, &None::<String>, 4).unwrap();
    let left = d.read_output::<String, Option<String>>("left-out").unwrap();
    assert_eq!(left.iter().map(|r| &r.value).collect::<Vec<_>>(), [&None]);
}

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

/// Orders (`customer:amount`, keyed by order id) joined with customers (names, keyed by
/// customer id): inner into the store `enriched` (and the topic `enriched`), left into
/// `enriched-left`.
fn shop_topology() -> Topology {
    let b = Builder::new("shop");
    let orders = b.table::<String, String>("orders", Materialized::named("orders"));
    let customers = b.table::<String, String>("customers", Materialized::named("customers"));
    let customer_of = |order: &String| order.split(':').next().unwrap_or_default().to_string();
    orders
        .join_foreign_key(
            &customers,
            customer_of,
            |o, c| format!("{o}/{c}"),
            Materialized::named("enriched"),
        )
        .to_stream_with_tombstones()
        .to("enriched");
    orders.left_join_foreign_key(
        &customers,
        customer_of,
        |o, c| format!("{o}/{}", c.map_or("-", |c| c.as_str())),
        Materialized::named("enriched-left"),
    );
    b.build().unwrap()
}

/// The shop's tables as the test wrote them.
#[derive(Default)]
struct Shop {
    orders: BTreeMap<String, String>,
    customers: BTreeMap<String, String>,
}

impl Shop {
    /// Sends `n` random updates (seeded) and applies them to the reference.
    fn send_updates(&mut self, store: &Store, seed: u64, n: usize) {
        let p = store.producer();
        for x in random(seed, n) {
            let (kind, a, b) = (x % 10, (x >> 8) % 40, (x >> 16) % 7);
            match kind {
                0..=4 => {
                    let (k, v) = (format!("o{a}"), format!("c{b}:{}", x >> 40));
                    p.send(
                        ProducerRecord::new("orders")
                            .key(k.clone())
                            .value(v.clone()),
                    )
                    .unwrap();
                    self.orders.insert(k, v);
                }
                5 => {
                    let k = format!("o{a}");
                    p.send(ProducerRecord::new("orders").key(k.clone()))
                        .unwrap();
                    self.orders.remove(&k);
                }
                6..=8 => {
                    let (k, v) = (format!("c{b}"), format!("name{}", x >> 40));
                    p.send(
                        ProducerRecord::new("customers")
                            .key(k.clone())
                            .value(v.clone()),
                    )
                    .unwrap();
                    self.customers.insert(k, v);
                }
                _ => {
                    let k = format!("c{b}");
                    p.send(ProducerRecord::new("customers").key(k.clone()))
                        .unwrap();
                    self.customers.remove(&k);
                }
            }
        }
        p.flush().unwrap();
    }

    fn inner(&self) -> Vec<(String, String)> {
        self.orders
            .iter()
            .filter_map(|(k, o)| {
                let c = self.customers.get(o.split(':').next()?)?;
                Some((k.clone(), format!("{o}/{c}")))
            })
            .collect()
    }

    fn left(&self) -> Vec<(String, String)> {
        self.orders
            .iter()
            .map(|(k, o)| {
                let c = o.split(':').next().and_then(|c| self.customers.get(c));
                (k.clone(), format!("{o}/{}", c.map_or("-", |c| c.as_str())))
            })
            .collect()
    }

    /// Waits until the application's result stores match the reference.
    fn check(&self, app: &App, when: &str) {
        let (inner, left) = (
            app.store::<String, String>("enriched").unwrap(),
            app.store::<String, String>("enriched-left").unwrap(),
        );
        let (want_inner, want_left) = (self.inner(), self.left());
        assert!(!want_inner.is_empty(), "the updates leave some joined rows");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let last = (inner.all().unwrap(), left.all().unwrap());
            if last.0 == want_inner && last.1 == want_left {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{when}: results never matched; last seen {last:?}, want {want_inner:?} and \
                 {want_left:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn orders_joined_with_their_customers_through_the_app_survive_a_restart() {
    run_shop(
        StreamsConfig::new()
            .threads(2)
            .commit_interval(Duration::from_millis(50)),
    );
}

#[test]
fn orders_joined_with_their_customers_exactly_once_survive_a_restart() {
    run_shop(StreamsConfig::new().threads(2).exactly_once());
}

/// Two runs of the shop with 2 partitions, checked against the reference after each.
fn run_shop(config: StreamsConfig) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for t in ["orders", "customers", "enriched"] {
        store.create_topic(t, TopicConfig::new(2)).unwrap();
    }
    let mut shop = Shop::default();

    let app = App::start(&store, shop_topology(), config.clone()).unwrap();
    for t in [
        "shop-enriched-subscription-registration-repartition",
        "shop-enriched-subscription-response-repartition",
        "shop-enriched-left-subscription-registration-repartition",
        "shop-enriched-left-subscription-response-repartition",
        "shop-enriched-subscription-store-changelog",
    ] {
        assert_eq!(store.describe_topic(t).unwrap().partitions.len(), 2, "{t}");
    }
    shop.send_updates(&store, 11, 800);
    shop.check(&app, "first run");
    app.close().unwrap();

    // A restart restores every store (tables, subscriptions, results) from its changelog; the
    // updates after it must find the subscriptions made before it.
    let app = App::start(&store, shop_topology(), config).unwrap();
    shop.check(&app, "after the restart");
    shop.send_updates(&store, 29, 400);
    // Renaming every customer reaches every order through the subscriptions.
    let p = store.producer();
    for c in 0..7 {
        let (k, v) = (format!("c{c}"), format!("renamed{c}"));
        p.send(
            ProducerRecord::new("customers")
                .key(k.clone())
                .value(v.clone()),
        )
        .unwrap();
        shop.customers.insert(k, v);
    }
    p.flush().unwrap();
    shop.check(&app, "second run");
    common::wait_for("the application runs", || app.is_running());
    app.close().unwrap();
}
