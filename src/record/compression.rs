//! Kafka's compression codecs for the records section of a v2 batch: gzip, snappy, lz4 and
//! zstd (attribute bits 0..=2 = 1, 2, 3, 4; FORMAT.md section 3.2).
//!
//! Segment format 3 stores a Kafka client's batch verbatim, so every embedded reader (the
//! consumer, `Log::read` with [`RecordView`](super::RecordView), the cleaner, `inspect`,
//! streams) must decode whatever codec a client chose. Each codec's framing is the one Kafka's
//! own clients write and read:
//!
//! - **gzip**: one gzip stream (RFC 1952), as Java's `GZIPOutputStream` writes it (Kafka's
//!   `GzipCompression`); concatenated members read as one stream, as `GZIPInputStream` reads
//!   them.
//! - **snappy**: Xerial's snappy-java framing, as Kafka's `SnappyCompression` writes it
//!   (`SnappyOutputStream`): the 8-byte magic `82 'S' 'N' 'A' 'P' 'P' 'Y' 00`, a big-endian
//!   version and compatible version (1, 1), then blocks of `length i32 (big-endian) | raw
//!   snappy`. A section without that magic is one raw snappy block, as some clients write it;
//!   Java's `SnappyInputStream` and librdkafka (`rdkafka_msgset_reader.c`) read both, and so does
//!   this module.
//! - **lz4**: the LZ4 frame format (magic `04 22 4D 18`), as Kafka's `Lz4BlockOutputStream`
//!   writes it: 64 KiB independent blocks, no checksums. For magic 2 the frame header checksum
//!   is the correct one (Kafka's broken-checksum quirk is for magic 0 only), so a standard frame
//!   decoder reads it.
//! - **zstd**: one zstd frame ([`kafka::decompress_zstd`](super::kafka::decompress_zstd)).
//!
//! Decompression never produces more than a caller's limit
//! ([`MAX_UNCOMPRESSED_RECORDS`](super::codec::MAX_UNCOMPRESSED_RECORDS) for batches): the output
//! grows as the stream decodes (or, for snappy, its stated length is checked before anything is
//! allocated), so a small forged section that claims or expands to gigabytes is a
//! [`Corruption`](crate::ErrorKind::Corruption) error, never an out-of-memory abort. Every
//! decoder is pure Rust (`flate2` with `miniz_oxide`, `snap`, `lz4_flex` in its safe mode) and
//! turns malformed input into an error, never a panic.

// Snappy-java's framing is big-endian.
#![allow(clippy::big_endian_bytes)]

use std::io::{Read, Write};

use crate::error::{corrupt, Error, Result};
use crate::record::kafka::{self, CODEC_GZIP, CODEC_LZ4, CODEC_NONE, CODEC_SNAPPY, CODEC_ZSTD};
use crate::record::Compression;

/// The first 8 bytes of a snappy-java (Xerial) stream.
pub const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Size of the snappy-java header: magic, version i32, compatible version i32.
pub const XERIAL_HEADER_LEN: usize = 16;
/// The version and compatible version snappy-java (1.1.x) writes, and so Kafka's Java client.
const XERIAL_VERSION: i32 = 1;
/// snappy-java's default block size: each framed block holds at most this much input.
const XERIAL_BLOCK: usize = 32 * 1024;

/// Kafka's default gzip level (`compression.gzip.level` unset: `Deflater.DEFAULT_COMPRESSION`,
/// which is zlib's 6).
pub const GZIP_DEFAULT_LEVEL: u32 = 6;
/// Kafka's default zstd level (`compression.zstd.level` unset: zstd's 3).
pub const ZSTD_DEFAULT_LEVEL: i32 = 3;

/// The Kafka codec id (attribute bits 0..=2) of `compression`.
pub fn codec_id(compression: Compression) -> u16 {
    match compression {
        Compression::None => CODEC_NONE,
        Compression::Gzip { .. } => CODEC_GZIP,
        Compression::Snappy => CODEC_SNAPPY,
        Compression::Lz4 => CODEC_LZ4,
        Compression::Zstd { .. } => CODEC_ZSTD,
    }
}

