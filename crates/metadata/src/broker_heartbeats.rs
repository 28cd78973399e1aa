//! The active controller's soft state about brokers: when each last
//! heartbeated, the metadata offset it reported, and where its controlled
//! shutdown completes. Kafka's `BrokerHeartbeatManager`
//! (`controller/BrokerHeartbeatManager.java`). None of it is in the metadata
//! log: a newly active controller starts it over ([`BrokerHeartbeats::activate`]),
//! giving every broker a full session from that moment.
//!
//! Times are monotonic milliseconds from the caller's clock; nothing here reads
//! a clock.

use std::collections::BTreeMap;

use crate::image::ClusterImage;
use crate::placement::UsableBroker;

/// What Kafka calls `BrokerControlState`: a broker's state as a heartbeat sees
/// it, and the next one a heartbeat asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerControlState {
    Fenced,
    Unfenced,
    ControlledShutdown,
    ShutdownNow,
}

impl BrokerControlState {
    pub fn fenced(self) -> bool {
        matches!(
            self,
            BrokerControlState::Fenced | BrokerControlState::ShutdownNow
        )
    }

    pub fn should_shut_down(self) -> bool {
        self == BrokerControlState::ShutdownNow
    }

    pub fn in_controlled_shutdown(self) -> bool {
        self == BrokerControlState::ControlledShutdown
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Session {
    last_contact_ms: i64,
    /// The metadata offset the broker last reported (-1: none).
    metadata_offset: i64,
    /// Where its controlled shutdown completes (-1: not shutting down).
    controlled_shutdown_offset: i64,
    fenced: bool,
    /// The offset of its RegisterBrokerRecord: it is caught up once its
    /// metadata offset reaches this.
    register_offset: i64,
}

impl Session {
    fn shutting_down(&self) -> bool {
        self.controlled_shutdown_offset >= 0
    }

    fn active(&self) -> bool {
        !self.fenced && !self.shutting_down()
    }
}

/// Every registered broker's session, as the active controller tracks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerHeartbeats {
    /// `broker.session.timeout.ms`.
    session_timeout_ms: i64,
    sessions: BTreeMap<i32, Session>,
}

impl BrokerHeartbeats {
    pub fn new(session_timeout_ms: i64) -> BrokerHeartbeats {
        BrokerHeartbeats {
            session_timeout_ms,
            sessions: BTreeMap::new(),
        }
    }

    pub fn session_timeout_ms(&self) -> i64 {
        self.session_timeout_ms
    }

    /// Starts over for a newly active controller: every registered broker gets
    /// a session from `now_ms` (Kafka's `ClusterControlManager.activate`). The
    /// registration record's offset is not in the image; its broker epoch,
    /// which is that offset unless the registration was amended since, stands
    /// in for it.
    pub fn activate(&mut self, image: &ClusterImage, now_ms: i64) {
        self.sessions.clear();
        for broker in image.brokers.values() {
            self.register(broker.node_id, broker.fenced, broker.broker_epoch, now_ms);
        }
    }

    /// Tracks `broker` (if not yet) with its fencing state, as of a
    /// RegisterBrokerRecord at `register_offset`.
    pub fn register(&mut self, broker: i32, fenced: bool, register_offset: i64, now_ms: i64) {
        let metadata_offset = match self.sessions.get(&broker) {
            Some(session) if session.fenced != fenced => session.metadata_offset,
            _ => -1,
        };
        let session = self.sessions.entry(broker).or_insert(Session {
            last_contact_ms: now_ms,
            metadata_offset: -1,
            controlled_shutdown_offset: -1,
            fenced,
            register_offset,
        });
        session.register_offset = register_offset;
        self.touch(broker, fenced, metadata_offset, now_ms);
    }

    /// Forgets `broker` (a new incarnation registers, or it is unregistered).
    pub fn remove(&mut self, broker: i32) {
        self.sessions.remove(&broker);
    }

    /// A contact from `broker` at `now_ms`: its fencing state and metadata
    /// offset. A fenced broker leaves controlled shutdown.
    pub fn touch(&mut self, broker: i32, fenced: bool, metadata_offset: i64, now_ms: i64) {
        if let Some(session) = self.sessions.get_mut(&broker) {
            session.last_contact_ms = now_ms;
            session.metadata_offset = metadata_offset;
            session.fenced = fenced;
            if fenced {
                session.controlled_shutdown_offset = -1;
            }
        }
    }

    /// Marks `broker` fenced (its session expired); its last contact stays.
    pub fn fence(&mut self, broker: i32) {
        if let Some(session) = self.sessions.get_mut(&broker) {
            session.fenced = true;
            session.controlled_shutdown_offset = -1;
        }
    }

    /// Where `broker`'s controlled shutdown completes: the end offset of the
    /// records that started it. Set once; a fenced broker has none.
    pub fn maybe_update_controlled_shutdown_offset(&mut self, broker: i32, offset: i64) {
        if let Some(session) = self.sessions.get_mut(&broker) {
            if !session.fenced && session.controlled_shutdown_offset < 0 {
                session.controlled_shutdown_offset = offset;
            }
        }
    }

