//! A text dump of everything a data directory holds that a reader can see: every record of
//! every user topic read through a consumer at both isolation levels, and every committed group
//! offset. `examples/make_format_v2_fixture.rs` writes it next to the fixture it makes
//! (`expected.txt`), and `tests/format_v2_fixture.rs` compares a newer build's reading of the
//! same files with it, so the two are one piece of code (included by `#[path]` in both).

use std::fmt::Write as _;
use std::time::Duration;

use riverbed::{ConsumerConfig, IsolationLevel, Store, TopicPartition};

fn hex(b: Option<&[u8]>) -> String {
    match b {
        None => "-".to_string(),
        Some(b) => {
            let mut s = String::from("x");
            for byte in b {
                let _ = write!(s, "{byte:02x}");
            }
            s
        }
    }
}

/// One line per record, `isolation topic partition offset timestamp key value headers`, then one
/// per committed offset, `committed group topic partition offset metadata`. Bytes are hex
/// (`x...`), `-` is null. Panics (it is test code) if the store cannot be read.
pub fn dump(store: &Store, groups: &[&str]) -> String {
    let mut out = String::new();
    let mut topics = store.list_topics();
    topics.sort();
    for isolation in [
        IsolationLevel::ReadUncommitted,
        IsolationLevel::ReadCommitted,
    ] {
        let tag = match isolation {
            IsolationLevel::ReadUncommitted => "uncommitted",
            _ => "committed",
        };
        for topic in &topics {
            let n = store.describe_topic(topic).unwrap().partitions.len() as u32;
            for p in 0..n {
                let tp = TopicPartition::new(topic.as_str(), p);
                let mut c = store
                    .consumer(
                        ConsumerConfig::default()
                            .isolation_level(isolation)
                            .max_poll_records(3),
                    )
                    .unwrap();
                let tps = [tp.clone()];
                c.assign(&tps).unwrap();
                c.seek_to_beginning(&tps).unwrap();
                let end = c.end_offsets(&tps).unwrap()[0].1;
                let mut polls = 0;
                while c.position(&tp).unwrap() < end {
                    polls += 1;
                    assert!(polls < 100_000, "consumer stuck on {tp:?}");
                    for r in c.poll(Duration::ZERO).unwrap().iter() {
                        let mut headers = String::new();
                        for h in r.headers() {
                            let (k, v) = h.unwrap();
                            let _ = write!(headers, "{k}={};", hex(v));
                        }
                        let _ = writeln!(
                            out,
                            "{tag} {topic} {p} {} {} {} {} {}",
                            r.offset(),
                            r.timestamp(),
                            hex(r.key()),
                            hex(r.value()),
                            if headers.is_empty() { "-" } else { &headers }
                        );
                    }
                }
            }
        }
    }
    for group in groups {
        let mut offsets = store.committed_offsets(group);
        offsets.sort_by(|a, b| (&a.0.topic, a.0.partition).cmp(&(&b.0.topic, b.0.partition)));
        for (tp, om) in offsets {
            let _ = writeln!(
                out,
                "committed {group} {} {} {} {:?}",
                tp.topic, tp.partition, om.offset, om.metadata
            );
        }
    }
    out
}
