//! Model-based test of compaction: random appends over a small key space (values and tombstones,
//! plain batches and batches of each of Kafka's codecs: gzip, snappy, lz4, zstd), rolls, reopens
//! and compactions at random clock times run against a real compacted `Log` and an in-memory list of every record appended. After every step:
//!
//! - every record the log returns is the one appended at that offset (offsets never change),
//!   offsets strictly increase, and reads from any offset (also inside a gap) return the first
//!   surviving record at or after it;
//! - the latest value of every key is the model's (a key whose last record is a tombstone may
//!   have lost it, but then nothing older of that key remains);
//! - the active segment is untouched: every record from its base on is there;
//! - after a compaction: the sealed part holds at most one record per key, and the latest
//!   tombstone of a key is still there until `delete_retention_ms` after the first compaction
//!   that found it sealed, whatever its own timestamp (KIP-534: the first cleaning that keeps a
//!   tombstone sets its delete horizon; Kafka's `LogCleanerTest.testCleanTombstone`);
//! - at the end, two compactions `delete_retention_ms` apart leave exactly the live keys: every
//!   tombstone is removed once its horizon has passed.

use std::collections::HashMap;

use proptest::prelude::*;
use riverbed::{
    BatchBuilder, CleanupPolicy, CompactionConfig, Compression, Log, LogConfig, TimestampType,
};

mod common;
use common::{read_all, ReadRecord};

const T0: i64 = 1_700_000_000_000;
const RETENTION_MS: u64 = 1_000;

#[derive(Clone, Debug)]
enum Op {
    /// Records `(key, value)` (`None` value: a tombstone); the clock moves by `tick` first.
    Append {
        records: Vec<(u8, Option<u8>)>,
        /// Index into [`CODECS`].
        codec: usize,
        tick: u16,
    },
    Roll,
    /// Compacts with the clock at the newest timestamp plus `ahead` ms, and a key map of
    /// `buffer_bytes` (small ones force several passes).
    Compact {
        ahead: u16,
        small_map: bool,
    },
    Reopen,
    /// Reads from an offset picked by the index (into the records appended so far).
    ReadFrom(prop::sample::Index),
}

/// Mostly a handful of keys (much to compact); sometimes more than the small key map holds
/// (several passes, a mapped part that ends inside a segment).
fn key() -> impl Strategy<Value = u8> {
    prop_oneof![4 => 0u8..6, 1 => 0u8..60]
}

/// The compressions appends draw from: a compacted batch is rewritten with its own codec.
const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip { level: 1 },
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd { level: 1 },
];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            prop::collection::vec((key(), prop::option::weighted(0.85, 0u8..=255)), 1..6),
            0..CODECS.len(),
            0u16..400
        )
            .prop_map(|(records, codec, tick)| Op::Append { records, codec, tick }),
        2 => Just(Op::Roll),
        3 => (0u16..2_500, any::<bool>()).prop_map(|(ahead, small_map)| Op::Compact { ahead, small_map }),
        1 => Just(Op::Reopen),
        2 => any::<prop::sample::Index>().prop_map(Op::ReadFrom),
    ]
}

/// One appended record.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rec {
    offset: u64,
    key: u8,
    value: Option<Vec<u8>>,
    ts: i64,
}

fn value_bytes(key: u8, v: u8, offset: u64) -> Vec<u8> {
    // Long enough that a few batches fill a segment; names its offset so mix-ups show.
    format!(
        "k{key}-v{v}-at-{offset}-{}",
        "x".repeat(usize::from(v % 40))
    )
    .into_bytes()
}

fn config(log_append_time: bool) -> LogConfig {
    LogConfig::default()
        .segment_bytes(1200)
        .segment_ms(None)
        .index_interval_bytes(128)
        .max_message_bytes(1100)
        .retention_ms(None)
        .cleanup_policy(CleanupPolicy::Compact)
        .delete_retention_ms(RETENTION_MS)
        .timestamp_type(if log_append_time {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        })
}

