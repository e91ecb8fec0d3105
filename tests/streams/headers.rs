//! Record headers through `riverbed::streams`: sources read them, processors see and change
//! them, every DSL operator passes its input's headers on (through repartition topics too),
//! punctuations forward none, sinks write them and changelogs carry none; in the test driver
//! and in a real `App`.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use riverbed::streams::{
    App, Builder, Headers, Materialized, Processor, ProcessorContext, PunctuationType, Serde,
    StreamRecord, StreamsConfig, Topology, TopologyTestDriver,
};
use riverbed::{ConsumerConfig, OffsetReset, ProducerRecord, Store, TopicConfig, TopicPartition};

use crate::common;

const PARTITIONS: u32 = 2;

/// Reads the `trace` header and forwards each record with `hop` added (the input's `trace`
/// value with `+tagged`) and `stage` replaced by `tagged`.
struct Tagger;

impl Processor<String, String> for Tagger {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        r: StreamRecord<String, String>,
    ) -> riverbed::Result<()> {
        let trace = ctx
            .headers()
            .last_value("trace")
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .unwrap_or_else(|| "none".into());
        ctx.headers_mut()
            .remove("stage")
            .add("stage", "tagged")
            .add("hop", format!("{trace}+tagged"));
        ctx.forward(r);
        Ok(())
    }
}

fn tagger_topology(app_id: &str) -> Topology {
    let mut t = Topology::new(app_id);
    t.add_source::<String, String>("in", &["input"])
        .unwrap()
        .add_processor("tag", || Tagger, &["in"])
        .unwrap()
        .add_sink::<String, String>("out", "output", &["tag"])
        .unwrap();
    t
}

/// What `Tagger` makes of `input`.
fn tagged(input: &Headers) -> Headers {
    let trace = input.last_value("trace").map_or("none".to_string(), |t| {
        String::from_utf8_lossy(t).into_owned()
    });
    let mut h = input.clone();
    h.remove("stage")
        .add("stage", "tagged")
        .add("hop", format!("{trace}+tagged"));
    h
}

fn headers_of(pairs: &[(&str, &str)]) -> Headers {
    pairs.iter().copied().collect()
}

/// The inputs of the tagger tests: `(key, value, headers)`.
fn tagger_inputs() -> Vec<(String, String, Headers)> {
    (0..20)
        .map(|i| {
            let headers = match i % 3 {
                0 => Headers::new(),
                1 => headers_of(&[("trace", &format!("t{i}")), ("stage", "raw")]),
                _ => headers_of(&[("trace", "a"), ("trace", &format!("b{i}")), ("x", "")]),
            };
            (format!("k{i}"), format!("v{i}"), headers)
        })
        .collect()
}

#[test]
fn processor_reads_and_changes_headers_in_the_test_driver() {
    let mut driver = TopologyTestDriver::new(tagger_topology("tagger")).unwrap();
    let inputs = tagger_inputs();
    for (i, (k, v, h)) in inputs.iter().enumerate() {
        driver
            .pipe_input_with_headers("input", k, v, i as i64, h.clone())
            .unwrap();
    }
    let out = driver
        .read_output_with_headers::<String, String>("output")
        .unwrap();
    assert_eq!(out.len(), inputs.len());
    for ((r, h), (k, v, input)) in out.iter().zip(&inputs) {
        assert_eq!((&r.key, &r.value), (k, v));
        assert_eq!(*h, tagged(input), "headers of {k}");
    }
    // The plain pipe carries none, and plain `read_output` still reads the records.
    driver
        .pipe_input("input", &"k".to_string(), &"v".to_string(), 0)
        .unwrap();
    let out = driver.read_output::<String, String>("output").unwrap();
    assert_eq!(out.len(), 1);
}

/// A record as read from a topic: key, value, headers.
type ReadRecord = (Option<Vec<u8>>, Option<Vec<u8>>, Headers);

/// Every record of `topic`, read from the start.
fn read_topic(store: &Store, topic: &str) -> Vec<ReadRecord> {
    let mut c = store
        .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    let parts = store.describe_topic(topic).unwrap().partitions.len() as u32;
    let tps: Vec<_> = (0..parts).map(|p| TopicPartition::new(topic, p)).collect();
    c.assign(&tps).unwrap();
    let ends = c.end_offsets(&tps).unwrap();
    let mut out = Vec::new();
    while ends.iter().any(|(tp, end)| c.position(tp).unwrap() < *end) {
        for r in c.poll(Duration::from_millis(50)).unwrap().iter() {
            let mut h = Headers::new();
            for header in r.headers() {
                let (k, v) = header.unwrap();
                h.add_nullable(k, v.map(<[u8]>::to_vec));
            }
            out.push((
                r.key().map(<[u8]>::to_vec),
                r.value().map(<[u8]>::to_vec),
                h,
            ));
        }
    }
    out
}

fn setup(topics: &[&str]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for t in topics {
        store.create_topic(t, TopicConfig::new(PARTITIONS)).unwrap();
    }
    (dir, store)
}

