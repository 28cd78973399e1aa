//! `rivulet serve`: `kafka-server-start.sh` for Rivulet.
//!
//! Without a config file the broker runs the embedded default: Kafka's defaults,
//! except `group.initial.rebalance.delay.ms=0` as Kafka's own sample
//! `config/server.properties` sets it for a development node (a first consumer gets
//! its partitions at once instead of after 3 s). With a file, the file's values and
//! Kafka's defaults apply, as `kafka-server-start.sh` does.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use broker::clock::SystemClock;
use broker::{BrokerConfig, BrokerError, RunningBroker};
use clap::Args;
use tracing_subscriber::EnvFilter;

use crate::common::ConnectArgs;

/// What the embedded default (no config file) sets differently from Kafka's
/// built-in defaults, as Kafka's sample server.properties does.
pub const EMBEDDED_DEFAULTS: &[(&str, &str)] = &[("group.initial.rebalance.delay.ms", "0")];

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A Kafka-style server.properties file.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Set a config key, overriding the file (repeatable): --override log.dirs=/data
    #[arg(long = "override", value_name = "KEY=VALUE", value_parser = parse_override)]
    overrides: Vec<(String, String)>,
    /// The properties file may also be given as the first argument, as Kafka's script takes it.
    #[arg(value_name = "FILE", conflicts_with = "config")]
    config_positional: Option<PathBuf>,
}

fn parse_override(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

pub fn run(args: ServeArgs, connect: &ConnectArgs) -> ExitCode {
    if connect.bootstrap_server.is_some() || connect.command_config.is_some() {
        eprintln!(
            "rivulet: serve does not connect to a broker, it is one; set its address with \
             --override listeners=PLAINTEXT://HOST:PORT"
        );
        return ExitCode::from(2);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            // openraft logs every vote and state change at info (and its whole
            // state at start-up): the quorum's own messages say what matters.
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,openraft=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let file = args.config.or(args.config_positional);
    let mut overrides: Vec<(String, String)> = Vec::new();
    if file.is_none() {
        overrides.extend(
            EMBEDDED_DEFAULTS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
    }
    overrides.extend(args.overrides);
    match &file {
        Some(path) => {
            tracing::info!(config = %path.display(), "rivulet {}", env!("CARGO_PKG_VERSION"))
        }
        None => tracing::info!(
            config = "embedded default",
            "rivulet {}",
            env!("CARGO_PKG_VERSION")
        ),
    }
    let config = match BrokerConfig::load(file.as_deref(), &overrides) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("rivulet: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rivulet")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("rivulet: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        // Watch SIGTERM before starting: the listeners accept (and a supervisor may
        // stop the broker) before start-up ends, and an unwatched SIGTERM kills the
        // process without a clean shutdown.
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
        let running = match RunningBroker::start(config, Arc::new(SystemClock)).await {
            Ok(running) => running,
            Err(e) => {
                eprintln!("rivulet: cannot start: {e}");
                if let Some(hint) = start_hint(&e) {
                    eprintln!("  hint: {hint}");
                }
                return ExitCode::FAILURE;
            }
        };
        wait_for_signal(term).await;
        match running.shutdown().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rivulet: shutdown failed: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn wait_for_signal(term: std::io::Result<tokio::signal::unix::Signal>) {
    let mut term = match term {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received"),
    }
}

/// What to do about a failed start, where the error alone does not say.
fn start_hint(error: &BrokerError) -> Option<String> {
    match error {
        BrokerError::Bind { address, source }
            if source.kind() == std::io::ErrorKind::AddrInUse =>
        {
            Some(format!(
                "another process (another broker?) listens on {address}; stop it (`ss -ltnp | grep :{port}` shows which), \
                 or choose another port: --override listeners=PLAINTEXT://{ip}:{next}",
                port = address.port(),
                ip = address.ip(),
                next = address.port().wrapping_add(1).max(1024),
            ))
        }
        BrokerError::Storage(e) if e.to_string().contains("Read-only file system") => Some(
            "the log directory is on a read-only file system; point log.dirs at a writable one"
                .into(),
        ),
        BrokerError::Storage(e) if e.to_string().contains("Permission denied") => Some(
            "the broker's user cannot write the log directory; fix its owner or point log.dirs elsewhere"
                .into(),
        ),
        _ => None,
    }
}
