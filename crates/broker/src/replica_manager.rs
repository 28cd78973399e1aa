//! The replica manager: the partitions this broker hosts, kept in step with the
//! cluster image. The shell of `replication::hosting`.
//!
//! When a metadata change lands, [`ReplicaManager::apply_image`] asks
//! `replication::hosting::plan` what to do and does it: opens or creates the logs
//! of new partitions, feeds changed leaders, epochs and ISRs to the hosted ones
//! (their machines decide whether they lead or follow), applies changed topic
//! configs, and deletes the logs of partitions no longer hosted here.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use metadata::{ClusterImage, TopicImage};
use protocol::time::Clock;
use protocol::TopicPartition;
use replication::{
    HostingCommand, LogOffsets, PartitionMetadata, ReplicationConfig, ReplicationError,
};
use storage::checkpoint::{self, REPLICATION_OFFSET_CHECKPOINT};
use storage::log_manager::DiscoveredLog;
use storage::{LogConfig, LogManager, StorageError};
use uuid::Uuid;

use crate::partition::{HostedPartition, SharedPartition};

/// Resolves a topic's effective log config from its overrides.
pub type ConfigResolver = dyn Fn(&TopicImage) -> Arc<LogConfig> + Send + Sync;

#[derive(Default)]
struct Hosted {
    by_name: HashMap<TopicPartition, SharedPartition>,
    by_id: HashMap<(Uuid, i32), SharedPartition>,
}

pub struct ReplicaManager {
    node_id: i32,
    clock: Arc<dyn Clock>,
    log_manager: Arc<LogManager>,
    /// `replica.lag.time.max.ms`
    replica_lag_time_max_ms: i64,
    hosted: RwLock<Hosted>,
    /// Logs found on disk at start-up, waiting for the image to claim them.
    discovered: Mutex<BTreeMap<TopicPartition, DiscoveredLog>>,
    /// High watermarks from the last checkpoint, used when a partition is first hosted.
    checkpointed_high_watermarks: BTreeMap<TopicPartition, i64>,
    /// Serialises image application (creates and deletes logs).
    apply_lock: Mutex<()>,
}

