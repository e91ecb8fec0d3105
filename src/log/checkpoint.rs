//! The recovery checkpoint: the point up to which a log's data and indexes are known to be on
//! disk, so that opening after a crash scans only what lies after it.
//!
//! ```text
//! // Format (file `recovery-point`, 36 bytes): { magic "RVBC" | version u16 | reserved u16 |
//! //   next_offset u64 | segment_base u64 | position u64 | crc u32 (CRC-32 of bytes 0..32) }
//! ```
//! It says: every segment below `segment_base` is sealed and synced, and in segment
//! `segment_base` the bytes before `position` (whose batches end at offset `next_offset`) and
//! their index entries are synced. The file is replaced atomically; finding an older version after
//! a crash is harmless (recovery just scans more), and a missing or damaged one means "scan
//! everything".

use std::path::Path;

use crate::error::Result;
use crate::record::crc;

/// File name of the checkpoint inside a log directory.
pub const FILE_NAME: &str = "recovery-point";
const MAGIC: [u8; 4] = *b"RVBC";
const VERSION: u16 = 1;
/// Encoded size.
pub const LEN: usize = 36;

/// A recovery point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Offset after the last batch before `position`.
    pub next_offset: u64,
    /// Base offset of the segment the point is in.
    pub segment_base: u64,
    /// Byte position in that segment's data file.
    pub position: u64,
}

impl Checkpoint {
    /// Encodes the checkpoint.
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&VERSION.to_le_bytes());
        b[8..16].copy_from_slice(&self.next_offset.to_le_bytes());
        b[16..24].copy_from_slice(&self.segment_base.to_le_bytes());
        b[24..32].copy_from_slice(&self.position.to_le_bytes());
        let c = crc::checksum(&b[0..32]);
        b[32..36].copy_from_slice(&c.to_le_bytes());
        b
    }

    /// Decodes a checkpoint; `None` if the bytes are not a valid one of a known version.
    pub fn decode(b: &[u8]) -> Option<Checkpoint> {
        let b: &[u8; LEN] = b.try_into().ok()?;
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let stored = u32::from_le_bytes([b[32], b[33], b[34], b[35]]);
        if b[0..4] != MAGIC
            || u16::from_le_bytes([b[4], b[5]]) != VERSION
            || crc::checksum(&b[0..32]) != stored
        {
            return None;
        }
        Some(Checkpoint {
            next_offset: u64_at(8),
            segment_base: u64_at(16),
            position: u64_at(24),
        })
    }

    /// Reads the checkpoint of the log in `dir`: `Ok(None)` when there is none or it is damaged.
    pub fn read(dir: &Path) -> Result<Option<Checkpoint>> {
        match std::fs::read(dir.join(FILE_NAME)) {
            Ok(bytes) => Ok(Checkpoint::decode(&bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(crate::Error::io(
                "read recovery checkpoint",
                dir.join(FILE_NAME),
                e,
            )),
        }
    }

    /// Replaces the checkpoint of the log in `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        crate::fs::write_replace(&dir.join(FILE_NAME), &self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_damage() {
        let c = Checkpoint {
            next_offset: 7,
            segment_base: 3,
            position: 1000,
        };
        let b = c.encode();
        assert_eq!(Checkpoint::decode(&b), Some(c));
        for i in 0..LEN {
            let mut d = b;
            d[i] ^= 0x10;
            assert_eq!(
                Checkpoint::decode(&d),
                None,
                "flip at byte {i} went unnoticed"
            );
        }
        assert_eq!(Checkpoint::decode(&b[..35]), None);
    }
}
