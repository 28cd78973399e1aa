//! Arbitrary bytes as the records of a produce request or a log segment: batch
//! splitting, header parsing, record skimming and decoding (decompression bounded),
//! and the broker's produce validation with the default log config. Nothing may
//! panic, abort or allocate without bound; the two record readers must agree.

#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::records::batch::{self, BatchHeader, Batches, HEADER_LEN};
use protocol::records::{decode_records, skim_records};
use storage::validate::{validate_records, Origin};
use storage::LogConfig;

const MAX_DECOMPRESSED: usize = 1 << 20;
const NOW_MS: i64 = 1_700_000_000_000;

fn config() -> &'static LogConfig {
    static CONFIG: std::sync::OnceLock<LogConfig> = std::sync::OnceLock::new();
    CONFIG.get_or_init(LogConfig::default)
}

/// Reads one whole batch both ways and checks they agree where both succeed.
fn check_batch(header: &BatchHeader, bytes: &[u8]) {
    assert_eq!(header.size(), bytes.len());
    assert!(bytes.len() >= HEADER_LEN);
    let _ = batch::verify_crc(bytes);
    let _ = header.compression();
    let _ = (header.last_offset(), header.next_offset(), header.timestamp_type());
    let mut skimmed = Vec::new();
    let skim = skim_records(header, bytes, |meta| {
        skimmed.push((meta.offset_delta, meta.key_is_null));
        Ok(())
    });
    if let Ok((decoded_header, records)) = decode_records(bytes, MAX_DECOMPRESSED) {
        assert_eq!(&decoded_header, header);
        let count = skim.unwrap_or_else(|e| panic!("decode_records read {} records, skim_records failed: {e}", records.len()));
        assert_eq!(count, records.len());
        let decoded: Vec<(i64, bool)> = records.iter().map(|r| (r.offset, r.key.is_none())).collect();
        let skimmed: Vec<(i64, bool)> = skimmed.iter().map(|&(delta, null)| (header.base_offset.wrapping_add(i64::from(delta)), null)).collect();
        assert_eq!(decoded, skimmed);
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = BatchHeader::peek_size_and_magic(data);
    if let Ok(header) = BatchHeader::parse(data) {
        if header.size() <= data.len() {
            check_batch(&header, &data[..header.size()]);
        }
    }
    let _ = decode_records(data, MAX_DECOMPRESSED);
    let mut batches = Batches::new(data);
    for item in batches.by_ref() {
        match item {
            Ok((header, bytes)) => check_batch(&header, bytes),
            Err(_) => break,
        }
    }
    let _ = batches.remaining();
    let _ = validate_records(data, config(), NOW_MS, Origin::Client);
    let _ = validate_records(data, config(), NOW_MS, Origin::Coordinator);

    // The CRC stops almost every mutated input at the first check; fix it up so the
    // validator's later checks and the record readers see fuzzed content too.
    if data.len() >= HEADER_LEN {
        if let Ok((size, _)) = BatchHeader::peek_size_and_magic(data) {
            if size <= data.len() && size >= HEADER_LEN {
                let mut fixed = data.to_vec();
                let crc = batch::compute_crc(&fixed[..size]);
                batch::set_crc(&mut fixed, crc);
                let _ = validate_records(&fixed, config(), NOW_MS, Origin::Client);
                let _ = validate_records(&fixed[..size], config(), NOW_MS, Origin::Coordinator);
            }
        }
    }
});
