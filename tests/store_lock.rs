//! A store directory is opened by at most one handle at a time: a second `Store::open` of the
//! same directory, from this process or another, gets `ErrorKind::Locked` until every clone of
//! the first handle is gone.

use std::process::Command;

use riverbed::{ErrorKind, ProducerRecord, Store, TopicConfig};

/// Set in the child process to the directory it must try to open.
const CHILD_DIR_VAR: &str = "RIVERBED_STORE_LOCK_CHILD_DIR";

/// Not a test of its own: the body the parent runs in a child process (re-executing this test
/// binary with `CHILD_DIR_VAR` set). Prints `RESULT=<outcome>` on stdout.
#[test]
fn child_process_entry() {
    let Ok(dir) = std::env::var(CHILD_DIR_VAR) else {
        return;
    };
    let outcome = match Store::open(&dir) {
        Ok(store) => {
            // Prove the handle is usable: the parent created topic "t" before locking was tested.
            format!("ok topics={:?}", store.list_topics())
        }
        Err(e) => match e.kind() {
            ErrorKind::Locked { .. } => "Locked".to_string(),
            other => format!("other {other:?}"),
        },
    };
    println!("RESULT={outcome}");
}

/// Runs `child_process_entry` in a new process against `dir` and returns what it printed.
fn open_in_child(dir: &std::path::Path) -> String {
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(exe)
        .args([
            "child_process_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_VAR, dir)
        .output()
        .expect("spawn child test process");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.split_once("RESULT=").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("child printed no RESULT line:\n{stdout}"))
        .to_string()
}

#[test]
fn second_open_in_same_process_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(1)).unwrap();

    let e = Store::open(dir.path()).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Locked { .. }), "{e:?}");
    // A different path spelling of the same directory is still the same lock.
    let e = Store::open(dir.path().join(".")).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Locked { .. }), "{e:?}");

    // The refused open changed nothing: the first handle still works.
    let m = store
        .producer()
        .send(ProducerRecord::new("t").value("v"))
        .expect("first handle still usable");
    assert_eq!(m.offset, 0);

    // Clones (and the producers that hold one) keep the lock.
    let producer = store.producer();
    let clone = store.clone();
    drop(store);
    let e = Store::open(dir.path()).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Locked { .. }), "{e:?}");
    drop(clone);
    let e = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Locked { .. }),
        "a live producer must keep the store open: {e:?}"
    );
    drop(producer);

    // Once every handle is gone the directory opens again, with its data.
    let store = Store::open(dir.path()).expect("reopen after all handles dropped");
    assert_eq!(store.list_topics(), ["t"]);
    assert_eq!(
        store.describe_topic("t").unwrap().partitions[0].log_end_offset,
        1
    );
}

#[test]
fn open_from_another_process_is_locked_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(1)).unwrap();

    assert_eq!(open_in_child(dir.path()), "Locked");

    drop(store);
    assert_eq!(open_in_child(dir.path()), "ok topics=[\"t\"]");

    // The child has exited, so its lock is gone too.
    Store::open(dir.path()).expect("open after the child exited");
}

#[test]
fn different_directories_do_not_conflict() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let sa = Store::open(a.path()).unwrap();
    let sb = Store::open(b.path()).unwrap();
    sa.create_topic("x", TopicConfig::new(1)).unwrap();
    assert!(sb.list_topics().is_empty());
    // A store nested inside another store's directory is a different directory.
    let nested = a.path().join("nested");
    let sn = Store::open(&nested).unwrap();
    assert!(sn.list_topics().is_empty());
    let e = Store::open(&nested).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Locked { .. }), "{e:?}");
}
