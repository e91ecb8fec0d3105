//! Producer ids and transactions over the wire: InitProducerId (idempotent and transactional,
//! fencing, KIP-360 bumps, timeout bounds), AddPartitionsToTxn, AddOffsetsToTxn,
//! TxnOffsetCommit and EndTxn with Kafka's error codes, offsets staged until commit, and the
//! timeout abort. Needs `--features server`.
//!
//! The cases follow Kafka's own `TransactionCoordinatorTest` (core/src/test/scala/unit/kafka/
//! coordinator/transaction/TransactionCoordinatorTest.scala): `shouldInitPidWithEpochZero-
//! ForNewTransactionalId`, `shouldRespondWithInvalidRequestOnInitPidWhenTransactionalIdIsEmpty`,
//! `shouldRespondWithInvalidTransactionTimeout...`, `shouldRespondWithInvalidPidMappingOn-
//! AddPartitionsToTransactionWhenTransactionalIdNotPresent`, `shouldReplyWithInvalidPidMapping-
//! OnEndTxnWhenPidDosentMatchMapped`, `shouldReplyWithProducerFencedOnEndTxnWhenEpochIsNotSameAs-
//! Transaction`, `shouldReturnOkOnEndTxnWhenStatusIsCompleteCommitAndResultIsCommit`,
//! `shouldReturnInvalidTxnRequestOnEndTxnRequestWhenStatusIsCompleteAbortAndResultIsNotAbort`,
//! `shouldReplyWithInvalidTxnStateOnEndTxnWhenStatusIsEmpty` (checked against apache/kafka
//! trunk) and KafkaApis' rewrite of PRODUCER_FENCED to INVALID_PRODUCER_EPOCH for versions older
//! than KIP-588's.
#![cfg(feature = "server")]
#![allow(clippy::big_endian_bytes)] // Kafka's wire protocol is big-endian

mod common;

use std::time::{Duration, Instant};

use common::wire::WireClient;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, ApiKey, EndTxnRequest, EndTxnResponse, GroupId,
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, TopicName, TransactionalId,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::StrBytes;
use riverbed::server::{Server, ServerConfig};
use riverbed::{Store, TopicConfig, TopicPartition};

const NONE: i16 = 0;
const INVALID_REQUEST: i16 = 42;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const PRODUCER_FENCED: i16 = 90;

fn start() -> (tempfile::TempDir, Store, Server) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(2)).unwrap();
    let server = Server::start(&store, ServerConfig::new("127.0.0.1:0")).unwrap();
    (dir, store, server)
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn init_req(txn: Option<&str>, timeout_ms: i32) -> InitProducerIdRequest {
    InitProducerIdRequest::default()
        .with_transactional_id(txn.map(|t| TransactionalId(s(t))))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

fn init(c: &mut WireClient, version: i16, req: &InitProducerIdRequest) -> InitProducerIdResponse {
    c.call(ApiKey::InitProducerId, version, req)
}

/// A transactional producer's (id, epoch) after a successful init.
fn init_txn(c: &mut WireClient, id: &str, timeout_ms: i32) -> (i64, i16) {
    let r = init(c, 4, &init_req(Some(id), timeout_ms));
    assert_eq!(r.error_code, NONE);
    (r.producer_id.0, r.producer_epoch)
}

fn end_txn(c: &mut WireClient, version: i16, id: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
    let r: EndTxnResponse = c.call(
        ApiKey::EndTxn,
        version,
        &EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s(id)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(commit),
    );
    r.error_code
}

fn add_partitions(
    c: &mut WireClient,
    version: i16,
    id: &str,
    pid: i64,
    epoch: i16,
    parts: &[(&str, &[i32])],
) -> Vec<(String, i32, i16)> {
    let r: AddPartitionsToTxnResponse = c.call(
        ApiKey::AddPartitionsToTxn,
        version,
        &AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(s(id)))
            .with_v3_and_below_producer_id(ProducerId(pid))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(
                parts
                    .iter()
                    .map(|(t, ps)| {
                        AddPartitionsToTxnTopic::default()
                            .with_name(TopicName(s(t)))
                            .with_partitions(ps.to_vec())
                    })
                    .collect(),
            ),
    );
    let mut out = Vec::new();
    for t in r.results_by_topic_v3_and_below {
        for p in t.results_by_partition {
            out.push((
                t.name.0.to_string(),
                p.partition_index,
                p.partition_error_code,
            ));
        }
    }
    out
}