fn send_with_headers(store: &Store, topic: &str, key: &str, value: Vec<u8>, headers: &Headers) {
    let mut r = ProducerRecord::new(topic).key(key).value(value);
    for (k, v) in headers.iter() {
        r = r.header(k, v.unwrap_or_default());
    }
    store.producer().send(r).unwrap();
}

#[test]
fn processor_reads_and_changes_headers_in_an_app() {
    let (_dir, store) = setup(&["input", "output"]);
    let app = App::start(
        &store,
        tagger_topology("tagger-app"),
        StreamsConfig::new().threads(2),
    )
    .unwrap();
    let inputs = tagger_inputs();
    for (k, v, h) in &inputs {
        send_with_headers(&store, "input", k, v.clone().into_bytes(), h);
    }
    common::wait_for_apps("every tagged record", &[&app], || {
        app.metrics().processed_records >= inputs.len() as u64
    });
    app.close().unwrap();
    let out: HashMap<String, Headers> = read_topic(&store, "output")
        .into_iter()
        .map(|(k, _, h)| (String::decode(&k.unwrap()).unwrap(), h))
        .collect();
    assert_eq!(out.len(), inputs.len());
    for (k, _, h) in &inputs {
        assert_eq!(out[k], tagged(h), "headers of {k}");
    }
}

/// `map` + `filter` + `group_by` (a repartition) + `count`: each count update carries the
/// headers of the input record that made it.
fn counting_topology(app_id: &str) -> Topology {
    let b = Builder::new(app_id);
    b.stream::<String, i64>("numbers")
        .filter(|_, n| n % 3 != 0)
        .map(|k, n| (k, n * 10))
        .group_by(|_, n| format!("bucket{}", n % 4))
        .count(Materialized::named("counts"))
        .to_stream()
        .to("counts");
    b.build().unwrap()
}

/// The model of `counting_topology`: for each input that passes the filter, `(bucket, count,
/// headers of that input)`.
fn counting_model(inputs: &[(String, i64, Headers)]) -> Vec<(String, i64, Headers)> {
    let mut counts: HashMap<String, i64> = HashMap::new();
    let mut out = Vec::new();
    for (_, n, h) in inputs {
        if n % 3 == 0 {
            continue;
        }
        let bucket = format!("bucket{}", (n * 10) % 4);
        let c = counts.entry(bucket.clone()).or_default();
        *c += 1;
        out.push((bucket, *c, h.clone()));
    }
    out
}

fn header_lists() -> impl Strategy<Value = Headers> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["trace", "tenant", "id"]),
            prop::collection::vec(any::<u8>(), 0..4),
        ),
        0..3,
    )
    .prop_map(|pairs| pairs.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// DSL operators pass the headers of the record they process on, through a repartition
    /// topic and into an aggregation's updates.
    #[test]
    fn dsl_operators_propagate_headers(
        inputs in prop::collection::vec(
            (prop::sample::select(vec!["a", "b", "c"]), 0i64..40, header_lists()),
            0..40,
        )
    ) {
        let inputs: Vec<(String, i64, Headers)> =
            inputs.into_iter().map(|(k, n, h)| (k.to_string(), n, h)).collect();
        let mut driver = TopologyTestDriver::new(counting_topology("counting")).unwrap();
        for (i, (k, n, h)) in inputs.iter().enumerate() {
            driver.pipe_input_with_headers("numbers", k, n, i as i64, h.clone()).unwrap();
        }
        let out: Vec<(String, i64, Headers)> = driver
            .read_output_with_headers::<String, i64>("counts")
            .unwrap()
            .into_iter()
            .map(|(r, h)| (r.key, r.value, h))
            .collect();
        prop_assert_eq!(out, counting_model(&inputs));
    }
}

