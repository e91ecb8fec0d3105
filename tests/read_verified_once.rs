//! A batch's CRC is checked on its first read through an open log and trusted by later reads
//! of it (`Log::read` docs, "Verification"; src/segment/verified.rs). What must never happen:
//! a batch damaged on disk before the log was opened is returned by any read, however many
//! reads of other batches (its neighbours, the batches around it in the same granules of the
//! file, the same segment) came first, and however often it was asked for before.
//!
//! The model: a cleanly closed log of several sealed segments, some of its batches damaged on
//! disk (one bit of their last byte, inside the CRC's cover and outside every framing field),
//! then reopened and read in a random order with random `from` and `max_bytes`, through `read`,
//! `read_into` and a consumer's `seek` + `poll`. A read must fail with a corruption error naming
//! the damaged batch's file exactly when one of the batches it would return is damaged, and
//! must otherwise return exactly the batches and records written. (Kafka's consumers check
//! every batch they receive, `check.crcs`; Kafka's own test of it is
//! `FetcherTest.testFetcherCorruptMessage`... here the reader is in-process, and the check is
//! made once per mapping.)

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use riverbed::{
    BatchBuilder, BatchView, Compression, ConsumerConfig, ErrorKind, Log, LogConfig, OffsetReset,
    RecordBatch, Store, TopicConfig, TopicPartition,
};

mod common;
use common::{batches_in, log_path};

fn config() -> LogConfig {
    common::small_log(2048, 256, 1024)
}

fn value(offset: u64) -> Vec<u8> {
    format!("value of record {offset}").into_bytes()
}

fn batch(first: u64, n: u64) -> RecordBatch {
    let mut b = BatchBuilder::new(Compression::None);
    for o in first..first + n {
        b.append(
            1_700_000_000_000,
            Some(&o.to_le_bytes()),
            Some(&value(o)),
            &[],
        );
    }
    b.build().unwrap()
}

/// One batch as laid out on disk.
#[derive(Clone, Copy, Debug)]
struct Placed {
    segment: u64,
    pos: usize,
    len: usize,
    base: u64,
    last: u64,
    damaged: bool,
}

/// Writes `records` records in batches of 1..=4 and closes the log; returns every batch in
/// offset order.
fn write_closed(dir: &Path, records: u64) -> Vec<Placed> {
    let log = Log::open(dir, config()).unwrap();
    while log.high_watermark() < records {
        let next = log.high_watermark();
        let n = (1 + next % 4).min(records - next);
        log.append(&batch(next, n)).unwrap();
    }
    let segments = log.segment_base_offsets();
    assert!(segments.len() >= 3, "{segments:?}");
    log.close().unwrap();
    let mut all = Vec::new();
    for seg in segments {
        let file = std::fs::read(log_path(dir, seg)).unwrap();
        for (pos, base, len) in batches_in(&file) {
            let delta = common::last_offset_delta(&file, pos);
            all.push(Placed {
                segment: seg,
                pos,
                len,
                base,
                last: base + u64::from(delta),
                damaged: false,
            });
        }
    }
    all
}

/// Flips one bit of the last byte of the last record's value in `b` (before its header count,
/// the batch's last byte): covered by the CRC, no framing field, and the record still decodes,
/// so only the CRC can tell.
fn damage(dir: &Path, b: &mut Placed, bit: u8) {
    let path = log_path(dir, b.segment);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[b.pos + b.len - 2] ^= 1 << (bit % 7);
    std::fs::write(&path, bytes).unwrap();
    b.damaged = true;
}

/// The batches a read of `from` with `max_bytes` returns: the first always, the next ones
/// while they fit, across segments.
fn expected_read(all: &[Placed], from: u64, max_bytes: usize) -> Vec<Placed> {
    let mut out = Vec::new();
    let mut used = 0;
    for b in all.iter().filter(|b| b.last >= from) {
        if used > 0 && used + b.len > max_bytes {
            break;
        }
        used += b.len;
        out.push(*b);
        if used >= max_bytes {
            break;
        }
    }
    out
}

