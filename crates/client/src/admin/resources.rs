//! Configs (DescribeConfigs, IncrementalAlterConfigs), records deletion
//! (DeleteRecords at each partition's leader) and transactions
//! (ListTransactions on every broker, DescribeTransactions at the coordinator).
//!
//! Broker resources are sent to that broker (its config lives there); topic
//! resources to any broker.

use std::collections::{BTreeMap, HashMap};

use protocol::kafka::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use protocol::kafka::messages::describe_configs_request::DescribeConfigsResource;
use protocol::kafka::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use protocol::kafka::messages::{
    DeleteRecordsRequest, DescribeConfigsRequest, DescribeTransactionsRequest,
    IncrementalAlterConfigsRequest, ListTransactionsRequest, TransactionalId,
};
use protocol::TopicPartition;

use crate::admin::Admin;
use crate::connection::Connection;
use crate::error::{ClientError, Result};
use crate::rpc::{sb, topic_name};

/// Kafka's `ConfigResource.Type` wire values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ResourceType {
    Topic,
    Broker,
    BrokerLogger,
    Group,
}

impl ResourceType {
    pub fn wire(self) -> i8 {
        match self {
            ResourceType::Topic => 2,
            ResourceType::Broker => 4,
            ResourceType::BrokerLogger => 8,
            ResourceType::Group => 32,
        }
    }
}

/// A resource whose configs are described or altered. A broker's name is its
/// node id; an empty name means the cluster-wide default.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigResource {
    pub resource_type: ResourceType,
    pub name: String,
}

impl ConfigResource {
    pub fn topic(name: impl Into<String>) -> Self {
        ConfigResource {
            resource_type: ResourceType::Topic,
            name: name.into(),
        }
    }

    pub fn broker(node_id: impl Into<String>) -> Self {
        ConfigResource {
            resource_type: ResourceType::Broker,
            name: node_id.into(),
        }
    }
}

/// One config as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub read_only: bool,
    pub is_sensitive: bool,
    /// Kafka's `ConfigSource` name (`DYNAMIC_TOPIC_CONFIG`, `DEFAULT_CONFIG`...).
    pub source: &'static str,
}

fn source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

/// An IncrementalAlterConfigs operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterConfigOp {
    Set(String, String),
    Delete(String),
    Append(String, String),
    Subtract(String, String),
}

impl AlterConfigOp {
    fn to_wire(&self) -> AlterableConfig {
        let (name, op, value) = match self {
            AlterConfigOp::Set(k, v) => (k, 0, Some(v)),
            AlterConfigOp::Delete(k) => (k, 1, None),
            AlterConfigOp::Append(k, v) => (k, 2, Some(v)),
            AlterConfigOp::Subtract(k, v) => (k, 3, Some(v)),
        };
        AlterableConfig::default()
            .with_name(sb(name))
            .with_config_operation(op)
            .with_value(value.map(|v| sb(v)))
    }
}

/// A transaction as ListTransactions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionListing {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: String,
    pub coordinator: i32,
}

/// A transaction as DescribeTransactions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    pub transactional_id: String,
    pub state: String,
    pub timeout_ms: i32,
    pub start_time_ms: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub partitions: Vec<TopicPartition>,
    pub coordinator: i32,
}

impl Admin {
    async fn connection_for(&self, resource: &ConfigResource) -> Result<Connection> {
        match (resource.resource_type, resource.name.parse::<i32>()) {
            (ResourceType::Broker | ResourceType::BrokerLogger, Ok(node)) => {
                self.cluster.connection(node).await
            }
            _ => self.cluster.any_connection().await,
        }
    }

