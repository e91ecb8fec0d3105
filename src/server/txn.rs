//! Producer ids and transactions over the wire: InitProducerId, AddPartitionsToTxn,
//! AddOffsetsToTxn, TxnOffsetCommit and EndTxn, on the store's own transaction coordinator
//! (`coordinator::txn`), the one [`TransactionalProducer`](crate::TransactionalProducer) uses.
//!
//! A remote transactional producer and an in-process one are the same thing to the
//! coordinator: an entry per transactional id holding the producer id, the epoch and the open
//! transaction (its partitions, and the offsets log when it commits a group's offsets). The
//! differences are only where the data comes from: a remote producer's batches arrive in
//! Produce requests with its own sequence numbers, so a partition is added to the transaction
//! (`AddPartitionsToTxn`) before anything is written to it and the first sequence the decision
//! records is read from the log at commit.
//!
//! Every request after InitProducerId is keyed by (transactional id, producer id, epoch), and
//! answered as Kafka's `TransactionCoordinator` answers it (pre-KIP-890 protocol, versions 0–3):
//! - an unknown transactional id, or another producer id: INVALID_PRODUCER_ID_MAPPING (49);
//! - another epoch (a newer producer registered, or the transaction timed out — Kafka bumps the
//!   epoch when it aborts a timed-out transaction, fencing its producer): PRODUCER_FENCED (90),
//!   which requests older than KIP-588's versions (InitProducerId < 4, AddPartitionsToTxn,
//!   AddOffsetsToTxn and EndTxn < 2, TxnOffsetCommit at every version we serve) see as
//!   INVALID_PRODUCER_EPOCH (47), as Kafka's `KafkaApis` rewrites it for them;
//! - EndTxn without an open transaction: INVALID_TXN_STATE (48), except a retry of the
//!   outcome just reached (Kafka answers NONE in `CompleteCommit`/`CompleteAbort`);
//! - markers of the previous transaction still unwritten (a full disk): CONCURRENT_TRANSACTIONS
//!   (51), which clients retry, as Kafka answers while its markers are pending.
//!
//! Unlike Kafka, EndTxn writes its markers before it answers (the coordinator is in the same
//! process as the logs), so a client's next transaction never waits for them; and fencing an
//! open transaction in InitProducerId aborts it at once and answers with the new epoch, where
//! Kafka answers CONCURRENT_TRANSACTIONS and expects a retry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, ApiKey, EndTxnRequest, EndTxnResponse, InitProducerIdRequest,
    InitProducerIdResponse, ProducerId, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use parking_lot::{Mutex, MutexGuard};

use super::auth::{self, Operation, Resource};
use super::conn::{decode_body, encode_body, Close, Connection};
use super::dispatch::Reply;
use super::errors::response_error;
use super::Shared;
use crate::consumer::OffsetAndMetadata;
use crate::coordinator::offsets::OFFSETS_TOPIC;
use crate::coordinator::txn::{Member, OpenTxn, Target, TxnEntry, UNKNOWN_SEQUENCE};
use crate::error::ErrorKind;
use crate::record::{ControlType, ProducerFields};
use crate::store::Store;
use crate::topic::TopicPartition;

/// The longest transaction timeout a client may ask for: Kafka's default
/// `transaction.max.timeout.ms` (15 minutes). Beyond it InitProducerId answers
/// INVALID_TRANSACTION_TIMEOUT (50), as Kafka's coordinator does.
pub(crate) const MAX_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// A fencing error as the request's version understands it: PRODUCER_FENCED from `since` on
/// (KIP-588), INVALID_PRODUCER_EPOCH before.
fn fenced(version: i16, since: i16) -> ResponseError {
    if version >= since {
        ResponseError::ProducerFenced
    } else {
        ResponseError::InvalidProducerEpoch
    }
}

/// `e` as Kafka's code, with fencing rewritten for the request's version.
fn code_of(e: &crate::Error, version: i16, fenced_since: i16) -> i16 {
    match response_error(e) {
        ResponseError::ProducerFenced => fenced(version, fenced_since).code(),
        other => other.code(),
    }
}

