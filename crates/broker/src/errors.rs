//! The one place crate errors become Kafka error codes. Exhaustive matches (no `_`)
//! so that a new error variant fails to compile until it is mapped.

use protocol::ErrorCode;
use replication::{AckError, ReplicationError};
use storage::producer_state::ProducerError;
use storage::{AppendError, StorageError};

use crate::group_commit::SyncError;

pub fn storage_error_code(error: &StorageError) -> ErrorCode {
    match error {
        StorageError::Io { .. } => ErrorCode::KafkaStorageError,
        StorageError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        StorageError::Corrupt(..) => ErrorCode::KafkaStorageError,
        StorageError::LogExists(_) => ErrorCode::UnknownServerError,
        StorageError::LogDirOffline(..) => ErrorCode::KafkaStorageError,
    }
}

pub fn append_error_code(error: &AppendError) -> ErrorCode {
    match error {
        AppendError::CorruptMessage(_) => ErrorCode::CorruptMessage,
        AppendError::UnsupportedMagic(_) => ErrorCode::InvalidRecord,
        AppendError::MessageTooLarge { .. } => ErrorCode::MessageTooLarge,
        AppendError::RecordListTooLarge { .. } => ErrorCode::RecordListTooLarge,
        AppendError::InvalidRecord(_) => ErrorCode::InvalidRecord,
        AppendError::InvalidRecords { .. } => ErrorCode::InvalidRecord,
        AppendError::DecompressedTooLarge { .. } => ErrorCode::MessageTooLarge,
        AppendError::InvalidTimestamp { .. } => ErrorCode::InvalidTimestamp,
        AppendError::UnsupportedCompression(_) => ErrorCode::UnsupportedCompressionType,
        AppendError::Producer(e) => producer_error_code(e),
        AppendError::Storage(e) => storage_error_code(e),
    }
}

pub fn producer_error_code(error: &ProducerError) -> ErrorCode {
    match error {
        ProducerError::InvalidProducerEpoch { .. } => ErrorCode::InvalidProducerEpoch,
        ProducerError::OutOfOrderSequence { .. } => ErrorCode::OutOfOrderSequenceNumber,
        ProducerError::InvalidTxnState { .. } => ErrorCode::InvalidTxnState,
        ProducerError::CoordinatorFenced { .. } => ErrorCode::TransactionCoordinatorFenced,
    }
}

pub fn replication_error_code(error: &ReplicationError) -> ErrorCode {
    match error {
        ReplicationError::NotLeaderOrFollower(_) => ErrorCode::NotLeaderOrFollower,
        ReplicationError::UnknownTopicOrPartition(_) => ErrorCode::UnknownTopicOrPartition,
        ReplicationError::NotEnoughReplicas { .. } => ErrorCode::NotEnoughReplicas,
        ReplicationError::FencedLeaderEpoch { .. } => ErrorCode::FencedLeaderEpoch,
        ReplicationError::UnknownLeaderEpoch { .. } => ErrorCode::UnknownLeaderEpoch,
        ReplicationError::Ack { error, .. } => ack_error_code(error),
        ReplicationError::Append(e) => append_error_code(e),
        ReplicationError::Storage(e) => storage_error_code(e),
    }
}

pub fn ack_error_code(error: &AckError) -> ErrorCode {
    match error {
        AckError::NotLeaderOrFollower => ErrorCode::NotLeaderOrFollower,
        AckError::NotEnoughReplicasAfterAppend => ErrorCode::NotEnoughReplicasAfterAppend,
        AckError::RequestTimedOut => ErrorCode::RequestTimedOut,
        AckError::UnknownTopicOrPartition => ErrorCode::UnknownTopicOrPartition,
    }
}

pub fn sync_error_code(error: &SyncError) -> ErrorCode {
    match error {
        SyncError::Storage(_) => ErrorCode::KafkaStorageError,
        SyncError::Truncated => ErrorCode::NotLeaderOrFollower,
        SyncError::Deleted => ErrorCode::UnknownTopicOrPartition,
    }
}
