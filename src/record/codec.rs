//! Byte layout of a record batch: the decoded header both layouts share ([`BatchHeader`], with
//! its [`Layout`]), the record encoding, varints, and the constants of the layout of segment
//! formats 1 and 2 (Riverbed's own, read but no longer written; the Kafka v2 layout that segment
//! format 3 stores is in [`kafka`](super::kafka)).
//!
//! FORMAT.md is the specification; the constants below mirror its tables, and the test
//! `constants_match_format_md` reads FORMAT.md so that the two cannot drift apart.
//!
//! Format 1/2 batches:
//! ```text
//! // Format: { base_offset u64 | batch_length u32 | magic u8 | crc u32 | attributes u16 |
//! //           last_offset_delta u32 | first_timestamp i64 | max_timestamp i64 |
//! //           record_count u32 | producer_id i64 | producer_epoch i16 | base_sequence i32 |
//! //           records }
//! ```
//! Version 1 batches (written before producer ids existed) end their header at `record_count`;
//! they still decode, as batches without a producer.
//! All integers are little-endian. The CRC covers `attributes .. end of batch`, so the log can
//! stamp `base_offset` into a batch at append time without recomputing it.

use std::ops::Range;

use crate::error::{corrupt, Error, Result};
use crate::record::{crc, kafka};

/// Which byte layout a batch has. A segment's file header version decides it (FORMAT.md
/// section 2): versions 1 and 2 hold Riverbed's own batches, version 3 Kafka v2 batches. Every
/// batch this build writes is [`Kafka`](Layout::Kafka).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Kafka's v2 record batch (`DefaultRecordBatch`, magic 2): big-endian, CRC-32C, zigzag
    /// varints, zstd as one frame (segment format 3).
    #[default]
    Kafka,
    /// Riverbed's batch of segment formats 1 and 2 (batch magic 1 or 2): little-endian, CRC-32,
    /// unsigned varints for lengths and counts, zstd behind a 4-byte length.
    Legacy,
}

impl Layout {
    /// The layout of the batches of a data file with file header `version`.
    pub fn of_segment_version(version: u16) -> Layout {
        if version >= 3 {
            Layout::Kafka
        } else {
            Layout::Legacy
        }
    }

    /// Whether lengths, counts and offset deltas are zigzag varints (Kafka) rather than
    /// unsigned ones.
    #[inline]
    pub(crate) fn zigzag(self) -> bool {
        self == Layout::Kafka
    }
}

/// Version of the batch format written by this build (the batch's `magic` byte).
///
/// Compatibility policy: a reader accepts every version up to its own and refuses newer ones with
/// a corruption error naming the byte; a format change that old readers could misread bumps this.
pub const BATCH_MAGIC: u8 = 2;

/// `base_offset`: offset of the first record, stamped by the log at append time.
pub const BASE_OFFSET: Range<usize> = 0..8;
/// `batch_length`: number of bytes that follow this field (magic to end of batch).
pub const BATCH_LENGTH: Range<usize> = 8..12;
/// `magic`: the batch format version.
pub const MAGIC: usize = 12;
/// `crc`: CRC-32 of bytes `ATTRIBUTES.start .. end of batch`.
pub const CRC: Range<usize> = 13..17;
/// `attributes`: compression codec and timestamp type bits.
pub const ATTRIBUTES: Range<usize> = 17..19;
/// `last_offset_delta`: offset of the last record minus `base_offset`.
pub const LAST_OFFSET_DELTA: Range<usize> = 19..23;
/// `first_timestamp`: timestamp (ms since the Unix epoch) of the first record, the base of the
/// records' timestamp deltas; the delete horizon when [`ATTR_DELETE_HORIZON`] is set.
pub const FIRST_TIMESTAMP: Range<usize> = 23..31;
/// `max_timestamp`: largest record timestamp in the batch.
pub const MAX_TIMESTAMP: Range<usize> = 31..39;
/// `record_count`: number of records in the batch.
pub const RECORD_COUNT: Range<usize> = 39..43;
/// `producer_id` (version 2): the idempotent or transactional producer, -1 for none.
pub const PRODUCER_ID: Range<usize> = 43..51;
/// `producer_epoch` (version 2): the producer's epoch, -1 for none.
pub const PRODUCER_EPOCH: Range<usize> = 51..53;
/// `base_sequence` (version 2): sequence number of the first record, -1 for none.
pub const BASE_SEQUENCE: Range<usize> = 53..57;
/// Size of the fixed batch header written by this version; records start here.
pub const HEADER_LEN: usize = 57;
/// Size of a version 1 batch header (no producer fields).
pub const V1_HEADER_LEN: usize = 43;

