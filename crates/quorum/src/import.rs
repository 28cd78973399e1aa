//! The one-time import of a metadata log written before the quorum.
//!
//! Before the quorum, the single-node broker wrote `__cluster_metadata-0` itself:
//! one batch per controller decision, possibly of several records, in leader
//! epoch 0, with no vote (and, before step Q3, JSON values). Such a log breaks
//! the quorum's rule of one entry per batch, so it is not reused as the Raft
//! log. Instead, at the first start on it (`cluster-design.md` §1.3):
//!
//! 1. the old log is replayed into the image (JSON values decoded as such);
//! 2. a KIP-630 snapshot of that image, ending at the old log end offset, is
//!    written with the node's voter set into `__cluster_metadata-0.import/`,
//!    along with `purged-log-id` = the old log's last offset, so the Raft log
//!    starts empty right after it and every old offset stays used;
//! 3. the old log is moved aside to `__cluster_metadata-0.pre-quorum/` and
//!    the import takes its place. A crash between the two renames is finished
//!    at the next start.
//!
//! A log is pre-quorum when its directory has no `quorum-state` and its first
//! batch is a data batch: a quorum log begins with a voter set (a control
//! batch), written before any vote.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use metadata::{legacy, ClusterImage, MetadataRecord, MetadataReplay};
use openraft::StoredMembership;
use protocol::records::{decode_records, BatchHeader};
use protocol::TopicPartition;
use storage::log::{LoadState, Log};
use storage::log_manager::METADATA_LOG_PREFIX;
use storage::LogEnv;

use crate::error::StoreError;
use crate::log_store::{metadata_log_config, PURGED_LOG_ID_FILE};
use crate::quorum_state::QUORUM_STATE_FILE;
use crate::snapshot::{self, SnapshotContents, SnapshotDir, SnapshotId};
use crate::types::{entry_id, VoterSet};

pub const IMPORT_SUFFIX: &str = ".import";
pub const PRE_QUORUM_SUFFIX: &str = ".pre-quorum";

fn err(context: &str) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |e| StoreError::ReadLog(format!("{context}: {e}"))
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("{METADATA_LOG_PREFIX}-0"));
    dir.with_file_name(format!("{name}{suffix}"))
}

/// Finishes an import a crash interrupted: with the log and the import both
/// present, the import may be partial and goes; with only the import, the old
/// log was already moved aside and the import takes its place.
fn finish_interrupted(env: &LogEnv, dir: &Path, import: &Path) -> Result<(), StoreError> {
    let fs = &*env.fs;
    if !fs.exists(import).map_err(err("checking for an import"))? {
        return Ok(());
    }
    if fs.exists(dir).map_err(err("checking the metadata log"))? {
        fs.remove_dir_all(import)
            .map_err(err("removing a partial import"))?;
    } else {
        tracing::info!("finishing the interrupted import of the pre-quorum metadata log");
        fs.rename(import, dir)
            .map_err(err("renaming the imported metadata log"))?;
        fs.sync_dir(&storage::fs::parent(dir))
            .map_err(err("syncing the metadata directory"))?;
    }
    Ok(())
}

/// The old log replayed: the replay state, the last offset's epoch, and the
/// log end offset; `None` when the log is not pre-quorum.
fn replay_old_log(
    env: &LogEnv,
    dir: &Path,
) -> Result<Option<(MetadataReplay, i32, i64)>, StoreError> {
    let fs = &*env.fs;
    if !fs.exists(dir).map_err(err("checking the metadata log"))?
        || fs
            .exists(&dir.join(QUORUM_STATE_FILE))
            .map_err(err("checking the vote"))?
    {
        return Ok(None);
    }
    let log = Log::open(
        dir,
        TopicPartition::new(METADATA_LOG_PREFIX, 0),
        Arc::new(metadata_log_config()),
        env,
        LoadState {
            recovery_point: 0,
            log_start_offset: 0,
            clean_shutdown: false,
        },
    )
    .map_err(|e| StoreError::ReadLog(e.to_string()))?;
    let leo = log.log_end_offset().0;
    let mut offset = log.log_start_offset().0;
    let mut replay = MetadataReplay::new(ClusterImage::default(), 0);
    let mut epoch = 0;
    let corrupt = |offset: i64, e: &dyn std::fmt::Display| {
        StoreError::ReadLog(format!("pre-quorum metadata log at offset {offset}: {e}"))
    };
    while offset < leo {
        let bytes = log
            .read_bytes(offset, leo, 1 << 20)
            .map_err(|e| corrupt(offset, &e))?;
        if bytes.is_empty() {
            break;
        }
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let header = BatchHeader::parse(rest).map_err(|e| corrupt(offset, &e))?;
            if header.is_control() {
                if offset == log.log_start_offset().0 {
                    // A quorum log (its voter set) that has no vote yet.
                    return Ok(None);
                }
                return Err(corrupt(offset, &"a control batch in a pre-quorum log"));
            }
            let (_, records) = decode_records(rest, 64 << 20).map_err(|e| corrupt(offset, &e))?;
            for record in records {
                let value = record.value.unwrap_or_default();
                let parsed = if legacy::is_legacy_value(&value) {
                    legacy::decode_legacy(&value, record.offset)
                        .map_err(|e| corrupt(record.offset, &e))?
                } else {
                    MetadataRecord::decode(&value).map_err(|e| corrupt(record.offset, &e))?
                };
                replay
                    .apply(record.offset, header.partition_leader_epoch, &parsed)
                    .map_err(|e| corrupt(record.offset, &e))?;
            }
            epoch = header.partition_leader_epoch.max(0);
            rest = &rest[header.size()..];
            offset = header.next_offset();
        }
    }
    if leo == 0 {
        return Ok(None);
    }
    Ok(Some((replay, epoch, leo)))
}

