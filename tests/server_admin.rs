//! Topic administration over the wire: CreateTopics, DeleteTopics, CreatePartitions,
//! DescribeConfigs, IncrementalAlterConfigs and AlterConfigs, checked against the store the
//! server serves. Needs `--features server`.
//!
//! Error cases follow Kafka's own tests of the same requests (core/src/test/scala/unit/kafka/
//! server/CreateTopicsRequestTest.scala `testErrorCreateTopicsRequests`: existing topic,
//! partitions 0 or below -1, replication factor above the broker count, duplicate names,
//! invalid config; DeleteTopicsRequestTest `testErrorDeleteTopicRequests`: unknown topic;
//! CreatePartitionsRequestTest / AdminZkClient: fewer partitions is INVALID_PARTITIONS;
//! IncrementalAlterConfigs: APPEND on a non-list config is INVALID_REQUEST, as
//! `ConfigAdminManager.prepareIncrementalConfigs` answers).
#![cfg(feature = "server")]
#![allow(clippy::big_endian_bytes)] // Kafka's wire protocol is big-endian

mod common;

use common::wire::WireClient;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    alter_configs_request, AlterConfigsRequest, AlterConfigsResponse, ApiKey, BrokerId,
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use riverbed::server::{Server, ServerConfig};
use riverbed::{CleanupPolicy, Store, StoreConfig, TopicConfig};

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;

fn start() -> (tempfile::TempDir, Store, Server) {
    let dir = tempfile::tempdir().unwrap();
    // A store default of 4 partitions, to tell "the default" (-1) from a given count.
    let store = Store::open_with(
        dir.path(),
        StoreConfig::default().default_topic(TopicConfig::new(4)),
    )
    .unwrap();
    let server = Server::start(&store, ServerConfig::new("127.0.0.1:0")).unwrap();
    (dir, store, server)
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn topic(name: &str, partitions: i32, rf: i16, configs: &[(&str, &str)]) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(TopicName(s(name)))
        .with_num_partitions(partitions)
        .with_replication_factor(rf)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(s(k))
                        .with_value(Some(s(v)))
                })
                .collect(),
        )
}

fn create(
    c: &mut WireClient,
    version: i16,
    topics: Vec<CreatableTopic>,
    validate_only: bool,
) -> CreateTopicsResponse {
    c.call(
        ApiKey::CreateTopics,
        version,
        &CreateTopicsRequest::default()
            .with_topics(topics)
            .with_timeout_ms(10_000)
            .with_validate_only(validate_only),
    )
}

#[test]
fn create_topics_at_every_version_with_kafka_configs() {
    let (_d, store, server) = start();
    let mut c = WireClient::connect(server.local_addr());
    for v in 2..=7 {
        let name = format!("t{v}");
        let r = create(
            &mut c,
            v,
            vec![topic(
                &name,
                3,
                if v % 2 == 0 { 1 } else { -1 },
                &[("retention.ms", "-1"), ("cleanup.policy", "delete,compact")],
            )],
            false,
        );
        let t = &r.topics[0];
        assert_eq!(
            (t.name.0.as_str(), t.error_code),
            (name.as_str(), NONE),
            "v{v}: {:?}",
            t.error_message
        );
        let d = store.describe_topic(&name).unwrap();
        assert_eq!(d.partitions.len(), 3);
        assert_eq!(d.config.get_log().get_retention_ms(), None);
        assert_eq!(
            d.config.get_log().get_cleanup_policy(),
            CleanupPolicy::CompactDelete
        );
        if v >= 5 {
            assert_eq!((t.num_partitions, t.replication_factor), (3, 1));
            let configs = t.configs.as_ref().expect("v5+ returns the configs");
            let get = |k: &str| {
                configs
                    .iter()
                    .find(|c| c.name.as_str() == k)
                    .map(|c| (c.value.as_ref().unwrap().to_string(), c.config_source))
            };
            assert_eq!(get("retention.ms"), Some(("-1".into(), 1)));
            assert_eq!(get("cleanup.policy"), Some(("compact,delete".into(), 1)));
            // Untouched settings are the defaults (config source DEFAULT_CONFIG = 5).
            assert_eq!(
                get("message.timestamp.type"),
                Some(("CreateTime".into(), 5))
            );
        }
    }
    // -1 partitions: the store's default topic configuration.
    let r = create(&mut c, 4, vec![topic("dflt", -1, -1, &[])], false);
    assert_eq!(r.topics[0].error_code, NONE);
    assert_eq!(store.describe_topic("dflt").unwrap().partitions.len(), 4);
}