/// InitProducerId v0–4.
pub(super) fn init_producer_id(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: InitProducerIdRequest = decode_body(body, ApiKey::InitProducerId, version)?;
    // ACLs (Kafka's `KafkaApis.handleInitProducerIdRequest`): Write on the transactional id
    // (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED, 53); an idempotent producer needs
    // IdempotentWrite on the cluster, which Write on any topic implies (KIP-679), else
    // CLUSTER_AUTHORIZATION_FAILED (31).
    let allowed = match req.transactional_id.as_ref() {
        Some(id) => write_txn(shared, conn, id.0.as_str())
            .then_some(())
            .ok_or(ResponseError::TransactionalIdAuthorizationFailed.code()),
        None => auth::authorize(
            shared,
            conn,
            Operation::IdempotentWrite,
            Resource::cluster(),
        )
        .then_some(())
        .ok_or(ResponseError::ClusterAuthorizationFailed.code()),
    };
    let resp = match allowed.and_then(|()| init(&shared.store, &req, version)) {
        Ok((producer_id, epoch)) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch),
        Err(code) => {
            conn.error_answered();
            InitProducerIdResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        }
    };
    Ok(Reply::Body(encode_body(&resp, version)?))
}

/// Whether the connection's principal may use transactional id `id` (Write on it).
fn write_txn(shared: &Shared, conn: &Connection, id: &str) -> bool {
    auth::authorize(
        shared,
        conn,
        Operation::Write,
        Resource::transactional_id(id),
    )
}

fn init(store: &Store, req: &InitProducerIdRequest, version: i16) -> Result<(i64, i16), i16> {
    // KafkaApis: a producer id without an epoch (or the other way round) is INVALID_REQUEST.
    let expected = match (req.producer_id.0, req.producer_epoch) {
        (-1, -1) => None,
        (-1, _) | (_, -1) => return Err(ResponseError::InvalidRequest.code()),
        (pid, epoch) => Some((pid, epoch)),
    };
    let Some(id) = req.transactional_id.as_ref().map(|t| t.0.as_str()) else {
        // An idempotent producer: Kafka's coordinator "blindly accepts" and hands out a new
        // producer id with epoch 0, also for a KIP-360 bump (producer id and epoch given): the
        // partitions then see a new producer and its sequences start over.
        let pid = store
            .txns()
            .allocate_producer_id()
            .map_err(|e| response_error(&e).code())?;
        return Ok((pid, 0));
    };
    if id.is_empty() {
        return Err(ResponseError::InvalidRequest.code());
    }
    let timeout_ms = req.transaction_timeout_ms;
    if timeout_ms <= 0 || i64::from(timeout_ms) > MAX_TRANSACTION_TIMEOUT.as_millis() as i64 {
        return Err(ResponseError::InvalidTransactionTimeout.code());
    }
    let code = |e: crate::Error| code_of(&e, version, 4);
    // Transactions a crash left open come first (see `TransactionalProducer` init).
    store
        .txns()
        .finish_recovery(store.offsets())
        .map_err(code)?;
    let entry = store.txns().entry(id).map_err(code)?;
    let mut e = entry.lock();
    if let Some((pid, epoch)) = expected {
        // Kafka's `isValidProducerId` and `prepareIncrementProducerEpoch`: the producer that
        // asks for a bump must be the current one (or the id was just created); a retry of a
        // bump already made gets the current epoch back; anyone else is fenced.
        if e.epoch != -1 {
            if pid != e.producer_id {
                return Err(fenced(version, 4).code());
            }
            if epoch != e.epoch {
                if epoch == e.epoch.wrapping_sub(1) && e.open.is_none() {
                    return Ok((e.producer_id, e.epoch));
                }
                return Err(fenced(version, 4).code());
            }
        }
    }
    store.txns().init(&mut e, store.offsets()).map_err(code)?;
    e.timeout = Duration::from_millis(timeout_ms as u64);
    store.notify().notify();
    Ok((e.producer_id, e.epoch))
}

/// The entry of `id` if `(producer_id, epoch)` is its current producer, else the error Kafka
/// gives (see the module docs). `fenced_since`: the first version that knows PRODUCER_FENCED.
fn owned_entry(
    store: &Store,
    id: &str,
    producer_id: i64,
    epoch: i16,
    version: i16,
    fenced_since: i16,
) -> Result<Arc<Mutex<TxnEntry>>, ResponseError> {
    let Some(entry) = store.txns().existing_entry(id) else {
        return Err(ResponseError::InvalidProducerIdMapping);
    };
    {
        let e = entry.lock();
        check_owner(&e, producer_id, epoch, version, fenced_since)?;
    }
    Ok(entry)
}

