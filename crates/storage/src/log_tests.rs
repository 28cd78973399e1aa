//! Tests of the log: unit tests of append, read, roll, recovery and truncation
//! (the model test is in `log_model_tests.rs`).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use protocol::records::{decode_records, BatchBuilder, Compression, NewRecord};
use protocol::time::{Clock, ManualClock};
use protocol::TopicPartition;

use crate::config::LogConfig;
use crate::env::LogEnv;
use crate::error::AppendError;
use crate::log::{LoadState, Log, ReadOutcome};
use crate::segment::file_name;
use crate::validate::Origin;

pub(crate) const NOW: i64 = 1_700_000_000_000;

pub(crate) fn config(pairs: &[(&str, &str)]) -> Arc<LogConfig> {
    let overrides: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Arc::new(LogConfig::resolve(&overrides, &BTreeMap::new()).unwrap())
}

pub(crate) fn batch(values: &[&[u8]], timestamp: i64, compression: Compression) -> Vec<u8> {
    let mut builder = BatchBuilder::new(compression);
    for value in values {
        builder.append(&NewRecord {
            timestamp,
            key: Some(b"key"),
            value: Some(value),
            headers: &[],
        });
    }
    builder.build().unwrap()
}

fn open(dir: &Path, config: Arc<LogConfig>, clock: Arc<ManualClock>, state: LoadState) -> Log {
    Log::open(
        dir,
        TopicPartition::new("t", 0),
        config,
        &LogEnv::real(clock as Arc<dyn Clock>),
        state,
    )
    .unwrap()
}

fn new_log(dir: &Path, config: Arc<LogConfig>) -> (Log, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(NOW));
    (
        open(dir, config, Arc::clone(&clock), LoadState::default()),
        clock,
    )
}

/// Every record from `offset` to the LEO, read in fetch-sized steps.
pub(crate) fn read_all(log: &Log, mut offset: i64) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let leo = log.log_end_offset().0;
    while offset < leo {
        let bytes = log.read_bytes(offset, leo, 300).unwrap();
        assert!(
            !bytes.is_empty(),
            "read at {offset} below LEO {leo} returned nothing"
        );
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let (header, records) = decode_records(rest, 1 << 20).unwrap();
            rest = &rest[header.size()..];
            for record in records {
                if record.offset >= offset {
                    out.push((record.offset, record.value.unwrap().to_vec()));
                }
            }
            offset = header.next_offset();
        }
    }
    out
}

#[test]
fn appends_get_consecutive_offsets_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = new_log(dir.path(), config(&[]));
    let first = log
        .append_as_leader(
            &batch(&[b"a", b"b", b"c"], NOW, Compression::None),
            0,
            Origin::Client,
        )
        .unwrap();
    assert_eq!((first.first_offset.0, first.last_offset.0), (0, 2));
    let second = log
        .append_as_leader(&batch(&[b"d"], NOW, Compression::Gzip), 0, Origin::Client)
        .unwrap();
    assert_eq!((second.first_offset.0, second.last_offset.0), (3, 3));
    assert_eq!(log.log_end_offset().0, 4);
    let values: Vec<Vec<u8>> = read_all(&log, 0).into_iter().map(|(_, v)| v).collect();
    assert_eq!(
        values,
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]
    );
}

#[test]
fn a_read_inside_a_batch_returns_the_whole_batch_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = new_log(dir.path(), config(&[]));
    log.append_as_leader(
        &batch(&[b"a", b"b", b"c"], NOW, Compression::Lz4),
        0,
        Origin::Client,
    )
    .unwrap();
    let ReadOutcome::Data(slice) = log.read(1, 3).unwrap() else {
        panic!("expected data")
    };
    assert_eq!(slice.first_batch_base_offset, 0);
    let bytes = slice.read(1, true).unwrap();
    let (header, records) = decode_records(&bytes, 1 << 20).unwrap();
    assert_eq!(header.base_offset, 0);
    assert_eq!(records.len(), 3);
}

#[test]
fn reads_stop_at_the_bound_and_out_of_range_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = new_log(dir.path(), config(&[]));
    log.append_as_leader(&batch(&[b"a"], NOW, Compression::None), 0, Origin::Client)
        .unwrap();
    log.append_as_leader(&batch(&[b"b"], NOW, Compression::None), 0, Origin::Client)
        .unwrap();
    let bytes = log.read_bytes(0, 1, 1 << 20).unwrap();
    let (header, _) = decode_records(&bytes, 1 << 20).unwrap();
    assert_eq!(bytes.len(), header.size(), "only the batch below the bound");
    assert!(matches!(log.read(2, 2).unwrap(), ReadOutcome::Empty));
    assert!(log.read(3, 3).is_err());
}

