//! Records borrowed from a batch's records section, without copying keys, values or
//! headers: what the log cleaner walks to decide which records stay, and what it
//! copies as they are when they do.
//!
//! [`records_section`] gives the section (borrowed from an uncompressed batch,
//! decompressed up to a bound otherwise); [`RecordViews`] walks it record by record.
//! Each [`RecordView`] keeps the record's whole encoding (`bytes`, length prefix
//! included), so a kept record is copied unchanged.

use std::borrow::Cow;

use crate::records::batch::{BatchHeader, TimestampType};
use crate::records::budget::DecompressionBudget;
use crate::records::record::RecordError;
use crate::varint::{read_varint, read_varlong};

/// One record of a batch, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// The record's whole encoding, its length prefix included.
    pub bytes: &'a [u8],
    pub attributes: u8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

impl RecordView<'_> {
    /// The record's absolute offset in a batch with `header`.
    pub fn offset(&self, header: &BatchHeader) -> i64 {
        header
            .base_offset
            .wrapping_add(i64::from(self.offset_delta))
    }

    /// The record's timestamp in a batch with `header` (the batch's max timestamp
    /// when the batch uses LogAppendTime, as Kafka reads it).
    pub fn timestamp(&self, header: &BatchHeader) -> i64 {
        if header.timestamp_type() == TimestampType::LogAppendTime {
            header.max_timestamp
        } else {
            header.base_timestamp.wrapping_add(self.timestamp_delta)
        }
    }

    /// A tombstone: a record with a null value.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }
}

/// The records section of `batch` (a whole batch with `header`): borrowed when
/// uncompressed, else decompressed, refusing more than `max_decompressed` bytes
/// ([`DecompressionBudget::records_section`] with a budget of its own).
pub fn records_section<'a>(
    header: &BatchHeader,
    batch: &'a [u8],
    max_decompressed: usize,
) -> Result<Cow<'a, [u8]>, RecordError> {
    DecompressionBudget::new(max_decompressed).records_section(header, batch)
}

/// Walks the records of a records section (see [`records_section`]) in order. The
/// walk ends at the end of the section or at the first malformed record; checking
/// the count against the batch header is the caller's.
#[derive(Debug, Clone)]
pub struct RecordViews<'a> {
    rest: &'a [u8],
    index: usize,
}

impl<'a> RecordViews<'a> {
    pub fn new(section: &'a [u8]) -> RecordViews<'a> {
        RecordViews {
            rest: section,
            index: 0,
        }
    }
}

fn bad(index: usize, reason: impl Into<String>) -> RecordError {
    RecordError::InvalidRecord {
        index,
        reason: reason.into(),
    }
}

/// Takes a length-prefixed field (`-1`: null) from `rest`.
fn field<'a>(
    rest: &mut &'a [u8],
    index: usize,
    what: &str,
) -> Result<Option<&'a [u8]>, RecordError> {
    let length = read_varint(rest).map_err(|e| bad(index, format!("{what} length: {e}")))?;
    if length == -1 {
        return Ok(None);
    }
    if length < 0 || length as usize > rest.len() {
        return Err(bad(index, format!("{what} length {length}")));
    }
    let (taken, tail) = rest.split_at(length as usize);
    *rest = tail;
    Ok(Some(taken))
}

fn parse<'a>(
    whole: &'a [u8],
    mut body: &'a [u8],
    index: usize,
) -> Result<RecordView<'a>, RecordError> {
    let e = |what: &str, err: crate::varint::VarintError| bad(index, format!("{what}: {err}"));
    let (&attributes, rest) = body
        .split_first()
        .ok_or_else(|| bad(index, "empty record"))?;
    body = rest;
    let timestamp_delta = read_varlong(&mut body).map_err(|err| e("timestamp delta", err))?;
    let offset_delta = read_varint(&mut body).map_err(|err| e("offset delta", err))?;
    let key = field(&mut body, index, "key")?;
    let value = field(&mut body, index, "value")?;
    let header_count = read_varint(&mut body).map_err(|err| e("header count", err))?;
    if header_count < 0 {
        return Err(bad(index, format!("header count {header_count}")));
    }
    for _ in 0..header_count {
        if field(&mut body, index, "header key")?.is_none() {
            return Err(bad(index, "null header key"));
        }
        field(&mut body, index, "header value")?;
    }
    if !body.is_empty() {
        return Err(bad(
            index,
            format!("{} bytes left over inside the record", body.len()),
        ));
    }
    Ok(RecordView {
        bytes: whole,
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
    })
}

impl<'a> Iterator for RecordViews<'a> {
    type Item = Result<RecordView<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let index = self.index;
        self.index += 1;
        let start = self.rest;
        let result = read_varint(&mut self.rest)
            .map_err(|e| bad(index, format!("length: {e}")))
            .and_then(|length| {
                if length <= 0 || length as usize > self.rest.len() {
                    return Err(bad(index, format!("length {length}")));
                }
                let prefix = start.len() - self.rest.len();
                let (body, after) = self.rest.split_at(length as usize);
                self.rest = after;
                parse(&start[..prefix + length as usize], body, index)
            });
        if result.is_err() {
            self.rest = &[];
        }
        Some(result)
    }
}
