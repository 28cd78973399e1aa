//! The follower fetcher's decisions, command by command: where a partition
//! starts, the truncation table, out-of-range recovery, errors and back-off,
//! the OffsetForLeaderEpoch fallback, and which fetcher follows what.

use std::collections::BTreeMap;

use bytes::Bytes;
use protocol::{ErrorCode, TopicPartition};
use uuid::Uuid;

use super::*;
use crate::fetcher_manager::{fetcher_id, FetcherKey, FetcherManager};

const T0: i64 = 1_000_000;
const ME: i32 = 2;
const LEADER: i32 = 1;
const BROKER_EPOCH: i64 = 77;

/// A follower's logs: each with its offsets and leader epoch entries
/// `(epoch, start offset)`.
#[derive(Default)]
struct Logs(BTreeMap<TopicPartition, (LocalLog, Vec<(i32, i64)>)>);

impl Logs {
    fn with(mut self, tp: &TopicPartition, leo: i64, hw: i64, epochs: &[(i32, i64)]) -> Logs {
        self.set(tp, 0, leo, hw, epochs);
        self
    }

    fn set(&mut self, tp: &TopicPartition, start: i64, leo: i64, hw: i64, epochs: &[(i32, i64)]) {
        let log = LocalLog {
            log_start_offset: start,
            log_end_offset: leo,
            high_watermark: hw,
            latest_epoch: epochs.last().map(|(epoch, _)| *epoch),
        };
        self.0.insert(tp.clone(), (log, epochs.to_vec()));
    }

    /// What `Log::truncate_to` leaves.
    fn truncate(&mut self, tp: &TopicPartition, offset: i64) {
        let (log, epochs) = self.0.get(tp).cloned().unwrap();
        let epochs: Vec<(i32, i64)> = epochs.into_iter().filter(|(_, s)| *s < offset).collect();
        let leo = log.log_end_offset.min(offset);
        self.set(
            tp,
            log.log_start_offset,
            leo,
            log.high_watermark.min(leo),
            &epochs,
        );
    }
}

impl FollowerLogs for Logs {
    fn local_log(&self, tp: &TopicPartition) -> Option<LocalLog> {
        self.0.get(tp).map(|(log, _)| *log)
    }

    /// Kafka's `LeaderEpochFileCache.endOffsetFor`, as the storage cache has it.
    fn end_offset_for_epoch(&self, tp: &TopicPartition, epoch: i32) -> Option<EpochEndOffset> {
        let (log, epochs) = self.0.get(tp)?;
        let latest = epochs.last()?;
        if epoch < 0 || epoch > latest.0 {
            return None;
        }
        if epoch == latest.0 {
            return Some(end(epoch, log.log_end_offset));
        }
        let after = epochs.partition_point(|(e, _)| *e <= epoch);
        let found = after.checked_sub(1).map_or(epoch, |i| epochs[i].0);
        Some(end(found, epochs[after].1))
    }
}

fn end(leader_epoch: i32, end_offset: i64) -> EpochEndOffset {
    EpochEndOffset {
        leader_epoch,
        end_offset,
    }
}

fn tp(partition: i32) -> TopicPartition {
    TopicPartition::new("orders", partition)
}

fn topic_id() -> Uuid {
    Uuid::from_u128(0x0123)
}

fn initial(leader_epoch: i32) -> InitialFetchState {
    InitialFetchState {
        topic_id: topic_id(),
        leader: LEADER,
        current_leader_epoch: leader_epoch,
    }
}

fn config() -> FetcherConfig {
    FetcherConfig::new(ME)
}

fn fetcher_with(config: FetcherConfig, logs: &Logs, partitions: &[(i32, i32)]) -> Fetcher {
    let mut fetcher = Fetcher::new(LEADER, config, BROKER_EPOCH);
    let added = partitions
        .iter()
        .map(|(p, epoch)| (tp(*p), initial(*epoch)))
        .collect();
    assert_eq!(fetcher.add_partitions(added, logs), vec![]);
    fetcher
}