fn check_owner(
    e: &TxnEntry,
    producer_id: i64,
    epoch: i16,
    version: i16,
    fenced_since: i16,
) -> Result<(), ResponseError> {
    if e.epoch < 0 || e.producer_id != producer_id {
        return Err(ResponseError::InvalidProducerIdMapping);
    }
    // Kafka enforces strict equality for client requests; a transaction aborted by its timeout
    // fenced its producer (Kafka bumps the epoch to abort it).
    if e.epoch != epoch || e.aborted_by_timeout {
        return Err(fenced(version, fenced_since));
    }
    Ok(())
}

/// Locks `entry`, checks the owner again (it may have changed since `owned_entry`) and writes
/// any markers a full disk held back: the previous transaction must be over before the next
/// one starts. Still no room: CONCURRENT_TRANSACTIONS, which clients retry.
fn lock_ready<'a>(
    store: &Store,
    entry: &'a Mutex<TxnEntry>,
    producer_id: i64,
    epoch: i16,
    version: i16,
    fenced_since: i16,
) -> Result<MutexGuard<'a, TxnEntry>, ResponseError> {
    let mut e = entry.lock();
    check_owner(&e, producer_id, epoch, version, fenced_since)?;
    match store.txns().finish_markers(&mut e, store.offsets()) {
        Ok(()) => Ok(e),
        Err(err) if err.is_no_space() => Err(ResponseError::ConcurrentTransactions),
        Err(err) => Err(response_error(&err)),
    }
}

/// Opens a transaction for `e` if none is open: Kafka's Empty/Complete → Ongoing, on the first
/// partition or group added. Its timeout runs from here.
fn ensure_open(e: &mut TxnEntry) -> &mut OpenTxn {
    if e.open.is_none() {
        e.last_end = None;
    }
    let timeout = e.timeout;
    e.open.get_or_insert_with(|| OpenTxn {
        started: Instant::now(),
        timeout,
        members: Vec::new(),
        failed: None,
    })
}

/// AddPartitionsToTxn v0–3.
pub(super) fn add_partitions_to_txn(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: AddPartitionsToTxnRequest = decode_body(body, ApiKey::AddPartitionsToTxn, version)?;
    let store = &shared.store;
    // Resolve every partition first: an unknown one fails the request, the others are "not
    // attempted" (KafkaApis.handleAddPartitionsToTxnRequest).
    // ACLs (Kafka's `KafkaApis.handleAddPartitionsToTxnRequest`): Write on the transactional
    // id, else every partition gets TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53); Write on each
    // topic, else its partitions get TOPIC_AUTHORIZATION_FAILED (29) and the rest
    // OPERATION_NOT_ATTEMPTED.
    let txn_allowed = write_txn(shared, conn, req.v3_and_below_transactional_id.0.as_str());
    let mut parts = Vec::new();
    let mut unknown = Vec::new();
    let mut denied = Vec::new();
    for t in &req.v3_and_below_topics {
        let writable = txn_allowed
            && auth::authorize(
                shared,
                conn,
                Operation::Write,
                Resource::topic(t.name.as_str()),
            );
        for &p in &t.partitions {
            let name = t.name.0.as_str();
            if !writable {
                denied.push((name.to_string(), p));
                continue;
            }
            let found = u32::try_from(p)
                .ok()
                .map(|p| TopicPartition::new(name, p))
                .and_then(|tp| store.partition(&tp).ok().map(|part| (tp, part)));
            match found {
                Some(found) => parts.push(found),
                None => unknown.push((name.to_string(), p)),
            }
        }
    }
    let outcome: Result<(), ResponseError> = if !txn_allowed {
        Err(ResponseError::TransactionalIdAuthorizationFailed)
    } else if !unknown.is_empty() || !denied.is_empty() {
        Err(ResponseError::OperationNotAttempted)
    } else {
        (|| {
            let entry = owned_entry(
                store,
                req.v3_and_below_transactional_id.0.as_str(),
                req.v3_and_below_producer_id.0,
                req.v3_and_below_producer_epoch,
                version,
                2,
            )?;
            let mut e = lock_ready(
                store,
                &entry,
                req.v3_and_below_producer_id.0,
                req.v3_and_below_producer_epoch,
                version,
                2,
            )?;
            let open = ensure_open(&mut e);
            for (tp, part) in &parts {
                if !open.members.iter().any(|(t, _)| t == tp) {
                    open.members.push((
                        tp.clone(),
                        Member {
                            target: Target::Partition(Arc::clone(part)),
                            first_sequence: UNKNOWN_SEQUENCE,
                        },
                    ));
                }
            }
            Ok(())
        })()
    };
    let mut results: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for t in &req.v3_and_below_topics {
        let partitions = t
            .partitions
            .iter()
            .map(|&p| {
                let listed = |l: &[(String, i32)]| {
                    l.iter().any(|(n, up)| n == t.name.0.as_str() && *up == p)
                };
                let code = if !txn_allowed {
                    ResponseError::TransactionalIdAuthorizationFailed.code()
                } else if listed(&denied) {
                    ResponseError::TopicAuthorizationFailed.code()
                } else if listed(&unknown) {
                    ResponseError::UnknownTopicOrPartition.code()
                } else {
                    outcome.map_or_else(|e| e.code(), |()| 0)
                };
                AddPartitionsToTxnPartitionResult::default()
                    .with_partition_index(p)
                    .with_partition_error_code(code)
            })
            .collect();
        results.push(
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(partitions),
        );
    }
    if !unknown.is_empty() || !denied.is_empty() || outcome.is_err() {
        conn.error_answered();
    }
    let resp = AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    Ok(Reply::Body(encode_body(&resp, version)?))
}