#[test]
fn max_bytes_returns_whole_batches_and_at_least_one() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = new_log(dir.path(), config(&[]));
    let big = vec![7u8; 1000];
    for _ in 0..3 {
        log.append_as_leader(&batch(&[&big], NOW, Compression::None), 0, Origin::Client)
            .unwrap();
    }
    let one = log.read_bytes(0, 3, 10).unwrap();
    let (header, _) = decode_records(&one, 1 << 20).unwrap();
    assert_eq!(one.len(), header.size());
    let two = log
        .read_bytes(0, 3, header.size() * 2 + header.size() / 2)
        .unwrap();
    assert_eq!(two.len(), header.size() * 2);
}

#[test]
fn segments_roll_at_segment_bytes_and_are_named_by_base_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = new_log(dir.path(), config(&[("segment.bytes", "200")]));
    for i in 0..10u8 {
        log.append_as_leader(
            &batch(&[&[i; 40]], NOW, Compression::None),
            0,
            Origin::Client,
        )
        .unwrap();
    }
    assert!(log.segment_count() > 3, "{} segments", log.segment_count());
    for base in log.segment_base_offsets() {
        for suffix in ["log", "index", "timeindex"] {
            assert!(
                dir.path().join(file_name(base, suffix)).exists(),
                "{base}.{suffix}"
            );
        }
    }
    assert_eq!(read_all(&log, 0).len(), 10);
    assert_eq!(read_all(&log, 7).first().map(|r| r.0), Some(7));
}

#[test]
fn segments_roll_after_segment_ms_measured_by_record_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, clock) = new_log(dir.path(), config(&[("segment.ms", "1000")]));
    log.append_as_leader(&batch(&[b"a"], NOW, Compression::None), 0, Origin::Client)
        .unwrap();
    clock.advance(500);
    log.append_as_leader(
        &batch(&[b"b"], NOW + 500, Compression::None),
        0,
        Origin::Client,
    )
    .unwrap();
    assert_eq!(log.segment_count(), 1);
    clock.advance(600);
    let info = log
        .append_as_leader(
            &batch(&[b"c"], NOW + 1_100, Compression::None),
            0,
            Origin::Client,
        )
        .unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(info.rolled_segment, Some(0));
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
}

#[test]
fn validation_refuses_bad_batches_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = new_log(dir.path(), config(&[("max.message.bytes", "300")]));
    let mut corrupt = batch(&[b"a"], NOW, Compression::None);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert!(matches!(
        log.append_as_leader(&corrupt, 0, Origin::Client),
        Err(AppendError::CorruptMessage(_))
    ));
    let large = batch(&[&[0u8; 400]], NOW, Compression::None);
    assert!(matches!(
        log.append_as_leader(&large, 0, Origin::Client),
        Err(AppendError::MessageTooLarge { .. })
    ));
    let mut magic1 = batch(&[b"a"], NOW, Compression::None);
    magic1[16] = 1;
    assert!(matches!(
        log.append_as_leader(&magic1, 0, Origin::Client),
        Err(AppendError::UnsupportedMagic(1))
    ));
    let mut miscounted = batch(&[b"a", b"b"], NOW, Compression::None);
    miscounted[57..61].copy_from_slice(&3i32.to_be_bytes());
    let crc = crc32c::crc32c(&miscounted[21..]);
    miscounted[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        log.append_as_leader(&miscounted, 0, Origin::Client),
        Err(AppendError::InvalidRecord(_))
    ));
    let mut two = batch(&[b"a"], NOW, Compression::None);
    two.extend_from_slice(&batch(&[b"b"], NOW, Compression::None));
    assert!(matches!(
        log.append_as_leader(&two, 0, Origin::Client),
        Err(AppendError::InvalidRecord(_))
    ));
    let future = batch(&[b"a"], NOW + 2 * 3_600_000, Compression::None);
    match log.append_as_leader(&future, 0, Origin::Client) {
        Err(AppendError::InvalidTimestamp { record_errors, .. }) => {
            assert_eq!(record_errors.len(), 1)
        }
        other => panic!("expected INVALID_TIMESTAMP, got {other:?}"),
    }
    assert_eq!(log.log_end_offset().0, 0);
    assert_eq!(log.size_in_bytes(), 0);
}

