//! The wall clock: the one place Riverbed reads it.
//!
//! Record timestamps, retention, compaction's delete horizons, transaction and offset
//! expiry, metrics snapshots and the names of marked directories all read the time here, so
//! that there is one definition of "now" (milliseconds since the Unix epoch, as Kafka's
//! timestamps) and one place to change should a test clock ever be wanted. Timeouts that
//! only measure elapsed time use `Instant` instead, which never goes backwards.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Wall-clock nanoseconds since the Unix epoch (0 if the clock is before it): for names that
/// must differ between calls made close together.
pub(crate) fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
