//! Consumer groups over the wire front: the classic group protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup), commits, and the group admin APIs, spoken by kafka-protocol's client
//! side. A group spans remote members and in-process `Consumer`s: one coordinator.
//!
//! Cases translated from Kafka's own tests cite them: apache/kafka
//! group-coordinator/src/test/java/org/apache/kafka/coordinator/group/OffsetMetadataManagerTest.java
//! and GroupMetadataManagerTest.java (classic groups). Needs `--features server`.
#![cfg(feature = "server")]
#![allow(clippy::big_endian_bytes)] // Kafka's wire protocol is big-endian

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::wire::{s, WireClient};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::*;
use riverbed::server::{Server, ServerConfig};
use riverbed::{Consumer, ConsumerConfig, OffsetAndMetadata, Store, TopicConfig, TopicPartition};

const TOPIC: &str = "events";

fn start(partitions: u32) -> (tempfile::TempDir, Store, Server) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic(TOPIC, TopicConfig::new(partitions))
        .unwrap();
    let server = Server::start(&store, ServerConfig::new("127.0.0.1:0")).unwrap();
    (dir, store, server)
}

fn gid(g: &str) -> GroupId {
    GroupId(s(g))
}

/// A version-0 ConsumerProtocolSubscription, written by hand as the Java client lays it out
/// (clients/src/main/resources/common/message/ConsumerProtocolSubscription.json).
fn subscription(topics: &[&str]) -> Bytes {
    let mut b = vec![0, 0];
    b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        b.extend_from_slice(&(t.len() as i16).to_be_bytes());
        b.extend_from_slice(t.as_bytes());
    }
    b.extend_from_slice(&(-1i32).to_be_bytes());
    Bytes::from(b)
}

/// Reads a ConsumerProtocolAssignment (any version) by hand.
fn assignment(b: &[u8]) -> Vec<TopicPartition> {
    let i16_at = |p: usize| i16::from_be_bytes([b[p], b[p + 1]]);
    let i32_at = |p: usize| i32::from_be_bytes([b[p], b[p + 1], b[p + 2], b[p + 3]]);
    let mut out = Vec::new();
    if b.is_empty() {
        return out;
    }
    let mut pos = 2;
    let topics = i32_at(pos);
    pos += 4;
    for _ in 0..topics {
        let len = i16_at(pos) as usize;
        pos += 2;
        let topic = String::from_utf8(b[pos..pos + len].to_vec()).unwrap();
        pos += len;
        let n = i32_at(pos);
        pos += 4;
        for _ in 0..n {
            out.push(TopicPartition::new(topic.clone(), i32_at(pos) as u32));
            pos += 4;
        }
    }
    out.sort();
    out
}

fn join_request(
    group: &str,
    member: &str,
    protocols: &[&str],
    session_ms: i32,
) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(
            protocols
                .iter()
                .map(|p| {
                    JoinGroupRequestProtocol::default()
                        .with_name(s(p))
                        .with_metadata(subscription(&[TOPIC]))
                })
                .collect(),
        )
}

/// A remote member driven the way a Kafka client drives one (eager protocol, follower).
struct Remote {
    c: WireClient,
    group: String,
    member: String,
    generation: i32,
    owned: Vec<TopicPartition>,
    session_ms: i32,
}

impl Remote {
    fn new(addr: SocketAddr, group: &str, session_ms: i32) -> Remote {
        Remote {
            c: WireClient::connect(addr),
            group: group.into(),
            member: String::new(),
            generation: -1,
            owned: Vec::new(),
            session_ms,
        }
    }

