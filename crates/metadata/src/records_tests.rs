use proptest::prelude::*;

use super::*;

const TOPIC: Uuid = Uuid::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);

fn hex(text: &str) -> Vec<u8> {
    let digits: String = text.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

const TOPIC_HEX: &str = "0102030405060708090a0b0c0d0e0f10";

fn golden(record: MetadataRecord, bytes: &str) {
    let expected = hex(bytes);
    assert_eq!(record.encode(), expected, "{record:?}");
    assert_eq!(MetadataRecord::decode(&expected).unwrap(), record);
}

// Hand-assembled from metadata/src/main/resources/common/metadata/*.json:
// uvarint frame version 1, uvarint apiKey, uvarint version, the fields in schema
// order (compact strings and arrays are length + 1), then the tagged fields.

#[test]
fn topic_record_golden_bytes() {
    golden(
        MetadataRecord::Topic {
            name: "foo".into(),
            topic_id: TOPIC,
        },
        &format!("01 02 00  04 666f6f  {TOPIC_HEX}  00"),
    );
}

#[test]
fn partition_record_golden_bytes() {
    golden(
        MetadataRecord::Partition {
            topic_id: TOPIC,
            partition: 1,
            replicas: vec![1, 2, 3],
            isr: vec![1, 2],
            leader: 1,
            leader_epoch: 5,
            partition_epoch: 7,
        },
        &format!(
            "01 03 00  00000001  {TOPIC_HEX}  04 00000001 00000002 00000003  03 00000001 00000002  \
             01  01  00000001  00000005  00000007  00"
        ),
    );
}

#[test]
fn register_broker_record_golden_bytes() {
    golden(
        MetadataRecord::RegisterBroker {
            node_id: 1,
            incarnation_id: TOPIC,
            broker_epoch: 42,
            endpoints: vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: "localhost".into(),
                port: 9092,
                security_protocol: "PLAINTEXT".into(),
            }],
            features: vec![BrokerFeature {
                name: "metadata.version".into(),
                min_supported_version: 7,
                max_supported_version: 27,
            }],
            rack: Some("r1".into()),
            fenced: true,
            in_controlled_shutdown: false,
        },
        &format!(
            "01 00 01  00000001  {TOPIC_HEX}  000000000000002a  \
             02 0a 504c41494e54455854 0a 6c6f63616c686f7374 2384 0000 00  \
             02 11 6d657461646174612e76657273696f6e 0007 001b 00  \
             03 7231  01  00  00"
        ),
    );
}

#[test]
fn partition_change_record_golden_bytes() {
    golden(
        MetadataRecord::PartitionChange {
            topic_id: TOPIC,
            partition: 0,
            leader: Some(2),
            isr: Some(vec![2, 3]),
            replicas: None,
        },
        &format!("01 05 00  00000000  {TOPIC_HEX}  02  00 09 03 00000002 00000003  01 04 00000002"),
    );
    // No field changes: only the empty tagged section (leader -2 is not written).
    golden(
        MetadataRecord::PartitionChange {
            topic_id: TOPIC,
            partition: 3,
            leader: None,
            isr: None,
            replicas: None,
        },
        &format!("01 05 00  00000003  {TOPIC_HEX}  00"),
    );
    // Leaderless: -1 is written, as a leader change.
    golden(
        MetadataRecord::PartitionChange {
            topic_id: TOPIC,
            partition: 3,
            leader: Some(NO_LEADER),
            isr: None,
            replicas: None,
        },
        &format!("01 05 00  00000003  {TOPIC_HEX}  01  01 04 ffffffff"),
    );
}

