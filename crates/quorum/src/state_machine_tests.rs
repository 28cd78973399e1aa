use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{SnapshotFooterRecord, SnapshotHeaderRecord, VotersRecord};
use kafka_protocol::protocol::Decodable;
use kafka_protocol::records::RecordBatchDecoder;
use metadata::records::{ConfigResource, Endpoint};
use metadata::MetadataRecord;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{Membership, RaftLogReader, RaftSnapshotBuilder, Vote};
use protocol::time::ManualClock;
use storage::fs::MemFs;
use storage::LogEnv;
use uuid::Uuid;

use super::*;
use crate::types::{entry_id, MetadataEntry, Payload, Voter};
use crate::MetadataLogStore;

const NOW: i64 = 1_700_000_000_000;
const DIR: &str = "/meta/__cluster_metadata-0";
const TOPIC: Uuid = Uuid::from_u128(0x42);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn voters() -> Membership<NodeId, Voter> {
    let nodes: BTreeMap<NodeId, Voter> = (1..=3)
        .map(|id| (id, Voter::new(format!("c{id}"), 9093)))
        .collect();
    Membership::new(vec![nodes.keys().copied().collect::<BTreeSet<_>>()], nodes)
}

/// The records of a small cluster: a feature level, a broker, a topic with two
/// partitions and a config, producer ids.
fn cluster_records() -> Vec<MetadataRecord> {
    vec![
        MetadataRecord::FeatureLevel {
            name: "metadata.version".into(),
            feature_level: 27,
        },
        MetadataRecord::RegisterBroker {
            node_id: 1,
            incarnation_id: Uuid::from_u128(9),
            broker_epoch: 2,
            endpoints: vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: "b1".into(),
                port: 9092,
                security_protocol: "PLAINTEXT".into(),
            }],
            features: vec![],
            rack: Some("r1".into()),
            fenced: false,
            in_controlled_shutdown: false,
        },
        MetadataRecord::BeginTransaction { name: None },
        MetadataRecord::Topic {
            name: "orders".into(),
            topic_id: TOPIC,
        },
        MetadataRecord::Partition {
            topic_id: TOPIC,
            partition: 0,
            replicas: vec![1],
            isr: vec![1],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
        },
        MetadataRecord::Partition {
            topic_id: TOPIC,
            partition: 1,
            replicas: vec![1],
            isr: vec![1],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
        },
        MetadataRecord::EndTransaction,
        MetadataRecord::Config {
            resource: ConfigResource::Topic("orders".into()),
            name: "retention.ms".into(),
            value: Some("1000".into()),
        },
        MetadataRecord::ProducerIds {
            broker_id: 1,
            next_producer_id: 2000,
        },
    ]
}

/// A log: the voter set at 0, a blank at 1, then `records` from 2, in term 1.
fn log_entries(records: &[MetadataRecord]) -> Vec<MetadataEntry> {
    let mut entries = vec![
        MetadataEntry::new(entry_id(1, 0), Payload::Membership(voters())),
        MetadataEntry::new(entry_id(1, 1), Payload::Blank),
    ];
    for (i, record) in records.iter().enumerate() {
        entries.push(MetadataEntry::new(
            entry_id(1, i as u64 + 2),
            Payload::Normal(record.clone()),
        ));
    }
    entries
}

fn open_sm(fs: &MemFs, dir: &str) -> MetadataStateMachine {
    MetadataStateMachine::open(Path::new(dir), fs.shared()).unwrap()
}

