//! Message sets: the record formats before v2 (magic 0, and magic 1 of KIP-32),
//! which Produce v0-2 carry and Fetch v0-3 return.
//!
//! A message set is a run of entries, each
//!
//! ```text
//! offset: i64 | message_size: i32 | crc: u32 (CRC-32 of what follows) | magic: i8
//! | attributes: i8 (bits 0-2 codec: 0 none, 1 gzip, 2 snappy, 3 lz4;
//!                   bit 3, magic 1 only: LogAppendTime)
//! | timestamp: i64 (magic 1 only) | key: i32 length + bytes (-1 null)
//! | value: i32 length + bytes (-1 null)
//! ```
//!
//! A compressed entry (a "wrapper") holds in its value the compressed message set of
//! its inner, uncompressed messages; wrappers do not nest.
//!
//! Rivulet stores v2 batches only. A produced message set becomes one v2 batch
//! ([`to_batch`], compressed with the wrapper's codec, timestamps kept, -1 for
//! magic 0, as Kafka's up-conversion does); a Fetch for a client that cannot read
//! v2 gets its batches rewritten as uncompressed messages ([`down_convert`]; headers,
//! producer ids and control batches have no place there and are left out, as in
//! Kafka's down-conversion). Neither runs for current clients.
//!
//! Both are bounded: every length is checked against the bytes that follow before
//! anything is allocated, decompression is charged to one [`DecompressionBudget`]
//! for the whole request and stops when it is spent, messages and records are
//! converted one at a time (never held as a list), and the output of a
//! down-conversion is at most a caller's limit (plus one message).

use bytes::{BufMut, Bytes};

use crate::records::batch::{BatchError, Batches, TimestampType, MAGIC_AT, MAGIC_V2};
use crate::records::budget::DecompressionBudget;
use crate::records::compression::Compression;
use crate::records::record::RecordError;
use crate::records::view::RecordViews;
use crate::records::{BatchBuilder, NewRecord};

/// offset (8) + message_size (4).
const ENTRY_OVERHEAD: usize = 12;
/// crc, magic, attributes, key length, value length.
const MESSAGE_V0_MIN: usize = 4 + 1 + 1 + 4 + 4;
/// The same with the timestamp of magic 1.
const MESSAGE_V1_MIN: usize = MESSAGE_V0_MIN + 8;
const CODEC_MASK: i8 = 0x07;
const LOG_APPEND_TIME_BIT: i8 = 0x08;

/// Why a message set cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageSetError {
    #[error("message set is corrupt: {0}")]
    Corrupt(String),
    #[error("CRC mismatch in message at offset {offset}: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        offset: i64,
        stored: u32,
        computed: u32,
    },
    #[error("message set holds no messages")]
    Empty,
    /// The request's compressed data, all of it together, decompresses to more
    /// than its budget allows.
    #[error("the request's compressed data exceeds {limit} bytes once decompressed")]
    DecompressedTooLarge { limit: usize },
    /// zstd (KIP-110) exists for v2 batches only: a client that needs message
    /// format 0 or 1 cannot be sent it (Kafka: UNSUPPORTED_COMPRESSION_TYPE).
    #[error("{0} compressed batches cannot be down-converted to message format 0 or 1")]
    UnsupportedCompression(&'static str),
}

/// One message of a set, inner messages of a wrapper included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub offset: i64,
    pub magic: i8,
    /// -1 for magic 0.
    pub timestamp: i64,
    pub log_append_time: bool,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

/// True if `records` starts like a message set rather than a v2 batch.
pub fn is_message_set(records: &[u8]) -> bool {
    records.len() > MAGIC_AT && (0..MAGIC_V2).contains(&(records[MAGIC_AT] as i8))
}

fn get_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

fn get_i64(buf: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    crc.sum()
}

