//! Writes `tests/data/format_v2/`: a small data directory in segment format 2 (the layout
//! Riverbed wrote before format 3), and `expected.txt`, what a consumer reads from it.
//! `tests/format_v2_fixture.rs` opens a copy with the current build and checks it reads the same.
//!
//! It was run once, by the build of the commit that added it (before format 3 existed):
//! `cargo run --release --example make_format_v2_fixture -- tests/data/format_v2`. Running it
//! with a later build would write that build's format, so it is kept only as the record of how
//! the fixture was made.
//!
//! What the directory holds (timestamps are fixed, so the records are the same on every run):
//! - `events` (1 partition, 1 KiB segments, several of them): keys, null keys, tombstones,
//!   headers (a repeated key, a null value), then batches of an idempotent producer;
//! - `zipped`: one zstd-compressed batch;
//! - `txn`: a committed and an aborted transaction, and records after them;
//! - `table` (compacted, 1 KiB segments): overwritten keys and a tombstone, compacted once;
//! - group `fixture-group`: committed offsets on `events` and `zipped`;
//! - the store's own `__consumer_offsets` and `__transaction_state` logs.

#[path = "../tests/common/fixture_dump.rs"]
mod fixture_dump;

use riverbed::{
    CleanerConfig, CleanupPolicy, Compression, ConsumerConfig, OffsetAndMetadata, ProducerConfig,
    ProducerRecord, Store, StoreConfig, TopicConfig, TopicPartition,
};

