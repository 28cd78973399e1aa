//! The group state machine driven by a manual clock: timeouts without sleeping.
//! The harness carries out every write the coordinator queues at once (the log is
//! in memory), so each call reads as if it were synchronous.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use protocol::random::SeededRandom;
use protocol::time::{Clock, ManualClock};
use protocol::ErrorCode;

use super::coordinator::{
    GroupConfig, GroupCoordinator, GroupWrite, JoinCallback, JoinParams, JoinResult, SyncCallback,
    SyncParams, SyncResult,
};
use super::offsets::OffsetCommitEntry;
use super::pending::MAX_PENDING_MEMBERS;
use super::state::GroupState;

/// Keeps every appended record, per partition, like `__consumer_offsets` would.
#[derive(Default)]
struct MemoryLog {
    records: Mutex<Vec<(i32, Bytes, Option<Bytes>)>>,
    fail_with: Mutex<Option<ErrorCode>>,
}

impl MemoryLog {
    fn append(&self, write: GroupWrite) -> Result<(), ErrorCode> {
        if let Some(error) = *self.fail_with.lock().unwrap() {
            return Err(error);
        }
        let mut log = self.records.lock().unwrap();
        for (k, v) in write.records {
            log.push((write.partition, k, v));
        }
        Ok(())
    }
}

fn random() -> Arc<SeededRandom> {
    Arc::new(SeededRandom::new(0x5eed))
}

/// The coordinator with its writes carried out after every call that may write.
struct Settled {
    inner: GroupCoordinator,
    log: Arc<MemoryLog>,
}

impl Deref for Settled {
    type Target = GroupCoordinator;
    fn deref(&self) -> &GroupCoordinator {
        &self.inner
    }
}

impl DerefMut for Settled {
    fn deref_mut(&mut self) -> &mut GroupCoordinator {
        &mut self.inner
    }
}

impl Settled {
    /// Carries out queued writes, and those their continuations queue.
    fn settle(&mut self) {
        loop {
            let writes = self.inner.take_writes();
            if writes.is_empty() {
                return;
            }
            for (id, write) in writes {
                let result = self.log.append(write);
                self.inner.write_completed(id, result);
            }
        }
    }

    fn join(&mut self, params: JoinParams, respond: JoinCallback) {
        self.inner.join(params, respond);
        self.settle();
    }

    fn sync(&mut self, params: SyncParams, respond: SyncCallback) {
        self.inner.sync(params, respond);
        self.settle();
    }

    fn leave(
        &mut self,
        group_id: &str,
        leaving: &[(String, Option<String>)],
    ) -> Result<Vec<ErrorCode>, ErrorCode> {
        let left = self.inner.leave(group_id, leaving);
        self.settle();
        left
    }

    fn tick(&mut self) {
        self.inner.tick();
        self.settle();
    }

    fn commit_offsets(
        &mut self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        entries: &[OffsetCommitEntry],
    ) -> Vec<ErrorCode> {
        let out: Slot<Vec<ErrorCode>> = Arc::new(Mutex::new(None));
        let answer = out.clone();
        self.inner.commit_offsets(
            group_id,
            member_id,
            group_instance_id,
            generation_id,
            entries,
            Box::new(move |errors| *answer.lock().unwrap() = Some(errors)),
        );
        self.settle();
        let errors = out.lock().unwrap().take();
        errors.expect("answered once written")
    }

    #[allow(clippy::too_many_arguments)]
    fn txn_commit_offsets(
        &mut self,
        group_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        entries: &[OffsetCommitEntry],
    ) -> Vec<ErrorCode> {
        let out: Slot<Vec<ErrorCode>> = Arc::new(Mutex::new(None));
        let answer = out.clone();
        self.inner.txn_commit_offsets(
            group_id,
            producer_id,
            producer_epoch,
            member_id,
            group_instance_id,
            generation_id,
            entries,
            Box::new(move |errors| *answer.lock().unwrap() = Some(errors)),
        );
        self.settle();
        let errors = out.lock().unwrap().take();
        errors.expect("answered once written")
    }

    fn delete_group(&mut self, group_id: &str) -> ErrorCode {
        let out: Slot<ErrorCode> = Arc::new(Mutex::new(None));
        let answer = out.clone();
        self.inner.delete_group(
            group_id,
            Box::new(move |error| *answer.lock().unwrap() = Some(error)),
        );
        self.settle();
        let error = out.lock().unwrap().take();
        error.expect("answered once written")
    }
}

struct Harness {
    clock: Arc<ManualClock>,
    log: Arc<MemoryLog>,
    coordinator: Settled,
}

type Slot<T> = Arc<Mutex<Option<T>>>;

fn config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 3_000,
        ..GroupConfig::default()
    }
}

impl Harness {
    fn new(config: GroupConfig) -> Harness {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let log = Arc::new(MemoryLog::default());
        let coordinator = Settled {
            inner: GroupCoordinator::new(config, clock.clone(), random()),
            log: log.clone(),
        };
        Harness {
            clock,
            log,
            coordinator,
        }
    }

    fn join(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        protocols: &[(&str, &[u8])],
    ) -> Slot<JoinResult> {
        self.join_v(member_id, instance, protocols, 7)
    }

