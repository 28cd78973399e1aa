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

use protocol::time::Clock;
use protocol::TopicPartition;
use storage::checkpoint;
use storage::cleaner::CleanerConfig;
use tokio::sync::watch;

use crate::partition::SharedPartition;
use crate::replica_manager::ReplicaManager;
use crate::runtime::blocking;
use crate::settings::CleanerSettings;

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

/// What one cleaning pass works with: narrow handles, not the whole broker.
struct Cleaner {
    replicas: Arc<ReplicaManager>,
    clock: Arc<dyn Clock>,
    state: Arc<CleanerState>,
    settings: CleanerSettings,
    shutdown: watch::Receiver<bool>,
}

impl Cleaner {
    fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// Cleans the dirtiest eligible log once; true if it cleaned something.
fn clean_once(broker: &Cleaner) -> bool {
    let now = broker.clock.now_ms();
    let mut best: Option<(f64, SharedPartition, i64)> = None;
    for partition in broker.replicas.partitions() {
        if broker.state.is_uncleanable(partition.topic_partition()) {
            continue;
        }
        // Undecided transactions are never cleaned: stop at the last stable offset.
        let upper_bound = partition.last_stable_offset();
        let checkpoint = broker.state.get(partition.topic_partition());
        let Some(view) = partition.compaction_view(checkpoint, upper_bound) else {
            continue;
        };
        // max.compaction.lag.ms: the oldest dirty data (the first batch of the first
        // dirty segment, as Kafka measures it) must not wait longer than that.
        let overdue = view.max_compaction_lag_ms < i64::MAX
            && view
                .first_dirty_batch_timestamp
                .is_some_and(|ts| now.saturating_sub(ts) > view.max_compaction_lag_ms);
        let ratio = view.dirtiness.ratio();
        if ratio >= view.min_cleanable_dirty_ratio || overdue {
            let score = if overdue { f64::INFINITY } else { ratio };
            if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
                best = Some((score, Arc::clone(&partition), view.first_dirty));
            }
        }
    }
    let Some((_, partition, first_dirty)) = best else {
        return false;
    };
    let config = CleanerConfig {
        dedupe_buffer_bytes: broker.settings.dedupe_buffer_bytes,
        ..CleanerConfig::default()
    };
    let mut budget = Throttle::new(broker.settings.io_max_bytes_per_second);
    let started = budget.started;
    let upper_bound = partition.last_stable_offset();
    let mut pace = |bytes| {
        if broker.is_shutting_down() {
            return ControlFlow::Break(());
        }
        budget.consume(bytes, || broker.is_shutting_down())
    };
    match partition.clean(first_dirty, upper_bound, &config, &mut pace) {
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
                .state
                .set(partition.topic_partition(), outcome.cleaned_up_to);
            true
        }
        Ok(None) => false,
        Err(e) => {
            let tp = partition.topic_partition();
            if !partition.is_online() {
                // The log dir went offline: its logs are not cleaned any more anyway.
                tracing::error!(partition = %tp, error = %e, "cleaning failed; the log directory is offline");
            } else {
                broker.state.mark_uncleanable(tp);
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
fn write_checkpoints(broker: &Cleaner) {
    let state = broker
        .state
        .first_dirty
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut per_dir: BTreeMap<std::path::PathBuf, BTreeMap<TopicPartition, i64>> = BTreeMap::new();
    for dir in broker.replicas.log_dirs() {
        per_dir.entry(dir).or_default();
    }
    for partition in broker.replicas.partitions() {
        let tp = partition.topic_partition();
        let Some(offset) = state.get(tp) else {
            continue;
        };
        if let (Some(dir), _) = partition.log_dir_and_size() {
            per_dir.entry(dir).or_default().insert(tp.clone(), *offset);
        }
    }
    for (dir, offsets) in per_dir {
        let fs = &**broker.replicas.fs();
        if let Err(e) = checkpoint::write_offsets_in(fs, &dir.join(CLEANER_CHECKPOINT), &offsets) {
            tracing::warn!(error = %e, "writing the cleaner checkpoint failed");
        }
    }
}

/// Runs the cleaner until shutdown (`log.cleaner.enable=false` turns it off).
pub async fn run(
    replicas: Arc<ReplicaManager>,
    clock: Arc<dyn Clock>,
    state: Arc<CleanerState>,
    settings: CleanerSettings,
    shutdown: watch::Receiver<bool>,
) {
    if !settings.enable {
        return;
    }
    let backoff = Duration::from_millis(settings.backoff_ms);
    let mut signal = shutdown.clone();
    let cleaner = Arc::new(Cleaner {
        replicas,
        clock,
        state,
        settings,
        shutdown,
    });
    loop {
        let c = Arc::clone(&cleaner);
        let cleaned = blocking(move || {
            let cleaned = clean_once(&c);
            if cleaned {
                write_checkpoints(&c);
            }
            cleaned
        })
        .await;
        if cleaned {
            // More may be waiting: look again at once, unless shutting down.
            if cleaner.is_shutting_down() {
                return;
            }
            continue;
        }
        tokio::select! {
            _ = signal.changed() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
    }
}
