//! A roll seals the old segment in the background (issue 16): the append that rolls does not
//! wait for the old segment's msync/cut/fsync, and the rules that kept a roll safe still hold:
//! a failed seal is not lost (it poisons the log and the next flush reports it), retention
//! never deletes a segment whose seal did not end, the recovery point never names a segment
//! after an unsealed one, and a crash between the roll and the end of the seal recovers every
//! record.

mod common;

/// `Log::open`, retried while the directory looks locked: the SIGKILL test of this binary
/// forks children, and a child forked at the moment a handle is dropped shares the lock's open
/// file until it execs (see `common::retry_locked`), so a reopen can see `Locked` for an instant.
fn open_log(dir: impl AsRef<std::path::Path>, config: LogConfig) -> riverbed::Result<Log> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Log::open(dir.as_ref(), config.clone()) {
            Err(e)
                if matches!(e.kind(), riverbed::ErrorKind::Locked { .. })
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            other => return other,
        }
    }
}

use riverbed::{BatchBuilder, Compression, ErrorKind, FlushPolicy, Log, LogConfig, RecordBatch};

fn config() -> LogConfig {
    LogConfig::default()
        .flush(FlushPolicy::Manual)
        .segment_bytes(16 << 10)
        .segment_ms(None)
        .retention_ms(None)
        .max_message_bytes(8 << 10)
}

fn batch(n: u64) -> RecordBatch {
    let mut b = BatchBuilder::new(Compression::None);
    b.append(
        1_700_000_000_000 + n as i64,
        Some(&n.to_le_bytes()),
        Some(&vec![(n % 251) as u8; 1500]),
        &[],
    );
    b.build().unwrap()
}

/// Appends until the log holds two segments; returns how many records were appended.
fn append_until_rolled(log: &Log) -> u64 {
    let mut n = 0;
    while log.segment_count() < 2 {
        log.append(&batch(n)).unwrap();
        n += 1;
    }
    n
}

fn values(log: &Log) -> Vec<u64> {
    common::read_all(log, 1 << 20)
        .into_iter()
        .map(|(offset, _, value, _)| {
            assert_eq!(
                value.unwrap(),
                vec![(offset % 251) as u8; 1500],
                "record {offset}"
            );
            offset
        })
        .collect()
}

/// The segment that was active when the process "crashed" (a copy of an open log's directory),
/// with its preallocated zeros, next to the segment a roll created after it: what a crash
/// leaves between a roll and the end of its background seal. Recovery finishes the seal.
#[test]
fn crash_between_roll_and_seal_recovers_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), config()).unwrap();
    // Fill the first segment almost to the roll, and take the files a crash would leave now.
    let mut n = 0;
    while log.size_in_bytes() + 2 * 1600 < 16 << 10 {
        log.append(&batch(n)).unwrap();
        n += 1;
    }
    let before_roll = common::copy_dir(dir.path());
    let first = n;
    let rolled_at = loop {
        log.append(&batch(n)).unwrap();
        n += 1;
        if log.segment_count() == 2 {
            break n - 1;
        }
    };
    log.append(&batch(n)).unwrap();
    n += 1;
    log.flush().unwrap();
    let after_roll = common::copy_dir(dir.path());
    drop(log);
    // The old segment as it was before the roll's seal (unsealed, zeros at its end) holds
    // `first` records; the batches appended to it since are in the copy after the roll.
    let old = common::log_path(before_roll.path(), 0);
    assert!(
        std::fs::metadata(&old).unwrap().len()
            > std::fs::metadata(common::log_path(after_roll.path(), 0))
                .unwrap()
                .len(),
        "the copy before the roll has the preallocated rest"
    );
    // Build the crash image: the old segment's files written up to the roll but not cut, the
    // recovery point from before the roll (it never passes an unsealed segment), the rest as
    // after the roll.
    let crash = common::copy_dir(after_roll.path());
    let mut unsealed = std::fs::read(common::log_path(after_roll.path(), 0)).unwrap();
    let full_len = std::fs::metadata(&old).unwrap().len() as usize;
    unsealed.resize(full_len, 0);
    std::fs::write(common::log_path(crash.path(), 0), &unsealed).unwrap();
    for name in [
        "00000000000000000000.index",
        "00000000000000000000.timeindex",
        "recovery-point",
    ] {
        let from = before_roll.path().join(name);
        if from.exists() {
            std::fs::copy(&from, crash.path().join(name)).unwrap();
        }
    }
    assert!(first < rolled_at);
    let log = open_log(crash.path(), config()).unwrap();
    assert_eq!(log.high_watermark(), n);
    assert_eq!(values(&log), (0..n).collect::<Vec<_>>());
    // The old segment is sealed now: cut to its batches.
    assert_eq!(
        std::fs::metadata(common::log_path(crash.path(), 0))
            .unwrap()
            .len(),
        std::fs::metadata(common::log_path(after_roll.path(), 0))
            .unwrap()
            .len()
    );
    log.append(&batch(n)).unwrap();
    log.close().unwrap();
    let log = open_log(crash.path(), config()).unwrap();
    assert_eq!(values(&log), (0..=n).collect::<Vec<_>>());
}

