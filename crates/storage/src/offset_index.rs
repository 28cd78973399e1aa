//! The sparse offset index of one segment: `{base_offset:020}.index`.
//!
//! On disk, Kafka's format: 8-byte entries, big-endian
//! `[relative_offset u32][position u32]`, where `relative_offset = offset - base_offset`
//! and `position` is the byte position in the `.log` file of the batch whose last
//! offset is `offset`. Entries are strictly increasing in both fields. An entry is
//! added when more than `index.interval.bytes` of log have been written since the
//! last one, so a lookup lands at most that many bytes before its target.
//! The file handling is [`SparseIndex`]'s.

use std::io;
use std::path::Path;

use crate::fs::{FileRef, Fs};
pub use crate::sparse_index::IndexError;
use crate::sparse_index::{IndexEntry, SparseIndex};

pub const ENTRY_SIZE: usize = 8;

/// One index entry: the last offset of a batch and where that batch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetPosition {
    pub offset: i64,
    pub position: u32,
}

/// An entry as stored: `(relative_offset, position)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    relative: u32,
    position: u32,
}

impl IndexEntry for OffsetEntry {
    const SIZE: usize = ENTRY_SIZE;

    fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.relative.to_be_bytes());
        out[4..8].copy_from_slice(&self.position.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> Self {
        OffsetEntry {
            relative: u32::from_be_bytes(bytes[0..4].try_into().expect("4 bytes")),
            position: u32::from_be_bytes(bytes[4..8].try_into().expect("4 bytes")),
        }
    }

    fn relative_offset(&self) -> u32 {
        self.relative
    }

    fn check_follows(&self, previous: &Self) -> Result<(), String> {
        if self.relative <= previous.relative {
            return Err(format!(
                "index offsets must increase: ({}, {}) after ({}, {})",
                self.relative, self.position, previous.relative, previous.position
            ));
        }
        if self.position <= previous.position {
            return Err(format!(
                "index positions must increase: ({}, {}) after ({}, {})",
                self.relative, self.position, previous.relative, previous.position
            ));
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct OffsetIndex(SparseIndex<OffsetEntry>);

impl OffsetIndex {
    /// Opens (creating if missing) and sanity-checks the index at `path`.
    pub fn open(
        fs: &dyn Fs,
        path: &Path,
        base_offset: i64,
        max_entries: usize,
    ) -> Result<OffsetIndex, IndexError> {
        SparseIndex::open(fs, path, base_offset, max_entries).map(OffsetIndex)
    }

    /// Replaces the file with an empty index, for a rebuild.
    pub fn create_empty(
        fs: &dyn Fs,
        path: &Path,
        base_offset: i64,
        max_entries: usize,
    ) -> io::Result<OffsetIndex> {
        SparseIndex::create_empty(fs, path, base_offset, max_entries).map(OffsetIndex)
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

    fn to_position(&self, entry: Option<OffsetEntry>) -> OffsetPosition {
        match entry {
            Some(e) => OffsetPosition {
                offset: self.0.base_offset() + i64::from(e.relative),
                position: e.position,
            },
            None => OffsetPosition {
                offset: self.0.base_offset(),
                position: 0,
            },
        }
    }

    pub fn last_entry(&self) -> OffsetPosition {
        self.to_position(self.0.last())
    }

    /// Appends an entry. Offsets and positions must increase.
    pub fn append(&mut self, offset: i64, position: u32) {
        let relative = self.0.relative(offset);
        assert!(
            !self.is_full(),
            "append to a full index {}",
            self.path().display()
        );
        self.0.append(OffsetEntry { relative, position })
    }

    /// The entry with the largest offset at or below `target`, or the segment start.
    pub fn lookup(&self, target: i64) -> OffsetPosition {
        let relative = target - self.0.base_offset();
        if relative < 0 {
            return self.to_position(None);
        }
        let relative = relative.min(i64::from(u32::MAX)) as u32;
        self.to_position(self.0.floor(|e| e.relative <= relative))
    }

    /// Drops every entry with an offset at or above `offset`.
    pub fn truncate_to(&mut self, offset: i64) {
        self.0.truncate_to(offset)
    }

    /// Drops every entry whose position is at or beyond `position` (log truncated).
    pub fn truncate_to_position(&mut self, position: u32) {
        self.0.truncate_while(|e| e.position < position)
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

    /// A rebuild empties an index file: the next flush syncs it, also when a
    /// process killed before it had emptied it already (its page cache shows an
    /// empty file, the disk the entries), so that a power loss cannot bring the
    /// entries back.
    #[test]
    fn emptying_an_index_for_a_rebuild_is_synced_by_the_next_flush() {
        let fs = crate::fs::MemFs::new();
        fs.create_dir_all(Path::new("/data")).unwrap();
        let path = Path::new("/data/00000000000000000100.index");
        let mut index = OffsetIndex::create_empty(&fs, path, 100, 10).unwrap();
        index.append(110, 4100);
        index.append(130, 8300);
        index
            .prepare_sync(&fs)
            .unwrap()
            .unwrap()
            .sync_data()
            .unwrap();
        // A rebuild, then kill -9 before any flush, then a rebuild again.
        OffsetIndex::create_empty(&fs, path, 100, 10).unwrap();
        assert_eq!(fs.contents(path).unwrap(), b"");
        let mut index = OffsetIndex::create_empty(&fs, path, 100, 10).unwrap();
        index
            .prepare_sync(&fs)
            .unwrap()
            .expect("the emptied file is synced")
            .sync_data()
            .unwrap();
        fs.crash();
        assert_eq!(fs.contents(path).unwrap(), b"");
    }

    #[test]
    fn lookup_finds_the_greatest_entry_at_or_below_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000100.index");
        let mut index = OffsetIndex::open(&RealFs, &path, 100, 10).unwrap();
        assert_eq!(
            index.lookup(150),
            OffsetPosition {
                offset: 100,
                position: 0
            }
        );
        index.append(110, 4100);
        index.append(130, 8300);
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
        let mut index = OffsetIndex::open(&RealFs, &path, 0, 10).unwrap();
        index.append(5, 4096);
        index.write_out(&RealFs).unwrap();
        drop(index);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            vec![0, 0, 0, 5, 0, 0, 0x10, 0]
        );
        let index = OffsetIndex::open(&RealFs, &path, 0, 10).unwrap();
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
            OffsetIndex::open(&RealFs, &path, 0, 10),
            Err(IndexError::Corrupt { .. })
        ));
        std::fs::write(
            &path,
            [0, 0, 0, 5, 0, 0, 0x10, 0, 0, 0, 0, 4, 0, 0, 0x20, 0],
        )
        .unwrap();
        assert!(matches!(
            OffsetIndex::open(&RealFs, &path, 0, 10),
            Err(IndexError::Corrupt { .. })
        ));
    }

    #[test]
    fn truncation_drops_entries_at_and_above_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.index");
        let mut index = OffsetIndex::open(&RealFs, &path, 0, 10).unwrap();
        index.append(10, 100);
        index.append(20, 200);
        index.append(30, 300);
        index.write_out(&RealFs).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 24);
        index.truncate_to(20);
        assert_eq!(index.len(), 1);
        index.write_out(&RealFs).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8);
        index.truncate_to_position(100);
        assert!(index.is_empty());
    }
}
