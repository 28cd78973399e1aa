//! Wiring of the transaction coordinator into the broker: `__transaction_state`
//! (created on first use), markers written through the replica manager, producer
//! id blocks from the metadata log, loading at start-up, and the timer that aborts
//! timed-out transactions and expires idle producers.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use coordinator::{MarkerWriter, ProducerIdSource, TxnConfig, TxnCoordinator, TxnLog};
use metadata::{MetadataRecord, TopicSpec};
use protocol::records::{BatchBuilder, Compression, NewRecord};
use protocol::time::Clock;
use protocol::{ErrorCode, TopicPartition};
use storage::producer_state::{marker_batch, CONTROL_ABORT, CONTROL_COMMIT};
use storage::Origin;

use crate::broker::{blocking, Broker};
use crate::config::BrokerConfig;
use crate::errors::{ack_error_code, replication_error_code};
use crate::groups::OFFSETS_TOPIC;
use crate::partition::Acks;
use crate::replica_manager::ReplicaManager;

pub const TRANSACTION_TOPIC: &str = "__transaction_state";
/// Producer ids a broker takes from the metadata log at a time.
const PRODUCER_ID_BLOCK: i64 = 1000;

fn raw_int(config: &BrokerConfig, key: &str, default: i64) -> i64 {
    config
        .raw
        .get(key)
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(default)
}

pub fn txn_config(config: &BrokerConfig) -> TxnConfig {
    TxnConfig {
        max_timeout_ms: raw_int(config, "transaction.max.timeout.ms", 900_000) as i32,
        partitions: raw_int(config, "transaction.state.log.num.partitions", 50).max(1) as i32,
        id_expiration_ms: raw_int(config, "transactional.id.expiration.ms", 604_800_000),
        offsets_partitions: raw_int(config, "offsets.topic.num.partitions", 50).max(1) as i32,
    }
}

/// How long an internal append waits for the ISR (Kafka's `request.timeout.ms`).
const INTERNAL_APPEND_TIMEOUT_MS: i64 = 30_000;

/// Appends a batch to a partition of an internal topic as an acks=all produce and
/// waits for the ISR. Blocking: call on a blocking thread.
pub(crate) fn append_internal(
    broker: &Broker,
    tp: &TopicPartition,
    batch: &[u8],
) -> Result<(), ErrorCode> {
    let partition = broker.replicas.get(tp).ok_or(ErrorCode::NotCoordinator)?;
    let outcome = partition
        .append_as_leader(batch, -1, Origin::Coordinator, INTERNAL_APPEND_TIMEOUT_MS)
        .map_err(|e| {
            tracing::warn!(partition = %tp, error = %e, "internal append failed");
            replication_error_code(&e)
        })?;
    if outcome.flush_now {
        partition
            .flush(outcome.info.last_offset.0 + 1)
            .map_err(|e| replication_error_code(&e))?;
    }
    let acked = match outcome.acks {
        Acks::Done(answer) => answer,
        Acks::Waiting(rx) => tokio::runtime::Handle::current()
            .block_on(partition.wait_for_acks(rx, INTERNAL_APPEND_TIMEOUT_MS)),
    };
    acked.map_err(|e| ack_error_code(&e))
}

struct Wiring {
    broker: Weak<Broker>,
    clock: Arc<dyn Clock>,
}

impl Wiring {
    fn broker(&self) -> Result<Arc<Broker>, ErrorCode> {
        self.broker
            .upgrade()
            .ok_or(ErrorCode::CoordinatorNotAvailable)
    }
}

impl TxnLog for Wiring {
    fn append(&self, partition: i32, key: Bytes, value: Option<Bytes>) -> Result<(), ErrorCode> {
        let broker = self.broker()?;
        let mut builder = BatchBuilder::new(Compression::None);
        builder.append(&NewRecord {
            timestamp: self.clock.now_ms(),
            key: Some(&key),
            value: value.as_deref(),
            headers: &[],
        });
        let batch = builder.build().map_err(|_| ErrorCode::UnknownServerError)?;
        append_internal(
            &broker,
            &TopicPartition::new(TRANSACTION_TOPIC, partition),
            &batch,
        )
    }
}

impl MarkerWriter for Wiring {
    fn write_markers(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        partitions: &[(String, i32)],
    ) -> Result<(), ErrorCode> {
        let broker = self.broker()?;
        let kind = if commit {
            CONTROL_COMMIT
        } else {
            CONTROL_ABORT
        };
        let batch = marker_batch(
            producer_id,
            producer_epoch,
            kind,
            coordinator_epoch,
            self.clock.now_ms(),
        );
        for (topic, partition) in partitions {
            let tp = TopicPartition::new(topic.as_str(), *partition);
            if broker.replicas.get(&tp).is_none() {
                // Deleted since it joined the transaction: nothing to mark.
                tracing::debug!(partition = %tp, "skipping the marker of a partition that no longer exists");
                continue;
            }
            append_internal(&broker, &tp, &batch)?;
            if topic == OFFSETS_TOPIC {
                broker
                    .groups
                    .lock()
                    .complete_transaction(*partition, producer_id, commit);
            }
        }
        Ok(())
    }
}

