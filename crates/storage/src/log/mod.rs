//! A partition's log: an ordered run of segments in `<topic>-<partition>/`.
//!
//! Offsets:
//! - `log_start_offset`: the first offset a reader may ask for;
//! - `log_end_offset` (LEO): the next offset to assign;
//! - `recovery_point`: everything below it is fsynced, so only segments at or after
//!   it need checking after a crash.
//!
//! Invariants: `log_start_offset <= log_end_offset`; segment base offsets strictly
//! increase; only the last segment (the active one) is appended to; offsets are
//! never reused, so a rolled segment is named by the LEO at the time of the roll.
//!
//! The high watermark and the last stable offset are not the log's business: the
//! replica manager owns them and passes the bound a reader may see into [`Log::read`].

use std::collections::BTreeMap;
use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use protocol::records::batch::{self, BatchHeader, TimestampType, HEADER_LEN};
use protocol::{Offset, TopicPartition};

use crate::config::{LogConfig, MessageTimestampType};
use crate::env::LogEnv;
use crate::error::{AppendError, StorageError};
use crate::fs::Fs;
use crate::leader_epoch::LeaderEpochCache;
use crate::producer_state::{self, ProducerStateManager, SequenceCheck, SnapshotSync};
pub use crate::read::{ReadOutcome, ReadSlice};
use crate::segment::{BatchInfo, Segment};
use crate::validate::{validate_records, Origin};

mod flush;
mod follower;
mod load;
mod start_at;
mod timestamp;
pub use flush::FlushPlan;
pub use load::LoadState;
pub use timestamp::TimestampLookup;

#[cfg(test)]
mod txn_tests;

#[cfg(test)]
mod follower_tests;

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogAppendInfo {
    pub first_offset: Offset,
    pub last_offset: Offset,
    /// The broker's time when the topic uses LogAppendTime, else -1.
    pub log_append_time: i64,
    pub max_timestamp: i64,
    pub log_start_offset: Offset,
    pub records: i64,
    pub bytes: usize,
    /// The base offset of the segment that a roll closed, to flush in the background.
    pub rolled_segment: Option<i64>,
    /// The batch was a retry of one already appended: these are its original
    /// offsets and nothing was written.
    pub duplicate: bool,
}

#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    topic_partition: TopicPartition,
    config: Arc<LogConfig>,
    env: LogEnv,
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    recovery_point: i64,
    leader_epochs: LeaderEpochCache,
    /// Records appended since the log was opened, and how many of them the last
    /// completed flush covered: `flush.messages` counts the difference.
    appended_messages: i64,
    flushed_messages: i64,
    last_flush_ms: i64,
    producer_state: ProducerStateManager,
    /// Producer snapshots written at rolls without an fsync, `(sequence, offset,
    /// path)`: the next flush that reaches the offset fsyncs them.
    unsynced_snapshots: Vec<(u64, i64, PathBuf)>,
    snapshots_written: u64,
    /// Names created in the log's directory (segments, snapshots) and how many of
    /// those changes a flush has made durable with an fsync of the directory.
    dir_changes: u64,
    dir_changes_synced: u64,
    /// The log's directory was deleted (the topic was): nothing is flushed any more.
    deleted: bool,
}

/// Whether an append may do disk work that can wait on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendMode {
    /// Anything an append needs: a roll (files created, a producer snapshot
    /// written), a new leader epoch entry (an fsynced checkpoint). Blocking threads.
    MayBlock,
    /// Page-cache writes only: an append that would roll or record a new leader
    /// epoch is not made (`Ok(None)`) and nothing changes, so the caller can make it
    /// again with [`AppendMode::MayBlock`] off the async workers.
    PageCacheOnly,
}

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> StorageError {
    let context = context.into();
    move |source| StorageError::Io { context, source }
}

