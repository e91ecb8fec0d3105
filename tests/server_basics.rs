//! The wire front's connection layer: ApiVersions negotiation, framing limits, malformed
//! requests, connection limits and shutdown. Needs `--features server`.
#![cfg(feature = "server")]
#![allow(clippy::big_endian_bytes)] // Kafka's wire protocol is big-endian

mod common;

use std::time::Duration;

use common::wire::WireClient;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::Decodable;
use riverbed::server::{Server, ServerConfig};
use riverbed::Store;

fn start(config: ServerConfig) -> (tempfile::TempDir, Store, Server) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let server = Server::start(&store, config).unwrap();
    (dir, store, server)
}

#[test]
fn api_versions_lists_every_advertised_api_at_each_version_clients_send() {
    let (_d, _store, server) = start(ServerConfig::new("127.0.0.1:0"));
    let mut c = WireClient::connect(server.local_addr());
    // kafkajs sends v2, librdkafka v3, kafka-python v4 (research §2.1).
    for v in 0..=4 {
        let r: ApiVersionsResponse = c.call(ApiKey::ApiVersions, v, &ApiVersionsRequest::default());
        assert_eq!(r.error_code, 0, "v{v}");
        let av = r
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::ApiVersions as i16)
            .unwrap();
        assert_eq!((av.min_version, av.max_version), (0, 4));
    }
}

#[test]
fn a_newer_api_versions_gets_a_v0_answer_with_unsupported_version() {
    // KIP-511: the broker answers an ApiVersions version it does not know with v0 and error 35,
    // so the client can retry with a version the broker lists.
    let (_d, _store, server) = start(ServerConfig::new("127.0.0.1:0"));
    let mut c = WireClient::connect(server.local_addr());
    let mut raw = Vec::new();
    raw.extend_from_slice(&18i16.to_be_bytes());
    raw.extend_from_slice(&99i16.to_be_bytes());
    raw.extend_from_slice(&7i32.to_be_bytes());
    raw.extend_from_slice(b"\xff\xff garbage a future header may hold");
    c.send_raw(&raw);
    let mut frame = c.read_frame().expect("an answer, not a closed connection");
    assert_eq!(i32::from_be_bytes(frame[..4].try_into().unwrap()), 7);
    bytes::Buf::advance(&mut frame, 4);
    let r = ApiVersionsResponse::decode(&mut frame, 0).unwrap();
    assert_eq!(r.error_code, 35);
    assert!(!r.api_keys.is_empty());
}

#[test]
fn an_unknown_api_key_or_a_truncated_header_closes_the_connection_and_the_server_goes_on() {
    let (_d, _store, server) = start(ServerConfig::new("127.0.0.1:0"));
    for raw in [
        vec![0x7f, 0x00, 0, 0, 0, 0, 0, 1],  // API key 32512
        vec![0, 18],                         // shorter than a header
        vec![0, 18, 0, 3, 0, 0, 0, 1, 0xff], // ApiVersions v3 with a broken client id
    ] {
        let mut c = WireClient::connect(server.local_addr());
        c.send_raw(&raw);
        assert!(c.is_closed(), "{raw:?}");
    }
    let mut c = WireClient::connect(server.local_addr());
    let r: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(r.error_code, 0);
}

#[test]
fn a_size_prefix_above_the_limit_closes_the_connection_before_anything_is_read() {
    let (_d, _store, server) = start(ServerConfig::new("127.0.0.1:0").max_request_bytes(1024));
    let mut c = WireClient::connect(server.local_addr());
    c.write_bytes(&(1025i32).to_be_bytes()).unwrap();
    assert!(c.is_closed());
    let mut c = WireClient::connect(server.local_addr());
    c.write_bytes(&(-5i32).to_be_bytes()).unwrap();
    assert!(c.is_closed());
}

#[test]
fn connections_beyond_the_limit_are_closed_and_the_open_ones_keep_working() {
    let (_d, _store, server) = start(ServerConfig::new("127.0.0.1:0").max_connections(2));
    let mut a = WireClient::connect(server.local_addr());
    let mut b = WireClient::connect(server.local_addr());
    // Make sure both are accepted (and counted) before the third arrives.
    let _: ApiVersionsResponse = a.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let _: ApiVersionsResponse = b.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let mut c = WireClient::connect(server.local_addr());
    assert!(c.is_closed());
    let _: ApiVersionsResponse = a.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    drop(b);
    // The freed slot is reused once the closed connection's thread has ended.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut d = WireClient::connect(server.local_addr());
        d.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        if d.read_frame().is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slot was never freed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_public_address_without_authentication_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let e = Server::start(&store, ServerConfig::new("0.0.0.0:0")).unwrap_err();
    assert!(
        matches!(e.kind(), riverbed::ErrorKind::InvalidConfig { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("loopback"), "{e}");
    let s = Server::start(
        &store,
        ServerConfig::new("0.0.0.0:0").allow_unauthenticated_public(true),
    )
    .unwrap();
    s.shutdown().unwrap();
}

#[test]
fn shutdown_closes_idle_connections_and_returns() {
    let (_d, _store, server) = start(ServerConfig::new("127.0.0.1:0"));
    let mut a = WireClient::connect(server.local_addr());
    let _: ApiVersionsResponse = a.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let t = std::time::Instant::now();
    server.shutdown().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(a.is_closed());
}

#[test]
fn metrics_count_requests_errors_bytes_and_connections_and_are_published_for_tools() {
    let (dir, store, server) = start(ServerConfig::new("127.0.0.1:0"));
    let mut c = WireClient::connect(server.local_addr());
    for _ in 0..3 {
        let _: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    }
    // A malformed ApiVersions (broken header) is refused: counted as an error.
    let mut bad = WireClient::connect(server.local_addr());
    bad.send_raw(&[0, 18, 0, 3, 0, 0, 0, 1, 0xff]);
    assert!(bad.is_closed());
    let m = store.metrics();
    assert_eq!(m.servers.len(), 1);
    let s = &m.servers[0];
    assert_eq!(s.address, server.local_addr().to_string());
    let api = s.apis.iter().find(|a| a.api == "ApiVersions").unwrap();
    assert_eq!((api.requests, api.errors), (4, 1));
    assert_eq!(api.latency.count(), 4);
    assert!(s.connections_accepted >= 2);
    assert!(s.bytes_sent > 0 && s.bytes_received > 0);
    // Another process's view (the `riverbed stats` path) sees the published figures.
    let view = riverbed::inspect::StoreView::open(dir.path()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let published = view.live_servers().unwrap();
        if published
            .first()
            .and_then(|s| s.apis.iter().find(|a| a.api == "ApiVersions"))
            .is_some_and(|a| a.requests == 4)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never published: {published:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server.shutdown().unwrap();
    assert!(store.metrics().servers.is_empty());
    assert!(view.live_servers().unwrap().is_empty());
    assert!(!dir.path().join("server-metrics").exists());
}
