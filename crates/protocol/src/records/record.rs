//! Records inside a v2 batch, read two ways:
//!
//! - [`skim_records`] walks a batch's records as a stream (decompressing on the fly)
//!   and reports each record's offset delta, timestamp and key presence without
//!   holding keys or values. The broker validates produce batches with it.
//! - [`decode_records`] builds owned [`Record`]s, for consumers and tests.
//!
//! ```text
//! record:  length varint (bytes after this field)
//!          attributes int8 (unused, 0)
//!          timestamp_delta varlong   offset_delta varint
//!          key_length varint (-1 = null)   key
//!          value_length varint (-1 = null) value
//!          header_count varint, then per header:
//!            key_length varint (>= 0) key (UTF-8)   value_length varint (-1 = null) value
//! ```

use std::io::{self, BufReader, Read};

use bytes::Bytes;

use crate::records::batch::{BatchError, BatchHeader, TimestampType, HEADER_LEN};
use crate::records::compression::{decompress_reader, decompress_to_vec, Compression};
use crate::varint::{read_varint_from, read_varlong_from};

/// Why a batch's records cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("record {index}: {reason}")]
    InvalidRecord { index: usize, reason: String },
    #[error("records do not decompress: {0}")]
    Decompression(String),
    #[error("header says {declared} records, the batch holds {actual}")]
    CountMismatch { declared: i32, actual: usize },
    /// The records decompress to more than the caller allows.
    #[error("records decompress to more than {limit} bytes")]
    DecompressedTooLarge { limit: u64 },
}

/// A header of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub key: String,
    pub value: Option<Bytes>,
}

/// One record with its absolute offset and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

/// What [`skim_records`] reports of each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta {
    pub index: usize,
    pub offset_delta: i32,
    /// Absolute: the batch's base timestamp plus the record's delta.
    pub timestamp: i64,
    pub key_is_null: bool,
    pub size: usize,
}

/// The largest record a batch may hold after decompression. Kafka has no such limit
/// but holds whole records in memory; we skim and never hold one, except in
/// [`decode_records`], which the caller bounds.
const MAX_RECORD_BYTES: i64 = i32::MAX as i64;

struct Source<R: Read> {
    reader: R,
}

impl<R: Read> Source<R> {
    fn varint(&mut self) -> io::Result<i32> {
        read_varint_from(&mut self.reader)
    }

    fn varlong(&mut self) -> io::Result<i64> {
        read_varlong_from(&mut self.reader)
    }

    fn skip(&mut self, n: u64) -> io::Result<()> {
        let copied = io::copy(&mut (&mut self.reader).take(n), &mut io::sink())?;
        if copied == n {
            Ok(())
        } else {
            Err(io::ErrorKind::UnexpectedEof.into())
        }
    }

    fn at_end(&mut self) -> io::Result<bool> {
        let mut byte = [0u8; 1];
        Ok(self.reader.read(&mut byte)? == 0)
    }
}

fn bad(index: usize, reason: impl Into<String>) -> RecordError {
    RecordError::InvalidRecord {
        index,
        reason: reason.into(),
    }
}

fn io_to_record_error(index: usize, compressed: bool, error: io::Error) -> RecordError {
    if compressed && error.kind() != io::ErrorKind::UnexpectedEof {
        RecordError::Decompression(error.to_string())
    } else {
        bad(index, format!("truncated or malformed: {error}"))
    }
}

/// Reads one record's fields, skipping the key, value and headers.
fn skim_one<R: Read>(
    source: &mut Source<R>,
    index: usize,
    base_timestamp: i64,
) -> io::Result<Result<RecordMeta, RecordError>> {
    let length = source.varint()?;
    if length <= 0 || i64::from(length) > MAX_RECORD_BYTES {
        return Ok(Err(bad(index, format!("record length {length}"))));
    }
    let mut body = Source {
        reader: (&mut source.reader).take(length as u64),
    };
    let mut attributes = [0u8; 1];
    body.reader.read_exact(&mut attributes)?;
    let timestamp_delta = body.varlong()?;
    let offset_delta = body.varint()?;
    let key_length = body.varint()?;
    if key_length < -1 {
        return Ok(Err(bad(index, format!("key length {key_length}"))));
    }
    if key_length > 0 {
        body.skip(key_length as u64)?;
    }
    let value_length = body.varint()?;
    if value_length < -1 {
        return Ok(Err(bad(index, format!("value length {value_length}"))));
    }
    if value_length > 0 {
        body.skip(value_length as u64)?;
    }
    let header_count = body.varint()?;
    if header_count < 0 {
        return Ok(Err(bad(index, format!("header count {header_count}"))));
    }
    for _ in 0..header_count {
        let header_key_length = body.varint()?;
        if header_key_length < 0 {
            return Ok(Err(bad(index, "null header key")));
        }
        body.skip(header_key_length as u64)?;
        let header_value_length = body.varint()?;
        if header_value_length < -1 {
            return Ok(Err(bad(
                index,
                format!("header value length {header_value_length}"),
            )));
        }
        if header_value_length > 0 {
            body.skip(header_value_length as u64)?;
        }
    }
    if body.reader.limit() != 0 {
        return Ok(Err(bad(
            index,
            format!("{} bytes left over inside the record", body.reader.limit()),
        )));
    }
    Ok(Ok(RecordMeta {
        index,
        offset_delta,
        timestamp: base_timestamp.wrapping_add(timestamp_delta),
        key_is_null: key_length < 0,
        size: length as usize,
    }))
}