/// The compression that writes Kafka codec `codec` again, at that codec's default level (what
/// the log cleaner uses to recompress a batch it rewrites, as Kafka's cleaner keeps a batch's
/// codec). `None` for an unknown id.
pub fn for_codec(codec: u16) -> Option<Compression> {
    Some(match codec {
        CODEC_NONE => Compression::None,
        CODEC_GZIP => Compression::Gzip {
            level: GZIP_DEFAULT_LEVEL,
        },
        CODEC_SNAPPY => Compression::Snappy,
        CODEC_LZ4 => Compression::Lz4,
        CODEC_ZSTD => Compression::Zstd {
            level: ZSTD_DEFAULT_LEVEL,
        },
        _ => return None,
    })
}

/// Decompresses a Kafka batch's records `section` compressed with `codec`, producing at most
/// `limit` bytes. Positions in errors are those of a batch's records (right after its header).
///
/// # Errors
/// [`Corruption`](crate::ErrorKind::Corruption) naming the codec if the section does not decode
/// or would decode to more than `limit` bytes; also for codec none or an unknown id (nothing
/// to decompress).
pub fn decompress(codec: u16, section: &[u8], limit: usize) -> Result<Vec<u8>> {
    match codec {
        CODEC_GZIP => decompress_gzip(section, limit),
        CODEC_SNAPPY => decompress_snappy(section, limit),
        CODEC_LZ4 => decompress_lz4(section, limit),
        CODEC_ZSTD => kafka::decompress_zstd(section, limit),
        other => Err(corrupt(
            kafka::HEADER_LEN as u64,
            "a compressed records section (codec gzip, snappy, lz4 or zstd)",
            format!("codec {}", kafka::codec_name(other)),
        )),
    }
}

/// Appends `records` compressed with `compression` to `out` (nothing for
/// [`Compression::None`]).
///
/// # Errors
/// [`Io`](crate::ErrorKind::Io) if the compressor fails (zstd only, in practice: the others
/// write to memory and cannot).
pub fn compress(compression: Compression, records: &[u8], out: &mut Vec<u8>) -> Result<()> {
    match compression {
        Compression::None => Ok(()),
        Compression::Gzip { level } => compress_gzip(records, level, out),
        Compression::Snappy => compress_snappy(records, out),
        Compression::Lz4 => compress_lz4(records, out),
        Compression::Zstd { level } => kafka::compress_zstd(records, level, out),
    }
}

/// The error for a section of `codec` that does not decode.
fn bad(codec: &str, detail: impl std::fmt::Display) -> Error {
    corrupt(
        kafka::HEADER_LEN as u64,
        format!("a valid {codec} records section"),
        format!("{codec} error: {detail}"),
    )
}

/// The error for a section of `codec` that decodes to more than `limit` bytes.
fn too_large(codec: &str, limit: usize) -> Error {
    corrupt(
        kafka::HEADER_LEN as u64,
        format!("records of at most {limit} bytes after decompression"),
        format!("a {codec} section that decompresses to more"),
    )
}

/// Reads `reader` to its end, failing once it has produced more than `limit` bytes: the
/// output grows only as data arrives, so a stream's claims allocate nothing it does not
/// deliver. `hint` sizes the first allocation.
fn read_bounded(reader: impl Read, codec: &str, limit: usize, hint: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(hint.saturating_mul(4).min(limit));
    let mut reader = reader.take(limit as u64);
    reader.read_to_end(&mut out).map_err(|e| bad(codec, e))?;
    if out.len() == limit {
        let mut one = [0u8; 1];
        let more = reader
            .into_inner()
            .read(&mut one)
            .map_err(|e| bad(codec, e))?;
        if more > 0 {
            return Err(too_large(codec, limit));
        }
    }
    Ok(out)
}

fn decompress_gzip(section: &[u8], limit: usize) -> Result<Vec<u8>> {
    read_bounded(
        flate2::read::MultiGzDecoder::new(section),
        "gzip",
        limit,
        section.len(),
    )
}

fn compress_gzip(records: &[u8], level: u32, out: &mut Vec<u8>) -> Result<()> {
    let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::new(level.min(9)));
    encoder
        .write_all(records)
        .and_then(|()| encoder.try_finish())
        .map_err(|e| Error::io("gzip compression", "<memory>", e))
}