/// Size of the fixed header of a batch of format version `magic` (1 or 2).
pub const fn header_len(magic: u8) -> usize {
    if magic == 1 {
        V1_HEADER_LEN
    } else {
        HEADER_LEN
    }
}

/// Attribute bits 0..=2: compression codec of the records section.
pub const ATTR_COMPRESSION_MASK: u16 = 0b111;
/// Attribute bit 3: timestamp type (0 = create time, 1 = log-append time).
pub const ATTR_LOG_APPEND_TIME: u16 = 1 << 3;
/// Attribute bit 4 (version 2): the batch belongs to a transaction.
pub const ATTR_TRANSACTIONAL: u16 = 1 << 4;
/// Attribute bit 5 (version 2): a control batch (a transaction marker), not user records.
pub const ATTR_CONTROL: u16 = 1 << 5;
/// Attribute bit 6 (version 2): the log cleaner has set the batch's delete horizon, and
/// `first_timestamp` holds it (Kafka's `deleteHorizonSet`, KIP-534). Its tombstones (and only
/// they: other records stay while their key's latest) go at the first cleaning at or after the
/// horizon. The records' timestamp deltas count from the horizon then, so every record keeps
/// its timestamp; `max_timestamp` (which the time index and retention use) is unchanged.
pub const ATTR_DELETE_HORIZON: u16 = 1 << 6;
/// Every attribute bit version 1 defines.
pub const ATTR_KNOWN_BITS_V1: u16 = ATTR_COMPRESSION_MASK | ATTR_LOG_APPEND_TIME;
/// Every attribute bit this version defines; a batch with any other bit set is refused.
pub const ATTR_KNOWN_BITS: u16 =
    ATTR_KNOWN_BITS_V1 | ATTR_TRANSACTIONAL | ATTR_CONTROL | ATTR_DELETE_HORIZON;

/// Compression codec ids stored in the attribute bits (format 1/2 batches).
pub const CODEC_NONE: u16 = 0;
/// zstd in a format 1/2 batch: the records section is `{ uncompressed_len u32 | zstd frame }`.
pub const CODEC_ZSTD: u16 = 1;

/// Upper bound on a batch's decompressed records section, so a forged length cannot make a
/// reader allocate without bound.
pub const MAX_UNCOMPRESSED_RECORDS: usize = 256 << 20;

fn u16_at(b: &[u8], r: Range<usize>) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[r]);
    u16::from_le_bytes(a)
}
fn u32_at(b: &[u8], r: Range<usize>) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[r]);
    u32::from_le_bytes(a)
}
fn u64_at(b: &[u8], r: Range<usize>) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[r]);
    u64::from_le_bytes(a)
}

/// The decoded fixed header of one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: u64,
    /// Bytes after the length field; the whole batch is `batch_length + 12` bytes.
    pub batch_length: u32,
    /// Format version of the batch.
    pub magic: u8,
    /// Stored CRC-32.
    pub crc: u32,
    /// Attribute bits.
    pub attributes: u16,
    /// `last_offset - base_offset`.
    pub last_offset_delta: u32,
    /// Timestamp of the first record.
    pub first_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Number of records.
    pub record_count: u32,
    /// Producer id, -1 when the batch has no producer (always so in version 1).
    pub producer_id: i64,
    /// Producer epoch, -1 when none.
    pub producer_epoch: i16,
    /// Sequence number of the first record, -1 when none.
    pub base_sequence: i32,
    /// The byte layout of the batch.
    pub layout: Layout,
    /// Kafka's `partitionLeaderEpoch` (0 as the log stamps it; -1 from a client; always 0 in a
    /// format 1/2 batch, which has no such field).
    pub leader_epoch: i32,
}

impl BatchHeader {
    /// Total size of the batch in bytes, header included.
    pub fn total_len(&self) -> usize {
        self.batch_length as usize + BATCH_LENGTH.end
    }

    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> u64 {
        self.base_offset + u64::from(self.last_offset_delta)
    }

