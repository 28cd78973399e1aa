//! The controller quorum in the broker process: starting it on
//! `metadata.log.dir`, and the metadata log's upkeep (snapshots, retention).
//!
//! Start-up (`cluster-design.md` §1.8): a metadata log written before the
//! quorum (the single-node store, JSON or binary) is imported once as a
//! snapshot (`quorum::import`); then the node starts with its voter set. The
//! embedded default (`rivulet serve` with no quorum configured) and a static
//! quorum of this node alone are a single voter with no network: it leads at
//! once, and after a restart its committed vote restores it as leader without
//! an election. Quorums with other voters wait for the controller listener
//! (step L1).
//!
//! Upkeep: a snapshot after `metadata.log.max.record.bytes.between.snapshots`
//! bytes, or `metadata.log.max.snapshot.interval.ms` with anything new
//! (`controller_state::SnapshotTrigger`); then `metadata.max.retention.*`:
//! the log is purged to the oldest snapshot kept and older snapshots go.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use protocol::time::Clock;
use quorum::network::BoxFuture;
use quorum::{Quorum, QuorumConfig, QuorumTransport, Retention, Role, TransportError, Voter};
use storage::log_manager::METADATA_LOG_PREFIX;
use storage::LogEnv;
use tokio::sync::watch;

use crate::cluster_config::{MetadataLogSettings, QuorumMode};
use crate::config::BrokerConfig;
use crate::controller_state::{SnapshotTrigger, METADATA_VERSION};
use crate::runtime::blocking;

/// How long start-up waits for the single voter to lead. It leads at once;
/// this bounds a broken start.
const LEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the upkeep looks at the clock when nothing is applied.
const UPKEEP_TICK_MAX: Duration = Duration::from_secs(60);

