//! The transaction coordinator driven by a manual clock and in-memory fakes.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use protocol::time::ManualClock;
use protocol::ErrorCode;

use super::coordinator::{MarkerWriter, ProducerIdSource, TxnConfig, TxnCoordinator, TxnLog};
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

impl TxnLog for Fakes {
    fn append(&self, _partition: i32, key: Bytes, value: Option<Bytes>) -> Result<(), ErrorCode> {
        self.log.lock().unwrap().push((key, value));
        Ok(())
    }
}

impl MarkerWriter for Fakes {
    fn write_markers(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        _coordinator_epoch: i32,
        partitions: &[(String, i32)],
    ) -> Result<(), ErrorCode> {
        if *self.fail_markers.lock().unwrap() {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        self.markers.lock().unwrap().push((
            producer_id,
            producer_epoch,
            commit,
            partitions.to_vec(),
        ));
        Ok(())
    }
}

impl ProducerIdSource for Fakes {
    fn next_producer_id(&self) -> Result<i64, ErrorCode> {
        Ok(1000 + self.next_id.fetch_add(1, Ordering::SeqCst))
    }
}

fn coordinator() -> (TxnCoordinator, Arc<Fakes>, Arc<ManualClock>) {
    let fakes = Arc::new(Fakes::default());
    let clock = Arc::new(ManualClock::new(1_000_000));
    let c = TxnCoordinator::new(
        TxnConfig::default(),
        clock.clone(),
        fakes.clone(),
        fakes.clone(),
        fakes.clone(),
    );
    (c, fakes, clock)
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
        Err(ErrorCode::InvalidTxnState)
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
        Err(ErrorCode::ProducerFenced)
    );
    assert_eq!(
        c.end_transaction("tx", pid, old_epoch, true),
        Err(ErrorCode::ProducerFenced)
    );
    assert_eq!(
        c.add_partitions("tx", 999, new_epoch, &[tp("a", 1)]),
        Err(ErrorCode::InvalidProducerIdMapping)
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
        Err(ErrorCode::ProducerFenced),
        "the zombie is fenced"
    );
}

#[test]
fn timeouts_beyond_the_maximum_are_refused() {
    let (mut c, _, _) = coordinator();
    assert_eq!(
        c.init_producer_id(Some("tx"), 900_001, None),
        Err(ErrorCode::InvalidTransactionTimeout)
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
    let mut restarted = TxnCoordinator::new(
        TxnConfig::default(),
        clock.clone(),
        fakes.clone(),
        fakes.clone(),
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
        Err(ErrorCode::ConcurrentTransactions)
    );
    assert_eq!(
        c.init_producer_id(Some("tx"), 60_000, None),
        Err(ErrorCode::ConcurrentTransactions)
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
        Err(ErrorCode::ProducerFenced)
    );
    assert_eq!(
        c.init_producer_id(Some("tx"), 10_000, Some((pid + 1, e1))),
        Err(ErrorCode::ProducerFenced)
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
        Err(ErrorCode::ProducerFenced)
    );
    let (_, e3) = c
        .init_producer_id(Some("tx"), 10_000, Some((pid, e2)))
        .unwrap();
    assert_eq!(e3, e2 + 2);
    assert_eq!(
        c.init_producer_id(Some("tx"), 10_000, Some((pid, e0))),
        Err(ErrorCode::ProducerFenced)
    );
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
    let mut restarted = TxnCoordinator::new(
        TxnConfig::default(),
        clock.clone(),
        fakes.clone(),
        fakes.clone(),
        fakes.clone(),
    );
    restarted.load(records).unwrap();
    assert!(restarted.transaction("tx-a").is_some());
    assert!(restarted.transaction("tx-b").is_some());
    assert!(restarted.transaction("tx-c").is_none());
}
