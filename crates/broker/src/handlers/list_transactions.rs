//! ListTransactions (key 66): transactional ids, filtered by state, producer id,
//! duration (v1) and id pattern (v2).

use std::sync::Arc;

use bytes::Bytes;
use coordinator::TxnState;
use protocol::kafka::messages::list_transactions_response::TransactionState;
use protocol::kafka::messages::{
    ApiKey, ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use protocol::kafka::protocol::StrBytes;

use super::{ApiSpec, Reply, RequestContext};
use crate::runtime::blocking;

pub const API: ApiSpec = ApiSpec::new(ApiKey::ListTransactions, 0, 1);

const STATES: [&str; 8] = [
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
];

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: ListTransactionsRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let states: Vec<String> = request
        .state_filters
        .iter()
        .map(|s| s.to_string())
        .collect();
    let unknown: Vec<StrBytes> = request
        .state_filters
        .iter()
        .filter(|s| !STATES.contains(&s.as_str()))
        .cloned()
        .collect();
    let producers: Vec<i64> = request.producer_id_filters.iter().map(|p| p.0).collect();
    let duration = if ctx.api_version >= 1 {
        request.duration_filter
    } else {
        -1
    };
    let now = ctx.broker.clock.now_ms();
    let broker = Arc::clone(&ctx.broker);
    let listed = blocking(move || {
        broker
            .transactions
            .lock()
            .transactions()
            .filter(|t| states.is_empty() || states.iter().any(|s| s == t.state.name()))
            .filter(|t| producers.is_empty() || producers.contains(&t.producer_id))
            .filter(|t| t.state != TxnState::Dead)
            // Kafka's: running strictly longer than the filter.
            .filter(|t| duration < 0 || (t.start_ms >= 0 && now - t.start_ms > duration))
            .map(|t| (t.transactional_id.clone(), t.producer_id, t.state.name()))
            .collect::<Vec<_>>()
    })
    .await;
    let states = listed
        .into_iter()
        .map(|(id, pid, state)| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(id)))
                .with_producer_id(ProducerId(pid))
                .with_transaction_state(StrBytes::from_static_str(state))
        })
        .collect();
    ctx.respond(
        &ListTransactionsResponse::default()
            .with_error_code(0)
            .with_unknown_state_filters(unknown)
            .with_transaction_states(states),
    )
}
