//! JoinGroup (key 11): join a group, waiting until the rebalance completes.
//! v0-9 (v0/v1 kept for old librdkafka, as Kafka 4.1 does). From v4 a first join
//! without a member id is answered MEMBER_ID_REQUIRED with an id to join with.

use bytes::Bytes;
use coordinator::{GroupError, JoinParams, JoinResult};
use protocol::kafka::messages::join_group_response::JoinGroupResponseMember;
use protocol::kafka::messages::{ApiKey, JoinGroupRequest, JoinGroupResponse};
use protocol::kafka::protocol::StrBytes;
use protocol::ErrorCode;
use tokio::sync::oneshot;

use super::{guards, ApiSpec, Reply, RequestContext};
use crate::errors::group_error_code;
use crate::internal_topics::{self, InternalTopic};
use crate::runtime::blocking;

pub const API: ApiSpec = ApiSpec::new(ApiKey::JoinGroup, 0, 9);

fn response(result: JoinResult, version: i16) -> JoinGroupResponse {
    // The protocol name is nullable from v7, and Kafka sends null rather than "" there.
    let protocol_name = match result.protocol_name {
        Some(name) if !name.is_empty() => Some(StrBytes::from_string(name)),
        _ if version >= 7 => None,
        _ => Some(StrBytes::from_static_str("")),
    };
    let error = result
        .error
        .as_ref()
        .map_or(ErrorCode::None, group_error_code);
    JoinGroupResponse::default()
        .with_error_code(error.code())
        .with_generation_id(result.generation_id)
        .with_protocol_type(result.protocol_type.map(StrBytes::from_string))
        .with_protocol_name(protocol_name)
        .with_leader(StrBytes::from_string(result.leader))
        .with_skip_assignment(result.skip_assignment)
        .with_member_id(StrBytes::from_string(result.member_id))
        .with_members(
            result
                .members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(m.member_id))
                        .with_group_instance_id(m.group_instance_id.map(StrBytes::from_string))
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: JoinGroupRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    // Strings the group's metadata record would hold (guards.rs).
    let group_id_ok = guards::stored_strings(&[("group.id", Some(&request.group_id), 0)]);
    let others_ok = guards::stored_strings(&[
        (
            "group.instance.id",
            request.group_instance_id.as_deref(),
            guards::MEMBER_ID_SUFFIX,
        ),
        ("member.id", Some(&request.member_id), 0),
        (
            "client.id",
            ctx.client_id.as_deref(),
            guards::MEMBER_ID_SUFFIX,
        ),
        ("protocol_type", Some(&request.protocol_type), 0),
    ])
    .and_then(|()| {
        request
            .protocols
            .iter()
            .try_for_each(|p| guards::stored_strings(&[("protocol name", Some(&p.name), 0)]))
    });
    let refused = match (group_id_ok, others_ok) {
        (Err(message), _) => Some((ErrorCode::InvalidGroupId, message)),
        (_, Err(message)) => Some((ErrorCode::InvalidRequest, message)),
        _ => None,
    };
    if let Some((code, message)) = refused {
        tracing::debug!(%message, "JoinGroup refused");
        let result = error_result(None, &request.member_id);
        return ctx.respond(&response(result, ctx.api_version).with_error_code(code.code()));
    }
    if internal_topics::ensure(&ctx.broker.controller, InternalTopic::Offsets)
        .await
        .is_err()
    {
        // The group has nowhere to be stored.
        let result = error_result(
            Some(GroupError::CoordinatorNotAvailable),
            &request.member_id,
        );
        return ctx.respond(&response(result, ctx.api_version));
    }
    let params = JoinParams {
        group_id: request.group_id.to_string(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: format!("/{}", ctx.peer.ip()),
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms: if ctx.api_version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: ctx.api_version >= 4,
        supports_skip_assignment: ctx.api_version >= 9,
    };
    let (tx, rx) = oneshot::channel();
    let broker = std::sync::Arc::clone(&ctx.broker);
    blocking(move || {
        broker.groups.lock().join(
            params,
            Box::new(move |result| {
                let _ = tx.send(result);
            }),
        )
    })
    .await;
    let mut shutdown = ctx.broker.shutdown_signal();
    let result = tokio::select! {
        result = rx => result,
        _ = shutdown.changed() => Ok(error_result(Some(GroupError::CoordinatorNotAvailable), "")),
    };
    match result {
        Ok(result) => ctx.respond(&response(result, ctx.api_version)),
        // The coordinator dropped the request unanswered.
        Err(_) => ctx.respond(
            &response(error_result(None, ""), ctx.api_version)
                .with_error_code(ErrorCode::UnknownServerError.code()),
        ),
    }
}

/// A failed join's answer: no generation, no members.
fn error_result(error: Option<GroupError>, member_id: &str) -> JoinResult {
    JoinResult {
        error,
        generation_id: -1,
        protocol_type: None,
        protocol_name: None,
        leader: String::new(),
        member_id: member_id.to_string(),
        members: Vec::new(),
        skip_assignment: false,
    }
}