    /// A JoinGroup of request `version` (v4+ asks for MEMBER_ID_REQUIRED, v9+ can skip
    /// the assignment).
    fn join_v(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        protocols: &[(&str, &[u8])],
        version: i16,
    ) -> Slot<JoinResult> {
        let slot: Slot<JoinResult> = Arc::new(Mutex::new(None));
        let out = slot.clone();
        let params = JoinParams {
            group_id: "g".into(),
            member_id: member_id.into(),
            group_instance_id: instance.map(str::to_string),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|(n, m)| (n.to_string(), Bytes::copy_from_slice(m)))
                .collect(),
            require_known_member_id: version >= 4,
            supports_skip_assignment: version >= 9,
        };
        self.coordinator
            .join(params, Box::new(move |r| *out.lock().unwrap() = Some(r)));
        slot
    }

    /// The KIP-394 two-step join: returns the slot of the second join.
    fn join_new(&mut self, protocols: &[(&str, &[u8])]) -> Slot<JoinResult> {
        let first = self.join("", None, protocols);
        let first = first.lock().unwrap().clone().expect("answered at once");
        assert_eq!(first.error, ErrorCode::MemberIdRequired);
        assert!(!first.member_id.is_empty());
        self.join(&first.member_id, None, protocols)
    }

    fn sync(
        &mut self,
        member_id: &str,
        generation: i32,
        assignments: &[(&str, &[u8])],
    ) -> Slot<SyncResult> {
        let slot: Slot<SyncResult> = Arc::new(Mutex::new(None));
        let out = slot.clone();
        let params = SyncParams {
            group_id: "g".into(),
            generation_id: generation,
            member_id: member_id.into(),
            group_instance_id: None,
            protocol_type: Some("consumer".into()),
            protocol_name: None,
            assignments: assignments
                .iter()
                .map(|(m, a)| (m.to_string(), Bytes::copy_from_slice(a)))
                .collect(),
        };
        self.coordinator
            .sync(params, Box::new(move |r| *out.lock().unwrap() = Some(r)));
        slot
    }

    fn advance(&mut self, ms: i64) {
        self.clock.advance(ms);
        self.coordinator.tick();
    }

    fn state(&self) -> GroupState {
        self.coordinator
            .group("g")
            .map(|g| g.state)
            .unwrap_or(GroupState::Dead)
    }
}

fn take<T: Clone>(slot: &Slot<T>) -> Option<T> {
    slot.lock().unwrap().clone()
}

const RANGE: &[(&str, &[u8])] = &[("range", b"sub")];

/// Brings three members to a Stable generation 1; returns their ids, leader first.
fn stable_group_of_three(h: &mut Harness) -> Vec<String> {
    let joins: Vec<_> = (0..3).map(|_| h.join_new(RANGE)).collect();
    assert!(
        joins.iter().all(|j| take(j).is_none()),
        "joins wait for the initial delay"
    );
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    h.advance(3_000);
    let results: Vec<JoinResult> = joins
        .iter()
        .map(|j| take(j).expect("answered when the delay ended"))
        .collect();
    assert!(results
        .iter()
        .all(|r| r.error == ErrorCode::None && r.generation_id == 1));
    assert!(results
        .iter()
        .all(|r| r.protocol_name.as_deref() == Some("range")));
    let leader = results[0].leader.clone();
    assert!(results.iter().all(|r| r.leader == leader));
    let leader_result = results.iter().find(|r| r.member_id == leader).unwrap();
    assert_eq!(
        leader_result.members.len(),
        3,
        "the leader sees every member"
    );
    assert!(results
        .iter()
        .filter(|r| r.member_id != leader)
        .all(|r| r.members.is_empty()));
    let mut ids: Vec<String> = results.iter().map(|r| r.member_id.clone()).collect();
    ids.sort_by_key(|id| id != &leader);
    let followers: Vec<_> = ids[1..].iter().map(|id| h.sync(id, 1, &[])).collect();
    assert!(
        followers.iter().all(|s| take(s).is_none()),
        "followers wait for the leader's sync"
    );
    let assignment: Vec<(&str, &[u8])> = vec![
        (ids[0].as_str(), b"a0"),
        (ids[1].as_str(), b"a1"),
        (ids[2].as_str(), b"a2"),
    ];
    let leader_sync = h.sync(&ids[0], 1, &assignment);
    assert_eq!(
        take(&leader_sync).unwrap().assignment,
        Bytes::from_static(b"a0")
    );
    assert_eq!(
        take(&followers[0]).unwrap().assignment,
        Bytes::from_static(b"a1")
    );
    assert_eq!(
        take(&followers[1]).unwrap().assignment,
        Bytes::from_static(b"a2")
    );
    assert_eq!(h.state(), GroupState::Stable);
    ids
}

#[test]
fn three_members_rebalance_into_one_stable_generation_with_the_leaders_assignment() {
    let mut h = Harness::new(config());
    stable_group_of_three(&mut h);
    let stored = h.log.records.lock().unwrap().len();
    assert_eq!(stored, 1, "the assignment is persisted once");
}

#[test]
fn a_member_that_stops_heartbeating_is_removed_after_its_session_and_the_rest_rebalance() {
    let mut h = Harness::new(config());
    let ids = stable_group_of_three(&mut h);
    for _ in 0..3 {
        h.clock.advance(4_000);
        assert_eq!(
            h.coordinator.heartbeat("g", &ids[0], None, 1),
            ErrorCode::None
        );
        assert_eq!(
            h.coordinator.heartbeat("g", &ids[1], None, 1),
            ErrorCode::None
        );
        h.coordinator.tick();
    }
    // ids[2] last heard of 12 s ago with a 10 s session.
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(
        h.coordinator.heartbeat("g", &ids[0], None, 1),
        ErrorCode::RebalanceInProgress
    );
    assert_eq!(
        h.coordinator.heartbeat("g", &ids[2], None, 1),
        ErrorCode::UnknownMemberId
    );
    let a = h.join(&ids[0], None, RANGE);
    assert!(take(&a).is_none());
    let b = h.join(&ids[1], None, RANGE);
    let (a, b) = (take(&a).unwrap(), take(&b).unwrap());
    assert_eq!(
        (a.generation_id, b.generation_id),
        (2, 2),
        "completes as soon as every remaining member rejoined"
    );
    assert_eq!(h.state(), GroupState::CompletingRebalance);
}

#[test]
fn leaving_starts_a_rebalance_and_the_last_leave_empties_the_group() {
    let mut h = Harness::new(config());
    let ids = stable_group_of_three(&mut h);
    let errors = h.coordinator.leave("g", &[(ids[2].clone(), None)]).unwrap();
    assert_eq!(errors, vec![ErrorCode::None]);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    let errors = h
        .coordinator
        .leave(
            "g",
            &[
                (ids[0].clone(), None),
                (ids[1].clone(), None),
                ("ghost".into(), None),
            ],
        )
        .unwrap();
    assert_eq!(
        errors,
        vec![ErrorCode::None, ErrorCode::None, ErrorCode::UnknownMemberId]
    );
    assert_eq!(h.state(), GroupState::Empty);
}

