//! Topic administration over the wire: CreateTopics, DeleteTopics, CreatePartitions,
//! DescribeConfigs, IncrementalAlterConfigs and AlterConfigs (and DescribeCluster), on the store's own calls
//! ([`Store::create_topic`], [`Store::delete_topic`], [`Store::add_partitions`],
//! [`Store::alter_topic_config`]), so that a topic created by `kafka-topics`, an admin client or
//! the application itself is the same topic.
//!
//! Topic settings are spoken in Kafka's names (the table [`KAFKA_CONFIGS`]): each maps onto one
//! [`TopicConfig`] key, with Kafka's spelling of its values (`retention.ms=-1` is Riverbed's
//! `retention_ms=none`, `message.timestamp.type=LogAppendTime` is `timestamp_type=append`...).
//! A Kafka setting Riverbed has no equivalent for is refused with INVALID_CONFIG naming it,
//! never silently ignored: a client that asks for `min.insync.replicas` or `compression.type=gzip`
//! learns at once that it does not get it.
//!
//! A single node keeps one copy of each partition: replication factor 1 (or -1, "the default")
//! is accepted, anything else is INVALID_REPLICATION_FACTOR, and explicit replica assignments
//! are refused (INVALID_REPLICA_ASSIGNMENT), as a one-broker Kafka cluster answers them.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    incremental_alter_configs_response, AlterConfigsRequest, AlterConfigsResponse, ApiKey,
    BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeClusterRequest,
    DescribeClusterResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::auth::{self, Operation, Resource};
use super::conn::{decode_body, encode_body, Close, Connection};
use super::dispatch::Reply;
use super::errors::response_error;
use super::{Shared, NODE_ID};
use crate::error::{Error, ErrorKind};
use crate::store::Store;
use crate::topic::{validate_topic_name, TopicConfig};

/// Kafka's `ConfigResource.Type` codes.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// Kafka's `ConfigSource` codes (DescribeConfigs v1+).
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// Kafka's `ConfigDef.Type` codes (DescribeConfigs v3+).
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_DOUBLE: i8 = 6;
const TYPE_LIST: i8 = 7;

/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// A Kafka topic setting and the [`TopicConfig`] key it maps onto.
struct KafkaConfig {
    kafka: &'static str,
    riverbed: &'static str,
    config_type: i8,
}

/// Every Kafka topic setting the front understands.
const KAFKA_CONFIGS: &[KafkaConfig] = &[
    KafkaConfig {
        kafka: "cleanup.policy",
        riverbed: "cleanup_policy",
        config_type: TYPE_LIST,
    },
    KafkaConfig {
        kafka: "compression.type",
        riverbed: "compression",
        config_type: TYPE_STRING,
    },
    KafkaConfig {
        kafka: "delete.retention.ms",
        riverbed: "delete_retention_ms",
        config_type: TYPE_LONG,
    },
    KafkaConfig {
        kafka: "index.interval.bytes",
        riverbed: "index_interval_bytes",
        config_type: TYPE_INT,
    },
    KafkaConfig {
        kafka: "max.message.bytes",
        riverbed: "max_message_bytes",
        config_type: TYPE_INT,
    },
    KafkaConfig {
        kafka: "message.timestamp.type",
        riverbed: "timestamp_type",
        config_type: TYPE_STRING,
    },
    KafkaConfig {
        kafka: "min.cleanable.dirty.ratio",
        riverbed: "min_cleanable_dirty_ratio",
        config_type: TYPE_DOUBLE,
    },
    KafkaConfig {
        kafka: "min.compaction.lag.ms",
        riverbed: "min_compaction_lag_ms",
        config_type: TYPE_LONG,
    },
    KafkaConfig {
        kafka: "retention.bytes",
        riverbed: "retention_bytes",
        config_type: TYPE_LONG,
    },
    KafkaConfig {
        kafka: "retention.ms",
        riverbed: "retention_ms",
        config_type: TYPE_LONG,
    },
    KafkaConfig {
        kafka: "segment.bytes",
        riverbed: "segment_bytes",
        config_type: TYPE_INT,
    },
    KafkaConfig {
        kafka: "segment.index.bytes",
        riverbed: "index_max_bytes",
        config_type: TYPE_INT,
    },
];

