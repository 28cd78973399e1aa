//! The layouts Kafka's assignor javadocs document, and the properties the sticky
//! assignors promise (balance, ownership kept across member changes, cooperative
//! revocation of only what moves).

use std::collections::{BTreeMap, BTreeSet};

use protocol::TopicPartition;

use super::range::RangeAssignor;
use super::round_robin::RoundRobinAssignor;
use super::sticky::StickyAssignor;
use super::{
    by_name, common_protocol, GroupAssignment, MemberSubscription, PartitionAssignor,
    RebalanceProtocol,
};
use crate::consumer::protocol::Subscription;

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

fn member(id: &str, topics: &[&str]) -> MemberSubscription {
    MemberSubscription {
        member_id: id.into(),
        group_instance_id: None,
        subscription: Subscription {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            generation_id: -1,
            ..Default::default()
        },
    }
}

fn owning(
    mut m: MemberSubscription,
    owned: &[TopicPartition],
    generation: i32,
) -> MemberSubscription {
    m.subscription.owned_partitions = owned.to_vec();
    m.subscription.generation_id = generation;
    m
}

fn topics(spec: &[(&str, i32)]) -> BTreeMap<String, i32> {
    spec.iter().map(|(t, n)| (t.to_string(), *n)).collect()
}

fn assert_valid(assignment: &GroupAssignment, total: usize) {
    let all: Vec<&TopicPartition> = assignment.values().flatten().collect();
    let unique: BTreeSet<&TopicPartition> = all.iter().copied().collect();
    assert_eq!(
        all.len(),
        unique.len(),
        "a partition has two owners: {assignment:?}"
    );
    assert_eq!(
        unique.len(),
        total,
        "every partition is assigned: {assignment:?}"
    );
}

fn assert_balanced(assignment: &GroupAssignment) {
    let counts: Vec<usize> = assignment.values().map(Vec::len).collect();
    let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    assert!(max - min <= 1, "unbalanced: {assignment:?}");
}

/// RangeAssignor javadoc: C0, C1; t0 and t1 with 3 partitions each.
#[test]
fn range_gives_consecutive_ranges_per_topic() {
    let members = [member("C0", &["t0", "t1"]), member("C1", &["t0", "t1"])];
    let assignment = RangeAssignor.assign(&topics(&[("t0", 3), ("t1", 3)]), &members);
    assert_eq!(
        assignment["C0"],
        vec![tp("t0", 0), tp("t0", 1), tp("t1", 0), tp("t1", 1)]
    );
    assert_eq!(assignment["C1"], vec![tp("t0", 2), tp("t1", 2)]);
}

#[test]
fn range_skips_members_not_subscribed() {
    let members = [member("a", &["t0"]), member("b", &["t0", "t1"])];
    let assignment = RangeAssignor.assign(&topics(&[("t0", 4), ("t1", 2)]), &members);
    assert_eq!(assignment["a"], vec![tp("t0", 0), tp("t0", 1)]);
    assert_eq!(
        assignment["b"],
        vec![tp("t0", 2), tp("t0", 3), tp("t1", 0), tp("t1", 1)]
    );
}

/// RoundRobinAssignor javadoc, first example.
#[test]
fn round_robin_deals_all_partitions_in_turn() {
    let members = [member("C0", &["t0", "t1"]), member("C1", &["t0", "t1"])];
    let assignment = RoundRobinAssignor.assign(&topics(&[("t0", 3), ("t1", 3)]), &members);
    assert_eq!(
        assignment["C0"],
        vec![tp("t0", 0), tp("t0", 2), tp("t1", 1)]
    );
    assert_eq!(
        assignment["C1"],
        vec![tp("t0", 1), tp("t1", 0), tp("t1", 2)]
    );
}

