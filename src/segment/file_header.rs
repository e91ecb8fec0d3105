//! The 24-byte header that opens every segment file (`.log`, `.index`, `.timeindex`).
//!
//! ```text
//! // Format: { magic [u8; 4] | version u16 | reserved u16 (0) | base_offset u64 |
//! //           crc u32 (CRC-32 of bytes 0..16) | reserved u32 (0) }
//! ```
//! The magic says which kind of file it is; the base offset must match the file name.

use std::path::Path;

use crate::error::{corrupt, ErrorKind, Result};
use crate::record::crc;

/// Size of the file header; the first batch (or index entry) starts here. Because it is non-zero,
/// a zero position in an index entry can mark the end of the entries.
pub const FILE_HEADER_LEN: usize = 24;

/// Version of the segment file formats written by this build. A reader opens every version up to
/// its own and refuses newer ones with [`ErrorKind::UnsupportedVersion`].
pub const SEGMENT_FORMAT_VERSION: u16 = 1;

/// The three kinds of segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// `.log`: record batches.
    Log,
    /// `.index`: sparse offset index.
    OffsetIndex,
    /// `.timeindex`: sparse time index.
    TimeIndex,
    /// Aborted transactions of a sealed segment (`.txnindex`).
    TxnIndex,
}

impl FileKind {
    /// The magic bytes of this kind of file.
    pub fn magic(self) -> [u8; 4] {
        match self {
            FileKind::Log => *b"RVBL",
            FileKind::OffsetIndex => *b"RVBI",
            FileKind::TimeIndex => *b"RVBT",
            FileKind::TxnIndex => *b"RVBX",
        }
    }
}

/// Encodes the header of a `kind` file whose first offset is `base_offset`.
pub fn encode(kind: FileKind, base_offset: u64) -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[0..4].copy_from_slice(&kind.magic());
    h[4..6].copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&base_offset.to_le_bytes());
    let c = crc::checksum(&h[0..16]);
    h[16..20].copy_from_slice(&c.to_le_bytes());
    h
}

/// Checks the header at the start of `bytes` (the content of `path`).
pub fn check(bytes: &[u8], kind: FileKind, base_offset: u64, path: &Path) -> Result<()> {
    let Some(h) = bytes.get(..FILE_HEADER_LEN) else {
        return Err(corrupt(
            0,
            format!("a {FILE_HEADER_LEN}-byte file header"),
            format!("a file of {} bytes", bytes.len()),
        )
        .in_file(path, 0));
    };
    if h[0..4] != kind.magic() {
        return Err(corrupt(
            0,
            format!("magic {:?}", String::from_utf8_lossy(&kind.magic())),
            format!("{:02x?}", &h[0..4]),
        )
        .in_file(path, 0));
    }
    let stored = u32::from_le_bytes([h[16], h[17], h[18], h[19]]);
    crc::verify(&h[0..16], stored, 16).map_err(|e| e.in_file(path, 0))?;
    let version = u16::from_le_bytes([h[4], h[5]]);
    if version == 0 || version > SEGMENT_FORMAT_VERSION {
        return Err(ErrorKind::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: SEGMENT_FORMAT_VERSION,
        }
        .into());
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[8..16]);
    let found = u64::from_le_bytes(b);
    if found != base_offset {
        return Err(corrupt(
            8,
            format!("base offset {base_offset} (from the file name)"),
            format!("{found}"),
        )
        .in_file(path, 0));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_rejections() {
        let p = Path::new("x.log");
        let h = encode(FileKind::Log, 42);
        check(&h, FileKind::Log, 42, p).unwrap();
        assert!(check(&h, FileKind::OffsetIndex, 42, p).is_err());
        assert!(check(&h, FileKind::Log, 43, p).is_err());
        assert!(check(&h[..10], FileKind::Log, 42, p).is_err());
        let mut bad = h;
        bad[9] ^= 1;
        assert!(check(&bad, FileKind::Log, 42, p).is_err());
    }

    #[test]
    fn newer_version_is_refused_with_its_own_error() {
        let mut h = encode(FileKind::Log, 0);
        h[4..6].copy_from_slice(&9u16.to_le_bytes());
        let c = crc::checksum(&h[0..16]);
        h[16..20].copy_from_slice(&c.to_le_bytes());
        let e = check(&h, FileKind::Log, 0, Path::new("x")).unwrap_err();
        assert!(matches!(
            e.kind(),
            ErrorKind::UnsupportedVersion { found: 9, .. }
        ));
    }
}
