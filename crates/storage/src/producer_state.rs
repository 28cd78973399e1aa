//! Producer state of one partition: what makes produce idempotent and
//! transactional (KIP-98).
//!
//! For each producer id: its epoch, the metadata of its last five batches (first
//! and last sequence, first and last offset), the coordinator epoch of its last
//! transaction marker, and the first offset of its open transaction, if any.
//!
//! Rules for a batch with a producer id, checked before anything is written:
//! - an older epoch than the producer's: INVALID_PRODUCER_EPOCH;
//! - a newer epoch: the sequence must start at 0 (a bumped producer starts over);
//! - the same epoch: a batch equal to one of the last five is a duplicate (the
//!   append is skipped and the original offsets answered, error NONE); otherwise
//!   the first sequence must follow the last one (wrapping at `i32::MAX`), else
//!   OUT_OF_ORDER_SEQUENCE_NUMBER;
//! - a producer with no state (new, or expired) may start at any sequence;
//! - a non-transactional batch while the producer has a transaction open:
//!   INVALID_TXN_STATE.
//!
//! Transactions: a producer's first transactional batch opens its transaction at
//! that batch's offset. A COMMIT or ABORT control batch (written by the
//! coordinator) closes it; an abort is recorded in the transaction index so
//! read_committed fetches can skip it. The last stable offset (LSO) is the first
//! offset of the oldest open transaction (or the high watermark).
//!
//! Snapshots `{offset:020}.snapshot` (Kafka's v1 format) hold the state at an
//! offset; at start-up the newest usable one is loaded and the log after it
//! replayed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};

use bytes::{Buf, BufMut, BytesMut};
use protocol::records::BatchHeader;

use crate::fs::{write_atomically, Fs};
use crate::validate::Origin;

/// How many recent batches per producer are remembered for duplicate detection.
pub const MAX_BATCHES_PER_PRODUCER: usize = 5;

/// Control record types (the key of a control record).
pub const CONTROL_ABORT: i16 = protocol::records::control::ABORT;
pub const CONTROL_COMMIT: i16 = protocol::records::control::COMMIT;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub batches: VecDeque<BatchMetadata>,
    pub coordinator_epoch: i32,
    pub current_txn_first_offset: Option<i64>,
    pub last_timestamp: i64,
}

impl ProducerEntry {
    fn new(producer_id: i64, producer_epoch: i16) -> ProducerEntry {
        ProducerEntry {
            producer_id,
            producer_epoch,
            batches: VecDeque::new(),
            coordinator_epoch: -1,
            current_txn_first_offset: None,
            last_timestamp: -1,
        }
    }

    pub fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }
}

/// An aborted transaction as the transaction index stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

/// Why a producer's batch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    #[error("producer {producer_id}: epoch {epoch} is older than the current {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error("producer {producer_id}: sequence {found} where {expected} was expected")]
    OutOfOrderSequence {
        producer_id: i64,
        found: i32,
        expected: i32,
    },
    #[error("producer {producer_id}: {reason}")]
    InvalidTxnState { producer_id: i64, reason: String },
    #[error("producer {producer_id}: coordinator epoch {epoch} is older than {current}")]
    CoordinatorFenced {
        producer_id: i64,
        epoch: i32,
        current: i32,
    },
}

/// The outcome of checking a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Accept,
    /// Already appended: answer these offsets, append nothing.
    Duplicate { first_offset: i64, last_offset: i64 },
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

fn last_seq_of(header: &BatchHeader) -> i32 {
    let span = header.last_offset_delta;
    if header.base_sequence > i32::MAX - span {
        // Sequences wrap after i32::MAX.
        span - (i32::MAX - header.base_sequence) - 1
    } else {
        header.base_sequence + span
    }
}

#[derive(Debug, Default)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions by first offset.
    ongoing: BTreeMap<i64, i64>,
    /// The offset up to which the state reflects the log.
    map_end_offset: i64,
}

impl ProducerStateManager {
    pub fn new(map_end_offset: i64) -> ProducerStateManager {
        ProducerStateManager {
            producers: HashMap::new(),
            ongoing: BTreeMap::new(),
            map_end_offset,
        }
    }

