//! The group commit of a hosted partition over a log on `MemFs` (whose fsyncs a
//! test can hold, fail, and lose in a power cut): appends that `flush.messages`
//! makes wait share syncs, are answered and become visible only once synced, and
//! fail together when the sync fails.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use protocol::records::{decode_records, BatchBuilder, Compression, NewRecord};
use protocol::time::{Clock, ManualClock};
use protocol::{ErrorCode, TopicPartition};
use replication::{LogOffsets, PartitionMetadata, ReplicationConfig};
use storage::fs::MemFs;
use storage::{LogConfig, LogEnv, LogManager, Origin};
use uuid::Uuid;

use super::{Acks, AppendOutcome, HostedPartition, SharedPartition};
use crate::errors::{replication_error_code, sync_error_code};
use crate::group_commit::SyncError;

const NOW: i64 = 1_700_000_000_000;
const TIMEOUT_MS: i64 = 30_000;

fn config() -> Arc<LogConfig> {
    let overrides = BTreeMap::from([("flush.messages".to_string(), "1".to_string())]);
    Arc::new(LogConfig::resolve(&overrides, &BTreeMap::new()).unwrap())
}

fn manager(fs: &MemFs) -> LogManager {
    let clock = Arc::new(ManualClock::new(NOW)) as Arc<dyn Clock>;
    LogManager::open(&[PathBuf::from("/d1")], LogEnv::new(fs.shared(), clock)).unwrap()
}

/// A partition of a `flush.messages=1` topic led by this broker (node 1) alone.
fn host(manager: &LogManager) -> SharedPartition {
    let tp = TopicPartition::new("t", 0);
    let log = manager.create_log(&tp, Uuid::new_v4(), config()).unwrap();
    let offsets = {
        let log = log.lock().unwrap();
        LogOffsets {
            log_start_offset: log.log_start_offset().0,
            log_end_offset: log.log_end_offset().0,
            high_watermark: 0,
        }
    };
    let machine = replication::Partition::new(tp, 1, ReplicationConfig::default(), offsets);
    let metadata = PartitionMetadata {
        leader: 1,
        leader_epoch: 0,
        partition_epoch: 0,
        replicas: vec![1],
        isr: vec![1],
    };
    let clock = Arc::new(ManualClock::new(NOW)) as Arc<dyn Clock>;
    Arc::new(HostedPartition::new(
        Uuid::new_v4(),
        log,
        clock,
        machine,
        metadata,
    ))
}

fn record(value: u8) -> Vec<u8> {
    let mut builder = BatchBuilder::new(Compression::None);
    builder.append(&NewRecord {
        timestamp: NOW,
        key: None,
        value: Some(&[value; 16]),
        headers: &[],
    });
    builder.build().unwrap()
}

fn append(partition: &SharedPartition, value: u8, acks: i16) -> AppendOutcome {
    partition
        .append_as_leader(&record(value), acks, Origin::Client, TIMEOUT_MS)
        .unwrap()
}

/// The first value byte of every record the log holds, after a restart.
fn values_after_restart(fs: &MemFs) -> Vec<u8> {
    let manager = manager(fs);
    let mut values = Vec::new();
    for found in manager.discover().unwrap() {
        let log = manager.load_log(&found, config()).unwrap();
        let log = log.lock().unwrap();
        let bytes = log.read_bytes(0, log.log_end_offset().0, 1 << 20).unwrap();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let (header, records) = decode_records(rest, 1 << 20).unwrap();
            rest = &rest[header.size()..];
            values.extend(records.iter().map(|r| r.value.as_ref().unwrap()[0]));
        }
    }
    values
}

async fn synced(outcome: AppendOutcome) -> Result<(), SyncError> {
    let synced = outcome
        .synced
        .expect("flush.messages=1: every append waits");
    super::wait_synced(synced).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_made_during_a_sync_share_the_next_one_and_are_invisible_until_synced() {
    let fs = MemFs::new();
    let manager = manager(&fs);
    let partition = host(&manager);
    // The first append records leader epoch 0 (an fsynced checkpoint) and syncs.
    synced(append(&partition, 0, 1)).await.unwrap();
    assert_eq!(partition.high_watermark(), 1);
    let syncs_before = partition.syncs();

    fs.hold_syncs();
    let first = append(&partition, 1, 1);
    assert!(
        fs.wait_for_held_syncs(1, Duration::from_secs(10)),
        "the first append's sync started"
    );
    // Four more while that sync is held: three acks=1, one acks=all.
    let waiting: Vec<AppendOutcome> = (2..5).map(|v| append(&partition, v, 1)).collect();
    let all = append(&partition, 5, -1);
    let Acks::Waiting(all_acks) = all.acks else {
        panic!("acks=all is answered only once its records are synced");
    };
    assert_eq!(partition.log_end_offset(), 6);
    assert_eq!(
        partition.high_watermark(),
        1,
        "consumers see nothing that is not synced"
    );

    fs.release_syncs();
    synced(first).await.unwrap();
    for outcome in waiting {
        synced(outcome).await.unwrap();
    }
    super::wait_synced(all.synced.unwrap()).await.unwrap();
    partition.wait_for_acks(all_acks, TIMEOUT_MS).await.unwrap();
    assert_eq!(
        partition.syncs() - syncs_before,
        2,
        "one sync for the first append, one for the four made during it"
    );
    assert_eq!(partition.high_watermark(), 6);

    // A power cut now: everything acknowledged is on the disk.
    fs.crash();
    assert_eq!(values_after_restart(&fs), vec![0, 1, 2, 3, 4, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_fails_every_append_waiting_on_it_and_takes_the_dir_offline() {
    let fs = MemFs::new();
    let manager = manager(&fs);
    let partition = host(&manager);
    synced(append(&partition, 0, 1)).await.unwrap();

    fs.hold_syncs();
    fs.fail_syncs(".log", 1);
    let first = append(&partition, 1, 1);
    assert!(fs.wait_for_held_syncs(1, Duration::from_secs(10)));
    let during: Vec<AppendOutcome> = (2..4).map(|v| append(&partition, v, 1)).collect();
    fs.release_syncs();

    for outcome in std::iter::once(first).chain(during) {
        let error = synced(outcome).await.unwrap_err();
        assert!(matches!(error, SyncError::Storage(_)), "{error:?}");
        assert_eq!(sync_error_code(&error), ErrorCode::KafkaStorageError);
    }
    assert_eq!(partition.high_watermark(), 1);
    assert!(!partition.is_online());
    let refused = partition
        .append_as_leader(&record(9), 1, Origin::Client, TIMEOUT_MS)
        .unwrap_err();
    assert_eq!(
        replication_error_code(&refused),
        ErrorCode::KafkaStorageError
    );
    // What was acknowledged survives; what failed may or may not (never answered
    // with success, so a client retries it).
    fs.crash();
    assert_eq!(values_after_restart(&fs)[..1], [0]);
}
