//! `suppress`: holding back a table's updates (Kafka's `KTable#suppress`).
//!
//! The suppress node buffers the latest value of each key in an in-memory store with a
//! changelog (`<app-id>-<buffer>-changelog`, restored before the task runs, so buffered
//! updates survive restarts) and forwards a key's value when it is due by stream time:
//!
//! - [`Suppressed::until_window_closes`]: when the key's window closes (stream time reaches
//!   window end plus grace, for a session end plus inactivity gap plus grace, see
//!   [`window`](crate::streams::dsl::window)). Since a windowed aggregation drops records for
//!   closed windows, this emits exactly one final result per window. A window deleted before it
//!   closed (a session merged into another) was never emitted, so its tombstone is dropped, as
//!   Kafka's final results drop tombstones (`SuppressedInternal.safeToDropTombstones`;
//!   `KTableSuppressProcessorTest.finalResultsShouldDropTombstonesForSessionWindows`). Only for
//!   the table of a windowed aggregation, directly.
//! - [`Suppressed::until_time_limit`]: `limit` of stream time after the key's first buffered
//!   update (its record timestamp); later updates replace the value but do not restart the
//!   timer. At most one update per key per `limit`.
//!
//! Due keys are forwarded in due-time order (then key bytes), with the timestamp and the
//! [`Headers`](crate::streams::Headers) of their last update (as Kafka's buffer keeps each record's
//! context; not the headers of the record being processed when they are emitted), after each
//! record that reaches the node and whenever stream time advances.
//!
//! By default the buffer is unbounded (Kafka's `BufferConfig.unbounded()`): it holds one entry
//! per open window (or per key updated within the limit), however many that is. A
//! [`BufferConfig`] bounds it by entries and/or bytes (key plus buffered entry, headers
//! included) and says what happens when an update would overflow it:
//!
//! - [`BufferConfig::emit_early_when_full`]: the entries due first are forwarded ahead of time
//!   until the buffer fits again, so the limit is on memory, not on correctness of the values
//!   (a key emitted early may be emitted again later). Only for `until_time_limit`: emitting a
//!   window early would break `until_window_closes`' promise of one final result, so
//!   [`Builder::build`](crate::streams::Builder::build) refuses that combination (as Kafka's
//!   `StrictBufferConfig` does).
//! - [`BufferConfig::shut_down_when_full`] (the default for a bounded buffer): the update fails
//!   with [`StreamsProcessing`](crate::ErrorKind::StreamsProcessing) naming the buffer and its
//!   limit, which stops the application (see [`App`](crate::streams::App)) without committing the
//!   update; nothing is emitted early.
//!
//! **Where Riverbed differs from Kafka, on purpose** (checked against Kafka's
//! `SuppressScenarioTest` and `KTableSuppressProcessorTest`, translated in
//! `tests/streams/suppress_kafka.rs`):
//!
//! - Kafka's `BufferConfig.maxRecords(n)`/`maxBytes(n)` emit early unless told
//!   `shutDownWhenFull()`; Riverbed's [`BufferConfig::max_records`]/[`BufferConfig::max_bytes`]
//!   shut down unless told [`emit_early_when_full`](BufferConfig::emit_early_when_full). Kafka
//!   tells the two apart by type (an `EagerBufferConfig` does not compile with
//!   `untilWindowCloses`); Riverbed has one type, and the strict default is the one valid for
//!   both modes and never emits a value before it is due unless asked to.
//! - A byte bound counts the key and the buffered entry as stored (FORMAT.md 8.6), not Kafka's
//!   estimate of its in-memory objects, so the same `max_bytes` holds a different number of
//!   entries.
//! - A forwarded update's old value is the key's value as last forwarded by this node (what
//!   downstream saw), where Kafka forwards the old value of the key's latest upstream change
//!   (which downstream may never have seen): a table aggregation downstream subtracts the
//!   value it had added.
//! - A session's final result comes out when the session has closed, 1 ms of stream time after
//!   Kafka's suppression emits it (see [`SessionWindows`](crate::streams::SessionWindows)).
//! - Kafka's final results drop every tombstone; Riverbed's drop those of windows never
//!   emitted. The one other kind: a late record may join a closed session, already emitted,
//!   to one still open (the aggregation looks at the merged session only, as Kafka's does);
//!   Riverbed then forwards the closed session's tombstone, retracting its final result before
//!   the merged session's comes out, where Kafka leaves both standing.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{corrupt, Error, ErrorKind, Result};
use crate::record::HeaderIter;
use crate::streams::dsl::window::{split_windowed, CloseRule};
use crate::streams::dsl::{Change, Getter, KTable};
use crate::streams::headers::Headers;
use crate::streams::serde::Serde;
use crate::streams::state::store::UNKNOWN_TIMESTAMP;
use crate::streams::topology::processor::{
    Data, Processor, ProcessorContext, PunctuationType, StreamRecord,
};
use crate::streams::topology::StoreKind;

