//! Produce (key 0): append a client's record batches, one per partition.
//!
//! Advertised from v0 (KAFKA-18659: old librdkafka decides compression support by
//! Produce v0 being listed). v0-2 (message formats v0 and v1) go through
//! [`super::legacy`], which converts their message sets to a batch; with
//! `legacy.api.versions.enable=false` they close the connection, as Kafka 4 does. Each partition's batch is validated and appended whole or not at
//! all, with Kafka's error code. acks=0 gets no response; an error then closes the
//! connection so the producer notices. acks=-1 needs `min.insync.replicas` in sync
//! and waits, up to the request's timeout, until the high watermark passes the
//! records (with an ISR of this broker alone, at once). On a `flush.messages` topic
//! the answer waits for the partition's group commit to fsync the records.

use std::sync::Arc;

use bytes::Bytes;
use protocol::kafka::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use protocol::kafka::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use protocol::kafka::protocol::StrBytes;
use protocol::ErrorCode;
use replication::ReplicationError;
use storage::{AppendError, AppendMode, Origin};
use uuid::Uuid;

use super::{ApiSpec, Later, Reply, RequestContext};
use crate::errors::{ack_error_code, replication_error_code, sync_error_code};
use crate::group_commit::SyncReceiver;
use crate::partition::{wait_synced, AckReceiver, Acks, SharedPartition};
use crate::runtime::blocking;

pub const API: ApiSpec = ApiSpec {
    key: ApiKey::Produce,
    min: 3,
    max: 13,
    advertised_min: 0,
    legacy_min: 0,
};

/// One partition's part of the request, resolved.
struct Target {
    topic_index: usize,
    index: i32,
    partition: Result<SharedPartition, ErrorCode>,
    records: Option<Bytes>,
}

/// One partition's answer.
struct Outcome {
    error: ErrorCode,
    base_offset: i64,
    log_append_time: i64,
    log_start_offset: i64,
    record_errors: Vec<(i32, String)>,
    message: Option<String>,
}

impl Outcome {
    fn failed(error: ErrorCode, message: Option<String>) -> Outcome {
        Outcome {
            error,
            base_offset: -1,
            log_append_time: -1,
            log_start_offset: -1,
            record_errors: Vec::new(),
            message,
        }
    }
}

/// What the appends leave to do: appends for the blocking pool, and waiting for
/// fsyncs and the ISR.
#[derive(Default)]
struct Pending {
    /// Appends that would roll a segment or record a new leader epoch, not made
    /// on the request's task (index into the results, the target).
    deferred: Vec<(usize, Target)>,
    /// `flush.messages`: answered once the group commit has synced the records.
    syncs: Vec<(usize, SyncReceiver)>,
    /// acks=all produces the ISR has not acknowledged yet (index into the results).
    acks: Vec<(usize, SharedPartition, AckReceiver)>,
}

/// One partition's append: its answer so far, and what it waits for.
struct Appended {
    outcome: Outcome,
    synced: Option<SyncReceiver>,
    acks: Option<AckReceiver>,
}

impl Appended {
    fn failed(outcome: Outcome) -> Appended {
        Appended {
            outcome,
            synced: None,
            acks: None,
        }
    }
}

/// Appends one partition's batch; `None` when `mode` is page-cache only and the
/// append needs more (nothing was done).
fn append(
    partition: &SharedPartition,
    records: Option<&Bytes>,
    acks: i16,
    timeout_ms: i64,
    mode: AppendMode,
) -> Option<Appended> {
    let Some(records) = records else {
        return Some(Appended::failed(Outcome::failed(
            ErrorCode::InvalidRecord,
            Some("Produce request with null records".into()),
        )));
    };
    let appended = match mode {
        AppendMode::PageCacheOnly => {
            partition.try_append_in_page_cache(records, acks, Origin::Client, timeout_ms)
        }
        AppendMode::MayBlock => partition
            .append_as_leader(records, acks, Origin::Client, timeout_ms)
            .map(Some),
    };
    match appended {
        Ok(None) => None,
        Ok(Some(outcome)) => {
            let info = &outcome.info;
            let (error, waiting) = match outcome.acks {
                Acks::Done(Ok(())) => (ErrorCode::None, None),
                Acks::Done(Err(e)) => (ack_error_code(&e), None),
                Acks::Waiting(rx) => (ErrorCode::None, Some(rx)),
            };
            if error != ErrorCode::None {
                return Some(Appended::failed(Outcome::failed(error, None)));
            }
            Some(Appended {
                outcome: Outcome {
                    error: ErrorCode::None,
                    base_offset: info.first_offset.0,
                    log_append_time: info.log_append_time,
                    log_start_offset: info.log_start_offset.0,
                    record_errors: Vec::new(),
                    message: None,
                },
                synced: outcome.synced,
                acks: waiting,
            })
        }
        Err(error) => Some(Appended::failed(refused(partition, error))),
    }
}

