//! One writer appends while readers read from random offsets, a tailing consumer follows the
//! end of the log, and retention deletes old segments underneath them all. Every record's content
//! is a function of its offset, so every record any reader sees is checked in full. A reader may
//! be told `OffsetOutOfRange` for an offset retention just deleted, but must never see a
//! partially written batch, a wrong record or any other error.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use riverbed::{BatchBuilder, BatchView, Compression, ErrorKind, FlushPolicy, Log, LogConfig};

const T0: i64 = 1_700_000_000_000;
const RUN_FOR: Duration = Duration::from_secs(3);

fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(mix(seed) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The value of the record at `offset`: 0..400 bytes, every byte determined by the offset.
fn value_for(offset: u64) -> Vec<u8> {
    let mut rng = XorShift::new(offset ^ 0x7777);
    let len = rng.below(400) as usize;
    (0..len).map(|_| rng.next() as u8).collect()
}

fn timestamp_for(offset: u64) -> i64 {
    T0 + offset as i64
}

fn batch_for(base: u64, count: u64) -> riverbed::RecordBatch {
    let compression = if mix(base).is_multiple_of(5) {
        Compression::Zstd { level: 1 }
    } else {
        Compression::None
    };
    let mut b = BatchBuilder::new(compression);
    for offset in base..base + count {
        let key = offset.to_le_bytes();
        let value = value_for(offset);
        let header = (offset % 3).to_le_bytes();
        b.append(
            timestamp_for(offset),
            Some(&key),
            Some(&value),
            &[("o", Some(&header[..]))],
        );
    }
    b.build().unwrap()
}

/// Checks every record of a batch against the generator. Returns its offsets.
fn verify_batch(v: &BatchView, who: &str) -> (u64, u64) {
    let records = v
        .records()
        .unwrap_or_else(|e| panic!("{who}: records of batch {}: {e}", v.base_offset()));
    let mut expected = v.base_offset();
    for r in records.iter() {
        let r = r.unwrap_or_else(|e| panic!("{who}: record in batch {}: {e}", v.base_offset()));
        let o = r.offset();
        assert_eq!(
            o,
            expected,
            "{who}: record offsets in batch {}",
            v.base_offset()
        );
        assert_eq!(r.key(), Some(&o.to_le_bytes()[..]), "{who}: key at {o}");
        assert!(
            r.value() == Some(&value_for(o)[..]),
            "{who}: value at offset {o} differs"
        );
        assert_eq!(r.timestamp(), timestamp_for(o), "{who}: timestamp at {o}");
        let headers: Vec<_> = r.headers().map(|h| h.unwrap()).collect();
        assert_eq!(
            headers,
            vec![("o", Some(&(o % 3).to_le_bytes()[..]))],
            "{who}: headers at {o}"
        );
        expected += 1;
    }
    assert_eq!(
        expected,
        v.last_offset() + 1,
        "{who}: record count of batch {}",
        v.base_offset()
    );
    assert_eq!(v.max_timestamp(), timestamp_for(v.last_offset()));
    (v.base_offset(), v.last_offset())
}

/// An `OffsetOutOfRange` for `from` is fine only if retention has moved the log start past it.
/// (The start moves just after the segment list changes, so give it a moment.)
fn assert_really_deleted(log: &Log, from: u64, who: &str, err: &dyn std::fmt::Display) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while log.log_start_offset() <= from {
        assert!(
            Instant::now() < deadline,
            "{who}: {err}, but offset {from} is at or above the log start {}",
            log.log_start_offset()
        );
        thread::yield_now();
    }
}

fn config() -> LogConfig {
    LogConfig::default()
        .segment_bytes(32 << 10)
        .segment_ms(None)
        .index_interval_bytes(512)
        .max_message_bytes(24 << 10)
        .flush(FlushPolicy::Manual)
        .retention_ms(None)
        .retention_bytes(Some(192 << 10))
}

#[derive(Default)]
struct ReaderStats {
    reads: u64,
    records: u64,
    out_of_range: u64,
    by_time: u64,
    held_from_deleted_segments: u64,
}