struct Harness {
    dir: tempfile::TempDir,
    log: Option<Log>,
    cfg: LogConfig,
    model: Vec<Rec>,
    clock: i64,
    /// The clock of the last compaction: time does not go back.
    compacted_at: i64,
    /// Offset of each tombstone → the clock of the first compaction that ran while it was
    /// sealed. Its delete horizon is at least `delete_retention_ms` after that.
    first_compacted_sealed: HashMap<u64, i64>,
}

impl Harness {
    fn log(&self) -> &Log {
        self.log.as_ref().unwrap()
    }

    fn key_of(r: &ReadRecord) -> u8 {
        let k = r.1.as_ref().expect("a keyless record in a compacted log");
        assert_eq!(k.len(), 1);
        k[0]
    }

    fn check(&self, after_compaction_at: Option<i64>) {
        let log = self.log();
        assert_eq!(log.high_watermark(), self.model.len() as u64);
        assert_eq!(log.log_start_offset(), 0, "compaction moved the log start");
        let read = read_all(log, 700);
        let by_offset: HashMap<u64, &Rec> = self.model.iter().map(|r| (r.offset, r)).collect();
        for r in &read {
            let m = by_offset[&r.0];
            assert_eq!(Self::key_of(r), m.key, "key at {}", r.0);
            assert_eq!(r.2, m.value, "value at {}", r.0);
            if self.cfg.get_timestamp_type() == TimestampType::CreateTime {
                assert_eq!(r.3, m.ts, "timestamp at {}", r.0);
            }
        }
        // Latest per key.
        let mut model_latest: HashMap<u8, &Rec> = HashMap::new();
        for r in &self.model {
            model_latest.insert(r.key, r);
        }
        let mut log_latest: HashMap<u8, &ReadRecord> = HashMap::new();
        for r in &read {
            log_latest.insert(Self::key_of(r), r);
        }
        for (k, m) in &model_latest {
            match (&m.value, log_latest.get(k)) {
                (Some(_), Some(l)) => assert_eq!(l.0, m.offset, "latest of key {k}"),
                (Some(_), None) => panic!("key {k} lost its value at {}", m.offset),
                (None, Some(l)) => {
                    assert_eq!(l.0, m.offset, "key {k}: older record after its delete")
                }
                (None, None) => {} // the tombstone and everything before it are gone
            }
        }
        // The active segment is untouched.
        let active_base = *log.segment_base_offsets().last().unwrap();
        let tail: Vec<u64> = read
            .iter()
            .map(|r| r.0)
            .filter(|o| *o >= active_base)
            .collect();
        let expected: Vec<u64> = (active_base..self.model.len() as u64).collect();
        assert_eq!(tail, expected, "the active segment lost records");
        let Some(now) = after_compaction_at else {
            return;
        };
        // The sealed part is clean: one record per key.
        let mut seen = HashMap::new();
        for r in read.iter().filter(|r| r.0 < active_base) {
            if let Some(prev) = seen.insert(Self::key_of(r), r.0) {
                panic!(
                    "key {} at {prev} and {} in the sealed part",
                    Self::key_of(r),
                    r.0
                );
            }
        }
        // Tombstones stay until `delete_retention_ms` after the first compaction that found
        // them sealed (the pass that stamps the horizon comes at that compaction or later).
        let read_offsets: std::collections::HashSet<u64> = read.iter().map(|r| r.0).collect();
        for m in self.model.iter().filter(|r| r.value.is_none()) {
            let latest = model_latest[&m.key].offset == m.offset;
            let Some(first) = self.first_compacted_sealed.get(&m.offset) else {
                continue;
            };
            if latest && now < first + RETENTION_MS as i64 {
                assert!(
                    read_offsets.contains(&m.offset),
                    "tombstone at {} (timestamp {}) removed at {now}, within the retention of \
                     the first compaction that saw it at {first}",
                    m.offset,
                    m.ts
                );
            }
        }
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Append {
                records,
                codec,
                tick,
            } => {
                self.clock += i64::from(*tick);
                let mut b = BatchBuilder::new(CODECS[*codec]);
                let first = self.model.len() as u64;
                let mut recs = Vec::new();
                for (i, (k, v)) in records.iter().enumerate() {
                    let offset = first + i as u64;
                    let value = v.map(|v| value_bytes(*k, v, offset));
                    let ts = self.clock + i as i64;
                    b.append(ts, Some(&[*k]), value.as_deref(), &[]);
                    recs.push(Rec {
                        offset,
                        key: *k,
                        value,
                        ts,
                    });
                }
                let info = self.log().append(&b.build().unwrap()).unwrap();
                assert_eq!(info.base_offset, recs[0].offset);
                self.model.extend(recs);
                self.check(None);
            }
            Op::Roll => {
                self.log().roll().unwrap();
                self.check(None);
            }
            Op::Compact { ahead, small_map } => {
                let newest = self.model.iter().map(|r| r.ts).max().unwrap_or(T0);
                let now = (newest + i64::from(*ahead)).max(self.compacted_at);
                self.compacted_at = now;
                self.note_sealed_tombstones(now);
                let options = CompactionConfig::default()
                    .buffer_bytes(if *small_map { 1024 } else { 1 << 20 })
                    .now_ms(Some(now))
                    .force(true);
                self.log().compact(&options).unwrap();
                self.check(Some(now));
            }
            Op::Reopen => {
                self.log.take().unwrap().close().unwrap();
                self.log = Some(Log::open(self.dir.path(), self.cfg.clone()).unwrap());
                self.check(None);
            }
            Op::ReadFrom(i) => {
                if self.model.is_empty() {
                    return;
                }
                let from = i.index(self.model.len()) as u64;
                let all = read_all(self.log(), 1 << 20);
                let expected = all.iter().find(|r| r.0 >= from).map(|r| r.0);
                // As a consumer does: a batch may hold only records below `from` (the cleaner kept
                // its offset span), so go on after it.
                let mut pos = from;
                let mut got = None;
                while got.is_none() && pos < self.log().high_watermark() {
                    let batches = self.log().read(pos, 1).unwrap();
                    let Some(b) = batches.first() else { break };
                    got = b
                        .records()
                        .unwrap()
                        .iter()
                        .map(|r| r.unwrap().offset())
                        .find(|o| *o >= from);
                    pos = b.last_offset() + 1;
                }
                assert_eq!(got, expected, "read from {from}");
            }
        }
    }
}

