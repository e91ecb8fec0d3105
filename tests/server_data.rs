//! The wire front's data APIs — Metadata, Produce, Fetch, ListOffsets, DeleteRecords — through a Kafka client
//! encoder and decoder that are not ours (kafka-protocol's client side): batches are built by
//! its `RecordBatchEncoder` and what Fetch serves is decoded by its `RecordBatchDecoder`, which
//! checks each batch's CRC-32C. Needs `--features server`.
#![cfg(feature = "server")]
// Kafka's batch header and Kafka's protocol are big-endian.
#![allow(clippy::big_endian_bytes)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::wire::{s, WireClient};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::records::{
    Compression as KCompression, Record, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType as KTimestampType,
};
use riverbed::server::{Server, ServerConfig};
use riverbed::{CleanerConfig, ProducerRecord, Store, StoreConfig, TimestampType, TopicConfig};

const T0: i64 = 1_700_000_000_000;

// Kafka's error codes (org.apache.kafka.common.protocol.Errors).
const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
const INVALID_RECORD: i16 = 87;

fn start_with(config: StoreConfig) -> (tempfile::TempDir, Store, Server) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), config).unwrap();
    let server = Server::start(&store, ServerConfig::new("127.0.0.1:0")).unwrap();
    (dir, store, server)
}

fn start() -> (tempfile::TempDir, Store, Server) {
    start_with(StoreConfig::default())
}

/// A topic that keeps everything: the tests write timestamps from 2023 (and 1970), which
/// the default 7-day retention would delete as soon as a newer record rolls the segment.
fn topic(partitions: u32) -> TopicConfig {
    TopicConfig::new(partitions).retention_ms(None)
}

fn tn(name: &str) -> TopicName {
    TopicName(s(name))
}

/// One Kafka v2 batch of `values` (keys `k<i>`, one header each) encoded by kafka-protocol, as
/// a client sends it: base offset 0, no leader epoch, the producer fields when given.
fn kbatch(values: &[&[u8]], ts0: i64, producer: Option<(i64, i16, i32)>, txn: bool) -> Bytes {
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut r = Record {
                transactional: txn,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: pid,
                producer_epoch: epoch,
                timestamp_type: KTimestampType::Creation,
                offset: i as i64,
                // Without a producer the encoder wants base sequence -1, i.e. offset - 1.
                sequence: seq + i as i32,
                timestamp: ts0 + i as i64,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::copy_from_slice(v)),
                headers: Default::default(),
            };
            r.headers.insert(s("h"), Some(Bytes::from_static(b"hv")));
            r
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: KCompression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

fn produce_req(acks: i16, parts: &[(&str, i32, Bytes)]) -> ProduceRequest {
    let mut topics: Vec<TopicProduceData> = Vec::new();
    for (t, p, b) in parts {
        let data = PartitionProduceData::default()
            .with_index(*p)
            .with_records(Some(b.clone()));
        match topics.iter_mut().find(|x| x.name.0.as_str() == *t) {
            Some(x) => x.partition_data.push(data),
            None => topics.push(
                TopicProduceData::default()
                    .with_name(tn(t))
                    .with_partition_data(vec![data]),
            ),
        }
    }
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(topics)
}

/// Produces `batch` to `topic`/`partition` at Produce `version` and returns its answer.
fn produce(
    c: &mut WireClient,
    version: i16,
    topic: &str,
    partition: i32,
    batch: Bytes,
) -> PartitionProduceResponse {
    let r: ProduceResponse = c.call(
        ApiKey::Produce,
        version,
        &produce_req(-1, &[(topic, partition, batch)]),
    );
    r.responses[0].partition_responses[0].clone()
}

struct Fetch {
    isolation: i8,
    max_wait_ms: i32,
    min_bytes: i32,
    max_bytes: i32,
}

impl Default for Fetch {
    fn default() -> Fetch {
        Fetch {
            isolation: 0,
            max_wait_ms: 0,
            min_bytes: 1,
            max_bytes: 50 << 20,
        }
    }
}

fn fetch_req(f: &Fetch, parts: &[(&str, i32, i64, i32)]) -> FetchRequest {
    let topics = parts
        .iter()
        .map(|(t, p, offset, max)| {
            FetchTopic::default()
                .with_topic(tn(t))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(*p)
                    .with_fetch_offset(*offset)
                    .with_partition_max_bytes(*max)])
        })
        .collect();
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(f.max_wait_ms)
        .with_min_bytes(f.min_bytes)
        .with_max_bytes(f.max_bytes)
        .with_isolation_level(f.isolation)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}

/// Fetches one partition at Fetch v12 and returns its data.
fn fetch1(
    c: &mut WireClient,
    f: &Fetch,
    topic: &str,
    partition: i32,
    offset: i64,
) -> PartitionData {
    let r: FetchResponse = c.call(
        ApiKey::Fetch,
        12,
        &fetch_req(f, &[(topic, partition, offset, 1 << 20)]),
    );
    assert_eq!(r.error_code, 0);
    assert_eq!(r.session_id, 0, "sessionless");
    r.responses[0].partitions[0].clone()
}

/// (base offset, last offset, bytes) of each batch in a records field, read from the raw
/// bytes (Kafka's layout: base offset at 0, length at 8, last offset delta at 23).
fn spans(records: &[u8]) -> Vec<(i64, i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 12 <= records.len() {
        let base = i64::from_be_bytes(records[at..at + 8].try_into().unwrap());
        let len = i32::from_be_bytes(records[at + 8..at + 12].try_into().unwrap()) as usize;
        let end = at + 12 + len;
        let delta = i32::from_be_bytes(records[at + 23..at + 27].try_into().unwrap());
        out.push((base, base + i64::from(delta), records[at..end].to_vec()));
        at = end;
    }
    assert_eq!(at, records.len(), "records end on a batch boundary");
    out
}

/// Every record of a records field, decoded by kafka-protocol (CRC-32C checked).
fn decode(records: &Bytes) -> Vec<Record> {
    let mut b = records.clone();
    RecordBatchDecoder::decode_all(&mut b)
        .expect("batches that kafka-protocol decodes, CRC-32C included")
        .into_iter()
        .flat_map(|set| set.records)
        .collect()
}

