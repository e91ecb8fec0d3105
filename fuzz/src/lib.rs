//! The checks behind the fuzz targets, one public function per target. Each takes arbitrary bytes
//! and panics only when riverbed panics or breaks a property stated here.
//!
//! `../tests/fuzz_corpus.rs` includes this file as a module and replays every corpus file through
//! the same functions under plain `cargo test`, so it must compile both as this crate's library
//! and as a module of riverbed's test (hence no crate-level attributes). The checks that need
//! `riverbed::internals` are behind `feature = "internals"`: always on here, riverbed's own
//! feature there.

use std::path::Path;

use riverbed::{
    BatchBuilder, BatchRef, Compression, FlushPolicy, Log, LogConfig, RecordBatch, RecoveryMode,
    TimestampType,
};

/// Batches larger than this are refused by the decoders under test (riverbed's default
/// `max_message_bytes`).
pub const MAX_BATCH: usize = 1 << 20;

// ---- decode_batch ---------------------------------------------------------------------------

/// Kafka v2 batch header fields the checks use (FORMAT.md section 3.1): the layout of segment
/// format 3.
const HEADER_LEN: usize = 61;
const CRC_AT: usize = 17;
const CRC_FROM: usize = 21;
/// The same for the batches of segment formats 1/2 (FORMAT.md section 3.5.1): the smallest
/// header (version 1; version 2 adds 14 bytes), CRC-32 at 13..17 over 17..end, little-endian.
const LEGACY_HEADER_LEN: usize = 43;
const LEGACY_CRC_AT: usize = 13;
const LEGACY_CRC_FROM: usize = 17;

/// Which batch layout a check decodes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    Kafka,
    Legacy,
}

/// `BatchRef::parse` on arbitrary bytes, then every record and header; and the same bytes read
/// as a batch of segment format 1/2. Also runs the same checks on copies whose CRC is recomputed
/// (for either layout), so the fuzzer gets past the CRC to the record decoders.
pub fn decode_batch(data: &[u8]) {
    check_batch(data, Layout::Kafka);
    if let Some(fixed) = with_fixed_crc(data) {
        check_batch(&fixed, Layout::Kafka);
    }
    check_batch(data, Layout::Legacy);
    if let Some(fixed) = with_fixed_legacy_crc(data) {
        check_batch(&fixed, Layout::Legacy);
    }
}

