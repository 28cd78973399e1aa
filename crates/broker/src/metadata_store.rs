//! The cluster metadata log and the image built from it.
//!
//! Records are stored one per Kafka record in `__cluster_metadata-0`, a log in
//! Kafka's own format under `metadata.log.dir`, each value an
//! `ApiMessageAndVersion` (`metadata::records`), so Kafka's tools can read it. A
//! commit appends one batch with all of a decision's records, fsyncs it, then
//! applies the records to a new image and publishes it: a change is visible only
//! once it is durable. At start-up the whole log is replayed. With a quorum (a
//! later step) the append becomes a Raft proposal; the image and its readers stay.
//!
//! **Import of the JSON log.** Before the binary format, each value was a JSON
//! object (`metadata::legacy`). The first start on such a log replays it, writes
//! the same records in the binary format batch for batch (so every record keeps
//! its offset, and the image is unchanged) into `__cluster_metadata-0.import/`,
//! then moves the old log aside to `__cluster_metadata-0.legacy/` and the new one
//! into place. A crash between the two renames is finished at the next start.
//!
//! Replay honours KIP-868 metadata transactions (`metadata::MetadataReplay`); one
//! left open is aborted at start-up.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use metadata::image::ImageError;
use metadata::legacy;
use metadata::records::RecordError;
use metadata::{ClusterImage, MetadataRecord, MetadataReplay};
use protocol::records::{decode_records, BatchBuilder, Compression, NewRecord};
use protocol::time::Clock;
use protocol::TopicPartition;
use storage::log::{LoadState, Log};
use storage::log_manager::METADATA_LOG_PREFIX;
use storage::{LogConfig, Origin, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("metadata log append failed: {0}")]
    Append(String),
    #[error("metadata log record at offset {offset} is unreadable: {reason}")]
    Corrupt { offset: i64, reason: String },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("importing the JSON metadata log failed: {0}")]
    Import(String),
}

/// One batch of the log: each record's timestamp and value.
type Batch = Vec<(i64, MetadataRecord)>;

/// A batch read back: its first offset, leader epoch and records.
struct ReadBatch {
    base_offset: i64,
    leader_epoch: i32,
    records: Batch,
}

const IMPORT_SUFFIX: &str = ".import";
const LEGACY_SUFFIX: &str = ".legacy";

fn io_error(context: &str) -> impl FnOnce(std::io::Error) -> MetadataError + '_ {
    move |source| MetadataError::Storage(StorageError::io(context, source))
}

fn corrupt(offset: i64, reason: impl ToString) -> MetadataError {
    MetadataError::Corrupt {
        offset,
        reason: reason.to_string(),
    }
}

fn open_log(log_dir: &Path, clock: Arc<dyn Clock>) -> Result<Log, MetadataError> {
    // Unflushed records were never acknowledged: recover the whole log each
    // start (it is small) so a torn tail is always cut.
    let state = LoadState {
        recovery_point: 0,
        log_start_offset: 0,
        clean_shutdown: false,
    };
    let config = LogConfig::resolve(&BTreeMap::new(), &BTreeMap::new())
        .expect("default log config is valid");
    Ok(Log::open(
        log_dir,
        TopicPartition::new(METADATA_LOG_PREFIX, 0),
        Arc::new(config),
        &storage::LogEnv::real(clock),
        state,
    )?)
}

/// Reads every batch of the log; `legacy` tells whether any value was JSON.
fn read_batches(log: &Log) -> Result<(Vec<ReadBatch>, bool), MetadataError> {
    let mut batches = Vec::new();
    let mut legacy_found = false;
    let leo = log.log_end_offset().0;
    let mut offset = log.log_start_offset().0;
    while offset < leo {
        let bytes = log.read_bytes(offset, leo, 1 << 20)?;
        if bytes.is_empty() {
            break;
        }
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let (header, records) =
                decode_records(rest, 64 << 20).map_err(|e| corrupt(offset, e))?;
            rest = &rest[header.size()..];
            let mut batch = Vec::with_capacity(records.len());
            for record in records {
                let value = record.value.unwrap_or_default();
                let parsed = if legacy::is_legacy_value(&value) {
                    legacy_found = true;
                    legacy::decode_legacy(&value, record.offset)
                        .map_err(|e| corrupt(record.offset, e))?
                } else {
                    MetadataRecord::decode(&value)
                        .map_err(|e: RecordError| corrupt(record.offset, e))?
                };
                batch.push((record.timestamp, parsed));
            }
            batches.push(ReadBatch {
                base_offset: header.base_offset,
                leader_epoch: header.partition_leader_epoch,
                records: batch,
            });
            offset = header.next_offset();
        }
    }
    Ok((batches, legacy_found))
}

