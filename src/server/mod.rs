//! The Kafka wire protocol front: any Kafka client or tool talks to a Riverbed store.
//!
//! [`Server::start`] listens on a TCP address and serves Kafka's binary protocol (the APIs and
//! versions in `versions.rs`, listed in README.md) over the [`Store`] it is given, while the
//! application that owns the store keeps using it in-process: a record a remote client produces
//! is polled by an in-process [`Consumer`](crate::Consumer) and the other way round, and a
//! consumer group may have members on both sides of the socket.
//!
//! ```no_run
//! use riverbed::server::{Server, ServerConfig};
//! use riverbed::Store;
//!
//! let store = Store::open("./data")?;
//! let server = Server::start(&store, ServerConfig::new("127.0.0.1:9092"))?;
//! println!("serving Kafka clients on {}", server.local_addr());
//! // ... the application goes on using `store` ...
//! server.shutdown()?;
//! # Ok::<(), riverbed::Error>(())
//! ```
//!
//! # Shape
//! One listener thread accepts connections; each connection has its own thread, which reads a
//! request, handles it and writes the response before reading the next one — Kafka requires a
//! connection's responses in request order, and a thread per connection is the simplest way to
//! keep it (the store's calls are synchronous). A slow or dead client therefore holds only its
//! own thread: appends and other clients never wait for it (its writes time out, see
//! [`ServerConfig::socket_timeout`]). Requests are bounded
//! ([`ServerConfig::max_request_bytes`]), and so are connections
//! ([`ServerConfig::max_connections`]); a request that cannot be decoded closes its connection,
//! as a Kafka broker does; nothing a client sends can panic the process.
//!
//! [`Server::shutdown`] stops accepting, lets each connection finish the request it is
//! handling (its response is written), closes the connections and joins their threads.
//!
//! # Bytes
//! Segment format 3 stores Kafka v2 record batches as a client sent them (FORMAT.md §3), so a
//! produced batch is validated per batch (CRC-32C, header fields) and appended without touching
//! its records, and a fetch answers with the stored bytes, which the client verifies with its
//! own CRC check.

mod admin;
mod conn;
mod delete_records;
mod dispatch;
mod errors;
mod fetch;
mod groups;
mod list_offsets;
mod metadata;
mod produce;
mod txn;
mod versions;

use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use parking_lot::Mutex;

use crate::error::{Error, ErrorKind, Result};
use crate::store::server_metrics::ServerCounters;
use crate::store::Store;

/// How a [`Server`] listens and what it allows. Built with setters from [`ServerConfig::new`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    listen: String,
    advertised_listener: Option<String>,
    max_request_bytes: usize,
    max_connections: usize,
    socket_timeout: Duration,
    allow_unauthenticated_public: bool,
}

impl ServerConfig {
    /// A server listening on `listen` (`host:port`; port 0 picks a free port, see
    /// [`Server::local_addr`]). Defaults: requests up to 100 MiB (Kafka's
    /// `socket.request.max.bytes`), 1024 connections, a 60 s socket timeout.
    pub fn new(listen: impl Into<String>) -> ServerConfig {
        ServerConfig {
            listen: listen.into(),
            advertised_listener: None,
            max_request_bytes: 100 * 1024 * 1024,
            max_connections: 1024,
            socket_timeout: Duration::from_secs(60),
            allow_unauthenticated_public: false,
        }
    }

    /// The `host:port` clients are told to connect to in Metadata and FindCoordinator answers
    /// (Kafka's `advertised.listeners`). Default: the address the listener is bound to.
    pub fn advertised_listener(mut self, host_port: impl Into<String>) -> ServerConfig {
        self.advertised_listener = Some(host_port.into());
        self
    }

    /// The largest request accepted, in bytes (its size prefix excluded). A larger size prefix
    /// closes the connection before anything of the request is read, so a client cannot make
    /// the server allocate more than this per connection.
    pub fn max_request_bytes(mut self, max_request_bytes: usize) -> ServerConfig {
        self.max_request_bytes = max_request_bytes;
        self
    }

    /// The most connections open at once; a connection beyond it is closed as soon as it is
    /// accepted (Kafka's `max.connections`).
    pub fn max_connections(mut self, max_connections: usize) -> ServerConfig {
        self.max_connections = max_connections.max(1);
        self
    }

    /// How long a write to a client may block before the connection is dropped, and how long a
    /// connection may stay idle. A client that stops reading its responses therefore holds its
    /// thread for at most this long.
    pub fn socket_timeout(mut self, socket_timeout: Duration) -> ServerConfig {
        self.socket_timeout = socket_timeout.max(Duration::from_millis(100));
        self
    }

