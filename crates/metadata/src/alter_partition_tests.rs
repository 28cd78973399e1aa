use super::*;
use crate::records::FencingChange;

use AlterPartitionError::*;

const T: Uuid = Uuid::from_u128(7);

/// Brokers 1-3 active, 4 fenced, 5 in controlled shutdown (epoch = 10 * id);
/// broker 6 unregistered. Topic "t": partition 0 on replicas 1-6, ISR {1, 2},
/// led by 1 at leader epoch 1, partition epoch 2; partition 1 led by 2.
fn cluster() -> ClusterImage {
    let mut records = Vec::new();
    for id in 1..=5 {
        records.push(MetadataRecord::RegisterBroker {
            node_id: id,
            incarnation_id: Uuid::from_u128(100 + id as u128),
            broker_epoch: 10 * i64::from(id),
            endpoints: Vec::new(),
            features: Vec::new(),
            rack: None,
            fenced: id == 4,
            in_controlled_shutdown: false,
        });
    }
    records.push(MetadataRecord::BrokerRegistrationChange {
        broker_id: 5,
        broker_epoch: 50,
        fenced: FencingChange::None,
        in_controlled_shutdown: true,
    });
    records.push(MetadataRecord::Topic {
        name: "t".into(),
        topic_id: T,
    });
    for (partition, leader) in [(0, 1), (1, 2)] {
        records.push(MetadataRecord::Partition {
            topic_id: T,
            partition,
            replicas: vec![1, 2, 3, 4, 5, 6],
            isr: vec![1, 2, 3],
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
        });
    }
    // Leader epoch 1, partition epoch 2 for partition 0.
    records.push(MetadataRecord::PartitionChange {
        topic_id: T,
        partition: 0,
        leader: Some(1),
        isr: None,
        replicas: None,
    });
    records.push(MetadataRecord::PartitionChange {
        topic_id: T,
        partition: 0,
        leader: None,
        isr: Some(vec![1, 2]),
        replicas: None,
    });
    let mut image = ClusterImage::default();
    for record in &records {
        image.apply(image.last_offset + 1, record).unwrap();
    }
    image
}

fn member(broker_id: i32, broker_epoch: i64) -> IsrMember {
    IsrMember {
        broker_id,
        broker_epoch,
    }
}

/// Members with their registered epochs (6: unregistered, epoch 60).
fn members(ids: &[i32]) -> Vec<IsrMember> {
    ids.iter()
        .map(|id| member(*id, 10 * i64::from(*id)))
        .collect()
}

fn data(
    partition: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    isr: Vec<IsrMember>,
) -> AlterPartitionData {
    AlterPartitionData {
        partition_index: partition,
        leader_epoch,
        new_isr: isr,
        leader_recovery_state: RECOVERED,
        partition_epoch,
    }
}

fn request(
    sender: i32,
    topic_id: Uuid,
    partitions: Vec<AlterPartitionData>,
) -> AlterPartitionRequest {
    AlterPartitionRequest {
        broker_id: sender,
        broker_epoch: 10 * i64::from(sender),
        topics: vec![AlterPartitionTopic {
            topic_id,
            partitions,
        }],
    }
}

/// Each partition's answer to a request from `sender` about topic "t".
fn answers(
    image: &ClusterImage,
    sender: i32,
    partitions: Vec<AlterPartitionData>,
) -> (
    Vec<MetadataRecord>,
    Vec<Result<AlteredPartition, AlterPartitionError>>,
) {
    let (records, topics) = alter_partition(image, &request(sender, T, partitions)).unwrap();
    let results = topics[0]
        .partitions
        .iter()
        .map(|p| p.result.clone())
        .collect();
    (records, results)
}

fn error_of(
    image: &ClusterImage,
    sender: i32,
    partition: AlterPartitionData,
) -> AlterPartitionError {
    let (records, results) = answers(image, sender, vec![partition]);
    assert!(records.is_empty());
    results[0].clone().unwrap_err()
}

fn altered(
    leader_id: i32,
    isr: &[i32],
    leader_epoch: i32,
    partition_epoch: i32,
) -> AlteredPartition {
    AlteredPartition {
        leader_id,
        isr: isr.to_vec(),
        leader_epoch,
        partition_epoch,
        leader_recovery_state: RECOVERED,
    }
}

#[test]
fn an_isr_expansion_is_recorded_and_answered_with_the_new_epochs() {
    let mut image = cluster();
    let (records, results) = answers(&image, 1, vec![data(0, 1, 2, members(&[1, 2, 3]))]);
    assert_eq!(
        records,
        vec![MetadataRecord::PartitionChange {
            topic_id: T,
            partition: 0,
            leader: None,
            isr: Some(vec![1, 2, 3]),
            replicas: None,
        }]
    );
    assert_eq!(results, vec![Ok(altered(1, &[1, 2, 3], 1, 3))]);
    image.apply(image.last_offset + 1, &records[0]).unwrap();
    let p = image.partition("t", 0).unwrap();
    assert_eq!(
        (p.isr.clone(), p.leader_epoch, p.partition_epoch),
        (vec![1, 2, 3], 1, 3)
    );
    // A shrink, from the new partition epoch; version 2 (no member epochs).
    let (records, results) = answers(&image, 1, vec![data(0, 1, 3, vec![member(1, -1)])]);
    assert_eq!(records.len(), 1);
    assert_eq!(results, vec![Ok(altered(1, &[1], 1, 4))]);
}

