//! Configuration of a partition log. Every field documents its default, which follows Kafka's
//! topic configuration of the same name unless said otherwise.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::record::TimestampType;
use crate::segment::file_header::FILE_HEADER_LEN;

/// When appended data is forced to disk (fsync).
///
/// Data that was appended but not yet flushed survives a crash of the process (it is in the
/// operating system's page cache) but not a crash of the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlushPolicy {
    /// `append` returns only after the batch is on disk. Concurrent appenders share one fsync
    /// (group commit).
    EveryAppend,
    /// Flush when `messages` records were appended since the last flush, or `interval` has passed
    /// since it (checked by a background thread), whichever comes first. `None` disables a
    /// trigger. Kafka's `flush.messages` / `flush.ms`.
    Interval {
        /// Records between flushes.
        messages: Option<u64>,
        /// Time between flushes.
        interval: Option<Duration>,
    },
    /// Only [`Log::flush`](crate::Log::flush) and closing flush. Kafka's default.
    Manual,
}

/// What a log does when its flush thread or an fsync fails is fixed (it poisons itself); what it
/// tolerates at open after a crash is this.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryMode {
    /// Cut the log at the first invalid batch after the recovery point (a torn write) and open.
    /// What was cut is described in the [`RecoveryReport`](crate::RecoveryReport). Default.
    #[default]
    TruncateTail,
    /// Refuse to open (with a corruption error) if anything would be cut.
    Strict,
}

/// What happens to old records of a log (Kafka's `cleanup.policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// Sealed segments past `retention_ms` / `retention_bytes` are deleted. Default.
    #[default]
    Delete,
    /// The log is compacted: of the records with the same key, at least the last one is kept
    /// (see [`Log::compact`](crate::Log::compact)); retention settings are ignored. Every record
    /// must have a key.
    Compact,
    /// Both: compacted, and segments past the retention limits are deleted as well
    /// (`compact,delete`).
    CompactDelete,
}

impl CleanupPolicy {
    /// Whether the log is compacted (and so refuses records without a key).
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }

    /// Whether retention deletes old segments.
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }
}

/// Configuration of one partition log.
///
/// Built from `LogConfig::default()` with one setter per setting, e.g.
/// `LogConfig::default().segment_bytes(..)`, and read with
/// the `get_` getters (see ARCHITECTURE.md, "Configuration style").
#[derive(Clone, Debug)]
pub struct LogConfig {
    pub(crate) segment_bytes: u64,
    pub(crate) segment_ms: Option<u64>,
    pub(crate) index_interval_bytes: u32,
    pub(crate) index_max_bytes: u32,
    pub(crate) max_message_bytes: usize,
    pub(crate) flush: FlushPolicy,
    pub(crate) retention_ms: Option<u64>,
    pub(crate) retention_bytes: Option<u64>,
    pub(crate) recovery_checkpoint_bytes: u64,
    pub(crate) recovery: RecoveryMode,
    pub(crate) timestamp_type: TimestampType,
    pub(crate) cleanup_policy: CleanupPolicy,
    pub(crate) min_cleanable_dirty_ratio: f64,
    pub(crate) min_compaction_lag_ms: u64,
    pub(crate) delete_retention_ms: u64,
}

impl LogConfig {
    /// Size at which the active segment is sealed and a new one started. At most 4 GiB - 1.
    /// Default: 1 GiB (`segment.bytes`).
    #[must_use = "a setter returns the changed configuration"]
    pub fn segment_bytes(mut self, segment_bytes: u64) -> LogConfig {
        self.segment_bytes = segment_bytes;
        self
    }

    /// Age after which the active segment is rolled even if not full, measured from its first
    /// batch's timestamp to the newest batch's, and checked when a batch is appended.
    /// Default: 7 days (`segment.ms`). The log cleaner never touches the active segment, so in a
    /// compacted log this bounds how long superseded records stay in a log that keeps receiving
    /// records.
    #[must_use = "a setter returns the changed configuration"]
    pub fn segment_ms(mut self, segment_ms: Option<u64>) -> LogConfig {
        self.segment_ms = segment_ms;
        self
    }

