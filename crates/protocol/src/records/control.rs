//! Control records: the one record of a control batch (attributes bit 5), written
//! by the broker, never by clients. Transaction markers are the control records
//! Kafka writes:
//!
//! ```text
//! key:   version int16 (0)   type int16 (0 = ABORT, 1 = COMMIT)
//! value: version int16 (0)   coordinator_epoch int32
//! ```
//!
//! Every reader of control records (producer state, the cleaner, the group
//! coordinator's replay) decodes them here.

use crate::records::batch::BatchHeader;
use crate::records::record::RecordError;
use crate::records::view::{records_section, RecordViews};

/// The ABORT marker's type.
pub const ABORT: i16 = 0;
/// The COMMIT marker's type.
pub const COMMIT: i16 = 1;

/// A control batch's decoded record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlRecord {
    /// [`ABORT`], [`COMMIT`] or a type this broker does not know.
    pub kind: i16,
    /// The coordinator epoch of a transaction marker; 0 when the value lacks one.
    pub coordinator_epoch: i32,
}

impl ControlRecord {
    /// From a control record's key and value; `None` when the key is too short
    /// to hold a type.
    pub fn parse(key: Option<&[u8]>, value: Option<&[u8]>) -> Option<ControlRecord> {
        let key = key.filter(|k| k.len() >= 4)?;
        let coordinator_epoch = value
            .filter(|v| v.len() >= 6)
            .map(|v| i32::from_be_bytes([v[2], v[3], v[4], v[5]]))
            .unwrap_or(0);
        Some(ControlRecord {
            kind: i16::from_be_bytes([key[2], key[3]]),
            coordinator_epoch,
        })
    }

    pub fn is_abort(&self) -> bool {
        self.kind == ABORT
    }

    pub fn is_commit(&self) -> bool {
        self.kind == COMMIT
    }
}

/// The control record of `batch` (a whole batch with `header`): `None` when the
/// batch is not a control batch or holds no record with a type (a batch the
/// cleaner emptied). Decompression, if any, is bounded by `max_decompressed`.
pub fn control_record(
    header: &BatchHeader,
    batch: &[u8],
    max_decompressed: usize,
) -> Result<Option<ControlRecord>, RecordError> {
    if !header.is_control() {
        return Ok(None);
    }
    let section = records_section(header, batch, max_decompressed)?;
    let Some(first) = RecordViews::new(&section).next() else {
        return Ok(None);
    };
    let record = first?;
    Ok(ControlRecord::parse(record.key, record.value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{decode_records, BatchBuilder, Compression, NewRecord};

    fn marker(kind: i16, coordinator_epoch: i32, compression: Compression) -> Vec<u8> {
        let key = [0, 0, (kind >> 8) as u8, kind as u8];
        let mut value = vec![0, 0];
        value.extend_from_slice(&coordinator_epoch.to_be_bytes());
        let mut builder = BatchBuilder::new(compression)
            .producer(7, 0, -1)
            .transactional(true)
            .control(true);
        builder.append(&NewRecord {
            timestamp: 1,
            key: Some(&key),
            value: Some(&value),
            headers: &[],
        });
        builder.build().unwrap()
    }

    #[test]
    fn markers_decode_to_their_type_and_coordinator_epoch() {
        for compression in [Compression::None, Compression::Gzip] {
            let batch = marker(COMMIT, 42, compression);
            let header = BatchHeader::parse(&batch).unwrap();
            let record = control_record(&header, &batch, 1 << 16).unwrap().unwrap();
            assert_eq!(
                record,
                ControlRecord {
                    kind: COMMIT,
                    coordinator_epoch: 42
                }
            );
            assert!(record.is_commit() && !record.is_abort());
        }
        let batch = marker(ABORT, 3, Compression::None);
        let header = BatchHeader::parse(&batch).unwrap();
        assert!(control_record(&header, &batch, 1 << 16)
            .unwrap()
            .unwrap()
            .is_abort());
        assert_eq!(ControlRecord::parse(Some(&[0, 0, 0]), None), None);
        assert_eq!(
            ControlRecord::parse(Some(&[0, 0, 0, 1]), None),
            Some(ControlRecord {
                kind: COMMIT,
                coordinator_epoch: 0
            })
        );
    }

    #[test]
    fn a_data_batch_has_no_control_record() {
        let mut builder = BatchBuilder::new(Compression::None);
        builder.append(&NewRecord {
            timestamp: 1,
            key: Some(b"k"),
            value: None,
            headers: &[],
        });
        let batch = builder.build().unwrap();
        let header = BatchHeader::parse(&batch).unwrap();
        assert_eq!(control_record(&header, &batch, 1 << 16).unwrap(), None);
    }

    #[test]
    fn record_views_agree_with_decoded_records() {
        for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let mut builder = BatchBuilder::new(compression).base_offset(100);
            builder.append(&NewRecord {
                timestamp: 5,
                key: Some(b"a"),
                value: Some(b"one"),
                headers: &[("h", Some(b"x"))],
            });
            builder.append(&NewRecord {
                timestamp: 9,
                key: None,
                value: None,
                headers: &[],
            });
            let batch = builder.build().unwrap();
            let header = BatchHeader::parse(&batch).unwrap();
            let (_, decoded) = decode_records(&batch, 1 << 20).unwrap();
            let section = crate::records::records_section(&header, &batch, 1 << 20).unwrap();
            let views: Vec<_> = crate::records::RecordViews::new(&section)
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(views.len(), decoded.len());
            for (view, record) in views.iter().zip(&decoded) {
                assert_eq!(view.offset(&header), record.offset);
                assert_eq!(view.timestamp(&header), record.timestamp);
                assert_eq!(view.key, record.key.as_deref());
                assert_eq!(view.value, record.value.as_deref());
            }
            assert!(views[1].is_tombstone());
            let total: usize = views.iter().map(|v| v.bytes.len()).sum();
            assert_eq!(total, section.len(), "views cover the section exactly");
        }
    }

    #[test]
    fn a_malformed_record_ends_the_walk_with_an_error() {
        let section = [0x06u8, 0, 0, 0, 0x7f];
        let mut views = crate::records::RecordViews::new(&section);
        assert!(views.next().unwrap().is_err());
        assert!(views.next().is_none());
    }
}
