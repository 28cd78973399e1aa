use proptest::prelude::*;

use super::batch::{self, BatchHeader, Batches, TimestampType, HEADER_LEN};
use super::*;

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn sample_batch(compression: Compression) -> Vec<u8> {
    let mut builder = BatchBuilder::new(compression);
    builder.append(&NewRecord {
        timestamp: 1_000,
        key: Some(b"k1"),
        value: Some(b"v1"),
        headers: &[],
    });
    builder.append(&NewRecord {
        timestamp: 1_005,
        key: None,
        value: None,
        headers: &[("h", Some(b"x")), ("h", None)],
    });
    builder.append(&NewRecord {
        timestamp: 999,
        key: Some(b""),
        value: Some(b""),
        headers: &[],
    });
    builder.build().unwrap()
}

#[test]
fn built_batches_decode_to_the_same_records_for_every_codec() {
    for codec in CODECS {
        let bytes = sample_batch(codec);
        batch::verify_crc(&bytes).unwrap();
        let (header, records) = decode_records(&bytes, 1 << 20).unwrap();
        assert_eq!(header.records_count, 3);
        assert_eq!(header.last_offset_delta, 2);
        assert_eq!(header.base_timestamp, 1_000);
        assert_eq!(header.max_timestamp, 1_005);
        assert_eq!(header.compression().unwrap(), codec);
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(records[1].key, None);
        assert_eq!(records[1].value, None);
        assert_eq!(records[1].timestamp, 1_005);
        assert_eq!(records[1].headers.len(), 2);
        assert_eq!(records[1].headers[0].key, "h");
        assert_eq!(records[1].headers[1].value, None);
        assert_eq!(records[2].key.as_deref(), Some(&b""[..]));
        assert_eq!(records[2].timestamp, 999);
        assert_eq!(
            records.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
    }
}

#[test]
fn skim_sees_every_record_with_its_offset_delta_and_timestamp() {
    for codec in CODECS {
        let bytes = sample_batch(codec);
        let header = BatchHeader::parse(&bytes).unwrap();
        let mut seen = Vec::new();
        let count = skim_records(&header, &bytes, |meta| {
            seen.push((meta.offset_delta, meta.timestamp, meta.key_is_null));
            Ok(())
        })
        .unwrap();
        assert_eq!(count, 3);
        assert_eq!(
            seen,
            vec![(0, 1_000, false), (1, 1_005, true), (2, 999, false)],
            "{codec:?}"
        );
    }
}

#[test]
fn skim_rejects_a_header_count_larger_than_the_records() {
    for codec in CODECS {
        let mut bytes = sample_batch(codec);
        bytes[batch::RECORDS_COUNT_AT..batch::RECORDS_COUNT_AT + 4]
            .copy_from_slice(&4i32.to_be_bytes());
        let header = BatchHeader::parse(&bytes).unwrap();
        let result = skim_records(&header, &bytes, |_| Ok(()));
        assert!(result.is_err(), "{codec:?}: {result:?}");
    }
}

#[test]
fn skim_rejects_a_header_count_smaller_than_the_records() {
    for codec in CODECS {
        let mut bytes = sample_batch(codec);
        bytes[batch::RECORDS_COUNT_AT..batch::RECORDS_COUNT_AT + 4]
            .copy_from_slice(&2i32.to_be_bytes());
        let header = BatchHeader::parse(&bytes).unwrap();
        let result = skim_records(&header, &bytes, |_| Ok(()));
        assert!(
            matches!(result, Err(RecordError::CountMismatch { .. })),
            "{codec:?}: {result:?}"
        );
    }
}

#[test]
fn patching_offset_and_epoch_keeps_the_crc_valid() {
    let mut bytes = sample_batch(Compression::None);
    batch::patch_offset_and_epoch(&mut bytes[..HEADER_LEN], 42, 7);
    batch::verify_crc(&bytes).unwrap();
    let header = BatchHeader::parse(&bytes).unwrap();
    assert_eq!(header.base_offset, 42);
    assert_eq!(header.partition_leader_epoch, 7);
    assert_eq!(header.last_offset(), 44);
}

#[test]
fn offsets_at_the_ends_of_i64_wrap_instead_of_panicking() {
    // Found by `cargo fuzz run batch_parser`: a header with base offset i64::MIN and
    // last offset delta -1 made `last_offset()` overflow ("attempt to add with
    // overflow" in debug builds). Produce validation formats it into its error
    // message before checking the base offset, so a client could hit it.
    let mut header = [0u8; HEADER_LEN];
    header[batch::BASE_OFFSET_AT..batch::BASE_OFFSET_AT + 8]
        .copy_from_slice(&i64::MIN.to_be_bytes());
    header[batch::BATCH_LENGTH_AT..batch::BATCH_LENGTH_AT + 4]
        .copy_from_slice(&49i32.to_be_bytes());
    header[batch::MAGIC_AT] = 2;
    header[batch::LAST_OFFSET_DELTA_AT..batch::LAST_OFFSET_DELTA_AT + 4]
        .copy_from_slice(&(-1i32).to_be_bytes());
    let parsed = BatchHeader::parse(&header).unwrap();
    assert_eq!(parsed.last_offset(), i64::MAX);
    assert_eq!(parsed.next_offset(), i64::MIN);

    // Record offsets past i64::MAX wrap the same way in decode_records.
    let mut bytes = sample_batch(Compression::None);
    batch::patch_offset_and_epoch(&mut bytes[..HEADER_LEN], i64::MAX, 0);
    let parsed = BatchHeader::parse(&bytes).unwrap();
    assert_eq!(parsed.last_offset(), i64::MIN + 1);
    let (_, records) = decode_records(&bytes, 1 << 20).unwrap();
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![i64::MAX, i64::MIN, i64::MIN + 1]);
}

