//! The broker process: start-up, the shared state request handlers use, the
//! background tasks, and graceful shutdown.
//!
//! Start-up: open the log dirs (locks, `meta.properties`, checkpoints), replay the
//! metadata log, bind the listeners, register this broker (a metadata record), open
//! every hosted log (recovering after an unclean stop), then serve.
//! Shutdown (SIGTERM, Ctrl-C or [`RunningBroker::shutdown`]): stop accepting, let
//! connections finish their current request, flush and close every log, write the
//! checkpoints and the clean-shutdown mark.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeMap;

use metadata::controller::DeleteTarget;
use metadata::{
    ClusterImage, ConfigResource, Controller, ControllerConfig, CreateTopicOutcome,
    DeleteTopicOutcome, Endpoint, MetadataRecord, PartitionIncrease, TopicImage, TopicSpec,
};
use protocol::time::Clock;
use protocol::ErrorCode;
use replication::ReplicaManager;
use storage::{LogConfig, LogManager};
use tokio::net::TcpListener;
use tokio::sync::{watch, Mutex as AsyncMutex};
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::metadata_store::{MetadataError, MetadataStore};

/// Why the broker could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Format(#[from] crate::storage_format::FormatError),
    #[error(transparent)]
    Replication(#[from] replication::ReplicationError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("background task failed: {0}")]
    Join(String),
}

/// State shared by every connection and background task.
pub struct Broker {
    pub config: BrokerConfig,
    pub cluster_id: String,
    pub clock: Arc<dyn Clock>,
    pub metadata: MetadataStore,
    pub controller: Controller,
    /// One controller decision at a time, as KRaft's single controller thread.
    controller_lock: AsyncMutex<()>,
    pub replicas: ReplicaManager,
    pub log_manager: Arc<LogManager>,
    /// The endpoints this broker advertises (with the ports actually bound).
    pub endpoints: Vec<Endpoint>,
    /// The consumer group coordinator.
    pub groups: crate::groups::Groups,
    /// Where each compacted log is clean up to.
    pub cleaner: crate::cleaner::CleanerState,
    /// The transaction coordinator.
    pub transactions: crate::transactions::Transactions,
    /// Produce requests with acks != 0 answered so far (for the fault hook).
    pub produce_requests: std::sync::atomic::AtomicU64,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("node_id", &self.config.node_id)
            .finish_non_exhaustive()
    }
}

/// Runs blocking storage work off the async worker threads.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

impl Broker {
    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// The effective log config of a topic: its overrides over the broker defaults.
    pub fn log_config_for(&self, topic: &TopicImage) -> Arc<LogConfig> {
        let image = self.metadata.image();
        resolve_log_config(&crate::configs::topic_defaults(&self.config, &image), topic)
    }

