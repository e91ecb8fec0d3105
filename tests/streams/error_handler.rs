//! The thread error handler (`StreamsConfig::thread_error_handler`): a failed stream thread
//! either stops the application (the default) or is replaced by a fresh group member, whose
//! tasks are restored and whose input is processed again from the last commit. Runs `App`
//! against a store in a tempdir, at-least-once and exactly-once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use riverbed::streams::{App, Builder, Materialized, Serde, StreamThreadAction, StreamsConfig};
use riverbed::{ErrorKind, IsolationLevel, ProducerRecord, Store, TopicConfig};

use crate::common;

const PARTITIONS: u32 = 4;
const POISON: &str = "poison";

fn setup() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for t in ["words", "counts"] {
        store.create_topic(t, TopicConfig::new(PARTITIONS)).unwrap();
    }
    (dir, store)
}

/// Counts words; the step after the count fails on the word [`POISON`] while
/// `fail_on_poison` says so (cleared by the step itself when `fail_once`). The failure comes
/// after the count store took the poison word in, so committing any of the failed work would
/// count it twice.
fn counting_app(fail_on_poison: Arc<AtomicBool>, fail_once: bool) -> riverbed::streams::Topology {
    let b = Builder::new("fragile-counts");
    b.stream::<String, String>("words")
        .group_by(|_line, w| w.clone())
        .count(Materialized::named("counts"))
        .to_stream()
        .map(move |w, n| {
            let fail = if fail_once {
                w == POISON && fail_on_poison.swap(false, Ordering::SeqCst)
            } else {
                w == POISON && fail_on_poison.load(Ordering::SeqCst)
            };
            if fail {
                panic!("cannot count the poison word");
            }
            (w, n)
        })
        .to("counts");
    b.build().unwrap()
}

fn send_words(store: &Store, words: &[String]) {
    let p = store.producer();
    for (i, w) in words.iter().enumerate() {
        p.send(
            ProducerRecord::new("words")
                .key(format!("line-{i}"))
                .value(w.as_bytes().to_vec()),
        )
        .unwrap();
    }
}

/// A deterministic mix of words with [`POISON`] once in the middle.
fn words(n: usize) -> Vec<String> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut out: Vec<String> = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            format!("w{}", (state >> 33) % 37)
        })
        .collect();
    out.insert(n / 2, POISON.to_string());
    out
}

fn truth(words: &[String]) -> BTreeMap<String, i64> {
    let mut t = BTreeMap::new();
    for w in words {
        *t.entry(w.clone()).or_insert(0) += 1;
    }
    t
}

/// Every committed record of the output topic, as (word, count).
fn committed_output(store: &Store) -> Vec<(String, i64)> {
    common::read_topic(store, "counts", IsolationLevel::ReadCommitted)
        .into_iter()
        .map(|r| {
            (
                String::decode(&r.key.unwrap()).unwrap(),
                i64::decode(&r.value.unwrap()).unwrap(),
            )
        })
        .collect()
}

