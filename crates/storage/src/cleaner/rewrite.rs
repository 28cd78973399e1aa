//! The cleaner's second stage: rewriting the range below the mapped end, in groups
//! that fit one segment, into `{base}.log.cleaned` (+ indexes). A record stays when
//! no later record has its key; keyless records go; tombstones, and markers whose
//! transaction has nothing left, stay until their delete horizon (KIP-534) has
//! passed. Unchanged batches are copied as they are; others are rebuilt with their
//! base offset, offset span, producer fields and codec kept.

use std::borrow::Cow;
use std::io;
use std::ops::ControlFlow;
use std::path::Path;

use protocol::records::batch::{
    compute_crc, set_crc, BatchHeader, TimestampType, ATTRIBUTES_AT, BASE_TIMESTAMP_AT,
    BATCH_LENGTH_AT, DELETE_HORIZON_BIT, HEADER_LEN, LOG_OVERHEAD, MAX_TIMESTAMP_AT,
    RECORDS_COUNT_AT,
};
use protocol::records::compression::compress;
use protocol::records::{Compression, RecordView};
use protocol::varint::{read_varint, read_varlong, write_varint, write_varlong};

use super::offset_map::MappedRange;
use super::swap::{cleaned_path, remove_cleaned};
use super::transactions::TxnTracker;
use super::{
    control_kind, corrupt, for_each_batch, records_of, walk, CleanerConfig, Pacer, Plan,
    SegmentView,
};
use crate::error::StorageError;
use crate::fs::{FileRef, Fs, OpenMode};
use crate::log::io_err;
use crate::offset_index::OffsetIndex;
use crate::producer_state::AbortedTxn;
use crate::time_index::TimeIndex;
use crate::txn_index::TxnIndex;

/// The cleaned output of one group of segments, before it is swapped in.
pub(crate) struct CleanedSegment {
    pub(crate) base_offset: i64,
    pub(crate) replaces: Vec<i64>,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
}

/// Everything the rewrite produced: the outputs, their files (to fsync before the
/// swap) and how many records went.
pub(crate) struct Rewritten {
    pub(crate) outputs: Vec<CleanedSegment>,
    pub(crate) to_sync: Vec<FileRef>,
    pub(crate) records_removed: u64,
}

/// Rewrites `range` (the segments below the mapped end). `None` when the cleaning
/// was told to stop: its partial output is removed.
pub(crate) fn rewrite(
    plan: &Plan,
    range: &[&SegmentView],
    mapped: &MappedRange,
    config: &CleanerConfig,
    pacer: &mut Pacer<'_>,
) -> Result<Option<Rewritten>, StorageError> {
    let mut rules = Rules {
        mapped,
        txns: TxnTracker::new(range, i64::MIN),
        now: plan.now,
        // KIP-534: a tombstone or a marker with nothing left of its transaction is
        // kept for delete.retention.ms from the first cleaning that keeps it (which
        // stamps its batch with that horizon), and goes at the first cleaning after.
        new_horizon: plan.now.saturating_add(plan.delete_retention_ms),
        max_batch_bytes: config.max_batch_bytes,
        records_removed: 0,
    };
    let mut outputs: Vec<CleanedSegment> = Vec::new();
    let mut to_sync = Vec::new();
    let mut group_start = 0;
    while group_start < range.len() {
        let mut group_end = group_start + 1;
        let mut group_bytes = u64::from(range[group_start].size);
        while group_end < range.len()
            && group_bytes + u64::from(range[group_end].size) <= u64::from(plan.segment_bytes)
        {
            group_bytes += u64::from(range[group_end].size);
            group_end += 1;
        }
        let group = &range[group_start..group_end];
        match rewrite_group(plan, group, &mut rules, pacer, &mut to_sync)? {
            Some(output) => outputs.push(output),
            None => {
                for output in &outputs {
                    remove_cleaned(&*plan.fs, &plan.dir, output.base_offset);
                }
                tracing::info!(partition = %plan.topic_partition, "cleaning stopped before it finished (shutting down); nothing changed");
                return Ok(None);
            }
        }
        group_start = group_end;
    }
    Ok(Some(Rewritten {
        outputs,
        to_sync,
        records_removed: rules.records_removed,
    }))
}

