//! Stream-stream joins over time windows ([`KStream::join_stream`],
//! [`KStream::left_join_stream`], [`KStream::outer_join_stream`]): Kafka's KStream-KStream
//! join, with the "no spurious left/outer results" behaviour of Kafka 3.1 and later.
//!
//! Two streams join by *when* their records happened: a left and a right record with the same
//! key pair when their timestamps are close enough ([`JoinWindows`], whose docs give the full
//! semantics: windows, grace, dropped records, when left/outer results without a partner come
//! out). Each pair is emitted once, when its second record arrives; a record that never pairs
//! is emitted alone (left and outer joins) only once its window has closed, never before.
//!
//! **One node, two inputs.** Both streams feed one processor node (each record wrapped with
//! its side), so one processor instance per task owns both sides' stores and the in-memory
//! index of stored records by window close, which it rebuilds from the stores in `init`.
//! Closed windows are handled when a record reaches the join, after stream time moved.
//!
//! **Late records and retention, as in Kafka.** Kafka's join keeps each side's records in a
//! window store whose retention is `before + after + grace` from the record's timestamp, and
//! joins every incoming record with the partners that store still holds, even when the
//! incoming record's own window has already closed (`KStreamKStreamJoinTest.testWindowing`,
//! `testAsymmetricWindowingAfter`/`Before`). Riverbed does the same: a record whose window has
//! closed still pairs with the partners held, and is itself kept (until its retention ends) if
//! it found one or its side's unmatched records are never emitted; with no partner on an
//! emitting side it comes out alone at once (Kafka's rule for a record past its window). A
//! record older than the retention is logged and counted as dropped, as Kafka's store meters
//! it, after joining what is held.
//!
//! **One deliberate difference: a record emitted alone never pairs later.** When a left (or,
//! in an outer join, right) record's window closes without a pair, Riverbed emits it alone and
//! forgets it. Kafka emits it alone too but keeps it in its window store, so a late record of
//! the other side can still pair with it and Kafka then emits a joined result for a record it
//! already reported as having none. Riverbed keeps "emitted alone" final; matched records and
//! records of a side whose unmatched records are not emitted stay held for the retention, as
//! in Kafka. (No Kafka unit test exercises this case; every case of
//! `KStreamKStreamJoinTest`, `KStreamKStreamLeftJoinTest` and `KStreamKStreamOuterJoinTest`
//! translated in `tests/streams/stream_join_kafka.rs` gives Kafka's results.)
//!
//! **State.** Each side's records wait in a state store (`<name>-this-join-store` for the left
//! side, `<name>-other-join-store` for the right; the name is generated, e.g.
//! `KSTREAM-JOIN-0000000004`, and deterministic for a given topology), with a compacted
//! changelog like every store, so an application restarted (or a task moved by a rebalance) in
//! the middle of a window still joins, and still emits the unmatched records it owes. A store
//! key is the record key's bytes, the timestamp and a sequence number, both 8 bytes big-endian
//! (so a key's records are adjacent and ordered by time, and a window is one range scan;
//! duplicates get distinct sequence numbers); the value is a "has a pair" flag byte and the
//! value's bytes. An entry is deleted (a tombstone in the changelog) when its window closes if
//! it is emitted alone, else once its retention (`before + after + grace` after its timestamp)
//! is over. The left store also keeps the join's stream time, so a restarted task does not
//! reopen windows.
//!
//! **Partitioning.** The two streams must be co-partitioned (same partition count, records of
//! a key in the same partition); a stream whose key was changed is repartitioned first, and
//! [`App::start`](crate::streams::App::start) refuses topics with different partition counts.
//!
//! ```
//! use std::time::Duration;
//! use riverbed::streams::{Builder, JoinWindows, TopologyTestDriver};
//!
//! // Ad impressions and clicks, keyed by ad id: a click within 10 s after its impression
//! // counts; a click may arrive up to 5 s late (grace).
//! let b = Builder::new("ad-clicks");
//! let impressions = b.stream::<String, String>("impressions");
//! let clicks = b.stream::<String, String>("clicks");
//! let windows =
//!     JoinWindows::of_time_difference_and_grace(Duration::from_secs(10), Duration::from_secs(5))
//!         .before(Duration::ZERO);
//! impressions
//!     .left_join_stream(&clicks, |i, c| format!("{i}/{}", c.map_or("-", |c| c.as_str())), windows)
//!     .to("attributed");
//! let mut d = TopologyTestDriver::new(b.build()?)?;
//! let s = |x: &str| x.to_string();
//! d.pipe_input("impressions", &s("ad1"), &s("imp1"), 1_000)?;
//! d.pipe_input("impressions", &s("ad2"), &s("imp2"), 2_000)?;
//! d.pipe_input("clicks", &s("ad1"), &s("click1"), 4_000)?; // pairs with imp1 at once
//! assert_eq!(d.read_output::<String, String>("attributed")?[0].value, "imp1/click1");
//! // imp2 has no click; its window closes when stream time passes 2 000 + 10 000 + 5 000.
//! d.pipe_input("clicks", &s("ad3"), &s("click3"), 17_000)?;
//! assert!(d.read_output::<String, String>("attributed")?.is_empty());
//! d.pipe_input("clicks", &s("ad3"), &s("click4"), 17_001)?;
//! let out = d.read_output::<String, String>("attributed")?;
//! let got: Vec<_> = out.iter().map(|r| (r.value.as_str(), r.timestamp)).collect();
//! assert_eq!(got, [("imp2/-", 2_000)]);
//! # Ok::<(), riverbed::Error>(())
//! ```