/// CRC-32C (Castagnoli), bit by bit: the checksum of a Kafka v2 batch, computed here without the
/// crate under test.
pub fn crc32c(bytes: &[u8]) -> u32 {
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

/// `data` cut to the batch length its (Kafka v2) header states, with a correct CRC-32C; `None`
/// if the stated length does not fit.
#[allow(clippy::big_endian_bytes)] // Kafka's wire format is big-endian
pub fn with_fixed_crc(data: &[u8]) -> Option<Vec<u8>> {
    let len = i32::from_be_bytes(data.get(8..12)?.try_into().ok()?);
    let total = usize::try_from(len).ok()?.checked_add(12)?;
    if total < HEADER_LEN || total > data.len() {
        return None;
    }
    let mut fixed = data[..total].to_vec();
    let crc = crc32c(&fixed[CRC_FROM..]);
    fixed[CRC_AT..CRC_FROM].copy_from_slice(&crc.to_be_bytes());
    Some(fixed)
}

/// As [`with_fixed_crc`], for a batch of segment format 1/2 (CRC-32, little-endian).
pub fn with_fixed_legacy_crc(data: &[u8]) -> Option<Vec<u8>> {
    let len = u32::from_le_bytes(data.get(8..12)?.try_into().ok()?) as usize;
    let total = len.checked_add(12)?;
    if total < LEGACY_HEADER_LEN || total > data.len() {
        return None;
    }
    let mut fixed = data[..total].to_vec();
    let crc = crc32fast::hash(&fixed[LEGACY_CRC_FROM..]);
    fixed[LEGACY_CRC_AT..LEGACY_CRC_FROM].copy_from_slice(&crc.to_le_bytes());
    Some(fixed)
}

/// One decoded record, owned, for comparing a batch with its re-encoding.
#[derive(Debug, PartialEq, Eq)]
struct Owned {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Decodes every record of `batch`; `None` if any record or header is malformed. Checks the
/// properties every decoded record must have on the way.
fn decode_records(batch: &BatchRef<'_>) -> Option<Vec<Owned>> {
    let records = batch.records().ok()?;
    let mut out = Vec::new();
    let mut items = 0u64;
    let mut prev: Option<u64> = None;
    let mut all_ok = true;
    for r in records.iter() {
        items += 1;
        assert!(
            items <= u64::from(batch.record_count()) + 1,
            "the record iterator yielded more than record_count + 1 items"
        );
        let Ok(r) = r else {
            all_ok = false;
            continue;
        };
        assert!(
            r.offset() >= batch.base_offset() && r.offset() <= batch.last_offset(),
            "record offset {} outside the batch's {}..={}",
            r.offset(),
            batch.base_offset(),
            batch.last_offset()
        );
        assert!(
            prev.is_none_or(|p| r.offset() > p),
            "offsets not increasing"
        );
        prev = Some(r.offset());
        if batch.timestamp_type() == TimestampType::LogAppendTime {
            assert_eq!(r.timestamp(), batch.max_timestamp());
        }
        let mut headers = Vec::new();
        for h in r.headers() {
            match h {
                Ok((k, v)) => headers.push((k.to_string(), v.map(<[u8]>::to_vec))),
                Err(_) => all_ok = false,
            }
        }
        out.push(Owned {
            timestamp: r.timestamp(),
            key: r.key().map(<[u8]>::to_vec),
            value: r.value().map(<[u8]>::to_vec),
            headers,
        });
    }
    if all_ok {
        assert_eq!(
            out.len() as u64,
            u64::from(batch.record_count()),
            "a batch whose records all decode must hold record_count records"
        );
    }
    all_ok.then_some(out)
}

fn check_batch(data: &[u8], layout: Layout) {
    let parsed = match layout {
        Layout::Kafka => BatchRef::parse(data, MAX_BATCH),
        Layout::Legacy => BatchRef::parse_as(data, MAX_BATCH, riverbed::BatchLayout::Legacy),
    };
    let Ok(batch) = parsed else {
        return;
    };
    let len = batch.len();
    let min = match layout {
        Layout::Kafka => HEADER_LEN,
        Layout::Legacy => LEGACY_HEADER_LEN,
    };
    assert!(len >= min && len <= data.len());
    assert_eq!(batch.as_bytes(), &data[..len]);
    assert!(batch.record_count() >= 1);
    assert!(batch.last_offset() >= batch.base_offset());
    assert!(batch.first_timestamp() <= batch.max_timestamp() || batch.delete_horizon().is_some());
    assert!(
        BatchRef::parse_as(data, len - 1, batch.layout()).is_err(),
        "a batch larger than max_batch_bytes was accepted"
    );
    if layout == Layout::Kafka {
        let owned =
            RecordBatch::from_bytes(data[..len].to_vec()).expect("from_bytes of a parsed batch");
        assert_eq!(owned.as_bytes(), batch.as_bytes());
        assert_eq!(owned.record_count(), batch.record_count());
    }

    // Every batch that decodes completely re-encodes (as a Kafka batch, whatever its layout) to
    // the same records.
    let Some(records) = decode_records(&batch) else {
        return;
    };
    for compression in [Compression::None, Compression::Zstd { level: 1 }] {
        let mut builder = BatchBuilder::new(compression);
        for r in &records {
            let headers: Vec<(&str, Option<&[u8]>)> = r
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_deref()))
                .collect();
            builder.append(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers);
        }
        let rebuilt = builder.build().expect("build");
        let rebuilt_ref =
            BatchRef::parse(rebuilt.as_bytes(), usize::MAX).expect("parse a built batch");
        let again = decode_records(&rebuilt_ref).expect("decode a built batch");
        assert_eq!(again, records, "re-encoded records differ");
    }
}

