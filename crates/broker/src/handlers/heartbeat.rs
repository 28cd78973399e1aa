//! Heartbeat (key 12): a member says it is alive; REBALANCE_IN_PROGRESS tells it to
//! rejoin.

use std::sync::Arc;

use bytes::Bytes;
use protocol::kafka::messages::{ApiKey, HeartbeatRequest, HeartbeatResponse};

use super::{ApiSpec, Reply, RequestContext};
use crate::errors::group_result_code;
use crate::runtime::blocking;

pub const API: ApiSpec = ApiSpec::new(ApiKey::Heartbeat, 0, 4);

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: HeartbeatRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let broker = Arc::clone(&ctx.broker);
    let error = blocking(move || {
        broker.groups.lock().heartbeat(
            &request.group_id,
            &request.member_id,
            request.group_instance_id.as_deref(),
            request.generation_id,
        )
    })
    .await;
    ctx.respond(&HeartbeatResponse::default().with_error_code(group_result_code(&error).code()))
}
