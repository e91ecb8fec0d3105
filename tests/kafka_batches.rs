//! Kafka v2 record batches from an independent encoder (kafka-python's
//! `DefaultRecordBatchBuilder`, `tests/data/kafka/generate.py`) parse field by field and record
//! by record, a `BatchBuilder` given the same inputs writes the same bytes (uncompressed ones;
//! zstd frames differ by level and library), and a log accepts them as a Kafka client sends
//! them. Cases translated from Kafka's `DefaultRecordBatchTest` and `DefaultRecordTest`
//! (clients/src/test/java/org/apache/kafka/common/record/) are named in their comments.

// Kafka's wire format is big-endian.
#![allow(clippy::big_endian_bytes)]

use riverbed::{BatchBuilder, BatchRef, Compression, Log, LogConfig, ProducerFields, RecordBatch};

const T0: i64 = 1_700_000_000_000;

type Header<'a> = (&'a str, Option<&'a [u8]>);
type Rec<'a> = (i64, Option<&'a [u8]>, Option<&'a [u8]>, Vec<Header<'a>>);

fn bin(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/kafka/{name}.bin", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(path).unwrap()
}

/// The records generate.py wrote into each file.
fn cases() -> Vec<(&'static str, Vec<Rec<'static>>)> {
    let idempotent: Vec<Rec<'static>> = (0..5)
        .map(|i| {
            let k: &'static [u8] = Box::leak(format!("key-{i}").into_bytes().into_boxed_slice());
            let v: &'static [u8] = Box::leak(format!("value-{i}").into_bytes().into_boxed_slice());
            (T0 + i, Some(k), Some(v), vec![])
        })
        .collect();
    let transactional: Vec<Rec<'static>> = (0..2)
        .map(|i| {
            let k: &'static [u8] = Box::leak(format!("tx-{i}").into_bytes().into_boxed_slice());
            (T0 + i, Some(k), Some(&b"in a transaction"[..]), vec![])
        })
        .collect();
    let zstd: Vec<Rec<'static>> = (0..10)
        .map(|i| {
            let k: &'static [u8] = Box::leak(format!("z{i}").into_bytes().into_boxed_slice());
            let n: &'static [u8] = Box::leak(format!("{i}").into_bytes().into_boxed_slice());
            let v: &'static [u8] = Box::leak(b"compressible ".repeat(8).into_boxed_slice());
            (T0 + i, Some(k), Some(v), vec![("n", Some(n))])
        })
        .collect();
    let long_k: &'static [u8] = Box::leak(vec![b'k'; 200].into_boxed_slice());
    let compressed = codec_records();
    let long_v: &'static [u8] = Box::leak(vec![b'v'; 300].into_boxed_slice());
    let long_h: &'static [u8] = Box::leak(vec![b'x'; 130].into_boxed_slice());
    let long_w: &'static [u8] = Box::leak(vec![b'w'; 1000].into_boxed_slice());
    vec![
        (
            "plain",
            vec![
                (
                    T0,
                    Some(&b"alice"[..]),
                    Some(&b"+50"[..]),
                    vec![("source", Some(&b"atm"[..]))],
                ),
                (T0 + 5, None, Some(&b"keyless"[..]), vec![]),
                (
                    T0 + 7,
                    Some(&b"bob"[..]),
                    None,
                    vec![
                        ("trace", Some(&b"1"[..])),
                        ("trace", None),
                        ("empty", Some(&b""[..])),
                    ],
                ),
                (T0 - 3, Some(&b""[..]), Some(&b""[..]), vec![]),
            ],
        ),
        (
            "long",
            vec![
                (
                    T0,
                    Some(long_k),
                    Some(long_v),
                    vec![("h\u{e9}", Some(long_h))],
                ),
                (T0 + 100_000, Some(&b"k2"[..]), Some(long_w), vec![]),
            ],
        ),
        ("idempotent", idempotent),
        ("transactional", transactional),
        ("zstd", zstd),
        ("gzip", compressed.clone()),
        ("snappy", compressed.clone()),
        ("snappy_raw", compressed.clone()),
        ("lz4", compressed),
    ]
}

