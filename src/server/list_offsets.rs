//! ListOffsets (API 2, v1–7): a partition's earliest or latest offset, the first offset at or
//! after a timestamp, or the offset of its largest timestamp.
//!
//! As Kafka's `Partition.fetchOffsetForTimestamp`:
//! - `-2` (earliest): the log start offset, timestamp -1;
//! - `-1` (latest): the last fetchable offset — the high watermark, or the last stable offset
//!   for a read_committed request (isolation level 1) — timestamp -1;
//! - `-3` (max timestamp, v7, KIP-734): the offset and timestamp of the first record holding
//!   the partition's largest timestamp;
//! - a timestamp `>= 0`: the first record whose timestamp is at least it (the time index
//!   narrows the search), if that record is below the last fetchable offset; otherwise offset
//!   and timestamp -1, Kafka's "no such offset".
//!
//! Leader epochs are -1, as in Metadata (see `metadata.rs`).

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_request::ListOffsetsPartition;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse};

use super::auth::{self, Operation, Resource};
use super::conn::{self, Close, Connection};
use super::dispatch::Reply;
use super::{errors, Shared};
use crate::error::Result;
use crate::log::Log;

/// Kafka's special timestamps (`ListOffsetsRequest`).
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

/// Answers a ListOffsets request.
pub(super) fn handle(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: ListOffsetsRequest = conn::decode_body(body, ApiKey::ListOffsets, version)?;
    let committed = req.isolation_level == 1;
    let topics: Vec<ListOffsetsTopicResponse> = req
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.as_str();
            // ACLs (Kafka's `KafkaApis.handleListOffsetRequest`): Describe on the topic, else
            // TOPIC_AUTHORIZATION_FAILED (29) on its partitions.
            let allowed = auth::authorize(shared, conn, Operation::Describe, Resource::topic(name));
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    if allowed {
                        answer(shared, version, name, p, committed)
                    } else {
                        ListOffsetsPartitionResponse::default()
                            .with_partition_index(p.partition_index)
                            .with_leader_epoch(-1)
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                            .with_timestamp(-1)
                            .with_offset(-1)
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    if topics
        .iter()
        .flat_map(|t: &ListOffsetsTopicResponse| &t.partitions)
        .any(|p| p.error_code != 0)
    {
        conn.error_answered();
    }
    let resp = ListOffsetsResponse::default().with_topics(topics);
    Ok(Reply::Body(conn::encode_body(&resp, version)?))
}

fn answer(
    shared: &Shared,
    version: i16,
    topic: &str,
    p: &ListOffsetsPartition,
    committed: bool,
) -> ListOffsetsPartitionResponse {
    let resp = ListOffsetsPartitionResponse::default()
        .with_partition_index(p.partition_index)
        .with_leader_epoch(-1);
    let failed = |code: i16| {
        resp.clone()
            .with_error_code(code)
            .with_timestamp(-1)
            .with_offset(-1)
    };
    let Some(part) = u32::try_from(p.partition_index)
        .ok()
        .and_then(|i| shared.store.topic(topic).and_then(|t| t.partition(i)).ok())
    else {
        return failed(ResponseError::UnknownTopicOrPartition.code());
    };
    if p.timestamp == MAX_TIMESTAMP && version < 7 || p.timestamp < MAX_TIMESTAMP {
        // Kafka refuses a special timestamp the request version does not know.
        return failed(ResponseError::UnsupportedVersion.code());
    }
    match lookup(&part.log, p.timestamp, committed) {
        Ok(Some((offset, timestamp))) => resp.with_offset(offset as i64).with_timestamp(timestamp),
        Ok(None) => resp.with_offset(-1).with_timestamp(-1),
        Err(e) => {
            tracing::debug!(topic, partition = p.partition_index, error = %e, "list offsets failed");
            failed(errors::code(&e))
        }
    }
}

/// The (offset, timestamp) answering `timestamp`, or `None` for Kafka's "no such offset".
fn lookup(log: &Log, timestamp: i64, committed: bool) -> Result<Option<(u64, i64)>> {
    let last_fetchable = if committed {
        log.last_stable_offset()
    } else {
        log.high_watermark()
    };
    let found = match timestamp {
        LATEST => return Ok(Some((last_fetchable, -1))),
        EARLIEST => return Ok(Some((log.log_start_offset(), -1))),
        MAX_TIMESTAMP => log.offset_of_max_timestamp()?,
        t => log.offset_for_timestamp(t)?,
    };
    Ok(found.filter(|&(offset, _)| offset < last_fetchable))
}
