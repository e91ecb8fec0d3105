//! The 24-byte header that opens every segment file (`.log`, `.index`, `.timeindex`).
//!
//! ```text
//! // Format: { magic [u8; 4] | version u16 | flags u16 | base_offset u64 |
//! //           crc u32 | span u32 }
//! ```
//! The magic says which kind of file it is; the base offset must match the file name.
//!
//! Version 1 has `flags` and `span` zero and its CRC covers bytes 0..16. Version 2 adds flag bit
//! 0, [`FLAG_COMPACTED`]: the data file was written by the log cleaner, so offsets may leave gaps
//! between its batches, and it covers exactly the offsets `base_offset .. base_offset + span`
//! (the next segment starts there). Its CRC covers bytes 0..16 and 20..24.
//!
//! Version 3 has version 2's fields and CRC; its data files hold Kafka v2 record batches
//! (FORMAT.md section 3) where versions 1 and 2 hold Riverbed's own layout
//! ([`Layout`](crate::record::codec::Layout)). Every file this build creates is version 3;
//! files of versions 1 and 2 still open, and a log may hold both (older segments first).

use std::path::Path;

use crate::error::{corrupt, ErrorKind, Result};
use crate::record::crc;

/// Size of the file header; the first batch (or index entry) starts here. Because it is non-zero,
/// a zero position in an index entry can mark the end of the entries.
pub const FILE_HEADER_LEN: usize = 24;

/// Newest version of the segment file formats this build reads and writes. A reader opens every
/// version up to its own and refuses newer ones with [`ErrorKind::UnsupportedVersion`].
pub const SEGMENT_FORMAT_VERSION: u16 = 3;

/// Flag bit 0 (version 2): a data file written by the log cleaner. Its batches may leave offset
/// gaps, and the header's `span` says which offsets it covers.
pub const FLAG_COMPACTED: u16 = 1;

/// What a checked header says beyond its kind and base offset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeaderInfo {
    /// The file's format version (1..=3).
    pub version: u16,
    /// Flag bits (0 for version 1).
    pub flags: u16,
    /// For a compacted data file, the number of offsets it covers (0 otherwise).
    pub span: u32,
}

impl HeaderInfo {
    /// The layout of the batches a data file with this header holds.
    pub fn layout(&self) -> crate::record::codec::Layout {
        crate::record::codec::Layout::of_segment_version(self.version)
    }

    /// Whether the file was written by the log cleaner.
    pub fn compacted(&self) -> bool {
        self.flags & FLAG_COMPACTED != 0
    }
}

/// The three kinds of segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
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

/// Encodes the (version 3) header of a `kind` file whose first offset is `base_offset`.
pub fn encode(kind: FileKind, base_offset: u64) -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[0..4].copy_from_slice(&kind.magic());
    h[4..6].copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&base_offset.to_le_bytes());
    let c = crc_v2(&h);
    h[16..20].copy_from_slice(&c.to_le_bytes());
    h
}

/// Encodes the (version 3) header of a compacted data file covering the offsets
/// `base_offset .. base_offset + span`.
pub fn encode_compacted(base_offset: u64, span: u32) -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[0..4].copy_from_slice(&FileKind::Log.magic());
    h[4..6].copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
    h[6..8].copy_from_slice(&FLAG_COMPACTED.to_le_bytes());
    h[8..16].copy_from_slice(&base_offset.to_le_bytes());
    h[20..24].copy_from_slice(&span.to_le_bytes());
    let c = crc_v2(&h);
    h[16..20].copy_from_slice(&c.to_le_bytes());
    h
}

/// The version 2 CRC: bytes 0..16 and 20..24 (everything but the CRC itself).
fn crc_v2(h: &[u8]) -> u32 {
    let mut covered = [0u8; 20];
    covered[..16].copy_from_slice(&h[0..16]);
    covered[16..].copy_from_slice(&h[20..24]);
    crc::checksum(&covered)
}

/// Checks the header at the start of `bytes` (the content of `path`) and returns its flags.
pub fn check(bytes: &[u8], kind: FileKind, base_offset: u64, path: &Path) -> Result<HeaderInfo> {
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
    let version = u16::from_le_bytes([h[4], h[5]]);
    // Versions other than 2 and 3 (1, and unknown ones, which are refused below once their
    // first 16 bytes are known to be intact) are checked with the version 1 CRC.
    if version == 2 || version == 3 {
        let computed = crc_v2(h);
        if computed != stored {
            return Err(corrupt(
                16,
                format!("CRC 0x{computed:08x} of the header"),
                format!("0x{stored:08x}"),
            )
            .in_file(path, 0));
        }
    } else {
        crc::verify(&h[0..16], stored, 16).map_err(|e| e.in_file(path, 0))?;
    }
    if version == 0 || version > SEGMENT_FORMAT_VERSION {
        return Err(ErrorKind::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: SEGMENT_FORMAT_VERSION,
        }
        .into());
    }
    let flags = u16::from_le_bytes([h[6], h[7]]);
    let span = u32::from_le_bytes([h[20], h[21], h[22], h[23]]);
    let info = if version == 1 {
        HeaderInfo {
            version,
            ..HeaderInfo::default()
        }
    } else {
        HeaderInfo {
            version,
            flags,
            span,
        }
    };
    let valid_flags = if kind == FileKind::Log {
        FLAG_COMPACTED
    } else {
        0
    };
    if flags & !valid_flags != 0 && version >= 2 {
        return Err(corrupt(
            6,
            format!("flags within 0x{valid_flags:04x}"),
            format!("0x{flags:04x}"),
        )
        .in_file(path, 0));
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
    Ok(info)
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
    fn compacted_header_roundtrips_and_its_span_is_checked() {
        let p = Path::new("x.log");
        let h = encode_compacted(42, 1000);
        let info = check(&h, FileKind::Log, 42, p).unwrap();
        assert!(info.compacted());
        assert_eq!(info.span, 1000);
        assert!(!check(&encode(FileKind::Log, 42), FileKind::Log, 42, p)
            .unwrap()
            .compacted());
        for byte in [6, 20, 23] {
            let mut bad = h;
            bad[byte] ^= 1;
            assert!(check(&bad, FileKind::Log, 42, p)
                .unwrap_err()
                .is_corruption());
        }
        // The flag means nothing for an index file.
        let mut idx = h;
        idx[0..4].copy_from_slice(&FileKind::OffsetIndex.magic());
        let c = crc_v2(&idx);
        idx[16..20].copy_from_slice(&c.to_le_bytes());
        assert!(check(&idx, FileKind::OffsetIndex, 42, p).is_err());
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
