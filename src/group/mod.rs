//! Consumer groups: membership, generations and the rebalance protocol, in memory.
//!
//! Members are consumers of this process and, through the wire front (`server`), Kafka
//! clients elsewhere: one coordinator serves both, so a group may span the owning process and
//! remote clients. A rebalance is Kafka's eager protocol with a barrier: when membership or
//! subscribed partition counts change, the group enters *preparing* and every member gives up
//! its partitions — an in-process member at its next poll (its rebalance listener runs, and it
//! may commit first), a remote member by sending JoinGroup again (it learns of the rebalance
//! from Heartbeat's REBALANCE_IN_PROGRESS; eager Kafka clients revoke before they rejoin). Once
//! all members have rejoined — or been removed: an in-process member for not polling within
//! `max_poll_interval`, a remote one for no request within its session timeout or no JoinGroup
//! within its rebalance timeout, as Kafka removes them — the assignor runs, the generation goes
//! up, and members pick up their new partitions (in-process at their next poll, remote ones in
//! the JoinGroup answer and SyncGroup). Because partitions are handed out only after every
//! previous owner has let go, a partition never has two owners in a group.
//!
//! Assignment is always computed here, also for remote members: the coordinator answers
//! JoinGroup with a leader id that is no member's ([`COORDINATOR_LEADER`]), so every client acts
//! as a follower and SyncGroup hands it the coordinator's assignment. The protocol (assignor)
//! is one every member offers among those the coordinator runs ([`assignor_named`]).
//!
//! Commits are fenced: an in-process member may commit only partitions it owns in the current
//! generation; a remote member is checked as Kafka's classic coordinator checks it
//! ([`Group::check_remote_commit`]).

pub mod assignor;
pub(crate) mod protocol;
pub(crate) mod published;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{ErrorKind, Result};
use crate::topic::TopicPartition;
use assignor::{Assignor, MemberSpec};

/// The leader id JoinGroup answers carry: no member has it, so no client runs an assignor and
/// every one takes its assignment from SyncGroup.
pub(crate) const COORDINATOR_LEADER: &str = "riverbed-coordinator";

/// The assignor a Kafka protocol name stands for, if the coordinator runs it. Only eager
/// protocols: `cooperative-sticky` (KIP-429) is not built, so a group whose members offer only
/// cooperative protocols is refused with INCONSISTENT_GROUP_PROTOCOL (a documented v1 limit).
/// `RoundRobinAssigner` is kafkajs's name for round robin (its
/// `src/consumer/assigners/roundRobinAssigner`).
pub(crate) fn assignor_named(name: &str) -> Option<Assignor> {
    match name {
        "range" => Some(Assignor::Range),
        "roundrobin" | "RoundRobinAssigner" => Some(Assignor::RoundRobin),
        "sticky" => Some(Assignor::Sticky),
        _ => None,
    }
}

/// What a member learns when it checks in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Checkin {
    /// The member is not in the group (never joined, left, or was removed): rejoin.
    NotMember,
    /// A rebalance is under way and the member still holds partitions: revoke them, then call
    /// [`Group::rejoin`].
    Revoke,
    /// A rebalance is under way and the member has rejoined: wait.
    Waiting,
    /// The group is stable; this is the member's generation and assignment.
    Stable {
        generation: u32,
        assignment: Vec<TopicPartition>,
    },
}

/// Why the coordinator refuses a remote member's request: each is one Kafka error code
/// (`server::groups` maps them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// UNKNOWN_MEMBER_ID (25): not a member (never joined, left, or removed).
    UnknownMember,
    /// ILLEGAL_GENERATION (22): the member's generation is not the group's.
    IllegalGeneration,
    /// REBALANCE_IN_PROGRESS (27): rejoin with JoinGroup.
    RebalanceInProgress,
    /// INCONSISTENT_GROUP_PROTOCOL (23): no protocol the member offers is one the group runs.
    InconsistentProtocol,
    /// MEMBER_ID_REQUIRED (79, KIP-394): rejoin with this member id.
    MemberIdRequired(String),
}

/// A remote member's JoinGroup, as the coordinator needs it.
#[derive(Clone, Debug)]
pub(crate) struct RemoteJoin {
    /// The member id sent ("" for a new member).
    pub member_id: String,
    /// `group.instance.id` (KIP-345). Static membership is treated as dynamic: the id is kept
    /// for DescribeGroups and LeaveGroup by instance id, nothing more.
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    /// The protocols offered (name, metadata), in the client's order of preference.
    pub protocols: Vec<(String, Vec<u8>)>,
    /// JoinGroup v4+: a new member must first be given an id (MEMBER_ID_REQUIRED).
    pub require_known_member_id: bool,
}

/// A JoinGroup taken in: wait with [`Group::poll_join`] until it completes.
#[derive(Clone, Debug)]
pub(crate) struct JoinTicket {
    pub member_id: String,
    /// The generation when the member joined: the join completes at a later one, or at once
    /// when `immediate`.
    generation: u32,
    immediate: bool,
}

/// A completed JoinGroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Joined {
    pub member_id: String,
    pub generation: u32,
    /// The protocol name chosen for this member (one it offered).
    pub protocol: String,
}

/// What a remote member brings besides what every member has.
#[derive(Clone, Debug)]
struct Remote {
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Vec<u8>)>,
    /// The name of the protocol chosen for this member: one of `protocols`.
    protocol: String,
}

#[derive(Debug)]
struct Member {
    subscription: BTreeSet<String>,
    assignment: Vec<TopicPartition>,
    /// What the member gave up in the current rebalance: the sticky assignor's history.
    previous: Vec<TopicPartition>,
    /// Whether the member has given up its partitions in the current rebalance.
    rejoined: bool,
    /// The member's last sign of life: a poll (in-process), any group request (remote).
    last_seen: Instant,
    /// How long the member may stay silent: `max_poll_interval` (in-process), the session
    /// timeout (remote).
    liveness: Duration,
    /// `None` for a consumer of this process.
    remote: Option<Remote>,
}

