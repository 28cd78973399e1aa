//! `rivulet`: the broker and the operator's command line, one binary for what
//! Kafka spreads over its shell scripts.
//!
//! `rivulet serve [--config server.properties] [--override key=value ...]` mirrors
//! Kafka's `kafka-server-start.sh config/server.properties --override key=value`.
//! With no configuration it is the embedded default: one node on 127.0.0.1:9092,
//! data in `./data`, topics created on first use.
//!
//! The operator commands (`topics`, `produce`, `consume`, `groups`,
//! `transactions`, `configs`, `cluster`, `perf`) take `--bootstrap-server` and
//! `--command-config` as Kafka's tools do, and run on the `rivulet-client` crate.
//! A failure prints the Kafka error's name, what it concerned, and a hint, and
//! exits 1 (2 for bad arguments or input).

#[macro_use]
mod common;
mod cluster_cmds;
mod consume;
mod format;
mod groups;
mod perf;
mod produce;
mod serve;
mod storage_cmd;
mod topics;

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
    /// Create, list, describe, alter and delete topics.
    Topics(topics::TopicsArgs),
    /// Write records from stdin (lines or JSON).
    Produce(produce::ProduceArgs),
    /// Read records to stdout (kcat-style formats).
    Consume(consume::ConsumeArgs),
    /// Consumer groups: list, describe (lag), reset-offsets, delete-offsets, delete.
    Groups(groups::GroupsArgs),
    /// Transactions: list, describe, describe-producers, find-hanging, abort.
    Transactions(cluster_cmds::TransactionsArgs),
    /// Topic and broker configs: describe, alter.
    Configs(cluster_cmds::ConfigsArgs),
    /// The cluster: describe.
    Cluster(cluster_cmds::ClusterArgs),
    /// Producer and consumer performance tests.
    Perf(perf::PerfArgs),
    /// Format log directories and make cluster ids (kafka-storage.sh).
    Storage(storage_cmd::StorageArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Topics(args) => common::run(topics::run(args)),
        Command::Produce(args) => common::run(produce::run(args)),
        Command::Consume(args) => common::run(consume::run(args)),
        Command::Groups(args) => common::run(groups::run(args)),
        Command::Transactions(args) => common::run(cluster_cmds::transactions(args)),
        Command::Configs(args) => common::run(cluster_cmds::configs(args)),
        Command::Cluster(args) => common::run(cluster_cmds::cluster(args)),
        Command::Perf(args) => common::run(perf::run(args)),
        Command::Storage(args) => storage_cmd::run(args),
    }
}
