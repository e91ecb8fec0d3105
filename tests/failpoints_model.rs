//! Fault injection at every named I/O site (feature `failpoints`; CI runs `--all-features`).
//!
//! For every site of `riverbed::failpoint::sites::ALL` and for its 1st, 2nd, ... hit, a workload
//! (appends across segment rolls, flushes, compaction, a close) runs on a compacted log with that
//! hit failing once, and the contract is checked:
//! - a full disk (`ENOSPC`) at an allocation, creation or temp-file site is `NoSpace`: nothing
//!   acknowledged is lost and the same handle keeps working once the fault has passed;
//! - at a sync or data-write site (after bytes may have gone out) the log is poisoned instead, as
//!   ever (ARCHITECTURE.md, "fsync is never retried");
//! - either way a reopen finds every acknowledged record at its offset (compaction may remove a
//!   record only for a later one of its key), and the log appends again.
//!
//! `EIO` at a sync site poisons the log and a reopen recovers.
#![cfg(feature = "failpoints")]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use riverbed::failpoint::{self, sites};
use riverbed::{
    BatchBuilder, CleanupPolicy, CompactionConfig, Compression, ErrorKind, FlushPolicy, Log,
    LogConfig, RecordBatch,
};

fn config(flush: FlushPolicy) -> LogConfig {
    LogConfig::default()
        .flush(flush)
        .segment_bytes(16 << 10)
        .segment_ms(None)
        .retention_ms(None)
        .max_message_bytes(8 << 10)
        .cleanup_policy(CleanupPolicy::Compact)
        .min_compaction_lag_ms(0)
}

fn batch(n: u64) -> RecordBatch {
    let mut b = BatchBuilder::new(Compression::None);
    let key = (n % 5).to_le_bytes();
    b.append(
        1_700_000_000_000 + n as i64,
        Some(&key),
        Some(&vec![(n % 251) as u8; 1500]),
        &[],
    );
    b.build().unwrap()
}

/// The sites where bytes may already have gone out: a failure there poisons.
fn unclean(site: &str) -> bool {
    [
        sites::SEGMENT_FSYNC,
        sites::SEGMENT_WRITE,
        sites::FILE_FSYNC,
    ]
    .contains(&site)
}

/// Every record read back must be one acknowledged at that offset, and every key's last
/// acknowledged record must be there.
///
/// After a reopen, a batch whose append failed (unacknowledged) may still be found past the
/// acknowledged end: that is allowed, as in Kafka.
fn check(log: &Log, acked: &BTreeMap<u64, u64>, what: &str) {
    let acked_end = acked.keys().last().map_or(0, |o| o + 1);
    let mut read = BTreeMap::new();
    let mut at = log.log_start_offset();
    while at < log.high_watermark() {
        let batches = log.read(at, 1 << 20).unwrap();
        if batches.is_empty() {
            break;
        }
        for b in &batches {
            for r in b.records().unwrap().iter() {
                let r = r.unwrap();
                if r.offset() >= acked_end {
                    continue;
                }
                if r.offset() >= at {
                    let n = *acked
                        .get(&r.offset())
                        .unwrap_or_else(|| panic!("{what}: offset {} never acked", r.offset()));
                    assert_eq!(
                        r.value().unwrap(),
                        &vec![(n % 251) as u8; 1500][..],
                        "{what}"
                    );
                    read.insert(r.offset(), n);
                }
            }
            at = b.last_offset() + 1;
        }
    }
    let mut last_of_key = BTreeMap::new();
    for (&offset, &n) in acked {
        last_of_key.insert(n % 5, offset);
    }
    for (key, offset) in last_of_key {
        assert!(
            read.contains_key(&offset),
            "{what}: key {key}'s last record at {offset} is gone"
        );
    }
}

