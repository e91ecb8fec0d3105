//! Checkpoint snapshots of task stores, for fast restore (FORMAT.md, section 8.5).
//!
//! A snapshot holds the contents of one store of one task together with the changelog offset it
//! reflects: the store is exactly what replaying the changelog partition below that offset gives
//! (`read_committed` under exactly-once). A restore loads the snapshot and replays only the
//! changelog from its offset. Snapshots are written whole (temp file, fsync, rename), only right
//! after a successful commit, and never changed in place, so a crash at any later point leaves a
//! valid snapshot of an earlier prefix behind: the tail replay brings it up to date.
//!
//! When a snapshot is not used (see [`usable`]), the restore replays the whole changelog, the
//! slow but always-correct path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{corrupt, Error, ErrorKind, Result};
#[cfg(test)]
use crate::record::crc::checksum as crc32;
use crate::small_file::{self, Binary, Durability};

/// The directory of the snapshots, inside the store directory.
pub(crate) const DIR: &str = crate::fs::STREAMS_DIR;
/// Version 2: the rows of timestamped stores (tables, aggregations) hold their timestamp before
/// the value (see [`state`](super::store)). Version 1 files came before that; their rows of
/// such stores have no timestamp, and the file does not say which stores those were, so they
/// are refused (the store is restored from its changelog, which is always correct).
const VERSION: u16 = 2;
const FORMAT: Binary = Binary {
    magic: *b"RVSS",
    version: VERSION,
};
/// Flag bit 0: the snapshot is a `read_committed` prefix (written under exactly-once).
const FLAG_READ_COMMITTED: u16 = 1;

/// The snapshot file of partition `partition` of changelog topic `changelog`.
pub(crate) fn path(store_dir: &Path, changelog: &str, partition: u32) -> PathBuf {
    store_dir
        .join(DIR)
        .join(format!("{changelog}-{partition}.checkpoint"))
}

/// A decoded snapshot.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// The store is the changelog replayed below this offset.
    pub offset: u64,
    /// The replay was `read_committed` (aborted transactions left out).
    pub read_committed: bool,
    /// When the snapshot was written (ms since the epoch).
    pub written_ms: i64,
    pub data: BTreeMap<Vec<u8>, Vec<u8>>,
}

fn len32(n: usize) -> Result<[u8; 4]> {
    u32::try_from(n)
        .map(u32::to_le_bytes)
        .map_err(|_| Error::invalid("a store entry over 4 GiB cannot be checkpointed"))
}

/// The bytes of a snapshot file.
///
/// # Errors
/// [`InvalidArgument`](ErrorKind::InvalidArgument) for a key or value of 4 GiB or more.
pub(crate) fn encode(
    changelog: &str,
    partition: u32,
    offset: u64,
    read_committed: bool,
    written_ms: i64,
    data: &BTreeMap<Vec<u8>, Vec<u8>>,
) -> Result<Vec<u8>> {
    let payload: usize = data.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    let mut b = FORMAT.begin(44 + changelog.len() + payload);
    let flags = if read_committed {
        FLAG_READ_COMMITTED
    } else {
        0
    };
    b.extend_from_slice(&flags.to_le_bytes());
    b.extend_from_slice(&offset.to_le_bytes());
    b.extend_from_slice(&written_ms.to_le_bytes());
    b.extend_from_slice(&partition.to_le_bytes());
    let name_len = u16::try_from(changelog.len())
        .map_err(|_| Error::invalid("changelog topic name too long for a checkpoint"))?;
    b.extend_from_slice(&name_len.to_le_bytes());
    b.extend_from_slice(changelog.as_bytes());
    b.extend_from_slice(&(data.len() as u64).to_le_bytes());
    for (k, v) in data {
        b.extend_from_slice(&len32(k.len())?);
        b.extend_from_slice(k);
        b.extend_from_slice(&len32(v.len())?);
        b.extend_from_slice(v);
    }
    small_file::seal(&mut b);
    Ok(b)
}

/// Reads little-endian fields, turning a short read into a corruption error at its position.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        match self.bytes.get(self.pos..self.pos.saturating_add(n)) {
            Some(s) if self.pos.checked_add(n).is_some() => {
                self.pos += n;
                Ok(s)
            }
            _ => Err(corrupt(
                self.pos as u64,
                format!("{n} bytes of {what}"),
                format!("{} bytes", self.bytes.len().saturating_sub(self.pos)),
            )),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
}

