//! DescribeGroups (key 15): state, protocol and members of groups. Member metadata
//! and assignments are included for Stable groups. An unknown group is "Dead" with
//! no error before v6, GROUP_ID_NOT_FOUND from v6 (KIP-1043).

use std::sync::Arc;

use bytes::Bytes;
use protocol::kafka::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use protocol::kafka::messages::{ApiKey, DescribeGroupsRequest, DescribeGroupsResponse};
use protocol::kafka::protocol::StrBytes;
use protocol::ErrorCode;

use super::{ApiSpec, Reply, RequestContext};
use crate::runtime::blocking;

pub const API: ApiSpec = ApiSpec::new(ApiKey::DescribeGroups, 0, 6);

/// Every group operation an authorizer could grant (READ, DELETE, DESCRIBE).
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: DescribeGroupsRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let ids: Vec<String> = request.groups.iter().map(|g| g.to_string()).collect();
    let broker = Arc::clone(&ctx.broker);
    let described = blocking(move || {
        let core = broker.groups.lock();
        ids.iter()
            .map(|id| (core.group(id).is_some(), core.describe_group(id)))
            .collect::<Vec<_>>()
    })
    .await;
    let operations = if request.include_authorized_operations {
        GROUP_OPERATIONS
    } else {
        i32::MIN
    };
    let groups =
        request
            .groups
            .iter()
            .zip(described)
            .map(|(id, (exists, d))| {
                let error = if !exists && ctx.api_version >= 6 {
                    ErrorCode::GroupIdNotFound
                } else {
                    ErrorCode::None
                };
                DescribedGroup::default()
                    .with_error_code(error.code())
                    .with_error_message((error != ErrorCode::None).then(|| {
                        StrBytes::from_string(format!("Group {} not found.", id.as_str()))
                    }))
                    .with_group_id(id.clone())
                    .with_group_state(StrBytes::from_static_str(d.state.name()))
                    .with_protocol_type(StrBytes::from_string(d.protocol_type))
                    .with_protocol_data(StrBytes::from_string(d.protocol))
                    .with_members(
                        d.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(StrBytes::from_string(m.member_id))
                                    .with_group_instance_id(
                                        m.group_instance_id.map(StrBytes::from_string),
                                    )
                                    .with_client_id(StrBytes::from_string(m.client_id))
                                    .with_client_host(StrBytes::from_string(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    )
                    .with_authorized_operations(operations)
            })
            .collect();
    ctx.respond(&DescribeGroupsResponse::default().with_groups(groups))
}
