//! Wiring of the group coordinator into the broker: its `__consumer_offsets`
//! partitions (created on first use, as Kafka does), loading them at start-up,
//! the timer that drives its timeouts, the lock around it, and the writer task
//! that appends what it queues (outside the lock) and reports each result back.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use coordinator::{GroupConfig, GroupCoordinator, GroupWrite, WriteError, WriteId};
use protocol::random::Random;
use protocol::records::{BatchBuilder, Compression, NewRecord};
use protocol::time::Clock;
use protocol::TopicPartition;
use storage::Origin;
use tokio::sync::{mpsc, oneshot, watch};

use crate::errors::{ack_failed, append_failed, sync_error_code};
use crate::partition::{wait_synced, Acks};
use crate::replica_manager::ReplicaManager;
use crate::runtime::blocking;

pub use crate::internal_topics::OFFSETS_TOPIC;

/// How long a `__consumer_offsets` append waits for the ISR (Kafka's
/// `offsets.commit.timeout.ms`, 5 s).
const OFFSETS_COMMIT_TIMEOUT_MS: i64 = 5_000;

/// The most coordinator writes queued for the writer; beyond it a write fails
/// with COORDINATOR_NOT_AVAILABLE (the client retries).
const MAX_QUEUED_WRITES: usize = 16 * 1024;

/// A coordinator write on its way to the writer task.
type Job = (WriteId, GroupWrite);

/// The group coordinator behind its lock, and the queue to its writer.
pub struct Groups {
    core: Mutex<GroupCoordinator>,
    partitions: i32,
    writes: mpsc::Sender<Job>,
}

/// The locked coordinator. Dropping it hands the writes its calls queued to the
/// writer, so no call path can forget them, and none waits for them under the lock.
pub struct GroupsGuard<'a> {
    core: MutexGuard<'a, GroupCoordinator>,
    writes: &'a mpsc::Sender<Job>,
}

impl Deref for GroupsGuard<'_> {
    type Target = GroupCoordinator;
    fn deref(&self) -> &GroupCoordinator {
        &self.core
    }
}

impl DerefMut for GroupsGuard<'_> {
    fn deref_mut(&mut self) -> &mut GroupCoordinator {
        &mut self.core
    }
}

impl Drop for GroupsGuard<'_> {
    fn drop(&mut self) {
        loop {
            let writes = self.core.take_writes();
            if writes.is_empty() {
                return;
            }
            for (id, write) in writes {
                if self.writes.try_send((id, write)).is_err() {
                    tracing::warn!(
                        "too many __consumer_offsets writes queued, or the writer stopped"
                    );
                    self.core.write_completed(id, Err(WriteError::NotQueued));
                }
            }
        }
    }
}

/// The receiving end of [`Groups`]' writes, for [`run_writer`].
pub struct GroupWrites(mpsc::Receiver<Job>);

impl Groups {
    pub fn new(
        config: GroupConfig,
        clock: Arc<dyn Clock>,
        random: Arc<dyn Random>,
    ) -> (Groups, GroupWrites) {
        let partitions = config.offsets_partitions;
        let (tx, rx) = mpsc::channel(MAX_QUEUED_WRITES);
        let groups = Groups {
            core: Mutex::new(GroupCoordinator::new(config, clock, random)),
            partitions,
            writes: tx,
        };
        (groups, GroupWrites(rx))
    }

    /// The coordinator, locked. Its calls only change memory (writes are queued
    /// and carried out by the writer once the guard is dropped): never hold it
    /// across an `.await`.
    pub fn lock(&self) -> GroupsGuard<'_> {
        GroupsGuard {
            core: self.core.lock().unwrap_or_else(|p| p.into_inner()),
            writes: &self.writes,
        }
    }

    /// Calls `f` with a way to answer, and waits for the answer (at once, or when
    /// the write it queued is done). `None` if it can never come.
    pub async fn ask<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut GroupCoordinator, Box<dyn FnOnce(T) + Send>),
    ) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        f(
            &mut self.lock(),
            Box::new(move |answer| {
                // The requester may be gone (connection closed).
                let _ = tx.send(answer);
            }),
        );
        rx.await.ok()
    }

    pub fn partitions(&self) -> i32 {
        self.partitions
    }
}

/// Builds the batch for a coordinator write: one record per key, stamped `now`.
fn offsets_batch(write: &GroupWrite, now: i64) -> Result<Vec<u8>, WriteError> {
    let mut builder = BatchBuilder::new(Compression::None);
    if let Some((producer_id, producer_epoch)) = write.producer {
        builder = builder
            .producer(producer_id, producer_epoch, -1)
            .transactional(true);
    }
    for (key, value) in &write.records {
        builder.append(&NewRecord {
            timestamp: now,
            key: Some(key),
            value: value.as_deref(),
            headers: &[],
        });
    }
    builder.build().map_err(|_| WriteError::Encode)
}

/// Appends `batch` to a partition of an internal topic as an acks=all produce and
/// waits for the ISR. Small batches are page-cache writes done on this task (as
/// produce requests are); an append that would roll, and every fsync, happen on
/// the blocking pool.
pub(crate) async fn append_internal(
    replicas: &ReplicaManager,
    tp: &TopicPartition,
    batch: Vec<u8>,
    timeout_ms: i64,
) -> Result<(), WriteError> {
    let partition = replicas.get(tp).ok_or(WriteError::NotHosted)?;
    let appended =
        match partition.try_append_in_page_cache(&batch, -1, Origin::Coordinator, timeout_ms) {
            Ok(Some(outcome)) => Ok(outcome),
            Ok(None) => {
                let p = Arc::clone(&partition);
                blocking(move || p.append_as_leader(&batch, -1, Origin::Coordinator, timeout_ms))
                    .await
            }
            Err(e) => Err(e),
        };
    let outcome = appended.map_err(|e| {
        tracing::warn!(partition = %tp, error = %e, "internal append failed");
        append_failed(&e)
    })?;
    if let Some(synced) = outcome.synced {
        wait_synced(synced)
            .await
            .map_err(|e| WriteError::Log(sync_error_code(&e)))?;
    }
    let acked = match outcome.acks {
        Acks::Done(answer) => answer,
        Acks::Waiting(rx) => partition.wait_for_acks(rx, timeout_ms).await,
    };
    acked.map_err(|e| ack_failed(&e))
}

/// Appends the coordinator's writes to `__consumer_offsets`, one at a time and in
/// the order queued, and reports each back, so the coordinator's memory changes in
/// log order. Until shutdown; writes still queued then fail with
/// COORDINATOR_NOT_AVAILABLE.
pub async fn run_writer(
    groups: Arc<Groups>,
    replicas: Arc<ReplicaManager>,
    clock: Arc<dyn Clock>,
    GroupWrites(mut queue): GroupWrites,
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
        let tp = TopicPartition::new(OFFSETS_TOPIC, write.partition);
        let result = match offsets_batch(&write, clock.now_ms()) {
            Ok(batch) => append_internal(&replicas, &tp, batch, OFFSETS_COMMIT_TIMEOUT_MS).await,
            Err(e) => Err(e),
        };
        groups.lock().write_completed(id, result);
    }
    queue.close();
    while let Ok((id, _)) = queue.try_recv() {
        groups
            .lock()
            .write_completed(id, Err(WriteError::NotQueued));
    }
}

/// Drives the coordinator's timeouts until shutdown.
pub async fn run_timer(groups: Arc<Groups>, mut shutdown: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(Duration::from_millis(50));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = interval.tick() => groups.lock().tick(),
        }
    }
}
