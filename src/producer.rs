//! The producer: sends records to topics.
//!
//! This module is private: the user-facing documentation (with an example) is on
//! [`Producer`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{Error, ErrorKind, Result};
use crate::log::Log;
use crate::partition::{Partition, Topic};
use crate::partitioner;
use crate::record::kafka::HEADER_LEN;
use crate::record::{BatchBuilder, Compression, ProducerFields, TimestampType};
use crate::store::Store;
use crate::topic::TopicPartition;

/// Refuses a record without a key for a compacted topic, before it is queued with others (the
/// log would refuse the whole coalesced batch).
fn refuse_keyless(topic: &Topic, record: &ProducerRecord, index: usize) -> Result<()> {
    if record.key.is_none() && topic.config.log.cleanup_policy.compacts() {
        return Err(ErrorKind::KeyRequired {
            record: u32::try_from(index).unwrap_or(u32::MAX),
        }
        .into());
    }
    Ok(())
}

/// A record to send: topic, optional partition, key, value, headers and timestamp.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    /// Shared, so that many records of one topic can carry its name without a copy each
    /// ([`ProducerRecord::with_shared_topic`]).
    topic: Arc<str>,
    partition: Option<u32>,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record for `topic` with no key and a null value (set them with the methods below).
    pub fn new(topic: impl Into<String>) -> ProducerRecord {
        ProducerRecord::with_shared_topic(Arc::from(topic.into()))
    }

    /// A record for `topic` like [`new`](Self::new), sharing the name: a program that sends
    /// many records to one topic makes the name once and gives each record a clone of the
    /// `Arc`, which costs no allocation.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use riverbed::ProducerRecord;
    ///
    /// let orders: Arc<str> = Arc::from("orders");
    /// let records: Vec<ProducerRecord> = (0..3)
    ///     .map(|i| ProducerRecord::with_shared_topic(Arc::clone(&orders)).value(vec![i]))
    ///     .collect();
    /// assert!(records.iter().all(|r| r.topic_name() == "orders"));
    /// ```
    pub fn with_shared_topic(topic: Arc<str>) -> ProducerRecord {
        ProducerRecord {
            topic,
            ..ProducerRecord::default()
        }
    }

    /// Sets the key; records with equal keys go to the same partition.
    #[must_use = "a setter returns the changed configuration"]
    pub fn key(mut self, key: impl Into<Vec<u8>>) -> ProducerRecord {
        self.key = Some(key.into());
        self
    }

    /// Sets the value. A record without a value is a tombstone.
    #[must_use = "a setter returns the changed configuration"]
    pub fn value(mut self, value: impl Into<Vec<u8>>) -> ProducerRecord {
        self.value = Some(value.into());
        self
    }

    /// Adds a header (keys may repeat).
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> ProducerRecord {
        self.headers.push((key.into(), Some(value.into())));
        self
    }

    /// Replaces the headers with `headers` (values nullable, as the log stores them): how
    /// `riverbed::streams` sinks pass a record's headers on as they were read.
    pub(crate) fn with_headers(
        mut self,
        headers: Vec<(String, Option<Vec<u8>>)>,
    ) -> ProducerRecord {
        self.headers = headers;
        self
    }

    /// Sends to this partition instead of choosing one.
    #[must_use = "a setter returns the changed configuration"]
    pub fn partition(mut self, partition: u32) -> ProducerRecord {
        self.partition = Some(partition);
        self
    }

    /// Sets the create-time timestamp (ms since the Unix epoch). Default: now.
    pub fn timestamp(mut self, ms: i64) -> ProducerRecord {
        self.timestamp = Some(ms);
        self
    }

    /// The topic.
    pub fn topic_name(&self) -> &str {
        &self.topic
    }

    fn header_refs(&self) -> Vec<(&str, Option<&[u8]>)> {
        self.headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect()
    }

    /// The exact size of a batch holding this record alone, as stored (after compression), or its
    /// uncompressed size where that is at most `max`: what `max_message_bytes` limits (Kafka's
    /// `max.message.bytes`: the largest batch after compression). Only a record too large
    /// before compression is compressed to find out.
    fn alone_batch_size(&self, compression: Compression, max: usize) -> Result<usize> {
        let headers = self.header_refs();
        let plain = HEADER_LEN
            + crate::record::codec::record_size(
                0,
                0,
                self.key.as_deref(),
                self.value.as_deref(),
                &headers,
            );
        if compression == Compression::None || plain <= max {
            return Ok(plain);
        }
        let mut b = BatchBuilder::new(compression);
        b.append(0, self.key.as_deref(), self.value.as_deref(), &headers);
        Ok(b.build()?.len().min(plain))
    }

    fn encoded_size_bound(&self) -> usize {
        HEADER_LEN
            + BatchBuilder::record_size_upper_bound(
                self.key.as_deref(),
                self.value.as_deref(),
                &self.header_refs(),
            )
    }
}