fn add_offsets(
    c: &mut WireClient,
    version: i16,
    id: &str,
    pid: i64,
    epoch: i16,
    group: &str,
) -> i16 {
    let r: AddOffsetsToTxnResponse = c.call(
        ApiKey::AddOffsetsToTxn,
        version,
        &AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(s(id)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_group_id(GroupId(s(group))),
    );
    r.error_code
}

fn txn_offset_commit(
    c: &mut WireClient,
    version: i16,
    id: &str,
    pid: i64,
    epoch: i16,
    group: &str,
    offset: i64,
) -> i16 {
    let r: TxnOffsetCommitResponse = c.call(
        ApiKey::TxnOffsetCommit,
        version,
        &TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(s(id)))
            .with_group_id(GroupId(s(group)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(1)
                    .with_committed_offset(offset)
                    .with_committed_metadata(Some(s("m")))])]),
    );
    let codes: Vec<i16> = r
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect();
    assert_eq!(codes.len(), 1);
    codes[0]
}

fn committed(store: &Store, group: &str) -> Option<u64> {
    store
        .committed_offsets(group)
        .into_iter()
        .find(|(tp, _)| *tp == TopicPartition::new("t", 1))
        .map(|(_, o)| o.offset)
}

#[test]
fn init_without_a_transactional_id_hands_out_a_fresh_producer_id_with_epoch_0() {
    let (_d, _store, server) = start();
    let mut c = WireClient::connect(server.local_addr());
    let mut seen = Vec::new();
    for v in 0..=4 {
        let r = init(&mut c, v, &init_req(None, 0));
        assert_eq!((r.error_code, r.producer_epoch), (NONE, 0), "v{v}");
        assert!(r.producer_id.0 >= 0);
        assert!(
            !seen.contains(&r.producer_id.0),
            "producer id handed out twice"
        );
        seen.push(r.producer_id.0);
    }
    // KIP-360: an idempotent producer asking for a bump gets a new producer id, epoch 0.
    let r = init(
        &mut c,
        3,
        &init_req(None, 0)
            .with_producer_id(ProducerId(seen[0]))
            .with_producer_epoch(0),
    );
    assert_eq!((r.error_code, r.producer_epoch), (NONE, 0));
    assert!(!seen.contains(&r.producer_id.0));
    // A producer id without an epoch (or the reverse) is INVALID_REQUEST (KafkaApis).
    let r = init(
        &mut c,
        3,
        &init_req(None, 0).with_producer_id(ProducerId(seen[0])),
    );
    assert_eq!((r.error_code, r.producer_id.0), (INVALID_REQUEST, -1));
}

#[test]
fn transactional_init_checks_the_id_and_the_timeout() {
    let (_d, _store, server) = start();
    let mut c = WireClient::connect(server.local_addr());
    assert_eq!(
        init(&mut c, 4, &init_req(Some(""), 1000)).error_code,
        INVALID_REQUEST
    );
    for bad in [0, -1, 900_001] {
        assert_eq!(
            init(&mut c, 4, &init_req(Some("tx"), bad)).error_code,
            INVALID_TRANSACTION_TIMEOUT,
            "timeout {bad}"
        );
    }
    let r = init(&mut c, 0, &init_req(Some("tx"), 900_000));
    assert_eq!((r.error_code, r.producer_epoch), (NONE, 0));
}

