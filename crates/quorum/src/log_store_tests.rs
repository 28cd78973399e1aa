use std::path::Path;
use std::sync::Arc;

use metadata::MetadataRecord;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{RaftLogReader, Vote};
use protocol::time::ManualClock;
use storage::fs::MemFs;
use storage::LogEnv;

use super::*;
use crate::types::{entry_id, MetadataEntry, Payload};

const NOW: i64 = 1_700_000_000_000;
const DIR: &str = "/meta/__cluster_metadata-0";

fn env(fs: &MemFs) -> LogEnv {
    LogEnv::new(fs.shared(), Arc::new(ManualClock::new(NOW)))
}

fn open(fs: &MemFs, dir: &str) -> MetadataLogStore {
    MetadataLogStore::open(Path::new(dir), &env(fs)).unwrap()
}

fn record(i: u64) -> MetadataRecord {
    MetadataRecord::ProducerIds {
        broker_id: 1,
        next_producer_id: i as i64 * 1000,
    }
}

/// A leader's entries: a blank at the start of each term, records after.
fn entries(from: u64, to: u64, term: u64) -> Vec<MetadataEntry> {
    (from..to)
        .map(|i| {
            let payload = if i == from {
                Payload::Blank
            } else {
                Payload::Normal(record(i))
            };
            MetadataEntry::new(entry_id(term, i), payload)
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_followers_log_is_byte_identical_to_its_leaders() {
    runtime().block_on(async {
        let fs = MemFs::new();
        let mut leader = open(&fs, "/leader/__cluster_metadata-0");
        leader.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
        leader.blocking_append(entries(0, 10, 1)).await.unwrap();
        leader.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
        leader.blocking_append(entries(10, 20, 2)).await.unwrap();
        // The follower gets the leader's entries as read from its log, batch
        // bytes included, across the change of term in one append.
        let sent = leader.try_get_log_entries(0..20).await.unwrap();
        assert_eq!(sent.len(), 20);
        assert!(sent.iter().all(|e| e.batch.is_some()));
        let mut follower = open(&fs, "/follower/__cluster_metadata-0");
        follower.blocking_append(sent.clone()).await.unwrap();
        let name = "00000000000000000000.log";
        let leader_log = fs
            .contents(&Path::new("/leader/__cluster_metadata-0").join(name))
            .unwrap();
        let follower_log = fs
            .contents(&Path::new("/follower/__cluster_metadata-0").join(name))
            .unwrap();
        assert!(!leader_log.is_empty());
        assert_eq!(leader_log, follower_log);
        assert_eq!(follower.try_get_log_entries(0..20).await.unwrap(), sent);
        let state = follower.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(entry_id(2, 19)));
    });
}

#[test]
fn the_leader_change_names_the_leader_of_the_term() {
    runtime().block_on(async {
        let fs = MemFs::new();
        let mut store = open(&fs, DIR);
        store.save_vote(&Vote::new_committed(4, 3)).await.unwrap();
        store.blocking_append(entries(0, 1, 4)).await.unwrap();
        let batch = store.read_batches(0, 1).unwrap().remove(0);
        let (_, records) = protocol::records::decode_records(&batch, 1 << 20).unwrap();
        let leader = codec::decode_leader_change(records[0].value.as_deref().unwrap()).unwrap();
        assert_eq!(leader, 3);
    });
}

#[test]
fn an_append_is_acknowledged_only_once_fsynced() {
    runtime().block_on(async {
        let fs = MemFs::new();
        let mut store = open(&fs, DIR);
        store.blocking_append(entries(0, 3, 1)).await.unwrap();
        // The segment's fsync fails: the append is not acknowledged.
        fs.fail_syncs(".log", 1);
        assert!(store.blocking_append(entries(3, 5, 1)).await.is_err());
        drop(store);
        // What was acknowledged survives a crash.
        fs.crash();
        let mut store = open(&fs, DIR);
        let kept = store.try_get_log_entries(0..10).await.unwrap();
        assert_eq!(kept, entries(0, 3, 1));
    });
}

#[test]
fn a_restart_keeps_the_vote_the_purge_point_and_the_entries() {
    runtime().block_on(async {
        let fs = MemFs::new();
        let mut store = open(&fs, DIR);
        store.save_vote(&Vote::new(6, 2)).await.unwrap();
        store.blocking_append(entries(0, 10, 6)).await.unwrap();
        store.purge(entry_id(6, 3)).await.unwrap();
        store.truncate(entry_id(6, 8)).await.unwrap();
        let before = store.get_log_state().await.unwrap();
        drop(store);
        fs.crash();
        let mut store = open(&fs, DIR);
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(6, 2)));
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state, before);
        assert_eq!(state.last_purged_log_id, Some(entry_id(6, 3)));
        assert_eq!(state.last_log_id, Some(entry_id(6, 7)));
        let left = store.try_get_log_entries(0..100).await.unwrap();
        let indexes: Vec<u64> = left.iter().map(|e| e.log_id.index).collect();
        assert_eq!(indexes, vec![4, 5, 6, 7]);
        assert_eq!(store.offsets(), (4, 8));
    });
}

#[test]
fn purging_everything_starts_the_log_after_the_purge_point() {
    runtime().block_on(async {
        let fs = MemFs::new();
        let mut store = open(&fs, DIR);
        store.blocking_append(entries(0, 5, 1)).await.unwrap();
        store.purge(entry_id(2, 9)).await.unwrap();
        assert_eq!(store.offsets(), (10, 10));
        drop(store);
        fs.crash();
        let mut store = open(&fs, DIR);
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(entry_id(2, 9)));
        assert_eq!(state.last_log_id, Some(entry_id(2, 9)));
        store.blocking_append(entries(10, 12, 3)).await.unwrap();
        assert_eq!(store.offsets(), (10, 12));
        let names = fs.file_names(Path::new(DIR));
        assert!(names.contains(&"00000000000000000010.log".to_string()));
        assert!(!names.contains(&"00000000000000000000.log".to_string()));
    });
}

#[test]
fn an_entry_whose_batch_is_another_entrys_is_refused() {
    runtime().block_on(async {
        let fs = MemFs::new();
        let mut store = open(&fs, DIR);
        let mut entry = MetadataEntry::new(entry_id(1, 0), Payload::Normal(record(1)));
        let other = MetadataEntry::new(entry_id(1, 0), Payload::Normal(record(2)));
        entry.batch = Some(codec::encode_entry(&other, NOW, 1));
        assert!(store.blocking_append([entry]).await.is_err());
        assert_eq!(store.offsets(), (0, 0));
    });
}

#[test]
fn a_gap_in_the_log_is_refused() {
    runtime().block_on(async {
        let fs = MemFs::new();
        let mut store = open(&fs, DIR);
        store.blocking_append(entries(0, 3, 1)).await.unwrap();
        assert!(store.blocking_append(entries(5, 6, 1)).await.is_err());
        assert_eq!(store.offsets(), (0, 3));
    });
}
