//! InitProducerId (key 22): a producer id and epoch for an idempotent producer, or
//! for a transactional id (fencing older instances of it).

use bytes::Bytes;
use protocol::kafka::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId,
};
use protocol::ErrorCode;

use coordinator::TxnError;

use super::{guards, ApiSpec, Reply, RequestContext};
use crate::errors::txn_result_code;
use crate::internal_topics::{self, InternalTopic};

pub const API: ApiSpec = ApiSpec::new(ApiKey::InitProducerId, 0, 5);

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: InitProducerIdRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let transactional_id = request
        .transactional_id
        .as_ref()
        .map(|t| t.to_string())
        .filter(|t| !t.is_empty());
    let failed = |code: ErrorCode| {
        InitProducerIdResponse::default()
            .with_error_code(code.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    // The transactional id is the key of its __transaction_state records (guards.rs).
    if let Err(message) =
        guards::stored_strings(&[("transactional.id", transactional_id.as_deref(), 0)])
    {
        tracing::debug!(%message, "InitProducerId refused");
        return ctx.respond(&failed(ErrorCode::InvalidRequest));
    }
    if transactional_id.is_some()
        && internal_topics::ensure(&ctx.broker.controller, InternalTopic::Transactions)
            .await
            .is_err()
    {
        // The transaction has nowhere to be stored.
        let unavailable = Err(TxnError::CoordinatorNotAvailable);
        return ctx.respond(&failed(txn_result_code(&unavailable, false)));
    }
    let expected =
        (ctx.api_version >= 3).then_some((request.producer_id.0, request.producer_epoch));
    let timeout = request.transaction_timeout_ms;
    let transactions = &ctx.broker.transactions;
    let outcome = match transactions.top_up_producer_ids().await {
        Ok(()) => {
            transactions
                .ask(|core, respond| {
                    core.init_producer_id(transactional_id.as_deref(), timeout, expected, respond)
                })
                .await
        }
        Err(error) => Err(error),
    };
    let response = match outcome {
        Ok((producer_id, producer_epoch)) => InitProducerIdResponse::default()
            .with_error_code(0)
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch),
        // Before KIP-588 (v4), a fenced producer is told INVALID_PRODUCER_EPOCH.
        Err(error) => failed(txn_result_code(&Err(error), ctx.api_version < 4)),
    };
    ctx.respond(&response)
}
