//! AlterPartition (56, v2-3; KIP-497): a partition leader asks the controller to
//! change its ISR. Kafka's `ReplicationControlManager.alterPartition` and
//! `validateAlterPartitionData`, checked in Kafka's order:
//!
//! 1. the sender's broker epoch (else the whole request: STALE_BROKER_EPOCH);
//! 2. the topic id (UNKNOWN_TOPIC_ID for each of its partitions), the partition
//!    (UNKNOWN_TOPIC_OR_PARTITION);
//! 3. a leader or partition epoch newer than the controller's: NOT_CONTROLLER
//!    (this controller is behind);
//! 4. an older leader epoch: FENCED_LEADER_EPOCH; a sender that is not the
//!    leader: INVALID_REQUEST; an older partition epoch: INVALID_UPDATE_VERSION;
//! 5. an ISR that is not a set of replicas, or lacks the leader, or a leader
//!    recovery state that cannot be: INVALID_REQUEST;
//! 6. a new member that is not registered, shutting down, fenced, or of another
//!    broker epoch (KIP-903; -1 skips the epoch check): INELIGIBLE_REPLICA;
//! 7. otherwise the change is built ([`PartitionChangeBuilder`]); if it moves the
//!    leader away from the sender (only when a reassignment completes) the
//!    answer is NEW_LEADER_ELECTED, with the record still written.
//!
//! Version 2 carries ISR ids only: the caller passes them with epoch -1.

use uuid::Uuid;

use crate::cluster_control::check_broker_epoch;
use crate::error::BrokerRequestError;
use crate::image::{ClusterImage, PartitionImage};
use crate::partition_change::PartitionChangeBuilder;
use crate::records::MetadataRecord;

/// Kafka's `LeaderRecoveryState.RECOVERED`.
pub const RECOVERED: i8 = 0;
/// Kafka's `LeaderRecoveryState.RECOVERING` (after an unclean election).
pub const RECOVERING: i8 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartitionRequest {
    pub broker_id: i32,
    pub broker_epoch: i64,
    pub topics: Vec<AlterPartitionTopic>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartitionTopic {
    pub topic_id: Uuid,
    pub partitions: Vec<AlterPartitionData>,
}

/// One member of a proposed ISR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsrMember {
    pub broker_id: i32,
    /// -1: not checked (version 2 requests).
    pub broker_epoch: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartitionData {
    pub partition_index: i32,
    pub leader_epoch: i32,
    pub new_isr: Vec<IsrMember>,
    pub leader_recovery_state: i8,
    pub partition_epoch: i32,
}

/// A partition's refusal, named as Kafka's error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterPartitionError {
    UnknownTopicId,
    UnknownTopicOrPartition,
    NotController,
    FencedLeaderEpoch,
    InvalidRequest,
    InvalidUpdateVersion,
    IneligibleReplica,
    NewLeaderElected,
}

/// The partition as it is after the request: what the leader continues from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlteredPartition {
    pub leader_id: i32,
    pub isr: Vec<i32>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub leader_recovery_state: i8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartitionResult {
    pub partition_index: i32,
    pub result: Result<AlteredPartition, AlterPartitionError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartitionTopicResult {
    pub topic_id: Uuid,
    pub partitions: Vec<AlterPartitionResult>,
}

/// Decides an AlterPartition request: the records, and each partition's answer.
pub fn alter_partition(
    image: &ClusterImage,
    request: &AlterPartitionRequest,
) -> Result<(Vec<MetadataRecord>, Vec<AlterPartitionTopicResult>), BrokerRequestError> {
    check_broker_epoch(image, request.broker_id, request.broker_epoch)?;
    let mut records = Vec::new();
    let mut answers = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let known = image
            .topic_by_id(&topic.topic_id)
            .filter(|_| !topic.topic_id.is_nil());
        let partitions = topic
            .partitions
            .iter()
            .map(|data| {
                let result = match known {
                    None => Err(AlterPartitionError::UnknownTopicId),
                    Some(t) => alter_one(
                        image,
                        request.broker_id,
                        topic.topic_id,
                        t.partitions.get(&data.partition_index),
                        data,
                        &mut records,
                    ),
                };
                AlterPartitionResult {
                    partition_index: data.partition_index,
                    result,
                }
            })
            .collect();
        answers.push(AlterPartitionTopicResult {
            topic_id: topic.topic_id,
            partitions,
        });
    }
    Ok((records, answers))
}