/// `batch` with its base offset and leader epoch as the log stores them.
fn as_stored(batch: &[u8], base_offset: i64) -> Vec<u8> {
    let mut v = batch.to_vec();
    v[0..8].copy_from_slice(&base_offset.to_be_bytes());
    v[12..16].copy_from_slice(&0i32.to_be_bytes());
    v
}

#[test]
fn produce_then_fetch_serves_the_clients_bytes_back_verbatim() {
    let (_d, store, server) = start();
    store.create_topic("t", topic(1)).unwrap();
    let mut c = WireClient::connect(server.local_addr());
    let b1 = kbatch(&[b"one", b"two", b"three"], T0, None, false);
    let b2 = kbatch(&[b"four"], T0 + 10, None, false);
    // librdkafka 2.0 sends v7, kafka-python v9, librdkafka 2.12+ v10 (research §2.1).
    let r1 = produce(&mut c, 7, "t", 0, b1.clone());
    assert_eq!((r1.error_code, r1.base_offset), (0, 0));
    assert_eq!(r1.log_append_time_ms, -1, "create-time topic");
    assert_eq!(r1.log_start_offset, 0);
    let r2 = produce(&mut c, 10, "t", 0, b2.clone());
    assert_eq!((r2.error_code, r2.base_offset), (0, 3));

    let data = fetch1(&mut c, &Fetch::default(), "t", 0, 0);
    assert_eq!(data.error_code, 0);
    assert_eq!(data.high_watermark, 4);
    assert_eq!(data.last_stable_offset, 4);
    assert_eq!(data.log_start_offset, 0);
    assert_eq!(
        data.aborted_transactions, None,
        "read_uncommitted: null, as Kafka"
    );
    let records = data.records.unwrap();
    // Byte for byte what the client sent, but for the two fields outside the CRC the broker
    // owns: the base offset and the leader epoch.
    let got = spans(&records);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].2, as_stored(&b1, 0));
    assert_eq!(got[1].2, as_stored(&b2, 3));
    let recs = decode(&records);
    let values: Vec<_> = recs.iter().map(|r| r.value.clone().unwrap()).collect();
    assert_eq!(values, [&b"one"[..], b"two", b"three", b"four"]);
    assert_eq!(
        recs.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert_eq!(recs[3].timestamp, T0 + 10);
    assert_eq!(
        recs[0].headers.get(&s("h")),
        Some(&Some(Bytes::from_static(b"hv")))
    );

    // A fetch from inside the second batch returns that batch (clients skip the offsets
    // below theirs); at the end, an empty (not null) records field.
    let data = fetch1(&mut c, &Fetch::default(), "t", 0, 3);
    assert_eq!(spans(data.records.as_ref().unwrap()).len(), 1);
    let data = fetch1(&mut c, &Fetch::default(), "t", 0, 4);
    assert_eq!(data.records, Some(Bytes::new()));

    // The in-process side reads what the remote producer wrote.
    let mut consumer = store.consumer(riverbed::ConsumerConfig::new("g")).unwrap();
    consumer
        .assign(&[riverbed::TopicPartition::new("t", 0)])
        .unwrap();
    consumer
        .seek(&riverbed::TopicPartition::new("t", 0), 0)
        .unwrap();
    let polled = consumer.poll(Duration::from_secs(2)).unwrap();
    assert_eq!(polled.count(), 4);
    assert_eq!(polled.iter().nth(2).unwrap().value(), Some(&b"three"[..]));
}

