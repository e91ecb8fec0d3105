//! The store's small files: each is written whole, replaced atomically, and ends with a CRC-32 of
//! every byte before it, so that a torn or damaged file is recognised when it is read back.
//!
//! Two framings are on disk (FORMAT.md describes each file); the byte layouts are fixed by the
//! format and this module only says them once:
//!
//! ```text
//! // Binary (recovery-point, cleaner-checkpoint, producer-state, streams checkpoints):
//! //   { magic [4] | version u16 | fields ... | crc u32 (CRC-32 of every byte before it) }
//! // Text (topics, group-members):
//! //   <header line>\n <lines>\n ... crc <8 lowercase hex digits: CRC-32 of every byte before this line>\n
//! ```
//!
//! What a damaged file means differs per file and stays with its owner: a recovery checkpoint
//! or a cleaner checkpoint that fails its checks is ignored (recovery scans more, the cleaner
//! cleans again), a damaged producer state snapshot or streams checkpoint is not used (the log
//! or changelog is replayed), a damaged `topics` file stops the store from opening, a damaged
//! `group-members` file shows no groups. The checks here return a typed
//! [`Corruption`](crate::ErrorKind::Corruption) error at a byte position of the file; the
//! owner names the file ([`Error::in_file`]) or falls back.
//!
//! Writing goes through [`crate::fs`] (temp file, fsync, rename, directory fsync, with the
//! `file.*` failpoint sites); [`Durability`] says how much of that each file needs. The store
//! layer writes its two text files itself: `topics` with `fs::write_atomic`, `group-members`
//! with `fs::write_unsynced` (membership is not durable: no fsync at all).

use std::path::Path;

use crate::error::{corrupt, Error, Result};
use crate::record::crc;

/// Bytes of the binary header: magic and version.
pub(crate) const HEADER_LEN: usize = 6;
/// Bytes of the binary trailer: the CRC.
pub(crate) const CRC_LEN: usize = 4;

/// The magic and current version of a binary small file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Binary {
    /// The first four bytes of the file.
    pub magic: [u8; 4],
    /// The version this build writes and reads.
    pub version: u16,
}

impl Binary {
    /// The header: magic and version.
    pub fn header(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&self.magic);
        h[4..6].copy_from_slice(&self.version.to_le_bytes());
        h
    }

    /// A buffer holding the header, for the fields to be appended to, then [`seal`]ed.
    pub fn begin(&self, capacity: usize) -> Vec<u8> {
        let mut b = Vec::with_capacity(capacity.max(HEADER_LEN + CRC_LEN));
        b.extend_from_slice(&self.header());
        b
    }

    /// Checks a whole file: its CRC, magic and version, in that order (a torn file is reported
    /// as a CRC mismatch, whatever its first bytes are). Returns every byte before the CRC,
    /// header included, so that field positions are file positions.
    ///
    /// # Errors
    /// [`Corruption`](crate::ErrorKind::Corruption) at a position of the file.
    pub fn check<'a>(&self, bytes: &'a [u8]) -> Result<&'a [u8]> {
        let (version, body) = self.check_any_version(bytes)?;
        if version != self.version {
            return Err(corrupt(
                4,
                format!("version {}", self.version),
                format!("{version}"),
            ));
        }
        Ok(body)
    }

    /// Like [`check`](Self::check) but leaves the version to the caller (for a file whose
    /// older versions need their own explanation); returns it with the bytes before the CRC.
    ///
    /// # Errors
    /// [`Corruption`](crate::ErrorKind::Corruption) at a position of the file.
    pub fn check_any_version<'a>(&self, bytes: &'a [u8]) -> Result<(u16, &'a [u8])> {
        let body = check_crc(bytes)?;
        let Some(head) = body.first_chunk::<HEADER_LEN>() else {
            return Err(corrupt(
                0,
                format!("a {HEADER_LEN}-byte header (magic and version)"),
                format!("{} bytes before the CRC", body.len()),
            ));
        };
        if head[0..4] != self.magic {
            return Err(corrupt(
                0,
                format!("magic {:?}", String::from_utf8_lossy(&self.magic)),
                format!("{:?}", String::from_utf8_lossy(&head[0..4])),
            ));
        }
        Ok((u16::from_le_bytes([head[4], head[5]]), body))
    }
}

