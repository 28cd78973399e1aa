//! Rivulet's wire layer: Kafka framing, the request/response codecs (re-exported
//! from the `kafka-protocol` crate, generated from Kafka's own JSON message specs),
//! every Kafka error code, and record batch v2 (header view and patching, CRC32C,
//! compression, records). No I/O here; the broker and the client share it.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod error_code;
pub mod fetch_frame;
pub mod frame;
pub mod random;
pub mod records;
pub mod time;
pub mod types;
pub mod varint;

pub use error_code::ErrorCode;
pub use kafka_protocol as kafka;
pub use types::{Offset, TopicPartition};
