//! The sparse offset index (`.index`) and time index (`.timeindex`) of a segment.
//!
//! Both are arrays of fixed-size little-endian entries after the file header:
//!
//! ```text
//! // Offset index entry: { relative_offset u32 | position u32 }                    (8 bytes)
//! // Time index entry:   { timestamp i64 | relative_offset u32 | position u32 }    (16 bytes)
//! ```
//!
//! An offset entry says "the batch whose base offset is `base + relative_offset` starts at byte
//! `position` of the `.log` file". A time entry says "the largest timestamp in the segment up to
//! and including the batch at `position` (base offset `base + relative_offset`) is `timestamp`,
//! and that batch is where it was first reached". Entries are appended in increasing order of
//! every field. Positions are never 0 (the file header comes first), so a zero-filled entry marks
//! the end of a preallocated index. Indexes are caches: they are rebuilt from the `.log` file
//! whenever they are missing or fail a check.
//!
//! The lookups work on untrusted bytes: they never panic, and a caller must check that the batch
//! at the returned position has the offset it expects (see `Segment::read`).

/// Size of an offset index entry.
pub const OFFSET_ENTRY_LEN: usize = 8;
/// Size of a time index entry.
pub const TIME_ENTRY_LEN: usize = 16;

/// One offset index entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetEntry {
    /// Base offset of the batch minus the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the `.log` file.
    pub position: u32,
}

/// One time index entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeEntry {
    /// Largest timestamp seen in the segment up to this batch.
    pub timestamp: i64,
    /// Base offset of the batch minus the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the `.log` file.
    pub position: u32,
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    u32::from_le_bytes(a)
}

impl OffsetEntry {
    /// Encodes the entry.
    pub fn encode(&self) -> [u8; OFFSET_ENTRY_LEN] {
        let mut e = [0u8; OFFSET_ENTRY_LEN];
        e[0..4].copy_from_slice(&self.relative_offset.to_le_bytes());
        e[4..8].copy_from_slice(&self.position.to_le_bytes());
        e
    }

    /// Decodes the `i`th entry of `entries`, if there is one.
    pub fn at(entries: &[u8], i: usize) -> Option<OffsetEntry> {
        let e = entries.get(i * OFFSET_ENTRY_LEN..(i + 1) * OFFSET_ENTRY_LEN)?;
        Some(OffsetEntry {
            relative_offset: le_u32(&e[0..4]),
            position: le_u32(&e[4..8]),
        })
    }
}

impl TimeEntry {
    /// Encodes the entry.
    pub fn encode(&self) -> [u8; TIME_ENTRY_LEN] {
        let mut e = [0u8; TIME_ENTRY_LEN];
        e[0..8].copy_from_slice(&self.timestamp.to_le_bytes());
        e[8..12].copy_from_slice(&self.relative_offset.to_le_bytes());
        e[12..16].copy_from_slice(&self.position.to_le_bytes());
        e
    }

    /// Decodes the `i`th entry of `entries`, if there is one.
    pub fn at(entries: &[u8], i: usize) -> Option<TimeEntry> {
        let e = entries.get(i * TIME_ENTRY_LEN..(i + 1) * TIME_ENTRY_LEN)?;
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&e[0..8]);
        Some(TimeEntry {
            timestamp: i64::from_le_bytes(ts),
            relative_offset: le_u32(&e[8..12]),
            position: le_u32(&e[12..16]),
        })
    }
}

/// Binary search for the last index `i` in `0..n` with `pred(i)` true, given that `pred` is true
/// for a prefix of `0..n` (on corrupt input the answer is some index, never a panic).
pub(crate) fn last_true(n: usize, pred: impl Fn(usize) -> bool) -> Option<usize> {
    let (mut lo, mut hi) = (0usize, n); // answer in [lo, hi)
    if n == 0 || !pred(0) {
        return None;
    }
    lo += 1;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Some(lo - 1)
}

/// The last offset entry whose relative offset is `<= target`: where to start scanning for
/// `target`. `None` means "start at the first batch".
pub fn offset_floor(entries: &[u8], target: u32) -> Option<OffsetEntry> {
    offset_floor_by(
        entries.len() / OFFSET_ENTRY_LEN,
        |i| OffsetEntry::at(entries, i),
        target,
    )
}

/// [`offset_floor`] over `n` entries fetched one at a time by `entry(i)`: the inspection tools
/// read them with `pread` (a preallocated index then costs a binary search, not a read of the
/// whole file). An entry that cannot be fetched ends the search as if it were past the target.
pub fn offset_floor_by(
    n: usize,
    entry: impl Fn(usize) -> Option<OffsetEntry>,
    target: u32,
) -> Option<OffsetEntry> {
    let i = last_true(n, |i| entry(i).is_some_and(|e| e.relative_offset <= target))?;
    entry(i)
}