    pub fn map_end_offset(&self) -> i64 {
        self.map_end_offset
    }

    /// The state covers the log up to `offset` (batches without a producer id
    /// change nothing, so the owner moves this forward before a snapshot).
    pub fn set_map_end_offset(&mut self, offset: i64) {
        self.map_end_offset = self.map_end_offset.max(offset);
    }

    pub fn producers(&self) -> impl Iterator<Item = &ProducerEntry> {
        self.producers.values()
    }

    pub fn producer(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// The first offset of the oldest open transaction.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// Open transactions: `(first offset, producer id)`.
    pub fn ongoing_transactions(&self) -> Vec<(i64, i64)> {
        self.ongoing.iter().map(|(o, p)| (*o, *p)).collect()
    }

    /// Checks a batch with a producer id before it is written. `control` is the
    /// control record's type and coordinator epoch for a transaction marker.
    pub fn check(
        &self,
        header: &BatchHeader,
        control: Option<(i16, i32)>,
    ) -> Result<SequenceCheck, ProducerError> {
        let producer_id = header.producer_id;
        let Some(entry) = self.producers.get(&producer_id) else {
            return Ok(SequenceCheck::Accept);
        };
        if let Some((_, coordinator_epoch)) = control {
            // Kafka's appendEndTxnMarker: a marker from an older producer epoch is
            // refused (a fenced coordinator or a stale admin abort)...
            if header.producer_epoch < entry.producer_epoch {
                return Err(ProducerError::InvalidProducerEpoch {
                    producer_id,
                    epoch: header.producer_epoch,
                    current: entry.producer_epoch,
                });
            }
            // ...and so is one from an older coordinator epoch.
            if coordinator_epoch < entry.coordinator_epoch {
                return Err(ProducerError::CoordinatorFenced {
                    producer_id,
                    epoch: coordinator_epoch,
                    current: entry.coordinator_epoch,
                });
            }
            return Ok(SequenceCheck::Accept);
        }
        if header.base_sequence < 0 {
            // Written by a coordinator on the producer's behalf (transactional
            // offset commits): no sequence to check.
            return Ok(SequenceCheck::Accept);
        }
        let epoch = header.producer_epoch;
        if epoch < entry.producer_epoch {
            return Err(ProducerError::InvalidProducerEpoch {
                producer_id,
                epoch,
                current: entry.producer_epoch,
            });
        }
        if !header.is_transactional()
            && entry.current_txn_first_offset.is_some()
            && epoch == entry.producer_epoch
        {
            return Err(ProducerError::InvalidTxnState {
                producer_id,
                reason: "a non-transactional batch while a transaction is open".into(),
            });
        }
        let first_seq = header.base_sequence;
        if epoch > entry.producer_epoch {
            if first_seq != 0 {
                return Err(ProducerError::OutOfOrderSequence {
                    producer_id,
                    found: first_seq,
                    expected: 0,
                });
            }
            return Ok(SequenceCheck::Accept);
        }
        let last_seq = last_seq_of(header);
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return Ok(SequenceCheck::Duplicate {
                first_offset: dup.first_offset,
                last_offset: dup.last_offset,
            });
        }
        match entry.last_seq() {
            None => Ok(SequenceCheck::Accept),
            Some(last) if first_seq == next_seq(last) => Ok(SequenceCheck::Accept),
            Some(last) => Err(ProducerError::OutOfOrderSequence {
                producer_id,
                found: first_seq,
                expected: next_seq(last),
            }),
        }
    }

    /// Records a batch this broker appended as leader (checked first with
    /// [`ProducerStateManager::check`]). Control batches end transactions; returns
    /// the aborted transaction to index, if any.
    pub fn update(
        &mut self,
        header: &BatchHeader,
        control_type: Option<(i16, i32)>,
    ) -> Result<Option<AbortedTxn>, ProducerError> {
        self.update_from(Origin::Client, header, control_type)
    }

