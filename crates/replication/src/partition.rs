//! One partition as this broker hosts it: its log plus the replication state Kafka
//! keeps beside it (leader, leader epoch, replicas, ISR, high watermark).
//!
//! The high watermark (HW) is the offset below which every ISR member has the
//! records: `min(LEO)` over the ISR. Consumers read below it. With this broker the
//! only ISR member, the HW is the leader's LEO as soon as an append returns; when
//! followers arrive, their fetches move it (and wake acks=all producers).
//!
//! Invariants: `log_start_offset <= high_watermark <= log_end_offset`; the leader
//! epoch only grows.

use std::sync::{Arc, Mutex, MutexGuard};

use protocol::TopicPartition;
use storage::log::{LogAppendInfo, ReadOutcome};
use storage::{AppendError, Origin, SharedLog, StorageError};
use uuid::Uuid;

use crate::event::Event;

/// Why a partition operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error("this broker is not the leader of {0}")]
    NotLeaderOrFollower(TopicPartition),
    #[error("unknown topic or partition {0}")]
    UnknownTopicOrPartition(String),
    #[error("{tp}: in-sync replicas {isr} are fewer than min.insync.replicas {min}")]
    NotEnoughReplicas {
        tp: TopicPartition,
        isr: usize,
        min: i32,
    },
    #[error("{tp}: leader epoch {requested} is older than the current {current}")]
    FencedLeaderEpoch {
        tp: TopicPartition,
        requested: i32,
        current: i32,
    },
    #[error("{tp}: leader epoch {requested} is newer than the current {current}")]
    UnknownLeaderEpoch {
        tp: TopicPartition,
        requested: i32,
        current: i32,
    },
    #[error(transparent)]
    Append(#[from] AppendError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Whether a reader sees uncommitted transactional records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationLevel {
    ReadUncommitted,
    ReadCommitted,
}

impl IsolationLevel {
    pub fn from_i8(value: i8) -> IsolationLevel {
        if value == 1 {
            IsolationLevel::ReadCommitted
        } else {
            IsolationLevel::ReadUncommitted
        }
    }
}

#[derive(Debug, Clone)]
pub struct PartitionState {
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub high_watermark: i64,
}

/// What a read found, with the offsets a fetch response reports.
#[derive(Debug, Clone)]
pub struct PartitionRead {
    pub outcome: ReadOutcome,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// For read_committed: aborted transactions `(producer id, first offset)` that
    /// overlap what may be read.
    pub aborted_transactions: Vec<(i64, i64)>,
}

/// What an append did, and what the caller should fsync.
#[derive(Debug, Clone)]
pub struct AppendOutcome {
    pub info: LogAppendInfo,
    /// `flush.messages`/`flush.ms` ask for an fsync before acknowledging.
    pub flush_now: bool,
    /// A segment was closed by a roll: fsync up to here in the background.
    pub flush_rolled_up_to: Option<i64>,
}

