//! Topics: names, per-topic configuration, and the store's topic metadata file.
//!
//! A topic is a name and N partitions; partition `p` of topic `t` is the [`Log`](crate::Log) in
//! `<store>/<t>-<p>/`, as in Kafka's data directories.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::config::{CleanupPolicy, FlushPolicy, LogConfig, RecoveryMode};
use crate::error::{corrupt, Error, Result};
use crate::record::{Compression, TimestampType};
use crate::small_file;

/// Longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

pub use crate::topic_partition::TopicPartition;

/// Names of the store's internal logs, which no user topic may take: the committed offsets
/// (directory `__consumer_offsets-0`) and the transaction log (`__transaction_state-0`). Kafka
/// reserves the same two names for the same purposes (`Topic.isInternal`).
pub(crate) const RESERVED_TOPIC_NAMES: [&str; 2] = ["__consumer_offsets", "__transaction_state"];

/// Checks a topic name as Kafka does (`org.apache.kafka.common.internals.Topic.validate`): 1 to
/// 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`. Names may begin with `__`, as in Kafka;
/// only the exact names of the store's internal logs, `__consumer_offsets` and
/// `__transaction_state`, are refused, so
/// that no topic's partition directory can be one of the store's own (FORMAT.md, section 8).
///
/// Kafka also refuses a topic whose name equals an existing one's with `.` and `_` exchanged
/// (`a.b` and `a_b`), because its metric names cannot tell them apart. Riverbed's metrics name
/// topics as they are, so such topics coexist here; a store whose topics should move to Kafka
/// should avoid them.
///
/// # Errors
/// [`InvalidArgument`](crate::ErrorKind::InvalidArgument) saying what is wrong.
pub fn validate_topic_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_TOPIC_NAME_LEN {
        return Err(Error::invalid(format!(
            "topic name must be 1 to {MAX_TOPIC_NAME_LEN} characters long, got {}",
            name.len()
        )));
    }
    if name == "." || name == ".." {
        return Err(Error::invalid(format!(
            "topic name {name:?} is not allowed"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(Error::invalid(format!(
            "topic name {name:?} contains {c:?}; only ASCII letters, digits, '.', '_' and '-' are allowed"
        )));
    }
    if RESERVED_TOPIC_NAMES.contains(&name) {
        return Err(Error::invalid(format!(
            "topic name {name:?} is reserved for the store's internal log of the same name \
             (reserved: {})",
            RESERVED_TOPIC_NAMES.join(", ")
        )));
    }
    Ok(())
}

/// Configuration of a topic: its partition count, how producers compress, and the configuration
/// of each partition's log.
///
/// Built like every configuration of the crate: start from [`TopicConfig::new`] (or `default()`)
/// and chain setters, e.g. `TopicConfig::new(3).retention_ms(None)`; read it back with the
/// `get_` getters. The setters of single log settings (`segment_bytes`, `flush`, ...) change
/// [`log`](Self::log) in place, so they may come before or after other setters, but a later
/// [`log`](Self::log) replaces the whole log configuration.
#[derive(Clone, Debug)]
pub struct TopicConfig {
    pub(crate) partitions: u32,
    pub(crate) compression: Compression,
    pub(crate) log: LogConfig,
}

impl Default for TopicConfig {
    fn default() -> TopicConfig {
        TopicConfig::new(1)
    }
}

impl TopicConfig {
    /// The settings as `(key, value)` pairs, spelled as in the metadata file (FORMAT.md 8.1),
    /// `partitions` first.
    pub fn entries(&self) -> Vec<(String, String)> {
        encode_topic("t", self)
            .split(' ')
            .skip(2)
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Changes settings given by the key and value spelling of [`entries`](Self::entries), e.g.
    /// `("retention_ms", "none")`, `("flush", "every")`, `("compression", "zstd:3")`, all at
    /// once (so that, say, a smaller `segment_bytes` and `max_message_bytes` can be set together).
    ///
    /// # Errors
    /// [`InvalidArgument`](crate::ErrorKind::InvalidArgument) for an unknown key, a value that
    /// does not parse or a configuration that is invalid; the configuration is unchanged then.
    pub fn apply(&mut self, settings: &[(&str, &str)]) -> Result<()> {
        let mut c = self.clone();
        c.apply_unvalidated(settings)?;
        c.validate().map_err(|e| Error::invalid(e.to_string()))?;
        *self = c;
        Ok(())
    }

    /// [`apply`](Self::apply) without the final validation, for callers that report an invalid
    /// combination as [`InvalidConfig`](crate::ErrorKind::InvalidConfig) themselves.
    pub(crate) fn apply_unvalidated(&mut self, settings: &[(&str, &str)]) -> Result<()> {
        let mut entries = self.entries();
        for (key, value) in settings {
            let key = canonical_key(key);
            let Some(entry) = entries.iter_mut().find(|(k, _)| k == key) else {
                let known = self.entries_keys();
                return Err(Error::invalid(format!(
                    "unknown topic setting {key:?}; known: {}",
                    known.join(", ")
                )));
            };
            if value.is_empty() || value.contains(char::is_whitespace) || value.contains('=') {
                return Err(Error::invalid(format!("bad value {value:?} for {key}")));
            }
            entry.1 = value.to_string();
        }
        let mut line = String::from("topic t");
        for (k, v) in entries {
            line.push_str(&format!(" {k}={v}"));
        }
        let (_, config) = parse_topic(&line, METADATA_VERSION).map_err(Error::invalid)?;
        *self = config;
        Ok(())
    }

    fn entries_keys(&self) -> Vec<String> {
        self.entries().into_iter().map(|(k, _)| k).collect()
    }

    /// A topic of `partitions` partitions with default settings.
    pub fn new(partitions: u32) -> TopicConfig {
        TopicConfig {
            partitions,
            compression: Compression::None,
            log: LogConfig::default(),
        }
    }

    /// Number of partitions. Default: 1.
    #[must_use = "a setter returns the changed configuration"]
    pub fn partitions(mut self, partitions: u32) -> TopicConfig {
        self.partitions = partitions;
        self
    }

    /// Segment, retention, flush, timestamp and size settings of each partition log, all at
    /// once. Default: [`LogConfig::default`].
    #[must_use = "a setter returns the changed configuration"]
    pub fn log(mut self, log: LogConfig) -> TopicConfig {
        self.log = log;
        self
    }

    /// The [`partitions`](Self::partitions) setting.
    pub fn get_partitions(&self) -> u32 {
        self.partitions
    }

    /// The [`compression`](Self::compression) setting.
    pub fn get_compression(&self) -> Compression {
        self.compression
    }

    /// The [`log`](Self::log) settings.
    pub fn get_log(&self) -> &LogConfig {
        &self.log
    }

    /// Sets the flush policy of every partition.
    #[must_use = "a setter returns the changed configuration"]
    pub fn flush(mut self, policy: FlushPolicy) -> TopicConfig {
        self.log.flush = policy;
        self
    }

    /// Sets the segment size.
    #[must_use = "a setter returns the changed configuration"]
    pub fn segment_bytes(mut self, bytes: u64) -> TopicConfig {
        self.log.segment_bytes = bytes;
        self
    }

    /// Sets time-based retention (`None`: keep forever).
    #[must_use = "a setter returns the changed configuration"]
    pub fn retention_ms(mut self, ms: Option<u64>) -> TopicConfig {
        self.log.retention_ms = ms;
        self
    }

    /// Sets size-based retention per partition (`None`: no limit).
    #[must_use = "a setter returns the changed configuration"]
    pub fn retention_bytes(mut self, bytes: Option<u64>) -> TopicConfig {
        self.log.retention_bytes = bytes;
        self
    }

    /// Compression producers apply to batches of this topic. Default: none (Kafka's
    /// `compression.type=producer` with an uncompressed producer).
    #[must_use = "a setter returns the changed configuration"]
    pub fn compression(mut self, compression: Compression) -> TopicConfig {
        self.compression = compression;
        self
    }

    /// Sets the timestamp type.
    #[must_use = "a setter returns the changed configuration"]
    pub fn timestamp_type(mut self, t: TimestampType) -> TopicConfig {
        self.log.timestamp_type = t;
        self
    }

    /// Sets the largest accepted batch.
    #[must_use = "a setter returns the changed configuration"]
    pub fn max_message_bytes(mut self, bytes: usize) -> TopicConfig {
        self.log.max_message_bytes = bytes;
        self
    }

    /// Sets the cleanup policy: [`CleanupPolicy::Compact`] makes a compacted topic, whose
    /// records must all have keys.
    #[must_use = "a setter returns the changed configuration"]
    pub fn cleanup_policy(mut self, policy: CleanupPolicy) -> TopicConfig {
        self.log.cleanup_policy = policy;
        self
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`InvalidConfig`](crate::ErrorKind::InvalidConfig) naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        if self.partitions == 0 || self.partitions > 100_000 {
            return Err(Error::config("partitions", "must be between 1 and 100000"));
        }
        match self.compression {
            Compression::Zstd { level } if !(1..=22).contains(&level) => {
                return Err(Error::config("compression", "zstd level must be 1..=22"));
            }
            Compression::Gzip { level } if !(1..=9).contains(&level) => {
                return Err(Error::config("compression", "gzip level must be 1..=9"));
            }
            _ => {}
        }
        self.log.validate()
    }
}

// ---- metadata file -------------------------------------------------------------------------

/// Name of the topic metadata file in the store directory.
pub(crate) const METADATA_FILE: &str = "topics";
const METADATA_HEADER: &str = "riverbed-topics v3";
/// Version 2: as version 3, with `max_message_bytes` spelled [`LEGACY_MAX_MESSAGE_BYTES`].
const METADATA_HEADER_V2: &str = "riverbed-topics v2";
/// Version 1: as version 2, without the compaction settings, which read as their defaults.
const METADATA_HEADER_V1: &str = "riverbed-topics v1";
/// The name of `max_message_bytes` before it took Kafka's (`max.message.bytes`: the largest
/// batch, not record): the key in version 1 and 2 files, and an alias
/// [`TopicConfig::apply`] accepts.
const LEGACY_MAX_MESSAGE_BYTES: &str = "max_record_bytes";
/// A setting's key as [`TopicConfig::entries`] spells it: the same, or the current name of an
/// old one ([`LEGACY_MAX_MESSAGE_BYTES`]).
pub(crate) fn canonical_key(key: &str) -> &str {
    if key == LEGACY_MAX_MESSAGE_BYTES {
        "max_message_bytes"
    } else {
        key
    }
}

/// The version this build writes.
const METADATA_VERSION: u8 = 3;
/// Settings version 1 files do not have.
const V2_KEYS: [&str; 4] = [
    "cleanup_policy",
    "min_cleanable_dirty_ratio",
    "min_compaction_lag_ms",
    "delete_retention_ms",
];

fn opt<T: fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "none".to_string(), |v| v.to_string())
}

