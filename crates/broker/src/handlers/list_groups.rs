//! ListGroups (key 16): every group, optionally filtered by state (v4+) and type
//! (v5+; all groups here are "classic").

use std::sync::Arc;

use bytes::Bytes;
use protocol::kafka::messages::list_groups_response::ListedGroup;
use protocol::kafka::messages::{ApiKey, GroupId, ListGroupsRequest, ListGroupsResponse};
use protocol::kafka::protocol::StrBytes;

use super::{ApiSpec, Reply, RequestContext};
use crate::runtime::blocking;

pub const API: ApiSpec = ApiSpec::new(ApiKey::ListGroups, 0, 5);

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: ListGroupsRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_string())
        .collect();
    let wants_classic = request.types_filter.is_empty()
        || request
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case("classic"));
    let broker = Arc::clone(&ctx.broker);
    let listed = blocking(move || broker.groups.lock().list_groups(&states)).await;
    let groups = if wants_classic {
        listed
            .into_iter()
            .map(|g| {
                ListedGroup::default()
                    .with_group_id(GroupId(StrBytes::from_string(g.group_id)))
                    .with_protocol_type(StrBytes::from_string(g.protocol_type))
                    .with_group_state(StrBytes::from_static_str(g.state.name()))
                    .with_group_type(StrBytes::from_static_str("classic"))
            })
            .collect()
    } else {
        Vec::new()
    };
    ctx.respond(
        &ListGroupsResponse::default()
            .with_error_code(0)
            .with_groups(groups),
    )
}