/// The answer for an append the partition refused, with KIP-467's record errors.
fn refused(partition: &SharedPartition, error: ReplicationError) -> Outcome {
    let code = replication_error_code(&error);
    tracing::debug!(partition = %partition.topic_partition(), error = %error, "produce refused");
    match error {
        ReplicationError::Append(
            AppendError::InvalidTimestamp {
                message,
                record_errors,
            }
            | AppendError::InvalidRecords {
                message,
                record_errors,
            },
        ) => Outcome {
            record_errors,
            ..Outcome::failed(code, Some(message))
        },
        ReplicationError::Append(AppendError::InvalidRecord(message)) => {
            Outcome::failed(code, Some(message))
        }
        other => Outcome::failed(code, Some(other.to_string())),
    }
}

/// Appends every target's batch; what they leave to do is left to the caller.
fn append_all(
    targets: Vec<Target>,
    acks: i16,
    timeout_ms: i64,
    mode: AppendMode,
) -> (Vec<(usize, i32, Outcome)>, Pending) {
    let mut pending = Pending::default();
    let mut results = Vec::with_capacity(targets.len());
    for (at, target) in targets.into_iter().enumerate() {
        // A partition named twice keeps the request's order: once one of its
        // appends is deferred, so are the ones after it.
        let attempted = if behind_a_deferred_append(&pending, &target) {
            None
        } else {
            append_target(&target, acks, timeout_ms, mode, at, &mut pending)
        };
        let outcome = match attempted {
            Some(outcome) => outcome,
            None => {
                // Filled in by `append_deferred`.
                results.push((
                    target.topic_index,
                    target.index,
                    Outcome::failed(ErrorCode::UnknownServerError, None),
                ));
                pending.deferred.push((at, target));
                continue;
            }
        };
        results.push((target.topic_index, target.index, outcome));
    }
    (results, pending)
}

fn behind_a_deferred_append(pending: &Pending, target: &Target) -> bool {
    let Ok(partition) = &target.partition else {
        return false;
    };
    pending
        .deferred
        .iter()
        .any(|(_, d)| matches!(&d.partition, Ok(p) if Arc::ptr_eq(p, partition)))
}

/// Makes the appends `append_all` could not make on the request's task. Blocking.
fn append_deferred(
    results: &mut [(usize, i32, Outcome)],
    pending: &mut Pending,
    acks: i16,
    timeout_ms: i64,
) {
    for (at, target) in std::mem::take(&mut pending.deferred) {
        let outcome = append_target(&target, acks, timeout_ms, AppendMode::MayBlock, at, pending)
            .expect("an append that may block is always made");
        results[at].2 = outcome;
    }
}

/// One target's append: its answer, with what it waits for recorded in `pending`;
/// `None` when it must be made on the blocking pool.
fn append_target(
    target: &Target,
    acks: i16,
    timeout_ms: i64,
    mode: AppendMode,
    at: usize,
    pending: &mut Pending,
) -> Option<Outcome> {
    let partition = match &target.partition {
        Err(code) => return Some(Outcome::failed(*code, None)),
        Ok(_) if !matches!(acks, -1..=1) => {
            return Some(Outcome::failed(ErrorCode::InvalidRequiredAcks, None))
        }
        Ok(partition) => partition,
    };
    let appended = append(partition, target.records.as_ref(), acks, timeout_ms, mode)?;
    if let Some(synced) = appended.synced {
        pending.syncs.push((at, synced));
    }
    if let Some(rx) = appended.acks {
        pending.acks.push((at, Arc::clone(partition), rx));
    }
    Some(appended.outcome)
}

