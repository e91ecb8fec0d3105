//! Model-based test of `Log`: random sequences of appends, reads, rolls, reopens, simulated
//! crashes, torn tails and retention passes run against the real log and against a simple
//! in-memory model of it, and the two are compared after every step.
//!
//! The model knows every batch's bytes, so it knows where every batch sits in its segment file
//! (batches lie back to back after the 24-byte file header, and a batch goes to a new segment when
//! it does not fit in `segment_bytes`, when `segment_ms` has passed, or on `roll`). That lets it
//! predict exactly which batches survive when the tail of the last data file is chopped off, and
//! which segments size and age retention delete.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::sample::Index;
use riverbed::{
    BatchBuilder, BatchView, Compression, ErrorKind, FlushPolicy, Log, LogConfig, RecoveryMode,
    TimestampType,
};
use tempfile::TempDir;

mod common;
use common::{copy_dir, FILE_HEADER_LEN};

/// Kafka's v2 batch header (segment format 3, FORMAT.md 3.1).
const BATCH_HEADER_LEN: usize = 61;
/// Timestamps of "ordinary" records are around here (2023-11-14).
const PRESENT_MS: i64 = 1_700_000_000_000;
/// Timestamps of configurations with age retention are around here (2096), so that the retention
/// pass that every roll runs with the real clock never finds anything expired.
const FUTURE_MS: i64 = 4_000_000_000_000;
const WILD_TIMESTAMPS: [i64; 6] = [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX];

// ---------------------------------------------------------------------------------------------
// Generated input
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Cfg {
    segment_bytes: u64,
    index_interval_bytes: u32,
    max_message_bytes: usize,
    /// 0 and 1: `Manual` (twice as likely); 2: `EveryAppend`; 3: `Interval` (every 7 records).
    flush: u8,
    retention_bytes: Option<u64>,
    retention_ms: Option<u64>,
    segment_ms: Option<u64>,
    small_checkpoints: bool,
    log_append_time: bool,
    wild_timestamps: bool,
}

impl Cfg {
    fn log_config(&self) -> LogConfig {
        LogConfig::default()
            .segment_bytes(self.segment_bytes)
            .segment_ms(self.segment_ms)
            .index_interval_bytes(self.index_interval_bytes)
            .max_message_bytes(self.max_message_bytes)
            .flush(match self.flush {
                0 | 1 => FlushPolicy::Manual,
                2 => FlushPolicy::EveryAppend,
                _ => FlushPolicy::Interval {
                    messages: Some(7),
                    // No timer: a flush thread running while a crash is simulated by copying the
                    // directory would make the copy inconsistent in ways a real crash cannot.
                    interval: None,
                },
            })
            .retention_ms(self.retention_ms)
            .retention_bytes(self.retention_bytes)
            .recovery_checkpoint_bytes(if self.small_checkpoints {
                300
            } else {
                64 << 20
            })
            .recovery(RecoveryMode::TruncateTail)
            .timestamp_type(if self.log_append_time {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            })
    }

    fn base_ms(&self) -> i64 {
        if self.retention_ms.is_some() {
            FUTURE_MS
        } else {
            PRESENT_MS
        }
    }

    /// Whether anything other than a reopen may write a checkpoint (and so a time-index entry).
    fn background_checkpoints(&self) -> bool {
        self.small_checkpoints && self.flush >= 2
    }
}

#[derive(Clone, Debug)]
enum Ts {
    /// `base + 1000 * step + delta`.
    Near(i64),
    /// One of `WILD_TIMESTAMPS` (only used by configurations that allow them).
    Wild(usize),
}

#[derive(Clone)]
struct Rec {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    ts: Ts,
}

/// Compact, so that a shrunk failing case can be read (and copied into a regression test).
impl std::fmt::Debug for Rec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn show(b: &Option<Vec<u8>>) -> String {
            match b {
                None => "None".to_string(),
                Some(v) if v.len() > 16 => format!("{} bytes", v.len()),
                Some(v) => format!("b\"{}\"", v.escape_ascii()),
            }
        }
        write!(
            f,
            "Rec {{ key: {}, value: {}, headers: {:?}, ts: {:?} }}",
            show(&self.key),
            show(&self.value),
            self.headers
                .iter()
                .map(|(k, v)| (k.as_str(), show(v)))
                .collect::<Vec<_>>(),
            self.ts
        )
    }
}