/// The last time entry whose timestamp is `< target`: every record before its batch has a smaller
/// timestamp than `target`, so the first record with a timestamp `>= target` is in that batch or
/// after it. `None` means "start at the first batch".
pub fn time_floor(entries: &[u8], target: i64) -> Option<TimeEntry> {
    time_floor_by(
        entries.len() / TIME_ENTRY_LEN,
        |i| TimeEntry::at(entries, i),
        target,
    )
}

/// [`time_floor`] over `n` entries fetched one at a time by `entry(i)` (see
/// [`offset_floor_by`]).
pub fn time_floor_by(
    n: usize,
    entry: impl Fn(usize) -> Option<TimeEntry>,
    target: i64,
) -> Option<TimeEntry> {
    let i = last_true(n, |i| entry(i).is_some_and(|e| e.timestamp < target))?;
    entry(i)
}

/// Number of leading entries that look valid in a preallocated offset index: non-zero
/// positions, strictly increasing in both fields, below `data_len`. Entries after the first
/// one that breaks the pattern are ignored.
pub fn valid_offset_prefix(entries: &[u8], data_len: usize) -> usize {
    let mut n = 0;
    let mut prev: Option<OffsetEntry> = None;
    while let Some(e) = OffsetEntry::at(entries, n) {
        let increasing =
            prev.is_none_or(|p| e.relative_offset > p.relative_offset && e.position > p.position);
        if e.position == 0 || (e.position as usize) >= data_len || !increasing {
            break;
        }
        prev = Some(e);
        n += 1;
    }
    n
}

/// Like [`valid_offset_prefix`] for a time index (timestamps strictly increasing, offsets and
/// positions non-decreasing).
pub fn valid_time_prefix(entries: &[u8], data_len: usize) -> usize {
    let mut n = 0;
    let mut prev: Option<TimeEntry> = None;
    while let Some(e) = TimeEntry::at(entries, n) {
        let increasing = prev.is_none_or(|p| {
            e.timestamp > p.timestamp
                && e.relative_offset >= p.relative_offset
                && e.position >= p.position
        });
        if e.position == 0 || (e.position as usize) >= data_len || !increasing {
            break;
        }
        prev = Some(e);
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(entries: &[(u32, u32)]) -> Vec<u8> {
        entries
            .iter()
            .flat_map(|&(o, p)| {
                OffsetEntry {
                    relative_offset: o,
                    position: p,
                }
                .encode()
            })
            .collect()
    }

    #[test]
    fn offset_floor_finds_last_entry_at_or_below() {
        let idx = offsets(&[(0, 24), (10, 4000), (20, 8000), (35, 12000)]);
        assert_eq!(offset_floor(&idx, 0).unwrap().position, 24);
        assert_eq!(offset_floor(&idx, 9).unwrap().position, 24);
        assert_eq!(offset_floor(&idx, 10).unwrap().position, 4000);
        assert_eq!(offset_floor(&idx, 34).unwrap().position, 8000);
        assert_eq!(offset_floor(&idx, 1000).unwrap().position, 12000);
        let idx = offsets(&[(5, 100)]);
        assert_eq!(offset_floor(&idx, 4), None);
        assert_eq!(offset_floor(&[], 4), None);
    }

    #[test]
    fn offset_floor_matches_linear_search() {
        let entries: Vec<(u32, u32)> = (0..100).map(|i| (i * 7 + 3, 24 + i * 100)).collect();
        let idx = offsets(&entries);
        for t in 0..800 {
            let linear = entries.iter().rev().find(|e| e.0 <= t).map(|e| e.1);
            assert_eq!(
                offset_floor(&idx, t).map(|e| e.position),
                linear,
                "target {t}"
            );
        }
    }

    #[test]
    fn time_floor_is_strictly_below() {
        let idx: Vec<u8> = [(100i64, 0u32, 24u32), (200, 5, 500), (300, 9, 900)]
            .iter()
            .flat_map(|&(t, o, p)| {
                TimeEntry {
                    timestamp: t,
                    relative_offset: o,
                    position: p,
                }
                .encode()
            })
            .collect();
        assert_eq!(time_floor(&idx, 100), None);
        assert_eq!(time_floor(&idx, 101).unwrap().position, 24);
        assert_eq!(time_floor(&idx, 300).unwrap().position, 500);
        assert_eq!(time_floor(&idx, i64::MAX).unwrap().position, 900);
    }

    #[test]
    fn valid_prefix_stops_at_zero_or_disorder() {
        let idx = offsets(&[(0, 24), (10, 4000), (0, 0), (30, 9000)]);
        assert_eq!(valid_offset_prefix(&idx, 10_000), 2);
        let idx = offsets(&[(0, 24), (10, 4000), (5, 5000)]);
        assert_eq!(valid_offset_prefix(&idx, 10_000), 2);
        let idx = offsets(&[(0, 24), (10, 4000)]);
        assert_eq!(valid_offset_prefix(&idx, 4000), 1);
        // A ragged tail shorter than an entry is ignored.
        assert_eq!(valid_offset_prefix(&idx[..11], 10_000), 1);
    }
}
