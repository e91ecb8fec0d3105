//! Security of the wire front: SASL PLAIN and SCRAM-SHA-256/512 logins (right and wrong
//! passwords, unknown users, requests before authentication, the KIP-152 v1 flow and the bare
//! tokens of a v0 handshake), the loopback rule, and TLS with a self-signed certificate made
//! here (rcgen) and a rustls client. Needs `--features server` (TLS: `server-tls`).
//!
//! The SCRAM client below is written from RFC 5802's formulas, not from the server's code; the
//! server's exchange is also checked byte for byte against RFC 7677's example
//! (`auth::scram::tests::rfc_7677_example`).
#![cfg(feature = "server")]
#![allow(clippy::big_endian_bytes)] // Kafka's framing

mod common;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use common::wire::{s, WireClient};
use hmac::{Hmac, Mac};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use riverbed::server::{Credentials, Server, ServerConfig};
use riverbed::Store;
use sha2::{Digest, Sha256, Sha512};

fn credentials() -> Credentials {
    let text = [
        Credentials::line("SCRAM-SHA-256", "alice", "alice-secret", 4096).unwrap(),
        Credentials::line("SCRAM-SHA-512", "alice", "alice-secret", 4096).unwrap(),
        Credentials::line("SCRAM-SHA-512", "bob", "bob-secret", 4096).unwrap(),
    ]
    .join("\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials");
    std::fs::write(&path, text).unwrap();
    Credentials::load(&path).unwrap()
}

fn start(config: ServerConfig) -> (tempfile::TempDir, Store, Server) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let server = Server::start(&store, config).unwrap();
    (dir, store, server)
}

fn sasl_server() -> (tempfile::TempDir, Store, Server) {
    start(ServerConfig::new("127.0.0.1:0").sasl(credentials()))
}

fn handshake(c: &mut WireClient, mechanism: &str) -> SaslHandshakeResponse {
    c.call(
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(s(mechanism)),
    )
}

fn authenticate(c: &mut WireClient, token: &[u8]) -> Option<SaslAuthenticateResponse> {
    c.try_call(
        ApiKey::SaslAuthenticate,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token)),
    )
}