impl Harness {
    /// Records `now` as the first compaction of the sealed tombstones not seen sealed before.
    fn note_sealed_tombstones(&mut self, now: i64) {
        let active_base = *self.log().segment_base_offsets().last().unwrap();
        for m in self.model.iter().filter(|r| r.value.is_none()) {
            if m.offset < active_base {
                self.first_compacted_sealed.entry(m.offset).or_insert(now);
            }
        }
    }

    fn compact_at(&mut self, now: i64) {
        self.compacted_at = now;
        self.note_sealed_tombstones(now);
        self.log()
            .compact(&CompactionConfig::default().now_ms(Some(now)))
            .unwrap();
        self.check(Some(now));
    }
}

fn run(ops: &[Op], log_append_time: bool) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(log_append_time);
    let log = Log::open(dir.path(), cfg.clone()).unwrap();
    let mut h = Harness {
        dir,
        log: Some(log),
        cfg,
        model: Vec::new(),
        clock: T0,
        compacted_at: T0,
        first_compacted_sealed: HashMap::new(),
    };
    for op in ops {
        h.step(op);
    }
    // Finally: everything sealed and compacted far in the future (which sets the horizon of the
    // tombstones no compaction kept yet, and keeps them), and once more after
    // `delete_retention_ms`, leaves exactly the live keys.
    h.log().roll().unwrap();
    let now = h.clock + 10 * RETENTION_MS as i64 + 1_000_000_000_000;
    h.compact_at(now);
    h.compact_at(now + RETENTION_MS as i64);
    let live: usize = {
        let mut latest: HashMap<u8, &Rec> = HashMap::new();
        for r in &h.model {
            latest.insert(r.key, r);
        }
        latest.values().filter(|r| r.value.is_some()).count()
    };
    assert_eq!(read_all(h.log(), 1 << 20).len(), live);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn compacted_log_matches_the_model(ops in prop::collection::vec(op(), 1..60)) {
        run(&ops, false);
    }

    #[test]
    fn compacted_log_append_time_matches_the_model(ops in prop::collection::vec(op(), 1..40)) {
        run(&ops, true);
    }
}
