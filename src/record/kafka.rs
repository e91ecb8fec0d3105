//! Byte layout of a Kafka v2 record batch (Kafka's `DefaultRecordBatch`, magic 2), the batch
//! layout of segment format 3 (FORMAT.md section 3). A batch from a Kafka client is stored as
//! is, and served back as bytes a Kafka client verifies.
//!
//! ```text
//! // Format: { baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 (2) |
//! //           crc u32 | attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 |
//! //           maxTimestamp i64 | producerId i64 | producerEpoch i16 | baseSequence i32 |
//! //           recordCount i32 | records }
//! // record: { length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
//! //           keyLength varint | key | valueLength varint | value | headerCount varint |
//! //           [ headerKeyLength varint | headerKey | headerValueLength varint | value ] }
//! ```
//! Integers are big-endian; every varint is zigzag-encoded (-1 = null for keys and values).
//! The CRC is CRC-32C (Castagnoli) over `attributes .. end of batch`, so the log stamps
//! `baseOffset` and `partitionLeaderEpoch` without recomputing it. A compressed batch's records
//! section is in one of Kafka's codecs (gzip, snappy, lz4, zstd: [`compression`](super::compression));
//! a zstd one is one zstd frame, without a length prefix.
//!
//! The constants below mirror FORMAT.md's table; `constants_match_format_md` checks that the two
//! agree.

// Kafka's wire format is big-endian: the one place in the crate that reads and writes it.
#![allow(clippy::big_endian_bytes)]

use std::io::Read;
use std::ops::Range;

use crate::error::{corrupt, Error, Result};
use crate::record::codec::{self, BatchHeader, Layout};

/// `baseOffset`: offset of the first record, stamped by the log at append time.
pub const BASE_OFFSET: Range<usize> = 0..8;
/// `batchLength`: number of bytes that follow this field.
pub const BATCH_LENGTH: Range<usize> = 8..12;
/// `partitionLeaderEpoch`: outside the CRC; the log stamps 0 (one node, epoch 0).
pub const PARTITION_LEADER_EPOCH: Range<usize> = 12..16;
/// `magic`: 2.
pub const MAGIC: usize = 16;
/// `crc`: CRC-32C of bytes `ATTRIBUTES.start .. end of batch`.
pub const CRC: Range<usize> = 17..21;
/// `attributes`: codec, timestamp type, transactional, control, delete horizon.
pub const ATTRIBUTES: Range<usize> = 21..23;
/// `lastOffsetDelta`.
pub const LAST_OFFSET_DELTA: Range<usize> = 23..27;
/// `baseTimestamp`: the base of the records' timestamp deltas (the delete horizon when
/// attribute bit 6 is set).
pub const BASE_TIMESTAMP: Range<usize> = 27..35;
/// `maxTimestamp`.
pub const MAX_TIMESTAMP: Range<usize> = 35..43;
/// `producerId` (-1: none).
pub const PRODUCER_ID: Range<usize> = 43..51;
/// `producerEpoch` (-1: none).
pub const PRODUCER_EPOCH: Range<usize> = 51..53;
/// `baseSequence` (-1: none).
pub const BASE_SEQUENCE: Range<usize> = 53..57;
/// `recordCount`.
pub const RECORD_COUNT: Range<usize> = 57..61;
/// Size of the batch header; records start here (Kafka's `RECORD_BATCH_OVERHEAD`).
pub const HEADER_LEN: usize = 61;
/// The only magic a Kafka v2 batch has.
pub const MAGIC_V2: u8 = 2;

/// Codec ids of attribute bits 0..=2 (Kafka's `CompressionType`).
pub const CODEC_NONE: u16 = 0;
/// gzip: the records section is one gzip stream ([`compression`](super::compression)).
pub const CODEC_GZIP: u16 = 1;
/// snappy: snappy-java's framing, or one raw snappy block
/// ([`compression`](super::compression)).
pub const CODEC_SNAPPY: u16 = 2;
/// lz4: one LZ4 frame ([`compression`](super::compression)).
pub const CODEC_LZ4: u16 = 3;
/// zstd: the records section is one zstd frame.
pub const CODEC_ZSTD: u16 = 4;

