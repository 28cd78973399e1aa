//! A follower's fetcher for one (leader, fetcher id): Kafka's
//! `AbstractFetcherThread` + `ReplicaFetcherThread` as a sans-IO state machine.
//!
//! Each partition it follows has a fetch state (Kafka's `PartitionFetchState`):
//! - **Truncating**: not fetched yet. A log with no leader epoch truncates to its
//!   high watermark (its fetch offset then); one with epochs asks the leader
//!   where its latest epoch ends (OffsetForLeaderEpoch) and truncates there.
//! - **Fetching**: fetched at `fetch_offset` (always the log end), naming the
//!   epoch of its last batch (`last_fetched_epoch`) so the leader can answer a
//!   diverging epoch instead of records (KIP-320 / truncation on fetch).
//! - **Delayed** (either state): after an error, not fetched until
//!   `replica.fetch.backoff.ms` have passed.
//!
//! A partition that waits for the shell (a local append or truncation, or a
//! ListOffsets answer after OFFSET_OUT_OF_RANGE) is neither fetched nor
//! truncated until the answer comes. One request (Fetch or OffsetForLeaderEpoch)
//! is in flight at a time, as Kafka's fetcher thread sends one at a time. The
//! shell runs a fetcher's commands to completion (the local writes included)
//! before it feeds that fetcher anything else, partitions added or removed
//! included: Kafka's thread does all of it under its partition lock, and the
//! fetch offset of a partition added is read from its log.
//!
//! Answers per partition (Kafka's `processFetchRequest`), only when the partition
//! is still here, ready, and was fetched at its current offset:
//!
//! | answer | action |
//! |---|---|
//! | records (or none) | append them at the fetch offset, HW = min(leader HW, LEO), log start follows the leader's; fetch from the new LEO |
//! | diverging epoch | truncate (see [`truncation_offset`]), then fetch from there |
//! | OFFSET_OUT_OF_RANGE | ListOffsets latest L: L < LEO → truncate to L; else earliest E: E > LEO → start the log afresh at E; else fetch at the LEO |
//! | FENCED_LEADER_EPOCH | our leader epoch is the one fenced: leave the fetcher until metadata re-adds us; else back off |
//! | NOT_LEADER_OR_FOLLOWER, UNKNOWN_LEADER_EPOCH, UNKNOWN_TOPIC_*, other | back off |
//! | the request failed | every partition backs off |

use std::collections::BTreeMap;

use protocol::{ErrorCode, TopicPartition};
use uuid::Uuid;

use crate::events::EpochEndOffset;
pub use crate::fetch_types::*;

/// Kafka's `ReplicaState` of a followed partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    Truncating,
    Fetching,
}

/// Where a truncation goes and whether it is the last one (Kafka's
/// `OffsetTruncationState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetTruncationState {
    pub offset: i64,
    pub truncation_completed: bool,
}

/// What a partition waits for from the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// The records fetched at `fetch_offset` are being appended.
    Append {
        fetch_offset: i64,
        leader_high_watermark: i64,
    },
    /// A truncation is being done.
    Truncate { truncation_completed: bool },
    /// Our log restarts at the leader's log start.
    StartAt { leader_log_end_offset: i64 },
    /// A ListOffsets answer, asked at `current_leader_epoch`.
    LeaderOffset {
        which: LeaderOffset,
        current_leader_epoch: i32,
        /// The leader's log end offset, once known.
        leader_log_end_offset: Option<i64>,
    },
}

/// One followed partition (Kafka's `PartitionFetchState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionFetchState {
    pub topic_id: Uuid,
    pub fetch_offset: i64,
    /// How far behind the leader's HW the last answer left us.
    pub lag: Option<i64>,
    pub current_leader_epoch: i32,
    /// Not fetched before this time (an error's back-off).
    pub delayed_until_ms: Option<i64>,
    pub state: ReplicaState,
    pub last_fetched_epoch: Option<i32>,
    waiting: Option<Waiting>,
    /// Round-robin position: a partition goes to the back when its state changes.
    order: u64,
}

