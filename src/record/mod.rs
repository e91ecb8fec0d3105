//! Records and record batches: what a log stores, independent of files.
//!
//! A producer builds a [`RecordBatch`] with a [`BatchBuilder`]; the log stamps offsets into it and
//! copies its bytes into a segment unchanged. A batch is a Kafka v2 record batch, byte for byte
//! (segment format 3, FORMAT.md section 3): what a Kafka client sends is accepted as is by
//! [`RecordBatch::from_bytes`], and what the log stores is what a Kafka client reads. Segments
//! of formats 1 and 2 hold Riverbed's earlier layout, which still reads ([`codec::Layout`]). Readers get batches back as byte slices and decode
//! them lazily with [`BatchRef`]: a record's key, value and headers borrow from the batch (from the
//! memory-mapped segment, for an uncompressed batch), nothing is copied.
//!
//! ```
//! use riverbed::{BatchBuilder, Compression};
//!
//! let mut builder = BatchBuilder::new(Compression::None);
//! builder.append(1_700_000_000_000, Some(b"alice"), Some(b"+50"), &[("source", Some(b"atm"))]);
//! builder.append(1_700_000_000_005, None, None, &[]); // keyless tombstone
//! let batch = builder.build()?;
//! let records = batch.as_batch().records()?;
//! let first = records.iter().next().unwrap()?;
//! assert_eq!(first.key(), Some(&b"alice"[..]));
//! assert_eq!(first.headers().next().unwrap()?, ("source", Some(&b"atm"[..])));
//! # Ok::<(), riverbed::Error>(())
//! ```

pub mod codec;
pub mod compression;
pub mod crc;
pub mod kafka;

use std::borrow::Cow;

use crate::error::{corrupt, Error, Result};
use codec::{BatchHeader, Cursor, Layout};

/// How a batch's records section is compressed: Kafka's codecs (`compression.type`), each in
/// the framing Kafka's Java client writes ([`compression`] says which). Whatever the codec, a
/// batch is stored uncompressed when compressing does not make it smaller. Every reader decodes
/// every codec, so a batch a Kafka client compressed reads back in-process too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// Stored as is. Default.
    #[default]
    None,
    /// gzip at the given level (1..=9; Kafka's default, `compression.gzip.level` unset, is 6).
    Gzip {
        /// Deflate level, 1 (fastest) ..= 9 (smallest).
        level: u32,
    },
    /// snappy, in snappy-java's framing (Kafka's Java client).
    Snappy,
    /// lz4, as an LZ4 frame of 64 KiB independent blocks (Kafka's `Lz4BlockOutputStream`).
    /// One speed only: `lz4_flex`'s fast compressor (Kafka's `compression.lz4.level` selects
    /// LZ4 HC levels, which this build does not write; it reads any level).
    Lz4,
    /// zstd at the given level (1..=22; 3 is zstd's default).
    Zstd {
        /// zstd compression level.
        level: i32,
    },
}

/// Which clock a batch's timestamps come from (Kafka's `message.timestamp.type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimestampType {
    /// The timestamps the producer set. Default.
    #[default]
    CreateTime,
    /// The wall-clock time at which the log appended the batch; every record in the batch reads
    /// back with that time.
    LogAppendTime,
}

/// Builds one record batch (a Kafka v2 batch): 1..N records that are appended together and
/// share one CRC.
///
/// Records are encoded once, straight into the batch's buffer behind room reserved for the
/// 61-byte header; building writes the header and CRC in place. [`finish_into`]
/// (Self::finish_into) hands that buffer over without copying the records at all.
#[derive(Debug)]
pub struct BatchBuilder {
    compression: Compression,
    /// `kafka::HEADER_LEN` reserved bytes, then the encoded records (empty before the first).
    buf: Vec<u8>,
    count: u32,
    first_timestamp: i64,
    max_timestamp: i64,
    producer: ProducerFields,
    transactional: bool,
}

/// The producer fields of a batch header: who wrote it and the sequence of its first record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerFields {
    /// Producer id (-1: none).
    pub producer_id: i64,
    /// Producer epoch (-1: none).
    pub producer_epoch: i16,
    /// Sequence number of the batch's first record (-1: none).
    pub base_sequence: i32,
}

impl ProducerFields {
    /// No producer: a plain batch.
    pub const NONE: ProducerFields = ProducerFields {
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
    };
}

/// What a control batch marks: the end of a producer's transaction in a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ControlType {
    /// The transaction was aborted: its records are not to be read by `read_committed` readers.
    Abort,
    /// The transaction was committed.
    Commit,
}

impl ControlType {
    /// The control record's key as Kafka writes it: `version i16 (0) | type i16 (0 abort,
    /// 1 commit)`, big-endian.
    fn key(self) -> [u8; 4] {
        kafka::control_key(self == ControlType::Commit)
    }

    /// Reads a control record key: big-endian in a Kafka batch, little-endian in a format 1/2
    /// one.
    fn from_key(key: Option<&[u8]>, layout: Layout) -> Result<ControlType> {
        let commit: &[u8] = match layout {
            Layout::Kafka => &[0, 0, 0, 1],
            Layout::Legacy => &[0, 0, 1, 0],
        };
        match key {
            Some([0, 0, 0, 0]) => Ok(ControlType::Abort),
            Some(k) if k == commit => Ok(ControlType::Commit),
            other => Err(corrupt(
                0,
                "a control record key of version 0 and type 0 (abort) or 1 (commit)",
                format!("{other:?}"),
            )),
        }
    }
}

impl BatchBuilder {
    /// An empty builder.
    pub fn new(compression: Compression) -> BatchBuilder {
        BatchBuilder {
            compression,
            buf: Vec::new(),
            count: 0,
            first_timestamp: 0,
            max_timestamp: i64::MIN,
            producer: ProducerFields::NONE,
            transactional: false,
        }
    }

