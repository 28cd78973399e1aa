//! The sparse time index of one segment: `{base_offset:020}.timeindex`.
//!
//! On disk, Kafka's format: 12-byte entries, big-endian
//! `[timestamp i64][relative_offset u32]`. An entry says "up to and including this
//! offset, the largest timestamp seen is `timestamp`"; timestamps strictly increase
//! from entry to entry, offsets never decrease. Entries are added together with
//! offset index entries (when the segment's max timestamp grew) and once more when
//! the segment stops being active, so the last entry holds the segment's largest
//! timestamp. The file handling is [`SparseIndex`]'s.

use std::io;
use std::path::Path;

use crate::fs::{FileRef, Fs};
use crate::sparse_index::{IndexEntry, IndexError, SparseIndex};

pub const ENTRY_SIZE: usize = 12;

/// One time index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp: i64,
    pub offset: i64,
}

/// An entry as stored: `(timestamp, relative_offset)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    timestamp: i64,
    relative: u32,
}

impl IndexEntry for TimeEntry {
    const SIZE: usize = ENTRY_SIZE;

    fn encode(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.relative.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> Self {
        TimeEntry {
            timestamp: i64::from_be_bytes(bytes[0..8].try_into().expect("8 bytes")),
            relative: u32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes")),
        }
    }

    fn relative_offset(&self) -> u32 {
        self.relative
    }

    fn check_follows(&self, previous: &Self) -> Result<(), String> {
        if self.timestamp <= previous.timestamp {
            return Err(format!(
                "time index timestamps must increase: ({}, {}) after ({}, {})",
                self.timestamp, self.relative, previous.timestamp, previous.relative
            ));
        }
        if self.relative < previous.relative {
            return Err(format!(
                "time index offsets must not decrease: ({}, {}) after ({}, {})",
                self.timestamp, self.relative, previous.timestamp, previous.relative
            ));
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct TimeIndex(SparseIndex<TimeEntry>);

impl TimeIndex {
    /// Opens (creating if missing) and sanity-checks the time index at `path`.
    pub fn open(
        fs: &dyn Fs,
        path: &Path,
        base_offset: i64,
        max_entries: usize,
    ) -> Result<TimeIndex, IndexError> {
        SparseIndex::open(fs, path, base_offset, max_entries).map(TimeIndex)
    }

    /// Replaces the file with an empty index, for a rebuild.
    pub fn create_empty(
        fs: &dyn Fs,
        path: &Path,
        base_offset: i64,
        max_entries: usize,
    ) -> io::Result<TimeIndex> {
        SparseIndex::create_empty(fs, path, base_offset, max_entries).map(TimeIndex)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.0.is_full()
    }

    fn to_timestamp_offset(&self, entry: TimeEntry) -> TimestampOffset {
        TimestampOffset {
            timestamp: entry.timestamp,
            offset: self.0.base_offset() + i64::from(entry.relative),
        }
    }

    pub fn last_entry(&self) -> Option<TimestampOffset> {
        self.0.last().map(|e| self.to_timestamp_offset(e))
    }

    /// Appends `(timestamp, offset)` if `timestamp` is larger than the last entry's.
    /// `skip_full_check` lets the final entry of a rolled segment in.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64, skip_full_check: bool) {
        if self
            .0
            .last()
            .is_some_and(|last| timestamp <= last.timestamp)
        {
            return;
        }
        if !skip_full_check && self.is_full() {
            return;
        }
        let relative = self.0.relative(offset);
        self.0.append(TimeEntry {
            timestamp,
            relative,
        })
    }

    /// The entry with the largest timestamp at or below `target`, or
    /// `(-1, base_offset)` when there is none (Kafka's answer).
    pub fn lookup(&self, target: i64) -> TimestampOffset {
        match self.0.floor(|e| e.timestamp <= target) {
            Some(entry) => self.to_timestamp_offset(entry),
            None => TimestampOffset {
                timestamp: -1,
                offset: self.0.base_offset(),
            },
        }
    }

    /// Drops every entry with an offset at or above `offset`.
    pub fn truncate_to(&mut self, offset: i64) {
        self.0.truncate_to(offset)
    }

    /// Writes the entries the file lacks, and closes it.
    pub fn write_out(&mut self, fs: &dyn Fs) -> io::Result<()> {
        self.0.write_out(fs)
    }

    /// Writes out what the file lacks; the file when it has writes to fsync.
    pub fn prepare_sync(&mut self, fs: &dyn Fs) -> io::Result<Option<FileRef>> {
        self.0.prepare_sync(fs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::RealFs;

    #[test]
    fn only_growing_timestamps_are_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.timeindex");
        let mut index = TimeIndex::open(&RealFs, &path, 0, 10).unwrap();
        index.maybe_append(1_000, 3, false);
        index.maybe_append(900, 5, false);
        index.maybe_append(1_000, 6, false);
        index.maybe_append(2_000, 9, false);
        assert_eq!(index.len(), 2);
        assert_eq!(
            index.lookup(999),
            TimestampOffset {
                timestamp: -1,
                offset: 0
            }
        );
        assert_eq!(
            index.lookup(1_500),
            TimestampOffset {
                timestamp: 1_000,
                offset: 3
            }
        );
        assert_eq!(
            index.lookup(2_000),
            TimestampOffset {
                timestamp: 2_000,
                offset: 9
            }
        );
        index.write_out(&RealFs).unwrap();
        drop(index);
        let index = TimeIndex::open(&RealFs, &path, 0, 10).unwrap();
        assert_eq!(
            index.last_entry(),
            Some(TimestampOffset {
                timestamp: 2_000,
                offset: 9
            })
        );
    }

    #[test]
    fn truncation_keeps_entries_below_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.timeindex");
        let mut index = TimeIndex::open(&RealFs, &path, 0, 10).unwrap();
        index.maybe_append(10, 1, false);
        index.maybe_append(20, 5, false);
        index.write_out(&RealFs).unwrap();
        index.truncate_to(5);
        index.write_out(&RealFs).unwrap();
        assert_eq!(
            index.last_entry(),
            Some(TimestampOffset {
                timestamp: 10,
                offset: 1
            })
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 12);
    }
}
