//! Consumer groups over the wire: FindCoordinator, the classic group protocol (JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup), OffsetCommit/OffsetFetch and the group admin APIs
//! (ListGroups, DescribeGroups, DeleteGroups).
//!
//! Every group is the store's own [`Group`](crate::group) — the coordinator the in-process
//! [`Consumer`](crate::Consumer) uses — so one group may have members in this process and
//! remote ones, and their commits go to the same committed-offsets log. The coordinator assigns
//! partitions for everyone: JoinGroup answers carry a leader id that is no member's
//! (`riverbed-coordinator`) and an empty member list, so every client acts as a follower and
//! gets its assignment from SyncGroup (librdkafka, kafka-python and kafkajs all decide
//! "leader or not" by comparing the leader id with their own member id).
//!
//! A JoinGroup that starts or joins a rebalance blocks its connection's thread (never holding
//! the group's lock) until the rebalance completes, the member is removed, its rebalance
//! timeout passes (REBALANCE_IN_PROGRESS: the client rejoins) or the server stops
//! (COORDINATOR_NOT_AVAILABLE: the client finds the coordinator again).
//!
//! Limits of this version (documented in README.md): only eager assignors (`range`,
//! `roundrobin` — also under kafkajs's name `RoundRobinAssigner` — and `sticky`); a group whose
//! members offer only `cooperative-sticky` gets INCONSISTENT_GROUP_PROTOCOL. Static membership
//! (`group.instance.id`, KIP-345) is accepted and treated as dynamic. Session timeouts from 1 s
//! to 30 min are accepted (Kafka's broker defaults: 6 s to 30 min).

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, RequestHeader, SyncGroupRequest,
    SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::auth::{self, Operation, Resource, ResourceType};
use super::conn::{decode_body, encode_body, Close, Connection};
use super::dispatch::Reply;
use super::{errors, Shared, NODE_ID};
use crate::coordinator::offsets::OffsetAndMetadata;
use crate::group::{self, Group, JoinTicket, Refusal, RemoteJoin, COORDINATOR_LEADER};
use crate::topic::TopicPartition;

/// The shortest and longest session timeouts a JoinGroup may ask for.
const MIN_SESSION_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_SESSION_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Kafka's `offset.metadata.max.bytes`: longer commit metadata gets OFFSET_METADATA_TOO_LARGE.
const MAX_OFFSET_METADATA: usize = 4096;
/// How long a blocked JoinGroup sleeps between looks at the server's stop flag.
const JOIN_POLL: Duration = Duration::from_millis(100);

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// The Kafka error for a coordinator refusal (also for TxnOffsetCommit's checks, with
/// `Group::check_remote_commit(.., transactional: true, ..)`).
pub(super) fn refusal_error(r: &Refusal) -> ResponseError {
    match r {
        Refusal::UnknownMember => ResponseError::UnknownMemberId,
        Refusal::IllegalGeneration => ResponseError::IllegalGeneration,
        Refusal::RebalanceInProgress => ResponseError::RebalanceInProgress,
        Refusal::InconsistentProtocol => ResponseError::InconsistentGroupProtocol,
        Refusal::MemberIdRequired(_) => ResponseError::MemberIdRequired,
    }
}

/// Encodes `resp`, counting it as an error answer in the server's metrics when `failed`.
fn reply<R: Encodable>(
    conn: &mut Connection,
    failed: bool,
    resp: &R,
    version: i16,
) -> Result<Reply, Close> {
    if failed {
        conn.error_answered();
    }
    Ok(Reply::Body(encode_body(resp, version)?))
}

/// Kafka's `isValidGroupId` for the membership APIs: not empty.
fn valid_group(id: &GroupId) -> bool {
    !id.0.is_empty()
}

/// Whether the connection's principal may do `op` on group `id` (always, without ACLs).
fn may(shared: &Shared, conn: &Connection, op: Operation, id: &str) -> bool {
    auth::authorize(shared, conn, op, Resource::group(id))
}

/// GROUP_AUTHORIZATION_FAILED (30).
fn group_denied() -> i16 {
    ResourceType::Group.denied_code()
}

fn counts(shared: &Shared) -> impl Fn(&str) -> Option<u32> + '_ {
    move |t: &str| shared.store.topic(t).ok().map(|t| t.partition_count())
}

