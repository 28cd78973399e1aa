//! A follower's fetch from the leader's hosted partition (Kafka's
//! `Partition.fetchRecords` for a follower): who may fetch, the diverging epoch
//! answer, reads up to the log end with the HW from before the read, and the
//! HW the follower's position moves.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use protocol::records::{decode_records, BatchBuilder, Compression, NewRecord};
use protocol::time::{Clock, ManualClock};
use protocol::TopicPartition;
use replication::{
    EpochEndOffset, LogOffsets, PartitionMetadata, ReplicationConfig, ReplicationError,
};
use storage::fs::MemFs;
use storage::{LogConfig, LogEnv, LogManager, Origin, ReadOutcome};
use uuid::Uuid;

use super::{Acks, FollowerFetch, FollowerRead, HostedPartition, SharedPartition};

const NOW: i64 = 1_700_000_000_000;
const LEADER_EPOCH: i32 = 3;

/// Partition t-0 led by this broker (1) at epoch 3, replicas 1 and 2, both in the ISR.
fn host(fs: &MemFs) -> SharedPartition {
    let clock = Arc::new(ManualClock::new(NOW)) as Arc<dyn Clock>;
    let manager = LogManager::open(
        &[PathBuf::from("/d1")],
        LogEnv::new(fs.shared(), Arc::clone(&clock)),
    )
    .unwrap();
    let config = Arc::new(LogConfig::resolve(&BTreeMap::new(), &BTreeMap::new()).unwrap());
    let tp = TopicPartition::new("t", 0);
    let log = manager.create_log(&tp, Uuid::from_u128(1), config).unwrap();
    let offsets = LogOffsets {
        log_start_offset: 0,
        log_end_offset: 0,
        high_watermark: 0,
    };
    let machine = replication::Partition::new(tp, 1, ReplicationConfig::default(), offsets);
    let metadata = PartitionMetadata {
        leader: 1,
        leader_epoch: LEADER_EPOCH,
        partition_epoch: 1,
        replicas: vec![1, 2],
        isr: vec![1, 2],
    };
    Arc::new(HostedPartition::new(
        Uuid::from_u128(1),
        log,
        clock,
        machine,
        metadata,
    ))
}

fn append(partition: &SharedPartition, value: u8, acks: i16) -> Acks {
    let mut builder = BatchBuilder::new(Compression::None);
    builder.append(&NewRecord {
        timestamp: NOW,
        key: None,
        value: Some(&[value; 8]),
        headers: &[],
    });
    let batch = builder.build().unwrap();
    partition
        .append_as_leader(&batch, acks, Origin::Client, 30_000)
        .unwrap()
        .acks
}

fn fetch(replica_id: i32, fetch_offset: i64, last_fetched_epoch: i32) -> FollowerFetch {
    FollowerFetch {
        replica_id,
        broker_epoch: -1,
        current_leader_epoch: Some(LEADER_EPOCH),
        fetch_offset,
        last_fetched_epoch,
        log_start_offset: 0,
    }
}

/// The offsets of the records a read returned.
fn offsets(read: &FollowerRead) -> Vec<i64> {
    match &read.read.outcome {
        ReadOutcome::Empty => Vec::new(),
        ReadOutcome::Data(slice) => {
            let bytes = slice.read(usize::MAX, true).unwrap();
            let mut rest = &bytes[..];
            let mut offsets = Vec::new();
            while !rest.is_empty() {
                let (header, records) = decode_records(rest, 1 << 20).unwrap();
                rest = &rest[header.size()..];
                offsets.extend(records.iter().map(|r| r.offset));
            }
            offsets
        }
    }
}

#[test]
fn a_follower_reads_to_the_log_end_and_its_position_moves_the_high_watermark() {
    let fs = MemFs::new();
    let partition = host(&fs);
    for value in 0..3 {
        assert!(matches!(append(&partition, value, 1), Acks::Done(Ok(()))));
    }
    let waiting = match append(&partition, 3, -1) {
        Acks::Waiting(waiting) => waiting,
        other => panic!("acks=all answered before the follower had the record: {other:?}"),
    };
    assert_eq!(partition.high_watermark(), 0);
    let consumer = partition
        .read(0, replication::IsolationLevel::ReadUncommitted, None)
        .unwrap();
    assert!(matches!(consumer.outcome, ReadOutcome::Empty));

    // Up to the log end, not the HW; the HW reported is the one before the read.
    let read = partition.read_for_follower(&fetch(2, 0, -1), true).unwrap();
    assert_eq!(offsets(&read), vec![0, 1, 2, 3]);
    assert_eq!(read.read.high_watermark, 0);
    assert_eq!(read.diverging_epoch, None);
    assert_eq!(
        partition.high_watermark(),
        0,
        "the follower is at 0 until it asks for more"
    );

    // At the log end: the follower has everything, the HW moves and acks=all is answered.
    let read = partition
        .read_for_follower(&fetch(2, 4, LEADER_EPOCH), true)
        .unwrap();
    assert!(offsets(&read).is_empty());
    assert_eq!(read.read.high_watermark, 0);
    assert_eq!(partition.high_watermark(), 4);
    assert!(matches!(waiting.blocking_recv(), Ok(Ok(()))));
}

