//! Topic-level `compression.type`: when a topic names a codec (not `producer`),
//! produced batches are stored in that codec, rebuilt record by record with their
//! producer fields, timestamps and attributes kept (Kafka's LogValidator does the
//! same). The rebuilt batch is checked again like any other.

use protocol::records::{decode_records, BatchBuilder, Compression, NewRecord};

use crate::config::LogConfig;
use crate::error::AppendError;
use crate::validate::ValidatedBatch;

/// The most a batch may decompress to when it is rebuilt (a batch that claims
/// more is refused as corrupt rather than held in memory).
const MAX_DECOMPRESSED: usize = 256 << 20;

/// The codec a topic forces, if any.
pub fn target_codec(config: &LogConfig) -> Option<Compression> {
    match config.compression_type.as_str() {
        "producer" => None,
        other => Compression::from_name(other),
    }
}

/// Rebuilds every batch of `records` in `target`.
pub fn recompress(
    records: &[u8],
    batches: &[ValidatedBatch],
    target: Compression,
) -> Result<Vec<u8>, AppendError> {
    let mut out = Vec::with_capacity(records.len());
    for batch in batches {
        let bytes = &records[batch.range.clone()];
        let header = &batch.header;
        let (_, decoded) = decode_records(bytes, MAX_DECOMPRESSED)
            .map_err(|e| AppendError::CorruptMessage(e.to_string()))?;
        let mut builder = BatchBuilder::new(target)
            .base_offset(header.base_offset)
            .partition_leader_epoch(header.partition_leader_epoch)
            .timestamp_type(header.timestamp_type())
            .producer(
                header.producer_id,
                header.producer_epoch,
                header.base_sequence,
            )
            .transactional(header.is_transactional())
            .control(header.is_control())
            .base_timestamp(header.base_timestamp);
        for record in &decoded {
            let headers: Vec<(&str, Option<&[u8]>)> = record
                .headers
                .iter()
                .map(|h| (h.key.as_str(), h.value.as_deref()))
                .collect();
            builder.append(&NewRecord {
                timestamp: record.timestamp,
                key: record.key.as_deref(),
                value: record.value.as_deref(),
                headers: &headers,
            });
        }
        let rebuilt = builder
            .build()
            .map_err(|e| AppendError::CorruptMessage(format!("recompressing: {e}")))?;
        out.extend_from_slice(&rebuilt);
    }
    Ok(out)
}
