//! Opening a log: after a clean close (nothing to scan, so open time should not grow with the
//! size of the log) and after a crash (open time should grow with the unflushed tail only).
//!
//! Groups (`sample_size(10)`; times per open):
//! - `open_clean`: `Log::open` of a log of `RIVERBED_BENCH_OPEN_MB` (default `200,2000`) MB of
//!   100-byte records, closed cleanly. Baseline `fs_open_files`: list the directory, open and
//!   stat every file and read the recovery point: the file-system work any open must do.
//! - `open_after_crash`: `Log::open` of a `RIVERBED_BENCH_CRASH_MB` (default 512) MB log whose
//!   last `RIVERBED_BENCH_TAIL_MB` (default `1,32,256`) MiB, and then all of it, were appended
//!   after the recovery point was written (`all`: nothing was ever checkpointed past the start).
//!   Baseline `scan_in_memory`: `internals::scan` over the same tail bytes in a heap buffer,
//!   the framing and CRC work recovery cannot avoid.
//!
//! How the crash is made: the log is closed cleanly after the prefix, reopened, and the tail is
//! appended (FlushPolicy::Manual, so the recovery point stays where the reopen left it). While
//! that handle is still open, the files recovery reads are captured as they are on disk at that
//! moment — the recovery point, the active segment's `.index` and `.timeindex`, and the data past
//! the recovery point — exactly what a process crash would leave (page cache included). Before
//! every timed open the capture is written back, which also makes the tail dirty again as it is
//! after a crash. Every timed open checks in its `RecoveryReport` that it used the checkpoint and
//! scanned exactly the tail.
//!
//! ```sh
//! cargo bench --features internals --bench recovery_open
//! RIVERBED_BENCH_OPEN_MB=20,200 RIVERBED_BENCH_CRASH_MB=64 RIVERBED_BENCH_TAIL_MB=1,16 \
//!     cargo bench --features internals --bench recovery_open                   # quick run
//! ```
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use riverbed::internals::{scan, Checkpoint, FILE_HEADER_LEN};
use riverbed::{Compression, Log, LogConfig, RecordBatch};

mod common;

const MB: u64 = 1_000_000;
const MIB: u64 = 1 << 20;

fn config() -> LogConfig {
    LogConfig::default().segment_ms(None).retention_ms(None)
}

/// Appends batches of 100 records of 100 bytes until the log holds at least `bytes` of data.
fn fill(log: &Log, batch: &RecordBatch, bytes: u64) {
    let start = log.size_in_bytes();
    while log.size_in_bytes() - start < bytes {
        log.append(batch).expect("append");
    }
}

fn open_clean(c: &mut Criterion) {
    let sizes = common::env_list("RIVERBED_BENCH_OPEN_MB", &[200, 2000]);
    let batch = common::batch(100, 100, Compression::None);
    let mut group = c.benchmark_group("open_clean");
    group.sample_size(10);
    for mb in sizes {
        let dir = common::temp_dir();
        let log = Log::open(dir.path(), config()).expect("open");
        fill(&log, &batch, mb as u64 * MB);
        let segments = log.segment_count();
        log.close().expect("close");

        let label = format!("{mb}MB");
        group.bench_function(BenchmarkId::new("riverbed", &label), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let log = Log::open(dir.path(), config()).expect("open");
                    total += start.elapsed();
                    let report = log.recovery_report();
                    assert!(
                        report.checkpoint_used && report.scanned_bytes == 0,
                        "{report:?}"
                    );
                    assert_eq!(log.segment_count(), segments);
                    drop(log);
                }
                total
            })
        });
        group.bench_function(BenchmarkId::new("fs_open_files", &label), |b| {
            b.iter(|| {
                let mut n = 0u64;
                for entry in std::fs::read_dir(dir.path()).expect("list") {
                    let f = File::open(entry.expect("entry").path()).expect("open file");
                    n += f.metadata().expect("stat").len();
                }
                let cp = std::fs::read(dir.path().join("recovery-point")).expect("read");
                black_box((n, cp))
            })
        });
    }
    group.finish();
}

/// Where recovery resumes scanning: the fields of the recovery point this benchmark uses.
#[derive(Clone, Copy, Debug)]
struct Resume {
    next_offset: u64,
    segment_base: u64,
    position: u64,
}

/// What a crash left: the files recovery reads, as they were while the log was open.
struct CrashImage {
    dir: tempfile::TempDir,
    /// The recovery-point file, if there was one.
    recovery_point: Option<Vec<u8>>,
    /// Where recovery starts: the recovery point, or the start of the first segment.
    resume: Resume,
    index: (PathBuf, Vec<u8>),
    time_index: (PathBuf, Vec<u8>),
    data: PathBuf,
    /// The data file's bytes from the recovery point to the end of the last batch.
    tail: Vec<u8>,
}

