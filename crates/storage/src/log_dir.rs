//! What the logs of one log dir share: whether the directory is still usable, and
//! the log start offsets its `log-start-offset-checkpoint` holds.
//!
//! Offline (Kafka's `LogDirFailureChannel`): an fsync that fails, or a write that
//! fails for any reason but a full disk, leaves files whose contents are in doubt
//! (after a failed fsync Linux may already have dropped the pages it could not
//! write). The directory goes offline: every operation on its logs answers
//! [`StorageError::LogDirOffline`] (KAFKA_STORAGE_ERROR to clients), no flush moves
//! a recovery point any more, no checkpoint and no clean-shutdown mark is written
//! for it, so the next start recovers its logs from the data. Other log dirs keep
//! serving. A full disk (ENOSPC) on a write is not a failure of the directory: the
//! write is rolled back and refused, and succeeds again once space returns.
//!
//! Log start offsets: every log of the dir records its start here when it moves;
//! DeleteRecords writes the checkpoint (fsynced) before it answers, so a crash
//! cannot bring deleted records back. The periodic checkpoint writes the same map,
//! one writer at a time.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use protocol::TopicPartition;

use crate::checkpoint::{self, LOG_START_OFFSET_CHECKPOINT};
use crate::error::StorageError;
use crate::fs::{is_out_of_space, Fs};

#[derive(Debug)]
pub struct LogDirState {
    /// The log dir; `None` for a log opened on its own (a test, the metadata log),
    /// which has no checkpoint.
    path: Option<PathBuf>,
    offline: AtomicBool,
    reason: Mutex<Option<String>>,
    log_starts: Mutex<BTreeMap<TopicPartition, i64>>,
}

impl LogDirState {
    pub fn new(path: &Path, log_starts: BTreeMap<TopicPartition, i64>) -> Arc<LogDirState> {
        Arc::new(LogDirState {
            path: Some(path.to_path_buf()),
            offline: AtomicBool::new(false),
            reason: Mutex::new(None),
            log_starts: Mutex::new(log_starts),
        })
    }

    /// For a log outside any log manager.
    pub fn detached() -> Arc<LogDirState> {
        Arc::new(LogDirState {
            path: None,
            offline: AtomicBool::new(false),
            reason: Mutex::new(None),
            log_starts: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::Acquire)
    }

    /// Why the directory went offline.
    pub fn offline_reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `Err(LogDirOffline)` once the directory is offline.
    pub fn check(&self) -> Result<(), StorageError> {
        if !self.is_offline() {
            return Ok(());
        }
        Err(StorageError::LogDirOffline(
            self.path.clone().unwrap_or_default(),
            self.offline_reason().unwrap_or_default(),
        ))
    }

    /// Takes the directory offline for good (until a restart).
    pub fn mark_offline(&self, reason: String) {
        let mut held = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if held.is_none() {
            let dir = self
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            tracing::error!(dir, %reason, "log directory is offline: its partitions answer KAFKA_STORAGE_ERROR until a restart");
            *held = Some(reason);
        }
        self.offline.store(true, Ordering::Release);
    }

    /// The error for a failed I/O call made `while_doing` something. A full disk on
    /// a write (`may_fill`) is the call's own failure; anything else takes the
    /// directory offline.
    pub fn io_failure(&self, while_doing: &str, error: io::Error, may_fill: bool) -> StorageError {
        if !(may_fill && is_out_of_space(&error)) {
            self.mark_offline(format!("{while_doing}: {error}"));
        }
        StorageError::io(while_doing, error)
    }

    fn starts(&self) -> MutexGuard<'_, BTreeMap<TopicPartition, i64>> {
        self.log_starts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The log start offset `tp` was left at (the checkpoint's, at start-up).
    pub fn log_start(&self, tp: &TopicPartition) -> Option<i64> {
        self.starts().get(tp).copied()
    }

    /// Records where `tp` starts now (written with the next checkpoint).
    pub fn set_log_start(&self, tp: &TopicPartition, offset: i64) {
        self.starts().insert(tp.clone(), offset);
    }

    /// Forgets a deleted log.
    pub fn remove_log(&self, tp: &TopicPartition) {
        self.starts().remove(tp);
    }

    /// Writes `log-start-offset-checkpoint` (atomically, fsynced). A failure other
    /// than a full disk takes the directory offline.
    pub fn write_log_starts(&self, fs: &dyn Fs) -> Result<(), StorageError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        self.check()?;
        // The map stays locked while the file is written: writers take turns, and
        // each writes the latest offsets.
        let starts = self.starts();
        checkpoint::write_offsets_in(fs, &path.join(LOG_START_OFFSET_CHECKPOINT), &starts)
            .map_err(|e| self.io_failure("writing the log start offset checkpoint", e, true))
    }
}
