//! `riverbed topics rebuild-metadata`: a store whose `topics` file was lost refuses to open
//! (through the CLI too) and names the command; the command rebuilds the file from the
//! partition directories under the store's lock, and afterwards every record reads back.

use std::path::Path;

use super::{ok, run_in as run};

fn records(dir: &Path, topic: &str) -> Vec<String> {
    let out = ok(dir, &["consume", topic, "-e", "-f", "%p|%o|%s\\n"], "");
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn rebuild_metadata_after_the_topics_file_is_lost() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    ok(
        &dir,
        &[
            "topics",
            "create",
            "events",
            "-p",
            "3",
            "--config",
            "flush=every",
        ],
        "",
    );
    ok(&dir, &["topics", "create", "__audit", "-p", "1"], "");
    let lines: String = (0..60).map(|i| format!("k{i}:v{i}\n")).collect();
    ok(&dir, &["produce", "events", "-K", ":"], &lines);
    ok(&dir, &["produce", "__audit"], "a\nb\n");
    let events = records(&dir, "events");
    let audit = records(&dir, "__audit");
    assert_eq!(events.len(), 60);

    std::fs::remove_file(dir.join("topics")).expect("remove topics");
    // Commands that open the store refuse, name the file and the way out, and delete nothing.
    let out = run(&dir, &["produce", "events"], "x\n");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("topics") && err.contains("rebuild-metadata"),
        "{err}"
    );
    assert!(dir.join("events-2").is_dir() && dir.join("__audit-0").is_dir());
    // Read-only commands do not hide the data behind an empty topic list either.
    let out = run(&dir, &["topics", "list"], "");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rebuild-metadata"), "{err}");
    let out = super::bin()
        .arg("verify")
        .arg(&dir)
        .output()
        .expect("verify");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("rebuild-metadata"),
        "{out:?}"
    );

    // A gap is refused with a clear message.
    let aside = tmp.path().join("aside");
    std::fs::rename(dir.join("events-1"), &aside).expect("move aside");
    let out = run(&dir, &["topics", "rebuild-metadata"], "");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("events-1"), "{err}");
    assert!(!dir.join("topics").exists());
    std::fs::rename(&aside, dir.join("events-1")).expect("move back");

    let dry = ok(&dir, &["topics", "rebuild-metadata", "--dry-run"], "");
    assert!(dry.contains("dry run"), "{dry}");
    assert!(!dir.join("topics").exists());

    let out = ok(
        &dir,
        &[
            "topics",
            "rebuild-metadata",
            "--config",
            "events:flush=every",
            "--json",
        ],
        "",
    );
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(report["written"], true);
    assert_eq!(report["topics"][0]["topic"], "__audit");
    assert_eq!(report["topics"][1]["topic"], "events");
    assert_eq!(report["topics"][1]["partitions"], 3);
    assert_eq!(report["topics"][1]["config_known"], false);
    assert_eq!(report["topics"][1]["config"]["flush"], "every");
    assert_eq!(report["topics"][1]["config"]["retention_ms"], "none");

    assert_eq!(records(&dir, "events"), events);
    assert_eq!(records(&dir, "__audit"), audit);
    let d: serde_json::Value =
        serde_json::from_str(&ok(&dir, &["topics", "describe", "events", "--json"], ""))
            .expect("JSON");
    assert_eq!(d["config"]["flush"], "every");
}

#[test]
fn rebuild_metadata_takes_the_lock_and_keeps_a_damaged_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    ok(&dir, &["topics", "create", "t", "-p", "2"], "");
    ok(&dir, &["produce", "t"], "a\nb\nc\n");
    let want = records(&dir, "t");
    {
        let _store = riverbed::Store::open(&dir).expect("open");
        let out = run(&dir, &["topics", "rebuild-metadata"], "");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("in use by process"), "{err}");
    }
    let meta = dir.join("topics");
    let mut bytes = std::fs::read(&meta).expect("read");
    bytes[5] ^= 1;
    std::fs::write(&meta, &bytes).expect("write");
    let out = run(&dir, &["topics", "rebuild-metadata"], "");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--replace-damaged") && err.contains("topics"),
        "{err}"
    );
    let out = ok(
        &dir,
        &["topics", "rebuild-metadata", "--replace-damaged"],
        "",
    );
    assert!(out.contains("damaged file was kept"), "{out}");
    let kept: Vec<_> = std::fs::read_dir(&dir)
        .expect("list")
        .filter_map(|e| {
            let n = e.expect("entry").file_name().to_string_lossy().into_owned();
            n.ends_with(".damaged").then_some(n)
        })
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(std::fs::read(dir.join(&kept[0])).expect("read"), bytes);
    assert_eq!(records(&dir, "t"), want);
}
