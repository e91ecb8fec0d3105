//! Committed offsets: an internal log (`__consumer_offsets-0`) of commit records, as in Kafka.
//!
//! Each commit is one record batch (one CRC, appended atomically, fsynced before the commit
//! returns) of records keyed by (group, topic, partition); the latest record per key wins, and a
//! null value deletes the key. The whole state is kept in memory and rebuilt by replaying the log
//! at open. When the log grows past a few times the size of the live state, a snapshot of the
//! state is appended and the segments before it are deleted, so replay stays short.
//!
//! A transactional producer's offsets (`send_offsets`) are a transactional batch of the same
//! records: they stay pending, invisible to `committed`, until the transaction's commit marker
//! lands here, and are dropped at its abort marker.
//!
//! ```text
//! // Key:   { version u8 (1) | group_len u16 | group | topic_len u16 | topic | partition u32 }
//! // Value: { version u8 (1) | offset u64 | commit_timestamp i64 | metadata_len u32 | metadata }
//! ```

use std::collections::HashMap;
use std::path::Path;

use parking_lot::Mutex;

use crate::config::{FlushPolicy, LogConfig};
use crate::error::{corrupt, Error, Result};
use crate::log::Log;
use crate::record::{BatchBuilder, Compression, ControlType, ProducerFields};
use crate::topic::TopicPartition;

/// The directory of the committed offsets log in a store.
pub(crate) const OFFSETS_DIR: &str = "__consumer_offsets-0";
/// The name under which transactions list the committed offsets log among their partitions.
pub(crate) const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// A committed position: the next offset to consume, and free-form metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    /// The next offset the group will consume from the partition.
    pub offset: u64,
    /// Whatever the committer attached.
    pub metadata: String,
}

impl OffsetAndMetadata {
    /// An offset without metadata.
    pub fn new(offset: u64) -> OffsetAndMetadata {
        OffsetAndMetadata {
            offset,
            metadata: String::new(),
        }
    }
}

type Key = (String, TopicPartition);

type Entry = (Key, Option<OffsetAndMetadata>);

pub(crate) struct OffsetStore {
    log: Log,
    state: Mutex<HashMap<Key, OffsetAndMetadata>>,
    /// Offsets of open transactions by producer id. Taken inside `state`.
    pending: Mutex<HashMap<i64, Vec<Entry>>>,
}

fn apply(state: &mut HashMap<Key, OffsetAndMetadata>, entries: Vec<Entry>) {
    for (key, v) in entries {
        match v {
            Some(v) => {
                state.insert(key, v);
            }
            None => {
                state.remove(&key);
            }
        }
    }
}

const SNAPSHOT_MIN_BYTES: u64 = 16 << 20;
const BATCH_LIMIT: usize = 512 << 10;

fn encode_key(group: &str, tp: &TopicPartition) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + group.len() + tp.topic.len());
    k.push(1);
    k.extend_from_slice(&(group.len() as u16).to_le_bytes());
    k.extend_from_slice(group.as_bytes());
    k.extend_from_slice(&(tp.topic.len() as u16).to_le_bytes());
    k.extend_from_slice(tp.topic.as_bytes());
    k.extend_from_slice(&tp.partition.to_le_bytes());
    k
}

fn encode_value(v: &OffsetAndMetadata, now: i64) -> Vec<u8> {
    let mut b = Vec::with_capacity(21 + v.metadata.len());
    b.push(1);
    b.extend_from_slice(&v.offset.to_le_bytes());
    b.extend_from_slice(&now.to_le_bytes());
    b.extend_from_slice(&(v.metadata.len() as u32).to_le_bytes());
    b.extend_from_slice(v.metadata.as_bytes());
    b
}

/// Reads `n` bytes at `*pos`.
fn take<'a>(b: &'a [u8], pos: &mut usize, n: usize, what: &str) -> Result<&'a [u8]> {
    let s = b.get(*pos..*pos + n).ok_or_else(|| {
        corrupt(
            *pos as u64,
            format!("{n} bytes of {what}"),
            "the end of the record",
        )
    })?;
    *pos += n;
    Ok(s)
}

