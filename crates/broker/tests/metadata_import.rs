//! A log directory written by the Rivulet before the controller quorum keeps
//! working: here one from before the binary metadata format too (JSON records;
//! `fixtures/json_metadata_log/README.md` says how it was made). The first
//! start imports the old metadata log once, as a KIP-630 snapshot ending at the
//! old log end offset (so every old offset stays used), moves the old log aside
//! to `__cluster_metadata-0.pre-quorum/`, and the quorum's log goes on after it;
//! every topic, config and record is there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use broker::clock::SystemClock;
use broker::{BrokerConfig, RunningBroker};
use metadata::{ClusterImage, ConfigResource, MetadataRecord};
use protocol::records::{decode_records, BatchHeader};
use protocol::TopicPartition;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn fixture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/json_metadata_log/logs"),
        &logs,
    );
    (dir, logs)
}

/// Starts a broker on `logs`, runs `check` on it, and stops it as `kill -9`
/// would: its runtime is dropped, so nothing of it (its log-dir locks) outlives
/// the run, and the next start recovers the logs. (A clean `shutdown()` works
/// too but waits out its tasks' timeouts, tens of seconds in-process.)
fn with_broker<T>(logs: &Path, check: impl FnOnce(&RunningBroker) -> T) -> T {
    let config = BrokerConfig::from_pairs(vec![
        ("node.id".into(), "1".into()),
        ("listeners".into(), "PLAINTEXT://127.0.0.1:0".into()),
        ("log.dirs".into(), logs.display().to_string()),
        ("offsets.topic.num.partitions".into(), "2".into()),
    ])
    .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let result = runtime.block_on(async {
        let running = RunningBroker::start(config, Arc::new(SystemClock))
            .await
            .unwrap();
        check(&running)
    });
    drop(runtime);
    result
}

/// Every record value of the metadata log's data batches (the quorum's control
/// batches left out), decoded as binary (a JSON value fails).
fn binary_records(log_dir: &Path) -> Vec<MetadataRecord> {
    // The quorum's log starts right after the imported snapshot (offset 24).
    let bytes = std::fs::read(log_dir.join("00000000000000000024.log")).unwrap();
    let mut rest = &bytes[..];
    let mut records = Vec::new();
    while !rest.is_empty() {
        let header = BatchHeader::parse(rest).unwrap();
        if header.is_control() {
            rest = &rest[header.size()..];
            continue;
        }
        let (header, batch) = decode_records(rest, 1 << 20).unwrap();
        rest = &rest[header.size()..];
        for record in batch {
            let value = record.value.unwrap();
            records.push(MetadataRecord::decode(&value).unwrap());
        }
    }
    records
}

fn check_image(image: &ClusterImage) {
    let names: Vec<&str> = image.topics.keys().map(|n| &**n).collect();
    assert_eq!(
        names,
        vec!["__consumer_offsets", "events", "orders", "orders2"]
    );
    let orders = image.topic("orders").unwrap();
    assert_eq!(orders.partitions.len(), 3);
    assert_eq!(orders.configs["retention.ms"], "86400000");
    assert_eq!(orders.configs["cleanup.policy"], "delete");
    assert_eq!(
        image.topic("events").unwrap().configs["max.message.bytes"],
        "200000"
    );
    assert_eq!(
        image.broker_configs[&ConfigResource::Broker(1)]["log.retention.ms"],
        "172800000"
    );
    assert!(image.next_producer_id >= 1000, "{}", image.next_producer_id);
    for p in orders.partitions.values() {
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (1, 0, 0));
    }
}

#[test]
fn a_json_metadata_log_is_imported_once_and_everything_stays() {
    let (_dir, logs) = fixture();
    let metadata_log = logs.join("__cluster_metadata-0");
    let pre_quorum = logs.join("__cluster_metadata-0.pre-quorum");
    let old_log = std::fs::read(metadata_log.join("00000000000000000000.log")).unwrap();

    with_broker(&logs, |running| {
        let image = running.broker.metadata.image();
        check_image(&image);
        // 24 JSON records kept their offsets 0..=23; this start elected the
        // node (its leader-change entry at 24), wrote metadata.version at 25
        // and registered at 26.
        assert_eq!(image.last_offset, 26);
        assert_eq!(image.brokers[&1].broker_epoch, 26);
        assert_eq!(image.features["metadata.version"], 27);
        let records_in_partitions = |topic: &str, count: i32| -> i64 {
            (0..count)
                .map(|p| {
                    running
                        .broker
                        .replicas
                        .get(&TopicPartition::new(topic, p))
                        .unwrap()
                        .log_end_offset()
                })
                .sum()
        };
        assert_eq!(records_in_partitions("orders", 3), 3);
        assert_eq!(records_in_partitions("events", 2), 2);
    });

    let records = binary_records(&metadata_log);
    assert_eq!(records.len(), 2, "metadata.version and the registration");
    assert!(matches!(
        records[0],
        MetadataRecord::FeatureLevel {
            feature_level: 27,
            ..
        }
    ));
    assert!(matches!(
        records[1],
        MetadataRecord::RegisterBroker {
            broker_epoch: 26,
            ..
        }
    ));
    assert!(metadata_log
        .join("00000000000000000024-0000000000.checkpoint")
        .exists());
    assert_eq!(
        std::fs::read(pre_quorum.join("00000000000000000000.log")).unwrap(),
        old_log,
        "the old log is kept aside as it was"
    );

    // The second start is on the quorum's log; the old one is left alone.
    with_broker(&logs, |running| {
        let image = running.broker.metadata.image();
        check_image(&image);
        assert_eq!(image.last_offset, 27, "only the registration is new");
    });
    assert_eq!(binary_records(&metadata_log).len(), 3);
    assert_eq!(
        std::fs::read(pre_quorum.join("00000000000000000000.log")).unwrap(),
        old_log
    );
}

#[test]
fn an_import_interrupted_between_its_renames_is_finished() {
    let (_dir, logs) = fixture();
    let metadata_log = logs.join("__cluster_metadata-0");
    // Import once, then put the directories as a crash after the first rename
    // leaves them: the old log aside, the imported one not yet in place.
    with_broker(&logs, |_| {});
    let import = logs.join("__cluster_metadata-0.import");
    std::fs::rename(&metadata_log, &import).unwrap();

    with_broker(&logs, |running| {
        check_image(&running.broker.metadata.image());
    });
    assert!(!import.exists());
    assert_eq!(binary_records(&metadata_log).len(), 3);
}
