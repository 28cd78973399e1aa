//! The partition machine on a fake clock, with no files: set a state, feed one
//! input, assert the exact commands.

use super::*;

pub(super) const ME: i32 = 1;
pub(super) const T0: i64 = 1_000_000;
pub(super) const LAG: i64 = 30_000;

pub(super) fn config(min_insync_replicas: i32) -> ReplicationConfig {
    ReplicationConfig {
        min_insync_replicas,
        replica_lag_time_max_ms: LAG,
    }
}

pub(super) fn metadata(
    leader: i32,
    leader_epoch: i32,
    replicas: &[i32],
    isr: &[i32],
) -> PartitionMetadata {
    PartitionMetadata {
        leader,
        leader_epoch,
        partition_epoch: leader_epoch,
        replicas: replicas.to_vec(),
        isr: isr.to_vec(),
    }
}

pub(super) fn offsets(
    log_start_offset: i64,
    log_end_offset: i64,
    high_watermark: i64,
) -> LogOffsets {
    LogOffsets {
        log_start_offset,
        log_end_offset,
        high_watermark,
    }
}

/// Broker `id` is registered with epoch `100 + id`.
pub(super) fn broker_epoch(id: i32) -> i64 {
    100 + i64::from(id)
}

/// Brokers 1, 2 and 3 registered and unfenced (none shutting down).
pub(super) fn brokers_alive() -> Input {
    Input::BrokersChanged {
        local_broker_epoch: broker_epoch(ME),
        alive: (1..=3)
            .map(|id| {
                let broker = AliveBroker {
                    broker_epoch: broker_epoch(id),
                    in_controlled_shutdown: false,
                };
                (id, broker)
            })
            .collect(),
    }
}

/// An AlterPartition ISR of `ids`, each at its registered epoch.
pub(super) fn members(ids: &[i32]) -> Vec<IsrMember> {
    ids.iter()
        .map(|&broker_id| IsrMember {
            broker_id,
            broker_epoch: broker_epoch(broker_id),
        })
        .collect()
}

/// A partition at `offsets`, with brokers 1-3 alive, that was just told
/// `metadata` at T0; its commands from that are dropped.
pub(super) fn partition(
    min_isr: i32,
    offsets: LogOffsets,
    metadata: PartitionMetadata,
) -> Partition {
    let mut p = Partition::new(TopicPartition::new("t", 0), ME, config(min_isr), offsets);
    p.handle(T0, brokers_alive());
    p.handle(T0, Input::MetadataChanged(metadata));
    p
}

/// Leader of replicas 1, 2, 3 with all of them in the ISR, at LEO = HW = 0.
pub(super) fn leader_of_three(min_isr: i32) -> Partition {
    partition(
        min_isr,
        offsets(0, 0, 0),
        metadata(ME, 0, &[1, 2, 3], &[1, 2, 3]),
    )
}

/// Follower `replica_id` fetched at `fetch_offset` with its current broker epoch.
pub(super) fn fetched(replica_id: i32, fetch_offset: i64) -> Input {
    Input::FollowerFetched {
        replica_id,
        broker_epoch: broker_epoch(replica_id),
        fetch_offset,
        log_start_offset: 0,
    }
}

pub(super) fn hw(high_watermark: i64) -> Command {
    Command::UpdateHighWatermark { high_watermark }
}

pub(super) fn answer(id: AckId, result: Result<(), AckError>) -> Command {
    Command::AnswerProduce { id, result }
}

pub(super) fn await_acks(id: AckId, required_offset: i64) -> Input {
    Input::AwaitAcks {
        id,
        required_offset,
        deadline_ms: T0 + 30_000,
    }
}

// ---- Single replica: HW follows LEO, acks=all answered at once ----

#[test]
fn becoming_leader_of_a_single_replica_moves_the_hw_to_the_leo() {
    let mut p = Partition::new(TopicPartition::new("t", 0), ME, config(1), offsets(0, 8, 3));
    let commands = p.handle(T0, Input::MetadataChanged(metadata(ME, 0, &[ME], &[ME])));
    assert_eq!(
        commands,
        vec![
            Command::BecomeLeader {
                leader_epoch: 0,
                epoch_start_offset: 8
            },
            hw(8),
            Command::WakeFetches,
        ]
    );
}

