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
//! update, after each record that reaches the node and whenever stream time advances. The
//! buffer is unbounded (Kafka's `BufferConfig.unbounded()`): it holds at most one entry per
//! open window (or per key updated within the limit).

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
        }
    }

    /// At most one update per key per `limit` of stream time: the latest value, `limit` after
    /// the key's first buffered update.
    pub fn until_time_limit(limit: Duration) -> Self {
        Suppressed {
            until: Until::TimeLimit(i64::try_from(limit.as_millis()).unwrap_or(i64::MAX)),
            name: None,
        }
    }

    /// Names the buffer store (default `KTABLE-SUPPRESS-STATE-STORE-<n>`); its changelog is
    /// `<app-id>-<name>-changelog`.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
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
            Arc::new(move |lookup, k| match lookup(&buffer_name, &k.encode())? {
                Some(entry) => Ok(Change::<V>::decode(header(&entry)?.2)?.old),
                None => upstream(lookup, k),
            });
        b.add(|t| {
            t.add_state_store(&buffer)?;
            t.add_processor::<_, K, Change<V>, K, Change<V>>(
                &node,
                move || Suppress {
                    mode,
                    store: Arc::clone(&store),
                    index: BTreeSet::new(),
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
    store: Arc<str>,
    /// Buffered keys by due time.
    index: BTreeSet<(i64, Vec<u8>)>,
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
    /// Forwards (and removes) every buffered key due at `now`.
    fn evict<K: Data + Serde, V: Data + Serde>(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        now: i64,
    ) -> Result<()> {
        while let Some((due, _)) = self.index.first() {
            if *due > now {
                break;
            }
            let Some((_, key)) = self.index.pop_first() else {
                break;
            };
            let Some(entry) = ctx.raw_store(&self.store)?.delete(&key) else {
                continue;
            };
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
        for (k, v) in &ctx.raw_store(&self.store)?.data {
            self.index.insert((header(v)?.0, k.clone()));
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
        let kb = r.key.encode();
        let state = ctx.raw_store(&self.store)?;
        // An update of a buffered key keeps its due time and the value last forwarded.
        let (due, forwarded) = match state.data.get(&kb) {
            Some(entry) => {
                let (due, _, change) = header(entry)?;
                (due, Change::<V>::decode(change)?.old)
            }
            None => {
                let due = match self.mode {
                    Mode::WindowCloses(rule) => rule.close(split_windowed(&kb)?.1),
                    Mode::TimeLimit(limit) => r.timestamp.saturating_add(limit),
                };
                (due, r.value.old)
            }
        };
        let mut entry = Vec::with_capacity(16);
        entry.extend(due.encode());
        entry.extend(r.timestamp.encode());
        entry.extend(Change::new(r.value.new, forwarded).encode());
        state.put(kb.clone(), entry);
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
