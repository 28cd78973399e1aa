//! A follower's log against its leader's: random leader appends (plain,
//! idempotent with retries, transactional, markers, new leader epochs) copied in
//! fetch-sized pieces end up byte for byte the same, with the same producer
//! state, transaction index and leader epoch cache; a truncation restores the
//! state the leader had at that offset; and a retried batch reaching the follower
//! once it leads is answered with its original offsets.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use protocol::records::{BatchBuilder, Compression, NewRecord};
use protocol::time::{Clock, ManualClock};
use protocol::TopicPartition;

use super::{LoadState, Log};
use crate::env::LogEnv;
use crate::error::AppendError;
use crate::fs::MemFs;
use crate::leader_epoch::EpochEntry;
use crate::log_tests::{config, NOW};
use crate::producer_state::{marker_batch, BatchMetadata, CONTROL_ABORT, CONTROL_COMMIT};
use crate::validate::Origin;

fn open(env: &LogEnv, dir: &str, segment_bytes: &str) -> Log {
    Log::open(
        Path::new(dir),
        TopicPartition::new("t", 0),
        config(&[("segment.bytes", segment_bytes)]),
        env,
        LoadState::default(),
    )
    .unwrap()
}

fn env() -> LogEnv {
    let clock = Arc::new(ManualClock::new(NOW)) as Arc<dyn Clock>;
    LogEnv::new(MemFs::new().shared(), clock)
}

/// A batch of `count` records from `producer` (`(id, epoch, first sequence)`).
fn batch(producer: Option<(i64, i16, i32)>, transactional: bool, count: usize) -> Vec<u8> {
    let mut builder = BatchBuilder::new(Compression::None);
    if let Some((id, epoch, seq)) = producer {
        builder = builder
            .producer(id, epoch, seq)
            .transactional(transactional);
    }
    for i in 0..count {
        builder.append(&NewRecord {
            timestamp: NOW + i as i64,
            key: Some(b"k"),
            value: Some(b"value"),
            headers: &[],
        });
    }
    builder.build().unwrap()
}

/// Every batch of `log`, in order, as its bytes.
fn all_bytes(log: &Log) -> Vec<u8> {
    let mut out = Vec::new();
    let end = log.log_end_offset().0;
    let mut at = log.log_start_offset().0;
    while at < end {
        let piece = log.read_bytes(at, end, usize::MAX).unwrap();
        assert!(!piece.is_empty(), "nothing read at {at} below {end}");
        let mut next = at;
        for item in protocol::records::batch::Batches::new(&piece) {
            next = item.unwrap().0.next_offset();
        }
        out.extend_from_slice(&piece);
        at = next;
    }
    out
}

/// Copies what the follower lacks from the leader, `max_bytes` at a time, as a
/// fetcher would.
fn replicate(leader: &Log, follower: &mut Log, leader_epoch: i32, max_bytes: usize) {
    loop {
        let at = follower.log_end_offset().0;
        let end = leader.log_end_offset().0;
        if at >= end {
            return;
        }
        let piece = leader.read_bytes(at, end, max_bytes).unwrap();
        let info = follower.append_as_follower(&piece, leader_epoch).unwrap();
        assert_eq!(info.first_offset.0, at);
    }
}

/// What must agree between replicas at the same offset: the producer state as
/// Kafka snapshots it, open transactions, indexed aborts and the epoch cache.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Replicated {
    producers: Vec<u8>,
    ongoing: Vec<(i64, i64)>,
    aborted: Vec<(i64, i64)>,
    epochs: Vec<EpochEntry>,
}

fn replicated(log: &Log) -> Replicated {
    let end = log.log_end_offset().0;
    Replicated {
        producers: log.producer_state().encode_snapshot(),
        ongoing: log.producer_state().ongoing_transactions(),
        aborted: log.aborted_transactions(0, end),
        epochs: log.leader_epochs().entries().to_vec(),
    }
}

/// Per producer, its recent batches: `(first seq, last seq, first offset, last
/// offset)`. Not their timestamps: Kafka's snapshot keeps one per producer (its
/// last), which a reload gives its one batch, as Kafka's does.
type Rings = BTreeMap<i64, Vec<(i32, i32, i64, i64)>>;

fn rings(log: &Log) -> Rings {
    let batch = |b: &BatchMetadata| (b.first_seq, b.last_seq, b.first_offset, b.last_offset);
    log.producer_state()
        .producers()
        .map(|e| (e.producer_id, e.batches.iter().map(batch).collect()))
        .collect()
}

