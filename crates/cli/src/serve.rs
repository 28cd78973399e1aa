//! `rivulet serve`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use broker::clock::SystemClock;
use broker::{BrokerConfig, RunningBroker};
use clap::Args;
use tracing_subscriber::EnvFilter;

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

pub fn run(args: ServeArgs) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let file = args.config.or(args.config_positional);
    let config = match BrokerConfig::load(file.as_deref(), &args.overrides) {
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
