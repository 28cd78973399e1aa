//! `rivulet`: the broker and the operator's command line, one binary for what
//! Kafka spreads over its shell scripts.
//!
//! `rivulet serve [--config server.properties] [--override key=value ...]` mirrors
//! Kafka's `kafka-server-start.sh config/server.properties --override key=value`.
//! With no configuration it is the embedded default: one node on 127.0.0.1:9092,
//! data in `./data`, topics created on first use.
//!
//! The operator commands (`topics`, `produce`, `consume`, `groups`,
//! `transactions`, `configs`, `cluster`, `perf`) take `--bootstrap-server` (or
//! `$RIVULET_BROKERS`, or a profile file) and `--command-config` as Kafka's tools
//! do, and run on the `rivulet-client` crate. A failure prints the Kafka error's
//! name, what it concerned, and a hint, and exits 1 (2 for bad arguments or input).

#[macro_use]
mod common;
mod cluster_cmds;
mod consume;
mod format;
mod groups;
mod line_reader;
mod perf;
mod produce;
mod refused;
mod serve;
mod storage_cmd;
mod topics;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::common::ConnectArgs;

const AFTER_HELP: &str = "\
Connection: --bootstrap-server (-b) before or after the command, else $RIVULET_BROKERS, \
else bootstrap.servers in the profile file ($RIVULET_PROFILE, default \
~/.config/rivulet/profile.properties), else 127.0.0.1:9092.

Examples:
  rivulet serve                                  # a single-node broker on 127.0.0.1:9092
  rivulet topics create orders -p 6
  echo 'k1:hello' | rivulet produce orders -K :
  rivulet consume orders -o beginning -e
  rivulet -b broker1:9092 groups list";

#[derive(Parser, Debug)]
#[command(
    name = "rivulet",
    version,
    about = "Apache Kafka, rebuilt in Rust: the broker and its command line",
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a broker (single node, combined controller and broker by default).
    #[command(after_help = "Examples:
  rivulet serve                                   # the embedded default: 127.0.0.1:9092, data in ./data
  rivulet serve config/server.properties
  rivulet serve --override log.dirs=/var/lib/rivulet --override listeners=PLAINTEXT://0.0.0.0:9092")]
    Serve(serve::ServeArgs),
    /// Create, list, describe, alter and delete topics (kafka-topics.sh).
    #[command(after_help = "Examples:
  rivulet topics create orders -p 6 --config retention.ms=86400000
  rivulet topics describe orders")]
    Topics(topics::TopicsArgs),
    /// Write records from stdin, one per line or JSON (kafka-console-producer.sh, kcat -P).
    #[command(after_help = produce::EXAMPLES)]
    Produce(produce::ProduceArgs),
    /// Read records to stdout (kafka-console-consumer.sh, kcat -C).
    #[command(after_help = consume::EXAMPLES)]
    Consume(consume::ConsumeArgs),
    /// Consumer groups: list, describe (lag), reset-offsets, delete-offsets, delete.
    #[command(after_help = "Examples:
  rivulet groups list
  rivulet groups describe billing
  rivulet groups reset-offsets billing --topic orders --to-earliest --execute")]
    Groups(groups::GroupsArgs),
    /// Transactions: list, describe, describe-producers, find-hanging, abort.
    #[command(after_help = "Examples:
  rivulet transactions list
  rivulet transactions find-hanging --broker-id 1")]
    Transactions(cluster_cmds::TransactionsArgs),
    /// Topic and broker configs: describe, alter (kafka-configs.sh).
    #[command(after_help = "Examples:
  rivulet configs describe --topic orders
  rivulet configs alter --topic orders --add-config 'cleanup.policy=[compact,delete]'")]
    Configs(cluster_cmds::ConfigsArgs),
    /// The cluster: describe.
    #[command(after_help = "Example:
  rivulet cluster describe")]
    Cluster(cluster_cmds::ClusterArgs),
    /// Producer and consumer performance tests.
    #[command(after_help = "Examples:
  rivulet perf produce --topic bench --num-records 100000 --record-size 100
  rivulet perf consume --topic bench --messages 100000")]
    Perf(perf::PerfArgs),
    /// Format log directories and make cluster ids (kafka-storage.sh).
    #[command(after_help = "Examples:
  rivulet storage random-uuid
  rivulet storage format -t \"$(rivulet storage random-uuid)\" -c config/server.properties")]
    Storage(storage_cmd::StorageArgs),
    /// Print the version.
    #[command(after_help = "Example:
  rivulet version")]
    Version,
    /// Print a shell completion script.
    #[command(after_help = "Examples:
  rivulet completion bash > /etc/bash_completion.d/rivulet
  rivulet completion zsh > \"${fpath[1]}/_rivulet\"
  rivulet completion fish > ~/.config/fish/completions/rivulet.fish")]
    Completion {
        /// bash, zsh or fish (also elvish, powershell).
        shell: clap_complete::Shell,
    },
}

/// Parses the command line; an unknown flag that another Kafka tool has gets a
/// pointer to ours.
fn parse() -> Cli {
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if e.kind() == clap::error::ErrorKind::UnknownArgument {
                let flag = match e.get(clap::error::ContextKind::InvalidArg) {
                    Some(clap::error::ContextValue::String(flag)) => Some(flag.clone()),
                    _ => None,
                };
                if let Some(pointer) = flag.as_deref().and_then(refused::pointer) {
                    eprintln!("rivulet: {pointer}");
                    eprintln!("  (see `rivulet help` and `rivulet <command> --help`)");
                    std::process::exit(2);
                }
            }
            e.exit()
        }
    }
}

fn main() -> ExitCode {
    let cli = parse();
    let connect = cli.connect;
    match cli.command {
        Command::Serve(args) => serve::run(args, &connect),
        Command::Topics(args) => common::run(topics::run(args, connect)),
        Command::Produce(args) => common::run(produce::run(args, connect)),
        Command::Consume(args) => common::run(consume::run(args, connect)),
        Command::Groups(args) => common::run(groups::run(args, connect)),
        Command::Transactions(args) => common::run(cluster_cmds::transactions(args, connect)),
        Command::Configs(args) => common::run(cluster_cmds::configs(args, connect)),
        Command::Cluster(args) => common::run(cluster_cmds::cluster(args, connect)),
        Command::Perf(args) => common::run(perf::run(args, connect)),
        Command::Storage(args) => storage_cmd::run(args),
        Command::Version => {
            outln!("rivulet {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Completion { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "rivulet",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command and subcommand shows an example in its help.
    #[test]
    fn every_command_has_an_example() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in command.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                let help = sub
                    .get_after_help()
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                if !help.contains("rivulet ") {
                    missing.push(path.clone());
                }
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "rivulet", &mut missing);
        assert!(missing.is_empty(), "no example in the help of: {missing:?}");
    }

    /// Every option and argument says what it is.
    #[test]
    fn every_option_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                if arg.get_help().is_none() && !matches!(arg.get_id().as_str(), "help" | "version")
                {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "rivulet", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
