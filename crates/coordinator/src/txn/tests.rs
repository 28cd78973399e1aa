//! The transaction coordinator driven by a manual clock and in-memory fakes. The
//! harness carries out every write the coordinator queues at once (the log and
//! the markers are fakes), so each call reads as if it were synchronous.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use protocol::time::ManualClock;
use protocol::ErrorCode;

use crate::error::{TxnError, WriteError};

use super::coordinator::{ProducerIdSource, TxnConfig, TxnCoordinator, TxnWrite};
use super::records::TxnState;

/// A marker write: producer id, epoch, commit, partitions.
type Marker = (i64, i16, bool, Vec<(String, i32)>);

#[derive(Default)]
struct Fakes {
    log: Mutex<Vec<(Bytes, Option<Bytes>)>>,
    markers: Mutex<Vec<Marker>>,
    next_id: AtomicI64,
    fail_markers: Mutex<bool>,
}

impl Fakes {
    /// Carries out one write as the broker would.
    fn write(&self, write: TxnWrite) -> Result<(), WriteError> {
        match write {
            TxnWrite::Log { key, value, .. } => {
                self.log.lock().unwrap().push((key, value));
                Ok(())
            }
            TxnWrite::Markers {
                producer_id,
                producer_epoch,
                commit,
                partitions,
                ..
            } => {
                if *self.fail_markers.lock().unwrap() {
                    return Err(WriteError::Log(ErrorCode::NotLeaderOrFollower));
                }
                self.markers.lock().unwrap().push((
                    producer_id,
                    producer_epoch,
                    commit,
                    partitions,
                ));
                Ok(())
            }
        }
    }
}

impl ProducerIdSource for Fakes {
    fn next_producer_id(&self) -> Option<i64> {
        Some(1000 + self.next_id.fetch_add(1, Ordering::SeqCst))
    }
}

/// The coordinator with its writes carried out after every call.
struct Settled {
    inner: TxnCoordinator,
    fakes: Arc<Fakes>,
}

impl Deref for Settled {
    type Target = TxnCoordinator;
    fn deref(&self) -> &TxnCoordinator {
        &self.inner
    }
}

impl DerefMut for Settled {
    fn deref_mut(&mut self) -> &mut TxnCoordinator {
        &mut self.inner
    }
}

type Slot<T> = Arc<Mutex<Option<Result<T, TxnError>>>>;

fn slot<T: Send + 'static>() -> (Slot<T>, super::coordinator::TxnCallback<T>) {
    let slot: Slot<T> = Arc::new(Mutex::new(None));
    let out = slot.clone();
    (slot, Box::new(move |r| *out.lock().unwrap() = Some(r)))
}

impl Settled {
    fn new(inner: TxnCoordinator, fakes: Arc<Fakes>) -> Settled {
        Settled { inner, fakes }
    }

    /// Carries out queued writes, and those their continuations queue.
    fn settle(&mut self) {
        loop {
            let writes = self.inner.take_writes();
            if writes.is_empty() {
                return;
            }
            for (id, write) in writes {
                let result = self.fakes.write(write);
                self.inner.write_completed(id, result);
            }
        }
    }

    fn answer<T>(&mut self, slot: Slot<T>) -> Result<T, TxnError> {
        self.settle();
        let answer = slot.lock().unwrap().take();
        answer.expect("answered once the writes are done")
    }

    fn init_producer_id(
        &mut self,
        transactional_id: Option<&str>,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), TxnError> {
        let (out, respond) = slot();
        self.inner
            .init_producer_id(transactional_id, timeout_ms, expected, respond);
        self.answer(out)
    }

