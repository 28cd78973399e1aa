//! `MetadataLogStore`: openraft's log storage over `__cluster_metadata-0`, a
//! `storage::Log` in Kafka's segment layout (`cluster-design.md` §1.4).
//!
//! Files in the log directory, besides the segments and their indexes:
//! - `quorum-state`: the vote ([`crate::quorum_state`]);
//! - `purged-log-id`: the id of the last entry purged, framed as Kafka's
//!   checkpoint files (`0`, `1`, `<term> <index>`). The log start offset is the
//!   next index. It is needed because a purge may go past every entry of the
//!   log (openraft asks for that), after which no batch says what the term of
//!   the purged entry was.
//!
//! Invariants: every batch is one entry, at offset = index and leader epoch =
//! term; the log's entries are contiguous from `log_start_offset`; an append's
//! `LogFlushed` callback runs only once everything it wrote is fsynced (one
//! fsync per `append` call covers all its entries: group commit), on the
//! blocking pool so openraft keeps running meanwhile. Truncation and purge are
//! durable before they return.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageError, Vote};
use protocol::records::batch::BatchHeader;
use protocol::TopicPartition;
use storage::log::{LoadState, Log, ReadOutcome};
use storage::log_manager::METADATA_LOG_PREFIX;
use storage::{LogConfig, LogEnv, Origin};

use crate::codec;
use crate::error::StoreError;
use crate::quorum_state;
use crate::types::{entry_id, kafka_node_id, EntryId, MetadataEntry, NodeId, TypeConfig};

pub const PURGED_LOG_ID_FILE: &str = "purged-log-id";

/// What a read of the log returns at most per call to the log (whole batches).
const READ_CHUNK_BYTES: usize = 1 << 20;

type Result<T> = std::result::Result<T, StoreError>;
type RaftResult<T> = std::result::Result<T, StorageError<NodeId>>;

fn write_err(e: impl ToString) -> StoreError {
    StoreError::WriteLog(e.to_string())
}

fn read_err(e: impl ToString) -> StoreError {
    StoreError::ReadLog(e.to_string())
}

