//! CreatePartitions decisions on arbitrary requests: increases to i32::MAX, more
//! than 10,000 new partitions over several topics, bad manual assignments.
//! See `crates/metadata/tests/support/controller_checks.rs` for what is checked.

#![no_main]

#[allow(dead_code)] // each target uses one of the checks
#[path = "../../crates/metadata/tests/support/controller_checks.rs"]
mod controller_checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    controller_checks::check_create_partitions(data);
});
