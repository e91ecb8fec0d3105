//! `riverbed dump`, `verify` and `stats`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};

use riverbed::inspect::{self, DumpItem, Severity, StoreView};
use riverbed::{ControlType, TimestampType};

use crate::out::{byte_rate, count_rate, json_time, print_json, rfc3339, size, Table};
use crate::{Cli, CmdResult, Failure, Output};

#[derive(Args)]
pub struct DumpArgs {
    /// .log, .index, .timeindex or .txnindex files, dumped one after the other.
    #[arg(required = true, value_name = "FILE")]
    paths: Vec<PathBuf>,
    /// Also print each batch's records.
    #[arg(long)]
    records: bool,
    /// Print each record of a committed-offsets log (`__consumer_offsets-0/*.log`) as the
    /// group, partition and offset it commits (Kafka's `kafka-dump-log --offsets-decoder`).
    #[arg(long)]
    offsets_decoder: bool,
    /// One JSON object per batch, entry or problem.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// A store directory or a partition log directory (default: --dir).
    dir: Option<PathBuf>,
    /// A JSON report instead of lines.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct StatsArgs {
    /// The store directory (default: --dir).
    dir: Option<PathBuf>,
    /// Sample twice this many milliseconds apart to measure append rates.
    #[arg(long, value_name = "MS")]
    interval: Option<u64>,
    #[command(flatten)]
    out: Output,
}

fn text(b: Option<&[u8]>) -> Value {
    b.map_or(Value::Null, |b| json!(String::from_utf8_lossy(b)))
}

fn control_name(c: Option<ControlType>, is_control: bool) -> &'static str {
    match (is_control, c) {
        (false, _) => "",
        (true, Some(ControlType::Commit)) => "commit",
        (true, Some(ControlType::Abort)) => "abort",
        (true, None) => "malformed",
        (true, Some(_)) => "control",
    }
}

pub fn dump(a: &DumpArgs) -> CmdResult {
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    let mut bad = false;
    for path in &a.paths {
        let mut visit = |item: DumpItem<'_>| -> riverbed::Result<()> {
            let r = dump_item(&mut w, a, path, item, &mut bad);
            r.map_err(|e| {
                riverbed::ErrorKind::InvalidArgument(format!("writing output: {e}")).into()
            })
        };
        let result = inspect::dump_file(path, &mut visit);
        w.flush()?;
        result?;
    }
    if bad {
        return Err(Failure::Exit(1));
    }
    Ok(())
}