/// The name of a Kafka codec id, for messages.
pub fn codec_name(codec: u16) -> &'static str {
    match codec {
        CODEC_NONE => "none",
        CODEC_GZIP => "gzip",
        CODEC_SNAPPY => "snappy",
        CODEC_LZ4 => "lz4",
        CODEC_ZSTD => "zstd",
        _ => "unknown",
    }
}

fn i16_at(b: &[u8], r: Range<usize>) -> i16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[r]);
    i16::from_be_bytes(a)
}
fn i32_at(b: &[u8], r: Range<usize>) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[r]);
    i32::from_be_bytes(a)
}
fn i64_at(b: &[u8], r: Range<usize>) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[r]);
    i64::from_be_bytes(a)
}

/// CRC-32C, the checksum of a Kafka v2 batch: hardware-accelerated by the `crc32c` crate
/// (SSE4.2 / ARMv8), with a software fallback.
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// Reads and checks the framing of the Kafka batch at the start of `bytes` (CRC not verified):
/// magic 2, a length that fits `bytes` and `max_batch_bytes`, known attribute bits and codec,
/// counts and offsets in range. Positions in errors are relative to `bytes`.
pub(crate) fn parse_header(bytes: &[u8], max_batch_bytes: usize) -> Result<BatchHeader> {
    if bytes.len() < HEADER_LEN {
        return Err(corrupt(
            0,
            format!("a Kafka batch header of {HEADER_LEN} bytes"),
            format!("only {} bytes before the end", bytes.len()),
        ));
    }
    let magic = bytes[MAGIC];
    if magic != MAGIC_V2 {
        return Err(corrupt(
            MAGIC as u64,
            format!("Kafka batch magic {MAGIC_V2}"),
            format!("{magic}"),
        ));
    }
    let min_length = HEADER_LEN - BATCH_LENGTH.end;
    let batch_length = i32_at(bytes, BATCH_LENGTH);
    if batch_length < min_length as i32
        || batch_length as usize + BATCH_LENGTH.end > max_batch_bytes
    {
        return Err(corrupt(
            BATCH_LENGTH.start as u64,
            format!("a batch length between {min_length} and {max_batch_bytes}"),
            format!("{batch_length}"),
        ));
    }
    let total = batch_length as usize + BATCH_LENGTH.end;
    if total > bytes.len() {
        return Err(corrupt(
            BATCH_LENGTH.start as u64,
            format!("a batch of {total} bytes to fit"),
            format!("only {} bytes before the end", bytes.len()),
        ));
    }
    let base_offset = i64_at(bytes, BASE_OFFSET);
    if base_offset < 0 {
        return Err(corrupt(
            0,
            "a base offset of at least 0",
            format!("{base_offset}"),
        ));
    }
    let last_offset_delta = i32_at(bytes, LAST_OFFSET_DELTA);
    if last_offset_delta < 0 {
        return Err(corrupt(
            LAST_OFFSET_DELTA.start as u64,
            "a last offset delta of at least 0",
            format!("{last_offset_delta}"),
        ));
    }
    let record_count = i32_at(bytes, RECORD_COUNT);
    let attributes = i16_at(bytes, ATTRIBUTES) as u16;
    let h = BatchHeader {
        base_offset: base_offset as u64,
        batch_length: batch_length as u32,
        magic,
        crc: u32::from_be_bytes([bytes[17], bytes[18], bytes[19], bytes[20]]),
        attributes,
        last_offset_delta: last_offset_delta as u32,
        first_timestamp: i64_at(bytes, BASE_TIMESTAMP),
        max_timestamp: i64_at(bytes, MAX_TIMESTAMP),
        // Negative counts fail the range check below as huge ones.
        record_count: record_count as u32,
        producer_id: i64_at(bytes, PRODUCER_ID),
        producer_epoch: i16_at(bytes, PRODUCER_EPOCH),
        base_sequence: i32_at(bytes, BASE_SEQUENCE),
        layout: Layout::Kafka,
        leader_epoch: i32_at(bytes, PARTITION_LEADER_EPOCH),
    };
    if attributes & !codec::ATTR_KNOWN_BITS != 0 || h.codec() > CODEC_ZSTD {
        return Err(corrupt(
            ATTRIBUTES.start as u64,
            "known attribute bits (0..=6) and a Kafka codec id 0..=4",
            format!("attributes 0x{attributes:04x}"),
        ));
    }
    codec::check_fields(
        &h,
        RECORD_COUNT.start,
        BASE_TIMESTAMP.start,
        PRODUCER_ID.start,
    )?;
    Ok(h)
}

