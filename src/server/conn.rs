//! One client connection: read a size-prefixed request, check its API and version, hand it to
//! [`dispatch`](super::dispatch), write the response; repeat until the client closes, a request
//! is malformed, or the server stops.
//!
//! Kafka's framing: every request and response is a 4-byte big-endian size followed by that
//! many bytes. A request starts with its API key and version (two big-endian i16), then the
//! rest of its header (correlation id, client id, tagged fields from the flexible versions on)
//! and its body. The response echoes the correlation id.

// Kafka's wire protocol is big-endian throughout.
#![allow(clippy::big_endian_bytes)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::auth::tls::Transport;
use super::auth::{self, Session};
use super::dispatch::{self, Reply};
use super::{versions, Shared};

/// How often a connection blocked in a read looks at the server's stop flag.
pub(super) const POLL: Duration = Duration::from_millis(200);

/// What the server knows about one connection, kept for its lifetime.
#[derive(Debug)]
pub(crate) struct Connection {
    /// The client's address.
    pub peer: SocketAddr,
    /// The client id of the last request (`client.id`), for logs.
    pub client_id: Option<String>,
    /// Set by a handler whose answer carries an error code, so the request counts as an
    /// error in the server's metrics; cleared before each request.
    pub answered_error: bool,
    /// Who the client is (SASL), for `auth::authorize`.
    pub session: Session,
    /// Set by a handler whose answer must be the connection's last (a failed SASL login):
    /// the response is written, then the connection is closed for this reason.
    pub close_after_reply: Option<String>,
}

impl Connection {
    /// Marks the request being handled as answered with an error (for the metrics).
    pub(crate) fn error_answered(&mut self) {
        self.answered_error = true;
    }
}

/// Why a connection is closed.
#[derive(Debug)]
pub(crate) enum Close {
    /// The client closed it, or the server is stopping.
    Done,
    /// The socket failed or timed out.
    Io(io::Error),
    /// The client sent something that is not a request we can answer: Kafka closes the
    /// connection (there is no way to send an error for a request that cannot be parsed).
    Malformed(String),
    /// SASL authentication failed (after its answer, if the API has one).
    AuthFailed(String),
}

impl From<io::Error> for Close {
    fn from(e: io::Error) -> Close {
        Close::Io(e)
    }
}

/// Serves `stream` until it closes. Never panics on anything the client sends.
pub(super) fn serve(shared: &Shared, stream: TcpStream) {
    let peer = match stream.peer_addr() {
        Ok(p) => p,
        Err(_) => return,
    };
    let mut conn = Connection {
        peer,
        client_id: None,
        answered_error: false,
        session: Session::default(),
        close_after_reply: None,
    };
    let stream = match Transport::new(stream, shared.config.security.tls.as_ref()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "could not start TLS");
            return;
        }
    };
    let result = serve_inner(shared, &mut conn, stream);
    match result {
        Close::Done => tracing::debug!(%peer, "connection closed"),
        Close::Io(e) => tracing::debug!(%peer, error = %e, "connection dropped"),
        Close::Malformed(reason) => {
            tracing::warn!(%peer, client_id = ?conn.client_id, %reason, "malformed request: connection closed")
        }
        Close::AuthFailed(reason) => {
            tracing::warn!(%peer, client_id = ?conn.client_id, %reason, "authentication failed: connection closed")
        }
    }
}

