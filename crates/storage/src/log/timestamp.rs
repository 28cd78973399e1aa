//! ListOffsets by timestamp: the first record at or after the log start offset
//! whose timestamp reaches a target (Kafka's `fetchOffsetByTimestamp`).
//!
//! Under the log's lock: the first segment whose largest timestamp reaches the
//! target, then its time index and offset index, then batch headers from there to
//! the first batch whose max timestamp reaches the target ([`Log::timestamp_lookup`]).
//! Outside it: that one batch is read and its records skimmed, streaming, for the
//! first record late enough ([`TimestampLookup::resolve`]); no record is held, so a
//! batch costs its decompression and nothing more.

use std::io;

use protocol::records::{skim_records, BatchHeader, RecordError, TimestampType};

use super::{io_err, Log};
use crate::error::StorageError;
use crate::fs::FileRef;
use crate::segment::Segment;

/// The batch that answers a timestamp lookup, to be read outside the log's lock.
#[derive(Debug, Clone)]
pub struct TimestampLookup {
    file: FileRef,
    position: u32,
    header: BatchHeader,
    /// The next late batch of the segment, when `header`'s batch straddles the
    /// log start and may answer nothing (at most one more batch is decoded).
    fallback: Option<(u32, BatchHeader)>,
    target: i64,
    log_start_offset: i64,
}

impl TimestampLookup {
    /// The first record of the batch at or after the log start offset whose
    /// timestamp reaches the target: `(offset, timestamp)`.
    pub fn resolve(&self) -> Result<Option<(i64, i64)>, StorageError> {
        match self.resolve_batch(self.position, &self.header)? {
            Some(found) => Ok(Some(found)),
            None => match &self.fallback {
                Some((position, header)) => self.resolve_batch(*position, header),
                None => Ok(None),
            },
        }
    }

    fn resolve_batch(
        &self,
        position: u32,
        header: &BatchHeader,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        let mut bytes = vec![0u8; header.size()];
        self.file
            .read_exact_at(&mut bytes, u64::from(position))
            .map_err(io_err("reading a batch for a timestamp lookup"))?;
        let log_append_time = header.timestamp_type() == TimestampType::LogAppendTime;
        let mut found = None;
        let walked = skim_records(header, &bytes, |record| {
            let offset = header.base_offset + i64::from(record.offset_delta);
            let timestamp = if log_append_time {
                header.max_timestamp
            } else {
                record.timestamp
            };
            if found.is_none() && timestamp >= self.target && offset >= self.log_start_offset {
                found = Some((offset, timestamp));
                // Stop the walk: the rest of the batch is not needed.
                return Err(RecordError::InvalidRecord {
                    index: record.index,
                    reason: String::new(),
                });
            }
            Ok(())
        });
        match (walked, found) {
            (_, Some(found)) => Ok(Some(found)),
            (Ok(_), None) => Ok(None),
            (Err(e), None) => Err(StorageError::io(
                "skimming a batch for a timestamp lookup",
                io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
            )),
        }
    }
}

impl Log {
    /// Finds the batch that holds the first record at or after the log start
    /// offset with a timestamp of at least `target`; `None` when no batch is that
    /// late. Reads batch headers only.
    pub fn timestamp_lookup(&self, target: i64) -> Result<Option<TimestampLookup>, StorageError> {
        self.env.dir.check()?;
        let Some(segment) = self.segments.values().find(|s| s.max_timestamp() >= target) else {
            return Ok(None);
        };
        self.lookup_in(segment, target)
    }

    fn lookup_in(
        &self,
        segment: &Segment,
        target: i64,
    ) -> Result<Option<TimestampLookup>, StorageError> {
        let Some(candidates) = segment
            .find_batch_by_timestamp(target, self.log_start_offset)
            .map_err(io_err("searching the time index"))?
        else {
            return Ok(None);
        };
        let (position, header) = candidates.first;
        Ok(Some(TimestampLookup {
            file: segment
                .file()
                .map_err(io_err(format!("opening {}", segment.log_path().display())))?,
            position,
            header,
            fallback: candidates.fallback,
            target,
            log_start_offset: self.log_start_offset,
        }))
    }

    /// Kafka's ListOffsets for a timestamp: the first record at or after
    /// `log_start_offset` whose timestamp is at least `target`, with its timestamp
    /// and leader epoch; `None` when no record is that late. (Holds the log for
    /// the one batch it reads; [`Log::timestamp_lookup`] and
    /// [`TimestampLookup::resolve`] split that off.)
    pub fn offset_for_timestamp(
        &self,
        target: i64,
    ) -> Result<Option<(i64, i64, Option<i32>)>, StorageError> {
        let Some(lookup) = self.timestamp_lookup(target)? else {
            return Ok(None);
        };
        Ok(lookup.resolve()?.map(|(offset, timestamp)| {
            (
                offset,
                timestamp,
                self.leader_epochs.epoch_for_offset(offset),
            )
        }))
    }