#[test]
fn one_request_appends_to_several_topics_and_partitions_and_a_failed_one_does_not_stop_the_rest() {
    let (_d, store, server) = start();
    store.create_topic("a", topic(2)).unwrap();
    store.create_topic("b", topic(1)).unwrap();
    let mut c = WireClient::connect(server.local_addr());
    let two = {
        let mut v = kbatch(&[b"x"], T0, None, false).to_vec();
        v.extend_from_slice(&kbatch(&[b"y"], T0, None, false));
        Bytes::from(v)
    };
    let req = produce_req(
        -1,
        &[
            ("a", 0, kbatch(&[b"a0", b"a0'"], T0, None, false)),
            ("a", 1, kbatch(&[b"a1"], T0, None, false)),
            ("missing", 0, kbatch(&[b"m"], T0, None, false)),
            ("b", 0, kbatch(&[b"b0"], T0, None, false)),
            ("a", 7, kbatch(&[b"no such partition"], T0, None, false)),
            // Kafka (ProduceRequest.validateRecords): v3+ carries exactly one batch per
            // partition; a second one fails the partition with INVALID_RECORD.
            ("b", 0, two),
        ],
    );
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &req);
    let codes: BTreeMap<(String, i32, usize), (i16, i64)> = r
        .responses
        .iter()
        .flat_map(|t| {
            t.partition_responses.iter().enumerate().map(move |(i, p)| {
                (
                    (t.name.0.to_string(), p.index, i),
                    (p.error_code, p.base_offset),
                )
            })
        })
        .collect();
    assert_eq!(codes[&("a".into(), 0, 0)], (0, 0));
    assert_eq!(codes[&("a".into(), 1, 1)], (0, 0));
    assert_eq!(codes[&("a".into(), 7, 2)].0, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(
        codes[&("missing".into(), 0, 0)].0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(codes[&("b".into(), 0, 0)], (0, 0));
    assert_eq!(codes[&("b".into(), 0, 1)].0, INVALID_RECORD);
    let b = r
        .responses
        .iter()
        .find(|t| t.name.0.as_str() == "b")
        .unwrap();
    assert!(b.partition_responses[1]
        .error_message
        .as_ref()
        .unwrap()
        .contains("exactly one record batch"));
    assert!(
        store.list_topics().iter().all(|t| t != "missing"),
        "auto-create is off"
    );
    // Nothing of the refused request was appended.
    let data = fetch1(&mut c, &Fetch::default(), "b", 0, 0);
    assert_eq!(data.high_watermark, 1);
    let data = fetch1(&mut c, &Fetch::default(), "a", 0, 0);
    assert_eq!(data.high_watermark, 2);
}

#[test]
fn a_damaged_batch_is_refused_with_corrupt_message_and_nothing_is_appended() {
    let (_d, store, server) = start();
    store.create_topic("t", topic(1)).unwrap();
    let mut c = WireClient::connect(server.local_addr());
    let mut bad = kbatch(&[b"payload"], T0, None, false).to_vec();
    let last = bad.len() - 3;
    bad[last] ^= 0x40; // inside the records: the CRC-32C no longer matches
    let r = produce(&mut c, 9, "t", 0, Bytes::from(bad));
    assert_eq!(r.error_code, CORRUPT_MESSAGE);
    // A truncated batch and no batch at all.
    let whole = kbatch(&[b"payload"], T0, None, false);
    let r = produce(&mut c, 9, "t", 0, whole.slice(..whole.len() - 1));
    assert_eq!(r.error_code, CORRUPT_MESSAGE);
    let r = produce(&mut c, 9, "t", 0, whole.slice(..5));
    assert_eq!(r.error_code, CORRUPT_MESSAGE);
    let r = produce(&mut c, 9, "t", 0, Bytes::new());
    assert_eq!(r.error_code, INVALID_RECORD);
    // Magic 1 (a message set) is not taken by Produce v3+.
    let mut magic1 = whole.to_vec();
    magic1[16] = 1;
    let r = produce(&mut c, 9, "t", 0, Bytes::from(magic1));
    assert_eq!(r.error_code, INVALID_RECORD);
    assert_eq!(
        fetch1(&mut c, &Fetch::default(), "t", 0, 0).high_watermark,
        0
    );
    // The connection is still fine.
    assert_eq!(produce(&mut c, 9, "t", 0, whole).error_code, 0);
    // The server's metrics count the refused requests as errors.
    let m = store.metrics();
    let api = m.servers[0]
        .apis
        .iter()
        .find(|a| a.api == "Produce")
        .unwrap();
    assert_eq!((api.requests, api.errors), (6, 5));
}

#[test]
fn an_idempotent_retry_gets_the_original_offset_a_gap_gets_45_an_old_epoch_47() {
    let (_d, store, server) = start();
    store.create_topic("t", topic(1)).unwrap();
    let mut c = WireClient::connect(server.local_addr());
    let pid = 4242;
    let first = kbatch(&[b"a", b"b", b"c"], T0, Some((pid, 0, 0)), false);
    assert_eq!(produce(&mut c, 9, "t", 0, first.clone()).base_offset, 0);
    // Someone else writes in between.
    assert_eq!(
        produce(&mut c, 9, "t", 0, kbatch(&[b"other"], T0, None, false)).base_offset,
        3
    );
    // The retry (a lost acknowledgement): success with the original base offset, nothing new.
    let retry = produce(&mut c, 9, "t", 0, first);
    assert_eq!((retry.error_code, retry.base_offset), (0, 0));
    assert_eq!(
        fetch1(&mut c, &Fetch::default(), "t", 0, 0).high_watermark,
        4
    );
    // The next sequence continues; a gap is OUT_OF_ORDER_SEQUENCE_NUMBER.
    let next = produce(
        &mut c,
        9,
        "t",
        0,
        kbatch(&[b"d"], T0, Some((pid, 0, 3)), false),
    );
    assert_eq!((next.error_code, next.base_offset), (0, 4));
    let gap = produce(
        &mut c,
        9,
        "t",
        0,
        kbatch(&[b"e"], T0, Some((pid, 0, 9)), false),
    );
    assert_eq!(gap.error_code, OUT_OF_ORDER_SEQUENCE_NUMBER);
    // A bumped epoch starts again at 0; the old epoch is then fenced.
    let bumped = produce(
        &mut c,
        9,
        "t",
        0,
        kbatch(&[b"f"], T0, Some((pid, 1, 0)), false),
    );
    assert_eq!(bumped.error_code, 0);
    let old = produce(
        &mut c,
        9,
        "t",
        0,
        kbatch(&[b"g"], T0, Some((pid, 0, 4)), false),
    );
    assert_eq!(old.error_code, INVALID_PRODUCER_EPOCH);
    assert_eq!(
        fetch1(&mut c, &Fetch::default(), "t", 0, 0).high_watermark,
        6
    );
}

#[test]
fn acks_0_gets_no_response_and_the_records_are_appended() {
    let (_d, store, server) = start();
    store.create_topic("t", topic(1)).unwrap();
    let mut c = WireClient::connect(server.local_addr());
    c.send(
        ApiKey::Produce,
        9,
        &produce_req(
            0,
            &[("t", 0, kbatch(&[b"fire", b"forget"], T0, None, false))],
        ),
    );
    // The next call's response is the next frame: the produce had none (WireClient checks the
    // correlation id).
    let data = fetch1(&mut c, &Fetch::default(), "t", 0, 0);
    assert_eq!(data.high_watermark, 2);
}

#[test]
fn zstd_needs_produce_v7_and_codecs_the_log_cannot_read_are_refused() {
    let (_d, store, server) = start();
    store.create_topic("t", topic(1)).unwrap();
    let mut c = WireClient::connect(server.local_addr());
    // The attributes of an uncompressed batch set to another codec: the CRC is recomputed,
    // so only the codec is wrong. (kafka-protocol here has no compressors.)
    let recodec = |codec: u8| {
        let mut v = kbatch(&[b"v"], T0, None, false).to_vec();
        v[22] = (v[22] & !7) | codec;
        let crc = crc32c(&v[21..]);
        v[17..21].copy_from_slice(&crc.to_be_bytes());
        Bytes::from(v)
    };
    let r = produce(&mut c, 6, "t", 0, recodec(4));
    assert_eq!(r.error_code, UNSUPPORTED_COMPRESSION_TYPE, "zstd at v6");
    for codec in [1u8, 2, 3] {
        let r = produce(&mut c, 9, "t", 0, recodec(codec));
        // gzip/snappy/lz4: taken once the record layer can decode them, refused until then;
        // either way never stored undecodable. A section that is not what its codec says is
        // INVALID_RECORD since Produce decodes every record first (`check_records`): Kafka's
        // non-retriable answer, where CORRUPT_MESSAGE would make a Java producer retry a batch
        // that can never succeed.
        if r.error_code == 0 {
            continue;
        }
        assert!(
            [
                UNSUPPORTED_COMPRESSION_TYPE,
                CORRUPT_MESSAGE,
                INVALID_RECORD
            ]
            .contains(&r.error_code),
            "codec {codec}: {}",
            r.error_code
        );
    }
}

/// A batch whose CRC-32C is right but whose records do not decode (the first record's length
/// varint edited, then the CRC recomputed, as a buggy client would send it) is refused with
/// INVALID_RECORD and not stored: Kafka's `LogValidator` decodes every record of a produced
/// batch, and `DefaultRecord.readFrom` raises InvalidRecordException ("Invalid record size:
/// expected to read … bytes in record payload") for this one.
#[test]
fn a_batch_with_a_right_crc_but_records_that_do_not_decode_is_refused_with_invalid_record() {
    let (_d, store, server) = start();
    store.create_topic("t", topic(1)).unwrap();
    let mut c = WireClient::connect(server.local_addr());
    let mut v = kbatch(&[b"one", b"two"], T0, None, false).to_vec();
    // Byte 61 is the first record's length (a zigzag varint): claim 2 bytes more.
    v[61] = v[61].wrapping_add(4);
    let crc = crc32c(&v[21..]);
    v[17..21].copy_from_slice(&crc.to_be_bytes());
    let r = produce(&mut c, 9, "t", 0, Bytes::from(v));
    assert_eq!(r.error_code, INVALID_RECORD, "{:?}", r.error_message);
    assert!(r.error_message.is_some_and(|m| m.contains("do not decode")));
    assert_eq!(
        fetch1(&mut c, &Fetch::default(), "t", 0, 0).high_watermark,
        0,
        "nothing stored"
    );
}

/// CRC-32C (Castagnoli), for tests that edit a batch's attributes.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn a_long_poll_is_woken_by_an_in_process_send_and_otherwise_returns_at_max_wait() {
    let (_d, store, server) = start();
    store.create_topic("t", topic(1)).unwrap();
    let mut c = WireClient::connect(server.local_addr());
    // Nothing comes: the answer comes at max_wait, empty.
    let f = Fetch {
        max_wait_ms: 600,
        ..Fetch::default()
    };
    let t = Instant::now();
    let data = fetch1(&mut c, &f, "t", 0, 0);
    let waited = t.elapsed();
    assert_eq!(data.records, Some(Bytes::new()));
    assert!(waited >= Duration::from_millis(550), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");

    // An in-process producer sends while the fetch waits (max_wait 8 s): the fetch returns
    // with the record long before.
    let producer = store.producer();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        producer
            .send(ProducerRecord::new("t").key("k").value("woken"))
            .unwrap();
    });
    let f = Fetch {
        max_wait_ms: 8000,
        ..Fetch::default()
    };
    let t = Instant::now();
    let data = fetch1(&mut c, &f, "t", 0, 0);
    let waited = t.elapsed();
    sender.join().unwrap();
    let recs = decode(data.records.as_ref().unwrap());
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].value.as_deref(), Some(&b"woken"[..]));
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(
        waited < Duration::from_secs(4),
        "woken by the append: {waited:?}"
    );
}

