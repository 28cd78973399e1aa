//! Leader elections and ISR changes: Kafka's `PartitionChangeBuilder`
//! (`controller/PartitionChangeBuilder.java`), and what fencing, unfencing and
//! controlled shutdown do to partitions (`ReplicationControlManager.
//! handleBroker{Fenced,Unfenced,InControlledShutdown}`, `generateLeaderAndIsrUpdates`).
//!
//! A change is one `PartitionChangeRecord` holding only what changes; no record
//! at all when nothing does. Applying it follows Kafka's merge rules
//! ([`PartitionImage::merge`]): any leader written, even the same one or -1,
//! starts a new leader epoch, and every record is a new partition epoch. An ISR
//! shrink alone does not bump the leader epoch (`metadata.version` >= 3.6).
//!
//! Eligible leader replicas (KIP-966) are not kept (as a Kafka cluster with
//! `eligible.leader.replicas.version=0`), so an ISR is never written empty: when
//! its last member goes, that member stays in the ISR and the partition has no
//! leader (-1) until it comes back. Unclean elections are not made
//! (`unclean.leader.election.enable=false`, Kafka's default).

use uuid::Uuid;

use crate::image::{ClusterImage, PartitionImage};
use crate::records::{FencingChange, MetadataRecord, NO_LEADER};

/// How a leader is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Election {
    /// Keep the current leader if it is still valid, else the first valid
    /// replica in replica order.
    Online,
    /// The first replica if valid, else as [`Election::Online`].
    Preferred,
}

/// Builds the record that takes a partition to a target ISR and replica set,
/// electing a leader among the valid ones: members of the target ISR that
/// `acceptable_leader` accepts.
pub struct PartitionChangeBuilder<'a> {
    partition: &'a PartitionImage,
    topic_id: Uuid,
    acceptable_leader: &'a dyn Fn(i32) -> bool,
    election: Election,
    target_isr: Vec<i32>,
    target_replicas: Vec<i32>,
}

impl<'a> PartitionChangeBuilder<'a> {
    /// A builder whose targets are the partition as it is.
    pub fn new(
        partition: &'a PartitionImage,
        topic_id: Uuid,
        acceptable_leader: &'a dyn Fn(i32) -> bool,
    ) -> PartitionChangeBuilder<'a> {
        PartitionChangeBuilder {
            partition,
            topic_id,
            acceptable_leader,
            election: Election::Online,
            target_isr: partition.isr.clone(),
            target_replicas: partition.replicas.clone(),
        }
    }

    pub fn target_isr(mut self, isr: Vec<i32>) -> Self {
        self.target_isr = isr;
        self
    }

    pub fn target_replicas(mut self, replicas: Vec<i32>) -> Self {
        self.target_replicas = replicas;
        self
    }

    pub fn election(mut self, election: Election) -> Self {
        self.election = election;
        self
    }

    fn is_valid_leader(&self, replica: i32) -> bool {
        self.target_isr.contains(&replica) && (self.acceptable_leader)(replica)
    }

    /// The leader the election gives (-1: none is valid).
    pub fn elect_leader(&self) -> i32 {
        let current = self.partition.leader;
        if self.election == Election::Preferred {
            if let Some(&preferred) = self.target_replicas.first() {
                if self.is_valid_leader(preferred) {
                    return preferred;
                }
            }
        }
        if self.is_valid_leader(current) {
            return current;
        }
        self.target_replicas
            .iter()
            .copied()
            .find(|r| self.is_valid_leader(*r))
            .unwrap_or(NO_LEADER)
    }

    /// The change, or `None` when nothing changes.
    pub fn build(self) -> Option<MetadataRecord> {
        let p = self.partition;
        let elected = self.elect_leader();
        let mut leader = (elected != p.leader).then_some(elected);
        // A replica leaving the replica set must not follow the old leader
        // epoch: force a bump (Kafka's reassignment rule).
        if leader.is_none() && !p.replicas.iter().all(|r| self.target_replicas.contains(r)) {
            leader = Some(p.leader);
        }
        // Without ELR an empty ISR is never written: the last member stays.
        let isr = (!self.target_isr.is_empty() && self.target_isr != p.isr)
            .then(|| self.target_isr.clone());
        let replicas = (!self.target_replicas.is_empty() && self.target_replicas != p.replicas)
            .then(|| self.target_replicas.clone());
        if leader.is_none() && isr.is_none() && replicas.is_none() {
            return None;
        }
        Some(MetadataRecord::PartitionChange {
            topic_id: self.topic_id,
            partition: p.partition,
            leader,
            isr,
            replicas,
        })
    }
}

