//! Batch-by-batch reading of a data file with `pread`, for the read-only tools.
//!
//! The inspection tools never map a file: another process may be writing the active segment
//! (and may cut it when it seals it), which is fine for `pread` into our own buffer but not for a
//! shared map borrowed as `&[u8]` (mmap.rs, invariant 3). Reads go through a buffer of at least
//! one MiB, so a sequential pass costs one system call per MiB.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{corrupt, Error, Result};
use crate::record::codec::{BatchHeader, BATCH_LENGTH};

/// Bytes read per system call on a sequential pass.
const CHUNK: usize = 1 << 20;

/// What the next step of a scan found.
pub(crate) enum Step {
    /// A framing-checked batch at `pos`; its bytes are [`BatchScanner::batch_bytes`].
    Batch {
        pos: u64,
        header: BatchHeader,
        crc_ok: bool,
    },
    /// Twelve zero bytes (the unwritten rest of an active segment) at `pos`.
    Zeros { pos: u64 },
    /// The end of the range.
    End,
    /// Bytes at `pos` that are not a well-framed batch: the scan cannot go on.
    Bad { pos: u64, error: Error },
}

/// Reads the batches of one data file from a position up to an end.
pub(crate) struct BatchScanner {
    file: File,
    path: PathBuf,
    end: u64,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    buf_pos: u64,
    /// Where the next batch starts.
    pub pos: u64,
    /// The last batch returned: its range in `buf`.
    last: (usize, usize),
    max_batch_bytes: usize,
}

impl BatchScanner {
    /// Opens `path` for a scan of `[start, end)`; `end` = `None` means the file's length.
    pub fn open(path: &Path, start: u64, end: Option<u64>) -> Result<BatchScanner> {
        let file = File::open(path).map_err(|e| Error::io("open segment", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat segment", path, e))?
            .len();
        let end = end.map_or(len, |e| e.min(len));
        Ok(BatchScanner {
            file,
            path: path.to_path_buf(),
            end,
            buf: Vec::new(),
            buf_pos: 0,
            pos: start,
            last: (0, 0),
            // A batch cannot be larger than the file that holds it.
            max_batch_bytes: usize::try_from(len).unwrap_or(usize::MAX),
        })
    }

    /// The end of the scanned range.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Reads `len` bytes at `pos` (within the range) into the buffer; returns their place in it,
    /// or `None` if the file has become shorter than that: a writer sealing the active segment
    /// cuts the zeros after its last batch, and the range then ends where the file does.
    fn fill(&mut self, pos: u64, len: usize) -> Result<Option<usize>> {
        let have_end = self.buf_pos + self.buf.len() as u64;
        if pos >= self.buf_pos && pos + len as u64 <= have_end {
            return Ok(Some((pos - self.buf_pos) as usize));
        }
        let want = len.max(CHUNK).min((self.end - pos) as usize).max(len);
        self.buf.resize(want, 0);
        let mut got = 0;
        while got < want {
            match self.file.read_at(&mut self.buf[got..], pos + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("read segment", &self.path, e)),
            }
        }
        self.buf.truncate(got);
        self.buf_pos = pos;
        if got < want {
            self.end = pos + got as u64;
        }
        Ok((got >= len).then_some(0))
    }

    /// Reads and frames the next batch; moves past it.
    pub fn step(&mut self) -> Result<Step> {
        let pos = self.pos;
        if pos >= self.end {
            return Ok(Step::End);
        }
        let left = self.end - pos;
        let prefix = (BATCH_LENGTH.end as u64).min(left) as usize;
        let Some(at) = self.fill(pos, prefix)? else {
            return Ok(Step::End);
        };
        let head = &self.buf[at..at + prefix];
        if head.iter().all(|b| *b == 0) {
            return Ok(Step::Zeros { pos });
        }
        if prefix < BATCH_LENGTH.end {
            return Ok(self.bad(
                pos,
                corrupt(
                    pos,
                    "a 12-byte batch prefix (offset and length)",
                    format!("{left} bytes before the end"),
                ),
            ));
        }
        let len = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        let total = u64::from(len) + BATCH_LENGTH.end as u64;
        if total > left {
            return Ok(self.bad(
                pos,
                corrupt(
                    pos + BATCH_LENGTH.start as u64,
                    format!("a batch length that ends by byte {}", self.end),
                    format!("length {len} (a batch ending at byte {})", pos + total),
                ),
            ));
        }
        let total = total as usize;
        let Some(at) = self.fill(pos, total)? else {
            return Ok(Step::End);
        };
        let bytes = &self.buf[at..at + total];
        match BatchHeader::parse(bytes, self.max_batch_bytes) {
            Ok(header) => {
                let crc_ok = header.verify_crc(bytes).is_ok();
                self.last = (at, total);
                self.pos = pos + total as u64;
                Ok(Step::Batch {
                    pos,
                    header,
                    crc_ok,
                })
            }
            Err(e) => Ok(self.bad(pos, e.in_file_position(pos))),
        }
    }

    fn bad(&self, pos: u64, e: Error) -> Step {
        Step::Bad {
            pos,
            error: e.in_file(&self.path, 0),
        }
    }

    /// The bytes of the batch the last [`step`](Self::step) returned.
    pub fn batch_bytes(&self) -> &[u8] {
        &self.buf[self.last.0..self.last.0 + self.last.1]
    }

    /// Reads `buf.len()` bytes at `pos` directly (no buffering), for index checks and headers.
    pub fn read_at(&self, buf: &mut [u8], pos: u64) -> Result<()> {
        self.file
            .read_exact_at(buf, pos)
            .map_err(|e| Error::io("read segment", &self.path, e))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads exactly `buf.len()` bytes of `file` at `pos`.
pub(crate) fn read_at(file: &File, path: &Path, buf: &mut [u8], pos: u64) -> Result<()> {
    file.read_exact_at(buf, pos)
        .map_err(|e| Error::io("read file", path, e))
}
