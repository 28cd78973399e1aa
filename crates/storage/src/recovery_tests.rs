//! Recovery seen through [`MemFs`]: a crash that tears the last write, and an
//! fsync that fails, on a log whose earlier batches were synced.

use std::path::PathBuf;
use std::sync::Arc;

use protocol::records::Compression;
use protocol::time::{Clock, ManualClock};
use protocol::TopicPartition;

use crate::env::LogEnv;
use crate::fs::{FileRef, Fs, MemFs, OpenMode};
use crate::log::{LoadState, Log};
use crate::log_tests::{batch, config, read_all, NOW};
use crate::segment::file_name;
use crate::validate::Origin;

fn dir() -> PathBuf {
    PathBuf::from("/data/t-0")
}

fn open(fs: &MemFs, state: LoadState) -> Log {
    open_with(fs, state, config(&[]))
}

fn open_with(fs: &MemFs, state: LoadState, config: Arc<crate::LogConfig>) -> Log {
    let clock = Arc::new(ManualClock::new(NOW)) as Arc<dyn Clock>;
    let env = LogEnv::new(fs.shared(), clock);
    Log::open(&dir(), TopicPartition::new("t", 0), config, &env, state).unwrap()
}

fn append(log: &mut Log, value: u8) {
    log.append_as_leader(
        &batch(&[&[value; 30], &[value; 20]], NOW, Compression::None),
        0,
        Origin::Client,
    )
    .unwrap();
}

fn values(log: &Log) -> Vec<u8> {
    read_all(log, 0).into_iter().map(|(_, v)| v[0]).collect()
}

fn unclean(log: &Log) -> LoadState {
    LoadState {
        recovery_point: log.recovery_point().0,
        log_start_offset: log.log_start_offset().0,
        clean_shutdown: false,
    }
}

fn segment_file(fs: &MemFs, base: i64) -> FileRef {
    fs.open(&dir().join(file_name(base, "log")), OpenMode::Existing)
        .unwrap()
}

/// Five batches synced, three not; the crash keeps every possible prefix of the
/// three. Recovery cuts the torn batch off and keeps every whole one, and never
/// a synced one less.
#[test]
fn a_torn_write_is_cut_by_recovery_and_no_synced_batch_is_lost() {
    let probe = MemFs::new();
    let mut log = open(&probe, LoadState::default());
    for value in 0..5 {
        append(&mut log, value);
    }
    let synced_size = segment_file(&probe, 0).size().unwrap();
    let batch_size = synced_size / 5;
    let unsynced_bytes = 3 * batch_size;
    drop(log);
    for keep in 0..=unsynced_bytes {
        let fs = MemFs::new();
        let mut log = open(&fs, LoadState::default());
        for value in 0..5 {
            append(&mut log, value);
        }
        log.flush(log.log_end_offset().0).unwrap();
        for value in 5..8 {
            append(&mut log, value);
        }
        let state = unclean(&log);
        assert_eq!(state.recovery_point, 10);
        drop(log);
        fs.crash_keeping(&dir().join(file_name(0, "log")), keep);
        assert_eq!(segment_file(&fs, 0).size().unwrap(), synced_size + keep);
        let mut log = open(&fs, state);
        let whole = (keep / batch_size) as u8;
        assert_eq!(
            values(&log),
            (0..5 + whole).flat_map(|v| [v, v]).collect::<Vec<_>>(),
            "keeping {keep} unsynced bytes"
        );
        assert_eq!(log.log_end_offset().0, 10 + 2 * i64::from(whole));
        assert_eq!(
            segment_file(&fs, 0).size().unwrap(),
            synced_size + u64::from(whole) * batch_size,
            "the torn tail is cut"
        );
        // The log goes on from there.
        append(&mut log, 9);
        assert_eq!(values(&log).last(), Some(&9));
    }
}

/// An fsync fails: the flush is an error, the recovery point stays where the last
/// good flush left it, and after a crash the log holds exactly what was synced.
#[test]
fn a_failed_fsync_leaves_the_recovery_point_and_recovery_keeps_what_was_synced() {
    let fs = MemFs::new();
    let mut log = open(&fs, LoadState::default());
    for value in 0..5 {
        append(&mut log, value);
    }
    log.flush(log.log_end_offset().0).unwrap();
    for value in 5..8 {
        append(&mut log, value);
    }
    fs.fail_syncs(".log", 1);
    let error = log.flush(log.log_end_offset().0).unwrap_err();
    assert!(error.to_string().contains("Input/output error"), "{error}");
    assert_eq!(
        log.recovery_point().0,
        10,
        "the recovery point did not move"
    );
    let state = unclean(&log);
    drop(log);
    fs.crash();
    let log = open(&fs, state);
    assert_eq!(log.log_end_offset().0, 10);
    assert_eq!(
        values(&log),
        (0..5).flat_map(|v| [v, v]).collect::<Vec<_>>()
    );
}