#[test]
fn a_member_that_does_not_rejoin_within_the_rebalance_timeout_is_dropped() {
    let mut h = Harness::new(config());
    let ids = stable_group_of_three(&mut h);
    let a = h.join(&ids[0], None, &[("range", b"new-subscription")]);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    h.clock.advance(5_000);
    assert_eq!(
        h.coordinator.heartbeat("g", &ids[1], None, 1),
        ErrorCode::RebalanceInProgress
    );
    let b = h.join(&ids[1], None, RANGE);
    h.advance(25_001);
    let a = take(&a).expect("answered at the rebalance timeout");
    assert!(take(&b).is_some());
    assert_eq!(a.generation_id, 2);
    assert!(!h.coordinator.group("g").unwrap().has_member(&ids[2]));
}

#[test]
fn stale_generations_and_unknown_members_are_fenced_with_kafkas_codes() {
    let mut h = Harness::new(config());
    let ids = stable_group_of_three(&mut h);
    assert_eq!(
        h.coordinator.heartbeat("g", &ids[0], None, 0),
        ErrorCode::IllegalGeneration
    );
    assert_eq!(
        h.coordinator.heartbeat("g", "nobody", None, 1),
        ErrorCode::UnknownMemberId
    );
    assert_eq!(
        h.coordinator.heartbeat("other", &ids[0], None, 1),
        ErrorCode::UnknownMemberId
    );
    let sync = h.sync(&ids[1], 7, &[]);
    assert_eq!(take(&sync).unwrap().error, ErrorCode::IllegalGeneration);
    let entry = OffsetCommitEntry {
        topic: "t".into(),
        partition: 0,
        offset: 5,
        leader_epoch: -1,
        metadata: None,
    };
    assert_eq!(
        h.coordinator
            .commit_offsets("g", &ids[0], None, 0, std::slice::from_ref(&entry)),
        vec![ErrorCode::IllegalGeneration]
    );
    assert_eq!(
        h.coordinator
            .commit_offsets("g", "nobody", None, 1, std::slice::from_ref(&entry)),
        vec![ErrorCode::UnknownMemberId]
    );
    assert_eq!(
        h.coordinator
            .commit_offsets("g", &ids[0], None, 1, &[entry]),
        vec![ErrorCode::None]
    );
}

#[test]
fn bad_joins_get_kafkas_errors() {
    let mut h = Harness::new(config());
    let mut params = JoinParams {
        group_id: "g".into(),
        session_timeout_ms: 1_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::new())],
        ..JoinParams::default()
    };
    let slot: Slot<JoinResult> = Arc::new(Mutex::new(None));
    let out = slot.clone();
    h.coordinator.join(
        params.clone(),
        Box::new(move |r| *out.lock().unwrap() = Some(r)),
    );
    assert_eq!(take(&slot).unwrap().error, ErrorCode::InvalidSessionTimeout);
    params.session_timeout_ms = 10_000;
    params.member_id = "made-up".into();
    let out = slot.clone();
    h.coordinator.join(
        params.clone(),
        Box::new(move |r| *out.lock().unwrap() = Some(r)),
    );
    assert_eq!(take(&slot).unwrap().error, ErrorCode::UnknownMemberId);
    h.join_new(RANGE);
    params.member_id = String::new();
    params.protocol_type = "connect".into();
    let out = slot.clone();
    h.coordinator.join(
        params.clone(),
        Box::new(move |r| *out.lock().unwrap() = Some(r)),
    );
    assert_eq!(
        take(&slot).unwrap().error,
        ErrorCode::InconsistentGroupProtocol
    );
    params.protocol_type = "consumer".into();
    params.protocols = vec![("roundrobin".into(), Bytes::new())];
    let out = slot.clone();
    h.coordinator
        .join(params, Box::new(move |r| *out.lock().unwrap() = Some(r)));
    assert_eq!(
        take(&slot).unwrap().error,
        ErrorCode::InconsistentGroupProtocol
    );
}

#[test]
fn the_protocol_every_member_supports_wins_the_vote() {
    let mut h = Harness::new(GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    });
    let a = h.join_new(&[("cooperative-sticky", b""), ("range", b"")]);
    h.advance(0);
    let a = take(&a).unwrap();
    assert_eq!(a.protocol_name.as_deref(), Some("cooperative-sticky"));
    h.sync(&a.member_id, 1, &[]);
    let b = h.join_new(&[("range", b""), ("cooperative-sticky", b"")]);
    let a2 = h.join(
        &a.member_id,
        None,
        &[("cooperative-sticky", b""), ("range", b"")],
    );
    let (a2, b) = (take(&a2).unwrap(), take(&b).unwrap());
    assert_eq!(a2.generation_id, 2);
    // One vote each; ties go to the smallest name, as a deterministic rule.
    assert_eq!(a2.protocol_name, b.protocol_name);
}

#[test]
fn a_restarted_static_member_gets_its_assignment_back_without_a_rebalance() {
    let mut h = Harness::new(GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    });
    let a = h.join("", Some("instance-a"), RANGE);
    h.advance(0);
    let a = take(&a).unwrap();
    assert_eq!(
        a.error,
        ErrorCode::None,
        "static members skip MEMBER_ID_REQUIRED"
    );
    let sync = h.sync(
        &a.member_id,
        1,
        &[(a.member_id.as_str(), b"partitions-of-a")],
    );
    assert_eq!(take(&sync).unwrap().error, ErrorCode::None);
    // The process restarts: a new join with no member id and the same instance id.
    let again = h.join("", Some("instance-a"), RANGE);
    let again = take(&again).expect("answered at once");
    assert_eq!(again.error, ErrorCode::None);
    assert_eq!(again.generation_id, 1, "no new generation");
    assert_ne!(again.member_id, a.member_id);
    assert_eq!(h.state(), GroupState::Stable);
    let sync = h.sync(&again.member_id, 1, &[]);
    assert_eq!(
        take(&sync).unwrap().assignment,
        Bytes::from_static(b"partitions-of-a")
    );
    // The old incarnation is fenced.
    assert_eq!(
        h.coordinator
            .heartbeat("g", &a.member_id, Some("instance-a"), 1),
        ErrorCode::FencedInstanceId
    );
}