/// One line describing a topic (see FORMAT.md, "Topic metadata").
fn encode_topic(name: &str, c: &TopicConfig) -> String {
    let l = &c.log;
    let flush = match l.flush {
        FlushPolicy::EveryAppend => "every".to_string(),
        FlushPolicy::Manual => "manual".to_string(),
        FlushPolicy::Interval { messages, interval } => {
            format!(
                "interval:{}:{}",
                opt(messages),
                opt(interval.map(|d| d.as_millis()))
            )
        }
    };
    let compression = match c.compression {
        Compression::None => "none".to_string(),
        Compression::Gzip { level } => format!("gzip:{level}"),
        Compression::Snappy => "snappy".to_string(),
        Compression::Lz4 => "lz4".to_string(),
        Compression::Zstd { level } => format!("zstd:{level}"),
    };
    format!(
        "topic {name} partitions={} segment_bytes={} segment_ms={} index_interval_bytes={} \
         index_max_bytes={} max_message_bytes={} flush={flush} retention_ms={} retention_bytes={} \
         recovery_checkpoint_bytes={} recovery={} compression={compression} timestamp_type={} \
         cleanup_policy={} min_cleanable_dirty_ratio={} min_compaction_lag_ms={} \
         delete_retention_ms={}",
        c.partitions,
        l.segment_bytes,
        opt(l.segment_ms),
        l.index_interval_bytes,
        l.index_max_bytes,
        l.max_message_bytes,
        opt(l.retention_ms),
        opt(l.retention_bytes),
        l.recovery_checkpoint_bytes,
        match l.recovery {
            RecoveryMode::TruncateTail => "truncate",
            RecoveryMode::Strict => "strict",
        },
        match l.timestamp_type {
            TimestampType::CreateTime => "create",
            TimestampType::LogAppendTime => "append",
        },
        match l.cleanup_policy {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        },
        l.min_cleanable_dirty_ratio,
        l.min_compaction_lag_ms,
        l.delete_retention_ms,
    )
}

