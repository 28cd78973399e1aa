//! The consumer, shaped like Java's `KafkaConsumer`: `subscribe` (topics or a
//! pattern, with group membership) or `assign`, then `poll` in a loop.
//!
//! `poll` does, in order: rejoin the group if the heartbeat task or a
//! subscription change asked for it (running the rebalance callbacks), find a
//! position for every partition that has none (`seek`, the committed offset,
//! else `auto.offset.reset`), commit automatically when `auto.commit.interval.ms`
//! has passed, and return up to `max.poll.records` buffered records, fetching
//! (one request in flight per leader) when none are buffered.
//!
//! Positions are the next offset `poll` will return; commits store positions
//! (Kafka's convention: the committed offset is the next record to read). With
//! the eager protocol every partition is revoked before rejoining; with
//! cooperative-sticky only the partitions that move are revoked, and the consumer
//! rejoins at once to receive them elsewhere (KIP-429).
//!
//! ```no_run
//! use std::time::Duration;
//! use rivulet_client::{ClientConfig, Consumer};
//!
//! # async fn run() -> Result<(), rivulet_client::ClientError> {
//! let mut consumer = Consumer::new(
//!     ClientConfig::new()
//!         .set("bootstrap.servers", "127.0.0.1:9092")
//!         .set("group.id", "billing")
//!         .set("enable.auto.commit", "false")
//!         .set("partition.assignment.strategy", "cooperative-sticky"),
//! )
//! .await?;
//! consumer.subscribe(&["orders"])?;
//! loop {
//!     let records = consumer.poll(Duration::from_millis(500)).await?;
//!     for record in &records {
//!         println!("{}-{}@{}: {:?}", record.topic, record.partition, record.offset, record.value);
//!     }
//!     if !records.is_empty() {
//!         consumer.commit_sync().await?;
//!     }
//! }
//! # }
//! ```

pub mod assignor;
pub mod config;
pub mod fetcher;
pub mod group;
pub mod protocol;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use ::protocol::{ErrorCode, TopicPartition};
use regex::Regex;
use tokio::time::Instant;

use crate::cluster::{Cluster, MetadataScope};
use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::producer::ConsumerGroupMetadata;
use crate::rpc::{self, OffsetAndMetadata, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use assignor::RebalanceProtocol;
pub use config::{ConsumerConfig, IsolationLevel, OffsetReset};
pub use fetcher::ConsumerRecord;
use fetcher::{FetchEvent, Fetcher};
use group::Membership;

/// Called in `poll` around rebalances, as Java's `ConsumerRebalanceListener`.
pub trait RebalanceListener: Send {
    /// Before partitions are taken away (commit their offsets here).
    fn on_partitions_revoked(&mut self, _partitions: &[TopicPartition]) {}
    /// After partitions are given (for cooperative, only the new ones).
    fn on_partitions_assigned(&mut self, _partitions: &[TopicPartition]) {}
    /// Partitions lost without a chance to commit (the member was fenced).
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        self.on_partitions_revoked(partitions);
    }
}

#[derive(Debug)]
enum Subscribed {
    Nothing,
    Topics(BTreeSet<String>),
    Pattern {
        regex: Regex,
        matched: BTreeSet<String>,
    },
    Assigned,
}

#[derive(Debug, Clone, Default)]
struct PartitionState {
    position: Option<i64>,
    /// A seek to this ListOffsets timestamp is pending.
    reset_to: Option<i64>,
    paused: bool,
    high_watermark: Option<i64>,
}

/// An async Kafka consumer. Like Java's, it is used from one task at a time.
pub struct Consumer {
    config: ConsumerConfig,
    cluster: Arc<Cluster>,
    subscribed: Subscribed,
    assignment: BTreeMap<TopicPartition, PartitionState>,
    fetcher: Fetcher,
    membership: Option<Membership>,
    listener: Option<Box<dyn RebalanceListener>>,
    next_auto_commit: Instant,
    last_committed: BTreeMap<TopicPartition, i64>,
    pattern_checked_at: Option<Instant>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("group_id", &self.config.group_id)
            .field("subscribed", &self.subscribed)
            .finish()
    }
}

