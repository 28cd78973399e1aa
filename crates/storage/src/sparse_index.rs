//! A sparse index of one segment: fixed-size big-endian entries, each naming an
//! offset relative to the segment's base, in increasing order. The offset index
//! (`.index`) and the time index (`.timeindex`) are this structure with different
//! entries ([`crate::offset_index`], [`crate::time_index`]).
//!
//! Kafka preallocates and memory-maps index files; we keep the entries in memory
//! and hold no descriptor: the file is read once when the segment is loaded, and
//! the entries it lacks are written out (positioned writes, then closed) when the
//! segment rolls, is flushed or closes ([`EntryFile`]), so the file is exactly
//! `entries * E::SIZE` bytes once written out. The index is a cache of the log: a
//! file that fails its sanity check (a torn size, entries out of order) or lacks
//! entries (a crash before they were written out) is rebuilt or completed from the
//! log, never trusted over it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::fs::{FileRef, Fs, OpenMode};

/// How a file of fixed-size entries stands against the entries kept in memory:
/// the file holds the first `on_disk` of them (and, after a truncation in memory,
/// possibly more that are no longer entries). Writing out brings the file in line;
/// nothing holds the file open in between.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct EntryFile {
    on_disk: usize,
    /// The file holds entries past `on_disk` that were truncated in memory.
    file_longer: bool,
    /// Written out and not fsynced since.
    unsynced: bool,
}

impl EntryFile {
    /// A file that holds exactly `entries` entries.
    pub(crate) fn loaded(entries: usize) -> EntryFile {
        EntryFile {
            on_disk: entries,
            ..EntryFile::default()
        }
    }

    /// A file just truncated to nothing: the truncation is a change no fsync has
    /// made durable yet, so the next flush syncs the file even when no entry is
    /// written to it. Without that, a power loss after the flush could bring back
    /// the entries of an older file and a stale index would point past the log.
    pub(crate) fn emptied() -> EntryFile {
        EntryFile {
            unsynced: true,
            ..EntryFile::default()
        }
    }

    /// The entries in memory were truncated to `keep`.
    pub(crate) fn truncated(&mut self, keep: usize) {
        if keep < self.on_disk {
            self.on_disk = keep;
            self.file_longer = true;
        }
    }

    /// Writes the entries the file lacks (`count` in memory, each `size` bytes,
    /// encoded by `encode(index, out)`) and truncates what it holds past them.
    /// Returns the file when anything was written.
    pub(crate) fn write_out(
        &mut self,
        fs: &dyn Fs,
        path: &Path,
        size: usize,
        count: usize,
        encode: impl Fn(usize, &mut [u8]),
    ) -> io::Result<Option<FileRef>> {
        if self.on_disk == count && !self.file_longer {
            return Ok(None);
        }
        let file = fs.open(path, OpenMode::Create)?;
        if self.file_longer {
            file.set_len((self.on_disk * size) as u64)?;
            self.file_longer = false;
            self.unsynced = true;
        }
        if count > self.on_disk {
            let mut raw = vec![0u8; (count - self.on_disk) * size];
            for (i, out) in raw.chunks_exact_mut(size).enumerate() {
                encode(self.on_disk + i, out);
            }
            file.write_all_at(&raw, (self.on_disk * size) as u64)?;
            self.on_disk = count;
            self.unsynced = true;
        }
        Ok(Some(file))
    }

    /// Writes out what the file lacks and returns the file when it has writes to
    /// fsync; they count as synced from here (a failed fsync takes the log
    /// directory offline, so nothing relies on them after it).
    pub(crate) fn prepare_sync(
        &mut self,
        fs: &dyn Fs,
        path: &Path,
        size: usize,
        count: usize,
        encode: impl Fn(usize, &mut [u8]),
    ) -> io::Result<Option<FileRef>> {
        let written = self.write_out(fs, path, size, count, encode)?;
        if !self.unsynced {
            return Ok(None);
        }
        self.unsynced = false;
        match written {
            Some(file) => Ok(Some(file)),
            None => fs.open(path, OpenMode::Create).map(Some),
        }
    }
}

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
    base_offset: i64,
    entries: Vec<E>,
    max_entries: usize,
    file: EntryFile,
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
        drop(file);
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
            base_offset,
            file: EntryFile::loaded(entries.len()),
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
        fs.open(path, OpenMode::Truncate)?;
        Ok(SparseIndex {
            path: path.to_path_buf(),
            base_offset,
            entries: Vec::new(),
            max_entries: max_entries.max(1),
            file: EntryFile::emptied(),
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

    /// Appends an entry, which must follow the last one (in memory; the file gets
    /// it when the index is written out).
    pub fn append(&mut self, entry: E) {
        if let Some(last) = self.entries.last() {
            if let Err(reason) = entry.check_follows(last) {
                panic!("{}: {reason}", self.path.display());
            }
        }
        self.entries.push(entry);
    }

    /// The last entry for which `at_or_below` holds, the entries being ordered so
    /// that it holds for a prefix of them.
    pub fn floor(&self, at_or_below: impl Fn(&E) -> bool) -> Option<E> {
        let after = self.entries.partition_point(at_or_below);
        after.checked_sub(1).map(|i| self.entries[i])
    }

    /// Keeps the entries for which `keep` holds, a prefix of them.
    pub fn truncate_while(&mut self, keep: impl Fn(&E) -> bool) {
        let keep = self.entries.partition_point(keep);
        self.entries.truncate(keep);
        self.file.truncated(keep);
    }

    /// Drops every entry with an offset at or above `offset`.
    pub fn truncate_to(&mut self, offset: i64) {
        let relative = (offset - self.base_offset).clamp(0, i64::from(u32::MAX) + 1);
        self.truncate_while(|e| i64::from(e.relative_offset()) < relative)
    }

    /// Writes the entries the file lacks, and closes it.
    pub fn write_out(&mut self, fs: &dyn Fs) -> io::Result<()> {
        let entries = &self.entries;
        self.file
            .write_out(fs, &self.path, E::SIZE, entries.len(), |i, out| {
                entries[i].encode(out)
            })
            .map(drop)
    }

    /// Writes out what the file lacks; the file when it has writes to fsync (done
    /// by the caller, outside the log's lock).
    pub fn prepare_sync(&mut self, fs: &dyn Fs) -> io::Result<Option<FileRef>> {
        let entries = &self.entries;
        self.file
            .prepare_sync(fs, &self.path, E::SIZE, entries.len(), |i, out| {
                entries[i].encode(out)
            })
    }
}
