//! Golden message sets, encoded by kafka-python 3.0.12's `LegacyRecordBatchBuilder`
//! (the encoder its producer uses for brokers before 0.11).

use bytes::Bytes;

use super::*;
use crate::records::{decode_records, BatchHeader};

fn budget(limit: usize) -> DecompressionBudget {
    DecompressionBudget::new(limit)
}

fn hex(s: &str) -> Bytes {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect::<Vec<u8>>()
        .into()
}

/// Magic 0, uncompressed: (k0, v0), (null, v1), offsets 0 and 1.
const MAGIC0: &str = "0000000000000000000000128697724c0000000000026b300000000276300000000000000001000000104c9f5bc20000ffffffff000000027631";
/// Magic 1, uncompressed, CreateTime 1700000000000 and ...001.
const MAGIC1: &str = "00000000000000000000001a74aa514001000000018bcfe56800000000026b30000000027630000000000000000100000018abdbdf3b01000000018bcfe56801ffffffff000000027631";
/// Magic 1, gzip wrapper: (k0, v0) at ...000, (k1, null) at ...001.
const GZIP1: &str = "000000000000000000000055d146dfdb01010000000000000000ffffffff0000003f1f8b0800767b116b02ff63608003a99255810e8c400663f7f9a7192011a66c031059660055019294d03e2efb19ae8a11accaf03f1000008a750f1b4a000000";
/// Magic 0, snappy wrapper (xerial framing): (k0, v0), (k1, v1).
const SNAPPY0: &str = "0000000000000000000000540f039dab0002ffffffff0000004682534e41505059000000000100000001000000323c0000190110128697724c050f1c026b3000000002760106010158010000001257e7496e0000000000026b31000000027631";

/// (offset, timestamp, key, value).
type Kv<'a> = (i64, i64, Option<&'a [u8]>, Option<&'a [u8]>);

fn kv(records: &[crate::records::Record]) -> Vec<Kv<'_>> {
    records
        .iter()
        .map(|r| (r.offset, r.timestamp, r.key.as_deref(), r.value.as_deref()))
        .collect()
}

#[test]
fn magic_0_becomes_a_batch_without_timestamps() {
    let set = hex(MAGIC0);
    assert!(is_message_set(&set));
    let batch = to_batch(&set, &mut budget(1 << 20)).unwrap();
    let (header, records) = decode_records(&batch, 1 << 20).unwrap();
    assert_eq!(header.compression().unwrap(), Compression::None);
    assert_eq!(
        kv(&records),
        vec![
            (0, -1, Some(&b"k0"[..]), Some(&b"v0"[..])),
            (1, -1, None, Some(&b"v1"[..]))
        ]
    );
}

#[test]
fn magic_1_keeps_its_timestamps() {
    let batch = to_batch(&hex(MAGIC1), &mut budget(1 << 20)).unwrap();
    let (_, records) = decode_records(&batch, 1 << 20).unwrap();
    assert_eq!(
        kv(&records),
        vec![
            (0, 1_700_000_000_000, Some(&b"k0"[..]), Some(&b"v0"[..])),
            (1, 1_700_000_000_001, None, Some(&b"v1"[..]))
        ]
    );
}

#[test]
fn a_wrapper_is_opened_and_its_codec_kept() {
    for (golden, codec, expected) in [
        (
            GZIP1,
            Compression::Gzip,
            vec![
                (0, 1_700_000_000_000, Some(&b"k0"[..]), Some(&b"v0"[..])),
                (1, 1_700_000_000_001, Some(&b"k1"[..]), None),
            ],
        ),
        (
            SNAPPY0,
            Compression::Snappy,
            vec![
                (0, -1, Some(&b"k0"[..]), Some(&b"v0"[..])),
                (1, -1, Some(&b"k1"[..]), Some(&b"v1"[..])),
            ],
        ),
    ] {
        let batch = to_batch(&hex(golden), &mut budget(1 << 20)).unwrap();
        let (header, records) = decode_records(&batch, 1 << 20).unwrap();
        assert_eq!(header.compression().unwrap(), codec);
        assert_eq!(kv(&records), expected);
    }
}

