//! The log cleaner against a model: for any keyed writes, the cleaned range holds
//! exactly the latest record per key, in offset order, offsets unchanged; what is
//! past the cleaned range is untouched; a crash at any step of the swap loses
//! nothing.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use protocol::records::{decode_records, BatchBuilder, Compression, NewRecord};
use protocol::time::{Clock, ManualClock};
use protocol::TopicPartition;

use crate::cleaner::{clean, CleanerConfig};
use crate::config::LogConfig;
use crate::env::LogEnv;
use crate::log::{LoadState, Log};
use crate::validate::Origin;

const NOW: i64 = 1_700_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Written {
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    timestamp: i64,
}

/// A record to write: key and value, either may be null.
type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

fn config(pairs: &[(&str, &str)]) -> Arc<LogConfig> {
    let overrides: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Arc::new(LogConfig::resolve(&overrides, &BTreeMap::new()).unwrap())
}

fn open(dir: &Path, cfg: Arc<LogConfig>, clock: Arc<ManualClock>) -> Log {
    Log::open(
        dir,
        TopicPartition::new("c", 0),
        cfg,
        &LogEnv::real(clock as Arc<dyn Clock>),
        LoadState::default(),
    )
    .unwrap()
}

/// Appends one batch of `(key, value)` records, all with `timestamp`.
fn append(log: &mut Log, records: &[KeyValue], timestamp: i64, codec: Compression) -> Vec<Written> {
    let mut builder = BatchBuilder::new(codec);
    for (key, value) in records {
        builder.append(&NewRecord {
            timestamp,
            key: key.as_deref(),
            value: value.as_deref(),
            headers: &[("h", Some(b"x"))],
        });
    }
    let info = log
        .append_as_leader(&builder.build().unwrap(), 0, Origin::Coordinator)
        .unwrap();
    records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Written {
            offset: info.first_offset.0 + i as i64,
            key: key.clone(),
            value: value.clone(),
            timestamp,
        })
        .collect()
}

fn read_everything(log: &Log) -> Vec<Written> {
    let mut out = Vec::new();
    let leo = log.log_end_offset().0;
    let mut offset = log.log_start_offset().0;
    while offset < leo {
        let bytes = log.read_bytes(offset, leo, 1 << 20).unwrap();
        if bytes.is_empty() {
            break;
        }
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let (header, records) = decode_records(rest, 1 << 24).unwrap();
            // Rebuilt batches carry a correct length, count and CRC.
            protocol::records::batch::verify_crc(&rest[..header.size()]).unwrap();
            assert_eq!(records.len(), header.records_count as usize);
            rest = &rest[header.size()..];
            for r in records {
                if r.offset >= offset {
                    out.push(Written {
                        offset: r.offset,
                        key: r.key.map(|k| k.to_vec()),
                        value: r.value.map(|v| v.to_vec()),
                        timestamp: r.timestamp,
                    });
                }
            }
            offset = header.next_offset();
        }
    }
    out
}

/// What the cleaned log must hold: below `cleaned_up_to`, the latest record per
/// key (keyless records gone, tombstones too once their horizon has passed); from
/// there on, everything.
fn expected(written: &[Written], cleaned_up_to: i64, tombstones_gone: bool) -> Vec<Written> {
    let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
    for w in written.iter().filter(|w| w.offset < cleaned_up_to) {
        if let Some(key) = &w.key {
            latest.insert(key.clone(), w.offset);
        }
    }
    written
        .iter()
        .filter(|w| {
            if w.offset >= cleaned_up_to {
                return true;
            }
            match &w.key {
                None => false,
                Some(key) => latest[key] == w.offset && !(w.value.is_none() && tombstones_gone),
            }
        })
        .cloned()
        .collect()
}