/// The 60 records generate.py wrote under gzip, snappy (framed and raw) and lz4: about 90 KiB
/// before compression, so snappy-java's 32 KiB and lz4's 64 KiB blocks are several.
fn codec_records() -> Vec<Rec<'static>> {
    (0..60)
        .map(|i| {
            let k: &'static [u8] = Box::leak(format!("c{i}").into_bytes().into_boxed_slice());
            let v: &'static [u8] = Box::leak(
                format!("record {i} of a compressed batch; ")
                    .repeat(48)
                    .into_bytes()
                    .into_boxed_slice(),
            );
            let h: Vec<Header<'static>> = if i % 3 == 0 {
                let n: &'static [u8] = Box::leak(format!("{i}").into_bytes().into_boxed_slice());
                vec![("i", Some(n))]
            } else {
                vec![]
            };
            (T0 + i, Some(k), Some(v), h)
        })
        .collect()
}

/// The compression a file of `cases()` was written with (snappy_raw: snappy, unframed).
fn compression_of(name: &str) -> Compression {
    match name {
        "zstd" => Compression::Zstd { level: 3 },
        "gzip" => Compression::Gzip { level: 6 },
        "snappy" | "snappy_raw" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        _ => Compression::None,
    }
}

fn producer_of(name: &str) -> (ProducerFields, bool) {
    match name {
        "idempotent" => (
            ProducerFields {
                producer_id: 12345,
                producer_epoch: 3,
                base_sequence: 42,
            },
            false,
        ),
        "transactional" => (
            ProducerFields {
                producer_id: 777,
                producer_epoch: 0,
                base_sequence: 0,
            },
            true,
        ),
        _ => (ProducerFields::NONE, false),
    }
}

fn check_fields(name: &str, batch: BatchRef<'_>, records: &[Rec<'_>]) {
    let (producer, transactional) = producer_of(name);
    assert_eq!(batch.base_offset(), 0, "{name}");
    assert_eq!(batch.record_count() as usize, records.len(), "{name}");
    assert_eq!(batch.last_offset() as usize, records.len() - 1, "{name}");
    assert_eq!(batch.first_timestamp(), records[0].0, "{name}");
    assert_eq!(
        batch.max_timestamp(),
        records.iter().map(|r| r.0).max().unwrap(),
        "{name}"
    );
    assert_eq!(batch.producer(), producer, "{name}");
    assert_eq!(batch.is_transactional(), transactional, "{name}");
    assert!(!batch.is_control(), "{name}");
    assert_eq!(
        batch.is_compressed(),
        compression_of(name) != Compression::None,
        "{name}"
    );
    let decoded = batch.records().unwrap();
    let mut n = 0;
    for (i, r) in decoded.iter().enumerate() {
        let r = r.unwrap();
        let (ts, k, v, h) = &records[i];
        assert_eq!(r.offset(), i as u64, "{name} record {i}");
        assert_eq!(r.timestamp(), *ts, "{name} record {i}");
        assert_eq!(r.key(), *k, "{name} record {i}");
        assert_eq!(r.value(), *v, "{name} record {i}");
        let headers: Vec<_> = r.headers().map(Result::unwrap).collect();
        assert_eq!(&headers, h, "{name} record {i}");
        n += 1;
    }
    assert_eq!(n, records.len(), "{name}");
}

