//! Arbitrary bytes as the message set (magic 0/1) of a Produce v0-2 request, and
//! as the v2 batches a Fetch v0-3 answer down-converts: parsing, wrapper
//! decompression (bounded), up-conversion to a v2 batch and down-conversion at both
//! magics. Nothing may panic, abort or allocate without bound; a set that converts
//! must come back with the same messages when down-converted.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use protocol::records::message_set::{down_convert, messages, to_batch};
use protocol::records::DecompressionBudget;

const MAX_DECOMPRESSED: usize = 1 << 20;

fn budget() -> DecompressionBudget {
    DecompressionBudget::new(MAX_DECOMPRESSED)
}

/// A down-conversion's budget also pays for the messages it writes: at most
/// the decompressed records and about 1.3 times them again (a magic 1 message
/// takes 34 bytes besides its key and value, a magic 0 inner one at least 26).
fn down_budget() -> DecompressionBudget {
    DecompressionBudget::new(4 * MAX_DECOMPRESSED)
}

/// Sets the CRC of the first message so mutated input reaches the later checks.
fn fix_first_crc(data: &[u8]) -> Option<Vec<u8>> {
    if data.len() < 16 {
        return None;
    }
    let size = i32::from_be_bytes(data[8..12].try_into().ok()?);
    let end = 12usize.checked_add(usize::try_from(size).ok()?)?;
    if size < 4 || end > data.len() {
        return None;
    }
    let mut fixed = data.to_vec();
    let mut crc = flate2::Crc::new();
    crc.update(&fixed[16..end]);
    fixed[12..16].copy_from_slice(&crc.sum().to_be_bytes());
    Some(fixed)
}

fn check(set: Bytes) {
    let parsed = messages(&set, &mut budget());
    let Ok(batch) = to_batch(&set, &mut budget()) else {
        return;
    };
    let (messages, _) = parsed.expect("to_batch converted what messages() refused");
    let batch = Bytes::from(batch);
    for magic in [0, 1] {
        let down = down_convert(&batch, magic, 0, usize::MAX, &mut down_budget())
            .expect("a converted batch down-converts");
        let (back, _) = protocol::records::message_set::messages(&Bytes::from(down), &mut down_budget())
            .expect("a down-converted set parses");
        let keys = |m: &[protocol::records::message_set::Message]| -> Vec<(Option<Bytes>, Option<Bytes>)> {
            m.iter().map(|m| (m.key.clone(), m.value.clone())).collect()
        };
        assert_eq!(keys(&back), keys(&messages));
    }
}

fuzz_target!(|data: &[u8]| {
    check(Bytes::copy_from_slice(data));
    if let Some(fixed) = fix_first_crc(data) {
        check(Bytes::from(fixed));
    }
    // The same bytes as stored v2 batches, down-converted.
    let stored = Bytes::copy_from_slice(data);
    for magic in [0, 1] {
        let _ = down_convert(&stored, magic, 0, 1 << 16, &mut budget());
    }
});