    /// JoinGroup v5 (with the MEMBER_ID_REQUIRED round trip when new), then SyncGroup v3.
    fn join_and_sync(&mut self) {
        self.owned.clear(); // eager: revoke before rejoining
        loop {
            let r: JoinGroupResponse = self.c.call(
                ApiKey::JoinGroup,
                5,
                &join_request(
                    &self.group,
                    &self.member,
                    &["range", "roundrobin"],
                    self.session_ms,
                ),
            );
            match r.error_code {
                0 => {
                    assert_eq!(r.leader.as_str(), "riverbed-coordinator");
                    assert!(r.members.is_empty(), "no client is the leader");
                    assert_eq!(r.protocol_name.as_ref().unwrap().as_str(), "range");
                    self.member = r.member_id.to_string();
                    self.generation = r.generation_id;
                }
                79 => {
                    self.member = r.member_id.to_string();
                    continue;
                }
                27 => continue,
                25 => {
                    self.member.clear();
                    continue;
                }
                e => panic!("JoinGroup error {e}"),
            }
            let r: SyncGroupResponse = self.c.call(
                ApiKey::SyncGroup,
                3,
                &SyncGroupRequest::default()
                    .with_group_id(gid(&self.group))
                    .with_generation_id(self.generation)
                    .with_member_id(s(&self.member)),
            );
            match r.error_code {
                0 => {
                    self.owned = assignment(&r.assignment);
                    return;
                }
                27 | 22 => continue,
                25 => {
                    self.member.clear();
                    continue;
                }
                e => panic!("SyncGroup error {e}"),
            }
        }
    }

    fn heartbeat(&mut self) -> i16 {
        let r: HeartbeatResponse = self.c.call(
            ApiKey::Heartbeat,
            3,
            &HeartbeatRequest::default()
                .with_group_id(gid(&self.group))
                .with_generation_id(self.generation)
                .with_member_id(s(&self.member)),
        );
        r.error_code
    }

    /// Heartbeats; rejoins when told to. Returns whether it rejoined.
    fn tick(&mut self) -> bool {
        match self.heartbeat() {
            0 => false,
            27 | 22 => {
                self.join_and_sync();
                true
            }
            25 => {
                self.member.clear();
                self.join_and_sync();
                true
            }
            e => panic!("Heartbeat error {e}"),
        }
    }

    fn leave(&mut self) {
        let r: LeaveGroupResponse = self.c.call(
            ApiKey::LeaveGroup,
            1,
            &LeaveGroupRequest::default()
                .with_group_id(gid(&self.group))
                .with_member_id(s(&self.member)),
        );
        assert_eq!(r.error_code, 0);
        self.owned.clear();
    }

    fn commit(&mut self, generation: i32, member: &str, partition: i32, offset: i64) -> i16 {
        commit(
            &mut self.c,
            &self.group,
            generation,
            member,
            partition,
            offset,
        )
    }
}

fn commit(
    c: &mut WireClient,
    group: &str,
    generation: i32,
    member: &str,
    partition: i32,
    offset: i64,
) -> i16 {
    let r: OffsetCommitResponse = c.call(
        ApiKey::OffsetCommit,
        8,
        &OffsetCommitRequest::default()
            .with_group_id(gid(group))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(s(member))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(TOPIC)))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(partition)
                    .with_committed_offset(offset)
                    .with_committed_metadata(Some(s("m")))])]),
    );
    r.topics[0].partitions[0].error_code
}

fn fetch_offset(c: &mut WireClient, group: &str, partition: i32) -> i64 {
    let r: OffsetFetchResponse = c.call(
        ApiKey::OffsetFetch,
        8,
        &OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(gid(group))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(TopicName(s(TOPIC)))
                .with_partition_indexes(vec![partition])]))]),
    );
    let p = &r.groups[0].topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.committed_offset
}

fn all(n: u32) -> Vec<TopicPartition> {
    (0..n).map(|p| TopicPartition::new(TOPIC, p)).collect()
}

