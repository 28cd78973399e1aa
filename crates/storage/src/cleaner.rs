//! The log cleaner: compaction for `cleanup.policy=compact`.
//!
//! A compacted log keeps, for each key, at least the latest record, in offset
//! order; offsets never change. One cleaning of a log:
//! 1. (log lock) Pick the cleanable range: the segments before the active one,
//!    below the high watermark, older than `min.compaction.lag.ms`. Take their file
//!    handles.
//! 2. (no lock) Build the offset map, key -> latest offset, from the dirty part
//!    (offsets from the first dirty offset on). Rewrite every segment of the range,
//!    in groups that fit one segment, keeping a record only if no later record has
//!    its key; keyless records go. Tombstones (null values), and markers whose
//!    transaction has nothing left, stay for `delete.retention.ms` from the first
//!    cleaning that keeps them, which stamps that delete horizon on their batch
//!    (KIP-534: the delete-horizon attribute bit, the horizon as base timestamp,
//!    record timestamps unchanged); the first cleaning after it drops them.
//!    Unchanged batches are copied as they are; others are rebuilt with their base
//!    offset, offset span, producer fields and codec kept. Output goes to `{base}.log.cleaned` (+ indexes).
//! 3. (log lock) If the range is unchanged, rename the outputs to `.swap`, delete
//!    the old segments, rename `.swap` to the final names and load them.
//!
//! Crash safety: a crash before step 3 leaves `.cleaned` files, deleted at the next
//! start. A crash during step 3 leaves `.swap` files; the next start deletes the
//! segments they replace and completes the rename ([`complete_swaps`]). At no
//! point is a record's only copy removed.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use protocol::records::batch::{
    compute_crc, set_crc, BatchHeader, Batches, TimestampType, ATTRIBUTES_AT, BASE_TIMESTAMP_AT,
    BATCH_LENGTH_AT, DELETE_HORIZON_BIT, HEADER_LEN, LOG_OVERHEAD, MAX_TIMESTAMP_AT,
    RECORDS_COUNT_AT,
};
use protocol::records::compression::{compress, decompress_to_vec};
use protocol::records::{decode_records, Compression};
use protocol::varint::{read_varint, read_varlong, write_varint, write_varlong};

use crate::error::StorageError;
use crate::log::{io_err, Log};
use crate::offset_index::OffsetIndex;
use crate::producer_state::AbortedTxn;
use crate::segment::{file_name, Segment};
use crate::time_index::TimeIndex;

/// The cleaner's own settings (broker keys `log.cleaner.*`).
#[derive(Debug, Clone)]
pub struct CleanerConfig {
    /// `log.cleaner.dedupe.buffer.size`: memory for the offset map.
    pub dedupe_buffer_bytes: usize,
    /// Largest decompressed batch the cleaner will hold.
    pub max_batch_bytes: usize,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            dedupe_buffer_bytes: 128 << 20,
            max_batch_bytes: 64 << 20,
        }
    }
}

/// The files of a segment, by suffix.
const SUFFIXES: [&str; 4] = ["log", "index", "timeindex", "txnindex"];

/// Bytes of map memory one key costs (hash, offset, table overhead).
const MAP_ENTRY_BYTES: usize = 48;

/// What a cleaning did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanOutcome {
    /// Offsets below this are clean now: the next first dirty offset.
    pub cleaned_up_to: i64,
    pub segments_in: usize,
    pub segments_out: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub records_removed: u64,
}

/// How dirty a log is: bytes at or after the first dirty offset over all
/// cleanable bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dirtiness {
    pub dirty_bytes: u64,
    pub cleanable_bytes: u64,
    /// Offset where cleaning would stop (first uncleanable offset).
    pub end: i64,
}

impl Dirtiness {
    pub fn ratio(&self) -> f64 {
        if self.cleanable_bytes == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / self.cleanable_bytes as f64
        }
    }
}

/// Digests keys for the offset map: SipHash with keys drawn at random for each
/// cleaning (so no one can aim for a collision) and CRC32C, 96 bits in all. Two
/// keys must collide on both to be taken for one: with 10^7 keys the chance is
/// about 10^-15 per cleaning (Kafka keys its map by MD5).
struct KeyDigest(RandomState);

type Digest = (u64, u32);

impl KeyDigest {
    fn new() -> KeyDigest {
        KeyDigest(RandomState::new())
    }

    fn of(&self, key: &[u8]) -> Digest {
        (self.0.hash_one(key), crc32c::crc32c(key))
    }
}

/// The offset map's own hasher: a digest is already uniformly random, so its
/// SipHash half is the hash (no second SipHash per lookup).
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 ^= v;
    }

    fn write_u32(&mut self, v: u32) {
        self.0 ^= u64::from(v).rotate_left(32);
    }
}

type OffsetMap = HashMap<Digest, i64, BuildHasherDefault<DigestHasher>>;

