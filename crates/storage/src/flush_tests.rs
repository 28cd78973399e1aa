//! What a flush covers now that rolls and snapshots leave their fsyncs to it, and
//! appends that promise to stay in the page cache (`AppendMode::PageCacheOnly`).

use std::path::PathBuf;
use std::sync::Arc;

use protocol::records::{BatchBuilder, Compression, NewRecord};
use protocol::time::{Clock, ManualClock};
use protocol::TopicPartition;

use crate::config::LogConfig;
use crate::env::LogEnv;
use crate::fs::MemFs;
use crate::log::{AppendMode, LoadState, Log};
use crate::log_tests::{batch, config, read_all, NOW};
use crate::producer_state::{self, ProducerStateManager};
use crate::validate::Origin;

fn dir() -> PathBuf {
    PathBuf::from("/data/t-0")
}

fn open_with(
    fs: &MemFs,
    clock: &Arc<ManualClock>,
    config: Arc<LogConfig>,
    state: LoadState,
) -> Log {
    let env = LogEnv::new(fs.shared(), Arc::clone(clock) as Arc<dyn Clock>);
    Log::open(&dir(), TopicPartition::new("t", 0), config, &env, state).unwrap()
}

fn unclean(log: &Log) -> LoadState {
    LoadState {
        recovery_point: log.recovery_point().0,
        log_start_offset: log.log_start_offset().0,
        clean_shutdown: false,
    }
}

/// One record from producer 7 (epoch 0) with `sequence`.
fn idempotent(sequence: i32) -> Vec<u8> {
    let mut builder = BatchBuilder::new(Compression::None).producer(7, 0, sequence);
    builder.append(&NewRecord {
        timestamp: NOW,
        key: Some(b"k"),
        value: Some(&[sequence as u8; 20]),
        headers: &[],
    });
    builder.build().unwrap()
}

fn flush_all(log: &mut Log) {
    let plan = log.flush_plan(i64::MAX).unwrap();
    plan.sync().unwrap();
    log.complete_flush(&plan);
}

#[test]
fn a_page_cache_only_append_refuses_a_roll_and_a_new_leader_epoch_and_changes_nothing() {
    let fs = MemFs::new();
    let clock = Arc::new(ManualClock::new(NOW));
    let mut log = open_with(
        &fs,
        &clock,
        config(&[("segment.ms", "1000")]),
        LoadState::default(),
    );
    let one = batch(&[b"a"], NOW, Compression::None);
    // The first append of epoch 0 records the epoch (an fsynced checkpoint).
    assert_eq!(
        log.append_as_leader_with(&one, 0, Origin::Client, AppendMode::PageCacheOnly)
            .unwrap(),
        None
    );
    assert_eq!(log.log_end_offset().0, 0);
    assert_eq!(log.leader_epochs().latest(), None);
    log.append_as_leader(&one, 0, Origin::Client).unwrap();
    let info = log
        .append_as_leader_with(&one, 0, Origin::Client, AppendMode::PageCacheOnly)
        .unwrap()
        .expect("a page-cache append in the same epoch and segment is made");
    assert_eq!((info.first_offset.0, info.rolled_segment), (1, None));
    // A newer epoch, then a segment past segment.ms: each refused, nothing changed.
    assert_eq!(
        log.append_as_leader_with(&one, 1, Origin::Client, AppendMode::PageCacheOnly)
            .unwrap(),
        None
    );
    clock.advance(2_000);
    let late = batch(&[b"b"], NOW + 2_000, Compression::None);
    assert_eq!(
        log.append_as_leader_with(&late, 0, Origin::Client, AppendMode::PageCacheOnly)
            .unwrap(),
        None
    );
    assert_eq!(log.log_end_offset().0, 2);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.unflushed_messages(), 2);
    // The same append allowed to block rolls.
    let info = log.append_as_leader(&late, 0, Origin::Client).unwrap();
    assert_eq!((info.first_offset.0, info.rolled_segment), (2, Some(0)));
}

#[test]
fn a_rolls_producer_snapshot_is_synced_by_the_next_flush_not_by_the_roll() {
    let fs = MemFs::new();
    let clock = Arc::new(ManualClock::new(NOW));
    let mut log = open_with(&fs, &clock, config(&[]), LoadState::default());
    for sequence in 0..3 {
        log.append_as_leader(&idempotent(sequence), 0, Origin::Client)
            .unwrap();
    }
    log.roll().unwrap();
    let snapshot = producer_state::snapshot_path(&dir(), 3);
    assert!(log.has_unsynced_metadata());
    // A power loss now: the snapshot's name was made, its bytes never synced.
    assert_eq!(log.unflushed_messages(), 3);
    fs.crash();
    assert_eq!(fs.contents(&snapshot), Some(Vec::new()));
    // The empty snapshot is passed over and the producer's state replayed from
    // the log, none of which was flushed either: the new segment's name survived
    // (`MemFs` keeps names), so the log goes on at 3 with nothing below it.
    let mut log = open_with(&fs, &clock, config(&[]), unclean(&log));
    assert_eq!(log.log_end_offset().0, 3);
    assert!(log.read_bytes(0, 3, 1 << 20).unwrap().is_empty());
    assert_eq!(log.producer_state().producers().count(), 0);
    for sequence in 0..3 {
        log.append_as_leader(&idempotent(sequence), 0, Origin::Client)
            .unwrap();
    }
    log.roll().unwrap();
    flush_all(&mut log);
    assert!(!log.has_unsynced_metadata());
    assert_eq!(log.recovery_point().0, 6);
    fs.crash();
    let durable = fs
        .contents(&producer_state::snapshot_path(&dir(), 6))
        .unwrap();
    let state = ProducerStateManager::decode_snapshot(&durable, 6).expect("a whole snapshot");
    assert_eq!(state.map_end_offset(), 6);
    let mut log = open_with(&fs, &clock, config(&[]), unclean(&log));
    let offsets: Vec<i64> = read_all(&log, 3).iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, vec![3, 4, 5]);
    // A retry of the last batch is known from the snapshot: its original offset.
    let retried = log
        .append_as_leader(&idempotent(2), 0, Origin::Client)
        .unwrap();
    assert!(retried.duplicate);
    assert_eq!(retried.first_offset.0, 5);
}