/// Rewrites one group of segments into one cleaned segment.
fn rewrite_group(
    plan: &Plan,
    group: &[&SegmentView],
    rules: &mut Rules<'_>,
    pacer: &mut Pacer<'_>,
    to_sync: &mut Vec<FileRef>,
) -> Result<Option<CleanedSegment>, StorageError> {
    let base = group[0].base_offset;
    let fs = &*plan.fs;
    let mut writer = SegmentWriter::create(fs, &plan.dir, base, plan.index_interval_bytes)
        .map_err(io_err("creating a cleaned segment"))?;
    let mut kept_aborts: Vec<AbortedTxn> = Vec::new();
    let mut bytes_in = 0u64;
    for view in group {
        bytes_in += u64::from(view.size);
        for_each_batch(view, |header, bytes| {
            if !pacer.pace(bytes.len() as u64) {
                return Ok(ControlFlow::Break(()));
            }
            if let Some(kept) = rules.keep(&header, bytes, &mut kept_aborts)? {
                let kept_header = BatchHeader::parse(&kept)
                    .map_err(|e| StorageError::Corrupt(plan.dir.clone(), e.to_string()))?;
                writer
                    .write_batch(&kept_header, &kept)
                    .map_err(io_err("writing a cleaned segment"))?;
                pacer.pace(kept.len() as u64);
            }
            Ok(ControlFlow::Continue(()))
        })?;
        if pacer.stopped() {
            drop(writer);
            remove_cleaned(fs, &plan.dir, base);
            return Ok(None);
        }
    }
    let (size, files) = writer
        .finish(fs)
        .map_err(io_err("finishing a cleaned segment"))?;
    to_sync.extend(files);
    // The cleaned transaction index lists the aborted transactions whose markers stay.
    if !kept_aborts.is_empty() {
        let context = "writing a cleaned transaction index";
        let mut txn_index = TxnIndex::open(fs, &cleaned_path(&plan.dir, base, "txnindex"))
            .map_err(io_err(context))?;
        for entry in kept_aborts {
            txn_index.append(entry);
        }
        to_sync.extend(txn_index.prepare_sync(fs).map_err(io_err(context))?);
    }
    Ok(Some(CleanedSegment {
        base_offset: base,
        replaces: group.iter().map(|v| v.base_offset).collect(),
        bytes_in,
        bytes_out: u64::from(size),
    }))
}

/// What decides the fate of each batch: the offset map, the transactions seen so
/// far, and the delete horizons.
struct Rules<'a> {
    mapped: &'a MappedRange,
    txns: TxnTracker,
    now: i64,
    new_horizon: i64,
    max_batch_bytes: usize,
    records_removed: u64,
}

impl Rules<'_> {
    fn horizon_passed(&self, header: &BatchHeader) -> bool {
        header.has_delete_horizon() && self.now >= header.base_timestamp
    }

    /// What stays of one batch: nothing, the batch as it is, or a rebuilt batch.
    /// An ABORT marker that stays adds its transaction to `kept_aborts`.
    fn keep<'b>(
        &mut self,
        header: &BatchHeader,
        bytes: &'b [u8],
        kept_aborts: &mut Vec<AbortedTxn>,
    ) -> Result<Option<Cow<'b, [u8]>>, StorageError> {
        if header.is_control() {
            // A marker whose transaction has nothing left gets a delete horizon,
            // like a tombstone, and goes once that has passed.
            let kind = control_kind(header, bytes, self.max_batch_bytes)?;
            let (may_go, txn) = self.txns.on_control(header, kind);
            if may_go && self.horizon_passed(header) {
                self.records_removed += 1;
                return Ok(None);
            }
            kept_aborts.extend(txn);
            if may_go && !header.has_delete_horizon() {
                let stamped =
                    with_delete_horizon(header, bytes, self.max_batch_bytes, self.new_horizon)?;
                return Ok(Some(Cow::Owned(stamped)));
            }
            return Ok(Some(Cow::Borrowed(bytes)));
        }
        if self.txns.on_batch(header) {
            self.records_removed += u64::from(header.records_count.max(0) as u32);
            return Ok(None);
        }
        let mut removed = 0u64;
        let tombstones_expired = self.horizon_passed(header);
        let mapped = self.mapped;
        let kept = filter_batch(
            header,
            bytes,
            self.max_batch_bytes,
            Some(self.new_horizon),
            |record| {
                let keep = match record.key {
                    None => false,
                    Some(key) => match mapped.latest(key) {
                        Some(latest) if latest > record.offset(header) => false,
                        _ => !(record.is_tombstone() && tombstones_expired),
                    },
                };
                if !keep {
                    removed += 1;
                }
                keep
            },
        )?;
        self.records_removed += removed;
        Ok(kept)
    }
}

