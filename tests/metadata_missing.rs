//! A store whose topic metadata file (`<dir>/topics`) is missing, stale or damaged holds data
//! Riverbed cannot account for: it must refuse to open with an error naming the file and the
//! directories, delete nothing, and open again with every record once the metadata is rebuilt
//! from the directories (`Store::rebuild_metadata`, the CLI's `topics rebuild-metadata`).
//!
//! Before this was fixed, `Store::open` on a store without `topics` succeeded with no topics and
//! removed every partition directory as an "orphan" (issue 13, item 1).

mod common;
use common::{dir_snapshot as snapshot, values_by_partition as read_topic};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use riverbed::{
    CleanupPolicy, ErrorKind, FlushPolicy, ProducerRecord, RebuildOptions, Store, TopicConfig,
};

/// A store with two topics holding fsynced records; returns what each partition holds.
fn populated(dir: &Path) -> BTreeMap<String, Vec<Vec<String>>> {
    let store = Store::open(dir).unwrap();
    store
        .create_topic(
            "orders",
            TopicConfig::new(3)
                .flush(FlushPolicy::Manual)
                .segment_bytes(4096)
                .max_message_bytes(1024)
                .retention_ms(Some(60_000)),
        )
        .unwrap();
    store
        .create_topic(
            "users",
            TopicConfig::new(1).cleanup_policy(CleanupPolicy::Compact),
        )
        .unwrap();
    let producer = store.producer();
    for i in 0..200 {
        producer
            .send(
                ProducerRecord::new("orders")
                    .key(format!("k{i}"))
                    .value(format!("order-{i}")),
            )
            .unwrap();
    }
    for i in 0..5 {
        producer
            .send(
                ProducerRecord::new("users")
                    .key(format!("u{i}"))
                    .value(format!("user-{i}")),
            )
            .unwrap();
    }
    store.flush().unwrap();
    let mut want = BTreeMap::new();
    for t in ["orders", "users"] {
        want.insert(t.to_string(), read_topic(&store, t));
    }
    want
}

fn mismatch(e: &riverbed::Error) -> (&PathBuf, bool, &Vec<PathBuf>, &Vec<PathBuf>) {
    match e.kind() {
        ErrorKind::MetadataMismatch {
            metadata,
            metadata_missing,
            unaccounted,
            missing,
        } => (metadata, *metadata_missing, unaccounted, missing),
        other => panic!("expected MetadataMismatch, got {other:?}: {e}"),
    }
}

#[test]
fn missing_topics_file_refuses_to_open_and_deletes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    populated(dir);
    std::fs::remove_file(dir.join("topics")).unwrap();
    let before = snapshot(dir);
    for _ in 0..2 {
        let e = Store::open(dir).unwrap_err();
        let (metadata, metadata_missing, unaccounted, missing) = mismatch(&e);
        assert_eq!(metadata, &dir.join("topics"));
        assert!(metadata_missing);
        assert!(missing.is_empty());
        let mut names: Vec<String> = unaccounted
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["orders-0", "orders-1", "orders-2", "users-0"]);
        let msg = e.to_string();
        assert!(
            msg.contains(&dir.join("topics").display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("rebuild-metadata"), "{msg}");
        assert!(msg.contains("orders-1"), "{msg}");
        // Nothing was deleted or changed, and the lock was released.
        assert_eq!(snapshot(dir), before);
    }
}