    /// Offset after the batch.
    pub fn next_offset(&self) -> u64 {
        self.last_offset() + 1
    }

    /// Compression codec id as stored (its meaning depends on the layout).
    pub fn codec(&self) -> u16 {
        self.attributes & ATTR_COMPRESSION_MASK
    }

    /// Whether the records section is compressed (by any codec).
    pub fn is_compressed(&self) -> bool {
        self.codec() != CODEC_NONE
    }

    /// Whether the records section is zstd-compressed.
    pub fn is_zstd(&self) -> bool {
        match self.layout {
            Layout::Kafka => self.codec() == kafka::CODEC_ZSTD,
            Layout::Legacy => self.codec() == CODEC_ZSTD,
        }
    }

    /// Whether record timestamps are the time the log appended the batch.
    pub fn log_append_time(&self) -> bool {
        self.attributes & ATTR_LOG_APPEND_TIME != 0
    }

    /// Whether the batch was written inside a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// Whether this is a control batch (a transaction marker).
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// The delete horizon the log cleaner stamped on the batch (ms since the Unix epoch), or
    /// `None` if no cleaning pass has retained a tombstone of it yet.
    pub fn delete_horizon(&self) -> Option<i64> {
        (self.attributes & ATTR_DELETE_HORIZON != 0).then_some(self.first_timestamp)
    }

    /// Whether the batch carries a producer id (idempotent or transactional).
    pub fn has_producer(&self) -> bool {
        self.producer_id >= 0
    }

    /// Where the records section starts (the header length of the batch's layout and version).
    pub fn records_start(&self) -> usize {
        match self.layout {
            Layout::Kafka => kafka::HEADER_LEN,
            Layout::Legacy => header_len(self.magic),
        }
    }

