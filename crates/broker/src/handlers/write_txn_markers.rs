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
use crate::broker::Broker;
use crate::errors::{ack_error_code, replication_error_code, sync_error_code};
use crate::group_commit::SyncReceiver;
use crate::partition::{wait_synced, Acks, SharedPartition};
use crate::runtime::blocking;

/// Kafka 4 removed v0; v1 is the baseline (flexible).
/// Kafka 3.9 served from v0: lower versions go through [`super::legacy`].
pub const API: ApiSpec = ApiSpec::new(ApiKey::WriteTxnMarkers, 1, 1).with_legacy_min(0);

/// The marker appends' timeout while the ISR acknowledges them (Kafka uses the
/// broker's `request.timeout.ms`, 30 s by default).
const MARKER_TIMEOUT_MS: i64 = 30_000;

/// One marker's append: answered, or waiting for its fsync (`flush.messages`)
/// and the ISR.
enum Written {
    Done(ErrorCode),
    Waiting(SharedPartition, Option<SyncReceiver>, Acks),
}

/// Appends one marker to one partition (on the blocking pool: it may roll).
fn write_marker(
    broker: &Broker,
    tp: &TopicPartition,
    batch: &[u8],
    producer_id: i64,
    commit: bool,
) -> Written {
    let Some(partition) = broker.replicas.get(tp) else {
        return Written::Done(ErrorCode::UnknownTopicOrPartition);
    };
    let outcome =
        match partition.append_as_leader(batch, -1, Origin::Coordinator, MARKER_TIMEOUT_MS) {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::info!(partition = %tp, error = %e, "transaction marker refused");
                return Written::Done(replication_error_code(&e));
            }
        };
    if &*tp.topic == OFFSETS_TOPIC {
        broker
            .groups
            .lock()
            .complete_transaction(tp.partition, producer_id, commit);
    }
    tracing::info!(partition = %tp, producer_id, commit, offset = outcome.info.first_offset.0, "transaction marker written by request");
    Written::Waiting(partition, outcome.synced, outcome.acks)
}

async fn settle(written: Written) -> ErrorCode {
    let (partition, synced, acks) = match written {
        Written::Done(error) => return error,
        Written::Waiting(partition, synced, acks) => (partition, synced, acks),
    };
    if let Some(synced) = synced {
        if let Err(e) = wait_synced(synced).await {
            return sync_error_code(&e);
        }
    }
    let acked = match acks {
        Acks::Done(answer) => answer,
        Acks::Waiting(rx) => partition.wait_for_acks(rx, MARKER_TIMEOUT_MS).await,
    };
    match acked {
        Ok(()) => ErrorCode::None,
        Err(e) => ack_error_code(&e),
    }
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
                                (
                                    index,
                                    write_marker(&broker, &tp, &batch, producer_id, commit),
                                )
                            })
                            .collect::<Vec<_>>();
                        (topic.name, partitions)
                    })
                    .collect::<Vec<_>>();
                (marker.producer_id, topics)
            })
            .collect::<Vec<_>>()
    })
    .await;
    let mut results = Vec::with_capacity(markers.len());
    for (producer_id, topics) in markers {
        let mut topic_results = Vec::with_capacity(topics.len());
        for (name, partitions) in topics {
            let mut partition_results = Vec::with_capacity(partitions.len());
            for (index, written) in partitions {
                let error = settle(written).await;
                partition_results.push(
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(index)
                        .with_error_code(error.code()),
                );
            }
            topic_results.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(name)
                    .with_partitions(partition_results),
            );
        }
        results.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(producer_id)
                .with_topics(topic_results),
        );
    }
    ctx.respond(&WriteTxnMarkersResponse::default().with_markers(results))
}