#[test]
fn log_append_time_topics_stamp_the_broker_time() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, clock) = new_log(
        dir.path(),
        config(&[("message.timestamp.type", "LogAppendTime")]),
    );
    clock.set(NOW + 42);
    let info = log
        .append_as_leader(
            &batch(&[b"a", b"b"], 5, Compression::Zstd),
            0,
            Origin::Client,
        )
        .unwrap();
    assert_eq!(info.log_append_time, NOW + 42);
    let bytes = log.read_bytes(0, 2, 1 << 20).unwrap();
    let (_, records) = decode_records(&bytes, 1 << 20).unwrap();
    assert!(records.iter().all(|r| r.timestamp == NOW + 42));
}

#[test]
fn timestamps_are_found_through_the_time_index() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = new_log(
        dir.path(),
        config(&[("index.interval.bytes", "1"), ("segment.bytes", "300")]),
    );
    for i in 0..20i64 {
        log.append_as_leader(
            &batch(&[b"v"], NOW + i * 10, Compression::None),
            0,
            Origin::Client,
        )
        .unwrap();
    }
    assert_eq!(log.offset_for_timestamp(NOW).unwrap().map(|f| f.0), Some(0));
    assert_eq!(
        log.offset_for_timestamp(NOW + 55)
            .unwrap()
            .map(|f| (f.0, f.1)),
        Some((6, NOW + 60))
    );
    assert_eq!(
        log.offset_for_timestamp(NOW + 190).unwrap().map(|f| f.0),
        Some(19)
    );
    assert_eq!(log.offset_for_timestamp(NOW + 191).unwrap(), None);
    assert_eq!(
        log.offset_of_max_timestamp().unwrap().map(|f| (f.0, f.1)),
        Some((19, NOW + 190))
    );
}

#[test]
fn a_clean_restart_keeps_everything_without_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&[("segment.bytes", "300"), ("index.interval.bytes", "50")]);
    let (mut log, clock) = new_log(dir.path(), Arc::clone(&cfg));
    for i in 0..30u8 {
        log.append_as_leader(
            &batch(&[&[i; 20]], NOW + i64::from(i), Compression::None),
            0,
            Origin::Client,
        )
        .unwrap();
    }
    let before = read_all(&log, 0);
    log.close().unwrap();
    let state = LoadState {
        recovery_point: log.recovery_point().0,
        log_start_offset: 0,
        clean_shutdown: true,
    };
    drop(log);
    let log = open(dir.path(), cfg, clock, state);
    assert_eq!(log.log_end_offset().0, 30);
    assert_eq!(read_all(&log, 0), before);
    assert_eq!(
        log.offset_of_max_timestamp().unwrap().map(|f| f.0),
        Some(29)
    );
}

#[test]
fn a_crash_with_a_torn_tail_truncates_only_the_torn_batch() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&[]);
    let (mut log, clock) = new_log(dir.path(), Arc::clone(&cfg));
    for i in 0..5u8 {
        log.append_as_leader(
            &batch(&[&[i; 20]], NOW, Compression::Snappy),
            0,
            Origin::Client,
        )
        .unwrap();
    }
    let before = read_all(&log, 0);
    drop(log);
    let torn = batch(&[b"never acknowledged"], NOW, Compression::None);
    let mut file = OpenOptions::new()
        .append(true)
        .open(dir.path().join(file_name(0, "log")))
        .unwrap();
    file.write_all(&torn[..torn.len() / 2]).unwrap();
    drop(file);
    std::fs::remove_file(dir.path().join(file_name(0, "index"))).unwrap();
    let state = LoadState {
        recovery_point: 0,
        log_start_offset: 0,
        clean_shutdown: false,
    };
    let mut log = open(dir.path(), Arc::clone(&cfg), Arc::clone(&clock), state);
    assert_eq!(log.log_end_offset().0, 5);
    assert_eq!(read_all(&log, 0), before);
    let next = log
        .append_as_leader(
            &batch(&[b"after"], NOW, Compression::None),
            0,
            Origin::Client,
        )
        .unwrap();
    assert_eq!(next.first_offset.0, 5);
}

