//! DeleteTopics (key 20): by name (v1-5) or by name or id (v6).

use bytes::Bytes;
use metadata::controller::{DeleteTarget, DeleteTopicOutcome};
use metadata::ControllerError;
use protocol::kafka::messages::delete_topics_response::DeletableTopicResult;
use protocol::kafka::messages::{ApiKey, DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use protocol::kafka::protocol::StrBytes;
use protocol::ErrorCode;

use super::{guards, ApiSpec, Reply, RequestContext};
use crate::errors::controller_error;

/// Kafka 3.9 served from v0: lower versions go through [`super::legacy`].
pub const API: ApiSpec = ApiSpec::new(ApiKey::DeleteTopics, 1, 6).with_legacy_min(0);

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: DeleteTopicsRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let targets: Vec<DeleteTarget> = if ctx.api_version >= 6 {
        request
            .topics
            .iter()
            .map(|t| match (&t.name, t.topic_id.is_nil()) {
                (Some(name), true) => DeleteTarget::Name(name.to_string()),
                (None, false) => DeleteTarget::Id(t.topic_id),
                (name, _) => DeleteTarget::Malformed {
                    name: name.as_ref().map(|n| n.to_string()),
                    id: t.topic_id,
                },
            })
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| DeleteTarget::Name(n.to_string()))
            .collect()
    };
    // Internal topics change only through the broker (guards.rs).
    let image = ctx.broker.metadata.image();
    let refused: Vec<Option<DeleteTopicOutcome<ControllerError>>> = targets
        .iter()
        .map(|target| {
            let topic = match target {
                DeleteTarget::Name(name) => image.topic(name),
                DeleteTarget::Id(id) => image.topic_by_id(id),
                DeleteTarget::Malformed { .. } => None,
            }?;
            let refused = guards::refuse_internal(&ctx.broker, &topic.name, "Deleting").err()?;
            Some(DeleteTopicOutcome {
                name: Some(topic.name.to_string()),
                topic_id: topic.topic_id,
                result: Err(refused),
            })
        })
        .collect();
    let passed = targets
        .into_iter()
        .zip(&refused)
        .filter(|(_, refused)| refused.is_none())
        .map(|(target, _)| target)
        .collect();
    let mut decided = ctx
        .broker
        .controller
        .delete_topics(passed)
        .await
        .into_iter();
    let outcomes: Vec<DeleteTopicOutcome<ControllerError>> = refused
        .into_iter()
        .map(|refused| {
            refused.unwrap_or_else(|| decided.next().expect("one outcome per target passed on"))
        })
        .collect();
    let responses = outcomes
        .into_iter()
        .map(|o| {
            let (code, message) = match o.result.map_err(|e| controller_error(&e)) {
                Ok(()) => (ErrorCode::None, None),
                Err((code, message)) => (code, Some(StrBytes::from_string(message))),
            };
            DeletableTopicResult::default()
                .with_name(o.name.map(|n| TopicName(StrBytes::from_string(n))))
                .with_topic_id(o.topic_id)
                .with_error_code(code.code())
                .with_error_message(message)
        })
        .collect();
    ctx.respond(&DeleteTopicsResponse::default().with_responses(responses))
}
