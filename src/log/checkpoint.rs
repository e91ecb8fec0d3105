//! The recovery checkpoint: the point up to which a log's data and indexes are known to be on
//! disk, so that opening after a crash scans only what lies after it.
//!
//! ```text
//! // Format (file `recovery-point`, 44 bytes): { magic "RVBC" | version u16 | flags u16 |
//! //   next_offset u64 | segment_base u64 | position u64 | offset_entries u32 |
//! //   time_entries u32 | crc u32 (CRC-32 of bytes 0..40) }
//! ```
//! It says: every segment below `segment_base` is sealed and synced, and in segment
//! `segment_base` the bytes before `position` (whose batches end at offset `next_offset`) and
//! the first `offset_entries` and `time_entries` entries of its indexes are synced. Flag bit 0
//! (`clean`) says the log was closed there: nothing was written past `position` since, so the
//! rest of the file is the zeros it was preallocated with. The counts
//! let recovery tell a damaged index prefix from a sound one. The file is replaced atomically; finding an older version after
//! a crash is harmless (recovery just scans more), and a missing or damaged one means "scan
//! everything".

use std::path::Path;

use crate::error::Result;
use crate::small_file::{self, Binary, Durability, CRC_LEN};

/// File name of the checkpoint inside a log directory.
pub const FILE_NAME: &str = "recovery-point";
const FORMAT: Binary = Binary {
    magic: *b"RVBC",
    version: 1,
};
/// Encoded size.
pub const LEN: usize = 44;

/// A recovery point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Offset after the last batch before `position`.
    pub next_offset: u64,
    /// Base offset of the segment the point is in.
    pub segment_base: u64,
    /// Byte position in that segment's data file.
    pub position: u64,
    /// Offset index entries of that segment that point below `position`.
    pub offset_entries: u32,
    /// Time index entries of that segment that point below `position`.
    pub time_entries: u32,
    /// Written by a clean close, and cleared (by a new checkpoint) before the next append.
    pub clean: bool,
}

impl Checkpoint {
    /// Whether both name the same point (whatever their `clean` flags).
    pub fn same_point(&self, other: &Checkpoint) -> bool {
        Checkpoint {
            clean: false,
            ..*self
        } == Checkpoint {
            clean: false,
            ..*other
        }
    }

    /// Encodes the checkpoint.
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0..6].copy_from_slice(&FORMAT.header());
        b[6..8].copy_from_slice(&u16::from(self.clean).to_le_bytes());
        b[8..16].copy_from_slice(&self.next_offset.to_le_bytes());
        b[16..24].copy_from_slice(&self.segment_base.to_le_bytes());
        b[24..32].copy_from_slice(&self.position.to_le_bytes());
        b[32..36].copy_from_slice(&self.offset_entries.to_le_bytes());
        b[36..40].copy_from_slice(&self.time_entries.to_le_bytes());
        small_file::seal_fixed(&mut b);
        b
    }

    /// Decodes a checkpoint; `None` if the bytes are not a valid one of a known version.
    pub fn decode(b: &[u8]) -> Option<Checkpoint> {
        let b: &[u8; LEN - CRC_LEN] = FORMAT.check(b).ok()?.try_into().ok()?;
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        if u16::from_le_bytes([b[6], b[7]]) > 1 {
            return None;
        }
        Some(Checkpoint {
            next_offset: u64_at(8),
            segment_base: u64_at(16),
            position: u64_at(24),
            offset_entries: u32_at(32),
            time_entries: u32_at(36),
            clean: b[6] == 1,
        })
    }

    /// Reads the checkpoint of the log in `dir`: `Ok(None)` when there is none or it is damaged.
    pub fn read(dir: &Path) -> Result<Option<Checkpoint>> {
        let bytes = small_file::read(&dir.join(FILE_NAME), "read recovery checkpoint")?;
        Ok(bytes.and_then(|b| Checkpoint::decode(&b)))
    }

    /// Replaces the checkpoint of the log in `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        small_file::write(&dir.join(FILE_NAME), &self.encode(), Durability::Replace)
    }
}

// ---- the log start offset file ------------------------------------------------------------

/// File name of the log start offset a [`Log::delete_records_before`](super::Log) call moved
/// into a segment (Kafka's `log-start-offset-checkpoint`, one file per log here).
pub const LOG_START_FILE: &str = "log-start";
const LOG_START_FORMAT: Binary = Binary {
    magic: *b"RVBS",
    version: 1,
};
/// Encoded size of the log start offset file.
pub const LOG_START_LEN: usize = 20;

// Format (file `log-start`, 20 bytes, FORMAT.md 5.3):
// { magic "RVBS" | version u16 (1) | reserved u16 (0) | log_start u64 | crc u32 (of 0..16) }
/// Encodes the log start offset file.
pub fn encode_log_start(log_start: u64) -> [u8; LOG_START_LEN] {
    let mut b = [0u8; LOG_START_LEN];
    b[0..6].copy_from_slice(&LOG_START_FORMAT.header());
    b[8..16].copy_from_slice(&log_start.to_le_bytes());
    small_file::seal_fixed(&mut b);
    b
}