/// The follower's recent batches per producer are the newest of the leader's
/// (a reload from a snapshot keeps only the last one, as in Kafka).
fn assert_recent_batches_agree(leader: &Rings, follower: &Log) {
    let ours = rings(follower);
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        leader.keys().collect::<Vec<_>>()
    );
    for (id, batches) in ours {
        let theirs = &leader[&id];
        assert!(batches.len() <= theirs.len(), "producer {id}");
        assert_eq!(
            batches[..],
            theirs[theirs.len() - batches.len()..],
            "producer {id}"
        );
        assert_eq!(batches.is_empty(), theirs.is_empty(), "producer {id}");
    }
}

#[test]
fn a_copied_log_is_identical_to_its_leaders() {
    let env = env();
    let mut leader = open(&env, "/l/t-0", "1000");
    let mut follower = open(&env, "/f/t-0", "1000");
    for i in 0..20 {
        let epoch = i / 7;
        leader
            .append_as_leader(&batch(Some((1, 0, i * 2)), false, 2), epoch, Origin::Client)
            .unwrap();
        leader
            .append_as_leader(&batch(None, false, 3), epoch, Origin::Client)
            .unwrap();
    }
    replicate(&leader, &mut follower, 2, 700);
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(all_bytes(&follower), all_bytes(&leader));
    assert_eq!(replicated(&follower), replicated(&leader));
    assert_eq!(
        follower.leader_epochs().entries(),
        &[
            EpochEntry {
                epoch: 0,
                start_offset: 0
            },
            EpochEntry {
                epoch: 1,
                start_offset: 35
            },
            EpochEntry {
                epoch: 2,
                start_offset: 70
            }
        ]
    );
    assert!(follower.segment_count() > 1, "the follower rolled too");
}

#[test]
fn a_replicated_abort_is_indexed_and_moves_the_last_stable_offset() {
    let env = env();
    let mut leader = open(&env, "/l/t-0", "100000");
    let mut follower = open(&env, "/f/t-0", "100000");
    leader
        .append_as_leader(&batch(Some((7, 0, 0)), true, 2), 0, Origin::Client)
        .unwrap();
    leader
        .append_as_leader(&batch(Some((8, 0, 0)), true, 1), 0, Origin::Client)
        .unwrap();
    replicate(&leader, &mut follower, 0, usize::MAX);
    assert_eq!(follower.first_unstable_offset(), Some(0));
    let abort = marker_batch(7, 0, CONTROL_ABORT, 3, NOW);
    leader
        .append_as_leader(&abort, 0, Origin::Coordinator)
        .unwrap();
    let commit = marker_batch(8, 0, CONTROL_COMMIT, 3, NOW);
    leader
        .append_as_leader(&commit, 0, Origin::Coordinator)
        .unwrap();
    replicate(&leader, &mut follower, 0, usize::MAX);
    assert_eq!(follower.first_unstable_offset(), None);
    assert_eq!(follower.aborted_transactions(0, 5), vec![(7, 0)]);
    assert_eq!(replicated(&follower), replicated(&leader));
    assert_eq!(
        follower
            .producer_state()
            .producer(7)
            .unwrap()
            .coordinator_epoch,
        3
    );
}

#[test]
fn a_retry_reaching_the_new_leader_gets_its_original_offsets() {
    let env = env();
    let mut leader = open(&env, "/l/t-0", "100000");
    let mut follower = open(&env, "/f/t-0", "100000");
    let sent: Vec<Vec<u8>> = (0..6)
        .map(|i| batch(Some((42, 3, i * 3)), false, 3))
        .collect();
    let mut offsets = Vec::new();
    for records in &sent {
        let info = leader.append_as_leader(records, 4, Origin::Client).unwrap();
        offsets.push((info.first_offset, info.last_offset));
    }
    replicate(&leader, &mut follower, 4, 200);
    // The follower is elected; the producer retries its last five batches.
    follower.assign_epoch_start_offset(5, 18).unwrap();
    for (records, (first, last)) in sent.iter().zip(&offsets).skip(1) {
        let info = follower
            .append_as_leader(records, 5, Origin::Client)
            .unwrap();
        assert!(info.duplicate);
        assert_eq!((info.first_offset, info.last_offset), (*first, *last));
    }
    // The oldest is out of the window of five: a sequence error, not a rewrite.
    assert!(matches!(
        follower.append_as_leader(&sent[0], 5, Origin::Client),
        Err(AppendError::Producer(_))
    ));
    assert_eq!(follower.log_end_offset().0, 18);
    let next = batch(Some((42, 3, 18)), false, 1);
    let info = follower.append_as_leader(&next, 5, Origin::Client).unwrap();
    assert_eq!((info.first_offset.0, info.duplicate), (18, false));
    assert_eq!(
        follower.leader_epochs().latest(),
        Some(EpochEntry {
            epoch: 5,
            start_offset: 18
        })
    );
}

