//! One partition's replication state as a sans-IO state machine: Kafka's
//! `Partition` (leader epoch, ISR, high watermark, follower progress) and its
//! `DelayedProduce` purgatory, without a log, a lock or a clock.
//!
//! Protocol summary (Kafka's ISR replication: KIP-101/279 truncation by leader
//! epoch, KIP-320 diverging epochs in Fetch, KIP-497 AlterPartition, KAFKA-15583):
//! - The leader appends produce requests; followers fetch from it and report how
//!   far they got with every fetch (their fetch offset is their log end offset).
//! - High watermark (HW, exclusive): the smallest log end offset (LEO) over the
//!   maximal ISR (the committed ISR plus a replica whose expansion is in flight),
//!   also waiting for a caught-up replica that is about to join. It only grows while
//!   this replica leads, and does not move at all while the committed ISR is smaller
//!   than the effective `min.insync.replicas` (that setting capped by the replica
//!   count).
//! - ISR shrink: a follower that has not caught up with the leader's LEO for
//!   `replica.lag.time.max.ms` leaves; ISR expand: a follower whose LEO reached the
//!   HW and the current leader epoch's start offset joins. Either is proposed to the
//!   controller ([`Command::AlterIsr`]) and only one proposal is in flight.
//! - acks=all: refused with NOT_ENOUGH_REPLICAS when the ISR is below the effective
//!   minimum at append; otherwise it waits until the HW passes its records, and is
//!   answered then (NOT_ENOUGH_REPLICAS_AFTER_APPEND if the maximal ISR is below the
//!   minimum by that time), at its deadline (REQUEST_TIMED_OUT), or when leadership
//!   moves (NOT_LEADER_OR_FOLLOWER).
//! - Follower: HW = the leader's HW capped by its own LEO; on a diverging epoch it
//!   truncates to where its log and the leader's agree.
//!
//! The shell (the broker) owns the log. It feeds an [`Input`] after each thing
//! that happened (an append done, a follower's fetch, time passing, new metadata)
//! and executes the [`Command`]s returned, in order. Queries (`check_append`,
//! `check_read`) answer from the state without changing it.
//!
//! Invariants, asserted after every input: `log_start_offset <= high_watermark
//! <= log_end_offset`; the committed ISR is a subset of the replicas; pending
//! acknowledgements exist only while leading.

use std::collections::BTreeMap;

use protocol::TopicPartition;

use crate::error::{AckError, ReplicationError};
pub use crate::events::{
    AckId, AliveBroker, Command, EpochEndOffset, Input, IsrChangeError, IsrMember, LogOffsets,
    PartitionMetadata, ReplicationConfig,
};
pub use crate::replica::FollowerState;
use crate::replica::{Brokers, IsrState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PendingAck {
    required_offset: i64,
    deadline_ms: i64,
}

/// A read-only snapshot of the machine, for describing and testing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    /// The committed ISR (empty on a follower, as Kafka keeps it).
    pub isr: Vec<i32>,
    /// The ISR proposed to the controller and not yet answered.
    pub pending_isr: Option<Vec<i32>>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub pending_acks: usize,
}

/// One partition's replication state on this broker.
#[derive(Debug, Clone)]
pub struct Partition {
    topic_partition: TopicPartition,
    local_id: i32,
    config: ReplicationConfig,
    leader: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: Vec<i32>,
    isr: IsrState,
    high_watermark: i64,
    log_start_offset: i64,
    log_end_offset: i64,
    /// Where the current leader epoch started, while leading.
    leader_epoch_start_offset: Option<i64>,
    /// Whether a `StartFollowing` is in force.
    following: bool,
    followers: BTreeMap<i32, FollowerState>,
    /// Who may join the ISR, and the broker epochs AlterPartition names.
    brokers: Brokers,
    pending_acks: BTreeMap<AckId, PendingAck>,
}

/// Collects one step's commands; `WakeFetches` goes last, once.
struct Out<'a> {
    commands: &'a mut Vec<Command>,
    wake: bool,
}

impl Out<'_> {
    fn push(&mut self, command: Command) {
        self.commands.push(command);
    }
}

