//! Broker registration, heartbeats, fencing and unfencing: the active
//! controller's decisions on BrokerRegistration (62) and BrokerHeartbeat (63)
//! and its session-expiry timer. Kafka's `ClusterControlManager.registerBroker`,
//! `ReplicationControlManager.processBrokerHeartbeat` and
//! `maybeFenceOneStaleBroker`.
//!
//! Each decision reads the image the previous decisions left (committed or
//! not), updates the soft state in [`BrokerHeartbeats`] as Kafka's does while it
//! decides, and returns the records to write plus the answer, which is sent once
//! those records are committed.

use uuid::Uuid;

use crate::broker_heartbeats::{BrokerControlState, BrokerHeartbeats, HeartbeatIntent};
use crate::error::BrokerRequestError;
use crate::image::ClusterImage;
use crate::partition_change::{
    handle_broker_fenced, handle_broker_in_controlled_shutdown, handle_broker_unfenced,
    has_leaderships,
};
use crate::records::{BrokerFeature, Endpoint, MetadataRecord};

/// `metadata.version`'s feature name.
pub const METADATA_VERSION: &str = "metadata.version";
/// The `metadata.version` a broker that names none is taken to support
/// (Kafka's `MINIMUM_KRAFT_VERSION`, 3.0-IV1).
pub const MINIMUM_KRAFT_VERSION: i16 = 1;

/// A BrokerRegistration request, as the controller decides on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistrationRequest {
    pub broker_id: i32,
    pub cluster_id: String,
    /// A fresh id per process start.
    pub incarnation_id: Uuid,
    pub listeners: Vec<Endpoint>,
    pub features: Vec<BrokerFeature>,
    pub rack: Option<String>,
}

/// A BrokerHeartbeat request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerHeartbeatRequest {
    pub broker_id: i32,
    pub broker_epoch: i64,
    /// The offset of the last metadata record the broker applied.
    pub current_metadata_offset: i64,
    pub want_fence: bool,
    pub want_shut_down: bool,
}

/// The BrokerHeartbeat answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerHeartbeatReply {
    /// The broker has applied its own registration record.
    pub is_caught_up: bool,
    pub is_fenced: bool,
    pub in_controlled_shutdown: bool,
    pub should_shut_down: bool,
}

/// The offset of the last record of a decision of `records` records written
/// from `next_offset`: a decision of more than one record is wrapped in KIP-868
/// Begin/End markers (DESIGN D3), which take an offset each. With no records,
/// the offset before `next_offset` (Kafka's `nextWriteOffset - 1`).
pub fn decision_end_offset(next_offset: i64, records: usize) -> i64 {
    let written = match records {
        0 | 1 => records,
        n => n + 2,
    };
    next_offset + written as i64 - 1
}

/// Kafka's `checkBrokerEpoch`: `broker` is registered with `broker_epoch`.
pub fn check_broker_epoch(
    image: &ClusterImage,
    broker: i32,
    broker_epoch: i64,
) -> Result<(), BrokerRequestError> {
    let Some(registration) = image.brokers.get(&broker) else {
        return Err(BrokerRequestError::StaleBrokerEpoch(format!(
            "No broker registration found for broker id {broker}"
        )));
    };
    if registration.broker_epoch != broker_epoch {
        return Err(BrokerRequestError::StaleBrokerEpoch(format!(
            "Expected broker epoch {}, but got broker epoch {broker_epoch}",
            registration.broker_epoch
        )));
    }
    Ok(())
}

/// Decides a BrokerRegistration: the RegisterBrokerRecord and the broker epoch.
///
/// A new incarnation gets epoch `next_offset` (the offset its record will
/// have) and starts fenced; the same incarnation again (a resend) keeps its
/// epoch and state. Refused while another incarnation's session is valid, so a
/// broker restarted quickly after `kill -9` retries until the old session ends.
pub fn register_broker(
    image: &ClusterImage,
    heartbeats: &mut BrokerHeartbeats,
    cluster_id: &str,
    request: &BrokerRegistrationRequest,
    next_offset: i64,
    now_ms: i64,
) -> Result<(Vec<MetadataRecord>, i64), BrokerRequestError> {
    if request.cluster_id != cluster_id {
        return Err(BrokerRequestError::InconsistentClusterId {
            expected: cluster_id.to_string(),
            received: request.cluster_id.clone(),
        });
    }
    let broker = request.broker_id;
    let existing = image.brokers.get(&broker);
    let same_incarnation = existing.is_some_and(|b| b.incarnation_id == request.incarnation_id);
    if existing.is_some() && !same_incarnation && heartbeats.has_valid_session(broker, now_ms) {
        return Err(BrokerRequestError::DuplicateBrokerRegistration);
    }
    let features = registration_features(image, &request.features)?;
    let (broker_epoch, fenced, in_controlled_shutdown) = match existing {
        Some(b) if same_incarnation => (b.broker_epoch, b.fenced, b.in_controlled_shutdown),
        _ => (next_offset, true, false),
    };
    let record = MetadataRecord::RegisterBroker {
        node_id: broker,
        incarnation_id: request.incarnation_id,
        broker_epoch,
        endpoints: request.listeners.clone(),
        features,
        rack: request.rack.clone(),
        fenced,
        in_controlled_shutdown,
    };
    if !same_incarnation {
        heartbeats.remove(broker);
    }
    heartbeats.register(broker, fenced, next_offset, now_ms);
    Ok((vec![record], broker_epoch))
}