    /// The batch holding the record with the largest timestamp (ListOffsets
    /// MAX_TIMESTAMP); resolving it gives the first such record when several tie.
    pub fn max_timestamp_lookup(&self) -> Result<Option<TimestampLookup>, StorageError> {
        self.env.dir.check()?;
        let mut best: Option<&Segment> = None;
        for segment in self.segments.values() {
            if segment.max_timestamp() >= 0
                && best.is_none_or(|b| segment.max_timestamp() > b.max_timestamp())
            {
                best = Some(segment);
            }
        }
        let Some(segment) = best else { return Ok(None) };
        self.lookup_in(segment, segment.max_timestamp())
    }

    /// The record with the largest timestamp (ListOffsets MAX_TIMESTAMP): its
    /// offset, timestamp and leader epoch. The first such record when several tie.
    pub fn offset_of_max_timestamp(&self) -> Result<Option<(i64, i64, Option<i32>)>, StorageError> {
        let Some(lookup) = self.max_timestamp_lookup()? else {
            return Ok(None);
        };
        Ok(lookup.resolve()?.map(|(offset, timestamp)| {
            (
                offset,
                timestamp,
                self.leader_epochs.epoch_for_offset(offset),
            )
        }))
    }

    /// The leader epoch of the record at `offset`.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.leader_epochs.epoch_for_offset(offset)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use protocol::records::{BatchBuilder, Compression, NewRecord};
    use protocol::time::{Clock, ManualClock};
    use protocol::TopicPartition;

    use super::super::{LoadState, Log};
    use crate::env::LogEnv;
    use crate::fs::MemFs;
    use crate::log_tests::{config, NOW};
    use crate::validate::Origin;

    fn log_with(pairs: &[(&str, &str)]) -> Log {
        let clock = Arc::new(ManualClock::new(NOW)) as Arc<dyn Clock>;
        let env = LogEnv::new(MemFs::new().shared(), clock);
        Log::open(
            &PathBuf::from("/data/t-0"),
            TopicPartition::new("t", 0),
            config(pairs),
            &env,
            LoadState::default(),
        )
        .unwrap()
    }

    /// One batch of records with these timestamps.
    fn append(log: &mut Log, timestamps: &[i64], compression: Compression) {
        let mut builder = BatchBuilder::new(compression);
        for &timestamp in timestamps {
            builder.append(&NewRecord {
                timestamp,
                key: None,
                value: Some(b"v"),
                headers: &[],
            });
        }
        log.append_as_leader(&builder.build().unwrap(), 0, Origin::Client)
            .unwrap();
    }

    #[test]
    fn the_first_late_enough_record_of_one_batch_answers_past_the_log_start() {
        let mut log = log_with(&[]);
        // Out of order inside a compressed batch: the max timestamp is not last.
        append(
            &mut log,
            &[NOW, NOW + 30, NOW + 10, NOW + 20],
            Compression::Zstd,
        );
        append(&mut log, &[NOW + 40, NOW + 50], Compression::None);
        let find = |log: &Log, target| {
            let lookup = log.timestamp_lookup(target).unwrap();
            lookup.map(|l| l.resolve().unwrap().unwrap())
        };
        assert_eq!(find(&log, NOW + 5), Some((1, NOW + 30)));
        assert_eq!(find(&log, NOW + 20), Some((1, NOW + 30)));
        assert_eq!(find(&log, NOW + 35), Some((4, NOW + 40)));
        assert_eq!(find(&log, NOW + 51), None);
        // The log start moves into the first batch: records below it do not count.
        log.delete_records_before(2, 6).unwrap();
        assert_eq!(find(&log, NOW + 5), Some((2, NOW + 10)));
        assert_eq!(
            log.offset_of_max_timestamp().unwrap().map(|f| (f.0, f.1)),
            Some((5, NOW + 50))
        );
    }

    #[test]
    fn log_append_time_batches_answer_with_the_broker_time() {
        let mut log = log_with(&[("message.timestamp.type", "LogAppendTime")]);
        append(&mut log, &[1, 2, 3], Compression::Lz4);
        let (offset, timestamp, _) = log.offset_for_timestamp(NOW).unwrap().unwrap();
        assert_eq!((offset, timestamp), (0, NOW));
        assert_eq!(log.offset_for_timestamp(NOW + 1).unwrap(), None);
    }
}