/// AddOffsetsToTxn v0–3: the offsets log joins the transaction (Kafka adds the group's
/// `__consumer_offsets` partition), so that TxnOffsetCommit may stage offsets in it.
pub(super) fn add_offsets_to_txn(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: AddOffsetsToTxnRequest = decode_body(body, ApiKey::AddOffsetsToTxn, version)?;
    let store = &shared.store;
    let outcome = (|| -> Result<(), ResponseError> {
        // ACLs (Kafka's `KafkaApis.handleAddOffsetsToTxnRequest`): Write on the transactional
        // id (53), then Read on the group (30).
        if !write_txn(shared, conn, req.transactional_id.0.as_str()) {
            return Err(ResponseError::TransactionalIdAuthorizationFailed);
        }
        if !auth::authorize(
            shared,
            conn,
            Operation::Read,
            Resource::group(&req.group_id),
        ) {
            return Err(ResponseError::GroupAuthorizationFailed);
        }
        if req.group_id.0.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let (id, pid, epoch) = (
            req.transactional_id.0.as_str(),
            req.producer_id.0,
            req.producer_epoch,
        );
        let entry = owned_entry(store, id, pid, epoch, version, 2)?;
        let mut e = lock_ready(store, &entry, pid, epoch, version, 2)?;
        add_offsets_member(&mut e);
        Ok(())
    })();
    if outcome.is_err() {
        conn.error_answered();
    }
    let resp =
        AddOffsetsToTxnResponse::default().with_error_code(outcome.err().map_or(0, |e| e.code()));
    Ok(Reply::Body(encode_body(&resp, version)?))
}

/// Adds the offsets log to `e`'s transaction (opening one if needed), with the sequence its
/// first offsets batch will carry (what recovery matches, as `send_offsets` records it).
fn add_offsets_member(e: &mut TxnEntry) {
    let offsets_tp = TopicPartition::new(OFFSETS_TOPIC, 0);
    let seq = e.sequences.get(&offsets_tp).copied().unwrap_or(0);
    let open = ensure_open(e);
    if !open.members.iter().any(|(t, _)| *t == offsets_tp) {
        open.members.push((
            offsets_tp,
            Member {
                target: Target::Offsets,
                first_sequence: seq,
            },
        ));
    }
}

