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
    /// Require SASL (PLAIN, SCRAM-SHA-256/512) as a user of this credentials file (format:
    /// README, "Security"); allows a non-loopback --listen.
    #[arg(long, value_name = "FILE")]
    sasl_credentials: Option<std::path::PathBuf>,
    /// Check every request against the ACLs of this file (format: README, "Security").
    #[arg(long, value_name = "FILE")]
    acl_file: Option<std::path::PathBuf>,
    /// Serve TLS with this PEM certificate chain (with --tls-key; feature `server-tls`).
    #[cfg(feature = "server-tls")]
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[cfg(feature = "server-tls")]
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
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
    if let Some(path) = &args.sasl_credentials {
        config = config.sasl(riverbed::server::Credentials::load(path)?);
    }
    if let Some(path) = &args.acl_file {
        config = config.acls(riverbed::server::Acls::load(path)?);
    }
    #[cfg(feature = "server-tls")]
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config = config.tls(riverbed::server::TlsConfig::from_pem_files(cert, key)?);
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

/// Arguments of `credential`.
#[derive(Args)]
pub struct CredentialArgs {
    /// The user name.
    user: String,
    /// The SCRAM mechanism the line is for (PLAIN logins accept either).
    #[arg(long, default_value = "SCRAM-SHA-512", value_parser = ["SCRAM-SHA-256", "SCRAM-SHA-512"])]
    mechanism: String,
    /// PBKDF2 iterations (4096..=16384; Kafka's default is 4096).
    #[arg(long, default_value_t = 8192, value_name = "N")]
    iterations: u32,
}

/// Runs `credential`: reads the password (the first line of stdin) and prints the line.
pub fn credential(args: &CredentialArgs) -> CmdResult {
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .map_err(|e| Failure::Error(format!("cannot read the password from stdin: {e}")))?;
    let password = password.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(crate::usage("no password on stdin"));
    }
    let line =
        riverbed::server::Credentials::line(&args.mechanism, &args.user, password, args.iterations)
            .map_err(|e| crate::usage(e.to_string()))?;
    println!("{line}");
    Ok(())
}