fn alter_one(
    image: &ClusterImage,
    sender: i32,
    topic_id: Uuid,
    partition: Option<&PartitionImage>,
    data: &AlterPartitionData,
    records: &mut Vec<MetadataRecord>,
) -> Result<AlteredPartition, AlterPartitionError> {
    let partition = partition.ok_or(AlterPartitionError::UnknownTopicOrPartition)?;
    validate(image, sender, partition, data)?;
    let active = |r: i32| image.is_active(r);
    let target_isr = data.new_isr.iter().map(|m| m.broker_id).collect();
    let mut after = partition.clone();
    if let Some(record) = PartitionChangeBuilder::new(partition, topic_id, &active)
        .target_isr(target_isr)
        .build()
    {
        if let MetadataRecord::PartitionChange {
            leader,
            isr,
            replicas,
            ..
        } = &record
        {
            after = partition.merge(*leader, isr.as_deref(), replicas.as_deref());
            records.push(record.clone());
            if leader.is_some_and(|l| l != sender) {
                return Err(AlterPartitionError::NewLeaderElected);
            }
        }
    }
    Ok(AlteredPartition {
        leader_id: after.leader,
        isr: after.isr,
        leader_epoch: after.leader_epoch,
        partition_epoch: after.partition_epoch,
        leader_recovery_state: RECOVERED,
    })
}

/// Kafka's `validateAlterPartitionData` from the epochs on.
fn validate(
    image: &ClusterImage,
    sender: i32,
    partition: &PartitionImage,
    data: &AlterPartitionData,
) -> Result<(), AlterPartitionError> {
    use AlterPartitionError::*;
    if data.leader_epoch > partition.leader_epoch
        || data.partition_epoch > partition.partition_epoch
    {
        return Err(NotController);
    }
    if data.leader_epoch < partition.leader_epoch {
        return Err(FencedLeaderEpoch);
    }
    if sender != partition.leader {
        return Err(InvalidRequest);
    }
    if data.partition_epoch < partition.partition_epoch {
        return Err(InvalidUpdateVersion);
    }
    let new_isr: Vec<i32> = data.new_isr.iter().map(|m| m.broker_id).collect();
    if !is_valid_isr(&partition.replicas, &new_isr) || !new_isr.contains(&partition.leader) {
        return Err(InvalidRequest);
    }
    // RECOVERING (after an unclean election) with more than the leader in the
    // ISR is refused, and so is RECOVERED going back to RECOVERING. Rivulet's
    // partitions are always RECOVERED (no unclean elections): only RECOVERED
    // passes. (Kafka fails unknown states too.)
    if data.leader_recovery_state != RECOVERED {
        return Err(InvalidRequest);
    }
    let ineligible = data
        .new_isr
        .iter()
        .find(|m| match image.brokers.get(&m.broker_id) {
            None => true,
            Some(b) => {
                b.in_controlled_shutdown
                    || b.fenced
                    || (m.broker_epoch != -1 && m.broker_epoch != b.broker_epoch)
            }
        });
    if let Some(member) = ineligible {
        tracing::info!(
            "Rejecting AlterPartition request from node {sender}: replica {} is ineligible for the ISR.",
            member.broker_id
        );
        return Err(IneligibleReplica);
    }
    Ok(())
}

/// Kafka's `Replicas.validateIsr`: every member a replica, none twice, none
/// negative (an empty ISR passes here and fails for lacking the leader).
fn is_valid_isr(replicas: &[i32], isr: &[i32]) -> bool {
    let mut sorted = isr.to_vec();
    sorted.sort_unstable();
    if sorted.first().is_some_and(|first| *first < 0) {
        return false;
    }
    sorted.windows(2).all(|w| w[0] != w[1]) && sorted.iter().all(|m| replicas.contains(m))
}

#[cfg(test)]
#[path = "alter_partition_tests.rs"]
mod tests;
