//! Opening a log: listing its segments, recovering those that may hold unflushed
//! bytes after an unclean stop, and rebuilding the producer state from the newest
//! snapshot and the batches after it.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use protocol::TopicPartition;

use super::{io_err, Log};
use crate::config::LogConfig;
use crate::env::LogEnv;
use crate::error::StorageError;
use crate::fs::Fs;
use crate::leader_epoch::LeaderEpochCache;
use crate::producer_state::{self, ProducerStateManager};
use crate::segment::Segment;
use crate::validate::Origin;

/// How the log was left, as the log manager knows it at start-up.
#[derive(Debug, Clone, Copy)]
pub struct LoadState {
    pub recovery_point: i64,
    pub log_start_offset: i64,
    pub clean_shutdown: bool,
}

impl Default for LoadState {
    fn default() -> Self {
        LoadState {
            recovery_point: 0,
            log_start_offset: 0,
            clean_shutdown: true,
        }
    }
}

/// Segment base offsets found in `dir`, from `{base_offset:020}.log` names.
fn list_segments(fs: &dyn Fs, dir: &Path) -> io::Result<Vec<i64>> {
    let mut offsets = Vec::new();
    for entry in fs.list_dir(dir)? {
        let name = entry.name.as_str();
        if let Some(stem) = name.strip_suffix(".log") {
            if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
                if let Ok(offset) = stem.parse::<i64>() {
                    offsets.push(offset);
                }
            }
        } else if [".deleted", ".cleaned", ".swap", ".tmp"]
            .iter()
            .any(|suffix| name.ends_with(suffix))
        {
            // Leftovers of an interrupted delete or clean (swaps past their commit
            // point were completed before this): never part of the log.
            let _ = fs.remove_file(&dir.join(name));
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

impl Log {
    /// Opens the log in `dir`, creating the directory and a first segment if needed,
    /// and recovering every segment at or after the recovery point unless the
    /// broker shut down cleanly.
    pub fn open(
        dir: &Path,
        topic_partition: TopicPartition,
        config: Arc<LogConfig>,
        env: &LogEnv,
        state: LoadState,
    ) -> Result<Log, StorageError> {
        let fs = &env.fs;
        fs.create_dir_all(dir)
            .map_err(io_err(format!("creating {}", dir.display())))?;
        let now = env.clock.now_ms();
        crate::cleaner::complete_swaps(&**fs, dir).map_err(io_err(format!(
            "completing interrupted cleaning in {}",
            dir.display()
        )))?;
        let offsets =
            list_segments(&**fs, dir).map_err(io_err(format!("listing {}", dir.display())))?;
        let mut segments = BTreeMap::new();
        // The segment holding the recovery point and all after it may hold unflushed bytes.
        let first_unflushed = offsets
            .iter()
            .copied()
            .rfind(|&o| o <= state.recovery_point)
            .unwrap_or(0);
        let mut truncated_at: Option<i64> = None;
        for &base in &offsets {
            if truncated_at.is_some() {
                tracing::warn!(partition = %topic_partition, segment = base, "deleting segment after a corrupt one");
                crate::segment::delete_segment_files(&**fs, dir, base)
                    .map_err(io_err("removing segment"))?;
                continue;
            }
            let recover = !state.clean_shutdown && base >= first_unflushed;
            let (segment, outcome) = Segment::open(
                env,
                dir,
                base,
                config.index_interval_bytes,
                config.max_index_entries(),
                config.max_time_index_entries(),
                recover,
            )
            .map_err(io_err(format!(
                "opening segment {base} of {topic_partition}"
            )))?;
            if let Some(outcome) = outcome {
                // Only a cut in the unflushed part drops the segments after it (they
                // were written after the lost bytes, and no flush covered them), as
                // Kafka's LogLoader does. A segment below the recovery point that
                // needed rebuilding (a torn index), or one that now ends at or below
                // the log start offset (records DeleteRecords had removed: the
                // recovery point moves up with the log start, as Kafka's does, so
                // their tail can be torn by a power loss), is cut alone: the
                // segments after it hold flushed records.
                if outcome.truncated_bytes > 0
                    && recover
                    && segment.next_offset() > state.log_start_offset
                {
                    tracing::warn!(partition = %topic_partition, segment = base, truncated_bytes = outcome.truncated_bytes, valid_bytes = outcome.valid_bytes, "recovery cut an invalid tail");
                    truncated_at = Some(base);
                } else if outcome.truncated_bytes > 0 {
                    tracing::warn!(partition = %topic_partition, segment = base, truncated_bytes = outcome.truncated_bytes, log_start_offset = state.log_start_offset, "recovery cut an invalid tail below the recovery point or the log start offset; the segments after it stay");
                }
            }
            if let Some((_, previous)) = segments.iter().next_back() {
                let previous: &Segment = previous;
                if segment.base_offset() < previous.next_offset() {
                    return Err(StorageError::Corrupt(
                        dir.to_path_buf(),
                        format!(
                            "segment {base} starts below the end {} of the segment before it",
                            previous.next_offset()
                        ),
                    ));
                }
            }
            segments.insert(base, segment);
        }
        let leo = segments.values().next_back().map(Segment::next_offset);
        if leo.is_some_and(|leo| leo < state.log_start_offset) {
            // A crash took records the log start offset had already passed (they
            // were never flushed): start over there, as Kafka's LogLoader does, so
            // that offsets below it are never handed out again.
            tracing::warn!(partition = %topic_partition, log_start_offset = state.log_start_offset, "the log ends below its start offset after recovery; starting it afresh there");
            for (base, segment) in std::mem::take(&mut segments) {
                drop(segment);
                crate::segment::delete_segment_files(&**fs, dir, base)
                    .map_err(io_err("removing segment"))?;
            }
        }
        if segments.is_empty() {
            let base = state.log_start_offset.max(0);
            let segment = Segment::create(
                env,
                dir,
                base,
                config.index_interval_bytes,
                config.max_index_entries(),
                config.max_time_index_entries(),
            )
            .map_err(io_err(format!(
                "creating first segment of {topic_partition}"
            )))?;
            segments.insert(base, segment);
        }
        segments
            .values_mut()
            .next_back()
            .expect("a log always has a segment")
            .make_active()
            .map_err(io_err(format!(
                "opening the active segment of {topic_partition}"
            )))?;
        let mut log = Log {
            dir: dir.to_path_buf(),
            topic_partition,
            config,
            env: env.clone(),
            segments,
            log_start_offset: 0,
            recovery_point: 0,
            leader_epochs: LeaderEpochCache::load(Arc::clone(fs), dir),
            appended_messages: 0,
            flushed_messages: 0,
            last_flush_ms: now,
            producer_state: ProducerStateManager::new(0),
            unsynced_snapshots: Vec::new(),
            snapshots_written: 0,
            dir_changes: 0,
            dir_changes_synced: 0,
            deleted: false,
        };
        let first_base = *log.segments.keys().next().expect("at least one segment");
        let leo = log.log_end_offset().0;
        log.log_start_offset = state.log_start_offset.max(first_base).min(leo);
        env.dir
            .set_log_start(&log.topic_partition, log.log_start_offset);
        log.recovery_point = state.recovery_point.clamp(log.log_start_offset, leo);
        log.leader_epochs
            .truncate_from_end(leo)
            .map_err(io_err("leader epoch checkpoint"))?;
        log.leader_epochs
            .truncate_from_start(log.log_start_offset)
            .map_err(io_err("leader epoch checkpoint"))?;
        // Producer state: the newest snapshot the log is known to cover, then the
        // batches after it (all of the unflushed part after an unclean stop).
        let trusted_up_to = if state.clean_shutdown {
            leo
        } else {
            first_unflushed.min(leo)
        };
        log.reload_producer_state(trusted_up_to)?;
        Ok(log)
    }

    /// Rebuilds the producer state from the newest snapshot at or below
    /// `max_snapshot_offset` and the log after it, re-indexing aborted transactions
    /// the transaction indexes lack.
    pub(super) fn reload_producer_state(
        &mut self,
        max_snapshot_offset: i64,
    ) -> Result<(), StorageError> {
        let leo = self.log_end_offset().0;
        let fs = &*self.env.fs;
        producer_state::delete_snapshots_above(fs, &self.dir, leo)
            .map_err(io_err("deleting stale producer snapshots"))?;
        let mut state = producer_state::load_latest_snapshot(fs, &self.dir, max_snapshot_offset)
            .unwrap_or_else(|| ProducerStateManager::new(self.log_start_offset));
        let from = state.map_end_offset().max(self.log_start_offset);
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        for (i, base) in bases.iter().enumerate() {
            let next_base = bases.get(i + 1).copied().unwrap_or(i64::MAX);
            if next_base <= from {
                continue;
            }
            let segment = &self.segments[base];
            let mut batches = Vec::new();
            let start = segment
                .translate_offset(from)
                .map_err(io_err("replaying producer state"))?
                .map(|(p, _)| p)
                .unwrap_or(segment.size());
            segment
                .scan_headers(start, |position, header| {
                    batches.push((position, *header));
                    std::ops::ControlFlow::Continue(())
                })
                .map_err(io_err("replaying producer state"))?;
            let mut aborted_here = Vec::new();
            for (position, header) in batches {
                if header.last_offset() < from || !header.has_producer_id() {
                    continue;
                }
                let control = if header.is_control() {
                    let bytes = segment
                        .read_at(position, header.size() as u32)
                        .map_err(io_err("reading a control batch"))?;
                    producer_state::control_type(&bytes)
                } else {
                    None
                };
                match state.update_from(Origin::Replication, &header, control) {
                    Ok(Some(aborted)) => aborted_here.push(aborted),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(partition = %self.topic_partition, error = %e, "inconsistent producer state while replaying")
                    }
                }
            }
            let segment = self.segments.get_mut(base).expect("listed above");
            for aborted in aborted_here {
                segment.append_aborted(aborted);
            }
        }
        self.producer_state = state;
        Ok(())
    }
}