// ---- index_lookup ---------------------------------------------------------------------------

/// Index lookups on arbitrary bytes. Input: `{ offset_target u32 | time_target i64 |
/// data_len u32 | entries }`; `entries` is read both as an offset index and as a time index.
#[cfg(feature = "internals")]
pub fn index_lookup(data: &[u8]) {
    use riverbed::internals::index::{
        offset_floor, time_floor, valid_offset_prefix, valid_time_prefix, OffsetEntry, TimeEntry,
        OFFSET_ENTRY_LEN, TIME_ENTRY_LEN,
    };

    let Some((head, entries)) = data.split_first_chunk::<16>() else {
        return;
    };
    let target = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&head[4..12]);
    let ts_target = i64::from_le_bytes(ts);
    let data_len = u32::from_le_bytes([head[12], head[13], head[14], head[15]]) as usize;

    // Offset index.
    let offsets: Vec<OffsetEntry> = (0..entries.len() / OFFSET_ENTRY_LEN)
        .map(|i| OffsetEntry::at(entries, i).expect("entry in range"))
        .collect();
    for (i, e) in offsets.iter().enumerate() {
        assert_eq!(
            e.encode(),
            entries[i * 8..i * 8 + 8],
            "offset entry round trip"
        );
    }
    assert!(OffsetEntry::at(entries, offsets.len()).is_none());
    // On any bytes: the answer satisfies the floor property and is one of the entries.
    match offset_floor(entries, target) {
        Some(e) => {
            assert!(e.relative_offset <= target, "floor entry above the target");
            assert!(offsets.contains(&e), "floor entry is not in the index");
        }
        None => assert!(offsets.first().is_none_or(|e| e.relative_offset > target)),
    }
    // On the well-formed prefix: exactly the last entry at or below the target.
    let valid = valid_offset_prefix(entries, data_len);
    assert!(valid <= offsets.len());
    for (i, e) in offsets[..valid].iter().enumerate() {
        assert!(e.position != 0 && (e.position as usize) < data_len);
        if i > 0 {
            let p = offsets[i - 1];
            assert!(e.relative_offset > p.relative_offset && e.position > p.position);
        }
    }
    if let Some(e) = offsets.get(valid) {
        let breaks = e.position == 0
            || e.position as usize >= data_len
            || valid.checked_sub(1).is_some_and(|j| {
                e.relative_offset <= offsets[j].relative_offset || e.position <= offsets[j].position
            });
        assert!(breaks, "valid_offset_prefix stopped at a valid entry");
    }
    let linear = offsets[..valid]
        .iter()
        .rev()
        .find(|e| e.relative_offset <= target)
        .copied();
    assert_eq!(
        offset_floor(&entries[..valid * OFFSET_ENTRY_LEN], target),
        linear,
        "offset_floor differs from a linear scan on a well-formed index"
    );
    // A well-formed index made from the input: sorted, deduplicated relative offsets.
    let mut rels: Vec<u32> = offsets.iter().map(|e| e.relative_offset).collect();
    rels.sort_unstable();
    rels.dedup();
    let sorted: Vec<u8> = rels
        .iter()
        .enumerate()
        .flat_map(|(i, &r)| {
            OffsetEntry {
                relative_offset: r,
                position: 24 + i as u32,
            }
            .encode()
        })
        .collect();
    let expect = rels.iter().rposition(|&r| r <= target);
    assert_eq!(
        offset_floor(&sorted, target).map(|e| e.position as usize - 24),
        expect,
        "offset_floor differs from a linear scan on a sorted index"
    );

    // Time index.
    let times: Vec<TimeEntry> = (0..entries.len() / TIME_ENTRY_LEN)
        .map(|i| TimeEntry::at(entries, i).expect("entry in range"))
        .collect();
    for (i, e) in times.iter().enumerate() {
        assert_eq!(
            e.encode(),
            entries[i * 16..i * 16 + 16],
            "time entry round trip"
        );
    }
    match time_floor(entries, ts_target) {
        Some(e) => {
            assert!(
                e.timestamp < ts_target,
                "time floor entry not below the target"
            );
            assert!(times.contains(&e), "time floor entry is not in the index");
        }
        None => assert!(times.first().is_none_or(|e| e.timestamp >= ts_target)),
    }
    let valid = valid_time_prefix(entries, data_len);
    assert!(valid <= times.len());
    for (i, e) in times[..valid].iter().enumerate() {
        assert!(e.position != 0 && (e.position as usize) < data_len);
        if i > 0 {
            let p = times[i - 1];
            assert!(
                e.timestamp > p.timestamp
                    && e.relative_offset >= p.relative_offset
                    && e.position >= p.position
            );
        }
    }
    let linear = times[..valid]
        .iter()
        .rev()
        .find(|e| e.timestamp < ts_target)
        .copied();
    assert_eq!(
        time_floor(&entries[..valid * TIME_ENTRY_LEN], ts_target),
        linear,
        "time_floor differs from a linear scan on a well-formed index"
    );
    let mut stamps: Vec<i64> = times.iter().map(|e| e.timestamp).collect();
    stamps.sort_unstable();
    stamps.dedup();
    let sorted: Vec<u8> = stamps
        .iter()
        .enumerate()
        .flat_map(|(i, &t)| {
            TimeEntry {
                timestamp: t,
                relative_offset: i as u32,
                position: 24 + i as u32,
            }
            .encode()
        })
        .collect();
    let expect = stamps.iter().rposition(|&t| t < ts_target);
    assert_eq!(
        time_floor(&sorted, ts_target).map(|e| e.relative_offset as usize),
        expect,
        "time_floor differs from a linear scan on a sorted index"
    );
}