fn fetch_partition(partition: i32, fetch_offset: i64, epoch: i32, last: i32) -> FetchPartition {
    FetchPartition {
        topic_partition: tp(partition),
        topic_id: topic_id(),
        fetch_offset,
        log_start_offset: 0,
        partition_max_bytes: 1024 * 1024,
        current_leader_epoch: epoch,
        last_fetched_epoch: last,
    }
}

fn fetch(partitions: Vec<FetchPartition>) -> FetcherCommand {
    FetcherCommand::SendFetch(FetchRequest {
        replica_id: ME,
        replica_epoch: BROKER_EPOCH,
        max_wait_ms: 500,
        min_bytes: 1,
        max_bytes: 10 * 1024 * 1024,
        partitions,
    })
}

fn answer(partition: i32, error: ErrorCode) -> FetchedPartition {
    FetchedPartition {
        topic_partition: tp(partition),
        error,
        high_watermark: -1,
        log_start_offset: -1,
        diverging_epoch: None,
        records: Bytes::new(),
    }
}

fn records(partition: i32, hw: i64, bytes: &'static [u8]) -> FetchedPartition {
    FetchedPartition {
        high_watermark: hw,
        log_start_offset: 0,
        records: Bytes::from_static(bytes),
        ..answer(partition, ErrorCode::None)
    }
}

fn diverging(partition: i32, epoch: i32, end_offset: i64) -> FetchedPartition {
    FetchedPartition {
        high_watermark: 0,
        log_start_offset: 0,
        diverging_epoch: Some(end(epoch, end_offset)),
        ..answer(partition, ErrorCode::None)
    }
}

fn truncate(partition: i32, offset: i64) -> FetcherCommand {
    FetcherCommand::Truncate {
        topic_partition: tp(partition),
        offset,
    }
}

// ---- Where a partition starts ----

#[test]
fn a_log_with_epochs_fetches_from_its_log_end_naming_its_last_epoch() {
    let logs = Logs::default().with(&tp(0), 20, 10, &[(1, 0), (3, 12)]);
    let mut f = fetcher_with(config(), &logs, &[(0, 5)]);
    assert_eq!(
        f.poll(T0, &logs),
        vec![fetch(vec![fetch_partition(0, 20, 5, 3)])]
    );
    assert!(f.has_request_in_flight());
    assert_eq!(f.poll(T0, &logs), vec![], "one request in flight at a time");
    assert_eq!(f.next_poll_ms(T0), None);
}

#[test]
fn a_log_without_epochs_truncates_to_its_hw_then_fetches_from_there() {
    let mut logs = Logs::default().with(&tp(0), 20, 10, &[]);
    let mut f = fetcher_with(config(), &logs, &[(0, 5)]);
    assert_eq!(f.poll(T0, &logs), vec![truncate(0, 10)]);
    assert_eq!(
        f.poll(T0, &logs),
        vec![],
        "nothing while the truncation runs"
    );
    logs.truncate(&tp(0), 10);
    assert_eq!(f.on_local_write(T0, &tp(0), Ok(()), &logs), vec![]);
    assert_eq!(
        f.poll(T0, &logs),
        vec![fetch(vec![fetch_partition(0, 10, 5, -1)])]
    );
}

#[test]
fn a_partition_added_again_at_the_same_epoch_keeps_its_state() {
    let mut logs = Logs::default().with(&tp(0), 20, 10, &[(3, 0)]);
    let mut f = fetcher_with(config(), &logs, &[(0, 5)]);
    logs.set(&tp(0), 0, 30, 10, &[(3, 0)]);
    assert_eq!(f.add_partitions(vec![(tp(0), initial(5))], &logs), vec![]);
    assert_eq!(f.partition(&tp(0)).unwrap().fetch_offset, 20);
    assert_eq!(f.add_partitions(vec![(tp(0), initial(6))], &logs), vec![]);
    assert_eq!(f.partition(&tp(0)).unwrap().fetch_offset, 30);
}