/// Decodes a snapshot file of partition `partition` of `changelog`.
///
/// # Errors
/// [`Corruption`](ErrorKind::Corruption) for a file that is short, fails its CRC, has another
/// magic or version or unknown flags, names another changelog partition, or whose keys are not
/// strictly increasing.
pub(crate) fn decode(bytes: &[u8], changelog: &str, partition: u32) -> Result<Snapshot> {
    let (version, body) = FORMAT.check_any_version(bytes)?;
    let mut r = Reader {
        bytes: body,
        pos: small_file::HEADER_LEN,
    };
    if version != VERSION {
        let expected = if version == 1 {
            format!(
                "version {VERSION} (version 1 snapshots have no row timestamps; the store is \
                 restored from its changelog instead)"
            )
        } else {
            format!("version {VERSION}")
        };
        return Err(corrupt(4, expected, version.to_string()));
    }
    let flags = u16::from_le_bytes(r.array("flags")?);
    if flags & !FLAG_READ_COMMITTED != 0 {
        return Err(corrupt(6, "flags 0 or 1", flags.to_string()));
    }
    let offset = u64::from_le_bytes(r.array("offset")?);
    let written_ms = i64::from_le_bytes(r.array("write time")?);
    let part = r.u32("partition")?;
    let name_len = u16::from_le_bytes(r.array("name length")?) as usize;
    let name = r.take(name_len, "changelog name")?;
    if part != partition || name != changelog.as_bytes() {
        return Err(corrupt(
            24,
            format!("changelog {changelog}-{partition}"),
            format!("{}-{part}", String::from_utf8_lossy(name)),
        ));
    }
    let count = u64::from_le_bytes(r.array("entry count")?);
    let mut entries: Vec<(Vec<u8>, Vec<u8>)> =
        Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(body.len() / 8));
    for _ in 0..count {
        let at = r.pos as u64;
        let klen = r.u32("key length")? as usize;
        let key = r.take(klen, "key")?.to_vec();
        let vlen = r.u32("value length")? as usize;
        let value = r.take(vlen, "value")?.to_vec();
        if entries.last().is_some_and(|(prev, _)| *prev >= key) {
            return Err(corrupt(at, "keys in increasing order", "a smaller key"));
        }
        entries.push((key, value));
    }
    if r.pos != body.len() {
        return Err(corrupt(
            r.pos as u64,
            "the CRC after the last entry",
            format!("{} more bytes", body.len() - r.pos),
        ));
    }
    Ok(Snapshot {
        offset,
        read_committed: flags & FLAG_READ_COMMITTED != 0,
        written_ms,
        // Sorted input: the map is built in one pass.
        data: entries.into_iter().collect(),
    })
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync directory); returns
/// whether it did.
///
/// A snapshot only shortens a restore, so a full disk does not fail the caller (a task handing
/// its partition over): the snapshot is skipped, and an older one at `path` is removed (durably)
/// so that the next restore replays the whole changelog rather than trust a file whose offset
/// may be long behind. `Ok(false)` says so.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> Result<bool> {
    let written = match path.parent() {
        Some(dir) => std::fs::create_dir_all(dir)
            .map_err(|e| Error::io("create checkpoint directory", dir, e))
            .and_then(|()| small_file::write(path, bytes, Durability::Synced)),
        None => small_file::write(path, bytes, Durability::Synced),
    };
    match written {
        Ok(()) => Ok(true),
        Err(e) if e.is_no_space() => {
            tracing::warn!(
                target: "riverbed::streams",
                file = %path.display(),
                error = %e,
                "no space for a state store snapshot; skipped (the next restore replays the changelog)"
            );
            crate::fs::remove_durably(path)?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The bytes of the snapshot at `path`, or `None` if there is none.
pub(crate) fn read(path: &Path) -> Result<Option<Vec<u8>>> {
    small_file::read(path, "read checkpoint")
}

/// Removes the snapshot at `path` if there is one.
pub(crate) fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove checkpoint", path, e)),
    }
}

/// Why a decoded snapshot may not be used for a restore, or `None` if it may:
/// - under exactly-once (`read_committed`) only a snapshot written under exactly-once: one
///   written at-least-once may include records of aborted transactions;
/// - its offset must lie within the changelog partition (`start..=end`, `end` being the last
///   stable offset under exactly-once): otherwise the changelog was truncated, or deleted and
///   created again, since;
/// - it must be younger than the changelog's `delete_retention_ms`: compaction may remove a
///   tombstone written after the snapshot once it is that old, and the tail replay would then
///   miss the deletion.
pub(crate) fn unusable(
    snap: &Snapshot,
    read_committed: bool,
    start: u64,
    end: u64,
    delete_retention_ms: u64,
    now_ms: i64,
) -> Option<String> {
    if read_committed && !snap.read_committed {
        return Some("written at-least-once; exactly-once needs a read_committed one".into());
    }
    if snap.offset < start || snap.offset > end {
        return Some(format!(
            "its offset {} is outside the changelog's {start}..={end}",
            snap.offset
        ));
    }
    let age = now_ms.saturating_sub(snap.written_ms);
    if age < 0 || u64::try_from(age).unwrap_or(u64::MAX) >= delete_retention_ms {
        return Some(format!(
            "written {age} ms ago, not within delete_retention_ms {delete_retention_ms}"
        ));
    }
    None
}

