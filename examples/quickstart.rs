//! Riverbed as a durable queue: produce records durably, close, reopen, consume them back and
//! commit the position.
//!
//! Run with `cargo run --release --example quickstart [DIR]` (a temporary directory by default).

use std::time::{Duration, Instant};

use riverbed::{ConsumerConfig, FlushPolicy, OffsetReset, ProducerRecord, Store, TopicConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let temp;
    let dir = match std::env::args().nth(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let records = 100_000u64;

    {
        let store = Store::open(&dir)?;
        if !store.list_topics().iter().any(|t| t == "payments") {
            // fsync before each append returns: what `send` acknowledged survives a power cut.
            store.create_topic(
                "payments",
                TopicConfig::new(4).flush(FlushPolicy::EveryAppend),
            )?;
        }
        let producer = store.producer();
        let started = Instant::now();
        let batch: Vec<ProducerRecord> = (0..records)
            .map(|i| {
                ProducerRecord::new("payments")
                    .key(format!("account-{}", i % 17))
                    .value(format!("{:+}", (i as i64 * 31) % 200 - 100))
                    .header("source", "quickstart")
            })
            .collect();
        for chunk in batch.chunks(1000) {
            producer.send_batch(chunk.iter().cloned())?;
        }
        let one = producer.send(ProducerRecord::new("payments").key("alice").value("+50"))?;
        let elapsed = started.elapsed();
        println!(
            "produced {} records durably in {:.1} ms ({:.0} records/s); alice's went to partition {} offset {}",
            records + 1,
            elapsed.as_secs_f64() * 1e3,
            (records + 1) as f64 / elapsed.as_secs_f64(),
            one.partition,
            one.offset
        );
        drop(producer);
        // Flushes, writes a clean recovery point (the next open scans nothing) and reports an
        // error that dropping the store would only log.
        store.close()?;
    }

    let started = Instant::now();
    let store = Store::open(&dir)?;
    println!(
        "reopened {} in {:.2} ms",
        dir.display(),
        started.elapsed().as_secs_f64() * 1e3
    );
    let mut consumer = store.consumer(
        ConsumerConfig::new("quickstart")
            .auto_offset_reset(OffsetReset::Earliest)
            .max_poll_records(5000),
    )?;
    consumer.subscribe(&["payments"])?;
    let mut count = 0u64;
    let mut alice = None;
    loop {
        let polled = consumer.poll(Duration::from_millis(200))?;
        if polled.is_empty() {
            break;
        }
        for r in polled.iter() {
            count += 1;
            if r.key() == Some(b"alice") {
                alice = Some(format!(
                    "{}-{} @ {}: {}",
                    r.topic(),
                    r.partition(),
                    r.offset(),
                    String::from_utf8_lossy(r.value().unwrap_or_default())
                ));
            }
        }
        consumer.commit()?;
    }
    println!(
        "consumed {count} records; alice: {}",
        alice.unwrap_or_default()
    );
    for p in store.describe_topic("payments")?.partitions {
        let tp = riverbed::TopicPartition::new("payments", p.partition);
        println!(
            "  partition {}: offsets {}..{}, {} bytes in {} segment(s), committed {:?}, lag {}",
            p.partition,
            p.log_start_offset,
            p.log_end_offset,
            p.size_bytes,
            p.segments,
            consumer.committed(&tp)?.map(|o| o.offset),
            consumer.lag(&tp)?
        );
    }
    consumer.close()?;
    Ok(())
}
