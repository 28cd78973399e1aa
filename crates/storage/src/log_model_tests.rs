//! The log against a model: random operations (appends, rolls, reads, truncations,
//! flushes, DeleteRecords, clean restarts, crashes) on the log and on a `Vec` of
//! what was written, compared after every step.
//!
//! Three disks: the real filesystem and [`MemFs`] with a process crash (`kill -9`:
//! the page cache survives, plus part of a write that was never acknowledged), and
//! [`MemFs`] with a power loss (every file keeps its synced bytes and a random
//! prefix of the rest: a torn write). After a power loss, whatever was flushed
//! survives; unflushed records may be gone, and the model forgets them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;
use protocol::records::{decode_records, Compression};
use protocol::time::{Clock, ManualClock};
use protocol::TopicPartition;

use crate::env::LogEnv;
use crate::fs::{Fs, MemFs, OpenMode, RealFs};
use crate::log::{LoadState, Log};
use crate::log_tests::{batch, config, NOW};
use crate::segment::file_name;
use crate::validate::Origin;

#[derive(Debug, Clone)]
enum Op {
    Append { records: u8, size: u16, codec: u8 },
    Roll,
    Read { at: u16 },
    TruncateTo { at: u16 },
    Flush,
    CleanRestart,
    Crash { torn_bytes: u16 },
    DeleteRecords { at: u16 },
    PowerLoss { seed: u64 },
}