/// Walks every record of `batch` (a whole v2 batch whose header is `header`),
/// calling `visit` for each, and checks that the batch holds exactly
/// `header.records_count` records. Never holds more than one record's fields.
pub fn skim_records<F>(header: &BatchHeader, batch: &[u8], visit: F) -> Result<usize, RecordError>
where
    F: FnMut(&RecordMeta) -> Result<(), RecordError>,
{
    skim_records_limited(header, batch, u64::MAX, visit)
}

/// As [`skim_records`], refusing (with [`RecordError::DecompressedTooLarge`]) a
/// compressed batch whose records decompress to more than `max_decompressed`
/// bytes: the walk stops there, so a decompression bomb costs at most that much
/// work and a constant amount of memory (one 16 KiB buffer and the codec's state).
pub fn skim_records_limited<F>(
    header: &BatchHeader,
    batch: &[u8],
    max_decompressed: u64,
    visit: F,
) -> Result<usize, RecordError>
where
    F: FnMut(&RecordMeta) -> Result<(), RecordError>,
{
    let compression = header.compression()?;
    let body = &batch[HEADER_LEN..];
    if compression == Compression::None {
        // The common case stays monomorphic over a slice: no dynamic dispatch
        // per varint byte.
        return walk(&mut Source { reader: body }, header, false, visit);
    }
    let inner = decompress_reader(compression, body)
        .map_err(|e| RecordError::Decompression(e.to_string()))?;
    let mut source = Source {
        reader: BufReader::with_capacity(16 * 1024, Capped::new(inner, max_decompressed)),
    };
    let walked = walk(&mut source, header, true, visit);
    if source.reader.get_ref().exceeded {
        return Err(RecordError::DecompressedTooLarge {
            limit: max_decompressed,
        });
    }
    walked
}

/// A reader that fails once more than `left` bytes have been asked of it and the
/// inner reader has more to give.
pub struct Capped<R: Read> {
    inner: R,
    left: u64,
    /// Set when the inner reader had more than the cap.
    pub exceeded: bool,
}