/// Appends the CRC of every byte of `b` to it: the last step of encoding a binary file.
pub(crate) fn seal(b: &mut Vec<u8>) {
    let c = crc::checksum(b);
    b.extend_from_slice(&c.to_le_bytes());
}

/// Writes the CRC of `b[..len - 4]` into its last four bytes: [`seal`] for a file of fixed size
/// encoded in place. Does nothing to a buffer too short to hold a CRC.
pub(crate) fn seal_fixed(b: &mut [u8]) {
    if let Some(at) = b.len().checked_sub(CRC_LEN) {
        let c = crc::checksum(&b[..at]);
        b[at..].copy_from_slice(&c.to_le_bytes());
    }
}

/// Checks the trailing CRC of a binary file; returns the bytes it covers.
fn check_crc(bytes: &[u8]) -> Result<&[u8]> {
    let Some((body, stored)) = bytes.split_last_chunk::<CRC_LEN>() else {
        return Err(corrupt(
            0,
            "a file ending with a 4-byte CRC",
            format!("{} bytes", bytes.len()),
        ));
    };
    crc::verify(body, u32::from_le_bytes(*stored), body.len() as u64)?;
    Ok(body)
}

/// Appends the CRC line to the text of a text file (which ends with a newline).
pub(crate) fn seal_text(mut text: String) -> Vec<u8> {
    let sum = crc::checksum(text.as_bytes());
    text.push_str(&format!("crc {sum:08x}\n"));
    text.into_bytes()
}

/// Checks a text file: UTF-8, a last line `crc <hex>` and the CRC of every byte before it.
/// Returns those bytes (header line included, each line ending with a newline).
///
/// # Errors
/// [`Corruption`](crate::ErrorKind::Corruption) at a position of the file.
pub(crate) fn check_text(bytes: &[u8]) -> Result<&str> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| corrupt(e.valid_up_to() as u64, "UTF-8 text", "invalid UTF-8"))?;
    let body_end = text
        .trim_end_matches('\n')
        .rfind('\n')
        .map(|i| i + 1)
        .ok_or_else(|| {
            corrupt(
                0,
                "a header line and a crc line",
                format!("{} bytes", text.len()),
            )
        })?;
    let (body, crc_line) = text.split_at(body_end);
    let stored = crc_line
        .trim()
        .strip_prefix("crc ")
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| {
            corrupt(
                body_end as u64,
                "a line \"crc <8 hex digits>\"",
                format!("{:?}", crc_line.trim()),
            )
        })?;
    crc::verify(body.as_bytes(), stored, body_end as u64)?;
    Ok(body)
}

/// How much durability a file's replacement needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Temp file, fsync, rename, directory fsync: after a crash the file holds the old or the
    /// new bytes, and once the call returns, the new ones ([`crate::fs::write_atomic`]).
    Synced,
    /// Temp file, fsync, rename; the rename is made durable by the next directory sync. For
    /// files where finding the previous version after a crash is harmless (the checkpoints
    /// that only shorten the next scan) ([`crate::fs::write_replace`]).
    Replace,
}

/// Replaces the file at `path` with `bytes` (an encoded, sealed file).
///
/// # Errors
/// As the [`crate::fs`] function `durability` names: [`NoSpace`](crate::ErrorKind::NoSpace)
/// (clean: the old file is in place) or [`Io`](crate::ErrorKind::Io).
pub(crate) fn write(path: &Path, bytes: &[u8], durability: Durability) -> Result<()> {
    match durability {
        Durability::Synced => crate::fs::write_atomic(path, bytes),
        Durability::Replace => crate::fs::write_replace(path, bytes),
    }
}

