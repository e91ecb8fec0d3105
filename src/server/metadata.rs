//! Metadata (API 3, v0–12): the one broker, the cluster, and the topics with their partitions.
//!
//! Riverbed is a single node, so every partition's leader, replica set and ISR is that node
//! ([`NODE_ID`]); there are no offline replicas. Partitions are answered with leader epoch -1:
//! Riverbed keeps no leader epochs a client could validate against, and a client that is given
//! no epoch skips OffsetForLeaderEpoch validation (librdkafka `rdkafka_offset.c`: "skipping
//! offset validation … no leader epoch set"; research §1.2).
//!
//! Topics: a request for all topics (a null list from v1, an empty one in v0) lists every topic
//! of the store. The store's internal logs (`__consumer_offsets`, `__transaction_state`) are not
//! topics in Riverbed — they are never listed, and a request naming one gets
//! UNKNOWN_TOPIC_OR_PARTITION. A requested topic that does not exist is created when the
//! request allows it (`allow_auto_topic_creation` from v4, always below v4, as Kafka's
//! `KafkaApis.handleTopicMetadataRequest`) **and** the store does
//! ([`StoreConfig::auto_create_topics`](crate::StoreConfig::auto_create_topics), Kafka's
//! `auto.create.topics.enable`; `riverbed serve` turns it on). Otherwise it gets
//! UNKNOWN_TOPIC_OR_PARTITION; an invalid name gets INVALID_TOPIC_EXCEPTION.
//!
//! The cluster id is the fixed string [`CLUSTER_ID`]. Kafka derives it from `meta.properties`
//! so that brokers of one cluster can tell a stranger apart; a single node has no peers to
//! protect, clients only log or display the id, and a fixed id needs no new file in the data
//! directory.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{ApiKey, BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::auth::{self, Operation, Resource};
use super::conn::{self, Close, Connection};
use super::dispatch::Reply;
use super::{errors, Shared, NODE_ID};
use crate::error::ErrorKind;
use crate::topic::{validate_topic_name, RESERVED_TOPIC_NAMES};

/// The cluster id every Metadata answer carries (see the module docs for why it is fixed).
pub(crate) const CLUSTER_ID: &str = "riverbed";

/// Answers a Metadata request.
pub(super) fn handle(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: MetadataRequest = conn::decode_body(body, ApiKey::Metadata, version)?;
    // Kafka: below v4 a Metadata request always allows auto-creation.
    let allow_create = version < 4 || req.allow_auto_topic_creation;
    let requested: Option<Vec<String>> = match &req.topics {
        None => None,
        // v0 has no null list: an empty one means every topic.
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(
            t.iter()
                .map(|t| t.name.as_ref().map_or(String::new(), |n| n.0.to_string()))
                .collect(),
        ),
    };
    let describable =
        |n: &str| auth::authorize(shared, conn, Operation::Describe, Resource::topic(n));
    let topics: Vec<MetadataResponseTopic> = match requested {
        // All topics: those the principal may not describe are left out (Kafka's
        // `KafkaApis.handleTopicMetadataRequest`: "In case of all topics, don't include topics
        // unauthorized for Describe").
        None => {
            let mut names = shared.store.list_topics();
            names.sort();
            names
                .iter()
                .filter(|n| describable(n))
                .filter_map(|n| describe(shared, n, false))
                .collect()
        }
        // Named topics: one the principal may not describe gets TOPIC_AUTHORIZATION_FAILED
        // whether it exists or not (Kafka does "not disclose the existence of topics
        // unauthorized for Describe"); one to be auto-created needs Create on the cluster or
        // the topic, else it gets TOPIC_AUTHORIZATION_FAILED too.
        Some(names) => names
            .iter()
            .map(|n| {
                if !describable(n) {
                    return topic_error(n, ResponseError::TopicAuthorizationFailed.code());
                }
                let create = allow_create && may_create(shared, conn, n);
                describe(shared, n, create).unwrap_or_else(|| {
                    let code = if allow_create && !create && shared.store.auto_creates_topics() {
                        ResponseError::TopicAuthorizationFailed
                    } else {
                        ResponseError::UnknownTopicOrPartition
                    };
                    topic_error(n, code.code())
                })
            })
            .collect(),
    };
    if topics
        .iter()
        .any(|t: &MetadataResponseTopic| t.error_code != 0)
    {
        conn.error_answered();
    }
    let resp = MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(NODE_ID))
            .with_host(StrBytes::from_string(shared.advertised_host.clone()))
            .with_port(shared.advertised_port)
            .with_rack(None)])
        .with_cluster_id(Some(StrBytes::from_static_str(CLUSTER_ID)))
        .with_controller_id(BrokerId(NODE_ID))
        .with_topics(topics);
    Ok(Reply::Body(conn::encode_body(&resp, version)?))
}

/// Whether the connection's principal may create topic `name`: Create on the cluster, or on
/// the topic (Kafka's auto-creation and CreateTopics rule).
pub(super) fn may_create(shared: &Shared, conn: &Connection, name: &str) -> bool {
    auth::authorize(shared, conn, Operation::Create, Resource::cluster())
        || auth::authorize(shared, conn, Operation::Create, Resource::topic(name))
}

/// The answer for topic `name`: its partitions, or its error. `None` when it does not exist
/// (and was not created).
fn describe(shared: &Shared, name: &str, allow_create: bool) -> Option<MetadataResponseTopic> {
    if RESERVED_TOPIC_NAMES.contains(&name) {
        return None;
    }
    if let Err(e) = validate_topic_name(name) {
        tracing::debug!(topic = name, error = %e, "metadata for an invalid topic name");
        return Some(topic_error(
            name,
            ResponseError::InvalidTopicException.code(),
        ));
    }
    let found = if allow_create {
        shared.store.topic_or_create(name)
    } else {
        shared.store.topic(name)
    };
    let topic = match found {
        Ok(t) => t,
        Err(e) if matches!(e.kind(), ErrorKind::UnknownTopic { .. }) => return None,
        Err(e) => {
            tracing::warn!(topic = name, error = %e, "metadata: cannot open or create the topic");
            return Some(topic_error(name, errors::code(&e)));
        }
    };
    let partitions = (0..topic.partition_count())
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p as i32)
                .with_leader_id(BrokerId(NODE_ID))
                .with_leader_epoch(-1)
                .with_replica_nodes(vec![BrokerId(NODE_ID)])
                .with_isr_nodes(vec![BrokerId(NODE_ID)])
                .with_offline_replicas(Vec::new())
        })
        .collect();
    Some(
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
            .with_is_internal(false)
            .with_partitions(partitions),
    )
}

fn topic_error(name: &str, code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code)
        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
}
