//! ListOffsets by timestamp against a model of the log: appends in every codec
//! with timestamps going forward and back, rolls, DeleteRecords, queries.
//! See `crates/storage/tests/support/list_offsets_checks.rs`.

#![no_main]

#[path = "../../crates/storage/tests/support/list_offsets_checks.rs"]
mod list_offsets_checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // DeleteRecords only with RIVULET_FUZZ_DELETE_RECORDS=1: it finds the known
    // divergence (crates/storage/tests/hostile_fuzz.rs) at once otherwise.
    let delete_records = std::env::var_os("RIVULET_FUZZ_DELETE_RECORDS").is_some();
    list_offsets_checks::check_list_offsets(data, dir.path(), delete_records);
});