    /// Bytes between offset-index entries. Default: 4096 (`index.interval.bytes`).
    #[must_use = "a setter returns the changed configuration"]
    pub fn index_interval_bytes(mut self, index_interval_bytes: u32) -> LogConfig {
        self.index_interval_bytes = index_interval_bytes;
        self
    }

    /// Maximum size of a segment's offset index; the segment rolls when it is full.
    /// Default: 10 MiB (`segment.index.bytes`).
    #[must_use = "a setter returns the changed configuration"]
    pub fn index_max_bytes(mut self, index_max_bytes: u32) -> LogConfig {
        self.index_max_bytes = index_max_bytes;
        self
    }

    /// Largest accepted record batch, in bytes as encoded (after compression).
    /// Default: 1 MiB (`max.message.bytes`).
    #[must_use = "a setter returns the changed configuration"]
    pub fn max_message_bytes(mut self, max_message_bytes: usize) -> LogConfig {
        self.max_message_bytes = max_message_bytes;
        self
    }

    /// When appends are fsynced. Default: [`FlushPolicy::Manual`], as in Kafka.
    #[must_use = "a setter returns the changed configuration"]
    pub fn flush(mut self, flush: FlushPolicy) -> LogConfig {
        self.flush = flush;
        self
    }

    /// Sealed segments whose newest record is older than this are deleted.
    /// Default: 7 days (`retention.ms`); `None` keeps them forever.
    #[must_use = "a setter returns the changed configuration"]
    pub fn retention_ms(mut self, retention_ms: Option<u64>) -> LogConfig {
        self.retention_ms = retention_ms;
        self
    }

    /// Oldest sealed segments are deleted while the log is larger than this.
    /// Default: `None`, no limit (`retention.bytes`).
    #[must_use = "a setter returns the changed configuration"]
    pub fn retention_bytes(mut self, retention_bytes: Option<u64>) -> LogConfig {
        self.retention_bytes = retention_bytes;
        self
    }

    /// How much synced data may accumulate past the recovery point before the point is moved
    /// (which costs two fsyncs). Recovery after a crash scans at most about this much plus the
    /// unflushed tail. Default: 64 MiB.
    #[must_use = "a setter returns the changed configuration"]
    pub fn recovery_checkpoint_bytes(mut self, recovery_checkpoint_bytes: u64) -> LogConfig {
        self.recovery_checkpoint_bytes = recovery_checkpoint_bytes;
        self
    }

    /// What to do with a damaged tail at open. Default: [`RecoveryMode::TruncateTail`].
    #[must_use = "a setter returns the changed configuration"]
    pub fn recovery(mut self, recovery: RecoveryMode) -> LogConfig {
        self.recovery = recovery;
        self
    }

    /// Whether record timestamps are the producer's or the log's append time.
    /// Default: [`TimestampType::CreateTime`].
    #[must_use = "a setter returns the changed configuration"]
    pub fn timestamp_type(mut self, timestamp_type: TimestampType) -> LogConfig {
        self.timestamp_type = timestamp_type;
        self
    }

    /// Delete old segments, compact the log, or both. Default: [`CleanupPolicy::Delete`]
    /// (`cleanup.policy`).
    #[must_use = "a setter returns the changed configuration"]
    pub fn cleanup_policy(mut self, cleanup_policy: CleanupPolicy) -> LogConfig {
        self.cleanup_policy = cleanup_policy;
        self
    }

    /// The background cleaner compacts a log only once the bytes written since its last
    /// compaction make up at least this share of the cleanable log (0.0 to 1.0).
    /// Default: 0.5 (`min.cleanable.dirty.ratio`).
    #[must_use = "a setter returns the changed configuration"]
    pub fn min_cleanable_dirty_ratio(mut self, min_cleanable_dirty_ratio: f64) -> LogConfig {
        self.min_cleanable_dirty_ratio = min_cleanable_dirty_ratio;
        self
    }

