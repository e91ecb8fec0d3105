//! Batch-by-batch reading of a data file with `pread`, for the read-only tools.
//!
//! The inspection tools never map a file: another process may be writing the active segment
//! (and may cut it when it seals it), which is fine for `pread` into our own buffer but not for a
//! shared map borrowed as `&[u8]` (mmap.rs, invariant 3). Reads go through a buffer of at least
//! one MiB, so a sequential pass costs one system call per MiB.
//!
//! This file is only the byte source ([`PreadFile`]): framing and checking batches is the
//! segment layer's [`Scanner`], the same code the log and recovery use.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::record::codec::BatchHeader;
use crate::segment::scan::{ReadAt, Scanner};

pub(crate) use crate::segment::scan::Step;

/// Bytes read per system call on a sequential pass.
const CHUNK: usize = 1 << 20;

/// A range of a file read with `pread` through a buffer: the [`ReadAt`] of the tools.
pub(crate) struct PreadFile {
    file: File,
    path: PathBuf,
    end: u64,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    buf_pos: u64,
}

impl ReadAt for PreadFile {
    fn end(&self) -> u64 {
        self.end
    }

    /// Reads `len` bytes at `pos` (within the range) into the buffer, or finds that the file has
    /// become shorter than that: a writer sealing the active segment cuts the zeros after its
    /// last batch, and the range then ends where the file does.
    fn load(&mut self, pos: u64, len: usize) -> Result<bool> {
        let have_end = self.buf_pos + self.buf.len() as u64;
        if pos >= self.buf_pos && pos + len as u64 <= have_end {
            return Ok(true);
        }
        let room = usize::try_from(self.end.saturating_sub(pos)).unwrap_or(usize::MAX);
        let want = len.max(CHUNK).min(room).max(len);
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
        Ok(got >= len)
    }

    fn bytes(&self, pos: u64, len: usize) -> Option<&[u8]> {
        let at = usize::try_from(pos.checked_sub(self.buf_pos)?).ok()?;
        self.buf.get(at..at.checked_add(len)?)
    }
}

/// Reads the batches of one data file from a position up to an end: a [`Scanner`] over a
/// [`PreadFile`], whose errors name the file.
pub(crate) struct BatchScanner {
    inner: Scanner<PreadFile>,
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
        // The batch layout, from the file header's version (a short or unreadable header:
        // Kafka's; the callers report bad headers themselves).
        let mut head = [0u8; 6];
        let layout = match std::os::unix::fs::FileExt::read_exact_at(&file, &mut head, 0) {
            Ok(()) => crate::segment::scan::layout_of_file(&head),
            Err(_) => crate::record::codec::Layout::Kafka,
        };
        let src = PreadFile {
            file,
            path: path.to_path_buf(),
            end,
            buf: Vec::new(),
            buf_pos: 0,
        };
        // A batch cannot be larger than the file that holds it.
        let max_batch_bytes = usize::try_from(len).unwrap_or(usize::MAX);
        Ok(BatchScanner {
            inner: Scanner::new(src, start, max_batch_bytes, layout),
        })
    }

    /// The end of the scanned range.
    pub fn end(&self) -> u64 {
        self.inner.source().end
    }

    /// Where the next batch starts.
    pub fn pos(&self) -> u64 {
        self.inner.pos()
    }

    /// Moves the scan to `pos`.
    pub fn seek(&mut self, pos: u64) {
        self.inner.seek(pos);
    }

    /// Reads and frames the next batch; moves past it. A [`Step::Bad`] error names the file.
    pub fn step(&mut self) -> Result<Step> {
        Ok(match self.inner.step()? {
            Step::Bad { pos, error } => Step::Bad {
                pos,
                error: error.in_file(self.path(), 0),
            },
            step => step,
        })
    }

    /// The bytes of the batch the last [`step`](Self::step) returned.
    pub fn batch_bytes(&self) -> &[u8] {
        self.inner.batch_bytes()
    }

    /// Why the batch the last [`step`](Self::step) returned with `crc_ok: false` fails its CRC
    /// check (a file position; no file named).
    pub fn crc_error(&self, header: &BatchHeader) -> Error {
        self.inner.crc_error(header)
    }

    /// Reads `buf.len()` bytes at `pos` directly (no buffering), for index checks and headers.
    pub fn read_at(&self, buf: &mut [u8], pos: u64) -> Result<()> {
        self.inner
            .source()
            .file
            .read_exact_at(buf, pos)
            .map_err(|e| Error::io("read segment", self.path(), e))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.inner.source().path
    }
}

impl std::fmt::Debug for BatchScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchScanner")
            .field("path", &self.path())
            .field("pos", &self.pos())
            .finish()
    }
}

