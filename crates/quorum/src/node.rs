//! [`Quorum`]: one controller's part in the quorum, the façade the broker uses
//! (openraft stays behind it).
//!
//! Start-up opens the metadata log and the state machine (newest snapshot),
//! starts openraft, and, when the node has nothing yet (no entry, no snapshot,
//! no vote), initialises the voter set from the configuration: every voter of
//! a new static quorum does so with the same set, which openraft allows, so
//! index 0 of every voter's log is the same `VotersRecord` batch
//! (`cluster-design.md` §1.8).
//!
//! openraft's timing comes from Kafka's keys (§1.6, and
//! [`QuorumConfig::raft_config`]): a follower elects `[fetch timeout, + election
//! backoff)` after the leader's last heartbeat, RPC deadlines are
//! `controller.quorum.request.timeout.ms`; snapshots are taken when the
//! controller asks ([`Quorum::snapshot`]) and the log is purged only when it
//! asks ([`Quorum::purge_log`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use metadata::MetadataRecord;
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{Config, Raft, ServerState, SnapshotPolicy};
use storage::LogEnv;
use tokio::sync::watch;

use crate::error::StoreError;
use crate::network::{QuorumNetwork, QuorumServer, QuorumTransport};
use crate::snapshot::{SnapshotDir, SnapshotId};
use crate::state_machine::{AppliedImage, ApplyProgress, Retention};
use crate::types::{NodeId, TypeConfig, Voter};
use crate::{MetadataLogStore, MetadataStateMachine};

/// A controller's quorum settings, from Kafka's keys.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    pub node_id: NodeId,
    pub cluster_id: String,
    /// `controller.quorum.voters`.
    pub voters: BTreeMap<NodeId, Voter>,
    /// `controller.quorum.fetch.timeout.ms` (2000).
    pub fetch_timeout_ms: u64,
    /// `controller.quorum.election.backoff.max.ms` (1000).
    pub election_backoff_max_ms: u64,
    /// `controller.quorum.request.timeout.ms` (2000).
    pub request_timeout_ms: u64,
}

impl QuorumConfig {
    /// openraft's configuration from Kafka's keys.
    ///
    /// A Kafka voter that stops hearing from its leader starts an election
    /// after `controller.quorum.fetch.timeout.ms`, and a failed election is
    /// retried after a random backoff up to `controller.quorum.election.backoff.max.ms`.
    /// An openraft follower of a known leader waits out the leader lease
    /// (`election_timeout_max`) and then a random election timeout in
    /// `[election_timeout_min, election_timeout_max)`. With
    /// `min = (fetch - backoff) / 2` and `max = (fetch + backoff) / 2`, the first
    /// election therefore comes `[fetch, fetch + backoff)` after the last
    /// heartbeat, as in Kafka, and a candidate retries after `[min, max)`.
    /// Heartbeats go every `min / 2` (at most 500 ms), well inside the lease.
    pub fn raft_config(&self) -> Result<Config, QuorumError> {
        let (min, max) = election_timeouts(self.fetch_timeout_ms, self.election_backoff_max_ms);
        Config {
            cluster_name: self.cluster_id.clone(),
            election_timeout_min: min,
            election_timeout_max: max,
            heartbeat_interval: (min / 2).clamp(1, 500),
            install_snapshot_timeout: self.request_timeout_ms,
            snapshot_policy: SnapshotPolicy::Never,
            snapshot_max_chunk_size: 1 << 20,
            max_in_snapshot_log_to_keep: u64::MAX,
            ..Config::default()
        }
        .validate()
        .map_err(|e| QuorumError::Config(e.to_string()))
    }
}

/// openraft's `(election_timeout_min, election_timeout_max)` for Kafka's fetch
/// timeout and election backoff (see [`QuorumConfig::raft_config`]).
pub fn election_timeouts(fetch_timeout_ms: u64, backoff_max_ms: u64) -> (u64, u64) {
    let fetch = fetch_timeout_ms.max(4);
    let backoff = backoff_max_ms.max(1);
    let min = (fetch.saturating_sub(backoff) / 2).max(fetch / 4).max(2);
    let max = ((fetch + backoff) / 2).max(min + 1);
    (min, max)
}

/// A controller's role in the quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Candidate,
    Follower,
    /// Not a voter (not yet initialised, or removed).
    Observer,
    Shutdown,
}

/// What a controller knows of the quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    pub node_id: NodeId,
    pub role: Role,
    /// The current term (Kafka's leader epoch of the metadata log).
    pub term: u64,
    pub leader: Option<NodeId>,
    pub last_log_index: Option<u64>,
    pub last_applied_index: Option<u64>,
    /// The last entry of this node's newest snapshot.
    pub snapshot_index: Option<u64>,
    /// The last entry purged from this node's log.
    pub purged_index: Option<u64>,
    /// On the leader, how long since a quorum last acknowledged it.
    pub millis_since_quorum_ack: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuorumError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid quorum configuration: {0}")]
    Config(String),
    /// This controller is not the leader; the leader, if known.
    #[error("not the active controller (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    /// The Raft node stopped.
    #[error("the quorum stopped: {0}")]
    Stopped(String),
    #[error("timed out waiting for {0}")]
    Timeout(String),
}