#[test]
fn create_topics_errors_are_kafkas_and_change_nothing() {
    let (_d, store, server) = start();
    let mut c = WireClient::connect(server.local_addr());
    store.create_topic("exists", TopicConfig::new(1)).unwrap();
    let assigned =
        topic("assigned", -1, -1, &[])
            .with_assignments(vec![CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(vec![BrokerId(0)])]);
    let r = create(
        &mut c,
        5,
        vec![
            topic("exists", 1, 1, &[]),
            topic("zero", 0, 1, &[]),
            topic("minus2", -2, 1, &[]),
            topic("rf3", 1, 3, &[]),
            topic("bad/name", 1, 1, &[]),
            topic("unknowncfg", 1, 1, &[("min.insync.replicas", "2")]),
            topic("badvalue", 1, 1, &[("retention.ms", "soon")]),
            topic("gzip", 1, 1, &[("compression.type", "gzip")]),
            topic("dup", 1, 1, &[]),
            topic("dup", 1, 1, &[]),
            assigned,
            topic("fine", 2, 1, &[]),
        ],
        false,
    );
    let codes: Vec<(&str, i16)> = r
        .topics
        .iter()
        .map(|t| (t.name.0.as_str(), t.error_code))
        .collect();
    assert_eq!(
        codes,
        [
            ("exists", TOPIC_ALREADY_EXISTS),
            ("zero", INVALID_PARTITIONS),
            ("minus2", INVALID_PARTITIONS),
            ("rf3", INVALID_REPLICATION_FACTOR),
            ("bad/name", INVALID_TOPIC_EXCEPTION),
            ("unknowncfg", INVALID_CONFIG),
            ("badvalue", INVALID_CONFIG),
            ("gzip", INVALID_CONFIG),
            ("dup", INVALID_REQUEST),
            ("dup", INVALID_REQUEST),
            ("assigned", INVALID_REPLICA_ASSIGNMENT),
            ("fine", NONE),
        ]
    );
    let unknown = r.topics[5].error_message.as_ref().unwrap();
    assert!(unknown.contains("min.insync.replicas"), "{unknown}");
    assert_eq!(store.list_topics(), ["exists", "fine"]);

    // validate_only: checked, answered, not created.
    let r = create(
        &mut c,
        7,
        vec![topic("dry", 2, 1, &[("segment.bytes", "16777216")])],
        true,
    );
    assert_eq!(
        r.topics[0].error_code, NONE,
        "{:?}",
        r.topics[0].error_message
    );
    assert_eq!(r.topics[0].num_partitions, 2);
    let r = create(&mut c, 7, vec![topic("exists", 2, 1, &[])], true);
    assert_eq!(r.topics[0].error_code, TOPIC_ALREADY_EXISTS);
    assert_eq!(store.list_topics(), ["exists", "fine"]);
}