/// Wakes in-process consumers (a rebalance may need them) and republishes the membership file.
fn group_changed(shared: &Shared) {
    shared.store.publish_groups();
    shared.store.notify().notify();
}

/// FindCoordinator v0–6: this node coordinates every group and every transactional id. From v4
/// on a request carries a batch of keys, each answered.
pub(super) fn find_coordinator(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: FindCoordinatorRequest = decode_body(body, ApiKey::FindCoordinator, version)?;
    let known_type = matches!(req.key_type, 0 | 1);
    let error = if known_type {
        0
    } else {
        ResponseError::InvalidRequest.code()
    };
    let message =
        (!known_type).then(|| s(format!("unknown coordinator key type {}", req.key_type)));
    let (node, host, port) = if known_type {
        (
            NODE_ID,
            shared.advertised_host.clone(),
            shared.advertised_port,
        )
    } else {
        (-1, String::new(), -1)
    };
    // ACLs (Kafka's `KafkaApis.handleFindCoordinatorRequest`): Describe on the group or the
    // transactional id, else GROUP_AUTHORIZATION_FAILED (30) or
    // TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53), with no coordinator.
    let denied = |key: &str| -> Option<i16> {
        let resource = match req.key_type {
            0 => Resource::group(key),
            1 => Resource::transactional_id(key),
            _ => return None,
        };
        (!auth::authorize(shared, conn, Operation::Describe, resource))
            .then_some(resource.kind.denied_code())
    };
    let mut resp = FindCoordinatorResponse::default();
    if version >= 4 {
        resp.coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| match denied(k) {
                Some(code) => Coordinator::default()
                    .with_key(k.clone())
                    .with_node_id(BrokerId(-1))
                    .with_host(s(""))
                    .with_port(-1)
                    .with_error_code(code),
                None => Coordinator::default()
                    .with_key(k.clone())
                    .with_node_id(BrokerId(node))
                    .with_host(s(host.clone()))
                    .with_port(port)
                    .with_error_code(error)
                    .with_error_message(message.clone()),
            })
            .collect();
    } else if let Some(code) = denied(&req.key) {
        resp = resp
            .with_error_code(code)
            .with_node_id(BrokerId(-1))
            .with_host(s(""))
            .with_port(-1);
    } else {
        resp = resp
            .with_error_code(error)
            .with_error_message(message)
            .with_node_id(BrokerId(node))
            .with_host(s(host))
            .with_port(port);
    }
    let failed = resp.error_code != 0 || resp.coordinators.iter().any(|c| c.error_code != 0);
    reply(conn, failed, &resp, version)
}

/// JoinGroup v0–7.
pub(super) fn join_group(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    header: &RequestHeader,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: JoinGroupRequest = decode_body(body, ApiKey::JoinGroup, version)?;
    let answer = |error: ResponseError, member_id: &str| -> JoinGroupResponse {
        JoinGroupResponse::default()
            .with_error_code(error.code())
            .with_generation_id(-1)
            .with_protocol_name((version < 7).then(|| s("")))
            .with_leader(s(""))
            .with_member_id(s(member_id))
    };
    if !valid_group(&req.group_id) {
        return reply(
            conn,
            true,
            &answer(ResponseError::InvalidGroupId, &req.member_id),
            version,
        );
    }
    // ACLs (Kafka's `KafkaApis.handleJoinGroupRequest`, and the same for SyncGroup,
    // Heartbeat, LeaveGroup and OffsetCommit): Read on the group.
    if !may(shared, conn, Operation::Read, &req.group_id) {
        return reply(
            conn,
            true,
            &answer(ResponseError::GroupAuthorizationFailed, &req.member_id),
            version,
        );
    }
    let session = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
    if !(MIN_SESSION_TIMEOUT..=MAX_SESSION_TIMEOUT).contains(&session) {
        return reply(
            conn,
            true,
            &answer(ResponseError::InvalidSessionTimeout, &req.member_id),
            version,
        );
    }
    if req.protocol_type.as_str() != "consumer" || req.protocols.is_empty() {
        // Only the consumer protocol's assignments can be computed here (Kafka also refuses
        // an empty protocol type or list with this code).
        return reply(
            conn,
            true,
            &answer(ResponseError::InconsistentGroupProtocol, &req.member_id),
            version,
        );
    }
    // v0 has no rebalance timeout: Kafka uses the session timeout.
    let rebalance = if version >= 1 && req.rebalance_timeout_ms > 0 {
        Duration::from_millis(req.rebalance_timeout_ms as u64)
    } else {
        session
    };
    let join = RemoteJoin {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
        client_id: header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        client_host: format!("/{}", conn.peer.ip()),
        session_timeout: session,
        rebalance_timeout: rebalance,
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.to_vec()))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let group = shared.store.group(&req.group_id);
    let counts = counts(shared);
    let ticket = group.remote_join(
        join,
        Instant::now(),
        shared.store.metadata_version(),
        &counts,
    );
    group_changed(shared);
    let ticket: JoinTicket = match ticket {
        Ok(t) => t,
        Err(Refusal::MemberIdRequired(id)) => {
            return reply(
                conn,
                true,
                &answer(ResponseError::MemberIdRequired, &id),
                version,
            );
        }
        Err(r) => {
            return reply(
                conn,
                true,
                &answer(refusal_error(&r), &req.member_id),
                version,
            )
        }
    };
    let joined = wait_join(shared, &group, &ticket, rebalance, &counts);
    group_changed(shared);
    match joined {
        Ok(j) => {
            let resp = JoinGroupResponse::default()
                .with_generation_id(j.generation as i32)
                .with_protocol_type((version >= 7).then(|| s("consumer")))
                .with_protocol_name(Some(s(j.protocol)))
                .with_leader(s(COORDINATOR_LEADER))
                .with_member_id(s(j.member_id));
            reply(conn, false, &resp, version)
        }
        Err(e) => reply(conn, true, &answer(e, &ticket.member_id), version),
    }
}

