use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::records::Endpoint;

/// Topic ids for these tests: distinct, and drawn from no randomness.
fn next_id() -> Uuid {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    Uuid::from_u128(u128::from(NEXT.fetch_add(1, Ordering::Relaxed)))
}

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

fn error_of(outcome: &CreateTopicOutcome) -> Option<ControllerError> {
    outcome.result.clone().err()
}

#[test]
fn a_created_topic_has_its_partitions_led_by_the_single_broker() {
    let mut image = image_with_brokers(&[1]);
    let outcomes = create(&mut image, &[spec("orders", 3, 1)]);
    assert_eq!(error_of(&outcomes[0]), None);
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
fn bad_requests_are_refused_with_kafkas_reasons() {
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
    let errors: Vec<Option<ControllerError>> = outcomes.iter().map(error_of).collect();
    assert_eq!(
        errors,
        vec![
            Some(ControllerError::TopicAlreadyExists("exists".into())),
            Some(ControllerError::InvalidTopicName("Topic name \"bad name\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'".into())),
            Some(ControllerError::InvalidPartitions("Number of partitions was set to an invalid non-positive value.".into())),
            Some(ControllerError::InvalidReplicationFactor("Unable to replicate the partition 3 time(s): The target replication factor of 3 cannot be reached because only 1 broker(s) are registered.".into())),
            Some(ControllerError::InvalidReplicationFactor("Replication factor must be larger than 0, or -1 to use the default value.".into())),
            Some(ControllerError::InvalidConfig("Unknown topic config name: bad".into())),
            Some(ControllerError::NullConfigValue("retention.ms".into())),
            Some(ControllerError::DuplicateTopicName),
            Some(ControllerError::DuplicateTopicName),
            None,
        ]
    );
    let outcomes = create(&mut image, &[spec("exists.", 1, 1)]);
    assert_eq!(
        error_of(&outcomes[0]),
        Some(ControllerError::CollidesWithExisting {
            topic: "exists.".into(),
            existing: "exists_".into()
        }),
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
    let results: Vec<Result<(), ControllerError>> =
        outcomes.iter().map(|o| o.result.clone()).collect();
    assert_eq!(
        results,
        vec![
            Ok(()),
            Ok(()),
            Err(ControllerError::UnknownTopic),
            Err(ControllerError::UnknownTopicId)
        ]
    );
    for record in &records {
        image.apply(image.last_offset + 1, record).unwrap();
    }
    assert!(image.topics.is_empty());
}

fn errors(outcomes: &[CreateTopicOutcome]) -> Vec<Option<ControllerError>> {
    outcomes.iter().map(error_of).collect()
}

const TOO_MANY_PARTITIONS: Option<ControllerError> = Some(ControllerError::TooManyPartitions);

#[test]
fn partition_counts_at_the_ends_of_i32_are_refused_before_anything_is_placed() {
    let image = image_with_brokers(&[1]);
    let controller = Controller::default();
    let (outcomes, records) = controller.create_topics(
        &image,
        &[spec("min", i32::MIN, 1), spec("max", i32::MAX, 1)],
        &any_config,
        &mut next_id,
    );
    assert_eq!(
        errors(&outcomes),
        vec![TOO_MANY_PARTITIONS, TOO_MANY_PARTITIONS]
    );
    assert_eq!(
        outcomes[0].result.clone().unwrap_err().to_string(),
        "Excessively large number of partitions per request."
    );
    assert!(records.is_empty());
    // A negative count alone is Kafka's INVALID_PARTITIONS, not a wrapped sum.
    let (outcomes, _) = controller.create_topics(
        &image,
        &[spec("min", i32::MIN, 1), spec("ok", 2, 1)],
        &any_config,
        &mut next_id,
    );
    assert_eq!(
        errors(&outcomes),
        vec![
            Some(ControllerError::InvalidPartitions(
                "Number of partitions was set to an invalid non-positive value.".into()
            )),
            None
        ]
    );
}

#[test]
fn a_request_over_ten_thousand_partitions_or_records_is_refused_whole() {
    let image = image_with_brokers(&[1]);
    let controller = Controller::default();
    let specs = vec![spec("a", 5_000, 1), spec("b", 5_001, 1)];
    let (outcomes, records) = controller.create_topics(&image, &specs, &any_config, &mut next_id);
    assert_eq!(
        errors(&outcomes),
        vec![TOO_MANY_PARTITIONS, TOO_MANY_PARTITIONS]
    );
    assert!(records.is_empty());
    // 10,000 partitions are allowed, but with their topic records they make
    // 10,100 records: over Kafka's MAX_RECORDS_PER_USER_OP.
    let specs: Vec<TopicSpec> = (0..100).map(|i| spec(&format!("t{i}"), 100, 1)).collect();
    let (outcomes, records) = controller.create_topics(&image, &specs, &any_config, &mut next_id);
    assert!(outcomes
        .iter()
        .all(|o| o.result == Err(ControllerError::TooManyRecords)));
    assert_eq!(
        ControllerError::TooManyRecords.to_string(),
        "Unable to perform excessively large batch operation."
    );
    assert!(records.is_empty());
    let specs: Vec<TopicSpec> = (0..50).map(|i| spec(&format!("t{i}"), 100, 1)).collect();
    let (outcomes, records) = controller.create_topics(&image, &specs, &any_config, &mut next_id);
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
        &mut next_id,
    );
    assert_eq!(
        errors(&outcomes),
        vec![
            None,
            Some(ControllerError::BrokerPartitionLimit {
                broker: 1,
                hosted: 3,
                adding: 3,
                limit: 5
            }),
            None
        ]
    );
    apply(&mut image, records);
    let grow = |count| PartitionIncrease {
        topic: "a".into(),
        count,
        assignments: None,
    };
    let (outcomes, records) = controller.create_partitions(&image, &[grow(4)]);
    assert_eq!(
        outcomes[0].1,
        Err(ControllerError::BrokerPartitionLimit {
            broker: 1,
            hosted: 5,
            adding: 1,
            limit: 5
        })
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
    assert_eq!(outcomes[0].1, Err(ControllerError::TooManyPartitions));
    assert!(records.is_empty());
    // The per-request bound is over the whole request.
    let (outcomes, records) = controller.create_partitions(
        &image,
        &[increase("t", 6_001, None), increase("u", 6_001, None)],
    );
    assert!(outcomes[0].1.is_ok());
    assert_eq!(outcomes[1].1, Err(ControllerError::TooManyPartitions));
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
        outcomes[0].1,
        Err(ControllerError::InvalidReplicaAssignment(
            "The manual partition assignment includes the broker 1 more than once.".into()
        ))
    );
    assert_eq!(
        outcomes[1].1,
        Err(ControllerError::InvalidReplicaAssignment(
            "The manual partition assignment includes an empty replica list.".into()
        ))
    );
}

#[test]
fn auto_creation_takes_as_many_topics_as_one_request_may_create() {
    let controller = Controller::default();
    let names: Vec<String> = (0..20_000).map(|i| format!("t{i}")).collect();
    let specs = controller.auto_create_specs(&names);
    assert_eq!(specs.len(), 5_000);
    let image = image_with_brokers(&[1]);
    let (outcomes, records) = controller.create_topics(&image, &specs, &any_config, &mut next_id);
    assert!(outcomes.iter().all(|o| o.result.is_ok()));
    assert_eq!(records.len(), 10_000);
}

/// `image` with `broker` fenced, or in controlled shutdown.
fn change_broker(image: &mut ClusterImage, broker: i32, fence: bool, shut_down: bool) {
    let broker_epoch = image.brokers[&broker].broker_epoch;
    let record = MetadataRecord::BrokerRegistrationChange {
        broker_id: broker,
        broker_epoch,
        fenced: if fence {
            crate::records::FencingChange::Fence
        } else {
            crate::records::FencingChange::None
        },
        in_controlled_shutdown: shut_down,
    };
    image.apply(image.last_offset + 1, &record).unwrap();
}

fn partitions_of(image: &ClusterImage, topic: &str) -> Vec<(Vec<i32>, Vec<i32>, i32)> {
    image
        .topic(topic)
        .unwrap()
        .partitions
        .values()
        .map(|p| (p.replicas.clone(), p.isr.clone(), p.leader))
        .collect()
}

#[test]
fn a_new_partitions_isr_is_its_active_replicas() {
    let mut image = image_with_brokers(&[1, 2, 3]);
    change_broker(&mut image, 3, true, false);
    let mut manual = spec("manual", -1, -1);
    manual.assignments = vec![(1, vec![1, 3, 2]), (0, vec![3, 2, 1])];
    let outcomes = create(&mut image, &[manual, spec("auto", 6, 3)]);
    assert_eq!(errors(&outcomes), vec![None, None]);
    assert_eq!(
        partitions_of(&image, "manual"),
        vec![
            (vec![3, 2, 1], vec![2, 1], 2),
            (vec![1, 3, 2], vec![1, 2], 1)
        ]
    );
    for (replicas, isr, leader) in partitions_of(&image, "auto") {
        assert_eq!(replicas.len(), 3);
        assert!(!isr.contains(&3) && isr.len() == 2, "{isr:?}");
        assert_eq!(leader, isr[0]);
        assert_ne!(replicas[0], 3, "placement never puts a fenced broker first");
    }
    let (outcomes, records) = Controller::default().create_partitions(
        &image,
        &[PartitionIncrease {
            topic: "manual".into(),
            count: 3,
            assignments: Some(vec![vec![3, 1, 2]]),
        }],
    );
    assert_eq!(outcomes[0].1, Ok(()));
    assert_eq!(
        records,
        vec![MetadataRecord::Partition {
            topic_id: image.topic("manual").unwrap().topic_id,
            partition: 2,
            replicas: vec![3, 1, 2],
            isr: vec![1, 2],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
        }]
    );
}

#[test]
fn leaders_of_a_new_topic_spread_evenly() {
    for seed in 0..10 {
        let mut image = image_with_brokers(&[1, 2, 3]);
        let controller = Controller::with_placement_seed(ControllerConfig::default(), seed);
        let (outcomes, records) =
            controller.create_topics(&image, &[spec("t", 6, 3)], &any_config, &mut next_id);
        assert_eq!(errors(&outcomes), vec![None]);
        for record in &records {
            image.apply(image.last_offset + 1, record).unwrap();
        }
        let mut leaders = BTreeMap::new();
        for (replicas, isr, leader) in partitions_of(&image, "t") {
            assert_eq!(isr, replicas, "every replica is active");
            assert_eq!(leader, replicas[0]);
            *leaders.entry(leader).or_insert(0) += 1;
        }
        assert_eq!(leaders, BTreeMap::from([(1, 2), (2, 2), (3, 2)]));
    }
}

#[test]
fn replication_beyond_the_usable_brokers_is_refused_with_kafkas_message() {
    let mut image = image_with_brokers(&[1, 2, 3]);
    change_broker(&mut image, 3, false, true);
    let outcomes = create(&mut image, &[spec("t", 1, 3), spec("u", 1, 2)]);
    assert_eq!(
        errors(&outcomes),
        vec![
            Some(ControllerError::InvalidReplicationFactor(
                "Unable to replicate the partition 3 time(s): The target replication factor of 3 cannot be reached because only 2 broker(s) are registered.".into()
            )),
            None
        ]
    );
    // A fenced broker still counts as usable (it starts outside the ISR).
    let mut image = image_with_brokers(&[1, 2, 3]);
    change_broker(&mut image, 3, true, false);
    assert_eq!(errors(&create(&mut image, &[spec("t", 1, 3)])), vec![None]);
    // Every broker fenced.
    let mut image = image_with_brokers(&[1]);
    change_broker(&mut image, 1, true, false);
    let mut manual = spec("m", -1, -1);
    manual.assignments = vec![(0, vec![1])];
    assert_eq!(
        errors(&create(&mut image, &[spec("t", 1, 1), manual])),
        vec![
            Some(ControllerError::InvalidReplicationFactor(
                "Unable to replicate the partition 1 time(s): All brokers are currently fenced."
                    .into()
            )),
            Some(ControllerError::InvalidReplicaAssignment(
                "All brokers specified in the manual partition assignment for partition 0 are fenced or in controlled shutdown.".into()
            ))
        ]
    );
    let (outcomes, _) = Controller::default().create_partitions(
        &image,
        &[PartitionIncrease {
            topic: "nope".into(),
            count: 2,
            assignments: None,
        }],
    );
    assert_eq!(
        outcomes[0].1,
        Err(ControllerError::NoSuchTopic("nope".into()))
    );
}

#[test]
fn manual_assignments_are_checked_in_kafkas_order() {
    let mut image = image_with_brokers(&[1, 2]);
    let manual = |assignments: Vec<(i32, Vec<i32>)>| TopicSpec {
        name: "m".into(),
        num_partitions: -1,
        replication_factor: -1,
        assignments,
        configs: Vec::new(),
    };
    let refused = |why: &str| Some(ControllerError::InvalidReplicaAssignment(why.into()));
    let cases = [
        (
            manual(vec![(0, vec![1]), (0, vec![2])]),
            refused("Found multiple manual partition assignments for partition 0"),
        ),
        (
            manual(vec![(0, vec![])]),
            refused("The manual partition assignment includes an empty replica list."),
        ),
        (
            manual(vec![(0, vec![2, 9])]),
            refused("The manual partition assignment includes broker 9, but no such broker is registered."),
        ),
        (
            manual(vec![(0, vec![2, 2])]),
            refused("The manual partition assignment includes the broker 2 more than once."),
        ),
        (
            manual(vec![(0, vec![1]), (1, vec![1, 2])]),
            refused("The manual partition assignment includes a partition with 2 replica(s), but this is not consistent with previous partitions, which have 1 replica(s)."),
        ),
        (
            manual(vec![(0, vec![1]), (2, vec![2])]),
            refused("partitions should be a consecutive 0-based integer sequence"),
        ),
        (manual(vec![(1, vec![2, 1]), (0, vec![1, 2])]), None),
    ];
    for (spec, expected) in cases {
        let outcomes = create(&mut image, std::slice::from_ref(&spec));
        assert_eq!(errors(&outcomes), vec![expected], "{:?}", spec.assignments);
    }
    assert_eq!(
        partitions_of(&image, "m"),
        vec![(vec![1, 2], vec![1, 2], 1), (vec![2, 1], vec![2, 1], 2)]
    );
}