/// `close` waits for the seals under way: after it every data file but the last is cut to its
/// batches, and the log reopens clean, without a scan.
#[test]
fn close_waits_for_pending_seals() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), config()).unwrap();
    let mut n = 0;
    while log.segment_count() < 4 {
        log.append(&batch(n)).unwrap();
        n += 1;
    }
    let bases = log.segment_base_offsets();
    log.close().unwrap();
    for &base in &bases[..bases.len() - 1] {
        let file = std::fs::read(common::log_path(dir.path(), base)).unwrap();
        let batches = common::batches_in(&file);
        let (pos, _, len) = *batches.last().unwrap();
        assert_eq!(
            file.len(),
            pos + len,
            "segment {base} is cut to its batches"
        );
    }
    let log = open_log(dir.path(), config()).unwrap();
    assert_eq!(log.recovery_report().scanned_bytes, 0);
    assert_eq!(values(&log), (0..n).collect::<Vec<_>>());
}

#[cfg(feature = "failpoints")]
mod failpoints {
    use super::*;
    use riverbed::failpoint::{self, sites};

    /// The fsync of the rolled segment fails: the append that rolls does not see it (the seal
    /// runs after the append returned, off the writer lock), the next flush reports it as a
    /// poisoned log, the unsealed segment is not deleted by retention, and the recovery point
    /// never names the segment after it. A reopen finds every acknowledged record.
    #[test]
    fn the_roll_does_not_fsync_and_a_failed_seal_poisons_the_next_flush() {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(dir.path(), config()).unwrap();
        // Only the old segment's data file: the new segment's creation (which fsyncs its
        // headers) and the appends are not armed.
        failpoint::arm_times(
            sites::SEGMENT_FSYNC,
            &common::log_path(dir.path(), 0),
            1,
            u64::MAX,
            failpoint::EIO,
        );
        let n = append_until_rolled(&log);
        // The rolling append succeeded; the failure shows up at the next flush.
        let err = log.flush().unwrap_err();
        assert!(
            matches!(
                err.kind(),
                ErrorKind::Poisoned { .. } | ErrorKind::Io { .. }
            ),
            "{err}"
        );
        assert!(failpoint::fired(
            sites::SEGMENT_FSYNC,
            &common::log_path(dir.path(), 0)
        ));
        let next = log.append(&batch(n)).unwrap_err();
        assert!(matches!(next.kind(), ErrorKind::Poisoned { .. }), "{next}");
        // Retention may not delete the segment whose seal did not end.
        let report = log.delete_segments_below(u64::MAX).unwrap();
        assert!(report.deleted_segments.is_empty(), "{report:?}");
        assert!(common::log_path(dir.path(), 0).exists());
        // The recovery point stays in (or before) the unsealed segment.
        if let Some(cp) = riverbed::internals::Checkpoint::read(dir.path()).unwrap() {
            assert_eq!(cp.segment_base, 0, "{cp:?}");
        }
        failpoint::disarm(&common::log_path(dir.path(), 0));
        let written = log.high_watermark();
        drop(log);
        let log = open_log(dir.path(), config()).unwrap();
        assert_eq!(log.high_watermark(), written);
        assert_eq!(values(&log), (0..written).collect::<Vec<_>>());
    }
}

// ---- power loss while a seal is pending (FORMAT.md 6, rule 4b) --------------------------------

