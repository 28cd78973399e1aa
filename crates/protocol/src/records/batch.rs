//! The record batch v2 header: a view over the first 61 bytes of a batch.
//!
//! ```text
//! offset  size  field
//!      0     8  base_offset              (broker-owned: assigned on append)
//!      8     4  batch_length             (bytes after this field)
//!     12     4  partition_leader_epoch   (broker-owned)
//!     16     1  magic                    (2)
//!     17     4  crc                      (CRC32C of bytes 21..end)
//!     21     2  attributes               (compression 0-2, timestamp type 3,
//!                                         transactional 4, control 5, delete horizon 6)
//!     23     4  last_offset_delta
//!     27     8  base_timestamp
//!     35     8  max_timestamp
//!     43     8  producer_id
//!     51     2  producer_epoch
//!     53     4  base_sequence
//!     57     4  records_count
//!     61        records...
//! ```
//!
//! The CRC starts at `attributes`, so the broker can patch `base_offset` and
//! `partition_leader_epoch` without recomputing it. Changing the timestamp type or
//! `max_timestamp` (LogAppendTime) does need a new CRC. Legacy message sets (magic 0
//! and 1) also keep their magic byte at offset 16, which is how they are told apart.

use crate::records::compression::Compression;

/// Bytes in a v2 batch header.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batch_length`'s coverage starts (`base_offset` + `batch_length`).
pub const LOG_OVERHEAD: usize = 12;
/// The only record format this broker writes and accepts.
pub const MAGIC_V2: i8 = 2;

pub const BASE_OFFSET_AT: usize = 0;
pub const BATCH_LENGTH_AT: usize = 8;
pub const PARTITION_LEADER_EPOCH_AT: usize = 12;
pub const MAGIC_AT: usize = 16;
pub const CRC_AT: usize = 17;
pub const ATTRIBUTES_AT: usize = 21;
pub const LAST_OFFSET_DELTA_AT: usize = 23;
pub const BASE_TIMESTAMP_AT: usize = 27;
pub const MAX_TIMESTAMP_AT: usize = 35;
pub const PRODUCER_ID_AT: usize = 43;
pub const PRODUCER_EPOCH_AT: usize = 51;
pub const BASE_SEQUENCE_AT: usize = 53;
pub const RECORDS_COUNT_AT: usize = 57;

const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;
/// KIP-534: set by the log cleaner on a batch whose tombstones or transaction
/// marker it kept; the batch's base timestamp is then the delete horizon.
pub const DELETE_HORIZON_BIT: i16 = 1 << 6;

/// How a batch's timestamps were set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// Why bytes are not a usable v2 batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("{0} bytes is too short for a record batch header")]
    TooShort(usize),
    #[error("batch length {0} is invalid")]
    InvalidLength(i32),
    #[error("batch of {needed} bytes runs past the {available} bytes available")]
    Truncated { needed: usize, available: usize },
    #[error("magic {0} is not supported (only v2 record batches)")]
    UnsupportedMagic(i8),
    #[error("CRC mismatch: header says {stored:#010x}, bytes give {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("unknown compression codec id {0}")]
    UnknownCompression(i16),
}

fn get_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

fn get_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

fn get_i64(buf: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
}

/// The decoded header of one v2 batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Reads the size fields and magic only; checks nothing else. Use before
    /// trusting the rest of the header: a legacy message set has a different layout.
    pub fn peek_size_and_magic(buf: &[u8]) -> Result<(usize, i8), BatchError> {
        if buf.len() < MAGIC_AT + 1 {
            return Err(BatchError::TooShort(buf.len()));
        }
        let batch_length = get_i32(buf, BATCH_LENGTH_AT);
        // A v2 batch holds at least its header; a legacy message at least 14 bytes.
        if batch_length < 14 {
            return Err(BatchError::InvalidLength(batch_length));
        }
        Ok((LOG_OVERHEAD + batch_length as usize, buf[MAGIC_AT] as i8))
    }

    /// Parses the header at the front of `buf`, which must hold at least the header.
    /// Checks the magic and that the length is plausible; not the CRC.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        let (_, magic) = Self::peek_size_and_magic(buf)?;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        if buf.len() < HEADER_LEN {
            return Err(BatchError::TooShort(buf.len()));
        }
        let batch_length = get_i32(buf, BATCH_LENGTH_AT);
        if (batch_length as usize) < HEADER_LEN - LOG_OVERHEAD {
            return Err(BatchError::InvalidLength(batch_length));
        }
        Ok(BatchHeader {
            base_offset: get_i64(buf, BASE_OFFSET_AT),
            batch_length,
            partition_leader_epoch: get_i32(buf, PARTITION_LEADER_EPOCH_AT),
            magic,
            crc: get_i32(buf, CRC_AT) as u32,
            attributes: get_i16(buf, ATTRIBUTES_AT),
            last_offset_delta: get_i32(buf, LAST_OFFSET_DELTA_AT),
            base_timestamp: get_i64(buf, BASE_TIMESTAMP_AT),
            max_timestamp: get_i64(buf, MAX_TIMESTAMP_AT),
            producer_id: get_i64(buf, PRODUCER_ID_AT),
            producer_epoch: get_i16(buf, PRODUCER_EPOCH_AT),
            base_sequence: get_i32(buf, BASE_SEQUENCE_AT),
            records_count: get_i32(buf, RECORDS_COUNT_AT),
        })
    }

    /// Bytes the whole batch takes, header included.
    pub fn size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    /// The offset of the batch's last record (base + last delta). Wraps as Kafka's
    /// long arithmetic does: both fields come off the wire or the disk unchecked.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(self.last_offset_delta))
    }

    /// The next offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }

    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_attributes(self.attributes)
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & DELETE_HORIZON_BIT != 0
    }

    /// True when the batch carries a producer id (idempotent or transactional).
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
}

