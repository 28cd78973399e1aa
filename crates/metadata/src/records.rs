//! Metadata records: the only way the cluster image changes.
//!
//! They play the part of KRaft's `RegisterBrokerRecord`, `TopicRecord`,
//! `PartitionRecord`, `PartitionChangeRecord`, `ConfigRecord` and
//! `RemoveTopicRecord`. Each record is stored as the JSON value of one Kafka record
//! in the metadata log (`__cluster_metadata-0`), so the log is readable with Kafka's
//! own tools and its evolution is plain serde (new fields get defaults).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A listener a broker serves on, as advertised to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub security_protocol: String,
}

/// What a config record applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConfigResource {
    Topic(String),
    Broker(i32),
    /// Cluster-wide broker default (`--entity-default`).
    BrokerDefault,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    RegisterBroker {
        node_id: i32,
        /// A fresh id per broker process start, so a restart is told apart.
        incarnation_id: Uuid,
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
    },
    Topic {
        name: String,
        topic_id: Uuid,
    },
    Partition {
        topic_id: Uuid,
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    /// A change of leader or ISR; fields left `None` keep their value.
    PartitionChange {
        topic_id: Uuid,
        partition: i32,
        leader: Option<i32>,
        isr: Option<Vec<i32>>,
        replicas: Option<Vec<i32>>,
    },
    /// Sets (`Some`) or removes (`None`) one config key.
    Config {
        resource: ConfigResource,
        name: String,
        value: Option<String>,
    },
    RemoveTopic {
        topic_id: Uuid,
    },
    /// Producer ids below `next_producer_id` are handed out (KRaft's
    /// `ProducerIdsRecord`); a broker takes them in blocks.
    ProducerIds {
        broker_id: i32,
        next_producer_id: i64,
    },
}

impl MetadataRecord {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("metadata records always serialize")
    }

    pub fn from_json(bytes: &[u8]) -> Result<MetadataRecord, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_json() {
        let records = vec![
            MetadataRecord::Topic {
                name: "orders".into(),
                topic_id: Uuid::from_u128(7),
            },
            MetadataRecord::Partition {
                topic_id: Uuid::from_u128(7),
                partition: 0,
                replicas: vec![1],
                isr: vec![1],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
            },
            MetadataRecord::Config {
                resource: ConfigResource::Topic("orders".into()),
                name: "retention.ms".into(),
                value: Some("1000".into()),
            },
            MetadataRecord::RemoveTopic {
                topic_id: Uuid::from_u128(7),
            },
        ];
        for record in records {
            assert_eq!(
                MetadataRecord::from_json(&record.to_json()).unwrap(),
                record
            );
        }
    }
}
