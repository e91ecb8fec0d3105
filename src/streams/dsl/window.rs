//! Windows: the window specifications ([`TimeWindows`], [`SlidingWindows`],
//! [`SessionWindows`]), windowed keys ([`Windowed`]) and the read-only view of a window store
//! ([`ReadOnlyWindowStore`]).
//!
//! **Event time.** Windows go by the records' timestamps (set by each source's timestamp
//! extractor, see [`Consumed`](crate::streams::Consumed)), not by when records arrive. A task's
//! *stream time* is the largest timestamp it has seen.
//!
//! **Grace and lateness.** A window accepts records until stream time reaches its *close time*,
//! `end + grace` (for sliding and session windows, whose `end` is inclusive, `end + 1 + grace`;
//! a session also waits out its inactivity gap: `end + gap + 1 + grace`, see [`SessionWindows`]).
//! A record whose windows have all closed is dropped: it is logged (a warning, target
//! `riverbed::streams`) and counted in
//! [`StreamsMetrics::dropped_records`](crate::streams::StreamsMetrics::dropped_records), never
//! silently ignored. So is a record with a negative timestamp, which belongs to no window.
//!
//! **Drops are counted per window, as in Kafka.** A record that falls into closed windows as
//! well as open ones (hopping windows, sliding windows) updates the open ones and counts one
//! dropped record for each closed one, and a record with every window closed counts once per
//! window (time windows; Kafka's `KStreamWindowAggregate` logs and meters each expired window)
//! or once (sliding windows, whose whole-record check comes first in Kafka's
//! `KStreamSlidingWindowAggregate`).
//!
//! **Stores.** A windowed aggregation keeps one entry per window in an in-memory store whose
//! keys are [`Windowed`] keys, backed by the compacted changelog topic
//! `<app-id>-<store>-changelog` and restored from it before the task runs, like a key-value
//! store. A window stays in the store for the spec's retention (default one day) after it
//! closed, then is deleted (a tombstone in the changelog); downstream is not told. The store
//! also keeps the aggregation's stream time, so a restarted task does not reopen closed windows.

use std::time::Duration;

use crate::error::{Error, Result};
pub(crate) use crate::streams::state::window_store::{split_windowed, windowed_bytes};
pub use crate::streams::state::window_store::{ReadOnlyWindowStore, Window, Windowed};

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// When a window closes: `end (+1 if inclusive) + grace`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CloseRule {
    pub grace: i64,
    pub inclusive_end: bool,
}

impl CloseRule {
    /// The stream time at which `w` closes (accepts no more records).
    pub fn close(&self, w: Window) -> i64 {
        w.end
            .saturating_add(i64::from(self.inclusive_end))
            .saturating_add(self.grace)
    }
}

/// Fixed-size windows by event time: tumbling (the default, windows one after another) or
/// hopping ([`advance_by`](Self::advance_by) less than the size, so windows overlap and a
/// record counts in each window that holds it). Kafka's `TimeWindows`.
///
/// Windows are `[start, start + size)` with `start` a multiple of the advance, from 0 on.
///
/// ```
/// use std::time::Duration;
/// use riverbed::streams::{Builder, Materialized, Serde, TimeWindows, TopologyTestDriver, Windowed};
///
/// let b = Builder::new("clicks-per-minute");
/// b.stream::<String, String>("clicks")
///     .group_by_key()
///     .windowed_by(TimeWindows::of_size_and_grace(Duration::from_secs(60), Duration::from_secs(10)))
///     .count(Materialized::named("per-minute"))
///     .to_stream()
///     .to("counts");
/// let mut d = TopologyTestDriver::new(b.build()?)?;
/// for ts in [1_000, 59_000, 61_000, 30_000 /* late, within grace */, 75_000, 20_000 /* too late */] {
///     d.pipe_input("clicks", &"alice".to_string(), &"/".to_string(), ts)?;
/// }
/// let store = d.window_store::<String, i64>("per-minute")?;
/// let counts: Vec<(i64, i64)> =
///     store.fetch("alice", 0, 120_000)?.into_iter().map(|(w, n)| (w.start, n)).collect();
/// assert_eq!(counts, [(0, 3), (60_000, 2)]);
/// assert_eq!(d.metrics().dropped_records, 1);
/// # Ok::<(), riverbed::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWindows {
    pub(crate) size: i64,
    pub(crate) advance: i64,
    pub(crate) grace: i64,
    pub(crate) retention: i64,
}

impl TimeWindows {
    /// Tumbling windows of `size` with no grace period: a record for a window that stream time
    /// has passed is dropped.
    pub fn of_size_with_no_grace(size: Duration) -> Self {
        Self::of_size_and_grace(size, Duration::ZERO)
    }