#[derive(Clone, Debug)]
enum From {
    /// An offset in `log_start..=next_offset`.
    Valid(Index),
    /// `log_start - k` (or `next + k` when the log starts at 0).
    Below(u64),
    /// `next_offset + k`.
    Above(u64),
    Max,
}

#[derive(Clone, Debug)]
enum Cut {
    /// Chop the last data file inside its data region: keep `24..=data_end` bytes.
    Data(Index),
    /// Chop at most 200 bytes off the end of the data.
    DataEnd(Index),
    /// Chop only some of the preallocated zeros after the data.
    Zeros(Index),
    /// Chop into the file header (keep 0..24 bytes).
    Header(Index),
}

#[derive(Clone, Debug)]
enum Op {
    Append { records: Vec<Rec>, zstd: bool },
    Read { from: From, max_bytes: usize },
    Roll,
    Reopen,
    CrashReopen,
    TruncateTail { crash: bool, cut: Cut },
    ApplyRetention { segment: Index, delta: i64 },
    DeleteBelow(Index),
    Flush,
}

fn cfg_strategy() -> impl Strategy<Value = Cfg> {
    (
        // 96 KiB segments hold the batches of 8 KiB and more that are written with `pwrite`
        // instead of through the map (see `large_batch_strategy`).
        prop::sample::select(vec![2048u64, 3000, 4096, 8192, 96 << 10]),
        prop::sample::select(vec![64u32, 100, 256, 512]),
        prop::sample::select(vec![700usize, 1024, 2000, 40 << 10]),
        0u8..4,
        prop::option::weighted(0.35, 300u64..6000),
        prop::option::weighted(0.2, 1u64..100_000),
        prop::option::weighted(0.25, 1000u64..30_000),
        any::<bool>(),
        prop::bool::weighted(0.15),
        any::<bool>(),
    )
        .prop_map(
            |(seg, interval, max_rec, flush, ret_bytes, ret_ms, seg_ms, small_cp, lat, wild)| {
                let mut c = Cfg {
                    segment_bytes: seg,
                    index_interval_bytes: interval,
                    max_message_bytes: max_rec.min(seg as usize - FILE_HEADER_LEN),
                    flush,
                    retention_bytes: ret_bytes,
                    retention_ms: ret_ms,
                    segment_ms: seg_ms,
                    small_checkpoints: small_cp,
                    log_append_time: lat,
                    wild_timestamps: wild,
                };
                if c.log_append_time {
                    // Record timestamps are the wall clock: keep rolls and retention predictable.
                    c.segment_ms = None;
                    c.wild_timestamps = false;
                    c.retention_ms = c.retention_ms.map(|_| 86_400_000);
                }
                if c.retention_ms.is_some() {
                    c.wild_timestamps = false;
                }
                c
            },
        )
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn value_strategy() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Vec::new())),
        8 => bytes(16).prop_map(Some),
        4 => bytes(100).prop_map(Some),
        2 => prop::collection::vec(any::<u8>(), 100..=300).prop_map(Some),
        2 => (any::<u8>(), 0usize..=300).prop_map(|(b, n)| Some(vec![b; n])),
    ]
}

fn rec_strategy() -> impl Strategy<Value = Rec> {
    (
        prop::option::weighted(0.8, bytes(12)),
        value_strategy(),
        prop::collection::vec(("[a-zé]{0,6}", prop::option::of(bytes(10))), 0..3),
        prop_oneof![
            12 => (-3000i64..3000).prop_map(Ts::Near),
            1 => (0..WILD_TIMESTAMPS.len()).prop_map(Ts::Wild),
        ],
    )
        .prop_map(|(key, value, headers, ts)| Rec {
            key,
            value,
            headers,
            ts,
        })
}

/// Batches of roughly 6 to 30 KiB: the log writes those of 8 KiB and more with `pwrite` into
/// reserved blocks instead of through its map, so both write paths meet in one segment.
fn large_batch_strategy() -> impl Strategy<Value = Vec<Rec>> {
    let rec = (bytes(12), any::<u8>(), 500usize..=1000, -3000i64..3000).prop_map(
        |(key, fill, len, ts)| Rec {
            key: Some(key),
            value: Some(vec![fill; len]),
            headers: Vec::new(),
            ts: Ts::Near(ts),
        },
    );
    prop::collection::vec(rec, 12..30)
}

