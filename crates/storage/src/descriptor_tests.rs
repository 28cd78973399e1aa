//! File descriptors, counted on [`MemFs`] (its open handles are what
//! `/proc/<pid>/fd` counts on a real filesystem): a log holds one, for its active
//! segment, plus what the shared cache of older segments' files holds.

use std::path::PathBuf;
use std::sync::Arc;

use protocol::records::Compression;
use protocol::time::{Clock, ManualClock};
use protocol::TopicPartition;
use uuid::Uuid;

use crate::descriptors::DescriptorBudget;
use crate::env::LogEnv;
use crate::fs::MemFs;
use crate::log::{LoadState, Log};
use crate::log_manager::LogManager;
use crate::log_tests::{batch, config, read_all, NOW};
use crate::validate::Origin;

fn env(fs: &MemFs, cache: usize) -> LogEnv {
    let clock = Arc::new(ManualClock::new(NOW)) as Arc<dyn Clock>;
    LogEnv::new(fs.shared(), clock).with_file_cache(cache)
}

#[test]
fn a_log_holds_one_file_open_and_older_segments_go_through_a_bounded_cache() {
    let fs = MemFs::new();
    let env = env(&fs, 2);
    let dir = PathBuf::from("/data/t-0");
    let cfg = config(&[("segment.bytes", "200")]);
    let mut log = Log::open(
        &dir,
        TopicPartition::new("t", 0),
        Arc::clone(&cfg),
        &env,
        LoadState::default(),
    )
    .unwrap();
    assert_eq!(fs.open_files(), 1, "the active segment");
    for i in 0..40u8 {
        log.append_as_leader(
            &batch(&[&[i; 60]], NOW, Compression::None),
            0,
            Origin::Client,
        )
        .unwrap();
        log.flush(log.log_end_offset().0).unwrap();
    }
    assert!(
        log.segment_count() >= 10,
        "{} segments",
        log.segment_count()
    );
    assert!(fs.open_files() <= 1 + 2, "{} open", fs.open_files());
    // Reading every segment, oldest first, cycles the cache without growing it.
    assert_eq!(read_all(&log, 0).len(), 40);
    assert!(fs.open_files() <= 1 + 2, "{} open", fs.open_files());
    assert!(
        env.files.opened() >= 8,
        "older segments were opened on demand"
    );
    log.close().unwrap();
    drop(log);
    // The cache may still hold files of the closed log's segments: they leave with
    // their segments.
    assert_eq!(fs.open_files(), 0);
    let log = Log::open(
        &dir,
        TopicPartition::new("t", 0),
        cfg,
        &env,
        LoadState::default(),
    )
    .unwrap();
    assert_eq!(
        fs.open_files(),
        1,
        "a restart opens the active segment only"
    );
    assert_eq!(read_all(&log, 0).len(), 40);
}

#[test]
fn many_logs_hold_one_descriptor_each_and_creation_past_the_budget_is_refused() {
    let fs = MemFs::new();
    let budget = DescriptorBudget {
        limit: 150,
        cache: 10,
        reserved: 40,
    };
    let manager = LogManager::open(&[PathBuf::from("/data")], env(&fs, budget.cache))
        .unwrap()
        .with_descriptor_budget(budget);
    for p in 0..100 {
        let tp = TopicPartition::new("many", p);
        let log = manager
            .create_log(&tp, Uuid::from_u128(p as u128 + 1), config(&[]))
            .unwrap();
        log.lock()
            .unwrap()
            .append_as_leader(&batch(&[b"x"], NOW, Compression::None), 0, Origin::Client)
            .unwrap();
    }
    assert_eq!(fs.open_files(), 100);
    assert_eq!(manager.check_new_logs(0), Ok(()));
    let refused = manager.check_new_logs(1).unwrap_err();
    assert!(
        refused.contains("1 new partitions would take this broker to 101"),
        "{refused}"
    );
    manager.shutdown().unwrap();
}