/// Encodes the whole metadata file.
pub(crate) fn encode_metadata<'a>(
    topics: impl Iterator<Item = (&'a str, &'a TopicConfig)>,
) -> Vec<u8> {
    let mut text = format!("{METADATA_HEADER}\n");
    for (name, c) in topics {
        text.push_str(&encode_topic(name, c));
        text.push('\n');
    }
    small_file::seal_text(text)
}

/// Decodes the metadata file at `path` (its bytes are `bytes`).
pub(crate) fn decode_metadata(bytes: &[u8], path: &Path) -> Result<Vec<(String, TopicConfig)>> {
    let bad = |pos: usize, expected: &str, found: String| {
        corrupt(pos as u64, expected, found).in_file(path, 0)
    };
    let body = small_file::check_text(bytes).map_err(|e| e.in_file(path, 0))?;
    let mut lines = body.lines();
    let mut pos = 0usize;
    let version = match lines.next() {
        Some(h) if h == METADATA_HEADER => METADATA_VERSION,
        Some(h) if h == METADATA_HEADER_V2 => 2,
        Some(h) if h == METADATA_HEADER_V1 => 1,
        Some(h) if h.starts_with("riverbed-topics ") => {
            return Err(bad(
                0,
                METADATA_HEADER,
                format!("{h:?} (written by a newer riverbed?)"),
            ))
        }
        other => return Err(bad(0, METADATA_HEADER, format!("{other:?}"))),
    };
    pos += body.lines().next().map_or(0, |h| h.len() + 1);
    let mut out = Vec::new();
    for line in lines {
        let topic = decode_topic(line, version)
            .map_err(|what| bad(pos, "a topic line", format!("{line:?}: {what}")))?;
        out.push(topic);
        pos += line.len() + 1;
    }
    Ok(out)
}