/// Checks the outcome of one read against the model.
fn check(
    result: Result<&[BatchView], &riverbed::Error>,
    dir: &Path,
    expected: &[Placed],
    what: &str,
) -> Result<(), TestCaseError> {
    match expected.iter().find(|b| b.damaged) {
        Some(bad) => {
            let Err(e) = result else {
                return Err(TestCaseError::fail(format!(
                    "{what}: returned the damaged batch at {}..={} ({:?}) without an error",
                    bad.base, bad.last, bad
                )));
            };
            let ErrorKind::Corruption { path, position, .. } = e.kind() else {
                return Err(TestCaseError::fail(format!("{what}: {e:?}")));
            };
            let file = log_path(dir, bad.segment);
            prop_assert_eq!(path.as_deref(), Some(file.as_path()));
            prop_assert!(
                (bad.pos as u64..(bad.pos + bad.len) as u64).contains(position),
                "{}: {}",
                what,
                e
            );
        }
        None => {
            let views = result.map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
            let got: Vec<u64> = views.iter().map(BatchView::base_offset).collect();
            let want: Vec<u64> = expected.iter().map(|b| b.base).collect();
            prop_assert_eq!(got, want, "{}", what);
            for v in views {
                for r in v.records().unwrap().iter() {
                    let r = r.unwrap();
                    prop_assert_eq!(r.key(), Some(&r.offset().to_le_bytes()[..]));
                    prop_assert_eq!(r.value(), Some(&value(r.offset())[..]));
                }
            }
        }
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum Op {
    /// `Log::read(from, max_bytes)`.
    Read(u64, usize),
    /// `Log::read_into(from, max_bytes, ..)` into one vector reused by every such op.
    ReadInto(u64, usize),
}

fn op(records: u64) -> impl Strategy<Value = Op> {
    let max = prop_oneof![Just(1usize), 1usize..400, Just(1 << 20)];
    prop_oneof![
        (0..records, max.clone()).prop_map(|(f, m)| Op::Read(f, m)),
        (0..records, max).prop_map(|(f, m)| Op::ReadInto(f, m)),
    ]
}

const RECORDS: u64 = 240;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn damaged_batches_fail_every_read_whatever_was_read_before(
        damaged in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        ops in proptest::collection::vec(op(RECORDS), 1..120),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut all = write_closed(dir.path(), RECORDS);
        for (i, bit) in &damaged {
            let i = i.index(all.len());
            if !all[i].damaged {
                damage(dir.path(), &mut all[i], *bit);
            }
        }
        let log = Log::open(dir.path(), config()).unwrap();
        let mut reused = Vec::new();
        for (n, op) in ops.iter().enumerate() {
            match *op {
                Op::Read(from, max) => {
                    let r = log.read(from, max);
                    let what = format!("op {n}: read({from}, {max})");
                    check(r.as_deref(), dir.path(),
                          &expected_read(&all, from, max), &what)?;
                }
                Op::ReadInto(from, max) => {
                    let r = log.read_into(from, max, &mut reused);
                    let what = format!("op {n}: read_into({from}, {max})");
                    check(r.as_ref().map(|()| reused.as_slice()), dir.path(),
                          &expected_read(&all, from, max), &what)?;
                }
            }
        }
        // Every batch once more, one by one: the damaged ones still fail, the others pass.
        for b in &all {
            let r = log.read(b.base, 1);
            check(r.as_deref(), dir.path(), &[*b], "final pass")?;
        }
    }
}

/// The same through the consumer: point reads (`seek` + `poll` of one record) all around a
/// damaged batch, before and after reading it, never return its records.
#[test]
fn consumer_point_reads_never_return_a_damaged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let topic_dir = {
        let store = Store::open(dir.path()).unwrap();
        store
            .create_topic("t", TopicConfig::new(1).log(config()))
            .unwrap();
        let producer = store.producer();
        for first in (0..RECORDS).step_by(3) {
            // One batch of three records per send_all.
            producer
                .send_all((first..first + 3).map(|o| {
                    riverbed::ProducerRecord::new("t")
                        .partition(0)
                        .key(o.to_le_bytes().to_vec())
                        .value(value(o))
                }))
                .unwrap();
        }
        producer.flush().unwrap();
        drop(producer);
        store.close().unwrap();
        dir.path().join("t-0")
    };
    let first = std::fs::read(log_path(&topic_dir, 0)).unwrap();
    let placed = batches_in(&first);
    let (pos, base, len) = placed[placed.len() / 2];
    let mut bytes = first.clone();
    bytes[pos + len - 2] ^= 0x01; // the last value's last digit: the records still decode
    std::fs::write(log_path(&topic_dir, 0), bytes).unwrap();
    let delta = common::last_offset_delta(&first, pos);
    let bad = base..=base + u64::from(delta);
    assert_eq!(bad.clone().count(), 3, "one batch per send_all");

    let store = Store::open(dir.path()).unwrap();
    let tp = TopicPartition::new("t", 0);
    let mut consumer = store
        .consumer(
            ConsumerConfig::default()
                .enable_auto_commit(false)
                .auto_offset_reset(OffsetReset::None)
                .max_poll_records(1),
        )
        .unwrap();
    consumer.assign(std::slice::from_ref(&tp)).unwrap();
    // Neighbours first (their bits may share words and chunks with the damaged batch's), then
    // the damaged batch, twice, then the whole range again.
    let around: Vec<u64> = (bad.start().saturating_sub(8)..bad.end() + 8)
        .filter(|o| !bad.contains(o))
        .chain(bad.clone())
        .chain(bad.clone())
        .chain(0..RECORDS)
        .collect();
    for o in around {
        consumer.seek(&tp, o).unwrap();
        let polled = consumer.poll(Duration::ZERO);
        if bad.contains(&o) {
            let e = polled.expect_err("a record of the damaged batch");
            assert!(
                matches!(e.kind(), ErrorKind::Corruption { .. }),
                "offset {o}: {e}"
            );
        } else {
            let polled = polled.unwrap();
            let r = polled.iter().next().unwrap();
            assert_eq!(r.offset(), o);
            assert_eq!(r.value(), Some(&value(o)[..]));
        }
    }
}