/// Writes the header fields of `h` into `out[..HEADER_LEN]` (batch length from `out.len()`,
/// magic 2) and then the CRC-32C over `out[ATTRIBUTES.start..]`. `out` is the whole batch.
pub(crate) fn write_header(out: &mut [u8], h: &BatchHeader) {
    let batch_length = (out.len() - BATCH_LENGTH.end) as i32;
    out[BASE_OFFSET].copy_from_slice(&(h.base_offset as i64).to_be_bytes());
    out[BATCH_LENGTH].copy_from_slice(&batch_length.to_be_bytes());
    out[PARTITION_LEADER_EPOCH].copy_from_slice(&h.leader_epoch.to_be_bytes());
    out[MAGIC] = MAGIC_V2;
    out[ATTRIBUTES].copy_from_slice(&(h.attributes as i16).to_be_bytes());
    out[LAST_OFFSET_DELTA].copy_from_slice(&(h.last_offset_delta as i32).to_be_bytes());
    out[BASE_TIMESTAMP].copy_from_slice(&h.first_timestamp.to_be_bytes());
    out[MAX_TIMESTAMP].copy_from_slice(&h.max_timestamp.to_be_bytes());
    out[PRODUCER_ID].copy_from_slice(&h.producer_id.to_be_bytes());
    out[PRODUCER_EPOCH].copy_from_slice(&h.producer_epoch.to_be_bytes());
    out[BASE_SEQUENCE].copy_from_slice(&h.base_sequence.to_be_bytes());
    out[RECORD_COUNT].copy_from_slice(&(h.record_count as i32).to_be_bytes());
    let crc = crc32c(&out[ATTRIBUTES.start..]);
    out[CRC].copy_from_slice(&crc.to_be_bytes());
}

/// Stamps the base offset and a partition leader epoch of 0 into an encoded batch (both
/// outside the CRC).
pub(crate) fn stamp(batch: &mut [u8], base_offset: u64) {
    batch[BASE_OFFSET].copy_from_slice(&(base_offset as i64).to_be_bytes());
    batch[PARTITION_LEADER_EPOCH].copy_from_slice(&0i32.to_be_bytes());
}

/// `offset` as a Kafka batch's `baseOffset` field holds it.
pub(crate) fn base_offset_bytes(offset: u64) -> [u8; 8] {
    (offset as i64).to_be_bytes()
}

/// The batch length field of the batch at the start of `head` (at least 12 bytes), as the
/// number of bytes after it, or `None` if negative.
pub(crate) fn batch_length(head: &[u8]) -> Option<u32> {
    u32::try_from(i32_at(head, BATCH_LENGTH)).ok()
}

/// Decompresses a Kafka zstd records section (one frame, no length prefix), refusing to produce
/// more than `limit` bytes: the output grows as the frame decodes, so a frame claiming a huge
/// size allocates nothing it does not deliver.
pub(crate) fn decompress_zstd(section: &[u8], limit: usize) -> Result<Vec<u8>> {
    let at = HEADER_LEN as u64;
    let bad = |e: std::io::Error| corrupt(at, "a valid zstd frame", format!("zstd error: {e}"));
    let decoder = zstd::stream::read::Decoder::with_buffer(section).map_err(bad)?;
    let mut out = Vec::with_capacity(section.len().saturating_mul(4).min(limit));
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(bad)?;
    if out.len() > limit {
        return Err(corrupt(
            at,
            format!("records of at most {limit} bytes after decompression"),
            "a zstd frame that decompresses to more",
        ));
    }
    Ok(out)
}

/// Compresses a records section as Kafka's zstd codec stores it (one frame).
pub(crate) fn compress_zstd(records: &[u8], level: i32, out: &mut Vec<u8>) -> Result<()> {
    let frame = zstd::bulk::compress(records, level)
        .map_err(|e| Error::io("zstd compression", "<memory>", e))?;
    out.extend_from_slice(&frame);
    Ok(())
}

/// The control record key of a transaction marker: `version i16 (0) | type i16 (0 abort,
/// 1 commit)` (Kafka's `ControlRecordType`).
pub(crate) fn control_key(commit: bool) -> [u8; 4] {
    [0, 0, 0, u8::from(commit)]
}

