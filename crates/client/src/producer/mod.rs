//! The producer: `send` a record, get a future of its offset.
//!
//! ```text
//! send(record) -> partition (explicit | murmur2(key) | sticky) -> accumulator
//!              -> sender task: ready batches by leader -> Produce -> completions
//! ```
//!
//! Like Java's `KafkaProducer`, `send` returns once the record is queued (waiting
//! up to `max.block.ms` for metadata or `buffer.memory` space); the returned
//! [`DeliveryFuture`] resolves when the broker has acknowledged the batch (per
//! `acks`) or it failed for good. `flush` waits for everything sent so far;
//! `close` flushes and stops the sender. Idempotence is on by default when the
//! broker supports InitProducerId and `acks=all` (as in Kafka 3+).
//!
//! ```no_run
//! use rivulet_client::{ClientConfig, Producer, ProducerRecord};
//!
//! # async fn run() -> Result<(), rivulet_client::ClientError> {
//! let producer = Producer::new(
//!     ClientConfig::new()
//!         .set("bootstrap.servers", "127.0.0.1:9092")
//!         .set("linger.ms", "10")
//!         .set("compression.type", "lz4"),
//! )
//! .await?;
//! let delivery = producer.send(ProducerRecord::new("orders").key("customer-7").value("{\"total\": 42}")).await?;
//! let metadata = delivery.await?;
//! println!("written to {}-{} at offset {}", metadata.topic, metadata.partition, metadata.offset);
//! producer.close().await?;
//! # Ok(()) }
//! ```

pub mod accumulator;
pub mod config;
pub mod sender;
pub mod transaction;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use protocol::kafka::messages::{ApiKey, InitProducerIdRequest, ProducerId, TransactionalId};
use protocol::kafka::protocol::StrBytes;
use protocol::records::NewRecord;
use protocol::{ErrorCode, TopicPartition};
use tokio::sync::{oneshot, Semaphore};

use crate::cluster::{Cluster, PartitionInfo};
use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::partitioner::{partition_for_key, StickyPartitioner};
use accumulator::Completion;
pub use config::{Acks, ProducerConfig};
use sender::{ProducerIdState, SenderShared};
pub use transaction::ConsumerGroupMetadata;

/// A record to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    pub topic: String,
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Create time in ms since the epoch; now when `None`.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    pub fn new(topic: impl Into<String>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            ..Default::default()
        }
    }

    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }

    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    pub fn header(mut self, key: impl Into<String>, value: Option<Bytes>) -> Self {
        self.headers.push((key.into(), value));
        self
    }

    pub fn timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }
}

/// Where a record was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: Arc<str>,
    pub partition: i32,
    /// -1 with `acks=0`.
    pub offset: i64,
    pub timestamp: i64,
}

/// Resolves to a record's [`RecordMetadata`] once the broker acknowledged it.
#[derive(Debug)]
pub struct DeliveryFuture {
    rx: oneshot::Receiver<Result<RecordMetadata>>,
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(ClientError::Closed)))
    }
}

/// An async Kafka producer; cheap to clone, shareable across tasks.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<SenderShared>,
    memory: Arc<Semaphore>,
    partitioner: Mutex<StickyPartitioner>,
    transaction: transaction::TransactionManager,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.accumulator.close();
    }
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("client_id", &self.inner.shared.config.common.client_id)
            .finish()
    }
}

impl Producer {
    /// Creates a producer. Connects to the cluster to learn whether it supports
    /// idempotence (and, with `transactional.id`, to find the coordinator later).
    pub async fn new(config: ClientConfig) -> Result<Producer> {
        let config = ProducerConfig::from_config(&config)?;
        let auto_create = true;
        let cluster = Cluster::new(config.common.clone(), auto_create);
        let memory = Arc::new(Semaphore::new(config.buffer_memory));
        let seed = crate::clock::now_ms() as u64 ^ (std::process::id() as u64) << 32;
        let partitioner = Mutex::new(StickyPartitioner::new(config.batch_size, seed));
        let shared = Arc::new(SenderShared::new(config.clone(), Arc::clone(&cluster)));
        let transaction = transaction::TransactionManager::new(config.transactional_id.clone());
        let producer = Producer {
            inner: Arc::new(Inner {
                shared: Arc::clone(&shared),
                memory,
                partitioner,
                transaction,
            }),
        };
        if config.transactional_id.is_none() && config.idempotence_allowed() {
            let supported = cluster.supports(ApiKey::InitProducerId).await?;
            if supported {
                producer.init_producer_id(None).await?;
            } else if config.enable_idempotence == Some(true) {
                return Err(ClientError::UnsupportedApi {
                    api: ApiKey::InitProducerId,
                    address: config.common.bootstrap_servers.join(","),
                    broker_versions: None,
                });
            } else {
                tracing::info!("the broker does not support idempotence (no InitProducerId); producing without it");
            }
        }
        tokio::spawn(sender::run(shared));
        Ok(producer)
    }

