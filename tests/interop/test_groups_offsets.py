"""Consumer groups: committed offsets.

Commits survive a broker restart (SIGTERM or SIGKILL): OffsetFetch answers exactly what was
committed, commit metadata included, and members resume where they left off, whether they
were restarted too or stayed up across the broker restart.
"""
from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, TopicPartition
from kafka.protocol.consumer.group import OffsetCommitRequest, OffsetFetchRequest

from kclients import cf_conf, kp_admin
from test_groups_support import (FAST_GROUPS, Raw, all_partitions, close_all, create_topic, drain, ends_of,
                                 exactly_once, gtopic, produce_values, spawn, wait_assignment, wait_committed,
                                 wait_records)

__all__ = ["spawn", "gtopic"]  # fixtures
P = 4


def committed_offsets(bootstrap: str, group: str) -> dict:
    """{(topic, partition): (offset, metadata)} via kafka-python's admin (OffsetFetch v8, all topics)."""
    admin = kp_admin(bootstrap)
    try:
        got = admin.list_group_offsets({group: None})[group]
    finally:
        admin.close()
    return {(tp.topic, tp.partition): (om.offset, om.metadata) for tp, om in got.items()}


@pytest.mark.parametrize("kind,how", [("cf", "sigterm"), ("kp", "sigkill"), ("js", "sigterm")])
def test_members_restarted_after_a_broker_restart_resume_from_the_committed_offsets(broker_factory, spawn, gtopic, kind, how):
    b = broker_factory(overrides=FAST_GROUPS)
    topic, group = gtopic, f"g-{gtopic}"
    create_topic(b.bootstrap, topic, P)
    members = [spawn(kind, b.bootstrap, group, [topic], f"{kind}{i}") for i in range(2)]
    wait_assignment(members, all_partitions(topic, P), per_member=[2, 2], timeout=40)
    first = produce_values(b.bootstrap, topic, P, 15, tag="a")
    wait_records(members, first)
    wait_committed(members, ends_of(first))
    close_all(members)
    assert committed_offsets(b.bootstrap, group) == {tp: (15, "") for tp in all_partitions(topic, P)}

    if how == "sigkill":
        b.kill9()
        b.start()
    else:
        b.restart()
    assert committed_offsets(b.bootstrap, group) == {tp: (15, "") for tp in all_partitions(topic, P)}
    second = produce_values(b.bootstrap, topic, P, 10, tag="b", start=15)
    again = [spawn(kind, b.bootstrap, group, [topic], f"{kind}{i}-again") for i in range(2)]
    wait_records(again, second)
    markers = drain(b.bootstrap, again, topic, P)  # at offset 25 of each partition
    exactly_once(again, second | markers)  # nothing of `first` again
    wait_committed(again, ends_of(second | markers))
    close_all(again)
    assert committed_offsets(b.bootstrap, group) == {tp: (26, "") for tp in all_partitions(topic, P)}


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_members_that_stay_up_across_a_broker_restart_continue_without_reprocessing(broker_factory, spawn, gtopic, how):
    b = broker_factory(overrides=FAST_GROUPS)
    topic, group = gtopic, f"g-{gtopic}"
    create_topic(b.bootstrap, topic, P)
    members = [spawn("cf", b.bootstrap, group, [topic], f"cf{i}", session_ms=10000) for i in range(2)]
    before = wait_assignment(members, all_partitions(topic, P), per_member=[2, 2], timeout=40)
    first = produce_values(b.bootstrap, topic, P, 15, tag="a")
    wait_records(members, first)
    wait_committed(members, ends_of(first))
    mark = time.monotonic()
    if how == "sigkill":
        b.kill9()
        b.start()
    else:
        b.restart()
    second = produce_values(b.bootstrap, topic, P, 10, tag="b", start=15)
    wait_records(members, second, timeout=40)
    markers = drain(b.bootstrap, members, topic, P)  # at offset 25 of each partition
    wait_committed(members, ends_of(second | markers))
    exactly_once(members, first | second | markers)
    # The coordinator reloaded the group (Stable, same members): no rebalance was needed.
    after = wait_assignment(members, all_partitions(topic, P), per_member=[2, 2])
    assert after == before
    assert not [e for m in members for e in m.of("assigned") if e["ts"] > mark]
    close_all(members)
    assert committed_offsets(b.bootstrap, group) == {tp: (26, "") for tp in all_partitions(topic, P)}