/// The control record value Kafka writes for a marker, `EndTransactionMarker`:
/// `version i16 (0) | coordinatorEpoch i32` (0 here: one coordinator, never re-elected).
pub(crate) const END_TXN_MARKER_VALUE: [u8; 6] = [0; 6];

/// Checks a marker's value: null (as Riverbed's format 1/2 markers had) or an
/// `EndTransactionMarker` of version 0.
pub(crate) fn check_end_txn_marker(value: Option<&[u8]>) -> Result<()> {
    match value {
        None => Ok(()),
        Some(v) if v.len() >= 6 && v[..2] == [0, 0] => Ok(()),
        Some(v) => Err(corrupt(
            0,
            "an end-transaction marker value (version 0, coordinator epoch) or null",
            format!("{} bytes starting {:02x?}", v.len(), &v[..v.len().min(2)]),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        // The check value of CRC-32C (iSCSI, Castagnoli).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn field_ranges_are_contiguous() {
        let ends = [
            (BASE_OFFSET.end, BATCH_LENGTH.start),
            (BATCH_LENGTH.end, PARTITION_LEADER_EPOCH.start),
            (PARTITION_LEADER_EPOCH.end, MAGIC),
            (MAGIC + 1, CRC.start),
            (CRC.end, ATTRIBUTES.start),
            (ATTRIBUTES.end, LAST_OFFSET_DELTA.start),
            (LAST_OFFSET_DELTA.end, BASE_TIMESTAMP.start),
            (BASE_TIMESTAMP.end, MAX_TIMESTAMP.start),
            (MAX_TIMESTAMP.end, PRODUCER_ID.start),
            (PRODUCER_ID.end, PRODUCER_EPOCH.start),
            (PRODUCER_EPOCH.end, BASE_SEQUENCE.start),
            (BASE_SEQUENCE.end, RECORD_COUNT.start),
            (RECORD_COUNT.end, HEADER_LEN),
        ];
        for (end, next) in ends {
            assert_eq!(end, next);
        }
    }

    /// FORMAT.md's format 3 batch header table lists the same byte ranges as the constants.
    #[test]
    fn constants_match_format_md() {
        let doc = include_str!("../../FORMAT.md");
        let rows = [
            ("baseOffset", BASE_OFFSET.start, BASE_OFFSET.len()),
            ("batchLength", BATCH_LENGTH.start, BATCH_LENGTH.len()),
            (
                "partitionLeaderEpoch",
                PARTITION_LEADER_EPOCH.start,
                PARTITION_LEADER_EPOCH.len(),
            ),
            ("magic", MAGIC, 1),
            ("crc", CRC.start, CRC.len()),
            ("attributes", ATTRIBUTES.start, ATTRIBUTES.len()),
            (
                "lastOffsetDelta",
                LAST_OFFSET_DELTA.start,
                LAST_OFFSET_DELTA.len(),
            ),
            ("baseTimestamp", BASE_TIMESTAMP.start, BASE_TIMESTAMP.len()),
            ("maxTimestamp", MAX_TIMESTAMP.start, MAX_TIMESTAMP.len()),
            ("producerId", PRODUCER_ID.start, PRODUCER_ID.len()),
            ("producerEpoch", PRODUCER_EPOCH.start, PRODUCER_EPOCH.len()),
            ("baseSequence", BASE_SEQUENCE.start, BASE_SEQUENCE.len()),
            ("recordCount", RECORD_COUNT.start, RECORD_COUNT.len()),
        ];
        for (name, offset, len) in rows {
            let row = format!("| {offset} | {len} | `{name}` |");
            assert!(doc.contains(&row), "FORMAT.md lacks the row {row:?}");
        }
        assert!(doc.contains(&format!("Kafka batch header is {HEADER_LEN} bytes")));
    }

    #[test]
    fn zstd_output_is_bounded() {
        let data = vec![7u8; 100_000];
        let mut frame = Vec::new();
        compress_zstd(&data, 3, &mut frame).unwrap();
        assert_eq!(decompress_zstd(&frame, 100_000).unwrap(), data);
        let e = decompress_zstd(&frame, 99_999).unwrap_err();
        assert!(e.is_corruption(), "{e:?}");
        assert!(decompress_zstd(&frame[..frame.len() / 2], 1 << 20).is_err());
        assert!(decompress_zstd(b"not zstd", 1 << 20).is_err());
    }
}
