//! A minimal Kafka protocol client for tests of the wire front, on kafka-protocol's client
//! side (an encoder that is not ours): connect, send a request at a chosen version, read the
//! response. Raw frames too, for malformed-input cases.
#![allow(dead_code)]
#![allow(clippy::big_endian_bytes)] // Kafka's wire protocol is big-endian

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// One connection to a server.
pub struct WireClient {
    stream: TcpStream,
    next_correlation: i32,
}

impl WireClient {
    /// Connects to `addr` with 10 s socket timeouts (a test that waits longer is stuck).
    pub fn connect(addr: SocketAddr) -> WireClient {
        let stream = TcpStream::connect(addr).expect("connect to the server");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        WireClient {
            stream,
            next_correlation: 1,
        }
    }

    /// Sends `req` as `api` at `version` and decodes the response at the same version.
    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        req: &Req,
    ) -> Resp {
        self.try_call(api, version, req).expect("a response")
    }

    /// As [`call`](Self::call), but `None` when the server closed the connection instead.
    pub fn try_call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        req: &Req,
    ) -> Option<Resp> {
        let correlation = self.send(api, version, req);
        let mut frame = self.read_frame()?;
        let header = ResponseHeader::decode(&mut frame, api.response_header_version(version))
            .expect("a response header");
        assert_eq!(
            header.correlation_id, correlation,
            "responses come in request order"
        );
        Some(Resp::decode(&mut frame, version).expect("a response body that decodes"))
    }

    /// Sends `req` without reading a response (acks=0 produce); returns its correlation id.
    pub fn send<Req: Encodable>(&mut self, api: ApiKey, version: i16, req: &Req) -> i32 {
        let correlation = self.next_correlation;
        self.next_correlation += 1;
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_static_str("riverbed-test")))
            .encode(&mut buf, api.request_header_version(version))
            .unwrap();
        req.encode(&mut buf, version).unwrap();
        self.send_raw(&buf);
        correlation
    }

    /// Sends `payload` behind a correct size prefix.
    pub fn send_raw(&mut self, payload: &[u8]) {
        let mut frame = (payload.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame).unwrap();
    }

    /// Writes `bytes` exactly as given (no size prefix added).
    pub fn write_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one response frame (after its size prefix); `None` if the server closed the
    /// connection.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).ok()?;
        let size = i32::from_be_bytes(size);
        assert!(size >= 0, "negative response size {size}");
        let mut buf = vec![0u8; size as usize];
        self.stream.read_exact(&mut buf).ok()?;
        Some(Bytes::from(buf))
    }

    /// Whether the server has closed the connection (reads end-of-stream within 5 s).
    pub fn is_closed(&mut self) -> bool {
        self.stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0) | Err(_))
    }
}

/// A name as kafka-protocol's string type.
pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}
