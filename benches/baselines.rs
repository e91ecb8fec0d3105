//! Riverbed against two yardsticks on the same workloads, side by side in one criterion run, so
//! that every figure reads as a ratio (issue 16).
//!
//! ```sh
//! cargo bench --bench baselines                 # everything, a few minutes on 2 cores
//! cargo bench --bench baselines -- scan_reopened # one workload (a criterion name filter)
//! ```
//!
//! # Rows (the `system` part of each benchmark id)
//!
//! - `file`: a hand-rolled log, the "as simple as possible" bar. One file of
//!   `[len u32][crc32 u32][key ++ value]` per record written through a 256 KiB `BufWriter`, CRC by
//!   `crc32fast`; an in-memory `Vec<u64>` of record positions as the offset index, rebuilt at open
//!   by reading the whole file and checking every CRC; scans through a 1 MiB `BufReader` checking
//!   every CRC; point reads by one `pread` of the record, CRC checked; sync = flush +
//!   `fdatasync`. The same design as the team's peer harness (`../shared/peers`, adapter
//!   `baseline`), written again here.
//! - `commitlog`: the `commitlog` 0.2 crate (a dev-dependency only), the closest Rust peer:
//!   segments + memory-mapped offset index, default options (1 GB segments), the key in the
//!   message metadata. Its reads check a CRC-32C per message. Its `flush` does not fsync the
//!   segment (it calls `File::flush`, a no-op), so for `append_fsync` this row also
//!   `fdatasync`s its segment file through a descriptor of its own after every `flush`: the row
//!   then pays for the same durability as the others.
//! - `riverbed_log`: one [`riverbed::Log`] with `LogConfig::default()` (1 GiB segments,
//!   `FlushPolicy::Manual`, no compression), through its fastest honest public path: one record
//!   batch per batch of 100 from a reused `BatchBuilder` (`build_into` a reused `RecordBatch`),
//!   `Log::append`; sync = `Log::flush`; scans by `Log::read_into(from, 1 MiB, ..)` into one
//!   reused vector (every batch returned passed its CRC check, on its first read since the log
//!   was opened: each scan reopens the log, so a scan checks every batch) and decoding in place;
//!   a point read is `Log::read_into(offset, 1, ..)` (the one batch holding it; its CRC is checked
//!   on the first read of that batch since the log was opened, see `Log::read`) and `skip_to`.
//! - `riverbed_store`: the user-facing path: a `Store` with one topic of one partition
//!   (`TopicConfig::new(1)`, the same log defaults), `Producer::send_all` of 100
//!   `ProducerRecord::borrowed` records (key and value borrowed, as `riverbed_log`'s builder
//!   borrows them) per batch naming partition 0, sync = `Producer::flush`; scans by `seek` +
//!   `poll` on a consumer without a group (`max_poll_records` 10,000, fetches of 1 MiB); point
//!   reads by `seek` + `poll` on a second consumer with `max_poll_records` 1.
//!
//! # Workloads (the group names)
//!
//! Records have an 8-byte key (the record's offset, little-endian) and a value of
//! incompressible pseudo-random bytes, taken in turn from a pool of [`POOL`] distinct values;
//! batches hold 100 records. Throughput is in records (criterion prints elem/s).
//!
//! - `append_100B`: append [`APPEND_RECORDS`] records with 100 B values, no fsync, into a fresh
//!   directory. The time runs from the first append to the moment every byte is in the kernel's
//!   hands (`file` flushes its `BufWriter`); opening the empty log and closing it are not timed.
//! - `append_1KiB`: the same with 1 KiB values, [`APPEND_1K_RECORDS`] records.
//! - `append_fsync`: [`FSYNC_RECORDS`] records of 100 B, each batch of 100 appended and then made
//!   durable (`fdatasync` for `file`, see the rows for the others).
//! - `scan_reopened`: a log of [`READ_RECORDS`] records of 100 B written and cleanly closed once
//!   (not timed); each iteration reopens it (not timed: `file` rebuilds its index there) and
//!   scans it from offset 0 to the end, as a consumer after a restart would.
//! - `point_read`: [`POINT_READS`] reads of single records by offset on that log (opened once),
//!   in one fixed seeded random order, the same for every system.
//!
//! Every record read back is checked the same way for every system: its offset is the expected
//! one, its key holds that offset, and its value bytes equal the value written (compared in
//! full). The count read must equal the count written; any mismatch aborts the run.
//!
//! # Reading the figures
//!
//! Compare rows within one group of one run: the machine is shared and its speed moves between
//! runs (by 5–15 %, sometimes more, on the team's 2-core VM), but the systems of one group run
//! seconds apart on the same data. The data sets are small (about 22 MB for the 100 B
//! workloads, 52 MB for 1 KiB) so that the whole bench takes minutes: they sit in the page
//! cache, as in the peer harness's runs (`../shared/peers`, 5 M records, 540 MB), whose figures
//! are the long-run check of these. A ratio is the median throughput of a row divided by
//! the median of `file` (or `commitlog`) in the same group; issue 16's targets are written that
//! way (e.g. `riverbed_log` append 100 B ≥ 1.2x `file`). Each sample writes into a fresh
//! temporary directory (under `RIVERBED_BENCH_DIR` if set, else the system temp directory), so
//! the disk's free-space state does not accumulate across samples.
#![allow(missing_docs)]

