//! Kafka's `RangeAssignor`: for each topic, its partitions split into
//! consecutive ranges over the members subscribed to it (in member order); with
//! `P` partitions and `M` members, each gets `P / M` and the first `P % M` one more.

use std::collections::BTreeMap;

use protocol::TopicPartition;

use super::{
    empty_assignment, sorted_members, GroupAssignment, MemberSubscription, PartitionAssignor,
};

#[derive(Debug, Clone, Copy, Default)]
pub struct RangeAssignor;

impl PartitionAssignor for RangeAssignor {
    fn name(&self) -> &'static str {
        "range"
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &[MemberSubscription],
    ) -> GroupAssignment {
        let mut assignment = empty_assignment(members);
        let sorted = sorted_members(members);
        for (topic, &partitions) in partitions_per_topic {
            let subscribed: Vec<&&MemberSubscription> = sorted
                .iter()
                .filter(|m| m.subscription.topics.contains(topic))
                .collect();
            if subscribed.is_empty() || partitions <= 0 {
                continue;
            }
            let count = subscribed.len() as i32;
            let per_member = partitions / count;
            let with_extra = partitions % count;
            for (i, member) in subscribed.iter().enumerate() {
                let i = i as i32;
                let start = per_member * i + i.min(with_extra);
                let length = per_member + i32::from(i < with_extra);
                let owned = assignment
                    .get_mut(&member.member_id)
                    .expect("every member has an entry");
                owned.extend(
                    (start..start + length).map(|p| TopicPartition::new(topic.as_str(), p)),
                );
            }
        }
        assignment
    }
}
