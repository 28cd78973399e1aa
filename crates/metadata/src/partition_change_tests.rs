use super::*;
use crate::records::Endpoint;

const T: Uuid = Uuid::from_u128(7);

fn apply_all(image: &mut ClusterImage, records: &[MetadataRecord]) {
    for record in records {
        image.apply(image.last_offset + 1, record).unwrap();
    }
}

/// Brokers 1..=`brokers` (epoch = their offset, all unfenced), topic "t" with
/// one partition per `(replicas, isr, leader)`.
fn cluster(brokers: i32, partitions: &[(&[i32], &[i32], i32)]) -> ClusterImage {
    let mut image = ClusterImage::default();
    for node_id in 1..=brokers {
        let record = MetadataRecord::RegisterBroker {
            node_id,
            incarnation_id: Uuid::from_u128(100 + node_id as u128),
            broker_epoch: image.last_offset + 1,
            endpoints: vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: "localhost".into(),
                port: 9090 + node_id as u16,
                security_protocol: "PLAINTEXT".into(),
            }],
            features: Vec::new(),
            rack: None,
            fenced: false,
            in_controlled_shutdown: false,
        };
        apply_all(&mut image, &[record]);
    }
    let mut records = vec![MetadataRecord::Topic {
        name: "t".into(),
        topic_id: T,
    }];
    for (i, (replicas, isr, leader)) in partitions.iter().enumerate() {
        records.push(MetadataRecord::Partition {
            topic_id: T,
            partition: i as i32,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader: *leader,
            leader_epoch: 0,
            partition_epoch: 0,
        });
    }
    apply_all(&mut image, &records);
    image
}

fn change(partition: i32, leader: Option<i32>, isr: Option<&[i32]>) -> MetadataRecord {
    MetadataRecord::PartitionChange {
        topic_id: T,
        partition,
        leader,
        isr: isr.map(<[i32]>::to_vec),
        replicas: None,
    }
}

fn registration(broker: i32, epoch: i64, fenced: FencingChange, shut_down: bool) -> MetadataRecord {
    MetadataRecord::BrokerRegistrationChange {
        broker_id: broker,
        broker_epoch: epoch,
        fenced,
        in_controlled_shutdown: shut_down,
    }
}

/// (leader, isr, leader epoch, partition epoch) of partition `p`.
fn state(image: &ClusterImage, p: i32) -> (i32, Vec<i32>, i32, i32) {
    let p = image.partition("t", p).unwrap();
    (p.leader, p.isr.clone(), p.leader_epoch, p.partition_epoch)
}

#[test]
fn a_fenced_leader_hands_over_to_the_next_isr_member_in_replica_order() {
    // Replica order 1, 3, 2; ISR order 1, 2, 3: the next leader is 3.
    let mut image = cluster(3, &[(&[1, 3, 2], &[1, 2, 3], 1)]);
    let records = handle_broker_fenced(&image, 1);
    assert_eq!(
        records,
        vec![
            change(0, Some(3), Some(&[2, 3])),
            registration(1, 0, FencingChange::Fence, false)
        ]
    );
    apply_all(&mut image, &records);
    assert_eq!(state(&image, 0), (3, vec![2, 3], 1, 1));
    assert!(image.brokers[&1].fenced);
}

#[test]
fn a_fenced_follower_leaves_the_isr_without_a_new_leader_epoch() {
    let mut image = cluster(3, &[(&[1, 2, 3], &[1, 2, 3], 1)]);
    let records = handle_broker_fenced(&image, 2);
    assert_eq!(
        records,
        vec![
            change(0, None, Some(&[1, 3])),
            registration(2, 1, FencingChange::Fence, false)
        ]
    );
    apply_all(&mut image, &records);
    assert_eq!(state(&image, 0), (1, vec![1, 3], 0, 1));
}

#[test]
fn the_last_isr_member_fenced_leaves_no_leader_and_keeps_the_isr_then_leads_again_when_unfenced() {
    let mut image = cluster(3, &[(&[1, 2, 3], &[1], 1)]);
    let records = handle_broker_fenced(&image, 1);
    // No unclean election: 2 and 3 are active but out of the ISR.
    assert_eq!(
        records,
        vec![
            change(0, Some(NO_LEADER), None),
            registration(1, 0, FencingChange::Fence, false)
        ]
    );
    apply_all(&mut image, &records);
    assert_eq!(state(&image, 0), (NO_LEADER, vec![1], 1, 1));
    assert!(!has_leaderships(&image, 1));

    let records = handle_broker_unfenced(&image, 1, 0);
    assert_eq!(
        records,
        vec![
            registration(1, 0, FencingChange::Unfence, false),
            change(0, Some(1), None)
        ]
    );
    apply_all(&mut image, &records);
    assert_eq!(state(&image, 0), (1, vec![1], 2, 2));
    assert!(has_leaderships(&image, 1));
}

