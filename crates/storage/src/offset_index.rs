//! The sparse offset index of one segment: `{base_offset:020}.index`.
//!
//! On disk, Kafka's format: 8-byte entries, big-endian
//! `[relative_offset u32][position u32]`, where `relative_offset = offset - base_offset`
//! and `position` is the byte position in the `.log` file of the batch whose last
//! offset is `offset`. Entries are strictly increasing in both fields. An entry is
//! added when more than `index.interval.bytes` of log have been written since the
//! last one, so a lookup lands at most that many bytes before its target.
//!
//! Kafka preallocates and memory-maps the file; we keep the entries in memory and
//! append them to the file with positioned writes, so the file is always exactly
//! `8 * entries` bytes. The index is a cache of the log: when it fails its sanity
//! check it is rebuilt from the log, never trusted over it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub const ENTRY_SIZE: usize = 8;

/// One index entry: the last offset of a batch and where that batch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetPosition {
    pub offset: i64,
    pub position: u32,
}

#[derive(Debug)]
pub struct OffsetIndex {
    path: PathBuf,
    file: File,
    base_offset: i64,
    entries: Vec<(u32, u32)>,
    max_entries: usize,
}

/// Why an index file cannot be used as it is.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("index {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl OffsetIndex {
    /// Opens (creating if missing) and sanity-checks the index at `path`.
    pub fn open(
        path: &Path,
        base_offset: i64,
        max_entries: usize,
    ) -> Result<OffsetIndex, IndexError> {
        let io_err = |source| IndexError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len() as usize;
        let corrupt = |reason: String| IndexError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        if !len.is_multiple_of(ENTRY_SIZE) {
            return Err(corrupt(format!(
                "size {len} is not a multiple of {ENTRY_SIZE}"
            )));
        }
        let mut raw = vec![0u8; len];
        file.read_exact_at(&mut raw, 0).map_err(io_err)?;
        let mut entries = Vec::with_capacity(len / ENTRY_SIZE);
        for chunk in raw.chunks_exact(ENTRY_SIZE) {
            let relative = u32::from_be_bytes(chunk[0..4].try_into().expect("4 bytes"));
            let position = u32::from_be_bytes(chunk[4..8].try_into().expect("4 bytes"));
            if let Some(&(last_relative, last_position)) = entries.last() {
                if relative <= last_relative || position <= last_position {
                    return Err(corrupt(format!(
                        "entry {} ({relative}, {position}) does not follow ({last_relative}, {last_position})",
                        entries.len()
                    )));
                }
            }
            entries.push((relative, position));
        }
        Ok(OffsetIndex {
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
    ) -> io::Result<OffsetIndex> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(OffsetIndex {
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

    pub fn last_entry(&self) -> OffsetPosition {
        match self.entries.last() {
            Some(&(relative, position)) => OffsetPosition {
                offset: self.base_offset + i64::from(relative),
                position,
            },
            None => OffsetPosition {
                offset: self.base_offset,
                position: 0,
            },
        }
    }

    /// Appends an entry. Offsets and positions must increase.
    pub fn append(&mut self, offset: i64, position: u32) -> io::Result<()> {
        let relative = offset - self.base_offset;
        assert!(
            (0..=i64::from(u32::MAX)).contains(&relative),
            "offset {offset} outside segment {}",
            self.base_offset
        );
        let relative = relative as u32;
        if let Some(&(last_relative, last_position)) = self.entries.last() {
            assert!(
                relative > last_relative,
                "index offsets must increase: {relative} after {last_relative}"
            );
            assert!(
                position > last_position,
                "index positions must increase: {position} after {last_position}"
            );
        }
        assert!(
            !self.is_full(),
            "append to a full index {}",
            self.path.display()
        );
        let mut entry = [0u8; ENTRY_SIZE];
        entry[0..4].copy_from_slice(&relative.to_be_bytes());
        entry[4..8].copy_from_slice(&position.to_be_bytes());
        self.file
            .write_all_at(&entry, (self.entries.len() * ENTRY_SIZE) as u64)?;
        self.entries.push((relative, position));
        Ok(())
    }

    /// The entry with the largest offset at or below `target`, or the segment start.
    pub fn lookup(&self, target: i64) -> OffsetPosition {
        let relative = target - self.base_offset;
        if relative < 0 {
            return OffsetPosition {
                offset: self.base_offset,
                position: 0,
            };
        }
        let relative = relative.min(i64::from(u32::MAX)) as u32;
        let after = self.entries.partition_point(|&(r, _)| r <= relative);
        match after.checked_sub(1) {
            Some(i) => {
                let (r, position) = self.entries[i];
                OffsetPosition {
                    offset: self.base_offset + i64::from(r),
                    position,
                }
            }
            None => OffsetPosition {
                offset: self.base_offset,
                position: 0,
            },
        }
    }

    /// Drops every entry with an offset at or above `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<()> {
        let relative = offset - self.base_offset;
        let keep = if relative <= 0 {
            0
        } else {
            let relative = relative.min(i64::from(u32::MAX) + 1);
            self.entries
                .partition_point(|&(r, _)| i64::from(r) < relative)
        };
        self.entries.truncate(keep);
        self.file.set_len((keep * ENTRY_SIZE) as u64)
    }

    /// Drops every entry whose position is at or beyond `position` (log truncated).
    pub fn truncate_to_position(&mut self, position: u32) -> io::Result<()> {
        let keep = self.entries.partition_point(|&(_, p)| p < position);
        self.entries.truncate(keep);
        self.file.set_len((keep * ENTRY_SIZE) as u64)
    }

    pub fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// A handle to the file for an fsync outside the log's lock.
    pub fn try_clone_file(&self) -> io::Result<File> {
        self.file.try_clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_the_greatest_entry_at_or_below_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000100.index");
        let mut index = OffsetIndex::open(&path, 100, 10).unwrap();
        assert_eq!(
            index.lookup(150),
            OffsetPosition {
                offset: 100,
                position: 0
            }
        );
        index.append(110, 4100).unwrap();
        index.append(130, 8300).unwrap();
        assert_eq!(
            index.lookup(99),
            OffsetPosition {
                offset: 100,
                position: 0
            }
        );
        assert_eq!(
            index.lookup(109),
            OffsetPosition {
                offset: 100,
                position: 0
            }
        );
        assert_eq!(
            index.lookup(110),
            OffsetPosition {
                offset: 110,
                position: 4100
            }
        );
        assert_eq!(
            index.lookup(129),
            OffsetPosition {
                offset: 110,
                position: 4100
            }
        );
        assert_eq!(
            index.lookup(1_000),
            OffsetPosition {
                offset: 130,
                position: 8300
            }
        );
    }

    #[test]
    fn entries_survive_reopen_in_kafkas_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.index");
        let mut index = OffsetIndex::open(&path, 0, 10).unwrap();
        index.append(5, 4096).unwrap();
        drop(index);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            vec![0, 0, 0, 5, 0, 0, 0x10, 0]
        );
        let index = OffsetIndex::open(&path, 0, 10).unwrap();
        assert_eq!(
            index.last_entry(),
            OffsetPosition {
                offset: 5,
                position: 4096
            }
        );
    }

    #[test]
    fn a_torn_or_unordered_file_fails_the_sanity_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.index");
        std::fs::write(&path, [0, 0, 0, 5, 0, 0, 0x10]).unwrap();
        assert!(matches!(
            OffsetIndex::open(&path, 0, 10),
            Err(IndexError::Corrupt { .. })
        ));
        std::fs::write(
            &path,
            [0, 0, 0, 5, 0, 0, 0x10, 0, 0, 0, 0, 4, 0, 0, 0x20, 0],
        )
        .unwrap();
        assert!(matches!(
            OffsetIndex::open(&path, 0, 10),
            Err(IndexError::Corrupt { .. })
        ));
    }

    #[test]
    fn truncation_drops_entries_at_and_above_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.index");
        let mut index = OffsetIndex::open(&path, 0, 10).unwrap();
        index.append(10, 100).unwrap();
        index.append(20, 200).unwrap();
        index.append(30, 300).unwrap();
        index.truncate_to(20).unwrap();
        assert_eq!(index.len(), 1);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8);
        index.truncate_to_position(100).unwrap();
        assert!(index.is_empty());
    }
}
