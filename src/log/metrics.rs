//! A log's metrics: the counters it keeps as it works (relaxed atomics, no locks on the hot
//! path) and the snapshot types [`Log::metrics`](crate::Log::metrics) returns. The store-wide
//! report (`Store::metrics`) is built from these above, in `store::metrics`.
//!
//! Counters are cumulative since the log was opened; a rate is the difference of two snapshots
//! over the time between them ([`LogMetrics::append_rate`]), or the average since open when
//! compared with nothing. The snapshot structs are `#[non_exhaustive]`, so that figures of parts
//! still to come (the log cleaner's progress, stream processing) can be added without a break.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Buckets of the latency histogram: 4 linear ones below 4 µs, then 4 per power of two.
const BUCKETS: usize = 4 + 62 * 4;

/// A latency histogram with about 19% resolution (four buckets per power of two microseconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyHistogram {
    buckets: Vec<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> LatencyHistogram {
        LatencyHistogram {
            buckets: vec![0; BUCKETS],
        }
    }
}

fn bucket_of(micros: u64) -> usize {
    if micros < 4 {
        return micros as usize;
    }
    let exp = 63 - micros.leading_zeros() as usize; // >= 2
    let sub = ((micros >> (exp - 2)) & 3) as usize;
    (4 + (exp - 2) * 4 + sub).min(BUCKETS - 1)
}

/// The smallest value (µs) of bucket `i`.
fn bucket_floor(i: usize) -> u64 {
    if i < 4 {
        return i as u64;
    }
    let exp = (i - 4) / 4 + 2;
    let sub = ((i - 4) % 4) as u64;
    (1u64 << exp) + (sub << (exp - 2))
}

impl LatencyHistogram {
    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The latency below which a fraction `q` (0.0..=1.0) of the samples lie, to the bucket's
    /// resolution (its upper bound); zero without samples.
    pub fn percentile(&self, q: f64) -> Duration {
        let n = self.count();
        if n == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let upper = if i + 1 < BUCKETS {
                    bucket_floor(i + 1)
                } else {
                    u64::MAX
                };
                return Duration::from_micros(upper);
            }
        }
        Duration::from_micros(u64::MAX)
    }

    /// The buckets holding samples, as (bucket index, count): the histogram's compact form in
    /// files other processes read (`store::server_metrics`).
    pub(crate) fn nonzero_buckets(&self) -> Vec<(usize, u64)> {
        self.buckets
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| (i, *c))
            .collect()
    }

    /// The histogram of [`nonzero_buckets`](Self::nonzero_buckets); `None` for an index out of
    /// range (a damaged or foreign file).
    pub(crate) fn from_buckets(buckets: &[(usize, u64)]) -> Option<LatencyHistogram> {
        let mut h = LatencyHistogram::default();
        for &(i, c) in buckets {
            *h.buckets.get_mut(i)? += c;
        }
        Some(h)
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
    }
}

/// The live form of [`LatencyHistogram`].
pub(crate) struct AtomicHistogram {
    buckets: Box<[AtomicU64]>,
}

