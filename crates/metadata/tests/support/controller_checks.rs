//! Checks of the controller's CreateTopics and CreatePartitions decisions on
//! arbitrary requests, shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/create_topics.rs`, `create_partitions.rs`) and the stable,
//! seeded `crates/metadata/tests/controller_fuzz.rs`.
//!
//! The input bytes are read as the request's numbers (counts picked from the edges
//! of their types more often than not) and the cluster around it. Whatever they
//! are, the controller must answer every item with a Kafka error or a creation,
//! emit at most Kafka's 10,000 records, place no more than 10,000 partitions per
//! request nor past `max.broker.partitions`, and its records must apply.

use std::collections::BTreeMap;

use metadata::controller::{
    Controller, ControllerConfig, PartitionIncrease, TopicSpec, MAX_PARTITIONS_PER_REQUEST,
    MAX_RECORDS_PER_USER_OP,
};
use metadata::records::{Endpoint, FencingChange, MetadataRecord};
use metadata::{ClusterImage, ControllerError};
use uuid::Uuid;

/// Reads the input as numbers; zeros once it runs out.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((first, rest)) => {
                self.data = rest;
                *first
            }
            None => 0,
        }
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// An i32 from the edges of the type, or small, or anything.
    pub fn count(&mut self) -> i32 {
        const EDGES: [i32; 12] = [
            i32::MIN,
            i32::MIN + 1,
            -2,
            -1,
            0,
            1,
            2,
            9_999,
            10_000,
            10_001,
            i32::MAX - 1,
            i32::MAX,
        ];
        match self.u8() % 4 {
            0 | 1 => EDGES[self.u8() as usize % EDGES.len()],
            2 => i32::from(self.u8() % 16),
            _ => self.u32() as i32,
        }
    }

    pub fn replication_factor(&mut self) -> i16 {
        const EDGES: [i16; 8] = [i16::MIN, -2, -1, 0, 1, 2, 3, i16::MAX];
        EDGES[self.u8() as usize % EDGES.len()]
    }

    pub fn broker_id(&mut self) -> i32 {
        // Mostly registered brokers (1..=3), sometimes not.
        match self.u8() % 8 {
            7 => self.u32() as i32,
            n => i32::from(n % 4),
        }
    }

    pub fn name(&mut self) -> String {
        const NAMES: [&str; 10] = [
            "a",
            "b",
            "a.b",
            "a_b",
            "__consumer_offsets",
            "__cluster_metadata",
            "",
            "..",
            "bad name",
            "existing",
        ];
        match self.u8() % 12 {
            10 => "x".repeat(250),
            11 => format!("t{}", self.u8()),
            n => NAMES[n as usize].to_string(),
        }
    }
}