impl PartitionFetchState {
    pub fn is_delayed(&self, now_ms: i64) -> bool {
        self.delayed_until_ms.is_some_and(|until| until > now_ms)
    }

    /// Whether the shell owes this partition an answer.
    pub fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }

    pub fn is_ready_for_fetch(&self, now_ms: i64) -> bool {
        self.state == ReplicaState::Fetching && !self.is_delayed(now_ms) && self.waiting.is_none()
    }

    pub fn is_truncating(&self, now_ms: i64) -> bool {
        self.state == ReplicaState::Truncating && !self.is_delayed(now_ms) && self.waiting.is_none()
    }
}

/// The request in flight: per partition what it asked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum InFlight {
    /// fetch offset and leader epoch per partition.
    Fetch(BTreeMap<TopicPartition, (i64, i32)>),
    /// current leader epoch per partition.
    Epochs(BTreeMap<TopicPartition, i32>),
}

/// A request to the leader got no answer (connection lost, timed out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestFailed;

/// Where a follower truncates when the leader says its log diverges at `leader`
/// (Kafka's `getOffsetTruncationState`). `fetch_offset` is the partition's
/// fetch offset (its HW while truncating, its LEO while fetching); `local` our
/// largest epoch <= the leader's and where it ends.
pub fn truncation_offset(
    leader: EpochEndOffset,
    local: Option<EpochEndOffset>,
    fetch_offset: i64,
    log_end_offset: i64,
) -> OffsetTruncationState {
    let done = |offset| OffsetTruncationState {
        offset,
        truncation_completed: true,
    };
    if leader.end_offset < 0 {
        // The leader cannot place our epoch: keep what the fetch offset says.
        return done(fetch_offset);
    }
    if leader.leader_epoch < 0 {
        return done(leader.end_offset.min(log_end_offset));
    }
    match local {
        // We never had the leader's epoch: go back to the end of our largest
        // earlier one and ask again (the next answer narrows it down).
        Some(local) if local.leader_epoch != leader.leader_epoch => OffsetTruncationState {
            offset: local.end_offset.min(log_end_offset),
            truncation_completed: false,
        },
        Some(local) => done(local.end_offset.min(leader.end_offset).min(log_end_offset)),
        // All our epochs are later than the leader's answer.
        None => done(leader.end_offset.min(log_end_offset)),
    }
}

/// The fetcher for one (leader, fetcher id).
#[derive(Debug, Clone)]
pub struct Fetcher {
    leader: i32,
    config: FetcherConfig,
    /// This broker's epoch, sent as `ReplicaState.ReplicaEpoch` (-1: unknown).
    broker_epoch: i64,
    partitions: BTreeMap<TopicPartition, PartitionFetchState>,
    next_order: u64,
    in_flight: Option<InFlight>,
}

impl Fetcher {
    pub fn new(leader: i32, config: FetcherConfig, broker_epoch: i64) -> Fetcher {
        Fetcher {
            leader,
            config,
            broker_epoch,
            partitions: BTreeMap::new(),
            next_order: 0,
            in_flight: None,
        }
    }

    pub fn leader(&self) -> i32 {
        self.leader
    }

    pub fn set_broker_epoch(&mut self, broker_epoch: i64) {
        self.broker_epoch = broker_epoch;
    }

    pub fn partition(&self, topic_partition: &TopicPartition) -> Option<&PartitionFetchState> {
        self.partitions.get(topic_partition)
    }