    /// The lock every controller decision takes.
    pub fn controller_lock(&self) -> &AsyncMutex<()> {
        &self.controller_lock
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Persists `records`, applies them, and brings the hosted partitions in line.
    async fn commit(
        self: &Arc<Self>,
        records: Vec<MetadataRecord>,
    ) -> Result<Arc<ClusterImage>, BrokerError> {
        let broker = Arc::clone(self);
        blocking(move || {
            let now = broker.clock.now_ms();
            let image = broker.metadata.commit(&records, now)?;
            let defaults = crate::configs::topic_defaults(&broker.config, &image);
            // Host the partitions first, then let clients see the change: a topic
            // in the image always has its logs.
            let applied = broker
                .replicas
                .apply_image(&image, &move |topic| resolve_log_config(&defaults, topic));
            broker.metadata.publish(Arc::clone(&image));
            applied?;
            Ok(image)
        })
        .await
    }

    /// CreateTopics: decide, and unless validating only, commit.
    pub async fn create_topics(
        self: &Arc<Self>,
        specs: Vec<TopicSpec>,
        validate_only: bool,
    ) -> Vec<CreateTopicOutcome> {
        let _decision = self.controller_lock.lock().await;
        let image = self.metadata.image();
        let validate = |name: &str, value: &str| -> Result<(), String> {
            storage::config::validate_topic_configs([(name, value)]).map_err(|e| e.to_string())
        };
        let (mut outcomes, records) =
            self.controller
                .create_topics(&image, &specs, &validate, &mut Uuid::new_v4);
        if validate_only || records.is_empty() {
            return outcomes;
        }
        if let Err(e) = self.commit(records).await {
            tracing::error!(error = %e, "committing topic creation failed");
            for outcome in &mut outcomes {
                if outcome.result.is_ok() {
                    outcome.result = Err((
                        ErrorCode::UnknownServerError,
                        format!("metadata commit failed: {e}"),
                    ));
                }
            }
        }
        outcomes
    }

    /// DeleteTopics: decide and commit.
    pub async fn delete_topics(
        self: &Arc<Self>,
        targets: Vec<DeleteTarget>,
    ) -> Vec<DeleteTopicOutcome> {
        let _decision = self.controller_lock.lock().await;
        let image = self.metadata.image();
        let (mut outcomes, records) = self.controller.delete_topics(&image, &targets);
        if records.is_empty() {
            return outcomes;
        }
        if let Err(e) = self.commit(records).await {
            tracing::error!(error = %e, "committing topic deletion failed");
            for outcome in &mut outcomes {
                if outcome.error == ErrorCode::None {
                    outcome.error = ErrorCode::UnknownServerError;
                    outcome.message = Some(format!("metadata commit failed: {e}"));
                }
            }
        }
        outcomes
    }

    /// CreatePartitions: decide, and unless validating only, commit.
    pub async fn create_partitions(
        self: &Arc<Self>,
        increases: Vec<PartitionIncrease>,
        validate_only: bool,
    ) -> Vec<(String, Result<(), (ErrorCode, String)>)> {
        let _decision = self.controller_lock.lock().await;
        let image = self.metadata.image();
        let (mut outcomes, records) = self.controller.create_partitions(&image, &increases);
        if validate_only || records.is_empty() {
            return outcomes;
        }
        if let Err(e) = self.commit(records).await {
            tracing::error!(error = %e, "committing new partitions failed");
            for (_, result) in &mut outcomes {
                if result.is_ok() {
                    *result = Err((
                        ErrorCode::UnknownServerError,
                        format!("metadata commit failed: {e}"),
                    ));
                }
            }
        }
        outcomes
    }

    /// Replaces the config overrides of `resource` with `wanted` (validated first).
    pub async fn alter_configs(
        self: &Arc<Self>,
        resource: ConfigResource,
        wanted: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), (ErrorCode, String)> {
        let _decision = self.controller_lock.lock().await;
        let image = self.metadata.image();
        match &resource {
            ConfigResource::Topic(topic) => {
                if image.topic(topic).is_none() {
                    return Err((
                        ErrorCode::UnknownTopicOrPartition,
                        format!("Topic {topic} does not exist."),
                    ));
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
        self.commit(records).await.map(|_| ()).map_err(|e| {
            (
                ErrorCode::UnknownServerError,
                format!("metadata commit failed: {e}"),
            )
        })
    }

    /// Creates topics that a Metadata request asked for (auto-creation), with the
    /// broker's defaults. Topics that exist by then are left alone.
    pub async fn auto_create_topics(
        self: &Arc<Self>,
        names: Vec<String>,
    ) -> Vec<CreateTopicOutcome> {
        let specs = names
            .iter()
            .map(|name| self.controller.auto_create_spec(name))
            .collect();
        let outcomes = self.create_topics(specs, false).await;
        for outcome in &outcomes {
            match &outcome.result {
                Ok(created) => {
                    tracing::info!(topic = %outcome.name, partitions = created.num_partitions, "auto-created topic")
                }
                Err((code, message)) if *code != ErrorCode::TopicAlreadyExists => {
                    tracing::warn!(topic = %outcome.name, error = %code, %message, "auto-creation failed")
                }
                Err(_) => {}
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

/// Until the replicated quorum lands, a node whose quorum has other voters would
/// run as a cluster of its own: refuse that rather than split the cluster.
fn refuse_multi_node_quorum(config: &BrokerConfig) -> Result<(), BrokerError> {
    use crate::cluster_config::QuorumMode;
    let alone = match &config.cluster.quorum {
        QuorumMode::Embedded => true,
        QuorumMode::Static(voters) => voters.iter().all(|v| v.id == config.node_id),
        QuorumMode::Dynamic(_) => false,
    };
    if alone {
        return Ok(());
    }
    Err(BrokerError::Config(crate::config::ConfigError::Invalid(
        "a controller quorum with other nodes is not supported yet: run one node without controller.quorum.voters/bootstrap.servers, or with this node as the only voter".into(),
    )))
}

/// A started broker: its listeners are bound and it is serving.
pub struct RunningBroker {
    pub broker: Arc<Broker>,
    pub addresses: Vec<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningBroker {
    /// Starts a broker from `config` on the current tokio runtime.
    pub async fn start(
        config: BrokerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<RunningBroker, BrokerError> {
        let log_dirs = config.log_dirs.clone();
        let log_manager = {
            let clock = Arc::clone(&clock);
            blocking(move || LogManager::open(&log_dirs, clock)).await?
        };
        let log_manager = Arc::new(log_manager);
        let clean = log_manager.had_clean_shutdown();
        // Before meta.properties is written: a directory without one is new, and
        // "no clean shutdown" would wrongly suggest a crash.
        let fresh = !config
            .log_dirs
            .iter()
            .any(|dir| dir.join("meta.properties").exists());
        // meta.properties: refuse to start on another cluster's or node's data.
        let cluster_id = {
            let config = config.clone();
            blocking(move || crate::storage_format::check_at_start(&config)).await?
        };
        refuse_multi_node_quorum(&config)?;
        let metadata = {
            let dir = config.metadata_log_dir.clone();
            let clock = Arc::clone(&clock);
            blocking(move || MetadataStore::open(&dir, clock)).await?
        };
        let discovered = log_manager.discover()?;

        let mut listeners = Vec::new();
        let mut endpoints = Vec::new();
        let mut addresses = Vec::new();
        for ((listener, address), advertised) in config
            .bind_addresses()?
            .into_iter()
            .zip(config.advertised_listeners.iter())
        {
            let socket = TcpListener::bind(address)
                .await
                .map_err(|source| BrokerError::Bind { address, source })?;
            let bound = socket
                .local_addr()
                .map_err(|source| BrokerError::Bind { address, source })?;
            let port = if advertised.port == 0
                || (advertised.port == listener.port && listener.port == 0)
            {
                bound.port()
            } else {
                advertised.port
            };
            let host = if advertised.host.is_empty() || advertised.host == "0.0.0.0" {
                "localhost".to_string()
            } else {
                advertised.host.clone()
            };
            endpoints.push(Endpoint {
                name: listener.name.clone(),
                host,
                port,
                security_protocol: "PLAINTEXT".into(),
            });
            addresses.push(bound);
            listeners.push(socket);
        }

        let controller = Controller::new(ControllerConfig {
            num_partitions: config.num_partitions,
            default_replication_factor: config.default_replication_factor,
            delete_topic_enable: config.delete_topic_enable,
            ..ControllerConfig::default()
        });
        let replicas = ReplicaManager::new(config.node_id, Arc::clone(&log_manager), discovered);
        let (shutdown, _) = watch::channel(false);
        let cleaner = crate::cleaner::CleanerState::load(&config.log_dirs);
        let broker = Arc::new_cyclic(|weak| Broker {
            groups: crate::groups::Groups::new(&config, Arc::clone(&clock), weak.clone()),
            transactions: crate::transactions::Transactions::new(
                &config,
                Arc::clone(&clock),
                weak.clone(),
            ),
            produce_requests: std::sync::atomic::AtomicU64::new(0),
            cleaner,
            config,
            cluster_id,
            clock,
            metadata,
            controller,
            controller_lock: AsyncMutex::new(()),
            replicas,
            log_manager: Arc::clone(&log_manager),
            endpoints: endpoints.clone(),
            shutdown,
        });

        // Register this broker (its endpoints may have changed); this also opens
        // every hosted log through the replica manager.
        // The single node is its own controller: it registers unfenced, at the
        // next offset of the log (its broker epoch, as Kafka's).
        let registration = MetadataRecord::RegisterBroker {
            node_id: broker.node_id(),
            incarnation_id: Uuid::new_v4(),
            broker_epoch: broker.metadata.image().last_offset + 1,
            endpoints,
            features: vec![metadata::BrokerFeature {
                name: "metadata.version".into(),
                min_supported_version: 7,
                max_supported_version: crate::storage_format::METADATA_VERSION_LEVEL,
            }],
            rack: broker.config.cluster.broker_rack.clone(),
            fenced: false,
            in_controlled_shutdown: false,
        };
        broker.commit(vec![registration]).await?;
        log_manager.finish_loading()?;
        let loaded = {
            let b = Arc::clone(&broker);
            blocking(move || crate::groups::load_groups(&b.groups, &b.replicas)).await
        };
        match loaded {
            Ok(records) if records > 0 => {
                tracing::info!(records, "loaded consumer groups from __consumer_offsets")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "loading consumer groups failed; committed offsets may be missing")
            }
        }
        let loaded = {
            let b = Arc::clone(&broker);
            blocking(move || crate::transactions::load_transactions(&b.transactions, &b.replicas))
                .await
        };
        match loaded {
            Ok(records) if records > 0 => {
                tracing::info!(records, "loaded transactions from __transaction_state")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "loading transactions failed"),
        }
        let previous_shutdown = match (fresh, clean) {
            (true, _) => "none (new data directory)",
            (false, true) => "clean",
            (false, false) => "unclean (logs recovered)",
        };
        let log_dirs: Vec<String> = broker
            .config
            .log_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        let advertised: Vec<String> = broker
            .endpoints
            .iter()
            .map(|e| format!("{}://{}:{}", e.name, e.host, e.port))
            .collect();
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            node_id = broker.node_id(),
            cluster_id = %broker.cluster_id,
            log_dirs = %log_dirs.join(","),
            advertised_listeners = %advertised.join(","),
            previous_shutdown,
            partitions = broker.replicas.partitions().len(),
            "broker started"
        );

        let mut tasks = Vec::new();
        for socket in listeners {
            tasks.push(tokio::spawn(crate::network::accept_loop(
                Arc::clone(&broker),
                socket,
            )));
        }
        tasks.push(tokio::spawn(background_tasks(Arc::clone(&broker))));
        tasks.push(tokio::spawn(crate::groups::run_timer(Arc::clone(&broker))));
        tasks.push(tokio::spawn(crate::cleaner::run(Arc::clone(&broker))));
        tasks.push(tokio::spawn(crate::transactions::run_timer(Arc::clone(
            &broker,
        ))));
        for address in &addresses {
            tracing::info!(%address, "listening");
        }
        Ok(RunningBroker {
            broker,
            addresses,
            tasks,
        })
    }

    /// Stops serving and closes every log cleanly.
    pub async fn shutdown(self) -> Result<(), BrokerError> {
        tracing::info!("shutting down");
        let _ = self.broker.shutdown.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        let broker = Arc::clone(&self.broker);
        blocking(move || -> Result<(), BrokerError> {
            broker.replicas.checkpoint_high_watermarks()?;
            broker.log_manager.shutdown()?;
            broker.metadata.close()?;
            Ok(())
        })
        .await?;
        tracing::info!("shut down cleanly");
        Ok(())
    }
}

/// Periodic work: checkpoints, and `flush.ms` flushes.
async fn background_tasks(broker: Arc<Broker>) {
    let mut shutdown = broker.shutdown_signal();
    let mut recovery = tokio::time::interval(Duration::from_millis(
        broker.config.recovery_checkpoint_interval_ms,
    ));
    let mut high_watermarks = tokio::time::interval(Duration::from_millis(
        broker.config.high_watermark_checkpoint_interval_ms,
    ));
    let mut flushes = tokio::time::interval(Duration::from_millis(
        broker.config.flush_scheduler_interval_ms.min(1 << 30),
    ));
    let mut retention = tokio::time::interval(Duration::from_millis(
        broker.config.retention_check_interval_ms,
    ));
    for interval in [
        &mut recovery,
        &mut high_watermarks,
        &mut flushes,
        &mut retention,
    ] {
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
    }
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = recovery.tick() => {
                let b = Arc::clone(&broker);
                if let Err(e) = blocking(move || b.log_manager.checkpoint()).await {
                    tracing::warn!(error = %e, "writing log checkpoints failed");
                }
            }
            _ = high_watermarks.tick() => {
                let b = Arc::clone(&broker);
                if let Err(e) = blocking(move || b.replicas.checkpoint_high_watermarks()).await {
                    tracing::warn!(error = %e, "writing the high watermark checkpoint failed");
                }
            }
            _ = retention.tick() => {
                let b = Arc::clone(&broker);
                blocking(move || {
                    for partition in b.replicas.partitions() {
                        if let Err(e) = partition.apply_retention() {
                            tracing::warn!(partition = %partition.topic_partition(), error = %e, "retention pass failed");
                        }
                    }
                })
                .await;
            }
            _ = flushes.tick() => {
                let b = Arc::clone(&broker);
                blocking(move || {
                    for partition in b.replicas.partitions() {
                        let due = partition.log().lock().map(|log| log.flush_due()).unwrap_or(false);
                        if due {
                            let leo = partition.log_end_offset();
                            if let Err(e) = partition.flush(leo) {
                                tracing::warn!(partition = %partition.topic_partition(), error = %e, "scheduled flush failed");
                            }
                        }
                    }
                })
                .await;
            }
        }
    }
}