/// Builds what a power loss leaves when the machine dies between a roll and the end of the old
/// segment's background seal, with `FlushPolicy::Manual`: the old segment keeps its preallocated
/// length, but its page cache is gone from byte `lost_from` on (zeros where it never reached the
/// disk; `survivor` names a page that did reach it all the same), the next segment holds what it
/// holds, and the recovery point is the one from before the roll (it never passes a segment
/// whose seal is pending). Returns the crash image, the number of records appended, and the
/// base of the second segment.
struct PowerLoss {
    image: tempfile::TempDir,
    appended: u64,
    second: u64,
    /// The batches of the old segment: (position, base offset, length).
    old_batches: Vec<(usize, u64, usize)>,
    /// Records flushed (acknowledged as durable) before the roll.
    flushed: u64,
}

/// The data files and the recovery point, by name (what a refused open must leave alone).
fn data_files(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".log") || name == "recovery-point")
        .map(|name| {
            let bytes = std::fs::read(dir.join(&name)).unwrap();
            (name, bytes)
        })
        .collect()
}

fn power_loss_image(lost_batch: usize, mid_batch: bool, survivor: bool) -> PowerLoss {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), config()).unwrap();
    let mut n = 0;
    // A flushed prefix: acknowledged as durable, which no power loss may take.
    for _ in 0..3 {
        log.append(&batch(n)).unwrap();
        n += 1;
    }
    log.flush().unwrap();
    let flushed = n;
    let before_roll = common::copy_dir(dir.path());
    while log.segment_count() < 2 {
        log.append(&batch(n)).unwrap();
        n += 1;
    }
    // More in the second segment, never flushed: the page cache may or may not have written it.
    for _ in 0..3 {
        log.append(&batch(n)).unwrap();
        n += 1;
    }
    let second = log.segment_base_offsets()[1];
    let after_roll = common::copy_dir(dir.path());
    drop(log);

    let image = common::copy_dir(after_roll.path());
    let full_len = std::fs::metadata(common::log_path(before_roll.path(), 0))
        .unwrap()
        .len() as usize;
    let mut old = std::fs::read(common::log_path(after_roll.path(), 0)).unwrap();
    let old_batches = common::batches_in(&old);
    assert_eq!(
        old_batches.last().map(|b| b.1 + 1),
        Some(second),
        "one record per batch"
    );
    let (pos, _, len) = old_batches[lost_batch];
    let lost_from = if mid_batch { pos + len / 2 } else { pos };
    let written = old.clone();
    old.resize(full_len, 0);
    old[lost_from..].fill(0);
    if survivor {
        // A later page the writeback happened to reach (pages are written back in any order).
        let at = (lost_from / 4096 + 2) * 4096;
        let end = (at + 4096).min(written.len());
        assert!(at < end, "the lost tail spans more than two pages");
        old[at..end].copy_from_slice(&written[at..end]);
    }
    std::fs::write(common::log_path(image.path(), 0), &old).unwrap();
    for name in [
        "00000000000000000000.index",
        "00000000000000000000.timeindex",
        "recovery-point",
    ] {
        let from = before_roll.path().join(name);
        if from.exists() {
            std::fs::copy(&from, image.path().join(name)).unwrap();
        }
    }
    PowerLoss {
        image,
        appended: n,
        second,
        old_batches,
        flushed,
    }
}

