use super::*;
use crate::records::{FencingChange, NO_LEADER};

const SESSION_MS: i64 = 9_000;
const T: Uuid = Uuid::from_u128(7);

/// The active controller's state on a fake clock: the image its decisions
/// read, its heartbeat state, and the time.
struct Harness {
    image: ClusterImage,
    heartbeats: BrokerHeartbeats,
    now: i64,
}

fn incarnation(broker: i32, start: u128) -> Uuid {
    Uuid::from_u128(1000 * start + broker as u128)
}

fn listeners(broker: i32) -> Vec<Endpoint> {
    vec![Endpoint {
        name: "PLAINTEXT".into(),
        host: "localhost".into(),
        port: 9090 + broker as u16,
        security_protocol: "PLAINTEXT".into(),
    }]
}

fn mv(min: i16, max: i16) -> BrokerFeature {
    BrokerFeature {
        name: METADATA_VERSION.into(),
        min_supported_version: min,
        max_supported_version: max,
    }
}

fn request(broker: i32, incarnation_id: Uuid) -> BrokerRegistrationRequest {
    BrokerRegistrationRequest {
        broker_id: broker,
        cluster_id: "cluster".into(),
        incarnation_id,
        listeners: listeners(broker),
        features: vec![mv(7, 27)],
        rack: Some(format!("rack{broker}")),
    }
}

fn beat(broker: i32, epoch: i64, offset: i64) -> BrokerHeartbeatRequest {
    BrokerHeartbeatRequest {
        broker_id: broker,
        broker_epoch: epoch,
        current_metadata_offset: offset,
        want_fence: false,
        want_shut_down: false,
    }
}

fn reply(caught_up: bool, fenced: bool, shutting: bool, shut_down: bool) -> BrokerHeartbeatReply {
    BrokerHeartbeatReply {
        is_caught_up: caught_up,
        is_fenced: fenced,
        in_controlled_shutdown: shutting,
        should_shut_down: shut_down,
    }
}

fn registration(broker: i32, epoch: i64, fenced: FencingChange, shutting: bool) -> MetadataRecord {
    MetadataRecord::BrokerRegistrationChange {
        broker_id: broker,
        broker_epoch: epoch,
        fenced,
        in_controlled_shutdown: shutting,
    }
}

fn change(partition: i32, leader: Option<i32>, isr: Option<&[i32]>) -> MetadataRecord {
    MetadataRecord::PartitionChange {
        topic_id: T,
        partition,
        leader,
        isr: isr.map(<[i32]>::to_vec),
        replicas: None,
    }
}

impl Harness {
    /// `metadata.version` 27 finalized at offset 0, at time 1000.
    fn new() -> Harness {
        let mut image = ClusterImage::default();
        let level = MetadataRecord::FeatureLevel {
            name: METADATA_VERSION.into(),
            feature_level: 27,
        };
        image.apply(0, &level).unwrap();
        Harness {
            image,
            heartbeats: BrokerHeartbeats::new(SESSION_MS),
            now: 1_000,
        }
    }

    fn next_offset(&self) -> i64 {
        self.image.last_offset + 1
    }

    /// Writes a decision's records as the controller loop does (more than one:
    /// inside Begin/End) and applies them.
    fn write(&mut self, records: &[MetadataRecord]) {
        let mut all = records.to_vec();
        if records.len() > 1 {
            all.insert(0, MetadataRecord::BeginTransaction { name: None });
            all.push(MetadataRecord::EndTransaction);
        }
        for record in &all {
            self.image
                .apply(self.image.last_offset + 1, record)
                .unwrap();
        }
    }

    fn register(
        &mut self,
        req: &BrokerRegistrationRequest,
    ) -> Result<(Vec<MetadataRecord>, i64), BrokerRequestError> {
        let next = self.next_offset();
        let decided = register_broker(
            &self.image,
            &mut self.heartbeats,
            "cluster",
            req,
            next,
            self.now,
        )?;
        self.write(&decided.0);
        Ok(decided)
    }

    fn heartbeat(
        &mut self,
        req: BrokerHeartbeatRequest,
    ) -> Result<(Vec<MetadataRecord>, BrokerHeartbeatReply), BrokerRequestError> {
        let next = self.next_offset();
        let decided = broker_heartbeat(&self.image, &mut self.heartbeats, &req, next, self.now)?;
        self.write(&decided.0);
        Ok(decided)
    }

