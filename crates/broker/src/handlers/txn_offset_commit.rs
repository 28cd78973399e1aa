//! TxnOffsetCommit (key 28): offsets committed inside a transaction, visible once
//! it commits (consume-transform-produce, KIP-98/KIP-447).

use std::sync::Arc;

use bytes::Bytes;
use coordinator::{GroupError, OffsetCommitEntry};
use protocol::kafka::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use protocol::kafka::messages::{ApiKey, TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use protocol::ErrorCode;

use super::{guards, ApiSpec, Reply, RequestContext};
use crate::errors::{group_result_code, txn_error_code};

pub const API: ApiSpec = ApiSpec::new(ApiKey::TxnOffsetCommit, 0, 5);

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: TxnOffsetCommitRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    // As OffsetCommit: a partition that does not exist gets UNKNOWN_TOPIC_OR_PARTITION
    // (KafkaApis.handleTxnOffsetCommitRequest), and a group id longer than an
    // internal-topic record holds is refused before anything is stored.
    let image = ctx.broker.metadata.image();
    let known: Vec<Vec<bool>> = request
        .topics
        .iter()
        .map(|t| {
            t.partitions
                .iter()
                .map(|p| image.partition(&t.name, p.partition_index).is_some())
                .collect()
        })
        .collect();
    let refused = guards::stored_strings(&[("group.id", Some(&request.group_id), 0)])
        .map_err(|message| tracing::debug!(%message, "TxnOffsetCommit refused"))
        .err()
        .map(|()| ErrorCode::InvalidGroupId);
    let entries: Vec<OffsetCommitEntry> = request
        .topics
        .iter()
        .zip(&known)
        .flat_map(|(t, known)| {
            t.partitions
                .iter()
                .zip(known)
                .filter(|(_, known)| **known)
                .map(move |(p, _)| OffsetCommitEntry {
                    topic: t.name.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                })
        })
        .collect();
    let broker = Arc::clone(&ctx.broker);
    let transactional_id = request.transactional_id.to_string();
    let group = request.group_id.to_string();
    let (pid, epoch) = (request.producer_id.0, request.producer_epoch);
    let member = request.member_id.to_string();
    let instance = request.group_instance_id.as_ref().map(|s| s.to_string());
    let generation = if ctx.api_version >= 3 {
        request.generation_id
    } else {
        -1
    };
    // The producer must own the transaction it commits offsets in: the
    // transaction coordinator says, the group coordinator stores.
    let owner = broker
        .transactions
        .lock()
        .verify_owner(&transactional_id, pid, epoch);
    let errors = match owner {
        // Nothing to store (or refused): the answers come from `known` and `refused`.
        _ if entries.is_empty() || refused.is_some() => Vec::new(),
        Err(error) => vec![txn_error_code(&error); entries.len()],
        Ok(()) => broker
            .groups
            .ask(|core, respond| {
                core.txn_commit_offsets(
                    &group,
                    pid,
                    epoch,
                    &member,
                    instance.as_deref(),
                    generation,
                    &entries,
                    respond,
                )
            })
            .await
            .unwrap_or_else(|| vec![Err(GroupError::CoordinatorNotAvailable); entries.len()])
            .iter()
            .map(group_result_code)
            .collect(),
    };
    let mut errors = errors.into_iter();
    let topics = request
        .topics
        .iter()
        .zip(known)
        .map(|(t, known)| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .zip(known)
                        .map(|(p, known)| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(
                                    match (known, refused) {
                                        (_, Some(code)) => code,
                                        (false, None) => ErrorCode::UnknownTopicOrPartition,
                                        (true, None) => {
                                            errors.next().unwrap_or(ErrorCode::UnknownServerError)
                                        }
                                    }
                                    .code(),
                                )
                        })
                        .collect(),
                )
        })
        .collect();
    ctx.respond(&TxnOffsetCommitResponse::default().with_topics(topics))
}