/// One record of a batch, borrowed from the (decompressed) records: its whole
/// encoding, so a kept record is copied as it is.
struct RawRecord<'a> {
    bytes: &'a [u8],
    offset: i64,
    timestamp: i64,
    key: Option<&'a [u8]>,
    tombstone: bool,
}

/// The records section of a batch: borrowed when uncompressed, else decompressed.
fn batch_body<'a>(
    header: &BatchHeader,
    bytes: &'a [u8],
    max_batch_bytes: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, StorageError> {
    let corrupt = |e: String| {
        StorageError::Corrupt(
            PathBuf::new(),
            format!("batch at {}: {e}", header.base_offset),
        )
    };
    let compression = header.compression().map_err(|e| corrupt(e.to_string()))?;
    let body = bytes
        .get(HEADER_LEN..)
        .ok_or_else(|| corrupt("shorter than its header".into()))?;
    if compression == Compression::None {
        Ok(std::borrow::Cow::Borrowed(body))
    } else {
        decompress_to_vec(compression, body, max_batch_bytes)
            .map(std::borrow::Cow::Owned)
            .map_err(|e| corrupt(e.to_string()))
    }
}

/// The fields of one record (after its length) the cleaner needs.
struct RecordFields<'a> {
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&'a [u8]>,
    tombstone: bool,
}

fn record_fields(record: &[u8]) -> Result<RecordFields<'_>, String> {
    let mut record = record.get(1..).ok_or("empty record")?;
    let timestamp_delta = read_varlong(&mut record).map_err(|e| e.to_string())?;
    let offset_delta = read_varint(&mut record).map_err(|e| e.to_string())?;
    let key_length = read_varint(&mut record).map_err(|e| e.to_string())?;
    let key = match key_length {
        -1 => None,
        n if n >= 0 && n as usize <= record.len() => {
            let (key, tail) = record.split_at(n as usize);
            record = tail;
            Some(key)
        }
        n => return Err(format!("key length {n}")),
    };
    let value_length = read_varint(&mut record).map_err(|e| e.to_string())?;
    if value_length < -1 || value_length as isize > record.len() as isize {
        return Err(format!("value length {value_length}"));
    }
    Ok(RecordFields {
        timestamp_delta,
        offset_delta,
        key,
        tombstone: value_length == -1,
    })
}

/// Walks the records of one batch body without copying them.
fn walk_records<'a>(
    header: &BatchHeader,
    body: &'a [u8],
    mut visit: impl FnMut(RawRecord<'a>),
) -> Result<(), StorageError> {
    let corrupt = |i: usize, e: &str| {
        StorageError::Corrupt(
            PathBuf::new(),
            format!("batch at {}, record {i}: {e}", header.base_offset),
        )
    };
    let log_append_time = header.timestamp_type() == TimestampType::LogAppendTime;
    let mut rest = body;
    let mut count = 0usize;
    while !rest.is_empty() {
        let start = rest;
        let length = read_varint(&mut rest).map_err(|e| corrupt(count, &e.to_string()))?;
        if length <= 0 || length as usize > rest.len() {
            return Err(corrupt(count, &format!("length {length}")));
        }
        let prefix = start.len() - rest.len();
        let (record, after) = rest.split_at(length as usize);
        let bytes = &start[..prefix + length as usize];
        rest = after;
        let fields = record_fields(record).map_err(|e| corrupt(count, &e))?;
        let timestamp = if log_append_time {
            header.max_timestamp
        } else {
            header.base_timestamp.wrapping_add(fields.timestamp_delta)
        };
        visit(RawRecord {
            bytes,
            offset: header.base_offset + i64::from(fields.offset_delta),
            timestamp,
            key: fields.key,
            tombstone: fields.tombstone,
        });
        count += 1;
    }
    if count != header.records_count.max(0) as usize {
        return Err(corrupt(
            count,
            &format!(
                "{count} records where the header says {}",
                header.records_count
            ),
        ));
    }
    Ok(())
}

/// A segment of the range being cleaned, as seen under the log lock.
#[derive(Debug, Clone)]
struct SegmentView {
    base_offset: i64,
    next_offset: i64,
    size: u32,
    file: Arc<File>,
    /// The segment's aborted transactions: carried into the cleaned segment.
    aborted: Vec<AbortedTxn>,
}

impl Log {
    /// The segments compaction may touch now, and how dirty they are.
    pub fn dirtiness(&self, first_dirty: i64, high_watermark: i64) -> Dirtiness {
        let views = self.cleanable_segments(high_watermark);
        let end = views
            .last()
            .map(|v| v.next_offset)
            .unwrap_or(self.log_start_offset);
        let cleanable_bytes = views.iter().map(|v| u64::from(v.size)).sum();
        let dirty_bytes = views
            .iter()
            .filter(|v| v.next_offset > first_dirty)
            .map(|v| u64::from(v.size))
            .sum();
        Dirtiness {
            dirty_bytes,
            cleanable_bytes,
            end,
        }
    }