#[test]
fn a_partition_whose_log_is_gone_fails_at_once() {
    let logs = Logs::default();
    let mut f = Fetcher::new(LEADER, config(), BROKER_EPOCH);
    assert_eq!(
        f.add_partitions(vec![(tp(0), initial(5))], &logs),
        vec![FetcherCommand::PartitionFailed {
            topic_partition: tp(0)
        }]
    );
    assert!(f.is_empty());
}

// ---- Records ----

#[test]
fn records_are_appended_at_the_fetch_offset_and_the_next_fetch_starts_after_them() {
    let mut logs = Logs::default()
        .with(&tp(0), 20, 10, &[(3, 0)])
        .with(&tp(1), 7, 7, &[(3, 0)]);
    let mut f = fetcher_with(config(), &logs, &[(0, 5), (1, 5)]);
    f.poll(T0, &logs);
    let commands = f.on_fetch_response(
        T0,
        Ok(vec![records(0, 40, b"batch"), records(1, 7, b"")]),
        &logs,
    );
    assert_eq!(
        commands,
        vec![
            FetcherCommand::Append {
                topic_partition: tp(0),
                fetch_offset: 20,
                leader_epoch: 5,
                records: Bytes::from_static(b"batch"),
                high_watermark: 40,
                log_start_offset: 0,
            },
            FetcherCommand::Append {
                topic_partition: tp(1),
                fetch_offset: 7,
                leader_epoch: 5,
                records: Bytes::new(),
                high_watermark: 7,
                log_start_offset: 0,
            },
        ]
    );
    assert_eq!(f.poll(T0, &logs), vec![], "both wait for their appends");
    logs.set(&tp(0), 0, 25, 25, &[(3, 0), (5, 20)]);
    f.on_local_write(T0, &tp(0), Ok(()), &logs);
    f.on_local_write(T0, &tp(1), Ok(()), &logs);
    let p0 = f.partition(&tp(0)).unwrap();
    assert_eq!(
        (p0.fetch_offset, p0.lag, p0.last_fetched_epoch),
        (25, Some(15), Some(5))
    );
    // Each goes to the back of the round robin when its state is updated: 0, then 1.
    assert_eq!(
        f.poll(T0, &logs),
        vec![fetch(vec![
            fetch_partition(0, 25, 5, 5),
            fetch_partition(1, 7, 5, 3)
        ])]
    );
    f.on_fetch_response(
        T0,
        Ok(vec![records(0, 40, b"more"), records(1, 7, b"")]),
        &logs,
    );
    logs.set(&tp(0), 0, 30, 25, &[(3, 0), (5, 20)]);
    f.on_local_write(T0, &tp(0), Ok(()), &logs);
    f.on_local_write(T0, &tp(1), Ok(()), &logs);
    // Partition 1 got nothing and had a lag already: it keeps its place.
    assert_eq!(
        f.poll(T0, &logs),
        vec![fetch(vec![
            fetch_partition(1, 7, 5, 3),
            fetch_partition(0, 30, 5, 5)
        ])]
    );
}

#[test]
fn invalid_records_back_off_and_a_storage_failure_drops_the_partition() {
    let logs = Logs::default()
        .with(&tp(0), 20, 10, &[(3, 0)])
        .with(&tp(1), 20, 10, &[(3, 0)]);
    let mut f = fetcher_with(config(), &logs, &[(0, 5), (1, 5)]);
    f.poll(T0, &logs);
    f.on_fetch_response(
        T0,
        Ok(vec![records(0, 40, b"x"), records(1, 40, b"y")]),
        &logs,
    );
    let invalid = Err(LocalWriteError::InvalidRecords);
    assert_eq!(f.on_local_write(T0, &tp(0), invalid, &logs), vec![]);
    assert_eq!(
        f.on_local_write(T0, &tp(1), Err(LocalWriteError::Storage), &logs),
        vec![FetcherCommand::PartitionFailed {
            topic_partition: tp(1)
        }]
    );
    assert_eq!(
        f.partition(&tp(0)).unwrap().delayed_until_ms,
        Some(T0 + 1000)
    );
    assert!(f.partition(&tp(1)).is_none());
}