#[test]
fn min_bytes_makes_a_fetch_wait_for_more_than_is_there() {
    let (_d, store, server) = start();
    store.create_topic("t", topic(1)).unwrap();
    let mut c = WireClient::connect(server.local_addr());
    produce(&mut c, 9, "t", 0, kbatch(&[b"small"], T0, None, false));
    // min_bytes 1: at once.
    let t = Instant::now();
    let data = fetch1(
        &mut c,
        &Fetch {
            max_wait_ms: 5000,
            ..Fetch::default()
        },
        "t",
        0,
        0,
    );
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(decode(data.records.as_ref().unwrap()).len(), 1);
    // min_bytes 10 000: waits out max_wait and then returns what there is.
    let f = Fetch {
        max_wait_ms: 700,
        min_bytes: 10_000,
        ..Fetch::default()
    };
    let t = Instant::now();
    let data = fetch1(&mut c, &f, "t", 0, 0);
    assert!(
        t.elapsed() >= Duration::from_millis(650),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(decode(data.records.as_ref().unwrap()).len(), 1);
    // ...or until enough has arrived.
    let big = vec![7u8; 12_000];
    let producer = store.producer();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        producer.send(ProducerRecord::new("t").value(big)).unwrap();
    });
    let f = Fetch {
        max_wait_ms: 8000,
        min_bytes: 10_000,
        ..Fetch::default()
    };
    let t = Instant::now();
    let data = fetch1(&mut c, &f, "t", 0, 0);
    sender.join().unwrap();
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert_eq!(decode(data.records.as_ref().unwrap()).len(), 2, "{data:?}");
}

#[test]
fn the_first_batch_is_served_whole_past_the_limits_and_later_ones_wait_for_room() {
    // KIP-74, Kafka's ReplicaManager.readFromLog: the first batch of the first partition with
    // data is returned even if larger than partition_max_bytes and max_bytes; after it, only
    // what fits.
    let (_d, store, server) = start();
    store.create_topic("t", topic(2)).unwrap();
    let mut c = WireClient::connect(server.local_addr());
    let b0 = kbatch(&[&[1u8; 300]], T0, None, false);
    produce(&mut c, 9, "t", 0, b0.clone());
    produce(&mut c, 9, "t", 0, kbatch(&[b"second"], T0, None, false));
    produce(&mut c, 9, "t", 1, kbatch(&[b"other"], T0, None, false));
    let r: FetchResponse = c.call(
        ApiKey::Fetch,
        11,
        &fetch_req(
            &Fetch {
                max_bytes: 100,
                ..Fetch::default()
            },
            &[("t", 0, 0, 50), ("t", 1, 0, 50)],
        ),
    );
    let p0 = &r.responses[0].partitions[0];
    let p1 = &r.responses[1].partitions[0];
    assert_eq!(
        spans(p0.records.as_ref().unwrap()).len(),
        1,
        "only the oversized first batch"
    );
    assert_eq!(p0.records.as_ref().unwrap().len(), b0.len());
    assert_eq!(
        p1.records,
        Some(Bytes::new()),
        "no room left for partition 1"
    );
    assert_eq!(p1.high_watermark, 1);
    // With room, both partitions and both batches come.
    let r: FetchResponse = c.call(
        ApiKey::Fetch,
        11,
        &fetch_req(
            &Fetch::default(),
            &[("t", 0, 0, 1 << 20), ("t", 1, 0, 1 << 20)],
        ),
    );
    assert_eq!(
        spans(r.responses[0].partitions[0].records.as_ref().unwrap()).len(),
        2
    );
    assert_eq!(
        spans(r.responses[1].partitions[0].records.as_ref().unwrap()).len(),
        1
    );
}

