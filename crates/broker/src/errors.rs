//! The one place crate errors become Kafka error codes. Exhaustive matches (no `_`)
//! so that a new error variant fails to compile until it is mapped.
//!
//! Storage, replication, the controller's decisions and the coordinators each
//! return their own error enum; handlers answer with what these functions give.
//! Codes handlers choose themselves are about the request as it came (a
//! malformed field, a topic the request names that does not exist) and those the
//! protocol defines per partition (docs/decisions.md, "Errors").

use coordinator::{GroupError, TxnError, WriteError};
use metadata::ControllerError;
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

/// A refused topic or config change: the code, and Kafka's message.
pub fn controller_error(error: &ControllerError) -> (ErrorCode, String) {
    (controller_error_code(error), error.to_string())
}

pub fn controller_error_code(error: &ControllerError) -> ErrorCode {
    match error {
        ControllerError::TooManyPartitions => ErrorCode::PolicyViolation,
        ControllerError::TooManyRecords => ErrorCode::PolicyViolation,
        ControllerError::BrokerPartitionLimit { .. } => ErrorCode::PolicyViolation,
        ControllerError::DuplicateTopicName => ErrorCode::InvalidRequest,
        ControllerError::DuplicateTopicId => ErrorCode::InvalidRequest,
        ControllerError::DuplicateTopicInRequest => ErrorCode::InvalidRequest,
        ControllerError::NameOrIdRequired => ErrorCode::InvalidRequest,
        ControllerError::ClusterMetadataTopic => ErrorCode::InvalidRequest,
        ControllerError::InvalidTopicName(_) => ErrorCode::InvalidTopicException,
        ControllerError::TopicAlreadyExists(_) => ErrorCode::TopicAlreadyExists,
        ControllerError::CollidesWithExisting { .. } => ErrorCode::InvalidTopicException,
        ControllerError::CollidesInRequest(_) => ErrorCode::InvalidTopicException,
        ControllerError::NullConfigValue(_) => ErrorCode::InvalidConfig,
        ControllerError::InvalidConfig(_) => ErrorCode::InvalidConfig,
        ControllerError::CountsWithAssignments => ErrorCode::InvalidRequest,
        ControllerError::InvalidReplicaAssignment(_) => ErrorCode::InvalidReplicaAssignment,
        ControllerError::InvalidReplicationFactor(_) => ErrorCode::InvalidReplicationFactor,
        ControllerError::InvalidPartitions(_) => ErrorCode::InvalidPartitions,
        ControllerError::NoSuchTopic(_) => ErrorCode::UnknownTopicOrPartition,
        ControllerError::UnknownTopic => ErrorCode::UnknownTopicOrPartition,
        ControllerError::UnknownTopicId => ErrorCode::UnknownTopicId,
        ControllerError::TopicDeletionDisabled => ErrorCode::TopicDeletionDisabled,
        ControllerError::NoSuchConfigTopic(_) => ErrorCode::UnknownTopicOrPartition,
        ControllerError::NotDynamic(_) => ErrorCode::InvalidRequest,
        ControllerError::LogLimit(_) => ErrorCode::PolicyViolation,
        ControllerError::CommitFailed(_) => ErrorCode::UnknownServerError,
        ControllerError::NotController => ErrorCode::NotController,
        ControllerError::InternalTopic { .. } => ErrorCode::PolicyViolation,
        ControllerError::UnknownConfigName(_) => ErrorCode::InvalidConfig,
        ControllerError::NotAListConfig(_) => ErrorCode::InvalidConfig,
        ControllerError::NullAlterValue(_) => ErrorCode::InvalidRequest,
        ControllerError::UnknownConfigOperation(_) => ErrorCode::InvalidRequest,
        ControllerError::UnsupportedResourceType(_) => ErrorCode::InvalidRequest,
        ControllerError::UnknownBroker(_) => ErrorCode::InvalidRequest,
        ControllerError::NotThisBroker { .. } => ErrorCode::InvalidRequest,
    }
}

