//! Why a coordinator refused a request, or could not persist it. The Kafka code
//! each becomes is chosen in one place, the broker's `errors.rs`.
//!
//! The variants carry Kafka's names: each is an answer the group or transaction
//! protocol defines (a member that must rejoin, a fenced producer), not an
//! internal failure, so the name a client's documentation uses is the clearest.

use protocol::ErrorCode;

/// Why the shell could not carry out a write (append, acknowledgement, marker).
/// The coordinators pass it on; the broker gives each a Kafka code, translated
/// where Kafka's coordinators translate it (an offset commit's
/// NOT_LEADER_OR_FOLLOWER becomes NOT_COORDINATOR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The shell's queue to its writer is full, or the writer stopped.
    #[error("the write was not queued: too many queued, or shutting down")]
    NotQueued,
    /// This broker does not host the internal topic's partition.
    #[error("this broker does not host the partition")]
    NotHosted,
    /// The records could not be built into a batch.
    #[error("the records could not be encoded")]
    Encode,
    /// The log or its replicas refused or failed the append. It holds the code
    /// the broker's one mapping of storage and replication errors gives
    /// (`broker/src/errors.rs`), so that what Kafka passes through is passed
    /// through unchanged (docs/decisions.md, "Errors").
    #[error("the append failed: {0}")]
    Log(ErrorCode),
}

/// Why the group coordinator refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("the group id is empty")]
    InvalidGroupId,
    #[error("the session timeout is outside the broker's group.min/max.session.timeout.ms")]
    InvalidSessionTimeout,
    #[error("the member is not in the group")]
    UnknownMemberId,
    /// The group is Dead: being deleted, or its partition unloaded.
    #[error("the group is being removed")]
    CoordinatorNotAvailable,
    #[error("the member's protocols do not match the group's")]
    InconsistentGroupProtocol,
    #[error("the group has group.max.size members")]
    GroupMaxSizeReached,
    /// KIP-394: the answer carries the member id to join again with.
    #[error("the member must join again with the member id given")]
    MemberIdRequired,
    #[error("another member holds this group.instance.id")]
    FencedInstanceId,
    #[error("the group is rebalancing: join again")]
    RebalanceInProgress,
    #[error("the generation is not the group's current one")]
    IllegalGeneration,
    #[error("the offset's metadata is longer than offset.metadata.max.bytes")]
    OffsetMetadataTooLarge,
    #[error("the group does not exist")]
    GroupIdNotFound,
    #[error("the group has members")]
    NonEmptyGroup,
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
    /// Storing the group (its generation and assignment) failed.
    #[error(transparent)]
    Write(WriteError),
    /// Writing offsets or their tombstones failed (OffsetCommit,
    /// TxnOffsetCommit, OffsetDelete, DeleteGroups): Kafka's
    /// `GroupMetadataManager` answers these with its own codes.
    #[error("storing offsets failed: {0}")]
    OffsetsNotWritten(WriteError),
}

/// Why the transaction coordinator refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    #[error("the transaction timeout is not in (0, transaction.max.timeout.ms]")]
    InvalidTransactionTimeout,
    /// A write for the transactional id is in flight (Kafka's pending state).
    #[error("a state change of this transactional id is in progress")]
    ConcurrentTransactions,
    #[error("a newer producer with this transactional id exists")]
    ProducerFenced,
    #[error("the producer id does not belong to this transactional id")]
    InvalidProducerIdMapping,
    /// The producer's epoch is not the transaction's (TxnOffsetCommit's owner
    /// check; the transactional APIs fence with `ProducerFenced`).
    #[error("the producer epoch is not the transaction's")]
    InvalidProducerEpoch,
    #[error("the request is not valid in the transaction's state")]
    InvalidTxnState,
    /// No producer id at hand (as Kafka's `RPCProducerIdManager`): the client
    /// retries after the broker took a new block.
    #[error("no producer ids at hand")]
    NoProducerIds,
    /// The coordinator cannot answer: it is shutting down, or producer ids could
    /// not be allocated.
    #[error("the transaction coordinator is not available")]
    CoordinatorNotAvailable,
    #[error(transparent)]
    Write(WriteError),
}
