//! Wiring of the transaction coordinator into the broker: `__transaction_state`
//! (created on first use), the writer task that carries out what the coordinator
//! queues (its records, and markers through the replica manager) outside its
//! lock, producer id blocks from the metadata log, loading at start-up, and the
//! timer that aborts timed-out transactions and expires idle producers.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use coordinator::{
    ProducerIdSource, TxnCallback, TxnConfig, TxnCoordinator, TxnError, TxnWrite, WriteError,
    WriteId,
};
use protocol::records::{BatchBuilder, Compression, NewRecord};
use protocol::time::Clock;
use protocol::TopicPartition;
use storage::producer_state::{marker_batch, CONTROL_ABORT, CONTROL_COMMIT};
use tokio::sync::{mpsc, oneshot, watch, Mutex as AsyncMutex};

use crate::controller_client::ControllerClient;
use crate::groups::{append_internal, Groups, OFFSETS_TOPIC};
use crate::replica_manager::ReplicaManager;
use crate::runtime::blocking;
use crate::settings::Settings;

pub use crate::internal_topics::TRANSACTION_TOPIC;
/// Producer ids a broker takes from the metadata log at a time.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// How long an internal append waits for the ISR (Kafka's `request.timeout.ms`).
const INTERNAL_APPEND_TIMEOUT_MS: i64 = 30_000;

/// When fewer producer ids than this are at hand, InitProducerId takes a new
/// block from the metadata log first.
const PRODUCER_IDS_LOW: i64 = 100;

/// The most coordinator writes queued for the writer (as for groups).
const MAX_QUEUED_WRITES: usize = 16 * 1024;

type Job = (WriteId, TxnWrite);

/// The producer ids this broker holds, taken from the metadata log a block at a
/// time. The coordinator takes them without waiting; InitProducerId tops them up
/// before it asks.
pub struct ProducerIds {
    /// `[start, end)` ranges, oldest first.
    blocks: Mutex<VecDeque<(i64, i64)>>,
    controller: Arc<ControllerClient>,
    /// One allocation at a time.
    refill: AsyncMutex<()>,
}

impl ProducerIds {
    pub fn new(controller: Arc<ControllerClient>) -> ProducerIds {
        ProducerIds {
            blocks: Mutex::new(VecDeque::new()),
            controller,
            refill: AsyncMutex::new(()),
        }
    }

    fn available(&self) -> i64 {
        let blocks = self.blocks.lock().unwrap_or_else(|p| p.into_inner());
        blocks.iter().map(|(start, end)| end - start).sum()
    }

    /// Takes a new block when few ids are left.
    pub async fn top_up(&self) -> Result<(), TxnError> {
        if self.available() >= PRODUCER_IDS_LOW {
            return Ok(());
        }
        let _one = self.refill.lock().await;
        if self.available() >= PRODUCER_IDS_LOW {
            return Ok(());
        }
        let start = self
            .controller
            .allocate_producer_ids(PRODUCER_ID_BLOCK)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "allocating producer ids failed");
                TxnError::CoordinatorNotAvailable
            })?;
        self.blocks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back((start, start + PRODUCER_ID_BLOCK));
        Ok(())
    }
}

impl ProducerIdSource for ProducerIds {
    fn next_producer_id(&self) -> Option<i64> {
        let mut blocks = self.blocks.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((start, end)) = blocks.front_mut() {
            if *start < *end {
                let id = *start;
                *start += 1;
                return Some(id);
            }
            blocks.pop_front();
        }
        // As Kafka's RPCProducerIdManager: none at hand, the client retries.
        None
    }
}

/// The transaction coordinator behind its lock, and the queue to its writer.
pub struct Transactions {
    core: Mutex<TxnCoordinator>,
    partitions: i32,
    producer_ids: Arc<ProducerIds>,
    writes: mpsc::Sender<Job>,
}

/// The locked coordinator; dropping it hands the writes its calls queued to the
/// writer (see `crate::groups::GroupsGuard`).
pub struct TransactionsGuard<'a> {
    core: MutexGuard<'a, TxnCoordinator>,
    writes: &'a mpsc::Sender<Job>,
}

impl Deref for TransactionsGuard<'_> {
    type Target = TxnCoordinator;
    fn deref(&self) -> &TxnCoordinator {
        &self.core
    }
}

impl DerefMut for TransactionsGuard<'_> {
    fn deref_mut(&mut self) -> &mut TxnCoordinator {
        &mut self.core
    }
}

impl Drop for TransactionsGuard<'_> {
    fn drop(&mut self) {
        loop {
            let writes = self.core.take_writes();
            if writes.is_empty() {
                return;
            }
            for (id, write) in writes {
                if self.writes.try_send((id, write)).is_err() {
                    tracing::warn!("too many transaction writes queued, or the writer stopped");
                    self.core.write_completed(id, Err(WriteError::NotQueued));
                }
            }
        }
    }
}

/// The receiving end of [`Transactions`]' writes, for [`run_writer`].
pub struct TxnWrites(mpsc::Receiver<Job>);