    /// A heartbeat from a broker that has applied everything written so far.
    fn caught_up(&mut self, broker: i32, epoch: i64) -> BrokerHeartbeatRequest {
        beat(broker, epoch, self.image.last_offset)
    }

    fn fence_stale(&mut self) -> Vec<MetadataRecord> {
        let records = fence_stale_broker(&self.image, &mut self.heartbeats, self.now);
        self.write(&records);
        records
    }

    /// Brokers 1..=n registered and unfenced; their epochs.
    fn unfenced_brokers(&mut self, n: i32) -> Vec<i64> {
        let mut epochs = Vec::new();
        for broker in 1..=n {
            let (_, epoch) = self
                .register(&request(broker, incarnation(broker, 1)))
                .unwrap();
            epochs.push(epoch);
        }
        for broker in 1..=n {
            let req = self.caught_up(broker, epochs[broker as usize - 1]);
            let (_, answer) = self.heartbeat(req).unwrap();
            assert!(!answer.is_fenced);
        }
        epochs
    }

    /// Topic "t" with one partition per (replicas, isr, leader).
    fn topic(&mut self, partitions: &[(&[i32], &[i32], i32)]) {
        let mut records = vec![MetadataRecord::Topic {
            name: "t".into(),
            topic_id: T,
        }];
        for (i, (replicas, isr, leader)) in partitions.iter().enumerate() {
            records.push(MetadataRecord::Partition {
                topic_id: T,
                partition: i as i32,
                replicas: replicas.to_vec(),
                isr: isr.to_vec(),
                leader: *leader,
                leader_epoch: 0,
                partition_epoch: 0,
            });
        }
        self.write(&records);
    }

    fn leader(&self, partition: i32) -> (i32, Vec<i32>) {
        let p = self.image.partition("t", partition).unwrap();
        (p.leader, p.isr.clone())
    }
}

#[test]
fn a_new_incarnation_registers_fenced_with_the_offset_of_its_record_as_epoch() {
    let mut h = Harness::new();
    let (records, epoch) = h.register(&request(1, incarnation(1, 1))).unwrap();
    assert_eq!(epoch, 1);
    assert_eq!(
        records,
        vec![MetadataRecord::RegisterBroker {
            node_id: 1,
            incarnation_id: incarnation(1, 1),
            broker_epoch: 1,
            endpoints: listeners(1),
            features: vec![mv(7, 27)],
            rack: Some("rack1".into()),
            fenced: true,
            in_controlled_shutdown: false,
        }]
    );
    assert!(h.image.brokers[&1].fenced);
    // A resend from the same process keeps its epoch (and its state).
    h.now += 100;
    let (records, again) = h.register(&request(1, incarnation(1, 1))).unwrap();
    assert_eq!(again, 1);
    assert!(matches!(
        records[0],
        MetadataRecord::RegisterBroker {
            broker_epoch: 1,
            fenced: true,
            ..
        }
    ));
}

#[test]
fn registration_is_refused_for_another_cluster_and_unsupported_features() {
    let mut h = Harness::new();
    let mut other = request(1, incarnation(1, 1));
    other.cluster_id = "elsewhere".into();
    let refused = h.register(&other).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "Expected cluster ID cluster, but got cluster ID elsewhere"
    );
    let mut old = request(1, incarnation(1, 1));
    old.features = vec![mv(1, 20)];
    assert_eq!(
        h.register(&old).unwrap_err(),
        BrokerRequestError::UnsupportedVersion("Unable to register because the broker does not support finalized version 27 of metadata.version. The broker wants a version between 1 and 20, inclusive.".into())
    );
    // A broker naming no metadata.version supports only level 1.
    old.features = Vec::new();
    assert_eq!(
        h.register(&old).unwrap_err().to_string(),
        "Unable to register because the broker does not support finalized version 27 of metadata.version. The broker wants a version between 1 and 1, inclusive."
    );
    assert_eq!(h.image.brokers.len(), 0);
}

