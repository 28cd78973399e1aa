//! The broker on the controller quorum (`cluster-design.md` step Q8): the
//! embedded node leads its single-voter quorum at once and, after a restart,
//! without an election; a metadata log the pre-quorum store wrote in the binary
//! format is imported once; snapshots follow Kafka's triggers and retention
//! purges the log. Every broker here stops as `kill -9` would (its runtime
//! dropped), so each restart recovers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use broker::clock::SystemClock;
use broker::{BrokerConfig, RunningBroker};
use metadata::{ConfigResource, MetadataRecord, TopicSpec};
use protocol::records::{BatchBuilder, Compression, NewRecord};
use protocol::TopicPartition;
use quorum::Role;
use storage::log::{LoadState, Log};
use storage::log_manager::METADATA_LOG_PREFIX;
use storage::{LogConfig, LogEnv, Origin};
use uuid::Uuid;

/// For waits on conditions that hold within milliseconds on an idle machine.
const PATIENCE: Duration = Duration::from_secs(30);

fn config(logs: &Path, extra: &[(&str, &str)]) -> BrokerConfig {
    let mut pairs = vec![
        ("node.id".to_string(), "1".to_string()),
        ("listeners".into(), "PLAINTEXT://127.0.0.1:0".into()),
        ("log.dirs".into(), logs.display().to_string()),
        ("offsets.topic.num.partitions".into(), "1".into()),
    ];
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    BrokerConfig::from_pairs(pairs).unwrap()
}

/// Starts a broker on `logs`, runs `check` on it, then drops its runtime: the
/// broker stops as `kill -9` would.
fn with_broker<T>(
    logs: &Path,
    extra: &[(&str, &str)],
    check: impl AsyncFnOnce(&RunningBroker) -> T,
) -> T {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = config(logs, extra);
    let result = runtime.block_on(async {
        let running = RunningBroker::start(config, Arc::new(SystemClock))
            .await
            .unwrap();
        check(&running).await
    });
    drop(runtime);
    result
}

fn spec(name: &str, partitions: i32, configs: &[(&str, &str)]) -> TopicSpec {
    TopicSpec {
        name: name.into(),
        num_partitions: partitions,
        replication_factor: 1,
        assignments: Vec::new(),
        configs: configs
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect(),
    }
}

async fn create(running: &RunningBroker, specs: Vec<TopicSpec>) {
    for outcome in running.broker.controller.create_topics(specs, false).await {
        outcome.result.unwrap();
    }
}

fn topic_names(running: &RunningBroker) -> Vec<String> {
    running
        .broker
        .metadata
        .image()
        .topics
        .keys()
        .map(|n| n.to_string())
        .collect()
}

#[test]
fn a_restarted_embedded_node_leads_at_once_without_an_election() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let first = with_broker(&logs, &[], async |running| {
        let quorum = running.broker.controller.quorum();
        let status = quorum.status();
        assert_eq!((status.role, status.leader), (Role::Leader, Some(1)));
        assert_eq!(quorum.voter_count(), 1);
        create(running, vec![spec("t", 2, &[])]).await;
        // More to replay at the restart, one decision each.
        for i in 0..10 {
            create(running, vec![spec(&format!("r{i}"), 1, &[])]).await;
        }
        status.term
    });
    // A long election timeout: were the node to need an election, it would
    // not lead within the deadline below.
    let slow = [
        ("controller.quorum.fetch.timeout.ms", "60000"),
        ("controller.quorum.election.backoff.max.ms", "1000"),
    ];
    with_broker(&logs, &slow, async |running| {
        let quorum = running.broker.controller.quorum();
        let status = quorum
            .wait_until(Duration::from_secs(5), "the restarted node to lead", |s| {
                s.role == Role::Leader
            })
            .await
            .unwrap();
        assert_eq!(
            status.term, first,
            "the committed vote restored the leader: no election, no new term"
        );
        let mut expected: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
        expected.push("t".into());
        assert_eq!(topic_names(running), expected);
        // Nothing acted on the image before the log was re-applied: every
        // partition's log is still hosted (an older image would have had
        // them deleted as logs no topic owns).
        for tp in (0..10)
            .map(|i| TopicPartition::new(format!("r{i}"), 0))
            .chain((0..2).map(|p| TopicPartition::new("t", p)))
        {
            assert!(running.broker.replicas.get(&tp).is_some(), "{tp}");
            assert!(logs.join(tp.to_string()).is_dir(), "{tp}");
        }
        // And it decides at once.
        create(running, vec![spec("u", 1, &[])]).await;
        expected.push("u".into());
        assert_eq!(topic_names(running), expected);
    });
}

/// Writes `decisions` as the pre-quorum store did: one batch per decision, in
/// Kafka's binary records, leader epoch 0.
fn write_pre_quorum_log(logs: &Path, decisions: &[Vec<MetadataRecord>]) {
    let env = LogEnv::real(Arc::new(SystemClock));
    let config = LogConfig::resolve(&Default::default(), &Default::default()).unwrap();
    let mut log = Log::open(
        &logs.join(format!("{METADATA_LOG_PREFIX}-0")),
        TopicPartition::new(METADATA_LOG_PREFIX, 0),
        Arc::new(config),
        &env,
        LoadState::default(),
    )
    .unwrap();
    for records in decisions {
        let values: Vec<Vec<u8>> = records.iter().map(MetadataRecord::encode).collect();
        let mut builder = BatchBuilder::new(Compression::None);
        for value in &values {
            builder.append(&NewRecord {
                timestamp: 1,
                key: None,
                value: Some(value),
                headers: &[],
            });
        }
        log.append_as_leader(&builder.build().unwrap(), 0, Origin::Coordinator)
            .unwrap();
    }
    let leo = log.log_end_offset().0;
    log.flush(leo).unwrap();
    log.close().unwrap();
}

