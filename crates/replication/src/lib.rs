//! Replication's decisions, with no I/O: each partition's state machine (leader
//! epoch, ISR, high watermark, follower progress, acks=all waiting for the ISR,
//! truncation by leader epoch) and which partitions this broker hosts.
//!
//! The broker is the shell around it: it owns the logs, feeds each partition's
//! machine what happened ([`partition::Input`]) and executes what it returns
//! ([`partition::Command`]); `docs/architecture.md` shows the path of a produce
//! and a fetch through both.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod epochs;
pub mod error;
pub mod events;
mod fetch_types;
pub mod fetcher;
pub mod fetcher_manager;
pub mod hosting;
pub mod partition;
pub mod replica;
pub mod roles;

#[cfg(test)]
#[path = "replicas_tests.rs"]
mod replicas_tests;

pub use epochs::{FetchStart, LogEpochs, UNDEFINED_EPOCH_END};
pub use error::{AckError, IsolationLevel, ReplicationError};
pub use events::{
    AckId, AliveBroker, Command, EpochEndOffset, Input, IsrChangeError, IsrMember, LogOffsets,
    PartitionMetadata, ReplicationConfig,
};
pub use fetcher::{Fetcher, FetcherCommand, FetcherConfig};
pub use fetcher_manager::{fetcher_id, FetcherKey, FetcherManager};
pub use hosting::HostingCommand;
pub use partition::{Partition, PartitionState};
pub use replica::FollowerState;
pub use roles::{apply_delta, RoleChange, RoleCommand};
