//! The logs of one broker across its log dirs (`log.dirs`).
//!
//! Each log dir holds:
//! ```text
//! meta.properties                     node.id, cluster.id, directory.id, version=1
//! .lock                               held while a broker uses the dir
//! .kafka_cleanshutdown                present only between a clean stop and the next start
//! recovery-point-offset-checkpoint    flushed offset per partition
//! log-start-offset-checkpoint         log start offset per partition
//! <topic>-<partition>/                one log (see `log.rs`), with partition.metadata
//! ```
//! Start-up: read the checkpoints and whether the last stop was clean, open every
//! log (recovering unflushed segments after an unclean stop), then remove the
//! clean-shutdown mark so that a crash from here on is seen as one.
//! Shutdown: flush and close every log, write the checkpoints, then the mark.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine;
use protocol::TopicPartition;
use uuid::Uuid;

use crate::checkpoint::{
    self, CLEAN_SHUTDOWN_FILE, LOG_START_OFFSET_CHECKPOINT, RECOVERY_POINT_CHECKPOINT,
};
use crate::config::LogConfig;
use crate::descriptors::DescriptorBudget;
use crate::env::LogEnv;
use crate::error::StorageError;
use crate::fs::{self, Fs, LockGuard};
use crate::log::{LoadState, Log};
use crate::log_dir::LogDirState;

pub const META_PROPERTIES: &str = "meta.properties";
pub const PARTITION_METADATA: &str = "partition.metadata";
/// The folder of the cluster metadata log: `__cluster_metadata-0`, as in KRaft.
pub const METADATA_LOG_PREFIX: &str = "__cluster_metadata";

/// A log shared between the request handlers and background tasks.
pub type SharedLog = Arc<Mutex<Log>>;

/// Kafka's text form of a UUID (topic ids, cluster ids): URL-safe base64, no padding.
pub fn uuid_to_kafka(uuid: &Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(uuid.as_bytes())
}

pub fn uuid_from_kafka(text: &str) -> Option<Uuid> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim())
        .ok()?;
    Uuid::from_slice(&bytes).ok()
}

/// A partition directory found at start-up.
#[derive(Debug, Clone)]
pub struct DiscoveredLog {
    pub topic_partition: TopicPartition,
    pub dir: PathBuf,
    pub topic_id: Option<Uuid>,
}

#[derive(Debug)]
struct LogDir {
    path: PathBuf,
    _lock: Box<dyn LockGuard>,
    clean_shutdown: bool,
    recovery_points: BTreeMap<TopicPartition, i64>,
    /// The checkpoint as found at start-up.
    log_start_offsets: BTreeMap<TopicPartition, i64>,
    /// Online or not; the log start offsets of the logs loaded since.
    state: Arc<LogDirState>,
}

#[derive(Debug)]
pub struct LogManager {
    dirs: Vec<LogDir>,
    env: LogEnv,
    budget: DescriptorBudget,
    logs: Mutex<BTreeMap<TopicPartition, (usize, SharedLog)>>,
}