    /// Sequence number of the last record: the base sequence plus the offset span, wrapping
    /// past `i32::MAX` to 0 as Kafka's sequences do (-1 when the batch has none).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let last = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        (last % (i64::from(i32::MAX) + 1)) as i32
    }

    /// Reads and checks the framing of the Kafka v2 batch at the start of `bytes` without
    /// verifying the CRC: every field must be in range and the whole batch, of at most
    /// `max_batch_bytes`, must fit in `bytes`. Positions in errors are relative to `bytes`.
    pub fn parse(bytes: &[u8], max_batch_bytes: usize) -> Result<BatchHeader> {
        kafka::parse_header(bytes, max_batch_bytes)
    }

    /// As [`parse`](Self::parse), for a batch of the given layout (a segment's file header
    /// version says which).
    #[inline]
    pub fn parse_as(bytes: &[u8], max_batch_bytes: usize, layout: Layout) -> Result<BatchHeader> {
        match layout {
            Layout::Kafka => kafka::parse_header(bytes, max_batch_bytes),
            Layout::Legacy => BatchHeader::parse_legacy(bytes, max_batch_bytes),
        }
    }

    /// As [`parse_as`](Self::parse_as), for a batch read from a segment: a Kafka batch's
    /// `partitionLeaderEpoch` must also be 0, as the log stamps it. The field lies outside the
    /// CRC (Kafka's layout), so this check is what catches damage to it.
    pub fn parse_stored(
        bytes: &[u8],
        max_batch_bytes: usize,
        layout: Layout,
    ) -> Result<BatchHeader> {
        let h = BatchHeader::parse_as(bytes, max_batch_bytes, layout)?;
        if h.layout == Layout::Kafka && h.leader_epoch != 0 {
            return Err(corrupt(
                kafka::PARTITION_LEADER_EPOCH.start as u64,
                "partition leader epoch 0 (as the log stamps it)",
                format!("{}", h.leader_epoch),
            ));
        }
        Ok(h)
    }

    /// As [`parse`](Self::parse), for a batch of segment format 1/2 (batch magic 1 or 2).
    pub fn parse_legacy(bytes: &[u8], max_batch_bytes: usize) -> Result<BatchHeader> {
        if bytes.len() < V1_HEADER_LEN {
            return Err(corrupt(
                0,
                format!("a batch header of at least {V1_HEADER_LEN} bytes"),
                format!("only {} bytes before the end", bytes.len()),
            ));
        }
        let magic = bytes[MAGIC];
        if magic == 0 || magic > BATCH_MAGIC {
            return Err(corrupt(
                MAGIC as u64,
                format!("batch format version 1..={BATCH_MAGIC}"),
                format!("{magic}"),
            ));
        }
        let header_len = header_len(magic);
        let min_length = header_len - BATCH_LENGTH.end;
        let batch_length = u32_at(bytes, BATCH_LENGTH);
        let total = batch_length as usize + BATCH_LENGTH.end;
        if (batch_length as usize) < min_length || total > max_batch_bytes {
            return Err(corrupt(
                BATCH_LENGTH.start as u64,
                format!("a batch length between {min_length} and {max_batch_bytes}"),
                format!("{batch_length}"),
            ));
        }
        if total > bytes.len() {
            return Err(corrupt(
                BATCH_LENGTH.start as u64,
                format!("a batch of {total} bytes to fit"),
                format!("only {} bytes before the end", bytes.len()),
            ));
        }
        let (producer_id, producer_epoch, base_sequence) = if magic >= 2 {
            (
                u64_at(bytes, PRODUCER_ID) as i64,
                u16_at(bytes, PRODUCER_EPOCH) as i16,
                u32_at(bytes, BASE_SEQUENCE) as i32,
            )
        } else {
            (-1, -1, -1)
        };
        let h = BatchHeader {
            base_offset: u64_at(bytes, BASE_OFFSET),
            batch_length,
            magic,
            crc: u32_at(bytes, CRC),
            attributes: u16_at(bytes, ATTRIBUTES),
            last_offset_delta: u32_at(bytes, LAST_OFFSET_DELTA),
            first_timestamp: u64_at(bytes, FIRST_TIMESTAMP) as i64,
            max_timestamp: u64_at(bytes, MAX_TIMESTAMP) as i64,
            record_count: u32_at(bytes, RECORD_COUNT),
            producer_id,
            producer_epoch,
            base_sequence,
            layout: Layout::Legacy,
            leader_epoch: 0,
        };
        let known = if magic >= 2 {
            ATTR_KNOWN_BITS
        } else {
            ATTR_KNOWN_BITS_V1
        };
        if h.attributes & !known != 0 || h.codec() > CODEC_ZSTD {
            return Err(corrupt(
                ATTRIBUTES.start as u64,
                "known attribute bits and codec (none or zstd)",
                format!("attributes 0x{:04x}", h.attributes),
            ));
        }
        check_fields(
            &h,
            RECORD_COUNT.start,
            FIRST_TIMESTAMP.start,
            PRODUCER_ID.start,
        )?;
        Ok(h)
    }

    /// Checks the CRC of the batch whose header this is (CRC-32C for a Kafka batch, CRC-32 for
    /// a format 1/2 one); `bytes` starts at the batch.
    pub fn verify_crc(&self, bytes: &[u8]) -> Result<()> {
        match self.layout {
            Layout::Kafka => {
                let covered = bytes
                    .get(kafka::ATTRIBUTES.start..self.total_len())
                    .unwrap_or(&[]);
                let got = kafka::crc32c(covered);
                if got == self.crc {
                    Ok(())
                } else {
                    Err(corrupt(
                        kafka::CRC.start as u64,
                        format!("CRC-32C 0x{:08x} (stored)", self.crc),
                        format!(
                            "CRC-32C 0x{got:08x} over the {} covered bytes",
                            covered.len()
                        ),
                    ))
                }
            }
            Layout::Legacy => {
                let covered = bytes.get(ATTRIBUTES.start..self.total_len()).unwrap_or(&[]);
                crc::verify(covered, self.crc, CRC.start as u64)
            }
        }
    }
}

