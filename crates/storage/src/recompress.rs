//! Topic-level `compression.type`: when a topic names a codec (not `producer`),
//! produced batches are stored in that codec, as Kafka's LogValidator does.
//!
//! A record's bytes do not depend on the codec its batch uses, so a batch is
//! rebuilt by streaming its decompressed records straight into the target codec:
//! every record keeps its timestamp, key, value and headers byte for byte, and
//! gets the offset delta of its position (0, 1, 2...), as Kafka's rebuild assigns
//! offsets afresh; the header keeps its fields except the codec bits, the length
//! and the CRC. Nothing
//! is held but the codecs' state and the output, which may not grow past
//! `max.message.bytes` (MESSAGE_TOO_LARGE, as Kafka answers a recompressed batch
//! that is too large); the input may not decompress to more than
//! [`crate::validate::max_decompressed_bytes`]. The rebuilt batch is checked again
//! like any other by the caller.

use std::io::{self, Read, Write};

use protocol::records::batch::{self, ATTRIBUTES_AT, BATCH_LENGTH_AT, HEADER_LEN, LOG_OVERHEAD};
use protocol::records::compression::{compress_stream, decompress_reader};
use protocol::records::{Capped, Compression};
use protocol::varint::{read_varint_from, read_varlong_from, write_varint, write_varlong};

use crate::config::LogConfig;
use crate::error::AppendError;
use crate::validate::{max_decompressed_bytes, ValidatedBatch};

/// The codec a topic forces, if any.
pub fn target_codec(config: &LogConfig) -> Option<Compression> {
    match config.compression_type.as_str() {
        "producer" => None,
        other => Compression::from_name(other),
    }
}

/// The low three attribute bits name the codec.
const COMPRESSION_MASK: i16 = 0x07;

/// A `Vec` that refuses to grow past `max` bytes.
struct BoundedSink {
    out: Vec<u8>,
    max: usize,
    exceeded: bool,
}

impl Write for BoundedSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.out.len().saturating_add(data.len()) > self.max {
            self.exceeded = true;
            return Err(io::Error::other("rebuilt batch exceeds max.message.bytes"));
        }
        self.out.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Streams the records of a decompressed batch with each record's offset delta
/// replaced by its index. Holds one record's prefix (a few bytes), never a record:
/// the rest of each record is passed through as it is read. The records were
/// checked by `validate` (lengths, fields, count) before they get here.
struct Renumbered<R: Read> {
    inner: R,
    index: i32,
    /// Bytes to hand out before reading on: a record's rewritten prefix.
    pending: Vec<u8>,
    at: usize,
    /// Bytes of the current record still to pass through.
    body_left: u64,
}

impl<R: Read> Renumbered<R> {
    fn new(inner: R) -> Self {
        Renumbered {
            inner,
            index: 0,
            pending: Vec::with_capacity(32),
            at: 0,
            body_left: 0,
        }
    }

    /// Reads the next record's prefix and queues it rewritten; false at the end.
    fn next_record(&mut self) -> io::Result<bool> {
        let length = match read_varint_from(&mut self.inner) {
            Ok(length) => length,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        };
        let mut attributes = [0u8; 1];
        self.inner.read_exact(&mut attributes)?;
        let timestamp_delta = read_varlong_from(&mut self.inner)?;
        let offset_delta = read_varint_from(&mut self.inner)?;
        let mut old_prefix = vec![attributes[0]];
        write_varlong(&mut old_prefix, timestamp_delta);
        write_varint(&mut old_prefix, offset_delta);
        let mut new_prefix = vec![attributes[0]];
        write_varlong(&mut new_prefix, timestamp_delta);
        write_varint(&mut new_prefix, self.index);
        let rest = i64::from(length) - old_prefix.len() as i64;
        let new_length = i32::try_from(rest + new_prefix.len() as i64)
            .ok()
            .filter(|_| rest >= 0)
            .ok_or_else(|| io::Error::other(format!("record length {length}")))?;
        self.pending.clear();
        write_varint(&mut self.pending, new_length);
        self.pending.extend_from_slice(&new_prefix);
        self.at = 0;
        self.body_left = rest as u64;
        self.index = self.index.wrapping_add(1);
        Ok(true)
    }
}