/// Runs each member as a client would — join, then heartbeat every 50 ms and rejoin when
/// told — for 1.5 s, all at once (a JoinGroup blocks until every member has rejoined).
fn run_together(remotes: &mut [Remote]) {
    std::thread::scope(|sc| {
        for r in remotes.iter_mut() {
            sc.spawn(move || {
                r.join_and_sync();
                let until = Instant::now() + Duration::from_millis(1500);
                while Instant::now() < until {
                    r.tick();
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
        }
    });
    let gens: BTreeSet<i32> = remotes.iter().map(|r| r.generation).collect();
    assert_eq!(gens.len(), 1, "members disagree on the generation");
}

fn assert_disjoint_cover(sets: &[&[TopicPartition]], n: u32) {
    let mut seen = BTreeSet::new();
    for s in sets {
        for tp in s.iter() {
            assert!(seen.insert(tp.clone()), "{tp} owned twice: {sets:?}");
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), all(n), "{sets:?}");
}

#[test]
fn two_remote_members_split_the_partitions_and_the_survivor_takes_all_after_a_leave() {
    let (_d, _store, server) = start(4);
    let a = Remote::new(server.local_addr(), "g", 10_000);
    let b = Remote::new(server.local_addr(), "g", 10_000);
    let mut rs = vec![a, b];
    run_together(&mut rs);
    assert_eq!(rs[0].owned.len(), 2);
    assert_disjoint_cover(&[&rs[0].owned, &rs[1].owned], 4);
    rs[1].leave();
    // The survivor learns of the rebalance from its heartbeat and rejoins.
    assert_eq!(rs[0].heartbeat(), 27, "REBALANCE_IN_PROGRESS after a leave");
    rs[0].join_and_sync();
    assert_eq!(rs[0].owned, all(4));
}

#[test]
fn member_id_required_round_trip_on_v4_and_a_direct_join_below() {
    // KIP-394 (Kafka's GroupMetadataManagerTest "testJoinGroupWithEmptyMemberIdRequiresKnown..."
    // family): v4+ with an empty member id gets 79 and an id; the rejoin with it is admitted.
    let (_d, _store, server) = start(2);
    let mut c = WireClient::connect(server.local_addr());
    let r: JoinGroupResponse = c.call(
        ApiKey::JoinGroup,
        4,
        &join_request("g", "", &["range"], 10_000),
    );
    assert_eq!(r.error_code, 79);
    assert_eq!(r.generation_id, -1);
    let id = r.member_id.to_string();
    assert!(!id.is_empty());
    let r: JoinGroupResponse = c.call(
        ApiKey::JoinGroup,
        4,
        &join_request("g", &id, &["range"], 10_000),
    );
    assert_eq!(r.error_code, 0);
    assert_eq!(r.member_id.as_str(), id);
    assert_eq!(r.generation_id, 1);
    // An id the coordinator never handed out is unknown.
    let r: JoinGroupResponse = c.call(
        ApiKey::JoinGroup,
        4,
        &join_request("g", "made-up", &["range"], 10_000),
    );
    assert_eq!(r.error_code, 25);
    // v3: no round trip; a new member joins at once (and the group rebalances for it).
    let mut d = WireClient::connect(server.local_addr());
    let t = std::thread::spawn(move || {
        let r: JoinGroupResponse = d.call(
            ApiKey::JoinGroup,
            3,
            &join_request("g", "", &["range"], 10_000),
        );
        r
    });
    // The first member learns of it and rejoins.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h: HeartbeatResponse = c.call(
            ApiKey::Heartbeat,
            3,
            &HeartbeatRequest::default()
                .with_group_id(gid("g"))
                .with_generation_id(1)
                .with_member_id(s(&id)),
        );
        if h.error_code == 27 {
            break;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let r1: JoinGroupResponse = c.call(
        ApiKey::JoinGroup,
        4,
        &join_request("g", &id, &["range"], 10_000),
    );
    let r2 = t.join().unwrap();
    assert_eq!((r1.error_code, r2.error_code), (0, 0));
    assert_eq!(r1.generation_id, 2);
    assert_eq!(r2.generation_id, 2);
    assert!(!r2.member_id.is_empty());
}

#[test]
fn a_member_that_stops_heartbeating_is_removed_after_its_session_timeout() {
    // Kafka: GroupMetadataManagerTest's session-expiry cases for classic groups; and
    // OffsetMetadataManagerTest.testGenericGroupOffsetCommitMaintainsSession (a commit counts
    // as a heartbeat).
    let (_d, _store, server) = start(4);
    let a = Remote::new(server.local_addr(), "g", 10_000);
    let b = Remote::new(server.local_addr(), "g", 1_000);
    let mut rs = vec![a, b];
    run_together(&mut rs);
    // b goes silent; a keeps heartbeating and, after b's session timeout, gets everything.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        rs[0].tick();
        if rs[0].owned == all(4) {
            break;
        }
        assert!(Instant::now() < deadline, "b was never removed");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(rs[1].heartbeat(), 25, "the removed member is unknown");
}

#[test]
fn an_in_process_consumer_and_a_remote_member_split_the_partitions_and_never_share_one() {
    let (_d, store, server) = start(4);
    let addr = server.local_addr();
    let mut local: Consumer = store
        .consumer(ConsumerConfig::new("mixed").enable_auto_commit(false))
        .unwrap();
    local.subscribe(&[TOPIC]).unwrap();
    local.poll(Duration::from_millis(50)).unwrap();
    assert_eq!(local.assignment(), all(4).as_slice());
    // The remote member joins while the local consumer polls in another thread.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = std::sync::Arc::clone(&stop);
    let poller = std::thread::spawn(move || {
        let mut snapshots = Vec::new();
        while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
            local.poll(Duration::from_millis(20)).unwrap();
            snapshots.push((Instant::now(), local.assignment().to_vec()));
        }
        (local, snapshots)
    });
    let mut r = Remote::new(addr, "mixed", 10_000);
    r.join_and_sync();
    let got_remote = Instant::now();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (local, snapshots) = poller.join().unwrap();
    assert_eq!(r.owned.len(), 2, "{:?}", r.owned);
    assert_disjoint_cover(&[local.assignment(), &r.owned], 4);
    // The remote got its partitions only after the local consumer had given its up: no local
    // snapshot taken after the remote's SyncGroup holds one of the remote's partitions.
    for (at, owned) in snapshots {
        if at > got_remote {
            assert!(
                owned.iter().all(|tp| !r.owned.contains(tp)),
                "{owned:?} vs {:?}",
                r.owned
            );
        }
    }
    // DescribeGroups shows both, the in-process one with its subscription and assignment.
    let mut c = WireClient::connect(addr);
    let d: DescribeGroupsResponse = c.call(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![gid("mixed")]),
    );
    let g = &d.groups[0];
    assert_eq!((g.error_code, g.group_state.as_str()), (0, "Stable"));
    assert_eq!(g.protocol_type.as_str(), "consumer");
    assert_eq!(g.protocol_data.as_str(), "range");
    assert_eq!(g.members.len(), 2);
    let mut owned: Vec<TopicPartition> = g
        .members
        .iter()
        .flat_map(|m| assignment(&m.member_assignment))
        .collect();
    owned.sort();
    assert_eq!(owned, all(4));
    assert!(g
        .members
        .iter()
        .any(|m| m.client_id.as_str() == "riverbed-in-process"));
    assert!(g
        .members
        .iter()
        .any(|m| m.client_id.as_str() == "riverbed-test"));
}

#[test]
fn commits_are_fenced_by_generation_and_member_as_kafka_fences_them() {
    let (_d, _store, server) = start(2);
    let mut c = WireClient::connect(server.local_addr());
    // OffsetMetadataManagerTest.testSimpleGroupOffsetCommit: generation -1, no member, empty
    // group: accepted.
    assert_eq!(commit(&mut c, "g", -1, "", 0, 5), 0);
    assert_eq!(fetch_offset(&mut c, "g", 0), 5);
    let mut r = Remote::new(server.local_addr(), "g", 10_000);
    r.join_and_sync();
    let gen = r.generation;
    let me = r.member.clone();
    assert_eq!(r.commit(gen, &me, 0, 7), 0);
    // testGenericGroupOffsetCommitWithoutMemberIdAndGeneration: the group has a member now.
    assert_eq!(r.commit(-1, "", 0, 8), 25);
    // testGenericGroupOffsetCommitWithUnknownMemberId.
    assert_eq!(r.commit(gen, "someone-else", 0, 8), 25);
    // testGenericGroupOffsetCommitWithIllegalGeneration.
    assert_eq!(r.commit(gen + 10, &me, 0, 8), 22);
    // Unknown partition.
    assert_eq!(r.commit(gen, &me, 9, 8), 3);
    assert_eq!(fetch_offset(&mut c, "g", 0), 7);
    // A member that has rejoined a rebalance under way may no longer commit: a second member
    // joins (v3, blocks), the first rejoins (blocks too) — from another connection, while both
    // wait, the first member's commit at its old generation is refused with 27.
    let addr = server.local_addr();
    let t2 = std::thread::spawn(move || {
        let mut d = WireClient::connect(addr);
        let r: JoinGroupResponse = d.call(
            ApiKey::JoinGroup,
            3,
            &join_request("g", "", &["range"], 10_000),
        );
        r.error_code
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.heartbeat() != 27 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    // Before it rejoins, the member may still commit (Kafka: its generation is current).
    assert_eq!(r.commit(gen, &me, 0, 9), 0);
    let mut again = Remote::new(addr, "g", 10_000);
    again.member = me.clone();
    let t1 = std::thread::spawn(move || {
        again.join_and_sync();
        again
    });
    let again = t1.join().unwrap();
    assert_eq!(t2.join().unwrap(), 0);
    assert_eq!(again.generation, gen + 1);
    assert_eq!(
        commit(&mut c, "g", gen, &me, 0, 10),
        22,
        "the old generation is fenced"
    );
}

#[test]
fn a_rejoined_member_committing_during_the_rebalance_gets_rebalance_in_progress() {
    // OffsetMetadataManagerTest.testGenericGroupOffsetCommitWhileInCompletingRebalanceState:
    // Riverbed assigns as the rebalance completes, so the window where Kafka answers 27 is the
    // one between a member's rejoin and the rebalance's end.
    let (_d, store, server) = start(2);
    let addr = server.local_addr();
    // An in-process member holds the rebalance open: it never polls again.
    let mut local = store
        .consumer(
            ConsumerConfig::new("g")
                .enable_auto_commit(false)
                .max_poll_interval(Duration::from_secs(60)),
        )
        .unwrap();
    local.subscribe(&[TOPIC]).unwrap();
    local.poll(Duration::from_millis(10)).unwrap();
    assert_eq!(local.assignment().len(), 2);
    let mut c = WireClient::connect(addr);
    let r: JoinGroupResponse = c.call(
        ApiKey::JoinGroup,
        3,
        &join_request("g", "", &["range"], 10_000).with_rebalance_timeout_ms(1_000),
    );
    // The join could not complete (the local member did not give up its partitions); the
    // client is told to retry after its rebalance timeout.
    assert_eq!(r.error_code, 27);
    let member = r.member_id.to_string();
    assert!(!member.is_empty());
    let code = commit(&mut WireClient::connect(addr), "g", 1, &member, 0, 3);
    assert_eq!(code, 27);
    drop(local);
}

#[test]
fn commits_are_visible_across_the_socket_both_ways() {
    let (_d, store, server) = start(2);
    let mut c = WireClient::connect(server.local_addr());
    assert_eq!(commit(&mut c, "shared", -1, "", 1, 42), 0);
    let local = store
        .consumer(ConsumerConfig::new("shared").enable_auto_commit(false))
        .unwrap();
    let got = local
        .committed(&TopicPartition::new(TOPIC, 1))
        .unwrap()
        .unwrap();
    assert_eq!((got.offset, got.metadata.as_str()), (42, "m"));
    let mut local = local;
    local.assign(&[TopicPartition::new(TOPIC, 0)]).unwrap();
    local
        .commit_offsets(&[(TopicPartition::new(TOPIC, 0), OffsetAndMetadata::new(17))])
        .unwrap();
    assert_eq!(fetch_offset(&mut c, "shared", 0), 17);
    // v1 (one group) shape, and -1 for a partition without a commit.
    let r: OffsetFetchResponse = c.call(
        ApiKey::OffsetFetch,
        1,
        &OffsetFetchRequest::default()
            .with_group_id(gid("nobody"))
            .with_topics(Some(vec![
                kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s(TOPIC)))
                    .with_partition_indexes(vec![0]),
            ])),
    );
    assert_eq!(r.topics[0].partitions[0].committed_offset, -1);
    // All topics (null) lists what the group has.
    let r: OffsetFetchResponse = c.call(
        ApiKey::OffsetFetch,
        7,
        &OffsetFetchRequest::default()
            .with_group_id(gid("shared"))
            .with_topics(None),
    );
    let mut parts: Vec<(i32, i64)> = r.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset))
        .collect();
    parts.sort();
    assert_eq!(parts, vec![(0, 17), (1, 42)]);
}