use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::streams::dsl::window::{split_windowed, windowed_bytes, Window};
use crate::streams::dsl::KStream;
use crate::streams::operators::windowed::drop_record;
use crate::streams::serde::{deserialization_error, Serde};
use crate::streams::state::store::KvState;
use crate::streams::topology::processor::{Data, Processor, ProcessorContext, StreamRecord};
use crate::streams::topology::StoreKind;

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The time windows of a stream-stream join (Kafka's `JoinWindows`), and the join's
/// semantics ([`KStream::join_stream`], [`KStream::left_join_stream`],
/// [`KStream::outer_join_stream`]).
///
/// A record is an event, so two streams join by *when* their records happened: a left record
/// `l` and a right record `r` with the same key form a pair iff
/// `l.ts - before <= r.ts <= l.ts + after` (these windows). Each pair gives one result,
/// `joiner(l, r)`, emitted when the second of the two arrives (whichever side it is on, in or
/// out of timestamp order), with timestamp `max(l.ts, r.ts)`.
///
/// **Windows and grace.** A record's *join window* is the range of partner timestamps it
/// accepts: `[ts - before, ts + after]` for a left record, `[ts - after, ts + before]` for a
/// right one. The window closes when stream time (the task's largest timestamp so far) passes
/// its end plus the grace period: a left record's at stream time `> ts + after + grace`, a
/// right record's at `> ts + before + grace`. A record is held for pairing, as in Kafka's join
/// store, until stream time passes `ts + before + after + grace` (its retention), so a record
/// that arrives after its own window closed still pairs with the partners held; a record
/// older than its retention is logged (a warning, target `riverbed::streams`) and counted in
/// [`StreamsMetrics::dropped_records`](crate::streams::StreamsMetrics::dropped_records) after
/// that, never silently ignored. Records with a negative timestamp or a null key (a `()` or
/// `None` key) are dropped and counted the same way.
///
/// **Left and outer joins.** A left record that finds no partner is *not* emitted at once (it
/// may still find one): it is emitted as `joiner(l, None)` once its window has closed without
/// any pair, with its own timestamp, and then never pairs (Kafka may still pair it with a late
/// right record; Riverbed deliberately keeps the result final). A left record that arrives after
/// its window closed and finds no partner is emitted alone at once, as in Kafka. Once a record has
/// a pair it only ever appears in joined results.
/// The outer join does the same for right records as well (`joiner(None, Some(r))`). Unmatched
/// results come out when a record reaching the join moves stream time past their window; those
/// that come out together are ordered as Kafka orders them (its outer-join store's order): by
/// timestamp, then right-side records before left-side ones, then key bytes, then arrival.
///
/// **State.** Each side's records wait in a state store with a compacted changelog (named
/// `<node>-this-join-store` and `<node>-other-join-store` after the join's generated node name,
/// e.g. `KSTREAM-JOIN-0000000002`, deterministic for a given topology), restored like every
/// store, so a restart or a rebalance in the middle of a window still joins. A record leaves
/// its store (a tombstone in the changelog) when its window closes if it is emitted alone,
/// else when its retention ends.
///
/// ```
/// use std::time::Duration;
/// use riverbed::streams::JoinWindows;
///
/// // Right records up to 5 s before or after a left record; 1 s of grace.
/// let symmetric =
///     JoinWindows::of_time_difference_and_grace(Duration::from_secs(5), Duration::from_secs(1));
/// // Right records at most 5 s *after* the left record only.
/// let after_only = symmetric.before(Duration::ZERO);
/// assert_ne!(symmetric, after_only);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinWindows {
    before: i64,
    after: i64,
    grace: i64,
}