/// Runs the workload with `site`'s `nth` hit failing with `errno`; returns whether it fired.
fn run(root: &Path, site: &'static str, nth: u64, errno: i32, flush: FlushPolicy) -> bool {
    let dir = root.join(format!(
        "{}-{nth}-{errno}-{flush:?}",
        site.replace('.', "_")
    ));
    let what = format!("{site} hit {nth} errno {errno} {flush:?}");
    let log = Log::open(&dir, config(flush)).unwrap();
    let mut acked = BTreeMap::new();
    let mut n = 0u64;
    let mut poisoned = false;
    failpoint::arm(site, &dir, nth, errno);
    for step in 0..60u64 {
        let result = match step % 20 {
            7 => log.flush().map(|_| ()),
            13 => log.compact(&CompactionConfig::default()).map(|_| ()),
            _ => log.append(&batch(n)).map(|info| {
                let expected = acked.keys().last().map_or(0, |o| o + 1);
                assert_eq!(info.base_offset, expected, "{what}: offsets are dense");
                acked.insert(info.base_offset, n);
                n += 1;
            }),
        };
        if let Err(e) = result {
            match e.kind() {
                ErrorKind::NoSpace { .. } => {
                    assert_eq!(errno, failpoint::ENOSPC, "{what}: {e}");
                }
                ErrorKind::Io { .. } | ErrorKind::Poisoned { .. } => {
                    assert!(
                        unclean(site) || errno != failpoint::ENOSPC,
                        "{what}: a full disk at a clean site must be NoSpace, not {e}"
                    );
                    poisoned = true;
                    break;
                }
                _ => panic!("{what}: unexpected {e}"),
            }
        }
    }
    let fired = failpoint::disarm(&dir);
    check(&log, &acked, &what);
    if !poisoned {
        // Still usable without a reopen: unless a flush/compaction call poisoned it silently.
        match log.append(&batch(n)) {
            Ok(info) => {
                acked.insert(info.base_offset, n);
                n += 1;
                log.flush().unwrap();
            }
            Err(e) => {
                assert!(
                    unclean(site) && matches!(e.kind(), ErrorKind::Poisoned { .. }),
                    "{what}: after the fault: {e}"
                );
                poisoned = true;
            }
        }
    }
    if poisoned {
        drop(log);
    } else {
        log.close().unwrap();
    }
    let log = common::retry_locked(|| Log::open(&dir, config(flush)));
    // An EveryAppend log acknowledges only what is durable; a Manual one only what a clean
    // close (or flush) made durable is promised, and a poisoned close is not clean.
    let durable: BTreeMap<u64, u64> = if poisoned && flush == FlushPolicy::Manual {
        acked
            .iter()
            .filter(|(o, _)| **o < log.high_watermark())
            .map(|(o, v)| (*o, *v))
            .collect()
    } else {
        let acked_end = acked.keys().last().map_or(0, |o| o + 1);
        if poisoned {
            assert!(
                log.high_watermark() >= acked_end,
                "{what}: offsets after reopen"
            );
        } else {
            assert_eq!(
                log.high_watermark(),
                acked_end,
                "{what}: offsets after reopen"
            );
        }
        acked.clone()
    };
    check(&log, &durable, &format!("{what}, reopened"));
    let before = log.high_watermark();
    let info = log.append(&batch(n)).unwrap();
    assert_eq!(info.base_offset, before);
    fired
}

#[test]
fn enospc_at_every_site_is_clean_or_poisons_and_reopen_is_consistent() {
    let root = tempfile::tempdir().unwrap();
    for flush in [FlushPolicy::EveryAppend, FlushPolicy::Manual] {
        for &site in sites::ALL {
            let mut fired_any = false;
            for nth in [1, 4] {
                fired_any |= run(root.path(), site, nth, failpoint::ENOSPC, flush);
            }
            assert!(
                fired_any || site == sites::SEGMENT_WRITE && flush == FlushPolicy::Manual,
                "site {site} was never reached ({flush:?})"
            );
        }
    }
}

#[test]
fn eio_at_a_sync_site_poisons_and_reopen_recovers() {
    let root = tempfile::tempdir().unwrap();
    for nth in [1, 3, 10] {
        assert!(run(
            root.path(),
            sites::SEGMENT_FSYNC,
            nth,
            failpoint::EIO,
            FlushPolicy::EveryAppend
        ));
    }
}