#[test]
fn delete_topics_by_name() {
    let (_d, store, server) = start();
    let mut c = WireClient::connect(server.local_addr());
    for v in 1..=5 {
        store.create_topic("gone", TopicConfig::new(2)).unwrap();
        let r: DeleteTopicsResponse = c.call(
            ApiKey::DeleteTopics,
            v,
            &DeleteTopicsRequest::default()
                .with_topic_names(vec![TopicName(s("gone")), TopicName(s("never"))])
                .with_timeout_ms(10_000),
        );
        let codes: Vec<(String, i16)> = r
            .responses
            .iter()
            .map(|t| (t.name.as_ref().unwrap().0.to_string(), t.error_code))
            .collect();
        assert_eq!(
            codes,
            [
                ("gone".to_string(), NONE),
                ("never".to_string(), UNKNOWN_TOPIC_OR_PARTITION)
            ],
            "v{v}"
        );
        assert!(store.list_topics().is_empty());
    }
}

#[test]
fn create_partitions_only_increases() {
    let (_d, store, server) = start();
    let mut c = WireClient::connect(server.local_addr());
    store.create_topic("t", TopicConfig::new(1)).unwrap();
    let call = |c: &mut WireClient, v: i16, name: &str, count: i32, validate_only: bool| {
        let r: CreatePartitionsResponse = c.call(
            ApiKey::CreatePartitions,
            v,
            &CreatePartitionsRequest::default()
                .with_topics(vec![CreatePartitionsTopic::default()
                    .with_name(TopicName(s(name)))
                    .with_count(count)])
                .with_timeout_ms(10_000)
                .with_validate_only(validate_only),
        );
        r.results[0].error_code
    };
    assert_eq!(call(&mut c, 0, "t", 5, true), NONE);
    assert_eq!(store.describe_topic("t").unwrap().partitions.len(), 1);
    for (v, count) in [(0, 2), (1, 3), (2, 4), (3, 5)] {
        assert_eq!(call(&mut c, v, "t", count, false), NONE, "v{v}");
        assert_eq!(
            store.describe_topic("t").unwrap().partitions.len(),
            count as usize
        );
    }
    assert_eq!(call(&mut c, 3, "t", 5, false), INVALID_PARTITIONS);
    assert_eq!(call(&mut c, 3, "t", 2, false), INVALID_PARTITIONS);
    assert_eq!(
        call(&mut c, 3, "missing", 2, false),
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(store.describe_topic("t").unwrap().partitions.len(), 5);
}

fn describe(
    c: &mut WireClient,
    version: i16,
    resource_type: i8,
    name: &str,
    keys: Option<&[&str]>,
) -> (i16, Vec<(String, String, i8, bool)>) {
    let r: DescribeConfigsResponse = c.call(
        ApiKey::DescribeConfigs,
        version,
        &DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configuration_keys(keys.map(|k| k.iter().map(|k| s(k)).collect()))]),
    );
    let res = &r.results[0];
    (
        res.error_code,
        res.configs
            .iter()
            .map(|c| {
                (
                    c.name.to_string(),
                    c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                    c.config_source,
                    c.read_only,
                )
            })
            .collect(),
    )
}

fn value_of(entries: &[(String, String, i8, bool)], key: &str) -> Option<String> {
    entries
        .iter()
        .find(|(k, ..)| k == key)
        .map(|(_, v, ..)| v.clone())
}

