//! Altering a topic's configuration at run time (`Store::alter_topic_config`, Kafka's
//! `incrementalAlterConfigs`): each setting takes effect on the open logs without a reopen,
//! `None` resets a key to its default (Kafka's DELETE), the change is persisted through the
//! metadata file (the commit point) and survives a reopen, a failed metadata write changes
//! nothing, and refused changes leave everything as it was.
//!
//! Kafka's references: the `incrementalAlterConfigs` tests of
//! `core/src/test/scala/integration/kafka/api/PlaintextAdminIntegrationTest.scala` (SET then
//! DELETE of a topic setting reverts it to the default; an invalid value is refused and nothing
//! changes) and `core/src/test/scala/unit/kafka/server/DynamicConfigChangeTest.scala` (a topic
//! config change reaches the open log without a restart). One difference is deliberate: Kafka's
//! cleaner drops keyless records of a topic turned compacted (`LogCleaner`,
//! `shouldRetainRecord`); Riverbed's keeps them (see `Store::alter_topic_config`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use riverbed::{
    CleanupPolicy, ConsumerConfig, ErrorKind, OffsetReset, ProducerRecord, Store, TopicConfig,
    TopicPartition,
};

const WEEK_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// Every record of `tp` from the beginning: (offset, key, value).
fn read_all(store: &Store, tp: &TopicPartition) -> Vec<(u64, Option<Vec<u8>>, Vec<u8>)> {
    let mut c = store
        .consumer(
            ConsumerConfig::default()
                .group_id(None)
                .auto_offset_reset(OffsetReset::Earliest),
        )
        .unwrap();
    c.assign(std::slice::from_ref(tp)).unwrap();
    let end =
        store.describe_topic(&tp.topic).unwrap().partitions[tp.partition as usize].log_end_offset;
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if out.last().is_some_and(|(o, _, _)| o + 1 >= end) || end == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "timed out reading {tp}");
        let records = c.poll(Duration::from_millis(100)).unwrap();
        if records.is_empty() && out.last().is_some_and(|(o, _, _)| o + 1 >= end) {
            break;
        }
        for r in records.iter() {
            out.push((
                r.offset(),
                r.key().map(<[u8]>::to_vec),
                r.value().unwrap_or_default().to_vec(),
            ));
        }
    }
    out
}

fn small_topic() -> TopicConfig {
    TopicConfig::new(1)
        .segment_bytes(4096)
        .max_message_bytes(2048)
        .retention_ms(None)
}

fn describe(store: &Store, topic: &str) -> (Vec<(String, String)>, u64, u64, usize) {
    let d = store.describe_topic(topic).unwrap();
    let p = &d.partitions[0];
    (
        d.config.entries(),
        p.log_start_offset,
        p.log_end_offset,
        p.segments,
    )
}

#[test]
fn retention_altered_is_honoured_by_the_next_pass() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", small_topic()).unwrap();
    let p = store.producer();
    let old = riverbed_now() - 3_600_000;
    for i in 0..40 {
        p.send(
            ProducerRecord::new("t")
                .value(vec![b'x'; 500])
                .timestamp(old + i),
        )
        .unwrap();
    }
    let (_, start, _, segments) = describe(&store, "t");
    assert!(segments > 3, "{segments}");
    assert_eq!(store.apply_retention().unwrap(), 0);
    assert_eq!(start, 0);

    let c = store
        .alter_topic_config("t", &[("retention_ms", Some("60000"))])
        .unwrap();
    assert_eq!(c.get_log().get_retention_ms(), Some(60_000));
    let deleted = store.apply_retention().unwrap();
    assert_eq!(deleted, segments - 1, "every sealed segment is an hour old");
    let (_, start, end, segments) = describe(&store, "t");
    assert_eq!((end, segments), (40, 1));
    assert!(start > 0);
}