impl Default for AtomicHistogram {
    fn default() -> AtomicHistogram {
        AtomicHistogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl AtomicHistogram {
    pub fn record(&self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        if let Some(b) = self.buckets.get(bucket_of(micros)) {
            b.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> LatencyHistogram {
        LatencyHistogram {
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

/// The read counters of a log, aligned to a cache line pair (128 bytes: adjacent-line
/// prefetching pulls lines in pairs on x86).
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct ReadCounters {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
}

/// Counters one log keeps.
pub(crate) struct LogCounters {
    pub opened: Instant,
    pub appended_records: AtomicU64,
    pub appended_bytes: AtomicU64,
    /// On a cache line of their own: every read adds to them, every append to the two above,
    /// and sharing one line would make readers and the appender take it from each other.
    pub reads: ReadCounters,
    pub fsync_failures: AtomicU64,
    pub fsync_latency: AtomicHistogram,
    /// What compaction did since open (all runs added up).
    pub compaction: parking_lot::Mutex<crate::log::CompactionReport>,
    /// Below it the log holds at most one record per key (the cleaner's clean offset).
    pub clean_offset: AtomicU64,
}

impl Default for LogCounters {
    fn default() -> LogCounters {
        LogCounters {
            opened: Instant::now(),
            appended_records: AtomicU64::new(0),
            appended_bytes: AtomicU64::new(0),
            reads: ReadCounters::default(),
            fsync_failures: AtomicU64::new(0),
            fsync_latency: AtomicHistogram::default(),
            compaction: parking_lot::Mutex::new(crate::log::CompactionReport::default()),
            clean_offset: AtomicU64::new(0),
        }
    }
}

impl LogCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// fsync figures.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct FsyncMetrics {
    /// Successful data syncs.
    pub count: u64,
    /// Failed syncs (each poisoned its log).
    pub failures: u64,
    /// Latency of the successful syncs.
    pub latency: LatencyHistogram,
}

impl FsyncMetrics {
    /// Adds another set of figures.
    pub fn merge(&mut self, other: &FsyncMetrics) {
        self.count += other.count;
        self.failures += other.failures;
        self.latency.merge(&other.latency);
    }
}

/// A rate over an interval.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Rate {
    /// Records per second.
    pub records_per_sec: f64,
    /// Bytes per second.
    pub bytes_per_sec: f64,
}

/// A snapshot of one log.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct LogMetrics {
    /// First offset in the log.
    pub log_start_offset: u64,
    /// Next offset to be written (the high watermark).
    pub log_end_offset: u64,
    /// Bytes of segment data.
    pub size_bytes: u64,
    /// Number of segments.
    pub segments: usize,
    /// Records appended since the log was opened.
    pub appended_records: u64,
    /// Bytes of batches appended since open.
    pub appended_bytes: u64,
    /// Records in the batches read since open (by consumers and other readers of the log).
    pub read_records: u64,
    /// Bytes of batches read since open.
    pub read_bytes: u64,
    /// fsyncs of this log.
    pub fsync: FsyncMetrics,
    /// Time since the log was opened.
    pub uptime: Duration,
    /// The cleaner's progress, for a compacted log.
    pub compaction: Option<CompactionMetrics>,
}

/// The cleaner's progress on one compacted log.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CompactionMetrics {
    /// Everything compaction did since the log was opened (passes, segments, bytes before and
    /// after, records and tombstones removed).
    pub totals: crate::log::CompactionReport,
    /// Below this offset the log holds at most one record per key.
    pub clean_offset: u64,
    /// The share of the cleanable bytes written since the last compaction (what the background
    /// cleaner compares with `min_cleanable_dirty_ratio`); 0 while a run is under way.
    pub dirty_ratio: f64,
}

fn rate(records: u64, bytes: u64, over: Duration) -> Rate {
    let secs = over.as_secs_f64();
    if secs <= 0.0 {
        return Rate::default();
    }
    Rate {
        records_per_sec: records as f64 / secs,
        bytes_per_sec: bytes as f64 / secs,
    }
}

impl LogMetrics {
    /// The append rate since `earlier` (a snapshot of the same log), or since open for `None`.
    pub fn append_rate(&self, earlier: Option<&LogMetrics>) -> Rate {
        let (r, b, t) = earlier.map_or((0, 0, Duration::ZERO), |e| {
            (e.appended_records, e.appended_bytes, e.uptime)
        });
        rate(
            self.appended_records.saturating_sub(r),
            self.appended_bytes.saturating_sub(b),
            self.uptime.saturating_sub(t),
        )
    }

    /// The read rate since `earlier`, or since open for `None`.
    pub fn read_rate(&self, earlier: Option<&LogMetrics>) -> Rate {
        let (r, b, t) = earlier.map_or((0, 0, Duration::ZERO), |e| {
            (e.read_records, e.read_bytes, e.uptime)
        });
        rate(
            self.read_records.saturating_sub(r),
            self.read_bytes.saturating_sub(b),
            self.uptime.saturating_sub(t),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_cover_their_values() {
        let mut prev = 0;
        for v in [0u64, 1, 3, 4, 5, 7, 8, 100, 1000, 65_535, 1 << 40, u64::MAX] {
            let b = bucket_of(v);
            assert!(b >= prev, "{v}");
            assert!(bucket_floor(b) <= v, "{v}: floor {}", bucket_floor(b));
            if b + 1 < BUCKETS {
                assert!(bucket_floor(b + 1) > v, "{v}");
            }
            prev = b;
        }
    }

    #[test]
    fn percentiles() {
        let h = AtomicHistogram::default();
        for _ in 0..99 {
            h.record(Duration::from_micros(100));
        }
        h.record(Duration::from_millis(50));
        let s = h.snapshot();
        assert_eq!(s.count(), 100);
        let p50 = s.percentile(0.5);
        assert!(
            p50 > Duration::from_micros(100) && p50 <= Duration::from_micros(120),
            "{p50:?}"
        );
        assert!(s.percentile(1.0) >= Duration::from_millis(50));
        assert_eq!(LatencyHistogram::default().percentile(0.5), Duration::ZERO);
    }
}
