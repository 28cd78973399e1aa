//! A bounded cache of open files: the `.log` files of segments that are not
//! active. A broker with many partitions cannot keep every segment open (each
//! partition holds one descriptor for its active segment; older segments are read
//! rarely), so their files are opened on demand and the least recently used ones
//! closed when the cache is full. A reader holding a file keeps it open after it
//! leaves the cache, so the descriptors in use are at most the cache's capacity
//! plus the reads in flight.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{FileRef, Fs, OpenMode};

/// The default number of files kept open (`docs/decisions.md`, "File descriptors").
pub const DEFAULT_CAPACITY: usize = 256;

#[derive(Debug, Default)]
struct Lru {
    files: HashMap<u64, (FileRef, u64)>,
    /// Last use -> key, oldest first.
    order: BTreeMap<u64, u64>,
    tick: u64,
    opened: u64,
}

impl Lru {
    fn touch(&mut self, key: u64) -> Option<FileRef> {
        self.tick += 1;
        let tick = self.tick;
        let (file, used) = self.files.get_mut(&key)?;
        self.order.remove(used);
        *used = tick;
        self.order.insert(tick, key);
        Some(Arc::clone(file))
    }

    fn insert(&mut self, key: u64, file: FileRef, capacity: usize) {
        self.remove(key);
        while self.files.len() >= capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.files.remove(&oldest);
        }
        self.tick += 1;
        self.order.insert(self.tick, key);
        self.files.insert(key, (file, self.tick));
    }

    fn remove(&mut self, key: u64) {
        if let Some((_, used)) = self.files.remove(&key) {
            self.order.remove(&used);
        }
    }
}

/// Open files by key (a segment's id), at most `capacity` of them.
#[derive(Debug)]
pub struct FileCache {
    capacity: usize,
    lru: Mutex<Lru>,
}

impl Default for FileCache {
    fn default() -> Self {
        FileCache::new(DEFAULT_CAPACITY)
    }
}

impl FileCache {
    pub fn new(capacity: usize) -> FileCache {
        FileCache {
            capacity: capacity.max(1),
            lru: Mutex::new(Lru::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Files open in the cache now.
    pub fn len(&self) -> usize {
        self.lock().files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Files opened by the cache since it was made (misses).
    pub fn opened(&self) -> u64 {
        self.lock().opened
    }

    /// The file of `key`, opened from `path` when it is not in the cache. The open
    /// happens outside the cache's lock.
    pub fn get_or_open(&self, key: u64, path: &Path, fs: &dyn Fs) -> io::Result<FileRef> {
        if let Some(file) = self.lock().touch(key) {
            return Ok(file);
        }
        let file = fs.open(path, OpenMode::Existing)?;
        let mut lru = self.lock();
        if let Some(raced) = lru.touch(key) {
            return Ok(raced);
        }
        lru.opened += 1;
        lru.insert(key, Arc::clone(&file), self.capacity);
        Ok(file)
    }

    /// Puts an open file in (a segment that stopped being active).
    pub fn put(&self, key: u64, file: FileRef) {
        self.lock().insert(key, file, self.capacity);
    }

    /// Forgets `key` (its segment is gone or replaced).
    pub fn remove(&self, key: u64) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::MemFs;
    use std::path::PathBuf;

    #[test]
    fn the_least_recently_used_file_is_closed_first_and_readers_keep_theirs() {
        let fs = MemFs::new();
        let dir = PathBuf::from("/d");
        fs.create_dir_all(&dir).unwrap();
        for i in 0..4 {
            fs.open(&dir.join(format!("{i}")), OpenMode::Create)
                .unwrap()
                .write_all_at(&[i as u8], 0)
                .unwrap();
        }
        let cache = FileCache::new(2);
        let path = |i: u64| dir.join(format!("{i}"));
        let held = cache.get_or_open(0, &path(0), &fs).unwrap();
        cache.get_or_open(1, &path(1), &fs).unwrap();
        cache.get_or_open(0, &path(0), &fs).unwrap(); // 0 is now the most recent
        cache.get_or_open(2, &path(2), &fs).unwrap(); // evicts 1
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.opened(), 3);
        cache.get_or_open(0, &path(0), &fs).unwrap();
        assert_eq!(cache.opened(), 3, "0 was still cached");
        cache.get_or_open(1, &path(1), &fs).unwrap();
        assert_eq!(cache.opened(), 4, "1 had been closed");
        cache.remove(0);
        cache.remove(1);
        cache.remove(2);
        assert!(cache.is_empty());
        let mut byte = [9u8];
        held.read_exact_at(&mut byte, 0).unwrap();
        assert_eq!(
            byte,
            [0],
            "a reader keeps its file after it leaves the cache"
        );
    }
}