/// Kafka's `processRegistrationFeature` over the request: every range the
/// broker gives must hold the finalized level (`metadata.version` defaults to
/// 1, others to 0), a broker naming no `metadata.version` supports only level
/// 1, and every finalized feature it does not name must be at level 0. The
/// features the record carries.
fn registration_features(
    image: &ClusterImage,
    requested: &[BrokerFeature],
) -> Result<Vec<BrokerFeature>, BrokerRequestError> {
    let check = |f: &BrokerFeature| {
        let default = if f.name == METADATA_VERSION { 1 } else { 0 };
        let finalized = image.features.get(&f.name).copied().unwrap_or(default);
        if finalized < f.min_supported_version || finalized > f.max_supported_version {
            return Err(BrokerRequestError::UnsupportedVersion(format!("Unable to register because the broker does not support finalized version {finalized} of {}. The broker wants a version between {} and {}, inclusive.", f.name, f.min_supported_version, f.max_supported_version)));
        }
        Ok(())
    };
    let mut features = Vec::with_capacity(requested.len() + 1);
    for feature in requested {
        check(feature)?;
        features.push(feature.clone());
    }
    if !requested.iter().any(|f| f.name == METADATA_VERSION) {
        let assumed = BrokerFeature {
            name: METADATA_VERSION.to_string(),
            min_supported_version: MINIMUM_KRAFT_VERSION,
            max_supported_version: MINIMUM_KRAFT_VERSION,
        };
        check(&assumed)?;
        features.push(assumed);
    }
    for (name, level) in &image.features {
        if *level != 0 && !requested.iter().any(|f| &f.name == name) && name != METADATA_VERSION {
            check(&BrokerFeature {
                name: name.clone(),
                min_supported_version: 0,
                max_supported_version: 0,
            })?;
        }
    }
    Ok(features)
}

/// Decides a BrokerHeartbeat (Kafka's `processBrokerHeartbeat`): the broker's
/// next state, the records of the move, and the answer.
///
/// `next_offset` is where the records will be written; entering controlled
/// shutdown completes once every active broker has applied up to the end of
/// them ([`decision_end_offset`]).
pub fn broker_heartbeat(
    image: &ClusterImage,
    heartbeats: &mut BrokerHeartbeats,
    request: &BrokerHeartbeatRequest,
    next_offset: i64,
    now_ms: i64,
) -> Result<(Vec<MetadataRecord>, BrokerHeartbeatReply), BrokerRequestError> {
    let broker = request.broker_id;
    let Some(register_offset) = heartbeats.register_offset(broker) else {
        return Err(BrokerRequestError::StaleBrokerEpoch(format!(
            "Receive a heartbeat from broker {broker} before registration"
        )));
    };
    check_broker_epoch(image, broker, request.broker_epoch)?;
    let intent = HeartbeatIntent {
        current_metadata_offset: request.current_metadata_offset,
        want_fence: request.want_fence,
        want_shut_down: request.want_shut_down,
    };
    let (current, next) = heartbeats
        .next_state(broker, &intent, has_leaderships(image, broker))
        .expect("a broker with a register offset is tracked");
    let mut records = Vec::new();
    if current != next {
        records = match next {
            BrokerControlState::Fenced | BrokerControlState::ShutdownNow => {
                handle_broker_fenced(image, broker)
            }
            BrokerControlState::Unfenced => {
                handle_broker_unfenced(image, broker, request.broker_epoch)
            }
            BrokerControlState::ControlledShutdown => {
                handle_broker_in_controlled_shutdown(image, broker, request.broker_epoch)
            }
        };
    }
    heartbeats.touch(
        broker,
        next.fenced(),
        request.current_metadata_offset,
        now_ms,
    );
    if next.in_controlled_shutdown() {
        heartbeats.maybe_update_controlled_shutdown_offset(
            broker,
            decision_end_offset(next_offset, records.len()),
        );
    }
    let reply = BrokerHeartbeatReply {
        is_caught_up: request.current_metadata_offset >= register_offset,
        is_fenced: next.fenced(),
        in_controlled_shutdown: next.in_controlled_shutdown(),
        should_shut_down: next.should_shut_down(),
    };
    Ok((records, reply))
}

/// The session-expiry timer (Kafka's `maybeFenceOneStaleBroker`): fences the
/// one broker whose session expired longest ago, if any. The caller runs it
/// again at [`BrokerHeartbeats::next_check_ms`].
pub fn fence_stale_broker(
    image: &ClusterImage,
    heartbeats: &mut BrokerHeartbeats,
    now_ms: i64,
) -> Vec<MetadataRecord> {
    let Some(broker) = heartbeats.find_one_stale_broker(now_ms) else {
        return Vec::new();
    };
    tracing::info!("Fencing broker {broker} because its session has timed out.");
    let records = handle_broker_fenced(image, broker);
    heartbeats.fence(broker);
    records
}

#[cfg(test)]
#[path = "cluster_control_tests.rs"]
mod tests;
