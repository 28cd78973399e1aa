//! `rivulet`: the broker and, later, the operator's command line.
//!
//! `rivulet serve [--config server.properties] [--override key=value ...]` mirrors
//! Kafka's `kafka-server-start.sh config/server.properties --override key=value`.
//! With no configuration it is the embedded default: one node on 127.0.0.1:9092,
//! data in `./data`, topics created on first use.

mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "rivulet", version, about = "Apache Kafka, rebuilt in Rust")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a broker (single node, combined controller and broker by default).
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
    }
}