// ---- recover_segment ------------------------------------------------------------------------

/// The 24-byte header of the data file of segment 0 (FORMAT.md section 2), built by hand so that
/// this check also runs without `internals`; compared with `internals::file_header::encode`
/// where that is available.
pub fn log_file_header(version: u16) -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(b"RVBL");
    h[4..6].copy_from_slice(&version.to_le_bytes());
    let crc = if version == 1 {
        crc32fast::hash(&h[0..16])
    } else {
        // Versions 2 and 3: bytes 0..16 and 20..24.
        let mut covered = [0u8; 20];
        covered[..16].copy_from_slice(&h[0..16]);
        covered[16..].copy_from_slice(&h[20..24]);
        crc32fast::hash(&covered)
    };
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

/// A directory for one run: on tmpfs when there is one, where fsync costs nothing.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let mut b = tempfile::Builder::new();
    b.prefix("riverbed-fuzz-");
    if shm.is_dir() {
        if let Ok(d) = b.tempdir_in(shm) {
            return d;
        }
    }
    b.tempdir().expect("create a temporary directory")
}

fn config(recovery: RecoveryMode) -> LogConfig {
    LogConfig::default()
        .segment_bytes(2 << 20)
        .max_message_bytes(MAX_BATCH)
        .flush(FlushPolicy::Manual)
        .recovery(recovery)
}

/// Writes `data` after a valid file header as `00000000000000000000.log`, the only file of a log
/// directory, and opens it (crash recovery), reads everything, appends, closes and reopens. Also
/// runs `internals::scan` on the same bytes and checks that recovery kept exactly what the scan
/// found valid. Done twice: under a segment format 3 header (Kafka v2 batches) and under a
/// format 1 header (the batches of older builds, which the first append rolls past).
pub fn recover_segment(data: &[u8]) {
    recover_segment_as(data, 3);
    recover_segment_as(data, 1);
}

