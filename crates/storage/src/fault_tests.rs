//! Disk faults injected through [`MemFs`]: a failed fsync or write takes its log
//! dir offline and leaves the others serving; a full disk refuses appends, loses
//! nothing acknowledged and recovers when space returns; DeleteRecords survives a
//! crash; a compaction swap killed at any step recovers to the old or the new
//! segments.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use protocol::records::{decode_records, BatchBuilder, Compression, NewRecord};
use protocol::time::{Clock, ManualClock};
use protocol::TopicPartition;
use uuid::Uuid;

use crate::cleaner::{clean, CleanerConfig};
use crate::env::LogEnv;
use crate::error::{AppendError, StorageError};
use crate::fs::{is_out_of_space, Fs, MemFs};
use crate::log::{LoadState, Log};
use crate::log_manager::{DiscoveredLog, LogManager, SharedLog};
use crate::log_tests::{batch, config, read_all, NOW};
use crate::validate::Origin;

fn env(fs: &MemFs) -> LogEnv {
    let clock = Arc::new(ManualClock::new(NOW)) as Arc<dyn Clock>;
    LogEnv::new(fs.shared(), clock)
}

fn value(i: u32) -> Vec<u8> {
    let mut v = i.to_be_bytes().to_vec();
    v.resize(40, 7);
    v
}

fn append(log: &SharedLog, i: u32) -> Result<i64, AppendError> {
    let bytes = batch(&[&value(i)], NOW, Compression::None);
    let mut log = log.lock().unwrap();
    log.append_as_leader(&bytes, 0, Origin::Client)
        .map(|info| info.first_offset.0)
}

fn values(log: &SharedLog) -> Vec<u32> {
    read_all(&log.lock().unwrap(), 0)
        .into_iter()
        .map(|(_, v)| u32::from_be_bytes(v[..4].try_into().unwrap()))
        .collect()
}

fn manager(fs: &MemFs) -> LogManager {
    LogManager::open(&[PathBuf::from("/d1"), PathBuf::from("/d2")], env(fs)).unwrap()
}

/// Reopens every log after a restart of the "broker".
fn reload(fs: &MemFs) -> (LogManager, BTreeMap<TopicPartition, SharedLog>) {
    let manager = manager(fs);
    let mut logs = BTreeMap::new();
    let found: Vec<DiscoveredLog> = manager.discover().unwrap();
    for found in found {
        let log = manager.load_log(&found, config(&[])).unwrap();
        logs.insert(found.topic_partition.clone(), log);
    }
    manager.finish_loading().unwrap();
    (manager, logs)
}

#[test]
fn a_failed_fsync_takes_its_log_dir_offline_and_the_other_dir_serves_on() {
    let fs = MemFs::new();
    let manager = manager(&fs);
    let a_tp = TopicPartition::new("a", 0);
    let b_tp = TopicPartition::new("b", 0);
    let a = manager
        .create_log(&a_tp, Uuid::from_u128(1), config(&[]))
        .unwrap();
    let b = manager
        .create_log(&b_tp, Uuid::from_u128(2), config(&[]))
        .unwrap();
    assert!(a.lock().unwrap().dir().starts_with("/d1"));
    assert!(b.lock().unwrap().dir().starts_with("/d2"));
    for i in 0..5 {
        append(&a, i).unwrap();
        append(&b, i).unwrap();
    }
    for log in [&a, &b] {
        let mut log = log.lock().unwrap();
        let leo = log.log_end_offset().0;
        log.flush(leo).unwrap();
    }
    manager.checkpoint().unwrap();
    for i in 5..8 {
        append(&a, i).unwrap();
        append(&b, i).unwrap();
    }
    fs.fail_syncs("/d1/", 1);
    {
        let mut log = a.lock().unwrap();
        let leo = log.log_end_offset().0;
        assert!(log.flush(leo).is_err());
        assert_eq!(
            log.recovery_point().0,
            5,
            "never past what a failed fsync held"
        );
        // The fsync that follows succeeds, but what the failed one covered may be
        // gone: the directory is offline for good.
        assert!(matches!(
            log.flush(leo),
            Err(StorageError::LogDirOffline(..))
        ));
        assert!(matches!(
            log.read(0, leo),
            Err(StorageError::LogDirOffline(..))
        ));
        assert_eq!(log.recovery_point().0, 5);
    }
    assert!(matches!(
        append(&a, 8),
        Err(AppendError::Storage(StorageError::LogDirOffline(..)))
    ));
    // The other log dir serves on.
    append(&b, 8).unwrap();
    {
        let mut log = b.lock().unwrap();
        let leo = log.log_end_offset().0;
        log.flush(leo).unwrap();
    }
    assert_eq!(values(&b), (0..9).collect::<Vec<_>>());
    let states = manager.dir_states();
    assert!(
        states[0]
            .1
            .as_deref()
            .is_some_and(|r| r.contains("fsync failed")),
        "{states:?}"
    );
    assert_eq!(states[1].1, None);
    // Shutdown closes the healthy dir only; the offline one gets no clean mark.
    manager.shutdown().unwrap();
    drop((a, b, manager));
    assert!(!Fs::exists(&fs, Path::new("/d1/.kafka_cleanshutdown")).unwrap());
    assert!(Fs::exists(&fs, Path::new("/d2/.kafka_cleanshutdown")).unwrap());
    fs.crash();
    let (_, logs) = reload(&fs);
    // What was synced before the failure is there; what the failed fsync covered
    // is gone (the power loss took the page cache).
    assert_eq!(values(&logs[&a_tp]), (0..5).collect::<Vec<_>>());
    assert_eq!(values(&logs[&b_tp]), (0..9).collect::<Vec<_>>());
}

