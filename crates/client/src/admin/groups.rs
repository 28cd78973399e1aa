//! Consumer groups through the admin client: list, describe (members and their
//! assignments, decoded from the consumer protocol), delete, and the group's
//! committed offsets (list, alter, delete).

use std::collections::BTreeMap;

use protocol::kafka::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use protocol::kafka::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest, OffsetDeleteRequest,
};
use protocol::TopicPartition;

use crate::admin::Admin;
use crate::consumer::protocol::decode_assignment;
use crate::error::{ClientError, Result};
use crate::rpc::{
    self, at_group_coordinator, sb, topic_name, Committer, ListedOffset, OffsetAndMetadata,
};

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// Empty when the broker's ListGroups version has no state.
    pub state: String,
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    /// Decoded from the member's assignment when the group is a consumer group.
    pub assignment: Vec<TopicPartition>,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    /// The assignor chosen (`range`, `cooperative-sticky`...).
    pub protocol: String,
    pub members: Vec<MemberDescription>,
    pub coordinator: i32,
}

impl Admin {
    /// Every group on every broker.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let metadata = self
            .cluster
            .refresh_scope(crate::cluster::MetadataScope::Topics(Vec::new()))
            .await?;
        let mut groups = Vec::new();
        for node in metadata.brokers.keys() {
            let response = self
                .cluster
                .connection(*node)
                .await?
                .send(&ListGroupsRequest::default())
                .await?;
            ClientError::check(
                response.error_code,
                || format!("ListGroups on node {node}"),
                None,
            )?;
            groups.extend(response.groups.into_iter().map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
            }));
        }
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(groups)
    }

    /// Describes groups at their coordinators; an unknown group fails with
    /// GROUP_ID_NOT_FOUND (Kafka 4 answers so; older brokers return it `Dead`).
    pub async fn describe_groups(
        &self,
        group_ids: &[&str],
    ) -> Result<Vec<ConsumerGroupDescription>> {
        let mut descriptions = Vec::new();
        for group in group_ids {
            let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(sb(group))]);
            let (response, coordinator) =
                at_group_coordinator(&self.cluster, group, |connection| {
                    let request = request.clone();
                    async move {
                        let node = connection.node_id();
                        let response = connection.send(&request).await?;
                        for g in &response.groups {
                            let message = g.error_message.as_ref().map(|m| m.to_string());
                            ClientError::check(
                                g.error_code,
                                || format!("group {group}"),
                                message.as_deref(),
                            )?;
                        }
                        Ok((response, node))
                    }
                })
                .await?;
            for g in response.groups {
                let consumer = g.protocol_type.as_str() == "consumer";
                let members = g
                    .members
                    .into_iter()
                    .map(|m| MemberDescription {
                        member_id: m.member_id.to_string(),
                        group_instance_id: m.group_instance_id.map(|i| i.to_string()),
                        client_id: m.client_id.to_string(),
                        host: m.client_host.to_string(),
                        assignment: if consumer {
                            decode_assignment(&m.member_assignment)
                                .map(|a| a.partitions)
                                .unwrap_or_default()
                        } else {
                            Vec::new()
                        },
                    })
                    .collect();
                descriptions.push(ConsumerGroupDescription {
                    group_id: g.group_id.0.to_string(),
                    state: g.group_state.to_string(),
                    protocol_type: g.protocol_type.to_string(),
                    protocol: g.protocol_data.to_string(),
                    members,
                    coordinator,
                });
            }
        }
        Ok(descriptions)
    }

    /// Deletes empty groups and their offsets.
    pub async fn delete_groups(&self, group_ids: &[&str]) -> Result<()> {
        for group in group_ids {
            let request =
                DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb(group))]);
            at_group_coordinator(&self.cluster, group, |connection| {
                let request = request.clone();
                async move {
                    let response = connection.send(&request).await?;
                    for r in response.results {
                        ClientError::check(
                            r.error_code,
                            || format!("group {}", r.group_id.0),
                            None,
                        )?;
                    }
                    Ok(())
                }
            })
            .await?;
        }
        Ok(())
    }

    /// The group's committed offsets (all partitions when `partitions` is `None`).
    pub async fn list_consumer_group_offsets(
        &self,
        group: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<BTreeMap<TopicPartition, OffsetAndMetadata>> {
        rpc::fetch_committed(&self.cluster, group, partitions, false).await
    }

    /// Sets the group's committed offsets (the group must have no active members).
    pub async fn alter_consumer_group_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<()> {
        rpc::commit_offsets(&self.cluster, group, &Committer::admin(), offsets).await
    }

    /// Deletes the group's committed offsets for `partitions` (OffsetDelete);
    /// fails on the first partition-level error.
    pub async fn delete_consumer_group_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<()> {
        for (_, outcome) in self
            .delete_consumer_group_offsets_each(group, partitions)
            .await?
        {
            outcome?;
        }
        Ok(())
    }

    /// Deletes the group's committed offsets for `partitions` (OffsetDelete) and
    /// returns each partition's outcome, as Kafka's `partitionResult`; `Err` for a
    /// group-level error.
    pub async fn delete_consumer_group_offsets_each(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Result<()>>> {
        let mut topics: BTreeMap<String, Vec<OffsetDeleteRequestPartition>> = BTreeMap::new();
        for tp in partitions {
            topics
                .entry(tp.topic.to_string())
                .or_default()
                .push(OffsetDeleteRequestPartition::default().with_partition_index(tp.partition));
        }
        let request = OffsetDeleteRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(n, p)| {
                        OffsetDeleteRequestTopic::default()
                            .with_name(topic_name(&n))
                            .with_partitions(p)
                    })
                    .collect(),
            );
        at_group_coordinator(&self.cluster, group, |connection| {
            let request = request.clone();
            async move {
                let response = connection.send(&request).await?;
                ClientError::check(response.error_code, || format!("group {group}"), None)?;
                let mut outcomes = BTreeMap::new();
                for t in response.topics {
                    for p in t.partitions {
                        let tp = TopicPartition::new(t.name.0.as_str(), p.partition_index);
                        let context = format!("{tp} in group {group}");
                        outcomes.insert(tp, ClientError::check(p.error_code, || context, None));
                    }
                }
                Ok(outcomes)
            }
        })
        .await
    }

    /// [`rpc::MAX_TIMESTAMP`] or a time in ms) for each partition.
    pub async fn list_offsets(
        &self,
        queries: &[(TopicPartition, i64)],
    ) -> Result<BTreeMap<TopicPartition, ListedOffset>> {
        rpc::list_offsets(&self.cluster, queries, 0).await
    }
}
