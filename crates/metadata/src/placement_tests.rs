use std::collections::BTreeMap;

use super::*;

/// Every draw is 0: Kafka's class comment's assumption.
struct Zero;

impl PlacementRandom for Zero {
    fn next_int(&mut self, _bound: usize) -> usize {
        0
    }
}

fn broker(id: i32, rack: Option<&str>, fenced: bool) -> UsableBroker {
    UsableBroker {
        id,
        rack: rack.map(str::to_string),
        fenced,
    }
}

/// Racks A, B, C with brokers A0..A2 = 10..12, B0..B2 = 20..22, C0..C2 = 30..32.
fn nine_brokers_in_three_racks() -> Vec<UsableBroker> {
    let mut brokers = Vec::new();
    // Out of order on purpose: lists are sorted before use.
    for (rack, base) in [("C", 30), ("A", 10), ("B", 20)] {
        for i in [2, 0, 1] {
            brokers.push(broker(base + i, Some(rack), false));
        }
    }
    brokers
}

#[test]
fn the_class_comment_table() {
    let placed = place(&mut Zero, &nine_brokers_in_three_racks(), 3, 3).unwrap();
    assert_eq!(
        placed,
        vec![vec![10, 20, 30], vec![21, 31, 11], vec![32, 12, 22]],
        "A0,B0,C0 / B1,C1,A1 / C2,A2,B2"
    );
}

#[test]
fn replicas_of_a_partition_are_on_distinct_racks_while_racks_last() {
    for seed in 0..20 {
        let brokers = nine_brokers_in_three_racks();
        let placed = place(&mut SeededPlacementRandom::new(seed), &brokers, 30, 3).unwrap();
        for replicas in &placed {
            let mut racks: Vec<i32> = replicas.iter().map(|b| b / 10).collect();
            racks.sort_unstable();
            assert_eq!(racks, vec![1, 2, 3], "seed {seed}: {replicas:?}");
        }
    }
}

#[test]
fn leaders_spread_evenly_over_three_brokers_and_six_partitions() {
    let brokers: Vec<UsableBroker> = (1..=3).map(|id| broker(id, None, false)).collect();
    let mut rngs: Vec<Box<dyn PlacementRandom>> = vec![Box::new(Zero)];
    for seed in 0..50 {
        rngs.push(Box::new(SeededPlacementRandom::new(seed)));
    }
    for mut random in rngs {
        let placed = place(random.as_mut(), &brokers, 6, 3).unwrap();
        let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
        for replicas in &placed {
            let mut sorted = replicas.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, vec![1, 2, 3], "three distinct replicas");
            *leaders.entry(replicas[0]).or_default() += 1;
        }
        assert_eq!(leaders, BTreeMap::from([(1, 2), (2, 2), (3, 2)]));
    }
    // With every draw 0, exactly this (the shuffle after three partitions
    // reorders the list to 2, 3, 1).
    assert_eq!(
        place(&mut Zero, &brokers, 6, 3).unwrap(),
        vec![
            vec![1, 2, 3],
            vec![2, 3, 1],
            vec![3, 1, 2],
            vec![2, 3, 1],
            vec![3, 1, 2],
            vec![1, 2, 3]
        ]
    );
}

#[test]
fn a_fenced_broker_never_leads_and_is_used_last() {
    let brokers = vec![
        broker(1, None, true),
        broker(2, None, false),
        broker(3, None, false),
    ];
    for seed in 0..20 {
        let placed = place(&mut SeededPlacementRandom::new(seed), &brokers, 10, 2).unwrap();
        for replicas in &placed {
            assert_ne!(
                replicas[0], 1,
                "seed {seed}: a fenced leader in {replicas:?}"
            );
            assert!(!replicas.contains(&1), "two unfenced brokers suffice");
        }
        let placed = place(&mut SeededPlacementRandom::new(seed), &brokers, 10, 3).unwrap();
        for replicas in &placed {
            assert_eq!(replicas[2], 1, "the fenced broker comes last");
        }
    }
}

#[test]
fn kafkas_errors() {
    let one = vec![broker(1, None, false), broker(2, None, true)];
    assert_eq!(
        place(&mut Zero, &one, 1, 3).unwrap_err().to_string(),
        "The target replication factor of 3 cannot be reached because only 2 broker(s) are registered."
    );
    assert_eq!(
        place(&mut Zero, &one, 1, 0).unwrap_err().to_string(),
        "Invalid replication factor 0: the replication factor must be positive."
    );
    let fenced = vec![broker(1, None, true)];
    assert_eq!(
        place(&mut Zero, &fenced, 1, 1).unwrap_err().to_string(),
        "All brokers are currently fenced."
    );
    // Kafka checks "all fenced" before "too few".
    assert_eq!(
        place(&mut Zero, &fenced, 1, 2).unwrap_err(),
        PlacementError::AllFenced
    );
    assert_eq!(
        place(&mut Zero, &[], 1, 1).unwrap_err(),
        PlacementError::AllFenced
    );
}

#[test]
fn a_single_broker_takes_every_partition() {
    let one = vec![broker(7, None, false)];
    assert_eq!(
        place(&mut SeededPlacementRandom::new(3), &one, 4, 1).unwrap(),
        vec![vec![7]; 4]
    );
}