    /// Sets the producer fields the batch is built with (idempotent and transactional
    /// producers; the log checks the sequence on append).
    pub fn producer(&mut self, fields: ProducerFields) -> &mut BatchBuilder {
        self.producer = fields;
        self
    }

    /// Marks the batch as part of its producer's open transaction.
    pub fn transactional(&mut self, transactional: bool) -> &mut BatchBuilder {
        self.transactional = transactional;
        self
    }

    /// A control batch (transaction marker) of `producer` at `timestamp`.
    pub(crate) fn control(
        kind: ControlType,
        producer: ProducerFields,
        timestamp: i64,
    ) -> Result<RecordBatch> {
        let mut b = BatchBuilder::new(Compression::None);
        b.append(
            timestamp,
            Some(&kind.key()),
            Some(&kafka::END_TXN_MARKER_VALUE),
            &[],
        );
        b.producer = producer;
        b.transactional = true;
        b.encode(codec::ATTR_CONTROL)
    }

    /// Adds a record. `timestamp` is in milliseconds since the Unix epoch; a `None` value is a
    /// tombstone (it deletes the key in a compacted topic); headers are `(key, value)` pairs, and a
    /// header key may repeat.
    pub fn append(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> &mut BatchBuilder {
        if self.count == 0 {
            self.first_timestamp = timestamp;
            self.buf.clear();
            self.buf.resize(kafka::HEADER_LEN, 0);
        }
        self.max_timestamp = self.max_timestamp.max(timestamp);
        // Deltas are computed with wrapping arithmetic and decoded the same way, so any pair of
        // i64 timestamps round-trips.
        let delta = timestamp.wrapping_sub(self.first_timestamp);
        codec::put_record(
            &mut self.buf,
            Layout::Kafka,
            delta,
            self.count,
            key,
            value,
            headers,
        );
        self.count += 1;
        self
    }

    /// The compression this builder applies.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Number of records added so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when no record was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encoded size so far, before compression, header included.
    pub fn size_in_bytes(&self) -> usize {
        self.buf.len().max(kafka::HEADER_LEN)
    }

    /// An upper bound on how much `append` with these arguments would add to
    /// [`size_in_bytes`](Self::size_in_bytes), so a caller can keep batches under a limit.
    pub fn record_size_upper_bound(
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> usize {
        codec::record_size_upper_bound(key, value, headers)
    }

    /// Encodes the batch: header, (compressed) records and CRC.
    ///
    /// # Errors
    /// [`InvalidArgument`](crate::ErrorKind::InvalidArgument) if the batch is empty;
    /// [`Io`](crate::ErrorKind::Io) if the compressor fails.
    pub fn build(&self) -> Result<RecordBatch> {
        let mut batch = RecordBatch::empty();
        self.build_into(&mut batch)?;
        Ok(batch)
    }

    /// Like [`build`](Self::build), reusing `out`'s buffer (a hot loop then allocates nothing).
    ///
    /// # Errors
    /// As [`build`](Self::build).
    pub fn build_into(&self, out: &mut RecordBatch) -> Result<()> {
        self.encode_into(out, 0)
    }

    /// Like [`build_into`](Self::build_into), but hands the builder's buffer to `out` instead
    /// of copying it: an uncompressed batch's records are not copied at all (its header and CRC
    /// are written in place). The builder is left empty, holding `out`'s old buffer for reuse.
    ///
    /// # Errors
    /// As [`build`](Self::build); the builder is unchanged then.
    pub fn finish_into(&mut self, out: &mut RecordBatch) -> Result<()> {
        if self.count == 0 || self.compression != Compression::None {
            self.encode_into(out, 0)?;
        } else {
            std::mem::swap(&mut out.bytes, &mut self.buf);
            out.header = self.fill_header(&mut out.bytes, kafka::CODEC_NONE, 0)?;
        }
        self.clear();
        Ok(())
    }

    fn encode(&self, extra_attributes: u16) -> Result<RecordBatch> {
        let mut out = RecordBatch::empty();
        self.encode_into(&mut out, extra_attributes)?;
        Ok(out)
    }

    fn encode_into(&self, out: &mut RecordBatch, extra_attributes: u16) -> Result<()> {
        if self.count == 0 {
            return Err(Error::invalid("a record batch needs at least one record"));
        }
        let records = &self.buf[kafka::HEADER_LEN..];
        let bytes = &mut out.bytes;
        bytes.clear();
        bytes.resize(kafka::HEADER_LEN, 0);
        let mut codec_id = kafka::CODEC_NONE;
        if self.compression != Compression::None {
            compression::compress(self.compression, records, bytes)?;
            if bytes.len() - kafka::HEADER_LEN < records.len() {
                codec_id = compression::codec_id(self.compression);
            } else {
                bytes.truncate(kafka::HEADER_LEN);
            }
        }
        if codec_id == kafka::CODEC_NONE {
            bytes.extend_from_slice(records);
        }
        out.header = self.fill_header(&mut out.bytes, codec_id, extra_attributes)?;
        Ok(())
    }

    /// Writes the header and CRC of the batch `bytes` (header room and records) holds.
    fn fill_header(&self, bytes: &mut [u8], codec_id: u16, extra: u16) -> Result<BatchHeader> {
        if self.count == 0 {
            return Err(Error::invalid("a record batch needs at least one record"));
        }
        let transactional = if self.transactional {
            codec::ATTR_TRANSACTIONAL
        } else {
            0
        };
        let header = BatchHeader {
            base_offset: 0,
            batch_length: 0,
            magic: kafka::MAGIC_V2,
            crc: 0,
            attributes: codec_id | transactional | extra,
            last_offset_delta: self.count - 1,
            first_timestamp: self.first_timestamp,
            max_timestamp: self.max_timestamp,
            record_count: self.count,
            producer_id: self.producer.producer_id,
            producer_epoch: self.producer.producer_epoch,
            base_sequence: self.producer.base_sequence,
            layout: Layout::Kafka,
            leader_epoch: 0,
        };
        codec::write_header(bytes, &header);
        BatchHeader::parse(bytes, usize::MAX)
    }

    /// Empties the builder so it can be reused (keeps its buffers).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.count = 0;
        self.max_timestamp = i64::MIN;
    }
}

/// An encoded record batch, ready to append. Its base offset is 0 until a log appends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordBatch {
    bytes: Vec<u8>,
    /// The decoded header of `bytes`, kept so that appends do not parse it again.
    header: BatchHeader,
}