/// Waits, without holding the group's lock, for `ticket`'s join to complete.
fn wait_join(
    shared: &Shared,
    group: &Group,
    ticket: &JoinTicket,
    rebalance_timeout: Duration,
    counts: &dyn Fn(&str) -> Option<u32>,
) -> Result<group::Joined, ResponseError> {
    // The members that did not rejoin are removed after their rebalance timeout, after which
    // the rebalance completes; an in-process member may hold it longer (its max_poll_interval),
    // and then the client is told to rejoin rather than wait past its request timeout.
    let deadline = Instant::now() + rebalance_timeout + Duration::from_secs(1);
    loop {
        let seen = group.epoch();
        match group.poll_join(
            ticket,
            Instant::now(),
            shared.store.metadata_version(),
            counts,
        ) {
            Some(Ok(j)) => return Ok(j),
            Some(Err(r)) => return Err(refusal_error(&r)),
            None => {}
        }
        if shared.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(ResponseError::RebalanceInProgress);
        }
        // In-process members move the rebalance on at their polls; wake them now and then.
        shared.store.notify().notify();
        group.wait_change(seen, JOIN_POLL.min(deadline - now));
    }
}

/// SyncGroup v0–5: the member's assignment, computed by the coordinator; what a client sends
/// in `assignments` is ignored (no client is the leader).
pub(super) fn sync_group(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: SyncGroupRequest = decode_body(body, ApiKey::SyncGroup, version)?;
    let mut resp = SyncGroupResponse::default();
    let result = if !valid_group(&req.group_id) {
        Err(ResponseError::InvalidGroupId)
    } else if !may(shared, conn, Operation::Read, &req.group_id) {
        Err(ResponseError::GroupAuthorizationFailed)
    } else if req
        .protocol_type
        .as_ref()
        .is_some_and(|t| t.as_str() != "consumer")
    {
        Err(ResponseError::InconsistentGroupProtocol)
    } else {
        let group = shared.store.group(&req.group_id);
        match group.sync(&req.member_id, req.generation_id, Instant::now()) {
            Ok((protocol, _))
                if req
                    .protocol_name
                    .as_ref()
                    .is_some_and(|p| *p.as_str() != protocol) =>
            {
                Err(ResponseError::InconsistentGroupProtocol)
            }
            Ok(ok) => Ok(ok),
            Err(r) => Err(refusal_error(&r)),
        }
    };
    match result {
        Ok((protocol, assignment)) => {
            resp = resp
                .with_protocol_type((version >= 5).then(|| s("consumer")))
                .with_protocol_name((version >= 5).then(|| s(protocol)))
                .with_assignment(Bytes::from(group::protocol::encode_assignment(&assignment)));
        }
        Err(e) => resp = resp.with_error_code(e.code()),
    }
    let failed = resp.error_code != 0;
    reply(conn, failed, &resp, version)
}

