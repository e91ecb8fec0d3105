//! A consumer group at work: members join and leave while a producer writes, the group
//! rebalances, and every record is consumed by exactly one member at a time.
//!
//! `cargo run --release --example consumer_group`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use riverbed::{
    Consumer, ConsumerConfig, OffsetReset, ProducerRecord, RebalanceListener, Store, TopicConfig,
    TopicPartition,
};

struct Announce(String, Instant);

impl RebalanceListener for Announce {
    fn on_revoked(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        // Commit what was processed before the partitions go to someone else.
        let _ = consumer.commit();
        println!(
            "{:>6.2}s {} gives up {}",
            self.1.elapsed().as_secs_f64(),
            self.0,
            names(partitions)
        );
    }
    fn on_assigned(&mut self, _consumer: &mut Consumer, partitions: &[TopicPartition]) {
        println!(
            "{:>6.2}s {} now owns {}",
            self.1.elapsed().as_secs_f64(),
            self.0,
            names(partitions)
        );
    }
}

fn names(tps: &[TopicPartition]) -> String {
    let v: Vec<String> = tps.iter().map(|tp| tp.partition.to_string()).collect();
    format!("[{}]", v.join(" "))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    store.create_topic("clicks", TopicConfig::new(6))?;
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(AtomicU64::new(0));
    let consumed = Arc::new(AtomicU64::new(0));

    let producer = {
        let (store, stop, produced) = (store.clone(), Arc::clone(&stop), Arc::clone(&produced));
        std::thread::spawn(move || -> riverbed::Result<()> {
            let p = store.producer();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                p.send(
                    ProducerRecord::new("clicks")
                        .key(format!("user-{}", i % 100))
                        .value(i.to_string()),
                )?;
                i += 1;
                if i.is_multiple_of(1000) {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            produced.store(i, Ordering::Relaxed);
            Ok(())
        })
    };

    // Member i joins at i * 0.4 s and stays for `life` seconds (member 0 stays to the end).
    let lives = [None, Some(1.2), Some(2.0), None];
    let members: Vec<_> = lives
        .iter()
        .enumerate()
        .map(|(i, life)| {
            let (store, consumed, life) = (store.clone(), Arc::clone(&consumed), *life);
            std::thread::spawn(move || -> riverbed::Result<()> {
                std::thread::sleep(Duration::from_millis(400 * i as u64));
                let config = ConsumerConfig::new("demo").auto_offset_reset(OffsetReset::Earliest);
                let mut c = store.consumer(config)?;
                c.subscribe_with_listener(&["clicks"], Announce(format!("member {i}"), start))?;
                let joined = Instant::now();
                let until = life.map_or(Duration::from_secs(3), Duration::from_secs_f64);
                while joined.elapsed() < until {
                    let n = c.poll(Duration::from_millis(50))?.count();
                    consumed.fetch_add(n as u64, Ordering::Relaxed);
                    c.commit()?;
                }
                if i == 3 {
                    // Drain what is left once the producer has stopped.
                    std::thread::sleep(Duration::from_millis(300));
                    loop {
                        let n = c.poll(Duration::from_millis(300))?.count();
                        if n == 0 {
                            break;
                        }
                        consumed.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
                c.close()
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(3000));
    stop.store(true, Ordering::Relaxed);
    producer.join().expect("producer thread")?;
    for m in members {
        m.join().expect("member thread")?;
    }
    let committed: u64 = store
        .committed_offsets("demo")
        .iter()
        .map(|(_, o)| o.offset)
        .sum();
    println!(
        "produced {}, consumed {} (a record consumed but not committed before a rebalance is read again), committed {}",
        produced.load(Ordering::Relaxed),
        consumed.load(Ordering::Relaxed),
        committed
    );
    Ok(())
}