#[test]
fn offsets_below_the_log_end_or_out_of_order_are_refused() {
    let env = env();
    let mut leader = open(&env, "/l/t-0", "100000");
    let mut follower = open(&env, "/f/t-0", "100000");
    for _ in 0..3 {
        leader
            .append_as_leader(&batch(None, false, 2), 0, Origin::Client)
            .unwrap();
    }
    let all = all_bytes(&leader);
    follower.append_as_follower(&all, 0).unwrap();
    assert!(matches!(
        follower.append_as_follower(&all, 0),
        Err(AppendError::InvalidRecord(m)) if m.contains("less than the next offset 6")
    ));
    // Two batches of the same offsets in one append.
    let mut twice = batch(None, false, 1);
    protocol::records::batch::patch_offset_and_epoch(&mut twice, 6, 0);
    let mut doubled = twice.clone();
    doubled.extend_from_slice(&twice);
    assert!(matches!(
        follower.append_as_follower(&doubled, 0),
        Err(AppendError::InvalidRecord(m)) if m.contains("Out of order offsets")
    ));
    // A bad CRC.
    let mut corrupt = twice.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert!(matches!(
        follower.append_as_follower(&corrupt, 0),
        Err(AppendError::CorruptMessage(_))
    ));
    assert_eq!(follower.log_end_offset().0, 6, "nothing was written");
    assert_eq!(all_bytes(&follower), all);
}

#[test]
fn a_gap_in_offsets_is_kept_and_a_cut_tail_is_left_for_the_next_fetch() {
    let env = env();
    let mut follower = open(&env, "/f/t-0", "100000");
    let mut first = batch(None, false, 2);
    protocol::records::batch::patch_offset_and_epoch(&mut first, 0, 1);
    // A compacted leader: the next batch starts at 10, and holds one record
    // where its offsets span three.
    let mut second = batch(None, false, 1);
    protocol::records::batch::patch_offset_and_epoch(&mut second, 10, 1);
    second[23..27].copy_from_slice(&2i32.to_be_bytes()); // last offset delta
    let crc = super::crc_of(&second[..61], &second[61..]);
    protocol::records::batch::set_crc(&mut second[..61], crc);
    let mut records = first.clone();
    records.extend_from_slice(&second);
    records.extend_from_slice(&first[..30]);
    let info = follower.append_as_follower(&records, 1).unwrap();
    assert_eq!((info.first_offset.0, info.last_offset.0), (0, 12));
    assert_eq!(info.records, 3);
    assert_eq!(follower.log_end_offset().0, 13);
    assert_eq!(all_bytes(&follower), records[..first.len() + second.len()]);
    // Nothing whole: nothing written.
    let info = follower.append_as_follower(&first[..30], 1).unwrap();
    assert_eq!((info.records, follower.log_end_offset().0), (0, 13));
}

#[test]
fn batches_of_a_later_leader_epoch_than_the_followed_one_are_skipped() {
    // KAFKA-18723: a deposed leader's answer must not extend the log with its
    // next epoch.
    let env = env();
    let mut follower = open(&env, "/f/t-0", "100000");
    let mut records = Vec::new();
    for (offset, epoch) in [(0, 3), (1, 3), (2, 4), (3, 3)] {
        let mut one = batch(None, false, 1);
        protocol::records::batch::patch_offset_and_epoch(&mut one, offset, epoch);
        records.extend_from_slice(&one);
    }
    let info = follower.append_as_follower(&records, 3).unwrap();
    assert_eq!(info.last_offset.0, 1);
    assert_eq!(follower.log_end_offset().0, 2);
}

