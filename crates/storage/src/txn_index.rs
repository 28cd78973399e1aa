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
use std::sync::Arc;

use crate::fs::{FileRef, Fs, OpenMode};
use crate::producer_state::AbortedTxn;

pub const ENTRY_SIZE: usize = 34;

#[derive(Debug)]
pub struct TxnIndex {
    fs: Arc<dyn Fs>,
    path: PathBuf,
    file: Option<FileRef>,
    entries: Vec<AbortedTxn>,
}

impl TxnIndex {
    /// Loads the index at `path` if it exists; a torn last entry is dropped.
    pub fn open(fs: Arc<dyn Fs>, path: &Path) -> io::Result<TxnIndex> {
        let file = match fs.open(path, OpenMode::Existing) {
            Ok(file) => Some(file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let mut index = TxnIndex {
            fs,
            path: path.to_path_buf(),
            file: None,
            entries: Vec::new(),
        };
        let Some(file) = file else {
            return Ok(index);
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
        index.file = Some(file);
        Ok(index)
    }

    pub fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    pub fn append(&mut self, entry: AbortedTxn) -> io::Result<()> {
        if self
            .entries
            .iter()
            .any(|e| e.last_offset == entry.last_offset && e.producer_id == entry.producer_id)
        {
            return Ok(());
        }
        if let Some(last) = self.entries.last() {
            assert!(
                entry.last_offset > last.last_offset,
                "aborted transactions are indexed in marker order"
            );
        }
        if self.file.is_none() {
            self.file = Some(self.fs.open(&self.path, OpenMode::Truncate)?);
        }
        let mut raw = [0u8; ENTRY_SIZE];
        raw[0..2].copy_from_slice(&0i16.to_be_bytes());
        raw[2..10].copy_from_slice(&entry.producer_id.to_be_bytes());
        raw[10..18].copy_from_slice(&entry.first_offset.to_be_bytes());
        raw[18..26].copy_from_slice(&entry.last_offset.to_be_bytes());
        raw[26..34].copy_from_slice(&entry.last_stable_offset.to_be_bytes());
        let file = self.file.as_ref().expect("opened above");
        file.write_all_at(&raw, (self.entries.len() * ENTRY_SIZE) as u64)?;
        self.entries.push(entry);
        Ok(())
    }

    /// Drops entries whose marker is at or past `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<()> {
        let keep = self.entries.partition_point(|e| e.last_offset < offset);
        if keep == self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(keep);
        if let Some(file) = &self.file {
            file.set_len((keep * ENTRY_SIZE) as u64)?;
        }
        Ok(())
    }

    pub fn flush(&self) -> io::Result<()> {
        match &self.file {
            Some(file) => file.sync_data(),
            None => Ok(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file, if there is one, for an fsync outside the log's lock.
    pub fn file(&self) -> Option<FileRef> {
        self.file.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_reopen_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.txnindex");
        let fs = crate::fs::RealFs::shared();
        let mut index = TxnIndex::open(Arc::clone(&fs), &path).unwrap();
        assert!(!path.exists(), "created lazily");
        index
            .append(AbortedTxn {
                producer_id: 1,
                first_offset: 0,
                last_offset: 5,
                last_stable_offset: 6,
            })
            .unwrap();
        index
            .append(AbortedTxn {
                producer_id: 2,
                first_offset: 3,
                last_offset: 9,
                last_stable_offset: 10,
            })
            .unwrap();
        drop(index);
        let mut bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 68);
        bytes.extend_from_slice(&[1, 2, 3]);
        std::fs::write(&path, &bytes).unwrap();
        let mut index = TxnIndex::open(fs, &path).unwrap();
        assert_eq!(index.entries().len(), 2);
        assert_eq!(index.entries()[1].producer_id, 2);
        index.truncate_to(9).unwrap();
        assert_eq!(index.entries().len(), 1);
    }
}