#[test]
fn a_corrupt_batch_in_the_middle_cuts_the_log_there() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&[]);
    let (mut log, clock) = new_log(dir.path(), Arc::clone(&cfg));
    let mut sizes = Vec::new();
    for i in 0..4u8 {
        let info = log
            .append_as_leader(
                &batch(&[&[i; 30]], NOW, Compression::None),
                0,
                Origin::Client,
            )
            .unwrap();
        sizes.push(info.bytes);
    }
    drop(log);
    let path = dir.path().join(file_name(0, "log"));
    let mut bytes = std::fs::read(&path).unwrap();
    let third = sizes[0] + sizes[1] + 70;
    bytes[third] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    let state = LoadState {
        recovery_point: 0,
        log_start_offset: 0,
        clean_shutdown: false,
    };
    let log = open(dir.path(), cfg, clock, state);
    assert_eq!(log.log_end_offset().0, 2);
    assert_eq!(read_all(&log, 0).len(), 2);
}

#[test]
fn truncation_removes_offsets_at_and_above_and_offsets_continue_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = new_log(dir.path(), config(&[("segment.bytes", "200")]));
    for i in 0..10u8 {
        log.append_as_leader(
            &batch(&[&[i; 40]], NOW, Compression::None),
            0,
            Origin::Client,
        )
        .unwrap();
    }
    log.truncate_to(4).unwrap();
    assert_eq!(log.log_end_offset().0, 4);
    assert_eq!(read_all(&log, 0).len(), 4);
    let info = log
        .append_as_leader(&batch(&[b"x"], NOW, Compression::None), 0, Origin::Client)
        .unwrap();
    assert_eq!(info.first_offset.0, 4);
}

#[test]
fn leader_epochs_are_recorded_on_append() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = new_log(dir.path(), config(&[]));
    log.append_as_leader(&batch(&[b"a"], NOW, Compression::None), 0, Origin::Client)
        .unwrap();
    log.append_as_leader(&batch(&[b"b"], NOW, Compression::None), 3, Origin::Client)
        .unwrap();
    assert_eq!(log.leader_epochs().epoch_for_offset(0), Some(0));
    assert_eq!(log.leader_epochs().epoch_for_offset(1), Some(3));
    let bytes = log.read_bytes(1, 2, 1 << 20).unwrap();
    assert_eq!(i32::from_be_bytes(bytes[12..16].try_into().unwrap()), 3);
}

// ---- retention and DeleteRecords ----

fn fill(log: &mut Log, clock: &ManualClock, count: u8, step_ms: i64) {
    for i in 0..count {
        clock.advance(step_ms);
        log.append_as_leader(
            &batch(&[&[i; 40]], clock.now_ms(), Compression::None),
            0,
            Origin::Client,
        )
        .unwrap();
    }
}

#[test]
fn delete_records_moves_the_log_start_and_drops_whole_segments_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, clock) = new_log(dir.path(), config(&[("segment.bytes", "200")]));
    fill(&mut log, &clock, 10, 1);
    let segments_before = log.segment_count();
    let start = log.delete_records_before(5, 10).unwrap();
    assert_eq!(start, 5);
    assert_eq!(log.log_start_offset().0, 5);
    assert!(log.segment_count() < segments_before);
    assert!(log.segment_base_offsets()[0] <= 5);
    assert!(
        log.read(4, 10).is_err(),
        "below the log start is out of range"
    );
    assert_eq!(read_all(&log, 5).first().map(|r| r.0), Some(5));
    assert_eq!(
        log.offset_for_timestamp(0).unwrap().map(|f| f.0),
        Some(5),
        "timestamp lookups start at the log start"
    );
}

#[test]
fn time_retention_deletes_old_segments_but_keeps_the_log_usable() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, clock) = new_log(
        dir.path(),
        config(&[("segment.bytes", "200"), ("retention.ms", "1000")]),
    );
    fill(&mut log, &clock, 10, 100);
    clock.advance(950);
    let outcome = log.apply_retention(10).unwrap();
    assert!(outcome.segments_deleted > 0);
    let remaining = log.segment_base_offsets();
    assert!(remaining[0] > 0 && remaining[0] <= 9, "{remaining:?}");
    clock.advance(10_000);
    log.apply_retention(10).unwrap();
    assert_eq!(
        log.log_start_offset().0,
        10,
        "everything expired: the log starts at its end"
    );
    assert_eq!(log.log_end_offset().0, 10, "offsets are never reused");
    let next = log
        .append_as_leader(
            &batch(&[b"new"], clock.now_ms(), Compression::None),
            0,
            Origin::Client,
        )
        .unwrap();
    assert_eq!(next.first_offset.0, 10);
}