fn supported_names() -> String {
    KAFKA_CONFIGS
        .iter()
        .map(|c| c.kafka)
        .collect::<Vec<_>>()
        .join(", ")
}

fn find_config(kafka: &str) -> Result<&'static KafkaConfig, String> {
    KAFKA_CONFIGS
        .iter()
        .find(|c| c.kafka == kafka)
        .ok_or_else(|| {
            format!(
                "topic config {kafka:?} is not supported by Riverbed (supported: {})",
                supported_names()
            )
        })
}

/// A Kafka setting and value as the [`TopicConfig`] key and value, or why not.
fn to_riverbed(kafka: &str, value: &str) -> Result<(&'static str, String), String> {
    let c = find_config(kafka)?;
    let v = match c.kafka {
        "retention.ms" | "retention.bytes" if value == "-1" => "none".to_string(),
        "message.timestamp.type" => match value {
            "CreateTime" => "create".into(),
            "LogAppendTime" => "append".into(),
            _ => {
                return Err(format!(
                    "{kafka}={value:?}: expected CreateTime or LogAppendTime"
                ))
            }
        },
        // Riverbed stores a client's batches as they come (Kafka's `producer`); its own
        // in-process producers compress with zstd when the topic says so. Kafka's recompressing
        // settings (gzip, snappy, lz4, uncompressed) have no equivalent.
        "compression.type" => match value {
            "producer" => "none".into(),
            "zstd" => "zstd:3".into(),
            _ => {
                return Err(format!(
                    "{kafka}={value:?}: Riverbed stores producers' batches as sent; \
                     supported: producer, zstd"
                ))
            }
        },
        "cleanup.policy" => normalize_policy(value)
            .ok_or_else(|| format!("{kafka}={value:?}: expected delete, compact or both"))?,
        _ if value.starts_with('-') => {
            return Err(format!("{kafka}={value:?}: must not be negative"));
        }
        _ => value.to_string(),
    };
    Ok((c.riverbed, v))
}

/// `delete`, `compact`, or both in either order, as Riverbed spells them.
fn normalize_policy(value: &str) -> Option<String> {
    let mut delete = false;
    let mut compact = false;
    for p in value.split(',').map(str::trim) {
        match p {
            "delete" => delete = true,
            "compact" => compact = true,
            _ => return None,
        }
    }
    Some(
        match (compact, delete) {
            (true, true) => "compact,delete",
            (true, false) => "compact",
            (false, true) => "delete",
            (false, false) => return None,
        }
        .to_string(),
    )
}

/// A [`TopicConfig`] value in Kafka's spelling.
fn to_kafka_value(c: &KafkaConfig, value: &str) -> String {
    match (c.kafka, value) {
        ("retention.ms" | "retention.bytes", "none") => "-1".into(),
        ("message.timestamp.type", "append") => "LogAppendTime".into(),
        ("message.timestamp.type", _) => "CreateTime".into(),
        ("compression.type", "none") => "producer".into(),
        ("compression.type", _) => "zstd".into(),
        _ => value.to_string(),
    }
}

/// `config`'s settings in Kafka's names, each with its source: the built-in default, the
/// store's default topic configuration (Kafka's broker-level setting), or set on the topic.
fn kafka_entries(store: &Store, config: &TopicConfig) -> Vec<(&'static KafkaConfig, String, i8)> {
    let entries = config.entries();
    let builtin = TopicConfig::new(config.get_partitions()).entries();
    let store_default = store
        .default_topic_config()
        .clone()
        .partitions(config.get_partitions())
        .entries();
    let get = |list: &[(String, String)], key: &str| {
        list.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    };
    KAFKA_CONFIGS
        .iter()
        .filter_map(|c| {
            let v = get(&entries, c.riverbed)?;
            let source = if get(&builtin, c.riverbed).as_deref() == Some(v.as_str()) {
                SOURCE_DEFAULT
            } else if get(&store_default, c.riverbed).as_deref() == Some(v.as_str()) {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DYNAMIC_TOPIC
            };
            Some((c, to_kafka_value(c, &v), source))
        })
        .collect()
}

fn msg(s: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.into()))
}

