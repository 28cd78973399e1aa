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
//! Sans-IO: persistence and markers are queued as [`TxnWrite`]s with a
//! continuation (see `crate::outbox`), which the shell carries out outside the
//! coordinator's lock and reports back through [`TxnCoordinator::write_completed`];
//! requests are answered through callbacks once their writes are done; a
//! transactional id with a write in flight answers CONCURRENT_TRANSACTIONS (Kafka's
//! pending state). Producer ids come from a non-blocking [`ProducerIdSource`], time
//! from the clock; [`TxnCoordinator::tick`] drives timeouts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use protocol::time::Clock;

use super::records::{encode_key, StoredTxn, TxnState};
use crate::error::{TxnError, WriteError};
use crate::group::records::{partition_for, DecodeError};
use crate::outbox::{Outbox, WriteId};

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

/// What the coordinator needs written, in the order queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnWrite {
    /// A record for `__transaction_state` (acks=all); `None` is a tombstone.
    Log {
        partition: i32,
        key: Bytes,
        value: Option<Bytes>,
    },
    /// COMMIT or ABORT markers on every partition of a transaction (and, on
    /// `__consumer_offsets`, the group coordinator applies or drops the
    /// transaction's offsets).
    Markers {
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        partitions: Vec<(String, i32)>,
    },
}

/// Hands out producer ids without blocking: a source that has none at hand
/// gives `None`, the request answers [`TxnError::NoProducerIds`] (as Kafka's
/// `RPCProducerIdManager` does) and the client retries.
pub trait ProducerIdSource: Send + Sync {
    fn next_producer_id(&self) -> Option<i64>;
}

/// The answer to a request, at once or once its writes are done.
pub type TxnCallback<T> = Box<dyn FnOnce(Result<T, TxnError>) + Send>;

