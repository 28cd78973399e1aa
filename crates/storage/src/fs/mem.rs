//! An in-memory filesystem for tests and simulation, with the failures a disk has.
//!
//! Model: each file has the bytes a reader sees (`current`), the bytes that are on
//! the disk (`durable`), and the writes and truncations made since its last fsync
//! (`pending`). An fsync applies `pending` to `durable`. Names (create, rename,
//! remove, directories) are durable at once and in order, as a journaling
//! filesystem orders them; only file contents are volatile.
//!
//! Faults:
//! - [`MemFs::crash`]: every file goes back to its durable bytes; handles opened
//!   before the crash fail from then on (the process that held them is gone).
//! - [`MemFs::crash_torn`]: as `crash`, but each file keeps a prefix of its unsynced
//!   writes, the last one cut at a byte: a torn write.
//! - [`MemFs::fail_syncs`]: matching fsyncs fail with EIO and, as Linux does after
//!   a failed writeback, the writes they were to make durable never will be (a
//!   later fsync that succeeds does not bring them back).
//! - [`MemFs::fail_writes`]: matching writes fail with EIO and write nothing.
//! - [`MemFs::set_capacity`]: writes past a byte budget fail with ENOSPC after
//!   writing what fits.
//! - [`MemFs::halt_after`]: after that many more changes, every call fails, as if
//!   the process died at that point; then `crash` and reopen.
//! - [`MemFs::hold_syncs`]: fsyncs wait until [`MemFs::release_syncs`], a disk
//!   that is slow to sync, to see what waits on it.
//!
//! [`MemFs::syncs_of`] counts the fsyncs issued (of files and of directories), to
//! see what a flush syncs and how many appends share one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};

use super::{DirEntry, File, FileRef, Fs, LockGuard, OpenMode};

const EIO: i32 = 5;
const ENOSPC: i32 = 28;

/// The in-memory filesystem. Clones share the same files.
#[derive(Clone, Default)]
pub struct MemFs {
    state: Arc<Mutex<State>>,
    gate: Arc<SyncGate>,
}

/// Holds fsyncs while closed ([`MemFs::hold_syncs`]).
#[derive(Debug, Default)]
struct SyncGate {
    /// `(closed, fsyncs waiting)`
    state: Mutex<(bool, usize)>,
    changed: Condvar,
}

impl SyncGate {
    fn lock(&self) -> MutexGuard<'_, (bool, usize)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pass(&self) {
        let mut state = self.lock();
        if !state.0 {
            return;
        }
        state.1 += 1;
        self.changed.notify_all();
        while state.0 {
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state.1 -= 1;
        self.changed.notify_all();
    }
}

impl fmt::Debug for MemFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("MemFs")
            .field("files", &state.files.len())
            .field("generation", &state.generation)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
enum Pending {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Default)]
struct Node {
    current: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Pending>,
    modified_ms: i64,
}

type NodeRef = Arc<Mutex<Node>>;

/// A fault that fires on calls whose path contains `pattern`, `times` times.
#[derive(Debug)]
struct Trigger {
    pattern: String,
    times: u32,
}

#[derive(Debug, Default)]
struct State {
    generation: u64,
    files: BTreeMap<PathBuf, NodeRef>,
    dirs: BTreeSet<PathBuf>,
    locks: BTreeSet<PathBuf>,
    capacity: Option<u64>,
    sync_failures: Vec<Trigger>,
    write_failures: Vec<Trigger>,
    /// Changes left before every call fails; `Some(0)` once halted.
    changes_left: Option<u64>,
    time_ms: i64,
    /// Handles open now: what a descriptor count is on a real filesystem.
    open_handles: usize,
    /// fsyncs issued per path (files and directories), failed ones included.
    syncs: BTreeMap<PathBuf, u64>,
}

fn lock_node(node: &NodeRef) -> MutexGuard<'_, Node> {
    node.lock().unwrap_or_else(|p| p.into_inner())
}

fn apply(bytes: &mut Vec<u8>, op: &Pending) {
    match op {
        Pending::Write { offset, data } => {
            let start = *offset as usize;
            let end = start + data.len();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[start..end].copy_from_slice(data);
        }
        Pending::SetLen(len) => bytes.resize(*len as usize, 0),
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory", path.display()),
    )
}

fn halted() -> io::Error {
    io::Error::other("simulated process death: the filesystem accepts no more calls")
}