/// A failed topic operation: its code and message.
type Failure = (ResponseError, String);

fn failure(e: &Error) -> Failure {
    let code = match e.kind() {
        ErrorKind::InvalidArgument(_) if e.to_string().contains("topic name") => {
            ResponseError::InvalidTopicException
        }
        ErrorKind::InvalidConfig { field, .. } if *field == "partitions" => {
            ResponseError::InvalidPartitions
        }
        _ => response_error(e),
    };
    (code, e.to_string())
}

/// A topic setting refused: INVALID_CONFIG, whatever the store's error kind.
fn config_failure(e: &Error) -> Failure {
    match e.kind() {
        ErrorKind::InvalidArgument(_) | ErrorKind::InvalidConfig { .. } => {
            (ResponseError::InvalidConfig, e.to_string())
        }
        _ => failure(e),
    }
}

/// Whether the connection's principal may do `op` (DescribeConfigs or AlterConfigs) on a
/// config resource (Kafka's `KafkaApis` config handlers and `ConfigHelper`): a topic needs it
/// on the topic (else TOPIC_AUTHORIZATION_FAILED), the broker on the cluster (else
/// CLUSTER_AUTHORIZATION_FAILED). Other resource types are refused later on their own.
fn config_access(
    shared: &Shared,
    conn: &Connection,
    op: Operation,
    resource_type: i8,
    name: &str,
) -> Result<(), Failure> {
    let (resource, error) = match resource_type {
        RESOURCE_TOPIC => (
            Resource::topic(name),
            ResponseError::TopicAuthorizationFailed,
        ),
        RESOURCE_BROKER => (
            Resource::cluster(),
            ResponseError::ClusterAuthorizationFailed,
        ),
        _ => return Ok(()),
    };
    if auth::authorize(shared, conn, op, resource) {
        Ok(())
    } else {
        Err((error, format!("not authorized to {op:?} on {resource:?}")))
    }
}

/// A refusal of `op` on topic `name`: TOPIC_AUTHORIZATION_FAILED.
fn topic_denied(op: Operation, name: &str) -> Failure {
    (
        ResponseError::TopicAuthorizationFailed,
        format!("not authorized to {op:?} topic {name:?}"),
    )
}

// ---- CreateTopics ---------------------------------------------------------------------------

/// CreateTopics v2–7.
pub(super) fn create_topics(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: CreateTopicsRequest = decode_body(body, ApiKey::CreateTopics, version)?;
    let store = &shared.store;
    let mut results = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let name = t.name.0.as_str();
        let duplicate = req.topics.iter().filter(|o| o.name == t.name).count() > 1;
        let outcome = if duplicate {
            Err((
                ResponseError::InvalidRequest,
                format!("topic {name:?} appears more than once in the request"),
            ))
        } else if !super::metadata::may_create(shared, conn, name) {
            // Kafka's `KafkaApis.handleCreateTopicsRequest`: Create on the cluster or on the
            // topic, else TOPIC_AUTHORIZATION_FAILED for that topic.
            Err(topic_denied(Operation::Create, name))
        } else {
            create_one(store, t, req.validate_only)
        };
        let mut r = CreatableTopicResult::default().with_name(t.name.clone());
        match outcome {
            Ok(config) => {
                r = r
                    .with_num_partitions(config.get_partitions() as i32)
                    .with_replication_factor(1);
                if version >= 5 {
                    r = r.with_configs(Some(
                        kafka_entries(store, &config)
                            .into_iter()
                            .map(|(c, v, source)| {
                                CreatableTopicConfigs::default()
                                    .with_name(StrBytes::from_static_str(c.kafka))
                                    .with_value(msg(v))
                                    .with_config_source(source)
                            })
                            .collect(),
                    ));
                }
            }
            Err((code, message)) => {
                r = r
                    .with_error_code(code.code())
                    .with_error_message(msg(message))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
                    .with_configs(None);
            }
        }
        results.push(r);
    }
    if results.iter().any(|t| t.error_code != 0) {
        conn.error_answered();
    }
    let resp = CreateTopicsResponse::default().with_topics(results);
    Ok(Reply::Body(encode_body(&resp, version)?))
}

