//! An application that serves its own store over the Kafka wire protocol and, in the same
//! process, consumes a topic as a member of a consumer group that remote Kafka clients may join
//! too: one group coordinator for both (issue 17). tests/outside/run.sh uses it to check that a
//! group spans the owning process and remote clients (every record seen exactly once across the
//! members, the partitions split between them).
//!
//! ```text
//! cargo run --release --features server --example serve_and_consume -- \
//!     DIR 127.0.0.1:9092 GROUP TOPIC PARTITIONS OUT.jsonl [range|roundrobin]
//! ```
//!
//! Creates TOPIC with PARTITIONS partitions when missing, starts the server on the address,
//! subscribes an in-process `Consumer` of GROUP to TOPIC and writes one JSON line per event to
//! OUT.jsonl: `{"member":"inproc","event":"assigned","partitions":[..]}` (and `"revoked"`) on
//! each rebalance, `{"member":"inproc","partition":P,"offset":O,"key":K}` per record. It commits
//! after each poll and on revocation. It stops (leaving the group, then stopping the server)
//! when the file OUT.jsonl.stop appears.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use riverbed::server::{Server, ServerConfig};
use riverbed::{
    Assignor, Consumer, ConsumerConfig, OffsetReset, RebalanceListener, Store, TopicConfig,
    TopicPartition,
};

type Out = Arc<Mutex<BufWriter<File>>>;

fn line(out: &Out, text: String) {
    let mut w = out.lock().expect("output lock");
    let _ = writeln!(w, "{text}");
    let _ = w.flush();
}

fn list(tps: &[TopicPartition]) -> String {
    let mut ps: Vec<u32> = tps.iter().map(|tp| tp.partition).collect();
    ps.sort_unstable();
    let ps: Vec<String> = ps.iter().map(u32::to_string).collect();
    format!("[{}]", ps.join(","))
}

struct Events(Out);

impl RebalanceListener for Events {
    fn on_revoked(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        // What was processed is committed before the partitions go to another member.
        if let Err(e) = consumer.commit() {
            line(
                &self.0,
                format!(
                    r#"{{"member":"inproc","event":"commit-failed","error":{:?}}}"#,
                    e.to_string()
                ),
            );
        }
        line(
            &self.0,
            format!(
                r#"{{"member":"inproc","event":"revoked","partitions":{}}}"#,
                list(partitions)
            ),
        );
    }
    fn on_assigned(&mut self, _consumer: &mut Consumer, partitions: &[TopicPartition]) {
        line(
            &self.0,
            format!(
                r#"{{"member":"inproc","event":"assigned","partitions":{}}}"#,
                list(partitions)
            ),
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (args, assignor) = match args.as_slice() {
        [rest @ .., a] if rest.len() == 6 && a == "roundrobin" => (rest, Assignor::RoundRobin),
        [rest @ .., a] if rest.len() == 6 && a == "range" => (rest, Assignor::Range),
        all => (all, Assignor::Range),
    };
    let [dir, addr, group, topic, partitions, out_path] = args else {
        eprintln!(
            "usage: serve_and_consume DIR ADDR GROUP TOPIC PARTITIONS OUT.jsonl [range|roundrobin]"
        );
        std::process::exit(2);
    };
    let partitions: u32 = partitions.parse()?;
    let store = Store::open(dir)?;
    store.create_topic_if_absent(topic, TopicConfig::new(partitions))?;
    let server = Server::start(&store, ServerConfig::new(addr.as_str()))?;
    eprintln!("serving {dir} on {addr}");

    let out: Out = Arc::new(Mutex::new(BufWriter::new(File::create(out_path)?)));
    let stop = format!("{out_path}.stop");
    // The members of a group must share a protocol (Kafka's INCONSISTENT_GROUP_PROTOCOL
    // otherwise): kafkajs offers only round robin, librdkafka and kafka-python range first.
    let config = ConsumerConfig::new(group.as_str())
        .auto_offset_reset(OffsetReset::Earliest)
        .assignor(assignor);
    let mut consumer = store.consumer(config)?;
    consumer.subscribe_with_listener(&[topic.as_str()], Events(Arc::clone(&out)))?;
    while !Path::new(&stop).exists() {
        let records = consumer.poll(Duration::from_millis(100))?;
        for r in records.iter() {
            let key = r.key().map(String::from_utf8_lossy).unwrap_or_default();
            line(
                &out,
                format!(
                    r#"{{"member":"inproc","partition":{},"offset":{},"key":{:?}}}"#,
                    r.partition(),
                    r.offset(),
                    key
                ),
            );
        }
        if !records.is_empty() {
            consumer.commit()?;
        }
    }
    consumer.close()?;
    line(&out, r#"{"member":"inproc","event":"closed"}"#.to_string());
    server.shutdown()?;
    Ok(())
}