/// TxnOffsetCommit v0–3: stages offsets in the open transaction; they become the group's
/// committed offsets when it commits, and are dropped if it aborts.
pub(super) fn txn_offset_commit(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: TxnOffsetCommitRequest = decode_body(body, ApiKey::TxnOffsetCommit, version)?;
    let store = &shared.store;
    // ACLs (Kafka's `KafkaApis.handleTxnOffsetCommitRequest`): Write on the transactional id
    // (53 on every partition), Read on the group (30 on every partition), Read on each topic
    // (29 on its partitions, the others committed).
    let txn_allowed = write_txn(shared, conn, req.transactional_id.0.as_str());
    let group_allowed = auth::authorize(
        shared,
        conn,
        Operation::Read,
        Resource::group(&req.group_id),
    );
    let mut offsets = Vec::new();
    let mut invalid = Vec::new();
    let mut unknown = Vec::new();
    let mut denied = Vec::new();
    for t in &req.topics {
        if !auth::authorize(
            shared,
            conn,
            Operation::Read,
            Resource::topic(t.name.as_str()),
        ) {
            denied.extend(
                t.partitions
                    .iter()
                    .map(|p| (t.name.0.as_str().to_string(), p.partition_index)),
            );
            continue;
        }
        for p in &t.partitions {
            match (
                u32::try_from(p.partition_index),
                u64::try_from(p.committed_offset),
            ) {
                // Kafka's KafkaApis answers a partition it does not know with
                // UNKNOWN_TOPIC_OR_PARTITION and commits the others.
                (Ok(part), Ok(_))
                    if store
                        .partition(&TopicPartition::new(t.name.0.as_str(), part))
                        .is_err() =>
                {
                    unknown.push((t.name.0.as_str().to_string(), p.partition_index));
                }
                (Ok(part), Ok(offset)) => offsets.push((
                    TopicPartition::new(t.name.0.as_str(), part),
                    OffsetAndMetadata {
                        offset,
                        metadata: p
                            .committed_metadata
                            .as_ref()
                            .map(|m| m.as_str().to_string())
                            .unwrap_or_default(),
                    },
                )),
                _ => invalid.push((t.name.0.as_str().to_string(), p.partition_index)),
            }
        }
    }
    let outcome = (|| -> Result<(), ResponseError> {
        if !txn_allowed {
            return Err(ResponseError::TransactionalIdAuthorizationFailed);
        }
        if !group_allowed {
            return Err(ResponseError::GroupAuthorizationFailed);
        }
        if req.group_id.0.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        if !invalid.is_empty() {
            // A negative partition or offset: nothing is staged.
            return Err(ResponseError::InvalidRequest);
        }
        // TxnOffsetCommit has no PRODUCER_FENCED version (KIP-588 left it out): a fenced
        // producer sees INVALID_PRODUCER_EPOCH at every version.
        let (id, pid, epoch) = (
            req.transactional_id.0.as_str(),
            req.producer_id.0,
            req.producer_epoch,
        );
        let entry = owned_entry(store, id, pid, epoch, version, i16::MAX)?;
        // KIP-447 (v3): a member id and generation are checked against the group, as an
        // OffsetCommit's are; generation -1 with no member id is a "simple" commit.
        let member = (!req.member_id.is_empty()).then(|| req.member_id.as_str());
        if member.is_some() || req.generation_id >= 0 {
            let tps: Vec<&TopicPartition> = offsets.iter().map(|(tp, _)| tp).collect();
            let group = store.existing_group(req.group_id.0.as_str());
            match (group, member) {
                (Some(g), _) => {
                    let generation = u32::try_from(req.generation_id).unwrap_or(u32::MAX);
                    g.check_commit(member, generation, &tps)
                        .map_err(|e| match e.kind() {
                            ErrorKind::CommitFailed { reason } if reason.contains("no longer") => {
                                ResponseError::UnknownMemberId
                            }
                            _ => ResponseError::IllegalGeneration,
                        })?;
                }
                (None, Some(_)) => return Err(ResponseError::UnknownMemberId),
                (None, None) => return Err(ResponseError::IllegalGeneration),
            }
        }
        let mut e = lock_ready(store, &entry, pid, epoch, version, i16::MAX)?;
        if e.open.is_none() {
            return Err(ResponseError::InvalidTxnState);
        }
        if offsets.is_empty() {
            return Ok(());
        }
        // Staged under the offsets log's membership of the transaction (AddOffsetsToTxn adds
        // it; a client that skipped it gets it added here rather than offsets no marker ends).
        add_offsets_member(&mut e);
        let offsets_tp = TopicPartition::new(OFFSETS_TOPIC, 0);
        let seq = e.sequences.get(&offsets_tp).copied().unwrap_or(0);
        let fields = ProducerFields {
            producer_id: e.producer_id,
            producer_epoch: e.epoch,
            base_sequence: seq,
        };
        match store
            .offsets()
            .commit_transactional(req.group_id.0.as_str(), &offsets, fields)
        {
            Ok(n) => {
                let next = (i64::from(seq) + i64::from(n)) % (i64::from(i32::MAX) + 1);
                e.sequences.insert(offsets_tp, next as i32);
                Ok(())
            }
            Err(err) => {
                if !matches!(
                    err.kind(),
                    ErrorKind::InvalidArgument(_) | ErrorKind::RecordTooLarge { .. }
                ) {
                    // Something may have been written: the transaction can only abort.
                    if let Some(open) = e.open.as_mut() {
                        open.failed = Some(err.to_string());
                    }
                }
                Err(response_error(&err))
            }
        }
    })();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            let listed = |l: &[(String, i32)]| {
                                l.iter()
                                    .any(|(n, i)| n == t.name.0.as_str() && *i == p.partition_index)
                            };
                            let code = if !txn_allowed || !group_allowed {
                                outcome.map_or_else(|e| e.code(), |()| 0)
                            } else if listed(&denied) {
                                ResponseError::TopicAuthorizationFailed.code()
                            } else if listed(&unknown) {
                                ResponseError::UnknownTopicOrPartition.code()
                            } else {
                                outcome.map_or_else(|e| e.code(), |()| 0)
                            };
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    if !unknown.is_empty() || !denied.is_empty() || outcome.is_err() {
        conn.error_answered();
    }
    let resp = TxnOffsetCommitResponse::default().with_topics(topics);
    Ok(Reply::Body(encode_body(&resp, version)?))
}

