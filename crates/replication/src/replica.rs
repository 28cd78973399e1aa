//! What a leader keeps per follower and for the ISR (Kafka's `Replica`,
//! `ReplicaState` and `PartitionState`), and which brokers may join an ISR.
//!
//! A follower's progress comes from its fetches: its fetch offset is its log end
//! offset, and it counts as caught up while it has had everything the leader had
//! within `replica.lag.time.max.ms`. With each fetch comes its broker epoch
//! (KIP-903): a fetch from an older incarnation than the metadata shows is
//! refused, and only a replica whose fetches carry its current epoch (or -1, which
//! skips the check) may join the ISR.

use std::collections::BTreeMap;

use crate::events::{AliveBroker, IsrMember};

/// What the leader knows of one follower (Kafka's `ReplicaState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerState {
    /// -1 until the follower fetches.
    pub log_end_offset: i64,
    /// -1 until the follower fetches.
    pub log_start_offset: i64,
    /// The leader's LEO at the follower's previous fetch.
    pub last_fetch_leader_log_end_offset: i64,
    pub last_fetch_time_ms: i64,
    /// The latest time the follower had everything the leader had.
    pub last_caught_up_time_ms: i64,
    /// The broker epoch its latest fetch carried; `None` until it fetches
    /// from this leader.
    pub broker_epoch: Option<i64>,
}

impl FollowerState {
    pub(crate) const UNKNOWN: FollowerState = FollowerState {
        log_end_offset: -1,
        log_start_offset: -1,
        last_fetch_leader_log_end_offset: 0,
        last_fetch_time_ms: 0,
        last_caught_up_time_ms: 0,
        broker_epoch: None,
    };

    pub(crate) fn is_caught_up(
        &self,
        leader_log_end_offset: i64,
        now_ms: i64,
        max_lag_ms: i64,
    ) -> bool {
        self.log_end_offset == leader_log_end_offset
            || now_ms - self.last_caught_up_time_ms <= max_lag_ms
    }

    /// Kafka's `Replica.updateFetchStateOrThrow` (the stale-epoch check is
    /// [`Brokers::is_stale_fetch`], done before).
    pub(crate) fn record_fetch(
        &mut self,
        fetch_offset: i64,
        log_start_offset: i64,
        leader_log_end_offset: i64,
        now_ms: i64,
        broker_epoch: i64,
    ) {
        let last_caught_up_time_ms = if fetch_offset >= leader_log_end_offset {
            self.last_caught_up_time_ms.max(now_ms)
        } else if fetch_offset >= self.last_fetch_leader_log_end_offset {
            self.last_caught_up_time_ms.max(self.last_fetch_time_ms)
        } else {
            self.last_caught_up_time_ms
        };
        *self = FollowerState {
            log_end_offset: fetch_offset,
            log_start_offset,
            last_fetch_leader_log_end_offset: leader_log_end_offset
                .max(self.last_fetch_leader_log_end_offset),
            last_fetch_time_ms: now_ms,
            last_caught_up_time_ms,
            broker_epoch: Some(broker_epoch),
        };
    }
}

/// The ISR as committed by the controller, and the change proposed, if any
/// (Kafka's `CommittedPartitionState`, `PendingExpandIsr`, `PendingShrinkIsr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IsrState {
    Committed(Vec<i32>),
    /// `joining` was proposed; it counts for the HW already (stricter is safe).
    PendingExpand {
        committed: Vec<i32>,
        joining: i32,
        proposed: Vec<IsrMember>,
    },
    /// Some members were proposed to leave; until committed they still count.
    PendingShrink {
        committed: Vec<i32>,
        proposed: Vec<IsrMember>,
    },
}

impl IsrState {
    pub(crate) fn committed(&self) -> &[i32] {
        match self {
            IsrState::Committed(isr)
            | IsrState::PendingExpand { committed: isr, .. }
            | IsrState::PendingShrink { committed: isr, .. } => isr,
        }
    }

    pub(crate) fn in_maximal(&self, replica: i32) -> bool {
        self.committed().contains(&replica)
            || matches!(self, IsrState::PendingExpand { joining, .. } if *joining == replica)
    }

    pub(crate) fn maximal_len(&self) -> usize {
        match self {
            IsrState::PendingExpand { committed, .. } => committed.len() + 1,
            other => other.committed().len(),
        }
    }

    /// The proposal in flight, as sent.
    pub(crate) fn proposed(&self) -> Option<&[IsrMember]> {
        match self {
            IsrState::Committed(_) => None,
            IsrState::PendingExpand { proposed, .. } | IsrState::PendingShrink { proposed, .. } => {
                Some(proposed)
            }
        }
    }
}

/// The brokers the metadata image shows registered and unfenced, and this
/// broker's own epoch (what Kafka's `Partition` asks its metadata cache).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Brokers {
    pub(crate) local_broker_epoch: i64,
    pub(crate) alive: BTreeMap<i32, AliveBroker>,
}

impl Brokers {
    pub(crate) fn unknown() -> Brokers {
        Brokers {
            local_broker_epoch: -1,
            alive: BTreeMap::new(),
        }
    }

    /// Kafka's `isReplicaIsrEligible`: unfenced, not shutting down, and fetching
    /// with its current broker epoch (or -1).
    pub(crate) fn is_isr_eligible(&self, replica: i32, follower: &FollowerState) -> bool {
        let Some(broker) = self.alive.get(&replica) else {
            return false;
        };
        !broker.in_controlled_shutdown
            && follower
                .broker_epoch
                .is_some_and(|epoch| epoch == -1 || epoch == broker.broker_epoch)
    }

    /// A fetch from an incarnation older than the registered one (Kafka's
    /// "Received stale fetch state update").
    pub(crate) fn is_stale_fetch(&self, replica: i32, broker_epoch: i64) -> bool {
        broker_epoch != -1
            && self
                .alive
                .get(&replica)
                .is_some_and(|broker| broker.broker_epoch > broker_epoch)
    }
}
