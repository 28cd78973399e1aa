//! The controller's decisions: admin requests in, metadata records out.
//!
//! Sans-IO: each call reads the current image and returns per-item outcomes plus the
//! records that make them so. The caller persists the records (in order, all or
//! none) and applies them to the image; only then are the outcomes answered. With
//! `validate_only` the outcomes are answered and the records dropped.

use std::collections::{BTreeMap, BTreeSet};

use protocol::ErrorCode;
use uuid::Uuid;

use crate::image::ClusterImage;
use crate::records::{ConfigResource, MetadataRecord};
use crate::topic_name;

/// Broker settings the controller decides with.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// `num.partitions`: partitions of a topic created without a count.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `delete.topic.enable`.
    pub delete_topic_enable: bool,
    /// Kafka's `MAX_PARTITIONS_PER_BATCH`: a CreateTopics request asking for more
    /// partitions than this is refused whole, before anything is placed; Rivulet
    /// applies the same bound to the partitions one CreatePartitions request adds
    /// and to the topics one Metadata request auto-creates.
    pub max_partitions_per_request: u64,
    /// Kafka's `MAX_RECORDS_PER_USER_OP`: the most metadata records one request may
    /// commit (a topic record, its partitions and its configs).
    pub max_records_per_user_op: usize,
    /// `max.broker.partitions` (KIP-578's name): the most partition replicas any
    /// one broker may host. Creations that would take a broker past it are
    /// refused with POLICY_VIOLATION.
    pub max_broker_partitions: u64,
}

/// Kafka's limits (`ReplicationControlManager.MAX_PARTITIONS_PER_BATCH`,
/// `QuorumController.MAX_RECORDS_PER_USER_OP`).
pub const MAX_PARTITIONS_PER_REQUEST: u64 = 10_000;
pub const MAX_RECORDS_PER_USER_OP: usize = 10_000;
/// Default of `max.broker.partitions` (see docs/decisions.md).
pub const DEFAULT_MAX_BROKER_PARTITIONS: u64 = 100_000;

/// Kafka's message when a request asks for more than `MAX_PARTITIONS_PER_BATCH`.
pub const TOO_MANY_PARTITIONS: &str = "Excessively large number of partitions per request.";
/// Kafka's message when a request would commit more than `MAX_RECORDS_PER_USER_OP`.
pub const TOO_MANY_RECORDS: &str = "Unable to perform excessively large batch operation.";

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            num_partitions: 1,
            default_replication_factor: 1,
            delete_topic_enable: true,
            max_partitions_per_request: MAX_PARTITIONS_PER_REQUEST,
            max_records_per_user_op: MAX_RECORDS_PER_USER_OP,
            max_broker_partitions: DEFAULT_MAX_BROKER_PARTITIONS,
        }
    }
}

/// A topic to create, as CreateTopics (or auto-creation) asks for it.
#[derive(Debug, Clone, Default)]
pub struct TopicSpec {
    pub name: String,
    /// -1: `num.partitions`.
    pub num_partitions: i32,
    /// -1: `default.replication.factor`.
    pub replication_factor: i16,
    /// Explicit replica assignment per partition index.
    pub assignments: Vec<(i32, Vec<i32>)>,
    /// Config overrides; a `None` value is an error, as in Kafka.
    pub configs: Vec<(String, Option<String>)>,
}

/// A created (or, with validate-only, creatable) topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTopic {
    pub topic_id: Uuid,
    pub num_partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTopicOutcome {
    pub name: String,
    pub result: Result<CreatedTopic, (ErrorCode, String)>,
}