/// When a suppressed table forwards its updates; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suppressed {
    until: Until,
    name: Option<String>,
    buffer: BufferConfig,
}

/// How big a suppression buffer may grow, and what happens when an update would overflow it.
///
/// Unbounded by default. A bound counts buffered keys ([`max_records`](Self::max_records))
/// and/or bytes (key plus buffered entry with its headers, [`max_bytes`](Self::max_bytes)). When
/// an update would overflow it:
/// - [`shut_down_when_full`](Self::shut_down_when_full) (the default): the update fails with
///   [`StreamsProcessing`](crate::ErrorKind::StreamsProcessing) naming the buffer and its
///   limit, which stops the application without committing the update; nothing is emitted
///   early.
/// - [`emit_early_when_full`](Self::emit_early_when_full): the entries due first are forwarded
///   ahead of time until the buffer fits (a key emitted early may be emitted again later).
///   Only with [`Suppressed::until_time_limit`]: emitting a window early would break
///   [`Suppressed::until_window_closes`]' one final result per window, so
///   [`Builder::build`](crate::streams::Builder::build) refuses that combination (as Kafka's
///   `StrictBufferConfig` does).
///
/// ```
/// use std::time::Duration;
/// use riverbed::streams::{BufferConfig, Builder, Materialized, Suppressed, TopologyTestDriver};
///
/// // At most one update per user per minute, but never more than 2 users buffered.
/// let b = Builder::new("rate-limited");
/// b.table::<String, i64>("scores", Materialized::named("scores"))
///     .suppress(
///         Suppressed::until_time_limit(Duration::from_secs(60))
///             .with_buffer(BufferConfig::max_records(2).emit_early_when_full()),
///     )
///     .to_stream()
///     .to("scores-limited");
/// let mut d = TopologyTestDriver::new(b.build()?)?;
/// for (i, user) in ["ann", "bob", "cid"].into_iter().enumerate() {
///     d.pipe_input("scores", &user.to_string(), &10i64, 1_000 + i as i64)?;
/// }
/// // The third user overflowed the buffer: ann's update, due first, went out early.
/// let out = d.read_output::<String, i64>("scores-limited")?;
/// assert_eq!(out.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), ["ann"]);
/// # Ok::<(), riverbed::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferConfig {
    max_records: Option<usize>,
    max_bytes: Option<usize>,
    when_full: WhenFull,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WhenFull {
    EmitEarly,
    ShutDown,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig::unbounded()
    }
}

impl BufferConfig {
    /// No limit: the buffer holds whatever is not due yet. The default.
    pub fn unbounded() -> Self {
        BufferConfig {
            max_records: None,
            max_bytes: None,
            when_full: WhenFull::ShutDown,
        }
    }

    /// At most `n` buffered keys (shut down when full unless
    /// [`emit_early_when_full`](Self::emit_early_when_full)).
    pub fn max_records(n: usize) -> Self {
        BufferConfig::unbounded().with_max_records(n)
    }

    /// At most `n` bytes of buffered keys and entries (shut down when full unless
    /// [`emit_early_when_full`](Self::emit_early_when_full)).
    pub fn max_bytes(n: usize) -> Self {
        BufferConfig::unbounded().with_max_bytes(n)
    }

    /// Also limits the number of buffered keys to `n`.
    pub fn with_max_records(mut self, n: usize) -> Self {
        self.max_records = Some(n);
        self
    }