    fn add_partitions(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<(), TxnError> {
        let (out, respond) = slot();
        self.inner.add_partitions(
            transactional_id,
            producer_id,
            producer_epoch,
            partitions,
            respond,
        );
        self.answer(out)
    }

    fn add_offsets(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group_id: &str,
    ) -> Result<(), TxnError> {
        let (out, respond) = slot();
        self.inner.add_offsets(
            transactional_id,
            producer_id,
            producer_epoch,
            group_id,
            respond,
        );
        self.answer(out)
    }

    fn end_transaction(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<(), TxnError> {
        let (out, respond) = slot();
        self.inner.end_transaction(
            transactional_id,
            producer_id,
            producer_epoch,
            commit,
            respond,
        );
        self.answer(out)
    }

    fn tick(&mut self) {
        self.inner.tick();
        self.settle();
    }

    fn load(
        &mut self,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<(), crate::group::records::DecodeError> {
        let loaded = self.inner.load(records);
        self.settle();
        loaded
    }
}

fn coordinator() -> (Settled, Arc<Fakes>, Arc<ManualClock>) {
    let fakes = Arc::new(Fakes::default());
    let clock = Arc::new(ManualClock::new(1_000_000));
    let c = TxnCoordinator::new(TxnConfig::default(), clock.clone(), fakes.clone());
    (Settled::new(c, fakes.clone()), fakes, clock)
}

fn tp(topic: &str, partition: i32) -> (String, i32) {
    (topic.to_string(), partition)
}

#[test]
fn a_transaction_commits_with_markers_on_every_partition() {
    let (mut c, fakes, _) = coordinator();
    let (pid, epoch) = c.init_producer_id(Some("tx"), 60_000, None).unwrap();
    assert_eq!(epoch, 0);
    c.add_partitions("tx", pid, epoch, &[tp("a", 0), tp("b", 1)])
        .unwrap();
    c.add_offsets("tx", pid, epoch, "group").unwrap();
    assert_eq!(c.transaction("tx").unwrap().state, TxnState::Ongoing);
    c.end_transaction("tx", pid, epoch, true).unwrap();
    assert_eq!(c.transaction("tx").unwrap().state, TxnState::CompleteCommit);
    let markers = fakes.markers.lock().unwrap();
    assert_eq!(markers.len(), 1);
    assert!(markers[0].2, "a commit marker");
    assert_eq!(markers[0].3.len(), 3);
    assert!(markers[0].3.iter().any(|(t, _)| t == "__consumer_offsets"));
    drop(markers);
    // A retried EndTxn is answered the same way.
    c.end_transaction("tx", pid, epoch, true).unwrap();
    assert_eq!(
        c.end_transaction("tx", pid, epoch, false),
        Err(TxnError::InvalidTxnState)
    );
}

#[test]
fn only_the_transactions_producer_at_its_epoch_owns_it() {
    let (mut c, _, _) = coordinator();
    assert_eq!(
        c.verify_owner("tx", 0, 0),
        Err(TxnError::InvalidProducerIdMapping)
    );
    let (pid, epoch) = c.init_producer_id(Some("tx"), 60_000, None).unwrap();
    assert_eq!(c.verify_owner("tx", pid, epoch), Ok(()));
    assert_eq!(
        c.verify_owner("tx", pid + 1, epoch),
        Err(TxnError::InvalidProducerIdMapping)
    );
    assert_eq!(
        c.verify_owner("tx", pid, epoch + 1),
        Err(TxnError::InvalidProducerEpoch)
    );
}

#[test]
fn a_new_instance_fences_the_old_one_and_aborts_its_open_transaction() {
    let (mut c, fakes, _) = coordinator();
    let (pid, old_epoch) = c.init_producer_id(Some("tx"), 60_000, None).unwrap();
    c.add_partitions("tx", pid, old_epoch, &[tp("a", 0)])
        .unwrap();
    let (pid2, new_epoch) = c.init_producer_id(Some("tx"), 60_000, None).unwrap();
    assert_eq!(pid2, pid);
    assert!(
        new_epoch > old_epoch + 1,
        "bumped once to fence and once for the new instance"
    );
    let markers = fakes.markers.lock().unwrap();
    assert_eq!(markers.len(), 1);
    assert!(!markers[0].2, "the old transaction was aborted");
    drop(markers);
    assert_eq!(
        c.add_partitions("tx", pid, old_epoch, &[tp("a", 1)]),
        Err(TxnError::ProducerFenced)
    );
    assert_eq!(
        c.end_transaction("tx", pid, old_epoch, true),
        Err(TxnError::ProducerFenced)
    );
    assert_eq!(
        c.add_partitions("tx", 999, new_epoch, &[tp("a", 1)]),
        Err(TxnError::InvalidProducerIdMapping)
    );
}

#[test]
fn timed_out_transactions_are_aborted_with_a_bumped_epoch() {
    let (mut c, fakes, clock) = coordinator();
    let (pid, epoch) = c.init_producer_id(Some("tx"), 10_000, None).unwrap();
    c.add_partitions("tx", pid, epoch, &[tp("a", 0)]).unwrap();
    clock.advance(5_000);
    c.tick();
    assert_eq!(c.transaction("tx").unwrap().state, TxnState::Ongoing);
    clock.advance(6_000);
    c.tick();
    assert_eq!(c.transaction("tx").unwrap().state, TxnState::CompleteAbort);
    assert_eq!(fakes.markers.lock().unwrap()[0].1, epoch + 1);
    assert_eq!(
        c.end_transaction("tx", pid, epoch, true),
        Err(TxnError::ProducerFenced),
        "the zombie is fenced"
    );
}

#[test]
fn timeouts_beyond_the_maximum_are_refused() {
    let (mut c, _, _) = coordinator();
    assert_eq!(
        c.init_producer_id(Some("tx"), 900_001, None),
        Err(TxnError::InvalidTransactionTimeout)
    );
    let (pid, epoch) = c.init_producer_id(None, 0, None).unwrap();
    assert_eq!(
        (pid, epoch),
        (1000, 0),
        "idempotent producers get a fresh id"
    );
}

#[test]
fn a_restart_completes_a_prepared_transaction() {
    let (mut c, fakes, clock) = coordinator();
    let (pid, epoch) = c.init_producer_id(Some("tx"), 60_000, None).unwrap();
    c.add_partitions("tx", pid, epoch, &[tp("a", 0)]).unwrap();
    *fakes.fail_markers.lock().unwrap() = true;
    assert_eq!(
        c.end_transaction("tx", pid, epoch, true),
        Ok(()),
        "decided once PrepareCommit is persisted"
    );
    assert_eq!(c.transaction("tx").unwrap().state, TxnState::PrepareCommit);
    *fakes.fail_markers.lock().unwrap() = false;
    let records = fakes.log.lock().unwrap().clone();
    let mut restarted = Settled::new(
        TxnCoordinator::new(TxnConfig::default(), clock.clone(), fakes.clone()),
        fakes.clone(),
    );
    restarted.load(records).unwrap();
    assert_eq!(
        restarted.transaction("tx").unwrap().state,
        TxnState::CompleteCommit
    );
    assert!(fakes
        .markers
        .lock()
        .unwrap()
        .iter()
        .any(|m| m.0 == pid && m.2));
}

#[test]
fn markers_that_failed_are_retried_by_the_timer() {
    let (mut c, fakes, _) = coordinator();
    let (pid, epoch) = c.init_producer_id(Some("tx"), 60_000, None).unwrap();
    c.add_partitions("tx", pid, epoch, &[tp("a", 0)]).unwrap();
    *fakes.fail_markers.lock().unwrap() = true;
    assert_eq!(c.end_transaction("tx", pid, epoch, false), Ok(()));
    c.tick();
    assert_eq!(c.transaction("tx").unwrap().state, TxnState::PrepareAbort);
    assert_eq!(
        c.add_partitions("tx", pid, epoch, &[tp("a", 0)]),
        Err(TxnError::ConcurrentTransactions)
    );
    assert_eq!(
        c.init_producer_id(Some("tx"), 60_000, None),
        Err(TxnError::ConcurrentTransactions)
    );
    *fakes.fail_markers.lock().unwrap() = false;
    c.tick();
    assert_eq!(c.transaction("tx").unwrap().state, TxnState::CompleteAbort);
    assert_eq!(fakes.markers.lock().unwrap().len(), 1);
    c.add_partitions("tx", pid, epoch, &[tp("a", 0)]).unwrap();
}

#[test]
fn only_the_current_or_timed_out_producer_may_bump_its_own_epoch() {
    let (mut c, _, clock) = coordinator();
    let (pid, e0) = c.init_producer_id(Some("tx"), 10_000, None).unwrap();
    let (_, e1) = c.init_producer_id(Some("tx"), 10_000, None).unwrap();
    // The first instance (a zombie now) asks for a bump with its own epoch: fenced.
    assert_eq!(
        c.init_producer_id(Some("tx"), 10_000, Some((pid, e0))),
        Err(TxnError::ProducerFenced)
    );
    assert_eq!(
        c.init_producer_id(Some("tx"), 10_000, Some((pid + 1, e1))),
        Err(TxnError::ProducerFenced)
    );
    // The current one may (KIP-360), and gets the next epoch.
    let (_, e2) = c
        .init_producer_id(Some("tx"), 10_000, Some((pid, e1)))
        .unwrap();
    assert_eq!(e2, e1 + 1);
    // A transaction aborted for its timeout bumps the epoch; its producer may still
    // recover with the epoch it had, once; the instance before it may not.
    c.add_partitions("tx", pid, e2, &[tp("a", 0)]).unwrap();
    clock.advance(11_000);
    c.tick();
    assert_eq!(c.transaction("tx").unwrap().state, TxnState::CompleteAbort);
    assert_eq!(
        c.init_producer_id(Some("tx"), 10_000, Some((pid, e1))),
        Err(TxnError::ProducerFenced)
    );
    let (_, e3) = c
        .init_producer_id(Some("tx"), 10_000, Some((pid, e2)))
        .unwrap();
    assert_eq!(e3, e2 + 2);
    assert_eq!(
        c.init_producer_id(Some("tx"), 10_000, Some((pid, e0))),
        Err(TxnError::ProducerFenced)
    );
}

// ---- Writes outside the lock ----

#[test]
fn a_transactional_id_with_a_write_in_flight_answers_concurrent_transactions() {
    let (mut c, _, _) = coordinator();
    let (first, respond) = slot();
    c.inner.init_producer_id(Some("tx"), 60_000, None, respond);
    assert!(c.is_pending("tx"));
    let (second, respond) = slot();
    c.inner.init_producer_id(Some("tx"), 60_000, None, respond);
    assert_eq!(
        second.lock().unwrap().take(),
        Some(Err(TxnError::ConcurrentTransactions))
    );
    assert_eq!(first.lock().unwrap().take(), None);
    c.settle();
    assert_eq!(first.lock().unwrap().take(), Some(Ok((1000, 0))));
    assert!(!c.is_pending("tx"));
}

#[test]
fn end_txn_is_answered_after_prepare_markers_and_complete_are_written() {
    let (mut c, fakes, _) = coordinator();
    let (pid, epoch) = c.init_producer_id(Some("tx"), 60_000, None).unwrap();
    c.add_partitions("tx", pid, epoch, &[tp("a", 0)]).unwrap();
    let (answer, respond) = slot();
    c.inner.end_transaction("tx", pid, epoch, true, respond);
    let mut kinds = Vec::new();
    loop {
        let writes = c.inner.take_writes();
        if writes.is_empty() {
            break;
        }
        for (id, write) in writes {
            assert_eq!(answer.lock().unwrap().take(), None, "answered too early");
            kinds.push(match &write {
                TxnWrite::Log { .. } => "log",
                TxnWrite::Markers { .. } => "markers",
            });
            let result = fakes.write(write);
            c.inner.write_completed(id, result);
        }
    }
    assert_eq!(kinds, vec!["log", "markers", "log"]);
    assert_eq!(answer.lock().unwrap().take(), Some(Ok(())));
    assert_eq!(c.transaction("tx").unwrap().state, TxnState::CompleteCommit);
}

#[test]
fn producer_ids_the_source_cannot_give_are_refused_with_a_retriable_error() {
    #[derive(Debug)]
    struct Empty;
    impl ProducerIdSource for Empty {
        fn next_producer_id(&self) -> Option<i64> {
            None
        }
    }
    let clock = Arc::new(ManualClock::new(1_000_000));
    let mut c = Settled::new(
        TxnCoordinator::new(TxnConfig::default(), clock, Arc::new(Empty)),
        Arc::new(Fakes::default()),
    );
    assert_eq!(
        c.init_producer_id(None, 0, None),
        Err(TxnError::NoProducerIds)
    );
    assert_eq!(
        c.init_producer_id(Some("tx"), 60_000, None),
        Err(TxnError::NoProducerIds)
    );
    assert!(c.transaction("tx").is_none());
}

#[test]
fn an_unreadable_transaction_record_is_skipped_and_the_others_load() {
    let (mut c, fakes, clock) = coordinator();
    c.init_producer_id(Some("tx-a"), 60_000, None).unwrap();
    c.init_producer_id(Some("tx-b"), 60_000, None).unwrap();
    let mut records = fakes.log.lock().unwrap().clone();
    // A key with a bad string length, and a value cut short, among good records.
    records.insert(1, (Bytes::from_static(&[0, 0, 0x80, 0x01]), None));
    records.insert(
        2,
        (
            super::records::encode_key("tx-c"),
            Some(Bytes::from_static(&[0, 0, 0, 0])),
        ),
    );
    let mut restarted = Settled::new(
        TxnCoordinator::new(TxnConfig::default(), clock.clone(), fakes.clone()),
        fakes.clone(),
    );
    restarted.load(records).unwrap();
    assert!(restarted.transaction("tx-a").is_some());
    assert!(restarted.transaction("tx-b").is_some());
    assert!(restarted.transaction("tx-c").is_none());
}