/// The old segment lost its unsynced tail, the next segment exists (with data): open cuts the
/// log at the gap, exactly as a torn tail is cut, and removes the segments after it, keeping
/// everything flushed before. Without rule 4b the open fails on the offset gap.
#[test]
fn power_loss_during_a_pending_seal_cuts_at_the_gap() {
    for (lost_batch, mid_batch, survivor, next_uncreated) in [
        (4, false, false, false),
        (3, true, false, false),
        (3, false, true, false),
        (4, false, false, true),
    ] {
        let what = format!(
            "lost from batch {lost_batch} (mid batch {mid_batch}, survivor page {survivor}, \
             next segment's creation lost {next_uncreated})"
        );
        let p = power_loss_image(lost_batch, mid_batch, survivor);
        if next_uncreated {
            // The next segment's file exists, but not even its header reached the disk.
            let path = common::log_path(p.image.path(), p.second);
            let len = std::fs::metadata(&path).unwrap().len() as usize;
            std::fs::write(&path, vec![0u8; len]).unwrap();
        }
        let first_lost = p.old_batches[lost_batch].1;
        assert!(
            first_lost >= p.flushed,
            "{what}: the image must not lose flushed data"
        );
        let old_path = common::log_path(p.image.path(), 0);
        let second_path = common::log_path(p.image.path(), p.second);
        assert!(second_path.exists());

        // Strict refuses the cut, and changes nothing.
        let before = data_files(p.image.path());
        let strict = config().recovery(riverbed::RecoveryMode::Strict);
        let e = open_log(p.image.path(), strict).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::Corruption { path: Some(path), .. } if *path == old_path),
            "{what}: {e:?}"
        );
        assert!(
            before == data_files(p.image.path()),
            "{what}: Strict changed files"
        );

        let log = open_log(p.image.path(), config()).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(log.high_watermark(), first_lost, "{what}");
        assert_eq!(values(&log), (0..first_lost).collect::<Vec<_>>(), "{what}");
        assert_eq!(log.segment_base_offsets(), vec![0], "{what}");
        let report = log.recovery_report().clone();
        let cut = report.truncation.clone().expect("the cut is reported");
        assert_eq!(cut.path, old_path, "{what}");
        assert_eq!(cut.offset, first_lost, "{what}");
        assert_eq!(cut.position as usize, p.old_batches[lost_batch].0, "{what}");
        assert!(cut.reason.contains("rule 4b"), "{what}: {}", cut.reason);
        assert!(
            report.removed_files.contains(&second_path),
            "{what}: {report:?}"
        );
        assert!(!second_path.exists(), "{what}");
        // Appends continue at the gap, and the next open finds exactly them.
        for k in first_lost..first_lost + 20 {
            assert_eq!(log.append(&batch(k)).unwrap().base_offset, k, "{what}");
        }
        log.close().unwrap();
        let log = open_log(p.image.path(), config()).unwrap();
        assert_eq!(log.recovery_report().scanned_bytes, 0, "{what}");
        assert_eq!(
            values(&log),
            (0..first_lost + 20).collect::<Vec<_>>(),
            "{what}"
        );
        assert!(p.appended > first_lost);
    }
}

/// The same missing offsets in a segment that was sealed (cut after its last batch) are not a
/// pending seal's lost tail: a sealed segment is synced before its seal ends, so this is damage
/// to data that may have been acknowledged, and open refuses it (both modes), removing nothing.
#[test]
fn a_sealed_segment_missing_its_last_batches_is_refused() {
    let p = power_loss_image(4, false, false);
    let old_path = common::log_path(p.image.path(), 0);
    let old = std::fs::read(&old_path).unwrap();
    // Sealed: cut right after batch 3, no preallocated rest.
    let (pos, _, _) = p.old_batches[4];
    std::fs::write(&old_path, &old[..pos]).unwrap();
    let before = data_files(p.image.path());
    for mode in [
        riverbed::RecoveryMode::TruncateTail,
        riverbed::RecoveryMode::Strict,
    ] {
        let e = open_log(p.image.path(), config().recovery(mode)).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::Corruption { path: Some(path), .. } if *path == old_path),
            "{mode:?}: {e:?}"
        );
        assert!(
            before == data_files(p.image.path()),
            "{mode:?}: files changed"
        );
    }
}

// ---- real crashes: SIGKILL a child rolling under load, then take its page cache away -----------
//
// A SIGKILL keeps the page cache (the kernel still writes it back), so after it every rolled
// segment is whole (rule 4a). A power loss does not: the parent builds the state a power loss
// at the same moment could leave from the killed child's files, discarding every byte no
// completed sync covered, and opens that. Pattern of tests/crash_sigkill.rs.

const ROLL_CHILD_DIR_ENV: &str = "RIVERBED_ROLL_CHILD_DIR";

fn child_config() -> LogConfig {
    config().segment_bytes(64 << 10)
}

/// The child: appends `batch(n)` at offset `n` without end, under `FlushPolicy::Manual`, and
/// flushes every 64 appends, printing `FLUSHED n` once a flush made offsets below `n` durable.
/// Returns at once unless the parent set its environment.
#[test]
fn roll_child_entry() {
    use std::io::Write;
    let Some(dir) = std::env::var_os(ROLL_CHILD_DIR_ENV) else {
        return;
    };
    let log = open_log(&dir, child_config()).unwrap();
    let out = std::io::stdout();
    let mut n = log.high_watermark();
    loop {
        assert_eq!(log.append(&batch(n)).unwrap().base_offset, n);
        n += 1;
        if n.is_multiple_of(64) {
            log.flush().unwrap();
            let mut out = out.lock();
            writeln!(out, "FLUSHED {n}").unwrap();
            out.flush().unwrap();
        }
    }
}