mod common;

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode};
use criterion::{measurement::WallTime, Throughput};
use riverbed::{
    BatchBuilder, Compression, Consumer, ConsumerConfig, ErrorKind, Log, LogConfig, OffsetReset,
    Producer, ProducerRecord, RecordBatch, Store, TopicConfig, TopicPartition,
};

use common::{now_ms, temp_dir, Rng};

/// Records per batch, for every system and workload.
const BATCH: usize = 100;
/// Records per sample of `append_100B`.
const APPEND_RECORDS: usize = 200_000;
/// Records per sample of `append_1KiB`.
const APPEND_1K_RECORDS: usize = 50_000;
/// Records per sample of `append_fsync` (one sync per batch of 100).
const FSYNC_RECORDS: usize = 10_000;
/// Records in the log that `scan_reopened` and `point_read` read.
const READ_RECORDS: usize = 200_000;
/// Reads per sample of `point_read`.
const POINT_READS: usize = 20_000;
/// Distinct values written in turn (a prime, so value and batch position do not line up).
const POOL: usize = 997;
/// Seed of the values and of the point-read order.
const SEED: u64 = 0x5eed_1e55;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Called with (offset, key, value) for every record read.
type Visit<'a> = &'a mut dyn FnMut(u64, &[u8], &[u8]);

/// One record as handed to `append`.
#[derive(Clone, Copy)]
struct Rec<'a> {
    key: &'a [u8],
    value: &'a [u8],
}