/// Kafka's `generateLeaderAndIsrUpdates` over `partitions`: takes `remove` (if
/// not -1) out of every ISR and leadership, and accepts `add` (if not -1) as a
/// leader although the image may still show it fenced. Other leaders must be
/// active. Partitions the image does not know are skipped.
fn leader_and_isr_updates(
    image: &ClusterImage,
    remove: i32,
    add: i32,
    partitions: &[(Uuid, i32)],
) -> Vec<MetadataRecord> {
    let acceptable = |r: i32| r != remove && (r == add || image.is_active(r));
    let mut records = Vec::new();
    for (topic_id, partition) in partitions {
        let Some(p) = image
            .topic_by_id(topic_id)
            .and_then(|t| t.partitions.get(partition))
        else {
            continue;
        };
        let target_isr: Vec<i32> = p.isr.iter().copied().filter(|r| *r != remove).collect();
        let record = PartitionChangeBuilder::new(p, *topic_id, &acceptable)
            .target_isr(target_isr)
            .build();
        records.extend(record);
    }
    records
}

/// The partitions whose ISR holds `broker` (key -1: the leaderless ones).
fn partitions_indexed_by(image: &ClusterImage, broker: i32) -> Vec<(Uuid, i32)> {
    image
        .brokers_to_isrs
        .get(&broker)
        .map(|set| set.iter().copied().collect())
        .unwrap_or_default()
}

/// Whether `broker` leads any partition.
pub fn has_leaderships(image: &ClusterImage, broker: i32) -> bool {
    partitions_indexed_by(image, broker)
        .iter()
        .any(|(topic_id, partition)| {
            image
                .topic_by_id(topic_id)
                .and_then(|t| t.partitions.get(partition))
                .is_some_and(|p| p.leader == broker)
        })
}

/// Kafka's `handleBrokerFenced`: `broker` leaves every ISR (new leaders where
/// it led), then its registration is fenced. Nothing for an unknown broker.
pub fn handle_broker_fenced(image: &ClusterImage, broker: i32) -> Vec<MetadataRecord> {
    let Some(registration) = image.brokers.get(&broker) else {
        return Vec::new();
    };
    let mut records = leader_and_isr_updates(
        image,
        broker,
        NO_LEADER,
        &partitions_indexed_by(image, broker),
    );
    records.push(MetadataRecord::BrokerRegistrationChange {
        broker_id: broker,
        broker_epoch: registration.broker_epoch,
        fenced: FencingChange::Fence,
        in_controlled_shutdown: false,
    });
    records
}

/// Kafka's `handleBrokerUnfenced`: the registration is unfenced, then every
/// leaderless partition elects again, `broker` acceptable (so the last ISR
/// member that comes back leads again).
pub fn handle_broker_unfenced(
    image: &ClusterImage,
    broker: i32,
    broker_epoch: i64,
) -> Vec<MetadataRecord> {
    let mut records = vec![MetadataRecord::BrokerRegistrationChange {
        broker_id: broker,
        broker_epoch,
        fenced: FencingChange::Unfence,
        in_controlled_shutdown: false,
    }];
    records.extend(leader_and_isr_updates(
        image,
        NO_LEADER,
        broker,
        &partitions_indexed_by(image, NO_LEADER),
    ));
    records
}

/// Kafka's `handleBrokerInControlledShutdown`: the registration enters
/// controlled shutdown (once), then `broker` leaves every ISR and its
/// leaderships move to other active ISR members.
pub fn handle_broker_in_controlled_shutdown(
    image: &ClusterImage,
    broker: i32,
    broker_epoch: i64,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    let already = image
        .brokers
        .get(&broker)
        .is_some_and(|b| b.in_controlled_shutdown);
    if !already {
        records.push(MetadataRecord::BrokerRegistrationChange {
            broker_id: broker,
            broker_epoch,
            fenced: FencingChange::None,
            in_controlled_shutdown: true,
        });
    }
    records.extend(leader_and_isr_updates(
        image,
        broker,
        NO_LEADER,
        &partitions_indexed_by(image, broker),
    ));
    records
}

#[cfg(test)]
#[path = "partition_change_tests.rs"]
mod tests;