fn dump_item(
    w: &mut dyn Write,
    a: &DumpArgs,
    path: &std::path::Path,
    item: DumpItem<'_>,
    bad: &mut bool,
) -> std::io::Result<()> {
    match item {
        DumpItem::Header {
            kind,
            base_offset,
            version,
        } => {
            if a.json {
                serde_json::to_writer(
                    &mut *w,
                    &json!({"file": path, "kind": kind, "base_offset": base_offset, "version": version}),
                )?;
                writeln!(w)
            } else {
                writeln!(
                    w,
                    "Dumping {} ({kind}, base offset {base_offset}, format version {version})",
                    path.display()
                )
            }
        }
        DumpItem::Batch(s, batch) => {
            if !s.crc_valid {
                *bad = true;
            }
            let append = s.timestamp_type == TimestampType::LogAppendTime;
            if a.json {
                let mut v = json!({
                    "position": s.position, "size": s.size, "magic": s.magic,
                    "base_offset": s.base_offset, "last_offset": s.last_offset, "count": s.record_count,
                    "first_timestamp": json_time(s.first_timestamp), "max_timestamp": json_time(s.max_timestamp),
                    "timestamp_type": if append { "log_append" } else { "create" },
                    "codec": s.codec, "producer_id": s.producer.producer_id,
                    "producer_epoch": s.producer.producer_epoch, "base_sequence": s.producer.base_sequence,
                    "transactional": s.transactional, "control": s.is_control,
                    "control_type": control_name(s.control, s.is_control),
                    "crc": format!("0x{:08x}", s.crc), "crc_valid": s.crc_valid,
                });
                if a.offsets_decoder && !s.is_control {
                    v["offsets"] = offsets_json(batch.as_ref());
                } else if a.records {
                    v["records"] = records_json(batch.as_ref());
                }
                serde_json::to_writer(&mut *w, &v)?;
                return writeln!(w);
            }
            write!(
                w,
                "baseOffset: {} lastOffset: {} count: {} position: {} size: {} magic: {} \
                 firstTimestamp: {} maxTimestamp: {} ({}) timestampType: {} codec: {} \
                 producerId: {} producerEpoch: {} baseSequence: {} isTransactional: {} isControl: {}",
                s.base_offset, s.last_offset, s.record_count, s.position, s.size, s.magic,
                s.first_timestamp, s.max_timestamp, rfc3339(s.max_timestamp),
                if append { "LOG_APPEND_TIME" } else { "CREATE_TIME" }, s.codec,
                s.producer.producer_id, s.producer.producer_epoch, s.producer.base_sequence,
                s.transactional, s.is_control
            )?;
            if s.is_control {
                write!(w, " controlType: {}", control_name(s.control, true))?;
            }
            writeln!(w, " crc: 0x{:08x} crcValid: {}", s.crc, s.crc_valid)?;
            if a.offsets_decoder && !s.is_control {
                return print_offsets(w, batch.as_ref());
            }
            if a.records {
                match &batch {
                    None => writeln!(w, "| records not shown: the batch fails its CRC")?,
                    Some(b) => match b.records() {
                        Err(e) => writeln!(w, "| records unreadable: {e}")?,
                        Ok(records) => {
                            for r in records.iter() {
                                match r {
                                    Err(e) => {
                                        writeln!(w, "| record unreadable: {e}")?;
                                        break;
                                    }
                                    Ok(r) => {
                                        write!(
                                            w,
                                            "| offset: {} timestamp: {} keySize: {} valueSize: {}",
                                            r.offset(),
                                            r.timestamp(),
                                            r.key().map_or(-1, |k| k.len() as i64),
                                            r.value().map_or(-1, |v| v.len() as i64)
                                        )?;
                                        let headers: Vec<String> = r
                                            .headers()
                                            .filter_map(|h| h.ok())
                                            .map(|(k, v)| {
                                                format!(
                                                    "{k}={}",
                                                    String::from_utf8_lossy(v.unwrap_or_default())
                                                )
                                            })
                                            .collect();
                                        write!(w, " headers: [{}]", headers.join(","))?;
                                        write!(
                                            w,
                                            " key: {} payload: {}",
                                            r.key().map_or("null".into(), String::from_utf8_lossy),
                                            r.value()
                                                .map_or("null".into(), String::from_utf8_lossy)
                                        )?;
                                        writeln!(w)?;
                                    }
                                }
                            }
                        }
                    },
                }
            }
            Ok(())
        }
        DumpItem::OffsetEntry(e) | DumpItem::TimeEntry(e) => {
            if e.matches_data == Some(false) {
                *bad = true;
            }
            if a.json {
                serde_json::to_writer(
                    &mut *w,
                    &json!({"entry": e.number, "offset": e.offset, "position": e.position,
                    "timestamp": e.timestamp.map(json_time), "matches_data": e.matches_data}),
                )?;
                return writeln!(w);
            }
            write!(
                w,
                "entry: {} offset: {} position: {}",
                e.number, e.offset, e.position
            )?;
            if let Some(t) = e.timestamp {
                write!(w, " timestamp: {t} ({})", rfc3339(t))?;
            }
            match e.matches_data {
                Some(true) => writeln!(w),
                Some(false) => {
                    writeln!(w, "  MISMATCH: no batch with this offset at this position")
                }
                None => writeln!(w, "  (data file not found)"),
            }
        }
        DumpItem::AbortedTxn {
            number,
            producer_id,
            first_offset,
            last_offset,
            crc_valid,
        } => {
            if !crc_valid {
                *bad = true;
            }
            if a.json {
                serde_json::to_writer(
                    &mut *w,
                    &json!({"entry": number, "producer_id": producer_id,
                    "first_offset": first_offset, "last_offset": last_offset, "crc_valid": crc_valid}),
                )?;
                return writeln!(w);
            }
            writeln!(
                w,
                "entry: {number} producerId: {producer_id} firstOffset: {first_offset} \
                abortMarkerOffset: {last_offset} crcValid: {crc_valid}"
            )
        }
        DumpItem::Bad(e) => {
            *bad = true;
            if a.json {
                serde_json::to_writer(&mut *w, &json!({"error": e.to_string()}))?;
                writeln!(w)
            } else {
                writeln!(w, "ERROR: {e}")
            }
        }
        DumpItem::End { position, zeros } => {
            if a.json {
                serde_json::to_writer(&mut *w, &json!({"end": position, "zeros": zeros}))?;
                writeln!(w)
            } else if zeros {
                writeln!(
                    w,
                    "End at byte {position} (zeros follow: the unwritten rest of an active file)"
                )
            } else {
                writeln!(w, "End of file at byte {position}")
            }
        }
        _ => Ok(()),
    }
}