impl JoinWindows {
    /// Records join if their timestamps are at most `difference` apart (either way);
    /// out-of-order records are accepted for `grace` after a window's end.
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> Self {
        let d = millis(difference);
        JoinWindows {
            before: d,
            after: d,
            grace: millis(grace),
        }
    }

    /// Records join if their timestamps are at most `difference` apart (either way); no grace
    /// period, so a record whose window ended before stream time is dropped.
    pub fn of_time_difference_without_grace(difference: Duration) -> Self {
        Self::of_time_difference_and_grace(difference, Duration::ZERO)
    }

    /// The same windows, but a right record may be at most `before` earlier than a left one
    /// (the `after` bound and grace unchanged).
    pub fn before(mut self, before: Duration) -> Self {
        self.before = millis(before);
        self
    }

    /// The same windows, but a right record may be at most `after` later than a left one (the
    /// `before` bound and grace unchanged).
    pub fn after(mut self, after: Duration) -> Self {
        self.after = millis(after);
        self
    }

    /// The grace period in milliseconds.
    pub fn grace_ms(&self) -> i64 {
        self.grace
    }

    /// How far back a record may reach from its own timestamp, and how far ahead.
    fn reach(&self, side: Side) -> (i64, i64) {
        match side {
            Side::Left => (self.before, self.after),
            Side::Right => (self.after, self.before),
        }
    }

    /// The partner timestamps a record of `side` at `ts` accepts (inclusive).
    fn partner_range(&self, side: Side, ts: i64) -> (i64, i64) {
        let (back, ahead) = self.reach(side);
        (ts.saturating_sub(back), ts.saturating_add(ahead))
    }

    /// The last stream time at which the window of a record of `side` at `ts` is open.
    fn last_open(&self, side: Side, ts: i64) -> i64 {
        self.partner_range(side, ts).1.saturating_add(self.grace)
    }

    /// The last stream time at which Kafka's join store retains a record at `ts` (its
    /// retention is the windows' size plus grace, `before + after + grace`, from `ts`).
    fn retained_until(&self, ts: i64) -> i64 {
        ts.saturating_add(self.before)
            .saturating_add(self.after)
            .saturating_add(self.grace)
    }
}

/// Which input of the join a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    Left,
    Right,
}

/// A record of either input, so both inputs can feed the one join node (one processor per
/// task owns both stores and their expiry index).
#[derive(Clone)]
enum JoinInput<V, VO> {
    Left(V),
    Right(VO),
}

/// The result for a pair, or for one unmatched side (`None` for the other): `None` when the
/// join kind emits nothing for it.
type PairJoiner<V, VO, VR> = Arc<dyn Fn(Option<&V>, Option<&VO>) -> Option<VR> + Send + Sync>;