fn create_one(
    store: &Store,
    t: &kafka_protocol::messages::create_topics_request::CreatableTopic,
    validate_only: bool,
) -> Result<TopicConfig, Failure> {
    let name = t.name.0.as_str();
    validate_topic_name(name).map_err(|e| (ResponseError::InvalidTopicException, e.to_string()))?;
    if !t.assignments.is_empty() {
        return Err((
            ResponseError::InvalidReplicaAssignment,
            format!(
                "topic {name:?}: replica assignments are not supported; Riverbed is a single \
                 node (give num_partitions and replication factor 1 or -1)"
            ),
        ));
    }
    if t.replication_factor != -1 && t.replication_factor != 1 {
        return Err((
            ResponseError::InvalidReplicationFactor,
            format!(
                "topic {name:?}: replication factor {} is larger than the 1 node available",
                t.replication_factor
            ),
        ));
    }
    let mut config = store.default_topic_config().clone();
    match t.num_partitions {
        -1 => {}
        n if n >= 1 => config = config.partitions(n as u32),
        n => {
            return Err((
                ResponseError::InvalidPartitions,
                format!("topic {name:?}: number of partitions must be at least 1, got {n}"),
            ))
        }
    }
    let mut settings = Vec::with_capacity(t.configs.len());
    for c in &t.configs {
        let key = c.name.as_str();
        let Some(value) = c.value.as_ref() else {
            return Err((
                ResponseError::InvalidConfig,
                format!("topic {name:?}: null value for config {key:?}"),
            ));
        };
        let (k, v) =
            to_riverbed(key, value.as_str()).map_err(|m| (ResponseError::InvalidConfig, m))?;
        settings.push((k, v));
    }
    let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    config
        .apply(&pairs)
        .map_err(|e| (ResponseError::InvalidConfig, format!("topic {name:?}: {e}")))?;
    if validate_only {
        config.validate().map_err(|e| failure(&e))?;
        if store.list_topics().iter().any(|n| n == name) {
            return Err((
                ResponseError::TopicAlreadyExists,
                format!("topic {name:?} already exists"),
            ));
        }
        return Ok(config);
    }
    store
        .create_topic(name, config.clone())
        .map_err(|e| failure(&e))?;
    Ok(config)
}

// ---- DeleteTopics ---------------------------------------------------------------------------

/// DeleteTopics v1–5 (by name; v6 names topics by id and is not advertised).
pub(super) fn delete_topics(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: DeleteTopicsRequest = decode_body(body, ApiKey::DeleteTopics, version)?;
    let responses: Vec<DeletableTopicResult> = req
        .topic_names
        .iter()
        .map(|n| {
            let mut r = DeletableTopicResult::default().with_name(Some(n.clone()));
            // Kafka's `KafkaApis.handleDeleteTopicsRequest`: Delete on the topic.
            let outcome = if auth::authorize(
                shared,
                conn,
                Operation::Delete,
                Resource::topic(n.0.as_str()),
            ) {
                shared
                    .store
                    .delete_topic(n.0.as_str())
                    .map_err(|e| failure(&e))
            } else {
                Err(topic_denied(Operation::Delete, n.0.as_str()))
            };
            if let Err((code, message)) = outcome {
                r = r.with_error_code(code.code());
                if version >= 5 {
                    r = r.with_error_message(msg(message));
                }
            }
            r
        })
        .collect();
    if responses
        .iter()
        .any(|t: &DeletableTopicResult| t.error_code != 0)
    {
        conn.error_answered();
    }
    let resp = DeleteTopicsResponse::default().with_responses(responses);
    Ok(Reply::Body(encode_body(&resp, version)?))
}

// ---- CreatePartitions -----------------------------------------------------------------------

