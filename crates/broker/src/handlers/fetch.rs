//! Fetch (key 1): consumers read whole batches below the high watermark.
//!
//! - The first batch returned is the one holding `fetch_offset`, from its start;
//!   batches are never cut (this broker stops at the last whole batch that fits).
//! - KIP-74: partitions are read in request order within `max_bytes` (capped by
//!   `fetch.max.bytes`) and each partition's `partition_max_bytes`; the first
//!   partition with data returns at least one whole batch even past those limits.
//! - Long poll: with less than `min_bytes` ready, the request waits up to
//!   `max_wait_ms`, woken at once by an append to any partition it reads.
//! - OFFSET_OUT_OF_RANGE answers carry -1 offsets, as Kafka's do.
//! - Fetch sessions (KIP-227): a request to open one (epoch 0) is declined with
//!   session id 0, which every client handles by sending full requests; an
//!   incremental request for a session we never opened gets
//!   FETCH_SESSION_ID_NOT_FOUND.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use protocol::kafka::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use protocol::kafka::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, ProducerId};
use protocol::{ErrorCode, TopicPartition};
use replication::{IsolationLevel, ReplicationError};
use storage::{ReadOutcome, StorageError};

use super::{ApiSpec, Reply, RequestContext};
use crate::errors::{replication_error_code, storage_error_code};
use crate::partition::SharedPartition;
use crate::runtime::blocking;
use crate::signal::Listener;

/// Kafka 3.9 served from v0: lower versions go through [`super::legacy`].
pub const API: ApiSpec = ApiSpec::new(ApiKey::Fetch, 4, 18).with_legacy_min(0);

#[derive(Clone)]
struct Item {
    topic_index: usize,
    partition_index: i32,
    partition: Result<SharedPartition, ErrorCode>,
    fetch_offset: i64,
    current_leader_epoch: Option<i32>,
    partition_max_bytes: usize,
}

fn empty_partition(index: i32, error: ErrorCode) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(error.code())
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_preferred_read_replica(BrokerId(-1))
        .with_records(Some(Bytes::new()))
}

/// Reads every item once, in order, within the byte limits.
fn read_items(
    items: &[Item],
    max_bytes: usize,
    isolation: IsolationLevel,
) -> (Vec<PartitionData>, usize, bool) {
    let mut remaining = max_bytes;
    let mut min_one_batch = true;
    let mut total = 0usize;
    let mut any_error = false;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let partition = match &item.partition {
            Ok(partition) => partition,
            Err(code) => {
                any_error = true;
                out.push(empty_partition(item.partition_index, *code));
                continue;
            }
        };
        let read = match partition.read(item.fetch_offset, isolation, item.current_leader_epoch) {
            Ok(read) => read,
            Err(error) => {
                any_error = true;
                if !matches!(
                    error,
                    ReplicationError::Storage(StorageError::OffsetOutOfRange { .. })
                ) {
                    tracing::debug!(partition = %partition.topic_partition(), error = %error, "fetch refused");
                }
                out.push(empty_partition(
                    item.partition_index,
                    replication_error_code(&error),
                ));
                continue;
            }
        };
        let limit = item.partition_max_bytes.min(remaining);
        let records = match &read.outcome {
            ReadOutcome::Empty => Ok(Bytes::new()),
            ReadOutcome::Data(slice) => slice.read(limit, min_one_batch),
        };
        let records = match records {
            Ok(records) => records,
            Err(e) => {
                tracing::error!(partition = %partition.topic_partition(), error = %e, "reading the log failed");
                any_error = true;
                out.push(empty_partition(
                    item.partition_index,
                    storage_error_code(&e),
                ));
                continue;
            }
        };
        if !records.is_empty() {
            min_one_batch = false;
            remaining = remaining.saturating_sub(records.len());
            total += records.len();
        }
        let aborted = match isolation {
            IsolationLevel::ReadCommitted => Some(
                read.aborted_transactions
                    .iter()
                    .map(|(producer_id, first_offset)| {
                        AbortedTransaction::default()
                            .with_producer_id(ProducerId(*producer_id))
                            .with_first_offset(*first_offset)
                    })
                    .collect(),
            ),
            IsolationLevel::ReadUncommitted => None,
        };
        out.push(
            PartitionData::default()
                .with_partition_index(item.partition_index)
                .with_error_code(ErrorCode::None.code())
                .with_high_watermark(read.high_watermark)
                .with_last_stable_offset(read.last_stable_offset)
                .with_log_start_offset(read.log_start_offset)
                .with_aborted_transactions(aborted)
                .with_preferred_read_replica(BrokerId(-1))
                .with_records(Some(records)),
        );
    }
    (out, total, any_error)
}

/// A read this small at the tail of every partition runs on the request's own task.
const INLINE_READ_BYTES: usize = 1024 * 1024;

