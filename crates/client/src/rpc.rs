//! Requests the consumer and the admin client both send: ListOffsets (by leader),
//! OffsetFetch and OffsetCommit (at the group coordinator). Each hides the
//! version differences (OffsetFetch v8+ batches groups) and retries what Kafka
//! marks retriable, refreshing leaders or the coordinator first where needed.

use std::collections::{BTreeMap, HashMap};

use protocol::kafka::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use protocol::kafka::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use protocol::kafka::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use protocol::kafka::messages::{
    BrokerId, GroupId, ListOffsetsRequest, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use protocol::kafka::protocol::StrBytes;
use protocol::{ErrorCode, TopicPartition};
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::error::{ClientError, Result};

pub(crate) fn sb(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

pub(crate) fn topic_name(text: &str) -> TopicName {
    TopicName(sb(text))
}

/// ListOffsets' special timestamps.
pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    pub offset: i64,
    pub leader_epoch: Option<i32>,
    pub metadata: String,
}

impl OffsetAndMetadata {
    pub fn new(offset: i64) -> Self {
        OffsetAndMetadata {
            offset,
            leader_epoch: None,
            metadata: String::new(),
        }
    }
}

/// Offset and timestamp ListOffsets found for a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    pub offset: i64,
    pub timestamp: i64,
}