/// One partition of one system: dense offsets from 0 in append order.
trait System: Sized {
    /// The row name in the report.
    const NAME: &'static str;
    /// Creates the log in the empty `dir`, or opens (recovers) what is there.
    fn open(dir: &Path) -> Res<Self>;
    /// Appends a batch in order, without fsync.
    fn append(&mut self, batch: &[Rec<'_>]) -> Res<()>;
    /// Hands everything appended to the kernel (no fsync): the end of a timed append run.
    fn appended(&mut self) -> Res<()> {
        Ok(())
    }
    /// Makes everything appended so far durable.
    fn sync(&mut self) -> Res<()>;
    /// Visits every record from offset 0 to the end in offset order.
    fn scan(&mut self, visit: Visit<'_>) -> Res<()>;
    /// Visits the record at `offset`; an error if there is none.
    fn read(&mut self, offset: u64, visit: Visit<'_>) -> Res<()>;
    /// The next offset to be written.
    fn end(&mut self) -> Res<u64>;
    /// Clean close.
    fn close(self) -> Res<()>;
}

// ---------------------------------------------------------------------------------------------
// file: the hand-rolled log

const FILE_HDR: usize = 8;
const KEY_LEN: usize = 8;

struct FileLog {
    w: BufWriter<File>,
    r: File,
    /// File position of each record, by offset.
    pos: Vec<u64>,
    /// Logical end of the file, including what still sits in the `BufWriter`.
    end: u64,
    buf: Vec<u8>,
}

impl FileLog {
    fn le_u32(b: &[u8]) -> u32 {
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
}

impl System for FileLog {
    const NAME: &'static str = "file";

    fn open(dir: &Path) -> Res<Self> {
        let path = dir.join("log.bin");
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        // Recovery: read and check every record, rebuild the index, cut a torn tail.
        let (mut pos, mut end) = (Vec::new(), 0u64);
        let mut rd = BufReader::with_capacity(1 << 20, f.try_clone()?);
        let (mut hdr, mut body) = ([0u8; FILE_HDR], Vec::new());
        while rd.read_exact(&mut hdr).is_ok() {
            body.resize(Self::le_u32(&hdr[..4]) as usize, 0);
            if rd.read_exact(&mut body).is_err()
                || crc32fast::hash(&body) != Self::le_u32(&hdr[4..])
            {
                break;
            }
            pos.push(end);
            end += (FILE_HDR + body.len()) as u64;
        }
        if f.metadata()?.len() > end {
            f.set_len(end)?;
        }
        f.seek(SeekFrom::Start(end))?;
        let r = f.try_clone()?;
        Ok(FileLog {
            w: BufWriter::with_capacity(256 << 10, f),
            r,
            pos,
            end,
            buf: Vec::new(),
        })
    }

    fn append(&mut self, batch: &[Rec<'_>]) -> Res<()> {
        for rec in batch {
            let mut h = crc32fast::Hasher::new();
            h.update(rec.key);
            h.update(rec.value);
            let len = (rec.key.len() + rec.value.len()) as u32;
            self.w.write_all(&len.to_le_bytes())?;
            self.w.write_all(&h.finalize().to_le_bytes())?;
            self.w.write_all(rec.key)?;
            self.w.write_all(rec.value)?;
            self.pos.push(self.end);
            self.end += (FILE_HDR as u64) + u64::from(len);
        }
        Ok(())
    }

    fn appended(&mut self) -> Res<()> {
        Ok(self.w.flush()?)
    }

    fn sync(&mut self) -> Res<()> {
        self.w.flush()?;
        Ok(self.w.get_ref().sync_data()?)
    }

    fn scan(&mut self, visit: Visit<'_>) -> Res<()> {
        self.w.flush()?;
        let mut f = self.r.try_clone()?;
        f.seek(SeekFrom::Start(0))?;
        let mut rd = BufReader::with_capacity(1 << 20, f);
        let mut hdr = [0u8; FILE_HDR];
        for off in 0..self.pos.len() as u64 {
            rd.read_exact(&mut hdr)?;
            self.buf.resize(Self::le_u32(&hdr[..4]) as usize, 0);
            rd.read_exact(&mut self.buf)?;
            if crc32fast::hash(&self.buf) != Self::le_u32(&hdr[4..]) || self.buf.len() < KEY_LEN {
                return Err(format!("file: bad record at offset {off}").into());
            }
            visit(off, &self.buf[..KEY_LEN], &self.buf[KEY_LEN..]);
        }
        Ok(())
    }

    fn read(&mut self, offset: u64, visit: Visit<'_>) -> Res<()> {
        self.w.flush()?;
        let p = *self
            .pos
            .get(offset as usize)
            .ok_or_else(|| format!("file: no offset {offset}"))?;
        let next = self
            .pos
            .get(offset as usize + 1)
            .copied()
            .unwrap_or(self.end);
        self.buf.resize((next - p) as usize, 0);
        self.r.read_exact_at(&mut self.buf, p)?;
        let (hdr, body) = self.buf.split_at(FILE_HDR);
        if crc32fast::hash(body) != Self::le_u32(&hdr[4..]) || body.len() < KEY_LEN {
            return Err(format!("file: bad record at offset {offset}").into());
        }
        visit(offset, &body[..KEY_LEN], &body[KEY_LEN..]);
        Ok(())
    }

    fn end(&mut self) -> Res<u64> {
        Ok(self.pos.len() as u64)
    }

    fn close(mut self) -> Res<()> {
        Ok(self.w.flush()?)
    }
}

// ---------------------------------------------------------------------------------------------
// commitlog 0.2

struct CommitLogSys {
    log: commitlog::CommitLog,
    dir: PathBuf,
    /// Its segment file, opened once for `sync`'s fdatasync.
    segment: File,
    buf: commitlog::message::MessageBuf,
    /// Bytes asked for by a point read; doubled when one message does not fit.
    point_limit: usize,
}

impl System for CommitLogSys {
    const NAME: &'static str = "commitlog";

    fn open(dir: &Path) -> Res<Self> {
        let log = commitlog::CommitLog::new(commitlog::LogOptions::new(dir))?;
        let segments = commitlog_segments(dir)?;
        let [path] = segments.as_slice() else {
            return Err(format!("commitlog: {} segments in {dir:?}", segments.len()).into());
        };
        Ok(CommitLogSys {
            log,
            segment: File::open(path)?,
            dir: dir.to_path_buf(),
            buf: commitlog::message::MessageBuf::default(),
            point_limit: 256,
        })
    }

    fn append(&mut self, batch: &[Rec<'_>]) -> Res<()> {
        self.buf.clear();
        for r in batch {
            self.buf
                .push_with_metadata(r.key, r.value)
                .map_err(|e| format!("commitlog: {e:?}"))?;
        }
        self.log.append(&mut self.buf)?;
        Ok(())
    }

    fn sync(&mut self) -> Res<()> {
        self.log.flush()?;
        // `flush` leaves the segment's data unsynced (see the module doc): fdatasync it through
        // our own descriptor. The workloads stay in its first 1 GB segment (`close` checks).
        Ok(self.segment.sync_data()?)
    }

    fn scan(&mut self, visit: Visit<'_>) -> Res<()> {
        use commitlog::message::MessageSet;
        let mut from = 0;
        loop {
            // MessageBuf::from_bytes checks each message's CRC-32C
            let set = self
                .log
                .read(from, commitlog::ReadLimit::max_bytes(1 << 20))?;
            if set.len() == 0 {
                return Ok(());
            }
            for m in set.iter() {
                visit(m.offset(), m.metadata(), m.payload());
                from = m.offset() + 1;
            }
        }
    }

    fn read(&mut self, offset: u64, visit: Visit<'_>) -> Res<()> {
        use commitlog::message::MessageSet;
        loop {
            match self
                .log
                .read(offset, commitlog::ReadLimit::max_bytes(self.point_limit))
            {
                Ok(set) => {
                    let m = set
                        .iter()
                        .next()
                        .ok_or_else(|| format!("commitlog: no offset {offset}"))?;
                    visit(m.offset(), m.metadata(), m.payload());
                    return Ok(());
                }
                // the limit was smaller than one message: grow it and retry
                Err(commitlog::ReadError::Io(e))
                    if e.kind() == std::io::ErrorKind::InvalidInput
                        && self.point_limit < 1 << 24 =>
                {
                    self.point_limit *= 2;
                }
                Err(e) => return Err(format!("commitlog: read {offset}: {e:?}").into()),
            }
        }
    }

    fn end(&mut self) -> Res<u64> {
        Ok(self.log.next_offset())
    }

    fn close(self) -> Res<()> {
        let segments = commitlog_segments(&self.dir)?.len();
        if segments != 1 {
            return Err(
                format!("commitlog: rolled to {segments} segments; sync missed some").into(),
            );
        }
        Ok(())
    }
}

/// commitlog's segment files (`*.log`) in `dir`.
fn commitlog_segments(dir: &Path) -> Res<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "log") {
            out.push(path);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// riverbed_log: one Log

/// Bytes per `Log::read` while scanning: what the consumer fetches per partition by default.
const FETCH_BYTES: usize = 1 << 20;

struct RiverbedLog {
    log: Log,
    builder: BatchBuilder,
    encoded: Option<RecordBatch>,
    /// The batches of the last read (`Log::read_into` reuses it).
    batches: Vec<riverbed::BatchView>,
}

/// Visits the records of `batches` from offset `from` on; returns the offset after the last.
fn visit_batches(batches: &[riverbed::BatchView], from: u64, visit: Visit<'_>) -> Res<()> {
    for b in batches {
        let records = b.records()?;
        let mut it = records.iter();
        if b.base_offset() < from {
            it.skip_to(from)?;
        }
        for r in it {
            let r = r?;
            let (Some(k), Some(v)) = (r.key(), r.value()) else {
                return Err(format!("riverbed: record {} has no key or value", r.offset()).into());
            };
            visit(r.offset(), k, v);
        }
    }
    Ok(())
}

impl System for RiverbedLog {
    const NAME: &'static str = "riverbed_log";

    fn open(dir: &Path) -> Res<Self> {
        Ok(RiverbedLog {
            log: Log::open(dir, LogConfig::default())?,
            builder: BatchBuilder::new(Compression::None),
            encoded: None,
            batches: Vec::new(),
        })
    }

    fn append(&mut self, batch: &[Rec<'_>]) -> Res<()> {
        let ts = now_ms();
        self.builder.clear();
        for r in batch {
            self.builder.append(ts, Some(r.key), Some(r.value), &[]);
        }
        // There is no public empty RecordBatch: the first batch is built, later ones reuse it.
        match &mut self.encoded {
            Some(e) => self.builder.build_into(e)?,
            None => self.encoded = Some(self.builder.build()?),
        }
        let encoded = self
            .encoded
            .as_ref()
            .ok_or("riverbed_log: no batch built")?;
        self.log.append(encoded)?;
        Ok(())
    }

    fn sync(&mut self) -> Res<()> {
        Ok(self.log.flush()?)
    }

    fn scan(&mut self, visit: Visit<'_>) -> Res<()> {
        let mut from = 0;
        loop {
            // every batch returned has had its framing and CRC checked
            self.log.read_into(from, FETCH_BYTES, &mut self.batches)?;
            let Some(last) = self.batches.last() else {
                return Ok(());
            };
            let next = last.last_offset() + 1;
            visit_batches(&self.batches, from, visit)?;
            from = next;
        }
    }

    fn read(&mut self, offset: u64, visit: Visit<'_>) -> Res<()> {
        // max_bytes 1: exactly the one batch holding `offset`, CRC-checked on its first read
        self.log.read_into(offset, 1, &mut self.batches)?;
        let b = self
            .batches
            .first()
            .ok_or_else(|| format!("riverbed_log: no offset {offset}"))?;
        let records = b.records()?;
        let mut it = records.iter();
        it.skip_to(offset)?;
        let r = it
            .next()
            .ok_or_else(|| format!("riverbed_log: no offset {offset}"))??;
        let (Some(k), Some(v)) = (r.key(), r.value()) else {
            return Err(format!("riverbed_log: record {offset} has no key or value").into());
        };
        visit(r.offset(), k, v);
        Ok(())
    }

    fn end(&mut self) -> Res<u64> {
        Ok(self.log.high_watermark())
    }

    fn close(self) -> Res<()> {
        Ok(self.log.close()?)
    }
}

// ---------------------------------------------------------------------------------------------
// riverbed_store: Store / Producer / Consumer

const TOPIC: &str = "bench";

struct RiverbedStore {
    scanner: Consumer,
    pointer: Consumer,
    producer: Producer,
    store: Store,
    topic: Arc<str>,
    tp: TopicPartition,
}

impl System for RiverbedStore {
    const NAME: &'static str = "riverbed_store";

    fn open(dir: &Path) -> Res<Self> {
        let store = Store::open(dir)?;
        store.create_topic_if_absent(TOPIC, TopicConfig::new(1))?;
        let tp = TopicPartition::new(TOPIC, 0);
        let consumer = |max_poll_records, reset| -> Res<Consumer> {
            let mut c = store.consumer(
                ConsumerConfig::default()
                    .enable_auto_commit(false)
                    .auto_offset_reset(reset)
                    .max_poll_records(max_poll_records),
            )?;
            c.assign(std::slice::from_ref(&tp))?;
            Ok(c)
        };
        let scanner = consumer(10_000, OffsetReset::Earliest)?;
        // no reset: a position past the end is an error, not a jump to offset 0
        let pointer = consumer(1, OffsetReset::None)?;
        Ok(RiverbedStore {
            scanner,
            pointer,
            producer: store.producer(),
            store,
            topic: Arc::from(TOPIC),
            tp,
        })
    }

    fn append(&mut self, batch: &[Rec<'_>]) -> Res<()> {
        // Borrowed records: the producer's zero-copy path, as `riverbed_log`'s builder borrows.
        let records = batch.iter().map(|r| {
            ProducerRecord::borrowed(Arc::clone(&self.topic))
                .partition(0)
                .key(r.key)
                .value(r.value)
        });
        Ok(self.producer.send_all(records)?)
    }

    fn sync(&mut self) -> Res<()> {
        Ok(self.producer.flush()?)
    }

    fn scan(&mut self, visit: Visit<'_>) -> Res<()> {
        self.scanner.seek(&self.tp, 0)?;
        loop {
            let polled = self.scanner.poll(Duration::ZERO)?;
            if polled.is_empty() {
                return Ok(());
            }
            for r in polled.iter() {
                let (Some(k), Some(v)) = (r.key(), r.value()) else {
                    return Err(
                        format!("riverbed_store: record {} has no value", r.offset()).into(),
                    );
                };
                visit(r.offset(), k, v);
            }
        }
    }

    fn read(&mut self, offset: u64, visit: Visit<'_>) -> Res<()> {
        self.pointer.seek(&self.tp, offset)?;
        let polled = match self.pointer.poll(Duration::ZERO) {
            Ok(p) => p,
            Err(e) if matches!(e.kind(), ErrorKind::NoOffset { .. }) => {
                return Err(format!("riverbed_store: no offset {offset}").into())
            }
            Err(e) => return Err(e.into()),
        };
        let r = polled
            .iter()
            .next()
            .ok_or_else(|| format!("riverbed_store: no offset {offset}"))?;
        let (Some(k), Some(v)) = (r.key(), r.value()) else {
            return Err(format!("riverbed_store: record {offset} has no value").into());
        };
        visit(r.offset(), k, v);
        Ok(())
    }

    fn end(&mut self) -> Res<u64> {
        Ok(self.scanner.end_offsets(std::slice::from_ref(&self.tp))?[0].1)
    }

    fn close(self) -> Res<()> {
        let RiverbedStore {
            scanner,
            pointer,
            producer,
            store,
            ..
        } = self;
        drop((scanner, pointer, producer));
        Ok(store.close()?)
    }
}

// ---------------------------------------------------------------------------------------------
// data and checks

/// What is written: the keys of offsets `0..n` (made before any timing starts) and the values,
/// `POOL` incompressible ones of one length taken in turn.
struct Values {
    keys: Vec<[u8; KEY_LEN]>,
    pool: Vec<Vec<u8>>,
}

impl Values {
    fn new(len: usize, n: usize) -> Values {
        let mut rng = Rng::new(SEED ^ len as u64);
        Values {
            keys: (0..n as u64).map(u64::to_le_bytes).collect(),
            pool: (0..POOL)
                .map(|_| (0..len).map(|_| rng.next_u64() as u8).collect())
                .collect(),
        }
    }

    fn of(&self, offset: u64) -> &[u8] {
        &self.pool[(offset % POOL as u64) as usize]
    }
}

/// Appends records `0..n` in batches of [`BATCH`], syncing after each batch if `sync`.
fn write<S: System>(sys: &mut S, values: &Values, n: usize, sync: bool) -> Res<()> {
    let mut batch = Vec::with_capacity(BATCH);
    for start in (0..n).step_by(BATCH) {
        batch.clear();
        batch.extend((start..n.min(start + BATCH)).map(|i| Rec {
            key: &values.keys[i],
            value: values.of(i as u64),
        }));
        sys.append(&batch)?;
        if sync {
            sys.sync()?;
        }
    }
    Ok(())
}

/// Counts and checks records read back: the expected offset, the offset in the key, and the
/// value bytes in full.
struct Check<'v> {
    values: &'v Values,
    seen: u64,
    bad: u64,
}

impl<'v> Check<'v> {
    fn new(values: &'v Values) -> Check<'v> {
        Check {
            values,
            seen: 0,
            bad: 0,
        }
    }

    fn record(&mut self, expected: u64, offset: u64, key: &[u8], value: &[u8]) {
        self.seen += 1;
        if offset != expected || key != expected.to_le_bytes() || value != self.values.of(expected)
        {
            self.bad += 1;
        }
    }

    fn assert(&self, system: &str, expected: u64) {
        assert!(
            self.bad == 0 && self.seen == expected,
            "{system}: {} records read, {expected} expected, {} did not match what was written",
            self.seen,
            self.bad
        );
    }
}

fn config(group: &mut BenchmarkGroup<'_, WallTime>, records: usize) {
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(records as u64));
}

// ---------------------------------------------------------------------------------------------
// workloads

/// One timed append run per iteration, each into a fresh directory.
fn append_run<S: System>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    values: &Values,
    n: usize,
    sync: bool,
) {
    group.bench_function(S::NAME, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = temp_dir();
                let mut sys = S::open(dir.path()).expect("open");
                let t = Instant::now();
                write(&mut sys, values, n, sync).expect("append");
                sys.appended().expect("hand to the kernel");
                total += t.elapsed();
                assert_eq!(sys.end().expect("end"), n as u64, "{}: end offset", S::NAME);
                sys.close().expect("close");
            }
            total
        });
    });
}

fn append_workload(c: &mut Criterion, name: &str, value_len: usize, n: usize, sync: bool) {
    let values = Values::new(value_len, n);
    let mut group = c.benchmark_group(name);
    config(&mut group, n);
    append_run::<FileLog>(&mut group, &values, n, sync);
    append_run::<CommitLogSys>(&mut group, &values, n, sync);
    append_run::<RiverbedLog>(&mut group, &values, n, sync);
    append_run::<RiverbedStore>(&mut group, &values, n, sync);
    group.finish();
}

fn append_100b(c: &mut Criterion) {
    append_workload(c, "append_100B", 100, APPEND_RECORDS, false);
}

fn append_1kib(c: &mut Criterion) {
    append_workload(c, "append_1KiB", 1024, APPEND_1K_RECORDS, false);
}

fn append_fsync(c: &mut Criterion) {
    append_workload(c, "append_fsync", 100, FSYNC_RECORDS, true);
}

/// Writes the read workloads' log for `S` and closes it cleanly.
fn read_data<S: System>(values: &Values) -> tempfile::TempDir {
    let dir = temp_dir();
    let mut sys = S::open(dir.path()).expect("open");
    write(&mut sys, values, READ_RECORDS, false).expect("write read data");
    sys.close().expect("close");
    dir
}

fn scan_run<S: System>(group: &mut BenchmarkGroup<'_, WallTime>, values: &Values) {
    // written on first use, so that a filtered-out row costs nothing
    let mut data = None;
    group.bench_function(S::NAME, |b| {
        let dir = data.get_or_insert_with(|| read_data::<S>(values));
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut sys = S::open(dir.path()).expect("reopen");
                let mut check = Check::new(values);
                let mut expected = 0u64;
                let t = Instant::now();
                sys.scan(&mut |offset, key, value| {
                    check.record(expected, offset, key, value);
                    expected += 1;
                })
                .expect("scan");
                total += t.elapsed();
                check.assert(S::NAME, READ_RECORDS as u64);
                sys.close().expect("close");
            }
            total
        });
    });
}