/// Reads an i32-length-prefixed nullable byte string at `at` of `message`.
fn nullable_bytes(message: &Bytes, at: &mut usize) -> Result<Option<Bytes>, MessageSetError> {
    if *at + 4 > message.len() {
        return Err(MessageSetError::Corrupt("truncated length".into()));
    }
    let len = get_i32(message, *at);
    *at += 4;
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len)
        .map_err(|_| MessageSetError::Corrupt(format!("invalid length {len}")))?;
    if len > message.len() - *at {
        return Err(MessageSetError::Corrupt(format!(
            "length {len} runs past the message"
        )));
    }
    let value = message.slice(*at..*at + len);
    *at += len;
    Ok(Some(value))
}

/// Calls `visit` with each entry of `set`, in order (one level: wrappers are
/// given as they are). Every entry must be whole: a producer sends no partial
/// message.
fn for_each_entry(
    set: &Bytes,
    mut visit: impl FnMut(Message, Compression) -> Result<(), MessageSetError>,
) -> Result<(), MessageSetError> {
    let mut at = 0;
    while at < set.len() {
        if set.len() - at < ENTRY_OVERHEAD {
            return Err(MessageSetError::Corrupt("truncated entry header".into()));
        }
        let offset = get_i64(set, at);
        let size = get_i32(set, at + 8);
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s >= MESSAGE_V0_MIN)
            .ok_or_else(|| MessageSetError::Corrupt(format!("message size {size}")))?;
        let start = at + ENTRY_OVERHEAD;
        if size > set.len() - start {
            return Err(MessageSetError::Corrupt(format!(
                "message of {size} bytes runs past the set"
            )));
        }
        let message = set.slice(start..start + size);
        let (message, compression) = parse_message(offset, &message)?;
        visit(message, compression)?;
        at = start + size;
    }
    Ok(())
}

fn parse_message(offset: i64, message: &Bytes) -> Result<(Message, Compression), MessageSetError> {
    let stored = u32::from_be_bytes(message[..4].try_into().expect("4 bytes"));
    let computed = crc32(&message[4..]);
    if stored != computed {
        return Err(MessageSetError::CrcMismatch {
            offset,
            stored,
            computed,
        });
    }
    let magic = message[4] as i8;
    let attributes = message[5] as i8;
    let mut at = 6;
    let timestamp = match magic {
        0 => -1,
        1 if message.len() >= MESSAGE_V1_MIN => {
            at += 8;
            get_i64(message, 6)
        }
        1 => return Err(MessageSetError::Corrupt("truncated magic 1 message".into())),
        other => return Err(MessageSetError::Corrupt(format!("magic {other}"))),
    };
    let compression = match attributes & CODEC_MASK {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        other => {
            return Err(MessageSetError::Corrupt(format!(
                "compression codec {other}"
            )))
        }
    };
    let key = nullable_bytes(message, &mut at)?;
    let value = nullable_bytes(message, &mut at)?;
    if at != message.len() {
        return Err(MessageSetError::Corrupt(format!(
            "{} bytes after the value",
            message.len() - at
        )));
    }
    let log_append_time = magic == 1 && attributes & LOG_APPEND_TIME_BIT != 0;
    let message = Message {
        offset,
        magic,
        timestamp,
        log_append_time,
        key,
        value,
    };
    Ok((message, compression))
}

/// The error for a decompression the budget refused, or that failed.
fn decompression_error(error: RecordError) -> MessageSetError {
    match error {
        RecordError::DecompressedTooLarge { limit } => MessageSetError::DecompressedTooLarge {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        },
        other => MessageSetError::Corrupt(format!("does not decompress: {other}")),
    }
}