    /// Records stay uncompacted for at least this long: a sealed segment whose newest record is
    /// younger is not cleaned, nor anything after it. Default: 0 (`min.compaction.lag.ms`).
    #[must_use = "a setter returns the changed configuration"]
    pub fn min_compaction_lag_ms(mut self, min_compaction_lag_ms: u64) -> LogConfig {
        self.min_compaction_lag_ms = min_compaction_lag_ms;
        self
    }

    /// How long a tombstone (a record with a null value) survives compaction: the first
    /// compaction that keeps it stamps its batch with a delete horizon of that compaction's time
    /// plus this, and it is removed by the first compaction at or after the horizon, so that a
    /// consumer reading the log from the start within this time of the cleaning sees the delete
    /// (Kafka's rule since KIP-534; the tombstone's own timestamp plays no part, so replayed or
    /// mirrored deletes with old timestamps are kept too).
    /// Default: 1 day (`delete.retention.ms`).
    #[must_use = "a setter returns the changed configuration"]
    pub fn delete_retention_ms(mut self, delete_retention_ms: u64) -> LogConfig {
        self.delete_retention_ms = delete_retention_ms;
        self
    }

    /// The [`segment_bytes`](Self::segment_bytes) setting.
    pub fn get_segment_bytes(&self) -> u64 {
        self.segment_bytes
    }

    /// The [`segment_ms`](Self::segment_ms) setting.
    pub fn get_segment_ms(&self) -> Option<u64> {
        self.segment_ms
    }

    /// The [`index_interval_bytes`](Self::index_interval_bytes) setting.
    pub fn get_index_interval_bytes(&self) -> u32 {
        self.index_interval_bytes
    }

    /// The [`index_max_bytes`](Self::index_max_bytes) setting.
    pub fn get_index_max_bytes(&self) -> u32 {
        self.index_max_bytes
    }

    /// The [`max_message_bytes`](Self::max_message_bytes) setting.
    pub fn get_max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// The [`flush`](Self::flush) setting.
    pub fn get_flush(&self) -> FlushPolicy {
        self.flush
    }

    /// The [`retention_ms`](Self::retention_ms) setting.
    pub fn get_retention_ms(&self) -> Option<u64> {
        self.retention_ms
    }

    /// The [`retention_bytes`](Self::retention_bytes) setting.
    pub fn get_retention_bytes(&self) -> Option<u64> {
        self.retention_bytes
    }

    /// The [`recovery_checkpoint_bytes`](Self::recovery_checkpoint_bytes) setting.
    pub fn get_recovery_checkpoint_bytes(&self) -> u64 {
        self.recovery_checkpoint_bytes
    }

    /// The [`recovery`](Self::recovery) setting.
    pub fn get_recovery(&self) -> RecoveryMode {
        self.recovery
    }

    /// The [`timestamp_type`](Self::timestamp_type) setting.
    pub fn get_timestamp_type(&self) -> TimestampType {
        self.timestamp_type
    }

    /// The [`cleanup_policy`](Self::cleanup_policy) setting.
    pub fn get_cleanup_policy(&self) -> CleanupPolicy {
        self.cleanup_policy
    }

    /// The [`min_cleanable_dirty_ratio`](Self::min_cleanable_dirty_ratio) setting.
    pub fn get_min_cleanable_dirty_ratio(&self) -> f64 {
        self.min_cleanable_dirty_ratio
    }

    /// The [`min_compaction_lag_ms`](Self::min_compaction_lag_ms) setting.
    pub fn get_min_compaction_lag_ms(&self) -> u64 {
        self.min_compaction_lag_ms
    }

    /// The [`delete_retention_ms`](Self::delete_retention_ms) setting.
    pub fn get_delete_retention_ms(&self) -> u64 {
        self.delete_retention_ms
    }
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        const WEEK_MS: u64 = 7 * 24 * 60 * 60 * 1000;
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: Some(WEEK_MS),
            index_interval_bytes: 4096,
            index_max_bytes: 10 << 20,
            max_message_bytes: 1 << 20,
            flush: FlushPolicy::Manual,
            retention_ms: Some(WEEK_MS),
            retention_bytes: None,
            recovery_checkpoint_bytes: 64 << 20,
            recovery: RecoveryMode::TruncateTail,
            timestamp_type: TimestampType::CreateTime,
            cleanup_policy: CleanupPolicy::Delete,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            delete_retention_ms: 24 * 60 * 60 * 1000,
        }
    }
}