impl Log {
    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producer_state
    }

    /// The first offset of the oldest open transaction: the last stable offset
    /// cannot pass it.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producer_state.first_unstable_offset()
    }

    /// Aborted transactions a read_committed fetch from `start` below `upper` must
    /// report: `(producer id, first offset)`.
    ///
    /// An ABORT marker can lie far past the records it aborts (other transactions
    /// keep the partition busy meanwhile), so the search goes on through later
    /// segments until, as in Kafka, an entry's last stable offset reaches `upper`:
    /// every transaction with records below `upper` had ended by that marker.
    pub fn aborted_transactions(&self, start: i64, upper: i64) -> Vec<(i64, i64)> {
        let first_base = self
            .segments
            .range(..=start)
            .next_back()
            .map(|(b, _)| *b)
            .unwrap_or(i64::MIN);
        let mut out = Vec::new();
        for segment in self.segments.range(first_base..).map(|(_, s)| s) {
            for aborted in segment.aborted_transactions() {
                if aborted.last_offset >= start && aborted.first_offset < upper {
                    out.push((aborted.producer_id, aborted.first_offset));
                }
                if aborted.last_stable_offset >= upper {
                    return out;
                }
            }
        }
        out
    }

    /// Forgets idle producers (`producer.id.expiration.ms`).
    pub fn expire_producers(&mut self, max_idle_ms: i64) -> usize {
        let now = self.env.clock.now_ms();
        self.producer_state.expire(now, max_idle_ms)
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        &self.topic_partition
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &Arc<LogConfig> {
        &self.config
    }

    /// Replaces the config (topic config changed); applies to future appends.
    pub fn set_config(&mut self, config: Arc<LogConfig>) {
        self.config = config;
    }

    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has a segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has a segment")
    }

    pub fn log_start_offset(&self) -> Offset {
        Offset(self.log_start_offset)
    }

    pub fn log_end_offset(&self) -> Offset {
        Offset(self.active().next_offset())
    }

    /// Whether `offset` falls in the active segment: the bytes most recently
    /// appended, which a caught-up reader asks for and the page cache still holds.
    pub fn in_active_segment(&self, offset: i64) -> bool {
        offset >= self.active().base_offset()
    }

    pub fn recovery_point(&self) -> Offset {
        Offset(self.recovery_point)
    }

    pub fn size_in_bytes(&self) -> u64 {
        self.segments.values().map(|s| u64::from(s.size())).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }

    pub fn leader_epochs(&self) -> &LeaderEpochCache {
        &self.leader_epochs
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.leader_epochs.latest().map(|e| e.epoch)
    }

    /// Validates `records` (a client's produce data for this partition), assigns
    /// offsets from the LEO, stamps `leader_epoch` (and the append time when the
    /// topic uses LogAppendTime) and appends them. All or nothing. May roll.
    pub fn append_as_leader(
        &mut self,
        records: &[u8],
        leader_epoch: i32,
        origin: Origin,
    ) -> Result<LogAppendInfo, AppendError> {
        let appended =
            self.append_as_leader_with(records, leader_epoch, origin, AppendMode::MayBlock)?;
        Ok(appended.expect("an append that may block is always made"))
    }

    /// [`Log::append_as_leader`], or with [`AppendMode::PageCacheOnly`] `None` when
    /// the append needs more than a page-cache write (nothing is changed then).
    pub fn append_as_leader_with(
        &mut self,
        records: &[u8],
        leader_epoch: i32,
        origin: Origin,
        mode: AppendMode,
    ) -> Result<Option<LogAppendInfo>, AppendError> {
        assert_ne!(
            origin,
            Origin::Replication,
            "replicated batches go through append_as_follower"
        );
        self.env.dir.check()?;
        let now = self.env.clock.now_ms();
        let validated = validate_records(records, &self.config, now, origin)?;
        // Idempotence: a retried batch is answered with its original offsets.
        for batch in validated.iter().filter(|b| b.header.has_producer_id()) {
            let control = if batch.header.is_control() {
                producer_state::control_type(&records[batch.range.clone()])
            } else {
                None
            };
            if let SequenceCheck::Duplicate {
                first_offset,
                last_offset,
            } = self.producer_state.check(&batch.header, control)?
            {
                return Ok(Some(LogAppendInfo {
                    first_offset: Offset(first_offset),
                    last_offset: Offset(last_offset),
                    log_append_time: -1,
                    max_timestamp: batch.header.max_timestamp,
                    log_start_offset: Offset(self.log_start_offset),
                    records: 0,
                    bytes: 0,
                    rolled_segment: None,
                    duplicate: true,
                }));
            }
        }
        let log_append_time =
            self.config.message_timestamp_type == MessageTimestampType::LogAppendTime;
        // A topic with its own compression.type gets its batches in that codec,
        // as Kafka recompresses them; "producer" keeps what the client sent.
        let recompressed;
        let (records, validated) = match crate::recompress::target_codec(&self.config) {
            Some(target)
                if validated
                    .iter()
                    .any(|b| b.header.compression().ok() != Some(target)) =>
            {
                recompressed =
                    crate::recompress::recompress(records, &validated, target, &self.config)?;
                let revalidated =
                    validate_records(&recompressed, &self.config, now, Origin::Coordinator)?;
                (&recompressed[..], revalidated)
            }
            _ => (records, validated),
        };
        let mut bytes = records.to_vec();
        let first_offset = self.log_end_offset().0;
        let append_time = log_append_time.then_some(now);
        let (infos, max_timestamp, record_count) = stamp_batches(
            &mut bytes,
            &validated,
            first_offset,
            leader_epoch,
            append_time,
        );
        let next = first_offset + record_count;
        let last_offset = next - 1;
        if mode == AppendMode::PageCacheOnly
            && (self.should_roll(bytes.len(), infos[0].max_timestamp, last_offset)
                || self.leader_epochs.would_assign(leader_epoch, first_offset))
        {
            return Ok(None);
        }
        let rolled_segment = self.maybe_roll(
            bytes.len(),
            infos[0].max_timestamp,
            first_offset,
            last_offset,
        )?;
        // The epoch first: when it cannot be recorded, nothing is appended.
        let dir = Arc::clone(&self.env.dir);
        self.leader_epochs
            .assign(leader_epoch, first_offset)
            .map_err(|e| dir.io_failure("writing the leader epoch checkpoint", e, true))?;
        let segment = self.active_mut();
        let size_before = segment.size();
        if let Err(e) = segment.append(&bytes, &infos) {
            let context = format!("appending to {}", segment.log_path().display());
            // Leave no partial batch behind for a reader or the next append. A full
            // disk refuses this append only; one that cannot even be undone, or any
            // other write error, takes the log dir offline.
            let undone = segment
                .file()
                .and_then(|file| file.set_len(u64::from(size_before)));
            if let Err(undo) = &undone {
                dir.mark_offline(format!("{context}: {e}; then cutting it back: {undo}"));
            }
            return Err(dir.io_failure(&context, e, undone.is_ok()).into());
        }
        for (info, batch) in infos.iter().zip(&validated) {
            if !batch.header.has_producer_id() {
                continue;
            }
            let mut header = batch.header;
            header.base_offset = info.base_offset;
            header.max_timestamp = info.max_timestamp;
            let control = if header.is_control() {
                producer_state::control_type(&records[batch.range.clone()])
            } else {
                None
            };
            if let Some(aborted) = self.producer_state.update(&header, control)? {
                self.active_mut().append_aborted(aborted);
            }
        }
        self.appended_messages += record_count;
        Ok(Some(LogAppendInfo {
            first_offset: Offset(first_offset),
            last_offset: Offset(last_offset),
            log_append_time: if log_append_time { now } else { -1 },
            max_timestamp,
            log_start_offset: Offset(self.log_start_offset),
            records: record_count,
            bytes: bytes.len(),
            rolled_segment,
            duplicate: false,
        }))
    }

    /// Rolls when [`Log::should_roll`] says so. The new segment starts at
    /// `first_offset`, the append's first offset: the LEO on a leader, and on a
    /// follower possibly past it (a compacted leader's log has gaps). Returns the
    /// closed segment.
    fn maybe_roll(
        &mut self,
        messages_size: usize,
        first_batch_max_timestamp: i64,
        first_offset: i64,
        max_offset: i64,
    ) -> Result<Option<i64>, StorageError> {
        if !self.should_roll(messages_size, first_batch_max_timestamp, max_offset) {
            return Ok(None);
        }
        tracing::debug!(partition = %self.topic_partition, "rolling segment");
        self.roll_at(first_offset).map(Some)
    }

    /// Whether an append of `messages_size` bytes ending at `max_offset` needs a new
    /// segment: the active one is full by size, age or index, or the new offsets
    /// would not fit a relative offset. An empty segment is never rolled.
    fn should_roll(
        &self,
        messages_size: usize,
        first_batch_max_timestamp: i64,
        max_offset: i64,
    ) -> bool {
        let now = self.env.clock.now_ms();
        let config = Arc::clone(&self.config);
        let segment = self.active();
        let size = u64::from(segment.size());
        let by_size = size > 0 && size + messages_size as u64 > u64::from(config.segment_bytes);
        let waited = match segment.rolling_based_timestamp() {
            Some(first) if first >= 0 => first_batch_max_timestamp.saturating_sub(first),
            _ => now.saturating_sub(segment.created_ms()),
        };
        let jitter = if config.segment_jitter_ms > 0 {
            segment.base_offset().rem_euclid(config.segment_jitter_ms)
        } else {
            0
        };
        let by_time = size > 0 && waited > config.segment_ms - jitter;
        let by_index = segment.index_is_full();
        let by_offset = max_offset - segment.base_offset() > i64::from(i32::MAX);
        // An empty segment is already as fresh as a new one would be.
        size > 0 && (by_size || by_time || by_index || by_offset)
    }

    /// Starts a new active segment at the LEO; returns the base of the old one.
    pub fn roll(&mut self) -> Result<i64, StorageError> {
        self.roll_at(self.log_end_offset().0)
    }

    /// Starts a new active segment at `new_base` (at or past the LEO); returns
    /// the base of the old one.
    fn roll_at(&mut self, new_base: i64) -> Result<i64, StorageError> {
        self.env.dir.check()?;
        let dir = Arc::clone(&self.env.dir);
        assert!(
            new_base >= self.log_end_offset().0,
            "a segment rolled at {new_base} below the log end"
        );
        let old = self.active_mut();
        let old_base = old.base_offset();
        if old_base == new_base {
            return Ok(old_base);
        }
        old.on_become_inactive()
            .map_err(|e| dir.io_failure("writing out a rolled segment's indexes", e, true))?;
        let segment = Segment::create(
            &self.env,
            &self.dir,
            new_base,
            self.config.index_interval_bytes,
            self.config.max_index_entries(),
            self.config.max_time_index_entries(),
        )
        .map_err(|e| {
            let context = format!("rolling {} at {new_base}", self.topic_partition);
            dir.io_failure(&context, e, true)
        })?;
        self.active_mut().release_file();
        self.segments.insert(new_base, segment);
        self.dir_changes += 1;
        // A producer snapshot at every roll bounds the replay after a crash. It is
        // written without an fsync under the lock; the flush that the roll calls
        // for syncs it before the recovery point passes it (Kafka, KAFKA-15046).
        self.producer_state.set_map_end_offset(new_base);
        let path = producer_state::write_snapshot(
            &*self.env.fs,
            &self.dir,
            &self.producer_state,
            SNAPSHOTS_KEPT,
            SnapshotSync::Later,
        )
        .map_err(|e| dir.io_failure("writing a producer snapshot", e, true))?;
        self.snapshots_written += 1;
        self.unsynced_snapshots
            .push((self.snapshots_written, new_base, path));
        // Older ones than the snapshots kept were deleted with their files.
        let excess = self.unsynced_snapshots.len().saturating_sub(SNAPSHOTS_KEPT);
        self.unsynced_snapshots.drain(..excess);
        Ok(old_base)
    }

    /// Finds what a fetch at `offset` may read: whole batches, the first one being
    /// the batch that holds `offset`, none at or past `max_offset` (the high
    /// watermark or last stable offset, exclusive).
    pub fn read(&self, offset: i64, max_offset: i64) -> Result<ReadOutcome, StorageError> {
        self.env.dir.check()?;
        let leo = self.log_end_offset().0;
        if offset < self.log_start_offset || offset > leo {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: leo,
            });
        }
        let bound = max_offset.min(leo);
        if offset >= bound {
            return Ok(ReadOutcome::Empty);
        }
        let start_base = self
            .segments
            .range(..=offset)
            .next_back()
            .map(|(&b, _)| b)
            .unwrap_or(self.log_start_offset);
        for (_, segment) in self.segments.range(start_base..) {
            if segment.base_offset() >= bound {
                break;
            }
            let found = segment
                .translate_offset(offset)
                .map_err(io_err(format!("reading {}", segment.log_path().display())))?;
            let Some((position, header)) = found else {
                continue;
            };
            if header.base_offset >= bound {
                return Ok(ReadOutcome::Empty);
            }
            let limit = if bound < segment.next_offset() {
                match segment.translate_offset(bound).map_err(io_err("reading"))? {
                    Some((bound_position, _)) => bound_position,
                    None => segment.size(),
                }
            } else {
                segment.size()
            };
            if limit <= position {
                return Ok(ReadOutcome::Empty);
            }
            return Ok(ReadOutcome::Data(ReadSlice::new(
                segment
                    .file()
                    .map_err(io_err(format!("opening {}", segment.log_path().display())))?,
                position,
                limit,
                header.size() as u32,
                header.base_offset,
            )));
        }
        Ok(ReadOutcome::Empty)
    }

    /// Reads whole batches for a fetch at `offset` (a convenience over [`Log::read`]
    /// for callers that hold the log anyway, such as tests and internal topics).
    pub fn read_bytes(
        &self,
        offset: i64,
        max_offset: i64,
        max_bytes: usize,
    ) -> Result<Bytes, StorageError> {
        match self.read(offset, max_offset)? {
            ReadOutcome::Empty => Ok(Bytes::new()),
            ReadOutcome::Data(slice) => slice.read(max_bytes, true),
        }
    }

    /// Removes every record at or above `offset` (a follower truncating to its
    /// leader, or a test). Offsets at or past the LEO change nothing.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        self.env.dir.check()?;
        // Any failure leaves the log's files in doubt: the log dir goes offline.
        let dir = Arc::clone(&self.env.dir);
        let fatal = |context: &'static str| {
            let dir = Arc::clone(&dir);
            move |e| dir.io_failure(context, e, false)
        };
        let leo = self.log_end_offset().0;
        if offset >= leo {
            // Nothing to cut, but an epoch this replica recorded as leader and
            // never wrote in may start at the LEO: it goes, as in Kafka, so that
            // the leader's history replaces it.
            return self
                .leader_epochs
                .truncate_from_end(leo)
                .map_err(fatal("leader epoch checkpoint"));
        }
        let offset = offset.max(self.log_start_offset);
        let doomed: Vec<i64> = self.segments.range(offset + 1..).map(|(&b, _)| b).collect();
        let first_base = *self
            .segments
            .keys()
            .next()
            .expect("a log always has a segment");
        let deleted = doomed.iter().any(|b| *b != first_base);
        for base in doomed {
            if base == first_base {
                continue;
            }
            if let Some(segment) = self.segments.remove(&base) {
                segment
                    .delete_files(&*self.env.fs)
                    .map_err(fatal("deleting segment"))?;
            }
        }
        let active = self.active_mut();
        active
            .make_active()
            .map_err(fatal("opening the active segment"))?;
        active
            .truncate_to(offset)
            .map_err(fatal("truncating segment"))?;
        // The cut is durable before anything is written past it: otherwise a power
        // loss could bring back flushed batches beyond it, under offsets the log
        // hands out again.
        active
            .flush()
            .map_err(fatal("syncing a truncated segment"))?;
        if deleted {
            self.env
                .fs
                .sync_dir(&self.dir)
                .map_err(fatal("syncing the log directory"))?;
        }
        // Whole batches go, so the log may now end below `offset`: epochs that
        // start at or past its new end have no batch left.
        let leo = self.log_end_offset().0;
        self.leader_epochs
            .truncate_from_end(leo)
            .map_err(fatal("leader epoch checkpoint"))?;
        self.recovery_point = self.recovery_point.min(leo);
        // Truncation removes whole batches; one straddling the log start takes the
        // start back with it (Kafka: `logStartOffset = min(logStartOffset, target)`).
        self.log_start_offset = self.log_start_offset.min(leo);
        self.env
            .dir
            .set_log_start(&self.topic_partition, self.log_start_offset);
        self.reload_producer_state(leo)?;
        Ok(())
    }

    /// Flushes everything and records the active segment's final time index entry.
    pub fn close(&mut self) -> Result<(), StorageError> {
        self.env.dir.check()?;
        let dir = Arc::clone(&self.env.dir);
        let leo = self.log_end_offset().0;
        self.active_mut()
            .on_become_inactive()
            .map_err(|e| dir.io_failure("closing segment", e, false))?;
        // Segments below the recovery point were flushed (and their indexes written
        // out) already.
        let recovery_point = self.recovery_point;
        for segment in self.segments.values_mut() {
            if segment.next_offset() > recovery_point || segment.base_offset() >= recovery_point {
                segment.flush().map_err(|e| {
                    let context = format!("flushing {}", segment.log_path().display());
                    dir.io_failure(&context, e, false)
                })?;
            }
        }
        self.recovery_point = leo;
        self.flushed_messages = self.appended_messages;
        self.producer_state.set_map_end_offset(leo);
        producer_state::write_snapshot(
            &*self.env.fs,
            &self.dir,
            &self.producer_state,
            SNAPSHOTS_KEPT,
            SnapshotSync::Now,
        )
        .map_err(|e| dir.io_failure("writing a producer snapshot", e, true))?;
        // The newest snapshot is durable: older unsynced ones are only fallbacks.
        self.unsynced_snapshots.clear();
        self.env
            .fs
            .sync_dir(&self.dir)
            .map_err(|e| dir.io_failure("syncing the log directory", e, false))?;
        self.dir_changes_synced = self.dir_changes;
        Ok(())
    }

    /// DeleteRecords: records below `offset` become unreadable and their segments
    /// are deleted once wholly below it. `offset` must not pass the high watermark
    /// (the caller checks). Returns the new log start offset.
    pub fn delete_records_before(
        &mut self,
        offset: i64,
        high_watermark: i64,
    ) -> Result<i64, StorageError> {
        let start = self.delete_records_before_unpersisted(offset, high_watermark)?;
        // Kafka's log-start-offset-checkpoint, written before the answer: a crash
        // cannot bring the deleted records back.
        self.log_start_checkpoint().write()?;
        Ok(start)
    }

    /// [`Log::delete_records_before`] without writing the checkpoint, which the
    /// caller writes with [`Log::log_start_checkpoint`] once it has let go of the
    /// log's lock (an fsync), before it answers.
    pub fn delete_records_before_unpersisted(
        &mut self,
        offset: i64,
        high_watermark: i64,
    ) -> Result<i64, StorageError> {
        self.env.dir.check()?;
        crate::retention::delete_records_before(self, offset, high_watermark)
    }

    /// The log dir's `log-start-offset-checkpoint`, to write without the log.
    pub fn log_start_checkpoint(&self) -> LogStartCheckpoint {
        LogStartCheckpoint {
            dir: Arc::clone(&self.env.dir),
            fs: Arc::clone(&self.env.fs),
        }
    }

    /// One retention pass (`retention.ms`, `retention.bytes`, segments below the
    /// log start offset); see [`crate::retention`].
    pub fn apply_retention(
        &mut self,
        high_watermark: i64,
    ) -> Result<crate::retention::RetentionOutcome, StorageError> {
        self.env.dir.check()?;
        crate::retention::apply(self, high_watermark)
    }

    // ---- narrow access for retention and the cleaner ----

    /// The segments, oldest first. Retention and the cleaner decide from them;
    /// they change the log only through the methods below, which keep its
    /// invariants.
    pub(crate) fn segments(&self) -> impl DoubleEndedIterator<Item = &Segment> + '_ {
        self.segments.values()
    }

    pub(crate) fn segment(&self, base_offset: i64) -> Option<&Segment> {
        self.segments.get(&base_offset)
    }

    pub(crate) fn fs(&self) -> &Arc<dyn Fs> {
        &self.env.fs
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.env.clock.now_ms()
    }

    /// `Err(LogDirOffline)` once the log's directory is offline.
    pub fn check_online(&self) -> Result<(), StorageError> {
        self.env.dir.check()
    }

    /// The error for a failed I/O call; a failure other than a full disk on a
    /// write (`may_fill`) takes the log's directory offline (`log_dir.rs`).
    pub(crate) fn io_failure(
        &self,
        context: &str,
        error: io::Error,
        may_fill: bool,
    ) -> StorageError {
        self.env.dir.io_failure(context, error, may_fill)
    }

    /// Moves the log start offset up to `offset` (at most the LEO); never back.
    pub(crate) fn raise_log_start_offset(&mut self, offset: i64) -> Result<(), StorageError> {
        let offset = offset.min(self.log_end_offset().0);
        if offset > self.log_start_offset {
            self.log_start_offset = offset;
            self.env.dir.set_log_start(&self.topic_partition, offset);
            self.leader_epochs
                .truncate_from_start(offset)
                .map_err(io_err("leader epoch checkpoint"))?;
        }
        Ok(())
    }

    /// Deletes the `count` oldest segments, which retention chose. When that is
    /// every segment, a new active segment is rolled first, so the log always has
    /// one. The log start offset moves up to the first remaining segment. Returns
    /// the bytes deleted.
    pub(crate) fn delete_oldest_segments(&mut self, count: usize) -> Result<u64, StorageError> {
        if count == 0 {
            return Ok(0);
        }
        assert!(
            count <= self.segments.len(),
            "deleting more segments than exist"
        );
        if count == self.segments.len() {
            self.roll()?;
            assert!(
                count < self.segments.len(),
                "a roll left no segment to keep"
            );
        }
        let doomed: Vec<i64> = self.segments.keys().take(count).copied().collect();
        let mut bytes = 0u64;
        let mut gone = Vec::with_capacity(count);
        for base in doomed {
            let segment = self.segments.remove(&base).expect("listed above");
            bytes += u64::from(segment.size());
            gone.push(segment);
        }
        crate::retention::retire(&self.env, &self.dir, gone).map_err(|e| {
            let context = format!("deleting segments of {}", self.topic_partition);
            self.env.dir.io_failure(&context, e, false)
        })?;
        let first_base = *self
            .segments
            .keys()
            .next()
            .expect("a log always has a segment");
        self.raise_log_start_offset(first_base)?;
        self.recovery_point = self.recovery_point.max(self.log_start_offset);
        Ok(bytes)
    }

    /// Compaction's swap: the inactive segments at `replaced` (consecutive, the
    /// first at `base`) leave the log (their files renamed to `.deleted` and freed
    /// in the background), then `install` puts the cleaned segment's files in place
    /// under their final names, and the cleaned segment is loaded in their stead.
    pub(crate) fn replace_segments(
        &mut self,
        replaced: &[i64],
        base: i64,
        install: impl FnOnce() -> io::Result<()>,
    ) -> Result<(), StorageError> {
        let active = self.active().base_offset();
        assert_eq!(
            replaced.first(),
            Some(&base),
            "a cleaned segment keeps its first base"
        );
        assert!(
            replaced
                .iter()
                .all(|b| *b < active && self.segments.contains_key(b)),
            "only existing inactive segments are replaced"
        );
        let gone: Vec<Segment> = replaced
            .iter()
            .filter_map(|b| self.segments.remove(b))
            .collect();
        // A swap cut short leaves the directory for the next start to complete.
        let dir = Arc::clone(&self.env.dir);
        crate::retention::retire(&self.env, &self.dir, gone)
            .map_err(|e| dir.io_failure("deleting a cleaned-over segment", e, false))?;
        install().map_err(|e| dir.io_failure("renaming a .swap segment", e, false))?;
        let (segment, _) = Segment::open(
            &self.env,
            &self.dir,
            base,
            self.config.index_interval_bytes,
            usize::MAX,
            usize::MAX,
            false,
        )
        .map_err(|e| dir.io_failure("opening a cleaned segment", e, false))?;
        self.segments.insert(base, segment);
        Ok(())
    }

    /// Records that the log's directory is being deleted: flushes stop (they would
    /// find its files gone, which is no failure of the log dir).
    pub fn mark_deleted(&mut self) {
        self.deleted = true;
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted
    }

    /// Deletes the whole log directory.
    pub fn delete(self) -> Result<(), StorageError> {
        self.env
            .fs
            .remove_dir_all(&self.dir)
            .map_err(io_err(format!("deleting {}", self.dir.display())))
    }
}

