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
    config_with(&[("flush.messages", "1")])
}

fn config_with(pairs: &[(&str, &str)]) -> Arc<LogConfig> {
    let overrides = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Arc::new(LogConfig::resolve(&overrides, &BTreeMap::new()).unwrap())
}

fn manager(fs: &MemFs) -> LogManager {
    manager_with(fs, &Arc::new(ManualClock::new(NOW)))
}

fn manager_with(fs: &MemFs, clock: &Arc<ManualClock>) -> LogManager {
    let clock = Arc::clone(clock) as Arc<dyn Clock>;
    LogManager::open(&[PathBuf::from("/d1")], LogEnv::new(fs.shared(), clock)).unwrap()
}

/// A partition of a `flush.messages=1` topic led by this broker (node 1) alone.
fn host(manager: &LogManager) -> SharedPartition {
    host_with(manager, config(), &Arc::new(ManualClock::new(NOW)))
}

/// A partition of a topic with `config` led by this broker (node 1) alone.
fn host_with(
    manager: &LogManager,
    config: Arc<LogConfig>,
    clock: &Arc<ManualClock>,
) -> SharedPartition {
    let tp = TopicPartition::new("t", 0);
    let log = manager.create_log(&tp, Uuid::from_u128(1), config).unwrap();
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
    let clock = Arc::clone(clock) as Arc<dyn Clock>;
    Arc::new(HostedPartition::new(
        Uuid::from_u128(1),
        log,
        clock,
        machine,
        metadata,
    ))
}

fn record(value: u8) -> Vec<u8> {
    record_at(value, NOW)
}

