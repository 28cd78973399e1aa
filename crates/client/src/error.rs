//! The client's one error type, and what an operator should do about each Kafka
//! error. Kafka's codes themselves live in `protocol::ErrorCode`; this file maps
//! them to advice and says which failures a client may retry.

use protocol::kafka::messages::ApiKey;
use protocol::ErrorCode;

/// Everything the producer, consumer and admin client can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The broker answered with a Kafka error code.
    #[error("{code}{}{}", context_suffix(.context), message_suffix(.message))]
    Kafka {
        code: ErrorCode,
        context: String,
        message: Option<String>,
    },
    /// No TCP connection to any of the addresses tried.
    #[error("cannot connect to {address}: {reason}")]
    Connect { address: String, reason: String },
    /// An established connection failed or was closed by the broker.
    #[error("connection to {address} lost: {reason}")]
    Network { address: String, reason: String },
    /// No answer within `request.timeout.ms` (or the operation's own deadline).
    #[error("{what} timed out after {timeout_ms} ms")]
    Timeout { what: String, timeout_ms: u64 },
    /// The broker does not serve this API in any version the client speaks.
    #[error("the broker at {address} does not support {api:?}{}", versions_suffix(.broker_versions))]
    UnsupportedApi {
        api: ApiKey,
        address: String,
        broker_versions: Option<(i16, i16)>,
    },
    /// A response could not be decoded, or broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A configuration key has a value the client cannot use.
    #[error("invalid value for {key}: {reason}")]
    Config { key: String, reason: String },
    /// The caller asked for something that cannot be done.
    #[error("{0}")]
    InvalidArgument(String),
    /// The producer, consumer or admin client was closed.
    #[error("the client is closed")]
    Closed,
}

fn context_suffix(context: &str) -> String {
    if context.is_empty() {
        String::new()
    } else {
        format!(" ({context})")
    }
}

fn message_suffix(message: &Option<String>) -> String {
    match message {
        Some(m) if !m.is_empty() => format!(": {m}"),
        _ => String::new(),
    }
}

fn versions_suffix(versions: &Option<(i16, i16)>) -> String {
    match versions {
        Some((min, max)) => format!(" in a version this client speaks (broker: v{min}-v{max})"),
        None => " (not advertised)".to_string(),
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

impl ClientError {
    /// A Kafka error for `context` (a topic-partition, group or resource name).
    pub fn kafka(code: ErrorCode, context: impl Into<String>) -> ClientError {
        ClientError::Kafka {
            code,
            context: context.into(),
            message: None,
        }
    }

    /// From a wire code: `Ok(())` for NONE.
    pub fn check(code: i16, context: impl FnOnce() -> String, message: Option<&str>) -> Result<()> {
        if code == 0 {
            return Ok(());
        }
        let code = ErrorCode::from_i16(code).unwrap_or(ErrorCode::UnknownServerError);
        Err(ClientError::Kafka {
            code,
            context: context(),
            message: message.map(str::to_string),
        })
    }

    /// The Kafka error code, when the broker sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether trying again (after a metadata refresh) may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Kafka { code, .. } => code.is_retriable(),
            ClientError::Connect { .. }
            | ClientError::Network { .. }
            | ClientError::Timeout { .. } => true,
            ClientError::UnsupportedApi { .. }
            | ClientError::Protocol(_)
            | ClientError::Config { .. }
            | ClientError::InvalidArgument(_)
            | ClientError::Closed => false,
        }
    }

    /// Whether the error means our metadata (leaders, coordinators) is stale.
    pub fn needs_metadata_refresh(&self) -> bool {
        match self {
            ClientError::Kafka { code, .. } => invalidates_metadata(*code),
            ClientError::Connect { .. }
            | ClientError::Network { .. }
            | ClientError::Timeout { .. } => true,
            _ => false,
        }
    }

    /// What an operator can do about this error, in one sentence.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            ClientError::Kafka {
                code: ErrorCode::InvalidRequest,
                message: Some(message),
                ..
            } if message.contains("dynamically") => Some(
                "restart the broker with the new value in server.properties (or --override KEY=VALUE)",
            ),
            ClientError::Kafka { code, .. } => hint(*code),
            ClientError::Connect { .. } => {
                Some("check --bootstrap-server and that the broker is running and reachable")
            }
            ClientError::Network { .. } => {
                Some("the broker closed the connection; check its log and retry")
            }
            ClientError::Timeout { .. } => {
                Some("the broker is slow or unreachable; retry, or raise request.timeout.ms")
            }
            ClientError::UnsupportedApi { .. } => {
                Some("this broker version does not implement the operation")
            }
            ClientError::Config { .. } => {
                Some("fix the value in --command-config or the command line")
            }
            ClientError::Protocol(_) | ClientError::InvalidArgument(_) | ClientError::Closed => {
                None
            }
        }
    }
}