/// One controller's quorum node.
pub struct Quorum {
    node_id: NodeId,
    /// How many voters the configuration names.
    voters: usize,
    raft: Raft<TypeConfig>,
    server: QuorumServer,
    images: watch::Receiver<AppliedImage>,
    log: MetadataLogStore,
    progress: Arc<ApplyProgress>,
    snapshots: SnapshotDir,
}

fn stopped(e: impl std::fmt::Display) -> QuorumError {
    QuorumError::Stopped(e.to_string())
}

impl Quorum {
    /// Starts the node on the metadata log in `dir`.
    pub async fn start(
        config: &QuorumConfig,
        dir: &Path,
        env: &LogEnv,
        transport: Arc<dyn QuorumTransport>,
    ) -> Result<Quorum, QuorumError> {
        if !config.voters.contains_key(&config.node_id) {
            return Err(QuorumError::Config(format!(
                "node {} is not among the voters {:?}",
                config.node_id,
                config.voters.keys().collect::<Vec<_>>()
            )));
        }
        let raft_config = Arc::new(config.raft_config()?);
        let mut log = MetadataLogStore::open(dir, env)?;
        let mut sm = MetadataStateMachine::open(dir, Arc::clone(&env.fs))?;
        let images = sm.subscribe();
        let progress = sm.progress();
        let snapshots = sm.snapshot_dir();
        let fresh = log
            .get_log_state()
            .await
            .map_err(stopped)?
            .last_log_id
            .is_none()
            && log.read_vote().await.map_err(stopped)?.is_none()
            && sm.applied_state().await.map_err(stopped)?.0.is_none();
        let network = QuorumNetwork::new(
            config.node_id,
            &config.cluster_id,
            config.voters.clone(),
            transport,
        );
        let raft = Raft::new(config.node_id, raft_config, network, log.clone(), sm)
            .await
            .map_err(stopped)?;
        if fresh {
            match raft.initialize(config.voters.clone()).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(stopped(e)),
            }
        } else if config.voters.len() == 1 {
            // The only voter needs nobody's vote: a committed vote for itself
            // already made it leader at start-up (openraft ignores this then);
            // without one (a log just imported), it elects itself now rather
            // than after an election timeout.
            raft.trigger().elect().await.map_err(stopped)?;
        }
        Ok(Quorum {
            node_id: config.node_id,
            voters: config.voters.len(),
            server: QuorumServer::new(&config.cluster_id, raft.clone()),
            raft,
            images,
            log,
            progress,
            snapshots,
        })
    }

    /// How many voters the quorum has.
    pub fn voter_count(&self) -> usize {
        self.voters
    }

    /// What the state machine has applied (bytes, an open transaction).
    pub fn progress(&self) -> &ApplyProgress {
        &self.progress
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The server that answers other controllers' Raft RPCs for this node.
    pub fn server(&self) -> QuorumServer {
        self.server.clone()
    }

    /// The applied image, now and as it changes.
    pub fn images(&self) -> watch::Receiver<AppliedImage> {
        self.images.clone()
    }

    /// The metadata log (tests compare voters' logs).
    pub fn log(&self) -> &MetadataLogStore {
        &self.log
    }

    pub fn status(&self) -> QuorumStatus {
        status_of(&self.raft.metrics().borrow())
    }

    /// Waits until `condition` holds for the status, at most `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        condition: impl Fn(&QuorumStatus) -> bool,
    ) -> Result<QuorumStatus, QuorumError> {
        let mut metrics = self.raft.metrics();
        let wait = async {
            loop {
                let status = status_of(&metrics.borrow_and_update());
                if condition(&status) {
                    return Ok(status);
                }
                if metrics.changed().await.is_err() {
                    return Err(QuorumError::Stopped("the Raft node stopped".into()));
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| QuorumError::Timeout(what.to_string()))?
    }

    /// Appends `record` to the metadata log and waits until it is committed and
    /// applied here; its offset. Only the leader can.
    pub async fn propose(&self, record: MetadataRecord) -> Result<u64, QuorumError> {
        match self.raft.client_write(record).await {
            Ok(resp) => Ok(resp.log_id.index),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(QuorumError::NotLeader {
                    leader: f.leader_id,
                })
            }
            Err(e) => Err(stopped(e)),
        }
    }

    /// Appends `records` in order, each its own entry, and waits until all
    /// are committed and applied here; their offsets. Only the leader can. A
    /// failure part way leaves the earlier entries in the log: a decision of
    /// more than one record is therefore wrapped in a metadata transaction,
    /// which the next active controller aborts if it was left open.
    pub async fn propose_all(&self, records: Vec<MetadataRecord>) -> Result<Vec<u64>, QuorumError> {
        let mut pending = Vec::with_capacity(records.len());
        for record in records {
            pending.push(self.raft.client_write_ff(record).await.map_err(stopped)?);
        }
        let mut offsets = Vec::with_capacity(pending.len());
        for reply in pending {
            match reply.await.map_err(stopped)? {
                Ok(resp) => offsets.push(resp.log_id.index),
                Err(ClientWriteError::ForwardToLeader(f)) => {
                    return Err(QuorumError::NotLeader {
                        leader: f.leader_id,
                    })
                }
                Err(e) => return Err(stopped(e)),
            }
        }
        Ok(offsets)
    }

    /// The metadata log's size on disk in bytes.
    pub fn log_bytes(&self) -> u64 {
        self.log.size_in_bytes()
    }

    /// Applies `metadata.max.retention.*`: purges the log up to the oldest
    /// snapshot the limits keep, then removes the snapshots before it (Kafka's
    /// rule: the log starts where the oldest snapshot ends). The snapshot now
    /// oldest, if anything was retired.
    pub async fn apply_retention(
        &self,
        limits: Retention,
        now_ms: i64,
        timeout: Duration,
    ) -> Result<Option<SnapshotId>, QuorumError> {
        let dir = self.snapshots.clone();
        let log_bytes = self.log_bytes();
        let keep = tokio::task::spawn_blocking(move || {
            crate::state_machine::retention_point(&dir, limits, log_bytes, now_ms)
        })
        .await
        .map_err(stopped)?
        .map_err(|e| QuorumError::Store(StoreError::ReadSnapshot(e.to_string())))?;
        let Some(keep) = keep else {
            return Ok(None);
        };
        let Some(last) = keep.last_log_id() else {
            return Ok(None);
        };
        self.purge_log(last.index).await?;
        self.wait_until(timeout, "the metadata log purge", |s| {
            s.purged_index.is_some_and(|p| p >= last.index)
        })
        .await?;
        let dir = self.snapshots.clone();
        tokio::task::spawn_blocking(move || {
            crate::state_machine::remove_snapshots_before(&dir, keep)
        })
        .await
        .map_err(stopped)?
        .map_err(|e| QuorumError::Store(StoreError::WriteSnapshot(e.to_string())))?;
        tracing::info!(oldest_snapshot = %keep.file_name(), "retired old metadata snapshots and log");
        Ok(Some(keep))
    }

    /// Takes a snapshot of the applied image now.
    pub async fn snapshot(&self) -> Result<(), QuorumError> {
        self.raft.trigger().snapshot().await.map_err(stopped)
    }

    /// Lets the log go up to and including `upto` (a snapshot's last entry).
    pub async fn purge_log(&self, upto: u64) -> Result<(), QuorumError> {
        self.raft.trigger().purge_log(upto).await.map_err(stopped)
    }

    /// Stops the node.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "the Raft node did not stop cleanly");
        }
    }
}

