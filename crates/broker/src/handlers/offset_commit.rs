//! OffsetCommit (key 8): store a group's (or a standalone consumer's) positions.

use bytes::Bytes;
use coordinator::{GroupError, OffsetCommitEntry};
use protocol::kafka::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use protocol::kafka::messages::{ApiKey, OffsetCommitRequest, OffsetCommitResponse};
use protocol::ErrorCode;

use super::{guards, ApiSpec, Reply, RequestContext};
use crate::errors::group_result_code;
use crate::internal_topics::{self, InternalTopic};

/// Kafka 3.9 served from v0: lower versions go through [`super::legacy`].
pub const API: ApiSpec = ApiSpec::new(ApiKey::OffsetCommit, 2, 9).with_legacy_min(0);

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: OffsetCommitRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    // Kafka answers UNKNOWN_TOPIC_OR_PARTITION for a partition that does not exist
    // (KafkaApis.handleOffsetCommitRequest) and stores nothing for it.
    let image = ctx.broker.metadata.image();
    let known: Vec<Vec<bool>> = request
        .topics
        .iter()
        .map(|t| {
            t.partitions
                .iter()
                .map(|p| image.partition(&t.name, p.partition_index).is_some())
                .collect()
        })
        .collect();
    let refused = guards::stored_strings(&[("group.id", Some(&request.group_id), 0)])
        .map_err(|message| tracing::debug!(%message, "OffsetCommit refused"))
        .err()
        .map(|()| ErrorCode::InvalidGroupId);
    let entries: Vec<OffsetCommitEntry> = request
        .topics
        .iter()
        .zip(&known)
        .flat_map(|(t, known)| {
            t.partitions
                .iter()
                .zip(known)
                .filter(|(_, known)| **known)
                .map(move |(p, _)| OffsetCommitEntry {
                    topic: t.name.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                })
        })
        .collect();
    // Nothing to store (or refused): the answers come from `known` and `refused`.
    let errors = match entries.is_empty() || refused.is_some() {
        true => Vec::new(),
        false => {
            match internal_topics::ensure(&ctx.broker.controller, InternalTopic::Offsets).await {
                // The offsets have nowhere to be stored.
                Err(_) => vec![Err(GroupError::CoordinatorNotAvailable); entries.len()],
                Ok(()) => {
                    let group_id = request.group_id.to_string();
                    let member_id = request.member_id.to_string();
                    let instance = request.group_instance_id.as_ref().map(|s| s.to_string());
                    let generation = request.generation_id_or_member_epoch;
                    let count = entries.len();
                    ctx.broker
                        .groups
                        .ask(|core, respond| {
                            core.commit_offsets(
                                &group_id,
                                &member_id,
                                instance.as_deref(),
                                generation,
                                &entries,
                                respond,
                            )
                        })
                        .await
                        .unwrap_or_else(|| vec![Err(GroupError::CoordinatorNotAvailable); count])
                }
            }
        }
    };
    let mut errors = errors.iter().map(group_result_code);
    let topics = request
        .topics
        .iter()
        .zip(known)
        .map(|(t, known)| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_topic_id(t.topic_id)
                .with_partitions(
                    t.partitions
                        .iter()
                        .zip(known)
                        .map(|(p, known)| {
                            let error = match (known, refused) {
                                (_, Some(code)) => code,
                                (false, None) => ErrorCode::UnknownTopicOrPartition,
                                (true, None) => {
                                    errors.next().unwrap_or(ErrorCode::UnknownServerError)
                                }
                            };
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(error.code())
                        })
                        .collect(),
                )
        })
        .collect();
    ctx.respond(&OffsetCommitResponse::default().with_topics(topics))
}
