//! Why a partition operation was refused, and how an acks=all produce ended.
//! Mapped to Kafka's codes in one place: `broker/src/errors.rs`.

use protocol::TopicPartition;
use storage::{AppendError, StorageError};

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
    #[error("{tp}: {error}")]
    Ack { tp: TopicPartition, error: AckError },
    #[error(transparent)]
    Append(#[from] AppendError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// How an acks=all produce that waited for the ISR ended badly (Kafka's
/// `DelayedProduce`): the answer replaces the append's success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// Leadership moved away while the produce waited.
    #[error("leadership moved while waiting for the in-sync replicas")]
    NotLeaderOrFollower,
    /// The high watermark passed the records but the ISR is below
    /// `min.insync.replicas` (Kafka's `checkEnoughReplicasReachOffset`).
    #[error("the in-sync replicas fell below min.insync.replicas after the append")]
    NotEnoughReplicasAfterAppend,
    /// The produce's timeout passed before the ISR had the records.
    #[error("the in-sync replicas did not acknowledge in time")]
    RequestTimedOut,
    /// The partition was deleted while the produce waited.
    #[error("the partition was deleted while waiting for the in-sync replicas")]
    UnknownTopicOrPartition,
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