    pub(crate) fn shared(&self) -> &Arc<SenderShared> {
        &self.inner.shared
    }

    /// Obtains a producer id (and epoch) from any broker, or from the transaction
    /// coordinator for a transactional producer.
    pub(crate) async fn init_producer_id(&self, transactional_id: Option<&str>) -> Result<()> {
        let shared = &self.inner.shared;
        let current = shared
            .producer_id
            .lock()
            .expect("producer id lock poisoned")
            .as_ref()
            .map(|s| (s.producer_id, s.producer_epoch));
        let mut request = InitProducerIdRequest::default()
            .with_transactional_id(
                transactional_id.map(|id| TransactionalId(StrBytes::from_string(id.to_string()))),
            )
            .with_transaction_timeout_ms(
                shared
                    .config
                    .transaction_timeout
                    .as_millis()
                    .min(i32::MAX as u128) as i32,
            )
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        if let Some((producer_id, epoch)) = current {
            request = request
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(epoch);
        }
        let deadline = tokio::time::Instant::now() + shared.config.max_block;
        loop {
            let connection = match transactional_id {
                Some(id) => shared.cluster.coordinator(1, id).await?,
                None => shared.cluster.any_connection().await?,
            };
            let response = connection.send(&request).await?;
            match ClientError::check(response.error_code, || "InitProducerId".into(), None) {
                Ok(()) => {
                    let state = ProducerIdState {
                        producer_id: response.producer_id.0,
                        producer_epoch: response.producer_epoch,
                        next_sequence: Default::default(),
                    };
                    tracing::debug!(
                        producer_id = state.producer_id,
                        epoch = state.producer_epoch,
                        "producer id assigned"
                    );
                    *shared
                        .producer_id
                        .lock()
                        .expect("producer id lock poisoned") = Some(state);
                    return Ok(());
                }
                Err(e)
                    if e.is_retriable() || e.code() == Some(ErrorCode::ConcurrentTransactions) =>
                {
                    if let Some(id) = transactional_id {
                        if e.needs_metadata_refresh() {
                            shared.cluster.coordinator_dead(1, id);
                        }
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(e);
                    }
                    tokio::time::sleep(shared.config.common.retry_backoff).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Queues `record`; the future resolves when it is written.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(record, Completion::Channel(tx)).await?;
        Ok(DeliveryFuture { rx })
    }

    /// Queues `record`; `callback` is called once with its outcome (on the
    /// producer's tasks: keep it short), as Java's `send(record, callback)`.
    pub async fn send_with_callback(
        &self,
        record: ProducerRecord,
        callback: impl FnOnce(Result<RecordMetadata>) + Send + 'static,
    ) -> Result<()> {
        self.enqueue(record, Completion::Callback(Box::new(callback)))
            .await
    }

    async fn enqueue(&self, record: ProducerRecord, completion: Completion) -> Result<()> {
        let shared = &self.inner.shared;
        let config = &shared.config;
        if shared.accumulator.is_closed() {
            return Err(ClientError::Closed);
        }
        let topic = match shared.cluster.metadata().topic(&record.topic) {
            Some(topic) if topic.error.is_ok() && !topic.partitions.is_empty() => Arc::clone(topic),
            _ => tokio::time::timeout(config.max_block, shared.cluster.topic(&record.topic))
                .await
                .map_err(|_| ClientError::Timeout {
                    what: format!("metadata for {}", record.topic),
                    timeout_ms: config.max_block.as_millis() as u64,
                })??,
        };
        let partitions = topic.partitions.len() as i32;
        let timestamp = record.timestamp.unwrap_or_else(crate::clock::now_ms);
        let headers: Vec<(&str, Option<&[u8]>)> = record
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        let new_record = NewRecord {
            timestamp,
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            headers: &headers,
        };
        let size = protocol::records::BatchBuilder::new(protocol::records::Compression::None)
            .record_size(&new_record)
            + 61;
        if size > config.max_request_size || size > config.buffer_memory {
            return Err(ClientError::Kafka {
                code: ErrorCode::MessageTooLarge,
                context: record.topic.clone(),
                message: Some(format!(
                    "the record is {size} bytes, more than max.request.size or buffer.memory"
                )),
            });
        }
        let partition = match (record.partition, &record.key) {
            (Some(p), _) if p >= 0 && p < partitions => p,
            (Some(p), _) => {
                return Err(ClientError::Kafka {
                    code: ErrorCode::UnknownTopicOrPartition,
                    context: format!("{}-{p}", record.topic),
                    message: Some(crate::error::partition_count_message(partitions as usize)),
                })
            }
            (None, Some(key)) if !config.partitioner_ignore_keys => {
                partition_for_key(key, partitions)
            }
            _ => {
                let available: Vec<i32> = topic
                    .partitions
                    .iter()
                    .filter(|p| p.leader >= 0)
                    .map(|p| p.partition)
                    .collect();
                let mut sticky = self
                    .inner
                    .partitioner
                    .lock()
                    .expect("partitioner lock poisoned");
                sticky.partition(&record.topic, partitions, &available, size)
            }
        };
        let tp = TopicPartition::new(Arc::clone(&topic.shared_name), partition);
        if self.inner.transaction.needs_partition(&tp)? {
            self.add_partition_to_transaction(&tp).await?;
        }
        let permits = size as u32;
        let memory = match Arc::clone(&self.inner.memory).try_acquire_many_owned(permits) {
            Ok(permit) => permit,
            Err(_) => tokio::time::timeout(
                config.max_block,
                Arc::clone(&self.inner.memory).acquire_many_owned(permits),
            )
            .await
            .map_err(|_| ClientError::Timeout {
                what: "buffer.memory space".into(),
                timeout_ms: config.max_block.as_millis() as u64,
            })?
            .map_err(|_| ClientError::Closed)?,
        };
        shared
            .accumulator
            .append(&tp, &new_record, completion, memory)
    }

    /// Sends everything queued now, and waits until it is acknowledged or failed.
    pub async fn flush(&self) -> Result<()> {
        let accumulator = &self.inner.shared.accumulator;
        accumulator.begin_flush();
        accumulator.wait_idle().await;
        accumulator.end_flush();
        Ok(())
    }

    /// The partitions of `topic`.
    pub async fn partitions_for(&self, topic: &str) -> Result<Vec<PartitionInfo>> {
        Ok(self
            .inner
            .shared
            .cluster
            .topic(topic)
            .await?
            .partitions
            .clone())
    }

    /// Flushes, then stops the sender and closes the connections.
    pub async fn close(self) -> Result<()> {
        self.flush().await?;
        let shared = &self.inner.shared;
        shared.stop.store(true, Ordering::Release);
        shared.accumulator.close();
        shared.cluster.close();
        Ok(())
    }

    /// Like [`Producer::close`], but gives up after `timeout`: records not yet
    /// acknowledged then fail with a timeout (Java's `close(Duration)`).
    pub async fn close_timeout(self, timeout: std::time::Duration) -> Result<()> {
        let shared = Arc::clone(&self.inner.shared);
        let flushed = tokio::time::timeout(timeout, self.flush()).await.is_ok();
        shared.accumulator.end_flush();
        if !flushed {
            shared.accumulator.abort_all(&ClientError::Timeout {
                what: "close".into(),
                timeout_ms: timeout.as_millis() as u64,
            });
        }
        shared.stop.store(true, Ordering::Release);
        shared.accumulator.close();
        shared.cluster.close();
        Ok(())
    }

    pub(crate) fn transaction(&self) -> &transaction::TransactionManager {
        &self.inner.transaction
    }
}