/// Each record of a committed-offsets batch: `| group: G topic: T partition: P offset: O`.
fn print_offsets(w: &mut dyn Write, batch: Option<&riverbed::BatchRef<'_>>) -> std::io::Result<()> {
    let Some(b) = batch else {
        return writeln!(w, "| records not shown: the batch fails its CRC");
    };
    let records = match b.records() {
        Ok(r) => r,
        Err(e) => return writeln!(w, "| records unreadable: {e}"),
    };
    for r in records.iter() {
        let line = r.and_then(|r| {
            let (g, tp, v) =
                inspect::decode_committed_offset(r.key().unwrap_or_default(), r.value())?;
            Ok(match v {
                Some(v) => format!(
                    "| offset: {} group: {g} topic: {} partition: {} committedOffset: {} metadata: {:?}",
                    r.offset(),
                    tp.topic,
                    tp.partition,
                    v.offset,
                    v.metadata
                ),
                None => format!(
                    "| offset: {} group: {g} topic: {} partition: {} deleted",
                    r.offset(),
                    tp.topic,
                    tp.partition
                ),
            })
        });
        match line {
            Ok(l) => writeln!(w, "{l}")?,
            Err(e) => {
                writeln!(w, "| record unreadable: {e}")?;
                break;
            }
        }
    }
    Ok(())
}

fn offsets_json(batch: Option<&riverbed::BatchRef<'_>>) -> Value {
    let Some(Ok(records)) = batch.map(|b| b.records()) else {
        return Value::Null;
    };
    let mut out = Vec::new();
    for r in records.iter() {
        let decoded = r.and_then(|r| {
            let (g, tp, v) =
                inspect::decode_committed_offset(r.key().unwrap_or_default(), r.value())?;
            Ok(json!({"offset": r.offset(), "group": g, "topic": tp.topic,
                      "partition": tp.partition, "committed_offset": v.as_ref().map(|v| v.offset),
                      "metadata": v.map(|v| v.metadata)}))
        });
        out.push(decoded.unwrap_or_else(|e| json!({"error": e.to_string()})));
    }
    json!(out)
}

fn records_json(batch: Option<&riverbed::BatchRef<'_>>) -> Value {
    let Some(b) = batch else {
        return Value::Null;
    };
    let records = match b.records() {
        Ok(r) => r,
        Err(e) => return json!([{"error": format!("records unreadable: {e}")}]),
    };
    let mut out = Vec::new();
    for r in records.iter() {
        // A record that does not decode ends the list with an entry saying so, rather than a
        // list that silently stops short.
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                out.push(json!({"error": format!("record unreadable: {e}")}));
                break;
            }
        };
        let headers: Vec<Value> = r
            .headers()
            .filter_map(|h| h.ok())
            .map(|(k, v)| json!([k, text(v)]))
            .collect();
        out.push(
            json!({"offset": r.offset(), "timestamp": json_time(r.timestamp()),
            "key": text(r.key()), "value": text(r.value()), "headers": headers}),
        );
    }
    json!(out)
}

