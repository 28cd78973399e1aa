//! What a log is given by whoever opens it (the log manager, or the broker for its
//! metadata log): the filesystem, the clock, a source of randomness (directory
//! ids, the names of logs being deleted), and the cache of open segment files
//! shared by every log of the broker. Nothing in storage reaches for any of them
//! on its own, so tests and a simulation can hand in [`crate::fs::MemFs`], a
//! manual clock and a seeded stream.

use std::sync::Arc;

use protocol::random::{OsRandom, Random, SeededRandom};
use protocol::time::Clock;

use crate::fs::{FileCache, Fs, RealFs};
use crate::log_dir::LogDirState;

#[derive(Debug, Clone)]
pub struct LogEnv {
    pub fs: Arc<dyn Fs>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
    /// The `.log` files of segments that are not active, opened on demand.
    pub files: Arc<FileCache>,
    /// The log dir's state: online or not, and its log start offsets.
    pub dir: Arc<LogDirState>,
    /// Where the files of retired segments are unlinked.
    pub deletes: SegmentDeletes,
}

/// Where a retired segment's `.deleted` files are unlinked and the segment
/// dropped. A thread of its own keeps a large unlink off the caller, which may hold
/// the partition's lock; tests and a simulation unlink on the caller, so that the
/// filesystem sees every operation in one order (MemFs's step-counted faults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentDeletes {
    Background,
    Inline,
}

impl LogEnv {
    /// With a file cache of the default size, a seeded source of randomness
    /// (seed 0; [`LogEnv::with_random`] gives another) and retired segments
    /// deleted on the caller's thread.
    pub fn new(fs: Arc<dyn Fs>, clock: Arc<dyn Clock>) -> LogEnv {
        LogEnv {
            fs,
            clock,
            random: Arc::new(SeededRandom::new(0)),
            files: Arc::new(FileCache::default()),
            dir: LogDirState::detached(),
            deletes: SegmentDeletes::Inline,
        }
    }

    /// The same, for the logs of log dir `dir`.
    pub fn for_dir(&self, dir: Arc<LogDirState>) -> LogEnv {
        LogEnv {
            dir,
            ..self.clone()
        }
    }

    /// The same, with a cache of `capacity` open files.
    pub fn with_file_cache(mut self, capacity: usize) -> LogEnv {
        self.files = Arc::new(FileCache::new(capacity));
        self
    }

    /// The same, drawing randomness from `random`.
    pub fn with_random(mut self, random: Arc<dyn Random>) -> LogEnv {
        self.random = random;
        self
    }

    /// The same, unlinking retired segments as `deletes` says.
    pub fn with_deletes(mut self, deletes: SegmentDeletes) -> LogEnv {
        self.deletes = deletes;
        self
    }

    /// The real filesystem with `clock`, the operating system's randomness, and
    /// retired segments deleted in the background.
    pub fn real(clock: Arc<dyn Clock>) -> LogEnv {
        LogEnv::new(RealFs::shared(), clock)
            .with_random(Arc::new(OsRandom))
            .with_deletes(SegmentDeletes::Background)
    }
}