#[test]
fn list_describe_and_delete_groups() {
    let (_d, _store, server) = start(2);
    let mut c = WireClient::connect(server.local_addr());
    assert_eq!(commit(&mut c, "idle", -1, "", 0, 1), 0);
    let mut r = Remote::new(server.local_addr(), "busy", 10_000);
    r.join_and_sync();
    let l: ListGroupsResponse = c.call(ApiKey::ListGroups, 4, &ListGroupsRequest::default());
    let mut listed: Vec<(String, String)> = l
        .groups
        .iter()
        .map(|g| (g.group_id.to_string(), g.group_state.to_string()))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            ("busy".into(), "Stable".into()),
            ("idle".into(), "Empty".into())
        ]
    );
    let l: ListGroupsResponse = c.call(
        ApiKey::ListGroups,
        4,
        &ListGroupsRequest::default().with_states_filter(vec![s("stable")]),
    );
    assert_eq!(l.groups.len(), 1);
    let d: DescribeGroupsResponse = c.call(
        ApiKey::DescribeGroups,
        3,
        &DescribeGroupsRequest::default().with_groups(vec![gid("busy"), gid("idle"), gid("never")]),
    );
    let states: Vec<&str> = d.groups.iter().map(|g| g.group_state.as_str()).collect();
    assert_eq!(states, vec!["Stable", "Empty", "Dead"]);
    assert_eq!(d.groups[0].members[0].member_id.as_str(), r.member);
    assert_eq!(
        assignment(&d.groups[0].members[0].member_assignment),
        all(2)
    );
    // GroupMetadataManagerTest: deleting a non-empty classic group fails with NON_EMPTY_GROUP,
    // an unknown one with GROUP_ID_NOT_FOUND.
    let del: DeleteGroupsResponse = c.call(
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![
            gid("busy"),
            gid("idle"),
            gid("never"),
        ]),
    );
    let codes: Vec<i16> = del.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, vec![68, 0, 69]);
    assert_eq!(fetch_offset(&mut c, "idle", 0), -1);
    // Leaving by LeaveGroup v3 (a batch of members) empties the group; then it deletes.
    let lv: LeaveGroupResponse = c.call(
        ApiKey::LeaveGroup,
        3,
        &LeaveGroupRequest::default()
            .with_group_id(gid("busy"))
            .with_members(vec![
                MemberIdentity::default().with_member_id(s(&r.member)),
                MemberIdentity::default().with_member_id(s("ghost")),
            ]),
    );
    let codes: Vec<i16> = lv.members.iter().map(|m| m.error_code).collect();
    assert_eq!(codes, vec![0, 25]);
    assert_eq!(
        commit(&mut c, "busy", -1, "", 0, 1),
        0,
        "an empty group takes simple commits"
    );
    let del: DeleteGroupsResponse = c.call(
        ApiKey::DeleteGroups,
        0,
        &DeleteGroupsRequest::default().with_groups_names(vec![gid("busy")]),
    );
    assert_eq!(del.results[0].error_code, 0);
}

