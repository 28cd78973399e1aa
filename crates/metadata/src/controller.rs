//! The controller's decisions: admin requests in, metadata records out.
//!
//! Sans-IO: each call reads the current image and returns per-item outcomes plus the
//! records that make them so. The caller persists the records (in order, all or
//! none) and applies them to the image; only then are the outcomes answered. With
//! `validate_only` the outcomes are answered and the records dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

use uuid::Uuid;

use crate::error::ControllerError;
use crate::image::ClusterImage;
use crate::placement::{self, split_mix, PlacementRandom, UsableBroker, GOLDEN_GAMMA};
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

/// One topic's answer to CreateTopics. The broker's controller client answers
/// with its own error type, which adds what it checks and commits itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTopicOutcome<E = ControllerError> {
    pub name: String,
    pub result: Result<CreatedTopic, E>,
}

impl<E> CreateTopicOutcome<E> {
    pub fn map_err<F>(self, f: impl FnOnce(E) -> F) -> CreateTopicOutcome<F> {
        CreateTopicOutcome {
            name: self.name,
            result: self.result.map_err(f),
        }
    }
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

/// One topic's answer to DeleteTopics (the error type as for
/// [`CreateTopicOutcome`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteTopicOutcome<E = ControllerError> {
    pub name: Option<String>,
    pub topic_id: Uuid,
    pub result: Result<(), E>,
}

impl<E> DeleteTopicOutcome<E> {
    pub fn map_err<F>(self, f: impl FnOnce(E) -> F) -> DeleteTopicOutcome<F> {
        DeleteTopicOutcome {
            name: self.name,
            topic_id: self.topic_id,
            result: self.result.map_err(f),
        }
    }
}

/// Validates one topic config key and value; the error message goes to the client.
pub type ConfigValidator<'a> = &'a dyn Fn(&str, &str) -> Result<(), String>;

#[derive(Debug, Default)]
pub struct Controller {
    pub config: ControllerConfig,
    /// The state of the placement draws of [`Controller::create_topics`] and
    /// [`Controller::create_partitions`] (SplitMix64, from a seed).
    placement_draws: AtomicU64,
}

impl Clone for Controller {
    fn clone(&self) -> Controller {
        Controller {
            config: self.config.clone(),
            placement_draws: AtomicU64::new(self.placement_draws.load(Ordering::Relaxed)),
        }
    }
}

/// Placement draws from a controller's shared SplitMix64 state.
struct SharedDraws<'a>(&'a AtomicU64);

impl PlacementRandom for SharedDraws<'_> {
    fn next_int(&mut self, bound: usize) -> usize {
        let state = self
            .0
            .fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)
            .wrapping_add(GOLDEN_GAMMA);
        (split_mix(state) % bound.max(1) as u64) as usize
    }
}

/// Where new partitions may go: the usable brokers, and the draws that place
/// them (Kafka's StripedReplicaPlacer, [`crate::placement`]).
pub struct Placement<'a> {
    pub usable: Vec<UsableBroker>,
    pub random: &'a mut dyn PlacementRandom,
}

impl Controller {
    pub fn new(config: ControllerConfig) -> Controller {
        Controller {
            config,
            placement_draws: AtomicU64::new(0),
        }
    }

    /// A controller whose placements draw from `seed` (a running broker seeds
    /// it randomly; tests pick one).
    pub fn with_placement_seed(config: ControllerConfig, seed: u64) -> Controller {
        Controller {
            config,
            placement_draws: AtomicU64::new(seed),
        }
    }

    /// Decides a CreateTopics request, placing on the brokers the image shows as
    /// usable with the controller's own draws.
    pub fn create_topics(
        &self,
        image: &ClusterImage,
        specs: &[TopicSpec],
        validate_config: ConfigValidator<'_>,
        new_id: &mut dyn FnMut() -> Uuid,
    ) -> (Vec<CreateTopicOutcome>, Vec<MetadataRecord>) {
        let mut draws = SharedDraws(&self.placement_draws);
        let mut placement = Placement {
            usable: placement::usable_brokers(image),
            random: &mut draws,
        };
        self.create_topics_placed(image, specs, validate_config, new_id, &mut placement)
    }