    /// Also limits the buffered bytes to `n`.
    pub fn with_max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = Some(n);
        self
    }

    /// When full, forward the entries due first ahead of time until the buffer fits.
    pub fn emit_early_when_full(mut self) -> Self {
        self.when_full = WhenFull::EmitEarly;
        self
    }

    /// When full, fail the update and stop the application. The default.
    pub fn shut_down_when_full(mut self) -> Self {
        self.when_full = WhenFull::ShutDown;
        self
    }

    fn overflows(&self, records: usize, bytes: usize) -> bool {
        self.max_records.is_some_and(|m| records > m) || self.max_bytes.is_some_and(|m| bytes > m)
    }
}

/// The longest time limit (2^62 ms); see [`Suppressed::until_time_limit`].
const MAX_TIME_LIMIT_MS: i64 = 1 << 62;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Until {
    WindowCloses,
    TimeLimit(i64),
}

impl Suppressed {
    /// One final result per window, when it closes.
    pub fn until_window_closes() -> Self {
        Suppressed {
            until: Until::WindowCloses,
            name: None,
            buffer: BufferConfig::unbounded(),
        }
    }

    /// At most one update per key per `limit` of stream time: the latest value, `limit` after
    /// the key's first buffered update.
    ///
    /// A limit longer than 2^62 ms (about 146 million years; `Duration::MAX`, say, for a
    /// buffer bounded only by its [`BufferConfig`]) counts as 2^62 ms: it never passes for
    /// real timestamps, and a key's due time (first update's timestamp + limit) stays exact,
    /// so keys emitted early still go out in the order of their first updates, as in Kafka
    /// (`SuppressScenarioTest.shouldSuppressIntermediateEventsWithRecordLimit`, whose limit
    /// is `Long.MAX_VALUE`), instead of all saturating at `i64::MAX` and going by key.
    pub fn until_time_limit(limit: Duration) -> Self {
        let ms = i64::try_from(limit.as_millis()).unwrap_or(i64::MAX);
        Suppressed {
            until: Until::TimeLimit(ms.min(MAX_TIME_LIMIT_MS)),
            name: None,
            buffer: BufferConfig::unbounded(),
        }
    }

    /// Names the buffer store (default `KTABLE-SUPPRESS-STATE-STORE-<n>`); its changelog is
    /// `<app-id>-<name>-changelog`. Unlike Kafka, which names the suppression node `<name>` and
    /// its store `<name>-store` (`SuppressTopologyTest.shouldApplyNameToSuppressionNode`), the
    /// name is the store's own and the node stays `KTABLE-SUPPRESS-<n>`: the changelog topic of
    /// a named buffer keeps the name it has always had, so existing applications restore from it.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Bounds the buffer (default [`BufferConfig::unbounded`]).
    pub fn with_buffer(mut self, buffer: BufferConfig) -> Self {
        self.buffer = buffer;
        self
    }
}

/// When a buffered key is due.
#[derive(Clone, Copy)]
enum Mode {
    WindowCloses(CloseRule),
    TimeLimit(i64),
}

