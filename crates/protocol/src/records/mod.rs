//! Record batch v2, the only record format Rivulet reads and writes.

pub mod batch;
pub mod bomb;
pub mod builder;
pub mod compression;
pub mod record;

pub use batch::{BatchError, BatchHeader, Batches, TimestampType};
pub use builder::{BatchBuilder, NewRecord};
pub use compression::Compression;
pub use record::{
    decode_records, decode_records_shared, skim_records, skim_records_limited, Capped, Header,
    Record, RecordError, RecordMeta,
};

#[cfg(test)]
mod tests;