    /// Tumbling windows of `size` that accept out-of-order records until stream time passes
    /// window end + `grace`.
    pub fn of_size_and_grace(size: Duration, grace: Duration) -> Self {
        let size = millis(size);
        TimeWindows {
            size,
            advance: size,
            grace: millis(grace),
            retention: DAY_MS,
        }
    }

    /// Hopping windows: a new window starts every `advance` (which must be positive and at most
    /// the size; checked when the windowed stream is built).
    pub fn advance_by(mut self, advance: Duration) -> Self {
        self.advance = millis(advance);
        self
    }

    /// How long a window stays in the store (for interactive queries) after it closed.
    /// Default: one day.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = millis(retention);
        self
    }

    /// The windows holding `timestamp` (none for a negative one), by start.
    pub fn windows_for(&self, timestamp: i64) -> Vec<Window> {
        let mut out = Vec::new();
        if timestamp < 0 || self.validate().is_err() {
            return out;
        }
        let mut start = (timestamp - self.size + self.advance).max(0) / self.advance * self.advance;
        while start <= timestamp {
            out.push(Window::new(start, start.saturating_add(self.size)));
            start += self.advance;
        }
        out
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.size <= 0 {
            return Err(Error::invalid("TimeWindows: the size must be positive"));
        }
        if self.advance <= 0 || self.advance > self.size {
            return Err(Error::invalid(format!(
                "TimeWindows: the advance ({} ms) must be positive and at most the size ({} ms)",
                self.advance, self.size
            )));
        }
        Ok(())
    }

    pub(crate) fn close_rule(&self) -> CloseRule {
        CloseRule {
            grace: self.grace,
            inclusive_end: false,
        }
    }
}

/// Sliding windows (Kafka's `SlidingWindows`): windows of records at most `time_difference`
/// apart, aligned to the records rather than to the epoch.
///
/// Windows are inclusive at both ends (`[start, start + time_difference]`). The windows of a
/// key are, as in Kafka's `KStreamSlidingWindowAggregate`, for each record at `t` its *left*
/// window `[t - d, t]` and, if it holds a later record, its *right* window `[t + 1, t + 1 + d]`
/// — so every distinct set of records within `d` of each other gets one window. A record
/// earlier than `d` would have a left window starting before 0; like Kafka, all such records
/// share the window `[0, d]`. Each window's aggregate is the fold of its records in arrival
/// order, and its result carries the latest timestamp among them.
///
/// **Lateness.** A window is open while `end >= stream time - grace` (Kafka 3.2 and later,
/// KAFKA-13739). A record is dropped only when even the latest window that could hold it,
/// `[t, t + d]`, has closed (`t + d < stream time - grace`): a late record whose own left
/// window has closed still updates the later windows holding it that are open, and creates
/// its right window (issue 13: difference 5, grace 15, records at 10, 24, 5: the record at 5
/// counts in `[5, 10]`). Each window the record would have updated or created but that has
/// closed counts one dropped record, as Kafka logs and meters each (see
/// [`StreamsMetrics::dropped_records`](crate::streams::StreamsMetrics::dropped_records)).
///
/// **Which windows exist.** A record updates the stored windows that hold it, then creates
/// the windows Kafka creates: the previous record's right window (Kafka finds the previous
/// record through the stored window ending at or just before the record), its own left window
/// and its own right window. The results and their order are Kafka's (its unit tests, in
/// `tests/streams/sliding_kafka.rs`). One deliberate difference: Kafka builds a new window by
/// copying the aggregate and latest timestamp of a neighbouring stored window, which misses a
/// record that arrived after that neighbour had closed (such a record is then in no window of
/// Kafka's, although one that holds it is open). Riverbed keeps the raw records (in a second
/// store, `<store>-records`, with its own changelog, until no window that a record still
/// accepted could consult holds them), so it computes a new window from the records within it
/// and a neighbour's latest timestamp from its records; so `V` must have a
/// [`Serde`](crate::streams::Serde).
///
/// **Retention.** A window stays in the store `retention` after it closes (default one day),
/// and never less than `2 * difference` after, since an accepted record consults the windows
/// starting from `2 * difference` before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlidingWindows {
    pub(crate) difference: i64,
    pub(crate) grace: i64,
    pub(crate) retention: i64,
}

impl SlidingWindows {
    /// Sliding windows of records at most `difference` apart, with no grace period.
    pub fn of_time_difference_with_no_grace(difference: Duration) -> Self {
        Self::of_time_difference_and_grace(difference, Duration::ZERO)
    }

