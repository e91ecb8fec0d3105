//! File-system helpers with the fsync ordering the log relies on, each call with its reason.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};

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

fn write_atomic_inner(path: &Path, bytes: &[u8], sync_dir_after: bool) -> Result<()> {
    let tmp = tmp_path(path);
    let mut f = File::create(&tmp).map_err(|e| Error::io("create temp file", &tmp, e))?;
    f.write_all(bytes)
        .map_err(|e| Error::io("write temp file", &tmp, e))?;
    // NOTE: the content must be durable before the rename is, or a crash could leave the new
    // name pointing at an empty file.
    f.sync_all()
        .map_err(|e| Error::io("fsync temp file", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("rename temp file", path, e))?;
    if sync_dir_after {
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
    }
    Ok(())
}

/// Replaces `path` with `bytes` by rename, without any fsync: for files whose loss in a crash is
/// harmless (the published group membership, which is not durable anyway).
pub(crate) fn write_unsynced(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    std::fs::write(&tmp, bytes).map_err(|e| Error::io("write temp file", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("rename temp file", path, e))
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
