//! A batch-by-batch (or entry-by-entry) dump of one segment or index file: the counterpart of
//! Kafka's `kafka-dump-log`.

use std::fs::File;
use std::path::Path;

use crate::error::{corrupt, Error, Result};
use crate::inspect::scanner::{read_at, BatchScanner, Step};
use crate::record::codec::{BatchHeader, Layout, BASE_OFFSET, BATCH_MAGIC, MAGIC};
use crate::record::kafka;
use crate::record::{BatchRef, ControlType, ProducerFields, TimestampType};
use crate::segment::file_header::{self, FileKind, FILE_HEADER_LEN, SEGMENT_FORMAT_VERSION};
use crate::segment::index::{OffsetEntry, TimeEntry, OFFSET_ENTRY_LEN, TIME_ENTRY_LEN};
use crate::segment::parse_file_name;

/// What the dump found for one batch.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchSummary {
    /// Byte position in the file.
    pub position: u64,
    /// Size in bytes.
    pub size: u64,
    /// Batch format version (magic).
    pub magic: u8,
    /// Offset of the first record.
    pub base_offset: u64,
    /// Offset of the last record.
    pub last_offset: u64,
    /// Number of records.
    pub record_count: u32,
    /// Timestamp of the first record.
    pub first_timestamp: i64,
    /// Largest timestamp.
    pub max_timestamp: i64,
    /// Whose clock the timestamps are.
    pub timestamp_type: TimestampType,
    /// Codec name: `none`, `gzip`, `snappy`, `lz4` or `zstd` (a format 1/2 batch: `none` or
    /// `zstd`).
    pub codec: &'static str,
    /// Producer id, epoch and base sequence (all -1 for a batch without a producer).
    pub producer: ProducerFields,
    /// The transactional attribute bit.
    pub transactional: bool,
    /// For a control batch, what it marks (`None`: not a control batch, or a malformed one).
    pub control: Option<ControlType>,
    /// Whether the batch is a control batch.
    pub is_control: bool,
    /// The stored CRC.
    pub crc: u32,
    /// Whether the stored CRC matches the bytes.
    pub crc_valid: bool,
}

/// One index entry, with whether the data file agrees.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexEntrySummary {
    /// Entry number.
    pub number: usize,
    /// Absolute offset the entry names.
    pub offset: u64,
    /// Byte position it names in the `.log` file.
    pub position: u32,
    /// The timestamp (time index only).
    pub timestamp: Option<i64>,
    /// Whether the batch at `position` of the `.log` file has base offset `offset` (`None` when
    /// the data file could not be read).
    pub matches_data: Option<bool>,
}

/// An item of a dump, in file order.
#[derive(Debug)]
#[non_exhaustive]
pub enum DumpItem<'a> {
    /// The file header.
    Header {
        /// `log`, `index` or `timeindex`.
        kind: &'static str,
        /// The base offset it names.
        base_offset: u64,
        /// Segment format version.
        version: u16,
    },
    /// A well-framed batch, and (when its CRC is valid) a view to decode its records.
    Batch(BatchSummary, Option<BatchRef<'a>>),
    /// An offset index entry.
    OffsetEntry(IndexEntrySummary),
    /// A time index entry.
    TimeEntry(IndexEntrySummary),
    /// A transaction index entry: an aborted transaction (FORMAT.md 4.3).
    AbortedTxn {
        /// Entry number.
        number: usize,
        /// The producer whose transaction was aborted.
        producer_id: i64,
        /// Offset of the transaction's first record in the partition.
        first_offset: u64,
        /// Offset of the abort marker.
        last_offset: u64,
        /// Whether the entry's CRC matches.
        crc_valid: bool,
    },
    /// Bytes that cannot be read as the format says; the dump stops here.
    Bad(Error),
    /// The end of the content: zeros (the preallocated rest of an active file) or the end of the
    /// file, at this byte.
    End {
        /// Byte position.
        position: u64,
        /// Whether zeros (rather than the end of the file) ended it.
        zeros: bool,
    },
}

