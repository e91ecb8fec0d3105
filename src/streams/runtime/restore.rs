//! Restoring a task's stores before it runs (from a checkpoint snapshot plus the changelog tail,
//! or from the whole changelog), and writing the snapshots after a commit.
//!
//! **When snapshots are written.** Right after a successful commit that ends a task's life on a
//! thread: at a clean [`close`](crate::streams::App::close) (or drop) of the application and when a
//! rebalance takes the task away. Not at every commit: a snapshot is the whole store, and a
//! snapshot can only be written from committed state. After a crash the last snapshot written
//! is still valid (it is a prefix of the changelog, see
//! [`checkpoint`](crate::streams::state::checkpoint)), so the next restore replays the changelog
//! from it: the records committed since.
//!
//! **Exactly-once.** Kafka Streams deletes its checkpoint while processing under exactly-once,
//! because its local store then holds uncommitted writes. Riverbed's snapshot is written only
//! from the committed state, right after the commit, and only if the changelog partition has no
//! open transaction (its last stable offset is its end), so it is a `read_committed` prefix; the
//! restore replays the tail `read_committed`. A snapshot written at-least-once is never used
//! under exactly-once (it may hold records of aborted transactions).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::consumer::{ConsumerConfig, IsolationLevel, OffsetReset};
use crate::error::Result;
use crate::store::Store;
use crate::streams::runtime::task::Task;
use crate::streams::state::checkpoint;
use crate::streams::state::store::ROW_TIMESTAMP_HEADER;
use crate::streams::Counters;
use crate::topic::TopicPartition;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn isolation(eos: bool) -> IsolationLevel {
    if eos {
        IsolationLevel::ReadCommitted
    } else {
        IsolationLevel::ReadUncommitted
    }
}

/// Restores every store of `task` (partition `task.partition()`): from its snapshot if it has a
/// usable one, then the changelog from the snapshot's offset (or from the start) to its end
/// (the last stable offset under exactly-once). `changelogs` is `(store, changelog topic)`.
///
/// # Errors
/// The errors of reading the changelogs. A missing, damaged or unusable snapshot is not an
/// error: that store is restored from the whole changelog.
pub(crate) fn restore_task(
    store: &Store,
    task: &mut Task,
    changelogs: &[(String, String)],
    eos: bool,
    counters: &Counters,
) -> Result<()> {
    if changelogs.is_empty() {
        return Ok(());
    }
    let p = task.partition();
    let mut reader = store.consumer(
        ConsumerConfig::default()
            .auto_offset_reset(OffsetReset::Earliest)
            .max_poll_records(10_000)
            .isolation_level(isolation(eos)),
    )?;
    let tps: Vec<TopicPartition> = changelogs
        .iter()
        .map(|(_, t)| TopicPartition::new(t.as_str(), p))
        .collect();
    reader.assign(&tps)?;
    let ends: HashMap<TopicPartition, u64> = reader.end_offsets(&tps)?.into_iter().collect();
    let starts: HashMap<TopicPartition, u64> =
        reader.beginning_offsets(&tps)?.into_iter().collect();
    let now = now_ms();
    for ((name, topic), tp) in changelogs.iter().zip(&tps) {
        let (start, end) = (starts[tp], ends[tp]);
        if let Some(snap) = load(store, topic, p, eos, start, end, now, counters) {
            reader.seek(tp, snap.offset)?;
            counters
                .snapshot_entries
                .fetch_add(snap.data.len() as u64, Ordering::Relaxed);
            counters.snapshots_used.fetch_add(1, Ordering::Relaxed);
            task.load_snapshot(name, snap.data)?;
        }
    }
    let mut positions = HashMap::new();
    let mut left = 0u64;
    for tp in &tps {
        let pos = reader.position(tp)?;
        left += ends[tp].saturating_sub(pos);
        positions.insert(tp.clone(), pos);
    }
    counters
        .restore_remaining
        .fetch_add(left, Ordering::Relaxed);
    let result = replay(
        &mut reader,
        task,
        changelogs,
        &ends,
        &mut positions,
        &mut left,
        counters,
    );
    // What a failed restore did not read is no longer to be read.
    counters
        .restore_remaining
        .fetch_sub(left, Ordering::Relaxed);
    result
}