#[test]
fn a_second_incarnation_is_refused_while_the_first_session_lives_and_accepted_after_it_expires() {
    let mut h = Harness::new();
    let epochs = h.unfenced_brokers(1);
    // kill -9 and a quick restart: a new incarnation id.
    h.now += 1_000;
    let restarted = request(1, incarnation(1, 2));
    assert_eq!(
        h.register(&restarted).unwrap_err(),
        BrokerRequestError::DuplicateBrokerRegistration
    );
    assert_eq!(
        BrokerRequestError::DuplicateBrokerRegistration.to_string(),
        "Another broker is registered with that broker id."
    );
    // The last contact was at 1000; the session is valid through 10000.
    h.now = 1_000 + SESSION_MS;
    assert!(
        h.register(&restarted).is_err(),
        "valid up to and including the deadline"
    );
    h.now += 1;
    let next = h.next_offset();
    let (records, epoch) = h.register(&restarted).unwrap();
    assert_eq!(epoch, next, "a new epoch: the offset of the new record");
    assert!(epoch > epochs[0]);
    assert!(matches!(
        records[0],
        MetadataRecord::RegisterBroker { fenced: true, .. }
    ));
    // The old epoch is stale now.
    let old = h.caught_up(1, epochs[0]);
    assert_eq!(
        h.heartbeat(old).unwrap_err(),
        BrokerRequestError::StaleBrokerEpoch(format!(
            "Expected broker epoch {epoch}, but got broker epoch {}",
            epochs[0]
        ))
    );
}

#[test]
fn heartbeats_from_unknown_brokers_or_epochs_are_stale() {
    let mut h = Harness::new();
    assert_eq!(
        h.heartbeat(beat(9, 1, 0)).unwrap_err(),
        BrokerRequestError::StaleBrokerEpoch(
            "Receive a heartbeat from broker 9 before registration".into()
        )
    );
    let (_, epoch) = h.register(&request(1, incarnation(1, 1))).unwrap();
    assert_eq!(
        h.heartbeat(beat(1, epoch + 5, 0)).unwrap_err().to_string(),
        format!(
            "Expected broker epoch {epoch}, but got broker epoch {}",
            epoch + 5
        )
    );
    assert_eq!(
        check_broker_epoch(&h.image, 4, 0).unwrap_err().to_string(),
        "No broker registration found for broker id 4"
    );
}

/// Row: FENCED, !WantFence, caught up with its registration -> UNFENCED; and
/// row: FENCED otherwise -> FENCED.
#[test]
fn a_fenced_broker_is_unfenced_once_caught_up_with_its_registration() {
    let mut h = Harness::new();
    let (_, epoch) = h.register(&request(1, incarnation(1, 1))).unwrap();
    // Behind its own registration record: stays fenced, not caught up.
    let (records, answer) = h.heartbeat(beat(1, epoch, epoch - 1)).unwrap();
    assert_eq!(
        (records, answer),
        (Vec::new(), reply(false, true, false, false))
    );
    // Caught up, but asking to stay fenced (still loading its logs).
    let mut wait = beat(1, epoch, epoch);
    wait.want_fence = true;
    let (records, answer) = h.heartbeat(wait).unwrap();
    assert_eq!(
        (records, answer),
        (Vec::new(), reply(true, true, false, false))
    );
    let (records, answer) = h.heartbeat(beat(1, epoch, epoch)).unwrap();
    assert_eq!(
        records,
        vec![registration(1, epoch, FencingChange::Unfence, false)]
    );
    assert_eq!(answer, reply(true, false, false, false));
    assert!(!h.image.brokers[&1].fenced);
    // Unfenced, nothing asked: nothing to write.
    let req = h.caught_up(1, epoch);
    assert_eq!(
        h.heartbeat(req).unwrap(),
        (Vec::new(), reply(true, false, false, false))
    );
}

/// Row: FENCED, WantShutDown -> SHUTDOWN_NOW.
#[test]
fn a_fenced_broker_asking_to_shut_down_may_at_once() {
    let mut h = Harness::new();
    let (_, epoch) = h.register(&request(1, incarnation(1, 1))).unwrap();
    let mut req = beat(1, epoch, epoch);
    req.want_shut_down = true;
    let (records, answer) = h.heartbeat(req).unwrap();
    assert_eq!(
        records,
        vec![registration(1, epoch, FencingChange::Fence, false)]
    );
    assert_eq!(answer, reply(true, true, false, true));
}

/// Row: UNFENCED, WantFence -> FENCED (and with WantShutDown -> SHUTDOWN_NOW).
#[test]
fn an_unfenced_broker_asking_to_be_fenced_leaves_its_isrs() {
    let mut h = Harness::new();
    let epochs = h.unfenced_brokers(3);
    h.topic(&[(&[1, 2, 3], &[1, 2, 3], 1)]);
    let mut req = h.caught_up(1, epochs[0]);
    req.want_fence = true;
    let (records, answer) = h.heartbeat(req).unwrap();
    assert_eq!(
        records,
        vec![
            change(0, Some(2), Some(&[2, 3])),
            registration(1, epochs[0], FencingChange::Fence, false)
        ]
    );
    assert_eq!(answer, reply(true, true, false, false));

    let mut req = h.caught_up(2, epochs[1]);
    req.want_fence = true;
    req.want_shut_down = true;
    let (records, answer) = h.heartbeat(req).unwrap();
    assert_eq!(
        records,
        vec![
            change(0, Some(3), Some(&[3])),
            registration(2, epochs[1], FencingChange::Fence, false)
        ]
    );
    assert_eq!(answer, reply(true, true, false, true));
}