#[test]
fn committed_offsets_and_groups_survive_a_reload_from_the_log() {
    let mut h = Harness::new(GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    });
    let a = h.join("", Some("i1"), RANGE);
    h.advance(0);
    let a = take(&a).unwrap();
    h.sync(&a.member_id, 1, &[(a.member_id.as_str(), b"asg")]);
    let entries = vec![
        OffsetCommitEntry {
            topic: "t".into(),
            partition: 0,
            offset: 10,
            leader_epoch: 3,
            metadata: Some("meta".into()),
        },
        OffsetCommitEntry {
            topic: "t".into(),
            partition: 1,
            offset: 20,
            leader_epoch: -1,
            metadata: None,
        },
    ];
    assert_eq!(
        h.coordinator
            .commit_offsets("g", &a.member_id, Some("i1"), 1, &entries),
        vec![ErrorCode::None; 2]
    );
    assert_eq!(
        h.coordinator
            .commit_offsets("standalone", "", None, -1, &entries[..1]),
        vec![ErrorCode::None]
    );
    let records: Vec<(Bytes, Option<Bytes>)> = h
        .log
        .records
        .lock()
        .unwrap()
        .iter()
        .map(|(_, k, v)| (k.clone(), v.clone()))
        .collect();
    let mut reloaded = GroupCoordinator::new(GroupConfig::default(), h.clock.clone(), random());
    reloaded.load(records).unwrap();
    let fetched = reloaded.fetch_offsets(
        "g",
        Some(&[("t".into(), 0), ("t".into(), 1), ("t".into(), 2)]),
    );
    assert_eq!(
        fetched[0]
            .2
            .as_ref()
            .map(|c| (c.offset, c.leader_epoch, c.metadata.as_str())),
        Some((10, 3, "meta"))
    );
    assert_eq!(fetched[1].2.as_ref().map(|c| c.offset), Some(20));
    assert!(fetched[2].2.is_none());
    assert_eq!(reloaded.fetch_offsets("standalone", None).len(), 1);
    let group = reloaded.group("g").unwrap();
    assert_eq!(group.state, GroupState::Stable);
    assert_eq!(group.generation_id, 1);
    assert_eq!(
        group.members[&a.member_id].assignment,
        Bytes::from_static(b"asg")
    );
    assert_eq!(group.static_members.get("i1"), Some(&a.member_id));
}

#[test]
fn a_failed_write_is_not_acknowledged_and_leaves_the_cache_alone() {
    let mut h = Harness::new(config());
    *h.log.fail_with.lock().unwrap() = Some(ErrorCode::NotLeaderOrFollower);
    let entry = OffsetCommitEntry {
        topic: "t".into(),
        partition: 0,
        offset: 5,
        leader_epoch: -1,
        metadata: None,
    };
    assert_eq!(
        h.coordinator.commit_offsets("solo", "", None, -1, &[entry]),
        vec![ErrorCode::NotCoordinator]
    );
    assert!(h
        .coordinator
        .fetch_offsets("solo", Some(&[("t".into(), 0)]))[0]
        .2
        .is_none());
}

#[test]
fn only_empty_groups_can_be_deleted_and_offsets_in_use_cannot_be_deleted() {
    let mut h = Harness::new(config());
    let ids = stable_group_of_three(&mut h);
    assert_eq!(h.coordinator.delete_group("g"), ErrorCode::NonEmptyGroup);
    assert_eq!(
        h.coordinator.delete_group("nope"),
        ErrorCode::GroupIdNotFound
    );
    let leave: Vec<(String, Option<String>)> = ids.iter().map(|id| (id.clone(), None)).collect();
    h.coordinator.leave("g", &leave).unwrap();
    assert_eq!(h.state(), GroupState::Empty);
    assert_eq!(h.coordinator.delete_group("g"), ErrorCode::None);
    assert!(h.coordinator.group("g").is_none());
}

#[test]
fn offsets_of_a_group_empty_longer_than_the_retention_expire() {
    let mut h = Harness::new(GroupConfig {
        offsets_retention_ms: 60_000,
        offsets_retention_check_interval_ms: 1_000,
        ..GroupConfig::default()
    });
    let entry = OffsetCommitEntry {
        topic: "t".into(),
        partition: 0,
        offset: 5,
        leader_epoch: -1,
        metadata: None,
    };
    h.coordinator.commit_offsets("solo", "", None, -1, &[entry]);
    h.advance(30_000);
    assert_eq!(h.coordinator.fetch_offsets("solo", None).len(), 1);
    h.advance(31_000);
    assert!(h.coordinator.fetch_offsets("solo", None).is_empty());
    assert!(h.coordinator.group("solo").is_none());
}

/// A ConsumerProtocolSubscription v0 for `topics` (no user data).
fn subscription(topics: &[&str]) -> Vec<u8> {
    let mut out = vec![0, 0];
    out.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for topic in topics {
        out.extend_from_slice(&(topic.len() as i16).to_be_bytes());
        out.extend_from_slice(topic.as_bytes());
    }
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out
}