// ---- Truncation ----

#[test]
fn the_truncation_table_is_kafkas() {
    // The leader's epoch ends before ours: the smaller end.
    let same = truncation_offset(end(3, 15), Some(end(3, 18)), 20, 20);
    assert_eq!(
        same,
        OffsetTruncationState {
            offset: 15,
            truncation_completed: true
        }
    );
    // Ours ends first: ours, capped by the log end.
    let ours = truncation_offset(end(3, 15), Some(end(3, 12)), 20, 20);
    assert_eq!(ours.offset, 12);
    // We never had the leader's epoch: the end of our largest earlier one, and again.
    let unknown = truncation_offset(end(4, 15), Some(end(2, 8)), 20, 20);
    assert_eq!(
        unknown,
        OffsetTruncationState {
            offset: 8,
            truncation_completed: false
        }
    );
    // All our epochs are later: the leader's offset.
    let later = truncation_offset(end(1, 5), None, 20, 20);
    assert_eq!(
        later,
        OffsetTruncationState {
            offset: 5,
            truncation_completed: true
        }
    );
    // The leader cannot place it: the fetch offset (the HW while truncating).
    let undefined = truncation_offset(end(-1, -1), None, 10, 20);
    assert_eq!(
        undefined,
        OffsetTruncationState {
            offset: 10,
            truncation_completed: true
        }
    );
    // An answer without an epoch (an old leader): its offset within our log.
    let no_epoch = truncation_offset(end(-1, 30), None, 20, 20);
    assert_eq!(no_epoch.offset, 20);
}

/// KIP-320's first example: the follower wrote in epoch 2 past where the
/// leader's epoch 2 ended, and a later epoch it never heard of.
#[test]
fn a_diverging_epoch_truncates_then_fetches_from_the_new_log_end() {
    let mut logs = Logs::default().with(&tp(0), 20, 10, &[(1, 0), (2, 12)]);
    let mut f = fetcher_with(config(), &logs, &[(0, 5)]);
    f.poll(T0, &logs);
    let commands = f.on_fetch_response(T0, Ok(vec![diverging(0, 2, 15)]), &logs);
    assert_eq!(commands, vec![truncate(0, 15)]);
    logs.truncate(&tp(0), 15);
    f.on_local_write(T0, &tp(0), Ok(()), &logs);
    assert_eq!(
        f.poll(T0, &logs),
        vec![fetch(vec![fetch_partition(0, 15, 5, 2)])]
    );
}

/// The follower's latest epoch 4 is unknown to the leader, whose history goes
/// 1 -> 3: the first answer names epoch 3, which the follower never had, so it
/// goes back to the end of its epoch 2 and asks again; the second answer settles it.
#[test]
fn an_epoch_unknown_here_takes_two_rounds() {
    let mut logs = Logs::default().with(&tp(0), 30, 10, &[(1, 0), (2, 12), (4, 20)]);
    let mut f = fetcher_with(config(), &logs, &[(0, 5)]);
    f.poll(T0, &logs);
    let first = f.on_fetch_response(T0, Ok(vec![diverging(0, 3, 25)]), &logs);
    assert_eq!(first, vec![truncate(0, 20)]);
    logs.truncate(&tp(0), 20);
    f.on_local_write(T0, &tp(0), Ok(()), &logs);
    assert_eq!(
        f.poll(T0, &logs),
        vec![fetch(vec![fetch_partition(0, 20, 5, 2)])]
    );
    let second = f.on_fetch_response(T0, Ok(vec![diverging(0, 1, 14)]), &logs);
    assert_eq!(second, vec![truncate(0, 12)]);
    logs.truncate(&tp(0), 12);
    f.on_local_write(T0, &tp(0), Ok(()), &logs);
    assert_eq!(
        f.poll(T0, &logs),
        vec![fetch(vec![fetch_partition(0, 12, 5, 1)])]
    );
}

