//! The one place the broker draws randomness from the operating system; the
//! cores take it through `protocol::random::Random`.

use protocol::random::Random;

/// The operating system's random numbers (through the `uuid` crate's v4
/// generator, which reads `getrandom`).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl Random for OsRandom {
    fn next_u64(&self) -> u64 {
        uuid::Uuid::new_v4().as_u64_pair().0
    }
}