    /// The offset of `broker`'s registration record, if it is tracked.
    pub fn register_offset(&self, broker: i32) -> Option<i64> {
        self.sessions.get(&broker).map(|s| s.register_offset)
    }

    pub fn is_tracked(&self, broker: i32) -> bool {
        self.sessions.contains_key(&broker)
    }

    /// Unfenced and heard from within the session timeout.
    pub fn has_valid_session(&self, broker: i32, now_ms: i64) -> bool {
        self.sessions.get(&broker).is_some_and(|s| {
            !s.fenced && s.last_contact_ms.saturating_add(self.session_timeout_ms) >= now_ms
        })
    }

    /// The state a heartbeat from `broker` starts from.
    pub fn current_state(&self, broker: i32) -> Option<BrokerControlState> {
        self.sessions.get(&broker).map(|s| {
            if s.shutting_down() {
                BrokerControlState::ControlledShutdown
            } else if s.fenced {
                BrokerControlState::Fenced
            } else {
                BrokerControlState::Unfenced
            }
        })
    }

    /// The lowest metadata offset among active brokers (unfenced, not shutting
    /// down); `i64::MAX` when there are none.
    pub fn lowest_active_offset(&self) -> i64 {
        self.sessions
            .values()
            .filter(|s| s.active())
            .map(|s| s.metadata_offset)
            .min()
            .unwrap_or(i64::MAX)
    }

    /// Where `broker`'s controlled shutdown completes, if it is shutting down.
    pub fn controlled_shutdown_offset(&self, broker: i32) -> Option<i64> {
        self.sessions
            .get(&broker)
            .filter(|s| s.shutting_down())
            .map(|s| s.controlled_shutdown_offset)
    }

    /// When the next session may expire: the oldest unfenced contact plus the
    /// timeout (`None`: no unfenced broker).
    pub fn next_check_ms(&self) -> Option<i64> {
        self.oldest_unfenced()
            .map(|(_, s)| s.last_contact_ms.saturating_add(self.session_timeout_ms))
    }

    /// The unfenced broker heard from longest ago, if its session has expired.
    /// One at a time, so each fencing is visible before the next.
    pub fn find_one_stale_broker(&self, now_ms: i64) -> Option<i32> {
        self.oldest_unfenced()
            .filter(|(id, _)| !self.has_valid_session(*id, now_ms))
            .map(|(id, _)| id)
    }

    fn oldest_unfenced(&self) -> Option<(i32, &Session)> {
        self.sessions
            .iter()
            .filter(|(_, s)| !s.fenced)
            .min_by_key(|(id, s)| (s.last_contact_ms, **id))
            .map(|(id, s)| (*id, s))
    }

    /// The brokers placement may use: every tracked broker not shutting down,
    /// fenced ones marked, with its rack from `image`.
    pub fn usable_brokers(&self, image: &ClusterImage) -> Vec<UsableBroker> {
        self.sessions
            .iter()
            .filter(|(_, s)| !s.shutting_down())
            .filter_map(|(id, s)| {
                image.brokers.get(id).map(|b| UsableBroker {
                    id: *id,
                    rack: b.rack.clone(),
                    fenced: s.fenced,
                })
            })
            .collect()
    }

    /// Kafka's `calculateNextBrokerState`: the state a heartbeat moves `broker`
    /// to. `leads_something` says whether it still leads a partition.
    pub fn next_state(
        &self,
        broker: i32,
        request: &HeartbeatIntent,
        leads_something: bool,
    ) -> Option<(BrokerControlState, BrokerControlState)> {
        let session = self.sessions.get(&broker)?;
        let current = self.current_state(broker)?;
        let next = match current {
            BrokerControlState::Fenced if request.want_shut_down => BrokerControlState::ShutdownNow,
            BrokerControlState::Fenced
                if !request.want_fence
                    && request.current_metadata_offset >= session.register_offset =>
            {
                BrokerControlState::Unfenced
            }
            BrokerControlState::Fenced => BrokerControlState::Fenced,
            BrokerControlState::Unfenced if request.want_fence => {
                if request.want_shut_down {
                    BrokerControlState::ShutdownNow
                } else {
                    BrokerControlState::Fenced
                }
            }
            BrokerControlState::Unfenced if request.want_shut_down => {
                if leads_something {
                    BrokerControlState::ControlledShutdown
                } else {
                    BrokerControlState::ShutdownNow
                }
            }
            BrokerControlState::Unfenced => BrokerControlState::Unfenced,
            BrokerControlState::ControlledShutdown => {
                if !leads_something
                    && session.controlled_shutdown_offset <= self.lowest_active_offset()
                {
                    BrokerControlState::ShutdownNow
                } else {
                    BrokerControlState::ControlledShutdown
                }
            }
            BrokerControlState::ShutdownNow => BrokerControlState::ShutdownNow,
        };
        Some((current, next))
    }
}

/// What a heartbeat asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatIntent {
    pub current_metadata_offset: i64,
    pub want_fence: bool,
    pub want_shut_down: bool,
}