    /// The configs of `resource` (only `keys` when given).
    pub async fn describe_configs(
        &self,
        resource: &ConfigResource,
        keys: Option<&[String]>,
    ) -> Result<Vec<ConfigEntry>> {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(resource.resource_type.wire())
                .with_resource_name(sb(&resource.name))
                .with_configuration_keys(keys.map(|k| k.iter().map(|s| sb(s)).collect())),
        ]);
        let response = self.connection_for(resource).await?.send(&request).await?;
        let mut entries = Vec::new();
        for result in response.results {
            let message = result.error_message.as_ref().map(|m| m.to_string());
            ClientError::check(
                result.error_code,
                || format!("{:?} {}", resource.resource_type, resource.name),
                message.as_deref(),
            )?;
            entries.extend(result.configs.into_iter().map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                read_only: c.read_only,
                is_sensitive: c.is_sensitive,
                source: source_name(c.config_source),
            }));
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Applies `ops` to `resource` (IncrementalAlterConfigs).
    pub async fn incremental_alter_configs(
        &self,
        resource: &ConfigResource,
        ops: &[AlterConfigOp],
        validate_only: bool,
    ) -> Result<()> {
        let request = IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(resource.resource_type.wire())
                .with_resource_name(sb(&resource.name))
                .with_configs(ops.iter().map(AlterConfigOp::to_wire).collect())]);
        let response = self.connection_for(resource).await?.send(&request).await?;
        for r in response.responses {
            let message = r.error_message.as_ref().map(|m| m.to_string());
            ClientError::check(
                r.error_code,
                || format!("{:?} {}", resource.resource_type, resource.name),
                message.as_deref(),
            )?;
        }
        Ok(())
    }

    /// Deletes records before the given offsets (-1: the high watermark); returns
    /// each partition's new log start offset (low watermark).
    pub async fn delete_records(
        &self,
        before: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let mut by_leader: HashMap<i32, BTreeMap<String, Vec<DeleteRecordsPartition>>> =
            HashMap::new();
        for (tp, offset) in before {
            self.cluster.topic(&tp.topic).await?;
            let leader = self.cluster.metadata().leader_or_error(tp)?;
            by_leader
                .entry(leader)
                .or_default()
                .entry(tp.topic.to_string())
                .or_default()
                .push(
                    DeleteRecordsPartition::default()
                        .with_partition_index(tp.partition)
                        .with_offset(*offset),
                );
        }
        let mut low_watermarks = BTreeMap::new();
        for (leader, topics) in by_leader {
            let request = DeleteRecordsRequest::default()
                .with_timeout_ms(
                    self.cluster
                        .config
                        .request_timeout
                        .as_millis()
                        .min(i32::MAX as u128) as i32,
                )
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(n, p)| {
                            DeleteRecordsTopic::default()
                                .with_name(topic_name(&n))
                                .with_partitions(p)
                        })
                        .collect(),
                );
            let response = self
                .cluster
                .connection(leader)
                .await?
                .send(&request)
                .await?;
            for t in response.topics {
                for p in t.partitions {
                    let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                    ClientError::check(p.error_code, || tp.to_string(), None)?;
                    low_watermarks.insert(tp, p.low_watermark);
                }
            }
        }
        Ok(low_watermarks)
    }

    /// Transactions on every broker (ListTransactions).
    pub async fn list_transactions(&self) -> Result<Vec<TransactionListing>> {
        let metadata = self
            .cluster
            .refresh_scope(crate::cluster::MetadataScope::Topics(Vec::new()))
            .await?;
        let mut listings = Vec::new();
        for node in metadata.brokers.keys() {
            let response = self
                .cluster
                .connection(*node)
                .await?
                .send(&ListTransactionsRequest::default())
                .await?;
            ClientError::check(
                response.error_code,
                || format!("ListTransactions on node {node}"),
                None,
            )?;
            listings.extend(
                response
                    .transaction_states
                    .into_iter()
                    .map(|t| TransactionListing {
                        transactional_id: t.transactional_id.0.to_string(),
                        producer_id: t.producer_id.0,
                        state: t.transaction_state.to_string(),
                        coordinator: *node,
                    }),
            );
        }
        listings.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(listings)
    }

    /// Describes transactional ids at their coordinators.
    pub async fn describe_transactions(&self, ids: &[&str]) -> Result<Vec<TransactionDescription>> {
        let mut descriptions = Vec::new();
        for id in ids {
            let connection = self.cluster.coordinator(1, id).await?;
            let request = DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(sb(id))]);
            let response = connection.send(&request).await?;
            for t in response.transaction_states {
                ClientError::check(t.error_code, || format!("transactional id {id}"), None)?;
                descriptions.push(TransactionDescription {
                    transactional_id: t.transactional_id.0.to_string(),
                    state: t.transaction_state.to_string(),
                    timeout_ms: t.transaction_timeout_ms,
                    start_time_ms: t.transaction_start_time_ms,
                    producer_id: t.producer_id.0,
                    producer_epoch: t.producer_epoch,
                    partitions: t
                        .topics
                        .iter()
                        .flat_map(|d| {
                            d.partitions
                                .iter()
                                .map(|p| TopicPartition::new(d.topic.0.to_string(), *p))
                        })
                        .collect(),
                    coordinator: connection.node_id(),
                });
            }
        }
        Ok(descriptions)
    }
}
