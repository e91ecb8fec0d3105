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
use crate::record::{BatchBuilder, Compression, ProducerFields, RecordBatch, TimestampType};
use crate::store::Store;
use crate::topic::TopicPartition;

/// A record to send: topic, optional partition, key, value, headers and timestamp.
///
/// The key and value are of type `B`: owned `Vec<u8>` by default ([`ProducerRecord::new`]), or
/// slices borrowed from the caller ([`ProducerRecord::borrowed`]), which a send copies only
/// once, into the batch it builds — no allocation per record. Both kinds go through the same
/// sends ([`Producer::send_all`] and friends are generic over `B`), with the same batching,
/// validation and errors.
///
/// ```
/// use std::sync::Arc;
/// use riverbed::{ProducerRecord, Store, TopicConfig};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// store.create_topic("events", TopicConfig::new(1))?;
/// let payloads: Vec<[u8; 100]> = vec![[7; 100]; 10];
/// let topic: Arc<str> = Arc::from("events");
/// store.producer().send_all(payloads.iter().enumerate().map(|(i, v)| {
///     ProducerRecord::borrowed(Arc::clone(&topic)).partition(0).value(v).timestamp(i as i64)
/// }))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerRecord<B = Vec<u8>> {
    /// Shared, so that many records of one topic can carry its name without a copy each
    /// ([`ProducerRecord::with_shared_topic`]).
    topic: Arc<str>,
    partition: Option<u32>,
    key: Option<B>,
    value: Option<B>,
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
}