/// Writes one cleaned segment: the log and both indexes, `.cleaned` suffixed.
struct SegmentWriter {
    log: FileRef,
    position: u32,
    index: OffsetIndex,
    time_index: TimeIndex,
    index_interval_bytes: u32,
    since_index: u32,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
}

impl SegmentWriter {
    fn create(
        fs: &dyn Fs,
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u32,
    ) -> io::Result<SegmentWriter> {
        Ok(SegmentWriter {
            log: fs.open(&cleaned_path(dir, base_offset, "log"), OpenMode::Truncate)?,
            position: 0,
            // The cleaned segment may hold more entries than a live one would: its
            // indexes are sized for what it holds, not capped.
            index: OffsetIndex::create_empty(
                fs,
                &cleaned_path(dir, base_offset, "index"),
                base_offset,
                usize::MAX,
            )?,
            time_index: TimeIndex::create_empty(
                fs,
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
            self.index.append(header.last_offset(), self.position);
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp, true);
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
    fn finish(mut self, fs: &dyn Fs) -> io::Result<(u32, Vec<FileRef>)> {
        if self.max_timestamp >= 0 {
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp, true);
        }
        let mut files = vec![self.log];
        files.extend(self.index.prepare_sync(fs)?);
        files.extend(self.time_index.prepare_sync(fs)?);
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
    mut keep: impl FnMut(&RecordView<'_>) -> bool,
) -> Result<Option<Cow<'b, [u8]>>, StorageError> {
    let section = records_of(header, bytes, max_batch_bytes)?;
    let mut kept: Vec<RecordView<'_>> = Vec::new();
    let mut total = 0usize;
    let mut max_timestamp = -1i64;
    let mut kept_tombstone = false;
    walk(header, &section, |record| {
        total += 1;
        if keep(&record) {
            max_timestamp = max_timestamp.max(record.timestamp(header));
            kept_tombstone |= record.is_tombstone();
            kept.push(record);
        }
    })?;
    let horizon = horizon.filter(|_| kept_tombstone && !header.has_delete_horizon());
    if kept.len() == total && horizon.is_none() {
        return Ok(Some(Cow::Borrowed(bytes)));
    }
    if kept.is_empty() {
        return Ok(None);
    }
    let max_timestamp =
        (header.timestamp_type() == TimestampType::CreateTime).then_some(max_timestamp);
    rebuild(header, bytes, &kept, max_timestamp, horizon).map(|out| Some(Cow::Owned(out)))
}

/// A batch with the `kept` records and the header of `bytes`, re-compressed with
/// its codec; `max_timestamp` replaces the header's, and `horizon`, when given,
/// becomes the base timestamp with the delete-horizon bit set, every record's
/// timestamp delta rewritten against it so that no record's timestamp changes.
fn rebuild(
    header: &BatchHeader,
    bytes: &[u8],
    kept: &[RecordView<'_>],
    max_timestamp: Option<i64>,
    horizon: Option<i64>,
) -> Result<Vec<u8>, StorageError> {
    let bad = |e: String| corrupt(header, e);
    let mut records =
        Vec::with_capacity(kept.iter().map(|r| r.bytes.len()).sum::<usize>() + kept.len() * 8);
    for record in kept {
        let Some(horizon) = horizon else {
            records.extend_from_slice(record.bytes);
            continue;
        };
        // length, attributes, timestamp delta, then the rest unchanged.
        let mut rest = record.bytes;
        read_varint(&mut rest).map_err(|e| bad(e.to_string()))?;
        let (&attributes, mut after) = rest
            .split_first()
            .ok_or_else(|| bad("empty record".into()))?;
        read_varlong(&mut after).map_err(|e| bad(e.to_string()))?;
        let timestamp = header.base_timestamp.wrapping_add(record.timestamp_delta);
        let mut inner = Vec::with_capacity(after.len() + 11);
        inner.push(attributes);
        write_varlong(&mut inner, timestamp.wrapping_sub(horizon));
        inner.extend_from_slice(after);
        write_varint(&mut records, inner.len() as i32);
        records.extend_from_slice(&inner);
    }
    let compression = header.compression().map_err(|e| bad(e.to_string()))?;
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
    let section = records_of(header, bytes, max_batch_bytes)?;
    let mut kept = Vec::new();
    walk(header, &section, |record| kept.push(record))?;
    rebuild(header, bytes, &kept, None, Some(horizon))
}
