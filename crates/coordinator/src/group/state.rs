//! One consumer group (classic protocol) and its members.
//!
//! States and the transitions Kafka allows:
//! ```text
//! Empty ──join──> PreparingRebalance ──all joined / timeout──> CompletingRebalance
//!   ^                 ^      │                                       │ leader's sync
//!   │                 │      └── nobody left ──> Empty               v
//!   └── last member leaves / expires ─┴──── join, leave, expiry ── Stable
//! any ──delete / offsets expired──> Dead
//! ```
//! The generation id grows by one each time a rebalance completes. Only members of
//! the current generation may sync, heartbeat or commit.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::pending::PendingMembers;

/// Kafka's group states, with Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// Parses a state name as ListGroups filters give it (case-insensitive).
    pub fn parse(name: &str) -> Option<GroupState> {
        [
            GroupState::Empty,
            GroupState::PreparingRebalance,
            GroupState::CompletingRebalance,
            GroupState::Stable,
            GroupState::Dead,
        ]
        .into_iter()
        .find(|s| s.name().eq_ignore_ascii_case(name))
    }

    /// The transitions Kafka's `GroupMetadata.transitionTo` accepts.
    fn may_follow(self, previous: GroupState) -> bool {
        use GroupState::*;
        match self {
            Empty => matches!(previous, PreparingRebalance),
            PreparingRebalance => matches!(previous, Empty | Stable | CompletingRebalance),
            CompletingRebalance => matches!(previous, PreparingRebalance),
            Stable => matches!(previous, CompletingRebalance),
            Dead => true,
        }
    }
}

/// A member of a group.
#[derive(Debug, Clone)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// `(protocol name, metadata)` in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    /// When the session expires unless a heartbeat (or join/sync) arrives.
    pub session_deadline_ms: i64,
    /// Joined the current rebalance (its join is waiting for the answer).
    pub awaiting_join: bool,
    /// Sent SyncGroup and waits for the leader's assignment.
    pub awaiting_sync: bool,
    /// New members are given a longer first session (Kafka's `isNew`).
    pub is_new: bool,
}

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m)
    }

    pub fn protocol_names(&self) -> Vec<&str> {
        self.protocols.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Same protocols, same metadata, same order.
    pub fn same_protocols(&self, other: &[(String, Bytes)]) -> bool {
        self.protocols == other
    }

    /// Whether its session has run out (Kafka's `hasSatisfiedHeartbeat`, negated): a
    /// member waiting in a rebalance is alive, except a new member whose first join
    /// waited too long.
    pub fn session_expired(&self, now_ms: i64) -> bool {
        if self.awaiting_join {
            self.is_new && self.session_deadline_ms <= now_ms
        } else if self.awaiting_sync {
            false
        } else {
            self.session_deadline_ms <= now_ms
        }
    }
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub generation_id: i32,
    pub leader_id: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, waiting for the second join,
    /// and when they expire (bounded, indexed by deadline).
    pub pending_members: PendingMembers,
    /// `group.instance.id` to member id.
    pub static_members: BTreeMap<String, String>,
    /// Members of the new generation that have not yet sent SyncGroup.
    pub pending_sync: BTreeSet<String>,
    /// When the current rebalance gives up on members that have not rejoined.
    pub rebalance_deadline_ms: Option<i64>,
    /// For the first rebalance of an empty group: when the join phase may end
    /// (`group.initial.rebalance.delay.ms`, pushed back as members arrive).
    pub initial_delay_deadline_ms: Option<i64>,
    /// When the members of a new generation must have synced.
    pub sync_deadline_ms: Option<i64>,
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// Offsets committed inside open transactions, by producer id: applied by
    /// the COMMIT marker, dropped by ABORT.
    pub pending_txn_offsets: BTreeMap<i64, BTreeMap<(String, i32), CommittedOffset>>,
    pub state_since_ms: i64,
}

impl Group {
    pub fn new(group_id: &str, now_ms: i64) -> Group {
        Group {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            protocol_type: None,
            protocol_name: None,
            generation_id: 0,
            leader_id: None,
            members: BTreeMap::new(),
            pending_members: PendingMembers::default(),
            static_members: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            rebalance_deadline_ms: None,
            initial_delay_deadline_ms: None,
            sync_deadline_ms: None,
            offsets: BTreeMap::new(),
            pending_txn_offsets: BTreeMap::new(),
            state_since_ms: now_ms,
        }
    }

    /// Moves to `next`, asserting the transition is one Kafka allows.
    pub fn transition_to(&mut self, next: GroupState, now_ms: i64) {
        assert!(
            next.may_follow(self.state),
            "group {}: illegal transition {:?} -> {:?}",
            self.group_id,
            self.state,
            next
        );
        self.state = next;
        self.state_since_ms = now_ms;
    }

    pub fn is(&self, state: GroupState) -> bool {
        self.state == state
    }

    pub fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    /// A static member whose instance id now belongs to another member id.
    pub fn is_static_member_fenced(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> bool {
        match group_instance_id {
            Some(instance) => match self.static_members.get(instance) {
                Some(current) => current != member_id,
                None => false,
            },
            None => false,
        }
    }

    /// The protocols every member supports, in no particular order.
    pub fn candidate_protocols(&self) -> BTreeSet<String> {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return BTreeSet::new();
        };
        let mut common: BTreeSet<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for member in members {
            let names: BTreeSet<String> = member.protocols.iter().map(|(n, _)| n.clone()).collect();
            common = common.intersection(&names).cloned().collect();
        }
        common
    }

    /// Whether a member with `protocol_type` and `protocols` may join.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let candidates = self.candidate_protocols();
        protocols.iter().any(|(name, _)| candidates.contains(name))
    }

    /// Kafka's vote: each member votes for its most preferred protocol among those
    /// all members support; the most votes wins (ties: the smallest name).
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some((name, _)) = member
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(n))
            {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        votes
            .into_iter()
            .find(|(_, v)| *v == best)
            .map(|(n, _)| n.to_string())
    }

    /// Whether [`crate::GroupCoordinator::tick`] has anything to do for this group now:
    /// an expired pending member or session, the end of the join phase, or a sync
    /// deadline. Cheap and allocation-free, so ticks cost little for idle groups.
    pub fn timer_due(&self, now_ms: i64) -> bool {
        if self
            .pending_members
            .next_deadline_ms()
            .is_some_and(|deadline| deadline <= now_ms)
            || self.members.values().any(|m| m.session_expired(now_ms))
        {
            return true;
        }
        match self.state {
            GroupState::PreparingRebalance => match self.initial_delay_deadline_ms {
                Some(deadline) => deadline <= now_ms,
                None => {
                    self.rebalance_deadline_ms.is_some_and(|d| d <= now_ms)
                        || self.all_members_joined()
                }
            },
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.sync_deadline_ms.is_some_and(|d| d <= now_ms)
            }
            GroupState::Empty | GroupState::Dead => false,
        }
    }

    pub fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join)
    }

    /// The longest rebalance timeout among members: how long a rebalance waits.
    pub fn max_rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    pub fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let removed = self.members.remove(member_id)?;
        if let Some(instance) = &removed.group_instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        self.pending_sync.remove(member_id);
        if self.leader_id.as_deref() == Some(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
        Some(removed)
    }
}