fn from_strategy() -> impl Strategy<Value = From> {
    prop_oneof![
        8 => any::<Index>().prop_map(From::Valid),
        1 => (1u64..5).prop_map(From::Below),
        1 => (1u64..5).prop_map(From::Above),
        1 => Just(From::Max),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (prop::collection::vec(rec_strategy(), 1..20), prop::bool::weighted(0.3))
            .prop_map(|(records, zstd)| Op::Append { records, zstd }),
        3 => large_batch_strategy().prop_map(|records| Op::Append { records, zstd: false }),
        4 => (
            from_strategy(),
            prop_oneof![1usize..100, 100usize..4000, Just(1usize << 20)]
        )
            .prop_map(|(from, max_bytes)| Op::Read { from, max_bytes }),
        2 => Just(Op::Roll),
        2 => Just(Op::Reopen),
        2 => Just(Op::CrashReopen),
        3 => (
            any::<bool>(),
            prop_oneof![
                3 => any::<Index>().prop_map(Cut::Data),
                4 => any::<Index>().prop_map(Cut::DataEnd),
                1 => any::<Index>().prop_map(Cut::Zeros),
                1 => any::<Index>().prop_map(Cut::Header),
            ]
        )
            .prop_map(|(crash, cut)| Op::TruncateTail { crash, cut }),
        1 => (any::<Index>(), -2i64..3)
            .prop_map(|(segment, delta)| Op::ApplyRetention { segment, delta }),
        1 => any::<Index>().prop_map(Op::DeleteBelow),
        1 => Just(Op::Flush),
    ]
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
struct MRecord {
    offset: u64,
    ts: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

#[derive(Clone, Debug)]
struct MBatch {
    base: u64,
    last: u64,
    max_ts: i64,
    /// The bytes as the log must store them (base offset stamped in). For a log-append-time log
    /// the CRC, attributes and timestamps in the header differ (the log stamps them).
    bytes: Vec<u8>,
    records: Vec<MRecord>,
}

#[derive(Clone, Debug)]
struct MSeg {
    base: u64,
    batches: Vec<MBatch>,
    /// Operations that may have added a time-index entry to this segment while it was active
    /// (each checkpoint can). Bounds how early the log may roll because its time index is full.
    checkpoints: usize,
}

impl MSeg {
    fn new(base: u64) -> MSeg {
        MSeg {
            base,
            batches: Vec::new(),
            checkpoints: 0,
        }
    }

    fn data_len(&self) -> usize {
        FILE_HEADER_LEN + self.batches.iter().map(|b| b.bytes.len()).sum::<usize>()
    }

    fn max_ts(&self) -> i64 {
        self.batches
            .iter()
            .map(|b| b.max_ts)
            .max()
            .unwrap_or(i64::MIN)
    }
}

#[derive(Debug)]
struct Model {
    segs: Vec<MSeg>,
    next: u64,
}

impl Model {
    fn log_start(&self) -> u64 {
        self.segs[0].base
    }

    fn active(&mut self) -> &mut MSeg {
        self.segs
            .last_mut()
            .expect("the model always has an active segment")
    }

    fn bases(&self) -> Vec<u64> {
        self.segs.iter().map(|s| s.base).collect()
    }

    fn size(&self) -> u64 {
        self.segs.iter().map(|s| s.data_len() as u64).sum()
    }

    fn batches(&self) -> impl Iterator<Item = &MBatch> {
        self.segs.iter().flat_map(|s| s.batches.iter())
    }

    fn records(&self) -> impl Iterator<Item = &MRecord> {
        self.batches().flat_map(|b| b.records.iter())
    }

    fn roll(&mut self) {
        let next = self.next;
        self.segs.push(MSeg::new(next));
    }

    /// What `retention_locked` deletes: oldest sealed segments first, while expired or while the
    /// rest would still be at least `retention_bytes`.
    fn retention(&mut self, cfg: &Cfg, now: i64) -> Vec<u64> {
        let mut total = self.size();
        let mut doomed = 0;
        for seg in &self.segs[..self.segs.len() - 1] {
            let size = seg.data_len() as u64;
            let expired = cfg
                .retention_ms
                .is_some_and(|ms| seg.max_ts() < now.saturating_sub(ms as i64));
            let oversize = cfg
                .retention_bytes
                .is_some_and(|limit| total.saturating_sub(size) >= limit);
            if !(expired || oversize) {
                break;
            }
            total -= size;
            doomed += 1;
        }
        self.segs.drain(..doomed).map(|s| s.base).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Running a case
// ---------------------------------------------------------------------------------------------

struct Harness {
    cfg: Cfg,
    model: Model,
    /// `None` only while an operation swaps it.
    log: Option<Log>,
    dir: TempDir,
    step: usize,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn seg_log_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

impl Harness {
    fn new(cfg: Cfg) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), cfg.log_config()).unwrap();
        Harness {
            cfg,
            model: Model {
                segs: vec![MSeg::new(0)],
                next: 0,
            },
            log: Some(log),
            dir,
            step: 0,
        }
    }

    fn log(&self) -> &Log {
        self.log.as_ref().unwrap()
    }

    fn timestamp(&self, ts: &Ts) -> i64 {
        match *ts {
            Ts::Wild(i) if self.cfg.wild_timestamps => WILD_TIMESTAMPS[i],
            Ts::Wild(_) => self.cfg.base_ms() + 1000 * self.step as i64,
            Ts::Near(d) => self.cfg.base_ms() + 1000 * self.step as i64 + d,
        }
    }

    fn note_checkpoint(&mut self) {
        self.model.active().checkpoints += 1;
    }

    fn run(&mut self, op: &Op) {
        if self.cfg.background_checkpoints() {
            self.note_checkpoint();
        }
        match op {
            Op::Append { records, zstd } => self.append(records, *zstd),
            Op::Read { from, max_bytes } => self.read_op(from, *max_bytes),
            Op::Roll => {
                self.log().roll().unwrap();
                if !self.model.active().batches.is_empty() {
                    self.model.roll();
                    self.model.retention(&self.cfg, now_ms());
                }
            }
            Op::Reopen => self.reopen_clean(),
            Op::CrashReopen => {
                let copy = copy_dir(self.dir.path());
                let log = Log::open(copy.path(), self.cfg.log_config()).unwrap();
                let r = log.recovery_report();
                assert!(r.truncation.is_none(), "a crash copy was cut: {r:?}");
                drop(self.log.replace(log));
                self.dir = copy;
                self.note_checkpoint();
            }
            Op::TruncateTail { crash, cut } => {
                let _silent = self.truncate_tail(*crash, cut);
            }
            Op::ApplyRetention { segment, delta } => {
                let now = match self.cfg.retention_ms {
                    Some(ms) if self.model.segs.len() > 1 => {
                        let sealed = &self.model.segs[..self.model.segs.len() - 1];
                        sealed[segment.index(sealed.len())].max_ts() + ms as i64 + delta
                    }
                    _ => now_ms(),
                };
                let start_before = self.log().log_start_offset();
                let report = self.log().apply_retention_at(now).unwrap();
                let deleted = self.model.retention(&self.cfg, now);
                assert_eq!(report.deleted_segments, deleted, "retention at {now}");
                assert_eq!(report.log_start_offset, self.model.log_start());
                assert!(report.log_start_offset >= start_before);
            }
            Op::DeleteBelow(i) => {
                let offset = i.index(self.model.next as usize + 2) as u64;
                let report = self.log().delete_segments_below(offset).unwrap();
                let n = self.model.segs.len();
                let doomed = (0..n - 1)
                    .take_while(|&k| self.model.segs[k + 1].base <= offset)
                    .count();
                let deleted: Vec<u64> = self.model.segs.drain(..doomed).map(|s| s.base).collect();
                assert_eq!(report.deleted_segments, deleted, "delete below {offset}");
                assert_eq!(report.log_start_offset, self.model.log_start());
            }
            Op::Flush => {
                self.log().flush().unwrap();
                assert_eq!(self.log().durable_offset(), self.model.next);
                self.note_checkpoint();
            }
        }
        self.check();
        self.step += 1;
    }

    fn reopen_clean(&mut self) {
        self.log.take().unwrap().close().unwrap();
        let log = Log::open(self.dir.path(), self.cfg.log_config()).unwrap();
        let r = log.recovery_report();
        assert!(r.checkpoint_used, "clean reopen without checkpoint: {r:?}");
        assert_eq!(r.scanned_bytes, 0, "a clean reopen scanned: {r:?}");
        assert!(r.truncation.is_none(), "a clean reopen cut: {r:?}");
        assert!(r.rebuilt_indexes.is_empty(), "clean reopen rebuilt: {r:?}");
        self.log = Some(log);
        self.note_checkpoint();
    }

    fn append(&mut self, records: &[Rec], zstd: bool) {
        let compression = if zstd {
            Compression::Zstd { level: 1 }
        } else {
            Compression::None
        };
        let mut builder = BatchBuilder::new(compression);
        let mut mrecs = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let ts = self.timestamp(&r.ts);
            let headers: Vec<(&str, Option<&[u8]>)> = r
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_deref()))
                .collect();
            builder.append(ts, r.key.as_deref(), r.value.as_deref(), &headers);
            mrecs.push(MRecord {
                offset: self.model.next + i as u64,
                ts,
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r.headers.clone(),
            });
        }
        let batch = builder.build().unwrap();
        assert_eq!(batch.record_count() as usize, records.len());
        let result = self.log().append(&batch);
        if batch.len() > self.cfg.max_message_bytes {
            let e = result.expect_err("an oversized batch was accepted");
            assert!(
                matches!(e.kind(), ErrorKind::RecordTooLarge { size, max }
                    if *size == batch.len() && *max == self.cfg.max_message_bytes),
                "{e:?}"
            );
            return;
        }
        let info = result.unwrap();
        let n = records.len() as u64;
        assert_eq!(info.base_offset, self.model.next);
        assert_eq!(info.last_offset, self.model.next + n - 1);
        let max_ts = if self.cfg.log_append_time {
            for r in &mut mrecs {
                r.ts = info.timestamp;
            }
            info.timestamp
        } else {
            let max = mrecs.iter().map(|r| r.ts).max().unwrap();
            assert_eq!(info.timestamp, max);
            max
        };

        // Where did the batch go? The model predicts the rolls the data size and segment age
        // force; the log may also roll early when the active segment's time index is full.
        let cfg = self.cfg.clone();
        let bases = self.log().segment_base_offsets();
        let active = self.model.segs.last().unwrap();
        let fits = active.data_len() + batch.len() <= cfg.segment_bytes as usize;
        let first_ts = active.batches.first().map(|b| b.max_ts);
        let too_old = match (cfg.segment_ms, first_ts) {
            (Some(ms), Some(first)) => max_ts.saturating_sub(first) >= ms as i64,
            _ => false,
        };
        let must_roll = !active.batches.is_empty() && (!fits || too_old);
        let did_roll = !active.batches.is_empty() && bases.last() == Some(&info.base_offset);
        if must_roll {
            assert!(
                did_roll,
                "batch of {} bytes at offset {} must start a new segment (active {} holds {} \
                 bytes, fits: {fits}, aged: {too_old}); segments {bases:?}",
                batch.len(),
                info.base_offset,
                active.base,
                active.data_len(),
            );
        } else if did_roll {
            let interval = cfg.index_interval_bytes as usize;
            let max_time_entries =
                (active.data_len() - FILE_HEADER_LEN) / interval + active.checkpoints;
            assert!(
                max_time_entries > cfg.segment_bytes as usize / interval,
                "batch of {} bytes at offset {} started a new segment though it fits in the \
                 active one ({} holds {} bytes) and its indexes cannot be full",
                batch.len(),
                info.base_offset,
                active.base,
                active.data_len(),
            );
        }
        if did_roll {
            self.model.roll();
            self.model.retention(&cfg, now_ms());
        }

        let mut stored = batch.as_bytes().to_vec();
        // The log stamps the base offset (big-endian, Kafka's) and a leader epoch of 0.
        #[allow(clippy::big_endian_bytes)]
        stored[0..8].copy_from_slice(&(info.base_offset as i64).to_be_bytes());
        stored[12..16].fill(0);
        self.model.active().batches.push(MBatch {
            base: info.base_offset,
            last: info.last_offset,
            max_ts,
            bytes: stored,
            records: mrecs,
        });
        self.model.next += n;
        if matches!(cfg.log_config().get_flush(), FlushPolicy::EveryAppend) {
            assert_eq!(self.log().durable_offset(), self.model.next);
        }
    }

    fn read_op(&mut self, from: &From, max_bytes: usize) {
        let start = self.model.log_start();
        let next = self.model.next;
        let from = match from {
            From::Valid(i) => start + i.index((next - start + 1) as usize) as u64,
            From::Below(k) if start >= *k => start - k,
            From::Below(k) | From::Above(k) => next + k,
            From::Max => u64::MAX,
        };
        let result = self.log().read(from, max_bytes);
        if from < start || from > next {
            expect_out_of_range(result, from, start, next);
            return;
        }
        let views = result.unwrap();
        let mut expected = Vec::new();
        let mut used = 0;
        for b in self.model.batches().filter(|b| b.last >= from) {
            if used > 0 && used + b.bytes.len() > max_bytes {
                break;
            }
            used += b.bytes.len();
            expected.push(b);
            if used >= max_bytes {
                break;
            }
        }
        let got: Vec<u64> = views.iter().map(|v| v.base_offset()).collect();
        let want: Vec<u64> = expected.iter().map(|b| b.base).collect();
        assert_eq!(
            got, want,
            "read({from}, {max_bytes}) returned the wrong batches"
        );
        for (v, b) in views.iter().zip(expected) {
            self.check_batch(v, b);
        }
    }

    /// Cuts the last data file; returns whether the cut lost every batch of the segment without
    /// leaving anything to report.
    fn truncate_tail(&mut self, crash: bool, cut: &Cut) -> bool {
        if crash {
            let copy = copy_dir(self.dir.path());
            drop(self.log.take());
            self.dir = copy;
        } else {
            self.log.take().unwrap().close().unwrap();
        }
        let seg = self.model.segs.last().unwrap().clone();
        let path = seg_log_path(self.dir.path(), seg.base);
        let data_end = seg.data_len();
        let file = std::fs::read(&path).unwrap();
        let keep = match cut {
            Cut::Data(i) => data_end - i.index(data_end - FILE_HEADER_LEN + 1),
            Cut::DataEnd(i) => data_end - i.index((data_end - FILE_HEADER_LEN).min(200) + 1),
            Cut::Zeros(i) => data_end + i.index(file.len() - data_end + 1),
            Cut::Header(i) => i.index(FILE_HEADER_LEN),
        };
        assert!(
            file[data_end.min(file.len())..].iter().all(|b| *b == 0),
            "bytes after the last batch of {} are not zero",
            path.display()
        );
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(keep as u64)
            .unwrap();

        // The model: keep the batches that lie wholly before the cut.
        let mut end = FILE_HEADER_LEN;
        let mut kept = 0;
        for b in &seg.batches {
            if keep >= FILE_HEADER_LEN && end + b.bytes.len() <= keep {
                end += b.bytes.len();
                kept += 1;
            } else {
                break;
            }
        }
        let active = self.model.active();
        active.batches.truncate(kept);
        let new_next = active.batches.last().map_or(active.base, |b| b.last + 1);
        self.model.next = new_next;
        // A torn batch is reported unless what is left of it is all zeros (which the scan takes
        // for the preallocated end of the file).
        let expect_cut = keep < FILE_HEADER_LEN || file[end..keep].iter().take(12).any(|b| *b != 0);

        let log = Log::open(self.dir.path(), self.cfg.log_config()).unwrap();
        let r = log.recovery_report().clone();
        match (&r.truncation, expect_cut) {
            (None, false) => {}
            (Some(t), true) => {
                assert_eq!(t.path, path, "{r:?}");
                assert_eq!(t.offset, new_next, "{r:?}");
                if keep >= FILE_HEADER_LEN {
                    assert_eq!(t.position, end as u64, "{r:?}");
                }
            }
            _ => panic!(
                "cut {} at {keep} (batches end at {end}, data at {data_end}): expected a cut to \
                 be reported: {expect_cut}; report {r:?}",
                path.display()
            ),
        }
        self.log = Some(log);
        self.note_checkpoint();
        keep >= FILE_HEADER_LEN && keep < data_end && kept == 0 && !expect_cut
    }

    fn check_batch(&self, v: &BatchView, b: &MBatch) {
        assert_eq!(v.base_offset(), b.base);
        assert_eq!(v.last_offset(), b.last);
        assert_eq!(v.record_count() as usize, b.records.len());
        assert_eq!(v.max_timestamp(), b.max_ts);
        assert_eq!(v.len(), b.bytes.len());
        let got = v.as_bytes();
        if self.cfg.log_append_time {
            // Kafka v2 layout: offset, length, leader epoch, magic; last offset delta; producer
            // fields, count and records. Only the CRC, attributes and timestamps change.
            assert_eq!(got[0..17], b.bytes[0..17], "batch {} framing", b.base);
            assert_eq!(got[23..27], b.bytes[23..27], "batch {} delta", b.base);
            assert_eq!(
                got[43..],
                b.bytes[43..],
                "batch {} records differ from what was appended",
                b.base
            );
            assert_eq!(v.as_batch().timestamp_type(), TimestampType::LogAppendTime);
        } else {
            assert!(
                got == &b.bytes[..],
                "batch {} is stored with other bytes than were appended",
                b.base
            );
            assert_eq!(v.as_batch().timestamp_type(), TimestampType::CreateTime);
        }
        assert!(got.len() >= BATCH_HEADER_LEN);
        let records = v.records().unwrap();
        let mut n = 0;
        for (r, m) in records.iter().zip(&b.records) {
            let r = r.unwrap();
            let headers: Vec<(String, Option<Vec<u8>>)> = r
                .headers()
                .map(|h| {
                    let (k, v) = h.unwrap();
                    (k.to_string(), v.map(<[u8]>::to_vec))
                })
                .collect();
            let got = MRecord {
                offset: r.offset(),
                ts: r.timestamp(),
                key: r.key().map(<[u8]>::to_vec),
                value: r.value().map(<[u8]>::to_vec),
                headers,
            };
            assert_eq!(&got, m);
            n += 1;
        }
        assert_eq!(n, b.records.len());
        assert_eq!(records.iter().count(), b.records.len());
    }

    /// Compares everything observable with the model.
    fn check(&self) {
        let log = self.log();
        let m = &self.model;
        let (start, next) = (m.log_start(), m.next);
        assert_eq!(log.high_watermark(), next, "next offset");
        assert_eq!(log.log_start_offset(), start, "log start offset");
        assert_eq!(log.segment_base_offsets(), m.bases(), "segments");
        assert_eq!(log.segment_count(), m.segs.len());
        assert_eq!(log.size_in_bytes(), m.size(), "size in bytes");

        // Everything, in one read.
        let views = log.read(start, 1 << 30).unwrap();
        let batches: Vec<&MBatch> = m.batches().collect();
        assert_eq!(
            views.iter().map(|v| v.base_offset()).collect::<Vec<_>>(),
            batches.iter().map(|b| b.base).collect::<Vec<_>>(),
            "reading the whole log"
        );
        for (v, b) in views.iter().zip(&batches) {
            self.check_batch(v, b);
        }

        // Out of range, on both sides.
        if start > 0 {
            expect_out_of_range(log.read(start - 1, 1000), start - 1, start, next);
            expect_out_of_range(log.read(0, 1000), 0, start, next);
        }
        expect_out_of_range(log.read(next + 1, 1000), next + 1, start, next);
        expect_out_of_range(log.read(u64::MAX, 1), u64::MAX, start, next);
        assert!(log.read(next, 1000).unwrap().is_empty());

        // Time lookups: extremes, and around a few stored timestamps.
        let records: Vec<&MRecord> = m.records().collect();
        let mut queries = vec![i64::MIN, i64::MAX, PRESENT_MS, FUTURE_MS + 1];
        for k in 0..4 {
            if !records.is_empty() {
                let r = records[(self.step * 7 + k * 13) % records.len()];
                queries.extend([r.ts, r.ts.saturating_sub(1), r.ts.saturating_add(1)]);
            }
        }
        for ts in queries {
            let want = records
                .iter()
                .find(|r| r.ts >= ts)
                .map(|r| (r.offset, r.ts));
            let got = log.offset_for_timestamp(ts).unwrap();
            assert_eq!(got, want, "offset_for_timestamp({ts})");
        }
    }
}

fn expect_out_of_range(result: riverbed::Result<Vec<BatchView>>, from: u64, start: u64, next: u64) {
    let e = result.expect_err("an out-of-range read succeeded");
    assert!(
        matches!(
            e.kind(),
            ErrorKind::OffsetOutOfRange { requested, log_start, log_end, .. }
                if *requested == from && *log_start == start && *log_end == next
        ),
        "read({from}) on a log holding {start}..{next}: {e:?}"
    );
}

/// Runs a whole case.
fn run_case(cfg: Cfg, ops: &[Op]) {
    let mut h = Harness::new(cfg);
    h.check();
    for op in ops {
        h.run(op);
    }
    // Finally a clean close and reopen must give the same log.
    h.run(&Op::Reopen);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Every operation, checked against the model after each.
    #[test]
    fn log_agrees_with_model(
        cfg in cfg_strategy(),
        ops in prop::collection::vec(op_strategy(), 1..40),
    ) {
        run_case(cfg, &ops);
    }
}
