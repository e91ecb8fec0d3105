//! DeleteRecords (API 21, v0–2): move partitions' log start offsets forward (Kafka's
//! `Admin.deleteRecords`, `kafka-delete-records.sh`).
//!
//! Each partition's log start moves to the requested offset through
//! [`Log::delete_records_before`](crate::Log::delete_records_before): records below it are no
//! longer served (a fetch below gets OFFSET_OUT_OF_RANGE, ListOffsets earliest answers the new
//! start), the segments wholly below it are deleted, and a start inside a segment is recorded
//! durably before the answer, so it survives a restart. As Kafka's
//! `ReplicaManager.deleteRecordsOnLocalLog`: offset -1 means the high watermark, an offset
//! above the high watermark is OFFSET_OUT_OF_RANGE, an offset at or below the current start
//! changes nothing (the answer's low watermark is the current start), and a topic whose cleanup
//! policy does not include `delete` (compacted only) is refused with POLICY_VIOLATION.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_request::DeleteRecordsPartition;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{ApiKey, DeleteRecordsRequest, DeleteRecordsResponse};

use super::auth::{self, Operation, Resource};
use super::conn::{self, Close, Connection};
use super::dispatch::Reply;
use super::{errors, Shared};

/// Kafka's "up to the high watermark" offset in a DeleteRecords request.
const HIGH_WATERMARK: i64 = -1;

/// Answers a DeleteRecords request.
pub(super) fn handle(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: DeleteRecordsRequest = conn::decode_body(body, ApiKey::DeleteRecords, version)?;
    let topics: Vec<DeleteRecordsTopicResult> = req
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.as_str();
            // ACLs (Kafka's `KafkaApis.handleDeleteRecordsRequest`): Delete on the topic, else
            // TOPIC_AUTHORIZATION_FAILED (29) on its partitions.
            let allowed = auth::authorize(shared, conn, Operation::Delete, Resource::topic(name));
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            if allowed {
                                delete(shared, name, p)
                            } else {
                                DeleteRecordsPartitionResult::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                                    .with_low_watermark(-1)
                            }
                        })
                        .collect(),
                )
        })
        .collect();
    if topics
        .iter()
        .flat_map(|t: &DeleteRecordsTopicResult| &t.partitions)
        .any(|p| p.error_code != 0)
    {
        conn.error_answered();
    }
    let resp = DeleteRecordsResponse::default().with_topics(topics);
    Ok(Reply::Body(conn::encode_body(&resp, version)?))
}

fn delete(
    shared: &Shared,
    topic: &str,
    p: &DeleteRecordsPartition,
) -> DeleteRecordsPartitionResult {
    let result = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
    let failed = |code: i16| result.clone().with_error_code(code).with_low_watermark(-1);
    let Some(part) = u32::try_from(p.partition_index)
        .ok()
        .and_then(|i| shared.store.topic(topic).and_then(|t| t.partition(i)).ok())
    else {
        return failed(ResponseError::UnknownTopicOrPartition.code());
    };
    let log = &part.log;
    if !log.config().cleanup_policy.deletes() {
        return failed(ResponseError::PolicyViolation.code());
    }
    let offset = match p.offset {
        HIGH_WATERMARK => log.high_watermark(),
        o => match u64::try_from(o) {
            Ok(o) => o,
            Err(_) => return failed(ResponseError::OffsetOutOfRange.code()),
        },
    };
    match log.delete_records_before(offset) {
        Ok(start) => result.with_low_watermark(start as i64),
        Err(e) => {
            tracing::debug!(topic, partition = p.partition_index, offset, error = %e, "delete records failed");
            failed(errors::code(&e))
        }
    }
}