/// Parses `<topic>-<partition>`; `None` for anything else (e.g. `-delete` dirs).
pub fn parse_partition_dir(name: &str) -> Option<TopicPartition> {
    let (topic, partition) = name.rsplit_once('-')?;
    if topic.is_empty() || partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(TopicPartition::new(topic, partition.parse().ok()?))
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> StorageError {
    let context = context.into();
    move |source| StorageError::Io { context, source }
}

fn lock_recover<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LogManager {
    /// Opens the log dirs: takes their locks, reads checkpoints and the clean
    /// shutdown mark. Logs are opened afterwards with [`LogManager::load_log`].
    pub fn open(dirs: &[PathBuf], env: LogEnv) -> Result<LogManager, StorageError> {
        let fs = &*env.fs;
        let mut opened = Vec::new();
        for path in dirs {
            fs.create_dir_all(path)
                .map_err(io_err(format!("creating log dir {}", path.display())))?;
            let Some(lock) = fs
                .try_lock(&path.join(".lock"))
                .map_err(io_err(format!("opening {}", path.join(".lock").display())))?
            else {
                return Err(StorageError::Corrupt(
                    path.clone(),
                    "another broker process is using this log dir".into(),
                ));
            };
            let clean_shutdown = fs
                .exists(&path.join(CLEAN_SHUTDOWN_FILE))
                .map_err(io_err("reading the clean shutdown mark"))?;
            let read = |name: &str| {
                checkpoint::read_offsets_in(fs, &path.join(name)).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "ignoring unreadable checkpoint; affected logs recover from the start");
                    BTreeMap::new()
                })
            };
            opened.push(LogDir {
                path: path.clone(),
                _lock: lock,
                clean_shutdown,
                recovery_points: read(RECOVERY_POINT_CHECKPOINT),
                log_start_offsets: read(LOG_START_OFFSET_CHECKPOINT),
                state: LogDirState::new(path, BTreeMap::new()),
            });
        }
        Ok(LogManager {
            dirs: opened,
            env,
            budget: DescriptorBudget::unlimited(),
            logs: Mutex::new(BTreeMap::new()),
        })
    }

    /// The share of file descriptors the logs may use (unlimited unless set).
    pub fn with_descriptor_budget(mut self, budget: DescriptorBudget) -> LogManager {
        self.budget = budget;
        self
    }

    pub fn descriptor_budget(&self) -> DescriptorBudget {
        self.budget
    }

    /// Whether `count` more logs fit the descriptor budget; why not, when they do
    /// not (the broker refuses the topic creation with POLICY_VIOLATION).
    pub fn check_new_logs(&self, count: usize) -> Result<(), String> {
        self.budget.check(lock_recover(&self.logs).len(), count)
    }

    /// Logs hosted now.
    pub fn log_count(&self) -> usize {
        lock_recover(&self.logs).len()
    }

    /// The filesystem the logs live on.
    pub fn fs(&self) -> &Arc<dyn Fs> {
        &self.env.fs
    }

    pub fn log_dirs(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.path.clone()).collect()
    }

    /// Whether every log dir was shut down cleanly last time.
    pub fn had_clean_shutdown(&self) -> bool {
        self.dirs.iter().all(|d| d.clean_shutdown)
    }

    /// Checks or writes `meta.properties` in every log dir; returns the cluster id
    /// found on disk (or `new_cluster_id`, which is written where none is).
    pub fn ensure_meta_properties(
        &self,
        node_id: i32,
        new_cluster_id: &str,
    ) -> Result<String, StorageError> {
        let mut cluster_id: Option<String> = None;
        let fs = &*self.env.fs;
        for dir in &self.dirs {
            let path = dir.path.join(META_PROPERTIES);
            if let Ok(text) = fs::read_to_string(fs, &path) {
                let props: BTreeMap<&str, &str> = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with('#'))
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.trim(), v.trim()))
                    .collect();
                if let Some(found) = props.get("node.id") {
                    if found.parse::<i32>().ok() != Some(node_id) {
                        return Err(StorageError::Corrupt(dir.path.clone(), format!("meta.properties has node.id={found} but this broker is node.id={node_id}")));
                    }
                }
                if let Some(found) = props.get("cluster.id") {
                    match &cluster_id {
                        Some(existing) if existing != found => {
                            return Err(StorageError::Corrupt(
                                dir.path.clone(),
                                format!(
                                    "cluster.id {found} differs from {existing} in another log dir"
                                ),
                            ));
                        }
                        _ => cluster_id = Some(found.to_string()),
                    }
                }
            }
        }
        let cluster_id = cluster_id.unwrap_or_else(|| new_cluster_id.to_string());
        for dir in &self.dirs {
            let path = dir.path.join(META_PROPERTIES);
            if !fs
                .exists(&path)
                .map_err(io_err("reading meta.properties"))?
            {
                let text = format!(
                    "#\n#Written by rivulet\nnode.id={node_id}\ndirectory.id={}\nversion=1\ncluster.id={cluster_id}\n",
                    uuid_to_kafka(&self.env.random.uuid())
                );
                fs::write_atomically(fs, &path, text.as_bytes())
                    .map_err(io_err(format!("writing {}", path.display())))?;
            }
        }
        Ok(cluster_id)
    }

    /// Partition directories present on disk. Finishes deletions a crash interrupted.
    pub fn discover(&self) -> Result<Vec<DiscoveredLog>, StorageError> {
        let fs = &*self.env.fs;
        let mut found = Vec::new();
        for dir in &self.dirs {
            for entry in fs
                .list_dir(&dir.path)
                .map_err(io_err(format!("listing {}", dir.path.display())))?
            {
                if !entry.is_dir {
                    continue;
                }
                let name = entry.name;
                let path = dir.path.join(&name);
                if name.ends_with("-delete") {
                    tracing::info!(dir = %path.display(), "finishing an interrupted topic deletion");
                    fs.remove_dir_all(&path)
                        .map_err(io_err("removing deleted log"))?;
                    continue;
                }
                if name.starts_with(METADATA_LOG_PREFIX) {
                    // The cluster metadata log is the broker's own, not a topic's.
                    continue;
                }
                let Some(topic_partition) = parse_partition_dir(&name) else {
                    continue;
                };
                let topic_id = read_partition_metadata(fs, &path);
                found.push(DiscoveredLog {
                    topic_partition,
                    dir: path,
                    topic_id,
                });
            }
        }
        Ok(found)
    }

    fn dir_index_of(&self, path: &Path) -> usize {
        self.dirs
            .iter()
            .position(|d| path.starts_with(&d.path))
            .unwrap_or(0)
    }

    /// Opens a log found by [`LogManager::discover`] and registers it.
    pub fn load_log(
        &self,
        found: &DiscoveredLog,
        config: Arc<LogConfig>,
    ) -> Result<SharedLog, StorageError> {
        let index = self.dir_index_of(&found.dir);
        let dir = &self.dirs[index];
        let tp = &found.topic_partition;
        let state = LoadState {
            recovery_point: dir.recovery_points.get(tp).copied().unwrap_or(0),
            log_start_offset: dir.log_start_offsets.get(tp).copied().unwrap_or(0),
            clean_shutdown: dir.clean_shutdown,
        };
        let env = self.env.for_dir(Arc::clone(&dir.state));
        let log = Log::open(&found.dir, tp.clone(), config, &env, state)?;
        tracing::debug!(partition = %tp, log_end_offset = log.log_end_offset().0, "loaded log");
        let shared = Arc::new(Mutex::new(log));
        lock_recover(&self.logs).insert(tp.clone(), (index, Arc::clone(&shared)));
        Ok(shared)
    }

    /// Removes the clean-shutdown marks once every log is loaded.
    pub fn finish_loading(&self) -> Result<(), StorageError> {
        for dir in &self.dirs {
            fs::remove_if_exists(&*self.env.fs, &dir.path.join(CLEAN_SHUTDOWN_FILE))
                .map_err(io_err("removing clean shutdown mark"))?;
        }
        Ok(())
    }

    /// Creates a new, empty log in the log dir holding the fewest logs.
    pub fn create_log(
        &self,
        tp: &TopicPartition,
        topic_id: Uuid,
        config: Arc<LogConfig>,
    ) -> Result<SharedLog, StorageError> {
        let mut logs = lock_recover(&self.logs);
        if logs.contains_key(tp) {
            return Err(StorageError::LogExists(tp.to_string()));
        }
        let mut counts = vec![0usize; self.dirs.len()];
        for (index, _) in logs.values() {
            counts[*index] += 1;
        }
        let index = (0..self.dirs.len())
            .min_by_key(|&i| counts[i])
            .expect("at least one log dir");
        let dir = self.dirs[index].path.join(tp.dir_name());
        let fs = &*self.env.fs;
        fs.create_dir_all(&dir)
            .map_err(io_err(format!("creating {}", dir.display())))?;
        write_partition_metadata(fs, &dir, &topic_id)
            .map_err(io_err("writing partition.metadata"))?;
        let env = self.env.for_dir(Arc::clone(&self.dirs[index].state));
        let log = Log::open(&dir, tp.clone(), config, &env, LoadState::default())?;
        let shared = Arc::new(Mutex::new(log));
        logs.insert(tp.clone(), (index, Arc::clone(&shared)));
        Ok(shared)
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<SharedLog> {
        lock_recover(&self.logs)
            .get(tp)
            .map(|(_, log)| Arc::clone(log))
    }

    pub fn all(&self) -> Vec<(TopicPartition, SharedLog)> {
        lock_recover(&self.logs)
            .iter()
            .map(|(tp, (_, log))| (tp.clone(), Arc::clone(log)))
            .collect()
    }

    /// Deletes a log: renamed to `<topic>-<partition>.<id>-delete` first (so a crash
    /// mid-delete is finished at the next start), then removed.
    pub fn delete_log(&self, tp: &TopicPartition) -> Result<(), StorageError> {
        let Some((index, shared)) = lock_recover(&self.logs).remove(tp) else {
            return Ok(());
        };
        self.dirs[index].state.remove_log(tp);
        let mut log = lock_recover(&shared);
        log.mark_deleted();
        let dir = log.dir().to_path_buf();
        let doomed = dir.with_file_name(format!(
            "{}.{}-delete",
            tp.dir_name(),
            self.env.random.uuid().simple()
        ));
        let fs = &*self.env.fs;
        fs.rename(&dir, &doomed)
            .map_err(io_err(format!("renaming {} for deletion", dir.display())))?;
        fs.remove_dir_all(&doomed)
            .map_err(io_err(format!("deleting {}", doomed.display())))?;
        Ok(())
    }

    /// Deletes a partition directory that no topic owns (found at start-up).
    pub fn delete_stray(&self, found: &DiscoveredLog) -> Result<(), StorageError> {
        tracing::info!(dir = %found.dir.display(), "deleting the log of a partition no topic owns");
        self.env
            .fs
            .remove_dir_all(&found.dir)
            .map_err(io_err(format!("deleting {}", found.dir.display())))
    }

    /// Writes the recovery point and log start offset checkpoints of every dir.
    /// Offline log dirs are skipped: their checkpoints stay as they were, so the
    /// next start recovers their logs from the data.
    pub fn checkpoint(&self) -> Result<(), StorageError> {
        let mut result = Ok(());
        for index in 0..self.dirs.len() {
            if let Err(e) = self.checkpoint_dir(index) {
                result = Err(e);
            }
        }
        result
    }

    fn checkpoint_dir(&self, index: usize) -> Result<(), StorageError> {
        let dir = &self.dirs[index];
        dir.state.check()?;
        let mut recovery = BTreeMap::new();
        for (tp, dir_index, shared) in self.all_with_dirs() {
            if dir_index == index {
                recovery.insert(tp, lock_recover(&shared).recovery_point().0);
            }
        }
        let fs = &*self.env.fs;
        checkpoint::write_offsets_in(fs, &dir.path.join(RECOVERY_POINT_CHECKPOINT), &recovery)
            .map_err(|e| {
                dir.state
                    .io_failure("writing the recovery point checkpoint", e, true)
            })
            .and_then(|()| dir.state.write_log_starts(fs))
            .inspect_err(|e| {
                tracing::error!(dir = %dir.path.display(), error = %e, "writing checkpoints failed")
            })
    }

    /// The log dirs and, for those offline, why.
    pub fn dir_states(&self) -> Vec<(PathBuf, Option<String>)> {
        self.dirs
            .iter()
            .map(|d| {
                let reason = d
                    .state
                    .is_offline()
                    .then(|| d.state.offline_reason().unwrap_or_default());
                (d.path.clone(), reason)
            })
            .collect()
    }

    fn all_with_dirs(&self) -> Vec<(TopicPartition, usize, SharedLog)> {
        lock_recover(&self.logs)
            .iter()
            .map(|(tp, (i, log))| (tp.clone(), *i, Arc::clone(log)))
            .collect()
    }

    /// Flushes and closes every log, writes the checkpoints and the clean-shutdown mark.
    /// A log dir that is offline, or goes offline while its logs close, gets no
    /// checkpoints and no clean-shutdown mark: the next start recovers its logs.
    pub fn shutdown(&self) -> Result<(), StorageError> {
        for (tp, index, shared) in self.all_with_dirs() {
            if self.dirs[index].state.is_offline() {
                continue;
            }
            if let Err(e) = lock_recover(&shared).close() {
                tracing::error!(partition = %tp, error = %e, "closing log failed");
            }
        }
        for (index, dir) in self.dirs.iter().enumerate() {
            if self.checkpoint_dir(index).is_err() {
                continue;
            }
            // Without the mark, the next start recovers this dir's logs: safe.
            if let Err(e) = fs::write_atomically(
                &*self.env.fs,
                &dir.path.join(CLEAN_SHUTDOWN_FILE),
                br#"{"version":0,"brokerEpoch":-1}"#,
            ) {
                tracing::error!(dir = %dir.path.display(), error = %e, "writing the clean shutdown mark failed");
            }
        }
        Ok(())
    }
}