/// EndTxn v0–3: commits or aborts the open transaction, writing its markers to every partition
/// it added and to the offsets log before answering.
pub(super) fn end_txn(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: EndTxnRequest = decode_body(body, ApiKey::EndTxn, version)?;
    let store = &shared.store;
    let (id, pid, epoch) = (
        req.transactional_id.0.as_str(),
        req.producer_id.0,
        req.producer_epoch,
    );
    let outcome = (|| -> Result<(), i16> {
        // ACLs (Kafka's `KafkaApis.handleEndTxnRequest`): Write on the transactional id.
        if !write_txn(shared, conn, id) {
            return Err(ResponseError::TransactionalIdAuthorizationFailed.code());
        }
        let entry = owned_entry(store, id, pid, epoch, version, 2).map_err(|e| e.code())?;
        let mut e = lock_ready(store, &entry, pid, epoch, version, 2).map_err(|e| e.code())?;
        let kind = if req.committed {
            ControlType::Commit
        } else {
            ControlType::Abort
        };
        if e.open.is_none() {
            // Kafka: a retry in CompleteCommit/CompleteAbort of the same outcome succeeds;
            // Empty, or the other outcome, is INVALID_TXN_STATE.
            return if e.last_end == Some(kind) {
                Ok(())
            } else {
                Err(ResponseError::InvalidTxnState.code())
            };
        }
        let result = if req.committed {
            store.txns().commit(&mut e, store.offsets())
        } else {
            store.txns().abort(&mut e, store.offsets())
        };
        store.notify().notify();
        result.map_err(|err| code_of(&err, version, 2))
    })();
    if outcome.is_err() {
        conn.error_answered();
    }
    let resp = EndTxnResponse::default().with_error_code(outcome.err().unwrap_or(0));
    Ok(Reply::Body(encode_body(&resp, version)?))
}

