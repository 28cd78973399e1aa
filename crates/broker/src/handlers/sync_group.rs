//! SyncGroup (key 14): the leader hands out the assignment; every member waits for
//! its own part.

use bytes::Bytes;
use coordinator::{GroupError, SyncParams, SyncResult};
use protocol::kafka::messages::{ApiKey, SyncGroupRequest, SyncGroupResponse};
use protocol::kafka::protocol::StrBytes;
use protocol::ErrorCode;
use tokio::sync::oneshot;

use super::{ApiSpec, Reply, RequestContext};
use crate::errors::group_error_code;
use crate::runtime::blocking;

pub const API: ApiSpec = ApiSpec::new(ApiKey::SyncGroup, 0, 5);

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: SyncGroupRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let params = SyncParams {
        group_id: request.group_id.to_string(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        protocol_type: if ctx.api_version >= 5 {
            request.protocol_type.as_ref().map(|s| s.to_string())
        } else {
            None
        },
        protocol_name: if ctx.api_version >= 5 {
            request.protocol_name.as_ref().map(|s| s.to_string())
        } else {
            None
        },
        assignments: request
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect(),
    };
    let (tx, rx) = oneshot::channel();
    let broker = std::sync::Arc::clone(&ctx.broker);
    blocking(move || {
        broker.groups.lock().sync(
            params,
            Box::new(move |result| {
                let _ = tx.send(result);
            }),
        )
    })
    .await;
    let mut shutdown = ctx.broker.shutdown_signal();
    let failed = |error: Option<GroupError>| SyncResult {
        error,
        protocol_type: None,
        protocol_name: None,
        assignment: Bytes::new(),
    };
    let (result, error) = tokio::select! {
        result = rx => match result {
            Ok(result) => {
                let error = result.error.as_ref().map_or(ErrorCode::None, group_error_code);
                (result, error)
            }
            // The coordinator dropped the request unanswered.
            Err(_) => (failed(None), ErrorCode::UnknownServerError),
        },
        _ = shutdown.changed() => {
            let error = GroupError::CoordinatorNotAvailable;
            (failed(Some(error)), group_error_code(&error))
        }
    };
    ctx.respond(
        &SyncGroupResponse::default()
            .with_error_code(error.code())
            .with_protocol_type(result.protocol_type.map(StrBytes::from_string))
            .with_protocol_name(result.protocol_name.map(StrBytes::from_string))
            .with_assignment(result.assignment),
    )
}
