//! Golden tests: our batches decoded by the `kafka-protocol` crate (generated
//! from Kafka's own schemas, independent of our encoder), hand-assembled
//! values, round trips, and corrupt input.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use kafka_protocol::messages::{LeaderChangeMessage, VotersRecord};
use kafka_protocol::protocol::Decodable;
use kafka_protocol::records::RecordBatchDecoder;
use metadata::MetadataRecord;
use openraft::Membership;

use super::*;
use crate::types::{entry_id, MetadataEntry, Payload, Voter};

const NOW: i64 = 1_700_000_000_000;

fn voters(pairs: &[(u64, &str, u16)]) -> Membership<NodeId, Voter> {
    let ids: BTreeSet<NodeId> = pairs.iter().map(|(id, _, _)| *id).collect();
    let nodes: BTreeMap<NodeId, Voter> = pairs
        .iter()
        .map(|(id, host, port)| (*id, Voter::new(*host, *port)))
        .collect();
    Membership::new(vec![ids], nodes)
}

/// The one record of a batch as `kafka-protocol` decodes it.
fn kafka_decode(batch: &Bytes) -> kafka_protocol::records::Record {
    let mut buf = batch.clone();
    let set = RecordBatchDecoder::decode(&mut buf).unwrap();
    assert!(buf.is_empty(), "kafka-protocol read the whole batch");
    assert_eq!(set.records.len(), 1);
    set.records.into_iter().next().unwrap()
}

#[test]
fn a_blank_entry_is_a_leader_change_control_batch_kafka_decodes() {
    let entry = MetadataEntry::new(entry_id(3, 7), Payload::Blank);
    let batch = encode_entry(&entry, NOW, 2);
    let record = kafka_decode(&batch);
    assert!(record.control);
    assert!(!record.transactional);
    assert_eq!(record.partition_leader_epoch, 3);
    assert_eq!(record.offset, 7);
    assert_eq!(record.timestamp, NOW);
    assert_eq!(record.producer_id, -1);
    assert_eq!(record.key.as_deref(), Some(&[0u8, 0, 0, 2][..]));
    let value = record.value.unwrap();
    // Hand-assembled from LeaderChangeMessage.json v0: Version int16, LeaderId
    // int32, Voters and GrantingVoters as empty compact arrays, no tags.
    assert_eq!(&value[..], &[0, 0, 0, 0, 0, 2, 1, 1, 0]);
    let message = LeaderChangeMessage::decode(&mut value.clone(), 0).unwrap();
    assert_eq!(message.version, 0);
    assert_eq!(*message.leader_id, 2);
    assert!(message.voters.is_empty());
    assert!(message.granting_voters.is_empty());
    assert_eq!(decode_entry(batch).unwrap(), entry);
}

#[test]
fn a_voter_set_is_a_kraft_voters_control_batch_kafka_decodes() {
    let m = voters(&[(1, "c1.local", 9093), (2, "c2.local", 9094)]);
    let entry = MetadataEntry::new(entry_id(0, 0), Payload::Membership(m.clone()));
    let batch = encode_entry(&entry, NOW, -1);
    let record = kafka_decode(&batch);
    assert!(record.control);
    assert_eq!(record.partition_leader_epoch, 0);
    assert_eq!(record.offset, 0);
    assert_eq!(record.key.as_deref(), Some(&[0u8, 0, 0, 6][..]));
    let value = record.value.unwrap();
    let message = VotersRecord::decode(&mut value.clone(), 0).unwrap();
    assert_eq!(message.version, 0);
    assert!(message.unknown_tagged_fields.is_empty());
    let decoded: Vec<(i32, String, String, u16, i16, i16)> = message
        .voters
        .iter()
        .map(|v| {
            assert_eq!(v.voter_directory_id, uuid::Uuid::nil());
            assert_eq!(v.endpoints.len(), 1);
            let e = &v.endpoints[0];
            (
                *v.voter_id,
                e.name.to_string(),
                e.host.to_string(),
                e.port,
                v.k_raft_version_feature.min_supported_version,
                v.k_raft_version_feature.max_supported_version,
            )
        })
        .collect();
    assert_eq!(
        decoded,
        vec![
            (1, "CONTROLLER".into(), "c1.local".into(), 9093, 0, 1),
            (2, "CONTROLLER".into(), "c2.local".into(), 9094, 0, 1),
        ]
    );
    assert_eq!(decode_entry(batch).unwrap(), entry);
}

