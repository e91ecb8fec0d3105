//! `Log::delete_records_before` (Kafka's DeleteRecords) against a model: random appends,
//! deletes (below, inside and past the log, with -1-like "at the end" requests) and reopens of
//! a log with small segments. After every step the log's start offset, what a read from it
//! returns, a read below it, time lookups and the segments left must match the model: the start
//! only moves forward, survives reopening, nothing at or above it is lost, nothing below it is
//! served, and no segment wholly below it stays on disk.

use proptest::prelude::*;
use riverbed::{BatchBuilder, Compression, ErrorKind, Log, LogConfig};

const T0: i64 = 1_700_000_000_000;

#[derive(Clone, Debug)]
enum Op {
    /// Append a batch of this many records.
    Append(u8),
    /// Delete below `hw * num / 8` (num 9 and 10: past the end, refused).
    Delete(u8),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..6).prop_map(Op::Append),
        3 => (0u8..=10).prop_map(Op::Delete),
        1 => Just(Op::Reopen),
    ]
}

fn config() -> LogConfig {
    LogConfig::default()
        .segment_bytes(1024)
        .max_message_bytes(1000)
        .retention_ms(None)
}

fn check(log: &Log, start: u64, next: u64) {
    assert_eq!(log.log_start_offset(), start);
    assert_eq!(log.high_watermark(), next);
    if start > 0 {
        let e = log.read(start - 1, 1 << 20).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::OffsetOutOfRange { .. }),
            "{e}"
        );
    }
    // Every record from the start on is there, in order, with its value.
    let mut offset = start;
    while offset < next {
        let batches = log.read(offset, 1 << 20).unwrap();
        assert!(!batches.is_empty());
        for b in &batches {
            let records = b.records().unwrap();
            for r in records.iter() {
                let r = r.unwrap();
                if r.offset() < offset {
                    continue;
                }
                assert_eq!(r.offset(), offset);
                assert_eq!(r.value(), Some(&offset.to_le_bytes()[..]));
                offset += 1;
            }
        }
    }
    // Record i has timestamp T0 + i: a lookup below the start finds the start.
    for ts in [T0, T0 + start as i64, T0 + next as i64 - 1] {
        let o = start.max((ts - T0).max(0) as u64);
        let want = (o < next).then_some((o, T0 + o as i64));
        assert_eq!(log.offset_for_timestamp(ts).unwrap(), want, "ts {ts}");
    }
    // No segment wholly below the start outlives a retention pass. A roll after a delete can
    // leave one (the delete could not remove the then-active segment); as in Kafka
    // (`UnifiedLog.deleteLogStartOffsetBreachedSegments`), the next retention pass removes it.
    log.apply_retention().unwrap();
    let bases = log.segment_base_offsets();
    if bases.len() >= 2 {
        assert!(bases[1] > start, "{bases:?} with start {start}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn delete_records_matches_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config()).unwrap();
        let (mut start, mut next) = (0u64, 0u64);
        for op in ops {
            match op {
                Op::Append(n) => {
                    let mut b = BatchBuilder::new(Compression::None);
                    for i in 0..u64::from(n) {
                        let o = next + i;
                        b.append(T0 + o as i64, None, Some(&o.to_le_bytes()), &[]);
                    }
                    let info = log.append(&b.build().unwrap()).unwrap();
                    prop_assert_eq!(info.base_offset, next);
                    next += u64::from(n);
                }
                Op::Delete(num) => {
                    let target = next * u64::from(num.min(8)) / 8 + u64::from(num.saturating_sub(8));
                    match log.delete_records_before(target) {
                        Ok(s) => {
                            prop_assert!(target <= next);
                            start = start.max(target);
                            prop_assert_eq!(s, start);
                        }
                        Err(e) => {
                            prop_assert!(target > next, "{}", e);
                            let out_of_range =
                                matches!(e.kind(), ErrorKind::OffsetOutOfRange { .. });
                            prop_assert!(out_of_range, "{}", e);
                        }
                    }
                }
                Op::Reopen => {
                    log.close().unwrap();
                    log = Log::open(dir.path(), config()).unwrap();
                }
            }
            check(&log, start, next);
        }
        log.close().unwrap();
    }
}