pub fn verify(cli: &Cli, a: &VerifyArgs) -> CmdResult {
    let dir = a.dir.clone().unwrap_or_else(|| cli.dir());
    let bar = std::io::stderr().is_terminal() && !a.json;
    let started = Instant::now();
    let mut last_draw = Instant::now();
    let mut progress = |p: inspect::VerifyProgress| {
        if bar && (last_draw.elapsed() >= Duration::from_millis(100) || p.done == p.total) {
            last_draw = Instant::now();
            let pct = (p.done * 100).checked_div(p.total).unwrap_or(100);
            let filled = (pct / 5) as usize;
            eprint!(
                "\r[{}{}] {pct:3}% {} / {}   ",
                "#".repeat(filled),
                " ".repeat(20 - filled.min(20)),
                size(p.done),
                size(p.total)
            );
        }
    };
    let report = match inspect::verify(&dir, &mut progress) {
        Ok(r) => r,
        Err(e) => {
            if bar {
                eprintln!();
            }
            eprintln!("riverbed: cannot verify {}: {e}", dir.display());
            return Err(Failure::Exit(2));
        }
    };
    if bar {
        eprintln!();
    }
    let secs = started.elapsed().as_secs_f64();
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    let corrupt = report.count(Severity::Corruption);
    let warnings = report.count(Severity::Warning);
    let unreadable = report.count(Severity::Unreadable);
    if a.json {
        let problems: Vec<Value> = report
            .problems
            .iter()
            .map(|p| {
                let severity = match p.severity {
                    Severity::Corruption => "corruption",
                    Severity::Unreadable => "unreadable",
                    _ => "warning",
                };
                json!({"severity": severity,
                       "file": p.path, "position": p.position, "expected": p.expected, "found": p.found})
            })
            .collect();
        print_json(
            &mut w,
            &json!({"sound": report.is_sound(), "complete": report.is_complete(), "partitions": report.partitions,
            "files": report.files, "batches": report.batches, "bytes": report.bytes,
            "seconds": secs, "problems": problems}),
        )?;
    } else {
        for p in &report.problems {
            writeln!(w, "{p}")?;
        }
        writeln!(
            w,
            "{}: {} partitions, {} files, {} batches, {} in {:.2} s ({}); {corrupt} corrupt, {warnings} warnings, {unreadable} unreadable",
            if !report.is_sound() {
                "CORRUPT"
            } else if !report.is_complete() {
                "INCOMPLETE"
            } else {
                "sound"
            },
            report.partitions,
            report.files,
            report.batches,
            size(report.bytes),
            secs,
            byte_rate(report.bytes as f64 / secs.max(1e-9)),
        )?;
    }
    if !report.is_sound() {
        Err(Failure::Exit(1))
    } else if !report.is_complete() {
        // Files it could not read: the check could not run on all of the store.
        Err(Failure::Exit(2))
    } else {
        Ok(())
    }
}

/// Per-partition figures from a read-only view.
struct Sample {
    at: Instant,
    rows: Vec<(String, u32, u64, u64, u64, usize)>,
}

fn sample(view: &StoreView) -> Result<Sample, Failure> {
    let mut rows = Vec::new();
    for t in view.topics() {
        let d = view.describe_topic(&t)?;
        for p in d.partitions {
            rows.push((
                t.clone(),
                p.partition,
                p.log_start_offset,
                p.log_end_offset,
                p.size_bytes,
                p.segments,
            ));
        }
    }
    Ok(Sample {
        at: Instant::now(),
        rows,
    })
}