/// The checks both layouts make on a parsed header's fields; `count_at`, `ts_at` and `pid_at`
/// are where the layout keeps `record_count`, the first timestamp and `producer_id`, for errors.
pub(crate) fn check_fields(
    h: &BatchHeader,
    count_at: usize,
    ts_at: usize,
    pid_at: usize,
) -> Result<()> {
    if h.record_count == 0 || u64::from(h.record_count) > u64::from(h.last_offset_delta) + 1 {
        return Err(corrupt(
            count_at as u64,
            format!("1..={} records", u64::from(h.last_offset_delta) + 1),
            format!("{}", h.record_count),
        ));
    }
    if h.base_offset
        .checked_add(u64::from(h.last_offset_delta) + 1)
        .is_none()
    {
        return Err(corrupt(
            0,
            "a base offset that leaves room for the batch",
            format!("{}", h.base_offset),
        ));
    }
    // With a delete horizon, `first_timestamp` is the horizon (normally after every record).
    if h.delete_horizon().is_none() && h.first_timestamp > h.max_timestamp {
        return Err(corrupt(
            ts_at as u64,
            format!("first timestamp <= max timestamp {}", h.max_timestamp),
            format!("{}", h.first_timestamp),
        ));
    }
    if (h.is_transactional() || h.is_control()) && h.producer_id < 0 {
        return Err(corrupt(
            pid_at as u64,
            "a producer id for a transactional or control batch",
            format!("{}", h.producer_id),
        ));
    }
    if h.is_control() && (h.record_count != 1 || h.codec() != CODEC_NONE) {
        return Err(corrupt(
            count_at as u64,
            "one uncompressed record in a control batch",
            format!("{} records, codec {}", h.record_count, h.codec()),
        ));
    }
    Ok(())
}

/// Writes the fixed header of `h`'s layout into the start of `out` and its CRC. `out` must hold
/// exactly the whole batch.
pub(crate) fn write_header(out: &mut [u8], h: &BatchHeader) {
    match h.layout {
        Layout::Kafka => kafka::write_header(out, h),
        Layout::Legacy => write_legacy_header(out, h),
    }
}

/// Writes a format 1/2 header (magic 2) into `out[..HEADER_LEN]` and the CRC over
/// `out[ATTRIBUTES.start..]`. `out` must hold exactly the whole batch. Only tests write these
/// now (to check that format 1/2 batches still read).
fn write_legacy_header(out: &mut [u8], h: &BatchHeader) {
    let batch_length = (out.len() - BATCH_LENGTH.end) as u32;
    out[BASE_OFFSET].copy_from_slice(&h.base_offset.to_le_bytes());
    out[BATCH_LENGTH].copy_from_slice(&batch_length.to_le_bytes());
    out[MAGIC] = BATCH_MAGIC;
    out[PRODUCER_ID].copy_from_slice(&h.producer_id.to_le_bytes());
    out[PRODUCER_EPOCH].copy_from_slice(&h.producer_epoch.to_le_bytes());
    out[BASE_SEQUENCE].copy_from_slice(&h.base_sequence.to_le_bytes());
    out[ATTRIBUTES].copy_from_slice(&h.attributes.to_le_bytes());
    out[LAST_OFFSET_DELTA].copy_from_slice(&h.last_offset_delta.to_le_bytes());
    out[FIRST_TIMESTAMP].copy_from_slice(&h.first_timestamp.to_le_bytes());
    out[MAX_TIMESTAMP].copy_from_slice(&h.max_timestamp.to_le_bytes());
    out[RECORD_COUNT].copy_from_slice(&h.record_count.to_le_bytes());
    let crc = crc::checksum(&out[ATTRIBUTES.start..]);
    out[CRC].copy_from_slice(&crc.to_le_bytes());
}

/// Stamps the base offset (and, in a Kafka batch, a leader epoch of 0) into an encoded batch of
/// `layout`, outside the CRC.
pub(crate) fn set_base_offset(batch: &mut [u8], base_offset: u64, layout: Layout) {
    match layout {
        Layout::Kafka => kafka::stamp(batch, base_offset),
        Layout::Legacy => batch[BASE_OFFSET].copy_from_slice(&base_offset.to_le_bytes()),
    }
}

// ---- varints -------------------------------------------------------------------------------