/// RoundRobinAssignor javadoc, second example (different subscriptions).
#[test]
fn round_robin_skips_members_not_subscribed() {
    let members = [
        member("C0", &["t0"]),
        member("C1", &["t0", "t1"]),
        member("C2", &["t0", "t1", "t2"]),
    ];
    let assignment =
        RoundRobinAssignor.assign(&topics(&[("t0", 1), ("t1", 2), ("t2", 3)]), &members);
    assert_eq!(assignment["C0"], vec![tp("t0", 0)]);
    assert_eq!(assignment["C1"], vec![tp("t1", 0)]);
    assert_eq!(
        assignment["C2"],
        vec![tp("t1", 1), tp("t2", 0), tp("t2", 1), tp("t2", 2)]
    );
}

fn four_topics() -> BTreeMap<String, i32> {
    topics(&[("t0", 2), ("t1", 2), ("t2", 2), ("t3", 2)])
}

/// StickyAssignor javadoc, example 1: a new group of three gets the
/// round-robin layout.
#[test]
fn sticky_new_group_matches_kafkas_layout() {
    let all = ["t0", "t1", "t2", "t3"];
    let members = [member("C0", &all), member("C1", &all), member("C2", &all)];
    let assignment = StickyAssignor::default().assign(&four_topics(), &members);
    assert_eq!(
        assignment["C0"],
        vec![tp("t0", 0), tp("t1", 1), tp("t3", 0)]
    );
    assert_eq!(
        assignment["C1"],
        vec![tp("t0", 1), tp("t2", 0), tp("t3", 1)]
    );
    assert_eq!(assignment["C2"], vec![tp("t1", 0), tp("t2", 1)]);
}

/// StickyAssignor javadoc, example 1 continued: C1 leaves; C0 and C2 keep every
/// partition they had and share C1's (round-robin would move most of them).
#[test]
fn sticky_keeps_ownership_when_a_member_leaves() {
    let all = ["t0", "t1", "t2", "t3"];
    let c0 = [tp("t0", 0), tp("t1", 1), tp("t3", 0)];
    let c2 = [tp("t1", 0), tp("t2", 1)];
    let members = [
        owning(member("C0", &all), &c0, 1),
        owning(member("C2", &all), &c2, 1),
    ];
    let assignment = StickyAssignor::default().assign(&four_topics(), &members);
    assert_valid(&assignment, 8);
    assert_balanced(&assignment);
    for p in &c0 {
        assert!(assignment["C0"].contains(p), "C0 keeps {p}: {assignment:?}");
    }
    for p in &c2 {
        assert!(assignment["C2"].contains(p), "C2 keeps {p}: {assignment:?}");
    }
}

#[test]
fn sticky_moves_only_what_balance_needs_when_a_member_joins() {
    let all = ["t0", "t1", "t2", "t3"];
    let c0 = [tp("t0", 0), tp("t0", 1), tp("t1", 0), tp("t1", 1)];
    let c1 = [tp("t2", 0), tp("t2", 1), tp("t3", 0), tp("t3", 1)];
    let members = [
        owning(member("C0", &all), &c0, 3),
        owning(member("C1", &all), &c1, 3),
        member("C2", &all),
    ];
    let assignment = StickyAssignor::default().assign(&four_topics(), &members);
    assert_valid(&assignment, 8);
    assert_balanced(&assignment);
    let kept = assignment["C0"].iter().filter(|p| c0.contains(p)).count()
        + assignment["C1"].iter().filter(|p| c1.contains(p)).count();
    assert_eq!(
        kept, 6,
        "only two partitions move to the new member: {assignment:?}"
    );
}

/// A partition claimed by two members goes to the one of the later generation.
#[test]
fn sticky_prefers_the_claim_of_the_later_generation() {
    let members = [
        owning(member("a", &["t"]), &[tp("t", 0)], 1),
        owning(member("b", &["t"]), &[tp("t", 0)], 2),
    ];
    let assignment = StickyAssignor::default().assign(&topics(&[("t", 2)]), &members);
    assert_eq!(assignment["b"], vec![tp("t", 0)]);
    assert_eq!(assignment["a"], vec![tp("t", 1)]);
}

