//! `riverbed consume`.
//!
//! Two ways to read. Without `-g` the command reads the segment files through a read-only view
//! (no lock, beside a running application). With `-g` it is a member of a consumer group
//! through the public [`Consumer`](riverbed::Consumer): it takes the store's lock, starts from
//! the group's committed offsets and commits what it printed.

use std::collections::{HashMap, VecDeque};
use std::io::{BufWriter, Write};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde_json::json;

use riverbed::inspect::{PartitionView, ViewReader};
use riverbed::{
    BatchRef, ConsumerConfig, ControlType, HeaderIter, IsolationLevel, OffsetAndMetadata,
    OffsetReset, TopicPartition,
};

use crate::out::{parse_time, rfc3339, unescape};
use crate::{open_store, usage, Cli, CmdResult, Failure};

#[derive(Args)]
#[command(
    after_help = "Examples:\n  riverbed -d ./data consume events -o beginning -e\n  \
    riverbed -d ./data consume events -o -10 -e -f '%p@%o %k=%s\\n'\n  \
    riverbed -d ./data consume events -o s@2024-05-01T12:00:00Z -o e@2024-05-02 --json\n  \
    riverbed -d ./data consume events -K : -Z -e               # key:value, NULL for null\n  \
    riverbed -d ./data consume events -g billing -e        # as a group member, committing\n\n\
    Offsets (-o, kcat's): beginning, end, stored (the group's committed offsets; needs -g), N\n\
    (absolute, in every partition read; a partition without offset N starts at its nearest end,\n\
    with a note), -N (N before the end), s@TIME (first record at or after TIME; also @TIME),\n\
    e@TIME (stop each partition at its first record at or after TIME; may be given with a\n\
    start). TIME is milliseconds since the epoch or RFC 3339 (a time without zone is UTC).\n\n\
    Format tokens (kcat's): %t topic, %p partition, %o offset, %k key, %s value, %T timestamp\n\
    (ms), %h headers (k=v,...), %K key length, %S value length (-1 for null), %R value length as\n\
    a 4-byte big-endian integer, %% percent; and %d timestamp as RFC 3339; escapes \\n \\t \\r\n\
    \\\\ \\xNN.\n\n\
    Without -g the command reads without taking the lock, beside a running application. A group\n\
    spanning processes needs the store shared: one process holds a store, so a second `consume\n\
    -g` waits for the lock (use the Kafka wire front for many processes in one group)."
)]
pub struct ConsumeArgs {
    /// Topic to read.
    topic: String,
    /// Read only these partitions (repeatable; default all, including ones added while
    /// following).
    #[arg(short, long = "partition")]
    partitions: Vec<u32>,
    /// Where to start (and, with e@TIME, where to stop); see below. Repeatable for a start and a
    /// stop.
    #[arg(short, long, allow_hyphen_values = true)]
    offset: Vec<String>,
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
    /// Stop when no record arrived for this long (Kafka's console consumer --timeout-ms).
    #[arg(long = "timeout-ms", value_name = "MS")]
    timeout_ms: Option<u64>,
    /// Output format (kcat -f style).
    #[arg(short, long, conflicts_with_all = ["json", "key_delimiter", "delimiter"])]
    format: Option<String>,
    /// Print the key, this separator, then the value (kcat -K: -f '%k<SEP>%s\n').
    #[arg(short = 'K', long = "key-delimiter", value_name = "SEP")]
    key_delimiter: Option<String>,
    /// End each record with this instead of a newline (kcat -D).
    #[arg(short = 'D', long = "delimiter", value_name = "DELIM")]
    delimiter: Option<String>,
    /// Print null keys and values as NULL instead of nothing (kcat -Z).
    #[arg(short = 'Z', long = "null")]
    null: bool,
    /// Which records of transactions to show: read_uncommitted (all, as Kafka's console
    /// consumer) or read_committed (none of aborted or still open transactions).
    #[arg(
        long = "isolation-level",
        value_enum,
        default_value = "read-uncommitted"
    )]
    isolation_level: Isolation,
    /// One JSON object per record.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Isolation {
    #[value(alias = "read_uncommitted")]
    ReadUncommitted,
    #[value(alias = "read_committed")]
    ReadCommitted,
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
    ValueLenBinary,
}

