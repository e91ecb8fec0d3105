//! Who holds a directory's lock, found without taking it.
//!
//! Trying the lock would be a write of sorts: for an instant the directory would be locked, and
//! an application opening it just then would fail. Instead the kernel's table of file locks
//! (`/proc/locks`, Linux) is searched for the lock file's inode, and the holder's pid is read
//! from the lock file (where [`Store::open`](crate::Store::open) writes it).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The state of a directory's `.lock`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockState {
    /// Nobody holds it (or there is no lock file).
    Free,
    /// A process holds it.
    Held {
        /// The holder's pid, when known.
        pid: Option<u32>,
    },
    /// The kernel's lock table could not be read; `pid` is what the lock file names (the last
    /// holder, who may be gone).
    Unknown {
        /// The pid in the lock file.
        pid: Option<u32>,
    },
}

/// Reads the state of `dir/.lock`.
pub fn lock_state(dir: &Path) -> LockState {
    let path = dir.join(".lock");
    let Ok(meta) = std::fs::metadata(&path) else {
        return LockState::Free;
    };
    let file_pid = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    let Ok(table) = std::fs::read_to_string("/proc/locks") else {
        return LockState::Unknown { pid: file_pid };
    };
    let dev = meta.dev();
    let (major, minor) = (
        ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff),
        (dev & 0xff) | ((dev >> 12) & !0xff),
    );
    for line in table.lines() {
        // "1: FLOCK  ADVISORY  WRITE 7978 fe:00:10010642 0 EOF" (a "->" marks a waiter)
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) == Some(&"->") {
            continue;
        }
        let Some(idx) = fields.iter().position(|f| f.matches(':').count() == 2) else {
            continue;
        };
        let mut parts = fields[idx].split(':');
        let (Some(ma), Some(mi), Some(ino)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let same = ino.parse::<u64>().ok() == Some(meta.ino())
            && u64::from_str_radix(ma, 16).ok() == Some(major)
            && u64::from_str_radix(mi, 16).ok() == Some(minor);
        if same {
            let kernel_pid = idx
                .checked_sub(1)
                .and_then(|i| fields.get(i))
                .and_then(|p| p.parse::<u32>().ok());
            return LockState::Held {
                pid: file_pid.or(kernel_pid),
            };
        }
    }
    LockState::Free
}