#[test]
fn an_append_moves_the_hw_with_an_isr_of_one() {
    let mut p = partition(1, offsets(0, 0, 0), metadata(ME, 0, &[ME], &[ME]));
    let commands = p.handle(T0, Input::Appended { log_end_offset: 10 });
    assert_eq!(commands, vec![hw(10), Command::WakeFetches]);
    assert_eq!(p.high_watermark(), 10);
}

#[test]
fn acks_all_with_an_isr_of_one_is_answered_as_soon_as_it_waits() {
    let mut p = partition(1, offsets(0, 0, 0), metadata(ME, 0, &[ME], &[ME]));
    p.handle(T0, Input::Appended { log_end_offset: 10 });
    let commands = p.handle(T0, await_acks(7, 10));
    assert_eq!(commands, vec![answer(7, Ok(()))]);
    assert_eq!(p.state().pending_acks, 0);
}

#[test]
fn an_append_reported_after_a_later_one_changes_nothing() {
    let mut p = partition(1, offsets(0, 0, 0), metadata(ME, 0, &[ME], &[ME]));
    p.handle(T0, Input::Appended { log_end_offset: 10 });
    assert_eq!(p.handle(T0, Input::Appended { log_end_offset: 4 }), vec![]);
    assert_eq!(p.log_end_offset(), 10);
}

// ---- Followers: the HW waits for the slowest ISR member ----

#[test]
fn with_followers_the_hw_waits_for_every_isr_member() {
    let mut p = leader_of_three(1);
    // The followers' LEOs are unknown until they fetch: the HW stays.
    assert_eq!(
        p.handle(T0, Input::Appended { log_end_offset: 10 }),
        vec![Command::WakeFetches]
    );
    assert_eq!(p.handle(T0 + 1, fetched(2, 10)), vec![]);
    assert_eq!(
        p.handle(T0 + 1, fetched(3, 6)),
        vec![hw(6), Command::WakeFetches]
    );
    assert_eq!(
        p.handle(T0 + 2, fetched(3, 10)),
        vec![hw(10), Command::WakeFetches]
    );
}

#[test]
fn acks_all_completes_exactly_when_the_hw_passes_the_batch() {
    let mut p = leader_of_three(2);
    p.handle(T0, Input::Appended { log_end_offset: 10 });
    assert_eq!(p.handle(T0, await_acks(1, 10)), vec![]);
    p.handle(T0 + 1, fetched(2, 10));
    assert_eq!(
        p.handle(T0 + 1, fetched(3, 9)),
        vec![hw(9), Command::WakeFetches],
        "one record short: still waiting"
    );
    assert_eq!(
        p.handle(T0 + 2, fetched(3, 10)),
        vec![hw(10), answer(1, Ok(())), Command::WakeFetches]
    );
}

#[test]
fn a_replica_out_of_the_isr_does_not_hold_the_hw() {
    let mut p = partition(1, offsets(0, 0, 0), metadata(ME, 0, &[1, 2], &[ME]));
    assert_eq!(
        p.handle(T0, Input::Appended { log_end_offset: 10 }),
        vec![hw(10), Command::WakeFetches]
    );
}

#[test]
fn a_caught_up_replica_about_to_join_holds_the_hw() {
    // Kafka's shouldWaitForReplicaToJoinIsr: otherwise a follower catching up
    // behind a busy leader would never reach the HW and never join.
    let mut p = partition(1, offsets(0, 10, 10), metadata(ME, 0, &[1, 2], &[ME]));
    let commands = p.handle(T0 + 1, fetched(2, 10));
    assert_eq!(
        commands,
        vec![Command::AlterIsr {
            leader_epoch: 0,
            partition_epoch: 0,
            isr: members(&[1, 2])
        }]
    );
    p.handle(T0 + 1, Input::IsrChangeFailed(IsrChangeError::Rejected));
    assert_eq!(p.state().isr, vec![ME]);
    // Caught up a moment ago, not yet in the ISR: the HW waits for it.
    assert_eq!(
        p.handle(T0 + 2, Input::Appended { log_end_offset: 20 }),
        vec![Command::WakeFetches]
    );
    assert_eq!(p.high_watermark(), 10);
}

