//! Robustness of the wire front against what a client may send: arbitrary bytes, valid requests
//! of every advertised API and version mangled (bytes flipped, cut, inserted, counts set to
//! huge values), and element counts far beyond the frame. Whatever arrives, the connection gets
//! responses or is closed (never left hanging once the client has finished sending, except by a
//! request that may wait as long as its client asked: see `may_hold`), and the server goes on
//! answering a well-formed ApiVersions. Needs `--features server`.
//!
//! The server runs in a child process (this test binary, re-executed into `child_server`): an
//! allocation failure aborts a process rather than panicking, and an abort inside the test
//! runner would end every test at once with no report. Here it is a failed test that names the
//! input, and the next case gets a fresh child (so proptest's shrinking still works).
#![cfg(feature = "server")]
// Kafka's wire protocol is big-endian: every size, key, version and count here is.
#![allow(clippy::big_endian_bytes)]

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use proptest::prelude::*;
use riverbed::server::{Server, ServerConfig};
use riverbed::{Store, TopicConfig};

const CHILD_ENV: &str = "RIVERBED_SERVER_DECODE_CHILD";

/// Not a test of its own (ignored, and a no-op without the variable): the server process of
/// the tests below. Serves a store with topic `t` (2 partitions) on a loopback port written to
/// the file named by the variable, until its stdin closes.
#[test]
#[ignore = "the server process of this file's tests, started by them"]
fn child_server() {
    let Ok(port_file) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::new(2)).unwrap();
    let server = Server::start(&store, ServerConfig::new("127.0.0.1:0")).unwrap();
    let tmp = format!("{port_file}.tmp");
    std::fs::write(&tmp, server.local_addr().to_string()).unwrap();
    std::fs::rename(&tmp, &port_file).unwrap();
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    server.shutdown().unwrap();
}

/// The child server process.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl ServerProcess {
    fn spawn() -> ServerProcess {
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("addr");
        let stderr = dir.path().join("stderr");
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["child_server", "--exact", "--ignored", "--nocapture"])
            .env(CHILD_ENV, &port_file)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            if let Ok(s) = std::fs::read_to_string(&port_file) {
                break s.parse().unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "the child server did not start within 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        ServerProcess {
            child,
            addr,
            stderr,
            _dir: dir,
        }
    }

    /// Panics, with the child's stderr and `what`, if the child has exited or does not answer
    /// a well-formed ApiVersions v3 within 10 s.
    fn assert_serving(&mut self, what: &dyn Fn() -> String) {
        let answered = api_versions_ok(self.addr);
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "the server process died ({status}) after {}\n--- its stderr:\n{}",
                what(),
                self.stderr_tail()
            );
        }
        if let Err(e) = answered {
            panic!(
                "the server no longer answers ApiVersions ({e}) after {}\n--- its stderr:\n{}",
                what(),
                self.stderr_tail()
            );
        }
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn stderr_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One child for every case of this binary (respawned if a case killed it).
static SERVER: Mutex<Option<ServerProcess>> = Mutex::new(None);

fn with_server<R>(f: impl FnOnce(&mut ServerProcess) -> R) -> R {
    let mut guard = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    if !guard.as_mut().is_some_and(ServerProcess::alive) {
        *guard = Some(ServerProcess::spawn());
    }
    f(guard.as_mut().unwrap())
}

fn request_frame(api: ApiKey, version: i16, correlation: i32, body: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("server-decode")))
        .encode(&mut buf, api.request_header_version(version))
        .unwrap();
    buf.extend_from_slice(body);
    buf.to_vec()
}

