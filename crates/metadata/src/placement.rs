//! Where a new partition's replicas go: Kafka's `StripedReplicaPlacer`
//! (`metadata/.../placement/StripedReplicaPlacer.java`), rack-aware.
//!
//! The usable brokers (registered, not in controlled shutdown; fenced ones count
//! but are marked) are grouped by rack. Racks are sorted (no rack first), and so is
//! each rack's list of unfenced and of fenced brokers; every list, and the list of
//! racks, starts at a random offset. Each partition takes its first replica (the
//! leader) from the next rack with an unfenced broker, and the others round-robin
//! over the racks, skipping the first replica's rack once, unfenced brokers before
//! fenced ones. Each partition starts one rack and one broker further on, which
//! gives the "striped" pattern; once as many partitions as there are unfenced
//! brokers are placed, racks and broker lists are shuffled.
//!
//! With three racks A, B, C of three brokers each and every random offset 0, the
//! first three partitions are `A0,B0,C0 / B1,C1,A1 / C2,A2,B2`.
//!
//! The randomness comes from a [`PlacementRandom`] passed in, so a seed replays a
//! placement; the draws are not Java's, so placements are Kafka's algorithm but
//! not bit-identical to what a Kafka controller would choose.

use std::collections::BTreeMap;

use crate::image::ClusterImage;

/// Random draws for placement.
pub trait PlacementRandom {
    /// A number in `0..bound`; `bound` is at least 1.
    fn next_int(&mut self, bound: usize) -> usize;
}

/// A deterministic [`PlacementRandom`] (SplitMix64): the same seed places alike.
#[derive(Debug, Clone)]
pub struct SeededPlacementRandom {
    state: u64,
}

impl SeededPlacementRandom {
    pub fn new(seed: u64) -> SeededPlacementRandom {
        SeededPlacementRandom { state: seed }
    }
}

/// SplitMix64's step: the draw after `state`, which advances.
pub(crate) fn split_mix(state: u64) -> u64 {
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// SplitMix64's increment.
pub(crate) const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

impl PlacementRandom for SeededPlacementRandom {
    fn next_int(&mut self, bound: usize) -> usize {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        (split_mix(self.state) % bound.max(1) as u64) as usize
    }
}

/// A broker replicas may be placed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsableBroker {
    pub id: i32,
    pub rack: Option<String>,
    pub fenced: bool,
}

/// The usable brokers as the image has them: every registered broker not in
/// controlled shutdown, fenced ones marked. (The active controller asks its
/// [`crate::broker_heartbeats::BrokerHeartbeats`] instead, as Kafka does.)
pub fn usable_brokers(image: &ClusterImage) -> Vec<UsableBroker> {
    image
        .brokers
        .values()
        .filter(|b| !b.in_controlled_shutdown)
        .map(|b| UsableBroker {
            id: b.node_id,
            rack: b.rack.clone(),
            fenced: b.fenced,
        })
        .collect()
}

/// Why no placement exists; Kafka's messages (INVALID_REPLICATION_FACTOR).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("Invalid replication factor {0}: the replication factor must be positive.")]
    NonPositive(i32),
    #[error("All brokers are currently fenced.")]
    AllFenced,
    #[error("The target replication factor of {replication_factor} cannot be reached because only {registered} broker(s) are registered.")]
    TooFewBrokers {
        replication_factor: i32,
        registered: usize,
    },
}

/// Places `num_partitions` partitions of `replication_factor` replicas each on
/// `brokers`. The caller has bounded `num_partitions`.
pub fn place(
    random: &mut dyn PlacementRandom,
    brokers: &[UsableBroker],
    num_partitions: usize,
    replication_factor: i32,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    let mut racks = RackList::new(random, brokers);
    if replication_factor <= 0 {
        return Err(PlacementError::NonPositive(replication_factor));
    }
    if racks.num_unfenced == 0 {
        return Err(PlacementError::AllFenced);
    }
    let rf = usize::try_from(replication_factor).expect("positive, checked above");
    if rf > racks.num_total {
        return Err(PlacementError::TooFewBrokers {
            replication_factor,
            registered: racks.num_total,
        });
    }
    Ok((0..num_partitions)
        .map(|_| racks.place(random, rf))
        .collect())
}

/// One rack's brokers of one kind (fenced or unfenced), iterated round-robin
/// from a moving offset; each iteration epoch hands out each broker at most once.
#[derive(Debug, Default)]
struct BrokerList {
    brokers: Vec<i32>,
    /// Brokers handed out in the current epoch.
    index: usize,
    offset: usize,
    epoch: usize,
}

