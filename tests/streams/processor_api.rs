//! The Processor API through the test driver: stores, context metadata, punctuation by stream
//! time and by wall-clock time, type checks when nodes are added.

use std::time::Duration;

use riverbed::streams::{
    Processor, ProcessorContext, PunctuationType, StreamRecord, Topology, TopologyTestDriver,
};

/// Sums values per key in a store; emits every sum at each punctuation.
struct Summer;

impl Processor<String, i64, String, String> for Summer {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> riverbed::Result<()> {
        ctx.schedule(Duration::from_millis(100), PunctuationType::StreamTime);
        ctx.schedule(Duration::from_secs(10), PunctuationType::WallClockTime);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        r: StreamRecord<String, i64>,
    ) -> riverbed::Result<()> {
        assert_eq!(ctx.topic(), Some("in"));
        assert_eq!(ctx.timestamp(), Some(r.timestamp));
        let offset = ctx.offset().unwrap_or(u64::MAX);
        let mut s = ctx.store::<String, i64>("sums")?;
        let sum = s.get(&r.key)?.unwrap_or(0) + r.value;
        s.put(&r.key, &sum)?;
        ctx.forward(StreamRecord::new(
            r.key,
            format!("offset {offset}"),
            r.timestamp,
        ));
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        kind: PunctuationType,
        timestamp: i64,
    ) -> riverbed::Result<()> {
        assert_eq!(ctx.topic(), None);
        let all = ctx.store::<String, i64>("sums")?.all()?;
        ctx.forward(StreamRecord::new(
            format!("{kind:?}@{timestamp}"),
            format!("{all:?}"),
            timestamp,
        ));
        Ok(())
    }
}

fn topology() -> Topology {
    let mut t = Topology::new("proc-api");
    t.add_source::<String, i64>("src", &["in"])
        .unwrap()
        .add_state_store("sums")
        .unwrap()
        .add_processor("sum", || Summer, &["src"])
        .unwrap()
        .add_sink::<String, String>("sink", "out", &["sum"])
        .unwrap();
    t
}

#[test]
fn stores_metadata_and_punctuations() {
    let mut d = TopologyTestDriver::new(topology()).unwrap();
    let mut pipe = |k: &str, v: i64, ts: i64| d.pipe_input("in", &k.to_string(), &v, ts).unwrap();
    pipe("a", 1, 1000); // first record: stream-time punctuation at 1000
    pipe("b", 2, 1050);
    pipe("a", 3, 990); // out of order: stream time stays 1050
    pipe("a", 4, 1100); // due: 1000 + 100
    pipe("b", 5, 1350); // due at 1200, fires once at 1350; next at 1450
    pipe("b", 6, 1449);
    let keys: Vec<String> = d
        .read_output::<String, String>("out")
        .unwrap()
        .into_iter()
        .map(|r| format!("{}={}", r.key, r.value))
        .collect();
    assert_eq!(
        keys,
        [
            "a=offset 0",
            "StreamTime@1000=[(\"a\", 1)]",
            "b=offset 1",
            "a=offset 2",
            "a=offset 3",
            "StreamTime@1100=[(\"a\", 8), (\"b\", 2)]",
            "b=offset 4",
            "StreamTime@1350=[(\"a\", 8), (\"b\", 7)]",
            "b=offset 5",
        ]
    );
    d.advance_wall_clock(Duration::from_secs(9)).unwrap();
    assert!(d.read_output::<String, String>("out").unwrap().is_empty());
    d.advance_wall_clock(Duration::from_secs(1)).unwrap();
    let out = d.read_output::<String, String>("out").unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].key, "WallClockTime@10000");
    let sums = d.store::<String, i64>("sums").unwrap();
    assert_eq!(
        sums.all().unwrap(),
        [("a".to_string(), 8), ("b".to_string(), 13)]
    );
}

#[test]
fn mismatched_types_and_unknown_names_are_refused_when_added() {
    let mut t = Topology::new("bad");
    t.add_source::<String, String>("src", &["in"]).unwrap();
    let e = t.add_processor("sum", || Summer, &["src"]).err().unwrap();
    assert!(e.to_string().contains("i64"), "{e}");
    assert!(t.add_sink::<String, String>("s", "out", &["nope"]).is_err());
    assert!(t.add_source::<String, String>("src", &["other"]).is_err());
    assert!(t.add_source::<String, String>("src2", &["in"]).is_err());
    t.add_state_store("x").unwrap();
    assert!(t.add_state_store("x").is_err());
}

#[test]
fn an_unknown_store_is_an_error_not_a_panic() {
    let mut t = Topology::new("nostore");
    t.add_source::<String, i64>("src", &["in"])
        .unwrap()
        .add_processor("sum", || Summer, &["src"])
        .unwrap();
    let mut d = TopologyTestDriver::new(t).unwrap();
    let e = d.pipe_input("in", &"a".to_string(), &1i64, 0).unwrap_err();
    assert!(e.to_string().contains("sums"), "{e}");
}