fn serve_inner(shared: &Shared, conn: &mut Connection, mut stream: Transport) -> Close {
    let tcp = stream.tcp();
    if let Err(e) = tcp
        .set_read_timeout(Some(POLL))
        .and_then(|_| tcp.set_write_timeout(Some(shared.config.socket_timeout)))
        .and_then(|_| tcp.set_nodelay(true))
    {
        return Close::Io(e);
    }
    loop {
        let frame = match read_frame(shared, &mut stream) {
            Ok(Some(frame)) => frame,
            Ok(None) => return Close::Done,
            Err(close) => return close,
        };
        if conn.session.expects_raw_token() {
            // After a SaslHandshake v0 the client's tokens come as bare frames.
            let answer = match auth::raw_token(shared, conn, &frame) {
                Ok(answer) => answer,
                Err(close) => {
                    let _ = stream.tcp().shutdown(Shutdown::Both);
                    return close;
                }
            };
            if let Err(e) = stream.write_all(&answer).and_then(|()| stream.flush()) {
                return Close::Io(e);
            }
            continue;
        }
        let started = Instant::now();
        let key = frame.get(..2).map(|k| i16::from_be_bytes([k[0], k[1]]));
        shared
            .metrics
            .bytes_received
            .fetch_add(4 + frame.len() as u64, Ordering::Relaxed);
        conn.answered_error = false;
        let handled = handle_frame(shared, conn, frame);
        if let Some(key) = key {
            let error = handled.is_err() || conn.answered_error;
            shared.metrics.request(key, started.elapsed(), error);
        }
        match handled {
            Ok(Some(response)) => {
                if let Err(e) = stream.write_all(&response).and_then(|()| stream.flush()) {
                    return Close::Io(e);
                }
                shared
                    .metrics
                    .bytes_sent
                    .fetch_add(response.len() as u64, Ordering::Relaxed);
            }
            Ok(None) => {}
            Err(close) => {
                let _ = stream.tcp().shutdown(Shutdown::Both);
                return close;
            }
        }
        if let Some(reason) = conn.close_after_reply.take() {
            let _ = stream.tcp().shutdown(Shutdown::Both);
            return Close::AuthFailed(reason);
        }
        if shared.stopping.load(Ordering::SeqCst) {
            return Close::Done;
        }
    }
}

/// Reads one size-prefixed frame. `None` when the client closed between requests or the server
/// is stopping while the connection is idle.
fn read_frame(shared: &Shared, stream: &mut Transport) -> Result<Option<Bytes>, Close> {
    let mut size = [0u8; 4];
    if !read_full(shared, stream, &mut size, true)? {
        return Ok(None);
    }
    let size = i32::from_be_bytes(size);
    let max = shared.config.max_request_bytes;
    if size < 0 || size as usize > max {
        return Err(Close::Malformed(format!(
            "request size {size} is outside 0..={max} (max_request_bytes)"
        )));
    }
    // Grow the buffer as bytes arrive rather than reserving the announced size: a client that
    // announces 100 MiB and sends nothing (on each of many connections) holds only what it sent.
    const CHUNK: usize = 64 * 1024;
    let size = size as usize;
    let mut buf = Vec::with_capacity(size.min(CHUNK));
    while buf.len() < size {
        let start = buf.len();
        buf.resize(start + (size - start).min(CHUNK.max(start)), 0);
        if !read_full(shared, stream, &mut buf[start..], false)? {
            return Err(Close::Malformed(
                "connection closed inside a request".into(),
            ));
        }
    }
    Ok(Some(Bytes::from(buf)))
}

/// Fills `buf`. Returns false if the stream ended before the first byte (`idle`: between
/// requests) or the server is stopping while nothing of the frame has been read. Gives up on a
/// client idle or stalled mid-request for longer than the socket timeout.
fn read_full(
    shared: &Shared,
    stream: &mut Transport,
    buf: &mut [u8],
    idle: bool,
) -> Result<bool, Close> {
    let mut filled = 0;
    let mut last_progress = Instant::now();
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]) {
            Ok(0) => {
                if filled == 0 && idle {
                    return Ok(false);
                }
                return Err(Close::Malformed(
                    "connection closed inside a request".into(),
                ));
            }
            Ok(n) => {
                filled += n;
                last_progress = Instant::now();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if filled == 0 && idle && shared.stopping.load(Ordering::SeqCst) {
                    return Ok(false);
                }
                if last_progress.elapsed() > shared.config.socket_timeout {
                    if filled == 0 && idle {
                        // An idle connection past the timeout: Kafka's
                        // `connections.max.idle.ms` closes it the same way.
                        return Ok(false);
                    }
                    return Err(Close::Io(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client stalled inside a request",
                    )));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Close::Io(e)),
        }
    }
    Ok(true)
}

