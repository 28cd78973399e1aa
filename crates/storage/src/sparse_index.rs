//! A sparse index of one segment: fixed-size big-endian entries, each naming an
//! offset relative to the segment's base, in increasing order. The offset index
//! (`.index`) and the time index (`.timeindex`) are this structure with different
//! entries ([`crate::offset_index`], [`crate::time_index`]).
//!
//! Kafka preallocates and memory-maps index files; we keep the entries in memory
//! and write them to the file with positioned writes, so the file is always exactly
//! `entries * E::SIZE` bytes. The index is a cache of the log: a file that fails its
//! sanity check (a torn size, entries out of order) is rebuilt from the log, never
//! trusted over it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::fs::{FileRef, Fs, OpenMode};

/// One entry of a sparse index and its on-disk form.
pub trait IndexEntry: Copy + fmt::Debug + Eq {
    /// Bytes per entry on disk.
    const SIZE: usize;

    fn encode(&self, out: &mut [u8]);

    /// Decodes `SIZE` bytes.
    fn decode(bytes: &[u8]) -> Self;

    /// The entry's offset, relative to the segment's base offset.
    fn relative_offset(&self) -> u32;

    /// Why `self` may not follow `previous` in the index, if it may not.
    fn check_follows(&self, previous: &Self) -> Result<(), String>;
}

/// Why an index file cannot be used as it is.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("index {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

#[derive(Debug)]
pub struct SparseIndex<E> {
    path: PathBuf,
    file: FileRef,
    base_offset: i64,
    entries: Vec<E>,
    max_entries: usize,
}

impl<E: IndexEntry> SparseIndex<E> {
    /// Opens (creating if missing) and sanity-checks the index at `path`.
    pub fn open(
        fs: &dyn Fs,
        path: &Path,
        base_offset: i64,
        max_entries: usize,
    ) -> Result<SparseIndex<E>, IndexError> {
        let io_err = |source| IndexError::Io {
            path: path.to_path_buf(),
            source,
        };
        let corrupt = |reason: String| IndexError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let file = fs.open(path, OpenMode::Create).map_err(io_err)?;
        let len = file.size().map_err(io_err)?;
        let len = usize::try_from(len).map_err(|_| corrupt(format!("size {len}")))?;
        if !len.is_multiple_of(E::SIZE) {
            return Err(corrupt(format!(
                "size {len} is not a multiple of {}",
                E::SIZE
            )));
        }
        let mut raw = vec![0u8; len];
        file.read_exact_at(&mut raw, 0).map_err(io_err)?;
        let mut entries: Vec<E> = Vec::with_capacity(len / E::SIZE);
        for chunk in raw.chunks_exact(E::SIZE) {
            let entry = E::decode(chunk);
            if let Some(last) = entries.last() {
                entry
                    .check_follows(last)
                    .map_err(|reason| corrupt(format!("entry {}: {reason}", entries.len())))?;
            }
            entries.push(entry);
        }
        Ok(SparseIndex {
            path: path.to_path_buf(),
            file,
            base_offset,
            entries,
            max_entries: max_entries.max(1),
        })
    }

    /// Replaces the file with an empty index, for a rebuild.
    pub fn create_empty(
        fs: &dyn Fs,
        path: &Path,
        base_offset: i64,
        max_entries: usize,
    ) -> io::Result<SparseIndex<E>> {
        Ok(SparseIndex {
            path: path.to_path_buf(),
            file: fs.open(path, OpenMode::Truncate)?,
            base_offset,
            entries: Vec::new(),
            max_entries: max_entries.max(1),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub fn entries(&self) -> &[E] {
        &self.entries
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

    pub fn last(&self) -> Option<E> {
        self.entries.last().copied()
    }

    /// `offset` relative to the base, for an entry; asserts it fits.
    pub fn relative(&self, offset: i64) -> u32 {
        let relative = offset - self.base_offset;
        assert!(
            (0..=i64::from(u32::MAX)).contains(&relative),
            "offset {offset} outside segment {}",
            self.base_offset
        );
        relative as u32
    }

    /// Appends an entry, which must follow the last one.
    pub fn append(&mut self, entry: E) -> io::Result<()> {
        if let Some(last) = self.entries.last() {
            if let Err(reason) = entry.check_follows(last) {
                panic!("{}: {reason}", self.path.display());
            }
        }
        let mut raw = [0u8; 16];
        let raw = &mut raw[..E::SIZE];
        entry.encode(raw);
        self.file
            .write_all_at(raw, (self.entries.len() * E::SIZE) as u64)?;
        self.entries.push(entry);
        Ok(())
    }

    /// The last entry for which `at_or_below` holds, the entries being ordered so
    /// that it holds for a prefix of them.
    pub fn floor(&self, at_or_below: impl Fn(&E) -> bool) -> Option<E> {
        let after = self.entries.partition_point(at_or_below);
        after.checked_sub(1).map(|i| self.entries[i])
    }

    /// Keeps the entries for which `keep` holds, a prefix of them.
    pub fn truncate_while(&mut self, keep: impl Fn(&E) -> bool) -> io::Result<()> {
        let keep = self.entries.partition_point(keep);
        self.entries.truncate(keep);
        self.file.set_len((keep * E::SIZE) as u64)
    }

    /// Drops every entry with an offset at or above `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<()> {
        let relative = (offset - self.base_offset).clamp(0, i64::from(u32::MAX) + 1);
        self.truncate_while(|e| i64::from(e.relative_offset()) < relative)
    }

    pub fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// The file, for an fsync outside the log's lock.
    pub fn file(&self) -> FileRef {
        std::sync::Arc::clone(&self.file)
    }
}
