//! Builds v2 record batches: for the client's producer, for control batches
//! (transaction markers) and for tests. The broker never rebuilds a client's batch.

use crate::records::batch::{self, TimestampType, HEADER_LEN, MAGIC_V2};
use crate::records::compression::{compress, Compression};
use crate::varint::{varint_len, write_varint, write_varlong};

/// A record to add to a batch.
#[derive(Debug, Clone, Copy, Default)]
pub struct NewRecord<'a> {
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
}

/// Accumulates records and encodes them as one batch.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    base_offset: i64,
    partition_leader_epoch: i32,
    compression: Compression,
    timestamp_type: TimestampType,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
    control: bool,
    base_timestamp: Option<i64>,
    max_timestamp: i64,
    count: i32,
    /// The offset delta the next record gets (records normally take 0, 1, 2...).
    next_offset_delta: i32,
    /// Overrides for rewriting an existing batch (the log cleaner).
    last_offset_delta_override: Option<i32>,
    max_timestamp_override: Option<i64>,
    records: Vec<u8>,
}

fn bytes_len(value: Option<&[u8]>) -> usize {
    match value {
        None => varint_len(-1),
        Some(v) => varint_len(v.len() as i32) + v.len(),
    }
}

fn put_bytes(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        None => write_varint(out, -1),
        Some(v) => {
            write_varint(out, v.len() as i32);
            out.extend_from_slice(v);
        }
    }
}

impl BatchBuilder {
    pub fn new(compression: Compression) -> Self {
        BatchBuilder {
            base_offset: 0,
            partition_leader_epoch: -1,
            compression,
            timestamp_type: TimestampType::CreateTime,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            transactional: false,
            control: false,
            base_timestamp: None,
            max_timestamp: -1,
            count: 0,
            next_offset_delta: 0,
            last_offset_delta_override: None,
            max_timestamp_override: None,
            records: Vec::new(),
        }
    }

    /// The codec `build` compresses the records with (records are kept
    /// uncompressed until then, so it may be set after they are appended).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Fixes the base timestamp (rewriting a batch keeps its original one, so the
    /// records' timestamp deltas stay valid).
    pub fn base_timestamp(mut self, base_timestamp: i64) -> Self {
        self.base_timestamp = Some(base_timestamp);
        self
    }

    /// Keeps a rewritten batch's offset span even when its last records are gone,
    /// as Kafka's cleaner does.
    pub fn last_offset_delta(mut self, last_offset_delta: i32) -> Self {
        self.last_offset_delta_override = Some(last_offset_delta);
        self
    }

    /// Sets the max timestamp instead of computing it from the records.
    pub fn max_timestamp(mut self, max_timestamp: i64) -> Self {
        self.max_timestamp_override = Some(max_timestamp);
        self
    }

    /// Adds a record at an explicit offset delta (gaps allowed, increasing).
    pub fn append_at(&mut self, offset_delta: i32, record: &NewRecord<'_>) -> i32 {
        assert!(
            offset_delta >= self.next_offset_delta,
            "offset deltas must increase"
        );
        self.next_offset_delta = offset_delta;
        self.append(record)
    }

    pub fn base_offset(mut self, base_offset: i64) -> Self {
        self.base_offset = base_offset;
        self
    }

    pub fn partition_leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    pub fn timestamp_type(mut self, timestamp_type: TimestampType) -> Self {
        self.timestamp_type = timestamp_type;
        self
    }

    /// Marks the batch idempotent: producer id, epoch and the first record's sequence.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    pub fn transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    pub fn control(mut self, control: bool) -> Self {
        self.control = control;
        self
    }

    pub fn len(&self) -> i32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Uncompressed bytes of the records so far plus the header: an upper bound for
    /// an uncompressed batch, an estimate for a compressed one.
    pub fn estimated_size(&self) -> usize {
        HEADER_LEN + self.records.len()
    }

    /// Bytes `record` would add to the batch, uncompressed.
    pub fn record_size(&self, record: &NewRecord<'_>) -> usize {
        let body = self.record_body_len(record);
        varint_len(body as i32) + body
    }

    fn record_body_len(&self, record: &NewRecord<'_>) -> usize {
        let base = self.base_timestamp.unwrap_or(record.timestamp);
        let mut len = 1;
        len += varlong_len(record.timestamp.wrapping_sub(base));
        len += varint_len(self.next_offset_delta);
        len += bytes_len(record.key);
        len += bytes_len(record.value);
        len += varint_len(record.headers.len() as i32);
        for (key, value) in record.headers {
            len += bytes_len(Some(key.as_bytes()));
            len += bytes_len(*value);
        }
        len
    }

    /// Adds a record at the next offset delta; returns that delta.
    pub fn append(&mut self, record: &NewRecord<'_>) -> i32 {
        let base = *self.base_timestamp.get_or_insert(record.timestamp);
        let body_len = self.record_body_len(record);
        let out = &mut self.records;
        write_varint(out, body_len as i32);
        let start = out.len();
        out.push(0);
        write_varlong(out, record.timestamp.wrapping_sub(base));
        write_varint(out, self.next_offset_delta);
        put_bytes(out, record.key);
        put_bytes(out, record.value);
        write_varint(out, record.headers.len() as i32);
        for (key, value) in record.headers {
            put_bytes(out, Some(key.as_bytes()));
            put_bytes(out, *value);
        }
        debug_assert_eq!(out.len() - start, body_len);
        self.max_timestamp = self.max_timestamp.max(record.timestamp);
        self.count += 1;
        self.next_offset_delta += 1;
        self.next_offset_delta - 1
    }

    /// Encodes the batch. An empty builder gives a batch with no records.
    pub fn build(&self) -> std::io::Result<Vec<u8>> {
        let body = compress(self.compression, &self.records)?;
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        let batch_length = (HEADER_LEN - batch::LOG_OVERHEAD + body.len()) as i32;
        let attributes = batch::attributes(
            self.compression,
            self.timestamp_type,
            self.transactional,
            self.control,
        );
        let base_timestamp = self.base_timestamp.unwrap_or(-1);
        out.extend_from_slice(&self.base_offset.to_be_bytes());
        out.extend_from_slice(&batch_length.to_be_bytes());
        out.extend_from_slice(&self.partition_leader_epoch.to_be_bytes());
        out.push(MAGIC_V2 as u8);
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&attributes.to_be_bytes());
        let last_offset_delta = self
            .last_offset_delta_override
            .unwrap_or((self.next_offset_delta - 1).max(0));
        out.extend_from_slice(&last_offset_delta.to_be_bytes());
        out.extend_from_slice(&base_timestamp.to_be_bytes());
        out.extend_from_slice(
            &self
                .max_timestamp_override
                .unwrap_or(self.max_timestamp)
                .to_be_bytes(),
        );
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        debug_assert_eq!(out.len(), HEADER_LEN);
        out.extend_from_slice(&body);
        let crc = batch::compute_crc(&out);
        batch::set_crc(&mut out, crc);
        Ok(out)
    }
}

fn varlong_len(value: i64) -> usize {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    let mut len = 1;
    while v >= 0x80 {
        v >>= 7;
        len += 1;
    }
    len
}