    /// When the oldest uncleaned data was written: the first batch timestamp of the
    /// first segment holding offsets at or after `first_dirty` (Kafka's test for
    /// `max.compaction.lag.ms`). `None` when there is no such batch.
    pub fn first_dirty_batch_timestamp(&self, first_dirty: i64) -> Option<i64> {
        self.segments
            .values()
            .find(|s| s.next_offset() > first_dirty)
            .and_then(|s| s.rolling_based_timestamp())
            .filter(|&ts| ts >= 0)
    }

    fn cleanable_segments(&self, high_watermark: i64) -> Vec<SegmentView> {
        let now = self.clock.now_ms();
        let lag = self
            .config
            .values
            .get("min.compaction.lag.ms")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        let active_base = self.active().base_offset();
        self.segments
            .values()
            .take_while(|s| s.base_offset() < active_base)
            .take_while(|s| s.next_offset() <= high_watermark)
            .take_while(|s| lag <= 0 || s.largest_timestamp() <= now.saturating_sub(lag))
            .map(|s| SegmentView {
                base_offset: s.base_offset(),
                next_offset: s.next_offset(),
                size: s.size(),
                file: Arc::clone(s.log_file()),
                aborted: s.aborted_transactions().to_vec(),
            })
            .collect()
    }
}

/// Reads every whole batch of a segment file in order, until `visit` breaks.
fn for_each_batch(
    view: &SegmentView,
    mut visit: impl FnMut(BatchHeader, &[u8]) -> Result<ControlFlow<()>, StorageError>,
) -> Result<(), StorageError> {
    const CHUNK: usize = 1 << 20;
    let mut position = 0u64;
    let end = u64::from(view.size);
    let mut buffer = Vec::new();
    while position < end {
        let want = ((end - position) as usize).min(CHUNK.max(buffer.capacity()));
        buffer.resize(want, 0);
        view.file
            .read_exact_at(&mut buffer, position)
            .map_err(io_err("reading a segment to clean"))?;
        let mut consumed = 0usize;
        let mut batches = Batches::new(&buffer);
        for item in batches.by_ref() {
            match item {
                Ok((header, bytes)) => {
                    if visit(header, bytes)?.is_break() {
                        return Ok(());
                    }
                    consumed += bytes.len();
                }
                Err(_) => break,
            }
        }
        if consumed == 0 {
            // A batch larger than the chunk: read exactly that batch.
            if buffer.len() < LOG_OVERHEAD {
                return Err(StorageError::Corrupt(
                    PathBuf::new(),
                    format!("segment {} ends inside a batch header", view.base_offset),
                ));
            }
            let length = i32::from_be_bytes(buffer[8..12].try_into().expect("4 bytes"));
            let size = LOG_OVERHEAD + length.max(0) as usize;
            if length <= 0 || position + size as u64 > end {
                return Err(StorageError::Corrupt(
                    PathBuf::new(),
                    format!(
                        "segment {} has an unreadable batch at {position}",
                        view.base_offset
                    ),
                ));
            }
            buffer.resize(size, 0);
            view.file
                .read_exact_at(&mut buffer, position)
                .map_err(io_err("reading a segment to clean"))?;
            continue;
        }
        position += consumed as u64;
    }
    Ok(())
}

/// The cleaned output of one group of segments, before it is swapped in.
struct CleanedSegment {
    base_offset: i64,
    replaces: Vec<i64>,
    bytes_in: u64,
    bytes_out: u64,
}

/// Writes one cleaned segment: the log and both indexes, `.cleaned` suffixed.
struct SegmentWriter {
    log: File,
    position: u32,
    index: OffsetIndex,
    time_index: TimeIndex,
    index_interval_bytes: u32,
    since_index: u32,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
}

fn cleaned_path(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{}.cleaned", file_name(base, suffix)))
}