impl<R: Read> Read for Renumbered<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.at == self.pending.len() && self.body_left == 0 && !self.next_record()? {
            return Ok(0);
        }
        if self.at < self.pending.len() {
            let n = out.len().min(self.pending.len() - self.at);
            out[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
            self.at += n;
            return Ok(n);
        }
        let want = out
            .len()
            .min(usize::try_from(self.body_left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut out[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.body_left -= n as u64;
        Ok(n)
    }
}

/// Rebuilds every batch of `records` in `target`.
pub fn recompress(
    records: &[u8],
    batches: &[ValidatedBatch],
    target: Compression,
    config: &LogConfig,
) -> Result<Vec<u8>, AppendError> {
    let mut out = Vec::with_capacity(records.len());
    for batch in batches {
        let rebuilt = recompress_batch(&records[batch.range.clone()], batch, target, config)?;
        out.extend_from_slice(&rebuilt);
    }
    Ok(out)
}

fn recompress_batch(
    bytes: &[u8],
    batch: &ValidatedBatch,
    target: Compression,
    config: &LogConfig,
) -> Result<Vec<u8>, AppendError> {
    let max = config.max_message_bytes as usize;
    let source = batch
        .header
        .compression()
        .map_err(|e| AppendError::CorruptMessage(e.to_string()))?;
    let limit = max_decompressed_bytes(config);
    let body = &bytes[HEADER_LEN..];
    let reader = decompress_reader(source, body)
        .map_err(|e| AppendError::CorruptMessage(format!("records do not decompress: {e}")))?;
    let mut reader = Renumbered::new(Capped::new(reader, limit));
    let mut sink = BoundedSink {
        out: Vec::with_capacity(HEADER_LEN + body.len().min(max)),
        max,
        exceeded: false,
    };
    sink.out.extend_from_slice(&bytes[..HEADER_LEN]);
    let streamed = compress_stream(target, &mut reader, &mut sink).map(|_| ());
    if reader.inner.exceeded {
        return Err(AppendError::DecompressedTooLarge { limit });
    }
    if sink.exceeded {
        return Err(AppendError::MessageTooLarge {
            size: max.saturating_add(1),
            max: config.max_message_bytes,
        });
    }
    streamed.map_err(|e| AppendError::CorruptMessage(format!("recompressing: {e}")))?;
    let mut out = sink.out;
    let batch_length = i32::try_from(out.len() - LOG_OVERHEAD)
        .expect("the rebuilt batch is at most max.message.bytes");
    out[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&batch_length.to_be_bytes());
    let attributes = (batch.header.attributes & !COMPRESSION_MASK) | target.id();
    out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = batch::compute_crc(&out);
    batch::set_crc(&mut out, crc);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use protocol::records::bomb::empty_records_batch;
    use protocol::records::{decode_records, BatchBuilder, NewRecord};

    use super::*;
    use crate::validate::{validate_records, Origin};

    const NOW: i64 = 1_700_000_000_000;

    fn config(pairs: &[(&str, &str)]) -> LogConfig {
        let overrides: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LogConfig::resolve(&overrides, &BTreeMap::new()).unwrap()
    }

    #[test]
    fn a_recompressed_batch_keeps_every_record_and_header_field() {
        let mut builder = BatchBuilder::new(Compression::Lz4)
            .producer(7, 2, 40)
            .transactional(true);
        for i in 0..50u8 {
            builder.append(&NewRecord {
                timestamp: NOW + i64::from(i),
                key: Some(&[i]),
                value: (i % 3 != 0).then_some(&[i, i][..]),
                headers: &[("h", Some(b"x")), ("n", None)],
            });
        }
        let original = builder.build().unwrap();
        let config = config(&[("compression.type", "gzip")]);
        let validated = validate_records(&original, &config, NOW, Origin::Client).unwrap();
        let rebuilt = recompress(&original, &validated, Compression::Gzip, &config).unwrap();
        protocol::records::batch::verify_crc(&rebuilt).unwrap();
        let (before_header, before) = decode_records(&original, 1 << 20).unwrap();
        let (after_header, after) = decode_records(&rebuilt, 1 << 20).unwrap();
        assert_eq!(after_header.compression().unwrap(), Compression::Gzip);
        assert_eq!(before, after);
        assert_eq!(
            (
                after_header.producer_id,
                after_header.producer_epoch,
                after_header.base_sequence
            ),
            (7, 2, 40)
        );
        assert!(after_header.is_transactional());
        assert_eq!(after_header.max_timestamp, before_header.max_timestamp);
        assert_eq!(after_header.last_offset_delta, 49);
        validate_records(&rebuilt, &config, NOW, Origin::Coordinator).unwrap();
    }

    #[test]
    fn recompression_gives_records_the_offset_deltas_of_their_positions() {
        // Every record claims offset delta 0 (a bomb's trick); the rebuilt batch
        // numbers them 0..n, as Kafka's rebuild does.
        let config = config(&[("compression.type", "lz4")]);
        let bomb = empty_records_batch(Compression::Zstd, 300, NOW);
        let validated = validate_records(&bomb, &config, NOW, Origin::Client).unwrap();
        let rebuilt = recompress(&bomb, &validated, Compression::Lz4, &config).unwrap();
        let (_, before) = decode_records(&bomb, 1 << 20).unwrap();
        let (header, after) = decode_records(&rebuilt, 1 << 20).unwrap();
        assert!(before.iter().all(|r| r.offset == 0));
        assert_eq!(
            after.iter().map(|r| r.offset).collect::<Vec<_>>(),
            (0..300).collect::<Vec<i64>>()
        );
        assert_eq!(header.last_offset_delta, 299);
        assert!(after.iter().all(|r| r.key.is_none() && r.value.is_none()));
    }

    #[test]
    fn a_recompressed_batch_may_not_grow_past_max_message_bytes() {
        // 1M empty records (7 MB) in a few KiB of zstd; gzip makes them larger
        // than the 5,000 bytes the topic allows, and the rebuild stops there
        // instead of holding megabytes.
        let config = config(&[("compression.type", "gzip"), ("max.message.bytes", "5000")]);
        let bomb = empty_records_batch(Compression::Zstd, 1_000_000, NOW);
        assert!(bomb.len() < 5000, "{} bytes", bomb.len());
        let validated = validate_records(&bomb, &config, NOW, Origin::Client).unwrap();
        match recompress(&bomb, &validated, Compression::Gzip, &config) {
            Err(AppendError::MessageTooLarge { max, .. }) => assert_eq!(max, 5000),
            other => panic!("expected MessageTooLarge, got {:?}", other.map(|v| v.len())),
        }
    }
}
