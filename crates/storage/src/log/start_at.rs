//! Emptying a log and starting it afresh at an offset (Kafka's
//! `UnifiedLog.truncateFullyAndStartAt`): what a replica does when its leader
//! sends it a snapshot past its whole log, and what the Raft metadata log does
//! when everything it holds is purged or its first entry comes after its end.

use std::sync::Arc;

use super::Log;
use crate::error::StorageError;
use crate::producer_state::{self, ProducerStateManager};
use crate::segment::Segment;

impl Log {
    /// Deletes every segment and starts the log empty at `offset`: afterwards
    /// `log_start_offset == log_end_offset == offset`, the leader epoch cache and
    /// the producer state are empty. Durable when it returns: the old segments'
    /// names are gone from the directory (fsynced) before the new segment exists,
    /// so a crash leaves either the old log or no segment at all (which the next
    /// open starts at the log start offset its owner kept).
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), StorageError> {
        assert!(offset >= 0, "a log starts at a non-negative offset");
        self.env.dir.check()?;
        let dir = Arc::clone(&self.env.dir);
        let fatal = |context: &'static str| {
            let dir = Arc::clone(&dir);
            move |e| dir.io_failure(context, e, false)
        };
        for (_, segment) in std::mem::take(&mut self.segments) {
            segment
                .delete_files(&*self.env.fs)
                .map_err(fatal("deleting segment"))?;
        }
        producer_state::delete_snapshots_above(&*self.env.fs, &self.dir, -1)
            .map_err(fatal("deleting producer snapshots"))?;
        self.env
            .fs
            .sync_dir(&self.dir)
            .map_err(fatal("syncing the log directory"))?;
        self.leader_epochs
            .truncate_from_end(i64::MIN)
            .map_err(fatal("leader epoch checkpoint"))?;
        let mut segment = Segment::create(
            &self.env,
            &self.dir,
            offset,
            self.config.index_interval_bytes,
            self.config.max_index_entries(),
            self.config.max_time_index_entries(),
        )
        .map_err(fatal("creating a segment"))?;
        segment
            .make_active()
            .map_err(fatal("opening the active segment"))?;
        self.segments.insert(offset, segment);
        self.env
            .fs
            .sync_dir(&self.dir)
            .map_err(fatal("syncing the log directory"))?;
        self.log_start_offset = offset;
        self.recovery_point = offset;
        // Nothing left to flush: the old files are gone, the directory is synced.
        self.flushed_messages = self.appended_messages;
        self.unsynced_snapshots.clear();
        self.dir_changes_synced = self.dir_changes;
        self.producer_state = ProducerStateManager::new(offset);
        self.env.dir.set_log_start(&self.topic_partition, offset);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use protocol::records::{BatchBuilder, Compression, NewRecord};
    use protocol::time::ManualClock;
    use protocol::TopicPartition;

    use crate::fs::MemFs;
    use crate::log::{LoadState, Log};
    use crate::{LogConfig, LogEnv, Origin};

    fn batch() -> Vec<u8> {
        let mut builder = BatchBuilder::new(Compression::None);
        builder.append(&NewRecord {
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(b"v"),
            headers: &[],
        });
        builder.build().unwrap()
    }

    #[test]
    fn a_log_started_afresh_is_empty_at_the_offset_and_survives_a_crash() {
        let fs = MemFs::new();
        let env = LogEnv::new(fs.shared(), Arc::new(ManualClock::new(1_700_000_000_000)));
        let config = Arc::new(LogConfig::resolve(&BTreeMap::new(), &BTreeMap::new()).unwrap());
        let dir = std::path::Path::new("/data/t-0");
        let open = |start| {
            Log::open(
                dir,
                TopicPartition::new("t", 0),
                Arc::clone(&config),
                &env,
                LoadState {
                    recovery_point: 0,
                    log_start_offset: start,
                    clean_shutdown: false,
                },
            )
            .unwrap()
        };
        let mut log = open(0);
        for _ in 0..3 {
            log.append_as_leader(&batch(), 4, Origin::Coordinator)
                .unwrap();
        }
        log.roll().unwrap();
        log.append_as_leader(&batch(), 5, Origin::Coordinator)
            .unwrap();
        log.truncate_fully_and_start_at(10).unwrap();
        assert_eq!(log.log_start_offset().0, 10);
        assert_eq!(log.log_end_offset().0, 10);
        assert_eq!(log.segment_base_offsets(), vec![10]);
        assert_eq!(log.latest_epoch(), None);
        let info = log
            .append_as_leader(&batch(), 6, Origin::Coordinator)
            .unwrap();
        assert_eq!(info.first_offset.0, 10);
        log.flush(11).unwrap();
        drop(log);
        fs.crash();
        let log = open(10);
        assert_eq!(log.log_start_offset().0, 10);
        assert_eq!(log.log_end_offset().0, 11);
        assert_eq!(log.latest_epoch(), Some(6));
        assert_eq!(log.segment_base_offsets(), vec![10]);
    }
}