/// Appends one batch of records to `log` and returns its first offset.
fn append_batch(log: &mut Log, records: &[(i64, MetadataRecord)]) -> Result<i64, MetadataError> {
    let values: Vec<Vec<u8>> = records.iter().map(|(_, r)| r.encode()).collect();
    let mut builder = BatchBuilder::new(Compression::None);
    for ((timestamp, _), value) in records.iter().zip(&values) {
        builder.append(&NewRecord {
            timestamp: *timestamp,
            key: None,
            value: Some(value),
            headers: &[],
        });
    }
    let batch = builder
        .build()
        .map_err(|e| MetadataError::Append(e.to_string()))?;
    let info = log
        .append_as_leader(&batch, 0, Origin::Coordinator)
        .map_err(|e| MetadataError::Append(e.to_string()))?;
    Ok(info.first_offset.0)
}

/// Finishes an import a crash interrupted: with both the log and the imported
/// copy present the copy may be partial, so it goes; with only the copy, the
/// old log was already moved aside, so the copy takes its place.
fn finish_interrupted_import(log_dir: &Path, import_dir: &Path) -> Result<(), MetadataError> {
    if !import_dir.exists() {
        return Ok(());
    }
    if log_dir.exists() {
        std::fs::remove_dir_all(import_dir)
            .map_err(io_error("removing a partial metadata import"))?;
    } else {
        tracing::info!("finishing the interrupted import of the JSON metadata log");
        std::fs::rename(import_dir, log_dir)
            .map_err(io_error("renaming the imported metadata log"))?;
    }
    Ok(())
}

/// Rewrites a JSON metadata log in the binary format, batch for batch.
fn import_legacy_log(
    log: Log,
    batches: &[ReadBatch],
    log_dir: &Path,
    clock: &Arc<dyn Clock>,
) -> Result<Log, MetadataError> {
    let import_dir = log_dir.with_file_name(format!("{METADATA_LOG_PREFIX}-0{IMPORT_SUFFIX}"));
    let legacy_dir = log_dir.with_file_name(format!("{METADATA_LOG_PREFIX}-0{LEGACY_SUFFIX}"));
    if legacy_dir.exists() {
        return Err(MetadataError::Import(format!(
            "{} exists from an earlier import, yet {} holds JSON records again (was an older Rivulet run on it?); move one of them away",
            legacy_dir.display(),
            log_dir.display()
        )));
    }
    let start = log.log_start_offset().0;
    if start != 0 {
        return Err(MetadataError::Import(format!(
            "the JSON log starts at offset {start}, not 0"
        )));
    }
    let mut imported = open_log(&import_dir, Arc::clone(clock))?;
    for batch in batches {
        let first = append_batch(&mut imported, &batch.records)?;
        assert_eq!(
            first, batch.base_offset,
            "an imported batch keeps its offsets"
        );
    }
    assert_eq!(
        imported.log_end_offset(),
        log.log_end_offset(),
        "the imported log ends where the JSON log did"
    );
    let leo = imported.log_end_offset().0;
    imported.flush(leo)?;
    imported.close()?;
    drop(imported);
    let mut log = log;
    log.close()?;
    drop(log);
    std::fs::rename(log_dir, &legacy_dir)
        .map_err(io_error("moving the JSON metadata log aside"))?;
    std::fs::rename(&import_dir, log_dir)
        .map_err(io_error("renaming the imported metadata log"))?;
    if let Some(parent) = log_dir.parent() {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io_error("syncing the metadata log directory"))?;
    }
    tracing::info!(
        records = leo,
        legacy = %legacy_dir.display(),
        "imported the JSON metadata log into Kafka's binary record format"
    );
    open_log(log_dir, Arc::clone(clock))
}

pub struct MetadataStore {
    log: std::sync::Mutex<Log>,
    /// What readers see: published once the broker has acted on it.
    image: RwLock<Arc<ClusterImage>>,
    /// What the log holds: the base of the next commit.
    committed: std::sync::Mutex<Arc<ClusterImage>>,
}

impl std::fmt::Debug for MetadataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataStore").finish_non_exhaustive()
    }
}

