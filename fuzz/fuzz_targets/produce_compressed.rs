//! A produce request's compressed batch through validation and topic-level
//! recompression, in every codec pair, on compacted topics and small
//! `max.message.bytes`. See `crates/storage/tests/support/produce_checks.rs`.

#![no_main]

#[path = "../../crates/storage/tests/support/produce_checks.rs"]
mod produce_checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (batch, config) = produce_checks::produce_input(data);
    let _ = produce_checks::check_produce(&batch, &config);
});
