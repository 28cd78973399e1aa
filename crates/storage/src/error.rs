//! Storage's own errors. The broker maps them to Kafka error codes in one place.

use std::io;
use std::path::PathBuf;

/// An operating error of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("offset {requested} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        requested: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error("log directory {0} is unusable: {1}")]
    Corrupt(PathBuf, String),
    #[error("log for {0} already exists")]
    LogExists(String),
    /// The log's directory went offline after a failed fsync or write
    /// (`log_dir.rs`): KAFKA_STORAGE_ERROR until a restart.
    #[error("log directory {0} is offline: {1}")]
    LogDirOffline(PathBuf, String),
}

impl StorageError {
    pub fn io(context: impl Into<String>, source: io::Error) -> StorageError {
        StorageError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Why a produce batch was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Bad CRC, impossible length, truncated batch: CORRUPT_MESSAGE.
    #[error("corrupt message: {0}")]
    CorruptMessage(String),
    /// A record format other than v2.
    #[error("record batch magic {0} is not supported; only v2 (magic 2)")]
    UnsupportedMagic(i8),
    /// A batch bigger than `max.message.bytes`: MESSAGE_TOO_LARGE.
    #[error("batch of {size} bytes is larger than max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: u32 },
    /// A produce append larger than a whole segment: RECORD_LIST_TOO_LARGE.
    #[error("append of {size} bytes is larger than segment.bytes {max}")]
    RecordListTooLarge { size: usize, max: u32 },
    /// Count, offsets or attributes that disagree: INVALID_RECORD.
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// Records the topic cannot take (a keyless record on a compacted topic):
    /// INVALID_RECORD with KIP-467's per-record errors (batch index, message), at
    /// most `validate::MAX_RECORD_ERRORS` of them.
    #[error("{message}")]
    InvalidRecords {
        message: String,
        record_errors: Vec<(i32, String)>,
    },
    /// A compressed batch whose records decompress to more than
    /// `validate::max_decompressed_bytes` allows: MESSAGE_TOO_LARGE, so a producer
    /// that can split batches (Java's) splits it and retries.
    #[error("the batch's records decompress to more than {limit} bytes")]
    DecompressedTooLarge { limit: u64 },
    /// A CreateTime timestamp outside the topic's limits: INVALID_TIMESTAMP.
    #[error("{message}")]
    InvalidTimestamp {
        message: String,
        record_errors: Vec<(i32, String)>,
    },
    /// A codec id the broker does not know.
    #[error("unsupported compression: {0}")]
    UnsupportedCompression(String),
    /// Idempotence and transaction rules (producer_state.rs).
    #[error(transparent)]
    Producer(#[from] crate::producer_state::ProducerError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}
