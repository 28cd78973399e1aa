//! The sparse time index of one segment: `{base_offset:020}.timeindex`.
//!
//! On disk, Kafka's format: 12-byte entries, big-endian
//! `[timestamp i64][relative_offset u32]`. An entry says "up to and including this
//! offset, the largest timestamp seen is `timestamp`"; timestamps strictly increase
//! from entry to entry, offsets never decrease. Entries are added together with
//! offset index entries (when the segment's max timestamp grew) and once more when
//! the segment stops being active, so the last entry holds the segment's largest
//! timestamp.
//!
//! Like the offset index, entries are kept in memory and appended to the file; the
//! log is the truth and a bad file is rebuilt from it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::offset_index::IndexError;

pub const ENTRY_SIZE: usize = 12;

/// One time index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp: i64,
    pub offset: i64,
}

#[derive(Debug)]
pub struct TimeIndex {
    path: PathBuf,
    file: File,
    base_offset: i64,
    entries: Vec<(i64, u32)>,
    max_entries: usize,
}

impl TimeIndex {
    /// Opens (creating if missing) and sanity-checks the time index at `path`.
    pub fn open(
        path: &Path,
        base_offset: i64,
        max_entries: usize,
    ) -> Result<TimeIndex, IndexError> {
        let io_err = |source| IndexError::Io {
            path: path.to_path_buf(),
            source,
        };
        let corrupt = |reason: String| IndexError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len() as usize;
        if !len.is_multiple_of(ENTRY_SIZE) {
            return Err(corrupt(format!(
                "size {len} is not a multiple of {ENTRY_SIZE}"
            )));
        }
        let mut raw = vec![0u8; len];
        file.read_exact_at(&mut raw, 0).map_err(io_err)?;
        let mut entries: Vec<(i64, u32)> = Vec::with_capacity(len / ENTRY_SIZE);
        for chunk in raw.chunks_exact(ENTRY_SIZE) {
            let timestamp = i64::from_be_bytes(chunk[0..8].try_into().expect("8 bytes"));
            let relative = u32::from_be_bytes(chunk[8..12].try_into().expect("4 bytes"));
            if let Some(&(last_timestamp, last_relative)) = entries.last() {
                if timestamp <= last_timestamp || relative < last_relative {
                    return Err(corrupt(format!(
                        "entry {} ({timestamp}, {relative}) does not follow ({last_timestamp}, {last_relative})",
                        entries.len()
                    )));
                }
            }
            entries.push((timestamp, relative));
        }
        Ok(TimeIndex {
            path: path.to_path_buf(),
            file,
            base_offset,
            entries,
            max_entries: max_entries.max(1),
        })
    }

    /// Replaces the file with an empty index, for a rebuild.
    pub fn create_empty(
        path: &Path,
        base_offset: i64,
        max_entries: usize,
    ) -> io::Result<TimeIndex> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(TimeIndex {
            path: path.to_path_buf(),
            file,
            base_offset,
            entries: Vec::new(),
            max_entries: max_entries.max(1),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }

    pub fn last_entry(&self) -> Option<TimestampOffset> {
        self.entries
            .last()
            .map(|&(timestamp, relative)| TimestampOffset {
                timestamp,
                offset: self.base_offset + i64::from(relative),
            })
    }

    /// Appends `(timestamp, offset)` if `timestamp` is larger than the last entry's.
    /// `skip_full_check` lets the final entry of a rolled segment in.
    pub fn maybe_append(
        &mut self,
        timestamp: i64,
        offset: i64,
        skip_full_check: bool,
    ) -> io::Result<()> {
        if let Some(&(last_timestamp, last_relative)) = self.entries.last() {
            if timestamp <= last_timestamp {
                return Ok(());
            }
            assert!(
                offset >= self.base_offset + i64::from(last_relative),
                "time index offsets must not decrease: {offset} after {}",
                self.base_offset + i64::from(last_relative)
            );
        }
        if !skip_full_check && self.is_full() {
            return Ok(());
        }
        let relative = offset - self.base_offset;
        assert!(
            (0..=i64::from(u32::MAX)).contains(&relative),
            "offset {offset} outside segment {}",
            self.base_offset
        );
        let mut entry = [0u8; ENTRY_SIZE];
        entry[0..8].copy_from_slice(&timestamp.to_be_bytes());
        entry[8..12].copy_from_slice(&(relative as u32).to_be_bytes());
        self.file
            .write_all_at(&entry, (self.entries.len() * ENTRY_SIZE) as u64)?;
        self.entries.push((timestamp, relative as u32));
        Ok(())
    }

    /// The entry with the largest timestamp at or below `target`, or
    /// `(-1, base_offset)` when there is none (Kafka's answer).
    pub fn lookup(&self, target: i64) -> TimestampOffset {
        let after = self.entries.partition_point(|&(t, _)| t <= target);
        match after.checked_sub(1) {
            Some(i) => {
                let (timestamp, relative) = self.entries[i];
                TimestampOffset {
                    timestamp,
                    offset: self.base_offset + i64::from(relative),
                }
            }
            None => TimestampOffset {
                timestamp: -1,
                offset: self.base_offset,
            },
        }
    }

    /// Drops every entry with an offset at or above `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<()> {
        let relative = offset - self.base_offset;
        let keep = if relative <= 0 {
            0
        } else {
            self.entries
                .partition_point(|&(_, r)| i64::from(r) < relative)
        };
        self.entries.truncate(keep);
        self.file.set_len((keep * ENTRY_SIZE) as u64)
    }

    pub fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    pub fn try_clone_file(&self) -> io::Result<File> {
        self.file.try_clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_growing_timestamps_are_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.timeindex");
        let mut index = TimeIndex::open(&path, 0, 10).unwrap();
        index.maybe_append(1_000, 3, false).unwrap();
        index.maybe_append(900, 5, false).unwrap();
        index.maybe_append(1_000, 6, false).unwrap();
        index.maybe_append(2_000, 9, false).unwrap();
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
        drop(index);
        let index = TimeIndex::open(&path, 0, 10).unwrap();
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
        let mut index = TimeIndex::open(&path, 0, 10).unwrap();
        index.maybe_append(10, 1, false).unwrap();
        index.maybe_append(20, 5, false).unwrap();
        index.truncate_to(5).unwrap();
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