#[test]
fn apply_publishes_the_image_outside_transactions_only() {
    runtime().block_on(async {
        let fs = MemFs::new();
        let mut sm = open_sm(&fs, DIR);
        let mut images = sm.subscribe();
        assert_eq!(images.borrow().offset, -1);
        let entries = log_entries(&cluster_records());
        // Up to the Topic record inside the transaction (offset 5).
        sm.apply(entries[..6].to_vec()).await.unwrap();
        assert!(
            !images.has_changed().unwrap(),
            "nothing published mid-transaction"
        );
        sm.apply(entries[6..9].to_vec()).await.unwrap();
        assert!(images.has_changed().unwrap());
        let applied = images.borrow_and_update().clone();
        assert_eq!(applied.offset, 8);
        assert_eq!(applied.epoch, 1);
        assert_eq!(applied.image.topic("orders").unwrap().partitions.len(), 2);
        assert_eq!(applied.image.last_offset, 8);
        let (last, membership) = sm.applied_state().await.unwrap();
        assert_eq!(last, Some(entry_id(1, 8)));
        assert_eq!(membership.membership(), &voters());
        assert_eq!(*membership.log_id(), Some(entry_id(1, 0)));
    });
}

#[test]
fn a_snapshot_file_starts_with_the_header_and_ends_with_the_footer() {
    runtime().block_on(async {
        let fs = MemFs::new();
        let mut sm = open_sm(&fs, DIR);
        let records = cluster_records();
        sm.apply(log_entries(&records)).await.unwrap();
        let snapshot = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        let last = 2 + records.len() as i64 - 1;
        let name = format!("{:020}-{:010}.checkpoint", last + 1, 1);
        assert_eq!(
            snapshot.meta.snapshot_id,
            name.trim_end_matches(".checkpoint")
        );
        assert_eq!(snapshot.meta.last_log_id, Some(entry_id(1, last as u64)));
        let file = fs.contents(&Path::new(DIR).join(&name)).unwrap();
        assert_eq!(&file, snapshot.snapshot.get_ref());
        // Kafka's own decoder reads every batch.
        let mut buf = Bytes::from(file);
        let sets = RecordBatchDecoder::decode_all(&mut buf).unwrap();
        let records: Vec<_> = sets.into_iter().flat_map(|s| s.records).collect();
        let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, (0..records.len() as i64).collect::<Vec<_>>());
        assert!(records.iter().all(|r| r.partition_leader_epoch == 1));
        let first = &records[0];
        assert!(first.control);
        assert_eq!(first.key.as_deref(), Some(&[0u8, 0, 0, 3][..]));
        let header = SnapshotHeaderRecord::decode(&mut first.value.clone().unwrap(), 0).unwrap();
        assert_eq!(header.version, 0);
        assert_eq!(header.last_contained_log_timestamp, -1);
        let voters_record = &records[1];
        assert_eq!(voters_record.key.as_deref(), Some(&[0u8, 0, 0, 6][..]));
        let decoded = VotersRecord::decode(&mut voters_record.value.clone().unwrap(), 0).unwrap();
        assert_eq!(decoded.voters.len(), 3);
        let last = records.last().unwrap();
        assert!(last.control);
        assert_eq!(last.key.as_deref(), Some(&[0u8, 0, 0, 4][..]));
        SnapshotFooterRecord::decode(&mut last.value.clone().unwrap(), 0).unwrap();
        // The data records in between are the image's.
        let data: Vec<MetadataRecord> = records
            .iter()
            .filter(|r| !r.control)
            .map(|r| MetadataRecord::decode(r.value.as_ref().unwrap()).unwrap())
            .collect();
        assert_eq!(data, sm.replay().image().write_records());
    });
}

