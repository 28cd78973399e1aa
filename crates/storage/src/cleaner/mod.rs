//! The log cleaner: compaction for `cleanup.policy=compact`.
//!
//! A compacted log keeps, for each key, at least the latest record, in offset
//! order; offsets never change. One cleaning of a log, in stages:
//! 1. (log lock) Pick the cleanable range: the segments before the active one,
//!    below the high watermark, older than `min.compaction.lag.ms`. Take their file
//!    handles.
//! 2. (no lock) [`offset_map`]: key -> latest offset, from the dirty part (offsets
//!    from the first dirty offset on), bounded by the dedupe buffer.
//!    [`rewrite`]: every segment of the range below where mapping stopped, in
//!    groups that fit one segment, keeping a record only if no later record has
//!    its key; keyless records go. Tombstones (null values), and markers whose
//!    transaction has nothing left ([`transactions`]), stay for
//!    `delete.retention.ms` from the first cleaning that keeps them, which stamps
//!    that delete horizon on their batch (KIP-534: the delete-horizon attribute
//!    bit, the horizon as base timestamp, record timestamps unchanged); the first
//!    cleaning after it drops them. Output goes to `{base}.log.cleaned` (+ indexes).
//! 3. (log lock) [`swap`]: if the range is unchanged, the outputs replace the
//!    segments they were made from.
//!
//! Crash safety: a crash before step 3 leaves `.cleaned` files, deleted at the next
//! start. A crash during step 3 leaves `.swap` files; the next start deletes the
//! segments they replace and completes the rename ([`complete_swaps`]). At no
//! point is a record's only copy removed.
//!
//! Batches and records are walked with `protocol::records` (record views borrowed
//! from the batch, control records decoded there).

use std::borrow::Cow;
use std::io;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use protocol::records::batch::{BatchHeader, Batches, LOG_OVERHEAD};
use protocol::records::{records_section, RecordView, RecordViews};
use protocol::TopicPartition;

use crate::error::StorageError;
use crate::fs::Fs;
use crate::log::{io_err, Log};
use crate::producer_state::AbortedTxn;
use crate::segment::SegmentReader;

mod offset_map;
mod rewrite;
mod swap;
mod transactions;

pub use swap::complete_swaps;

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

/// A segment of the range being cleaned, as seen under the log lock.
#[derive(Debug, Clone)]
pub(crate) struct SegmentView {
    base_offset: i64,
    next_offset: i64,
    size: u32,
    reader: SegmentReader,
    /// The segment's aborted transactions: carried into the cleaned segment.
    aborted: Vec<AbortedTxn>,
}

/// The segments compaction may touch now, and how dirty they are.
pub fn dirtiness(log: &Log, first_dirty: i64, high_watermark: i64) -> Dirtiness {
    let views = cleanable_segments(log, high_watermark);
    let end = views
        .last()
        .map(|v| v.next_offset)
        .unwrap_or(log.log_start_offset().0);
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
pub fn first_dirty_batch_timestamp(log: &Log, first_dirty: i64) -> Option<i64> {
    log.segments()
        .find(|s| s.next_offset() > first_dirty)
        .and_then(|s| s.rolling_based_timestamp())
        .filter(|&ts| ts >= 0)
}

fn cleanable_segments(log: &Log, high_watermark: i64) -> Vec<SegmentView> {
    let now = log.now_ms();
    let lag = log
        .config()
        .values
        .get("min.compaction.lag.ms")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    let active_base = log
        .segments()
        .next_back()
        .map(|s| s.base_offset())
        .expect("a log always has a segment");
    log.segments()
        .take_while(|s| s.base_offset() < active_base)
        .take_while(|s| s.next_offset() <= high_watermark)
        .take_while(|s| lag <= 0 || s.largest_timestamp() <= now.saturating_sub(lag))
        .map(|s| SegmentView {
            base_offset: s.base_offset(),
            next_offset: s.next_offset(),
            size: s.size(),
            reader: s.reader(),
            aborted: s.aborted_transactions().to_vec(),
        })
        .collect()
}

/// What one cleaning works on, taken under the log's lock.
pub(crate) struct Plan {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    topic_partition: TopicPartition,
    views: Vec<SegmentView>,
    delete_retention_ms: i64,
    segment_bytes: u32,
    index_interval_bytes: u32,
    now: i64,
}

impl Plan {
    fn take(log: &Log, upper_bound: i64) -> Plan {
        let config = log.config();
        Plan {
            fs: Arc::clone(log.fs()),
            dir: log.dir().to_path_buf(),
            topic_partition: log.topic_partition().clone(),
            views: cleanable_segments(log, upper_bound),
            delete_retention_ms: config
                .values
                .get("delete.retention.ms")
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(86_400_000),
            segment_bytes: config.segment_bytes,
            index_interval_bytes: config.index_interval_bytes,
            now: log.now_ms(),
        }
    }
}

/// Paces the cleaning with the caller's throttle: `pace(bytes)` after each batch
/// read or written; false, and from then on always false, once the throttle says
/// stop (the broker is shutting down).
pub(crate) struct Pacer<'a> {
    throttle: &'a mut dyn FnMut(u64) -> ControlFlow<()>,
    stopped: bool,
}

