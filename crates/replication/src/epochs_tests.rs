//! The leader's epoch answers on the KIP-101/320 examples: a follower that wrote
//! in an epoch the leader never had, one past the end of a shared epoch, one in
//! an epoch newer than the leader knows, one whose epoch's records are gone.

use std::path::Path;

use protocol::TopicPartition;
use storage::fs::MemFs;
use storage::leader_epoch::LeaderEpochCache;

use super::*;
use crate::events::{LogOffsets, PartitionMetadata, ReplicationConfig};
use crate::Input;

const ME: i32 = 1;

/// A leader cache with `(epoch, start offset)` entries.
fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
    let fs = MemFs::new().shared();
    fs.create_dir_all(Path::new("/t-0")).unwrap();
    let mut cache = LeaderEpochCache::load(fs, Path::new("/t-0"));
    for (epoch, start) in entries {
        cache.assign(*epoch, *start).unwrap();
    }
    cache
}

fn log(epochs: &LeaderEpochCache, log_start_offset: i64, log_end_offset: i64) -> LogEpochs<'_> {
    LogEpochs {
        epochs,
        log_start_offset,
        log_end_offset,
    }
}

/// This broker leads at `leader_epoch`.
fn leader(leader_epoch: i32, log_end_offset: i64) -> Partition {
    let offsets = LogOffsets {
        log_start_offset: 0,
        log_end_offset,
        high_watermark: 0,
    };
    let mut p = Partition::new(
        TopicPartition::new("t", 0),
        ME,
        ReplicationConfig::default(),
        offsets,
    );
    p.handle(
        0,
        Input::MetadataChanged(PartitionMetadata {
            leader: ME,
            leader_epoch,
            partition_epoch: leader_epoch,
            replicas: vec![1, 2],
            isr: vec![1, 2],
        }),
    );
    p
}

fn diverging(leader_epoch: i32, end_offset: i64) -> FetchStart {
    FetchStart::Diverging(EpochEndOffset {
        leader_epoch,
        end_offset,
    })
}

fn out_of_range(result: Result<FetchStart, ReplicationError>) -> bool {
    matches!(
        result,
        Err(ReplicationError::Storage(
            StorageError::OffsetOutOfRange { .. }
        ))
    )
}

#[test]
fn a_follower_that_wrote_in_an_epoch_the_leader_never_had_diverges() {
    // The follower led epoch 1 briefly and wrote 10..15; the leader went from
    // epoch 0 straight to 2 at offset 10.
    let epochs = cache(&[(0, 0), (2, 10)]);
    let p = leader(2, 20);
    assert_eq!(
        p.follower_fetch_start(1, 15, log(&epochs, 0, 20)).unwrap(),
        diverging(0, 10)
    );
}

#[test]
fn a_follower_past_the_end_of_a_shared_epoch_diverges_there() {
    let epochs = cache(&[(0, 0), (1, 10), (2, 15)]);
    let p = leader(2, 20);
    let log = log(&epochs, 0, 20);
    assert_eq!(
        p.follower_fetch_start(1, 17, log).unwrap(),
        diverging(1, 15)
    );
    // Within the epoch, or exactly at its end: nothing diverges.
    assert_eq!(
        p.follower_fetch_start(1, 12, log).unwrap(),
        FetchStart::Read
    );
    assert_eq!(
        p.follower_fetch_start(1, 15, log).unwrap(),
        FetchStart::Read
    );
    assert_eq!(
        p.follower_fetch_start(2, 20, log).unwrap(),
        FetchStart::Read
    );
}

#[test]
fn an_epoch_the_leader_cannot_place_or_a_fetch_below_its_start_is_out_of_range() {
    let epochs = cache(&[(3, 100), (4, 150)]);
    let p = leader(4, 200);
    let log = log(&epochs, 100, 200);
    // Newer than any epoch the leader knows.
    assert!(out_of_range(p.follower_fetch_start(7, 160, log)));
    // Below the log start, whatever the epoch says.
    assert!(out_of_range(p.follower_fetch_start(3, 90, log)));
    // An epoch whose records were deleted ends where the log's history starts:
    // a follower at that offset reads on.
    assert_eq!(
        p.follower_fetch_start(1, 100, log).unwrap(),
        FetchStart::Read
    );
    assert_eq!(
        p.follower_fetch_start(1, 120, log).unwrap(),
        diverging(1, 100)
    );
}

#[test]
fn a_follower_with_no_epoch_reads_without_a_check() {
    let epochs = cache(&[]);
    let p = leader(0, 0);
    assert_eq!(
        p.follower_fetch_start(-1, 0, log(&epochs, 0, 0)).unwrap(),
        FetchStart::Read
    );
}

#[test]
fn offset_for_leader_epoch_answers_from_the_cache_and_fences_as_kafka_does() {
    let epochs = cache(&[(1, 0), (3, 40)]);
    let p = leader(3, 55);
    let log = log(&epochs, 0, 55);
    let end = |leader_epoch, end_offset| EpochEndOffset {
        leader_epoch,
        end_offset,
    };
    assert_eq!(
        p.last_offset_for_leader_epoch(Some(3), 3, log).unwrap(),
        end(3, 55)
    );
    assert_eq!(
        p.last_offset_for_leader_epoch(None, 2, log).unwrap(),
        end(1, 40)
    );
    assert_eq!(
        p.last_offset_for_leader_epoch(None, 0, log).unwrap(),
        end(0, 0)
    );
    assert_eq!(
        p.last_offset_for_leader_epoch(None, 4, log).unwrap(),
        UNDEFINED_EPOCH_END
    );
    assert!(matches!(
        p.last_offset_for_leader_epoch(Some(2), 1, log),
        Err(ReplicationError::FencedLeaderEpoch {
            requested: 2,
            current: 3,
            ..
        })
    ));
    assert!(matches!(
        p.last_offset_for_leader_epoch(Some(4), 1, log),
        Err(ReplicationError::UnknownLeaderEpoch {
            requested: 4,
            current: 3,
            ..
        })
    ));
    let mut follower = leader(3, 55);
    follower.handle(
        1,
        Input::MetadataChanged(PartitionMetadata {
            leader: 2,
            leader_epoch: 4,
            partition_epoch: 4,
            replicas: vec![1, 2],
            isr: vec![2],
        }),
    );
    assert!(matches!(
        follower.last_offset_for_leader_epoch(None, 1, log),
        Err(ReplicationError::NotLeaderOrFollower(_))
    ));
    // Kafka's `getLocalLog` checks the epoch before the role: a follower fences
    // an older epoch, and knows nothing of a newer one.
    assert!(matches!(
        follower.last_offset_for_leader_epoch(Some(3), 1, log),
        Err(ReplicationError::FencedLeaderEpoch {
            requested: 3,
            current: 4,
            ..
        })
    ));
    assert!(matches!(
        follower.last_offset_for_leader_epoch(Some(5), 1, log),
        Err(ReplicationError::UnknownLeaderEpoch { .. })
    ));
    assert!(matches!(
        follower.last_offset_for_leader_epoch(Some(4), 1, log),
        Err(ReplicationError::NotLeaderOrFollower(_))
    ));
    // Only -1 (None here) is "no epoch"; another negative one is older than ours.
    assert!(matches!(
        p.last_offset_for_leader_epoch(Some(-2), 1, log),
        Err(ReplicationError::FencedLeaderEpoch { requested: -2, .. })
    ));
}