/// Handles one request frame and returns the whole response frame (size prefix included), or
/// `None` when the request gets no response (Produce with acks=0).
pub(crate) fn handle_frame(
    shared: &Shared,
    conn: &mut Connection,
    mut frame: Bytes,
) -> Result<Option<BytesMut>, Close> {
    if frame.len() < 8 {
        return Err(Close::Malformed(format!(
            "a request of {} bytes is shorter than a request header",
            frame.len()
        )));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api = match ApiKey::try_from(key) {
        Ok(api) if versions::advertised(api).is_some() => api,
        // Kafka's broker closes the connection for an API it does not know; one it knows but
        // does not serve is the same to a client that did not check ApiVersions first.
        _ => return Err(Close::Malformed(format!("API key {key} is not served"))),
    };
    if !versions::supported(api, version) {
        if api == ApiKey::ApiVersions {
            // KIP-511: a client that sends a newer ApiVersions than we know gets a v0 answer
            // with UNSUPPORTED_VERSION and our ranges, then retries with a version we listed.
            // Its header may be one we cannot parse, so only the correlation id is read.
            let body = api_versions_response(35);
            return encode_frame(correlation_id, 0, &body, 0).map(Some);
        }
        return Err(Close::Malformed(format!(
            "{api:?} v{version} is not served (advertised {:?})",
            versions::advertised(api)
        )));
    }
    auth::admit(shared, conn, api)?;
    let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
        .map_err(|e| Close::Malformed(format!("{api:?} v{version} header: {e}")))?;
    if let Some(id) = &header.client_id {
        if conn.client_id.as_deref() != Some(id.as_str()) {
            conn.client_id = Some(id.to_string());
        }
    }
    let reply = if api == ApiKey::ApiVersions {
        Reply::Body(encode_body(&api_versions_response(0), version)?)
    } else {
        dispatch::handle(shared, conn, api, version, &header, &mut frame)?
    };
    match reply {
        Reply::Body(body) => {
            let mut out =
                encode_frame_header(correlation_id, api.response_header_version(version))?;
            finish_frame(&mut out, &body);
            Ok(Some(out))
        }
        Reply::None => Ok(None),
    }
}

/// The ApiVersions answer: every advertised range, nothing else (no features, KIP-584).
fn api_versions_response(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            versions::ADVERTISED
                .iter()
                .map(|&(api, min, max)| {
                    ApiVersion::default()
                        .with_api_key(api as i16)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect(),
        )
}

/// Encodes a response body at `version`.
pub(crate) fn encode_body<R: Encodable>(body: &R, version: i16) -> Result<BytesMut, Close> {
    let mut out = BytesMut::new();
    body.encode(&mut out, version)
        .map_err(|e| Close::Malformed(format!("cannot encode the response at v{version}: {e}")))?;
    Ok(out)
}

/// Decodes a request body at `version`; a body that does not decode closes the connection.
pub(crate) fn decode_body<R: Decodable>(
    body: &mut Bytes,
    api: ApiKey,
    version: i16,
) -> Result<R, Close> {
    R::decode(body, version).map_err(|e| Close::Malformed(format!("{api:?} v{version} body: {e}")))
}

fn encode_frame_header(correlation_id: i32, header_version: i16) -> Result<BytesMut, Close> {
    let mut out = BytesMut::with_capacity(64);
    out.extend_from_slice(&[0; 4]); // size, filled by finish_frame
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut out, header_version)
        .map_err(|e| Close::Malformed(format!("cannot encode a response header: {e}")))?;
    Ok(out)
}

fn finish_frame(out: &mut BytesMut, body: &[u8]) {
    out.extend_from_slice(body);
    let size = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&size.to_be_bytes());
}

fn encode_frame<R: Encodable>(
    correlation_id: i32,
    header_version: i16,
    body: &R,
    version: i16,
) -> Result<BytesMut, Close> {
    let body = encode_body(body, version)?;
    let mut out = encode_frame_header(correlation_id, header_version)?;
    finish_frame(&mut out, &body);
    Ok(out)
}
