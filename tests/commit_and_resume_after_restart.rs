//! Committed offsets: `commit` stores the current positions and `commit_offsets` explicit
//! offsets with metadata, durably and atomically; `committed` and `lag` report them; and after
//! the store is closed and reopened, a new member of the group resumes exactly at the committed
//! offset.

use std::time::{Duration, Instant};

use riverbed::{
    Consumer, ConsumerConfig, ErrorKind, OffsetAndMetadata, OffsetReset, ProducerRecord, Store,
    TopicConfig, TopicPartition,
};

fn tp(p: u32) -> TopicPartition {
    TopicPartition::new("t", p)
}

fn config(group: &str) -> ConsumerConfig {
    ConsumerConfig::new(group)
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false)
}

/// Polls until `n` records arrived (or 3 s); returns (partition, offset, value).
fn take(c: &mut Consumer, n: usize) -> Vec<(u32, u64, String)> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while out.len() < n && Instant::now() < deadline {
        for r in c.poll(Duration::from_millis(50)).unwrap().iter() {
            out.push((
                r.partition(),
                r.offset(),
                String::from_utf8(r.value().unwrap().to_vec()).unwrap(),
            ));
        }
    }
    out
}

#[test]
fn commit_reopen_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.create_topic("t", TopicConfig::new(1)).unwrap();
        let p = store.producer();
        for i in 0..10 {
            p.send(ProducerRecord::new("t").value(format!("v{i}")))
                .unwrap();
        }
        let mut c = store.consumer(config("g").max_poll_records(4)).unwrap();
        c.subscribe(&["t"]).unwrap();
        assert_eq!(c.committed(&tp(0)).unwrap(), None);
        assert_eq!(c.lag(&tp(0)).unwrap(), 10, "lag from the log start");

        let got = take(&mut c, 4);
        assert_eq!(
            got.iter().map(|r| r.1).collect::<Vec<_>>(),
            [0, 1, 2, 3],
            "max_poll_records 4"
        );
        c.commit().unwrap();
        assert_eq!(
            c.committed(&tp(0)).unwrap(),
            Some(OffsetAndMetadata::new(4))
        );
        assert_eq!(c.lag(&tp(0)).unwrap(), 6);

        // An explicit offset with metadata replaces it; it need not be the position.
        let meta = OffsetAndMetadata {
            offset: 6,
            metadata: "processed up to v5; batch #17 ✓".to_string(),
        };
        c.commit_offsets(&[(tp(0), meta.clone())]).unwrap();
        assert_eq!(c.committed(&tp(0)).unwrap(), Some(meta.clone()));
        assert_eq!(c.position(&tp(0)).unwrap(), 4, "committing does not seek");
        assert_eq!(c.lag(&tp(0)).unwrap(), 4);
        assert_eq!(store.committed_offsets("g"), [(tp(0), meta.clone())]);
        assert_eq!(store.list_groups(), ["g"]);
        // More records after the commit raise the lag.
        p.send(ProducerRecord::new("t").value("v10")).unwrap();
        assert_eq!(c.lag(&tp(0)).unwrap(), 5);
        // Auto-commit is off: closing does not commit the position (4).
        c.close().unwrap();
        assert_eq!(store.committed_offsets("g"), [(tp(0), meta)]);
    }
    let store = Store::open(dir.path()).unwrap();
    let meta = OffsetAndMetadata {
        offset: 6,
        metadata: "processed up to v5; batch #17 ✓".to_string(),
    };
    assert_eq!(store.list_groups(), ["g"]);
    assert_eq!(store.committed_offsets("g"), [(tp(0), meta.clone())]);
    let mut c = store.consumer(config("g")).unwrap();
    c.subscribe(&["t"]).unwrap();
    assert_eq!(c.committed(&tp(0)).unwrap(), Some(meta));
    assert_eq!(c.lag(&tp(0)).unwrap(), 5);
    let got = take(&mut c, 5);
    let want: Vec<(u32, u64, String)> = (6..11).map(|i| (0, i, format!("v{i}"))).collect();
    assert_eq!(
        got, want,
        "the new member did not resume at the committed offset"
    );
    c.commit().unwrap();
    assert_eq!(c.lag(&tp(0)).unwrap(), 0);
    assert_eq!(
        c.committed(&tp(0)).unwrap(),
        Some(OffsetAndMetadata::new(11))
    );
}

