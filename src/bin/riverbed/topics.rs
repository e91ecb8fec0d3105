//! `riverbed topics`.

use clap::Subcommand;
use serde_json::{json, Value};

use riverbed::inspect::StoreView;
use riverbed::TopicConfig;

use crate::out::{print_json, size, Table};
use crate::{open_store, Cli, CmdResult, Failure, Output};

#[derive(Subcommand)]
pub enum TopicsCmd {
    /// List the topics (read-only).
    #[command(after_help = "Example:\n  riverbed -d ./data topics list --json")]
    List {
        #[command(flatten)]
        out: Output,
    },
    /// Create a topic (creates the store directory if need be).
    #[command(
        after_help = "Example:\n  riverbed -d ./data topics create events -p 4 \
        --config retention_ms=86400000 --config flush=every\n\n\
        Settings (see `topics describe`): segment_bytes, segment_ms, index_interval_bytes, \
        index_max_bytes, max_record_bytes, flush (every|manual|interval:<msgs|none>:<ms|none>), \
        retention_ms, retention_bytes, recovery_checkpoint_bytes, recovery (truncate|strict), \
        compression (none|zstd:<level>), timestamp_type (create|append); `none` for no limit."
    )]
    Create {
        /// Topic name.
        topic: String,
        /// Number of partitions.
        #[arg(short, long, default_value_t = 1)]
        partitions: u32,
        /// A setting, KEY=VALUE (repeatable).
        #[arg(short, long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
    },
    /// Show partitions, offsets, sizes, segments and settings (read-only).
    #[command(after_help = "Example:\n  riverbed -d ./data topics describe events")]
    Describe {
        /// Topic name.
        topic: String,
        #[command(flatten)]
        out: Output,
    },
    /// Delete a topic, its data and its committed offsets.
    #[command(after_help = "Example:\n  riverbed -d ./data topics delete events")]
    Delete {
        /// Topic name.
        topic: String,
    },
    /// Raise a topic's partition count.
    #[command(
        after_help = "Example:\n  riverbed -d ./data topics add-partitions events --total 8"
    )]
    AddPartitions {
        /// Topic name.
        topic: String,
        /// The new total number of partitions.
        #[arg(long)]
        total: u32,
    },
}

pub fn run(cli: &Cli, cmd: &TopicsCmd) -> CmdResult {
    let dir = cli.dir();
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    match cmd {
        TopicsCmd::List { out } => {
            let view = StoreView::open(&dir)?;
            if out.json {
                let topics: Vec<Value> = view
                    .topics()
                    .iter()
                    .map(|t| {
                        json!({"topic": t, "partitions": view.topic_config(t).map_or(0, |c| c.partitions)})
                    })
                    .collect();
                print_json(&mut w, &json!(topics))?;
            } else {
                let mut t = Table::new(&["TOPIC", "PARTITIONS"]);
                for name in view.topics() {
                    let n = view.topic_config(&name).map_or(0, |c| c.partitions);
                    t.row(vec![name, n.to_string()]);
                }
                t.print(&mut w)?;
            }
        }
        TopicsCmd::Create {
            topic,
            partitions,
            config,
        } => {
            let mut c = TopicConfig::new(*partitions);
            let mut settings = Vec::new();
            for kv in config {
                let (k, v) = kv.split_once('=').ok_or_else(|| {
                    Failure::Error(format!("--config {kv:?}: expected KEY=VALUE"))
                })?;
                settings.push((k, v));
            }
            c.apply(&settings)?;
            c.partitions = *partitions;
            let store = open_store(&dir, true)?;
            store.create_topic(topic, c)?;
            writeln!(w, "created topic {topic} with {partitions} partitions")?;
        }
        TopicsCmd::Describe { topic, out } => {
            let view = StoreView::open(&dir)?;
            let d = view.describe_topic(topic)?;
            let entries = d.config.entries();
            if out.json {
                let parts: Vec<Value> = d
                    .partitions
                    .iter()
                    .map(|p| {
                        json!({
                            "partition": p.partition,
                            "log_start_offset": p.log_start_offset,
                            "log_end_offset": p.log_end_offset,
                            "records": p.log_end_offset - p.log_start_offset,
                            "size_bytes": p.size_bytes,
                            "segments": p.segments,
                        })
                    })
                    .collect();
                let config: serde_json::Map<String, Value> =
                    entries.into_iter().map(|(k, v)| (k, json!(v))).collect();
                print_json(
                    &mut w,
                    &json!({"topic": d.name, "partitions": parts, "config": config}),
                )?;
            } else {
                writeln!(w, "Topic: {}  Partitions: {}", d.name, d.partitions.len())?;
                let mut t = Table::new(&[
                    "PARTITION",
                    "LOG-START",
                    "LOG-END",
                    "RECORDS",
                    "SIZE",
                    "SEGMENTS",
                ]);
                for p in &d.partitions {
                    t.row(vec![
                        p.partition.to_string(),
                        p.log_start_offset.to_string(),
                        p.log_end_offset.to_string(),
                        (p.log_end_offset - p.log_start_offset).to_string(),
                        size(p.size_bytes),
                        p.segments.to_string(),
                    ]);
                }
                t.print(&mut w)?;
                writeln!(w, "Config:")?;
                for (k, v) in entries.iter().filter(|(k, _)| k != "partitions") {
                    writeln!(w, "  {k}={v}")?;
                }
            }
        }
        TopicsCmd::Delete { topic } => {
            let store = open_store(&dir, false)?;
            store.delete_topic(topic)?;
            writeln!(w, "deleted topic {topic}")?;
        }
        TopicsCmd::AddPartitions { topic, total } => {
            let store = open_store(&dir, false)?;
            store.add_partitions(topic, *total)?;
            writeln!(w, "topic {topic} now has {total} partitions")?;
        }
    }
    Ok(())
}

use std::io::Write;
