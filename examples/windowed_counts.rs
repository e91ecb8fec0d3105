//! Tumbling one-minute page-view counts over out-of-order events, with a 10-second grace
//! period and `suppress(until_window_closes)`: each (page, minute) gets exactly one final count,
//! emitted once stream time passes the minute's end + grace. One event arrives too late and is
//! dropped (and counted in the metrics).
//!
//! `cargo run --release --example windowed_counts`

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use riverbed::streams::{
    App, Builder, Materialized, Serde, StreamsConfig, Suppressed, TimeWindows, Windowed,
};
use riverbed::{
    ConsumerConfig, IsolationLevel, OffsetReset, ProducerRecord, Store, TopicConfig, TopicPartition,
};

const MINUTE: i64 = 60_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    store.create_topic("views", TopicConfig::new(1))?;
    store.create_topic("views-per-minute", TopicConfig::new(1))?;

    let b = Builder::new("windowed-counts");
    b.stream::<String, String>("views")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_secs(60),
            Duration::from_secs(10),
        ))
        .count(Materialized::named("views-per-minute"))
        .suppress(Suppressed::until_window_closes())
        .to_stream()
        .to("views-per-minute");
    let app = App::start(&store, b.build()?, StreamsConfig::new().exactly_once())?;

    // Event times: seconds into the experiment, from the start of a recent minute.
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let t0 = i64::try_from(now)? / MINUTE * MINUTE - 10 * MINUTE;
    let events = [
        ("/home", 5),
        ("/docs", 20),
        ("/home", 50),
        ("/home", 65), // minute 1 starts; minute 0 is still open (grace)
        ("/docs", 58), // out of order, within grace: counts for minute 0
        ("/home", 72), // stream time 72 s >= 60 s + 10 s: minute 0 closes
        ("/docs", 30), // too late for minute 0: dropped
        ("/docs", 110),
        ("/home", 200), // closes minute 1
    ];
    let producer = store.producer();
    for (page, second) in events {
        producer.send(
            ProducerRecord::new("views")
                .key(page)
                .value("GET".to_string().encode()?)
                .timestamp(t0 + second * 1000),
        )?;
    }

    let mut reader = store.consumer(
        ConsumerConfig::default()
            .auto_offset_reset(OffsetReset::Earliest)
            .isolation_level(IsolationLevel::ReadCommitted),
    )?;
    reader.assign(&[TopicPartition::new("views-per-minute", 0)])?;
    let mut finals = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while finals.len() < 4 {
        if Instant::now() > deadline {
            return Err("the application did not emit the final counts".into());
        }
        for r in reader.poll(Duration::from_millis(50))?.iter() {
            let key = Windowed::<String>::decode(r.key().unwrap_or_default())?;
            let count = i64::decode(r.value().unwrap_or_default())?;
            finals.push((key, count));
        }
    }
    for (k, count) in &finals {
        println!(
            "{:<6} minute {} [{}s, {}s): {count} views (final)",
            k.key,
            (k.window.start - t0) / MINUTE,
            (k.window.start - t0) / 1000,
            (k.window.end - t0) / 1000
        );
    }
    // The store holds every window, including the open minute 3 of /home.
    let windows = app.window_store::<String, i64>("views-per-minute")?;
    let mut open = Vec::new();
    while open.is_empty() && Instant::now() < deadline {
        open = windows.fetch("/home", t0 + 3 * MINUTE, t0 + 3 * MINUTE)?;
    }
    for (w, count) in open {
        println!(
            "/home  minute 3 [{}s, {}s): {count} views so far (open: queried, not emitted)",
            (w.start - t0) / 1000,
            (w.end - t0) / 1000
        );
    }
    println!("late events dropped: {}", app.metrics().dropped_records);
    app.close()?;
    Ok(())
}
