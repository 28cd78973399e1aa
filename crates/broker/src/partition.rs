//! One hosted partition: its log beside its replication state machine, and the
//! I/O the machine asks for. The shell of `replication::Partition`.
//!
//! Every operation locks the machine first and the log second (never the other
//! way), feeds the machine what happened and executes the commands it returns:
//! answering waiting acks=all produces, truncating, publishing the high watermark,
//! waking delayed fetches (after both locks are released). Nothing outside this
//! file touches the log, so every read is bounded by the machine's high watermark
//! and every append is stamped with its leader epoch.
//!
//! No fsync runs under these locks: flushes go through the partition's group
//! commit (`group_commit.rs`), whose runner takes a flush plan under the log's
//! lock, fsyncs on a blocking thread without it, and then tells the machine. An
//! append that `flush.messages` makes wait is fed to the machine only once it is
//! synced, so neither its acknowledgement nor the high watermark (what consumers
//! see) passes it before (Kafka flushes before it moves the high watermark).
//! Appends on the async workers use [`HostedPartition::try_append_in_page_cache`],
//! which declines the ones that would roll or record a new leader epoch.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use protocol::time::Clock;
use protocol::TopicPartition;
use replication::{
    AckError, AckId, Command, EpochEndOffset, FetchStart, Input, IsolationLevel, LogEpochs,
    PartitionMetadata, ReplicationConfig, ReplicationError,
};
use storage::cleaner::{CleanOutcome, CleanerConfig, Dirtiness};
use storage::log::LogAppendInfo;
use storage::producer_state::ProducerEntry;
use storage::retention::RetentionOutcome;
use storage::{AppendMode, LogConfig, Origin, ReadOutcome, SharedLog, StorageError};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::group_commit::{GroupCommit, SyncError, SyncReceiver};
use crate::signal::{Event, Listener};

/// What a read found, with the offsets a fetch response reports.
#[derive(Debug, Clone)]
pub struct PartitionRead {
    pub outcome: ReadOutcome,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// For read_committed: aborted transactions `(producer id, first offset)` that
    /// overlap what may be read.
    pub aborted_transactions: Vec<(i64, i64)>,
}

/// What a follower's fetch asks of one partition (Fetch with a replica id).
#[derive(Debug, Clone, Copy)]
pub struct FollowerFetch {
    pub replica_id: i32,
    /// KIP-903's `ReplicaState.ReplicaEpoch` (v15+), else -1.
    pub broker_epoch: i64,
    pub current_leader_epoch: Option<i32>,
    pub fetch_offset: i64,
    /// The epoch of the follower's last batch (v12+; -1: none).
    pub last_fetched_epoch: i32,
    /// The follower's log start offset.
    pub log_start_offset: i64,
}

/// What a follower's fetch found: records up to the log end, or the epoch
/// where the follower's log diverges from this one.
#[derive(Debug, Clone)]
pub struct FollowerRead {
    pub read: PartitionRead,
    pub diverging_epoch: Option<EpochEndOffset>,
}

/// The answer an acks=all produce is waiting for.
pub type AckReceiver = oneshot::Receiver<Result<(), AckError>>;

/// Whether the produce's acknowledgement is known yet.
#[derive(Debug)]
pub enum Acks {
    /// Answered (acks=0/1 at once; acks=all when the ISR already has the records).
    Done(Result<(), AckError>),
    /// acks=all: wait with [`HostedPartition::wait_for_acks`].
    Waiting(AckReceiver),
}

/// What an append did, and what its answer waits for.
#[derive(Debug)]
pub struct AppendOutcome {
    pub info: LogAppendInfo,
    /// `flush.messages`: answer only once this says the records are synced.
    pub synced: Option<SyncReceiver>,
    pub acks: Acks,
}

/// Waits for a group commit's answer.
pub async fn wait_synced(synced: SyncReceiver) -> Result<(), SyncError> {
    synced
        .await
        .unwrap_or_else(|_| Err(SyncError::Storage("the flush was abandoned".into())))
}

/// What the cleaner needs to decide whether to compact this log.
#[derive(Debug, Clone)]
pub struct CompactionView {
    /// `min.cleanable.dirty.ratio`
    pub min_cleanable_dirty_ratio: f64,
    /// `max.compaction.lag.ms`
    pub max_compaction_lag_ms: i64,
    /// Where cleaning would start: the checkpoint, or the log start if later.
    pub first_dirty: i64,
    pub dirtiness: Dirtiness,
    /// The first dirty batch's timestamp, when `max.compaction.lag.ms` is set.
    pub first_dirty_batch_timestamp: Option<i64>,
}

