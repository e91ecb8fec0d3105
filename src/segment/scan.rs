//! Recovery scan: walk the batches of a data file from a known-good position and find where the
//! valid log ends.
//!
//! A batch is valid when its framing is in range, its CRC matches and its base offset is the
//! next offset expected (the log is contiguous) or, in a segment written by the log cleaner, at
//! least that (the cleaner leaves gaps where it removed records). The scan stops at the first batch that is not:
//! after a crash that is a torn write, and everything from there on is cut away by the caller.
//! Twelve zero bytes where a batch would start are the unwritten (preallocated) rest of an active
//! segment: a clean end, not an error.
//!
//! The framing of one batch ([`Scanner::step`]) is the only code that walks a data file: the
//! log and recovery scan a mapped file as a slice ([`scan`]); the inspection tools scan a file
//! that another process may be writing or cutting, read with `pread` into their own buffer
//! (`inspect/scanner.rs`). Both reach the bytes through [`ReadAt`], so a change to the batch
//! format or to what makes a batch valid is made here once.

use crate::error::{corrupt, Error, Result};
use crate::record::codec::{BatchHeader, Layout, BATCH_LENGTH};
use crate::record::kafka;

/// The batch layout of a data file whose first bytes are `head` (its file header, FORMAT.md
/// section 2: the version at bytes 4..6), Kafka's when the header is too short to say. Callers
/// have checked the header; this only reads the version.
pub fn layout_of_file(head: &[u8]) -> Layout {
    match head.get(4..6) {
        Some(v) => Layout::of_segment_version(u16::from_le_bytes([v[0], v[1]])),
        None => Layout::Kafka,
    }
}

/// Where a [`Scanner`] gets a data file's bytes: a slice (a mapped file) or a file read on
/// demand. Positions are file positions.
pub trait ReadAt {
    /// The end of the bytes that may be read. A file read on demand may report a smaller end
    /// after a [`load`](Self::load) found it shorter (another process cut it).
    fn end(&self) -> u64;

    /// Makes `len` bytes at `pos` available to [`bytes`](Self::bytes); `false` if the source
    /// ends before `pos + len` (the scan then ends where the source does).
    ///
    /// # Errors
    /// [`Io`](crate::ErrorKind::Io) if the file cannot be read.
    fn load(&mut self, pos: u64, len: usize) -> Result<bool>;

    /// The `len` bytes at `pos`, if a [`load`](Self::load) made them available.
    fn bytes(&self, pos: u64, len: usize) -> Option<&[u8]>;
}

impl ReadAt for &[u8] {
    fn end(&self) -> u64 {
        self.len() as u64
    }

    fn load(&mut self, pos: u64, len: usize) -> Result<bool> {
        Ok(pos
            .checked_add(len as u64)
            .is_some_and(|end| end <= self.len() as u64))
    }

    fn bytes(&self, pos: u64, len: usize) -> Option<&[u8]> {
        let start = usize::try_from(pos).ok()?;
        self.get(start..start.checked_add(len)?)
    }
}

/// What the next step of a scan found.
#[derive(Debug)]
pub enum Step {
    /// A framed batch at `pos` whose header passed [`BatchHeader::parse`]; its bytes are
    /// [`Scanner::batch_bytes`]. Whether its CRC matches is `crc_ok`: the recovery scan stops at
    /// a mismatch, the inspection tools report it and go on.
    Batch {
        /// File position of the batch.
        pos: u64,
        /// Its header.
        header: BatchHeader,
        /// Whether its CRC matches.
        crc_ok: bool,
    },
    /// Twelve zero bytes (the unwritten rest of an active segment) at `pos`.
    Zeros {
        /// File position of the zeros.
        pos: u64,
    },
    /// The end of the source.
    End,
    /// Bytes at `pos` that are not a well-framed batch: the scan cannot go on. Positions in the
    /// error are file positions; it names no file (the caller knows it).
    Bad {
        /// File position of the bad batch.
        pos: u64,
        /// What is wrong there.
        error: Error,
    },
}

/// Walks the batches of one data file, one [`step`](Self::step) at a time.
#[derive(Debug)]
pub struct Scanner<S> {
    src: S,
    pos: u64,
    max_batch_bytes: usize,
    /// The layout of the file's batches (from its header's version).
    layout: Layout,
    /// The last batch returned: its position and length.
    last: (u64, usize),
}

impl<S: ReadAt> Scanner<S> {
    /// A scan of `src`, whose batches have `layout`, from `start`; batches longer than
    /// `max_batch_bytes` are bad.
    pub fn new(src: S, start: u64, max_batch_bytes: usize, layout: Layout) -> Scanner<S> {
        Scanner {
            src,
            pos: start,
            max_batch_bytes,
            layout,
            last: (0, 0),
        }
    }

    /// Where the next batch starts.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// Moves the scan to `pos`.
    pub fn seek(&mut self, pos: u64) {
        self.pos = pos;
    }

    /// The source.
    pub fn source(&self) -> &S {
        &self.src
    }

