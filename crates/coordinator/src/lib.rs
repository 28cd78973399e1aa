//! Coordinators: consumer groups today (Kafka's classic group protocol, offsets in
//! `__consumer_offsets`), transactions later. Sans-IO cores driven by the broker.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod group;
pub mod txn;

pub use group::coordinator::{
    GroupConfig, GroupCoordinator, JoinMember, JoinParams, JoinResult, OffsetsLog, SyncParams,
    SyncResult,
};
pub use group::offsets::{
    GroupDescription, GroupListing, LoadEntry, MemberDescription, OffsetCommitEntry,
};
pub use group::state::{CommittedOffset, GroupState};
pub use txn::coordinator::{
    MarkerWriter, ProducerIdSource, TxnConfig, TxnCoordinator, TxnLog, TxnMetadata,
};
pub use txn::records::TxnState;