// ---- ISR shrink and expand ----

#[test]
fn a_follower_not_caught_up_for_the_lag_time_is_proposed_to_leave() {
    let mut p = leader_of_three(1);
    p.handle(T0, Input::Appended { log_end_offset: 10 });
    p.handle(T0 + 1_000, fetched(2, 10));
    p.handle(T0 + 1_000, fetched(3, 5));
    // Replica 3 was last caught up when this leader started (T0).
    assert_eq!(p.handle(T0 + LAG, Input::Tick), vec![]);
    let commands = p.handle(T0 + LAG + 1, Input::Tick);
    assert_eq!(
        commands,
        vec![Command::AlterIsr {
            leader_epoch: 0,
            partition_epoch: 0,
            isr: members(&[1, 2])
        }]
    );
    let state = p.state();
    assert_eq!(
        state.isr,
        vec![1, 2, 3],
        "committed until the controller says so"
    );
    assert_eq!(state.pending_isr, Some(vec![1, 2]));
    assert_eq!(state.high_watermark, 5, "replica 3 still counts");
    assert_eq!(
        p.handle(T0 + LAG + 2, Input::Tick),
        vec![],
        "one proposal in flight at a time"
    );
}

#[test]
fn a_committed_shrink_lets_the_hw_and_waiting_acks_move() {
    let mut p = leader_of_three(2);
    p.handle(T0, Input::Appended { log_end_offset: 10 });
    p.handle(
        T0,
        Input::AwaitAcks {
            id: 4,
            required_offset: 10,
            deadline_ms: T0 + 2 * LAG,
        },
    );
    p.handle(T0 + 1_000, fetched(2, 10));
    p.handle(T0 + 1_000, fetched(3, 5));
    p.handle(T0 + LAG + 1, Input::Tick);
    let commands = p.handle(
        T0 + LAG + 2,
        Input::IsrChangeCommitted {
            leader_epoch: 0,
            partition_epoch: 1,
            isr: vec![1, 2],
        },
    );
    assert_eq!(
        commands,
        vec![hw(10), answer(4, Ok(())), Command::WakeFetches]
    );
    assert_eq!(p.state().isr, vec![1, 2]);
    assert_eq!(p.state().partition_epoch, 1);
}

#[test]
fn a_follower_that_reaches_the_hw_and_the_epoch_start_is_proposed_to_join() {
    // min.insync.replicas 2 with an ISR of one: the HW stays at 3, below the
    // offset where this leader's epoch started (5).
    let mut p = partition(2, offsets(0, 5, 3), metadata(ME, 0, &[1, 2], &[ME]));
    assert_eq!(p.high_watermark(), 3);
    assert_eq!(
        p.handle(T0 + 1, fetched(2, 4)),
        vec![],
        "at the HW but before the epoch start"
    );
    assert_eq!(
        p.handle(T0 + 2, fetched(2, 5)),
        vec![Command::AlterIsr {
            leader_epoch: 0,
            partition_epoch: 0,
            isr: members(&[1, 2])
        }]
    );
    // The joining replica counts for the HW at once; the ISR is still under the
    // minimum until committed, so the HW waits for that.
    assert_eq!(p.high_watermark(), 3);
    let commands = p.handle(
        T0 + 3,
        Input::IsrChangeCommitted {
            leader_epoch: 0,
            partition_epoch: 1,
            isr: vec![1, 2],
        },
    );
    assert_eq!(commands, vec![hw(5), Command::WakeFetches]);
}

#[test]
fn a_rejected_change_returns_to_the_committed_isr_and_a_retriable_one_is_resent() {
    let mut p = leader_of_three(1);
    p.handle(T0, Input::Appended { log_end_offset: 10 });
    p.handle(T0 + LAG + 1, Input::Tick);
    let proposal = Command::AlterIsr {
        leader_epoch: 0,
        partition_epoch: 0,
        isr: members(&[1]),
    };
    assert_eq!(
        p.handle(
            T0 + LAG + 2,
            Input::IsrChangeFailed(IsrChangeError::Retriable)
        ),
        vec![proposal.clone()]
    );
    assert_eq!(
        p.handle(T0 + LAG + 3, Input::IsrChangeFailed(IsrChangeError::Stale)),
        vec![]
    );
    assert_eq!(p.state().pending_isr, Some(vec![1]));
    assert_eq!(
        p.handle(
            T0 + LAG + 4,
            Input::IsrChangeFailed(IsrChangeError::Rejected)
        ),
        vec![]
    );
    assert_eq!(p.state().pending_isr, None);
    assert_eq!(p.handle(T0 + LAG + 5, Input::Tick), vec![proposal]);
}