pub fn group_error_code(error: &GroupError) -> ErrorCode {
    match error {
        GroupError::InvalidGroupId => ErrorCode::InvalidGroupId,
        GroupError::InvalidSessionTimeout => ErrorCode::InvalidSessionTimeout,
        GroupError::UnknownMemberId => ErrorCode::UnknownMemberId,
        GroupError::CoordinatorNotAvailable => ErrorCode::CoordinatorNotAvailable,
        GroupError::InconsistentGroupProtocol => ErrorCode::InconsistentGroupProtocol,
        GroupError::GroupMaxSizeReached => ErrorCode::GroupMaxSizeReached,
        GroupError::MemberIdRequired => ErrorCode::MemberIdRequired,
        GroupError::FencedInstanceId => ErrorCode::FencedInstanceId,
        GroupError::RebalanceInProgress => ErrorCode::RebalanceInProgress,
        GroupError::IllegalGeneration => ErrorCode::IllegalGeneration,
        GroupError::OffsetMetadataTooLarge => ErrorCode::OffsetMetadataTooLarge,
        GroupError::GroupIdNotFound => ErrorCode::GroupIdNotFound,
        GroupError::NonEmptyGroup => ErrorCode::NonEmptyGroup,
        GroupError::GroupSubscribedToTopic => ErrorCode::GroupSubscribedToTopic,
        GroupError::Write(error) => write_error_code(error),
        GroupError::OffsetsNotWritten(error) => offsets_write_error_code(error),
    }
}

/// `None` for success, as per-partition and per-member answers carry it.
pub fn group_result_code(result: &Result<(), GroupError>) -> ErrorCode {
    result
        .as_ref()
        .err()
        .map_or(ErrorCode::None, group_error_code)
}

pub fn txn_error_code(error: &TxnError) -> ErrorCode {
    match error {
        TxnError::InvalidTransactionTimeout => ErrorCode::InvalidTransactionTimeout,
        TxnError::ConcurrentTransactions => ErrorCode::ConcurrentTransactions,
        TxnError::ProducerFenced => ErrorCode::ProducerFenced,
        TxnError::InvalidProducerIdMapping => ErrorCode::InvalidProducerIdMapping,
        TxnError::InvalidProducerEpoch => ErrorCode::InvalidProducerEpoch,
        TxnError::InvalidTxnState => ErrorCode::InvalidTxnState,
        TxnError::NoProducerIds => ErrorCode::CoordinatorLoadInProgress,
        TxnError::CoordinatorNotAvailable => ErrorCode::CoordinatorNotAvailable,
        TxnError::Write(error) => write_error_code(error),
    }
}

/// `None` for success; a fenced producer is told INVALID_PRODUCER_EPOCH by
/// versions before KIP-588 (`before_kip_588`: the API's version says which).
pub fn txn_result_code(result: &Result<(), TxnError>, before_kip_588: bool) -> ErrorCode {
    match result
        .as_ref()
        .err()
        .map_or(ErrorCode::None, txn_error_code)
    {
        ErrorCode::ProducerFenced if before_kip_588 => ErrorCode::InvalidProducerEpoch,
        code => code,
    }
}

/// A failed coordinator write, passed on as it failed.
pub fn write_error_code(error: &WriteError) -> ErrorCode {
    match error {
        WriteError::NotQueued => ErrorCode::CoordinatorNotAvailable,
        WriteError::NotHosted => ErrorCode::NotCoordinator,
        WriteError::Encode => ErrorCode::UnknownServerError,
        WriteError::Log(code) => *code,
    }
}

