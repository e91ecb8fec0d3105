//! The crate's only `unsafe` code: shared memory maps of segment and index files, and the
//! block preallocation (`fallocate`) for bytes written past the map with `pwrite`.
//!
//! A file is mapped once, `MAP_SHARED`, for its whole capacity. One [`MapWriter`] (owned by the
//! single writer of the log, behind its mutex) fills the map from the front; any number of readers
//! hold an `Arc<Mapping>` and see the prefix `[0, published)`. The writer stores into bytes at or
//! beyond `published` and then moves `published` forward with a release store, so a reader that
//! loads it with acquire ordering sees every byte below it fully written.
//!
//! The invariants that make the borrowed slices sound, enforced by this module's API:
//! 1. **Published bytes never change.** The writer can only reach bytes at or after `published`
//!    (the `spare` slice, or — for large batches, and every batch of a log that fsyncs every
//!    append — `pwrite` through the file at the cursor, which the shared map sees through the
//!    same page cache), and `published` only grows.
//! 2. **Published bytes never vanish.** A mapped file is only ever shortened by
//!    [`MapWriter::seal`], which consumes the writer and cuts the file at `published`, never
//!    below. Pages past the end of a file fault (SIGBUS) only when touched, and no reader can
//!    touch them. Deleting a file (retention) leaves the mapping and its pages alive until the
//!    last `Arc<Mapping>` is dropped.
//! 3. **Nobody else writes the file.** Every log directory is held under an exclusive lock for as
//!    long as a handle is open, and recovery truncates files before they are mapped.
//!
//! Writing through a map into a sparse file faults on every first-touched page, and a full disk
//! turns such a fault into SIGBUS. So the writer prefaults ahead of itself in chunks with
//! `MADV_POPULATE_WRITE`, which allocates the blocks and maps the pages writable in one system
//! call, and reports a full disk as an ordinary error before anything is written.
//!
//! Prefaulting has a price: the kernel zero-fills every fresh page before the writer overwrites
//! it, which for a stream of large batches costs about as much as the copy itself. So large
//! batches skip the map: [`MapWriter::reserve`] allocates their blocks (`fallocate`, no page
//! is touched, a full disk is still an error before anything is written) and the caller
//! `pwrite`s them at the cursor; the kernel copies them into page-cache pages it never zeroes,
//! the same pages the map shows readers.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use memmap2::{Advice, MmapOptions, MmapRaw};

/// How far ahead of the write cursor the writer prefaults. Small: pages prefaulted for a small
/// append are zero-filled whether or not a later large batch `pwrite`s over them.
const POPULATE_CHUNK: usize = 64 << 10;

/// How far ahead of the write cursor [`MapWriter::reserve`] allocates blocks (allocation touches
/// no page, so this can be generous).
const RESERVE_CHUNK: usize = 1 << 20;

/// A shared map of a file whose prefix `[0, published)` is immutable and readable.
pub(crate) struct Mapping {
    raw: MmapRaw,
    published: AtomicUsize,
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping")
            .field("capacity", &self.raw.len())
            .field("published", &self.published())
            .finish()
    }
}

impl Mapping {
    /// Maps the first `len` bytes of an immutable (sealed) file read-only. The file must be at
    /// least `len` bytes long and `len` must be non-zero.
    pub(crate) fn read_only(file: &File, len: usize) -> io::Result<Arc<Mapping>> {
        check_file_covers(file, len)?;
        let raw = MmapOptions::new().len(len).map_raw_read_only(file)?;
        Ok(Arc::new(Mapping {
            raw,
            published: AtomicUsize::new(len),
        }))
    }

    /// An anonymous (memory-only) mapping holding `bytes`: an index rebuilt at open that the
    /// disk had no room to store. It is gone when the last reader drops it.
    pub(crate) fn in_memory(bytes: &[u8]) -> io::Result<Arc<Mapping>> {
        let mut map = MmapOptions::new().len(bytes.len().max(1)).map_anon()?;
        map[..bytes.len()].copy_from_slice(bytes);
        Ok(Arc::new(Mapping {
            raw: MmapRaw::from(map),
            published: AtomicUsize::new(bytes.len()),
        }))
    }

    /// Number of readable bytes.
    pub(crate) fn published(&self) -> usize {
        self.published.load(Ordering::Acquire)
    }

