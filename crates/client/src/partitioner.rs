//! Choosing a record's partition, as Kafka's producer does (KIP-794):
//!
//! - an explicit partition wins;
//! - a key goes to `toPositive(murmur2(key)) % partitions`, bit-identical to the
//!   Java client's `Utils.murmur2` and librdkafka's `murmur2_random`, so a key lands
//!   on the same partition whichever of these clients produced it;
//! - keyless records stick to one partition until `batch.size` bytes have gone to
//!   it, then move to another partition with a leader, chosen at random.
//!
//! The randomness is a small xorshift seeded at construction, so tests can fix it.

use std::collections::HashMap;

/// Kafka's 32-bit murmur2 (seed `0x9747b28c`), as `org.apache.kafka.common.utils.Utils.murmur2`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition Kafka's default partitioner picks for `key`.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    assert!(partitions > 0, "a topic has at least one partition");
    to_positive(murmur2(key)) % partitions
}

/// Keyless records' partition per topic: sticky until `batch.size` bytes.
#[derive(Debug)]
pub struct StickyPartitioner {
    batch_size: usize,
    state: HashMap<String, Sticky>,
    rng: u64,
}

#[derive(Debug, Clone, Copy)]
struct Sticky {
    partition: i32,
    bytes: usize,
}

impl StickyPartitioner {
    pub fn new(batch_size: usize, seed: u64) -> Self {
        StickyPartitioner {
            batch_size: batch_size.max(1),
            state: HashMap::new(),
            rng: seed | 1,
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// The partition for a keyless record of `bytes` bytes. `available` lists the
    /// partitions that have a leader (all partitions are used if it is empty).
    pub fn partition(
        &mut self,
        topic: &str,
        partitions: i32,
        available: &[i32],
        bytes: usize,
    ) -> i32 {
        assert!(partitions > 0, "a topic has at least one partition");
        let current = self.state.get(topic).copied();
        let sticky = match current {
            Some(s) if s.partition < partitions && s.bytes < self.batch_size => s,
            _ => {
                let previous = current.map(|s| s.partition);
                let partition = self.pick(partitions, available, previous);
                Sticky {
                    partition,
                    bytes: 0,
                }
            }
        };
        let updated = Sticky {
            partition: sticky.partition,
            bytes: sticky.bytes + bytes,
        };
        match self.state.get_mut(topic) {
            Some(slot) => *slot = updated,
            None => {
                self.state.insert(topic.to_string(), updated);
            }
        }
        sticky.partition
    }

    fn pick(&mut self, partitions: i32, available: &[i32], previous: Option<i32>) -> i32 {
        let choices: Vec<i32> = if available.is_empty() {
            (0..partitions).collect()
        } else {
            available.to_vec()
        };
        if choices.len() == 1 {
            return choices[0];
        }
        loop {
            let candidate = choices[(self.next_random() % choices.len() as u64) as usize];
            if Some(candidate) != previous {
                return candidate;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `UtilsTest.testMurmur2` in Apache Kafka.
    #[test]
    fn murmur2_matches_kafkas_vectors() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(
                murmur2(key),
                *expected,
                "key {:?}",
                String::from_utf8_lossy(key)
            );
        }
    }

    /// Key-to-partition as Java's `BuiltInPartitioner.partitionForKey` computes it
    /// from the vectors above (`toPositive(hash) % n`), for a few partition counts.
    #[test]
    fn keys_land_on_the_java_clients_partitions() {
        // toPositive(-973932308) = 1173551340; toPositive(-790332482) = 1357151166;
        // toPositive(479470107) = 479470107.
        assert_eq!(partition_for_key(b"21", 3), 1_173_551_340 % 3);
        assert_eq!(partition_for_key(b"21", 3), 0);
        assert_eq!(partition_for_key(b"foobar", 6), 1_357_151_166 % 6);
        assert_eq!(partition_for_key(b"foobar", 6), 0);
        assert_eq!(partition_for_key(b"abc", 10), 7);
        assert_eq!(
            partition_for_key(b"a-little-bit-long-string", 100),
            (-985_981_536i32 & 0x7fff_ffff) % 100
        );
        assert_eq!(partition_for_key(b"", 7), to_positive(murmur2(b"")) % 7);
    }

    #[test]
    fn to_positive_clears_the_sign_bit_like_java() {
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-1), i32::MAX);
        assert_eq!(to_positive(5), 5);
    }

    #[test]
    fn keyless_records_stick_until_batch_size_then_move() {
        let mut sticky = StickyPartitioner::new(100, 42);
        let first = sticky.partition("t", 4, &[], 60);
        assert_eq!(
            sticky.partition("t", 4, &[], 60),
            first,
            "60 < 100 bytes: same partition"
        );
        let next = sticky.partition("t", 4, &[], 10);
        assert_ne!(next, first, "120 bytes reached batch.size: a new partition");
    }

    #[test]
    fn keyless_records_only_go_to_available_partitions() {
        let mut sticky = StickyPartitioner::new(1, 7);
        for _ in 0..50 {
            let p = sticky.partition("t", 8, &[2, 5], 10);
            assert!(p == 2 || p == 5, "{p}");
        }
    }
}