fn riverbed_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn segment_bytes_altered_applies_from_the_next_roll() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", small_topic()).unwrap();
    let p = store.producer();
    let mut sent = 0;
    while describe(&store, "t").3 < 2 {
        p.send(ProducerRecord::new("t").value(vec![b'x'; 1000]))
            .unwrap();
        sent += 1;
    }
    store
        .alter_topic_config("t", &[("segment_bytes", Some("65536"))])
        .unwrap();
    // ~30 KB more: at 4 KiB a segment that is 8 or more rolls; at 64 KiB, the active segment
    // (created at 4 KiB) rolls once and the next one takes the rest.
    for _ in 0..30 {
        p.send(ProducerRecord::new("t").value(vec![b'x'; 1000]))
            .unwrap();
        sent += 1;
    }
    let (_, _, end, segments) = describe(&store, "t");
    assert_eq!(end, sent);
    assert_eq!(segments, 3);
    drop(p);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store
            .describe_topic("t")
            .unwrap()
            .config
            .get_log()
            .get_segment_bytes(),
        65536
    );
    assert_eq!(describe(&store, "t").2, sent);
}

#[test]
fn max_record_bytes_altered_applies_to_the_next_send() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic("t", TopicConfig::new(1).max_message_bytes(1024))
        .unwrap();
    let p = store.producer();
    let big = || ProducerRecord::new("t").value(vec![b'x'; 2000]);
    let e = p.send(big()).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::RecordTooLarge { .. }), "{e}");
    store
        .alter_topic_config("t", &[("max_message_bytes", Some("4096"))])
        .unwrap();
    assert_eq!(p.send(big()).unwrap().offset, 0);
    store
        .alter_topic_config("t", &[("max_message_bytes", Some("512"))])
        .unwrap();
    let e = p
        .send(ProducerRecord::new("t").value(vec![b'x'; 1000]))
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::RecordTooLarge { .. }), "{e}");
    assert_eq!(describe(&store, "t").2, 1);
}

/// issue 15: the setting's old name, `max_message_bytes`, still works as a key, to set it and to
/// reset it; the configuration reads back under the new name.
#[test]
fn the_old_name_of_max_message_bytes_is_an_alias() {
    // Spelled in two parts so that a later rename sweep does not rewrite the old name.
    const OLD: &str = concat!("max_record", "_bytes");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(1)).unwrap();
    let max = |store: &Store| {
        store
            .describe_topic("t")
            .unwrap()
            .config
            .get_log()
            .get_max_message_bytes()
    };
    store
        .alter_topic_config("t", &[(OLD, Some("4096"))])
        .unwrap();
    assert_eq!(max(&store), 4096);
    store.alter_topic_config("t", &[(OLD, None)]).unwrap();
    assert_eq!(max(&store), 1 << 20);
    let entries = store.describe_topic("t").unwrap().config.entries();
    assert!(entries.iter().any(|(k, _)| k == "max_message_bytes"));
    assert!(!entries.iter().any(|(k, _)| k == OLD));
}

#[test]
fn delete_to_compact_then_compaction_keeps_last_of_each_key_and_keyless_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", small_topic()).unwrap();
    let p = store.producer();
    p.send(ProducerRecord::new("t").value("keyless")).unwrap();
    for i in 0..60u32 {
        let key = format!("k{}", i % 3);
        let mut v = format!("{key}-{i}-").into_bytes();
        v.resize(400, b'.');
        p.send(ProducerRecord::new("t").key(key).value(v)).unwrap();
    }
    let c = store
        .alter_topic_config("t", &[("cleanup_policy", Some("compact"))])
        .unwrap();
    assert_eq!(c.get_log().get_cleanup_policy(), CleanupPolicy::Compact);
    let e = p
        .send(ProducerRecord::new("t").value("no key"))
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::KeyRequired { .. }), "{e}");
    let report = store.compact_now("t").unwrap();
    assert!(report.records_removed > 0, "{report:?}");
    let records = read_all(&store, &TopicPartition::new("t", 0));
    // Written before the topic was compacted; the cleaner keeps what no later record replaces.
    assert_eq!(records[0], (0, None, b"keyless".to_vec()));
    for k in 0..3u32 {
        let last = (0..60u32).rev().find(|i| i % 3 == k).unwrap();
        let want = format!("k{k}-{last}-").into_bytes();
        assert!(
            records.iter().any(|(_, _, v)| v.starts_with(&want)),
            "last record of k{k} kept"
        );
    }
    assert!(records.len() < 61);
}