fn crc_of(head: &[u8], body: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&head[batch::ATTRIBUTES_AT..HEADER_LEN]);
    crc32c::crc32c_append(crc, body)
}

/// Stamps the broker-owned fields of each validated batch in `bytes` (offsets from
/// `first_offset`, the leader epoch, the append time or the corrected max
/// timestamp). Returns the batches as indexed, the largest max timestamp and the
/// record count.
fn stamp_batches(
    bytes: &mut [u8],
    validated: &[crate::validate::ValidatedBatch],
    first_offset: i64,
    leader_epoch: i32,
    append_time: Option<i64>,
) -> (Vec<BatchInfo>, i64, i64) {
    let mut infos = Vec::with_capacity(validated.len());
    let mut next = first_offset;
    let mut max_timestamp = -1i64;
    let mut record_count = 0i64;
    for batch in validated {
        let piece = &mut bytes[batch.range.clone()];
        let (head, body) = piece.split_at_mut(HEADER_LEN);
        batch::patch_offset_and_epoch(head, next, leader_epoch);
        let batch_max = if let Some(now) = append_time {
            batch::patch_log_append_time(head, body, now);
            now
        } else {
            if batch.header.max_timestamp != batch.max_timestamp
                || batch.header.timestamp_type() != TimestampType::CreateTime
            {
                // Kafka corrects a CreateTime batch's max timestamp to what its
                // records hold.
                head[batch::MAX_TIMESTAMP_AT..batch::MAX_TIMESTAMP_AT + 8]
                    .copy_from_slice(&batch.max_timestamp.to_be_bytes());
                let attributes = batch.header.attributes & !(1 << 3);
                head[batch::ATTRIBUTES_AT..batch::ATTRIBUTES_AT + 2]
                    .copy_from_slice(&attributes.to_be_bytes());
                let crc = crc_of(head, body);
                batch::set_crc(head, crc);
            }
            batch.max_timestamp
        };
        max_timestamp = max_timestamp.max(batch_max);
        let count = i64::from(batch.header.records_count);
        infos.push(BatchInfo {
            base_offset: next,
            last_offset: next + count - 1,
            max_timestamp: batch_max,
            size: batch.range.len() as u32,
        });
        next += count;
        record_count += count;
    }
    (infos, max_timestamp, record_count)
}

/// The log dir's log start offsets, written (fsynced) outside a log's lock.
#[derive(Debug)]
pub struct LogStartCheckpoint {
    dir: Arc<crate::log_dir::LogDirState>,
    fs: Arc<dyn Fs>,
}

impl LogStartCheckpoint {
    pub fn write(&self) -> Result<(), StorageError> {
        self.dir.write_log_starts(&*self.fs)
    }
}

/// How many producer snapshots a log keeps.
const SNAPSHOTS_KEPT: usize = 3;

/// Scans every batch header in the log, in order (tests and tools).
pub fn for_each_batch(log: &Log, mut visit: impl FnMut(&BatchHeader)) -> io::Result<()> {
    for segment in log.segments.values() {
        segment.scan_headers(0, |_, header| {
            visit(header);
            ControlFlow::Continue(())
        })?;
    }
    Ok(())
}
