//! The admin client, as Java's `Admin`: topics and partitions ([`Admin::create_topics`],
//! ...), the cluster, consumer groups and their offsets ([`groups`]), configs,
//! records deletion and transactions ([`resources`]).
//!
//! Requests go where Kafka's admin client sends them: topic and config changes to
//! any broker (a KRaft broker forwards them to the controller), group operations
//! to the group's coordinator, ListOffsets and DeleteRecords to partition leaders,
//! transaction queries to every broker (list) or the transaction coordinator.
//!
//! ```no_run
//! use rivulet_client::{Admin, ClientConfig, NewTopic};
//!
//! # async fn run() -> Result<(), rivulet_client::ClientError> {
//! let admin = Admin::new(ClientConfig::new().set("bootstrap.servers", "127.0.0.1:9092")).await?;
//! admin.create_topics(&[NewTopic::new("orders", 6, 1).config("retention.ms", "86400000")]).await?;
//! for topic in admin.list_topics(false).await? {
//!     println!("{} ({} partitions)", topic.name, topic.partitions.len());
//! }
//! # Ok(()) }
//! ```

pub mod groups;
pub mod producers;
pub mod resources;

use std::collections::BTreeMap;
use std::sync::Arc;

use protocol::kafka::messages::create_partitions_request::CreatePartitionsTopic;
use protocol::kafka::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use protocol::kafka::messages::delete_topics_request::DeleteTopicState;
use protocol::kafka::messages::{
    ApiKey, BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
    DescribeClusterRequest,
};
use protocol::ErrorCode;

use crate::cluster::{BrokerInfo, Cluster, MetadataScope, TopicInfo};
use crate::config::{ClientConfig, CommonConfig};
use crate::error::{ClientError, Result};
use crate::rpc::{sb, topic_name};

pub use groups::{ConsumerGroupDescription, GroupListing, MemberDescription};
pub use producers::{AbortTransactionSpec, ProducerState};
pub use resources::{
    AlterConfigOp, ConfigEntry, ConfigResource, ResourceType, TransactionDescription,
    TransactionListing,
};

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    /// -1: the broker's `num.partitions`.
    pub num_partitions: i32,
    /// -1: the broker's `default.replication.factor`.
    pub replication_factor: i16,
    /// Manual replica assignment: partition -> broker ids (overrides the counts).
    pub replica_assignment: BTreeMap<i32, Vec<i32>>,
    pub configs: BTreeMap<String, String>,
}

impl NewTopic {
    pub fn new(name: impl Into<String>, num_partitions: i32, replication_factor: i16) -> Self {
        NewTopic {
            name: name.into(),
            num_partitions,
            replication_factor,
            replica_assignment: BTreeMap::new(),
            configs: BTreeMap::new(),
        }
    }

    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.insert(key.into(), value.into());
        self
    }
}

/// The cluster as DescribeCluster (or Metadata) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: Vec<BrokerInfo>,
}

/// An admin client; cheap to clone.
#[derive(Debug, Clone)]
pub struct Admin {
    pub(crate) cluster: Arc<Cluster>,
    timeout_ms: i32,
}

impl Admin {
    /// Creates an admin client and checks that the cluster answers.
    pub async fn new(config: ClientConfig) -> Result<Admin> {
        let common = CommonConfig::from_config(&config, "rivulet-admin")?;
        let timeout_ms = config.parse_or("default.api.timeout.ms", 60_000i32)?;
        let cluster = Cluster::new(common, false);
        cluster.any_connection().await?;
        Ok(Admin {
            cluster,
            timeout_ms,
        })
    }

    fn timeout_ms(&self) -> i32 {
        self.timeout_ms.min(
            self.cluster
                .config
                .request_timeout
                .as_millis()
                .min(i32::MAX as u128) as i32,
        )
    }

    /// Creates topics; fails with the first topic's error (naming it).
    pub async fn create_topics(&self, topics: &[NewTopic]) -> Result<()> {
        self.create_topics_with(topics, false).await
    }