fn a_failure_once_is_survived_by_replacing_the_thread(exactly_once: bool) {
    let (_dir, store) = setup();
    let poisoned = Arc::new(AtomicBool::new(true));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&errors);
    let stopped = Arc::new(AtomicBool::new(false));
    let told = Arc::clone(&stopped);
    let mut config = StreamsConfig::new()
        .threads(2)
        .commit_interval(Duration::from_millis(30))
        .thread_error_handler(move |e| {
            seen.lock().unwrap().push(e.to_string());
            StreamThreadAction::ReplaceThread
        })
        .on_error(move |_| told.store(true, Ordering::SeqCst));
    if exactly_once {
        config = config.exactly_once();
    }
    let app = App::start(&store, counting_app(Arc::clone(&poisoned), true), config).unwrap();
    let all = words(3000);
    let (before, after) = all.split_at(all.len() / 2 - 100);
    // Some work is committed before the failure, some is in flight when it happens.
    send_words(&store, before);
    common::wait_for("the first words to be processed", || {
        app.metrics().processed_records >= 500
    });
    send_words(&store, after);
    let truth = truth(&all);
    let counts = app.store::<String, i64>("counts").unwrap();
    common::wait_for("every word to be counted", || {
        truth
            .iter()
            .all(|(w, n)| counts.get(w.as_str()).unwrap().unwrap_or(0) >= *n)
    });
    assert!(
        !poisoned.load(Ordering::SeqCst),
        "the poison word was never met"
    );
    assert!(app.is_running(), "{:?}", app.error());
    assert!(app.error().is_none());
    let m = app.metrics();
    assert_eq!(m.threads_replaced, 1, "{m:?}");
    {
        let errors = errors.lock().unwrap();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("cannot count the poison word"),
            "{errors:?}"
        );
    }
    app.close().unwrap();
    assert!(
        !stopped.load(Ordering::SeqCst),
        "on_error told, yet nothing stopped the app"
    );

    let out = committed_output(&store);
    let mut latest = BTreeMap::new();
    for (w, n) in &out {
        latest.insert(w.clone(), *n);
    }
    if exactly_once {
        // The failed thread's open transaction was aborted: every input counted once, and one
        // committed change per input.
        assert_eq!(latest, truth);
        assert_eq!(out.len(), all.len());
        for (w, n) in &truth {
            assert_eq!(counts.get(w.as_str()).unwrap(), Some(*n), "{w}");
        }
    } else {
        for (w, n) in &truth {
            assert!(latest[w] >= *n, "{w}: {} < {n}", latest[w]);
        }
        assert!(out.len() >= all.len());
    }
}

#[test]
fn replace_thread_at_least_once_keeps_the_app_running_and_loses_nothing() {
    a_failure_once_is_survived_by_replacing_the_thread(false);
}

#[test]
fn replace_thread_exactly_once_counts_every_word_exactly_once() {
    a_failure_once_is_survived_by_replacing_the_thread(true);
}

#[test]
fn by_default_a_failure_stops_the_app_with_the_error() {
    let (_dir, store) = setup();
    let told = Arc::new(AtomicU32::new(0));
    let t2 = Arc::clone(&told);
    let config = StreamsConfig::new().threads(2).on_error(move |_| {
        t2.fetch_add(1, Ordering::SeqCst);
    });
    let app = App::start(
        &store,
        counting_app(Arc::new(AtomicBool::new(true)), true),
        config,
    )
    .unwrap();
    send_words(&store, &words(200));
    common::wait_for("the app to stop", || !app.is_running());
    assert_eq!(app.metrics().threads_replaced, 0);
    assert_eq!(told.load(Ordering::SeqCst), 1);
    let e = app.close().unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::StreamsProcessing { .. }),
        "{e}"
    );
    assert!(
        e.to_string().contains("cannot count the poison word"),
        "{e}"
    );
}

#[test]
fn a_handler_can_replace_twice_then_stop_on_a_failure_that_repeats() {
    let (_dir, store) = setup();
    let failures = Arc::new(AtomicU32::new(0));
    let f2 = Arc::clone(&failures);
    let config = StreamsConfig::new()
        .commit_interval(Duration::from_millis(30))
        .thread_error_handler(move |e| {
            assert!(
                matches!(e.kind(), ErrorKind::StreamsProcessing { .. }),
                "{e}"
            );
            if f2.fetch_add(1, Ordering::SeqCst) < 2 {
                StreamThreadAction::ReplaceThread
            } else {
                StreamThreadAction::ShutdownApplication
            }
        });
    // The poison word fails every time.
    let app = App::start(
        &store,
        counting_app(Arc::new(AtomicBool::new(true)), false),
        config,
    )
    .unwrap();
    send_words(&store, &words(200));
    common::wait_for("the app to stop", || !app.is_running());
    assert_eq!(failures.load(Ordering::SeqCst), 3);
    assert_eq!(app.metrics().threads_replaced, 2);
    let e = app.close().unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::StreamsProcessing { .. }),
        "{e}"
    );
    assert!(
        e.to_string().contains("cannot count the poison word"),
        "{e}"
    );
}
