//! `riverbed topics`.

use clap::Subcommand;
use serde_json::{json, Value};

use riverbed::TopicConfig;

use crate::out::{print_json, size, Table};
use crate::{open_store, usage, Cli, CmdResult, Failure, Output};

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
        index_max_bytes, max_message_bytes (or its old name max_record_bytes), flush \
        (every|manual|interval:<msgs|none>:<ms|none>), \
        retention_ms, retention_bytes, recovery_checkpoint_bytes, recovery (truncate|strict), \
        compression (none|gzip:<level>|snappy|lz4|zstd:<level>), timestamp_type (create|append); `none` for no limit."
    )]
    Create {
        /// Topic name.
        topic: String,
        /// Number of partitions.
        #[arg(short, long, default_value_t = 1)]
        partitions: u32,
        /// A setting, KEY=VALUE (repeatable; Kafka's names such as retention.ms work too).
        #[arg(short, long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        /// Succeed without change if the topic exists (Kafka's --if-not-exists).
        #[arg(long)]
        if_not_exists: bool,
    },
    /// Show partitions, offsets, sizes, segments and settings (read-only); every topic when none
    /// is named.
    #[command(
        after_help = "Examples:\n  riverbed -d ./data topics describe events\n  \
        riverbed -d ./data topics describe --json"
    )]
    Describe {
        /// Topic name (default: every topic).
        topic: Option<String>,
        #[command(flatten)]
        out: Output,
    },
    /// Delete a topic, its data and its committed offsets.
    #[command(after_help = "Example:\n  riverbed -d ./data topics delete events")]
    Delete {
        /// Topic name.
        topic: String,
        /// Succeed without change if there is no such topic (Kafka's --if-exists).
        #[arg(long)]
        if_exists: bool,
    },
    /// Compact a compacted topic now, whatever its dirty ratio (what the store's cleaner does in
    /// the background).
    #[command(after_help = "Example:\n  riverbed -d ./data topics compact users")]
    Compact {
        /// Topic name.
        topic: String,
    },
    /// Delete the sealed segments past their topic's retention limits now, in every topic (what
    /// a segment roll does).
    #[command(after_help = "Example:\n  riverbed -d ./data topics apply-retention")]
    ApplyRetention,
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
    /// Change a topic's settings (Kafka's `kafka-configs.sh --alter --entity-type topics`):
    /// set keys, reset others to their defaults, all at once. Takes the store's lock.
    #[command(
        after_help = "Examples:\n  riverbed -d ./data topics alter events --add-config \
        retention.ms=3600000,max.message.bytes=2097152\n  \
        riverbed -d ./data topics alter events --delete-config retention.ms\n\n\
        Keys as in `topics create` (Kafka's names work too). Retention and compaction settings \
        apply at the next retention or cleaner pass, segment and index sizes at the next roll, \
        max_message_bytes, timestamp_type, compression and flush at the next send. Refused: \
        partitions (use add-partitions), a smaller segment_bytes, adding, removing or changing \
        a flush interval timer; nothing is changed then."
    )]
    Alter {
        /// Topic name.
        topic: String,
        /// Settings to set, KEY=VALUE[,KEY=VALUE...] (repeatable).
        #[arg(long = "add-config", value_name = "KEY=VALUE[,KEY=VALUE]")]
        add_config: Vec<String>,
        /// A setting to set, KEY=VALUE (repeatable; as in `topics create`).
        #[arg(short, long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        /// Settings to reset to their defaults, KEY[,KEY...] (repeatable).
        #[arg(long = "delete-config", value_name = "KEY[,KEY]")]
        delete_config: Vec<String>,
        #[command(flatten)]
        out: Output,
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
            let view = crate::open_view(&dir)?;
            if out.json {
                let topics: Vec<Value> = view
                    .topics()
                    .iter()
                    .map(|t| {
                        json!({"topic": t, "partitions": view.topic_config(t).map_or(0, |c| c.get_partitions())})
                    })
                    .collect();
                print_json(&mut w, &json!(topics))?;
            } else {
                let mut t = Table::new(&["TOPIC", "PARTITIONS"]);
                for name in view.topics() {
                    let n = view.topic_config(&name).map_or(0, |c| c.get_partitions());
                    t.row(vec![name, n.to_string()]);
                }
                t.print(&mut w)?;
            }
        }
        TopicsCmd::Create {
            topic,
            partitions,
            config,
            if_not_exists,
        } => {
            if *partitions == 0 {
                return Err(usage("-p: a topic needs at least one partition"));
            }
            let mut c = TopicConfig::new(*partitions);
            let settings = parse_settings(config)?;
            let refs: Vec<(&str, &str)> = settings
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            c.apply(&refs).map_err(|e| usage(e.to_string()))?;
            let c = c.partitions(*partitions);
            let store = open_store(&dir, true)?;
            let created = if *if_not_exists {
                store.create_topic_if_absent(topic, c)?
            } else {
                store.create_topic(topic, c)?;
                true
            };
            if created {
                writeln!(w, "created topic {topic} with {partitions} partitions")?;
            } else {
                writeln!(w, "topic {topic} exists; nothing was changed")?;
            }
        }
        TopicsCmd::Describe { topic, out } => {
            let view = crate::open_view(&dir)?;
            let names = match topic {
                Some(t) => vec![t.clone()],
                None => view.topics(),
            };
            let mut all = Vec::new();
            for (i, name) in names.iter().enumerate() {
                if i > 0 && !out.json {
                    writeln!(w)?;
                }
                all.push(describe(&view, name, out.json, &mut w)?);
            }
            if out.json {
                let v = if topic.is_some() {
                    all.pop().unwrap_or(Value::Null)
                } else {
                    json!(all)
                };
                print_json(&mut w, &v)?;
            }
        }
        TopicsCmd::Delete { topic, if_exists } => {
            let store = open_store(&dir, false)?;
            match store.delete_topic(topic) {
                Err(e)
                    if *if_exists
                        && matches!(e.kind(), riverbed::ErrorKind::UnknownTopic { .. }) =>
                {
                    writeln!(w, "no topic {topic}; nothing was changed")?;
                }
                Err(e) => return Err(e.into()),
                Ok(()) => writeln!(w, "deleted topic {topic}")?,
            }
        }
        TopicsCmd::Compact { topic } => {
            let store = open_store(&dir, false)?;
            let r = store.compact_now(topic)?;
            writeln!(
                w,
                "compacted {topic}: {} segments rewritten into {}, {} records removed ({} \
                 tombstones), {} -> {}",
                r.segments_cleaned,
                r.segments_written,
                r.records_removed,
                r.tombstones_removed,
                size(r.bytes_before),
                size(r.bytes_after)
            )?;
        }
        TopicsCmd::ApplyRetention => {
            let store = open_store(&dir, false)?;
            let n = store.apply_retention()?;
            writeln!(w, "deleted {n} segments past their retention")?;
        }
        TopicsCmd::RebuildMetadata {
            config,
            replace_damaged,
            dry_run,
            out,
        } => rebuild_metadata(&dir, config, *replace_damaged, *dry_run, *out, &mut w)?,
        TopicsCmd::Alter {
            topic,
            add_config,
            config,
            delete_config,
            out,
        } => alter(&dir, topic, add_config, config, delete_config, *out, &mut w)?,
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
    let (mut settings, mut topic_settings) = (Vec::new(), Vec::new());
    for kv in config {
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            usage(format!(
                "--config {kv:?}: expected KEY=VALUE or TOPIC:KEY=VALUE"
            ))
        })?;
        match k.split_once(':') {
            Some((t, k)) => topic_settings.push((t.to_string(), k.to_string(), v.to_string())),
            None => settings.push((k.to_string(), v.to_string())),
        }
    }
    let options = riverbed::RebuildOptions::default()
        .replace_damaged(replace_damaged)
        .dry_run(dry_run)
        .settings(settings)
        .topic_settings(topic_settings);
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
                    "partitions": t.config.get_partitions(),
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
            topic.config.get_partitions().to_string(),
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