    /// Allows listening on a non-loopback address without authentication. Off by default:
    /// [`Server::start`] refuses, so that a store is not opened to a network by mistake.
    pub fn allow_unauthenticated_public(mut self, allow: bool) -> ServerConfig {
        self.allow_unauthenticated_public = allow;
        self
    }

    /// See [`listen`](Self::new).
    pub fn get_listen(&self) -> &str {
        &self.listen
    }

    /// See [`advertised_listener`](Self::advertised_listener).
    pub fn get_advertised_listener(&self) -> Option<&str> {
        self.advertised_listener.as_deref()
    }

    /// See [`max_request_bytes`](Self::max_request_bytes).
    pub fn get_max_request_bytes(&self) -> usize {
        self.max_request_bytes
    }

    /// See [`max_connections`](Self::max_connections).
    pub fn get_max_connections(&self) -> usize {
        self.max_connections
    }

    /// See [`socket_timeout`](Self::socket_timeout).
    pub fn get_socket_timeout(&self) -> Duration {
        self.socket_timeout
    }

    /// See [`allow_unauthenticated_public`](Self::allow_unauthenticated_public).
    pub fn get_allow_unauthenticated_public(&self) -> bool {
        self.allow_unauthenticated_public
    }
}

/// The broker's identity in Metadata and FindCoordinator answers: a single node.
pub(crate) const NODE_ID: i32 = 0;