impl CrashImage {
    /// A log of `total` bytes whose last `tail` bytes (all of it with `None`) come after the
    /// recovery point (or, with `None`, that has no recovery point at all if the log writes none
    /// before its first close).
    fn make(total: u64, tail: Option<u64>, batch: &RecordBatch) -> CrashImage {
        let dir = common::temp_dir();
        if let Some(tail) = tail {
            let log = Log::open(dir.path(), config()).expect("open");
            fill(&log, batch, total.saturating_sub(tail));
            log.close().expect("close");
        }
        let log = Log::open(dir.path(), config()).expect("reopen");
        fill(&log, batch, tail.unwrap_or(total));
        assert_eq!(log.segment_count(), 1, "the tail must fit in one segment");

        // The log is open: capture what a crash now would leave on disk.
        let recovery_point = std::fs::read(dir.path().join("recovery-point")).ok();
        let resume = match &recovery_point {
            Some(bytes) => {
                let cp = Checkpoint::decode(bytes).expect("a valid recovery point");
                Resume {
                    next_offset: cp.next_offset,
                    segment_base: cp.segment_base,
                    position: cp.position,
                }
            }
            None => Resume {
                next_offset: 0,
                segment_base: 0,
                position: FILE_HEADER_LEN as u64,
            },
        };
        let base = resume.segment_base;
        let file = |ext: &str| dir.path().join(format!("{base:020}.{ext}"));
        let (data, index, time_index) = (file("log"), file("index"), file("timeindex"));
        let end = log.size_in_bytes();
        let mut tail = vec![0u8; (end - resume.position) as usize];
        File::open(&data)
            .expect("open data")
            .read_exact_at(&mut tail, resume.position)
            .expect("read tail");
        let index = (index.clone(), std::fs::read(&index).expect("read index"));
        let time_index = (
            time_index.clone(),
            std::fs::read(&time_index).expect("read time index"),
        );
        drop(log); // a clean close; `restore` undoes it

        CrashImage {
            dir,
            recovery_point,
            resume,
            index,
            time_index,
            data,
            tail,
        }
    }

    /// Puts the captured files back, rewriting the tail so that it is dirty in the page cache.
    fn restore(&self) {
        let dir = self.dir.path();
        let recovery_point = dir.join("recovery-point");
        match &self.recovery_point {
            Some(bytes) => std::fs::write(recovery_point, bytes).expect("write"),
            None => match std::fs::remove_file(recovery_point) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("remove recovery point: {e}"),
            },
        }
        std::fs::write(&self.index.0, &self.index.1).expect("write index");
        std::fs::write(&self.time_index.0, &self.time_index.1).expect("write time index");
        OpenOptions::new()
            .write(true)
            .open(&self.data)
            .expect("open data")
            .write_all_at(&self.tail, self.resume.position)
            .expect("rewrite tail");
    }

    /// Opens the crashed log, timed; checks that recovery scanned exactly the tail.
    fn timed_open(&self) -> Duration {
        self.restore();
        let start = Instant::now();
        let log = Log::open(self.dir.path(), config()).expect("open after crash");
        let took = start.elapsed();
        let report = log.recovery_report();
        assert!(
            report.checkpoint_used == self.recovery_point.is_some()
                && report.scanned_bytes == self.tail.len() as u64
                && report.truncation.is_none(),
            "{report:?}"
        );
        drop(log);
        took
    }
}

fn open_after_crash(c: &mut Criterion) {
    let total = common::env_usize("RIVERBED_BENCH_CRASH_MB", 512) as u64 * MB;
    let tails = common::env_list("RIVERBED_BENCH_TAIL_MB", &[1, 32, 256]);
    let batch = common::batch(100, 100, Compression::None);
    let mut group = c.benchmark_group("open_after_crash");
    group.sample_size(10);
    let variants = tails
        .iter()
        .map(|&t| (format!("tail_{t}MiB"), Some(t as u64 * MIB)))
        .chain([("all".to_string(), None)]);
    for (label, tail) in variants {
        let image = CrashImage::make(total, tail, &batch);
        group.bench_function(BenchmarkId::new("riverbed", &label), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| image.timed_open()).sum())
        });
        let from = image.resume.next_offset;
        group.bench_function(BenchmarkId::new("scan_in_memory", &label), |b| {
            b.iter(|| {
                let end = scan(&image.tail, 0, from, 1 << 20, false, |_, _| {});
                assert!(end.error.is_none() && end.end == image.tail.len());
                end.next_offset
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = open_clean, open_after_crash
}
criterion_main!(benches);