#[test]
fn a_second_init_fences_the_first_producer_at_every_version() {
    let (_d, store, server) = start();
    let mut c = WireClient::connect(server.local_addr());
    let (pid, e0) = init_txn(&mut c, "tx", 60_000);
    assert_eq!(
        add_partitions(&mut c, 3, "tx", pid, e0, &[("t", &[0])]),
        [("t".to_string(), 0, NONE)]
    );
    assert_eq!(add_offsets(&mut c, 3, "tx", pid, e0, "g"), NONE);
    assert_eq!(txn_offset_commit(&mut c, 3, "tx", pid, e0, "g", 7), NONE);
    // The new producer: same id, the next epoch; the old one's transaction is aborted.
    let (pid2, e1) = init_txn(&mut c, "tx", 60_000);
    assert_eq!((pid2, e1), (pid, e0 + 1));
    assert_eq!(
        committed(&store, "g"),
        None,
        "the fenced transaction's offsets"
    );
    // PRODUCER_FENCED from KIP-588's versions on, INVALID_PRODUCER_EPOCH before.
    for (v, want) in [
        (0, INVALID_PRODUCER_EPOCH),
        (1, INVALID_PRODUCER_EPOCH),
        (2, PRODUCER_FENCED),
        (3, PRODUCER_FENCED),
    ] {
        assert_eq!(end_txn(&mut c, v, "tx", pid, e0, true), want, "EndTxn v{v}");
        assert_eq!(
            add_partitions(&mut c, v, "tx", pid, e0, &[("t", &[1])])[0].2,
            want,
            "AddPartitionsToTxn v{v}"
        );
        assert_eq!(
            add_offsets(&mut c, v, "tx", pid, e0, "g"),
            want,
            "AddOffsetsToTxn v{v}"
        );
        // TxnOffsetCommit has no PRODUCER_FENCED version.
        assert_eq!(
            txn_offset_commit(&mut c, v, "tx", pid, e0, "g", 9),
            INVALID_PRODUCER_EPOCH,
            "TxnOffsetCommit v{v}"
        );
    }
    // Another producer id for the transactional id, or an id never registered.
    assert_eq!(
        end_txn(&mut c, 3, "tx", pid + 1000, e1, true),
        INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(
        end_txn(&mut c, 3, "nobody", pid, e1, true),
        INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(
        add_partitions(&mut c, 3, "nobody", pid, e1, &[("t", &[0])])[0].2,
        INVALID_PRODUCER_ID_MAPPING
    );
    // The new producer works.
    assert_eq!(add_offsets(&mut c, 3, "tx", pid, e1, "g"), NONE);
    assert_eq!(txn_offset_commit(&mut c, 3, "tx", pid, e1, "g", 11), NONE);
    assert_eq!(end_txn(&mut c, 3, "tx", pid, e1, true), NONE);
    assert_eq!(committed(&store, "g"), Some(11));
}

#[test]
fn kip_360_epoch_bump_of_a_transactional_producer() {
    let (_d, _store, server) = start();
    let mut c = WireClient::connect(server.local_addr());
    let (pid, e0) = init_txn(&mut c, "tx", 60_000);
    let bump = |c: &mut WireClient, v: i16, pid: i64, epoch: i16| {
        init(
            c,
            v,
            &init_req(Some("tx"), 60_000)
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch),
        )
    };
    let r = bump(&mut c, 4, pid, e0);
    assert_eq!(
        (r.error_code, r.producer_id.0, r.producer_epoch),
        (NONE, pid, e0 + 1)
    );
    // A retry of the same bump (its answer was lost) gets the current epoch again.
    let r = bump(&mut c, 4, pid, e0);
    assert_eq!(
        (r.error_code, r.producer_id.0, r.producer_epoch),
        (NONE, pid, e0 + 1)
    );
    // An epoch that is neither the current nor the previous one, or another producer id, is
    // fenced (INVALID_PRODUCER_EPOCH before InitProducerId v4).
    assert_eq!(bump(&mut c, 4, pid, e0 + 7).error_code, PRODUCER_FENCED);
    assert_eq!(
        bump(&mut c, 3, pid, e0 + 7).error_code,
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(bump(&mut c, 4, pid + 1, e0 + 1).error_code, PRODUCER_FENCED);
}

#[test]
fn end_txn_without_a_transaction_and_retries_of_the_last_outcome() {
    let (_d, store, server) = start();
    let mut c = WireClient::connect(server.local_addr());
    let (pid, e) = init_txn(&mut c, "tx", 60_000);
    // Empty: nothing to end.
    assert_eq!(end_txn(&mut c, 3, "tx", pid, e, true), INVALID_TXN_STATE);
    assert_eq!(end_txn(&mut c, 3, "tx", pid, e, false), INVALID_TXN_STATE);
    assert_eq!(add_offsets(&mut c, 3, "tx", pid, e, "g"), NONE);
    assert_eq!(txn_offset_commit(&mut c, 3, "tx", pid, e, "g", 3), NONE);
    assert_eq!(end_txn(&mut c, 3, "tx", pid, e, true), NONE);
    // CompleteCommit: a retried commit succeeds, an abort is INVALID_TXN_STATE.
    assert_eq!(end_txn(&mut c, 3, "tx", pid, e, true), NONE);
    assert_eq!(end_txn(&mut c, 3, "tx", pid, e, false), INVALID_TXN_STATE);
    assert_eq!(committed(&store, "g"), Some(3));
    // TxnOffsetCommit outside a transaction.
    assert_eq!(
        txn_offset_commit(&mut c, 3, "tx", pid, e, "g", 4),
        INVALID_TXN_STATE
    );
    // CompleteAbort: a retried abort succeeds, a commit is INVALID_TXN_STATE.
    assert_eq!(add_offsets(&mut c, 3, "tx", pid, e, "g"), NONE);
    assert_eq!(end_txn(&mut c, 3, "tx", pid, e, false), NONE);
    assert_eq!(end_txn(&mut c, 3, "tx", pid, e, false), NONE);
    assert_eq!(end_txn(&mut c, 3, "tx", pid, e, true), INVALID_TXN_STATE);
}

#[test]
fn txn_offsets_are_visible_only_after_commit_and_dropped_by_abort() {
    let (_d, store, server) = start();
    let mut c = WireClient::connect(server.local_addr());
    let (pid, e) = init_txn(&mut c, "tx", 60_000);
    for v in 0..=3 {
        assert_eq!(add_offsets(&mut c, v, "tx", pid, e, "g"), NONE);
        assert_eq!(
            txn_offset_commit(&mut c, v, "tx", pid, e, "g", 100 + i64::from(v)),
            NONE
        );
        assert_eq!(
            committed(&store, "g"),
            if v == 0 {
                None
            } else {
                Some(100 + u64::from(v as u16) - 1)
            }
        );
        assert_eq!(end_txn(&mut c, v, "tx", pid, e, true), NONE);
        assert_eq!(
            committed(&store, "g"),
            Some(100 + v as u64),
            "after commit v{v}"
        );
    }
    assert_eq!(add_offsets(&mut c, 3, "tx", pid, e, "g"), NONE);
    assert_eq!(txn_offset_commit(&mut c, 3, "tx", pid, e, "g", 500), NONE);
    assert_eq!(end_txn(&mut c, 3, "tx", pid, e, false), NONE);
    assert_eq!(
        committed(&store, "g"),
        Some(103),
        "an aborted commit of offsets"
    );
    // The same holds after a reopen: the offsets log replays the markers.
    drop(c);
    server.shutdown().unwrap();
    let dir = store.dir().to_path_buf();
    store.close().unwrap();
    let store = Store::open(&dir).unwrap();
    assert_eq!(committed(&store, "g"), Some(103));
}

#[test]
fn add_partitions_answers_unknown_partitions_and_does_not_attempt_the_rest() {
    let (_d, _store, server) = start();
    let mut c = WireClient::connect(server.local_addr());
    let (pid, e) = init_txn(&mut c, "tx", 60_000);
    let mut r = add_partitions(
        &mut c,
        3,
        "tx",
        pid,
        e,
        &[("t", &[0, 9]), ("missing", &[0])],
    );
    r.sort();
    assert_eq!(
        r,
        [
            ("missing".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION),
            ("t".to_string(), 0, OPERATION_NOT_ATTEMPTED),
            ("t".to_string(), 9, UNKNOWN_TOPIC_OR_PARTITION),
        ]
    );
    // Nothing was added: there is no transaction to end.
    assert_eq!(end_txn(&mut c, 3, "tx", pid, e, true), INVALID_TXN_STATE);
    let r = add_partitions(&mut c, 3, "tx", pid, e, &[("t", &[0, 1])]);
    assert!(r.iter().all(|(_, _, code)| *code == NONE), "{r:?}");
    assert_eq!(end_txn(&mut c, 3, "tx", pid, e, true), NONE);
}

#[test]
fn a_transaction_idle_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let (_d, store, server) = start();
    let mut c = WireClient::connect(server.local_addr());
    let (pid, e) = init_txn(&mut c, "tx", 300);
    assert_eq!(
        add_partitions(&mut c, 3, "tx", pid, e, &[("t", &[0])])[0].2,
        NONE
    );
    assert_eq!(add_offsets(&mut c, 3, "tx", pid, e, "g"), NONE);
    assert_eq!(txn_offset_commit(&mut c, 3, "tx", pid, e, "g", 42), NONE);
    // The store's maintenance thread aborts it (Kafka's coordinator bumps the epoch to do so,
    // fencing the producer).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let code = add_offsets(&mut c, 3, "tx", pid, e, "g");
        if code == PRODUCER_FENCED {
            break;
        }
        assert_eq!(code, NONE);
        assert!(
            Instant::now() < deadline,
            "the transaction was never aborted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(end_txn(&mut c, 3, "tx", pid, e, true), PRODUCER_FENCED);
    assert_eq!(
        end_txn(&mut c, 1, "tx", pid, e, true),
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        committed(&store, "g"),
        None,
        "the timed-out transaction's offsets"
    );
    // A new init recovers the id.
    let (pid2, e2) = init_txn(&mut c, "tx", 60_000);
    assert_eq!((pid2, e2), (pid, e + 1));
    assert_eq!(add_offsets(&mut c, 3, "tx", pid, e2, "g"), NONE);
    assert_eq!(txn_offset_commit(&mut c, 3, "tx", pid, e2, "g", 43), NONE);
    assert_eq!(end_txn(&mut c, 3, "tx", pid, e2, true), NONE);
    assert_eq!(committed(&store, "g"), Some(43));
}

#[test]
fn txn_offset_commit_answers_unknown_partitions_and_stages_the_others() {
    // KafkaApis.handleTxnOffsetCommitRequest: a partition the broker does not know gets
    // UNKNOWN_TOPIC_OR_PARTITION; the others are committed with the transaction.
    let (_d, store, server) = start();
    let mut c = WireClient::connect(server.local_addr());
    let (pid, e) = init_txn(&mut c, "tx", 60_000);
    assert_eq!(add_offsets(&mut c, 3, "tx", pid, e, "g"), NONE);
    let part = |i: i32, offset: i64| {
        TxnOffsetCommitRequestPartition::default()
            .with_partition_index(i)
            .with_committed_offset(offset)
    };
    let r: TxnOffsetCommitResponse = c.call(
        ApiKey::TxnOffsetCommit,
        3,
        &TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(s("tx")))
            .with_group_id(GroupId(s("g")))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(e)
            .with_topics(vec![
                TxnOffsetCommitRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![part(1, 8), part(5, 8)]),
                TxnOffsetCommitRequestTopic::default()
                    .with_name(TopicName(s("missing")))
                    .with_partitions(vec![part(0, 8)]),
            ]),
    );
    let codes: Vec<(String, i32, i16)> = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index, p.error_code))
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("t".to_string(), 1, NONE),
            ("t".to_string(), 5, UNKNOWN_TOPIC_OR_PARTITION),
            ("missing".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION),
        ]
    );
    assert_eq!(end_txn(&mut c, 3, "tx", pid, e, true), NONE);
    assert_eq!(committed(&store, "g"), Some(8));
    assert_eq!(store.committed_offsets("g").len(), 1);
}