/// Heartbeat v0–4.
pub(super) fn heartbeat(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: HeartbeatRequest = decode_body(body, ApiKey::Heartbeat, version)?;
    let error = if !valid_group(&req.group_id) {
        ResponseError::InvalidGroupId.code()
    } else if !may(shared, conn, Operation::Read, &req.group_id) {
        group_denied()
    } else {
        let group = shared.store.group(&req.group_id);
        let counts = counts(shared);
        let r = group.heartbeat(
            &req.member_id,
            req.generation_id,
            Instant::now(),
            shared.store.metadata_version(),
            &counts,
        );
        group_changed(shared);
        match r {
            Ok(()) => 0,
            Err(r) => refusal_error(&r).code(),
        }
    };
    let resp = HeartbeatResponse::default().with_error_code(error);
    reply(conn, error != 0, &resp, version)
}

/// LeaveGroup v0–5 (v3+: a batch of members, each by member id or group instance id).
pub(super) fn leave_group(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: LeaveGroupRequest = decode_body(body, ApiKey::LeaveGroup, version)?;
    let mut resp = LeaveGroupResponse::default();
    if !valid_group(&req.group_id) {
        resp.error_code = ResponseError::InvalidGroupId.code();
        return reply(conn, true, &resp, version);
    }
    if !may(shared, conn, Operation::Read, &req.group_id) {
        resp.error_code = group_denied();
        return reply(conn, true, &resp, version);
    }
    let group = shared.store.group(&req.group_id);
    let now = Instant::now();
    if version < 3 {
        if let Err(r) = group.remote_leave(&req.member_id, None, now) {
            resp.error_code = refusal_error(&r).code();
        }
    } else {
        resp.members = req
            .members
            .iter()
            .map(|m| {
                let r = group.remote_leave(&m.member_id, m.group_instance_id.as_deref(), now);
                MemberResponse::default()
                    .with_member_id(m.member_id.clone())
                    .with_group_instance_id(m.group_instance_id.clone())
                    .with_error_code(r.err().map_or(0, |r| refusal_error(&r).code()))
            })
            .collect();
    }
    group_changed(shared);
    let failed = resp.error_code != 0 || resp.members.iter().any(|m| m.error_code != 0);
    reply(conn, failed, &resp, version)
}

