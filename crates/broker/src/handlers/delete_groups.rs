//! DeleteGroups (key 42): delete empty groups with their committed offsets.

use bytes::Bytes;
use coordinator::GroupError;
use protocol::kafka::messages::delete_groups_response::DeletableGroupResult;
use protocol::kafka::messages::{ApiKey, DeleteGroupsRequest, DeleteGroupsResponse};

use super::{ApiSpec, Reply, RequestContext};
use crate::errors::group_result_code;

pub const API: ApiSpec = ApiSpec::new(ApiKey::DeleteGroups, 0, 2);

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: DeleteGroupsRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let ids: Vec<String> = request.groups_names.iter().map(|g| g.to_string()).collect();
    let mut errors = Vec::with_capacity(ids.len());
    for id in &ids {
        let error = ctx
            .broker
            .groups
            .ask(|core, respond| core.delete_group(id, respond))
            .await
            .unwrap_or(Err(GroupError::CoordinatorNotAvailable));
        errors.push(error);
    }
    let results = request
        .groups_names
        .iter()
        .zip(errors)
        .map(|(id, error)| {
            DeletableGroupResult::default()
                .with_group_id(id.clone())
                .with_error_code(group_result_code(&error).code())
        })
        .collect();
    ctx.respond(&DeleteGroupsResponse::default().with_results(results))
}