/// Requests carrying this many record bytes or fewer are appended on the request's
/// own task: a page-cache write of a few KiB takes microseconds, less than the hop to
/// a blocking thread and back, which at thousands of small produce requests a second
/// on two cores was most of the broker's CPU (bench/README.md, scenario 4). Larger
/// appends, appends that roll a segment, and every fsync go to the blocking pool as
/// DESIGN.md has it.
const INLINE_APPEND_BYTES: usize = 64 * 1024;

/// Waits for the group commits and then for the ISR; a failed one turns its
/// partition's answer into the error.
async fn await_pending(results: &mut [(usize, i32, Outcome)], pending: Pending, timeout_ms: i64) {
    for (at, synced) in pending.syncs {
        if let Err(e) = wait_synced(synced).await {
            tracing::debug!(error = %e, "produce failed: its records were not synced");
            results[at].2 = Outcome::failed(sync_error_code(&e), Some(e.to_string()));
        }
    }
    for (at, partition, rx) in pending.acks {
        if results[at].2.error != ErrorCode::None {
            continue;
        }
        if let Err(e) = partition.wait_for_acks(rx, timeout_ms).await {
            tracing::debug!(partition = %partition.topic_partition(), error = %e, "acks=all produce failed after append");
            results[at].2 = Outcome::failed(ack_error_code(&e), Some(e.to_string()));
        }
    }
}

/// Whether the first batch of `records` names a codec (a client sends one batch).
fn is_compressed(records: &[u8]) -> bool {
    use protocol::records::batch::ATTRIBUTES_AT;
    records
        .get(ATTRIBUTES_AT..ATTRIBUTES_AT + 2)
        .is_some_and(|a| i16::from_be_bytes([a[0], a[1]]) & 0x07 != 0)
}

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: ProduceRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let acks = request.acks;
    let by_id = ctx.api_version >= 13;
    let broker = &ctx.broker;
    let mut targets = Vec::new();
    for (topic_index, topic) in request.topic_data.iter().enumerate() {
        let (found, missing) = if by_id {
            (
                broker
                    .metadata
                    .image()
                    .topic_by_id(&topic.topic_id)
                    .map(|t| Arc::clone(&t.name)),
                ErrorCode::UnknownTopicId,
            )
        } else {
            (
                Some(Arc::from(topic.name.as_str())),
                ErrorCode::UnknownTopicOrPartition,
            )
        };
        for data in &topic.partition_data {
            let partition = match &found {
                None => Err(missing),
                Some(name) if metadata::topic_name::is_internal(name) => {
                    Err(ErrorCode::InvalidTopicException)
                }
                Some(name) => broker
                    .replicas
                    .get(&protocol::TopicPartition::new(Arc::clone(name), data.index))
                    .ok_or(ErrorCode::UnknownTopicOrPartition),
            };
            targets.push(Target {
                topic_index,
                index: data.index,
                partition,
                records: data.records.clone(),
            });
        }
    }
    let bytes: usize = targets
        .iter()
        .map(|t| t.records.as_ref().map_or(0, Bytes::len))
        .sum();
    let timeout_ms = i64::from(request.timeout_ms);
    // A compressed batch may expand to 64 x max.message.bytes of records to check
    // (storage::validate::max_decompressed_bytes): seconds of CPU, never on a
    // runtime worker however few bytes it arrived in.
    let compressed = targets
        .iter()
        .filter_map(|t| t.records.as_ref())
        .any(|r| is_compressed(r));
    let (results, pending) = if bytes <= INLINE_APPEND_BYTES && !compressed {
        let (results, pending) = append_all(targets, acks, timeout_ms, AppendMode::PageCacheOnly);
        if pending.deferred.is_empty() {
            (results, pending)
        } else {
            let (mut results, mut pending) = (results, pending);
            blocking(move || {
                append_deferred(&mut results, &mut pending, acks, timeout_ms);
                (results, pending)
            })
            .await
        }
    } else {
        blocking(move || append_all(targets, acks, timeout_ms, AppendMode::MayBlock)).await
    };
    // The answer keeps the topics' names, not the request: its frame (with the
    // records) goes back to the pool once the appends are made.
    let topics = request
        .topic_data
        .iter()
        .map(|t| {
            let name = TopicName(StrBytes::from_string(t.name.as_str().to_owned()));
            (name, t.topic_id)
        })
        .collect();
    let answer = Answer {
        ctx: ctx.clone(),
        acks,
        topics,
        results,
    };
    if drops_this_response(ctx, acks) {
        let stall = std::time::Duration::from_millis(request.timeout_ms.clamp(0, 30_000) as u64);
        return Reply::Later(Later::exclusive(async move {
            answer.dropped(pending, timeout_ms, stall).await
        }));
    }
    if pending.syncs.is_empty() && pending.acks.is_empty() {
        return answer.reply();
    }
    // Later Produce requests on this connection are appended while this waits, so
    // that they join the same group commit (`network::answers`).
    Reply::Later(Later::overlapping(async move {
        answer.after(pending, timeout_ms).await
    }))
}

