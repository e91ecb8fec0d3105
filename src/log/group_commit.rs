//! Group commit: concurrent callers that each need their appends durable share one fsync.
//!
//! A caller that needs offsets below `target` on disk (an `EveryAppend` append, `flush`, an
//! idempotent retry) either finds them durable already, or joins the current round. The first
//! caller of a round is its *leader*: it fsyncs everything appended so far (`Inner::sync_locked`
//! reads the writer's end when it starts), publishes the new durable offset, and wakes the
//! round's *followers*, who waited on a condvar. A follower whose target the round covered
//! returns; one that appended after the leader read the end loops and leads (or joins) the next
//! round. A failed fsync poisons the log: every follower of that round wakes, finds the log
//! poisoned and fails with it; nobody is told "durable" unless the durable offset, which only a
//! successful fsync moves, passed its target.
//!
//! **Gathering.** Without more, rounds alternate: the followers that a round releases go back to
//! append, but the next leader (whoever appended during the round) starts its fsync at once and
//! covers only itself, and the released appenders queue for the round after — four threads then
//! get about two appends per fsync. So a leader first waits, briefly, for as many callers as the
//! previous round covered (`expect`): the released appenders arrive within microseconds, and the
//! round covers all of them. The wait ends as soon as they are there, and at the latest after
//! half of a recent fsync's duration (capped at [`MAX_GATHER`]), so it costs a lone appender
//! nothing (`expect` is 1) and a shrinking crowd one short wait, after which `expect` follows
//! the smaller round. This is PostgreSQL's `commit_delay`/`commit_siblings` idea, made adaptive:
//! the delay is spent only when other committers are known to be coming.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// The longest a leader waits for the callers it expects.
pub(crate) const MAX_GATHER: Duration = Duration::from_micros(500);

/// The state of the group commit of one log (see the module documentation).
pub(crate) struct GroupCommit {
    state: Mutex<Round>,
    /// Followers wait here for the end of their round.
    done: Condvar,
    /// A gathering leader waits here for followers to arrive.
    arrived: Condvar,
    /// Offsets below this are durable. Moved only after a successful fsync.
    durable: AtomicU64,
}

struct Round {
    /// Whether a leader is gathering or syncing.
    leading: bool,
    /// Callers that joined since the last round ended and wait for the next to end (a round's
    /// end releases them all: they count again if they join again).
    waiting: usize,
    /// Incremented at the end of every round, successful or not.
    ended: u64,
    /// How many callers the last round covered: what the next leader waits for.
    expect: usize,
    /// A recent fsync's duration (an exponential average), bounding the gathering wait.
    fsync_ns: u64,
}

/// What [`GroupCommit::join`] makes of a caller.
pub(crate) enum Role {
    /// The target is durable: nothing to do.
    Done,
    /// Lead a round: sync, then call [`GroupCommit::finish`] with the outcome.
    Lead,
}

impl GroupCommit {
    pub(crate) fn new(durable: u64) -> GroupCommit {
        GroupCommit {
            state: Mutex::new(Round {
                leading: false,
                waiting: 0,
                ended: 0,
                expect: 1,
                fsync_ns: 0,
            }),
            done: Condvar::new(),
            arrived: Condvar::new(),
            durable: AtomicU64::new(durable),
        }
    }

    /// Offsets below this are on disk.
    pub(crate) fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Publishes a durable offset (after a successful fsync, under the log's `sync` lock).
    pub(crate) fn set_durable(&self, offset: u64) {
        self.durable.fetch_max(offset, Ordering::AcqRel);
    }

    /// Waits until offsets below `target` are durable ([`Role::Done`]), or until the caller is
    /// to lead a round ([`Role::Lead`]: it has gathered the callers it expected, or waited long
    /// enough). `poisoned` is checked before every decision: after a failed round its error is
    /// the caller's.
    pub(crate) fn join(
        &self,
        target: u64,
        poisoned: impl Fn() -> crate::error::Result<()>,
    ) -> crate::error::Result<Role> {
        if self.durable() >= target {
            return Ok(Role::Done);
        }
        let mut g = self.state.lock();
        loop {
            poisoned()?;
            if self.durable() >= target {
                return Ok(Role::Done);
            }
            if !g.leading {
                g.leading = true;
                if g.expect > 1 && g.waiting + 1 < g.expect {
                    let wait = Duration::from_nanos(g.fsync_ns / 2).min(MAX_GATHER);
                    let deadline = Instant::now() + wait;
                    while g.waiting + 1 < g.expect {
                        if self.arrived.wait_until(&mut g, deadline).timed_out() {
                            break;
                        }
                    }
                }
                // Everyone waiting now appended before this point, so the sync covers them.
                g.expect = g.waiting + 1;
                return Ok(Role::Lead);
            }
            g.waiting += 1;
            if g.waiting + 1 >= g.expect {
                self.arrived.notify_one();
            }
            let round = g.ended;
            while g.ended == round {
                self.done.wait(&mut g);
            }
        }
    }

    /// Ends the caller's round (it led: [`Role::Lead`]) and wakes its followers, who see the
    /// new durable offset or, after a failure, the poisoned log. `fsync` is how long the sync
    /// took, if it ran.
    pub(crate) fn finish(&self, fsync: Option<Duration>) {
        let mut g = self.state.lock();
        g.leading = false;
        g.ended += 1;
        // Callers that joined after the leader started count too: they are as many appenders,
        // only late for this round; the next leader waits for them all.
        g.expect = g.expect.max(g.waiting + 1);
        g.waiting = 0;
        if let Some(took) = fsync {
            let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
            g.fsync_ns = if g.fsync_ns == 0 {
                ns
            } else {
                (g.fsync_ns / 4).saturating_mul(3).saturating_add(ns / 4)
            };
        }
        drop(g);
        self.done.notify_all();
    }
}
