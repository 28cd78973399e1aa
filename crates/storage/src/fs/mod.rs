//! The filesystem as storage sees it: a small trait with a real implementation
//! ([`RealFs`]: `std::fs` and positioned I/O through rustix) and an in-memory one
//! ([`MemFs`]) that loses unsynced bytes on a simulated crash, tears writes, fails
//! fsyncs and fills up, for tests and simulation.
//!
//! Only what storage uses is here: open (create, truncate), positioned read and
//! write, `set_len`, `sync_data`/`sync_all`, length and modification time of an open
//! file; rename, remove, list, create and fsync directories; an exclusive lock on a
//! file (a log dir's `.lock`).
//!
//! Files are shared as [`FileRef`] (`Arc<dyn File>`): a reader outside a log's lock
//! keeps the file it was given, as an open descriptor keeps an unlinked file. A call
//! through the trait costs one indirect call beside a system call of a microsecond
//! or more; reads go straight into the caller's buffer (uninitialised capacity
//! included), writes come from the caller's slice, so the produce and fetch paths
//! copy nothing more than before (`docs/decisions.md`, "Storage I/O behind a trait").

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod cache;
mod mem;
mod real;

pub use cache::FileCache;
pub use mem::MemFs;
pub use real::RealFs;

/// A file shared by its segment and by readers holding it outside the log's lock.
pub type FileRef = Arc<dyn File>;

/// How to open a file: always for reading and writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// The file must exist.
    Existing,
    /// Created if missing, kept as it is otherwise.
    Create,
    /// Created if missing, emptied otherwise.
    Truncate,
}

/// A name in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub is_dir: bool,
}

/// Holds an exclusive lock until dropped.
pub trait LockGuard: Send + Sync + fmt::Debug {}

/// An open file. Positioned I/O only: there is no cursor to share.
pub trait File: Send + Sync + fmt::Debug {
    /// Reads up to `buf.len()` bytes at `offset`; 0 at the end of the file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Reads into the spare capacity of `buf` (appending, nothing zeroed first) at
    /// `offset`; returns the bytes read, 0 at the end of the file.
    fn read_spare_at(&self, buf: &mut Vec<u8>, offset: u64) -> io::Result<usize>;

    /// Writes all of `buf` at `offset`. An error may leave a prefix written.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;

    fn set_len(&self, len: u64) -> io::Result<()>;

    /// The file's length in bytes.
    fn size(&self) -> io::Result<u64>;

    /// The last modification time, in ms since the epoch.
    fn modified_ms(&self) -> io::Result<i64>;

    /// fdatasync: the data and what is needed to read it back.
    fn sync_data(&self) -> io::Result<()>;

    /// fsync: data and metadata.
    fn sync_all(&self) -> io::Result<()>;

    /// Fills `buf` from `offset`, or fails with `UnexpectedEof`.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file ends before the read",
                    ))
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The filesystem operations storage performs.
pub trait Fs: Send + Sync + fmt::Debug {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<FileRef>;

    /// Whether a file or directory exists at `path`.
    fn exists(&self, path: &Path) -> io::Result<bool>;

    /// Renames a file or a directory, replacing a file at `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;

    fn create_dir_all(&self, path: &Path) -> io::Result<()>;

    /// The names in a directory, in no particular order.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>>;

    /// fsyncs a directory, making the names created, renamed and removed in it
    /// durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;

    /// Takes an exclusive lock on the file at `path` (created if missing); `None`
    /// when another holder has it.
    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn LockGuard>>>;
}

/// The whole file at `path`.
pub fn read(fs: &dyn Fs, path: &Path) -> io::Result<Vec<u8>> {
    let file = fs.open(path, OpenMode::Existing)?;
    let len = file.size()?;
    let len = usize::try_from(len).map_err(|_| io::Error::other("file too large to read"))?;
    let mut bytes = vec![0u8; len];
    file.read_exact_at(&mut bytes, 0)?;
    Ok(bytes)
}

/// The whole file at `path` as UTF-8.
pub fn read_to_string(fs: &dyn Fs, path: &Path) -> io::Result<String> {
    String::from_utf8(read(fs, path)?)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

/// Removes a file; a missing file is not an error.
pub fn remove_if_exists(fs: &dyn Fs, path: &Path) -> io::Result<()> {
    match fs.remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Writes `contents` to `path` so that a crash leaves either the old or the new
/// file: a temporary file, fsynced, renamed over `path`, then the directory fsynced.
pub fn write_atomically(fs: &dyn Fs, path: &Path, contents: &[u8]) -> io::Result<()> {
    write_atomically_via(fs, &path.with_extension("tmp"), path, contents)
}

/// [`write_atomically`] through the temporary file `tmp`, for a directory whose
/// owner recognises its own leftovers by name (a KIP-630 snapshot is written as
/// `.checkpoint.part`, which Kafka deletes at start-up).
pub fn write_atomically_via(
    fs: &dyn Fs,
    tmp: &Path,
    path: &Path,
    contents: &[u8],
) -> io::Result<()> {
    {
        let file = fs.open(tmp, OpenMode::Truncate)?;
        file.write_all_at(contents, 0)?;
        file.sync_all()?;
    }
    fs.rename(tmp, path)?;
    if let Some(dir) = path.parent() {
        fs.sync_dir(dir)?;
    }
    Ok(())
}

/// Writes `contents` to `path` through a temporary file renamed over it, without
/// fsyncing: a process crash leaves the old file or the new one, whole; after a
/// power loss the new file may be empty or torn until its owner fsyncs it and the
/// directory (Kafka's unsynced producer snapshot at a roll, flushed later).
pub fn write_replacing(fs: &dyn Fs, path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let file = fs.open(&tmp, OpenMode::Truncate)?;
        file.write_all_at(contents, 0)?;
    }
    fs.rename(&tmp, path)
}

/// The parent directory of `path`, for an fsync of the names in it.
pub fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Whether an error is a full disk (ENOSPC) or quota (EDQUOT): a write that may
/// succeed once space returns.
pub fn is_out_of_space(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(28) | Some(122))
        || error.kind() == io::ErrorKind::StorageFull
}
