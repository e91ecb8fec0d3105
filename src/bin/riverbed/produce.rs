//! `riverbed produce`.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use clap::Args;
use riverbed::Record;

use crate::{open_store, Cli, CmdResult, Failure};

/// Records are sent in batches of this many (or of `BATCH_BYTES`), one append per partition.
const BATCH_RECORDS: usize = 1000;
const BATCH_BYTES: usize = 256 << 10;

#[derive(Args)]
#[command(
    after_help = "Examples:\n  printf 'alice:+50\\nbob:-20\\n' | riverbed -d ./data produce payments -K :\n  \
    riverbed -d ./data produce events -f events.txt -p 0 -H source=import\n\n\
    Every record is durable (fsynced) when the command exits successfully."
)]
pub struct ProduceArgs {
    /// Topic to append to.
    topic: String,
    /// Read records from this file instead of stdin.
    #[arg(short, long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Split each line at the first SEP into key and value (lines without SEP get no key).
    #[arg(short = 'K', long = "key-delimiter", value_name = "SEP")]
    key_delimiter: Option<String>,
    /// A header for every record, KEY=VALUE (repeatable).
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// Send every record to this partition (default: by key, or sticky for keyless records).
    #[arg(short, long)]
    partition: Option<u32>,
}

pub fn run(cli: &Cli, a: &ProduceArgs) -> CmdResult {
    let mut headers = Vec::new();
    for h in &a.headers {
        let (k, v) = h
            .split_once('=')
            .ok_or_else(|| Failure::Error(format!("--header {h:?}: expected KEY=VALUE")))?;
        headers.push((k.to_string(), v.as_bytes().to_vec()));
    }
    if a.key_delimiter.as_deref() == Some("") {
        return Err(Failure::Error(
            "-K: the key delimiter must not be empty".into(),
        ));
    }
    let input: Box<dyn Read> = match &a.file {
        Some(p) => Box::new(
            std::fs::File::open(p)
                .map_err(|e| Failure::Error(format!("cannot open {}: {e}", p.display())))?,
        ),
        None => Box::new(std::io::stdin().lock()),
    };
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
    let producer = store.producer();
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut line = Vec::new();
    let mut batch = Vec::with_capacity(BATCH_RECORDS);
    let mut batch_bytes = 0;
    let mut total = 0u64;
    let delim = a.key_delimiter.as_deref().map(str::as_bytes);
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n > 0 {
            if line.last() == Some(&b'\n') {
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
            }
            let mut r = Record::new(a.topic.as_str());
            let split = delim.and_then(|d| {
                line.windows(d.len())
                    .position(|w| w == d)
                    .map(|i| (i, d.len()))
            });
            match split {
                Some((i, len)) => {
                    r = r.key(&line[..i]).value(&line[i + len..]);
                }
                None => r = r.value(line.as_slice()),
            }
            for (k, v) in &headers {
                r = r.header(k.as_str(), v.clone());
            }
            if let Some(p) = a.partition {
                r = r.partition(p);
            }
            batch_bytes += line.len() + 32;
            batch.push(r);
        }
        if batch.len() >= BATCH_RECORDS
            || batch_bytes >= BATCH_BYTES
            || (n == 0 && !batch.is_empty())
        {
            total += batch.len() as u64;
            producer.send_batch(batch.drain(..))?;
            batch_bytes = 0;
        }
        if n == 0 {
            break;
        }
    }
    producer.flush()?;
    store.flush()?;
    drop(producer);
    drop(store);
    eprintln!("produced {total} records to {}", a.topic);
    Ok(())
}
