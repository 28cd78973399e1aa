//! Checks of ListOffsets by timestamp against a model, shared by the cargo-fuzz
//! target `fuzz/fuzz_targets/list_offsets.rs` and the stable, seeded
//! `crates/storage/tests/hostile_fuzz.rs`.
//!
//! The input is a sequence of appends (batches of 1-16 records, timestamps moving
//! forward or back, any codec), rolls, DeleteRecords and queries, on a log with
//! small segments and a dense time index. Every answer must be Kafka's
//! (`UnifiedLog.fetchOffsetByTimestamp`, `LogSegment.findOffsetByTimestamp`): in
//! the first segment whose largest timestamp is at least the target, the first
//! record at or after the log start whose timestamp is at least the target, or
//! none. (So, as in Kafka, a segment whose late records all lie below the log
//! start after DeleteRecords answers "none" even when a later segment has one.)

use std::path::Path;
use std::sync::Arc;

use protocol::records::{BatchBuilder, Compression, NewRecord};
use protocol::time::{Clock, ManualClock};
use protocol::TopicPartition;
use storage::{LoadState, Log, LogConfig, LogEnv, Origin};

const NOW_MS: i64 = 1_700_000_000_000;

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn config() -> Arc<LogConfig> {
    let overrides = [
        ("segment.bytes", "600"),
        ("index.interval.bytes", "1"),
        ("message.timestamp.before.max.ms", "9223372036854775807"),
        ("message.timestamp.after.max.ms", "9223372036854775807"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Arc::new(LogConfig::resolve(&overrides, &Default::default()).expect("valid config"))
}

/// What the log holds: (offset, timestamp) of every record, and the log start.
#[derive(Default)]
struct Model {
    records: Vec<(i64, i64)>,
    log_start: i64,
}

impl Model {
    /// Kafka's answer, given where the log's segments begin.
    fn answer(&self, target: i64, segment_bases: &[i64]) -> Option<(i64, i64)> {
        for (i, base) in segment_bases.iter().enumerate() {
            let end = segment_bases.get(i + 1).copied().unwrap_or(i64::MAX);
            let segment: Vec<(i64, i64)> = self
                .records
                .iter()
                .copied()
                .filter(|(o, _)| *o >= *base && *o < end)
                .collect();
            if segment.iter().any(|(_, t)| *t >= target) {
                return segment
                    .into_iter()
                    .find(|(o, t)| *o >= self.log_start && *t >= target);
            }
        }
        None
    }
}

fn query(log: &Log, model: &Model, target: i64) {
    let found = log
        .offset_for_timestamp(target)
        .unwrap_or_else(|e| panic!("ListOffsets({target}) failed: {e}"));
    let bases = log.segment_base_offsets();
    assert_eq!(
        found.map(|(offset, timestamp, _)| (offset, timestamp)),
        model.answer(target, &bases),
        "target {target}; log start {}, segments {bases:?}, records {:?}",
        model.log_start,
        model.records
    );
}

/// Runs the input's operations on a fresh log in `dir`; DeleteRecords among them
/// only when `delete_records` (see `hostile_fuzz.rs` for why it may be off).
pub fn check_list_offsets(data: &[u8], dir: &Path, delete_records: bool) {
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let mut log = Log::open(
        dir,
        TopicPartition::new("t", 0),
        config(),
        &LogEnv::real(Arc::clone(&clock) as Arc<dyn Clock>),
        LoadState::default(),
    )
    .expect("opening the log");
    let mut model = Model::default();
    let mut timestamp = NOW_MS;
    let mut bytes = data.iter().copied();
    while let Some(op) = bytes.next() {
        let arg = bytes.next().unwrap_or(0);
        match op % 8 {
            0..=3 => {
                let codec = CODECS[usize::from(op / 8) % CODECS.len()];
                let count = 1 + usize::from(arg % 16);
                let mut builder = BatchBuilder::new(codec);
                let mut stamps = Vec::with_capacity(count);
                for i in 0..count {
                    let step = bytes.next().unwrap_or(1);
                    // Mostly forward; a step of 200 and up goes back.
                    timestamp += if step < 200 {
                        i64::from(step)
                    } else {
                        -i64::from(step - 199) * 3
                    };
                    stamps.push(timestamp);
                    let value = [i as u8; 24];
                    builder.append(&NewRecord {
                        timestamp,
                        key: Some(b"k"),
                        value: Some(&value),
                        headers: &[],
                    });
                }
                let info = log
                    .append_as_leader(&builder.build().expect("batch"), 0, Origin::Client)
                    .expect("a valid batch appends");
                for (i, t) in stamps.into_iter().enumerate() {
                    model.records.push((info.first_offset.0 + i as i64, t));
                }
            }
            5 if delete_records => {
                let leo = log.log_end_offset().0;
                if leo > 0 {
                    let to = i64::from(arg) % (leo + 1);
                    if to > model.log_start {
                        log.delete_records_before(to, leo).expect("DeleteRecords");
                        model.log_start = to;
                    }
                }
            }
            4 | 5 => {
                log.roll().expect("roll");
            }
            _ => {
                let target = match arg % 4 {
                    0 => NOW_MS + i64::from(arg),
                    1 => model
                        .records
                        .get(usize::from(arg) % model.records.len().max(1))
                        .map_or(0, |r| r.1),
                    2 => [i64::MIN, -3, 0, i64::MAX][usize::from(arg / 4) % 4],
                    _ => timestamp + 1,
                };
                query(&log, &model, target);
            }
        }
    }
    assert_eq!(log.log_start_offset().0, model.log_start);
    // Every record's own timestamp, and just past each, at the end.
    let targets: Vec<i64> = model
        .records
        .iter()
        .flat_map(|(_, t)| [*t, *t + 1])
        .collect();
    for target in targets {
        query(&log, &model, target);
    }
}