fn run_clean(log: Log) -> (Log, Option<crate::cleaner::CleanOutcome>) {
    let hw = log.log_end_offset().0;
    let shared = Mutex::new(log);
    let outcome = clean(&shared, 0, hw, &CleanerConfig::default(), &mut |_| {
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    (shared.into_inner().unwrap(), outcome)
}

#[test]
fn compaction_keeps_the_latest_value_per_key_with_offsets_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW));
    // Written while the topic was not compacted (keyless records allowed), then
    // switched to compaction.
    let mut log = open(
        dir.path(),
        config(&[("segment.bytes", "300")]),
        Arc::clone(&clock),
    );
    let mut written = Vec::new();
    written.extend(append(
        &mut log,
        &[(None, Some(b"keyless".to_vec()))],
        NOW,
        Compression::None,
    ));
    for round in 0..10u8 {
        for key in 0..3u8 {
            written.extend(append(
                &mut log,
                &[(Some(vec![b'k', key]), Some(vec![round, key]))],
                NOW,
                Compression::None,
            ));
        }
    }
    log.set_config(config(&[
        ("segment.bytes", "300"),
        ("cleanup.policy", "compact"),
    ]));
    log.roll().unwrap();
    let segments_before = log.segment_count();
    let (log, outcome) = run_clean(log);
    let outcome = outcome.expect("there was something to clean");
    assert_eq!(outcome.cleaned_up_to, log.log_end_offset().0);
    // Groups are formed from the segments' sizes before cleaning, as Kafka does:
    // the next cleaning merges the now small segments.
    let (log, _) = run_clean(log);
    assert!(
        log.segment_count() < segments_before,
        "{} -> {}",
        segments_before,
        log.segment_count()
    );
    let after = read_everything(&log);
    assert_eq!(after, expected(&written, outcome.cleaned_up_to, false));
    assert_eq!(after.len(), 3, "one record per key");
    assert_eq!(
        after
            .iter()
            .map(|w| w.value.clone().unwrap()[0])
            .collect::<Vec<_>>(),
        vec![9, 9, 9]
    );
}

#[test]
fn tombstones_stay_until_delete_retention_passes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW));
    let mut log = open(
        dir.path(),
        config(&[
            ("cleanup.policy", "compact"),
            ("delete.retention.ms", "1000"),
        ]),
        Arc::clone(&clock),
    );
    append(
        &mut log,
        &[
            (Some(b"a".to_vec()), Some(b"1".to_vec())),
            (Some(b"b".to_vec()), Some(b"2".to_vec())),
        ],
        NOW,
        Compression::Lz4,
    );
    append(
        &mut log,
        &[(Some(b"a".to_vec()), None)],
        NOW,
        Compression::Lz4,
    );
    log.roll().unwrap();
    let (log, _) = run_clean(log);
    let after = read_everything(&log);
    assert_eq!(
        after
            .iter()
            .map(|w| (w.key.clone().unwrap(), w.value.is_some()))
            .collect::<Vec<_>>(),
        vec![(b"b".to_vec(), true), (b"a".to_vec(), false)]
    );
    // The first cleaning stamped the tombstone's batch with its delete horizon:
    // kept until then, whatever its own timestamp.
    clock.advance(999);
    let (log, _) = run_clean(log);
    assert_eq!(
        read_everything(&log).len(),
        2,
        "kept until the horizon (NOW + 1000)"
    );
    clock.advance(1);
    let (log, _) = run_clean(log);
    let after = read_everything(&log);
    assert_eq!(
        after
            .iter()
            .map(|w| w.key.clone().unwrap())
            .collect::<Vec<_>>(),
        vec![b"b".to_vec()],
        "the tombstone is gone"
    );
}

