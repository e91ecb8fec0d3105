//! Consumer groups: membership, generations and the rebalance protocol, in memory.
//!
//! Members are consumers of this process. A rebalance is Kafka's eager protocol with a barrier:
//! when membership or subscribed partition counts change, the group enters *preparing* and every
//! member, at its next poll, gives up its partitions (its rebalance listener runs, and it may
//! commit first) and rejoins. Once all members have rejoined — or been removed for not polling
//! within `max_poll_interval` — the assignor runs, the generation goes up, and members pick up
//! their new partitions at their next poll. Because partitions are handed out only after every
//! previous owner has let go, a partition never has two owners in a group.
//!
//! Commits are fenced: a member may commit only partitions it owns in the current generation.

pub mod assignor;
pub(crate) mod published;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{ErrorKind, Result};
use crate::topic::TopicPartition;
use assignor::{Assignor, MemberSpec};

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

#[derive(Debug)]
struct Member {
    subscription: BTreeSet<String>,
    assignment: Vec<TopicPartition>,
    /// What the member gave up in the current rebalance: the sticky assignor's history.
    previous: Vec<TopicPartition>,
    /// Whether the member has given up its partitions in the current rebalance.
    rejoined: bool,
    last_poll: Instant,
    max_poll_interval: Duration,
}

#[derive(Debug, Default)]
struct State {
    generation: u32,
    preparing: bool,
    members: BTreeMap<String, Member>,
    /// Partition counts the current assignment was computed from.
    partitions: BTreeMap<String, u32>,
    assignor: Assignor,
    next_member: u64,
    /// The store metadata version the partition counts were last compared at.
    metadata_version: u64,
    /// Bumped on every change of membership or assignment (shared by the store's groups, so
    /// the store knows when to publish them).
    changes: Arc<AtomicU64>,
}

/// One consumer group.
#[derive(Debug)]
pub(crate) struct Group {
    pub name: String,
    state: Mutex<State>,
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
        }
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
                last_poll: now,
                max_poll_interval,
            },
        );
        start_rebalance(&mut s);
        id
    }

    /// Removes a member (its consumer closed or unsubscribed) and rebalances the rest.
    pub fn leave(&self, member: &str) {
        let mut s = self.state.lock();
        if s.members.remove(member).is_some() {
            start_rebalance(&mut s);
        }
    }

    /// Changes a member's subscription and rebalances.
    pub fn resubscribe(&self, member: &str, subscription: BTreeSet<String>) {
        let mut s = self.state.lock();
        if let Some(m) = s.members.get_mut(member) {
            m.subscription = subscription;
            start_rebalance(&mut s);
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
        let expired: Vec<String> = s
            .members
            .iter()
            .filter(|(_, m)| now.saturating_duration_since(m.last_poll) > m.max_poll_interval)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            s.members.remove(&id);
            start_rebalance(&mut s);
        }
        let Some(m) = s.members.get_mut(member) else {
            return Checkin::NotMember;
        };
        m.last_poll = now;
        // Partition counts only change with the store's metadata version.
        if !s.preparing && s.metadata_version != metadata_version {
            s.metadata_version = metadata_version;
            let subscribed: BTreeSet<String> = s
                .members
                .values()
                .flat_map(|m| m.subscription.iter().cloned())
                .collect();
            let current: BTreeMap<String, u32> = subscribed
                .iter()
                .filter_map(|t| partitions(t).map(|n| (t.clone(), n)))
                .collect();
            if current != s.partitions {
                start_rebalance(&mut s);
            }
        }
        if s.preparing {
            if s.members.values().all(|m| m.rejoined) {
                complete_rebalance(&mut s, partitions);
            } else {
                return if s.members[member].rejoined {
                    Checkin::Waiting
                } else {
                    Checkin::Revoke
                };
            }
        }
        Checkin::Stable {
            generation: s.generation,
            assignment: s.members[member].assignment.clone(),
        }
    }

    /// The member has revoked its partitions in the current rebalance.
    pub fn rejoin(&self, member: &str) {
        let mut s = self.state.lock();
        if let Some(m) = s.members.get_mut(member) {
            m.rejoined = true;
            m.previous = std::mem::take(&mut m.assignment);
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

fn start_rebalance(s: &mut State) {
    s.preparing = true;
    s.changes.fetch_add(1, Ordering::Release);
    for m in s.members.values_mut() {
        // A member that owns nothing has nothing to give up.
        m.rejoined = m.assignment.is_empty();
    }
}

fn complete_rebalance(s: &mut State, partitions: &dyn Fn(&str) -> Option<u32>) {
    let subscribed: BTreeSet<String> = s
        .members
        .values()
        .flat_map(|m| m.subscription.iter().cloned())
        .collect();
    s.partitions = subscribed
        .iter()
        .filter_map(|t| partitions(t).map(|n| (t.clone(), n)))
        .collect();
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
    }
    s.generation += 1;
    s.preparing = false;
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
}
