//! One segment of a partition's log: `{base_offset:020}.log` with its `.index` and
//! `.timeindex`.
//!
//! The `.log` file is a run of whole v2 record batches exactly as they go over the
//! wire, offsets increasing. `size` is the byte length of the valid run; nothing
//! past it is ever read. Every byte below `size` was checked (length, magic, CRC)
//! either when it was appended or when the segment was recovered.
//!
//! File descriptors: only the active segment keeps its `.log` open; an older
//! segment's file comes from the broker's [`FileCache`] when it is read. Index files
//! are held in memory and written out on roll, flush and close.
//!
//! Invariants, asserted on every append:
//! - batch base offsets are at least `next_offset` (offsets only grow);
//! - `size` never exceeds `u32::MAX` and offsets stay within `base_offset + u32::MAX`,
//!   so index entries fit their 4-byte fields.

use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use protocol::records::batch::{self, BatchHeader, HEADER_LEN};

use crate::env::LogEnv;
use crate::fs::{remove_if_exists, FileCache, FileRef, Fs, OpenMode};
use crate::offset_index::{IndexError, OffsetIndex};
use crate::producer_state::AbortedTxn;
use crate::time_index::{TimeIndex, TimestampOffset};
use crate::txn_index::TxnIndex;

/// What a batch contributes to segment bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub size: u32,
}

impl From<&BatchHeader> for BatchInfo {
    fn from(header: &BatchHeader) -> Self {
        BatchInfo {
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
            max_timestamp: header.max_timestamp,
            size: header.size() as u32,
        }
    }
}

/// The file names of a segment: `{base_offset:020}.<suffix>`.
pub fn file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}.{suffix}")
}

/// The suffixes of a segment's files.
pub const SUFFIXES: [&str; 4] = ["log", "index", "timeindex", "txnindex"];

/// Deletes the files of the segment at `base_offset` in `dir`, whichever exist.
pub fn delete_segment_files(fs: &dyn Fs, dir: &Path, base_offset: i64) -> io::Result<()> {
    for suffix in SUFFIXES {
        remove_if_exists(fs, &dir.join(file_name(base_offset, suffix)))?;
    }
    Ok(())
}

/// What recovery found in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryOutcome {
    pub valid_bytes: u32,
    pub truncated_bytes: u64,
    pub batches: usize,
}

/// Opens a segment's `.log` through the file cache, on demand.
#[derive(Debug, Clone)]
pub struct SegmentReader {
    id: u64,
    path: PathBuf,
    fs: Arc<dyn Fs>,
    files: Arc<FileCache>,
}

impl SegmentReader {
    pub fn file(&self) -> io::Result<FileRef> {
        self.files.get_or_open(self.id, &self.path, &*self.fs)
    }
}

/// Ids for the file cache: a segment's files are cached under its id, never reused.
static NEXT_SEGMENT_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Debug)]
pub struct Segment {
    id: u64,
    base_offset: i64,
    log_path: PathBuf,
    /// The `.log` file, held while this is the active segment.
    pinned: Option<FileRef>,
    fs: Arc<dyn Fs>,
    files: Arc<FileCache>,
    size: u32,
    index: OffsetIndex,
    time_index: TimeIndex,
    txn_index: TxnIndex,
    index_interval_bytes: u32,
    bytes_since_last_index_entry: u32,
    /// Largest batch max timestamp, and the last offset of the batch that has it.
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    /// The first batch's max timestamp: what `segment.ms` rolling is measured from.
    rolling_based_timestamp: Option<i64>,
    created_ms: i64,
    next_offset: i64,
}

/// The batches a timestamp lookup may need: the first late enough, and, when that
/// one straddles the log start, the next one (see `find_batch_by_timestamp`).
#[derive(Debug, Clone, Copy)]
pub struct BatchCandidates {
    pub first: (u32, BatchHeader),
    pub fallback: Option<(u32, BatchHeader)>,
}

