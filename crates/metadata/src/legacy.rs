//! The metadata records as Rivulet stored them before the binary format: one JSON
//! object per Kafka record value (`{"type":"Topic",...}`). Read only, to import a
//! data directory written by an older binary (see `docs/decisions.md`).
//!
//! Such a log never held a PartitionChange (nothing wrote one), so the only
//! difference of meaning is in RegisterBroker, which had no epoch: it takes the
//! record's offset, as Kafka's broker epoch is the registration's offset.

use serde::Deserialize;
use uuid::Uuid;

use crate::records::{ConfigResource, Endpoint, MetadataRecord};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct LegacyEndpoint {
    name: String,
    host: String,
    port: u16,
    security_protocol: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
enum LegacyConfigResource {
    Topic(String),
    Broker(i32),
    BrokerDefault,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type")]
enum LegacyRecord {
    RegisterBroker {
        node_id: i32,
        incarnation_id: Uuid,
        endpoints: Vec<LegacyEndpoint>,
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
    PartitionChange {
        topic_id: Uuid,
        partition: i32,
        leader: Option<i32>,
        isr: Option<Vec<i32>>,
        replicas: Option<Vec<i32>>,
    },
    Config {
        resource: LegacyConfigResource,
        name: String,
        value: Option<String>,
    },
    RemoveTopic {
        topic_id: Uuid,
    },
    ProducerIds {
        broker_id: i32,
        next_producer_id: i64,
    },
}

/// Whether a record value is a legacy JSON record (a JSON object) rather than an
/// `ApiMessageAndVersion` (whose first byte is the frame version, 1).
pub fn is_legacy_value(value: &[u8]) -> bool {
    value.first() == Some(&b'{')
}

/// Decodes a legacy JSON record stored at `offset`.
pub fn decode_legacy(value: &[u8], offset: i64) -> Result<MetadataRecord, serde_json::Error> {
    let legacy: LegacyRecord = serde_json::from_slice(value)?;
    Ok(match legacy {
        LegacyRecord::RegisterBroker {
            node_id,
            incarnation_id,
            endpoints,
            rack,
        } => MetadataRecord::RegisterBroker {
            node_id,
            incarnation_id,
            broker_epoch: offset,
            endpoints: endpoints
                .into_iter()
                .map(|e| Endpoint {
                    name: e.name,
                    host: e.host,
                    port: e.port,
                    security_protocol: e.security_protocol,
                })
                .collect(),
            features: Vec::new(),
            rack,
            // The single node served at once: it was never fenced.
            fenced: false,
            in_controlled_shutdown: false,
        },
        LegacyRecord::Topic { name, topic_id } => MetadataRecord::Topic { name, topic_id },
        LegacyRecord::Partition {
            topic_id,
            partition,
            replicas,
            isr,
            leader,
            leader_epoch,
            partition_epoch,
        } => MetadataRecord::Partition {
            topic_id,
            partition,
            replicas,
            isr,
            leader,
            leader_epoch,
            partition_epoch,
        },
        LegacyRecord::PartitionChange {
            topic_id,
            partition,
            leader,
            isr,
            replicas,
        } => MetadataRecord::PartitionChange {
            topic_id,
            partition,
            leader,
            isr,
            replicas,
        },
        LegacyRecord::Config {
            resource,
            name,
            value,
        } => MetadataRecord::Config {
            resource: match resource {
                LegacyConfigResource::Topic(t) => ConfigResource::Topic(t),
                LegacyConfigResource::Broker(b) => ConfigResource::Broker(b),
                LegacyConfigResource::BrokerDefault => ConfigResource::BrokerDefault,
            },
            name,
            value,
        },
        LegacyRecord::RemoveTopic { topic_id } => MetadataRecord::RemoveTopic { topic_id },
        LegacyRecord::ProducerIds {
            broker_id,
            next_producer_id,
        } => MetadataRecord::ProducerIds {
            broker_id,
            next_producer_id,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_binarys_json_records_decode() {
        // Byte for byte what the JSON writer produced.
        let register = br#"{"type":"RegisterBroker","node_id":1,"incarnation_id":"00000000-0000-0000-0000-000000000007","endpoints":[{"name":"PLAINTEXT","host":"127.0.0.1","port":9092,"security_protocol":"PLAINTEXT"}],"rack":null}"#;
        assert!(is_legacy_value(register));
        assert_eq!(
            decode_legacy(register, 12).unwrap(),
            MetadataRecord::RegisterBroker {
                node_id: 1,
                incarnation_id: Uuid::from_u128(7),
                broker_epoch: 12,
                endpoints: vec![Endpoint {
                    name: "PLAINTEXT".into(),
                    host: "127.0.0.1".into(),
                    port: 9092,
                    security_protocol: "PLAINTEXT".into(),
                }],
                features: vec![],
                rack: None,
                fenced: false,
                in_controlled_shutdown: false,
            }
        );
        let config = br#"{"type":"Config","resource":{"Topic":"orders"},"name":"retention.ms","value":"1000"}"#;
        assert_eq!(
            decode_legacy(config, 3).unwrap(),
            MetadataRecord::Config {
                resource: ConfigResource::Topic("orders".into()),
                name: "retention.ms".into(),
                value: Some("1000".into()),
            }
        );
        let default = br#"{"type":"Config","resource":"BrokerDefault","name":"log.retention.ms","value":null}"#;
        assert_eq!(
            decode_legacy(default, 4).unwrap(),
            MetadataRecord::Config {
                resource: ConfigResource::BrokerDefault,
                name: "log.retention.ms".into(),
                value: None,
            }
        );
        assert!(!is_legacy_value(&MetadataRecord::NoOp.encode()));
    }
}
