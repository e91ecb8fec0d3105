//! Recovery scan: walk the batches of a data file from a known-good position and find where the
//! valid log ends.
//!
//! A batch is valid when its framing is in range, its CRC matches and its base offset is the
//! next offset expected (the log is contiguous) or, in a segment written by the log cleaner, at
//! least that (the cleaner leaves gaps where it removed records). The scan stops at the first batch that is not:
//! after a crash that is a torn write, and everything from there on is cut away by the caller.
//! Twelve zero bytes where a batch would start are the unwritten (preallocated) rest of an active
//! segment: a clean end, not an error.

use crate::error::{corrupt, Error};
use crate::record::codec::{BatchHeader, BATCH_LENGTH};

/// Where a scan ended.
#[derive(Debug)]
pub struct ScanEnd {
    /// Byte position just after the last valid batch.
    pub end: usize,
    /// Offset after the last valid batch.
    pub next_offset: u64,
    /// Number of valid batches seen.
    pub batches: u64,
    /// Why the scan stopped before the end of `bytes`, when it was not a clean end. Positions in
    /// the error are relative to the start of `bytes`.
    pub error: Option<Error>,
}

/// Scans `bytes` (a whole data file) from `start`, expecting the first batch to have base offset
/// `next_offset` (or, with `gaps`, at least that), and calls `on_batch(position, header)` for each
/// valid batch.
pub fn scan(
    bytes: &[u8],
    start: usize,
    mut next_offset: u64,
    max_batch_bytes: usize,
    gaps: bool,
    mut on_batch: impl FnMut(usize, &BatchHeader),
) -> ScanEnd {
    let mut pos = start;
    let mut batches = 0;
    let error = loop {
        let Some(rest) = bytes.get(pos..) else {
            break Some(corrupt(
                pos as u64,
                "a position inside the file",
                "a position past its end",
            ));
        };
        if rest.is_empty() || rest.iter().take(BATCH_LENGTH.end).all(|b| *b == 0) {
            break None;
        }
        let checked = BatchHeader::parse(rest, max_batch_bytes).and_then(|h| {
            h.verify_crc(rest)?;
            if h.base_offset < next_offset || (h.base_offset != next_offset && !gaps) {
                return Err(corrupt(
                    0,
                    if gaps {
                        format!("base offset {next_offset} or more")
                    } else {
                        format!("base offset {next_offset}")
                    },
                    format!("{}", h.base_offset),
                ));
            }
            Ok(h)
        });
        match checked {
            Ok(h) => {
                on_batch(pos, &h);
                pos += h.total_len();
                next_offset = h.next_offset();
                batches += 1;
            }
            Err(e) => break Some(e.in_file_position(pos as u64)),
        }
    };
    ScanEnd {
        end: pos,
        next_offset,
        batches,
        error,
    }
}