#[test]
fn down_conversion_writes_what_kafka_python_writes() {
    // The v2 batch of MAGIC1's records down-converts to MAGIC1's bytes exactly, and
    // to MAGIC0's at magic 0.
    let batch: Bytes = to_batch(&hex(MAGIC1), &mut budget(1 << 20)).unwrap().into();
    assert_eq!(
        down_convert(&batch, 1, 0, usize::MAX, &mut budget(1 << 20)).unwrap(),
        hex(MAGIC1)
    );
    assert_eq!(
        down_convert(&batch, 0, 0, usize::MAX, &mut budget(1 << 20)).unwrap(),
        hex(MAGIC0)
    );
}

#[test]
fn down_conversion_stops_at_max_bytes_but_sends_one_message() {
    let batch: Bytes = to_batch(&hex(MAGIC1), &mut budget(1 << 20)).unwrap().into();
    let one = down_convert(&batch, 1, 0, 1, &mut budget(1 << 20)).unwrap();
    assert_eq!(one, hex(MAGIC1).slice(..38));
    let both = down_convert(&batch, 1, 0, 74, &mut budget(1 << 20)).unwrap();
    assert_eq!(both.len(), 74);
    let second = down_convert(&batch, 1, 1, 1, &mut budget(1 << 20)).unwrap();
    assert_eq!(second, hex(MAGIC1).slice(38..));
}

#[test]
fn zstd_batches_cannot_be_down_converted() {
    let mut builder = BatchBuilder::new(Compression::Zstd);
    builder.append(&NewRecord {
        value: Some(b"v"),
        ..NewRecord::default()
    });
    let batch: Bytes = builder.build().unwrap().into();
    assert_eq!(
        down_convert(&batch, 1, 0, usize::MAX, &mut budget(1 << 20)),
        Err(MessageSetError::UnsupportedCompression("zstd"))
    );
}

#[test]
fn a_flipped_byte_fails_the_crc() {
    let mut set = hex(MAGIC0).to_vec();
    set[25] ^= 1;
    assert!(matches!(
        to_batch(&set.into(), &mut budget(1 << 20)),
        Err(MessageSetError::CrcMismatch { offset: 0, .. })
    ));
}