/// CreatePartitions v0–3.
pub(super) fn create_partitions(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: CreatePartitionsRequest = decode_body(body, ApiKey::CreatePartitions, version)?;
    let store = &shared.store;
    let results: Vec<CreatePartitionsTopicResult> = req
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.as_str();
            let outcome = (|| -> Result<(), Failure> {
                if req.topics.iter().filter(|o| o.name == t.name).count() > 1 {
                    return Err((
                        ResponseError::InvalidRequest,
                        format!("topic {name:?} appears more than once in the request"),
                    ));
                }
                // Kafka's `KafkaApis.handleCreatePartitionsRequest`: Alter on the topic.
                if !auth::authorize(shared, conn, Operation::Alter, Resource::topic(name)) {
                    return Err(topic_denied(Operation::Alter, name));
                }
                if t.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
                    return Err((
                        ResponseError::InvalidReplicaAssignment,
                        format!(
                            "topic {name:?}: replica assignments are not supported; Riverbed is \
                             a single node"
                        ),
                    ));
                }
                let current = store.describe_topic(name).map_err(|e| failure(&e))?;
                let current = current.partitions.len() as i64;
                if i64::from(t.count) <= current {
                    return Err((
                        ResponseError::InvalidPartitions,
                        format!(
                            "topic {name:?} has {current} partitions; the new count must be \
                             larger, got {}",
                            t.count
                        ),
                    ));
                }
                if req.validate_only {
                    return Ok(());
                }
                store
                    .add_partitions(name, t.count as u32)
                    .map_err(|e| match e.kind() {
                        ErrorKind::InvalidArgument(_) => {
                            (ResponseError::InvalidPartitions, e.to_string())
                        }
                        _ => failure(&e),
                    })
            })();
            let mut r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            if let Err((code, message)) = outcome {
                r = r
                    .with_error_code(code.code())
                    .with_error_message(msg(message));
            }
            r
        })
        .collect();
    if results
        .iter()
        .any(|t: &CreatePartitionsTopicResult| t.error_code != 0)
    {
        conn.error_answered();
    }
    let resp = CreatePartitionsResponse::default().with_results(results);
    Ok(Reply::Body(encode_body(&resp, version)?))
}

// ---- DescribeConfigs ------------------------------------------------------------------------

/// DescribeConfigs v1–4: a topic's settings in Kafka's names; for the broker, a few read-only
/// entries describing the front's fixed limits.
pub(super) fn describe_configs(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: DescribeConfigsRequest = decode_body(body, ApiKey::DescribeConfigs, version)?;
    let store = &shared.store;
    let results: Vec<DescribeConfigsResult> = req
        .resources
        .iter()
        .map(|res| {
            let wanted = |name: &str| {
                res.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
            };
            let entry = |name: &str, value: String, read_only: bool, source: i8, ty: i8| {
                DescribeConfigsResourceResult::default()
                    .with_name(StrBytes::from_string(name.to_string()))
                    .with_value(msg(value))
                    .with_read_only(read_only)
                    .with_config_source(source)
                    .with_config_type(ty)
            };
            let base = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            if let Err((code, message)) = config_access(
                shared,
                conn,
                Operation::DescribeConfigs,
                res.resource_type,
                res.resource_name.as_str(),
            ) {
                return base
                    .with_error_code(code.code())
                    .with_error_message(msg(message));
            }
            match res.resource_type {
                RESOURCE_TOPIC => match store.describe_topic(res.resource_name.as_str()) {
                    Ok(d) => base.with_configs(
                        kafka_entries(store, &d.config)
                            .into_iter()
                            .filter(|(c, _, _)| wanted(c.kafka))
                            .map(|(c, v, source)| entry(c.kafka, v, false, source, c.config_type))
                            .collect(),
                    ),
                    Err(e) => {
                        let (code, message) = failure(&e);
                        base.with_error_code(code.code())
                            .with_error_message(msg(message))
                    }
                },
                RESOURCE_BROKER
                    if res.resource_name.is_empty()
                        || res.resource_name.as_str() == NODE_ID.to_string() =>
                {
                    let limits = [
                        (
                            "socket.request.max.bytes",
                            shared.config.max_request_bytes.to_string(),
                            TYPE_INT,
                        ),
                        (
                            "max.connections",
                            shared.config.max_connections.to_string(),
                            TYPE_INT,
                        ),
                        (
                            "transaction.max.timeout.ms",
                            super::txn::MAX_TRANSACTION_TIMEOUT.as_millis().to_string(),
                            TYPE_INT,
                        ),
                    ];
                    base.with_configs(
                        limits
                            .into_iter()
                            .filter(|(n, _, _)| wanted(n))
                            .map(|(n, v, ty)| entry(n, v, true, SOURCE_STATIC_BROKER, ty))
                            .collect(),
                    )
                }
                RESOURCE_BROKER => base
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(msg(format!(
                        "broker {:?} is not this node ({NODE_ID})",
                        res.resource_name.as_str()
                    ))),
                other => base
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(msg(format!(
                        "config resource type {other} is not supported (topics: 2, broker: 4)"
                    ))),
            }
        })
        .collect();
    if results
        .iter()
        .any(|t: &DescribeConfigsResult| t.error_code != 0)
    {
        conn.error_answered();
    }
    let resp = DescribeConfigsResponse::default().with_results(results);
    Ok(Reply::Body(encode_body(&resp, version)?))
}

