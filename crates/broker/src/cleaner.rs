//! The log cleaner thread: compacts logs with `cleanup.policy=compact`.
//!
//! Every `log.cleaner.backoff.ms` it picks the dirtiest compacted log whose dirty
//! ratio reaches its `min.cleanable.dirty.ratio` (or whose oldest dirty record is
//! past `max.compaction.lag.ms`), cleans it (see `storage::cleaner`) and records
//! where cleaning stopped in `cleaner-offset-checkpoint`, so the next pass only
//! maps what is new. Reads and writes are throttled to
//! `log.cleaner.io.max.bytes.per.second`. A log the cleaner cannot read (a corrupt
//! batch) is marked uncleanable, reported, and skipped until a restart, as Kafka's
//! `uncleanablePartitions`: the other logs are still cleaned.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::TopicPartition;
use storage::checkpoint;
use storage::cleaner::{clean, CleanerConfig};

use crate::broker::{blocking, Broker};

pub const CLEANER_CHECKPOINT: &str = "cleaner-offset-checkpoint";

/// Where each compacted log is clean up to.
#[derive(Debug, Default)]
pub struct CleanerState {
    first_dirty: Mutex<BTreeMap<TopicPartition, i64>>,
    /// Logs a cleaning failed on: skipped until a restart.
    uncleanable: Mutex<BTreeSet<TopicPartition>>,
}

impl CleanerState {
    pub fn load(fs: &dyn storage::fs::Fs, dirs: &[std::path::PathBuf]) -> CleanerState {
        let mut first_dirty = BTreeMap::new();
        for dir in dirs {
            match checkpoint::read_offsets_in(fs, &dir.join(CLEANER_CHECKPOINT)) {
                Ok(offsets) => first_dirty.extend(offsets),
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring unreadable cleaner checkpoint; logs will be cleaned from the start")
                }
            }
        }
        CleanerState {
            first_dirty: Mutex::new(first_dirty),
            uncleanable: Mutex::new(BTreeSet::new()),
        }
    }

    fn is_uncleanable(&self, tp: &TopicPartition) -> bool {
        self.uncleanable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(tp)
    }

    fn mark_uncleanable(&self, tp: &TopicPartition) {
        self.uncleanable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tp.clone());
    }

    /// The logs marked uncleanable.
    pub fn uncleanable(&self) -> Vec<TopicPartition> {
        self.uncleanable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    fn get(&self, tp: &TopicPartition) -> i64 {
        self.first_dirty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tp)
            .copied()
            .unwrap_or(0)
    }

    fn set(&self, tp: &TopicPartition, offset: i64) {
        self.first_dirty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tp.clone(), offset);
    }
}

fn setting(broker: &Broker, key: &str, default: f64) -> f64 {
    broker
        .config
        .raw
        .get(key)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(default)
}

/// Cleans the dirtiest eligible log once; true if it cleaned something.
fn clean_once(broker: &Broker, throttle_bytes_per_second: f64) -> bool {
    let now = broker.clock.now_ms();
    let mut best: Option<(f64, replication::SharedPartition, i64)> = None;
    for partition in broker.replicas.partitions() {
        let tp = partition.topic_partition().clone();
        if broker.cleaner.is_uncleanable(&tp) {
            continue;
        }
        // Undecided transactions are never cleaned: stop at the last stable offset.
        let upper_bound = partition.last_stable_offset();
        let log = partition.log().lock().unwrap_or_else(|p| p.into_inner());
        let config = log.config();
        if !config.cleanup_policy_compact || log.check_online().is_err() {
            continue;
        }
        let first_dirty = broker.cleaner.get(&tp).max(log.log_start_offset().0);
        let dirtiness = storage::cleaner::dirtiness(&log, first_dirty, upper_bound);
        if dirtiness.dirty_bytes == 0 {
            continue;
        }
        let min_ratio = config
            .values
            .get("min.cleanable.dirty.ratio")
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.5);
        let max_lag = config
            .values
            .get("max.compaction.lag.ms")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(i64::MAX);
        // max.compaction.lag.ms: the oldest dirty data (the first batch of the first
        // dirty segment, as Kafka measures it) must not wait longer than that.
        let overdue = max_lag < i64::MAX
            && storage::cleaner::first_dirty_batch_timestamp(&log, first_dirty)
                .is_some_and(|ts| now.saturating_sub(ts) > max_lag);
        let ratio = dirtiness.ratio();
        if ratio >= min_ratio || overdue {
            let score = if overdue { f64::INFINITY } else { ratio };
            if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
                drop(log);
                best = Some((score, Arc::clone(&partition), first_dirty));
            }
        }
    }
    let Some((_, partition, first_dirty)) = best else {
        return false;
    };
    let config = CleanerConfig {
        dedupe_buffer_bytes: setting(
            broker,
            "log.cleaner.dedupe.buffer.size",
            (128u64 << 20) as f64,
        ) as usize,
        ..CleanerConfig::default()
    };
    let mut budget = Throttle::new(throttle_bytes_per_second);
    let started = budget.started;
    let upper_bound = partition.last_stable_offset();
    let mut pace = |bytes| {
        if broker.is_shutting_down() {
            return ControlFlow::Break(());
        }
        budget.consume(bytes, || broker.is_shutting_down())
    };
    match clean(
        partition.log(),
        first_dirty,
        upper_bound,
        &config,
        &mut pace,
    ) {
        Ok(Some(outcome)) => {
            let seconds = started.elapsed().as_secs_f64();
            // Kafka's cleaner logs the same figures ("Log cleaner thread 0 cleaned log ...").
            tracing::info!(
                partition = %partition.topic_partition(),
                bytes_in = outcome.bytes_in,
                bytes_out = outcome.bytes_out,
                seconds = format!("{seconds:.3}"),
                mb_per_second = format!("{:.1}", outcome.bytes_in as f64 / 1e6 / seconds.max(1e-9)),
                "cleaner pass done"
            );
            broker
                .cleaner
                .set(partition.topic_partition(), outcome.cleaned_up_to);
            true
        }
        Ok(None) => false,
        Err(e) => {
            let tp = partition.topic_partition();
            let offline = partition
                .log()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .check_online()
                .is_err();
            if offline {
                // The log dir went offline: its logs are not cleaned any more anyway.
                tracing::error!(partition = %tp, error = %e, "cleaning failed; the log directory is offline");
            } else {
                broker.cleaner.mark_uncleanable(tp);
                tracing::error!(partition = %tp, error = %e, "cleaning failed: the log is marked uncleanable and skipped until a restart; other logs are still cleaned");
            }
            // Look for another log at once.
            true
        }
    }
}

