//! Security of the wire front: who a client is (SASL), what it may do (ACLs), and a private
//! channel (TLS, feature `server-tls`).
//!
//! - **Authentication**: with [`ServerConfig::sasl`](super::ServerConfig::sasl) every
//!   connection must authenticate before anything but ApiVersions (Kafka's SASL listener,
//!   KIP-43/KIP-152): SaslHandshake (v0–1) picks a mechanism, then SaslAuthenticate (v0–2)
//!   carries the tokens (after a v0 handshake, the tokens travel as bare size-prefixed frames,
//!   as in Kafka before KIP-152). Mechanisms: PLAIN and SCRAM-SHA-256/512
//!   ([`scram`]); users come from a credentials file ([`Credentials`]), which holds salted
//!   SCRAM keys, never passwords. A failed login gets SASL_AUTHENTICATION_FAILED (58) and the
//!   connection is closed, as Kafka does; any other request before authentication closes it
//!   too.
//! - **Authorization**: with [`ServerConfig::acls`](super::ServerConfig::acls), handlers ask
//!   [`authorize`] before touching a topic, group, transactional id or the cluster, and answer
//!   a refusal with [`ResourceType::denied_code`] (TOPIC_AUTHORIZATION_FAILED 29 and its
//!   siblings). Without ACLs everything is allowed. The principal is `User:<name>` after SASL,
//!   `User:ANONYMOUS` without it.
//! - **TLS**: with [`ServerConfig::tls`](super::ServerConfig::tls) (feature `server-tls`),
//!   every connection is TLS (rustls, TLS 1.2 and 1.3): Kafka's SSL listener, or SASL_SSL with
//!   SASL as well.
//! - **Exposure**: [`Server::start`](super::Server::start) refuses a non-loopback address
//!   unless SASL is on, or the application says
//!   [`allow_unauthenticated_public`](super::ServerConfig::allow_unauthenticated_public).

// Kafka's framing (the bare SASL tokens after a v0 handshake) is big-endian.
#![allow(clippy::big_endian_bytes)]

pub mod acl;
pub mod credentials;
pub mod scram;
pub mod tls;

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

pub use acl::{Acls, Operation, Resource, ResourceType};
pub use credentials::Credentials;
use scram::{Exchange, Mechanism};

use super::conn::{decode_body, encode_body, Close, Connection};
use super::dispatch::Reply;
use super::Shared;

/// ILLEGAL_SASL_STATE: a SASL request out of order.
const ILLEGAL_SASL_STATE: i16 = 34;
/// UNSUPPORTED_SASL_MECHANISM.
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
/// SASL_AUTHENTICATION_FAILED.
const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// The principal name of a connection that did not authenticate (Kafka's `User:ANONYMOUS`).
pub const ANONYMOUS: &str = "ANONYMOUS";

/// What a server checks, held by its [`ServerConfig`](super::ServerConfig).
#[derive(Clone, Debug, Default)]
pub(crate) struct Security {
    pub credentials: Option<Arc<Credentials>>,
    pub acls: Option<Arc<Acls>>,
    pub tls: Option<tls::TlsConfig>,
}

impl Security {
    /// Whether clients must authenticate.
    pub fn authenticates(&self) -> bool {
        self.credentials.is_some()
    }

