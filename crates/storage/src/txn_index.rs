//! The transaction index of one segment: `{base_offset:020}.txnindex`, the aborted
//! transactions whose ABORT marker is in the segment.
//!
//! On disk, Kafka's format: 34-byte entries, big-endian
//! `[version i16 = 0][producer_id i64][first_offset i64][last_offset i64][last_stable_offset i64]`.
//! A read_committed fetch lists the aborted transactions overlapping what it
//! returns, so the consumer drops their records. The file is created on the first
//! entry; a segment without aborts has none.

use std::io;
use std::path::{Path, PathBuf};

use crate::fs::{FileRef, Fs, OpenMode};
use crate::producer_state::AbortedTxn;
use crate::sparse_index::EntryFile;

pub const ENTRY_SIZE: usize = 34;

/// The entries are kept in memory; the file is read when the segment is loaded and
/// written out (no descriptor held in between) when the segment rolls, is flushed
/// or closes. Entries of a crash's unflushed segments that never reached the file
/// are found again by the producer-state replay at start-up.
#[derive(Debug)]
pub struct TxnIndex {
    path: PathBuf,
    entries: Vec<AbortedTxn>,
    file: EntryFile,
}

fn encode(entry: &AbortedTxn, raw: &mut [u8]) {
    raw[0..2].copy_from_slice(&0i16.to_be_bytes());
    raw[2..10].copy_from_slice(&entry.producer_id.to_be_bytes());
    raw[10..18].copy_from_slice(&entry.first_offset.to_be_bytes());
    raw[18..26].copy_from_slice(&entry.last_offset.to_be_bytes());
    raw[26..34].copy_from_slice(&entry.last_stable_offset.to_be_bytes());
}

impl TxnIndex {
    /// Loads the index at `path` if it exists; a torn last entry is dropped.
    pub fn open(fs: &dyn Fs, path: &Path) -> io::Result<TxnIndex> {
        let mut index = TxnIndex {
            path: path.to_path_buf(),
            entries: Vec::new(),
            file: EntryFile::loaded(0),
        };
        let file = match fs.open(path, OpenMode::Existing) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(index),
            Err(e) => return Err(e),
        };
        let len = usize::try_from(file.size()?).map_err(io::Error::other)?;
        let whole = len - len % ENTRY_SIZE;
        let mut raw = vec![0u8; whole];
        file.read_exact_at(&mut raw, 0)?;
        for chunk in raw.chunks_exact(ENTRY_SIZE) {
            let get =
                |at: usize| i64::from_be_bytes(chunk[at..at + 8].try_into().expect("8 bytes"));
            index.entries.push(AbortedTxn {
                producer_id: get(2),
                first_offset: get(10),
                last_offset: get(18),
                last_stable_offset: get(26),
            });
        }
        if whole != len {
            file.set_len(whole as u64)?;
        }
        index.file = EntryFile::loaded(index.entries.len());
        Ok(index)
    }

    pub fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// Records an aborted transaction (in memory; the file gets it when the index
    /// is written out). A repeat of an entry already there changes nothing.
    pub fn append(&mut self, entry: AbortedTxn) {
        if self
            .entries
            .iter()
            .any(|e| e.last_offset == entry.last_offset && e.producer_id == entry.producer_id)
        {
            return;
        }
        if let Some(last) = self.entries.last() {
            assert!(
                entry.last_offset > last.last_offset,
                "aborted transactions are indexed in marker order"
            );
        }
        self.entries.push(entry);
    }

    /// Drops entries whose marker is at or past `offset`.
    pub fn truncate_to(&mut self, offset: i64) {
        let keep = self.entries.partition_point(|e| e.last_offset < offset);
        self.entries.truncate(keep);
        self.file.truncated(keep);
    }

    /// Writes the entries the file lacks (creating it on the first entry).
    pub fn write_out(&mut self, fs: &dyn Fs) -> io::Result<()> {
        let entries = &self.entries;
        self.file
            .write_out(fs, &self.path, ENTRY_SIZE, entries.len(), |i, out| {
                encode(&entries[i], out)
            })
            .map(drop)
    }

    /// Writes out what the file lacks; the file when it has writes to fsync.
    pub fn prepare_sync(&mut self, fs: &dyn Fs) -> io::Result<Option<FileRef>> {
        let entries = &self.entries;
        self.file
            .prepare_sync(fs, &self.path, ENTRY_SIZE, entries.len(), |i, out| {
                encode(&entries[i], out)
            })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_reopen_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.txnindex");
        let fs = crate::fs::RealFs;
        let mut index = TxnIndex::open(&fs, &path).unwrap();
        index.write_out(&fs).unwrap();
        assert!(!path.exists(), "created lazily");
        index.append(AbortedTxn {
            producer_id: 1,
            first_offset: 0,
            last_offset: 5,
            last_stable_offset: 6,
        });
        index.append(AbortedTxn {
            producer_id: 2,
            first_offset: 3,
            last_offset: 9,
            last_stable_offset: 10,
        });
        index.write_out(&fs).unwrap();
        drop(index);
        let mut bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 68);
        bytes.extend_from_slice(&[1, 2, 3]);
        std::fs::write(&path, &bytes).unwrap();
        let mut index = TxnIndex::open(&fs, &path).unwrap();
        assert_eq!(index.entries().len(), 2);
        assert_eq!(index.entries()[1].producer_id, 2);
        index.truncate_to(9);
        assert_eq!(index.entries().len(), 1);
        index.write_out(&fs).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 34);
    }
}