fn random_reader(log: &Log, stop: &AtomicBool, seed: u64) -> ReaderStats {
    let who = format!("reader {seed}");
    let mut rng = XorShift::new(seed);
    let mut stats = ReaderStats::default();
    // Views kept across retention passes: they must stay readable after their segment is gone.
    let mut held: Vec<BatchView> = Vec::new();
    let mut last_start = 0;
    let mut last_end = 0;
    while !stop.load(Ordering::Relaxed) {
        let start = log.log_start_offset();
        let end = log.high_watermark();
        assert!(start >= last_start, "{who}: log start went back");
        assert!(end >= last_end, "{who}: next offset went back");
        assert!(start <= end, "{who}: start {start} > end {end}");
        (last_start, last_end) = (start, end);
        if start == end {
            thread::yield_now();
            continue;
        }
        if start > 0 && rng.below(50) == 0 {
            // Below the start: always out of range, and the error says why.
            let from = start - 1 - rng.below(start.min(100));
            match log.read(from, 1024) {
                Err(e) => match e.kind() {
                    ErrorKind::OffsetOutOfRange {
                        requested,
                        log_start,
                        log_end,
                        ..
                    } => {
                        assert_eq!(*requested, from);
                        assert!(
                            *log_start > from && *log_start >= start && *log_end >= end,
                            "{who}: {e}"
                        );
                    }
                    _ => panic!("{who}: read({from}) below the start {start}: {e}"),
                },
                Ok(v) => panic!(
                    "{who}: read({from}) below the start {start} returned {} batches",
                    v.len()
                ),
            }
            continue;
        }
        // Half the reads go to the oldest records, which retention deletes next.
        let span = if rng.below(2) == 0 {
            (end - start).min(300)
        } else {
            end - start
        };
        let from = start + rng.below(span);
        if rng.below(8) == 0 {
            stats.by_time += 1;
            match log.offset_for_timestamp(timestamp_for(from)) {
                Ok(Some((o, ts))) => {
                    assert_eq!(ts, timestamp_for(o), "{who}: timestamp of offset {o}");
                    assert!(o >= from, "{who}: time lookup of {from} gave {o}");
                    if o != from {
                        assert_really_deleted(log, from, &who, &format!("time lookup gave {o}"));
                    }
                }
                Ok(None) => assert_really_deleted(log, from, &who, &"time lookup found nothing"),
                Err(e) => panic!("{who}: offset_for_timestamp({from}): {e}"),
            }
            continue;
        }
        let max_bytes = 1 + rng.below(64 << 10) as usize;
        stats.reads += 1;
        match log.read(from, max_bytes) {
            Ok(views) => {
                assert!(
                    !views.is_empty(),
                    "{who}: read({from}) below the end {end} returned nothing"
                );
                let first = &views[0];
                assert!(
                    first.base_offset() <= from && from <= first.last_offset(),
                    "{who}: read({from}) starts with batch {}..={}",
                    first.base_offset(),
                    first.last_offset()
                );
                let total: usize = views.iter().map(BatchView::len).sum();
                assert!(
                    views.len() == 1 || total <= max_bytes,
                    "{who}: {total} bytes returned for max_bytes {max_bytes}"
                );
                let mut next = first.base_offset();
                for v in &views {
                    let (b, l) = verify_batch(v, &who);
                    assert_eq!(
                        b, next,
                        "{who}: batches returned by read({from}) have a gap"
                    );
                    next = l + 1;
                    stats.records += l - b + 1;
                }
                assert!(
                    next <= log.high_watermark(),
                    "{who}: read returned offsets up to {next} beyond the high watermark"
                );
                if rng.below(4) == 0 {
                    held.push(views[0].clone());
                }
            }
            Err(e) => match e.kind() {
                ErrorKind::OffsetOutOfRange { requested, .. } => {
                    assert_eq!(*requested, from, "{who}: {e}");
                    assert_really_deleted(log, from, &who, &e);
                    stats.out_of_range += 1;
                }
                _ => panic!("{who}: read({from}, {max_bytes}) failed: {e}"),
            },
        }
        if held.len() >= 64 {
            let start = log.log_start_offset();
            for v in &held {
                verify_batch(v, &format!("{who} (held view)"));
                if v.last_offset() < start {
                    stats.held_from_deleted_segments += 1;
                }
            }
            held.drain(..32);
        }
    }
    stats
}

/// Follows the end of the log like a consumer: sees every offset in order, exactly once, except
/// where retention deleted records before it got to them.
fn tailing_reader(log: &Log, stop: &AtomicBool) -> u64 {
    let who = "tailing reader";
    let mut position = 0u64;
    let mut seen = 0u64;
    loop {
        // Read once more after the writer stopped, to reach the final end.
        let stopping = stop.load(Ordering::Relaxed);
        let end_before = log.high_watermark();
        match log.read(position, 16 << 10) {
            Ok(views) => {
                if views.is_empty() {
                    assert!(
                        position >= end_before,
                        "{who}: empty read at {position} below the end {end_before}"
                    );
                    if stopping {
                        return seen;
                    }
                    thread::yield_now();
                    continue;
                }
                for v in &views {
                    let (b, l) = verify_batch(v, who);
                    assert!(
                        b <= position && position <= l,
                        "{who}: expected {position} in {b}..={l}"
                    );
                    seen += l + 1 - position;
                    position = l + 1;
                }
            }
            Err(e) => match e.kind() {
                ErrorKind::OffsetOutOfRange { .. } => {
                    assert_really_deleted(log, position, who, &e);
                    position = log.log_start_offset();
                }
                _ => panic!("{who}: read({position}) failed: {e}"),
            },
        }
    }
}