    pub fn partitions(&self) -> impl Iterator<Item = &TopicPartition> {
        self.partitions.keys()
    }

    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }

    /// Whether a Fetch or OffsetForLeaderEpoch waits for its answer.
    pub fn has_request_in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    fn next_order(&mut self) -> u64 {
        self.next_order += 1;
        self.next_order
    }

    /// Starts following `partitions` (Kafka's `addPartitions`). A partition
    /// already followed at the same leader epoch keeps its state; otherwise it
    /// starts at its log end when its log has a leader epoch (fetching and
    /// letting the leader find any divergence), else truncating to its HW.
    pub fn add_partitions(
        &mut self,
        partitions: Vec<(TopicPartition, InitialFetchState)>,
        logs: &dyn FollowerLogs,
    ) -> Vec<FetcherCommand> {
        let mut commands = Vec::new();
        for (tp, initial) in partitions {
            assert_eq!(
                initial.leader, self.leader,
                "{tp}: added to the fetcher of another leader"
            );
            if self
                .partitions
                .get(&tp)
                .is_some_and(|s| s.current_leader_epoch == initial.current_leader_epoch)
            {
                continue;
            }
            let Some(log) = logs.local_log(&tp) else {
                self.partitions.remove(&tp);
                commands.push(FetcherCommand::PartitionFailed {
                    topic_partition: tp,
                });
                continue;
            };
            let (fetch_offset, state) = match log.latest_epoch {
                Some(_) if self.config.truncation_on_fetch => {
                    (log.log_end_offset, ReplicaState::Fetching)
                }
                // Kafka's `initialFetchOffset`: the HW, from which OffsetForLeaderEpoch
                // (or, with no epoch, the truncation to it) starts.
                _ => (log.high_watermark, ReplicaState::Truncating),
            };
            let order = self.next_order();
            self.partitions.insert(
                tp,
                PartitionFetchState {
                    topic_id: initial.topic_id,
                    fetch_offset,
                    lag: None,
                    current_leader_epoch: initial.current_leader_epoch,
                    delayed_until_ms: None,
                    state,
                    last_fetched_epoch: log
                        .latest_epoch
                        .filter(|_| state == ReplicaState::Fetching),
                    waiting: None,
                    order,
                },
            );
        }
        commands
    }

    /// Stops following `partitions`; answers still owed for them are ignored.
    pub fn remove_partitions(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Vec<(TopicPartition, PartitionFetchState)> {
        partitions
            .iter()
            .filter_map(|tp| self.partitions.remove_entry(tp))
            .collect()
    }

    /// When [`Fetcher::poll`] may have something to do: now when a partition is
    /// ready, else when the first back-off ends; `None` while a request is in
    /// flight or nothing can move without an answer.
    pub fn next_poll_ms(&self, now_ms: i64) -> Option<i64> {
        if self.in_flight.is_some() {
            return None;
        }
        self.partitions
            .values()
            .filter(|s| s.waiting.is_none())
            .map(|s| s.delayed_until_ms.map_or(now_ms, |until| until.max(now_ms)))
            .min()
    }

    /// Kafka's `doWork`: truncations first, then a Fetch of every ready
    /// partition. Nothing while a request is in flight.
    pub fn poll(&mut self, now_ms: i64, logs: &dyn FollowerLogs) -> Vec<FetcherCommand> {
        let mut commands = Vec::new();
        if self.in_flight.is_some() {
            return commands;
        }
        let truncating: Vec<TopicPartition> = self
            .partitions
            .iter()
            .filter(|(_, s)| s.is_truncating(now_ms))
            .map(|(tp, _)| tp.clone())
            .collect();
        let mut epoch_requests = Vec::new();
        for tp in truncating {
            let Some(log) = logs.local_log(&tp) else {
                self.fail(tp, &mut commands);
                continue;
            };
            let state = self.partitions.get_mut(&tp).expect("listed above");
            match log.latest_epoch {
                Some(leader_epoch) => epoch_requests.push(EpochRequest {
                    topic_partition: tp,
                    current_leader_epoch: state.current_leader_epoch,
                    leader_epoch,
                }),
                None => {
                    // Kafka's `truncateToHighWatermark`: the fetch offset is the HW.
                    let offset = state.fetch_offset;
                    tracing::info!(partition = %tp, offset, "truncating to the high watermark (no leader epoch in the log)");
                    state.waiting = Some(Waiting::Truncate {
                        truncation_completed: true,
                    });
                    commands.push(FetcherCommand::Truncate {
                        topic_partition: tp,
                        offset,
                    });
                }
            }
        }
        if !epoch_requests.is_empty() {
            self.in_flight = Some(InFlight::Epochs(
                epoch_requests
                    .iter()
                    .map(|r| (r.topic_partition.clone(), r.current_leader_epoch))
                    .collect(),
            ));
            commands.push(FetcherCommand::SendOffsetsForLeaderEpoch(epoch_requests));
            return commands;
        }
        if let Some(request) = self.build_fetch(now_ms, logs) {
            commands.push(FetcherCommand::SendFetch(request));
        }
        commands
    }

    /// Kafka's `buildFetch`: every ready partition, in round-robin order.
    fn build_fetch(&mut self, now_ms: i64, logs: &dyn FollowerLogs) -> Option<FetchRequest> {
        let mut ready: Vec<(&TopicPartition, &PartitionFetchState)> = self
            .partitions
            .iter()
            .filter(|(_, s)| s.is_ready_for_fetch(now_ms))
            .collect();
        ready.sort_by_key(|(_, s)| s.order);
        let mut partitions = Vec::with_capacity(ready.len());
        let mut unreadable = Vec::new();
        for (tp, state) in ready {
            let Some(log) = logs.local_log(tp) else {
                unreadable.push(tp.clone());
                continue;
            };
            let last_fetched_epoch = if self.config.truncation_on_fetch {
                state.last_fetched_epoch.unwrap_or(-1)
            } else {
                -1
            };
            partitions.push(FetchPartition {
                topic_partition: tp.clone(),
                topic_id: state.topic_id,
                fetch_offset: state.fetch_offset,
                log_start_offset: log.log_start_offset,
                partition_max_bytes: self.config.replica_fetch_max_bytes,
                current_leader_epoch: state.current_leader_epoch,
                last_fetched_epoch,
            });
        }
        self.delay(&unreadable, now_ms);
        if partitions.is_empty() {
            return None;
        }
        self.in_flight = Some(InFlight::Fetch(
            partitions
                .iter()
                .map(|p| {
                    (
                        p.topic_partition.clone(),
                        (p.fetch_offset, p.current_leader_epoch),
                    )
                })
                .collect(),
        ));
        Some(FetchRequest {
            replica_id: self.config.broker_id,
            replica_epoch: self.broker_epoch,
            max_wait_ms: self.config.replica_fetch_wait_max_ms,
            min_bytes: self.config.replica_fetch_min_bytes,
            max_bytes: self.config.replica_fetch_response_max_bytes,
            partitions,
        })
    }

    /// Kafka's `delayPartitions`: back off partitions not backing off already.
    fn delay(&mut self, partitions: &[TopicPartition], now_ms: i64) {
        let until = now_ms + self.config.replica_fetch_backoff_ms;
        for tp in partitions {
            let order = self.next_order();
            if let Some(state) = self.partitions.get_mut(tp) {
                if !state.is_delayed(now_ms) {
                    state.delayed_until_ms = Some(until);
                    state.order = order;
                }
            }
        }
    }

    /// Kafka's `markPartitionFailed`: out of this fetcher until metadata adds it.
    fn fail(&mut self, tp: TopicPartition, commands: &mut Vec<FetcherCommand>) {
        tracing::warn!(partition = %tp, leader = self.leader, "partition marked as failed");
        self.partitions.remove(&tp);
        commands.push(FetcherCommand::PartitionFailed {
            topic_partition: tp,
        });
    }

    /// Kafka's `onPartitionFenced`: when the request carried our current epoch
    /// the leader is ahead of our metadata, so wait for it (true: back off and
    /// retry, the epoch changed meanwhile).
    fn on_fenced(
        &mut self,
        tp: &TopicPartition,
        requested_epoch: i32,
        commands: &mut Vec<FetcherCommand>,
    ) -> bool {
        let Some(state) = self.partitions.get(tp) else {
            return false;
        };
        if state.current_leader_epoch == requested_epoch {
            tracing::info!(partition = %tp, leader_epoch = requested_epoch, "fenced by a newer leader epoch; waiting for metadata");
            self.fail(tp.clone(), commands);
            false
        } else {
            true
        }
    }

    /// Consumes the leader's answer to the Fetch in flight.
    pub fn on_fetch_response(
        &mut self,
        now_ms: i64,
        response: Result<Vec<FetchedPartition>, RequestFailed>,
        logs: &dyn FollowerLogs,
    ) -> Vec<FetcherCommand> {
        let Some(InFlight::Fetch(requested)) = self.in_flight.take() else {
            panic!("a fetch response with no fetch in flight");
        };
        let mut commands = Vec::new();
        let answers = match response {
            Ok(answers) => answers,
            Err(RequestFailed) => {
                let all: Vec<TopicPartition> = self.partitions.keys().cloned().collect();
                self.delay(&all, now_ms);
                return commands;
            }
        };
        let mut with_error = Vec::new();
        for answer in answers {
            let tp = answer.topic_partition.clone();
            let Some(&(fetch_offset, requested_epoch)) = requested.get(&tp) else {
                continue;
            };
            let Some(state) = self.partitions.get(&tp) else {
                continue;
            };
            if state.fetch_offset != fetch_offset || !state.is_ready_for_fetch(now_ms) {
                continue;
            }
            match answer.error {
                ErrorCode::None => match answer.diverging_epoch {
                    Some(leader) if self.config.truncation_on_fetch => {
                        self.truncate_diverging(tp, leader, logs, &mut commands)
                    }
                    _ => self.append(tp, answer, &mut commands),
                },
                ErrorCode::OffsetOutOfRange => {
                    self.ask_leader_offset(tp, LeaderOffset::Latest, None, &mut commands)
                }
                ErrorCode::FencedLeaderEpoch => {
                    if self.on_fenced(&tp, requested_epoch, &mut commands) {
                        with_error.push(tp);
                    }
                }
                error => {
                    tracing::debug!(partition = %tp, leader = self.leader, ?error, "fetch error; backing off");
                    with_error.push(tp);
                }
            }
        }
        self.delay(&with_error, now_ms);
        commands
    }

    fn append(
        &mut self,
        tp: TopicPartition,
        answer: FetchedPartition,
        out: &mut Vec<FetcherCommand>,
    ) {
        let state = self.partitions.get_mut(&tp).expect("checked by the caller");
        state.waiting = Some(Waiting::Append {
            fetch_offset: state.fetch_offset,
            leader_high_watermark: answer.high_watermark,
        });
        out.push(FetcherCommand::Append {
            topic_partition: tp,
            fetch_offset: state.fetch_offset,
            leader_epoch: state.current_leader_epoch,
            records: answer.records,
            high_watermark: answer.high_watermark,
            log_start_offset: answer.log_start_offset,
        });
    }

    /// Kafka's `truncateOnFetchResponse` for one partition.
    fn truncate_diverging(
        &mut self,
        tp: TopicPartition,
        leader: EpochEndOffset,
        logs: &dyn FollowerLogs,
        out: &mut Vec<FetcherCommand>,
    ) {
        let Some(log) = logs.local_log(&tp) else {
            return self.fail(tp, out);
        };
        let local = logs.end_offset_for_epoch(&tp, leader.leader_epoch);
        let state = self.partitions.get_mut(&tp).expect("checked by the caller");
        let truncation = truncation_offset(leader, local, state.fetch_offset, log.log_end_offset);
        tracing::info!(partition = %tp, ?leader, ?local, ?truncation, "truncating a diverging log");
        state.waiting = Some(Waiting::Truncate {
            truncation_completed: truncation.truncation_completed,
        });
        out.push(FetcherCommand::Truncate {
            topic_partition: tp,
            offset: truncation.offset,
        });
    }

    fn ask_leader_offset(
        &mut self,
        tp: TopicPartition,
        which: LeaderOffset,
        leader_log_end_offset: Option<i64>,
        out: &mut Vec<FetcherCommand>,
    ) {
        let state = self.partitions.get_mut(&tp).expect("checked by the caller");
        state.waiting = Some(Waiting::LeaderOffset {
            which,
            current_leader_epoch: state.current_leader_epoch,
            leader_log_end_offset,
        });
        out.push(FetcherCommand::SendListOffsets {
            topic_partition: tp,
            current_leader_epoch: state.current_leader_epoch,
            which,
        });
    }

    /// Consumes the leader's OffsetForLeaderEpoch answer (Kafka's
    /// `truncateToEpochEndOffsets`): answers for partitions whose leader epoch
    /// changed meanwhile are dropped.
    pub fn on_epochs_response(
        &mut self,
        now_ms: i64,
        response: Result<Vec<EpochAnswer>, RequestFailed>,
        logs: &dyn FollowerLogs,
    ) -> Vec<FetcherCommand> {
        let Some(InFlight::Epochs(requested)) = self.in_flight.take() else {
            panic!("an OffsetForLeaderEpoch response with none in flight");
        };
        let mut commands = Vec::new();
        let answers = match response {
            Ok(answers) => answers,
            Err(RequestFailed) => {
                let asked: Vec<TopicPartition> = requested.into_keys().collect();
                self.delay(&asked, now_ms);
                return commands;
            }
        };
        let mut with_error = Vec::new();
        for answer in answers {
            let tp = answer.topic_partition;
            let Some(&requested_epoch) = requested.get(&tp) else {
                continue;
            };
            let current = self.partitions.get(&tp);
            if current
                .is_none_or(|s| s.current_leader_epoch != requested_epoch || s.waiting.is_some())
            {
                continue;
            }
            match answer.error {
                ErrorCode::None => self.truncate_diverging(tp, answer.end, logs, &mut commands),
                ErrorCode::FencedLeaderEpoch => {
                    if self.on_fenced(&tp, requested_epoch, &mut commands) {
                        with_error.push(tp);
                    }
                }
                error => {
                    tracing::info!(partition = %tp, ?error, "retrying OffsetForLeaderEpoch after the back-off");
                    with_error.push(tp);
                }
            }
        }
        self.delay(&with_error, now_ms);
        commands
    }

    /// Consumes a ListOffsets answer after OFFSET_OUT_OF_RANGE (Kafka's
    /// `fetchOffsetAndTruncate`), asked at `requested_epoch` (the command's
    /// `current_leader_epoch`): an answer to an earlier question is dropped.
    pub fn on_leader_offset(
        &mut self,
        now_ms: i64,
        tp: &TopicPartition,
        requested_epoch: i32,
        answer: Result<i64, ErrorCode>,
        logs: &dyn FollowerLogs,
    ) -> Vec<FetcherCommand> {
        let mut commands = Vec::new();
        let Some(state) = self.partitions.get_mut(tp) else {
            return commands;
        };
        let Some(Waiting::LeaderOffset {
            which,
            current_leader_epoch,
            leader_log_end_offset,
        }) = state.waiting
        else {
            return commands;
        };
        if current_leader_epoch != requested_epoch {
            return commands;
        }
        state.waiting = None;
        let offset = match answer {
            Ok(offset) => offset,
            Err(ErrorCode::FencedLeaderEpoch) => {
                if self.on_fenced(tp, current_leader_epoch, &mut commands) {
                    self.delay(std::slice::from_ref(tp), now_ms);
                }
                return commands;
            }
            Err(error) => {
                tracing::info!(partition = %tp, ?error, "could not ask the leader for its offsets");
                self.delay(std::slice::from_ref(tp), now_ms);
                return commands;
            }
        };
        let Some(log) = logs.local_log(tp) else {
            self.fail(tp.clone(), &mut commands);
            return commands;
        };
        match (which, leader_log_end_offset) {
            (LeaderOffset::Latest, _) if offset < log.log_end_offset => {
                // The leader's log is shorter (an unclean election): follow it.
                tracing::warn!(partition = %tp, from = log.log_end_offset, to = offset, "truncating to the leader's log end");
                let state = self.partitions.get_mut(tp).expect("present above");
                state.waiting = Some(Waiting::Truncate {
                    truncation_completed: true,
                });
                state.lag = Some(0);
                commands.push(FetcherCommand::Truncate {
                    topic_partition: tp.clone(),
                    offset,
                });
            }
            (LeaderOffset::Latest, _) => self.ask_leader_offset(
                tp.clone(),
                LeaderOffset::Earliest,
                Some(offset),
                &mut commands,
            ),
            (LeaderOffset::Earliest, leader_end) => {
                let leader_end = leader_end.expect("asked after the latest offset");
                let order = self.next_order();
                let state = self.partitions.get_mut(tp).expect("present above");
                if offset > log.log_end_offset {
                    // Everything we have is below the leader's log start.
                    tracing::warn!(partition = %tp, from = log.log_end_offset, to = offset, "restarting the log at the leader's log start");
                    state.waiting = Some(Waiting::StartAt {
                        leader_log_end_offset: leader_end,
                    });
                    commands.push(FetcherCommand::TruncateFullyAndStartAt {
                        topic_partition: tp.clone(),
                        offset,
                    });
                } else {
                    state.fetch_offset = log.log_end_offset;
                    state.lag = Some(leader_end - log.log_end_offset);
                    state.state = ReplicaState::Fetching;
                    state.last_fetched_epoch = log.latest_epoch;
                    state.order = order;
                }
            }
        }
        commands
    }

    /// The shell did (or failed) the local write this fetcher asked for.
    pub fn on_local_write(
        &mut self,
        now_ms: i64,
        tp: &TopicPartition,
        result: Result<(), LocalWriteError>,
        logs: &dyn FollowerLogs,
    ) -> Vec<FetcherCommand> {
        let mut commands = Vec::new();
        let order = self.next_order();
        let truncation_on_fetch = self.config.truncation_on_fetch;
        let Some(state) = self.partitions.get_mut(tp) else {
            return commands;
        };
        let Some(waiting) = state.waiting.take() else {
            return commands;
        };
        assert!(
            !matches!(waiting, Waiting::LeaderOffset { .. }),
            "{tp}: a local write reported while waiting for the leader's offsets"
        );
        match result {
            Ok(()) => {}
            Err(LocalWriteError::InvalidRecords) => {
                self.delay(std::slice::from_ref(tp), now_ms);
                return commands;
            }
            Err(LocalWriteError::Storage) => {
                self.fail(tp.clone(), &mut commands);
                return commands;
            }
        }
        let Some(log) = logs.local_log(tp) else {
            self.fail(tp.clone(), &mut commands);
            return commands;
        };
        match waiting {
            Waiting::Append {
                fetch_offset,
                leader_high_watermark,
            } => {
                let next = log.log_end_offset;
                let lag = (leader_high_watermark - next).max(0);
                if next > fetch_offset || state.lag.is_none() {
                    state.fetch_offset = next;
                    state.lag = Some(lag);
                    state.state = ReplicaState::Fetching;
                    state.last_fetched_epoch = log.latest_epoch.or(state.last_fetched_epoch);
                    state.order = order;
                }
            }
            Waiting::Truncate {
                truncation_completed,
            } => {
                state.fetch_offset = log.log_end_offset;
                state.last_fetched_epoch = log.latest_epoch;
                state.state = if truncation_on_fetch || truncation_completed {
                    ReplicaState::Fetching
                } else {
                    ReplicaState::Truncating
                };
                state.order = order;
            }
            Waiting::StartAt {
                leader_log_end_offset,
            } => {
                state.fetch_offset = log.log_end_offset;
                state.lag = Some(leader_log_end_offset - log.log_end_offset);
                state.last_fetched_epoch = log.latest_epoch;
                state.state = ReplicaState::Fetching;
                state.order = order;
            }
            Waiting::LeaderOffset { .. } => unreachable!("refused above"),
        }
        commands
    }
}

#[cfg(test)]
#[path = "fetcher_tests.rs"]
mod tests;
