//! Formatting log directories (`rivulet storage format`, Kafka's
//! `kafka-storage.sh format`) and checking them at start-up.
//!
//! Format writes `meta.properties` (cluster id, node id, a fresh directory id)
//! into every `log.dirs` entry and `metadata.log.dir`; already formatted
//! directories are an error unless `--ignore-formatted` (Kafka's `Formatter`).
//! The metadata directory also gets the quorum's bootstrap files, as Kafka's:
//! `bootstrap.checkpoint` (the `metadata.version` the first active controller
//! writes) and, with `--standalone` / `--initial-controllers`, the voter set as
//! the `0-0` snapshot of `__cluster_metadata-0`.
//!
//! Start-up (Kafka's `KafkaRaftServer.initializeLogDirs`): every directory must be
//! formatted for this node and agree on the cluster id, or the node refuses to
//! start and says why. The embedded single node (no quorum configured) formats its
//! own empty directories instead, with a random cluster id the first time, so that
//! `rivulet serve` needs no preparation.

use std::io::Write;
use std::path::PathBuf;

use protocol::random::{OsRandom, Random};
use storage::log_manager::{uuid_from_kafka, uuid_to_kafka, METADATA_LOG_PREFIX};
use storage::meta_properties::{
    random_kafka_uuid, Ensemble, MetaProperties, MetaPropertiesError, VerifyFlags,
};
use uuid::Uuid;

use crate::cluster_config::QuorumMode;
use crate::config::BrokerConfig;

/// The `metadata.version` a new cluster starts at: Kafka 4.1's latest production
/// level (`IBP_4_1_IV1`).
pub const METADATA_VERSION_LEVEL: i16 = 27;
pub const METADATA_VERSION_NAME: &str = "4.1-IV1";

/// Why formatting or the start-up check failed; the text is for the operator.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Meta(#[from] MetaPropertiesError),
}

fn refused(message: impl Into<String>) -> FormatError {
    FormatError::Refused(message.into())
}

/// One voter of `--initial-controllers` (`id@host:port:directory-id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialController {
    pub id: i32,
    pub host: String,
    pub port: u16,
    pub directory_id: Uuid,
}

/// How the quorum's first voters are given to `format` (Kafka's mutually exclusive
/// `--standalone`, `--initial-controllers`, `--no-initial-controllers`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum InitialControllers {
    #[default]
    Unspecified,
    Standalone,
    List(Vec<InitialController>),
    None,
}

/// `rivulet storage format`'s arguments.
#[derive(Debug, Clone)]
pub struct FormatOptions {
    pub cluster_id: String,
    pub ignore_formatted: bool,
    pub initial_controllers: InitialControllers,
}

/// Checks a cluster id as Kafka's `Uuid.fromString` does: base64url of 16 bytes.
pub fn check_cluster_id(text: &str) -> Result<Uuid, FormatError> {
    if text.len() > 24 {
        return Err(refused(format!(
            "Input string with prefix `{}` is too long to be decoded as a base64 UUID",
            &text[..24]
        )));
    }
    uuid_from_kafka(text).ok_or_else(|| {
        refused(format!(
            "Input string `{text}` is not a base64-encoded UUID of 16 bytes"
        ))
    })
}

/// A new random cluster id as `kafka-storage.sh random-uuid` prints it.
pub fn random_uuid() -> String {
    uuid_to_kafka(&random_kafka_uuid(|| OsRandom.uuid()))
}

/// Parses `--initial-controllers` (`id@host:port:dirid,...`).
pub fn parse_initial_controllers(text: &str) -> Result<Vec<InitialController>, FormatError> {
    let mut voters: Vec<InitialController> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = |why: &str| refused(format!("Unable to parse {entry}: {why}"));
        let (id, rest) = entry.split_once('@').ok_or_else(|| bad("no @ found"))?;
        let id: i32 = id.parse().map_err(|_| bad("the node id is not a number"))?;
        let (address, directory) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad("no directory id found"))?;
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| bad("no port found"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| bad("the port is not a number"))?;
        let directory_id =
            uuid_from_kafka(directory).ok_or_else(|| bad("the directory id is not a UUID"))?;
        if host.is_empty() {
            return Err(bad("no hostname found"));
        }
        if voters.iter().any(|v| v.id == id) {
            return Err(refused(format!(
                "Node id {id} was specified more than once."
            )));
        }
        voters.push(InitialController {
            id,
            host: host.to_string(),
            port,
            directory_id,
        });
    }
    if voters.is_empty() {
        return Err(refused("No voters given."));
    }
    Ok(voters)
}