#[test]
fn find_coordinator_answers_this_node_for_groups_and_transactions_in_both_shapes() {
    let (_d, _store, server) = start(1);
    let addr = server.local_addr();
    let mut c = WireClient::connect(addr);
    for v in 0..=3 {
        let r: FindCoordinatorResponse = c.call(
            ApiKey::FindCoordinator,
            v,
            &FindCoordinatorRequest::default()
                .with_key(s("g"))
                .with_key_type(if v >= 1 { 1 } else { 0 }),
        );
        assert_eq!(r.error_code, 0);
        assert_eq!((r.node_id.0, r.port), (0, i32::from(addr.port())));
        assert_eq!(r.host.as_str(), addr.ip().to_string());
    }
    let r: FindCoordinatorResponse = c.call(
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![s("a"), s("b")]),
    );
    let keys: Vec<(&str, i16, i32)> = r
        .coordinators
        .iter()
        .map(|k| (k.key.as_str(), k.error_code, k.port))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("a", 0, i32::from(addr.port())),
            ("b", 0, i32::from(addr.port()))
        ]
    );
    let r: FindCoordinatorResponse = c.call(
        ApiKey::FindCoordinator,
        6,
        &FindCoordinatorRequest::default()
            .with_key_type(7)
            .with_coordinator_keys(vec![s("a")]),
    );
    assert_eq!(r.coordinators[0].error_code, 42);
}

