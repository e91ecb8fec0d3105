//! `riverbed consume`.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::time::Duration;

use clap::Args;
use serde_json::json;

use riverbed::inspect::{PartitionView, StoreView, ViewReader};
use riverbed::{ConsumerConfig, HeaderIter, OffsetAndMetadata, OffsetReset, TopicPartition};

use crate::out::{parse_time, rfc3339};
use crate::{open_store, Cli, CmdResult, Failure};

#[derive(Args)]
#[command(
    after_help = "Examples:\n  riverbed -d ./data consume events -o beginning -e\n  \
    riverbed -d ./data consume events -o -10 -e -f '%p@%o %k=%s\\n'\n  \
    riverbed -d ./data consume events -o @2024-05-01T12:00:00Z -c 100 --json\n  \
    riverbed -d ./data consume events -g billing -e        # as a group member, committing\n\n\
    Format tokens: %t topic, %p partition, %o offset, %k key, %s value, %T timestamp (ms),\n\
    %R timestamp (RFC 3339), %h headers (k=v,...), %K key length, %S value length, %% percent;\n\
    escapes \\n \\t \\r \\\\.\n\n\
    Without -g the command reads without taking the lock, beside a running application."
)]
pub struct ConsumeArgs {
    /// Topic to read.
    topic: String,
    /// Read only these partitions (repeatable; default all).
    #[arg(short, long = "partition")]
    partitions: Vec<u32>,
    /// Where to start: beginning, end, an offset N, -N (N before the end), or @TIME (RFC 3339
    /// or ms since the epoch: the first record at or after it).
    #[arg(short, long, default_value = "beginning", allow_hyphen_values = true)]
    offset: String,
    /// Consume as a member of this group: start from its committed offsets (or -o beginning|end
    /// where it has none) and commit what was printed. Takes the store's lock.
    #[arg(short, long)]
    group: Option<String>,
    /// Stop after this many records.
    #[arg(short, long)]
    count: Option<u64>,
    /// Stop at the end of the log instead of waiting for more records.
    #[arg(short, long = "exit")]
    exit_at_end: bool,
    /// Output format (kcat -f style).
    #[arg(short, long, default_value = "%s\\n", conflicts_with = "json")]
    format: String,
    /// One JSON object per record.
    #[arg(long)]
    json: bool,
}