/// What every connection thread shares.
pub(crate) struct Shared {
    pub store: Store,
    pub config: ServerConfig,
    /// The host and port clients are told to connect to.
    pub advertised_host: String,
    pub advertised_port: i32,
    /// Set by [`Server::shutdown`]: connections finish their request in flight and close.
    pub stopping: AtomicBool,
    pub connections: AtomicUsize,
    /// Figures for `Store::metrics` and `riverbed stats`.
    pub metrics: Arc<ServerCounters>,
    next_connection: AtomicU64,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A running Kafka protocol front over a [`Store`]. Dropping it shuts it down (as
/// [`shutdown`](Self::shutdown) does, ignoring errors).
pub struct Server {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    listener: Option<JoinHandle<()>>,
    publisher: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds `config`'s address and starts serving `store`. Fails with
    /// [`ErrorKind::InvalidConfig`] for an address that does not parse, or a non-loopback one
    /// without authentication (unless
    /// [`allow_unauthenticated_public`](ServerConfig::allow_unauthenticated_public)), and with
    /// [`ErrorKind::Io`] if the address cannot be bound.
    pub fn start(store: &Store, config: ServerConfig) -> Result<Server> {
        let invalid = |reason: String| -> Error {
            ErrorKind::InvalidConfig {
                field: "listen",
                reason,
            }
            .into()
        };
        let addrs: Vec<SocketAddr> = config
            .listen
            .to_socket_addrs()
            .map_err(|e| {
                invalid(format!(
                    "{:?} is not a host:port address: {e}",
                    config.listen
                ))
            })?
            .collect();
        if addrs.is_empty() {
            return Err(invalid(format!(
                "{:?} resolves to no address",
                config.listen
            )));
        }
        if !config.allow_unauthenticated_public {
            if let Some(public) = addrs.iter().find(|a| !a.ip().is_loopback()) {
                return Err(invalid(format!(
                    "{public} is not a loopback address and the server has no authentication; \
                     listen on 127.0.0.1, or allow it explicitly (allow_unauthenticated_public)"
                )));
            }
        }
        let listener = TcpListener::bind(&addrs[..])
            .map_err(|e| Error::io("bind listener", &config.listen, e))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::io("bind listener", &config.listen, e))?;
        let (advertised_host, advertised_port) = match &config.advertised_listener {
            Some(hp) => split_host_port(hp)
                .ok_or_else(|| invalid(format!("advertised listener {hp:?} is not host:port")))?,
            None => (local_addr.ip().to_string(), i32::from(local_addr.port())),
        };
        let metrics = Arc::new(ServerCounters::new(
            local_addr.to_string(),
            versions::ADVERTISED
                .iter()
                .map(|(api, _, _)| (*api as i16, api_name(*api)))
                .collect(),
        ));
        store.register_server(&metrics);
        let shared = Arc::new(Shared {
            metrics,
            store: store.clone(),
            config,
            advertised_host,
            advertised_port,
            stopping: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            next_connection: AtomicU64::new(0),
            threads: Mutex::new(Vec::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let listener = std::thread::Builder::new()
            .name("riverbed-listener".into())
            .spawn(move || accept_loop(&accept_shared, listener))
            .map_err(|e| Error::io("spawn listener thread", "riverbed-listener", e))?;
        let publish_shared = Arc::clone(&shared);
        let publisher = std::thread::Builder::new()
            .name("riverbed-server-metrics".into())
            .spawn(move || publish_loop(&publish_shared))
            .map_err(|e| Error::io("spawn metrics thread", "riverbed-server-metrics", e))?;
        tracing::info!(%local_addr, "Kafka protocol front listening");
        Ok(Server {
            shared,
            local_addr,
            listener: Some(listener),
            publisher: Some(publisher),
        })
    }

    /// The address the server is bound to (with the port chosen when the config said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, lets every connection finish the request it is handling,
    /// closes them and joins their threads.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop();
        Ok(())
    }

    fn stop(&mut self) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the accept call: a connection to ourselves, which the loop sees after the flag.
        let _ = TcpStream::connect_timeout(&self.local_addr, Duration::from_secs(1));
        let _ = listener.join();
        // Connections notice the flag between requests (their reads wake at least every
        // `conn::POLL` to look) and long polls end early; then they close.
        self.shared.store.notify().notify();
        let threads = std::mem::take(&mut *self.shared.threads.lock());
        for t in threads {
            let _ = t.join();
        }
        if let Some(p) = self.publisher.take() {
            let _ = p.join();
        }
        self.shared.metrics.stopped.store(true, Ordering::SeqCst);
        // Rewrites the file without this server (removes it when no other server runs).
        self.shared.store.publish_server_metrics();
        tracing::info!(local_addr = %self.local_addr, "Kafka protocol front stopped");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Kafka's name of `api` ("Produce", "ApiVersions", ...): kafka-protocol's variant names are
/// Kafka's, so its `Debug` spares a second table of names.
fn api_name(api: ApiKey) -> String {
    format!("{api:?}")
}

/// Rewrites `<store>/server-metrics` every second while the server runs, for `riverbed stats`
/// in other processes.
fn publish_loop(shared: &Shared) {
    const EVERY: Duration = Duration::from_secs(1);
    while !shared.stopping.load(Ordering::SeqCst) {
        shared.store.publish_server_metrics();
        let mut slept = Duration::ZERO;
        while slept < EVERY && !shared.stopping.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
            slept += Duration::from_millis(50);
        }
    }
}

fn split_host_port(hp: &str) -> Option<(String, i32)> {
    let (host, port) = hp.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_string(), i32::from(port)))
}

fn accept_loop(shared: &Arc<Shared>, listener: TcpListener) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off rather than spin.
                tracing::warn!(error = %e, "accept failed");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        // Count first, then check: a connection beyond the limit is closed at once.
        let open = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
        if open > shared.config.max_connections {
            shared.connections.fetch_sub(1, Ordering::SeqCst);
            shared
                .metrics
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                limit = shared.config.max_connections,
                "connection refused: too many connections"
            );
            drop(stream);
            continue;
        }
        shared
            .metrics
            .connections_accepted
            .fetch_add(1, Ordering::Relaxed);
        shared
            .metrics
            .connections_open
            .fetch_add(1, Ordering::Relaxed);
        let id = shared.next_connection.fetch_add(1, Ordering::Relaxed);
        let conn_shared = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name(format!("riverbed-conn-{id}"))
            .spawn(move || {
                conn::serve(&conn_shared, stream);
                conn_shared.connections.fetch_sub(1, Ordering::SeqCst);
                conn_shared
                    .metrics
                    .connections_open
                    .fetch_sub(1, Ordering::Relaxed);
            });
        match spawned {
            Ok(handle) => {
                let mut threads = shared.threads.lock();
                // Forget the threads that have ended, so a long-lived server's list stays small.
                threads.retain(|t| !t.is_finished());
                threads.push(handle);
            }
            Err(e) => {
                shared.connections.fetch_sub(1, Ordering::SeqCst);
                shared
                    .metrics
                    .connections_open
                    .fetch_sub(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "could not start a connection thread");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_splits_with_ipv6_brackets() {
        assert_eq!(
            split_host_port("localhost:9092"),
            Some(("localhost".into(), 9092))
        );
        assert_eq!(split_host_port("[::1]:9092"), Some(("::1".into(), 9092)));
        assert_eq!(split_host_port("nohost"), None);
        assert_eq!(split_host_port(":9092"), None);
        assert_eq!(split_host_port("h:70000"), None);
    }
}