/// A roll that died after creating the new segment's data file and before its indexes, on a
/// disk that is now full: the log opens (the empty segment is dropped and created by the first
/// append once there is room), serves every record, and appends after the fault.
#[test]
fn a_half_created_segment_on_a_full_disk_does_not_stop_the_open() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    let config = config(FlushPolicy::EveryAppend);
    let log = Log::open(&dir, config.clone()).unwrap();
    let mut acked = BTreeMap::new();
    for n in 0..30 {
        acked.insert(log.append(&batch(n)).unwrap().base_offset, n);
    }
    log.roll().unwrap();
    let next = log.high_watermark();
    log.close().unwrap();
    // What a crash in the middle of creating segment `next` leaves: its data file, no indexes.
    for ext in ["index", "timeindex"] {
        std::fs::remove_file(dir.join(format!("{next:020}.{ext}"))).unwrap();
    }
    std::fs::remove_file(dir.join("recovery-point")).unwrap();
    failpoint::arm(sites::SEGMENT_HEADER, &dir, 1, failpoint::ENOSPC);
    failpoint::arm(sites::SEGMENT_CREATE, &dir, 1, failpoint::ENOSPC);
    let log = common::retry_locked(|| Log::open(&dir, config.clone()));
    assert!(failpoint::fired(sites::SEGMENT_HEADER, &dir));
    assert!(
        !log.recovery_report().deferred_writes.is_empty(),
        "{:?}",
        log.recovery_report()
    );
    assert_eq!(log.high_watermark(), next);
    check(&log, &acked, "opened on a full disk");
    failpoint::disarm(&dir);
    let info = log.append(&batch(30)).unwrap();
    assert_eq!(info.base_offset, next);
    acked.insert(next, 30);
    log.close().unwrap();
    let log = common::retry_locked(|| Log::open(&dir, config.clone()));
    check(&log, &acked, "reopened");
}

/// Recovery after a crash on a disk that is now full: the scan finds batches past the recovery
/// point whose index entries need room that is not there. The log still opens (the segment is
/// sealed where it stands, its indexes kept in memory), serves every record, and appends once
/// there is room; a reopen is consistent.
#[test]
fn crash_recovery_on_a_full_disk_opens_without_room_for_index_entries() {
    let root = tempfile::tempdir().unwrap();
    // No recovery point during the run: the scan at open covers the last segment's batches.
    let config = config(FlushPolicy::EveryAppend)
        .recovery_checkpoint_bytes(1 << 30)
        .index_interval_bytes(1024);
    let log = Log::open(root.path().join("log"), config.clone()).unwrap();
    let mut acked = BTreeMap::new();
    for n in 0..14 {
        acked.insert(log.append(&batch(n)).unwrap().base_offset, n);
    }
    // The files as a crash leaves them: copied while the log is open.
    let crashed = common::copy_dir(&root.path().join("log"));
    drop(log);
    let dir = crashed.path().to_path_buf();
    // A disk that stays full: every allocation and every new file fails until disarmed.
    for site in [sites::SEGMENT_ALLOCATE, sites::FILE_CREATE] {
        failpoint::arm_times(site, &dir, 1, u64::MAX, failpoint::ENOSPC);
    }
    let log = common::retry_locked(|| Log::open(&dir, config.clone()));
    assert!(failpoint::fired(sites::SEGMENT_ALLOCATE, &dir));
    assert!(
        !log.recovery_report().deferred_writes.is_empty(),
        "{:?}",
        log.recovery_report()
    );
    check(&log, &acked, "opened on a full disk after a crash");
    failpoint::disarm(&dir);
    let info = log.append(&batch(14)).unwrap();
    assert_eq!(info.base_offset, 14);
    acked.insert(14, 14);
    check(&log, &acked, "after the fault");
    log.close().unwrap();
    let log = common::retry_locked(|| Log::open(&dir, config.clone()));
    check(&log, &acked, "reopened");
    assert_eq!(log.high_watermark(), 15);
}