fn api_versions_ok(addr: SocketAddr) -> Result<(), String> {
    let mut s = connect(addr).map_err(|e| e.to_string())?;
    let req = {
        let mut b = BytesMut::new();
        ApiVersionsRequest::default().encode(&mut b, 3).unwrap();
        request_frame(ApiKey::ApiVersions, 3, 42, &b)
    };
    write_frame(&mut s, &req).map_err(|e| e.to_string())?;
    let mut frame = read_frame(&mut s)
        .map_err(|e| e.to_string())?
        .ok_or("closed")?;
    let mut frame = bytes::Bytes::from(std::mem::take(&mut frame));
    if frame.len() < 4 || frame.get_i32() != 42 {
        return Err("wrong correlation id".into());
    }
    let r = ApiVersionsResponse::decode(&mut frame, 3).map_err(|e| e.to_string())?;
    if r.error_code != 0 || r.api_keys.is_empty() {
        return Err(format!(
            "error {} with {} APIs",
            r.error_code,
            r.api_keys.len()
        ));
    }
    Ok(())
}

/// The advertised (API, version) pairs, from the server's own ApiVersions answer.
fn advertised(addr: SocketAddr) -> Vec<(ApiKey, i16)> {
    let mut s = connect(addr).unwrap();
    let mut b = BytesMut::new();
    ApiVersionsRequest::default().encode(&mut b, 3).unwrap();
    write_frame(&mut s, &request_frame(ApiKey::ApiVersions, 3, 1, &b)).unwrap();
    let mut frame = bytes::Bytes::from(read_frame(&mut s).unwrap().unwrap());
    frame.advance(4);
    let r = ApiVersionsResponse::decode(&mut frame, 3).unwrap();
    let mut out = Vec::new();
    for k in &r.api_keys {
        if let Ok(api) = ApiKey::try_from(k.api_key) {
            for v in k.min_version..=k.max_version {
                out.push((api, v));
            }
        }
    }
    out
}

fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    Ok(s)
}

fn write_frame(s: &mut TcpStream, payload: &[u8]) -> std::io::Result<()> {
    let mut f = (payload.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    s.write_all(&f)
}

/// APIs whose requests a server may rightly hold for as long as the client asked: Fetch (long
/// poll up to `max_wait_ms`), JoinGroup and SyncGroup (the rebalance barrier, up to the
/// request's rebalance timeout). A mangled request of these may name a wait of days, so a
/// connection that stays open is no failure for them (the server must still serve others).
fn may_hold(api: i16) -> bool {
    [ApiKey::Fetch, ApiKey::JoinGroup, ApiKey::SyncGroup]
        .iter()
        .any(|a| *a as i16 == api)
}

/// Whether `err` from [`send_and_drain`] is a connection held open by a request of `api`
/// that [`may_hold`].
fn held_rightly(api: i16, err: &str) -> bool {
    may_hold(api) && err.starts_with("the connection stayed open")
}

/// One response frame; `None` at end of stream.
fn read_frame(s: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut size = [0u8; 4];
    match s.read_exact(&mut size) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(None),
        Err(e) => return Err(e),
    }
    let size = i32::from_be_bytes(size);
    if !(0..=(64 << 20)).contains(&size) {
        return Err(std::io::Error::other(format!(
            "a response frame of size {size}"
        )));
    }
    let mut buf = vec![0u8; size as usize];
    s.read_exact(&mut buf)?;
    Ok(Some(buf))
}

