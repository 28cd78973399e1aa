//! The broker's way to the controller: every metadata change (topics,
//! partitions, configs, producer ids, this broker's registration) is decided by
//! `metadata::Controller` one at a time, committed through the controller quorum
//! (`quorum::Quorum`, openraft over `__cluster_metadata-0`), acted on (the
//! replica manager hosts the partitions, [`crate::metadata_publisher`]), and
//! only then published and answered (`cluster-design.md` §1.9).
//!
//! This node proposes only while it leads the quorum. The first decision in a
//! new term activates it: it waits until everything in the log is applied,
//! then writes what activation needs (`controller_state::activation_records`).
//! Decisions are taken one at a time on the applied image (each is answered
//! once published), as KRaft's single controller thread; a leader that lost
//! its quorum, or whose records did not land at the offsets it counted,
//! resigns and answers NOT_CONTROLLER.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use metadata::controller::DeleteTarget;
use metadata::controller::PartitionOutcomes;
use metadata::{
    ClusterImage, ConfigResource, Controller, ControllerError, CreateTopicOutcome,
    DeleteTopicOutcome, MetadataRecord, PartitionIncrease, TopicImage, TopicSpec,
};
use protocol::random::Random;
use quorum::{Quorum, QuorumError, Role};
use storage::LogConfig;
use tokio::sync::Mutex as AsyncMutex;

use crate::config::BrokerConfig;
use crate::controller_state::{activation_records, entries_of, should_resign};
use crate::metadata_publisher::{PublishError, PublishedMetadata};
use crate::replica_manager::ReplicaManager;
use crate::settings::Settings;

/// How long a decision may take to commit and be acted on. The old single-node
/// store had no bound (a blocking fsync); this one keeps a stuck quorum from
/// holding a request forever.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a metadata change could not be committed and acted on.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Quorum(#[from] QuorumError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("this node is not the active controller")]
    NotController,
}

impl CommitError {
    fn to_controller_error(&self) -> ControllerError {
        match self {
            CommitError::NotController | CommitError::Quorum(QuorumError::NotLeader { .. }) => {
                ControllerError::NotController
            }
            other => ControllerError::CommitFailed(other.to_string()),
        }
    }
}

/// What the shell knows of its activation: the term it activated in.
#[derive(Debug, Default)]
struct Activation {
    term: Option<u64>,
}

pub struct ControllerClient {
    node_id: i32,
    config: Arc<BrokerConfig>,
    settings: Arc<Settings>,
    random: Arc<dyn Random>,
    quorum: Arc<Quorum>,
    metadata: Arc<PublishedMetadata>,
    replicas: Arc<ReplicaManager>,
    controller: Controller,
    /// The feature levels a new cluster starts with (`bootstrap.checkpoint`).
    bootstrap: BTreeMap<String, i16>,
    /// One controller decision at a time, as KRaft's single controller thread.
    lock: AsyncMutex<Activation>,
}

impl std::fmt::Debug for ControllerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerClient")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// What a [`ControllerClient`] is built from.
pub struct ControllerParts {
    pub config: BrokerConfig,
    pub settings: Arc<Settings>,
    pub random: Arc<dyn Random>,
    pub quorum: Arc<Quorum>,
    pub metadata: Arc<PublishedMetadata>,
    pub replicas: Arc<ReplicaManager>,
    pub controller: Controller,
    pub bootstrap: BTreeMap<String, i16>,
}

impl ControllerClient {
    pub fn new(parts: ControllerParts) -> ControllerClient {
        ControllerClient {
            node_id: parts.config.node_id,
            config: Arc::new(parts.config),
            settings: parts.settings,
            random: parts.random,
            quorum: parts.quorum,
            metadata: parts.metadata,
            replicas: parts.replicas,
            controller: parts.controller,
            bootstrap: parts.bootstrap,
            lock: AsyncMutex::new(Activation::default()),
        }
    }

    /// The quorum this node takes part in.
    pub fn quorum(&self) -> &Arc<Quorum> {
        &self.quorum
    }

    /// The image decisions start from: everything the quorum has applied.
    fn applied_image(&self) -> Arc<ClusterImage> {
        Arc::clone(&self.quorum.images().borrow().image)
    }