impl<'a> ProducerRecord<&'a [u8]> {
    /// A record for `topic` whose key and value borrow the caller's bytes (set them with
    /// [`key`](Self::key) and [`value`](Self::value) below) instead of owning a copy: the
    /// zero-copy way to send bytes the program already holds. The record lives no longer than
    /// the bytes; a send copies them into the batch it appends and keeps nothing.
    pub fn borrowed(topic: impl Into<Arc<str>>) -> ProducerRecord<&'a [u8]> {
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// Sets the key to borrowed bytes (a slice, array, `Vec` or `str`); records with equal
    /// keys go to the same partition.
    #[must_use = "a setter returns the changed configuration"]
    pub fn key<K: AsRef<[u8]> + ?Sized>(mut self, key: &'a K) -> ProducerRecord<&'a [u8]> {
        self.key = Some(key.as_ref());
        self
    }

    /// Sets the value to borrowed bytes. A record without a value is a tombstone.
    #[must_use = "a setter returns the changed configuration"]
    pub fn value<V: AsRef<[u8]> + ?Sized>(mut self, value: &'a V) -> ProducerRecord<&'a [u8]> {
        self.value = Some(value.as_ref());
        self
    }
}

impl<B: AsRef<[u8]>> ProducerRecord<B> {
    /// Adds a header (keys may repeat).
    pub fn header(
        mut self,
        key: impl Into<String>,
        value: impl Into<Vec<u8>>,
    ) -> ProducerRecord<B> {
        self.headers.push((key.into(), Some(value.into())));
        self
    }

    /// Replaces the headers with `headers` (values nullable, as the log stores them): how
    /// `riverbed::streams` sinks pass a record's headers on as they were read.
    pub(crate) fn with_headers(
        mut self,
        headers: Vec<(String, Option<Vec<u8>>)>,
    ) -> ProducerRecord<B> {
        self.headers = headers;
        self
    }

    /// Sends to this partition instead of choosing one.
    #[must_use = "a setter returns the changed configuration"]
    pub fn partition(mut self, partition: u32) -> ProducerRecord<B> {
        self.partition = Some(partition);
        self
    }

    /// Sets the create-time timestamp (ms since the Unix epoch). Default: now.
    pub fn timestamp(mut self, ms: i64) -> ProducerRecord<B> {
        self.timestamp = Some(ms);
        self
    }

    /// The topic.
    pub fn topic_name(&self) -> &str {
        &self.topic
    }

    fn key_bytes(&self) -> Option<&[u8]> {
        self.key.as_ref().map(AsRef::as_ref)
    }

    fn value_bytes(&self) -> Option<&[u8]> {
        self.value.as_ref().map(AsRef::as_ref)
    }

    /// Calls `f` with the headers as the batch builder takes them (no allocation without
    /// headers, the common case).
    fn with_header_refs<T>(&self, f: impl FnOnce(&[(&str, Option<&[u8]>)]) -> T) -> T {
        if self.headers.is_empty() {
            return f(&[]);
        }
        let refs: Vec<(&str, Option<&[u8]>)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        f(&refs)
    }

    /// The exact size of a batch holding this record alone, as stored (after compression), or its
    /// uncompressed size where that is at most `max`: what `max_message_bytes` limits (Kafka's
    /// `max.message.bytes`: the largest batch after compression). Only a record too large
    /// before compression is compressed to find out.
    fn alone_batch_size(&self, compression: Compression, max: usize) -> Result<usize> {
        let (key, value) = (self.key_bytes(), self.value_bytes());
        self.with_header_refs(|headers| {
            let plain = HEADER_LEN + crate::record::codec::record_size(0, 0, key, value, headers);
            if compression == Compression::None || plain <= max {
                return Ok(plain);
            }
            let mut b = BatchBuilder::new(compression);
            b.append(0, key, value, headers);
            Ok(b.build()?.len().min(plain))
        })
    }

    /// An upper bound on what this record adds to a batch, plus a batch header: the bound that
    /// splits batches at `max_message_bytes`.
    fn encoded_size_bound(&self) -> usize {
        let (key, value) = (self.key_bytes(), self.value_bytes());
        HEADER_LEN
            + self.with_header_refs(|headers| {
                BatchBuilder::record_size_upper_bound(key, value, headers)
            })
    }

    /// Checks the record against its topic (key for a compacted topic, `max_message_bytes`)
    /// and chooses its partition; returns the partition and [`encoded_size_bound`]
    /// (Self::encoded_size_bound). The exact size is computed only where it matters: for a
    /// record whose bound passes the limit, and for the sticky partitioner, which counts bytes.
    fn check_and_route(
        &self,
        slot: &Slot,
        index: usize,
        batch_size: usize,
    ) -> Result<(u32, usize)> {
        if self.key.is_none() && slot.compacts {
            // Refused before the record is queued with others (the log would refuse the whole
            // coalesced batch).
            return Err(ErrorKind::KeyRequired {
                record: u32::try_from(index).unwrap_or(u32::MAX),
            }
            .into());
        }
        let max = slot.max_message_bytes;
        let bound = self.encoded_size_bound();
        let sticky = self.partition.is_none() && self.key.is_none();
        // The bound is never below the exact size, so a bound within the limit needs no more.
        let size = if bound > max || sticky {
            let size = self.alone_batch_size(slot.topic.config.compression, max)?;
            if size > max {
                return Err(ErrorKind::RecordTooLarge { size, max }.into());
            }
            size
        } else {
            bound
        };
        let n = slot.partitions;
        let p = match (self.partition, self.key_bytes()) {
            (Some(p), _) if p < n => p,
            (Some(p), _) => {
                return Err(ErrorKind::UnknownPartition {
                    topic: slot.topic.name.clone(),
                    partition: p,
                    partitions: n,
                }
                .into())
            }
            (None, Some(key)) => partitioner::partition_for_key(key, n),
            (None, None) => slot.topic.sticky.choose(n, size, batch_size),
        };
        Ok((p, bound))
    }
}

/// A topic as one send sees it: looked up once, with what each record is checked against.
struct Slot {
    name: Arc<str>,
    topic: Arc<Topic>,
    partitions: u32,
    max_message_bytes: usize,
    compacts: bool,
}

impl Slot {
    fn new(name: Arc<str>, topic: Arc<Topic>) -> Slot {
        Slot {
            name,
            partitions: topic.partition_count(),
            max_message_bytes: topic.config.log.max_message_bytes,
            compacts: topic.config.log.cleanup_policy.compacts(),
            topic,
        }
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
    pub(crate) fn send<B: AsRef<[u8]>>(
        &mut self,
        store: &Store,
        records: &[ProducerRecord<B>],
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

/// Where one record of a batch send goes: its topic (an index into the call's topics), its
/// partition, and its [`ProducerRecord::encoded_size_bound`].
#[derive(Clone, Copy, PartialEq, Eq)]
struct Route {
    topic: u32,
    partition: u32,
    bound: usize,
}

thread_local! {
    /// A builder and an encoded batch per thread, reused by every batch send of the thread, so
    /// that a steady stream of sends allocates no batch buffers (taken out while in use).
    static SCRATCH: std::cell::Cell<Option<(BatchBuilder, RecordBatch)>> =
        const { std::cell::Cell::new(None) };
}

/// Sends `records` as one batch per partition (split at `max_message_bytes`) and returns their
/// metadata in the order given. Every record is validated (topic, partition, size, key for a
/// compacted topic) before anything is written. With `stamp`, each batch carries the producer's
/// id, epoch and the partition's next sequence (and the transactional bit), and `on_partition`
/// hears of each partition, with the batch's sequence, before its batch is appended. With
/// [`Metadata::Skip`] the result is empty.
///
/// Batches are appended by topic name, then partition. The usual call — every record to one
/// partition, within one batch — takes one pass: each record is checked, routed and added to
/// the batch (only in memory, so an invalid record later on still stops the call before
/// anything is written), comparing its topic with the previous record's by pointer first, so
/// records sharing one `Arc<str>` cost no string compare. Any other call is routed first and
/// then built partition by partition.
fn send_records<B: AsRef<[u8]>>(
    store: &Store,
    records: &[ProducerRecord<B>],
    batch_size: usize,
    mut stamp: Option<(&mut Sequencer, bool)>,
    metadata: Metadata,
    mut on_partition: impl FnMut(&TopicPartition, &Arc<Partition>, i32),
) -> Result<Vec<RecordMetadata>> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let now = crate::clock::now_ms();
    let (mut b, mut encoded) = SCRATCH
        .take()
        .unwrap_or_else(|| (BatchBuilder::new(Compression::None), RecordBatch::empty()));
    b.clear();
    // The topics of this call, in first-seen order (few: a linear search suffices up to a
    // handful, a map beyond).
    let mut topics: Vec<Slot> = Vec::new();
    let mut by_name: BTreeMap<Arc<str>, u32> = BTreeMap::new();
    let mut routes: Vec<Route> = Vec::with_capacity(records.len());
    // Whether every record so far went to the first record's partition, and fitted in `b`.
    let mut one_batch = true;
    let result = (|| -> Result<Vec<RecordMetadata>> {
        for (i, r) in records.iter().enumerate() {
            let slot = match topics.last() {
                Some(t) if Arc::ptr_eq(&t.name, &r.topic) || *t.name == *r.topic => {
                    topics.len() - 1
                }
                _ => {
                    let found = if topics.len() <= 8 {
                        topics.iter().position(|t| *t.name == *r.topic)
                    } else {
                        by_name.get(&*r.topic).map(|&s| s as usize)
                    };
                    match found {
                        Some(slot) => slot,
                        None => {
                            let t = store.topic_or_create(&r.topic)?;
                            topics.push(Slot::new(Arc::clone(&r.topic), t));
                            if topics.len() > 8 {
                                if by_name.is_empty() {
                                    for (s, t) in topics.iter().enumerate() {
                                        by_name.insert(Arc::clone(&t.name), s as u32);
                                    }
                                } else {
                                    by_name.insert(Arc::clone(&r.topic), topics.len() as u32 - 1);
                                }
                            }
                            topics.len() - 1
                        }
                    }
                }
            };
            let t = &topics[slot];
            let (partition, bound) = r.check_and_route(t, i, batch_size)?;
            let route = Route {
                topic: slot as u32,
                partition,
                bound,
            };
            if one_batch {
                let same = match routes.first() {
                    Some(first) => (first.topic, first.partition) == (route.topic, partition),
                    None => {
                        if b.compression() != t.topic.config.compression {
                            b = BatchBuilder::new(t.topic.config.compression);
                        }
                        true
                    }
                };
                if same && (i == 0 || b.size_in_bytes() + bound <= t.max_message_bytes) {
                    let (key, value) = (r.key_bytes(), r.value_bytes());
                    r.with_header_refs(|headers| {
                        b.append(r.timestamp.unwrap_or(now), key, value, headers);
                    });
                } else {
                    one_batch = false;
                }
            }
            routes.push(route);
        }
        let mut out: Vec<Option<RecordMetadata>> = match metadata {
            Metadata::PerRecord => vec![None; records.len()],
            Metadata::Skip => Vec::new(),
        };
        // Record indexes in append order: by topic name, then partition, then as given.
        let order: Vec<usize> = if one_batch {
            Vec::new()
        } else {
            let mut order: Vec<usize> = (0..records.len()).collect();
            order.sort_by(|&a, &b| {
                let (ra, rb) = (routes[a], routes[b]);
                topics[ra.topic as usize]
                    .name
                    .cmp(&topics[rb.topic as usize].name)
                    .then(ra.partition.cmp(&rb.partition))
            });
            order
        };
        let index = |k: usize| if one_batch { k } else { order[k] };
        let mut group_start = 0;
        while group_start < records.len() {
            let first = routes[index(group_start)];
            let mut group_end = group_start + 1;
            while group_end < records.len() {
                let r = routes[index(group_end)];
                if (r.topic, r.partition) != (first.topic, first.partition) {
                    break;
                }
                group_end += 1;
            }
            let slot = &topics[first.topic as usize];
            let p = first.partition;
            let part = slot.topic.partition(p)?;
            let tp = TopicPartition::new(&*slot.name, p);
            if !one_batch && b.compression() != slot.topic.config.compression {
                b = BatchBuilder::new(slot.topic.config.compression);
            }
            let mut start = group_start;
            while start < group_end {
                let mut end = start;
                if one_batch {
                    // Built while routing.
                    end = group_end;
                } else {
                    b.clear();
                    while end < group_end {
                        let i = index(end);
                        let r = &records[i];
                        if end > start
                            && b.size_in_bytes() + routes[i].bound > slot.max_message_bytes
                        {
                            break;
                        }
                        let (key, value) = (r.key_bytes(), r.value_bytes());
                        r.with_header_refs(|headers| {
                            b.append(r.timestamp.unwrap_or(now), key, value, headers);
                        });
                        end += 1;
                    }
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
                    None => {
                        b.producer(ProducerFields::NONE).transactional(false);
                        None
                    }
                };
                b.finish_into(&mut encoded)?;
                let info = part
                    .log
                    .append(&encoded)
                    .map_err(|e| Producer::deleted_topic_error(&slot.name, &part.log, e))?;
                if let (Some((sequencer, _)), Some(first)) = (stamp.as_mut(), seq) {
                    let count = (end - start) as i64;
                    let next = (i64::from(first) + count) % (i64::from(i32::MAX) + 1);
                    sequencer.next.insert(tp.clone(), next as i32);
                }
                if metadata == Metadata::PerRecord {
                    let append_time =
                        slot.topic.config.log.timestamp_type == TimestampType::LogAppendTime;
                    for k in start..end {
                        let i = index(k);
                        out[i] = Some(RecordMetadata {
                            topic: slot.name.to_string(),
                            partition: p,
                            offset: info.base_offset + (k - start) as u64,
                            timestamp: if append_time {
                                info.timestamp
                            } else {
                                records[i].timestamp.unwrap_or(now)
                            },
                        });
                    }
                }
                start = end;
            }
            group_start = group_end;
        }
        Ok(out.into_iter().flatten().collect())
    })();
    // Kept for the next send unless this one made them large (a thread that once sent a huge
    // batch should not hold its buffers for ever).
    if encoded.len() <= SCRATCH_KEEP_BYTES {
        b.clear();
        SCRATCH.set(Some((b, encoded)));
    }
    store.notify().notify();
    result
}

/// The largest encoded batch whose buffers a thread keeps for its next batch send.
const SCRATCH_KEEP_BYTES: usize = 1 << 20;

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
    pub fn send<B: AsRef<[u8]>>(&self, record: ProducerRecord<B>) -> Result<RecordMetadata> {
        if let Some(seq) = &self.sequencer {
            let mut out = seq.lock().send(
                &self.store,
                std::slice::from_ref(&record),
                false,
                Metadata::PerRecord,
                |_, _, _| {},
            )?;
            return out
                .pop()
                .ok_or_else(|| Error::invalid("a sent record has no metadata"));
        }
        let topic = self.store.topic_or_create(&record.topic)?;
        let slot = Slot::new(Arc::clone(&record.topic), topic);
        let (p, _) = record.check_and_route(&slot, 0, self.config.batch_size)?;
        let topic = slot.topic;
        let part = topic.partition(p)?;
        let timestamp = record.timestamp.unwrap_or_else(crate::clock::now_ms);
        let (offset, stored_ts) = record
            .with_header_refs(|headers| {
                part.queue.send(
                    &part.log,
                    record.key_bytes(),
                    record.value_bytes(),
                    headers,
                    timestamp,
                    topic.config.compression,
                    self.config.batch_size,
                    self.config.linger,
                )
            })
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
    pub fn send_batch<B: AsRef<[u8]>>(
        &self,
        records: impl IntoIterator<Item = ProducerRecord<B>>,
    ) -> Result<Vec<RecordMetadata>> {
        self.send_records(records, Metadata::PerRecord)
    }

    /// Sends many records like [`send_batch`](Self::send_batch) (same batching, validation and
    /// errors) without reporting where each went: for callers that only need every record
    /// written, it saves building a [`RecordMetadata`] (and copying its topic name) per record.
    /// With [borrowed](ProducerRecord::borrowed) records this is the producer's fastest path:
    /// no allocation per record, each value copied once, into the batch.
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
    pub fn send_all<B: AsRef<[u8]>>(
        &self,
        records: impl IntoIterator<Item = ProducerRecord<B>>,
    ) -> Result<()> {
        self.send_records(records, Metadata::Skip).map(|_| ())
    }

    fn send_records<B: AsRef<[u8]>>(
        &self,
        records: impl IntoIterator<Item = ProducerRecord<B>>,
        metadata: Metadata,
    ) -> Result<Vec<RecordMetadata>> {
        let records: Vec<ProducerRecord<B>> = records.into_iter().collect();
        match &self.sequencer {
            Some(seq) => seq
                .lock()
                .send(&self.store, &records, false, metadata, |_, _, _| {}),
            None => send_records(
                &self.store,
                &records,
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