/// Sends `bytes` (a request of `api`) as they are, ends the client's side, and reads responses
/// until the server closes: the connection must end within 10 s (a server that waits for more of a request the
/// client can no longer send, or that never closes, leaves a thread stuck). Returns how many
/// well-framed responses came back.
fn send_and_drain(addr: SocketAddr, bytes: &[u8], api: i16) -> Result<usize, String> {
    let mut s = connect(addr).map_err(|e| format!("connect: {e}"))?;
    if may_hold(api) {
        // Such a request may wait as long as it asked; no need to wait 10 s to learn that.
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
    }
    // The server may close before reading everything (a malformed first frame): a failed write
    // is then expected.
    let _ = s.write_all(bytes);
    let _ = s.shutdown(Shutdown::Write);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    loop {
        match read_frame(&mut s) {
            Ok(Some(_)) => n += 1,
            Ok(None) => return Ok(n),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!(
                    "the connection stayed open after the client finished sending ({n} responses)"
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(n),
            Err(e) => return Err(format!("reading responses: {e}")),
        }
        if Instant::now() > deadline {
            return Err("responses kept coming for 10 s".into());
        }
    }
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The decoder itself, in a child process: element counts beyond the message are an error, not
/// an allocation of count × element size. Before the patch in vendor/kafka-protocol the first
/// of these aborted the process ("memory allocation of 154618822584 bytes failed").
#[test]
fn decoding_a_count_beyond_the_message_is_an_error_not_an_abort() {
    if std::env::var_os("RIVERBED_DECODE_COUNTS_CHILD").is_some() {
        // Metadata v0: topics array (i32 count) = i32::MAX, nothing after it.
        let mut b = bytes::Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff]);
        assert!(MetadataRequest::decode(&mut b, 0).is_err());
        // Metadata v9 (flexible): compact array count (unsigned varint, count + 1) = 2^32 - 1.
        let mut b = bytes::Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(MetadataRequest::decode(&mut b, 9).is_err());
        // Produce v3: transactional id null, acks, timeout, then topic_data count = i32::MAX.
        let mut b = bytes::Bytes::from_static(&[
            0xff, 0xff, 0, 1, 0, 0, 0x75, 0x30, 0x7f, 0xff, 0xff, 0xff,
        ]);
        assert!(ProduceRequest::decode(&mut b, 3).is_err());
        // JoinGroup v5: protocols count = i32::MAX, after valid strings and timeouts.
        let mut req = BytesMut::new();
        JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .encode(&mut req, 5)
            .unwrap();
        let n = req.len();
        req[n - 4..].copy_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
        let mut b = req.freeze();
        assert!(JoinGroupRequest::decode(&mut b, 5).is_err());
        // A count that fits is still decoded.
        let mut b = bytes::Bytes::from_static(&[0, 0, 0, 0]);
        assert!(MetadataRequest::decode(&mut b, 0)
            .unwrap()
            .topics
            .unwrap()
            .is_empty());
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "decoding_a_count_beyond_the_message_is_an_error_not_an_abort",
            "--exact",
            "--nocapture",
        ])
        .env("RIVERBED_DECODE_COUNTS_CHILD", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the decoding process failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every advertised API and version, sent bodies that are nothing but huge element counts
/// (i32 and unsigned-varint forms): each request is answered or its connection closed, and
/// the server lives on.
#[test]
fn huge_counts_in_every_advertised_request_are_refused_and_the_server_lives() {
    let addr = with_server(|s| s.addr);
    let pairs = advertised(addr);
    assert!(!pairs.is_empty());
    let bodies: [&[u8]; 4] = [
        &[0x7f, 0xff, 0xff, 0xff],
        &[
            0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff,
        ],
        &[0xff, 0xff, 0xff, 0xff, 0x0f],
        &[
            0x00, 0xff, 0xff, 0xff, 0xff, 0x0f, 0xff, 0xff, 0xff, 0xff, 0x0f,
        ],
    ];
    for &(api, version) in &pairs {
        for body in bodies {
            let payload = request_frame(api, version, 7, body);
            with_server(|s| {
                match send_and_drain(s.addr, &framed(&payload), api as i16) {
                    Err(e) if !held_rightly(api as i16, &e) => {
                        panic!("{api:?} v{version} body {}: {e}", hex(body))
                    }
                    _ => {}
                }
                s.assert_serving(&|| format!("{api:?} v{version} with body {}", hex(body)));
            });
        }
    }
}

/// A valid request of `api` at `version` with default fields (and a topic or two where the
/// API names topics), or `None` where kafka-protocol cannot encode that version.
fn seed_body(api: ApiKey, version: i16) -> Option<Vec<u8>> {
    macro_rules! enc {
        ($req:expr) => {{
            let mut b = BytesMut::new();
            $req.encode(&mut b, version).ok()?;
            b.to_vec()
        }};
    }
    let topic = || TopicName(StrBytes::from_static_str("t"));
    let group = || GroupId(StrBytes::from_static_str("g"));
    Some(match api {
        ApiKey::Produce => enc!(ProduceRequest::default().with_acks(1).with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(topic())
                .with_partition_data(vec![produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(bytes::Bytes::from_static(&KAFKA_BATCH)))])
        ])),
        ApiKey::Fetch => enc!(FetchRequest::default()
            .with_max_wait_ms(1)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(topic())
                .with_partitions(vec![fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_partition_max_bytes(1 << 20)])])),
        ApiKey::ListOffsets => enc!(ListOffsetsRequest::default().with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(topic())
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default().with_timestamp(-1)
                ])
        ])),
        ApiKey::Metadata => enc!(MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(topic()))
        ]))),
        ApiKey::OffsetCommit => enc!(OffsetCommitRequest::default()
            .with_group_id(group())
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(topic())
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_committed_offset(1)
                    ])
            ])),
        ApiKey::OffsetFetch => enc!(OffsetFetchRequest::default().with_group_id(group())),
        ApiKey::FindCoordinator => enc!(FindCoordinatorRequest::default()
            .with_key(StrBytes::from_static_str("g"))
            .with_coordinator_keys(vec![StrBytes::from_static_str("g")])),
        ApiKey::JoinGroup => enc!(JoinGroupRequest::default()
            .with_group_id(group())
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
            )
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(bytes::Bytes::from_static(&[
                0, 1, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff
            ]))])),
        ApiKey::Heartbeat => enc!(HeartbeatRequest::default().with_group_id(group())),
        ApiKey::LeaveGroup => enc!(LeaveGroupRequest::default().with_group_id(group())),
        ApiKey::SyncGroup => enc!(SyncGroupRequest::default().with_group_id(group())),
        ApiKey::DescribeGroups => enc!(DescribeGroupsRequest::default().with_groups(vec![group()])),
        ApiKey::ListGroups => enc!(ListGroupsRequest::default()),
        ApiKey::ApiVersions => enc!(ApiVersionsRequest::default()),
        ApiKey::CreateTopics => enc!(CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("new")))
                .with_num_partitions(1)
                .with_replication_factor(1)
        ])),
        ApiKey::DeleteTopics => enc!(DeleteTopicsRequest::default()
            .with_topic_names(vec![TopicName(StrBytes::from_static_str("gone"))])),
        ApiKey::DeleteRecords => enc!(DeleteRecordsRequest::default()),
        ApiKey::InitProducerId => enc!(InitProducerIdRequest::default()
            .with_transaction_timeout_ms(10_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)),
        ApiKey::AddPartitionsToTxn => enc!(AddPartitionsToTxnRequest::default()),
        ApiKey::AddOffsetsToTxn => enc!(AddOffsetsToTxnRequest::default().with_group_id(group())),
        ApiKey::EndTxn => enc!(EndTxnRequest::default()),
        ApiKey::TxnOffsetCommit => enc!(TxnOffsetCommitRequest::default().with_group_id(group())),
        ApiKey::DescribeConfigs => enc!(DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("t"))
        ])),
        ApiKey::CreatePartitions => enc!(CreatePartitionsRequest::default()),
        ApiKey::DeleteGroups => {
            enc!(DeleteGroupsRequest::default().with_groups_names(vec![group()]))
        }
        ApiKey::IncrementalAlterConfigs => enc!(IncrementalAlterConfigsRequest::default()),
        ApiKey::DescribeCluster => enc!(DescribeClusterRequest::default()),
        _ => return None,
    })
}

