//! Starting and stopping a broker: start-up, the background tasks, and graceful
//! shutdown. The top of the crate: it builds the services and the shared
//! [`Broker`] state, then starts the listeners.
//!
//! Start-up: open the log dirs (locks, `meta.properties`, checkpoints), start the
//! controller quorum on the metadata log (importing a pre-quorum log once), bind
//! the listeners, start the metadata publisher (which opens every hosted log,
//! recovering after an unclean stop), register this broker (a metadata record),
//! then serve.
//! Shutdown (SIGTERM, Ctrl-C or [`RunningBroker::shutdown`]): stop accepting, let
//! connections finish their current request, flush and close every log, write the
//! checkpoints and the clean-shutdown mark.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metadata::{Controller, ControllerConfig, Endpoint, MetadataRecord};
use protocol::random::Random;
use protocol::time::Clock;
use storage::LogManager;
use tokio::net::TcpListener;

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::controller_client::{CommitError, ControllerClient, ControllerParts};
use crate::groups::Groups;
use crate::metadata_publisher::PublishedMetadata;
use crate::metadata_quorum::QuorumStartError;
use crate::random::OsRandom;
use crate::replica_manager::ReplicaManager;
use crate::runtime::{blocking, Shutdown};
use crate::settings::Settings;
use crate::transactions::{ProducerIds, Transactions};