impl std::fmt::Debug for ReplicaManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaManager")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl ReplicaManager {
    /// `discovered` are the partition directories found on disk; they are opened
    /// when the image says this broker hosts them, and deleted otherwise.
    pub fn new(
        node_id: i32,
        clock: Arc<dyn Clock>,
        log_manager: Arc<LogManager>,
        discovered: Vec<DiscoveredLog>,
        replica_lag_time_max_ms: i64,
    ) -> ReplicaManager {
        let mut checkpointed_high_watermarks = BTreeMap::new();
        for dir in log_manager.log_dirs() {
            match checkpoint::read_offsets_in(
                &**log_manager.fs(),
                &dir.join(REPLICATION_OFFSET_CHECKPOINT),
            ) {
                Ok(offsets) => checkpointed_high_watermarks.extend(offsets),
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring unreadable high watermark checkpoint")
                }
            }
        }
        ReplicaManager {
            node_id,
            clock,
            log_manager,
            replica_lag_time_max_ms,
            hosted: RwLock::new(Hosted::default()),
            discovered: Mutex::new(
                discovered
                    .into_iter()
                    .map(|d| (d.topic_partition.clone(), d))
                    .collect(),
            ),
            checkpointed_high_watermarks,
            apply_lock: Mutex::new(()),
        }
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// Whether `new_logs` more logs fit the broker's file descriptor budget
    /// (`storage::descriptors`); the reason when they do not.
    pub fn check_new_logs(&self, new_logs: usize) -> Result<(), String> {
        self.log_manager.check_new_logs(new_logs)
    }

    /// The filesystem the logs live on (real, or in memory in tests).
    pub fn fs(&self) -> &Arc<dyn storage::fs::Fs> {
        self.log_manager.fs()
    }

    pub fn log_dirs(&self) -> Vec<PathBuf> {
        self.log_manager.log_dirs()
    }

    pub fn replica_lag_time_max_ms(&self) -> i64 {
        self.replica_lag_time_max_ms
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<SharedPartition> {
        self.hosted
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_name
            .get(tp)
            .cloned()
    }

    pub fn get_by_id(&self, topic_id: &Uuid, partition: i32) -> Option<SharedPartition> {
        self.hosted
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_id
            .get(&(*topic_id, partition))
            .cloned()
    }

    pub fn partitions(&self) -> Vec<SharedPartition> {
        self.hosted
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_name
            .values()
            .cloned()
            .collect()
    }

    /// Brings the hosted partitions in line with `image`. Blocking (opens, creates
    /// and deletes logs): call off the async runtime.
    pub fn apply_image(
        &self,
        image: &ClusterImage,
        resolve_config: &ConfigResolver,
    ) -> Result<(), ReplicationError> {
        let _guard = self.apply_lock.lock().unwrap_or_else(|p| p.into_inner());
        let hosted: BTreeMap<TopicPartition, Uuid> = self
            .partitions()
            .iter()
            .map(|p| (p.topic_partition().clone(), p.topic_id()))
            .collect();
        let discovered: BTreeMap<TopicPartition, Option<Uuid>> = self
            .discovered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(tp, found)| (tp.clone(), found.topic_id))
            .collect();
        for command in replication::hosting::plan(self.node_id, image, &hosted, &discovered) {
            self.execute(image, resolve_config, command)?;
        }
        Ok(())
    }

    fn execute(
        &self,
        image: &ClusterImage,
        resolve_config: &ConfigResolver,
        command: HostingCommand,
    ) -> Result<(), ReplicationError> {
        let config_of = |tp: &TopicPartition| {
            let topic = image
                .topic(&tp.topic)
                .expect("the plan only hosts partitions of topics in the image");
            resolve_config(topic)
        };
        match command {
            HostingCommand::Remove { topic_partition } => self.remove(&topic_partition)?,
            HostingCommand::DeleteStray { topic_partition } => {
                let found = self
                    .discovered
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&topic_partition);
                if let Some(found) = found {
                    self.log_manager.delete_stray(&found)?;
                }
            }
            HostingCommand::Load {
                topic_partition,
                topic_id,
                metadata,
            } => {
                let found = self
                    .discovered
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&topic_partition)
                    .expect("the plan loads only discovered logs");
                let log = self
                    .log_manager
                    .load_log(&found, config_of(&topic_partition))?;
                self.host(topic_partition, topic_id, log, metadata);
            }
            HostingCommand::Create {
                topic_partition,
                topic_id,
                metadata,
            } => {
                let log = self.log_manager.create_log(
                    &topic_partition,
                    topic_id,
                    config_of(&topic_partition),
                )?;
                self.host(topic_partition, topic_id, log, metadata);
            }
            HostingCommand::Update {
                topic_partition,
                metadata,
            } => {
                if let Some(partition) = self.get(&topic_partition) {
                    let config = config_of(&topic_partition);
                    partition.update(metadata, &config, self.replica_lag_time_max_ms);
                }
            }
        }
        Ok(())
    }

    fn host(
        &self,
        tp: TopicPartition,
        topic_id: Uuid,
        log: storage::SharedLog,
        metadata: PartitionMetadata,
    ) {
        let offsets = {
            let log = log.lock().unwrap_or_else(|e| e.into_inner());
            LogOffsets {
                log_start_offset: log.log_start_offset().0,
                log_end_offset: log.log_end_offset().0,
                high_watermark: self
                    .checkpointed_high_watermarks
                    .get(&tp)
                    .copied()
                    .unwrap_or(0),
            }
        };
        let min_insync_replicas = log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .config()
            .min_insync_replicas;
        let config = ReplicationConfig {
            min_insync_replicas,
            replica_lag_time_max_ms: self.replica_lag_time_max_ms,
        };
        let machine = replication::Partition::new(tp.clone(), self.node_id, config, offsets);
        let partition = Arc::new(HostedPartition::new(
            topic_id,
            log,
            Arc::clone(&self.clock),
            machine,
            metadata,
        ));
        let mut hosted = self.hosted.write().unwrap_or_else(|e| e.into_inner());
        hosted
            .by_id
            .insert((topic_id, tp.partition), Arc::clone(&partition));
        hosted.by_name.insert(tp, partition);
    }

    fn remove(&self, tp: &TopicPartition) -> Result<(), ReplicationError> {
        let removed = {
            let mut hosted = self.hosted.write().unwrap_or_else(|e| e.into_inner());
            let removed = hosted.by_name.remove(tp);
            if let Some(partition) = &removed {
                hosted.by_id.remove(&(partition.topic_id(), tp.partition));
            }
            removed
        };
        if let Some(partition) = removed {
            partition.mark_deleted();
            tracing::info!(partition = %tp, "deleting log of a partition no longer hosted here");
            self.log_manager.delete_log(tp)?;
        }
        Ok(())
    }

    /// Lets time pass for every partition: waiting produces past their deadline
    /// are answered, lagging followers are proposed to leave the ISR.
    pub fn tick(&self) {
        for partition in self.partitions() {
            partition.tick();
        }
    }

    /// Writes every log dir's high watermark checkpoint.
    pub fn checkpoint_high_watermarks(&self) -> Result<(), StorageError> {
        let mut per_dir: BTreeMap<PathBuf, BTreeMap<TopicPartition, i64>> = BTreeMap::new();
        for dir in self.log_manager.log_dirs() {
            per_dir.entry(dir).or_default();
        }
        for partition in self.partitions() {
            if let (Some(dir), _) = partition.log_dir_and_size() {
                per_dir.entry(dir).or_default().insert(
                    partition.topic_partition().clone(),
                    partition.high_watermark(),
                );
            }
        }
        for (dir, offsets) in per_dir {
            let path = dir.join(REPLICATION_OFFSET_CHECKPOINT);
            checkpoint::write_offsets_in(&**self.log_manager.fs(), &path, &offsets)
                .map_err(|e| StorageError::io("writing high watermark checkpoint", e))?;
        }
        Ok(())
    }
}