fn parse_format(f: &str) -> Result<Vec<Piece>, Failure> {
    let mut pieces = Vec::new();
    let mut lit = Vec::new();
    let mut rest = f;
    while let Some(i) = rest.find('%') {
        lit.extend_from_slice(&unescape(&rest[..i]).map_err(usage)?);
        let mut after = rest[i + 1..].chars();
        let token = after.next();
        rest = after.as_str();
        let piece = match token {
            Some('t') => Piece::Topic,
            Some('p') => Piece::Partition,
            Some('o') => Piece::Offset,
            Some('k') => Piece::Key,
            Some('s') => Piece::Value,
            Some('T') => Piece::Timestamp,
            Some('d') => Piece::Time,
            Some('h') => Piece::Headers,
            Some('K') => Piece::KeyLen,
            Some('S') => Piece::ValueLen,
            Some('R') => Piece::ValueLenBinary,
            Some('%') => {
                lit.push(b'%');
                continue;
            }
            other => {
                return Err(usage(format!(
                    "-f {f:?}: unknown format token %{} (see `riverbed consume --help`)",
                    other.map_or(String::new(), String::from)
                )))
            }
        };
        if !lit.is_empty() {
            pieces.push(Piece::Lit(std::mem::take(&mut lit)));
        }
        pieces.push(piece);
    }
    lit.extend_from_slice(&unescape(rest).map_err(usage)?);
    if !lit.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    Ok(pieces)
}

/// One header: key and (nullable) value.
type Header<'a> = (&'a str, Option<&'a [u8]>);

/// A record's headers: borrowed from a batch, or owned (held back by read_committed).
#[derive(Clone)]
enum Headers<'a> {
    Encoded(HeaderIter<'a>),
    Owned(&'a [(String, Option<Vec<u8>>)]),
}

impl<'a> Headers<'a> {
    fn collect(self) -> Result<Vec<Header<'a>>, Failure> {
        match self {
            Headers::Encoded(it) => Ok(it.collect::<Result<Vec<_>, _>>()?),
            Headers::Owned(v) => Ok(v.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect()),
        }
    }
}

/// One record to print.
struct Rec<'a> {
    topic: &'a str,
    partition: u32,
    offset: u64,
    timestamp: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    headers: Headers<'a>,
}

struct Printer<W: Write> {
    w: W,
    pieces: Vec<Piece>,
    json: bool,
    null: &'static [u8],
    itoa: String,
}