/// A simple rate limit: sleeps so that consumed bytes stay under the rate, in short
/// naps so that a shutdown is noticed at once.
struct Throttle {
    bytes_per_second: f64,
    consumed: f64,
    started: std::time::Instant,
}

impl Throttle {
    #[allow(clippy::disallowed_methods)]
    fn new(bytes_per_second: f64) -> Throttle {
        Throttle {
            bytes_per_second,
            consumed: 0.0,
            started: std::time::Instant::now(),
        }
    }

    fn consume(&mut self, bytes: u64, stop: impl Fn() -> bool) -> ControlFlow<()> {
        if !self.bytes_per_second.is_finite() || self.bytes_per_second <= 0.0 {
            return ControlFlow::Continue(());
        }
        self.consumed += bytes as f64;
        let due = Duration::from_secs_f64(self.consumed / self.bytes_per_second);
        loop {
            let elapsed = self.started.elapsed();
            if due <= elapsed {
                return ControlFlow::Continue(());
            }
            if stop() {
                return ControlFlow::Break(());
            }
            std::thread::sleep((due - elapsed).min(Duration::from_millis(50)));
        }
    }
}

/// Writes the cleaner checkpoint of every log dir.
fn write_checkpoints(broker: &Broker) {
    let state = broker
        .cleaner
        .first_dirty
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut per_dir: BTreeMap<std::path::PathBuf, BTreeMap<TopicPartition, i64>> = BTreeMap::new();
    for dir in broker.log_manager.log_dirs() {
        per_dir.entry(dir).or_default();
    }
    for partition in broker.replicas.partitions() {
        let tp = partition.topic_partition();
        let Some(offset) = state.get(tp) else {
            continue;
        };
        let dir = partition
            .log()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .dir()
            .parent()
            .map(|p| p.to_path_buf());
        if let Some(dir) = dir {
            per_dir.entry(dir).or_default().insert(tp.clone(), *offset);
        }
    }
    for (dir, offsets) in per_dir {
        let fs = &**broker.log_manager.fs();
        if let Err(e) = checkpoint::write_offsets_in(fs, &dir.join(CLEANER_CHECKPOINT), &offsets) {
            tracing::warn!(error = %e, "writing the cleaner checkpoint failed");
        }
    }
}

/// Runs the cleaner until shutdown (`log.cleaner.enable=false` turns it off).
pub async fn run(broker: Arc<Broker>) {
    let enabled = broker
        .config
        .raw
        .get("log.cleaner.enable")
        .map(|v| v.trim() != "false")
        .unwrap_or(true);
    if !enabled {
        return;
    }
    let backoff = Duration::from_millis(
        setting(&broker, "log.cleaner.backoff.ms", 15_000.0).max(10.0) as u64,
    );
    let rate = setting(
        &broker,
        "log.cleaner.io.max.bytes.per.second",
        f64::INFINITY,
    );
    let mut shutdown = broker.shutdown_signal();
    loop {
        let b = Arc::clone(&broker);
        let cleaned = blocking(move || {
            let cleaned = clean_once(&b, rate);
            if cleaned {
                write_checkpoints(&b);
            }
            cleaned
        })
        .await;
        if cleaned {
            // More may be waiting: look again at once, unless shutting down.
            if broker.is_shutting_down() {
                return;
            }
            continue;
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
    }
}
