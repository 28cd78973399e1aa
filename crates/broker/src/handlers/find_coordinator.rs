//! FindCoordinator (key 10): which broker coordinates a group (or, later, a
//! transactional id). One key (v0-3) or many (v4+). On a single node the answer is
//! always this broker; the first group lookup creates `__consumer_offsets`, the
//! first transactional one `__transaction_state`.

use bytes::Bytes;
use protocol::kafka::messages::find_coordinator_response::Coordinator;
use protocol::kafka::messages::{
    ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse,
};
use protocol::kafka::protocol::StrBytes;
use protocol::ErrorCode;

use super::{ApiSpec, Reply, RequestContext};
use crate::internal_topics::{self, InternalTopic};

pub const API: ApiSpec = ApiSpec::new(ApiKey::FindCoordinator, 0, 6);

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// The coordinator's internal topic could not be created (the controller's
/// refusal is logged where it happened).
fn unavailable() -> (ErrorCode, String) {
    (
        ErrorCode::CoordinatorNotAvailable,
        "The coordinator is not available.".to_string(),
    )
}

async fn lookup(
    ctx: &RequestContext,
    key_type: i8,
) -> Result<(i32, String, i32), (ErrorCode, String)> {
    match key_type {
        KEY_TYPE_GROUP => {
            internal_topics::ensure(&ctx.broker.controller, InternalTopic::Offsets)
                .await
                .map_err(|_| unavailable())?;
            let endpoint = ctx.broker.endpoints.first().ok_or((
                ErrorCode::CoordinatorNotAvailable,
                "no listener".to_string(),
            ))?;
            Ok((
                ctx.broker.node_id(),
                endpoint.host.clone(),
                i32::from(endpoint.port),
            ))
        }
        KEY_TYPE_TRANSACTION => {
            internal_topics::ensure(&ctx.broker.controller, InternalTopic::Transactions)
                .await
                .map_err(|_| unavailable())?;
            let endpoint = ctx.broker.endpoints.first().ok_or((
                ErrorCode::CoordinatorNotAvailable,
                "no listener".to_string(),
            ))?;
            Ok((
                ctx.broker.node_id(),
                endpoint.host.clone(),
                i32::from(endpoint.port),
            ))
        }
        other => Err((
            ErrorCode::InvalidRequest,
            format!("Unknown coordinator key type {other}"),
        )),
    }
}

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: FindCoordinatorRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    if ctx.api_version < 4 {
        let response = match lookup(ctx, request.key_type).await {
            Ok((node, host, port)) => FindCoordinatorResponse::default()
                .with_error_code(0)
                .with_node_id(BrokerId(node))
                .with_host(StrBytes::from_string(host))
                .with_port(port),
            Err((code, message)) => FindCoordinatorResponse::default()
                .with_error_code(code.code())
                .with_error_message(Some(StrBytes::from_string(message)))
                .with_node_id(BrokerId(-1))
                .with_host(StrBytes::from_static_str(""))
                .with_port(-1),
        };
        return ctx.respond(&response);
    }
    let mut coordinators = Vec::with_capacity(request.coordinator_keys.len());
    for key in &request.coordinator_keys {
        let entry = match lookup(ctx, request.key_type).await {
            Ok((node, host, port)) => Coordinator::default()
                .with_key(key.clone())
                .with_node_id(BrokerId(node))
                .with_host(StrBytes::from_string(host))
                .with_port(port)
                .with_error_code(0),
            Err((code, message)) => Coordinator::default()
                .with_key(key.clone())
                .with_node_id(BrokerId(-1))
                .with_host(StrBytes::from_static_str(""))
                .with_port(-1)
                .with_error_code(code.code())
                .with_error_message(Some(StrBytes::from_string(message))),
        };
        coordinators.push(entry);
    }
    ctx.respond(&FindCoordinatorResponse::default().with_coordinators(coordinators))
}
