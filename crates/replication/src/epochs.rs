//! A leader's answers about leader epochs (KIP-101/279 truncation, KIP-320
//! fencing): OffsetForLeaderEpoch, and whether a follower's fetch diverges from
//! this log before anything is read (Kafka's `Partition.readRecords` and
//! `lastOffsetForLeaderEpoch`).
//!
//! A follower fetches at its log end offset, naming the epoch of its last batch
//! (`last_fetched_epoch`). The leader looks up where that epoch ends in its own
//! log. If its own history has no such epoch (it answers a lower one) or the
//! epoch ended before the fetch offset, the follower's tail is not the leader's:
//! the answer is a diverging epoch `{epoch, end_offset}` and no records, and the
//! follower truncates to where both logs agree, then fetches again.

use storage::leader_epoch::LeaderEpochCache;
use storage::StorageError;

use crate::error::ReplicationError;
use crate::events::EpochEndOffset;
use crate::partition::Partition;

/// Kafka's UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET answer.
pub const UNDEFINED_EPOCH_END: EpochEndOffset = EpochEndOffset {
    leader_epoch: -1,
    end_offset: -1,
};

/// How a follower's fetch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchStart {
    /// Read from the fetch offset.
    Read,
    /// Answer this diverging epoch and no records.
    Diverging(EpochEndOffset),
}

/// The log facts the answers need, read under the log's lock.
#[derive(Debug, Clone, Copy)]
pub struct LogEpochs<'a> {
    pub epochs: &'a LeaderEpochCache,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

impl LogEpochs<'_> {
    fn end_offset_for(&self, leader_epoch: i32) -> EpochEndOffset {
        self.epochs
            .end_offset_for(leader_epoch, self.log_end_offset)
            .map_or(UNDEFINED_EPOCH_END, |(leader_epoch, end_offset)| {
                EpochEndOffset {
                    leader_epoch,
                    end_offset,
                }
            })
    }
}

impl Partition {
    /// OffsetForLeaderEpoch for one partition (Kafka's
    /// `Partition.lastOffsetForLeaderEpoch` with `fetchOnlyFromLeader`): the
    /// request's leader epoch, when it names one, is checked first
    /// (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH, on a follower too, as
    /// `getLocalLog` does), then this replica must lead (NOT_LEADER_OR_FOLLOWER);
    /// the answer is where `leader_epoch` ends here, or UNDEFINED (-1, -1) when
    /// this log has no such epoch. Only -1 means "no epoch" here (the request
    /// handler maps it to `None`); any other negative epoch is older than ours.
    pub fn last_offset_for_leader_epoch(
        &self,
        current_leader_epoch: Option<i32>,
        leader_epoch: i32,
        log: LogEpochs<'_>,
    ) -> Result<EpochEndOffset, ReplicationError> {
        match current_leader_epoch {
            Some(requested) if requested < 0 => {
                return Err(ReplicationError::FencedLeaderEpoch {
                    tp: self.topic_partition().clone(),
                    requested,
                    current: self.leader_epoch(),
                })
            }
            _ => self.check_leader_epoch(current_leader_epoch)?,
        }
        self.check_read(None)?;
        Ok(log.end_offset_for(leader_epoch))
    }

    /// Whether a follower's fetch at `fetch_offset`, whose last batch is of
    /// `last_fetched_epoch` (negative: none, a follower with an empty log or no
    /// epochs), diverges from this log. Call after
    /// [`Partition::check_follower_fetch`]. OFFSET_OUT_OF_RANGE when this log
    /// cannot place the epoch or the fetch is below the log start.
    pub fn follower_fetch_start(
        &self,
        last_fetched_epoch: i32,
        fetch_offset: i64,
        log: LogEpochs<'_>,
    ) -> Result<FetchStart, ReplicationError> {
        if last_fetched_epoch < 0 {
            return Ok(FetchStart::Read);
        }
        let out_of_range = || {
            ReplicationError::Storage(StorageError::OffsetOutOfRange {
                requested: fetch_offset,
                log_start_offset: log.log_start_offset,
                log_end_offset: log.log_end_offset,
            })
        };
        let end = log.end_offset_for(last_fetched_epoch);
        if end == UNDEFINED_EPOCH_END {
            return Err(out_of_range());
        }
        if fetch_offset < log.log_start_offset {
            return Err(out_of_range());
        }
        if end.leader_epoch < last_fetched_epoch || end.end_offset < fetch_offset {
            return Ok(FetchStart::Diverging(end));
        }
        Ok(FetchStart::Read)
    }
}

#[cfg(test)]
#[path = "epochs_tests.rs"]
mod tests;
