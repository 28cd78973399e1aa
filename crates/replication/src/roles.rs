//! What this broker does when a new metadata image is published (Kafka's
//! `TopicsDelta.localChanges` and `ReplicaManager.applyDelta`), as an ordered
//! list of [`RoleCommand`]s for the shell, plus the pieces the shell needs
//! around the partition machines: who may join an ISR ([`brokers_changed`]),
//! where a follower fetches from ([`initial_fetch_state`]) and what an
//! AlterPartition answer means ([`alter_partition_outcome`]).
//!
//! Only partitions that changed between the two images are touched, and a
//! partition changes role only at a new partition epoch:
//! - **Deletes first** (a topic deleted, or this broker no longer a replica):
//!   a re-created topic may reuse the directory name.
//! - **Leaders**: out of their fetchers first, then the machine gets the new
//!   state. At a new leader epoch it returns `Command::BecomeLeader{epoch,
//!   start}`: the shell must call `Log::assign_epoch_start_offset(epoch, start)`
//!   before any append in that epoch (Kafka's `maybeAssignEpochStartOffset`;
//!   without it a follower with a tail in an older epoch is answered from the
//!   wrong epoch).
//! - **Followers**: the machine gets the new state; at a new leader epoch it
//!   returns `Command::StartFollowing`, which the shell turns into
//!   `FetcherManager::add_partitions` with [`initial_fetch_state`] (no fetcher
//!   when the leader is not registered). In controlled shutdown, partitions
//!   with no leader or without this broker in the ISR stop fetching.
//! - Idle fetchers are closed last.

use std::collections::BTreeMap;
use std::sync::Arc;

use metadata::{ClusterImage, PartitionImage};
use protocol::{ErrorCode, TopicPartition};
use uuid::Uuid;

use crate::events::{AliveBroker, Input, IsrChangeError, PartitionMetadata};
use crate::fetcher::InitialFetchState;

/// A partition whose state changed, with what the machine must be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleChange {
    pub topic_partition: TopicPartition,
    pub topic_id: Uuid,
    pub metadata: PartitionMetadata,
    /// The leader epoch moved (Kafka's `electedLeaders` for leaders; for
    /// followers, the fetcher restarts).
    pub new_leader_epoch: bool,
}

/// This broker's part of a metadata change (Kafka's `LocalReplicaChanges`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalReplicaChanges {
    pub deletes: Vec<TopicPartition>,
    pub leaders: Vec<RoleChange>,
    pub followers: Vec<RoleChange>,
}

/// Kafka's `TopicsDelta.localChanges(brokerId)`: partitions placed here whose
/// partition epoch changed (or that are new), split by whether this broker
/// leads them, and partitions no longer placed here.
pub fn local_changes(
    broker_id: i32,
    previous: &ClusterImage,
    next: &ClusterImage,
) -> LocalReplicaChanges {
    let mut changes = LocalReplicaChanges::default();
    // Topics deleted (their id is gone): every partition that was here.
    for topic in previous.topics.values() {
        if next.topic_names.contains_key(&topic.topic_id) {
            continue;
        }
        for p in topic.partitions.values() {
            if p.replicas.contains(&broker_id) {
                let tp = TopicPartition::new(Arc::clone(&topic.name), p.partition);
                changes.deletes.push(tp);
            }
        }
    }
    for topic in next.topics.values() {
        let before = previous
            .topic_names
            .get(&topic.topic_id)
            .and_then(|name| previous.topics.get(name));
        for p in topic.partitions.values() {
            let prev: Option<&PartitionImage> = before.and_then(|t| t.partitions.get(&p.partition));
            if prev == Some(p) {
                continue;
            }
            let tp = TopicPartition::new(Arc::clone(&topic.name), p.partition);
            if !p.replicas.contains(&broker_id) {
                if prev.is_some_and(|prev| prev.replicas.contains(&broker_id)) {
                    changes.deletes.push(tp);
                }
                continue;
            }
            if prev.is_some_and(|prev| prev.partition_epoch == p.partition_epoch) {
                continue;
            }
            let change = RoleChange {
                topic_partition: tp,
                topic_id: topic.topic_id,
                metadata: PartitionMetadata::from(p),
                new_leader_epoch: prev.is_none_or(|prev| prev.leader_epoch != p.leader_epoch),
            };
            if p.leader == broker_id {
                changes.leaders.push(change);
            } else {
                changes.followers.push(change);
            }
        }
    }
    changes
}

/// One step of applying a metadata change, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleCommand {
    /// Kafka's `stopPartitions`: out of its fetcher, `Input::Deleted` to its
    /// machine (waiting produces are answered), and its log deleted.
    StopReplica { topic_partition: TopicPartition },
    /// Kafka's `removeFetcherForPartitions`, before these partitions lead.
    RemoveFetchers(Vec<TopicPartition>),
    /// Host the partition (create or load its log) and feed its machine
    /// `Input::MetadataChanged`; execute what it returns (`BecomeLeader`:
    /// assign the epoch start offset; `StopFollowing`: leave the fetcher).
    MakeLeader(RoleChange),
    /// As `MakeLeader`; `StartFollowing` adds it to the leader's fetcher.
    MakeFollower(RoleChange),
    /// Controlled shutdown: these stop fetching (no leader, or this broker is not
    /// in their ISR), their logs stay.
    StopFetching(Vec<TopicPartition>),
    /// Kafka's `shutdownIdleFetcherThreads`.
    RemoveIdleFetchers,
}

