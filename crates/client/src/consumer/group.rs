//! Consumer group membership, the classic protocol, as Kafka's
//! `ConsumerCoordinator`:
//!
//! ```text
//! FindCoordinator -> JoinGroup (MEMBER_ID_REQUIRED: again with the given id)
//!   leader:   assign with the protocol the coordinator chose -> SyncGroup(assignments)
//!   follower: SyncGroup(empty) -> its assignment
//! then Heartbeat every heartbeat.interval.ms on a background task;
//! REBALANCE_IN_PROGRESS -> rejoin on the next poll; LeaveGroup on close.
//! ```
//!
//! The heartbeat task only raises flags (rejoin, member id reset); the consumer
//! acts on them in `poll`, where rebalance callbacks run. If `poll` is not called
//! for `max.poll.interval.ms`, the task leaves the group, as Java's does, so the
//! partitions move to live members.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::kafka::messages::join_group_request::JoinGroupRequestProtocol;
use protocol::kafka::messages::leave_group_request::MemberIdentity;
use protocol::kafka::messages::sync_group_request::SyncGroupRequestAssignment;
use protocol::kafka::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};
use protocol::kafka::protocol::StrBytes;
use protocol::{ErrorCode, TopicPartition};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::cluster::{Cluster, MetadataScope};
use crate::consumer::assignor::{common_protocol, MemberSubscription, RebalanceProtocol};
use crate::consumer::config::ConsumerConfig;
use crate::consumer::protocol::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription, Assignment,
    Subscription,
};
use crate::error::{ClientError, Result};
use crate::rpc::{sb, Committer};

/// Flags the heartbeat task raises for the consumer.
#[derive(Debug)]
pub(crate) struct HeartbeatShared {
    pub rejoin: AtomicBool,
    pub reset_member: AtomicBool,
    pub last_poll: Mutex<Instant>,
}

/// The member's state in its group.
pub(crate) struct Membership {
    pub group_id: String,
    pub member_id: String,
    pub generation_id: i32,
    pub protocol_name: Option<String>,
    pub rebalance_protocol: RebalanceProtocol,
    pub shared: Arc<HeartbeatShared>,
    joined: bool,
    heartbeat: Option<JoinHandle<()>>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.stop_heartbeat();
    }
}

impl Membership {
    pub fn new(group_id: String, config: &ConsumerConfig) -> Membership {
        Membership {
            group_id,
            member_id: String::new(),
            generation_id: -1,
            protocol_name: None,
            rebalance_protocol: common_protocol(&config.assignors),
            shared: Arc::new(HeartbeatShared {
                rejoin: AtomicBool::new(false),
                reset_member: AtomicBool::new(false),
                last_poll: Mutex::new(Instant::now()),
            }),
            joined: false,
            heartbeat: None,
        }
    }

    pub fn needs_rejoin(&self) -> bool {
        !self.joined || self.shared.rejoin.load(Ordering::Acquire)
    }

    pub fn request_rejoin(&self) {
        self.shared.rejoin.store(true, Ordering::Release);
    }

    pub fn is_joined(&self) -> bool {
        self.joined
    }

    pub fn polled(&self) {
        *self
            .shared
            .last_poll
            .lock()
            .expect("last poll lock poisoned") = Instant::now();
    }

    pub fn committer(&self, config: &ConsumerConfig) -> Committer {
        Committer {
            generation_id: self.generation_id,
            member_id: self.member_id.clone(),
            group_instance_id: config.group_instance_id.clone(),
        }
    }