#[test]
fn fetch_errors_offsets_out_of_range_unknown_partitions_and_sessions() {
    let (_d, store, server) = start();
    store.create_topic("t", topic(1)).unwrap();
    let mut c = WireClient::connect(server.local_addr());
    produce(&mut c, 9, "t", 0, kbatch(&[b"a", b"b"], T0, None, false));
    let f = Fetch {
        max_wait_ms: 5000,
        ..Fetch::default()
    };
    let t = Instant::now();
    let data = fetch1(&mut c, &f, "t", 0, 3);
    assert_eq!(data.error_code, OFFSET_OUT_OF_RANGE);
    assert_eq!((data.log_start_offset, data.high_watermark), (0, 2));
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "errors are answered without waiting"
    );
    assert_eq!(
        fetch1(&mut c, &f, "t", 0, -1).error_code,
        OFFSET_OUT_OF_RANGE
    );
    let data = fetch1(&mut c, &f, "t", 5, 0);
    assert_eq!(data.error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(
        data.records,
        Some(Bytes::new()),
        "never null: librdkafka rejects -1"
    );
    assert_eq!(
        fetch1(&mut c, &f, "nope", 0, 0).error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    // An incremental fetch names a session this broker never created (KIP-227).
    let req = fetch_req(&Fetch::default(), &[("t", 0, 0, 1 << 20)])
        .with_session_id(77)
        .with_session_epoch(3);
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &req);
    assert_eq!(r.error_code, FETCH_SESSION_ID_NOT_FOUND);
    // The initial request of a session (epoch 0) is served without one: session id 0.
    let req = fetch_req(&Fetch::default(), &[("t", 0, 0, 1 << 20)]).with_session_epoch(0);
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &req);
    assert_eq!((r.error_code, r.session_id), (0, 0));
    assert_eq!(
        decode(r.responses[0].partitions[0].records.as_ref().unwrap()).len(),
        2
    );
}

#[test]
fn read_committed_serves_below_the_lso_and_lists_aborted_transactions() {
    let (_d, store, server) = start();
    store.create_topic("t", topic(1)).unwrap();
    let tx = store.transactional_producer("tx-1").unwrap();
    let (pid, _) = tx.producer_id_and_epoch();
    tx.begin().unwrap();
    tx.send(ProducerRecord::new("t").value("aborted-0"))
        .unwrap(); // 0
    tx.send(ProducerRecord::new("t").value("aborted-1"))
        .unwrap(); // 1
    tx.abort().unwrap(); // marker at 2
    tx.begin().unwrap();
    tx.send(ProducerRecord::new("t").value("committed"))
        .unwrap(); // 3
    tx.commit().unwrap(); // marker at 4
    store
        .producer()
        .send(ProducerRecord::new("t").value("plain"))
        .unwrap(); // 5
    tx.begin().unwrap();
    tx.send(ProducerRecord::new("t").value("open")).unwrap(); // 6, still open
    let mut c = WireClient::connect(server.local_addr());
    let committed = Fetch {
        isolation: 1,
        ..Fetch::default()
    };
    let data = fetch1(&mut c, &committed, "t", 0, 0);
    assert_eq!(data.error_code, 0);
    assert_eq!(data.high_watermark, 7);
    assert_eq!(
        data.last_stable_offset, 6,
        "the open transaction starts at 6"
    );
    let aborted: Vec<(i64, i64)> = data
        .aborted_transactions
        .as_ref()
        .expect("read_committed: a list")
        .iter()
        .map(|a| (a.producer_id.0, a.first_offset))
        .collect();
    assert_eq!(aborted, [(pid, 0)]);
    // Below the LSO only: the open transaction's batch is not served.
    let batches = spans(data.records.as_ref().unwrap());
    assert!(batches.iter().all(|(base, _, _)| *base < 6), "{batches:?}");
    assert_eq!(batches.last().unwrap().1, 5);
    // What a Kafka client keeps: not control records, not the aborted ones.
    let kept: Vec<Bytes> = decode(data.records.as_ref().unwrap())
        .into_iter()
        .filter(|r| !r.control && (r.producer_id != pid || r.offset >= 2))
        .map(|r| r.value.unwrap())
        .collect();
    assert_eq!(kept, [&b"committed"[..], b"plain"]);
    // At the LSO a read_committed fetch has nothing; read_uncommitted sees the open record.
    let data = fetch1(&mut c, &committed, "t", 0, 6);
    assert_eq!(data.records, Some(Bytes::new()));
    let data = fetch1(&mut c, &Fetch::default(), "t", 0, 6);
    assert_eq!(
        decode(data.records.as_ref().unwrap())[0].value.as_deref(),
        Some(&b"open"[..])
    );
    assert_eq!(data.aborted_transactions, None);
    // The commit moves the LSO and the record becomes readable committed.
    tx.commit().unwrap();
    let data = fetch1(&mut c, &committed, "t", 0, 6);
    assert_eq!(data.last_stable_offset, 8);
    let vals: Vec<_> = decode(data.records.as_ref().unwrap())
        .into_iter()
        .filter(|r| !r.control)
        .map(|r| r.value.unwrap())
        .collect();
    assert_eq!(vals, [&b"open"[..]]);
}

