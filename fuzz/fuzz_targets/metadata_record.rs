//! Arbitrary bytes as a metadata record value (`ApiMessageAndVersion`) and as a
//! legacy JSON record: decoding may fail but never panic or allocate beyond the
//! input; whatever decodes re-encodes to something that decodes to the same record.

#![no_main]

use libfuzzer_sys::fuzz_target;
use metadata::legacy;
use metadata::MetadataRecord;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(record) = MetadataRecord::decode(bytes) {
        let again = MetadataRecord::decode(&record.encode()).expect("an encoded record decodes");
        assert_eq!(again, record);
    }
    if legacy::is_legacy_value(bytes) {
        let _ = legacy::decode_legacy(bytes, 0);
    }
});