#[derive(Debug)]
pub struct Partition {
    topic_partition: TopicPartition,
    topic_id: Uuid,
    node_id: i32,
    log: SharedLog,
    state: Mutex<PartitionState>,
    appended: Event,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Partition {
    pub fn new(
        topic_partition: TopicPartition,
        topic_id: Uuid,
        node_id: i32,
        log: SharedLog,
        state: PartitionState,
    ) -> Partition {
        let partition = Partition {
            topic_partition,
            topic_id,
            node_id,
            log,
            state: Mutex::new(state),
            appended: Event::new(),
        };
        partition.maybe_increment_high_watermark();
        partition
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        &self.topic_partition
    }

    pub fn topic_id(&self) -> Uuid {
        self.topic_id
    }

    pub fn log(&self) -> &SharedLog {
        &self.log
    }

    pub fn state(&self) -> PartitionState {
        lock(&self.state).clone()
    }

    /// Signalled after every append (and HW move): delayed fetches wait on it.
    pub fn append_event(&self) -> &Event {
        &self.appended
    }

    pub fn is_leader(&self) -> bool {
        lock(&self.state).leader == self.node_id
    }

    /// Applies the controller's view: leader, epochs, replicas and ISR.
    pub fn update_state(
        &self,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
    ) {
        {
            let mut state = lock(&self.state);
            assert!(
                leader_epoch >= state.leader_epoch,
                "{}: leader epoch went back from {} to {leader_epoch}",
                self.topic_partition,
                state.leader_epoch
            );
            state.leader = leader;
            state.leader_epoch = leader_epoch;
            state.partition_epoch = partition_epoch;
            state.replicas = replicas;
            state.isr = isr;
        }
        self.maybe_increment_high_watermark();
        self.appended.notify();
    }

    /// HW = min LEO over the ISR. Only this broker's LEO is known until followers
    /// exist, so with an ISR of one the HW follows the leader's LEO.
    fn maybe_increment_high_watermark(&self) {
        let leo = lock(&self.log).log_end_offset().0;
        let mut state = lock(&self.state);
        if state.leader == self.node_id && state.isr.len() <= 1 && leo > state.high_watermark {
            state.high_watermark = leo;
        }
    }

    fn check_leader_epoch(
        &self,
        state: &PartitionState,
        current_leader_epoch: Option<i32>,
    ) -> Result<(), ReplicationError> {
        match current_leader_epoch {
            Some(requested) if requested >= 0 && requested < state.leader_epoch => {
                Err(ReplicationError::FencedLeaderEpoch {
                    tp: self.topic_partition.clone(),
                    requested,
                    current: state.leader_epoch,
                })
            }
            Some(requested) if requested > state.leader_epoch => {
                Err(ReplicationError::UnknownLeaderEpoch {
                    tp: self.topic_partition.clone(),
                    requested,
                    current: state.leader_epoch,
                })
            }
            _ => Ok(()),
        }
    }

    /// Appends a producer's records as leader. `required_acks` -1 needs the ISR to
    /// be at least `min.insync.replicas`.
    pub fn append_as_leader(
        &self,
        records: &[u8],
        required_acks: i16,
        origin: Origin,
    ) -> Result<AppendOutcome, ReplicationError> {
        let (leader_epoch, isr_size) = {
            let state = lock(&self.state);
            if state.leader != self.node_id {
                return Err(ReplicationError::NotLeaderOrFollower(
                    self.topic_partition.clone(),
                ));
            }
            (state.leader_epoch, state.isr.len())
        };
        let (info, flush_now) = {
            let mut log = lock(&self.log);
            let min_isr = log.config().min_insync_replicas;
            if required_acks == -1 && (isr_size as i32) < min_isr {
                return Err(ReplicationError::NotEnoughReplicas {
                    tp: self.topic_partition.clone(),
                    isr: isr_size,
                    min: min_isr,
                });
            }
            let info = log.append_as_leader(records, leader_epoch, origin)?;
            (info, log.flush_due())
        };
        let flush_rolled_up_to = info.rolled_segment.map(|_| info.first_offset.0);
        self.maybe_increment_high_watermark();
        self.appended.notify();
        Ok(AppendOutcome {
            info,
            flush_now,
            flush_rolled_up_to,
        })
    }

    /// fsyncs the log up to `up_to` (exclusive). Blocking: call off the async runtime.
    pub fn flush(&self, up_to: i64) -> Result<(), ReplicationError> {
        let plan = lock(&self.log)
            .flush_plan(up_to)
            .map_err(|e| StorageError::io("preparing flush", e))?;
        plan.sync()
            .map_err(|e| StorageError::io(format!("flushing {}", self.topic_partition), e))?;
        lock(&self.log).complete_flush(&plan);
        Ok(())
    }

    /// Finds what a consumer fetch at `offset` may read, bounded by the HW
    /// (or the last stable offset for read_committed).
    pub fn read(
        &self,
        offset: i64,
        isolation: IsolationLevel,
        current_leader_epoch: Option<i32>,
    ) -> Result<PartitionRead, ReplicationError> {
        let high_watermark = {
            let state = lock(&self.state);
            if state.leader != self.node_id {
                return Err(ReplicationError::NotLeaderOrFollower(
                    self.topic_partition.clone(),
                ));
            }
            self.check_leader_epoch(&state, current_leader_epoch)?;
            state.high_watermark
        };
        let log = lock(&self.log);
        let last_stable_offset = log
            .first_unstable_offset()
            .map_or(high_watermark, |first| first.min(high_watermark));
        let bound = match isolation {
            IsolationLevel::ReadUncommitted => high_watermark,
            IsolationLevel::ReadCommitted => last_stable_offset,
        };
        let outcome = log.read(offset, bound)?;
        let aborted_transactions = match isolation {
            IsolationLevel::ReadCommitted => log.aborted_transactions(offset, bound),
            IsolationLevel::ReadUncommitted => Vec::new(),
        };
        Ok(PartitionRead {
            outcome,
            high_watermark,
            last_stable_offset,
            log_start_offset: log.log_start_offset().0,
            aborted_transactions,
        })
    }

    /// The last stable offset: the high watermark, held back by the oldest open
    /// transaction.
    pub fn last_stable_offset(&self) -> i64 {
        let high_watermark = self.high_watermark();
        lock(&self.log)
            .first_unstable_offset()
            .map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// Offsets for ListOffsets: (offset, timestamp, leader epoch) for a timestamp or
    /// one of Kafka's special values (-1 latest, -2 earliest, -3 max timestamp,
    /// -4 earliest local, -5 latest tiered). `None` for an unknown special value.
    pub fn list_offset(
        &self,
        timestamp: i64,
        isolation: IsolationLevel,
        current_leader_epoch: Option<i32>,
    ) -> Result<Option<(i64, i64, i32)>, ReplicationError> {
        let (high_watermark, leader_epoch) = {
            let state = lock(&self.state);
            if state.leader != self.node_id {
                return Err(ReplicationError::NotLeaderOrFollower(
                    self.topic_partition.clone(),
                ));
            }
            self.check_leader_epoch(&state, current_leader_epoch)?;
            (state.high_watermark, state.leader_epoch)
        };
        let (last_fetchable, lookup) = {
            let log = lock(&self.log);
            let last_fetchable = match isolation {
                IsolationLevel::ReadUncommitted => high_watermark,
                IsolationLevel::ReadCommitted => log
                    .first_unstable_offset()
                    .map_or(high_watermark, |first| first.min(high_watermark)),
            };
            let epoch_of = |offset: i64| log.leader_epochs().epoch_for_offset(offset).unwrap_or(-1);
            let lookup = match timestamp {
                -1 => return Ok(Some((last_fetchable, -1, leader_epoch))),
                -2 | -4 => {
                    let start = log.log_start_offset().0;
                    return Ok(Some((start, -1, epoch_of(start))));
                }
                -5 => return Ok(Some((-1, -1, -1))),
                -3 => log.max_timestamp_lookup()?,
                t if t >= 0 => log.timestamp_lookup(t)?,
                _ => return Ok(None),
            };
            (last_fetchable, lookup)
        };
        // The one batch that answers is read and skimmed without the log's lock.
        let found = match lookup {
            Some(lookup) => lookup.resolve()?,
            None => None,
        };
        Ok(Some(match found {
            Some((offset, ts)) if offset < last_fetchable => {
                let epoch = lock(&self.log).epoch_for_offset(offset);
                (offset, ts, epoch.unwrap_or(-1))
            }
            _ => (-1, -1, -1),
        }))
    }

    /// DeleteRecords: makes records below `offset` unreadable (`-1`: the high
    /// watermark). Returns the new log start offset (the "low watermark").
    pub fn delete_records(&self, offset: i64) -> Result<i64, ReplicationError> {
        let high_watermark = {
            let state = lock(&self.state);
            if state.leader != self.node_id {
                return Err(ReplicationError::NotLeaderOrFollower(
                    self.topic_partition.clone(),
                ));
            }
            state.high_watermark
        };
        let target = if offset == -1 { high_watermark } else { offset };
        let mut log = lock(&self.log);
        if target < 0 || target > high_watermark {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start_offset: log.log_start_offset().0,
                log_end_offset: high_watermark,
            }
            .into());
        }
        Ok(log.delete_records_before(target, high_watermark)?)
    }

    /// One retention pass over the log (time, size, log start offset).
    pub fn apply_retention(
        &self,
    ) -> Result<storage::retention::RetentionOutcome, ReplicationError> {
        let high_watermark = self.high_watermark();
        Ok(lock(&self.log).apply_retention(high_watermark)?)
    }

    pub fn high_watermark(&self) -> i64 {
        lock(&self.state).high_watermark
    }

    pub fn log_end_offset(&self) -> i64 {
        lock(&self.log).log_end_offset().0
    }

    /// Whether a read at `offset` is in the active segment (recently appended,
    /// so served from the page cache without waiting on the disk).
    pub fn is_tail_read(&self, offset: i64) -> bool {
        lock(&self.log).in_active_segment(offset)
    }

    pub fn log_start_offset(&self) -> i64 {
        lock(&self.log).log_start_offset().0
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        // Wake any fetch still waiting so it re-checks and sees the partition gone.
        self.appended.notify();
    }
}

/// The handle kept in the replica manager.
pub type SharedPartition = Arc<Partition>;