/// Whether to read on the request's task instead of the blocking pool: a caught-up
/// consumer reads the active segment, whose bytes were just appended and are in the
/// page cache, so the read takes microseconds; the hop to a blocking thread and back
/// costs more than that and, at thousands of fetches a second on two cores, most of
/// the broker's CPU went to those thread switches (bench/README.md, scenario 4).
/// Reads that may touch the disk (older segments) or copy more than
/// `INLINE_READ_BYTES` still go to the blocking pool, as DESIGN.md has it.
fn reads_inline(items: &[Item], max_bytes: usize) -> bool {
    let budget = items
        .iter()
        .fold(0usize, |sum, item| {
            sum.saturating_add(item.partition_max_bytes)
        })
        .min(max_bytes);
    budget <= INLINE_READ_BYTES
        && items.iter().all(|item| {
            item.partition
                .as_ref()
                .map_or(true, |p| p.is_tail_read(item.fetch_offset))
        })
}

/// Completes when any of the listeners does.
struct AnyOf(Vec<Listener>);

impl Future for AnyOf {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        for listener in self.0.iter_mut() {
            if Pin::new(listener).poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    }
}

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: FetchRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let version = ctx.api_version;
    if request.session_id != 0 && request.session_epoch > 0 {
        let response = FetchResponse::default()
            .with_error_code(ErrorCode::FetchSessionIdNotFound.code())
            .with_session_id(0);
        return ctx.respond(&response);
    }
    let replica_id = if version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    let broker = &ctx.broker;
    let image = broker.metadata.image();
    let by_id = version >= 13;
    let mut items = Vec::new();
    for (topic_index, topic) in request.topics.iter().enumerate() {
        let name = if by_id {
            image
                .topic_by_id(&topic.topic_id)
                .map(|t| Arc::clone(&t.name))
        } else {
            Some(Arc::from(topic.topic.as_str()))
        };
        for p in &topic.partitions {
            let partition = match &name {
                None => Err(ErrorCode::UnknownTopicId),
                Some(_) if replica_id >= 0 => Err(ErrorCode::NotLeaderOrFollower),
                Some(name) => broker
                    .replicas
                    .get(&TopicPartition::new(Arc::clone(name), p.partition))
                    .ok_or(ErrorCode::UnknownTopicOrPartition),
            };
            items.push(Item {
                topic_index,
                partition_index: p.partition,
                partition,
                fetch_offset: p.fetch_offset,
                current_leader_epoch: (version >= 9 && p.current_leader_epoch >= 0)
                    .then_some(p.current_leader_epoch),
                partition_max_bytes: p.partition_max_bytes.max(0) as usize,
            });
        }
    }
    let max_bytes = (request.max_bytes.max(0) as usize).min(broker.config.fetch_max_bytes);
    let min_bytes = (request.min_bytes.max(0) as usize).min(max_bytes);
    let isolation = IsolationLevel::from_i8(request.isolation_level);
    let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let deadline = tokio::time::Instant::now() + wait;
    let mut shutdown = broker.shutdown_signal();
    let items = Arc::new(items);
    let partitions = loop {
        // Listen before reading, so an append between the read and the wait wakes us.
        let listeners = AnyOf(
            items
                .iter()
                .filter_map(|i| i.partition.as_ref().ok())
                .map(|p| p.listen_for_fetches())
                .collect(),
        );
        let (partitions, total, any_error) = if reads_inline(&items, max_bytes) {
            read_items(&items, max_bytes, isolation)
        } else {
            let batch = Arc::clone(&items);
            blocking(move || read_items(&batch, max_bytes, isolation)).await
        };
        let done = total >= min_bytes
            || total > 0 && min_bytes == 0
            || wait.is_zero()
            || any_error
            || items.is_empty()
            || tokio::time::Instant::now() >= deadline
            || broker.is_shutting_down();
        if done {
            break partitions;
        }
        tokio::select! {
            _ = listeners => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.changed() => {}
        }
    };
    let mut responses: Vec<FetchableTopicResponse> = request
        .topics
        .iter()
        .map(|t| {
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
        })
        .collect();
    for (item, data) in items.iter().zip(partitions) {
        responses[item.topic_index].partitions.push(data);
    }
    // The records go to the socket as the Bytes read from the log, not copied into
    // the frame (protocol::fetch_frame).
    let response = FetchResponse::default()
        .with_error_code(ErrorCode::None.code())
        .with_session_id(0)
        .with_responses(responses);
    match protocol::fetch_frame::encode_fetch_response(
        ctx.api_version,
        ctx.correlation_id,
        response,
    ) {
        Ok(chunks) => Reply::Chunks(chunks),
        Err(e) => {
            tracing::error!(error = %e, "failed to encode a fetch response; closing the connection");
            Reply::Close(e.to_string())
        }
    }
}
