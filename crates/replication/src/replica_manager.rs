//! The replica manager: the partitions this broker hosts, kept in step with the
//! cluster image.
//!
//! When a metadata change lands, [`ReplicaManager::apply_image`] creates logs for new
//! partitions this broker is a replica of, updates leaders, epochs and ISRs, applies
//! changed topic configs, and deletes the logs of partitions no longer hosted here.
//! Follower fetching and ISR changes arrive with the replication issue; the state
//! they need (leader epoch, ISR, HW) is already here.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use metadata::{ClusterImage, TopicImage};
use protocol::TopicPartition;
use storage::checkpoint::{self, REPLICATION_OFFSET_CHECKPOINT};
use storage::log_manager::DiscoveredLog;
use storage::{LogConfig, LogManager, StorageError};
use uuid::Uuid;

use crate::partition::{Partition, PartitionState, ReplicationError, SharedPartition};

/// Resolves a topic's effective log config from its overrides.
pub type ConfigResolver = dyn Fn(&TopicImage) -> Arc<LogConfig> + Send + Sync;

#[derive(Default)]
struct Hosted {
    by_name: HashMap<TopicPartition, SharedPartition>,
    by_id: HashMap<(Uuid, i32), SharedPartition>,
}

pub struct ReplicaManager {
    node_id: i32,
    log_manager: Arc<LogManager>,
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
        log_manager: Arc<LogManager>,
        discovered: Vec<DiscoveredLog>,
    ) -> ReplicaManager {
        let mut checkpointed_high_watermarks = BTreeMap::new();
        for dir in log_manager.log_dirs() {
            match checkpoint::read_offsets(&dir.join(REPLICATION_OFFSET_CHECKPOINT)) {
                Ok(offsets) => checkpointed_high_watermarks.extend(offsets),
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring unreadable high watermark checkpoint")
                }
            }
        }
        ReplicaManager {
            node_id,
            log_manager,
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

    pub fn log_manager(&self) -> &Arc<LogManager> {
        &self.log_manager
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
        let mut wanted: HashMap<TopicPartition, ()> = HashMap::new();
        for topic in image.topics.values() {
            let config = resolve_config(topic);
            for p in topic.partitions.values() {
                if !p.replicas.contains(&self.node_id) {
                    continue;
                }
                let tp = TopicPartition::new(Arc::clone(&topic.name), p.partition);
                wanted.insert(tp.clone(), ());
                if let Some(existing) = self.get(&tp) {
                    if existing.topic_id() == topic.topic_id {
                        existing.update_state(
                            p.leader,
                            p.leader_epoch,
                            p.partition_epoch,
                            p.replicas.clone(),
                            p.isr.clone(),
                        );
                        let mut log = existing.log().lock().unwrap_or_else(|e| e.into_inner());
                        if **log.config() != *config {
                            log.set_config(Arc::clone(&config));
                        }
                        continue;
                    }
                    // Same name, new id: the topic was deleted and re-created.
                    self.remove(&tp)?;
                }
                let log = self.open_or_create(&tp, topic.topic_id, Arc::clone(&config))?;
                let high_watermark = self
                    .checkpointed_high_watermarks
                    .get(&tp)
                    .copied()
                    .unwrap_or(0);
                let high_watermark = {
                    let log = log.lock().unwrap_or_else(|e| e.into_inner());
                    high_watermark.clamp(log.log_start_offset().0, log.log_end_offset().0)
                };
                let state = PartitionState {
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    high_watermark,
                };
                let partition = Arc::new(Partition::new(
                    tp.clone(),
                    topic.topic_id,
                    self.node_id,
                    log,
                    state,
                ));
                let mut hosted = self.hosted.write().unwrap_or_else(|e| e.into_inner());
                hosted
                    .by_id
                    .insert((topic.topic_id, p.partition), Arc::clone(&partition));
                hosted.by_name.insert(tp, partition);
            }
        }
        let gone: Vec<TopicPartition> = {
            let hosted = self.hosted.read().unwrap_or_else(|e| e.into_inner());
            hosted
                .by_name
                .keys()
                .filter(|tp| !wanted.contains_key(*tp))
                .cloned()
                .collect()
        };
        for tp in gone {
            self.remove(&tp)?;
        }
        // Logs on disk that no topic claims: left over from a topic deleted while down.
        let strays: Vec<DiscoveredLog> =
            std::mem::take(&mut *self.discovered.lock().unwrap_or_else(|e| e.into_inner()))
                .into_values()
                .collect();
        for stray in strays {
            self.log_manager.delete_stray(&stray)?;
        }
        Ok(())
    }

    fn open_or_create(
        &self,
        tp: &TopicPartition,
        topic_id: Uuid,
        config: Arc<LogConfig>,
    ) -> Result<storage::SharedLog, StorageError> {
        let found = self
            .discovered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(tp);
        if let Some(found) = found {
            if found.topic_id.is_none() || found.topic_id == Some(topic_id) {
                return self.log_manager.load_log(&found, config);
            }
            // A log of an older topic with the same name.
            self.log_manager.delete_stray(&found)?;
        }
        self.log_manager.create_log(tp, topic_id, config)
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
        if removed.is_some() {
            tracing::info!(partition = %tp, "deleting log of a partition no longer hosted here");
            self.log_manager.delete_log(tp)?;
        }
        Ok(())
    }

    /// Writes every log dir's high watermark checkpoint.
    pub fn checkpoint_high_watermarks(&self) -> Result<(), StorageError> {
        let mut per_dir: BTreeMap<PathBuf, BTreeMap<TopicPartition, i64>> = BTreeMap::new();
        for dir in self.log_manager.log_dirs() {
            per_dir.entry(dir).or_default();
        }
        for partition in self.partitions() {
            let dir = {
                let log = partition.log().lock().unwrap_or_else(|e| e.into_inner());
                log.dir().parent().map(|p| p.to_path_buf())
            };
            if let Some(dir) = dir {
                per_dir.entry(dir).or_default().insert(
                    partition.topic_partition().clone(),
                    partition.high_watermark(),
                );
            }
        }
        for (dir, offsets) in per_dir {
            checkpoint::write_offsets(&dir.join(REPLICATION_OFFSET_CHECKPOINT), &offsets)
                .map_err(|e| StorageError::io("writing high watermark checkpoint", e))?;
        }
        Ok(())
    }
}