impl RecordBatch {
    /// A buffer for [`BatchBuilder::build_into`]; not a valid batch until built into.
    pub(crate) fn empty() -> RecordBatch {
        RecordBatch {
            bytes: Vec::new(),
            // record_count 0: `Log::append` refuses it.
            header: BatchHeader {
                base_offset: 0,
                batch_length: 0,
                magic: 0,
                crc: 0,
                attributes: 0,
                last_offset_delta: 0,
                first_timestamp: 0,
                max_timestamp: 0,
                record_count: 0,
                producer_id: -1,
                producer_epoch: -1,
                base_sequence: -1,
                layout: Layout::Kafka,
                leader_epoch: 0,
            },
        }
    }

    /// The encoded bytes, exactly as they will be stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Encoded size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a batch holds at least one record.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Decodes and checks (framing and CRC-32C) a Kafka v2 record batch: bytes produced by
    /// [`BatchBuilder::build`], read from a format 3 segment, or sent by a Kafka client. The
    /// check is per batch (header fields, lengths, counts, attributes, CRC), not per record: the
    /// CRC covers the records, which are decoded when read.
    ///
    /// # Errors
    /// [`Corruption`](crate::ErrorKind::Corruption) naming the byte that is wrong.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<RecordBatch> {
        let batch = BatchRef::parse(&bytes, bytes.len())?;
        if batch.len() != bytes.len() {
            return Err(corrupt(
                batch.len() as u64,
                "the end of the batch",
                format!("{} trailing bytes", bytes.len() - batch.len()),
            ));
        }
        let header = batch.header;
        Ok(RecordBatch { bytes, header })
    }

    /// Decodes every record of the batch and its headers (decompressing it first), as Kafka's
    /// broker validates a client's batch before appending it (`LogValidator`). `from_bytes`
    /// checks the framing and the CRC only; a client's batch whose CRC is right but whose
    /// records (or compressed section) do not decode would otherwise be stored, and found by
    /// every reader. A front that appends clients' batches calls this first.
    ///
    /// # Errors
    /// [`Corruption`](crate::ErrorKind::Corruption) naming what does not decode.
    pub fn check_records(&self) -> Result<()> {
        let batch = self.as_batch();
        let records = batch.records()?;
        for r in records.iter() {
            for h in r?.headers() {
                h?;
            }
        }
        Ok(())
    }

    /// A decoding view of this batch.
    pub fn as_batch(&self) -> BatchRef<'_> {
        BatchRef {
            bytes: &self.bytes,
            header: self.header(),
        }
    }

    /// Number of records.
    pub fn record_count(&self) -> u32 {
        self.header().record_count
    }

    pub(crate) fn header(&self) -> BatchHeader {
        self.header
    }

    /// Sets record timestamps to `now` for a log-append-time topic: stamps `max_timestamp` and the
    /// timestamp-type bit, and recomputes the CRC.
    pub(crate) fn stamp_log_append_time(&mut self, now: i64) {
        let mut h = self.header();
        h.attributes |= codec::ATTR_LOG_APPEND_TIME;
        h.max_timestamp = now;
        h.first_timestamp = h.first_timestamp.min(now);
        codec::write_header(&mut self.bytes, &h);
        self.header = BatchHeader::parse(&self.bytes, usize::MAX).unwrap_or(self.header);
    }
}

/// A batch decoded in place from borrowed bytes (a segment mapping or a [`RecordBatch`]). Its
/// framing and CRC were checked when it was made.
#[derive(Clone, Copy, Debug)]
pub struct BatchRef<'a> {
    bytes: &'a [u8],
    header: BatchHeader,
}

impl<'a> BatchRef<'a> {
    /// Parses and checks the Kafka v2 batch at the start of `bytes` (framing and CRC-32C).
    /// Batches larger than `max_batch_bytes` are refused.
    ///
    /// # Errors
    /// [`Corruption`](crate::ErrorKind::Corruption) with the position relative to `bytes`.
    pub fn parse(bytes: &'a [u8], max_batch_bytes: usize) -> Result<BatchRef<'a>> {
        BatchRef::parse_as(bytes, max_batch_bytes, Layout::Kafka)
    }

    /// As [`parse`](Self::parse), for a batch of `layout` (a segment's format says which).
    ///
    /// # Errors
    /// As [`parse`](Self::parse).
    pub fn parse_as(
        bytes: &'a [u8],
        max_batch_bytes: usize,
        layout: Layout,
    ) -> Result<BatchRef<'a>> {
        let header = BatchHeader::parse_as(bytes, max_batch_bytes, layout)?;
        header.verify_crc(bytes)?;
        Ok(BatchRef {
            bytes: &bytes[..header.total_len()],
            header,
        })
    }