#[test]
fn a_stable_groups_offsets_of_unsubscribed_topics_expire_by_commit_time() {
    // KIP-211: while the group is Stable, the offsets of topics no member subscribes to
    // any more expire `offsets.retention.minutes` after their commit; the subscribed
    // topics' offsets stay however old.
    let mut h = Harness::new(GroupConfig {
        offsets_retention_ms: 60_000,
        offsets_retention_check_interval_ms: 1_000,
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    });
    let sub = subscription(&["a"]);
    let protocols: &[(&str, &[u8])] = &[("range", &sub)];
    let join = h.join_new(protocols);
    h.advance(0);
    let member = take(&join).expect("joined").member_id;
    take(&h.sync(&member, 1, &[(member.as_str(), b"asg")])).expect("synced");
    assert_eq!(h.state(), GroupState::Stable);
    let entry = |topic: &str| OffsetCommitEntry {
        topic: topic.into(),
        partition: 0,
        offset: 5,
        leader_epoch: -1,
        metadata: None,
    };
    // "b": committed while it was still subscribed (say), "a" is subscribed now.
    let codes = h
        .coordinator
        .commit_offsets("g", &member, None, 1, &[entry("a"), entry("b")]);
    assert_eq!(codes, vec![ErrorCode::None, ErrorCode::None]);
    for _ in 0..59 {
        h.advance(1_000);
        h.coordinator.heartbeat("g", &member, None, 1);
    }
    assert_eq!(committed_count(&h), 2, "not yet");
    h.advance(1_000);
    h.coordinator.heartbeat("g", &member, None, 1);
    let left: Vec<String> = h
        .coordinator
        .fetch_offsets("g", None)
        .into_iter()
        .filter(|(_, _, committed)| committed.is_some())
        .map(|(topic, _, _)| topic)
        .collect();
    assert_eq!(
        left,
        vec!["a".to_string()],
        "only the unsubscribed topic's offset expired"
    );
    assert_eq!(h.state(), GroupState::Stable);
    // One tombstone in the log, so a reload agrees.
    let tombstones = h
        .log
        .records
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, value)| value.is_none())
        .count();
    assert_eq!(tombstones, 1);
}

#[test]
fn a_stable_group_with_an_unreadable_subscription_expires_nothing() {
    let mut h = Harness::new(GroupConfig {
        offsets_retention_ms: 60_000,
        offsets_retention_check_interval_ms: 1_000,
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    });
    let join = h.join_new(RANGE); // metadata b"sub": not a ConsumerProtocolSubscription
    h.advance(0);
    let member = take(&join).expect("joined").member_id;
    take(&h.sync(&member, 1, &[(member.as_str(), b"asg")])).expect("synced");
    let entry = OffsetCommitEntry {
        topic: "b".into(),
        partition: 0,
        offset: 5,
        leader_epoch: -1,
        metadata: None,
    };
    h.coordinator
        .commit_offsets("g", &member, None, 1, &[entry]);
    for _ in 0..120 {
        h.advance(1_000);
        h.coordinator.heartbeat("g", &member, None, 1);
    }
    assert_eq!(committed_count(&h), 1);
}

fn committed_count(h: &Harness) -> usize {
    h.coordinator
        .fetch_offsets("g", None)
        .iter()
        .filter(|(_, _, c)| c.is_some())
        .count()
}

/// Two static members, Stable at generation 1; returns (leader, follower) join results.
fn stable_static_pair(h: &mut Harness) -> (JoinResult, JoinResult) {
    let a = h.join("", Some("ia"), RANGE);
    h.advance(0);
    let a = take(&a).unwrap();
    h.sync(&a.member_id, 1, &[(a.member_id.as_str(), b"asg-a")]);
    let b = h.join("", Some("ib"), RANGE);
    let a2 = h.join(&a.member_id, Some("ia"), RANGE);
    let (a2, b) = (take(&a2).unwrap(), take(&b).unwrap());
    assert_eq!((a2.generation_id, a2.leader == a2.member_id), (2, true));
    let bs = h.sync(&b.member_id, 2, &[]);
    h.sync(
        &a2.member_id,
        2,
        &[
            (a2.member_id.as_str(), b"asg-a"),
            (b.member_id.as_str(), b"asg-b"),
        ],
    );
    assert_eq!(take(&bs).unwrap().assignment, Bytes::from_static(b"asg-b"));
    assert_eq!(h.state(), GroupState::Stable);
    (a2, b)
}

#[test]
fn a_restarted_static_leader_is_not_told_it_leads_before_v9() {
    // Kafka (KIP-814): before JoinGroup v9 the answer names the previous leader id, so the
    // restarted leader syncs as a follower instead of assigning and then rejoining (which
    // made kafka-python's static leader rebalance the whole group on every restart).
    let mut h = Harness::new(GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    });
    let (leader, _) = stable_static_pair(&mut h);
    let again = take(&h.join_v("", Some("ia"), RANGE, 7)).expect("answered at once");
    assert_eq!(again.error, ErrorCode::None);
    assert_eq!(again.generation_id, 2);
    assert_eq!(again.leader, leader.member_id, "the previous leader id");
    assert_ne!(again.member_id, leader.member_id);
    assert!(again.members.is_empty() && !again.skip_assignment);
    assert_eq!(h.state(), GroupState::Stable);
    assert_eq!(
        take(&h.sync(&again.member_id, 2, &[])).unwrap().assignment,
        Bytes::from_static(b"asg-a")
    );
    // v9: it is the leader and sees the members, but skips the assignment
    let v9 = take(&h.join_v("", Some("ia"), RANGE, 9)).unwrap();
    assert_eq!(
        (
            v9.leader == v9.member_id,
            v9.skip_assignment,
            v9.members.len()
        ),
        (true, true, 2)
    );
    assert_eq!(h.state(), GroupState::Stable);
    assert_eq!(h.coordinator.group("g").unwrap().generation_id, 2);
}

#[test]
fn a_restarted_static_member_with_new_metadata_keeps_its_assignment_without_a_rebalance() {
    let mut h = Harness::new(GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    });
    let (_, follower) = stable_static_pair(&mut h);
    // cooperative-sticky members restart with different user data (no owned partitions)
    let again = take(&h.join("", Some("ib"), &[("range", b"other-metadata")])).unwrap();
    assert_eq!((again.error, again.generation_id), (ErrorCode::None, 2));
    assert_eq!(h.state(), GroupState::Stable);
    assert_ne!(again.member_id, follower.member_id);
    assert_eq!(
        take(&h.sync(&again.member_id, 2, &[])).unwrap().assignment,
        Bytes::from_static(b"asg-b")
    );
    // the stored member carries the new metadata, as DescribeGroups shows
    let described = h.coordinator.describe_group("g");
    let m = described
        .members
        .iter()
        .find(|m| m.member_id == again.member_id)
        .unwrap();
    assert_eq!(m.metadata, Bytes::from_static(b"other-metadata"));
}