fn decompress_lz4(section: &[u8], limit: usize) -> Result<Vec<u8>> {
    let end = lz4_frame_len(section)?;
    read_bounded(
        lz4_flex::frame::FrameDecoder::new(&section[..end]),
        "lz4",
        limit,
        section.len(),
    )
}

/// The LZ4 frame magic, little-endian on the wire.
const LZ4_MAGIC: u32 = 0x184D_2204;

/// The length of the one LZ4 frame at the start of `section`, walking its structure (header,
/// block lengths, end mark, content checksum) without decoding it. The decoder alone would take
/// a frame cut short at a block boundary for a complete one, where Kafka's reader
/// (`Lz4BlockInputStream`: "Stream ended prematurely") and librdkafka refuse it: a batch this
/// module accepts must be one every Kafka client reads. Bytes after the frame are ignored, as
/// Kafka's reader ignores them.
fn lz4_frame_len(section: &[u8]) -> Result<usize> {
    let short = |what: &str| bad("lz4", format!("the frame ends before its {what}"));
    let magic = section.first_chunk::<4>().ok_or_else(|| short("magic"))?;
    if u32::from_le_bytes(*magic) != LZ4_MAGIC {
        return Err(bad(
            "lz4",
            format!("frame magic {magic:02x?}, not 04 22 4d 18"),
        ));
    }
    let (&flg, &bd) = match section.get(4..6) {
        Some([flg, bd]) => (flg, bd),
        _ => return Err(short("descriptor")),
    };
    let block_checksums = flg & 0x10 != 0;
    let content_size = flg & 0x08 != 0;
    let content_checksum = flg & 0x04 != 0;
    let dict_id = flg & 0x01 != 0;
    // Version 01 and a block size the format defines (4..=7: 64 KiB ..= 4 MiB).
    if flg >> 6 != 0b01 || !(4..=7).contains(&((bd >> 4) & 0x7)) {
        return Err(bad(
            "lz4",
            format!("a frame descriptor FLG 0x{flg:02x} BD 0x{bd:02x} of an unknown version"),
        ));
    }
    let mut at = 6 + if content_size { 8 } else { 0 } + if dict_id { 4 } else { 0 } + 1;
    loop {
        let Some(len) = section.get(at..at + 4) else {
            return Err(short("end mark"));
        };
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) & 0x7FFF_FFFF;
        at += 4;
        if len == 0 {
            break;
        }
        at = at
            .saturating_add(len as usize)
            .saturating_add(if block_checksums { 4 } else { 0 });
    }
    if content_checksum {
        at += 4;
    }
    if at > section.len() {
        return Err(short("content checksum"));
    }
    Ok(at)
}

fn compress_lz4(records: &[u8], out: &mut Vec<u8>) -> Result<()> {
    use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
    // Kafka's Lz4BlockOutputStream: 64 KiB blocks, each independent (Kafka's reader decodes a
    // block without the previous one's window), no block or content checksum.
    let info = FrameInfo::new()
        .block_size(BlockSize::Max64KB)
        .block_mode(BlockMode::Independent);
    let mut encoder = FrameEncoder::with_frame_info(info, out);
    encoder
        .write_all(records)
        .map_err(|e| Error::io("lz4 compression", "<memory>", e))?;
    encoder
        .finish()
        .map_err(|e| Error::io("lz4 compression", "<memory>", std::io::Error::other(e)))?;
    Ok(())
}

fn decompress_snappy(section: &[u8], limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    if section.len() >= XERIAL_HEADER_LEN && section.starts_with(&XERIAL_MAGIC) {
        // snappy-java framing. The version fields are not checked, as librdkafka does not:
        // every snappy-java version so far writes 1 and 1.
        let mut rest = &section[XERIAL_HEADER_LEN..];
        while !rest.is_empty() {
            let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                return Err(bad(
                    "snappy",
                    format!(
                        "{} bytes left where a block length (4 bytes) was expected",
                        rest.len()
                    ),
                ));
            };
            let len = i32::from_be_bytes(*len);
            let block = usize::try_from(len)
                .ok()
                .and_then(|len| tail.get(..len))
                .ok_or_else(|| {
                    bad(
                        "snappy",
                        format!("a block of {len} bytes, with only {} left", tail.len()),
                    )
                })?;
            snappy_raw_into(block, limit, &mut out)?;
            rest = &tail[block.len()..];
        }
    } else {
        snappy_raw_into(section, limit, &mut out)?;
    }
    Ok(out)
}