impl Partition {
    /// A partition not yet told who leads (leader -1, epochs -1): feed
    /// [`Input::MetadataChanged`] next.
    pub fn new(
        topic_partition: TopicPartition,
        local_id: i32,
        config: ReplicationConfig,
        offsets: LogOffsets,
    ) -> Partition {
        assert!(
            offsets.log_start_offset <= offsets.log_end_offset,
            "{topic_partition}: log start {} after log end {}",
            offsets.log_start_offset,
            offsets.log_end_offset
        );
        Partition {
            topic_partition,
            local_id,
            config,
            leader: -1,
            leader_epoch: -1,
            partition_epoch: -1,
            replicas: Vec::new(),
            isr: IsrState::Committed(Vec::new()),
            high_watermark: offsets
                .high_watermark
                .clamp(offsets.log_start_offset, offsets.log_end_offset),
            log_start_offset: offsets.log_start_offset,
            log_end_offset: offsets.log_end_offset,
            leader_epoch_start_offset: None,
            following: false,
            followers: BTreeMap::new(),
            brokers: Brokers::unknown(),
            pending_acks: BTreeMap::new(),
        }
    }

    // ---- Queries ----

    pub fn topic_partition(&self) -> &TopicPartition {
        &self.topic_partition
    }

    pub fn is_leader(&self) -> bool {
        self.leader == self.local_id
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }

    pub fn config(&self) -> ReplicationConfig {
        self.config
    }

    pub fn follower(&self, replica_id: i32) -> Option<&FollowerState> {
        self.followers.get(&replica_id)
    }

    pub fn state(&self) -> PartitionState {
        PartitionState {
            leader: self.leader,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            replicas: self.replicas.clone(),
            isr: self.isr.committed().to_vec(),
            pending_isr: self
                .isr
                .proposed()
                .map(|members| members.iter().map(|m| m.broker_id).collect()),
            high_watermark: self.high_watermark,
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset,
            pending_acks: self.pending_acks.len(),
        }
    }

    /// `min.insync.replicas` capped by the replication factor (KAFKA-15583).
    fn effective_min_isr(&self) -> usize {
        let replicas = self.followers.len() + 1;
        (self.config.min_insync_replicas.max(1) as usize).min(replicas)
    }

    fn not_leader(&self) -> ReplicationError {
        ReplicationError::NotLeaderOrFollower(self.topic_partition.clone())
    }