/// Attribute bits for a new batch.
pub fn attributes(
    compression: Compression,
    timestamp_type: TimestampType,
    transactional: bool,
    control: bool,
) -> i16 {
    let mut attributes = compression.id();
    if timestamp_type == TimestampType::LogAppendTime {
        attributes |= TIMESTAMP_TYPE_BIT;
    }
    if transactional {
        attributes |= TRANSACTIONAL_BIT;
    }
    if control {
        attributes |= CONTROL_BIT;
    }
    attributes
}

/// The CRC32C a batch should carry: over everything from `attributes` to the end.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_AT..])
}

/// Checks the stored CRC of a whole batch (`batch.len()` must be the batch size).
pub fn verify_crc(batch: &[u8]) -> Result<(), BatchError> {
    if batch.len() < HEADER_LEN {
        return Err(BatchError::TooShort(batch.len()));
    }
    let stored = get_i32(batch, CRC_AT) as u32;
    let computed = compute_crc(batch);
    if stored == computed {
        Ok(())
    } else {
        Err(BatchError::CrcMismatch { stored, computed })
    }
}

/// Writes the broker-owned fields that the CRC does not cover.
pub fn patch_offset_and_epoch(header: &mut [u8], base_offset: i64, leader_epoch: i32) {
    header[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
    header[PARTITION_LEADER_EPOCH_AT..PARTITION_LEADER_EPOCH_AT + 4]
        .copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Marks a batch LogAppendTime with `now_ms` as its max timestamp and returns the
/// new CRC, computed over the patched header and the unchanged `body` (the bytes
/// after the header). The caller writes it with [`set_crc`].
pub fn patch_log_append_time(header: &mut [u8], body: &[u8], now_ms: i64) -> u32 {
    let attributes = get_i16(header, ATTRIBUTES_AT) | TIMESTAMP_TYPE_BIT;
    header[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    header[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&header[ATTRIBUTES_AT..HEADER_LEN]);
    let crc = crc32c::crc32c_append(crc, body);
    set_crc(header, crc);
    crc
}

/// Stores `crc` in the header.
pub fn set_crc(header: &mut [u8], crc: u32) {
    header[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Splits a byte run into whole batches: each item is one batch's bytes. Stops
/// with an error at the first malformed or incomplete batch (but see
/// [`Batches::ending_at_a_partial_batch`]).
pub struct Batches<'a> {
    rest: &'a [u8],
    partial_tail_ends: bool,
}

impl<'a> Batches<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Batches {
            rest: bytes,
            partial_tail_ends: false,
        }
    }

    /// Walks bytes as a fetch answer holds them: the last batch may be cut short
    /// at the partition's max bytes (Kafka sends it so), and that, or a tail too
    /// short to say its size, ends the walk instead of being an error.
    pub fn ending_at_a_partial_batch(mut self) -> Self {
        self.partial_tail_ends = true;
        self
    }

    /// Bytes not yet returned.
    pub fn remaining(&self) -> &'a [u8] {
        self.rest
    }

    fn split_next(&mut self) -> Option<Result<(BatchHeader, &'a [u8]), BatchError>> {
        let (size, magic) = match BatchHeader::peek_size_and_magic(self.rest) {
            Err(BatchError::TooShort(_)) if self.partial_tail_ends => return None,
            Err(e) => return Some(Err(e)),
            Ok(peeked) => peeked,
        };
        if size > self.rest.len() && self.partial_tail_ends {
            return None;
        }
        if magic != MAGIC_V2 {
            return Some(Err(BatchError::UnsupportedMagic(magic)));
        }
        if size > self.rest.len() {
            return Some(Err(BatchError::Truncated {
                needed: size,
                available: self.rest.len(),
            }));
        }
        let header = match BatchHeader::parse(self.rest) {
            Ok(header) => header,
            Err(e) => return Some(Err(e)),
        };
        let (batch, rest) = self.rest.split_at(size);
        self.rest = rest;
        Some(Ok((header, batch)))
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<(BatchHeader, &'a [u8]), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let result = self.split_next();
        if !matches!(result, Some(Ok(_))) {
            self.rest = &[];
        }
        result
    }
}
