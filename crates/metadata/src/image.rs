//! The cluster image: what the metadata records say, applied in order.
//!
//! Readers share an `Arc<ClusterImage>`; a change builds the next image and swaps
//! it in, so a request handler always sees one consistent image.

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use crate::records::{ConfigResource, Endpoint, MetadataRecord};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub incarnation_id: Uuid,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionImage {
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub name: Arc<str>,
    pub topic_id: Uuid,
    pub partitions: BTreeMap<i32, PartitionImage>,
    /// The topic's own config overrides (not the defaults).
    pub configs: BTreeMap<String, String>,
}

/// Why a record could not be applied: the log is not what the image expects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("record refers to unknown topic id {0}")]
    UnknownTopicId(Uuid),
    #[error("topic {0} already exists")]
    DuplicateTopic(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterImage {
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<Arc<str>, TopicImage>,
    pub topic_names: BTreeMap<Uuid, Arc<str>>,
    pub broker_configs: BTreeMap<ConfigResource, BTreeMap<String, String>>,
    /// The next producer id not yet handed out.
    pub next_producer_id: i64,
    /// Offset of the last record applied (-1: none).
    pub last_offset: i64,
}

impl ClusterImage {
    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicImage> {
        self.topic_names
            .get(id)
            .and_then(|name| self.topics.get(name))
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionImage> {
        self.topics
            .get(topic)
            .and_then(|t| t.partitions.get(&partition))
    }

    /// Applies one record at `offset` of the metadata log.
    pub fn apply(&mut self, offset: i64, record: &MetadataRecord) -> Result<(), ImageError> {
        match record {
            MetadataRecord::RegisterBroker {
                node_id,
                incarnation_id,
                endpoints,
                rack,
            } => {
                self.brokers.insert(
                    *node_id,
                    BrokerInfo {
                        node_id: *node_id,
                        incarnation_id: *incarnation_id,
                        endpoints: endpoints.clone(),
                        rack: rack.clone(),
                    },
                );
            }
            MetadataRecord::Topic { name, topic_id } => {
                if self.topics.contains_key(name.as_str()) {
                    return Err(ImageError::DuplicateTopic(name.clone()));
                }
                let name: Arc<str> = Arc::from(name.as_str());
                self.topic_names.insert(*topic_id, Arc::clone(&name));
                self.topics.insert(
                    Arc::clone(&name),
                    TopicImage {
                        name,
                        topic_id: *topic_id,
                        partitions: BTreeMap::new(),
                        configs: BTreeMap::new(),
                    },
                );
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
                let topic = self.topic_mut(topic_id)?;
                topic.partitions.insert(
                    *partition,
                    PartitionImage {
                        partition: *partition,
                        replicas: replicas.clone(),
                        isr: isr.clone(),
                        leader: *leader,
                        leader_epoch: *leader_epoch,
                        partition_epoch: *partition_epoch,
                    },
                );
            }
            MetadataRecord::PartitionChange {
                topic_id,
                partition,
                leader,
                isr,
                replicas,
            } => {
                let topic = self.topic_mut(topic_id)?;
                if let Some(p) = topic.partitions.get_mut(partition) {
                    if let Some(leader) = leader {
                        if *leader != p.leader {
                            p.leader = *leader;
                            p.leader_epoch += 1;
                        }
                    }
                    if let Some(isr) = isr {
                        p.isr = isr.clone();
                    }
                    if let Some(replicas) = replicas {
                        p.replicas = replicas.clone();
                    }
                    p.partition_epoch += 1;
                }
            }
            MetadataRecord::Config {
                resource,
                name,
                value,
            } => {
                let configs = match resource {
                    ConfigResource::Topic(topic) => match self.topics.get_mut(topic.as_str()) {
                        Some(t) => &mut t.configs,
                        // A config for a topic removed later in the log: nothing to do.
                        None => return Ok(()),
                    },
                    other => self.broker_configs.entry(other.clone()).or_default(),
                };
                match value {
                    Some(value) => configs.insert(name.clone(), value.clone()),
                    None => configs.remove(name),
                };
            }
            MetadataRecord::ProducerIds {
                next_producer_id, ..
            } => {
                self.next_producer_id = self.next_producer_id.max(*next_producer_id);
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                let name = self
                    .topic_names
                    .remove(topic_id)
                    .ok_or(ImageError::UnknownTopicId(*topic_id))?;
                self.topics.remove(&name);
            }
        }
        self.last_offset = offset;
        Ok(())
    }

    fn topic_mut(&mut self, topic_id: &Uuid) -> Result<&mut TopicImage, ImageError> {
        let name = self
            .topic_names
            .get(topic_id)
            .ok_or(ImageError::UnknownTopicId(*topic_id))?;
        self.topics
            .get_mut(name)
            .ok_or(ImageError::UnknownTopicId(*topic_id))
    }
}
