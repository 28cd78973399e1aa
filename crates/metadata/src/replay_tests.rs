use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::records::{BrokerFeature, ConfigResource, Endpoint, FencingChange, NO_LEADER};

const T: Uuid = Uuid::from_u128(7);

fn topic(name: &str, id: Uuid) -> MetadataRecord {
    MetadataRecord::Topic {
        name: name.into(),
        topic_id: id,
    }
}

fn partition(id: Uuid, partition: i32) -> MetadataRecord {
    MetadataRecord::Partition {
        topic_id: id,
        partition,
        replicas: vec![1],
        isr: vec![1],
        leader: 1,
        leader_epoch: 0,
        partition_epoch: 0,
    }
}

fn begin() -> MetadataRecord {
    MetadataRecord::BeginTransaction { name: None }
}

/// Applies `(record)` at offsets 0, 1, 2... in epoch 3.
fn replay(records: &[MetadataRecord]) -> Result<MetadataReplay, ReplayError> {
    let mut replay = MetadataReplay::new(ClusterImage::default(), 0);
    for (offset, record) in records.iter().enumerate() {
        replay.apply(offset as i64, 3, record)?;
    }
    Ok(replay)
}

#[test]
fn a_transaction_applies_at_its_end_all_together() {
    let mut r = MetadataReplay::new(ClusterImage::default(), 0);
    r.apply(0, 1, &begin()).unwrap();
    r.apply(1, 1, &topic("t", T)).unwrap();
    r.apply(2, 1, &partition(T, 0)).unwrap();
    assert_eq!(r.in_transaction_since(), Some(0));
    assert!(
        r.image().topics.is_empty(),
        "nothing visible before the End"
    );
    assert_eq!(r.image().last_offset, -1);
    r.apply(3, 2, &MetadataRecord::EndTransaction).unwrap();
    assert_eq!(r.in_transaction_since(), None);
    assert_eq!(r.image().topic("t").unwrap().partitions.len(), 1);
    assert_eq!(r.image().last_offset, 3, "the image ends at the End");
    assert_eq!(r.image_epoch(), 2);
}

#[test]
fn an_abort_moves_the_image_offset_and_nothing_else() {
    let r = replay(&[topic("a", Uuid::from_u128(1)), begin(), topic("t", T)]).unwrap();
    let before = r.image().clone();
    let mut r = r;
    r.apply(3, 4, &MetadataRecord::AbortTransaction { reason: None })
        .unwrap();
    let mut after = r.image().clone();
    assert_eq!(after.last_offset, 3);
    assert_eq!(r.image_epoch(), 4);
    after.last_offset = before.last_offset;
    assert_eq!(after, before);
}

#[test]
fn an_abort_drops_the_open_transaction() {
    let r = replay(&[
        topic("kept", Uuid::from_u128(1)),
        begin(),
        topic("t", T),
        partition(T, 0),
        MetadataRecord::AbortTransaction {
            reason: Some("controller failover".into()),
        },
        partition(Uuid::from_u128(1), 0),
    ])
    .unwrap();
    let names: Vec<&str> = r.image().topics.keys().map(|n| &**n).collect();
    assert_eq!(names, vec!["kept"]);
    assert_eq!(r.image().topic("kept").unwrap().partitions.len(), 1);
    assert_eq!(r.image().last_offset, 5);
    assert_eq!(r.in_transaction_since(), None);
}

#[test]
fn an_unfinished_transaction_is_reported_and_invisible() {
    let r = replay(&[topic("a", Uuid::from_u128(1)), begin(), topic("t", T)]).unwrap();
    assert_eq!(r.in_transaction_since(), Some(1));
    assert_eq!(r.image().last_offset, 0);
    assert_eq!(r.last_offset(), 2);
    assert!(r.image().topic("t").is_none());
}

