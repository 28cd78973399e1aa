//! SyncGroup: the leader's assignment is stored in `__consumer_offsets`, then
//! every member gets its part and the group is Stable (step 3 of the protocol in
//! `coordinator.rs`).

use std::collections::BTreeMap;

use bytes::Bytes;

use super::coordinator::{GroupCoordinator, SyncCallback, SyncParams, SyncResult};
use super::records::{OffsetsKey, StoredGroup, StoredMember};
use super::state::GroupState;
use crate::error::{GroupError, WriteError};

impl GroupCoordinator {
    pub fn sync(&mut self, params: SyncParams, respond: SyncCallback) {
        let now = self.now();
        let Some(group) = self.groups.get_mut(&params.group_id) else {
            return respond(SyncResult::error(GroupError::UnknownMemberId));
        };
        if group.is(GroupState::Dead) {
            return respond(SyncResult::error(GroupError::CoordinatorNotAvailable));
        }
        if group.is_static_member_fenced(&params.member_id, params.group_instance_id.as_deref()) {
            return respond(SyncResult::error(GroupError::FencedInstanceId));
        }
        if !group.has_member(&params.member_id) {
            return respond(SyncResult::error(GroupError::UnknownMemberId));
        }
        if params.generation_id != group.generation_id {
            return respond(SyncResult::error(GroupError::IllegalGeneration));
        }
        let type_mismatch = params
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != group.protocol_type.as_ref());
        let name_mismatch = params
            .protocol_name
            .as_ref()
            .is_some_and(|n| Some(n) != group.protocol_name.as_ref());
        if type_mismatch || name_mismatch {
            return respond(SyncResult::error(GroupError::InconsistentGroupProtocol));
        }
        match group.state {
            GroupState::Empty => respond(SyncResult::error(GroupError::UnknownMemberId)),
            GroupState::PreparingRebalance => {
                respond(SyncResult::error(GroupError::RebalanceInProgress))
            }
            GroupState::Dead => respond(SyncResult::error(GroupError::CoordinatorNotAvailable)),
            GroupState::Stable => {
                let member = group.members.get_mut(&params.member_id).expect("checked");
                member.session_deadline_ms = now + i64::from(member.session_timeout_ms);
                group.pending_sync.remove(&params.member_id);
                let result = SyncResult {
                    error: None,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    assignment: group.members[&params.member_id].assignment.clone(),
                };
                respond(result);
            }
            GroupState::CompletingRebalance => {
                let member = group.members.get_mut(&params.member_id).expect("checked");
                member.awaiting_sync = true;
                member.session_deadline_ms = now + i64::from(member.session_timeout_ms);
                group.pending_sync.remove(&params.member_id);
                let group_id = params.group_id.clone();
                self.sync_waiters
                    .insert((group_id.clone(), params.member_id.clone()), respond);
                if self.groups[&group_id].leader_id.as_deref() == Some(params.member_id.as_str()) {
                    self.complete_sync(&group_id, params.assignments);
                }
            }
        }
    }

    /// The leader's assignment arrived: persist it, then hand each member its part.
    fn complete_sync(&mut self, group_id: &str, assignments: Vec<(String, Bytes)>) {
        let group = self.groups.get_mut(group_id).expect("group exists");
        let by_member: BTreeMap<String, Bytes> = assignments.into_iter().collect();
        for member in group.members.values_mut() {
            // Members the leader left out get an empty assignment, as in Kafka.
            member.assignment = by_member
                .get(&member.member_id)
                .cloned()
                .unwrap_or_default();
        }
        let generation = group.generation_id;
        let id = group_id.to_string();
        self.store_group(group_id, move |c, stored| {
            c.assignment_stored(&id, generation, stored)
        });
    }

    /// The leader's assignment is stored (or not): the group becomes Stable and
    /// every member waiting in SyncGroup gets its part. A group that moved on while
    /// the record was written (a rebalance, a newer sync) is left alone, as Kafka's
    /// `storeGroup` callback does.
    fn assignment_stored(
        &mut self,
        group_id: &str,
        generation: i32,
        stored: Result<(), WriteError>,
    ) {
        let now = self.now();
        let Some(group) = self.groups.get(group_id) else {
            return;
        };
        if !group.is(GroupState::CompletingRebalance) || group.generation_id != generation {
            return;
        }
        if let Err(error) = stored {
            tracing::warn!(group = group_id, error = %error, "storing the group assignment failed; rebalancing");
            let group = self.groups.get_mut(group_id).expect("group exists");
            for member in group.members.values_mut() {
                member.assignment = Bytes::new();
            }
            let waiting: Vec<_> = self
                .sync_waiters
                .keys()
                .filter(|(g, _)| g == group_id)
                .cloned()
                .collect();
            for key in waiting {
                if let Some(respond) = self.sync_waiters.remove(&key) {
                    respond(SyncResult::error(GroupError::Write(error)));
                }
            }
            self.prepare_rebalance(group_id, "the assignment could not be stored");
            return;
        }
        let group = self.groups.get_mut(group_id).expect("group exists");
        group.transition_to(GroupState::Stable, now);
        group.sync_deadline_ms = if group.pending_sync.is_empty() {
            None
        } else {
            group.sync_deadline_ms
        };
        let protocol_type = group.protocol_type.clone();
        let protocol_name = group.protocol_name.clone();
        let answers: Vec<(String, Bytes)> = group
            .members
            .values_mut()
            .filter(|m| m.awaiting_sync)
            .map(|m| {
                m.awaiting_sync = false;
                (m.member_id.clone(), m.assignment.clone())
            })
            .collect();
        tracing::debug!(
            group = group_id,
            generation = group.generation_id,
            "group is stable"
        );
        for (member_id, assignment) in answers {
            if let Some(respond) = self.sync_waiters.remove(&(group_id.to_string(), member_id)) {
                respond(SyncResult {
                    error: None,
                    protocol_type: protocol_type.clone(),
                    protocol_name: protocol_name.clone(),
                    assignment,
                });
            }
        }
    }

    /// Queues the group's metadata record (generation, protocol, members,
    /// assignments) for `__consumer_offsets`; `then` runs once it is written.
    pub(crate) fn store_group(
        &mut self,
        group_id: &str,
        then: impl FnOnce(&mut GroupCoordinator, Result<(), WriteError>) + Send + 'static,
    ) {
        let group = &self.groups[group_id];
        let protocol = group.protocol_name.clone();
        let stored = StoredGroup {
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            generation_id: group.generation_id,
            protocol: protocol.clone(),
            leader: group.leader_id.clone(),
            current_state_timestamp_ms: group.state_since_ms,
            members: group
                .members
                .values()
                .map(|m| StoredMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: protocol
                        .as_deref()
                        .and_then(|p| m.metadata_for(p))
                        .cloned()
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        };
        let key = OffsetsKey::Group {
            group: group_id.to_string(),
        }
        .encode();
        let partition = self.partition_for(group_id);
        self.write(partition, vec![(key, Some(stored.encode()))], None, then);
    }
}
