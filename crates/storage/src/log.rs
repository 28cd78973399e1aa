//! A partition's log: an ordered run of segments in `<topic>-<partition>/`.
//!
//! Offsets:
//! - `log_start_offset`: the first offset a reader may ask for;
//! - `log_end_offset` (LEO): the next offset to assign;
//! - `recovery_point`: everything below it is fsynced, so only segments at or after
//!   it need checking after a crash.
//!
//! Invariants: `log_start_offset <= log_end_offset`; segment base offsets strictly
//! increase; only the last segment (the active one) is appended to; offsets are
//! never reused, so a rolled segment is named by the LEO at the time of the roll.
//!
//! The high watermark and the last stable offset are not the log's business: the
//! replica manager owns them and passes the bound a reader may see into [`Log::read`].

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use protocol::records::batch::{self, BatchHeader, TimestampType, HEADER_LEN};
use protocol::records::decode_records;
use protocol::time::Clock;
use protocol::{Offset, TopicPartition};

use crate::config::{LogConfig, MessageTimestampType};
use crate::error::{AppendError, StorageError};
use crate::leader_epoch::LeaderEpochCache;
use crate::producer_state::{self, ProducerStateManager, SequenceCheck};
use crate::segment::{BatchInfo, Segment};
use crate::validate::{validate_records, Origin};

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogAppendInfo {
    pub first_offset: Offset,
    pub last_offset: Offset,
    /// The broker's time when the topic uses LogAppendTime, else -1.
    pub log_append_time: i64,
    pub max_timestamp: i64,
    pub log_start_offset: Offset,
    pub records: i64,
    pub bytes: usize,
    /// The base offset of the segment that a roll closed, to flush in the background.
    pub rolled_segment: Option<i64>,
    /// The batch was a retry of one already appended: these are its original
    /// offsets and nothing was written.
    pub duplicate: bool,
}

/// Where a fetch's bytes lie: a byte range of one segment file. Reading it is done
/// outside the log's lock with [`ReadSlice::read`].
#[derive(Debug, Clone)]
pub struct ReadSlice {
    file: Arc<File>,
    position: u32,
    /// The reader may not see bytes at or past this position.
    limit: u32,
    /// The size of the first batch, which is returned whole even past `max_bytes`.
    first_batch_size: u32,
    /// The base offset of the first batch (may be below the fetch offset).
    pub first_batch_base_offset: i64,
}

impl ReadSlice {
    /// Reads whole batches from the slice: at least the first batch when
    /// `min_one_batch`, then as many as fit in `max_bytes`. Never cuts a batch.
    pub fn read(&self, max_bytes: usize, min_one_batch: bool) -> io::Result<Bytes> {
        let available = (self.limit - self.position) as usize;
        let first = self.first_batch_size as usize;
        let want = if min_one_batch {
            max_bytes.max(first)
        } else {
            max_bytes
        };
        let want = want.min(available);
        if want < first {
            return Ok(Bytes::new());
        }
        if want >= crate::read_pool::POOLED_MIN {
            // A reused buffer: no zeroing, no fresh pages (read_pool.rs).
            let mut buffer = crate::read_pool::take(want);
            self.file
                .read_exact_at(&mut buffer[..want], u64::from(self.position))?;
            let end = whole_batches(&buffer[..want]);
            return Ok(crate::read_pool::into_bytes(buffer, end));
        }
        // Read into uninitialised capacity: zeroing the buffer first cost a tenth of
        // the broker's fetch CPU (bench/README.md, scenario 3).
        let mut buffer: Vec<u8> = Vec::with_capacity(want);
        while buffer.len() < want {
            let at = u64::from(self.position) + buffer.len() as u64;
            let read =
                rustix::io::pread(&*self.file, rustix::buffer::spare_capacity(&mut buffer), at)?;
            if read == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the segment ends before the slice",
                ));
            }
        }
        // The capacity may exceed `want`: never return bytes past the limit.
        buffer.truncate(want);
        let end = whole_batches(&buffer);
        buffer.truncate(end);
        Ok(Bytes::from(buffer))
    }
}

/// The length of the whole batches at the start of `bytes`.
fn whole_batches(bytes: &[u8]) -> usize {
    let mut end = 0usize;
    while end + batch::LOG_OVERHEAD <= bytes.len() {
        let length = i32::from_be_bytes(bytes[end + 8..end + 12].try_into().expect("4 bytes"));
        let size = batch::LOG_OVERHEAD + length.max(0) as usize;
        if length < 0 || end + size > bytes.len() {
            break;
        }
        end += size;
    }
    end
}

/// What a fetch finds.
#[derive(Debug, Clone)]
pub enum ReadOutcome {
    /// Nothing at or after the offset yet (it is the LEO or the bound).
    Empty,
    Data(ReadSlice),
}