impl SegmentWriter {
    fn create(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u32,
    ) -> io::Result<SegmentWriter> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(cleaned_path(dir, base_offset, "log"))?;
        Ok(SegmentWriter {
            log: file,
            position: 0,
            // The cleaned segment may hold more entries than a live one would: its
            // indexes are sized for what it holds, not capped.
            index: OffsetIndex::create_empty(
                &cleaned_path(dir, base_offset, "index"),
                base_offset,
                usize::MAX,
            )?,
            time_index: TimeIndex::create_empty(
                &cleaned_path(dir, base_offset, "timeindex"),
                base_offset,
                usize::MAX,
            )?,
            index_interval_bytes,
            since_index: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
        })
    }

    fn write_batch(&mut self, header: &BatchHeader, bytes: &[u8]) -> io::Result<()> {
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.last_offset();
        }
        if self.since_index > self.index_interval_bytes {
            self.index.append(header.last_offset(), self.position)?;
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp, true)?;
            self.since_index = 0;
        }
        self.log.write_all_at(bytes, u64::from(self.position))?;
        self.position += bytes.len() as u32;
        self.since_index += bytes.len() as u32;
        Ok(())
    }

    /// Completes the segment; returns its size and its files, to be fsynced before
    /// the swap (all outputs at once, so the disk writes the earlier ones while the
    /// later ones are built).
    fn finish(mut self) -> io::Result<(u32, Vec<File>)> {
        if self.max_timestamp >= 0 {
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp, true)?;
        }
        self.log.flush()?;
        let files = vec![
            self.index.try_clone_file()?,
            self.time_index.try_clone_file()?,
            self.log,
        ];
        Ok((self.position, files))
    }
}

/// Filters one batch's records with `keep`. The batch comes back as it was when
/// every record stays and nothing else changes, rebuilt (base offset, offset span,
/// producer fields and codec kept) when some go, and not at all when none stays.
/// KIP-534: `horizon` is the delete horizon to stamp on a batch that has none yet
/// and keeps a tombstone; such a batch is rebuilt even when every record stays.
fn filter_batch<'b>(
    header: &BatchHeader,
    bytes: &'b [u8],
    max_batch_bytes: usize,
    horizon: Option<i64>,
    mut keep: impl FnMut(&RawRecord) -> bool,
) -> Result<Option<std::borrow::Cow<'b, [u8]>>, StorageError> {
    let body = batch_body(header, bytes, max_batch_bytes)?;
    let mut kept: Vec<(usize, usize)> = Vec::new();
    let mut total = 0usize;
    let mut max_timestamp = -1i64;
    let mut kept_tombstone = false;
    walk_records(header, &body, |record| {
        total += 1;
        if keep(&record) {
            let start = record.bytes.as_ptr() as usize - body.as_ptr() as usize;
            kept.push((start, start + record.bytes.len()));
            max_timestamp = max_timestamp.max(record.timestamp);
            kept_tombstone |= record.tombstone;
        }
    })?;
    let horizon = horizon.filter(|_| kept_tombstone && !header.has_delete_horizon());
    if kept.len() == total && horizon.is_none() {
        return Ok(Some(std::borrow::Cow::Borrowed(bytes)));
    }
    if kept.is_empty() {
        return Ok(None);
    }
    let max_timestamp =
        (header.timestamp_type() == TimestampType::CreateTime).then_some(max_timestamp);
    rebuild(header, bytes, &body, &kept, max_timestamp, horizon)
        .map(|out| Some(std::borrow::Cow::Owned(out)))
}

