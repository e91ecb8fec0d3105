//! A compacted log or topic refuses records without a key (Kafka: "Compacted topic cannot accept
//! message without key"), with `KeyRequired`, and writes nothing: not through `Log::append`
//! (plain or zstd batches, a keyless record anywhere in the batch), not through `Producer::send`
//! or `send_batch`. Logs that are not compacted take keyless records as before.

use riverbed::{
    BatchBuilder, CleanupPolicy, Compression, ErrorKind, Log, LogConfig, ProducerRecord, Store,
    TopicConfig,
};

#[test]
fn log_refuses_a_batch_with_a_keyless_record() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default().cleanup_policy(CleanupPolicy::CompactDelete);
    let log = Log::open(dir.path(), config).unwrap();
    for compression in [Compression::None, Compression::Zstd { level: 3 }] {
        for keyless_at in 0..3u32 {
            let mut b = BatchBuilder::new(compression);
            for i in 0..3u32 {
                let key = (i != keyless_at).then_some(&b"k"[..]);
                b.append(1, key, Some(&[7u8; 100]), &[]);
            }
            let e = log.append(&b.build().unwrap()).unwrap_err();
            assert!(
                matches!(e.kind(), ErrorKind::KeyRequired { record } if *record == keyless_at),
                "{e:?}"
            );
            assert!(e.to_string().contains("without a key"), "{e}");
        }
    }
    assert_eq!(log.high_watermark(), 0);
    assert_eq!(log.size_in_bytes(), 24);
    let mut b = BatchBuilder::new(Compression::None);
    b.append(1, Some(b"k"), None, &[]);
    log.append(&b.build().unwrap()).unwrap();
    assert_eq!(log.high_watermark(), 1);

    let plain = tempfile::tempdir().unwrap();
    let log = Log::open(plain.path(), LogConfig::default()).unwrap();
    let mut b = BatchBuilder::new(Compression::None);
    b.append(1, None, Some(b"v"), &[]);
    log.append(&b.build().unwrap()).unwrap();
}

#[test]
fn producer_refuses_keyless_records_for_a_compacted_topic() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic(
            "table",
            TopicConfig::new(2).cleanup_policy(CleanupPolicy::Compact),
        )
        .unwrap();
    store.create_topic("stream", TopicConfig::new(1)).unwrap();
    let p = store.producer();
    let e = p.send(ProducerRecord::new("table").value("v")).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::KeyRequired { record: 0 }),
        "{e:?}"
    );
    let e = p
        .send_batch([
            ProducerRecord::new("table").key("a").value("1"),
            ProducerRecord::new("stream").value("keyless is fine here"),
            ProducerRecord::new("table").value("2"),
        ])
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::KeyRequired { record: 2 }),
        "{e:?}"
    );
    for d in store.describe_topic("table").unwrap().partitions {
        assert_eq!(d.log_end_offset, 0, "something was written: {d:?}");
    }
    assert_eq!(
        store.describe_topic("stream").unwrap().partitions[0].log_end_offset,
        0
    );
    p.send(ProducerRecord::new("table").key("a").value("1"))
        .unwrap();
    p.send(ProducerRecord::new("stream").value("x")).unwrap();
}
