//! The cluster image: what the metadata records say, applied in order.
//!
//! Readers share an `Arc<ClusterImage>`; a change builds the next image and swaps
//! it in, so a request handler always sees one consistent image.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use uuid::Uuid;

use crate::records::{
    BrokerFeature, ConfigResource, Endpoint, FencingChange, MetadataRecord, NO_LEADER,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub incarnation_id: Uuid,
    /// The offset of the registration (Kafka's broker epoch).
    pub broker_epoch: i64,
    pub endpoints: Vec<Endpoint>,
    /// What the broker supports (name, min and max level).
    pub features: Vec<BrokerFeature>,
    pub rack: Option<String>,
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
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

impl PartitionImage {
    /// This partition after a PartitionChangeRecord with these fields (`None`:
    /// unchanged), as Kafka's `PartitionRegistration.merge`: any leader given
    /// (the same one, or none: -1) starts a new leader epoch; every change is a
    /// new partition epoch.
    pub fn merge(
        &self,
        leader: Option<i32>,
        isr: Option<&[i32]>,
        replicas: Option<&[i32]>,
    ) -> PartitionImage {
        let mut next = self.clone();
        if let Some(leader) = leader {
            next.leader = leader;
            next.leader_epoch += 1;
        }
        if let Some(isr) = isr {
            next.isr = isr.to_vec();
        }
        if let Some(replicas) = replicas {
            next.replicas = replicas.to_vec();
        }
        next.partition_epoch += 1;
        next
    }
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
    #[error("record refers to unknown partition {partition} of topic id {topic_id}")]
    UnknownPartition { topic_id: Uuid, partition: i32 },
    #[error("record refers to broker {0}, which is not registered")]
    UnknownBroker(i32),
    #[error("record refers to broker {broker_id} with epoch {found}, but it is registered with epoch {registered}")]
    BrokerEpochMismatch {
        broker_id: i32,
        registered: i64,
        found: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterImage {
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<Arc<str>, TopicImage>,
    pub topic_names: BTreeMap<Uuid, Arc<str>>,
    pub broker_configs: BTreeMap<ConfigResource, BTreeMap<String, String>>,
    /// The next producer id not yet handed out.
    pub next_producer_id: i64,
    /// Finalized feature levels (`metadata.version`...); level 0 is never kept.
    pub features: BTreeMap<String, i16>,
    /// For each broker, the partitions (topic id, partition) whose ISR holds it;
    /// key [`NO_LEADER`] (-1) holds the partitions without a leader. Fencing a
    /// broker touches only its own partitions.
    pub brokers_to_isrs: BTreeMap<i32, BTreeSet<(Uuid, i32)>>,
    /// Offset of the last record applied (-1: none).
    pub last_offset: i64,
}

impl Default for ClusterImage {
    /// The image of an empty log: nothing applied yet (`last_offset` -1).
    fn default() -> ClusterImage {
        ClusterImage {
            brokers: BTreeMap::new(),
            topics: BTreeMap::new(),
            topic_names: BTreeMap::new(),
            broker_configs: BTreeMap::new(),
            next_producer_id: 0,
            features: BTreeMap::new(),
            brokers_to_isrs: BTreeMap::new(),
            last_offset: -1,
        }
    }
}

impl ClusterImage {
    /// The records that rebuild this image from an empty one, in an order that
    /// replays (features, brokers, topics with their partitions and configs,
    /// broker configs, producer ids): what a snapshot of the image holds
    /// (KIP-630). Replaying them gives this image back, `last_offset` aside.
    pub fn write_records(&self) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        for (name, level) in &self.features {
            records.push(MetadataRecord::FeatureLevel {
                name: name.clone(),
                feature_level: *level,
            });
        }
        for broker in self.brokers.values() {
            records.push(MetadataRecord::RegisterBroker {
                node_id: broker.node_id,
                incarnation_id: broker.incarnation_id,
                broker_epoch: broker.broker_epoch,
                endpoints: broker.endpoints.clone(),
                features: broker.features.clone(),
                rack: broker.rack.clone(),
                fenced: broker.fenced,
                in_controlled_shutdown: broker.in_controlled_shutdown,
            });
        }
        for topic in self.topics.values() {
            records.push(MetadataRecord::Topic {
                name: topic.name.to_string(),
                topic_id: topic.topic_id,
            });
            for p in topic.partitions.values() {
                records.push(MetadataRecord::Partition {
                    topic_id: topic.topic_id,
                    partition: p.partition,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                });
            }
            for (name, value) in &topic.configs {
                records.push(MetadataRecord::Config {
                    resource: ConfigResource::Topic(topic.name.to_string()),
                    name: name.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        for (resource, configs) in &self.broker_configs {
            for (name, value) in configs {
                records.push(MetadataRecord::Config {
                    resource: resource.clone(),
                    name: name.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        if self.next_producer_id > 0 {
            records.push(MetadataRecord::ProducerIds {
                broker_id: -1,
                next_producer_id: self.next_producer_id,
            });
        }
        records
    }

    /// Whether `broker` is registered, unfenced and not in controlled shutdown:
    /// what Kafka calls active, the brokers that may join an ISR or lead.
    pub fn is_active(&self, broker: i32) -> bool {
        self.brokers
            .get(&broker)
            .is_some_and(|b| !b.fenced && !b.in_controlled_shutdown)
    }

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
                broker_epoch,
                endpoints,
                features,
                rack,
                fenced,
                in_controlled_shutdown,
            } => {
                self.brokers.insert(
                    *node_id,
                    BrokerInfo {
                        node_id: *node_id,
                        incarnation_id: *incarnation_id,
                        broker_epoch: *broker_epoch,
                        endpoints: endpoints.clone(),
                        features: features.clone(),
                        rack: rack.clone(),
                        fenced: *fenced,
                        in_controlled_shutdown: *in_controlled_shutdown,
                    },
                );
            }
            MetadataRecord::UnregisterBroker {
                broker_id,
                broker_epoch,
            } => {
                self.broker_mut(*broker_id, *broker_epoch)?;
                self.brokers.remove(broker_id);
            }
            MetadataRecord::BrokerRegistrationChange {
                broker_id,
                broker_epoch,
                fenced,
                in_controlled_shutdown,
            } => {
                let broker = self.broker_mut(*broker_id, *broker_epoch)?;
                match fenced {
                    FencingChange::None => {}
                    FencingChange::Fence => broker.fenced = true,
                    FencingChange::Unfence => broker.fenced = false,
                }
                if *in_controlled_shutdown {
                    broker.in_controlled_shutdown = true;
                }
            }
            MetadataRecord::FeatureLevel {
                name,
                feature_level,
            } => {
                if *feature_level == 0 {
                    self.features.remove(name);
                } else {
                    self.features.insert(name.clone(), *feature_level);
                }
            }
            MetadataRecord::NoOp
            | MetadataRecord::BeginTransaction { .. }
            | MetadataRecord::EndTransaction
            | MetadataRecord::AbortTransaction { .. } => {
                // Transaction markers mean something only to `MetadataReplay`,
                // which never hands them to an image.
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
                let next = PartitionImage {
                    partition: *partition,
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                    partition_epoch: *partition_epoch,
                };
                let previous = self
                    .topic_mut(topic_id)?
                    .partitions
                    .insert(*partition, next.clone());
                if let Some(previous) = previous {
                    self.index_partition(*topic_id, &previous, false);
                }
                self.index_partition(*topic_id, &next, true);
            }
            MetadataRecord::PartitionChange {
                topic_id,
                partition,
                leader,
                isr,
                replicas,
            } => {
                let not_found = ImageError::UnknownPartition {
                    topic_id: *topic_id,
                    partition: *partition,
                };
                let topic = self.topic_mut(topic_id)?;
                let p = topic.partitions.get_mut(partition).ok_or(not_found)?;
                let previous = p.clone();
                *p = previous.merge(*leader, isr.as_deref(), replicas.as_deref());
                let next = p.clone();
                self.index_partition(*topic_id, &previous, false);
                self.index_partition(*topic_id, &next, true);
            }
            MetadataRecord::Config {
                resource,
                name,
                value,
            } => {
                let configs = match resource {
                    // A config for a topic removed later in the log: nothing to do.
                    ConfigResource::Topic(topic) => {
                        self.topics.get_mut(topic.as_str()).map(|t| &mut t.configs)
                    }
                    other => Some(self.broker_configs.entry(other.clone()).or_default()),
                };
                if let Some(configs) = configs {
                    match value {
                        Some(value) => configs.insert(name.clone(), value.clone()),
                        None => configs.remove(name),
                    };
                }
                // An empty set of broker overrides is no entry at all, as in a
                // snapshot.
                self.broker_configs.retain(|_, configs| !configs.is_empty());
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
                if let Some(topic) = self.topics.remove(&name) {
                    for p in topic.partitions.values() {
                        self.index_partition(*topic_id, p, false);
                    }
                }
            }
        }
        self.last_offset = offset;
        Ok(())
    }

    /// Adds or removes a partition's entries in `brokers_to_isrs`.
    fn index_partition(&mut self, topic_id: Uuid, p: &PartitionImage, add: bool) {
        let key = (topic_id, p.partition);
        let members = p
            .isr
            .iter()
            .copied()
            .chain((p.leader == NO_LEADER).then_some(NO_LEADER));
        for broker in members {
            if add {
                self.brokers_to_isrs.entry(broker).or_default().insert(key);
            } else if let Some(set) = self.brokers_to_isrs.get_mut(&broker) {
                set.remove(&key);
                if set.is_empty() {
                    self.brokers_to_isrs.remove(&broker);
                }
            }
        }
    }

    /// The registration of `broker_id`, which must have `broker_epoch`.
    fn broker_mut(
        &mut self,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Result<&mut BrokerInfo, ImageError> {
        let broker = self
            .brokers
            .get_mut(&broker_id)
            .ok_or(ImageError::UnknownBroker(broker_id))?;
        if broker.broker_epoch != broker_epoch {
            return Err(ImageError::BrokerEpochMismatch {
                broker_id,
                registered: broker.broker_epoch,
                found: broker_epoch,
            });
        }
        Ok(broker)
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

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