fn recover_segment_as(data: &[u8], version: u16) {
    let header = log_file_header(version);
    let mut file = header.to_vec();
    file.extend_from_slice(data);

    #[cfg(feature = "internals")]
    let scanned = {
        use riverbed::internals::{file_header, scan, FileKind, FILE_HEADER_LEN};
        if version == 3 {
            assert_eq!(header, file_header::encode(FileKind::Log, 0));
        }
        assert_eq!(FILE_HEADER_LEN, header.len());
        let mut batches = Vec::new();
        let end = scan(&file, FILE_HEADER_LEN, 0, MAX_BATCH, false, |pos, h| {
            batches.push((pos, h.base_offset, h.last_offset()));
        });
        assert!(end.end <= file.len() && end.end >= FILE_HEADER_LEN);
        assert_eq!(end.batches, batches.len() as u64);
        let mut expect_next = 0;
        for &(_, base, last) in &batches {
            assert_eq!(base, expect_next, "scan accepted a gap in offsets");
            expect_next = last + 1;
        }
        assert_eq!(end.next_offset, expect_next);
        // Out-of-range starts are errors, not panics.
        assert!(scan(&file, file.len() + 1, 0, MAX_BATCH, false, |_, _| {})
            .error
            .is_some());
        let _ = scan(data, 0, 0, MAX_BATCH, false, |_, _| {});
        end
    };

    let dir = scratch_dir();
    let [strict_dir, log_dir] = ["strict", "log"].map(|name| {
        let d = dir.path().join(name);
        std::fs::create_dir(&d).expect("mkdir");
        std::fs::write(d.join("00000000000000000000.log"), &file).expect("write segment");
        d
    });

    // Strict mode refuses exactly the inputs recovery would cut. (In a directory of its own: a
    // successful open and close may write a recovery point.)
    let strict = Log::open(&strict_dir, config(RecoveryMode::Strict));
    #[cfg(feature = "internals")]
    assert_eq!(
        strict.is_ok(),
        scanned.error.is_none(),
        "Strict open disagrees with the scan: {:?}",
        strict.as_ref().err()
    );
    drop(strict);

    let log = match Log::open(&log_dir, config(RecoveryMode::TruncateTail)) {
        Ok(log) => log,
        Err(e) => panic!("TruncateTail open failed on a damaged tail: {e}"),
    };
    let next = log.high_watermark();
    assert_eq!(log.log_start_offset(), 0);
    #[cfg(feature = "internals")]
    {
        let report = log.recovery_report();
        assert_eq!(
            next, scanned.next_offset,
            "recovery kept other batches than scan"
        );
        assert_eq!(
            report.truncation.is_some(),
            scanned.error.is_some(),
            "{report:?}"
        );
        assert_eq!(
            report.scanned_bytes,
            (scanned.end - 24) as u64,
            "{report:?}"
        );
    }

    // Everything recovery kept reads back, contiguous from 0 (records may still be malformed).
    let mut offset = 0;
    while offset < next {
        let batches = log
            .read(offset, 64 << 10)
            .unwrap_or_else(|e| panic!("read({offset}) of recovered data failed: {e}"));
        assert!(
            !batches.is_empty(),
            "read({offset}) returned nothing below {next}"
        );
        for b in &batches {
            assert_eq!(
                b.base_offset(),
                offset,
                "recovered batches are not contiguous"
            );
            offset = b.last_offset() + 1;
            if let Ok(records) = b.records() {
                // Malformed records are allowed here (reported on read); the iterator ends at
                // the first one.
                for r in records.iter().flatten() {
                    let _ = (r.key(), r.value(), r.headers().count());
                }
            }
        }
    }
    assert_eq!(offset, next);
    for ts in [i64::MIN, 0, i64::MAX] {
        let _ = log.offset_for_timestamp(ts);
    }

    // The recovered log takes appends, and a clean close makes the next open scan nothing.
    let mut builder = BatchBuilder::new(Compression::None);
    builder.append(1_700_000_000_000, Some(b"k"), Some(b"after recovery"), &[]);
    let info = log
        .append(&builder.build().expect("build"))
        .expect("append after recovery");
    assert_eq!(info.base_offset, next);
    log.close().expect("close after recovery");
    let log = match Log::open(&log_dir, config(RecoveryMode::Strict)) {
        Ok(log) => log,
        Err(e) => panic!("reopen after a clean close failed (stale bytes past the end?): {e}"),
    };
    assert_eq!(
        log.high_watermark(),
        next + 1,
        "reopen after a clean close found other offsets than were kept and appended (stale bytes \
         past the recovered end read back as data?): {:?}",
        log.recovery_report()
    );
    assert_eq!(
        log.recovery_report().scanned_bytes,
        0,
        "open after a clean close scanned: {:?}",
        log.recovery_report()
    );
    let batches = log.read(next, 1 << 10).expect("read the appended batch");
    let records = batches[0].records().expect("records");
    let r = records.iter().next().expect("a record").expect("decodes");
    assert_eq!(r.value(), Some(&b"after recovery"[..]));
}