/// Where a sent record was stored.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordMetadata {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset in the partition.
    pub offset: u64,
    /// The record's timestamp as stored (the append time for a log-append-time topic).
    pub timestamp: i64,
}

/// Producer settings.
///
/// Built from `ProducerConfig::default()` with one setter per setting, e.g.
/// `ProducerConfig::default().idempotent(..)`, and read with
/// the `get_` getters (see ARCHITECTURE.md, "Configuration style").
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    pub(crate) batch_size: usize,
    pub(crate) linger: Duration,
    pub(crate) idempotent: bool,
}

impl ProducerConfig {
    /// Concurrent sends to one partition are coalesced into batches of about this many bytes;
    /// keyless records also stick to one partition for this many bytes. Default: 16 KiB
    /// (`batch.size`).
    #[must_use = "a setter returns the changed configuration"]
    pub fn batch_size(mut self, batch_size: usize) -> ProducerConfig {
        self.batch_size = batch_size;
        self
    }

    /// How long the sender that appends a batch waits for more records to join it. Default: 0
    /// (`linger.ms`): coalescing then comes only from senders that arrive while an append runs.
    #[must_use = "a setter returns the changed configuration"]
    pub fn linger(mut self, linger: Duration) -> ProducerConfig {
        self.linger = linger;
        self
    }

    /// Stamp batches with a producer id and per-partition sequence numbers
    /// (`enable.idempotence`), so that a log acknowledges a batch it already holds with its
    /// original offsets instead of writing it twice. Sends of an idempotent producer to one
    /// partition are appended one at a time, in order, and are not coalesced with other
    /// producers' sends. Default: false: in-process sends have no network retries, the duplicate
    /// source idempotence guards against in Kafka.
    #[must_use = "a setter returns the changed configuration"]
    pub fn idempotent(mut self, idempotent: bool) -> ProducerConfig {
        self.idempotent = idempotent;
        self
    }

    /// The [`batch_size`](Self::batch_size) setting.
    pub fn get_batch_size(&self) -> usize {
        self.batch_size
    }

    /// The [`linger`](Self::linger) setting.
    pub fn get_linger(&self) -> Duration {
        self.linger
    }

    /// The [`idempotent`](Self::idempotent) setting.
    pub fn get_idempotent(&self) -> bool {
        self.idempotent
    }
}

impl Default for ProducerConfig {
    fn default() -> ProducerConfig {
        ProducerConfig {
            batch_size: 16 * 1024,
            linger: Duration::ZERO,
            idempotent: false,
        }
    }
}

/// The producer id, epoch and next sequence per partition of an idempotent or transactional
/// producer.
#[derive(Debug)]
pub(crate) struct Sequencer {
    pub producer_id: i64,
    pub epoch: i16,
    pub next: HashMap<TopicPartition, i32>,
    /// How long keyless records stick to a partition (the producer's `batch_size`).
    pub batch_size: usize,
}

impl Sequencer {
    /// Sends `records` as one batch per partition (split at `max_message_bytes`), each stamped
    /// with the producer, the partition's next sequence and the transactional bit, and returns
    /// their metadata in the order given. `on_partition` is told of each partition before its
    /// first batch is appended, with the batch's sequence.
    pub(crate) fn send(
        &mut self,
        store: &Store,
        records: Vec<ProducerRecord>,
        transactional: bool,
        metadata: Metadata,
        on_partition: impl FnMut(&TopicPartition, &Arc<Partition>, i32),
    ) -> Result<Vec<RecordMetadata>> {
        let batch_size = self.batch_size;
        send_records(
            store,
            records,
            batch_size,
            Some((self, transactional)),
            metadata,
            on_partition,
        )
    }
}

