//! Fault injection for tests: make the Nth write, fsync, rename, allocation or file creation at
//! a named I/O site fail with a chosen error.
//!
//! Every I/O call on a write path goes through [`hit`] with its site name and the file it
//! touches. Without the `failpoints` cargo feature (the default, and every user's build) `hit`
//! is an inline `Ok(())` and compiles to nothing. With it, a test arms a site:
//!
//! ```ignore
//! use riverbed::failpoint::{self, sites};
//! failpoint::arm(sites::SEGMENT_CREATE, dir.path(), 1, failpoint::ENOSPC);
//! ```
//!
//! and the first call at that site on a path under `dir` fails with `ENOSPC`, once; the site then
//! disarms itself. Arming is scoped by a path prefix so that tests running in parallel in one
//! binary (each in its own temp directory) do not see each other's faults. The registry is a
//! mutex-guarded list behind an atomic "anything armed" flag, so an unarmed build with the
//! feature pays one relaxed load per site.
//!
//! The sites are the places where Riverbed decides what a failure means (see ARCHITECTURE.md,
//! "a full disk is reported before anything is written"): allocation and creation sites fail
//! cleanly with [`ErrorKind::NoSpace`](crate::ErrorKind::NoSpace), and sync and data-write sites
//! poison the log.

use std::io;
use std::path::Path;

/// The named I/O sites. [`ALL`](sites::ALL) lists them for tests that fail each in turn.
pub mod sites {
    /// Creating a segment or index file of a new segment (`open(O_CREAT|O_EXCL)`).
    pub const SEGMENT_CREATE: &str = "segment.create";
    /// Writing the 24-byte header of a new segment or index file.
    pub const SEGMENT_HEADER: &str = "segment.header";
    /// Sizing a segment or index file to its capacity (`set_len`, sparse).
    pub const SEGMENT_SET_LEN: &str = "segment.set_len";
    /// Reserving disk blocks ahead of the write cursor (`fallocate`, or the prefault of the map).
    pub const SEGMENT_ALLOCATE: &str = "segment.allocate";
    /// Writing a batch into reserved blocks (`pwrite`).
    pub const SEGMENT_WRITE: &str = "segment.write";
    /// Syncing a segment's data or indexes (`msync`, `fsync`), also while sealing it.
    pub const SEGMENT_FSYNC: &str = "segment.fsync";
    /// Creating the temp file of an atomic replace (`recovery-point`, `producer-state`,
    /// `.txnindex`, `topics`, `cleaner-checkpoint`, streams checkpoints, rebuilt indexes).
    pub const FILE_CREATE: &str = "file.create";
    /// Writing the temp file of an atomic replace.
    pub const FILE_WRITE: &str = "file.write";
    /// Syncing the temp file of an atomic replace.
    pub const FILE_FSYNC: &str = "file.fsync";
    /// Renaming the temp file of an atomic replace over its target.
    pub const FILE_RENAME: &str = "file.rename";
    /// Creating or writing a segment the log cleaner writes (`.cleaned` files).
    pub const CLEANED_WRITE: &str = "cleaned.write";

    /// Every site.
    #[cfg(feature = "failpoints")]
    pub const ALL: &[&str] = &[
        SEGMENT_CREATE,
        SEGMENT_HEADER,
        SEGMENT_SET_LEN,
        SEGMENT_ALLOCATE,
        SEGMENT_WRITE,
        SEGMENT_FSYNC,
        FILE_CREATE,
        FILE_WRITE,
        FILE_FSYNC,
        FILE_RENAME,
        CLEANED_WRITE,
    ];
}

/// `ENOSPC`: no space left on device.
#[cfg(feature = "failpoints")]
pub const ENOSPC: i32 = libc::ENOSPC;
/// `EIO`: an I/O error from the device.
#[cfg(feature = "failpoints")]
pub const EIO: i32 = libc::EIO;

/// Called at every I/O site before the real call: fails when a test armed this site for `path`.
#[inline(always)]
pub(crate) fn hit(site: &'static str, path: &Path) -> io::Result<()> {
    #[cfg(feature = "failpoints")]
    {
        registry::hit(site, path)
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = (site, path);
        Ok(())
    }
}

#[cfg(feature = "failpoints")]
pub use registry::{arm, arm_times, disarm, fired};

#[cfg(feature = "failpoints")]
mod registry {
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    struct Arm {
        site: &'static str,
        under: PathBuf,
        /// Hits still to pass before the failing one (0: the next hit fails).
        skip: u64,
        /// Failing hits still to come once `skip` is spent.
        times: u64,
        errno: i32,
        fired: bool,
    }

    static ARMED: AtomicBool = AtomicBool::new(false);
    static ARMS: Mutex<Vec<Arm>> = Mutex::new(Vec::new());

    fn arms() -> std::sync::MutexGuard<'static, Vec<Arm>> {
        ARMS.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Arms `site` for files under `under`: its `nth` hit there (1 = the next) fails with the OS
    /// error `errno`, once. Replaces an earlier arm of the same site and directory.
    pub fn arm(site: &'static str, under: &Path, nth: u64, errno: i32) {
        arm_times(site, under, nth, 1, errno);
    }

    /// Like [`arm`], but the `nth` hit and the `times - 1` hits after it fail (`u64::MAX`: a
    /// disk that stays full until [`disarm`]).
    pub fn arm_times(site: &'static str, under: &Path, nth: u64, times: u64, errno: i32) {
        let mut a = arms();
        a.retain(|x| !(x.site == site && x.under == under));
        a.push(Arm {
            site,
            under: under.to_path_buf(),
            skip: nth.saturating_sub(1),
            times,
            errno,
            fired: false,
        });
        ARMED.store(true, Ordering::Release);
    }

    /// Removes every arm for files under `under`; returns whether any of them fired.
    pub fn disarm(under: &Path) -> bool {
        let mut a = arms();
        let fired = a.iter().any(|x| x.under == under && x.fired);
        a.retain(|x| x.under != under);
        ARMED.store(!a.is_empty(), Ordering::Release);
        fired
    }

    /// Whether the arm of `site` under `under` has fired.
    pub fn fired(site: &'static str, under: &Path) -> bool {
        arms()
            .iter()
            .any(|x| x.site == site && x.under == under && x.fired)
    }

    pub(super) fn hit(site: &'static str, path: &Path) -> io::Result<()> {
        if !ARMED.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut a = arms();
        for x in a.iter_mut() {
            if x.site != site || x.times == 0 || !path.starts_with(&x.under) {
                continue;
            }
            if x.skip > 0 {
                x.skip -= 1;
                continue;
            }
            x.fired = true;
            x.times -= 1;
            return Err(io::Error::from_raw_os_error(x.errno));
        }
        Ok(())
    }
}
