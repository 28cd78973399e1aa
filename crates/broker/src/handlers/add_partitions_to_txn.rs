//! AddPartitionsToTxn (key 24): the partitions a transaction writes to. v0-3: one
//! transaction per request (librdkafka uses v0); v4+: several (broker form).

use bytes::Bytes;
use protocol::kafka::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use protocol::kafka::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, TransactionalId,
};
use protocol::ErrorCode;

use super::{ApiSpec, Reply, RequestContext};
use crate::errors::txn_result_code;

pub const API: ApiSpec = ApiSpec::new(ApiKey::AddPartitionsToTxn, 0, 5);

type Topics = Vec<(protocol::kafka::messages::TopicName, Vec<i32>)>;

/// Adds one transaction's partitions; per-topic, per-partition results.
async fn add(
    ctx: &RequestContext,
    transactional_id: &TransactionalId,
    producer_id: i64,
    producer_epoch: i16,
    topics: Topics,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let image = ctx.broker.metadata.image();
    // Unknown partitions fail alone; the others are then OPERATION_NOT_ATTEMPTED.
    let unknown: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (t.to_string(), *p)))
        .filter(|(t, p)| image.partition(t, *p).is_none())
        .collect();
    let wanted: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (t.to_string(), *p)))
        .collect();
    let outcome = if unknown.is_empty() {
        let added = ctx
            .broker
            .transactions
            .ask(|core, respond| {
                core.add_partitions(
                    transactional_id,
                    producer_id,
                    producer_epoch,
                    &wanted,
                    respond,
                )
            })
            .await;
        txn_result_code(&added, ctx.api_version < 2)
    } else {
        ErrorCode::OperationNotAttempted
    };
    topics
        .into_iter()
        .map(|(name, partitions)| {
            let results = partitions
                .iter()
                .map(|p| {
                    let code = if unknown.contains(&(name.to_string(), *p)) {
                        ErrorCode::UnknownTopicOrPartition
                    } else {
                        outcome
                    };
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(code.code())
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(name)
                .with_results_by_partition(results)
        })
        .collect()
}

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: AddPartitionsToTxnRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    if ctx.api_version <= 3 {
        let topics = request
            .v3_and_below_topics
            .iter()
            .map(|t| (t.name.clone(), t.partitions.clone()))
            .collect();
        let results = add(
            ctx,
            &request.v3_and_below_transactional_id,
            request.v3_and_below_producer_id.0,
            request.v3_and_below_producer_epoch,
            topics,
        )
        .await;
        return ctx.respond(
            &AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results),
        );
    }
    let mut results = Vec::new();
    for txn in &request.transactions {
        let topics = txn
            .topics
            .iter()
            .map(|t| (t.name.clone(), t.partitions.clone()))
            .collect();
        let topic_results = add(
            ctx,
            &txn.transactional_id,
            txn.producer_id.0,
            txn.producer_epoch,
            topics,
        )
        .await;
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(txn.transactional_id.clone())
                .with_topic_results(topic_results),
        );
    }
    ctx.respond(
        &AddPartitionsToTxnResponse::default()
            .with_error_code(0)
            .with_results_by_transaction(results),
    )
}
