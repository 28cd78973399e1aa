//! Stable-toolchain fuzzing of the controller's CreateTopics and CreatePartitions
//! decisions, run by plain `cargo test`: the checks of the cargo-fuzz targets
//! `fuzz/fuzz_targets/create_topics.rs` and `create_partitions.rs` (shared through
//! `support/controller_checks.rs`) on seeded random inputs and on every input a
//! byte at a time shorter than a few hand-picked ones. About a second.
//!
//! `RIVULET_FUZZ_SEED=<n>` picks another seed; `RIVULET_FUZZ_RUNS=<n>` more runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/controller_checks.rs"]
mod controller_checks;

use std::collections::BTreeSet;

use controller_checks::{check_create_partitions, check_create_topics};

/// splitmix64, as in crates/protocol/tests/decoder_fuzz.rs.
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        let seed = std::env::var("RIVULET_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed_c0de_u64);
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn runs() -> usize {
    std::env::var("RIVULET_FUZZ_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3_000)
}

/// A few fixed inputs, checked at every length.
fn hand_picked() -> Vec<Vec<u8>> {
    vec![
        vec![
            0, 0, 0, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 4, 0, 0, 11, 0, 0, 0, 0, 1, 0,
        ],
        vec![2, 3, 1, 0, 1, 1, 0, 0, 3, 1, 2, 0, 4, 2, 1, 0, 0, 4, 0],
        vec![0, 1, 2, 1, 2, 0, 0, 11, 1, 1, 0, 10, 1, 1],
        vec![],
    ]
}

/// The answers a run must have seen for it to have tested anything.
fn assert_reached(seen: &BTreeSet<Option<&str>>, wanted: &[Option<&str>]) {
    for answer in wanted {
        assert!(
            seen.contains(answer),
            "no input reached {answer:?}; seen {seen:?}"
        );
    }
}

fn codes(answers: Vec<Option<&'static str>>) -> impl Iterator<Item = Option<&'static str>> {
    answers.into_iter()
}

#[test]
fn create_topics_decisions_hold_their_bounds_on_any_request() {
    let mut rng = Rng::from_env();
    let mut seen = BTreeSet::new();
    for input in hand_picked() {
        for cut in 0..=input.len() {
            seen.extend(codes(check_create_topics(&input[..cut])));
        }
    }
    for _ in 0..runs() {
        let len = (rng.next() % 96) as usize;
        seen.extend(codes(check_create_topics(&rng.bytes(len))));
    }
    assert_reached(
        &seen,
        &[
            None,
            Some("TooManyPartitions"),
            Some("InvalidPartitions"),
            Some("InvalidReplicationFactor"),
            Some("InvalidReplicaAssignment"),
            Some("InvalidTopicName"),
        ],
    );
}

#[test]
fn create_partitions_decisions_hold_their_bounds_on_any_request() {
    let mut rng = Rng::from_env();
    let mut seen = BTreeSet::new();
    for input in hand_picked() {
        for cut in 0..=input.len() {
            seen.extend(codes(check_create_partitions(&input[..cut])));
        }
    }
    for _ in 0..runs() {
        let len = (rng.next() % 96) as usize;
        seen.extend(codes(check_create_partitions(&rng.bytes(len))));
    }
    assert_reached(
        &seen,
        &[
            None,
            Some("TooManyPartitions"),
            Some("InvalidPartitions"),
            Some("InvalidReplicaAssignment"),
            Some("NoSuchTopic"),
        ],
    );
}