impl<R: Read> Capped<R> {
    pub fn new(inner: R, cap: u64) -> Self {
        Capped {
            inner,
            left: cap,
            exceeded: false,
        }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.exceeded = true;
            return Err(io::Error::other("decompressed data exceeds its limit"));
        }
        let want = out
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut out[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

fn walk<R: Read, F>(
    source: &mut Source<R>,
    header: &BatchHeader,
    compressed: bool,
    mut visit: F,
) -> Result<usize, RecordError>
where
    F: FnMut(&RecordMeta) -> Result<(), RecordError>,
{
    let declared = header.records_count;
    let mut count = 0usize;
    loop {
        // Never read past the declared count: trailing bytes are an error below.
        if count as i64 >= i64::from(declared.max(0)) {
            let at_end = source
                .at_end()
                .map_err(|e| io_to_record_error(count, compressed, e))?;
            if !at_end {
                return Err(RecordError::CountMismatch {
                    declared,
                    actual: count + 1,
                });
            }
            break;
        }
        let meta = match skim_one(source, count, header.base_timestamp) {
            Ok(Ok(meta)) => meta,
            Ok(Err(error)) => return Err(error),
            // The bytes end before the header's count is reached (between records
            // or inside one): the count is not what the batch holds.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !compressed => {
                return Err(RecordError::CountMismatch {
                    declared,
                    actual: count,
                });
            }
            Err(e) => return Err(io_to_record_error(count, compressed, e)),
        };
        visit(&meta)?;
        count += 1;
    }
    Ok(count)
}

/// Decodes every record of a whole v2 batch into owned records with absolute
/// offsets and timestamps. Decompressed data is limited to `max_decompressed`
/// bytes. Control batches decode like any other (their keys mark the type).
pub fn decode_records(
    batch: &[u8],
    max_decompressed: usize,
) -> Result<(BatchHeader, Vec<Record>), RecordError> {
    decode_records_with(batch, max_decompressed, Bytes::copy_from_slice)
}

/// As [`decode_records`], for a batch held in `Bytes`: the keys, values and
/// headers of an uncompressed batch share its memory instead of a copy.
pub fn decode_records_shared(
    batch: &Bytes,
    max_decompressed: usize,
) -> Result<(BatchHeader, Vec<Record>), RecordError> {
    decode_records_with(batch, max_decompressed, |body| batch.slice_ref(body))
}

fn decode_records_with(
    batch: &[u8],
    max_decompressed: usize,
    uncompressed: impl FnOnce(&[u8]) -> Bytes,
) -> Result<(BatchHeader, Vec<Record>), RecordError> {
    let header = BatchHeader::parse(batch)?;
    if header.size() > batch.len() {
        return Err(BatchError::Truncated {
            needed: header.size(),
            available: batch.len(),
        }
        .into());
    }
    let batch = &batch[..header.size()];
    let compression = header.compression()?;
    let body = &batch[HEADER_LEN..];
    let data: Bytes = if compression == Compression::None {
        uncompressed(body)
    } else {
        decompress_to_vec(compression, body, max_decompressed)
            .map_err(|e| RecordError::Decompression(e.to_string()))?
            .into()
    };
    let log_append_time = header.timestamp_type() == TimestampType::LogAppendTime;
    let mut records = Vec::with_capacity((header.records_count.max(0) as usize).min(data.len()));
    let mut rest: &[u8] = &data;
    let mut index = 0;
    while !rest.is_empty() {
        let record =
            decode_one(&data, &mut rest, index, &header).map_err(|reason| bad(index, reason))?;
        let mut record = record;
        if log_append_time {
            record.timestamp = header.max_timestamp;
        }
        records.push(record);
        index += 1;
    }
    if records.len() != header.records_count.max(0) as usize {
        return Err(RecordError::CountMismatch {
            declared: header.records_count,
            actual: records.len(),
        });
    }
    Ok((header, records))
}

fn take_bytes(data: &Bytes, rest: &mut &[u8], len: i32) -> Result<Option<Bytes>, String> {
    if len < 0 {
        return if len == -1 {
            Ok(None)
        } else {
            Err(format!("length {len}"))
        };
    }
    let len = len as usize;
    if len > rest.len() {
        return Err(format!("{len} bytes run past the record"));
    }
    let start = data.len() - rest.len();
    *rest = &rest[len..];
    Ok(Some(data.slice(start..start + len)))
}

fn decode_one(
    data: &Bytes,
    rest: &mut &[u8],
    index: usize,
    header: &BatchHeader,
) -> Result<Record, String> {
    use crate::varint::{read_varint, read_varlong};
    let e = |err: crate::varint::VarintError| err.to_string();
    let length = read_varint(rest).map_err(e)?;
    if length <= 0 || length as usize > rest.len() {
        return Err(format!("record {index} length {length}"));
    }
    let (mut body, after) = rest.split_at(length as usize);
    let body_start = data.len() - rest.len();
    let body_data = data.slice(body_start..body_start + length as usize);
    *rest = after;
    let attributes = body.first().copied().ok_or("empty record")?;
    let _ = attributes;
    body = &body[1..];
    let timestamp_delta = read_varlong(&mut body).map_err(e)?;
    let offset_delta = read_varint(&mut body).map_err(e)?;
    let key_length = read_varint(&mut body).map_err(e)?;
    let key = take_bytes(&body_data, &mut body, key_length)?;
    let value_length = read_varint(&mut body).map_err(e)?;
    let value = take_bytes(&body_data, &mut body, value_length)?;
    let header_count = read_varint(&mut body).map_err(e)?;
    if header_count < 0 {
        return Err(format!("header count {header_count}"));
    }
    let mut headers = Vec::with_capacity((header_count as usize).min(body.len()));
    for _ in 0..header_count {
        let key_length = read_varint(&mut body).map_err(e)?;
        let key = take_bytes(&body_data, &mut body, key_length)?.ok_or("null header key")?;
        let value_length = read_varint(&mut body).map_err(e)?;
        let value = take_bytes(&body_data, &mut body, value_length)?;
        headers.push(Header {
            key: String::from_utf8_lossy(&key).into_owned(),
            value,
        });
    }
    if !body.is_empty() {
        return Err(format!("{} bytes left over inside the record", body.len()));
    }
    Ok(Record {
        offset: header.base_offset.wrapping_add(i64::from(offset_delta)),
        timestamp: header.base_timestamp.wrapping_add(timestamp_delta),
        key,
        value,
        headers,
    })
}
