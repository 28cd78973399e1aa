//! Record batch v2, the record format Rivulet stores, and the message sets (magic 0
//! and 1) of old clients, converted at the edge.

pub mod batch;
pub mod bomb;
pub mod budget;
pub mod builder;
pub mod compression;
pub mod control;
pub mod message_set;
pub mod record;
pub mod view;

pub use batch::{BatchError, BatchHeader, Batches, TimestampType};
pub use budget::DecompressionBudget;
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