#[test]
fn a_stale_isr_answer_is_ignored() {
    let mut p = leader_of_three(1);
    p.handle(T0 + LAG + 1, Input::Tick);
    let commands = p.handle(
        T0 + LAG + 2,
        Input::IsrChangeCommitted {
            leader_epoch: 5,
            partition_epoch: 9,
            isr: vec![1],
        },
    );
    assert_eq!(commands, vec![]);
    assert_eq!(p.state().isr, vec![1, 2, 3]);
}

// ---- min.insync.replicas ----

#[test]
fn acks_all_is_refused_when_the_isr_is_below_the_minimum() {
    let p = partition(2, offsets(0, 0, 0), metadata(ME, 3, &[1, 2, 3], &[ME]));
    match p.check_append(-1) {
        Err(ReplicationError::NotEnoughReplicas { isr, min, .. }) => {
            assert_eq!((isr, min), (1, 2))
        }
        other => panic!("expected NotEnoughReplicas, got {other:?}"),
    }
    assert_eq!(p.check_append(1).unwrap(), 3, "acks=1 appends at epoch 3");
}

#[test]
fn the_minimum_is_capped_by_the_replica_count() {
    let p = partition(3, offsets(0, 0, 0), metadata(ME, 0, &[ME], &[ME]));
    assert_eq!(p.check_append(-1).unwrap(), 0);
}

#[test]
fn the_hw_does_not_move_while_the_isr_is_below_the_minimum() {
    let mut p = partition(2, offsets(0, 0, 0), metadata(ME, 0, &[1, 2], &[ME]));
    assert_eq!(
        p.handle(T0, Input::Appended { log_end_offset: 10 }),
        vec![Command::WakeFetches]
    );
    assert_eq!(p.high_watermark(), 0);
    let commands = p.handle(T0, Input::ConfigChanged(config(1)));
    assert_eq!(commands, vec![hw(10), Command::WakeFetches]);
}

#[test]
fn a_produce_waiting_when_the_isr_falls_below_the_minimum_times_out() {
    // Kafka 4 (KAFKA-15583): under the minimum the HW stays, so the produce cannot
    // be acknowledged and ends at its deadline.
    let mut p = partition(2, offsets(0, 0, 0), metadata(ME, 0, &[1, 2], &[1, 2]));
    p.handle(T0, Input::Appended { log_end_offset: 10 });
    p.handle(T0, await_acks(9, 10));
    let shrunk = PartitionMetadata {
        partition_epoch: 1,
        ..metadata(ME, 0, &[1, 2], &[ME])
    };
    assert_eq!(
        p.handle(T0 + 1, Input::MetadataChanged(shrunk)),
        vec![Command::WakeFetches]
    );
    // The follower has everything, but the ISR is short until the controller
    // takes it back in: the HW stays.
    assert_eq!(
        p.handle(T0 + 1, fetched(2, 10)),
        vec![Command::AlterIsr {
            leader_epoch: 0,
            partition_epoch: 1,
            isr: members(&[1, 2])
        }]
    );
    assert_eq!(p.high_watermark(), 0);
    assert_eq!(
        p.handle(T0 + 30_000, Input::Tick),
        vec![answer(9, Err(AckError::RequestTimedOut))]
    );
}

#[test]
fn a_produce_is_answered_after_append_if_the_isr_recovers_before_its_deadline() {
    let mut p = partition(2, offsets(0, 0, 0), metadata(ME, 0, &[1, 2], &[ME]));
    p.handle(T0, Input::Appended { log_end_offset: 10 });
    // Appended while the ISR was enough for acks=1 only; an acks=all produce that
    // got in before the shrink waits the same way.
    p.handle(T0, await_acks(2, 10));
    p.handle(T0 + 1, fetched(2, 10));
    let commands = p.handle(
        T0 + 2,
        Input::IsrChangeCommitted {
            leader_epoch: 0,
            partition_epoch: 1,
            isr: vec![1, 2],
        },
    );
    assert_eq!(
        commands,
        vec![hw(10), answer(2, Ok(())), Command::WakeFetches]
    );
}

