//! Fetch (API 1, v4–12): stored batches served as they are on disk, with Kafka's long poll.
//!
//! A format 3 segment holds Kafka v2 batches byte for byte, so a partition's answer is the
//! stored bytes of the batches from `fetch_offset` on (the first batch may start before it:
//! clients skip the records below the offset they asked for, as with Kafka). A batch of an
//! older segment (format 1 or 2, written by an earlier Riverbed) is re-encoded as a Kafka batch
//! on the way out ([`crate::record::to_kafka`]), with the same offsets, timestamps and records.
//!
//! Limits (Kafka's `ReplicaManager.readFromLog`, KIP-74): each partition returns at most its
//! `partition_max_bytes`, the whole answer at most the request's `max_bytes` (capped at
//! [`FETCH_MAX_BYTES`], Kafka's broker `fetch.max.bytes` default), partitions filled in request
//! order — except that the first batch of the first partition with data is returned whole even
//! if it is larger than both limits, so that a consumer always makes progress. After that, a
//! batch that does not fit is left for a later fetch.
//!
//! **Long poll**: when fewer than `min_bytes` are ready, the request waits on the store's
//! notifier (the one every append signals, as [`Consumer::poll`](crate::Consumer::poll) does)
//! until enough has arrived or `max_wait_ms` (capped at [`MAX_WAIT`]) has passed; it answers at
//! once if a partition has an error (Kafka answers errors without waiting), and early when the
//! server stops. No partition or log lock is held while it waits: reads are lock-free, and the
//! bytes of the previous try are dropped before sleeping.
//!
//! **read_committed** (isolation level 1) reads only below each partition's last stable
//! offset and lists the aborted transactions (producer id, first offset) that overlap the
//! batches served, from the log's producer state and `.txnindex` files (Kafka's
//! `FetchResponse.AbortedTransaction`); control batches are part of the bytes, clients skip
//! them. read_uncommitted reads up to the high watermark and sends a null aborted list, as Kafka.
//!
//! **Fetch sessions** (KIP-227, v7+): Riverbed creates none. A full request (session id 0,
//! epoch 0 or -1) is answered with session id 0, which tells the client no session exists, so
//! its next request is full again (`FetchSessionHandler.handleResponse`: a response with
//! `INVALID_SESSION_ID` makes the client "send a full fetch request" next time). An incremental
//! request (a session id or an epoch above 0) names a session this broker never made:
//! FETCH_SESSION_ID_NOT_FOUND, after which the client starts over with a full request.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, ProducerId};

use super::auth::{self, Operation, Resource};
use super::conn::{self, Close, Connection, POLL};
use super::dispatch::Reply;
use super::{errors, Shared};
use crate::error::Result;
use crate::log::Log;
use crate::record::codec::Layout;
use crate::segment::BatchView;

/// The longest a fetch waits for data, whatever its `max_wait_ms`: below the 30 s request
/// timeout of Kafka's clients, so a long poll never looks like a dead broker.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(25);

/// The most bytes one fetch answer holds (plus, at most, one larger first batch): Kafka's
/// broker `fetch.max.bytes` default (55 MiB), which bounds a connection's response memory.
pub(crate) const FETCH_MAX_BYTES: usize = 55 * 1024 * 1024;

/// Answers a Fetch request, waiting for data as its `min_bytes` and `max_wait_ms` ask.
pub(super) fn handle(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: FetchRequest = conn::decode_body(body, ApiKey::Fetch, version)?;
    let committed = match req.isolation_level {
        0 => false,
        1 => true,
        other => {
            return Err(Close::Malformed(format!(
                "Fetch v{version}: isolation level {other} is neither 0 nor 1"
            )))
        }
    };
    if version >= 7 && (req.session_id != 0 || req.session_epoch > 0) {
        conn.error_answered();
        let resp = FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code())
            .with_session_id(0);
        return Ok(Reply::Body(conn::encode_body(&resp, version)?));
    }
    let max_bytes = usize::try_from(req.max_bytes)
        .unwrap_or(0)
        .min(FETCH_MAX_BYTES);
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
    let wait = Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0)).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    let notify = shared.store.notify();
    // ACLs (Kafka's `KafkaApis.handleFetchRequest`): a consumer's fetch needs Read on each
    // topic; a topic without it gets TOPIC_AUTHORIZATION_FAILED (29) on its partitions.
    let readable: Vec<bool> = req
        .topics
        .iter()
        .map(|t| {
            auth::authorize(
                shared,
                conn,
                Operation::Read,
                Resource::topic(t.topic.0.as_str()),
            )
        })
        .collect();
    let responses = loop {
        // Registered before looking, so an append after the look wakes the wait below.
        let (_waiting, seen) = notify.register();
        let read = read_all(shared, &req, &readable, committed, max_bytes);
        let now = Instant::now();
        if read.bytes >= min_bytes
            || read.error
            || now >= deadline
            || shared.stopping.load(Ordering::SeqCst)
        {
            if read.error {
                conn.error_answered();
            }
            break read.topics;
        }
        drop(read);
        // Woken by an append anywhere in the store; the POLL bound makes a stopping server's
        // flag seen even if its wake-up came before this thread started waiting.
        notify.wait(seen, deadline.min(now + POLL));
    };
    let resp = FetchResponse::default()
        .with_session_id(0)
        .with_responses(responses);
    Ok(Reply::Body(conn::encode_body(&resp, version)?))
}

/// One pass over the request's partitions.
struct Read {
    topics: Vec<FetchableTopicResponse>,
    /// Record bytes in the answer.
    bytes: usize,
    /// Whether a partition failed (the answer is then sent without waiting).
    error: bool,
}

