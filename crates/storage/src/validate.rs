//! Checks a produce request's records before anything is written (Kafka's
//! `LogValidator`): whole v2 batches, sizes within `max.message.bytes`, CRCs, record
//! counts that agree with the offset range, timestamps
//! within the topic's limits, no control batches from clients, one batch per
//! partition with base offset 0 (Kafka 4's ProduceRequest rules). Either every batch
//! passes or the append is refused whole.

use std::ops::Range;

use protocol::records::batch::{BatchError, Batches};
use protocol::records::{skim_records_limited, BatchHeader, RecordError, TimestampType};

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
    /// Batches a follower copies from its leader, offsets and epochs as the
    /// leader wrote them ([`crate::Log::append_as_follower`]).
    Replication,
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

/// The most record errors (KIP-467) one answer carries: a batch may hold
/// millions of records, each of them invalid. The message still counts them all.
pub const MAX_RECORD_ERRORS: usize = 1_000;

/// The most bytes a compressed batch's records may decompress to: 64 times
/// `max.message.bytes`, and at least 64 MiB. Kafka has no such bound (its
/// recompression holds every record of the batch in memory); with it a bomb of
/// a few KiB that expands to tens of millions of records costs bounded work, and
/// the walk over the records holds one record at a time whatever the size.
pub fn max_decompressed_bytes(config: &LogConfig) -> u64 {
    u64::from(config.max_message_bytes.max(1 << 20)) * 64
}