#[test]
fn a_voters_record_matches_the_schema_byte_for_byte() {
    let bytes = encode_voters(&voters(&[(5, "h", 9)]));
    let mut want = vec![0, 0]; // Version
    want.push(2); // Voters: one
    want.extend_from_slice(&5i32.to_be_bytes()); // VoterId
    want.extend_from_slice(&[0; 16]); // VoterDirectoryId
    want.push(2); // Endpoints: one
    want.push(11);
    want.extend_from_slice(b"CONTROLLER"); // Name
    want.push(2);
    want.extend_from_slice(b"h"); // Host
    want.extend_from_slice(&9u16.to_be_bytes()); // Port
    want.push(0); // endpoint tags
    want.extend_from_slice(&[0, 0, 0, 1]); // KRaftVersionFeature 0..1
    want.push(0); // feature tags
    want.push(0); // voter tags
    want.push(0); // record tags
    assert_eq!(bytes, want);
}

#[test]
fn a_record_entry_is_a_data_batch_with_the_record_as_value() {
    let record = MetadataRecord::FeatureLevel {
        name: "metadata.version".into(),
        feature_level: 27,
    };
    let entry = MetadataEntry::new(entry_id(4, 12), Payload::Normal(record.clone()));
    let batch = encode_entry(&entry, NOW, 1);
    let decoded = kafka_decode(&batch);
    assert!(!decoded.control);
    assert_eq!(decoded.partition_leader_epoch, 4);
    assert_eq!(decoded.offset, 12);
    assert_eq!(decoded.key, None);
    assert_eq!(decoded.value.as_deref(), Some(&record.encode()[..]));
    let back = decode_entry(batch.clone()).unwrap();
    assert_eq!(back, entry);
    assert_eq!(back.batch, Some(batch));
}

#[test]
fn joint_voter_sets_and_learners_round_trip_through_the_rivulet_field() {
    let nodes: BTreeMap<NodeId, Voter> = [
        (1, Voter::new("a", 1)),
        (2, Voter::new("b", 2)),
        (3, Voter::new("c", 3)),
        (9, Voter::new("learner", 9)),
    ]
    .into_iter()
    .collect();
    let m = Membership::new(
        vec![[1, 2].into_iter().collect(), [2, 3].into_iter().collect()],
        nodes,
    );
    let bytes = encode_voters(&m);
    assert_eq!(decode_voters(&bytes).unwrap(), m);
    // Kafka sees the first voter set and skips the Rivulet field.
    let kafka = VotersRecord::decode(&mut Bytes::from(bytes), 0).unwrap();
    let ids: Vec<i32> = kafka.voters.iter().map(|v| *v.voter_id).collect();
    assert_eq!(ids, vec![1, 2]);
    assert!(kafka
        .unknown_tagged_fields
        .contains_key(&(RIVULET_MEMBERSHIP_TAG as i32)));
}

#[test]
fn default_voters_round_trip() {
    // openraft's tests build voter sets with `Voter::default()` nodes.
    let m: Membership<NodeId, Voter> = Membership::new(vec![[3, 4].into_iter().collect()], ());
    assert_eq!(decode_voters(&encode_voters(&m)).unwrap(), m);
}

#[test]
fn several_entries_split_back_into_their_batches() {
    let entries = vec![
        MetadataEntry::new(entry_id(1, 0), Payload::Membership(voters(&[(1, "x", 1)]))),
        MetadataEntry::new(entry_id(1, 1), Payload::Blank),
        MetadataEntry::new(entry_id(2, 2), Payload::Normal(MetadataRecord::NoOp)),
    ];
    let mut all = Vec::new();
    for e in &entries {
        all.extend_from_slice(&encode_entry(e, NOW, 1));
    }
    assert_eq!(decode_entries(&Bytes::from(all), 3).unwrap(), entries);
}

