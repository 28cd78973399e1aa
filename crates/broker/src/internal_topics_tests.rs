use protocol::records::batch::ATTRIBUTES_AT;
use protocol::records::{BatchBuilder, Compression, NewRecord};

use super::*;

/// A batch at `base_offset` with one record keyed `key`.
fn batch(base_offset: i64, key: &[u8]) -> Vec<u8> {
    batch_with(
        BatchBuilder::new(Compression::None).base_offset(base_offset),
        key,
        b"v",
    )
}

fn batch_with(mut builder: BatchBuilder, key: &[u8], value: &[u8]) -> Vec<u8> {
    builder.append(&NewRecord {
        timestamp: 1_000,
        key: Some(key),
        value: Some(value),
        headers: &[],
    });
    builder.build().unwrap()
}

/// Walks `bytes` from `offset`; the keys of the batches visited, in order.
fn walk(bytes: &[u8], offset: i64) -> (Walk, Replayed, Vec<Vec<u8>>) {
    let mut replayed = Replayed::default();
    let mut keys = Vec::new();
    let walk = walk_batches(bytes, offset, &mut replayed, &mut |_, records| {
        keys.extend(records.into_iter().map(|r| r.key.unwrap().to_vec()));
    });
    (walk, replayed, keys)
}

#[test]
fn a_batch_that_does_not_decode_is_skipped_and_counted_and_the_rest_load() {
    let mut bad = batch(1, b"bad");
    // Compression 7 does not exist: the header reads, the records do not.
    bad[ATTRIBUTES_AT + 1] |= 0x07;
    let bytes = [batch(0, b"g1"), bad, batch(2, b"g2")].concat();
    let (walk, replayed, keys) = walk(&bytes, 0);
    assert_eq!(walk, Walk::Next(3));
    assert_eq!(keys, vec![b"g1".to_vec(), b"g2".to_vec()]);
    assert_eq!(
        replayed,
        Replayed {
            batches: 2,
            records: 0,
            skipped_batches: 1
        }
    );
}

#[test]
fn a_header_that_cannot_be_read_ends_the_walk_and_is_counted() {
    let bytes = [batch(0, b"g1"), vec![0xff; 20]].concat();
    let (walk, replayed, keys) = walk(&bytes, 0);
    assert!(matches!(walk, Walk::Stopped(_)), "{walk:?}");
    assert_eq!(keys, vec![b"g1".to_vec()]);
    assert_eq!((replayed.batches, replayed.skipped_batches), (1, 1));
}

#[test]
fn a_batch_that_does_not_move_forward_ends_the_walk_instead_of_looping() {
    let (walk, replayed, keys) = walk(&batch(0, b"old"), 5);
    assert!(matches!(walk, Walk::Stopped(_)), "{walk:?}");
    assert!(keys.is_empty());
    assert_eq!((replayed.batches, replayed.skipped_batches), (0, 1));
}

#[test]
fn an_empty_read_is_the_end() {
    assert_eq!(walk(&[], 7).0, Walk::Next(7));
}

#[test]
fn offsets_of_a_transaction_count_with_their_producer_and_its_marker() {
    let txn = batch_with(
        BatchBuilder::new(Compression::None)
            .base_offset(0)
            .producer(7, 0, -1)
            .transactional(true),
        b"offset",
        b"v",
    );
    let commit = batch_with(
        BatchBuilder::new(Compression::None)
            .base_offset(1)
            .producer(7, 0, -1)
            .transactional(true)
            .control(true),
        &[0, 0, 0, 1],
        &[0, 0, 0, 0, 0, 0],
    );
    let plain = batch(2, b"group");
    let mut entries = Vec::new();
    let mut replayed = Replayed::default();
    let bytes = [txn, commit, plain].concat();
    let walked = walk_batches(&bytes, 0, &mut replayed, &mut |header, records| {
        offsets_entries(header, records, &mut entries)
    });
    assert_eq!(walked, Walk::Next(3));
    assert_eq!(entries.len(), 3);
    assert!(matches!(
        &entries[0],
        LoadEntry::Record { key, producer_id: Some(7), .. } if &key[..] == b"offset"
    ));
    assert!(matches!(
        entries[1],
        LoadEntry::Marker {
            producer_id: 7,
            commit: true
        }
    ));
    assert!(matches!(
        &entries[2],
        LoadEntry::Record { key, producer_id: None, .. } if &key[..] == b"group"
    ));
}

#[test]
fn internal_topics_are_compacted_and_capped_by_the_brokers_registered() {
    let settings = InternalTopicSettings {
        partitions: 50,
        replication_factor: 3,
        segment_bytes: "104857600".into(),
    };
    let offsets = InternalTopic::Offsets.spec(&settings, 1);
    assert_eq!(offsets.name, "__consumer_offsets");
    assert_eq!(
        (offsets.num_partitions, offsets.replication_factor),
        (50, 1)
    );
    assert_eq!(
        offsets.configs,
        vec![
            ("cleanup.policy".to_string(), Some("compact".to_string())),
            ("compression.type".to_string(), Some("producer".to_string())),
            ("segment.bytes".to_string(), Some("104857600".to_string())),
        ]
    );
    let transactions = InternalTopic::Transactions.spec(&settings, 5);
    assert_eq!(transactions.name, "__transaction_state");
    assert_eq!(transactions.replication_factor, 3);
    assert_eq!(
        transactions.configs,
        vec![
            ("cleanup.policy".to_string(), Some("compact".to_string())),
            ("segment.bytes".to_string(), Some("104857600".to_string())),
        ]
    );
    // No broker registered yet (a first start): one replica, not none.
    assert_eq!(
        InternalTopic::Offsets.spec(&settings, 0).replication_factor,
        1
    );
}
