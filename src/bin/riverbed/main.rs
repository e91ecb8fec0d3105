//! `riverbed`: see and operate a Riverbed data directory, in the spirit of kcat and Kafka's
//! `kafka-*.sh` tools. Read-only commands take no lock and write nothing, so they work beside
//! the application that has the directory open; commands that write take the lock.
//!
//! Exit status: 0 success; 1 failure (or, for `verify`, corruption found); 2 bad usage — any
//! argument the command cannot use, whether clap or the command itself finds it (or, for
//! `verify`, it could not run).

mod consume;
mod groups;
mod inspect;
mod out;
mod produce;
#[cfg(feature = "server")]
mod serve;
mod topics;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

/// See and operate a Riverbed data directory.
#[derive(Parser)]
#[command(name = "riverbed", version, about, long_about = None)]
#[command(after_help = "Examples:\n  riverbed -d ./data topics list\n  \
    seq 3 | riverbed -d ./data produce events\n  riverbed -d ./data consume events -o beginning -e\n  \
    riverbed verify ./data")]
pub struct Cli {
    /// The store directory (also from $RIVERBED_DIR).
    #[arg(
        short = 'd',
        long,
        env = "RIVERBED_DIR",
        global = true,
        value_name = "DIR"
    )]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List, create, describe, delete topics, add partitions, rebuild the metadata.
    #[command(subcommand)]
    Topics(topics::TopicsCmd),
    /// Append records, one per line, from stdin or a file.
    Produce(produce::ProduceArgs),
    /// Print records of a topic.
    Consume(consume::ConsumeArgs),
    /// List and describe consumer groups; reset or delete their offsets.
    #[command(subcommand)]
    Groups(groups::GroupsCmd),
    /// Print a segment (.log) or index (.index, .timeindex, .txnindex) file entry by entry.
    #[command(
        after_help = "Example:\n  riverbed dump ./data/events-0/00000000000000000000.log --records"
    )]
    Dump(inspect::DumpArgs),
    /// Check every batch's CRC, framing and offsets, and every index, of a store or log directory.
    #[command(after_help = "Example:\n  riverbed verify ./data && echo sound\n\n\
        Exit status: 0 sound, 1 corruption found, 2 could not run (or could not read every file).")]
    Verify(inspect::VerifyArgs),
    /// Print per-partition and per-group figures of a store directory.
    #[command(after_help = "Example:\n  riverbed stats ./data --interval 1000 --json")]
    Stats(inspect::StatsArgs),
    /// Serve the store to Kafka clients over Kafka's wire protocol (feature `server`).
    #[cfg(feature = "server")]
    Serve(serve::ServeArgs),
}

/// Options shared by commands that print.
#[derive(Args, Clone, Copy, Debug, Default)]
pub struct Output {
    /// Print JSON for scripts instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// How a command failed.
pub enum Failure {
    /// An error to report; exit 1.
    Error(String),
    /// An argument the command cannot use; exit 2, like clap's own usage errors.
    Usage(String),
    /// Already reported; exit with this status.
    Exit(u8),
}

/// A usage error (exit 2).
pub fn usage(msg: impl Into<String>) -> Failure {
    Failure::Usage(msg.into())
}

impl From<riverbed::Error> for Failure {
    fn from(e: riverbed::Error) -> Failure {
        match e.kind() {
            // The library's message suggests `auto_create_topics`, a setting of an application's
            // store; the tool's user creates topics with the tool.
            riverbed::ErrorKind::UnknownTopic { topic } => Failure::Error(format!(
                "unknown topic {topic:?} (create it with `riverbed topics create {topic}`)"
            )),
            // Settings come from the command line: a bad one is a usage error.
            riverbed::ErrorKind::InvalidConfig { .. } => Failure::Usage(e.to_string()),
            _ => Failure::Error(e.to_string()),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // `riverbed consume t | head`: the reader is gone, which is not a failure.
            return Failure::Exit(0);
        }
        Failure::Error(e.to_string())
    }
}

/// What a command returns.
pub type CmdResult = Result<(), Failure>;

impl Cli {
    /// The store directory, or a usage error (exit 2) when none was given.
    pub fn dir(&self) -> PathBuf {
        match &self.dir {
            Some(d) => d.clone(),
            None => Cli::command()
                .error(
                    clap::error::ErrorKind::MissingRequiredArgument,
                    "this command needs the store directory: --dir DIR (or RIVERBED_DIR)",
                )
                .exit(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Topics(c) => topics::run(&cli, c),
        Command::Produce(a) => produce::run(&cli, a),
        Command::Consume(a) => consume::run(&cli, a),
        Command::Groups(c) => groups::run(&cli, c),
        Command::Dump(a) => inspect::dump(a),
        Command::Verify(a) => inspect::verify(&cli, a),
        Command::Stats(a) => inspect::stats(&cli, a),
        #[cfg(feature = "server")]
        Command::Serve(a) => serve::run(&cli, a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Exit(code)) => ExitCode::from(code),
        Err(Failure::Error(msg)) => {
            let _ = writeln!(std::io::stderr(), "riverbed: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(msg)) => {
            let _ = writeln!(
                std::io::stderr(),
                "riverbed: {msg}\n(see `riverbed --help` or `riverbed COMMAND --help`)"
            );
            ExitCode::from(2)
        }
    }
}

/// Checks that `dir` is a store before a read-only command looks at it: such commands take no
/// lock and create nothing, so a mistyped path would otherwise show an empty store.
pub fn existing_store(dir: &std::path::Path) -> Result<(), Failure> {
    let meta = std::fs::metadata(dir)
        .map_err(|e| Failure::Error(format!("cannot use {} as a store: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(Failure::Error(format!(
            "{} is not a directory (a store is a directory)",
            dir.display()
        )));
    }
    // Every store has its topic metadata once a topic was created, and its committed-offsets
    // log from its first open.
    if !dir.join("topics").exists() && !dir.join("__consumer_offsets-0").exists() {
        return Err(Failure::Error(format!(
            "{} is not a Riverbed store (it has neither a `topics` file nor a              `__consumer_offsets-0` directory)",
            dir.display()
        )));
    }
    Ok(())
}

/// Opens the store for writing; a store another process holds is refused with its pid.
pub fn open_store(dir: &std::path::Path, create: bool) -> Result<riverbed::Store, Failure> {
    if !create {
        existing_store(dir)?;
    } else if dir.exists() && !dir.is_dir() {
        return Err(Failure::Error(format!(
            "{} exists and is not a directory (a store is a directory)",
            dir.display()
        )));
    }
    riverbed::Store::open(dir).map_err(|e| match e.kind() {
        riverbed::ErrorKind::Locked { pid: Some(pid), .. } => Failure::Error(format!(
            "{} is in use by process {pid}; nothing was changed (read-only commands work while it runs)",
            dir.display()
        )),
        _ => Failure::from(e),
    })
}

/// A read-only view of the store in `dir` (which must be one: see [`existing_store`]).
pub fn open_view(dir: &std::path::Path) -> Result<riverbed::inspect::StoreView, Failure> {
    existing_store(dir)?;
    Ok(riverbed::inspect::StoreView::open(dir)?)
}