#[test]
fn readers_see_only_whole_correct_batches_during_appends_rolls_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), config()).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let deleted_segments = Arc::new(AtomicU64::new(0));

    let writer = {
        let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
        thread::spawn(move || {
            let mut rng = XorShift::new(1);
            let mut batches = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let base = log.high_watermark();
                let count = 1 + rng.below(30);
                let info = log.append(&batch_for(base, count)).unwrap();
                assert_eq!(
                    (info.base_offset, info.last_offset),
                    (base, base + count - 1)
                );
                assert_eq!(log.high_watermark(), base + count);
                batches += 1;
                match rng.below(200) {
                    0 => log.roll().unwrap(),
                    1 => log.flush().unwrap(),
                    _ => {}
                }
            }
            batches
        })
    };
    let retention = {
        let (log, stop, deleted) = (
            Arc::clone(&log),
            Arc::clone(&stop),
            Arc::clone(&deleted_segments),
        );
        thread::spawn(move || {
            let mut last_start = 0;
            while !stop.load(Ordering::Relaxed) {
                let report = log.apply_retention().unwrap();
                assert!(report.log_start_offset >= last_start);
                last_start = report.log_start_offset;
                deleted.fetch_add(report.deleted_segments.len() as u64, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let readers: Vec<_> = (0..3u64)
        .map(|i| {
            let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
            thread::spawn(move || random_reader(&log, &stop, 100 + i))
        })
        .collect();
    let tail = {
        let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
        thread::spawn(move || tailing_reader(&log, &stop))
    };

    thread::sleep(RUN_FOR);
    stop.store(true, Ordering::Relaxed);
    let batches = writer.join().expect("writer");
    retention.join().expect("retention thread");
    let mut stats = Vec::new();
    for r in readers {
        stats.push(r.join().expect("reader"));
    }
    let tail_seen = tail.join().expect("tailing reader");

    let reads: u64 = stats.iter().map(|s| s.reads).sum();
    let records: u64 = stats.iter().map(|s| s.records).sum();
    let out_of_range: u64 = stats.iter().map(|s| s.out_of_range).sum();
    let by_time: u64 = stats.iter().map(|s| s.by_time).sum();
    let held_deleted: u64 = stats.iter().map(|s| s.held_from_deleted_segments).sum();
    let deleted = deleted_segments.load(Ordering::Relaxed);
    eprintln!(
        "{batches} batches appended ({} records), {reads} reads verifying {records} records, \
         {by_time} time lookups, {out_of_range} out-of-range, {deleted} segments deleted by \
         apply_retention, {held_deleted} held views outliving their segment, tail saw {tail_seen}",
        log.high_watermark()
    );
    // The run must have exercised what it claims to.
    assert!(batches > 100, "writer appended only {batches} batches");
    assert!(reads > 100, "readers read only {reads} times");
    assert!(
        log.log_start_offset() > 0,
        "retention never deleted anything"
    );
    assert!(
        held_deleted > 0,
        "no held view outlived its segment: retention vs readers not exercised"
    );
    assert!(tail_seen > 0 && tail_seen <= log.high_watermark());

    // Afterwards: the log from its start is whole and correct, and reopens the same.
    let check_all = |log: &Log| {
        let mut next = log.log_start_offset();
        while next < log.high_watermark() {
            let views = log.read(next, 1 << 20).unwrap();
            for v in &views {
                let (b, l) = verify_batch(v, "final check");
                assert_eq!(b, next);
                next = l + 1;
            }
        }
        assert_eq!(next, log.high_watermark());
    };
    check_all(&log);
    let (start, end) = (log.log_start_offset(), log.high_watermark());
    let size = log.size_in_bytes();
    assert!(
        size <= (192 << 10) + 2 * (32 << 10),
        "retention keeps the log near its limit: {size} bytes"
    );
    Arc::try_unwrap(log).unwrap().close().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    assert_eq!((log.log_start_offset(), log.high_watermark()), (start, end));
    assert_eq!(log.recovery_report().scanned_bytes, 0);
    check_all(&log);
    log.close().unwrap();
}