    /// Iterates the records of a batch whose (decompressed) records section is `section`.
    pub(crate) fn iter_section(section: &'a [u8], header: BatchHeader) -> RecordIter<'a> {
        RecordIter {
            cursor: Cursor::new(section, header.records_start() as u64),
            zigzag: header.layout.zigzag(),
            header,
            seen: 0,
            last_delta: None,
            failed: false,
        }
    }

    /// The decompressed records section of a compressed batch (`None` if not compressed).
    pub(crate) fn decompressed_section(&self) -> Result<Option<Vec<u8>>> {
        if self.header.is_compressed() {
            decompress(&self.bytes[self.header.records_start()..], self.header).map(Some)
        } else {
            Ok(None)
        }
    }

    pub(crate) fn header(&self) -> BatchHeader {
        self.header
    }

    pub(crate) fn from_checked(bytes: &'a [u8], header: BatchHeader) -> BatchRef<'a> {
        BatchRef { bytes, header }
    }

    /// The batch's bytes, exactly as stored.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Size of the batch in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a batch holds at least one record.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Offset of the first record.
    pub fn base_offset(&self) -> u64 {
        self.header.base_offset
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> u64 {
        self.header.last_offset()
    }

    /// Number of records.
    pub fn record_count(&self) -> u32 {
        self.header.record_count
    }

    /// The base timestamp of the records' timestamp deltas: the first record's timestamp as
    /// written, or the delete horizon once the log cleaner has set one (see
    /// [`delete_horizon`](Self::delete_horizon)).
    pub fn first_timestamp(&self) -> i64 {
        self.header.first_timestamp
    }

    /// When the log cleaner may remove this batch's tombstones (ms since the Unix epoch): set
    /// by the first cleaning pass that kept one of them, `delete_retention_ms` after it
    /// (FORMAT.md 3.1, attribute bit 6). `None` until then.
    pub fn delete_horizon(&self) -> Option<i64> {
        self.header.delete_horizon()
    }

    /// Largest timestamp of the batch.
    pub fn max_timestamp(&self) -> i64 {
        self.header.max_timestamp
    }

    /// The clock the timestamps come from.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.header.log_append_time() {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Whether the records section is compressed.
    pub fn is_compressed(&self) -> bool {
        self.header.is_compressed()
    }

    /// The batch's byte layout (Kafka's, or that of segment formats 1/2).
    pub fn layout(&self) -> Layout {
        self.header.layout
    }

    /// The producer fields (all -1 for a batch without a producer).
    pub fn producer(&self) -> ProducerFields {
        ProducerFields {
            producer_id: self.header.producer_id,
            producer_epoch: self.header.producer_epoch,
            base_sequence: self.header.base_sequence,
        }
    }

    /// Whether the batch was written inside a transaction.
    pub fn is_transactional(&self) -> bool {
        self.header.is_transactional()
    }

    /// Whether this is a control batch (a transaction marker) rather than user records.
    pub fn is_control(&self) -> bool {
        self.header.is_control()
    }

    /// What a control batch marks (`None` for a batch of user records).
    ///
    /// # Errors
    /// [`Corruption`](crate::ErrorKind::Corruption) if the control record is malformed.
    pub fn control_type(&self) -> Result<Option<ControlType>> {
        if !self.is_control() {
            return Ok(None);
        }
        let records = self.records()?;
        let Some(record) = records.iter().next() else {
            return Err(corrupt(0, "one control record", "none"));
        };
        let record = record?;
        if self.header.layout == Layout::Kafka {
            kafka::check_end_txn_marker(record.value())?;
        }
        ControlType::from_key(record.key(), self.header.layout).map(Some)
    }

    /// The records of the batch. For a compressed batch this decompresses the records section
    /// once; otherwise it borrows the stored bytes.
    ///
    /// # Errors
    /// [`Corruption`](crate::ErrorKind::Corruption) if the compressed section does not
    /// decompress to its stated size.
    pub fn records(&self) -> Result<Records<'a>> {
        let section = &self.bytes[self.header.records_start()..];
        let data = if self.header.is_compressed() {
            Cow::Owned(decompress(section, self.header)?)
        } else {
            Cow::Borrowed(section)
        };
        Ok(Records {
            data,
            header: self.header,
        })
    }
}

/// The decompressed records section of a compressed batch. A Kafka batch may use any of
/// Kafka's codecs (gzip, snappy, lz4, zstd: [`compression`]); a format 1/2 batch only zstd.
/// Neither may decompress past [`MAX_UNCOMPRESSED_RECORDS`](codec::MAX_UNCOMPRESSED_RECORDS).
fn decompress(section: &[u8], header: BatchHeader) -> Result<Vec<u8>> {
    if header.layout == Layout::Kafka {
        return compression::decompress(header.codec(), section, codec::MAX_UNCOMPRESSED_RECORDS);
    }
    let at = header.records_start() as u64;
    let Some((len, frame)) = section.split_first_chunk::<4>() else {
        return Err(corrupt(
            at,
            "a 4-byte uncompressed length",
            "the end of the batch",
        ));
    };
    let len = u32::from_le_bytes(*len) as usize;
    if len > codec::MAX_UNCOMPRESSED_RECORDS {
        return Err(corrupt(
            at,
            format!(
                "an uncompressed size of at most {}",
                codec::MAX_UNCOMPRESSED_RECORDS
            ),
            format!("{len}"),
        ));
    }
    let out = zstd::bulk::decompress(frame, len)
        .map_err(|e| corrupt(at + 4, "a valid zstd frame", format!("zstd error: {e}")))?;
    if out.len() != len {
        return Err(corrupt(
            at,
            format!("{len} bytes after decompression"),
            format!("{} bytes", out.len()),
        ));
    }
    Ok(out)
}

/// The decoded (decompressed, if need be) records section of one batch.
#[derive(Debug)]
pub struct Records<'a> {
    data: Cow<'a, [u8]>,
    header: BatchHeader,
}

impl Records<'_> {
    /// Iterates the records in offset order. Each item is checked as it is decoded; a malformed
    /// record ends the iteration with a corruption error.
    pub fn iter(&self) -> RecordIter<'_> {
        BatchRef::iter_section(&self.data, self.header)
    }
}

