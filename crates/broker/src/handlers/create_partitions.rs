//! CreatePartitions (key 37): add partitions to existing topics.

use bytes::Bytes;
use metadata::{ControllerError, PartitionIncrease};
use protocol::kafka::messages::create_partitions_response::CreatePartitionsTopicResult;
use protocol::kafka::messages::{ApiKey, CreatePartitionsRequest, CreatePartitionsResponse};
use protocol::kafka::protocol::StrBytes;

use super::{guards, ApiSpec, Reply, RequestContext};
use crate::errors::controller_error;

pub const API: ApiSpec = ApiSpec::new(ApiKey::CreatePartitions, 0, 3);

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: CreatePartitionsRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let refused: Vec<Option<ControllerError>> = request
        .topics
        .iter()
        .map(|t| guards::refuse_internal(&ctx.broker, &t.name, "Adding partitions to").err())
        .collect();
    let increases = request
        .topics
        .iter()
        .zip(&refused)
        .filter(|(_, refused)| refused.is_none())
        .map(|(t, _)| PartitionIncrease {
            topic: t.name.to_string(),
            count: t.count,
            assignments: t.assignments.as_ref().map(|a| {
                a.iter()
                    .map(|x| x.broker_ids.iter().map(|b| b.0).collect())
                    .collect()
            }),
        })
        .collect();
    let outcomes = ctx
        .broker
        .controller
        .create_partitions(increases, request.validate_only)
        .await;
    let mut outcomes = outcomes.into_iter();
    let results = request
        .topics
        .iter()
        .zip(refused)
        .map(|(t, refused)| match refused {
            Some(error) => (t, Err(error)),
            None => {
                let (_, result) = outcomes.next().expect("one outcome per topic passed on");
                (t, result)
            }
        })
        .map(
            |(t, result)| match result.map_err(|e| controller_error(&e)) {
                Ok(()) => CreatePartitionsTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(0),
                Err((code, message)) => CreatePartitionsTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            },
        )
        .collect();
    ctx.respond(&CreatePartitionsResponse::default().with_results(results))
}