/// `topics alter`: the settings to set and to reset, translated as `--config` is, then
/// `Store::alter_topic_config`; prints the topic's settings afterwards.
fn alter(
    dir: &std::path::Path,
    topic: &str,
    add_config: &[String],
    config: &[String],
    delete_config: &[String],
    out: Output,
    w: &mut dyn Write,
) -> CmdResult {
    let mut set: Vec<String> = add_config
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::to_string)
        .collect();
    // A Kafka value may itself hold a comma (`cleanup.policy=compact,delete`): a piece without
    // `=` continues the previous value.
    let mut joined: Vec<String> = Vec::new();
    for piece in set.drain(..) {
        match joined.last_mut() {
            Some(last) if !piece.contains('=') => {
                last.push(',');
                last.push_str(&piece);
            }
            _ => joined.push(piece),
        }
    }
    joined.extend(config.iter().cloned());
    let set = parse_settings(&joined)?;
    let mut reset = Vec::new();
    for key in delete_config.iter().flat_map(|s| s.split(',')) {
        if key.is_empty() || key.contains('=') {
            return Err(usage(format!(
                "--delete-config {key:?}: expected a setting name, without a value"
            )));
        }
        let (k, _) = kafka_setting(key, "");
        if k == "partitions" {
            return Err(usage(
                "--delete-config partitions: the partition count is changed with \
                 `topics add-partitions`",
            ));
        }
        reset.push(k);
    }
    if set.is_empty() && reset.is_empty() {
        return Err(usage(
            "nothing to alter: give --add-config KEY=VALUE, --config KEY=VALUE or \
             --delete-config KEY",
        ));
    }
    if let Some(k) = reset.iter().find(|k| set.iter().any(|(s, _)| s == *k)) {
        return Err(usage(format!("{k} is both set and reset")));
    }
    let settings: Vec<(&str, Option<&str>)> = set
        .iter()
        .map(|(k, v)| (k.as_str(), Some(v.as_str())))
        .chain(reset.iter().map(|k| (k.as_str(), None)))
        .collect();
    let store = open_store(dir, false)?;
    let c = store
        .alter_topic_config(topic, &settings)
        .map_err(|e| match e.kind() {
            riverbed::ErrorKind::InvalidArgument(_) => usage(format!("{e} (nothing was changed)")),
            riverbed::ErrorKind::InvalidConfig { .. } => {
                usage(format!("{e} (nothing was changed)"))
            }
            _ => Failure::from(e),
        })?;
    let entries = c.entries();
    if out.json {
        let config: serde_json::Map<String, Value> =
            entries.into_iter().map(|(k, v)| (k, json!(v))).collect();
        print_json(w, &json!({"topic": topic, "config": config}))?;
        return Ok(());
    }
    writeln!(w, "altered topic {topic}:")?;
    for (k, v) in entries.iter().filter(|(k, _)| k != "partitions") {
        let mark = if settings.iter().any(|(s, _)| s == k) {
            "  (changed)"
        } else {
            ""
        };
        writeln!(w, "  {k}={v}{mark}")?;
    }
    Ok(())
}