#[test]
fn rebuilt_metadata_opens_with_every_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let want = populated(dir);
    std::fs::remove_file(dir.join("topics")).unwrap();
    let before = snapshot(dir);

    // A dry run writes nothing.
    let dry = Store::rebuild_metadata(dir, &RebuildOptions::default().dry_run(true)).unwrap();
    assert!(!dry.written);
    assert_eq!(snapshot(dir), before);

    let options = RebuildOptions::default().topic_settings(vec![(
        "users".into(),
        "cleanup_policy".into(),
        "compact".into(),
    )]);
    let report = Store::rebuild_metadata(dir, &options).unwrap();
    assert!(report.written);
    let topics: Vec<(&str, u32, bool)> = report
        .topics
        .iter()
        .map(|t| (t.name.as_str(), t.config.get_partitions(), t.config_known))
        .collect();
    assert_eq!(topics, [("orders", 3, false), ("users", 1, false)]);
    // Unknown settings: nothing is deleted by retention until the user says so, and the
    // segments found still fit.
    let orders = &report.topics[0].config;
    assert_eq!(orders.get_log().get_retention_ms(), None);
    assert!(orders.get_log().get_segment_bytes() >= 4096);
    assert_eq!(
        report.topics[1].config.get_log().get_cleanup_policy(),
        CleanupPolicy::Compact
    );
    // Only the metadata file was added.
    let mut after = snapshot(dir);
    assert!(after.remove(Path::new("topics")).is_some());
    assert_eq!(after, before);

    let store = Store::open(dir).unwrap();
    assert_eq!(store.list_topics(), ["orders", "users"]);
    for (t, values) in &want {
        assert_eq!(&read_topic(&store, t), values, "{t}");
    }
    assert_eq!(
        store
            .describe_topic("users")
            .unwrap()
            .config
            .get_log()
            .get_cleanup_policy(),
        CleanupPolicy::Compact
    );
}

#[test]
fn stale_metadata_keeps_known_settings_and_adds_the_unknown_topics() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The metadata of a store that had only `orders`...
    {
        let store = Store::open(dir).unwrap();
        store
            .create_topic(
                "orders",
                TopicConfig::new(3)
                    .flush(FlushPolicy::Manual)
                    .segment_bytes(4096)
                    .max_message_bytes(1024)
                    .max_message_bytes(1024)
                    .retention_ms(Some(60_000)),
            )
            .unwrap();
    }
    let old = std::fs::read(dir.join("topics")).unwrap();
    std::fs::remove_dir_all(dir.join("orders-0")).unwrap();
    std::fs::remove_dir_all(dir.join("orders-1")).unwrap();
    std::fs::remove_dir_all(dir.join("orders-2")).unwrap();
    std::fs::remove_file(dir.join("topics")).unwrap();
    let want = populated(dir);
    // ... restored from a backup over a store that has more.
    std::fs::write(dir.join("topics"), &old).unwrap();
    let before = snapshot(dir);
    let e = Store::open(dir).unwrap_err();
    let (_, metadata_missing, unaccounted, missing) = mismatch(&e);
    assert!(!metadata_missing);
    assert_eq!(unaccounted, &[dir.join("users-0")]);
    assert!(missing.is_empty());
    assert_eq!(snapshot(dir), before);

    let report = Store::rebuild_metadata(
        dir,
        &RebuildOptions::default().settings(vec![("retention_ms".into(), "86400000".into())]),
    )
    .unwrap();
    let orders = &report.topics[0];
    assert!(orders.config_known);
    assert_eq!(orders.config.get_log().get_retention_ms(), Some(60_000));
    let users = &report.topics[1];
    assert!(!users.config_known);
    assert_eq!(users.config.get_log().get_retention_ms(), Some(86_400_000));
    let store = Store::open(dir).unwrap();
    for (t, values) in &want {
        assert_eq!(&read_topic(&store, t), values, "{t}");
    }
}

#[test]
fn a_missing_partition_directory_is_reported_not_recreated_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    populated(dir);
    let aside = tempfile::tempdir().unwrap();
    std::fs::rename(dir.join("orders-1"), aside.path().join("orders-1")).unwrap();
    let before = snapshot(dir);
    let e = Store::open(dir).unwrap_err();
    let (_, metadata_missing, unaccounted, missing) = mismatch(&e);
    assert!(!metadata_missing);
    assert!(unaccounted.is_empty());
    assert_eq!(missing, &[dir.join("orders-1")]);
    assert_eq!(
        snapshot(dir),
        before,
        "the partition was recreated or something removed"
    );

    // A rebuild refuses to guess: partitions are 0..n without gaps.
    let e = Store::rebuild_metadata(dir, &RebuildOptions::default()).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidArgument(_)), "{e:?}");
    assert!(e.to_string().contains("orders-1"), "{e}");
    assert_eq!(snapshot(dir), before);
    // Without the metadata, the gap is found from the directories alone.
    std::fs::remove_file(dir.join("topics")).unwrap();
    let e = Store::rebuild_metadata(dir, &RebuildOptions::default()).unwrap_err();
    assert!(e.to_string().contains("orders-1"), "{e}");
}