/// A topic to delete, by name or by id (DeleteTopics v6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteTarget {
    Name(String),
    Id(Uuid),
    /// Both or neither were given: always an error.
    Malformed {
        name: Option<String>,
        id: Uuid,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteTopicOutcome {
    pub name: Option<String>,
    pub topic_id: Uuid,
    pub error: ErrorCode,
    pub message: Option<String>,
}

/// Validates one topic config key and value; the error message goes to the client.
pub type ConfigValidator<'a> = &'a dyn Fn(&str, &str) -> Result<(), String>;

#[derive(Debug, Clone, Default)]
pub struct Controller {
    pub config: ControllerConfig,
}

fn fail<T>(code: ErrorCode, message: impl Into<String>) -> Result<T, (ErrorCode, String)> {
    Err((code, message.into()))
}

impl Controller {
    pub fn new(config: ControllerConfig) -> Controller {
        Controller { config }
    }

    /// Decides a CreateTopics request.
    pub fn create_topics(
        &self,
        image: &ClusterImage,
        specs: &[TopicSpec],
        validate_config: ConfigValidator<'_>,
        new_id: &mut dyn FnMut() -> Uuid,
    ) -> (Vec<CreateTopicOutcome>, Vec<MetadataRecord>) {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for spec in specs {
            *seen.entry(spec.name.as_str()).or_default() += 1;
        }
        // Kafka's validateTotalNumberOfPartitions: an upper bound on what the request
        // asks for, summed without overflow, checked before anything is placed.
        if self.requested_partitions(specs) > self.config.max_partitions_per_request {
            return (
                refuse_all(specs, ErrorCode::PolicyViolation, TOO_MANY_PARTITIONS),
                Vec::new(),
            );
        }
        let mut outcomes = Vec::with_capacity(specs.len());
        let mut records = Vec::new();
        let mut hosted = replicas_per_broker(image);
        // Names created earlier in this request collide like existing ones.
        let mut created_keys: BTreeSet<String> = BTreeSet::new();
        for spec in specs {
            let result = if seen[spec.name.as_str()] > 1 {
                fail(ErrorCode::InvalidRequest, "Duplicate topic name.")
            } else {
                self.create_one(image, spec, validate_config, &created_keys)
            };
            let result = result.and_then(|(topic, partitions)| {
                self.claim_broker_capacity(
                    &mut hosted,
                    partitions.iter().map(|(_, r)| r.as_slice()),
                )?;
                Ok((topic, partitions))
            });
            let result = result.map(|(mut topic, partitions)| {
                topic.topic_id = new_id();
                created_keys.insert(topic_name::collision_key(&spec.name));
                records.push(MetadataRecord::Topic {
                    name: spec.name.clone(),
                    topic_id: topic.topic_id,
                });
                for (partition, replicas) in partitions {
                    records.push(partition_record(topic.topic_id, partition, replicas));
                }
                for (name, value) in &topic.configs {
                    records.push(MetadataRecord::Config {
                        resource: ConfigResource::Topic(spec.name.clone()),
                        name: name.clone(),
                        value: Some(value.clone()),
                    });
                }
                topic
            });
            outcomes.push(CreateTopicOutcome {
                name: spec.name.clone(),
                result,
            });
        }
        if records.len() > self.config.max_records_per_user_op {
            // Kafka's BoundedList: the whole operation fails, POLICY_VIOLATION.
            return (
                refuse_all(specs, ErrorCode::PolicyViolation, TOO_MANY_RECORDS),
                Vec::new(),
            );
        }
        (outcomes, records)
    }

    /// An upper bound on the partitions `specs` ask for (Kafka counts -1 as
    /// `num.partitions`, other non-positive counts as 0: they fail anyway).
    fn requested_partitions(&self, specs: &[TopicSpec]) -> u64 {
        specs.iter().fold(0u64, |total, s| {
            let partitions = if !s.assignments.is_empty() {
                s.assignments.len() as u64
            } else if s.num_partitions == -1 {
                u64::try_from(self.config.num_partitions).unwrap_or(0)
            } else {
                u64::try_from(s.num_partitions).unwrap_or(0)
            };
            total.saturating_add(partitions)
        })
    }

    /// Adds `partitions`' replicas to `hosted` if no broker goes past
    /// `max.broker.partitions`; leaves `hosted` as it was otherwise.
    fn claim_broker_capacity<'a>(
        &self,
        hosted: &mut BTreeMap<i32, u64>,
        replica_sets: impl Iterator<Item = &'a [i32]>,
    ) -> Result<(), (ErrorCode, String)> {
        let mut added: BTreeMap<i32, u64> = BTreeMap::new();
        for replicas in replica_sets {
            for broker in replicas {
                *added.entry(*broker).or_default() += 1;
            }
        }
        let limit = self.config.max_broker_partitions;
        for (broker, more) in &added {
            let now = hosted.get(broker).copied().unwrap_or(0);
            if now.saturating_add(*more) > limit {
                return fail(
                    ErrorCode::PolicyViolation,
                    format!("Adding {more} partition replica(s) to broker {broker}, which hosts {now}, would exceed max.broker.partitions ({limit})."),
                );
            }
        }
        for (broker, more) in added {
            *hosted.entry(broker).or_default() += more;
        }
        Ok(())
    }

    fn resolve_partitions(&self, requested: i32) -> i32 {
        if requested == -1 {
            self.config.num_partitions
        } else {
            requested
        }
    }

    #[allow(clippy::type_complexity)]
    fn create_one(
        &self,
        image: &ClusterImage,
        spec: &TopicSpec,
        validate_config: ConfigValidator<'_>,
        created_in_request: &BTreeSet<String>,
    ) -> Result<(CreatedTopic, Vec<(i32, Vec<i32>)>), (ErrorCode, String)> {
        if spec.name == "__cluster_metadata" {
            return fail(
                ErrorCode::InvalidRequest,
                "Creation of internal topic __cluster_metadata is prohibited.",
            );
        }
        topic_name::validate(&spec.name).map_err(|m| (ErrorCode::InvalidTopicException, m))?;
        if image.topic(&spec.name).is_some() {
            return fail(
                ErrorCode::TopicAlreadyExists,
                format!("Topic '{}' already exists.", spec.name),
            );
        }
        let key = topic_name::collision_key(&spec.name);
        if let Some(existing) = image
            .topics
            .keys()
            .find(|t| topic_name::collision_key(t) == key)
        {
            return fail(
                ErrorCode::InvalidTopicException,
                format!(
                    "Topic '{}' collides with existing topic: {existing}",
                    spec.name
                ),
            );
        }
        if created_in_request.contains(&key) {
            return fail(
                ErrorCode::InvalidTopicException,
                format!(
                    "Topic '{}' collides with another topic in this request",
                    spec.name
                ),
            );
        }
        let mut configs = BTreeMap::new();
        for (name, value) in &spec.configs {
            let Some(value) = value else {
                return fail(
                    ErrorCode::InvalidConfig,
                    format!("Null value not supported for topic configs: {name}"),
                );
            };
            validate_config(name, value).map_err(|m| (ErrorCode::InvalidConfig, m))?;
            configs.insert(name.clone(), value.clone());
        }
        let brokers: Vec<i32> = image.brokers.keys().copied().collect();
        let partitions = if !spec.assignments.is_empty() {
            if spec.num_partitions != -1 || spec.replication_factor != -1 {
                return fail(ErrorCode::InvalidRequest, "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.");
            }
            self.check_assignments(&spec.assignments, &brokers)?;
            let mut partitions = spec.assignments.clone();
            partitions.sort_by_key(|(p, _)| *p);
            partitions
        } else {
            let replication_factor = if spec.replication_factor == -1 {
                self.config.default_replication_factor
            } else {
                spec.replication_factor
            };
            if replication_factor <= 0 {
                return fail(
                    ErrorCode::InvalidReplicationFactor,
                    "Replication factor must be larger than 0, or -1 to use the default value.",
                );
            }
            let num_partitions = self.resolve_partitions(spec.num_partitions);
            if num_partitions <= 0 {
                return fail(
                    ErrorCode::InvalidPartitions,
                    "Number of partitions was set to an invalid non-positive value.",
                );
            }
            if replication_factor as usize > brokers.len() {
                return fail(
                    ErrorCode::InvalidReplicationFactor,
                    format!("Unable to replicate the partition {replication_factor} time(s): The target replication factor of {replication_factor} cannot be reached because only {} broker(s) are registered.", brokers.len()),
                );
            }
            place_replicas(
                &spec.name,
                0..num_partitions,
                replication_factor as usize,
                &brokers,
            )
        };
        let replication_factor = partitions.first().map(|(_, r)| r.len() as i16).unwrap_or(0);
        Ok((
            CreatedTopic {
                topic_id: Uuid::nil(),
                num_partitions: partitions.len() as i32,
                replication_factor,
                configs,
            },
            partitions,
        ))
    }

    fn check_assignments(
        &self,
        assignments: &[(i32, Vec<i32>)],
        brokers: &[i32],
    ) -> Result<(), (ErrorCode, String)> {
        let mut indexes: Vec<i32> = assignments.iter().map(|(p, _)| *p).collect();
        indexes.sort_unstable();
        if indexes.iter().enumerate().any(|(i, p)| *p != i as i32) {
            return fail(
                ErrorCode::InvalidReplicaAssignment,
                "Partitions should be a consecutive 0-based integer sequence",
            );
        }
        let rf = assignments[0].1.len();
        for (partition, replicas) in assignments {
            if replicas.is_empty() {
                return fail(
                    ErrorCode::InvalidReplicaAssignment,
                    format!("Partition {partition} has no replicas"),
                );
            }
            if replicas.len() != rf {
                return fail(
                    ErrorCode::InvalidReplicaAssignment,
                    "All partitions should have the same number of replicas",
                );
            }
            let unique: BTreeSet<i32> = replicas.iter().copied().collect();
            if unique.len() != replicas.len() {
                return fail(
                    ErrorCode::InvalidReplicaAssignment,
                    format!("Duplicate brokers in the assignment of partition {partition}"),
                );
            }
            if let Some(missing) = replicas.iter().find(|b| !brokers.contains(b)) {
                return fail(ErrorCode::InvalidReplicaAssignment, format!("The manual partition assignment includes broker {missing}, but no such broker is registered."));
            }
        }
        Ok(())
    }

    /// Specs for the topics a Metadata request would auto-create, with Kafka's
    /// defaults: as many of `names` (in order) as fit in one request's partition and
    /// record limits. The rest are left for the client's next Metadata request,
    /// which it sends while the topic is missing.
    pub fn auto_create_specs(&self, names: &[String]) -> Vec<TopicSpec> {
        let per_topic = u64::try_from(self.config.num_partitions.max(1)).unwrap_or(1);
        let max_partitions = self
            .config
            .max_partitions_per_request
            .min(self.config.max_records_per_user_op as u64);
        let fit = (max_partitions / per_topic.saturating_add(1)).max(1);
        names
            .iter()
            .take(usize::try_from(fit).unwrap_or(usize::MAX))
            .map(|name| self.auto_create_spec(name))
            .collect()
    }

    /// Partitions to add to every topic named, for auto-creation: Kafka's defaults.
    pub fn auto_create_spec(&self, name: &str) -> TopicSpec {
        TopicSpec {
            name: name.to_string(),
            num_partitions: -1,
            replication_factor: -1,
            assignments: Vec::new(),
            configs: Vec::new(),
        }
    }

    /// Decides a DeleteTopics request.
    pub fn delete_topics(
        &self,
        image: &ClusterImage,
        targets: &[DeleteTarget],
    ) -> (Vec<DeleteTopicOutcome>, Vec<MetadataRecord>) {
        let mut outcomes = Vec::with_capacity(targets.len());
        let mut records = Vec::new();
        let mut seen_ids = BTreeSet::new();
        let duplicate_names: BTreeSet<&str> = {
            let mut count: BTreeMap<&str, usize> = BTreeMap::new();
            for target in targets {
                if let DeleteTarget::Name(name) = target {
                    *count.entry(name).or_default() += 1;
                }
            }
            count
                .into_iter()
                .filter(|(_, n)| *n > 1)
                .map(|(name, _)| name)
                .collect()
        };
        for target in targets {
            let outcome = |name: Option<String>,
                           topic_id: Uuid,
                           error: ErrorCode,
                           message: Option<String>| DeleteTopicOutcome {
                name,
                topic_id,
                error,
                message,
            };
            let resolved = match target {
                DeleteTarget::Malformed { name, id } => {
                    outcomes.push(outcome(
                        name.clone(),
                        *id,
                        ErrorCode::InvalidRequest,
                        Some("Neither or both topic name and id were given".into()),
                    ));
                    continue;
                }
                DeleteTarget::Name(name) if duplicate_names.contains(name.as_str()) => {
                    outcomes.push(outcome(
                        Some(name.clone()),
                        Uuid::nil(),
                        ErrorCode::InvalidRequest,
                        Some("Duplicate topic name.".into()),
                    ));
                    continue;
                }
                DeleteTarget::Name(name) => image.topic(name).ok_or_else(|| {
                    outcome(
                        Some(name.clone()),
                        Uuid::nil(),
                        ErrorCode::UnknownTopicOrPartition,
                        Some("This server does not host this topic-partition.".into()),
                    )
                }),
                DeleteTarget::Id(id) => image.topic_by_id(id).ok_or_else(|| {
                    outcome(
                        None,
                        *id,
                        ErrorCode::UnknownTopicId,
                        Some("This server does not host this topic ID.".into()),
                    )
                }),
            };
            let topic = match resolved {
                Ok(topic) => topic,
                Err(error) => {
                    outcomes.push(error);
                    continue;
                }
            };
            if !self.config.delete_topic_enable {
                outcomes.push(outcome(
                    Some(topic.name.to_string()),
                    topic.topic_id,
                    ErrorCode::TopicDeletionDisabled,
                    Some("Topic deletion is disabled.".into()),
                ));
                continue;
            }
            if !seen_ids.insert(topic.topic_id) {
                outcomes.push(outcome(
                    Some(topic.name.to_string()),
                    topic.topic_id,
                    ErrorCode::InvalidRequest,
                    Some("Duplicate topic id.".into()),
                ));
                continue;
            }
            records.push(MetadataRecord::RemoveTopic {
                topic_id: topic.topic_id,
            });
            outcomes.push(outcome(
                Some(topic.name.to_string()),
                topic.topic_id,
                ErrorCode::None,
                None,
            ));
        }
        (outcomes, records)
    }
}