/// Whether a batch send reports where each record went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Metadata {
    /// One [`RecordMetadata`] per record, in the order given (`send_batch`).
    PerRecord,
    /// None (`send_all`): the caller only needs to know that every record was written.
    Skip,
}

/// Sends `records` as one batch per partition (split at `max_message_bytes`) and returns their
/// metadata in the order given. Every record is validated (topic, partition, size, key for a
/// compacted topic) before anything is written. With `stamp`, each batch carries the producer's
/// id, epoch and the partition's next sequence (and the transactional bit), and `on_partition`
/// hears of each partition, with the batch's sequence, before its batch is appended. With
/// [`Metadata::Skip`] the result is empty.
fn send_records(
    store: &Store,
    records: Vec<ProducerRecord>,
    batch_size: usize,
    mut stamp: Option<(&mut Sequencer, bool)>,
    metadata: Metadata,
    mut on_partition: impl FnMut(&TopicPartition, &Arc<Partition>, i32),
) -> Result<Vec<RecordMetadata>> {
    // By topic, then partition (the order batches are appended in). Two levels so that a
    // record of a topic already seen is routed by a name lookup alone.
    let mut routed: BTreeMap<Arc<str>, BTreeMap<u32, Vec<usize>>> = BTreeMap::new();
    let mut topics: BTreeMap<Arc<str>, Arc<Topic>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        let topic = match topics.get(&*r.topic) {
            Some(t) => Arc::clone(t),
            None => {
                let t = store.topic_or_create(&r.topic)?;
                topics.insert(Arc::clone(&r.topic), Arc::clone(&t));
                t
            }
        };
        refuse_keyless(&topic, r, i)?;
        let max = topic.config.log.max_message_bytes;
        let size = r.alone_batch_size(topic.config.compression, max)?;
        if size > max {
            return Err(ErrorKind::RecordTooLarge { size, max }.into());
        }
        let p = route(&topic, r, size, batch_size)?;
        match routed.get_mut(&*r.topic) {
            Some(partitions) => partitions.entry(p).or_default().push(i),
            None => {
                routed.insert(Arc::clone(&r.topic), BTreeMap::from([(p, vec![i])]));
            }
        }
    }
    let mut out: Vec<Option<RecordMetadata>> = match metadata {
        Metadata::PerRecord => vec![None; records.len()],
        Metadata::Skip => Vec::new(),
    };
    let now = crate::clock::now_ms();
    let routed = routed.into_iter().flat_map(|(t, parts)| {
        parts
            .into_iter()
            .map(move |(p, idxs)| ((Arc::clone(&t), p), idxs))
    });
    for ((topic_name, p), idxs) in routed {
        let topic = &topics[&topic_name];
        let part = topic.partition(p)?;
        let tp = TopicPartition::new(&*topic_name, p);
        let max = topic.config.log.max_message_bytes;
        let mut start = 0;
        while start < idxs.len() {
            let mut b = BatchBuilder::new(topic.config.compression);
            let mut end = start;
            while end < idxs.len() {
                let r = &records[idxs[end]];
                if end > start && b.size_in_bytes() + r.encoded_size_bound() > max {
                    break;
                }
                b.append(
                    r.timestamp.unwrap_or(now),
                    r.key.as_deref(),
                    r.value.as_deref(),
                    &r.header_refs(),
                );
                end += 1;
            }
            let seq = match stamp.as_mut() {
                Some((seq, transactional)) => {
                    let first = seq.next.get(&tp).copied().unwrap_or(0);
                    b.producer(ProducerFields {
                        producer_id: seq.producer_id,
                        producer_epoch: seq.epoch,
                        base_sequence: first,
                    })
                    .transactional(*transactional);
                    on_partition(&tp, &part, first);
                    Some(first)
                }
                None => None,
            };
            let info = part
                .log
                .append(&b.build()?)
                .map_err(|e| Producer::deleted_topic_error(&topic_name, &part.log, e))?;
            if let (Some((sequencer, _)), Some(first)) = (stamp.as_mut(), seq) {
                let count = (end - start) as i64;
                let next = (i64::from(first) + count) % (i64::from(i32::MAX) + 1);
                sequencer.next.insert(tp.clone(), next as i32);
            }
            if metadata == Metadata::Skip {
                start = end;
                continue;
            }
            for (k, &i) in idxs[start..end].iter().enumerate() {
                let r = &records[i];
                out[i] = Some(RecordMetadata {
                    topic: topic_name.to_string(),
                    partition: p,
                    offset: info.base_offset + k as u64,
                    timestamp: if topic.config.log.timestamp_type == TimestampType::LogAppendTime {
                        info.timestamp
                    } else {
                        r.timestamp.unwrap_or(now)
                    },
                });
            }
            start = end;
        }
    }
    store.notify().notify();
    Ok(out.into_iter().flatten().collect())
}