#[test]
fn sticky_balances_unequal_subscriptions() {
    let members = [
        member("a", &["t0"]),
        member("b", &["t0", "t1"]),
        member("c", &["t1"]),
    ];
    let assignment = StickyAssignor::default().assign(&topics(&[("t0", 3), ("t1", 3)]), &members);
    assert_valid(&assignment, 6);
    assert_balanced(&assignment);
    assert!(assignment["a"].iter().all(|p| &*p.topic == "t0"));
    assert!(assignment["c"].iter().all(|p| &*p.topic == "t1"));
}

/// KIP-429: with cooperative-sticky, a joining member gets nothing another member
/// still owns in the first round; the owners keep all but what moves, and the
/// second round (after they revoked) hands the moved partitions over.
#[test]
fn cooperative_revokes_only_what_moves() {
    let all = ["t0", "t1", "t2", "t3"];
    let c0 = [tp("t0", 0), tp("t0", 1), tp("t1", 0), tp("t1", 1)];
    let c1 = [tp("t2", 0), tp("t2", 1), tp("t3", 0), tp("t3", 1)];
    let assignor = StickyAssignor { cooperative: true };
    let first = assignor.assign(
        &four_topics(),
        &[
            owning(member("C0", &all), &c0, 3),
            owning(member("C1", &all), &c1, 3),
            member("C2", &all),
        ],
    );
    assert!(
        first["C2"].is_empty(),
        "nothing moves before its owner revoked it: {first:?}"
    );
    let revoked: Vec<&TopicPartition> = c0
        .iter()
        .chain(c1.iter())
        .filter(|p| !first["C0"].contains(p) && !first["C1"].contains(p))
        .collect();
    assert_eq!(
        revoked.len(),
        2,
        "exactly the two partitions that move are revoked: {first:?}"
    );

    // Second round: C0 and C1 own what they kept; C2 owns nothing yet.
    let second = assignor.assign(
        &four_topics(),
        &[
            owning(member("C0", &all), &first["C0"], 4),
            owning(member("C1", &all), &first["C1"], 4),
            owning(member("C2", &all), &[], 4),
        ],
    );
    assert_valid(&second, 8);
    assert_balanced(&second);
    assert_eq!(second["C0"], first["C0"]);
    assert_eq!(second["C1"], first["C1"]);
    let moved: BTreeSet<&TopicPartition> = second["C2"].iter().collect();
    assert_eq!(moved, revoked.into_iter().collect());
}

#[test]
fn assignors_are_found_by_kafka_and_java_names() {
    assert_eq!(by_name("range").unwrap().name(), "range");
    assert_eq!(
        by_name("org.apache.kafka.clients.consumer.RoundRobinAssignor")
            .unwrap()
            .name(),
        "roundrobin"
    );
    assert_eq!(
        by_name("cooperative-sticky").unwrap().name(),
        "cooperative-sticky"
    );
    assert!(by_name("fancy").is_err());
}

/// Java's rule: cooperative only when every configured assignor supports it.
#[test]
fn the_protocol_is_cooperative_only_if_all_assignors_are() {
    let default = vec![
        by_name("range").unwrap(),
        by_name("cooperative-sticky").unwrap(),
    ];
    assert_eq!(common_protocol(&default), RebalanceProtocol::Eager);
    let cooperative = vec![by_name("cooperative-sticky").unwrap()];
    assert_eq!(
        common_protocol(&cooperative),
        RebalanceProtocol::Cooperative
    );
}

#[test]
fn more_members_than_partitions_leaves_some_empty() {
    let members = [
        member("a", &["t"]),
        member("b", &["t"]),
        member("c", &["t"]),
    ];
    for assignor in [
        by_name("range").unwrap(),
        by_name("roundrobin").unwrap(),
        by_name("sticky").unwrap(),
    ] {
        let assignment = assignor.assign(&topics(&[("t", 2)]), &members);
        assert_valid(&assignment, 2);
        assert_eq!(
            assignment.len(),
            3,
            "{}: every member has an entry",
            assignor.name()
        );
    }
}