#[test]
fn too_many_entries_are_refused_before_any_is_decoded() {
    let mut all = Vec::new();
    for index in 0..3 {
        let entry = MetadataEntry::new(entry_id(1, index), Payload::Blank);
        all.extend_from_slice(&encode_entry(&entry, NOW, 1));
    }
    // The first batch's CRC is broken: decoding it would fail, but the count
    // (from the headers alone) is refused first.
    all[30] ^= 0xff;
    let all = Bytes::from(all);
    assert_eq!(
        decode_entries(&all, 2),
        Err(CodecError::TooManyEntries { max: 2 })
    );
    assert!(matches!(
        decode_entries(&all, 3),
        Err(CodecError::Batch(BatchError::CrcMismatch { .. }))
    ));
}

#[test]
fn a_decoded_entry_is_not_decoded_again_unless_its_batch_was_replaced() {
    let a = MetadataEntry::new(entry_id(2, 5), Payload::Normal(MetadataRecord::NoOp));
    let b = MetadataEntry::new(
        entry_id(2, 5),
        Payload::Membership(voters(&[(1, "host", 9093)])),
    );
    let mut entry = decode_entry(encode_entry(&a, NOW, 1)).unwrap();
    let own = entry.batch.clone().unwrap();
    assert!(entry.was_decoded_from(&own));
    assert!(check_batch(&entry, &own).is_ok());
    // Equal bytes elsewhere are decoded and compared.
    let copy = Bytes::copy_from_slice(&own);
    assert!(!entry.was_decoded_from(&copy));
    assert!(check_batch(&entry, &copy).is_ok());
    // A batch put in its place by hand is checked, and refused.
    entry.batch = Some(encode_entry(&b, NOW, 1));
    let replaced = entry.batch.clone().unwrap();
    assert!(matches!(
        check_batch(&entry, &replaced),
        Err(CodecError::Mismatch(_))
    ));
}

#[test]
fn a_batch_that_is_not_its_entry_is_refused() {
    let entry = MetadataEntry::new(entry_id(2, 5), Payload::Blank);
    let other = MetadataEntry::new(entry_id(3, 5), Payload::Blank);
    let batch = encode_entry(&other, NOW, 1);
    assert!(matches!(
        check_batch(&entry, &batch),
        Err(CodecError::Mismatch(_))
    ));
    assert!(check_batch(&other, &batch).is_ok());
}

#[test]
fn corrupt_batches_are_errors_never_panics() {
    let entry = MetadataEntry::new(
        entry_id(2, 5),
        Payload::Membership(voters(&[(1, "host", 9093)])),
    );
    let batch = encode_entry(&entry, NOW, 1).to_vec();
    for at in 0..batch.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = batch.clone();
            bad[at] ^= flip;
            // Either refused, or (a flip in a field the CRC does not cover that
            // still makes sense, such as the epoch or offset) decoded.
            let _ = decode_entry(Bytes::from(bad));
        }
    }
    for cut in 0..batch.len() {
        assert!(decode_entry(Bytes::from(batch[..cut].to_vec())).is_err());
    }
    // Two records in one batch are not an entry.
    let mut builder = protocol::records::BatchBuilder::new(protocol::records::Compression::None);
    for _ in 0..2 {
        builder.append(&protocol::records::NewRecord {
            timestamp: NOW,
            key: None,
            value: Some(&MetadataRecord::NoOp.encode()),
            headers: &[],
        });
    }
    let two = Bytes::from(builder.build().unwrap());
    assert!(matches!(decode_entry(two), Err(CodecError::RecordCount(2))));
}

#[test]
fn hostile_voter_counts_do_not_allocate() {
    // Version 0, then a compact array claiming 2^31 voters in a few bytes.
    let bytes = [0u8, 0, 0xff, 0xff, 0xff, 0xff, 0x07];
    assert!(decode_voters(&bytes).is_err());
    assert!(decode_leader_change(&[0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x07]).is_err());
}