#[test]
fn without_truncation_on_fetch_a_follower_asks_offset_for_leader_epoch_first() {
    let config = FetcherConfig {
        truncation_on_fetch: false,
        ..config()
    };
    let mut logs = Logs::default().with(&tp(0), 30, 10, &[(1, 0), (2, 12), (4, 20)]);
    let mut f = fetcher_with(config, &logs, &[(0, 5)]);
    assert_eq!(f.partition(&tp(0)).unwrap().state, ReplicaState::Truncating);
    let ask = |epoch| {
        vec![FetcherCommand::SendOffsetsForLeaderEpoch(vec![
            EpochRequest {
                topic_partition: tp(0),
                current_leader_epoch: 5,
                leader_epoch: epoch,
            },
        ])]
    };
    assert_eq!(f.poll(T0, &logs), ask(4));
    let answer = |epoch, end_offset| {
        Ok(vec![EpochAnswer {
            topic_partition: tp(0),
            error: ErrorCode::None,
            end: end(epoch, end_offset),
        }])
    };
    // Epoch 3 is unknown here: back to the end of epoch 2, still truncating.
    assert_eq!(
        f.on_epochs_response(T0, answer(3, 25), &logs),
        vec![truncate(0, 20)]
    );
    logs.truncate(&tp(0), 20);
    f.on_local_write(T0, &tp(0), Ok(()), &logs);
    assert_eq!(f.partition(&tp(0)).unwrap().state, ReplicaState::Truncating);
    assert_eq!(f.poll(T0, &logs), ask(2));
    assert_eq!(
        f.on_epochs_response(T0, answer(2, 16), &logs),
        vec![truncate(0, 16)]
    );
    logs.truncate(&tp(0), 16);
    f.on_local_write(T0, &tp(0), Ok(()), &logs);
    // Fetch requests name no last fetched epoch without truncation on fetch.
    assert_eq!(
        f.poll(T0, &logs),
        vec![fetch(vec![fetch_partition(0, 16, 5, -1)])]
    );
}

#[test]
fn offset_for_leader_epoch_errors_back_off_or_fence() {
    let config = FetcherConfig {
        truncation_on_fetch: false,
        ..config()
    };
    let logs = Logs::default()
        .with(&tp(0), 30, 10, &[(4, 20)])
        .with(&tp(1), 30, 10, &[(4, 20)]);
    let mut f = fetcher_with(config, &logs, &[(0, 5), (1, 5)]);
    f.poll(T0, &logs);
    let answers = vec![
        EpochAnswer {
            topic_partition: tp(0),
            error: ErrorCode::NotLeaderOrFollower,
            end: end(-1, -1),
        },
        EpochAnswer {
            topic_partition: tp(1),
            error: ErrorCode::FencedLeaderEpoch,
            end: end(-1, -1),
        },
    ];
    assert_eq!(
        f.on_epochs_response(T0, Ok(answers), &logs),
        vec![FetcherCommand::PartitionFailed {
            topic_partition: tp(1)
        }]
    );
    assert_eq!(
        f.partition(&tp(0)).unwrap().delayed_until_ms,
        Some(T0 + 1000)
    );
    assert_eq!(f.poll(T0 + 999, &logs), vec![]);
    assert_eq!(f.poll(T0 + 1000, &logs).len(), 1);
    assert_eq!(
        f.on_epochs_response(T0 + 1000, Err(RequestFailed), &logs),
        vec![]
    );
    assert_eq!(f.next_poll_ms(T0 + 1000), Some(T0 + 2000));
}