/// Cases from Kafka's UnifiedLogTest (core/src/test/scala/unit/kafka/log/UnifiedLogTest.scala):
/// `testFetchOffsetByTimestampIncludesLeaderEpoch` (empty log: no offset for a timestamp;
/// earliest and latest carry timestamp -1) and
/// `testFetchOffsetByTimestampWithMaxTimestampIncludesTimestamp` (timestamps out of order: -3
/// answers the record holding the largest one), through the wire.
#[test]
fn list_offsets_earliest_latest_by_time_and_max_timestamp() {
    let (_d, store, server) = start();
    store.create_topic("t", topic(1)).unwrap();
    let mut c = WireClient::connect(server.local_addr());
    let empty = |c: &mut WireClient, ts: i64| -> (i64, i64) {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(tn("t"))
                .with_partitions(vec![
                    ListOffsetsPartition::default().with_timestamp(ts)
                ])]);
        let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &req);
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        (p.offset, p.timestamp)
    };
    assert_eq!(
        empty(&mut c, 0),
        (-1, -1),
        "empty log: no offset for a time"
    );
    assert_eq!(empty(&mut c, -2), (0, -1));
    assert_eq!(empty(&mut c, -1), (0, -1));
    assert_eq!(empty(&mut c, -3), (-1, -1));
    // Timestamps 1000, 1001 | 5000 | 3000 (out of order: the max is in the middle).
    produce(&mut c, 9, "t", 0, kbatch(&[b"a", b"b"], 1000, None, false));
    produce(&mut c, 9, "t", 0, kbatch(&[b"c"], 5000, None, false));
    produce(&mut c, 9, "t", 0, kbatch(&[b"d"], 3000, None, false));
    let ask = |c: &mut WireClient, version: i16, isolation: i8, ts: i64| -> (i16, i64, i64) {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(isolation)
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(tn("t"))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(ts)])]);
        let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, version, &req);
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.offset, p.timestamp)
    };
    assert_eq!(ask(&mut c, 1, 0, -2), (0, 0, -1), "earliest");
    assert_eq!(ask(&mut c, 7, 0, -1), (0, 4, -1), "latest");
    assert_eq!(ask(&mut c, 2, 0, 1001), (0, 1, 1001), "by time: exact");
    assert_eq!(
        ask(&mut c, 2, 0, 1500),
        (0, 2, 5000),
        "by time: the next one"
    );
    assert_eq!(ask(&mut c, 2, 0, 9999), (0, -1, -1), "after every record");
    assert_eq!(
        ask(&mut c, 7, 0, -3),
        (0, 2, 5000),
        "max timestamp (KIP-734)"
    );
    // An open transaction: latest for read_committed is the LSO.
    let tx = store.transactional_producer("tx").unwrap();
    tx.begin().unwrap();
    tx.send(ProducerRecord::new("t").value("open")).unwrap(); // 4
    assert_eq!(ask(&mut c, 7, 0, -1).1, 5);
    assert_eq!(ask(&mut c, 7, 1, -1).1, 4);
    tx.abort().unwrap();
    // Missing topic and partition.
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(tn("nope"))
                .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1)]),
            ListOffsetsTopic::default()
                .with_name(tn("t"))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(3)
                    .with_timestamp(-1)]),
        ]);
    let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 5, &req);
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        r.topics[1].partitions[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
}

#[test]
fn list_offsets_by_time_on_a_log_append_time_topic_and_produce_reports_the_append_time() {
    let (_d, store, server) = start();
    store
        .create_topic("lat", topic(1).timestamp_type(TimestampType::LogAppendTime))
        .unwrap();
    let mut c = WireClient::connect(server.local_addr());
    let before = riverbed_now();
    let r = produce(&mut c, 9, "lat", 0, kbatch(&[b"x"], 1000, None, false));
    assert_eq!(r.error_code, 0);
    assert!(r.log_append_time_ms >= before, "{}", r.log_append_time_ms);
    let data = fetch1(&mut c, &Fetch::default(), "lat", 0, 0);
    // The stamped batch still passes the client's CRC check, and says LogAppendTime with the
    // append time as its max timestamp (which clients take as every record's timestamp).
    let records = data.records.unwrap();
    let recs = decode(&records);
    assert_eq!(recs[0].timestamp_type, KTimestampType::LogAppend);
    let max_ts = i64::from_be_bytes(records[35..43].try_into().unwrap());
    assert_eq!(max_ts, r.log_append_time_ms);
}

fn riverbed_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn metadata(
    c: &mut WireClient,
    version: i16,
    topics: Option<&[&str]>,
    allow: bool,
) -> MetadataResponse {
    let req = MetadataRequest::default()
        .with_topics(topics.map(|t| {
            t.iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(tn(n))))
                .collect()
        }))
        // The field exists from v4; below, a request always allows creation.
        .with_allow_auto_topic_creation(allow || version < 4);
    c.call(ApiKey::Metadata, version, &req)
}

