//! Figures of the Kafka wire fronts serving a store (`riverbed::server`, feature `server`):
//! the live counters a server updates, the snapshot [`Store::metrics`](crate::Store::metrics)
//! reports, and the file (`<store>/server-metrics`) a serving process rewrites every second so
//! that `riverbed stats` in another process can show them.
//!
//! They live in the store layer, below the server, so that the store's report and the
//! read-only tools (`inspect`) can carry them without knowing the server.
//!
//! The file, like the membership file (`group::published`), is not durable: replaced without
//! fsync, removed when the server stops, and trusted only while its writer holds the store's
//! lock.
//!
//! ```text
//! riverbed-server-metrics v1
//! pid <pid of the writer>
//! server <address> <open> <accepted> <refused> <bytes received> <bytes sent>
//! api <Kafka API name> <requests> <errors> <bucket>:<count>,... (or "-")
//! crc <8 hex digits: CRC-32 of every byte before this line>
//! ```
//! Buckets are [`LatencyHistogram`]'s (four per power of two microseconds).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Weak;
use std::time::Duration;

use crate::log::metrics::AtomicHistogram;
use crate::log::LatencyHistogram;
use crate::small_file;

/// File name inside the store directory.
pub(crate) const FILE_NAME: &str = "server-metrics";
const HEADER: &str = "riverbed-server-metrics v1";

/// Figures of one API of a server.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiMetrics {
    /// Kafka's name of the API ("Produce", "Fetch", ...).
    pub api: String,
    /// Requests answered (or refused).
    pub requests: u64,
    /// Requests refused (the connection closed) or answered with an error code.
    pub errors: u64,
    /// Time from a request read whole to its response ready to write.
    pub latency: LatencyHistogram,
}

/// Figures of one Kafka wire front serving the store.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerMetrics {
    /// The address it listens on.
    pub address: String,
    /// Connections open now.
    pub connections_open: u64,
    /// Connections accepted since it started.
    pub connections_accepted: u64,
    /// Connections refused for the connection limit.
    pub connections_refused: u64,
    /// Request bytes read (size prefixes included).
    pub bytes_received: u64,
    /// Response bytes written.
    pub bytes_sent: u64,
    /// Every API that received a request, in API key order.
    pub apis: Vec<ApiMetrics>,
}

#[derive(Default)]
struct ApiCounters {
    requests: AtomicU64,
    errors: AtomicU64,
    latency: AtomicHistogram,
}

/// The live counters of one server; the server holds the `Arc`, the store a `Weak`.
pub(crate) struct ServerCounters {
    address: String,
    /// Kafka's API names by API key (only the served APIs count requests).
    names: Vec<(i16, String)>,
    apis: Vec<ApiCounters>,
    pub connections_open: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub connections_refused: AtomicU64,
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    /// Set when the server has stopped: its figures are no longer reported.
    pub stopped: AtomicBool,
}