#[test]
fn describe_configs_of_topics_and_the_broker() {
    let (_d, store, server) = start();
    let mut c = WireClient::connect(server.local_addr());
    store
        .create_topic(
            "t",
            TopicConfig::new(1)
                .retention_bytes(Some(1 << 20))
                .cleanup_policy(CleanupPolicy::Compact),
        )
        .unwrap();
    for v in 1..=4 {
        let (code, entries) = describe(&mut c, v, 2, "t", None);
        assert_eq!(code, NONE);
        assert_eq!(
            value_of(&entries, "retention.bytes").as_deref(),
            Some("1048576")
        );
        assert_eq!(
            value_of(&entries, "cleanup.policy").as_deref(),
            Some("compact")
        );
        assert_eq!(
            value_of(&entries, "compression.type").as_deref(),
            Some("producer")
        );
        let source = |k: &str| entries.iter().find(|e| e.0 == k).unwrap().2;
        assert_eq!(source("retention.bytes"), 1, "DYNAMIC_TOPIC_CONFIG");
        assert_eq!(source("segment.bytes"), 5, "DEFAULT_CONFIG");
        assert!(
            entries.iter().all(|e| !e.3),
            "topic configs are not read-only"
        );
    }
    let (_, only) = describe(&mut c, 4, 2, "t", Some(&["retention.ms", "cleanup.policy"]));
    let mut names: Vec<&str> = only.iter().map(|e| e.0.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["cleanup.policy", "retention.ms"]);
    assert_eq!(
        describe(&mut c, 4, 2, "missing", None).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    let (code, broker) = describe(&mut c, 4, 4, "0", None);
    assert_eq!(code, NONE);
    assert_eq!(
        value_of(&broker, "transaction.max.timeout.ms").as_deref(),
        Some("900000")
    );
    assert!(broker.iter().all(|e| e.3), "broker entries are read-only");
    assert_eq!(describe(&mut c, 4, 4, "7", None).0, INVALID_REQUEST);
    assert_eq!(describe(&mut c, 4, 99, "t", None).0, INVALID_REQUEST);
}

fn incremental(
    c: &mut WireClient,
    version: i16,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> (i16, String) {
    let r: IncrementalAlterConfigsResponse = c.call(
        ApiKey::IncrementalAlterConfigs,
        version,
        &IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s(name))
                .with_configs(
                    ops.iter()
                        .map(|(k, op, v)| {
                            AlterableConfig::default()
                                .with_name(s(k))
                                .with_config_operation(*op)
                                .with_value(v.map(s))
                        })
                        .collect(),
                )]),
    );
    let res = &r.responses[0];
    (
        res.error_code,
        res.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

#[test]
fn incremental_alter_configs_set_delete_append_subtract() {
    let (_d, store, server) = start();
    let mut c = WireClient::connect(server.local_addr());
    store.create_topic("t", TopicConfig::new(1)).unwrap();
    let config = |store: &Store| store.describe_topic("t").unwrap().config;
    for v in 0..=1 {
        assert_eq!(
            incremental(
                &mut c,
                v,
                "t",
                &[
                    ("retention.ms", 0, Some("1000")),
                    ("max.message.bytes", 0, Some("65536"))
                ],
                false
            )
            .0,
            NONE
        );
        assert_eq!(config(&store).get_log().get_retention_ms(), Some(1000));
        assert_eq!(config(&store).get_log().get_max_message_bytes(), 65536);
        assert_eq!(
            incremental(&mut c, v, "t", &[("retention.ms", 1, None)], false).0,
            NONE
        );
        assert_eq!(
            config(&store).get_log().get_retention_ms(),
            TopicConfig::new(1).get_log().get_retention_ms()
        );
    }
    // APPEND and SUBTRACT on the list setting.
    assert_eq!(
        incremental(
            &mut c,
            1,
            "t",
            &[("cleanup.policy", 2, Some("compact"))],
            false
        )
        .0,
        NONE
    );
    assert_eq!(
        config(&store).get_log().get_cleanup_policy(),
        CleanupPolicy::CompactDelete
    );
    assert_eq!(
        incremental(
            &mut c,
            1,
            "t",
            &[("cleanup.policy", 3, Some("delete"))],
            false
        )
        .0,
        NONE
    );
    assert_eq!(
        config(&store).get_log().get_cleanup_policy(),
        CleanupPolicy::Compact
    );
    // Errors: nothing changes.
    assert_eq!(
        incremental(&mut c, 1, "t", &[("retention.ms", 2, Some("5"))], false).0,
        INVALID_REQUEST
    );
    let (code, message) = incremental(
        &mut c,
        1,
        "t",
        &[
            ("retention.ms", 0, Some("5")),
            ("unclean.leader.election.enable", 0, Some("true")),
        ],
        false,
    );
    assert_eq!(code, INVALID_CONFIG);
    assert!(
        message.contains("unclean.leader.election.enable"),
        "{message}"
    );
    assert_eq!(
        incremental(
            &mut c,
            1,
            "t",
            &[("cleanup.policy", 3, Some("compact"))],
            false
        )
        .0,
        INVALID_CONFIG,
        "an empty policy"
    );
    assert_eq!(
        incremental(&mut c, 1, "t", &[("segment.bytes", 0, Some("12"))], false).0,
        INVALID_CONFIG
    );
    assert_eq!(
        incremental(
            &mut c,
            1,
            "missing",
            &[("retention.ms", 0, Some("5"))],
            false
        )
        .0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    // validate_only: answered, not applied.
    assert_eq!(
        incremental(
            &mut c,
            1,
            "t",
            &[("retention.bytes", 0, Some("4096"))],
            true
        )
        .0,
        NONE
    );
    assert_eq!(config(&store).get_log().get_retention_bytes(), None);
    assert_eq!(
        config(&store).get_log().get_cleanup_policy(),
        CleanupPolicy::Compact
    );
    assert_ne!(config(&store).get_log().get_retention_ms(), Some(5));
}

#[test]
fn alter_configs_replaces_the_whole_set() {
    let (_d, store, server) = start();
    let mut c = WireClient::connect(server.local_addr());
    store
        .create_topic("t", TopicConfig::new(1).retention_ms(Some(5000)))
        .unwrap();
    for v in 0..=2 {
        let r: AlterConfigsResponse = c.call(
            ApiKey::AlterConfigs,
            v,
            &AlterConfigsRequest::default().with_resources(vec![
                alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("t"))
                    .with_configs(vec![alter_configs_request::AlterableConfig::default()
                        .with_name(s("retention.bytes"))
                        .with_value(Some(s("8192")))]),
            ]),
        );
        assert_eq!(r.responses[0].error_code, NONE, "v{v}");
        let log = store.describe_topic("t").unwrap().config.get_log().clone();
        assert_eq!(log.get_retention_bytes(), Some(8192));
        // Not in the request: back to the default, as Kafka replaces the whole set.
        assert_eq!(
            log.get_retention_ms(),
            TopicConfig::new(1).get_log().get_retention_ms()
        );
    }
}

#[test]
fn describe_cluster_names_this_one_node() {
    use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};
    let (_d, _store, server) = start();
    let mut c = WireClient::connect(server.local_addr());
    for v in 0..=1 {
        let r: DescribeClusterResponse = c.call(
            ApiKey::DescribeCluster,
            v,
            &DescribeClusterRequest::default().with_endpoint_type(1),
        );
        assert_eq!(r.error_code, NONE);
        assert_eq!(r.controller_id.0, 0);
        assert_eq!(r.brokers.len(), 1);
        assert_eq!(r.brokers[0].broker_id.0, 0);
        assert_eq!(r.brokers[0].port, i32::from(server.local_addr().port()));
        assert_eq!(r.brokers[0].host.as_str(), "127.0.0.1");
    }
    let r: DescribeClusterResponse = c.call(
        ApiKey::DescribeCluster,
        1,
        &DescribeClusterRequest::default().with_endpoint_type(2),
    );
    assert_eq!(r.error_code, 115, "UNSUPPORTED_ENDPOINT_TYPE");
}

#[test]
fn answers_with_an_error_code_count_as_errors_in_the_server_metrics() {
    let (_d, store, server) = start();
    let mut c = WireClient::connect(server.local_addr());
    assert_eq!(
        create(&mut c, 7, vec![topic("a", 1, 1, &[])], false).topics[0].error_code,
        NONE
    );
    assert_eq!(
        create(&mut c, 7, vec![topic("a", 1, 1, &[])], false).topics[0].error_code,
        TOPIC_ALREADY_EXISTS
    );
    let m = store.metrics();
    let a = m.servers[0]
        .apis
        .iter()
        .find(|a| a.api == "CreateTopics")
        .unwrap();
    assert_eq!((a.requests, a.errors), (2, 1));
}