fn build(name: &str, records: &[Rec<'_>], compression: Compression) -> RecordBatch {
    let (producer, transactional) = producer_of(name);
    let mut b = BatchBuilder::new(compression);
    b.producer(producer).transactional(transactional);
    for (ts, k, v, h) in records {
        b.append(*ts, *k, *v, h);
    }
    b.build().unwrap()
}

#[test]
fn kafka_python_batches_parse_field_by_field() {
    for (name, records) in cases() {
        let bytes = bin(name);
        let batch = RecordBatch::from_bytes(bytes.clone()).unwrap();
        check_fields(name, batch.as_batch(), &records);
        check_fields(
            name,
            BatchRef::parse(&bytes, bytes.len()).unwrap(),
            &records,
        );
    }
}

#[test]
fn batch_builder_writes_what_kafka_python_writes() {
    for (name, records) in cases() {
        let compression = compression_of(name);
        if compression != Compression::None {
            // Another compressor library and level: the section differs; what it holds must
            // not (`record::compression`'s unit tests compare the decompressed bytes).
            let ours = build(name, &records, compression);
            assert!(ours.as_batch().is_compressed());
            assert_eq!(
                ours.as_bytes()[22] & 7,
                bin(name)[22] & 7,
                "{name}: codec id"
            );
            check_fields(name, ours.as_batch(), &records);
            continue;
        }
        let ours = build(name, &records, Compression::None);
        assert_eq!(ours.as_bytes(), &bin(name)[..], "{name}");
        // finish_into hands over the builder's buffer and writes the same bytes.
        let (producer, transactional) = producer_of(name);
        let mut b = BatchBuilder::new(Compression::None);
        b.producer(producer).transactional(transactional);
        for (ts, k, v, h) in &records {
            b.append(*ts, *k, *v, h);
        }
        // A batch to build into, holding other bytes first (its buffer is reused).
        let mut out = RecordBatch::from_bytes(bin("long")).unwrap();
        b.finish_into(&mut out).unwrap();
        assert_eq!(out.as_bytes(), &bin(name)[..], "{name}");
        assert!(b.is_empty());
    }
}

/// What a Kafka client sends is appended as is: the log stamps only the base offset and the
/// partition leader epoch (outside the CRC), so the stored bytes still verify under CRC-32C.
#[test]
fn a_log_stores_client_batches_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let mut expected_next = 0;
    for name in ["plain", "long", "zstd", "idempotent"] {
        let mut bytes = bin(name);
        // A client sends partitionLeaderEpoch -1 (Kafka's NO_PARTITION_LEADER_EPOCH).
        bytes[12..16].copy_from_slice(&[0xff; 4]);
        let info = log
            .append(&RecordBatch::from_bytes(bytes.clone()).unwrap())
            .unwrap();
        assert_eq!(info.base_offset, expected_next, "{name}");
        let read = log.read(info.base_offset, 1 << 20).unwrap();
        let stored = read[0].as_bytes().to_vec();
        assert_eq!(stored.len(), bytes.len());
        // Bytes 0..8 (base offset) and 12..16 (leader epoch, stamped 0) differ; nothing else.
        assert_eq!(&stored[0..8], &(info.base_offset as i64).to_be_bytes());
        assert_eq!(&stored[12..16], &[0; 4]);
        assert_eq!(&stored[8..12], &bytes[8..12]);
        assert_eq!(&stored[16..], &bytes[16..], "{name}");
        expected_next = info.last_offset + 1;
    }
}

/// Kafka's gzip, snappy (framed and raw) and lz4 batches, as kafka-python sends them, are
/// appended as they are and read back record by record, also after the log is reopened (the
/// segment holds the client's bytes, decoded by every reader).
#[test]
fn every_codec_is_appended_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["gzip", "snappy", "snappy_raw", "lz4", "zstd"];
    {
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        for name in names {
            let batch = RecordBatch::from_bytes(bin(name)).unwrap();
            batch.check_records().unwrap();
            log.append(&batch).unwrap();
        }
        log.flush().unwrap();
    }
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let all = cases();
    let mut offset = 0u64;
    for name in names {
        let records = &all.iter().find(|(n, _)| *n == name).unwrap().1;
        let batches = log.read(offset, 1 << 20).unwrap();
        let batch = &batches[0];
        assert_eq!(
            &batch.as_bytes()[16..],
            &bin(name)[16..],
            "{name}: stored verbatim"
        );
        let decoded: Vec<_> = batch
            .records()
            .unwrap()
            .iter()
            .map(|r| {
                let r = r.unwrap();
                (
                    r.offset(),
                    r.key().map(<[u8]>::to_vec),
                    r.value().map(<[u8]>::to_vec),
                )
            })
            .collect();
        assert_eq!(decoded.len(), records.len(), "{name}");
        for (i, ((o, k, v), (_, rk, rv, _))) in decoded.iter().zip(records).enumerate() {
            assert_eq!(*o, offset + i as u64, "{name}");
            assert_eq!(k.as_deref(), *rk, "{name} record {i}");
            assert_eq!(v.as_deref(), *rv, "{name} record {i}");
        }
        offset += records.len() as u64;
    }
}