/// Every directory this node uses: `log.dirs`, then `metadata.log.dir` if apart.
fn directories(config: &BrokerConfig) -> Vec<PathBuf> {
    let mut dirs = config.log_dirs.clone();
    if !dirs.contains(&config.metadata_log_dir) {
        dirs.push(config.metadata_log_dir.clone());
    }
    dirs
}

/// Formats this node's directories; what it does goes to `out`, as Kafka prints it.
pub fn format(
    config: &BrokerConfig,
    options: &FormatOptions,
    out: &mut dyn Write,
) -> Result<(), FormatError> {
    check_cluster_id(&options.cluster_id)?;
    let node_id = config.node_id;
    let cluster = &config.cluster;
    let voters = match &options.initial_controllers {
        InitialControllers::Standalone => {
            if !cluster.process_roles.controller {
                return Err(refused("You can only use --standalone on a controller."));
            }
            let listener = cluster
                .controller_listeners
                .first()
                .ok_or_else(|| refused("No controller listeners found."))?;
            let host = if listener.host.is_empty() {
                "localhost".to_string()
            } else {
                listener.host.clone()
            };
            Some(vec![InitialController {
                id: node_id,
                host,
                port: listener.port,
                directory_id: random_kafka_uuid(|| OsRandom.uuid()),
            }])
        }
        InitialControllers::List(list) => Some(list.clone()),
        InitialControllers::Unspecified => {
            if cluster.process_roles.controller && matches!(cluster.quorum, QuorumMode::Dynamic(_))
            {
                return Err(refused("Because controller.quorum.voters is not set on this controller, you must specify one of the following: --standalone, --initial-controllers, or --no-initial-controllers."));
            }
            None
        }
        InitialControllers::None => None,
    };
    let dirs = directories(config);
    let ensemble = Ensemble::load(&dirs, Some(&config.metadata_log_dir))?;
    ensemble.verify(
        Some(&options.cluster_id),
        Some(node_id),
        VerifyFlags::default(),
    )?;
    if !options.ignore_formatted {
        if let Some(first) = ensemble.props.keys().next() {
            return Err(refused(format!("Log directory {} is already formatted. Use --ignore-formatted to ignore this directory and format the others.", first.display())));
        }
    }
    for dir in ensemble.errors.keys() {
        writeln!(
            out,
            "I/O error trying to read log directory {}. Ignoring...",
            dir.display()
        )
        .ok();
    }
    if !ensemble.errors.is_empty() && ensemble.empty.is_empty() && ensemble.props.is_empty() {
        return Err(refused("No available log directories to format."));
    }
    if ensemble.empty.is_empty() {
        writeln!(out, "All of the log directories are already formatted.").ok();
        return Ok(());
    }
    let mut used = ensemble.directory_ids();
    let initial_voters = voters.as_deref().map(voter_set);
    for dir in &ensemble.empty {
        let own_voter = voters
            .as_ref()
            .and_then(|v| v.iter().find(|v| v.id == node_id));
        let (kind, directory_id) = if *dir != config.metadata_log_dir {
            ("data directory", None)
        } else {
            match (&voters, own_voter) {
                (None, _) => ("metadata directory", None),
                (Some(_), Some(voter)) => {
                    ("dynamic metadata voter directory", Some(voter.directory_id))
                }
                (Some(_), None) => ("dynamic metadata directory", None),
            }
        };
        let directory_id = directory_id.unwrap_or_else(|| {
            random_kafka_uuid(|| fresh_directory_id(&used, &|| OsRandom.uuid()))
        });
        used.insert(directory_id);
        writeln!(
            out,
            "Formatting {kind} {} with metadata.version {METADATA_VERSION_NAME}.",
            dir.display()
        )
        .ok();
        MetaProperties::v1(&options.cluster_id, node_id, directory_id).write(dir)?;
        if *dir == config.metadata_log_dir {
            write_bootstrap_files(dir, initial_voters.clone())?;
        }
    }
    Ok(())
}

/// The quorum's voter set from `--standalone` / `--initial-controllers`.
fn voter_set(voters: &[InitialController]) -> quorum::VoterSet {
    let nodes: std::collections::BTreeMap<u64, quorum::Voter> = voters
        .iter()
        .filter_map(|v| {
            Some((
                u64::try_from(v.id).ok()?,
                quorum::Voter::new(&v.host, v.port),
            ))
        })
        .collect();
    let ids = nodes.keys().copied().collect();
    quorum::VoterSet::new(vec![ids], nodes)
}