/// Why the broker could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    #[error(transparent)]
    Quorum(#[from] QuorumStartError),
    #[error(transparent)]
    Format(#[from] crate::storage_format::FormatError),
    #[error(transparent)]
    Replication(#[from] replication::ReplicationError),
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("background task failed: {0}")]
    Join(String),
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

/// The listeners bound, and what they advertise.
struct Bound {
    listeners: Vec<TcpListener>,
    endpoints: Vec<Endpoint>,
    addresses: Vec<SocketAddr>,
}

/// Binds every listener; a port 0 is advertised as the port actually bound.
async fn bind_listeners(config: &BrokerConfig) -> Result<Bound, BrokerError> {
    let mut bound = Bound {
        listeners: Vec::new(),
        endpoints: Vec::new(),
        addresses: Vec::new(),
    };
    for ((listener, address), advertised) in config
        .bind_addresses()?
        .into_iter()
        .zip(config.advertised_listeners.iter())
    {
        let socket = TcpListener::bind(address)
            .await
            .map_err(|source| BrokerError::Bind { address, source })?;
        let local = socket
            .local_addr()
            .map_err(|source| BrokerError::Bind { address, source })?;
        let port =
            if advertised.port == 0 || (advertised.port == listener.port && listener.port == 0) {
                local.port()
            } else {
                advertised.port
            };
        let host = if advertised.host.is_empty() || advertised.host == "0.0.0.0" {
            "localhost".to_string()
        } else {
            advertised.host.clone()
        };
        bound.endpoints.push(Endpoint {
            name: listener.name.clone(),
            host,
            port,
            security_protocol: "PLAINTEXT".into(),
        });
        bound.addresses.push(local);
        bound.listeners.push(socket);
    }
    Ok(bound)
}

/// What start-up has opened before the services are built.
struct Opened {
    config: BrokerConfig,
    clock: Arc<dyn Clock>,
    random: Arc<dyn Random>,
    log_manager: Arc<LogManager>,
    quorum: Arc<quorum::Quorum>,
    bootstrap: std::collections::BTreeMap<String, i16>,
    cluster_id: String,
    endpoints: Vec<Endpoint>,
    discovered: Vec<storage::log_manager::DiscoveredLog>,
}

/// Builds the services and the shared state; spawns the coordinators' writers.
fn build(opened: Opened, tasks: &mut Vec<tokio::task::JoinHandle<()>>) -> Arc<Broker> {
    let Opened {
        config,
        clock,
        random,
        log_manager,
        quorum,
        bootstrap,
        cluster_id,
        endpoints,
        discovered,
    } = opened;
    let metadata = Arc::new(PublishedMetadata::new());
    let settings = Arc::new(Settings::from_config(&config));
    let shutdown = Shutdown::new();
    let replicas = Arc::new(ReplicaManager::new(
        config.node_id,
        Arc::clone(&clock),
        Arc::clone(&log_manager),
        discovered,
        settings.replica_lag_time_max_ms,
    ));
    // Act on every image the quorum applies, then publish it.
    // The quorum has applied its whole log by now (`metadata_quorum::start`).
    let caught_up = quorum.status().last_applied_index.map_or(-1, |i| i as i64);
    tasks.push(tokio::spawn(crate::metadata_publisher::run_publisher(
        Arc::clone(&metadata),
        quorum.images(),
        caught_up,
        Arc::clone(&replicas),
        Arc::new(config.clone()),
        shutdown.signal(),
    )));
    let controller = Arc::new(ControllerClient::new(ControllerParts {
        config: config.clone(),
        settings: Arc::clone(&settings),
        random: Arc::clone(&random),
        quorum,
        metadata: Arc::clone(&metadata),
        replicas: Arc::clone(&replicas),
        controller: Controller::new(ControllerConfig {
            num_partitions: config.num_partitions,
            default_replication_factor: config.default_replication_factor,
            delete_topic_enable: config.delete_topic_enable,
            max_broker_partitions: config.max_broker_partitions,
            ..ControllerConfig::default()
        }),
        bootstrap,
    }));
    let (groups, group_writes) = Groups::new(
        settings.groups.clone(),
        Arc::clone(&clock),
        Arc::clone(&random),
    );
    let groups = Arc::new(groups);
    let producer_ids = Arc::new(ProducerIds::new(Arc::clone(&controller)));
    let (transactions, txn_writes) = Transactions::new(
        settings.transactions.clone(),
        Arc::clone(&clock),
        producer_ids,
    );
    let transactions = Arc::new(transactions);
    tasks.push(tokio::spawn(crate::groups::run_writer(
        Arc::clone(&groups),
        Arc::clone(&replicas),
        Arc::clone(&clock),
        group_writes,
        shutdown.signal(),
    )));
    tasks.push(tokio::spawn(crate::transactions::run_writer(
        Arc::clone(&transactions),
        Arc::clone(&replicas),
        Arc::clone(&groups),
        Arc::clone(&clock),
        txn_writes,
        shutdown.signal(),
    )));
    Arc::new(Broker {
        groups,
        transactions,
        produce_requests: std::sync::atomic::AtomicU64::new(0),
        cleaner: Arc::new(crate::cleaner::CleanerState::load(
            &**log_manager.fs(),
            &config.log_dirs,
        )),
        config,
        settings,
        cluster_id,
        clock,
        random,
        metadata,
        controller,
        replicas,
        log_manager,
        endpoints,
        shutdown,
    })
}

/// The tasks that run until shutdown besides the listeners.
fn spawn_background(broker: &Arc<Broker>, tasks: &mut Vec<tokio::task::JoinHandle<()>>) {
    tasks.push(tokio::spawn(background_tasks(Arc::clone(broker))));
    tasks.push(tokio::spawn(crate::metadata_quorum::run_upkeep(
        Arc::clone(broker.controller.quorum()),
        broker.config.cluster.metadata_log,
        Arc::clone(&broker.clock),
        broker.shutdown_signal(),
    )));
    tasks.push(tokio::spawn(crate::groups::run_timer(
        Arc::clone(&broker.groups),
        broker.shutdown_signal(),
    )));
    tasks.push(tokio::spawn(crate::cleaner::run(
        Arc::clone(&broker.replicas),
        Arc::clone(&broker.clock),
        Arc::clone(&broker.cleaner),
        broker.settings.cleaner.clone(),
        broker.shutdown_signal(),
    )));
    tasks.push(tokio::spawn(crate::transactions::run_timer(
        Arc::clone(&broker.transactions),
        Arc::clone(&broker.replicas),
        Arc::clone(&broker.settings),
        broker.shutdown_signal(),
    )));
}

/// The start-up banner: version, where the data is, what is advertised, and how
/// the previous run ended.
fn log_started(broker: &Broker, fresh: bool, clean: bool) {
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
}

impl RunningBroker {
    /// Starts a broker from `config` on the current tokio runtime.
    pub async fn start(
        config: BrokerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<RunningBroker, BrokerError> {
        RunningBroker::start_with_random(config, clock, Arc::new(OsRandom)).await
    }

    /// Starts a broker whose randomness comes from `random` (seeded in tests).
    pub async fn start_with_random(
        config: BrokerConfig,
        clock: Arc<dyn Clock>,
        random: Arc<dyn Random>,
    ) -> Result<RunningBroker, BrokerError> {
        let log_dirs = config.log_dirs.clone();
        let log_manager = {
            let clock = Arc::clone(&clock);
            let random = Arc::clone(&random);
            Arc::new(
                blocking(move || {
                    // Descriptors: the soft limit up to the hard one, then shared out.
                    let limit = storage::descriptors::raise_limit().unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "cannot raise the open file limit");
                        storage::descriptors::limit()
                    });
                    let budget = storage::descriptors::DescriptorBudget::for_limit(limit);
                    tracing::info!(
                        limit,
                        max_partitions = budget.max_logs(),
                        file_cache = budget.cache,
                        "file descriptors"
                    );
                    let env = storage::LogEnv::real(clock)
                        .with_random(random)
                        .with_file_cache(budget.cache);
                    LogManager::open(&log_dirs, env).map(|m| m.with_descriptor_budget(budget))
                })
                .await?,
            )
        };
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
            let random = Arc::clone(&random);
            blocking(move || crate::storage_format::check_at_start(&config, &|| random.uuid()))
                .await?
        };
        refuse_multi_node_quorum(&config)?;
        let env = storage::LogEnv::real(Arc::clone(&clock)).with_random(Arc::clone(&random));
        let bootstrap = crate::metadata_quorum::bootstrap_features(&env, &config.metadata_log_dir)?;
        let quorum = crate::metadata_quorum::start(&config, &cluster_id, &env).await?;
        let discovered = log_manager.discover()?;
        let Bound {
            listeners,
            endpoints,
            addresses,
        } = bind_listeners(&config).await?;
        let mut tasks = Vec::new();
        let opened = Opened {
            config,
            clock,
            random,
            log_manager: Arc::clone(&log_manager),
            quorum,
            bootstrap,
            cluster_id,
            endpoints: endpoints.clone(),
            discovered,
        };
        let broker = build(opened, &mut tasks);
        // The single node is its own controller: it registers unfenced; its
        // broker epoch is the offset of the record (the controller fills it in).
        let registration = MetadataRecord::RegisterBroker {
            node_id: broker.node_id(),
            incarnation_id: broker.random.uuid(),
            broker_epoch: -1,
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
        broker.controller.register(registration).await?;
        log_manager.finish_loading()?;
        crate::internal_topics::load(&broker).await;
        log_started(&broker, fresh, clean);
        let limits = crate::network::Limits::new(&broker.config);
        for socket in listeners {
            tasks.push(tokio::spawn(crate::network::accept_loop(
                Arc::clone(&broker),
                crate::network::TcpAcceptor(socket),
                Arc::clone(&limits),
            )));
        }
        spawn_background(&broker, &mut tasks);
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
        self.broker.shutdown.trigger();
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        self.broker.controller.quorum().shutdown().await;
        let broker = Arc::clone(&self.broker);
        blocking(move || -> Result<(), BrokerError> {
            broker.replicas.checkpoint_high_watermarks()?;
            broker.log_manager.shutdown()?;
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
    // Kafka's isr-expiration task: half the lag time, so a follower leaves the ISR
    // at most 1.5 times `replica.lag.time.max.ms` after it fell behind.
    let mut isr_expiration = tokio::time::interval(Duration::from_millis(
        (broker.replicas.replica_lag_time_max_ms() / 2).clamp(1, 1 << 30) as u64,
    ));
    for interval in [
        &mut isr_expiration,
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
                        partition.flush_if_due();
                    }
                })
                .await;
            }
            _ = isr_expiration.tick() => {
                broker.replicas.tick();
            }
        }
    }
}
