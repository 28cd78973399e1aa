//! OffsetFetch (key 9): a group's committed offsets, for one group (v1-7) or many
//! (v8+). Partitions without a commit answer offset -1 and no error; `null` topics
//! (v2+) mean every partition the group has committed.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use coordinator::CommittedOffset;
use protocol::kafka::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use protocol::kafka::messages::{
    ApiKey, GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use protocol::kafka::protocol::StrBytes;
use protocol::ErrorCode;

use super::{ApiSpec, Reply, RequestContext};
use crate::runtime::blocking;

/// Kafka 3.9 served from v0: lower versions go through [`super::legacy`].
pub const API: ApiSpec = ApiSpec::new(ApiKey::OffsetFetch, 1, 9).with_legacy_min(0);

type Fetched = Vec<(String, i32, Answer)>;
type ByTopic = Vec<(String, Vec<(i32, Answer)>)>;
type Query = (String, Option<Vec<(String, i32)>>);

/// Groups the answer by topic, keeping the order topics first appear.
fn by_topic(fetched: Fetched) -> ByTopic {
    let mut order: Vec<String> = Vec::new();
    let mut map: BTreeMap<String, Vec<(i32, Answer)>> = BTreeMap::new();
    for (topic, partition, committed) in fetched {
        if !map.contains_key(&topic) {
            order.push(topic.clone());
        }
        map.entry(topic).or_default().push((partition, committed));
    }
    order
        .into_iter()
        .map(|t| {
            let partitions = map.remove(&t).unwrap_or_default();
            (t, partitions)
        })
        .collect()
}

/// A partition's answer: committed offset, or UNSTABLE_OFFSET_COMMIT while a
/// transaction holds an uncommitted offset for it and the client asked for stable
/// offsets (`Err`).
type Answer = Result<Option<CommittedOffset>, ()>;

fn fields(committed: &Answer) -> (i64, i32, Option<StrBytes>, i16) {
    match committed {
        Ok(Some(c)) => (
            c.offset,
            c.leader_epoch,
            Some(StrBytes::from_string(c.metadata.clone())),
            0,
        ),
        Ok(None) => (-1, -1, Some(StrBytes::from_static_str("")), 0),
        Err(()) => (
            -1,
            -1,
            Some(StrBytes::from_static_str("")),
            ErrorCode::UnstableOffsetCommit.code(),
        ),
    }
}

fn stable_fetch(
    core: &coordinator::GroupCoordinator,
    group: &str,
    wanted: Option<&[(String, i32)]>,
    require_stable: bool,
) -> Vec<(String, i32, Answer)> {
    core.fetch_offsets(group, wanted)
        .into_iter()
        .map(|(topic, partition, committed)| {
            let unstable =
                require_stable && core.has_pending_transactional_offset(group, &topic, partition);
            let answer = if unstable { Err(()) } else { Ok(committed) };
            (topic, partition, answer)
        })
        .collect()
}

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: OffsetFetchRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let broker = Arc::clone(&ctx.broker);
    if ctx.api_version < 8 {
        let group_id = request.group_id.to_string();
        let wanted: Option<Vec<(String, i32)>> = request.topics.as_ref().map(|topics| {
            topics
                .iter()
                .flat_map(|t| {
                    t.partition_indexes
                        .iter()
                        .map(move |p| (t.name.to_string(), *p))
                })
                .collect()
        });
        let require_stable = ctx.api_version >= 7 && request.require_stable;
        let fetched = blocking(move || {
            stable_fetch(
                &broker.groups.lock(),
                &group_id,
                wanted.as_deref(),
                require_stable,
            )
        })
        .await;
        let topics = by_topic(fetched)
            .into_iter()
            .map(|(topic, partitions)| {
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic)))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|(p, c)| {
                                let (offset, epoch, metadata, error) = fields(c);
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(*p)
                                    .with_committed_offset(offset)
                                    .with_committed_leader_epoch(epoch)
                                    .with_metadata(metadata)
                                    .with_error_code(error)
                            })
                            .collect(),
                    )
            })
            .collect();
        return ctx.respond(
            &OffsetFetchResponse::default()
                .with_topics(topics)
                .with_error_code(0),
        );
    }
    let queries: Vec<Query> = request
        .groups
        .iter()
        .map(|g| {
            let wanted = g.topics.as_ref().map(|topics| {
                topics
                    .iter()
                    .flat_map(|t| {
                        t.partition_indexes
                            .iter()
                            .map(move |p| (t.name.to_string(), *p))
                    })
                    .collect()
            });
            (g.group_id.to_string(), wanted)
        })
        .collect();
    let require_stable = request.require_stable;
    let answers = blocking(move || {
        let core = broker.groups.lock();
        queries
            .into_iter()
            .map(|(group, wanted)| {
                let fetched = stable_fetch(&core, &group, wanted.as_deref(), require_stable);
                (group, fetched)
            })
            .collect::<Vec<_>>()
    })
    .await;
    let groups = answers
        .into_iter()
        .map(|(group, fetched)| {
            let topics = by_topic(fetched)
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(StrBytes::from_string(topic)))
                        .with_partitions(
                            partitions
                                .iter()
                                .map(|(p, c)| {
                                    let (offset, epoch, metadata, error) = fields(c);
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(*p)
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(epoch)
                                        .with_metadata(metadata)
                                        .with_error_code(error)
                                })
                                .collect(),
                        )
                })
                .collect();
            OffsetFetchResponseGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(group)))
                .with_topics(topics)
                .with_error_code(0)
        })
        .collect();
    ctx.respond(&OffsetFetchResponse::default().with_groups(groups))
}