/// Dumps the `.log`, `.index` or `.timeindex` file at `path`, calling `visit` for each item.
///
/// # Errors
/// [`InvalidArgument`](crate::ErrorKind::InvalidArgument) for a file that is not a segment
/// file; [`Io`](crate::ErrorKind::Io); whatever `visit` returns.
pub fn dump_file(path: &Path, visit: &mut dyn FnMut(DumpItem<'_>) -> Result<()>) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    let kind = match ext {
        "log" => FileKind::Log,
        "index" => FileKind::OffsetIndex,
        "timeindex" => FileKind::TimeIndex,
        "txnindex" => FileKind::TxnIndex,
        _ => {
            return Err(Error::invalid(format!(
                "{} is not a segment file (.log, .index, .timeindex or .txnindex)",
                path.display()
            )))
        }
    };
    let file = File::open(path).map_err(|e| Error::io("open file", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("stat file", path, e))?
        .len();
    let mut head = [0u8; FILE_HEADER_LEN];
    if len < FILE_HEADER_LEN as u64 {
        return visit(DumpItem::Bad(
            corrupt(
                0,
                format!("a {FILE_HEADER_LEN}-byte file header"),
                format!("a file of {len} bytes"),
            )
            .in_file(path, 0),
        ));
    }
    read_at(&file, path, &mut head, 0)?;
    let stored_base = u64::from_le_bytes([
        head[8], head[9], head[10], head[11], head[12], head[13], head[14], head[15],
    ]);
    let base = parse_file_name(name).map_or(stored_base, |(b, _)| b);
    if let Err(e) = file_header::check(&head, kind, base, path) {
        return visit(DumpItem::Bad(e));
    }
    visit(DumpItem::Header {
        kind: ext_name(kind),
        base_offset: base,
        version: u16::from_le_bytes([head[4], head[5]]).min(SEGMENT_FORMAT_VERSION),
    })?;
    match kind {
        FileKind::Log => dump_log(path, visit),
        FileKind::TxnIndex => dump_txn_index(path, &file, len, visit),
        _ => dump_index(path, &file, len, kind, base, visit),
    }
}

fn ext_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Log => "log",
        FileKind::OffsetIndex => "index",
        FileKind::TimeIndex => "timeindex",
        FileKind::TxnIndex => "txnindex",
    }
}

/// The summary of a framed batch.
pub(crate) fn summarize(pos: u64, h: &BatchHeader, crc_ok: bool, bytes: &[u8]) -> BatchSummary {
    let batch = BatchRef::from_checked(bytes, *h);
    BatchSummary {
        position: pos,
        size: h.total_len() as u64,
        magic: h.magic,
        base_offset: h.base_offset,
        last_offset: h.last_offset(),
        record_count: h.record_count,
        first_timestamp: h.first_timestamp,
        max_timestamp: h.max_timestamp,
        timestamp_type: batch.timestamp_type(),
        codec: match h.layout {
            crate::record::codec::Layout::Kafka => crate::record::kafka::codec_name(h.codec()),
            crate::record::codec::Layout::Legacy if batch.is_compressed() => "zstd",
            crate::record::codec::Layout::Legacy => "none",
        },
        producer: batch.producer(),
        transactional: batch.is_transactional(),
        is_control: batch.is_control(),
        control: if crc_ok {
            batch.control_type().ok().flatten()
        } else {
            None
        },
        crc: h.crc,
        crc_valid: crc_ok,
    }
}