impl<'b, K: Data + Serde, V: Data + Serde> KTable<'b, K, V> {
    /// This table's updates held back as `suppressed` says (see [`Suppressed`]). Each update
    /// forwarded carries the key's latest value and the value it had when last forwarded (as
    /// Kafka's), with the timestamp and headers of the key's latest update. The result has no store
    /// of its own ([`store_name`](KTable::store_name) is `None`); reading it (in a join, say) gives
    /// a key's value as last forwarded.
    ///
    /// [`Builder::build`](crate::streams::Builder::build) fails with
    /// [`InvalidArgument`](crate::ErrorKind::InvalidArgument) for
    /// [`until_window_closes`](Suppressed::until_window_closes) on a table that is not a
    /// windowed aggregation's.
    ///
    /// ```
    /// use std::time::Duration;
    /// use riverbed::streams::{Builder, Materialized, Suppressed, TimeWindows, TopologyTestDriver, Windowed};
    ///
    /// let b = Builder::new("final-counts");
    /// b.stream::<String, String>("clicks")
    ///     .group_by_key()
    ///     .windowed_by(TimeWindows::of_size_and_grace(Duration::from_secs(60), Duration::from_secs(5)))
    ///     .count(Materialized::named("counts"))
    ///     .suppress(Suppressed::until_window_closes())
    ///     .to_stream()
    ///     .to("final");
    /// let mut d = TopologyTestDriver::new(b.build()?)?;
    /// let alice = "alice".to_string();
    /// for ts in [1_000, 20_000, 62_000, 64_000] {
    ///     d.pipe_input("clicks", &alice, &"/".to_string(), ts)?;
    /// }
    /// assert!(d.read_output::<Windowed<String>, i64>("final")?.is_empty()); // within grace
    /// d.pipe_input("clicks", &alice, &"/".to_string(), 65_000)?; // [0, 60 s) closes
    /// let out = d.read_output::<Windowed<String>, i64>("final")?;
    /// assert_eq!(out.len(), 1);
    /// assert_eq!((out[0].key.window.start, out[0].value), (0, 2));
    /// # Ok::<(), riverbed::Error>(())
    /// ```
    pub fn suppress(&self, suppressed: Suppressed) -> KTable<'b, K, V> {
        let b = self.builder;
        if suppressed.until == Until::WindowCloses
            && suppressed.buffer.when_full == WhenFull::EmitEarly
        {
            b.fail(Error::invalid(
                "suppress(until_window_closes) cannot emit early when its buffer is full: that \
                 would emit more than one result per window; use shut_down_when_full or an \
                 unbounded buffer",
            ));
        }
        let limits = suppressed.buffer;
        let mode = match suppressed.until {
            Until::TimeLimit(ms) => Mode::TimeLimit(ms),
            Until::WindowCloses => match b.windowed.borrow().get(&self.node) {
                Some(rule) => Mode::WindowCloses(*rule),
                None => {
                    b.fail(Error::invalid(format!(
                        "suppress(until_window_closes) needs the table of a windowed \
                         aggregation, but {} is not one",
                        self.node
                    )));
                    Mode::TimeLimit(0)
                }
            },
        };
        let buffer = suppressed
            .name
            .unwrap_or_else(|| b.name("KTABLE-SUPPRESS-STATE-STORE"));
        let node = b.name("KTABLE-SUPPRESS");
        let store: Arc<str> = Arc::from(buffer.as_str());
        let upstream = Arc::clone(&self.getter);
        let buffer_name = buffer.clone();
        let getter: Getter<K, V> =
            Arc::new(move |lookup, k| match lookup(&buffer_name, &k.encode()?)? {
                // The value last forwarded; the buffer keeps the timestamp of the key's latest
                // update only, not of that value, so its timestamp is unknown.
                Some((entry, _)) => Ok(Change::<V>::decode(
                    read_entry(&buffer_name, &entry)?.change,
                )?
                .old
                .map(|v| (v, UNKNOWN_TIMESTAMP))),
                None => upstream(lookup, k),
            });
        b.add(|t| {
            t.add_store(&buffer, StoreKind::SuppressBuffer, false)?;
            t.add_processor::<_, K, Change<V>, K, Change<V>>(
                &node,
                move || Suppress {
                    mode,
                    limits,
                    store: Arc::clone(&store),
                    index: BTreeSet::new(),
                    bytes: 0,
                },
                &[&self.node],
            )
            .map(|_| ())
        });
        b.connect(&node, std::slice::from_ref(&buffer));
        KTable::new(b, node, None, getter)
            .reading(std::slice::from_ref(&buffer))
            .reading(&self.getter_stores)
    }
}

/// The suppress node. Buffer entries: key bytes -> `version (1) | due (8) | timestamp (8) |
/// headers | change`, the change holding the latest value and the value last forwarded (see
/// [`read_entry`]).
struct Suppress {
    mode: Mode,
    limits: BufferConfig,
    store: Arc<str>,
    /// Buffered keys by due time.
    index: BTreeSet<(i64, Vec<u8>)>,
    /// The buffer's size as [`BufferConfig::max_bytes`] counts it: keys plus entries.
    bytes: usize,
}