    /// The readable prefix of the file.
    pub(crate) fn bytes(&self) -> &[u8] {
        let len = self.published();
        // SAFETY: `raw` maps at least `len` bytes (published <= capacity is kept by `advance`).
        // Bytes below `published` were fully written before the release store that published
        // them (paired with the acquire load above) and are never written again (invariant 1), nor
        // cut from the file while mapped (invariant 2), nor written by another process
        // (invariant 3). The slice borrows `self`, so the map outlives it.
        unsafe { std::slice::from_raw_parts(self.raw.as_ptr(), len) }
    }

    /// Writes `[start, start + len)` of the map back to the file and waits for the device
    /// (`msync(MS_SYNC)`, which on Linux is an `fdatasync` of that range).
    pub(crate) fn sync_range(&self, start: usize, len: usize) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        self.raw.flush_range(start, len)
    }
}

/// Refuses to map bytes the file does not have: touching them would raise SIGBUS.
fn check_file_covers(file: &File, len: usize) -> io::Result<()> {
    let file_len = file.metadata()?.len();
    if len == 0 || (len as u64) > file_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot map {len} bytes of a {file_len}-byte file"),
        ));
    }
    Ok(())
}

/// `fallocate(FALLOC_FL_KEEP_SIZE)` of `[offset, offset + len)`: allocates blocks (unwritten
/// extents, read as zeros) without changing the file's length or touching the page cache.
fn fallocate_keep_size(file: &File, offset: usize, len: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    loop {
        // SAFETY: `fallocate` reads and writes none of our memory; its only argument that
        // refers to anything is the descriptor, which is valid for the call because `file` is
        // borrowed for it. KEEP_SIZE keeps the file's length, so no mapping's bounds change.
        let rc =
            unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, offset, len) };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Whether an error from prefaulting or reserving means the blocks could not be allocated: a
/// full file system (or quota), or — from `MADV_POPULATE_WRITE` — `EFAULT`, which is how the
/// kernel reports a page fault that would have raised SIGBUS (for a fresh page of a sparse file,
/// an allocation that failed).
fn allocation_failed(e: &io::Error) -> bool {
    crate::error::is_no_space_io(e) || e.raw_os_error() == Some(libc::EFAULT)
}

/// The single writer of a [`Mapping`]: appends bytes after the published prefix. It owns the
/// file it maps (for `fallocate`, `pwrite`, `fsync` and the cut at sealing).
pub(crate) struct MapWriter {
    map: Arc<Mapping>,
    file: File,
    path: PathBuf,
    cursor: usize,
    /// End of the prefix whose pages are mapped writable (prefaulted).
    populated: usize,
    populate_supported: bool,
    /// End of the prefix whose disk blocks are allocated (prefaulted or reserved).
    reserved: usize,
    reserve_supported: bool,
}