/// Each topic's outcome of a CreatePartitions request.
pub type PartitionOutcomes = Vec<(String, Result<(), (ErrorCode, String)>)>;

/// A CreatePartitions request for one topic.
#[derive(Debug, Clone)]
pub struct PartitionIncrease {
    pub topic: String,
    /// The new total partition count.
    pub count: i32,
    /// Replicas for each new partition, when given.
    pub assignments: Option<Vec<Vec<i32>>>,
}

impl Controller {
    /// Decides a CreatePartitions request: per-topic errors and the new partitions.
    pub fn create_partitions(
        &self,
        image: &ClusterImage,
        increases: &[PartitionIncrease],
    ) -> (PartitionOutcomes, Vec<MetadataRecord>) {
        let mut outcomes = Vec::with_capacity(increases.len());
        let mut records = Vec::new();
        let mut seen = BTreeSet::new();
        let mut hosted = replicas_per_broker(image);
        let mut added_in_request = 0u64;
        for increase in increases {
            let result = if seen.insert(increase.topic.as_str()) {
                self.add_partitions(image, increase, &mut added_in_request, &mut hosted)
            } else {
                fail(ErrorCode::InvalidRequest, "Duplicate topic in the request.")
            };
            let result = result.map(|(topic_id, first, placed)| {
                for (i, replicas) in placed.into_iter().enumerate() {
                    let partition = first + i as i32;
                    records.push(partition_record(topic_id, partition, replicas));
                }
            });
            outcomes.push((increase.topic.clone(), result));
        }
        (outcomes, records)
    }

