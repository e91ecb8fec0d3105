//! Riverbed's errors as Kafka error codes.
//!
//! Every handler answers a failed partition, group or transaction call with the code a Kafka
//! client knows how to act on (retry, refresh metadata, rejoin, give up), and keeps Riverbed's
//! message in the response's error-message field where the API has one. The match is
//! exhaustive on purpose: a new [`ErrorKind`] must be given its Kafka meaning here.

use kafka_protocol::error::ResponseError;

use crate::error::{Error, ErrorKind};

/// The Kafka error a client should see for `e`.
pub(crate) fn response_error(e: &Error) -> ResponseError {
    match e.kind() {
        // Kafka's KAFKA_STORAGE_ERROR is retriable: the client retries rather than dropping
        // the request, which is right for a full disk or a transient I/O failure.
        ErrorKind::Io { .. } | ErrorKind::NoSpace { .. } => ResponseError::KafkaStorageError,
        ErrorKind::Corruption { .. } => ResponseError::CorruptMessage,
        ErrorKind::UnsupportedVersion { .. } => ResponseError::KafkaStorageError,
        ErrorKind::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        ErrorKind::RecordTooLarge { .. } => ResponseError::MessageTooLarge,
        // A compacted topic refuses a record without a key: Kafka answers a produce of such a
        // record with INVALID_RECORD (KIP-467).
        ErrorKind::KeyRequired { .. } => ResponseError::InvalidRecord,
        ErrorKind::InvalidArgument(_) => ResponseError::InvalidRequest,
        ErrorKind::InvalidConfig { .. } => ResponseError::InvalidConfig,
        ErrorKind::Locked { .. } | ErrorKind::MetadataMismatch { .. } => {
            ResponseError::KafkaStorageError
        }
        ErrorKind::UnknownTopic { .. } | ErrorKind::UnknownPartition { .. } => {
            ResponseError::UnknownTopicOrPartition
        }
        ErrorKind::TopicExists { .. } => ResponseError::TopicAlreadyExists,
        ErrorKind::NotAssigned { .. } => ResponseError::UnknownTopicOrPartition,
        ErrorKind::NoOffset { .. } => ResponseError::OffsetOutOfRange,
        ErrorKind::CommitFailed { .. } => ResponseError::IllegalGeneration,
        ErrorKind::Poisoned { .. } | ErrorKind::Closed { .. } => ResponseError::KafkaStorageError,
        ErrorKind::Fenced { .. } => ResponseError::ProducerFenced,
        ErrorKind::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        ErrorKind::InvalidTransactionState { .. } => ResponseError::InvalidTxnState,
        ErrorKind::Deserialization { .. }
        | ErrorKind::Serialization { .. }
        | ErrorKind::StreamsProcessing { .. }
        | ErrorKind::InvalidStateStore { .. } => ResponseError::UnknownServerError,
    }
}

/// `e`'s Kafka error code.
pub(crate) fn code(e: &Error) -> i16 {
    response_error(e).code()
}