/// Writes the quorum's bootstrap files into the metadata directory `dir`:
/// `bootstrap.checkpoint` with `metadata.version`, and the initial voter set.
fn write_bootstrap_files(
    dir: &std::path::Path,
    voters: Option<quorum::VoterSet>,
) -> Result<(), FormatError> {
    let fs = storage::fs::RealFs::shared();
    let now_ms = protocol::time::Clock::now_ms(&crate::clock::SystemClock);
    let features = [(
        crate::controller_state::METADATA_VERSION.to_string(),
        METADATA_VERSION_LEVEL,
    )]
    .into();
    let failed = |what: &str, e: std::io::Error| {
        refused(format!("Cannot write {what} in {}: {e}", dir.display()))
    };
    quorum::bootstrap::write_bootstrap(&*fs, dir, &features, now_ms)
        .map_err(|e| failed(quorum::bootstrap::BOOTSTRAP_CHECKPOINT, e))?;
    if let Some(voters) = voters {
        let log_dir = dir.join(format!("{METADATA_LOG_PREFIX}-0"));
        quorum::bootstrap::write_initial_voters(&fs, &log_dir, voters, now_ms)
            .map_err(|e| failed("the initial voter set", e))?;
    }
    Ok(())
}

/// A random directory id not used by another directory of this node.
fn fresh_directory_id(
    used: &std::collections::BTreeSet<Uuid>,
    new_uuid: &dyn Fn() -> Uuid,
) -> Uuid {
    loop {
        let id = new_uuid();
        if !used.contains(&id) {
            return id;
        }
    }
}

/// Checks this node's directories before it starts, and returns the cluster id.
///
/// With a configured quorum every directory must be formatted (by `rivulet storage
/// format`) for this node id and one cluster id. The embedded node formats what is
/// not formatted yet, keeping the cluster id it already has.
/// `new_uuid` draws the random ids (cluster and directory ids) it needs.
pub fn check_at_start(
    config: &BrokerConfig,
    new_uuid: &dyn Fn() -> Uuid,
) -> Result<String, FormatError> {
    let dirs = directories(config);
    let metadata_dir = &config.metadata_log_dir;
    let ensemble = Ensemble::load(&dirs, Some(metadata_dir))?;
    let embedded = config.cluster.quorum == QuorumMode::Embedded;
    let flags = VerifyFlags {
        require_at_least_one_valid: !embedded,
        require_metadata_log_dir: true,
    };
    ensemble.verify(None, Some(config.node_id), flags)?;
    for dir in ensemble.props.keys().filter(|d| *d != metadata_dir) {
        let misplaced = dir.join(format!("{METADATA_LOG_PREFIX}-0"));
        if misplaced.exists() {
            return Err(refused(format!("Found unexpected metadata location in data directory `{}` (the configured metadata directory is {}).", misplaced.display(), metadata_dir.display())));
        }
    }
    if let Some((dir, _)) = ensemble.errors.iter().next() {
        return Err(refused(format!(
            "Cannot read meta.properties in {}: {}",
            dir.display(),
            ensemble.errors[dir]
        )));
    }
    if !embedded {
        if ensemble.empty.contains(metadata_dir) && !ensemble.props.is_empty() {
            return Err(refused(format!("The metadata log directory {} is not formatted, but the data directories are: a voter that lost its metadata log may have lost its vote. Format it with `rivulet storage format` only if this node's metadata was lost on purpose.", metadata_dir.display())));
        }
        if let Some(dir) = ensemble.empty.iter().next() {
            return Err(refused(format!("No `meta.properties` found in {} (have you run `rivulet storage format` to format the directory?)", dir.display())));
        }
    }
    let cluster_id = match ensemble.cluster_id() {
        Some(id) => id.to_string(),
        None => uuid_to_kafka(&random_kafka_uuid(new_uuid)),
    };
    let mut used = ensemble.directory_ids();
    // v1 files without a directory id get one (Kafka rewrites them at start-up);
    // the embedded node formats its empty directories.
    for (dir, meta) in &ensemble.props {
        if meta.directory_id.is_none() {
            let id = random_kafka_uuid(|| fresh_directory_id(&used, new_uuid));
            used.insert(id);
            tracing::info!(dir = %dir.display(), "Rewriting meta.properties with a directory id");
            MetaProperties {
                directory_id: Some(id),
                ..meta.clone()
            }
            .write(dir)?;
        }
    }
    for dir in &ensemble.empty {
        let id = random_kafka_uuid(|| fresh_directory_id(&used, new_uuid));
        used.insert(id);
        tracing::info!(dir = %dir.display(), cluster_id = %cluster_id, "formatting log directory");
        MetaProperties::v1(&cluster_id, config.node_id, id).write(dir)?;
        if dir == metadata_dir {
            write_bootstrap_files(dir, None)?;
        }
    }
    Ok(cluster_id)
}

#[cfg(test)]
#[path = "storage_format_tests.rs"]
mod tests;
