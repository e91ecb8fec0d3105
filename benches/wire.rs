//! The Kafka wire front against the in-process path on the same store, in one run, so the
//! figures read as ratios: what a remote client pays for the socket, the protocol codecs and
//! the thread hop, over an application linking Riverbed.
//!
//! `cargo bench --features server --bench wire`
//!
//! - `wire_produce`: 100 records of 100 B per batch, acknowledged (acks=all), one request in
//!   flight (a client pipelining several, as librdkafka does, goes faster), against
//!   `Producer::send_all` of the same 100 records. Both sides build their batch every
//!   iteration, since a client builds its own.
//! - `wire_fetch`: reading 100 000 records from offset 0 with 1 MiB fetches, against an
//!   assigned in-process `Consumer` polling the same log.
//!
//! The client is kafka-protocol's request encoder over a plain `TcpStream` (loopback), so the
//! figures are the front's own cost, not a client library's.
#![allow(missing_docs)]
#![allow(clippy::big_endian_bytes)] // Kafka's wire format

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use riverbed::server::{Server, ServerConfig};
use riverbed::{
    BatchBuilder, Compression, ConsumerConfig, ProducerRecord, Store, TopicConfig, TopicPartition,
};

const BATCH: usize = 100;
const PRODUCE_V: i16 = 9;
const FETCH_V: i16 = 12;

struct Client {
    stream: TcpStream,
    correlation: i32,
    buf: BytesMut,
}

impl Client {
    fn connect(addr: std::net::SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            correlation: 0,
            buf: BytesMut::new(),
        }
    }

    fn call<Req: Encodable, Resp: Decodable>(&mut self, api: ApiKey, v: i16, req: &Req) -> Resp {
        self.correlation += 1;
        self.buf.clear();
        self.buf.extend_from_slice(&[0; 4]);
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(v)
            .with_correlation_id(self.correlation)
            .encode(&mut self.buf, api.request_header_version(v))
            .unwrap();
        req.encode(&mut self.buf, v).unwrap();
        let n = (self.buf.len() - 4) as i32;
        self.buf[..4].copy_from_slice(&n.to_be_bytes());
        self.stream.write_all(&self.buf).unwrap();
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).unwrap();
        let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut frame).unwrap();
        let mut frame = Bytes::from(frame);
        ResponseHeader::decode(&mut frame, api.response_header_version(v)).unwrap();
        Resp::decode(&mut frame, v).unwrap()
    }
}

fn value(i: u64) -> [u8; 100] {
    let mut v = [b'x'; 100];
    v[..8].copy_from_slice(&i.to_le_bytes());
    v
}

fn batch_bytes(start: u64) -> Bytes {
    let mut b = BatchBuilder::new(Compression::None);
    for i in 0..BATCH as u64 {
        b.append(1_700_000_000_000, None, Some(&value(start + i)), &[]);
    }
    Bytes::copy_from_slice(b.build().unwrap().as_bytes())
}

fn produce(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("wire", TopicConfig::new(1)).unwrap();
    store.create_topic("local", TopicConfig::new(1)).unwrap();
    let server = Server::start(&store, ServerConfig::new("127.0.0.1:0")).unwrap();
    let mut client = Client::connect(server.local_addr());
    let producer = store.producer();
    let mut g = c.benchmark_group("wire_produce_100B_x100");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.measurement_time(Duration::from_secs(8));
    let mut n = 0u64;
    g.bench_function("in_process_send_all", |b| {
        b.iter(|| {
            let values: Vec<[u8; 100]> = (0..BATCH as u64).map(|i| value(n + i)).collect();
            producer
                .send_all(
                    values
                        .iter()
                        .map(|v| ProducerRecord::borrowed("local").partition(0).value(v)),
                )
                .unwrap();
            n += BATCH as u64;
        })
    });
    let mut n = 0u64;
    g.bench_function("wire_acks_all", |b| {
        b.iter(|| {
            let req = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str("wire")))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch_bytes(n)))])]);
            let r: ProduceResponse = client.call(ApiKey::Produce, PRODUCE_V, &req);
            assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
            n += BATCH as u64;
        })
    });
    g.finish();
    drop(client);
    server.shutdown().unwrap();
}

/// Records in a Kafka v2 batch sequence (the count at bytes 57..61 of each batch).
fn count_records(mut b: &[u8]) -> (u64, i64) {
    let (mut n, mut next) = (0, -1);
    while b.len() >= 61 {
        let len = i32::from_be_bytes(b[8..12].try_into().unwrap()) as usize + 12;
        if len > b.len() {
            break;
        }
        let base = i64::from_be_bytes(b[..8].try_into().unwrap());
        let delta = i32::from_be_bytes(b[23..27].try_into().unwrap());
        n += u64::from(u32::from_be_bytes(b[57..61].try_into().unwrap()));
        next = base + i64::from(delta) + 1;
        b = &b[len..];
    }
    (n, next)
}

fn fetch(c: &mut Criterion) {
    const RECORDS: u64 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("scan", TopicConfig::new(1)).unwrap();
    let producer = store.producer();
    for start in (0..RECORDS).step_by(BATCH) {
        let values: Vec<[u8; 100]> = (start..start + BATCH as u64).map(value).collect();
        producer
            .send_all(
                values
                    .iter()
                    .map(|v| ProducerRecord::borrowed("scan").partition(0).value(v)),
            )
            .unwrap();
    }
    let server = Server::start(&store, ServerConfig::new("127.0.0.1:0")).unwrap();
    let mut client = Client::connect(server.local_addr());
    let mut g = c.benchmark_group("wire_fetch_100B");
    g.throughput(Throughput::Elements(RECORDS));
    g.sample_size(20);
    let tp = TopicPartition::new("scan", 0);
    let mut consumer = store.consumer(ConsumerConfig::default()).unwrap();
    consumer.assign(std::slice::from_ref(&tp)).unwrap();
    g.bench_function("in_process_poll", |b| {
        b.iter(|| {
            consumer.seek(&tp, 0).unwrap();
            let mut seen = 0u64;
            while seen < RECORDS {
                seen += consumer
                    .poll(Duration::from_secs(1))
                    .unwrap()
                    .iter()
                    .count() as u64;
            }
        })
    });
    g.bench_function("wire_fetch_1MiB", |b| {
        b.iter(|| {
            let (mut seen, mut offset) = (0u64, 0i64);
            while seen < RECORDS {
                let req = FetchRequest::default()
                    .with_replica_id(kafka_protocol::messages::BrokerId(-1))
                    .with_max_wait_ms(500)
                    .with_min_bytes(1)
                    .with_max_bytes(50 << 20)
                    .with_session_epoch(-1)
                    .with_topics(vec![FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_static_str("scan")))
                        .with_partitions(vec![FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(1 << 20)])]);
                let r: FetchResponse = client.call(ApiKey::Fetch, FETCH_V, &req);
                let p = &r.responses[0].partitions[0];
                assert_eq!(p.error_code, 0);
                let (n, next) = count_records(p.records.as_deref().unwrap_or_default());
                seen += n;
                offset = next;
            }
        })
    });
    g.finish();
    drop(client);
    server.shutdown().unwrap();
}

criterion_group!(benches, produce, fetch);
criterion_main!(benches);