#[test]
fn other_records_golden_bytes() {
    golden(
        MetadataRecord::FeatureLevel {
            name: "metadata.version".into(),
            feature_level: 27,
        },
        "01 0c 00  11 6d657461646174612e76657273696f6e  001b  00",
    );
    golden(
        MetadataRecord::BrokerRegistrationChange {
            broker_id: 2,
            broker_epoch: 9,
            fenced: FencingChange::Unfence,
            in_controlled_shutdown: true,
        },
        "01 11 01  00000002  0000000000000009  02  00 01 ff  01 01 01",
    );
    golden(
        MetadataRecord::Config {
            resource: ConfigResource::BrokerDefault,
            name: "a".into(),
            value: None,
        },
        "01 04 00  04  01  02 61  00  00",
    );
    golden(
        MetadataRecord::ProducerIds {
            broker_id: 1,
            next_producer_id: 1000,
        },
        "01 0f 00  00000001  ffffffffffffffff  00000000000003e8  00",
    );
    golden(MetadataRecord::EndTransaction, "01 18 00 00");
    golden(
        MetadataRecord::BeginTransaction {
            name: Some("x".into()),
        },
        "01 17 00  01  00 02 02 78",
    );
    golden(MetadataRecord::NoOp, "01 14 00 00");
}

#[test]
fn kafkas_framing_errors() {
    assert_eq!(
        MetadataRecord::decode(&hex("00 02 00")).unwrap_err().to_string(),
        "Could not deserialize metadata record due to unknown frame version 0(only frame version 1 is supported)"
    );
    assert_eq!(
        MetadataRecord::decode(&hex("01 63 00")).unwrap_err(),
        RecordError::UnknownType(99)
    );
    assert_eq!(
        MetadataRecord::decode(&hex("01 02 05")).unwrap_err(),
        RecordError::UnsupportedVersion {
            api_key: 2,
            version: 5
        }
    );
    let mut bytes = MetadataRecord::NoOp.encode();
    bytes.push(7);
    assert_eq!(
        MetadataRecord::decode(&bytes).unwrap_err().to_string(),
        "Found 1 byte(s) of garbage after 20"
    );
}

#[test]
fn huge_lengths_fail_before_allocating() {
    // A Topic whose name claims 2^31 bytes.
    let err = MetadataRecord::decode(&hex("01 02 00 ff ff ff ff 07 61")).unwrap_err();
    assert!(
        matches!(err, RecordError::Wire(WireError::TooLong { .. })),
        "{err:?}"
    );
    // A Partition whose replica array claims 2^28 members.
    let bytes = hex(&format!(
        "01 03 00 00000001 {TOPIC_HEX} ff ff ff ff 01 00000001"
    ));
    let err = MetadataRecord::decode(&bytes).unwrap_err();
    assert!(
        matches!(err, RecordError::Wire(WireError::TooLong { .. })),
        "{err:?}"
    );
    // A varint that never ends.
    let err = MetadataRecord::decode(&hex("01 02 00 ff ff ff ff ff ff")).unwrap_err();
    assert_eq!(err, RecordError::Wire(WireError::VarintTooLong));
    // A tagged field claiming more bytes than there are.
    let bytes = hex(&format!("01 05 00 00000000 {TOPIC_HEX} 01 00 7f 01"));
    assert!(MetadataRecord::decode(&bytes).is_err());
}

#[test]
fn reassignment_fields_are_refused_not_dropped() {
    let bytes = hex(&format!(
        "01 03 00 00000001 {TOPIC_HEX} 02 00000001 02 00000001 02 00000002 01 00000001 00000000 00000000 00"
    ));
    assert_eq!(
        MetadataRecord::decode(&bytes).unwrap_err().to_string(),
        "metadata record type 3: a reassignment (adding or removing replicas) is not supported yet"
    );
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._-]{0,12}"
}