fn fire(triggers: &mut [Trigger], path: &Path) -> bool {
    let name = path.to_string_lossy();
    for trigger in triggers.iter_mut() {
        if trigger.times > 0 && name.contains(&trigger.pattern) {
            trigger.times -= 1;
            return true;
        }
    }
    false
}

impl State {
    /// Counts one change; fails once the process is "dead".
    fn change(&mut self) -> io::Result<()> {
        match self.changes_left {
            Some(0) => Err(halted()),
            Some(n) => {
                self.changes_left = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn count_sync(&mut self, path: &Path) {
        *self.syncs.entry(path.to_path_buf()).or_default() += 1;
    }

    fn alive(&self) -> io::Result<()> {
        if self.changes_left == Some(0) {
            return Err(halted());
        }
        Ok(())
    }

    fn used(&self) -> u64 {
        self.files
            .values()
            .map(|n| lock_node(n).current.len() as u64)
            .sum()
    }

    /// Bytes held by every file but `this`, whose lock the caller holds.
    fn used_by_others(&self, this: &NodeRef) -> u64 {
        self.files
            .values()
            .filter(|n| !Arc::ptr_eq(n, this))
            .map(|n| lock_node(n).current.len() as u64)
            .sum()
    }

    fn parent_exists(&self, path: &Path) -> bool {
        match path.parent() {
            None => true,
            Some(p) if p.as_os_str().is_empty() => true,
            Some(p) => self.dirs.contains(p),
        }
    }

    /// How many bytes `this` (locked by the caller, `this_len` long) may grow by
    /// before the disk is full.
    fn room(&self, this: &NodeRef, this_len: u64) -> u64 {
        match self.capacity {
            Some(capacity) => capacity.saturating_sub(self.used_by_others(this) + this_len),
            None => u64::MAX,
        }
    }
}

impl MemFs {
    pub fn new() -> MemFs {
        MemFs::default()
    }

    /// The filesystem as storage takes it.
    pub fn shared(&self) -> Arc<dyn Fs> {
        Arc::new(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Simulates a crash (power loss or kill): every file keeps only its durable
    /// bytes; locks are released; handles opened before fail from now on.
    pub fn crash(&self) {
        self.crash_with(|_, _| 0);
    }

    /// A crash in which each file keeps a prefix of its unsynced changes, chosen
    /// from `seed`, the last kept write cut at a byte (a torn write).
    pub fn crash_torn(&self, seed: u64) {
        let mut rng = seed | 1;
        self.crash_with(move |_, unsynced_bytes| {
            // xorshift64: deterministic and enough for choosing a cut.
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % (unsynced_bytes + 1)
        });
    }

    /// A crash in which the file at `path` keeps exactly `keep` bytes of its
    /// unsynced writes (in order) and every other file none.
    pub fn crash_keeping(&self, path: &Path, keep: u64) {
        let path = path.to_path_buf();
        self.crash_with(move |p, _| if p == path { keep } else { 0 });
    }

    fn crash_with(&self, mut keep: impl FnMut(&Path, u64) -> u64) {
        let mut state = self.lock();
        state.generation += 1;
        state.locks.clear();
        state.changes_left = None;
        state.sync_failures.clear();
        state.write_failures.clear();
        for (path, node) in &state.files {
            let mut node = lock_node(node);
            let unsynced: u64 = node
                .pending
                .iter()
                .map(|op| match op {
                    Pending::Write { data, .. } => data.len() as u64,
                    Pending::SetLen(_) => 1,
                })
                .sum();
            let mut budget = keep(path, unsynced).min(unsynced);
            let mut bytes = node.durable.clone();
            for op in &node.pending {
                if budget == 0 {
                    break;
                }
                match op {
                    Pending::Write { offset, data } => {
                        let take = (data.len() as u64).min(budget) as usize;
                        apply(
                            &mut bytes,
                            &Pending::Write {
                                offset: *offset,
                                data: data[..take].to_vec(),
                            },
                        );
                        budget -= take as u64;
                    }
                    Pending::SetLen(_) => {
                        apply(&mut bytes, op);
                        budget -= 1;
                    }
                }
            }
            node.durable = bytes.clone();
            node.current = bytes;
            node.pending.clear();
        }
    }

    /// The next `times` fsyncs of paths containing `pattern` fail with EIO.
    pub fn fail_syncs(&self, pattern: &str, times: u32) {
        self.lock().sync_failures.push(Trigger {
            pattern: pattern.to_string(),
            times,
        });
    }

    /// The next `times` writes to paths containing `pattern` fail with EIO.
    pub fn fail_writes(&self, pattern: &str, times: u32) {
        self.lock().write_failures.push(Trigger {
            pattern: pattern.to_string(),
            times,
        });
    }

    /// Files may hold at most `bytes` in all (`None`: no limit).
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.lock().capacity = bytes;
    }

    /// After `changes` more changes (writes, truncations, fsyncs, creations,
    /// renames, removals), every call fails until [`MemFs::crash`].
    pub fn halt_after(&self, changes: u64) {
        self.lock().changes_left = Some(changes);
    }

    /// Whether [`MemFs::halt_after`]'s budget ran out.
    pub fn is_halted(&self) -> bool {
        self.lock().changes_left == Some(0)
    }

    /// From now on every fsync waits (before it does anything) until
    /// [`MemFs::release_syncs`].
    pub fn hold_syncs(&self) {
        self.gate.lock().0 = true;
    }

    /// Lets held fsyncs go on, and later ones pass.
    pub fn release_syncs(&self) {
        self.gate.lock().0 = false;
        self.gate.changed.notify_all();
    }

    /// Waits until `count` fsyncs are held, or `timeout` passes; whether they are.
    pub fn wait_for_held_syncs(&self, count: usize, timeout: std::time::Duration) -> bool {
        let (state, _) = self
            .gate
            .changed
            .wait_timeout_while(self.gate.lock(), timeout, |state| state.1 < count)
            .unwrap_or_else(|p| p.into_inner());
        state.1 >= count
    }

    /// fsyncs issued so far (failed ones included; not those refused because the
    /// process is halted) of files and directories whose path contains `pattern`.
    pub fn syncs_of(&self, pattern: &str) -> u64 {
        self.lock()
            .syncs
            .iter()
            .filter(|(path, _)| path.to_string_lossy().contains(pattern))
            .map(|(_, count)| count)
            .sum()
    }

    /// fsyncs issued so far of exactly `path` (a file or a directory).
    pub fn syncs_at(&self, path: &Path) -> u64 {
        self.lock().syncs.get(path).copied().unwrap_or(0)
    }

    /// The modification time given to files written from now on.
    pub fn set_time_ms(&self, now_ms: i64) {
        self.lock().time_ms = now_ms;
    }

    /// Files open now (handles not yet dropped), as `ls /proc/<pid>/fd` counts
    /// descriptors.
    pub fn open_files(&self) -> usize {
        self.lock().open_handles
    }

    /// Bytes held by all files.
    pub fn used_bytes(&self) -> u64 {
        self.lock().used()
    }

    /// The file names directly in `dir`, sorted.
    pub fn file_names(&self, dir: &Path) -> Vec<String> {
        let state = self.lock();
        state
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect()
    }

    /// The bytes a reader sees in the file at `path`.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        state.files.get(path).map(|n| lock_node(n).current.clone())
    }

    /// Replaces the contents of the file at `path`, durably (a test's tampering).
    pub fn set_contents(&self, path: &Path, bytes: &[u8]) {
        let mut state = self.lock();
        let node = state.files.entry(path.to_path_buf()).or_default();
        let mut node = lock_node(node);
        node.current = bytes.to_vec();
        node.durable = bytes.to_vec();
        node.pending.clear();
    }
}

/// An open file of a [`MemFs`].
struct MemFile {
    fs: Weak<Mutex<State>>,
    gate: Arc<SyncGate>,
    node: NodeRef,
    path: PathBuf,
    generation: u64,
}

impl fmt::Debug for MemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemFile").field("path", &self.path).finish()
    }
}

impl MemFile {
    /// The filesystem's state, if this handle is still valid (no crash since it
    /// was opened).
    fn state(&self) -> io::Result<Arc<Mutex<State>>> {
        let state = self
            .fs
            .upgrade()
            .ok_or_else(|| io::Error::other("the filesystem is gone"))?;
        let generation = state.lock().unwrap_or_else(|p| p.into_inner()).generation;
        if generation != self.generation {
            return Err(io::Error::other(
                "stale handle: opened before a simulated crash",
            ));
        }
        Ok(state)
    }

