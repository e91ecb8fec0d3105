//! Produce (API 0, v3–10): a client's record batches appended as they were sent.
//!
//! Each partition of a request carries one Kafka v2 record batch (Kafka's rule for Produce v3+:
//! `ProduceRequest.validateRecords` refuses a partition with no batch, with a batch of another
//! magic, or with more than one batch, with INVALID_RECORD). The batch is checked whole by
//! [`RecordBatch::from_bytes`] (framing, CRC-32C, counts, attributes) and appended through the
//! partition's [`Log::append`](crate::Log::append), which stamps its base offset and nothing
//! else: the records are stored byte for byte as the client encoded them, and a consumer's CRC
//! check passes on what Fetch serves back.
//!
//! **Idempotence** is the log's: a batch carries the client's producer id, epoch and sequence,
//! and the log's producer state (`log/producer_state.rs`) answers a retry of one of the
//! producer's last five batches with the original offsets (Kafka answers a duplicate with
//! success and the original base offset), a sequence gap with OUT_OF_ORDER_SEQUENCE_NUMBER
//! (45), and an epoch older than the partition has seen with INVALID_PRODUCER_EPOCH (47, what
//! Kafka's `ProducerAppendInfo.checkProducerEpoch` gives a produce request since KIP-588). A
//! producer id the partition does not know starts at any sequence (Kafka 2.5+, KIP-360).
//!
//! **Acknowledgement**: acks=0 gets no response at all; acks=1 and acks=-1 (all) are the same on
//! one node: the answer is written once the batch is in the log. Like Kafka, an acknowledgement
//! does not mean the batch was fsynced: that follows the topic's
//! [`FlushPolicy`](crate::FlushPolicy) (with `EveryAppend` the append returns only once the
//! batch is on disk, so the acknowledgement then does mean durable).
//!
//! Partitions are independent: a failed one gets its own error code and the others are
//! appended. A topic that does not exist is created when the store allows it
//! ([`StoreConfig::auto_create_topics`](crate::StoreConfig::auto_create_topics)), as a Kafka
//! broker with `auto.create.topics.enable` creates it on the producer's Metadata request.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use super::auth::{self, Operation, Resource};
use super::conn::{self, Close, Connection};
use super::dispatch::Reply;
use super::{errors, metadata, txn, Shared};
use crate::error::{Error, ErrorKind};
use crate::record::{codec, kafka, RecordBatch, TimestampType};
use crate::topic::TopicPartition;

/// A partition's failure: the Kafka error code and Riverbed's message.
struct Failure {
    code: i16,
    message: String,
}

impl Failure {
    fn new(error: ResponseError, message: impl Into<String>) -> Failure {
        Failure {
            code: error.code(),
            message: message.into(),
        }
    }
}

/// Where a partition's batch landed.
struct Appended {
    base_offset: i64,
    log_append_time: i64,
    log_start_offset: i64,
}

/// Answers a Produce request (no answer with acks=0).
pub(super) fn handle(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: ProduceRequest = conn::decode_body(body, ApiKey::Produce, version)?;
    let acks_valid = matches!(req.acks, -1..=1);
    // ACLs (Kafka's `KafkaApis.handleProduceRequest`): a request with transactional batches
    // needs Write on its transactional id, else every partition gets
    // TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53); each topic needs Write, else its partitions
    // get TOPIC_AUTHORIZATION_FAILED (29) and nothing of them is appended.
    let txn_denied = has_transactional_batch(&req)
        && !req.transactional_id.as_ref().is_some_and(|id| {
            auth::authorize(
                shared,
                conn,
                Operation::Write,
                Resource::transactional_id(id.as_str()),
            )
        });
    let mut appended_any = false;
    let mut responses = Vec::with_capacity(req.topic_data.len());
    for topic in &req.topic_data {
        let name = topic.name.0.as_str();
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        let topic_denied =
            !txn_denied && !auth::authorize(shared, conn, Operation::Write, Resource::topic(name));
        // Creating a topic on the way needs Create on the cluster or the topic, as Metadata's
        // auto-creation does.
        let may_create = !topic_denied && metadata::may_create(shared, conn, name);
        for p in &topic.partition_data {
            let result = if txn_denied {
                Err(Failure::new(
                    ResponseError::TransactionalIdAuthorizationFailed,
                    format!(
                        "not authorized to write with transactional id {:?}",
                        req.transactional_id.as_ref().map_or("", |t| t.as_str())
                    ),
                ))
            } else if topic_denied {
                Err(Failure::new(
                    ResponseError::TopicAuthorizationFailed,
                    format!("not authorized to write to topic {name:?}"),
                ))
            } else if acks_valid {
                produce_partition(
                    shared,
                    version,
                    req.transactional_id.as_ref().map(|t| t.0.as_str()),
                    name,
                    p.index,
                    p.records.as_ref(),
                    may_create,
                )
            } else {
                // Kafka: acks other than -1, 0, 1 fail every partition (INVALID_REQUIRED_ACKS).
                Err(Failure::new(
                    ResponseError::InvalidRequiredAcks,
                    format!("acks must be -1, 0 or 1, not {}", req.acks),
                ))
            };
            let resp = PartitionProduceResponse::default().with_index(p.index);
            partitions.push(match result {
                Ok(a) => {
                    appended_any = true;
                    resp.with_base_offset(a.base_offset)
                        .with_log_append_time_ms(a.log_append_time)
                        .with_log_start_offset(a.log_start_offset)
                }
                Err(f) => {
                    tracing::debug!(topic = name, partition = p.index, code = f.code, message = %f.message, "produce refused");
                    let mut resp = resp
                        .with_error_code(f.code)
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1);
                    if version >= 8 {
                        if f.code == ResponseError::InvalidRecord.code() {
                            // The batch as a whole is refused: Kafka lists the record at fault
                            // where it knows one; here the message names the batch's problem.
                            resp = resp.with_record_errors(vec![BatchIndexAndErrorMessage::default()
                                .with_batch_index(0)
                                .with_batch_index_error_message(Some(StrBytes::from_string(
                                    f.message.clone(),
                                )))]);
                        }
                        resp = resp.with_error_message(Some(StrBytes::from_string(f.message)));
                    }
                    resp
                }
            });
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name.clone())
                .with_partition_responses(partitions),
        );
    }
    if responses
        .iter()
        .flat_map(|t: &TopicProduceResponse| &t.partition_responses)
        .any(|p| p.error_code != 0)
    {
        conn.error_answered();
    }
    if appended_any {
        // In-process pollers and remote long polls wait on the store's notifier.
        shared.store.notify().notify();
    }
    if req.acks == 0 {
        return Ok(Reply::None);
    }
    let resp = ProduceResponse::default().with_responses(responses);
    Ok(Reply::Body(conn::encode_body(&resp, version)?))
}