/// The test hook `testing.drop.produce.response.every`: whether this response is
/// the one to drop.
fn drops_this_response(ctx: &RequestContext, acks: i16) -> bool {
    let every = ctx.broker.config.testing_drop_produce_response_every;
    if acks == 0 || every == 0 {
        return false;
    }
    let n = ctx
        .broker
        .produce_requests
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        + 1;
    n.is_multiple_of(every)
}

/// A produce's answer, once the appends are made.
struct Answer {
    ctx: RequestContext,
    acks: i16,
    /// The request's topics (name, id), in request order.
    topics: Vec<(TopicName, Uuid)>,
    results: Vec<(usize, i32, Outcome)>,
}

impl Answer {
    /// Waits for the group commits and the ISR, then answers.
    async fn after(mut self, pending: Pending, timeout_ms: i64) -> Reply {
        await_pending(&mut self.results, pending, timeout_ms).await;
        self.reply()
    }

    /// The test hook: the appends stand, the response is lost, as a client can see
    /// one lost from Kafka: responses on a connection are answered in order, so the
    /// connection goes silent (the client times out) until it is closed. Skipping
    /// just this response would let later ones overtake it, which no Kafka broker
    /// does; nothing after it is handled.
    async fn dropped(
        mut self,
        pending: Pending,
        timeout_ms: i64,
        stall: std::time::Duration,
    ) -> Reply {
        await_pending(&mut self.results, pending, timeout_ms).await;
        tracing::warn!("test hook: dropping this produce response after the append");
        let mut shutdown = self.ctx.broker.shutdown_signal();
        tokio::select! {
            _ = tokio::time::sleep(stall) => {}
            _ = shutdown.changed() => {}
        }
        Reply::Close("test hook: produce response dropped".into())
    }

    fn reply(self) -> Reply {
        if self.acks == 0 {
            return match self
                .results
                .iter()
                .find(|(_, _, o)| o.error != ErrorCode::None)
            {
                Some((_, _, failed)) => {
                    Reply::Close(format!("acks=0 produce failed with {}", failed.error))
                }
                None => Reply::Nothing,
            };
        }
        let mut responses: Vec<TopicProduceResponse> = self
            .topics
            .into_iter()
            .map(|(name, topic_id)| {
                TopicProduceResponse::default()
                    .with_name(name)
                    .with_topic_id(topic_id)
            })
            .collect();
        for (topic_index, index, outcome) in self.results {
            responses[topic_index]
                .partition_responses
                .push(partition_response(index, outcome));
        }
        self.ctx
            .respond(&ProduceResponse::default().with_responses(responses))
    }
}

fn partition_response(index: i32, outcome: Outcome) -> PartitionProduceResponse {
    let errors = outcome
        .record_errors
        .into_iter()
        .map(|(batch_index, message)| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(batch_index)
                .with_batch_index_error_message(Some(StrBytes::from_string(message)))
        })
        .collect();
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(outcome.error.code())
        .with_base_offset(outcome.base_offset)
        .with_log_append_time_ms(outcome.log_append_time)
        .with_log_start_offset(outcome.log_start_offset)
        .with_record_errors(errors)
        .with_error_message(outcome.message.map(StrBytes::from_string))
}