// ---- decode_files ---------------------------------------------------------------------------

/// The store's small files from arbitrary bytes: the first byte picks the decoder
/// (`producer-state`, `.txnindex`, `topics`, streams checkpoint), the rest is the file. Each
/// decoder must return a value or an error, never panic; and what it decoded must survive being
/// encoded and decoded again unchanged (for the checkpoint, whose layout has no slack, the
/// encoding must give back the very bytes).
#[cfg(feature = "internals")]
pub fn decode_files(data: &[u8]) {
    use riverbed::internals::files;

    let Some((&which, file)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            if let Ok((offset, again)) = files::decode_producer_state(file) {
                let (offset2, twice) = files::decode_producer_state(&again)
                    .expect("a re-encoded producer state decodes");
                assert_eq!(offset, offset2);
                assert_eq!(again, twice, "producer state encoding is not stable");
            }
        }
        1 => {
            if let Ok(entries) = files::decode_txn_index(file, 0, 1 << 40) {
                let again = files::encode_txn_index(0, &entries);
                assert_eq!(
                    files::decode_txn_index(&again, 0, 1 << 40).expect("re-encoded .txnindex"),
                    entries
                );
            }
        }
        2 => {
            if let Ok(topics) = files::decode_topics(file) {
                let again = files::encode_topics(&topics);
                let twice = files::encode_topics(
                    &files::decode_topics(&again).expect("a re-encoded topics file decodes"),
                );
                assert_eq!(again, twice, "topics encoding is not stable");
            }
        }
        _ => {
            if let Ok((offset, committed, written, entries)) =
                files::decode_streams_checkpoint(file, "app-store-changelog", 0)
            {
                let again = files::encode_streams_checkpoint(
                    "app-store-changelog",
                    0,
                    offset,
                    committed,
                    written,
                    &entries,
                )
                .expect("a decoded checkpoint encodes");
                assert_eq!(again, file, "a checkpoint decoded then encoded differs");
            }
        }
    }
}

// ---- server_request -------------------------------------------------------------------------