impl Segment {
    /// Creates a new, empty segment (replacing any files of the same name); it is
    /// active: its file stays open.
    pub fn create(
        env: &LogEnv,
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u32,
        max_index_entries: usize,
        max_time_entries: usize,
    ) -> io::Result<Segment> {
        let fs = &env.fs;
        let log_path = dir.join(file_name(base_offset, "log"));
        let log = fs.open(&log_path, OpenMode::Truncate)?;
        let index = OffsetIndex::create_empty(
            &**fs,
            &dir.join(file_name(base_offset, "index")),
            base_offset,
            max_index_entries,
        )?;
        let time_index = TimeIndex::create_empty(
            &**fs,
            &dir.join(file_name(base_offset, "timeindex")),
            base_offset,
            max_time_entries,
        )?;
        let txn_path = dir.join(file_name(base_offset, "txnindex"));
        remove_if_exists(&**fs, &txn_path)?;
        let txn_index = TxnIndex::open(&**fs, &txn_path)?;
        Ok(Segment {
            id: NEXT_SEGMENT_ID.fetch_add(1, Ordering::Relaxed),
            base_offset,
            log_path,
            pinned: Some(log),
            fs: Arc::clone(fs),
            files: Arc::clone(&env.files),
            size: 0,
            index,
            time_index,
            txn_index,
            index_interval_bytes,
            bytes_since_last_index_entry: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            rolling_based_timestamp: None,
            created_ms: env.clock.now_ms(),
            next_offset: base_offset,
        })
    }

    /// Opens an existing segment. With `recover`, or when an index fails its sanity
    /// check, the whole log file is re-validated and the indexes rebuilt; otherwise
    /// the indexes are trusted and only the tail after the last index entry is read.
    /// The segment comes back inactive (its file closed); the log makes its last
    /// segment active.
    pub fn open(
        env: &LogEnv,
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u32,
        max_index_entries: usize,
        max_time_entries: usize,
        recover: bool,
    ) -> io::Result<(Segment, Option<RecoveryOutcome>)> {
        let fs = &env.fs;
        let log_path = dir.join(file_name(base_offset, "log"));
        let log = fs.open(&log_path, OpenMode::Create)?;
        let file_len = log.size()?;
        let index_path = dir.join(file_name(base_offset, "index"));
        let time_path = dir.join(file_name(base_offset, "timeindex"));
        let indexes = if recover || !fs.exists(&index_path)? || !fs.exists(&time_path)? {
            None
        } else {
            match (
                OffsetIndex::open(&**fs, &index_path, base_offset, max_index_entries),
                TimeIndex::open(&**fs, &time_path, base_offset, max_time_entries),
            ) {
                (Ok(index), Ok(time_index)) => Some((index, time_index)),
                (Err(e), _) | (_, Err(e)) => {
                    let reason = match e {
                        IndexError::Corrupt { reason, .. } => reason,
                        IndexError::Io { source, .. } => source.to_string(),
                    };
                    tracing::warn!(segment = %log_path.display(), %reason, "index failed its sanity check; rebuilding from the log");
                    None
                }
            }
        };
        let needs_recovery = indexes.is_none();
        let (index, time_index) = match indexes {
            Some(pair) => pair,
            None => (
                OffsetIndex::create_empty(&**fs, &index_path, base_offset, max_index_entries)?,
                TimeIndex::create_empty(&**fs, &time_path, base_offset, max_time_entries)?,
            ),
        };
        let size = u32::try_from(file_len).unwrap_or(u32::MAX);
        let txn_index = TxnIndex::open(&**fs, &dir.join(file_name(base_offset, "txnindex")))?;
        let mut segment = Segment {
            id: NEXT_SEGMENT_ID.fetch_add(1, Ordering::Relaxed),
            base_offset,
            log_path,
            // Held while loading; closed before the segment is handed out.
            pinned: Some(log),
            fs: Arc::clone(fs),
            files: Arc::clone(&env.files),
            size,
            index,
            time_index,
            txn_index,
            index_interval_bytes,
            bytes_since_last_index_entry: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            rolling_based_timestamp: None,
            created_ms: env.clock.now_ms(),
            next_offset: base_offset,
        };
        let outcome = if needs_recovery {
            let outcome = segment.recover(file_len)?;
            segment.write_out_indexes()?;
            Some(outcome)
        } else {
            segment.load_tail_state(file_len)?;
            None
        };
        segment.pinned = None;
        Ok((segment, outcome))
    }

