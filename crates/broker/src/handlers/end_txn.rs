//! EndTxn (key 26): commit or abort; answered once the markers are written.

use super::{ApiSpec, Reply, RequestContext};
use crate::errors::txn_result_code;
use bytes::Bytes;
use protocol::kafka::messages::{ApiKey, EndTxnRequest, EndTxnResponse, ProducerId};

pub const API: ApiSpec = ApiSpec::new(ApiKey::EndTxn, 0, 5);

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: EndTxnRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let id = request.transactional_id.to_string();
    let (pid, epoch, commit) = (
        request.producer_id.0,
        request.producer_epoch,
        request.committed,
    );
    let outcome = ctx
        .broker
        .transactions
        .ask(|core, respond| core.end_transaction(&id, pid, epoch, commit, respond))
        .await;
    let error = txn_result_code(&outcome, ctx.api_version < 2);
    ctx.respond(
        &EndTxnResponse::default()
            .with_error_code(error.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    )
}