    /// Sliding windows of records at most `difference` apart, accepting out-of-order records
    /// until stream time passes window end + `grace`.
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> Self {
        SlidingWindows {
            difference: millis(difference),
            grace: millis(grace),
            retention: DAY_MS,
        }
    }

    /// How long a window stays in the store after it closed. Default: one day.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = millis(retention);
        self
    }

    pub(crate) fn close_rule(&self) -> CloseRule {
        CloseRule {
            grace: self.grace,
            inclusive_end: true,
        }
    }
}

/// Session windows (Kafka's `SessionWindows`): a key's records closer than the inactivity gap
/// form one session `[first, last]` (inclusive). A record that falls within the gap of several
/// sessions merges them into one: the merged-away sessions are deleted from the aggregation's
/// table (so
/// [`KTable::to_stream_with_tombstones`](crate::streams::KTable::to_stream_with_tombstones) gives
/// `None` for each, a tombstone when written to a topic), then the merged session is updated with
/// its aggregate.
///
/// A session closes when stream time passes its end + inactivity gap + grace, that is at
/// stream time `end + gap + 1 + grace`: a record is dropped if the session it would make (after
/// merging) has closed, and
/// [`Suppressed::until_window_closes`](crate::streams::Suppressed::until_window_closes) emits the
/// session then. This is Kafka's rule (`KStreamSessionWindowAggregate`: a record is skipped
/// when its merged session's end < stream time − grace − gap): until the gap has passed, a new
/// record could still extend the session, so grace only starts counting after it. Kafka's
/// suppression emits a session 1 ms of stream time earlier (once `end ≤ stream time − gap −
/// grace`), while its aggregation still accepts a record into the session, which can then be
/// emitted a second time; Riverbed emits it once it has closed, so exactly once.
///
/// Only the merged session counts, in Kafka as here: a late record can still join a session
/// that has closed to one that has not (gap 15, grace 48: sessions `[0,0]` and `[45,45]`, stream
/// time 78, a record at 15 makes `[0,15]`, open until 79). The closed session is then deleted
/// like any merged one, and `until_window_closes` forwards its tombstone, retracting the final
/// result it had emitted (Kafka's suppression drops that tombstone).
///
/// A record that lands in an existing session, or that joins several, first deletes every
/// session it merges (a tombstone each, carrying the old aggregate), then writes the merged
/// session, as Kafka does without a record cache (`KStreamSessionWindowAggregateProcessorTest`
/// `shouldImmediatelyForwardRemovedSessionsWhenMerging`, `SuppressScenarioTest`
/// `shouldSupportFinalResultsForSessionWindows`): even a session whose bounds do not change is
/// deleted and written again. The one exception, also Kafka's, is a record at the same time as
/// a single-record session `[t, t]`: the session is updated in place (its update carries the
/// old aggregate, where Kafka's uncached update carries none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionWindows {
    pub(crate) gap: i64,
    pub(crate) grace: i64,
    pub(crate) retention: i64,
}

impl SessionWindows {
    /// Sessions split by `gap` of inactivity (at least 1 ms; checked when the windowed stream
    /// is built), with no grace period.
    pub fn of_inactivity_gap_with_no_grace(gap: Duration) -> Self {
        Self::of_inactivity_gap_and_grace(gap, Duration::ZERO)
    }

    /// Sessions split by `gap` of inactivity, accepting out-of-order records until stream time
    /// passes session end + `grace`.
    pub fn of_inactivity_gap_and_grace(gap: Duration, grace: Duration) -> Self {
        SessionWindows {
            gap: millis(gap),
            grace: millis(grace),
            retention: DAY_MS,
        }
    }

    /// How long a session stays in the store after it closed. Default: one day.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = millis(retention);
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.gap <= 0 {
            return Err(Error::invalid(
                "SessionWindows: the inactivity gap must be positive",
            ));
        }
        Ok(())
    }

    /// A session's close rule: its end is inclusive and it waits out the inactivity gap before
    /// its grace period, so it closes at `end + 1 + gap + grace` (Kafka's
    /// `windowCloseTime = streamTime - grace - gap`; and, for `suppress`, `GraphGraceSearchUtil`
    /// giving a session aggregation's grace as `grace + gap`).
    pub(crate) fn close_rule(&self) -> CloseRule {
        CloseRule {
            grace: self.grace.saturating_add(self.gap),
            inclusive_end: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hopping_windows_for() {
        let w = TimeWindows::of_size_with_no_grace(Duration::from_millis(10))
            .advance_by(Duration::from_millis(5));
        assert_eq!(w.windows_for(12), [Window::new(5, 15), Window::new(10, 20)]);
        assert_eq!(w.windows_for(3), [Window::new(0, 10)]);
        assert!(w.windows_for(-1).is_empty());
    }
}
