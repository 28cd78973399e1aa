//! The broker's way to the controller: every metadata change (topics,
//! partitions, configs, producer ids, this broker's registration) is decided by
//! `metadata::Controller` one at a time, committed to the metadata log, acted on
//! (the replica manager hosts the partitions), and only then published.

use std::collections::BTreeMap;
use std::sync::Arc;

use metadata::controller::DeleteTarget;
use metadata::controller::PartitionOutcomes;
use metadata::{
    ClusterImage, ConfigResource, Controller, ControllerError, CreateTopicOutcome,
    DeleteTopicOutcome, MetadataRecord, PartitionIncrease, TopicImage, TopicSpec,
};
use protocol::random::Random;
use protocol::time::Clock;
use storage::LogConfig;
use tokio::sync::Mutex as AsyncMutex;

use crate::config::BrokerConfig;
use crate::metadata_store::{MetadataError, MetadataStore};
use crate::replica_manager::ReplicaManager;
use crate::runtime::blocking;
use crate::settings::Settings;

/// Why a metadata change could not be committed and acted on.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Replication(#[from] replication::ReplicationError),
}

pub struct ControllerClient {
    node_id: i32,
    config: Arc<BrokerConfig>,
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn Random>,
    metadata: Arc<MetadataStore>,
    replicas: Arc<ReplicaManager>,
    controller: Controller,
    /// One controller decision at a time, as KRaft's single controller thread.
    lock: AsyncMutex<()>,
}

impl std::fmt::Debug for ControllerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerClient")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl ControllerClient {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: BrokerConfig,
        settings: Arc<Settings>,
        clock: Arc<dyn Clock>,
        random: Arc<dyn Random>,
        metadata: Arc<MetadataStore>,
        replicas: Arc<ReplicaManager>,
        controller: Controller,
    ) -> ControllerClient {
        ControllerClient {
            node_id: config.node_id,
            config: Arc::new(config),
            settings,
            clock,
            random,
            metadata,
            replicas,
            controller,
            lock: AsyncMutex::new(()),
        }
    }

    /// The effective log config of a topic: its overrides over the broker defaults.
    pub fn log_config_for(&self, topic: &TopicImage) -> Arc<LogConfig> {
        let image = self.metadata.image();
        resolve_log_config(&crate::configs::topic_defaults(&self.config, &image), topic)
    }

    /// Persists `records`, applies them, and brings the hosted partitions in line.
    async fn commit(&self, records: Vec<MetadataRecord>) -> Result<Arc<ClusterImage>, CommitError> {
        let metadata = Arc::clone(&self.metadata);
        let replicas = Arc::clone(&self.replicas);
        let config = Arc::clone(&self.config);
        let now = self.clock.now_ms();
        blocking(move || {
            let image = metadata.commit(&records, now)?;
            let defaults = crate::configs::topic_defaults(&config, &image);
            // Host the partitions first, then let clients see the change: a topic
            // in the image always has its logs.
            let applied =
                replicas.apply_image(&image, &move |topic| resolve_log_config(&defaults, topic));
            metadata.publish(Arc::clone(&image));
            applied?;
            Ok(image)
        })
        .await
    }

    /// Registers this broker (its endpoints may have changed since the last
    /// start); this also opens every hosted log through the replica manager.
    pub async fn register(&self, record: MetadataRecord) -> Result<(), CommitError> {
        let _decision = self.lock.lock().await;
        self.commit(vec![record]).await.map(|_| ())
    }

    /// Takes `count` producer ids from the metadata log: the first of them.
    pub async fn allocate_producer_ids(&self, count: i64) -> Result<i64, String> {
        let _decision = self.lock.lock().await;
        let metadata = Arc::clone(&self.metadata);
        let broker_id = self.node_id;
        let now = self.clock.now_ms();
        blocking(move || {
            let start = metadata.image().next_producer_id;
            let record = MetadataRecord::ProducerIds {
                broker_id,
                next_producer_id: start + count,
            };
            let next = metadata.commit(&[record], now).map_err(|e| e.to_string())?;
            metadata.publish(next);
            Ok(start)
        })
        .await
    }

    /// The metadata image the next decision starts from.
    pub fn image(&self) -> Arc<ClusterImage> {
        self.metadata.image()
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// CreateTopics: decide, and unless validating only, commit.
    pub async fn create_topics(
        &self,
        specs: Vec<TopicSpec>,
        validate_only: bool,
    ) -> Vec<CreateTopicOutcome> {
        let _decision = self.lock.lock().await;
        let image = self.metadata.image();
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
        if let Err(e) = self.commit(records).await {
            tracing::error!(error = %e, "committing topic creation failed");
            for outcome in &mut outcomes {
                if outcome.result.is_ok() {
                    outcome.result = Err(ControllerError::CommitFailed(e.to_string()));
                }
            }
        }
        outcomes
    }

    /// DeleteTopics: decide and commit.
    pub async fn delete_topics(&self, targets: Vec<DeleteTarget>) -> Vec<DeleteTopicOutcome> {
        let _decision = self.lock.lock().await;
        let image = self.metadata.image();
        let (mut outcomes, records) = self.controller.delete_topics(&image, &targets);
        if records.is_empty() {
            return outcomes;
        }
        if let Err(e) = self.commit(records).await {
            tracing::error!(error = %e, "committing topic deletion failed");
            for outcome in &mut outcomes {
                if outcome.result.is_ok() {
                    outcome.result = Err(ControllerError::CommitFailed(e.to_string()));
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
        let _decision = self.lock.lock().await;
        let image = self.metadata.image();
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
        if let Err(e) = self.commit(records).await {
            tracing::error!(error = %e, "committing new partitions failed");
            for (_, result) in &mut outcomes {
                if result.is_ok() {
                    *result = Err(ControllerError::CommitFailed(e.to_string()));
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
        let _decision = self.lock.lock().await;
        let image = self.metadata.image();
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
        self.commit(records)
            .await
            .map(|_| ())
            .map_err(|e| ControllerError::CommitFailed(e.to_string()))
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

pub fn resolve_log_config(
    defaults: &BTreeMap<String, String>,
    topic: &TopicImage,
) -> Arc<LogConfig> {
    match LogConfig::resolve(&topic.configs, defaults) {
        Ok(resolved) => Arc::new(resolved),
        Err(e) => {
            // Configs are validated before they are committed; a value that no
            // longer validates (a newer rule) falls back to the broker defaults.
            tracing::error!(topic = %topic.name, error = %e, "topic config is invalid; using broker defaults");
            Arc::new(LogConfig::resolve(&Default::default(), defaults).unwrap_or_default())
        }
    }
}