fn record_error(error: RecordError) -> AppendError {
    match error {
        RecordError::Batch(e) => batch_error(e),
        RecordError::DecompressedTooLarge { limit } => AppendError::DecompressedTooLarge { limit },
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
    let mut errors = RecordErrors::default();
    let mut max_timestamp = -1i64;
    let mut offset_delta_of_max_timestamp = 0;
    let compacted = config.cleanup_policy_compact && !header.is_control();
    // Kafka checks the record count against the offset range (above) but not each
    // record's offset delta; neither do we. As Kafka's LogValidator, each record
    // gets at most one error, its key's before its timestamp's, and every record
    // is checked so the answer names all the bad ones (KIP-467).
    skim_records_limited(&header, bytes, max_decompressed_bytes(config), |meta| {
        if compacted && meta.key_is_null {
            errors.push(meta.index, false, || {
                "Compacted topic cannot accept message without key".into()
            });
        } else if check_timestamps && meta.timestamp != -1 && (meta.timestamp < earliest || meta.timestamp > latest) {
            errors.push(meta.index, true, || {
                format!(
                    "Timestamp {} of message with offset {} is out of range. The timestamp should be within [{}, {}]",
                    meta.timestamp, meta.index, earliest, latest
                )
            });
        }
        if meta.timestamp > max_timestamp {
            max_timestamp = meta.timestamp;
            offset_delta_of_max_timestamp = meta.offset_delta;
        }
        Ok(())
    })
    .map_err(record_error)?;
    errors.into_result()?;
    Ok(ValidatedBatch {
        header,
        range,
        max_timestamp,
        offset_delta_of_max_timestamp,
    })
}

/// A batch a follower copies from its leader, as it lies in the fetched records.
#[derive(Debug, Clone)]
pub struct ReplicatedBatch {
    pub header: BatchHeader,
    pub range: Range<usize>,
}

/// Checks batches fetched from the leader before a follower appends them (Kafka's
/// `analyzeAndValidateRecords` without offset assignment): magic 2, whole
/// batches, CRCs, offsets that only grow. Offsets, epochs and timestamps stay as
/// the leader wrote them, and there is no size, timestamp or key check: the
/// leader checked all that against the topic config it had then. A compacted
/// batch may hold fewer records than its offset range, and consecutive batches may
/// leave offsets out, so neither is an error.
///
/// Stops before the first batch of a leader epoch above `leader_epoch`, the
/// epoch this replica follows (KAFKA-18723: a leader that lost leadership after
/// it answered must not extend our log with its later epoch), and before a
/// batch cut short at the end (a fetch's size limit; Kafka's `trimInvalidBytes`).
pub fn validate_replicated(
    records: &[u8],
    leader_epoch: i32,
) -> Result<Vec<ReplicatedBatch>, AppendError> {
    let mut batches: Vec<ReplicatedBatch> = Vec::new();
    let mut start = 0usize;
    for item in Batches::new(records) {
        let (header, bytes) = match item {
            Ok(found) => found,
            Err(BatchError::Truncated { .. }) => break,
            Err(BatchError::TooShort(len)) if len == records.len() - start => break,
            Err(e) => return Err(batch_error(e)),
        };
        let range = start..start + bytes.len();
        start = range.end;
        if header.partition_leader_epoch > leader_epoch {
            tracing::info!(
                batch_epoch = header.partition_leader_epoch,
                leader_epoch,
                base_offset = header.base_offset,
                "skipping replicated batches of a leader epoch above the followed one"
            );
            break;
        }
        protocol::records::batch::verify_crc(bytes).map_err(batch_error)?;
        header.compression().map_err(batch_error)?;
        if header.last_offset_delta < 0 || header.records_count < 0 || header.base_offset < 0 {
            return Err(AppendError::CorruptMessage(format!(
                "replicated batch at {} has offset delta {} and {} records",
                header.base_offset, header.last_offset_delta, header.records_count
            )));
        }
        if let Some(previous) = batches.last() {
            if header.base_offset <= previous.header.last_offset() {
                return Err(AppendError::InvalidRecord(format!(
                    "Out of order offsets found in append: batch at {} follows one ending at {}",
                    header.base_offset,
                    previous.header.last_offset()
                )));
            }
        }
        batches.push(ReplicatedBatch { header, range });
    }
    Ok(batches)
}

/// The record errors of one batch, as Kafka's `processRecordErrors` reports them.
#[derive(Default)]
struct RecordErrors {
    total: usize,
    any_timestamp: bool,
    kept: Vec<(i32, String)>,
}

impl RecordErrors {
    fn push(&mut self, index: usize, timestamp: bool, message: impl FnOnce() -> String) {
        self.total += 1;
        self.any_timestamp |= timestamp;
        if self.kept.len() < MAX_RECORD_ERRORS {
            self.kept
                .push((i32::try_from(index).unwrap_or(i32::MAX), message()));
        }
    }

    fn into_result(self) -> Result<(), AppendError> {
        if self.total == 0 {
            return Ok(());
        }
        if self.any_timestamp {
            return Err(AppendError::InvalidTimestamp {
                message: "One or more records have been rejected due to invalid timestamp".into(),
                record_errors: self.kept,
            });
        }
        let first: Vec<String> = self
            .kept
            .iter()
            .take(3)
            .map(|(index, message)| format!("RecordError(batchIndex={index}, message='{message}')"))
            .collect();
        Err(AppendError::InvalidRecords {
            message: format!(
                "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
                self.total,
                first.join(", ")
            ),
            record_errors: self.kept,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use protocol::records::bomb::empty_records_batch;
    use protocol::records::{BatchBuilder, Compression, NewRecord};

    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn config(pairs: &[(&str, &str)]) -> LogConfig {
        let overrides: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LogConfig::resolve(&overrides, &BTreeMap::new()).unwrap()
    }

    fn keyed(keys: &[Option<&[u8]>]) -> Vec<u8> {
        let mut builder = BatchBuilder::new(Compression::Lz4);
        for key in keys {
            builder.append(&NewRecord {
                timestamp: NOW,
                key: *key,
                value: Some(b"v"),
                headers: &[],
            });
        }
        builder.build().unwrap()
    }

    #[test]
    fn keyless_records_on_a_compacted_topic_are_named_one_by_one() {
        let config = config(&[("cleanup.policy", "compact")]);
        let records = keyed(&[Some(b"a"), None, Some(b"c"), None]);
        match validate_records(&records, &config, NOW, Origin::Client) {
            Err(AppendError::InvalidRecords {
                message,
                record_errors,
            }) => {
                let text = "Compacted topic cannot accept message without key";
                assert_eq!(record_errors, vec![(1, text.into()), (3, text.into())]);
                assert_eq!(message, format!("One or more records have been rejected due to 2 record errors in total, and only showing the first three errors at most: [RecordError(batchIndex=1, message='{text}'), RecordError(batchIndex=3, message='{text}')]"));
            }
            other => panic!("expected per-record errors, got {other:?}"),
        }
    }

    #[test]
    fn record_errors_are_bounded_but_all_counted() {
        let config = config(&[("cleanup.policy", "compact")]);
        let keys: Vec<Option<&[u8]>> = vec![None; 5_000];
        match validate_records(&keyed(&keys), &config, NOW, Origin::Client) {
            Err(AppendError::InvalidRecords {
                message,
                record_errors,
            }) => {
                assert_eq!(record_errors.len(), MAX_RECORD_ERRORS);
                assert_eq!(record_errors.last().unwrap().0, 999);
                assert!(message.contains("due to 5000 record errors"), "{message}");
            }
            other => panic!("expected per-record errors, got {other:?}"),
        }
    }

    #[test]
    fn a_key_error_and_a_timestamp_error_make_an_invalid_timestamp_answer() {
        let config = config(&[("cleanup.policy", "compact")]);
        let mut builder = BatchBuilder::new(Compression::None);
        builder.append(&NewRecord {
            timestamp: NOW,
            key: None,
            value: None,
            headers: &[],
        });
        builder.append(&NewRecord {
            timestamp: 1,
            key: Some(b"k"),
            value: None,
            headers: &[],
        });
        let config = LogConfig {
            message_timestamp_before_max_ms: 1_000,
            ..config
        };
        match validate_records(&builder.build().unwrap(), &config, NOW, Origin::Client) {
            Err(AppendError::InvalidTimestamp { record_errors, .. }) => {
                assert_eq!(
                    record_errors.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
                    vec![0, 1]
                );
            }
            other => panic!("expected INVALID_TIMESTAMP, got {other:?}"),
        }
    }

    #[test]
    fn a_zstd_bomb_is_refused_once_it_passes_the_decompression_limit() {
        // 10M empty records: 70 MB of records from a few KiB, over the 64 MiB bound.
        let config = config(&[]);
        // max.message.bytes defaults to 1 MiB + 12 bytes, as in Kafka.
        assert_eq!(max_decompressed_bytes(&config), 64 * 1_048_588);
        let bomb = empty_records_batch(Compression::Zstd, 10_000_000, NOW);
        assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
        match validate_records(&bomb, &config, NOW, Origin::Client) {
            Err(AppendError::DecompressedTooLarge { limit }) => assert_eq!(limit, 64 * 1_048_588),
            other => panic!("expected DecompressedTooLarge, got {other:?}"),
        }
        // The bound follows max.message.bytes above 1 MiB.
        assert_eq!(
            max_decompressed_bytes(&self::config(&[("max.message.bytes", "4194304")])),
            256 << 20
        );
    }
}