fn read_all(
    shared: &Shared,
    req: &FetchRequest,
    readable: &[bool],
    committed: bool,
    max_bytes: usize,
) -> Read {
    let mut budget = Budget {
        left: max_bytes,
        first: true,
    };
    let mut read = Read {
        topics: Vec::with_capacity(req.topics.len()),
        bytes: 0,
        error: false,
    };
    let mut scratch = Scratch::default();
    for (ti, topic) in req.topics.iter().enumerate() {
        let name = topic.topic.0.as_str();
        let denied = !readable.get(ti).copied().unwrap_or(false);
        let partitions = topic
            .partitions
            .iter()
            .map(|p| {
                let data = if denied {
                    failed(p, ResponseError::TopicAuthorizationFailed.code())
                } else {
                    read_partition(shared, name, p, committed, &mut budget, &mut scratch)
                };
                read.error |= data.error_code != 0;
                read.bytes += data.records.as_ref().map_or(0, |r| r.len());
                data
            })
            .collect();
        read.topics.push(
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions),
        );
    }
    read
}

/// What is left of the request's `max_bytes`, and whether no partition has returned data yet
/// (its first batch is then returned whatever its size, KIP-74).
struct Budget {
    left: usize,
    first: bool,
}

/// Buffers for re-encoding batches of format 1/2 segments.
#[derive(Default)]
struct Scratch {
    batch: Vec<u8>,
    records: Vec<u8>,
}

/// A partition's answer with error `code` and no data.
fn failed(p: &FetchPartition, code: i16) -> PartitionData {
    PartitionData::default()
        .with_partition_index(p.partition)
        .with_error_code(code)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_aborted_transactions(None)
        .with_records(Some(Bytes::new()))
}

fn read_partition(
    shared: &Shared,
    topic: &str,
    p: &FetchPartition,
    committed: bool,
    budget: &mut Budget,
    scratch: &mut Scratch,
) -> PartitionData {
    let failed = |code: i16| failed(p, code);
    let part = match u32::try_from(p.partition)
        .ok()
        .and_then(|i| shared.store.topic(topic).and_then(|t| t.partition(i)).ok())
    {
        Some(part) => part,
        None => return failed(ResponseError::UnknownTopicOrPartition.code()),
    };
    let log = &part.log;
    let limit = usize::try_from(p.partition_max_bytes)
        .unwrap_or(0)
        .min(budget.left);
    let served = match u64::try_from(p.fetch_offset) {
        Ok(from) => serve(log, from, committed, limit, budget.first, scratch),
        Err(_) => Err(crate::error::ErrorKind::OffsetOutOfRange {
            partition: None,
            requested: 0,
            log_start: log.log_start_offset(),
            log_end: log.high_watermark(),
        }
        .into()),
    };
    let served = match served {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(topic, partition = p.partition, offset = p.fetch_offset, error = %e, "fetch failed");
            let mut data = failed(errors::code(&e));
            if matches!(e.kind(), crate::error::ErrorKind::OffsetOutOfRange { .. }) {
                // The bounds let the client reset its position (auto.offset.reset).
                data = data
                    .with_high_watermark(log.high_watermark() as i64)
                    .with_last_stable_offset(log.last_stable_offset() as i64)
                    .with_log_start_offset(log.log_start_offset() as i64);
            }
            return data;
        }
    };
    if !served.records.is_empty() {
        budget.first = false;
        budget.left = budget.left.saturating_sub(served.records.len());
    }
    // Loaded after the read: the watermark covers every batch served.
    let hw = log.high_watermark();
    let lso = served
        .last_stable_offset
        .unwrap_or_else(|| log.last_stable_offset());
    PartitionData::default()
        .with_partition_index(p.partition)
        .with_high_watermark(hw as i64)
        .with_last_stable_offset(lso as i64)
        .with_log_start_offset(log.log_start_offset() as i64)
        .with_aborted_transactions(served.aborted)
        .with_records(Some(served.records.freeze()))
}

/// A partition's answer.
struct Served {
    records: BytesMut,
    aborted: Option<Vec<AbortedTransaction>>,
    last_stable_offset: Option<u64>,
}

/// The Kafka bytes of `log`'s batches from `from` on, at most `limit` bytes unless `min_one`
/// (then the first batch whatever its size).
fn serve(
    log: &Log,
    from: u64,
    committed: bool,
    limit: usize,
    min_one: bool,
    scratch: &mut Scratch,
) -> Result<Served> {
    let mut served = Served {
        records: BytesMut::new(),
        aborted: None,
        last_stable_offset: None,
    };
    if limit == 0 && !min_one {
        // Still checks the offset, so that a client at a bad position hears of it.
        log.read_bounded(from, 1, 0, &mut Vec::new())?;
        return Ok(served);
    }
    let mut views: Vec<BatchView> = Vec::new();
    if committed {
        let (aborted, lso) =
            log.read_committed_bounded(from, limit.max(1), u64::MAX, &mut views)?;
        served.aborted = Some(
            aborted
                .iter()
                .map(|a| {
                    AbortedTransaction::default()
                        .with_producer_id(ProducerId(a.producer_id))
                        .with_first_offset(a.first_offset as i64)
                })
                .collect(),
        );
        served.last_stable_offset = Some(lso);
    } else {
        log.read_bounded(from, limit.max(1), u64::MAX, &mut views)?;
    }
    for (i, view) in views.iter().enumerate() {
        let batch = view.as_batch();
        let bytes: &[u8] = if batch.layout() == Layout::Kafka {
            view.as_bytes()
        } else {
            crate::record::to_kafka(&batch, &mut scratch.batch, &mut scratch.records)?;
            &scratch.batch
        };
        let fits = served.records.len() + bytes.len() <= limit;
        if !fits && (i != 0 || !min_one) {
            break;
        }
        served.records.extend_from_slice(bytes);
    }
    Ok(served)
}
