//! Bounds on reading a snapshot file: one decompression budget for the file.

use bytes::Bytes;
use metadata::MetadataRecord;
use protocol::records::{BatchBuilder, Compression, NewRecord, RecordError};

use super::{scan, SnapshotError};
use crate::codec::{self, CodecError};

/// A snapshot file (header, `batches` gzip batches of `records` NoOp records
/// each, footer), and what each batch decompresses to.
fn file(batches: usize, records: usize) -> (Bytes, usize) {
    let mut out =
        codec::control_batch(codec::SNAPSHOT_HEADER, 1, &codec::encode_snapshot_header(1));
    let value = MetadataRecord::NoOp.encode();
    let mut section = 0;
    for _ in 0..batches {
        let mut builder = BatchBuilder::new(Compression::Gzip);
        for _ in 0..records {
            builder.append(&NewRecord {
                timestamp: 1,
                key: None,
                value: Some(&value),
                headers: &[],
            });
        }
        let plain = builder
            .clone()
            .compression(Compression::None)
            .build()
            .unwrap();
        section = plain.len() - protocol::records::batch::HEADER_LEN;
        out.extend_from_slice(&builder.build().unwrap());
    }
    out.extend_from_slice(&codec::control_batch(
        codec::SNAPSHOT_FOOTER,
        1,
        &codec::encode_snapshot_footer(),
    ));
    (out.into(), section)
}

#[test]
fn the_whole_file_shares_one_decompression_budget() {
    // Ten batches of 20,000 records, each far under the bound alone.
    let (bytes, section) = file(10, 20_000);
    // The file itself is well within the bound: what is refused below is what
    // its batches decompress to.
    assert!(
        bytes.len() < 2 * section,
        "{} compressed, {section} each",
        bytes.len()
    );
    let scanned = scan(&bytes, 10 * section).unwrap();
    assert_eq!(scanned.image_records.len(), 200_000);
    assert!(scanned.footer);
    // One byte less for the ten together: refused, where a bound per batch
    // would have let each through.
    let limit = 10 * section - 1;
    match scan(&bytes, limit) {
        Err(SnapshotError::Codec(CodecError::Records(RecordError::DecompressedTooLarge {
            limit: got,
        }))) => assert_eq!(got, limit as u64),
        other => panic!("expected DecompressedTooLarge, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_truncated_or_miscounted_file_is_invalid() {
    let (bytes, _) = file(2, 10);
    for cut in [bytes.len() - 1, bytes.len() - 30] {
        assert!(matches!(
            scan(&bytes.slice(..cut), 1 << 20),
            Err(SnapshotError::Invalid(_))
        ));
    }
    assert!(scan(&bytes, bytes.len() - 1).is_err());
}