impl Consumer {
    /// Creates a consumer; it connects on first use.
    pub async fn new(config: ClientConfig) -> Result<Consumer> {
        let config = ConsumerConfig::from_config(&config)?;
        let cluster = Cluster::new(config.common.clone(), config.allow_auto_create_topics);
        let membership = config.group_id.clone().map(|g| Membership::new(g, &config));
        Ok(Consumer {
            next_auto_commit: Instant::now() + config.auto_commit_interval,
            config,
            cluster,
            subscribed: Subscribed::Nothing,
            assignment: BTreeMap::new(),
            fetcher: Fetcher::new(),
            membership,
            listener: None,
            last_committed: BTreeMap::new(),
            pattern_checked_at: None,
        })
    }

    /// Sets the rebalance callbacks.
    pub fn set_rebalance_listener(&mut self, listener: impl RebalanceListener + 'static) {
        self.listener = Some(Box::new(listener));
    }

    fn membership_or_error(&self, what: &str) -> Result<()> {
        match self.membership {
            Some(_) => Ok(()),
            None => Err(ClientError::InvalidArgument(format!(
                "{what} needs group.id in the consumer config"
            ))),
        }
    }

    /// Subscribes to `topics` with group membership (replaces any subscription).
    pub fn subscribe(&mut self, topics: &[&str]) -> Result<()> {
        self.membership_or_error("subscribe")?;
        if matches!(self.subscribed, Subscribed::Assigned) {
            return Err(ClientError::InvalidArgument(
                "subscribe after assign: call unsubscribe first".into(),
            ));
        }
        let topics: BTreeSet<String> = topics.iter().map(|t| t.to_string()).collect();
        self.cluster.set_interest(topics.clone());
        self.subscribed = Subscribed::Topics(topics);
        self.request_rejoin();
        Ok(())
    }

