//! The transaction coordinator (KIP-98).
//!
//! Protocol summary:
//! 1. InitProducerId with a `transactional.id`: the coordinator gives the id a
//!    producer id and bumps its epoch, which fences any older instance; an open
//!    transaction of the old instance is aborted first.
//! 2. AddPartitionsToTxn / AddOffsetsToTxn: the partitions the transaction writes
//!    (and the group's `__consumer_offsets` partition) are recorded; the state
//!    becomes Ongoing.
//! 3. EndTxn: PrepareCommit or PrepareAbort is persisted, a COMMIT or ABORT marker
//!    is written to every partition of the transaction, then CompleteCommit or
//!    CompleteAbort is persisted. A crash between the two is finished at start-up.
//! 4. A transaction Ongoing longer than its timeout is aborted by the coordinator
//!    with a bumped epoch, so its producer is fenced.
//!
//! Every state change is written to `__transaction_state` before it is answered.
//! Sans-IO: persistence, markers and producer ids go through traits; time through
//! the clock; [`TxnCoordinator::tick`] drives timeouts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use protocol::time::Clock;
use protocol::ErrorCode;

use super::records::{encode_key, StoredTxn, TxnState};
use crate::group::records::{partition_for, DecodeError};

#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`
    pub max_timeout_ms: i32,
    /// `transaction.state.log.num.partitions`
    pub partitions: i32,
    /// `transactional.id.expiration.ms`
    pub id_expiration_ms: i64,
    /// `__consumer_offsets` partitions, to place AddOffsetsToTxn's group.
    pub offsets_partitions: i32,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: 900_000,
            partitions: 50,
            id_expiration_ms: 604_800_000,
            offsets_partitions: 50,
        }
    }
}

/// Persistence of transaction metadata: `__transaction_state`.
pub trait TxnLog: Send + Sync {
    fn append(
        &self,
        partition: i32,
        key: bytes::Bytes,
        value: Option<bytes::Bytes>,
    ) -> Result<(), ErrorCode>;
}

/// Writes COMMIT/ABORT markers to the partitions of a transaction (and makes the
/// group coordinator apply or drop transactional offsets).
pub trait MarkerWriter: Send + Sync {
    fn write_markers(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        partitions: &[(String, i32)],
    ) -> Result<(), ErrorCode>;
}

/// Hands out producer ids.
pub trait ProducerIdSource: Send + Sync {
    fn next_producer_id(&self) -> Result<i64, ErrorCode>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    pub start_ms: i64,
    pub last_update_ms: i64,
    /// The epoch the coordinator bumped away from when it aborted this id's
    /// transaction on its own (a timeout), or -1: that producer may still ask
    /// for a new epoch with KIP-360's InitProducerId; any older instance is a
    /// zombie. Kept in memory only (after a restart such a producer is fenced).
    pub last_producer_epoch: i16,
}

impl TxnMetadata {
    fn stored(&self) -> StoredTxn {
        StoredTxn {
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            timeout_ms: self.timeout_ms,
            state: self.state,
            partitions: self.partitions.iter().cloned().collect(),
            last_update_ms: self.last_update_ms,
            start_ms: self.start_ms,
        }
    }
}

/// The coordinator epoch markers carry: bumped at every load, so markers from a
/// previous incarnation are fenced.
const COORDINATOR_EPOCH_START: i32 = 0;

pub struct TxnCoordinator {
    config: TxnConfig,
    clock: Arc<dyn Clock>,
    log: Arc<dyn TxnLog>,
    markers: Arc<dyn MarkerWriter>,
    producer_ids: Arc<dyn ProducerIdSource>,
    txns: BTreeMap<String, TxnMetadata>,
    coordinator_epoch: i32,
}

impl std::fmt::Debug for TxnCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnCoordinator")
            .field("transactions", &self.txns.len())
            .finish_non_exhaustive()
    }
}

