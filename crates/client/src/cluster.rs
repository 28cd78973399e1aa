//! What a client knows of the cluster: its brokers, topics, partition leaders and
//! group coordinators (the metadata cache), and one connection per broker.
//!
//! The cache is an immutable [`ClusterMetadata`] snapshot swapped whole on each
//! refresh, so a reader never sees half an update. A refresh asks for the topics the
//! client uses (or all of them for the admin client), is single-flight (callers that
//! arrive during one wait for it instead of sending their own), and is forced after
//! errors that mean the cache is stale (NOT_LEADER_OR_FOLLOWER and friends, a lost
//! connection), or when older than `metadata.max.age.ms`.
//!
//! Connections are keyed by node id; bootstrap addresses, whose node ids are not
//! known yet, by `-1 - index`. A closed connection is replaced on next use.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use protocol::kafka::messages::{
    find_coordinator_request::FindCoordinatorRequest, metadata_request::MetadataRequestTopic,
    ApiKey, MetadataRequest, TopicName,
};
use protocol::kafka::protocol::StrBytes;
use protocol::{ErrorCode, TopicPartition};
use tokio::time::Instant;

use crate::config::CommonConfig;
use crate::connection::{Connection, ConnectionOptions};
use crate::error::{ClientError, Result};

/// A broker as metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    /// -1 when there is no leader.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline_replicas: Vec<i32>,
    pub error: ErrorCode,
}

/// One topic and its partitions, sorted by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    /// The name again, shared by every `TopicPartition` the producer makes.
    pub shared_name: Arc<str>,
    pub topic_id: uuid::Uuid,
    pub is_internal: bool,
    pub error: ErrorCode,
    pub partitions: Vec<PartitionInfo>,
}

/// A snapshot of the cluster metadata.
#[derive(Debug, Clone, Default)]
pub struct ClusterMetadata {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: HashMap<String, Arc<TopicInfo>>,
}

impl ClusterMetadata {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicInfo>> {
        self.topics.get(name)
    }

    /// The leader of `tp`, when known.
    pub fn leader_for(&self, tp: &TopicPartition) -> Option<i32> {
        let topic = self.topics.get(&*tp.topic)?;
        let partition = topic.partitions.get(usize::try_from(tp.partition).ok()?)?;
        (partition.partition == tp.partition && partition.leader >= 0).then_some(partition.leader)
    }

    /// The leader of `tp`, or why there is none: UNKNOWN_TOPIC_OR_PARTITION (with
    /// the topic's partition count) for a partition past the topic's count, else
    /// LEADER_NOT_AVAILABLE (the partition exists; its leader is moving).
    pub fn leader_or_error(&self, tp: &TopicPartition) -> Result<i32> {
        if let Some(leader) = self.leader_for(tp) {
            return Ok(leader);
        }
        match self.partition_count(&tp.topic) {
            Some(count) if tp.partition < 0 || tp.partition as usize >= count => {
                Err(ClientError::Kafka {
                    code: ErrorCode::UnknownTopicOrPartition,
                    context: tp.to_string(),
                    message: Some(crate::error::partition_count_message(count)),
                })
            }
            _ => Err(ClientError::kafka(
                ErrorCode::LeaderNotAvailable,
                tp.to_string(),
            )),
        }
    }

    pub fn leader_epoch(&self, tp: &TopicPartition) -> i32 {
        self.topics
            .get(&*tp.topic)
            .and_then(|t| t.partitions.iter().find(|p| p.partition == tp.partition))
            .map_or(-1, |p| p.leader_epoch)
    }

    pub fn partition_count(&self, topic: &str) -> Option<usize> {
        self.topics
            .get(topic)
            .filter(|t| t.error.is_ok())
            .map(|t| t.partitions.len())
    }
}

/// Which topics a metadata request asks for.
#[derive(Debug, Clone)]
pub enum MetadataScope {
    All,
    Topics(Vec<String>),
}

/// The client's view of the cluster: metadata cache and connection pool.
pub struct Cluster {
    pub config: CommonConfig,
    options: ConnectionOptions,
    allow_auto_topic_creation: bool,
    metadata: RwLock<Arc<ClusterMetadata>>,
    refreshed_at: Mutex<Option<Instant>>,
    interest: Mutex<BTreeSet<String>>,
    refresh_lock: tokio::sync::Mutex<u64>,
    refresh_count: Mutex<u64>,
    connections: Mutex<HashMap<i32, Connection>>,
    coordinators: Mutex<HashMap<(i8, String), i32>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("bootstrap", &self.config.bootstrap_servers)
            .finish()
    }
}