/// Which unmatched records a join emits once their window closes.
#[derive(Clone, Copy)]
struct Unmatched {
    left: bool,
    right: bool,
}

/// An unmatched record to emit, in Kafka's outer-store order: timestamp, is-left (right
/// first), key bytes, sequence; then its side and value bytes.
type UnmatchedOut = (i64, bool, Vec<u8>, i64, Side, Vec<u8>);

/// The stored value: a flag (has the record found a pair?) then the value's bytes.
const MATCHED: u8 = 1;
const UNMATCHED: u8 = 0;

fn stored_value(matched: bool, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 1);
    out.push(if matched { MATCHED } else { UNMATCHED });
    out.extend_from_slice(value);
    out
}

fn split_stored(bytes: &[u8]) -> Result<(bool, &[u8])> {
    match bytes.split_first() {
        Some((&MATCHED, v)) => Ok((true, v)),
        Some((&UNMATCHED, v)) => Ok((false, v)),
        Some((flag, _)) => Err(deserialization_error(format!(
            "stream-stream join store: unknown flag byte {flag} (expected 0 or 1)"
        ))),
        None => Err(deserialization_error(
            "stream-stream join store: empty value (expected a flag byte)",
        )),
    }
}

struct StreamStreamJoin<K, V, VO, VR> {
    windows: JoinWindows,
    unmatched: Unmatched,
    left_store: Arc<str>,
    right_store: Arc<str>,
    joiner: PairJoiner<V, VO, VR>,
    /// Every stored record by the last stream time its window is open, to emit and delete it
    /// once stream time passes that.
    by_close: BTreeSet<(i64, Side, Vec<u8>)>,
    /// Stored records whose window has closed but that Kafka's join store still retains
    /// (matched ones, and those of a side whose unmatched records are not emitted), by the
    /// last stream time they are retained, to delete them after.
    by_expiry: BTreeSet<(i64, Side, Vec<u8>)>,
    /// The join's stream time: the task's, or the one restored from the left store if larger.
    stream_time: Option<i64>,
    next_seq: i64,
    _types: PhantomData<fn(K)>,
}

impl<K: Data + Serde, V: Data + Serde, VO: Data + Serde, VR: Data> StreamStreamJoin<K, V, VO, VR> {
    fn store_of(&self, side: Side) -> &str {
        match side {
            Side::Left => &self.left_store,
            Side::Right => &self.right_store,
        }
    }

    /// Deletes the records whose window closed before `now`, emitting the unmatched ones the
    /// join kind asks for. Those come out in the order of Kafka's shared outer-join store
    /// (`KStreamKStreamJoin.emitNonJoinedOuterRecords` iterates it; its key,
    /// `TimestampedKeyAndJoinSide`, serializes as timestamp, then a side byte, right 0 before
    /// left 1, then the key bytes; equal keys keep arrival order): by timestamp, then right
    /// before left, then key bytes, then arrival.
    fn close_windows(&mut self, ctx: &mut ProcessorContext<'_, K, VR>, now: i64) -> Result<()> {
        let mut unmatched: Vec<UnmatchedOut> = Vec::new();
        while let Some((last_open, _, _)) = self.by_close.first() {
            if *last_open >= now {
                break;
            }
            let Some((_, side, key)) = self.by_close.pop_first() else {
                break;
            };
            let state = ctx.raw_store(self.store_of(side))?;
            let Some(stored) = state.data.get(&key) else {
                continue;
            };
            let (matched, value) = split_stored(stored)?;
            let emit = match side {
                Side::Left => self.unmatched.left,
                Side::Right => self.unmatched.right,
            };
            let (kb, w) = split_windowed(&key)?;
            if matched || !emit {
                // Kept while Kafka's join store retains it: a late partner still pairs.
                self.by_expiry
                    .insert((self.windows.retained_until(w.start), side, key));
                continue;
            }
            let value = value.to_vec();
            ctx.raw_store(self.store_of(side))?.delete(&key);
            unmatched.push((w.start, side == Side::Left, kb.to_vec(), w.end, side, value));
        }
        while let Some((until, _, _)) = self.by_expiry.first() {
            if *until >= now {
                break;
            }
            let Some((_, side, key)) = self.by_expiry.pop_first() else {
                break;
            };
            let state = ctx.raw_store(self.store_of(side))?;
            if state.data.contains_key(&key) {
                state.delete(&key);
            }
        }
        unmatched.sort();
        for (ts, _, kb, _, side, value) in unmatched {
            let result = match side {
                Side::Left => (self.joiner)(Some(&V::decode(&value)?), None),
                Side::Right => (self.joiner)(None, Some(&VO::decode(&value)?)),
            };
            if let Some(v) = result {
                ctx.forward(StreamRecord::new(K::decode(&kb)?, v, ts));
            }
        }
        Ok(())
    }