/// Imports a pre-quorum metadata log in `dir` (see the module docs), with
/// `voters` as the voter set. Returns the snapshot written, `None` when there
/// was nothing to import.
pub fn import_pre_quorum_log(
    env: &LogEnv,
    dir: &Path,
    voters: VoterSet,
) -> Result<Option<SnapshotId>, StoreError> {
    let import = sibling(dir, IMPORT_SUFFIX);
    finish_interrupted(env, dir, &import)?;
    let Some((replay, epoch, leo)) = replay_old_log(env, dir)? else {
        return Ok(None);
    };
    let aside = sibling(dir, PRE_QUORUM_SUFFIX);
    let fs = &*env.fs;
    if fs
        .exists(&aside)
        .map_err(err("checking for an earlier import"))?
    {
        return Err(StoreError::ReadLog(format!(
            "{} exists from an earlier import, yet {} holds a pre-quorum log again; move one of them away",
            aside.display(),
            dir.display()
        )));
    }
    let last = entry_id(epoch as u64, (leo - 1) as u64);
    let id = SnapshotId::covering(Some(last));
    let contents = SnapshotContents {
        id,
        last_contained_log_timestamp: env.clock.now_ms(),
        // The voter set takes effect as of the last old entry.
        membership: StoredMembership::new(Some(last), voters),
        replay,
    };
    fs.create_dir_all(&import)
        .map_err(err("creating the import directory"))?;
    SnapshotDir {
        fs: Arc::clone(&env.fs),
        dir: import.clone(),
    }
    .write(id, &snapshot::encode(&contents))
    .map_err(err("writing the imported snapshot"))?;
    let purged = format!("0\n1\n{} {}\n", epoch, leo - 1);
    storage::fs::write_atomically(fs, &import.join(PURGED_LOG_ID_FILE), purged.as_bytes())
        .map_err(err("writing the purge point"))?;
    fs.rename(dir, &aside)
        .map_err(err("moving the pre-quorum metadata log aside"))?;
    fs.rename(&import, dir)
        .map_err(err("renaming the imported metadata log"))?;
    fs.sync_dir(&storage::fs::parent(dir))
        .map_err(err("syncing the metadata directory"))?;
    tracing::info!(
        end_offset = leo,
        snapshot = %id.file_name(),
        pre_quorum = %aside.display(),
        "imported the pre-quorum metadata log as a snapshot"
    );
    Ok(Some(id))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use metadata::records::ConfigResource;
    use openraft::storage::{RaftLogStorage, RaftStateMachine};
    use openraft::Membership;
    use protocol::records::{BatchBuilder, Compression, NewRecord};
    use protocol::time::ManualClock;
    use storage::fs::{Fs, MemFs};
    use storage::Origin;
    use uuid::Uuid;

    use super::*;
    use crate::types::Voter;
    use crate::{MetadataLogStore, MetadataStateMachine};

    const DIR: &str = "/meta/__cluster_metadata-0";

    /// Writes decisions as the single-node broker did: one batch each.
    fn write_pre_quorum(env: &LogEnv, decisions: &[Vec<MetadataRecord>]) {
        let mut log = Log::open(
            Path::new(DIR),
            TopicPartition::new(METADATA_LOG_PREFIX, 0),
            Arc::new(metadata_log_config()),
            env,
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
        log.close().unwrap();
    }

    fn one_voter() -> VoterSet {
        let nodes: BTreeMap<u64, Voter> = [(1, Voter::default())].into_iter().collect();
        Membership::new(vec![[1].into_iter().collect()], nodes)
    }

    #[test]
    fn a_pre_quorum_log_becomes_a_snapshot_and_the_raft_log_starts_after_it() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let fs = MemFs::new();
            let env = LogEnv::new(fs.shared(), Arc::new(ManualClock::new(5)));
            let topic = Uuid::from_u128(3);
            let decisions = vec![
                vec![
                    MetadataRecord::Topic {
                        name: "t".into(),
                        topic_id: topic,
                    },
                    MetadataRecord::Partition {
                        topic_id: topic,
                        partition: 0,
                        replicas: vec![1],
                        isr: vec![1],
                        leader: 1,
                        leader_epoch: 0,
                        partition_epoch: 0,
                    },
                ],
                vec![MetadataRecord::Config {
                    resource: ConfigResource::Topic("t".into()),
                    name: "cleanup.policy".into(),
                    value: Some("compact".into()),
                }],
            ];
            write_pre_quorum(&env, &decisions);
            let mut expected = ClusterImage::default();
            for (i, r) in decisions.iter().flatten().enumerate() {
                expected.apply(i as i64, r).unwrap();
            }
            let id = import_pre_quorum_log(&env, Path::new(DIR), one_voter())
                .unwrap()
                .unwrap();
            assert_eq!(id.file_name(), "00000000000000000003-0000000000.checkpoint");
            assert!(fs
                .exists(Path::new(
                    "/meta/__cluster_metadata-0.pre-quorum/00000000000000000000.log"
                ))
                .unwrap());
            // Nothing more to import the next time.
            assert_eq!(
                import_pre_quorum_log(&env, Path::new(DIR), one_voter()).unwrap(),
                None
            );
            let mut sm = MetadataStateMachine::open(Path::new(DIR), fs.shared()).unwrap();
            assert_eq!(sm.replay().image(), &expected);
            let (applied, membership) = sm.applied_state().await.unwrap();
            assert_eq!(applied, Some(entry_id(0, 2)));
            assert_eq!(membership.membership(), &one_voter());
            let mut log = MetadataLogStore::open(Path::new(DIR), &env).unwrap();
            let state = log.get_log_state().await.unwrap();
            assert_eq!(state.last_purged_log_id, Some(entry_id(0, 2)));
            assert_eq!(log.offsets(), (3, 3));
        });
    }

    #[test]
    fn a_quorum_log_and_an_empty_one_are_left_alone() {
        let fs = MemFs::new();
        let env = LogEnv::new(fs.shared(), Arc::new(ManualClock::new(5)));
        assert_eq!(
            import_pre_quorum_log(&env, Path::new(DIR), one_voter()).unwrap(),
            None
        );
        write_pre_quorum(&env, &[]);
        assert_eq!(
            import_pre_quorum_log(&env, Path::new(DIR), one_voter()).unwrap(),
            None
        );
        // A quorum log whose voter set is written and no vote yet.
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            use openraft::storage::RaftLogStorageExt;
            let mut log = MetadataLogStore::open(Path::new(DIR), &env).unwrap();
            let entry =
                crate::MetadataEntry::new(entry_id(0, 0), crate::Payload::Membership(one_voter()));
            log.blocking_append([entry]).await.unwrap();
        });
        assert_eq!(
            import_pre_quorum_log(&env, Path::new(DIR), one_voter()).unwrap(),
            None
        );
        assert!(!fs
            .exists(&sibling(Path::new(DIR), PRE_QUORUM_SUFFIX))
            .unwrap());
    }

    #[test]
    fn an_import_cut_short_between_its_renames_is_finished() {
        let fs = MemFs::new();
        let env = LogEnv::new(fs.shared(), Arc::new(ManualClock::new(5)));
        write_pre_quorum(&env, &[vec![MetadataRecord::NoOp]]);
        import_pre_quorum_log(&env, Path::new(DIR), one_voter()).unwrap();
        // As if the crash came after moving the old log aside.
        let dir = Path::new(DIR);
        fs.rename(dir, &sibling(dir, IMPORT_SUFFIX)).unwrap();
        assert_eq!(import_pre_quorum_log(&env, dir, one_voter()).unwrap(), None);
        assert!(fs.exists(&dir.join(PURGED_LOG_ID_FILE)).unwrap());
    }
}
