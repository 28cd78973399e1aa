//! Checks a produce request's records before anything is written (Kafka's
//! `LogValidator`): whole v2 batches, sizes within `max.message.bytes`, CRCs, record
//! counts that agree with the offset range, timestamps
//! within the topic's limits, no control batches from clients, one batch per
//! partition with base offset 0 (Kafka 4's ProduceRequest rules). Either every batch
//! passes or the append is refused whole.

use std::ops::Range;

use protocol::records::batch::{BatchError, Batches};
use protocol::records::{skim_records, BatchHeader, RecordError, TimestampType};

use crate::config::{LogConfig, MessageTimestampType};
use crate::error::AppendError;

/// A batch that passed validation, with what the broker computed from it.
#[derive(Debug, Clone)]
pub struct ValidatedBatch {
    pub header: BatchHeader,
    /// Where the batch lies in the request's records.
    pub range: Range<usize>,
    /// The largest record timestamp (CreateTime), computed from the records.
    pub max_timestamp: i64,
    /// The offset delta of the first record carrying `max_timestamp`.
    pub offset_delta_of_max_timestamp: i32,
}

/// Who is appending: a client's produce request, or the broker itself (control
/// batches for transaction markers, internal topics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Client,
    Coordinator,
}

fn batch_error(error: BatchError) -> AppendError {
    match error {
        BatchError::UnsupportedMagic(magic) => AppendError::UnsupportedMagic(magic),
        BatchError::UnknownCompression(id) => {
            AppendError::UnsupportedCompression(format!("codec id {id}"))
        }
        other => AppendError::CorruptMessage(other.to_string()),
    }
}

fn record_error(error: RecordError) -> AppendError {
    match error {
        RecordError::Batch(e) => batch_error(e),
        RecordError::Decompression(reason) => {
            AppendError::CorruptMessage(format!("records do not decompress: {reason}"))
        }
        other => AppendError::InvalidRecord(other.to_string()),
    }
}

/// Validates every batch of `records`. `now_ms` is the broker's clock.
pub fn validate_records(
    records: &[u8],
    config: &LogConfig,
    now_ms: i64,
    origin: Origin,
) -> Result<Vec<ValidatedBatch>, AppendError> {
    if records.is_empty() {
        return Err(AppendError::InvalidRecord(
            "produce request carries no record batches".into(),
        ));
    }
    let mut validated = Vec::new();
    let mut start = 0usize;
    for item in Batches::new(records) {
        let (header, bytes) = item.map_err(batch_error)?;
        if origin == Origin::Client && !validated.is_empty() {
            // Kafka's ProduceRequest.validateRecords: one batch per partition.
            return Err(AppendError::InvalidRecord("Produce requests with magic v2 must contain exactly one record batch per partition".into()));
        }
        let range = start..start + bytes.len();
        start = range.end;
        validated.push(validate_batch(
            header, bytes, range, config, now_ms, origin,
        )?);
    }
    if start > config.segment_bytes as usize {
        return Err(AppendError::RecordListTooLarge {
            size: start,
            max: config.segment_bytes,
        });
    }
    Ok(validated)
}

fn validate_batch(
    header: BatchHeader,
    bytes: &[u8],
    range: Range<usize>,
    config: &LogConfig,
    now_ms: i64,
    origin: Origin,
) -> Result<ValidatedBatch, AppendError> {
    if bytes.len() > config.max_message_bytes as usize {
        return Err(AppendError::MessageTooLarge {
            size: bytes.len(),
            max: config.max_message_bytes,
        });
    }
    protocol::records::batch::verify_crc(bytes).map_err(batch_error)?;
    header.compression().map_err(batch_error)?;
    let count_from_offsets = i64::from(header.last_offset_delta) + 1;
    if count_from_offsets <= 0 {
        return Err(AppendError::InvalidRecord(format!(
            "Batch has an invalid offset range: [{}, {}]",
            header.base_offset,
            header.last_offset()
        )));
    }
    if header.records_count <= 0 {
        return Err(AppendError::InvalidRecord(format!(
            "Invalid reported count for record batch: {}",
            header.records_count
        )));
    }
    if count_from_offsets != i64::from(header.records_count) {
        return Err(AppendError::InvalidRecord(format!(
            "Inconsistent batch offset range [{}, {}] and count of records {}",
            header.base_offset,
            header.last_offset(),
            header.records_count
        )));
    }
    if origin == Origin::Client && header.base_offset != 0 {
        return Err(AppendError::InvalidRecord(format!(
            "Base offset of a produced batch must be 0, was {}",
            header.base_offset
        )));
    }
    if origin == Origin::Client && header.is_control() {
        return Err(AppendError::InvalidRecord(
            "Clients are not allowed to write control records".into(),
        ));
    }
    if origin == Origin::Client && header.has_producer_id() && header.base_sequence < 0 {
        return Err(AppendError::InvalidRecord(format!(
            "Invalid sequence number {} in record batch with producerId {}",
            header.base_sequence, header.producer_id
        )));
    }
    let check_timestamps = config.message_timestamp_type == MessageTimestampType::CreateTime;
    if check_timestamps && header.timestamp_type() == TimestampType::LogAppendTime {
        return Err(AppendError::InvalidTimestamp {
            message: "One or more records have been rejected due to invalid timestamp".into(),
            record_errors: vec![(0, format!("Invalid timestamp type in message {}. Producer should not set timestamp type to LogAppendTime", header.base_offset))],
        });
    }
    let earliest = now_ms.saturating_sub(config.message_timestamp_before_max_ms);
    let latest = now_ms.saturating_add(config.message_timestamp_after_max_ms);
    let mut timestamp_errors = Vec::new();
    let mut max_timestamp = -1i64;
    let mut offset_delta_of_max_timestamp = 0;
    let compacted = config.cleanup_policy_compact && !header.is_control();
    // Kafka checks the record count against the offset range (above) but not each
    // record's offset delta; neither do we.
    skim_records(&header, bytes, |meta| {
        if compacted && meta.key_is_null {
            return Err(RecordError::InvalidRecord {
                index: meta.index,
                reason: "Compacted topic cannot accept message without key".into(),
            });
        }
        if check_timestamps && meta.timestamp != -1 && (meta.timestamp < earliest || meta.timestamp > latest) {
            timestamp_errors.push((
                meta.index as i32,
                format!(
                    "Timestamp {} of message with offset {} is out of range. The timestamp should be within [{}, {}]",
                    meta.timestamp, meta.index, earliest, latest
                ),
            ));
        }
        if meta.timestamp > max_timestamp {
            max_timestamp = meta.timestamp;
            offset_delta_of_max_timestamp = meta.offset_delta;
        }
        Ok(())
    })
    .map_err(record_error)?;
    if !timestamp_errors.is_empty() {
        return Err(AppendError::InvalidTimestamp {
            message: "One or more records have been rejected due to invalid timestamp".into(),
            record_errors: timestamp_errors,
        });
    }
    Ok(ValidatedBatch {
        header,
        range,
        max_timestamp,
        offset_delta_of_max_timestamp,
    })
}
