//! Replication: the partitions this broker leads or follows, their leader epochs,
//! ISR and high watermark, and the signals delayed fetches wait on.
//!
//! Today every partition has one replica (this broker), so the ISR is `{self}` and
//! the high watermark follows the log end offset; the state and the checks
//! (leader epoch fencing, `min.insync.replicas`) are the ones followers will need.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod event;
pub mod partition;
pub mod replica_manager;

pub use event::Event;
pub use partition::{
    AppendOutcome, IsolationLevel, Partition, PartitionRead, PartitionState, ReplicationError,
    SharedPartition,
};
pub use replica_manager::{ConfigResolver, ReplicaManager};
