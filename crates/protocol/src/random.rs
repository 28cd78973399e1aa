//! Randomness as the cores see it: through a [`Random`] passed in, never drawn
//! from the operating system directly, so tests and simulations replay it from a
//! seed. One stream per purpose ([`SeededRandom::stream`]): a new draw in one
//! place leaves the other streams, and so the rest of a trace, unchanged.
//!
//! [`OsRandom`] is the one place anything draws from the operating system:
//! clippy's `disallowed-methods` (clippy.toml) refuses `Uuid::new_v4` and the
//! `rand`/`getrandom` entry points everywhere else.

use std::sync::Mutex;

use uuid::Uuid;

/// A source of random bits.
pub trait Random: Send + Sync + std::fmt::Debug {
    fn next_u64(&self) -> u64;

    /// A random (version 4) UUID drawn from this source.
    fn uuid(&self) -> Uuid {
        let high = u128::from(self.next_u64()) << 64;
        let bits = high | u128::from(self.next_u64());
        uuid::Builder::from_random_bytes(bits.to_be_bytes()).into_uuid()
    }
}

/// The operating system's random numbers (through the `uuid` crate's v4
/// generator, which reads `getrandom`): what a running broker and the CLI use.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl Random for OsRandom {
    fn next_u64(&self) -> u64 {
        #[allow(clippy::disallowed_methods)] // the one source of OS randomness
        let uuid = Uuid::new_v4();
        uuid.as_u64_pair().0
    }

    fn uuid(&self) -> Uuid {
        #[allow(clippy::disallowed_methods)] // the one source of OS randomness
        Uuid::new_v4()
    }
}

/// A deterministic stream (SplitMix64): the same seed gives the same draws.
#[derive(Debug)]
pub struct SeededRandom {
    seed: u64,
    state: Mutex<u64>,
}

/// SplitMix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

impl SeededRandom {
    pub fn new(seed: u64) -> SeededRandom {
        SeededRandom {
            seed,
            state: Mutex::new(seed),
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// An independent stream for one purpose ("member-ids", "placement"...),
    /// derived from this stream's seed and the purpose's name only.
    pub fn stream(&self, purpose: &str) -> SeededRandom {
        // FNV-1a over the name, mixed with the seed.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in purpose.bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        SeededRandom::new(mix(self.seed ^ hash))
    }
}

impl Random for SeededRandom {
    fn next_u64(&self) -> u64 {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *state = state.wrapping_add(GOLDEN_GAMMA);
        mix(*state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_draws() {
        let a = SeededRandom::new(42);
        let b = SeededRandom::new(42);
        let draws: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        assert_eq!(draws, (0..4).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_ne!(draws[0], draws[1]);
        assert_ne!(SeededRandom::new(43).next_u64(), draws[0]);
    }

    #[test]
    fn streams_for_different_purposes_are_independent() {
        let root = SeededRandom::new(7);
        let ids = root.stream("member-ids");
        let first = ids.next_u64();
        // Draws elsewhere do not move this stream.
        let other = root.stream("placement");
        other.next_u64();
        root.next_u64();
        assert_eq!(root.stream("member-ids").next_u64(), first);
        assert_ne!(root.stream("placement").next_u64(), first);
    }

    #[test]
    fn uuids_are_version_4() {
        let uuid = SeededRandom::new(1).uuid();
        assert_eq!(uuid.get_version_num(), 4);
        assert_eq!(SeededRandom::new(1).uuid(), uuid);
    }
}