#[derive(Debug, Default)]
struct State {
    generation: u32,
    preparing: bool,
    /// When the current rebalance started: remote members that have not rejoined within their
    /// rebalance timeout of it are removed.
    preparing_since: Option<Instant>,
    members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED and not used yet, with their expiry.
    pending: BTreeMap<String, Instant>,
    /// Partition counts the current assignment was computed from.
    partitions: BTreeMap<String, u32>,
    assignor: Assignor,
    next_member: u64,
    /// The store metadata version the partition counts were last compared at.
    metadata_version: u64,
    /// Bumped on every change of this group (what [`Group::wait_change`] waits for).
    epoch: u64,
    /// Bumped on every change of membership or assignment (shared by the store's groups, so
    /// the store knows when to publish them).
    changes: Arc<AtomicU64>,
}

/// One consumer group.
#[derive(Debug)]
pub(crate) struct Group {
    pub name: String,
    state: Mutex<State>,
    /// Signalled on every change, for remote JoinGroups waiting for their rebalance.
    changed: Condvar,
}

/// A snapshot of a group for inspection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupDescription {
    /// Group id.
    pub group: String,
    /// Current generation (increments with every completed rebalance).
    pub generation: u32,
    /// Whether a rebalance is under way.
    pub rebalancing: bool,
    /// Members and the partitions each owns.
    pub members: Vec<(String, Vec<TopicPartition>)>,
}

/// One member as DescribeGroups shows it.
#[derive(Clone, Debug)]
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) struct MemberView {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// The metadata of the member's chosen protocol (for an in-process member, a
    /// `ConsumerProtocolSubscription` of its topics).
    pub metadata: Vec<u8>,
    /// Its assignment as a `ConsumerProtocolAssignment`.
    pub assignment: Vec<u8>,
}

/// A group as DescribeGroups and ListGroups show it.
#[derive(Clone, Debug)]
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) struct GroupView {
    /// Kafka's state name: `Empty`, `PreparingRebalance` or `Stable` (the coordinator assigns
    /// as it completes a rebalance, so it is never in `CompletingRebalance`).
    pub state: &'static str,
    /// The protocol name in use ("" for an empty group).
    pub protocol: String,
    pub members: Vec<MemberView>,
}

impl Group {
    #[cfg(test)]
    pub fn new(name: &str) -> Group {
        Group::with_counter(name, Arc::default())
    }

    /// A group whose changes bump `changes`.
    pub fn with_counter(name: &str, changes: Arc<AtomicU64>) -> Group {
        Group {
            name: name.to_string(),
            state: Mutex::new(State {
                changes,
                ..State::default()
            }),
            changed: Condvar::new(),
        }
    }

    fn changed(&self, s: &mut State) {
        s.epoch += 1;
        self.changed.notify_all();
    }

    /// Adds a member and starts a rebalance. Returns its id.
    pub fn join(
        &self,
        subscription: BTreeSet<String>,
        assignor: Assignor,
        max_poll_interval: Duration,
        now: Instant,
    ) -> String {
        let mut s = self.state.lock();
        let id = format!("{}-member-{}", self.name, s.next_member);
        s.next_member += 1;
        if s.members.is_empty() {
            s.assignor = assignor;
        }
        s.members.insert(
            id.clone(),
            Member {
                subscription,
                assignment: Vec::new(),
                previous: Vec::new(),
                rejoined: true,
                last_seen: now,
                liveness: max_poll_interval,
                remote: None,
            },
        );
        start_rebalance(&mut s, now);
        self.changed(&mut s);
        id
    }

    /// Removes a member (its consumer closed or unsubscribed) and rebalances the rest.
    pub fn leave(&self, member: &str) {
        self.leave_at(member, Instant::now());
    }

    /// [`leave`](Self::leave) at `now`.
    pub fn leave_at(&self, member: &str, now: Instant) {
        let mut s = self.state.lock();
        if s.members.remove(member).is_some() {
            start_rebalance(&mut s, now);
            self.changed(&mut s);
        }
    }

    /// Changes a member's subscription and rebalances.
    pub fn resubscribe(&self, member: &str, subscription: BTreeSet<String>) {
        let mut s = self.state.lock();
        if let Some(m) = s.members.get_mut(member) {
            m.subscription = subscription;
            start_rebalance(&mut s, Instant::now());
            self.changed(&mut s);
        }
    }

    /// A member checks in from `poll`: records its liveness, removes members that stopped
    /// polling, notices changed partition counts, and completes a rebalance once everyone has
    /// rejoined. `partitions` gives the current partition count of every topic.
    pub fn checkin(
        &self,
        member: &str,
        now: Instant,
        metadata_version: u64,
        partitions: &dyn Fn(&str) -> Option<u32>,
    ) -> Checkin {
        let mut s = self.state.lock();
        self.maintain(&mut s, now, metadata_version, partitions);
        let Some(m) = s.members.get_mut(member) else {
            return Checkin::NotMember;
        };
        m.last_seen = now;
        let m = &s.members[member];
        if s.preparing {
            return if m.rejoined {
                Checkin::Waiting
            } else {
                Checkin::Revoke
            };
        }
        Checkin::Stable {
            generation: s.generation,
            assignment: m.assignment.clone(),
        }
    }

