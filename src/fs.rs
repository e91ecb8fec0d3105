//! File-system helpers with the fsync ordering the log relies on, each call with its reason.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};
use crate::failpoint::{self, sites};

/// The directory of Riverbed Streams' state snapshots inside a store directory (FORMAT.md
/// 8.5). Named here, below both, because the store must know it too: it is never a partition
/// directory.
pub(crate) const STREAMS_DIR: &str = "streams";

/// fsyncs a directory so that files created, renamed or removed in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))
}

/// Replaces `path` with `bytes` atomically: write a temp file, fsync it, rename it over `path`,
/// fsync the directory. After a crash the file holds either the old or the new bytes.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_inner(path, bytes, true)
}

/// Like [`write_atomic`] but leaves the rename's durability to the next directory sync, for files
/// where finding the previous version after a crash is harmless (the recovery checkpoint).
pub(crate) fn write_replace(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_inner(path, bytes, false)
}

/// The temp file is written, synced and renamed; until the rename `path` is untouched. A full
/// disk on the way ([`NoSpace`](crate::ErrorKind::NoSpace): creating, writing or renaming the
/// temp file) is clean: the temp file is removed and `path` holds its old bytes, so the caller
/// may retry. A failed fsync (of the temp file or, after the rename, of the directory) is
/// [`Io`](crate::ErrorKind::Io), never `NoSpace`: after the rename whether it is durable is
/// unknown, and the callers that must know treat it as a failed fsync.
fn write_atomic_inner(path: &Path, bytes: &[u8], sync_dir_after: bool) -> Result<()> {
    let tmp = tmp_path(path);
    let written = write_tmp(&tmp, bytes).and_then(|()| {
        failpoint::hit(sites::FILE_RENAME, path)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| Error::io("rename temp file", path, e))
    });
    if written.is_err() {
        // Nothing refers to the temp file; removing it gives back what it took.
        let _ = std::fs::remove_file(&tmp);
        return written;
    }
    if sync_dir_after {
        if let Some(dir) = path.parent() {
            sync_dir(dir).map_err(Error::into_unclean)?;
        }
    }
    Ok(())
}

fn write_tmp(tmp: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = failpoint::hit(sites::FILE_CREATE, tmp)
        .and_then(|()| File::create(tmp))
        .map_err(|e| Error::io("create temp file", tmp, e))?;
    failpoint::hit(sites::FILE_WRITE, tmp)
        .and_then(|()| f.write_all(bytes))
        .map_err(|e| Error::io("write temp file", tmp, e))?;
    // NOTE: the content must be durable before the rename is, or a crash could leave the new
    // name pointing at an empty file.
    failpoint::hit(sites::FILE_FSYNC, tmp)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io("fsync temp file", tmp, e).into_unclean())
}

/// Removes `path` if it exists and makes the removal durable: for derived files that cannot be
/// written for lack of space and would mislead if an old version stayed (removing needs no
/// space and frees some).
pub(crate) fn remove_durably(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("remove file", path, e).into_unclean()),
    }
    match path.parent() {
        Some(dir) => sync_dir(dir).map_err(Error::into_unclean),
        None => Ok(()),
    }
}

/// Replaces `path` with `bytes` by rename, without any fsync: for files whose loss in a crash is
/// harmless (the published group membership, which is not durable anyway).
pub(crate) fn write_unsynced(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let written = std::fs::write(&tmp, bytes)
        .map_err(|e| Error::io("write temp file", &tmp, e))
        .and_then(|()| {
            std::fs::rename(&tmp, path).map_err(|e| Error::io("rename temp file", path, e))
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The temp file name used by the atomic writes for `path`.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// An exclusive lock on a directory, held for the life of the value (an OS file lock on
/// `dir/.lock`, released by the kernel even if the process dies).
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open lock file", &path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                // The holder wrote its pid (below) once it had the lock.
                let pid = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok());
                return Err(ErrorKind::Locked { path, pid }.into());
            }
            Err(TryLockError::Error(e)) => return Err(Error::io("lock directory", &path, e)),
        }
        // The pid is for people and tools wondering who holds the lock; the lock itself is the
        // kernel's. It is written in place at a fixed width: truncating the file would make the
        // next fsync of anything in the directory wait for a journal commit.
        let line = format!("{:<20}\n", std::process::id());
        let _ = std::os::unix::fs::FileExt::write_all_at(&file, line.as_bytes(), 0);
        if file.metadata().is_ok_and(|m| m.len() != line.len() as u64) {
            let _ = file.set_len(line.len() as u64);
        }
        Ok(DirLock { _file: file })
    }
}