    fn mechanisms(&self) -> Vec<StrBytes> {
        if self.credentials.is_none() {
            return Vec::new();
        }
        ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
            .into_iter()
            .map(StrBytes::from_static_str)
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mech {
    Plain,
    Scram(Mechanism),
}

#[derive(Debug, Default)]
enum SaslState {
    /// No handshake yet.
    #[default]
    Idle,
    /// A mechanism was chosen; its exchange runs.
    Running {
        mech: Mech,
        /// Handshake v0: tokens come as bare frames, not SaslAuthenticate requests.
        raw: bool,
        scram: Option<Exchange>,
    },
    /// Authenticated (or a failed login whose connection is closing).
    Done,
}

/// Who is on the other end of one connection.
#[derive(Debug, Default)]
pub(crate) struct Session {
    /// The authenticated user; `None` until a SASL login succeeds (or for ever without SASL).
    pub user: Option<String>,
    state: SaslState,
}

impl Session {
    /// The principal's name (`User:` left out): the user, or [`ANONYMOUS`].
    pub fn principal(&self) -> &str {
        self.user.as_deref().unwrap_or(ANONYMOUS)
    }

    /// Whether the next frame is a bare SASL token (after a SaslHandshake v0).
    pub fn expects_raw_token(&self) -> bool {
        matches!(self.state, SaslState::Running { raw: true, .. })
    }

    /// Runs one step of the chosen mechanism on the client's `token`.
    fn step(&mut self, security: &Security, token: &[u8]) -> Result<Vec<u8>, String> {
        let Some(creds) = &security.credentials else {
            return Err("SASL is not enabled".into());
        };
        let SaslState::Running { mech, raw, scram } = std::mem::take(&mut self.state) else {
            return Err("no SASL handshake before SaslAuthenticate".into());
        };
        match mech {
            Mech::Plain => {
                self.state = SaslState::Done;
                let mut parts = token.split(|&b| b == 0);
                let (Some(authzid), Some(user), Some(password), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Err(
                        "invalid SASL/PLAIN message: expected authzid NUL user NUL password".into(),
                    );
                };
                let user = std::str::from_utf8(user).map_err(|_| "user name is not UTF-8")?;
                let password =
                    std::str::from_utf8(password).map_err(|_| "password is not UTF-8")?;
                if !authzid.is_empty() && authzid != user.as_bytes() {
                    return Err("Authentication failed: Client requested an authorization id that is different from username".into());
                }
                if user.is_empty() || !creds.check_plain(user, password) {
                    return Err("Authentication failed: Invalid username or password".into());
                }
                self.user = Some(user.to_string());
                Ok(Vec::new())
            }
            Mech::Scram(m) => {
                let mut exchange = scram.unwrap_or(Exchange::Start);
                let nonce = B64.encode(random_bytes(18));
                let mut who = None;
                let answer = exchange.step(m, token, |u| creds.scram(u, m), &nonce, &mut who);
                match (&answer, who) {
                    (Ok(_), Some(user)) => {
                        self.user = Some(user);
                        self.state = SaslState::Done;
                    }
                    (Ok(_), None) => {
                        self.state = SaslState::Running {
                            mech,
                            raw,
                            scram: Some(exchange),
                        }
                    }
                    (Err(_), _) => self.state = SaslState::Done,
                }
                answer
            }
        }
    }
}

/// Whether `conn` may send a request of `api` now: before authentication only ApiVersions,
/// SaslHandshake and SaslAuthenticate are (Kafka closes the connection for anything else).
pub(crate) fn admit(shared: &Shared, conn: &Connection, api: ApiKey) -> Result<(), Close> {
    if !shared.config.security.authenticates() || conn.session.user.is_some() {
        return Ok(());
    }
    match api {
        ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate => Ok(()),
        _ => Err(Close::Malformed(format!(
            "{api:?} before SASL authentication (clients must authenticate first)"
        ))),
    }
}

/// Whether the connection's principal may do `op` on `resource`. Always true without ACLs.
/// A handler answers `false` with [`ResourceType::denied_code`] of the resource's type
/// (Kafka's TOPIC_AUTHORIZATION_FAILED and siblings).
/// Every handler asks it, with the operation Kafka's `KafkaApis` asks for the same request
/// (the table is in README.md, "ACLs").
pub(crate) fn authorize(
    shared: &Shared,
    conn: &Connection,
    op: Operation,
    resource: Resource<'_>,
) -> bool {
    match &shared.config.security.acls {
        None => true,
        Some(acls) => acls.authorize(conn.session.principal(), op, resource),
    }
}

/// SaslHandshake: picks the mechanism.
pub(crate) fn handshake(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: SaslHandshakeRequest = decode_body(body, ApiKey::SaslHandshake, version)?;
    let security = &shared.config.security;
    let mech = match req.mechanism.as_str() {
        "PLAIN" => Some(Mech::Plain),
        other => Mechanism::from_name(other).map(Mech::Scram),
    }
    .filter(|_| security.authenticates());
    let code = match (&conn.session.state, mech) {
        (SaslState::Idle, Some(mech)) => {
            conn.session.state = SaslState::Running {
                mech,
                raw: version == 0,
                scram: None,
            };
            0
        }
        (SaslState::Idle, None) => UNSUPPORTED_SASL_MECHANISM,
        _ => ILLEGAL_SASL_STATE,
    };
    if code != 0 {
        // Kafka answers, then closes the connection.
        conn.error_answered();
        conn.close_after_reply = Some(format!(
            "SaslHandshake for {:?} refused (error {code})",
            req.mechanism.as_str()
        ));
    }
    let resp = SaslHandshakeResponse::default()
        .with_error_code(code)
        .with_mechanisms(security.mechanisms());
    Ok(Reply::Body(encode_body(&resp, version)?))
}

/// SaslAuthenticate: one token of the exchange.
pub(crate) fn authenticate(
    shared: &Shared,
    conn: &mut Connection,
    version: i16,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let req: SaslAuthenticateRequest = decode_body(body, ApiKey::SaslAuthenticate, version)?;
    let mut resp = SaslAuthenticateResponse::default();
    if !matches!(conn.session.state, SaslState::Running { raw: false, .. }) {
        resp.error_code = ILLEGAL_SASL_STATE;
        resp.error_message = Some(StrBytes::from_static_str(
            "SaslAuthenticate without a SaslHandshake (v1) before it",
        ));
    } else {
        match conn.session.step(&shared.config.security, &req.auth_bytes) {
            Ok(token) => resp.auth_bytes = Bytes::from(token),
            Err(msg) => {
                resp.error_code = SASL_AUTHENTICATION_FAILED;
                resp.error_message = Some(StrBytes::from_string(msg));
            }
        }
    }
    if resp.error_code != 0 {
        conn.error_answered();
        conn.close_after_reply = Some(format!(
            "SASL authentication failed: {}",
            resp.error_message.as_ref().map_or("", |m| m.as_str())
        ));
        tracing::warn!(peer = %conn.peer, "SASL authentication failed");
    } else if let Some(user) = &conn.session.user {
        tracing::debug!(peer = %conn.peer, user, "SASL authentication succeeded");
    }
    Ok(Reply::Body(encode_body(&resp, version)?))
}

/// A bare token after a SaslHandshake v0: the answer is a bare size-prefixed token too. A
/// failed login closes the connection (there is no error field to carry it).
pub(crate) fn raw_token(
    shared: &Shared,
    conn: &mut Connection,
    token: &[u8],
) -> Result<BytesMut, Close> {
    match conn.session.step(&shared.config.security, token) {
        Ok(answer) => {
            let mut out = BytesMut::with_capacity(4 + answer.len());
            out.extend_from_slice(&(answer.len() as i32).to_be_bytes());
            out.extend_from_slice(&answer);
            Ok(out)
        }
        Err(msg) => {
            tracing::warn!(peer = %conn.peer, "SASL authentication failed");
            Err(Close::AuthFailed(msg))
        }
    }
}

/// `n` bytes from the operating system's random source (SCRAM nonces, salts).
pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    if getrandom::getrandom(&mut out).is_err() {
        // No OS randomness (never seen on a supported platform): fall back to the hasher
        // seeds std draws from it at start, mixed with the time. Not a key, only a nonce/salt.
        use std::hash::{BuildHasher, Hasher};
        for chunk in out.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            let v = h.finish().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::ServerConfig;
    use crate::store::server_metrics::ServerCounters;

    fn shared(config: ServerConfig) -> (tempfile::TempDir, Shared) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::Store::open(dir.path()).unwrap();
        let shared = Shared {
            store,
            config,
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            stopping: Default::default(),
            connections: Default::default(),
            metrics: Arc::new(ServerCounters::new("127.0.0.1:9092".into(), Vec::new())),
            next_connection: Default::default(),
            threads: Default::default(),
        };
        (dir, shared)
    }

    fn conn(user: Option<&str>) -> Connection {
        Connection {
            peer: "127.0.0.1:1".parse().unwrap(),
            client_id: None,
            answered_error: false,
            session: Session {
                user: user.map(str::to_string),
                state: SaslState::Done,
            },
            close_after_reply: None,
        }
    }

    /// `authorize` asks the ACLs as the connection's principal (`User:ANONYMOUS` before or
    /// without SASL), and allows everything without ACLs; a refusal maps to the code of the
    /// resource's type (a denied topic: TOPIC_AUTHORIZATION_FAILED, 29).
    #[test]
    fn authorize_uses_the_sessions_principal() {
        let acls = Acls::parse("allow User:alice topic:events write\n").unwrap();
        let (_d, s) = shared(ServerConfig::new("127.0.0.1:0").acls(acls));
        let events = Resource::topic("events");
        assert!(authorize(
            &s,
            &conn(Some("alice")),
            Operation::Write,
            events
        ));
        assert!(!authorize(&s, &conn(Some("bob")), Operation::Write, events));
        assert!(!authorize(&s, &conn(None), Operation::Write, events));
        assert_eq!(events.kind.denied_code(), 29);
        let (_d2, open) = shared(ServerConfig::new("127.0.0.1:0"));
        assert!(authorize(&open, &conn(None), Operation::Delete, events));
    }

    /// Before a SASL login only ApiVersions and the SASL APIs pass; after it, anything does;
    /// without SASL nothing is gated.
    #[test]
    fn admit_gates_requests_before_authentication() {
        let creds =
            Credentials::parse(&Credentials::line("SCRAM-SHA-256", "alice", "pw", 4096).unwrap())
                .unwrap();
        let (_d, s) = shared(ServerConfig::new("127.0.0.1:0").sasl(creds));
        let anonymous = conn(None);
        for api in [
            ApiKey::ApiVersions,
            ApiKey::SaslHandshake,
            ApiKey::SaslAuthenticate,
        ] {
            assert!(admit(&s, &anonymous, api).is_ok(), "{api:?}");
        }
        for api in [ApiKey::Metadata, ApiKey::Produce, ApiKey::Fetch] {
            assert!(
                matches!(admit(&s, &anonymous, api), Err(Close::Malformed(_))),
                "{api:?}"
            );
            assert!(admit(&s, &conn(Some("alice")), api).is_ok());
        }
        let (_d2, open) = shared(ServerConfig::new("127.0.0.1:0"));
        assert!(admit(&open, &anonymous, ApiKey::Produce).is_ok());
    }
}
