//! Replay of the metadata log into images, with KIP-868 metadata transactions.
//!
//! A controller decision of several records may span several Raft entries, and a
//! leader can die between them. Kafka wraps such a decision in
//! `BeginTransactionRecord` ... `EndTransactionRecord`; a new active controller
//! that finds a transaction left open writes an `AbortTransactionRecord`
//! (`QuorumController`, `ActivationRecordsGenerator`). So:
//!
//! - outside a transaction, each record applies at once and the image's offset is
//!   the record's;
//! - after a Begin, records are buffered; on End they apply together, on a copy
//!   of the image that replaces it only if all of them applied, and the image's
//!   offset is the End's. An Abort drops them (the image's offset becomes the
//!   Abort's). Readers therefore never see half a decision;
//! - a Begin inside a transaction, and an End or Abort outside one, are errors
//!   (Kafka's `OffsetControlManager.replay`, with its messages).
//!
//! [`ClusterImage::write_records`](crate::ClusterImage::write_records) is the
//! converse: the records that rebuild an image, which snapshots hold.

use crate::image::{ClusterImage, ImageError};
use crate::records::MetadataRecord;

/// Why a record could not be replayed: the log is not a valid metadata log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("record at offset {offset}: {source}")]
    Image { offset: i64, source: ImageError },
    #[error("Can't replay a BeginTransactionRecord at {offset} because the transaction at {open_since} was never closed.")]
    NestedBegin { offset: i64, open_since: i64 },
    #[error("Can't replay an EndTransactionRecord at {0} because there is no open transaction.")]
    EndWithoutBegin(i64),
    #[error("Can't replay an AbortTransactionRecord at {0} because there is no open transaction.")]
    AbortWithoutBegin(i64),
    #[error("record at offset {offset} does not follow offset {last}")]
    OutOfOrder { offset: i64, last: i64 },
}

#[derive(Debug, Clone)]
struct OpenTransaction {
    start_offset: i64,
    records: Vec<(i64, MetadataRecord)>,
}

/// Applies records in log order and keeps the image of everything committed
/// outside a transaction.
#[derive(Debug, Clone)]
pub struct MetadataReplay {
    image: ClusterImage,
    /// The leader epoch (Raft term) of the record that made `image`.
    image_epoch: i32,
    open: Option<OpenTransaction>,
    /// The offset of the last record seen, in a transaction or not.
    last_offset: i64,
}

impl MetadataReplay {
    /// Replay from `image` (the empty one, or a snapshot's) on.
    pub fn new(image: ClusterImage, epoch: i32) -> MetadataReplay {
        let last_offset = image.last_offset;
        MetadataReplay {
            image,
            image_epoch: epoch,
            open: None,
            last_offset,
        }
    }

    /// Applies the record at `offset`, written in leader epoch `epoch`.
    pub fn apply(
        &mut self,
        offset: i64,
        epoch: i32,
        record: &MetadataRecord,
    ) -> Result<(), ReplayError> {
        if offset <= self.last_offset {
            return Err(ReplayError::OutOfOrder {
                offset,
                last: self.last_offset,
            });
        }
        match (record, &mut self.open) {
            (MetadataRecord::BeginTransaction { .. }, Some(open)) => {
                return Err(ReplayError::NestedBegin {
                    offset,
                    open_since: open.start_offset,
                })
            }
            (MetadataRecord::BeginTransaction { .. }, None) => {
                self.open = Some(OpenTransaction {
                    start_offset: offset,
                    records: Vec::new(),
                });
            }
            (MetadataRecord::EndTransaction, None) => {
                return Err(ReplayError::EndWithoutBegin(offset))
            }
            (MetadataRecord::AbortTransaction { .. }, None) => {
                return Err(ReplayError::AbortWithoutBegin(offset))
            }
            (MetadataRecord::EndTransaction, Some(_)) => {
                let open = self.open.take().expect("matched an open transaction");
                let mut next = self.image.clone();
                for (at, record) in &open.records {
                    next.apply(*at, record)
                        .map_err(|source| ReplayError::Image {
                            offset: *at,
                            source,
                        })?;
                }
                next.last_offset = offset;
                self.image = next;
                self.image_epoch = epoch;
            }
            (MetadataRecord::AbortTransaction { .. }, Some(_)) => {
                // Nothing of the transaction applies, but the image now stands
                // for everything up to the Abort.
                self.open = None;
                self.image.last_offset = offset;
                self.image_epoch = epoch;
            }
            (record, Some(open)) => open.records.push((offset, record.clone())),
            (record, None) => {
                self.image
                    .apply(offset, record)
                    .map_err(|source| ReplayError::Image { offset, source })?;
                self.image_epoch = epoch;
            }
        }
        self.last_offset = offset;
        Ok(())
    }

    /// The offset of the Begin of the transaction still open, if any: a new
    /// active controller aborts it before writing anything else.
    pub fn in_transaction_since(&self) -> Option<i64> {
        self.open.as_ref().map(|o| o.start_offset)
    }

    /// The transaction still open: its Begin's offset and the records buffered
    /// since, with their offsets. A snapshot taken inside a transaction carries
    /// them, so that replay after it can finish or abort the transaction.
    pub fn open_transaction(&self) -> Option<(i64, &[(i64, MetadataRecord)])> {
        self.open
            .as_ref()
            .map(|o| (o.start_offset, o.records.as_slice()))
    }

    /// The image of everything committed outside transactions; its
    /// `last_offset` is the last such record's (an End's for a transaction).
    pub fn image(&self) -> &ClusterImage {
        &self.image
    }

    /// The leader epoch of the record `image()` ends at.
    pub fn image_epoch(&self) -> i32 {
        self.image_epoch
    }

    /// The offset of the last record applied or buffered.
    pub fn last_offset(&self) -> i64 {
        self.last_offset
    }

    pub fn into_image(self) -> ClusterImage {
        self.image
    }
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;