#[test]
fn commits_are_fenced_before_they_are_told_to_wait_for_the_sync() {
    // Kafka checks the member and the generation first: a stale member committing while the
    // group completes a rebalance must learn it is stale (ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID),
    // not be told to wait (REBALANCE_IN_PROGRESS) and keep its partitions.
    let mut h = Harness::new(config());
    let ids = stable_group_of_three(&mut h);
    let joins: Vec<_> = ids
        .iter()
        .map(|id| h.join(id, None, &[("range", b"other")]))
        .collect();
    assert!(joins
        .iter()
        .all(|j| take(j).is_some_and(|r| r.generation_id == 2)));
    assert_eq!(h.state(), GroupState::CompletingRebalance);
    let entry = OffsetCommitEntry {
        topic: "t".into(),
        partition: 0,
        offset: 5,
        leader_epoch: -1,
        metadata: None,
    };
    let commit = |h: &mut Harness, member: &str, generation: i32| {
        h.coordinator
            .commit_offsets("g", member, None, generation, std::slice::from_ref(&entry))
    };
    assert_eq!(
        commit(&mut h, &ids[0], 1),
        vec![ErrorCode::IllegalGeneration]
    );
    assert_eq!(commit(&mut h, "gone", 1), vec![ErrorCode::UnknownMemberId]);
    assert_eq!(
        commit(&mut h, &ids[0], 2),
        vec![ErrorCode::RebalanceInProgress]
    );
}

#[test]
fn leaving_an_unknown_group_is_an_error_per_member() {
    let mut h = Harness::new(config());
    let leaving = vec![
        ("a".to_string(), None),
        (String::new(), Some("i".to_string())),
    ];
    assert_eq!(
        h.coordinator.leave("nope", &leaving),
        Ok(vec![ErrorCode::UnknownMemberId; 2])
    );
}

#[test]
fn transactional_offsets_count_only_once_their_transaction_commits() {
    let mut h = Harness::new(config());
    let entry = |offset| OffsetCommitEntry {
        topic: "t".into(),
        partition: 0,
        offset,
        leader_epoch: -1,
        metadata: None,
    };
    assert_eq!(
        h.coordinator
            .txn_commit_offsets("g", 7, 0, "", None, -1, &[entry(5)]),
        vec![ErrorCode::None]
    );
    assert!(
        h.coordinator.fetch_offsets("g", Some(&[("t".into(), 0)]))[0]
            .2
            .is_none()
    );
    assert!(h.coordinator.has_pending_transactional_offset("g", "t", 0));
    let partition = h.coordinator.partition_for("g");
    h.coordinator.complete_transaction(partition, 7, true);
    assert_eq!(
        h.coordinator.fetch_offsets("g", Some(&[("t".into(), 0)]))[0]
            .2
            .as_ref()
            .map(|c| c.offset),
        Some(5)
    );
    h.coordinator
        .txn_commit_offsets("g", 8, 0, "", None, -1, &[entry(9)]);
    h.coordinator.complete_transaction(partition, 8, false);
    assert_eq!(
        h.coordinator.fetch_offsets("g", Some(&[("t".into(), 0)]))[0]
            .2
            .as_ref()
            .map(|c| c.offset),
        Some(5),
        "aborted offsets are dropped"
    );

    // Replayed from the log: committed ones apply, open ones stay pending.
    use super::offsets::LoadEntry;
    use super::records::{OffsetsKey, StoredOffset};
    let record = |offset: i64| {
        let key = OffsetsKey::Offset {
            group: "g2".into(),
            topic: "t".into(),
            partition: 0,
        }
        .encode();
        let value = StoredOffset {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 1,
        }
        .encode();
        (key, Some(value))
    };
    let (k1, v1) = record(10);
    let (k2, v2) = record(20);
    let mut reloaded = GroupCoordinator::new(config(), h.clock.clone(), random());
    reloaded
        .load_entries(vec![
            LoadEntry::Record {
                key: k1,
                value: v1,
                producer_id: Some(1),
            },
            LoadEntry::Marker {
                producer_id: 1,
                commit: true,
            },
            LoadEntry::Record {
                key: k2,
                value: v2,
                producer_id: Some(2),
            },
        ])
        .unwrap();
    assert_eq!(
        reloaded.fetch_offsets("g2", None)[0]
            .2
            .as_ref()
            .map(|c| c.offset),
        Some(10)
    );
    assert!(reloaded.has_pending_transactional_offset("g2", "t", 0));
}

#[test]
fn without_an_initial_delay_a_new_group_completes_its_first_join_at_once() {
    // group.initial.rebalance.delay.ms=0: nothing to wait for, so no waiting for a tick.
    let mut h = Harness::new(GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    });
    let a = h.join_new(RANGE);
    let a = take(&a).expect("answered without a tick");
    assert_eq!(
        (a.error, a.generation_id, a.leader == a.member_id),
        (ErrorCode::None, 1, true)
    );
    assert_eq!(h.state(), GroupState::CompletingRebalance);
}

#[test]
fn ticks_only_visit_groups_with_a_timer_due() {
    let mut h = Harness::new(config());
    let ids = stable_group_of_three(&mut h);
    let group = h.coordinator.group("g").unwrap();
    let now = h.clock.now_ms();
    assert!(
        !group.timer_due(now),
        "a Stable group between heartbeats has nothing due"
    );
    assert!(group.timer_due(now + 10_000), "sessions of 10 s run out");
    // a member waiting in a rebalance is not expired by its session, the rebalance deadline is due
    h.join(&ids[0], None, &[("range", b"changed")]);
    let group = h.coordinator.group("g").unwrap();
    assert!(!group.timer_due(now + 1));
    assert!(group.timer_due(now + 30_000));
}