// ---- OFFSET_OUT_OF_RANGE ----

fn out_of_range_fetcher(leo: i64) -> (Fetcher, Logs) {
    let logs = Logs::default().with(&tp(0), leo, leo, &[(3, 0)]);
    let mut f = fetcher_with(config(), &logs, &[(0, 5)]);
    f.poll(T0, &logs);
    let commands = f.on_fetch_response(T0, Ok(vec![answer(0, ErrorCode::OffsetOutOfRange)]), &logs);
    assert_eq!(commands, vec![list_offsets(LeaderOffset::Latest)]);
    assert_eq!(f.poll(T0, &logs), vec![], "not fetched while asking");
    (f, logs)
}

fn list_offsets(which: LeaderOffset) -> FetcherCommand {
    FetcherCommand::SendListOffsets {
        topic_partition: tp(0),
        current_leader_epoch: 5,
        which,
    }
}

#[test]
fn a_leader_with_a_shorter_log_is_followed_down() {
    let (mut f, mut logs) = out_of_range_fetcher(30);
    assert_eq!(
        f.on_leader_offset(T0, &tp(0), 5, Ok(25), &logs),
        vec![truncate(0, 25)]
    );
    logs.truncate(&tp(0), 25);
    f.on_local_write(T0, &tp(0), Ok(()), &logs);
    assert_eq!(
        f.poll(T0, &logs),
        vec![fetch(vec![fetch_partition(0, 25, 5, 3)])]
    );
}

#[test]
fn a_log_below_the_leaders_log_start_restarts_there() {
    let (mut f, mut logs) = out_of_range_fetcher(30);
    assert_eq!(
        f.on_leader_offset(T0, &tp(0), 5, Ok(500), &logs),
        vec![list_offsets(LeaderOffset::Earliest)]
    );
    assert_eq!(
        f.on_leader_offset(T0, &tp(0), 5, Ok(100), &logs),
        vec![FetcherCommand::TruncateFullyAndStartAt {
            topic_partition: tp(0),
            offset: 100
        }]
    );
    logs.set(&tp(0), 100, 100, 100, &[]);
    f.on_local_write(T0, &tp(0), Ok(()), &logs);
    let state = f.partition(&tp(0)).unwrap();
    assert_eq!((state.fetch_offset, state.lag), (100, Some(400)));
    let mut expected = fetch_partition(0, 100, 5, -1);
    expected.log_start_offset = 100;
    assert_eq!(f.poll(T0, &logs), vec![fetch(vec![expected])]);
}

#[test]
fn a_log_within_the_leaders_fetches_again_from_its_end() {
    let (mut f, logs) = out_of_range_fetcher(30);
    f.on_leader_offset(T0, &tp(0), 5, Ok(500), &logs);
    assert_eq!(f.on_leader_offset(T0, &tp(0), 5, Ok(10), &logs), vec![]);
    assert_eq!(
        f.poll(T0, &logs),
        vec![fetch(vec![fetch_partition(0, 30, 5, 3)])]
    );
}

#[test]
fn a_list_offsets_answer_to_an_older_epoch_is_dropped() {
    let (mut f, logs) = out_of_range_fetcher(30);
    // Metadata moves the partition to epoch 6, whose fetch is out of range too.
    f.add_partitions(vec![(tp(0), initial(6))], &logs);
    assert_eq!(
        f.poll(T0, &logs),
        vec![fetch(vec![fetch_partition(0, 30, 6, 3)])]
    );
    let out_of_range = Ok(vec![answer(0, ErrorCode::OffsetOutOfRange)]);
    f.on_fetch_response(T0, out_of_range, &logs);
    // The answer to epoch 5's question arrives late: dropped, epoch 6's still owed.
    assert_eq!(f.on_leader_offset(T0, &tp(0), 5, Ok(25), &logs), vec![]);
    assert!(f.partition(&tp(0)).unwrap().is_waiting());
    assert_eq!(
        f.on_leader_offset(T0, &tp(0), 6, Ok(25), &logs),
        vec![truncate(0, 25)]
    );
}

