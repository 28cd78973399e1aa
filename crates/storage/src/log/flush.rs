//! Flushing a log: what `flush.messages` and `flush.ms` say is due, and the fsyncs
//! of a flush, planned under the log's lock and made without it ([`FlushPlan`]):
//! the segments (logs and indexes) up to an offset, the producer snapshots that
//! rolls wrote without an fsync, and the directory when names were created in it.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::{io_err, Log};
use crate::error::StorageError;
use crate::fs::{FileRef, Fs};

impl Log {
    /// Records appended and not yet covered by a completed flush.
    pub fn unflushed_messages(&self) -> i64 {
        self.appended_messages - self.flushed_messages
    }

    /// True when `flush.messages` or `flush.ms` asks for an fsync now.
    pub fn flush_due(&self) -> bool {
        self.flush_messages_due() || self.flush_ms_due()
    }

    /// `flush.messages` records are unflushed: the appends that made it so are
    /// acknowledged once an fsync covers them (Kafka flushes before it answers).
    pub fn flush_messages_due(&self) -> bool {
        self.unflushed_messages() >= self.config.flush_messages
    }

    /// `flush.ms` has passed since the last flush with records unflushed: a flush
    /// is due, which nobody waits for (Kafka's scheduled flush).
    pub fn flush_ms_due(&self) -> bool {
        let now = self.env.clock.now_ms();
        self.unflushed_messages() > 0
            && now.saturating_sub(self.last_flush_ms) >= self.config.flush_ms
    }

    /// Whether the log's directory or a producer snapshot has changes no flush has
    /// made durable yet (a roll outside an append: retention).
    pub fn has_unsynced_metadata(&self) -> bool {
        self.dir_changes > self.dir_changes_synced || !self.unsynced_snapshots.is_empty()
    }

    /// fsyncs every segment below `up_to` (exclusive offset) and the active one when
    /// `up_to` reaches into it; advances the recovery point.
    pub fn flush(&mut self, up_to: i64) -> Result<(), StorageError> {
        self.env.dir.check()?;
        let plan = self.flush_plan(up_to).map_err(io_err("preparing flush"))?;
        plan.sync()
            .map_err(io_err(format!("flushing {}", self.topic_partition)))?;
        self.complete_flush(&plan);
        self.env.dir.check()
    }

    /// The files to fsync to make everything below `up_to` durable, so the fsync can
    /// run without holding the log.
    /// The indexes are written out here, under the lock; the files come back open
    /// for the fsync and are closed when the plan is dropped.
    /// A write that fails here (other than on a full disk) takes the log dir
    /// offline, as does an fsync of the plan that fails.
    pub fn flush_plan(&mut self, up_to: i64) -> io::Result<FlushPlan> {
        if let Err(offline) = self.env.dir.check() {
            return Err(io::Error::other(offline.to_string()));
        }
        if self.deleted {
            // Not a failure of the dir: the files are gone on purpose.
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} was deleted", self.topic_partition),
            ));
        }
        let log_end_offset = self.log_end_offset().0;
        let up_to = up_to.min(log_end_offset);
        let mut files = Vec::new();
        if up_to > self.recovery_point {
            let recovery_point = self.recovery_point;
            for segment in self.segments.values_mut() {
                if segment.next_offset() > recovery_point && segment.base_offset() < up_to {
                    let handles = segment.sync_handles().inspect_err(|e| {
                        if !crate::fs::is_out_of_space(e) {
                            self.env
                                .dir
                                .mark_offline(format!("writing out indexes for a flush: {e}"));
                        }
                    })?;
                    files.extend(handles);
                }
            }
        }
        let snapshots = self
            .unsynced_snapshots
            .iter()
            .filter(|(_, offset, _)| *offset <= up_to)
            .map(|(_, _, path)| path.clone())
            .collect();
        Ok(FlushPlan {
            files,
            snapshots,
            snapshots_written: self.snapshots_written,
            sync_dir: (self.dir_changes > self.dir_changes_synced).then(|| self.dir.clone()),
            dir_changes: self.dir_changes,
            fs: Arc::clone(&self.env.fs),
            up_to,
            // Every record appended so far is below `up_to` when it reaches the LEO.
            messages: if up_to >= log_end_offset {
                self.appended_messages
            } else {
                self.flushed_messages
            },
            dir: Arc::clone(&self.env.dir),
        })
    }

    /// Moves the recovery point once `plan` is synced; never past a flush that
    /// failed (the log dir went offline).
    pub fn complete_flush(&mut self, plan: &FlushPlan) {
        if self.env.dir.is_offline() {
            return;
        }
        if plan.up_to > self.recovery_point {
            self.recovery_point = plan.up_to;
        }
        self.flushed_messages = self.flushed_messages.max(plan.messages);
        self.unsynced_snapshots
            .retain(|(seq, offset, _)| *seq > plan.snapshots_written || *offset > plan.up_to);
        if plan.sync_dir.is_some() {
            self.dir_changes_synced = self.dir_changes_synced.max(plan.dir_changes);
        }
        self.last_flush_ms = self.env.clock.now_ms();
    }
}

/// Files to fsync for a flush, taken under the log's lock and synced without it.
#[derive(Debug)]
pub struct FlushPlan {
    /// Segment files (logs and the indexes that changed), open.
    files: Vec<FileRef>,
    /// Producer snapshots written unsynced at rolls at or below `up_to`.
    snapshots: Vec<PathBuf>,
    snapshots_written: u64,
    /// The log's directory, when names were created in it since the last flush.
    sync_dir: Option<PathBuf>,
    dir_changes: u64,
    fs: Arc<dyn Fs>,
    up_to: i64,
    /// The log's appended-record count that this flush covers.
    messages: i64,
    dir: Arc<crate::log_dir::LogDirState>,
}

impl FlushPlan {
    /// fsyncs the files, the snapshots and the directory. A failure takes the log
    /// dir offline: the pages that could not be written may already be gone, and
    /// no later fsync brings them back.
    pub fn sync(&self) -> io::Result<()> {
        let offline = |e: &io::Error| self.dir.mark_offline(format!("fsync failed: {e}"));
        for file in &self.files {
            file.sync_data().inspect_err(offline)?;
        }
        for path in &self.snapshots {
            match self.fs.open(path, crate::fs::OpenMode::Existing) {
                Ok(file) => file.sync_data().inspect_err(offline)?,
                // Deleted since (newer snapshots, a truncation): nothing to sync.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).inspect_err(offline),
            }
        }
        if let Some(dir) = &self.sync_dir {
            match self.fs.sync_dir(dir) {
                // The log was deleted since the plan was made.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                other => other.inspect_err(offline)?,
            }
        }
        Ok(())
    }

    pub fn up_to(&self) -> i64 {
        self.up_to
    }
}