    /// Subscribes to every topic whose whole name matches `pattern` (a regex),
    /// checked again on each metadata refresh (`metadata.max.age.ms`).
    pub fn subscribe_pattern(&mut self, pattern: &str) -> Result<()> {
        self.membership_or_error("subscribe")?;
        let regex = Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| ClientError::InvalidArgument(format!("pattern {pattern:?}: {e}")))?;
        self.subscribed = Subscribed::Pattern {
            regex,
            matched: BTreeSet::new(),
        };
        self.pattern_checked_at = None;
        self.request_rejoin();
        Ok(())
    }

    /// Takes `partitions` without a group (replaces any assignment).
    pub fn assign(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        if matches!(
            self.subscribed,
            Subscribed::Topics(_) | Subscribed::Pattern { .. }
        ) {
            return Err(ClientError::InvalidArgument(
                "assign after subscribe: call unsubscribe first".into(),
            ));
        }
        let wanted: BTreeSet<&TopicPartition> = partitions.iter().collect();
        self.assignment.retain(|tp, _| wanted.contains(tp));
        for tp in partitions {
            self.assignment.entry(tp.clone()).or_default();
        }
        self.fetcher.forget_all();
        self.cluster
            .set_interest(partitions.iter().map(|tp| tp.topic.to_string()).collect());
        self.subscribed = Subscribed::Assigned;
        Ok(())
    }

    /// Drops the subscription or assignment (leaving the group).
    pub async fn unsubscribe(&mut self) -> Result<()> {
        let owned: Vec<TopicPartition> = self.assignment.keys().cloned().collect();
        if !owned.is_empty() && !matches!(self.subscribed, Subscribed::Assigned) {
            self.maybe_commit_before_revoke().await;
            self.with_listener(|l| l.on_partitions_revoked(&owned));
        }
        self.assignment.clear();
        self.fetcher.forget_all();
        self.subscribed = Subscribed::Nothing;
        if let Some(membership) = self.membership.as_mut() {
            membership.leave(&self.cluster, &self.config).await?;
        }
        Ok(())
    }

    /// The partitions assigned now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.assignment.keys().cloned().collect()
    }

    /// The subscribed topics (for a pattern: those it matched so far).
    pub fn subscription(&self) -> Vec<String> {
        match &self.subscribed {
            Subscribed::Topics(t) | Subscribed::Pattern { matched: t, .. } => {
                t.iter().cloned().collect()
            }
            _ => Vec::new(),
        }
    }

    fn request_rejoin(&self) {
        if let Some(m) = &self.membership {
            m.request_rejoin();
        }
    }

    fn with_listener(&mut self, f: impl FnOnce(&mut dyn RebalanceListener)) {
        if let Some(mut listener) = self.listener.take() {
            f(listener.as_mut());
            self.listener = Some(listener);
        }
    }

    fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        match &self.subscribed {
            Subscribed::Topics(t) | Subscribed::Pattern { matched: t, .. } => Some(t.clone()),
            _ => None,
        }
    }

    /// Returns the next records, waiting up to `timeout` when there are none.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        let deadline = Instant::now() + timeout;
        if let Some(m) = &self.membership {
            m.polled();
        }
        loop {
            self.check_pattern().await?;
            if self.subscribed_topics().is_some()
                && self.membership.as_ref().is_some_and(|m| m.needs_rejoin())
            {
                self.rebalance().await?;
            }
            self.update_positions().await?;
            self.maybe_auto_commit();
            let assignment = &self.assignment;
            let events = self
                .fetcher
                .complete_ready(self.config.isolation_level, |tp| {
                    assignment
                        .get(tp)
                        .filter(|s| !s.paused)
                        .and_then(|s| s.position)
                });
            self.handle_fetch_events(events).await?;
            let max = self.config.max_poll_records;
            let assignment = &self.assignment;
            let (records, positions) = self.fetcher.drain(max, |tp| {
                assignment
                    .get(tp)
                    .filter(|s| !s.paused)
                    .and_then(|s| s.position)
            });
            for (tp, position) in positions {
                if let Some(state) = self.assignment.get_mut(&tp) {
                    state.position = Some(position);
                }
            }
            let fetchable = self.fetchable();
            let unknown_leader = self
                .fetcher
                .send_fetches(&self.cluster, &self.config, &fetchable);
            // Return drained records before any await: the positions moved past
            // them, so a caller that drops this future (Ctrl-C) must not lose them.
            // An unknown leader is reported again by the next send_fetches.
            if !records.is_empty() {
                return Ok(records);
            }
            if unknown_leader {
                self.cluster.refresh().await?;
            }
            if Instant::now() >= deadline {
                return Ok(Vec::new());
            }
            if !self.fetcher.has_in_flight() {
                let wait = self
                    .config
                    .common
                    .retry_backoff
                    .max(Duration::from_millis(10));
                tokio::time::sleep_until(deadline.min(Instant::now() + wait)).await;
                continue;
            }
            let assignment = &self.assignment;
            let events = self
                .fetcher
                .complete_one(deadline, self.config.isolation_level, |tp| {
                    assignment
                        .get(tp)
                        .filter(|s| !s.paused)
                        .and_then(|s| s.position)
                })
                .await;
            self.handle_fetch_events(events).await?;
        }
    }

    fn fetchable(&self) -> Vec<(TopicPartition, i64)> {
        self.assignment
            .iter()
            .filter(|(_, s)| !s.paused)
            .filter_map(|(tp, s)| s.position.map(|p| (tp.clone(), p)))
            .collect()
    }

    async fn handle_fetch_events(&mut self, events: Vec<FetchEvent>) -> Result<()> {
        let mut refresh = false;
        for event in events {
            match event {
                FetchEvent::OffsetOutOfRange(tp) => {
                    let reset = match self.config.auto_offset_reset {
                        OffsetReset::Earliest => EARLIEST_TIMESTAMP,
                        OffsetReset::Latest => LATEST_TIMESTAMP,
                        OffsetReset::None => {
                            return Err(ClientError::kafka(
                                ErrorCode::OffsetOutOfRange,
                                tp.to_string(),
                            ))
                        }
                    };
                    if let Some(state) = self.assignment.get_mut(&tp) {
                        tracing::info!(%tp, position = ?state.position, "offset out of range; resetting per auto.offset.reset");
                        state.position = None;
                        state.reset_to = Some(reset);
                    }
                }
                FetchEvent::StaleMetadata => refresh = true,
                FetchEvent::Watermarks { tp, high_watermark } => {
                    if let Some(state) = self.assignment.get_mut(&tp) {
                        state.high_watermark = Some(high_watermark);
                    }
                }
                FetchEvent::Error(tp, error) => {
                    tracing::warn!(%tp, %error, "fetch error");
                    if !error.is_retriable() {
                        return Err(error);
                    }
                }
            }
        }
        if refresh {
            tokio::time::sleep(self.config.common.retry_backoff).await;
            self.cluster.refresh().await?;
        }
        Ok(())
    }

    /// For a pattern subscription: matches topics again when metadata is stale.
    async fn check_pattern(&mut self) -> Result<()> {
        let Subscribed::Pattern { regex, matched } = &self.subscribed else {
            return Ok(());
        };
        let due = self
            .pattern_checked_at
            .is_none_or(|at| at.elapsed() >= self.config.common.metadata_max_age);
        if !due {
            return Ok(());
        }
        let metadata = self.cluster.refresh_scope(MetadataScope::All).await?;
        self.pattern_checked_at = Some(Instant::now());
        let now: BTreeSet<String> = metadata
            .topics
            .values()
            .filter(|t| {
                !(t.is_internal && self.config.exclude_internal_topics) && regex.is_match(&t.name)
            })
            .map(|t| t.name.clone())
            .collect();
        if &now != matched {
            tracing::debug!(topics = ?now, "pattern subscription changed");
            self.cluster.set_interest(now.clone());
            let regex = regex.clone();
            self.subscribed = Subscribed::Pattern {
                regex,
                matched: now,
            };
            self.request_rejoin();
        }
        Ok(())
    }

    async fn rebalance(&mut self) -> Result<()> {
        let topics = self.subscribed_topics().unwrap_or_default();
        let protocol = self
            .membership
            .as_ref()
            .map_or(RebalanceProtocol::Eager, |m| m.rebalance_protocol);
        let owned: Vec<TopicPartition> = self.assignment.keys().cloned().collect();
        self.maybe_commit_before_revoke().await;
        if protocol == RebalanceProtocol::Eager && !owned.is_empty() {
            self.with_listener(|l| l.on_partitions_revoked(&owned));
            self.assignment.clear();
            self.fetcher.forget_all();
        }
        let keep: Vec<TopicPartition> = self.assignment.keys().cloned().collect();
        let membership = self
            .membership
            .as_mut()
            .expect("rebalance runs only with a group");
        let assigned = membership
            .join(&self.cluster, &self.config, &topics, &keep)
            .await?;
        let assigned: BTreeSet<TopicPartition> = assigned.into_iter().collect();
        let revoked: Vec<TopicPartition> = self
            .assignment
            .keys()
            .filter(|tp| !assigned.contains(*tp))
            .cloned()
            .collect();
        let added: Vec<TopicPartition> = assigned
            .iter()
            .filter(|tp| !self.assignment.contains_key(*tp))
            .cloned()
            .collect();
        if !revoked.is_empty() {
            self.with_listener(|l| l.on_partitions_revoked(&revoked));
            for tp in &revoked {
                self.assignment.remove(tp);
                self.fetcher.forget(tp);
            }
            if protocol == RebalanceProtocol::Cooperative {
                // KIP-429: rejoin so the revoked partitions can go to their new owner.
                self.request_rejoin();
            }
        }
        for tp in &added {
            self.assignment
                .insert(tp.clone(), PartitionState::default());
        }
        self.with_listener(|l| l.on_partitions_assigned(&added));
        Ok(())
    }

    /// Finds a position for each assigned partition without one.
    async fn update_positions(&mut self) -> Result<()> {
        let missing: Vec<TopicPartition> = self
            .assignment
            .iter()
            .filter(|(_, s)| s.position.is_none())
            .map(|(tp, _)| tp.clone())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let need_committed: Vec<TopicPartition> = missing
            .iter()
            .filter(|tp| self.assignment[*tp].reset_to.is_none())
            .cloned()
            .collect();
        let committed = match (&self.config.group_id, need_committed.is_empty()) {
            (Some(group), false) => {
                let stable = self.config.isolation_level == IsolationLevel::ReadCommitted;
                rpc::fetch_committed(&self.cluster, group, Some(&need_committed), stable).await?
            }
            _ => BTreeMap::new(),
        };
        let mut queries = Vec::new();
        for tp in &missing {
            let state = self
                .assignment
                .get_mut(tp)
                .expect("missing partitions are assigned");
            if let Some(timestamp) = state.reset_to {
                queries.push((tp.clone(), timestamp));
            } else if let Some(offset) = committed.get(tp) {
                state.position = Some(offset.offset);
                self.last_committed.insert(tp.clone(), offset.offset);
            } else {
                match self.config.auto_offset_reset {
                    OffsetReset::Earliest => queries.push((tp.clone(), EARLIEST_TIMESTAMP)),
                    OffsetReset::Latest => queries.push((tp.clone(), LATEST_TIMESTAMP)),
                    OffsetReset::None => {
                        return Err(ClientError::InvalidArgument(format!(
                            "no committed offset for {tp} and auto.offset.reset=none (NoOffsetForPartitionException)"
                        )))
                    }
                }
            }
        }
        if queries.is_empty() {
            return Ok(());
        }
        let found =
            rpc::list_offsets(&self.cluster, &queries, self.config.isolation_level.wire()).await?;
        let mut past_end = Vec::new();
        for (tp, listed) in found {
            if let Some(state) = self.assignment.get_mut(&tp) {
                if listed.offset < 0 {
                    // No record at or after the timestamp: start at the end.
                    past_end.push((tp.clone(), LATEST_TIMESTAMP));
                } else {
                    state.position = Some(listed.offset);
                    state.reset_to = None;
                }
            }
        }
        if !past_end.is_empty() {
            for (tp, listed) in
                rpc::list_offsets(&self.cluster, &past_end, self.config.isolation_level.wire())
                    .await?
            {
                if let Some(state) = self.assignment.get_mut(&tp) {
                    state.position = Some(listed.offset.max(0));
                    state.reset_to = None;
                }
            }
        }
        Ok(())
    }

    fn positions_to_commit(&self) -> BTreeMap<TopicPartition, OffsetAndMetadata> {
        self.assignment
            .iter()
            .filter_map(|(tp, s)| s.position.map(|p| (tp.clone(), p)))
            .filter(|(tp, p)| self.last_committed.get(tp) != Some(p))
            .map(|(tp, p)| (tp, OffsetAndMetadata::new(p)))
            .collect()
    }

    fn maybe_auto_commit(&mut self) {
        if !self.config.enable_auto_commit || Instant::now() < self.next_auto_commit {
            return;
        }
        self.next_auto_commit = Instant::now() + self.config.auto_commit_interval;
        let offsets = self.positions_to_commit();
        if offsets.is_empty() || self.membership.as_ref().is_none_or(|m| !m.is_joined()) {
            return;
        }
        for (tp, o) in &offsets {
            self.last_committed.insert(tp.clone(), o.offset);
        }
        self.commit_async_offsets(offsets, None);
    }

    async fn maybe_commit_before_revoke(&mut self) {
        if self.config.enable_auto_commit && self.membership.as_ref().is_some_and(|m| m.is_joined())
        {
            if let Err(e) = self.commit_sync().await {
                tracing::warn!(error = %e, "auto commit before rebalance failed");
            }
        }
    }

    /// Commits the positions of all assigned partitions and waits.
    pub async fn commit_sync(&mut self) -> Result<()> {
        let offsets = self.positions_to_commit();
        self.commit_offsets_sync(offsets).await
    }

    /// Commits `offsets` (the next offset to read per partition) and waits.
    pub async fn commit_offsets_sync(
        &mut self,
        offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let group = self
            .config
            .group_id
            .clone()
            .ok_or_else(|| ClientError::InvalidArgument("commit needs group.id".into()))?;
        let committer = match &self.membership {
            Some(m) if m.is_joined() => m.committer(&self.config),
            _ => rpc::Committer::admin(),
        };
        match rpc::commit_offsets(&self.cluster, &group, &committer, &offsets).await {
            Ok(()) => {
                for (tp, o) in offsets {
                    self.last_committed.insert(tp, o.offset);
                }
                Ok(())
            }
            Err(e) => {
                if matches!(
                    e.code(),
                    Some(
                        ErrorCode::RebalanceInProgress
                            | ErrorCode::IllegalGeneration
                            | ErrorCode::UnknownMemberId
                    )
                ) {
                    self.request_rejoin();
                }
                Err(e)
            }
        }
    }

    /// Commits the positions in the background; `callback` gets the outcome.
    pub fn commit_async(&mut self, callback: Option<Box<dyn FnOnce(Result<()>) + Send>>) {
        let offsets = self.positions_to_commit();
        for (tp, o) in &offsets {
            self.last_committed.insert(tp.clone(), o.offset);
        }
        self.commit_async_offsets(offsets, callback);
    }

    fn commit_async_offsets(
        &self,
        offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
        callback: Option<Box<dyn FnOnce(Result<()>) + Send>>,
    ) {
        let Some(group) = self.config.group_id.clone() else {
            return;
        };
        let committer = match &self.membership {
            Some(m) if m.is_joined() => m.committer(&self.config),
            _ => rpc::Committer::admin(),
        };
        let cluster = Arc::clone(&self.cluster);
        let rejoin = self.membership.as_ref().map(|m| Arc::clone(&m.shared));
        tokio::spawn(async move {
            let result = if offsets.is_empty() {
                Ok(())
            } else {
                rpc::commit_offsets(&cluster, &group, &committer, &offsets).await
            };
            if let Err(e) = &result {
                tracing::warn!(group, error = %e, "async commit failed");
                if matches!(
                    e.code(),
                    Some(
                        ErrorCode::RebalanceInProgress
                            | ErrorCode::IllegalGeneration
                            | ErrorCode::UnknownMemberId
                    )
                ) {
                    if let Some(shared) = rejoin {
                        shared
                            .rejoin
                            .store(true, std::sync::atomic::Ordering::Release);
                    }
                }
            }
            if let Some(callback) = callback {
                callback(result);
            }
        });
    }

    /// The group's committed offsets for `partitions`.
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, OffsetAndMetadata>> {
        let group = self
            .config
            .group_id
            .as_deref()
            .ok_or_else(|| ClientError::InvalidArgument("committed needs group.id".into()))?;
        rpc::fetch_committed(
            &self.cluster,
            group,
            Some(partitions),
            self.config.isolation_level == IsolationLevel::ReadCommitted,
        )
        .await
    }

    fn state_mut(&mut self, tp: &TopicPartition) -> Result<&mut PartitionState> {
        self.assignment.get_mut(tp).ok_or_else(|| {
            ClientError::InvalidArgument(format!("{tp} is not assigned to this consumer"))
        })
    }

    /// The next `poll` returns records of `tp` from `offset`.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        let state = self.state_mut(tp)?;
        state.position = Some(offset);
        state.reset_to = None;
        self.fetcher.forget(tp);
        Ok(())
    }

    fn seek_to_timestamp(&mut self, partitions: &[TopicPartition], timestamp: i64) -> Result<()> {
        for tp in partitions {
            let state = self.state_mut(tp)?;
            state.position = None;
            state.reset_to = Some(timestamp);
            self.fetcher.forget(tp);
        }
        Ok(())
    }

    /// Seeks to each partition's log start offset.
    pub fn seek_to_beginning(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_to_timestamp(partitions, EARLIEST_TIMESTAMP)
    }

    /// Seeks to each partition's end (the next record produced).
    pub fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_to_timestamp(partitions, LATEST_TIMESTAMP)
    }

    /// Seeks to the first record at or after `timestamp_ms` (the end if none).
    pub fn seek_to_time(&mut self, partitions: &[TopicPartition], timestamp_ms: i64) -> Result<()> {
        self.seek_to_timestamp(partitions, timestamp_ms.max(0))
    }

    /// The offset of the next record `poll` returns for `tp`.
    pub async fn position(&mut self, tp: &TopicPartition) -> Result<i64> {
        self.state_mut(tp)?;
        self.update_positions().await?;
        self.assignment
            .get(tp)
            .and_then(|s| s.position)
            .ok_or_else(|| ClientError::kafka(ErrorCode::OffsetNotAvailable, tp.to_string()))
    }

    /// Stops returning records of `partitions` until `resume` (membership goes on).
    pub fn pause(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        for tp in partitions {
            self.state_mut(tp)?.paused = true;
            self.fetcher.forget(tp);
        }
        Ok(())
    }

    pub fn resume(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        for tp in partitions {
            self.state_mut(tp)?.paused = false;
        }
        Ok(())
    }

    pub fn paused(&self) -> Vec<TopicPartition> {
        self.assignment
            .iter()
            .filter(|(_, s)| s.paused)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// The lag of `tp` from the last fetch: high watermark minus position.
    pub fn lag(&self, tp: &TopicPartition) -> Option<i64> {
        let state = self.assignment.get(tp)?;
        Some(state.high_watermark? - state.position?)
    }

    /// The log start offsets of `partitions`.
    pub async fn beginning_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let queries: Vec<(TopicPartition, i64)> = partitions
            .iter()
            .map(|tp| (tp.clone(), EARLIEST_TIMESTAMP))
            .collect();
        Ok(rpc::list_offsets(&self.cluster, &queries, 0)
            .await?
            .into_iter()
            .map(|(tp, o)| (tp, o.offset))
            .collect())
    }

    /// The end offsets (high watermark; last stable offset with read_committed).
    pub async fn end_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let queries: Vec<(TopicPartition, i64)> = partitions
            .iter()
            .map(|tp| (tp.clone(), LATEST_TIMESTAMP))
            .collect();
        Ok(
            rpc::list_offsets(&self.cluster, &queries, self.config.isolation_level.wire())
                .await?
                .into_iter()
                .map(|(tp, o)| (tp, o.offset))
                .collect(),
        )
    }

    /// The partitions of `topic`.
    pub async fn partitions_for(&self, topic: &str) -> Result<Vec<TopicPartition>> {
        self.partitions_for_within(topic, self.config.common.request_timeout)
            .await
    }

    /// The partitions of `topic`, UNKNOWN_TOPIC_OR_PARTITION once `timeout` passes
    /// without the topic (the allow.auto.create.topics setting applies).
    pub async fn partitions_for_within(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> Result<Vec<TopicPartition>> {
        let info = self.cluster.topic_within(topic, timeout).await?;
        Ok(info
            .partitions
            .iter()
            .map(|p| TopicPartition::new(topic, p.partition))
            .collect())
    }

    /// For `Producer::send_offsets_to_transaction`.
    pub fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        let membership = self.membership.as_ref()?;
        Some(ConsumerGroupMetadata {
            group_id: membership.group_id.clone(),
            generation_id: membership.generation_id,
            member_id: membership.member_id.clone(),
            group_instance_id: self.config.group_instance_id.clone(),
        })
    }

    /// Commits (with auto commit), revokes, leaves the group and disconnects.
    pub async fn close(mut self) -> Result<()> {
        let owned: Vec<TopicPartition> = self.assignment.keys().cloned().collect();
        let grouped = !matches!(self.subscribed, Subscribed::Assigned | Subscribed::Nothing);
        self.maybe_commit_before_revoke().await;
        if grouped && !owned.is_empty() {
            self.with_listener(|l| l.on_partitions_revoked(&owned));
        }
        let result = match self.membership.as_mut() {
            Some(membership) => membership.leave(&self.cluster, &self.config).await,
            None => Ok(()),
        };
        self.cluster.close();
        result
    }
}