/// KIP-534, as Kafka has it: the horizon is fixed by the cleaning that first keeps
/// a tombstone; a shorter delete.retention.ms set later does not bring it closer,
/// and an old record timestamp does not either.
#[test]
fn a_tombstones_horizon_is_set_once_from_the_cleaning_time() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW));
    let mut log = open(
        dir.path(),
        config(&[
            ("cleanup.policy", "compact"),
            ("delete.retention.ms", "10000"),
        ]),
        Arc::clone(&clock),
    );
    // A tombstone whose own timestamp is long past any delete.retention.ms.
    append(
        &mut log,
        &[
            (Some(b"a".to_vec()), Some(b"1".to_vec())),
            (Some(b"a".to_vec()), None),
            (Some(b"b".to_vec()), Some(b"2".to_vec())),
        ],
        NOW - 86_400_000,
        Compression::Gzip,
    );
    log.roll().unwrap();
    let before: Vec<i64> = read_everything(&log).iter().map(|w| w.timestamp).collect();
    let (log, _) = run_clean(log);
    let after = read_everything(&log);
    assert_eq!(
        after
            .iter()
            .map(|w| (w.key.clone().unwrap(), w.value.is_some()))
            .collect::<Vec<_>>(),
        vec![(b"a".to_vec(), false), (b"b".to_vec(), true)]
    );
    assert_eq!(
        after.iter().map(|w| w.timestamp).collect::<Vec<_>>(),
        before[1..].to_vec(),
        "record timestamps unchanged by the horizon"
    );
    assert_eq!(horizons(&log), vec![Some(NOW + 10_000)]);
    let mut log = log;
    log.set_config(config(&[
        ("cleanup.policy", "compact"),
        ("delete.retention.ms", "0"),
    ]));
    clock.advance(5_000);
    let (log, _) = run_clean(log);
    assert_eq!(
        read_everything(&log).len(),
        2,
        "the horizon stamped earlier still holds"
    );
    assert_eq!(
        horizons(&log),
        vec![Some(NOW + 10_000)],
        "a stamped horizon is never moved"
    );
    clock.advance(5_000);
    let (log, _) = run_clean(log);
    assert_eq!(
        read_everything(&log)
            .iter()
            .map(|w| w.key.clone().unwrap())
            .collect::<Vec<_>>(),
        vec![b"b".to_vec()]
    );
    // The batch rebuilt without the tombstone keeps its horizon, as Kafka's does.
    assert_eq!(horizons(&log), vec![Some(NOW + 10_000)]);
}

#[test]
fn the_active_segment_and_records_above_the_high_watermark_are_never_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW));
    let mut log = open(
        dir.path(),
        config(&[("cleanup.policy", "compact")]),
        Arc::clone(&clock),
    );
    for i in 0..5u8 {
        append(
            &mut log,
            &[(Some(b"k".to_vec()), Some(vec![i]))],
            NOW,
            Compression::None,
        );
    }
    let (log, outcome) = run_clean(log);
    assert!(outcome.is_none(), "all records are in the active segment");
    assert_eq!(read_everything(&log).len(), 5);
}