#[test]
fn an_install_rebuilds_an_identical_state_even_mid_transaction() {
    runtime().block_on(async {
        let fs = MemFs::new();
        let mut leader = open_sm(&fs, "/leader/__cluster_metadata-0");
        let mut records = cluster_records();
        // Leave a transaction open: the snapshot falls inside it.
        records.push(MetadataRecord::BeginTransaction { name: None });
        records.push(MetadataRecord::Topic {
            name: "pending".into(),
            topic_id: Uuid::from_u128(0x43),
        });
        leader.apply(log_entries(&records)).await.unwrap();
        assert_eq!(leader.replay().in_transaction_since(), Some(11));
        let snapshot = leader
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        let mut follower = open_sm(&fs, "/follower/__cluster_metadata-0");
        let mut images = follower.subscribe();
        let mut data = follower.begin_receiving_snapshot().await.unwrap();
        *data = *snapshot.snapshot;
        follower
            .install_snapshot(&snapshot.meta, data)
            .await
            .unwrap();
        assert_eq!(follower.replay().image(), leader.replay().image());
        assert_eq!(
            follower.replay().image_epoch(),
            leader.replay().image_epoch()
        );
        assert_eq!(follower.replay().in_transaction_since(), Some(11));
        assert_eq!(
            follower.applied_state().await.unwrap(),
            leader.applied_state().await.unwrap()
        );
        assert!(
            !images.has_changed().unwrap(),
            "an install inside a transaction publishes nothing"
        );
        let current = follower.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, snapshot.meta);
        // Both finish the transaction alike.
        let end = MetadataEntry::new(
            entry_id(2, 13),
            Payload::Normal(MetadataRecord::EndTransaction),
        );
        leader.apply([end.clone()]).await.unwrap();
        follower.apply([end]).await.unwrap();
        assert_eq!(follower.replay().image(), leader.replay().image());
        assert!(follower.replay().image().topic("pending").is_some());
        assert_eq!(images.borrow_and_update().offset, 13);
    });
}

#[test]
fn a_snapshot_without_its_footer_is_refused() {
    runtime().block_on(async {
        let fs = MemFs::new();
        let mut leader = open_sm(&fs, "/leader/__cluster_metadata-0");
        leader.apply(log_entries(&cluster_records())).await.unwrap();
        let snapshot = leader
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        let bytes = snapshot.snapshot.into_inner();
        let header = protocol::records::BatchHeader::parse(&bytes).unwrap();
        let mut follower = open_sm(&fs, "/follower/__cluster_metadata-0");
        // Everything but the last batch (the footer).
        let mut at = 0;
        let mut last = 0;
        while at < bytes.len() {
            last = at;
            let h = protocol::records::BatchHeader::parse(&bytes[at..]).unwrap();
            at += h.size();
        }
        assert!(header.is_control());
        let cut = std::io::Cursor::new(bytes[..last].to_vec());
        assert!(follower
            .install_snapshot(&snapshot.meta, Box::new(cut))
            .await
            .is_err());
        let (applied, _) = follower.applied_state().await.unwrap();
        assert_eq!(applied, None, "the state is unchanged");
    });
}

#[test]
fn a_restart_after_a_snapshot_and_more_log_gives_the_same_image_and_offset() {
    runtime().block_on(async {
        let fs = MemFs::new();
        let env = LogEnv::new(fs.shared(), Arc::new(ManualClock::new(NOW)));
        let dir = Path::new(DIR);
        let mut log = MetadataLogStore::open(dir, &env).unwrap();
        let mut sm = MetadataStateMachine::open(dir, fs.shared()).unwrap();
        log.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
        let mut records = cluster_records();
        let entries = log_entries(&records);
        log.blocking_append(entries.clone()).await.unwrap();
        sm.apply(entries.clone()).await.unwrap();
        let snapshot = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        // More after the snapshot: a partition change and a new topic.
        let more = vec![
            MetadataRecord::PartitionChange {
                topic_id: TOPIC,
                partition: 1,
                leader: Some(1),
                isr: None,
                replicas: None,
            },
            MetadataRecord::Topic {
                name: "later".into(),
                topic_id: Uuid::from_u128(0x44),
            },
        ];
        let next = entries.len() as u64;
        let tail: Vec<MetadataEntry> = more
            .iter()
            .enumerate()
            .map(|(i, r)| {
                MetadataEntry::new(entry_id(1, next + i as u64), Payload::Normal(r.clone()))
            })
            .collect();
        records.extend(more);
        log.blocking_append(tail.clone()).await.unwrap();
        sm.apply(tail).await.unwrap();
        let image = sm.replay().image().clone();
        let applied = sm.applied_state().await.unwrap();
        drop((log, sm));
        fs.crash();

        // Start-up: the newest snapshot, then the log after it.
        let mut log = MetadataLogStore::open(dir, &env).unwrap();
        let mut sm = MetadataStateMachine::open(dir, fs.shared()).unwrap();
        let (from, _) = sm.applied_state().await.unwrap();
        assert_eq!(from, snapshot.meta.last_log_id, "loaded from the snapshot");
        let start = from.unwrap().index + 1;
        let rest = log.try_get_log_entries(start..).await.unwrap();
        assert_eq!(rest.len(), 2, "only the log after the snapshot is replayed");
        sm.apply(rest).await.unwrap();
        assert_eq!(sm.replay().image(), &image);
        assert_eq!(sm.applied_state().await.unwrap(), applied);
        let published = sm.subscribe().borrow().clone();
        assert_eq!(published.offset, next as i64 + 1);
        assert_eq!(published.image.as_ref(), &image);
    });
}