/// How the log was left, as the log manager knows it at start-up.
#[derive(Debug, Clone, Copy)]
pub struct LoadState {
    pub recovery_point: i64,
    pub log_start_offset: i64,
    pub clean_shutdown: bool,
}

impl Default for LoadState {
    fn default() -> Self {
        LoadState {
            recovery_point: 0,
            log_start_offset: 0,
            clean_shutdown: true,
        }
    }
}

#[derive(Debug)]
pub struct Log {
    pub(crate) dir: PathBuf,
    pub(crate) topic_partition: TopicPartition,
    pub(crate) config: Arc<LogConfig>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) segments: BTreeMap<i64, Segment>,
    pub(crate) log_start_offset: i64,
    pub(crate) recovery_point: i64,
    pub(crate) leader_epochs: LeaderEpochCache,
    pub(crate) unflushed_messages: i64,
    pub(crate) last_flush_ms: i64,
    pub(crate) producer_state: ProducerStateManager,
}

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> StorageError {
    let context = context.into();
    move |source| StorageError::Io { context, source }
}

/// Segment base offsets found in `dir`, from `{base_offset:020}.log` names.
fn list_segments(dir: &Path) -> io::Result<Vec<i64>> {
    let mut offsets = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".log") {
            if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
                if let Ok(offset) = stem.parse::<i64>() {
                    offsets.push(offset);
                }
            }
        } else if name.ends_with(".deleted") || name.ends_with(".cleaned") || name.ends_with(".tmp")
        {
            // Leftovers of an interrupted delete or clean: never part of the log.
            let _ = std::fs::remove_file(entry.path());
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

impl Log {
    /// Opens the log in `dir`, creating the directory and a first segment if needed,
    /// and recovering every segment at or after the recovery point unless the
    /// broker shut down cleanly.
    pub fn open(
        dir: &Path,
        topic_partition: TopicPartition,
        config: Arc<LogConfig>,
        clock: Arc<dyn Clock>,
        state: LoadState,
    ) -> Result<Log, StorageError> {
        std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let now = clock.now_ms();
        crate::cleaner::complete_swaps(dir).map_err(io_err(format!(
            "completing interrupted cleaning in {}",
            dir.display()
        )))?;
        let offsets = list_segments(dir).map_err(io_err(format!("listing {}", dir.display())))?;
        let mut segments = BTreeMap::new();
        // The segment holding the recovery point and all after it may hold unflushed bytes.
        let first_unflushed = offsets
            .iter()
            .copied()
            .rfind(|&o| o <= state.recovery_point)
            .unwrap_or(0);
        let mut truncated_at: Option<i64> = None;
        for &base in &offsets {
            if truncated_at.is_some() {
                tracing::warn!(partition = %topic_partition, segment = base, "deleting segment after a corrupt one");
                crate::segment::delete_segment_files(dir, base)
                    .map_err(io_err("removing segment"))?;
                continue;
            }
            let recover = !state.clean_shutdown && base >= first_unflushed;
            let (segment, outcome) = Segment::open(
                dir,
                base,
                config.index_interval_bytes,
                config.max_index_entries(),
                config.max_time_index_entries(),
                recover,
                now,
            )
            .map_err(io_err(format!(
                "opening segment {base} of {topic_partition}"
            )))?;
            if let Some(outcome) = outcome {
                if outcome.truncated_bytes > 0 {
                    tracing::warn!(partition = %topic_partition, segment = base, truncated_bytes = outcome.truncated_bytes, valid_bytes = outcome.valid_bytes, "recovery cut an invalid tail");
                    truncated_at = Some(base);
                }
            }
            if let Some((_, previous)) = segments.iter().next_back() {
                let previous: &Segment = previous;
                if segment.base_offset() < previous.next_offset() {
                    return Err(StorageError::Corrupt(
                        dir.to_path_buf(),
                        format!(
                            "segment {base} starts below the end {} of the segment before it",
                            previous.next_offset()
                        ),
                    ));
                }
            }
            segments.insert(base, segment);
        }
        if segments.is_empty() {
            let base = state.log_start_offset.max(0);
            let segment = Segment::create(
                dir,
                base,
                config.index_interval_bytes,
                config.max_index_entries(),
                config.max_time_index_entries(),
                now,
            )
            .map_err(io_err(format!(
                "creating first segment of {topic_partition}"
            )))?;
            segments.insert(base, segment);
        }
        let mut log = Log {
            dir: dir.to_path_buf(),
            topic_partition,
            config,
            clock,
            segments,
            log_start_offset: 0,
            recovery_point: 0,
            leader_epochs: LeaderEpochCache::load(dir),
            unflushed_messages: 0,
            last_flush_ms: now,
            producer_state: ProducerStateManager::new(0),
        };
        let first_base = *log.segments.keys().next().expect("at least one segment");
        let leo = log.log_end_offset().0;
        log.log_start_offset = state.log_start_offset.max(first_base).min(leo);
        log.recovery_point = state.recovery_point.clamp(log.log_start_offset, leo);
        log.leader_epochs
            .truncate_from_end(leo)
            .map_err(io_err("leader epoch checkpoint"))?;
        log.leader_epochs
            .truncate_from_start(log.log_start_offset)
            .map_err(io_err("leader epoch checkpoint"))?;
        // Producer state: the newest snapshot the log is known to cover, then the
        // batches after it (all of the unflushed part after an unclean stop).
        let trusted_up_to = if state.clean_shutdown {
            leo
        } else {
            first_unflushed.min(leo)
        };
        log.reload_producer_state(trusted_up_to)?;
        Ok(log)
    }

    /// Rebuilds the producer state from the newest snapshot at or below
    /// `max_snapshot_offset` and the log after it, re-indexing aborted transactions
    /// the transaction indexes lack.
    pub(crate) fn reload_producer_state(
        &mut self,
        max_snapshot_offset: i64,
    ) -> Result<(), StorageError> {
        let leo = self.log_end_offset().0;
        producer_state::delete_snapshots_above(&self.dir, leo)
            .map_err(io_err("deleting stale producer snapshots"))?;
        let mut state = producer_state::load_latest_snapshot(&self.dir, max_snapshot_offset)
            .unwrap_or_else(|| ProducerStateManager::new(self.log_start_offset));
        let from = state.map_end_offset().max(self.log_start_offset);
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        for (i, base) in bases.iter().enumerate() {
            let next_base = bases.get(i + 1).copied().unwrap_or(i64::MAX);
            if next_base <= from {
                continue;
            }
            let segment = &self.segments[base];
            let mut batches = Vec::new();
            let start = segment
                .translate_offset(from)
                .map_err(io_err("replaying producer state"))?
                .map(|(p, _)| p)
                .unwrap_or(segment.size());
            segment
                .scan_headers(start, |position, header| {
                    batches.push((position, *header));
                    std::ops::ControlFlow::Continue(())
                })
                .map_err(io_err("replaying producer state"))?;
            let mut aborted_here = Vec::new();
            for (position, header) in batches {
                if header.last_offset() < from || !header.has_producer_id() {
                    continue;
                }
                let control = if header.is_control() {
                    let bytes = segment
                        .read_at(position, header.size() as u32)
                        .map_err(io_err("reading a control batch"))?;
                    producer_state::control_type(&bytes)
                } else {
                    None
                };
                match state.update(&header, control) {
                    Ok(Some(aborted)) => aborted_here.push(aborted),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(partition = %self.topic_partition, error = %e, "inconsistent producer state while replaying")
                    }
                }
            }
            let segment = self.segments.get_mut(base).expect("listed above");
            for aborted in aborted_here {
                segment
                    .append_aborted(aborted)
                    .map_err(io_err("rebuilding the transaction index"))?;
            }
        }
        self.producer_state = state;
        Ok(())
    }

    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producer_state
    }

    /// The first offset of the oldest open transaction: the last stable offset
    /// cannot pass it.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producer_state.first_unstable_offset()
    }

    /// Aborted transactions a read_committed fetch from `start` below `upper` must
    /// report: `(producer id, first offset)`.
    ///
    /// An ABORT marker can lie far past the records it aborts (other transactions
    /// keep the partition busy meanwhile), so the search goes on through later
    /// segments until, as in Kafka, an entry's last stable offset reaches `upper`:
    /// every transaction with records below `upper` had ended by that marker.
    pub fn aborted_transactions(&self, start: i64, upper: i64) -> Vec<(i64, i64)> {
        let first_base = self
            .segments
            .range(..=start)
            .next_back()
            .map(|(b, _)| *b)
            .unwrap_or(i64::MIN);
        let mut out = Vec::new();
        for segment in self.segments.range(first_base..).map(|(_, s)| s) {
            for aborted in segment.aborted_transactions() {
                if aborted.last_offset >= start && aborted.first_offset < upper {
                    out.push((aborted.producer_id, aborted.first_offset));
                }
                if aborted.last_stable_offset >= upper {
                    return out;
                }
            }
        }
        out
    }

    /// Forgets idle producers (`producer.id.expiration.ms`).
    pub fn expire_producers(&mut self, max_idle_ms: i64) -> usize {
        let now = self.clock.now_ms();
        self.producer_state.expire(now, max_idle_ms)
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        &self.topic_partition
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &Arc<LogConfig> {
        &self.config
    }

    /// Replaces the config (topic config changed); applies to future appends.
    pub fn set_config(&mut self, config: Arc<LogConfig>) {
        self.config = config;
    }

    pub(crate) fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has a segment")
    }

    pub(crate) fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has a segment")
    }

    pub fn log_start_offset(&self) -> Offset {
        Offset(self.log_start_offset)
    }

    pub fn log_end_offset(&self) -> Offset {
        Offset(self.active().next_offset())
    }

    /// Whether `offset` falls in the active segment: the bytes most recently
    /// appended, which a caught-up reader asks for and the page cache still holds.
    pub fn in_active_segment(&self, offset: i64) -> bool {
        offset >= self.active().base_offset()
    }

    pub fn recovery_point(&self) -> Offset {
        Offset(self.recovery_point)
    }

    pub fn size_in_bytes(&self) -> u64 {
        self.segments.values().map(|s| u64::from(s.size())).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }

    pub fn leader_epochs(&self) -> &LeaderEpochCache {
        &self.leader_epochs
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.leader_epochs.latest().map(|e| e.epoch)
    }

    /// Validates `records` (a client's produce data for this partition), assigns
    /// offsets from the LEO, stamps `leader_epoch` (and the append time when the
    /// topic uses LogAppendTime) and appends them. All or nothing.
    pub fn append_as_leader(
        &mut self,
        records: &[u8],
        leader_epoch: i32,
        origin: Origin,
    ) -> Result<LogAppendInfo, AppendError> {
        let now = self.clock.now_ms();
        let validated = validate_records(records, &self.config, now, origin)?;
        // Idempotence: a retried batch is answered with its original offsets.
        for batch in validated.iter().filter(|b| b.header.has_producer_id()) {
            let control = if batch.header.is_control() {
                producer_state::control_type(&records[batch.range.clone()])
            } else {
                None
            };
            if let SequenceCheck::Duplicate {
                first_offset,
                last_offset,
            } = self.producer_state.check(&batch.header, control)?
            {
                return Ok(LogAppendInfo {
                    first_offset: Offset(first_offset),
                    last_offset: Offset(last_offset),
                    log_append_time: -1,
                    max_timestamp: batch.header.max_timestamp,
                    log_start_offset: Offset(self.log_start_offset),
                    records: 0,
                    bytes: 0,
                    rolled_segment: None,
                    duplicate: true,
                });
            }
        }
        let log_append_time =
            self.config.message_timestamp_type == MessageTimestampType::LogAppendTime;
        // A topic with its own compression.type gets its batches in that codec,
        // as Kafka recompresses them; "producer" keeps what the client sent.
        let recompressed;
        let (records, validated) = match crate::recompress::target_codec(&self.config) {
            Some(target)
                if validated
                    .iter()
                    .any(|b| b.header.compression().ok() != Some(target)) =>
            {
                recompressed =
                    crate::recompress::recompress(records, &validated, target, &self.config)?;
                let revalidated =
                    validate_records(&recompressed, &self.config, now, Origin::Coordinator)?;
                (&recompressed[..], revalidated)
            }
            _ => (records, validated),
        };
        let mut bytes = records.to_vec();
        let mut infos = Vec::with_capacity(validated.len());
        let mut next = self.log_end_offset().0;
        let first_offset = next;
        let mut max_timestamp = -1i64;
        let mut record_count = 0i64;
        for batch in &validated {
            let piece = &mut bytes[batch.range.clone()];
            let (head, body) = piece.split_at_mut(HEADER_LEN);
            batch::patch_offset_and_epoch(head, next, leader_epoch);
            let batch_max = if log_append_time {
                batch::patch_log_append_time(head, body, now);
                now
            } else {
                if batch.header.max_timestamp != batch.max_timestamp
                    || batch.header.timestamp_type() != TimestampType::CreateTime
                {
                    // Kafka corrects a CreateTime batch's max timestamp to what its
                    // records hold.
                    head[batch::MAX_TIMESTAMP_AT..batch::MAX_TIMESTAMP_AT + 8]
                        .copy_from_slice(&batch.max_timestamp.to_be_bytes());
                    let attributes = batch.header.attributes & !(1 << 3);
                    head[batch::ATTRIBUTES_AT..batch::ATTRIBUTES_AT + 2]
                        .copy_from_slice(&attributes.to_be_bytes());
                    let crc = crc_of(head, body);
                    batch::set_crc(head, crc);
                }
                batch.max_timestamp
            };
            max_timestamp = max_timestamp.max(batch_max);
            let count = i64::from(batch.header.records_count);
            infos.push(BatchInfo {
                base_offset: next,
                last_offset: next + count - 1,
                max_timestamp: batch_max,
                size: batch.range.len() as u32,
            });
            next += count;
            record_count += count;
        }
        let last_offset = next - 1;
        let rolled_segment = self.maybe_roll(bytes.len(), infos[0].max_timestamp, last_offset)?;
        let segment = self.active_mut();
        let size_before = segment.size();
        if let Err(e) = segment.append(&bytes, &infos) {
            // Leave no partial batch behind for a reader or the next append.
            let _ = segment.log_file().set_len(u64::from(size_before));
            return Err(StorageError::io(
                format!("appending to {}", segment.log_path().display()),
                e,
            )
            .into());
        }
        self.leader_epochs
            .assign(leader_epoch, first_offset)
            .map_err(io_err("leader epoch checkpoint"))?;
        for (info, batch) in infos.iter().zip(&validated) {
            if !batch.header.has_producer_id() {
                continue;
            }
            let mut header = batch.header;
            header.base_offset = info.base_offset;
            header.max_timestamp = info.max_timestamp;
            let control = if header.is_control() {
                producer_state::control_type(&records[batch.range.clone()])
            } else {
                None
            };
            if let Some(aborted) = self.producer_state.update(&header, control)? {
                self.active_mut()
                    .append_aborted(aborted)
                    .map_err(io_err("writing the transaction index"))?;
            }
        }
        self.unflushed_messages += record_count;
        Ok(LogAppendInfo {
            first_offset: Offset(first_offset),
            last_offset: Offset(last_offset),
            log_append_time: if log_append_time { now } else { -1 },
            max_timestamp,
            log_start_offset: Offset(self.log_start_offset),
            records: record_count,
            bytes: bytes.len(),
            rolled_segment,
            duplicate: false,
        })
    }

    /// True when `flush.messages` or `flush.ms` asks for an fsync now.
    pub fn flush_due(&self) -> bool {
        let now = self.clock.now_ms();
        self.unflushed_messages >= self.config.flush_messages
            || (self.unflushed_messages > 0
                && now.saturating_sub(self.last_flush_ms) >= self.config.flush_ms)
    }

    /// Rolls when the active segment is full by size, age or index, or when the
    /// new offsets would not fit a relative offset. Returns the closed segment.
    fn maybe_roll(
        &mut self,
        messages_size: usize,
        first_batch_max_timestamp: i64,
        max_offset: i64,
    ) -> Result<Option<i64>, StorageError> {
        let now = self.clock.now_ms();
        let config = Arc::clone(&self.config);
        let segment = self.active();
        let size = u64::from(segment.size());
        let by_size = size > 0 && size + messages_size as u64 > u64::from(config.segment_bytes);
        let waited = match segment.rolling_based_timestamp() {
            Some(first) if first >= 0 => first_batch_max_timestamp.saturating_sub(first),
            _ => now.saturating_sub(segment.created_ms()),
        };
        let jitter = if config.segment_jitter_ms > 0 {
            segment.base_offset().rem_euclid(config.segment_jitter_ms)
        } else {
            0
        };
        let by_time = size > 0 && waited > config.segment_ms - jitter;
        let by_index = segment.index_is_full();
        let by_offset = max_offset - segment.base_offset() > i64::from(i32::MAX);
        if !(by_size || by_time || by_index || by_offset) {
            return Ok(None);
        }
        if size == 0 {
            // An empty segment is already as fresh as a new one would be.
            return Ok(None);
        }
        tracing::debug!(partition = %self.topic_partition, by_size, by_time, by_index, by_offset, "rolling segment");
        self.roll().map(Some)
    }

    /// Starts a new active segment at the LEO; returns the base of the old one.
    pub fn roll(&mut self) -> Result<i64, StorageError> {
        let now = self.clock.now_ms();
        let new_base = self.log_end_offset().0;
        let old = self.active_mut();
        let old_base = old.base_offset();
        if old_base == new_base {
            return Ok(old_base);
        }
        old.on_become_inactive()
            .map_err(io_err("closing segment"))?;
        let segment = Segment::create(
            &self.dir,
            new_base,
            self.config.index_interval_bytes,
            self.config.max_index_entries(),
            self.config.max_time_index_entries(),
            now,
        )
        .map_err(io_err(format!(
            "rolling {} at {new_base}",
            self.topic_partition
        )))?;
        self.segments.insert(new_base, segment);
        // A producer snapshot at every roll bounds the replay after a crash.
        self.producer_state.set_map_end_offset(new_base);
        producer_state::write_snapshot(&self.dir, &self.producer_state, 3)
            .map_err(io_err("writing a producer snapshot"))?;
        Ok(old_base)
    }

    /// Finds what a fetch at `offset` may read: whole batches, the first one being
    /// the batch that holds `offset`, none at or past `max_offset` (the high
    /// watermark or last stable offset, exclusive).
    pub fn read(&self, offset: i64, max_offset: i64) -> Result<ReadOutcome, StorageError> {
        let leo = self.log_end_offset().0;
        if offset < self.log_start_offset || offset > leo {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: leo,
            });
        }
        let bound = max_offset.min(leo);
        if offset >= bound {
            return Ok(ReadOutcome::Empty);
        }
        let start_base = self
            .segments
            .range(..=offset)
            .next_back()
            .map(|(&b, _)| b)
            .unwrap_or(self.log_start_offset);
        for (_, segment) in self.segments.range(start_base..) {
            if segment.base_offset() >= bound {
                break;
            }
            let found = segment
                .translate_offset(offset)
                .map_err(io_err(format!("reading {}", segment.log_path().display())))?;
            let Some((position, header)) = found else {
                continue;
            };
            if header.base_offset >= bound {
                return Ok(ReadOutcome::Empty);
            }
            let limit = if bound < segment.next_offset() {
                match segment.translate_offset(bound).map_err(io_err("reading"))? {
                    Some((bound_position, _)) => bound_position,
                    None => segment.size(),
                }
            } else {
                segment.size()
            };
            if limit <= position {
                return Ok(ReadOutcome::Empty);
            }
            return Ok(ReadOutcome::Data(ReadSlice {
                file: Arc::clone(segment.log_file()),
                position,
                limit,
                first_batch_size: header.size() as u32,
                first_batch_base_offset: header.base_offset,
            }));
        }
        Ok(ReadOutcome::Empty)
    }

    /// Reads whole batches for a fetch at `offset` (a convenience over [`Log::read`]
    /// for callers that hold the log anyway, such as tests and internal topics).
    pub fn read_bytes(
        &self,
        offset: i64,
        max_offset: i64,
        max_bytes: usize,
    ) -> Result<Bytes, StorageError> {
        match self.read(offset, max_offset)? {
            ReadOutcome::Empty => Ok(Bytes::new()),
            ReadOutcome::Data(slice) => slice.read(max_bytes, true).map_err(io_err("reading")),
        }
    }

    /// Kafka's ListOffsets for a timestamp: the first record at or after
    /// `log_start_offset` whose timestamp is at least `target`, with its timestamp
    /// and leader epoch; `None` when no record is that late.
    pub fn offset_for_timestamp(
        &self,
        target: i64,
    ) -> Result<Option<(i64, i64, Option<i32>)>, StorageError> {
        let Some(segment) = self.segments.values().find(|s| s.max_timestamp() >= target) else {
            return Ok(None);
        };
        let Some((position, header)) = segment
            .find_batch_by_timestamp(target, self.log_start_offset)
            .map_err(io_err("searching the time index"))?
        else {
            return Ok(None);
        };
        let bytes = segment
            .read_at(position, header.size() as u32)
            .map_err(io_err("reading"))?;
        let (_, records) = decode_records(&bytes, 64 << 20)
            .map_err(|e| StorageError::Corrupt(self.dir.clone(), e.to_string()))?;
        let found = records
            .iter()
            .find(|r| r.timestamp >= target && r.offset >= self.log_start_offset)
            .map(|r| {
                (
                    r.offset,
                    r.timestamp,
                    self.leader_epochs.epoch_for_offset(r.offset),
                )
            });
        Ok(found)
    }

    /// The record with the largest timestamp (ListOffsets MAX_TIMESTAMP): its
    /// offset, timestamp and leader epoch. The first such record when several tie.
    pub fn offset_of_max_timestamp(&self) -> Result<Option<(i64, i64, Option<i32>)>, StorageError> {
        let mut best: Option<&Segment> = None;
        for segment in self.segments.values() {
            if segment.max_timestamp() >= 0
                && best.is_none_or(|b| segment.max_timestamp() > b.max_timestamp())
            {
                best = Some(segment);
            }
        }
        let Some(segment) = best else { return Ok(None) };
        let target = segment.max_timestamp();
        self.offset_for_timestamp(target)
            .map(|found| found.filter(|&(_, ts, _)| ts == target).or(found))
    }

    /// Removes every record at or above `offset` (a follower truncating to its
    /// leader, or a test). Offsets at or past the LEO change nothing.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        if offset >= self.log_end_offset().0 {
            return Ok(());
        }
        let offset = offset.max(self.log_start_offset);
        let doomed: Vec<i64> = self.segments.range(offset + 1..).map(|(&b, _)| b).collect();
        let first_base = *self
            .segments
            .keys()
            .next()
            .expect("a log always has a segment");
        for base in doomed {
            if base == first_base {
                continue;
            }
            if let Some(segment) = self.segments.remove(&base) {
                segment.delete_files().map_err(io_err("deleting segment"))?;
            }
        }
        let active = self.active_mut();
        active
            .truncate_to(offset)
            .map_err(io_err("truncating segment"))?;
        self.leader_epochs
            .truncate_from_end(offset)
            .map_err(io_err("leader epoch checkpoint"))?;
        let leo = self.log_end_offset().0;
        self.recovery_point = self.recovery_point.min(leo);
        // Truncation removes whole batches; one straddling the log start takes the
        // start back with it (Kafka: `logStartOffset = min(logStartOffset, target)`).
        self.log_start_offset = self.log_start_offset.min(leo);
        self.reload_producer_state(leo)?;
        Ok(())
    }

    /// fsyncs every segment below `up_to` (exclusive offset) and the active one when
    /// `up_to` reaches into it; advances the recovery point.
    pub fn flush(&mut self, up_to: i64) -> Result<(), StorageError> {
        let plan = self.flush_plan(up_to).map_err(io_err("preparing flush"))?;
        plan.sync()
            .map_err(io_err(format!("flushing {}", self.topic_partition)))?;
        self.complete_flush(&plan);
        Ok(())
    }

    /// The files to fsync to make everything below `up_to` durable, so the fsync can
    /// run without holding the log.
    pub fn flush_plan(&self, up_to: i64) -> io::Result<FlushPlan> {
        let up_to = up_to.min(self.log_end_offset().0);
        let mut files = Vec::new();
        if up_to > self.recovery_point {
            for segment in self.segments.values() {
                if segment.next_offset() > self.recovery_point && segment.base_offset() < up_to {
                    files.extend(segment.flush_handles()?);
                }
            }
        }
        Ok(FlushPlan {
            files,
            up_to,
            unflushed_messages: self.unflushed_messages,
        })
    }

    pub fn complete_flush(&mut self, plan: &FlushPlan) {
        if plan.up_to > self.recovery_point {
            self.recovery_point = plan.up_to;
        }
        if plan.up_to >= self.log_end_offset().0 {
            self.unflushed_messages = (self.unflushed_messages - plan.unflushed_messages).max(0);
        }
        self.last_flush_ms = self.clock.now_ms();
    }

    /// Flushes everything and records the active segment's final time index entry.
    pub fn close(&mut self) -> Result<(), StorageError> {
        let leo = self.log_end_offset().0;
        self.active_mut()
            .on_become_inactive()
            .map_err(io_err("closing segment"))?;
        for segment in self.segments.values() {
            segment
                .flush()
                .map_err(io_err(format!("flushing {}", segment.log_path().display())))?;
        }
        self.recovery_point = leo;
        self.unflushed_messages = 0;
        self.producer_state.set_map_end_offset(leo);
        producer_state::write_snapshot(&self.dir, &self.producer_state, 3)
            .map_err(io_err("writing a producer snapshot"))?;
        Ok(())
    }

    /// Deletes the whole log directory.
    pub fn delete(self) -> Result<(), StorageError> {
        std::fs::remove_dir_all(&self.dir)
            .map_err(io_err(format!("deleting {}", self.dir.display())))
    }
}