/// Kafka's `ReplicaManager.applyDelta` for this broker, as commands.
pub fn apply_delta(
    broker_id: i32,
    previous: &ClusterImage,
    next: &ClusterImage,
    in_controlled_shutdown: bool,
) -> Vec<RoleCommand> {
    let changes = local_changes(broker_id, previous, next);
    let mut commands: Vec<RoleCommand> = changes
        .deletes
        .into_iter()
        .map(|topic_partition| RoleCommand::StopReplica { topic_partition })
        .collect();
    if changes.leaders.is_empty() && changes.followers.is_empty() {
        return commands;
    }
    if !changes.leaders.is_empty() {
        commands.push(RoleCommand::RemoveFetchers(
            changes
                .leaders
                .iter()
                .map(|c| c.topic_partition.clone())
                .collect(),
        ));
        commands.extend(changes.leaders.into_iter().map(RoleCommand::MakeLeader));
    }
    let stop: Vec<TopicPartition> = changes
        .followers
        .iter()
        .filter(|c| {
            in_controlled_shutdown
                && (c.metadata.leader < 0 || !c.metadata.isr.contains(&broker_id))
        })
        .map(|c| c.topic_partition.clone())
        .collect();
    commands.extend(changes.followers.into_iter().map(RoleCommand::MakeFollower));
    if !stop.is_empty() {
        commands.push(RoleCommand::StopFetching(stop));
    }
    commands.push(RoleCommand::RemoveIdleFetchers);
    commands
}

/// The registered, unfenced brokers, as the partition machines see them.
pub fn alive_brokers(image: &ClusterImage) -> BTreeMap<i32, AliveBroker> {
    image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| {
            let alive = AliveBroker {
                broker_epoch: b.broker_epoch,
                in_controlled_shutdown: b.in_controlled_shutdown,
            };
            (b.node_id, alive)
        })
        .collect()
}

/// `Input::BrokersChanged` for every hosted partition when the image changed who
/// may join an ISR (a broker registered, fenced, unfenced, shutting down, or
/// re-registered with a new epoch) or this broker's own epoch; `None` when not.
pub fn brokers_changed(
    broker_id: i32,
    previous: &ClusterImage,
    next: &ClusterImage,
) -> Option<Input> {
    let epoch = |image: &ClusterImage| image.brokers.get(&broker_id).map_or(-1, |b| b.broker_epoch);
    let alive = alive_brokers(next);
    if alive == alive_brokers(previous) && epoch(previous) == epoch(next) {
        return None;
    }
    Some(Input::BrokersChanged {
        local_broker_epoch: epoch(next),
        alive,
    })
}

/// What a follower's fetcher starts from after `Command::StartFollowing`, when
/// the leader is registered and reachable on `inter_broker_listener` (Kafka
/// skips the partition otherwise, until the next leader change).
pub fn initial_fetch_state(
    image: &ClusterImage,
    inter_broker_listener: &str,
    topic_partition: &TopicPartition,
    leader: i32,
    leader_epoch: i32,
) -> Option<InitialFetchState> {
    let topic = image.topics.get(&topic_partition.topic)?;
    let broker = image.brokers.get(&leader)?;
    broker
        .endpoints
        .iter()
        .any(|e| e.name == inter_broker_listener)
        .then_some(InitialFetchState {
            topic_id: topic.topic_id,
            leader,
            current_leader_epoch: leader_epoch,
        })
}

/// What a partition's AlterPartition answer means to its machine (Kafka's
/// `Partition.handleAlterPartitionError` and `handleAlterPartitionUpdate`):
/// NONE commits what the controller kept; the rest fail the proposal.
pub fn alter_partition_outcome(
    error: ErrorCode,
    leader_epoch: i32,
    partition_epoch: i32,
    isr: Vec<i32>,
) -> Input {
    let failed = match error {
        ErrorCode::None => {
            return Input::IsrChangeCommitted {
                leader_epoch,
                partition_epoch,
                isr,
            }
        }
        // The controller says the proposal was not applied and our partition
        // epoch is right: back to the committed ISR.
        ErrorCode::OperationNotAttempted | ErrorCode::IneligibleReplica => IsrChangeError::Rejected,
        // Our view is behind: wait for the metadata that settles it.
        ErrorCode::UnknownTopicOrPartition
        | ErrorCode::UnknownTopicId
        | ErrorCode::FencedLeaderEpoch
        | ErrorCode::InvalidUpdateVersion
        | ErrorCode::InvalidRequest
        | ErrorCode::NewLeaderElected => IsrChangeError::Stale,
        // Kafka retries on anything else.
        _ => IsrChangeError::Retriable,
    };
    Input::IsrChangeFailed(failed)
}

#[cfg(test)]
#[path = "roles_tests.rs"]
mod tests;
