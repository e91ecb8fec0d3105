//! Topic names are checked as Kafka checks them: 1 to 249 characters of `[a-zA-Z0-9._-]`, and
//! not `.` or `..`. A bad name is refused with `InvalidArgument` and nothing is created; every
//! valid name, including one of the maximum length, works for the whole life of a topic.

use std::time::Duration;

use riverbed::{
    validate_topic_name, ConsumerConfig, ErrorKind, OffsetReset, ProducerRecord, Store,
    StoreConfig, TopicConfig, TopicPartition,
};

fn bad_names() -> Vec<String> {
    vec![
        String::new(),
        ".".into(),
        "..".into(),
        "x".repeat(250),
        "x".repeat(1000),
        "a/b".into(),
        "../escape".into(),
        "a b".into(),
        "tab\t".into(),
        "new\nline".into(),
        "caf\u{e9}".into(),
        "\u{2013}dash".into(),
        "star*".into(),
        "colon:".into(),
        "back\\slash".into(),
        "nul\0".into(),
        "plus+".into(),
        "at@".into(),
        "comma,".into(),
    ]
}

fn good_names() -> Vec<String> {
    vec![
        "a".into(),
        "Z".into(),
        "0".into(),
        "_".into(),
        "-".into(),
        "...".into(),
        ".a".into(),
        "a..b".into(),
        "payments.v2_EU-west".into(),
        "ALL_CAPS-123".into(),
        "x".repeat(249),
    ]
}

#[test]
fn validate_topic_name_follows_kafka_rules() {
    for name in good_names() {
        validate_topic_name(&name).unwrap_or_else(|e| panic!("{name:?} refused: {e}"));
    }
    for name in bad_names() {
        let e = validate_topic_name(&name).expect_err(&format!("{name:?} accepted"));
        assert!(
            matches!(e.kind(), ErrorKind::InvalidArgument(_)),
            "{name:?}: {e:?}"
        );
    }
    // The store's internal offsets topic cannot be shadowed by a user topic.
    assert!(validate_topic_name("__consumer_offsets").is_err());
}

#[test]
fn create_topic_refuses_bad_names_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let before: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    for name in bad_names() {
        let e = store
            .create_topic(&name, TopicConfig::new(1))
            .expect_err(&format!("{name:?} accepted"));
        assert!(
            matches!(e.kind(), ErrorKind::InvalidArgument(_)),
            "{name:?}: {e:?}"
        );
    }
    assert!(store.list_topics().is_empty());
    let after: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before.len(), after.len(), "{before:?} -> {after:?}");
    // The parent of the store directory was not written to by "../escape".
    assert!(!dir.path().parent().unwrap().join("escape-0").exists());
}

#[test]
fn auto_create_and_subscribe_refuse_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        StoreConfig::default()
            .auto_create_topics(true)
            .default_topic(TopicConfig::new(1)),
    )
    .unwrap();
    let e = store
        .producer()
        .send(ProducerRecord::new("a/b").value("v"))
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidArgument(_)), "{e:?}");
    assert!(store.list_topics().is_empty());

    let mut c = store.consumer(ConsumerConfig::new("g")).unwrap();
    let e = c.subscribe(&["ok", ".."]).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidArgument(_)), "{e:?}");
}

#[test]
fn all_valid_names_work_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        for name in good_names() {
            store
                .create_topic(&name, TopicConfig::new(2))
                .unwrap_or_else(|e| panic!("create {name:?}: {e}"));
            store
                .producer()
                .send(ProducerRecord::new(name.as_str()).partition(1).value("v"))
                .unwrap();
        }
        store.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let mut want = good_names();
    want.sort();
    assert_eq!(store.list_topics(), want);
    for name in good_names() {
        let d = store.describe_topic(&name).unwrap();
        assert_eq!(d.partitions[1].log_end_offset, 1, "{name:?}");
    }
}

/// The longest legal name must survive every admin operation, including delete (whose
/// bookkeeping must not make the on-disk names longer than the file system allows).
#[test]
fn longest_name_can_be_used_deleted_and_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let name = "n".repeat(249);
    let store = Store::open(dir.path()).unwrap();
    store.create_topic(&name, TopicConfig::new(2)).unwrap();
    store.add_partitions(&name, 12).unwrap();
    let m = store
        .producer()
        .send(ProducerRecord::new(name.as_str()).partition(11).value("v"))
        .unwrap();
    assert_eq!((m.partition, m.offset), (11, 0));

    let mut c = store
        .consumer(ConsumerConfig::new("g").auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    c.assign(&[TopicPartition::new(name.as_str(), 11)]).unwrap();
    let recs = c.poll(Duration::from_secs(2)).unwrap();
    assert_eq!(recs.count(), 1);
    drop(c);

    store
        .delete_topic(&name)
        .unwrap_or_else(|e| panic!("deleting a topic with a 249-character name failed: {e}"));
    assert!(store.list_topics().is_empty());
    store.create_topic(&name, TopicConfig::new(1)).unwrap();
    assert_eq!(
        store.describe_topic(&name).unwrap().partitions[0].log_end_offset,
        0
    );
}