fn replay(
    reader: &mut crate::consumer::Consumer,
    task: &mut Task,
    changelogs: &[(String, String)],
    ends: &HashMap<TopicPartition, u64>,
    positions: &mut HashMap<TopicPartition, u64>,
    left: &mut u64,
    counters: &Counters,
) -> Result<()> {
    // `(changelog topic, partition, end, store)`: looked up per record by comparing names,
    // which costs no allocation (a `TopicPartition` key would cost one per record).
    let targets: Vec<(&str, u32, u64, &str)> = changelogs
        .iter()
        .filter_map(|(store, topic)| {
            let tp = TopicPartition::new(topic.as_str(), task.partition());
            ends.get(&tp)
                .map(|&end| (topic.as_str(), tp.partition, end, store.as_str()))
        })
        .collect();
    while *left > 0 {
        let mut applied = 0u64;
        for r in reader.poll(Duration::from_millis(100))?.iter() {
            let Some(key) = r.key() else {
                continue;
            };
            let Some(&(_, _, end, store)) = targets
                .iter()
                .find(|(t, p, _, _)| *p == r.partition() && *t == r.topic())
            else {
                continue;
            };
            if r.offset() >= end {
                continue;
            }
            // The record's timestamp is a row timestamp only if marked so (FORMAT.md 8.6).
            let row_timestamp = r
                .headers()
                .any(|h| matches!(h, Ok((k, _)) if k == ROW_TIMESTAMP_HEADER))
                .then(|| r.timestamp());
            task.restore(store, key, r.value(), row_timestamp)?;
            applied += 1;
        }
        counters.restored.fetch_add(applied, Ordering::Relaxed);
        for (tp, pos) in positions.iter_mut() {
            let now = reader.position(tp)?.min(ends[tp]);
            let step = now.saturating_sub(*pos).min(*left);
            *pos = now.max(*pos);
            *left -= step;
            counters
                .restore_remaining
                .fetch_sub(step, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// The usable snapshot of `topic`-`p`, if there is one; counts and logs the ones not used.
#[allow(clippy::too_many_arguments)]
fn load(
    store: &Store,
    topic: &str,
    p: u32,
    eos: bool,
    start: u64,
    end: u64,
    now: i64,
    counters: &Counters,
) -> Option<checkpoint::Snapshot> {
    let path = checkpoint::path(store.dir(), topic, p);
    let reject = |why: String| {
        tracing::warn!(
            target: "riverbed::streams",
            path = %path.display(),
            reason = %why,
            "not using a checkpoint; restoring from the whole changelog"
        );
        counters.snapshots_rejected.fetch_add(1, Ordering::Relaxed);
        None
    };
    let bytes = match checkpoint::read(&path) {
        Ok(Some(b)) => b,
        Ok(None) => return None,
        Err(e) => return reject(e.to_string()),
    };
    let snap = match checkpoint::decode(&bytes, topic, p) {
        Ok(s) => s,
        Err(e) if checkpoint::is_damage(&e) => return reject(format!("damaged: {e}")),
        Err(e) => return reject(e.to_string()),
    };
    let retention = match store.describe_topic(topic) {
        Ok(d) => d.config.log.delete_retention_ms,
        Err(e) => return reject(e.to_string()),
    };
    match checkpoint::unusable(&snap, eos, start, end, retention, now) {
        Some(why) => reject(why),
        None => Some(snap),
    }
}

/// Writes a snapshot of every store of `task`, which must have just committed. Failures are
/// logged, not returned: a missing snapshot only makes the next restore slower. Under
/// exactly-once a store whose changelog partition has an open transaction gets none.
pub(crate) fn save_task(
    store: &Store,
    task: &Task,
    changelogs: &[(String, String)],
    eos: bool,
    counters: &Counters,
) {
    if let Err(e) = try_save(store, task, changelogs, eos, counters) {
        tracing::warn!(
            target: "riverbed::streams",
            partition = task.partition(),
            error = %e,
            "writing a checkpoint failed"
        );
    }
}

fn try_save(
    store: &Store,
    task: &Task,
    changelogs: &[(String, String)],
    eos: bool,
    counters: &Counters,
) -> Result<()> {
    if changelogs.is_empty() {
        return Ok(());
    }
    let p = task.partition();
    let tps: Vec<TopicPartition> = changelogs
        .iter()
        .map(|(_, t)| TopicPartition::new(t.as_str(), p))
        .collect();
    let ends = |level| -> Result<Vec<(TopicPartition, u64)>> {
        store
            .consumer(ConsumerConfig::default().isolation_level(level))?
            .end_offsets(&tps)
    };
    let log_ends = ends(IsolationLevel::ReadUncommitted)?;
    let stable = if eos {
        ends(IsolationLevel::ReadCommitted)?
    } else {
        log_ends.clone()
    };
    let now = now_ms();
    for (((name, topic), (_, end)), (_, lso)) in changelogs.iter().zip(&log_ends).zip(&stable) {
        if end != lso {
            continue;
        }
        let Some(data) = task.store_data(name) else {
            continue;
        };
        let bytes = checkpoint::encode(topic, p, *end, eos, now, &data)?;
        if checkpoint::write(&checkpoint::path(store.dir(), topic, p), &bytes)? {
            counters.snapshots_written.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}