/// Validates and appends the batch sent for one partition.
fn produce_partition(
    shared: &Shared,
    version: i16,
    transactional_id: Option<&str>,
    topic: &str,
    index: i32,
    records: Option<&Bytes>,
    may_create: bool,
) -> Result<Appended, Failure> {
    let bytes = records.map_or(&[][..], |b| &b[..]);
    let batch = single_batch(version, bytes)?;
    let partition = u32::try_from(index).map_err(|_| {
        Failure::new(
            ResponseError::UnknownTopicOrPartition,
            format!("partition {index} of topic {topic:?} does not exist"),
        )
    })?;
    let t = if may_create {
        shared.store.topic_or_create(topic)
    } else {
        shared.store.topic(topic)
    }
    .map_err(|e| store_failure(&e))?;
    let part = t.partition(partition).map_err(|e| store_failure(&e))?;
    let header = batch.header();
    let appended = if header.is_transactional() {
        let tp = TopicPartition::new(topic, partition);
        txn::with_transaction(
            &shared.store,
            transactional_id,
            header.producer_id,
            header.producer_epoch,
            &tp,
            || part.log.append(&batch),
        )
        .map_err(|code| transaction_failure(code, transactional_id, &tp, &header))?
    } else {
        part.log.append(&batch)
    };
    let info = match appended {
        Ok(info) => info,
        Err(e) => return Err(append_failure(&e, header.codec())),
    };
    let log_append_time = if part.log.config().timestamp_type == TimestampType::LogAppendTime {
        info.timestamp
    } else {
        -1
    };
    Ok(Appended {
        base_offset: info.base_offset as i64,
        log_append_time,
        log_start_offset: part.log.log_start_offset() as i64,
    })
}

/// Whether any partition of `req` carries a transactional batch (Kafka's
/// `RequestUtils.hasTransactionalRecords`: the transactional bit of the batch attributes).
fn has_transactional_batch(req: &ProduceRequest) -> bool {
    req.topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .filter_map(|p| p.records.as_ref())
        .filter_map(|b| b.get(kafka::ATTRIBUTES))
        .filter_map(|a| <[u8; 2]>::try_from(a).ok())
        .any(|a| {
            #[allow(
                clippy::big_endian_bytes,
                reason = "Kafka's batch header is big-endian"
            )]
            let attributes = u16::from_be_bytes(a);
            attributes & codec::ATTR_TRANSACTIONAL != 0
        })
}