/// Appends the raw snappy block `block` decoded to `out`, refusing (before allocating) to grow
/// `out` past `limit`.
fn snappy_raw_into(block: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<()> {
    let len = snap::raw::decompress_len(block).map_err(|e| bad("snappy", e))?;
    if len > limit.saturating_sub(out.len()) {
        return Err(too_large("snappy", limit));
    }
    let start = out.len();
    out.resize(start + len, 0);
    let n = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| bad("snappy", e))?;
    if n != len {
        return Err(bad(
            "snappy",
            format!("a block stating {len} bytes decoded to {n}"),
        ));
    }
    Ok(())
}

/// Compresses as Kafka's Java client does (snappy-java's `SnappyOutputStream`): the Xerial
/// header, then one framed raw snappy block per 32 KiB of input.
fn compress_snappy(records: &[u8], out: &mut Vec<u8>) -> Result<()> {
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
    out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
    let mut encoder = snap::raw::Encoder::new();
    for chunk in records.chunks(XERIAL_BLOCK) {
        let at = out.len();
        out.resize(at + 4 + snap::raw::max_compress_len(chunk.len()), 0);
        let n = encoder
            .compress(chunk, &mut out[at + 4..])
            .map_err(|e| Error::io("snappy compression", "<memory>", std::io::Error::other(e)))?;
        // A block holds at most 32 KiB of input, so its compressed length fits an i32.
        out[at..at + 4].copy_from_slice(&(n as i32).to_be_bytes());
        out.truncate(at + 4 + n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [Compression; 4] = [
        Compression::Gzip { level: 6 },
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd { level: 3 },
    ];

    fn sample(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 13) as u8 + b'a').collect()
    }

    #[test]
    fn round_trips_every_codec() {
        for c in ALL {
            for n in [0, 1, 100, XERIAL_BLOCK, XERIAL_BLOCK + 1, 200_000] {
                let data = sample(n);
                let mut out = Vec::new();
                compress(c, &data, &mut out).unwrap();
                assert_eq!(
                    decompress(codec_id(c), &out, 1 << 20).unwrap(),
                    data,
                    "{c:?} {n}"
                );
            }
        }
    }

    #[test]
    fn snappy_is_framed_as_snappy_java_and_raw_reads_too() {
        let data = sample(100_000);
        let mut framed = Vec::new();
        compress_snappy(&data, &mut framed).unwrap();
        assert_eq!(&framed[..8], &XERIAL_MAGIC);
        assert_eq!(&framed[8..16], &[0, 0, 0, 1, 0, 0, 0, 1]);
        // 100 000 bytes in 32 KiB blocks: four blocks.
        let mut blocks = 0;
        let mut rest = &framed[16..];
        while !rest.is_empty() {
            let len = i32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            rest = &rest[4 + len..];
            blocks += 1;
        }
        assert_eq!(blocks, 4);
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(decompress(CODEC_SNAPPY, &raw, 1 << 20).unwrap(), data);
        assert_eq!(decompress(CODEC_SNAPPY, &framed, 1 << 20).unwrap(), data);
    }

    #[test]
    fn lz4_frame_is_kafkas() {
        let mut out = Vec::new();
        compress_lz4(&sample(1000), &mut out).unwrap();
        assert_eq!(&out[..4], &[0x04, 0x22, 0x4D, 0x18], "LZ4 frame magic");
        // FLG: version 01, block independence, no checksums, no content size; BD: 64 KiB.
        assert_eq!(out[4], 0b0110_0000);
        assert_eq!(out[5], 0b0100_0000);
    }

    /// Output exactly at the limit is fine; one byte more is refused, for every codec.
    #[test]
    fn output_is_bounded() {
        for c in ALL {
            let data = vec![0u8; 100_000];
            let mut out = Vec::new();
            compress(c, &data, &mut out).unwrap();
            assert_eq!(
                decompress(codec_id(c), &out, 100_000).unwrap(),
                data,
                "{c:?}"
            );
            let e = decompress(codec_id(c), &out, 99_999).unwrap_err();
            assert!(e.is_corruption(), "{c:?}: {e:?}");
            assert!(e.to_string().contains("after decompression"), "{c:?}: {e}");
        }
    }

    /// A raw snappy block stating a size past the limit is refused before anything is
    /// allocated; so is a framed stream whose blocks add up past it.
    #[test]
    fn snappy_stated_sizes_are_checked_first() {
        // varint 0xFFFFFFFF: a 4 GiB block, then a literal that is not there.
        let forged = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x00];
        let e = decompress(CODEC_SNAPPY, &forged, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("after decompression"), "{e}");
        let block = snap::raw::Encoder::new()
            .compress_vec(&[0u8; 1000])
            .unwrap();
        let mut framed = Vec::new();
        framed.extend_from_slice(&XERIAL_MAGIC);
        framed.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        for _ in 0..3 {
            framed.extend_from_slice(&(block.len() as i32).to_be_bytes());
            framed.extend_from_slice(&block);
        }
        assert_eq!(decompress(CODEC_SNAPPY, &framed, 3000).unwrap().len(), 3000);
        assert!(decompress(CODEC_SNAPPY, &framed, 2999).is_err());
    }

    #[test]
    fn truncated_and_mangled_sections_are_errors() {
        for c in ALL {
            let data = sample(50_000);
            let mut out = Vec::new();
            compress(c, &data, &mut out).unwrap();
            for cut in [0, 1, 4, 10, out.len() / 2, out.len() - 1] {
                let r = decompress(codec_id(c), &out[..cut], 1 << 20);
                assert!(
                    r.is_err() || r.as_ref().unwrap() != &data,
                    "{c:?} cut at {cut}"
                );
            }
        }
        // A framed snappy block length past the end, negative, or a dangling length byte.
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        for tail in [&[0, 0, 1, 0, 1][..], &[0xFF, 0xFF, 0xFF, 0xFF], &[0, 0]] {
            let mut f = framed.clone();
            f.extend_from_slice(tail);
            let e = decompress(CODEC_SNAPPY, &f, 1 << 20).unwrap_err();
            assert!(e.is_corruption() && e.to_string().contains("snappy"), "{e}");
        }
        assert!(decompress(CODEC_NONE, b"x", 10).is_err());
        assert!(decompress(5, b"x", 10).is_err());
    }

    /// The sections kafka-python compressed (tests/data/kafka/generate.py) decompress to exactly
    /// the records section BatchBuilder writes uncompressed for the same records: byte for byte.
    #[test]
    fn kafka_python_sections_decompress_byte_exact() {
        let mut b = crate::record::BatchBuilder::new(Compression::None);
        for i in 0..60i64 {
            let value = format!("record {i} of a compressed batch; ").repeat(48);
            let n = i.to_string();
            let headers: &[(&str, Option<&[u8]>)] = if i % 3 == 0 {
                &[("i", Some(n.as_bytes()))]
            } else {
                &[]
            };
            b.append(
                1_700_000_000_000 + i,
                Some(format!("c{i}").as_bytes()),
                Some(value.as_bytes()),
                headers,
            );
        }
        let plain = b.build().unwrap();
        let expected = &plain.as_bytes()[kafka::HEADER_LEN..];
        assert!(expected.len() > 2 * 32 * 1024, "several snappy-java blocks");
        let files: [(&str, u16, &[u8]); 4] = [
            (
                "gzip",
                CODEC_GZIP,
                include_bytes!("../../tests/data/kafka/gzip.bin"),
            ),
            (
                "snappy",
                CODEC_SNAPPY,
                include_bytes!("../../tests/data/kafka/snappy.bin"),
            ),
            (
                "snappy_raw",
                CODEC_SNAPPY,
                include_bytes!("../../tests/data/kafka/snappy_raw.bin"),
            ),
            (
                "lz4",
                CODEC_LZ4,
                include_bytes!("../../tests/data/kafka/lz4.bin"),
            ),
        ];
        for (name, codec, file) in files {
            assert_eq!(u16::from(file[22] & 7), codec, "{name}");
            let section = &file[kafka::HEADER_LEN..];
            let out = decompress(
                codec,
                section,
                crate::record::codec::MAX_UNCOMPRESSED_RECORDS,
            )
            .unwrap();
            assert!(out == expected, "{name}: decompressed section differs");
        }
    }

    /// A batch whose section expands past 256 MiB (a zip bomb: a few hundred KiB on the wire)
    /// is a corruption error when its records are read, for every codec, through the public
    /// path; nothing past the limit is produced.
    #[test]
    fn zip_bombs_are_refused() {
        let limit = crate::record::codec::MAX_UNCOMPRESSED_RECORDS;
        let over = (limit + (1 << 20)) as u64;
        let zeros = || std::io::repeat(0).take(over);
        let mut sections: Vec<(&str, Vec<u8>)> = Vec::new();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::copy(&mut zeros(), &mut gz).unwrap();
        sections.push(("gzip", gz.finish().unwrap()));
        let mut lz = lz4_flex::frame::FrameEncoder::new(Vec::new());
        std::io::copy(&mut zeros(), &mut lz).unwrap();
        sections.push(("lz4", lz.finish().unwrap()));
        let mut zs = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        std::io::copy(&mut zeros(), &mut zs).unwrap();
        sections.push(("zstd", zs.finish().unwrap()));
        // snappy-java framing: one 32 KiB block of zeros, repeated past the limit.
        let block = snap::raw::Encoder::new()
            .compress_vec(&[0u8; XERIAL_BLOCK])
            .unwrap();
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        for _ in 0..over as usize / XERIAL_BLOCK {
            framed.extend_from_slice(&(block.len() as i32).to_be_bytes());
            framed.extend_from_slice(&block);
        }
        sections.push(("snappy", framed));
        // Raw snappy stating 4 GiB.
        sections.push(("snappy", vec![0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x00]));
        let template = include_bytes!("../../tests/data/kafka/gzip.bin");
        for (name, section) in sections {
            // A small fraction of what it expands to (snappy: about 1/21).
            assert!(
                section.len() < limit / 16,
                "{name}: {} bytes",
                section.len()
            );
            let mut bytes = template[..kafka::HEADER_LEN].to_vec();
            let id = match name {
                "gzip" => CODEC_GZIP,
                "snappy" => CODEC_SNAPPY,
                "lz4" => CODEC_LZ4,
                _ => CODEC_ZSTD,
            };
            bytes[22] = (bytes[22] & !7) | id as u8;
            bytes.extend_from_slice(&section);
            let len = (bytes.len() - 12) as i32;
            bytes[8..12].copy_from_slice(&len.to_be_bytes());
            let crc = kafka::crc32c(&bytes[kafka::ATTRIBUTES.start..]);
            bytes[kafka::CRC].copy_from_slice(&crc.to_be_bytes());
            let batch = crate::record::RecordBatch::from_bytes(bytes).unwrap();
            let e = batch.as_batch().records().unwrap_err();
            assert!(e.is_corruption(), "{name}: {e:?}");
            assert!(e.to_string().contains("after decompression"), "{name}: {e}");
        }
    }

    proptest! {
        /// Arbitrary bytes into every decoder: an error or some output within the limit, never
        /// a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            for codec in [CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD] {
                if let Ok(out) = decompress(codec, &bytes, 4096) {
                    prop_assert!(out.len() <= 4096);
                }
            }
        }

        /// A valid section with one byte changed, or cut short, into its decoder: no panic, and
        /// the output stays within the limit.
        #[test]
        fn mangled_sections_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..3000),
            which in 0usize..4,
            at in any::<prop::sample::Index>(),
            xor in 1u8..=255,
            cut in any::<prop::sample::Index>(),
        ) {
            let c = ALL[which];
            let mut out = Vec::new();
            compress(c, &data, &mut out).unwrap();
            let i = at.index(out.len());
            out[i] ^= xor;
            if let Ok(back) = decompress(codec_id(c), &out, 8192) {
                prop_assert!(back.len() <= 8192);
            }
            let n = cut.index(out.len());
            if let Ok(back) = decompress(codec_id(c), &out[..n], 8192) {
                prop_assert!(back.len() <= 8192);
            }
        }
    }
}