    /// The group's housekeeping, run by every member's check-in (poll, Heartbeat, JoinGroup):
    /// removes silent members, notices changed partition counts, and completes a rebalance
    /// once every member has rejoined.
    fn maintain(
        &self,
        s: &mut State,
        now: Instant,
        metadata_version: u64,
        partitions: &dyn Fn(&str) -> Option<u32>,
    ) {
        let before = s.epoch;
        self.expire(s, now);
        // Partition counts only change with the store's metadata version.
        if !s.preparing && s.metadata_version != metadata_version {
            s.metadata_version = metadata_version;
            if subscribed_counts(s, partitions) != s.partitions {
                start_rebalance(s, now);
            }
        }
        if s.preparing && s.members.values().all(|m| m.rejoined) {
            complete_rebalance(s, now, partitions);
        }
        if s.epoch != before {
            self.changed.notify_all();
        }
    }

    /// Removes the members whose time is up, before anything a request does counts as their
    /// sign of life (a late request finds its member gone, as with Kafka's expiry timers).
    /// An in-process member is silent past `max_poll_interval`; a remote one past its session
    /// timeout — except while it awaits the end of a rebalance it has rejoined (Kafka keeps
    /// such a member alive) — or, when it has not rejoined, past its rebalance timeout from the
    /// rebalance's start (Kafka ends the join phase then and drops who did not rejoin).
    fn expire(&self, s: &mut State, now: Instant) {
        let before = s.epoch;
        s.pending.retain(|_, expiry| *expiry >= now);
        let since = s.preparing_since;
        let preparing = s.preparing;
        let expired: Vec<String> = s
            .members
            .iter()
            .filter(|(_, m)| {
                let awaiting = preparing && m.rejoined && m.remote.is_some();
                let silent = !awaiting && now.saturating_duration_since(m.last_seen) > m.liveness;
                let late = match (&m.remote, since) {
                    (Some(r), Some(since)) if preparing && !m.rejoined => {
                        now.saturating_duration_since(since) > r.rebalance_timeout
                    }
                    _ => false,
                };
                silent || late
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            tracing::info!(target: "riverbed::group", group = %self.name, member = %id, "member removed: silent past its timeout");
            s.members.remove(&id);
            start_rebalance(s, now);
        }
        if s.epoch != before {
            self.changed.notify_all();
        }
    }

    /// The member has revoked its partitions in the current rebalance.
    pub fn rejoin(&self, member: &str) {
        let mut s = self.state.lock();
        if let Some(m) = s.members.get_mut(member) {
            m.rejoined = true;
            m.previous = std::mem::take(&mut m.assignment);
            self.changed(&mut s);
        }
    }

    /// Checks that `member` (or, for `None`, a consumer outside group management) may commit
    /// offsets of `partitions` at `generation`.
    pub fn check_commit(
        &self,
        member: Option<&str>,
        generation: u32,
        partitions: &[&TopicPartition],
    ) -> Result<()> {
        let s = self.state.lock();
        let fail =
            |reason: String| -> Result<()> { Err(ErrorKind::CommitFailed { reason }.into()) };
        let Some(member) = member else {
            if s.members.is_empty() {
                return Ok(());
            }
            return fail(format!(
                "group {:?} has active members; a consumer with manually assigned partitions may commit only to a group without members",
                self.name
            ));
        };
        let Some(m) = s.members.get(member) else {
            return fail(format!(
                "member {member} is no longer in group {:?} (it closed, or did not poll within max_poll_interval)",
                self.name
            ));
        };
        if generation != s.generation {
            return fail(format!(
                "group {:?} has rebalanced since this member's assignment (generation {} now, the member had {generation}); poll to rejoin",
                self.name, s.generation
            ));
        }
        if m.rejoined && s.preparing {
            return fail(format!(
                "member {member} has already given up its partitions in the rebalance of group {:?} under way",
                self.name
            ));
        }
        if let Some(tp) = partitions.iter().find(|tp| !m.assignment.contains(tp)) {
            return fail(format!("partition {tp} is not assigned to member {member}"));
        }
        Ok(())
    }

    /// Whether the group has no members.
    pub fn is_empty(&self) -> bool {
        self.state.lock().members.is_empty()
    }

    pub fn describe(&self) -> GroupDescription {
        let s = self.state.lock();
        GroupDescription {
            group: self.name.clone(),
            generation: s.generation,
            rebalancing: s.preparing,
            members: s
                .members
                .iter()
                .map(|(id, m)| (id.clone(), m.assignment.clone()))
                .collect(),
        }
    }
}

/// The remote side: what the wire front's group handlers call. Each call counts as a sign of
/// life of the member that makes it (Kafka: JoinGroup, SyncGroup, Heartbeat and OffsetCommit
/// all reset the session timer).
#[cfg_attr(not(feature = "server"), allow(dead_code))]
impl Group {
    /// Takes in a JoinGroup (Kafka's classic `JoinGroup` handling, without the client-side
    /// leader): a new member is added (after the MEMBER_ID_REQUIRED round trip on v4+), a known
    /// one has given up its partitions (eager clients revoke before they rejoin). A known member
    /// of a stable group whose protocols did not change gets its current generation at once;
    /// otherwise a rebalance starts (or goes on) and the join completes with it — wait with
    /// [`poll_join`](Self::poll_join).
    pub fn remote_join(
        &self,
        join: RemoteJoin,
        now: Instant,
        metadata_version: u64,
        partitions: &dyn Fn(&str) -> Option<u32>,
    ) -> std::result::Result<JoinTicket, Refusal> {
        let mut s = self.state.lock();
        self.maintain(&mut s, now, metadata_version, partitions);
        let known = s.members.get(&join.member_id);
        if !join.member_id.is_empty() && known.is_some_and(|m| m.remote.is_none()) {
            // An in-process member's id: not a client's to use.
            return Err(Refusal::UnknownMember);
        }
        if !join.member_id.is_empty() && known.is_none() && !s.pending.contains_key(&join.member_id)
        {
            return Err(Refusal::UnknownMember);
        }
        // The protocol: while the group has other members, one that names the group's
        // assignor; for the first member, the first it offers that the coordinator runs.
        let others = s.members.keys().any(|id| *id != join.member_id);
        let chosen = join
            .protocols
            .iter()
            .find(|(name, _)| match assignor_named(name) {
                Some(a) => !others || a == s.assignor,
                None => false,
            });
        let Some((protocol, metadata)) = chosen.cloned() else {
            return Err(Refusal::InconsistentProtocol);
        };
        let Ok(subscription) = protocol::decode_subscription(&metadata) else {
            return Err(Refusal::InconsistentProtocol);
        };
        let remote = Remote {
            instance_id: join.instance_id.clone(),
            client_id: join.client_id.clone(),
            client_host: join.client_host.clone(),
            rebalance_timeout: join.rebalance_timeout,
            protocols: join.protocols.clone(),
            protocol: protocol.clone(),
        };
        if join.member_id.is_empty() {
            let id = self.new_member_id(&mut s, &join.client_id);
            if join.require_known_member_id {
                // KIP-394: remember the id for a session timeout; the member rejoins with it.
                s.pending.insert(id.clone(), now + join.session_timeout);
                return Err(Refusal::MemberIdRequired(id));
            }
            return Ok(self.add_remote(&mut s, id, subscription, remote, &join, now));
        }
        if s.pending.remove(&join.member_id).is_some() {
            let id = join.member_id.clone();
            return Ok(self.add_remote(&mut s, id, subscription, remote, &join, now));
        }
        // A known remote member.
        let generation = s.generation;
        let preparing = s.preparing;
        let m = s
            .members
            .get_mut(&join.member_id)
            .ok_or(Refusal::UnknownMember)?;
        let same = m
            .remote
            .as_ref()
            .is_some_and(|r| r.protocols == join.protocols);
        m.last_seen = now;
        m.liveness = join.session_timeout;
        m.remote = Some(remote);
        if !preparing && same {
            return Ok(JoinTicket {
                member_id: join.member_id,
                generation,
                immediate: true,
            });
        }
        m.subscription = subscription;
        if !m.assignment.is_empty() {
            m.previous = std::mem::take(&mut m.assignment);
        }
        m.rejoined = true;
        if !preparing {
            start_rebalance(&mut s, now);
        }
        self.maintain(&mut s, now, metadata_version, partitions);
        self.changed(&mut s);
        Ok(JoinTicket {
            member_id: join.member_id,
            generation,
            immediate: false,
        })
    }