    /// Records a batch appended by `origin`. A replicated batch (and a batch
    /// replayed from the log at start-up or after a truncation, which Kafka also
    /// treats as replicated) was validated by the leader that wrote it: nothing
    /// here refuses it, as Kafka's `ProducerAppendInfo` with origin REPLICATION
    /// only logs an older producer or coordinator epoch and takes it as it is.
    pub fn update_from(
        &mut self,
        origin: Origin,
        header: &BatchHeader,
        control_type: Option<(i16, i32)>,
    ) -> Result<Option<AbortedTxn>, ProducerError> {
        self.map_end_offset = self.map_end_offset.max(header.next_offset());
        if !header.has_producer_id() {
            return Ok(None);
        }
        let replicated = origin == Origin::Replication;
        if header.is_control() && control_type.is_none() {
            // A control batch with no record: the cleaner removed its whole
            // transaction, so there is nothing to close (Kafka's
            // `ProducerAppendInfo.append`).
            return Ok(None);
        }
        let producer_id = header.producer_id;
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry::new(producer_id, header.producer_epoch));
        let epoch_changed = if replicated {
            header.producer_epoch != entry.producer_epoch
        } else {
            header.producer_epoch > entry.producer_epoch
        };
        if epoch_changed {
            if header.producer_epoch < entry.producer_epoch {
                tracing::warn!(
                    producer_id,
                    epoch = header.producer_epoch,
                    current = entry.producer_epoch,
                    offset = header.base_offset,
                    "a replicated batch carries an older producer epoch"
                );
            }
            // A bumped epoch starts a fresh sequence history.
            entry.producer_epoch = header.producer_epoch;
            entry.batches.clear();
        }
        entry.last_timestamp = entry.last_timestamp.max(header.max_timestamp);
        if let Some((kind, coordinator_epoch)) = control_type {
            if coordinator_epoch < entry.coordinator_epoch {
                if !replicated {
                    return Err(ProducerError::CoordinatorFenced {
                        producer_id,
                        epoch: coordinator_epoch,
                        current: entry.coordinator_epoch,
                    });
                }
                tracing::info!(
                    producer_id,
                    epoch = coordinator_epoch,
                    current = entry.coordinator_epoch,
                    offset = header.base_offset,
                    "a replicated marker carries an older coordinator epoch"
                );
            }
            entry.coordinator_epoch = coordinator_epoch;
            let Some(first_offset) = entry.current_txn_first_offset.take() else {
                // A marker for a transaction with no data here: nothing to close.
                return Ok(None);
            };
            self.ongoing.remove(&first_offset);
            if kind == CONTROL_ABORT {
                // Kafka's: the first offset of the oldest transaction still open, else
                // just past the marker. Not the log end: replayed at start-up, a
                // later end would claim transactions begun after this marker had
                // ended too, and read_committed fetches would miss their aborts.
                let lso = self.first_unstable_offset().unwrap_or(header.next_offset());
                return Ok(Some(AbortedTxn {
                    producer_id,
                    first_offset,
                    last_offset: header.last_offset(),
                    last_stable_offset: lso,
                }));
            }
            return Ok(None);
        }
        if header.base_sequence >= 0 {
            entry.batches.push_back(BatchMetadata {
                first_seq: header.base_sequence,
                last_seq: last_seq_of(header),
                first_offset: header.base_offset,
                last_offset: header.last_offset(),
                timestamp: header.max_timestamp,
            });
            while entry.batches.len() > MAX_BATCHES_PER_PRODUCER {
                entry.batches.pop_front();
            }
        }
        if header.is_transactional() && entry.current_txn_first_offset.is_none() {
            entry.current_txn_first_offset = Some(header.base_offset);
            self.ongoing.insert(header.base_offset, producer_id);
        }
        Ok(None)
    }

    /// Forgets producers idle longer than `max_idle_ms` with no open transaction.
    pub fn expire(&mut self, now_ms: i64, max_idle_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(e.last_timestamp) < max_idle_ms
        });
        before - self.producers.len()
    }

    /// Drops state of offsets at or past `offset` (the log was truncated): the
    /// caller reloads from a snapshot and replays instead when exactness matters.
    pub fn truncate_and_reload(&mut self, snapshot: ProducerStateManager) {
        *self = snapshot;
    }

    // ---- snapshots ----

    /// Encodes the state in Kafka's producer snapshot format (v1).
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut body = BytesMut::new();
        let mut entries: Vec<&ProducerEntry> = self.producers.values().collect();
        entries.sort_by_key(|e| e.producer_id);
        body.put_i32(entries.len() as i32);
        for e in entries {
            let last = e.batches.back();
            body.put_i64(e.producer_id);
            body.put_i16(e.producer_epoch);
            body.put_i32(last.map(|b| b.last_seq).unwrap_or(-1));
            body.put_i64(last.map(|b| b.last_offset).unwrap_or(-1));
            body.put_i32(
                last.map(|b| (b.last_offset - b.first_offset) as i32)
                    .unwrap_or(0),
            );
            body.put_i64(e.last_timestamp);
            body.put_i32(e.coordinator_epoch);
            body.put_i64(e.current_txn_first_offset.unwrap_or(-1));
        }
        let crc = crc32c::crc32c(&body);
        let mut out = Vec::with_capacity(6 + body.len());
        out.extend_from_slice(&1i16.to_be_bytes());
        out.extend_from_slice(&crc.to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a snapshot taken at `offset`.
    pub fn decode_snapshot(bytes: &[u8], offset: i64) -> Option<ProducerStateManager> {
        if bytes.len() < 10 {
            return None;
        }
        let mut buf = bytes;
        let version = buf.get_i16();
        let crc = buf.get_u32();
        if version != 1 || crc32c::crc32c(buf) != crc {
            return None;
        }
        let count = buf.get_i32();
        const ENTRY: usize = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8;
        if count < 0 || buf.remaining() != count as usize * ENTRY {
            return None;
        }
        let mut state = ProducerStateManager::new(offset);
        for _ in 0..count {
            let producer_id = buf.get_i64();
            let producer_epoch = buf.get_i16();
            let last_seq = buf.get_i32();
            let last_offset = buf.get_i64();
            let offset_delta = buf.get_i32();
            let timestamp = buf.get_i64();
            let coordinator_epoch = buf.get_i32();
            let txn_first = buf.get_i64();
            let mut entry = ProducerEntry::new(producer_id, producer_epoch);
            entry.coordinator_epoch = coordinator_epoch;
            entry.last_timestamp = timestamp;
            if last_seq >= 0 {
                let first_seq = if last_seq >= offset_delta {
                    last_seq - offset_delta
                } else {
                    i32::MAX - (offset_delta - last_seq) + 1
                };
                entry.batches.push_back(BatchMetadata {
                    first_seq,
                    last_seq,
                    first_offset: last_offset - i64::from(offset_delta),
                    last_offset,
                    timestamp,
                });
            }
            if txn_first >= 0 {
                entry.current_txn_first_offset = Some(txn_first);
                state.ongoing.insert(txn_first, producer_id);
            }
            state.producers.insert(producer_id, entry);
        }
        Some(state)
    }
}