#[test]
fn a_failed_write_takes_the_log_dir_offline() {
    let fs = MemFs::new();
    let manager = manager(&fs);
    let log = manager
        .create_log(
            &TopicPartition::new("a", 0),
            Uuid::from_u128(3),
            config(&[]),
        )
        .unwrap();
    append(&log, 0).unwrap();
    fs.fail_writes(".log", 1);
    assert!(matches!(
        append(&log, 1),
        Err(AppendError::Storage(StorageError::Io { .. }))
    ));
    assert!(matches!(
        append(&log, 2),
        Err(AppendError::Storage(StorageError::LogDirOffline(..)))
    ));
}

#[test]
fn a_full_disk_refuses_appends_loses_nothing_and_recovers_when_space_returns() {
    let fs = MemFs::new();
    let manager = manager(&fs);
    let tp = TopicPartition::new("a", 0);
    let log = manager
        .create_log(
            &tp,
            Uuid::from_u128(4),
            config(&[("segment.bytes", "1000")]),
        )
        .unwrap();
    fs.set_capacity(Some(fs.used_bytes() + 3_000));
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for i in 0..100 {
        match append(&log, i) {
            Ok(offset) => {
                assert_eq!(offset, acknowledged.len() as i64, "offsets stay dense");
                acknowledged.push(i);
            }
            Err(AppendError::Storage(StorageError::Io { source, .. })) => {
                assert!(is_out_of_space(&source), "{source}");
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused > 50 && acknowledged.len() > 10, "{refused} refused");
    assert!(
        log.lock().unwrap().check_online().is_ok(),
        "a full disk is not a failed disk"
    );
    assert_eq!(values(&log), acknowledged);
    fs.set_capacity(None);
    for i in 100..110 {
        append(&log, i).unwrap();
        acknowledged.push(i);
    }
    assert_eq!(values(&log), acknowledged);
    // Flushed and restarted after a power loss: everything is there.
    {
        let mut log = log.lock().unwrap();
        let leo = log.log_end_offset().0;
        log.flush(leo).unwrap();
    }
    manager.checkpoint().unwrap();
    drop((log, manager));
    fs.crash();
    let (_, logs) = reload(&fs);
    assert_eq!(values(&logs[&tp]), acknowledged);
}

#[test]
fn delete_records_is_durable_before_it_answers() {
    let fs = MemFs::new();
    let manager = manager(&fs);
    let tp = TopicPartition::new("a", 0);
    let log = manager
        .create_log(&tp, Uuid::from_u128(5), config(&[("segment.bytes", "300")]))
        .unwrap();
    for i in 0..10 {
        append(&log, i).unwrap();
    }
    {
        let mut log = log.lock().unwrap();
        log.flush(10).unwrap();
        assert_eq!(log.delete_records_before(7, 10).unwrap(), 7);
    }
    // A crash before any periodic checkpoint: the deleted records stay deleted.
    drop((log, manager));
    fs.crash();
    let (_, logs) = reload(&fs);
    let log = logs[&tp].lock().unwrap();
    assert_eq!(log.log_start_offset().0, 7);
    assert!(log.read(5, 10).is_err(), "offset 5 is out of range");
    assert_eq!(
        read_all(&log, 7)
            .into_iter()
            .map(|(o, _)| o)
            .collect::<Vec<_>>(),
        vec![7, 8, 9]
    );
}

// ---- a compaction swap killed at each step ----

type Contents = Vec<(i64, Option<Vec<u8>>, Option<Vec<u8>>)>;

fn contents(log: &Log) -> Contents {
    let leo = log.log_end_offset().0;
    let mut offset = log.log_start_offset().0;
    let mut out = Vec::new();
    while offset < leo {
        let bytes = log.read_bytes(offset, leo, 1 << 20).unwrap();
        if bytes.is_empty() {
            break;
        }
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let (header, records) = decode_records(rest, 1 << 20).unwrap();
            rest = &rest[header.size()..];
            for r in records.into_iter().filter(|r| r.offset >= offset) {
                out.push((
                    r.offset,
                    r.key.map(|k| k.to_vec()),
                    r.value.map(|v| v.to_vec()),
                ));
            }
            offset = header.next_offset();
        }
    }
    out
}

fn compacted_dir() -> PathBuf {
    PathBuf::from("/data/c-0")
}

fn open_compacted(fs: &MemFs, clean_shutdown: bool) -> Log {
    let cfg = config(&[("segment.bytes", "10000"), ("cleanup.policy", "compact")]);
    let state = LoadState {
        recovery_point: 0,
        log_start_offset: 0,
        clean_shutdown,
    };
    Log::open(
        &compacted_dir(),
        TopicPartition::new("c", 0),
        cfg,
        &env(fs),
        state,
    )
    .unwrap()
}

/// A compacted log of several segments, closed cleanly.
fn compacted_log(fs: &MemFs) {
    let mut log = open_compacted(fs, true);
    for round in 0..30u8 {
        let mut builder = BatchBuilder::new(Compression::Gzip);
        builder.append(&NewRecord {
            timestamp: NOW,
            key: Some(&[round % 4]),
            value: Some(&[round; 30]),
            headers: &[],
        });
        log.append_as_leader(&builder.build().unwrap(), 0, Origin::Coordinator)
            .unwrap();
    }
    log.roll().unwrap();
    log.close().unwrap();
}

fn run_clean(log: Log) -> (Log, Result<(), StorageError>) {
    let hw = log.log_end_offset().0;
    let shared = Mutex::new(log);
    let outcome = clean(&shared, 0, hw, &CleanerConfig::default(), &mut |_| {
        ControlFlow::Continue(())
    });
    let outcome = outcome.map(|outcome| assert!(outcome.is_some(), "something to clean"));
    (shared.into_inner().unwrap(), outcome)
}

#[test]
fn a_compaction_swap_killed_at_any_step_recovers_to_the_old_or_the_new_segments() {
    let reference = MemFs::new();
    compacted_log(&reference);
    let before = contents(&open_compacted(&reference, true));
    let (cleaned, outcome) = run_clean(open_compacted(&reference, true));
    outcome.unwrap();
    let after = contents(&cleaned);
    assert!(after.len() < before.len());
    let outputs = cleaned.segment_count();
    drop(cleaned);
    let mut saw = (false, false);
    for step in 0.. {
        let fs = MemFs::new();
        compacted_log(&fs);
        let log = open_compacted(&fs, true);
        fs.halt_after(step);
        let (log, outcome) = run_clean(log);
        if !fs.is_halted() {
            outcome.unwrap();
            assert_eq!(contents(&log), after);
            assert!(step > 10, "the cleaning made {step} changes");
            break;
        }
        assert!(outcome.is_err(), "step {step}: the halted cleaning failed");
        drop(log);
        fs.crash();
        let log = open_compacted(&fs, false);
        let got = contents(&log);
        if got == before {
            saw.0 = true;
        } else if got == after {
            saw.1 = true;
            assert_eq!(log.segment_count(), outputs, "step {step}");
        } else {
            panic!("step {step}: neither the old nor the new log: {got:?}");
        }
        let names = fs.file_names(&compacted_dir());
        assert!(
            names
                .iter()
                .all(|n| !n.ends_with(".swap") && !n.ends_with(".cleaned")),
            "step {step}: leftovers {names:?}"
        );
    }
    assert_eq!(
        saw,
        (true, true),
        "crashes before and after the commit point"
    );
}