impl MapWriter {
    /// Maps `capacity` bytes of `file` (at `path`) read-write. The file must already be at least
    /// `capacity` bytes long (see `File::set_len`), and its first `published` bytes are taken as
    /// written.
    pub(crate) fn new(
        file: File,
        path: &Path,
        capacity: usize,
        published: usize,
    ) -> io::Result<MapWriter> {
        if published > capacity || capacity == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot map {capacity} bytes with {published} already written"),
            ));
        }
        check_file_covers(&file, capacity)?;
        let raw = MmapOptions::new().len(capacity).map_raw(&file)?;
        Ok(MapWriter {
            map: Arc::new(Mapping {
                raw,
                published: AtomicUsize::new(published),
            }),
            file,
            path: path.to_path_buf(),
            cursor: published,
            populated: published,
            populate_supported: true,
            reserved: published,
            reserve_supported: true,
        })
    }

    /// The shared mapping that readers hold.
    pub(crate) fn mapping(&self) -> &Arc<Mapping> {
        &self.map
    }

    /// The mapped file.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Where the next byte goes.
    pub(crate) fn position(&self) -> usize {
        self.cursor
    }

    /// Size of the map.
    pub(crate) fn capacity(&self) -> usize {
        self.map.raw.len()
    }

    /// `cursor + len`, refused past the end of the map (a caller's bug: the log checks room
    /// before it writes, so this is not a full disk).
    fn end_of(&self, len: usize) -> io::Result<usize> {
        self.cursor
            .checked_add(len)
            .filter(|end| *end <= self.capacity())
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "write past the end of the map")
            })
    }

    /// A writable slice of `len` bytes at the cursor, which nobody else can see until
    /// [`advance`](Self::advance) and [`publish`](Self::publish). Prefaults it first; a full
    /// disk is an error here, before anything is written.
    pub(crate) fn spare(&mut self, len: usize) -> io::Result<&mut [u8]> {
        let end = self.end_of(len)?;
        if end > self.populated {
            self.populate(end)?;
        }
        // SAFETY: `[cursor, end)` lies inside the map (checked above). It is at or after
        // `published`, so no reader has a slice over it (invariant 1), and `&mut self` makes this
        // the only writable borrow. Its pages are writable and backed by allocated blocks when
        // populate succeeded; where populate is unsupported a store faults them in as usual.
        Ok(unsafe {
            std::slice::from_raw_parts_mut(self.map.raw.as_mut_ptr().add(self.cursor), len)
        })
    }

    /// Prefaults up to a chunk ahead of the cursor and at least to `end`. When the file system
    /// has no room for the whole chunk, prefaults exactly to `end`: only a lack of space for the
    /// bytes the caller is about to write is an error.
    fn populate(&mut self, end: usize) -> io::Result<()> {
        if !self.populate_supported {
            return Ok(());
        }
        let chunk = end
            .max(self.populated + POPULATE_CHUNK)
            .min(self.capacity());
        match self.populate_to(chunk) {
            Err(e) if chunk > end && allocation_failed(&e) => self.populate_to(end),
            other => other,
        }
    }

    fn populate_to(&mut self, target: usize) -> io::Result<()> {
        if target <= self.populated || !self.populate_supported {
            return Ok(());
        }
        crate::failpoint::hit(crate::failpoint::sites::SEGMENT_ALLOCATE, &self.path)?;
        let (from, len) = (self.populated, target - self.populated);
        match self.map.raw.advise_range(Advice::PopulateWrite, from, len) {
            Ok(()) => {}
            // Kernels before 5.14 do not know MADV_POPULATE_WRITE: write without prefaulting.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                self.populate_supported = false;
                return Ok(());
            }
            // A fault that would have been SIGBUS: for fresh pages of a sparse file, blocks that
            // could not be allocated. `fallocate` tells why with a proper error (ENOSPC), or
            // allocates them, after which the prefault is tried once more.
            Err(e) if e.raw_os_error() == Some(libc::EFAULT) => {
                match fallocate_keep_size(&self.file, from, len) {
                    Ok(()) => self
                        .map
                        .raw
                        .advise_range(Advice::PopulateWrite, from, len)?,
                    Err(f) if crate::error::is_no_space_io(&f) => return Err(f),
                    Err(_) => {
                        return Err(io::Error::new(
                            io::ErrorKind::StorageFull,
                            format!("prefaulting {len} bytes at {from} failed ({e}): no blocks"),
                        ))
                    }
                }
            }
            Err(e) => return Err(e),
        }
        self.populated = target;
        self.reserved = self.reserved.max(target);
        Ok(())
    }

    /// Allocates the disk blocks of `len` bytes at the cursor (and of up to a chunk beyond it,
    /// as far as the file system has room) so that the caller can then write them with `pwrite`
    /// at [`position`](Self::position) without running out of space half-way. Unlike
    /// [`spare`](Self::spare) it touches no page, so the kernel zero-fills nothing. Only a lack
    /// of space for the `len` bytes themselves is an error (`ENOSPC`, nothing written).
    ///
    /// A file system that cannot preallocate is remembered: this returns `Ok(())` without
    /// reserving from then on, and [`can_reserve`](Self::can_reserve) says so.
    pub(crate) fn reserve(&mut self, len: usize) -> io::Result<()> {
        let end = self.end_of(len)?;
        if end <= self.reserved || !self.reserve_supported {
            return Ok(());
        }
        let start = self.reserved.max(self.cursor);
        let chunk = end.max(start + RESERVE_CHUNK).min(self.capacity());
        match self.reserve_range(start, chunk) {
            Err(e) if chunk > end && crate::error::is_no_space_io(&e) => {
                self.reserve_range(start, end)
            }
            other => other,
        }
    }

    fn reserve_range(&mut self, start: usize, end: usize) -> io::Result<()> {
        crate::failpoint::hit(crate::failpoint::sites::SEGMENT_ALLOCATE, &self.path)?;
        match fallocate_keep_size(&self.file, start, end - start) {
            Ok(()) => {
                self.reserved = end;
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                self.reserve_supported = false;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Whether [`reserve`](Self::reserve) can allocate blocks on this file system.
    pub(crate) fn can_reserve(&self) -> bool {
        self.reserve_supported
    }

    /// Moves the cursor past `len` bytes written through [`spare`](Self::spare) or, after
    /// [`reserve`](Self::reserve), with `pwrite` at the cursor.
    pub(crate) fn advance(&mut self, len: usize) {
        self.cursor = (self.cursor + len).min(self.capacity());
    }

    /// Makes everything before the cursor visible to readers.
    pub(crate) fn publish(&self) {
        self.map.published.store(self.cursor, Ordering::Release);
    }

    /// Syncs the published bytes, cuts the file to them, syncs its length, and leaves the
    /// (now immutable) mapping to its readers.
    pub(crate) fn seal(self) -> io::Result<Arc<Mapping>> {
        self.publish();
        crate::failpoint::hit(crate::failpoint::sites::SEGMENT_FSYNC, &self.path)?;
        self.map.sync_range(0, self.cursor)?;
        // Invariant 2: the cut is at `published`, so no reader's slice loses a byte.
        self.file.set_len(self.cursor as u64)?;
        self.file.sync_all()?;
        Ok(self.map)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{FileExt, MetadataExt};

    use super::*;

    const CAPACITY: usize = 4 << 20;

    fn sparse_file(dir: &tempfile::TempDir) -> File {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("segment"))
            .unwrap();
        file.set_len(CAPACITY as u64).unwrap();
        file
    }

    /// Bytes of disk the file occupies (`st_blocks` counts 512-byte units).
    fn allocated(file: &File) -> u64 {
        file.metadata().unwrap().blocks() * 512
    }

    #[test]
    fn reserve_allocates_blocks_ahead_without_changing_the_length() {
        let dir = tempfile::tempdir().unwrap();
        let file = sparse_file(&dir);
        let mut w = MapWriter::new(
            file.try_clone().unwrap(),
            &dir.path().join("segment"),
            CAPACITY,
            0,
        )
        .unwrap();
        assert_eq!(allocated(&file), 0, "a fresh sparse file has no blocks");
        w.reserve(10_000).unwrap();
        if !w.can_reserve() {
            return; // this file system cannot preallocate; `reserve` said so
        }
        assert!(
            allocated(&file) >= RESERVE_CHUNK as u64,
            "a chunk is reserved ahead"
        );
        assert_eq!(file.metadata().unwrap().len(), CAPACITY as u64);
        // Bytes written with pwrite at the cursor are what readers see once published.
        file.write_all_at(b"through the file", 0).unwrap();
        w.advance(16);
        w.publish();
        assert_eq!(w.mapping().bytes(), b"through the file");
        // Within the reserved chunk no further allocation happens; past the map it is refused.
        w.reserve(RESERVE_CHUNK - 16).unwrap();
        assert_eq!(w.reserved, RESERVE_CHUNK);
        let past = w.reserve(CAPACITY).unwrap_err();
        assert_eq!(past.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn reserve_never_reaches_past_the_map() {
        let dir = tempfile::tempdir().unwrap();
        let file = sparse_file(&dir);
        let mut w = MapWriter::new(
            file.try_clone().unwrap(),
            &dir.path().join("segment"),
            CAPACITY,
            CAPACITY - 100,
        )
        .unwrap();
        w.reserve(100).unwrap();
        assert!(w.reserved <= CAPACITY);
        assert_eq!(file.metadata().unwrap().len(), CAPACITY as u64);
        assert!(w.reserve(101).is_err());
    }

    #[test]
    fn prefaulting_counts_as_reserved() {
        let dir = tempfile::tempdir().unwrap();
        let file = sparse_file(&dir);
        let mut w = MapWriter::new(
            file.try_clone().unwrap(),
            &dir.path().join("segment"),
            CAPACITY,
            0,
        )
        .unwrap();
        w.spare(100).unwrap();
        if w.populate_supported {
            assert_eq!(w.reserved, POPULATE_CHUNK);
            let before = allocated(&file);
            w.reserve(100).unwrap();
            assert_eq!(
                allocated(&file),
                before,
                "blocks already there are not reserved again"
            );
        }
    }
}