/// A cluster of 1-3 brokers with a topic "existing" of 1-8 partitions; the
/// last broker is sometimes fenced or in controlled shutdown.
pub fn image(input: &mut Input<'_>) -> ClusterImage {
    let mut image = ClusterImage::default();
    let shape = input.u8();
    let brokers = 1 + i32::from(shape % 3);
    let apply = |image: &mut ClusterImage, record: MetadataRecord| {
        let offset = image.last_offset + 1;
        image.apply(offset, &record).expect("setup records apply");
    };
    for node_id in 1..=brokers {
        let broker_epoch = image.last_offset + 1;
        apply(
            &mut image,
            MetadataRecord::RegisterBroker {
                node_id,
                incarnation_id: Uuid::from_u128(node_id as u128),
                broker_epoch,
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
        );
    }
    let topic_id = Uuid::from_u128(77);
    apply(
        &mut image,
        MetadataRecord::Topic {
            name: "existing".into(),
            topic_id,
        },
    );
    for partition in 0..1 + i32::from(input.u8() % 8) {
        let replicas: Vec<i32> = (1..=brokers).collect();
        apply(
            &mut image,
            MetadataRecord::Partition {
                topic_id,
                partition,
                isr: replicas.clone(),
                leader: replicas[0],
                replicas,
                leader_epoch: 0,
                partition_epoch: 0,
            },
        );
    }
    // The same byte as the broker count, so inputs keep their meaning.
    let (fence, shut_down) = match (shape / 3) % 4 {
        1 => (true, false),
        2 => (false, true),
        _ => (false, false),
    };
    if fence || shut_down {
        let broker_epoch = image.brokers[&brokers].broker_epoch;
        apply(
            &mut image,
            MetadataRecord::BrokerRegistrationChange {
                broker_id: brokers,
                broker_epoch,
                fenced: if fence {
                    FencingChange::Fence
                } else {
                    FencingChange::None
                },
                in_controlled_shutdown: shut_down,
            },
        );
    }
    image
}

/// Every new partition's ISR is its active replicas, led by the first of them.
fn check_new_partitions(image: &ClusterImage, records: &[MetadataRecord]) {
    for record in records {
        if let MetadataRecord::Partition {
            replicas,
            isr,
            leader,
            ..
        } = record
        {
            let active: Vec<i32> = replicas
                .iter()
                .copied()
                .filter(|b| image.is_active(*b))
                .collect();
            assert_eq!(isr, &active, "ISR of {replicas:?}");
            assert_eq!(Some(leader), isr.first(), "leader of {replicas:?}");
        }
    }
}

pub fn controller(input: &mut Input<'_>) -> Controller {
    Controller::new(ControllerConfig {
        num_partitions: 1 + i32::from(input.u8() % 4),
        default_replication_factor: 1,
        max_broker_partitions: match input.u8() % 3 {
            0 => 20,
            1 => 10_005,
            _ => 100_000,
        },
        ..ControllerConfig::default()
    })
}

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

fn assignment(input: &mut Input<'_>, index: i32) -> (i32, Vec<i32>) {
    let partition = if input.u8().is_multiple_of(8) {
        input.count()
    } else {
        index
    };
    let replicas = (0..input.u8() % 5).map(|_| input.broker_id()).collect();
    (partition, replicas)
}

/// Assignment counts: small, or just over the request limit (the request's own
/// bytes bound them in the broker; here they cost the fuzzer's memory).
fn assignment_count(input: &mut Input<'_>) -> usize {
    match input.u8() % 16 {
        0 => 10_001,
        1..=8 => 0,
        n => usize::from(n - 8),
    }
}

/// Applies `records` to `image`; every record the controller emits must apply.
fn apply_all(image: &mut ClusterImage, records: &[MetadataRecord]) {
    for record in records {
        let offset = image.last_offset + 1;
        image
            .apply(offset, record)
            .unwrap_or_else(|e| panic!("controller record does not apply: {e}: {record:?}"));
    }
}

fn check_broker_limit(controller: &Controller, before: &ClusterImage, after: &ClusterImage) {
    let old = replicas_per_broker(before);
    for (broker, count) in replicas_per_broker(after) {
        let limit = controller.config.max_broker_partitions;
        assert!(
            count <= limit.max(old.get(&broker).copied().unwrap_or(0)),
            "broker {broker} hosts {count} replicas, over max.broker.partitions {limit}"
        );
    }
}

/// Checks one CreateTopics decision; returns each topic's answer (None: created).
pub fn check_create_topics(data: &[u8]) -> Vec<Option<&'static str>> {
    let mut input = Input::new(data);
    let mut image = image(&mut input);
    let controller = controller(&mut input);
    let specs: Vec<TopicSpec> = (0..input.u8() % 6)
        .map(|_| {
            let name = input.name();
            let assignments = (0..assignment_count(&mut input) as i32)
                .map(|i| assignment(&mut input, i))
                .collect();
            let configs = (0..input.u8() % 3)
                .map(|_| match input.u8() % 3 {
                    0 => ("retention.ms".to_string(), Some("1000".to_string())),
                    1 => ("bad".to_string(), Some("x".to_string())),
                    _ => ("retention.ms".to_string(), None),
                })
                .collect();
            TopicSpec {
                name,
                num_partitions: input.count(),
                replication_factor: input.replication_factor(),
                assignments,
                configs,
            }
        })
        .collect();
    let requested: i128 = specs
        .iter()
        .map(|s| {
            if !s.assignments.is_empty() {
                s.assignments.len() as i128
            } else if s.num_partitions == -1 {
                i128::from(controller.config.num_partitions)
            } else {
                i128::from(s.num_partitions.max(0))
            }
        })
        .sum();
    let validate = |name: &str, value: &str| -> Result<(), String> {
        if name == "bad" || value == "x" {
            Err(format!("Invalid value {value} for configuration {name}"))
        } else {
            Ok(())
        }
    };
    let mut next = 0u128;
    let (outcomes, records) = controller.create_topics(&image, &specs, &validate, &mut || {
        next += 1;
        Uuid::from_u128(1000 + next)
    });
    assert_eq!(outcomes.len(), specs.len());
    for (outcome, spec) in outcomes.iter().zip(&specs) {
        assert_eq!(outcome.name, spec.name);
    }
    assert!(records.len() <= MAX_RECORDS_PER_USER_OP);
    if requested > i128::from(MAX_PARTITIONS_PER_REQUEST as u32) {
        assert!(
            records.is_empty(),
            "{requested} partitions asked for, records emitted"
        );
        for outcome in &outcomes {
            let error = outcome.result.as_ref().expect_err("over the request bound");
            assert_eq!(*error, ControllerError::TooManyPartitions);
        }
    }
    let placed = records
        .iter()
        .filter(|r| matches!(r, MetadataRecord::Partition { .. }))
        .count();
    assert!(placed as u64 <= MAX_PARTITIONS_PER_REQUEST);
    let mut created = 0usize;
    for outcome in &outcomes {
        match &outcome.result {
            Ok(topic) => {
                assert!(topic.num_partitions > 0);
                assert!(topic.replication_factor > 0);
                assert!(topic.replication_factor as usize <= image.brokers.len());
                created += topic.num_partitions as usize;
            }
            Err(error) => {
                assert!(!error.to_string().is_empty());
                assert!(
                    !matches!(
                        error,
                        ControllerError::DuplicateTopicId
                            | ControllerError::DuplicateTopicInRequest
                            | ControllerError::NameOrIdRequired
                            | ControllerError::NoSuchTopic(_)
                            | ControllerError::UnknownTopic
                            | ControllerError::UnknownTopicId
                            | ControllerError::TopicDeletionDisabled
                            | ControllerError::NoSuchConfigTopic(_)
                            | ControllerError::NotDynamic(_)
                            | ControllerError::LogLimit(_)
                            | ControllerError::CommitFailed(_)
                    ),
                    "unexpected {error:?}"
                );
            }
        }
    }
    assert_eq!(created, placed);
    check_new_partitions(&image, &records);
    let before = image.clone();
    apply_all(&mut image, &records);
    check_broker_limit(&controller, &before, &image);
    outcomes
        .iter()
        .map(|o| o.result.as_ref().err().map(kind))
        .collect()
}