fn scan_reopened(c: &mut Criterion) {
    let values = Values::new(100, READ_RECORDS);
    let mut group = c.benchmark_group("scan_reopened");
    config(&mut group, READ_RECORDS);
    scan_run::<FileLog>(&mut group, &values);
    scan_run::<CommitLogSys>(&mut group, &values);
    scan_run::<RiverbedLog>(&mut group, &values);
    scan_run::<RiverbedStore>(&mut group, &values);
    group.finish();
}

fn point_run<S: System>(group: &mut BenchmarkGroup<'_, WallTime>, values: &Values, order: &[u64]) {
    // written and opened on first use, so that a filtered-out row costs nothing
    let mut data: Option<(tempfile::TempDir, S)> = None;
    group.bench_function(S::NAME, |b| {
        let (_, sys) = data.get_or_insert_with(|| {
            let dir = read_data::<S>(values);
            let sys = S::open(dir.path()).expect("reopen");
            (dir, sys)
        });
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut check = Check::new(values);
                let t = Instant::now();
                for &offset in order {
                    sys.read(offset, &mut |got, key, value| {
                        check.record(offset, got, key, value)
                    })
                    .expect("point read");
                }
                total += t.elapsed();
                check.assert(S::NAME, order.len() as u64);
            }
            total
        });
    });
    if let Some((_dir, sys)) = data {
        sys.close().expect("close");
    }
}

fn point_read(c: &mut Criterion) {
    let values = Values::new(100, READ_RECORDS);
    let mut rng = Rng::new(SEED);
    let order: Vec<u64> = (0..POINT_READS)
        .map(|_| rng.below(READ_RECORDS as u64))
        .collect();
    let mut group = c.benchmark_group("point_read");
    config(&mut group, POINT_READS);
    point_run::<FileLog>(&mut group, &values, &order);
    point_run::<CommitLogSys>(&mut group, &values, &order);
    point_run::<RiverbedLog>(&mut group, &values, &order);
    point_run::<RiverbedStore>(&mut group, &values, &order);
    group.finish();
}

criterion_group!(
    benches,
    append_100b,
    append_1kib,
    append_fsync,
    scan_reopened,
    point_read
);
criterion_main!(benches);
