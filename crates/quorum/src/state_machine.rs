//! `MetadataStateMachine`: committed entries applied to the cluster image, and
//! KIP-630 snapshots of it (`cluster-design.md` §1.5).
//!
//! - `apply`: a record goes to `MetadataReplay` (KIP-868 transactions
//!   included); a blank entry only advances `last_applied`; a voter set becomes
//!   the stored membership. After each call, when no metadata transaction is
//!   open, the image is published on a `watch` channel as [`AppliedImage`]
//!   (a watch keeps only the latest; readers work on what changed).
//! - Snapshots are `.checkpoint` files ([`crate::snapshot`]) in the metadata
//!   log directory; building one writes its file, installing one (from the
//!   leader) checks it, writes it and replaces the state, and the current
//!   snapshot is the newest file.
//! - Start-up loads the newest snapshot and reports it as applied, so openraft
//!   re-applies only the log after it: start-up does not replay all history.
//! - Retention ([`MetadataStateMachine::retention`]) picks the oldest snapshot
//!   to keep under `metadata.max.retention.bytes` / `metadata.max.retention.ms`;
//!   the caller purges the log up to it (`Raft::purge_log`), then removes the
//!   older snapshot files: Kafka's rule that the log starts where the oldest
//!   snapshot ends.

use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metadata::{ClusterImage, MetadataReplay};
use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{OptionalSend, RaftSnapshotBuilder, StorageError, StoredMembership};
use protocol::records::BatchHeader;
use storage::fs::Fs;
use tokio::sync::watch;

use crate::error::StoreError;
use crate::snapshot::{self, SnapshotContents, SnapshotDir, SnapshotId};
use crate::types::{kafka_epoch, EntryId, MetadataEntry, NodeId, Payload, TypeConfig, Voter};

type Result<T> = std::result::Result<T, StoreError>;
type RaftResult<T> = std::result::Result<T, StorageError<NodeId>>;

/// The two directions of snapshot I/O.
#[derive(Debug, Clone, Copy)]
enum ErrorVerb {
    Read,
    Write,
}

fn snapshot_err(verb: ErrorVerb, e: impl ToString) -> StoreError {
    match verb {
        ErrorVerb::Read => StoreError::ReadSnapshot(e.to_string()),
        ErrorVerb::Write => StoreError::WriteSnapshot(e.to_string()),
    }
}

/// The image as of an applied offset.
#[derive(Debug, Clone)]
pub struct AppliedImage {
    pub image: Arc<ClusterImage>,
    /// The index of the last entry applied (-1: none).
    pub offset: i64,
    /// Its term.
    pub epoch: i32,
}

/// What has been applied.
#[derive(Debug, Clone)]
struct Applied {
    replay: MetadataReplay,
    last_applied: Option<EntryId>,
    membership: StoredMembership<NodeId, Voter>,
    /// The batch timestamp of the last entry applied (a snapshot's
    /// LastContainedLogTimestamp).
    last_timestamp: i64,
}

impl Applied {
    fn empty() -> Applied {
        Applied {
            replay: MetadataReplay::new(ClusterImage::default(), 0),
            last_applied: None,
            membership: StoredMembership::default(),
            last_timestamp: -1,
        }
    }

    fn from_snapshot(contents: SnapshotContents) -> Applied {
        Applied {
            last_applied: contents.id.last_log_id(),
            replay: contents.replay,
            membership: contents.membership,
            last_timestamp: contents.last_contained_log_timestamp,
        }
    }

    fn published(&self) -> AppliedImage {
        AppliedImage {
            image: Arc::new(self.replay.image().clone()),
            offset: self.last_applied.map(|id| id.index as i64).unwrap_or(-1),
            epoch: self
                .last_applied
                .map(|id| kafka_epoch(id.leader_id.term))
                .unwrap_or(0),
        }
    }

    fn contents(&self) -> SnapshotContents {
        SnapshotContents {
            id: SnapshotId::covering(self.last_applied),
            last_contained_log_timestamp: self.last_timestamp,
            membership: self.membership.clone(),
            replay: self.replay.clone(),
        }
    }
}

