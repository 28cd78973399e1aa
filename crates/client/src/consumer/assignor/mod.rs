//! Partition assignors, run by the group leader between JoinGroup and SyncGroup,
//! as Kafka's `ConsumerPartitionAssignor`s:
//!
//! | name | protocol | layout |
//! |---|---|---|
//! | `range` | eager | per topic, consecutive ranges; the first `P % M` members get one more |
//! | `roundrobin` | eager | all partitions in order, dealt to members in turn |
//! | `sticky` | eager | balanced, keeping as many owned partitions as possible |
//! | `cooperative-sticky` | cooperative | `sticky`, minus partitions moving between members this round |
//!
//! Members are ordered by `group.instance.id` when set, else member id, so every
//! leader computes the same layout. The group uses the first assignor in the
//! leader's `partition.assignment.strategy` that every member supports (the
//! coordinator picks it); the rebalance protocol is cooperative only if every
//! configured assignor supports it, as in Java.

pub mod range;
pub mod round_robin;
pub mod sticky;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use protocol::TopicPartition;

use crate::consumer::protocol::Subscription;
use crate::error::{ClientError, Result};

/// How members give up partitions during a rebalance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebalanceProtocol {
    /// Every member revokes everything before rejoining.
    Eager,
    /// Members keep their partitions and revoke only what moves (KIP-429).
    Cooperative,
}

/// One member's subscription, as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSubscription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub subscription: Subscription,
}

impl MemberSubscription {
    /// The key members are ordered by.
    pub fn sort_key(&self) -> &str {
        self.group_instance_id.as_deref().unwrap_or(&self.member_id)
    }
}

/// Partitions per member id.
pub type GroupAssignment = BTreeMap<String, Vec<TopicPartition>>;

/// A partition assignment strategy.
pub trait PartitionAssignor: Send + Sync + std::fmt::Debug {
    /// The protocol name members advertise (`range`, `roundrobin`, ...).
    fn name(&self) -> &'static str;

    /// The rebalance protocols it supports.
    fn supported_protocols(&self) -> &'static [RebalanceProtocol] {
        &[RebalanceProtocol::Eager]
    }

    /// Assigns the partitions of `partitions_per_topic` to `members`. Every member
    /// gets an entry, possibly empty; each partition goes to at most one member.
    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &[MemberSubscription],
    ) -> GroupAssignment;
}

/// The assignor named `name` (Kafka's names; Java class names also accepted).
pub fn by_name(name: &str) -> Result<Box<dyn PartitionAssignor>> {
    let short = name
        .trim()
        .rsplit('.')
        .next()
        .unwrap_or(name)
        .to_ascii_lowercase();
    Ok(match short.as_str() {
        "range" | "rangeassignor" => Box::new(range::RangeAssignor),
        "roundrobin" | "round-robin" | "roundrobinassignor" => {
            Box::new(round_robin::RoundRobinAssignor)
        }
        "sticky" | "stickyassignor" => Box::new(sticky::StickyAssignor { cooperative: false }),
        "cooperative-sticky" | "cooperativestickyassignor" => {
            Box::new(sticky::StickyAssignor { cooperative: true })
        }
        _ => {
            return Err(ClientError::Config {
                key: "partition.assignment.strategy".into(),
                reason: format!(
                    "unknown assignor {name:?} (range, roundrobin, sticky, cooperative-sticky)"
                ),
            })
        }
    })
}

/// The protocol a list of assignors implies: cooperative only if all support it.
pub fn common_protocol(assignors: &[Box<dyn PartitionAssignor>]) -> RebalanceProtocol {
    if !assignors.is_empty()
        && assignors.iter().all(|a| {
            a.supported_protocols()
                .contains(&RebalanceProtocol::Cooperative)
        })
    {
        RebalanceProtocol::Cooperative
    } else {
        RebalanceProtocol::Eager
    }
}

/// Members sorted by [`MemberSubscription::sort_key`].
pub(crate) fn sorted_members(members: &[MemberSubscription]) -> Vec<&MemberSubscription> {
    let mut sorted: Vec<&MemberSubscription> = members.iter().collect();
    sorted.sort_by(|a, b| {
        a.sort_key()
            .cmp(b.sort_key())
            .then_with(|| a.member_id.cmp(&b.member_id))
    });
    sorted
}

/// An entry for every member.
pub(crate) fn empty_assignment(members: &[MemberSubscription]) -> GroupAssignment {
    members
        .iter()
        .map(|m| (m.member_id.clone(), Vec::new()))
        .collect()
}