    fn new_member_id(&self, s: &mut State, client_id: &str) -> String {
        use std::hash::{BuildHasher, Hasher};
        // Kafka's ids are client id + a UUID: unique across coordinator restarts, so a client
        // that outlived one cannot pass for a member of the next. A per-process random hasher
        // seeded from the OS gives the unguessable part without a dependency.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(s.next_member);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        let id = format!("{client_id}-{}-{:016x}", s.next_member, h.finish());
        s.next_member += 1;
        id
    }

    fn add_remote(
        &self,
        s: &mut State,
        id: String,
        subscription: BTreeSet<String>,
        remote: Remote,
        join: &RemoteJoin,
        now: Instant,
    ) -> JoinTicket {
        if s.members.is_empty() {
            if let Some(a) = assignor_named(&remote.protocol) {
                s.assignor = a;
            }
        }
        let generation = s.generation;
        s.members.insert(
            id.clone(),
            Member {
                subscription,
                assignment: Vec::new(),
                previous: Vec::new(),
                rejoined: true,
                last_seen: now,
                liveness: join.session_timeout,
                remote: Some(remote),
            },
        );
        start_rebalance(s, now);
        self.changed(s);
        JoinTicket {
            member_id: id,
            generation,
            immediate: false,
        }
    }

    /// Whether `ticket`'s join has completed: `None` while its rebalance is under way (the
    /// member is kept alive meanwhile, as Kafka does not expire a member awaiting its join), the
    /// join's answer once the group has a newer generation, or UNKNOWN_MEMBER_ID if the member
    /// was removed meanwhile.
    pub fn poll_join(
        &self,
        ticket: &JoinTicket,
        now: Instant,
        metadata_version: u64,
        partitions: &dyn Fn(&str) -> Option<u32>,
    ) -> Option<std::result::Result<Joined, Refusal>> {
        let mut s = self.state.lock();
        self.maintain(&mut s, now, metadata_version, partitions);
        let generation = s.generation;
        let Some(m) = s.members.get_mut(&ticket.member_id) else {
            return Some(Err(Refusal::UnknownMember));
        };
        m.last_seen = now;
        if ticket.immediate || generation > ticket.generation {
            let protocol = m
                .remote
                .as_ref()
                .map(|r| r.protocol.clone())
                .unwrap_or_default();
            return Some(Ok(Joined {
                member_id: ticket.member_id.clone(),
                generation,
                protocol,
            }));
        }
        None
    }

    /// Blocks until the group changes after `seen` (see [`epoch`](Self::epoch)) or `timeout`
    /// passes. Holds no lock while it waits.
    pub fn wait_change(&self, seen: u64, timeout: Duration) {
        let mut s = self.state.lock();
        if s.epoch == seen {
            let _ = self.changed.wait_for(&mut s, timeout);
        }
    }

    /// The group's change counter, for [`wait_change`](Self::wait_change).
    pub fn epoch(&self) -> u64 {
        self.state.lock().epoch
    }