/// A failed write of offsets, as Kafka's `GroupMetadataManager` answers an
/// offset commit with it: the partition's troubles become the coordinator's.
pub fn offsets_write_error_code(error: &WriteError) -> ErrorCode {
    match write_error_code(error) {
        ErrorCode::UnknownTopicOrPartition
        | ErrorCode::NotEnoughReplicas
        | ErrorCode::NotEnoughReplicasAfterAppend
        | ErrorCode::RequestTimedOut => ErrorCode::CoordinatorNotAvailable,
        ErrorCode::NotLeaderOrFollower | ErrorCode::KafkaStorageError => ErrorCode::NotCoordinator,
        ErrorCode::MessageTooLarge
        | ErrorCode::RecordListTooLarge
        | ErrorCode::InvalidFetchSize => ErrorCode::InvalidCommitOffsetSize,
        other => other,
    }
}

/// What a coordinator is told when its append failed.
pub fn append_failed(error: &ReplicationError) -> WriteError {
    WriteError::Log(replication_error_code(error))
}

/// What a coordinator is told when its append was not acknowledged.
pub fn ack_failed(error: &AckError) -> WriteError {
    WriteError::Log(ack_error_code(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_offsets_write_is_answered_with_the_coordinators_codes() {
        let offsets = |code| offsets_write_error_code(&WriteError::Log(code));
        assert_eq!(
            offsets(ErrorCode::NotLeaderOrFollower),
            ErrorCode::NotCoordinator
        );
        assert_eq!(
            offsets(ErrorCode::KafkaStorageError),
            ErrorCode::NotCoordinator
        );
        assert_eq!(
            offsets(ErrorCode::RequestTimedOut),
            ErrorCode::CoordinatorNotAvailable
        );
        assert_eq!(
            offsets(ErrorCode::NotEnoughReplicas),
            ErrorCode::CoordinatorNotAvailable
        );
        assert_eq!(
            offsets(ErrorCode::MessageTooLarge),
            ErrorCode::InvalidCommitOffsetSize
        );
        assert_eq!(
            offsets(ErrorCode::InvalidProducerEpoch),
            ErrorCode::InvalidProducerEpoch
        );
        assert_eq!(
            offsets_write_error_code(&WriteError::NotQueued),
            ErrorCode::CoordinatorNotAvailable
        );
        assert_eq!(
            offsets_write_error_code(&WriteError::NotHosted),
            ErrorCode::NotCoordinator
        );
    }

    #[test]
    fn config_refusals_keep_kafkas_codes_and_messages() {
        let refusal = |e: ControllerError| controller_error(&e);
        assert_eq!(
            refusal(ControllerError::NullAlterValue("retention.ms".into())),
            (
                ErrorCode::InvalidRequest,
                "Null value not supported for : retention.ms".to_string()
            )
        );
        assert_eq!(
            refusal(ControllerError::UnknownConfigName("nope".into())),
            (
                ErrorCode::InvalidConfig,
                "Unknown config name: nope".to_string()
            )
        );
        assert_eq!(
            refusal(ControllerError::NotThisBroker {
                expected: 1,
                received: "2".into()
            }),
            (
                ErrorCode::InvalidRequest,
                "Unexpected broker id, expected 1 or empty string, but received 2".to_string()
            )
        );
        assert_eq!(
            refusal(ControllerError::InternalTopic {
                action: "Deleting",
                topic: "__consumer_offsets".into()
            })
            .0,
            ErrorCode::PolicyViolation
        );
        assert_eq!(
            txn_error_code(&TxnError::InvalidProducerEpoch),
            ErrorCode::InvalidProducerEpoch
        );
    }

    #[test]
    fn other_failed_writes_are_passed_on_as_they_failed() {
        let write = GroupError::Write(WriteError::Log(ErrorCode::NotLeaderOrFollower));
        assert_eq!(group_error_code(&write), ErrorCode::NotLeaderOrFollower);
        let write = TxnError::Write(WriteError::Log(ErrorCode::RequestTimedOut));
        assert_eq!(txn_error_code(&write), ErrorCode::RequestTimedOut);
    }
}