enum Piece {
    Lit(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Key,
    Value,
    Timestamp,
    Time,
    Headers,
    KeyLen,
    ValueLen,
}

fn parse_format(f: &str) -> Result<Vec<Piece>, Failure> {
    let mut pieces = Vec::new();
    let mut lit = Vec::new();
    let mut chars = f.chars();
    while let Some(c) = chars.next() {
        let special = match c {
            '%' => match chars.next() {
                Some('t') => Some(Piece::Topic),
                Some('p') => Some(Piece::Partition),
                Some('o') => Some(Piece::Offset),
                Some('k') => Some(Piece::Key),
                Some('s') => Some(Piece::Value),
                Some('T') => Some(Piece::Timestamp),
                Some('R') => Some(Piece::Time),
                Some('h') => Some(Piece::Headers),
                Some('K') => Some(Piece::KeyLen),
                Some('S') => Some(Piece::ValueLen),
                Some('%') => {
                    lit.push(b'%');
                    None
                }
                other => {
                    return Err(Failure::Error(format!(
                        "unknown format token %{} in {f:?}",
                        other.map_or(String::new(), String::from)
                    )))
                }
            },
            '\\' => {
                let e = match chars.next() {
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some('r') => '\r',
                    Some('\\') | None => '\\',
                    Some(o) => {
                        lit.push(b'\\');
                        o
                    }
                };
                let mut b = [0u8; 4];
                lit.extend_from_slice(e.encode_utf8(&mut b).as_bytes());
                None
            }
            c => {
                let mut b = [0u8; 4];
                lit.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                None
            }
        };
        if let Some(p) = special {
            if !lit.is_empty() {
                pieces.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            pieces.push(p);
        }
    }
    if !lit.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    Ok(pieces)
}

/// One record to print.
struct Rec<'a> {
    topic: &'a str,
    partition: u32,
    offset: u64,
    timestamp: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    headers: HeaderIter<'a>,
}

struct Printer<W: Write> {
    w: W,
    pieces: Vec<Piece>,
    json: bool,
    itoa: String,
}

impl<W: Write> Printer<W> {
    fn print(&mut self, r: Rec<'_>) -> Result<(), Failure> {
        if self.json {
            let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
            let mut headers = Vec::new();
            for h in r.headers {
                let (k, v) = h?;
                headers.push(json!([k, text(v)]));
            }
            let v = json!({
                "topic": r.topic, "partition": r.partition, "offset": r.offset,
                "timestamp": r.timestamp, "time": rfc3339(r.timestamp),
                "key": text(r.key), "value": text(r.value), "headers": headers,
            });
            serde_json::to_writer(&mut self.w, &v).map_err(std::io::Error::from)?;
            self.w.write_all(b"\n")?;
            return Ok(());
        }
        for p in &self.pieces {
            use std::fmt::Write as _;
            let w = &mut self.w;
            let num = &mut self.itoa;
            num.clear();
            match p {
                Piece::Lit(b) => w.write_all(b)?,
                Piece::Topic => w.write_all(r.topic.as_bytes())?,
                Piece::Value => w.write_all(r.value.unwrap_or_default())?,
                Piece::Key => w.write_all(r.key.unwrap_or_default())?,
                Piece::Partition => {
                    let _ = write!(num, "{}", r.partition);
                    w.write_all(num.as_bytes())?;
                }
                Piece::Offset => {
                    let _ = write!(num, "{}", r.offset);
                    w.write_all(num.as_bytes())?;
                }
                Piece::Timestamp => {
                    let _ = write!(num, "{}", r.timestamp);
                    w.write_all(num.as_bytes())?;
                }
                Piece::Time => w.write_all(rfc3339(r.timestamp).as_bytes())?,
                Piece::KeyLen => {
                    let _ = write!(num, "{}", r.key.map_or(-1, |k| k.len() as i64));
                    w.write_all(num.as_bytes())?;
                }
                Piece::ValueLen => {
                    let _ = write!(num, "{}", r.value.map_or(-1, |v| v.len() as i64));
                    w.write_all(num.as_bytes())?;
                }
                Piece::Headers => {
                    for (i, h) in r.headers.clone().enumerate() {
                        let (k, v) = h?;
                        if i > 0 {
                            w.write_all(b",")?;
                        }
                        w.write_all(k.as_bytes())?;
                        w.write_all(b"=")?;
                        w.write_all(v.unwrap_or_default())?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Where to start, before it is resolved against a partition.
enum Start {
    Beginning,
    End,
    Offset(u64),
    FromEnd(u64),
    Time(i64),
}

fn parse_start(s: &str) -> Result<Start, Failure> {
    Ok(match s {
        "beginning" | "earliest" => Start::Beginning,
        "end" | "latest" => Start::End,
        _ if s.starts_with('@') => Start::Time(parse_time(&s[1..]).map_err(Failure::Error)?),
        _ if s.starts_with('-') => Start::FromEnd(s[1..].parse().map_err(|_| bad_offset(s))?),
        _ => Start::Offset(s.parse().map_err(|_| bad_offset(s))?),
    })
}

fn bad_offset(s: &str) -> Failure {
    Failure::Error(format!(
        "-o {s:?}: expected beginning, end, an offset, -N or @TIME"
    ))
}

pub fn run(cli: &Cli, a: &ConsumeArgs) -> CmdResult {
    let pieces = parse_format(&a.format)?;
    let start = parse_start(&a.offset)?;
    let stdout = std::io::stdout();
    let mut printer = Printer {
        w: BufWriter::with_capacity(1 << 16, stdout.lock()),
        pieces,
        json: a.json,
        itoa: String::new(),
    };
    let result = match &a.group {
        Some(g) => consume_group(cli, a, g, start, &mut printer),
        None => consume_view(cli, a, &start, &mut printer),
    };
    let flushed = printer.w.flush();
    result?;
    flushed?;
    Ok(())
}

struct Part {
    partition: u32,
    next: u64,
    reader: Option<ViewReader>,
}

fn consume_view<W: Write>(
    cli: &Cli,
    a: &ConsumeArgs,
    start: &Start,
    printer: &mut Printer<W>,
) -> CmdResult {
    let dir = cli.dir();
    let view = StoreView::open(&dir)?;
    let n = view.topic_config(&a.topic)?.partitions;
    let wanted: Vec<u32> = if a.partitions.is_empty() {
        (0..n).collect()
    } else {
        a.partitions.clone()
    };
    let mut parts = Vec::new();
    for &p in &wanted {
        let v = view.partition(&a.topic, p)?;
        let (s, e) = (v.log_start_offset(), v.log_end_offset());
        let next = match *start {
            Start::Beginning => s,
            Start::End => e,
            Start::Offset(o) => o,
            Start::FromEnd(k) => e.saturating_sub(k).max(s),
            Start::Time(t) => v.offset_for_timestamp(t)?.map_or(e, |(o, _)| o),
        };
        let reader = Some(v.reader(next)?);
        parts.push(Part {
            partition: p,
            next,
            reader,
        });
    }
    let mut left = a.count.unwrap_or(u64::MAX);
    loop {
        let mut progressed = false;
        for part in parts.iter_mut() {
            let Some(reader) = part.reader.as_mut() else {
                continue;
            };
            // One batch per partition per turn, so that partitions interleave.
            match reader.next_batch()? {
                Some(batch) if batch.is_control() => {
                    // Transaction markers are not records (no Kafka consumer shows them).
                    progressed = true;
                    part.next = part.next.max(batch.last_offset() + 1);
                }
                Some(batch) => {
                    progressed = true;
                    for r in batch.records()?.iter() {
                        let r = r?;
                        if r.offset() < part.next {
                            continue;
                        }
                        if left == 0 {
                            break;
                        }
                        printer.print(Rec {
                            topic: &a.topic,
                            partition: part.partition,
                            offset: r.offset(),
                            timestamp: r.timestamp(),
                            key: r.key(),
                            value: r.value(),
                            headers: r.headers(),
                        })?;
                        left -= 1;
                        part.next = r.offset() + 1;
                    }
                    part.next = part.next.max(batch.last_offset() + 1);
                }
                None => part.reader = None,
            }
            if left == 0 {
                return Ok(());
            }
        }
        if progressed {
            continue;
        }
        if a.exit_at_end {
            return Ok(());
        }
        // Follow: look again for what the writer has added since.
        printer.w.flush()?;
        std::thread::sleep(Duration::from_millis(100));
        for part in parts.iter_mut() {
            let v = PartitionView::open(dir.join(format!("{}-{}", a.topic, part.partition)))?;
            if v.log_end_offset() > part.next {
                let from = part.next.max(v.log_start_offset());
                part.next = from;
                part.reader = Some(v.reader(from)?);
            }
        }
    }
}

fn consume_group<W: Write>(
    cli: &Cli,
    a: &ConsumeArgs,
    group: &str,
    start: Start,
    printer: &mut Printer<W>,
) -> CmdResult {
    let reset = match start {
        Start::Beginning => OffsetReset::Earliest,
        Start::End => OffsetReset::Latest,
        _ => return Err(Failure::Error(
            "with -g, -o can only be beginning or end (where the group has no committed offset); \
                 move a group with `groups reset-offsets`"
                .into(),
        )),
    };
    if !a.partitions.is_empty() {
        return Err(Failure::Error(
            "with -g the group assigns the partitions; -p is for reading without a group".into(),
        ));
    }
    let store = open_store(&cli.dir(), false)?;
    store.describe_topic(&a.topic)?;
    let mut consumer = store.consumer(
        ConsumerConfig::new(group)
            .auto_offset_reset(reset)
            .enable_auto_commit(false),
    )?;
    consumer.subscribe(&[a.topic.as_str()])?;
    let mut left = a.count.unwrap_or(u64::MAX);
    let mut printed: HashMap<TopicPartition, u64> = HashMap::new();
    let outcome = loop {
        let records = consumer.poll(Duration::from_millis(200))?;
        for r in records.iter() {
            if left == 0 {
                break;
            }
            printer.print(Rec {
                topic: r.topic(),
                partition: r.partition(),
                offset: r.offset(),
                timestamp: r.timestamp(),
                key: r.key(),
                value: r.value(),
                headers: r.headers(),
            })?;
            left -= 1;
            printed.insert(
                TopicPartition::new(r.topic(), r.partition()),
                r.offset() + 1,
            );
        }
        if !printed.is_empty() {
            printer.w.flush()?;
            let offsets: Vec<(TopicPartition, OffsetAndMetadata)> = printed
                .drain()
                .map(|(tp, o)| (tp, OffsetAndMetadata::new(o)))
                .collect();
            consumer.commit_offsets(&offsets)?;
        }
        if left == 0 {
            break Ok(());
        }
        if a.exit_at_end && records.is_empty() && !consumer.assignment().is_empty() {
            let assigned = consumer.assignment().to_vec();
            let ends = consumer.end_offsets(&assigned)?;
            let mut at_end = true;
            for (tp, end) in ends {
                if consumer.position(&tp)? < end {
                    at_end = false;
                }
            }
            if at_end {
                break Ok(());
            }
        }
    };
    consumer.close()?;
    outcome
}
