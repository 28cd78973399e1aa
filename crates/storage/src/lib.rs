//! Rivulet's storage: each partition an append-only log of segments in Kafka's own
//! on-disk layout and formats, so Kafka's knowledge and tools apply.
//!
//! Plain `std::fs` positioned I/O, no async runtime: callers run these calls on
//! blocking threads. Time comes in through [`protocol::time::Clock`].

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod checkpoint;
pub mod cleaner;
pub mod config;
pub mod error;
pub mod leader_epoch;
pub mod log;
pub mod log_manager;
pub mod meta_properties;
pub mod offset_index;
pub mod producer_state;
mod read_pool;
pub mod recompress;
pub mod retention;
pub mod segment;
pub mod time_index;
pub mod txn_index;
pub mod validate;

pub use config::LogConfig;
pub use error::{AppendError, StorageError};
pub use log::{LoadState, Log, LogAppendInfo, ReadOutcome, ReadSlice};
pub use log_manager::{LogManager, SharedLog};
pub use validate::Origin;

#[cfg(test)]
mod log_tests;

#[cfg(test)]
mod cleaner_tests;