impl TxnCoordinator {
    pub fn new(
        config: TxnConfig,
        clock: Arc<dyn Clock>,
        log: Arc<dyn TxnLog>,
        markers: Arc<dyn MarkerWriter>,
        producer_ids: Arc<dyn ProducerIdSource>,
    ) -> TxnCoordinator {
        TxnCoordinator {
            config,
            clock,
            log,
            markers,
            producer_ids,
            txns: BTreeMap::new(),
            coordinator_epoch: COORDINATOR_EPOCH_START,
        }
    }

    pub fn partition_for(&self, transactional_id: &str) -> i32 {
        partition_for(transactional_id, self.config.partitions)
    }

    pub fn transaction(&self, transactional_id: &str) -> Option<&TxnMetadata> {
        self.txns.get(transactional_id)
    }

    pub fn transactions(&self) -> impl Iterator<Item = &TxnMetadata> {
        self.txns.values()
    }

    fn persist(&self, txn: &TxnMetadata) -> Result<(), ErrorCode> {
        self.log.append(
            self.partition_for(&txn.transactional_id),
            encode_key(&txn.transactional_id),
            Some(txn.stored().encode()),
        )
    }

    /// Moves `txn` to `state` in the log, then in memory.
    fn transition(
        &mut self,
        mut next: TxnMetadata,
        state: TxnState,
    ) -> Result<TxnMetadata, ErrorCode> {
        let now = self.clock.now_ms();
        next.state = state;
        next.last_update_ms = now;
        self.persist(&next)?;
        self.txns
            .insert(next.transactional_id.clone(), next.clone());
        Ok(next)
    }