    /// The join's stream time with a record at `ts`, stored when it moves.
    fn observe(&mut self, ctx: &mut ProcessorContext<'_, K, VR>, ts: i64) -> Result<i64> {
        let now = ctx
            .stream_time()
            .unwrap_or(ts)
            .max(ts)
            .max(self.stream_time.unwrap_or(i64::MIN));
        if self.stream_time != Some(now) {
            self.stream_time = Some(now);
            ctx.raw_store(&self.left_store)?.set_stream_time(now);
        }
        Ok(now)
    }
}

/// The stored records of `state`: `(key, timestamp, sequence)`.
fn stored_records(state: &KvState) -> Result<Vec<(Vec<u8>, i64, i64)>> {
    state
        .data
        .keys()
        .map(|k| split_windowed(k).map(|(_, w)| (k.clone(), w.start, w.end)))
        .collect()
}

impl<K: Data + Serde, V: Data + Serde, VO: Data + Serde, VR: Data>
    Processor<K, JoinInput<V, VO>, K, VR> for StreamStreamJoin<K, V, VO, VR>
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, VR>) -> Result<()> {
        self.by_close.clear();
        self.by_expiry.clear();
        self.next_seq = 0;
        let left = ctx.raw_store(&self.left_store)?;
        self.stream_time = left.stream_time();
        for side in [Side::Left, Side::Right] {
            let store = self.store_of(side).to_string();
            for (key, ts, seq) in stored_records(ctx.raw_store(&store)?)? {
                self.next_seq = self.next_seq.max(seq.saturating_add(1));
                self.by_close
                    .insert((self.windows.last_open(side, ts), side, key));
            }
        }
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        r: StreamRecord<K, JoinInput<V, VO>>,
    ) -> Result<()> {
        let t = r.timestamp;
        let now = self.observe(ctx, t)?;
        self.close_windows(ctx, now)?;
        let Some(kb) = r.key.encode_nullable()? else {
            drop_record(ctx, t, "a stream-stream join record has a null key");
            return Ok(());
        };
        if t < 0 {
            drop_record(ctx, t, "negative timestamp (in no join window)");
            return Ok(());
        }
        let side = match r.value {
            JoinInput::Left(_) => Side::Left,
            JoinInput::Right(_) => Side::Right,
        };
        let last_open = self.windows.last_open(side, t);
        // Kafka joins a record that comes after its own window closed with the partners still
        // waiting (KStreamKStreamJoinTest.testWindowing, testAsymmetricWindowing*); it is not
        // stored, since nothing may pair with it any more.
        let late = last_open < now;
        let other = match side {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        };
        let (from, to) = self.windows.partner_range(side, t);
        // Negative timestamps are never stored; sequence numbers are non-negative, so -1
        // (all ones) is above every one of them.
        let (from, to) = (from.max(0), to);
        let mut partners: Vec<(Vec<u8>, i64, Vec<u8>)> = Vec::new();
        if from <= to {
            let lo = windowed_bytes(&kb, Window::new(from, 0));
            let hi = windowed_bytes(&kb, Window::new(to, -1));
            for (k, v) in ctx.raw_store(self.store_of(other))?.data.range(lo..=hi) {
                let (kb2, w) = split_windowed(k)?;
                // A longer key with this key's bytes as a prefix sorts in between too.
                if kb2 == kb.as_slice() {
                    partners.push((k.clone(), w.start, v.clone()));
                }
            }
        }
        let value_bytes = match &r.value {
            JoinInput::Left(v) => v.encode()?,
            JoinInput::Right(v) => v.encode()?,
        };
        for (pk, pts, stored) in &partners {
            let (matched, pv) = split_stored(stored)?;
            let result = match &r.value {
                JoinInput::Left(v) => (self.joiner)(Some(v), Some(&VO::decode(pv)?)),
                JoinInput::Right(v) => (self.joiner)(Some(&V::decode(pv)?), Some(v)),
            };
            if let Some(out) = result {
                ctx.forward(StreamRecord::new(r.key.clone(), out, t.max(*pts)));
            }
            if !matched {
                let flagged = stored_value(true, pv);
                ctx.raw_store(self.store_of(other))?
                    .put(pk.clone(), flagged);
            }
        }
        let emit_alone = match side {
            Side::Left => self.unmatched.left,
            Side::Right => self.unmatched.right,
        };
        if late && partners.is_empty() && emit_alone {
            // As Kafka: a record that comes after its window closed, with no partner, comes
            // out alone at once, and (so that this stays final) is not kept to pair later.
            let alone = match &r.value {
                JoinInput::Left(v) => (self.joiner)(Some(v), None),
                JoinInput::Right(v) => (self.joiner)(None, Some(v)),
            };
            if let Some(out) = alone {
                ctx.forward(StreamRecord::new(r.key, out, t));
            }
            return Ok(());
        }
        let retained_until = self.windows.retained_until(t);
        if retained_until < now {
            // Kafka's join store refuses a record older than its retention (and meters it
            // as dropped); it has joined the partners still retained above.
            drop_record(
                ctx,
                t,
                "the record is older than the join store's retention",
            );
            return Ok(());
        }
        let seq = self.next_seq;
        self.next_seq = seq
            .checked_add(1)
            .ok_or_else(|| Error::invalid("stream-stream join: sequence numbers exhausted"))?;
        let key = windowed_bytes(&kb, Window::new(t, seq));
        let stored = stored_value(!partners.is_empty(), &value_bytes);
        ctx.raw_store(self.store_of(side))?.put(key.clone(), stored);
        if late {
            self.by_expiry.insert((retained_until, side, key));
        } else {
            self.by_close.insert((last_open, side, key));
        }
        Ok(())
    }
}