/// The message of UNKNOWN_TOPIC_OR_PARTITION for a partition past the topic's count.
pub fn partition_count_message(count: usize) -> String {
    match count {
        1 => "the topic has 1 partition (partition 0)".to_string(),
        n => format!(
            "the topic has {n} partitions (0 to {})",
            n.saturating_sub(1)
        ),
    }
}

/// Codes after which the client must refresh metadata before retrying.
pub fn invalidates_metadata(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::NotLeaderOrFollower
            | ErrorCode::LeaderNotAvailable
            | ErrorCode::UnknownTopicOrPartition
            | ErrorCode::FencedLeaderEpoch
            | ErrorCode::UnknownLeaderEpoch
            | ErrorCode::KafkaStorageError
            | ErrorCode::NotCoordinator
            | ErrorCode::CoordinatorNotAvailable
            | ErrorCode::UnknownTopicId
            | ErrorCode::BrokerNotAvailable
            | ErrorCode::ReplicaNotAvailable
    )
}

/// Advice for the codes an operator meets; `None` where the name says it all.
pub fn hint(code: ErrorCode) -> Option<&'static str> {
    Some(match code {
        ErrorCode::UnknownTopicOrPartition => "the topic or partition does not exist; list them with `rivulet topics list`, or create it",
        ErrorCode::TopicAlreadyExists => "the topic exists already; use `rivulet topics describe` or pick another name",
        ErrorCode::InvalidPartitions => "the partition count is invalid (must be positive, and may only grow)",
        ErrorCode::InvalidReplicationFactor => "the replication factor exceeds the brokers available or is not positive",
        ErrorCode::InvalidTopicException => "topic names use only ASCII letters, digits, '.', '_' and '-' (at most 249 characters)",
        ErrorCode::InvalidConfig => "a config key or value is not valid for this resource; see `rivulet configs describe`",
        ErrorCode::TopicDeletionDisabled => "the broker has delete.topic.enable=false",
        ErrorCode::NonEmptyGroup => "the group still has members; stop its consumers first",
        ErrorCode::GroupIdNotFound => "no such group; list groups with `rivulet groups list`",
        ErrorCode::GroupSubscribedToTopic => "the group's members consume this topic; stop them before deleting its offsets",
        ErrorCode::CoordinatorNotAvailable | ErrorCode::CoordinatorLoadInProgress | ErrorCode::NotCoordinator => {
            "the group coordinator is moving or loading; retry in a moment"
        }
        ErrorCode::NotLeaderOrFollower | ErrorCode::LeaderNotAvailable => "leadership is moving; retry in a moment",
        ErrorCode::MessageTooLarge | ErrorCode::RecordListTooLarge => {
            "the record exceeds max.message.bytes on the topic or message.max.bytes on the broker; raise them or send smaller records"
        }
        ErrorCode::UnsupportedVersion => "the broker does not support this request version; upgrade the broker",
        ErrorCode::PolicyViolation => "the broker's policy rejected the request",
        ErrorCode::OffsetOutOfRange => "the offset is outside the partition's log; use --offset beginning or end",
        ErrorCode::RebalanceInProgress => "the group is rebalancing; retry once it is stable",
        ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration => {
            "the group has active members, or moved on; for an operator's change, stop the group's consumers first"
        }
        ErrorCode::TransactionalIdNotFound => "no such transactional id; list them with `rivulet transactions list`",
        ErrorCode::ClusterAuthorizationFailed
        | ErrorCode::TopicAuthorizationFailed
        | ErrorCode::GroupAuthorizationFailed
        | ErrorCode::TransactionalIdAuthorizationFailed => "the principal lacks the ACL for this operation",
        ErrorCode::SaslAuthenticationFailed => "check the SASL credentials in --command-config",
        ErrorCode::InvalidRequest => "the broker refused the request as invalid; its message says why",
        ErrorCode::ResourceNotFound => "no such resource",
        ErrorCode::PreferredLeaderNotAvailable | ErrorCode::NotEnoughReplicas | ErrorCode::NotEnoughReplicasAfterAppend => {
            "too few in-sync replicas; check the brokers or lower min.insync.replicas"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_errors_name_the_code_and_context() {
        let error = ClientError::kafka(ErrorCode::UnknownTopicOrPartition, "orders-3");
        assert_eq!(
            error.to_string(),
            "UNKNOWN_TOPIC_OR_PARTITION (3) (orders-3)"
        );
        assert!(error.is_retriable());
        assert!(error.needs_metadata_refresh());
        assert!(error.hint().is_some());
    }

    #[test]
    fn check_passes_none_and_keeps_the_message() {
        assert!(ClientError::check(0, String::new, None).is_ok());
        let error = ClientError::check(36, || "t".into(), Some("exists")).unwrap_err();
        assert_eq!(error.code(), Some(ErrorCode::TopicAlreadyExists));
        assert_eq!(error.to_string(), "TOPIC_ALREADY_EXISTS (36) (t): exists");
    }
}
