//! CreatePartitions (key 37): add partitions to existing topics.

use bytes::Bytes;
use metadata::PartitionIncrease;
use protocol::kafka::messages::create_partitions_response::CreatePartitionsTopicResult;
use protocol::kafka::messages::{ApiKey, CreatePartitionsRequest, CreatePartitionsResponse};
use protocol::kafka::protocol::StrBytes;

use super::{ApiSpec, Reply, RequestContext};

pub const API: ApiSpec = ApiSpec::new(ApiKey::CreatePartitions, 0, 3);

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: CreatePartitionsRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let increases = request
        .topics
        .iter()
        .map(|t| PartitionIncrease {
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
    let results = request
        .topics
        .iter()
        .zip(outcomes)
        .map(|(t, (_, result))| match result {
            Ok(()) => CreatePartitionsTopicResult::default()
                .with_name(t.name.clone())
                .with_error_code(0),
            Err((code, message)) => CreatePartitionsTopicResult::default()
                .with_name(t.name.clone())
                .with_error_code(code.code())
                .with_error_message(Some(StrBytes::from_string(message))),
        })
        .collect();
    ctx.respond(&CreatePartitionsResponse::default().with_results(results))
}
