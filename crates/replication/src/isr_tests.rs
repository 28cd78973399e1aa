//! The ISR rules that depend on the brokers the metadata shows (KIP-903 broker
//! epochs, fencing, controlled shutdown), the follower fetch checks, and the
//! AlterPartition answers for an expansion, on the fake clock with exact
//! commands.

use std::collections::BTreeMap;

use super::tests::*;
use super::*;

/// Only the given brokers are registered and unfenced: `(id, epoch, shutting down)`.
fn brokers(alive: &[(i32, i64, bool)]) -> Input {
    Input::BrokersChanged {
        local_broker_epoch: broker_epoch(ME),
        alive: alive
            .iter()
            .map(|&(id, broker_epoch, in_controlled_shutdown)| {
                let broker = AliveBroker {
                    broker_epoch,
                    in_controlled_shutdown,
                };
                (id, broker)
            })
            .collect::<BTreeMap<_, _>>(),
    }
}

fn fetched_with_epoch(replica_id: i32, broker_epoch: i64, fetch_offset: i64) -> Input {
    Input::FollowerFetched {
        replica_id,
        broker_epoch,
        fetch_offset,
        log_start_offset: 0,
    }
}

fn alter(partition_epoch: i32, isr: Vec<IsrMember>) -> Command {
    Command::AlterIsr {
        leader_epoch: 0,
        partition_epoch,
        isr,
    }
}

/// Leader of 1, 2, 3 with an ISR of itself, at LEO = HW = 10.
fn leader_alone(min_isr: i32) -> Partition {
    partition(
        min_isr,
        offsets(0, 10, 10),
        metadata(ME, 0, &[1, 2, 3], &[ME]),
    )
}

#[test]
fn a_fenced_or_shutting_down_follower_does_not_join_nor_hold_the_hw() {
    let mut p = leader_alone(1);
    p.handle(T0, brokers(&[(1, 101, false), (3, 103, true)]));
    // 2 is fenced, 3 shutting down: caught up, but neither is proposed...
    assert_eq!(p.handle(T0 + 1, fetched(2, 10)), vec![]);
    assert_eq!(p.handle(T0 + 1, fetched(3, 10)), vec![]);
    // ...nor waited for by the HW.
    assert_eq!(
        p.handle(T0 + 2, Input::Appended { log_end_offset: 20 }),
        vec![hw(20), Command::WakeFetches]
    );
    // 2 is unfenced: its next fetch proposes it.
    p.handle(
        T0 + 3,
        brokers(&[(1, 101, false), (2, 102, false), (3, 103, true)]),
    );
    assert_eq!(
        p.handle(T0 + 4, fetched(2, 20)),
        vec![alter(0, members(&[1, 2]))]
    );
}

#[test]
fn a_follower_becoming_ineligible_releases_the_hw_it_held() {
    let mut p = leader_alone(1);
    assert_eq!(
        p.handle(T0 + 1, fetched(2, 10)),
        vec![alter(0, members(&[1, 2]))]
    );
    p.handle(T0 + 1, Input::IsrChangeFailed(IsrChangeError::Rejected));
    // Caught up a moment ago and eligible: the HW waits for it to join.
    assert_eq!(
        p.handle(T0 + 2, Input::Appended { log_end_offset: 20 }),
        vec![Command::WakeFetches]
    );
    assert_eq!(
        p.handle(T0 + 3, brokers(&[(1, 101, false), (2, 102, true)])),
        vec![hw(20), Command::WakeFetches]
    );
}

#[test]
fn a_fetch_from_an_older_incarnation_is_refused_and_changes_nothing() {
    let mut p = leader_alone(1);
    assert!(matches!(
        p.check_follower_fetch(2, 101, Some(0)),
        Err(ReplicationError::NotLeaderOrFollower(_))
    ));
    assert_eq!(p.handle(T0 + 1, fetched_with_epoch(2, 101, 10)), vec![]);
    assert_eq!(p.follower(2).unwrap().log_end_offset, -1);
    // The current epoch, or none, passes.
    p.check_follower_fetch(2, 102, Some(0)).unwrap();
    p.check_follower_fetch(2, -1, None).unwrap();
}

#[test]
fn a_follower_fetching_without_an_epoch_joins_named_with_minus_one() {
    let mut p = leader_alone(1);
    assert_eq!(
        p.handle(T0 + 1, fetched_with_epoch(3, -1, 10)),
        vec![alter(
            0,
            vec![
                IsrMember {
                    broker_id: 1,
                    broker_epoch: 101
                },
                IsrMember {
                    broker_id: 3,
                    broker_epoch: -1
                }
            ]
        )]
    );
}