fn decode_topic(line: &str, version: u8) -> std::result::Result<(String, TopicConfig), String> {
    let (name, c) = parse_topic(line, version)?;
    c.validate().map_err(|e| e.to_string())?;
    Ok((name, c))
}

/// A topic line of a version `version` file: its name and settings, not validated as a whole.
fn parse_topic(line: &str, version: u8) -> std::result::Result<(String, TopicConfig), String> {
    let mut words = line.split(' ');
    if words.next() != Some("topic") {
        return Err("does not start with \"topic\"".into());
    }
    let name = words.next().ok_or("no name")?.to_string();
    validate_topic_name(&name).map_err(|e| e.to_string())?;
    let mut c = TopicConfig::new(1);
    fn num<T: std::str::FromStr>(k: &str, v: &str) -> std::result::Result<T, String> {
        v.parse().map_err(|_| format!("{k}={v} is not a number"))
    }
    fn opt_num<T: std::str::FromStr>(k: &str, v: &str) -> std::result::Result<Option<T>, String> {
        if v == "none" {
            Ok(None)
        } else {
            num(k, v).map(Some)
        }
    }
    for w in words {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| format!("{w:?} is not key=value"))?;
        if (version == 1 && V2_KEYS.contains(&k)) || (version <= 2 && k == "max_message_bytes") {
            return Err(format!("unknown setting {k:?} in a version {version} file"));
        }
        let k = if version <= 2 && k == LEGACY_MAX_MESSAGE_BYTES {
            "max_message_bytes"
        } else {
            k
        };
        match k {
            "cleanup_policy" => {
                c.log.cleanup_policy = match v {
                    "delete" => CleanupPolicy::Delete,
                    "compact" => CleanupPolicy::Compact,
                    "compact,delete" => CleanupPolicy::CompactDelete,
                    _ => return Err(format!("unknown cleanup policy {v:?}")),
                }
            }
            "min_cleanable_dirty_ratio" => c.log.min_cleanable_dirty_ratio = num(k, v)?,
            "min_compaction_lag_ms" => c.log.min_compaction_lag_ms = num(k, v)?,
            "delete_retention_ms" => c.log.delete_retention_ms = num(k, v)?,
            "partitions" => c.partitions = num(k, v)?,
            "segment_bytes" => c.log.segment_bytes = num(k, v)?,
            "segment_ms" => c.log.segment_ms = opt_num(k, v)?,
            "index_interval_bytes" => c.log.index_interval_bytes = num(k, v)?,
            "index_max_bytes" => c.log.index_max_bytes = num(k, v)?,
            "max_message_bytes" => c.log.max_message_bytes = num(k, v)?,
            "retention_ms" => c.log.retention_ms = opt_num(k, v)?,
            "retention_bytes" => c.log.retention_bytes = opt_num(k, v)?,
            "recovery_checkpoint_bytes" => c.log.recovery_checkpoint_bytes = num(k, v)?,
            "recovery" => {
                c.log.recovery = match v {
                    "truncate" => RecoveryMode::TruncateTail,
                    "strict" => RecoveryMode::Strict,
                    _ => return Err(format!("unknown recovery mode {v:?}")),
                }
            }
            "timestamp_type" => {
                c.log.timestamp_type = match v {
                    "create" => TimestampType::CreateTime,
                    "append" => TimestampType::LogAppendTime,
                    _ => return Err(format!("unknown timestamp type {v:?}")),
                }
            }
            "compression" => {
                c.compression = match v.split_once(':') {
                    None if v == "none" => Compression::None,
                    None if v == "snappy" => Compression::Snappy,
                    None if v == "lz4" => Compression::Lz4,
                    Some(("gzip", level)) => Compression::Gzip {
                        level: num(k, level)?,
                    },
                    Some(("zstd", level)) => Compression::Zstd {
                        level: num(k, level)?,
                    },
                    _ => return Err(format!("unknown compression {v:?}")),
                }
            }
            "flush" => {
                c.log.flush = match v {
                    "every" => FlushPolicy::EveryAppend,
                    "manual" => FlushPolicy::Manual,
                    _ => {
                        let mut parts = v.split(':');
                        match (parts.next(), parts.next(), parts.next(), parts.next()) {
                            (Some("interval"), Some(m), Some(ms), None) => FlushPolicy::Interval {
                                messages: opt_num(k, m)?,
                                interval: opt_num::<u64>(k, ms)?.map(Duration::from_millis),
                            },
                            _ => return Err(format!("unknown flush policy {v:?}")),
                        }
                    }
                }
            }
            _ => return Err(format!("unknown setting {k:?}")),
        }
    }
    Ok((name, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_as_kafka_does() {
        for ok in [
            "payments",
            "a.b_c-D9",
            &"x".repeat(249),
            "__offsets",
            "__consumer_offsets_",
            "__transaction_state.v2",
            "_",
            "__",
        ] {
            validate_topic_name(ok).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "ä",
            "../etc",
            &"x".repeat(250),
            "__consumer_offsets",
            "__transaction_state",
        ] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn metadata_roundtrips_and_detects_damage() {
        let a = TopicConfig::new(4)
            .flush(FlushPolicy::Interval {
                messages: Some(10),
                interval: None,
            })
            .compression(Compression::Zstd { level: 5 })
            .retention_bytes(Some(1 << 30))
            .timestamp_type(TimestampType::LogAppendTime);
        let mut b = TopicConfig::new(1)
            .flush(FlushPolicy::EveryAppend)
            .retention_ms(None)
            .cleanup_policy(CleanupPolicy::CompactDelete);
        b.log.min_cleanable_dirty_ratio = 0.125;
        b.log.min_compaction_lag_ms = 7;
        b.log.delete_retention_ms = 9;
        let bytes = encode_metadata([("a", &a), ("b", &b)].into_iter());
        let p = Path::new("topics");
        let back = decode_metadata(&bytes, p).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].0, "a");
        assert_eq!(encode_topic("a", &back[0].1), encode_topic("a", &a));
        assert_eq!(encode_topic("b", &back[1].1), encode_topic("b", &b));
        let mut bad = bytes.clone();
        bad[30] ^= 1;
        assert!(decode_metadata(&bad, p).unwrap_err().is_corruption());
        assert!(decode_metadata(b"", p).is_err());
        assert!(decode_metadata(&bytes[..bytes.len() - 3], p).is_err());
    }

    /// Every compression setting, each of Kafka's codecs, survives the topics file; levels out
    /// of range are refused by validation.
    #[test]
    fn every_compression_roundtrips() {
        let p = Path::new("topics");
        for c in [
            Compression::None,
            Compression::Gzip { level: 9 },
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd { level: 3 },
        ] {
            let t = TopicConfig::new(1).compression(c);
            t.validate().unwrap();
            let back = decode_metadata(&encode_metadata([("t", &t)].into_iter()), p).unwrap();
            assert_eq!(back[0].1.get_compression(), c);
        }
        for bad in [
            Compression::Gzip { level: 0 },
            Compression::Gzip { level: 10 },
        ] {
            assert!(TopicConfig::new(1).compression(bad).validate().is_err());
        }
    }

    fn with_crc(body: &str) -> Vec<u8> {
        let sum = crate::record::crc::checksum(body.as_bytes());
        format!("{body}crc {sum:08x}\n").into_bytes()
    }

    /// A file written before compaction existed still opens, its topics with the defaults.
    #[test]
    fn version_1_metadata_is_read_with_default_compaction_settings() {
        let line = "topic old partitions=2 segment_bytes=1048576 segment_ms=none \
                    index_interval_bytes=4096 index_max_bytes=10485760 max_record_bytes=65536 \
                    flush=manual retention_ms=none retention_bytes=none \
                    recovery_checkpoint_bytes=67108864 recovery=truncate compression=none \
                    timestamp_type=create";
        let p = Path::new("topics");
        let back = decode_metadata(&with_crc(&format!("riverbed-topics v1\n{line}\n")), p).unwrap();
        assert_eq!(back[0].0, "old");
        let l = &back[0].1.log;
        assert_eq!(l.cleanup_policy, CleanupPolicy::Delete);
        assert_eq!(l.min_cleanable_dirty_ratio, 0.5);
        assert_eq!(l.delete_retention_ms, 24 * 60 * 60 * 1000);
        // Version 2 keys have no place in a version 1 file.
        let bad = format!("riverbed-topics v1\n{line} cleanup_policy=compact\n");
        assert!(decode_metadata(&with_crc(&bad), p)
            .unwrap_err()
            .is_corruption());
        assert!(decode_metadata(&with_crc(&format!("riverbed-topics v4\n{line}\n")), p).is_err());
        assert_eq!(back[0].1.log.max_message_bytes, 65536);
    }

    /// issue 15: the largest batch is `max_message_bytes` (Kafka's `max.message.bytes`). Files
    /// are written as version 3 with the new key, so that a build that knows only version 2
    /// refuses them as "written by a newer riverbed?" instead of calling an unknown key
    /// corruption; version 2 files, which spell it `max_record_bytes`, still read.
    #[test]
    fn max_message_bytes_is_written_as_version_3_and_read_from_version_2() {
        let p = Path::new("topics");
        let c = TopicConfig::new(2).max_message_bytes(4096);
        let bytes = encode_metadata([("t", &c)].into_iter());
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("riverbed-topics v3\n"), "{text}");
        assert!(text.contains(" max_message_bytes=4096 "), "{text}");
        assert!(!text.contains("max_record_bytes"), "{text}");
        assert_eq!(
            decode_metadata(&bytes, p).unwrap()[0]
                .1
                .log
                .max_message_bytes,
            4096
        );

        // The same topic as version 2 wrote it.
        let v2 = text
            .replace("riverbed-topics v3", "riverbed-topics v2")
            .replace("max_message_bytes=", "max_record_bytes=");
        let v2_body = &v2[..v2.rfind("crc ").unwrap()];
        let back = decode_metadata(&with_crc(v2_body), p).unwrap();
        assert_eq!(back[0].1.log.max_message_bytes, 4096);
        assert_eq!(back[0].1.entries(), c.entries());
        // Each version has one spelling.
        let mixed = v2_body.replace("max_record_bytes=", "max_message_bytes=");
        let e = decode_metadata(&with_crc(&mixed), p).unwrap_err();
        assert!(
            e.is_corruption() && e.to_string().contains("version 2"),
            "{e}"
        );
        let v3_body = &text[..text.rfind("crc ").unwrap()];
        let old_key = v3_body.replace("max_message_bytes=", "max_record_bytes=");
        assert!(decode_metadata(&with_crc(&old_key), p)
            .unwrap_err()
            .is_corruption());

        // `apply` (and so the CLI's `--config` and `rebuild-metadata`) takes the old key too.
        let mut c = TopicConfig::new(1);
        c.apply(&[("max_record_bytes", "2048")]).unwrap();
        assert_eq!(c.get_log().get_max_message_bytes(), 2048);
        assert!(c
            .entries()
            .iter()
            .any(|(k, v)| k == "max_message_bytes" && v == "2048"));
    }
}