/// Appends `v` as an unsigned LEB128 varint.
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zigzag-encoded as a varint.
pub fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// A bounds-checked cursor over a record section. Every read either succeeds or returns a
/// corruption error at the cursor's position; nothing here can panic or over-allocate.
#[derive(Clone)]
pub struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Added to positions in errors (where `bytes` starts within the batch).
    origin: u64,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `bytes`; `origin` is added to error positions.
    pub fn new(bytes: &'a [u8], origin: u64) -> Self {
        Cursor {
            bytes,
            pos: 0,
            origin,
        }
    }

    /// Bytes read so far.
    #[inline]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not read yet.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// The bytes not read yet.
    #[inline]
    pub fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    fn at(&self) -> u64 {
        self.origin + self.pos as u64
    }

    /// Reads an unsigned LEB128 varint of at most 10 bytes.
    #[inline(always)]
    pub fn uvarint(&mut self) -> Result<u64> {
        // Fast paths: most deltas fit in one byte, and the lengths of records and values up to
        // 8 KiB (zigzag: 64..8191 bytes) in two.
        if let Some(&b) = self.bytes.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
            if let Some(&b1) = self.bytes.get(self.pos + 1) {
                if b1 < 0x80 {
                    self.pos += 2;
                    return Ok(u64::from(b & 0x7f) | (u64::from(b1) << 7));
                }
            }
        }
        self.uvarint_slow()
    }

    fn uvarint_slow(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.bytes.get(self.pos + i) else {
                return Err(corrupt(
                    self.at(),
                    "a complete varint",
                    "the end of the record data",
                ));
            };
            if i == 9 && b > 1 {
                return Err(corrupt(
                    self.at(),
                    "a varint of at most 64 bits",
                    "a longer varint",
                ));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.pos += i + 1;
                return Ok(v);
            }
        }
        Err(corrupt(
            self.at(),
            "a varint of at most 10 bytes",
            "a longer varint",
        ))
    }

    /// Reads a length or count: a zigzag varint that must not be negative when `zigzag`
    /// (Kafka's layout), an unsigned varint otherwise.
    #[inline(always)]
    pub fn count(&mut self, zigzag: bool) -> Result<u64> {
        if !zigzag {
            return self.uvarint();
        }
        let at = self.at();
        let v = self.varint()?;
        match u64::try_from(v) {
            Ok(n) => Ok(n),
            Err(_) => Err(negative_count(at, v)),
        }
    }

    /// Reads a zigzag varint.
    #[inline(always)]
    pub fn varint(&mut self) -> Result<i64> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// Reads `n` bytes.
    #[inline(always)]
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        match self.bytes.get(self.pos..self.pos.wrapping_add(n)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            _ => Err(short_of_bytes(self.at(), n, self.remaining())),
        }
    }

    /// Reads one byte.
    #[inline(always)]
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    /// Reads a nullable byte string: zigzag length (-1 = null) then the bytes.
    #[inline(always)]
    pub fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>> {
        let at = self.at();
        match self.varint()? {
            -1 => Ok(None),
            n if n >= 0 && (n as u64) <= self.remaining() as u64 => {
                Ok(Some(self.bytes(n as usize)?))
            }
            n => Err(bad_length(at, n, self.remaining())),
        }
    }
}

// The error paths of `Cursor`'s readers, kept out of line so that the readers (called for every
// field of every record) stay small enough to inline into the record decoder.

#[cold]
#[inline(never)]
fn negative_count(at: u64, v: i64) -> Error {
    corrupt(at, "a length or count of at least 0", format!("{v}"))
}

#[cold]
#[inline(never)]
fn short_of_bytes(at: u64, n: usize, remaining: usize) -> Error {
    corrupt(
        at,
        format!("{n} more bytes"),
        format!("{remaining} bytes before the end"),
    )
}

#[cold]
#[inline(never)]
fn bad_length(at: u64, n: i64, remaining: usize) -> Error {
    corrupt(
        at,
        format!("a length of -1..={remaining} bytes"),
        format!("{n}"),
    )
}

impl std::fmt::Debug for Cursor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor")
            .field("remaining", &self.remaining())
            .finish()
    }
}

// ---- records -------------------------------------------------------------------------------

/// Appends one record to a records section, in the record encoding of `layout`.
///
/// ```text
/// // Format: { length | attributes u8 | timestamp_delta varint | offset_delta |
/// //           key nullable | value nullable | header_count |
/// //           [ header_key_len | header_key | header_value nullable ] }
/// // nullable: { length varint (-1 = null) | bytes }
/// ```
/// `length`, `offset_delta`, `header_count` and `header_key_len` are zigzag varints in a Kafka
/// batch and unsigned varints in a format 1/2 batch. The record's size is computed first, so
/// its fields are written once, straight into `out` (no scratch copy).
#[allow(clippy::too_many_arguments)]
pub(crate) fn put_record(
    out: &mut Vec<u8>,
    layout: Layout,
    timestamp_delta: i64,
    offset_delta: u32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&str, Option<&[u8]>)],
) {
    let zz = layout.zigzag();
    let body = record_body_size(zz, timestamp_delta, offset_delta, key, value, headers);
    out.reserve(body + 5);
    put_count(out, zz, body as u64);
    out.push(0); // record attributes: none defined
    put_varint(out, timestamp_delta);
    put_count(out, zz, u64::from(offset_delta));
    put_nullable(out, key);
    put_nullable(out, value);
    put_count(out, zz, headers.len() as u64);
    for (k, v) in headers {
        put_count(out, zz, k.len() as u64);
        out.extend_from_slice(k.as_bytes());
        put_nullable(out, *v);
    }
}