/// A batch with the records at `kept` (ranges of `body`, the decompressed records)
/// and the header of `bytes`, re-compressed with its codec; `max_timestamp` replaces
/// the header's, and `horizon`, when given, becomes the base timestamp with the
/// delete-horizon bit set, every record's timestamp delta rewritten against it so
/// that no record's timestamp changes.
fn rebuild(
    header: &BatchHeader,
    bytes: &[u8],
    body: &[u8],
    kept: &[(usize, usize)],
    max_timestamp: Option<i64>,
    horizon: Option<i64>,
) -> Result<Vec<u8>, StorageError> {
    let corrupt = |e: String| {
        StorageError::Corrupt(
            PathBuf::new(),
            format!("batch at {}: {e}", header.base_offset),
        )
    };
    let mut records =
        Vec::with_capacity(kept.iter().map(|(a, b)| b - a).sum::<usize>() + kept.len() * 8);
    for (a, b) in kept {
        let record = &body[*a..*b];
        let Some(horizon) = horizon else {
            records.extend_from_slice(record);
            continue;
        };
        // length, attributes, timestamp delta, then the rest unchanged.
        let mut rest = record;
        read_varint(&mut rest).map_err(|e| corrupt(e.to_string()))?;
        let (&attributes, mut after) = rest
            .split_first()
            .ok_or_else(|| corrupt("empty record".into()))?;
        let delta = read_varlong(&mut after).map_err(|e| corrupt(e.to_string()))?;
        let timestamp = header.base_timestamp.wrapping_add(delta);
        let mut inner = Vec::with_capacity(after.len() + 11);
        inner.push(attributes);
        write_varlong(&mut inner, timestamp.wrapping_sub(horizon));
        inner.extend_from_slice(after);
        write_varint(&mut records, inner.len() as i32);
        records.extend_from_slice(&inner);
    }
    let compression = header.compression().map_err(|e| corrupt(e.to_string()))?;
    let records = if compression == Compression::None {
        records
    } else {
        compress(compression, &records)
            .map_err(|e| StorageError::io("re-compressing a cleaned batch", e))?
    };
    let mut out = Vec::with_capacity(HEADER_LEN + records.len());
    out.extend_from_slice(&bytes[..HEADER_LEN]);
    out.extend_from_slice(&records);
    let length = (out.len() - LOG_OVERHEAD) as i32;
    out[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
    if let Some(max_timestamp) = max_timestamp {
        out[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    }
    if let Some(horizon) = horizon {
        out[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8].copy_from_slice(&horizon.to_be_bytes());
        let attributes = header.attributes | DELETE_HORIZON_BIT;
        out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    }
    out[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&(kept.len() as i32).to_be_bytes());
    let crc = compute_crc(&out);
    set_crc(&mut out, crc);
    Ok(out)
}

/// A control batch (one marker record) with the delete horizon stamped on it.
fn with_delete_horizon(
    header: &BatchHeader,
    bytes: &[u8],
    max_batch_bytes: usize,
    horizon: i64,
) -> Result<Vec<u8>, StorageError> {
    let body = batch_body(header, bytes, max_batch_bytes)?;
    let mut kept = Vec::new();
    walk_records(header, &body, |record| {
        let start = record.bytes.as_ptr() as usize - body.as_ptr() as usize;
        kept.push((start, start + record.bytes.len()));
    })?;
    rebuild(header, bytes, &body, &kept, None, Some(horizon))
}

/// Kafka's `CleanedTransactionMetadata`: follows transactions through the batches
/// of the range being cleaned, in offset order. A transactional batch of a producer
/// whose aborted transaction (from the transaction indexes) has begun is aborted
/// until that producer's ABORT marker; other transactional batches are committed
/// (the range ends at the last stable offset, so every transaction in it is
/// decided). Aborted batches neither enter the offset map nor survive the cleaning.
/// A marker may go once no batch of its transaction is left: a COMMIT when this
/// pass read none of its batches, an ABORT when this pass saw none (the batches it
/// saw are dropped now, the marker next time).
struct TxnTracker {
    /// Aborted transactions not yet begun, by first offset.
    pending: std::collections::VecDeque<AbortedTxn>,
    /// Producer -> (its aborted transaction, whether a batch of it was read).
    aborting: HashMap<i64, (AbortedTxn, bool)>,
    /// Producers with a committed transaction whose batches were read.
    committing: std::collections::HashSet<i64>,
}

/// What a control batch is, from its one record's key (version, type).
fn control_type(
    header: &BatchHeader,
    bytes: &[u8],
    max_batch_bytes: usize,
) -> Result<Option<i16>, StorageError> {
    let (_, records) = decode_records(bytes, max_batch_bytes).map_err(|e| {
        StorageError::Corrupt(
            PathBuf::new(),
            format!("control batch at {}: {e}", header.base_offset),
        )
    })?;
    Ok(records
        .first()
        .and_then(|r| r.key.as_deref())
        .filter(|k| k.len() >= 4)
        .map(|k| i16::from_be_bytes([k[2], k[3]])))
}

impl TxnTracker {
    /// Tracks the batches from `from` on: aborted transactions whose marker lies
    /// before it are over.
    fn new(views: &[&SegmentView], from: i64) -> TxnTracker {
        let mut aborted: Vec<AbortedTxn> = views
            .iter()
            .flat_map(|v| v.aborted.iter().copied())
            .filter(|a| a.last_offset >= from)
            .collect();
        aborted.sort_by_key(|a| (a.first_offset, a.last_offset));
        TxnTracker {
            pending: aborted.into(),
            aborting: HashMap::new(),
            committing: Default::default(),
        }
    }

    fn begin_up_to(&mut self, offset: i64) {
        while self
            .pending
            .front()
            .is_some_and(|a| a.first_offset <= offset)
        {
            let txn = self.pending.pop_front().expect("checked");
            self.aborting.entry(txn.producer_id).or_insert((txn, false));
        }
    }

    /// A data batch: true when it belongs to an aborted transaction.
    fn on_batch(&mut self, header: &BatchHeader) -> bool {
        self.begin_up_to(header.last_offset());
        if !header.is_transactional() {
            return false;
        }
        match self.aborting.get_mut(&header.producer_id) {
            Some((_, seen)) => {
                *seen = true;
                true
            }
            None => {
                self.committing.insert(header.producer_id);
                false
            }
        }
    }

    /// A control batch: whether it may be dropped (its transaction has no batch
    /// left), and the aborted transaction to keep indexed when an ABORT marker stays.
    fn on_control(
        &mut self,
        header: &BatchHeader,
        kind: Option<i16>,
    ) -> (bool, Option<AbortedTxn>) {
        self.begin_up_to(header.last_offset());
        match kind {
            Some(crate::producer_state::CONTROL_ABORT) => {
                match self.aborting.remove(&header.producer_id) {
                    Some((txn, true)) => (false, Some(txn)),
                    Some((txn, false)) => (true, Some(txn)),
                    None => (true, None),
                }
            }
            Some(crate::producer_state::CONTROL_COMMIT) => {
                (!self.committing.remove(&header.producer_id), None)
            }
            // An empty control batch (already cleaned) may go; unknown types stay.
            None => (true, None),
            Some(_) => (false, None),
        }
    }
}

/// Cleans `log` (shared) once. `first_dirty` is where the last cleaning stopped;
/// `upper_bound` is the first offset that may not be cleaned (the last stable
/// offset: undecided transactions are never cleaned).
/// `throttle(bytes)` is called after each batch read or written (I/O limit); when it
/// breaks (the broker is shutting down), the cleaning stops, its partial output is
/// removed and nothing changes (`Ok(None)`).
pub fn clean(
    log: &std::sync::Mutex<Log>,
    first_dirty: i64,
    upper_bound: i64,
    config: &CleanerConfig,
    throttle: &mut dyn FnMut(u64) -> ControlFlow<()>,
) -> Result<Option<CleanOutcome>, StorageError> {
    let aborted = Cell::new(false);
    // True while the cleaning may go on.
    let mut pace = |bytes: u64| {
        if !aborted.get() && throttle(bytes).is_break() {
            aborted.set(true);
        }
        !aborted.get()
    };
    // 1. What to clean, under the lock.
    let (dir, views, delete_retention_ms, segment_bytes, index_interval_bytes, now, tp) = {
        let log = log.lock().unwrap_or_else(|p| p.into_inner());
        let views = log.cleanable_segments(upper_bound);
        let delete_retention_ms = log
            .config
            .values
            .get("delete.retention.ms")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(86_400_000);
        (
            log.dir.clone(),
            views,
            delete_retention_ms,
            log.config.segment_bytes,
            log.config.index_interval_bytes,
            log.clock.now_ms(),
            log.topic_partition.clone(),
        )
    };
    let Some(last) = views.last() else {
        return Ok(None);
    };
    let end = last.next_offset;
    if end <= first_dirty {
        return Ok(None);
    }
    let all: Vec<&SegmentView> = views.iter().collect();
    // 2a. The offset map from the dirty part, bounded by the dedupe buffer; records
    // of aborted transactions do not count.
    let max_keys = (config.dedupe_buffer_bytes / MAP_ENTRY_BYTES).max(1);
    let digest = KeyDigest::new();
    let mut map = OffsetMap::default();
    let mut mapped_end = first_dirty;
    let first_mapped = views
        .iter()
        .find(|v| v.next_offset > first_dirty)
        .map_or(first_dirty, |v| v.base_offset);
    let mut txns = TxnTracker::new(&all, first_mapped);
    // Keys go straight into the map. When it is full, mapping stops at the end of
    // the last whole segment mapped; keys mapped past it (from the segment being
    // read) can only make the cleaning drop records that have a later record of
    // their key, which is always right.
    for view in views.iter().filter(|v| v.next_offset > first_dirty) {
        let first_segment = mapped_end == first_dirty;
        let mut full = false;
        for_each_batch(view, |header, bytes| {
            if !pace(bytes.len() as u64) {
                return Ok(ControlFlow::Break(()));
            }
            if header.is_control() {
                let kind = control_type(&header, bytes, config.max_batch_bytes)?;
                txns.on_control(&header, kind);
                return Ok(ControlFlow::Continue(()));
            }
            if txns.on_batch(&header) || header.last_offset() < first_dirty {
                return Ok(ControlFlow::Continue(()));
            }
            if !first_segment && map.len() >= max_keys {
                full = true;
                return Ok(ControlFlow::Break(()));
            }
            let body = batch_body(&header, bytes, config.max_batch_bytes)?;
            walk_records(&header, &body, |record| {
                if let Some(key) = record.key {
                    map.insert(digest.of(key), record.offset);
                }
            })?;
            Ok(ControlFlow::Continue(()))
        })?;
        if aborted.get() {
            return Ok(None);
        }
        if full {
            // The map is full: clean up to here, the rest next time.
            break;
        }
        mapped_end = view.next_offset;
    }
    if mapped_end <= first_dirty {
        return Ok(None);
    }
    // 2b. Rewrite every segment below the mapped end, in groups of one segment's size.
    let range: Vec<&SegmentView> = views
        .iter()
        .filter(|v| v.next_offset <= mapped_end)
        .collect();
    let mut txns = TxnTracker::new(&range, i64::MIN);
    let mut outputs: Vec<CleanedSegment> = Vec::new();
    let mut to_sync: Vec<File> = Vec::new();
    let mut records_removed = 0u64;
    // KIP-534: a tombstone or a marker with nothing left of its transaction is kept
    // for delete.retention.ms from the first cleaning that keeps it (which stamps
    // its batch with that horizon), and goes at the first cleaning after it.
    let new_horizon = now.saturating_add(delete_retention_ms);
    let horizon_passed =
        |header: &BatchHeader| header.has_delete_horizon() && now >= header.base_timestamp;
    let mut group_start = 0;
    while group_start < range.len() {
        let mut group_end = group_start + 1;
        let mut group_bytes = u64::from(range[group_start].size);
        while group_end < range.len()
            && group_bytes + u64::from(range[group_end].size) <= u64::from(segment_bytes)
        {
            group_bytes += u64::from(range[group_end].size);
            group_end += 1;
        }
        let base = range[group_start].base_offset;
        let mut writer = SegmentWriter::create(&dir, base, index_interval_bytes)
            .map_err(io_err("creating a cleaned segment"))?;
        let mut kept_aborts: Vec<AbortedTxn> = Vec::new();
        let mut bytes_in = 0u64;
        for view in &range[group_start..group_end] {
            bytes_in += u64::from(view.size);
            for_each_batch(view, |header, bytes| {
                if !pace(bytes.len() as u64) {
                    return Ok(ControlFlow::Break(()));
                }
                let kept = if header.is_control() {
                    // A marker whose transaction has nothing left gets a delete
                    // horizon, like a tombstone, and goes once that has passed.
                    let kind = control_type(&header, bytes, config.max_batch_bytes)?;
                    let (may_go, txn) = txns.on_control(&header, kind);
                    if may_go && horizon_passed(&header) {
                        records_removed += 1;
                        None
                    } else {
                        kept_aborts.extend(txn);
                        if may_go && !header.has_delete_horizon() {
                            Some(std::borrow::Cow::Owned(with_delete_horizon(
                                &header,
                                bytes,
                                config.max_batch_bytes,
                                new_horizon,
                            )?))
                        } else {
                            Some(std::borrow::Cow::Borrowed(bytes))
                        }
                    }
                } else if txns.on_batch(&header) {
                    records_removed += u64::from(header.records_count.max(0) as u32);
                    None
                } else {
                    let mut removed = 0u64;
                    let tombstones_expired = horizon_passed(&header);
                    let kept = filter_batch(
                        &header,
                        bytes,
                        config.max_batch_bytes,
                        Some(new_horizon),
                        |record| {
                            let keep = match record.key {
                                None => false,
                                Some(key) => match map.get(&digest.of(key)) {
                                    Some(&latest) if latest > record.offset => false,
                                    _ => !(record.tombstone && tombstones_expired),
                                },
                            };
                            if !keep {
                                removed += 1;
                            }
                            keep
                        },
                    )?;
                    records_removed += removed;
                    kept
                };
                if let Some(kept) = kept {
                    let kept_header = BatchHeader::parse(&kept)
                        .map_err(|e| StorageError::Corrupt(dir.clone(), e.to_string()))?;
                    writer
                        .write_batch(&kept_header, &kept)
                        .map_err(io_err("writing a cleaned segment"))?;
                    pace(kept.len() as u64);
                }
                Ok(ControlFlow::Continue(()))
            })?;
            if aborted.get() {
                break;
            }
        }
        if aborted.get() {
            drop(writer);
            remove_cleaned(&dir, base);
            for output in &outputs {
                remove_cleaned(&dir, output.base_offset);
            }
            tracing::info!(partition = %tp, "cleaning stopped before it finished (shutting down); nothing changed");
            return Ok(None);
        }
        let (size, files) = writer
            .finish()
            .map_err(io_err("finishing a cleaned segment"))?;
        let bytes_out = u64::from(size);
        to_sync.extend(files);
        // The cleaned transaction index lists the aborted transactions whose markers stay.
        if !kept_aborts.is_empty() {
            let mut txn_index =
                crate::txn_index::TxnIndex::open(&cleaned_path(&dir, base, "txnindex"))
                    .map_err(io_err("writing a cleaned transaction index"))?;
            for entry in kept_aborts {
                txn_index
                    .append(entry)
                    .map_err(io_err("writing a cleaned transaction index"))?;
            }
            txn_index
                .flush()
                .map_err(io_err("writing a cleaned transaction index"))?;
        }
        outputs.push(CleanedSegment {
            base_offset: base,
            replaces: range[group_start..group_end]
                .iter()
                .map(|v| v.base_offset)
                .collect(),
            bytes_in,
            bytes_out,
        });
        group_start = group_end;
    }
    // The cleaned segments are durable before any of them replaces anything.
    for file in &to_sync {
        file.sync_data()
            .map_err(io_err("syncing a cleaned segment"))?;
    }
    drop(to_sync);
    // 3. Swap in, under the lock, if the range is still what was cleaned.
    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
    let unchanged = range.iter().all(|v| {
        log.segments
            .get(&v.base_offset)
            .is_some_and(|s| s.size() == v.size && s.next_offset() == v.next_offset)
    });
    if !unchanged {
        tracing::info!(partition = %tp, "log changed while cleaning (retention or truncation); dropping the cleaned output");
        for output in &outputs {
            remove_cleaned(&dir, output.base_offset);
        }
        return Ok(None);
    }
    let mut outcome = CleanOutcome {
        cleaned_up_to: mapped_end,
        segments_in: range.len(),
        segments_out: outputs.len(),
        records_removed,
        ..CleanOutcome::default()
    };
    for output in outputs {
        swap_in(&mut log, &output)?;
        outcome.bytes_in += output.bytes_in;
        outcome.bytes_out += output.bytes_out;
    }
    tracing::info!(partition = %tp, segments = outcome.segments_in, bytes_in = outcome.bytes_in, bytes_out = outcome.bytes_out, removed = outcome.records_removed, cleaned_up_to = outcome.cleaned_up_to, "cleaned log");
    Ok(Some(outcome))
}

/// Removes the `.cleaned` files of one output segment (best effort: leftovers are
/// deleted at the next start anyway).
fn remove_cleaned(dir: &Path, base: i64) {
    for suffix in SUFFIXES {
        let _ = fs::remove_file(cleaned_path(dir, base, suffix));
    }
}

fn swap_path(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{}.swap", file_name(base, suffix)))
}

/// Step 3 for one output: `.cleaned` -> `.swap`, delete the replaced segments,
/// `.swap` -> final, load it.
fn swap_in(log: &mut Log, output: &CleanedSegment) -> Result<(), StorageError> {
    let dir = log.dir.clone();
    for suffix in SUFFIXES {
        let from = cleaned_path(&dir, output.base_offset, suffix);
        if suffix == "txnindex" && !from.exists() {
            continue;
        }
        fs::rename(from, swap_path(&dir, output.base_offset, suffix))
            .map_err(io_err("renaming a cleaned segment to .swap"))?;
    }
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing the log directory"))?;
    // The replaced segments leave under `.deleted` names (freed in the background);
    // a crash from here on leaves `.swap` files that the next start completes.
    let replaced: Vec<Segment> = output
        .replaces
        .iter()
        .filter_map(|base| log.segments.remove(base))
        .collect();
    crate::retention::retire(&dir, replaced).map_err(io_err("deleting a cleaned-over segment"))?;
    for suffix in SUFFIXES {
        let from = swap_path(&dir, output.base_offset, suffix);
        if suffix == "txnindex" && !from.exists() {
            continue;
        }
        fs::rename(from, dir.join(file_name(output.base_offset, suffix)))
            .map_err(io_err("renaming a .swap segment"))?;
    }
    let config = Arc::clone(&log.config);
    let (segment, _) = Segment::open(
        &dir,
        output.base_offset,
        config.index_interval_bytes,
        usize::MAX,
        usize::MAX,
        false,
        log.clock.now_ms(),
    )
    .map_err(io_err("opening a cleaned segment"))?;
    log.segments.insert(output.base_offset, segment);
    Ok(())
}

/// At start-up, before segments are listed: finishes swaps a crash interrupted.
/// Each `{base}.log.swap` replaces every segment whose base lies in its offset range.
pub fn complete_swaps(dir: &Path) -> io::Result<()> {
    let mut swaps = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".log.swap") {
            if let Ok(base) = stem.parse::<i64>() {
                swaps.push(base);
            }
        }
    }
    swaps.sort_unstable();
    for base in swaps {
        let file = File::open(swap_path(dir, base, "log"))?;
        let len = file.metadata()?.len();
        let mut last_offset = base;
        let mut position = 0u64;
        let mut head = [0u8; HEADER_LEN];
        while position + HEADER_LEN as u64 <= len {
            file.read_exact_at(&mut head, position)?;
            let Ok(header) = BatchHeader::parse(&head) else {
                break;
            };
            last_offset = header.last_offset();
            position += header.size() as u64;
        }
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".log") else {
                continue;
            };
            let Ok(old) = stem.parse::<i64>() else {
                continue;
            };
            if old >= base && old <= last_offset {
                crate::segment::delete_segment_files(dir, old)?;
            }
        }
        for suffix in SUFFIXES {
            let from = swap_path(dir, base, suffix);
            if from.exists() {
                fs::rename(&from, dir.join(file_name(base, suffix)))?;
            }
        }
        tracing::warn!(dir = %dir.display(), base, "completed a segment swap interrupted by a crash");
    }
    Ok(())
}

/// Scans a log's batches (tests, tools): every header, in order.
pub fn batch_headers(log: &Log) -> io::Result<Vec<BatchHeader>> {
    let mut out = Vec::new();
    for segment in log.segments.values() {
        segment.scan_headers(0, |_, header| {
            out.push(*header);
            ControlFlow::Continue(())
        })?;
    }
    Ok(out)
}