/// A transactional batch of `values` as a client sends it (Kafka v2 layout, base offset 0),
/// built by Riverbed's own `BatchBuilder`.
fn txn_batch(pid: i64, epoch: i16, seq: i32, values: &[&str]) -> bytes::Bytes {
    let mut b = riverbed::BatchBuilder::new(riverbed::Compression::None);
    b.producer(riverbed::ProducerFields {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
    })
    .transactional(true);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for v in values {
        b.append(now, Some(b"k"), Some(v.as_bytes()), &[]);
    }
    bytes::Bytes::copy_from_slice(b.build().unwrap().as_bytes())
}

/// Produces `batch` to t-0 at Produce v`version` with `txn` as the request's transactional id;
/// returns the partition's error code.
fn produce(c: &mut WireClient, version: i16, txn: Option<&str>, batch: bytes::Bytes) -> i16 {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
    let r: ProduceResponse = c.call(
        ApiKey::Produce,
        version,
        &ProduceRequest::default()
            .with_transactional_id(txn.map(|t| TransactionalId(s(t))))
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(s("t")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch))])]),
    );
    r.responses[0].partition_responses[0].error_code
}

#[test]
fn transactional_produce_over_the_wire_is_read_committed_only_once_committed() {
    // The whole flow of a remote transactional producer (librdkafka's and the Java client's
    // order: InitProducerId, AddPartitionsToTxn, Produce, EndTxn), read back by an in-process
    // read_committed consumer. A transactional batch outside the transaction that added its
    // partition is refused: INVALID_TXN_STATE ("Partition was not added to the transaction",
    // Kafka's ReplicaManager for Produce <= v10), a fenced producer's INVALID_PRODUCER_EPOCH,
    // and one without a transactional id TRANSACTIONAL_ID_AUTHORIZATION_FAILED (KafkaApis).
    use riverbed::{ConsumerConfig, IsolationLevel};
    let (_d, store, server) = start();
    let mut c = WireClient::connect(server.local_addr());
    let (pid, e) = init_txn(&mut c, "tx", 60_000);
    assert_eq!(
        produce(&mut c, 10, Some("tx"), txn_batch(pid, e, 0, &["stray"])),
        INVALID_TXN_STATE
    );
    assert_eq!(
        add_partitions(&mut c, 3, "tx", pid, e, &[("t", &[0])])[0].2,
        NONE
    );
    assert_eq!(
        produce(&mut c, 10, None, txn_batch(pid, e, 0, &["anon"])),
        53
    );
    assert_eq!(
        produce(&mut c, 10, Some("tx"), txn_batch(pid, e, 0, &["c1", "c2"])),
        NONE
    );
    assert_eq!(end_txn(&mut c, 3, "tx", pid, e, true), NONE);
    assert_eq!(
        add_partitions(&mut c, 3, "tx", pid, e, &[("t", &[0])])[0].2,
        NONE
    );
    assert_eq!(
        produce(&mut c, 7, Some("tx"), txn_batch(pid, e, 2, &["a1"])),
        NONE
    );
    assert_eq!(end_txn(&mut c, 3, "tx", pid, e, false), NONE);
    // After EndTxn, the partition is in no transaction.
    assert_eq!(
        produce(&mut c, 3, Some("tx"), txn_batch(pid, e, 3, &["late"])),
        INVALID_TXN_STATE
    );
    assert_eq!(
        add_partitions(&mut c, 3, "tx", pid, e, &[("t", &[0])])[0].2,
        NONE
    );
    assert_eq!(
        produce(&mut c, 10, Some("tx"), txn_batch(pid, e, 3, &["c3"])),
        NONE
    );
    // A new producer fences this one: its open transaction is aborted, its batches refused.
    let (_, e2) = init_txn(&mut c, "tx", 60_000);
    assert_eq!(
        produce(&mut c, 10, Some("tx"), txn_batch(pid, e, 4, &["zombie"])),
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        add_partitions(&mut c, 3, "tx", pid, e2, &[("t", &[0])])[0].2,
        NONE
    );
    assert_eq!(
        produce(&mut c, 10, Some("tx"), txn_batch(pid, e2, 0, &["c4"])),
        NONE
    );
    assert_eq!(end_txn(&mut c, 3, "tx", pid, e2, true), NONE);

    let tp = TopicPartition::new("t", 0);
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
    assert_eq!(values, ["c1", "c2", "c4"]);
}

#[test]
fn answers_with_an_error_code_count_as_errors_in_the_server_metrics() {
    let (_d, store, server) = start();
    let mut c = WireClient::connect(server.local_addr());
    let (pid, e) = init_txn(&mut c, "tx", 60_000);
    assert_eq!(end_txn(&mut c, 3, "tx", pid, e, true), INVALID_TXN_STATE);
    assert_eq!(
        init(&mut c, 4, &init_req(Some(""), 1000)).error_code,
        INVALID_REQUEST
    );
    assert_eq!(add_offsets(&mut c, 3, "tx", pid, e, "g"), NONE);
    assert_eq!(end_txn(&mut c, 3, "tx", pid, e, true), NONE);
    let m = store.metrics();
    let api = |name: &str| {
        let a = m.servers[0].apis.iter().find(|a| a.api == name).unwrap();
        (a.requests, a.errors)
    };
    assert_eq!(api("InitProducerId"), (2, 1));
    assert_eq!(api("EndTxn"), (2, 1));
    assert_eq!(api("AddOffsetsToTxn"), (1, 0));
}
