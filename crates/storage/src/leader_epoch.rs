//! The leader epoch cache of one partition: which leader epoch began at which offset.
//!
//! Entries `(epoch, start_offset)` strictly increase in both fields. A new entry is
//! added when a batch with a higher partition leader epoch is appended. After a
//! leader change a follower asks the new leader where its epoch ends
//! (OffsetForLeaderEpoch) and truncates there; this cache answers that. Persisted
//! in `leader-epoch-checkpoint` on every change (changes are rare).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::checkpoint::{read_epochs, write_epochs, LEADER_EPOCH_CHECKPOINT};
use crate::fs::Fs;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

#[derive(Debug)]
pub struct LeaderEpochCache {
    fs: Arc<dyn Fs>,
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Loads the cache of the partition in `dir`. A corrupt file is logged and
    /// dropped: the cache is advisory on a single node and rebuilt by new appends.
    pub fn load(fs: Arc<dyn Fs>, dir: &Path) -> LeaderEpochCache {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT);
        let entries = match read_epochs(&*fs, &path) {
            Ok(pairs) => pairs
                .into_iter()
                .map(|(epoch, start_offset)| EpochEntry {
                    epoch,
                    start_offset,
                })
                .collect::<Vec<_>>(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable leader epoch checkpoint");
                Vec::new()
            }
        };
        let ordered = entries
            .windows(2)
            .all(|w| w[0].epoch < w[1].epoch && w[0].start_offset <= w[1].start_offset);
        let entries = if ordered {
            entries
        } else {
            tracing::warn!(path = %path.display(), "leader epoch checkpoint is out of order; ignoring it");
            Vec::new()
        };
        LeaderEpochCache { fs, path, entries }
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Whether [`LeaderEpochCache::assign`] of `epoch` at `start_offset` would
    /// change the entries (and write the checkpoint, with an fsync).
    pub fn would_assign(&self, epoch: i32, start_offset: i64) -> bool {
        epoch >= 0
            && start_offset >= 0
            && !self
                .latest()
                .is_some_and(|latest| epoch == latest.epoch && start_offset >= latest.start_offset)
    }

    /// Records that `epoch` starts at `start_offset` (Kafka's `assign`): nothing to
    /// do when it is the latest epoch and starts no earlier; otherwise every entry
    /// of an epoch at or above it, or starting at or after it, belongs to a history
    /// this one replaces and goes. A follower needs the second case: as a leader it
    /// may have recorded an epoch it never wrote a batch in, and then replicates
    /// batches of a lower epoch from the leader that won instead.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> io::Result<()> {
        if !self.would_assign(epoch, start_offset) {
            return Ok(());
        }
        let before = self.entries.clone();
        self.entries
            .retain(|e| e.epoch < epoch && e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        // Not persisted, not recorded: the caller refuses what needed the entry.
        self.persist().inspect_err(|_| self.entries = before)
    }