impl<W: Write> Printer<W> {
    fn print(&mut self, r: Rec<'_>) -> Result<(), Failure> {
        if self.json {
            let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
            let headers: Vec<_> = r
                .headers
                .collect()?
                .into_iter()
                .map(|(k, v)| json!([k, text(v)]))
                .collect();
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
                Piece::Value => w.write_all(r.value.unwrap_or(self.null))?,
                Piece::Key => w.write_all(r.key.unwrap_or(self.null))?,
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
                Piece::ValueLenBinary => {
                    let len = r
                        .value
                        .map_or(-1, |v| i32::try_from(v.len()).unwrap_or(i32::MAX));
                    // kcat's %R is big-endian on purpose: a framing prefix for other tools, not
                    // one of our on-disk formats.
                    #[allow(clippy::big_endian_bytes)]
                    w.write_all(&len.to_be_bytes())?;
                }
                Piece::Headers => {
                    for (i, (k, v)) in r.headers.clone().collect()?.into_iter().enumerate() {
                        if i > 0 {
                            w.write_all(b",")?;
                        }
                        w.write_all(k.as_bytes())?;
                        w.write_all(b"=")?;
                        w.write_all(v.unwrap_or(self.null))?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Where to start, before it is resolved against a partition.
#[derive(Clone, Copy)]
enum Start {
    Beginning,
    End,
    Stored,
    Offset(u64),
    FromEnd(u64),
    Time(i64),
}

/// What `-o` asked for: a start and an optional stop time.
struct Span {
    start: Option<Start>,
    stop_at: Option<i64>,
}

fn parse_offsets(specs: &[String]) -> Result<Span, Failure> {
    let mut span = Span {
        start: None,
        stop_at: None,
    };
    for s in specs {
        let time = |t: &str| parse_time(t).map_err(|e| usage(format!("-o {s:?}: {e}")));
        if let Some(t) = s.strip_prefix("e@") {
            if span.stop_at.replace(time(t)?).is_some() {
                return Err(usage("-o e@TIME given twice"));
            }
            continue;
        }
        let start = match s.as_str() {
            "beginning" | "earliest" => Start::Beginning,
            "end" | "latest" => Start::End,
            "stored" => Start::Stored,
            _ if s.starts_with("s@") => Start::Time(time(&s[2..])?),
            _ if s.starts_with('@') => Start::Time(time(&s[1..])?),
            _ if s.starts_with('-') => Start::FromEnd(s[1..].parse().map_err(|_| bad_offset(s))?),
            _ => Start::Offset(s.parse().map_err(|_| bad_offset(s))?),
        };
        if span.start.replace(start).is_some() {
            return Err(usage(
                "-o: more than one start given (one start, and at most one e@TIME)",
            ));
        }
    }
    Ok(span)
}

fn bad_offset(s: &str) -> Failure {
    usage(format!(
        "-o {s:?}: expected beginning, end, stored, an offset, -N, s@TIME or e@TIME"
    ))
}

pub fn run(cli: &Cli, a: &ConsumeArgs) -> CmdResult {
    let format = match (&a.format, &a.key_delimiter) {
        (Some(f), _) => f.clone(),
        (None, Some(k)) => format!("%k{}%s", k.replace('%', "%%")),
        (None, None) => "%s".into(),
    };
    let format = if a.format.is_some() {
        format
    } else {
        let end = a.delimiter.as_deref().unwrap_or("\\n").replace('%', "%%");
        format + &end
    };
    let pieces = parse_format(&format)?;
    let span = parse_offsets(&a.offset)?;
    let stdout = std::io::stdout();
    let mut printer = Printer {
        w: BufWriter::with_capacity(1 << 16, stdout.lock()),
        pieces,
        json: a.json,
        null: if a.null { b"NULL" } else { b"" },
        itoa: String::new(),
    };
    let mut stop = Stop {
        left: a.count.unwrap_or(u64::MAX),
        at_time: span.stop_at,
        timeout: a.timeout_ms.map(Duration::from_millis),
        last_record: Instant::now(),
    };
    let result = match &a.group {
        Some(g) => consume_group(cli, a, g, span.start, &mut stop, &mut printer),
        None => consume_view(cli, a, span.start, &mut stop, &mut printer),
    };
    let flushed = printer.w.flush();
    result?;
    flushed?;
    Ok(())
}

/// When to stop, besides the end of the log with `-e`.
struct Stop {
    /// Records still to print (`-c`).
    left: u64,
    /// `e@TIME`: a partition is done at its first record at or after this.
    at_time: Option<i64>,
    /// `--timeout-ms`: stop after this long without a record.
    timeout: Option<Duration>,
    last_record: Instant,
}

impl Stop {
    fn timed_out(&self) -> bool {
        self.timeout
            .is_some_and(|t| self.last_record.elapsed() >= t)
    }
}

/// Whether the reader of our standard output has gone (`consume t | head -1`): noticed while
/// idle, when no write would tell.
fn output_closed() -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&zero)) {
        Ok(n) if n > 0 => fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP),
        _ => false,
    }
}

/// A record held back by read_committed until its transaction ends.
struct Held {
    producer: Option<i64>,
    /// Its transaction committed: it may be printed once everything before it may.
    committed: bool,
    offset: u64,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// read_committed over raw batches: records are printed in offset order, but none at or after
/// the first record of a transaction that has not ended (Kafka's last stable offset), and none
/// of a transaction that aborted.
#[derive(Default)]
struct Committed {
    held: VecDeque<Held>,
}

impl Committed {
    /// Whether a batch must wait (something before it is still held, or it is transactional).
    fn holds(&self, batch: &BatchRef<'_>) -> bool {
        !self.held.is_empty() || batch.is_transactional()
    }