fn op(power_loss: bool) -> impl Strategy<Value = Op> {
    let power = if power_loss { 2 } else { 0 };
    prop_oneof![
        8 => (1u8..6, 0u16..120, 0u8..5).prop_map(|(records, size, codec)| Op::Append { records, size, codec }),
        1 => Just(Op::Roll),
        3 => any::<u16>().prop_map(|at| Op::Read { at }),
        1 => any::<u16>().prop_map(|at| Op::TruncateTo { at }),
        1 => Just(Op::Flush),
        1 => Just(Op::CleanRestart),
        1 => (0u16..200).prop_map(|torn_bytes| Op::Crash { torn_bytes }),
        1 => any::<u16>().prop_map(|at| Op::DeleteRecords { at }),
        power => any::<u64>().prop_map(|seed| Op::PowerLoss { seed }),
    ]
}

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// Where the log lives.
struct Disk {
    fs: Arc<dyn Fs>,
    mem: Option<MemFs>,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Disk {
    fn real() -> Disk {
        let tmp = tempfile::tempdir().unwrap();
        Disk {
            fs: RealFs::shared(),
            mem: None,
            dir: tmp.path().join("t-0"),
            _tmp: Some(tmp),
        }
    }

    fn mem() -> Disk {
        let mem = MemFs::new();
        Disk {
            fs: mem.shared(),
            mem: Some(mem),
            dir: PathBuf::from("/data/t-0"),
            _tmp: None,
        }
    }

    fn open(&self, clock: &Arc<ManualClock>, state: LoadState) -> Log {
        let cfg = config(&[
            ("segment.bytes", "1500"),
            ("index.interval.bytes", "100"),
            ("segment.index.bytes", "40"),
        ]);
        let env = LogEnv::new(Arc::clone(&self.fs), Arc::clone(clock) as Arc<dyn Clock>);
        Log::open(&self.dir, TopicPartition::new("t", 0), cfg, &env, state).unwrap()
    }

    /// Part of a write the crash cut short: in the page cache, never acknowledged.
    fn append_garbage(&self, path: &Path, bytes: &[u8]) {
        let file = self.fs.open(path, OpenMode::Existing).unwrap();
        let end = file.size().unwrap();
        file.write_all_at(bytes, end).unwrap();
    }
}

/// Every record from `offset` on, read in fetch-sized steps until a read finds
/// nothing more: after a power loss, the unflushed end of the log may have gaps
/// (a rolled segment whose records were lost before a later one's), which a
/// reader passes, and an end with no records below the LEO (a reader waits there
/// for new records as at the LEO).
fn read_all(log: &Log, mut offset: i64) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let leo = log.log_end_offset().0;
    while offset < leo {
        let bytes = log.read_bytes(offset, leo, 300).unwrap();
        if bytes.is_empty() {
            break;
        }
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

/// The records written, by offset; `None` where DeleteRecords or a power loss
/// took one.
struct Model {
    records: Vec<Option<Vec<u8>>>,
    start: i64,
}

impl Model {
    fn len(&self) -> i64 {
        self.records.len() as i64
    }

    fn from(&self, at: i64) -> Vec<(i64, Vec<u8>)> {
        self.records
            .iter()
            .enumerate()
            .skip(at as usize)
            .filter_map(|(i, v)| v.clone().map(|v| (i as i64, v)))
            .collect()
    }
}

fn load_state(log: &Log, clean_shutdown: bool) -> LoadState {
    LoadState {
        recovery_point: log.recovery_point().0,
        log_start_offset: log.log_start_offset().0,
        clean_shutdown,
    }
}

/// A power loss: the log keeps at least what it had flushed, and then only
/// records that were written there.
fn power_loss(
    disk: &Disk,
    log: Log,
    model: &mut Model,
    seed: u64,
    clock: &Arc<ManualClock>,
) -> Log {
    let state = load_state(&log, false);
    let flushed = log.recovery_point().0;
    drop(log);
    disk.mem
        .as_ref()
        .expect("a power loss needs MemFs")
        .crash_torn(seed);
    let log = disk.open(clock, state);
    let leo = log.log_end_offset().0;
    assert!(
        leo >= flushed,
        "flushed offsets below {flushed} lost: LEO {leo}"
    );
    assert!(leo <= model.len(), "LEO {leo} past what was written");
    model.records.truncate(leo as usize);
    let survived: std::collections::BTreeMap<i64, Vec<u8>> =
        read_all(&log, log.log_start_offset().0)
            .into_iter()
            .collect();
    for (offset, record) in model.records.iter_mut().enumerate() {
        let offset = offset as i64;
        if offset < model.start {
            continue;
        }
        match survived.get(&offset) {
            Some(value) => assert_eq!(Some(value), record.as_ref(), "offset {offset}"),
            None if record.is_some() => {
                assert!(offset >= flushed, "flushed offset {offset} lost");
                *record = None;
            }
            None => {}
        }
    }
    model.start = model.start.min(leo);
    log
}

fn run_model(ops: &[Op], disk: Disk) {
    let clock = Arc::new(ManualClock::new(NOW));
    let mut log = disk.open(&clock, LoadState::default());
    let mut model = Model {
        records: Vec::new(),
        start: 0,
    };
    let mut counter = 0u32;
    for op in ops {
        match *op {
            Op::Append {
                records,
                size,
                codec,
            } => {
                let values: Vec<Vec<u8>> = (0..records)
                    .map(|_| {
                        counter += 1;
                        let mut v = counter.to_be_bytes().to_vec();
                        v.resize(4 + size as usize, (counter % 251) as u8);
                        v
                    })
                    .collect();
                let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
                clock.advance(1);
                let info = log
                    .append_as_leader(
                        &batch(&refs, clock.now_ms(), CODECS[codec as usize]),
                        0,
                        Origin::Client,
                    )
                    .unwrap();
                assert_eq!(info.first_offset.0, model.len());
                model.records.extend(values.into_iter().map(Some));
            }
            Op::Roll => {
                log.roll().unwrap();
            }
            Op::Read { at } => {
                if model.len() <= model.start {
                    continue;
                }
                let at = model.start + i64::from(at) % (model.len() - model.start);
                assert_eq!(read_all(&log, at), model.from(at), "read at {at}");
            }
            Op::TruncateTo { at } => {
                let at = model.start + i64::from(at) % (model.len() - model.start + 1);
                log.truncate_to(at).unwrap();
                // Truncation removes whole batches: the LEO may land below `at`.
                model.records.truncate(log.log_end_offset().0 as usize);
                model.start = model.start.min(model.len());
                assert!(log.log_end_offset().0 <= at);
            }
            Op::Flush => {
                let leo = log.log_end_offset().0;
                log.flush(leo).unwrap();
                assert_eq!(log.recovery_point().0, leo);
            }
            Op::CleanRestart => {
                log.close().unwrap();
                let state = load_state(&log, true);
                drop(log);
                log = disk.open(&clock, state);
            }
            Op::DeleteRecords { at } => {
                let leo = model.len();
                let at = model.start + i64::from(at) % (leo - model.start + 1);
                let new_start = log.delete_records_before(at, leo).unwrap();
                assert_eq!(new_start, at.max(model.start));
                model.start = new_start;
                assert_eq!(log.log_start_offset().0, model.start);
            }
            Op::Crash { torn_bytes } => {
                let state = load_state(&log, false);
                let active = *log.segment_base_offsets().last().unwrap();
                drop(log);
                if torn_bytes > 0 {
                    let torn = batch(
                        &[&vec![9u8; torn_bytes as usize]],
                        clock.now_ms(),
                        Compression::None,
                    );
                    let cut = (torn_bytes as usize).min(torn.len() - 1);
                    disk.append_garbage(&disk.dir.join(file_name(active, "log")), &torn[..cut]);
                }
                log = disk.open(&clock, state);
            }
            Op::PowerLoss { seed } => {
                log = power_loss(&disk, log, &mut model, seed, &clock);
            }
        }
        assert_eq!(log.log_end_offset().0, model.len(), "after {op:?}");
        assert_eq!(
            log.log_start_offset().0,
            model.start.min(model.len()),
            "after {op:?}"
        );
    }
    assert_eq!(read_all(&log, model.start), model.from(model.start));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_log_behaves_like_a_vec_through_rolls_truncations_and_crashes(ops in proptest::collection::vec(op(false), 1..60)) {
        run_model(&ops, Disk::real());
    }

    #[test]
    fn the_log_on_memfs_behaves_like_a_vec_through_rolls_truncations_and_crashes(ops in proptest::collection::vec(op(false), 1..60)) {
        run_model(&ops, Disk::mem());
    }

    #[test]
    fn after_a_power_loss_the_log_keeps_what_it_flushed_and_nothing_it_did_not_write(ops in proptest::collection::vec(op(true), 1..60)) {
        run_model(&ops, Disk::mem());
    }
}

/// Shrunk cases of the power-loss model that once failed, kept as plain tests
/// (they were found with more cases than the proptest runs, so without a seed).
mod shrunk {
    use super::Op::*;
    use super::{run_model, Disk};

    /// A rebuild after a power loss emptied segment 0's index without the flush
    /// syncing it; the next power loss brought back an entry at the end of its
    /// cut log, which made up offsets 4..7 under segment 4.
    #[test]
    fn a_stale_index_entry_after_two_power_losses() {
        run_model(
            &[
                Append {
                    records: 4,
                    size: 15,
                    codec: 1,
                },
                Append {
                    records: 4,
                    size: 18,
                    codec: 0,
                },
                Append {
                    records: 2,
                    size: 8,
                    codec: 3,
                },
                Append {
                    records: 1,
                    size: 6,
                    codec: 3,
                },
                Append {
                    records: 1,
                    size: 0,
                    codec: 0,
                },
                PowerLoss {
                    seed: 17970827938272534766,
                },
                Roll,
                Flush,
                PowerLoss {
                    seed: 9358835335889705344,
                },
            ],
            Disk::mem(),
        );
    }

    /// As above, the index emptied by a process that was then killed (so the
    /// next one found it empty in the page cache), its entries back past the end
    /// of an empty log: reading them overflowed.
    #[test]
    fn an_index_entry_past_the_end_after_a_crash_and_two_power_losses() {
        run_model(
            &[
                Append {
                    records: 4,
                    size: 23,
                    codec: 3,
                },
                Append {
                    records: 2,
                    size: 60,
                    codec: 3,
                },
                Append {
                    records: 4,
                    size: 43,
                    codec: 4,
                },
                Append {
                    records: 2,
                    size: 76,
                    codec: 2,
                },
                Append {
                    records: 1,
                    size: 0,
                    codec: 0,
                },
                Append {
                    records: 1,
                    size: 0,
                    codec: 0,
                },
                Append {
                    records: 1,
                    size: 0,
                    codec: 0,
                },
                PowerLoss {
                    seed: 11044474026872716686,
                },
                Crash { torn_bytes: 0 },
                Flush,
                PowerLoss {
                    seed: 1413311581466647694,
                },
            ],
            Disk::mem(),
        );
    }
}
