//! The Rivulet broker: a Kafka broker that unmodified Kafka clients use.
//!
//! [`server::RunningBroker::start`] brings one up from a [`config::BrokerConfig`];
//! [`network`] serves connections; [`handlers`] holds one file per Kafka API.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod broker;
pub mod cleaner;
pub mod clock;
pub mod cluster_config;
pub mod config;
pub mod configs;
pub mod controller_client;
pub mod controller_state;
pub mod errors;
pub mod group_commit;
pub mod groups;
pub mod handlers;
pub mod internal_topics;
pub mod metadata_publisher;
pub mod metadata_quorum;
pub mod network;
pub mod partition;
pub mod random;
pub mod replica_manager;
pub mod runtime;
pub mod server;
pub mod settings;
pub mod signal;
pub mod storage_format;
pub mod transactions;

pub use broker::Broker;
pub use config::BrokerConfig;
pub use server::{BrokerError, RunningBroker};
