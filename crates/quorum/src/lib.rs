//! The controller quorum: `__cluster_metadata-0` replicated by openraft.
//!
//! This crate will hold the openraft adapters (the metadata log as Kafka record
//! batches, the state machine over the cluster image, the network over the
//! controller listener) behind a small façade, so that `metadata` stays free of
//! I/O and a move to openraft 0.10 touches only this crate
//! (`docs/research/cluster-design.md` §1.2). For now it only brings in openraft,
//! so that its build cost is measured on its own (`docs/decisions.md`).

pub use openraft;