/// A batch whose compressed section does not decode (its CRC fixed up, as a client that
/// compressed garbage would send it) is refused with a corruption error when read, never a
/// panic: a mangled magic or stated length (the first two bytes of each codec's section), or a
/// section cut short (the batch length shortened to match).
#[test]
fn mangled_compressed_sections_are_corruption() {
    for name in ["gzip", "snappy", "snappy_raw", "lz4", "zstd"] {
        let good = bin(name);
        for (at, cut) in [(61usize, 0usize), (62, 0), (0, 3), (0, good.len() / 3)] {
            let mut bytes = good.clone();
            if at > 0 {
                bytes[at] ^= 0x5a;
            }
            bytes.truncate(bytes.len() - cut);
            let len = bytes.len() as i32 - 12;
            bytes[8..12].copy_from_slice(&len.to_be_bytes());
            let crc = crc32c_of(&bytes[21..]);
            bytes[17..21].copy_from_slice(&crc.to_be_bytes());
            let batch = RecordBatch::from_bytes(bytes).unwrap();
            let e = batch.check_records().unwrap_err();
            assert!(e.is_corruption(), "{name} at {at}, cut {cut}: {e:?}");
            let all = batch
                .as_batch()
                .records()
                .and_then(|r| r.iter().collect::<Result<Vec<_>, _>>().map(|v| v.len()));
            match all {
                Ok(n) => panic!("{name} mangled at {at}, cut {cut}, still read {n} records"),
                Err(e) => assert!(e.is_corruption(), "{name} at {at}, cut {cut}: {e:?}"),
            }
        }
    }
}

