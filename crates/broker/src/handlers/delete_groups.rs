//! DeleteGroups (key 42): delete empty groups with their committed offsets.

use std::sync::Arc;

use bytes::Bytes;
use protocol::kafka::messages::delete_groups_response::DeletableGroupResult;
use protocol::kafka::messages::{ApiKey, DeleteGroupsRequest, DeleteGroupsResponse};

use super::{ApiSpec, Reply, RequestContext};
use crate::broker::blocking;

pub const API: ApiSpec = ApiSpec::new(ApiKey::DeleteGroups, 0, 2);

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: DeleteGroupsRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let ids: Vec<String> = request.groups_names.iter().map(|g| g.to_string()).collect();
    let broker = Arc::clone(&ctx.broker);
    let errors = blocking(move || {
        let mut core = broker.groups.lock();
        ids.iter()
            .map(|id| core.delete_group(id))
            .collect::<Vec<_>>()
    })
    .await;
    let results = request
        .groups_names
        .iter()
        .zip(errors)
        .map(|(id, error)| {
            DeletableGroupResult::default()
                .with_group_id(id.clone())
                .with_error_code(error.code())
        })
        .collect();
    ctx.respond(&DeleteGroupsResponse::default().with_results(results))
}
