//! Metadata records: the only way the cluster image changes.
//!
//! They are KRaft's records, stored as Kafka stores them: each is the value of one
//! Kafka record in `__cluster_metadata-0`, framed as `ApiMessageAndVersion`
//! (`server-common/.../AbstractApiMessageSerde.java`):
//! ```text
//! uvarint frame version (1) | uvarint apiKey | uvarint version | message
//! ```
//! where the message is the record's schema (`metadata/src/main/resources/common/
//! metadata/*.json`) in Kafka's flexible encoding (see [`crate::wire`]), ending
//! with its tagged-field section. So Kafka's own tools can read the log.
//!
//! | apiKey | record | version written |
//! |---|---|---|
//! | 0 | RegisterBrokerRecord | 1 |
//! | 1 | UnregisterBrokerRecord | 0 |
//! | 2 | TopicRecord | 0 |
//! | 3 | PartitionRecord | 0 |
//! | 4 | ConfigRecord | 0 |
//! | 5 | PartitionChangeRecord | 0 |
//! | 9 | RemoveTopicRecord | 0 |
//! | 12 | FeatureLevelRecord | 0 |
//! | 15 | ProducerIdsRecord | 0 |
//! | 17 | BrokerRegistrationChangeRecord | 1 |
//! | 20 | NoOpRecord | 0 |
//! | 23, 24, 25 | Begin/End/AbortTransactionRecord (KIP-868) | 0 |
//!
//! Decoding checks every length against the bytes left before allocating and
//! refuses trailing bytes, so a corrupt record is an error, never a panic or a
//! large allocation. Fields Rivulet does not implement yet (reassignment's
//! adding/removing replicas) are refused when present rather than dropped.

use uuid::Uuid;

use crate::wire::{Reader, WireError, Writer};

/// `ApiMessageAndVersion`'s frame version.
pub const FRAME_VERSION: u32 = 1;
/// A partition without a leader.
pub const NO_LEADER: i32 = -1;
/// `PartitionChangeRecord.Leader` when the leader does not change.
pub const NO_LEADER_CHANGE: i32 = -2;

/// A listener a broker serves on, as advertised to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
    /// Kafka's security protocol name (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`).
    pub security_protocol: String,
}

/// A feature a broker supports, with its range of levels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerFeature {
    pub name: String,
    pub min_supported_version: i16,
    pub max_supported_version: i16,
}

/// What a config record applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigResource {
    Topic(String),
    Broker(i32),
    /// Cluster-wide broker default (`--entity-default`).
    BrokerDefault,
}

/// `BrokerRegistrationChangeRecord.Fenced` (Kafka's `BrokerRegistrationFencingChange`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FencingChange {
    None,
    Fence,
    Unfence,
}