#[test]
fn retention_keeps_the_newest_snapshot_and_retires_by_size_and_age() {
    runtime().block_on(async {
        let fs = MemFs::new();
        let mut sm = open_sm(&fs, DIR);
        let records = cluster_records();
        let entries = log_entries(&records);
        // Three snapshots, at 1 s intervals (file times).
        for (i, at) in [(3usize, 1_000i64), (6, 2_000), (entries.len(), 3_000)] {
            fs.set_time_ms(at);
            let done = sm
                .applied_state()
                .await
                .unwrap()
                .0
                .map(|l| l.index as usize + 1);
            sm.apply(entries[done.unwrap_or(0)..i].to_vec())
                .await
                .unwrap();
            sm.get_snapshot_builder()
                .await
                .build_snapshot()
                .await
                .unwrap();
        }
        let ids = SnapshotDir {
            fs: fs.shared(),
            dir: DIR.into(),
        }
        .list()
        .unwrap();
        assert_eq!(ids.len(), 3);
        let unlimited = Retention {
            max_bytes: -1,
            max_ms: -1,
        };
        assert_eq!(sm.retention(unlimited, 0, 10_000).unwrap(), None);
        // By age: older than 1.5 s at t = 3.6 s is the first two; the newest stays.
        let by_age = Retention {
            max_bytes: -1,
            max_ms: 1_500,
        };
        assert_eq!(sm.retention(by_age, 0, 3_600).unwrap(), Some(ids[2]));
        assert_eq!(sm.retention(by_age, 0, 3_000).unwrap(), Some(ids[1]));
        // By size: a limit of one byte retires all but the newest.
        let by_size = Retention {
            max_bytes: 1,
            max_ms: -1,
        };
        assert_eq!(sm.retention(by_size, 0, 0).unwrap(), Some(ids[2]));
        sm.remove_snapshots_before(ids[2]).unwrap();
        let left = SnapshotDir {
            fs: fs.shared(),
            dir: DIR.into(),
        }
        .list()
        .unwrap();
        assert_eq!(left, vec![ids[2]]);
    });
}

#[test]
fn snapshot_ids_are_kafkas_file_names() {
    let id = SnapshotId {
        end_offset: 1234,
        epoch: 7,
    };
    assert_eq!(id.file_name(), "00000000000000001234-0000000007.checkpoint");
    assert_eq!(SnapshotId::parse_file_name(&id.file_name()), Some(id));
    assert_eq!(id.last_log_id(), Some(entry_id(7, 1233)));
    assert_eq!(SnapshotId::covering(Some(entry_id(7, 1233))), id);
    assert_eq!(SnapshotId::covering(None).last_log_id(), None);
    for bad in [
        "1234-7.checkpoint",
        "00000000000000001234-0000000007.checkpoint.part",
        "0000000000000000123x-0000000007.checkpoint",
        "00000000000000001234-0000000007.log",
    ] {
        assert_eq!(SnapshotId::parse_file_name(bad), None, "{bad}");
    }
}