    /// The `.log` file: the held one of the active segment, else from the cache.
    pub fn file(&self) -> io::Result<FileRef> {
        match &self.pinned {
            Some(file) => Ok(Arc::clone(file)),
            None => self.files.get_or_open(self.id, &self.log_path, &*self.fs),
        }
    }

    /// A handle that opens the segment's `.log` through the cache when it is read
    /// (the cleaner reads many segments, one at a time, outside the log's lock).
    pub fn reader(&self) -> SegmentReader {
        SegmentReader {
            id: self.id,
            path: self.log_path.clone(),
            fs: Arc::clone(&self.fs),
            files: Arc::clone(&self.files),
        }
    }

    /// Holds the file open: this became the active segment.
    pub fn make_active(&mut self) -> io::Result<()> {
        if self.pinned.is_none() {
            self.pinned = Some(self.fs.open(&self.log_path, OpenMode::Existing)?);
            self.files.remove(self.id);
        }
        Ok(())
    }

    /// Writes the entries the index files lack (no fsync).
    pub fn write_out_indexes(&mut self) -> io::Result<()> {
        let fs = &*self.fs;
        self.index.write_out(fs)?;
        self.time_index.write_out(fs)?;
        self.txn_index.write_out(fs)
    }

    /// With trusted indexes: finds the next offset and the max timestamp by reading
    /// the batches after the last index entries. A tail that does not parse means
    /// the file is not what the indexes say; fall back to full recovery.
    fn load_tail_state(&mut self, file_len: u64) -> io::Result<()> {
        if let Some(entry) = self.time_index.last_entry() {
            self.max_timestamp = entry.timestamp;
            self.offset_of_max_timestamp = entry.offset;
        }
        let last_entry = self.index.last_entry();
        let start = last_entry.position;
        let mut tail = Vec::new();
        let scanned = self.scan_headers(start, |position, header| {
            tail.push((position, *header));
            ControlFlow::Continue(())
        });
        let end = tail
            .last()
            .map(|(p, h)| u64::from(*p) + h.size() as u64)
            .unwrap_or(u64::from(start));
        // The last entry names a batch that holds its offset: an entry at the end
        // of the file (one a power loss brought back past a log cut at recovery)
        // would make up offsets the log does not hold.
        let entry_in_log = self.index.is_empty()
            || tail
                .first()
                .is_some_and(|(_, h)| h.last_offset() >= last_entry.offset);
        if scanned.is_err() || end != file_len || !entry_in_log {
            tracing::warn!(segment = %self.log_path.display(), end, file_len, "segment tail does not match its indexes; recovering");
            self.recover(file_len)?;
            return Ok(());
        }
        for (_, header) in &tail {
            self.observe_timestamp(header);
        }
        self.next_offset = match tail.last() {
            Some((_, header)) => header.next_offset(),
            None => self.index.last_entry().offset.max(self.base_offset),
        };
        let mut first_ts = None;
        self.scan_headers(0, |_, header| {
            first_ts = Some(header.max_timestamp);
            ControlFlow::Break(())
        })?;
        self.rolling_based_timestamp = first_ts;
        Ok(())
    }