fn meta_of(contents: &SnapshotContents) -> SnapshotMeta<NodeId, Voter> {
    SnapshotMeta {
        last_log_id: contents.id.last_log_id(),
        last_membership: contents.membership.clone(),
        snapshot_id: contents.id.stem(),
    }
}

/// The snapshot files and which one is current.
#[derive(Debug)]
struct Snapshots {
    dir: SnapshotDir,
    current: Mutex<Option<SnapshotMeta<NodeId, Voter>>>,
}

impl Snapshots {
    fn set_current(&self, meta: SnapshotMeta<NodeId, Voter>) {
        let mut current = self.current.lock().expect("snapshot lock is not poisoned");
        // A snapshot built from an older state never replaces a newer one.
        if current
            .as_ref()
            .is_none_or(|c| c.last_log_id <= meta.last_log_id)
        {
            *current = Some(meta);
        }
    }

    fn current(&self) -> Option<SnapshotMeta<NodeId, Voter>> {
        self.current
            .lock()
            .expect("snapshot lock is not poisoned")
            .clone()
    }
}

/// Retention limits for snapshots and the log (`metadata.max.retention.*`).
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// `metadata.max.retention.bytes` (100 MiB); -1: no limit.
    pub max_bytes: i64,
    /// `metadata.max.retention.ms` (7 days); -1: no limit.
    pub max_ms: i64,
}

/// What the state machine has applied, shared with the node's owner: the
/// controller's snapshot trigger counts the bytes, and its activation aborts a
/// metadata transaction left open.
#[derive(Debug)]
pub struct ApplyProgress {
    /// Bytes of the batches applied since start (Kafka's trigger counts record
    /// bytes appended since the last snapshot).
    bytes: AtomicU64,
    /// The offset of the open metadata transaction's Begin; -1: none.
    open_transaction: AtomicI64,
}

impl Default for ApplyProgress {
    fn default() -> ApplyProgress {
        ApplyProgress {
            bytes: AtomicU64::new(0),
            open_transaction: AtomicI64::new(-1),
        }
    }
}

impl ApplyProgress {
    /// Bytes of the batches applied since start.
    pub fn applied_bytes(&self) -> u64 {
        self.bytes.load(Ordering::Acquire)
    }

    /// The offset where the open metadata transaction began, if one is open.
    pub fn open_transaction(&self) -> Option<i64> {
        let since = self.open_transaction.load(Ordering::Acquire);
        (since >= 0).then_some(since)
    }

    fn record(&self, bytes: u64, open: Option<i64>) {
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
        self.open_transaction
            .store(open.unwrap_or(-1), Ordering::Release);
    }
}

/// openraft's state machine over the cluster image.
#[derive(Debug)]
pub struct MetadataStateMachine {
    applied: Applied,
    snapshots: Arc<Snapshots>,
    published: watch::Sender<AppliedImage>,
    progress: Arc<ApplyProgress>,
}

/// Builds a snapshot of the state as it was when the builder was made.
#[derive(Debug)]
pub struct MetadataSnapshotBuilder {
    applied: Applied,
    snapshots: Arc<Snapshots>,
}

impl MetadataStateMachine {
    /// Opens the state machine of the metadata log in `dir`: the newest
    /// snapshot there, or the empty image.
    pub fn open(dir: &Path, fs: Arc<dyn Fs>) -> Result<MetadataStateMachine> {
        fs.create_dir_all(dir)
            .map_err(|e| snapshot_err(ErrorVerb::Read, e))?;
        let dir = SnapshotDir {
            fs,
            dir: dir.to_path_buf(),
        };
        let newest = dir
            .list()
            .map_err(|e| snapshot_err(ErrorVerb::Read, e))?
            .last()
            .copied();
        let (applied, current) = match newest {
            None => (Applied::empty(), None),
            Some(id) => {
                let bytes = dir.read(id).map_err(|e| snapshot_err(ErrorVerb::Read, e))?;
                let contents = snapshot::decode(id, bytes.into()).map_err(|e| {
                    snapshot_err(ErrorVerb::Read, format!("{}: {e}", id.file_name()))
                })?;
                let meta = meta_of(&contents);
                tracing::info!(snapshot = %id.file_name(), "loaded the metadata image from a snapshot");
                (Applied::from_snapshot(contents), Some(meta))
            }
        };
        let (published, _) = watch::channel(applied.published());
        let progress = Arc::new(ApplyProgress::default());
        progress.record(0, applied.replay.in_transaction_since());
        Ok(MetadataStateMachine {
            applied,
            snapshots: Arc::new(Snapshots {
                dir,
                current: Mutex::new(current),
            }),
            published,
            progress,
        })
    }