/// The layout version of a buffer entry, its first byte (FORMAT.md 8.6). Entries from before
/// the version existed began with their due time, whose top byte is 0 for any due time from
/// 1970 to the year 2.28 million (0xff before 1970, 0x7f for a saturated one), so they are told
/// apart from version 1 and refused (see [`read_entry`]).
const ENTRY_VERSION: u8 = 1;

/// The fixed part of an entry: version, due time, timestamp.
const ENTRY_FIXED_LEN: usize = 17;

/// A buffer entry, borrowing its bytes.
struct Entry<'a> {
    due: i64,
    timestamp: i64,
    /// The headers of the key's last update (checked: iterating them cannot fail).
    headers: HeaderIter<'a>,
    /// The `Change<V>` bytes: the latest value and the value last forwarded.
    change: &'a [u8],
}

/// Reads an entry of buffer `store`: `version (1) | due (i64) | timestamp (i64) | headers (as
/// in a record: FORMAT.md 3.3) | Change<V>`.
///
/// Entries of any other version, including the unversioned layout of earlier builds, are
/// refused rather than guessed at: that layout has no byte that tells it apart for certain
/// (its first byte is a due time's, which may be anything), and a guess would also read a
/// future version, or damaged bytes, as data.
///
/// # Errors
/// [`Corruption`](crate::ErrorKind::Corruption) naming the buffer, the byte of the entry and
/// what was expected there, for an entry that is too short, of another version or has
/// damaged headers.
fn read_entry<'a>(store: &str, bytes: &'a [u8]) -> Result<Entry<'a>> {
    let expected = |what: &str| format!("{what} of suppression buffer {store:?} (FORMAT.md 8.6)");
    match bytes.first() {
        Some(&ENTRY_VERSION) => {}
        Some(&found) => {
            return Err(corrupt(
                0,
                expected(&format!("an entry of layout version {ENTRY_VERSION}")),
                format!(
                    "layout version {found}; an entry of the unversioned layout of earlier \
                     builds starts with its due time (byte 0 for due times after 1970) and \
                     cannot be read back: reset the application's state (delete the changelog \
                     topic <app-id>-{store}-changelog and its streams/ checkpoint files)"
                ),
            ))
        }
        None => {
            return Err(corrupt(
                0,
                expected("a layout version byte"),
                "an empty entry",
            ))
        }
    }
    if bytes.len() < ENTRY_FIXED_LEN {
        return Err(corrupt(
            bytes.len() as u64,
            expected(&format!(
                "an entry of at least {ENTRY_FIXED_LEN} bytes (version, due time, timestamp)"
            )),
            format!("the end of a {}-byte entry", bytes.len()),
        ));
    }
    let (headers, change) = HeaderIter::split(&bytes[ENTRY_FIXED_LEN..]).map_err(|e| {
        let (position, what, found) = match e.kind() {
            ErrorKind::Corruption {
                position,
                expected,
                found,
                ..
            } => (*position, expected.clone(), found.clone()),
            other => (0, "headers".to_string(), format!("{other:?}")),
        };
        corrupt(
            ENTRY_FIXED_LEN as u64 + position,
            expected(&format!(
                "entry headers as in a record (FORMAT.md 3.3): {what}"
            )),
            found,
        )
    })?;
    Ok(Entry {
        due: i64::decode(&bytes[1..9])?,
        timestamp: i64::decode(&bytes[9..ENTRY_FIXED_LEN])?,
        headers,
        change,
    })
}

impl Suppress {
    /// Forwards (and removes) every buffered key due at `now`, then, if the buffer is over
    /// its limits and may emit early, the keys due first until it fits.
    fn evict<K: Data + Serde, V: Data + Serde>(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        now: i64,
    ) -> Result<()> {
        while let Some((due, _)) = self.index.first() {
            let over = self.limits.when_full == WhenFull::EmitEarly
                && self.limits.overflows(self.index.len(), self.bytes);
            if *due > now && !over {
                break;
            }
            let Some((_, key)) = self.index.pop_first() else {
                break;
            };
            let Some(entry) = ctx.raw_store(&self.store)?.delete(&key) else {
                continue;
            };
            self.bytes = self.bytes.saturating_sub(key.len() + entry.len());
            let e = read_entry(&self.store, &entry)?;
            let change = Change::<V>::decode(e.change)?;
            if self.drops_tombstone(&change) {
                continue;
            }
            // The record carries its own headers, not those of the record being processed.
            let record = StreamRecord::new(K::decode(&key)?, change, e.timestamp);
            ctx.forward_with_headers(record, Headers::read(e.headers)?);
        }
        Ok(())
    }
}