// Without the `server` feature nothing creates counters; the store still reports (none).
#[cfg_attr(not(feature = "server"), allow(dead_code))]
impl ServerCounters {
    /// Counters for a server at `address` serving the APIs `names` (key, Kafka name).
    pub(crate) fn new(address: String, names: Vec<(i16, String)>) -> ServerCounters {
        let apis = names.iter().map(|_| ApiCounters::default()).collect();
        ServerCounters {
            address,
            names,
            apis,
            connections_open: AtomicU64::new(0),
            connections_accepted: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    fn api(&self, key: i16) -> Option<&ApiCounters> {
        let i = self.names.iter().position(|(k, _)| *k == key)?;
        self.apis.get(i)
    }

    /// Counts a request of API `key` that took `latency`; `error` if it was refused or
    /// answered with an error code.
    pub(crate) fn request(&self, key: i16, latency: Duration, error: bool) {
        if let Some(a) = self.api(key) {
            a.requests.fetch_add(1, Ordering::Relaxed);
            if error {
                a.errors.fetch_add(1, Ordering::Relaxed);
            }
            a.latency.record(latency);
        }
    }

    pub(crate) fn snapshot(&self) -> ServerMetrics {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ServerMetrics {
            address: self.address.clone(),
            connections_open: load(&self.connections_open),
            connections_accepted: load(&self.connections_accepted),
            connections_refused: load(&self.connections_refused),
            bytes_received: load(&self.bytes_received),
            bytes_sent: load(&self.bytes_sent),
            apis: self
                .names
                .iter()
                .zip(&self.apis)
                .filter(|(_, a)| load(&a.requests) > 0)
                .map(|((_, name), a)| ApiMetrics {
                    api: name.clone(),
                    requests: load(&a.requests),
                    errors: load(&a.errors),
                    latency: a.latency.snapshot(),
                })
                .collect(),
        }
    }
}

/// Snapshots of the servers still running among `servers` (forgetting the others).
pub(crate) fn live(servers: &mut Vec<Weak<ServerCounters>>) -> Vec<ServerMetrics> {
    servers.retain(|w| {
        w.upgrade()
            .is_some_and(|c| !c.stopped.load(Ordering::SeqCst))
    });
    servers
        .iter()
        .filter_map(|w| w.upgrade())
        .map(|c| c.snapshot())
        .collect()
}

fn token(s: &str) -> String {
    // Addresses and Kafka API names have no spaces; keep the file one token per field anyway.
    s.replace(' ', "_")
}

/// Encodes the servers' figures.
pub(crate) fn encode(pid: u32, servers: &[ServerMetrics]) -> Vec<u8> {
    let mut text = format!("{HEADER}\npid {pid}\n");
    for s in servers {
        text.push_str(&format!(
            "server {} {} {} {} {} {}\n",
            token(&s.address),
            s.connections_open,
            s.connections_accepted,
            s.connections_refused,
            s.bytes_received,
            s.bytes_sent
        ));
        for a in &s.apis {
            let buckets: Vec<String> = a
                .latency
                .nonzero_buckets()
                .iter()
                .map(|(i, c)| format!("{i}:{c}"))
                .collect();
            let buckets = if buckets.is_empty() {
                "-".to_string()
            } else {
                buckets.join(",")
            };
            text.push_str(&format!(
                "api {} {} {} {buckets}\n",
                token(&a.api),
                a.requests,
                a.errors
            ));
        }
    }
    small_file::seal_text(text)
}

/// Decodes the file: the writer's pid and its servers; `None` if it is not a valid file.
pub(crate) fn decode(bytes: &[u8]) -> Option<(u32, Vec<ServerMetrics>)> {
    let body = small_file::check_text(bytes).ok()?;
    let mut lines = body.lines();
    if lines.next()? != HEADER {
        return None;
    }
    let pid = lines.next()?.strip_prefix("pid ")?.parse().ok()?;
    let mut servers: Vec<ServerMetrics> = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["server", address, open, accepted, refused, received, sent] => {
                servers.push(ServerMetrics {
                    address: address.to_string(),
                    connections_open: open.parse().ok()?,
                    connections_accepted: accepted.parse().ok()?,
                    connections_refused: refused.parse().ok()?,
                    bytes_received: received.parse().ok()?,
                    bytes_sent: sent.parse().ok()?,
                    apis: Vec::new(),
                })
            }
            ["api", name, requests, errors, buckets] => {
                let mut list = Vec::new();
                if *buckets != "-" {
                    for b in buckets.split(',') {
                        let (i, c) = b.split_once(':')?;
                        list.push((i.parse().ok()?, c.parse().ok()?));
                    }
                }
                servers.last_mut()?.apis.push(ApiMetrics {
                    api: name.to_string(),
                    requests: requests.parse().ok()?,
                    errors: errors.parse().ok()?,
                    latency: LatencyHistogram::from_buckets(&list)?,
                });
            }
            _ => return None,
        }
    }
    Some((pid, servers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_snapshot_and_file_roundtrip_and_damage() {
        let c = ServerCounters::new(
            "127.0.0.1:9092".into(),
            vec![(0, "Produce".into()), (1, "Fetch".into())],
        );
        c.request(0, Duration::from_micros(150), false);
        c.request(0, Duration::from_millis(3), true);
        c.request(7, Duration::from_micros(1), false); // not served: not counted
        c.connections_accepted.fetch_add(2, Ordering::Relaxed);
        c.bytes_received.fetch_add(1234, Ordering::Relaxed);
        let s = c.snapshot();
        assert_eq!(s.apis.len(), 1, "Fetch had no request");
        assert_eq!((s.apis[0].requests, s.apis[0].errors), (2, 1));
        assert!(s.apis[0].latency.percentile(1.0) >= Duration::from_millis(3));
        let bytes = encode(77, std::slice::from_ref(&s));
        assert_eq!(decode(&bytes), Some((77, vec![s])));
        let mut bad = bytes.clone();
        bad[40] ^= 1;
        assert_eq!(decode(&bad), None);
        assert_eq!(
            decode(b"riverbed-server-metrics v1\npid 1\n"),
            None,
            "no CRC line"
        );
    }

    #[test]
    fn a_bucket_index_out_of_range_is_refused() {
        let text = format!("{HEADER}\npid 1\nserver a 0 0 0 0 0\napi Produce 1 0 999999:1\n");
        assert_eq!(decode(&small_file::seal_text(text)), None);
    }

    #[test]
    fn stopped_servers_are_forgotten() {
        let a = std::sync::Arc::new(ServerCounters::new("a".into(), vec![]));
        let b = std::sync::Arc::new(ServerCounters::new("b".into(), vec![]));
        let c = std::sync::Arc::new(ServerCounters::new("c".into(), vec![]));
        let mut list = vec![
            std::sync::Arc::downgrade(&a),
            std::sync::Arc::downgrade(&b),
            std::sync::Arc::downgrade(&c),
        ];
        drop(a);
        c.stopped.store(true, Ordering::SeqCst);
        let live = live(&mut list);
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].address, "b");
        assert_eq!(list.len(), 1);
    }
}
