//! `rivulet storage`: Kafka's `kafka-storage.sh` (`format`, `random-uuid`).
//!
//! ```text
//! rivulet storage random-uuid
//! rivulet storage format -t <cluster-id> -c server.properties [-g] [-s | -I <voters> | -N]
//! ```
//! Failures print Kafka's message on stderr and exit 1.

use std::path::PathBuf;
use std::process::ExitCode;

use broker::storage_format::{self, FormatOptions, InitialControllers};
use broker::BrokerConfig;
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct StorageArgs {
    #[command(subcommand)]
    command: StorageCommand,
}

#[derive(Subcommand, Debug)]
enum StorageCommand {
    /// Format the log directories of this node (meta.properties in each).
    #[command(after_help = "Examples:
  rivulet storage format -t MkU3OEVBNTcwNTJENDM2Qg -c config/server.properties
  rivulet storage format -t MkU3OEVBNTcwNTJENDM2Qg -c server.properties --ignore-formatted")]
    Format(FormatArgs),
    /// Print a new random cluster id.
    #[command(after_help = "Example:
  rivulet storage random-uuid")]
    RandomUuid,
}

#[derive(Args, Debug)]
struct FormatArgs {
    /// The server.properties of the node to format.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// The cluster id to use (from `rivulet storage random-uuid`).
    #[arg(long = "cluster-id", short = 't', value_name = "ID")]
    cluster_id: String,
    /// Skip already formatted directories rather than failing.
    #[arg(long = "ignore-formatted", short = 'g')]
    ignore_formatted: bool,
    /// Initialise a controller as a single-node dynamic quorum.
    #[arg(long, short = 's', group = "quorum")]
    standalone: bool,
    /// The initial dynamic quorum: id@host:port:directory-id,... (the same on every node).
    #[arg(
        long = "initial-controllers",
        short = 'I',
        value_name = "VOTERS",
        group = "quorum"
    )]
    initial_controllers: Option<String>,
    /// Format without a dynamic quorum topology.
    #[arg(long = "no-initial-controllers", short = 'N', group = "quorum")]
    no_initial_controllers: bool,
    /// The release version of the initial features (only the latest is supported).
    #[arg(long = "release-version", short = 'r', value_name = "VERSION")]
    release_version: Option<String>,
}

pub fn run(args: StorageArgs) -> ExitCode {
    match args.command {
        StorageCommand::RandomUuid => {
            outln!("{}", storage_format::random_uuid());
            ExitCode::SUCCESS
        }
        StorageCommand::Format(args) => match format(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("{message}");
                ExitCode::FAILURE
            }
        },
    }
}

fn format(args: FormatArgs) -> Result<(), String> {
    if let Some(version) = &args.release_version {
        if version != storage_format::METADATA_VERSION_NAME {
            return Err(format!(
                "Unknown release version '{version}'. Supported versions are: {0} to {0}",
                storage_format::METADATA_VERSION_NAME
            ));
        }
    }
    let config = BrokerConfig::load(Some(&args.config), &[]).map_err(|e| e.to_string())?;
    let initial_controllers = if args.standalone {
        InitialControllers::Standalone
    } else if let Some(text) = &args.initial_controllers {
        InitialControllers::List(
            storage_format::parse_initial_controllers(text).map_err(|e| e.to_string())?,
        )
    } else if args.no_initial_controllers {
        InitialControllers::None
    } else {
        InitialControllers::Unspecified
    };
    let options = FormatOptions {
        cluster_id: args.cluster_id,
        ignore_formatted: args.ignore_formatted,
        initial_controllers,
    };
    storage_format::format(&config, &options, &mut std::io::stdout()).map_err(|e| e.to_string())
}
