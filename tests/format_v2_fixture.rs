//! A data directory written by the build before segment format 3 (`tests/data/format_v2/`,
//! made by `examples/make_format_v2_fixture.rs`; its README says by which commit) opens with
//! this build and reads exactly what that build read (`expected.txt`, at both isolation levels,
//! committed group offsets included); appending, compacting and reopening it then keeps every
//! record the old build wrote readable beside the new ones.

#[path = "common/fixture_dump.rs"]
mod fixture_dump;

use std::collections::BTreeMap;
use std::path::Path;

use riverbed::{CleanerConfig, ProducerRecord, Store, StoreConfig};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/format_v2");

/// A copy of the fixture's data directory with every file extended back to the length it had
/// when the old build closed the store (the fixture stores them without their zero tails).
fn copy_fixture() -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    let lengths = std::fs::read_to_string(Path::new(FIXTURE).join("lengths.txt")).unwrap();
    for line in lengths.lines() {
        let (rel, len) = line.rsplit_once(' ').unwrap();
        let from = Path::new(FIXTURE).join("data").join(rel);
        let target = to.path().join(rel);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&from, &target).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&target)
            .unwrap()
            .set_len(len.parse().unwrap())
            .unwrap();
    }
    to
}

fn open(dir: &Path) -> Store {
    let config = StoreConfig::default().cleaner(CleanerConfig::default().enabled(false));
    Store::open_with(dir, config).unwrap()
}

fn expected() -> String {
    std::fs::read_to_string(Path::new(FIXTURE).join("expected.txt")).unwrap()
}

/// The dump's record lines of `isolation`/`topic`, as (offset, rest of the line).
fn lines<'a>(dump: &'a str, isolation: &str, topic: &str) -> Vec<(u64, &'a str)> {
    dump.lines()
        .filter_map(|l| {
            let mut f = l.splitn(5, ' ');
            let (i, t, _p, o, rest) = (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
            (i == isolation && t == topic).then(|| (o.parse().unwrap(), rest))
        })
        .collect()
}

/// Latest value (hex) per key (hex) of a dump's `table` lines.
fn latest(dump: &str, isolation: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for (_, rest) in lines(dump, isolation, "table") {
        let f: Vec<&str> = rest.split(' ').collect();
        map.insert(f[1].to_string(), f[2].to_string());
    }
    map
}

/// The data files' header versions of one partition directory, in base-offset order.
fn segment_versions(dir: &Path) -> Vec<u16> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let b = std::fs::read(p).unwrap();
            u16::from_le_bytes([b[4], b[5]])
        })
        .collect()
}

#[test]
fn old_directory_reads_exactly_as_before() {
    let dir = copy_fixture();
    let store = open(dir.path());
    assert_eq!(fixture_dump::dump(&store, &["fixture-group"]), expected());
    store.close().unwrap();
    // Opened and closed without a write, the old segments are still what they were.
    for topic in ["events-0", "txn-0", "table-0"] {
        let versions = segment_versions(&dir.path().join(topic));
        assert!(versions.iter().all(|v| *v <= 2), "{topic}: {versions:?}");
    }
}

#[test]
fn old_directory_takes_appends_compaction_and_reopens() {
    let dir = copy_fixture();
    let before = expected();
    let store = open(dir.path());
    let p = store.producer();
    for i in 0..30i64 {
        p.send(
            ProducerRecord::new("events")
                .partition(0)
                .key(format!("new-{i}"))
                .value(format!("new value {i}"))
                .header("h", format!("{i}"))
                .timestamp(1_800_000_000_000 + i),
        )
        .unwrap();
    }
    p.send_batch((0..10i64).map(|i| {
        ProducerRecord::new("zipped")
            .partition(0)
            .key(format!("z-new-{i}"))
            .value("more compressible ".repeat(5))
            .timestamp(1_800_000_000_000 + i)
    }))
    .unwrap();
    let txn = store.transactional_producer("fixture-txn").unwrap();
    txn.begin().unwrap();
    txn.send(ProducerRecord::new("txn").partition(0).key("k2").value("c"))
        .unwrap();
    txn.commit().unwrap();
    txn.begin().unwrap();
    txn.send(ProducerRecord::new("txn").partition(0).key("k3").value("a"))
        .unwrap();
    txn.abort().unwrap();
    // Overwrite and delete rows the old segments hold, then enough to roll past them.
    let mut table_writes: Vec<(String, Option<String>)> = Vec::new();
    for i in 0..40 {
        let key = format!("row-{}", i % 10);
        let value = (i != 35).then(|| format!("rewritten {i} {}", "r".repeat(20)));
        let mut r = ProducerRecord::new("table").partition(0).key(key.clone());
        if let Some(v) = &value {
            r = r.value(v.clone());
        }
        p.send(r).unwrap();
        table_writes.push((key, value));
    }
    drop((p, txn));
    let report = store.compact_now("table").unwrap();
    assert!(report.segments_cleaned > 0, "{report:?}");
    store.close().unwrap();

    let store = open(dir.path());
    let after = fixture_dump::dump(&store, &["fixture-group"]);
    store.close().unwrap();

    // Every record the old build wrote (outside the compacted topic) reads as it did, followed
    // by the new ones.
    for isolation in ["uncommitted", "committed"] {
        for topic in ["events", "zipped", "txn"] {
            let old = lines(&before, isolation, topic);
            let new = lines(&after, isolation, topic);
            assert_eq!(&new[..old.len()], &old[..], "{isolation} {topic}");
            assert!(new.len() > old.len(), "{isolation} {topic}: nothing new");
        }
    }
    assert_eq!(lines(&after, "uncommitted", "events").len(), 60 + 30);
    assert_eq!(lines(&after, "uncommitted", "zipped").len(), 20 + 10);
    assert_eq!(lines(&after, "committed", "txn").len(), 33 + 1);
    assert_eq!(lines(&after, "uncommitted", "txn").len(), 36 + 2);
    // The compacted topic keeps the latest value of every key: the old ones where not written
    // since, the new ones otherwise (a key whose latest is a tombstone may be kept as one).
    let hex = |s: &str| {
        let mut out = String::from("x");
        for b in s.as_bytes() {
            out.push_str(&format!("{b:02x}"));
        }
        out
    };
    let mut model = latest(&before, "committed");
    for (k, v) in &table_writes {
        model.insert(hex(k), v.as_deref().map_or("-".to_string(), hex));
    }
    let mut got = latest(&after, "committed");
    model.retain(|_, v| v != "-");
    got.retain(|_, v| v != "-");
    assert_eq!(got, model);
    // Group offsets committed by the old build are still there.
    assert!(after.contains("committed fixture-group events 0 17 \"\"\n"));
    assert!(after.contains("committed fixture-group zipped 0 20 \"all of it\"\n"));
    // The old segments and the new ones (format 3: Kafka v2 batches) sit side by side; the
    // first append after the upgrade started a format 3 segment.
    for topic in ["events-0", "txn-0", "zipped-0"] {
        let versions = segment_versions(&dir.path().join(topic));
        assert!(versions.iter().any(|v| *v <= 2), "{topic}: {versions:?}");
        assert_eq!(versions.last(), Some(&3), "{topic}: {versions:?}");
        let first_new = versions.iter().position(|v| *v == 3).unwrap();
        assert!(
            versions[first_new..].iter().all(|v| *v == 3),
            "{topic}: {versions:?}"
        );
    }
    // The cleaner wrote what it rewrote as format 3.
    let versions = segment_versions(&dir.path().join("table-0"));
    assert!(versions.contains(&3), "table-0: {versions:?}");
}