#[test]
fn a_group_offering_only_cooperative_protocols_is_refused() {
    let (_d, _store, server) = start(1);
    let mut c = WireClient::connect(server.local_addr());
    let r: JoinGroupResponse = c.call(
        ApiKey::JoinGroup,
        3,
        &join_request("g", "", &["cooperative-sticky"], 10_000),
    );
    assert_eq!(r.error_code, 23);
    // kafkajs's name for round robin is understood.
    let r: JoinGroupResponse = c.call(
        ApiKey::JoinGroup,
        3,
        &join_request("g", "", &["RoundRobinAssigner"], 10_000),
    );
    assert_eq!(r.error_code, 0);
    assert_eq!(r.protocol_name.unwrap().as_str(), "RoundRobinAssigner");
    // A session timeout outside the accepted range.
    let r: JoinGroupResponse = c.call(ApiKey::JoinGroup, 3, &join_request("h", "", &["range"], 10));
    assert_eq!(r.error_code, 26);
}

#[test]
fn require_stable_offset_fetch_sees_a_transactions_pending_offsets_as_unstable() {
    // KIP-447: OffsetFetch v7+ with require_stable answers UNSTABLE_OFFSET_COMMIT (88) for a
    // partition whose offset an open transaction has pending; without it, the last committed
    // offset. (Kafka: OffsetMetadataManagerTest.testFetchOffsetsWithPendingTransactionalOffsets.)
    let (_d, store, server) = start(2);
    let mut c = WireClient::connect(server.local_addr());
    let p = store.transactional_producer("tx").unwrap();
    p.begin().unwrap();
    p.send_offsets(
        &riverbed::ConsumerGroupMetadata::new("g"),
        &[(TopicPartition::new(TOPIC, 1), OffsetAndMetadata::new(5))],
    )
    .unwrap();
    let fetch = |c: &mut WireClient, stable: bool| -> (i64, i16) {
        let r: OffsetFetchResponse = c.call(
            ApiKey::OffsetFetch,
            7,
            &OffsetFetchRequest::default()
                .with_group_id(gid("g"))
                .with_require_stable(stable)
                .with_topics(Some(vec![
                    kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(TopicName(s(TOPIC)))
                        .with_partition_indexes(vec![1]),
                ])),
        );
        let p = &r.topics[0].partitions[0];
        (p.committed_offset, p.error_code)
    };
    assert_eq!(fetch(&mut c, true), (-1, 88));
    assert_eq!(fetch(&mut c, false), (-1, 0));
    p.commit().unwrap();
    assert_eq!(fetch(&mut c, true), (5, 0));
}

