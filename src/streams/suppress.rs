//! `suppress`: holding back a table's updates (Kafka's `KTable#suppress`).
//!
//! The suppress node buffers the latest value of each key in an in-memory store with a
//! changelog (`<app-id>-<buffer>-changelog`, restored before the task runs, so buffered
//! updates survive restarts) and forwards a key's value when it is due by stream time:
//!
//! - [`Suppressed::until_window_closes`]: when the key's window closes (stream time reaches
//!   window end plus grace, see [`window`](super::window)). Since a windowed aggregation drops
//!   records for closed windows, this emits exactly one final result per window. Only for the
//!   table of a windowed aggregation, directly.
//! - [`Suppressed::until_time_limit`]: `limit` of stream time after the key's first buffered
//!   update (its record timestamp); later updates replace the value but do not restart the
//!   timer. At most one update per key per `limit`.
//!
//! Due keys are forwarded in due-time order (then key bytes), with the timestamp of their last
//! update, after each record that reaches the node and whenever stream time advances.
//!
//! By default the buffer is unbounded (Kafka's `BufferConfig.unbounded()`): it holds one entry
//! per open window (or per key updated within the limit), however many that is. A
//! [`BufferConfig`] bounds it by entries and/or bytes (key plus buffered entry) and says what
//! happens when an update would overflow it:
//!
//! - [`BufferConfig::emit_early_when_full`]: the entries due first are forwarded ahead of time
//!   until the buffer fits again, so the limit is on memory, not on correctness of the values
//!   (a key emitted early may be emitted again later). Only for `until_time_limit`: emitting a
//!   window early would break `until_window_closes`' promise of one final result, so
//!   [`Builder::build`](super::Builder::build) refuses that combination (as Kafka's
//!   `StrictBufferConfig` does).
//! - [`BufferConfig::shut_down_when_full`] (the default for a bounded buffer): the update fails
//!   with [`StreamsProcessing`](crate::ErrorKind::StreamsProcessing) naming the buffer and its
//!   limit, which stops the application (see [`App`](super::App)) without committing the
//!   update; nothing is emitted early.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::dsl::{Change, Getter, KTable};
use super::processor::{Data, Processor, ProcessorContext, PunctuationType, StreamRecord};
use super::serde::{deserialization_error, Serde};
use super::window::{split_windowed, CloseRule};
use crate::error::{Error, Result};

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
/// and/or bytes (key plus buffered entry, [`max_bytes`](Self::max_bytes)). When an update would
/// overflow it:
/// - [`shut_down_when_full`](Self::shut_down_when_full) (the default): the update fails with
///   [`StreamsProcessing`](crate::ErrorKind::StreamsProcessing) naming the buffer and its
///   limit, which stops the application without committing the update; nothing is emitted
///   early.
/// - [`emit_early_when_full`](Self::emit_early_when_full): the entries due first are forwarded
///   ahead of time until the buffer fits (a key emitted early may be emitted again later).
///   Only with [`Suppressed::until_time_limit`]: emitting a window early would break
///   [`Suppressed::until_window_closes`]' one final result per window, so
///   [`Builder::build`](super::Builder::build) refuses that combination (as Kafka's
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
    pub fn until_time_limit(limit: Duration) -> Self {
        Suppressed {
            until: Until::TimeLimit(i64::try_from(limit.as_millis()).unwrap_or(i64::MAX)),
            name: None,
            buffer: BufferConfig::unbounded(),
        }
    }

    /// Names the buffer store (default `KTABLE-SUPPRESS-STATE-STORE-<n>`); its changelog is
    /// `<app-id>-<name>-changelog`.
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
    /// Kafka's). The result has no store of its own ([`store_name`](KTable::store_name) is
    /// `None`); reading it (in a join, say) gives a key's value as last forwarded.
    ///
    /// [`Builder::build`](super::Builder::build) fails with
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
                Some(entry) => Ok(Change::<V>::decode(header(&entry)?.2)?.old),
                None => upstream(lookup, k),
            });
        b.add(|t| {
            t.add_state_store(&buffer)?;
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

/// The suppress node. Buffer entries: key bytes -> `due (8) | timestamp (8) | change`, the
/// change holding the latest value and the value last forwarded.
struct Suppress {
    mode: Mode,
    limits: BufferConfig,
    store: Arc<str>,
    /// Buffered keys by due time.
    index: BTreeSet<(i64, Vec<u8>)>,
    /// The buffer's size as [`BufferConfig::max_bytes`] counts it: keys plus entries.
    bytes: usize,
}

fn header(bytes: &[u8]) -> Result<(i64, i64, &[u8])> {
    if bytes.len() < 16 {
        return Err(deserialization_error(format!(
            "suppress buffer entry: expected at least 16 bytes, found {}",
            bytes.len()
        )));
    }
    Ok((
        i64::decode(&bytes[..8])?,
        i64::decode(&bytes[8..16])?,
        &bytes[16..],
    ))
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
            let (_, ts, value) = header(&entry)?;
            let change = Change::<V>::decode(value)?;
            ctx.forward(StreamRecord::new(K::decode(&key)?, change, ts));
        }
        Ok(())
    }
}

impl<K: Data + Serde, V: Data + Serde> Processor<K, Change<V>> for Suppress {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<()> {
        self.index.clear();
        self.bytes = 0;
        for (k, v) in ctx.raw_store(&self.store)?.data.iter() {
            self.index.insert((header(v)?.0, k.clone()));
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
        let state = ctx.raw_store(&self.store)?;
        // An update of a buffered key keeps its due time and the value last forwarded.
        let (due, forwarded, replaced) = match state.data.get(&kb) {
            Some(entry) => {
                let (due, _, change) = header(entry)?;
                (
                    due,
                    Change::<V>::decode(change)?.old,
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
        let mut entry = Vec::with_capacity(16);
        entry.extend(due.encode()?);
        entry.extend(r.timestamp.encode()?);
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