/// `--config` settings as the library names them. Kafka's names and values are accepted too
/// (`retention.ms=-1`, `cleanup.policy=compact`, `max.message.bytes`, ...), so that settings
/// copied from a Kafka topic work; `partitions` is refused (it is `-p`).
pub fn parse_settings(config: &[String]) -> Result<Vec<(String, String)>, Failure> {
    let mut out = Vec::new();
    for kv in config {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| usage(format!("--config {kv:?}: expected KEY=VALUE")))?;
        let (k, v) = kafka_setting(k, v);
        if k == "partitions" {
            return Err(usage(
                "--config partitions: the partition count is set with -p (create) or \
                 `topics add-partitions`",
            ));
        }
        out.push((k, v));
    }
    Ok(out)
}

/// Translates one of Kafka's topic settings to Riverbed's name and value; other settings pass
/// through with dots read as underscores.
fn kafka_setting(k: &str, v: &str) -> (String, String) {
    let unlimited = |v: &str| {
        if v == "-1" {
            "none".to_string()
        } else {
            v.to_string()
        }
    };
    match k {
        "max.message.bytes" => ("max_message_bytes".into(), v.into()),
        "segment.index.bytes" => ("index_max_bytes".into(), v.into()),
        "retention.ms" | "retention.bytes" => (k.replace('.', "_"), unlimited(v)),
        "message.timestamp.type" => (
            "timestamp_type".into(),
            match v {
                "CreateTime" => "create".into(),
                "LogAppendTime" => "append".into(),
                _ => v.into(),
            },
        ),
        "compression.type" => (
            "compression".into(),
            match v {
                "uncompressed" => "none".into(),
                // Kafka's default zstd and gzip levels.
                "zstd" => "zstd:3".into(),
                "gzip" => "gzip:6".into(),
                _ => v.into(),
            },
        ),
        "cleanup.policy" => (
            "cleanup_policy".into(),
            match v {
                "delete,compact" => "compact,delete".into(),
                _ => v.into(),
            },
        ),
        _ => (k.replace('.', "_"), v.into()),
    }
}

/// Describes one topic: prints it as text, or returns it as JSON (printed by the caller, so that
/// describing every topic prints one array).
fn describe(
    view: &riverbed::inspect::StoreView,
    topic: &str,
    json_out: bool,
    w: &mut dyn Write,
) -> Result<Value, Failure> {
    let d = view.describe_topic(topic)?;
    let entries = d.config.entries();
    if json_out {
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
        return Ok(json!({"topic": d.name, "partitions": parts, "config": config}));
    }
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
    t.print(w)?;
    writeln!(w, "Config:")?;
    for (k, v) in entries.iter().filter(|(k, _)| k != "partitions") {
        writeln!(w, "  {k}={v}")?;
    }
    Ok(Value::Null)
}
