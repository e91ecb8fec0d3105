//! `riverbed produce`.
//!
//! A reader thread splits the input into messages; the main thread sends them in batches. A
//! batch goes out when it is full or when its first message has waited `--linger-ms` (kcat's
//! producer lingers 5 ms too), so streamed input (`tail -f`, a fifo, a person typing) reaches
//! consumers at once rather than at the end of the input. SIGINT and SIGTERM send what was read,
//! make it durable, and end the command.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use riverbed::{ErrorKind, Producer, ProducerRecord};

use crate::out::unescape;
use crate::{open_store, usage, Cli, CmdResult, Failure};

/// Records are sent in batches of at most this many (or of `BATCH_BYTES`), one append per
/// partition.
const BATCH_RECORDS: usize = 1000;
const BATCH_BYTES: usize = 256 << 10;

#[derive(Args)]
#[command(
    after_help = "Examples:\n  printf 'alice:+50\\nbob:-20\\n' | riverbed -d ./data produce payments -K :\n  \
    riverbed -d ./data produce events -f events.txt -p 0 -H source=import\n  \
    tail -f app.log | riverbed -d ./data produce logs        # each line within ~5 ms\n  \
    printf 'user-1:\\n' | riverbed -d ./data produce users -K : -Z   # a tombstone for user-1\n  \
    riverbed -d ./data produce blobs photo.jpg notes.txt     # each file one message\n\n\
    A message that cannot be sent (too large, no key for a compacted topic) is reported with its\n\
    line number and the rest are sent; the exit status is then 1 (--stop-on-error stops there).\n\
    Every record is durable (fsynced) when the command exits, also after SIGINT or SIGTERM,\n\
    which send what was read first."
)]
pub struct ProduceArgs {
    /// Topic to append to.
    topic: String,
    /// Files to send whole, each as one message (kcat's convention); without them, messages are
    /// read from -f or stdin.
    #[arg(value_name = "FILE", conflicts_with = "file")]
    whole_files: Vec<PathBuf>,
    /// Read messages from this file instead of stdin, one per line (or per -D).
    #[arg(short, long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Split each message at the first SEP into key and value (messages without SEP get no
    /// key). Escapes: \t \n \r \0 \\ \xNN.
    #[arg(short = 'K', long = "key-delimiter", value_name = "SEP")]
    key_delimiter: Option<String>,
    /// Messages are separated by DELIM instead of a newline (kcat -D; same escapes as -K).
    #[arg(short = 'D', long = "delimiter", value_name = "DELIM")]
    delimiter: Option<String>,
    /// Send empty keys and values as null (kcat -Z): `key:` with -K : is a tombstone.
    #[arg(short = 'Z', long = "null")]
    null: bool,
    /// A header for every record, KEY=VALUE (repeatable).
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// Send every record to this partition (default: by key, or sticky for keyless records).
    #[arg(short, long)]
    partition: Option<u32>,
    /// How long a message waits for others to join its batch.
    #[arg(long = "linger-ms", value_name = "MS", default_value_t = 5)]
    linger_ms: u64,
    /// Stop at the first message that cannot be sent (the ones before it are sent).
    #[arg(long)]
    stop_on_error: bool,
}

/// One message read: where it came from (for error messages) and its bytes.
struct Message {
    origin: String,
    bytes: Vec<u8>,
}

/// How a message is split and stamped into a record.
struct Shape {
    topic: String,
    key_delimiter: Option<Vec<u8>>,
    null: bool,
    headers: Vec<(String, Vec<u8>)>,
    partition: Option<u32>,
}

impl Shape {
    fn record(&self, m: &[u8]) -> ProducerRecord {
        let split = self.key_delimiter.as_deref().and_then(|d| {
            m.windows(d.len())
                .position(|w| w == d)
                .map(|i| (&m[..i], &m[i + d.len()..]))
        });
        let (key, value) = match split {
            Some((k, v)) => (Some(k), v),
            None => (None, m),
        };
        let mut r = ProducerRecord::new(self.topic.as_str());
        match key {
            Some(k) if !(self.null && k.is_empty()) => r = r.key(k),
            _ => {}
        }
        if !(self.null && value.is_empty()) {
            r = r.value(value);
        }
        for (k, v) in &self.headers {
            r = r.header(k.as_str(), v.clone());
        }
        if let Some(p) = self.partition {
            r = r.partition(p);
        }
        r
    }
}

