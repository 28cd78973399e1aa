//! Kafka's `StickyAssignor` and `CooperativeStickyAssignor` (KIP-54, KIP-429),
//! following `AbstractStickyAssignor`:
//!
//! 1. Each member's *owned* partitions come from its subscription (owned
//!    partitions and generation, subscription v1+). A partition claimed by two
//!    members stays with the one from the higher generation; partitions of topics
//!    a member no longer subscribes to are released.
//! 2. When all members subscribe to the same topics (the common case), quotas are
//!    exact: `min = P / M`, `max = ceil(P / M)`, and exactly `P % M` members get
//!    `max`. A member keeps up to its quota of owned partitions; the released and
//!    unowned partitions, in topic-partition order, are dealt round-robin to the
//!    members below `min`, then one each to members at `min` until `P % M` members
//!    have `max`. (For a new group this gives the round-robin layout of Kafka's
//!    javadoc.)
//! 3. Otherwise each member keeps its owned partitions; the rest go one by one to
//!    the least-loaded subscribed member; then partitions move from the most to the
//!    least loaded subscribed member while the difference exceeds one.
//!
//! The cooperative variant then removes from each member's assignment the
//! partitions another current member still owns: those are revoked by their owner
//! first and assigned in the follow-up rebalance, so no partition ever has two
//! owners.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use protocol::TopicPartition;

use super::{
    empty_assignment, sorted_members, GroupAssignment, MemberSubscription, PartitionAssignor,
    RebalanceProtocol,
};

#[derive(Debug, Clone, Copy, Default)]
pub struct StickyAssignor {
    pub cooperative: bool,
}

impl PartitionAssignor for StickyAssignor {
    fn name(&self) -> &'static str {
        if self.cooperative {
            "cooperative-sticky"
        } else {
            "sticky"
        }
    }

    fn supported_protocols(&self) -> &'static [RebalanceProtocol] {
        if self.cooperative {
            &[RebalanceProtocol::Cooperative, RebalanceProtocol::Eager]
        } else {
            &[RebalanceProtocol::Eager]
        }
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &[MemberSubscription],
    ) -> GroupAssignment {
        let owned = valid_owned_partitions(partitions_per_topic, members);
        let mut assignment = if all_subscriptions_equal(members) {
            constrained_assign(partitions_per_topic, members, &owned)
        } else {
            general_assign(partitions_per_topic, members, &owned)
        };
        if self.cooperative {
            remove_partitions_changing_owner(&mut assignment, &owned);
        }
        assignment
    }
}

/// Owned partitions per member that still exist, are still subscribed, and are
/// not claimed by a member of a later generation.
fn valid_owned_partitions(
    partitions_per_topic: &BTreeMap<String, i32>,
    members: &[MemberSubscription],
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut claims: HashMap<TopicPartition, (i32, &str)> = HashMap::new();
    for member in members {
        let subscription = &member.subscription;
        for tp in &subscription.owned_partitions {
            let exists = partitions_per_topic
                .get(&*tp.topic)
                .is_some_and(|&n| tp.partition >= 0 && tp.partition < n);
            if !exists || !subscription.topics.iter().any(|t| **t == *tp.topic) {
                continue;
            }
            let claim = (subscription.generation_id, member.member_id.as_str());
            claims
                .entry(tp.clone())
                .and_modify(|current| {
                    if claim.0 > current.0 {
                        *current = claim;
                    }
                })
                .or_insert(claim);
        }
    }
    let mut owned: BTreeMap<String, Vec<TopicPartition>> = members
        .iter()
        .map(|m| (m.member_id.clone(), Vec::new()))
        .collect();
    for (tp, (_, member)) in claims {
        owned
            .get_mut(member)
            .expect("claims come from members")
            .push(tp);
    }
    for partitions in owned.values_mut() {
        partitions.sort();
    }
    owned
}

fn all_subscriptions_equal(members: &[MemberSubscription]) -> bool {
    let mut sets = members
        .iter()
        .map(|m| m.subscription.topics.iter().collect::<BTreeSet<_>>());
    match sets.next() {
        None => true,
        Some(first) => sets.all(|s| s == first),
    }
}

fn subscribed_partitions(
    partitions_per_topic: &BTreeMap<String, i32>,
    members: &[MemberSubscription],
) -> Vec<TopicPartition> {
    let topics: BTreeSet<&String> = members
        .iter()
        .flat_map(|m| m.subscription.topics.iter())
        .collect();
    partitions_per_topic
        .iter()
        .filter(|(t, _)| topics.contains(t))
        .flat_map(|(t, &n)| (0..n).map(move |p| TopicPartition::new(t.as_str(), p)))
        .collect()
}