    /// With `validate_only`, the broker checks the request without creating anything.
    pub async fn create_topics_with(&self, topics: &[NewTopic], validate_only: bool) -> Result<()> {
        let creatable = topics
            .iter()
            .map(|t| {
                let assignments = t
                    .replica_assignment
                    .iter()
                    .map(|(p, brokers)| {
                        CreatableReplicaAssignment::default()
                            .with_partition_index(*p)
                            .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect())
                    })
                    .collect::<Vec<_>>();
                let (partitions, replication) = if assignments.is_empty() {
                    (t.num_partitions, t.replication_factor)
                } else {
                    (-1, -1)
                };
                CreatableTopic::default()
                    .with_name(topic_name(&t.name))
                    .with_num_partitions(partitions)
                    .with_replication_factor(replication)
                    .with_assignments(assignments)
                    .with_configs(
                        t.configs
                            .iter()
                            .map(|(k, v)| {
                                CreatableTopicConfig::default()
                                    .with_name(sb(k))
                                    .with_value(Some(sb(v)))
                            })
                            .collect(),
                    )
            })
            .collect();
        let request = CreateTopicsRequest::default()
            .with_topics(creatable)
            .with_timeout_ms(self.timeout_ms())
            .with_validate_only(validate_only);
        let response = self.cluster.any_connection().await?.send(&request).await?;
        for topic in response.topics {
            let message = topic.error_message.as_ref().map(|m| m.to_string());
            ClientError::check(
                topic.error_code,
                || format!("topic {}", topic.name.0),
                message.as_deref(),
            )?;
        }
        Ok(())
    }

    /// Deletes topics by name.
    pub async fn delete_topics(&self, names: &[&str]) -> Result<()> {
        let connection = self.cluster.any_connection().await?;
        let version = connection.version_of::<DeleteTopicsRequest>()?;
        let mut request = DeleteTopicsRequest::default().with_timeout_ms(self.timeout_ms());
        if version >= 6 {
            request = request.with_topics(
                names
                    .iter()
                    .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                    .collect(),
            );
        } else {
            request = request.with_topic_names(names.iter().map(|n| topic_name(n)).collect());
        }
        let response = connection.send_version(&request, version, None).await?;
        for result in response.responses {
            let name = result
                .name
                .as_ref()
                .map(|n| n.0.to_string())
                .unwrap_or_else(|| result.topic_id.to_string());
            let message = result.error_message.as_ref().map(|m| m.to_string());
            ClientError::check(
                result.error_code,
                || format!("topic {name}"),
                message.as_deref(),
            )?;
        }
        Ok(())
    }

    /// Every topic (internal ones too with `include_internal`), sorted by name.
    pub async fn list_topics(&self, include_internal: bool) -> Result<Vec<Arc<TopicInfo>>> {
        let metadata = self.cluster.refresh_scope(MetadataScope::All).await?;
        let mut topics: Vec<Arc<TopicInfo>> = metadata
            .topics
            .values()
            .filter(|t| include_internal || !t.is_internal)
            .cloned()
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// The named topics' partitions, leaders, replicas and ISR.
    /// UNKNOWN_TOPIC_OR_PARTITION for a topic that does not exist.
    pub async fn describe_topics(&self, names: &[&str]) -> Result<Vec<Arc<TopicInfo>>> {
        let scope = MetadataScope::Topics(names.iter().map(|n| n.to_string()).collect());
        let metadata = self.cluster.refresh_scope(scope).await?;
        names
            .iter()
            .map(|name| match metadata.topic(name) {
                Some(t) if t.error.is_ok() => Ok(Arc::clone(t)),
                Some(t) => Err(ClientError::kafka(t.error, format!("topic {name}"))),
                None => Err(ClientError::kafka(
                    ErrorCode::UnknownTopicOrPartition,
                    format!("topic {name}"),
                )),
            })
            .collect()
    }

    /// Grows `topic` to `total` partitions (CreatePartitions).
    pub async fn create_partitions(&self, topic: &str, total: i32) -> Result<()> {
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(topic))
                .with_count(total)
                .with_assignments(None)])
            .with_timeout_ms(self.timeout_ms());
        let response = self.cluster.any_connection().await?.send(&request).await?;
        for result in response.results {
            let message = result.error_message.as_ref().map(|m| m.to_string());
            ClientError::check(
                result.error_code,
                || format!("topic {}", result.name.0),
                message.as_deref(),
            )?;
        }
        Ok(())
    }

    /// The cluster id, controller and brokers: DescribeCluster where the broker
    /// serves it, Metadata otherwise.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let connection = self.cluster.any_connection().await?;
        if connection.supports(ApiKey::DescribeCluster) {
            let response = connection.send(&DescribeClusterRequest::default()).await?;
            let message = response.error_message.as_ref().map(|m| m.to_string());
            ClientError::check(
                response.error_code,
                || "DescribeCluster".into(),
                message.as_deref(),
            )?;
            let brokers = response
                .brokers
                .into_iter()
                .map(|b| BrokerInfo {
                    node_id: b.broker_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.map(|r| r.to_string()),
                })
                .collect();
            return Ok(ClusterDescription {
                cluster_id: Some(response.cluster_id.to_string()),
                controller_id: response.controller_id.0,
                brokers,
            });
        }
        let metadata = self
            .cluster
            .refresh_scope(MetadataScope::Topics(Vec::new()))
            .await?;
        Ok(ClusterDescription {
            cluster_id: metadata.cluster_id.clone(),
            controller_id: metadata.controller_id,
            brokers: metadata.brokers.values().cloned().collect(),
        })
    }

    /// Closes the connections.
    pub fn close(&self) {
        self.cluster.close();
    }
}