#[test]
fn a_follower_ahead_of_the_metadatas_registration_waits_for_it_to_join() {
    let mut p = leader_alone(1);
    // Re-registered with epoch 150; this leader's image still shows 102.
    assert_eq!(p.handle(T0 + 1, fetched_with_epoch(2, 150, 10)), vec![]);
    assert_eq!(p.follower(2).unwrap().broker_epoch, Some(150));
    p.handle(T0 + 2, brokers(&[(1, 101, false), (2, 150, false)]));
    assert_eq!(
        p.handle(T0 + 3, fetched_with_epoch(2, 150, 10)),
        vec![alter(
            0,
            vec![
                IsrMember {
                    broker_id: 1,
                    broker_epoch: 101
                },
                IsrMember {
                    broker_id: 2,
                    broker_epoch: 150
                }
            ]
        )]
    );
}

#[test]
fn follower_fetches_are_checked_as_kafka_does() {
    let p = partition(1, offsets(0, 0, 0), metadata(ME, 3, &[1, 2], &[1, 2]));
    assert!(matches!(
        p.check_follower_fetch(2, 102, Some(2)),
        Err(ReplicationError::FencedLeaderEpoch {
            requested: 2,
            current: 3,
            ..
        })
    ));
    assert!(matches!(
        p.check_follower_fetch(2, 102, Some(4)),
        Err(ReplicationError::UnknownLeaderEpoch {
            requested: 4,
            current: 3,
            ..
        })
    ));
    // Not a replica: UNKNOWN_LEADER_EPOCH with an epoch (a reassignment this
    // leader has not heard of yet), NOT_LEADER_OR_FOLLOWER without.
    assert!(matches!(
        p.check_follower_fetch(3, 103, Some(3)),
        Err(ReplicationError::UnknownLeaderEpoch {
            requested: 3,
            current: 3,
            ..
        })
    ));
    assert!(matches!(
        p.check_follower_fetch(3, 103, None),
        Err(ReplicationError::NotLeaderOrFollower(_))
    ));
    let follower = partition(1, offsets(0, 0, 0), metadata(2, 3, &[1, 2], &[1, 2]));
    assert!(matches!(
        follower.check_follower_fetch(2, 102, Some(3)),
        Err(ReplicationError::NotLeaderOrFollower(_))
    ));
}

#[test]
fn a_stale_answer_keeps_an_expansion_pending_until_the_metadata_settles_it() {
    let mut p = partition(1, offsets(0, 10, 10), metadata(ME, 0, &[1, 2], &[ME]));
    assert_eq!(
        p.handle(T0 + 1, fetched(2, 10)),
        vec![alter(0, members(&[1, 2]))]
    );
    assert_eq!(
        p.handle(T0 + 2, Input::IsrChangeFailed(IsrChangeError::Stale)),
        vec![]
    );
    assert_eq!(p.state().pending_isr, Some(vec![1, 2]));
    // Still pending: the joining replica holds the HW, and nothing is proposed.
    assert_eq!(
        p.handle(T0 + 3, Input::Appended { log_end_offset: 20 }),
        vec![Command::WakeFetches]
    );
    assert_eq!(
        p.handle(T0 + 4, fetched(2, 20)),
        vec![hw(20), Command::WakeFetches]
    );
    assert_eq!(p.handle(T0 + LAG + 5, Input::Tick), vec![]);
    // The controller had applied it after all; the metadata says so.
    let settled = PartitionMetadata {
        partition_epoch: 1,
        ..metadata(ME, 0, &[1, 2], &[1, 2])
    };
    assert_eq!(
        p.handle(T0 + LAG + 6, Input::MetadataChanged(settled)),
        vec![Command::WakeFetches]
    );
    let state = p.state();
    assert_eq!((state.isr, state.pending_isr), (vec![1, 2], None));
}

#[test]
fn an_answer_at_the_same_partition_epoch_commits_what_the_controller_kept() {
    // The controller changed nothing (the proposal equalled its state).
    let mut p = leader_of_three(1);
    let proposal = vec![alter(0, members(&[1]))];
    assert_eq!(p.handle(T0 + LAG + 1, Input::Tick), proposal);
    let kept = Input::IsrChangeCommitted {
        leader_epoch: 0,
        partition_epoch: 0,
        isr: vec![1, 2, 3],
    };
    assert_eq!(p.handle(T0 + LAG + 2, kept), vec![]);
    let state = p.state();
    assert_eq!((state.isr, state.pending_isr), (vec![1, 2, 3], None));
    // Committed again, so the next check proposes again.
    assert_eq!(p.handle(T0 + LAG + 3, Input::Tick), proposal);
}

#[test]
fn an_answer_with_nothing_in_flight_is_ignored() {
    let mut p = leader_of_three(1);
    let answer = Input::IsrChangeCommitted {
        leader_epoch: 0,
        partition_epoch: 1,
        isr: vec![1],
    };
    assert_eq!(p.handle(T0, answer), vec![]);
    assert_eq!(
        p.handle(T0, Input::IsrChangeFailed(IsrChangeError::Retriable)),
        vec![]
    );
    assert_eq!(p.state().isr, vec![1, 2, 3]);
}

#[test]
fn the_isr_is_checked_every_half_lag() {
    assert_eq!(config(1).isr_expiration_interval_ms(), LAG / 2);
}