/// `partition.metadata`: the topic id of the partition in this folder.
pub fn write_partition_metadata(fs: &dyn Fs, dir: &Path, topic_id: &Uuid) -> io::Result<()> {
    let text = format!("version: 0\ntopic_id: {}\n", uuid_to_kafka(topic_id));
    fs::write_atomically(fs, &dir.join(PARTITION_METADATA), text.as_bytes())
}

pub fn read_partition_metadata(fs: &dyn Fs, dir: &Path) -> Option<Uuid> {
    let text = fs::read_to_string(fs, &dir.join(PARTITION_METADATA)).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("topic_id:"))
        .and_then(uuid_from_kafka)
}

#[cfg(test)]
mod tests {
    use protocol::random::{Random, SeededRandom};

    use super::*;

    #[test]
    fn partition_dir_names_parse_like_kafka() {
        assert_eq!(
            parse_partition_dir("orders-0"),
            Some(TopicPartition::new("orders", 0))
        );
        assert_eq!(
            parse_partition_dir("my-topic-12"),
            Some(TopicPartition::new("my-topic", 12))
        );
        assert_eq!(parse_partition_dir("orders-0.abc-delete"), None);
        assert_eq!(parse_partition_dir("orders"), None);
        assert_eq!(parse_partition_dir("-1"), None);
    }

    #[test]
    fn kafka_uuid_strings_round_trip() {
        let id = SeededRandom::new(1).uuid();
        let text = uuid_to_kafka(&id);
        assert_eq!(text.len(), 22);
        assert_eq!(uuid_from_kafka(&text), Some(id));
    }
}
