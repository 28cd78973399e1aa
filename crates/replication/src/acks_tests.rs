//! acks=all (Kafka's `DelayedProduce` with `Partition.checkEnoughReplicasReachOffset`),
//! the cases the other partition tests leave out: the answer when the ISR shrank
//! between the append and the wait, and the deadline the shell schedules.

use super::tests::*;
use super::*;

/// Kafka's comment on checkEnoughReplicasReachOffset: "the request was already
/// appended locally and then added to the purgatory before the ISR was shrunk".
/// The HW passed the records, but the ISR is now below the minimum: the produce
/// is answered at once with NOT_ENOUGH_REPLICAS_AFTER_APPEND.
#[test]
fn a_produce_whose_isr_shrank_after_its_append_gets_not_enough_replicas_after_append() {
    let mut p = leader_of_three(3);
    assert_eq!(p.check_append(-1).unwrap(), 0);
    p.handle(T0, Input::Appended { log_end_offset: 10 });
    p.handle(T0, fetched(2, 10));
    assert_eq!(
        p.handle(T0, fetched(3, 10)),
        vec![hw(10), Command::WakeFetches]
    );
    // The controller drops replica 3 before the produce registers its wait.
    let shrunk = PartitionMetadata {
        partition_epoch: 1,
        ..metadata(ME, 0, &[1, 2, 3], &[1, 2])
    };
    p.handle(T0 + 1, Input::MetadataChanged(shrunk));
    assert_eq!(
        p.handle(T0 + 1, await_acks(4, 10)),
        vec![answer(4, Err(AckError::NotEnoughReplicasAfterAppend))]
    );
    // And a new acks=all produce is refused before it appends.
    assert!(matches!(
        p.check_append(-1),
        Err(ReplicationError::NotEnoughReplicas { isr: 2, min: 3, .. })
    ));
    assert_eq!(p.check_append(1).unwrap(), 0, "acks=1 still appends");
}

/// A replica about to join holds the HW, but under the minimum the HW stays
/// until the controller commits the expansion; then the produce is answered NONE.
#[test]
fn a_replica_joining_counts_for_the_answer_but_not_for_the_append_check() {
    let mut p = partition(2, offsets(0, 0, 0), metadata(ME, 0, &[1, 2], &[ME]));
    p.handle(T0, Input::Appended { log_end_offset: 10 });
    p.handle(T0, await_acks(1, 10));
    let commands = p.handle(T0 + 1, fetched(2, 10));
    assert_eq!(
        commands,
        vec![Command::AlterIsr {
            leader_epoch: 0,
            partition_epoch: 0,
            isr: members(&[1, 2]),
        }]
    );
    assert!(
        p.check_append(-1).is_err(),
        "the committed ISR decides appends"
    );
    assert_eq!(p.state().pending_acks, 1, "the HW waits for the commit");
    let committed = Input::IsrChangeCommitted {
        leader_epoch: 0,
        partition_epoch: 1,
        isr: vec![1, 2],
    };
    assert_eq!(
        p.handle(T0 + 2, committed),
        vec![hw(10), answer(1, Ok(())), Command::WakeFetches]
    );
}

#[test]
fn the_shell_ticks_at_the_earliest_waiting_deadline() {
    let mut p = leader_of_three(1);
    assert_eq!(p.next_ack_deadline_ms(), None);
    p.handle(T0, Input::Appended { log_end_offset: 10 });
    let wait = |id, deadline_ms| Input::AwaitAcks {
        id,
        required_offset: 10,
        deadline_ms,
    };
    p.handle(T0, wait(1, T0 + 500));
    p.handle(T0, wait(2, T0 + 200));
    assert_eq!(p.next_ack_deadline_ms(), Some(T0 + 200));
    assert_eq!(
        p.handle(T0 + 200, Input::Tick),
        vec![answer(2, Err(AckError::RequestTimedOut))]
    );
    assert_eq!(p.next_ack_deadline_ms(), Some(T0 + 500));
    p.handle(T0 + 300, fetched(2, 10));
    assert_eq!(
        p.handle(T0 + 300, fetched(3, 10)),
        vec![hw(10), answer(1, Ok(())), Command::WakeFetches]
    );
    assert_eq!(p.next_ack_deadline_ms(), None);
}