#[test]
fn size_retention_keeps_the_newest_segments_within_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, clock) = new_log(
        dir.path(),
        config(&[("segment.bytes", "200"), ("retention.bytes", "400")]),
    );
    fill(&mut log, &clock, 20, 1);
    log.apply_retention(20).unwrap();
    assert!(
        log.size_in_bytes() <= 400 + 200,
        "size {}",
        log.size_in_bytes()
    );
    assert!(log.log_start_offset().0 > 0);
    assert_eq!(
        read_all(&log, log.log_start_offset().0).last().map(|r| r.0),
        Some(19)
    );
}

#[test]
fn retention_never_deletes_above_the_high_watermark_nor_on_compacted_topics() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, clock) = new_log(
        dir.path(),
        config(&[("segment.bytes", "200"), ("retention.ms", "10")]),
    );
    fill(&mut log, &clock, 10, 100);
    clock.advance(1_000);
    assert_eq!(
        log.apply_retention(0).unwrap().segments_deleted,
        0,
        "nothing below a high watermark of 0"
    );
    let dir = tempfile::tempdir().unwrap();
    let (mut log, clock) = new_log(
        dir.path(),
        config(&[
            ("segment.bytes", "200"),
            ("retention.ms", "10"),
            ("cleanup.policy", "compact"),
        ]),
    );
    fill(&mut log, &clock, 10, 100);
    clock.advance(1_000);
    assert_eq!(log.apply_retention(10).unwrap().segments_deleted, 0);
}

#[test]
fn the_log_start_offset_survives_a_restart_through_the_load_state() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&[("segment.bytes", "200")]);
    let (mut log, clock) = new_log(dir.path(), Arc::clone(&cfg));
    fill(&mut log, &clock, 10, 1);
    log.delete_records_before(7, 10).unwrap();
    log.close().unwrap();
    let state = LoadState {
        recovery_point: log.recovery_point().0,
        log_start_offset: log.log_start_offset().0,
        clean_shutdown: true,
    };
    drop(log);
    let log = open(dir.path(), cfg, clock, state);
    assert_eq!(log.log_start_offset().0, 7);
}

#[test]
fn a_topic_compression_type_recompresses_produced_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = new_log(dir.path(), config(&[("compression.type", "zstd")]));
    log.append_as_leader(
        &batch(&[b"a", b"b", b"c"], NOW, Compression::Gzip),
        0,
        Origin::Client,
    )
    .unwrap();
    log.append_as_leader(&batch(&[b"d"], NOW, Compression::None), 0, Origin::Client)
        .unwrap();
    let bytes = log.read_bytes(0, 4, 1 << 20).unwrap();
    let (header, records) = decode_records(&bytes, 1 << 20).unwrap();
    assert_eq!(header.compression().unwrap(), Compression::Zstd);
    assert_eq!(
        records
            .iter()
            .map(|r| r.value.clone().unwrap().to_vec())
            .collect::<Vec<_>>(),
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
    );
    assert_eq!(read_all(&log, 0).len(), 4);
}

// ---- idempotence and transactions ----

fn producer_batch(
    pid: i64,
    epoch: i16,
    seq: i32,
    values: &[&[u8]],
    transactional: bool,
) -> Vec<u8> {
    let mut builder = BatchBuilder::new(Compression::None)
        .producer(pid, epoch, seq)
        .transactional(transactional);
    for value in values {
        builder.append(&NewRecord {
            timestamp: NOW,
            key: None,
            value: Some(value),
            headers: &[],
        });
    }
    builder.build().unwrap()
}