/// Iterator over the records of a batch. See [`Records::iter`].
#[derive(Debug)]
pub struct RecordIter<'a> {
    cursor: Cursor<'a>,
    /// Kafka's record encoding (zigzag lengths and counts) rather than format 1/2's.
    zigzag: bool,
    header: BatchHeader,
    seen: u32,
    last_delta: Option<u32>,
    failed: bool,
}

impl<'a> RecordIter<'a> {
    /// Moves the iterator so that the next record it yields is the one at `offset` (or the
    /// first after it), skipping the records before it by their lengths without decoding them:
    /// a random read into a large batch costs little more than one record's decode. The skipped
    /// records were covered by the batch CRC; they are not checked further.
    ///
    /// # Errors
    /// [`Corruption`](crate::ErrorKind::Corruption) if a skipped record's length is malformed.
    pub fn skip_to(&mut self, offset: u64) -> Result<()> {
        let contiguous =
            u64::from(self.header.record_count) == u64::from(self.header.last_offset_delta) + 1;
        if !contiguous || self.failed {
            return Ok(()); // offsets cannot be counted: the caller filters while iterating
        }
        let target = offset
            .saturating_sub(self.header.base_offset)
            .min(u64::from(self.header.record_count));
        while u64::from(self.seen) < target {
            let len = self.cursor.count(self.zigzag)?;
            if len > self.cursor.remaining() as u64 {
                self.failed = true;
                return Err(corrupt(
                    0,
                    "a record inside the batch",
                    format!("a record length of {len}"),
                ));
            }
            self.cursor.bytes(len as usize)?;
            self.last_delta = Some(self.seen);
            self.seen += 1;
        }
        Ok(())
    }

    #[inline]
    fn decode(&mut self) -> Result<RecordView<'a>> {
        let zz = self.zigzag;
        let len = self.cursor.count(zz)?;
        if len > self.cursor.remaining() as u64 {
            return Err(record_too_long(len, self.cursor.remaining()));
        }
        let body = self.cursor.bytes(len as usize)?;
        let mut c = Cursor::new(body, 0);
        let _attributes = c.u8()?;
        let ts_delta = c.varint()?;
        let delta = c.count(zz)?;
        let delta_ok = u32::try_from(delta).ok().filter(|d| {
            *d <= self.header.last_offset_delta && self.last_delta.is_none_or(|l| *d > l)
        });
        let Some(delta) = delta_ok else {
            return Err(bad_offset_delta(delta, self.header.last_offset_delta));
        };
        let key = c.nullable_bytes()?;
        let value = c.nullable_bytes()?;
        let header_count = c.count(zz)?;
        let headers = HeaderIter {
            cursor: Cursor::new(c.rest(), 0),
            left: header_count,
            zigzag: zz,
        };
        // Walk the headers once so that a malformed header is reported here, with the record.
        let left = if header_count == 0 {
            c.remaining()
        } else {
            let mut walk = headers.clone();
            for h in walk.by_ref() {
                h?;
            }
            walk.cursor.remaining()
        };
        // The body must be consumed exactly (FORMAT.md 3.3; Kafka's "Invalid record size"):
        // bytes left after the headers mean the length or a field inside is wrong.
        if left != 0 {
            return Err(bytes_after_headers(len, left));
        }
        let stored_timestamp = self.header.first_timestamp.wrapping_add(ts_delta);
        let timestamp = if self.header.log_append_time() {
            self.header.max_timestamp
        } else {
            stored_timestamp
        };
        self.last_delta = Some(delta);
        Ok(RecordView {
            offset: self.header.base_offset + u64::from(delta),
            timestamp,
            stored_timestamp,
            key,
            value,
            headers,
        })
    }
}

// The error paths of the record decoder, out of line: `decode` runs for every record read, and
// kept small it inlines into the iteration.

#[cold]
#[inline(never)]
fn record_too_long(len: u64, remaining: usize) -> Error {
    corrupt(
        0,
        format!("a record of at most {remaining} bytes"),
        format!("a record length of {len}"),
    )
}

#[cold]
#[inline(never)]
fn bad_offset_delta(delta: u64, last_offset_delta: u32) -> Error {
    corrupt(
        0,
        format!("an offset delta above the previous one and at most {last_offset_delta}"),
        format!("{delta}"),
    )
}

#[cold]
#[inline(never)]
fn bytes_after_headers(len: u64, left: usize) -> Error {
    corrupt(
        0,
        format!("a record body of {len} bytes that ends with its headers"),
        format!("{left} bytes after the headers"),
    )
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RecordView<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.seen == self.header.record_count {
            if self.cursor.remaining() != 0 {
                self.failed = true;
                return Some(Err(corrupt(
                    0,
                    format!(
                        "{} records and then the end of the batch",
                        self.header.record_count
                    ),
                    format!("{} more bytes", self.cursor.remaining()),
                )));
            }
            return None;
        }
        self.seen += 1;
        let r = self.decode();
        self.failed = r.is_err();
        Some(r)
    }
}

/// What [`filter_batch`] made of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Filtered {
    /// Every record was kept: the batch stays as it is.
    All,
    /// No record was kept: the batch goes.
    Nothing,
    /// Some were: the new batch is in the output buffer.
    Some,
}