impl BrokerList {
    fn initialize(&mut self, random: &mut dyn PlacementRandom) {
        if !self.brokers.is_empty() {
            self.brokers.sort_unstable();
            self.offset = random.next_int(self.brokers.len());
        }
    }

    /// The next broker of this epoch; `None` once every one was handed out.
    fn next(&mut self, epoch: usize) -> Option<i32> {
        if self.brokers.is_empty() {
            return None;
        }
        if self.epoch != epoch {
            self.epoch = epoch;
            self.index = 0;
            self.offset = (self.offset + 1) % self.brokers.len();
        }
        if self.index >= self.brokers.len() {
            return None;
        }
        let broker = self.brokers[(self.index + self.offset) % self.brokers.len()];
        self.index += 1;
        Some(broker)
    }
}

#[derive(Debug, Default)]
struct Rack {
    unfenced: BrokerList,
    fenced: BrokerList,
}

impl Rack {
    /// The next broker, unfenced ones first.
    fn next(&mut self, epoch: usize) -> Option<i32> {
        self.unfenced
            .next(epoch)
            .or_else(|| self.fenced.next(epoch))
    }
}

struct RackList {
    racks: BTreeMap<Option<String>, Rack>,
    /// The order racks are visited in: sorted at first, shuffled later.
    names: Vec<Option<String>>,
    num_total: usize,
    num_unfenced: usize,
    epoch: usize,
    offset: usize,
}

impl RackList {
    fn new(random: &mut dyn PlacementRandom, brokers: &[UsableBroker]) -> RackList {
        let mut racks: BTreeMap<Option<String>, Rack> = BTreeMap::new();
        let mut num_unfenced = 0;
        for broker in brokers {
            let rack = racks.entry(broker.rack.clone()).or_default();
            if broker.fenced {
                rack.fenced.brokers.push(broker.id);
            } else {
                num_unfenced += 1;
                rack.unfenced.brokers.push(broker.id);
            }
        }
        // Kafka initializes fenced then unfenced, rack by rack.
        for rack in racks.values_mut() {
            rack.fenced.initialize(random);
            rack.unfenced.initialize(random);
        }
        let names: Vec<Option<String>> = racks.keys().cloned().collect();
        let offset = if names.is_empty() {
            0
        } else {
            random.next_int(names.len())
        };
        RackList {
            racks,
            names,
            num_total: brokers.len(),
            num_unfenced,
            epoch: 0,
            offset,
        }
    }

    fn rack(&mut self, index: usize) -> &mut Rack {
        self.racks
            .get_mut(&self.names[index])
            .expect("every name is a rack")
    }

    /// One partition's replicas. The caller has checked that there is an
    /// unfenced broker and at least `rf` brokers, so every search ends.
    fn place(&mut self, random: &mut dyn PlacementRandom, rf: usize) -> Vec<i32> {
        // After as many partitions as unfenced brokers, shuffle so the next round
        // differs (never for a single unfenced broker: its epoch must move on).
        if self.epoch == self.num_unfenced && self.num_unfenced > 1 {
            self.shuffle(random);
            self.epoch = 0;
        }
        if self.offset == self.names.len() {
            self.offset = 0;
        }
        let epoch = self.epoch;
        let mut replicas = Vec::with_capacity(rf);
        let mut index = self.offset;
        // The leader: the next unfenced broker, rack by rack from the offset.
        let mut first_rack = loop {
            if let Some(broker) = self.rack(index).unfenced.next(epoch) {
                replicas.push(broker);
                break Some(index);
            }
            index = (index + 1) % self.names.len();
        };
        let mut index = self.offset;
        while replicas.len() < rf {
            let broker = if first_rack == Some(index) {
                first_rack = None;
                None
            } else {
                self.rack(index).next(epoch)
            };
            index = (index + 1) % self.names.len();
            if let Some(broker) = broker {
                replicas.push(broker);
            }
        }
        self.epoch += 1;
        self.offset += 1;
        replicas
    }

    /// `Collections.shuffle` of the rack order and of every broker list.
    fn shuffle(&mut self, random: &mut dyn PlacementRandom) {
        shuffle(&mut self.names, random);
        for rack in self.racks.values_mut() {
            shuffle(&mut rack.fenced.brokers, random);
            shuffle(&mut rack.unfenced.brokers, random);
        }
    }
}

/// Fisher-Yates from the back, as `java.util.Collections.shuffle`.
fn shuffle<T>(items: &mut [T], random: &mut dyn PlacementRandom) {
    for i in (1..items.len()).rev() {
        items.swap(i, random.next_int(i + 1));
    }
}

#[cfg(test)]
#[path = "placement_tests.rs"]
mod tests;
