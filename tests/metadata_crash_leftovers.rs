//! What a crash leaves at each step of a topic create or delete, rebuilt on disk exactly as the
//! protocol in FORMAT.md (section 8, "Topic changes") leaves it: every such store opens, the
//! change is either wholly done or wholly undone, and open removes only Riverbed's own marked
//! leftovers, never a partition the metadata names or data it cannot account for.

mod common;
use common::{dir_snapshot as snapshot, values_by_partition as read_topic};

use std::path::Path;

use riverbed::{ErrorKind, FlushPolicy, ProducerRecord, RebuildOptions, Store, TopicConfig};

fn fill(store: &Store, topic: &str, n: usize) {
    for i in 0..n {
        store
            .producer()
            .send(
                ProducerRecord::new(topic)
                    .key(format!("k{i}"))
                    .value(format!("{topic}-{i}")),
            )
            .unwrap();
    }
    store.flush().unwrap();
}

/// Names in the store directory, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn markers(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.ends_with(".creating") || n.ends_with(".deleted"))
        .collect()
}

const STAMP_A: &str = "0000000000000a01";
const STAMP_B: &str = "0000000000000b02";

/// A store holding topic `keep` with data, and the metadata bytes naming only `keep`.
fn base(dir: &Path) -> (Vec<Vec<String>>, Vec<u8>) {
    let store = Store::open(dir).unwrap();
    store
        .create_topic("keep", TopicConfig::new(2).flush(FlushPolicy::Manual))
        .unwrap();
    fill(&store, "keep", 20);
    let keep = read_topic(&store, "keep");
    drop(store);
    (keep, std::fs::read(dir.join("topics")).unwrap())
}

/// The metadata bytes of a store naming `keep` and `t` (2 partitions).
fn with_t(dir: &Path) -> Vec<u8> {
    let store = Store::open(dir).unwrap();
    store
        .create_topic("t", TopicConfig::new(2).flush(FlushPolicy::Manual))
        .unwrap();
    drop(store);
    let bytes = std::fs::read(dir.join("topics")).unwrap();
    // Back to the state before the create, as far as the directories go.
    for p in 0..2 {
        std::fs::remove_dir_all(dir.join(format!("t-{p}"))).unwrap();
    }
    bytes
}

/// A create of `t` (2 partitions) that crashed after staging `staged` partitions; `committed`:
/// after the metadata write, with `placed` partitions already moved into place.
fn crashed_create(staged: u32, committed: bool, placed: u32) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (keep, only_keep) = base(dir);
    let both = with_t(dir);
    std::fs::write(
        dir.join("topics"),
        if committed { &both } else { &only_keep },
    )
    .unwrap();
    let staging = dir.join(format!("{STAMP_A}.creating"));
    std::fs::create_dir(&staging).unwrap();
    for p in 0..staged {
        if p < placed {
            std::fs::create_dir(dir.join(format!("t-{p}"))).unwrap();
        } else {
            std::fs::create_dir(staging.join(format!("t-{p}"))).unwrap();
        }
    }
    let what = format!("create crashed: staged {staged}, committed {committed}, placed {placed}");
    let store = Store::open(dir).unwrap_or_else(|e| panic!("{what}: {e}"));
    if committed {
        assert_eq!(store.list_topics(), ["keep", "t"], "{what}");
        assert_eq!(read_topic(&store, "t"), vec![Vec::<String>::new(); 2]);
        fill(&store, "t", 4);
    } else {
        assert_eq!(store.list_topics(), ["keep"], "{what}");
        assert!(
            !dir.join("t-0").exists() && !dir.join("t-1").exists(),
            "{what}"
        );
    }
    assert_eq!(read_topic(&store, "keep"), keep, "{what}");
    assert!(markers(dir).is_empty(), "{what}: {:?}", names(dir));
}

#[test]
fn a_crashed_create_is_undone_before_its_commit_and_finished_after() {
    for staged in 0..=2 {
        crashed_create(staged, false, 0);
    }
    for placed in 0..=2 {
        crashed_create(2, true, placed);
    }
}

/// A delete of `t` (2 partitions, with data) that crashed after moving `moved` partitions into
/// its marked directory; `committed`: after the metadata write, with `removed` of them gone.
fn crashed_delete(moved: u32, committed: bool, removed: u32) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (keep, only_keep) = base(dir);
    let store = Store::open(dir).unwrap();
    store
        .create_topic("t", TopicConfig::new(2).flush(FlushPolicy::Manual))
        .unwrap();
    fill(&store, "t", 30);
    let t = read_topic(&store, "t");
    drop(store);
    let marked = dir.join(format!("{STAMP_A}.deleted"));
    std::fs::create_dir(&marked).unwrap();
    for p in 0..moved {
        let name = format!("t-{p}");
        std::fs::rename(dir.join(&name), marked.join(&name)).unwrap();
    }
    if committed {
        std::fs::write(dir.join("topics"), &only_keep).unwrap();
        for p in 0..removed {
            std::fs::remove_dir_all(marked.join(format!("t-{p}"))).unwrap();
        }
    }
    let what = format!("delete crashed: moved {moved}, committed {committed}, removed {removed}");
    let store = Store::open(dir).unwrap_or_else(|e| panic!("{what}: {e}"));
    if committed {
        assert_eq!(store.list_topics(), ["keep"], "{what}");
        assert!(!dir.join("t-0").exists(), "{what}");
    } else {
        assert_eq!(store.list_topics(), ["keep", "t"], "{what}");
        assert_eq!(read_topic(&store, "t"), t, "{what}");
    }
    assert_eq!(read_topic(&store, "keep"), keep, "{what}");
    assert!(markers(dir).is_empty(), "{what}: {:?}", names(dir));
}

