//! The producer's sender: one task that drains ready batches from the
//! accumulator, groups them by partition leader into Produce requests (at most
//! `max.request.size` each, at most `max.in.flight.requests.per.connection`
//! requests per broker), and completes each record with its offset or error.
//!
//! Retriable errors (NOT_LEADER_OR_FOLLOWER, a lost connection, a timeout...) put
//! the batch back in front of its queue after `retry.backoff.ms`, refreshing
//! metadata first where the error says leadership moved; a batch fails once it has
//! been retried `retries` times or is older than `delivery.timeout.ms`.
//!
//! Idempotence: sequences are assigned here, in drain order, per partition, when a
//! batch is first drained; a retried batch keeps its sequence and its bytes, so the
//! broker can drop a duplicate (DUPLICATE_SEQUENCE_NUMBER counts as delivered).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use protocol::kafka::messages::produce_request::{PartitionProduceData, TopicProduceData};
use protocol::kafka::messages::{ProduceRequest, TopicName, TransactionalId};
use protocol::kafka::protocol::StrBytes;
use protocol::{ErrorCode, TopicPartition};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::error::ClientError;
use crate::producer::accumulator::{Accumulator, ProducerBatch};
use crate::producer::config::{Acks, ProducerConfig};

/// The producer id and epoch, and the next sequence per partition.
#[derive(Debug, Default)]
pub(crate) struct ProducerIdState {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub next_sequence: HashMap<TopicPartition, i32>,
}

/// State the sender task shares with the producer handle.
pub(crate) struct SenderShared {
    pub config: ProducerConfig,
    pub cluster: Arc<Cluster>,
    pub accumulator: Accumulator,
    /// Set when idempotent (or transactional).
    pub producer_id: Mutex<Option<ProducerIdState>>,
    /// Whether batches are transactional.
    pub transactional: AtomicBool,
    node_slots: Mutex<HashMap<i32, Arc<Semaphore>>>,
    refreshing: AtomicBool,
    pub stop: AtomicBool,
}

impl SenderShared {
    pub fn new(config: ProducerConfig, cluster: Arc<Cluster>) -> SenderShared {
        SenderShared {
            accumulator: Accumulator::new(config.compression, config.batch_size),
            config,
            cluster,
            producer_id: Mutex::new(None),
            transactional: AtomicBool::new(false),
            node_slots: Mutex::new(HashMap::new()),
            refreshing: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        }
    }

    fn slot(&self, node: i32) -> Option<OwnedSemaphorePermit> {
        let mut slots = self.node_slots.lock().expect("slots lock poisoned");
        let semaphore = slots
            .entry(node)
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.max_in_flight)));
        Arc::clone(semaphore).try_acquire_owned().ok()
    }

    /// Refreshes metadata in the background (one refresh at a time).
    pub fn request_metadata_refresh(self: &Arc<Self>) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = shared.cluster.refresh().await {
                tracing::debug!(error = %e, "metadata refresh failed");
                tokio::time::sleep(shared.config.common.retry_backoff).await;
            }
            shared.refreshing.store(false, Ordering::Release);
            shared.accumulator.wakeup.notify_one();
        });
    }
}

/// The sender loop; returns when the producer is closed and everything is done.
pub(crate) async fn run(shared: Arc<SenderShared>) {
    let config = &shared.config;
    loop {
        let now = Instant::now();
        let metadata = shared.cluster.metadata();
        let mut permits: HashMap<i32, OwnedSemaphorePermit> = HashMap::new();
        let drained = shared.accumulator.drain(
            now,
            config.linger,
            config.delivery_timeout,
            config.max_request_size,
            |tp| metadata.leader_for(tp),
            |node| match shared.slot(node) {
                Some(permit) => {
                    permits.insert(node, permit);
                    true
                }
                None => false,
            },
        );
        for batch in drained.expired {
            fail_batch(&shared, batch, delivery_timeout_error(config));
        }
        if drained.unknown_leaders {
            shared.request_metadata_refresh();
        }
        for (node, mut batches) in drained.by_node {
            assign_sequences(&shared, &mut batches);
            let permit = permits.remove(&node);
            // Requests are queued on the connection here, in drain order, so a
            // partition's sequences reach the broker in order; answers are awaited
            // on their own tasks.
            send_request(&shared, node, batches, permit).await;
        }
        if shared.stop.load(Ordering::Acquire) && !shared.accumulator.has_queued() {
            return;
        }
        let mut next = drained.next_check;
        if drained.unknown_leaders {
            let retry = now + config.common.retry_backoff;
            next = Some(next.map_or(retry, |n| n.min(retry)));
        }
        let wakeup = shared.accumulator.wakeup.notified();
        match next {
            Some(at) => {
                tokio::select! {
                    _ = wakeup => {}
                    _ = tokio::time::sleep_until(at) => {}
                }
            }
            None => wakeup.await,
        }
    }
}

fn delivery_timeout_error(config: &ProducerConfig) -> ClientError {
    ClientError::Timeout {
        what: "delivery (delivery.timeout.ms)".into(),
        timeout_ms: config.delivery_timeout.as_millis() as u64,
    }
}

fn assign_sequences(shared: &SenderShared, batches: &mut [ProducerBatch]) {
    let mut state = shared
        .producer_id
        .lock()
        .expect("producer id lock poisoned");
    let Some(state) = state.as_mut() else { return };
    for batch in batches.iter_mut().filter(|b| b.sequence.is_none()) {
        let next = state.next_sequence.entry(batch.tp.clone()).or_insert(0);
        batch.sequence = Some(*next);
        *next = next.wrapping_add(batch.record_count()) & i32::MAX;
    }
}