fn crc_of(head: &[u8], body: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&head[batch::ATTRIBUTES_AT..HEADER_LEN]);
    crc32c::crc32c_append(crc, body)
}

/// Files to fsync for a flush, taken under the log's lock and synced without it.
#[derive(Debug)]
pub struct FlushPlan {
    files: Vec<File>,
    up_to: i64,
    unflushed_messages: i64,
}

impl FlushPlan {
    pub fn sync(&self) -> io::Result<()> {
        for file in &self.files {
            file.sync_data()?;
        }
        Ok(())
    }

    pub fn up_to(&self) -> i64 {
        self.up_to
    }
}

/// Scans every batch header in the log, in order (tests and tools).
pub fn for_each_batch(log: &Log, mut visit: impl FnMut(&BatchHeader)) -> io::Result<()> {
    for segment in log.segments.values() {
        segment.scan_headers(0, |_, header| {
            visit(header);
            ControlFlow::Continue(())
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod txn_read_tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use protocol::records::{BatchBuilder, Compression, NewRecord};
    use protocol::time::{Clock, ManualClock};
    use protocol::TopicPartition;

    use super::{LoadState, Log};
    use crate::config::LogConfig;
    use crate::producer_state::{marker_batch, CONTROL_ABORT};
    use crate::validate::Origin;

    fn txn_batch(pid: i64, seq: i32, value: &[u8]) -> Vec<u8> {
        let mut builder = BatchBuilder::new(Compression::None)
            .producer(pid, 0, seq)
            .transactional(true);
        builder.append(&NewRecord {
            timestamp: 1,
            key: None,
            value: Some(value),
            headers: &[],
        });
        builder.build().unwrap()
    }

    fn open(dir: &std::path::Path, clean_shutdown: bool) -> Log {
        open_with(dir, clean_shutdown, "200")
    }

    fn open_with(dir: &std::path::Path, clean_shutdown: bool, segment_bytes: &str) -> Log {
        let overrides: BTreeMap<String, String> =
            [("segment.bytes".to_string(), segment_bytes.to_string())].into();
        let config = Arc::new(LogConfig::resolve(&overrides, &BTreeMap::new()).unwrap());
        let clock = Arc::new(ManualClock::new(1_700_000_000_000)) as Arc<dyn Clock>;
        Log::open(
            dir,
            TopicPartition::new("t", 0),
            config,
            clock,
            LoadState {
                recovery_point: 0,
                log_start_offset: 0,
                clean_shutdown,
            },
        )
        .unwrap()
    }

    /// Aborts whose markers land segments after the records they abort, with other
    /// transactions open meanwhile; then the same after the transaction indexes are
    /// rebuilt by a replay at start-up.
    #[test]
    fn aborts_far_from_their_records_are_found_before_and_after_a_replay() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), true);
        let mut seqs = BTreeMap::new();
        let mut write = |log: &mut Log, pid: i64| {
            let seq = seqs.entry(pid).or_insert(0);
            let offset = log
                .append_as_leader(&txn_batch(pid, *seq, b"v"), 0, Origin::Client)
                .unwrap()
                .first_offset
                .0;
            *seq += 1;
            offset
        };
        let abort = |log: &mut Log, pid: i64| {
            log.append_as_leader(
                &marker_batch(pid, 0, CONTROL_ABORT, 0, 1),
                0,
                Origin::Coordinator,
            )
            .unwrap()
            .first_offset
            .0
        };
        // E aborts alone (its last stable offset is just past its marker).
        assert_eq!(write(&mut log, 5), 0);
        assert_eq!(abort(&mut log, 5), 1);
        // B opens, C aborts while B is open, D opens, B aborts segments later.
        assert_eq!(write(&mut log, 1), 2);
        assert_eq!(write(&mut log, 2), 3);
        assert_eq!(abort(&mut log, 2), 4);
        assert_eq!(write(&mut log, 3), 5);
        for _ in 0..4 {
            write(&mut log, 1);
        }
        let b_marker = abort(&mut log, 1);
        assert!(
            log.segment_count() >= 3
                && log.segments.range(..=5).next_back().map(|(b, _)| *b) < Some(b_marker)
        );
        assert_eq!(log.first_unstable_offset(), Some(5));
        let expected = vec![(5, 0), (2, 3), (1, 2)];
        let mut found = log.aborted_transactions(0, 5);
        found.sort_by_key(|(pid, _)| std::cmp::Reverse(*pid));
        assert_eq!(found, expected);
        // The transaction indexes are lost; an unclean start rebuilds them by replay.
        drop(log);
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path
                .extension()
                .is_some_and(|e| e == "txnindex" || e == "snapshot")
            {
                std::fs::remove_file(path).unwrap();
            }
        }
        let log = open(dir.path(), false);
        assert_eq!(log.first_unstable_offset(), Some(5));
        let mut found = log.aborted_transactions(0, 5);
        found.sort_by_key(|(pid, _)| std::cmp::Reverse(*pid));
        assert_eq!(found, expected);
    }

    /// A torn write cuts an ABORT marker off the log: recovery drops its
    /// transaction index entry too, so the transaction is open again and a later
    /// marker at the same offset is indexed.
    #[test]
    fn recovery_forgets_the_index_entry_of_a_marker_cut_off_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open_with(dir.path(), true, "100000");
        log.append_as_leader(&txn_batch(1, 0, b"a"), 0, Origin::Client)
            .unwrap();
        log.append_as_leader(&txn_batch(2, 0, b"b"), 0, Origin::Client)
            .unwrap();
        let marker = marker_batch(1, 0, CONTROL_ABORT, 0, 1);
        assert_eq!(
            log.append_as_leader(&marker, 0, Origin::Coordinator)
                .unwrap()
                .first_offset
                .0,
            2
        );
        assert_eq!(log.aborted_transactions(0, 3), vec![(1, 0)]);
        drop(log);
        let segment = dir.path().join(crate::segment::file_name(0, "log"));
        let len = std::fs::metadata(&segment).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&segment)
            .unwrap()
            .set_len(len - 10)
            .unwrap();
        let mut log = open_with(dir.path(), false, "100000");
        assert_eq!(log.log_end_offset().0, 2);
        assert_eq!(log.first_unstable_offset(), Some(0));
        assert_eq!(log.aborted_transactions(0, 2), vec![]);
        log.append_as_leader(
            &marker_batch(2, 0, CONTROL_ABORT, 0, 1),
            0,
            Origin::Coordinator,
        )
        .unwrap();
        assert_eq!(log.aborted_transactions(0, 3), vec![(2, 1)]);
    }
}