#[test]
fn an_epoch_recorded_as_leader_and_never_written_gives_way_to_the_new_leaders() {
    let env = env();
    let mut follower = open(&env, "/f/t-0", "100000");
    let mut first = batch(None, false, 2);
    protocol::records::batch::patch_offset_and_epoch(&mut first, 0, 3);
    follower.append_as_follower(&first, 3).unwrap();
    // Elected in epoch 5, wrote nothing, then another replica won epoch 6 with
    // epoch 4 batches at offset 2.
    follower.assign_epoch_start_offset(5, 2).unwrap();
    follower.truncate_to(2).unwrap();
    assert_eq!(
        follower.latest_epoch(),
        Some(3),
        "truncation at the end drops it"
    );
    follower.assign_epoch_start_offset(5, 2).unwrap();
    let mut next = batch(None, false, 1);
    protocol::records::batch::patch_offset_and_epoch(&mut next, 2, 4);
    follower.append_as_follower(&next, 6).unwrap();
    assert_eq!(
        follower.leader_epochs().entries(),
        &[
            EpochEntry {
                epoch: 3,
                start_offset: 0
            },
            EpochEntry {
                epoch: 4,
                start_offset: 2
            }
        ]
    );
}

#[test]
fn a_log_started_afresh_past_its_end_keeps_nothing_of_before() {
    let env = env();
    let mut follower = open(&env, "/f/t-0", "300");
    for (offset, epoch) in [(0, 1), (1, 1), (2, 2)] {
        let mut one = batch(Some((5, 0, offset as i32)), true, 1);
        protocol::records::batch::patch_offset_and_epoch(&mut one, offset, epoch);
        follower.append_as_follower(&one, 2).unwrap();
    }
    follower.roll().unwrap();
    assert!(follower.segment_count() > 1);
    assert_eq!(follower.first_unstable_offset(), Some(0));
    follower.truncate_fully_and_start_at(1_000).unwrap();
    assert_eq!(follower.log_start_offset().0, 1_000);
    assert_eq!(follower.log_end_offset().0, 1_000);
    assert_eq!(follower.segment_base_offsets(), vec![1_000]);
    assert_eq!(follower.leader_epochs().entries(), &[]);
    assert_eq!(follower.producer_state().producers().count(), 0);
    assert_eq!(follower.first_unstable_offset(), None);
    let mut next = batch(None, false, 2);
    protocol::records::batch::patch_offset_and_epoch(&mut next, 1_000, 3);
    follower.append_as_follower(&next, 3).unwrap();
    follower.close().unwrap();
    drop(follower);
    let reopened = Log::open(
        Path::new("/f/t-0"),
        TopicPartition::new("t", 0),
        config(&[("segment.bytes", "300")]),
        &env,
        LoadState {
            recovery_point: 1_002,
            log_start_offset: 1_000,
            clean_shutdown: true,
        },
    )
    .unwrap();
    assert_eq!(reopened.segment_base_offsets(), vec![1_000]);
    assert_eq!(reopened.log_end_offset().0, 1_002);
    assert_eq!(all_bytes(&reopened), next);
    assert_eq!(reopened.producer_state().producers().count(), 0);
    assert_eq!(
        reopened.leader_epochs().entries(),
        &[EpochEntry {
            epoch: 3,
            start_offset: 1_000
        }]
    );
}

// ---- The property: random leader histories, copied, truncated, copied again ----

#[derive(Debug, Clone)]
enum Op {
    /// An idempotent batch from producer `1 + p`.
    Idempotent { p: u8, records: u8 },
    /// The same producer sends its last batch again.
    Retry { p: u8 },
    /// The producer's epoch is bumped (its sequences start over).
    BumpProducerEpoch { p: u8 },
    /// A transactional batch from producer `10 + p`.
    Transactional { p: u8, records: u8 },
    /// The coordinator ends producer `10 + p`'s transaction.
    Marker { p: u8, commit: bool },
    /// A batch with no producer.
    Plain { records: u8 },
    /// A new leader epoch (the same leader, re-elected).
    NewLeaderEpoch,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 1u8..5).prop_map(|(p, records)| Op::Idempotent { p, records }),
        1 => (0u8..3).prop_map(|p| Op::Retry { p }),
        1 => (0u8..3).prop_map(|p| Op::BumpProducerEpoch { p }),
        3 => (0u8..2, 1u8..4).prop_map(|(p, records)| Op::Transactional { p, records }),
        2 => (0u8..2, any::<bool>()).prop_map(|(p, commit)| Op::Marker { p, commit }),
        2 => (1u8..4).prop_map(|records| Op::Plain { records }),
        1 => Just(Op::NewLeaderEpoch),
    ]
}

/// Drives a leader log; remembers what every producer sent and the state the
/// log had after each append, by log end offset.
struct LeaderHistory {
    log: Log,
    epoch: i32,
    producers: BTreeMap<i64, (i16, i32, Option<Vec<u8>>)>,
    states: BTreeMap<i64, (Replicated, Rings)>,
}