    /// What has been applied (shared; it follows the state machine).
    pub fn progress(&self) -> Arc<ApplyProgress> {
        Arc::clone(&self.progress)
    }

    /// The snapshot files of this state machine.
    pub fn snapshot_dir(&self) -> SnapshotDir {
        self.snapshots.dir.clone()
    }

    /// The image as applied, now and as it changes.
    pub fn subscribe(&self) -> watch::Receiver<AppliedImage> {
        self.published.subscribe()
    }

    /// The replay state (the image and an open transaction).
    pub fn replay(&self) -> &MetadataReplay {
        &self.applied.replay
    }

    fn publish(&self) {
        if self.applied.replay.in_transaction_since().is_none() {
            self.published.send_replace(self.applied.published());
        }
    }

    /// The oldest snapshot to keep under `limits` ([`retention_point`]).
    pub fn retention(
        &self,
        limits: Retention,
        log_bytes: u64,
        now_ms: i64,
    ) -> std::io::Result<Option<SnapshotId>> {
        retention_point(&self.snapshots.dir, limits, log_bytes, now_ms)
    }

    /// Removes the snapshot files older than `keep` (once the log is purged
    /// to it).
    pub fn remove_snapshots_before(&self, keep: SnapshotId) -> std::io::Result<()> {
        remove_snapshots_before(&self.snapshots.dir, keep)
    }

    fn apply_entry(&mut self, entry: &MetadataEntry) -> Result<()> {
        let id = entry.log_id;
        let offset = id.index as i64;
        match &entry.payload {
            Payload::Normal(record) => self
                .applied
                .replay
                .apply(offset, kafka_epoch(id.leader_id.term), record)
                .map_err(|e| StoreError::Apply {
                    index: id.index,
                    reason: e.to_string(),
                })?,
            Payload::Blank => {}
            Payload::Membership(m) => {
                self.applied.membership = StoredMembership::new(Some(id), m.clone());
            }
        }
        if let Some(header) = entry
            .batch
            .as_ref()
            .and_then(|b| BatchHeader::parse(b).ok())
        {
            self.applied.last_timestamp = header.max_timestamp;
        }
        self.applied.last_applied = Some(id);
        Ok(())
    }
}

/// The oldest snapshot to keep under `limits`, given the log's size in bytes
/// and the time now: older snapshots may go, after the log is purged up to the
/// returned snapshot's last entry. `None`: nothing to retire. The newest
/// snapshot is always kept; a snapshot's age is its file's.
pub fn retention_point(
    dir: &SnapshotDir,
    limits: Retention,
    log_bytes: u64,
    now_ms: i64,
) -> std::io::Result<Option<SnapshotId>> {
    let ids = dir.list()?;
    let mut sized = Vec::with_capacity(ids.len());
    for id in &ids {
        let file = dir
            .fs
            .open(&dir.path(*id), storage::fs::OpenMode::Existing)?;
        sized.push((*id, file.size()?, file.modified_ms()?));
    }
    let mut total: u64 = log_bytes + sized.iter().map(|(_, size, _)| size).sum::<u64>();
    let mut keep_from = 0;
    while keep_from + 1 < sized.len() {
        let (_, size, modified) = sized[keep_from];
        let too_big = limits.max_bytes >= 0 && total > limits.max_bytes as u64;
        let too_old = limits.max_ms >= 0 && now_ms.saturating_sub(modified) > limits.max_ms;
        if !(too_big || too_old) {
            break;
        }
        total -= size;
        keep_from += 1;
    }
    Ok((keep_from > 0).then(|| sized[keep_from].0))
}