/// Chooses the partition of `record` in `topic`.
fn route(topic: &Topic, record: &ProducerRecord, size: usize, batch_size: usize) -> Result<u32> {
    let n = topic.partition_count();
    match (record.partition, &record.key) {
        (Some(p), _) if p < n => Ok(p),
        (Some(p), _) => Err(ErrorKind::UnknownPartition {
            topic: topic.name.clone(),
            partition: p,
            partitions: n,
        }
        .into()),
        (None, Some(key)) => Ok(partitioner::partition_for_key(key, n)),
        (None, None) => Ok(topic.sticky.choose(n, size, batch_size)),
    }
}

/// Sends records to the store's topics. Cheap to clone, `Send + Sync`.
///
/// [`Producer::send`] is synchronous: it returns once the record is in its partition's log (and
/// on disk, if the topic's flush policy says so). Concurrent sends to one partition coalesce:
/// each sender queues its record, and whichever sender gets to the partition first appends
/// everything queued as one batch, so many threads share one append (and one fsync).
///
/// ```
/// use riverbed::{ProducerRecord, Store, TopicConfig};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// store.create_topic("payments", TopicConfig::new(3))?;
/// let producer = store.producer();
/// let a = producer.send(ProducerRecord::new("payments").key("alice").value("+50"))?;
/// let b = producer.send(ProducerRecord::new("payments").key("alice").value("+25"))?;
/// assert_eq!(a.partition, b.partition); // same key, same partition
/// assert_eq!(b.offset, a.offset + 1);
/// producer.flush()?; // everything sent so far is durable
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Producer {
    store: Store,
    config: Arc<ProducerConfig>,
    /// Set for an idempotent producer.
    sequencer: Option<Arc<Mutex<Sequencer>>>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("config", &self.config)
            .finish()
    }
}

impl Store {
    /// A producer with default settings.
    pub fn producer(&self) -> Producer {
        Producer {
            store: self.clone(),
            config: Arc::new(ProducerConfig::default()),
            sequencer: None,
        }
    }

    /// A producer with the given settings.
    ///
    /// # Errors
    /// [`Io`](ErrorKind::Io) if an idempotent producer's id cannot be reserved durably.
    pub fn producer_with(&self, config: ProducerConfig) -> Result<Producer> {
        let sequencer = if config.idempotent {
            let producer_id = self.txns().allocate_producer_id()?;
            Some(Arc::new(Mutex::new(Sequencer {
                producer_id,
                epoch: 0,
                next: HashMap::new(),
                batch_size: config.batch_size,
            })))
        } else {
            None
        };
        Ok(Producer {
            store: self.clone(),
            config: Arc::new(config),
            sequencer,
        })
    }
}

impl Producer {
    fn route(&self, topic: &Topic, record: &ProducerRecord, size: usize) -> Result<u32> {
        route(topic, record, size, self.config.batch_size)
    }

    /// The producer id of an idempotent producer.
    pub fn producer_id(&self) -> Option<i64> {
        self.sequencer.as_ref().map(|s| s.lock().producer_id)
    }

    /// A send that raced the deletion of its topic reports the topic as unknown.
    fn deleted_topic_error(topic: &str, log: &Log, e: Error) -> Error {
        if log.is_deleted() {
            ErrorKind::UnknownTopic {
                topic: topic.to_string(),
            }
            .into()
        } else {
            e
        }
    }