fn ids() -> impl Strategy<Value = Vec<i32>> {
    prop::collection::vec(-1..10i32, 0..5)
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

pub(crate) fn any_record() -> impl Strategy<Value = MetadataRecord> {
    let protocols = prop::sample::select(vec!["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]);
    let endpoint = (name(), name(), any::<u16>(), protocols).prop_map(|(n, h, port, p)| Endpoint {
        name: n,
        host: h,
        port,
        security_protocol: p.to_string(),
    });
    let feature = (name(), any::<i16>(), any::<i16>()).prop_map(|(n, min, max)| BrokerFeature {
        name: n,
        min_supported_version: min,
        max_supported_version: max,
    });
    let register = (
        any::<i32>(),
        uuid(),
        any::<i64>(),
        prop::collection::vec(endpoint, 0..3),
        prop::collection::vec(feature, 0..3),
        prop::option::of(name()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(node_id, inc, epoch, endpoints, features, rack, fenced, ics)| {
                MetadataRecord::RegisterBroker {
                    node_id,
                    incarnation_id: inc,
                    broker_epoch: epoch,
                    endpoints,
                    features,
                    rack,
                    fenced,
                    in_controlled_shutdown: ics,
                }
            },
        );
    let partition = (
        uuid(),
        any::<i32>(),
        ids(),
        ids(),
        any::<i32>(),
        any::<i32>(),
        any::<i32>(),
    )
        .prop_map(|(topic_id, partition, replicas, isr, leader, le, pe)| {
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch: le,
                partition_epoch: pe,
            }
        });
    let change = (
        uuid(),
        any::<i32>(),
        prop::option::of(any::<i32>().prop_filter("-2 is no change", |l| *l != NO_LEADER_CHANGE)),
        prop::option::of(ids()),
        prop::option::of(ids()),
    )
        .prop_map(|(topic_id, partition, leader, isr, replicas)| {
            MetadataRecord::PartitionChange {
                topic_id,
                partition,
                leader,
                isr,
                replicas,
            }
        });
    let resource = prop_oneof![
        name().prop_map(ConfigResource::Topic),
        any::<i32>().prop_map(ConfigResource::Broker),
        Just(ConfigResource::BrokerDefault),
    ];
    let config =
        (resource, name(), prop::option::of(name())).prop_map(|(resource, name, value)| {
            MetadataRecord::Config {
                resource,
                name,
                value,
            }
        });
    let fencing = prop::sample::select(vec![
        FencingChange::None,
        FencingChange::Fence,
        FencingChange::Unfence,
    ]);
    prop_oneof![
        register,
        partition,
        change,
        config,
        (name(), uuid()).prop_map(|(name, topic_id)| MetadataRecord::Topic { name, topic_id }),
        uuid().prop_map(|topic_id| MetadataRecord::RemoveTopic { topic_id }),
        (any::<i32>(), any::<i64>()).prop_map(|(broker_id, broker_epoch)| {
            MetadataRecord::UnregisterBroker {
                broker_id,
                broker_epoch,
            }
        }),
        (name(), any::<i16>()).prop_map(|(name, feature_level)| MetadataRecord::FeatureLevel {
            name,
            feature_level
        }),
        (any::<i32>(), any::<i64>()).prop_map(|(broker_id, next_producer_id)| {
            MetadataRecord::ProducerIds {
                broker_id,
                next_producer_id,
            }
        }),
        (any::<i32>(), any::<i64>(), fencing, any::<bool>()).prop_map(|(b, e, f, ics)| {
            MetadataRecord::BrokerRegistrationChange {
                broker_id: b,
                broker_epoch: e,
                fenced: f,
                in_controlled_shutdown: ics,
            }
        }),
        Just(MetadataRecord::NoOp),
        prop::option::of(name()).prop_map(|name| MetadataRecord::BeginTransaction { name }),
        Just(MetadataRecord::EndTransaction),
        prop::option::of(name()).prop_map(|reason| MetadataRecord::AbortTransaction { reason }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_record_round_trips(record in any_record()) {
        let bytes = record.encode();
        prop_assert_eq!(MetadataRecord::decode(&bytes).unwrap(), record);
    }

    #[test]
    fn every_truncation_fails_cleanly(record in any_record()) {
        let bytes = record.encode();
        for len in 0..bytes.len() {
            prop_assert!(MetadataRecord::decode(&bytes[..len]).is_err(), "prefix {len} of {record:?}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = MetadataRecord::decode(&bytes);
        let mut framed = vec![1u8, bytes.first().copied().unwrap_or(0) % 26, 0];
        framed.extend_from_slice(&bytes);
        let _ = MetadataRecord::decode(&framed);
    }
}
