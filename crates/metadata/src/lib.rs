//! Cluster metadata as Kafka's KRaft keeps it: an ordered log of records (broker
//! registrations, topics, partitions, configs, removals) whose replay yields the
//! [`ClusterImage`]. The [`controller`] turns admin requests into records; the
//! broker persists them (today in a single-node metadata log, later in a quorum)
//! and applies them in order. No I/O here.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod alter_partition;
pub mod broker_heartbeats;
pub mod cluster_control;
pub mod controller;
pub mod error;
pub mod image;
pub mod legacy;
pub mod partition_change;
pub mod placement;
pub mod producer_ids;
pub mod records;
pub mod replay;
pub mod topic_name;
pub mod wire;

pub use controller::{
    Controller, ControllerConfig, CreateTopicOutcome, CreatedTopic, DeleteTarget,
    DeleteTopicOutcome, PartitionIncrease, TopicSpec,
};
pub use error::{BrokerRequestError, ControllerError};
pub use image::{BrokerInfo, ClusterImage, PartitionImage, TopicImage};
pub use records::{BrokerFeature, ConfigResource, Endpoint, FencingChange, MetadataRecord};
pub use replay::{MetadataReplay, ReplayError};
