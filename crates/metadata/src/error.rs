//! Why the controller refused an item of an admin request. Each variant's message
//! is the one Kafka's controller gives; the Kafka code is chosen in one place, the
//! broker's `errors.rs`.

/// Why the controller refused a topic or config change (CreateTopics,
/// DeleteTopics, CreatePartitions, AlterConfigs). Most come from
/// [`crate::Controller`]'s decisions; the last few from what the broker checks and
/// does around them (config validation against its key tables, its file
/// descriptor budget, the commit to the metadata log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControllerError {
    /// The request asks for more partitions than one request may create
    /// (Kafka's `MAX_PARTITIONS_PER_BATCH`): every item is refused.
    #[error("Excessively large number of partitions per request.")]
    TooManyPartitions,
    /// The request would commit more records than one operation may (Kafka's
    /// `MAX_RECORDS_PER_USER_OP`): every item is refused.
    #[error("Unable to perform excessively large batch operation.")]
    TooManyRecords,
    /// A broker would host more partition replicas than `max.broker.partitions`.
    #[error("Adding {adding} partition replica(s) to broker {broker}, which hosts {hosted}, would exceed max.broker.partitions ({limit}).")]
    BrokerPartitionLimit {
        broker: i32,
        hosted: u64,
        adding: u64,
        limit: u64,
    },
    /// The same topic name twice in a CreateTopics or DeleteTopics request.
    #[error("Duplicate topic name.")]
    DuplicateTopicName,
    /// The same topic id twice in a DeleteTopics request (by name and by id).
    #[error("Duplicate topic id.")]
    DuplicateTopicId,
    /// The same topic twice in a CreatePartitions request.
    #[error("Duplicate topic in the request.")]
    DuplicateTopicInRequest,
    /// A DeleteTopics entry with both or neither of a name and an id.
    #[error("Neither or both topic name and id were given")]
    NameOrIdRequired,
    #[error("Creation of internal topic __cluster_metadata is prohibited.")]
    ClusterMetadataTopic,
    /// Kafka's topic name rules (`topic_name::validate`); its message.
    #[error("{0}")]
    InvalidTopicName(String),
    #[error("Topic '{0}' already exists.")]
    TopicAlreadyExists(String),
    /// Equal to an existing topic once '.' and '_' are taken as the same.
    #[error("Topic '{topic}' collides with existing topic: {existing}")]
    CollidesWithExisting { topic: String, existing: String },
    #[error("Topic '{0}' collides with another topic in this request")]
    CollidesInRequest(String),
    #[error("Null value not supported for topic configs: {0}")]
    NullConfigValue(String),
    /// A topic config the validator refused; its message.
    #[error("{0}")]
    InvalidConfig(String),
    #[error("Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.")]
    CountsWithAssignments,
    /// A manual replica assignment Kafka's checks refuse; the message says why.
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// The message says why (not positive, or more than the brokers registered).
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// The message says why (not positive, or not an increase).
    #[error("{0}")]
    InvalidPartitions(String),
    /// CreatePartitions of a topic that does not exist.
    #[error("The topic '{0}' does not exist.")]
    NoSuchTopic(String),
    /// DeleteTopics of a name that does not exist.
    #[error("This server does not host this topic-partition.")]
    UnknownTopic,
    /// DeleteTopics of an id that does not exist.
    #[error("This server does not host this topic ID.")]
    UnknownTopicId,
    /// `delete.topic.enable=false`.
    #[error("Topic deletion is disabled.")]
    TopicDeletionDisabled,
    /// AlterConfigs of a topic that does not exist.
    #[error("Topic {0} does not exist.")]
    NoSuchConfigTopic(String),
    /// Static broker configs cannot be changed while it runs.
    #[error("Cannot update these configs dynamically: {0} (read at start-up: set them in server.properties and restart the broker)")]
    NotDynamic(String),
    /// The new partitions' logs would take more file descriptors than the
    /// broker's budget (`storage::descriptors`); the message says how many.
    #[error("{0}")]
    LogLimit(String),
    /// The decision's records could not be written to the metadata log.
    #[error("metadata commit failed: {0}")]
    CommitFailed(String),
    /// This node does not lead the controller quorum (any more).
    #[error("This is not the correct controller for this cluster.")]
    NotController,
    /// A client's change to an internal topic, refused unless
    /// `internal.topics.modification.enable=true` (the broker's `guards.rs`).
    #[error("{action} internal topic {topic} is not allowed: it changes only through the broker (set internal.topics.modification.enable=true to allow it).")]
    InternalTopic { action: &'static str, topic: String },
    /// A config key the resource's key table does not list.
    #[error("Unknown config name: {0}")]
    UnknownConfigName(String),
    /// APPEND or SUBTRACT on a key whose type is not a list.
    #[error("Config value append/subtract is not allowed for config {0}, the type is not a list")]
    NotAListConfig(String),
    /// An AlterConfigs SET (or legacy AlterConfigs entry) without a value.
    #[error("Null value not supported for : {0}")]
    NullAlterValue(String),
    /// An IncrementalAlterConfigs operation Kafka does not define.
    #[error("Unknown config operation {0}")]
    UnknownConfigOperation(i8),
    /// A config resource type other than topic, broker (and, to describe, broker logger).
    #[error("Unsupported resource type {0}")]
    UnsupportedResourceType(i8),
    /// AlterConfigs of a broker id that is not registered.
    #[error("Unexpected broker id {0}")]
    UnknownBroker(String),
    /// DescribeConfigs of a broker other than the one asked.
    #[error("Unexpected broker id, expected {expected} or empty string, but received {received}")]
    NotThisBroker { expected: i32, received: String },
}

/// Why the controller refused a broker's own request as a whole
/// (BrokerRegistration, BrokerHeartbeat, AlterPartition, AllocateProducerIds);
/// Kafka's messages. The Kafka code is chosen in the broker's `errors.rs`, as
/// for [`ControllerError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerRequestError {
    /// INCONSISTENT_CLUSTER_ID.
    #[error("Expected cluster ID {expected}, but got cluster ID {received}")]
    InconsistentClusterId { expected: String, received: String },
    /// DUPLICATE_BROKER_REGISTRATION: another incarnation's session is valid.
    #[error("Another broker is registered with that broker id.")]
    DuplicateBrokerRegistration,
    /// UNSUPPORTED_VERSION: a finalized feature level the broker does not support.
    #[error("{0}")]
    UnsupportedVersion(String),
    /// STALE_BROKER_EPOCH: not registered, or registered with another epoch.
    #[error("{0}")]
    StaleBrokerEpoch(String),
    /// UNKNOWN_SERVER_ERROR: no block of producer ids fits below `i64::MAX`.
    #[error("Exhausted all producerIds as the next block's end producerId has exceeded the int64 type limit")]
    ProducerIdsExhausted,
}