/// The metadata log's config: Kafka's defaults, except that any timestamp is
/// accepted (entries are the leader's, written in the past and replayed to
/// followers much later) and a batch may be as large as [`codec::MAX_ENTRY_BYTES`].
pub fn metadata_log_config() -> LogConfig {
    let overrides: BTreeMap<String, String> = [
        ("message.timestamp.after.max.ms", i64::MAX.to_string()),
        ("message.timestamp.before.max.ms", i64::MAX.to_string()),
        ("max.message.bytes", codec::MAX_ENTRY_BYTES.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    LogConfig::resolve(&overrides, &BTreeMap::new()).expect("the metadata log config is valid")
}

fn read_purged(env: &LogEnv, dir: &Path) -> io::Result<Option<EntryId>> {
    let path = dir.join(PURGED_LOG_ID_FILE);
    let text = match storage::fs::read_to_string(&*env.fs, &path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let invalid = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not `0`, `1`, `<term> <index>`", path.display()),
        )
    };
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let [version, count, entry] = lines[..] else {
        return Err(invalid());
    };
    if version != "0" || count != "1" {
        return Err(invalid());
    }
    let mut parts = entry.split_whitespace();
    let term: u64 = parts
        .next()
        .and_then(|t| t.parse().ok())
        .ok_or_else(invalid)?;
    let index: u64 = parts
        .next()
        .and_then(|t| t.parse().ok())
        .ok_or_else(invalid)?;
    Ok(Some(entry_id(term, index)))
}

fn write_purged(env: &LogEnv, dir: &Path, id: &EntryId) -> io::Result<()> {
    let text = format!("0\n1\n{} {}\n", id.leader_id.term, id.index);
    storage::fs::write_atomically(&*env.fs, &dir.join(PURGED_LOG_ID_FILE), text.as_bytes())
}

/// The log, its vote and purge point, shared by the store and its readers.
#[derive(Debug)]
struct Inner {
    log: Log,
    env: LogEnv,
    dir: PathBuf,
    vote: Option<Vote<NodeId>>,
    last_purged: Option<EntryId>,
    /// The id of the last entry in the log, if it holds any.
    last_entry: Option<EntryId>,
}

impl Inner {
    fn last_entry_in_log(&self) -> Result<Option<EntryId>> {
        let leo = self.log.log_end_offset().0;
        if leo <= self.log.log_start_offset().0 {
            return Ok(None);
        }
        let ReadOutcome::Data(slice) = self.log.read(leo - 1, leo).map_err(read_err)? else {
            return Err(read_err(format!("the entry at {} cannot be read", leo - 1)));
        };
        let bytes = slice.read(0, true).map_err(read_err)?;
        let header = BatchHeader::parse(&bytes).map_err(read_err)?;
        if header.last_offset() != leo - 1 || header.partition_leader_epoch < 0 {
            return Err(read_err(format!(
                "the last batch of the metadata log ({}, epoch {}) is not an entry at {}",
                header.base_offset,
                header.partition_leader_epoch,
                leo - 1
            )));
        }
        Ok(Some(entry_id(
            header.partition_leader_epoch as u64,
            (leo - 1) as u64,
        )))
    }

    /// The entries at indexes in `[start, end)` the log holds.
    fn read(&self, start: u64, end: u64) -> Result<Vec<MetadataEntry>> {
        let log_start = self.log.log_start_offset().0 as u64;
        let leo = self.log.log_end_offset().0 as u64;
        let (mut at, end) = (start.max(log_start), end.min(leo));
        let mut entries = Vec::new();
        while at < end {
            let bytes = self
                .log
                .read_bytes(at as i64, end as i64, READ_CHUNK_BYTES)
                .map_err(read_err)?;
            if bytes.is_empty() {
                return Err(read_err(format!("no entry at {at} below {end}")));
            }
            for entry in codec::decode_entries(&bytes, usize::MAX).map_err(read_err)? {
                if entry.log_id.index != at {
                    return Err(read_err(format!(
                        "the metadata log has entry {} where {at} was expected",
                        entry.log_id
                    )));
                }
                at += 1;
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    /// The leader id a LEADER_CHANGE written in `term` names: the vote's node,
    /// when the vote is for that term.
    fn leader_of(&self, term: u64) -> i32 {
        self.vote
            .filter(|v| v.leader_id.term == term)
            .and_then(|v| v.leader_id.voted_for)
            .and_then(kafka_node_id)
            .unwrap_or(-1)
    }

    /// Writes `entries` (into the page cache; the caller flushes).
    fn append(&mut self, mut entries: Vec<MetadataEntry>) -> Result<()> {
        // Entries at or below the purge point are purged as they come: openraft
        // sends none (they are committed and applied), its test suite does.
        if let Some(purged) = self.last_purged {
            entries.retain(|e| e.log_id.index > purged.index);
        }
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let first_index = first.log_id.index as i64;
        let leo = self.log.log_end_offset().0;
        if first_index != leo {
            if leo == self.log.log_start_offset().0 && first_index > leo {
                // An empty log takes its first entry wherever it comes.
                self.log
                    .truncate_fully_and_start_at(first_index)
                    .map_err(write_err)?;
            } else {
                return Err(write_err(format!(
                    "entry {} does not follow the metadata log's end {leo}",
                    first.log_id
                )));
            }
        }
        let now = self.env.clock.now_ms();
        // One append per run of entries of one term: the log stamps one epoch
        // per call, and it is the same as the one in the batches.
        let mut run: Vec<u8> = Vec::new();
        let mut run_term: Option<u64> = None;
        let mut last = None;
        for (expected, entry) in (first.log_id.index..).zip(entries) {
            if entry.log_id.index != expected {
                return Err(write_err(format!(
                    "entry {} is not contiguous (expected index {expected})",
                    entry.log_id
                )));
            }
            let term = entry.log_id.leader_id.term;
            let batch = match &entry.batch {
                Some(bytes) => {
                    codec::check_batch(&entry, bytes).map_err(write_err)?;
                    bytes.clone()
                }
                None => codec::encode_entry(&entry, now, self.leader_of(term)),
            };
            if run_term.is_some_and(|t| t != term) {
                self.append_run(&run, run_term.expect("checked"))?;
                run.clear();
            }
            run_term = Some(term);
            run.extend_from_slice(&batch);
            last = Some(entry.log_id);
        }
        if let Some(term) = run_term {
            self.append_run(&run, term)?;
        }
        self.last_entry = last;
        Ok(())
    }

    fn append_run(&mut self, batches: &[u8], term: u64) -> Result<()> {
        let epoch = crate::types::kafka_epoch(term);
        self.log
            .append_as_leader(batches, epoch, Origin::Coordinator)
            .map_err(write_err)?;
        Ok(())
    }
}

/// openraft's log storage over the metadata log.
#[derive(Debug, Clone)]
pub struct MetadataLogStore {
    inner: Arc<Mutex<Inner>>,
}

/// A reader of the same log, for openraft's replication tasks.
#[derive(Debug, Clone)]
pub struct MetadataLogReader {
    inner: Arc<Mutex<Inner>>,
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    inner.lock().expect("the metadata log lock is not poisoned")
}

impl MetadataLogStore {
    /// Opens (or creates) the metadata log in `dir`, recovering its tail (an
    /// unflushed entry was never acknowledged to Raft, so losing it is legal).
    pub fn open(dir: &Path, env: &LogEnv) -> Result<MetadataLogStore> {
        env.fs.create_dir_all(dir).map_err(read_err)?;
        let last_purged = read_purged(env, dir).map_err(read_err)?;
        let vote =
            quorum_state::read(&*env.fs, dir).map_err(|e| StoreError::ReadVote(e.to_string()))?;
        let state = LoadState {
            recovery_point: 0,
            log_start_offset: last_purged.map(|p| p.index as i64 + 1).unwrap_or(0),
            clean_shutdown: false,
        };
        let log = Log::open(
            dir,
            TopicPartition::new(METADATA_LOG_PREFIX, 0),
            Arc::new(metadata_log_config()),
            env,
            state,
        )
        .map_err(read_err)?;
        let mut inner = Inner {
            log,
            env: env.clone(),
            dir: dir.to_path_buf(),
            vote,
            last_purged,
            last_entry: None,
        };
        inner.last_entry = inner.last_entry_in_log()?;
        Ok(MetadataLogStore {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    /// The log's directory.
    pub fn dir(&self) -> PathBuf {
        lock(&self.inner).dir.clone()
    }

    /// The log's start and end offsets.
    pub fn offsets(&self) -> (i64, i64) {
        let inner = lock(&self.inner);
        (inner.log.log_start_offset().0, inner.log.log_end_offset().0)
    }

    /// Every batch in `[start, end)` as stored (tests compare voters' logs).
    pub fn read_batches(&self, start: u64, end: u64) -> Result<Vec<Bytes>> {
        let inner = lock(&self.inner);
        Ok(inner
            .read(start, end)?
            .into_iter()
            .filter_map(|e| e.batch)
            .collect())
    }
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.saturating_add(1),
        Bound::Excluded(e) => *e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for MetadataLogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> RaftResult<Vec<MetadataEntry>> {
        let (start, end) = bounds(&range);
        Ok(lock(&self.inner).read(start, end)?)
    }
}

impl RaftLogReader<TypeConfig> for MetadataLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> RaftResult<Vec<MetadataEntry>> {
        let (start, end) = bounds(&range);
        Ok(lock(&self.inner).read(start, end)?)
    }
}

impl RaftLogStorage<TypeConfig> for MetadataLogStore {
    type LogReader = MetadataLogReader;

    async fn get_log_state(&mut self) -> RaftResult<LogState<TypeConfig>> {
        let inner = lock(&self.inner);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: inner.last_entry.or(inner.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> MetadataLogReader {
        MetadataLogReader {
            inner: Arc::clone(&self.inner),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> RaftResult<()> {
        let mut inner = lock(&self.inner);
        quorum_state::write(&*inner.env.fs, &inner.dir, vote)
            .map_err(|e| StoreError::WriteVote(e.to_string()))?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> RaftResult<Option<Vote<NodeId>>> {
        Ok(lock(&self.inner).vote)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> RaftResult<()>
    where
        I: IntoIterator<Item = MetadataEntry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let plan = {
            let mut inner = lock(&self.inner);
            inner.append(entries.into_iter().collect())?;
            let leo = inner.log.log_end_offset().0;
            inner.log.flush_plan(leo).map_err(write_err)?
        };
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let synced = plan.sync();
            if synced.is_ok() {
                lock(&inner).log.complete_flush(&plan);
            }
            callback.log_io_completed(synced);
        });
        Ok(())
    }

    async fn truncate(&mut self, log_id: EntryId) -> RaftResult<()> {
        let mut inner = lock(&self.inner);
        inner
            .log
            .truncate_to(log_id.index as i64)
            .map_err(write_err)?;
        inner.last_entry = inner.last_entry_in_log()?;
        Ok(())
    }

    async fn purge(&mut self, log_id: EntryId) -> RaftResult<()> {
        let mut inner = lock(&self.inner);
        if inner.last_purged.is_some_and(|p| p.index >= log_id.index) {
            return Ok(());
        }
        // The purge point first: once it is durable, the log may lose anything
        // up to it.
        write_purged(&inner.env, &inner.dir, &log_id).map_err(write_err)?;
        inner.last_purged = Some(log_id);
        let next = log_id.index as i64 + 1;
        let leo = inner.log.log_end_offset().0;
        if next >= leo {
            inner
                .log
                .truncate_fully_and_start_at(next)
                .map_err(write_err)?;
        } else if next > inner.log.log_start_offset().0 {
            inner
                .log
                .delete_records_before(next, leo)
                .map_err(write_err)?;
        }
        inner.last_entry = inner.last_entry_in_log()?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "log_store_tests.rs"]
mod tests;