/// Copies every file of `from` into a fresh directory `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn a_crash_at_any_step_of_the_swap_loses_nothing() {
    let root = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW));
    let cfg = config(&[("segment.bytes", "400"), ("cleanup.policy", "compact")]);
    let original = root.path().join("original");
    let mut log = open(&original, Arc::clone(&cfg), Arc::clone(&clock));
    let mut written = Vec::new();
    for round in 0..12u8 {
        written.extend(append(
            &mut log,
            &[(Some(vec![round % 4]), Some(vec![round]))],
            NOW,
            Compression::Gzip,
        ));
    }
    log.roll().unwrap();
    log.close().unwrap();
    drop(log);
    let cleaned_dir = root.path().join("cleaned");
    copy_dir(&original, &cleaned_dir);
    let (cleaned, outcome) = run_clean(open(&cleaned_dir, Arc::clone(&cfg), Arc::clone(&clock)));
    let outcome = outcome.unwrap();
    let want = read_everything(&cleaned);
    assert_eq!(want, expected(&written, outcome.cleaned_up_to, false));
    let cleaned_bases: Vec<i64> = cleaned.segment_base_offsets();
    drop(cleaned);

    // Crash after writing the `.cleaned` files: they are dropped, nothing changes.
    let crash = root.path().join("crash-cleaned");
    copy_dir(&original, &crash);
    for base in &cleaned_bases {
        for suffix in ["log", "index", "timeindex"] {
            let name = crate::segment::file_name(*base, suffix);
            std::fs::copy(
                cleaned_dir.join(&name),
                crash.join(format!("{name}.cleaned")),
            )
            .unwrap();
        }
    }
    let log = open(&crash, Arc::clone(&cfg), Arc::clone(&clock));
    assert_eq!(read_everything(&log), written, "the uncleaned log, whole");

    // Crash after renaming to `.swap`, with none, some or all old segments deleted:
    // the swap completes.
    let old_bases: Vec<i64> =
        open(&original, Arc::clone(&cfg), Arc::clone(&clock)).segment_base_offsets();
    for deleted in [0, 1, old_bases.len() - 1] {
        let crash = root.path().join(format!("crash-swap-{deleted}"));
        copy_dir(&original, &crash);
        for base in old_bases.iter().take(deleted) {
            if !cleaned_bases.contains(base) || *base != old_bases[0] {
                crate::segment::delete_segment_files(&crate::fs::RealFs, &crash, *base).unwrap();
            }
        }
        for base in cleaned_bases.iter().filter(|b| **b < outcome.cleaned_up_to) {
            for suffix in ["log", "index", "timeindex"] {
                let name = crate::segment::file_name(*base, suffix);
                std::fs::copy(cleaned_dir.join(&name), crash.join(format!("{name}.swap"))).unwrap();
            }
        }
        let log = open(&crash, Arc::clone(&cfg), Arc::clone(&clock));
        assert_eq!(
            read_everything(&log),
            want,
            "after a crash with {deleted} old segments deleted"
        );
    }
}

/// A batch of keyed records from a producer (transactional or not).
fn producer_batch(pid: i64, seq: i32, records: &[(&[u8], &[u8])], transactional: bool) -> Vec<u8> {
    let mut builder = BatchBuilder::new(Compression::None)
        .producer(pid, 0, seq)
        .transactional(transactional);
    for (key, value) in records {
        builder.append(&NewRecord {
            timestamp: NOW,
            key: Some(key),
            value: Some(value),
            headers: &[],
        });
    }
    builder.build().unwrap()
}

/// (key, value) of every data record, and (producer id, control type) of every marker.
type Contents = (Vec<(Vec<u8>, Vec<u8>)>, Vec<(i64, i16)>);

/// Each batch's delete horizon, in offset order.
fn horizons(log: &Log) -> Vec<Option<i64>> {
    let bytes = log
        .read_bytes(log.log_start_offset().0, log.log_end_offset().0, 1 << 24)
        .unwrap();
    let mut rest = &bytes[..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let header = protocol::records::batch::BatchHeader::parse(rest).unwrap();
        out.push(header.has_delete_horizon().then_some(header.base_timestamp));
        rest = &rest[header.size()..];
    }
    out
}

fn contents(log: &Log) -> Contents {
    let mut data = Vec::new();
    let mut markers = Vec::new();
    let leo = log.log_end_offset().0;
    let bytes = log
        .read_bytes(log.log_start_offset().0, leo, 1 << 24)
        .unwrap();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let (header, records) = decode_records(rest, 1 << 24).unwrap();
        rest = &rest[header.size()..];
        for r in records {
            let key = r.key.map(|k| k.to_vec()).unwrap_or_default();
            if header.is_control() {
                markers.push((header.producer_id, i16::from_be_bytes([key[2], key[3]])));
            } else {
                data.push((key, r.value.map(|v| v.to_vec()).unwrap_or_default()));
            }
        }
    }
    (data, markers)
}