#[test]
fn headers_survive_a_repartition_topic_in_an_app_and_changelogs_carry_none() {
    let (_dir, store) = setup(&["numbers", "counts"]);
    let app = App::start(
        &store,
        counting_topology("counting-app"),
        StreamsConfig::new().threads(2).exactly_once(),
    )
    .unwrap();
    // One key per record, so each bucket's updates come from a single input partition.
    let inputs: Vec<(String, i64, Headers)> = (0..30)
        .map(|i| {
            let h = if i % 5 == 0 {
                Headers::new()
            } else {
                headers_of(&[("id", &format!("n{i}")), ("tenant", "eu")])
            };
            ("k".to_string(), i, h)
        })
        .collect();
    for (k, n, h) in &inputs {
        send_with_headers(&store, "numbers", k, n.encode().unwrap(), h);
    }
    let expected = counting_model(&inputs);
    let counts = app.store::<String, i64>("counts").unwrap();
    common::wait_for_apps("every count", &[&app], || {
        expected.iter().all(|(bucket, _, _)| {
            counts.get(bucket).unwrap()
                == expected
                    .iter()
                    .filter(|(b, ..)| b == bucket)
                    .map(|(_, c, _)| *c)
                    .max()
        })
    });
    app.close().unwrap();
    let mut out: Vec<(String, i64, Headers)> = read_topic(&store, "counts")
        .into_iter()
        .map(|(k, v, h)| {
            (
                String::decode(&k.unwrap()).unwrap(),
                i64::decode(&v.unwrap()).unwrap(),
                h,
            )
        })
        .collect();
    // Topic order differs from input order across partitions; each (bucket, count) is unique.
    out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let mut expected = expected;
    expected.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    assert_eq!(out, expected);
    let repartition = store
        .list_topics()
        .into_iter()
        .find(|t| t.starts_with("counting-app-") && t.ends_with("-repartition"))
        .expect("a repartition topic");
    let with_headers = read_topic(&store, &repartition)
        .iter()
        .filter(|(.., h)| !h.is_empty())
        .count();
    assert_eq!(
        with_headers,
        inputs
            .iter()
            .filter(|(_, n, h)| n % 3 != 0 && !h.is_empty())
            .count()
    );
    // The input records' headers do not reach the changelog; a count's changelog records carry
    // only the marker saying their timestamp is the row's (FORMAT.md 8.6).
    let changelog = read_topic(&store, "counting-app-counts-changelog");
    assert!(!changelog.is_empty());
    assert!(changelog.iter().all(|(.., h)| {
        h.iter().collect::<Vec<_>>() == [("riverbed.row-timestamp", Some(&[][..]))]
    }));
}

/// Forwards each record and, every second of wall-clock time, a `tick`; with `mark_ticks`
/// the ticks carry a `tick` header.
struct Ticker {
    mark_ticks: bool,
}

impl Processor<String, String> for Ticker {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> riverbed::Result<()> {
        ctx.schedule(Duration::from_secs(1), PunctuationType::WallClockTime);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        r: StreamRecord<String, String>,
    ) -> riverbed::Result<()> {
        ctx.forward(r);
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        _: PunctuationType,
        timestamp: i64,
    ) -> riverbed::Result<()> {
        assert!(ctx.headers().is_empty(), "a punctuation sees no headers");
        if self.mark_ticks {
            ctx.set_headers(headers_of(&[("tick", "yes")]));
        }
        ctx.forward(StreamRecord::new("tick".into(), "tick".into(), timestamp));
        Ok(())
    }
}

#[test]
fn punctuation_forwards_carry_no_headers_unless_set() {
    for mark_ticks in [false, true] {
        let mut t = Topology::new("ticker");
        t.add_source::<String, String>("in", &["input"])
            .unwrap()
            .add_processor("tick", move || Ticker { mark_ticks }, &["in"])
            .unwrap()
            .add_sink::<String, String>("out", "output", &["tick"])
            .unwrap();
        let mut driver = TopologyTestDriver::new(t).unwrap();
        let input = headers_of(&[("trace", "t1")]);
        driver
            .pipe_input_with_headers(
                "input",
                &"k".to_string(),
                &"v".to_string(),
                5,
                input.clone(),
            )
            .unwrap();
        driver.advance_wall_clock(Duration::from_secs(1)).unwrap();
        let out = driver
            .read_output_with_headers::<String, String>("output")
            .unwrap();
        let keys_and_headers: Vec<(String, Headers)> =
            out.into_iter().map(|(r, h)| (r.key, h)).collect();
        let tick = if mark_ticks {
            headers_of(&[("tick", "yes")])
        } else {
            Headers::new()
        };
        assert_eq!(
            keys_and_headers,
            [("k".to_string(), input), ("tick".to_string(), tick)]
        );
    }
}

/// Replaces the headers of what it forwards.
struct Stamp;

impl Processor<String, String> for Stamp {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        r: StreamRecord<String, String>,
    ) -> riverbed::Result<()> {
        ctx.headers_mut().clear().add("stamped", "1");
        ctx.forward(r);
        Ok(())
    }
}

#[test]
fn a_processor_changing_headers_does_not_change_its_siblings_records() {
    let mut t = Topology::new("siblings");
    t.add_source::<String, String>("in", &["input"])
        .unwrap()
        .add_processor("stamp", || Stamp, &["in"])
        .unwrap()
        .add_sink::<String, String>("stamped", "stamped", &["stamp"])
        .unwrap()
        .add_sink::<String, String>("plain", "plain", &["in"])
        .unwrap();
    let mut driver = TopologyTestDriver::new(t).unwrap();
    let input = headers_of(&[("trace", "t1"), ("trace", "t2")]);
    driver
        .pipe_input_with_headers(
            "input",
            &"k".to_string(),
            &"v".to_string(),
            0,
            input.clone(),
        )
        .unwrap();
    let stamped = driver
        .read_output_with_headers::<String, String>("stamped")
        .unwrap();
    let plain = driver
        .read_output_with_headers::<String, String>("plain")
        .unwrap();
    assert_eq!(stamped[0].1, headers_of(&[("stamped", "1")]));
    assert_eq!(plain[0].1, input);
    assert_eq!(plain[0].0.value, "v");
}
