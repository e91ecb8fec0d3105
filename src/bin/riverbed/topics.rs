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
    /// Rebuild the topic metadata file from the partition directories (for a store that does
    /// not open because its `topics` file is missing, stale or damaged).
    #[command(
        name = "rebuild-metadata",
        after_help = "Examples:\n  riverbed -d ./data topics rebuild-metadata --dry-run\n  \
        riverbed -d ./data topics rebuild-metadata --config retention_ms=604800000 \
        --config orders:cleanup_policy=compact\n\n\
        Every topic with directories <topic>-0 .. <topic>-<n-1> is named with n partitions; a gap \
        is refused. Topics the existing file describes keep their settings. The settings of the \
        others are unknown: they get the defaults, except retention_ms=none (retention deletes \
        nothing until you set it) and segment/index sizes at least those of their files; set \
        them with --config. Nothing is moved or deleted. Takes the store's lock: stop the \
        application first."
    )]
    RebuildMetadata {
        /// A setting for the topics whose settings are unknown, KEY=VALUE, or for one topic,
        /// TOPIC:KEY=VALUE (repeatable; keys as in `topics create`).
        #[arg(short, long = "config", value_name = "[TOPIC:]KEY=VALUE")]
        config: Vec<String>,
        /// Replace a damaged `topics` file (its bytes are kept as topics.<stamp>.damaged).
        #[arg(long)]
        replace_damaged: bool,
        /// Print what would be written; write nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        out: Output,
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
        TopicsCmd::RebuildMetadata {
            config,
            replace_damaged,
            dry_run,
            out,
        } => rebuild_metadata(&dir, config, *replace_damaged, *dry_run, *out, &mut w)?,
        TopicsCmd::AddPartitions { topic, total } => {
            let store = open_store(&dir, false)?;
            store.add_partitions(topic, *total)?;
            writeln!(w, "topic {topic} now has {total} partitions")?;
        }
    }
    Ok(())
}

fn rebuild_metadata(
    dir: &std::path::Path,
    config: &[String],
    replace_damaged: bool,
    dry_run: bool,
    out: Output,
    w: &mut dyn Write,
) -> CmdResult {
    let mut options = riverbed::RebuildOptions {
        replace_damaged,
        dry_run,
        ..Default::default()
    };
    for kv in config {
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            Failure::Error(format!(
                "--config {kv:?}: expected KEY=VALUE or TOPIC:KEY=VALUE"
            ))
        })?;
        match k.split_once(':') {
            Some((t, k)) => {
                options
                    .topic_settings
                    .push((t.to_string(), k.to_string(), v.to_string()))
            }
            None => options.settings.push((k.to_string(), v.to_string())),
        }
    }
    if !dir.is_dir() {
        return Err(Failure::Error(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let report = riverbed::Store::rebuild_metadata(dir, &options).map_err(|e| match e.kind() {
        riverbed::ErrorKind::Corruption { .. } => Failure::Error(format!(
            "{e}\nRerun with --replace-damaged to rebuild it from the directories (its bytes \
                 are kept next to it)"
        )),
        riverbed::ErrorKind::Locked { pid: Some(pid), .. } => Failure::Error(format!(
            "{} is in use by process {pid}; stop it first (nothing was changed)",
            dir.display()
        )),
        _ => Failure::from(e),
    })?;
    if out.json {
        let topics: Vec<Value> = report
            .topics
            .iter()
            .map(|t| {
                let config: serde_json::Map<String, Value> = t
                    .config
                    .entries()
                    .into_iter()
                    .map(|(k, v)| (k, json!(v)))
                    .collect();
                json!({
                    "topic": t.name,
                    "partitions": t.config.partitions,
                    "config_known": t.config_known,
                    "config": config,
                })
            })
            .collect();
        print_json(
            w,
            &json!({
                "metadata": report.path.display().to_string(),
                "written": report.written,
                "topics": topics,
                "dropped": report.dropped,
                "damaged_copy": report.damaged_copy.as_ref().map(|p| p.display().to_string()),
            }),
        )?;
        return Ok(());
    }
    let mut t = Table::new(&["TOPIC", "PARTITIONS", "SETTINGS"]);
    for topic in &report.topics {
        t.row(vec![
            topic.name.clone(),
            topic.config.partitions.to_string(),
            if topic.config_known {
                "kept".to_string()
            } else {
                "defaults + --config (were unknown)".to_string()
            },
        ]);
    }
    t.print(w)?;
    for d in &report.dropped {
        writeln!(w, "dropped topic {d}: no partition directory of it is left")?;
    }
    if let Some(copy) = &report.damaged_copy {
        writeln!(w, "the damaged file was kept as {}", copy.display())?;
    }
    if report.written {
        writeln!(
            w,
            "wrote {} ({} topics); check the settings with `riverbed -d {} topics describe TOPIC`",
            report.path.display(),
            report.topics.len(),
            dir.display()
        )?;
    } else {
        writeln!(w, "dry run: {} was not changed", report.path.display())?;
    }
    Ok(())
}

use std::io::Write;
