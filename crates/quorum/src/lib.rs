//! The controller quorum: `__cluster_metadata-0` replicated by openraft 0.9.
//!
//! Kafka's KRaft keeps the cluster's metadata in one log, replicated by Raft
//! among the controllers. Rivulet does the same with openraft
//! (`docs/research/cluster-design.md` §1), and keeps the log in Kafka's own
//! format so Kafka's tools still read it:
//!
//! - every Raft entry is one Kafka record batch of one record; the term is the
//!   batch's partition leader epoch and the index its offset ([`codec`]);
//! - [`MetadataLogStore`] stores them in a `storage::Log`, with the vote in
//!   Kafka's `quorum-state` file ([`quorum_state`]);
//! - [`MetadataStateMachine`] applies committed records to the cluster image
//!   and publishes it, and keeps KIP-630 snapshots of it ([`snapshot`]);
//! - [`network`] carries openraft's RPCs between controllers under private API
//!   keys over a [`QuorumTransport`];
//! - [`Quorum`] is one controller's node: start, propose, status, snapshots.
//!
//! openraft stays behind this crate's types, so that moving to openraft 0.10
//! touches only this crate (the plan's risk R-1).

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod bootstrap;
pub mod codec;
pub mod error;
pub mod import;
pub mod log_store;
pub mod network;
pub mod node;
pub mod quorum_state;
pub mod snapshot;
pub mod state_machine;
pub mod types;

pub use error::StoreError;
pub use log_store::{MetadataLogReader, MetadataLogStore};
pub use network::{QuorumServer, QuorumTransport, TransportError};
pub use node::{Quorum, QuorumConfig, QuorumError, QuorumStatus, Role};
pub use snapshot::{SnapshotContents, SnapshotId};
pub use state_machine::{
    AppliedImage, ApplyProgress, MetadataSnapshotBuilder, MetadataStateMachine, Retention,
};
pub use types::{EntryId, MetadataEntry, NodeId, Payload, TypeConfig, Voter, VoterSet};

#[cfg(test)]
mod suite_tests;