fn constrained_assign(
    partitions_per_topic: &BTreeMap<String, i32>,
    members: &[MemberSubscription],
    owned: &BTreeMap<String, Vec<TopicPartition>>,
) -> GroupAssignment {
    let mut assignment = empty_assignment(members);
    let sorted = sorted_members(members);
    let all = subscribed_partitions(partitions_per_topic, members);
    if sorted.is_empty() || all.is_empty() {
        return assignment;
    }
    let total = all.len();
    let min_quota = total / sorted.len();
    let max_quota = total.div_ceil(sorted.len());
    let expected_over_min = if max_quota > min_quota {
        total % sorted.len()
    } else {
        0
    };
    let mut over_min = 0usize;
    let mut kept: BTreeSet<TopicPartition> = BTreeSet::new();
    // Step 1: keep owned partitions up to the member's quota.
    for member in &sorted {
        let mine = &owned[&member.member_id];
        let keep = if mine.len() <= min_quota {
            mine.len()
        } else if mine.len() >= max_quota && over_min < expected_over_min {
            over_min += 1;
            max_quota
        } else {
            min_quota
        };
        let target = assignment
            .get_mut(&member.member_id)
            .expect("every member has an entry");
        target.extend(mine.iter().take(keep).cloned());
        kept.extend(mine.iter().take(keep).cloned());
    }
    // Step 2: deal the rest round-robin to members under min, then to members at min.
    let mut under_min: Vec<&str> = sorted
        .iter()
        .filter(|m| assignment[&m.member_id].len() < min_quota)
        .map(|m| m.member_id.as_str())
        .collect();
    let mut at_min: Vec<&str> = sorted
        .iter()
        .filter(|m| assignment[&m.member_id].len() == min_quota)
        .map(|m| m.member_id.as_str())
        .collect();
    let mut cursor = 0usize;
    for tp in all.into_iter().filter(|tp| !kept.contains(tp)) {
        let member = if !under_min.is_empty() {
            cursor %= under_min.len();
            let member = under_min[cursor];
            let count = assignment[member].len() + 1;
            if count >= min_quota {
                under_min.remove(cursor);
                if count == min_quota {
                    at_min.push(member);
                }
            } else {
                cursor += 1;
            }
            member
        } else if over_min < expected_over_min && !at_min.is_empty() {
            over_min += 1;
            at_min.remove(0)
        } else {
            // Cannot happen with exact quotas; keep every partition assigned anyway.
            sorted
                .iter()
                .map(|m| m.member_id.as_str())
                .min_by_key(|m| assignment[*m].len())
                .expect("members exist")
        };
        assignment
            .get_mut(member)
            .expect("every member has an entry")
            .push(tp);
    }
    for partitions in assignment.values_mut() {
        partitions.sort();
    }
    assignment
}

fn general_assign(
    partitions_per_topic: &BTreeMap<String, i32>,
    members: &[MemberSubscription],
    owned: &BTreeMap<String, Vec<TopicPartition>>,
) -> GroupAssignment {
    let mut assignment = empty_assignment(members);
    let sorted = sorted_members(members);
    let subscribes = |member: &str, topic: &str| {
        members
            .iter()
            .find(|m| m.member_id == member)
            .is_some_and(|m| m.subscription.topics.iter().any(|t| t == topic))
    };
    let mut kept = BTreeSet::new();
    for member in &sorted {
        let mine = &owned[&member.member_id];
        assignment
            .get_mut(&member.member_id)
            .expect("every member has an entry")
            .extend(mine.iter().cloned());
        kept.extend(mine.iter().cloned());
    }
    for tp in subscribed_partitions(partitions_per_topic, members)
        .into_iter()
        .filter(|tp| !kept.contains(tp))
    {
        let target = sorted
            .iter()
            .filter(|m| subscribes(&m.member_id, &tp.topic))
            .min_by_key(|m| assignment[&m.member_id].len())
            .map(|m| m.member_id.clone());
        if let Some(target) = target {
            assignment
                .get_mut(&target)
                .expect("every member has an entry")
                .push(tp);
        }
    }
    // Balance: move from the most to the least loaded eligible member.
    let limit = assignment.values().map(Vec::len).sum::<usize>() * members.len() + 1;
    for _ in 0..limit {
        let mut moved = false;
        let mut by_load: Vec<String> = sorted.iter().map(|m| m.member_id.clone()).collect();
        by_load.sort_by_key(|m| std::cmp::Reverse(assignment[m].len()));
        'outer: for from in &by_load {
            for to in by_load.iter().rev() {
                if assignment[from].len() <= assignment[to].len() + 1 {
                    continue;
                }
                let candidate = assignment[from]
                    .iter()
                    .rev()
                    .position(|tp| subscribes(to, &tp.topic));
                if let Some(back) = candidate {
                    let index = assignment[from].len() - 1 - back;
                    let tp = assignment.get_mut(from).expect("member").remove(index);
                    assignment.get_mut(to).expect("member").push(tp);
                    moved = true;
                    break 'outer;
                }
            }
        }
        if !moved {
            break;
        }
    }
    for partitions in assignment.values_mut() {
        partitions.sort();
    }
    assignment
}

/// Cooperative step: a partition assigned to a member other than its current
/// owner is held back this round; its owner revokes it and rejoins.
fn remove_partitions_changing_owner(
    assignment: &mut GroupAssignment,
    owned: &BTreeMap<String, Vec<TopicPartition>>,
) {
    let owner: HashMap<&TopicPartition, &str> = owned
        .iter()
        .flat_map(|(m, ps)| ps.iter().map(move |tp| (tp, m.as_str())))
        .collect();
    for (member, partitions) in assignment.iter_mut() {
        partitions.retain(|tp| owner.get(tp).is_none_or(|o| *o == member));
    }
}