    /// SyncGroup: the member's assignment in `generation` and its protocol name.
    pub fn sync(
        &self,
        member: &str,
        generation: i32,
        now: Instant,
    ) -> std::result::Result<(String, Vec<TopicPartition>), Refusal> {
        let mut s = self.state.lock();
        self.expire(&mut s, now);
        let group_generation = s.generation;
        let preparing = s.preparing;
        let m = remote_member(&mut s, member)?;
        m.last_seen = now;
        if i64::from(generation) != i64::from(group_generation) {
            return Err(Refusal::IllegalGeneration);
        }
        if preparing {
            return Err(Refusal::RebalanceInProgress);
        }
        let protocol = m
            .remote
            .as_ref()
            .map(|r| r.protocol.clone())
            .unwrap_or_default();
        Ok((protocol, m.assignment.clone()))
    }

    /// Heartbeat (Kafka's classic rules, GroupMetadataManager.classicGroupHeartbeat): unknown
    /// member, then generation, then REBALANCE_IN_PROGRESS while the group prepares. Also runs
    /// the group's housekeeping, so a group of remote members only notices changed partition
    /// counts and silent members.
    pub fn heartbeat(
        &self,
        member: &str,
        generation: i32,
        now: Instant,
        metadata_version: u64,
        partitions: &dyn Fn(&str) -> Option<u32>,
    ) -> std::result::Result<(), Refusal> {
        let mut s = self.state.lock();
        self.maintain(&mut s, now, metadata_version, partitions);
        let group_generation = s.generation;
        let preparing = s.preparing;
        remote_member(&mut s, member)?.last_seen = now;
        if i64::from(generation) != i64::from(group_generation) {
            return Err(Refusal::IllegalGeneration);
        }
        if preparing {
            return Err(Refusal::RebalanceInProgress);
        }
        Ok(())
    }

    /// LeaveGroup of the member with id `member`, or (if `member` is empty) of the member with
    /// `instance_id`; the rest rebalance.
    pub fn remote_leave(
        &self,
        member: &str,
        instance_id: Option<&str>,
        now: Instant,
    ) -> std::result::Result<String, Refusal> {
        let mut s = self.state.lock();
        self.expire(&mut s, now);
        let id = if member.is_empty() {
            let Some(instance) = instance_id else {
                return Err(Refusal::UnknownMember);
            };
            s.members
                .iter()
                .find(|(_, m)| {
                    m.remote
                        .as_ref()
                        .is_some_and(|r| r.instance_id.as_deref() == Some(instance))
                })
                .map(|(id, _)| id.clone())
                .ok_or(Refusal::UnknownMember)?
        } else {
            remote_member(&mut s, member)?;
            member.to_string()
        };
        s.members.remove(&id);
        start_rebalance(&mut s, now);
        self.changed(&mut s);
        Ok(id)
    }

    /// Whether a remote OffsetCommit may go ahead, by the rules of Kafka's classic coordinator
    /// (ClassicGroup.validateOffsetCommit): generation -1 with no member id is a "simple"
    /// commit (assign()-style consumers, admin tools), allowed only while the group has no
    /// members (UNKNOWN_MEMBER_ID otherwise); anything else must name a member
    /// (UNKNOWN_MEMBER_ID) of the current generation (ILLEGAL_GENERATION), and a member that
    /// has already rejoined a rebalance under way gets REBALANCE_IN_PROGRESS. Like Kafka, the
    /// partitions are not checked against the member's assignment. A member's commit counts as
    /// its heartbeat.
    pub fn check_remote_commit(
        &self,
        member: &str,
        generation: i32,
        now: Instant,
    ) -> std::result::Result<(), Refusal> {
        let mut s = self.state.lock();
        self.expire(&mut s, now);
        if generation < 0 && member.is_empty() {
            return if s.members.is_empty() {
                Ok(())
            } else {
                Err(Refusal::UnknownMember)
            };
        }
        let group_generation = s.generation;
        let preparing = s.preparing;
        let m = remote_member(&mut s, member)?;
        m.last_seen = now;
        if i64::from(generation) != i64::from(group_generation) {
            return Err(Refusal::IllegalGeneration);
        }
        if preparing && m.rejoined {
            return Err(Refusal::RebalanceInProgress);
        }
        Ok(())
    }

    /// The group as DescribeGroups shows it.
    pub fn view(&self) -> GroupView {
        let s = self.state.lock();
        let state = if s.members.is_empty() {
            "Empty"
        } else if s.preparing {
            "PreparingRebalance"
        } else {
            "Stable"
        };
        let members: Vec<MemberView> = s
            .members
            .iter()
            .map(|(id, m)| {
                let assignment = protocol::encode_assignment(&m.assignment);
                match &m.remote {
                    Some(r) => MemberView {
                        member_id: id.clone(),
                        instance_id: r.instance_id.clone(),
                        client_id: r.client_id.clone(),
                        client_host: r.client_host.clone(),
                        metadata: r
                            .protocols
                            .iter()
                            .find(|(n, _)| *n == r.protocol)
                            .map(|(_, md)| md.clone())
                            .unwrap_or_default(),
                        assignment,
                    },
                    None => MemberView {
                        member_id: id.clone(),
                        instance_id: None,
                        client_id: "riverbed-in-process".into(),
                        client_host: "in-process".into(),
                        metadata: protocol::encode_subscription(&m.subscription),
                        assignment,
                    },
                }
            })
            .collect();
        let protocol = if s.members.is_empty() {
            String::new()
        } else {
            // The name remote members chose, else the in-process assignor's Kafka name.
            s.members
                .values()
                .find_map(|m| m.remote.as_ref().map(|r| r.protocol.clone()))
                .unwrap_or_else(|| {
                    match s.assignor {
                        Assignor::Range => "range",
                        Assignor::RoundRobin => "roundrobin",
                        Assignor::Sticky => "sticky",
                    }
                    .to_string()
                })
        };
        GroupView {
            state,
            protocol,
            members,
        }
    }
}

/// The remote member `id`: UNKNOWN_MEMBER_ID for an in-process member's id too.
fn remote_member<'a>(s: &'a mut State, id: &str) -> std::result::Result<&'a mut Member, Refusal> {
    match s.members.get_mut(id) {
        Some(m) if m.remote.is_some() => Ok(m),
        _ => Err(Refusal::UnknownMember),
    }
}

