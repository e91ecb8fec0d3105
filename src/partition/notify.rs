//! [`Notify`]: how consumers waiting in `poll` learn that something was appended.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

/// Wakes consumers waiting in `poll` when anything is appended (or a group changes).
pub(crate) struct Notify {
    seq: AtomicU64,
    waiters: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Notify {
    pub(crate) fn new() -> Notify {
        Notify {
            seq: AtomicU64::new(0),
            waiters: AtomicUsize::new(0),
            lock: Mutex::new(()),
            cv: Condvar::new(),
        }
    }

    /// Registers the caller as a possible waiter, before it looks for work, and returns the
    /// event count to pass to [`wait`](Self::wait). Dropping the guard unregisters.
    pub fn register(&self) -> (WaiterGuard<'_>, u64) {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        // Pairs with the fence in `notify`: the caller's later look for work (an acquire load
        // of a high watermark) cannot move before the registration.
        std::sync::atomic::fence(Ordering::SeqCst);
        (WaiterGuard(self), self.seq.load(Ordering::SeqCst))
    }

    /// Signals an event (after the change it announces is published). Costs one fence and a
    /// shared load when nobody waits, so producers can call it on every send.
    pub fn notify(&self) {
        // NOTE: the fence orders the caller's publication (say a high watermark store) before
        // the `waiters` load. A waiter registers (SeqCst) before it looks for work, so either it
        // sees the publication, or we see it registered and wake it.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::Relaxed) > 0 {
            self.seq.fetch_add(1, Ordering::SeqCst);
            let _g = self.lock.lock();
            self.cv.notify_all();
        }
    }

    /// Sleeps until an event after `seen` or `deadline`, whichever comes first. The caller must
    /// hold the guard from [`register`](Self::register) that returned `seen`.
    pub fn wait(&self, seen: u64, deadline: Instant) {
        let mut g = self.lock.lock();
        while self.seq.load(Ordering::SeqCst) == seen && Instant::now() < deadline {
            self.cv.wait_until(&mut g, deadline);
        }
    }
}

/// Unregisters a waiter of [`Notify`] when dropped.
pub(crate) struct WaiterGuard<'a>(&'a Notify);

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}
