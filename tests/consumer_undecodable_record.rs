//! A record that does not decode inside a batch whose CRC passed (bytes damaged before the
//! checksum was computed, or a bug) is an error of `poll` naming the partition and the offsets,
//! never a record that silently goes missing from the consumer's view (issue 13, item 7).
//! Kafka's consumer raises `CorruptRecordException` from `poll` for the same case
//! (`FetcherTest.testCorruptMessageError`, `testInvalidDefaultRecordBatch`), and stays at the
//! bad offset.
//!
//! The data file is mangled on disk and the batch CRC recomputed, so that only the record
//! decoder stands between the damage and the consumer.

mod common;

use std::time::{Duration, Instant};

use common::{batches_in, log_path};
use riverbed::{
    ConsumerConfig, ErrorKind, OffsetReset, ProducerRecord, Store, TopicConfig, TopicPartition,
};

/// A store whose topic `t` (one partition) holds the keyless records "a", "b", "c" at offsets
/// 0, 1, 2, one batch each, with the record of offset 1 made undecodable: its key length says
/// 63 bytes where the batch has 3 left. The CRC is recomputed, so the batch passes its checks.
fn damaged() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.create_topic("t", TopicConfig::new(1)).unwrap();
        let p = store.producer();
        for v in ["a", "b", "c"] {
            p.send(ProducerRecord::new("t").value(v)).unwrap();
        }
        store.flush().unwrap();
    }
    let path = log_path(&dir.path().join("t-0"), 0);
    let mut bytes = std::fs::read(&path).unwrap();
    let batches = batches_in(&bytes);
    assert_eq!(batches.len(), 3, "{batches:?}");
    let (pos, base, len) = batches[1];
    assert_eq!(base, 1);
    // Record: length, attributes, timestamp delta, offset delta, key length (zigzag varint).
    let key_length = pos + common::records_start(&bytes) + 4;
    assert_eq!(bytes[key_length], 0x01, "a null key (-1)");
    bytes[key_length] = 0x7e; // 63
    common::fix_batch_crc(&mut bytes, pos, len);
    std::fs::write(&path, bytes).unwrap();
    dir
}

fn poll_all(
    c: &mut riverbed::Consumer,
    polls: usize,
) -> (Vec<(u64, Vec<u8>)>, Vec<riverbed::Error>) {
    let mut seen = Vec::new();
    let mut errors = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    for _ in 0..polls {
        if Instant::now() > deadline {
            break;
        }
        match c.poll(Duration::from_millis(20)) {
            Ok(r) => seen.extend(
                r.iter()
                    .map(|r| (r.offset(), r.value().unwrap_or_default().to_vec())),
            ),
            Err(e) => errors.push(e),
        }
    }
    (seen, errors)
}

#[test]
fn an_undecodable_record_is_a_poll_error_naming_its_offset() {
    let dir = damaged();
    let store = Store::open(dir.path()).unwrap();
    let tp = TopicPartition::new("t", 0);
    let mut c = store
        .consumer(
            ConsumerConfig::new("g")
                .auto_offset_reset(OffsetReset::Earliest)
                .enable_auto_commit(false),
        )
        .unwrap();
    c.assign(std::slice::from_ref(&tp)).unwrap();
    let (seen, errors) = poll_all(&mut c, 5);
    // The record before the damage is delivered, the damaged one is an error every time, and
    // nothing after it is returned as if the damaged one had not been there.
    assert_eq!(seen, [(0, b"a".to_vec())]);
    assert!(errors.len() >= 3, "{errors:?}");
    for e in &errors {
        assert!(e.is_corruption(), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains("t-0") && text.contains("offsets 1..=1"),
            "the error does not name the partition and offset: {text}"
        );
        assert!(
            matches!(e.kind(), ErrorKind::Corruption { expected, .. } if expected.contains("a length of -1..=3 bytes")),
            "the error does not say what was expected: {text}"
        );
    }
    assert_eq!(
        c.position(&tp).unwrap(),
        1,
        "the position moved past the damage"
    );
    // Only a deliberate seek goes past it.
    c.seek(&tp, 2).unwrap();
    let (seen, errors) = poll_all(&mut c, 1);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(seen, [(2, b"c".to_vec())]);
}

/// The same damage in the middle of one batch of three records ("a", "b", "c" at offsets 0, 1,
/// 2, one `send_all`): the poll returns the record before the damage, and only the polls that
/// reach the damaged record fail, with the position left on it. Kafka's
/// `FetcherTest.testParseCorruptedRecord` asserts the same: the records before a corrupt one
/// are consumed, then every fetch raises at the corrupt one and the position stays there.
#[test]
fn records_before_an_undecodable_one_in_its_batch_are_returned() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.create_topic("t", TopicConfig::new(1)).unwrap();
        let p = store.producer();
        p.send_all(["a", "b", "c"].map(|v| ProducerRecord::new("t").partition(0).value(v)))
            .unwrap();
        store.flush().unwrap();
    }
    let path = log_path(&dir.path().join("t-0"), 0);
    let mut bytes = std::fs::read(&path).unwrap();
    let batches = batches_in(&bytes);
    assert_eq!(batches.len(), 1, "one batch: {batches:?}");
    let (pos, _, len) = batches[0];
    // Record 0 is 7 bytes (length, attributes, timestamp delta, offset delta, null key, value
    // length, "a", header count minus the length byte: 6); record 1's key length follows its
    // first four bytes.
    let records = pos + common::records_start(&bytes);
    assert_eq!(
        bytes[records], 14,
        "record 0 has a body of 7 bytes (zigzag varint)"
    );
    let key_length = records + 8 + 4;
    assert_eq!(bytes[key_length], 0x01, "a null key (-1)");
    bytes[key_length] = 0x7e; // 63
    common::fix_batch_crc(&mut bytes, pos, len);
    std::fs::write(&path, bytes).unwrap();

    let store = Store::open(dir.path()).unwrap();
    let tp = TopicPartition::new("t", 0);
    let mut c = store
        .consumer(
            ConsumerConfig::default()
                .auto_offset_reset(OffsetReset::Earliest)
                .enable_auto_commit(false),
        )
        .unwrap();
    c.assign(std::slice::from_ref(&tp)).unwrap();
    let first = c.poll(Duration::ZERO).unwrap();
    assert_eq!(first.count(), 1);
    let seen: Vec<(u64, Vec<u8>)> = first
        .iter()
        .map(|r| (r.offset(), r.value().unwrap().to_vec()))
        .collect();
    assert_eq!(seen, [(0, b"a".to_vec())]);
    assert_eq!(c.position(&tp).unwrap(), 1);
    for _ in 0..3 {
        let e = c.poll(Duration::ZERO).unwrap_err();
        assert!(e.is_corruption(), "{e:?}");
        assert!(e.to_string().contains("offsets 0..=2"), "{e}");
        assert_eq!(
            c.position(&tp).unwrap(),
            1,
            "the position stays on the damage"
        );
    }
    // A point read of the record before it still works.
    c.seek(&tp, 0).unwrap();
    let again = c.poll(Duration::ZERO).unwrap();
    assert_eq!(again.iter().map(|r| r.offset()).collect::<Vec<_>>(), [0]);
}
