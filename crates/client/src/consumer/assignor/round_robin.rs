//! Kafka's `RoundRobinAssignor`: every subscribed partition, sorted by topic then
//! partition, dealt to the members in turn, skipping members not subscribed to the
//! partition's topic.

use std::collections::BTreeMap;

use protocol::TopicPartition;

use super::{
    empty_assignment, sorted_members, GroupAssignment, MemberSubscription, PartitionAssignor,
};

#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobinAssignor;

impl PartitionAssignor for RoundRobinAssignor {
    fn name(&self) -> &'static str {
        "roundrobin"
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &[MemberSubscription],
    ) -> GroupAssignment {
        let mut assignment = empty_assignment(members);
        let sorted = sorted_members(members);
        if sorted.is_empty() {
            return assignment;
        }
        let mut next = 0usize;
        for (topic, &partitions) in partitions_per_topic {
            if !sorted.iter().any(|m| m.subscription.topics.contains(topic)) {
                continue;
            }
            for partition in 0..partitions {
                // Advance to the next member subscribed to `topic` (one exists).
                while !sorted[next % sorted.len()]
                    .subscription
                    .topics
                    .contains(topic)
                {
                    next += 1;
                }
                let member = sorted[next % sorted.len()];
                assignment
                    .get_mut(&member.member_id)
                    .expect("every member has an entry")
                    .push(TopicPartition::new(topic.as_str(), partition));
                next += 1;
            }
        }
        assignment
    }
}