#[test]
fn list_offsets_errors_back_off_or_fence() {
    let (mut f, logs) = out_of_range_fetcher(30);
    let not_leader = Err(ErrorCode::NotLeaderOrFollower);
    assert_eq!(f.on_leader_offset(T0, &tp(0), 5, not_leader, &logs), vec![]);
    assert_eq!(
        f.partition(&tp(0)).unwrap().delayed_until_ms,
        Some(T0 + 1000)
    );
    let (mut f, logs) = out_of_range_fetcher(30);
    let fenced = Err(ErrorCode::FencedLeaderEpoch);
    assert_eq!(
        f.on_leader_offset(T0, &tp(0), 5, fenced, &logs),
        vec![FetcherCommand::PartitionFailed {
            topic_partition: tp(0)
        }]
    );
}

// ---- Errors ----

#[test]
fn retriable_partition_errors_back_off_for_replica_fetch_backoff_ms() {
    let logs = Logs::default()
        .with(&tp(0), 20, 10, &[(3, 0)])
        .with(&tp(1), 20, 10, &[(3, 0)])
        .with(&tp(2), 20, 10, &[(3, 0)])
        .with(&tp(3), 20, 10, &[(3, 0)]);
    let mut f = fetcher_with(config(), &logs, &[(0, 5), (1, 5), (2, 5), (3, 5)]);
    f.poll(T0, &logs);
    let answers = vec![
        answer(0, ErrorCode::NotLeaderOrFollower),
        answer(1, ErrorCode::UnknownLeaderEpoch),
        answer(2, ErrorCode::UnknownTopicOrPartition),
        records(3, 20, b""),
    ];
    let commands = f.on_fetch_response(T0, Ok(answers), &logs);
    assert_eq!(commands.len(), 1, "only partition 3 appends: {commands:?}");
    f.on_local_write(T0, &tp(3), Ok(()), &logs);
    for p in 0..3 {
        assert_eq!(
            f.partition(&tp(p)).unwrap().delayed_until_ms,
            Some(T0 + 1000)
        );
    }
    assert_eq!(
        f.poll(T0 + 999, &logs),
        vec![fetch(vec![fetch_partition(3, 20, 5, 3)])]
    );
    f.on_fetch_response(T0 + 999, Err(RequestFailed), &logs);
    // Partition 3 backs off from the failed request; 0-2 keep their first back-off.
    assert_eq!(f.next_poll_ms(T0 + 999), Some(T0 + 1000));
    assert_eq!(
        f.poll(T0 + 1000, &logs),
        vec![fetch(vec![
            fetch_partition(0, 20, 5, 3),
            fetch_partition(1, 20, 5, 3),
            fetch_partition(2, 20, 5, 3),
        ])]
    );
}

#[test]
fn fenced_at_our_epoch_waits_for_metadata_but_fenced_after_a_newer_one_retries() {
    let logs = Logs::default()
        .with(&tp(0), 20, 10, &[(3, 0)])
        .with(&tp(1), 20, 10, &[(3, 0)]);
    let mut f = fetcher_with(config(), &logs, &[(0, 5), (1, 5)]);
    f.poll(T0, &logs);
    // Metadata moved partition 1 to epoch 6 while the fetch was out.
    f.add_partitions(vec![(tp(1), initial(6))], &logs);
    let answers = vec![
        answer(0, ErrorCode::FencedLeaderEpoch),
        answer(1, ErrorCode::FencedLeaderEpoch),
    ];
    assert_eq!(
        f.on_fetch_response(T0, Ok(answers), &logs),
        vec![FetcherCommand::PartitionFailed {
            topic_partition: tp(0)
        }]
    );
    assert!(f.partition(&tp(0)).is_none());
    assert_eq!(
        f.partition(&tp(1)).unwrap().delayed_until_ms,
        Some(T0 + 1000)
    );
}