/// Checks one CreatePartitions decision; returns each topic's answer (None: grown).
pub fn check_create_partitions(data: &[u8]) -> Vec<Option<&'static str>> {
    let mut input = Input::new(data);
    let mut image = image(&mut input);
    let controller = controller(&mut input);
    // A second topic to grow, created through the controller itself.
    let (_, records) = controller.create_topics(
        &image,
        &[TopicSpec {
            name: "second".into(),
            num_partitions: 1 + i32::from(input.u8() % 4),
            replication_factor: -1,
            ..TopicSpec::default()
        }],
        &|_, _| Ok(()),
        &mut || Uuid::from_u128(88),
    );
    apply_all(&mut image, &records);
    let increases: Vec<PartitionIncrease> = (0..input.u8() % 5)
        .map(|_| {
            let topic = match input.u8() % 4 {
                0 => "existing".to_string(),
                1 => "second".to_string(),
                _ => input.name(),
            };
            let count = input.count();
            let assignments = input.u8().is_multiple_of(3).then(|| {
                (0..assignment_count(&mut input) as i32)
                    .map(|i| assignment(&mut input, i).1)
                    .collect()
            });
            PartitionIncrease {
                topic,
                count,
                assignments,
            }
        })
        .collect();
    let (outcomes, records) = controller.create_partitions(&image, &increases);
    assert_eq!(outcomes.len(), increases.len());
    assert!(records.len() as u64 <= MAX_PARTITIONS_PER_REQUEST);
    let mut added: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for record in &records {
        match record {
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                leader,
                ..
            } => {
                assert!(!replicas.is_empty());
                assert!(replicas.contains(leader));
                added.entry(*topic_id).or_default().push(*partition);
            }
            other => panic!("CreatePartitions emitted {other:?}"),
        }
    }
    // New partitions continue each topic's numbering without gaps.
    for (topic_id, partitions) in &added {
        let topic = image
            .topic_by_id(topic_id)
            .expect("records name known topics");
        let current = topic.partitions.len() as i32;
        let expected: Vec<i32> = (current..current + partitions.len() as i32).collect();
        assert_eq!(partitions, &expected);
    }
    for ((name, result), increase) in outcomes.iter().zip(&increases) {
        assert_eq!(name, &increase.topic);
        if let Err(error) = result {
            assert!(!error.to_string().is_empty());
            assert!(
                matches!(
                    error,
                    ControllerError::TooManyPartitions
                        | ControllerError::BrokerPartitionLimit { .. }
                        | ControllerError::DuplicateTopicInRequest
                        | ControllerError::NoSuchTopic(_)
                        | ControllerError::InvalidPartitions(_)
                        | ControllerError::InvalidReplicationFactor(_)
                        | ControllerError::InvalidReplicaAssignment(_)
                ),
                "unexpected {error:?}"
            );
        }
    }
    check_new_partitions(&image, &records);
    let before = image.clone();
    apply_all(&mut image, &records);
    check_broker_limit(&controller, &before, &image);
    outcomes
        .iter()
        .map(|(_, r)| r.as_ref().err().map(kind))
        .collect()
}