impl Pacer<'_> {
    fn pace(&mut self, bytes: u64) -> bool {
        if !self.stopped && (self.throttle)(bytes).is_break() {
            self.stopped = true;
        }
        !self.stopped
    }

    fn stopped(&self) -> bool {
        self.stopped
    }
}

/// Cleans `log` (shared) once. `first_dirty` is where the last cleaning stopped;
/// `upper_bound` is the first offset that may not be cleaned (the last stable
/// offset: undecided transactions are never cleaned).
/// `throttle(bytes)` is called after each batch read or written (I/O limit); when it
/// breaks (the broker is shutting down), the cleaning stops, its partial output is
/// removed and nothing changes (`Ok(None)`).
pub fn clean(
    log: &Mutex<Log>,
    first_dirty: i64,
    upper_bound: i64,
    config: &CleanerConfig,
    throttle: &mut dyn FnMut(u64) -> ControlFlow<()>,
) -> Result<Option<CleanOutcome>, StorageError> {
    let mut pacer = Pacer {
        throttle,
        stopped: false,
    };
    // 1. What to clean, under the lock.
    let plan = {
        let log = log.lock().unwrap_or_else(|p| p.into_inner());
        log.check_online()?;
        Plan::take(&log, upper_bound)
    };
    if plan
        .views
        .last()
        .is_none_or(|last| last.next_offset <= first_dirty)
    {
        return Ok(None);
    }
    // 2. Read and rewrite, without the lock.
    let prepared = match prepare(&plan, first_dirty, config, &mut pacer) {
        Ok(prepared) => prepared,
        // Retention or truncation took a segment from under the cleaner: nothing
        // is wrong with the log, the cleaning is just moot.
        Err(e) if !range_unchanged(&log.lock().unwrap_or_else(|p| p.into_inner()), &plan.views) => {
            tracing::info!(partition = %plan.topic_partition, error = %e, "log changed while cleaning; dropping the cleaning");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let Some((mapped_end, rewritten)) = prepared else {
        return Ok(None);
    };
    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
    // The cleaned segments are durable before any of them replaces anything.
    for file in &rewritten.to_sync {
        file.sync_data()
            .map_err(|e| log.io_failure("syncing a cleaned segment", e, false))?;
    }
    swap_all(&mut log, &plan, mapped_end, rewritten)
}

/// Whether every segment of `views` is still in the log as it was.
fn range_unchanged<V: std::borrow::Borrow<SegmentView>>(log: &Log, views: &[V]) -> bool {
    views.iter().all(|v| {
        let v = v.borrow();
        log.segment(v.base_offset)
            .is_some_and(|s| s.size() == v.size && s.next_offset() == v.next_offset)
    })
}

/// Stage 2: the offset map, then the rewrite of every segment below the mapped
/// end. `None` when there is nothing to clean or the cleaning was told to stop.
fn prepare(
    plan: &Plan,
    first_dirty: i64,
    config: &CleanerConfig,
    pacer: &mut Pacer<'_>,
) -> Result<Option<(i64, rewrite::Rewritten)>, StorageError> {
    let Some(mapped) = offset_map::build(&plan.views, first_dirty, config, pacer)? else {
        return Ok(None);
    };
    if mapped.end <= first_dirty {
        return Ok(None);
    }
    let range: Vec<&SegmentView> = plan
        .views
        .iter()
        .filter(|v| v.next_offset <= mapped.end)
        .collect();
    let rewritten = rewrite::rewrite(plan, &range, &mapped, config, pacer)?;
    Ok(rewritten.map(|rewritten| (mapped.end, rewritten)))
}

/// Stage 3, under the lock: the outputs replace their segments if the range is
/// still what was cleaned.
fn swap_all(
    log: &mut Log,
    plan: &Plan,
    mapped_end: i64,
    rewritten: rewrite::Rewritten,
) -> Result<Option<CleanOutcome>, StorageError> {
    let range: Vec<&SegmentView> = plan
        .views
        .iter()
        .filter(|v| v.next_offset <= mapped_end)
        .collect();
    let tp = &plan.topic_partition;
    if !range_unchanged(log, &range) {
        tracing::info!(partition = %tp, "log changed while cleaning (retention or truncation); dropping the cleaned output");
        for output in &rewritten.outputs {
            swap::remove_cleaned(&*plan.fs, &plan.dir, output.base_offset);
        }
        return Ok(None);
    }
    let mut outcome = CleanOutcome {
        cleaned_up_to: mapped_end,
        segments_in: range.len(),
        segments_out: rewritten.outputs.len(),
        records_removed: rewritten.records_removed,
        ..CleanOutcome::default()
    };
    for output in &rewritten.outputs {
        swap::swap_in(log, output)?;
        outcome.bytes_in += output.bytes_in;
        outcome.bytes_out += output.bytes_out;
    }
    tracing::info!(partition = %tp, segments = outcome.segments_in, bytes_in = outcome.bytes_in, bytes_out = outcome.bytes_out, removed = outcome.records_removed, cleaned_up_to = outcome.cleaned_up_to, "cleaned log");
    Ok(Some(outcome))
}

/// A corrupt batch or record at `header`'s base offset.
fn corrupt(header: &BatchHeader, reason: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(
        PathBuf::new(),
        format!("batch at {}: {reason}", header.base_offset),
    )
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
    let file = view
        .reader
        .file()
        .map_err(io_err("opening a segment to clean"))?;
    while position < end {
        let want = ((end - position) as usize).min(CHUNK.max(buffer.capacity()));
        buffer.resize(want, 0);
        file.read_exact_at(&mut buffer, position)
            .map_err(io_err("reading a segment to clean"))?;
        let mut consumed = 0usize;
        for item in Batches::new(&buffer) {
            let Ok((header, bytes)) = item else { break };
            if visit(header, bytes)?.is_break() {
                return Ok(());
            }
            consumed += bytes.len();
        }
        if consumed == 0 {
            // A batch larger than the chunk: read exactly that batch.
            let size = oversized_batch(view, &buffer, position)?;
            buffer.resize(size, 0);
            file.read_exact_at(&mut buffer, position)
                .map_err(io_err("reading a segment to clean"))?;
            continue;
        }
        position += consumed as u64;
    }
    Ok(())
}

/// The size of the batch at the start of `buffer` (read at `position`), which did
/// not fit a chunk; an error when it cannot be a batch.
fn oversized_batch(
    view: &SegmentView,
    buffer: &[u8],
    position: u64,
) -> Result<usize, StorageError> {
    if buffer.len() < LOG_OVERHEAD {
        return Err(StorageError::Corrupt(
            PathBuf::new(),
            format!("segment {} ends inside a batch header", view.base_offset),
        ));
    }
    let length = i32::from_be_bytes(buffer[8..12].try_into().expect("4 bytes"));
    let size = LOG_OVERHEAD + length.max(0) as usize;
    if length <= 0 || position + size as u64 > u64::from(view.size) {
        return Err(StorageError::Corrupt(
            PathBuf::new(),
            format!(
                "segment {} has an unreadable batch at {position}",
                view.base_offset
            ),
        ));
    }
    Ok(size)
}

/// The records section of a batch: borrowed when uncompressed, else decompressed
/// (at most `max_batch_bytes`).
fn records_of<'a>(
    header: &BatchHeader,
    bytes: &'a [u8],
    max_batch_bytes: usize,
) -> Result<Cow<'a, [u8]>, StorageError> {
    records_section(header, bytes, max_batch_bytes).map_err(|e| corrupt(header, e))
}