/// Removes the snapshot files in `dir` older than `keep`.
pub fn remove_snapshots_before(dir: &SnapshotDir, keep: SnapshotId) -> std::io::Result<()> {
    for id in dir.list()? {
        if id < keep {
            dir.remove(id)?;
        }
    }
    Ok(())
}

impl RaftSnapshotBuilder<TypeConfig> for MetadataSnapshotBuilder {
    async fn build_snapshot(&mut self) -> RaftResult<Snapshot<TypeConfig>> {
        let contents = self.applied.contents();
        let bytes = snapshot::encode(&contents);
        let dir = self.snapshots.dir.clone();
        let id = contents.id;
        let written = bytes.clone();
        tokio::task::spawn_blocking(move || dir.write(id, &written))
            .await
            .map_err(|e| snapshot_err(ErrorVerb::Write, e))?
            .map_err(|e| snapshot_err(ErrorVerb::Write, e))?;
        let meta = meta_of(&contents);
        self.snapshots.set_current(meta.clone());
        tracing::info!(snapshot = %id.file_name(), bytes = bytes.len(), "wrote a metadata snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for MetadataStateMachine {
    type SnapshotBuilder = MetadataSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> RaftResult<(Option<EntryId>, StoredMembership<NodeId, Voter>)> {
        Ok((self.applied.last_applied, self.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> RaftResult<Vec<()>>
    where
        I: IntoIterator<Item = MetadataEntry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut replies = Vec::new();
        let mut bytes = 0;
        for entry in entries {
            self.apply_entry(&entry)?;
            bytes += entry.batch.as_ref().map_or(0, |b| b.len() as u64);
            replies.push(());
        }
        self.progress
            .record(bytes, self.applied.replay.in_transaction_since());
        self.publish();
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> MetadataSnapshotBuilder {
        MetadataSnapshotBuilder {
            applied: self.applied.clone(),
            snapshots: Arc::clone(&self.snapshots),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> RaftResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Voter>,
        data: Box<Cursor<Vec<u8>>>,
    ) -> RaftResult<()> {
        let id = SnapshotId::parse_stem(&meta.snapshot_id).ok_or_else(|| {
            snapshot_err(
                ErrorVerb::Write,
                format!("snapshot id {} is not endOffset-epoch", meta.snapshot_id),
            )
        })?;
        if id.last_log_id() != meta.last_log_id {
            return Err(StorageError::from(snapshot_err(
                ErrorVerb::Write,
                format!(
                    "snapshot {} does not end at {:?}",
                    meta.snapshot_id, meta.last_log_id
                ),
            )));
        }
        let bytes = data.into_inner();
        let contents = snapshot::decode(id, bytes.clone().into())
            .map_err(|e| snapshot_err(ErrorVerb::Write, e))?;
        if contents.membership != meta.last_membership {
            return Err(StorageError::from(snapshot_err(
                ErrorVerb::Write,
                "the snapshot's voter set is not the one its metadata names",
            )));
        }
        let dir = self.snapshots.dir.clone();
        tokio::task::spawn_blocking(move || dir.write(id, &bytes))
            .await
            .map_err(|e| snapshot_err(ErrorVerb::Write, e))?
            .map_err(|e| snapshot_err(ErrorVerb::Write, e))?;
        self.applied = Applied::from_snapshot(contents);
        self.snapshots.set_current(meta.clone());
        self.progress
            .record(0, self.applied.replay.in_transaction_since());
        self.publish();
        tracing::info!(snapshot = %id.file_name(), "installed a metadata snapshot from the leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> RaftResult<Option<Snapshot<TypeConfig>>> {
        let Some(meta) = self.snapshots.current() else {
            return Ok(None);
        };
        let id = SnapshotId::parse_stem(&meta.snapshot_id).expect("our own snapshot ids parse");
        let dir = self.snapshots.dir.clone();
        let bytes = tokio::task::spawn_blocking(move || dir.read(id))
            .await
            .map_err(|e| snapshot_err(ErrorVerb::Read, e))?
            .map_err(|e| snapshot_err(ErrorVerb::Read, e))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}

#[cfg(test)]
#[path = "state_machine_tests.rs"]
mod tests;
