//! `riverbed serve`: the Kafka wire protocol front over a data directory, until SIGINT/SIGTERM.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use riverbed::server::{Server, ServerConfig};
use riverbed::{StoreConfig, TopicConfig};

use crate::{Cli, CmdResult, Failure};

/// Arguments of `serve`.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  riverbed -d ./data serve --listen 127.0.0.1:9092\n  \
    kcat -b 127.0.0.1:9092 -t events -P -K: <<< 'alice:+50'\n  \
    kcat -b 127.0.0.1:9092 -G billing events\n\n\
    Runs until SIGINT or SIGTERM, then finishes the requests in flight and closes the store."
)]
pub struct ServeArgs {
    /// The address to listen on (host:port). Loopback unless --allow-unauthenticated-public.
    #[arg(long, default_value = "127.0.0.1:9092", value_name = "HOST:PORT")]
    listen: String,
    /// The host:port clients are told to connect to (Kafka's advertised.listeners); default:
    /// the address bound.
    #[arg(long, value_name = "HOST:PORT")]
    advertised_listener: Option<String>,
    /// Do not create a topic when a client produces to or asks for one that does not exist
    /// (Kafka's auto.create.topics.enable=false).
    #[arg(long)]
    no_auto_create_topics: bool,
    /// Partitions of an automatically created topic (Kafka's num.partitions).
    #[arg(long, default_value_t = 1, value_name = "N")]
    partitions: u32,
    /// The most client connections at once.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    max_connections: usize,
    /// The largest request accepted, in bytes.
    #[arg(long, default_value_t = 100 * 1024 * 1024, value_name = "BYTES")]
    max_request_bytes: usize,
    /// Allow listening on a non-loopback address without authentication.
    #[arg(long)]
    allow_unauthenticated_public: bool,
}

/// Runs `serve`.
pub fn run(cli: &Cli, args: &ServeArgs) -> CmdResult {
    let dir = cli.dir();
    if args.partitions == 0 {
        return Err(crate::usage("--partitions must be at least 1"));
    }
    if dir.exists() && !dir.is_dir() {
        return Err(Failure::Error(format!(
            "{} exists and is not a directory (a store is a directory)",
            dir.display()
        )));
    }
    let store_config = StoreConfig::default()
        .auto_create_topics(!args.no_auto_create_topics)
        .default_topic(TopicConfig::new(args.partitions));
    let store = riverbed::Store::open_with(&dir, store_config).map_err(|e| match e.kind() {
        riverbed::ErrorKind::Locked { pid: Some(pid), .. } => {
            Failure::Error(format!("{} is in use by process {pid}", dir.display()))
        }
        _ => Failure::from(e),
    })?;
    let mut config = ServerConfig::new(&args.listen)
        .max_connections(args.max_connections)
        .max_request_bytes(args.max_request_bytes)
        .allow_unauthenticated_public(args.allow_unauthenticated_public);
    if let Some(a) = &args.advertised_listener {
        config = config.advertised_listener(a);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| Failure::Error(format!("cannot install a signal handler: {e}")))?;
    }
    let server = Server::start(&store, config)?;
    // Scripts wait for this line to know the port (with --listen 127.0.0.1:0).
    eprintln!(
        "riverbed: serving {} on {}",
        dir.display(),
        server.local_addr()
    );
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    server.shutdown()?;
    store.close()?;
    eprintln!("riverbed: stopped");
    Ok(())
}