/// The bytes of the file at `path`, or `None` if there is none.
///
/// # Errors
/// [`Io`](crate::ErrorKind::Io) naming the file, with `what` as the action (`"read recovery
/// checkpoint"`).
pub(crate) fn read(path: &Path, what: &'static str) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(what, path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const F: Binary = Binary {
        magic: *b"TEST",
        version: 3,
    };

    fn position(e: &Error) -> u64 {
        match e.kind() {
            ErrorKind::Corruption { position, .. } => *position,
            other => panic!("not a corruption error: {other:?}"),
        }
    }

    #[test]
    fn binary_round_trip_and_every_damage() {
        let mut b = F.begin(0);
        b.extend_from_slice(b"fields");
        seal(&mut b);
        assert_eq!(&b[..6], b"TEST\x03\x00");
        assert_eq!(F.check(&b).unwrap(), &b[..b.len() - 4]);
        let mut fixed = b.clone();
        fixed[b.len() - 4..].fill(0);
        seal_fixed(&mut fixed);
        assert_eq!(fixed, b);
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 0x08;
            assert!(F.check(&d).is_err(), "flip at {i}");
        }
        for n in 0..b.len() {
            assert!(F.check(&b[..n]).is_err(), "cut at {n}");
        }
        // Another version, sealed: refused at the version field, or handed to the caller.
        let mut v = Binary { version: 4, ..F }.begin(0);
        v.extend_from_slice(b"fields");
        seal(&mut v);
        assert_eq!(position(&F.check(&v).unwrap_err()), 4);
        assert_eq!(F.check_any_version(&v).unwrap().0, 4);
        // Another magic, sealed.
        let mut m = Binary {
            magic: *b"XXXX",
            ..F
        }
        .begin(0);
        seal(&mut m);
        assert_eq!(position(&F.check(&m).unwrap_err()), 0);
    }

    #[test]
    fn text_round_trip_and_every_damage() {
        let b = seal_text("riverbed-test v1\nline one\n".into());
        assert_eq!(check_text(&b).unwrap(), "riverbed-test v1\nline one\n");
        // Every byte but the last newline, whose flip (to a vertical tab) is whitespace that the
        // reader trims, as it trims a missing final newline.
        for i in 0..b.len() - 1 {
            let mut d = b.clone();
            d[i] ^= 0x01;
            assert!(check_text(&d).is_err(), "flip at {i}");
        }
        for n in 0..b.len() - 1 {
            assert!(check_text(&b[..n]).is_err(), "cut at {n}");
        }
    }
}

/// Damage to try on each small file (used by the owners' tests of their files).
#[cfg(test)]
pub(crate) mod damage {
    use std::path::Path;

    use crate::error::{Error, ErrorKind};
    use crate::record::crc::checksum;

    pub(crate) fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The damage every binary file is tried with: (what, bytes).
    pub(crate) fn mangled_binary(good: &[u8], other_version: u16) -> Vec<(&'static str, Vec<u8>)> {
        let mut bad_crc = good.to_vec();
        let n = bad_crc.len();
        bad_crc[n - 1] ^= 0x01;
        let mut version = good.to_vec();
        version[4..6].copy_from_slice(&other_version.to_le_bytes());
        let c = checksum(&version[..n - 4]);
        version[n - 4..].copy_from_slice(&c.to_le_bytes());
        vec![
            ("bad CRC", bad_crc),
            ("truncated", good[..n - 1].to_vec()),
            ("truncated to its header", good[..6].to_vec()),
            ("empty", Vec::new()),
            ("wrong version", version),
        ]
    }

    /// The text file with its first line replaced by `header`, sealed.
    pub(crate) fn text_with_header(good: &[u8], header: &str) -> Vec<u8> {
        let text = std::str::from_utf8(good).unwrap();
        let body = &text[..text.trim_end_matches('\n').rfind('\n').unwrap() + 1];
        let rest = &body[body.find('\n').unwrap()..];
        let body = format!("{header}{rest}");
        format!("{body}crc {:08x}\n", checksum(body.as_bytes())).into_bytes()
    }

    pub(crate) fn mangled_text(good: &[u8], other_header: &str) -> Vec<(&'static str, Vec<u8>)> {
        let mut bad_crc = good.to_vec();
        bad_crc[0] ^= 0x20;
        let crc_at = good.len() - "crc 00000000\n".len();
        vec![
            ("bad CRC", bad_crc),
            ("truncated in the crc line", good[..good.len() - 3].to_vec()),
            ("truncated before the crc line", good[..crc_at].to_vec()),
            ("empty", Vec::new()),
            ("wrong version", text_with_header(good, other_header)),
        ]
    }

    pub(crate) fn corruption_at(e: &Error) -> (Option<&Path>, u64) {
        match e.kind() {
            ErrorKind::Corruption { path, position, .. } => (path.as_deref(), *position),
            other => panic!("not a corruption error: {other:?}"),
        }
    }
}