/// Reads exactly `buf.len()` bytes of `file` at `pos`.
pub(crate) fn read_at(file: &File, path: &Path, buf: &mut [u8], pos: u64) -> Result<()> {
    file.read_exact_at(buf, pos)
        .map_err(|e| Error::io("read file", path, e))
}

#[cfg(test)]
mod tests {
    //! The inspection tools and recovery must agree on where the valid part of a data file ends
    //! and why, whatever the damage: both frame batches with `segment::scan`, one over a map,
    //! one over `pread` (whose 1 MiB buffer the files here cross).

    use super::*;
    use crate::error::ErrorKind;
    use crate::record::{BatchBuilder, Compression};
    use crate::segment::file_header::{self, FileKind, FILE_HEADER_LEN};
    use crate::segment::scan;

    /// A data file of base offset 0: batches of one record with values of `sizes` bytes, then
    /// `zeros` zero bytes. Returns the bytes and where each batch starts.
    fn data_file(sizes: &[usize], zeros: usize) -> (Vec<u8>, Vec<usize>) {
        let mut out = file_header::encode(FileKind::Log, 0).to_vec();
        let mut starts = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let mut b = BatchBuilder::new(Compression::None);
            b.append(
                1_700_000_000_000 + i as i64,
                None,
                Some(&vec![b'v'; n]),
                &[],
            );
            let batch = b.build().unwrap();
            starts.push(out.len());
            let at = out.len();
            out.extend_from_slice(batch.as_bytes());
            // The base offset is outside the CRC: set it as an append would.
            out[at..at + 8].copy_from_slice(&(i as u64).to_le_bytes());
        }
        out.resize(out.len() + zeros, 0);
        (out, starts)
    }

    fn reason(e: &Error) -> (u64, String, String) {
        match e.kind() {
            ErrorKind::Corruption {
                position,
                expected,
                found,
                ..
            } => (*position, expected.clone(), found.clone()),
            other => panic!("not a corruption error: {other:?}"),
        }
    }

    /// Where a pread scan of `path` finds the first batch that recovery would not keep, and
    /// why, when it is a framing error.
    fn inspect_end(path: &Path) -> (u64, Option<(u64, String, String)>) {
        let mut s = BatchScanner::open(path, FILE_HEADER_LEN as u64, None).unwrap();
        let (mut end, mut next) = (FILE_HEADER_LEN as u64, 0);
        loop {
            match s.step().unwrap() {
                Step::Batch {
                    pos,
                    header,
                    crc_ok,
                } => {
                    if !crc_ok || header.base_offset != next {
                        return (pos, None);
                    }
                    end = pos + header.total_len() as u64;
                    next = header.next_offset();
                }
                Step::Zeros { pos } => return (pos, None),
                Step::End => return (end, None),
                Step::Bad { pos, error } => return (pos, Some(reason(&error))),
            }
        }
    }

    #[test]
    fn recovery_and_inspection_agree_on_every_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log");
        let (clean, starts) = data_file(&[100, 400_000, 30, 700_000, 10, 300_000], 5000);
        let data_end = starts[5] + (clean.len() - 5000 - starts[5]);
        let mut cases: Vec<(String, Vec<u8>)> = vec![
            ("clean, zeros after".into(), clean.clone()),
            ("clean, cut to its data".into(), clean[..data_end].to_vec()),
        ];
        for &s in &starts[1..] {
            for cut in [1, 5, 11, 12, 13, 40, 60, 1000] {
                cases.push((format!("cut {cut} bytes into the batch at {s}"), {
                    clean[..s + cut].to_vec()
                }));
            }
            let mut d = clean.clone();
            d[s + 8..s + 12].copy_from_slice(&u32::MAX.to_le_bytes());
            cases.push((format!("huge length at {s}"), d));
            let mut d = clean.clone();
            d[s + 12] = 9;
            cases.push((format!("unknown magic at {s}"), d));
            let mut d = clean.clone();
            d[s + 70] ^= 0x20;
            cases.push((format!("flipped payload byte at {s}"), d));
            let mut d = clean.clone();
            d[s + 7] = 1;
            cases.push((format!("wrong base offset at {s}"), d));
        }
        for (what, bytes) in cases {
            std::fs::write(&path, &bytes).unwrap();
            let recovered = scan::scan(&bytes, FILE_HEADER_LEN, 0, bytes.len(), false, |_, _| {});
            let (end, framing) = inspect_end(&path);
            assert_eq!(
                recovered.end as u64, end,
                "{what}: where the valid data ends"
            );
            if let Some(framing) = framing {
                let e = recovered.error.as_ref().expect("a framing error");
                assert_eq!(reason(e), framing, "{what}: why");
            }
        }
    }
}