/// Rewrites a batch keeping only the records `keep` accepts (the log cleaner's step), as a
/// Kafka v2 batch. The new batch keeps everything but its record count, length and CRC: base
/// offset, last offset delta (so the offsets of the records kept do not change and gaps appear
/// where others were), first and max timestamps, attributes (codec, timestamp type,
/// transactional), producer id, epoch and base sequence. A Kafka batch's kept records are
/// copied unchanged; a compressed batch is compressed again with its codec, at that codec's
/// default level (Kafka's cleaner, `MemoryRecords.filterTo`, also keeps a batch's codec).
///
/// A batch of segment format 1/2 (`Layout::Legacy`) that changes is re-encoded record by record
/// in Kafka's layout (its zstd codec id becomes Kafka's; a version 1 batch gets no producer);
/// [`to_kafka`] converts one that stays whole.
///
/// With `horizon`, a batch that keeps a tombstone and has no delete horizon yet gets this one
/// (even when every record stays): the horizon goes into `first_timestamp` with attribute bit
/// [`ATTR_DELETE_HORIZON`](codec::ATTR_DELETE_HORIZON), and each record kept is re-encoded
/// with its timestamp delta counted from the horizon, so that its timestamp is unchanged
/// (KIP-534, as Kafka's `MemoryRecords.filterTo`).
///
/// # Errors
/// [`Corruption`](crate::ErrorKind::Corruption) if a record does not decode;
/// [`Io`](crate::ErrorKind::Io) if the compressor fails.
pub(crate) fn filter_batch(
    batch: &BatchRef<'_>,
    mut keep: impl FnMut(&RecordView<'_>) -> bool,
    horizon: Option<i64>,
    out: &mut Vec<u8>,
    kept_records: &mut Vec<u8>,
) -> Result<Filtered> {
    let h = batch.header;
    let horizon = horizon.filter(|_| h.delete_horizon().is_none());
    let decompressed = batch.decompressed_section()?;
    let section: &[u8] = match &decompressed {
        Some(v) => v,
        None => batch.bytes.get(h.records_start()..).unwrap_or(&[]),
    };
    let mut it = BatchRef::iter_section(section, h);
    let mut kept = 0u32;
    let mut dropped = false;
    let mut kept_tombstone = false;
    let mut decisions = Vec::new();
    kept_records.clear();
    loop {
        let start = it.cursor.position();
        let Some(r) = it.next() else { break };
        let r = r?;
        let end = it.cursor.position();
        let k = keep(&r);
        decisions.push(k);
        if k {
            if dropped {
                kept_records.extend_from_slice(&section[start..end]);
            }
            kept += 1;
            kept_tombstone |= r.value().is_none();
        } else if !dropped {
            // Everything before this record was kept: copy it once, only now that it matters.
            dropped = true;
            kept_records.extend_from_slice(&section[..start]);
        }
    }
    let stamp = horizon.filter(|_| kept_tombstone);
    if !dropped && stamp.is_none() {
        return Ok(Filtered::All);
    }
    if kept == 0 {
        return Ok(Filtered::Nothing);
    }
    if !dropped {
        kept_records.extend_from_slice(section);
    }
    let mut header = BatchHeader {
        record_count: kept,
        ..h
    };
    if let Some(horizon) = stamp {
        header.first_timestamp = horizon;
        header.attributes |= codec::ATTR_DELETE_HORIZON;
    }
    if h.layout == Layout::Legacy || stamp.is_some() {
        reencode(
            section,
            &h,
            header.first_timestamp,
            &decisions,
            kept_records,
        )?;
    }
    write_kafka_batch(&h, header, kept_records, out)?;
    Ok(Filtered::Some)
}

/// `batch` (of either layout) as a Kafka v2 batch in `out`, every record kept: a Kafka batch is
/// copied; a format 1/2 batch is re-encoded (the cleaner writes format 3 segments only).
///
/// # Errors
/// As [`filter_batch`].
pub(crate) fn to_kafka(
    batch: &BatchRef<'_>,
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> Result<()> {
    let h = batch.header;
    if h.layout == Layout::Kafka {
        out.clear();
        out.extend_from_slice(batch.bytes);
        return Ok(());
    }
    let decompressed = batch.decompressed_section()?;
    let section: &[u8] = match &decompressed {
        Some(v) => v,
        None => batch.bytes.get(h.records_start()..).unwrap_or(&[]),
    };
    let all = vec![true; h.record_count as usize];
    reencode(section, &h, h.first_timestamp, &all, scratch)?;
    write_kafka_batch(&h, h, scratch, out)
}

/// Re-encodes the records of `section` (of a batch with header `h`) that `keep` marks, in
/// Kafka's record encoding into `out`, each timestamp delta counted from `base` (the records'
/// timestamps do not change). A control record's key and value become Kafka's.
fn reencode(
    section: &[u8],
    h: &BatchHeader,
    base: i64,
    keep: &[bool],
    out: &mut Vec<u8>,
) -> Result<()> {
    out.clear();
    let mut headers: Vec<(&str, Option<&[u8]>)> = Vec::new();
    for (r, k) in BatchRef::iter_section(section, *h).zip(keep) {
        let r = r?;
        if !k {
            continue;
        }
        headers.clear();
        for x in r.headers() {
            headers.push(x?);
        }
        let (mut key, mut value) = (r.key(), r.value());
        let control_key;
        if h.is_control() {
            control_key = ControlType::from_key(key, h.layout)?.key();
            key = Some(&control_key);
            value = Some(&kafka::END_TXN_MARKER_VALUE);
        }
        codec::put_record(
            out,
            Layout::Kafka,
            r.stored_timestamp.wrapping_sub(base),
            (r.offset - h.base_offset) as u32,
            key,
            value,
            &headers,
        );
    }
    Ok(())
}

/// Writes into `out` the Kafka batch of `header` (from a batch whose header was `h`) holding
/// the Kafka-encoded `records`, compressed again if `h` was.
fn write_kafka_batch(
    h: &BatchHeader,
    mut header: BatchHeader,
    records: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    out.clear();
    out.resize(kafka::HEADER_LEN, 0);
    // A format 1/2 batch's only codec is zstd; a Kafka batch keeps its own.
    let again = match h.layout {
        Layout::Legacy if h.is_zstd() => Some(Compression::Zstd {
            level: compression::ZSTD_DEFAULT_LEVEL,
        }),
        Layout::Legacy => None,
        Layout::Kafka => compression::for_codec(h.codec()),
    }
    .unwrap_or(Compression::None);
    let codec_id = compression::codec_id(again);
    if again == Compression::None {
        out.extend_from_slice(records);
    } else {
        compression::compress(again, records, out)?;
    }
    header.attributes = (header.attributes & !codec::ATTR_COMPRESSION_MASK) | codec_id;
    header.layout = Layout::Kafka;
    header.magic = kafka::MAGIC_V2;
    header.leader_epoch = 0;
    codec::write_header(out, &header);
    Ok(())
}

/// One record, borrowed from its batch.
#[derive(Clone, Debug)]
pub struct RecordView<'a> {
    offset: u64,
    timestamp: i64,
    /// The timestamp the record's delta gives (its create time even in a log-append-time
    /// batch), for re-encoding it.
    stored_timestamp: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    headers: HeaderIter<'a>,
}

impl<'a> RecordView<'a> {
    /// The record's offset in its partition.
    pub fn offset(&self) -> u64 {
        self.offset
    }
    /// Milliseconds since the Unix epoch.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }
    /// The key, if any.
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key
    }
    /// The value; `None` is a tombstone.
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value
    }
    /// The headers, in the order they were added.
    pub fn headers(&self) -> HeaderIter<'a> {
        self.headers.clone()
    }
}