fn record_at(value: u8, timestamp: i64) -> Vec<u8> {
    let mut builder = BatchBuilder::new(Compression::None);
    builder.append(&NewRecord {
        timestamp,
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
        let end = log.log_end_offset().0;
        // A read returns one segment's records at most: read on from the next.
        let mut offset = log.log_start_offset().0;
        while offset < end {
            let bytes = log.read_bytes(offset, end, 1 << 20).unwrap();
            assert!(!bytes.is_empty(), "nothing to read at {offset} below {end}");
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let (header, records) = decode_records(rest, 1 << 20).unwrap();
                rest = &rest[header.size()..];
                values.extend(records.iter().map(|r| r.value.as_ref().unwrap()[0]));
                offset = header.next_offset();
            }
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

const ACTIVE_LOG: &str = "/d1/t-0/00000000000000000000.log";

fn recovery_point(partition: &SharedPartition) -> i64 {
    super::lock(&partition.log).recovery_point().0
}

/// Waits (up to 10 s) for `done`, which a sync on the blocking pool makes true.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_producers_at_once_share_one_fsync_of_the_log_counted_at_the_disk() {
    let fs = MemFs::new();
    let manager = manager(&fs);
    let partition = host(&manager);
    synced(append(&partition, 0, 1)).await.unwrap();
    let log_file = PathBuf::from(ACTIVE_LOG);
    assert_eq!(fs.syncs_at(&log_file), 1);

    fs.hold_syncs();
    let first = append(&partition, 1, 1);
    assert!(fs.wait_for_held_syncs(1, Duration::from_secs(10)));
    // Sixteen producers on their own threads append while that fsync is held.
    let start = Arc::new(std::sync::Barrier::new(16));
    let producers: Vec<_> = (0..16u8)
        .map(|i| {
            let partition = Arc::clone(&partition);
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                append(&partition, 2 + i, if i % 2 == 0 { 1 } else { -1 })
            })
        })
        .collect();
    let outcomes: Vec<AppendOutcome> = producers
        .into_iter()
        .map(|p| p.join().expect("producer thread"))
        .collect();
    assert_eq!(partition.log_end_offset(), 18);
    assert_eq!(partition.high_watermark(), 1, "nothing unsynced is visible");

    fs.release_syncs();
    synced(first).await.unwrap();
    for outcome in outcomes {
        super::wait_synced(outcome.synced.expect("every append waits"))
            .await
            .unwrap();
        if let Acks::Waiting(acks) = outcome.acks {
            partition.wait_for_acks(acks, TIMEOUT_MS).await.unwrap();
        }
    }
    assert_eq!(
        fs.syncs_at(&log_file),
        3,
        "one fsync for the first append, one for the sixteen made during it"
    );
    assert_eq!(partition.high_watermark(), 18);
    assert_eq!(recovery_point(&partition), 18);

    fs.crash();
    let mut values = values_after_restart(&fs);
    assert_eq!(values[..2], [0, 1]);
    values[2..].sort_unstable();
    assert_eq!(values, (0..18).collect::<Vec<u8>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_ms_syncs_in_the_background_and_holds_up_no_acknowledgement() {
    let fs = MemFs::new();
    let clock = Arc::new(ManualClock::new(NOW));
    let manager = manager_with(&fs, &clock);
    let partition = host_with(&manager, config_with(&[("flush.ms", "1000")]), &clock);
    let log_file = PathBuf::from(ACTIVE_LOG);

    let first = append(&partition, 0, 1);
    assert!(first.synced.is_none(), "flush.ms makes nobody wait");
    assert!(matches!(first.acks, Acks::Done(Ok(()))));
    assert_eq!(partition.high_watermark(), 1, "visible at once");
    assert_eq!(fs.syncs_at(&log_file), 0);
    assert!(!lock_log_flush_due(&partition));

    // The scheduler's check (log.flush.scheduler.interval.ms) after flush.ms.
    clock.advance(1_000);
    partition.flush_if_due();
    wait_until("the scheduled sync", || recovery_point(&partition) == 1).await;
    assert_eq!(fs.syncs_at(&log_file), 1);

    // Within flush.ms of that sync: no sync.
    let second = append(&partition, 1, -1);
    assert!(second.synced.is_none());
    assert!(matches!(second.acks, Acks::Done(Ok(()))));
    partition.flush_if_due();
    assert_eq!(recovery_point(&partition), 1);

    // An append that finds flush.ms passed asks for a sync itself, answered at once.
    clock.advance(1_000);
    let third = append(&partition, 2, 1);
    assert!(third.synced.is_none());
    assert!(matches!(third.acks, Acks::Done(Ok(()))));
    assert_eq!(partition.high_watermark(), 3);
    wait_until("the sync the append asked for", || {
        recovery_point(&partition) == 3
    })
    .await;
    assert_eq!(fs.syncs_at(&log_file), 2);
    fs.crash();
    assert_eq!(values_after_restart(&fs), vec![0, 1, 2]);
}

fn lock_log_flush_due(partition: &SharedPartition) -> bool {
    super::lock(&partition.log).flush_due()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roll_asks_for_a_sync_of_its_snapshot_and_dir_that_nobody_waits_for() {
    let fs = MemFs::new();
    let clock = Arc::new(ManualClock::new(NOW));
    let manager = manager_with(&fs, &clock);
    let partition = host_with(&manager, config_with(&[("segment.ms", "1000")]), &clock);
    let dir = PathBuf::from("/d1/t-0");
    let snapshot = dir.join("00000000000000000001.snapshot");

    append(&partition, 0, 1);
    let dir_syncs = fs.syncs_at(&dir);
    clock.advance(2_000);
    let rolled = partition
        .append_as_leader(&record_at(1, NOW + 2_000), 1, Origin::Client, TIMEOUT_MS)
        .unwrap();
    assert_eq!(rolled.info.rolled_segment, Some(0));
    assert!(rolled.synced.is_none(), "nobody waits for the roll's sync");
    assert!(matches!(rolled.acks, Acks::Done(Ok(()))));
    assert_eq!(partition.high_watermark(), 2);
    wait_until("the roll's sync", || recovery_point(&partition) == 2).await;
    assert!(!super::lock(&partition.log).has_unsynced_metadata());
    assert_eq!(fs.syncs_at(&snapshot), 1);
    assert_eq!(fs.syncs_at(&dir), dir_syncs + 1, "the new names");
    assert_eq!(fs.syncs_at(&dir.join("00000000000000000001.log")), 1);
    fs.crash();
    assert_eq!(values_after_restart(&fs), vec![0, 1]);
}
