//! Coordinators: consumer groups (Kafka's classic group protocol, offsets in
//! `__consumer_offsets`) and transactions (KIP-98, state in `__transaction_state`).
//! Sans-IO cores driven by the broker: time through a clock, member ids through a
//! random source, and every write queued with a continuation (`outbox`) that the
//! broker carries out outside the coordinator's lock and reports back.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod error;
pub mod group;
pub mod outbox;
pub mod txn;

pub use error::{GroupError, TxnError, WriteError};
pub use group::coordinator::{
    CommitCallback, GroupConfig, GroupCoordinator, GroupWrite, JoinMember, JoinParams, JoinResult,
    PerItem, SyncParams, SyncResult,
};
pub use group::offsets::{
    GroupDescription, GroupListing, LoadEntry, MemberDescription, OffsetCommitEntry,
};
pub use group::state::{CommittedOffset, GroupState};
pub use outbox::WriteId;
pub use txn::coordinator::{
    ProducerIdSource, TxnCallback, TxnConfig, TxnCoordinator, TxnMetadata, TxnWrite,
};
pub use txn::records::TxnState;
