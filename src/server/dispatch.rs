//! Routes a decoded request header to the handler of its API.
//!
//! Only APIs and versions listed in `versions.rs` reach this point (`conn.rs` checks first),
//! and ApiVersions is answered by `conn.rs` itself.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};

use super::conn::{Close, Connection};
use super::Shared;

/// A handler's answer.
pub(crate) enum Reply {
    /// The encoded response body (its header is added by the caller).
    Body(BytesMut),
    /// No response at all (Produce with acks=0).
    None,
}

/// Decodes `body` as a request of `api` at `version`, handles it and encodes the answer.
pub(super) fn handle(
    shared: &Shared,
    conn: &mut Connection,
    api: ApiKey,
    version: i16,
    header: &RequestHeader,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    let _ = (shared, conn, header, body);
    Err(Close::Malformed(format!(
        "{api:?} v{version} has no handler"
    )))
}