    /// Reads and frames the next batch; moves past it when it is well framed.
    ///
    /// # Errors
    /// Only the source's: [`Io`](crate::ErrorKind::Io) when a file read fails.
    pub fn step(&mut self) -> Result<Step> {
        let pos = self.pos;
        let end = self.src.end();
        if pos >= end {
            return Ok(Step::End);
        }
        let left = end - pos;
        let prefix = (BATCH_LENGTH.end as u64).min(left) as usize;
        if !self.src.load(pos, prefix)? {
            return Ok(Step::End);
        }
        let Some(head) = self.src.bytes(pos, prefix) else {
            return Ok(Step::End);
        };
        if head.iter().all(|b| *b == 0) {
            return Ok(Step::Zeros { pos });
        }
        if prefix < BATCH_LENGTH.end {
            return Ok(Step::Bad {
                pos,
                error: corrupt(
                    pos,
                    "a 12-byte batch prefix (offset and length)",
                    format!("{left} bytes before the end"),
                ),
            });
        }
        // The length field is at bytes 8..12 in both layouts: little-endian in format 1/2,
        // big-endian (and signed: a negative one is bad) in Kafka's.
        let len = match self.layout {
            Layout::Legacy => u32::from_le_bytes([head[8], head[9], head[10], head[11]]),
            Layout::Kafka => kafka::batch_length(head).unwrap_or(u32::MAX),
        };
        let total = u64::from(len) + BATCH_LENGTH.end as u64;
        if total > left {
            return Ok(Step::Bad {
                pos,
                error: corrupt(
                    pos + BATCH_LENGTH.start as u64,
                    format!("a batch length that ends by byte {}", self.src.end()),
                    format!("length {len} (a batch ending at byte {})", pos + total),
                ),
            });
        }
        let total = total as usize;
        if !self.src.load(pos, total)? {
            return Ok(Step::End);
        }
        let Some(bytes) = self.src.bytes(pos, total) else {
            return Ok(Step::End);
        };
        match BatchHeader::parse_stored(bytes, self.max_batch_bytes, self.layout) {
            Ok(header) => {
                let crc_ok = header.verify_crc(bytes).is_ok();
                self.last = (pos, total);
                self.pos = pos + total as u64;
                Ok(Step::Batch {
                    pos,
                    header,
                    crc_ok,
                })
            }
            Err(e) => Ok(Step::Bad {
                pos,
                error: e.in_file_position(pos),
            }),
        }
    }

    /// The bytes of the batch the last [`step`](Self::step) returned (empty before one).
    pub fn batch_bytes(&self) -> &[u8] {
        self.src.bytes(self.last.0, self.last.1).unwrap_or(&[])
    }

    /// Why the batch the last [`step`](Self::step) returned with `crc_ok: false` fails its CRC
    /// check, at its file position.
    pub fn crc_error(&self, header: &BatchHeader) -> Error {
        header
            .verify_crc(self.batch_bytes())
            .err()
            .unwrap_or_else(|| corrupt(0, "a matching CRC", "a mismatch"))
            .in_file_position(self.last.0)
    }
}

/// Where a scan ended.
#[derive(Debug)]
pub struct ScanEnd {
    /// Byte position just after the last valid batch.
    pub end: usize,
    /// Offset after the last valid batch.
    pub next_offset: u64,
    /// Number of valid batches seen.
    pub batches: u64,
    /// Why the scan stopped before the end of `bytes`, when it was not a clean end. Positions in
    /// the error are relative to the start of `bytes`.
    pub error: Option<Error>,
}

/// Scans `bytes` (a whole data file, whose header says the batches' layout) from `start`, expecting the first batch to have base offset
/// `next_offset` (or, with `gaps`, at least that), and calls `on_batch(position, header)` for each
/// valid batch.
pub fn scan(
    bytes: &[u8],
    start: usize,
    mut next_offset: u64,
    max_batch_bytes: usize,
    gaps: bool,
    mut on_batch: impl FnMut(usize, &BatchHeader),
) -> ScanEnd {
    let mut end = start;
    let mut batches = 0;
    let error = if start > bytes.len() {
        Some(corrupt(
            start as u64,
            "a position inside the file",
            "a position past its end",
        ))
    } else {
        let mut s = Scanner::new(bytes, start as u64, max_batch_bytes, layout_of_file(bytes));
        loop {
            // A slice source cannot fail to read.
            let step = match s.step() {
                Ok(step) => step,
                Err(e) => break Some(e),
            };
            match step {
                Step::End | Step::Zeros { .. } => break None,
                Step::Bad { error, .. } => break Some(error),
                Step::Batch {
                    pos,
                    header: h,
                    crc_ok,
                } => {
                    if !crc_ok {
                        break Some(s.crc_error(&h));
                    }
                    if h.base_offset < next_offset || (h.base_offset != next_offset && !gaps) {
                        break Some(corrupt(
                            pos,
                            if gaps {
                                format!("base offset {next_offset} or more")
                            } else {
                                format!("base offset {next_offset}")
                            },
                            format!("{}", h.base_offset),
                        ));
                    }
                    on_batch(pos as usize, &h);
                    end = s.pos() as usize;
                    next_offset = h.next_offset();
                    batches += 1;
                }
            }
        }
    };
    ScanEnd {
        end,
        next_offset,
        batches,
        error,
    }
}