/// Rewrites the killed child's directory into what a power loss could leave: a segment that is
/// cut after its last batch was sealed (its msync came before the cut) and stays; in one that
/// still has its preallocated rest (not sealed: the active one, or one whose seal was pending)
/// only what a completed sync covered survives: batches below `flushed`, and bytes before the
/// recovery point's position. Everything else is zeroed. Returns how many segments before the
/// last lost batches that way.
#[cfg(feature = "internals")]
fn lose_page_cache(dir: &std::path::Path, flushed: u64) -> usize {
    let cp = riverbed::internals::Checkpoint::read(dir).unwrap();
    let mut bases: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort_unstable();
    let mut lost_before_last = 0;
    for (i, &base) in bases.iter().enumerate() {
        let path = common::log_path(dir, base);
        let mut file = std::fs::read(&path).unwrap();
        let batches = common::batches_in(&file);
        let end = batches
            .last()
            .map_or(common::FILE_HEADER_LEN, |&(pos, _, len)| pos + len);
        if end == file.len() {
            continue; // sealed
        }
        let vouched = cp
            .filter(|c| c.segment_base == base)
            .map_or(common::FILE_HEADER_LEN, |c| c.position as usize);
        let synced = batches
            .iter()
            .filter(|&&(_, offset, _)| offset < flushed)
            .map(|&(pos, _, len)| pos + len)
            .max()
            .unwrap_or(common::FILE_HEADER_LEN)
            .max(vouched)
            .max(common::FILE_HEADER_LEN);
        if synced < end {
            file[synced..].fill(0);
            std::fs::write(&path, &file).unwrap();
            if i + 1 < bases.len() {
                lost_before_last += 1;
            }
        }
    }
    lost_before_last
}

/// SIGKILLs a child that rolls 64 KiB segments under load at pseudo-random moments, turns its
/// files into a power loss's, and opens them: every flushed record is there, the log is a
/// prefix of what the child appended, and at least one run lost the tail of a segment whose
/// seal was pending (rule 4b cut the log at that gap; without the rule that open fails).
#[cfg(feature = "internals")]
#[test]
fn sigkill_and_power_loss_while_rolling_under_load() {
    use std::io::BufRead;
    use std::process::Stdio;
    let mut cuts_at_a_gap = 0;
    let mut rng = common::XorShift::new(0x5ea1_u64);
    for run in 0..12 {
        let dir = tempfile::tempdir().unwrap();
        let mut child = common::child_command("roll_child_entry")
            .env(ROLL_CHILD_DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("FLUSHED ") {
                    let _ = tx.send(n.trim().parse::<u64>().unwrap());
                }
            }
        });
        // Once it is under way, kill it at a pseudo-random moment.
        let first = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the child flushed");
        std::thread::sleep(std::time::Duration::from_millis(5 + rng.below(60)));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        let flushed = rx.try_iter().fold(first, u64::max);

        let lost = lose_page_cache(dir.path(), flushed);
        let log = open_log(dir.path(), config())
            .unwrap_or_else(|e| panic!("run {run}: open after a power loss: {e}"));
        let end = log.high_watermark();
        assert!(
            end >= flushed,
            "run {run}: flushed {flushed}, recovered {end}"
        );
        assert_eq!(values(&log), (0..end).collect::<Vec<_>>(), "run {run}");
        let report = log.recovery_report().clone();
        if lost > 0 {
            let cut = report.truncation.as_ref().expect("a lost tail is cut");
            assert!(cut.reason.contains("rule 4b"), "run {run}: {}", cut.reason);
            cuts_at_a_gap += 1;
        }
        // Appends go on from the cut, and a clean reopen finds them.
        for k in end..end + 5 {
            assert_eq!(log.append(&batch(k)).unwrap().base_offset, k);
        }
        log.close().unwrap();
        let log = open_log(dir.path(), config()).unwrap();
        assert_eq!(values(&log), (0..end + 5).collect::<Vec<_>>(), "run {run}");
    }
    assert!(
        cuts_at_a_gap > 0,
        "no run was killed while a seal was pending: the test checked nothing about rule 4b"
    );
}
