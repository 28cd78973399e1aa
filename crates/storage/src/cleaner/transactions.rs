//! Transaction tracking through a cleaning: Kafka's `CleanedTransactionMetadata`.

use std::collections::{HashMap, HashSet, VecDeque};

use protocol::records::control::{ABORT, COMMIT};
use protocol::records::BatchHeader;

use super::SegmentView;
use crate::producer_state::AbortedTxn;

/// Follows transactions through the batches of the range being cleaned, in offset
/// order. A transactional batch of a producer whose aborted transaction (from the
/// transaction indexes) has begun is aborted until that producer's ABORT marker;
/// other transactional batches are committed (the range ends at the last stable
/// offset, so every transaction in it is decided). Aborted batches neither enter
/// the offset map nor survive the cleaning. A marker may go once no batch of its
/// transaction is left: a COMMIT when this pass read none of its batches, an ABORT
/// when this pass saw none (the batches it saw are dropped now, the marker next
/// time).
pub(crate) struct TxnTracker {
    /// Aborted transactions not yet begun, by first offset.
    pending: VecDeque<AbortedTxn>,
    /// Producer -> (its aborted transaction, whether a batch of it was read).
    aborting: HashMap<i64, (AbortedTxn, bool)>,
    /// Producers with a committed transaction whose batches were read.
    committing: HashSet<i64>,
}

impl TxnTracker {
    /// Tracks the batches from `from` on: aborted transactions whose marker lies
    /// before it are over.
    pub(crate) fn new(views: &[&SegmentView], from: i64) -> TxnTracker {
        let mut aborted: Vec<AbortedTxn> = views
            .iter()
            .flat_map(|v| v.aborted.iter().copied())
            .filter(|a| a.last_offset >= from)
            .collect();
        aborted.sort_by_key(|a| (a.first_offset, a.last_offset));
        TxnTracker {
            pending: aborted.into(),
            aborting: HashMap::new(),
            committing: HashSet::new(),
        }
    }

    fn begin_up_to(&mut self, offset: i64) {
        while self
            .pending
            .front()
            .is_some_and(|a| a.first_offset <= offset)
        {
            let txn = self.pending.pop_front().expect("checked");
            self.aborting.entry(txn.producer_id).or_insert((txn, false));
        }
    }

    /// A data batch: true when it belongs to an aborted transaction.
    pub(crate) fn on_batch(&mut self, header: &BatchHeader) -> bool {
        self.begin_up_to(header.last_offset());
        if !header.is_transactional() {
            return false;
        }
        match self.aborting.get_mut(&header.producer_id) {
            Some((_, seen)) => {
                *seen = true;
                true
            }
            None => {
                self.committing.insert(header.producer_id);
                false
            }
        }
    }

    /// A control batch of type `kind`: whether it may be dropped (its transaction
    /// has no batch left), and the aborted transaction to keep indexed when an
    /// ABORT marker stays.
    pub(crate) fn on_control(
        &mut self,
        header: &BatchHeader,
        kind: Option<i16>,
    ) -> (bool, Option<AbortedTxn>) {
        self.begin_up_to(header.last_offset());
        match kind {
            Some(ABORT) => match self.aborting.remove(&header.producer_id) {
                Some((txn, true)) => (false, Some(txn)),
                Some((txn, false)) => (true, Some(txn)),
                None => (true, None),
            },
            Some(COMMIT) => (!self.committing.remove(&header.producer_id), None),
            // An empty control batch (already cleaned) may go; unknown types stay.
            None => (true, None),
            Some(_) => (false, None),
        }
    }
}
