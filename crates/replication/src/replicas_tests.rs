//! Replicas in memory: each node a real `storage::Log` over its own `MemFs`, a
//! [`Partition`] machine and a [`FetcherManager`]; the test is the network (with
//! links it can cut), the controller (it elects leaders and commits ISR
//! changes at once) and the clock. Every command the machines return is
//! executed here the way the broker's shell must execute it, so these tests are
//! also the reference for that wiring.
//!
//! What they prove: follower logs are byte-identical to the leader's up to the
//! high watermark; a deposed leader with a tail nobody else has truncates by
//! leader epoch when it can fetch again, and then matches; acks=all is answered
//! only once the followers in the ISR have the records.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::sync::Arc;

use protocol::records::{BatchBuilder, Compression, NewRecord};
use protocol::time::{Clock, ManualClock};
use protocol::{ErrorCode, TopicPartition};
use storage::{Log, LogConfig, LogEnv, Origin, StorageError};
use uuid::Uuid;

use crate::epochs::{FetchStart, LogEpochs};
use crate::error::{AckError, ReplicationError};
use crate::events::{
    AckId, AliveBroker, Command, EpochEndOffset, Input, LogOffsets, PartitionMetadata,
    ReplicationConfig,
};
use crate::fetcher::{
    FetchRequest, FetchedPartition, FetcherCommand, FetcherConfig, FollowerLogs, InitialFetchState,
    LeaderOffset, LocalLog, LocalWriteError,
};
use crate::fetcher_manager::{FetcherKey, FetcherManager};
use crate::partition::Partition;

const T0: i64 = 1_700_000_000_000;
const STEP_MS: i64 = 10;
const LAG_MS: i64 = 3_000;

fn tp() -> TopicPartition {
    TopicPartition::new("replicated", 0)
}

fn topic_id() -> Uuid {
    Uuid::from_u128(0xfeed)
}

fn broker_epoch(id: i32) -> i64 {
    100 + i64::from(id)
}

/// One node's log and partition machine.
struct Replica {
    log: Log,
    partition: Partition,
}

impl FollowerLogs for Replica {
    fn local_log(&self, topic_partition: &TopicPartition) -> Option<LocalLog> {
        (*topic_partition == tp()).then(|| LocalLog {
            log_start_offset: self.log.log_start_offset().0,
            log_end_offset: self.log.log_end_offset().0,
            high_watermark: self.partition.high_watermark(),
            latest_epoch: self.log.latest_epoch(),
        })
    }

    fn end_offset_for_epoch(&self, _: &TopicPartition, epoch: i32) -> Option<EpochEndOffset> {
        self.log
            .leader_epochs()
            .end_offset_for(epoch, self.log.log_end_offset().0)
            .map(|(leader_epoch, end_offset)| EpochEndOffset {
                leader_epoch,
                end_offset,
            })
    }
}

struct Node {
    replica: Replica,
    fetchers: FetcherManager,
}

struct Cluster {
    clock: Arc<ManualClock>,
    nodes: BTreeMap<i32, Node>,
    metadata: PartitionMetadata,
    /// Undirected links that drop every request.
    cut: BTreeSet<(i32, i32)>,
    /// Nodes the controller cannot reach either (they keep their old view).
    isolated: BTreeSet<i32>,
    answers: BTreeMap<AckId, Result<(), AckError>>,
    next_ack: AckId,
    inputs: VecDeque<(i32, Input)>,
    /// Kafka's isr-expiration task: every `replica.lag.time.max.ms / 2`.
    next_isr_expiration_ms: i64,
}

fn log_config() -> Arc<LogConfig> {
    // Small segments, so that replication crosses rolls.
    let overrides = BTreeMap::from([("segment.bytes".to_string(), "65536".to_string())]);
    Arc::new(LogConfig::resolve(&overrides, &BTreeMap::new()).unwrap())
}