/// The one v2 batch of a partition's records, checked (Kafka's `ProduceRequest.validateRecords`
/// and `UnifiedLog.analyzeAndValidateRecords` rules, then the batch's own CRC and framing).
fn single_batch(version: i16, bytes: &[u8]) -> Result<RecordBatch, Failure> {
    let invalid = |m: String| Failure::new(ResponseError::InvalidRecord, m);
    if bytes.is_empty() {
        return Err(invalid(format!(
            "Produce requests with version {version} must have at least one record batch per \
             partition"
        )));
    }
    let len = (bytes.len() >= kafka::BATCH_LENGTH.end)
        .then(|| kafka::batch_length(bytes))
        .flatten()
        .map(|l| l as usize + kafka::BATCH_LENGTH.end);
    let Some(len) = len else {
        return Err(Failure::new(
            ResponseError::CorruptMessage,
            format!(
                "{} bytes of records do not start with a record batch header",
                bytes.len()
            ),
        ));
    };
    if bytes.get(kafka::MAGIC) != Some(&kafka::MAGIC_V2) {
        return Err(invalid(format!(
            "Produce requests with version {version} are only allowed to contain record batches \
             with magic version 2 (found magic {:?})",
            bytes.get(kafka::MAGIC)
        )));
    }
    if len < bytes.len() {
        return Err(invalid(format!(
            "Produce requests with version {version} are only allowed to contain exactly one \
             record batch per partition ({} bytes follow the first batch of {len})",
            bytes.len() - len
        )));
    }
    #[allow(
        clippy::big_endian_bytes,
        reason = "Kafka's batch header is big-endian"
    )]
    let base_offset = bytes
        .get(kafka::BASE_OFFSET)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, i64::from_be_bytes);
    if base_offset != 0 {
        return Err(invalid(format!(
            "the base offset of a produced record batch must be 0, not {base_offset}"
        )));
    }
    let batch = RecordBatch::from_bytes(bytes.to_vec()).map_err(|e| {
        let code = match e.kind() {
            ErrorKind::Corruption { .. } => ResponseError::CorruptMessage,
            _ => ResponseError::InvalidRecord,
        };
        Failure::new(code, e.to_string())
    })?;
    let codec = batch.header().codec();
    if version < 7 && codec == kafka::CODEC_ZSTD {
        // Kafka: zstd needs Produce v7 (KIP-110), older requests get this error.
        return Err(Failure::new(
            ResponseError::UnsupportedCompressionType,
            format!("zstd batches need Produce v7 or later, this request is v{version}"),
        ));
    }
    // Every record (and header) must decode, compressed or not, as Kafka's `LogValidator`
    // checks before appending; a record that does not is Kafka's InvalidRecordException
    // (`DefaultRecord.readFrom`: "Invalid record size …", "Found invalid record structure"),
    // INVALID_RECORD (87), and the batch is not stored. A codec this build cannot decode is
    // answered as the append would answer it.
    batch.check_records().map_err(|e| match e.kind() {
        ErrorKind::Corruption { .. } => {
            invalid(format!("the records of the batch do not decode: {e}"))
        }
        _ => append_failure(&e, codec),
    })?;
    Ok(batch)
}

/// Why a transactional batch was refused by [`txn::with_transaction`], which appends it only
/// inside the open transaction of its producer that added the partition (Kafka's answers:
/// "Partition was not added to the transaction" is INVALID_TXN_STATE for Produce up to v10).
fn transaction_failure(
    code: ResponseError,
    transactional_id: Option<&str>,
    tp: &TopicPartition,
    header: &crate::record::codec::BatchHeader,
) -> Failure {
    let (pid, epoch) = (header.producer_id, header.producer_epoch);
    let message = match code {
        ResponseError::TransactionalIdAuthorizationFailed => {
            "a transactional batch needs the request's transactional id".to_string()
        }
        ResponseError::InvalidTxnState => format!(
            "partition {tp} was not added to the transaction of producer {pid} (epoch {epoch})"
        ),
        _ => format!(
            "producer {pid} epoch {epoch} is not the current producer of transactional id \
             {transactional_id:?}"
        ),
    };
    Failure::new(code, message)
}

/// A failure to find or create the topic or partition.
fn store_failure(e: &Error) -> Failure {
    Failure {
        code: errors::code(e),
        message: e.to_string(),
    }
}

/// A failed append as Kafka's produce errors.
fn append_failure(e: &Error, codec: u16) -> Failure {
    let error = match e.kind() {
        // The log refuses codecs it cannot read back (gzip, snappy, lz4 in a build without
        // their decoders): Kafka's answer for a codec the broker does not take.
        ErrorKind::InvalidArgument(_)
            if codec != kafka::CODEC_NONE && codec != kafka::CODEC_ZSTD =>
        {
            ResponseError::UnsupportedCompressionType
        }
        // Everything the log refuses about a batch's content (a control batch from a client, a
        // producer batch without a sequence, offsets that do not match the count) is Kafka's
        // INVALID_RECORD (`LogValidator` raises InvalidRecordException for each).
        ErrorKind::InvalidArgument(_) => ResponseError::InvalidRecord,
        ErrorKind::Fenced { .. } => ResponseError::InvalidProducerEpoch,
        _ => errors::response_error(e),
    };
    Failure {
        code: error.code(),
        message: e.to_string(),
    }
}