#[test]
fn a_member_that_never_syncs_is_removed_at_the_rebalance_timeout() {
    let mut h = Harness::new(GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    });
    let a = take(&h.join_new(RANGE)).unwrap();
    h.sync(&a.member_id, 1, &[(a.member_id.as_str(), b"a")]);
    let b = h.join_new(RANGE);
    let a2 = take(&h.join(&a.member_id, None, RANGE)).unwrap();
    let b = take(&b).unwrap();
    assert_eq!((a2.generation_id, b.generation_id), (2, 2));
    // the leader syncs; b never does (and keeps heartbeating, so its session lives)
    h.sync(
        &a.member_id,
        2,
        &[(a.member_id.as_str(), b"a"), (b.member_id.as_str(), b"b")],
    );
    assert_eq!(h.state(), GroupState::Stable);
    for _ in 0..5 {
        h.clock.advance(5_000);
        assert_eq!(
            h.coordinator.heartbeat("g", &b.member_id, None, 2),
            ErrorCode::None
        );
        assert_eq!(
            h.coordinator.heartbeat("g", &a.member_id, None, 2),
            ErrorCode::None
        );
        h.coordinator.tick();
    }
    h.advance(5_001); // 30 s: the members' rebalance timeout
    assert!(!h.coordinator.group("g").unwrap().has_member(&b.member_id));
    assert_eq!(
        h.coordinator.heartbeat("g", &a.member_id, None, 2),
        ErrorCode::RebalanceInProgress
    );
}

#[test]
fn member_ids_handed_out_are_bounded_and_the_oldest_unused_goes_first() {
    let mut h = Harness::new(GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    });
    let ids: Vec<String> = (0..MAX_PENDING_MEMBERS + 1)
        .map(|_| {
            let r = take(&h.join("", None, RANGE)).unwrap();
            assert_eq!(r.error, ErrorCode::MemberIdRequired);
            r.member_id
        })
        .collect();
    // One more than the group keeps: the first is gone and must start over.
    assert_eq!(
        take(&h.join(&ids[0], None, RANGE)).unwrap().error,
        ErrorCode::UnknownMemberId
    );
    let last = h.join(&ids[MAX_PENDING_MEMBERS], None, RANGE);
    // The other 999 ids are still pending: the join phase waits for them, then they expire.
    h.advance(10_000);
    let last = take(&last).expect("completed once the pending members expired");
    assert_eq!(
        (last.error, last.generation_id, last.members.len()),
        (ErrorCode::None, 1, 1)
    );
}

#[test]
fn a_member_id_handed_out_but_never_used_holds_the_rebalance_until_its_session_ends() {
    let mut h = Harness::new(GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    });
    let a = take(&h.join_new(RANGE)).unwrap();
    h.sync(&a.member_id, 1, &[(a.member_id.as_str(), b"a")]);
    // b asks for a member id (MEMBER_ID_REQUIRED) and disappears
    assert_eq!(
        take(&h.join("", None, RANGE)).unwrap().error,
        ErrorCode::MemberIdRequired
    );
    // a rejoins as leader: the rebalance waits for the pending member, as Kafka's does
    let a2 = h.join(&a.member_id, None, RANGE);
    h.advance(9_000);
    assert!(take(&a2).is_none());
    h.advance(1_000); // the pending member's 10 s session
    let a2 = take(&a2).expect("completed once the pending member expired");
    assert_eq!(
        (a2.error, a2.generation_id, a2.members.len()),
        (ErrorCode::None, 2, 1)
    );
}

// ---- Writes outside the lock: answered once written, applied in write order ----

fn commit_entry(offset: i64) -> OffsetCommitEntry {
    OffsetCommitEntry {
        topic: "t".into(),
        partition: 0,
        offset,
        leader_epoch: -1,
        metadata: None,
    }
}

#[test]
fn a_commit_is_answered_and_cached_only_once_its_write_is_done() {
    let mut h = Harness::new(config());
    let answer: Slot<Vec<ErrorCode>> = Arc::new(Mutex::new(None));
    let out = answer.clone();
    h.coordinator.inner.commit_offsets(
        "solo",
        "",
        None,
        -1,
        &[commit_entry(5)],
        Box::new(move |errors| *out.lock().unwrap() = Some(errors)),
    );
    assert_eq!(take(&answer), None);
    assert!(h.coordinator.fetch_offsets("solo", None).is_empty());
    let writes = h.coordinator.take_writes();
    assert_eq!(writes.len(), 1);
    let (id, write) = &writes[0];
    assert_eq!(write.partition, h.coordinator.partition_for("solo"));
    assert_eq!(write.records.len(), 1);
    assert_eq!(write.producer, None);
    h.coordinator.write_completed(*id, Ok(()));
    assert_eq!(take(&answer), Some(vec![ErrorCode::None]));
    assert_eq!(
        h.coordinator.fetch_offsets("solo", None)[0]
            .2
            .as_ref()
            .map(|c| c.offset),
        Some(5)
    );
}

#[test]
fn commits_in_flight_together_end_as_the_log_has_them() {
    let mut h = Harness::new(config());
    for offset in [5, 7] {
        h.coordinator.inner.commit_offsets(
            "solo",
            "",
            None,
            -1,
            &[commit_entry(offset)],
            Box::new(|_| {}),
        );
    }
    let writes = h.coordinator.take_writes();
    assert_eq!(writes.len(), 2, "both queued before either is written");
    for (id, _) in writes {
        h.coordinator.write_completed(id, Ok(()));
    }
    assert_eq!(
        h.coordinator.fetch_offsets("solo", None)[0]
            .2
            .as_ref()
            .map(|c| c.offset),
        Some(7)
    );
}

