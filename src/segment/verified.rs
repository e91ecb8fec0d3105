//! Which batches of a mapped data file have passed their CRC check since it was mapped.
//!
//! A read hands out a batch only after its CRC has passed, but checking a whole batch (about
//! 11.5 KB for 100 records of 100 B) for every point read of one record costs more than the
//! rest of the read together. So a [`Segment`](super::Segment) remembers, for as long as its
//! data file stays mapped, which batches it has checked: the first read of a batch checks it,
//! later reads of the same batch through the same mapping trust that check. The bytes a
//! mapping shows below its published length never change (mmap.rs, invariant 1: nothing in
//! this process writes them, and no other process may write a locked log's files), so a
//! batch that passed once still holds what passed. What this cannot see is damage *after*
//! the check: a bit flipped later in the page cache or on the device (when the page was
//! evicted and read back) goes unnoticed by reads of that batch until the log is reopened;
//! a reopened log maps its files again and checks every batch again on its first read.
//! This is Kafka's stance too: the broker checks a batch once when it is produced and serves
//! it without checking it again; its consumers check CRCs (`check.crcs`, default true) on the
//! bytes they receive. Riverbed's readers are in the same process as the mapping, so the
//! check made by the first read is the consumer's check.
//!
//! The set is a bitmap with one bit per 32-byte granule of the file, keyed by the granule in
//! which a batch starts: a batch is at least the 43 bytes of a version 1 header long, so no two
//! batches of a well-formed file start in the same granule. (A file damaged so that a read
//! walks into a batch that starts inside another batch's bytes and that passes its own framing
//! checks and CRC could alias a bit; then the later read of the other batch would trust the
//! first one's check. Both batches would have to sit inside bytes that were written as batches,
//! so this needs deliberately crafted data, not a bit flip.) The bitmap is allocated lazily in
//! 4 KiB chunks, each covering 1 MiB of the file, so its memory follows what is read: a segment
//! never read costs one pointer; the first read allocates the chunk table (a few dozen bytes per
//! MiB of the file's mapped capacity: about 24 KiB for a 1 GiB segment), and each MiB read adds
//! 4 KiB (at most 1/256 of the file).
//!
//! Bits are set only after a check passed, and only ever set: a concurrent reader that misses
//! a bit just checks the batch again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::record::codec::V1_HEADER_LEN;

/// log2 of the bytes per bit.
const GRANULE_SHIFT: u32 = 5;
/// Words per chunk: 512 × 64 bits × 32 bytes = 1 MiB of file per 4 KiB chunk.
const CHUNK_WORDS: usize = 512;
/// log2 of the bytes of file one chunk covers.
const CHUNK_SHIFT: u32 = GRANULE_SHIFT + 6 + 9;

// No two batches start in one granule: every batch is at least as long as the smallest header.
const _: () = assert!(1usize << GRANULE_SHIFT <= V1_HEADER_LEN);
const _: () = assert!(CHUNK_WORDS == 1 << 9);

type Chunk = Box<[AtomicU64]>;

/// The verified batches of one mapped data file of `capacity` bytes (see the module docs).
pub(crate) struct Verified {
    capacity: usize,
    chunks: OnceLock<Box<[OnceLock<Chunk>]>>,
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let chunks = self
            .chunks
            .get()
            .map_or(0, |c| c.iter().filter(|c| c.get().is_some()).count());
        f.debug_struct("Verified")
            .field("capacity", &self.capacity)
            .field("chunks", &chunks)
            .finish()
    }
}

impl Verified {
    /// An empty set for a file mapped with `capacity` bytes.
    pub(crate) fn new(capacity: usize) -> Verified {
        Verified {
            capacity,
            chunks: OnceLock::new(),
        }
    }

    /// Where the bit of a batch starting at byte `pos` lives: (chunk, word, mask).
    fn slot(pos: usize) -> (usize, usize, u64) {
        let granule = pos >> GRANULE_SHIFT;
        let chunk = pos >> CHUNK_SHIFT;
        let word = (granule >> 6) & (CHUNK_WORDS - 1);
        (chunk, word, 1u64 << (granule & 63))
    }

    /// Whether the batch starting at byte `pos` passed its check through this mapping.
    #[inline]
    pub(crate) fn contains(&self, pos: usize) -> bool {
        let (chunk, word, mask) = Self::slot(pos);
        self.chunks
            .get()
            .and_then(|c| c.get(chunk))
            .and_then(OnceLock::get)
            .and_then(|c| c.get(word))
            .is_some_and(|w| w.load(Ordering::Acquire) & mask != 0)
    }

    /// Records that the batch starting at byte `pos` passed its CRC check. Call it only after
    /// the check passed. A position past the capacity is not recorded (it cannot happen: a
    /// batch lies inside its mapping).
    pub(crate) fn insert(&self, pos: usize) {
        if pos >= self.capacity {
            return;
        }
        let (chunk, word, mask) = Self::slot(pos);
        let chunks = self.chunks.get_or_init(|| {
            let n = (self.capacity >> CHUNK_SHIFT) + 1;
            (0..n).map(|_| OnceLock::new()).collect()
        });
        let Some(slot) = chunks.get(chunk) else {
            return;
        };
        let words = slot.get_or_init(|| (0..CHUNK_WORDS).map(|_| AtomicU64::new(0)).collect());
        if let Some(w) = words.get(word) {
            w.fetch_or(mask, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_per_granule_and_lazily_allocated() {
        let v = Verified::new(3 << 20);
        assert!(!v.contains(24));
        assert!(v.chunks.get().is_none(), "nothing allocated before a check");
        v.insert(24);
        assert!(v.contains(24));
        assert!(
            !v.contains(24 + 43),
            "the next possible batch start is another granule"
        );
        v.insert((2 << 20) + 100);
        assert!(v.contains((2 << 20) + 100));
        assert!(!v.contains(1 << 20));
        let allocated = v.chunks.get().unwrap().iter().filter(|c| c.get().is_some());
        assert_eq!(allocated.count(), 2);
        // Past the capacity: neither recorded nor believed.
        v.insert(3 << 20);
        assert!(!v.contains(3 << 20));
        assert!(!v.contains(usize::MAX));
    }

    #[test]
    fn distinct_batch_starts_never_share_a_bit() {
        let v = Verified::new(1 << 16);
        // Batches of the smallest possible size, back to back from the file header.
        let starts: Vec<usize> = (0..1000).map(|i| 24 + i * V1_HEADER_LEN).collect();
        for (i, &p) in starts.iter().enumerate() {
            assert!(!v.contains(p), "batch {i} at {p} unchecked yet");
            v.insert(p);
        }
        assert!(starts.iter().all(|&p| v.contains(p)));
    }
}