def test_commit_metadata_round_trips_through_every_client_and_a_restart(broker_factory, gtopic):
    b = broker_factory(overrides=FAST_GROUPS)
    topic = gtopic
    create_topic(b.bootstrap, topic, 3)
    # confluent-kafka: a standalone consumer (no subscribe) committing with metadata
    c = Consumer(cf_conf(b.bootstrap, {"group.id": "meta-cf", "enable.auto.commit": False}))
    c.commit(offsets=[TopicPartition(topic, 0, 7, metadata="cf-meta-é"), TopicPartition(topic, 1, 9)], asynchronous=False)
    got = c.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
    assert [(tp.partition, tp.offset, tp.metadata) for tp in got] == [(0, 7, "cf-meta-é"), (1, 9, None), (2, -1001, None)]
    c.close()
    # kafka-python admin writes offsets with metadata (OffsetCommit, generation -1)
    from kafka.structs import OffsetAndMetadata
    from kafka import TopicPartition as KTP
    admin = kp_admin(b.bootstrap)
    try:
        admin.alter_group_offsets("meta-kp", {KTP(topic, 2): OffsetAndMetadata(11, "kp-meta", -1)})
    finally:
        admin.close()
    # and raw OffsetCommit v2 / v8 with a leader epoch
    with Raw(b.bootstrap) as raw:
        r = raw.call(OffsetCommitRequest, 2, group_id="meta-raw", generation_id_or_member_epoch=-1, member_id="",
                     retention_time_ms=-1, topics=[{"name": topic, "partitions": [
                         {"partition_index": 0, "committed_offset": 3, "committed_metadata": "v2"}]}])
        assert r.topics[0].partitions[0].error_code == 0
        r = raw.call(OffsetCommitRequest, 8, group_id="meta-raw", generation_id_or_member_epoch=-1, member_id="",
                     group_instance_id=None, topics=[{"name": topic, "partitions": [
                         {"partition_index": 1, "committed_offset": 4, "committed_leader_epoch": 5,
                          "committed_metadata": "v8"}]}])
        assert r.topics[0].partitions[0].error_code == 0

    def check():
        # confluent-kafka sends the metadata with its C string's NUL (strlen + 1 bytes); the
        # broker keeps the bytes as they came, as Kafka does
        assert committed_offsets(b.bootstrap, "meta-cf") == {(topic, 0): (7, "cf-meta-é\x00"), (topic, 1): (9, "")}
        assert committed_offsets(b.bootstrap, "meta-kp") == {(topic, 2): (11, "kp-meta")}
        with Raw(b.bootstrap) as raw:
            # v1 (single group, explicit partitions): unknown partitions are -1 without error
            r = raw.call(OffsetFetchRequest, 1, group_id="meta-raw", topics=[{"name": topic, "partition_indexes": [0, 1, 2]}])
            assert [(p.partition_index, p.committed_offset, p.metadata, p.error_code) for p in r.topics[0].partitions] == \
                [(0, 3, "v2", 0), (1, 4, "v8", 0), (2, -1, "", 0)]
            # v5 reports the leader epoch
            r = raw.call(OffsetFetchRequest, 5, group_id="meta-raw", topics=None)
            assert sorted((p.partition_index, p.committed_offset, p.committed_leader_epoch) for t in r.topics
                          for p in t.partitions) == [(0, 3, -1), (1, 4, 5)]
            # v8: several groups in one request, one of them unknown
            r = raw.call(OffsetFetchRequest, 8, groups=[
                {"group_id": "meta-cf", "topics": None},
                {"group_id": "meta-raw", "topics": [{"name": topic, "partition_indexes": [1]}]},
                {"group_id": "no-such-group", "topics": None}], require_stable=False)
            got = {g.group_id: (g.error_code, [(t.name, p.partition_index, p.committed_offset, p.metadata)
                                               for t in g.topics for p in t.partitions]) for g in r.groups}
            assert got == {"meta-cf": (0, [(topic, 0, 7, "cf-meta-é\x00"), (topic, 1, 9, "")]),
                           "meta-raw": (0, [(topic, 1, 4, "v8")]),
                           "no-such-group": (0, [])}
    check()
    b.restart()
    check()
    # a deleted group stays deleted (its tombstones win at load), the others are untouched
    admin = kp_admin(b.bootstrap)
    try:
        assert admin.delete_groups(["meta-kp"]) == {"meta-kp": "OK"}
    finally:
        admin.close()
    b.kill9()
    b.start()
    assert committed_offsets(b.bootstrap, "meta-kp") == {}
    assert committed_offsets(b.bootstrap, "meta-cf") == {(topic, 0): (7, "cf-meta-é\x00"), (topic, 1): (9, "")}