    /// Checks one topic's increase and places its new partitions: the topic id, the
    /// first new partition's index and each new partition's replicas. Every count
    /// is checked before anything is allocated for it.
    #[allow(clippy::type_complexity)]
    fn add_partitions(
        &self,
        image: &ClusterImage,
        increase: &PartitionIncrease,
        added_in_request: &mut u64,
        hosted: &mut BTreeMap<i32, u64>,
    ) -> Result<(Uuid, i32, Vec<Vec<i32>>), (ErrorCode, String)> {
        let brokers: Vec<i32> = image.brokers.keys().copied().collect();
        let Some(topic) = image.topic(&increase.topic) else {
            return fail(
                ErrorCode::UnknownTopicOrPartition,
                format!("The topic '{}' does not exist.", increase.topic),
            );
        };
        let current = i32::try_from(topic.partitions.len())
            .expect("a topic's partition count was checked against i32 when it was created");
        if increase.count < current {
            return fail(ErrorCode::InvalidPartitions, format!("The topic {} currently has {current} partition(s); {} would not be an increase.", increase.topic, increase.count));
        }
        if increase.count == current {
            return fail(
                ErrorCode::InvalidPartitions,
                format!("Topic already has {current} partition(s)."),
            );
        }
        // count > current >= 0: no overflow.
        let new_count = (increase.count - current) as u64;
        if added_in_request.saturating_add(new_count) > self.config.max_partitions_per_request
            || added_in_request.saturating_add(new_count)
                > self.config.max_records_per_user_op as u64
        {
            return fail(ErrorCode::PolicyViolation, TOO_MANY_PARTITIONS);
        }
        let rf = topic
            .partitions
            .values()
            .next()
            .map(|p| p.replicas.len())
            .unwrap_or(1);
        let placed: Vec<Vec<i32>> = match &increase.assignments {
            Some(assignments) => {
                if assignments.len() as u64 != new_count {
                    return fail(ErrorCode::InvalidReplicaAssignment, format!("Attempted to add {new_count} additional partition(s), but only {} assignment(s) were specified.", assignments.len()));
                }
                for replicas in assignments {
                    check_new_replicas(replicas, rf, &brokers)?;
                }
                assignments.clone()
            }
            None => {
                if rf > brokers.len() {
                    return fail(ErrorCode::InvalidReplicationFactor, format!("Unable to replicate the partition {rf} time(s): only {} broker(s) are registered.", brokers.len()));
                }
                place_replicas(&increase.topic, current..increase.count, rf, &brokers)
                    .into_iter()
                    .map(|(_, r)| r)
                    .collect()
            }
        };
        self.claim_broker_capacity(hosted, placed.iter().map(Vec::as_slice))?;
        *added_in_request += new_count;
        Ok((topic.topic_id, current, placed))
    }

