//! What a partition machine takes ([`Input`]) and returns ([`Command`]), and
//! the values they carry. `partition.rs` holds the rules.

use std::collections::BTreeMap;

use crate::error::AckError;

/// A pending acks=all produce's id, chosen by the shell.
pub type AckId = u64;

/// The controller's view of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// The settings the machine needs, with Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicationConfig {
    /// `min.insync.replicas` (a topic config).
    pub min_insync_replicas: i32,
    /// `replica.lag.time.max.ms` (a broker config).
    pub replica_lag_time_max_ms: i64,
}

impl ReplicationConfig {
    /// How often the shell feeds [`Input::Tick`] for ISR shrinks: Kafka's
    /// "isr-expiration" task runs every `replica.lag.time.max.ms / 2`.
    pub fn isr_expiration_interval_ms(&self) -> i64 {
        (self.replica_lag_time_max_ms / 2).max(1)
    }
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            min_insync_replicas: 1,
            replica_lag_time_max_ms: 30_000,
        }
    }
}

/// The local log's offsets when the machine is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOffsets {
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// From the high watermark checkpoint; clamped into the log's range.
    pub high_watermark: i64,
}

/// A leader epoch and where it ends (exclusive), as OffsetForLeaderEpoch and
/// Fetch's diverging epoch carry it. A negative `end_offset` is Kafka's
/// UNDEFINED_EPOCH_OFFSET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEndOffset {
    pub leader_epoch: i32,
    pub end_offset: i64,
}

/// A replica in an AlterPartition proposal, with the broker epoch the leader
/// knows it by (KIP-903's `BrokerState`; -1 when the leader has not seen it
/// fetch since it became leader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsrMember {
    pub broker_id: i32,
    pub broker_epoch: i64,
}

/// A broker the metadata image shows registered and unfenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AliveBroker {
    pub broker_epoch: i64,
    pub in_controlled_shutdown: bool,
}

/// How an AlterPartition proposal failed (Kafka's `handleAlterPartitionError`;
/// the broker maps the answer's error code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsrChangeError {
    /// The controller says it did not apply it (OPERATION_NOT_ATTEMPTED,
    /// INELIGIBLE_REPLICA): back to the committed ISR, a new proposal may follow.
    Rejected,
    /// Our view is out of date (FENCED_LEADER_EPOCH, INVALID_UPDATE_VERSION,
    /// UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_TOPIC_ID, INVALID_REQUEST,
    /// NEW_LEADER_ELECTED): stay pending, no new proposal, until the metadata
    /// that overrides it arrives.
    Stale,
    /// Anything else: send the same proposal again. (NOT_CONTROLLER and
    /// transport errors never get here: the AlterPartition manager retries them.)
    Retriable,
}

/// Something that happened to the partition, fed to [`Partition::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The local log appended records (as leader or follower): its new end.
    Appended { log_end_offset: i64 },
    /// The local log's start moved forward (retention, DeleteRecords).
    LogStartMoved { log_start_offset: i64 },
    /// Leader: follower `replica_id` fetched at `fetch_offset` (its LEO), with
    /// the broker epoch in its request (-1 when it sent none). Checked first with
    /// [`crate::Partition::check_follower_fetch`].
    FollowerFetched {
        replica_id: i32,
        broker_epoch: i64,
        fetch_offset: i64,
        log_start_offset: i64,
    },
    /// The registered, unfenced brokers changed (or this broker registered again):
    /// who may join an ISR, and the epochs AlterPartition names.
    BrokersChanged {
        local_broker_epoch: i64,
        alive: BTreeMap<i32, AliveBroker>,
    },
    /// Time passed: deadlines of pending acks, ISR shrink.
    Tick,
    /// The controller's view changed (leader, epochs, replicas, ISR).
    MetadataChanged(PartitionMetadata),
    /// `min.insync.replicas` or `replica.lag.time.max.ms` changed.
    ConfigChanged(ReplicationConfig),
    /// The controller accepted an AlterPartition proposal.
    IsrChangeCommitted {
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    /// The controller refused an AlterPartition proposal.
    IsrChangeFailed(IsrChangeError),
    /// An acks=all produce whose records end before `required_offset` waits for the
    /// ISR until `deadline_ms`.
    AwaitAcks {
        id: AckId,
        required_offset: i64,
        deadline_ms: i64,
    },
    /// Follower: the leader answered a fetch (its records already appended).
    LeaderFetched {
        high_watermark: i64,
        log_start_offset: i64,
    },
    /// Follower: the local log was truncated (by the fetcher's order: a diverging
    /// epoch, the leader's shorter log, or a restart at the leader's log start);
    /// these are its offsets now.
    Truncated {
        log_start_offset: i64,
        log_end_offset: i64,
    },
    /// The partition is no longer hosted here (deleted or reassigned away).
    Deleted,
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Answer the acks=all produce `id`.
    AnswerProduce {
        id: AckId,
        result: Result<(), AckError>,
    },
    /// Delayed fetches should look again (the HW, the LEO or the leader moved).
    WakeFetches,
    /// The high watermark is now this (for readers and the checkpoint).
    UpdateHighWatermark { high_watermark: i64 },
    /// Propose this ISR to the controller (AlterPartition v3, with broker
    /// epochs). One proposal per partition is in flight at a time.
    AlterIsr {
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<IsrMember>,
    },
    /// Truncate the local log to `offset` (exclusive end). No longer emitted:
    /// truncation is the fetcher's decision (`FetcherCommand::Truncate`); kept
    /// until the broker's shell stops matching it.
    TruncateTo { offset: i64 },
    /// Move the local log's start up to `offset` (a follower following its leader).
    AdvanceLogStartOffset { offset: i64 },
    /// This replica leads from `epoch_start_offset` in `leader_epoch`.
    BecomeLeader {
        leader_epoch: i32,
        epoch_start_offset: i64,
    },
    /// Fetch from `leader` starting at `fetch_offset`.
    StartFollowing {
        leader: i32,
        leader_epoch: i32,
        fetch_offset: i64,
    },
    /// Stop fetching from the previous leader.
    StopFollowing,
}
