//! ACLs on the wire front: a principal logged in with SASL/PLAIN gets Kafka's authorization
//! error codes for what its ACLs do not allow, and nothing of a refused request happens.
//!
//! The cases are translated from Kafka's `AuthorizerIntegrationTest`
//! (core/src/test/scala/integration/kafka/api/AuthorizerIntegrationTest.scala):
//! `testProduceWithTopicDescribe`/`testProduceWithTopicWrite` (29 without Write, success with
//! it), `testFetchWithTopicDescribe` (29 without Read), `testCommitWithNoGroupAccess` /
//! `testCommitWithTopicDescribe` (30 without Read on the group, 29 without Read on the topic),
//! `testInitProducerIdWithoutTransactionalIdAcl`-style 53, `testMetadataWithNoTopicAccess`
//! and `testListTopicsWithoutDescribe`-style omission (KafkaApis: "In case of all topics,
//! don't include topics unauthorized for Describe"), and `testCreateTopicAuthorizationWithClusterCreate`
//! / `testCreatePermissionOnTopicToReadFromNonExistentTopic` (Create on the cluster or the
//! topic, else 29).
#![cfg(feature = "server")]

mod common;

use bytes::{Bytes, BytesMut};
use common::wire::{s, WireClient};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse,
    GroupId, InitProducerIdRequest, InitProducerIdResponse, JoinGroupRequest, JoinGroupResponse,
    MetadataRequest, MetadataResponse, OffsetCommitRequest, OffsetCommitResponse, ProduceRequest,
    ProduceResponse, ProducerId, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse, TopicName, TransactionalId,
};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use riverbed::server::{Acls, Credentials, Server, ServerConfig};
use riverbed::{Store, StoreConfig, TopicConfig};

// Kafka's error codes (org.apache.kafka.common.protocol.Errors).
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;

/// alice: write+read on topic `a` (not `b`), read on group `g1`, nothing on transactional ids.
/// admin: everything. carol: create on the topic `new-*` only. alice: write on the
/// transactional ids `loader-*`.
const ACLS: &str = "\
super User:admin
allow User:alice topic:a read,write
allow User:alice group:g1 read
allow User:carol topic:new-* create,describe
allow User:alice transactional_id:loader-* write
";

fn credentials() -> Credentials {
    let text = ["alice", "admin", "carol"]
        .map(|u| Credentials::line("SCRAM-SHA-256", u, &format!("{u}-pw"), 4096).unwrap())
        .join("\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials");
    std::fs::write(&path, text).unwrap();
    Credentials::load(&path).unwrap()
}

/// A store with topics `a` and `b` (1 partition each, auto-create on) served with SASL and
/// [`ACLS`].
fn start() -> (tempfile::TempDir, Store, Server) {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Store::open_with(dir.path(), StoreConfig::default().auto_create_topics(true)).unwrap();
    for t in ["a", "b"] {
        store.create_topic(t, TopicConfig::new(1)).unwrap();
    }
    let acls = Acls::parse(ACLS).unwrap();
    let server = Server::start(
        &store,
        ServerConfig::new("127.0.0.1:0")
            .sasl(credentials())
            .acls(acls),
    )
    .unwrap();
    (dir, store, server)
}

/// A connection logged in as `user` with SASL/PLAIN (handshake v1, authenticate v2).
fn login(server: &Server, user: &str) -> WireClient {
    let mut c = WireClient::connect(server.local_addr());
    let r: SaslHandshakeResponse = c.call(
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
    );
    assert_eq!(r.error_code, 0);
    let token = format!("\0{user}\0{user}-pw");
    let r: SaslAuthenticateResponse = c.call(
        ApiKey::SaslAuthenticate,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token.into_bytes())),
    );
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    c
}

fn tn(name: &str) -> TopicName {
    TopicName(s(name))
}

/// One uncompressed Kafka v2 batch of `values`, as a client encodes it.
fn batch(values: &[&str]) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

