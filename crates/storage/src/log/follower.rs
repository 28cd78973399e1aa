//! A follower's appends: batches fetched from the leader, written byte for byte
//! with the leader's offsets and leader epochs (Kafka's `appendAsFollower`), so
//! replicas are identical up to the high watermark.
//!
//! The leader validated and assigned everything; a follower checks only that the
//! bytes are whole batches with good CRCs, that offsets grow and that the first
//! one is not below its log end (`validate::validate_replicated`). It then keeps
//! what the leader keeps: the leader epoch cache from each batch's epoch, the
//! producer state (last sequences, open transactions, markers, so a retry after a
//! failover is answered as a duplicate and read_committed stays right) and the
//! transaction index.

use std::sync::Arc;

use protocol::Offset;

use super::{Log, LogAppendInfo};
use crate::error::AppendError;
use crate::producer_state;
use crate::segment::BatchInfo;
use crate::validate::{validate_replicated, Origin, ReplicatedBatch};

impl Log {
    /// Appends `records` fetched from the leader of `leader_epoch` (the epoch this
    /// replica follows) at the log end. Batches of a higher epoch, and a batch cut
    /// short at the end, are left out; when nothing is left, nothing is written and
    /// `records` is 0.
    pub fn append_as_follower(
        &mut self,
        records: &[u8],
        leader_epoch: i32,
    ) -> Result<LogAppendInfo, AppendError> {
        self.env.dir.check()?;
        let batches = validate_replicated(records, leader_epoch)?;
        let leo = self.log_end_offset().0;
        let (Some(first), Some(last)) = (batches.first(), batches.last()) else {
            return Ok(self.nothing_appended(leo));
        };
        if first.header.base_offset < leo {
            return Err(AppendError::InvalidRecord(format!(
                "Unexpected offset in append to {}. First offset {} is less than the next offset {}",
                self.topic_partition, first.header.base_offset, leo
            )));
        }
        let size = last.range.end - first.range.start;
        if size > self.config.segment_bytes as usize {
            return Err(AppendError::RecordListTooLarge {
                size,
                max: self.config.segment_bytes,
            });
        }
        self.append_replicated(records, &batches)
    }

    fn nothing_appended(&self, leo: i64) -> LogAppendInfo {
        LogAppendInfo {
            first_offset: Offset(leo),
            last_offset: Offset(leo - 1),
            log_append_time: -1,
            max_timestamp: -1,
            log_start_offset: Offset(self.log_start_offset),
            records: 0,
            bytes: 0,
            rolled_segment: None,
            duplicate: false,
        }
    }

    fn append_replicated(
        &mut self,
        records: &[u8],
        batches: &[ReplicatedBatch],
    ) -> Result<LogAppendInfo, AppendError> {
        let first = &batches[0];
        let last = batches.last().expect("at least one batch");
        let bytes = &records[first.range.start..last.range.end];
        let first_offset = first.header.base_offset;
        let last_offset = last.header.last_offset();
        let infos: Vec<BatchInfo> = batches
            .iter()
            .map(|b| BatchInfo {
                base_offset: b.header.base_offset,
                last_offset: b.header.last_offset(),
                max_timestamp: b.header.max_timestamp,
                size: b.range.len() as u32,
            })
            .collect();
        let rolled_segment = self.maybe_roll(
            bytes.len(),
            infos[0].max_timestamp,
            first_offset,
            last_offset,
        )?;
        let active_base = self.active().base_offset();
        if last_offset - active_base > i64::from(i32::MAX) {
            // Only an empty active segment is not rolled; its offsets would not fit.
            return Err(AppendError::InvalidRecord(format!(
                "offsets {first_offset}..={last_offset} do not fit the empty segment at {active_base}"
            )));
        }
        // The epochs first: when they cannot be recorded, nothing is appended.
        let dir = Arc::clone(&self.env.dir);
        for batch in batches {
            self.leader_epochs
                .assign(
                    batch.header.partition_leader_epoch,
                    batch.header.base_offset,
                )
                .map_err(|e| dir.io_failure("writing the leader epoch checkpoint", e, true))?;
        }
        let segment = self.active_mut();
        let size_before = segment.size();
        if let Err(e) = segment.append(bytes, &infos) {
            let context = format!("appending to {}", segment.log_path().display());
            let undone = segment
                .file()
                .and_then(|file| file.set_len(u64::from(size_before)));
            if let Err(undo) = &undone {
                dir.mark_offline(format!("{context}: {e}; then cutting it back: {undo}"));
            }
            return Err(dir.io_failure(&context, e, undone.is_ok()).into());
        }
        let mut record_count = 0i64;
        let mut max_timestamp = -1i64;
        for batch in batches {
            record_count += i64::from(batch.header.records_count);
            max_timestamp = max_timestamp.max(batch.header.max_timestamp);
            if !batch.header.has_producer_id() {
                continue;
            }
            let control = if batch.header.is_control() {
                producer_state::control_type(&records[batch.range.clone()])
            } else {
                None
            };
            let aborted = self
                .producer_state
                .update_from(Origin::Replication, &batch.header, control)
                .expect("a replicated batch is never refused");
            if let Some(aborted) = aborted {
                self.active_mut().append_aborted(aborted);
            }
        }
        self.producer_state.set_map_end_offset(last_offset + 1);
        self.appended_messages += record_count;
        Ok(LogAppendInfo {
            first_offset: Offset(first_offset),
            last_offset: Offset(last_offset),
            log_append_time: -1,
            max_timestamp,
            log_start_offset: Offset(self.log_start_offset),
            records: record_count,
            bytes: bytes.len(),
            rolled_segment,
            duplicate: false,
        })
    }

    /// Records that this replica leads `leader_epoch` from `start_offset` (its
    /// LEO when it became leader; Kafka's `assignEpochStartOffset`), before it
    /// appends anything in that epoch: a follower that wrote in a later epoch of
    /// a deposed leader can then find where its log diverges.
    pub fn assign_epoch_start_offset(
        &mut self,
        leader_epoch: i32,
        start_offset: i64,
    ) -> Result<(), crate::StorageError> {
        self.env.dir.check()?;
        let dir = Arc::clone(&self.env.dir);
        self.leader_epochs
            .assign(leader_epoch, start_offset)
            .map_err(|e| dir.io_failure("writing the leader epoch checkpoint", e, true))
    }
}