#[test]
fn answers_for_partitions_removed_or_moved_meanwhile_are_ignored() {
    let mut logs = Logs::default()
        .with(&tp(0), 20, 10, &[(3, 0)])
        .with(&tp(1), 20, 10, &[(3, 0)]);
    let mut f = fetcher_with(config(), &logs, &[(0, 5), (1, 5)]);
    f.poll(T0, &logs);
    f.remove_partitions(&[tp(0)]);
    // Partition 1 re-added at a new epoch after its log grew: a new fetch offset.
    logs.set(&tp(1), 0, 22, 10, &[(3, 0)]);
    f.add_partitions(vec![(tp(1), initial(6))], &logs);
    let answers = vec![records(0, 40, b"x"), records(1, 40, b"y")];
    assert_eq!(f.on_fetch_response(T0, Ok(answers), &logs), vec![]);
    assert_eq!(f.on_local_write(T0, &tp(0), Ok(()), &logs), vec![]);
}

// ---- The manager ----

#[test]
fn fetcher_ids_are_kafkas() {
    // Java: "orders".hashCode() = -1008770331; 31 * it overflows.
    let ids: Vec<u32> = (0..6).map(|p| fetcher_id(&tp(p), 3)).collect();
    assert_eq!(ids, vec![2, 1, 0, 2, 1, 0]);
    let long = TopicPartition::new("a-very-long-topic-name-that-overflows", 0);
    assert_eq!(fetcher_id(&long, 3), 0);
    assert_eq!(fetcher_id(&tp(4), 1), 0);
}

#[test]
fn partitions_spread_over_fetchers_and_move_with_their_leader() {
    let logs = Logs::default()
        .with(&tp(0), 20, 10, &[(3, 0)])
        .with(&tp(1), 20, 10, &[(3, 0)])
        .with(&tp(2), 20, 10, &[(3, 0)]);
    let config = FetcherConfig {
        num_replica_fetchers: 2,
        ..config()
    };
    let mut m = FetcherManager::new(config, BROKER_EPOCH);
    let added: Vec<(TopicPartition, InitialFetchState)> =
        (0..3).map(|p| (tp(p), initial(5))).collect();
    assert_eq!(m.add_partitions(added, &logs), vec![]);
    let key = |leader, p| FetcherKey {
        leader,
        fetcher_id: fetcher_id(&tp(p), 2),
    };
    assert_eq!(m.keys().count(), 2);
    for p in 0..3 {
        assert_eq!(m.fetcher_of(&tp(p)), Some(key(LEADER, p)));
    }
    // Partition 1's leader moves to broker 3.
    let moved = InitialFetchState {
        leader: 3,
        ..initial(6)
    };
    m.add_partitions(vec![(tp(1), moved)], &logs);
    assert_eq!(m.fetcher_of(&tp(1)), Some(key(3, 1)));
    assert!(m
        .fetcher(key(LEADER, 1))
        .unwrap()
        .partition(&tp(1))
        .is_none());
    // This broker now leads partitions 0 and 2: the fetchers of leader 1 are empty.
    let removed = m.remove_partitions(&[tp(0), tp(2)]);
    assert_eq!(removed.len(), 2);
    let mut idle = m.remove_idle_fetchers();
    idle.sort();
    let mut expected = vec![key(LEADER, 0), key(LEADER, 1), key(LEADER, 2)];
    expected.sort();
    expected.dedup();
    assert_eq!(idle, expected);
    assert_eq!(m.keys().collect::<Vec<_>>(), vec![key(3, 1)]);
}