const T0: i64 = 1_700_000_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: make_format_v2_fixture DIR")?,
    );
    let data = dir.join("data");
    if data.exists() {
        return Err(format!("{} exists; remove it first", data.display()).into());
    }
    let config = StoreConfig::default().cleaner(CleanerConfig::default().enabled(false));
    let store = Store::open_with(&data, config.clone())?;
    store.create_topic(
        "events",
        TopicConfig::new(1)
            .retention_ms(None)
            .segment_bytes(1024)
            .max_message_bytes(512),
    )?;
    store.create_topic(
        "zipped",
        TopicConfig::new(1)
            .retention_ms(None)
            .segment_bytes(4096)
            .max_message_bytes(4000)
            .compression(Compression::Zstd { level: 3 }),
    )?;
    store.create_topic(
        "txn",
        TopicConfig::new(1)
            .retention_ms(None)
            .segment_bytes(1024)
            .max_message_bytes(512),
    )?;
    store.create_topic(
        "table",
        TopicConfig::new(1)
            .retention_ms(None)
            .cleanup_policy(CleanupPolicy::Compact)
            .segment_bytes(1024)
            .max_message_bytes(512),
    )?;

    let p = store.producer();
    for i in 0..40i64 {
        let mut r = ProducerRecord::new("events")
            .partition(0)
            .timestamp(T0 + i * 10);
        if i % 5 != 1 {
            r = r.key(format!("key-{}", i % 7));
        }
        if i % 9 != 4 {
            r = r.value(format!("value {i} {}", "v".repeat((i % 13) as usize)));
        }
        if i % 3 == 0 {
            r = r.header("trace", format!("t{i}")).header("trace", "again");
        }
        if i % 11 == 2 {
            r = r.header("empty", Vec::new());
        }
        p.send(r)?;
    }
    let idem = store.producer_with(ProducerConfig::default().idempotent(true))?;
    for b in 0..4i64 {
        idem.send_batch((0..5i64).map(|j| {
            ProducerRecord::new("events")
                .partition(0)
                .key(format!("idem-{b}-{j}"))
                .value(format!("idempotent {b} {j}"))
                .timestamp(T0 + 1000 + b * 10 + j)
        }))?;
    }
    p.send_batch((0..20i64).map(|i| {
        ProducerRecord::new("zipped")
            .partition(0)
            .key(format!("z{i}"))
            .value("compressible ".repeat(4))
            .header("n", i.to_string())
            .timestamp(T0 + 2000 + i)
    }))?;

    let txn = store.transactional_producer("fixture-txn")?;
    txn.begin()?;
    for i in 0..3i64 {
        txn.send(
            ProducerRecord::new("txn")
                .partition(0)
                .key("committed")
                .value(format!("c{i}"))
                .timestamp(T0 + 3000 + i),
        )?;
    }
    txn.commit()?;
    txn.begin()?;
    for i in 0..3i64 {
        txn.send(
            ProducerRecord::new("txn")
                .partition(0)
                .key("aborted")
                .value(format!("a{i}"))
                .timestamp(T0 + 3100 + i),
        )?;
    }
    txn.abort()?;
    for i in 0..30i64 {
        p.send(
            ProducerRecord::new("txn")
                .partition(0)
                .key(format!("after-{i}"))
                .value(vec![b'x'; 30])
                .timestamp(T0 + 3200 + i),
        )?;
    }

    for round in 0..6i64 {
        // Rows 4..=7 are written once, so the first segment keeps them after compaction.
        let rows = if round == 0 { 0..8i64 } else { 0..4i64 };
        for k in rows {
            let r = ProducerRecord::new("table")
                .partition(0)
                .key(format!("row-{k}"))
                .timestamp(T0 + 4000 + round * 10 + k);
            let r = if round == 5 && k == 3 {
                r // a tombstone
            } else {
                r.value(format!("round {round} row {k} {}", "t".repeat(20)))
            };
            p.send(r)?;
        }
    }
    let report = store.compact_now("table")?;
    if report.segments_cleaned == 0 {
        return Err(format!("nothing was compacted: {report:?}").into());
    }

    let mut c = store.consumer(ConsumerConfig::new("fixture-group"))?;
    c.assign(&[
        TopicPartition::new("events", 0),
        TopicPartition::new("zipped", 0),
    ])?;
    c.commit_offsets(&[
        (TopicPartition::new("events", 0), OffsetAndMetadata::new(17)),
        (
            TopicPartition::new("zipped", 0),
            OffsetAndMetadata {
                offset: 20,
                metadata: "all of it".to_string(),
            },
        ),
    ])?;
    drop(c);
    drop((p, idem, txn));
    store.close()?;

    let store = Store::open_with(&data, config)?;
    let expected = fixture_dump::dump(&store, &["fixture-group"]);
    store.close()?;
    std::fs::write(dir.join("expected.txt"), expected)?;
    strip_zero_tails(&data, &dir.join("lengths.txt"))?;
    Ok(())
}

/// Cuts every file's trailing zeros (the preallocated rest of active segments and indexes, up
/// to 64 MiB each) so the fixture is a few KB in git, and lists the lengths they had in
/// `lengths` (`relative/path length`); the test extends each copy back to its length, so it
/// opens byte for byte what this build left behind.
fn strip_zero_tails(
    data: &std::path::Path,
    lengths: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut listing = String::new();
    let mut dirs: Vec<_> = std::fs::read_dir(data)?.collect::<Result<_, _>>()?;
    dirs.sort_by_key(|e| e.file_name());
    for d in dirs {
        let mut paths = vec![d.path()];
        if d.file_type()?.is_dir() {
            let mut inner: Vec<_> = std::fs::read_dir(d.path())?.collect::<Result<_, _>>()?;
            inner.sort_by_key(|e| e.file_name());
            paths = inner.into_iter().map(|e| e.path()).collect();
        }
        for p in paths {
            if p.file_name().is_some_and(|n| n == ".lock") {
                std::fs::remove_file(&p)?;
                continue;
            }
            let bytes = std::fs::read(&p)?;
            let keep = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            if keep < bytes.len() {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&p)?
                    .set_len(keep as u64)?;
            }
            let rel = p.strip_prefix(data)?;
            listing.push_str(&format!("{} {}\n", rel.display(), bytes.len()));
        }
    }
    std::fs::write(lengths, listing)?;
    Ok(())
}