fn fail_batch(shared: &SenderShared, batch: ProducerBatch, error: ClientError) {
    batch.complete(Err(error));
    shared.accumulator.batch_done();
}

async fn send_request(
    shared: &Arc<SenderShared>,
    node: i32,
    mut batches: Vec<ProducerBatch>,
    permit: Option<OwnedSemaphorePermit>,
) {
    let config = &shared.config;
    let producer = shared
        .producer_id
        .lock()
        .expect("producer id lock poisoned")
        .as_ref()
        .map(|s| (s.producer_id, s.producer_epoch));
    let transactional = shared.transactional.load(Ordering::Acquire);
    let mut topics: BTreeMap<String, Vec<PartitionProduceData>> = BTreeMap::new();
    let mut encoded = Vec::with_capacity(batches.len());
    for mut batch in batches.drain(..) {
        match batch.encode(producer, transactional) {
            Ok(bytes) => {
                let data = PartitionProduceData::default()
                    .with_index(batch.tp.partition)
                    .with_records(Some(bytes));
                topics
                    .entry(batch.tp.topic.to_string())
                    .or_default()
                    .push(data);
                encoded.push(batch);
            }
            Err(e) => fail_batch(shared, batch, e),
        }
    }
    if encoded.is_empty() {
        return;
    }
    let topic_data = topics
        .into_iter()
        .map(|(name, partitions)| {
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_partition_data(partitions)
        })
        .collect();
    let request = ProduceRequest::default()
        .with_acks(config.acks.wire())
        .with_timeout_ms(
            config
                .common
                .request_timeout
                .as_millis()
                .min(i32::MAX as u128) as i32,
        )
        .with_transactional_id(
            shared
                .config
                .transactional_id
                .as_ref()
                .filter(|_| transactional)
                .map(|id| TransactionalId(StrBytes::from_string(id.clone()))),
        )
        .with_topic_data(topic_data);
    let connection = match shared.cluster.connection(node).await {
        Ok(connection) => connection,
        Err(e) => {
            drop(permit);
            return retry_or_fail_all(shared, encoded, e);
        }
    };
    if config.acks == Acks::None {
        let result = connection.send_oneway(&request).await;
        drop(permit);
        match result {
            Ok(()) => {
                for batch in encoded {
                    batch.complete(Ok((-1, -1)));
                    shared.accumulator.batch_done();
                }
            }
            Err(e) => retry_or_fail_all(shared, encoded, e),
        }
        return;
    }
    let answer = match connection.enqueue_request(&request).await {
        Ok(answer) => answer,
        Err(e) => {
            drop(permit);
            return retry_or_fail_all(shared, encoded, e);
        }
    };
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let response = answer.await;
        drop(permit);
        handle_response(&shared, encoded, response);
    });
}

fn handle_response(
    shared: &Arc<SenderShared>,
    encoded: Vec<ProducerBatch>,
    response: crate::error::Result<protocol::kafka::messages::ProduceResponse>,
) {
    let response = match response {
        Ok(response) => response,
        Err(e) => return retry_or_fail_all(shared, encoded, e),
    };
    let mut results: HashMap<(String, i32), PartitionResult> = HashMap::new();
    for topic in response.responses {
        for p in topic.partition_responses {
            let message = p.error_message.map(|m| m.to_string());
            results.insert(
                (topic.name.0.to_string(), p.index),
                (p.error_code, p.base_offset, p.log_append_time_ms, message),
            );
        }
    }
    let mut refresh = false;
    for batch in encoded {
        let key = (batch.tp.topic.to_string(), batch.tp.partition);
        let Some((code, base_offset, log_append_time, message)) = results.remove(&key) else {
            fail_batch(
                shared,
                batch,
                ClientError::Protocol(format!("Produce answer has no result for {}", key.0)),
            );
            continue;
        };
        let code = ErrorCode::from_i16(code).unwrap_or(ErrorCode::UnknownServerError);
        if code.is_ok() {
            batch.complete(Ok((base_offset, log_append_time)));
            shared.accumulator.batch_done();
            continue;
        }
        if code == ErrorCode::DuplicateSequenceNumber {
            batch.complete(Ok((-1, -1)));
            shared.accumulator.batch_done();
            continue;
        }
        let error = ClientError::Kafka {
            code,
            context: batch.tp.to_string(),
            message,
        };
        refresh |= error.needs_metadata_refresh();
        let retriable = code.is_retriable()
            || (code == ErrorCode::OutOfOrderSequenceNumber && batch.attempts < 3);
        retry_or_fail(shared, batch, error, retriable);
    }
    if refresh {
        shared.request_metadata_refresh();
    }
}

/// A partition's Produce answer: error code, base offset, log append time, message.
type PartitionResult = (i16, i64, i64, Option<String>);

fn retry_or_fail_all(shared: &Arc<SenderShared>, batches: Vec<ProducerBatch>, error: ClientError) {
    if error.needs_metadata_refresh() {
        shared.request_metadata_refresh();
    }
    let retriable = error.is_retriable();
    for batch in batches {
        retry_or_fail(shared, batch, error.clone(), retriable);
    }
}

fn retry_or_fail(shared: &SenderShared, batch: ProducerBatch, error: ClientError, retriable: bool) {
    let config = &shared.config;
    let expired = batch.created.elapsed() + config.common.retry_backoff >= config.delivery_timeout;
    if retriable && batch.attempts < config.retries && !expired {
        tracing::debug!(tp = %batch.tp, attempt = batch.attempts + 1, %error, "retrying batch");
        shared
            .accumulator
            .reenqueue(batch, config.common.retry_backoff);
    } else {
        fail_batch(
            shared,
            batch,
            if expired && retriable {
                delivery_timeout_error(config)
            } else {
                error
            },
        );
    }
}