fn api_versions_works(c: &mut WireClient) -> bool {
    c.try_call::<_, ApiVersionsResponse>(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .is_some_and(|r| r.error_code == 0)
}

/// A request of an API that is not SASL's nor ApiVersions (it has no handler here: after
/// authentication it still closes the connection, so it is sent last, only to check the
/// pre-authentication rule).
fn metadata_closes(c: &mut WireClient) -> bool {
    let req = kafka_protocol::messages::MetadataRequest::default();
    c.send(ApiKey::Metadata, 1, &req);
    c.is_closed()
}

#[test]
fn plain_right_password_authenticates_and_wrong_one_fails_and_closes() {
    let (_d, _s, server) = sasl_server();
    let mut c = WireClient::connect(server.local_addr());
    assert!(
        api_versions_works(&mut c),
        "ApiVersions before authentication"
    );
    let r = handshake(&mut c, "PLAIN");
    assert_eq!(r.error_code, 0);
    let names: Vec<&str> = r.mechanisms.iter().map(|m| m.as_str()).collect();
    assert_eq!(names, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);
    let r = authenticate(&mut c, b"\0alice\0alice-secret").unwrap();
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    assert!(api_versions_works(&mut c));

    for token in [
        &b"\0alice\0wrong"[..],
        b"\0carol\0alice-secret",
        b"bob\0alice\0alice-secret",
        b"no separators",
    ] {
        let mut c = WireClient::connect(server.local_addr());
        assert_eq!(handshake(&mut c, "PLAIN").error_code, 0);
        let r = authenticate(&mut c, token).unwrap();
        assert_eq!(r.error_code, 58, "SASL_AUTHENTICATION_FAILED for {token:?}");
        assert!(r.error_message.is_some());
        assert!(c.is_closed(), "a failed login closes the connection");
    }
}

#[test]
fn requests_before_authentication_close_the_connection() {
    let (_d, _s, server) = sasl_server();
    let mut c = WireClient::connect(server.local_addr());
    assert!(metadata_closes(&mut c));
    // Mid-exchange is not authenticated either.
    let mut c = WireClient::connect(server.local_addr());
    assert_eq!(handshake(&mut c, "SCRAM-SHA-256").error_code, 0);
    assert!(metadata_closes(&mut c));
    // SaslAuthenticate without a handshake: ILLEGAL_SASL_STATE.
    let mut c = WireClient::connect(server.local_addr());
    assert_eq!(
        authenticate(&mut c, b"\0alice\0alice-secret")
            .unwrap()
            .error_code,
        34
    );
    // An unknown mechanism: UNSUPPORTED_SASL_MECHANISM with the list, then closed.
    let mut c = WireClient::connect(server.local_addr());
    let r = handshake(&mut c, "GSSAPI");
    assert_eq!(r.error_code, 33);
    assert_eq!(r.mechanisms.len(), 3);
    assert!(c.is_closed());
    // Without SASL configured every mechanism is unsupported, and requests need no login.
    let (_d2, _s2, open) = start(ServerConfig::new("127.0.0.1:0"));
    let mut c = WireClient::connect(open.local_addr());
    let r = handshake(&mut c, "PLAIN");
    assert_eq!(r.error_code, 33);
    assert!(r.mechanisms.is_empty());
}

/// A SCRAM client from RFC 5802 §3's formulas.
struct ScramClient {
    sha512: bool,
    user: String,
    password: String,
    nonce: String,
    first_bare: String,
    server_key: Vec<u8>,
    auth_message: String,
}

impl ScramClient {
    fn new(sha512: bool, user: &str, password: &str) -> Self {
        ScramClient {
            sha512,
            user: user.into(),
            password: password.into(),
            nonce: "fyko+d2lbbFgONRv9qkxdawL".into(),
            first_bare: String::new(),
            server_key: Vec::new(),
            auth_message: String::new(),
        }
    }
    fn hmac(&self, key: &[u8], data: &[u8]) -> Vec<u8> {
        if self.sha512 {
            let mut m = Hmac::<Sha512>::new_from_slice(key).unwrap();
            m.update(data);
            m.finalize().into_bytes().to_vec()
        } else {
            let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
    }
    fn h(&self, data: &[u8]) -> Vec<u8> {
        if self.sha512 {
            Sha512::digest(data).to_vec()
        } else {
            Sha256::digest(data).to_vec()
        }
    }
    fn first(&mut self) -> Vec<u8> {
        self.first_bare = format!("n={},r={}", self.user, self.nonce);
        format!("n,,{}", self.first_bare).into_bytes()
    }
    fn last(&mut self, server_first: &[u8]) -> Vec<u8> {
        let sf = std::str::from_utf8(server_first).unwrap();
        let mut r = "";
        let mut salt = Vec::new();
        let mut i = 0u32;
        for f in sf.split(',') {
            match f.split_at(2) {
                ("r=", v) => r = v,
                ("s=", v) => salt = B64.decode(v).unwrap(),
                ("i=", v) => i = v.parse().unwrap(),
                _ => {}
            }
        }
        assert!(r.starts_with(&self.nonce), "server nonce extends ours");
        let mut salted = vec![0u8; if self.sha512 { 64 } else { 32 }];
        if self.sha512 {
            pbkdf2::pbkdf2_hmac::<Sha512>(self.password.as_bytes(), &salt, i, &mut salted);
        } else {
            pbkdf2::pbkdf2_hmac::<Sha256>(self.password.as_bytes(), &salt, i, &mut salted);
        }
        let client_key = self.hmac(&salted, b"Client Key");
        let stored_key = self.h(&client_key);
        let without_proof = format!("c=biws,r={r}");
        self.auth_message = format!("{},{sf},{without_proof}", self.first_bare);
        let sig = self.hmac(&stored_key, self.auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        self.server_key = self.hmac(&salted, b"Server Key");
        format!("{without_proof},p={}", B64.encode(proof)).into_bytes()
    }
    fn verify(&self, server_final: &[u8]) -> bool {
        let expected = self.hmac(&self.server_key, self.auth_message.as_bytes());
        server_final == format!("v={}", B64.encode(expected)).as_bytes()
    }
}

#[test]
fn scram_sha_256_and_512_right_and_wrong_passwords() {
    let (_d, _s, server) = sasl_server();
    for (mech, user, password, ok) in [
        ("SCRAM-SHA-256", "alice", "alice-secret", true),
        ("SCRAM-SHA-512", "alice", "alice-secret", true),
        ("SCRAM-SHA-512", "bob", "bob-secret", true),
        ("SCRAM-SHA-256", "alice", "wrong", false),
        ("SCRAM-SHA-512", "bob", "alice-secret", false),
        // bob has no SHA-256 credential; an unknown user fails at the proof too.
        ("SCRAM-SHA-256", "bob", "bob-secret", false),
        ("SCRAM-SHA-256", "nobody", "x", false),
    ] {
        let mut c = WireClient::connect(server.local_addr());
        assert_eq!(handshake(&mut c, mech).error_code, 0);
        let mut client = ScramClient::new(mech == "SCRAM-SHA-512", user, password);
        let first = authenticate(&mut c, &client.first()).unwrap();
        assert_eq!(first.error_code, 0, "{mech} {user}: server-first");
        let last = authenticate(&mut c, &client.last(&first.auth_bytes)).unwrap();
        if ok {
            assert_eq!(
                last.error_code, 0,
                "{mech} {user}: {:?}",
                last.error_message
            );
            assert!(client.verify(&last.auth_bytes), "{mech}: server signature");
            assert!(api_versions_works(&mut c));
        } else {
            assert_eq!(last.error_code, 58, "{mech} {user} {password}");
            assert!(c.is_closed());
        }
    }
}

/// SaslHandshake v0: the tokens then travel as bare size-prefixed frames (Kafka before
/// KIP-152), and a wrong password closes the connection.
#[test]
fn handshake_v0_sends_bare_tokens() {
    let (_d, _s, server) = sasl_server();
    let mut c = WireClient::connect(server.local_addr());
    let r: SaslHandshakeResponse = c.call(
        ApiKey::SaslHandshake,
        0,
        &SaslHandshakeRequest::default().with_mechanism(s("SCRAM-SHA-256")),
    );
    assert_eq!(r.error_code, 0);
    let mut client = ScramClient::new(false, "alice", "alice-secret");
    c.send_raw(&client.first());
    let first = c.read_frame().unwrap();
    c.send_raw(&client.last(&first));
    let last = c.read_frame().unwrap();
    assert!(client.verify(&last));
    assert!(api_versions_works(&mut c));

    let mut c = WireClient::connect(server.local_addr());
    let _: SaslHandshakeResponse = c.call(
        ApiKey::SaslHandshake,
        0,
        &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
    );
    c.send_raw(b"\0alice\0wrong");
    assert!(c.read_frame().is_none(), "closed, no answer");
}

#[test]
fn a_public_address_is_allowed_with_sasl() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = Server::start(&store, ServerConfig::new("0.0.0.0:0").sasl(credentials())).unwrap();
    s.shutdown().unwrap();
}

#[test]
fn credentials_and_acl_files_that_do_not_parse_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("creds");
    std::fs::write(&p, "# ok\nSCRAM-SHA-256 alice iterations=4096\n").unwrap();
    let e = Credentials::load(&p).unwrap_err();
    assert!(
        matches!(e.kind(), riverbed::ErrorKind::InvalidConfig { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("line 2"), "{e}");
    let p = dir.path().join("acls");
    std::fs::write(&p, "allow User:a topic:x fly\n").unwrap();
    let e = riverbed::server::Acls::load(&p).unwrap_err();
    assert!(
        e.to_string().contains("line 1") && e.to_string().contains("fly"),
        "{e}"
    );
    assert!(Credentials::load(dir.path().join("missing"))
        .unwrap_err()
        .is_io());
}

#[cfg(feature = "server-tls")]
mod tls {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::sync::Arc;

    use kafka_protocol::messages::{RequestHeader, ResponseHeader};
    use kafka_protocol::protocol::{Decodable, Encodable};
    use riverbed::server::TlsConfig;

    fn self_signed() -> (String, String) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        (cert.cert.pem(), cert.signing_key.serialize_pem())
    }

    fn tls_client(
        addr: std::net::SocketAddr,
        ca_pem: &str,
    ) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = "localhost".try_into().unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        rustls::StreamOwned::new(conn, tcp)
    }

    fn call<S: Read + Write, Req: Encodable, Resp: Decodable>(
        stream: &mut S,
        api: ApiKey,
        version: i16,
        req: &Req,
    ) -> std::io::Result<Resp> {
        let mut buf = bytes::BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(5)
            .encode(&mut buf, api.request_header_version(version))
            .unwrap();
        req.encode(&mut buf, version).unwrap();
        let mut frame = (buf.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&buf);
        stream.write_all(&frame)?;
        stream.flush()?;
        let mut size = [0u8; 4];
        stream.read_exact(&mut size)?;
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        stream.read_exact(&mut body)?;
        let mut body = Bytes::from(body);
        let h = ResponseHeader::decode(&mut body, api.response_header_version(version)).unwrap();
        assert_eq!(h.correlation_id, 5);
        Ok(Resp::decode(&mut body, version).unwrap())
    }

    /// A TLS handshake with a self-signed certificate, then ApiVersions and a SASL/PLAIN login
    /// over it (SASL_SSL); a plaintext client on the TLS port gets no Kafka answer; a client
    /// that does not trust the certificate fails its handshake.
    #[test]
    fn tls_with_a_self_signed_certificate() {
        let (cert, key) = self_signed();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), &cert).unwrap();
        std::fs::write(dir.path().join("key.pem"), &key).unwrap();
        let tls =
            TlsConfig::from_pem_files(dir.path().join("cert.pem"), dir.path().join("key.pem"))
                .unwrap();
        let (_d, _s, server) = start(
            ServerConfig::new("127.0.0.1:0")
                .tls(tls)
                .sasl(credentials()),
        );
        let mut c = tls_client(server.local_addr(), &cert);
        let r: ApiVersionsResponse = call(
            &mut c,
            ApiKey::ApiVersions,
            3,
            &ApiVersionsRequest::default(),
        )
        .unwrap();
        assert_eq!(r.error_code, 0);
        let r: SaslHandshakeResponse = call(
            &mut c,
            ApiKey::SaslHandshake,
            1,
            &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
        )
        .unwrap();
        assert_eq!(r.error_code, 0);
        let r: SaslAuthenticateResponse = call(
            &mut c,
            ApiKey::SaslAuthenticate,
            2,
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from_static(b"\0alice\0alice-secret")),
        )
        .unwrap();
        assert_eq!(r.error_code, 0);
        assert!(c.conn.peer_certificates().is_some());

        // Plaintext Kafka on the TLS port: the server reads a bad TLS record and closes.
        let mut plain = WireClient::connect(server.local_addr());
        plain.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        assert!(plain.read_frame().is_none());

        // A client that trusts another certificate: its handshake fails.
        let (other, _) = self_signed();
        let mut c = tls_client(server.local_addr(), &other);
        assert!(call::<_, _, ApiVersionsResponse>(
            &mut c,
            ApiKey::ApiVersions,
            3,
            &ApiVersionsRequest::default()
        )
        .is_err());
    }

    #[test]
    fn bad_pem_is_an_invalid_config() {
        let (cert, _) = self_signed();
        let (_, other_key) = self_signed();
        for (c, k) in [
            ("", ""),
            (cert.as_str(), ""),
            (cert.as_str(), other_key.as_str()),
        ] {
            let e = TlsConfig::from_pem(c.as_bytes(), k.as_bytes()).unwrap_err();
            assert!(
                matches!(e.kind(), riverbed::ErrorKind::InvalidConfig { .. }),
                "{e}"
            );
        }
    }
}
