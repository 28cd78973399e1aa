//! OffsetDelete (key 47): delete a group's committed offsets for partitions it does
//! not consume (GROUP_SUBSCRIBED_TO_TOPIC for those it does, UNKNOWN_TOPIC_OR_PARTITION
//! for partitions the cluster does not have).

use bytes::Bytes;
use coordinator::GroupError;
use protocol::kafka::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use protocol::kafka::messages::{ApiKey, OffsetDeleteRequest, OffsetDeleteResponse};
use protocol::ErrorCode;

use super::{ApiSpec, Reply, RequestContext};
use crate::errors::{group_error_code, group_result_code};

pub const API: ApiSpec = ApiSpec::new(ApiKey::OffsetDelete, 0, 0);

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: OffsetDeleteRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    // As Kafka: a partition the cluster does not have is UNKNOWN_TOPIC_OR_PARTITION,
    // never passed to the group (which would report it deleted).
    let image = ctx.broker.metadata.image();
    let exists: Vec<bool> = request
        .topics
        .iter()
        .flat_map(|t| {
            let image = &image;
            t.partitions.iter().map(move |p| {
                image
                    .partition(t.name.as_str(), p.partition_index)
                    .is_some()
            })
        })
        .collect();
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.to_string(), p.partition_index))
        })
        .zip(exists.iter())
        .filter(|(_, exists)| **exists)
        .map(|(tp, _)| tp)
        .collect();
    let group_id = request.group_id.to_string();
    let outcome = ctx
        .broker
        .groups
        .ask(|core, respond| core.delete_offsets(&group_id, &partitions, respond))
        .await
        .unwrap_or(Err(GroupError::CoordinatorNotAvailable));
    let outcome = outcome.map(|errors| {
        let mut errors = errors.iter().map(group_result_code);
        exists
            .iter()
            .map(|exists| match exists {
                true => errors.next().unwrap_or(ErrorCode::UnknownServerError),
                false => ErrorCode::UnknownTopicOrPartition,
            })
            .collect::<Vec<_>>()
    });
    let response = match outcome {
        Err(error) => {
            OffsetDeleteResponse::default().with_error_code(group_error_code(&error).code())
        }
        Ok(errors) => {
            let mut errors = errors.into_iter();
            let topics = request
                .topics
                .iter()
                .map(|t| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(
                                            errors
                                                .next()
                                                .unwrap_or(ErrorCode::UnknownServerError)
                                                .code(),
                                        )
                                })
                                .collect(),
                        )
                })
                .collect();
            OffsetDeleteResponse::default()
                .with_error_code(0)
                .with_topics(topics)
        }
    };
    ctx.respond(&response)
}