pub(crate) fn decode_key(b: &[u8]) -> Result<Key> {
    let mut pos = 0;
    let version = take(b, &mut pos, 1, "version")?[0];
    if version != 1 {
        return Err(corrupt(0, "offset key version 1", format!("{version}")));
    }
    let mut string = |what: &str| -> Result<String> {
        let len = take(b, &mut pos, 2, what)?;
        let len = u16::from_le_bytes([len[0], len[1]]) as usize;
        let s = take(b, &mut pos, len, what)?;
        String::from_utf8(s.to_vec())
            .map_err(|_| corrupt(0, format!("UTF-8 {what}"), "invalid UTF-8"))
    };
    let group = string("group")?;
    let topic = string("topic")?;
    let p = take(b, &mut pos, 4, "partition")?;
    Ok((
        group,
        TopicPartition::new(topic, u32::from_le_bytes([p[0], p[1], p[2], p[3]])),
    ))
}

pub(crate) fn decode_value(b: &[u8]) -> Result<OffsetAndMetadata> {
    let mut pos = 0;
    let version = take(b, &mut pos, 1, "version")?[0];
    if version != 1 {
        return Err(corrupt(0, "offset value version 1", format!("{version}")));
    }
    let mut u64_at = |what| -> Result<u64> {
        let s = take(b, &mut pos, 8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    };
    let offset = u64_at("offset")?;
    let _commit_time = u64_at("commit timestamp")?;
    let len = take(b, &mut pos, 4, "metadata length")?;
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let meta = take(b, &mut pos, len, "metadata")?;
    let metadata = String::from_utf8(meta.to_vec())
        .map_err(|_| corrupt(0, "UTF-8 metadata", "invalid UTF-8"))?;
    Ok(OffsetAndMetadata { offset, metadata })
}

impl OffsetStore {
    /// Closes the offsets log ([`Store::close`](crate::Store::close)).
    pub(crate) fn close(&self) -> Result<()> {
        self.log.close_shared()
    }

    /// Opens the offsets log in `dir` and replays it.
    pub(crate) fn open(dir: &Path) -> Result<OffsetStore> {
        let config = LogConfig {
            segment_bytes: 64 << 20,
            flush: FlushPolicy::EveryAppend,
            retention_ms: None,
            retention_bytes: None,
            ..LogConfig::default()
        };
        let log = Log::open(dir, config)?;
        let mut state = HashMap::new();
        let mut pending: HashMap<i64, Vec<Entry>> = HashMap::new();
        let mut next = log.log_start_offset();
        while next < log.high_watermark() {
            let batches = log.read(next, 1 << 20)?;
            let Some(last) = batches.last() else { break };
            let after = last.last_offset() + 1;
            for batch in &batches {
                let batch = batch.as_batch();
                let pid = batch.producer().producer_id;
                match batch.control_type()? {
                    Some(ControlType::Commit) => {
                        apply(&mut state, pending.remove(&pid).unwrap_or_default());
                        continue;
                    }
                    Some(ControlType::Abort) => {
                        pending.remove(&pid);
                        continue;
                    }
                    None => {}
                }
                let mut entries = Vec::with_capacity(batch.record_count() as usize);
                let records = batch.records()?;
                for r in records.iter() {
                    let r = r?;
                    let Some(key) = r.key() else { continue };
                    let at = |e: Error| e.in_file(dir, 0);
                    let key = decode_key(key).map_err(at)?;
                    let value = r.value().map(decode_value).transpose().map_err(at)?;
                    entries.push((key, value));
                }
                if batch.is_transactional() {
                    pending.entry(pid).or_default().extend(entries);
                } else {
                    apply(&mut state, entries);
                }
            }
            next = after;
        }
        Ok(OffsetStore {
            log,
            state: Mutex::new(state),
            pending: Mutex::new(pending),
        })
    }

    /// The offsets log (for transaction recovery).
    pub(crate) fn log(&self) -> &Log {
        &self.log
    }

    /// Appends `offsets` for `group` as part of `producer`'s open transaction: durable per the
    /// log's policy, visible only once [`end_transaction`](Self::end_transaction) commits.
    pub(crate) fn commit_transactional(
        &self,
        group: &str,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
        producer: ProducerFields,
    ) -> Result<u32> {
        let _state = self.state.lock();
        let now = crate::clock::now_ms();
        let mut b = BatchBuilder::new(Compression::None);
        for (tp, v) in offsets {
            b.append(
                now,
                Some(&encode_key(group, tp)),
                Some(&encode_value(v, now)),
                &[],
            );
        }
        b.producer(producer).transactional(true);
        if b.size_in_bytes() > self.log.config().max_message_bytes {
            return Err(Error::invalid(format!(
                "offsets for {} partitions are too large for one atomic batch",
                offsets.len()
            )));
        }
        self.log.append(&b.build()?)?;
        self.pending
            .lock()
            .entry(producer.producer_id)
            .or_default()
            .extend(
                offsets
                    .iter()
                    .map(|(tp, v)| ((group.to_string(), tp.clone()), Some(v.clone()))),
            );
        Ok(offsets.len() as u32)
    }

    /// Ends `producer`'s transaction here: writes the marker (if it has offsets here) and makes
    /// its offsets visible (commit) or drops them (abort).
    /// Returns the marker's offset (`None`: the producer wrote no offsets here).
    pub(crate) fn end_transaction(
        &self,
        producer: ProducerFields,
        kind: ControlType,
    ) -> Result<Option<u64>> {
        let mut state = self.state.lock();
        let marker = self.log.append_marker(producer, kind)?;
        let entries = self
            .pending
            .lock()
            .remove(&producer.producer_id)
            .unwrap_or_default();
        if kind == ControlType::Commit {
            apply(&mut state, entries);
        }
        Ok(marker)
    }

    /// Durably records `offsets` for `group` (`None` deletes an entry), then makes them visible.
    pub(crate) fn commit(
        &self,
        group: &str,
        offsets: &[(TopicPartition, Option<OffsetAndMetadata>)],
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut state = self.state.lock();
        let now = crate::clock::now_ms();
        let mut b = BatchBuilder::new(Compression::None);
        for (tp, v) in offsets {
            let value = v.as_ref().map(|v| encode_value(v, now));
            b.append(now, Some(&encode_key(group, tp)), value.as_deref(), &[]);
        }
        if b.size_in_bytes() > self.log.config().max_message_bytes {
            return Err(Error::invalid(format!(
                "a commit of {} partitions is too large for one atomic batch",
                offsets.len()
            )));
        }
        self.log.append(&b.build()?)?;
        let entries = offsets
            .iter()
            .map(|(tp, v)| ((group.to_string(), tp.clone()), v.clone()))
            .collect();
        apply(&mut state, entries);
        // The commit is durable now: a snapshot that finds no room is only put off (it is a
        // shortcut for replay; what it appended so far repeats live values, and nothing was
        // deleted), and must not make a durable commit look failed.
        match self.maybe_snapshot(&state) {
            Err(e) if e.is_no_space() => {
                tracing::warn!(
                    target: "riverbed::log",
                    error = %e,
                    "no space to snapshot the committed offsets; put off"
                );
                Ok(())
            }
            other => other,
        }
    }

    /// Deletes every group's committed offsets for `topic`.
    pub(crate) fn delete_topic(&self, topic: &str) -> Result<()> {
        let doomed: Vec<(String, TopicPartition)> = self
            .state
            .lock()
            .keys()
            .filter(|(_, tp)| tp.topic == topic)
            .cloned()
            .collect();
        let mut by_group: HashMap<String, Vec<(TopicPartition, Option<OffsetAndMetadata>)>> =
            HashMap::new();
        for (g, tp) in doomed {
            by_group.entry(g).or_default().push((tp, None));
        }
        for (g, entries) in by_group {
            self.commit(&g, &entries)?;
        }
        Ok(())
    }

    pub(crate) fn committed(&self, group: &str, tp: &TopicPartition) -> Option<OffsetAndMetadata> {
        self.state
            .lock()
            .get(&(group.to_string(), tp.clone()))
            .cloned()
    }

    /// Whether an open transaction holds an offset of `group` for `tp` that it has not
    /// committed yet (OffsetFetch's `require_stable`, KIP-447: UNSTABLE_OFFSET_COMMIT).
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn has_pending(&self, group: &str, tp: &TopicPartition) -> bool {
        self.pending
            .lock()
            .values()
            .flatten()
            .any(|((g, t), _)| g == group && t == tp)
    }

    /// All committed offsets of `group`, sorted by partition.
    pub(crate) fn group_offsets(&self, group: &str) -> Vec<(TopicPartition, OffsetAndMetadata)> {
        let mut v: Vec<_> = self
            .state
            .lock()
            .iter()
            .filter(|((g, _), _)| g == group)
            .map(|((_, tp), o)| (tp.clone(), o.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The offsets log's figures.
    pub(crate) fn log_metrics(&self) -> crate::log::LogMetrics {
        self.log.metrics()
    }

    /// Names of all groups with committed offsets, sorted.
    pub(crate) fn groups(&self) -> Vec<String> {
        let mut v: Vec<String> = self.state.lock().keys().map(|(g, _)| g.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Rewrites the live state and drops older segments once the log is mostly dead records.
    fn maybe_snapshot(&self, state: &HashMap<Key, OffsetAndMetadata>) -> Result<()> {
        let size = self.log.size_in_bytes();
        let live = state.len() as u64 * 64;
        if size < SNAPSHOT_MIN_BYTES.max(4 * live) {
            return Ok(());
        }
        if !self.pending.lock().is_empty() {
            // Pending transactional offsets live only in the segments a snapshot would delete.
            return Ok(());
        }
        self.log.roll()?;
        let start = self.log.high_watermark();
        let now = crate::clock::now_ms();
        let mut b = BatchBuilder::new(Compression::None);
        for ((group, tp), v) in state {
            b.append(
                now,
                Some(&encode_key(group, tp)),
                Some(&encode_value(v, now)),
                &[],
            );
            if b.size_in_bytes() > BATCH_LIMIT {
                self.log.append(&b.build()?)?;
                b.clear();
            }
        }
        if !b.is_empty() {
            self.log.append(&b.build()?)?;
        }
        // NOTE: the snapshot is fsynced (EveryAppend) before the segments it replaces go.
        self.log.delete_segments_below(start)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_survive_reopen_and_tombstones_delete() {
        let dir = tempfile::tempdir().unwrap();
        let tp = TopicPartition::new("t", 3);
        {
            let s = OffsetStore::open(dir.path()).unwrap();
            s.commit("g", &[(tp.clone(), Some(OffsetAndMetadata::new(5)))])
                .unwrap();
            s.commit(
                "g",
                &[(
                    tp.clone(),
                    Some(OffsetAndMetadata {
                        offset: 9,
                        metadata: "m".into(),
                    }),
                )],
            )
            .unwrap();
            s.commit("h", &[(tp.clone(), Some(OffsetAndMetadata::new(1)))])
                .unwrap();
            s.commit("h", &[(tp.clone(), None)]).unwrap();
        }
        let s = OffsetStore::open(dir.path()).unwrap();
        assert_eq!(
            s.committed("g", &tp),
            Some(OffsetAndMetadata {
                offset: 9,
                metadata: "m".into()
            })
        );
        assert_eq!(s.committed("h", &tp), None);
        assert_eq!(s.groups(), ["g"]);
    }

    #[test]
    fn keys_and_values_reject_garbage() {
        assert!(decode_key(&[1, 200, 0]).is_err());
        assert!(decode_key(&[2]).is_err());
        assert!(decode_value(&[1, 0, 0]).is_err());
        let k = encode_key("grp", &TopicPartition::new("x", 7));
        assert_eq!(
            decode_key(&k).unwrap(),
            ("grp".to_string(), TopicPartition::new("x", 7))
        );
    }
}
