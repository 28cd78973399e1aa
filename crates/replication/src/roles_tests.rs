//! Applying metadata deltas: which partitions lead, follow or stop here, in
//! Kafka's order, and the inputs derived from the image.

use std::collections::BTreeMap;
use std::sync::Arc;

use metadata::{BrokerInfo, ClusterImage, Endpoint, PartitionImage, TopicImage};
use protocol::{ErrorCode, TopicPartition};
use uuid::Uuid;

use super::*;

const ME: i32 = 2;

fn broker(id: i32, epoch: i64, fenced: bool, shutting_down: bool) -> BrokerInfo {
    BrokerInfo {
        node_id: id,
        incarnation_id: Uuid::from_u128(id as u128),
        broker_epoch: epoch,
        endpoints: vec![Endpoint {
            name: "INTERNAL".to_string(),
            host: format!("b{id}"),
            port: 9092,
            security_protocol: "PLAINTEXT".to_string(),
        }],
        features: Vec::new(),
        rack: None,
        fenced,
        in_controlled_shutdown: shutting_down,
    }
}

/// `(leader, leader epoch, partition epoch, replicas, isr)` per partition.
type Sketch<'a> = (i32, i32, i32, &'a [i32], &'a [i32]);

fn with_topic(
    mut image: ClusterImage,
    name: &str,
    id: u128,
    partitions: &[Sketch],
) -> ClusterImage {
    let name: Arc<str> = Arc::from(name);
    let topic_id = Uuid::from_u128(id);
    let partitions = partitions
        .iter()
        .enumerate()
        .map(
            |(i, (leader, leader_epoch, partition_epoch, replicas, isr))| {
                let partition = PartitionImage {
                    partition: i as i32,
                    replicas: replicas.to_vec(),
                    isr: isr.to_vec(),
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                    partition_epoch: *partition_epoch,
                };
                (i as i32, partition)
            },
        )
        .collect();
    image.topic_names.insert(topic_id, Arc::clone(&name));
    image.topics.insert(
        Arc::clone(&name),
        TopicImage {
            name,
            topic_id,
            partitions,
            configs: BTreeMap::new(),
        },
    );
    image
}

fn brokers() -> ClusterImage {
    let mut image = ClusterImage::default();
    for id in 1..=3 {
        image
            .brokers
            .insert(id, broker(id, 10 * i64::from(id), false, false));
    }
    image
}

fn change(topic: &str, id: u128, partition: i32, sketch: Sketch, new_epoch: bool) -> RoleChange {
    let (leader, leader_epoch, partition_epoch, replicas, isr) = sketch;
    RoleChange {
        topic_partition: TopicPartition::new(topic, partition),
        topic_id: Uuid::from_u128(id),
        metadata: PartitionMetadata {
            leader,
            leader_epoch,
            partition_epoch,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
        },
        new_leader_epoch: new_epoch,
    }
}

#[test]
fn a_new_topic_makes_leaders_and_followers_of_the_partitions_placed_here() {
    let before = brokers();
    let after = with_topic(
        brokers(),
        "t",
        1,
        &[
            (ME, 0, 0, &[ME, 1], &[ME, 1]),
            (1, 0, 0, &[1, ME], &[1, ME]),
            (1, 0, 0, &[1, 3], &[1, 3]),
        ],
    );
    assert_eq!(
        apply_delta(ME, &before, &after, false),
        vec![
            RoleCommand::RemoveFetchers(vec![TopicPartition::new("t", 0)]),
            RoleCommand::MakeLeader(change("t", 1, 0, (ME, 0, 0, &[ME, 1], &[ME, 1]), true)),
            RoleCommand::MakeFollower(change("t", 1, 1, (1, 0, 0, &[1, ME], &[1, ME]), true)),
            RoleCommand::RemoveIdleFetchers,
        ]
    );
}

#[test]
fn only_a_new_partition_epoch_changes_a_role_and_an_isr_change_keeps_the_leader_epoch() {
    let before = with_topic(
        brokers(),
        "t",
        1,
        &[
            (ME, 3, 7, &[ME, 1], &[ME, 1]),
            (1, 2, 4, &[1, ME], &[1, ME]),
        ],
    );
    // Partition 0: AlterPartition shrank the ISR (partition epoch 8, same leader epoch).
    let after = with_topic(
        brokers(),
        "t",
        1,
        &[(ME, 3, 8, &[ME, 1], &[ME]), (1, 2, 4, &[1, ME], &[1, ME])],
    );
    assert_eq!(
        local_changes(ME, &before, &after),
        LocalReplicaChanges {
            deletes: vec![],
            leaders: vec![change("t", 1, 0, (ME, 3, 8, &[ME, 1], &[ME]), false)],
            followers: vec![],
        }
    );
    assert_eq!(apply_delta(ME, &after, &after, false), vec![]);
}