pub fn run(cli: &Cli, a: &ProduceArgs) -> CmdResult {
    let mut headers = Vec::new();
    for h in &a.headers {
        let (k, v) = h
            .split_once('=')
            .ok_or_else(|| usage(format!("--header {h:?}: expected KEY=VALUE")))?;
        headers.push((k.to_string(), v.as_bytes().to_vec()));
    }
    let key_delimiter = match &a.key_delimiter {
        Some(k) => {
            let d = unescape(k).map_err(|e| usage(format!("-K: {e}")))?;
            if d.is_empty() {
                return Err(usage("-K: the key delimiter must not be empty"));
            }
            Some(d)
        }
        None => None,
    };
    let delimiter = match &a.delimiter {
        Some(d) => {
            let d = unescape(d).map_err(|e| usage(format!("-D: {e}")))?;
            if d.is_empty() {
                return Err(usage("-D: the message delimiter must not be empty"));
            }
            d
        }
        None => b"\n".to_vec(),
    };
    let input: Box<dyn Read + Send> = match &a.file {
        Some(p) => Box::new(open_input(p)?),
        None => Box::new(std::io::stdin()),
    };
    for p in &a.whole_files {
        // Every file is checked before anything is sent.
        open_input(p)?;
    }
    let store = open_store(&cli.dir(), false)?;
    // Fail before reading input if the topic or partition does not exist.
    let d = store.describe_topic(&a.topic)?;
    if let Some(p) = a.partition {
        if p as usize >= d.partitions.len() {
            return Err(Failure::Error(format!(
                "topic {:?} has no partition {p} (it has {})",
                a.topic,
                d.partitions.len()
            )));
        }
    }
    let shape = Shape {
        topic: a.topic.clone(),
        key_delimiter,
        null: a.null,
        headers,
        partition: a.partition,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| Failure::Error(format!("cannot handle signal {signal}: {e}")))?;
    }
    let messages = if a.whole_files.is_empty() {
        read_messages(input, delimiter, a.delimiter.is_none())
    } else {
        read_files(a.whole_files.clone())
    };
    let producer = store.producer();
    let mut sender = Sender {
        producer: &producer,
        shape: &shape,
        stop_on_error: a.stop_on_error,
        sent: 0,
        failed: 0,
    };
    let result = pump(
        &messages,
        &mut sender,
        Duration::from_millis(a.linger_ms),
        &stop,
    );
    // What was sent is made durable even when a later message failed.
    let (sent, failed) = (sender.sent, sender.failed);
    // `close` flushes every log and reports what dropping the store would only log (a failed
    // fsync at shutdown), and leaves clean recovery points, so the next open scans nothing.
    producer.flush()?;
    drop(producer);
    store.close()?;
    let interrupted = if stop.load(Ordering::Relaxed) {
        " (interrupted)"
    } else {
        ""
    };
    eprintln!("produced {sent} records to {}{interrupted}", a.topic);
    result?;
    if failed > 0 {
        return Err(Failure::Error(format!(
            "{failed} message(s) could not be sent (see above)"
        )));
    }
    Ok(())
}

/// Opens an input file, refusing what cannot be read as one (a directory) with its path.
fn open_input(p: &PathBuf) -> Result<std::fs::File, Failure> {
    let f = std::fs::File::open(p)
        .map_err(|e| Failure::Error(format!("cannot open {}: {e}", p.display())))?;
    let meta = f
        .metadata()
        .map_err(|e| Failure::Error(format!("cannot read {}: {e}", p.display())))?;
    if meta.is_dir() {
        return Err(Failure::Error(format!(
            "cannot read {}: it is a directory",
            p.display()
        )));
    }
    Ok(f)
}