#[test]
fn flush_messages_counts_the_records_a_flush_did_not_cover() {
    let fs = MemFs::new();
    let clock = Arc::new(ManualClock::new(NOW));
    let mut log = open_with(
        &fs,
        &clock,
        config(&[("flush.messages", "2")]),
        LoadState::default(),
    );
    let one = batch(&[b"a"], NOW, Compression::None);
    log.append_as_leader(&one, 0, Origin::Client).unwrap();
    assert!(!log.flush_messages_due());
    log.append_as_leader(&one, 0, Origin::Client).unwrap();
    assert!(log.flush_messages_due());
    let plan = log.flush_plan(i64::MAX).unwrap();
    // An append while the fsync runs is not covered by it.
    log.append_as_leader(&one, 0, Origin::Client).unwrap();
    plan.sync().unwrap();
    log.complete_flush(&plan);
    assert_eq!(log.recovery_point().0, 2);
    assert_eq!(log.unflushed_messages(), 1);
    assert!(!log.flush_messages_due());
    log.append_as_leader(&one, 0, Origin::Client).unwrap();
    assert!(log.flush_messages_due());
    // flush.ms is its own question: not due until the time has passed.
    assert!(!log.flush_ms_due());
}

/// The segment file of `base` in the test log's directory.
fn segment_log(base: i64) -> PathBuf {
    dir().join(format!("{base:020}.log"))
}

#[test]
fn a_roll_fsyncs_nothing_and_the_next_flush_syncs_its_snapshot_and_dir() {
    let fs = MemFs::new();
    let clock = Arc::new(ManualClock::new(NOW));
    let mut log = open_with(&fs, &clock, config(&[]), LoadState::default());
    for sequence in 0..3 {
        log.append_as_leader(&idempotent(sequence), 0, Origin::Client)
            .unwrap();
    }
    flush_all(&mut log);
    assert_eq!(log.recovery_point().0, 3);
    let before = fs.syncs_of("");
    let dir_syncs = fs.syncs_at(&dir());

    log.roll().unwrap();
    log.append_as_leader(&idempotent(3), 0, Origin::Client)
        .unwrap();
    assert_eq!(
        fs.syncs_of(""),
        before,
        "the roll and the append fsync nothing"
    );
    let snapshot = producer_state::snapshot_path(&dir(), 3);
    assert!(log.has_unsynced_metadata());

    flush_all(&mut log);
    assert_eq!(fs.syncs_at(&snapshot), 1, "the roll's snapshot");
    assert_eq!(fs.syncs_at(&dir()), dir_syncs + 1, "the new names");
    assert_eq!(fs.syncs_at(&segment_log(3)), 1, "the new segment");
    assert_eq!(
        fs.syncs_at(&segment_log(0)),
        1,
        "the old one, flushed before"
    );
    assert!(!log.has_unsynced_metadata());
    assert_eq!(log.recovery_point().0, 4);
    // A flush with nothing new to sync syncs nothing.
    let after = fs.syncs_of("");
    flush_all(&mut log);
    assert_eq!(fs.syncs_of(""), after);
}

#[test]
fn a_failed_fsync_of_a_rolls_snapshot_keeps_the_recovery_point_below_it() {
    let fs = MemFs::new();
    let clock = Arc::new(ManualClock::new(NOW));
    let mut log = open_with(&fs, &clock, config(&[]), LoadState::default());
    for sequence in 0..3 {
        log.append_as_leader(&idempotent(sequence), 0, Origin::Client)
            .unwrap();
    }
    flush_all(&mut log);
    log.roll().unwrap();
    log.append_as_leader(&idempotent(3), 0, Origin::Client)
        .unwrap();
    fs.fail_syncs(".snapshot", 1);
    let plan = log.flush_plan(i64::MAX).unwrap();
    assert_eq!(plan.up_to(), 4);
    assert!(plan.sync().is_err());
    log.complete_flush(&plan);
    assert_eq!(
        log.recovery_point().0,
        3,
        "never past a snapshot that is not durable"
    );
    assert!(log.has_unsynced_metadata());
    // The log dir is offline: no later flush moves the recovery point either.
    assert!(log.flush(i64::MAX).is_err());
    assert!(log.flush_plan(i64::MAX).is_err());
    assert_eq!(log.recovery_point().0, 3);
}
