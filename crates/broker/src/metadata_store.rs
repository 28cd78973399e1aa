//! The cluster metadata log and the image built from it.
//!
//! Records are stored one per Kafka record (JSON value) in `__cluster_metadata-0`,
//! a log in Kafka's own format under `metadata.log.dir`. A commit appends one batch
//! with all of a decision's records, fsyncs it, then applies the records to a new
//! image and publishes it: a change is visible only once it is durable. At start-up
//! the whole log is replayed. With a quorum (a later issue) the append becomes a
//! Raft proposal; the image and its readers stay as they are.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use metadata::image::ImageError;
use metadata::{ClusterImage, MetadataRecord};
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
    /// Opens (or creates) the metadata log in `dir` and replays it.
    pub fn open(dir: &Path, clock: Arc<dyn Clock>) -> Result<MetadataStore, MetadataError> {
        let log_dir = dir.join(format!("{METADATA_LOG_PREFIX}-0"));
        // Unflushed records were never acknowledged: recover the whole log each
        // start (it is small) so a torn tail is always cut.
        let state = LoadState {
            recovery_point: 0,
            log_start_offset: 0,
            clean_shutdown: false,
        };
        let config = LogConfig::resolve(&BTreeMap::new(), &BTreeMap::new())
            .expect("default log config is valid");
        let log = Log::open(
            &log_dir,
            TopicPartition::new(METADATA_LOG_PREFIX, 0),
            Arc::new(config),
            &storage::LogEnv::real(clock),
            state,
        )?;
        let mut image = ClusterImage {
            last_offset: -1,
            ..ClusterImage::default()
        };
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
                    decode_records(rest, 64 << 20).map_err(|e| MetadataError::Corrupt {
                        offset,
                        reason: e.to_string(),
                    })?;
                rest = &rest[header.size()..];
                for record in records {
                    let value = record.value.unwrap_or_default();
                    let parsed =
                        MetadataRecord::from_json(&value).map_err(|e| MetadataError::Corrupt {
                            offset: record.offset,
                            reason: e.to_string(),
                        })?;
                    image.apply(record.offset, &parsed)?;
                }
                offset = header.next_offset();
            }
        }
        tracing::info!(
            records = leo,
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
        let values: Vec<Vec<u8>> = records.iter().map(MetadataRecord::to_json).collect();
        let mut builder = BatchBuilder::new(Compression::None);
        for value in &values {
            builder.append(&NewRecord {
                timestamp: now_ms,
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
        assert_eq!(
            info.first_offset.0, first,
            "metadata offsets must follow the image"
        );
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