/// A Kafka v2 record batch of one record (key "k", value "v"), as kafka-protocol's encoder
/// writes it (CRC-32C over the bytes after the CRC): a seed for Produce.
const KAFKA_BATCH: [u8; 70] = [
    0, 0, 0, 0, 0, 0, 0, 0, // base offset
    0, 0, 0, 58, // batch length
    0xff, 0xff, 0xff, 0xff, // partition leader epoch
    2,    // magic
    0xfe, 0x91, 0x7c, 0xab, // crc (checked in kafka_batch_seed_is_valid)
    0, 0, // attributes
    0, 0, 0, 0, // last offset delta
    0, 0, 0, 0, 0, 0, 0, 0, // base timestamp
    0, 0, 0, 0, 0, 0, 0, 0, // max timestamp
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // producer id
    0xff, 0xff, // producer epoch
    0xff, 0xff, 0xff, 0xff, // base sequence
    0, 0, 0, 1, // records
    16, 0, 0, 0, 2, b'k', 2, b'v',
    0, // length 8, attrs, ts delta, offset delta, key, value, 0 headers
];

#[test]
fn kafka_batch_seed_is_valid() {
    let crc = crc32c::crc32c(&KAFKA_BATCH[21..]);
    assert_eq!(
        crc,
        u32::from_be_bytes(KAFKA_BATCH[17..21].try_into().unwrap()),
        "{crc:#x}"
    );
}