impl<'b, K: Data + Serde, V: Data + Serde> KStream<'b, K, V> {
    /// This stream joined with `other` by time (inner join): for each pair of a record `l` of
    /// this stream and a record `r` of `other` with the same key and
    /// `l.ts - before <= r.ts <= l.ts + after`, `joiner(l, r)` with timestamp
    /// `max(l.ts, r.ts)`, emitted when the second of the two arrives. See the
    /// [`JoinWindows`] for windows, grace, dropped records and state.
    ///
    /// ```
    /// use std::time::Duration;
    /// use riverbed::streams::{Builder, JoinWindows, TopologyTestDriver};
    ///
    /// let b = Builder::new("orders-payments");
    /// let orders = b.stream::<String, i64>("orders");
    /// let payments = b.stream::<String, i64>("payments");
    /// orders
    ///     .join_stream(
    ///         &payments,
    ///         |o, p| o - p,
    ///         JoinWindows::of_time_difference_without_grace(Duration::from_secs(60)),
    ///     )
    ///     .to("balance");
    /// let mut d = TopologyTestDriver::new(b.build()?)?;
    /// d.pipe_input("payments", &"o1".to_string(), &30i64, 10_000)?; // the payment comes first
    /// d.pipe_input("orders", &"o1".to_string(), &100i64, 40_000)?;
    /// d.pipe_input("orders", &"o2".to_string(), &5i64, 200_000)?; // no payment: nothing
    /// let out = d.read_output::<String, i64>("balance")?;
    /// let got: Vec<_> = out.iter().map(|r| (r.key.as_str(), r.value, r.timestamp)).collect();
    /// assert_eq!(got, [("o1", 70, 40_000)]);
    /// # Ok::<(), riverbed::Error>(())
    /// ```
    pub fn join_stream<VO: Data + Serde, VR: Data>(
        &self,
        other: &KStream<'b, K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<'b, K, VR> {
        self.stream_join(
            other,
            windows,
            Unmatched {
                left: false,
                right: false,
            },
            Arc::new(move |l, r| Some(joiner(l?, r?))),
        )
    }

    /// As [`join_stream`](Self::join_stream), and each record of this stream that never finds
    /// a pair is emitted as `joiner(l, None)` once its join window has closed (never before:
    /// no spurious results). See [`JoinWindows`].
    pub fn left_join_stream<VO: Data + Serde, VR: Data>(
        &self,
        other: &KStream<'b, K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<'b, K, VR> {
        self.stream_join(
            other,
            windows,
            Unmatched {
                left: true,
                right: false,
            },
            Arc::new(move |l, r| Some(joiner(l?, r))),
        )
    }

    /// As [`left_join_stream`](Self::left_join_stream), and each record of `other` that never
    /// finds a pair is emitted as `joiner(None, Some(r))` once its join window has closed. See
    /// [`JoinWindows`].
    pub fn outer_join_stream<VO: Data + Serde, VR: Data>(
        &self,
        other: &KStream<'b, K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<'b, K, VR> {
        self.stream_join(
            other,
            windows,
            Unmatched {
                left: true,
                right: true,
            },
            Arc::new(move |l, r| Some(joiner(l, r))),
        )
    }

    fn stream_join<VO: Data + Serde, VR: Data>(
        &self,
        other: &KStream<'b, K, VO>,
        windows: JoinWindows,
        unmatched: Unmatched,
        joiner: PairJoiner<V, VO, VR>,
    ) -> KStream<'b, K, VR> {
        let b = self.builder;
        let what = match (unmatched.left, unmatched.right) {
            (false, _) => "KSTREAM-JOIN",
            (true, false) => "KSTREAM-LEFTJOIN",
            (true, true) => "KSTREAM-OUTERJOIN",
        };
        let this = self.keyed_for_join(what);
        let other = other.keyed_for_join(what);
        b.require_copartitioned("a stream-stream join", &this.node, &other.node);
        let node = b.name(what);
        let left_store: Arc<str> = Arc::from(format!("{node}-this-join-store"));
        let right_store: Arc<str> = Arc::from(format!("{node}-other-join-store"));
        let left_in = this.then::<K, JoinInput<V, VO>>("KSTREAM-JOINTHIS", false, |ctx, r| {
            ctx.forward(StreamRecord::new(
                r.key,
                JoinInput::Left(r.value),
                r.timestamp,
            ));
            Ok(())
        });
        let right_in = other.then::<K, JoinInput<V, VO>>("KSTREAM-JOINOTHER", false, |ctx, r| {
            ctx.forward(StreamRecord::new(
                r.key,
                JoinInput::Right(r.value),
                r.timestamp,
            ));
            Ok(())
        });
        let stores = [left_store.to_string(), right_store.to_string()];
        b.add(|t| {
            t.add_store(&left_store, StoreKind::JoinBuffer, false)?;
            t.add_store(&right_store, StoreKind::JoinBuffer, false)?;
            t.add_processor::<_, K, JoinInput<V, VO>, K, VR>(
                &node,
                move || StreamStreamJoin {
                    windows,
                    unmatched,
                    left_store: Arc::clone(&left_store),
                    right_store: Arc::clone(&right_store),
                    joiner: Arc::clone(&joiner),
                    by_close: BTreeSet::new(),
                    by_expiry: BTreeSet::new(),
                    stream_time: None,
                    next_seq: 0,
                    _types: PhantomData,
                },
                &[&left_in.node, &right_in.node],
            )
            .map(|_| ())
        });
        b.connect(&node, &stores);
        KStream::new(b, node, false)
    }
}