impl LeaderHistory {
    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Idempotent { p, records } => {
                self.send(1 + i64::from(p), false, usize::from(records))
            }
            Op::Transactional { p, records } => {
                self.send(10 + i64::from(p), true, usize::from(records))
            }
            Op::Retry { p } => {
                let Some((_, _, Some(last))) = self.producers.get(&(1 + i64::from(p))) else {
                    return;
                };
                let last = last.clone();
                let info = self
                    .log
                    .append_as_leader(&last, self.epoch, Origin::Client)
                    .unwrap();
                assert!(info.duplicate);
            }
            Op::BumpProducerEpoch { p } => {
                let entry = self
                    .producers
                    .entry(1 + i64::from(p))
                    .or_insert((0, 0, None));
                *entry = (entry.0 + 1, 0, None);
            }
            Op::Marker { p, commit } => {
                let id = 10 + i64::from(p);
                let kind = if commit {
                    CONTROL_COMMIT
                } else {
                    CONTROL_ABORT
                };
                let marker = marker_batch(id, 0, kind, 0, NOW);
                self.log
                    .append_as_leader(&marker, self.epoch, Origin::Coordinator)
                    .unwrap();
            }
            Op::Plain { records } => {
                let records = batch(None, false, usize::from(records));
                self.log
                    .append_as_leader(&records, self.epoch, Origin::Client)
                    .unwrap();
            }
            Op::NewLeaderEpoch => self.epoch += 1,
        }
        let state = (replicated(&self.log), rings(&self.log));
        self.states.insert(self.log.log_end_offset().0, state);
    }

    fn send(&mut self, id: i64, transactional: bool, count: usize) {
        let (epoch, seq, last) = self.producers.entry(id).or_insert((0, 0, None));
        let records = batch(Some((id, *epoch, *seq)), transactional, count);
        let info = self
            .log
            .append_as_leader(&records, self.epoch, Origin::Client)
            .unwrap();
        assert!(!info.duplicate);
        *seq += count as i32;
        *last = Some(records);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_follower_matches_its_leader_through_truncation(
        ops in prop::collection::vec(op(), 1..60),
        fetch_bytes in 60usize..2_000,
        truncate_at in any::<prop::sample::Index>(),
    ) {
        let env = env();
        let mut history = LeaderHistory {
            log: open(&env, "/l/t-0", "900"),
            epoch: 0,
            producers: BTreeMap::new(),
            states: BTreeMap::new(),
        };
        history.states.insert(0, (replicated(&history.log), Rings::new()));
        for op in &ops {
            history.apply(op);
        }
        let leader = &history.log;
        let mut follower = open(&env, "/f/t-0", "900");
        replicate(leader, &mut follower, history.epoch, fetch_bytes);
        prop_assert_eq!(all_bytes(&follower), all_bytes(leader));
        prop_assert_eq!(replicated(&follower), replicated(leader));
        assert_recent_batches_agree(&rings(leader), &follower);

        // Truncate anywhere: the follower holds what the leader held there.
        let end = leader.log_end_offset().0;
        let target = truncate_at.index(end as usize + 1) as i64;
        follower.truncate_to(target).unwrap();
        let cut = follower.log_end_offset().0;
        prop_assert!(cut <= target);
        let (expected, expected_rings) =
            history.states.get(&cut).expect("truncation stops at a batch boundary");
        prop_assert_eq!(&replicated(&follower), expected);
        assert_recent_batches_agree(expected_rings, &follower);

        // Copy the rest again: identical once more.
        replicate(leader, &mut follower, history.epoch, fetch_bytes);
        prop_assert_eq!(all_bytes(&follower), all_bytes(leader));
        prop_assert_eq!(replicated(&follower), replicated(leader));
        assert_recent_batches_agree(&rings(leader), &follower);

        // Elected: every producer's last batch, retried, is a duplicate at its
        // original offsets.
        follower
            .assign_epoch_start_offset(history.epoch + 1, end)
            .unwrap();
        for (id, (_, _, last)) in &history.producers {
            let Some(last) = last else { continue };
            let theirs = leader.producer_state().producer(*id).unwrap();
            let original = theirs.batches.back().unwrap();
            let info = follower
                .append_as_leader(last, history.epoch + 1, Origin::Client)
                .unwrap();
            prop_assert!(info.duplicate, "producer {}", id);
            prop_assert_eq!(
                (info.first_offset.0, info.last_offset.0),
                (original.first_offset, original.last_offset)
            );
        }
        prop_assert_eq!(follower.log_end_offset().0, end);
    }
}
