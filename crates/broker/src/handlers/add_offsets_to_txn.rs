//! AddOffsetsToTxn (key 25): the group's offsets become part of the transaction.

use bytes::Bytes;
use coordinator::TxnError;
use protocol::kafka::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, ApiKey};

use super::{ApiSpec, Reply, RequestContext};
use crate::errors::txn_result_code;
use crate::internal_topics::{self, InternalTopic};

pub const API: ApiSpec = ApiSpec::new(ApiKey::AddOffsetsToTxn, 0, 4);

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: AddOffsetsToTxnRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let outcome =
        match internal_topics::ensure(&ctx.broker.controller, InternalTopic::Offsets).await {
            // The group's offsets have nowhere to go.
            Err(_) => Err(TxnError::CoordinatorNotAvailable),
            Ok(()) => {
                let id = request.transactional_id.to_string();
                let group = request.group_id.to_string();
                let (pid, epoch) = (request.producer_id.0, request.producer_epoch);
                ctx.broker
                    .transactions
                    .ask(|core, respond| core.add_offsets(&id, pid, epoch, &group, respond))
                    .await
            }
        };
    let error = txn_result_code(&outcome, ctx.api_version < 2);
    ctx.respond(&AddOffsetsToTxnResponse::default().with_error_code(error.code()))
}