/// Whether `e` is a damaged-file error (as opposed to an I/O failure).
pub(crate) fn is_damage(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Corruption { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BTreeMap<Vec<u8>, Vec<u8>> {
        (0..50u32)
            .map(|i| {
                (
                    format!("{i:03}").into_bytes(),
                    vec![i as u8; (i % 7) as usize],
                )
            })
            .collect()
    }

    #[test]
    fn round_trip() {
        let data = sample();
        let b = encode("app-s-changelog", 3, 77, true, 1234, &data).unwrap();
        let s = decode(&b, "app-s-changelog", 3).unwrap();
        assert_eq!((s.offset, s.read_committed, s.written_ms), (77, true, 1234));
        assert_eq!(s.data, data);
        let empty = encode("c", 0, 0, false, 0, &BTreeMap::new()).unwrap();
        assert_eq!(empty.len(), 4 + 2 + 2 + 8 + 8 + 4 + 2 + 1 + 8 + 4);
        assert!(decode(&empty, "c", 0).unwrap().data.is_empty());
    }

    #[test]
    fn every_damage_is_refused() {
        let b = encode("app-s-changelog", 3, 77, false, 1234, &sample()).unwrap();
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 0x40;
            assert!(decode(&d, "app-s-changelog", 3).is_err(), "flip at {i}");
        }
        for n in 0..b.len() {
            assert!(decode(&b[..n], "app-s-changelog", 3).is_err(), "cut at {n}");
        }
        assert!(decode(&b, "app-s-changelog", 2).is_err());
        assert!(decode(&b, "app-t-changelog", 3).is_err());
    }

    #[test]
    fn a_version_1_snapshot_is_refused_naming_version_2() {
        let mut b = encode("app-s-changelog", 3, 77, false, 1234, &sample()).unwrap();
        b[4..6].copy_from_slice(&1u16.to_le_bytes());
        let n = b.len() - 4;
        let crc = crc32(&b[..n]);
        b[n..].copy_from_slice(&crc.to_le_bytes());
        let e = decode(&b, "app-s-changelog", 3).unwrap_err();
        assert!(is_damage(&e), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("version 2") && msg.contains("no row timestamps"),
            "{msg}"
        );
    }

    #[test]
    fn usability_rules() {
        let s = Snapshot {
            offset: 10,
            read_committed: false,
            written_ms: 1000,
            data: BTreeMap::new(),
        };
        assert_eq!(unusable(&s, false, 0, 10, 500, 1200), None);
        assert!(unusable(&s, true, 0, 10, 500, 1200).is_some());
        assert!(unusable(&s, false, 0, 9, 500, 1200).is_some());
        assert!(unusable(&s, false, 11, 20, 500, 1200).is_some());
        assert!(unusable(&s, false, 0, 10, 500, 1500).is_some());
        assert!(unusable(&s, false, 0, 10, 500, 900).is_some());
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

    fn g_streams() -> Vec<u8> {
        let data: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = [
            (b"k1".to_vec(), b"v1".to_vec()),
            (b"k2".to_vec(), Vec::new()),
        ]
        .into_iter()
        .collect();
        super::encode("app-s-changelog", 3, 77, true, 1234, &data).unwrap()
    }

    // Captured from the code before `small_file` existed (commit 8471fcb), same inputs.
    const STREAMS: &str = "52565353020001004d00000000000000d204000000000000030000000f006170702d732d6368616e67656c6f670200000000000000020000006b31020000007631020000006b3200000000f76bb89d";

    #[test]
    fn streams_checkpoint_bytes_and_damage_are_damage() {
        use super::{decode, is_damage};
        let good = g_streams();
        assert_eq!(hex(&good), STREAMS);
        assert_eq!(decode(&good, "app-s-changelog", 3).unwrap().offset, 77);
        for (what, bytes) in mangled_binary(&good, 3) {
            let e = decode(&bytes, "app-s-changelog", 3).expect_err(what);
            assert!(is_damage(&e), "{what}: {e}");
            if what == "wrong version" {
                assert_eq!(corruption_at(&e).1, 4, "{e}");
                assert!(e.to_string().contains("version 2"), "{e}");
            }
        }
    }
}