// ---- Deadlines, leadership, deletion ----

#[test]
fn a_produce_times_out_at_its_deadline_and_not_before() {
    let mut p = leader_of_three(1);
    p.handle(T0, Input::Appended { log_end_offset: 10 });
    p.handle(T0, await_acks(3, 10));
    assert_eq!(p.handle(T0 + 29_999, Input::Tick), vec![]);
    assert_eq!(
        p.handle(T0 + 30_000, Input::Tick),
        vec![answer(3, Err(AckError::RequestTimedOut))]
    );
    assert_eq!(p.state().pending_acks, 0);
}

#[test]
fn leadership_moving_away_fails_waiting_produces_and_starts_following() {
    let mut p = leader_of_three(1);
    p.handle(T0, Input::Appended { log_end_offset: 10 });
    p.handle(T0, await_acks(1, 10));
    p.handle(T0, await_acks(2, 10));
    let commands = p.handle(
        T0 + 1,
        Input::MetadataChanged(metadata(2, 1, &[1, 2, 3], &[2, 3])),
    );
    assert_eq!(
        commands,
        vec![
            answer(1, Err(AckError::NotLeaderOrFollower)),
            answer(2, Err(AckError::NotLeaderOrFollower)),
            Command::StartFollowing {
                leader: 2,
                leader_epoch: 1,
                fetch_offset: 10
            },
            Command::WakeFetches,
        ]
    );
    assert!(matches!(
        p.check_append(1),
        Err(ReplicationError::NotLeaderOrFollower(_))
    ));
    assert_eq!(
        p.handle(T0 + 2, await_acks(3, 10)),
        vec![answer(3, Err(AckError::NotLeaderOrFollower))]
    );
}

#[test]
fn becoming_leader_again_stops_following_and_starts_a_new_epoch() {
    let mut p = partition(1, offsets(0, 7, 7), metadata(2, 4, &[1, 2], &[1, 2]));
    let commands = p.handle(T0, Input::MetadataChanged(metadata(ME, 5, &[1, 2], &[ME])));
    assert_eq!(
        commands,
        vec![
            Command::StopFollowing,
            Command::BecomeLeader {
                leader_epoch: 5,
                epoch_start_offset: 7
            },
            Command::WakeFetches,
        ]
    );
    assert_eq!(p.check_append(-1).unwrap(), 5);
}

#[test]
fn a_deleted_partition_fails_waiting_produces() {
    let mut p = leader_of_three(1);
    p.handle(T0, Input::Appended { log_end_offset: 10 });
    p.handle(T0, await_acks(5, 10));
    assert_eq!(
        p.handle(T0, Input::Deleted),
        vec![
            answer(5, Err(AckError::UnknownTopicOrPartition)),
            Command::WakeFetches
        ]
    );
}

#[test]
fn older_and_identical_metadata_change_nothing() {
    let mut p = partition(1, offsets(0, 0, 0), metadata(ME, 3, &[ME], &[ME]));
    assert_eq!(
        p.handle(T0, Input::MetadataChanged(metadata(ME, 3, &[ME], &[ME]))),
        vec![]
    );
    let older = PartitionMetadata {
        partition_epoch: 2,
        ..metadata(2, 3, &[1, 2], &[2])
    };
    assert_eq!(p.handle(T0, Input::MetadataChanged(older)), vec![]);
    assert!(p.is_leader());
}

#[test]
fn the_leader_epoch_of_a_read_is_fenced_as_kafka_does() {
    let p = partition(1, offsets(0, 0, 0), metadata(ME, 4, &[ME], &[ME]));
    assert!(matches!(
        p.check_read(Some(3)),
        Err(ReplicationError::FencedLeaderEpoch {
            requested: 3,
            current: 4,
            ..
        })
    ));
    assert!(matches!(
        p.check_read(Some(5)),
        Err(ReplicationError::UnknownLeaderEpoch {
            requested: 5,
            current: 4,
            ..
        })
    ));
    assert_eq!(p.check_read(Some(4)).unwrap(), (0, 4));
    assert_eq!(p.check_read(None).unwrap(), (0, 4));
    let follower = partition(1, offsets(0, 0, 0), metadata(2, 4, &[1, 2], &[2]));
    assert!(matches!(
        follower.check_read(Some(4)),
        Err(ReplicationError::NotLeaderOrFollower(_))
    ));
}

