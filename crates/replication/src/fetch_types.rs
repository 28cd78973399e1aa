//! What a follower's fetcher sends, receives and asks the shell to do: the
//! content of its Fetch, OffsetForLeaderEpoch and ListOffsets requests and
//! answers, the local log facts it reads, and its commands. The broker turns the
//! requests into wire messages (Fetch with `ReplicaState`, no fetch session:
//! session id 0, epoch -1; isolation READ_UNCOMMITTED) and back.

use bytes::Bytes;
use protocol::{ErrorCode, TopicPartition};
use uuid::Uuid;

use crate::events::EpochEndOffset;

/// The fetchers' settings, with Kafka's names and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetcherConfig {
    /// This broker's `node.id` (the fetch's replica id).
    pub broker_id: i32,
    /// `num.replica.fetchers` (1): fetchers per source broker.
    pub num_replica_fetchers: u32,
    /// `replica.fetch.max.bytes` (1 MiB): per partition.
    pub replica_fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes` (10 MiB): the whole response.
    pub replica_fetch_response_max_bytes: i32,
    /// `replica.fetch.wait.max.ms` (500).
    pub replica_fetch_wait_max_ms: i32,
    /// `replica.fetch.min.bytes` (1).
    pub replica_fetch_min_bytes: i32,
    /// `replica.fetch.backoff.ms` (1000): the pause after an error.
    pub replica_fetch_backoff_ms: i64,
    /// Whether the leader answers diverging epochs in Fetch (Fetch v12+, KIP-595's
    /// truncation on fetch). Without it a new follower truncates with
    /// OffsetForLeaderEpoch before it fetches.
    pub truncation_on_fetch: bool,
}

impl FetcherConfig {
    /// Kafka's defaults for broker `broker_id`.
    pub fn new(broker_id: i32) -> FetcherConfig {
        FetcherConfig {
            broker_id,
            num_replica_fetchers: 1,
            replica_fetch_max_bytes: 1024 * 1024,
            replica_fetch_response_max_bytes: 10 * 1024 * 1024,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_min_bytes: 1,
            replica_fetch_backoff_ms: 1000,
            truncation_on_fetch: true,
        }
    }
}

/// A partition a fetcher is told to follow (Kafka's `InitialFetchState`; the
/// offset comes from the local log when it is added).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitialFetchState {
    pub topic_id: Uuid,
    pub leader: i32,
    pub current_leader_epoch: i32,
}

/// The local log's facts a fetcher reads (under the log's lock, by the shell).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalLog {
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
    /// The latest leader epoch in the epoch cache; `None` when it is empty.
    pub latest_epoch: Option<i32>,
}

/// Read access to the follower's logs.
pub trait FollowerLogs {
    /// `None`: the log is not here (deleted, or its directory is offline).
    fn local_log(&self, topic_partition: &TopicPartition) -> Option<LocalLog>;
    /// The largest epoch <= `leader_epoch` in the local cache and where it ends
    /// (Kafka's `endOffsetForEpoch`); `None` when every cached epoch is larger or
    /// the cache is empty.
    fn end_offset_for_epoch(
        &self,
        topic_partition: &TopicPartition,
        leader_epoch: i32,
    ) -> Option<EpochEndOffset>;
}

/// One partition of a replica Fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPartition {
    pub topic_partition: TopicPartition,
    pub topic_id: Uuid,
    pub fetch_offset: i64,
    pub log_start_offset: i64,
    pub partition_max_bytes: i32,
    pub current_leader_epoch: i32,
    /// -1 when unknown or when the leader does not truncate on fetch.
    pub last_fetched_epoch: i32,
}

/// A replica Fetch (Fetch with `ReplicaState{replica_id, replica_epoch}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    pub replica_id: i32,
    pub replica_epoch: i64,
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub partitions: Vec<FetchPartition>,
}

/// One partition of the leader's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedPartition {
    pub topic_partition: TopicPartition,
    pub error: ErrorCode,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// The leader's `DivergingEpoch`, when it sent one.
    pub diverging_epoch: Option<EpochEndOffset>,
    pub records: Bytes,
}

/// One partition of an OffsetForLeaderEpoch request (replica id = us).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochRequest {
    pub topic_partition: TopicPartition,
    pub current_leader_epoch: i32,
    pub leader_epoch: i32,
}

/// One partition of the OffsetForLeaderEpoch answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochAnswer {
    pub topic_partition: TopicPartition,
    pub error: ErrorCode,
    pub end: EpochEndOffset,
}

/// Which end of the leader's log a ListOffsets asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaderOffset {
    /// Timestamp -1: the leader's log end offset.
    Latest,
    /// Timestamp -2: the leader's log start offset.
    Earliest,
}

/// Why the shell could not do a local write the fetcher asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalWriteError {
    /// The fetched records are corrupt or invalid: skip them and fetch again after
    /// the back-off (they may be a transient state of the leader's log).
    InvalidRecords,
    /// The log is gone, its directory failed, or the fetch offset is not its log
    /// end (a write raced the fetcher): stop fetching this partition until
    /// metadata adds it again (Kafka's `markPartitionFailed`).
    Storage,
}

/// What the shell must do for a fetcher, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetcherCommand {
    /// Send this Fetch to the leader; answer with [`crate::Fetcher::on_fetch_response`].
    SendFetch(FetchRequest),
    /// Send OffsetForLeaderEpoch; answer with [`crate::Fetcher::on_epochs_response`].
    SendOffsetsForLeaderEpoch(Vec<EpochRequest>),
    /// Send ListOffsets for one partition (replica id = us); answer with
    /// [`crate::Fetcher::on_leader_offset`].
    SendListOffsets {
        topic_partition: TopicPartition,
        current_leader_epoch: i32,
        which: LeaderOffset,
    },
    /// Append the leader's records with `Log::append_as_follower` at
    /// `fetch_offset` (the log end must be there), even when empty; then feed the
    /// partition `Appended` and `LeaderFetched{high_watermark, log_start_offset}`,
    /// and report with [`crate::Fetcher::on_local_write`].
    Append {
        topic_partition: TopicPartition,
        fetch_offset: i64,
        leader_epoch: i32,
        records: Bytes,
        high_watermark: i64,
        log_start_offset: i64,
    },
    /// `Log::truncate_to(offset)`, feed the partition `Truncated`, report.
    Truncate {
        topic_partition: TopicPartition,
        offset: i64,
    },
    /// `Log::truncate_fully_and_start_at(offset)`, feed `Truncated`, report.
    TruncateFullyAndStartAt {
        topic_partition: TopicPartition,
        offset: i64,
    },
    /// The partition left this fetcher until new metadata adds it again
    /// (Kafka's failed partitions: fenced by a newer leader epoch, or storage).
    PartitionFailed { topic_partition: TopicPartition },
}