/// This file's bytes against those the code before `small_file` wrote (captured from it, same
/// inputs: the shared helper must not change a byte on disk), and mangled (bad CRC, truncated,
/// another version with a valid CRC) with the outcome this file has always had.
#[cfg(test)]
mod small_file_bytes {
    #[allow(unused_imports)]
    use std::path::Path;

    #[allow(unused_imports)]
    use crate::record::crc::checksum;
    #[allow(unused_imports)]
    use crate::small_file::damage::{corruption_at, hex, mangled_binary, mangled_text};

    #[test]
    fn topics_framing_and_damage_are_corruption_naming_the_file() {
        use crate::topic::{decode_metadata, encode_metadata, TopicConfig};
        let config = TopicConfig::new(2);
        let good = encode_metadata([("events", &config)].into_iter());
        // The last line is the CRC of every byte before it (FORMAT.md 8.1).
        let text = std::str::from_utf8(&good).unwrap();
        let crc_at = text.trim_end_matches('\n').rfind('\n').unwrap() + 1;
        assert_eq!(
            &text[crc_at..],
            format!("crc {:08x}\n", checksum(&good[..crc_at]))
        );
        let path = Path::new("/store/topics");
        assert_eq!(decode_metadata(&good, path).unwrap().len(), 1);
        for (what, bytes) in mangled_text(&good, "riverbed-topics v9") {
            let e = decode_metadata(&bytes, path).expect_err(what);
            assert_eq!(corruption_at(&e).0, Some(path), "{what}: {e}");
            if what == "wrong version" {
                assert!(e.to_string().contains("newer riverbed"), "{e}");
            }
        }
    }
}