impl Cluster {
    pub fn new(config: CommonConfig, allow_auto_topic_creation: bool) -> Arc<Cluster> {
        let options = ConnectionOptions {
            client_id: config.client_id.clone(),
            request_timeout: config.request_timeout,
            connection_setup_timeout: config.connection_setup_timeout,
            max_response_bytes: config.max_response_bytes,
        };
        Arc::new(Cluster {
            config,
            options,
            allow_auto_topic_creation,
            metadata: RwLock::new(Arc::new(ClusterMetadata::default())),
            refreshed_at: Mutex::new(None),
            interest: Mutex::new(BTreeSet::new()),
            refresh_lock: tokio::sync::Mutex::new(0),
            refresh_count: Mutex::new(0),
            connections: Mutex::new(HashMap::new()),
            coordinators: Mutex::new(HashMap::new()),
        })
    }

    /// The current snapshot.
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        Arc::clone(&self.metadata.read().expect("metadata lock poisoned"))
    }

    /// Adds topics to those every refresh asks about.
    pub fn add_interest<'a>(&self, topics: impl IntoIterator<Item = &'a str>) {
        let mut interest = self.interest.lock().expect("interest lock poisoned");
        for topic in topics {
            interest.insert(topic.to_string());
        }
    }

    pub fn set_interest(&self, topics: BTreeSet<String>) {
        *self.interest.lock().expect("interest lock poisoned") = topics;
    }

    /// Whether the snapshot is older than `metadata.max.age.ms` (or never fetched).
    pub fn metadata_is_stale(&self) -> bool {
        self.refreshed_at
            .lock()
            .expect("refresh time lock poisoned")
            .is_none_or(|at| at.elapsed() >= self.config.metadata_max_age)
    }

    /// Refreshes the topics of interest (single-flight: a refresh that completes
    /// while we wait for the lock counts as ours).
    pub async fn refresh(&self) -> Result<Arc<ClusterMetadata>> {
        let topics: Vec<String> = self
            .interest
            .lock()
            .expect("interest lock poisoned")
            .iter()
            .cloned()
            .collect();
        self.refresh_scope(MetadataScope::Topics(topics)).await
    }

    /// Refreshes metadata for `scope` and returns the new snapshot.
    pub async fn refresh_scope(&self, scope: MetadataScope) -> Result<Arc<ClusterMetadata>> {
        let seen = *self
            .refresh_count
            .lock()
            .expect("refresh count lock poisoned");
        let mut guard = self.refresh_lock.lock().await;
        if *guard > seen && matches!(scope, MetadataScope::Topics(_)) {
            // Someone refreshed while we waited; theirs is at least as fresh.
            return Ok(self.metadata());
        }
        let result = self.fetch_metadata(&scope).await;
        *guard += 1;
        *self
            .refresh_count
            .lock()
            .expect("refresh count lock poisoned") = *guard;
        result
    }

    async fn fetch_metadata(&self, scope: &MetadataScope) -> Result<Arc<ClusterMetadata>> {
        let connection = self.any_connection().await?;
        let topics = match scope {
            MetadataScope::All => None,
            MetadataScope::Topics(names) => Some(
                names
                    .iter()
                    .map(|n| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(n.clone()))))
                    })
                    .collect(),
            ),
        };
        let request = MetadataRequest::default()
            .with_topics(topics)
            .with_allow_auto_topic_creation(self.allow_auto_topic_creation);
        let response = match connection.send(&request).await {
            Ok(response) => response,
            Err(e) => {
                connection.close("metadata request failed");
                return Err(e);
            }
        };
        let mut next = match scope {
            MetadataScope::All => ClusterMetadata::default(),
            MetadataScope::Topics(_) => (*self.metadata()).clone(),
        };
        next.cluster_id = response.cluster_id.map(|s| s.to_string());
        next.controller_id = response.controller_id.0;
        next.brokers = response
            .brokers
            .into_iter()
            .map(|b| {
                let info = BrokerInfo {
                    node_id: b.node_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.map(|r| r.to_string()),
                };
                (b.node_id.0, info)
            })
            .collect();
        for topic in response.topics {
            let Some(name) = topic.name.map(|n| n.0.to_string()) else {
                continue;
            };
            let error =
                ErrorCode::from_i16(topic.error_code).unwrap_or(ErrorCode::UnknownServerError);
            if error == ErrorCode::UnknownTopicOrPartition {
                next.topics.remove(&name);
                continue;
            }
            let mut partitions: Vec<PartitionInfo> = topic
                .partitions
                .into_iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                    offline_replicas: p.offline_replicas.iter().map(|b| b.0).collect(),
                    error: ErrorCode::from_i16(p.error_code)
                        .unwrap_or(ErrorCode::UnknownServerError),
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            let info = TopicInfo {
                shared_name: Arc::from(name.as_str()),
                name: name.clone(),
                topic_id: topic.topic_id,
                is_internal: topic.is_internal,
                error,
                partitions,
            };
            next.topics.insert(name, Arc::new(info));
        }
        let next = Arc::new(next);
        *self.metadata.write().expect("metadata lock poisoned") = Arc::clone(&next);
        *self
            .refreshed_at
            .lock()
            .expect("refresh time lock poisoned") = Some(Instant::now());
        Ok(next)
    }

    /// Metadata for `topic`, refreshing until it is known or `request.timeout.ms`
    /// passes. UNKNOWN_TOPIC_OR_PARTITION when it does not exist.
    pub async fn topic(&self, topic: &str) -> Result<Arc<TopicInfo>> {
        self.topic_within(topic, self.config.request_timeout).await
    }

    /// As [`Cluster::topic`], giving up after `timeout` instead of
    /// `request.timeout.ms` (a tool that must answer "no such topic" quickly).
    pub async fn topic_within(&self, topic: &str, timeout: Duration) -> Result<Arc<TopicInfo>> {
        if let Some(info) = self.metadata().topic(topic).filter(|t| t.error.is_ok()) {
            return Ok(Arc::clone(info));
        }
        self.add_interest([topic]);
        let deadline = Instant::now() + timeout;
        loop {
            let snapshot = self.refresh().await?;
            match snapshot.topic(topic) {
                Some(info) if info.error.is_ok() && !info.partitions.is_empty() => {
                    return Ok(Arc::clone(info))
                }
                Some(info) if !info.error.is_retriable() && !info.error.is_ok() => {
                    return Err(ClientError::kafka(info.error, topic));
                }
                _ if Instant::now() >= deadline => {
                    return Err(ClientError::kafka(
                        ErrorCode::UnknownTopicOrPartition,
                        topic,
                    ));
                }
                _ => tokio::time::sleep(self.config.retry_backoff).await,
            }
        }
    }

    /// A connection to `node_id`, opening one if needed.
    pub async fn connection(&self, node_id: i32) -> Result<Connection> {
        if let Some(connection) = self.cached_connection(node_id) {
            return Ok(connection);
        }
        let address = match self.metadata().brokers.get(&node_id) {
            Some(broker) => broker.address(),
            None => {
                let snapshot = self.refresh().await?;
                snapshot
                    .brokers
                    .get(&node_id)
                    .map(BrokerInfo::address)
                    .ok_or_else(|| {
                        ClientError::kafka(
                            ErrorCode::BrokerNotAvailable,
                            format!("node {node_id} is not in the cluster metadata"),
                        )
                    })?
            }
        };
        let connection = Connection::connect(&address, node_id, self.options.clone()).await?;
        self.connections
            .lock()
            .expect("connections lock poisoned")
            .insert(node_id, connection.clone());
        Ok(connection)
    }

    fn cached_connection(&self, node_id: i32) -> Option<Connection> {
        let connections = self.connections.lock().expect("connections lock poisoned");
        connections
            .get(&node_id)
            .filter(|c| !c.is_closed())
            .cloned()
    }

    /// A connection to any broker: an open one, else a known broker, else a
    /// bootstrap address, each tried in turn.
    pub async fn any_connection(&self) -> Result<Connection> {
        {
            let connections = self.connections.lock().expect("connections lock poisoned");
            if let Some(c) = connections.values().find(|c| !c.is_closed()) {
                return Ok(c.clone());
            }
        }
        let mut candidates: Vec<(i32, String)> = self
            .metadata()
            .brokers
            .values()
            .map(|b| (b.node_id, b.address()))
            .collect();
        for (index, address) in self.config.bootstrap_servers.iter().enumerate() {
            candidates.push((-1 - index as i32, address.clone()));
        }
        let mut last_error = None;
        for (node_id, address) in candidates {
            match Connection::connect(&address, node_id, self.options.clone()).await {
                Ok(connection) => {
                    self.connections
                        .lock()
                        .expect("connections lock poisoned")
                        .insert(node_id, connection.clone());
                    return Ok(connection);
                }
                Err(e) => {
                    tracing::debug!(%address, error = %e, "cannot connect");
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| ClientError::Config {
            key: "bootstrap.servers".into(),
            reason: "empty".into(),
        }))
    }

    /// A connection to the leader of `tp`, refreshing metadata if it is unknown.
    pub async fn leader_connection(&self, tp: &TopicPartition) -> Result<Connection> {
        let leader = match self.metadata().leader_for(tp) {
            Some(leader) => leader,
            None => {
                self.topic(&tp.topic).await?;
                self.refresh().await?.leader_or_error(tp)?
            }
        };
        self.connection(leader).await
    }

    /// The coordinator of a group (`key_type` 0) or transactional id (1).
    pub async fn coordinator(&self, key_type: i8, key: &str) -> Result<Connection> {
        let cached = self
            .coordinators
            .lock()
            .expect("coordinators lock poisoned")
            .get(&(key_type, key.to_string()))
            .copied();
        if let Some(node_id) = cached {
            if let Ok(connection) = self.connection(node_id).await {
                return Ok(connection);
            }
        }
        let node_id = self.find_coordinator(key_type, key).await?;
        self.coordinators
            .lock()
            .expect("coordinators lock poisoned")
            .insert((key_type, key.to_string()), node_id);
        self.connection(node_id).await
    }

    /// Forgets a coordinator after NOT_COORDINATOR or a lost connection.
    pub fn coordinator_dead(&self, key_type: i8, key: &str) {
        self.coordinators
            .lock()
            .expect("coordinators lock poisoned")
            .remove(&(key_type, key.to_string()));
    }

    async fn find_coordinator(&self, key_type: i8, key: &str) -> Result<i32> {
        let deadline = Instant::now() + self.config.request_timeout;
        loop {
            let result = self.find_coordinator_once(key_type, key).await;
            match result {
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    tracing::debug!(key, error = %e, "coordinator not found yet");
                    tokio::time::sleep(self.config.retry_backoff).await;
                }
                other => return other,
            }
        }
    }

    async fn find_coordinator_once(&self, key_type: i8, key: &str) -> Result<i32> {
        let connection = self.any_connection().await?;
        let version = connection.version_of::<FindCoordinatorRequest>()?;
        let key_bytes = StrBytes::from_string(key.to_string());
        let mut request = FindCoordinatorRequest::default().with_key_type(key_type);
        if version >= 4 {
            request = request.with_coordinator_keys(vec![key_bytes]);
        } else {
            request = request.with_key(key_bytes);
        }
        let response = connection.send_version(&request, version, None).await?;
        let (node_id, host, port, code, message) = if version >= 4 {
            let c = response.coordinators.into_iter().next().ok_or_else(|| {
                ClientError::Protocol("FindCoordinator answer without coordinators".into())
            })?;
            (
                c.node_id.0,
                c.host.to_string(),
                c.port,
                c.error_code,
                c.error_message.map(|m| m.to_string()),
            )
        } else {
            let r = response;
            (
                r.node_id.0,
                r.host.to_string(),
                r.port,
                r.error_code,
                r.error_message.map(|m| m.to_string()),
            )
        };
        ClientError::check(
            code,
            || format!("coordinator for {key}"),
            message.as_deref(),
        )?;
        // The coordinator may not be in our snapshot yet: add its address.
        let known = self.metadata().brokers.contains_key(&node_id);
        if !known {
            let mut snapshot = (*self.metadata()).clone();
            snapshot.brokers.insert(
                node_id,
                BrokerInfo {
                    node_id,
                    host,
                    port,
                    rack: None,
                },
            );
            *self.metadata.write().expect("metadata lock poisoned") = Arc::new(snapshot);
        }
        Ok(node_id)
    }

    /// Whether any broker we talk to serves `key` (checked on one connection).
    pub async fn supports(&self, key: ApiKey) -> Result<bool> {
        Ok(self.any_connection().await?.supports(key))
    }

    /// Closes every connection.
    pub fn close(&self) {
        let connections: Vec<Connection> = self
            .connections
            .lock()
            .expect("connections lock poisoned")
            .drain()
            .map(|(_, c)| c)
            .collect();
        for connection in connections {
            connection.close("client closed");
        }
    }
}