#[test]
fn unfencing_elects_only_where_the_broker_is_in_the_isr() {
    let mut image = cluster(3, &[(&[1, 2], &[1], 1), (&[2, 3], &[3], 3)]);
    for broker in [1, 3] {
        let records = handle_broker_fenced(&image, broker);
        apply_all(&mut image, &records);
    }
    assert_eq!(state(&image, 0).0, NO_LEADER);
    assert_eq!(state(&image, 1).0, NO_LEADER);
    // Unfencing 1 leaves partition 1 (ISR {3}) leaderless.
    let records = handle_broker_unfenced(&image, 1, 0);
    assert_eq!(
        records,
        vec![
            registration(1, 0, FencingChange::Unfence, false),
            change(0, Some(1), None)
        ]
    );
}

#[test]
fn nothing_changes_no_record() {
    let image = cluster(3, &[(&[1, 2, 3], &[1, 2], 1)]);
    let p = image.partition("t", 0).unwrap();
    let active = |r: i32| image.is_active(r);
    assert_eq!(PartitionChangeBuilder::new(p, T, &active).build(), None);
    assert_eq!(
        PartitionChangeBuilder::new(p, T, &active)
            .target_isr(vec![1, 2])
            .build(),
        None
    );
    // An empty target ISR is never written: nobody is valid, so the leader
    // goes and the ISR stays.
    assert_eq!(
        PartitionChangeBuilder::new(p, T, &active)
            .target_isr(Vec::new())
            .build(),
        Some(change(0, Some(NO_LEADER), None))
    );
    // Fencing broker 3, in no ISR: only its registration changes.
    assert_eq!(
        handle_broker_fenced(&image, 3),
        vec![registration(3, 2, FencingChange::Fence, false)]
    );
    // Unknown brokers: nothing.
    assert_eq!(handle_broker_fenced(&image, 9), Vec::new());
}

#[test]
fn an_isr_expansion_keeps_the_leader_epoch() {
    let mut image = cluster(3, &[(&[1, 2, 3], &[1], 1)]);
    let p = image.partition("t", 0).unwrap().clone();
    let active = |r: i32| image.is_active(r);
    let record = PartitionChangeBuilder::new(&p, T, &active)
        .target_isr(vec![1, 2, 3])
        .build()
        .unwrap();
    assert_eq!(record, change(0, None, Some(&[1, 2, 3])));
    apply_all(&mut image, &[record]);
    assert_eq!(state(&image, 0), (1, vec![1, 2, 3], 0, 1));
}

#[test]
fn preferred_election_moves_leadership_back_to_the_first_replica() {
    let image = cluster(3, &[(&[1, 2, 3], &[1, 2, 3], 2)]);
    let p = image.partition("t", 0).unwrap();
    let active = |r: i32| image.is_active(r);
    assert_eq!(
        PartitionChangeBuilder::new(p, T, &active).build(),
        None,
        "an online election keeps a valid leader"
    );
    assert_eq!(
        PartitionChangeBuilder::new(p, T, &active)
            .election(Election::Preferred)
            .build(),
        Some(change(0, Some(1), None))
    );
    // The preferred replica out of the ISR: the current leader stays.
    let not_one = |r: i32| r != 1 && image.is_active(r);
    assert_eq!(
        PartitionChangeBuilder::new(p, T, &not_one)
            .election(Election::Preferred)
            .build(),
        None
    );
}

#[test]
fn dropping_a_replica_bumps_the_leader_epoch_even_with_the_same_leader() {
    let image = cluster(3, &[(&[1, 2, 3], &[1, 2], 1)]);
    let p = image.partition("t", 0).unwrap();
    let active = |r: i32| image.is_active(r);
    assert_eq!(
        PartitionChangeBuilder::new(p, T, &active)
            .target_replicas(vec![1, 2])
            .build(),
        Some(MetadataRecord::PartitionChange {
            topic_id: T,
            partition: 0,
            leader: Some(1),
            isr: None,
            replicas: Some(vec![1, 2]),
        })
    );
}

#[test]
fn controlled_shutdown_moves_leaderships_and_is_recorded_once() {
    let mut image = cluster(
        3,
        &[
            (&[1, 2, 3], &[1, 2, 3], 1),
            (&[2, 1, 3], &[2, 1], 2),
            (&[1, 3], &[1], 1),
        ],
    );
    let records = handle_broker_in_controlled_shutdown(&image, 1, 0);
    assert_eq!(
        records,
        vec![
            registration(1, 0, FencingChange::None, true),
            change(0, Some(2), Some(&[2, 3])),
            change(1, None, Some(&[2])),
            change(2, Some(NO_LEADER), None),
        ]
    );
    apply_all(&mut image, &records);
    assert!(image.brokers[&1].in_controlled_shutdown);
    assert!(!has_leaderships(&image, 1));
    // Again (a later heartbeat): no second registration change, nothing left.
    assert_eq!(
        handle_broker_in_controlled_shutdown(&image, 1, 0),
        Vec::new()
    );
}

#[test]
fn a_broker_in_controlled_shutdown_is_not_elected() {
    let mut image = cluster(3, &[(&[1, 2, 3], &[1, 2, 3], 1)]);
    apply_all(&mut image, &[registration(2, 1, FencingChange::None, true)]);
    let records = handle_broker_fenced(&image, 1);
    assert_eq!(records[0], change(0, Some(3), Some(&[2, 3])));
}