/// A length or count: a zigzag varint in a Kafka batch, an unsigned one in a format 1/2 batch.
#[inline]
fn put_count(out: &mut Vec<u8>, zz: bool, v: u64) {
    if zz {
        put_varint(out, v as i64);
    } else {
        put_uvarint(out, v);
    }
}

#[inline]
fn count_len(zz: bool, v: u64) -> usize {
    if zz {
        varint_len(v as i64)
    } else {
        uvarint_len(v)
    }
}

/// Appends `count` headers as a record holds them: `header_count uvarint`, then each header
/// (key length uvarint, key, value nullable). Streams stores that keep a record's headers use
/// it too (FORMAT.md 8.6), so there is one header encoding; `HeaderIter::split` reads it back.
#[inline]
pub(crate) fn put_headers<'h>(
    out: &mut Vec<u8>,
    count: usize,
    headers: impl Iterator<Item = (&'h str, Option<&'h [u8]>)>,
) {
    put_uvarint(out, count as u64);
    for (k, v) in headers {
        put_uvarint(out, k.len() as u64);
        out.extend_from_slice(k.as_bytes());
        put_nullable(out, v);
    }
}

fn put_nullable(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// Size in bytes of a record as `put_record` would encode it (without building it).
pub(crate) fn record_size_upper_bound(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&str, Option<&[u8]>)],
) -> usize {
    let n = |v: Option<&[u8]>| v.map_or(0, <[u8]>::len) + 10;
    let h: usize = headers.iter().map(|(k, v)| k.len() + 10 + n(*v)).sum();
    10 + 1 + 10 + 5 + n(key) + n(value) + 5 + h
}

/// Bytes `put_uvarint` writes for `v`.
fn uvarint_len(v: u64) -> usize {
    (64 - v.leading_zeros() as usize).div_ceil(7).max(1)
}

/// Bytes `put_varint` writes for `v`.
fn varint_len(v: i64) -> usize {
    uvarint_len(((v << 1) ^ (v >> 63)) as u64)
}

/// The bytes of a record's body (after its length) as `put_record` writes it.
fn record_body_size(
    zz: bool,
    timestamp_delta: i64,
    offset_delta: u32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&str, Option<&[u8]>)],
) -> usize {
    let nullable = |v: Option<&[u8]>| match v {
        None => varint_len(-1),
        Some(b) => varint_len(b.len() as i64) + b.len(),
    };
    1 + varint_len(timestamp_delta)
        + count_len(zz, u64::from(offset_delta))
        + nullable(key)
        + nullable(value)
        + count_len(zz, headers.len() as u64)
        + headers
            .iter()
            .map(|(k, v)| count_len(zz, k.len() as u64) + k.len() + nullable(*v))
            .sum::<usize>()
}