#[test]
fn a_read_without_update_does_not_move_the_high_watermark() {
    let fs = MemFs::new();
    let partition = host(&fs);
    append(&partition, 0, 1);
    let read = partition
        .read_for_follower(&fetch(2, 1, LEADER_EPOCH), false)
        .unwrap();
    assert_eq!(read.read.high_watermark, 0);
    assert_eq!(partition.high_watermark(), 0);
    partition
        .read_for_follower(&fetch(2, 1, LEADER_EPOCH), true)
        .unwrap();
    assert_eq!(partition.high_watermark(), 1);
}

#[test]
fn a_follower_whose_epoch_diverges_gets_where_it_ends_and_no_records() {
    let fs = MemFs::new();
    let partition = host(&fs);
    for value in 0..3 {
        append(&partition, value, 1);
    }
    // The follower has offsets up to 5 in epoch 1; this log's first epoch (3)
    // starts at 0, so epoch 1 ends at 0 here.
    let read = partition.read_for_follower(&fetch(2, 5, 1), true).unwrap();
    assert_eq!(
        read.diverging_epoch,
        Some(EpochEndOffset {
            leader_epoch: 1,
            end_offset: 0
        })
    );
    assert!(offsets(&read).is_empty());
    // No position was recorded: the HW stays.
    assert_eq!(partition.high_watermark(), 0);
    // An epoch this log has not seen yet cannot be placed.
    assert!(matches!(
        partition.read_for_follower(&fetch(2, 3, LEADER_EPOCH + 1), true),
        Err(ReplicationError::Storage(
            storage::StorageError::OffsetOutOfRange { .. }
        ))
    ));
}

#[test]
fn only_a_replica_at_the_current_leader_epoch_may_fetch() {
    let fs = MemFs::new();
    let partition = host(&fs);
    append(&partition, 0, 1);
    let not_a_replica = FollowerFetch {
        current_leader_epoch: None,
        ..fetch(7, 0, -1)
    };
    assert!(matches!(
        partition.read_for_follower(&not_a_replica, true),
        Err(ReplicationError::NotLeaderOrFollower(_))
    ));
    // Naming the current epoch, an unknown replica may be one the metadata has
    // not brought yet (a reassignment).
    assert!(matches!(
        partition.read_for_follower(&fetch(7, 0, -1), true),
        Err(ReplicationError::UnknownLeaderEpoch { .. })
    ));
    // The leader itself is no follower.
    assert!(matches!(
        partition.read_for_follower(&fetch(1, 0, -1), true),
        Err(ReplicationError::UnknownLeaderEpoch { .. })
    ));
    let stale = FollowerFetch {
        current_leader_epoch: Some(LEADER_EPOCH - 1),
        ..fetch(2, 0, -1)
    };
    assert!(matches!(
        partition.read_for_follower(&stale, true),
        Err(ReplicationError::FencedLeaderEpoch { .. })
    ));
    let ahead = FollowerFetch {
        current_leader_epoch: Some(LEADER_EPOCH + 1),
        ..fetch(2, 0, -1)
    };
    assert!(matches!(
        partition.read_for_follower(&ahead, true),
        Err(ReplicationError::UnknownLeaderEpoch { .. })
    ));
    assert_eq!(partition.high_watermark(), 0);
}

#[test]
fn offset_for_leader_epoch_answers_from_the_epoch_cache() {
    let fs = MemFs::new();
    let partition = host(&fs);
    for value in 0..3 {
        append(&partition, value, 1);
    }
    let end = |leader_epoch, end_offset| EpochEndOffset {
        leader_epoch,
        end_offset,
    };
    assert_eq!(
        partition
            .last_offset_for_leader_epoch(Some(LEADER_EPOCH), LEADER_EPOCH)
            .unwrap(),
        end(LEADER_EPOCH, 3)
    );
    assert_eq!(
        partition.last_offset_for_leader_epoch(None, 0).unwrap(),
        end(0, 0)
    );
    assert_eq!(
        partition
            .last_offset_for_leader_epoch(None, LEADER_EPOCH + 1)
            .unwrap(),
        end(-1, -1)
    );
    assert!(matches!(
        partition.last_offset_for_leader_epoch(Some(LEADER_EPOCH - 1), 0),
        Err(ReplicationError::FencedLeaderEpoch { .. })
    ));
}