#[test]
fn metadata_describes_one_broker_and_every_partition_with_no_leader_epoch() {
    let (_d, store, server) = start();
    store.create_topic("a", topic(3)).unwrap();
    store.create_topic("b", topic(1)).unwrap();
    let mut c = WireClient::connect(server.local_addr());
    // kcat sends v4, kafkajs v6, librdkafka 2.12+ and kafka-python v12 (research §2.1).
    for v in [0i16, 1, 4, 6, 9, 12] {
        let all = if v == 0 { Some(&[][..]) } else { None };
        let r = metadata(&mut c, v, all, false);
        assert_eq!(r.brokers.len(), 1, "v{v}");
        let b = &r.brokers[0];
        assert_eq!(b.node_id, BrokerId(0));
        assert_eq!(b.host.as_str(), "127.0.0.1");
        assert_eq!(b.port, i32::from(server.local_addr().port()));
        if v >= 2 {
            assert_eq!(r.cluster_id.as_deref(), Some("riverbed"));
        }
        if v >= 1 {
            assert_eq!(r.controller_id, BrokerId(0));
        }
        let names: Vec<_> = r
            .topics
            .iter()
            .map(|t| t.name.as_ref().unwrap().0.to_string())
            .collect();
        assert_eq!(names, ["a", "b"], "v{v}: internal logs are not topics");
        let a = &r.topics[0];
        assert_eq!(a.error_code, 0);
        assert!(!a.is_internal);
        assert_eq!(a.partitions.len(), 3);
        for (i, p) in a.partitions.iter().enumerate() {
            assert_eq!(p.partition_index, i as i32);
            assert_eq!(p.leader_id, BrokerId(0));
            if v >= 7 {
                assert_eq!(p.leader_epoch, -1, "clients then skip epoch validation");
            }
            assert_eq!(p.replica_nodes, [BrokerId(0)]);
            assert_eq!(p.isr_nodes, [BrokerId(0)]);
        }
    }
    // v1+: an empty list asks for no topic.
    assert!(metadata(&mut c, 4, Some(&[]), false).topics.is_empty());
    let r = metadata(
        &mut c,
        12,
        Some(&["b", "nope", "bad name!", "__consumer_offsets"]),
        false,
    );
    let codes: Vec<i16> = r.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(
        codes,
        [
            0,
            UNKNOWN_TOPIC_OR_PARTITION,
            INVALID_TOPIC_EXCEPTION,
            UNKNOWN_TOPIC_OR_PARTITION
        ]
    );
}

#[test]
fn metadata_creates_a_topic_only_when_both_the_request_and_the_store_allow_it() {
    let (_d, store, server) = start_with(StoreConfig::default().auto_create_topics(true));
    let mut c = WireClient::connect(server.local_addr());
    let r = metadata(&mut c, 12, Some(&["created"]), true);
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(r.topics[0].partitions.len(), 1);
    assert!(store.list_topics().contains(&"created".to_string()));
    let r = metadata(&mut c, 12, Some(&["not-asked"]), false);
    assert_eq!(r.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    // Below v4 a request always allows it (Kafka's rule).
    let r = metadata(&mut c, 3, Some(&["old-client"]), false);
    assert_eq!(r.topics[0].error_code, 0);
    assert!(store.list_topics().contains(&"old-client".to_string()));
    assert!(!store.list_topics().contains(&"not-asked".to_string()));
    // A produce to a missing topic creates it too (the store allows it).
    let r = produce(&mut c, 9, "by-produce", 0, kbatch(&[b"x"], T0, None, false));
    assert_eq!((r.error_code, r.base_offset), (0, 0));

    // The store says no: nothing is created whatever the request says.
    let (_d2, store2, server2) = start();
    let mut c2 = WireClient::connect(server2.local_addr());
    let r = metadata(&mut c2, 12, Some(&["created"]), true);
    assert_eq!(r.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    let r = metadata(&mut c2, 3, Some(&["created"]), true);
    assert_eq!(r.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert!(store2.list_topics().is_empty());
}

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/format_v2");

/// A copy of the format 2 fixture with each file extended back to its length (see
/// tests/format_v2_fixture.rs).
fn copy_fixture() -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    let lengths = std::fs::read_to_string(Path::new(FIXTURE).join("lengths.txt")).unwrap();
    for line in lengths.lines() {
        let (rel, len) = line.rsplit_once(' ').unwrap();
        let from = Path::new(FIXTURE).join("data").join(rel);
        let target = to.path().join(rel);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&from, &target).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&target)
            .unwrap()
            .set_len(len.parse().unwrap())
            .unwrap();
    }
    to
}

fn hex(b: &Option<Bytes>) -> String {
    match b {
        None => "-".into(),
        Some(b) => std::iter::once("x".to_string())
            .chain(b.iter().map(|x| format!("{x:02x}")))
            .collect(),
    }
}

#[test]
fn a_format_2_store_is_served_as_valid_kafka_batches() {
    let dir = copy_fixture();
    let store = Store::open_with(
        dir.path(),
        StoreConfig::default().cleaner(CleanerConfig::default().enabled(false)),
    )
    .unwrap();
    let server = Server::start(&store, ServerConfig::new("127.0.0.1:0")).unwrap();
    let mut c = WireClient::connect(server.local_addr());
    let expected = std::fs::read_to_string(Path::new(FIXTURE).join("expected.txt")).unwrap();
    // (isolation, topic): what the old build's consumer read, as "offset timestamp key value".
    let want = |isolation: &str, topic: &str| -> Vec<String> {
        expected
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f[0] == isolation && f[1] == topic && f.len() >= 7).then(|| f[3..7].join(" "))
            })
            .collect()
    };
    // zstd-compressed `zipped` is left out: this kafka-protocol build has no zstd decoder.
    for (isolation, topic) in [
        ("uncommitted", "events"),
        ("uncommitted", "table"),
        ("uncommitted", "txn"),
        ("committed", "txn"),
    ] {
        let committed = isolation == "committed";
        let f = Fetch {
            isolation: i8::from(committed),
            max_bytes: 4096,
            ..Fetch::default()
        };
        let mut got = Vec::new();
        let mut offset = fetch1(&mut c, &f, topic, 0, 0).log_start_offset;
        // A Kafka consumer's read_committed filter (Java `CompletedFetch`): aborted
        // transactions become active at their first offset, end at their abort marker, and the
        // producer's transactional batches in between are skipped.
        let mut pending: Vec<(i64, i64)> = Vec::new();
        let mut active: Vec<i64> = Vec::new();
        loop {
            let data = fetch1(&mut c, &f, topic, 0, offset);
            assert_eq!(data.error_code, 0, "{topic} at {offset}");
            let records = data.records.clone().unwrap();
            if records.is_empty() {
                break;
            }
            for a in data.aborted_transactions.iter().flatten() {
                let a = (a.first_offset, a.producer_id.0);
                if !pending.contains(&a) {
                    pending.push(a);
                }
            }
            pending.sort_unstable();
            for (_, last, bytes) in spans(&records) {
                while pending.first().is_some_and(|&(first, _)| first <= last) {
                    active.push(pending.remove(0).1);
                }
                // Kafka's layout, checked by an outside decoder (CRC-32C included).
                let recs = decode(&Bytes::from(bytes));
                let head = &recs[0];
                if head.control {
                    let abort = head.key.as_ref().is_some_and(|k| k.len() >= 4 && k[3] == 0);
                    if abort {
                        active.retain(|&p| p != head.producer_id);
                    }
                    continue;
                }
                if committed && head.transactional && active.contains(&head.producer_id) {
                    continue;
                }
                for r in recs.iter().filter(|r| r.offset >= offset) {
                    got.push(format!(
                        "{} {} {} {}",
                        r.offset,
                        r.timestamp,
                        hex(&r.key),
                        hex(&r.value)
                    ));
                }
            }
            offset = spans(&records).last().unwrap().1 + 1;
        }
        assert_eq!(got, want(isolation, topic), "{isolation} {topic}");
    }
}