fn status_of(m: &openraft::RaftMetrics<NodeId, Voter>) -> QuorumStatus {
    let role = if m.running_state.is_err() {
        Role::Shutdown
    } else {
        match m.state {
            ServerState::Leader => Role::Leader,
            ServerState::Candidate => Role::Candidate,
            ServerState::Follower => Role::Follower,
            ServerState::Learner => Role::Observer,
            ServerState::Shutdown => Role::Shutdown,
        }
    };
    QuorumStatus {
        node_id: m.id,
        role,
        term: m.current_term,
        leader: m.current_leader,
        last_log_index: m.last_log_index,
        last_applied_index: m.last_applied.map(|l| l.index),
        snapshot_index: m.snapshot.map(|l| l.index),
        purged_index: m.purged.map(|l| l.index),
        millis_since_quorum_ack: m.millis_since_quorum_ack,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_election_comes_when_kafkas_would() {
        // Kafka's defaults: fetch timeout 2 s, backoff up to 1 s.
        let (min, max) = election_timeouts(2_000, 1_000);
        assert_eq!((min, max), (500, 1_500));
        // Lease (max) plus a timeout in [min, max): [2 s, 3 s).
        assert_eq!((max + min, max + max), (2_000, 3_000));
        assert_eq!(election_timeouts(800, 300), (250, 550));
        // A backoff past the fetch timeout keeps a sane minimum.
        let (min, max) = election_timeouts(1_000, 3_000);
        assert_eq!(min, 250);
        assert!(max > min);
        let config = QuorumConfig {
            node_id: 1,
            cluster_id: "c".into(),
            voters: BTreeMap::new(),
            fetch_timeout_ms: 2_000,
            election_backoff_max_ms: 1_000,
            request_timeout_ms: 2_000,
        }
        .raft_config()
        .unwrap();
        assert_eq!(config.heartbeat_interval, 250);
        assert_eq!(config.cluster_name, "c");
        assert_eq!(config.max_in_snapshot_log_to_keep, u64::MAX);
    }
}