#[test]
fn log_append_time_patch_sets_type_and_max_timestamp_with_a_fresh_crc() {
    let mut bytes = sample_batch(Compression::Lz4);
    let (head, body) = bytes.split_at_mut(HEADER_LEN);
    batch::patch_log_append_time(head, body, 123_456);
    batch::verify_crc(&bytes).unwrap();
    let (header, records) = decode_records(&bytes, 1 << 20).unwrap();
    assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(header.max_timestamp, 123_456);
    assert!(records.iter().all(|r| r.timestamp == 123_456));
}

#[test]
fn a_flipped_bit_fails_the_crc() {
    let mut bytes = sample_batch(Compression::None);
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    assert!(matches!(
        batch::verify_crc(&bytes),
        Err(BatchError::CrcMismatch { .. })
    ));
}

#[test]
fn batches_splits_a_run_and_stops_at_a_torn_tail() {
    let a = sample_batch(Compression::None);
    let b = sample_batch(Compression::Gzip);
    let mut run = a.clone();
    run.extend_from_slice(&b);
    let sizes: Vec<usize> = Batches::new(&run).map(|r| r.unwrap().1.len()).collect();
    assert_eq!(sizes, vec![a.len(), b.len()]);

    let torn = &run[..run.len() - 3];
    let results: Vec<_> = Batches::new(torn).collect();
    assert_eq!(results.len(), 2);
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(BatchError::Truncated { .. })));
}

#[test]
fn legacy_magic_is_reported_as_unsupported() {
    let mut bytes = sample_batch(Compression::None);
    bytes[batch::MAGIC_AT] = 1;
    assert_eq!(
        BatchHeader::parse(&bytes),
        Err(BatchError::UnsupportedMagic(1))
    );
}

type ArbRecord = (
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Option<Vec<u8>>)>,
);