#[test]
fn the_same_isr_writes_nothing_and_answers_the_current_state() {
    let image = cluster();
    let (records, results) = answers(&image, 1, vec![data(0, 1, 2, members(&[1, 2]))]);
    assert!(records.is_empty());
    assert_eq!(results, vec![Ok(altered(1, &[1, 2], 1, 2))]);
}

#[test]
fn a_stale_sender_is_refused_whole() {
    let image = cluster();
    let mut stale = request(1, T, vec![data(0, 1, 2, members(&[1, 2, 3]))]);
    stale.broker_epoch = 9;
    assert_eq!(
        alter_partition(&image, &stale).unwrap_err(),
        BrokerRequestError::StaleBrokerEpoch(
            "Expected broker epoch 10, but got broker epoch 9".into()
        )
    );
    stale.broker_id = 6;
    assert!(matches!(
        alter_partition(&image, &stale),
        Err(BrokerRequestError::StaleBrokerEpoch(_))
    ));
}

#[test]
fn unknown_topics_and_partitions() {
    let image = cluster();
    for topic_id in [Uuid::from_u128(8), Uuid::nil()] {
        let req = request(
            1,
            topic_id,
            vec![data(0, 1, 2, members(&[1])), data(1, 0, 0, members(&[2]))],
        );
        let (records, topics) = alter_partition(&image, &req).unwrap();
        assert!(records.is_empty());
        assert_eq!(topics[0].topic_id, topic_id);
        let results: Vec<_> = topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.result.clone()))
            .collect();
        assert_eq!(
            results,
            vec![(0, Err(UnknownTopicId)), (1, Err(UnknownTopicId))]
        );
    }
    assert_eq!(
        error_of(&image, 1, data(7, 1, 2, members(&[1]))),
        UnknownTopicOrPartition
    );
}

#[test]
fn every_error_in_kafkas_order() {
    let image = cluster();
    let ok = || data(0, 1, 2, members(&[1, 2, 3]));
    let with = |f: &dyn Fn(&mut AlterPartitionData)| {
        let mut d = ok();
        f(&mut d);
        d
    };
    let cases: Vec<(i32, AlterPartitionData, AlterPartitionError)> = vec![
        // A newer epoch than ours: we are a stale controller. Before anything else.
        (1, with(&|d| d.leader_epoch = 2), NotController),
        (1, with(&|d| d.partition_epoch = 3), NotController),
        (2, with(&|d| d.leader_epoch = 2), NotController),
        // An older leader epoch: fenced, before the sender is checked.
        (1, with(&|d| d.leader_epoch = 0), FencedLeaderEpoch),
        (2, with(&|d| d.leader_epoch = 0), FencedLeaderEpoch),
        // Not the leader, before the partition epoch.
        (2, with(&|d| d.partition_epoch = 1), InvalidRequest),
        (1, with(&|d| d.partition_epoch = 1), InvalidUpdateVersion),
        // The ISR itself.
        (1, with(&|d| d.new_isr = members(&[1, 7])), InvalidRequest),
        (
            1,
            with(&|d| d.new_isr = members(&[1, 2, 2])),
            InvalidRequest,
        ),
        (1, with(&|d| d.new_isr = members(&[2, 3])), InvalidRequest),
        (1, with(&|d| d.new_isr = Vec::new()), InvalidRequest),
        (
            1,
            with(&|d| d.new_isr = vec![member(-1, -1), member(1, 10)]),
            InvalidRequest,
        ),
        (
            1,
            with(&|d| d.leader_recovery_state = RECOVERING),
            InvalidRequest,
        ),
        (
            1,
            with(&|d| {
                d.leader_recovery_state = RECOVERING;
                d.new_isr = members(&[1]);
            }),
            InvalidRequest,
        ),
        // Eligibility (KIP-841, KIP-903).
        (
            1,
            with(&|d| d.new_isr = members(&[1, 4])),
            IneligibleReplica,
        ),
        (
            1,
            with(&|d| d.new_isr = members(&[1, 5])),
            IneligibleReplica,
        ),
        (
            1,
            with(&|d| d.new_isr = members(&[1, 6])),
            IneligibleReplica,
        ),
        (
            1,
            with(&|d| d.new_isr = vec![member(1, 10), member(3, 31)]),
            IneligibleReplica,
        ),
    ];
    for (sender, partition, expected) in cases {
        let described = format!("{sender} {partition:?}");
        assert_eq!(error_of(&image, sender, partition), expected, "{described}");
    }
}

#[test]
fn each_partition_is_answered_on_its_own() {
    let image = cluster();
    let (records, results) = answers(
        &image,
        1,
        vec![
            data(0, 1, 2, members(&[1, 2, 3])),
            data(1, 0, 0, members(&[2])),
            data(0, 0, 2, members(&[1])),
        ],
    );
    assert_eq!(records.len(), 1);
    assert_eq!(
        results,
        vec![
            Ok(altered(1, &[1, 2, 3], 1, 3)),
            Err(InvalidRequest),
            Err(FencedLeaderEpoch)
        ]
    );
    // Partition 1 from its leader, broker 2.
    let (records, results) = answers(
        &image,
        2,
        vec![data(1, 0, 0, vec![member(2, 10 * 2), member(3, -1)])],
    );
    assert_eq!(records.len(), 1);
    assert_eq!(results, vec![Ok(altered(2, &[2, 3], 0, 1))]);
}
