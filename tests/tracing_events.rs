//! The tracing events the library emits: opening and recovery, rolls, retention, rebalances.
//! (Its own test binary: a subscriber scoped to one thread sees every event only when no other
//! test thread races it to register the call sites.)

use std::sync::{Arc, Mutex};

use riverbed::inspect::StoreView;
use riverbed::{BatchBuilder, Compression, Log, LogConfig, Store, TopicConfig};

fn batch(first: u64, n: u64) -> riverbed::RecordBatch {
    let mut b = BatchBuilder::new(Compression::None);
    for i in first..first + n {
        b.append(
            1_700_000_000_000 + i as i64,
            None,
            Some(format!("v{i}").as_bytes()),
            &[],
        );
    }
    b.build().expect("build")
}

/// Collects events as `message field=value ...` lines.
struct Capture(Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut f = Fields(event.metadata().target().to_string());
        event.record(&mut f);
        self.0.lock().expect("lock").push(f.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn tracing_events_for_open_roll_retention_and_rebalance() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sub = Capture(Arc::clone(&events));
    tracing::subscriber::with_default(sub, || {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig::default()
            .segment_bytes(4096)
            .max_message_bytes(2048)
            .retention_bytes(Some(4096));
        let log = Log::open(dir.path(), config).expect("open");
        for i in 0..100 {
            log.append(&batch(i * 5, 5)).expect("append");
        }
        // Rolled segments are sealed in the background and retention skips a segment whose
        // seal has not ended, so the retention pass a roll makes may find nothing to delete:
        // a flush waits for the seals, then a retention pass must delete.
        log.flush().expect("flush");
        log.apply_retention().expect("retention");
        drop(log);

        let sdir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(sdir.path()).expect("store");
        store
            .create_topic("t", TopicConfig::new(2))
            .expect("create");
        let mut c = store
            .consumer(riverbed::ConsumerConfig::new("g"))
            .expect("consumer");
        c.subscribe(&["t"]).expect("subscribe");
        c.poll(std::time::Duration::from_millis(10)).expect("poll");
        // The membership is published for other processes.
        let live = StoreView::open(sdir.path())
            .expect("view")
            .live_groups()
            .expect("live");
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].members[0].1.len(), 2);
    });
    let events = events.lock().expect("lock");
    let has = |target: &str, text: &str| {
        events
            .iter()
            .any(|e| e.starts_with(target) && e.contains(text))
    };
    assert!(has("riverbed::recovery", "log opened"), "{events:#?}");
    assert!(has("riverbed::recovery", "scanned_bytes="), "{events:#?}");
    assert!(has("riverbed::log", "segment rolled"), "{events:#?}");
    assert!(
        has("riverbed::log", "retention deleted segments"),
        "{events:#?}"
    );
    assert!(has("riverbed::group", "rebalance completed"), "{events:#?}");
    assert!(has("riverbed::group", "t-0"), "{events:#?}");
}
