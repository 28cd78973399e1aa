//! LeaveGroup (key 13): one member (v0-2) or several by member or instance id (v3+).

use std::sync::Arc;

use bytes::Bytes;
use protocol::kafka::messages::leave_group_response::MemberResponse;
use protocol::kafka::messages::{ApiKey, LeaveGroupRequest, LeaveGroupResponse};
use protocol::kafka::protocol::StrBytes;
use protocol::ErrorCode;

use super::{ApiSpec, Reply, RequestContext};
use crate::errors::{group_error_code, group_result_code};
use crate::runtime::blocking;

pub const API: ApiSpec = ApiSpec::new(ApiKey::LeaveGroup, 0, 5);

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: LeaveGroupRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let leaving: Vec<(String, Option<String>)> = if ctx.api_version >= 3 {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    let broker = Arc::clone(&ctx.broker);
    let group_id = request.group_id.to_string();
    let who = leaving.clone();
    let outcome = blocking(move || broker.groups.lock().leave(&group_id, &who)).await;
    let response = match outcome {
        Err(error) => {
            LeaveGroupResponse::default().with_error_code(group_error_code(&error).code())
        }
        Ok(errors) if ctx.api_version < 3 => LeaveGroupResponse::default().with_error_code(
            errors
                .first()
                .map_or(ErrorCode::None, group_result_code)
                .code(),
        ),
        Ok(errors) => LeaveGroupResponse::default()
            .with_error_code(0)
            .with_members(
                leaving
                    .iter()
                    .zip(errors)
                    .map(|((member_id, instance), error)| {
                        MemberResponse::default()
                            .with_member_id(StrBytes::from_string(member_id.clone()))
                            .with_group_instance_id(instance.clone().map(StrBytes::from_string))
                            .with_error_code(group_result_code(&error).code())
                    })
                    .collect(),
            ),
    };
    ctx.respond(&response)
}