fn subscribed_counts(s: &State, partitions: &dyn Fn(&str) -> Option<u32>) -> BTreeMap<String, u32> {
    let subscribed: BTreeSet<&String> = s
        .members
        .values()
        .flat_map(|m| m.subscription.iter())
        .collect();
    subscribed
        .into_iter()
        .filter_map(|t| partitions(t).map(|n| (t.clone(), n)))
        .collect()
}

fn start_rebalance(s: &mut State, now: Instant) {
    if s.members.is_empty() {
        // The last member has gone: the group is Empty at once, in a new generation (Kafka
        // completes the join phase of a group without members the same way), so that nothing
        // waits on a barrier no member will pass.
        if s.preparing || !s.partitions.is_empty() {
            s.generation += 1;
        }
        s.preparing = false;
        s.preparing_since = None;
        s.partitions.clear();
        s.epoch += 1;
        s.changes.fetch_add(1, Ordering::Release);
        return;
    }
    if !s.preparing {
        s.preparing_since = Some(now);
    }
    s.preparing = true;
    s.epoch += 1;
    s.changes.fetch_add(1, Ordering::Release);
    for m in s.members.values_mut() {
        // A member that owns nothing has nothing to give up.
        m.rejoined = m.assignment.is_empty();
    }
}

fn complete_rebalance(s: &mut State, now: Instant, partitions: &dyn Fn(&str) -> Option<u32>) {
    s.partitions = subscribed_counts(s, partitions);
    let specs: BTreeMap<String, MemberSpec> = s
        .members
        .iter()
        .map(|(id, m)| {
            (
                id.clone(),
                MemberSpec {
                    subscription: m.subscription.clone(),
                    previous: if m.assignment.is_empty() {
                        m.previous.clone()
                    } else {
                        m.assignment.clone()
                    },
                },
            )
        })
        .collect();
    let mut result = assignor::assign(s.assignor, &specs, &s.partitions);
    for (id, m) in s.members.iter_mut() {
        m.assignment = result.remove(id).unwrap_or_default();
        m.previous.clear();
        m.rejoined = false;
        if m.remote.is_some() {
            // Kafka restarts every member's session timer as a rebalance completes: a remote
            // member's session runs from here until its SyncGroup and heartbeats.
            m.last_seen = now;
        }
    }
    s.generation += 1;
    s.preparing = false;
    s.preparing_since = None;
    s.epoch += 1;
    s.changes.fetch_add(1, Ordering::Release);
    tracing::info!(
        target: "riverbed::group",
        generation = s.generation,
        members = s.members.len(),
        assignment = ?s
            .members
            .iter()
            .map(|(id, m)| (id.as_str(), m.assignment.iter().map(|tp| tp.to_string()).collect::<Vec<_>>()))
            .collect::<Vec<_>>(),
        "rebalance completed"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(t: &[&str]) -> BTreeSet<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn barrier_hands_out_partitions_only_after_revocation() {
        let g = Group::new("g");
        let now = Instant::now();
        let parts = |t: &str| (t == "t").then_some(4);
        let long = Duration::from_secs(60);
        let a = g.join(subs(&["t"]), Assignor::Range, long, now);
        let Checkin::Stable {
            assignment,
            generation,
        } = g.checkin(&a, now, 1, &parts)
        else {
            panic!()
        };
        assert_eq!(assignment.len(), 4);
        let b = g.join(subs(&["t"]), Assignor::Range, long, now);
        // b must wait until a revokes.
        assert_eq!(g.checkin(&b, now, 1, &parts), Checkin::Waiting);
        assert!(g
            .check_commit(Some(&a), generation, &[&TopicPartition::new("t", 0)])
            .is_ok());
        assert_eq!(g.checkin(&a, now, 1, &parts), Checkin::Revoke);
        g.rejoin(&a);
        let Checkin::Stable {
            assignment: aa,
            generation: g2,
        } = g.checkin(&a, now, 1, &parts)
        else {
            panic!()
        };
        let Checkin::Stable { assignment: bb, .. } = g.checkin(&b, now, 1, &parts) else {
            panic!()
        };
        assert_eq!(aa.len() + bb.len(), 4);
        assert!(aa.iter().all(|tp| !bb.contains(tp)));
        // A commit from the old generation is refused.
        assert!(g.check_commit(Some(&a), generation, &[&aa[0]]).is_err());
        assert!(g.check_commit(Some(&a), g2, &[&aa[0]]).is_ok());
        assert!(g.check_commit(Some(&a), g2, &[&bb[0]]).is_err());
        assert!(g.check_commit(None, 0, &[]).is_err());
    }

    #[test]
    fn silent_member_is_removed_after_max_poll_interval() {
        let g = Group::new("g");
        let t0 = Instant::now();
        let parts = |_: &str| Some(2);
        let a = g.join(subs(&["t"]), Assignor::Range, Duration::from_millis(10), t0);
        assert!(matches!(
            g.checkin(&a, t0, 1, &parts),
            Checkin::Stable { .. }
        ));
        let b = g.join(subs(&["t"]), Assignor::Range, Duration::from_secs(60), t0);
        assert_eq!(g.checkin(&b, t0, 1, &parts), Checkin::Waiting);
        let later = t0 + Duration::from_millis(50);
        let Checkin::Stable { assignment, .. } = g.checkin(&b, later, 1, &parts) else {
            panic!()
        };
        assert_eq!(assignment.len(), 2);
        assert_eq!(g.checkin(&a, later, 1, &parts), Checkin::NotMember);
    }

    /// A model of the clients around one coordinator: in-process consumers (check in at poll,
    /// revoke, rejoin) and remote Kafka clients (JoinGroup with the MEMBER_ID_REQUIRED round
    /// trip, SyncGroup, Heartbeat, rejoin on REBALANCE_IN_PROGRESS / ILLEGAL_GENERATION), driven
    /// by random joins, leaves, steps, clock advances and partition-count changes.
    mod mixed_model {
        use super::*;
        use proptest::prelude::*;

        const TOPICS: [&str; 2] = ["t", "u"];

        #[derive(Clone, Debug)]
        enum Op {
            JoinLocal {
                slot: usize,
                topics: u8,
                liveness_ms: u64,
            },
            JoinRemote {
                slot: usize,
                topics: u8,
                session_ms: u64,
                extra_ms: u64,
                v4: bool,
            },
            Step(usize),
            Leave(usize),
            Advance(u64),
            Grow(u32),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                1 => (0..5usize, 1..4u8, 50..1000u64).prop_map(|(slot, topics, liveness_ms)| Op::JoinLocal { slot, topics, liveness_ms }),
                1 => (0..5usize, 1..4u8, 50..1000u64, 0..1000u64, any::<bool>()).prop_map(|(slot, topics, session_ms, extra_ms, v4)| Op::JoinRemote { slot, topics, session_ms, extra_ms, v4 }),
                4 => (0..5usize).prop_map(Op::Step),
                1 => (0..5usize).prop_map(Op::Leave),
                2 => (1..400u64).prop_map(Op::Advance),
                1 => (0..3u32).prop_map(Op::Grow),
            ]
        }

        #[derive(Debug)]
        enum Phase {
            Joining(JoinTicket),
            Member { generation: u32 },
        }

        #[derive(Debug)]
        enum Client {
            Local {
                id: String,
                liveness: Duration,
            },
            Remote {
                id: String,
                phase: Phase,
                session: Duration,
                rebalance: Duration,
                topics: BTreeSet<String>,
            },
        }

        #[derive(Debug)]
        struct Slot {
            client: Client,
            /// What the client believes it owns (and would consume).
            owned: Vec<TopicPartition>,
            /// Its last request the coordinator answered.
            last_contact: Instant,
        }

        struct World {
            g: Group,
            t0: Instant,
            clock: u64,
            version: u64,
            counts: BTreeMap<String, u32>,
            slots: Vec<Option<Slot>>,
        }

        fn topics_of(mask: u8) -> BTreeSet<String> {
            TOPICS
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, t)| t.to_string())
                .collect()
        }

        impl World {
            fn now(&self) -> Instant {
                self.t0 + Duration::from_millis(self.clock)
            }

            fn step(&mut self, slot: usize) {
                let now = self.now();
                let version = self.version;
                let counts = self.counts.clone();
                let parts = move |t: &str| counts.get(t).copied();
                let Some(sl) = self.slots[slot].as_mut() else {
                    return;
                };
                match &mut sl.client {
                    Client::Local { id, .. } => match self.g.checkin(id, now, version, &parts) {
                        Checkin::NotMember => {
                            self.slots[slot] = None;
                        }
                        Checkin::Revoke => {
                            sl.owned.clear();
                            self.g.rejoin(id);
                            sl.last_contact = now;
                        }
                        Checkin::Waiting => {
                            assert!(sl.owned.is_empty(), "a waiting member owns nothing");
                            sl.last_contact = now;
                        }
                        Checkin::Stable { assignment, .. } => {
                            sl.owned = assignment;
                            sl.last_contact = now;
                        }
                    },
                    Client::Remote {
                        id,
                        phase,
                        session,
                        topics,
                        rebalance,
                    } => {
                        let session = *session;
                        let rebalance = *rebalance;
                        let topics = topics.clone();
                        let rejoin = |g: &Group, id: &str| {
                            let mut j = remote_join(id, &topics, session, false);
                            j.rebalance_timeout = rebalance;
                            g.remote_join(j, now, version, &parts)
                        };
                        match phase {
                            Phase::Joining(ticket) => {
                                match self.g.poll_join(ticket, now, version, &parts) {
                                    None => sl.last_contact = now,
                                    Some(Err(_)) => self.slots[slot] = None,
                                    Some(Ok(j)) => {
                                        sl.last_contact = now;
                                        match self.g.sync(&j.member_id, j.generation as i32, now) {
                                            Ok((_, assignment)) => {
                                                sl.owned = assignment;
                                                *phase = Phase::Member {
                                                    generation: j.generation,
                                                };
                                            }
                                            Err(Refusal::UnknownMember) => self.slots[slot] = None,
                                            Err(_) => match rejoin(&self.g, id) {
                                                Ok(t) => *phase = Phase::Joining(t),
                                                Err(_) => self.slots[slot] = None,
                                            },
                                        }
                                    }
                                }
                            }
                            Phase::Member { generation } => {
                                match self
                                    .g
                                    .heartbeat(id, *generation as i32, now, version, &parts)
                                {
                                    Ok(()) => sl.last_contact = now,
                                    Err(Refusal::UnknownMember) => self.slots[slot] = None,
                                    Err(_) => {
                                        // Eager: revoke, then rejoin.
                                        sl.owned.clear();
                                        sl.last_contact = now;
                                        match rejoin(&self.g, id) {
                                            Ok(t) => *phase = Phase::Joining(t),
                                            Err(_) => self.slots[slot] = None,
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }

            /// Clients notice their own silence: a consumer past its session timeout (remote)
            /// or max_poll_interval (in-process) stops consuming what it owned.
            fn self_expire(&mut self) {
                let now = self.now();
                for sl in self.slots.iter_mut().flatten() {
                    let limit = match &sl.client {
                        Client::Local { liveness, .. } => *liveness,
                        // The Java client's max.poll.interval (its rebalance timeout): a member
                        // that has not polled within it leaves on its own.
                        Client::Remote {
                            session, rebalance, ..
                        } => (*session).min(*rebalance),
                    };
                    if now.saturating_duration_since(sl.last_contact) > limit {
                        sl.owned.clear();
                    }
                }
            }

            fn check(&self) {
                let mut seen = BTreeSet::new();
                for sl in self.slots.iter().flatten() {
                    for tp in &sl.owned {
                        assert!(
                            seen.insert(tp.clone()),
                            "{tp} owned by two members: {:?}",
                            self.slots
                        );
                    }
                }
                // What a client owns is what the coordinator assigned it.
                let d = self.g.describe();
                for sl in self.slots.iter().flatten() {
                    if sl.owned.is_empty() {
                        continue;
                    }
                    let id = match &sl.client {
                        Client::Local { id, .. } | Client::Remote { id, .. } => id,
                    };
                    let assigned = d.members.iter().find(|(m, _)| m == id).map(|(_, a)| a);
                    assert_eq!(assigned, Some(&sl.owned), "{id}: {d:?}");
                }
            }
        }

        fn remote_join(
            id: &str,
            topics: &BTreeSet<String>,
            session: Duration,
            v4: bool,
        ) -> RemoteJoin {
            RemoteJoin {
                member_id: id.to_string(),
                instance_id: None,
                client_id: "model".into(),
                client_host: "/127.0.0.1".into(),
                session_timeout: session,
                rebalance_timeout: session * 2,
                protocols: vec![("range".into(), protocol::encode_subscription(topics))],
                require_known_member_id: v4,
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

            #[test]
            fn no_partition_has_two_owners_and_a_settled_group_owns_every_partition(
                ops in proptest::collection::vec(op(), 1..80)
            ) {
                let mut w = World {
                    g: Group::new("g"),
                    t0: Instant::now(),
                    clock: 0,
                    version: 1,
                    counts: [("t".to_string(), 4), ("u".to_string(), 3)].into_iter().collect(),
                    slots: (0..5).map(|_| None).collect(),
                };
                let mut subscriptions: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
                for op in ops {
                    let now = w.now();
                    let counts = w.counts.clone();
                    let parts = move |t: &str| counts.get(t).copied();
                    match op {
                        Op::JoinLocal { slot, topics, liveness_ms } => {
                            if w.slots[slot].is_none() {
                                let liveness = Duration::from_millis(liveness_ms);
                                let id = w.g.join(topics_of(topics), Assignor::Range, liveness, now);
                                subscriptions.insert(id.clone(), topics_of(topics));
                                w.slots[slot] = Some(Slot { client: Client::Local { id, liveness }, owned: vec![], last_contact: now });
                            }
                        }
                        Op::JoinRemote { slot, topics, session_ms, extra_ms, v4 } => {
                            if w.slots[slot].is_none() {
                                let session = Duration::from_millis(session_ms);
                                let mut j = remote_join("", &topics_of(topics), session, v4);
                                j.rebalance_timeout = session + Duration::from_millis(extra_ms);
                                let mut r = w.g.remote_join(j.clone(), now, w.version, &parts);
                                if let Err(Refusal::MemberIdRequired(id)) = &r {
                                    j.member_id = id.clone();
                                    r = w.g.remote_join(j.clone(), now, w.version, &parts);
                                }
                                let ticket = r.expect("a new member with the group's protocol joins");
                                subscriptions.insert(ticket.member_id.clone(), topics_of(topics));
                                w.slots[slot] = Some(Slot {
                                    client: Client::Remote { id: ticket.member_id.clone(), phase: Phase::Joining(ticket), session, rebalance: j.rebalance_timeout, topics: topics_of(topics) },
                                    owned: vec![],
                                    last_contact: now,
                                });
                            }
                        }
                        Op::Step(slot) => w.step(slot),
                        Op::Leave(slot) => {
                            if let Some(sl) = w.slots[slot].take() {
                                match sl.client {
                                    Client::Local { id, .. } => w.g.leave_at(&id, now),
                                    Client::Remote { id, .. } => { let _ = w.g.remote_leave(&id, None, now); }
                                }
                            }
                        }
                        Op::Advance(ms) => {
                            w.clock += ms;
                            w.self_expire();
                        }
                        Op::Grow(by) => {
                            if by > 0 {
                                *w.counts.get_mut("t").unwrap() += by;
                                w.version += 1;
                            }
                        }
                    }
                    w.check();
                }
                // Settle: no time passes; every client keeps stepping.
                for _ in 0..20 {
                    for slot in 0..5 {
                        w.step(slot);
                        w.check();
                    }
                }
                let d = w.g.describe();
                prop_assert!(!d.rebalancing, "{d:?}");
                // Every partition of a subscribed topic is owned by exactly one live client.
                let live: Vec<&Slot> = w.slots.iter().flatten().collect();
                let mut expected = BTreeSet::new();
                for sl in &live {
                    let id = match &sl.client { Client::Local { id, .. } | Client::Remote { id, .. } => id };
                    for t in &subscriptions[id] {
                        for p in 0..w.counts[t] {
                            expected.insert(TopicPartition::new(t.clone(), p));
                        }
                    }
                }
                let owned: BTreeSet<TopicPartition> = live.iter().flat_map(|sl| sl.owned.iter().cloned()).collect();
                prop_assert_eq!(owned, expected);
                prop_assert_eq!(d.members.len(), live.len());
            }
        }
    }
}