#[test]
fn bad_lengths_are_corrupt_not_panics() {
    let good = hex(MAGIC1);
    // Every truncation but the one between the two messages, and a size field
    // claiming 2 GiB.
    for cut in (0..good.len()).filter(|&cut| cut != 38) {
        assert!(
            to_batch(&good.slice(..cut), &mut budget(1 << 20)).is_err(),
            "cut at {cut}"
        );
    }
    assert_eq!(
        to_batch(&good.slice(..38), &mut budget(1 << 20)).map(|_| ()),
        Ok(())
    );
    let mut huge = good.to_vec();
    huge[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
    assert!(matches!(
        to_batch(&huge.into(), &mut budget(1 << 20)),
        Err(MessageSetError::Corrupt(_))
    ));
}

/// A message set of one gzip wrapper (magic 1) holding `count` messages of
/// `value_len` zero bytes each.
fn gzip_wrapper(count: i64, value_len: usize) -> Bytes {
    let mut inner = Vec::new();
    for offset in 0..count {
        write_message(
            &mut inner,
            1,
            offset,
            0,
            false,
            None,
            Some(&vec![0u8; value_len]),
        );
    }
    let compressed = crate::records::compression::compress(Compression::Gzip, &inner).unwrap();
    let mut set = Vec::new();
    // A wrapper: magic 1, gzip, value = the compressed set.
    let mut message = Vec::new();
    message.extend_from_slice(&[1u8, 1]);
    message.extend_from_slice(&0i64.to_be_bytes());
    message.extend_from_slice(&(-1i32).to_be_bytes());
    message.extend_from_slice(&(compressed.len() as i32).to_be_bytes());
    message.extend_from_slice(&compressed);
    set.extend_from_slice(&0i64.to_be_bytes());
    set.extend_from_slice(&((message.len() + 4) as i32).to_be_bytes());
    set.extend_from_slice(&crc32(&message).to_be_bytes());
    set.extend_from_slice(&message);
    set.into()
}

/// Bytes one message of magic 1 with a value of `value_len` bytes takes.
fn message_len(value_len: usize) -> usize {
    12 + 4 + 1 + 1 + 8 + 4 + 4 + value_len
}

#[test]
fn a_decompression_bomb_stops_at_the_limit() {
    let set = gzip_wrapper(2000, 1000);
    assert_eq!(
        to_batch(&set, &mut budget(1 << 20)),
        Err(MessageSetError::DecompressedTooLarge { limit: 1 << 20 })
    );
    let (messages, codec) = messages(&set, &mut budget(4 << 20)).unwrap();
    assert_eq!((messages.len(), codec), (2000, Compression::Gzip));
}

#[test]
fn a_produce_of_many_partitions_shares_one_budget() {
    // Each partition's set decompresses to 100 messages of 1000 bytes, 103,400
    // bytes: well under the bound alone. Forty of them, as forty partitions of
    // one request, would be 4 MiB; the request's budget is 1 MiB.
    let set = gzip_wrapper(100, 1000);
    let each = 100 * message_len(1000);
    assert_eq!(each, 103_400);
    let mut request = budget(1 << 20);
    let mut converted = 0;
    let mut refused = 0;
    for _ in 0..40 {
        match to_batch(&set, &mut request) {
            Ok(_) => converted += 1,
            Err(e) => {
                assert_eq!(e, MessageSetError::DecompressedTooLarge { limit: 1 << 20 });
                refused += 1;
            }
        }
    }
    // Ten fit (1,034,000 bytes); the eleventh goes past 1 MiB and spends the
    // budget, so every one after it is refused too, at no more work.
    assert_eq!((converted, refused), (10, 30));
    assert_eq!(request.used(), 1 << 20);
    // Uncompressed sets cost the budget nothing and still convert.
    assert!(to_batch(&hex(MAGIC1), &mut request).is_ok());
}

#[test]
fn a_fetch_of_many_partitions_shares_one_budget() {
    // Each partition holds one gzip batch of 100 records of 1000 bytes.
    let mut builder = BatchBuilder::new(Compression::Gzip);
    for _ in 0..100 {
        builder.append(&NewRecord {
            value: Some(&[0u8; 1000]),
            ..NewRecord::default()
        });
    }
    let batch: Bytes = builder.build().unwrap().into();
    let section = {
        let header = BatchHeader::parse(&batch).unwrap();
        budget(1 << 20)
            .records_section(&header, &batch)
            .unwrap()
            .len()
    };
    // Each partition costs its section and the messages written (about 204 KB).
    // A response budget of four partitions, a fifth's section and ten and a bit
    // of its messages: four partitions whole, the fifth cut where the budget ran
    // out, then none however many follow.
    let whole = 100 * message_len(1000);
    let per_partition = section + whole;
    let limit = 4 * per_partition + section + 10 * message_len(1000) + 5;
    let mut response = budget(limit);
    let mut sizes = Vec::new();
    for _ in 0..20 {
        let set = down_convert(&batch, 1, 0, usize::MAX, &mut response).unwrap();
        sizes.push(set.len());
    }
    assert_eq!(&sizes[..4], &[whole; 4]);
    assert_eq!(sizes[4], 10 * message_len(1000));
    assert!(sizes[5..].iter().all(|&s| s == 0), "{sizes:?}");
    assert_eq!(response.remaining(), 0);
    // Whatever the budget, a partition's first message goes while any is left.
    let mut nearly_spent = budget(section + 1);
    let one = down_convert(&batch, 1, 0, usize::MAX, &mut nearly_spent).unwrap();
    assert_eq!(one.len(), message_len(1000));
    // A batch that alone decompresses past a fresh budget is an error.
    assert_eq!(
        down_convert(&batch, 1, 0, usize::MAX, &mut budget(1000)),
        Err(MessageSetError::DecompressedTooLarge { limit: 1000 })
    );
}

#[test]
fn xxh32_matches_the_reference_vectors() {
    // xxHash's published values for seed 0.
    assert_eq!(xxh32_short(b""), 0x02cc_5d05);
    assert_eq!(xxh32_short(b"a"), 0x550d_7456);
    assert_eq!(xxh32_short(b"abc"), 0x32d1_53ff);
}