    /// The epoch the record at `offset` was written in.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        let after = self.entries.partition_point(|e| e.start_offset <= offset);
        after.checked_sub(1).map(|i| self.entries[i].epoch)
    }

    /// Where `epoch` ends (Kafka's `endOffsetFor`, which OffsetForLeaderEpoch and a
    /// follower's fetch ask): `(the largest epoch at or below it, the start of the
    /// next higher epoch)`, or `(epoch, log_end_offset)` when it is the latest.
    /// An epoch below every entry (its records are gone) ends where the first
    /// entry starts, and is answered as itself. `None` (Kafka's UNDEFINED) for a
    /// negative epoch, an empty cache, or an epoch above the latest.
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        let latest = self.latest()?;
        if epoch < 0 || epoch > latest.epoch {
            return None;
        }
        if epoch == latest.epoch {
            return Some((epoch, log_end_offset));
        }
        let after = self.entries.partition_point(|e| e.epoch <= epoch);
        let end = self.entries[after].start_offset;
        match after.checked_sub(1) {
            Some(found) => Some((self.entries[found].epoch, end)),
            None => Some((epoch, end)),
        }
    }

    /// Drops entries that start at or after `offset` (the log was truncated there).
    pub fn truncate_from_end(&mut self, offset: i64) -> io::Result<()> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < offset);
        if self.entries.len() != before {
            self.persist()?;
        }
        Ok(())
    }

    /// Forgets history below `offset` (the log start moved): the entry covering
    /// `offset` now starts there.
    pub fn truncate_from_start(&mut self, offset: i64) -> io::Result<()> {
        let covering = self.entries.partition_point(|e| e.start_offset <= offset);
        if covering == 0 {
            return Ok(());
        }
        let dropped = covering - 1;
        let moved = self.entries[dropped].start_offset < offset;
        self.entries.drain(..dropped);
        if moved {
            self.entries[0].start_offset = offset;
        }
        if dropped > 0 || moved {
            self.persist()?;
        }
        Ok(())
    }

    fn persist(&self) -> io::Result<()> {
        let pairs: Vec<(i32, i64)> = self
            .entries
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect();
        write_epochs(&*self.fs, &self.path, &pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_epochs_are_recorded_and_answer_lookups() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = LeaderEpochCache::load(crate::fs::RealFs::shared(), dir.path());
        cache.assign(0, 0).unwrap();
        cache.assign(0, 10).unwrap();
        cache.assign(2, 50).unwrap();
        assert_eq!(cache.entries().len(), 2);
        assert_eq!(cache.epoch_for_offset(49), Some(0));
        assert_eq!(cache.epoch_for_offset(50), Some(2));
        assert_eq!(cache.end_offset_for(0, 80), Some((0, 50)));
        assert_eq!(cache.end_offset_for(1, 80), Some((0, 50)));
        assert_eq!(cache.end_offset_for(2, 80), Some((2, 80)));
        // Kafka's UNDEFINED: no epoch, or one above the latest.
        assert_eq!(cache.end_offset_for(-1, 80), None);
        assert_eq!(cache.end_offset_for(3, 80), None);
        let reloaded = LeaderEpochCache::load(crate::fs::RealFs::shared(), dir.path());
        assert_eq!(reloaded.entries(), cache.entries());
    }

    #[test]
    fn an_older_epoch_replaces_the_entries_it_contradicts() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = LeaderEpochCache::load(crate::fs::RealFs::shared(), dir.path());
        cache.assign(1, 0).unwrap();
        cache.assign(3, 10).unwrap();
        // The same epoch starting earlier moves its start back.
        cache.assign(3, 8).unwrap();
        assert_eq!(
            cache.latest(),
            Some(EpochEntry {
                epoch: 3,
                start_offset: 8
            })
        );
        // A lower epoch at the end removes the higher one: it was never written.
        cache.assign(2, 8).unwrap();
        assert_eq!(
            cache.entries(),
            &[
                EpochEntry {
                    epoch: 1,
                    start_offset: 0
                },
                EpochEntry {
                    epoch: 2,
                    start_offset: 8
                }
            ]
        );
        // Negative epochs and offsets are not recorded.
        cache.assign(-1, 20).unwrap();
        cache.assign(5, -1).unwrap();
        assert_eq!(cache.entries().len(), 2);
        assert_eq!(
            LeaderEpochCache::load(crate::fs::RealFs::shared(), dir.path()).entries(),
            cache.entries()
        );
    }

    #[test]
    fn truncation_from_both_ends() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = LeaderEpochCache::load(crate::fs::RealFs::shared(), dir.path());
        cache.assign(1, 0).unwrap();
        cache.assign(2, 10).unwrap();
        cache.assign(3, 20).unwrap();
        cache.truncate_from_end(20).unwrap();
        assert_eq!(
            cache.latest(),
            Some(EpochEntry {
                epoch: 2,
                start_offset: 10
            })
        );
        cache.truncate_from_start(15).unwrap();
        // An epoch whose records are gone ends where the first kept one starts.
        assert_eq!(cache.end_offset_for(1, 40), Some((1, 15)));
        assert_eq!(
            cache.entries(),
            &[EpochEntry {
                epoch: 2,
                start_offset: 15
            }]
        );
        assert_eq!(
            LeaderEpochCache::load(crate::fs::RealFs::shared(), dir.path()).entries(),
            cache.entries()
        );
    }
}