    /// Sends one record and returns where it was stored.
    ///
    /// # Errors
    /// [`UnknownTopic`](ErrorKind::UnknownTopic); [`UnknownPartition`](ErrorKind::UnknownPartition);
    /// [`RecordTooLarge`](ErrorKind::RecordTooLarge); [`KeyRequired`](ErrorKind::KeyRequired)
    /// for a record without a key sent to a compacted topic; errors of [`Log::append`]. Nothing is
    /// written on error.
    pub fn send(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        if let Some(seq) = &self.sequencer {
            let mut out = seq.lock().send(
                &self.store,
                vec![record],
                false,
                Metadata::PerRecord,
                |_, _, _| {},
            )?;
            return out
                .pop()
                .ok_or_else(|| Error::invalid("a sent record has no metadata"));
        }
        let topic = self.store.topic_or_create(&record.topic)?;
        refuse_keyless(&topic, &record, 0)?;
        let max = topic.config.log.max_message_bytes;
        let size = record.alone_batch_size(topic.config.compression, max)?;
        if size > max {
            return Err(ErrorKind::RecordTooLarge { size, max }.into());
        }
        let p = self.route(&topic, &record, size)?;
        let part = topic.partition(p)?;
        let timestamp = record.timestamp.unwrap_or_else(crate::clock::now_ms);
        let (offset, stored_ts) = part
            .queue
            .send(
                &part.log,
                record.key.as_deref(),
                record.value.as_deref(),
                &record.header_refs(),
                timestamp,
                topic.config.compression,
                self.config.batch_size,
                self.config.linger,
            )
            .map_err(|e| Self::deleted_topic_error(&topic.name, &part.log, e))?;
        self.store.notify().notify();
        Ok(RecordMetadata {
            topic: topic.name.clone(),
            partition: p,
            offset,
            timestamp: if topic.config.log.timestamp_type == TimestampType::LogAppendTime {
                stored_ts
            } else {
                timestamp
            },
        })
    }

    /// Sends many records, one batch per partition (split at `max_message_bytes`), and returns
    /// their metadata in the order given. Records of one call to one partition are contiguous.
    ///
    /// # Errors
    /// As [`send`](Self::send). Validation errors (unknown topic or partition, a record too
    /// large, a missing key for a compacted topic) are found before anything is written; an append error may leave earlier
    /// partitions' batches written.
    pub fn send_batch(
        &self,
        records: impl IntoIterator<Item = ProducerRecord>,
    ) -> Result<Vec<RecordMetadata>> {
        self.send_records(records, Metadata::PerRecord)
    }

    /// Sends many records like [`send_batch`](Self::send_batch) (same batching, validation and
    /// errors) without reporting where each went: for callers that only need every record
    /// written, it saves building a [`RecordMetadata`] (and copying its topic name) per record.
    ///
    /// ```
    /// use riverbed::{ProducerRecord, Store, TopicConfig};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// store.create_topic("clicks", TopicConfig::new(2))?;
    /// let producer = store.producer();
    /// producer.send_all((0..100u32).map(|i| ProducerRecord::new("clicks").key(i.to_le_bytes())))?;
    /// let d = store.describe_topic("clicks")?;
    /// let written: u64 = d.partitions.iter().map(|p| p.log_end_offset).sum();
    /// assert_eq!(written, 100);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`send_batch`](Self::send_batch).
    pub fn send_all(&self, records: impl IntoIterator<Item = ProducerRecord>) -> Result<()> {
        self.send_records(records, Metadata::Skip).map(|_| ())
    }

    fn send_records(
        &self,
        records: impl IntoIterator<Item = ProducerRecord>,
        metadata: Metadata,
    ) -> Result<Vec<RecordMetadata>> {
        let records: Vec<ProducerRecord> = records.into_iter().collect();
        match &self.sequencer {
            Some(seq) => seq
                .lock()
                .send(&self.store, records, false, metadata, |_, _, _| {}),
            None => send_records(
                &self.store,
                records,
                self.config.batch_size,
                None,
                metadata,
                |_, _, _| {},
            ),
        }
    }

    /// Makes everything sent so far (by any producer of this store) durable.
    ///
    /// # Errors
    /// [`Io`](ErrorKind::Io) or [`Poisoned`](ErrorKind::Poisoned) from a partition log.
    pub fn flush(&self) -> Result<()> {
        self.store.flush()
    }
}