    /// InitProducerId. Without a transactional id: a fresh producer id, epoch 0.
    /// With one: the id's producer id with a bumped epoch (fencing older
    /// instances), after aborting any open transaction. `expected` is KIP-360's
    /// current producer id and epoch, when the client sends them.
    pub fn init_producer_id(
        &mut self,
        transactional_id: Option<&str>,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ErrorCode> {
        let Some(transactional_id) = transactional_id.filter(|t| !t.is_empty()) else {
            return Ok((self.producer_ids.next_producer_id()?, 0));
        };
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(ErrorCode::InvalidTransactionTimeout);
        }
        let now = self.clock.now_ms();
        let Some(current) = self.txns.get(transactional_id).cloned() else {
            let txn = TxnMetadata {
                transactional_id: transactional_id.to_string(),
                producer_id: self.producer_ids.next_producer_id()?,
                producer_epoch: 0,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                start_ms: -1,
                last_update_ms: now,
                last_producer_epoch: -1,
            };
            let txn = self.transition(txn, TxnState::Empty)?;
            return Ok((txn.producer_id, txn.producer_epoch));
        };
        let expected = expected.filter(|(p, _)| *p >= 0);
        if let Some((producer_id, epoch)) = expected {
            // KIP-360: only the current producer (or the one a timeout fenced) may
            // bump its own epoch; an older instance is a zombie.
            let current_or_timed_out = epoch == current.producer_epoch
                || (current.last_producer_epoch >= 0 && epoch == current.last_producer_epoch);
            if producer_id != current.producer_id || !current_or_timed_out {
                return Err(ErrorCode::ProducerFenced);
            }
        }
        match current.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                return Err(ErrorCode::ConcurrentTransactions)
            }
            TxnState::Ongoing => {
                // The old instance's transaction: fence it and abort.
                self.abort_with_bumped_epoch(&current)?;
            }
            _ => {}
        }
        let current = self.txns[transactional_id].clone();
        if matches!(
            current.state,
            TxnState::PrepareCommit | TxnState::PrepareAbort
        ) {
            // Its markers are not all written yet (the timer retries them).
            return Err(ErrorCode::ConcurrentTransactions);
        }
        let mut next = current.clone();
        next.timeout_ms = timeout_ms;
        next.partitions.clear();
        next.start_ms = -1;
        next.last_producer_epoch = expected.map_or(-1, |(_, epoch)| epoch);
        if current.producer_epoch >= i16::MAX - 1 {
            // Epochs are exhausted: a new producer id starts at epoch 0.
            next.producer_id = self.producer_ids.next_producer_id()?;
            next.producer_epoch = 0;
        } else {
            next.producer_epoch = current.producer_epoch + 1;
        }
        let next = self.transition(next, TxnState::Empty)?;
        Ok((next.producer_id, next.producer_epoch))
    }

    /// Aborts an open transaction under a bumped epoch (fencing its producer).
    fn abort_with_bumped_epoch(&mut self, txn: &TxnMetadata) -> Result<(), ErrorCode> {
        let mut fenced = txn.clone();
        fenced.producer_epoch = if txn.producer_epoch < i16::MAX - 1 {
            txn.producer_epoch + 1
        } else {
            txn.producer_epoch
        };
        fenced.last_producer_epoch = txn.producer_epoch;
        self.complete(fenced, false)
    }

    fn check_producer(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<TxnMetadata, ErrorCode> {
        let txn = self
            .txns
            .get(transactional_id)
            .ok_or(ErrorCode::InvalidProducerIdMapping)?;
        if txn.producer_id != producer_id {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        if txn.producer_epoch != producer_epoch {
            return Err(ErrorCode::ProducerFenced);
        }
        Ok(txn.clone())
    }

    /// AddPartitionsToTxn: the transaction will write to `partitions`.
    pub fn add_partitions(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<(), ErrorCode> {
        let txn = self.check_producer(transactional_id, producer_id, producer_epoch)?;
        match txn.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                return Err(ErrorCode::ConcurrentTransactions)
            }
            TxnState::Dead => return Err(ErrorCode::InvalidProducerIdMapping),
            _ => {}
        }
        let mut next = txn.clone();
        let new = partitions.iter().any(|p| !txn.partitions.contains(p));
        if !new && txn.state == TxnState::Ongoing {
            return Ok(());
        }
        if txn.state != TxnState::Ongoing {
            next.partitions.clear();
            next.start_ms = self.clock.now_ms();
        }
        next.partitions.extend(partitions.iter().cloned());
        self.transition(next, TxnState::Ongoing)?;
        Ok(())
    }

    /// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins.
    pub fn add_offsets(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group_id: &str,
    ) -> Result<(), ErrorCode> {
        let partition = partition_for(group_id, self.config.offsets_partitions);
        self.add_partitions(
            transactional_id,
            producer_id,
            producer_epoch,
            &[("__consumer_offsets".to_string(), partition)],
        )
    }

    /// EndTxn: commit or abort.
    pub fn end_transaction(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<(), ErrorCode> {
        let txn = self.check_producer(transactional_id, producer_id, producer_epoch)?;
        match (txn.state, commit) {
            (TxnState::Ongoing, _) => self.complete(txn, commit),
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(()),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(ErrorCode::ConcurrentTransactions)
            }
            (TxnState::Empty, false) => Ok(()),
            _ => Err(ErrorCode::InvalidTxnState),
        }
    }

    /// Prepare, write the markers, complete. Once the Prepare state is persisted
    /// the outcome is decided and the answer is success, as in Kafka: markers that
    /// cannot be written now are retried by [`TxnCoordinator::tick`] (the id
    /// answers CONCURRENT_TRANSACTIONS meanwhile) and at the next start-up.
    fn complete(&mut self, txn: TxnMetadata, commit: bool) -> Result<(), ErrorCode> {
        let prepared = self.transition(
            txn,
            if commit {
                TxnState::PrepareCommit
            } else {
                TxnState::PrepareAbort
            },
        )?;
        let id = prepared.transactional_id.clone();
        if let Err(e) = self.finish(prepared) {
            tracing::warn!(transactional_id = %id, error = %e, "completing a prepared transaction failed; will retry");
        }
        Ok(())
    }

    /// From a Prepare state: markers, then Complete.
    fn finish(&mut self, prepared: TxnMetadata) -> Result<(), ErrorCode> {
        let commit = prepared.state == TxnState::PrepareCommit;
        let partitions: Vec<(String, i32)> = prepared.partitions.iter().cloned().collect();
        self.markers.write_markers(
            prepared.producer_id,
            prepared.producer_epoch,
            commit,
            self.coordinator_epoch,
            &partitions,
        )?;
        let mut done = prepared;
        done.partitions.clear();
        self.transition(
            done,
            if commit {
                TxnState::CompleteCommit
            } else {
                TxnState::CompleteAbort
            },
        )?;
        Ok(())
    }

    /// Finishes prepared transactions whose markers failed; aborts transactions
    /// open longer than their timeout; expires idle ids.
    pub fn tick(&mut self) {
        let now = self.clock.now_ms();
        let prepared: Vec<TxnMetadata> = self
            .txns
            .values()
            .filter(|t| matches!(t.state, TxnState::PrepareCommit | TxnState::PrepareAbort))
            .cloned()
            .collect();
        for txn in prepared {
            if let Err(e) = self.finish(txn.clone()) {
                tracing::warn!(transactional_id = %txn.transactional_id, error = %e, "completing a prepared transaction failed; will retry");
            }
        }
        let timed_out: Vec<TxnMetadata> = self
            .txns
            .values()
            .filter(|t| {
                t.state == TxnState::Ongoing
                    && t.start_ms >= 0
                    && now - t.start_ms > i64::from(t.timeout_ms)
            })
            .cloned()
            .collect();
        for txn in timed_out {
            tracing::info!(transactional_id = %txn.transactional_id, producer_id = txn.producer_id, "aborting a transaction past its timeout");
            if let Err(e) = self.abort_with_bumped_epoch(&txn) {
                tracing::warn!(transactional_id = %txn.transactional_id, error = %e, "aborting a timed-out transaction failed; will retry");
            }
        }
        let expired: Vec<String> = self
            .txns
            .values()
            .filter(|t| {
                matches!(
                    t.state,
                    TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                ) && now - t.last_update_ms > self.config.id_expiration_ms
            })
            .map(|t| t.transactional_id.clone())
            .collect();
        for id in expired {
            if self
                .log
                .append(self.partition_for(&id), encode_key(&id), None)
                .is_ok()
            {
                self.txns.remove(&id);
            }
        }
    }

    /// Rebuilds the state from `__transaction_state` records in log order, then
    /// finishes transactions a crash left in PrepareCommit or PrepareAbort.
    pub fn load(
        &mut self,
        records: impl IntoIterator<Item = (bytes::Bytes, Option<bytes::Bytes>)>,
    ) -> Result<(), DecodeError> {
        for (key, value) in records {
            // A record that cannot be decoded is reported and skipped; the other
            // transactions (and this one's other records) still load.
            let id = match super::records::decode_key(key) {
                Ok(id) => id,
                Err(e) => {
                    tracing::error!(error = %e, "skipping an unreadable __transaction_state key while loading");
                    continue;
                }
            };
            match value {
                None => {
                    self.txns.remove(&id);
                }
                Some(value) => {
                    let stored = match StoredTxn::decode(value) {
                        Ok(stored) => stored,
                        Err(e) => {
                            tracing::error!(transactional_id = %id, error = %e, "skipping an unreadable __transaction_state record while loading");
                            continue;
                        }
                    };
                    self.txns.insert(
                        id.clone(),
                        TxnMetadata {
                            transactional_id: id,
                            producer_id: stored.producer_id,
                            producer_epoch: stored.producer_epoch,
                            timeout_ms: stored.timeout_ms,
                            state: stored.state,
                            partitions: stored.partitions.into_iter().collect(),
                            start_ms: stored.start_ms,
                            last_update_ms: stored.last_update_ms,
                            last_producer_epoch: -1,
                        },
                    );
                }
            }
        }
        // A new incarnation of the coordinator: its markers win over older ones.
        self.coordinator_epoch += 1;
        let pending: Vec<TxnMetadata> = self
            .txns
            .values()
            .filter(|t| matches!(t.state, TxnState::PrepareCommit | TxnState::PrepareAbort))
            .cloned()
            .collect();
        for txn in pending {
            tracing::info!(transactional_id = %txn.transactional_id, state = txn.state.name(), "completing a transaction interrupted by a restart");
            if let Err(e) = self.finish(txn) {
                tracing::error!(error = %e, "completing an interrupted transaction failed");
            }
        }
        Ok(())
    }
}