impl Transactions {
    pub fn new(
        config: TxnConfig,
        clock: Arc<dyn Clock>,
        producer_ids: Arc<ProducerIds>,
    ) -> (Transactions, TxnWrites) {
        let partitions = config.partitions;
        let (tx, rx) = mpsc::channel(MAX_QUEUED_WRITES);
        let source: Arc<dyn ProducerIdSource> = producer_ids.clone();
        let transactions = Transactions {
            core: Mutex::new(TxnCoordinator::new(config, clock, source)),
            partitions,
            producer_ids,
            writes: tx,
        };
        (transactions, TxnWrites(rx))
    }

    /// The coordinator, locked. Never hold it across an `.await`.
    pub fn lock(&self) -> TransactionsGuard<'_> {
        TransactionsGuard {
            core: self.core.lock().unwrap_or_else(|p| p.into_inner()),
            writes: &self.writes,
        }
    }

    /// Calls `f` with a way to answer and waits for the answer; a request that
    /// may need a producer id first makes sure some are at hand.
    pub async fn ask<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut TxnCoordinator, TxnCallback<T>),
    ) -> Result<T, TxnError> {
        let (tx, rx) = oneshot::channel();
        f(
            &mut self.lock(),
            Box::new(move |answer| {
                let _ = tx.send(answer);
            }),
        );
        rx.await.unwrap_or(Err(TxnError::CoordinatorNotAvailable))
    }

    /// Tops up the producer ids before an InitProducerId.
    pub async fn top_up_producer_ids(&self) -> Result<(), TxnError> {
        self.producer_ids.top_up().await
    }

    pub fn partitions(&self) -> i32 {
        self.partitions
    }
}

/// Writes a transaction's markers to each of its partitions (acks=all), and has
/// the group coordinator apply or drop the offsets a marker on
/// `__consumer_offsets` completes.
async fn write_markers(
    replicas: &ReplicaManager,
    groups: &Groups,
    now: i64,
    marker: (i64, i16, bool, i32),
    partitions: Vec<(String, i32)>,
) -> Result<(), WriteError> {
    let (producer_id, producer_epoch, commit, coordinator_epoch) = marker;
    let kind = if commit {
        CONTROL_COMMIT
    } else {
        CONTROL_ABORT
    };
    let batch = marker_batch(producer_id, producer_epoch, kind, coordinator_epoch, now);
    for (topic, partition) in partitions {
        let tp = TopicPartition::new(topic.as_str(), partition);
        if replicas.get(&tp).is_none() {
            // Deleted since it joined the transaction: nothing to mark.
            tracing::debug!(partition = %tp, "skipping the marker of a partition that no longer exists");
            continue;
        }
        append_internal(replicas, &tp, batch.clone(), INTERNAL_APPEND_TIMEOUT_MS).await?;
        if topic == OFFSETS_TOPIC {
            groups
                .lock()
                .complete_transaction(partition, producer_id, commit);
        }
    }
    Ok(())
}

/// Carries out the coordinator's writes in the order queued (records to
/// `__transaction_state`, markers to the transactions' partitions) and reports
/// each back. Until shutdown; writes still queued then fail.
pub async fn run_writer(
    transactions: Arc<Transactions>,
    replicas: Arc<ReplicaManager>,
    groups: Arc<Groups>,
    clock: Arc<dyn Clock>,
    TxnWrites(mut queue): TxnWrites,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let job = tokio::select! {
            _ = shutdown.changed() => break,
            job = queue.recv() => job,
        };
        let Some((id, write)) = job else {
            break;
        };
        let now = clock.now_ms();
        let result = match write {
            TxnWrite::Log {
                partition,
                key,
                value,
            } => {
                let mut builder = BatchBuilder::new(Compression::None);
                builder.append(&NewRecord {
                    timestamp: now,
                    key: Some(&key),
                    value: value.as_deref(),
                    headers: &[],
                });
                match builder.build() {
                    Ok(batch) => {
                        let tp = TopicPartition::new(TRANSACTION_TOPIC, partition);
                        append_internal(&replicas, &tp, batch, INTERNAL_APPEND_TIMEOUT_MS).await
                    }
                    Err(_) => Err(WriteError::Encode),
                }
            }
            TxnWrite::Markers {
                producer_id,
                producer_epoch,
                commit,
                coordinator_epoch,
                partitions,
            } => {
                let marker = (producer_id, producer_epoch, commit, coordinator_epoch);
                write_markers(&replicas, &groups, now, marker, partitions).await
            }
        };
        transactions.lock().write_completed(id, result);
    }
    queue.close();
    while let Ok((id, _)) = queue.try_recv() {
        transactions
            .lock()
            .write_completed(id, Err(WriteError::NotQueued));
    }
}

/// Aborts timed-out transactions and expires idle producer state until shutdown.
pub async fn run_timer(
    transactions: Arc<Transactions>,
    replicas: Arc<ReplicaManager>,
    settings: Arc<Settings>,
    mut shutdown: watch::Receiver<bool>,
) {
    let producer_expiration_ms = settings.producer_id_expiration_ms;
    let mut interval = tokio::time::interval(Duration::from_millis(
        settings.transaction_cleanup_interval_ms,
    ));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = interval.tick() => {
                transactions.lock().tick();
                let replicas = Arc::clone(&replicas);
                blocking(move || {
                    for partition in replicas.partitions() {
                        partition.expire_producers(producer_expiration_ms);
                    }
                })
                .await;
            }
        }
    }
}