fn dump_log(path: &Path, visit: &mut dyn FnMut(DumpItem<'_>) -> Result<()>) -> Result<()> {
    let mut s = BatchScanner::open(path, FILE_HEADER_LEN as u64, None)?;
    loop {
        match s.step()? {
            Step::Batch {
                pos,
                header,
                crc_ok,
            } => {
                let bytes = s.batch_bytes();
                let summary = summarize(pos, &header, crc_ok, bytes);
                let batch = crc_ok.then(|| BatchRef::from_checked(bytes, header));
                visit(DumpItem::Batch(summary, batch))?;
            }
            Step::Zeros { pos } => {
                return visit(DumpItem::End {
                    position: pos,
                    zeros: true,
                })
            }
            Step::End => {
                return visit(DumpItem::End {
                    position: s.pos(),
                    zeros: false,
                })
            }
            Step::Bad { error, .. } => return visit(DumpItem::Bad(error)),
        }
    }
}

fn dump_index(
    path: &Path,
    file: &File,
    len: u64,
    kind: FileKind,
    base: u64,
    visit: &mut dyn FnMut(DumpItem<'_>) -> Result<()>,
) -> Result<()> {
    let entry_len = if kind == FileKind::TimeIndex {
        TIME_ENTRY_LEN
    } else {
        OFFSET_ENTRY_LEN
    };
    let data = File::open(path.with_extension("log")).ok();
    let data_len = data
        .as_ref()
        .and_then(|f| f.metadata().ok())
        .map_or(0, |m| m.len());
    let mut raw = vec![0u8; entry_len];
    let mut pos = FILE_HEADER_LEN as u64;
    let mut number = 0;
    while pos + entry_len as u64 <= len {
        read_at(file, path, &mut raw, pos)?;
        if raw.iter().all(|b| *b == 0) {
            return visit(DumpItem::End {
                position: pos,
                zeros: true,
            });
        }
        let (rel, position, timestamp) = if kind == FileKind::TimeIndex {
            let e = TimeEntry::at(&raw, 0).unwrap_or(TimeEntry {
                timestamp: 0,
                relative_offset: 0,
                position: 0,
            });
            (e.relative_offset, e.position, Some(e.timestamp))
        } else {
            let e = OffsetEntry::at(&raw, 0).unwrap_or(OffsetEntry {
                relative_offset: 0,
                position: 0,
            });
            (e.relative_offset, e.position, None)
        };
        let offset = base + u64::from(rel);
        // The batch's offset and magic fields (the rest is checked by `verify`), in the layout
        // the data file's header version gives.
        let matches_data = data.as_ref().map(|f| {
            let mut head = [0u8; FILE_HEADER_LEN];
            let mut h = [0u8; kafka::MAGIC + 1];
            if u64::from(position) + h.len() as u64 > data_len
                || read_at(f, path, &mut head, 0).is_err()
                || read_at(f, path, &mut h, u64::from(position)).is_err()
            {
                return false;
            }
            match crate::segment::scan::layout_of_file(&head) {
                Layout::Kafka => {
                    h[kafka::BASE_OFFSET] == kafka::base_offset_bytes(offset)
                        && h[kafka::MAGIC] == kafka::MAGIC_V2
                }
                Layout::Legacy => {
                    h[BASE_OFFSET] == offset.to_le_bytes() && (1..=BATCH_MAGIC).contains(&h[MAGIC])
                }
            }
        });
        let entry = IndexEntrySummary {
            number,
            offset,
            position,
            timestamp,
            matches_data,
        };
        visit(if kind == FileKind::TimeIndex {
            DumpItem::TimeEntry(entry)
        } else {
            DumpItem::OffsetEntry(entry)
        })?;
        number += 1;
        pos += entry_len as u64;
    }
    if pos < len {
        return visit(DumpItem::Bad(
            corrupt(
                pos,
                format!("a whole {entry_len}-byte entry"),
                format!("{} bytes before the end", len - pos),
            )
            .in_file(path, 0),
        ));
    }
    visit(DumpItem::End {
        position: pos,
        zeros: false,
    })
}

/// Size of a `.txnindex` entry (FORMAT.md 4.3).
const TXN_ENTRY_LEN: usize = 32;

fn dump_txn_index(
    path: &Path,
    file: &File,
    len: u64,
    visit: &mut dyn FnMut(DumpItem<'_>) -> Result<()>,
) -> Result<()> {
    let mut raw = [0u8; TXN_ENTRY_LEN];
    let mut pos = FILE_HEADER_LEN as u64;
    let mut number = 0;
    let u64_at = |b: &[u8; TXN_ENTRY_LEN], i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[i..i + 8]);
        u64::from_le_bytes(a)
    };
    while pos + TXN_ENTRY_LEN as u64 <= len {
        read_at(file, path, &mut raw, pos)?;
        let stored = u32::from_le_bytes([raw[24], raw[25], raw[26], raw[27]]);
        visit(DumpItem::AbortedTxn {
            number,
            producer_id: u64_at(&raw, 0) as i64,
            first_offset: u64_at(&raw, 8),
            last_offset: u64_at(&raw, 16),
            crc_valid: crate::record::crc::checksum(&raw[0..24]) == stored,
        })?;
        number += 1;
        pos += TXN_ENTRY_LEN as u64;
    }
    if pos < len {
        return visit(DumpItem::Bad(
            corrupt(
                pos,
                format!("a whole {TXN_ENTRY_LEN}-byte entry"),
                format!("{} bytes before the end", len - pos),
            )
            .in_file(path, 0),
        ));
    }
    visit(DumpItem::End {
        position: pos,
        zeros: false,
    })
}