/// ListOffsets for each `(partition, timestamp)`, grouped by leader, retrying
/// leader changes until `request.timeout.ms`.
pub(crate) async fn list_offsets(
    cluster: &Cluster,
    queries: &[(TopicPartition, i64)],
    isolation_level: i8,
) -> Result<BTreeMap<TopicPartition, ListedOffset>> {
    let mut results = BTreeMap::new();
    let mut pending: Vec<(TopicPartition, i64)> = queries.to_vec();
    let deadline = Instant::now() + cluster.config.request_timeout;
    while !pending.is_empty() {
        let mut by_leader: HashMap<i32, Vec<(TopicPartition, i64)>> = HashMap::new();
        for (tp, timestamp) in pending.drain(..) {
            let mut leader = cluster.metadata().leader_for(&tp);
            if leader.is_none() {
                cluster.topic(&tp.topic).await?;
                leader = cluster.refresh().await?.leader_for(&tp);
            }
            let leader = match leader {
                Some(leader) => leader,
                None => cluster.metadata().leader_or_error(&tp)?,
            };
            by_leader.entry(leader).or_default().push((tp, timestamp));
        }
        let mut retry = Vec::new();
        let mut last_error = None;
        for (leader, queries) in by_leader {
            let mut topics: BTreeMap<String, Vec<ListOffsetsPartition>> = BTreeMap::new();
            for (tp, timestamp) in &queries {
                topics.entry(tp.topic.to_string()).or_default().push(
                    ListOffsetsPartition::default()
                        .with_partition_index(tp.partition)
                        .with_timestamp(*timestamp)
                        .with_current_leader_epoch(-1),
                );
            }
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(isolation_level)
                .with_timeout_ms(
                    cluster
                        .config
                        .request_timeout
                        .as_millis()
                        .min(i32::MAX as u128) as i32,
                )
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(n, p)| {
                            ListOffsetsTopic::default()
                                .with_name(topic_name(&n))
                                .with_partitions(p)
                        })
                        .collect(),
                );
            let response = match cluster.connection(leader).await {
                Ok(connection) => connection.send(&request).await,
                Err(e) => Err(e),
            };
            let response = match response {
                Ok(response) => response,
                Err(e) if e.is_retriable() => {
                    last_error = Some(e);
                    retry.extend(queries);
                    continue;
                }
                Err(e) => return Err(e),
            };
            for topic in response.topics {
                for p in topic.partitions {
                    let tp = TopicPartition::new(topic.name.0.to_string(), p.partition_index);
                    match ClientError::check(p.error_code, || tp.to_string(), None) {
                        Ok(()) => {
                            results.insert(
                                tp,
                                ListedOffset {
                                    offset: p.offset,
                                    timestamp: p.timestamp,
                                },
                            );
                        }
                        Err(e) if e.is_retriable() => {
                            let timestamp = queries
                                .iter()
                                .find(|(q, _)| *q == tp)
                                .map_or(LATEST_TIMESTAMP, |q| q.1);
                            last_error = Some(e);
                            retry.push((tp, timestamp));
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        if !retry.is_empty() {
            if Instant::now() >= deadline {
                return Err(last_error.unwrap_or_else(|| {
                    ClientError::kafka(ErrorCode::RequestTimedOut, "ListOffsets")
                }));
            }
            tokio::time::sleep(cluster.config.retry_backoff).await;
            cluster.refresh().await?;
        }
        pending = retry;
    }
    Ok(results)
}

/// Runs `call` at the coordinator of `group`, rediscovering it after
/// NOT_COORDINATOR and retrying COORDINATOR_LOAD_IN_PROGRESS, until
/// `request.timeout.ms`.
pub(crate) async fn at_group_coordinator<T, F, Fut>(
    cluster: &Cluster,
    group: &str,
    mut call: F,
) -> Result<T>
where
    F: FnMut(crate::connection::Connection) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let deadline = Instant::now() + cluster.config.request_timeout;
    loop {
        let result = match cluster.coordinator(0, group).await {
            Ok(connection) => call(connection).await,
            Err(e) => Err(e),
        };
        match result {
            Err(e) if e.is_retriable() && Instant::now() < deadline => {
                if e.needs_metadata_refresh() {
                    cluster.coordinator_dead(0, group);
                }
                tokio::time::sleep(cluster.config.retry_backoff).await;
            }
            other => return other,
        }
    }
}

/// The group's committed offsets for `partitions` (all of them when `None`).
/// Partitions without a committed offset are left out.
pub(crate) async fn fetch_committed(
    cluster: &Cluster,
    group: &str,
    partitions: Option<&[TopicPartition]>,
    require_stable: bool,
) -> Result<BTreeMap<TopicPartition, OffsetAndMetadata>> {
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for tp in partitions.unwrap_or(&[]) {
        by_topic
            .entry(tp.topic.to_string())
            .or_default()
            .push(tp.partition);
    }
    at_group_coordinator(cluster, group, |connection| {
        let by_topic = by_topic.clone();
        async move {
            let version = connection.version_of::<OffsetFetchRequest>()?;
            let mut request = OffsetFetchRequest::default().with_require_stable(require_stable);
            if version >= 8 {
                let topics = partitions.map(|_| {
                    by_topic
                        .iter()
                        .map(|(n, p)| {
                            OffsetFetchRequestTopics::default()
                                .with_name(topic_name(n))
                                .with_partition_indexes(p.clone())
                        })
                        .collect()
                });
                request = request.with_groups(vec![OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(sb(group)))
                    .with_topics(topics)]);
            } else {
                let topics = partitions.map(|_| {
                    by_topic
                        .iter()
                        .map(|(n, p)| {
                            OffsetFetchRequestTopic::default()
                                .with_name(topic_name(n))
                                .with_partition_indexes(p.clone())
                        })
                        .collect()
                });
                request = request
                    .with_group_id(GroupId(sb(group)))
                    .with_topics(topics);
            }
            let response = connection.send_version(&request, version, None).await?;
            let mut offsets = BTreeMap::new();
            let mut add = |topic: &str,
                           partition: i32,
                           offset: i64,
                           epoch: i32,
                           metadata: Option<&StrBytes>,
                           code: i16|
             -> Result<()> {
                ClientError::check(code, || format!("{topic}-{partition}"), None)?;
                if offset >= 0 {
                    let value = OffsetAndMetadata {
                        offset,
                        leader_epoch: (epoch >= 0).then_some(epoch),
                        metadata: metadata.map(|m| m.to_string()).unwrap_or_default(),
                    };
                    offsets.insert(TopicPartition::new(topic.to_string(), partition), value);
                }
                Ok(())
            };
            if version >= 8 {
                for g in &response.groups {
                    ClientError::check(g.error_code, || format!("group {group}"), None)?;
                    for t in &g.topics {
                        for p in &t.partitions {
                            add(
                                &t.name.0,
                                p.partition_index,
                                p.committed_offset,
                                p.committed_leader_epoch,
                                p.metadata.as_ref(),
                                p.error_code,
                            )?;
                        }
                    }
                }
            } else {
                ClientError::check(response.error_code, || format!("group {group}"), None)?;
                for t in &response.topics {
                    for p in &t.partitions {
                        add(
                            &t.name.0,
                            p.partition_index,
                            p.committed_offset,
                            p.committed_leader_epoch,
                            p.metadata.as_ref(),
                            p.error_code,
                        )?;
                    }
                }
            }
            Ok(offsets)
        }
    })
    .await
}

/// Who commits: a group member (generation and member id) or an admin (-1, "").
#[derive(Debug, Clone)]
pub(crate) struct Committer {
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

impl Committer {
    pub fn admin() -> Committer {
        Committer {
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }
}

/// OffsetCommit; fails with the first partition's error.
pub(crate) async fn commit_offsets(
    cluster: &Cluster,
    group: &str,
    committer: &Committer,
    offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
) -> Result<()> {
    let mut topics: BTreeMap<String, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for (tp, o) in offsets {
        topics.entry(tp.topic.to_string()).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(tp.partition)
                .with_committed_offset(o.offset)
                .with_committed_leader_epoch(o.leader_epoch.unwrap_or(-1))
                .with_committed_metadata(Some(sb(&o.metadata))),
        );
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id_or_member_epoch(committer.generation_id)
        .with_member_id(sb(&committer.member_id))
        .with_group_instance_id(committer.group_instance_id.as_deref().map(sb))
        .with_retention_time_ms(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(n, p)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(&n))
                        .with_partitions(p)
                })
                .collect(),
        );
    at_group_coordinator(cluster, group, |connection| {
        let request = request.clone();
        async move {
            let response = connection.send(&request).await?;
            for t in response.topics {
                for p in t.partitions {
                    ClientError::check(
                        p.error_code,
                        || format!("{}-{} in group {group}", t.name.0, p.partition_index),
                        None,
                    )?;
                }
            }
            Ok(())
        }
    })
    .await
}