/// Every (API, version) the server advertises and a valid request body for it.
fn seeds() -> &'static [(ApiKey, i16, Vec<u8>)] {
    static SEEDS: std::sync::OnceLock<Vec<(ApiKey, i16, Vec<u8>)>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(|| {
        let addr = with_server(|s| s.addr);
        advertised(addr)
            .into_iter()
            .filter_map(|(api, v)| Some((api, v, seed_body(api, v)?)))
            .collect()
    })
}

/// One change to a request's bytes.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    /// Four bytes set to a count a decoder may trust.
    Count(usize, i32),
    /// An unsigned varint of a huge compact count inserted.
    Varint(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (
            any::<usize>(),
            prop_oneof![
                Just(i32::MAX),
                Just(-2),
                Just(1 << 20),
                Just(65_536),
                any::<i32>()
            ]
        )
            .prop_map(|(i, n)| Mutation::Count(i, n)),
        any::<usize>().prop_map(Mutation::Varint),
    ]
}

/// Applies `m` to `b`, leaving the API key and version (the first 4 bytes) alone so that the
/// request reaches its decoder.
fn apply(b: &mut Vec<u8>, m: &Mutation) {
    let n = b.len();
    if n <= 4 {
        return;
    }
    let at = |i: usize| 4 + i % (n - 4);
    match m {
        Mutation::Flip(i, x) => b[at(*i)] ^= x,
        Mutation::Set(i, x) => b[at(*i)] = *x,
        Mutation::Truncate(i) => b.truncate(at(*i)),
        Mutation::Insert(i, x) => {
            let p = at(*i);
            b.splice(p..p, x.iter().copied());
        }
        Mutation::Count(i, c) => {
            let p = at(*i);
            for (k, byte) in c.to_be_bytes().into_iter().enumerate() {
                if p + k < n {
                    b[p + k] = byte;
                }
            }
        }
        Mutation::Varint(i) => {
            let p = at(*i);
            b.splice(p..p, [0xff, 0xff, 0xff, 0xff, 0x0f]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 400,
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    /// A valid request of an advertised API and version, mangled, then (sometimes) a valid
    /// ApiVersions on the same connection: responses or a close, never a hang, and the server
    /// keeps serving.
    #[test]
    fn mangled_requests_are_answered_or_closed_and_the_server_lives(
        pick in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
        then_valid in any::<bool>(),
    ) {
        let seeds = seeds();
        prop_assume!(!seeds.is_empty());
        let (api, version, body) = &seeds[pick.index(seeds.len())];
        let mut payload = request_frame(*api, *version, 9, body);
        for m in &mutations {
            apply(&mut payload, m);
        }
        let mut bytes = framed(&payload);
        if then_valid {
            let mut b = BytesMut::new();
            ApiVersionsRequest::default().encode(&mut b, 3).unwrap();
            bytes.extend(framed(&request_frame(ApiKey::ApiVersions, 3, 10, &b)));
        }
        with_server(|s| {
            match send_and_drain(s.addr, &bytes, *api as i16) {
                Err(e) if !held_rightly(*api as i16, &e) => {
                    panic!("{api:?} v{version} mutated by {mutations:?}: {e}\n{}", hex(&payload))
                }
                _ => {}
            }
            s.assert_serving(&|| format!("{api:?} v{version} mutated by {mutations:?}: {}", hex(&payload)));
        });
    }

    /// Arbitrary bytes, framed or not, behind an advertised API key and version or not.
    #[test]
    fn arbitrary_bytes_are_answered_or_closed_and_the_server_lives(
        pick in any::<prop::sample::Index>(),
        prefix_api in any::<bool>(),
        frame_it in any::<bool>(),
        tail in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let seeds = seeds();
        let mut payload = Vec::new();
        if prefix_api && !seeds.is_empty() {
            let (api, version, _) = &seeds[pick.index(seeds.len())];
            payload.extend_from_slice(&(*api as i16).to_be_bytes());
            payload.extend_from_slice(&version.to_be_bytes());
        }
        payload.extend_from_slice(&tail);
        let bytes = if frame_it { framed(&payload) } else { payload.clone() };
        let api = if bytes.len() >= 2 && !frame_it { i16::from_be_bytes([bytes[0], bytes[1]]) }
            else if bytes.len() >= 6 { i16::from_be_bytes([bytes[4], bytes[5]]) } else { -1 };
        with_server(|s| {
            match send_and_drain(s.addr, &bytes, api) {
                Err(e) if !held_rightly(api, &e) => panic!("{}: {e}", hex(&bytes)),
                _ => {}
            }
            s.assert_serving(&|| hex(&bytes));
        });
    }
}

/// Clients that stall inside a request (a size prefix, then a few bytes, then nothing) or that
/// send request after request and never read the answers (the server's writes block once the
/// socket buffers fill) hold only their own connections: another client is answered at once.
#[test]
fn stalled_and_unread_clients_do_not_hold_up_others() {
    let addr = with_server(|s| s.addr);
    let mut held = Vec::new();
    for _ in 0..40 {
        let mut s = connect(addr).unwrap();
        s.write_all(&1000i32.to_be_bytes()).unwrap();
        s.write_all(&[0, 18, 0, 3, 0, 0]).unwrap();
        held.push(s);
    }
    let mut req = BytesMut::new();
    ApiVersionsRequest::default().encode(&mut req, 3).unwrap();
    let one = framed(&request_frame(ApiKey::ApiVersions, 3, 5, &req));
    for _ in 0..4 {
        let mut s = connect(addr).unwrap();
        s.set_nonblocking(true).unwrap();
        // About 4 MB of requests whose answers are never read: far beyond socket buffers.
        let mut sent = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while sent < 100_000 && Instant::now() < deadline {
            match s.write(&one) {
                Ok(n) if n == one.len() => sent += 1,
                Ok(_) => break, // a partial frame: the rest would block
                Err(_) => break,
            }
        }
        held.push(s);
    }
    let t = Instant::now();
    with_server(|s| s.assert_serving(&|| "40 stalled and 4 unread clients".to_string()));
    // A client held up by the stalled ones would wait for their socket timeouts (60 s); the bound
    // leaves room for a loaded machine (this binary's proptests share the server process).
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "another client waited {:?} for ApiVersions",
        t.elapsed()
    );
    drop(held);
    with_server(|s| s.assert_serving(&|| "the stalled clients went away".to_string()));
}
