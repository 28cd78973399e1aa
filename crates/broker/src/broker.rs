//! The state every connection and background task shares: the broker's config
//! and the narrow services built at start-up (`server.rs`). Handlers receive it
//! through their request context and use the service they need.

use std::sync::Arc;

use metadata::Endpoint;
use protocol::random::Random;
use protocol::time::Clock;
use storage::LogManager;
use tokio::sync::watch;

use crate::config::BrokerConfig;
use crate::controller_client::ControllerClient;
use crate::groups::Groups;
use crate::metadata_publisher::PublishedMetadata;
use crate::replica_manager::ReplicaManager;
use crate::runtime::Shutdown;
use crate::settings::Settings;
use crate::transactions::Transactions;

/// State shared by every connection and background task.
pub struct Broker {
    pub config: BrokerConfig,
    pub cluster_id: String,
    pub clock: Arc<dyn Clock>,
    /// The broker's source of randomness (topic ids, incarnation ids).
    pub random: Arc<dyn Random>,
    /// Typed settings of the services, read once from `config`.
    pub settings: Arc<Settings>,
    /// The cluster image this broker has acted on (what handlers read).
    pub metadata: Arc<PublishedMetadata>,
    /// Every metadata change goes through it.
    pub controller: Arc<ControllerClient>,
    pub replicas: Arc<ReplicaManager>,
    pub log_manager: Arc<LogManager>,
    /// The endpoints this broker advertises (with the ports actually bound).
    pub endpoints: Vec<Endpoint>,
    /// The consumer group coordinator.
    pub groups: Arc<Groups>,
    /// Where each compacted log is clean up to.
    pub cleaner: Arc<crate::cleaner::CleanerState>,
    /// The transaction coordinator.
    pub transactions: Arc<Transactions>,
    /// Produce requests with acks != 0 answered so far (for the fault hook).
    pub produce_requests: std::sync::atomic::AtomicU64,
    pub shutdown: Shutdown,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("node_id", &self.config.node_id)
            .finish_non_exhaustive()
    }
}

impl Broker {
    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.signal()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_shutting_down()
    }
}