pub fn stats(cli: &Cli, a: &StatsArgs) -> CmdResult {
    let dir = a.dir.clone().unwrap_or_else(|| cli.dir());
    let view = crate::open_view(&dir)?;
    let first = sample(&view)?;
    let second = match a.interval {
        Some(ms) => {
            std::thread::sleep(Duration::from_millis(ms));
            Some(sample(&view)?)
        }
        None => None,
    };
    let now = second.as_ref().unwrap_or(&first);
    let secs = second
        .as_ref()
        .map(|s| s.at.duration_since(first.at).as_secs_f64());
    let committed = view.committed_offsets()?;
    let live = view.live_groups()?;
    let servers = view.live_servers()?;
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    let rate = |i: usize| -> Option<(f64, f64)> {
        let (s, secs) = (second.as_ref()?, secs?);
        let (a, b) = (&first.rows.get(i)?, &s.rows.get(i)?);
        if (a.0.as_str(), a.1) != (b.0.as_str(), b.1) || secs <= 0.0 {
            return None;
        }
        Some((
            b.3.saturating_sub(a.3) as f64 / secs,
            b.4.saturating_sub(a.4) as f64 / secs,
        ))
    };
    // Group lag per group.
    let mut groups: std::collections::BTreeMap<String, (u64, usize, usize)> = Default::default();
    for ((g, tp), o) in &committed {
        let end = now
            .rows
            .iter()
            .find(|r| r.0 == tp.topic && r.1 == tp.partition)
            .map(|r| (r.2, r.3));
        let e = groups.entry(g.clone()).or_default();
        if let Some((s, end)) = end {
            e.0 += end.saturating_sub(o.offset.max(s));
        }
        e.1 += 1;
    }
    for g in &live {
        groups.entry(g.group.clone()).or_default().2 = g.members.len();
    }
    if a.out.json {
        let parts: Vec<Value> = now
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut v = json!({"topic": r.0, "partition": r.1, "log_start_offset": r.2,
                    "log_end_offset": r.3, "size_bytes": r.4, "segments": r.5});
                if let Some((rps, bps)) = rate(i) {
                    v["append_records_per_sec"] = json!(rps);
                    v["append_bytes_per_sec"] = json!(bps);
                }
                v
            })
            .collect();
        let gs: Vec<Value> = groups
            .iter()
            .map(|(g, (lag, n, m))| json!({"group": g, "members": m, "partitions": n, "lag": lag}))
            .collect();
        let ss: Vec<Value> = servers
            .iter()
            .map(|s| {
                let apis: Vec<Value> = s
                    .apis
                    .iter()
                    .map(|a| {
                        json!({"api": a.api, "requests": a.requests, "errors": a.errors,
                            "latency_p50_us": a.latency.percentile(0.5).as_micros() as u64,
                            "latency_p99_us": a.latency.percentile(0.99).as_micros() as u64})
                    })
                    .collect();
                json!({"address": s.address, "connections_open": s.connections_open,
                    "connections_accepted": s.connections_accepted,
                    "connections_refused": s.connections_refused,
                    "bytes_received": s.bytes_received, "bytes_sent": s.bytes_sent, "apis": apis})
            })
            .collect();
        print_json(
            &mut w,
            &json!({"partitions": parts, "groups": gs, "servers": ss, "interval_seconds": secs}),
        )?;
        return Ok(());
    }
    let mut header = vec![
        "TOPIC",
        "PARTITION",
        "LOG-START",
        "LOG-END",
        "SIZE",
        "SEGMENTS",
    ];
    if second.is_some() {
        header.extend(["APPEND", "APPEND-BYTES"]);
    }
    let mut t = Table::new(&header);
    for (i, r) in now.rows.iter().enumerate() {
        let mut row = vec![
            r.0.clone(),
            r.1.to_string(),
            r.2.to_string(),
            r.3.to_string(),
            size(r.4),
            r.5.to_string(),
        ];
        if second.is_some() {
            let (rps, bps) = rate(i).unwrap_or((0.0, 0.0));
            row.push(count_rate(rps));
            row.push(byte_rate(bps));
        }
        t.row(row);
    }
    t.print(&mut w)?;
    if !groups.is_empty() {
        writeln!(w)?;
        let mut t = Table::new(&["GROUP", "MEMBERS", "PARTITIONS", "LAG"]);
        for (g, (lag, n, m)) in &groups {
            t.row(vec![
                g.clone(),
                m.to_string(),
                n.to_string(),
                lag.to_string(),
            ]);
        }
        t.print(&mut w)?;
    }
    for s in &servers {
        writeln!(w)?;
        writeln!(
            w,
            "SERVER {}: {} connections open ({} accepted, {} refused), {} received, {} sent",
            s.address,
            s.connections_open,
            s.connections_accepted,
            s.connections_refused,
            size(s.bytes_received),
            size(s.bytes_sent)
        )?;
        let mut t = Table::new(&["API", "REQUESTS", "ERRORS", "P50", "P99"]);
        for a in &s.apis {
            t.row(vec![
                a.api.clone(),
                a.requests.to_string(),
                a.errors.to_string(),
                format!("{:?}", a.latency.percentile(0.5)),
                format!("{:?}", a.latency.percentile(0.99)),
            ]);
        }
        t.print(&mut w)?;
    }
    if second.is_none() {
        writeln!(w, "(add --interval MS to measure append rates; fsync latency and read rates are kept inside the process: Store::metrics)")?;
    }
    Ok(())
}