/// Calls `visit` with every message of `set`, wrappers opened (what they
/// decompress to charged to `budget`), one at a time; returns the codec of the
/// first wrapper.
fn for_each_message(
    set: &Bytes,
    budget: &mut DecompressionBudget,
    mut visit: impl FnMut(Message),
) -> Result<Compression, MessageSetError> {
    let mut codec = Compression::None;
    let mut count = 0usize;
    let mut visit = |message| {
        count += 1;
        visit(message);
    };
    for_each_entry(set, |message, compression| {
        if compression == Compression::None {
            visit(message);
            return Ok(());
        }
        if codec == Compression::None {
            codec = compression;
        }
        let Some(value) = message.value.as_ref() else {
            return Err(MessageSetError::Corrupt(
                "compressed message without a value".into(),
            ));
        };
        let fixed;
        let value = if message.magic == 0 && compression == Compression::Lz4 {
            fixed = fix_lz4_header_checksum(value);
            &fixed[..]
        } else {
            &value[..]
        };
        let inner: Bytes = budget
            .decompress(compression, value)
            .map_err(decompression_error)?
            .into();
        for_each_entry(&inner, |mut inner_message, inner_compression| {
            if inner_compression != Compression::None {
                return Err(MessageSetError::Corrupt("nested compression".into()));
            }
            if message.log_append_time {
                inner_message.timestamp = message.timestamp;
            }
            visit(inner_message);
            Ok(())
        })
    })?;
    if count == 0 {
        return Err(MessageSetError::Empty);
    }
    Ok(codec)
}

/// Every message of `set`, wrappers opened (what they decompress to charged to
/// `budget`), and the codec of the first wrapper.
pub fn messages(
    set: &Bytes,
    budget: &mut DecompressionBudget,
) -> Result<(Vec<Message>, Compression), MessageSetError> {
    let mut out = Vec::new();
    let codec = for_each_message(set, budget, |message| out.push(message))?;
    Ok((out, codec))
}