/// Rows: UNFENCED, WantShutDown, leads something -> CONTROLLED_SHUTDOWN;
/// CONTROLLED_SHUTDOWN while it still leads -> stays; once it leads nothing,
/// SHUTDOWN_NOW only when every active broker has applied the move.
#[test]
fn controlled_shutdown_moves_leaderships_then_waits_for_the_others_to_apply_it() {
    let mut h = Harness::new();
    let epochs = h.unfenced_brokers(3);
    h.topic(&[(&[1, 2, 3], &[1, 2, 3], 1), (&[2, 1], &[2, 1], 2)]);
    // The other brokers have applied everything so far.
    for broker in [2, 3] {
        let req = h.caught_up(broker, epochs[broker as usize - 1]);
        h.heartbeat(req).unwrap();
    }
    let mut shut = h.caught_up(1, epochs[0]);
    shut.want_shut_down = true;
    let start = h.next_offset();
    let (records, answer) = h.heartbeat(shut).unwrap();
    assert_eq!(
        records,
        vec![
            registration(1, epochs[0], FencingChange::None, true),
            change(0, Some(2), Some(&[2, 3])),
            change(1, None, Some(&[2])),
        ]
    );
    assert_eq!(answer, reply(true, false, true, false));
    // Begin, three records, End.
    let end = start + 4;
    assert_eq!(h.heartbeats.controlled_shutdown_offset(1), Some(end));
    assert_eq!(h.leader(0), (2, vec![2, 3]));

    // Not yet: broker 3 has not applied the move.
    shut.current_metadata_offset = h.image.last_offset;
    assert_eq!(
        h.heartbeat(shut).unwrap(),
        (Vec::new(), reply(true, false, true, false))
    );
    let req = beat(2, epochs[1], end);
    h.heartbeat(req).unwrap();
    assert_eq!(
        h.heartbeat(shut).unwrap(),
        (Vec::new(), reply(true, false, true, false))
    );
    // Broker 3 catches up: broker 1 may go, and is fenced as it goes.
    let req = beat(3, epochs[2], end);
    h.heartbeat(req).unwrap();
    let (records, answer) = h.heartbeat(shut).unwrap();
    assert_eq!(
        records,
        vec![registration(1, epochs[0], FencingChange::Fence, false)]
    );
    assert_eq!(answer, reply(true, true, false, true));
}

/// Row: CONTROLLED_SHUTDOWN, still leads something -> stays.
#[test]
fn a_broker_in_controlled_shutdown_that_leads_again_must_wait() {
    let mut h = Harness::new();
    let epochs = h.unfenced_brokers(2);
    h.topic(&[(&[1, 2], &[1, 2], 1)]);
    let mut shut = h.caught_up(1, epochs[0]);
    shut.want_shut_down = true;
    h.heartbeat(shut).unwrap();
    assert_eq!(h.leader(0), (2, vec![2]));
    // Leadership back on broker 1 (a decision the shutdown did not see).
    h.write(&[change(0, Some(1), Some(&[1, 2]))]);
    shut.current_metadata_offset = h.image.last_offset;
    let req = h.caught_up(2, epochs[1]);
    h.heartbeat(req).unwrap();
    assert_eq!(
        h.heartbeat(shut).unwrap(),
        (Vec::new(), reply(true, false, true, false))
    );
}

/// Row: UNFENCED, WantShutDown, leads nothing -> SHUTDOWN_NOW.
#[test]
fn a_broker_that_leads_nothing_shuts_down_at_once() {
    let mut h = Harness::new();
    let epochs = h.unfenced_brokers(2);
    h.topic(&[(&[2, 1], &[2, 1], 2)]);
    let mut shut = h.caught_up(1, epochs[0]);
    shut.want_shut_down = true;
    let (records, answer) = h.heartbeat(shut).unwrap();
    assert_eq!(
        records,
        vec![
            change(0, None, Some(&[2])),
            registration(1, epochs[0], FencingChange::Fence, false)
        ]
    );
    assert_eq!(answer, reply(true, true, false, true));
}