fn arb_record() -> impl Strategy<Value = ArbRecord> {
    (
        0i64..2_000_000_000_000,
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
        proptest::collection::vec(
            (
                "[a-z]{0,5}",
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
            ),
            0..3,
        ),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_records_round_trip_through_any_codec(
        records in proptest::collection::vec(arb_record(), 1..30),
        codec_index in 0usize..5,
        base_offset in 0i64..1_000_000,
    ) {
        let codec = CODECS[codec_index];
        let mut builder = BatchBuilder::new(codec).base_offset(base_offset);
        for (timestamp, key, value, headers) in &records {
            let headers: Vec<(&str, Option<&[u8]>)> =
                headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
            builder.append(&NewRecord { timestamp: *timestamp, key: key.as_deref(), value: value.as_deref(), headers: &headers });
        }
        let bytes = builder.build().unwrap();
        batch::verify_crc(&bytes).unwrap();
        let header = BatchHeader::parse(&bytes).unwrap();
        prop_assert_eq!(skim_records(&header, &bytes, |_| Ok(())).unwrap(), records.len());
        let (_, decoded) = decode_records(&bytes, 1 << 24).unwrap();
        prop_assert_eq!(decoded.len(), records.len());
        for (i, (record, (timestamp, key, value, headers))) in decoded.iter().zip(&records).enumerate() {
            prop_assert_eq!(record.offset, base_offset + i as i64);
            prop_assert_eq!(record.timestamp, *timestamp);
            prop_assert_eq!(record.key.as_deref(), key.as_deref());
            prop_assert_eq!(record.value.as_deref(), value.as_deref());
            prop_assert_eq!(record.headers.len(), headers.len());
        }
    }

    #[test]
    fn garbage_never_panics_the_batch_readers(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        for (header, batch) in Batches::new(&bytes).flatten() {
            let _ = skim_records(&header, batch, |_| Ok(()));
            let _ = decode_records(batch, 1 << 16);
        }
    }

    #[test]
    fn corrupted_batches_never_panic_the_readers(index in 0usize..400, value: u8, codec_index in 0usize..5) {
        let mut bytes = sample_batch(CODECS[codec_index]);
        let i = index % bytes.len();
        bytes[i] = value;
        if let Ok(header) = BatchHeader::parse(&bytes) {
            if header.size() <= bytes.len() {
                let _ = skim_records(&header, &bytes[..header.size()], |_| Ok(()));
            }
        }
        let _ = decode_records(&bytes, 1 << 16);
    }
}

#[test]
fn compress_stream_gives_what_compress_gives_back_for_every_codec() {
    let data: Vec<u8> = (0..200_000u32)
        .flat_map(|i| (i % 251).to_be_bytes())
        .collect();
    for codec in CODECS {
        let streamed = compression::compress_stream(codec, &mut &data[..], Vec::new()).unwrap();
        let back = compression::decompress_to_vec(codec, &streamed, data.len()).unwrap();
        assert_eq!(back, data, "{codec:?}");
    }
}

#[test]
fn a_bomb_in_every_codec_stops_at_the_decompression_limit() {
    for codec in CODECS.into_iter().filter(|c| *c != Compression::None) {
        // 200,000 empty records: 1.4 MB decompressed from 1/20 of that or less.
        let bomb = bomb::empty_records_batch(codec, 200_000, 1_000);
        assert!(bomb.len() < 70_000, "{codec:?}: {} bytes", bomb.len());
        batch::verify_crc(&bomb).unwrap();
        let header = BatchHeader::parse(&bomb).unwrap();
        let mut seen = 0usize;
        let error = skim_records_limited(&header, &bomb, 64 * 1024, |_| {
            seen += 1;
            Ok(())
        })
        .unwrap_err();
        assert_eq!(
            error,
            RecordError::DecompressedTooLarge { limit: 64 * 1024 },
            "{codec:?}"
        );
        assert!(
            seen < 20_000,
            "{codec:?}: walked {seen} records past the limit"
        );
        // Under a limit it fits in, the same batch is valid.
        assert_eq!(
            skim_records_limited(&header, &bomb, 2 << 20, |_| Ok(())),
            Ok(200_000)
        );
    }
}

#[test]
fn a_batch_holding_more_records_than_it_declares_is_refused_at_the_first_extra_one() {
    let mut bomb = bomb::empty_records_batch(Compression::Zstd, 100_000, 1_000);
    // Declare 10 records: the walk stops at the 11th instead of reading 100,000.
    bomb[batch::RECORDS_COUNT_AT..batch::RECORDS_COUNT_AT + 4]
        .copy_from_slice(&10i32.to_be_bytes());
    let header = BatchHeader::parse(&bomb).unwrap();
    let mut seen = 0;
    let error = skim_records(&header, &bomb, |_| {
        seen += 1;
        Ok(())
    })
    .unwrap_err();
    assert_eq!(
        error,
        RecordError::CountMismatch {
            declared: 10,
            actual: 11
        }
    );
    assert_eq!(seen, 10);
}