#[test]
fn multi_partition_commits_are_atomic_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.create_topic("t", TopicConfig::new(3)).unwrap();
        let p = store.producer();
        for i in 0..30u32 {
            p.send(
                ProducerRecord::new("t")
                    .partition(i % 3)
                    .value(format!("v{i}")),
            )
            .unwrap();
        }
        let mut c = store.consumer(config("g")).unwrap();
        c.assign(&[tp(0), tp(1), tp(2)]).unwrap();
        let offsets: Vec<(TopicPartition, OffsetAndMetadata)> = (0..3)
            .map(|p| {
                (
                    tp(p),
                    OffsetAndMetadata {
                        offset: u64::from(p) + 2,
                        metadata: format!("m{p}"),
                    },
                )
            })
            .collect();
        c.commit_offsets(&offsets).unwrap();
        // A commit naming one unassigned partition commits none of them.
        c.assign(&[tp(0), tp(1)]).unwrap();
        let e = c
            .commit_offsets(&[
                (tp(0), OffsetAndMetadata::new(9)),
                (tp(2), OffsetAndMetadata::new(9)),
            ])
            .unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::NotAssigned { partition: 2, .. }),
            "{e:?}"
        );
        assert_eq!(store.committed_offsets("g"), offsets);
        // Other groups are untouched by g's commits.
        assert!(store.committed_offsets("h").is_empty());
    }
    let store = Store::open(dir.path()).unwrap();
    let got = store.committed_offsets("g");
    assert_eq!(got.len(), 3);
    for (p, (t, o)) in got.iter().enumerate() {
        assert_eq!(t, &tp(p as u32));
        assert_eq!(o.offset, p as u64 + 2);
        assert_eq!(o.metadata, format!("m{p}"));
    }
    // A new subscriber resumes each partition at its own committed offset.
    let mut c = store.consumer(config("g")).unwrap();
    c.subscribe(&["t"]).unwrap();
    let got = take(&mut c, 8 + 7 + 6);
    for p in 0..3u32 {
        let offs: Vec<u64> = got.iter().filter(|r| r.0 == p).map(|r| r.1).collect();
        assert_eq!(
            offs,
            (u64::from(p) + 2..10).collect::<Vec<_>>(),
            "partition {p}"
        );
    }
}

#[test]
fn close_auto_commits_and_drop_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(1)).unwrap();
    let p = store.producer();
    for i in 0..10 {
        p.send(ProducerRecord::new("t").value(format!("v{i}")))
            .unwrap();
    }
    // Auto-commit on (the default): close commits the position.
    let mut c = store
        .consumer(
            ConsumerConfig::new("auto")
                .auto_offset_reset(OffsetReset::Earliest)
                .max_poll_records(3),
        )
        .unwrap();
    c.subscribe(&["t"]).unwrap();
    assert_eq!(take(&mut c, 3).len(), 3);
    c.close().unwrap();
    assert_eq!(
        store.committed_offsets("auto"),
        [(tp(0), OffsetAndMetadata::new(3))]
    );

    // Dropping is a crash: nothing is committed, and the next member re-reads.
    let mut c = store
        .consumer(
            ConsumerConfig::new("auto")
                .auto_offset_reset(OffsetReset::Earliest)
                .max_poll_records(3),
        )
        .unwrap();
    c.subscribe(&["t"]).unwrap();
    let got = take(&mut c, 3);
    assert_eq!(got.iter().map(|r| r.1).collect::<Vec<_>>(), [3, 4, 5]);
    drop(c);
    assert_eq!(
        store.committed_offsets("auto"),
        [(tp(0), OffsetAndMetadata::new(3))]
    );
    let mut c = store.consumer(config("auto")).unwrap();
    c.subscribe(&["t"]).unwrap();
    let got = take(&mut c, 7);
    assert_eq!(
        got.iter().map(|r| r.1).collect::<Vec<_>>(),
        (3..10).collect::<Vec<_>>()
    );
}

#[test]
fn lag_is_measured_from_the_log_start_and_never_negative() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(2)).unwrap();
    let p = store.producer();
    for _ in 0..4 {
        p.send(ProducerRecord::new("t").partition(0).value("x"))
            .unwrap();
    }
    let mut c = store.consumer(config("g")).unwrap();
    c.assign(&[tp(0), tp(1)]).unwrap();
    assert_eq!(c.lag(&tp(0)).unwrap(), 4);
    assert_eq!(c.lag(&tp(1)).unwrap(), 0);
    c.commit_offsets(&[(tp(0), OffsetAndMetadata::new(100))])
        .unwrap();
    assert_eq!(c.lag(&tp(0)).unwrap(), 0);
    // lag needs a known partition but not an assignment.
    let e = c.lag(&TopicPartition::new("t", 5)).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::UnknownPartition { partition: 5, .. }),
        "{e:?}"
    );
}