/// Iterator over a record's headers as `(key, value)` pairs.
#[derive(Clone, Debug)]
pub struct HeaderIter<'a> {
    cursor: Cursor<'a>,
    left: u64,
    zigzag: bool,
}

impl<'a> HeaderIter<'a> {
    /// The headers `codec::put_headers` wrote at the start of `bytes` (checked, so iterating
    /// them cannot fail), and the bytes after them.
    ///
    /// # Errors
    /// [`Corruption`](crate::ErrorKind::Corruption) if `bytes` does not start with a complete
    /// header list.
    pub(crate) fn split(bytes: &'a [u8]) -> Result<(HeaderIter<'a>, &'a [u8])> {
        let mut cursor = Cursor::new(bytes, 0);
        let left = cursor.uvarint()?;
        let headers = HeaderIter {
            cursor,
            left,
            zigzag: false,
        };
        let mut walk = headers.clone();
        for h in walk.by_ref() {
            h?;
        }
        Ok((headers, walk.cursor.rest()))
    }
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = Result<(&'a str, Option<&'a [u8]>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let r = (|| {
            let klen = self.cursor.count(self.zigzag)?;
            if klen > self.cursor.remaining() as u64 {
                return Err(corrupt(
                    0,
                    "a header key inside the record",
                    format!("key length {klen}"),
                ));
            }
            let k = self.cursor.bytes(klen as usize)?;
            let k = std::str::from_utf8(k)
                .map_err(|_| corrupt(0, "a UTF-8 header key", "invalid UTF-8"))?;
            let v = self.cursor.nullable_bytes()?;
            Ok((k, v))
        })();
        if r.is_err() {
            self.left = 0;
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_to_lands_on_the_record() {
        let mut b = BatchBuilder::new(Compression::None);
        for i in 0..50u8 {
            b.append(
                i64::from(i),
                Some(&[i]),
                Some(&[i; 7]),
                &[("h", Some(&[i]))],
            );
        }
        let batch = b.build().unwrap();
        let records = batch.as_batch().records().unwrap();
        for target in [0u64, 1, 17, 49] {
            let mut it = records.iter();
            it.skip_to(target).unwrap();
            let r = it.next().unwrap().unwrap();
            assert_eq!(r.offset(), target);
            assert_eq!(r.value(), Some(&[target as u8; 7][..]));
            assert_eq!(it.count(), 49 - target as usize);
        }
        let mut it = records.iter();
        it.skip_to(500).unwrap();
        assert!(it.next().is_none());
    }

    /// A record whose length covers bytes after its headers is refused (FORMAT.md 3.3: the body
    /// is consumed exactly), not read with the extra bytes ignored: the bytes of a record that
    /// passed the CRC but do not fit the format are corruption, whatever they hide.
    #[test]
    fn bytes_after_the_headers_are_corruption() {
        let mut b = BatchBuilder::new(Compression::None);
        b.append(5, Some(b"k"), Some(b"v"), &[]);
        let mut bytes = b.build().unwrap().as_bytes().to_vec();
        let start = kafka::HEADER_LEN;
        assert!(bytes[start] < 0x7e, "a one-byte record length");
        bytes[start] += 2; // zigzag: one more byte
        bytes.push(0);
        let h = BatchHeader::parse(&bytes, usize::MAX).unwrap();
        codec::write_header(&mut bytes, &h);
        let batch = BatchRef::parse(&bytes, usize::MAX).unwrap();
        let records = batch.records().unwrap();
        let e = records.iter().next().unwrap().unwrap_err();
        assert!(e.is_corruption(), "{e:?}");
        assert!(e.to_string().contains("after the headers"), "{e}");
    }

    /// (timestamp, key, value) of a test record.
    type Rec<'a> = (i64, Option<&'a [u8]>, Option<&'a [u8]>);

    /// A batch of segment format 1/2 (`Layout::Legacy`), as builds before format 3 wrote it.
    fn legacy_batch(base: u64, records: &[Rec<'_>], attrs: u16) -> Vec<u8> {
        let mut out = vec![0u8; codec::HEADER_LEN];
        let first = records[0].0;
        for (i, (ts, k, v)) in records.iter().enumerate() {
            let h: &[(&str, Option<&[u8]>)] = &[("h", Some(b"x")), ("n", None)];
            codec::put_record(&mut out, Layout::Legacy, ts - first, i as u32, *k, *v, h);
        }
        let header = BatchHeader {
            base_offset: base,
            batch_length: 0,
            magic: 2,
            crc: 0,
            attributes: attrs,
            last_offset_delta: records.len() as u32 - 1,
            first_timestamp: first,
            max_timestamp: records.iter().map(|r| r.0).max().unwrap(),
            record_count: records.len() as u32,
            producer_id: if attrs & codec::ATTR_CONTROL != 0 {
                7
            } else {
                -1
            },
            producer_epoch: if attrs & codec::ATTR_CONTROL != 0 {
                1
            } else {
                -1
            },
            base_sequence: -1,
            layout: Layout::Legacy,
            leader_epoch: 0,
        };
        codec::write_header(&mut out, &header);
        out
    }

    type Seen = Vec<(u64, i64, Option<Vec<u8>>, Option<Vec<u8>>, usize)>;

    fn seen(batch: &BatchRef<'_>) -> Seen {
        let records = batch.records().unwrap();
        records
            .iter()
            .map(|r| {
                let r = r.unwrap();
                let headers = r.headers().map(Result::unwrap).count();
                (
                    r.offset(),
                    r.timestamp(),
                    r.key().map(<[u8]>::to_vec),
                    r.value().map(<[u8]>::to_vec),
                    headers,
                )
            })
            .collect()
    }

    /// Format 1/2 batches read with their own decoder, and the cleaner's conversion gives a
    /// Kafka batch with the same offsets, timestamps, keys, values and headers; a format 1/2
    /// commit marker becomes a Kafka one.
    #[test]
    fn legacy_batches_read_and_convert_to_kafka() {
        let records: [Rec<'_>; 3] = [
            (1_000, Some(b"a"), Some(b"1")),
            (990, None, Some(b"2")),
            (1_010, Some(b"c"), None),
        ];
        let bytes = legacy_batch(100, &records, 0);
        assert!(
            BatchRef::parse(&bytes, usize::MAX).is_err(),
            "not a Kafka batch"
        );
        let legacy = BatchRef::parse_as(&bytes, usize::MAX, Layout::Legacy).unwrap();
        let want = seen(&legacy);
        assert_eq!(want.len(), 3);
        assert_eq!(want[1], (101, 990, None, Some(b"2".to_vec()), 2));
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        to_kafka(&legacy, &mut out, &mut scratch).unwrap();
        let kafka = BatchRef::parse(&out, usize::MAX).unwrap();
        assert_eq!(kafka.layout(), Layout::Kafka);
        assert_eq!(seen(&kafka), want);

        let mut marker = vec![0u8; 0];
        marker.extend_from_slice(&legacy_batch(
            200,
            &[(5, Some(&[0, 0, 1, 0]), None)],
            codec::ATTR_CONTROL | codec::ATTR_TRANSACTIONAL,
        ));
        let legacy = BatchRef::parse_as(&marker, usize::MAX, Layout::Legacy).unwrap();
        assert_eq!(legacy.control_type().unwrap(), Some(ControlType::Commit));
        to_kafka(&legacy, &mut out, &mut scratch).unwrap();
        let kafka = BatchRef::parse(&out, usize::MAX).unwrap();
        assert_eq!(kafka.control_type().unwrap(), Some(ControlType::Commit));
        let r = kafka.records().unwrap();
        let r = r.iter().next().unwrap().unwrap();
        assert_eq!(r.key(), Some(&[0, 0, 0, 1][..]));
        assert_eq!(r.value(), Some(&kafka::END_TXN_MARKER_VALUE[..]));
    }

    /// Compaction of a format 1/2 batch drops records and writes the rest as a Kafka batch.
    #[test]
    fn filtering_a_legacy_batch_writes_a_kafka_batch() {
        let records: [Rec<'_>; 3] = [
            (1_000, Some(b"a"), Some(b"1")),
            (1_001, Some(b"b"), Some(b"2")),
            (1_002, Some(b"c"), Some(b"3")),
        ];
        let bytes = legacy_batch(10, &records, 0);
        let legacy = BatchRef::parse_as(&bytes, usize::MAX, Layout::Legacy).unwrap();
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        let verdict =
            filter_batch(&legacy, |r| r.offset() != 11, None, &mut out, &mut scratch).unwrap();
        assert_eq!(verdict, Filtered::Some);
        let kafka = BatchRef::parse(&out, usize::MAX).unwrap();
        let got = seen(&kafka);
        let offsets: Vec<u64> = got.iter().map(|r| r.0).collect();
        assert_eq!(offsets, [10, 12]);
        assert_eq!(kafka.last_offset(), 12);
        assert_eq!(got[1].1, 1_002);
    }

    /// The cleaner's rewrite of a compressed Kafka batch keeps its codec (as Kafka's
    /// `MemoryRecords.filterTo` does), for each of Kafka's codecs, and the kept records read back.
    #[test]
    fn filtering_keeps_each_codec() {
        let value = b"a value long enough to be worth compressing, ".repeat(4);
        for compression in [
            Compression::Gzip { level: 6 },
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd { level: 3 },
        ] {
            let mut b = BatchBuilder::new(compression);
            for i in 0..6u8 {
                b.append(1_000 + i64::from(i), Some(&[i]), Some(&value), &[]);
            }
            let batch = b.build().unwrap();
            let id = compression::codec_id(compression);
            assert_eq!(batch.header().codec(), id, "{compression:?}");
            let (mut out, mut scratch) = (Vec::new(), Vec::new());
            let verdict = filter_batch(
                &batch.as_batch(),
                |r| r.offset() % 2 == 0,
                None,
                &mut out,
                &mut scratch,
            )
            .unwrap();
            assert_eq!(verdict, Filtered::Some);
            let kept = BatchRef::parse(&out, usize::MAX).unwrap();
            assert_eq!(kept.header().codec(), id, "{compression:?}");
            let offsets: Vec<u64> = seen(&kept).iter().map(|r| r.0).collect();
            assert_eq!(offsets, [0, 2, 4], "{compression:?}");
        }
    }
}