impl Suppress {
    /// Whether an evicted `change` is a final result's tombstone for a window downstream never
    /// saw (the window was merged away or deleted before it closed, like a session another
    /// record merged into a larger one): nothing to delete, so it is not forwarded. Kafka drops
    /// every tombstone in final-results mode (`SuppressedInternal.safeToDropTombstones`, true for
    /// `untilWindowCloses` only); Riverbed drops exactly those whose window was never
    /// forwarded. The others retract a final result: a late record can join a session that has
    /// closed (and come out) to one still open, and Riverbed tells downstream the closed one is
    /// gone, where Kafka leaves its final result standing next to the merged session's.
    /// `until_time_limit` forwards tombstones, as Kafka's does.
    fn drops_tombstone<V>(&self, change: &Change<V>) -> bool {
        matches!(self.mode, Mode::WindowCloses(_)) && change.new.is_none() && change.old.is_none()
    }
}

impl<K: Data + Serde, V: Data + Serde> Processor<K, Change<V>> for Suppress {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<()> {
        self.index.clear();
        self.bytes = 0;
        for (k, v) in ctx.raw_store(&self.store)?.data.iter() {
            self.index
                .insert((read_entry(&self.store, v)?.due, k.clone()));
            self.bytes += k.len() + v.len();
        }
        // Evict whenever stream time moves, even if no update reaches this node.
        ctx.schedule(Duration::from_millis(1), PunctuationType::StreamTime);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        r: StreamRecord<K, Change<V>>,
    ) -> Result<()> {
        let now = ctx.stream_time().unwrap_or(r.timestamp);
        let kb = r.key.encode()?;
        // The key's latest update's headers replace those of an earlier update (a shared copy).
        let headers = ctx.headers().clone();
        let state = ctx.raw_store(&self.store)?;
        // An update of a buffered key keeps its due time and the value last forwarded.
        let (due, forwarded, replaced) = match state.data.get(&kb) {
            Some(entry) => {
                let e = read_entry(&self.store, entry)?;
                (
                    e.due,
                    Change::<V>::decode(e.change)?.old,
                    kb.len() + entry.len(),
                )
            }
            None => {
                let due = match self.mode {
                    Mode::WindowCloses(rule) => rule.close(split_windowed(&kb)?.1),
                    Mode::TimeLimit(limit) => r.timestamp.saturating_add(limit),
                };
                (due, r.value.old, 0)
            }
        };
        let mut entry = vec![ENTRY_VERSION];
        entry.extend(due.encode()?);
        entry.extend(r.timestamp.encode()?);
        headers.write(&mut entry);
        entry.extend(Change::new(r.value.new, forwarded).encode()?);
        let bytes = self.bytes - replaced + kb.len() + entry.len();
        let records = self.index.len() + usize::from(replaced == 0);
        if self.limits.when_full == WhenFull::ShutDown && self.limits.overflows(records, bytes) {
            // Fail before buffering: the update is not committed, and is processed again after
            // a restart (with a larger buffer, or once the window closes).
            return Err(Error::invalid(format!(
                "suppression buffer {:?} is full: {records} keys / {bytes} bytes with this \
                 update, limit {} keys / {} bytes (BufferConfig::shut_down_when_full)",
                self.store,
                limit_text(self.limits.max_records),
                limit_text(self.limits.max_bytes),
            )));
        }
        state.put(kb.clone(), entry);
        self.bytes = bytes;
        self.index.insert((due, kb));
        self.evict(ctx, now)
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        _kind: PunctuationType,
        timestamp: i64,
    ) -> Result<()> {
        self.evict(ctx, timestamp)
    }
}