/// The variant's name, for the answers a run reached.
pub fn kind(error: &ControllerError) -> &'static str {
    match error {
        ControllerError::TooManyPartitions => "TooManyPartitions",
        ControllerError::TooManyRecords => "TooManyRecords",
        ControllerError::BrokerPartitionLimit { .. } => "BrokerPartitionLimit",
        ControllerError::DuplicateTopicName => "DuplicateTopicName",
        ControllerError::DuplicateTopicId => "DuplicateTopicId",
        ControllerError::DuplicateTopicInRequest => "DuplicateTopicInRequest",
        ControllerError::NameOrIdRequired => "NameOrIdRequired",
        ControllerError::ClusterMetadataTopic => "ClusterMetadataTopic",
        ControllerError::InvalidTopicName(_) => "InvalidTopicName",
        ControllerError::TopicAlreadyExists(_) => "TopicAlreadyExists",
        ControllerError::CollidesWithExisting { .. } => "CollidesWithExisting",
        ControllerError::CollidesInRequest(_) => "CollidesInRequest",
        ControllerError::NullConfigValue(_) => "NullConfigValue",
        ControllerError::InvalidConfig(_) => "InvalidConfig",
        ControllerError::CountsWithAssignments => "CountsWithAssignments",
        ControllerError::InvalidReplicaAssignment(_) => "InvalidReplicaAssignment",
        ControllerError::InvalidReplicationFactor(_) => "InvalidReplicationFactor",
        ControllerError::InvalidPartitions(_) => "InvalidPartitions",
        ControllerError::NoSuchTopic(_) => "NoSuchTopic",
        ControllerError::UnknownTopic => "UnknownTopic",
        ControllerError::UnknownTopicId => "UnknownTopicId",
        ControllerError::TopicDeletionDisabled => "TopicDeletionDisabled",
        ControllerError::NoSuchConfigTopic(_) => "NoSuchConfigTopic",
        ControllerError::NotDynamic(_) => "NotDynamic",
        ControllerError::LogLimit(_) => "LogLimit",
        ControllerError::CommitFailed(_) => "CommitFailed",
        ControllerError::NotController => "NotController",
        ControllerError::InternalTopic { .. } => "InternalTopic",
        ControllerError::UnknownConfigName(_) => "UnknownConfigName",
        ControllerError::NotAListConfig(_) => "NotAListConfig",
        ControllerError::NullAlterValue(_) => "NullAlterValue",
        ControllerError::UnknownConfigOperation(_) => "UnknownConfigOperation",
        ControllerError::UnsupportedResourceType(_) => "UnsupportedResourceType",
        ControllerError::UnknownBroker(_) => "UnknownBroker",
        ControllerError::NotThisBroker { .. } => "NotThisBroker",
    }
}