    /// Decides a CreateTopics request; automatic assignments come from
    /// `placement`. A partition's ISR is its active replicas (unfenced, not in
    /// controlled shutdown), led by the first of them.
    pub fn create_topics_placed(
        &self,
        image: &ClusterImage,
        specs: &[TopicSpec],
        validate_config: ConfigValidator<'_>,
        new_id: &mut dyn FnMut() -> Uuid,
        placement: &mut Placement<'_>,
    ) -> (Vec<CreateTopicOutcome>, Vec<MetadataRecord>) {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for spec in specs {
            *seen.entry(spec.name.as_str()).or_default() += 1;
        }
        // Kafka's validateTotalNumberOfPartitions: an upper bound on what the request
        // asks for, summed without overflow, checked before anything is placed.
        if self.requested_partitions(specs) > self.config.max_partitions_per_request {
            return (
                refuse_all(specs, ControllerError::TooManyPartitions),
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
                Err(ControllerError::DuplicateTopicName)
            } else {
                self.create_one(image, spec, validate_config, &created_keys, placement)
            };
            let result = result.and_then(|(topic, partitions)| {
                self.claim_broker_capacity(
                    &mut hosted,
                    partitions.iter().map(|(_, r, _)| r.as_slice()),
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
                for (partition, replicas, isr) in partitions {
                    records.push(partition_record(topic.topic_id, partition, replicas, isr));
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
                refuse_all(specs, ControllerError::TooManyRecords),
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
    ) -> Result<(), ControllerError> {
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
                return Err(ControllerError::BrokerPartitionLimit {
                    broker: *broker,
                    hosted: now,
                    adding: *more,
                    limit,
                });
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
        placement: &mut Placement<'_>,
    ) -> Result<(CreatedTopic, Vec<NewPartition>), ControllerError> {
        if spec.name == "__cluster_metadata" {
            return Err(ControllerError::ClusterMetadataTopic);
        }
        topic_name::validate(&spec.name).map_err(ControllerError::InvalidTopicName)?;
        if image.topic(&spec.name).is_some() {
            return Err(ControllerError::TopicAlreadyExists(spec.name.clone()));
        }
        let key = topic_name::collision_key(&spec.name);
        if let Some(existing) = image
            .topics
            .keys()
            .find(|t| topic_name::collision_key(t) == key)
        {
            return Err(ControllerError::CollidesWithExisting {
                topic: spec.name.clone(),
                existing: existing.to_string(),
            });
        }
        if created_in_request.contains(&key) {
            return Err(ControllerError::CollidesInRequest(spec.name.clone()));
        }
        let mut configs = BTreeMap::new();
        for (name, value) in &spec.configs {
            let Some(value) = value else {
                return Err(ControllerError::NullConfigValue(name.clone()));
            };
            validate_config(name, value).map_err(ControllerError::InvalidConfig)?;
            configs.insert(name.clone(), value.clone());
        }
        let partitions = if !spec.assignments.is_empty() {
            if spec.num_partitions != -1 || spec.replication_factor != -1 {
                return Err(ControllerError::CountsWithAssignments);
            }
            check_assignments(image, &spec.assignments)?
        } else {
            let replication_factor = if spec.replication_factor == -1 {
                self.config.default_replication_factor
            } else {
                spec.replication_factor
            };
            if replication_factor <= 0 {
                return Err(ControllerError::InvalidReplicationFactor(
                    "Replication factor must be larger than 0, or -1 to use the default value."
                        .into(),
                ));
            }
            let num_partitions = self.resolve_partitions(spec.num_partitions);
            if num_partitions <= 0 {
                return Err(ControllerError::InvalidPartitions(
                    "Number of partitions was set to an invalid non-positive value.".into(),
                ));
            }
            let cannot = |why: String| {
                ControllerError::InvalidReplicationFactor(format!(
                    "Unable to replicate the partition {replication_factor} time(s): {why}"
                ))
            };
            // The request's partition count was bounded before anything is placed.
            let placed = placement::place(
                &mut *placement.random,
                &placement.usable,
                num_partitions as usize,
                i32::from(replication_factor),
            )
            .map_err(|e| cannot(e.to_string()))?;
            let mut partitions = Vec::with_capacity(placed.len());
            for (partition, replicas) in (0..num_partitions).zip(placed) {
                let isr = active_replicas(image, &replicas);
                if isr.is_empty() {
                    return Err(cannot(
                        "All brokers are currently fenced or in controlled shutdown.".into(),
                    ));
                }
                partitions.push((partition, replicas, isr));
            }
            partitions
        };
        let replication_factor = partitions
            .first()
            .map(|(_, r, _)| r.len() as i16)
            .unwrap_or(0);
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
            let outcome = |name: Option<String>, topic_id: Uuid, result| DeleteTopicOutcome {
                name,
                topic_id,
                result,
            };
            let resolved = match target {
                DeleteTarget::Malformed { name, id } => {
                    outcomes.push(outcome(
                        name.clone(),
                        *id,
                        Err(ControllerError::NameOrIdRequired),
                    ));
                    continue;
                }
                DeleteTarget::Name(name) if duplicate_names.contains(name.as_str()) => {
                    outcomes.push(outcome(
                        Some(name.clone()),
                        Uuid::nil(),
                        Err(ControllerError::DuplicateTopicName),
                    ));
                    continue;
                }
                DeleteTarget::Name(name) => image.topic(name).ok_or_else(|| {
                    outcome(
                        Some(name.clone()),
                        Uuid::nil(),
                        Err(ControllerError::UnknownTopic),
                    )
                }),
                DeleteTarget::Id(id) => image
                    .topic_by_id(id)
                    .ok_or_else(|| outcome(None, *id, Err(ControllerError::UnknownTopicId))),
            };
            let topic = match resolved {
                Ok(topic) => topic,
                Err(error) => {
                    outcomes.push(error);
                    continue;
                }
            };
            let name = Some(topic.name.to_string());
            if !self.config.delete_topic_enable {
                outcomes.push(outcome(
                    name,
                    topic.topic_id,
                    Err(ControllerError::TopicDeletionDisabled),
                ));
                continue;
            }
            if !seen_ids.insert(topic.topic_id) {
                outcomes.push(outcome(
                    name,
                    topic.topic_id,
                    Err(ControllerError::DuplicateTopicId),
                ));
                continue;
            }
            records.push(MetadataRecord::RemoveTopic {
                topic_id: topic.topic_id,
            });
            outcomes.push(outcome(name, topic.topic_id, Ok(())));
        }
        (outcomes, records)
    }
}

/// Each topic's outcome of a CreatePartitions request (the error type as for
/// [`CreateTopicOutcome`]).
pub type PartitionOutcomes<E = ControllerError> = Vec<(String, Result<(), E>)>;

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
    /// Decides a CreatePartitions request, placing on the brokers the image shows
    /// as usable with the controller's own draws.
    pub fn create_partitions(
        &self,
        image: &ClusterImage,
        increases: &[PartitionIncrease],
    ) -> (PartitionOutcomes, Vec<MetadataRecord>) {
        let mut draws = SharedDraws(&self.placement_draws);
        let mut placement = Placement {
            usable: placement::usable_brokers(image),
            random: &mut draws,
        };
        self.create_partitions_placed(image, increases, &mut placement)
    }

    /// Decides a CreatePartitions request: per-topic errors and the new
    /// partitions, placed by `placement` unless assigned; each one's ISR is its
    /// active replicas.
    pub fn create_partitions_placed(
        &self,
        image: &ClusterImage,
        increases: &[PartitionIncrease],
        placement: &mut Placement<'_>,
    ) -> (PartitionOutcomes, Vec<MetadataRecord>) {
        let mut outcomes = Vec::with_capacity(increases.len());
        let mut records = Vec::new();
        let mut seen = BTreeSet::new();
        let mut hosted = replicas_per_broker(image);
        let mut added_in_request = 0u64;
        for increase in increases {
            let result = if seen.insert(increase.topic.as_str()) {
                let mut request = AddRequest {
                    added: &mut added_in_request,
                    hosted: &mut hosted,
                    placement: &mut *placement,
                };
                self.add_partitions(image, increase, &mut request)
            } else {
                Err(ControllerError::DuplicateTopicInRequest)
            };
            let result = result.map(|(topic_id, placed)| {
                for (partition, replicas, isr) in placed {
                    records.push(partition_record(topic_id, partition, replicas, isr));
                }
            });
            outcomes.push((increase.topic.clone(), result));
        }
        (outcomes, records)
    }

    /// Checks one topic's increase and places its new partitions: the topic id
    /// and each new partition. Every count is checked before anything is
    /// allocated for it.
    fn add_partitions(
        &self,
        image: &ClusterImage,
        increase: &PartitionIncrease,
        request: &mut AddRequest<'_, '_>,
    ) -> Result<(Uuid, Vec<NewPartition>), ControllerError> {
        let Some(topic) = image.topic(&increase.topic) else {
            return Err(ControllerError::NoSuchTopic(increase.topic.clone()));
        };
        let current = i32::try_from(topic.partitions.len())
            .expect("a topic's partition count was checked against i32 when it was created");
        if increase.count < current {
            return Err(ControllerError::InvalidPartitions(format!(
                "The topic {} currently has {current} partition(s); {} would not be an increase.",
                increase.topic, increase.count
            )));
        }
        if increase.count == current {
            return Err(ControllerError::InvalidPartitions(format!(
                "Topic already has {current} partition(s)."
            )));
        }
        // count > current >= 0: no overflow.
        let new_count = (increase.count - current) as u64;
        if request.added.saturating_add(new_count) > self.config.max_partitions_per_request
            || request.added.saturating_add(new_count) > self.config.max_records_per_user_op as u64
        {
            return Err(ControllerError::TooManyPartitions);
        }
        let rf = topic
            .partitions
            .values()
            .next()
            .map(|p| p.replicas.len())
            .unwrap_or(1);
        let replica_sets: Vec<Vec<i32>> = match &increase.assignments {
            Some(assignments) => {
                if assignments.len() as u64 != new_count {
                    return Err(ControllerError::InvalidReplicaAssignment(format!("Attempted to add {new_count} additional partition(s), but only {} assignment(s) were specified.", assignments.len())));
                }
                for (i, replicas) in assignments.iter().enumerate() {
                    check_manual_assignment(image, replicas, Some(rf))?;
                    if active_replicas(image, replicas).is_empty() {
                        return Err(ControllerError::InvalidReplicaAssignment(format!("All brokers specified in the manual partition assignment for partition {} are fenced or in controlled shutdown.", current as usize + i)));
                    }
                }
                assignments.clone()
            }
            None => placement::place(
                &mut *request.placement.random,
                &request.placement.usable,
                new_count as usize,
                i32::try_from(rf).unwrap_or(i32::MAX),
            )
            .map_err(|e| ControllerError::InvalidReplicationFactor(e.to_string()))?,
        };
        let mut placed = Vec::with_capacity(replica_sets.len());
        for (partition, replicas) in (current..increase.count).zip(replica_sets) {
            let isr = active_replicas(image, &replicas);
            if isr.is_empty() {
                return Err(ControllerError::InvalidReplicationFactor(format!("Unable to replicate the partition {rf} time(s): All brokers are currently fenced or in controlled shutdown.")));
            }
            placed.push((partition, replicas, isr));
        }
        self.claim_broker_capacity(request.hosted, placed.iter().map(|(_, r, _)| r.as_slice()))?;
        *request.added += new_count;
        Ok((topic.topic_id, placed))
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
fn refuse_all(specs: &[TopicSpec], error: ControllerError) -> Vec<CreateTopicOutcome> {
    specs
        .iter()
        .map(|spec| CreateTopicOutcome {
            name: spec.name.clone(),
            result: Err(error.clone()),
        })
        .collect()
}

/// What one CreatePartitions request has claimed so far, and where it places.
struct AddRequest<'r, 'p> {
    added: &'r mut u64,
    hosted: &'r mut BTreeMap<i32, u64>,
    placement: &'r mut Placement<'p>,
}

/// A new partition: its index, replicas and ISR.
type NewPartition = (i32, Vec<i32>, Vec<i32>);

/// CreateTopics' manual assignments, checked as Kafka's `createTopic` does:
/// per entry a repeated index, the replicas, an all-inactive ISR; then the
/// indexes must run from 0 without a gap. The partitions in index order.
fn check_assignments(
    image: &ClusterImage,
    assignments: &[(i32, Vec<i32>)],
) -> Result<Vec<NewPartition>, ControllerError> {
    let mut partitions: BTreeMap<i32, (Vec<i32>, Vec<i32>)> = BTreeMap::new();
    let mut rf = None;
    for (partition, replicas) in assignments {
        if partitions.contains_key(partition) {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "Found multiple manual partition assignments for partition {partition}"
            )));
        }
        check_manual_assignment(image, replicas, rf)?;
        rf = Some(replicas.len());
        let isr = active_replicas(image, replicas);
        if isr.is_empty() {
            return Err(ControllerError::InvalidReplicaAssignment(format!("All brokers specified in the manual partition assignment for partition {partition} are fenced or in controlled shutdown.")));
        }
        partitions.insert(*partition, (replicas.clone(), isr));
    }
    if partitions
        .keys()
        .enumerate()
        .any(|(i, p)| *p as i64 != i as i64)
    {
        return Err(ControllerError::InvalidReplicaAssignment(
            "partitions should be a consecutive 0-based integer sequence".into(),
        ));
    }
    Ok(partitions
        .into_iter()
        .map(|(p, (replicas, isr))| (p, replicas, isr))
        .collect())
}

/// Kafka's `validateManualPartitionAssignment`: not empty, every broker
/// registered and named once, and as many replicas as the other partitions.
fn check_manual_assignment(
    image: &ClusterImage,
    replicas: &[i32],
    replication_factor: Option<usize>,
) -> Result<(), ControllerError> {
    let refuse = |why: String| Err(ControllerError::InvalidReplicaAssignment(why));
    if replicas.is_empty() {
        return refuse("The manual partition assignment includes an empty replica list.".into());
    }
    let mut sorted = replicas.to_vec();
    sorted.sort_unstable();
    let mut previous = None;
    for broker in sorted {
        if !image.brokers.contains_key(&broker) {
            return refuse(format!("The manual partition assignment includes broker {broker}, but no such broker is registered."));
        }
        if previous == Some(broker) {
            return refuse(format!(
                "The manual partition assignment includes the broker {broker} more than once."
            ));
        }
        previous = Some(broker);
    }
    match replication_factor {
        Some(rf) if rf != replicas.len() => refuse(format!("The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {rf} replica(s).", replicas.len())),
        _ => Ok(()),
    }
}

/// The replicas that may be in a new partition's ISR: the active ones
/// (registered, unfenced, not in controlled shutdown), in replica order.
pub fn active_replicas(image: &ClusterImage, replicas: &[i32]) -> Vec<i32> {
    replicas
        .iter()
        .copied()
        .filter(|b| image.is_active(*b))
        .collect()
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

/// A new partition's record: led by the first replica of its ISR, epochs 0.
fn partition_record(
    topic_id: Uuid,
    partition: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
) -> MetadataRecord {
    MetadataRecord::Partition {
        topic_id,
        partition,
        leader: isr[0],
        isr,
        replicas,
        leader_epoch: 0,
        partition_epoch: 0,
    }
}

#[cfg(test)]
#[path = "controller_tests.rs"]
mod tests;