#[test]
fn a_retried_batch_gets_its_original_offsets_and_is_not_written_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = new_log(dir.path(), config(&[]));
    let first = producer_batch(9, 0, 0, &[b"a", b"b"], false);
    let info = log.append_as_leader(&first, 0, Origin::Client).unwrap();
    assert_eq!((info.first_offset.0, info.duplicate), (0, false));
    log.append_as_leader(&producer_batch(9, 0, 2, &[b"c"], false), 0, Origin::Client)
        .unwrap();
    let retry = log.append_as_leader(&first, 0, Origin::Client).unwrap();
    assert_eq!(
        (retry.first_offset.0, retry.last_offset.0, retry.duplicate),
        (0, 1, true)
    );
    assert_eq!(log.log_end_offset().0, 3);
    let gap = log.append_as_leader(&producer_batch(9, 0, 7, &[b"x"], false), 0, Origin::Client);
    assert!(matches!(
        gap,
        Err(AppendError::Producer(
            crate::producer_state::ProducerError::OutOfOrderSequence { .. }
        ))
    ));
    let stale = log.append_as_leader(&producer_batch(9, -1, 3, &[b"x"], false), 0, Origin::Client);
    assert!(matches!(
        stale,
        Err(AppendError::Producer(
            crate::producer_state::ProducerError::InvalidProducerEpoch { .. }
        ))
    ));
}

#[test]
fn producer_state_survives_clean_and_unclean_restarts() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(&[("segment.bytes", "300")]);
        let (mut log, clock) = new_log(dir.path(), Arc::clone(&cfg));
        let mut last = Vec::new();
        for i in 0..8 {
            last = producer_batch(5, 0, i, &[&[i as u8; 30]], false);
            log.append_as_leader(&last, 0, Origin::Client).unwrap();
        }
        let state = if clean {
            log.close().unwrap();
            LoadState {
                recovery_point: log.recovery_point().0,
                log_start_offset: 0,
                clean_shutdown: true,
            }
        } else {
            LoadState {
                recovery_point: 0,
                log_start_offset: 0,
                clean_shutdown: false,
            }
        };
        drop(log);
        let mut log = open(dir.path(), Arc::clone(&cfg), clock, state);
        let retry = log.append_as_leader(&last, 0, Origin::Client).unwrap();
        assert!(retry.duplicate, "clean={clean}");
        assert_eq!(retry.first_offset.0, 7);
        let next = log
            .append_as_leader(&producer_batch(5, 0, 8, &[b"n"], false), 0, Origin::Client)
            .unwrap();
        assert_eq!(next.first_offset.0, 8, "clean={clean}");
    }
}

#[test]
fn open_transactions_hold_back_the_stable_offset_and_aborts_are_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&[]);
    let (mut log, clock) = new_log(dir.path(), Arc::clone(&cfg));
    log.append_as_leader(
        &batch(&[b"plain"], NOW, Compression::None),
        0,
        Origin::Client,
    )
    .unwrap();
    log.append_as_leader(
        &producer_batch(1, 0, 0, &[b"t1-a", b"t1-b"], true),
        0,
        Origin::Client,
    )
    .unwrap();
    log.append_as_leader(&producer_batch(2, 0, 0, &[b"t2"], true), 0, Origin::Client)
        .unwrap();
    assert_eq!(log.first_unstable_offset(), Some(1));
    let abort =
        crate::producer_state::marker_batch(1, 0, crate::producer_state::CONTROL_ABORT, 0, NOW);
    log.append_as_leader(&abort, 0, Origin::Coordinator)
        .unwrap();
    assert_eq!(log.first_unstable_offset(), Some(3));
    let commit =
        crate::producer_state::marker_batch(2, 0, crate::producer_state::CONTROL_COMMIT, 0, NOW);
    log.append_as_leader(&commit, 0, Origin::Coordinator)
        .unwrap();
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(log.aborted_transactions(0, 10), vec![(1, 1)]);
    assert_eq!(
        log.aborted_transactions(5, 10),
        vec![],
        "the abort marker is at 4, before the fetch"
    );
    // A client may not write markers.
    assert!(log.append_as_leader(&abort, 0, Origin::Client).is_err());
    // The index and state survive an unclean restart (rebuilt by replay).
    drop(log);
    let state = LoadState {
        recovery_point: 0,
        log_start_offset: 0,
        clean_shutdown: false,
    };
    // (The index of the active segment is written out on roll, flush and close:
    // after this crash there may be no file at all.)
    match std::fs::remove_file(dir.path().join(crate::segment::file_name(0, "txnindex"))) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        other => other.unwrap(),
    }
    let log = open(dir.path(), cfg, clock, state);
    assert_eq!(log.aborted_transactions(0, 10), vec![(1, 1)]);
    assert_eq!(log.first_unstable_offset(), None);
}