/// Reads `input` on a thread of its own, split at `delimiter` (a trailing `\r` is dropped when
/// splitting at newlines); an unfinished last message is sent as it is.
fn read_messages(
    input: Box<dyn Read + Send>,
    delimiter: Vec<u8>,
    lines: bool,
) -> Receiver<std::io::Result<Message>> {
    let (tx, rx) = sync_channel(4 * BATCH_RECORDS);
    std::thread::spawn(move || {
        let mut reader = BufReader::with_capacity(1 << 20, input);
        let Some(&last) = delimiter.last() else {
            return;
        };
        let mut n = 0u64;
        loop {
            let mut buf = Vec::new();
            // Read up to the delimiter's last byte until the buffer ends with all of it.
            let complete = loop {
                match reader.read_until(last, &mut buf) {
                    Ok(0) => break false,
                    Ok(_) if buf.ends_with(&delimiter) => break true,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            };
            if complete {
                buf.truncate(buf.len() - delimiter.len());
                if lines && buf.last() == Some(&b'\r') {
                    buf.pop();
                }
            } else if buf.is_empty() {
                return;
            }
            n += 1;
            let origin = if lines {
                format!("line {n}")
            } else {
                format!("message {n}")
            };
            if tx.send(Ok(Message { origin, bytes: buf })).is_err() || !complete {
                return;
            }
        }
    });
    rx
}

/// Reads each file whole, as one message.
fn read_files(files: Vec<PathBuf>) -> Receiver<std::io::Result<Message>> {
    let (tx, rx) = sync_channel(4);
    std::thread::spawn(move || {
        for p in files {
            let m = std::fs::read(&p).map(|bytes| Message {
                origin: p.display().to_string(),
                bytes,
            });
            let failed = m.is_err();
            if tx.send(m).is_err() || failed {
                return;
            }
        }
    });
    rx
}

/// Sends messages as they arrive, a batch at a time.
fn pump(
    messages: &Receiver<std::io::Result<Message>>,
    sender: &mut Sender<'_>,
    linger: Duration,
    stop: &AtomicBool,
) -> CmdResult {
    let mut batch: Vec<Message> = Vec::with_capacity(BATCH_RECORDS);
    let mut batch_bytes = 0;
    let mut since: Option<Instant> = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            return sender.send(&mut batch);
        }
        // Wake up for the linger deadline, and often enough to see a signal.
        let wait = since.map_or(Duration::from_millis(50), |t| {
            linger.saturating_sub(t.elapsed())
        });
        let eof = match messages.recv_timeout(wait.min(Duration::from_millis(50))) {
            Ok(Ok(m)) => {
                batch_bytes += m.bytes.len() + 32;
                batch.push(m);
                since.get_or_insert_with(Instant::now);
                false
            }
            Ok(Err(e)) => {
                sender.send(&mut batch)?;
                return Err(Failure::Error(format!("cannot read the input: {e}")));
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        let due = since.is_some_and(|t| t.elapsed() >= linger);
        if eof || due || batch.len() >= BATCH_RECORDS || batch_bytes >= BATCH_BYTES {
            sender.send(&mut batch)?;
            batch_bytes = 0;
            since = None;
        }
        if eof {
            return Ok(());
        }
    }
}

struct Sender<'a> {
    producer: &'a Producer,
    shape: &'a Shape,
    stop_on_error: bool,
    sent: u64,
    failed: u64,
}

impl Sender<'_> {
    /// Sends and empties `batch`. A message the log refuses on its own (too large, no key for a
    /// compacted topic) is reported with its origin and the others are sent; such refusals are
    /// found before anything of the batch is written, so sending the messages one by one then
    /// writes nothing twice.
    fn send(&mut self, batch: &mut Vec<Message>) -> CmdResult {
        if batch.is_empty() {
            return Ok(());
        }
        let records: Vec<ProducerRecord> =
            batch.iter().map(|m| self.shape.record(&m.bytes)).collect();
        match self.producer.send_batch(records) {
            Ok(_) => {
                self.sent += batch.len() as u64;
                batch.clear();
                return Ok(());
            }
            Err(e) if !refuses_one_record(&e) => return Err(e.into()),
            Err(_) => {}
        }
        for m in batch.drain(..) {
            match self.producer.send(self.shape.record(&m.bytes)) {
                Ok(_) => self.sent += 1,
                Err(e) if refuses_one_record(&e) => {
                    let why = match e.kind() {
                        ErrorKind::KeyRequired { .. } => {
                            "the topic is compacted and the message has no key (split one off \
                             with -K)"
                                .to_string()
                        }
                        _ => e.to_string(),
                    };
                    eprintln!("riverbed: {}: not sent: {why}", m.origin);
                    self.failed += 1;
                    if self.stop_on_error {
                        return Err(Failure::Error(format!(
                            "stopped at {} (--stop-on-error)",
                            m.origin
                        )));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// Errors about one record, raised before any of its batch is written.
fn refuses_one_record(e: &riverbed::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::RecordTooLarge { .. } | ErrorKind::KeyRequired { .. }
    )
}