/// Records below the log start offset need no flush: a reopen after a crash puts
/// the recovery point at the log start, and a flush then syncs only the segments
/// from there. A power loss tears the older segment's unsynced bytes, its index
/// among them; loading rebuilds that segment (below the recovery point) and cuts
/// its torn tail, and must cut it alone: the flushed segment after it stays whole.
/// (The shrunk proptest case `1db887d2`: the cut dropped every later segment, the
/// flushed records with them, and the log started afresh at its start offset.)
#[test]
fn a_torn_segment_below_the_recovery_point_does_not_take_the_flushed_ones_after_it() {
    let fs = MemFs::new();
    let open = |state| open_with(&fs, state, config(&[("index.interval.bytes", "100")]));
    let mut log = open(LoadState::default());
    for value in 0..3 {
        append(&mut log, value);
    }
    let leo = log.log_end_offset().0;
    assert_eq!(log.delete_records_before(leo, leo).unwrap(), 6);
    assert_eq!(log.roll().unwrap(), 0);
    append(&mut log, 7);
    // kill -9: the page cache keeps every write; nothing was ever flushed.
    let state = unclean(&log);
    assert_eq!(state.recovery_point, 0);
    drop(log);
    let mut log = open(state);
    assert_eq!(
        log.recovery_point().0,
        6,
        "the recovery point starts at the log start"
    );
    log.flush(8).unwrap();
    assert_eq!(log.recovery_point().0, 8);
    let state = unclean(&log);
    drop(log);
    // The power loss: segment 0 keeps all but the end of its last batch, and a
    // torn entry of its index.
    let index_path = dir().join(file_name(0, "index"));
    let index = fs.contents(&index_path).unwrap();
    assert!(index.len() >= 16, "segment 0 has index entries");
    let torn_size = segment_file(&fs, 0).size().unwrap() - 10;
    fs.crash_keeping(&dir().join(file_name(0, "log")), torn_size);
    fs.set_contents(&index_path, &index[..11]);
    let log = open(state);
    assert_eq!(log.segment_base_offsets(), vec![0, 6]);
    assert_eq!(log.log_start_offset().0, 6);
    assert_eq!(log.log_end_offset().0, 8, "the flushed records survive");
    assert_eq!(read_all(&log, 6), vec![(6, vec![7; 30]), (7, vec![7; 20])]);
}

/// A segment the load trusts (below the recovery point) whose index names a
/// batch at the very end of its log (an entry a power loss brought back past a
/// cut): the log is rebuilt from, not the offsets the entry makes up.
#[test]
fn an_index_entry_at_the_end_of_a_trusted_segment_is_not_believed() {
    let fs = MemFs::new();
    let open = |state| open_with(&fs, state, config(&[("index.interval.bytes", "100")]));
    let mut log = open(LoadState::default());
    for value in 0..3 {
        append(&mut log, value);
    }
    log.roll().unwrap();
    append(&mut log, 7);
    log.close().unwrap();
    drop(log);
    let index_path = dir().join(file_name(0, "index"));
    let log_path = dir().join(file_name(0, "log"));
    let index = fs.contents(&index_path).unwrap();
    let bytes = fs.contents(&log_path).unwrap();
    let last_position = u32::from_be_bytes(index[index.len() - 4..].try_into().unwrap());
    assert!(last_position > 0, "the last batch is indexed");
    // The log without its last batch, the index still naming it.
    fs.set_contents(&log_path, &bytes[..last_position as usize]);
    let log = open(LoadState {
        recovery_point: 8,
        log_start_offset: 0,
        clean_shutdown: false,
    });
    assert_eq!(log.segment_base_offsets(), vec![0, 6]);
    assert_eq!(log.log_end_offset().0, 8);
    assert_eq!(
        read_all(&log, 0)
            .into_iter()
            .map(|(o, v)| (o, v[0]))
            .collect::<Vec<_>>(),
        vec![(0, 0), (1, 0), (2, 1), (3, 1), (6, 7), (7, 7)]
    );
    // Segment 0 ends where its log does: a truncation in the gap lands at 4, not
    // at the end the stale entry made up.
    let mut log = log;
    log.truncate_to(5).unwrap();
    assert_eq!(log.log_end_offset().0, 4);
}
