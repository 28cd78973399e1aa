//! CreateTopics decisions on arbitrary requests: counts at the edges of i32,
//! thousands of assignments, names that collide, a broker-wide partition limit.
//! See `crates/metadata/tests/support/controller_checks.rs` for what is checked.

#![no_main]

#[allow(dead_code)] // each target uses one of the checks
#[path = "../../crates/metadata/tests/support/controller_checks.rs"]
mod controller_checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    controller_checks::check_create_topics(data);
});