/// What runs after a step of the coordinator's own (a transition, the markers).
type Then<T> = Box<dyn FnOnce(&mut TxnCoordinator, Result<T, TxnError>) + Send>;

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
    producer_ids: Arc<dyn ProducerIdSource>,
    writes: Outbox<TxnWrite, TxnCoordinator>,
    txns: BTreeMap<String, TxnMetadata>,
    /// Transactional ids with a write in flight: other requests for them answer
    /// CONCURRENT_TRANSACTIONS until it is done.
    pending: BTreeSet<String>,
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
        producer_ids: Arc<dyn ProducerIdSource>,
    ) -> TxnCoordinator {
        TxnCoordinator {
            config,
            clock,
            producer_ids,
            writes: Outbox::default(),
            txns: BTreeMap::new(),
            pending: BTreeSet::new(),
            coordinator_epoch: COORDINATOR_EPOCH_START,
        }
    }

    /// The writes queued since the last call, for the shell to carry out in order.
    pub fn take_writes(&mut self) -> Vec<(WriteId, TxnWrite)> {
        self.writes.take()
    }

    /// A write taken with [`TxnCoordinator::take_writes`] is done: its
    /// continuation runs (and may queue more writes).
    pub fn write_completed(&mut self, id: WriteId, result: Result<(), WriteError>) {
        match self.writes.complete(id) {
            Some(then) => then(self, result),
            None => tracing::error!(write = id, "completion of an unknown transaction write"),
        }
    }

    fn next_producer_id(&self) -> Result<i64, TxnError> {
        self.producer_ids
            .next_producer_id()
            .ok_or(TxnError::NoProducerIds)
    }

    /// Whether a write for `transactional_id` is in flight.
    pub fn is_pending(&self, transactional_id: &str) -> bool {
        self.pending.contains(transactional_id)
    }

    pub fn partition_for(&self, transactional_id: &str) -> i32 {
        partition_for(transactional_id, self.config.partitions)
    }

    /// Whether `producer_id` at `producer_epoch` owns `transactional_id`'s
    /// transaction, as TxnOffsetCommit needs before the group coordinator stores
    /// its offsets (Kafka's per-partition INVALID_PRODUCER_ID_MAPPING and
    /// INVALID_PRODUCER_EPOCH).
    pub fn verify_owner(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<(), TxnError> {
        match self.txns.get(transactional_id) {
            None => Err(TxnError::InvalidProducerIdMapping),
            Some(txn) if txn.producer_id != producer_id => Err(TxnError::InvalidProducerIdMapping),
            Some(txn) if txn.producer_epoch != producer_epoch => {
                Err(TxnError::InvalidProducerEpoch)
            }
            Some(_) => Ok(()),
        }
    }

    pub fn transaction(&self, transactional_id: &str) -> Option<&TxnMetadata> {
        self.txns.get(transactional_id)
    }

    pub fn transactions(&self) -> impl Iterator<Item = &TxnMetadata> {
        self.txns.values()
    }

    /// Moves `next` to `state` in the log, then in memory; `then` gets the new
    /// metadata once written. The id is pending meanwhile.
    fn transition(&mut self, mut next: TxnMetadata, state: TxnState, then: Then<TxnMetadata>) {
        next.state = state;
        next.last_update_ms = self.clock.now_ms();
        let id = next.transactional_id.clone();
        let write = TxnWrite::Log {
            partition: self.partition_for(&id),
            key: encode_key(&id),
            value: Some(next.stored().encode()),
        };
        self.pending.insert(id.clone());
        self.writes.push(
            write,
            Box::new(move |c, written| {
                c.pending.remove(&id);
                match written {
                    Ok(()) => {
                        c.txns.insert(id, next.clone());
                        then(c, Ok(next))
                    }
                    Err(e) => then(c, Err(TxnError::Write(e))),
                }
            }),
        );
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
        respond: TxnCallback<(i64, i16)>,
    ) {
        let Some(transactional_id) = transactional_id.filter(|t| !t.is_empty()) else {
            return respond(self.next_producer_id().map(|id| (id, 0)));
        };
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return respond(Err(TxnError::InvalidTransactionTimeout));
        }
        if self.is_pending(transactional_id) {
            return respond(Err(TxnError::ConcurrentTransactions));
        }
        let now = self.clock.now_ms();
        let Some(current) = self.txns.get(transactional_id).cloned() else {
            let producer_id = match self.next_producer_id() {
                Ok(id) => id,
                Err(e) => return respond(Err(e)),
            };
            let txn = TxnMetadata {
                transactional_id: transactional_id.to_string(),
                producer_id,
                producer_epoch: 0,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                start_ms: -1,
                last_update_ms: now,
                last_producer_epoch: -1,
            };
            return self.transition(
                txn,
                TxnState::Empty,
                Box::new(move |_, done| respond(done.map(|t| (t.producer_id, t.producer_epoch)))),
            );
        };
        let expected = expected.filter(|(p, _)| *p >= 0);
        if let Some((producer_id, epoch)) = expected {
            // KIP-360: only the current producer (or the one a timeout fenced) may
            // bump its own epoch; an older instance is a zombie.
            let current_or_timed_out = epoch == current.producer_epoch
                || (current.last_producer_epoch >= 0 && epoch == current.last_producer_epoch);
            if producer_id != current.producer_id || !current_or_timed_out {
                return respond(Err(TxnError::ProducerFenced));
            }
        }
        let id = transactional_id.to_string();
        match current.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                respond(Err(TxnError::ConcurrentTransactions))
            }
            TxnState::Ongoing => {
                // The old instance's transaction: fence it and abort, then bump.
                self.abort_with_bumped_epoch(
                    &current,
                    Box::new(move |c, aborted| match aborted {
                        Ok(()) => c.bump_epoch(&id, timeout_ms, expected, respond),
                        Err(e) => respond(Err(e)),
                    }),
                );
            }
            _ => self.bump_epoch(&id, timeout_ms, expected, respond),
        }
    }

    /// InitProducerId's second half: the next epoch (or a new producer id once
    /// the epochs run out), persisted in the Empty state.
    fn bump_epoch(
        &mut self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        respond: TxnCallback<(i64, i16)>,
    ) {
        let current = self.txns[transactional_id].clone();
        if matches!(
            current.state,
            TxnState::PrepareCommit | TxnState::PrepareAbort
        ) {
            // Its markers are not all written yet (the timer retries them).
            return respond(Err(TxnError::ConcurrentTransactions));
        }
        let mut next = current.clone();
        next.timeout_ms = timeout_ms;
        next.partitions.clear();
        next.start_ms = -1;
        next.last_producer_epoch = expected.map_or(-1, |(_, epoch)| epoch);
        if current.producer_epoch >= i16::MAX - 1 {
            // Epochs are exhausted: a new producer id starts at epoch 0.
            next.producer_id = match self.next_producer_id() {
                Ok(id) => id,
                Err(e) => return respond(Err(e)),
            };
            next.producer_epoch = 0;
        } else {
            next.producer_epoch = current.producer_epoch + 1;
        }
        self.transition(
            next,
            TxnState::Empty,
            Box::new(move |_, done| respond(done.map(|t| (t.producer_id, t.producer_epoch)))),
        );
    }

    /// Aborts an open transaction under a bumped epoch (fencing its producer).
    fn abort_with_bumped_epoch(&mut self, txn: &TxnMetadata, then: Then<()>) {
        let mut fenced = txn.clone();
        fenced.producer_epoch = if txn.producer_epoch < i16::MAX - 1 {
            txn.producer_epoch + 1
        } else {
            txn.producer_epoch
        };
        fenced.last_producer_epoch = txn.producer_epoch;
        self.complete(fenced, false, then)
    }

    fn check_producer(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<TxnMetadata, TxnError> {
        if self.is_pending(transactional_id) {
            return Err(TxnError::ConcurrentTransactions);
        }
        let txn = self
            .txns
            .get(transactional_id)
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        if txn.producer_id != producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if txn.producer_epoch != producer_epoch {
            return Err(TxnError::ProducerFenced);
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
        respond: TxnCallback<()>,
    ) {
        let txn = match self.check_producer(transactional_id, producer_id, producer_epoch) {
            Ok(txn) => txn,
            Err(e) => return respond(Err(e)),
        };
        match txn.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                return respond(Err(TxnError::ConcurrentTransactions))
            }
            TxnState::Dead => return respond(Err(TxnError::InvalidProducerIdMapping)),
            _ => {}
        }
        let mut next = txn.clone();
        let new = partitions.iter().any(|p| !txn.partitions.contains(p));
        if !new && txn.state == TxnState::Ongoing {
            return respond(Ok(()));
        }
        if txn.state != TxnState::Ongoing {
            next.partitions.clear();
            next.start_ms = self.clock.now_ms();
        }
        next.partitions.extend(partitions.iter().cloned());
        self.transition(
            next,
            TxnState::Ongoing,
            Box::new(move |_, done| respond(done.map(|_| ()))),
        );
    }

    /// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins.
    pub fn add_offsets(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group_id: &str,
        respond: TxnCallback<()>,
    ) {
        let partition = partition_for(group_id, self.config.offsets_partitions);
        self.add_partitions(
            transactional_id,
            producer_id,
            producer_epoch,
            &[("__consumer_offsets".to_string(), partition)],
            respond,
        )
    }

    /// EndTxn: commit or abort, answered once the markers are written (or, if
    /// they cannot be now, once the outcome is decided).
    pub fn end_transaction(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        respond: TxnCallback<()>,
    ) {
        let txn = match self.check_producer(transactional_id, producer_id, producer_epoch) {
            Ok(txn) => txn,
            Err(e) => return respond(Err(e)),
        };
        match (txn.state, commit) {
            (TxnState::Ongoing, _) => {
                self.complete(txn, commit, Box::new(move |_, done| respond(done)))
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => respond(Ok(())),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                respond(Err(TxnError::ConcurrentTransactions))
            }
            (TxnState::Empty, false) => respond(Ok(())),
            _ => respond(Err(TxnError::InvalidTxnState)),
        }
    }

    /// Prepare, write the markers, complete. Once the Prepare state is persisted
    /// the outcome is decided and `then` gets success, as in Kafka: markers that
    /// cannot be written now are retried by [`TxnCoordinator::tick`] (the id
    /// answers CONCURRENT_TRANSACTIONS meanwhile) and at the next start-up.
    fn complete(&mut self, txn: TxnMetadata, commit: bool, then: Then<()>) {
        let state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        self.transition(
            txn,
            state,
            Box::new(move |c, prepared| match prepared {
                Err(e) => then(c, Err(e)),
                Ok(prepared) => {
                    let id = prepared.transactional_id.clone();
                    c.finish(
                        prepared,
                        Box::new(move |c, finished| {
                            if let Err(e) = finished {
                                tracing::warn!(transactional_id = %id, error = %e, "completing a prepared transaction failed; will retry");
                            }
                            then(c, Ok(()))
                        }),
                    )
                }
            }),
        );
    }

    /// From a Prepare state: markers, then Complete. The id is pending throughout.
    fn finish(&mut self, prepared: TxnMetadata, then: Then<()>) {
        let commit = prepared.state == TxnState::PrepareCommit;
        let id = prepared.transactional_id.clone();
        let write = TxnWrite::Markers {
            producer_id: prepared.producer_id,
            producer_epoch: prepared.producer_epoch,
            commit,
            coordinator_epoch: self.coordinator_epoch,
            partitions: prepared.partitions.iter().cloned().collect(),
        };
        self.pending.insert(id.clone());
        self.writes.push(
            write,
            Box::new(move |c, written| {
                c.pending.remove(&id);
                if let Err(e) = written {
                    return then(c, Err(TxnError::Write(e)));
                }
                let mut done = prepared;
                done.partitions.clear();
                let state = if commit {
                    TxnState::CompleteCommit
                } else {
                    TxnState::CompleteAbort
                };
                c.transition(done, state, Box::new(move |c, r| then(c, r.map(|_| ()))));
            }),
        );
    }

    /// Finishes prepared transactions whose markers failed; aborts transactions
    /// open longer than their timeout; expires idle ids. Ids with a write in
    /// flight are left for the next tick.
    pub fn tick(&mut self) {
        let now = self.clock.now_ms();
        let idle: Vec<TxnMetadata> = self
            .txns
            .values()
            .filter(|t| !self.pending.contains(&t.transactional_id))
            .cloned()
            .collect();
        for txn in idle {
            let id = txn.transactional_id.clone();
            match txn.state {
                TxnState::PrepareCommit | TxnState::PrepareAbort => self.finish(
                    txn,
                    Box::new(move |_, finished| {
                        if let Err(e) = finished {
                            tracing::warn!(transactional_id = %id, error = %e, "completing a prepared transaction failed; will retry");
                        }
                    }),
                ),
                TxnState::Ongoing
                    if txn.start_ms >= 0 && now - txn.start_ms > i64::from(txn.timeout_ms) =>
                {
                    tracing::info!(transactional_id = %id, producer_id = txn.producer_id, "aborting a transaction past its timeout");
                    self.abort_with_bumped_epoch(
                        &txn,
                        Box::new(move |_, aborted| {
                            if let Err(e) = aborted {
                                tracing::warn!(transactional_id = %id, error = %e, "aborting a timed-out transaction failed; will retry");
                            }
                        }),
                    );
                }
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                    if now - txn.last_update_ms > self.config.id_expiration_ms =>
                {
                    self.expire(id)
                }
                _ => {}
            }
        }
    }

    /// `transactional.id.expiration.ms` passed: a tombstone, then forgotten.
    fn expire(&mut self, transactional_id: String) {
        let write = TxnWrite::Log {
            partition: self.partition_for(&transactional_id),
            key: encode_key(&transactional_id),
            value: None,
        };
        self.pending.insert(transactional_id.clone());
        self.writes.push(
            write,
            Box::new(move |c, written| {
                c.pending.remove(&transactional_id);
                if written.is_ok() {
                    c.txns.remove(&transactional_id);
                }
            }),
        );
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
            self.finish(
                txn,
                Box::new(|_, finished| {
                    if let Err(e) = finished {
                        tracing::error!(error = %e, "completing an interrupted transaction failed");
                    }
                }),
            );
        }
        Ok(())
    }
}
