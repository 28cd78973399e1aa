//! WriteTxnMarkers (key 27): write COMMIT or ABORT markers to partitions led here.
//!
//! Kafka's transaction coordinator sends this to the partitions' leaders; an
//! administrator sends it too, to abort a hanging transaction
//! (`kafka-transactions.sh abort`, kafka-python's `abort_transaction`: an ABORT
//! with the producer id and epoch that DescribeProducers shows). Each partition is
//! answered on its own: UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER, or
//! what the append says (INVALID_PRODUCER_EPOCH for a marker older than the
//! producer's epoch, TRANSACTION_COORDINATOR_FENCED for an older coordinator
//! epoch). A marker on `__consumer_offsets` also completes the producer's pending
//! transactional offset commits there, as our own coordinator's markers do.

use std::sync::Arc;

use crate::groups::OFFSETS_TOPIC;
use bytes::Bytes;
use protocol::kafka::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use protocol::kafka::messages::{ApiKey, WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use protocol::{ErrorCode, TopicPartition};
use storage::producer_state::{marker_batch, CONTROL_ABORT, CONTROL_COMMIT};
use storage::Origin;

use super::{ApiSpec, Reply, RequestContext};
use crate::broker::{blocking, Broker};
use crate::errors::replication_error_code;

/// Kafka 4 removed v0; v1 is the baseline (flexible).
pub const API: ApiSpec = ApiSpec::new(ApiKey::WriteTxnMarkers, 1, 1);

/// Appends one marker to one partition; fsyncs it when the topic's flush
/// settings ask for it.
fn write_marker(
    broker: &Broker,
    tp: &TopicPartition,
    batch: &[u8],
    producer_id: i64,
    commit: bool,
) -> ErrorCode {
    let Some(partition) = broker.replicas.get(tp) else {
        return ErrorCode::UnknownTopicOrPartition;
    };
    let outcome = match partition.append_as_leader(batch, -1, Origin::Coordinator) {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::info!(partition = %tp, error = %e, "transaction marker refused");
            return replication_error_code(&e);
        }
    };
    if outcome.flush_now {
        if let Err(e) = partition.flush(outcome.info.last_offset.0 + 1) {
            return replication_error_code(&e);
        }
    }
    if &*tp.topic == OFFSETS_TOPIC {
        broker
            .groups
            .lock()
            .complete_transaction(tp.partition, producer_id, commit);
    }
    tracing::info!(partition = %tp, producer_id, commit, offset = outcome.info.first_offset.0, "transaction marker written by request");
    ErrorCode::None
}

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: WriteTxnMarkersRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let broker = Arc::clone(&ctx.broker);
    let now = broker.clock.now_ms();
    let markers = blocking(move || {
        request
            .markers
            .into_iter()
            .map(|marker| {
                let producer_id = marker.producer_id.0;
                let commit = marker.transaction_result;
                let kind = if commit {
                    CONTROL_COMMIT
                } else {
                    CONTROL_ABORT
                };
                let batch = marker_batch(
                    producer_id,
                    marker.producer_epoch,
                    kind,
                    marker.coordinator_epoch,
                    now,
                );
                let topics = marker
                    .topics
                    .into_iter()
                    .map(|topic| {
                        let partitions = topic
                            .partition_indexes
                            .iter()
                            .map(|&index| {
                                let tp = TopicPartition::new(topic.name.as_str(), index);
                                let error = write_marker(&broker, &tp, &batch, producer_id, commit);
                                WritableTxnMarkerPartitionResult::default()
                                    .with_partition_index(index)
                                    .with_error_code(error.code())
                            })
                            .collect();
                        WritableTxnMarkerTopicResult::default()
                            .with_name(topic.name)
                            .with_partitions(partitions)
                    })
                    .collect();
                WritableTxnMarkerResult::default()
                    .with_producer_id(marker.producer_id)
                    .with_topics(topics)
            })
            .collect()
    })
    .await;
    ctx.respond(&WriteTxnMarkersResponse::default().with_markers(markers))
}