impl LogConfig {
    /// Checks every field; [`Log::open`](crate::Log::open) calls this.
    ///
    /// # Errors
    /// [`InvalidConfig`](crate::ErrorKind::InvalidConfig) naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        let min_segment = (FILE_HEADER_LEN + 64) as u64;
        if self.segment_bytes < min_segment || self.segment_bytes > u64::from(u32::MAX) {
            return Err(Error::config(
                "segment_bytes",
                format!("must be between {min_segment} and {} bytes", u32::MAX),
            ));
        }
        if self.index_interval_bytes == 0 {
            return Err(Error::config("index_interval_bytes", "must be at least 1"));
        }
        if (self.index_max_bytes as usize) < FILE_HEADER_LEN + 4 * 16 {
            return Err(Error::config(
                "index_max_bytes",
                "must leave room for at least 4 entries",
            ));
        }
        if self.max_message_bytes < 64 {
            return Err(Error::config("max_message_bytes", "must be at least 64"));
        }
        let room = self.segment_bytes - FILE_HEADER_LEN as u64;
        if self.max_message_bytes as u64 > room {
            // The two settings conflict: name both, and what would fit either way (a user who
            // set only segment_bytes meets max_message_bytes' default here).
            return Err(Error::config(
                "segment_bytes",
                format!(
                    "segment_bytes={} leaves room for batches of at most {room} bytes (after the \
                     {FILE_HEADER_LEN}-byte file header), but max_message_bytes is {} (default {}): \
                     set max_message_bytes to at most {room}, or segment_bytes to at least {}",
                    self.segment_bytes,
                    self.max_message_bytes,
                    LogConfig::default().max_message_bytes,
                    self.max_message_bytes as u64 + FILE_HEADER_LEN as u64,
                ),
            ));
        }
        if let FlushPolicy::Interval { messages, interval } = self.flush {
            if messages == Some(0) || interval.is_some_and(|d| d < Duration::from_millis(1)) {
                return Err(Error::config(
                    "flush",
                    "intervals must be at least 1 message and 1 ms (use EveryAppend for less)",
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return Err(Error::config(
                "min_cleanable_dirty_ratio",
                "must be between 0.0 and 1.0",
            ));
        }
        for (field, v) in [
            ("segment_ms", self.segment_ms),
            ("retention_ms", self.retention_ms),
            ("min_compaction_lag_ms", Some(self.min_compaction_lag_ms)),
            ("delete_retention_ms", Some(self.delete_retention_ms)),
        ] {
            if v.is_some_and(|ms| ms > i64::MAX as u64) {
                return Err(Error::config(
                    field,
                    "must be at most i64::MAX ms (use None for no limit)",
                ));
            }
        }
        Ok(())
    }

    /// Index entries a segment's index files have room for.
    pub(crate) fn index_entries(&self) -> usize {
        let by_interval = self.segment_bytes / u64::from(self.index_interval_bytes) + 2;
        let by_max = (self.index_max_bytes as usize - FILE_HEADER_LEN) / 8;
        (by_interval as usize).min(by_max).max(4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_bad_values_are_named() {
        LogConfig::default().validate().unwrap();
        let bad = LogConfig {
            segment_bytes: 10,
            ..LogConfig::default()
        };
        let e = bad.validate().unwrap_err();
        assert!(e.to_string().contains("segment_bytes"), "{e}");
        let bad = LogConfig {
            segment_bytes: 4096,
            max_message_bytes: 1 << 20,
            ..LogConfig::default()
        };
        let e = bad.validate().unwrap_err().to_string();
        // Both settings named, and what would fit.
        assert!(
            e.contains("segment_bytes=4096")
                && e.contains("max_message_bytes is 1048576")
                && e.contains("at most 4072"),
            "{e}"
        );
    }
}