/// Walks the records of a records section, checking the count the header declares.
fn walk<'a>(
    header: &BatchHeader,
    section: &'a [u8],
    mut visit: impl FnMut(RecordView<'a>),
) -> Result<(), StorageError> {
    let mut count = 0usize;
    for record in RecordViews::new(section) {
        visit(record.map_err(|e| corrupt(header, e))?);
        count += 1;
    }
    if count != header.records_count.max(0) as usize {
        return Err(corrupt(
            header,
            format!(
                "{count} records where the header says {}",
                header.records_count
            ),
        ));
    }
    Ok(())
}

/// Walks the records of one whole batch.
fn for_each_record(
    header: &BatchHeader,
    bytes: &[u8],
    max_batch_bytes: usize,
    visit: impl FnMut(RecordView<'_>),
) -> Result<(), StorageError> {
    let section = records_of(header, bytes, max_batch_bytes)?;
    walk(header, &section, visit)
}

/// The type of a control batch's marker (`None` for a batch without one).
fn control_kind(
    header: &BatchHeader,
    bytes: &[u8],
    max_batch_bytes: usize,
) -> Result<Option<i16>, StorageError> {
    protocol::records::control_record(header, bytes, max_batch_bytes)
        .map(|record| record.map(|r| r.kind))
        .map_err(|e| corrupt(header, format!("control batch: {e}")))
}

/// Scans a log's batches (tests, tools): every header, in order.
pub fn batch_headers(log: &Log) -> io::Result<Vec<BatchHeader>> {
    let mut out = Vec::new();
    crate::log::for_each_batch(log, |header| out.push(*header))?;
    Ok(out)
}
