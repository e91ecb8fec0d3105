//! Riverbed's main job in one program: append records durably, close, reopen, read them back.
//!
//! Run with `cargo run --release --example quickstart [DIR]` (a temporary directory by default).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use riverbed::{BatchBuilder, Compression, FlushPolicy, Log, LogConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let temp;
    let dir = match std::env::args().nth(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().join("payments-0")
        }
    };
    let config = LogConfig {
        flush: FlushPolicy::EveryAppend, // append returns once the batch is on disk
        ..LogConfig::default()
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;

    let log = Log::open(&dir, config.clone())?;
    let first = log.next_offset();
    let started = Instant::now();
    let batches = 1_000;
    for i in 0..batches {
        let mut batch = BatchBuilder::new(Compression::None);
        for j in 0..100 {
            let key = format!("account-{}", (i * 100 + j) % 17);
            let value = format!("{:+}", (i as i64 * 31 + j as i64) % 200 - 100);
            batch.append(
                now,
                Some(key.as_bytes()),
                Some(value.as_bytes()),
                &[("source", Some(b"quickstart"))],
            );
        }
        log.append(&batch.build()?)?;
    }
    let elapsed = started.elapsed();
    println!(
        "appended {} records in {batches} durable batches in {:.1} ms ({:.0} records/s), offsets {first}..{}",
        batches * 100,
        elapsed.as_secs_f64() * 1e3,
        (batches * 100) as f64 / elapsed.as_secs_f64(),
        log.next_offset()
    );
    log.close()?;

    let started = Instant::now();
    let log = Log::open(&dir, config)?;
    println!(
        "reopened {} in {:.2} ms; recovery scanned {} bytes",
        dir.display(),
        started.elapsed().as_secs_f64() * 1e3,
        log.recovery_report().scanned_bytes
    );
    let mut next = first;
    let mut count = 0u64;
    let mut sample = None;
    while next < log.next_offset() {
        for batch in log.read(next, 1 << 20)? {
            for record in batch.records()?.iter() {
                let record = record?;
                if record.offset() < next {
                    continue;
                }
                count += 1;
                if sample.is_none() {
                    sample = Some(format!(
                        "offset {} key {} value {}",
                        record.offset(),
                        String::from_utf8_lossy(record.key().unwrap_or_default()),
                        String::from_utf8_lossy(record.value().unwrap_or_default())
                    ));
                }
            }
            next = batch.last_offset() + 1;
        }
    }
    println!(
        "read back {count} records; first: {}",
        sample.unwrap_or_default()
    );
    assert_eq!(count, batches as u64 * 100);
    Ok(())
}