// ---- Follower side ----

fn follower(log_end_offset: i64, high_watermark: i64) -> Partition {
    partition(
        1,
        offsets(0, log_end_offset, high_watermark),
        metadata(2, 3, &[1, 2], &[1, 2]),
    )
}

#[test]
fn a_follower_hw_is_the_leaders_capped_by_its_own_leo() {
    let mut p = follower(5, 0);
    let leader_fetched = |hw, start| Input::LeaderFetched {
        high_watermark: hw,
        log_start_offset: start,
    };
    assert_eq!(
        p.handle(T0, leader_fetched(10, 0)),
        vec![hw(5), Command::WakeFetches]
    );
    assert_eq!(
        p.handle(T0, Input::Appended { log_end_offset: 8 }),
        vec![Command::WakeFetches]
    );
    assert_eq!(
        p.handle(T0, leader_fetched(7, 2)),
        vec![
            hw(7),
            Command::AdvanceLogStartOffset { offset: 2 },
            Command::WakeFetches
        ]
    );
    assert_eq!(p.handle(T0, leader_fetched(7, 2)), vec![]);
}

#[test]
fn a_truncation_above_the_hw_keeps_it() {
    let mut p = follower(20, 10);
    let truncated = Input::Truncated {
        log_start_offset: 0,
        log_end_offset: 15,
    };
    assert_eq!(p.handle(T0, truncated), vec![Command::WakeFetches]);
    assert_eq!(p.log_end_offset(), 15);
    assert_eq!(p.high_watermark(), 10);
}

#[test]
fn a_truncation_below_the_hw_lowers_it() {
    let mut p = follower(20, 10);
    let truncated = Input::Truncated {
        log_start_offset: 0,
        log_end_offset: 8,
    };
    assert_eq!(p.handle(T0, truncated), vec![hw(8), Command::WakeFetches]);
    assert_eq!(p.log_end_offset(), 8);
}

#[test]
fn a_log_restarted_at_the_leaders_start_moves_every_offset_there() {
    let mut p = follower(20, 10);
    let restarted = Input::Truncated {
        log_start_offset: 50,
        log_end_offset: 50,
    };
    assert_eq!(p.handle(T0, restarted), vec![hw(50), Command::WakeFetches]);
    let state = p.state();
    assert_eq!(
        (
            state.log_start_offset,
            state.high_watermark,
            state.log_end_offset
        ),
        (50, 50, 50)
    );
}

#[test]
fn the_low_watermark_is_the_smallest_known_log_start() {
    let mut p = leader_of_three(1);
    p.handle(T0, Input::Appended { log_end_offset: 10 });
    p.handle(
        T0,
        Input::LogStartMoved {
            log_start_offset: 0,
        },
    );
    p.handle(
        T0,
        Input::FollowerFetched {
            replica_id: 2,
            broker_epoch: broker_epoch(2),
            fetch_offset: 10,
            log_start_offset: 0,
        },
    );
    p.handle(
        T0,
        Input::FollowerFetched {
            replica_id: 3,
            broker_epoch: broker_epoch(3),
            fetch_offset: 10,
            log_start_offset: 0,
        },
    );
    p.handle(
        T0,
        Input::LogStartMoved {
            log_start_offset: 4,
        },
    );
    assert_eq!(p.low_watermark(), Some(0));
    p.handle(
        T0,
        Input::FollowerFetched {
            replica_id: 2,
            broker_epoch: broker_epoch(2),
            fetch_offset: 10,
            log_start_offset: 4,
        },
    );
    p.handle(
        T0,
        Input::FollowerFetched {
            replica_id: 3,
            broker_epoch: broker_epoch(3),
            fetch_offset: 10,
            log_start_offset: 4,
        },
    );
    assert_eq!(p.low_watermark(), Some(4));
}