    /// Makes sure this node may decide: it leads the quorum and has activated
    /// in this term. Returns the offset the next record will get.
    async fn activate(&self, activation: &mut Activation) -> Result<u64, CommitError> {
        let status = self.quorum.status();
        let own_id = u64::try_from(self.node_id).ok();
        if status.role != Role::Leader || status.leader != own_id {
            activation.term = None;
            return Err(CommitError::NotController);
        }
        let fetch_timeout = u64::from(self.config.cluster.quorum_timeouts.fetch_timeout_ms);
        if should_resign(
            self.quorum.voter_count(),
            status.millis_since_quorum_ack,
            fetch_timeout,
        ) {
            tracing::warn!(
                millis_since_quorum_ack = ?status.millis_since_quorum_ack,
                "no quorum acknowledgement within controller.quorum.fetch.timeout.ms: resigning as active controller"
            );
            activation.term = None;
            return Err(CommitError::NotController);
        }
        if activation.term != Some(status.term) {
            let term = status.term;
            // Everything in the log applied (the term's first entry included),
            // so the image is the whole committed state.
            self.quorum
                .wait_until(COMMIT_TIMEOUT, "the metadata log to be applied", |s| {
                    s.term == term && s.last_applied_index == s.last_log_index
                })
                .await?;
            let image = self.applied_image();
            let open = self.quorum.progress().open_transaction();
            for decision in activation_records(&image, open, &self.bootstrap) {
                let next = next_offset(&self.quorum);
                self.commit_at(activation, next, decision).await?;
            }
            activation.term = Some(term);
            tracing::info!(term, node_id = self.node_id, "active controller");
        }
        Ok(next_offset(&self.quorum))
    }

    /// Proposes `records` (their first expected at `next`), and waits until they
    /// are committed, acted on and published; the image then.
    async fn commit_at(
        &self,
        activation: &mut Activation,
        next: u64,
        records: Vec<MetadataRecord>,
    ) -> Result<Arc<ClusterImage>, CommitError> {
        let entries = entries_of(records);
        let count = entries.len() as u64;
        let offsets = match self.quorum.propose_all(entries).await {
            Ok(offsets) => offsets,
            Err(e) => {
                activation.term = None;
                return Err(e.into());
            }
        };
        let expected: Vec<u64> = (next..next + count).collect();
        if offsets != expected {
            // Someone else wrote in between: this node is not the only proposer
            // it believed it was.
            tracing::error!(
                ?offsets,
                ?expected,
                "metadata records landed at unexpected offsets: resigning"
            );
            activation.term = None;
            return Err(CommitError::NotController);
        }
        let last = offsets.last().map_or(next as i64 - 1, |o| *o as i64);
        Ok(self.metadata.wait_published(last, COMMIT_TIMEOUT).await?)
    }

    /// Persists `records` through the quorum, acts on them, then publishes.
    async fn commit(
        &self,
        activation: &mut Activation,
        records: Vec<MetadataRecord>,
    ) -> Result<Arc<ClusterImage>, CommitError> {
        let next = self.activate(activation).await?;
        self.commit_at(activation, next, records).await
    }

    /// Registers this broker (its endpoints may have changed since the last
    /// start); its broker epoch is the offset of its record, as Kafka's.
    pub async fn register(&self, mut record: MetadataRecord) -> Result<i64, CommitError> {
        let mut activation = self.lock.lock().await;
        let next = self.activate(&mut activation).await?;
        if let MetadataRecord::RegisterBroker { broker_epoch, .. } = &mut record {
            *broker_epoch = next as i64;
        }
        self.commit_at(&mut activation, next, vec![record]).await?;
        Ok(next as i64)
    }

    /// Takes `count` producer ids from the metadata log: the first of them.
    pub async fn allocate_producer_ids(&self, count: i64) -> Result<i64, String> {
        let mut activation = self.lock.lock().await;
        let next = self
            .activate(&mut activation)
            .await
            .map_err(|e| e.to_string())?;
        let start = self.applied_image().next_producer_id;
        let record = MetadataRecord::ProducerIds {
            broker_id: self.node_id,
            next_producer_id: start + count,
        };
        self.commit_at(&mut activation, next, vec![record])
            .await
            .map_err(|e| e.to_string())?;
        Ok(start)
    }

    /// The metadata image the next decision starts from.
    pub fn image(&self) -> Arc<ClusterImage> {
        self.applied_image()
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The effective log config of a topic: its overrides over the broker defaults.
    pub fn log_config_for(&self, topic: &TopicImage) -> Arc<LogConfig> {
        let image = self.metadata.image();
        crate::configs::resolve_log_config(
            &crate::configs::topic_defaults(&self.config, &image),
            topic,
        )
    }

    /// CreateTopics: decide, and unless validating only, commit.
    pub async fn create_topics(
        &self,
        specs: Vec<TopicSpec>,
        validate_only: bool,
    ) -> Vec<CreateTopicOutcome> {
        let mut activation = self.lock.lock().await;
        let image = self.applied_image();
        let validate = |name: &str, value: &str| -> Result<(), String> {
            storage::config::validate_topic_configs([(name, value)]).map_err(|e| e.to_string())
        };
        let (mut outcomes, records) =
            self.controller
                .create_topics(&image, &specs, &validate, &mut || self.random.uuid());
        // Every new partition holds a file descriptor here (storage::descriptors).
        let new_partitions = outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().ok())
            .map(|created| created.num_partitions.max(0) as usize)
            .sum();
        if let Err(reason) = self.replicas.check_new_logs(new_partitions) {
            for outcome in outcomes.iter_mut().filter(|o| o.result.is_ok()) {
                outcome.result = Err(ControllerError::LogLimit(reason.clone()));
            }
            return outcomes;
        }
        if validate_only || records.is_empty() {
            return outcomes;
        }
        if let Err(e) = self.commit(&mut activation, records).await {
            tracing::error!(error = %e, "committing topic creation failed");
            for outcome in &mut outcomes {
                if outcome.result.is_ok() {
                    outcome.result = Err(e.to_controller_error());
                }
            }
        }
        outcomes
    }