impl MetadataStore {
    /// Opens (or creates) the metadata log in `dir` and replays it, importing a
    /// JSON log first if it finds one.
    pub fn open(dir: &Path, clock: Arc<dyn Clock>) -> Result<MetadataStore, MetadataError> {
        let log_dir = dir.join(format!("{METADATA_LOG_PREFIX}-0"));
        let import_dir = dir.join(format!("{METADATA_LOG_PREFIX}-0{IMPORT_SUFFIX}"));
        finish_interrupted_import(&log_dir, &import_dir)?;
        let mut log = open_log(&log_dir, Arc::clone(&clock))?;
        let (batches, legacy_found) = read_batches(&log)?;
        let mut replay = MetadataReplay::new(ClusterImage::default(), 0);
        for batch in &batches {
            for (i, (_, record)) in batch.records.iter().enumerate() {
                let offset = batch.base_offset + i as i64;
                replay
                    .apply(offset, batch.leader_epoch, record)
                    .map_err(|e| corrupt(offset, e))?;
            }
        }
        if legacy_found {
            log = import_legacy_log(log, &batches, &log_dir, &clock)?;
        }
        // A metadata transaction left open (its writer died between its
        // records) is aborted before anything else is written, as a new active
        // controller does; otherwise the next records would join it.
        if let Some(since) = replay.in_transaction_since() {
            tracing::warn!(since, "aborting the metadata transaction left open");
            let abort = [(
                clock.now_ms(),
                MetadataRecord::AbortTransaction {
                    reason: Some("the transaction was left open at start-up".into()),
                },
            )];
            let offset = append_batch(&mut log, &abort)?;
            let leo = log.log_end_offset().0;
            log.flush(leo)?;
            replay
                .apply(offset, 0, &abort[0].1)
                .map_err(|e| corrupt(offset, e))?;
        }
        let image = replay.into_image();
        tracing::info!(
            records = log.log_end_offset().0,
            topics = image.topics.len(),
            "replayed the cluster metadata log"
        );
        let image = Arc::new(image);
        Ok(MetadataStore {
            log: std::sync::Mutex::new(log),
            image: RwLock::new(Arc::clone(&image)),
            committed: std::sync::Mutex::new(image),
        })
    }

    /// The current image.
    pub fn image(&self) -> Arc<ClusterImage> {
        Arc::clone(&self.image.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Makes `records` durable and applies them to the committed image, all or
    /// none, and returns it; readers see it after [`MetadataStore::publish`].
    /// Blocking (fsync). Callers serialise commits (the controller runs one decision
    /// at a time).
    pub fn commit(
        &self,
        records: &[MetadataRecord],
        now_ms: i64,
    ) -> Result<Arc<ClusterImage>, MetadataError> {
        let mut committed = self.committed.lock().unwrap_or_else(|p| p.into_inner());
        if records.is_empty() {
            return Ok(Arc::clone(&committed));
        }
        let mut next = (**committed).clone();
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let first = log.log_end_offset().0;
        // Apply to a copy first: a record the image refuses is never written.
        for (i, record) in records.iter().enumerate() {
            next.apply(first + i as i64, record)?;
        }
        let stamped: Batch = records.iter().map(|r| (now_ms, r.clone())).collect();
        let appended = append_batch(&mut log, &stamped)?;
        assert_eq!(appended, first, "metadata offsets must follow the image");
        let leo = log.log_end_offset().0;
        log.flush(leo)?;
        let next = Arc::new(next);
        *committed = Arc::clone(&next);
        Ok(next)
    }

    /// Makes `image` the one readers see.
    pub fn publish(&self, image: Arc<ClusterImage>) {
        *self.image.write().unwrap_or_else(|p| p.into_inner()) = image;
    }

    /// Flushes and closes the metadata log.
    pub fn close(&self) -> Result<(), StorageError> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).close()
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::clock::SystemClock;

    fn topic(name: &str, id: u128) -> MetadataRecord {
        MetadataRecord::Topic {
            name: name.into(),
            topic_id: Uuid::from_u128(id),
        }
    }

    fn names(store: &MetadataStore) -> Vec<String> {
        store.image().topics.keys().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_transaction_left_open_is_aborted_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        {
            let store = MetadataStore::open(dir.path(), Arc::clone(&clock)).unwrap();
            store.commit(&[topic("kept", 1)], 0).unwrap();
            // A writer that died after the first half of a decision.
            store
                .commit(&[MetadataRecord::BeginTransaction { name: None }], 0)
                .unwrap();
            store.commit(&[topic("half", 2)], 0).unwrap();
            store.close().unwrap();
        }
        let store = MetadataStore::open(dir.path(), Arc::clone(&clock)).unwrap();
        assert_eq!(names(&store), vec!["kept"]);
        assert_eq!(store.image().last_offset, 3, "the Abort was written at 3");
        let next = store.commit(&[topic("next", 3)], 0).unwrap();
        store.publish(next);
        store.close().unwrap();
        drop(store);
        let store = MetadataStore::open(dir.path(), clock).unwrap();
        assert_eq!(names(&store), vec!["kept", "next"]);
        assert_eq!(store.image().last_offset, 4);
    }
}