    fn hold(&mut self, batch: &BatchRef<'_>, from: u64) -> Result<(), Failure> {
        let producer = batch
            .is_transactional()
            .then(|| batch.producer().producer_id);
        for r in batch.records()?.iter() {
            let r = r?;
            if r.offset() < from {
                continue;
            }
            let headers = r
                .headers()
                .map(|h| h.map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec))))
                .collect::<Result<Vec<_>, _>>()?;
            self.held.push_back(Held {
                producer,
                committed: false,
                offset: r.offset(),
                timestamp: r.timestamp(),
                key: r.key().map(<[u8]>::to_vec),
                value: r.value().map(<[u8]>::to_vec),
                headers,
            });
        }
        Ok(())
    }

    /// A transaction of `producer` ended.
    fn end(&mut self, producer: i64, commit: bool) {
        if commit {
            for h in &mut self.held {
                if h.producer == Some(producer) {
                    h.committed = true;
                }
            }
        } else {
            self.held
                .retain(|h| h.producer != Some(producer) || h.committed);
        }
    }

    /// The next record that may be printed.
    fn pop_ready(&mut self) -> Option<Held> {
        let front = self.held.front()?;
        (front.producer.is_none() || front.committed)
            .then(|| self.held.pop_front())
            .flatten()
    }
}

struct Part {
    reader: Option<ViewReader>,
    state: PartState,
}

/// A partition being read, besides its reader.
struct PartState {
    partition: u32,
    /// The next offset to print.
    next: u64,
    /// Reached a record at or after `e@TIME`.
    done: bool,
    committed: Option<Committed>,
}

/// Where a partition starts: `start` resolved against its offsets. An absolute offset it does
/// not have starts it at its nearest end, with a note naming it (kcat's per-partition offsets).
fn resolve(start: Start, topic: &str, v: &PartitionView, partition: u32) -> Result<u64, Failure> {
    let (s, e) = (v.log_start_offset(), v.log_end_offset());
    Ok(match start {
        Start::Beginning => s,
        Start::End => e,
        Start::Stored => {
            return Err(usage(
                "-o stored reads a group's committed offsets: give -g",
            ))
        }
        Start::Offset(o) if o < s || o > e => {
            let at = if o < s { s } else { e };
            eprintln!(
                "riverbed: {topic} partition {partition}: offset {o} is out of range (log start {s}, \
                 end {e}); starting at {at}"
            );
            at
        }
        Start::Offset(o) => o,
        Start::FromEnd(k) => e.saturating_sub(k).max(s),
        Start::Time(t) => v.offset_for_timestamp(t)?.map_or(e, |(o, _)| o),
    })
}

fn consume_view<W: Write>(
    cli: &Cli,
    a: &ConsumeArgs,
    start: Option<Start>,
    stop: &mut Stop,
    printer: &mut Printer<W>,
) -> CmdResult {
    let dir = cli.dir();
    let view = crate::open_view(&dir)?;
    let start = start.unwrap_or(Start::Beginning);
    let open_part = |p: u32, start: Start| -> Result<Part, Failure> {
        let v = PartitionView::open(dir.join(format!("{}-{p}", a.topic)))?;
        let next = resolve(start, &a.topic, &v, p)?;
        Ok(Part {
            reader: Some(v.reader(next)?),
            state: PartState {
                partition: p,
                next,
                done: false,
                committed: (a.isolation_level == Isolation::ReadCommitted).then(Committed::default),
            },
        })
    };
    let n = view.topic_config(&a.topic)?.get_partitions();
    let mut parts = Vec::new();
    if a.partitions.is_empty() {
        for p in 0..n {
            parts.push(open_part(p, start)?);
        }
    } else {
        for &p in &a.partitions {
            if p >= n {
                return Err(Failure::Error(format!(
                    "topic {:?} has no partition {p} (it has {n})",
                    a.topic
                )));
            }
            parts.push(open_part(p, start)?);
        }
    }
    loop {
        let mut progressed = false;
        for part in parts.iter_mut() {
            if part.state.done {
                continue;
            }
            let Some(reader) = part.reader.as_mut() else {
                continue;
            };
            // One batch per partition per turn, so that partitions interleave.
            match reader.next_batch()? {
                Some(batch) => {
                    progressed = true;
                    let state = &mut part.state;
                    print_batch(&a.topic, state, &batch, stop, printer)?;
                    state.next = state.next.max(batch.last_offset() + 1);
                }
                None => part.reader = None,
            }
            if stop.left == 0 {
                return Ok(());
            }
        }
        if parts.iter().all(|p| p.state.done) {
            return Ok(());
        }
        if progressed {
            continue;
        }
        if a.exit_at_end || stop.timed_out() {
            return Ok(());
        }
        // Follow: look again for what the writer has added since.
        printer.w.flush()?;
        if output_closed() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
        for part in parts.iter_mut() {
            let s = &mut part.state;
            let v = PartitionView::open(dir.join(format!("{}-{}", a.topic, s.partition)))?;
            if v.log_end_offset() > s.next {
                s.next = s.next.max(v.log_start_offset());
                part.reader = Some(v.reader(s.next)?);
            }
        }
        if a.partitions.is_empty() {
            // Partitions added since we started are read from their beginning: everything in
            // them is new.
            let now = crate::open_view(&dir)?
                .topic_config(&a.topic)?
                .get_partitions();
            for p in parts.len() as u32..now {
                parts.push(open_part(p, Start::Beginning)?);
            }
        }
    }
}