#[test]
fn shutdown_ends_a_waiting_long_poll_early() {
    let (_d, store, server) = start();
    store.create_topic("t", topic(1)).unwrap();
    let addr = server.local_addr();
    let poller = std::thread::spawn(move || {
        let mut c = WireClient::connect(addr);
        let f = Fetch {
            max_wait_ms: 20_000,
            ..Fetch::default()
        };
        let t = Instant::now();
        // The answer (empty) comes when the server stops, or the connection closes.
        let _ = c.try_call::<_, FetchResponse>(
            ApiKey::Fetch,
            12,
            &fetch_req(&f, &[("t", 0, 0, 1 << 20)]),
        );
        t.elapsed()
    });
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    server.shutdown().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let waited = poller.join().unwrap();
    assert!(waited < Duration::from_secs(6), "{waited:?}");
}

fn delete_records(
    c: &mut WireClient,
    version: i16,
    topic: &str,
    partition: i32,
    offset: i64,
) -> (i16, i64) {
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(tn(topic))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(partition)
                .with_offset(offset)])]);
    let r: DeleteRecordsResponse = c.call(ApiKey::DeleteRecords, version, &req);
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.low_watermark)
}

fn earliest(c: &mut WireClient, topic: &str, ts: i64) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(tn(topic))
            .with_partitions(vec![
                ListOffsetsPartition::default().with_timestamp(ts)
            ])]);
    let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &req);
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    r.topics[0].partitions[0].offset
}

#[test]
fn delete_records_moves_the_log_start_into_a_segment_and_it_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Small segments: each 3-record batch of ~1 KiB rolls one.
    store
        .create_topic("t", topic(1).segment_bytes(1500).max_message_bytes(1400))
        .unwrap();
    store
        .create_topic(
            "compacted",
            topic(1).cleanup_policy(riverbed::CleanupPolicy::Compact),
        )
        .unwrap();
    let server = Server::start(&store, ServerConfig::new("127.0.0.1:0")).unwrap();
    let mut c = WireClient::connect(server.local_addr());
    let v = [0u8; 300];
    for i in 0..3 {
        let r = produce(
            &mut c,
            9,
            "t",
            0,
            kbatch(&[&v, &v, &v], T0 + 10 * i, None, false),
        );
        assert_eq!(r.base_offset, 3 * i);
    }
    let files = |dir: &Path| -> usize {
        std::fs::read_dir(dir.join("t-0"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "log")
            })
            .count()
    };
    assert_eq!(files(dir.path()), 3);
    // Kafka's DeleteRecords: the start moves to 4, inside the second segment; the first
    // segment (offsets 0..3) is deleted whole.
    assert_eq!(delete_records(&mut c, 2, "t", 0, 4), (0, 4));
    assert_eq!(files(dir.path()), 2);
    let data = fetch1(&mut c, &Fetch::default(), "t", 0, 0);
    assert_eq!(
        (data.error_code, data.log_start_offset),
        (OFFSET_OUT_OF_RANGE, 4)
    );
    let data = fetch1(&mut c, &Fetch::default(), "t", 0, 4);
    assert_eq!(data.log_start_offset, 4);
    assert_eq!(
        spans(data.records.as_ref().unwrap())[0].0,
        3,
        "the batch holding 4"
    );
    assert_eq!(earliest(&mut c, "t", -2), 4);
    // By time: record 3 (the timestamp asked for) is below the start: the first one kept.
    assert_eq!(earliest(&mut c, "t", T0 + 10), 4);
    // Not backwards; not past the high watermark; -1 is the high watermark.
    assert_eq!(delete_records(&mut c, 0, "t", 0, 2), (0, 4));
    assert_eq!(delete_records(&mut c, 1, "t", 0, 10).0, OFFSET_OUT_OF_RANGE);
    assert_eq!(delete_records(&mut c, 1, "t", 0, 5), (0, 5));
    assert_eq!(
        delete_records(&mut c, 2, "nope", 0, 1).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    // Kafka refuses to delete records of a compacted-only topic.
    assert_eq!(delete_records(&mut c, 2, "compacted", 0, 0).0, 44);
    drop(c);
    server.shutdown().unwrap();
    store.close().unwrap();

    // Reopened, the start is where it was moved, inside a segment.
    let store = Store::open(dir.path()).unwrap();
    let server = Server::start(&store, ServerConfig::new("127.0.0.1:0")).unwrap();
    let mut c = WireClient::connect(server.local_addr());
    assert_eq!(earliest(&mut c, "t", -2), 5);
    assert_eq!(
        fetch1(&mut c, &Fetch::default(), "t", 0, 4).error_code,
        OFFSET_OUT_OF_RANGE
    );
    let recs = decode(
        fetch1(&mut c, &Fetch::default(), "t", 0, 5)
            .records
            .as_ref()
            .unwrap(),
    );
    assert_eq!(recs.iter().filter(|r| r.offset >= 5).count(), 4);
    assert_eq!(delete_records(&mut c, 2, "t", 0, -1), (0, 9));
    assert_eq!(
        fetch1(&mut c, &Fetch::default(), "t", 0, 9).records,
        Some(Bytes::new())
    );
    assert_eq!(earliest(&mut c, "t", -1), 9);
}