#[test]
fn misplaced_markers_get_kafkas_messages() {
    assert_eq!(
        replay(&[begin(), topic("t", T), begin()])
            .unwrap_err()
            .to_string(),
        "Can't replay a BeginTransactionRecord at 2 because the transaction at 0 was never closed."
    );
    assert_eq!(
        replay(&[MetadataRecord::EndTransaction])
            .unwrap_err()
            .to_string(),
        "Can't replay an EndTransactionRecord at 0 because there is no open transaction."
    );
    assert_eq!(
        replay(&[MetadataRecord::AbortTransaction { reason: None }])
            .unwrap_err()
            .to_string(),
        "Can't replay an AbortTransactionRecord at 0 because there is no open transaction."
    );
}

#[test]
fn a_transaction_that_does_not_apply_leaves_the_image_alone() {
    let err = replay(&[
        topic("a", Uuid::from_u128(1)),
        begin(),
        topic("t", T),
        partition(Uuid::from_u128(99), 0),
        MetadataRecord::EndTransaction,
    ])
    .unwrap_err();
    assert_eq!(
        err,
        ReplayError::Image {
            offset: 3,
            source: ImageError::UnknownTopicId(Uuid::from_u128(99))
        }
    );
}

#[test]
fn offsets_must_ascend() {
    let mut r = MetadataReplay::new(ClusterImage::default(), 0);
    r.apply(5, 1, &topic("t", T)).unwrap();
    assert_eq!(
        r.apply(5, 1, &partition(T, 0)).unwrap_err(),
        ReplayError::OutOfOrder { offset: 5, last: 5 }
    );
}

/// One step of a random but valid history.
#[derive(Debug, Clone)]
enum Step {
    Register(i32, bool, Option<String>),
    Fence(i32, bool),
    CreateTopic(u8, u8),
    Change(u8, u8, Option<i32>, Vec<i32>),
    TopicConfig(u8, String, Option<String>),
    BrokerConfig(Option<i32>, String, Option<String>),
    Feature(String, i16),
    ProducerIds(i64),
    RemoveTopic(u8),
}

fn step() -> impl Strategy<Value = Step> {
    let key = "[a-c]\\.[a-c]";
    prop_oneof![
        (1..5i32, any::<bool>(), prop::option::of("r[0-2]"))
            .prop_map(|(b, f, r)| Step::Register(b, f, r)),
        (1..5i32, any::<bool>()).prop_map(|(b, f)| Step::Fence(b, f)),
        (0..4u8, 1..4u8).prop_map(|(t, n)| Step::CreateTopic(t, n)),
        (
            0..4u8,
            0..4u8,
            prop::option::of(-1..5i32),
            prop::collection::vec(1..5i32, 1..4)
        )
            .prop_map(|(t, p, l, isr)| Step::Change(t, p, l, isr)),
        (0..4u8, key, prop::option::of("[0-9]{1,3}"))
            .prop_map(|(t, k, v)| Step::TopicConfig(t, k, v)),
        (
            prop::option::of(1..3i32),
            key,
            prop::option::of("[0-9]{1,3}")
        )
            .prop_map(|(b, k, v)| Step::BrokerConfig(b, k, v)),
        ("[a-b]\\.version", 0..30i16).prop_map(|(n, l)| Step::Feature(n, l)),
        (0..5000i64).prop_map(Step::ProducerIds),
        (0..4u8).prop_map(Step::RemoveTopic),
    ]
}