impl ProducerIdSource for ProducerIds {
    fn next_producer_id(&self) -> Result<i64, ErrorCode> {
        let mut block = self.block.lock().unwrap_or_else(|p| p.into_inner());
        if block.0 >= block.1 {
            let broker = self
                .broker
                .upgrade()
                .ok_or(ErrorCode::CoordinatorNotAvailable)?;
            let start = broker
                .allocate_producer_ids(PRODUCER_ID_BLOCK)
                .map_err(|e| {
                    tracing::error!(error = %e, "allocating producer ids failed");
                    ErrorCode::CoordinatorNotAvailable
                })?;
            *block = (start, start + PRODUCER_ID_BLOCK);
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }
}

/// A block of producer ids taken from the metadata log.
pub struct ProducerIds {
    broker: Weak<Broker>,
    block: Mutex<(i64, i64)>,
}

/// The transaction coordinator behind its lock.
pub struct Transactions {
    core: Mutex<TxnCoordinator>,
    partitions: i32,
}

impl Transactions {
    pub fn new(config: &BrokerConfig, clock: Arc<dyn Clock>, broker: Weak<Broker>) -> Transactions {
        let txn_config = txn_config(config);
        let partitions = txn_config.partitions;
        let wiring = Arc::new(Wiring {
            broker: broker.clone(),
            clock: Arc::clone(&clock),
        });
        let ids = Arc::new(ProducerIds {
            broker,
            block: Mutex::new((0, 0)),
        });
        Transactions {
            core: Mutex::new(TxnCoordinator::new(
                txn_config,
                clock,
                wiring.clone(),
                wiring,
                ids,
            )),
            partitions,
        }
    }

    /// The coordinator, locked: on a blocking thread only (it writes logs).
    pub fn lock(&self) -> MutexGuard<'_, TxnCoordinator> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn partitions(&self) -> i32 {
        self.partitions
    }
}

impl Broker {
    /// Takes `count` producer ids from the metadata log. Blocking: waits for the
    /// controller like any other decision.
    pub fn allocate_producer_ids(&self, count: i64) -> Result<i64, String> {
        let _decision = self.controller_lock().blocking_lock();
        let image = self.metadata.image();
        let start = image.next_producer_id;
        let record = MetadataRecord::ProducerIds {
            broker_id: self.node_id(),
            next_producer_id: start + count,
        };
        let next = self
            .metadata
            .commit(&[record], self.clock.now_ms())
            .map_err(|e| e.to_string())?;
        self.metadata.publish(next);
        Ok(start)
    }
}

/// Creates `__transaction_state` if it does not exist yet (replication factor
/// capped by the brokers registered, as for `__consumer_offsets`).
pub async fn ensure_transaction_topic(broker: &Arc<Broker>) -> Result<(), ErrorCode> {
    if broker.metadata.image().topic(TRANSACTION_TOPIC).is_some() {
        return Ok(());
    }
    let config = &broker.config;
    let brokers = broker.metadata.image().brokers.len().max(1) as i64;
    let wanted_rf = raw_int(config, "transaction.state.log.replication.factor", 3);
    let segment_bytes = config
        .raw
        .get("transaction.state.log.segment.bytes")
        .cloned()
        .unwrap_or_else(|| "104857600".into());
    let spec = TopicSpec {
        name: TRANSACTION_TOPIC.into(),
        num_partitions: broker.transactions.partitions(),
        replication_factor: wanted_rf.min(brokers) as i16,
        assignments: Vec::new(),
        configs: vec![
            ("cleanup.policy".into(), Some("compact".into())),
            ("segment.bytes".into(), Some(segment_bytes)),
        ],
    };
    match broker
        .create_topics(vec![spec], false)
        .await
        .first()
        .map(|o| &o.result)
    {
        Some(Ok(_)) | Some(Err((ErrorCode::TopicAlreadyExists, _))) => Ok(()),
        Some(Err((code, message))) => {
            tracing::error!(error = %code, %message, "cannot create {TRANSACTION_TOPIC}");
            Err(ErrorCode::CoordinatorNotAvailable)
        }
        None => Err(ErrorCode::CoordinatorNotAvailable),
    }
}

/// Replays `__transaction_state` into the coordinator (and finishes prepared
/// transactions).
pub fn load_transactions(
    transactions: &Transactions,
    replicas: &ReplicaManager,
) -> Result<usize, String> {
    let mut records = Vec::new();
    for partition in 0..transactions.partitions() {
        let Some(p) = replicas.get(&TopicPartition::new(TRANSACTION_TOPIC, partition)) else {
            continue;
        };
        p.replay(|_, batch| {
            for record in batch {
                if let Some(key) = record.key {
                    records.push((key, record.value));
                }
            }
        })?;
    }
    let count = records.len();
    transactions
        .lock()
        .load(records)
        .map_err(|e| e.to_string())?;
    Ok(count)
}

/// Aborts timed-out transactions and expires idle producer state until shutdown.
pub async fn run_timer(broker: Arc<Broker>) {
    let interval_ms = raw_int(
        &broker.config,
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        10_000,
    )
    .max(10) as u64;
    let producer_expiration_ms = raw_int(&broker.config, "producer.id.expiration.ms", 86_400_000);
    let mut shutdown = broker.shutdown_signal();
    let mut interval = tokio::time::interval(Duration::from_millis(interval_ms));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = interval.tick() => {
                let b = Arc::clone(&broker);
                blocking(move || {
                    b.transactions.lock().tick();
                    for partition in b.replicas.partitions() {
                        partition.expire_producers(producer_expiration_ms);
                    }
                })
                .await;
            }
        }
    }
}