    /// DeleteTopics: decide and commit.
    pub async fn delete_topics(&self, targets: Vec<DeleteTarget>) -> Vec<DeleteTopicOutcome> {
        let mut activation = self.lock.lock().await;
        let image = self.applied_image();
        let (mut outcomes, records) = self.controller.delete_topics(&image, &targets);
        if records.is_empty() {
            return outcomes;
        }
        if let Err(e) = self.commit(&mut activation, records).await {
            tracing::error!(error = %e, "committing topic deletion failed");
            for outcome in &mut outcomes {
                if outcome.result.is_ok() {
                    outcome.result = Err(e.to_controller_error());
                }
            }
        }
        outcomes
    }

    /// CreatePartitions: decide, and unless validating only, commit.
    pub async fn create_partitions(
        &self,
        increases: Vec<PartitionIncrease>,
        validate_only: bool,
    ) -> PartitionOutcomes {
        let mut activation = self.lock.lock().await;
        let image = self.applied_image();
        let (mut outcomes, records) = self.controller.create_partitions(&image, &increases);
        let new_partitions = increases
            .iter()
            .filter(|i| outcomes.iter().any(|(t, r)| *t == i.topic && r.is_ok()))
            .map(|i| {
                let current = image.topic(&i.topic).map_or(0, |t| t.partitions.len());
                (i.count.max(0) as usize).saturating_sub(current)
            })
            .sum();
        if let Err(reason) = self.replicas.check_new_logs(new_partitions) {
            for (_, result) in outcomes.iter_mut().filter(|(_, r)| r.is_ok()) {
                *result = Err(ControllerError::LogLimit(reason.clone()));
            }
            return outcomes;
        }
        if validate_only || records.is_empty() {
            return outcomes;
        }
        if let Err(e) = self.commit(&mut activation, records).await {
            tracing::error!(error = %e, "committing new partitions failed");
            for (_, result) in &mut outcomes {
                if result.is_ok() {
                    *result = Err(e.to_controller_error());
                }
            }
        }
        outcomes
    }

    /// Replaces the config overrides of `resource` with `wanted` (validated first).
    pub async fn alter_configs(
        &self,
        resource: ConfigResource,
        wanted: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        let mut activation = self.lock.lock().await;
        let image = self.applied_image();
        match &resource {
            ConfigResource::Topic(topic) => {
                if image.topic(topic).is_none() {
                    return Err(ControllerError::NoSuchConfigTopic(topic.clone()));
                }
                crate::configs::validate_topic_overrides(&self.config, &image, &wanted)?;
            }
            ConfigResource::Broker(_) | ConfigResource::BrokerDefault => {
                crate::configs::validate_broker_overrides(&self.config, &image, &wanted)?
            }
        }
        let records = self.controller.alter_configs(&image, &resource, &wanted);
        if validate_only || records.is_empty() {
            return Ok(());
        }
        self.commit(&mut activation, records)
            .await
            .map(|_| ())
            .map_err(|e| e.to_controller_error())
    }

    /// Creates topics that a Metadata request asked for (auto-creation), with the
    /// broker's defaults. Topics that exist by then are left alone.
    pub async fn auto_create_topics(&self, names: Vec<String>) -> Vec<CreateTopicOutcome> {
        let specs = self.controller.auto_create_specs(&names);
        let outcomes = self.create_topics(specs, false).await;
        for outcome in &outcomes {
            match &outcome.result {
                Ok(created) => {
                    tracing::info!(topic = %outcome.name, partitions = created.num_partitions, "auto-created topic")
                }
                Err(ControllerError::TopicAlreadyExists(_)) => {}
                Err(error) => {
                    tracing::warn!(topic = %outcome.name, %error, "auto-creation failed")
                }
            }
        }
        outcomes
    }
}

/// The offset the next entry appended to the quorum's log gets.
fn next_offset(quorum: &Quorum) -> u64 {
    quorum.status().last_log_index.map_or(0, |i| i + 1)
}