    /// Whether a produce may append now, and the leader epoch to stamp on it.
    pub fn check_append(&self, required_acks: i16) -> Result<i32, ReplicationError> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        let isr = self.isr.committed().len();
        let min = self.effective_min_isr();
        if required_acks == -1 && isr < min {
            return Err(ReplicationError::NotEnoughReplicas {
                tp: self.topic_partition.clone(),
                isr,
                min: min as i32,
            });
        }
        Ok(self.leader_epoch)
    }

    /// Whether a client may read from this replica (it leads, and the request's
    /// leader epoch, when given, is the current one): the HW and leader epoch.
    pub fn check_read(
        &self,
        current_leader_epoch: Option<i32>,
    ) -> Result<(i64, i32), ReplicationError> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        self.check_leader_epoch(current_leader_epoch)?;
        Ok((self.high_watermark, self.leader_epoch))
    }

    /// Kafka's `checkCurrentLeaderEpoch`: a request's epoch (when it gives one)
    /// older than ours is fenced, a newer one is not known here yet.
    pub(crate) fn check_leader_epoch(
        &self,
        current_leader_epoch: Option<i32>,
    ) -> Result<(), ReplicationError> {
        match current_leader_epoch {
            Some(requested) if requested >= 0 && requested < self.leader_epoch => {
                Err(ReplicationError::FencedLeaderEpoch {
                    tp: self.topic_partition.clone(),
                    requested,
                    current: self.leader_epoch,
                })
            }
            Some(requested) if requested > self.leader_epoch => {
                Err(ReplicationError::UnknownLeaderEpoch {
                    tp: self.topic_partition.clone(),
                    requested,
                    current: self.leader_epoch,
                })
            }
            _ => Ok(()),
        }
    }

    /// Whether follower `replica_id` may fetch as a replica now (Kafka's
    /// `Partition.fetchRecords` checks, before the read): this replica leads at
    /// the request's leader epoch; the follower is one of the replicas (else
    /// UNKNOWN_LEADER_EPOCH when the request names an epoch, as a reassignment
    /// may have added it before we heard, or NOT_LEADER_OR_FOLLOWER); and its
    /// broker epoch is not older than its registration (a previous incarnation).
    pub fn check_follower_fetch(
        &self,
        replica_id: i32,
        broker_epoch: i64,
        current_leader_epoch: Option<i32>,
    ) -> Result<(), ReplicationError> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        self.check_leader_epoch(current_leader_epoch)?;
        if !self.followers.contains_key(&replica_id) {
            return match current_leader_epoch.filter(|epoch| *epoch >= 0) {
                Some(requested) => Err(ReplicationError::UnknownLeaderEpoch {
                    tp: self.topic_partition.clone(),
                    requested,
                    current: self.leader_epoch,
                }),
                None => Err(self.not_leader()),
            };
        }
        if self.brokers.is_stale_fetch(replica_id, broker_epoch) {
            return Err(self.not_leader());
        }
        Ok(())
    }

    /// The earliest deadline of a waiting acks=all produce: the shell feeds
    /// [`Input::Tick`] then (Kafka's purgatory timer), as well as every
    /// `replica.lag.time.max.ms / 2` for ISR shrinks.
    pub fn next_ack_deadline_ms(&self) -> Option<i64> {
        self.pending_acks.values().map(|ack| ack.deadline_ms).min()
    }

    /// The smallest log start offset over the replicas that have reported one
    /// (the "low watermark" DeleteRecords waits for), while leading.
    pub fn low_watermark(&self) -> Option<i64> {
        if !self.is_leader() {
            return None;
        }
        let followers = self
            .followers
            .values()
            .map(|f| f.log_start_offset)
            .filter(|start| *start >= 0);
        Some(followers.fold(self.log_start_offset, i64::min))
    }

    // ---- Inputs ----

    /// Feeds one input at `now_ms`; returns the commands to execute in order.
    pub fn handle(&mut self, now_ms: i64, input: Input) -> Vec<Command> {
        let mut commands = Vec::new();
        self.handle_into(now_ms, input, &mut commands);
        commands
    }

    /// Like [`Partition::handle`], appending to `commands` (reused by the shell).
    pub fn handle_into(&mut self, now_ms: i64, input: Input, commands: &mut Vec<Command>) {
        let mut out = Out {
            commands,
            wake: false,
        };
        match input {
            Input::Appended { log_end_offset } => {
                self.on_appended(now_ms, log_end_offset, &mut out)
            }
            Input::LogStartMoved { log_start_offset } => {
                self.on_log_start_moved(log_start_offset, &mut out)
            }
            Input::FollowerFetched {
                replica_id,
                broker_epoch,
                fetch_offset,
                log_start_offset,
            } => self.on_follower_fetched(
                now_ms,
                replica_id,
                broker_epoch,
                (fetch_offset, log_start_offset),
                &mut out,
            ),
            Input::BrokersChanged {
                local_broker_epoch,
                alive,
            } => {
                self.brokers = Brokers {
                    local_broker_epoch,
                    alive,
                };
                // A replica the HW waited for to join may no longer be eligible.
                self.maybe_increment_high_watermark(now_ms, &mut out);
            }
            Input::Tick => self.on_tick(now_ms, &mut out),
            Input::MetadataChanged(metadata) => self.on_metadata(now_ms, metadata, &mut out),
            Input::ConfigChanged(config) => {
                self.config = config;
                self.maybe_increment_high_watermark(now_ms, &mut out);
                self.complete_acks(&mut out);
            }
            Input::IsrChangeCommitted {
                leader_epoch,
                partition_epoch,
                isr,
            } => self.on_isr_committed(now_ms, leader_epoch, partition_epoch, isr, &mut out),
            Input::IsrChangeFailed(error) => self.on_isr_failed(error, &mut out),
            Input::AwaitAcks {
                id,
                required_offset,
                deadline_ms,
            } => self.on_await_acks(id, required_offset, deadline_ms, &mut out),
            Input::LeaderFetched {
                high_watermark,
                log_start_offset,
            } => self.on_leader_fetched(high_watermark, log_start_offset, &mut out),
            Input::Truncated {
                log_start_offset,
                log_end_offset,
            } => self.on_truncated(log_start_offset, log_end_offset, &mut out),
            Input::Deleted => {
                self.fail_acks(AckError::UnknownTopicOrPartition, &mut out);
                out.wake = true;
            }
        }
        if out.wake {
            out.push(Command::WakeFetches);
        }
        self.check_invariants();
    }

    fn check_invariants(&self) {
        assert!(
            self.log_start_offset <= self.high_watermark
                && self.high_watermark <= self.log_end_offset,
            "{}: log start {} <= HW {} <= LEO {} broken",
            self.topic_partition,
            self.log_start_offset,
            self.high_watermark,
            self.log_end_offset
        );
        assert!(
            self.is_leader() || self.pending_acks.is_empty(),
            "{}: acks pending on a replica that does not lead",
            self.topic_partition
        );
    }

    fn on_appended(&mut self, now_ms: i64, log_end_offset: i64, out: &mut Out) {
        // Appends can be reported out of order by concurrent callers; the LEO only
        // grows here (truncation is a command of this machine).
        if log_end_offset <= self.log_end_offset {
            return;
        }
        self.log_end_offset = log_end_offset;
        // Followers long-poll for new records even when the HW stays.
        out.wake = true;
        if self.is_leader() {
            self.maybe_increment_high_watermark(now_ms, out);
        }
    }

    fn on_log_start_moved(&mut self, log_start_offset: i64, out: &mut Out) {
        if log_start_offset <= self.log_start_offset {
            return;
        }
        assert!(
            log_start_offset <= self.log_end_offset,
            "{}: log start {log_start_offset} past the log end {}",
            self.topic_partition,
            self.log_end_offset
        );
        self.log_start_offset = log_start_offset;
        if self.high_watermark < log_start_offset {
            self.set_high_watermark(log_start_offset, out);
        }
    }

    fn set_high_watermark(&mut self, high_watermark: i64, out: &mut Out) {
        self.high_watermark = high_watermark;
        out.push(Command::UpdateHighWatermark { high_watermark });
        out.wake = true;
    }

    /// Kafka's `maybeIncrementLeaderHW`: the smallest LEO over the maximal ISR and
    /// the caught-up replicas about to join; never while under the minimum ISR.
    fn maybe_increment_high_watermark(&mut self, now_ms: i64, out: &mut Out) {
        if !self.is_leader() || self.isr.committed().len() < self.effective_min_isr() {
            return;
        }
        let leader_end = self.log_end_offset;
        let lag = self.config.replica_lag_time_max_ms;
        let mut candidate = leader_end;
        for (id, follower) in &self.followers {
            let joining = || {
                follower.is_caught_up(leader_end, now_ms, lag)
                    && self.brokers.is_isr_eligible(*id, follower)
            };
            let counts = self.isr.in_maximal(*id) || joining();
            if counts && follower.log_end_offset < candidate {
                candidate = follower.log_end_offset;
            }
        }
        if candidate > self.high_watermark {
            self.set_high_watermark(candidate, out);
            self.complete_acks(out);
        }
    }

    /// Kafka's `checkEnoughReplicasReachOffset` for every waiting produce.
    fn complete_acks(&mut self, out: &mut Out) {
        if self.pending_acks.is_empty() {
            return;
        }
        if !self.is_leader() {
            return self.fail_acks(AckError::NotLeaderOrFollower, out);
        }
        let enough = self.isr.maximal_len() >= self.effective_min_isr();
        let high_watermark = self.high_watermark;
        let done: Vec<AckId> = self
            .pending_acks
            .iter()
            .filter(|(_, ack)| ack.required_offset <= high_watermark)
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            self.pending_acks.remove(&id);
            let result = if enough {
                Ok(())
            } else {
                Err(AckError::NotEnoughReplicasAfterAppend)
            };
            out.push(Command::AnswerProduce { id, result });
        }
    }

    fn fail_acks(&mut self, error: AckError, out: &mut Out) {
        for id in std::mem::take(&mut self.pending_acks).into_keys() {
            out.push(Command::AnswerProduce {
                id,
                result: Err(error),
            });
        }
    }

    fn on_await_acks(&mut self, id: AckId, required_offset: i64, deadline_ms: i64, out: &mut Out) {
        if !self.is_leader() {
            out.push(Command::AnswerProduce {
                id,
                result: Err(AckError::NotLeaderOrFollower),
            });
            return;
        }
        let previous = self.pending_acks.insert(
            id,
            PendingAck {
                required_offset,
                deadline_ms,
            },
        );
        assert!(previous.is_none(), "ack id {id} reused");
        self.complete_acks(out);
    }

    fn on_tick(&mut self, now_ms: i64, out: &mut Out) {
        let expired: Vec<AckId> = self
            .pending_acks
            .iter()
            .filter(|(_, ack)| ack.deadline_ms <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.pending_acks.remove(&id);
            out.push(Command::AnswerProduce {
                id,
                result: Err(AckError::RequestTimedOut),
            });
        }
        self.maybe_shrink_isr(now_ms, out);
    }

    /// Kafka's `maybeShrinkIsr`: followers in the committed ISR that have not been
    /// caught up for `replica.lag.time.max.ms` are proposed to leave.
    fn maybe_shrink_isr(&mut self, now_ms: i64, out: &mut Out) {
        let IsrState::Committed(committed) = &self.isr else {
            return;
        };
        if !self.is_leader() {
            return;
        }
        let leader_end = self.log_end_offset;
        let lag = self.config.replica_lag_time_max_ms;
        let out_of_sync: Vec<i32> = committed
            .iter()
            .copied()
            .filter(|id| *id != self.local_id)
            .filter(|id| {
                self.followers
                    .get(id)
                    .is_none_or(|f| !f.is_caught_up(leader_end, now_ms, lag))
            })
            .collect();
        if out_of_sync.is_empty() {
            return;
        }
        let committed = committed.clone();
        let remaining: Vec<i32> = committed
            .iter()
            .copied()
            .filter(|id| !out_of_sync.contains(id))
            .collect();
        tracing::info!(partition = %self.topic_partition, ?committed, ?remaining, ?out_of_sync, "shrinking the ISR");
        let proposed = self.propose(&remaining, out);
        self.isr = IsrState::PendingShrink {
            committed,
            proposed,
        };
    }

    /// The proposal for an ISR of `ids`, with the broker epochs the controller
    /// checks (Kafka's `addBrokerEpochToIsr`): ours, and each follower's from
    /// its latest fetch (-1 before one).
    fn propose(&self, ids: &[i32], out: &mut Out) -> Vec<IsrMember> {
        let members: Vec<IsrMember> = ids
            .iter()
            .map(|&broker_id| IsrMember {
                broker_id,
                broker_epoch: if broker_id == self.local_id {
                    self.brokers.local_broker_epoch
                } else {
                    self.followers
                        .get(&broker_id)
                        .and_then(|f| f.broker_epoch)
                        .unwrap_or(-1)
                },
            })
            .collect();
        out.push(Command::AlterIsr {
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            isr: members.clone(),
        });
        members
    }

    /// Kafka's `updateFollowerFetchState`: the follower's progress, then ISR
    /// expansion and the HW. A fetch from a stale incarnation changes nothing
    /// (the fetch path refused it already).
    fn on_follower_fetched(
        &mut self,
        now_ms: i64,
        replica_id: i32,
        broker_epoch: i64,
        (fetch_offset, log_start_offset): (i64, i64),
        out: &mut Out,
    ) {
        if !self.is_leader() || self.brokers.is_stale_fetch(replica_id, broker_epoch) {
            return;
        }
        let leader_end = self.log_end_offset;
        let Some(follower) = self.followers.get_mut(&replica_id) else {
            return;
        };
        let previous_end = follower.log_end_offset;
        follower.record_fetch(
            fetch_offset,
            log_start_offset,
            leader_end,
            now_ms,
            broker_epoch,
        );
        self.maybe_expand_isr(replica_id, out);
        if previous_end != fetch_offset {
            self.maybe_increment_high_watermark(now_ms, out);
        }
    }

    /// Kafka's `maybeExpandIsr`: an eligible follower at or past the HW and the
    /// current epoch's start offset is proposed to join.
    fn maybe_expand_isr(&mut self, replica_id: i32, out: &mut Out) {
        let IsrState::Committed(committed) = &self.isr else {
            return;
        };
        if committed.contains(&replica_id) {
            return;
        }
        let Some(follower) = self.followers.get(&replica_id) else {
            return;
        };
        let in_sync = follower.log_end_offset >= self.high_watermark
            && self
                .leader_epoch_start_offset
                .is_some_and(|start| follower.log_end_offset >= start);
        if !in_sync || !self.brokers.is_isr_eligible(replica_id, follower) {
            return;
        }
        let committed = committed.clone();
        let mut expanded = committed.clone();
        expanded.push(replica_id);
        tracing::info!(partition = %self.topic_partition, ?committed, ?expanded, "expanding the ISR");
        let proposed = self.propose(&expanded, out);
        self.isr = IsrState::PendingExpand {
            committed,
            joining: replica_id,
            proposed,
        };
    }

    fn on_isr_committed(
        &mut self,
        now_ms: i64,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
        out: &mut Out,
    ) {
        // A stale answer (the metadata moved on first) is ignored, as Kafka's
        // `handleAlterPartitionUpdate` does.
        if self.isr.proposed().is_none()
            || leader_epoch != self.leader_epoch
            || partition_epoch < self.partition_epoch
        {
            return;
        }
        self.partition_epoch = partition_epoch;
        self.isr = IsrState::Committed(isr);
        self.maybe_increment_high_watermark(now_ms, out);
        self.complete_acks(out);
    }

    fn on_isr_failed(&mut self, error: IsrChangeError, out: &mut Out) {
        let Some(proposed) = self.isr.proposed().map(<[IsrMember]>::to_vec) else {
            return;
        };
        match error {
            IsrChangeError::Rejected => {
                self.isr = IsrState::Committed(self.isr.committed().to_vec());
            }
            IsrChangeError::Stale => {}
            IsrChangeError::Retriable => out.push(Command::AlterIsr {
                leader_epoch: self.leader_epoch,
                partition_epoch: self.partition_epoch,
                isr: proposed,
            }),
        }
    }

    fn is_current(&self, metadata: &PartitionMetadata) -> bool {
        metadata.leader == self.leader
            && metadata.leader_epoch == self.leader_epoch
            && metadata.partition_epoch == self.partition_epoch
            && metadata.replicas == self.replicas
            && (metadata.leader != self.local_id || metadata.isr == self.isr.committed())
    }

    /// Kafka's `makeLeader` / `makeFollower`.
    fn on_metadata(&mut self, now_ms: i64, metadata: PartitionMetadata, out: &mut Out) {
        if metadata.partition_epoch < self.partition_epoch || self.is_current(&metadata) {
            // Older than what we know, or what we know (the shell applies every
            // image, most of which leave this partition alone).
            return;
        }
        assert!(
            metadata.leader_epoch >= self.leader_epoch,
            "{}: leader epoch went back from {} to {} at partition epoch {}",
            self.topic_partition,
            self.leader_epoch,
            metadata.leader_epoch,
            metadata.partition_epoch
        );
        let was_leader = self.is_leader();
        let new_epoch = metadata.leader_epoch > self.leader_epoch;
        self.partition_epoch = metadata.partition_epoch;
        self.replicas = metadata.replicas;
        out.wake = true;
        if metadata.leader == self.local_id {
            self.become_leader(
                now_ms,
                was_leader,
                new_epoch,
                metadata.leader_epoch,
                metadata.isr,
                out,
            );
        } else {
            self.become_follower(
                was_leader,
                new_epoch,
                metadata.leader,
                metadata.leader_epoch,
                out,
            );
        }
    }

    fn become_leader(
        &mut self,
        now_ms: i64,
        was_leader: bool,
        new_epoch: bool,
        leader_epoch: i32,
        isr: Vec<i32>,
        out: &mut Out,
    ) {
        let followers: Vec<i32> = self
            .replicas
            .iter()
            .copied()
            .filter(|id| *id != self.local_id)
            .collect();
        self.followers.retain(|id, _| followers.contains(id));
        for id in &followers {
            self.followers.entry(*id).or_insert(FollowerState::UNKNOWN);
        }
        if new_epoch {
            let start = self.log_end_offset;
            for (id, follower) in self.followers.iter_mut() {
                let in_sync = isr.contains(id);
                let caught_up = if in_sync { now_ms } else { 0 };
                *follower = if was_leader {
                    FollowerState {
                        last_fetch_leader_log_end_offset: start,
                        last_fetch_time_ms: caught_up,
                        last_caught_up_time_ms: caught_up,
                        ..*follower
                    }
                } else {
                    FollowerState {
                        last_fetch_leader_log_end_offset: -1,
                        last_caught_up_time_ms: caught_up,
                        ..FollowerState::UNKNOWN
                    }
                };
            }
            self.leader_epoch = leader_epoch;
            self.leader_epoch_start_offset = Some(start);
            if self.following {
                self.following = false;
                out.push(Command::StopFollowing);
            }
            out.push(Command::BecomeLeader {
                leader_epoch,
                epoch_start_offset: start,
            });
        }
        self.leader = self.local_id;
        self.isr = IsrState::Committed(isr);
        self.maybe_increment_high_watermark(now_ms, out);
        self.complete_acks(out);
    }

    fn become_follower(
        &mut self,
        was_leader: bool,
        new_epoch: bool,
        leader: i32,
        leader_epoch: i32,
        out: &mut Out,
    ) {
        self.leader = leader;
        self.leader_epoch = leader_epoch;
        self.leader_epoch_start_offset = None;
        self.isr = IsrState::Committed(Vec::new());
        self.followers.clear();
        if was_leader {
            self.fail_acks(AckError::NotLeaderOrFollower, out);
        }
        // Fetchers restart whenever the epoch changes, even for the same leader.
        if new_epoch || was_leader {
            if leader >= 0 {
                self.following = true;
                out.push(Command::StartFollowing {
                    leader,
                    leader_epoch,
                    fetch_offset: self.log_end_offset,
                });
            } else if self.following {
                self.following = false;
                out.push(Command::StopFollowing);
            }
        }
    }

    /// Follower: HW = the leader's HW within our log; the log start follows the
    /// leader's (Kafka's `processPartitionData`).
    fn on_leader_fetched(&mut self, high_watermark: i64, log_start_offset: i64, out: &mut Out) {
        if self.is_leader() {
            return;
        }
        let new_high_watermark = high_watermark.clamp(self.log_start_offset, self.log_end_offset);
        if new_high_watermark != self.high_watermark {
            self.set_high_watermark(new_high_watermark, out);
        }
        if log_start_offset > self.log_start_offset && log_start_offset <= self.high_watermark {
            self.log_start_offset = log_start_offset;
            out.push(Command::AdvanceLogStartOffset {
                offset: log_start_offset,
            });
        }
    }

    /// Follower: the fetcher truncated the log (Kafka's `Partition.truncateTo`
    /// and `truncateFullyAndStartAt`): the HW stays within the new bounds.
    fn on_truncated(&mut self, log_start_offset: i64, log_end_offset: i64, out: &mut Out) {
        assert!(
            !self.is_leader(),
            "{}: a leader's log was truncated",
            self.topic_partition
        );
        assert!(
            log_start_offset <= log_end_offset,
            "{}: truncated to log start {log_start_offset} after log end {log_end_offset}",
            self.topic_partition
        );
        self.log_start_offset = log_start_offset;
        self.log_end_offset = log_end_offset;
        let high_watermark = self.high_watermark.clamp(log_start_offset, log_end_offset);
        if high_watermark != self.high_watermark {
            self.set_high_watermark(high_watermark, out);
        }
        out.wake = true;
    }
}

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "isr_tests.rs"]
mod isr_tests;

#[cfg(test)]
#[path = "acks_tests.rs"]
mod acks_tests;