/// Decodes the log start offset file; `None` if the bytes are not a valid one.
pub fn decode_log_start(b: &[u8]) -> Option<u64> {
    let b: &[u8; LOG_START_LEN - CRC_LEN] = LOG_START_FORMAT.check(b).ok()?.try_into().ok()?;
    if b[6..8] != [0, 0] {
        return None;
    }
    let mut o = [0u8; 8];
    o.copy_from_slice(&b[8..16]);
    Some(u64::from_le_bytes(o))
}

/// The log start offset recorded in `dir`: `Ok(None)` when there is no file, or (with a
/// warning) when it is damaged — the log then starts at its first segment, as a Kafka broker
/// does without its checkpoint, which shows deleted records again but loses none.
pub fn read_log_start(dir: &Path) -> Result<Option<u64>> {
    let path = dir.join(LOG_START_FILE);
    let Some(bytes) = small_file::read(&path, "read log start offset")? else {
        return Ok(None);
    };
    let decoded = decode_log_start(&bytes);
    if decoded.is_none() {
        tracing::warn!(
            target: "riverbed::log",
            path = %path.display(),
            "log start offset file is damaged; the log starts at its first segment"
        );
    }
    Ok(decoded)
}

/// Records `log_start` in `dir`, durably (temp file, fsync, rename, directory fsync) before the
/// caller lets readers see the new start.
pub fn write_log_start(dir: &Path, log_start: u64) -> Result<()> {
    small_file::write(
        &dir.join(LOG_START_FILE),
        &encode_log_start(log_start),
        Durability::Synced,
    )
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
            offset_entries: 5,
            time_entries: 2,
            clean: true,
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
        assert_eq!(Checkpoint::decode(&b[..LEN - 1]), None);
    }

    #[test]
    fn log_start_roundtrip_bytes_and_damage() {
        let b = encode_log_start(0x0102_0304_0506);
        assert_eq!(
            crate::small_file::damage::hex(&b),
            "52564253010000000605040302010000440ebe63"
        );
        assert_eq!(decode_log_start(&b), Some(0x0102_0304_0506));
        for (what, bytes) in crate::small_file::damage::mangled_binary(&b, 2) {
            assert_eq!(decode_log_start(&bytes), None, "{what}");
        }
        for i in 0..LOG_START_LEN {
            let mut d = b;
            d[i] ^= 0x10;
            assert_eq!(
                decode_log_start(&d),
                None,
                "flip at byte {i} went unnoticed"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_log_start(dir.path()).unwrap(), None);
        write_log_start(dir.path(), 42).unwrap();
        assert_eq!(read_log_start(dir.path()).unwrap(), Some(42));
        std::fs::write(dir.path().join(LOG_START_FILE), &b[..7]).unwrap();
        assert_eq!(read_log_start(dir.path()).unwrap(), None);
    }
}

/// This file's bytes against those the code before `small_file` wrote (captured from it, same
/// inputs: the shared helper must not change a byte on disk), and mangled (bad CRC, truncated,
/// another version with a valid CRC) with the outcome this file has always had.
#[cfg(test)]
mod small_file_bytes {
    #[allow(unused_imports)]
    use std::path::Path;

    #[allow(unused_imports)]
    use crate::record::crc::checksum;
    #[allow(unused_imports)]
    use crate::small_file::damage::{corruption_at, hex, mangled_binary, mangled_text};

    // ---- the inputs of the golden files (shared with the capture from the code before the helper)
    fn g_recovery_point() -> Vec<u8> {
        crate::log::checkpoint::Checkpoint {
            next_offset: 7,
            segment_base: 3,
            position: 1000,
            offset_entries: 5,
            time_entries: 2,
            clean: true,
        }
        .encode()
        .to_vec()
    }

    // Captured from the code before `small_file` existed (commit 8471fcb), same inputs.
    const RECOVERY_POINT: &str =
        "525642430100010007000000000000000300000000000000e8030000000000000500000002000000902f3dba";

    #[test]
    fn recovery_point_bytes_and_damage_read_as_no_checkpoint() {
        use crate::log::checkpoint::{Checkpoint, FILE_NAME};
        let good = g_recovery_point();
        assert_eq!(hex(&good), RECOVERY_POINT);
        assert!(Checkpoint::decode(&good).is_some());
        let dir = tempfile::tempdir().unwrap();
        for (what, bytes) in mangled_binary(&good, 2) {
            assert_eq!(Checkpoint::decode(&bytes), None, "{what}");
            // On disk: no checkpoint, recovery scans everything.
            std::fs::write(dir.path().join(FILE_NAME), &bytes).unwrap();
            assert_eq!(Checkpoint::read(dir.path()).unwrap(), None, "{what}");
        }
    }
}