#[test]
fn a_crashed_delete_is_undone_before_its_commit_and_finished_after() {
    for moved in 0..=2 {
        crashed_delete(moved, false, 0);
    }
    for removed in 0..=2 {
        crashed_delete(2, true, removed);
    }
}

/// Versions before the marked directories renamed a deleted topic's partitions to
/// `<topic>-<n>.<stamp>.deleted`, only after the deletion committed: still removed at open.
#[test]
fn leftovers_of_earlier_versions_deletes_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (keep, _) = base(dir);
    let old = dir.join("gone-0.1733580000000000000.deleted");
    std::fs::create_dir(&old).unwrap();
    std::fs::write(old.join("00000000000000000000.log"), b"x").unwrap();
    let store = Store::open(dir).unwrap();
    assert!(!old.exists());
    assert_eq!(read_topic(&store, "keep"), keep);
}

#[test]
fn two_marked_copies_of_one_partition_are_never_guessed_between() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    base(dir);
    for stamp in [STAMP_A, STAMP_B] {
        let m = dir.join(format!("{stamp}.deleted"));
        std::fs::create_dir(&m).unwrap();
    }
    std::fs::rename(
        dir.join("keep-0"),
        dir.join(format!("{STAMP_A}.deleted/keep-0")),
    )
    .unwrap();
    std::fs::create_dir(dir.join(format!("{STAMP_B}.deleted/keep-0"))).unwrap();
    std::fs::write(dir.join(format!("{STAMP_B}.deleted/keep-0/x")), b"?").unwrap();
    let before = snapshot(dir);
    let e = Store::open(dir).unwrap_err();
    match e.kind() {
        ErrorKind::MetadataMismatch { unaccounted, .. } => assert_eq!(unaccounted.len(), 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(snapshot(dir), before);
}

#[test]
fn a_marked_directory_holding_foreign_files_is_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (keep, _) = base(dir);
    let m = dir.join(format!("{STAMP_A}.deleted"));
    std::fs::create_dir(&m).unwrap();
    std::fs::write(m.join("notes.txt"), b"not riverbed's").unwrap();
    let c = dir.join(format!("{STAMP_B}.creating"));
    std::fs::create_dir_all(c.join("x-0")).unwrap();
    std::fs::write(c.join("x-0/file"), b"not riverbed's either").unwrap();
    let store = Store::open(dir).unwrap();
    assert_eq!(read_topic(&store, "keep"), keep);
    assert_eq!(
        std::fs::read(m.join("notes.txt")).unwrap(),
        b"not riverbed's"
    );
    assert_eq!(
        std::fs::read(c.join("x-0/file")).unwrap(),
        b"not riverbed's either"
    );
}

/// Without a metadata file a delete is not provably committed: its marked partitions are
/// evidence, and a rebuild brings them back.
#[test]
fn without_metadata_a_deletes_marked_partitions_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (keep, _) = base(dir);
    let m = dir.join(format!("{STAMP_A}.deleted"));
    std::fs::create_dir(&m).unwrap();
    std::fs::rename(dir.join("keep-1"), m.join("keep-1")).unwrap();
    std::fs::remove_file(dir.join("topics")).unwrap();
    let before = snapshot(dir);
    let e = Store::open(dir).unwrap_err();
    match e.kind() {
        ErrorKind::MetadataMismatch {
            metadata_missing,
            unaccounted,
            ..
        } => {
            assert!(*metadata_missing);
            assert!(unaccounted.contains(&m.join("keep-1")), "{unaccounted:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(snapshot(dir), before);
    let report = Store::rebuild_metadata(dir, &RebuildOptions::default()).unwrap();
    assert_eq!(report.topics[0].config.get_partitions(), 2);
    let store = Store::open(dir).unwrap();
    assert_eq!(read_topic(&store, "keep"), keep);
    assert!(markers(dir).is_empty(), "{:?}", names(dir));
}

/// Deletes and creates through the API leave no marker behind, and a delete first clears the
/// leftovers of earlier committed deletes.
#[test]
fn api_changes_leave_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (keep, _) = base(dir);
    let store = Store::open(dir).unwrap();
    // A committed delete whose removal failed earlier.
    let m = dir.join(format!("{STAMP_A}.deleted"));
    std::fs::create_dir_all(m.join("old-0")).unwrap();
    for round in 0..3 {
        store.create_topic("t", TopicConfig::new(3)).unwrap();
        fill(&store, "t", 5);
        store.add_partitions("t", 4).unwrap();
        store.delete_topic("t").unwrap();
        assert!(markers(dir).is_empty(), "round {round}: {:?}", names(dir));
    }
    assert_eq!(read_topic(&store, "keep"), keep);
    drop(store);
    assert_eq!(Store::open(dir).unwrap().list_topics(), ["keep"]);
}