    fn with_state<T>(
        &self,
        f: impl FnOnce(&mut State, &mut Node) -> io::Result<T>,
    ) -> io::Result<T> {
        let state = self.state()?;
        let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
        let mut node = lock_node(&self.node);
        f(&mut state, &mut node)
    }

    fn room(&self, state: &State, node: &Node) -> u64 {
        state.room(&self.node, node.current.len() as u64)
    }

    fn sync(&self) -> io::Result<()> {
        self.gate.pass();
        self.with_state(|state, node| {
            state.change()?;
            state.count_sync(&self.path);
            if fire(&mut state.sync_failures, &self.path) {
                // Linux marks the failed pages clean: those writes are lost for good.
                node.pending.clear();
                return Err(io::Error::from_raw_os_error(EIO));
            }
            let pending = std::mem::take(&mut node.pending);
            for op in &pending {
                apply(&mut node.durable, op);
            }
            Ok(())
        })
    }
}

impl Drop for MemFile {
    fn drop(&mut self) {
        if let Some(state) = self.fs.upgrade() {
            let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
            state.open_handles = state.open_handles.saturating_sub(1);
        }
    }
}

impl File for MemFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.with_state(|state, node| {
            state.alive()?;
            let start = (offset as usize).min(node.current.len());
            let n = buf.len().min(node.current.len() - start);
            buf[..n].copy_from_slice(&node.current[start..start + n]);
            Ok(n)
        })
    }

    fn read_spare_at(&self, buf: &mut Vec<u8>, offset: u64) -> io::Result<usize> {
        self.with_state(|state, node| {
            state.alive()?;
            let start = (offset as usize).min(node.current.len());
            let n = (buf.capacity() - buf.len()).min(node.current.len() - start);
            buf.extend_from_slice(&node.current[start..start + n]);
            Ok(n)
        })
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.with_state(|state, node| {
            state.change()?;
            if fire(&mut state.write_failures, &self.path) {
                return Err(io::Error::from_raw_os_error(EIO));
            }
            let len = node.current.len() as u64;
            let end = offset + buf.len() as u64;
            let room = self.room(state, node);
            let fits = if end > len && end - len > room {
                // Write what fits, then report the full disk, as write(2) does.
                (len + room).saturating_sub(offset).min(buf.len() as u64) as usize
            } else {
                buf.len()
            };
            if fits > 0 {
                let op = Pending::Write {
                    offset,
                    data: buf[..fits].to_vec(),
                };
                apply(&mut node.current, &op);
                node.pending.push(op);
                node.modified_ms = state.time_ms;
            }
            if fits < buf.len() {
                return Err(io::Error::from_raw_os_error(ENOSPC));
            }
            Ok(())
        })
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with_state(|state, node| {
            state.change()?;
            let current = node.current.len() as u64;
            if len > current && len - current > self.room(state, node) {
                return Err(io::Error::from_raw_os_error(ENOSPC));
            }
            let op = Pending::SetLen(len);
            apply(&mut node.current, &op);
            node.pending.push(op);
            node.modified_ms = state.time_ms;
            Ok(())
        })
    }

    fn size(&self) -> io::Result<u64> {
        self.with_state(|state, node| {
            state.alive()?;
            Ok(node.current.len() as u64)
        })
    }

    fn modified_ms(&self) -> io::Result<i64> {
        self.with_state(|state, node| {
            state.alive()?;
            Ok(node.modified_ms)
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync()
    }
}

#[derive(Debug)]
struct MemLock {
    fs: Weak<Mutex<State>>,
    path: PathBuf,
    generation: u64,
}

impl LockGuard for MemLock {}

impl Drop for MemLock {
    fn drop(&mut self) {
        if let Some(state) = self.fs.upgrade() {
            let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
            if state.generation == self.generation {
                state.locks.remove(&self.path);
            }
        }
    }
}

impl Fs for MemFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<FileRef> {
        let mut state = self.lock();
        state.alive()?;
        let existing = state.files.get(path).cloned();
        let node = match (existing, mode) {
            (None, OpenMode::Existing) => return Err(not_found(path)),
            (None, _) => {
                if !state.parent_exists(path) {
                    return Err(not_found(path));
                }
                state.change()?;
                let node = NodeRef::default();
                lock_node(&node).modified_ms = state.time_ms;
                state.files.insert(path.to_path_buf(), Arc::clone(&node));
                node
            }
            (Some(node), OpenMode::Truncate) => {
                state.change()?;
                let mut inner = lock_node(&node);
                inner.current.clear();
                inner.pending.push(Pending::SetLen(0));
                inner.modified_ms = state.time_ms;
                drop(inner);
                node
            }
            (Some(node), _) => node,
        };
        state.open_handles += 1;
        Ok(Arc::new(MemFile {
            fs: Arc::downgrade(&self.state),
            gate: Arc::clone(&self.gate),
            node,
            path: path.to_path_buf(),
            generation: state.generation,
        }))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let state = self.lock();
        state.alive()?;
        Ok(state.files.contains_key(path) || state.dirs.contains(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.alive()?;
        if !state.parent_exists(to) {
            return Err(not_found(to));
        }
        if let Some(node) = state.files.get(from).cloned() {
            state.change()?;
            state.files.remove(from);
            state.files.insert(to.to_path_buf(), node);
            return Ok(());
        }
        if !state.dirs.contains(from) {
            return Err(not_found(from));
        }
        state.change()?;
        let moved = |p: &Path| p.strip_prefix(from).ok().map(|rest| to.join(rest));
        let dirs: Vec<PathBuf> = state.dirs.iter().cloned().collect();
        for dir in dirs {
            if let Some(new) = moved(&dir) {
                state.dirs.remove(&dir);
                state.dirs.insert(new);
            }
        }
        let files: Vec<PathBuf> = state.files.keys().cloned().collect();
        for file in files {
            if let Some(new) = moved(&file) {
                let node = state.files.remove(&file).expect("listed above");
                state.files.insert(new, node);
            }
        }
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.alive()?;
        if !state.files.contains_key(path) {
            return Err(not_found(path));
        }
        state.change()?;
        state.files.remove(path);
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.alive()?;
        if !state.dirs.contains(path) {
            return Err(not_found(path));
        }
        state.change()?;
        state.dirs.retain(|d| !d.starts_with(path));
        state.files.retain(|f, _| !f.starts_with(path));
        Ok(())
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.alive()?;
        if state.dirs.contains(path) {
            return Ok(());
        }
        state.change()?;
        let mut dir = Some(path);
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            state.dirs.insert(d.to_path_buf());
            dir = d.parent();
        }
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let state = self.lock();
        state.alive()?;
        if !state.dirs.contains(path) {
            return Err(not_found(path));
        }
        let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
        let mut out: Vec<DirEntry> = state
            .dirs
            .iter()
            .filter(|d| d.parent() == Some(path))
            .filter_map(|d| name(d))
            .map(|name| DirEntry { name, is_dir: true })
            .collect();
        out.extend(
            state
                .files
                .keys()
                .filter(|f| f.parent() == Some(path))
                .filter_map(|f| name(f))
                .map(|name| DirEntry {
                    name,
                    is_dir: false,
                }),
        );
        Ok(out)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.gate.pass();
        let mut state = self.lock();
        state.alive()?;
        if !state.dirs.contains(path) {
            return Err(not_found(path));
        }
        state.change()?;
        state.count_sync(path);
        if fire(&mut state.sync_failures, path) {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        Ok(())
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn LockGuard>>> {
        {
            let state = self.lock();
            state.alive()?;
            if state.locks.contains(path) {
                return Ok(None);
            }
        }
        self.open(path, OpenMode::Create)?;
        let mut state = self.lock();
        state.locks.insert(path.to_path_buf());
        Ok(Some(Box::new(MemLock {
            fs: Arc::downgrade(&self.state),
            path: path.to_path_buf(),
            generation: state.generation,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{read, write_atomically};

    fn fs_with_dir() -> (MemFs, PathBuf) {
        let fs = MemFs::new();
        let dir = PathBuf::from("/data/t-0");
        fs.create_dir_all(&dir).unwrap();
        (fs, dir)
    }

    #[test]
    fn a_crash_keeps_synced_bytes_and_drops_the_rest() {
        let (fs, dir) = fs_with_dir();
        let path = dir.join("a.log");
        let file = fs.open(&path, OpenMode::Create).unwrap();
        file.write_all_at(b"synced", 0).unwrap();
        file.sync_data().unwrap();
        file.write_all_at(b"-lost", 6).unwrap();
        assert_eq!(fs.contents(&path).unwrap(), b"synced-lost");
        fs.crash();
        assert_eq!(read(&fs, &path).unwrap(), b"synced");
        assert!(
            file.size().is_err(),
            "a handle from before the crash is stale"
        );
    }

    #[test]
    fn a_torn_crash_keeps_a_prefix_of_the_unsynced_bytes() {
        let (fs, dir) = fs_with_dir();
        let path = dir.join("a.log");
        let file = fs.open(&path, OpenMode::Create).unwrap();
        file.write_all_at(b"base", 0).unwrap();
        file.sync_data().unwrap();
        file.write_all_at(b"0123", 4).unwrap();
        file.write_all_at(b"4567", 8).unwrap();
        fs.crash_keeping(&path, 6);
        assert_eq!(read(&fs, &path).unwrap(), b"base012345");
        for seed in 0..20 {
            let file = fs.open(&path, OpenMode::Create).unwrap();
            file.write_all_at(b"abcdefgh", 10).unwrap();
            fs.crash_torn(seed);
            let bytes = read(&fs, &path).unwrap();
            assert!(bytes.len() >= 10 && bytes.len() <= 18, "{bytes:?}");
            assert_eq!(&bytes[..10], b"base012345");
            assert_eq!(&bytes[10..], &b"abcdefgh"[..bytes.len() - 10]);
            file.size().unwrap_err();
            fs.open(&path, OpenMode::Create)
                .unwrap()
                .set_len(10)
                .unwrap();
            fs.open(&path, OpenMode::Create)
                .unwrap()
                .sync_data()
                .unwrap();
        }
    }

    #[test]
    fn a_failed_fsync_loses_its_writes_even_after_a_later_fsync_succeeds() {
        let (fs, dir) = fs_with_dir();
        let path = dir.join("a.log");
        let file = fs.open(&path, OpenMode::Create).unwrap();
        file.write_all_at(b"one", 0).unwrap();
        fs.fail_syncs("a.log", 1);
        assert_eq!(file.sync_data().unwrap_err().raw_os_error(), Some(EIO));
        file.write_all_at(b"two", 3).unwrap();
        file.sync_data().unwrap();
        assert_eq!(fs.contents(&path).unwrap(), b"onetwo");
        fs.crash();
        // The first write never reached the disk; the second did (at its offset).
        assert_eq!(read(&fs, &path).unwrap(), b"\0\0\0two");
    }

    #[test]
    fn a_full_disk_writes_what_fits_and_says_enospc() {
        let (fs, dir) = fs_with_dir();
        let path = dir.join("a.log");
        let file = fs.open(&path, OpenMode::Create).unwrap();
        fs.set_capacity(Some(8));
        file.write_all_at(b"12345", 0).unwrap();
        let error = file.write_all_at(b"6789", 5).unwrap_err();
        assert!(crate::fs::is_out_of_space(&error));
        assert_eq!(fs.contents(&path).unwrap(), b"12345678");
        file.set_len(5).unwrap();
        fs.set_capacity(None);
        file.write_all_at(b"6789", 5).unwrap();
        assert_eq!(fs.used_bytes(), 9);
    }

    #[test]
    fn names_and_atomic_writes_behave_like_a_directory_tree() {
        let (fs, dir) = fs_with_dir();
        write_atomically(&fs, &dir.join("checkpoint"), b"v1").unwrap();
        write_atomically(&fs, &dir.join("checkpoint"), b"v2").unwrap();
        fs.crash();
        assert_eq!(read(&fs, &dir.join("checkpoint")).unwrap(), b"v2");
        let mut names: Vec<String> = fs
            .list_dir(&dir)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        names.sort();
        assert_eq!(names, vec!["checkpoint"]);
        fs.rename(&dir, Path::new("/data/t-0.x-delete")).unwrap();
        assert!(fs
            .exists(Path::new("/data/t-0.x-delete/checkpoint"))
            .unwrap());
        fs.remove_dir_all(Path::new("/data/t-0.x-delete")).unwrap();
        assert!(fs.list_dir(Path::new("/data")).unwrap().is_empty());
        assert!(
            fs.open(&dir.join("x"), OpenMode::Create).is_err(),
            "no such directory"
        );
    }

    #[test]
    fn a_halted_filesystem_refuses_everything_until_the_crash() {
        let (fs, dir) = fs_with_dir();
        fs.halt_after(1);
        let file = fs.open(&dir.join("a"), OpenMode::Create).unwrap();
        assert!(file.write_all_at(b"x", 0).is_err());
        assert!(fs.is_halted());
        assert!(fs.list_dir(&dir).is_err());
        fs.crash();
        assert_eq!(fs.list_dir(&dir).unwrap().len(), 1);
        let lock = fs.try_lock(&dir.join(".lock")).unwrap();
        assert!(lock.is_some());
        assert!(fs.try_lock(&dir.join(".lock")).unwrap().is_none());
        fs.crash();
        assert!(
            fs.try_lock(&dir.join(".lock")).unwrap().is_some(),
            "a crash frees locks"
        );
        drop(lock);
    }
}
