//! Choosing a partition for a record, as Kafka's Java producer does.
//!
//! A record with an explicit partition goes there. A record with a key goes to
//! `(murmur2(key) & 0x7fffffff) % partitions`: the same seed, mixing and positive-modulo as
//! Kafka's `BuiltInPartitioner`, so a key lands in the same partition number as it would in Kafka.
//! A record with neither sticks to one partition until about `batch_size` bytes were sent to it,
//! then moves on (Kafka's sticky partitioning, KIP-480), so keyless records form large batches.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Kafka's `Utils.murmur2`: MurmurHash2, 32-bit, seed `0x9747b28c`, over little-endian 4-byte
/// words, returning the value as Java's signed `int`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&b) = tail.first() {
        h ^= u32::from(b);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for `key` among `partitions`.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    ((murmur2(key) as u32) & 0x7fff_ffff) % partitions.max(1)
}

/// Sticky choice for keyless records of one topic.
#[derive(Debug, Default)]
pub(crate) struct Sticky {
    current: AtomicUsize,
    bytes: AtomicU64,
    seed: AtomicU64,
}

impl Sticky {
    /// The partition for a keyless record of `size` bytes.
    pub(crate) fn choose(&self, partitions: u32, size: usize, batch_size: usize) -> u32 {
        let n = partitions.max(1) as usize;
        let sent = self.bytes.fetch_add(size as u64, Ordering::Relaxed) + size as u64;
        if sent >= batch_size as u64 {
            self.bytes.store(0, Ordering::Relaxed);
            // Move to another partition; an xorshift step keeps the walk cheap and spread out.
            let mut x = self.seed.load(Ordering::Relaxed) | 1;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.seed.store(x, Ordering::Relaxed);
            let old = self.current.load(Ordering::Relaxed) % n;
            let step = if n > 1 { 1 + (x as usize % (n - 1)) } else { 0 };
            self.current.store((old + step) % n, Ordering::Relaxed);
        }
        (self.current.load(Ordering::Relaxed) % n) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's `UtilsTest.testMurmur2` vectors.
    #[test]
    fn matches_kafka_murmur2_vectors() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key), want, "{}", String::from_utf8_lossy(key));
        }
        // toPositive(-790332482) = 1357151166; 1357151166 % 50 = 16.
        assert_eq!(partition_for_key(b"foobar", 50), 16);
    }

    #[test]
    fn sticky_moves_after_a_batch_worth_of_bytes() {
        let s = Sticky::default();
        let first = s.choose(4, 100, 1000);
        for _ in 0..8 {
            assert_eq!(s.choose(4, 100, 1000), first);
        }
        assert_ne!(s.choose(4, 100, 1000), first);
        assert_eq!(s.choose(1, 5000, 10), 0);
    }
}