impl FencingChange {
    fn value(self) -> i8 {
        match self {
            FencingChange::None => 0,
            FencingChange::Fence => 1,
            FencingChange::Unfence => -1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    RegisterBroker {
        node_id: i32,
        /// A fresh id per broker process start, so a restart is told apart.
        incarnation_id: Uuid,
        /// The offset of the registration that gave it (Kafka's broker epoch).
        broker_epoch: i64,
        endpoints: Vec<Endpoint>,
        features: Vec<BrokerFeature>,
        rack: Option<String>,
        fenced: bool,
        in_controlled_shutdown: bool,
    },
    UnregisterBroker {
        broker_id: i32,
        broker_epoch: i64,
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
    /// A change of leader, ISR or replicas; `None` keeps the value (`leader: None`
    /// is Kafka's NO_LEADER_CHANGE, -2). Any `Some` leader bumps the leader epoch.
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
    /// A finalized feature level (`metadata.version`...); level 0 removes it.
    FeatureLevel {
        name: String,
        feature_level: i16,
    },
    /// Producer ids below `next_producer_id` are handed out; a broker takes them
    /// in blocks. (The record's BrokerEpoch is written as -1 until brokers have
    /// epochs of their own.)
    ProducerIds {
        broker_id: i32,
        next_producer_id: i64,
    },
    BrokerRegistrationChange {
        broker_id: i32,
        broker_epoch: i64,
        fenced: FencingChange,
        /// Whether the broker enters controlled shutdown.
        in_controlled_shutdown: bool,
    },
    NoOp,
    /// KIP-868: the records up to the matching End apply together.
    BeginTransaction {
        name: Option<String>,
    },
    EndTransaction,
    /// KIP-868: the records since the open Begin are dropped.
    AbortTransaction {
        reason: Option<String>,
    },
}

/// Why a record's bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("Could not deserialize metadata record due to unknown frame version {0}(only frame version 1 is supported)")]
    FrameVersion(u32),
    #[error("Unknown metadata record type {0}")]
    UnknownType(u32),
    #[error("Unsupported version {version} of metadata record type {api_key}")]
    UnsupportedVersion { api_key: u32, version: u32 },
    #[error("Found {remaining} byte(s) of garbage after {api_key}")]
    Garbage { remaining: usize, api_key: u32 },
    #[error("metadata record type {api_key}: {what} is not supported yet")]
    Unsupported { api_key: u32, what: &'static str },
}

/// Kafka's security protocol id of a protocol name.
pub fn security_protocol_id(name: &str) -> Option<i16> {
    match name {
        "PLAINTEXT" => Some(0),
        "SSL" => Some(1),
        "SASL_PLAINTEXT" => Some(2),
        "SASL_SSL" => Some(3),
        _ => None,
    }
}

fn security_protocol_name(id: i16) -> Option<&'static str> {
    match id {
        0 => Some("PLAINTEXT"),
        1 => Some("SSL"),
        2 => Some("SASL_PLAINTEXT"),
        3 => Some("SASL_SSL"),
        _ => None,
    }
}

/// Kafka's `ConfigResource.Type` ids.
const CONFIG_TOPIC: i8 = 2;
const CONFIG_BROKER: i8 = 4;

impl MetadataRecord {
    /// The record's apiKey.
    pub fn api_key(&self) -> u32 {
        match self {
            MetadataRecord::RegisterBroker { .. } => 0,
            MetadataRecord::UnregisterBroker { .. } => 1,
            MetadataRecord::Topic { .. } => 2,
            MetadataRecord::Partition { .. } => 3,
            MetadataRecord::Config { .. } => 4,
            MetadataRecord::PartitionChange { .. } => 5,
            MetadataRecord::RemoveTopic { .. } => 9,
            MetadataRecord::FeatureLevel { .. } => 12,
            MetadataRecord::ProducerIds { .. } => 15,
            MetadataRecord::BrokerRegistrationChange { .. } => 17,
            MetadataRecord::NoOp => 20,
            MetadataRecord::BeginTransaction { .. } => 23,
            MetadataRecord::EndTransaction => 24,
            MetadataRecord::AbortTransaction { .. } => 25,
        }
    }

    /// The version written.
    pub fn version(&self) -> u32 {
        match self {
            MetadataRecord::RegisterBroker { .. }
            | MetadataRecord::BrokerRegistrationChange { .. } => 1,
            _ => 0,
        }
    }

    /// Whether this is a KIP-868 transaction marker.
    pub fn is_transaction_marker(&self) -> bool {
        matches!(
            self,
            MetadataRecord::BeginTransaction { .. }
                | MetadataRecord::EndTransaction
                | MetadataRecord::AbortTransaction { .. }
        )
    }

    /// The record as `ApiMessageAndVersion` bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.uvarint(FRAME_VERSION);
        w.uvarint(self.api_key());
        w.uvarint(self.version());
        self.encode_message(&mut w);
        w.buf
    }

    fn encode_message(&self, w: &mut Writer) {
        let mut tagged: Vec<(u32, Vec<u8>)> = Vec::new();
        match self {
            MetadataRecord::RegisterBroker {
                node_id,
                incarnation_id,
                broker_epoch,
                endpoints,
                features,
                rack,
                fenced,
                in_controlled_shutdown,
            } => {
                w.i32(*node_id);
                w.uuid(incarnation_id);
                w.i64(*broker_epoch);
                w.compact_array(endpoints, |w, e| {
                    w.compact_string(&e.name);
                    w.compact_string(&e.host);
                    w.u16(e.port);
                    w.i16(
                        security_protocol_id(&e.security_protocol)
                            .expect("endpoints carry a validated security protocol"),
                    );
                    w.tagged_fields(&[]);
                });
                w.compact_array(features, |w, f| {
                    w.compact_string(&f.name);
                    w.i16(f.min_supported_version);
                    w.i16(f.max_supported_version);
                    w.tagged_fields(&[]);
                });
                w.compact_nullable_string(rack.as_deref());
                w.bool(*fenced);
                w.bool(*in_controlled_shutdown);
            }
            MetadataRecord::UnregisterBroker {
                broker_id,
                broker_epoch,
            } => {
                w.i32(*broker_id);
                w.i64(*broker_epoch);
            }
            MetadataRecord::Topic { name, topic_id } => {
                w.compact_string(name);
                w.uuid(topic_id);
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
            } => {
                w.i32(*partition);
                w.uuid(topic_id);
                w.compact_i32_array(replicas);
                w.compact_i32_array(isr);
                w.compact_i32_array(&[]);
                w.compact_i32_array(&[]);
                w.i32(*leader);
                w.i32(*leader_epoch);
                w.i32(*partition_epoch);
            }
            MetadataRecord::Config {
                resource,
                name,
                value,
            } => {
                let (kind, resource_name) = match resource {
                    ConfigResource::Topic(topic) => (CONFIG_TOPIC, topic.clone()),
                    ConfigResource::Broker(id) => (CONFIG_BROKER, id.to_string()),
                    ConfigResource::BrokerDefault => (CONFIG_BROKER, String::new()),
                };
                w.i8(kind);
                w.compact_string(&resource_name);
                w.compact_string(name);
                w.compact_nullable_string(value.as_deref());
            }
            MetadataRecord::PartitionChange {
                topic_id,
                partition,
                leader,
                isr,
                replicas,
            } => {
                w.i32(*partition);
                w.uuid(topic_id);
                if let Some(isr) = isr {
                    tagged.push((0, Writer::field(|w| w.compact_i32_array(isr))));
                }
                if let Some(leader) = leader {
                    tagged.push((1, Writer::field(|w| w.i32(*leader))));
                }
                if let Some(replicas) = replicas {
                    tagged.push((2, Writer::field(|w| w.compact_i32_array(replicas))));
                }
            }
            MetadataRecord::RemoveTopic { topic_id } => w.uuid(topic_id),
            MetadataRecord::FeatureLevel {
                name,
                feature_level,
            } => {
                w.compact_string(name);
                w.i16(*feature_level);
            }
            MetadataRecord::ProducerIds {
                broker_id,
                next_producer_id,
            } => {
                w.i32(*broker_id);
                w.i64(-1);
                w.i64(*next_producer_id);
            }
            MetadataRecord::BrokerRegistrationChange {
                broker_id,
                broker_epoch,
                fenced,
                in_controlled_shutdown,
            } => {
                w.i32(*broker_id);
                w.i64(*broker_epoch);
                if *fenced != FencingChange::None {
                    tagged.push((0, Writer::field(|w| w.i8(fenced.value()))));
                }
                if *in_controlled_shutdown {
                    tagged.push((1, Writer::field(|w| w.i8(1))));
                }
            }
            MetadataRecord::NoOp | MetadataRecord::EndTransaction => {}
            MetadataRecord::BeginTransaction { name: text }
            | MetadataRecord::AbortTransaction { reason: text } => {
                if let Some(text) = text {
                    tagged.push((0, Writer::field(|w| w.compact_string(text))));
                }
            }
        }
        w.tagged_fields(&tagged);
    }

    /// Decodes `ApiMessageAndVersion` bytes.
    pub fn decode(bytes: &[u8]) -> Result<MetadataRecord, RecordError> {
        let mut r = Reader::new(bytes);
        let frame = r.uvarint("frame version")?;
        if frame != FRAME_VERSION {
            return Err(RecordError::FrameVersion(frame));
        }
        let api_key = r.uvarint("type")?;
        let version = r.uvarint("version")?;
        let max_version = match api_key {
            0 | 17 => 1,
            1..=5 | 9 | 12 | 15 | 20 | 23..=25 => 0,
            other => return Err(RecordError::UnknownType(other)),
        };
        if version > max_version {
            return Err(RecordError::UnsupportedVersion { api_key, version });
        }
        let record = decode_message(&mut r, api_key, version)?;
        if r.remaining() > 0 {
            return Err(RecordError::Garbage {
                remaining: r.remaining(),
                api_key,
            });
        }
        Ok(record)
    }
}

/// Reads tagged fields none of which this record has (unknown tags are skipped).
fn no_tagged_fields(r: &mut Reader<'_>) -> Result<(), WireError> {
    r.tagged_fields(|_, _| Ok(()))
}

fn decode_message(
    r: &mut Reader<'_>,
    api_key: u32,
    version: u32,
) -> Result<MetadataRecord, RecordError> {
    let record = match api_key {
        0 => decode_register_broker(r, version)?,
        1 => MetadataRecord::UnregisterBroker {
            broker_id: r.i32("BrokerId")?,
            broker_epoch: r.i64("BrokerEpoch")?,
        },
        2 => MetadataRecord::Topic {
            name: r.compact_string("Name")?,
            topic_id: r.uuid("TopicId")?,
        },
        3 => return decode_partition(r),
        4 => decode_config(r)?,
        5 => return decode_partition_change(r),
        9 => MetadataRecord::RemoveTopic {
            topic_id: r.uuid("TopicId")?,
        },
        12 => MetadataRecord::FeatureLevel {
            name: r.compact_string("Name")?,
            feature_level: r.i16("FeatureLevel")?,
        },
        15 => {
            let broker_id = r.i32("BrokerId")?;
            let _broker_epoch = r.i64("BrokerEpoch")?;
            MetadataRecord::ProducerIds {
                broker_id,
                next_producer_id: r.i64("NextProducerId")?,
            }
        }
        17 => return decode_registration_change(r, version),
        20 => MetadataRecord::NoOp,
        23 | 25 => {
            let mut text = None;
            r.tagged_fields(|tag, field| {
                if tag == 0 {
                    text = field.compact_nullable_string("Name")?;
                }
                Ok(())
            })?;
            return Ok(if api_key == 23 {
                MetadataRecord::BeginTransaction { name: text }
            } else {
                MetadataRecord::AbortTransaction { reason: text }
            });
        }
        24 => MetadataRecord::EndTransaction,
        other => return Err(RecordError::UnknownType(other)),
    };
    no_tagged_fields(r)?;
    Ok(record)
}

fn decode_register_broker(r: &mut Reader<'_>, version: u32) -> Result<MetadataRecord, RecordError> {
    let node_id = r.i32("BrokerId")?;
    let incarnation_id = r.uuid("IncarnationId")?;
    let broker_epoch = r.i64("BrokerEpoch")?;
    // name (1) + host (1) + port (2) + protocol (2) + tags (1)
    let endpoints = r.compact_array("EndPoints", 7, |r| {
        let name = r.compact_string("EndPoints.Name")?;
        let host = r.compact_string("EndPoints.Host")?;
        let port = r.u16("EndPoints.Port")?;
        let protocol = r.i16("EndPoints.SecurityProtocol")?;
        no_tagged_fields(r)?;
        let security_protocol = security_protocol_name(protocol).ok_or(WireError::Invalid {
            what: "EndPoints.SecurityProtocol",
            value: i64::from(protocol),
        })?;
        Ok(Endpoint {
            name,
            host,
            port,
            security_protocol: security_protocol.to_string(),
        })
    })?;
    let features = r.compact_array("Features", 6, |r| {
        let feature = BrokerFeature {
            name: r.compact_string("Features.Name")?,
            min_supported_version: r.i16("Features.MinSupportedVersion")?,
            max_supported_version: r.i16("Features.MaxSupportedVersion")?,
        };
        no_tagged_fields(r)?;
        Ok(feature)
    })?;
    let rack = r.compact_nullable_string("Rack")?;
    let fenced = r.bool("Fenced")?;
    let in_controlled_shutdown = version >= 1 && r.bool("InControlledShutdown")?;
    Ok(MetadataRecord::RegisterBroker {
        node_id,
        incarnation_id,
        broker_epoch,
        endpoints,
        features,
        rack,
        fenced,
        in_controlled_shutdown,
    })
}

fn decode_partition(r: &mut Reader<'_>) -> Result<MetadataRecord, RecordError> {
    let partition = r.i32("PartitionId")?;
    let topic_id = r.uuid("TopicId")?;
    let replicas = r.compact_i32_array("Replicas")?;
    let isr = r.compact_i32_array("Isr")?;
    let removing = r.compact_i32_array("RemovingReplicas")?;
    let adding = r.compact_i32_array("AddingReplicas")?;
    if !removing.is_empty() || !adding.is_empty() {
        return Err(RecordError::Unsupported {
            api_key: 3,
            what: "a reassignment (adding or removing replicas)",
        });
    }
    let leader = r.i32("Leader")?;
    let leader_epoch = r.i32("LeaderEpoch")?;
    let partition_epoch = r.i32("PartitionEpoch")?;
    // Tag 0 is LeaderRecoveryState (0 = recovered, the only state used yet).
    no_tagged_fields(r)?;
    Ok(MetadataRecord::Partition {
        topic_id,
        partition,
        replicas,
        isr,
        leader,
        leader_epoch,
        partition_epoch,
    })
}

fn decode_config(r: &mut Reader<'_>) -> Result<MetadataRecord, RecordError> {
    let kind = r.i8("ResourceType")?;
    let resource_name = r.compact_string("ResourceName")?;
    let resource = match kind {
        CONFIG_TOPIC => ConfigResource::Topic(resource_name),
        CONFIG_BROKER if resource_name.is_empty() => ConfigResource::BrokerDefault,
        CONFIG_BROKER => {
            ConfigResource::Broker(resource_name.parse().map_err(|_| WireError::Invalid {
                what: "ResourceName of a broker",
                value: -1,
            })?)
        }
        _ => {
            return Err(RecordError::Unsupported {
                api_key: 4,
                what: "a config resource other than a topic or broker",
            })
        }
    };
    Ok(MetadataRecord::Config {
        resource,
        name: r.compact_string("Name")?,
        value: r.compact_nullable_string("Value")?,
    })
}

fn decode_partition_change(r: &mut Reader<'_>) -> Result<MetadataRecord, RecordError> {
    let partition = r.i32("PartitionId")?;
    let topic_id = r.uuid("TopicId")?;
    let mut leader = None;
    let mut isr = None;
    let mut replicas = None;
    let mut reassignment = false;
    r.tagged_fields(|tag, field| {
        match tag {
            0 => isr = field.compact_nullable_i32_array("Isr")?,
            1 => {
                let value = field.i32("Leader")?;
                leader = (value != NO_LEADER_CHANGE).then_some(value);
            }
            2 => replicas = field.compact_nullable_i32_array("Replicas")?,
            3 | 4 => {
                reassignment |= field
                    .compact_nullable_i32_array("Adding/RemovingReplicas")?
                    .is_some();
            }
            _ => {}
        }
        Ok(())
    })?;
    if reassignment {
        return Err(RecordError::Unsupported {
            api_key: 5,
            what: "a reassignment (adding or removing replicas)",
        });
    }
    Ok(MetadataRecord::PartitionChange {
        topic_id,
        partition,
        leader,
        isr,
        replicas,
    })
}

fn decode_registration_change(
    r: &mut Reader<'_>,
    version: u32,
) -> Result<MetadataRecord, RecordError> {
    let broker_id = r.i32("BrokerId")?;
    let broker_epoch = r.i64("BrokerEpoch")?;
    let mut fenced = FencingChange::None;
    let mut in_controlled_shutdown = false;
    r.tagged_fields(|tag, field| {
        match tag {
            0 => {
                fenced = match field.i8("Fenced")? {
                    0 => FencingChange::None,
                    1 => FencingChange::Fence,
                    -1 => FencingChange::Unfence,
                    other => {
                        return Err(WireError::Invalid {
                            what: "Fenced",
                            value: i64::from(other),
                        })
                    }
                }
            }
            1 if version >= 1 => {
                in_controlled_shutdown = match field.i8("InControlledShutdown")? {
                    0 => false,
                    1 => true,
                    other => {
                        return Err(WireError::Invalid {
                            what: "InControlledShutdown",
                            value: i64::from(other),
                        })
                    }
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok(MetadataRecord::BrokerRegistrationChange {
        broker_id,
        broker_epoch,
        fenced,
        in_controlled_shutdown,
    })
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
