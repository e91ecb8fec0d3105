//! Append path: `Log::append` of a pre-built batch, against a plain file written with
//! `std::fs::File` in the same benchmark group.
//!
//! Groups (each reports records/s, `Throughput::Elements`):
//! - `append_{100B,1KiB}_never`: `FlushPolicy::Manual`, batches of 1, 10, 100, 1000 records.
//!   Baseline `file_baseline`: the same batch bytes through a `BufWriter<File>`, never synced.
//! - `append_{100B,1KiB}_every_batch`: `FlushPolicy::EveryAppend` (one fsync per batch).
//!   Baseline: `write` + `File::sync_data` per batch.
//! - `group_commit_every_append`: 1 vs 4 threads appending 1-record batches to one
//!   `EveryAppend` log; records/s of all threads together.
//! - `roll_worst_append`: the worst single append among the appends that fill one segment and
//!   cross into the next (the one that rolls is where a stall would be), batches of 100 × 100 B
//!   on a `Manual` log with `RIVERBED_BENCH_ROLL_MB` (default 64) MiB segments, so the rolled
//!   segment's data is dirty in the page cache when it is sealed. Each iteration reports that
//!   worst latency, so the mean is the typical worst append per segment. Issue 16's target is
//!   that it stays under 10 ms: the roll hands the seal (msync, cut, fsync) to a background
//!   thread. Baseline `file_baseline`: the same appends to a `BufWriter<File>` that rolls to a
//!   new file at the same size (and syncs nothing).
//!
//! Both sides keep one target open across warm-up and measurement (memory that has been idle for
//! a while is slow to touch again on some virtual machines, so fresh files per sample would
//! measure that instead). Both roll to a new file every `RIVERBED_BENCH_SEGMENT_MB` (default
//! 256) MiB and keep about two files, so disk use stays bounded however long the run. The log
//! seals (and so syncs) each full segment; the baseline does not sync, it only rolls. Set
//! `RIVERBED_BENCH_DIR=/dev/shm` to run on tmpfs, where syncs cost nothing, to see the CPU cost of
//! the append path without the disk.
//!
//! ```sh
//! cargo bench --bench segment_append -- --warm-up-time 3 --measurement-time 5
//! cargo bench --bench segment_append -- append_100B_never      # one group
//! ```
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use riverbed::{Compression, FlushPolicy, Log, LogConfig, RecordBatch};

mod common;

const BATCH_SIZES: [usize; 4] = [1, 10, 100, 1000];
const VALUE_SIZES: [(&str, usize); 2] = [("100B", 100), ("1KiB", 1024)];

fn segment_bytes() -> u64 {
    common::env_usize("RIVERBED_BENCH_SEGMENT_MB", 256) as u64 * (1 << 20)
}

/// A log in a temporary directory, open for the whole benchmark.
struct LogTarget {
    log: Option<Log>,
    _dir: tempfile::TempDir,
}

impl LogTarget {
    fn open(flush: FlushPolicy) -> LogTarget {
        Self::open_with(flush, segment_bytes())
    }

    fn open_with(flush: FlushPolicy, segment_bytes: u64) -> LogTarget {
        let dir = common::temp_dir();
        let config = LogConfig::default()
            .segment_bytes(segment_bytes)
            .segment_ms(None)
            .max_message_bytes(4 << 20)
            .flush(flush)
            .retention_ms(None)
            // Sealed segments beyond about two are deleted at each roll.
            .retention_bytes(Some(2 * segment_bytes));
        let log = Log::open(dir.path(), config).expect("open log");
        LogTarget {
            log: Some(log),
            _dir: dir,
        }
    }

    fn log(&self) -> &Log {
        self.log.as_ref().expect("log is open")
    }
}

impl Drop for LogTarget {
    fn drop(&mut self) {
        if let Some(log) = self.log.take() {
            log.close().expect("close log");
        }
    }
}

/// The baseline: append the same bytes to a plain file, rolling to a new file at the log's
/// segment size and deleting the one before the previous, like the log's retention.
struct FileTarget {
    dir: tempfile::TempDir,
    out: BufWriter<File>,
    generation: u64,
    written: u64,
    roll_at: u64,
    sync: bool,
}

