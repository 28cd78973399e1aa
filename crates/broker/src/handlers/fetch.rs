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
//! - A follower's fetch (replica id ≥ 0: `ReplicaId` up to v14,
//!   `ReplicaState` from v15 with its broker epoch) is Kafka's
//!   `Partition.fetchRecords` for a follower (`HostedPartition::read_for_follower`):
//!   the sender must be one of the partition's replicas at the request's leader
//!   epoch (else NOT_LEADER_OR_FOLLOWER, or UNKNOWN_LEADER_EPOCH when the request
//!   names the current epoch, as a reassignment may not have reached us yet); a
//!   last fetched epoch that diverges from this log is answered with
//!   `DivergingEpoch` and no records; otherwise records up to the log end (not
//!   the HW, and regardless of the isolation level), with the HW as it was
//!   before the read. The first read tells the partition the follower's
//!   position, which may move the HW; a delayed fetch's later reads do not.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use protocol::kafka::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset as FetchEpochEndOffset, FetchableTopicResponse,
    PartitionData,
};
use protocol::kafka::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, ProducerId};
use protocol::{ErrorCode, TopicPartition};
use replication::{EpochEndOffset, IsolationLevel, ReplicationError};
use storage::{ReadOutcome, StorageError};

use super::{ApiSpec, Reply, RequestContext};
use crate::errors::{replication_error_code, storage_error_code};
use crate::partition::{FollowerFetch, PartitionRead, SharedPartition};
use crate::runtime::blocking;
use crate::signal::Listener;

/// Kafka 3.9 served from v0: lower versions go through [`super::legacy`].
pub const API: ApiSpec = ApiSpec::new(ApiKey::Fetch, 4, 18).with_legacy_min(0);

/// Who fetches: a consumer, or a follower with its broker epoch.
#[derive(Clone, Copy)]
enum Fetcher {
    Consumer(IsolationLevel),
    Follower { replica_id: i32, broker_epoch: i64 },
}

#[derive(Clone)]
struct Item {
    topic_index: usize,
    partition_index: i32,
    partition: Result<SharedPartition, ErrorCode>,
    fetch_offset: i64,
    current_leader_epoch: Option<i32>,
    partition_max_bytes: usize,
    /// A follower's: the epoch of its last batch, and its log start.
    last_fetched_epoch: i32,
    log_start_offset: i64,
}

/// One partition's read, for a consumer or a follower (with `update`: tell the
/// partition where the follower is).
fn read_item(
    partition: &SharedPartition,
    item: &Item,
    fetcher: Fetcher,
    update: bool,
) -> Result<(PartitionRead, Option<EpochEndOffset>), ReplicationError> {
    match fetcher {
        Fetcher::Consumer(isolation) => {
            let read = partition.read(item.fetch_offset, isolation, item.current_leader_epoch)?;
            Ok((read, None))
        }
        Fetcher::Follower {
            replica_id,
            broker_epoch,
        } => {
            let fetch = FollowerFetch {
                replica_id,
                broker_epoch,
                current_leader_epoch: item.current_leader_epoch,
                fetch_offset: item.fetch_offset,
                last_fetched_epoch: item.last_fetched_epoch,
                log_start_offset: item.log_start_offset,
            };
            let read = partition.read_for_follower(&fetch, update)?;
            Ok((read.read, read.diverging_epoch))
        }
    }
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

/// Reads every item once, in order, within the byte limits: the answers, the
/// bytes read, and whether to answer without waiting for more (an error or a
/// diverging epoch).
fn read_items(
    items: &[Item],
    max_bytes: usize,
    fetcher: Fetcher,
    first: bool,
) -> (Vec<PartitionData>, usize, bool) {
    let mut remaining = max_bytes;
    let mut min_one_batch = true;
    let mut total = 0usize;
    let mut answer_now = false;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let partition = match &item.partition {
            Ok(partition) => partition,
            Err(code) => {
                answer_now = true;
                out.push(empty_partition(item.partition_index, *code));
                continue;
            }
        };
        let (read, diverging_epoch) = match read_item(partition, item, fetcher, first) {
            Ok(read) => read,
            Err(error) => {
                answer_now = true;
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
                answer_now = true;
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
        let aborted = match fetcher {
            Fetcher::Consumer(IsolationLevel::ReadCommitted) => Some(
                read.aborted_transactions
                    .iter()
                    .map(|(producer_id, first_offset)| {
                        AbortedTransaction::default()
                            .with_producer_id(ProducerId(*producer_id))
                            .with_first_offset(*first_offset)
                    })
                    .collect(),
            ),
            _ => None,
        };
        // Kafka answers a diverging epoch at once, as it does an error.
        answer_now |= diverging_epoch.is_some();
        let diverging_epoch = diverging_epoch.map_or_else(Default::default, |end| {
            FetchEpochEndOffset::default()
                .with_epoch(end.leader_epoch)
                .with_end_offset(end.end_offset)
        });
        out.push(
            PartitionData::default()
                .with_diverging_epoch(diverging_epoch)
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
    (out, total, answer_now)
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
    let (replica_id, broker_epoch) = if version >= 15 {
        (
            request.replica_state.replica_id.0,
            request.replica_state.replica_epoch,
        )
    } else {
        (request.replica_id.0, -1)
    };
    // Kafka's `FetchRequest.isValidBrokerId`: every negative id is a consumer.
    let fetcher = if replica_id >= 0 {
        Fetcher::Follower {
            replica_id,
            broker_epoch,
        }
    } else {
        Fetcher::Consumer(IsolationLevel::from_i8(request.isolation_level))
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
                last_fetched_epoch: if version >= 12 {
                    p.last_fetched_epoch
                } else {
                    -1
                },
                log_start_offset: p.log_start_offset,
            });
        }
    }
    let max_bytes = (request.max_bytes.max(0) as usize).min(broker.config.fetch_max_bytes);
    let min_bytes = (request.min_bytes.max(0) as usize).min(max_bytes);
    let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let deadline = tokio::time::Instant::now() + wait;
    let mut shutdown = broker.shutdown_signal();
    let items = Arc::new(items);
    let mut first = true;
    let partitions = loop {
        // Listen before reading, so an append between the read and the wait wakes us.
        let listeners = AnyOf(
            items
                .iter()
                .filter_map(|i| i.partition.as_ref().ok())
                .map(|p| p.listen_for_fetches())
                .collect(),
        );
        let (partitions, total, answer_now) = if reads_inline(&items, max_bytes) {
            read_items(&items, max_bytes, fetcher, first)
        } else {
            let batch = Arc::clone(&items);
            blocking(move || read_items(&batch, max_bytes, fetcher, first)).await
        };
        first = false;
        let done = total >= min_bytes
            || total > 0 && min_bytes == 0
            || wait.is_zero()
            || answer_now
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