fn limit_text(limit: Option<usize>) -> String {
    limit.map_or_else(|| "unlimited".to_string(), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry as FORMAT.md 8.6 lays it out, byte by byte: version 1, due time, timestamp,
    /// `header_count` and the headers as in a record (3.3), the change.
    fn documented_entry() -> Vec<u8> {
        let mut e = vec![1];
        e.extend([0, 0, 0, 0, 0, 0, 0x03, 0xe8]); // due 1000, big-endian
        e.extend([0, 0, 0, 0, 0, 0, 0x03, 0x84]); // timestamp 900
        e.push(2); // two headers
        e.extend([5, b't', b'r', b'a', b'c', b'e', 2, b'x']); // "trace" = "x" (zigzag 1 -> 2)
        e.extend([1, b'n', 1]); // "n" = null (zigzag -1 -> 1)
        e.extend([1, 0, 0, 0, 0, 0, 0, 0, 7]); // Change<i64>: new value only, 7
        e
    }

    #[test]
    fn an_entry_reads_as_documented_and_headers_encode_as_in_a_record() {
        let bytes = documented_entry();
        let e = read_entry("buf", &bytes).unwrap();
        assert_eq!((e.due, e.timestamp), (1_000, 900));
        let headers = Headers::read(e.headers).unwrap();
        let mut want = Headers::new();
        want.add("trace", "x").add_nullable("n", None);
        assert_eq!(headers, want);
        assert_eq!(
            Change::<i64>::decode(e.change).unwrap(),
            Change::new(Some(7), None)
        );
        // What the buffer writes for these headers is what it reads.
        let mut written = Vec::new();
        want.write(&mut written);
        assert_eq!(written, bytes[17..bytes.len() - 9]);
    }

    fn refused(bytes: &[u8]) -> String {
        let err = match read_entry("buf", bytes) {
            Ok(_) => panic!("{bytes:?} was read as an entry"),
            Err(e) => e,
        };
        assert!(
            matches!(err.kind(), ErrorKind::Corruption { .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("suppression buffer \"buf\""), "{text}");
        text
    }

    #[test]
    fn unversioned_short_and_damaged_entries_are_refused_naming_the_buffer() {
        let good = documented_entry();
        // The unversioned layout: due time first (top byte 0), no headers.
        let mut old = Vec::new();
        old.extend([0, 0, 0, 0, 0, 0, 0x03, 0xe8]);
        old.extend([0, 0, 0, 0, 0, 0, 0x03, 0x84]);
        old.extend([1, 0, 0, 0, 0, 0, 0, 0, 7]);
        assert!(refused(&old).contains("found layout version 0"));
        // A due time before 1970, a saturated one, a later version.
        for first in [0xff, 0x7f, 2] {
            let mut e = good.clone();
            e[0] = first;
            assert!(refused(&e).contains(&format!("found layout version {first}")));
        }
        assert!(refused(&[]).contains("an empty entry"));
        for len in 1..17 {
            assert!(refused(&good[..len]).contains("at least 17 bytes"));
        }
        // Headers: none where one is announced, a key running past the end, a key that is not
        // UTF-8, a value length past the end.
        for damaged in [
            vec![1],
            vec![1, 40, b'k'],
            vec![1, 2, 0xff, 0xfe, 0],
            vec![1, 1, b'k', 40, 1],
        ] {
            let mut e = good[..17].to_vec();
            e.extend(damaged);
            assert!(refused(&e).contains("entry headers as in a record"));
        }
    }

    proptest::proptest! {
        /// Random bytes after a version byte: refused or read, never a panic.
        #[test]
        fn random_entries_are_read_or_refused(tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let mut e = vec![ENTRY_VERSION];
            e.extend(tail);
            if let Ok(entry) = read_entry("buf", &e) {
                Headers::read(entry.headers).unwrap();
            }
        }
    }

    #[test]
    fn no_bytes_make_reading_an_entry_panic() {
        let good = documented_entry();
        // Every truncation and every single-byte change of a good entry, and the entry with
        // garbage after its headers' announced count.
        for len in 0..=good.len() {
            let _ = read_entry("buf", &good[..len]);
        }
        for i in 0..good.len() {
            for b in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut e = good.clone();
                e[i] = b;
                if let Ok(entry) = read_entry("buf", &e) {
                    // Whatever passes the check reads without error.
                    Headers::read(entry.headers).unwrap();
                }
            }
        }
    }
}