#[test]
fn none_resets_a_key_to_its_default() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(2)).unwrap();
    let c = store
        .alter_topic_config(
            "t",
            &[
                ("retention_ms", Some("1000")),
                ("compression", Some("zstd:3")),
            ],
        )
        .unwrap();
    assert_eq!(c.get_log().get_retention_ms(), Some(1000));
    let c = store
        .alter_topic_config("t", &[("retention_ms", None)])
        .unwrap();
    assert_eq!(c.get_log().get_retention_ms(), Some(WEEK_MS));
    assert_eq!(
        c.get_compression(),
        riverbed::Compression::Zstd { level: 3 }
    );
    assert_eq!(c.get_partitions(), 2, "a reset keeps the partition count");
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let d = store.describe_topic("t").unwrap();
    assert_eq!(d.config.get_log().get_retention_ms(), Some(WEEK_MS));
    assert_eq!(
        d.config.get_compression(),
        riverbed::Compression::Zstd { level: 3 }
    );
}

#[test]
fn refused_changes_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", small_topic()).unwrap();
    let meta = dir.path().join("topics");
    let before = (describe(&store, "t").0, std::fs::read(&meta).unwrap());
    type Settings<'a> = &'a [(&'a str, Option<&'a str>)];
    let cases: &[(Settings, &str)] = &[
        // max_message_bytes must fit a segment: each alone would be valid.
        (
            &[
                ("max_message_bytes", Some("8192")),
                ("retention_ms", Some("5")),
            ],
            "config",
        ),
        (&[("partitions", Some("4"))], "config"),
        (&[("segment_bytes", Some("2048"))], "config"),
        (&[("flush", Some("interval:none:1000"))], "config"),
        (&[("min_cleanable_dirty_ratio", Some("1.5"))], "config"),
        (&[("retention.ms", Some("5"))], "argument"),
        (&[("retention_ms", Some("soon"))], "argument"),
        (&[("nonsense", None)], "argument"),
    ];
    for (settings, kind) in cases {
        let e = store.alter_topic_config("t", settings).unwrap_err();
        match (kind, e.kind()) {
            (&"config", ErrorKind::InvalidConfig { .. }) => {}
            (&"argument", ErrorKind::InvalidArgument(_)) => {}
            _ => panic!("{settings:?}: expected {kind}, got {e:?}"),
        }
        let after = (describe(&store, "t").0, std::fs::read(&meta).unwrap());
        assert_eq!(after, before, "{settings:?} changed something");
    }
    let e = store
        .alter_topic_config("nope", &[("retention_ms", None)])
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::UnknownTopic { .. }), "{e}");
    // The log still refuses what the old max refused.
    let e = store
        .producer()
        .send(ProducerRecord::new("t").value(vec![b'x'; 3000]))
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::RecordTooLarge { .. }), "{e}");
}

#[test]
fn flush_changes_without_a_timer_are_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(1)).unwrap();
    let p = store.producer();
    for (i, flush) in ["every", "interval:10:none", "manual", "every"]
        .iter()
        .enumerate()
    {
        let c = store
            .alter_topic_config("t", &[("flush", Some(flush))])
            .unwrap();
        assert_eq!(
            c.entries().iter().find(|(k, _)| k == "flush").unwrap().1,
            *flush
        );
        assert_eq!(
            p.send(ProducerRecord::new("t").value("v")).unwrap().offset,
            i as u64
        );
    }
    store.flush().unwrap();
}

