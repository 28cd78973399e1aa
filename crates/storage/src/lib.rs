//! Rivulet's storage: each partition an append-only log of segments in Kafka's own
//! on-disk layout and formats, so Kafka's knowledge and tools apply.
//!
//! No async runtime: callers run these calls on blocking threads. The filesystem
//! comes in through [`fs::Fs`] (the real one, or [`fs::MemFs`] in tests) and time
//! through [`protocol::time::Clock`], both in a [`LogEnv`].

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod checkpoint;
pub mod cleaner;
pub mod config;
pub mod descriptors;
pub mod env;
pub mod error;
pub mod fs;
pub mod leader_epoch;
pub mod log;
pub mod log_dir;
pub mod log_manager;
pub mod meta_properties;
pub mod offset_index;
pub mod producer_state;
mod read;
mod read_pool;
pub mod recompress;
pub mod retention;
pub mod segment;
pub mod sparse_index;
pub mod time_index;
pub mod txn_index;
pub mod validate;

pub use config::LogConfig;
pub use env::{LogEnv, SegmentDeletes};
pub use error::{AppendError, StorageError};
pub use log::{AppendMode, LoadState, Log, LogAppendInfo, ReadOutcome, ReadSlice};
pub use log_manager::{LogManager, SharedLog};
pub use validate::Origin;

#[cfg(test)]
mod log_tests;

#[cfg(test)]
mod log_model_tests;

#[cfg(test)]
mod recovery_tests;

#[cfg(test)]
mod descriptor_tests;

#[cfg(test)]
mod fault_tests;

#[cfg(test)]
mod cleaner_tests;

#[cfg(test)]
mod flush_tests;