/// xxHash32 (seed 0) of an input shorter than 16 bytes: all an LZ4 frame
/// descriptor needs.
fn xxh32_short(input: &[u8]) -> u32 {
    const P1: u32 = 2_654_435_761;
    const P2: u32 = 2_246_822_519;
    const P3: u32 = 3_266_489_917;
    const P4: u32 = 668_265_263;
    const P5: u32 = 374_761_393;
    debug_assert!(input.len() < 16);
    let mut h = P5.wrapping_add(input.len() as u32);
    let mut words = input.chunks_exact(4);
    for word in &mut words {
        let w = u32::from_le_bytes(word.try_into().expect("4 bytes"));
        h = h
            .wrapping_add(w.wrapping_mul(P3))
            .rotate_left(17)
            .wrapping_mul(P4);
    }
    for &byte in words.remainder() {
        h = h
            .wrapping_add(u32::from(byte).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
    }
    h ^= h >> 15;
    h = h.wrapping_mul(P2);
    h ^= h >> 13;
    h = h.wrapping_mul(P3);
    h ^ (h >> 16)
}

/// Magic 0 LZ4 wrappers carry a frame whose header checksum Kafka computed over
/// the frame's magic number too (KAFKA-3160; Kafka reads them ignoring it): the
/// copy returned has the checksum the LZ4 format defines, so a standard decoder
/// takes it. Anything not shaped like a frame header is returned unchanged.
fn fix_lz4_header_checksum(frame: &[u8]) -> Vec<u8> {
    let mut out = frame.to_vec();
    if out.len() < 7 || out[..4] != [0x04, 0x22, 0x4d, 0x18] {
        return out;
    }
    let flags = out[4];
    let checksum_at =
        6 + if flags & 0x08 != 0 { 8 } else { 0 } + if flags & 0x01 != 0 { 4 } else { 0 };
    if checksum_at < out.len() {
        out[checksum_at] = (xxh32_short(&out[4..checksum_at]) >> 8) as u8;
    }
    out
}

/// Converts a produced message set to one v2 batch (base offset 0, CreateTime),
/// compressed with the codec of its first wrapper. What wrappers decompress to
/// is charged to `budget`, which the caller shares across the whole request.
pub fn to_batch(set: &Bytes, budget: &mut DecompressionBudget) -> Result<Vec<u8>, MessageSetError> {
    let mut builder = BatchBuilder::new(Compression::None);
    let codec = for_each_message(set, budget, |message| {
        builder.append(&NewRecord {
            timestamp: message.timestamp,
            key: message.key.as_deref(),
            value: message.value.as_deref(),
            headers: &[],
        });
    })?;
    builder
        .compression(codec)
        .build()
        .map_err(|e| MessageSetError::Corrupt(format!("cannot build a batch: {e}")))
}

/// Appends one uncompressed message of `magic` to `out`.
pub fn write_message(
    out: &mut Vec<u8>,
    magic: i8,
    offset: i64,
    timestamp: i64,
    log_append_time: bool,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) {
    let body_len = 2
        + if magic >= 1 { 8 } else { 0 }
        + 4
        + key.map_or(0, <[u8]>::len)
        + 4
        + value.map_or(0, <[u8]>::len);
    out.put_i64(offset);
    out.put_i32((4 + body_len) as i32);
    let crc_at = out.len();
    out.put_u32(0);
    let body_at = out.len();
    out.put_i8(magic);
    let attributes = if magic >= 1 && log_append_time {
        LOG_APPEND_TIME_BIT
    } else {
        0
    };
    out.put_i8(attributes);
    if magic >= 1 {
        out.put_i64(timestamp);
    }
    for field in [key, value] {
        match field {
            None => out.put_i32(-1),
            Some(bytes) => {
                out.put_i32(bytes.len() as i32);
                out.put_slice(bytes);
            }
        }
    }
    let crc = crc32(&out[body_at..]);
    out[crc_at..crc_at + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Rewrites the v2 batches of a Fetch answer as uncompressed messages of `magic`
/// (0 or 1), from `first_offset` on (a batch holds records before the offset
/// fetched; a message set must not, or a client with a small max would be sent
/// the same earlier message forever), stopping before a message that would take
/// the output past `max_bytes` (the first message always goes). Control batches
/// are skipped; a batch cut short at the end (as a fetch may return it) ends the
/// conversion.
///
/// `budget` is the whole response's: it is charged with what batches decompress
/// to and with the messages written. Once it is spent the conversion stops
/// there, as at `max_bytes` (the client fetches the rest next time), except that
/// a partition's first message still goes while anything remains; a batch that
/// alone decompresses past a budget nothing was charged to yet is
/// [`MessageSetError::DecompressedTooLarge`].
pub fn down_convert(
    batches: &Bytes,
    magic: i8,
    first_offset: i64,
    max_bytes: usize,
    budget: &mut DecompressionBudget,
) -> Result<Vec<u8>, MessageSetError> {
    let corrupt = |e: &dyn std::fmt::Display| MessageSetError::Corrupt(e.to_string());
    let mut out = Vec::new();
    for item in Batches::new(batches).ending_at_a_partial_batch() {
        let (header, batch) = item.map_err(|e| match e {
            BatchError::UnsupportedMagic(stored) => {
                MessageSetError::Corrupt(format!("stored magic {stored}"))
            }
            other => corrupt(&other),
        })?;
        if header.is_control() {
            continue;
        }
        if header.compression().map_err(|e| corrupt(&e))? == Compression::Zstd {
            return Err(MessageSetError::UnsupportedCompression("zstd"));
        }
        let untouched = budget.used() == 0;
        let section = match budget.records_section(&header, batch) {
            Ok(section) => section,
            Err(RecordError::DecompressedTooLarge { .. }) if !untouched => return Ok(out),
            Err(e) => return Err(decompression_error(e)),
        };
        let log_append_time = header.timestamp_type() == TimestampType::LogAppendTime;
        let mut count = 0usize;
        for record in RecordViews::new(&section) {
            let record = record.map_err(|e| corrupt(&e))?;
            count += 1;
            let offset = record.offset(&header);
            if offset < first_offset {
                continue;
            }
            let before = out.len();
            write_message(
                &mut out,
                magic,
                offset,
                record.timestamp(&header),
                log_append_time,
                record.key,
                record.value,
            );
            let spent = budget.remaining() == 0;
            let over_budget = budget.charge(out.len() - before).is_err();
            let first = before == 0;
            if ((out.len() > max_bytes || over_budget) && !first) || (over_budget && spent) {
                out.truncate(before);
                return Ok(out);
            }
        }
        let declared = header.records_count.max(0) as usize;
        if count != declared {
            return Err(corrupt(&RecordError::CountMismatch {
                declared: header.records_count,
                actual: count,
            }));
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "message_set_tests.rs"]
mod tests;