#[test]
fn aborted_transactions_are_dropped_and_never_shadow_committed_values() {
    use crate::producer_state::{marker_batch, CONTROL_ABORT, CONTROL_COMMIT};
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW));
    let mut log = open(
        dir.path(),
        config(&[
            ("cleanup.policy", "compact"),
            ("delete.retention.ms", "1000"),
        ]),
        Arc::clone(&clock),
    );
    log.append_as_leader(
        &producer_batch(-1, -1, &[(b"a", b"1")], false),
        0,
        Origin::Client,
    )
    .unwrap();
    // Producer 7 writes a new value of `a` in a transaction it aborts.
    log.append_as_leader(
        &producer_batch(7, 0, &[(b"a", b"aborted"), (b"x", b"aborted")], true),
        0,
        Origin::Client,
    )
    .unwrap();
    // Producer 8 commits `b` meanwhile.
    log.append_as_leader(
        &producer_batch(8, 0, &[(b"b", b"committed")], true),
        0,
        Origin::Client,
    )
    .unwrap();
    log.append_as_leader(
        &marker_batch(7, 0, CONTROL_ABORT, 0, NOW),
        0,
        Origin::Coordinator,
    )
    .unwrap();
    log.append_as_leader(
        &marker_batch(8, 0, CONTROL_COMMIT, 0, NOW),
        0,
        Origin::Coordinator,
    )
    .unwrap();
    log.append_as_leader(
        &producer_batch(-1, -1, &[(b"b", b"2")], false),
        0,
        Origin::Client,
    )
    .unwrap();
    log.roll().unwrap();
    assert_eq!(log.aborted_transactions(0, 100), vec![(7, 1)]);

    let (log, outcome) = run_clean(log);
    assert!(outcome.is_some());
    let (data, markers) = contents(&log);
    // `a` keeps its committed value; the aborted records are gone; `b`'s latest stays.
    assert_eq!(
        data,
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec())
        ]
    );
    // This pass saw both transactions' batches: both markers stay, the abort indexed.
    assert_eq!(markers, vec![(7, CONTROL_ABORT), (8, CONTROL_COMMIT)]);
    assert_eq!(log.aborted_transactions(0, 100), vec![(7, 1)]);
    assert_eq!(log.log_end_offset().0, 7, "offsets never change");

    // Once nothing of either transaction is left, the next cleaning stamps the
    // markers with a delete horizon (now + delete.retention.ms) and keeps them...
    clock.advance(2_000);
    let (log, _) = run_clean(log);
    assert_eq!(
        contents(&log).1,
        vec![(7, CONTROL_ABORT), (8, CONTROL_COMMIT)]
    );
    assert_eq!(
        horizons(&log),
        vec![None, Some(NOW + 3_000), Some(NOW + 3_000), None],
        "both markers' batches carry the horizon, no data batch does"
    );
    clock.advance(999);
    let (log, _) = run_clean(log);
    assert_eq!(contents(&log).1.len(), 2, "kept until the horizon");
    // ...and the first cleaning at or after the horizon drops them (and the index entry).
    clock.advance(1);
    let (log, _) = run_clean(log);
    let (data, markers) = contents(&log);
    assert_eq!(
        data,
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec())
        ]
    );
    assert_eq!(markers, vec![]);
    assert_eq!(log.aborted_transactions(0, 100), vec![]);
}

#[test]
fn a_committed_transactions_marker_stays_while_its_records_do() {
    use crate::producer_state::{marker_batch, CONTROL_COMMIT};
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW));
    let mut log = open(
        dir.path(),
        config(&[("cleanup.policy", "compact"), ("delete.retention.ms", "0")]),
        Arc::clone(&clock),
    );
    log.append_as_leader(
        &producer_batch(8, 0, &[(b"t", b"committed")], true),
        0,
        Origin::Client,
    )
    .unwrap();
    log.append_as_leader(
        &marker_batch(8, 0, CONTROL_COMMIT, 0, NOW),
        0,
        Origin::Coordinator,
    )
    .unwrap();
    log.roll().unwrap();
    clock.advance(10);
    let (log, _) = run_clean(log);
    assert_eq!(
        contents(&log),
        (
            vec![(b"t".to_vec(), b"committed".to_vec())],
            vec![(8, CONTROL_COMMIT)]
        )
    );
}