/// Produces one batch to partition 0 of each topic in one request; the error code of each.
fn produce(c: &mut WireClient, topics: &[&str]) -> Vec<i16> {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(
            topics
                .iter()
                .map(|t| {
                    TopicProduceData::default()
                        .with_name(tn(t))
                        .with_partition_data(vec![PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch(&["v"])))])
                })
                .collect(),
        );
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &req);
    r.responses
        .iter()
        .map(|t| t.partition_responses[0].error_code)
        .collect()
}

fn fetch(c: &mut WireClient, topic: &str) -> (i16, i64) {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(tn(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &req);
    let p = &r.responses[0].partitions[0];
    (p.error_code, p.high_watermark)
}

fn metadata(c: &mut WireClient, topics: Option<&[&str]>, auto_create: bool) -> MetadataResponse {
    let req = MetadataRequest::default()
        .with_allow_auto_topic_creation(auto_create)
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(tn(t))))
                .collect()
        }));
    c.call(ApiKey::Metadata, 12, &req)
}

#[test]
fn produce_needs_write_on_each_topic_and_a_denied_topic_gets_29_and_nothing_appended() {
    let (_d, store, server) = start();
    let mut alice = login(&server, "alice");
    // One request, two topics: the allowed one is appended, the other refused alone.
    assert_eq!(
        produce(&mut alice, &["a", "b"]),
        [0, TOPIC_AUTHORIZATION_FAILED]
    );
    let mut admin = login(&server, "admin");
    assert_eq!(
        (fetch(&mut admin, "a").1, fetch(&mut admin, "b").1),
        (1, 0),
        "nothing of the refused topic is stored"
    );
    // A super user may write anywhere.
    assert_eq!(produce(&mut admin, &["a", "b"]), [0, 0]);
    // A denied topic that does not exist is not created either.
    assert_eq!(
        produce(&mut alice, &["ghost"]),
        [TOPIC_AUTHORIZATION_FAILED]
    );
    assert!(!store.list_topics().iter().any(|t| t == "ghost"));
}

#[test]
fn fetch_needs_read_on_the_topic() {
    let (_d, _store, server) = start();
    let mut admin = login(&server, "admin");
    assert_eq!(produce(&mut admin, &["a", "b"]), [0, 0]);
    let mut alice = login(&server, "alice");
    assert_eq!(fetch(&mut alice, "a"), (0, 1));
    assert_eq!(fetch(&mut alice, "b"), (TOPIC_AUTHORIZATION_FAILED, -1));
}

fn join(c: &mut WireClient, group: &str) -> JoinGroupResponse {
    let req = JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(""))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(&[
                0, 0, 0, 0, 0, 1, 0, 1, b'a', 0, 0, 0, 0,
            ]))]);
    c.call(ApiKey::JoinGroup, 4, &req)
}

fn commit(c: &mut WireClient, group: &str, topic: &str) -> i16 {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(tn(topic))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(0)])]);
    let r: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, &req);
    r.topics[0].partitions[0].error_code
}

#[test]
fn a_denied_group_gets_30_on_join_and_commit_and_a_denied_topic_29_on_commit() {
    let (_d, _store, server) = start();
    let mut alice = login(&server, "alice");
    let r = join(&mut alice, "g2");
    assert_eq!(r.error_code, GROUP_AUTHORIZATION_FAILED);
    assert_eq!(commit(&mut alice, "g2", "a"), GROUP_AUTHORIZATION_FAILED);
    // The allowed group: a simple commit (no generation) to a readable topic is taken, to an
    // unreadable one refused with TOPIC_AUTHORIZATION_FAILED.
    assert_eq!(commit(&mut alice, "g1", "a"), 0);
    assert_eq!(commit(&mut alice, "g1", "b"), TOPIC_AUTHORIZATION_FAILED);
    // The allowed group can be joined (v4: the first join asks for a member id).
    let r = join(&mut alice, "g1");
    assert_ne!(r.error_code, GROUP_AUTHORIZATION_FAILED);
}