#[test]
fn damaged_metadata_is_a_corruption_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let want = populated(dir);
    let meta = dir.join("topics");
    let mut bytes = std::fs::read(&meta).unwrap();
    bytes[30] ^= 0x20;
    std::fs::write(&meta, &bytes).unwrap();
    let before = snapshot(dir);
    let e = Store::open(dir).unwrap_err();
    match e.kind() {
        ErrorKind::Corruption { path, .. } => assert_eq!(path.as_deref(), Some(meta.as_path())),
        other => panic!("expected Corruption, got {other:?}"),
    }
    assert!(e.to_string().contains(&meta.display().to_string()), "{e}");
    assert_eq!(snapshot(dir), before);

    // A rebuild does not replace it unless told to, and then keeps its bytes.
    let e = Store::rebuild_metadata(dir, &RebuildOptions::default()).unwrap_err();
    assert!(e.is_corruption(), "{e:?}");
    assert_eq!(snapshot(dir), before);
    let report =
        Store::rebuild_metadata(dir, &RebuildOptions::default().replace_damaged(true)).unwrap();
    let copy = report.damaged_copy.expect("a copy of the damaged file");
    assert_eq!(std::fs::read(&copy).unwrap(), bytes);
    let store = Store::open(dir).unwrap();
    for (t, values) in &want {
        assert_eq!(&read_topic(&store, t), values, "{t}");
    }
    // The kept copy is not mistaken for anything at open.
    drop(store);
    Store::open(dir).unwrap();
    assert!(copy.exists());
}

#[test]
fn a_directory_without_metadata_or_partitions_is_a_new_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
    std::fs::create_dir(dir.join("backup")).unwrap();
    let store = Store::open(dir).unwrap();
    assert!(store.list_topics().is_empty());
    store.create_topic("t", TopicConfig::new(1)).unwrap();
    drop(store);
    assert_eq!(std::fs::read(dir.join("notes.txt")).unwrap(), b"mine");
    assert!(dir.join("backup").is_dir());
    assert_eq!(Store::open(dir).unwrap().list_topics(), ["t"]);
}

#[test]
fn creating_a_topic_over_an_existing_directory_keeps_its_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let store = Store::open(dir).unwrap();
    // A directory that appeared while the store was open (copied in, say).
    std::fs::create_dir(dir.join("t-1")).unwrap();
    std::fs::write(dir.join("t-1/00000000000000000000.log"), b"precious").unwrap();
    let e = store.create_topic("t", TopicConfig::new(2)).unwrap_err();
    let (_, _, unaccounted, _) = mismatch(&e);
    assert_eq!(unaccounted, &[dir.join("t-1")]);
    assert!(store.list_topics().is_empty());
    assert_eq!(
        std::fs::read(dir.join("t-1/00000000000000000000.log")).unwrap(),
        b"precious"
    );
    assert!(
        !dir.join("t-0").exists(),
        "a partial create was left behind"
    );
    // add_partitions refuses the same way.
    store.create_topic("u", TopicConfig::new(1)).unwrap();
    std::fs::create_dir(dir.join("u-1")).unwrap();
    std::fs::write(dir.join("u-1/x"), b"precious").unwrap();
    let e = store.add_partitions("u", 2).unwrap_err();
    mismatch(&e);
    assert_eq!(store.describe_topic("u").unwrap().partitions.len(), 1);
    assert_eq!(std::fs::read(dir.join("u-1/x")).unwrap(), b"precious");
    drop(store);
    // And the store does not open with them in place: they are data it cannot account for.
    let e = Store::open(dir).unwrap_err();
    let (_, _, unaccounted, _) = mismatch(&e);
    assert_eq!(unaccounted, &[dir.join("t-1"), dir.join("u-1")]);
}