#[test]
fn a_join_blocked_on_a_rebalance_ends_when_the_server_shuts_down() {
    let (_d, store, server) = start(2);
    let addr = server.local_addr();
    // An in-process member that never polls again holds the rebalance open.
    let mut local = store
        .consumer(
            ConsumerConfig::new("g")
                .enable_auto_commit(false)
                .max_poll_interval(Duration::from_secs(60)),
        )
        .unwrap();
    local.subscribe(&[TOPIC]).unwrap();
    local.poll(Duration::from_millis(10)).unwrap();
    let joiner = std::thread::spawn(move || {
        let mut c = WireClient::connect(addr);
        let started = Instant::now();
        let r: Option<JoinGroupResponse> = c.try_call(
            ApiKey::JoinGroup,
            3,
            &join_request("g", "", &["range"], 10_000).with_rebalance_timeout_ms(60_000),
        );
        (r.map(|r| r.error_code), started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    server.shutdown().unwrap();
    let (code, waited) = joiner.join().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "shutdown waited {:?}",
        t.elapsed()
    );
    assert!(waited < Duration::from_secs(5));
    // COORDINATOR_NOT_AVAILABLE: the client looks for the coordinator again.
    assert_eq!(code, Some(15));
    drop(local);
}

#[test]
fn every_advertised_version_of_every_group_api_is_answered() {
    // Each version encodes its own field set (flexible versions from JoinGroup v6, SyncGroup
    // v4, OffsetCommit v8, OffsetFetch v6, ...): a field set where a version has none would
    // make the response fail to encode and close the connection.
    let (_d, _store, server) = start(2);
    let mut c = WireClient::connect(server.local_addr());
    assert_eq!(commit(&mut c, "g", -1, "", 0, 3), 0);
    for v in 0..=6 {
        let r: Option<FindCoordinatorResponse> = c.try_call(
            ApiKey::FindCoordinator,
            v,
            &FindCoordinatorRequest::default()
                .with_key(if v < 4 { s("g") } else { s("") })
                .with_coordinator_keys(if v >= 4 { vec![s("g")] } else { vec![] }),
        );
        assert!(r.is_some(), "FindCoordinator v{v}");
    }
    for v in 0..=7 {
        let mut req = join_request("v", "", &["range"], 10_000);
        if v == 0 {
            req.rebalance_timeout_ms = -1;
        }
        let r: JoinGroupResponse = c.call(ApiKey::JoinGroup, v, &req);
        let (member, generation) = if r.error_code == 79 {
            let r: JoinGroupResponse = c.call(
                ApiKey::JoinGroup,
                v,
                &join_request("v", r.member_id.as_str(), &["range"], 10_000)
                    .with_rebalance_timeout_ms(if v == 0 { -1 } else { 10_000 }),
            );
            (r.member_id.to_string(), r.generation_id)
        } else {
            assert_eq!(r.error_code, 0, "JoinGroup v{v}");
            (r.member_id.to_string(), r.generation_id)
        };
        let sv = v.min(5);
        let mut sync = SyncGroupRequest::default()
            .with_group_id(gid("v"))
            .with_generation_id(generation)
            .with_member_id(s(&member));
        if sv >= 5 {
            sync = sync
                .with_protocol_type(Some(s("consumer")))
                .with_protocol_name(Some(s("range")));
        }
        let r: SyncGroupResponse = c.call(ApiKey::SyncGroup, sv, &sync);
        assert_eq!(r.error_code, 0, "SyncGroup v{sv}");
        assert_eq!(assignment(&r.assignment), all(2));
        let hv = v.min(4);
        let r: HeartbeatResponse = c.call(
            ApiKey::Heartbeat,
            hv,
            &HeartbeatRequest::default()
                .with_group_id(gid("v"))
                .with_generation_id(generation)
                .with_member_id(s(&member)),
        );
        assert_eq!(r.error_code, 0, "Heartbeat v{hv}");
        let lv = v.min(5);
        let leave = if lv >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(gid("v"))
                .with_members(vec![MemberIdentity::default().with_member_id(s(&member))])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(gid("v"))
                .with_member_id(s(&member))
        };
        let r: LeaveGroupResponse = c.call(ApiKey::LeaveGroup, lv, &leave);
        assert_eq!(r.error_code, 0, "LeaveGroup v{lv}");
    }
    for v in 2..=8 {
        let r: OffsetCommitResponse = c.call(
            ApiKey::OffsetCommit,
            v,
            &OffsetCommitRequest::default()
                .with_group_id(gid("g"))
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(TOPIC)))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(1)
                        .with_committed_offset(i64::from(v))])]),
        );
        assert_eq!(r.topics[0].partitions[0].error_code, 0, "OffsetCommit v{v}");
    }
    for v in 1..=8 {
        let req = if v >= 8 {
            OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default()
                    .with_group_id(gid("g"))
                    .with_topics(None), // null: every partition with an offset
            ])
        } else {
            OffsetFetchRequest::default()
                .with_group_id(gid("g"))
                .with_topics(Some(vec![
                kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s(TOPIC)))
                    .with_partition_indexes(vec![0, 1]),
            ]))
        };
        let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, v, &req);
        let got: Vec<i64> = if v >= 8 {
            r.groups[0].topics[0]
                .partitions
                .iter()
                .map(|p| p.committed_offset)
                .collect()
        } else {
            r.topics[0]
                .partitions
                .iter()
                .map(|p| p.committed_offset)
                .collect()
        };
        assert_eq!(got, vec![3, 8], "OffsetFetch v{v}");
    }
    for v in 0..=4 {
        let r: ListGroupsResponse = c.call(ApiKey::ListGroups, v, &ListGroupsRequest::default());
        assert!(
            r.groups.iter().any(|g| g.group_id.as_str() == "g"),
            "ListGroups v{v}"
        );
    }
    for v in 0..=5 {
        let r: DescribeGroupsResponse = c.call(
            ApiKey::DescribeGroups,
            v,
            &DescribeGroupsRequest::default().with_groups(vec![gid("g")]),
        );
        assert_eq!(
            r.groups[0].group_state.as_str(),
            "Empty",
            "DescribeGroups v{v}"
        );
    }
    for v in 0..=2 {
        let r: DeleteGroupsResponse = c.call(
            ApiKey::DeleteGroups,
            v,
            &DeleteGroupsRequest::default().with_groups_names(vec![gid("g")]),
        );
        assert_eq!(
            r.results[0].error_code,
            if v == 0 { 0 } else { 69 },
            "DeleteGroups v{v}"
        );
    }
}
