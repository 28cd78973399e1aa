//! Committed offsets and the administrative side of groups: OffsetCommit,
//! OffsetFetch, ListGroups, DescribeGroups, DeleteGroups, OffsetDelete, loading
//! `__consumer_offsets` at start-up and offset retention.
//!
//! An offset commit is written to `__consumer_offsets` first and enters the cache
//! only once the write succeeded, so what OffsetFetch answers survives a restart.
//! Operations that write answer through a callback once the write is done.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use protocol::kafka::messages::ConsumerProtocolSubscription;
use protocol::kafka::protocol::Decodable;

use super::coordinator::{CommitCallback, GroupCoordinator, PerItem};
use super::records::{DecodeError, OffsetsKey, StoredGroup, StoredOffset};
use super::state::{CommittedOffset, Group, GroupState, Member};
use crate::error::{GroupError, WriteError};

/// One partition of an OffsetCommit.
#[derive(Debug, Clone)]
pub struct OffsetCommitEntry {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// One entry of `__consumer_offsets` as start-up replays it.
#[derive(Debug, Clone)]
pub enum LoadEntry {
    /// A record; `producer_id` is set when it belongs to a transaction.
    Record {
        key: Bytes,
        value: Option<Bytes>,
        producer_id: Option<i64>,
    },
    /// A transaction marker.
    Marker { producer_id: i64, commit: bool },
}

/// What DescribeGroups reports of a group.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A listed group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// Every partition accepted for writing gets the write's error instead.
fn with_append_error(errors: PerItem, append_error: WriteError) -> PerItem {
    let error = GroupError::OffsetsNotWritten(append_error);
    errors.into_iter().map(|e| e.and(Err(error))).collect()
}

impl GroupCoordinator {
    /// OffsetCommit: `respond` gets per-partition errors, in the order given, once
    /// the offsets are written (or at once when refused).
    pub fn commit_offsets(
        &mut self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        entries: &[OffsetCommitEntry],
        respond: CommitCallback,
    ) {
        let now = self.clock.now_ms();
        let all = |error: GroupError| vec![Err(error); entries.len()];
        if group_id.is_empty() {
            return respond(all(GroupError::InvalidGroupId));
        }
        let group_error = match self.groups.get(group_id) {
            None if generation_id < 0 => None,
            None => Some(GroupError::IllegalGeneration),
            Some(group) => {
                if group.is(GroupState::Dead) {
                    Some(GroupError::CoordinatorNotAvailable)
                } else if group.is_static_member_fenced(member_id, group_instance_id) {
                    Some(GroupError::FencedInstanceId)
                } else if generation_id < 0 && group.is(GroupState::Empty) {
                    None
                } else if !group.has_member(member_id) {
                    Some(GroupError::UnknownMemberId)
                } else if generation_id != group.generation_id {
                    Some(GroupError::IllegalGeneration)
                } else if group.is(GroupState::CompletingRebalance) {
                    // A member of the new generation that has not synced yet (Kafka's
                    // order: fencing first, so a stale member learns it is stale).
                    Some(GroupError::RebalanceInProgress)
                } else {
                    None
                }
            }
        };
        if let Some(error) = group_error {
            tracing::trace!(group = group_id, member = member_id, generation = generation_id, %error, "offset commit refused");
            return respond(all(error));
        }
        let group = self
            .groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id, now));
        if let Some(member) = group.members.get_mut(member_id) {
            // A commit shows the member is alive.
            member.session_deadline_ms = now + i64::from(member.session_timeout_ms);
        }
        let mut errors = Vec::with_capacity(entries.len());
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        for entry in entries {
            let metadata = entry.metadata.clone().unwrap_or_default();
            if metadata.len() > self.config.offset_metadata_max_bytes {
                errors.push(Err(GroupError::OffsetMetadataTooLarge));
                continue;
            }
            let value = StoredOffset {
                offset: entry.offset,
                leader_epoch: entry.leader_epoch,
                metadata: metadata.clone(),
                commit_timestamp_ms: now,
            };
            let key = OffsetsKey::Offset {
                group: group_id.to_string(),
                topic: entry.topic.clone(),
                partition: entry.partition,
            };
            records.push((key.encode(), Some(value.encode())));
            accepted.push((
                (entry.topic.clone(), entry.partition),
                CommittedOffset {
                    offset: entry.offset,
                    leader_epoch: entry.leader_epoch,
                    metadata,
                    commit_timestamp_ms: now,
                },
            ));
            errors.push(Ok(()));
        }
        if records.is_empty() {
            return respond(errors);
        }
        let partition = self.partition_for(group_id);
        let id = group_id.to_string();
        self.write(partition, records, None, move |c, written| {
            if let Err(append_error) = written {
                return respond(with_append_error(errors, append_error));
            }
            let now = c.clock.now_ms();
            let group = c
                .groups
                .entry(id.clone())
                .or_insert_with(|| Group::new(&id, now));
            for (key, committed) in accepted {
                tracing::trace!(group = %id, topic = %key.0, partition = key.1, offset = committed.offset, "offset committed");
                group.offsets.insert(key, committed);
            }
            respond(errors);
        });
    }

    /// TxnOffsetCommit: offsets committed inside `producer_id`'s transaction. They
    /// become visible when the transaction commits ([`GroupCoordinator::complete_transaction`]).
    #[allow(clippy::too_many_arguments)]
    pub fn txn_commit_offsets(
        &mut self,
        group_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        entries: &[OffsetCommitEntry],
        respond: CommitCallback,
    ) {
        let now = self.clock.now_ms();
        let all = |error: GroupError| vec![Err(error); entries.len()];
        if group_id.is_empty() {
            return respond(all(GroupError::InvalidGroupId));
        }
        if let Some(group) = self.groups.get(group_id) {
            let refused = if group.is(GroupState::Dead) {
                Some(GroupError::CoordinatorNotAvailable)
            } else if group.is_static_member_fenced(member_id, group_instance_id) {
                Some(GroupError::FencedInstanceId)
            } else if !member_id.is_empty() && !group.has_member(member_id) {
                // Membership is checked when the producer says who it is (KIP-447).
                Some(GroupError::UnknownMemberId)
            } else if generation_id >= 0 && generation_id != group.generation_id {
                Some(GroupError::IllegalGeneration)
            } else {
                None
            };
            if let Some(error) = refused {
                return respond(all(error));
            }
        }
        let mut errors = Vec::with_capacity(entries.len());
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        for entry in entries {
            let metadata = entry.metadata.clone().unwrap_or_default();
            if metadata.len() > self.config.offset_metadata_max_bytes {
                errors.push(Err(GroupError::OffsetMetadataTooLarge));
                continue;
            }
            let value = StoredOffset {
                offset: entry.offset,
                leader_epoch: entry.leader_epoch,
                metadata: metadata.clone(),
                commit_timestamp_ms: now,
            };
            let key = OffsetsKey::Offset {
                group: group_id.to_string(),
                topic: entry.topic.clone(),
                partition: entry.partition,
            };
            records.push((key.encode(), Some(value.encode())));
            accepted.push((
                (entry.topic.clone(), entry.partition),
                CommittedOffset {
                    offset: entry.offset,
                    leader_epoch: entry.leader_epoch,
                    metadata,
                    commit_timestamp_ms: now,
                },
            ));
            errors.push(Ok(()));
        }
        if records.is_empty() {
            return respond(errors);
        }
        let partition = self.partition_for(group_id);
        let id = group_id.to_string();
        let producer = Some((producer_id, producer_epoch));
        self.write(partition, records, producer, move |c, written| {
            if let Err(append_error) = written {
                return respond(with_append_error(errors, append_error));
            }
            let now = c.clock.now_ms();
            let group = c
                .groups
                .entry(id.clone())
                .or_insert_with(|| Group::new(&id, now));
            group
                .pending_txn_offsets
                .entry(producer_id)
                .or_default()
                .extend(accepted);
            respond(errors);
        });
    }

    /// A COMMIT or ABORT marker for `producer_id` was written to `__consumer_offsets`
    /// partition `partition`: its pending offsets there are applied or dropped.
    pub fn complete_transaction(&mut self, partition: i32, producer_id: i64, commit: bool) {
        let partitions = self.config.offsets_partitions;
        for group in self.groups.values_mut() {
            if super::records::partition_for(&group.group_id, partitions) != partition {
                continue;
            }
            if let Some(pending) = group.pending_txn_offsets.remove(&producer_id) {
                if commit {
                    group.offsets.extend(pending);
                }
            }
        }
    }

    /// Whether a transaction still holds uncommitted offsets for the partition
    /// (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT then).
    pub fn has_pending_transactional_offset(
        &self,
        group_id: &str,
        topic: &str,
        partition: i32,
    ) -> bool {
        self.groups.get(group_id).is_some_and(|g| {
            g.pending_txn_offsets
                .values()
                .any(|p| p.contains_key(&(topic.to_string(), partition)))
        })
    }

    /// OffsetFetch: committed offsets of `partitions`, or of every partition when
    /// `None`. Unknown groups and partitions answer offset -1 without error.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Vec<(String, i32, Option<CommittedOffset>)> {
        let group = self.groups.get(group_id);
        if tracing::enabled!(tracing::Level::TRACE) {
            let found: Vec<(i32, i64)> = partitions
                .unwrap_or_default()
                .iter()
                .map(|(t, p)| {
                    (
                        *p,
                        group
                            .and_then(|g| g.offsets.get(&(t.clone(), *p)))
                            .map_or(-1, |c| c.offset),
                    )
                })
                .collect();
            tracing::trace!(group = group_id, ?found, "offsets fetched");
        }
        match partitions {
            Some(partitions) => partitions
                .iter()
                .map(|(topic, partition)| {
                    let committed = group
                        .and_then(|g| g.offsets.get(&(topic.clone(), *partition)))
                        .cloned();
                    (topic.clone(), *partition, committed)
                })
                .collect(),
            None => group
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|((t, p), c)| (t.clone(), *p, Some(c.clone())))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// ListGroups, optionally filtered by state names (case-insensitive).
    pub fn list_groups(&self, states: &[String]) -> Vec<GroupListing> {
        let wanted: Vec<GroupState> = states.iter().filter_map(|s| GroupState::parse(s)).collect();
        self.groups
            .values()
            .filter(|g| !g.is(GroupState::Dead))
            .filter(|g| states.is_empty() || wanted.contains(&g.state))
            .map(|g| GroupListing {
                group_id: g.group_id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .collect()
    }

    /// DescribeGroups for one group. Member metadata and assignments are shown only
    /// for a Stable group, as Kafka does.
    pub fn describe_group(&self, group_id: &str) -> GroupDescription {
        let Some(group) = self.groups.get(group_id) else {
            return GroupDescription {
                group_id: group_id.to_string(),
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            };
        };
        let stable = group.is(GroupState::Stable);
        let protocol = group.protocol_name.clone().unwrap_or_default();
        let members = group
            .members
            .values()
            .map(|m| MemberDescription {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: if stable {
                    m.metadata_for(&protocol).cloned().unwrap_or_default()
                } else {
                    Bytes::new()
                },
                assignment: if stable {
                    m.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect();
        GroupDescription {
            group_id: group_id.to_string(),
            state: group.state,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol: if stable { protocol } else { String::new() },
            members,
        }
    }

    /// DeleteGroups for one group: only an empty group can be deleted. It is Dead
    /// while its tombstones are written, then gone; `respond` gets the outcome.
    pub fn delete_group(
        &mut self,
        group_id: &str,
        respond: Box<dyn FnOnce(Result<(), GroupError>) + Send>,
    ) {
        let Some(group) = self.groups.get(group_id) else {
            return respond(Err(GroupError::GroupIdNotFound));
        };
        match group.state {
            GroupState::Dead => return respond(Err(GroupError::GroupIdNotFound)),
            GroupState::Empty => {}
            _ => return respond(Err(GroupError::NonEmptyGroup)),
        }
        let mut records: Vec<(Bytes, Option<Bytes>)> = group
            .offsets
            .keys()
            .map(|(topic, partition)| {
                (
                    OffsetsKey::Offset {
                        group: group_id.to_string(),
                        topic: topic.clone(),
                        partition: *partition,
                    }
                    .encode(),
                    None,
                )
            })
            .collect();
        records.push((
            OffsetsKey::Group {
                group: group_id.to_string(),
            }
            .encode(),
            None,
        ));
        let now = self.clock.now_ms();
        self.groups
            .get_mut(group_id)
            .expect("group exists")
            .transition_to(GroupState::Dead, now);
        let partition = self.partition_for(group_id);
        let id = group_id.to_string();
        self.write(partition, records, None, move |c, written| match written {
            Ok(()) => {
                c.groups.remove(&id);
                respond(Ok(()))
            }
            Err(e) => {
                // Not deleted after all: the group is as it was.
                if let Some(group) = c.groups.get_mut(&id) {
                    group.state = GroupState::Empty;
                }
                respond(Err(GroupError::OffsetsNotWritten(e)))
            }
        });
    }

    /// OffsetDelete: removes committed offsets the group is not consuming;
    /// `respond` gets per-partition errors, or the group's error.
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[(String, i32)],
        respond: Box<dyn FnOnce(Result<PerItem, GroupError>) + Send>,
    ) {
        let Some(group) = self.groups.get(group_id) else {
            return respond(Err(GroupError::GroupIdNotFound));
        };
        if group.is(GroupState::Dead) {
            return respond(Err(GroupError::GroupIdNotFound));
        }
        let subscribed: BTreeSet<String> = if group.is(GroupState::Empty) {
            BTreeSet::new()
        } else if group.protocol_type.as_deref() == Some("consumer") {
            subscribed_topics(group)
        } else {
            return respond(Err(GroupError::NonEmptyGroup));
        };
        let mut errors = Vec::with_capacity(partitions.len());
        let mut records = Vec::new();
        let mut doomed = Vec::new();
        for (topic, partition) in partitions {
            if subscribed.contains(topic) {
                errors.push(Err(GroupError::GroupSubscribedToTopic));
                continue;
            }
            if group.offsets.contains_key(&(topic.clone(), *partition)) {
                records.push((
                    OffsetsKey::Offset {
                        group: group_id.to_string(),
                        topic: topic.clone(),
                        partition: *partition,
                    }
                    .encode(),
                    None,
                ));
                doomed.push((topic.clone(), *partition));
            }
            errors.push(Ok(()));
        }
        if records.is_empty() {
            return respond(Ok(errors));
        }
        let partition = self.partition_for(group_id);
        let id = group_id.to_string();
        self.write(partition, records, None, move |c, written| {
            if let Err(e) = written {
                return respond(Err(GroupError::OffsetsNotWritten(e)));
            }
            if let Some(group) = c.groups.get_mut(&id) {
                for key in doomed {
                    group.offsets.remove(&key);
                }
            }
            respond(Ok(errors))
        });
    }

    /// Rebuilds the cache from one `__consumer_offsets` partition's records, in
    /// log order: `(key, value or tombstone)`. Groups with members come back Stable
    /// (their members must heartbeat within a session), as in Kafka.
    pub fn load(
        &mut self,
        records: impl IntoIterator<Item = (Bytes, Option<Bytes>)>,
    ) -> Result<(), DecodeError> {
        self.load_entries(records.into_iter().map(|(key, value)| LoadEntry::Record {
            key,
            value,
            producer_id: None,
        }))
    }

    /// Like [`GroupCoordinator::load`], with transactions: records of a
    /// transactional batch count once their COMMIT marker is seen; those of a
    /// transaction still open become pending transactional offsets.
    pub fn load_entries(
        &mut self,
        entries: impl IntoIterator<Item = LoadEntry>,
    ) -> Result<(), DecodeError> {
        let mut applied: Vec<(Bytes, Option<Bytes>)> = Vec::new();
        let mut open: BTreeMap<i64, Vec<(Bytes, Option<Bytes>)>> = BTreeMap::new();
        for entry in entries {
            match entry {
                LoadEntry::Record {
                    key,
                    value,
                    producer_id: None,
                } => applied.push((key, value)),
                LoadEntry::Record {
                    key,
                    value,
                    producer_id: Some(pid),
                } => open.entry(pid).or_default().push((key, value)),
                LoadEntry::Marker {
                    producer_id,
                    commit,
                } => {
                    if let Some(records) = open.remove(&producer_id) {
                        if commit {
                            applied.extend(records);
                        }
                    }
                }
            }
        }
        self.load_applied(applied)?;
        let now = self.clock.now_ms();
        for (pid, records) in open {
            for (key, value) in records {
                let Some(OffsetsKey::Offset {
                    group,
                    topic,
                    partition,
                }) = readable(OffsetsKey::decode(key))
                else {
                    continue;
                };
                let Some(stored) = value.and_then(|v| readable(StoredOffset::decode(v))) else {
                    continue;
                };
                let committed = CommittedOffset {
                    offset: stored.offset,
                    leader_epoch: stored.leader_epoch,
                    metadata: stored.metadata,
                    commit_timestamp_ms: stored.commit_timestamp_ms,
                };
                let group = self
                    .groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(&group, now));
                group
                    .pending_txn_offsets
                    .entry(pid)
                    .or_default()
                    .insert((topic, partition), committed);
            }
        }
        Ok(())
    }

    fn load_applied(&mut self, records: Vec<(Bytes, Option<Bytes>)>) -> Result<(), DecodeError> {
        let now = self.clock.now_ms();
        let mut offsets: BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>> =
            BTreeMap::new();
        let mut groups: BTreeMap<String, Option<StoredGroup>> = BTreeMap::new();
        for (key, value) in records {
            // A record that cannot be decoded is reported and skipped; the other
            // groups' state (and this group's other records) still loads.
            let Some(key) = readable(OffsetsKey::decode(key)) else {
                continue;
            };
            match key {
                OffsetsKey::Offset {
                    group,
                    topic,
                    partition,
                } => {
                    let entry = offsets.entry(group).or_default();
                    match value {
                        Some(value) => {
                            let Some(stored) = readable(StoredOffset::decode(value)) else {
                                continue;
                            };
                            entry.insert(
                                (topic, partition),
                                CommittedOffset {
                                    offset: stored.offset,
                                    leader_epoch: stored.leader_epoch,
                                    metadata: stored.metadata,
                                    commit_timestamp_ms: stored.commit_timestamp_ms,
                                },
                            );
                        }
                        None => {
                            entry.remove(&(topic, partition));
                        }
                    }
                }
                OffsetsKey::Group { group } => {
                    let stored = match value.map(StoredGroup::decode).transpose() {
                        Ok(stored) => stored,
                        Err(e) => {
                            tracing::error!(%group, error = %e, "skipping an unreadable group metadata record of __consumer_offsets");
                            continue;
                        }
                    };
                    if stored.is_none() {
                        // A deleted group: its offsets were tombstoned too.
                        offsets.remove(&group);
                    }
                    groups.insert(group, stored);
                }
            }
        }
        let ids: BTreeSet<String> = offsets.keys().chain(groups.keys()).cloned().collect();
        for group_id in ids {
            let stored = groups.remove(&group_id).flatten();
            let group_offsets = offsets.remove(&group_id).unwrap_or_default();
            if stored.is_none() && group_offsets.is_empty() {
                continue;
            }
            let mut group = Group::new(&group_id, now);
            group.offsets = group_offsets;
            if let Some(stored) = stored {
                group.generation_id = stored.generation_id;
                group.protocol_type =
                    (!stored.protocol_type.is_empty()).then_some(stored.protocol_type);
                group.protocol_name = stored.protocol.clone();
                group.leader_id = stored.leader;
                group.state_since_ms = if stored.current_state_timestamp_ms > 0 {
                    stored.current_state_timestamp_ms
                } else {
                    now
                };
                for m in stored.members {
                    if let Some(instance) = &m.group_instance_id {
                        group
                            .static_members
                            .insert(instance.clone(), m.member_id.clone());
                    }
                    let protocols = stored
                        .protocol
                        .clone()
                        .map(|p| vec![(p, m.subscription.clone())])
                        .unwrap_or_default();
                    group.members.insert(
                        m.member_id.clone(),
                        Member {
                            member_id: m.member_id,
                            group_instance_id: m.group_instance_id,
                            client_id: m.client_id,
                            client_host: m.client_host,
                            session_timeout_ms: m.session_timeout_ms,
                            rebalance_timeout_ms: m.rebalance_timeout_ms,
                            protocol_type: group.protocol_type.clone().unwrap_or_default(),
                            protocols,
                            assignment: m.assignment,
                            session_deadline_ms: now + i64::from(m.session_timeout_ms),
                            awaiting_join: false,
                            awaiting_sync: false,
                            is_new: false,
                        },
                    );
                }
                if !group.members.is_empty() {
                    group.state = GroupState::Stable;
                }
                if group
                    .leader_id
                    .as_ref()
                    .is_some_and(|l| !group.members.contains_key(l))
                {
                    group.leader_id = group.members.keys().next().cloned();
                }
            }
            self.groups.insert(group_id, group);
        }
        Ok(())
    }

    /// Expires offsets past `offsets.retention.minutes`, as Kafka does (KIP-211):
    /// for a group that has been empty that long, all its offsets; for a group that
    /// never used the group protocol (standalone commits), each offset by its commit
    /// time; for a Stable consumer group, the offsets of topics no member subscribes
    /// to any more, by their commit time (when every member's subscription can be
    /// read; otherwise none). An empty group with no offsets left is removed.
    pub(crate) fn expire_offsets(&mut self, now: i64) {
        let retention = self.config.offsets_retention_ms;
        let group_ids: Vec<String> = self.groups.keys().cloned().collect();
        for group_id in group_ids {
            let group = &self.groups[&group_id];
            if group.is(GroupState::Stable) && group.protocol_type.as_deref() == Some("consumer") {
                let Some(subscribed) = all_subscriptions(group) else {
                    continue;
                };
                let expired: Vec<(String, i32)> = group
                    .offsets
                    .iter()
                    .filter(|((topic, _), c)| {
                        !subscribed.contains(topic) && now - c.commit_timestamp_ms >= retention
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                self.remove_expired(&group_id, expired, false);
                continue;
            }
            if !group.is(GroupState::Empty) {
                continue;
            }
            let expired: Vec<(String, i32)> = if group.protocol_type.is_none() {
                group
                    .offsets
                    .iter()
                    .filter(|(_, c)| now - c.commit_timestamp_ms >= retention)
                    .map(|(k, _)| k.clone())
                    .collect()
            } else if now - group.state_since_ms >= retention {
                group.offsets.keys().cloned().collect()
            } else {
                Vec::new()
            };
            let remove_group = expired.len() == group.offsets.len();
            self.remove_expired(&group_id, expired, remove_group);
        }
    }

    /// Writes tombstones for expired offsets (and the group, when `remove_group`),
    /// then forgets them.
    fn remove_expired(&mut self, group_id: &str, expired: Vec<(String, i32)>, remove_group: bool) {
        let group_id = group_id.to_string();
        if expired.is_empty() && !remove_group {
            return;
        }
        let mut records: Vec<(Bytes, Option<Bytes>)> = expired
            .iter()
            .map(|(topic, partition)| {
                (
                    OffsetsKey::Offset {
                        group: group_id.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                    }
                    .encode(),
                    None,
                )
            })
            .collect();
        if remove_group {
            records.push((
                OffsetsKey::Group {
                    group: group_id.clone(),
                }
                .encode(),
                None,
            ));
        }
        let partition = self.partition_for(&group_id);
        self.write(partition, records, None, move |c, written| {
            if let Err(e) = written {
                tracing::warn!(group = %group_id, error = %e, "expiring offsets failed; will retry");
                return;
            }
            tracing::info!(group = %group_id, expired = expired.len(), removed = remove_group, "expired committed offsets");
            let Some(group) = c.groups.get_mut(&group_id) else {
                return;
            };
            for key in &expired {
                group.offsets.remove(key);
            }
            // A member may have joined while the tombstones were written.
            if remove_group && group.is(GroupState::Empty) && group.offsets.is_empty() {
                c.groups.remove(&group_id);
            }
        });
    }
}

/// Every topic the members subscribe to, or `None` when a member's subscription
/// cannot be read (then nothing may be expired as unsubscribed, as in Kafka, whose
/// `subscribedTopics` is then undefined).
fn all_subscriptions(group: &Group) -> Option<BTreeSet<String>> {
    let protocol = group.protocol_name.clone()?;
    let mut topics = BTreeSet::new();
    for member in group.members.values() {
        let mut bytes = member.metadata_for(&protocol)?.clone();
        if bytes.len() < 2 {
            return None;
        }
        let version = bytes::Buf::get_i16(&mut bytes);
        let subscription =
            ConsumerProtocolSubscription::decode(&mut bytes, version.clamp(0, 3)).ok()?;
        topics.extend(subscription.topics.iter().map(|t| t.to_string()));
    }
    Some(topics)
}

/// Topics the members of a consumer-protocol group subscribe to, read from their
/// subscription metadata (ConsumerProtocolSubscription).
fn subscribed_topics(group: &Group) -> BTreeSet<String> {
    let mut topics = BTreeSet::new();
    let protocol = group.protocol_name.clone().unwrap_or_default();
    for member in group.members.values() {
        let Some(metadata) = member.metadata_for(&protocol) else {
            continue;
        };
        let mut bytes = metadata.clone();
        if bytes.len() < 2 {
            continue;
        }
        let version = i16::from_be_bytes([bytes[0], bytes[1]]);
        let _ = bytes::Buf::get_i16(&mut bytes);
        if let Ok(subscription) =
            ConsumerProtocolSubscription::decode(&mut bytes, version.clamp(0, 3))
        {
            topics.extend(subscription.topics.iter().map(|t| t.to_string()));
        }
    }
    topics
}

/// A decoded record, or `None` with the error reported: loading skips records it
/// cannot read instead of losing every group of the partition.
fn readable<T>(decoded: Result<T, DecodeError>) -> Option<T> {
    match decoded {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::error!(error = %e, "skipping an unreadable __consumer_offsets record while loading");
            None
        }
    }
}
