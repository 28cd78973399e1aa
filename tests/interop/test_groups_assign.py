"""Consumer groups: every partition owned by exactly one member, every record processed once.

Three members of one group on a 6-partition topic, with each client library (and mixed
groups, since the classic protocol lets librdkafka and kafka-python members share a group),
and each assignor; two groups on one topic (publish/subscribe) and one group with many
members (a queue); the initial rebalance delay.
"""
from __future__ import annotations


import pytest

from test_groups_support import (FAST_GROUPS, all_partitions, close_all, create_topic, drain, exactly_once,
                                 produce_values, gtopic, spawn, wait_assignment, wait_records)

BROKER_OVERRIDES = dict(FAST_GROUPS)
PARTITIONS = 6
__all__ = ["spawn", "gtopic"]  # fixtures


@pytest.mark.parametrize("kinds,assignor", [
    (("cf", "cf", "cf"), "range"),
    (("cf", "cf", "cf"), "cooperative-sticky"),
    (("kp", "kp", "kp"), "range"),
    (("kp", "kp", "kp"), "sticky"),
    (("kp", "kp", "kp"), "cooperative-sticky"),
    (("js", "js", "js"), "roundrobin"),
    (("kcat", "kcat", "kcat"), "range"),
    (("cf", "kp", "cf"), "range"),
    (("kp", "cf", "kp"), "roundrobin"),
], ids=lambda v: "-".join(v) if isinstance(v, tuple) else v)
def test_three_members_own_every_partition_once_and_process_every_record_once(broker, spawn, gtopic, kinds, assignor):
    topic = gtopic
    create_topic(broker.bootstrap, topic, PARTITIONS)
    group = f"g-{topic}"
    extra = {} if kinds[0] in ("js", "kcat") else {"assignor": assignor}
    members = [spawn(k, broker.bootstrap, group, [topic], f"{k}{i}", **extra) for i, k in enumerate(kinds)]
    owned = wait_assignment(members, all_partitions(topic, PARTITIONS), per_member=[2, 2, 2], timeout=40)
    if assignor == "range":
        # range gives each member two consecutive partitions
        assert sorted(tuple(p for _, p in v) for v in owned.values()) == [(0, 1), (2, 3), (4, 5)], owned
    if assignor == "roundrobin" and kinds[0] != "js":
        assert sorted(tuple(p for _, p in v) for v in owned.values()) == [(0, 3), (1, 4), (2, 5)], owned
    expected = produce_values(broker.bootstrap, topic, PARTITIONS, 50)
    wait_records(members, expected, timeout=30)
    drain(broker.bootstrap, members, topic, PARTITIONS)  # nothing more arrives before the markers
    by_member = exactly_once(members, expected)
    # each record was processed by the member that owns its partition
    assert {m: sorted(v) for m, v in by_member.items()} == {m: sorted(tuple(tp) for tp in v) for m, v in owned.items()}
    close_all(members)


def test_every_group_on_a_topic_gets_every_record(broker, spawn, gtopic):
    """Publish/subscribe: three groups (one per client library) on one topic."""
    topic = gtopic
    create_topic(broker.bootstrap, topic, PARTITIONS)
    groups = {kind: [spawn(kind, broker.bootstrap, f"{kind}-{topic}", [topic], f"{kind}{i}") for i in range(2)]
              for kind in ("cf", "kp", "js")}
    for members in groups.values():
        wait_assignment(members, all_partitions(topic, PARTITIONS), per_member=[3, 3], timeout=40)
    expected = produce_values(broker.bootstrap, topic, PARTITIONS, 30)
    for members in groups.values():
        wait_records(members, expected)
    markers = produce_values(broker.bootstrap, topic, PARTITIONS, 1, tag="marker")
    for members in groups.values():
        wait_records(members, markers)  # nothing more arrives before the markers
    for members in groups.values():
        exactly_once(members, expected)
    close_all([m for members in groups.values() for m in members])


def test_one_group_with_more_members_than_partitions_shares_the_records(broker, spawn, gtopic):
    """A queue: eight members of one group share six partitions; two stand by idle."""
    topic, group = gtopic, f"g-{gtopic}"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    members = [spawn(kind, broker.bootstrap, group, [topic], f"{kind}{i}") for i, kind in enumerate(["cf", "kp"] * 4)]
    owned = wait_assignment(members, all_partitions(topic, PARTITIONS), per_member=[1] * 6 + [0, 0], timeout=40)
    expected = produce_values(broker.bootstrap, topic, PARTITIONS, 30)
    wait_records(members, expected)
    drain(broker.bootstrap, members, topic, PARTITIONS)  # nothing more arrives before the markers
    by_member = exactly_once(members, expected)
    assert len(by_member) == 6 and all(len(v) == 1 for v in by_member.values())
    idle = [m for m in members if not owned[m.name]]
    assert len(idle) == 2 and not any(m.records() for m in idle)
    close_all(members)
