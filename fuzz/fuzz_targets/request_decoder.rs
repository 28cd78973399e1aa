//! Arbitrary bytes as one request frame (no size prefix), as the broker's reader
//! hands it to `protocol::frame::parse_request`. Whatever header parses, the body
//! is decoded with that API key's request type at that version (every key the
//! vendored codec knows, served or not); what decodes must re-encode and decode
//! to the same message; the body is also read under every other version of its
//! key. See `crates/protocol/tests/support/request_codec.rs`.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/protocol/tests/support/request_codec.rs"]
mod request_codec;

fuzz_target!(|data: &[u8]| {
    if let Err(failure) = request_codec::check_input(data) {
        panic!("{failure}");
    }
});