#[test]
fn an_expired_session_fences_one_broker_per_check_oldest_first() {
    let mut h = Harness::new();
    let epochs = h.unfenced_brokers(3);
    h.topic(&[(&[1, 2, 3], &[1, 2, 3], 1)]);
    // Broker 2 last heard at 2000, broker 3 at 3000; broker 1 beats on.
    for (broker, at) in [(2, 2_000), (3, 3_000)] {
        h.now = at;
        let req = h.caught_up(broker, epochs[broker as usize - 1]);
        h.heartbeat(req).unwrap();
    }
    assert_eq!(h.heartbeats.next_check_ms(), Some(1_000 + SESSION_MS));
    h.now = 1_000 + SESSION_MS;
    assert_eq!(h.fence_stale(), Vec::new(), "valid up to the deadline");
    let req = h.caught_up(1, epochs[0]);
    h.heartbeat(req).unwrap();
    assert_eq!(h.heartbeats.next_check_ms(), Some(2_000 + SESSION_MS));
    h.now = 12_500;
    let req = h.caught_up(1, epochs[0]);
    h.heartbeat(req).unwrap();
    h.now = 20_000;
    assert_eq!(
        h.fence_stale(),
        vec![
            change(0, None, Some(&[1, 3])),
            registration(2, epochs[1], FencingChange::Fence, false)
        ]
    );
    assert_eq!(
        h.fence_stale(),
        vec![
            change(0, None, Some(&[1])),
            registration(3, epochs[2], FencingChange::Fence, false)
        ]
    );
    assert_eq!(h.heartbeats.next_check_ms(), Some(12_500 + SESSION_MS));
    assert_eq!(h.fence_stale(), Vec::new(), "broker 1's session lives");
    // The last ISR member expires too: no leader, the ISR kept.
    h.now = 12_500 + SESSION_MS + 1;
    assert_eq!(
        h.fence_stale(),
        vec![
            change(0, Some(NO_LEADER), None),
            registration(1, epochs[0], FencingChange::Fence, false)
        ]
    );
    assert_eq!(h.leader(0), (NO_LEADER, vec![1]));
    assert_eq!(h.heartbeats.next_check_ms(), None);
    // Broker 1 comes back: unfenced, and leads again.
    let req = h.caught_up(1, epochs[0]);
    let (records, _) = h.heartbeat(req).unwrap();
    assert_eq!(
        records,
        vec![
            registration(1, epochs[0], FencingChange::Unfence, false),
            change(0, Some(1), None)
        ]
    );
    assert_eq!(h.leader(0), (1, vec![1]));
}

#[test]
fn a_newly_active_controller_gives_every_broker_a_full_session() {
    let mut h = Harness::new();
    let epochs = h.unfenced_brokers(2);
    let mut next = BrokerHeartbeats::new(SESSION_MS);
    next.activate(&h.image, 50_000);
    assert!(next.has_valid_session(1, 50_000 + SESSION_MS));
    assert!(!next.has_valid_session(1, 50_001 + SESSION_MS));
    assert_eq!(next.register_offset(2), Some(epochs[1]));
    assert_eq!(next.find_one_stale_broker(50_000 + SESSION_MS + 1), Some(1));
}

#[test]
fn placement_uses_the_brokers_not_shutting_down() {
    let mut h = Harness::new();
    let epochs = h.unfenced_brokers(3);
    h.topic(&[(&[3, 1], &[3, 1], 3)]);
    let mut shut = h.caught_up(3, epochs[2]);
    shut.want_shut_down = true;
    h.heartbeat(shut).unwrap();
    let mut fence = h.caught_up(2, epochs[1]);
    fence.want_fence = true;
    h.heartbeat(fence).unwrap();
    let usable = h.heartbeats.usable_brokers(&h.image);
    let described: Vec<(i32, Option<String>, bool)> = usable
        .into_iter()
        .map(|b| (b.id, b.rack, b.fenced))
        .collect();
    assert_eq!(
        described,
        vec![
            (1, Some("rack1".into()), false),
            (2, Some("rack2".into()), true)
        ]
    );
}

#[test]
fn the_end_offset_of_a_decision_counts_its_transaction_markers() {
    assert_eq!(decision_end_offset(10, 0), 9);
    assert_eq!(decision_end_offset(10, 1), 10);
    assert_eq!(decision_end_offset(10, 2), 13);
}