/// Exactly the bytes `put_record` writes for these arguments in a Kafka batch (its length
/// prefix included), so that a size limit can be checked without encoding.
pub(crate) fn record_size(
    timestamp_delta: i64,
    offset_delta: u32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&str, Option<&[u8]>)],
) -> usize {
    let body = record_body_size(true, timestamp_delta, offset_delta, key, value, headers);
    varint_len(body as i64) + body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_size_is_what_put_record_writes() {
        let big = vec![7u8; 300];
        type Case<'a> = (
            i64,
            u32,
            Option<&'a [u8]>,
            Option<&'a [u8]>,
            Vec<(&'a str, Option<&'a [u8]>)>,
        );
        let cases: [Case<'_>; 5] = [
            (0, 0, None, None, vec![]),
            (0, 0, Some(b"k"), Some(b"v"), vec![]),
            (
                -1,
                127,
                Some(&big),
                None,
                vec![("h", None), ("x", Some(b"y"))],
            ),
            (i64::MIN, u32::MAX, None, Some(&big), vec![("", Some(&big))]),
            (1 << 40, 128, Some(b""), Some(b""), vec![]),
        ];
        for (ts, off, k, v, h) in cases {
            let mut out = Vec::new();
            put_record(&mut out, Layout::Kafka, ts, off, k, v, &h);
            assert_eq!(record_size(ts, off, k, v, &h), out.len());
        }
    }

    #[test]
    fn varint_roundtrip() {
        for v in [0i64, 1, -1, 63, -64, 64, 300, i64::MAX, i64::MIN, 1 << 40] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut c = Cursor::new(&out, 0);
            assert_eq!(c.varint().unwrap(), v);
            assert_eq!(c.remaining(), 0);
        }
        for v in [0u64, 127, 128, u64::MAX] {
            let mut out = Vec::new();
            put_uvarint(&mut out, v);
            assert_eq!(Cursor::new(&out, 0).uvarint().unwrap(), v);
        }
    }

    #[test]
    fn truncated_and_overlong_varints_are_errors() {
        assert!(Cursor::new(&[0x80], 0).uvarint().is_err());
        assert!(Cursor::new(&[0xff; 11], 0).uvarint().is_err());
        assert!(Cursor::new(
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
            0
        )
        .uvarint()
        .is_err());
    }

    #[test]
    fn field_ranges_are_contiguous() {
        let ends = [
            (BASE_OFFSET.end, BATCH_LENGTH.start),
            (BATCH_LENGTH.end, MAGIC),
            (MAGIC + 1, CRC.start),
            (CRC.end, ATTRIBUTES.start),
            (ATTRIBUTES.end, LAST_OFFSET_DELTA.start),
            (LAST_OFFSET_DELTA.end, FIRST_TIMESTAMP.start),
            (FIRST_TIMESTAMP.end, MAX_TIMESTAMP.start),
            (MAX_TIMESTAMP.end, RECORD_COUNT.start),
            (RECORD_COUNT.end, V1_HEADER_LEN),
            (RECORD_COUNT.end, PRODUCER_ID.start),
            (PRODUCER_ID.end, PRODUCER_EPOCH.start),
            (PRODUCER_EPOCH.end, BASE_SEQUENCE.start),
            (BASE_SEQUENCE.end, HEADER_LEN),
        ];
        for (end, next) in ends {
            assert_eq!(end, next);
        }
    }

    /// FORMAT.md's batch header table must list the same byte ranges as the constants.
    #[test]
    fn constants_match_format_md() {
        let doc = include_str!("../../FORMAT.md");
        let rows = [
            ("base_offset", BASE_OFFSET.start, BASE_OFFSET.len()),
            ("batch_length", BATCH_LENGTH.start, BATCH_LENGTH.len()),
            ("magic", MAGIC, 1),
            ("crc", CRC.start, CRC.len()),
            ("attributes", ATTRIBUTES.start, ATTRIBUTES.len()),
            (
                "last_offset_delta",
                LAST_OFFSET_DELTA.start,
                LAST_OFFSET_DELTA.len(),
            ),
            (
                "first_timestamp",
                FIRST_TIMESTAMP.start,
                FIRST_TIMESTAMP.len(),
            ),
            ("max_timestamp", MAX_TIMESTAMP.start, MAX_TIMESTAMP.len()),
            ("record_count", RECORD_COUNT.start, RECORD_COUNT.len()),
            ("producer_id", PRODUCER_ID.start, PRODUCER_ID.len()),
            ("producer_epoch", PRODUCER_EPOCH.start, PRODUCER_EPOCH.len()),
            ("base_sequence", BASE_SEQUENCE.start, BASE_SEQUENCE.len()),
        ];
        for (name, offset, len) in rows {
            let row = format!("| {offset} | {len} | `{name}` |");
            assert!(doc.contains(&row), "FORMAT.md lacks the row {row:?}");
        }
        assert!(doc.contains(&format!("batch header is {HEADER_LEN} bytes")));
        assert!(doc.contains(&format!("version 1 header is {V1_HEADER_LEN} bytes")));
        assert!(doc.contains(&format!("magic` is {BATCH_MAGIC}")));
    }
}