// ---- IncrementalAlterConfigs and AlterConfigs -----------------------------------------------

/// One resource's answer: (error, message).
fn alter_answer(outcome: Result<(), Failure>) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err((code, message)) => (code.code(), msg(message)),
    }
}

/// Checks the resource is a topic, then applies `settings` (Riverbed keys; `None` resets to the
/// default) through [`Store::alter_topic_config`], or only validates them.
fn alter_topic(
    store: &Store,
    resource_type: i8,
    topic: &str,
    settings: &[(&'static str, Option<String>)],
    validate_only: bool,
) -> Result<(), Failure> {
    if resource_type == RESOURCE_BROKER {
        return Err((
            ResponseError::InvalidRequest,
            "broker configs are fixed when the server starts; only topic configs can be \
             altered"
                .into(),
        ));
    }
    if resource_type != RESOURCE_TOPIC {
        return Err((
            ResponseError::InvalidRequest,
            format!("config resource type {resource_type} is not supported (topics: 2)"),
        ));
    }
    let current = store.describe_topic(topic).map_err(|e| failure(&e))?.config;
    if validate_only {
        let defaults = TopicConfig::new(current.get_partitions()).entries();
        let resolved: Vec<(&str, String)> = settings
            .iter()
            .map(|(k, v)| {
                let v = v.clone().unwrap_or_else(|| {
                    defaults
                        .iter()
                        .find(|(d, _)| d == k)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                });
                (*k, v)
            })
            .collect();
        let pairs: Vec<(&str, &str)> = resolved.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut c = current;
        return c
            .apply(&pairs)
            .map_err(|e| (ResponseError::InvalidConfig, e.to_string()));
    }
    let pairs: Vec<(&str, Option<&str>)> =
        settings.iter().map(|(k, v)| (*k, v.as_deref())).collect();
    store
        .alter_topic_config(topic, &pairs)
        .map(drop)
        .map_err(|e| config_failure(&e))
}

/// IncrementalAlterConfigs v0–1: SET and DELETE on topic settings; APPEND and SUBTRACT on the
/// one list setting (`cleanup.policy`), INVALID_REQUEST on the others (as Kafka answers for a
/// non-list config).
pub(super) fn incremental_alter_configs(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: IncrementalAlterConfigsRequest =
        decode_body(body, ApiKey::IncrementalAlterConfigs, version)?;
    let store = &shared.store;
    let responses: Vec<incremental_alter_configs_response::AlterConfigsResourceResponse> = req
        .resources
        .iter()
        .map(|res| {
            let topic = res.resource_name.as_str();
            let outcome = (|| -> Result<(), Failure> {
                config_access(
                    shared,
                    conn,
                    Operation::AlterConfigs,
                    res.resource_type,
                    topic,
                )?;
                let mut settings: Vec<(&'static str, Option<String>)> = Vec::new();
                for c in &res.configs {
                    let name = c.name.as_str();
                    if res.configs.iter().filter(|o| o.name == c.name).count() > 1 {
                        return Err((
                            ResponseError::InvalidRequest,
                            format!("config {name:?} appears more than once"),
                        ));
                    }
                    let kc = find_config(name).map_err(|m| (ResponseError::InvalidConfig, m))?;
                    let value = c.value.as_ref().map(|v| v.as_str().to_string());
                    match c.config_operation {
                        OP_SET => {
                            let Some(v) = value else {
                                return Err((
                                    ResponseError::InvalidRequest,
                                    format!("SET {name} without a value"),
                                ));
                            };
                            let (k, v) = to_riverbed(name, &v)
                                .map_err(|m| (ResponseError::InvalidConfig, m))?;
                            settings.push((k, Some(v)));
                        }
                        OP_DELETE => settings.push((kc.riverbed, None)),
                        op @ (OP_APPEND | OP_SUBTRACT) => {
                            if kc.config_type != TYPE_LIST {
                                return Err((
                                    ResponseError::InvalidRequest,
                                    format!(
                                        "{} is not a list config: APPEND and SUBTRACT apply \
                                         only to lists (cleanup.policy)",
                                        kc.kafka
                                    ),
                                ));
                            }
                            let current = store
                                .describe_topic(topic)
                                .map_err(|e| failure(&e))?
                                .config
                                .entries()
                                .into_iter()
                                .find(|(k, _)| k == kc.riverbed)
                                .map(|(_, v)| v)
                                .unwrap_or_default();
                            let mut items: Vec<String> =
                                current.split(',').map(str::to_string).collect();
                            for v in value.iter().flat_map(|v| v.split(',')) {
                                let v = v.trim().to_string();
                                if op == OP_APPEND {
                                    if !items.contains(&v) {
                                        items.push(v);
                                    }
                                } else {
                                    items.retain(|i| *i != v);
                                }
                            }
                            let (k, v) = to_riverbed(name, &items.join(","))
                                .map_err(|m| (ResponseError::InvalidConfig, m))?;
                            settings.push((k, Some(v)));
                        }
                        op => {
                            return Err((
                                ResponseError::InvalidRequest,
                                format!("unknown config operation {op} for {name}"),
                            ))
                        }
                    }
                }
                alter_topic(
                    store,
                    res.resource_type,
                    topic,
                    &settings,
                    req.validate_only,
                )
            })();
            let (code, message) = alter_answer(outcome);
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone())
        })
        .collect();
    if responses.iter().any(
        |t: &incremental_alter_configs_response::AlterConfigsResourceResponse| t.error_code != 0,
    ) {
        conn.error_answered();
    }
    let resp = IncrementalAlterConfigsResponse::default().with_responses(responses);
    Ok(Reply::Body(encode_body(&resp, version)?))
}

/// AlterConfigs v0–2 (the older, whole-set form kafka-python's admin uses): the topic's
/// settings become exactly the ones given; every other supported setting returns to its
/// default, as Kafka replaces a topic's whole dynamic config.
pub(super) fn alter_configs(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: AlterConfigsRequest = decode_body(body, ApiKey::AlterConfigs, version)?;
    let store = &shared.store;
    let responses: Vec<
        kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse,
    > = req
        .resources
        .iter()
        .map(|res| {
            let outcome = (|| -> Result<(), Failure> {
                config_access(
                    shared,
                    conn,
                    Operation::AlterConfigs,
                    res.resource_type,
                    res.resource_name.as_str(),
                )?;
                let mut settings: Vec<(&'static str, Option<String>)> = Vec::new();
                for c in &res.configs {
                    let name = c.name.as_str();
                    let Some(v) = c.value.as_ref() else {
                        return Err((
                            ResponseError::InvalidConfig,
                            format!("null value for config {name:?}"),
                        ));
                    };
                    let (k, v) = to_riverbed(name, v.as_str())
                        .map_err(|m| (ResponseError::InvalidConfig, m))?;
                    if settings.iter().any(|(s, _)| *s == k) {
                        return Err((
                            ResponseError::InvalidRequest,
                            format!("config {name:?} appears more than once"),
                        ));
                    }
                    settings.push((k, Some(v)));
                }
                for kc in KAFKA_CONFIGS {
                    if !settings.iter().any(|(k, _)| *k == kc.riverbed) {
                        settings.push((kc.riverbed, None));
                    }
                }
                alter_topic(
                    store,
                    res.resource_type,
                    res.resource_name.as_str(),
                    &settings,
                    req.validate_only,
                )
            })();
            let (code, message) = alter_answer(outcome);
            kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse::default(
            )
            .with_error_code(code)
            .with_error_message(message)
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone())
        })
        .collect();
    if responses.iter().any(
        |t: &kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse| {
            t.error_code != 0
        },
    ) {
        conn.error_answered();
    }
    let resp = AlterConfigsResponse::default().with_responses(responses);
    Ok(Reply::Body(encode_body(&resp, version)?))
}

// ---- DescribeCluster ------------------------------------------------------------------------

/// The cluster operations the connection's principal may do, as Kafka's AclOperation codes
/// in bits: CREATE 5, ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10,
/// ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12; 0 without Describe.
fn cluster_operations(shared: &Shared, conn: &Connection) -> i32 {
    let may = |op| auth::authorize(shared, conn, op, Resource::cluster());
    if !may(Operation::Describe) {
        return 0;
    }
    [
        (Operation::Create, 5),
        (Operation::Alter, 7),
        (Operation::Describe, 8),
        (Operation::ClusterAction, 9),
        (Operation::DescribeConfigs, 10),
        (Operation::AlterConfigs, 11),
        (Operation::IdempotentWrite, 12),
    ]
    .into_iter()
    .filter(|(op, _)| may(*op))
    .fold(0, |bits, (_, bit)| bits | (1 << bit))
}

/// DescribeCluster v0–1 (the Java admin's `describeCluster`): this one node, as broker and
/// controller. Endpoint type 2 (controllers, KIP-919) is refused with UNSUPPORTED_ENDPOINT_TYPE,
/// as a broker answers it.
pub(super) fn describe_cluster(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: DescribeClusterRequest = decode_body(body, ApiKey::DescribeCluster, version)?;
    let mut resp = DescribeClusterResponse::default()
        .with_endpoint_type(1)
        .with_cluster_id(StrBytes::from_static_str(super::metadata::CLUSTER_ID))
        .with_controller_id(BrokerId(NODE_ID))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(NODE_ID))
            .with_host(StrBytes::from_string(shared.advertised_host.clone()))
            .with_port(shared.advertised_port)])
        // Kafka's "not requested" value (i32::MIN) unless asked; when asked, the cluster
        // operations the principal's ACLs allow (everything without ACLs), none without
        // Describe on the cluster (Kafka's `KafkaApis.handleDescribeCluster`).
        .with_cluster_authorized_operations(if req.include_cluster_authorized_operations {
            cluster_operations(shared, conn)
        } else {
            i32::MIN
        });
    if version >= 1 && req.endpoint_type != 1 {
        resp = DescribeClusterResponse::default()
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(msg(format!(
                "endpoint type {} is not served: this node is a broker (1)",
                req.endpoint_type
            )))
            .with_endpoint_type(req.endpoint_type)
            .with_cluster_id(StrBytes::from_static_str(super::metadata::CLUSTER_ID))
            .with_controller_id(BrokerId(-1));
    }
    if resp.error_code != 0 {
        conn.error_answered();
    }
    Ok(Reply::Body(encode_body(&resp, version)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kafka_config_maps_onto_a_topic_config_key_and_back() {
        let defaults = TopicConfig::new(1).entries();
        for c in KAFKA_CONFIGS {
            let (_, v) = defaults
                .iter()
                .find(|(k, _)| k == c.riverbed)
                .unwrap_or_else(|| panic!("{} maps onto unknown key {}", c.kafka, c.riverbed));
            let kafka_value = to_kafka_value(c, v);
            let (k, back) = to_riverbed(c.kafka, &kafka_value).unwrap();
            assert_eq!((k, back.as_str()), (c.riverbed, v.as_str()), "{}", c.kafka);
        }
    }

    #[test]
    fn unknown_and_unsupported_settings_are_refused_by_name() {
        let e = to_riverbed("min.insync.replicas", "2").unwrap_err();
        assert!(e.contains("min.insync.replicas"), "{e}");
        assert!(to_riverbed("compression.type", "gzip").is_err());
        assert!(to_riverbed("message.timestamp.type", "Now").is_err());
        assert!(to_riverbed("cleanup.policy", "forever").is_err());
        assert!(to_riverbed("segment.bytes", "-5").is_err());
        assert_eq!(
            to_riverbed("cleanup.policy", "delete,compact").unwrap().1,
            "compact,delete"
        );
        assert_eq!(to_riverbed("retention.ms", "-1").unwrap().1, "none");
    }
}