/// OffsetCommit v2–8: fenced as Kafka's classic coordinator fences it
/// ([`Group::check_remote_commit`]), then every accepted partition in one atomic, durable
/// commit to the store's committed-offsets log (the one in-process consumers use).
pub(super) fn offset_commit(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: OffsetCommitRequest = decode_body(body, ApiKey::OffsetCommit, version)?;
    let group_error = if !valid_group(&req.group_id) {
        Some(ResponseError::InvalidGroupId)
    } else if !may(shared, conn, Operation::Read, &req.group_id) {
        Some(ResponseError::GroupAuthorizationFailed)
    } else {
        shared
            .store
            .group(&req.group_id)
            .check_remote_commit(
                &req.member_id,
                req.generation_id_or_member_epoch,
                false,
                Instant::now(),
            )
            .err()
            .map(|r| refusal_error(&r))
    };
    // (topic index, partition index, error) for every partition, and what to commit.
    let mut codes: Vec<Vec<i16>> = Vec::with_capacity(req.topics.len());
    let mut entries: Vec<(TopicPartition, Option<OffsetAndMetadata>)> = Vec::new();
    let mut slots: Vec<(usize, usize)> = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        let mut row = Vec::with_capacity(t.partitions.len());
        // Kafka: OffsetCommit also needs Read on each topic (TOPIC_AUTHORIZATION_FAILED).
        let topic_denied = group_error.is_none()
            && !auth::authorize(
                shared,
                conn,
                Operation::Read,
                Resource::topic(t.name.as_str()),
            );
        for (pi, p) in t.partitions.iter().enumerate() {
            let code = if let Some(e) = group_error {
                e.code()
            } else if topic_denied {
                ResponseError::TopicAuthorizationFailed.code()
            } else if p.partition_index < 0
                || shared
                    .store
                    .partition(&TopicPartition::new(
                        t.name.to_string(),
                        p.partition_index as u32,
                    ))
                    .is_err()
            {
                ResponseError::UnknownTopicOrPartition.code()
            } else if p.committed_metadata.as_ref().map_or(0, |m| m.len()) > MAX_OFFSET_METADATA {
                ResponseError::OffsetMetadataTooLarge.code()
            } else if p.committed_offset < 0 {
                // Riverbed offsets are unsigned; Kafka has no offset below 0 to resume from.
                ResponseError::OffsetOutOfRange.code()
            } else {
                let mut o = OffsetAndMetadata::new(p.committed_offset as u64);
                o.metadata = p
                    .committed_metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                entries.push((
                    TopicPartition::new(t.name.to_string(), p.partition_index as u32),
                    Some(o),
                ));
                slots.push((ti, pi));
                0
            };
            row.push(code);
        }
        codes.push(row);
    }
    if !entries.is_empty() {
        if let Err(e) = shared.store.offsets().commit(&req.group_id, &entries) {
            tracing::warn!(group = %req.group_id.as_str(), error = %e, "remote offset commit failed");
            let code = errors::code(&e);
            for (ti, pi) in slots {
                codes[ti][pi] = code;
            }
        }
    }
    let failed = codes.iter().flatten().any(|&c| c != 0);
    let resp = OffsetCommitResponse::default().with_topics(
        req.topics
            .iter()
            .zip(codes)
            .map(|(t, row)| {
                OffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .zip(row)
                            .map(|(p, code)| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect(),
    );
    reply(conn, failed, &resp, version)
}

/// One partition's OffsetFetch answer: partition, committed offset (-1: none), metadata, error.
type OffsetRow = (i32, i64, String, i16);

/// One group's committed offsets as OffsetFetch answers them: the partitions asked for (or
/// every partition with an offset), -1 and no metadata where nothing is committed.
/// `require_stable` (v7+, KIP-447): a partition an open transaction has an offset pending for
/// gets UNSTABLE_OFFSET_COMMIT, so the client retries after the transaction ends.
fn fetch_offsets(
    shared: &Shared,
    group: &str,
    topics: Option<Vec<(TopicName, Vec<i32>)>>,
    require_stable: bool,
) -> Vec<(TopicName, Vec<OffsetRow>)> {
    let offsets = shared.store.offsets();
    let wanted: Vec<(TopicName, Vec<i32>)> = match topics {
        Some(t) => t,
        None => {
            let mut by_topic: Vec<(TopicName, Vec<i32>)> = Vec::new();
            for (tp, _) in offsets.group_offsets(group) {
                match by_topic.last_mut() {
                    Some((name, parts)) if name.as_str() == tp.topic => {
                        parts.push(tp.partition as i32)
                    }
                    _ => by_topic.push((TopicName(s(tp.topic.clone())), vec![tp.partition as i32])),
                }
            }
            by_topic
        }
    };
    wanted
        .into_iter()
        .map(|(name, parts)| {
            let rows = parts
                .into_iter()
                .map(|p| {
                    if p < 0 {
                        return (
                            p,
                            -1,
                            String::new(),
                            ResponseError::UnknownTopicOrPartition.code(),
                        );
                    }
                    let tp = TopicPartition::new(name.to_string(), p as u32);
                    if require_stable && offsets.has_pending(group, &tp) {
                        return (
                            p,
                            -1,
                            String::new(),
                            ResponseError::UnstableOffsetCommit.code(),
                        );
                    }
                    match offsets.committed(group, &tp) {
                        Some(o) => (
                            p,
                            i64::try_from(o.offset).unwrap_or(i64::MAX),
                            o.metadata,
                            0,
                        ),
                        None => (p, -1, String::new(), 0),
                    }
                })
                .collect();
            (name, rows)
        })
        .collect()
}

/// `fetch_offsets` under the ACLs (Kafka's `KafkaApis.handleOffsetFetchRequest`): Describe on
/// the group, else `Err(GROUP_AUTHORIZATION_FAILED)`; a topic the principal may not describe
/// is left out when every committed offset was asked for, and answered
/// TOPIC_AUTHORIZATION_FAILED when it was named.
fn authorized_offsets(
    shared: &Shared,
    conn: &Connection,
    group: &str,
    topics: Option<Vec<(TopicName, Vec<i32>)>>,
    require_stable: bool,
) -> Result<Vec<(TopicName, Vec<OffsetRow>)>, i16> {
    if !may(shared, conn, Operation::Describe, group) {
        return Err(group_denied());
    }
    let all = topics.is_none();
    let describable = |t: &TopicName| {
        auth::authorize(
            shared,
            conn,
            Operation::Describe,
            Resource::topic(t.as_str()),
        )
    };
    Ok(fetch_offsets(shared, group, topics, require_stable)
        .into_iter()
        .filter(|(name, _)| !all || describable(name))
        .map(|(name, rows)| {
            if describable(&name) {
                return (name, rows);
            }
            let code = ResponseError::TopicAuthorizationFailed.code();
            let rows = rows
                .into_iter()
                .map(|(p, ..)| (p, -1, String::new(), code))
                .collect();
            (name, rows)
        })
        .collect())
}

/// OffsetFetch v1–8 (v8: several groups in one request).
pub(super) fn offset_fetch(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: OffsetFetchRequest = decode_body(body, ApiKey::OffsetFetch, version)?;
    let require_stable = version >= 7 && req.require_stable;
    let mut resp = OffsetFetchResponse::default();
    if version >= 8 {
        resp.groups = req
            .groups
            .iter()
            .map(|g| {
                let topics = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.clone(), t.partition_indexes.clone()))
                        .collect()
                });
                let (rows, code) =
                    match authorized_offsets(shared, conn, &g.group_id, topics, require_stable) {
                        Ok(rows) => (rows, 0),
                        Err(code) => (Vec::new(), code),
                    };
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id.clone())
                    .with_error_code(code)
                    .with_topics(
                        rows.into_iter()
                            .map(|(name, parts)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(name)
                                    .with_partitions(
                                        parts
                                            .into_iter()
                                            .map(|(p, off, meta, code)| {
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p)
                                                    .with_committed_offset(off)
                                                    .with_committed_leader_epoch(-1)
                                                    .with_metadata(Some(s(meta)))
                                                    .with_error_code(code)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    )
            })
            .collect();
    } else {
        let topics = req.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.clone(), t.partition_indexes.clone()))
                .collect()
        });
        let rows = match authorized_offsets(shared, conn, &req.group_id, topics, require_stable) {
            Ok(rows) => rows,
            // Kafka's `OffsetFetchRequest.getErrorResponse`: the error at the top from v2, on
            // every requested partition below.
            Err(code) if version >= 2 => {
                resp.error_code = code;
                Vec::new()
            }
            Err(code) => req
                .topics
                .iter()
                .flatten()
                .map(|t| {
                    let rows = t
                        .partition_indexes
                        .iter()
                        .map(|&p| (p, -1, String::new(), code))
                        .collect();
                    (t.name.clone(), rows)
                })
                .collect(),
        };
        resp.topics = rows
            .into_iter()
            .map(|(name, parts)| {
                OffsetFetchResponseTopic::default()
                    .with_name(name)
                    .with_partitions(
                        parts
                            .into_iter()
                            .map(|(p, off, meta, code)| {
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(off)
                                    .with_committed_leader_epoch(-1)
                                    .with_metadata(Some(s(meta)))
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect();
    }
    let failed = resp.error_code != 0
        || resp.groups.iter().any(|g| g.error_code != 0)
        || resp
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .any(|p| p.error_code != 0)
        || resp
            .groups
            .iter()
            .flat_map(|g| &g.topics)
            .flat_map(|t| &t.partitions)
            .any(|p| p.error_code != 0);
    reply(conn, failed, &resp, version)
}

/// A group's Kafka state name: from its members, or `Empty` for a group known only by its
/// committed offsets, `Dead` for one the store does not know.
fn state_of(shared: &Shared, name: &str) -> (group::GroupView, bool) {
    let view = shared
        .store
        .existing_group(name)
        .map(|g| g.view())
        .unwrap_or(group::GroupView {
            state: "Empty",
            protocol: String::new(),
            members: Vec::new(),
        });
    let known = !view.members.is_empty() || !shared.store.offsets().group_offsets(name).is_empty();
    (view, known)
}

/// ListGroups v0–4 (v4: filter by state, case-insensitive as Kafka compares them).
pub(super) fn list_groups(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: ListGroupsRequest = decode_body(body, ApiKey::ListGroups, version)?;
    let groups = shared
        .store
        .list_groups()
        .into_iter()
        // ACLs (Kafka's `KafkaApis.handleListGroupsRequest`): every group with Describe on
        // the cluster, else only the groups the principal may describe.
        .filter(|name| {
            auth::authorize(shared, conn, Operation::Describe, Resource::cluster())
                || may(shared, conn, Operation::Describe, name)
        })
        .filter_map(|name| {
            let (view, _) = state_of(shared, &name);
            let keep = req.states_filter.is_empty()
                || req
                    .states_filter
                    .iter()
                    .any(|f| f.as_str().eq_ignore_ascii_case(view.state));
            keep.then(|| {
                ListedGroup::default()
                    .with_group_id(GroupId(s(name)))
                    .with_protocol_type(s(if view.members.is_empty() {
                        ""
                    } else {
                        "consumer"
                    }))
                    .with_group_state(s(view.state))
            })
        })
        .collect();
    let resp = ListGroupsResponse::default().with_groups(groups);
    reply(conn, false, &resp, version)
}

/// DescribeGroups v0–5: state, protocol and members (in-process members too: client id
/// `riverbed-in-process`, their subscription and assignment in the consumer protocol's
/// bytes). An unknown group is `Dead` with no error, as Kafka answers below v6. Authorized
/// operations are not computed (Kafka's "not requested" value, i32::MIN).
pub(super) fn describe_groups(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: DescribeGroupsRequest = decode_body(body, ApiKey::DescribeGroups, version)?;
    let groups = req
        .groups
        .iter()
        .map(|id| {
            let (view, known) = state_of(shared, id);
            let mut d = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(i32::MIN);
            if !valid_group(id) {
                return d.with_error_code(ResponseError::InvalidGroupId.code());
            }
            // ACLs (Kafka's `KafkaApis.handleDescribeGroupsRequest`): Describe on the group.
            if !may(shared, conn, Operation::Describe, id) {
                return d.with_error_code(group_denied());
            }
            if !known {
                return d.with_group_state(s("Dead"));
            }
            d = d
                .with_group_state(s(view.state))
                .with_protocol_type(s(if view.members.is_empty() {
                    ""
                } else {
                    "consumer"
                }))
                .with_protocol_data(s(view.protocol));
            d.members = view
                .members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(s(m.member_id))
                        .with_group_instance_id(m.instance_id.map(s))
                        .with_client_id(s(m.client_id))
                        .with_client_host(s(m.client_host))
                        .with_member_metadata(Bytes::from(m.metadata))
                        .with_member_assignment(Bytes::from(m.assignment))
                })
                .collect();
            d
        })
        .collect();
    let resp = DescribeGroupsResponse::default().with_groups(groups);
    let failed = resp.groups.iter().any(|g| g.error_code != 0);
    reply(conn, failed, &resp, version)
}

/// DeleteGroups v0–2: NON_EMPTY_GROUP while a group has members, GROUP_ID_NOT_FOUND for a group
/// with neither members nor committed offsets; otherwise its offsets are deleted in one commit.
pub(super) fn delete_groups(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: DeleteGroupsRequest = decode_body(body, ApiKey::DeleteGroups, version)?;
    let results = req
        .groups_names
        .iter()
        .map(|id| {
            let (view, known) = state_of(shared, id);
            let code = if !valid_group(id) {
                ResponseError::InvalidGroupId.code()
            } else if !may(shared, conn, Operation::Delete, id) {
                // ACLs (Kafka's `KafkaApis.handleDeleteGroupsRequest`): Delete on the group.
                group_denied()
            } else if !view.members.is_empty() {
                ResponseError::NonEmptyGroup.code()
            } else if !known {
                ResponseError::GroupIdNotFound.code()
            } else {
                match shared.store.delete_group(id) {
                    Ok(_) => 0,
                    // Members joined since the look above.
                    Err(e) if matches!(e.kind(), crate::error::ErrorKind::InvalidArgument(_)) => {
                        ResponseError::NonEmptyGroup.code()
                    }
                    Err(e) => errors::code(&e),
                }
            };
            DeletableGroupResult::default()
                .with_group_id(id.clone())
                .with_error_code(code)
        })
        .collect();
    let resp = DeleteGroupsResponse::default().with_results(results);
    group_changed(shared);
    let failed = resp.results.iter().any(|r| r.error_code != 0);
    reply(conn, failed, &resp, version)
}