    /// Joins (or rejoins) the group and returns the assignment. `owned` are the
    /// partitions the member keeps through the rebalance (cooperative), sent as
    /// its owned partitions.
    pub async fn join(
        &mut self,
        cluster: &Arc<Cluster>,
        config: &ConsumerConfig,
        topics: &BTreeSet<String>,
        owned: &[TopicPartition],
    ) -> Result<Vec<TopicPartition>> {
        self.stop_heartbeat();
        if self.shared.reset_member.swap(false, Ordering::AcqRel) {
            self.member_id.clear();
            self.generation_id = -1;
        }
        self.shared.rejoin.store(false, Ordering::Release);
        let deadline = Instant::now() + config.max_poll_interval + config.common.request_timeout;
        loop {
            match self.join_once(cluster, config, topics, owned).await {
                Ok(assignment) => {
                    self.joined = true;
                    self.start_heartbeat(cluster, config);
                    return Ok(assignment);
                }
                Err(e) if Instant::now() < deadline && rejoinable(&e) => {
                    tracing::debug!(group = %self.group_id, error = %e, "rejoining");
                    match e.code() {
                        Some(ErrorCode::UnknownMemberId) => {
                            self.member_id.clear();
                            self.generation_id = -1;
                        }
                        Some(ErrorCode::IllegalGeneration) => self.generation_id = -1,
                        Some(ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable) => {
                            cluster.coordinator_dead(0, &self.group_id)
                        }
                        _ => {}
                    }
                    if !matches!(
                        e.code(),
                        Some(ErrorCode::MemberIdRequired | ErrorCode::RebalanceInProgress)
                    ) {
                        tokio::time::sleep(config.common.retry_backoff).await;
                    }
                    if e.needs_metadata_refresh() && e.code().is_none() {
                        cluster.coordinator_dead(0, &self.group_id);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn join_once(
        &mut self,
        cluster: &Arc<Cluster>,
        config: &ConsumerConfig,
        topics: &BTreeSet<String>,
        owned: &[TopicPartition],
    ) -> Result<Vec<TopicPartition>> {
        let subscription = Subscription {
            topics: topics.iter().cloned().collect(),
            user_data: None,
            owned_partitions: if self.rebalance_protocol == RebalanceProtocol::Cooperative {
                owned.to_vec()
            } else {
                Vec::new()
            },
            generation_id: self.generation_id,
            rack_id: config.client_rack.clone(),
        };
        let metadata = encode_subscription(&subscription)?;
        let protocols = config
            .assignors
            .iter()
            .map(|a| {
                JoinGroupRequestProtocol::default()
                    .with_name(sb(a.name()))
                    .with_metadata(metadata.clone())
            })
            .collect();
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(sb(&self.group_id)))
            .with_session_timeout_ms(config.session_timeout.as_millis() as i32)
            .with_rebalance_timeout_ms(
                config.max_poll_interval.as_millis().min(i32::MAX as u128) as i32
            )
            .with_member_id(sb(&self.member_id))
            .with_group_instance_id(config.group_instance_id.as_deref().map(sb))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(protocols);
        let connection = cluster.coordinator(0, &self.group_id).await?;
        let response = connection
            .send_with_extra_time(&request, config.max_poll_interval + Duration::from_secs(5))
            .await?;
        if response.error_code == ErrorCode::MemberIdRequired.code() {
            self.member_id = response.member_id.to_string();
        }
        ClientError::check(
            response.error_code,
            || format!("JoinGroup {}", self.group_id),
            None,
        )?;
        self.member_id = response.member_id.to_string();
        self.generation_id = response.generation_id;
        let protocol_name = response
            .protocol_name
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default();
        self.protocol_name = Some(protocol_name.clone());
        let assignments = if response.leader == response.member_id && !response.skip_assignment {
            let members = response
                .members
                .iter()
                .map(|m| {
                    Ok(MemberSubscription {
                        member_id: m.member_id.to_string(),
                        group_instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
                        subscription: decode_subscription(&m.metadata)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            self.leader_assign(cluster, config, &protocol_name, &members)
                .await?
        } else {
            Vec::new()
        };
        let sync = SyncGroupRequest::default()
            .with_group_id(GroupId(sb(&self.group_id)))
            .with_generation_id(self.generation_id)
            .with_member_id(sb(&self.member_id))
            .with_group_instance_id(config.group_instance_id.as_deref().map(sb))
            .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
            .with_protocol_name(Some(sb(&protocol_name)))
            .with_assignments(assignments);
        let response = connection
            .send_with_extra_time(&sync, config.max_poll_interval)
            .await?;
        ClientError::check(
            response.error_code,
            || format!("SyncGroup {}", self.group_id),
            None,
        )?;
        let assignment = decode_assignment(&response.assignment)?;
        tracing::debug!(group = %self.group_id, generation = self.generation_id, member = %self.member_id, partitions = assignment.partitions.len(), "joined");
        Ok(assignment.partitions)
    }

    async fn leader_assign(
        &self,
        cluster: &Arc<Cluster>,
        config: &ConsumerConfig,
        protocol_name: &str,
        members: &[MemberSubscription],
    ) -> Result<Vec<SyncGroupRequestAssignment>> {
        let assignor = config.assignors.iter().find(|a| a.name() == protocol_name).ok_or_else(|| {
            ClientError::Protocol(format!("the coordinator chose assignor {protocol_name:?}, which this member did not offer"))
        })?;
        let topics: BTreeSet<String> = members
            .iter()
            .flat_map(|m| m.subscription.topics.iter().cloned())
            .collect();
        let metadata = cluster
            .refresh_scope(MetadataScope::Topics(topics.iter().cloned().collect()))
            .await?;
        let partitions_per_topic: BTreeMap<String, i32> = topics
            .iter()
            .filter_map(|t| metadata.partition_count(t).map(|n| (t.clone(), n as i32)))
            .collect();
        let layout = assignor.assign(&partitions_per_topic, members);
        layout
            .into_iter()
            .map(|(member, partitions)| {
                let bytes = encode_assignment(&Assignment {
                    partitions,
                    user_data: None,
                })?;
                Ok(SyncGroupRequestAssignment::default()
                    .with_member_id(sb(&member))
                    .with_assignment(bytes))
            })
            .collect()
    }

    fn start_heartbeat(&mut self, cluster: &Arc<Cluster>, config: &ConsumerConfig) {
        self.stop_heartbeat();
        let task = HeartbeatTask {
            cluster: Arc::clone(cluster),
            shared: Arc::clone(&self.shared),
            group_id: self.group_id.clone(),
            member_id: self.member_id.clone(),
            generation_id: self.generation_id,
            group_instance_id: config.group_instance_id.clone(),
            interval: config.heartbeat_interval,
            max_poll_interval: config.max_poll_interval,
            retry_backoff: config.common.retry_backoff,
        };
        self.polled();
        self.heartbeat = Some(tokio::spawn(task.run()));
    }

    pub fn stop_heartbeat(&mut self) {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
    }

    /// Leaves the group (LeaveGroup), so its partitions move at once.
    pub async fn leave(&mut self, cluster: &Arc<Cluster>, config: &ConsumerConfig) -> Result<()> {
        self.stop_heartbeat();
        // As Java's consumer: a member that has an id leaves even while a join is
        // pending (a Ctrl-C during a rebalance), so the group need not wait out its
        // session.
        if self.member_id.is_empty() {
            return Ok(());
        }
        self.joined = false;
        let result = send_leave(
            cluster,
            &self.group_id,
            &self.member_id,
            config.group_instance_id.as_deref(),
            "the consumer is closing",
        )
        .await;
        self.member_id.clear();
        self.generation_id = -1;
        result
    }
}

fn rejoinable(error: &ClientError) -> bool {
    error.is_retriable()
        || matches!(
            error.code(),
            Some(
                ErrorCode::MemberIdRequired
                    | ErrorCode::RebalanceInProgress
                    | ErrorCode::UnknownMemberId
                    | ErrorCode::IllegalGeneration
            )
        )
}

async fn send_leave(
    cluster: &Arc<Cluster>,
    group: &str,
    member_id: &str,
    instance: Option<&str>,
    reason: &str,
) -> Result<()> {
    let connection = cluster.coordinator(0, group).await?;
    let version = connection.version_of::<LeaveGroupRequest>()?;
    let mut request = LeaveGroupRequest::default().with_group_id(GroupId(sb(group)));
    if version >= 3 {
        request = request.with_members(vec![MemberIdentity::default()
            .with_member_id(sb(member_id))
            .with_group_instance_id(instance.map(sb))
            .with_reason(Some(sb(reason)))]);
    } else {
        request = request.with_member_id(sb(member_id));
    }
    let response = connection.send_version(&request, version, None).await?;
    ClientError::check(response.error_code, || format!("LeaveGroup {group}"), None)
}

struct HeartbeatTask {
    cluster: Arc<Cluster>,
    shared: Arc<HeartbeatShared>,
    group_id: String,
    member_id: String,
    generation_id: i32,
    group_instance_id: Option<String>,
    interval: Duration,
    max_poll_interval: Duration,
    retry_backoff: Duration,
}

impl HeartbeatTask {
    async fn run(self) {
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(sb(&self.group_id)))
            .with_generation_id(self.generation_id)
            .with_member_id(sb(&self.member_id))
            .with_group_instance_id(self.group_instance_id.as_deref().map(sb));
        let mut wait = self.interval;
        loop {
            tokio::time::sleep(wait).await;
            wait = self.interval;
            let since_poll = self
                .shared
                .last_poll
                .lock()
                .expect("last poll lock poisoned")
                .elapsed();
            if since_poll > self.max_poll_interval {
                tracing::warn!(group = %self.group_id, "poll() not called within max.poll.interval.ms; leaving the group");
                let reason = "consumer poll timeout has expired";
                let _ = send_leave(
                    &self.cluster,
                    &self.group_id,
                    &self.member_id,
                    self.group_instance_id.as_deref(),
                    reason,
                )
                .await;
                self.shared.reset_member.store(true, Ordering::Release);
                self.shared.rejoin.store(true, Ordering::Release);
                return;
            }
            let result = match self.cluster.coordinator(0, &self.group_id).await {
                Ok(connection) => connection
                    .send(&request)
                    .await
                    .and_then(|r| ClientError::check(r.error_code, || "Heartbeat".into(), None)),
                Err(e) => Err(e),
            };
            match result.as_ref().err().map(|e| (e.code(), e)) {
                None => {}
                Some((Some(ErrorCode::RebalanceInProgress), _)) => {
                    self.shared.rejoin.store(true, Ordering::Release)
                }
                Some((Some(ErrorCode::UnknownMemberId | ErrorCode::FencedInstanceId), _)) => {
                    self.shared.reset_member.store(true, Ordering::Release);
                    self.shared.rejoin.store(true, Ordering::Release);
                    return;
                }
                Some((Some(ErrorCode::IllegalGeneration), _)) => {
                    self.shared.rejoin.store(true, Ordering::Release);
                    return;
                }
                Some((_, e)) => {
                    tracing::debug!(group = %self.group_id, error = %e, "heartbeat failed");
                    if e.needs_metadata_refresh() {
                        self.cluster.coordinator_dead(0, &self.group_id);
                    }
                    wait = self.retry_backoff;
                }
            }
        }
    }
}