#[test]
fn metadata_omits_undescribable_topics_from_a_full_list_and_answers_named_ones_29() {
    let (_d, store, server) = start();
    let mut alice = login(&server, "alice");
    let all = metadata(&mut alice, None, false);
    let names: Vec<&str> = all
        .topics
        .iter()
        .map(|t| t.name.as_ref().unwrap().as_str())
        .collect();
    assert_eq!(names, ["a"], "b is not listed for alice");
    let named = metadata(&mut alice, Some(&["a", "b", "nowhere"]), false);
    let codes: Vec<i16> = named.topics.iter().map(|t| t.error_code).collect();
    // "nowhere" does not exist, but alice may not describe it: 29, not 3 (Kafka does not
    // disclose which topics exist).
    assert_eq!(
        codes,
        [0, TOPIC_AUTHORIZATION_FAILED, TOPIC_AUTHORIZATION_FAILED]
    );
    // The super user sees both.
    let mut admin = login(&server, "admin");
    assert_eq!(metadata(&mut admin, None, false).topics.len(), 2);
    // Auto-creation needs Create on the cluster or the topic: carol may create new-*.
    let mut carol = login(&server, "carol");
    let r = metadata(&mut carol, Some(&["new-x"]), true);
    assert_eq!(r.topics[0].error_code, 0);
    assert!(store.list_topics().iter().any(|t| t == "new-x"));
}

fn init_producer_id(c: &mut WireClient, txn: Option<&str>) -> i16 {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(txn.map(|t| TransactionalId(s(t))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r: InitProducerIdResponse = c.call(ApiKey::InitProducerId, 4, &req);
    r.error_code
}

#[test]
fn init_producer_id_needs_write_on_the_transactional_id_or_idempotent_write() {
    let (_d, _store, server) = start();
    let mut alice = login(&server, "alice");
    assert_eq!(
        init_producer_id(&mut alice, Some("other")),
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    );
    assert_eq!(init_producer_id(&mut alice, Some("loader-1")), 0);
    // Idempotent: Write on some topic implies IdempotentWrite on the cluster (KIP-679);
    // carol may write nowhere.
    assert_eq!(init_producer_id(&mut alice, None), 0);
    let mut carol = login(&server, "carol");
    assert_eq!(
        init_producer_id(&mut carol, None),
        CLUSTER_AUTHORIZATION_FAILED
    );
}

#[test]
fn create_topics_needs_create_on_the_cluster_or_the_topic() {
    let (_d, store, server) = start();
    let create = |c: &mut WireClient, names: &[&str]| -> Vec<i16> {
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(
                names
                    .iter()
                    .map(|n| {
                        CreatableTopic::default()
                            .with_name(tn(n))
                            .with_num_partitions(1)
                            .with_replication_factor(1)
                    })
                    .collect(),
            );
        let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 5, &req);
        r.topics.iter().map(|t| t.error_code).collect()
    };
    // Kafka answers a topic the principal may not create with TOPIC_AUTHORIZATION_FAILED
    // (not CLUSTER_AUTHORIZATION_FAILED: Create on the topic alone is enough).
    let mut carol = login(&server, "carol");
    assert_eq!(
        create(&mut carol, &["new-1", "old-1"]),
        [0, TOPIC_AUTHORIZATION_FAILED]
    );
    let mut alice = login(&server, "alice");
    assert_eq!(create(&mut alice, &["c"]), [TOPIC_AUTHORIZATION_FAILED]);
    let topics = store.list_topics();
    assert!(topics.iter().any(|t| t == "new-1"));
    assert!(!topics.iter().any(|t| t == "old-1" || t == "c"));
    let mut admin = login(&server, "admin");
    assert_eq!(create(&mut admin, &["c"]), [0]);
}