/// Prints a batch's records from `part.next` on (through read_committed's hold, if on).
fn print_batch<W: Write>(
    topic: &str,
    part: &mut PartState,
    batch: &BatchRef<'_>,
    stop: &mut Stop,
    printer: &mut Printer<W>,
) -> CmdResult {
    if batch.is_control() {
        // Transaction markers are not records (no Kafka consumer shows them); they end a
        // transaction for read_committed.
        if let (Some(c), Some(kind)) = (part.committed.as_mut(), batch.control_type()?) {
            c.end(batch.producer().producer_id, kind == ControlType::Commit);
        }
    } else if let Some(c) = part.committed.as_mut().filter(|c| c.holds(batch)) {
        c.hold(batch, part.next)?;
    } else {
        for r in batch.records()?.iter() {
            let r = r?;
            if r.offset() < part.next {
                continue;
            }
            let rec = Rec {
                topic,
                partition: part.partition,
                offset: r.offset(),
                timestamp: r.timestamp(),
                key: r.key(),
                value: r.value(),
                headers: Headers::Encoded(r.headers()),
            };
            if !emit(rec, part, stop, printer)? {
                return Ok(());
            }
        }
        return Ok(());
    }
    let Some(c) = part.committed.as_mut() else {
        return Ok(());
    };
    let mut ready = Vec::new();
    while let Some(h) = c.pop_ready() {
        ready.push(h);
    }
    for h in &ready {
        let rec = Rec {
            topic,
            partition: part.partition,
            offset: h.offset,
            timestamp: h.timestamp,
            key: h.key.as_deref(),
            value: h.value.as_deref(),
            headers: Headers::Owned(&h.headers),
        };
        if !emit(rec, part, stop, printer)? {
            return Ok(());
        }
    }
    Ok(())
}

/// Prints one record unless a stop condition says otherwise; false once nothing more of this
/// partition may be printed.
fn emit<W: Write>(
    rec: Rec<'_>,
    part: &mut PartState,
    stop: &mut Stop,
    printer: &mut Printer<W>,
) -> Result<bool, Failure> {
    if stop.left == 0 || part.done {
        return Ok(false);
    }
    if stop.at_time.is_some_and(|t| rec.timestamp >= t) {
        part.done = true;
        return Ok(false);
    }
    printer.print(rec)?;
    stop.left -= 1;
    stop.last_record = Instant::now();
    Ok(true)
}

