//! Record batch v2, the only record format Rivulet reads and writes.

pub mod batch;
pub mod bomb;
pub mod builder;
pub mod compression;
pub mod control;
pub mod record;
pub mod view;

pub use batch::{BatchError, BatchHeader, Batches, TimestampType};
pub use builder::{BatchBuilder, NewRecord};
pub use compression::Compression;
pub use control::{control_record, ControlRecord};
pub use record::{
    decode_records, decode_records_shared, skim_records, skim_records_limited, Capped, Header,
    Record, RecordError, RecordMeta,
};
pub use view::{records_section, RecordView, RecordViews};

#[cfg(test)]
mod tests;
