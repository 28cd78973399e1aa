use super::*;

const T: Uuid = Uuid::from_u128(7);

fn register(node_id: i32, broker_epoch: i64) -> MetadataRecord {
    MetadataRecord::RegisterBroker {
        node_id,
        incarnation_id: Uuid::from_u128(100 + node_id as u128),
        broker_epoch,
        endpoints: Vec::new(),
        features: Vec::new(),
        rack: None,
        fenced: true,
        in_controlled_shutdown: false,
    }
}

fn change(leader: Option<i32>, isr: Option<Vec<i32>>) -> MetadataRecord {
    MetadataRecord::PartitionChange {
        topic_id: T,
        partition: 0,
        leader,
        isr,
        replicas: None,
    }
}

/// Topic "t" with partition 0 on replicas 1,2,3, led by 1 at epochs 0/0.
fn image_with_partition() -> ClusterImage {
    let mut image = ClusterImage::default();
    let records = [
        MetadataRecord::Topic {
            name: "t".into(),
            topic_id: T,
        },
        MetadataRecord::Partition {
            topic_id: T,
            partition: 0,
            replicas: vec![1, 2, 3],
            isr: vec![1, 2, 3],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
        },
    ];
    for (offset, record) in records.iter().enumerate() {
        image.apply(offset as i64, record).unwrap();
    }
    image
}

fn epochs(image: &ClusterImage) -> (i32, i32, i32) {
    let p = image.partition("t", 0).unwrap();
    (p.leader, p.leader_epoch, p.partition_epoch)
}

#[test]
fn the_same_leader_given_again_starts_a_new_leader_epoch() {
    let mut image = image_with_partition();
    image.apply(2, &change(Some(1), None)).unwrap();
    assert_eq!(
        epochs(&image),
        (1, 1, 1),
        "Kafka's merge: any leader given bumps"
    );
}

#[test]
fn an_isr_change_alone_bumps_only_the_partition_epoch() {
    let mut image = image_with_partition();
    image.apply(2, &change(None, Some(vec![1, 2]))).unwrap();
    assert_eq!(epochs(&image), (1, 0, 1));
    assert_eq!(image.partition("t", 0).unwrap().isr, vec![1, 2]);
}

#[test]
fn losing_the_leader_is_a_leader_change() {
    let mut image = image_with_partition();
    image
        .apply(2, &change(Some(NO_LEADER), Some(vec![3])))
        .unwrap();
    assert_eq!(epochs(&image), (-1, 1, 1));
    image.apply(3, &change(Some(3), None)).unwrap();
    assert_eq!(epochs(&image), (3, 2, 2));
}

#[test]
fn a_change_to_an_unknown_partition_is_an_error() {
    let mut image = image_with_partition();
    let record = MetadataRecord::PartitionChange {
        topic_id: T,
        partition: 9,
        leader: Some(1),
        isr: None,
        replicas: None,
    };
    assert_eq!(
        image.apply(2, &record).unwrap_err(),
        ImageError::UnknownPartition {
            topic_id: T,
            partition: 9
        }
    );
}

#[test]
fn brokers_to_isrs_follows_every_change() {
    let mut image = image_with_partition();
    let key = (T, 0);
    for broker in [1, 2, 3] {
        assert!(image.brokers_to_isrs[&broker].contains(&key));
    }
    image
        .apply(2, &change(Some(NO_LEADER), Some(vec![3])))
        .unwrap();
    assert!(!image.brokers_to_isrs.contains_key(&1));
    assert!(!image.brokers_to_isrs.contains_key(&2));
    assert!(image.brokers_to_isrs[&3].contains(&key));
    assert!(
        image.brokers_to_isrs[&NO_LEADER].contains(&key),
        "leaderless partitions are found under -1"
    );
    image.apply(3, &change(Some(3), None)).unwrap();
    assert!(!image.brokers_to_isrs.contains_key(&NO_LEADER));
    image
        .apply(4, &MetadataRecord::RemoveTopic { topic_id: T })
        .unwrap();
    assert!(image.brokers_to_isrs.is_empty());
}

#[test]
fn registration_changes_need_the_registered_epoch() {
    let mut image = ClusterImage::default();
    image.apply(5, &register(1, 5)).unwrap();
    assert!(image.brokers[&1].fenced);
    let unfence = MetadataRecord::BrokerRegistrationChange {
        broker_id: 1,
        broker_epoch: 5,
        fenced: FencingChange::Unfence,
        in_controlled_shutdown: false,
    };
    image.apply(6, &unfence).unwrap();
    assert!(!image.brokers[&1].fenced);
    let stale = MetadataRecord::BrokerRegistrationChange {
        broker_id: 1,
        broker_epoch: 4,
        fenced: FencingChange::Fence,
        in_controlled_shutdown: true,
    };
    assert_eq!(
        image.apply(7, &stale).unwrap_err(),
        ImageError::BrokerEpochMismatch {
            broker_id: 1,
            registered: 5,
            found: 4
        }
    );
    let shutdown = MetadataRecord::BrokerRegistrationChange {
        broker_id: 1,
        broker_epoch: 5,
        fenced: FencingChange::None,
        in_controlled_shutdown: true,
    };
    image.apply(7, &shutdown).unwrap();
    assert!(image.brokers[&1].in_controlled_shutdown);
    assert_eq!(
        image
            .apply(
                8,
                &MetadataRecord::UnregisterBroker {
                    broker_id: 2,
                    broker_epoch: 5
                }
            )
            .unwrap_err(),
        ImageError::UnknownBroker(2)
    );
    image
        .apply(
            8,
            &MetadataRecord::UnregisterBroker {
                broker_id: 1,
                broker_epoch: 5,
            },
        )
        .unwrap();
    assert!(image.brokers.is_empty());
}

#[test]
fn feature_levels_are_finalized_and_level_zero_removes() {
    let mut image = ClusterImage::default();
    let level = |feature_level| MetadataRecord::FeatureLevel {
        name: "metadata.version".into(),
        feature_level,
    };
    image.apply(0, &level(27)).unwrap();
    assert_eq!(image.features.get("metadata.version"), Some(&27));
    image.apply(1, &level(0)).unwrap();
    assert!(image.features.is_empty());
}