fn consume_group<W: Write>(
    cli: &Cli,
    a: &ConsumeArgs,
    group: &str,
    start: Option<Start>,
    stop: &mut Stop,
    printer: &mut Printer<W>,
) -> CmdResult {
    let reset = match start.unwrap_or(Start::Beginning) {
        Start::Beginning => OffsetReset::Earliest,
        Start::End => OffsetReset::Latest,
        Start::Stored => OffsetReset::None,
        _ => {
            return Err(usage(
                "with -g, -o can only be beginning, end (where the group has no committed \
                 offset) or stored (fail where it has none); move a group with `groups \
                 reset-offsets`",
            ))
        }
    };
    if !a.partitions.is_empty() {
        return Err(usage(
            "with -g the group assigns the partitions; -p is for reading without a group",
        ));
    }
    let dir = cli.dir();
    if let riverbed::inspect::LockState::Held { pid } = riverbed::inspect::lock_state(&dir) {
        // One process holds a store, so every member of a group lives in that process.
        return Err(Failure::Error(format!(
            "{} is in use by process {}: a consumer group's members all live in the process \
             that holds the store, so `consume -g` cannot join a group beside it. Read without \
             -g (no lock needed); many processes in one group need the Kafka wire front",
            dir.display(),
            pid.map_or_else(|| "unknown".into(), |p| p.to_string())
        )));
    }
    let store = open_store(&dir, false)?;
    store.describe_topic(&a.topic)?;
    let isolation = match a.isolation_level {
        Isolation::ReadUncommitted => IsolationLevel::ReadUncommitted,
        Isolation::ReadCommitted => IsolationLevel::ReadCommitted,
    };
    let mut consumer = store.consumer(
        ConsumerConfig::new(group)
            .auto_offset_reset(reset)
            .isolation_level(isolation)
            .enable_auto_commit(false),
    )?;
    consumer.subscribe(&[a.topic.as_str()])?;
    // What this command last committed, so that only changes are written.
    let mut committed: HashMap<TopicPartition, u64> = HashMap::new();
    let mut done: Vec<TopicPartition> = Vec::new();
    let outcome = loop {
        let records = consumer.poll(Duration::from_millis(200))?;
        // The first record of each partition that was fetched but not printed (a count or a
        // stop time reached): the position goes back to it before the commit.
        let mut unprinted: HashMap<TopicPartition, u64> = HashMap::new();
        for r in records.iter() {
            let tp = TopicPartition::new(r.topic(), r.partition());
            if unprinted.contains_key(&tp) {
                continue;
            }
            if !done.contains(&tp) && stop.at_time.is_some_and(|t| r.timestamp() >= t) {
                done.push(tp.clone());
            }
            let printed = stop.left > 0 && !done.contains(&tp);
            if !printed {
                unprinted.insert(tp, r.offset());
                continue;
            }
            printer.print(Rec {
                topic: r.topic(),
                partition: r.partition(),
                offset: r.offset(),
                timestamp: r.timestamp(),
                key: r.key(),
                value: r.value(),
                headers: Headers::Encoded(r.headers()),
            })?;
            stop.left -= 1;
            stop.last_record = Instant::now();
        }
        printer.w.flush()?;
        for (tp, offset) in &unprinted {
            consumer.seek(tp, *offset)?;
        }
        commit_positions(&mut consumer, &mut committed)?;
        let assigned = consumer.assignment().to_vec();
        if stop.left == 0 || (!assigned.is_empty() && assigned.iter().all(|tp| done.contains(tp))) {
            break Ok(());
        }
        if records.is_empty() {
            if stop.timed_out() || output_closed() {
                break Ok(());
            }
            if a.exit_at_end && !assigned.is_empty() {
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
        }
    };
    consumer.close()?;
    outcome
}

/// Commits the position of every assigned partition that moved since the last commit,
/// including positions that moved by a reset alone (`-o end` on a new group), as Kafka's
/// consumers commit their positions: the next run starts there.
fn commit_positions(
    consumer: &mut riverbed::Consumer,
    committed: &mut HashMap<TopicPartition, u64>,
) -> CmdResult {
    let mut offsets = Vec::new();
    for tp in consumer.assignment().to_vec() {
        let position = consumer.position(&tp)?;
        if committed.get(&tp) != Some(&position) {
            offsets.push((tp, OffsetAndMetadata::new(position)));
        }
    }
    if !offsets.is_empty() {
        consumer.commit_offsets(&offsets)?;
        for (tp, o) in offsets {
            committed.insert(tp, o.offset);
        }
    }
    Ok(())
}