    /// The records that turn `resource`'s current config overrides into `wanted`.
    pub fn alter_configs(
        &self,
        image: &ClusterImage,
        resource: &ConfigResource,
        wanted: &BTreeMap<String, String>,
    ) -> Vec<MetadataRecord> {
        let empty = BTreeMap::new();
        let current = match resource {
            ConfigResource::Topic(topic) => {
                image.topic(topic).map(|t| &t.configs).unwrap_or(&empty)
            }
            other => image.broker_configs.get(other).unwrap_or(&empty),
        };
        let mut records = Vec::new();
        for (name, value) in wanted {
            if current.get(name) != Some(value) {
                records.push(MetadataRecord::Config {
                    resource: resource.clone(),
                    name: name.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        for name in current.keys() {
            if !wanted.contains_key(name) {
                records.push(MetadataRecord::Config {
                    resource: resource.clone(),
                    name: name.clone(),
                    value: None,
                });
            }
        }
        records
    }
}

/// Every item of a request refused with the same error (Kafka fails the whole
/// controller operation for the per-request limits).
fn refuse_all(specs: &[TopicSpec], code: ErrorCode, message: &str) -> Vec<CreateTopicOutcome> {
    specs
        .iter()
        .map(|spec| CreateTopicOutcome {
            name: spec.name.clone(),
            result: fail(code, message),
        })
        .collect()
}

/// Kafka's validateManualPartitionAssignment for one new partition.
fn check_new_replicas(
    replicas: &[i32],
    rf: usize,
    brokers: &[i32],
) -> Result<(), (ErrorCode, String)> {
    if replicas.is_empty() {
        return fail(
            ErrorCode::InvalidReplicaAssignment,
            "The manual partition assignment includes an empty replica list.",
        );
    }
    if replicas.len() != rf {
        return fail(ErrorCode::InvalidReplicaAssignment, format!("Inconsistent replication factor between partitions, partition 0 has {rf} while the new assignment has {}.", replicas.len()));
    }
    let unique: BTreeSet<i32> = replicas.iter().copied().collect();
    if unique.len() != replicas.len() {
        return fail(
            ErrorCode::InvalidReplicaAssignment,
            format!("The manual partition assignment includes the broker(s) {replicas:?} more than once."),
        );
    }
    if let Some(missing) = replicas.iter().find(|b| !brokers.contains(b)) {
        return fail(ErrorCode::InvalidReplicaAssignment, format!("The manual partition assignment includes broker {missing}, but no such broker is registered."));
    }
    Ok(())
}

/// How many partition replicas each broker hosts now.
fn replicas_per_broker(image: &ClusterImage) -> BTreeMap<i32, u64> {
    let mut hosted = BTreeMap::new();
    for topic in image.topics.values() {
        for partition in topic.partitions.values() {
            for broker in &partition.replicas {
                *hosted.entry(*broker).or_default() += 1;
            }
        }
    }
    hosted
}

/// A new partition's record: led by its first replica, every replica in sync.
fn partition_record(topic_id: Uuid, partition: i32, replicas: Vec<i32>) -> MetadataRecord {
    MetadataRecord::Partition {
        topic_id,
        partition,
        isr: replicas.clone(),
        leader: replicas[0],
        replicas,
        leader_epoch: 0,
        partition_epoch: 0,
    }
}

/// Kafka-style placement: partition `p`'s replicas start at broker `(start + p)`,
/// where `start` depends on the topic name, so leaders spread over the brokers.
/// Only the partitions in `partitions` are placed; the caller has bounded its length.
fn place_replicas(
    topic: &str,
    partitions: std::ops::Range<i32>,
    replication_factor: usize,
    brokers: &[i32],
) -> Vec<(i32, Vec<i32>)> {
    let start = topic
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
    partitions
        .map(|p| {
            let first = start.wrapping_add(p as usize);
            let replicas = (0..replication_factor)
                .map(|i| brokers[first.wrapping_add(i) % brokers.len()])
                .collect();
            (p, replicas)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Endpoint;

    fn image_with_brokers(ids: &[i32]) -> ClusterImage {
        let mut image = ClusterImage::default();
        for (offset, &node_id) in ids.iter().enumerate() {
            image
                .apply(
                    offset as i64,
                    &MetadataRecord::RegisterBroker {
                        node_id,
                        incarnation_id: Uuid::from_u128(node_id as u128),
                        broker_epoch: offset as i64,
                        endpoints: vec![Endpoint {
                            name: "PLAINTEXT".into(),
                            host: "127.0.0.1".into(),
                            port: 9092,
                            security_protocol: "PLAINTEXT".into(),
                        }],
                        features: Vec::new(),
                        rack: None,
                        fenced: false,
                        in_controlled_shutdown: false,
                    },
                )
                .unwrap();
        }
        image
    }

    fn any_config(name: &str, value: &str) -> Result<(), String> {
        if name == "bad" {
            Err(format!("Unknown topic config name: {name}"))
        } else if value == "x" {
            Err(format!("Invalid value {value} for configuration {name}"))
        } else {
            Ok(())
        }
    }

    fn spec(name: &str, partitions: i32, rf: i16) -> TopicSpec {
        TopicSpec {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: rf,
            ..TopicSpec::default()
        }
    }

    fn create(image: &mut ClusterImage, specs: &[TopicSpec]) -> Vec<CreateTopicOutcome> {
        let controller = Controller::default();
        let mut n = 0u128;
        let (outcomes, records) = controller.create_topics(image, specs, &any_config, &mut || {
            n += 1;
            Uuid::from_u128(n)
        });
        for record in &records {
            let offset = image.last_offset + 1;
            image.apply(offset, record).unwrap();
        }
        outcomes
    }

    fn error_of(outcome: &CreateTopicOutcome) -> ErrorCode {
        match &outcome.result {
            Ok(_) => ErrorCode::None,
            Err((code, _)) => *code,
        }
    }

    #[test]
    fn a_created_topic_has_its_partitions_led_by_the_single_broker() {
        let mut image = image_with_brokers(&[1]);
        let outcomes = create(&mut image, &[spec("orders", 3, 1)]);
        assert_eq!(error_of(&outcomes[0]), ErrorCode::None);
        let topic = image.topic("orders").unwrap();
        assert_eq!(topic.partitions.len(), 3);
        assert!(topic
            .partitions
            .values()
            .all(|p| p.leader == 1 && p.isr == vec![1] && p.leader_epoch == 0));
        assert_eq!(
            image.topic_by_id(&topic.topic_id).unwrap().name.as_ref(),
            "orders"
        );
    }

    #[test]
    fn defaults_apply_for_minus_one() {
        let mut image = image_with_brokers(&[1]);
        let outcomes = create(&mut image, &[spec("t", -1, -1)]);
        let created = outcomes[0].result.clone().unwrap();
        assert_eq!((created.num_partitions, created.replication_factor), (1, 1));
    }

    #[test]
    fn bad_requests_get_kafkas_error_codes() {
        let mut image = image_with_brokers(&[1]);
        create(&mut image, &[spec("exists", 1, 1)]);
        let mut with_bad_config = spec("c", 1, 1);
        with_bad_config.configs = vec![("bad".into(), Some("1".into()))];
        let mut with_null_config = spec("d", 1, 1);
        with_null_config.configs = vec![("retention.ms".into(), None)];
        let outcomes = create(
            &mut image,
            &[
                spec("exists", 1, 1),
                spec("bad name", 1, 1),
                spec("zero", 0, 1),
                spec("rf3", 1, 3),
                spec("rf0", 1, 0),
                with_bad_config,
                with_null_config,
                spec("dup", 1, 1),
                spec("dup", 1, 1),
                spec("exists_", 1, 1),
            ],
        );
        let codes: Vec<ErrorCode> = outcomes.iter().map(error_of).collect();
        assert_eq!(
            codes,
            vec![
                ErrorCode::TopicAlreadyExists,
                ErrorCode::InvalidTopicException,
                ErrorCode::InvalidPartitions,
                ErrorCode::InvalidReplicationFactor,
                ErrorCode::InvalidReplicationFactor,
                ErrorCode::InvalidConfig,
                ErrorCode::InvalidConfig,
                ErrorCode::InvalidRequest,
                ErrorCode::InvalidRequest,
                ErrorCode::None,
            ]
        );
        let outcomes = create(&mut image, &[spec("exists.", 1, 1)]);
        assert_eq!(
            error_of(&outcomes[0]),
            ErrorCode::InvalidTopicException,
            "collides after '.'/'_' normalisation"
        );
    }

    #[test]
    fn deletion_by_name_and_by_id() {
        let mut image = image_with_brokers(&[1]);
        create(&mut image, &[spec("a", 1, 1), spec("b", 1, 1)]);
        let b_id = image.topic("b").unwrap().topic_id;
        let controller = Controller::default();
        let (outcomes, records) = controller.delete_topics(
            &image,
            &[
                DeleteTarget::Name("a".into()),
                DeleteTarget::Id(b_id),
                DeleteTarget::Name("nope".into()),
                DeleteTarget::Id(Uuid::from_u128(999)),
            ],
        );
        let codes: Vec<ErrorCode> = outcomes.iter().map(|o| o.error).collect();
        assert_eq!(
            codes,
            vec![
                ErrorCode::None,
                ErrorCode::None,
                ErrorCode::UnknownTopicOrPartition,
                ErrorCode::UnknownTopicId
            ]
        );
        for record in &records {
            image.apply(image.last_offset + 1, record).unwrap();
        }
        assert!(image.topics.is_empty());
    }

    fn codes(outcomes: &[CreateTopicOutcome]) -> Vec<ErrorCode> {
        outcomes.iter().map(error_of).collect()
    }

    #[test]
    fn partition_counts_at_the_ends_of_i32_are_refused_before_anything_is_placed() {
        let image = image_with_brokers(&[1]);
        let controller = Controller::default();
        let (outcomes, records) = controller.create_topics(
            &image,
            &[spec("min", i32::MIN, 1), spec("max", i32::MAX, 1)],
            &any_config,
            &mut Uuid::new_v4,
        );
        assert_eq!(
            codes(&outcomes),
            vec![ErrorCode::PolicyViolation, ErrorCode::PolicyViolation]
        );
        assert_eq!(
            outcomes[0].result.clone().unwrap_err().1,
            "Excessively large number of partitions per request."
        );
        assert!(records.is_empty());
        // A negative count alone is Kafka's INVALID_PARTITIONS, not a wrapped sum.
        let (outcomes, _) = controller.create_topics(
            &image,
            &[spec("min", i32::MIN, 1), spec("ok", 2, 1)],
            &any_config,
            &mut Uuid::new_v4,
        );
        assert_eq!(
            codes(&outcomes),
            vec![ErrorCode::InvalidPartitions, ErrorCode::None]
        );
    }

    #[test]
    fn a_request_over_ten_thousand_partitions_or_records_is_refused_whole() {
        let image = image_with_brokers(&[1]);
        let controller = Controller::default();
        let specs = vec![spec("a", 5_000, 1), spec("b", 5_001, 1)];
        let (outcomes, records) =
            controller.create_topics(&image, &specs, &any_config, &mut Uuid::new_v4);
        assert_eq!(
            codes(&outcomes),
            vec![ErrorCode::PolicyViolation, ErrorCode::PolicyViolation]
        );
        assert!(records.is_empty());
        // 10,000 partitions are allowed, but with their topic records they make
        // 10,100 records: over Kafka's MAX_RECORDS_PER_USER_OP.
        let specs: Vec<TopicSpec> = (0..100).map(|i| spec(&format!("t{i}"), 100, 1)).collect();
        let (outcomes, records) =
            controller.create_topics(&image, &specs, &any_config, &mut Uuid::new_v4);
        assert!(outcomes.iter().all(|o| o.result
            == Err((
                ErrorCode::PolicyViolation,
                "Unable to perform excessively large batch operation.".into()
            ))));
        assert!(records.is_empty());
        let specs: Vec<TopicSpec> = (0..50).map(|i| spec(&format!("t{i}"), 100, 1)).collect();
        let (outcomes, records) =
            controller.create_topics(&image, &specs, &any_config, &mut Uuid::new_v4);
        assert!(outcomes.iter().all(|o| o.result.is_ok()));
        assert_eq!(records.len(), 50 * 101);
    }

    #[test]
    fn the_broker_wide_partition_limit_holds_across_requests() {
        let mut image = image_with_brokers(&[1]);
        let controller = Controller::new(ControllerConfig {
            max_broker_partitions: 5,
            ..ControllerConfig::default()
        });
        let apply = |image: &mut ClusterImage, records: Vec<MetadataRecord>| {
            for record in &records {
                image.apply(image.last_offset + 1, record).unwrap();
            }
        };
        let (outcomes, records) = controller.create_topics(
            &image,
            &[spec("a", 3, 1), spec("b", 3, 1), spec("c", 2, 1)],
            &any_config,
            &mut Uuid::new_v4,
        );
        assert_eq!(
            codes(&outcomes),
            vec![ErrorCode::None, ErrorCode::PolicyViolation, ErrorCode::None]
        );
        apply(&mut image, records);
        let grow = |count| PartitionIncrease {
            topic: "a".into(),
            count,
            assignments: None,
        };
        let (outcomes, records) = controller.create_partitions(&image, &[grow(4)]);
        assert_eq!(
            outcomes[0].1.clone().unwrap_err().0,
            ErrorCode::PolicyViolation
        );
        assert!(records.is_empty());
    }

    #[test]
    fn create_partitions_to_i32_max_is_refused_without_placing_anything() {
        let mut image = image_with_brokers(&[1]);
        create(&mut image, &[spec("t", 1, 1), spec("u", 1, 1)]);
        let controller = Controller::default();
        let increase = |topic: &str, count, assignments| PartitionIncrease {
            topic: topic.into(),
            count,
            assignments,
        };
        let (outcomes, records) =
            controller.create_partitions(&image, &[increase("t", i32::MAX, None)]);
        assert_eq!(
            outcomes[0].1,
            Err((ErrorCode::PolicyViolation, TOO_MANY_PARTITIONS.into()))
        );
        assert!(records.is_empty());
        // The per-request bound is over the whole request.
        let (outcomes, records) = controller.create_partitions(
            &image,
            &[increase("t", 6_001, None), increase("u", 6_001, None)],
        );
        assert!(outcomes[0].1.is_ok());
        assert_eq!(
            outcomes[1].1.clone().unwrap_err().0,
            ErrorCode::PolicyViolation
        );
        assert_eq!(records.len(), 6_000);
        // Manual assignments: Kafka's checks, duplicates included.
        let (outcomes, _) = controller.create_partitions(
            &image,
            &[
                increase("t", 2, Some(vec![vec![1, 1]])),
                increase("u", 2, Some(vec![vec![]])),
            ],
        );
        assert_eq!(
            outcomes[0].1.clone().unwrap_err().0,
            ErrorCode::InvalidReplicaAssignment
        );
        assert_eq!(
            outcomes[1].1.clone().unwrap_err().0,
            ErrorCode::InvalidReplicaAssignment
        );
    }

    #[test]
    fn auto_creation_takes_as_many_topics_as_one_request_may_create() {
        let controller = Controller::default();
        let names: Vec<String> = (0..20_000).map(|i| format!("t{i}")).collect();
        let specs = controller.auto_create_specs(&names);
        assert_eq!(specs.len(), 5_000);
        let image = image_with_brokers(&[1]);
        let (outcomes, records) =
            controller.create_topics(&image, &specs, &any_config, &mut Uuid::new_v4);
        assert!(outcomes.iter().all(|o| o.result.is_ok()));
        assert_eq!(records.len(), 10_000);
    }
}
