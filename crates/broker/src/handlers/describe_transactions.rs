//! DescribeTransactions (key 65): state, producer, timeout and partitions of
//! transactional ids.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use protocol::kafka::messages::describe_transactions_response::{TopicData, TransactionState};
use protocol::kafka::messages::{
    ApiKey, DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use protocol::kafka::protocol::StrBytes;
use protocol::ErrorCode;

use super::{ApiSpec, Reply, RequestContext};
use crate::runtime::blocking;

pub const API: ApiSpec = ApiSpec::new(ApiKey::DescribeTransactions, 0, 0);

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: DescribeTransactionsRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let broker = Arc::clone(&ctx.broker);
    let ids: Vec<String> = request
        .transactional_ids
        .iter()
        .map(|t| t.to_string())
        .collect();
    let found = blocking(move || {
        let core = broker.transactions.lock();
        ids.iter()
            .map(|id| core.transaction(id).cloned())
            .collect::<Vec<_>>()
    })
    .await;
    let states = request
        .transactional_ids
        .iter()
        .zip(found)
        .map(|(id, txn)| match txn {
            None => TransactionState::default()
                .with_error_code(ErrorCode::TransactionalIdNotFound.code())
                .with_transactional_id(id.clone())
                .with_transaction_state(StrBytes::from_static_str("")),
            Some(txn) => {
                let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                for (topic, partition) in &txn.partitions {
                    by_topic.entry(topic.clone()).or_default().push(*partition);
                }
                TransactionState::default()
                    .with_error_code(0)
                    .with_transactional_id(id.clone())
                    .with_transaction_state(StrBytes::from_static_str(txn.state.name()))
                    .with_transaction_timeout_ms(txn.timeout_ms)
                    .with_transaction_start_time_ms(txn.start_ms)
                    .with_producer_id(ProducerId(txn.producer_id))
                    .with_producer_epoch(txn.producer_epoch)
                    .with_topics(
                        by_topic
                            .into_iter()
                            .map(|(t, ps)| {
                                TopicData::default()
                                    .with_topic(TopicName(StrBytes::from_string(t)))
                                    .with_partitions(ps)
                            })
                            .collect(),
                    )
            }
        })
        .collect();
    ctx.respond(&DescribeTransactionsResponse::default().with_transaction_states(states))
}