/// Runs `append` (the Produce handler's append of a transactional batch to `tp`) if the
/// batch's producer is the current one of `transactional_id` with a transaction open that added
/// `tp`, holding the transaction while it runs, so that an EndTxn cannot end it between the
/// check and the append. Otherwise the batch would open a transaction in the log that no
/// coordinator decision ever ends (holding the partition's last stable offset forever).
///
/// `transactional_id` is the Produce request's. Errors, as Kafka answers a Produce v3–10:
/// - no transactional id: TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53), which Kafka's `KafkaApis`
///   answers for the whole request when it holds transactional records without one;
/// - INVALID_PRODUCER_ID_MAPPING, or INVALID_PRODUCER_EPOCH for a fenced producer (Produce has
///   no PRODUCER_FENCED; a transaction its timeout aborted fenced it);
/// - INVALID_TXN_STATE for a partition not in the open transaction: Kafka's `ReplicaManager`
///   answers "Partition was not added to the transaction" (KIP-890 verification).
pub(crate) fn with_transaction<R>(
    store: &Store,
    transactional_id: Option<&str>,
    producer_id: i64,
    epoch: i16,
    tp: &TopicPartition,
    append: impl FnOnce() -> R,
) -> Result<R, ResponseError> {
    let Some(id) = transactional_id else {
        return Err(ResponseError::TransactionalIdAuthorizationFailed);
    };
    let entry = owned_entry(store, id, producer_id, epoch, 0, i16::MAX)?;
    let e = entry.lock();
    check_owner(&e, producer_id, epoch, 0, i16::MAX)?;
    match &e.open {
        Some(open) if open.failed.is_none() && open.members.iter().any(|(t, _)| t == tp) => {
            Ok(append())
        }
        _ => Err(ResponseError::InvalidTxnState),
    }
}

/// The wire client of the integration tests (kafka-protocol's client side), for the test below.
#[cfg(test)]
#[path = "../../tests/common/wire.rs"]
mod test_wire;

#[cfg(test)]
mod tests {
    //! A whole transaction of a remote producer whose batches are appended as the Produce
    //! handler appends them (through [`with_transaction`]), read back by an in-process
    //! `read_committed` consumer: only committed records are seen.

    use std::time::Duration;

    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    use kafka_protocol::messages::{
        AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse,
        InitProducerIdRequest, InitProducerIdResponse, TopicName, TransactionalId,
    };
    use kafka_protocol::protocol::StrBytes;