fn topic_records(name: &str, id: u128, partitions: i32) -> Vec<MetadataRecord> {
    let topic_id = Uuid::from_u128(id);
    let mut records = vec![MetadataRecord::Topic {
        name: name.into(),
        topic_id,
    }];
    records.extend((0..partitions).map(|partition| MetadataRecord::Partition {
        topic_id,
        partition,
        replicas: vec![1],
        isr: vec![1],
        leader: 1,
        leader_epoch: 0,
        partition_epoch: 0,
    }));
    records
}

#[test]
fn a_binary_metadata_log_of_the_pre_quorum_store_is_imported_once() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let decisions = vec![
        topic_records("orders", 1, 3),
        vec![MetadataRecord::Config {
            resource: ConfigResource::Topic("orders".into()),
            name: "retention.ms".into(),
            value: Some("86400000".into()),
        }],
        vec![MetadataRecord::ProducerIds {
            broker_id: 1,
            next_producer_id: 2000,
        }],
        // A decision the old store was writing when it died: its transaction
        // never ended, so it never happened.
        vec![MetadataRecord::BeginTransaction { name: None }],
        topic_records("half", 2, 1),
    ];
    write_pre_quorum_log(&logs, &decisions);
    // offsets 0..=3 orders, 4 config, 5 producer ids, 6 begin, 7..=8 half.
    let old_end = 9;
    let metadata_log = logs.join(format!("{METADATA_LOG_PREFIX}-0"));
    with_broker(&logs, &[], async |running| {
        let image = running.broker.metadata.image();
        assert_eq!(
            topic_names(running),
            vec!["orders"],
            "the open transaction's topic is not there"
        );
        let orders = image.topic("orders").unwrap();
        assert_eq!(orders.partitions.len(), 3);
        assert_eq!(orders.configs["retention.ms"], "86400000");
        assert_eq!(image.next_producer_id, 2000);
        // Every old offset stays used: the new entries come after them.
        assert!(image.brokers[&1].broker_epoch > old_end);
        for p in 0..3 {
            assert!(running
                .broker
                .replicas
                .get(&TopicPartition::new("orders", p))
                .is_some());
        }
    });
    assert!(logs
        .join(format!("{METADATA_LOG_PREFIX}-0.pre-quorum"))
        .join("00000000000000000000.log")
        .exists());
    assert!(metadata_log
        .join(format!("{old_end:020}-0000000000.checkpoint"))
        .exists());
    // The next start is on the quorum's log alone.
    with_broker(&logs, &[], async |running| {
        create(running, vec![spec("half", 1, &[])]).await;
        assert_eq!(topic_names(running), vec!["half", "orders"]);
        assert_eq!(running.broker.metadata.image().next_producer_id, 2000);
    });
}

fn snapshot_files(log_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(log_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".checkpoint"))
        .collect();
    names.sort();
    names
}

#[test]
fn snapshots_follow_the_byte_trigger_and_retention_purges_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let metadata_log = logs.join(format!("{METADATA_LOG_PREFIX}-0"));
    let tight = [
        // A snapshot after every change, and keep only the newest.
        ("metadata.log.max.record.bytes.between.snapshots", "1"),
        ("metadata.log.max.snapshot.interval.ms", "100"),
        ("metadata.max.retention.bytes", "1"),
    ];
    let image = with_broker(&logs, &tight, async |running| {
        create(
            running,
            vec![spec("a", 2, &[("cleanup.policy", "compact")])],
        )
        .await;
        create(running, vec![spec("b", 1, &[])]).await;
        let quorum = running.broker.controller.quorum();
        let last = quorum.status().last_applied_index.unwrap();
        // The newest snapshot covers everything applied, and the log before
        // it was purged.
        let status = quorum
            .wait_until(PATIENCE, "a snapshot and a purge up to it", |s| {
                s.snapshot_index == Some(last) && s.purged_index == Some(last)
            })
            .await
            .unwrap();
        assert_eq!(status.last_log_index, Some(last));
        let newest = format!("{:020}-", last + 1);
        // The older snapshots go once the purge is done.
        let one_left = async {
            while snapshot_files(&metadata_log).len() != 1 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(PATIENCE, one_left)
            .await
            .unwrap_or_else(|_| panic!("snapshots left: {:?}", snapshot_files(&metadata_log)));
        assert!(snapshot_files(&metadata_log)[0].starts_with(&newest));
        running.broker.metadata.image()
    });
    // The restart loads the snapshot (the log before it is gone).
    with_broker(&logs, &[], async |running| {
        let restarted = running.broker.metadata.image();
        assert_eq!(restarted.topics, image.topics);
        assert_eq!(
            restarted.topic("a").unwrap().configs["cleanup.policy"],
            "compact"
        );
    });
}