impl Cluster {
    /// `ids[0]` leads at epoch 0 with every replica in the ISR.
    fn new(ids: &[i32], min_insync_replicas: i32, fetcher: FetcherConfig) -> Cluster {
        let clock = Arc::new(ManualClock::new(T0));
        let metadata = PartitionMetadata {
            leader: ids[0],
            leader_epoch: 0,
            partition_epoch: 0,
            replicas: ids.to_vec(),
            isr: ids.to_vec(),
        };
        let config = ReplicationConfig {
            min_insync_replicas,
            replica_lag_time_max_ms: LAG_MS,
        };
        let mut nodes = BTreeMap::new();
        for &id in ids {
            let env = LogEnv::new(
                storage::fs::MemFs::new().shared(),
                Arc::clone(&clock) as Arc<dyn Clock>,
            );
            let log = Log::open(
                Path::new(&format!("/node-{id}/replicated-0")),
                tp(),
                log_config(),
                &env,
                storage::LoadState::default(),
            )
            .unwrap();
            let offsets = LogOffsets {
                log_start_offset: 0,
                log_end_offset: 0,
                high_watermark: 0,
            };
            let fetcher_config = FetcherConfig {
                broker_id: id,
                ..fetcher
            };
            nodes.insert(
                id,
                Node {
                    replica: Replica {
                        log,
                        partition: Partition::new(tp(), id, config, offsets),
                    },
                    fetchers: FetcherManager::new(fetcher_config, broker_epoch(id)),
                },
            );
        }
        let mut cluster = Cluster {
            clock,
            nodes,
            metadata,
            cut: BTreeSet::new(),
            isolated: BTreeSet::new(),
            answers: BTreeMap::new(),
            next_ack: 0,
            inputs: VecDeque::new(),
            next_isr_expiration_ms: T0 + config.isr_expiration_interval_ms(),
        };
        let alive: BTreeMap<i32, AliveBroker> = ids
            .iter()
            .map(|&id| {
                let broker = AliveBroker {
                    broker_epoch: broker_epoch(id),
                    in_controlled_shutdown: false,
                };
                (id, broker)
            })
            .collect();
        for &id in ids {
            let brokers = Input::BrokersChanged {
                local_broker_epoch: broker_epoch(id),
                alive: alive.clone(),
            };
            cluster.feed(id, brokers);
        }
        cluster.publish_metadata();
        cluster
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    fn node(&self, id: i32) -> &Node {
        &self.nodes[&id]
    }

    fn is_cut(&self, a: i32, b: i32) -> bool {
        self.cut.contains(&(a.min(b), a.max(b)))
    }

    fn cut_link(&mut self, a: i32, b: i32) {
        self.cut.insert((a.min(b), a.max(b)));
    }

    fn heal(&mut self) {
        self.cut.clear();
        self.isolated.clear();
        self.publish_metadata();
    }

    /// The controller's view reaches every node it can reach.
    fn publish_metadata(&mut self) {
        let ids: Vec<i32> = self.nodes.keys().copied().collect();
        for id in ids {
            if !self.isolated.contains(&id) {
                self.feed(id, Input::MetadataChanged(self.metadata.clone()));
            }
        }
    }

    /// The controller elects `leader` with `isr` (a new leader epoch).
    fn elect(&mut self, leader: i32, isr: &[i32]) {
        self.metadata.leader = leader;
        self.metadata.leader_epoch += 1;
        self.metadata.partition_epoch += 1;
        self.metadata.isr = isr.to_vec();
        self.publish_metadata();
    }

    /// Feeds `input` to node `id` and executes everything that follows from it.
    fn feed(&mut self, id: i32, input: Input) {
        self.inputs.push_back((id, input));
        while let Some((id, input)) = self.inputs.pop_front() {
            let now = self.now();
            let commands = self
                .nodes
                .get_mut(&id)
                .unwrap()
                .replica
                .partition
                .handle(now, input);
            for command in commands {
                self.execute(id, command);
            }
        }
    }

    /// What the broker's partition shell does with each command.
    fn execute(&mut self, id: i32, command: Command) {
        let node = self.nodes.get_mut(&id).unwrap();
        match command {
            Command::AnswerProduce { id: ack, result } => {
                assert!(self.answers.insert(ack, result).is_none(), "answered twice");
            }
            Command::WakeFetches | Command::UpdateHighWatermark { .. } => {}
            Command::BecomeLeader {
                leader_epoch,
                epoch_start_offset,
            } => {
                // Kafka's `maybeAssignEpochStartOffset`, before any append.
                node.replica
                    .log
                    .assign_epoch_start_offset(leader_epoch, epoch_start_offset)
                    .unwrap();
            }
            Command::StartFollowing {
                leader,
                leader_epoch,
                ..
            } => {
                let initial = InitialFetchState {
                    topic_id: topic_id(),
                    leader,
                    current_leader_epoch: leader_epoch,
                };
                let failed = node
                    .fetchers
                    .add_partitions(vec![(tp(), initial)], &node.replica);
                assert_eq!(failed, vec![]);
            }
            Command::StopFollowing => {
                node.fetchers.remove_partitions(&[tp()]);
                node.fetchers.remove_idle_fetchers();
            }
            Command::AlterIsr {
                leader_epoch,
                partition_epoch,
                isr,
            } => {
                // The controller commits it at once when it is current.
                let current = leader_epoch == self.metadata.leader_epoch
                    && partition_epoch == self.metadata.partition_epoch;
                if current {
                    self.metadata.partition_epoch += 1;
                    self.metadata.isr = isr.iter().map(|m| m.broker_id).collect();
                    self.inputs.push_back((
                        id,
                        Input::IsrChangeCommitted {
                            leader_epoch,
                            partition_epoch: self.metadata.partition_epoch,
                            isr: self.metadata.isr.clone(),
                        },
                    ));
                }
            }
            Command::AdvanceLogStartOffset { offset } => {
                let hw = node.replica.partition.high_watermark();
                node.replica.log.delete_records_before(offset, hw).unwrap();
            }
            Command::TruncateTo { .. } => panic!("the partition no longer truncates"),
        }
    }

    /// A produce of `count` records to the leader: the first offset, and the
    /// pending ack for acks=all.
    fn produce(
        &mut self,
        acks: i16,
        count: usize,
    ) -> Result<(i64, Option<AckId>), ReplicationError> {
        let leader = self.metadata.leader;
        let now = self.now();
        let node = self.nodes.get_mut(&leader).unwrap();
        let epoch = node.replica.partition.check_append(acks)?;
        let mut builder = BatchBuilder::new(Compression::None);
        let start = node.replica.log.log_end_offset().0;
        for i in 0..count {
            let value = format!("value-{}-{}", start + i as i64, "x".repeat(i % 40));
            builder.append(&NewRecord {
                timestamp: now,
                key: Some(b"key"),
                value: Some(value.as_bytes()),
                headers: &[],
            });
        }
        let info = node
            .replica
            .log
            .append_as_leader(&builder.build().unwrap(), epoch, Origin::Client)
            .unwrap();
        let log_end_offset = info.last_offset.0 + 1;
        self.feed(leader, Input::Appended { log_end_offset });
        if acks != -1 {
            return Ok((info.first_offset.0, None));
        }
        self.next_ack += 1;
        let ack = self.next_ack;
        let wait = Input::AwaitAcks {
            id: ack,
            required_offset: log_end_offset,
            deadline_ms: now + 30_000,
        };
        self.feed(leader, wait);
        Ok((info.first_offset.0, Some(ack)))
    }

    /// The leader's side of a replica Fetch (the broker's fetch handler, §4.3).
    fn serve_fetch(&mut self, leader: i32, request: &FetchRequest) -> Vec<FetchedPartition> {
        let mut answers = Vec::new();
        for p in &request.partitions {
            let node = &self.nodes[&leader];
            let partition = &node.replica.partition;
            let log = &node.replica.log;
            let answer = |error, high_watermark, diverging_epoch, records| FetchedPartition {
                topic_partition: p.topic_partition.clone(),
                error,
                high_watermark,
                log_start_offset: log.log_start_offset().0,
                diverging_epoch,
                records,
            };
            let checked = partition.check_follower_fetch(
                request.replica_id,
                request.replica_epoch,
                Some(p.current_leader_epoch),
            );
            if let Err(e) = checked {
                answers.push(answer(error_code(&e), -1, None, bytes::Bytes::new()));
                continue;
            }
            let epochs = LogEpochs {
                epochs: log.leader_epochs(),
                log_start_offset: log.log_start_offset().0,
                log_end_offset: log.log_end_offset().0,
            };
            let high_watermark = partition.high_watermark();
            match partition.follower_fetch_start(p.last_fetched_epoch, p.fetch_offset, epochs) {
                Err(e) => answers.push(answer(
                    error_code(&e),
                    high_watermark,
                    None,
                    bytes::Bytes::new(),
                )),
                Ok(FetchStart::Diverging(end)) => answers.push(answer(
                    ErrorCode::None,
                    high_watermark,
                    Some(end),
                    bytes::Bytes::new(),
                )),
                Ok(FetchStart::Read) => {
                    let end = log.log_end_offset().0;
                    let max = usize::try_from(p.partition_max_bytes).unwrap();
                    match log.read_bytes(p.fetch_offset, end, max) {
                        Err(e) => {
                            let e = ReplicationError::Storage(e);
                            answers.push(answer(
                                error_code(&e),
                                high_watermark,
                                None,
                                bytes::Bytes::new(),
                            ));
                        }
                        Ok(records) => {
                            answers.push(answer(ErrorCode::None, high_watermark, None, records));
                            let fetched = Input::FollowerFetched {
                                replica_id: request.replica_id,
                                broker_epoch: request.replica_epoch,
                                fetch_offset: p.fetch_offset,
                                log_start_offset: p.log_start_offset,
                            };
                            self.feed(leader, fetched);
                        }
                    }
                }
            }
        }
        answers
    }

    fn serve_list_offsets(
        &self,
        leader: i32,
        epoch: i32,
        which: LeaderOffset,
    ) -> Result<i64, ErrorCode> {
        let node = &self.nodes[&leader];
        node.replica
            .partition
            .check_read(Some(epoch))
            .map_err(|e| error_code(&e))?;
        Ok(match which {
            LeaderOffset::Latest => node.replica.log.log_end_offset().0,
            LeaderOffset::Earliest => node.replica.log.log_start_offset().0,
        })
    }

    /// One round: every fetcher that is due polls, its requests are answered (or
    /// dropped on a cut link) and its local writes done; then time passes.
    fn step(&mut self) {
        let ids: Vec<i32> = self.nodes.keys().copied().collect();
        for id in ids {
            let keys: Vec<FetcherKey> = self.node(id).fetchers.keys().collect();
            for key in keys {
                let now = self.now();
                let node = self.nodes.get_mut(&id).unwrap();
                let Some(fetcher) = node.fetchers.fetcher_mut(key) else {
                    continue;
                };
                if fetcher.next_poll_ms(now).is_none_or(|at| at > now) {
                    continue;
                }
                let commands = fetcher.poll(now, &node.replica);
                self.run_fetcher_commands(id, key, commands);
            }
        }
        self.clock.advance(STEP_MS);
        // The shell ticks a partition at the isr-expiration interval and at its
        // earliest acks=all deadline.
        let now = self.now();
        let isr_expiration = now >= self.next_isr_expiration_ms;
        if isr_expiration {
            self.next_isr_expiration_ms += LAG_MS / 2;
        }
        let ids: Vec<i32> = self.nodes.keys().copied().collect();
        for id in ids {
            let partition = &self.node(id).replica.partition;
            let deadline = partition.next_ack_deadline_ms().is_some_and(|at| at <= now);
            if isr_expiration || deadline {
                self.feed(id, Input::Tick);
            }
        }
    }

    fn run_fetcher_commands(&mut self, id: i32, key: FetcherKey, commands: Vec<FetcherCommand>) {
        let mut queue: VecDeque<FetcherCommand> = commands.into();
        while let Some(command) = queue.pop_front() {
            let now = self.now();
            let more = match command {
                FetcherCommand::SendFetch(request) => {
                    let response = if self.is_cut(id, key.leader) {
                        Err(crate::fetcher::RequestFailed)
                    } else {
                        Ok(self.serve_fetch(key.leader, &request))
                    };
                    let node = self.nodes.get_mut(&id).unwrap();
                    let fetcher = node.fetchers.fetcher_mut(key).unwrap();
                    fetcher.on_fetch_response(now, response, &node.replica)
                }
                FetcherCommand::SendListOffsets {
                    topic_partition,
                    current_leader_epoch,
                    which,
                } => {
                    let answer = if self.is_cut(id, key.leader) {
                        Err(ErrorCode::RequestTimedOut)
                    } else {
                        self.serve_list_offsets(key.leader, current_leader_epoch, which)
                    };
                    let node = self.nodes.get_mut(&id).unwrap();
                    let fetcher = node.fetchers.fetcher_mut(key).unwrap();
                    fetcher.on_leader_offset(
                        now,
                        &topic_partition,
                        current_leader_epoch,
                        answer,
                        &node.replica,
                    )
                }
                FetcherCommand::SendOffsetsForLeaderEpoch(_) => {
                    panic!("the leader truncates on fetch")
                }
                FetcherCommand::Append {
                    topic_partition,
                    fetch_offset,
                    leader_epoch,
                    records,
                    high_watermark,
                    log_start_offset,
                } => {
                    let node = self.nodes.get_mut(&id).unwrap();
                    let log_end_offset = node.replica.log.log_end_offset().0;
                    assert_eq!(fetch_offset, log_end_offset, "fetched at the log end");
                    let result = node
                        .replica
                        .log
                        .append_as_follower(&records, leader_epoch)
                        .map(|_| ())
                        .map_err(|_| LocalWriteError::InvalidRecords);
                    let log_end_offset = node.replica.log.log_end_offset().0;
                    self.feed(id, Input::Appended { log_end_offset });
                    let fetched = Input::LeaderFetched {
                        high_watermark,
                        log_start_offset,
                    };
                    self.feed(id, fetched);
                    self.local_write_done(id, key, &topic_partition, result)
                }
                FetcherCommand::Truncate {
                    topic_partition,
                    offset,
                } => {
                    let log = &mut self.nodes.get_mut(&id).unwrap().replica.log;
                    let result = log.truncate_to(offset).map_err(storage_failure);
                    self.truncated(id);
                    self.local_write_done(id, key, &topic_partition, result)
                }
                FetcherCommand::TruncateFullyAndStartAt {
                    topic_partition,
                    offset,
                } => {
                    let log = &mut self.nodes.get_mut(&id).unwrap().replica.log;
                    let result = log
                        .truncate_fully_and_start_at(offset)
                        .map_err(storage_failure);
                    self.truncated(id);
                    self.local_write_done(id, key, &topic_partition, result)
                }
                FetcherCommand::PartitionFailed { topic_partition } => {
                    let fetchers = &mut self.nodes.get_mut(&id).unwrap().fetchers;
                    fetchers.partition_failed(&topic_partition);
                    Vec::new()
                }
            };
            queue.extend(more);
        }
    }

    fn truncated(&mut self, id: i32) {
        let log = &self.nodes[&id].replica.log;
        let truncated = Input::Truncated {
            log_start_offset: log.log_start_offset().0,
            log_end_offset: log.log_end_offset().0,
        };
        self.feed(id, truncated);
    }

    fn local_write_done(
        &mut self,
        id: i32,
        key: FetcherKey,
        topic_partition: &TopicPartition,
        result: Result<(), LocalWriteError>,
    ) -> Vec<FetcherCommand> {
        let now = self.now();
        let node = self.nodes.get_mut(&id).unwrap();
        let fetcher = node.fetchers.fetcher_mut(key).unwrap();
        fetcher.on_local_write(now, topic_partition, result, &node.replica)
    }

    /// Steps until `done` holds; fails after `max_steps`.
    fn run_until(&mut self, max_steps: usize, what: &str, done: impl Fn(&Cluster) -> bool) {
        for _ in 0..max_steps {
            if done(self) {
                return;
            }
            self.step();
        }
        assert!(done(self), "{what}: not reached in {max_steps} steps");
    }

    fn leo(&self, id: i32) -> i64 {
        self.node(id).replica.log.log_end_offset().0
    }

    fn hw(&self, id: i32) -> i64 {
        self.node(id).replica.partition.high_watermark()
    }

    /// Every byte of node `id`'s log below `end`, batch by batch.
    fn bytes_below(&self, id: i32, end: i64) -> Vec<u8> {
        let log = &self.node(id).replica.log;
        let mut out = Vec::new();
        let mut at = log.log_start_offset().0;
        while at < end {
            let piece = log.read_bytes(at, end, usize::MAX).unwrap();
            assert!(!piece.is_empty(), "node {id}: nothing at {at} below {end}");
            for item in protocol::records::batch::Batches::new(&piece) {
                at = item.unwrap().0.next_offset();
            }
            out.extend_from_slice(&piece);
        }
        out
    }

    fn epochs(&self, id: i32) -> Vec<(i32, i64)> {
        let cache = self.node(id).replica.log.leader_epochs();
        cache
            .entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }
}

fn storage_failure(_: StorageError) -> LocalWriteError {
    LocalWriteError::Storage
}

/// The broker's mapping, for the errors a leader gives a follower here.
fn error_code(error: &ReplicationError) -> ErrorCode {
    match error {
        ReplicationError::NotLeaderOrFollower(_) => ErrorCode::NotLeaderOrFollower,
        ReplicationError::FencedLeaderEpoch { .. } => ErrorCode::FencedLeaderEpoch,
        ReplicationError::UnknownLeaderEpoch { .. } => ErrorCode::UnknownLeaderEpoch,
        ReplicationError::Storage(StorageError::OffsetOutOfRange { .. }) => {
            ErrorCode::OffsetOutOfRange
        }
        other => panic!("unexpected error for a follower: {other}"),
    }
}

fn fetcher_config() -> FetcherConfig {
    FetcherConfig {
        // Many fetches per catch-up, and a batch larger than this still goes
        // (at least one batch per partition).
        replica_fetch_max_bytes: 16 * 1024,
        replica_fetch_backoff_ms: 100,
        ..FetcherConfig::new(-1)
    }
}

#[test]
fn ten_thousand_records_with_acks_1_are_byte_identical_up_to_the_hw() {
    let mut c = Cluster::new(&[1, 2, 3], 1, fetcher_config());
    let mut written = 0usize;
    let mut batch = 0usize;
    while written < 10_000 {
        let count = (1 + batch % 37).min(10_000 - written);
        c.produce(1, count).unwrap();
        written += count;
        batch += 1;
        if batch.is_multiple_of(3) {
            c.step();
        }
    }
    c.run_until(2_000, "followers caught up and the HW at the end", |c| {
        [1, 2, 3]
            .iter()
            .all(|&id| c.leo(id) == 10_000 && c.hw(id) == 10_000)
    });
    let leader = c.bytes_below(1, c.hw(1));
    assert!(leader.len() > 4 * 65536, "crossed several segments");
    for id in [2, 3] {
        assert!(c.bytes_below(id, c.hw(id)) == leader, "node {id} differs");
        assert_eq!(c.epochs(id), vec![(0, 0)]);
    }
    assert_eq!(c.metadata.isr, vec![1, 2, 3]);
}

/// KIP-101's scenario: the leader writes a tail its follower never gets, loses
/// leadership while cut off, and must drop that tail when it can fetch again.
#[test]
fn a_deposed_leader_truncates_its_tail_by_leader_epoch_and_then_matches() {
    let mut c = Cluster::new(&[1, 2], 1, fetcher_config());
    for _ in 0..50 {
        c.produce(1, 10).unwrap();
    }
    c.run_until(500, "replicated", |c| c.leo(2) == 500 && c.hw(1) == 500);
    // Node 1 is cut off from node 2 and from the controller; it goes on
    // accepting acks=1 writes nobody else will have.
    c.cut_link(1, 2);
    c.isolated.insert(1);
    for _ in 0..7 {
        c.produce(1, 10).unwrap();
    }
    assert_eq!(c.leo(1), 570);
    // The controller moves leadership to node 2, which writes in epoch 1.
    c.metadata.leader = 2;
    c.metadata.leader_epoch += 1;
    c.metadata.partition_epoch += 1;
    c.metadata.isr = vec![2];
    c.publish_metadata();
    for _ in 0..3 {
        c.produce(1, 4).unwrap();
    }
    assert_eq!((c.leo(2), c.hw(2)), (512, 512));
    assert_eq!(c.epochs(2), vec![(0, 0), (1, 500)]);
    for _ in 0..50 {
        c.step();
    }
    assert_eq!(c.leo(1), 570, "nothing changes while cut off");
    // Healed: node 1 learns it follows node 2 at epoch 1, fetches naming epoch 0,
    // is told epoch 0 ended at 500, truncates there and fetches epoch 1.
    c.heal();
    c.run_until(500, "the deposed leader caught up", |c| {
        c.leo(1) == 512 && c.hw(1) == 512
    });
    assert!(c.bytes_below(1, 512) == c.bytes_below(2, 512));
    assert_eq!(c.epochs(1), vec![(0, 0), (1, 500)]);
    c.run_until(500, "node 1 back in the ISR", |c| {
        c.metadata.isr == vec![2, 1]
    });
}

/// The leader changes twice while node 3, the first leader, is cut off with a
/// tail of its own: on heal it truncates to where epoch 0 ended and takes the
/// records of epochs 1 and 2 from the current leader.
#[test]
fn a_replica_cut_off_over_two_leader_changes_matches_after_heal() {
    let mut c = Cluster::new(&[3, 1, 2], 1, fetcher_config());
    for _ in 0..20 {
        c.produce(1, 5).unwrap();
    }
    c.run_until(500, "replicated", |c| c.leo(1) == 100 && c.leo(2) == 100);
    c.cut_link(3, 1);
    c.cut_link(3, 2);
    c.isolated.insert(3);
    c.produce(1, 9).unwrap();
    c.elect(1, &[1, 2]);
    c.produce(1, 20).unwrap();
    c.run_until(500, "epoch 1 replicated", |c| c.leo(2) == 120);
    c.elect(2, &[2, 1]);
    c.produce(1, 30).unwrap();
    c.run_until(500, "epoch 2 replicated", |c| {
        c.leo(1) == 150 && c.hw(2) == 150
    });
    assert_eq!(c.leo(3), 109);
    c.heal();
    c.run_until(1_000, "node 3 caught up", |c| {
        c.leo(3) == 150 && c.hw(3) == 150
    });
    let expected = c.bytes_below(2, 150);
    for id in [1, 3] {
        assert!(c.bytes_below(id, 150) == expected, "node {id} differs");
        assert_eq!(c.epochs(id), vec![(0, 0), (1, 100), (2, 120)]);
    }
    c.run_until(1_000, "node 3 back in the ISR", |c| {
        c.metadata.isr == vec![2, 1, 3]
    });
}

/// acks=all with min.insync.replicas=2: the answer waits until the follower
/// has the records (its next fetch shows it), never before.
#[test]
fn acks_all_is_answered_only_once_the_follower_has_the_records() {
    let mut c = Cluster::new(&[1, 2], 2, fetcher_config());
    c.produce(1, 10).unwrap();
    c.run_until(100, "replicated", |c| c.hw(1) == 10);
    c.cut_link(1, 2);
    let (first, ack) = c.produce(-1, 5).unwrap();
    let ack = ack.unwrap();
    assert_eq!(first, 10);
    // Within replica.lag.time.max.ms nothing answers it.
    for _ in 0..(LAG_MS / STEP_MS / 2) {
        c.step();
        assert_eq!(c.answers.get(&ack), None);
    }
    assert_eq!((c.leo(2), c.hw(1)), (10, 10));
    c.heal();
    let mut answered_at = None;
    for _ in 0..100 {
        c.step();
        if c.answers.contains_key(&ack) {
            answered_at = Some(c.leo(2));
            break;
        }
    }
    assert_eq!(c.answers.get(&ack), Some(&Ok(())));
    assert_eq!(
        answered_at,
        Some(15),
        "answered once the follower had offset 14"
    );
    assert_eq!(c.hw(1), 15);
}

/// Leadership moves while an acks=all produce waits: it is answered
/// NOT_LEADER_OR_FOLLOWER, and the records it wrote (never acknowledged, never
/// replicated) are dropped when the old leader follows the new one.
#[test]
fn a_waiting_produce_fails_when_leadership_moves_and_its_records_are_dropped() {
    let mut c = Cluster::new(&[1, 2], 1, fetcher_config());
    c.produce(1, 10).unwrap();
    c.run_until(100, "replicated", |c| c.hw(1) == 10 && c.leo(2) == 10);
    c.cut_link(1, 2);
    let (_, ack) = c.produce(-1, 5).unwrap();
    let ack = ack.unwrap();
    c.step();
    assert_eq!(c.answers.get(&ack), None);
    c.elect(2, &[2]);
    assert_eq!(c.answers[&ack], Err(AckError::NotLeaderOrFollower));
    c.produce(1, 3).unwrap();
    c.heal();
    c.run_until(500, "the old leader follows", |c| {
        c.leo(1) == 13 && c.hw(1) == 13
    });
    assert!(c.bytes_below(1, 13) == c.bytes_below(2, 13));
    assert_eq!(c.epochs(1), vec![(0, 0), (1, 10)]);
}

/// The follower stays away past replica.lag.time.max.ms: the ISR shrinks to
/// the leader, the waiting produce times out, and new acks=all produces are
/// refused with NOT_ENOUGH_REPLICAS before anything is appended.
#[test]
fn a_lagging_follower_leaves_the_isr_and_acks_all_fails_as_kafka_does() {
    let mut c = Cluster::new(&[1, 2], 2, fetcher_config());
    c.cut_link(1, 2);
    let (_, ack) = c.produce(-1, 5).unwrap();
    let ack = ack.unwrap();
    c.run_until(1_000, "the ISR shrank", |c| c.metadata.isr == vec![1]);
    assert_eq!(
        c.answers.get(&ack),
        None,
        "the HW does not move under min ISR"
    );
    let refused = c.produce(-1, 1).unwrap_err();
    assert!(matches!(
        refused,
        ReplicationError::NotEnoughReplicas { isr: 1, min: 2, .. }
    ));
    assert_eq!(c.leo(1), 5, "nothing appended");
    c.run_until(3_000, "the produce timed out", |c| {
        c.answers.contains_key(&ack)
    });
    assert_eq!(c.answers[&ack], Err(AckError::RequestTimedOut));
    c.heal();
    c.run_until(500, "the follower rejoined", |c| {
        c.metadata.isr == vec![1, 2]
    });
    let (_, ack) = c.produce(-1, 1).unwrap();
    c.run_until(100, "acks=all works again", |c| {
        c.answers.contains_key(&ack.unwrap())
    });
    assert_eq!(c.answers[&ack.unwrap()], Ok(()));
}

/// A follower away while its leader deleted the records it would fetch next
/// (DeleteRecords past its log end) gets OFFSET_OUT_OF_RANGE, asks the leader
/// for its offsets, restarts its log at the leader's log start and copies the
/// rest byte for byte.
#[test]
fn a_follower_behind_the_leaders_log_start_restarts_there() {
    let mut c = Cluster::new(&[1, 2], 1, fetcher_config());
    c.produce(1, 100).unwrap();
    c.run_until(100, "replicated", |c| c.leo(2) == 100 && c.hw(1) == 100);
    c.cut_link(1, 2);
    for _ in 0..90 {
        c.produce(1, 10).unwrap();
    }
    c.run_until(1_000, "the follower left the ISR", |c| c.hw(1) == 1_000);
    let start = {
        let node = c.nodes.get_mut(&1).unwrap();
        let hw = node.replica.partition.high_watermark();
        node.replica.log.delete_records_before(800, hw).unwrap()
    };
    assert_eq!(start, 800);
    c.feed(
        1,
        Input::LogStartMoved {
            log_start_offset: 800,
        },
    );
    c.heal();
    c.run_until(500, "the follower caught up", |c| {
        c.leo(2) == 1_000 && c.hw(2) == 1_000
    });
    let follower = &c.node(2).replica.log;
    assert_eq!(follower.log_start_offset().0, 800);
    assert!(c.bytes_below(2, 1_000) == c.bytes_below(1, 1_000));
    assert_eq!(c.epochs(2), c.epochs(1));
    c.run_until(1_000, "back in the ISR", |c| c.metadata.isr == vec![1, 2]);
}