#[test]
fn concurrent_sends_while_altering_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", small_topic()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..3)
        .map(|s| {
            let p = store.producer();
            std::thread::spawn(move || {
                for i in 0..400u32 {
                    p.send(
                        ProducerRecord::new("t")
                            .key(format!("{s}"))
                            .value(format!("{s}-{i}")),
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    let alterer = {
        let (store, stop) = (store.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0u64;
            let mut seg = 4096u64;
            while !stop.load(Ordering::Relaxed) {
                let max = if n.is_multiple_of(2) { "1024" } else { "2048" };
                seg += 512;
                let seg_s = seg.to_string();
                let ret = (n * 1000 + WEEK_MS).to_string();
                store
                    .alter_topic_config(
                        "t",
                        &[
                            ("max_message_bytes", Some(max)),
                            ("segment_bytes", Some(&seg_s)),
                            ("retention_ms", Some(&ret)),
                            (
                                "timestamp_type",
                                Some(if n.is_multiple_of(3) {
                                    "append"
                                } else {
                                    "create"
                                }),
                            ),
                        ],
                    )
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    for s in senders {
        s.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    assert!(alterer.join().unwrap() > 0);
    let records = read_all(&store, &TopicPartition::new("t", 0));
    assert_eq!(records.len(), 1200);
    for s in 0..3u32 {
        let mine: Vec<Vec<u8>> = records
            .iter()
            .filter(|(_, k, _)| k.as_deref() == Some(format!("{s}").as_bytes()))
            .map(|(_, _, v)| v.clone())
            .collect();
        let want: Vec<Vec<u8>> = (0..400u32)
            .map(|i| format!("{s}-{i}").into_bytes())
            .collect();
        assert_eq!(mine, want, "sender {s}'s records, in order");
    }
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(describe(&store, "t").2, 1200);
}

/// The metadata write is the commit point: when it fails (a full disk), the old configuration
/// stays in memory, in the logs and on disk.
#[cfg(feature = "failpoints")]
#[test]
fn failed_metadata_write_changes_nothing() {
    use riverbed::failpoint::{self, sites};
    for site in [
        sites::FILE_CREATE,
        sites::FILE_WRITE,
        sites::FILE_FSYNC,
        sites::FILE_RENAME,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create_topic("t", small_topic()).unwrap();
        let p = store.producer();
        let old = riverbed_now() - 3_600_000;
        for i in 0..20 {
            p.send(
                ProducerRecord::new("t")
                    .value(vec![b'x'; 500])
                    .timestamp(old + i),
            )
            .unwrap();
        }
        let meta = dir.path().join("topics");
        let before = (describe(&store, "t").0, std::fs::read(&meta).unwrap());
        // The temp file of the atomic replace is `topics.tmp`; the rename is armed at `topics`.
        let at = if site == sites::FILE_RENAME {
            meta.clone()
        } else {
            dir.path().join("topics.tmp")
        };
        failpoint::arm(site, &at, 1, failpoint::ENOSPC);
        let e = store
            .alter_topic_config(
                "t",
                &[
                    ("max_message_bytes", Some("4000")),
                    ("retention_ms", Some("1")),
                ],
            )
            .unwrap_err();
        assert!(failpoint::fired(site, &at), "{site}");
        failpoint::disarm(&at);
        if site == sites::FILE_FSYNC {
            // A failed fsync is never reported as a full disk (see `fs::write_atomic`).
            assert!(matches!(e.kind(), ErrorKind::Io { .. }), "{site}: {e:?}");
        } else {
            assert!(e.is_no_space(), "{site}: {e:?}");
        }
        let after = (describe(&store, "t").0, std::fs::read(&meta).unwrap());
        assert_eq!(after, before, "{site}");
        // The logs kept the old settings too: retention (none) deletes nothing, and the old
        // limit refuses a batch the new one would take.
        assert_eq!(store.apply_retention().unwrap(), 0, "{site}");
        let e = store
            .producer()
            .send(ProducerRecord::new("t").value(vec![b'x'; 3000]))
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::RecordTooLarge { .. }), "{e}");
        drop(p);
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(describe(&store, "t").0, before.0, "{site}");
        assert_eq!(describe(&store, "t").1, 0, "{site}");
        // And the same change goes through once there is room.
        let c = store
            .alter_topic_config("t", &[("max_message_bytes", Some("4000"))])
            .unwrap();
        assert_eq!(c.get_log().get_max_message_bytes(), 4000);
    }
}
