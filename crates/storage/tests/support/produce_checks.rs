//! Checks of a produce request's compressed batch through the broker's
//! validation and topic-level recompression, shared by the cargo-fuzz target
//! `fuzz/fuzz_targets/produce_compressed.rs` and the stable, seeded
//! `crates/storage/tests/hostile_fuzz.rs`.
//!
//! The input picks the producer's codec, the topic's `compression.type`,
//! `cleanup.policy` and `max.message.bytes`, and either records (built from the
//! input, so they are mostly well formed) or raw bytes as the compressed body with
//! any record count. Whatever it is, validation answers a produce error; and what
//! it accepts recompresses to a batch within `max.message.bytes` that validates
//! again and holds the same records, numbered 0..n.

use std::collections::BTreeMap;

use protocol::records::batch::{self, HEADER_LEN};
use protocol::records::compression::compress_stream;
use protocol::records::{decode_records, BatchBuilder, Compression, NewRecord};
use storage::recompress::{recompress, target_codec};
use storage::validate::{validate_records, Origin};
use storage::{AppendError, LogConfig};

pub const NOW_MS: i64 = 1_700_000_000_000;

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn take<'a>(data: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, rest) = data.split_at(n.min(data.len()));
    *data = rest;
    head
}

fn byte(data: &mut &[u8]) -> u8 {
    take(data, 1).first().copied().unwrap_or(0)
}

/// The topic config the input asks for.
pub fn config(flags: u8, target: u8) -> LogConfig {
    let mut overrides = BTreeMap::new();
    if flags & 1 != 0 {
        overrides.insert("cleanup.policy".to_string(), "compact".to_string());
    }
    if flags & 2 != 0 {
        overrides.insert("max.message.bytes".to_string(), "2000".to_string());
    }
    let compression = match target % 6 {
        0 => "producer",
        1 => "uncompressed",
        2 => "gzip",
        3 => "snappy",
        4 => "lz4",
        _ => "zstd",
    };
    overrides.insert("compression.type".to_string(), compression.to_string());
    LogConfig::resolve(&overrides, &BTreeMap::new()).expect("valid topic config")
}

/// Records built from the input: [key len, value len, header count, timestamp
/// delta] each, 255 meaning a null key or value.
fn built_batch(codec: Compression, data: &mut &[u8]) -> Vec<u8> {
    let mut builder = BatchBuilder::new(codec).base_timestamp(NOW_MS);
    while data.len() >= 4 {
        let spec = take(data, 4);
        let key_len = spec[0];
        let value_len = spec[1];
        let key = (key_len != 255).then(|| vec![b'k'; usize::from(key_len % 64)]);
        let value = (value_len != 255).then(|| vec![b'v'; usize::from(value_len) * 7]);
        let headers: Vec<(&str, Option<&[u8]>)> =
            (0..spec[2] % 3).map(|_| ("h", Some(&b"x"[..]))).collect();
        builder.append(&NewRecord {
            timestamp: NOW_MS + i64::from(spec[3]),
            key: key.as_deref(),
            value: value.as_deref(),
            headers: &headers,
        });
    }
    builder.build().expect("compressing built records")
}

/// A batch whose compressed body is `body` (compressed here unless `raw`) and
/// whose header claims `count` records.
fn raw_batch(codec: Compression, body: &[u8], raw: bool, count: i32) -> Vec<u8> {
    let mut out = BatchBuilder::new(codec)
        .base_timestamp(NOW_MS)
        .build()
        .expect("empty batch");
    out.truncate(HEADER_LEN);
    let mut out = if raw {
        out.extend_from_slice(body);
        out
    } else {
        compress_stream(codec, &mut &body[..], out).expect("compressing into a Vec")
    };
    let length = (out.len() - batch::LOG_OVERHEAD) as i32;
    out[batch::BATCH_LENGTH_AT..batch::BATCH_LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
    out[batch::LAST_OFFSET_DELTA_AT..batch::LAST_OFFSET_DELTA_AT + 4]
        .copy_from_slice(&count.wrapping_sub(1).to_be_bytes());
    out[batch::RECORDS_COUNT_AT..batch::RECORDS_COUNT_AT + 4].copy_from_slice(&count.to_be_bytes());
    out[batch::MAX_TIMESTAMP_AT..batch::MAX_TIMESTAMP_AT + 8]
        .copy_from_slice(&NOW_MS.to_be_bytes());
    let crc = batch::compute_crc(&out);
    batch::set_crc(&mut out, crc);
    out
}

/// The batch and topic config an input describes.
pub fn produce_input(mut data: &[u8]) -> (Vec<u8>, LogConfig) {
    let codec = CODECS[usize::from(byte(&mut data)) % CODECS.len()];
    let target = byte(&mut data);
    let flags = byte(&mut data);
    let config = config(flags, target);
    let batch = if flags & 4 == 0 {
        built_batch(codec, &mut data)
    } else {
        let count_bytes = take(&mut data, 4);
        let mut count = [0u8; 4];
        count[..count_bytes.len()].copy_from_slice(count_bytes);
        raw_batch(codec, data, flags & 8 != 0, i32::from_le_bytes(count))
    };
    (batch, config)
}

/// What a client's produce of `records` must come to under `config`.
pub fn check_produce(records: &[u8], config: &LogConfig) -> Result<(), AppendError> {
    let validated = match validate_records(records, config, NOW_MS, Origin::Client) {
        Ok(validated) => validated,
        Err(error) => {
            assert!(
                !matches!(error, AppendError::Producer(_) | AppendError::Storage(_)),
                "validation answered {error:?}"
            );
            if let AppendError::InvalidRecords { record_errors, .. }
            | AppendError::InvalidTimestamp { record_errors, .. } = &error
            {
                assert!(!record_errors.is_empty());
                assert!(record_errors.len() <= storage::validate::MAX_RECORD_ERRORS);
            }
            return Err(error);
        }
    };
    let Some(target) = target_codec(config) else {
        return Ok(());
    };
    let rebuilt = match recompress(records, &validated, target, config) {
        Ok(rebuilt) => rebuilt,
        Err(error) => {
            assert!(
                matches!(
                    error,
                    AppendError::MessageTooLarge { .. }
                        | AppendError::DecompressedTooLarge { .. }
                        | AppendError::CorruptMessage(_)
                ),
                "recompression answered {error:?}"
            );
            return Err(error);
        }
    };
    assert!(rebuilt.len() <= config.max_message_bytes as usize);
    batch::verify_crc(&rebuilt).expect("the rebuilt batch's CRC");
    let again = validate_records(&rebuilt, config, NOW_MS, Origin::Coordinator)
        .expect("a rebuilt batch validates");
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].header.records_count,
        validated[0].header.records_count
    );
    assert_eq!(again[0].header.compression(), Ok(target));
    // Same records, renumbered (compared when few enough to hold as `Record`s).
    let limit = 8 << 20;
    if validated[0].header.records_count > 10_000 {
        return Ok(());
    }
    if let (Ok((_, before)), Ok((_, after))) = (
        decode_records(records, limit),
        decode_records(&rebuilt, limit),
    ) {
        assert_eq!(before.len(), after.len());
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            assert_eq!(a.offset, i as i64);
            assert_eq!(
                (&b.key, &b.value, &b.headers, b.timestamp),
                (&a.key, &a.value, &a.headers, a.timestamp)
            );
        }
    }
    Ok(())
}