/// The records of the steps that are valid on `image`, applied to it.
fn build(steps: &[Step]) -> ClusterImage {
    let mut image = ClusterImage::default();
    let topic_id = |t: u8| Uuid::from_u128(1000 + u128::from(t));
    for step in steps {
        let record = match step {
            Step::Register(b, fenced, rack) => MetadataRecord::RegisterBroker {
                node_id: *b,
                incarnation_id: Uuid::from_u128((image.last_offset + 10) as u128),
                broker_epoch: image.last_offset + 1,
                endpoints: vec![Endpoint {
                    name: "PLAINTEXT".into(),
                    host: format!("h{b}"),
                    port: 9092,
                    security_protocol: "PLAINTEXT".into(),
                }],
                features: vec![BrokerFeature {
                    name: "metadata.version".into(),
                    min_supported_version: 7,
                    max_supported_version: 27,
                }],
                rack: rack.clone(),
                fenced: *fenced,
                in_controlled_shutdown: false,
            },
            Step::Fence(b, fence) => match image.brokers.get(b) {
                None => continue,
                Some(info) => MetadataRecord::BrokerRegistrationChange {
                    broker_id: *b,
                    broker_epoch: info.broker_epoch,
                    fenced: if *fence {
                        FencingChange::Fence
                    } else {
                        FencingChange::Unfence
                    },
                    in_controlled_shutdown: !*fence,
                },
            },
            Step::CreateTopic(t, n) => {
                if image.topic_by_id(&topic_id(*t)).is_some() {
                    continue;
                }
                image
                    .apply(
                        image.last_offset + 1,
                        &topic(&format!("t{t}"), topic_id(*t)),
                    )
                    .unwrap();
                for p in 0..i32::from(*n) {
                    image
                        .apply(image.last_offset + 1, &partition(topic_id(*t), p))
                        .unwrap();
                }
                continue;
            }
            Step::Change(t, p, leader, isr) => {
                let exists = image
                    .topic_by_id(&topic_id(*t))
                    .is_some_and(|topic| topic.partitions.contains_key(&i32::from(*p)));
                if !exists {
                    continue;
                }
                MetadataRecord::PartitionChange {
                    topic_id: topic_id(*t),
                    partition: i32::from(*p),
                    leader: leader.map(|l| if l == 0 { NO_LEADER } else { l }),
                    isr: Some(isr.clone()),
                    replicas: None,
                }
            }
            Step::TopicConfig(t, name, value) => MetadataRecord::Config {
                resource: ConfigResource::Topic(format!("t{t}")),
                name: name.clone(),
                value: value.clone(),
            },
            Step::BrokerConfig(b, name, value) => MetadataRecord::Config {
                resource: b.map_or(ConfigResource::BrokerDefault, ConfigResource::Broker),
                name: name.clone(),
                value: value.clone(),
            },
            Step::Feature(name, level) => MetadataRecord::FeatureLevel {
                name: name.clone(),
                feature_level: *level,
            },
            Step::ProducerIds(next) => MetadataRecord::ProducerIds {
                broker_id: 1,
                next_producer_id: *next,
            },
            Step::RemoveTopic(t) => {
                if image.topic_by_id(&topic_id(*t)).is_none() {
                    continue;
                }
                MetadataRecord::RemoveTopic {
                    topic_id: topic_id(*t),
                }
            }
        };
        image.apply(image.last_offset + 1, &record).unwrap();
    }
    image
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// What a snapshot holds rebuilds the image exactly, through the binary
    /// encoding as a snapshot file carries it.
    #[test]
    fn replaying_write_records_gives_the_image_back(steps in prop::collection::vec(step(), 0..40)) {
        let image = build(&steps);
        let mut replay = MetadataReplay::new(ClusterImage::default(), 0);
        for (offset, record) in image.write_records().iter().enumerate() {
            let decoded = MetadataRecord::decode(&record.encode()).unwrap();
            replay.apply(offset as i64, 1, &decoded).unwrap();
        }
        let mut rebuilt = replay.into_image();
        rebuilt.last_offset = image.last_offset;
        prop_assert_eq!(rebuilt, image);
    }

    /// A history cut anywhere inside a transaction shows exactly the image from
    /// before it.
    #[test]
    fn a_transaction_is_all_or_nothing(steps in prop::collection::vec(step(), 1..20), cut in 0usize..40) {
        let image = build(&steps);
        let records = image.write_records();
        let mut replay = MetadataReplay::new(ClusterImage::default(), 0);
        replay.apply(0, 1, &begin()).unwrap();
        let cut = cut.min(records.len());
        for (i, record) in records[..cut].iter().enumerate() {
            replay.apply(1 + i as i64, 1, record).unwrap();
        }
        prop_assert_eq!(replay.image(), &ClusterImage::default());
        if cut == records.len() {
            replay.apply(1 + cut as i64, 1, &MetadataRecord::EndTransaction).unwrap();
            let mut rebuilt = replay.image().clone();
            prop_assert_eq!(rebuilt.last_offset, 1 + cut as i64);
            rebuilt.last_offset = image.last_offset;
            prop_assert_eq!(rebuilt, image);
        }
    }
}