    use super::test_wire::WireClient;
    use super::*;
    use crate::record::BatchBuilder;
    use crate::server::{Server, ServerConfig};
    use crate::{Compression, ConsumerConfig, IsolationLevel, TopicConfig};

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_string())
    }

    fn add(c: &mut WireClient, pid: i64, epoch: i16) -> i16 {
        let r: AddPartitionsToTxnResponse = c.call(
            ApiKey::AddPartitionsToTxn,
            1,
            &AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(s("tx")))
                .with_v3_and_below_producer_id(ProducerId(pid))
                .with_v3_and_below_producer_epoch(epoch)
                .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![0])]),
        );
        r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
    }

    fn end(c: &mut WireClient, pid: i64, epoch: i16, commit: bool) -> i16 {
        let r: EndTxnResponse = c.call(
            ApiKey::EndTxn,
            1,
            &EndTxnRequest::default()
                .with_transactional_id(TransactionalId(s("tx")))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_committed(commit),
        );
        r.error_code
    }

    /// A transactional batch of `values` as a client builds it.
    fn batch(pid: i64, epoch: i16, seq: i32, values: &[&str]) -> crate::RecordBatch {
        let mut b = BatchBuilder::new(Compression::None);
        b.producer(ProducerFields {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
        })
        .transactional(true);
        for v in values {
            // A current timestamp: records of 1970 are past any time retention, and a log may
            // drop them at once (as Kafka's does).
            b.append(crate::clock::now_ms(), Some(b"k"), Some(v.as_bytes()), &[]);
        }
        b.build().unwrap()
    }

    #[test]
    fn a_remote_producers_committed_records_are_read_committed_and_aborted_ones_never() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create_topic("t", TopicConfig::new(1)).unwrap();
        let server = Server::start(&store, ServerConfig::new("127.0.0.1:0")).unwrap();
        let mut c = WireClient::connect(server.local_addr());
        let r: InitProducerIdResponse = c.call(
            ApiKey::InitProducerId,
            1,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s("tx"))))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        );
        assert_eq!(r.error_code, 0);
        let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
        let tp = TopicPartition::new("t", 0);
        let part = store.partition(&tp).unwrap();
        let produce = |seq: i32, values: &[&str]| {
            with_transaction(&store, Some("tx"), pid, epoch, &tp, || {
                part.log.append(&batch(pid, epoch, seq, values)).map(drop)
            })
        };

        // Outside a transaction (nothing added): refused, nothing appended.
        assert_eq!(
            produce(0, &["stray"]).err(),
            Some(ResponseError::InvalidTxnState)
        );
        assert_eq!(part.log.high_watermark(), 0);
        assert_eq!(
            with_transaction(&store, None, pid, epoch, &tp, || ()),
            Err(ResponseError::TransactionalIdAuthorizationFailed)
        );

        assert_eq!(add(&mut c, pid, epoch), 0);
        produce(0, &["c1", "c2"]).unwrap().unwrap();
        assert_eq!(
            part.log.last_stable_offset(),
            0,
            "an open transaction holds the LSO"
        );
        assert_eq!(end(&mut c, pid, epoch, true), 0);

        assert_eq!(add(&mut c, pid, epoch), 0);
        produce(2, &["a1"]).unwrap().unwrap();
        assert_eq!(end(&mut c, pid, epoch, false), 0);

        assert_eq!(add(&mut c, pid, epoch), 0);
        produce(3, &["c3"]).unwrap().unwrap();
        assert_eq!(end(&mut c, pid, epoch, true), 0);
        // After EndTxn the partition is no longer in a transaction.
        assert_eq!(
            produce(4, &["late"]).err(),
            Some(ResponseError::InvalidTxnState)
        );
        // A fenced producer is refused too.
        let old = (pid, epoch);
        let r: InitProducerIdResponse = c.call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s("tx"))))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        );
        assert_eq!(r.producer_epoch, old.1 + 1);
        assert_eq!(
            with_transaction(&store, Some("tx"), old.0, old.1, &tp, || ()),
            Err(ResponseError::InvalidProducerEpoch)
        );

        let read = |store: &Store| -> Vec<String> {
            let mut consumer = store
                .consumer(ConsumerConfig::default().isolation_level(IsolationLevel::ReadCommitted))
                .unwrap();
            consumer.assign(std::slice::from_ref(&tp)).unwrap();
            consumer
                .seek_to_beginning(std::slice::from_ref(&tp))
                .unwrap();
            let mut values = Vec::new();
            for _ in 0..5 {
                for r in consumer.poll(Duration::from_millis(50)).unwrap().iter() {
                    values.push(String::from_utf8(r.value().unwrap().to_vec()).unwrap());
                }
            }
            values
        };
        assert_eq!(read(&store), ["c1", "c2", "c3"]);
        assert_eq!(part.log.last_stable_offset(), part.log.high_watermark());
        // The same after a reopen.
        drop(part);
        drop(c);
        server.shutdown().unwrap();
        store.close().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(read(&store), ["c1", "c2", "c3"]);
    }

    #[test]
    fn the_commit_decision_names_the_first_sequence_the_log_saw_from_the_remote_producer() {
        // Recovery after a crash between the decision and the markers commits a partition's
        // open transaction only if the decision names its first sequence: a partition added by
        // AddPartitionsToTxn has none until the client's batches arrive.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create_topic("t", TopicConfig::new(1)).unwrap();
        let server = Server::start(&store, ServerConfig::new("127.0.0.1:0")).unwrap();
        let mut c = WireClient::connect(server.local_addr());
        let r: InitProducerIdResponse = c.call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s("tx"))))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        );
        let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
        let tp = TopicPartition::new("t", 0);
        let part = store.partition(&tp).unwrap();
        for (seq, values) in [(0, &["x", "y"][..]), (2, &["z"][..])] {
            assert_eq!(add(&mut c, pid, epoch), 0);
            with_transaction(&store, Some("tx"), pid, epoch, &tp, || {
                part.log.append(&batch(pid, epoch, seq, values)).unwrap()
            })
            .unwrap();
            assert_eq!(end(&mut c, pid, epoch, true), 0);
        }
        drop(part);
        drop(c);
        server.shutdown().unwrap();
        store.close().unwrap();
        let (_, records) = crate::coordinator::txn::Coordinator::open(
            &dir.path().join(crate::coordinator::txn::TXN_LOG_DIR),
        )
        .unwrap();
        assert_eq!(records["tx"].partitions, [(tp, 2)]);
    }
}