/// Why the quorum could not start.
#[derive(Debug, thiserror::Error)]
pub enum QuorumStartError {
    #[error(transparent)]
    Quorum(#[from] quorum::QuorumError),
    #[error("importing the metadata log written before the quorum failed: {0}")]
    Import(quorum::StoreError),
    #[error("reading {path}: {reason}")]
    Bootstrap { path: PathBuf, reason: String },
}

/// The quorum's transport while a node is its only voter: there is nobody to
/// call (multi-node quorums get the controller listener in step L1).
struct NoPeers;

impl QuorumTransport for NoPeers {
    fn call(
        &self,
        to: u64,
        _addr: &Voter,
        _api_key: i16,
        _body: Bytes,
        _timeout: Duration,
    ) -> BoxFuture<Result<Bytes, TransportError>> {
        Box::pin(async move { Err(TransportError::Unreachable(to)) })
    }
}

/// The metadata log's directory under `metadata.log.dir`.
pub fn metadata_log_dir(config: &BrokerConfig) -> PathBuf {
    config
        .metadata_log_dir
        .join(format!("{METADATA_LOG_PREFIX}-0"))
}

/// The voters of this node's quorum, with their controller endpoints.
fn voters(config: &BrokerConfig) -> BTreeMap<u64, Voter> {
    let own = u64::try_from(config.node_id).unwrap_or_default();
    match &config.cluster.quorum {
        QuorumMode::Static(voters) => voters
            .iter()
            .filter_map(|v| Some((u64::try_from(v.id).ok()?, Voter::new(&v.host, v.port))))
            .collect(),
        QuorumMode::Embedded | QuorumMode::Dynamic(_) => {
            let endpoint = config
                .cluster
                .controller_listeners
                .first()
                .map(|l| Voter::new(&l.host, l.port))
                .unwrap_or_default();
            [(own, endpoint)].into()
        }
    }
}

/// The quorum's settings from this node's config.
pub fn quorum_config(config: &BrokerConfig, cluster_id: &str) -> QuorumConfig {
    let timeouts = &config.cluster.quorum_timeouts;
    QuorumConfig {
        node_id: u64::try_from(config.node_id).unwrap_or_default(),
        cluster_id: cluster_id.to_string(),
        voters: voters(config),
        fetch_timeout_ms: u64::from(timeouts.fetch_timeout_ms),
        election_backoff_max_ms: u64::from(timeouts.election_backoff_max_ms),
        request_timeout_ms: u64::from(timeouts.request_timeout_ms),
    }
}

/// The feature levels in `bootstrap.checkpoint`; `metadata.version` at the
/// level `storage format` writes when the file is missing (a data dir
/// formatted before the file existed).
pub fn bootstrap_features(
    env: &LogEnv,
    metadata_dir: &Path,
) -> Result<BTreeMap<String, i16>, QuorumStartError> {
    match quorum::bootstrap::read_bootstrap(&*env.fs, metadata_dir) {
        Ok(Some(features)) => Ok(features),
        Ok(None) => Ok([(
            METADATA_VERSION.to_string(),
            crate::storage_format::METADATA_VERSION_LEVEL,
        )]
        .into()),
        Err(e) => Err(QuorumStartError::Bootstrap {
            path: metadata_dir.join(quorum::bootstrap::BOOTSTRAP_CHECKPOINT),
            reason: e.to_string(),
        }),
    }
}

/// Imports a pre-quorum log if there is one, starts the node, and waits until
/// a single voter leads and has applied its whole log (the broker's metadata
/// has caught up: only then may it act on the image).
pub async fn start(
    config: &BrokerConfig,
    cluster_id: &str,
    env: &LogEnv,
) -> Result<Arc<Quorum>, QuorumStartError> {
    let quorum_config = quorum_config(config, cluster_id);
    let dir = metadata_log_dir(config);
    {
        let env = env.clone();
        let dir = dir.clone();
        let voter_ids: std::collections::BTreeSet<u64> =
            quorum_config.voters.keys().copied().collect();
        let members = quorum_config.voters.clone();
        blocking(move || {
            let voters = quorum::VoterSet::new(vec![voter_ids], members);
            quorum::import::import_pre_quorum_log(&env, &dir, voters)
        })
        .await
        .map_err(QuorumStartError::Import)?;
    }
    let quorum = Quorum::start(&quorum_config, &dir, env, Arc::new(NoPeers)).await?;
    if quorum_config.voters.len() == 1 {
        quorum
            .wait_until(LEAD_TIMEOUT, "the single voter to lead", |s| {
                s.role == Role::Leader && s.leader == Some(quorum_config.node_id)
            })
            .await?;
        // openraft re-applies the log after the newest snapshot once it runs;
        // until then the image is the snapshot's, older than what the broker's
        // logs were made under. Nothing may act on it: the replica manager
        // would delete the logs of topics it does not show yet. A leader has
        // committed its whole log, so "caught up" is "all of it applied".
        quorum
            .wait_until(LEAD_TIMEOUT, "the metadata log to be applied", |s| {
                s.last_applied_index == s.last_log_index
            })
            .await?;
    }
    Ok(Arc::new(quorum))
}

/// Snapshots and retention of the metadata log, until shutdown.
pub async fn run_upkeep(
    quorum: Arc<Quorum>,
    settings: MetadataLogSettings,
    clock: Arc<dyn Clock>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut images = quorum.images();
    let mut trigger = SnapshotTrigger::new(
        settings.max_record_bytes_between_snapshots,
        settings.max_snapshot_interval_ms,
        quorum.progress().applied_bytes(),
        clock.now_ms(),
    );
    let retention = Retention {
        max_bytes: settings.max_retention_bytes,
        max_ms: settings.max_retention_ms,
    };
    let tick =
        Duration::from_millis(settings.max_snapshot_interval_ms.max(100)).min(UPKEEP_TICK_MAX);
    let mut timer = tokio::time::interval(tick);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    timer.tick().await;
    loop {
        let retire = tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            changed = images.changed() => {
                if changed.is_err() {
                    return;
                }
                false
            }
            _ = timer.tick() => true,
        };
        if trigger.decide(quorum.progress().applied_bytes(), clock.now_ms()) {
            if let Err(e) = quorum.snapshot().await {
                tracing::warn!(error = %e, "triggering a metadata snapshot failed");
            }
        }
        if retire {
            if let Err(e) = quorum
                .apply_retention(retention, clock.now_ms(), LEAD_TIMEOUT)
                .await
            {
                tracing::warn!(error = %e, "metadata log retention failed");
            }
        }
    }
}