/// Two members at generation 1 in CompletingRebalance; returns their ids.
fn completing_group_of_two(h: &mut Harness) -> (String, String) {
    let joins: Vec<_> = (0..2).map(|_| h.join_new(RANGE)).collect();
    h.advance(3_000);
    let results: Vec<JoinResult> = joins.iter().map(|j| take(j).unwrap()).collect();
    assert_eq!(h.state(), GroupState::CompletingRebalance);
    let leader = results[0].leader.clone();
    let other = results
        .iter()
        .map(|r| r.member_id.clone())
        .find(|m| *m != leader)
        .unwrap();
    (leader, other)
}

fn sync_params(member_id: &str, assignments: &[(&str, &[u8])]) -> SyncParams {
    SyncParams {
        group_id: "g".into(),
        generation_id: 1,
        member_id: member_id.into(),
        group_instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: None,
        assignments: assignments
            .iter()
            .map(|(m, a)| (m.to_string(), Bytes::copy_from_slice(a)))
            .collect(),
    }
}

#[test]
fn members_get_their_assignment_once_the_leaders_is_written() {
    let mut h = Harness::new(config());
    let (leader, other) = completing_group_of_two(&mut h);
    let slots: Vec<Slot<SyncResult>> = (0..2).map(|_| Arc::new(Mutex::new(None))).collect();
    let (a, b) = (slots[0].clone(), slots[1].clone());
    let assignments: &[(&str, &[u8])] = &[(leader.as_str(), b"L"), (other.as_str(), b"O")];
    h.coordinator.inner.sync(
        sync_params(&leader, assignments),
        Box::new(move |r| *a.lock().unwrap() = Some(r)),
    );
    h.coordinator.inner.sync(
        sync_params(&other, &[]),
        Box::new(move |r| *b.lock().unwrap() = Some(r)),
    );
    assert_eq!(take(&slots[0]), None);
    assert_eq!(take(&slots[1]), None);
    assert_eq!(h.state(), GroupState::CompletingRebalance);
    h.coordinator.settle();
    assert_eq!(h.state(), GroupState::Stable);
    assert_eq!(
        take(&slots[0]).unwrap().assignment,
        Bytes::from_static(b"L")
    );
    assert_eq!(
        take(&slots[1]).unwrap().assignment,
        Bytes::from_static(b"O")
    );
}

#[test]
fn an_assignment_written_after_a_rebalance_began_is_dropped() {
    let mut h = Harness::new(config());
    let (leader, other) = completing_group_of_two(&mut h);
    let slot: Slot<SyncResult> = Arc::new(Mutex::new(None));
    let out = slot.clone();
    h.coordinator.inner.sync(
        sync_params(&leader, &[(leader.as_str(), b"L")]),
        Box::new(move |r| *out.lock().unwrap() = Some(r)),
    );
    // The other member leaves while the assignment is being written.
    h.coordinator.inner.leave("g", &[(other, None)]).unwrap();
    assert_eq!(
        take(&slot).unwrap().error,
        ErrorCode::RebalanceInProgress,
        "told to rejoin at once"
    );
    h.coordinator.settle();
    assert_eq!(h.state(), GroupState::PreparingRebalance);
}

#[test]
fn member_ids_come_from_the_seeded_source() {
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let mut h = Harness::new(config());
            let first = h.join("", None, RANGE);
            take(&first).unwrap().member_id
        })
        .collect();
    assert!(ids[0].starts_with("client-"));
    assert_eq!(ids[0], ids[1], "the same seed gives the same member id");
}

#[test]
fn an_unreadable_record_is_skipped_and_every_other_group_still_loads() {
    use super::records::{OffsetsKey, StoredOffset};
    let offset = |group: &str, value: i64| {
        (
            OffsetsKey::Offset {
                group: group.into(),
                topic: "t".into(),
                partition: 0,
            }
            .encode(),
            Some(
                StoredOffset {
                    offset: value,
                    leader_epoch: -1,
                    metadata: String::new(),
                    commit_timestamp_ms: 1,
                }
                .encode(),
            ),
        )
    };
    // What a 40,000-byte group.instance.id made before strings were bounded: a
    // length that wrapped to a negative i16, then garbage read as a member count.
    let mut corrupt_group = vec![0u8, 3, 0, 8];
    corrupt_group.extend_from_slice(b"consumer");
    corrupt_group.extend_from_slice(&[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]);
    corrupt_group.extend_from_slice(&[0; 8]);
    corrupt_group.extend_from_slice(&1_768_515_945i32.to_be_bytes());
    let records = vec![
        offset("a", 10),
        (
            OffsetsKey::Group { group: "b".into() }.encode(),
            Some(Bytes::from(corrupt_group)),
        ),
        // A key whose string length is neither -1 nor a real length.
        (Bytes::from_static(&[0, 1, 0x80, 0x00, 0, 1]), None),
        offset("c", 30),
        (Bytes::from_static(&[0, 9]), None),
        offset("a", 11),
    ];
    let clock = Arc::new(ManualClock::new(1_000_000));
    let mut reloaded = GroupCoordinator::new(GroupConfig::default(), clock, random());
    reloaded.load(records).unwrap();
    let committed = |c: &GroupCoordinator, group: &str| {
        c.fetch_offsets(group, None)
            .into_iter()
            .map(|(_, _, o)| o.map(|o| o.offset))
            .collect::<Vec<_>>()
    };
    assert_eq!(committed(&reloaded, "a"), vec![Some(11)]);
    assert_eq!(committed(&reloaded, "c"), vec![Some(30)]);
    assert!(reloaded.group("b").is_none());
}

#[test]
fn strings_up_to_i16_max_round_trip_and_longer_ones_never_reach_the_log() {
    use super::records::{OffsetsKey, MAX_STRING_BYTES};
    let longest = "g".repeat(MAX_STRING_BYTES);
    let key = OffsetsKey::Group {
        group: longest.clone(),
    };
    assert_eq!(OffsetsKey::decode(key.encode()).unwrap(), key);
    let too_long = OffsetsKey::Group {
        group: "g".repeat(MAX_STRING_BYTES + 1),
    };
    let encoded = std::panic::catch_unwind(|| too_long.encode());
    assert!(encoded.is_err(), "a wrapped length must never be written");
}