    fn observe_timestamp(&mut self, header: &BatchHeader) {
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.last_offset();
        }
    }

    /// Re-validates every batch from the start of the file, rebuilds both indexes,
    /// and cuts the file at the first invalid or incomplete batch.
    pub fn recover(&mut self, file_len: u64) -> io::Result<RecoveryOutcome> {
        let log = self.file()?;
        self.index.truncate_to(self.base_offset);
        self.time_index.truncate_to(self.base_offset);
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.bytes_since_last_index_entry = 0;
        self.rolling_based_timestamp = None;
        self.next_offset = self.base_offset;
        let mut position: u64 = 0;
        let mut batches = 0usize;
        let mut buffer = Vec::new();
        let limit = file_len.min(u64::from(u32::MAX));
        while position + HEADER_LEN as u64 <= limit {
            let mut head = [0u8; HEADER_LEN];
            log.read_exact_at(&mut head, position)?;
            let header = match BatchHeader::parse(&head) {
                Ok(header) => header,
                Err(e) => {
                    tracing::warn!(segment = %self.log_path.display(), position, error = %e, "invalid batch header during recovery");
                    break;
                }
            };
            let size = header.size() as u64;
            if position + size > limit {
                tracing::warn!(segment = %self.log_path.display(), position, size, file_len, "torn batch at the end of the segment");
                break;
            }
            if header.base_offset < self.next_offset
                || header.last_offset_delta < 0
                || header
                    .last_offset()
                    .checked_sub(self.base_offset)
                    .is_none_or(|d| d > i64::from(u32::MAX))
            {
                tracing::warn!(segment = %self.log_path.display(), position, base_offset = header.base_offset, expected_at_least = self.next_offset, "batch offsets out of order during recovery");
                break;
            }
            buffer.resize(size as usize, 0);
            log.read_exact_at(&mut buffer, position)?;
            if let Err(e) = batch::verify_crc(&buffer) {
                tracing::warn!(segment = %self.log_path.display(), position, error = %e, "corrupt batch during recovery");
                break;
            }
            self.index_batch(position as u32, &BatchInfo::from(&header));
            self.next_offset = header.next_offset();
            position += size;
            batches += 1;
        }
        self.size = position as u32;
        // Aborts whose markers did not survive are not aborts: the replay of the
        // log re-indexes those that did.
        self.txn_index.truncate_to(self.next_offset);
        let truncated_bytes = file_len - position;
        if truncated_bytes > 0 {
            tracing::warn!(segment = %self.log_path.display(), valid_bytes = position, truncated_bytes, "truncating invalid tail of segment");
            log.set_len(position)?;
            // Durable at once: the recovery point may already cover what stays, and
            // a later crash must not find the invalid tail again.
            log.sync_data()?;
        }
        Ok(RecoveryOutcome {
            valid_bytes: position as u32,
            truncated_bytes,
            batches,
        })
    }

    /// Bookkeeping for one batch written at `position`: Kafka's indexing rule.
    fn index_batch(&mut self, position: u32, info: &BatchInfo) {
        if self.rolling_based_timestamp.is_none() {
            self.rolling_based_timestamp = Some(info.max_timestamp);
        }
        if info.max_timestamp > self.max_timestamp {
            self.max_timestamp = info.max_timestamp;
            self.offset_of_max_timestamp = info.last_offset;
        }
        if self.bytes_since_last_index_entry > self.index_interval_bytes {
            if !self.index.is_full() {
                self.index.append(info.last_offset, position);
            }
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp, false);
            self.bytes_since_last_index_entry = 0;
        }
        self.bytes_since_last_index_entry =
            self.bytes_since_last_index_entry.saturating_add(info.size);
    }

    /// Appends whole batches (already validated, offsets assigned) at the end.
    /// `batches` describes each batch in `bytes`, in order.
    pub fn append(&mut self, bytes: &[u8], batches: &[BatchInfo]) -> io::Result<()> {
        let total: u64 = batches.iter().map(|b| u64::from(b.size)).sum();
        assert_eq!(
            total,
            bytes.len() as u64,
            "batch infos must cover the bytes exactly"
        );
        assert!(
            u64::from(self.size) + total <= u64::from(u32::MAX),
            "segment {} would exceed 4 GiB",
            self.base_offset
        );
        let first = batches.first().expect("append of no batches");
        assert!(
            first.base_offset >= self.next_offset,
            "offsets must grow: {} after next offset {}",
            first.base_offset,
            self.next_offset
        );
        let log = self
            .pinned
            .as_ref()
            .expect("only the active segment is appended to");
        log.write_all_at(bytes, u64::from(self.size))?;
        let mut position = self.size;
        for info in batches {
            assert!(
                info.base_offset >= self.next_offset,
                "offsets must grow within an append"
            );
            self.index_batch(position, info);
            position += info.size;
            self.next_offset = info.last_offset + 1;
        }
        self.size = position;
        Ok(())
    }

    /// Reads the headers of the batches from `position` to the end, in order, until
    /// `visit` breaks. A header that does not parse is an error.
    pub fn scan_headers<F>(&self, position: u32, mut visit: F) -> io::Result<()>
    where
        F: FnMut(u32, &BatchHeader) -> ControlFlow<()>,
    {
        let end = self.size_on_disk_hint();
        let mut position = u64::from(position);
        let mut head = [0u8; HEADER_LEN];
        if position + HEADER_LEN as u64 > end && position == end {
            return Ok(());
        }
        if position > end {
            // An index entry a power loss brought back past the end of a log that
            // recovery cut: the index is not what the log holds.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("position {position} is past the end {end}"),
            ));
        }
        let log = self.file()?;
        while position + HEADER_LEN as u64 <= end {
            log.read_exact_at(&mut head, position)?;
            let header = BatchHeader::parse(&head)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if position + header.size() as u64 > end {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("batch at {position} runs past the end {end}"),
                ));
            }
            if visit(position as u32, &header).is_break() {
                return Ok(());
            }
            position += header.size() as u64;
        }
        if position > end {
            // An index entry past the end of the log (a stale index after a crash).
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("position {position} is past the end {end}"),
            ));
        }
        if position != end {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} stray bytes at the end", end - position),
            ));
        }
        Ok(())
    }

    /// The byte length to trust: `size` once known. During open, before the tail is
    /// read, the file length.
    fn size_on_disk_hint(&self) -> u64 {
        u64::from(self.size)
    }

    /// The position and header of the first batch whose last offset is at or above
    /// `target`, searching from the index; `None` past the end.
    pub fn translate_offset(&self, target: i64) -> io::Result<Option<(u32, BatchHeader)>> {
        let start = self.index.lookup(target).position;
        let mut found = None;
        self.scan_headers(start, |position, header| {
            if header.last_offset() >= target {
                found = Some((position, *header));
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(found)
    }

    /// The first batch at or after `start_offset` whose max timestamp reaches
    /// `target`, found through the time index.
    ///
    /// A batch that straddles `start_offset` (DeleteRecords moved the log start
    /// into it) may hold its late records only below the start; then the next
    /// batch of this segment late enough is returned too, as the answer's
    /// fallback (Kafka's `findOffsetByTimestamp` walks on to it). That batch lies
    /// wholly above the start, so it always answers.
    pub fn find_batch_by_timestamp(
        &self,
        target: i64,
        start_offset: i64,
    ) -> io::Result<Option<BatchCandidates>> {
        let entry = self.time_index.lookup(target);
        let from_offset = entry.offset.max(start_offset);
        let start = self.index.lookup(from_offset).position;
        let mut found: Option<BatchCandidates> = None;
        self.scan_headers(start, |position, header| {
            if header.max_timestamp < target || header.last_offset() < start_offset {
                return ControlFlow::Continue(());
            }
            match &mut found {
                None => {
                    found = Some(BatchCandidates {
                        first: (position, *header),
                        fallback: None,
                    });
                    if header.base_offset >= start_offset {
                        return ControlFlow::Break(());
                    }
                    ControlFlow::Continue(())
                }
                Some(candidates) => {
                    candidates.fallback = Some((position, *header));
                    ControlFlow::Break(())
                }
            }
        })?;
        Ok(found)
    }

    /// Reads `len` bytes at `position` (below `size`).
    pub fn read_at(&self, position: u32, len: u32) -> io::Result<Vec<u8>> {
        let end = u64::from(position) + u64::from(len);
        assert!(
            end <= u64::from(self.size),
            "read past the end of segment {}",
            self.base_offset
        );
        let mut buffer = vec![0u8; len as usize];
        self.file()?
            .read_exact_at(&mut buffer, u64::from(position))?;
        Ok(buffer)
    }

    /// Removes every batch whose last offset is at or above `offset`; returns the
    /// bytes removed.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<u32> {
        let Some((position, _)) = self.translate_offset(offset)? else {
            return Ok(0);
        };
        let removed = self.size - position;
        self.index.truncate_to(offset);
        self.index.truncate_to_position(position);
        self.time_index.truncate_to(offset);
        self.txn_index.truncate_to(offset);
        self.file()?.set_len(u64::from(position))?;
        self.size = position;
        self.bytes_since_last_index_entry = 0;
        // Re-derive what the removed batches may have changed.
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.next_offset = self.base_offset;
        if let Some(entry) = self.time_index.last_entry() {
            self.max_timestamp = entry.timestamp;
            self.offset_of_max_timestamp = entry.offset;
        }
        let mut last = None;
        let start = self.index.last_entry().position;
        let mut observed = Vec::new();
        self.scan_headers(start, |_, header| {
            observed.push(*header);
            last = Some(*header);
            ControlFlow::Continue(())
        })?;
        for header in &observed {
            self.observe_timestamp(header);
        }
        self.next_offset = match last {
            Some(header) => header.next_offset(),
            None => self.index.last_entry().offset.max(self.base_offset),
        };
        if self.size == 0 {
            self.rolling_based_timestamp = None;
            self.next_offset = self.base_offset;
        }
        Ok(removed)
    }

    /// Called when a newer segment becomes active (or the log closes): records the
    /// final time index entry so the segment's largest timestamp survives a
    /// restart, and writes the indexes out.
    pub fn on_become_inactive(&mut self) -> io::Result<()> {
        if self.max_timestamp >= 0 {
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp, true);
        }
        self.write_out_indexes()
    }

    /// Lets go of the held file (to the cache): a newer segment is active.
    pub fn release_file(&mut self) {
        if let Some(file) = self.pinned.take() {
            self.files.put(self.id, file);
        }
    }

    /// fsyncs the segment: its log and every index.
    pub fn flush(&mut self) -> io::Result<()> {
        for file in self.sync_handles()? {
            file.sync_data()?;
        }
        Ok(())
    }

    /// Aborted transactions whose marker is in this segment.
    pub fn aborted_transactions(&self) -> &[AbortedTxn] {
        self.txn_index.entries()
    }

    /// Records an aborted transaction whose marker is in this segment.
    pub fn append_aborted(&mut self, entry: AbortedTxn) {
        self.txn_index.append(entry)
    }

    /// Writes the indexes out and returns every file with writes to fsync (the
    /// log, and the indexes that changed), for an fsync without the log's lock.
    pub fn sync_handles(&mut self) -> io::Result<Vec<FileRef>> {
        let fs = &*self.fs;
        let mut files = vec![self.file()?];
        files.extend(self.index.prepare_sync(fs)?);
        files.extend(self.time_index.prepare_sync(fs)?);
        files.extend(self.txn_index.prepare_sync(fs)?);
        Ok(files)
    }

    /// Deletes the segment's files.
    pub fn delete_files(&self, fs: &dyn Fs) -> io::Result<()> {
        for path in [
            self.log_path.as_path(),
            self.index.path(),
            self.time_index.path(),
            self.txn_index.path(),
        ] {
            remove_if_exists(fs, path)?;
        }
        Ok(())
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// What time retention measures the segment by: its largest record timestamp,
    /// or the file's modification time when no record has one (Kafka's rule).
    pub fn largest_timestamp(&self) -> i64 {
        if self.max_timestamp >= 0 {
            return self.max_timestamp;
        }
        self.file().and_then(|file| file.modified_ms()).unwrap_or(0)
    }

    pub fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp
    }

    pub fn rolling_based_timestamp(&self) -> Option<i64> {
        self.rolling_based_timestamp
    }

    pub fn created_ms(&self) -> i64 {
        self.created_ms
    }

    pub fn index_is_full(&self) -> bool {
        self.index.is_full() || self.time_index.is_full()
    }

    pub fn index_entries(&self) -> usize {
        self.index.len()
    }

    pub fn last_time_index_entry(&self) -> Option<TimestampOffset> {
        self.time_index.last_entry()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        self.files.remove(self.id);
    }
}