#[test]
fn deletes_come_first_a_recreated_topic_included() {
    let before = with_topic(
        with_topic(brokers(), "gone", 1, &[(ME, 0, 0, &[ME], &[ME])]),
        "again",
        2,
        &[
            (ME, 5, 9, &[ME, 1], &[ME, 1]),
            (1, 0, 0, &[1, ME], &[1, ME]),
        ],
    );
    // "gone" is deleted; "again" is re-created under a new id; nothing else here.
    let after = with_topic(brokers(), "again", 3, &[(1, 0, 0, &[1, ME], &[1, ME])]);
    assert_eq!(
        apply_delta(ME, &before, &after, false),
        vec![
            RoleCommand::StopReplica {
                topic_partition: TopicPartition::new("again", 0)
            },
            RoleCommand::StopReplica {
                topic_partition: TopicPartition::new("again", 1)
            },
            RoleCommand::StopReplica {
                topic_partition: TopicPartition::new("gone", 0)
            },
            RoleCommand::MakeFollower(change("again", 3, 0, (1, 0, 0, &[1, ME], &[1, ME]), true)),
            RoleCommand::RemoveIdleFetchers,
        ]
    );
}

#[test]
fn a_partition_moved_away_is_deleted() {
    let before = with_topic(brokers(), "t", 1, &[(1, 0, 0, &[1, ME], &[1, ME])]);
    let after = with_topic(brokers(), "t", 1, &[(1, 0, 1, &[1, 3], &[1, 3])]);
    assert_eq!(
        apply_delta(ME, &before, &after, false),
        vec![RoleCommand::StopReplica {
            topic_partition: TopicPartition::new("t", 0)
        }]
    );
}

#[test]
fn in_controlled_shutdown_followers_without_a_leader_or_out_of_the_isr_stop_fetching() {
    let before = with_topic(
        brokers(),
        "t",
        1,
        &[
            (ME, 0, 0, &[ME, 1], &[ME, 1]),
            (ME, 0, 0, &[ME, 3], &[ME, 3]),
            (1, 0, 0, &[1, ME], &[1, ME]),
        ],
    );
    let after = with_topic(
        brokers(),
        "t",
        1,
        &[
            (1, 1, 1, &[ME, 1], &[1]),
            (-1, 1, 1, &[ME, 3], &[ME]),
            (1, 0, 1, &[1, ME], &[1, ME]),
        ],
    );
    let commands = apply_delta(ME, &before, &after, true);
    assert_eq!(
        commands[3],
        RoleCommand::StopFetching(vec![
            TopicPartition::new("t", 0),
            TopicPartition::new("t", 1)
        ])
    );
    assert_eq!(commands.len(), 5);
    let commands = apply_delta(ME, &before, &after, false);
    assert!(!commands
        .iter()
        .any(|c| matches!(c, RoleCommand::StopFetching(_))));
}

#[test]
fn brokers_changed_only_when_eligibility_or_epochs_change() {
    let before = brokers();
    assert_eq!(brokers_changed(ME, &before, &before), None);
    let mut after = brokers();
    after.brokers.insert(3, broker(3, 30, true, false));
    after.brokers.insert(1, broker(1, 11, false, true));
    let expected_alive = BTreeMap::from([
        (
            1,
            AliveBroker {
                broker_epoch: 11,
                in_controlled_shutdown: true,
            },
        ),
        (
            ME,
            AliveBroker {
                broker_epoch: 20,
                in_controlled_shutdown: false,
            },
        ),
    ]);
    assert_eq!(
        brokers_changed(ME, &before, &after),
        Some(Input::BrokersChanged {
            local_broker_epoch: 20,
            alive: expected_alive,
        })
    );
}

#[test]
fn a_follower_fetches_only_from_a_leader_registered_on_the_inter_broker_listener() {
    let image = with_topic(brokers(), "t", 7, &[(1, 4, 4, &[1, ME], &[1, ME])]);
    let tp = TopicPartition::new("t", 0);
    assert_eq!(
        initial_fetch_state(&image, "INTERNAL", &tp, 1, 4),
        Some(InitialFetchState {
            topic_id: Uuid::from_u128(7),
            leader: 1,
            current_leader_epoch: 4,
        })
    );
    assert_eq!(initial_fetch_state(&image, "EXTERNAL", &tp, 1, 4), None);
    assert_eq!(initial_fetch_state(&image, "INTERNAL", &tp, 9, 4), None);
}

#[test]
fn alter_partition_answers_map_as_kafkas_partition_does() {
    assert_eq!(
        alter_partition_outcome(ErrorCode::None, 3, 9, vec![1, 2]),
        Input::IsrChangeCommitted {
            leader_epoch: 3,
            partition_epoch: 9,
            isr: vec![1, 2],
        }
    );
    let failed = |code| alter_partition_outcome(code, 3, 9, vec![]);
    for code in [
        ErrorCode::OperationNotAttempted,
        ErrorCode::IneligibleReplica,
    ] {
        assert_eq!(
            failed(code),
            Input::IsrChangeFailed(IsrChangeError::Rejected)
        );
    }
    for code in [
        ErrorCode::UnknownTopicOrPartition,
        ErrorCode::UnknownTopicId,
        ErrorCode::FencedLeaderEpoch,
        ErrorCode::InvalidUpdateVersion,
        ErrorCode::InvalidRequest,
        ErrorCode::NewLeaderElected,
    ] {
        assert_eq!(failed(code), Input::IsrChangeFailed(IsrChangeError::Stale));
    }
    assert_eq!(
        failed(ErrorCode::UnknownServerError),
        Input::IsrChangeFailed(IsrChangeError::Retriable)
    );
}