#[test]
fn a_cleaning_told_to_stop_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW));
    let mut log = open(
        dir.path(),
        config(&[("segment.bytes", "300"), ("cleanup.policy", "compact")]),
        Arc::clone(&clock),
    );
    let mut written = Vec::new();
    for round in 0..30u8 {
        written.extend(append(
            &mut log,
            &[(Some(vec![round % 3]), Some(vec![round]))],
            NOW,
            Compression::None,
        ));
    }
    log.roll().unwrap();
    let bases = log.segment_base_offsets();
    // Stop at various points: while mapping, and while writing cleaned segments.
    let shared = Mutex::new(log);
    for budget in [1u64, 500, 2_000, 4_000] {
        let mut seen = 0u64;
        let outcome = clean(&shared, 0, 1_000, &CleanerConfig::default(), &mut |bytes| {
            seen += bytes;
            if seen > budget {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        })
        .unwrap();
        assert!(outcome.is_none(), "stopped after {budget} bytes");
        let leftovers: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let log = shared.lock().unwrap();
        assert_eq!(log.segment_base_offsets(), bases);
        assert_eq!(read_everything(&log), written);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn for_any_keyed_writes_the_cleaned_log_holds_exactly_the_latest_per_key(
        writes in proptest::collection::vec((0u8..6, any::<bool>(), 1u8..4, 0u8..5), 1..60),
        extra_after_clean in 0u8..4,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(NOW));
        let mut log = open(dir.path(), config(&[("segment.bytes", "500"), ("cleanup.policy", "compact"), ("delete.retention.ms", "100")]), Arc::clone(&clock));
        let mut written = Vec::new();
        let codecs = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
        for (i, (key, tombstone, count, codec)) in writes.iter().enumerate() {
            let records: Vec<KeyValue> = (0..*count)
                .map(|j| {
                    let key = (key + j) % 6;
                    let value = if *tombstone && j == 0 { None } else { Some(vec![i as u8, j]) };
                    (Some(vec![b'k', key]), value)
                })
                .collect();
            clock.advance(10);
            written.extend(append(&mut log, &records, clock.now_ms(), codecs[*codec as usize]));
        }
        log.roll().unwrap();
        for i in 0..extra_after_clean {
            written.extend(append(&mut log, &[(Some(b"late".to_vec()), Some(vec![i]))], clock.now_ms(), Compression::None));
        }
        clock.advance(50);
        // The first cleaning keeps every latest tombstone (it stamps their horizon)...
        let (log, outcome) = run_clean(log);
        let cleaned_up_to = outcome.map(|o| o.cleaned_up_to).unwrap_or(0);
        prop_assert_eq!(read_everything(&log), expected(&written, cleaned_up_to, false));
        // ...one before delete.retention.ms (100) has passed keeps them still...
        clock.advance(99);
        let (log, _) = run_clean(log);
        prop_assert_eq!(read_everything(&log), expected(&written, cleaned_up_to, false));
        // ...and the next one drops them.
        clock.advance(1);
        let (log, _) = run_clean(log);
        prop_assert_eq!(read_everything(&log), expected(&written, cleaned_up_to, true));
        // And it survives a restart.
        let mut log = log;
        log.close().unwrap();
        let state = LoadState { recovery_point: log.recovery_point().0, log_start_offset: log.log_start_offset().0, clean_shutdown: true };
        let dir_path = log.dir().to_path_buf();
        drop(log);
        let reopened = Log::open(&dir_path, TopicPartition::new("c", 0), config(&[("segment.bytes", "500"), ("cleanup.policy", "compact")]), &LogEnv::real(clock as Arc<dyn Clock>), state).unwrap();
        prop_assert_eq!(read_everything(&reopened), expected(&written, cleaned_up_to, true));
    }
}