/// The type (ABORT 0, COMMIT 1) and coordinator epoch of a control batch's record
/// ([`protocol::records::control`]); `None` for any other batch or one that does not
/// decode.
pub fn control_type(batch: &[u8]) -> Option<(i16, i32)> {
    let header = BatchHeader::parse(batch).ok()?;
    let record = protocol::records::control_record(&header, batch, 1 << 16).ok()??;
    Some((record.kind, record.coordinator_epoch))
}

/// Builds a control batch (transaction marker) for `producer_id`.
pub fn marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    kind: i16,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Vec<u8> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let mut builder = protocol::records::BatchBuilder::new(protocol::records::Compression::None)
        .producer(producer_id, producer_epoch, -1)
        .transactional(true)
        .control(true);
    builder.append(&protocol::records::NewRecord {
        timestamp,
        key: Some(&key),
        value: Some(&value),
        headers: &[],
    });
    builder
        .build()
        .expect("an uncompressed batch always builds")
}

/// The snapshot file for `offset` in `dir`.
pub fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}.snapshot"))
}

/// Snapshot offsets present in `dir`, ascending.
pub fn list_snapshots(fs: &dyn Fs, dir: &Path) -> io::Result<Vec<i64>> {
    let mut offsets = Vec::new();
    for entry in fs.list_dir(dir)? {
        if let Some(stem) = entry.name.strip_suffix(".snapshot") {
            if let Ok(offset) = stem.parse::<i64>() {
                offsets.push(offset);
            }
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

/// Writes a snapshot of `state` at its map end offset; keeps the newest `keep`.
pub fn write_snapshot(
    fs: &dyn Fs,
    dir: &Path,
    state: &ProducerStateManager,
    keep: usize,
    sync: SnapshotSync,
) -> io::Result<PathBuf> {
    let path = snapshot_path(dir, state.map_end_offset());
    let contents = state.encode_snapshot();
    match sync {
        SnapshotSync::Now => write_atomically(fs, &path, &contents)?,
        SnapshotSync::Later => crate::fs::write_replacing(fs, &path, &contents)?,
    }
    let offsets = list_snapshots(fs, dir)?;
    if offsets.len() > keep {
        for offset in &offsets[..offsets.len() - keep] {
            let _ = fs.remove_file(&snapshot_path(dir, *offset));
        }
    }
    Ok(path)
}

/// Whether [`write_snapshot`] fsyncs the snapshot (and its directory) itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotSync {
    /// Durable before the call returns (a clean shutdown).
    Now,
    /// Written to the page cache only; the log's next flush fsyncs it before the
    /// recovery point passes it (a roll, under the log's lock: Kafka's
    /// `takeSnapshot(false)`, KAFKA-15046).
    Later,
}

/// Deletes snapshots above `offset` (after a truncation).
pub fn delete_snapshots_above(fs: &dyn Fs, dir: &Path, offset: i64) -> io::Result<()> {
    for snapshot in list_snapshots(fs, dir)? {
        if snapshot > offset {
            fs.remove_file(&snapshot_path(dir, snapshot))?;
        }
    }
    Ok(())
}

/// The newest readable snapshot at or below `max_offset`.
pub fn load_latest_snapshot(
    fs: &dyn Fs,
    dir: &Path,
    max_offset: i64,
) -> Option<ProducerStateManager> {
    let offsets = list_snapshots(fs, dir).ok()?;
    for offset in offsets.into_iter().rev().filter(|o| *o <= max_offset) {
        match crate::fs::read(fs, &snapshot_path(dir, offset))
            .ok()
            .and_then(|bytes| ProducerStateManager::decode_snapshot(&bytes, offset))
        {
            Some(state) => return Some(state),
            None => {
                tracing::warn!(dir = %dir.display(), offset, "ignoring an unreadable producer snapshot")
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::records::{BatchBuilder, Compression, NewRecord};

    impl ProducerStateManager {
        fn check_plain(&self, header: &BatchHeader) -> Result<SequenceCheck, ProducerError> {
            self.check(header, None)
        }
    }

    fn header(
        pid: i64,
        epoch: i16,
        seq: i32,
        count: i32,
        base_offset: i64,
        transactional: bool,
    ) -> BatchHeader {
        let mut builder = BatchBuilder::new(Compression::None)
            .producer(pid, epoch, seq)
            .transactional(transactional)
            .base_offset(base_offset);
        for _ in 0..count {
            builder.append(&NewRecord {
                timestamp: 1,
                key: None,
                value: Some(b"v"),
                headers: &[],
            });
        }
        BatchHeader::parse(&builder.build().unwrap()).unwrap()
    }

    fn control(pid: i64, epoch: i16, offset: i64) -> BatchHeader {
        let builder = BatchBuilder::new(Compression::None)
            .producer(pid, epoch, -1)
            .transactional(true)
            .control(true)
            .base_offset(offset);
        let mut builder = builder;
        builder.append(&NewRecord {
            timestamp: 1,
            key: Some(&[0, 0, 0, 0]),
            value: Some(&[0, 0, 0, 0, 0, 0]),
            headers: &[],
        });
        BatchHeader::parse(&builder.build().unwrap()).unwrap()
    }

    #[test]
    fn sequences_must_follow_and_duplicates_answer_the_original_offsets() {
        let mut state = ProducerStateManager::new(0);
        let first = header(7, 0, 0, 3, 0, false);
        assert_eq!(state.check(&first, None), Ok(SequenceCheck::Accept));
        state.update(&first, None).unwrap();
        assert_eq!(
            state.check_plain(&header(7, 0, 0, 3, 99, false)),
            Ok(SequenceCheck::Duplicate {
                first_offset: 0,
                last_offset: 2
            })
        );
        assert!(matches!(
            state.check_plain(&header(7, 0, 5, 1, 3, false)),
            Err(ProducerError::OutOfOrderSequence { expected: 3, .. })
        ));
        let second = header(7, 0, 3, 2, 3, false);
        assert_eq!(state.check(&second, None), Ok(SequenceCheck::Accept));
        state.update(&second, None).unwrap();
        assert!(matches!(
            state.check_plain(&header(7, -1, 5, 1, 5, false)),
            Err(ProducerError::InvalidProducerEpoch { .. })
        ));
        assert!(matches!(
            state.check_plain(&header(7, 1, 5, 1, 5, false)),
            Err(ProducerError::OutOfOrderSequence { expected: 0, .. })
        ));
        assert_eq!(
            state.check_plain(&header(7, 1, 0, 1, 5, false)),
            Ok(SequenceCheck::Accept)
        );
        assert_eq!(
            state.check_plain(&header(8, 0, 42, 1, 5, false)),
            Ok(SequenceCheck::Accept),
            "unknown producers start anywhere"
        );
    }

    #[test]
    fn transactions_open_on_the_first_batch_and_close_on_a_marker() {
        let mut state = ProducerStateManager::new(0);
        state.update(&header(1, 0, 0, 2, 10, true), None).unwrap();
        state.update(&header(2, 0, 0, 1, 12, true), None).unwrap();
        assert_eq!(state.first_unstable_offset(), Some(10));
        assert!(matches!(
            state.check_plain(&header(1, 0, 2, 1, 13, false)),
            Err(ProducerError::InvalidTxnState { .. })
        ));
        let aborted = state
            .update(&control(1, 0, 13), Some((CONTROL_ABORT, 0)))
            .unwrap();
        assert_eq!(
            aborted.map(|a| (
                a.producer_id,
                a.first_offset,
                a.last_offset,
                a.last_stable_offset
            )),
            Some((1, 10, 13, 12))
        );
        assert_eq!(state.first_unstable_offset(), Some(12));
        assert_eq!(
            state
                .update(&control(2, 0, 14), Some((CONTROL_COMMIT, 0)))
                .unwrap(),
            None
        );
        assert_eq!(state.first_unstable_offset(), None);
    }

    #[test]
    fn snapshots_round_trip_in_kafkas_format() {
        let mut state = ProducerStateManager::new(0);
        state.update(&header(1, 3, 10, 5, 100, true), None).unwrap();
        state
            .update(&header(2, 0, i32::MAX - 1, 3, 105, false), None)
            .unwrap();
        let bytes = state.encode_snapshot();
        let back = ProducerStateManager::decode_snapshot(&bytes, 108).unwrap();
        assert_eq!(
            back.producer(1).unwrap().current_txn_first_offset,
            Some(100)
        );
        assert_eq!(
            back.producer(1).unwrap().batches.back().unwrap().first_seq,
            10
        );
        assert_eq!(
            back.producer(2).unwrap().batches.back().unwrap().last_seq,
            0,
            "wrapped"
        );
        assert_eq!(
            back.producer(2).unwrap().batches.back().unwrap().first_seq,
            i32::MAX - 1
        );
        assert_eq!(back.first_unstable_offset(), Some(100));
        let mut corrupt = bytes.clone();
        corrupt[8] ^= 1;
        assert!(ProducerStateManager::decode_snapshot(&corrupt, 108).is_none());
    }
}