/// CRC-32C, bit by bit (the reference algorithm, not the crate under test).
fn crc32c_of(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn stored_crc_is_crc32c_over_attributes_to_end() {
    for (name, _) in cases() {
        let bytes = bin(name);
        let stored = u32::from_be_bytes(bytes[17..21].try_into().unwrap());
        assert_eq!(stored, crc32c_of(&bytes[21..]), "{name}");
    }
}

fn three_records() -> Vec<u8> {
    let mut b = BatchBuilder::new(Compression::None);
    b.append(1, Some(b"a"), Some(b"1"), &[]);
    b.append(2, Some(b"b"), Some(b"2"), &[]);
    b.append(3, Some(b"c"), Some(b"3"), &[]);
    b.build().unwrap().as_bytes().to_vec()
}

fn assert_corrupt(bytes: Vec<u8>) {
    let e = RecordBatch::from_bytes(bytes).unwrap_err();
    assert!(e.is_corruption(), "{e:?}");
}

/// DefaultRecordBatchTest.testInvalidRecordSize: a length field of 10 is refused.
#[test]
fn invalid_batch_length() {
    let mut bytes = three_records();
    bytes[8..12].copy_from_slice(&10i32.to_be_bytes());
    assert_corrupt(bytes);
    let mut bytes = three_records();
    bytes[8..12].copy_from_slice(&(-1i32).to_be_bytes());
    assert_corrupt(bytes);
    // A length past the bytes given.
    let mut bytes = three_records();
    let len = bytes.len() as i32 - 12 + 1;
    bytes[8..12].copy_from_slice(&len.to_be_bytes());
    assert_corrupt(bytes);
}

/// DefaultRecordBatchTest.testInvalidCrc: changing lastOffsetDelta (inside the CRC) is caught.
#[test]
fn invalid_crc() {
    let mut bytes = three_records();
    bytes[23..27].copy_from_slice(&23i32.to_be_bytes());
    let e = RecordBatch::from_bytes(bytes).unwrap_err();
    assert!(
        e.is_corruption() && e.to_string().contains("CRC-32C"),
        "{e}"
    );
}

/// DefaultRecordBatchTest.testInvalidRecordCountTooManyNonCompressedV2 and
/// ...TooLittleNonCompressedV2: a record count that is not the number of records is refused,
/// too many by the header check, too few when the records are read (and by the log on append,
/// since the batch no longer spans `recordCount` offsets).
#[test]
fn invalid_record_count() {
    for (count, at_parse) in [(5i32, true), (2, false)] {
        let mut bytes = three_records();
        bytes[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c_of(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        match RecordBatch::from_bytes(bytes) {
            Err(e) => {
                assert!(at_parse && e.is_corruption(), "{e:?}");
            }
            Ok(batch) => {
                assert!(!at_parse);
                let records = batch.as_batch().records().unwrap();
                let all: Vec<_> = records.iter().collect();
                assert!(all.iter().any(Result::is_err), "{count}");
                let dir = tempfile::tempdir().unwrap();
                let log = Log::open(dir.path(), LogConfig::default()).unwrap();
                assert!(log.append(&batch).is_err());
            }
        }
    }
}

/// DefaultRecordBatchTest.testSetPartitionLeaderEpoch / testSetLastOffset: the base offset and
/// the leader epoch lie outside the CRC, so stamping them keeps the batch valid.
#[test]
fn base_offset_and_leader_epoch_are_outside_the_crc() {
    let mut bytes = three_records();
    bytes[0..8].copy_from_slice(&498i64.to_be_bytes());
    bytes[12..16].copy_from_slice(&500i32.to_be_bytes());
    let batch = RecordBatch::from_bytes(bytes).unwrap();
    assert_eq!(batch.as_batch().base_offset(), 498);
    assert_eq!(batch.as_batch().last_offset(), 500);
    let offsets: Vec<u64> = batch
        .as_batch()
        .records()
        .unwrap()
        .iter()
        .map(|r| r.unwrap().offset())
        .collect();
    assert_eq!(offsets, [498, 499, 500]);
}

/// A batch shorter than Kafka's 61-byte header, an empty one, and a wrong magic are refused
/// (Kafka's `RECORD_BATCH_OVERHEAD`; magic 2 only).
#[test]
fn short_and_wrong_magic_batches() {
    let bytes = three_records();
    for len in [0, 12, 60] {
        assert_corrupt(bytes[..len].to_vec());
    }
    for magic in [0u8, 1, 3] {
        let mut b = bytes.clone();
        b[16] = magic;
        assert_corrupt(b);
    }
    // A header that says zero records (Kafka writes such batches only for compaction).
    let mut b = bytes[..61].to_vec();
    b[8..12].copy_from_slice(&49i32.to_be_bytes());
    b[23..27].copy_from_slice(&0i32.to_be_bytes());
    b[57..61].copy_from_slice(&0i32.to_be_bytes());
    let crc = crc32c_of(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_corrupt(b);
}

/// DefaultRecordTest.testInvalidKeySize / testInvalidValueSize / testInvalidHeaderKey /
/// testNullHeaderKey: a record whose key, value or header key length is out of range (or a
/// header key that is null) is corruption when read, never a panic.
#[test]
fn invalid_record_fields() {
    let mut b = BatchBuilder::new(Compression::None);
    b.append(1, Some(b"k"), Some(b"v"), &[("h", Some(b"x"))]);
    let good = b.build().unwrap().as_bytes().to_vec();
    // Record body: length(1) attributes(1) tsDelta(1) offsetDelta(1) keyLen(1) 'k' valueLen(1)
    // 'v' headerCount(1) hKeyLen(1) 'h' hValueLen(1) 'x'.
    let r = 61;
    let cases: [(usize, u8); 5] = [
        (r + 4, 0x7e), // key length 63, past the record
        (r + 4, 0x03), // key length -2
        (r + 6, 0x7e), // value length 63
        (r + 8, 0x01), // header key length -1 (null header key)
        (r + 8, 0x7e), // header key length 63
    ];
    for (at, byte) in cases {
        let mut bytes = good.clone();
        bytes[at] = byte;
        let crc = crc32c_of(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        let batch = RecordBatch::from_bytes(bytes).unwrap();
        let records = batch.as_batch().records().unwrap();
        let first = records.iter().next().unwrap();
        assert!(first.unwrap_err().is_corruption(), "byte {at} = {byte:#x}");
    }
}

/// DefaultRecordBatchTest.buildDefaultRecordBatchWithSequenceWrapAround: the sequence of the
/// last record wraps past i32::MAX to 0; an idempotent log accepts the next batch at 1.
#[test]
fn sequence_wraps_around() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let mut seq = i32::MAX - 1;
    for n in [3, 1] {
        let mut b = BatchBuilder::new(Compression::None);
        b.producer(ProducerFields {
            producer_id: 23423,
            producer_epoch: 145,
            base_sequence: seq,
        });
        for i in 0..n {
            b.append(i64::from(i), Some(b"a"), Some(b"v"), &[]);
        }
        if n == 3 {
            log.append(&b.build().unwrap()).unwrap();
            seq = 1;
        } else {
            log.append(&b.build().unwrap()).unwrap();
        }
    }
    assert_eq!(log.high_watermark(), 4);
}