/// The wire front's request path, end to end (framing, header, version check, the message
/// decoder, dispatch to a handler), over loopback to a [`riverbed::server::Server`] serving a
/// store with topic `t` (two partitions) that lives as long as the process.
///
/// The input is a list of chunks `[len: u16 LE][payload]`; each payload is sent behind a
/// correct 4-byte size prefix, and a last chunk without room for its length is sent raw
/// (framing errors). Then the client ends its side. Properties: the server answers or closes
/// within 10 s (no thread left waiting), each answer is well framed, and afterwards a new
/// connection still gets a well-formed ApiVersions response. An abort (an allocation from an
/// element count, say) is a crash of the fuzzer process, which libFuzzer reports as such.
#[cfg(feature = "server")]
#[allow(clippy::big_endian_bytes)] // Kafka's wire protocol is big-endian
pub fn server_request(data: &[u8]) {
    use std::io::{Read, Write};
    use std::net::{Shutdown, SocketAddr, TcpStream};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    static SERVER: OnceLock<(SocketAddr, riverbed::server::Server, riverbed::Store)> =
        OnceLock::new();
    let (addr, _, _) = SERVER.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir").keep();
        let store = riverbed::Store::open(&dir).expect("open a store");
        store
            .create_topic("t", riverbed::TopicConfig::new(2))
            .expect("create t");
        let server = riverbed::server::Server::start(
            &store,
            riverbed::server::ServerConfig::new("127.0.0.1:0"),
        )
        .expect("start the server");
        (server.local_addr(), server, store)
    });

    fn connect(addr: &SocketAddr) -> TcpStream {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }
    /// Reads frames until the server closes; panics on a malformed frame or a hang, except
    /// that a connection may stay open when it carried a request the server may rightly hold
    /// as long as the client asked (`may_hold`: a long-poll Fetch, a rebalance barrier).
    fn drain(s: &mut TcpStream, may_hold: bool) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut n = 0;
        loop {
            let mut size = [0u8; 4];
            match s.read_exact(&mut size) {
                Ok(()) => {}
                Err(e) => match e.kind() {
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => {
                        return n
                    }
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut if may_hold => {
                        return n
                    }
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                        panic!("the connection stayed open 10 s after the client finished")
                    }
                    _ => panic!("reading a response: {e}"),
                },
            }
            let size = i32::from_be_bytes(size);
            assert!(
                (4..=64 << 20).contains(&size),
                "a response frame of size {size}"
            );
            let mut body = vec![0u8; size as usize];
            s.read_exact(&mut body).expect("a whole response frame");
            n += 1;
            assert!(Instant::now() < deadline, "responses kept coming for 10 s");
        }
    }

    let mut out = Vec::new();
    let mut rest = data;
    // Fetch (1), JoinGroup (11), SyncGroup (14): requests a server may hold as long as their
    // client asked; a connection that carried one is read for 1 s only.
    let mut may_hold = false;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        let len = len.min(rest.len() - 2);
        if len >= 2 {
            may_hold |= matches!(i16::from_be_bytes([rest[2], rest[3]]), 1 | 11 | 14);
        }
        out.extend_from_slice(&(len as i32).to_be_bytes());
        out.extend_from_slice(&rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    out.extend_from_slice(rest);

    let mut s = connect(addr);
    if may_hold {
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    }
    // The server may close before it read everything: a failed write is then expected.
    let _ = s.write_all(&out);
    let _ = s.shutdown(Shutdown::Write);
    drain(&mut s, may_hold);

    // ApiVersions v3 (header v2: api 18, version 3, correlation 77, client id "f", no tags;
    // body: software name "f", version "1", no tags), then the server must answer it.
    let req: &[u8] = &[0, 18, 0, 3, 0, 0, 0, 77, 0, 1, b'f', 0, 2, b'f', 2, b'1', 0];
    let mut s = connect(addr);
    let mut frame = (req.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(req);
    s.write_all(&frame).expect("send ApiVersions");
    let mut size = [0u8; 4];
    s.read_exact(&mut size)
        .expect("the server answers ApiVersions after the input");
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut body).expect("the ApiVersions response");
    assert_eq!(&body[..4], &77i32.to_be_bytes(), "correlation id");
    // Response header v0 for ApiVersions; the body starts with error_code = 0.
    assert_eq!(&body[4..6], &[0, 0], "ApiVersions error code");
}