impl FileTarget {
    fn open(sync: bool) -> FileTarget {
        Self::open_with(sync, segment_bytes())
    }

    fn open_with(sync: bool, roll_at: u64) -> FileTarget {
        let dir = common::temp_dir();
        let out = BufWriter::new(File::create(Self::path_in(&dir, 0)).expect("create file"));
        FileTarget {
            dir,
            out,
            generation: 0,
            written: 0,
            roll_at,
            sync,
        }
    }

    fn path_in(dir: &tempfile::TempDir, generation: u64) -> PathBuf {
        dir.path().join(format!("{generation:020}.data"))
    }

    fn append(&mut self, bytes: &[u8]) {
        if self.written + bytes.len() as u64 > self.roll_at {
            self.out.flush().expect("flush");
            self.generation += 1;
            let file = File::create(Self::path_in(&self.dir, self.generation)).expect("create");
            self.out = BufWriter::new(file);
            self.written = 0;
            if let Some(old) = self.generation.checked_sub(3) {
                let _ = std::fs::remove_file(Self::path_in(&self.dir, old));
            }
        }
        self.out.write_all(bytes).expect("write");
        self.written += bytes.len() as u64;
        if self.sync {
            self.out.flush().expect("flush");
            self.out.get_ref().sync_data().expect("fdatasync");
        }
    }
}

fn append_groups(c: &mut Criterion) {
    for (size_name, value_len) in VALUE_SIZES {
        for (policy_name, flush, sync) in [
            ("never", FlushPolicy::Manual, false),
            ("every_batch", FlushPolicy::EveryAppend, true),
        ] {
            let mut group = c.benchmark_group(format!("append_{size_name}_{policy_name}"));
            if sync {
                group.sample_size(10);
            }
            for n in BATCH_SIZES {
                let batch: RecordBatch = common::batch(n, value_len, Compression::None);
                group.throughput(Throughput::Elements(n as u64));

                let target = LogTarget::open(flush);
                group.bench_with_input(BenchmarkId::new("riverbed", n), &batch, |b, batch| {
                    b.iter(|| target.log().append(batch).expect("append"))
                });
                drop(target);

                let mut file = FileTarget::open(sync);
                group.bench_with_input(BenchmarkId::new("file_baseline", n), &batch, |b, batch| {
                    b.iter(|| file.append(batch.as_bytes()))
                });
            }
            group.finish();
        }
    }
}

fn group_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("group_commit_every_append");
    group.sample_size(10);
    let batch = common::batch(1, 100, Compression::None);
    let target = LogTarget::open(FlushPolicy::EveryAppend);
    for threads in [1usize, 4] {
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_with_input(
            BenchmarkId::new("threads", threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| {
                    let log = target.log();
                    let start = Instant::now();
                    std::thread::scope(|s| {
                        for _ in 0..threads {
                            s.spawn(|| {
                                for _ in 0..iters {
                                    log.append(&batch).expect("append");
                                }
                            });
                        }
                    });
                    start.elapsed()
                })
            },
        );
    }
    group.finish();
}

/// The worst latency of one append among `count` appends done by `append`.
fn worst_of(count: u64, mut append: impl FnMut()) -> Duration {
    let mut worst = Duration::ZERO;
    for _ in 0..count {
        let start = Instant::now();
        append();
        worst = worst.max(start.elapsed());
    }
    worst
}

fn roll_worst_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("roll_worst_append");
    group.sample_size(10);
    let roll_bytes = common::env_usize("RIVERBED_BENCH_ROLL_MB", 64) as u64 * (1 << 20);
    let batch = common::batch(100, 100, Compression::None);
    // Enough appends to fill a segment and cross into the next: every iteration rolls once.
    let per_segment = roll_bytes / batch.len() as u64 + 1;

    let target = LogTarget::open_with(FlushPolicy::Manual, roll_bytes);
    group.bench_function("riverbed", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    worst_of(per_segment, || {
                        target.log().append(&batch).expect("append");
                    })
                })
                .sum()
        })
    });
    drop(target);

    let mut file = FileTarget::open_with(false, roll_bytes);
    group.bench_function("file_baseline", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| worst_of(per_segment, || file.append(batch.as_bytes())))
                .sum()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(3));
    targets = append_groups, group_commit, roll_worst_append
}
criterion_main!(benches);
