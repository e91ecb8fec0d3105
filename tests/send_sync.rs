//! The store and producers are `Send + Sync` (shared by reference across threads); consumers,
//! polled records and errors can be moved to another thread.

use std::sync::Arc;

use riverbed::{
    Consumer, ConsumerRecords, Error, Producer, ProducerRecord, Store, TopicConfig, TopicPartition,
};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}

#[test]
fn thread_safety_markers() {
    send_sync::<Store>();
    send_sync::<Producer>();
    send_sync::<Error>();
    send_sync::<TopicPartition>();
    send::<Consumer>();
    send::<ConsumerRecords>();
}

#[test]
fn one_store_and_one_producer_shared_by_reference() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(4)).unwrap();
    let producer = store.producer();
    let shared = Arc::new((store, producer));
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let shared = &shared;
            s.spawn(move || {
                let (store, producer) = &**shared;
                for i in 0..50 {
                    producer
                        .send(ProducerRecord::new("t").partition(t).value(format!("{i}")))
                        .unwrap();
                }
                assert!(store.list_topics().contains(&"t".to_string()));
            });
        }
    });
    let d = shared.0.describe_topic("t").unwrap();
    assert!(d.partitions.iter().all(|p| p.log_end_offset == 50), "{d:?}");
}