struct Shell {
    machine: replication::Partition,
    /// acks=all produces waiting for the machine's answer.
    waiters: HashMap<AckId, oneshot::Sender<Result<(), AckError>>>,
    next_ack_id: AckId,
    /// Reused for every step's commands.
    commands: Vec<Command>,
}

/// What executing one step's commands leaves for after the locks.
#[derive(Default)]
struct Executed {
    own_answer: Option<Result<(), AckError>>,
    wake: bool,
}

pub struct HostedPartition {
    topic_partition: TopicPartition,
    topic_id: Uuid,
    log: SharedLog,
    clock: Arc<dyn Clock>,
    shell: Mutex<Shell>,
    /// The machine's high watermark as last published, for lock-free readers.
    high_watermark: AtomicI64,
    /// Signalled when the machine says delayed fetches should look again.
    fetches: Event,
    /// Every fsync of the log, batched (`flush.messages`, rolls, `flush.ms`).
    syncs: GroupCommit,
}

impl std::fmt::Debug for HostedPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedPartition")
            .field("topic_partition", &self.topic_partition)
            .finish_non_exhaustive()
    }
}

/// The handle kept in the replica manager.
pub type SharedPartition = Arc<HostedPartition>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl HostedPartition {
    /// Hosts `log` with `machine` (created from the log's offsets), then applies
    /// `metadata`.
    pub fn new(
        topic_id: Uuid,
        log: SharedLog,
        clock: Arc<dyn Clock>,
        machine: replication::Partition,
        metadata: PartitionMetadata,
    ) -> HostedPartition {
        let recovery_point = lock(&log).recovery_point().0;
        let partition = HostedPartition {
            high_watermark: AtomicI64::new(machine.high_watermark()),
            topic_partition: machine.topic_partition().clone(),
            topic_id,
            log,
            clock,
            shell: Mutex::new(Shell {
                machine,
                waiters: HashMap::new(),
                next_ack_id: 0,
                commands: Vec::new(),
            }),
            fetches: Event::new(),
            syncs: GroupCommit::new(recovery_point),
        };
        partition.handle(Input::MetadataChanged(metadata));
        partition
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        &self.topic_partition
    }

    pub fn topic_id(&self) -> Uuid {
        self.topic_id
    }

    // ---- Driving the machine ----

    /// Feeds one input and executes what the machine asks for.
    fn handle(&self, input: Input) {
        let executed = {
            let mut shell = lock(&self.shell);
            self.step(&mut shell, input, None)
        };
        self.after(executed);
    }

    /// One step: feed `input`, execute its commands. `own` is the ack id whose
    /// answer the caller takes itself instead of through a waiter.
    fn step(&self, shell: &mut Shell, input: Input, own: Option<AckId>) -> Executed {
        let now = self.clock.now_ms();
        let mut commands = std::mem::take(&mut shell.commands);
        shell.machine.handle_into(now, input, &mut commands);
        let mut executed = Executed::default();
        for command in commands.drain(..) {
            self.execute(shell, command, own, &mut executed);
        }
        shell.commands = commands;
        executed
    }

    fn execute(
        &self,
        shell: &mut Shell,
        command: Command,
        own: Option<AckId>,
        executed: &mut Executed,
    ) {
        match command {
            Command::AnswerProduce { id, result } => {
                if Some(id) == own {
                    executed.own_answer = Some(result);
                } else if let Some(waiter) = shell.waiters.remove(&id) {
                    // The producer may have gone (connection closed): nobody to tell.
                    let _ = waiter.send(result);
                }
            }
            Command::WakeFetches => executed.wake = true,
            Command::UpdateHighWatermark { high_watermark } => {
                self.high_watermark.store(high_watermark, Ordering::Release)
            }
            Command::TruncateTo { offset } => {
                let mut log = lock(&self.log);
                if let Err(e) = log.truncate_to(offset) {
                    tracing::error!(partition = %self.topic_partition, offset, error = %e, "truncation failed");
                }
                self.syncs.truncated(log.log_end_offset().0);
            }
            Command::AdvanceLogStartOffset { offset } => {
                let high_watermark = shell.machine.high_watermark();
                if let Err(e) = lock(&self.log).delete_records_before(offset, high_watermark) {
                    tracing::error!(partition = %self.topic_partition, offset, error = %e, "moving the log start failed");
                }
            }
            Command::AlterIsr {
                leader_epoch,
                partition_epoch,
                isr,
            } => {
                // AlterPartition to the controller arrives with the replicated
                // cluster; a single node's ISR never changes.
                tracing::warn!(partition = %self.topic_partition, leader_epoch, partition_epoch, ?isr, "an ISR change was proposed but AlterPartition is not implemented yet");
            }
            Command::BecomeLeader {
                leader_epoch,
                epoch_start_offset,
            } => {
                tracing::debug!(partition = %self.topic_partition, leader_epoch, epoch_start_offset, "leading");
            }
            Command::StartFollowing {
                leader,
                leader_epoch,
                fetch_offset,
            } => {
                // Replica fetchers arrive with the replicated cluster.
                tracing::info!(partition = %self.topic_partition, leader, leader_epoch, fetch_offset, "following (no replica fetcher yet)");
            }
            Command::StopFollowing => {
                tracing::debug!(partition = %self.topic_partition, "stopped following");
            }
        }
    }

    fn after(&self, executed: Executed) {
        if executed.wake {
            self.fetches.notify();
        }
    }

    /// Applies the controller's view (leader, epochs, replicas, ISR) and the
    /// topic's config.
    pub fn update(&self, metadata: PartitionMetadata, config: &Arc<LogConfig>, lag_ms: i64) {
        {
            let mut log = lock(&self.log);
            if **log.config() != **config {
                log.set_config(Arc::clone(config));
            }
        }
        let replication = ReplicationConfig {
            min_insync_replicas: config.min_insync_replicas,
            replica_lag_time_max_ms: lag_ms,
        };
        if lock(&self.shell).machine.config() != replication {
            self.handle(Input::ConfigChanged(replication));
        }
        self.handle(Input::MetadataChanged(metadata));
    }

    /// Time passed: expires waiting produces, proposes ISR shrinks.
    pub fn tick(&self) {
        self.handle(Input::Tick);
    }

    /// The partition is no longer hosted here: waiting produces are answered.
    pub fn mark_deleted(&self) {
        self.handle(Input::Deleted);
    }

    /// Signalled after every append and HW move: delayed fetches wait on it.
    pub fn listen_for_fetches(&self) -> Listener {
        self.fetches.listen()
    }

    // ---- Produce ----

    /// Appends a producer's (or a coordinator's) records as leader. acks=-1 needs
    /// the ISR at `min.insync.replicas` and is acknowledged when the high
    /// watermark passes the records, or fails at `timeout_ms`. May roll the
    /// segment or write the leader epoch checkpoint: call off the async runtime.
    pub fn append_as_leader(
        self: &Arc<Self>,
        records: &[u8],
        required_acks: i16,
        origin: Origin,
        timeout_ms: i64,
    ) -> Result<AppendOutcome, ReplicationError> {
        let appended = self.append(
            records,
            required_acks,
            origin,
            timeout_ms,
            AppendMode::MayBlock,
        )?;
        Ok(appended.expect("an append that may block is always made"))
    }

    /// [`HostedPartition::append_as_leader`] for the async workers: page-cache
    /// writes only. `None` (nothing done) when the append would roll the segment
    /// or record a new leader epoch: make it again with `append_as_leader` on the
    /// blocking pool.
    pub fn try_append_in_page_cache(
        self: &Arc<Self>,
        records: &[u8],
        required_acks: i16,
        origin: Origin,
        timeout_ms: i64,
    ) -> Result<Option<AppendOutcome>, ReplicationError> {
        self.append(
            records,
            required_acks,
            origin,
            timeout_ms,
            AppendMode::PageCacheOnly,
        )
    }

    fn append(
        self: &Arc<Self>,
        records: &[u8],
        required_acks: i16,
        origin: Origin,
        timeout_ms: i64,
        mode: AppendMode,
    ) -> Result<Option<AppendOutcome>, ReplicationError> {
        let mut shell = lock(&self.shell);
        let leader_epoch = shell.machine.check_append(required_acks)?;
        let (info, synced, start_runner, log_end_offset) = {
            let mut log = lock(&self.log);
            let Some(info) = log.append_as_leader_with(records, leader_epoch, origin, mode)? else {
                return Ok(None);
            };
            // flush.messages: durable before it is answered or visible. Once one
            // append waits, every later one does until the sync, so the high
            // watermark never passes a record still waiting. Registered under the
            // log's lock, so no sync can finish between the append and the request.
            let end = info.last_offset.0 + 1;
            let (synced, start) = if log.flush_messages_due() || self.syncs.holding() {
                self.syncs.request(end, true)
            } else if info.rolled_segment.is_some() || log.flush_ms_due() {
                // A closed segment, its snapshot, or flush.ms: nobody waits.
                self.syncs.request(log.log_end_offset().0, false)
            } else {
                (None, false)
            };
            (info, synced, start, log.log_end_offset().0)
        };
        let mut executed = if synced.is_some() {
            // The sync feeds the machine (`sync_log`).
            Executed::default()
        } else {
            self.step(&mut shell, Input::Appended { log_end_offset }, None)
        };
        let acks = if required_acks == -1 {
            let id = shell.next_ack_id;
            shell.next_ack_id += 1;
            let required_offset = info.last_offset.0 + 1;
            let deadline_ms = self.clock.now_ms().saturating_add(timeout_ms.max(0));
            let input = Input::AwaitAcks {
                id,
                required_offset,
                deadline_ms,
            };
            let waited = self.step(&mut shell, input, Some(id));
            executed.wake |= waited.wake;
            match waited.own_answer {
                Some(answer) => Acks::Done(answer),
                None => {
                    let (tx, rx) = oneshot::channel();
                    shell.waiters.insert(id, tx);
                    Acks::Waiting(rx)
                }
            }
        } else {
            Acks::Done(Ok(()))
        };
        drop(shell);
        self.after(executed);
        if start_runner {
            self.start_sync_runner();
        }
        Ok(Some(AppendOutcome { info, synced, acks }))
    }

    /// Waits for a produce's acknowledgement; at `timeout_ms` the machine is told
    /// the time, which answers REQUEST_TIMED_OUT if the ISR still lacks the records.
    pub async fn wait_for_acks(
        &self,
        mut waiting: AckReceiver,
        timeout_ms: i64,
    ) -> Result<(), AckError> {
        let mut wait = Duration::from_millis(timeout_ms.max(0) as u64);
        loop {
            match tokio::time::timeout(wait, &mut waiting).await {
                Ok(Ok(answer)) => return answer,
                // The partition went away without answering.
                Ok(Err(_)) => return Err(AckError::UnknownTopicOrPartition),
                Err(_) => {
                    self.tick();
                    // The machine's clock may lag the timer by a hair: look again soon.
                    wait = Duration::from_millis(10);
                }
            }
        }
    }

    /// Starts the group commit's runner on the blocking pool (or on this thread
    /// outside a runtime: tools and tests).
    fn start_sync_runner(self: &Arc<Self>) {
        let partition = Arc::clone(self);
        let run = move || partition.syncs.run(|| partition.sync_log());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(run)),
            Err(_) => run(),
        }
    }

    /// Asks for a sync of everything written so far, which nobody waits for.
    fn sync_in_background(self: &Arc<Self>) {
        let log_end_offset = self.log_end_offset();
        let (_, start) = self.syncs.request(log_end_offset, false);
        if start {
            self.start_sync_runner();
        }
    }

    /// One group-commit sync: the plan under the log's lock, the fsyncs without
    /// any lock, then the machine learns the records are durable (appends held
    /// back by `flush.messages` become acknowledged and visible). Blocking.
    fn sync_log(&self) -> Result<i64, SyncError> {
        let plan = {
            let mut log = lock(&self.log);
            if log.is_deleted() {
                return Err(SyncError::Deleted);
            }
            log.flush_plan(i64::MAX).map_err(|e| {
                SyncError::Storage(format!(
                    "preparing a flush of {}: {e}",
                    self.topic_partition
                ))
            })?
        };
        plan.sync()
            .map_err(|e| SyncError::Storage(format!("flushing {}: {e}", self.topic_partition)))?;
        let (executed, synced_end) = {
            let mut shell = lock(&self.shell);
            let synced_end = {
                let mut log = lock(&self.log);
                log.complete_flush(&plan);
                plan.up_to().min(log.log_end_offset().0)
            };
            let executed = self.step(
                &mut shell,
                Input::Appended {
                    log_end_offset: synced_end,
                },
                None,
            );
            (executed, synced_end)
        };
        self.after(executed);
        // Not the plan's end: a truncation while the fsync ran lowered the log end,
        // and offsets past it were never synced as what they now hold.
        Ok(synced_end)
    }

    /// Syncs the log in the background if `flush.ms` (or `flush.messages` with
    /// nobody waiting) says it is due.
    pub fn flush_if_due(self: &Arc<Self>) {
        if lock(&self.log).flush_due() {
            self.sync_in_background();
        }
    }

    /// Group-commit syncs run so far (for tests and metrics).
    pub fn syncs(&self) -> u64 {
        self.syncs.syncs()
    }

    // ---- Reads ----

    /// Finds what a consumer fetch at `offset` may read, bounded by the HW
    /// (or the last stable offset for read_committed).
    pub fn read(
        &self,
        offset: i64,
        isolation: IsolationLevel,
        current_leader_epoch: Option<i32>,
    ) -> Result<PartitionRead, ReplicationError> {
        let (high_watermark, _) = lock(&self.shell).machine.check_read(current_leader_epoch)?;
        let log = lock(&self.log);
        let last_stable_offset = log
            .first_unstable_offset()
            .map_or(high_watermark, |first| first.min(high_watermark));
        let bound = match isolation {
            IsolationLevel::ReadUncommitted => high_watermark,
            IsolationLevel::ReadCommitted => last_stable_offset,
        };
        let outcome = log.read(offset, bound)?;
        let aborted_transactions = match isolation {
            IsolationLevel::ReadCommitted => log.aborted_transactions(offset, bound),
            IsolationLevel::ReadUncommitted => Vec::new(),
        };
        Ok(PartitionRead {
            outcome,
            high_watermark,
            last_stable_offset,
            log_start_offset: log.log_start_offset().0,
            aborted_transactions,
        })
    }

    /// A follower's fetch, as leader (Kafka's `Partition.fetchRecords` for a
    /// follower): the follower must be a replica at the request's leader epoch
    /// and broker epoch; a fetch whose last fetched epoch diverges from this log
    /// is answered with the epoch and where it ends, and no records; otherwise
    /// the read goes up to the log end, not the HW. The offsets reported are
    /// those before the read. With `update`, the machine is told the follower's
    /// position (this may raise the HW and answer acks=all produces); Kafka
    /// updates it on the first read only, not when a delayed fetch reads again.
    pub fn read_for_follower(
        &self,
        fetch: &FollowerFetch,
        update: bool,
    ) -> Result<FollowerRead, ReplicationError> {
        let mut shell = lock(&self.shell);
        shell.machine.check_follower_fetch(
            fetch.replica_id,
            fetch.broker_epoch,
            fetch.current_leader_epoch,
        )?;
        let high_watermark = shell.machine.high_watermark();
        let read = {
            let log = lock(&self.log);
            let log_start_offset = log.log_start_offset().0;
            let log_end_offset = log.log_end_offset().0;
            let epochs = LogEpochs {
                epochs: log.leader_epochs(),
                log_start_offset,
                log_end_offset,
            };
            let start = shell.machine.follower_fetch_start(
                fetch.last_fetched_epoch,
                fetch.fetch_offset,
                epochs,
            )?;
            let (outcome, diverging_epoch) = match start {
                FetchStart::Diverging(end) => (ReadOutcome::Empty, Some(end)),
                FetchStart::Read => (log.read(fetch.fetch_offset, log_end_offset)?, None),
            };
            let last_stable_offset = log
                .first_unstable_offset()
                .map_or(high_watermark, |first| first.min(high_watermark));
            FollowerRead {
                read: PartitionRead {
                    outcome,
                    high_watermark,
                    last_stable_offset,
                    log_start_offset,
                    aborted_transactions: Vec::new(),
                },
                diverging_epoch,
            }
        };
        if !update || read.diverging_epoch.is_some() {
            return Ok(read);
        }
        let fetched = Input::FollowerFetched {
            replica_id: fetch.replica_id,
            broker_epoch: fetch.broker_epoch,
            fetch_offset: fetch.fetch_offset,
            log_start_offset: fetch.log_start_offset,
        };
        let executed = self.step(&mut shell, fetched, None);
        drop(shell);
        self.after(executed);
        Ok(read)
    }

    /// OffsetForLeaderEpoch: where `leader_epoch` ends in this log, as leader
    /// (see `replication::Partition::last_offset_for_leader_epoch`).
    pub fn last_offset_for_leader_epoch(
        &self,
        current_leader_epoch: Option<i32>,
        leader_epoch: i32,
    ) -> Result<EpochEndOffset, ReplicationError> {
        let shell = lock(&self.shell);
        let log = lock(&self.log);
        let epochs = LogEpochs {
            epochs: log.leader_epochs(),
            log_start_offset: log.log_start_offset().0,
            log_end_offset: log.log_end_offset().0,
        };
        shell
            .machine
            .last_offset_for_leader_epoch(current_leader_epoch, leader_epoch, epochs)
    }

    /// The last stable offset: the high watermark, held back by the oldest open
    /// transaction.
    pub fn last_stable_offset(&self) -> i64 {
        let high_watermark = self.high_watermark();
        lock(&self.log)
            .first_unstable_offset()
            .map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// Offsets for ListOffsets: (offset, timestamp, leader epoch) for a timestamp or
    /// one of Kafka's special values (-1 latest, -2 earliest, -3 max timestamp,
    /// -4 earliest local, -5 latest tiered). `None` for an unknown special value.
    pub fn list_offset(
        &self,
        timestamp: i64,
        isolation: IsolationLevel,
        current_leader_epoch: Option<i32>,
    ) -> Result<Option<(i64, i64, i32)>, ReplicationError> {
        let (high_watermark, leader_epoch) =
            lock(&self.shell).machine.check_read(current_leader_epoch)?;
        let (last_fetchable, lookup) = {
            let log = lock(&self.log);
            let last_fetchable = match isolation {
                IsolationLevel::ReadUncommitted => high_watermark,
                IsolationLevel::ReadCommitted => log
                    .first_unstable_offset()
                    .map_or(high_watermark, |first| first.min(high_watermark)),
            };
            let epoch_of = |offset: i64| log.leader_epochs().epoch_for_offset(offset).unwrap_or(-1);
            let lookup = match timestamp {
                -1 => return Ok(Some((last_fetchable, -1, leader_epoch))),
                -2 | -4 => {
                    let start = log.log_start_offset().0;
                    return Ok(Some((start, -1, epoch_of(start))));
                }
                -5 => return Ok(Some((-1, -1, -1))),
                -3 => log.max_timestamp_lookup()?,
                t if t >= 0 => log.timestamp_lookup(t)?,
                _ => return Ok(None),
            };
            (last_fetchable, lookup)
        };
        // The one batch that answers is read and skimmed without the log's lock.
        let found = match lookup {
            Some(lookup) => lookup.resolve()?,
            None => None,
        };
        Ok(Some(match found {
            Some((offset, ts)) if offset < last_fetchable => {
                let epoch = lock(&self.log).epoch_for_offset(offset);
                (offset, ts, epoch.unwrap_or(-1))
            }
            _ => (-1, -1, -1),
        }))
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    pub fn log_end_offset(&self) -> i64 {
        lock(&self.log).log_end_offset().0
    }

    pub fn log_start_offset(&self) -> i64 {
        lock(&self.log).log_start_offset().0
    }

    /// Whether a read at `offset` is in the active segment (recently appended,
    /// so served from the page cache without waiting on the disk).
    pub fn is_tail_read(&self, offset: i64) -> bool {
        lock(&self.log).in_active_segment(offset)
    }

    /// Whole batches from `offset` up to the log end: at most `max_bytes`, but at
    /// least one batch (the coordinators replay their internal topics this way,
    /// `internal_topics.rs`). Blocking.
    pub fn read_batches_from(&self, offset: i64, max_bytes: usize) -> Result<Bytes, StorageError> {
        let log = lock(&self.log);
        let end = log.log_end_offset().0;
        log.read_bytes(offset, end, max_bytes)
    }

    // ---- Log management ----

    /// DeleteRecords: makes records below `offset` unreadable (`-1`: the high
    /// watermark). Returns the new log start offset (the "low watermark").
    pub fn delete_records(&self, offset: i64) -> Result<i64, ReplicationError> {
        let (high_watermark, _) = lock(&self.shell).machine.check_read(None)?;
        let target = if offset == -1 { high_watermark } else { offset };
        let log_start_offset = {
            let mut log = lock(&self.log);
            if target < 0 || target > high_watermark {
                return Err(StorageError::OffsetOutOfRange {
                    requested: offset,
                    log_start_offset: log.log_start_offset().0,
                    log_end_offset: high_watermark,
                }
                .into());
            }
            let start = log.delete_records_before_unpersisted(target, high_watermark)?;
            (start, log.log_start_checkpoint())
        };
        let (log_start_offset, checkpoint) = log_start_offset;
        // Durable before it is answered, so a crash cannot bring the records back;
        // the fsync runs without the log's lock, so appends go on meanwhile.
        checkpoint.write()?;
        self.handle(Input::LogStartMoved { log_start_offset });
        Ok(log_start_offset)
    }

    /// One retention pass over the log (time, size, log start offset).
    pub fn apply_retention(self: &Arc<Self>) -> Result<RetentionOutcome, ReplicationError> {
        let high_watermark = self.high_watermark();
        let (outcome, rolled) = {
            let mut log = lock(&self.log);
            let outcome = log.apply_retention(high_watermark)?;
            (outcome, log.has_unsynced_metadata())
        };
        self.handle(Input::LogStartMoved {
            log_start_offset: outcome.log_start_offset,
        });
        if rolled {
            // Deleting every segment rolled a new one: its names and snapshot.
            self.sync_in_background();
        }
        Ok(outcome)
    }

    /// Forgets producers idle for `producer.id.expiration.ms`.
    pub fn expire_producers(&self, max_idle_ms: i64) -> usize {
        lock(&self.log).expire_producers(max_idle_ms)
    }

    /// The producers this partition knows (DescribeProducers).
    pub fn producers(&self) -> Vec<ProducerEntry> {
        lock(&self.log)
            .producer_state()
            .producers()
            .cloned()
            .collect()
    }

    /// The log dir holding this partition, and the log's size in bytes.
    pub fn log_dir_and_size(&self) -> (Option<PathBuf>, u64) {
        let log = lock(&self.log);
        (
            log.dir().parent().map(|p| p.to_path_buf()),
            log.size_in_bytes(),
        )
    }

    /// What the cleaner needs to pick a log, when the topic is compacted and
    /// something below `upper_bound` is dirty. `first_dirty` is the checkpoint.
    pub fn compaction_view(&self, first_dirty: i64, upper_bound: i64) -> Option<CompactionView> {
        let log = lock(&self.log);
        let config = log.config();
        if !config.cleanup_policy_compact || log.check_online().is_err() {
            return None;
        }
        let first_dirty = first_dirty.max(log.log_start_offset().0);
        let dirtiness = storage::cleaner::dirtiness(&log, first_dirty, upper_bound);
        if dirtiness.dirty_bytes == 0 {
            return None;
        }
        let setting = |key: &str| config.values.get(key).map(|v| v.trim().to_string());
        let min_cleanable_dirty_ratio = setting("min.cleanable.dirty.ratio")
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.5);
        let max_compaction_lag_ms = setting("max.compaction.lag.ms")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(i64::MAX);
        let first_dirty_batch_timestamp = if max_compaction_lag_ms < i64::MAX {
            storage::cleaner::first_dirty_batch_timestamp(&log, first_dirty)
        } else {
            None
        };
        Some(CompactionView {
            min_cleanable_dirty_ratio,
            max_compaction_lag_ms,
            first_dirty,
            dirtiness,
            first_dirty_batch_timestamp,
        })
    }

    /// Whether the log's directory is online (a failed write or fsync takes it
    /// offline, see `storage::log`).
    pub fn is_online(&self) -> bool {
        lock(&self.log).check_online().is_ok()
    }

    /// Compacts the log once from `first_dirty` up to `upper_bound` (see
    /// `storage::cleaner::clean`). Blocking.
    pub fn clean(
        &self,
        first_dirty: i64,
        upper_bound: i64,
        config: &CleanerConfig,
        pace: &mut dyn FnMut(u64) -> ControlFlow<()>,
    ) -> Result<Option<CleanOutcome>, StorageError> {
        storage::cleaner::clean(&self.log, first_dirty, upper_bound, config, pace)
    }
}

impl Drop for HostedPartition {
    fn drop(&mut self) {
        // Wake any fetch still waiting so it re-checks and sees the partition gone.
        self.fetches.notify();
    }
}

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "partition_follower_tests.rs"]
mod follower_tests;
