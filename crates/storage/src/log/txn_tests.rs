//! Transactions through the log: aborts found far from their records, and recovery
//! of the transaction index after a torn write.

use std::collections::BTreeMap;
use std::sync::Arc;

use protocol::records::{BatchBuilder, Compression, NewRecord};
use protocol::time::{Clock, ManualClock};
use protocol::TopicPartition;

use super::{LoadState, Log};
use crate::config::LogConfig;
use crate::env::LogEnv;
use crate::producer_state::{marker_batch, CONTROL_ABORT};
use crate::validate::Origin;

fn txn_batch(pid: i64, seq: i32, value: &[u8]) -> Vec<u8> {
    let mut builder = BatchBuilder::new(Compression::None)
        .producer(pid, 0, seq)
        .transactional(true);
    builder.append(&NewRecord {
        timestamp: 1,
        key: None,
        value: Some(value),
        headers: &[],
    });
    builder.build().unwrap()
}

fn open(dir: &std::path::Path, clean_shutdown: bool) -> Log {
    open_with(dir, clean_shutdown, "200")
}

fn open_with(dir: &std::path::Path, clean_shutdown: bool, segment_bytes: &str) -> Log {
    let overrides: BTreeMap<String, String> =
        [("segment.bytes".to_string(), segment_bytes.to_string())].into();
    let config = Arc::new(LogConfig::resolve(&overrides, &BTreeMap::new()).unwrap());
    let clock = Arc::new(ManualClock::new(1_700_000_000_000)) as Arc<dyn Clock>;
    Log::open(
        dir,
        TopicPartition::new("t", 0),
        config,
        &LogEnv::real(clock),
        LoadState {
            recovery_point: 0,
            log_start_offset: 0,
            clean_shutdown,
        },
    )
    .unwrap()
}

/// Aborts whose markers land segments after the records they abort, with other
/// transactions open meanwhile; then the same after the transaction indexes are
/// rebuilt by a replay at start-up.
#[test]
fn aborts_far_from_their_records_are_found_before_and_after_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), true);
    let mut seqs = BTreeMap::new();
    let mut write = |log: &mut Log, pid: i64| {
        let seq = seqs.entry(pid).or_insert(0);
        let offset = log
            .append_as_leader(&txn_batch(pid, *seq, b"v"), 0, Origin::Client)
            .unwrap()
            .first_offset
            .0;
        *seq += 1;
        offset
    };
    let abort = |log: &mut Log, pid: i64| {
        log.append_as_leader(
            &marker_batch(pid, 0, CONTROL_ABORT, 0, 1),
            0,
            Origin::Coordinator,
        )
        .unwrap()
        .first_offset
        .0
    };
    // E aborts alone (its last stable offset is just past its marker).
    assert_eq!(write(&mut log, 5), 0);
    assert_eq!(abort(&mut log, 5), 1);
    // B opens, C aborts while B is open, D opens, B aborts segments later.
    assert_eq!(write(&mut log, 1), 2);
    assert_eq!(write(&mut log, 2), 3);
    assert_eq!(abort(&mut log, 2), 4);
    assert_eq!(write(&mut log, 3), 5);
    for _ in 0..4 {
        write(&mut log, 1);
    }
    let b_marker = abort(&mut log, 1);
    assert!(
        log.segment_count() >= 3
            && log.segments.range(..=5).next_back().map(|(b, _)| *b) < Some(b_marker)
    );
    assert_eq!(log.first_unstable_offset(), Some(5));
    let expected = vec![(5, 0), (2, 3), (1, 2)];
    let mut found = log.aborted_transactions(0, 5);
    found.sort_by_key(|(pid, _)| std::cmp::Reverse(*pid));
    assert_eq!(found, expected);
    // The transaction indexes are lost; an unclean start rebuilds them by replay.
    drop(log);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|e| e == "txnindex" || e == "snapshot")
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    let log = open(dir.path(), false);
    assert_eq!(log.first_unstable_offset(), Some(5));
    let mut found = log.aborted_transactions(0, 5);
    found.sort_by_key(|(pid, _)| std::cmp::Reverse(*pid));
    assert_eq!(found, expected);
}

/// A torn write cuts an ABORT marker off the log: recovery drops its
/// transaction index entry too, so the transaction is open again and a later
/// marker at the same offset is indexed.
#[test]
fn recovery_forgets_the_index_entry_of_a_marker_cut_off_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_with(dir.path(), true, "100000");
    log.append_as_leader(&txn_batch(1, 0, b"a"), 0, Origin::Client)
        .unwrap();
    log.append_as_leader(&txn_batch(2, 0, b"b"), 0, Origin::Client)
        .unwrap();
    let marker = marker_batch(1, 0, CONTROL_ABORT, 0, 1);
    assert_eq!(
        log.append_as_leader(&marker, 0, Origin::Coordinator)
            .unwrap()
            .first_offset
            .0,
        2
    );
    assert_eq!(log.aborted_transactions(0, 3), vec![(1, 0)]);
    drop(log);
    let segment = dir.path().join(crate::segment::file_name(0, "log"));
    let len = std::fs::metadata(&segment).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let mut log = open_with(dir.path(), false, "100000");
    assert_eq!(log.log_end_offset().0, 2);
    assert_eq!(log.first_unstable_offset(), Some(0));
    assert_eq!(log.aborted_transactions(0, 2), vec![]);
    log.append_as_leader(
        &marker_batch(2, 0, CONTROL_ABORT, 0, 1),
        0,
        Origin::Coordinator,
    )
    .unwrap();
    assert_eq!(log.aborted_transactions(0, 3), vec![(2, 1)]);
}
