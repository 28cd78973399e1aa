"""Consumer groups: what `kafka-consumer-groups` does, through three admin clients.

List groups (with a state filter), describe them (members, client ids and hosts,
assignments, assignor), read committed offsets and compute the lag per partition; reset and
alter offsets of an empty group (and be refused for an active one), delete offsets
(OffsetDelete; refused for a topic the group consumes) and delete groups (refused while the
group has members).
"""
from __future__ import annotations

import time

import pytest
from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from kafka import TopicPartition as KTP
from kafka.admin import OffsetSpec
from kafka.structs import OffsetAndMetadata

from kclients import cf_admin, cf_watermarks, kp_admin
from rivulet_harness import node_script
from test_groups_support import (FAST_GROUPS, all_partitions, close_all, create_topic, drain, ends_of, gtopic,
                                 produce_values, spawn, wait_assignment, wait_committed, wait_records)

__all__ = ["spawn", "gtopic"]  # fixtures
BROKER_OVERRIDES = dict(FAST_GROUPS)
P = 6


def js_group_admin(bootstrap: str, ops: list) -> list:
    return node_script("group_admin", {"brokers": [bootstrap], "ops": ops}, timeout=60)


def cf_commit_standalone(bootstrap: str, group: str, offsets: dict) -> None:
    """Offsets committed outside the group protocol (generation -1), as a simple consumer."""
    admin = cf_admin(bootstrap)
    tps = [TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())]
    f = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, tps)])[group]
    res = f.result(timeout=30)
    assert all(tp.error is None for tp in res.topic_partitions), res.topic_partitions


@pytest.fixture
def active_and_empty_group(broker, spawn, gtopic):
    """A Stable group of three confluent members that has consumed and committed 10 records per
    partition, and an Empty group (offsets committed at 4) on the same topic."""
    topic = gtopic
    active, idle = f"active-{topic}", f"idle-{topic}"
    create_topic(broker.bootstrap, topic, P)
    members = [spawn("cf", broker.bootstrap, active, [topic], f"cf-admin-{i}") for i in range(3)]
    owned = wait_assignment(members, all_partitions(topic, P), per_member=[2, 2, 2], timeout=40)
    records = produce_values(broker.bootstrap, topic, P, 10)
    wait_records(members, records)
    wait_committed(members, ends_of(records))
    cf_commit_standalone(broker.bootstrap, idle, {tp: 4 for tp in all_partitions(topic, P)})
    yield topic, active, idle, members, owned
    close_all(members)


def test_confluent_admin_lists_and_describes_groups_with_their_lag(broker, active_and_empty_group):
    topic, active, idle, members, owned = active_and_empty_group
    admin = cf_admin(broker.bootstrap)
    listed = {g.group_id: g for g in admin.list_consumer_groups(request_timeout=20).result().valid}
    assert listed[active].state == ConsumerGroupState.STABLE and not listed[active].is_simple_consumer_group
    assert listed[idle].state == ConsumerGroupState.EMPTY and listed[idle].is_simple_consumer_group
    empty_only = {g.group_id for g in admin.list_consumer_groups(states={ConsumerGroupState.EMPTY}).result().valid}
    assert idle in empty_only and active not in empty_only

    desc = admin.describe_consumer_groups([active, idle], request_timeout=20)
    d = desc[active].result()
    assert (d.state, d.partition_assignor, d.is_simple_consumer_group) == (ConsumerGroupState.STABLE, "range", False)
    assert d.coordinator.id == 1
    got = {m.client_id: sorted((tp.topic, tp.partition) for tp in m.assignment.topic_partitions) for m in d.members}
    assert got == {name: sorted(tps) for name, tps in owned.items()}
    assert all(m.host == "/127.0.0.1" and m.member_id.startswith(m.client_id + "-") for m in d.members)
    e = desc[idle].result()
    assert (e.state, e.members) == (ConsumerGroupState.EMPTY, [])

    # committed offsets and the lag (high watermark - committed), as kafka-consumer-groups shows
    produce_values(broker.bootstrap, topic, P, 3, tag="late")  # hwm 13 now; the active group catches up
    lag = {}
    for group in (active, idle):
        res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result()
        for tp in res.topic_partitions:
            lag[(group, tp.partition)] = cf_watermarks(broker.bootstrap, topic, tp.partition)[1] - tp.offset
    assert {k: v for k, v in lag.items() if k[0] == idle} == {(idle, p): 13 - 4 for p in range(P)}
    for p in range(P):
        assert lag[(active, p)] in (0, 3)  # the members may not have consumed the late records yet


def test_kafka_python_admin_lists_and_describes_groups_and_offsets(broker, active_and_empty_group):
    topic, active, idle, members, owned = active_and_empty_group
    admin = kp_admin(broker.bootstrap)
    try:
        listed = {g["group_id"]: g for g in admin.list_groups()}
        assert (listed[active]["group_state"], listed[active]["protocol_type"]) == ("Stable", "consumer")
        assert (listed[idle]["group_state"], listed[idle]["protocol_type"]) == ("Empty", "")
        stable = {g["group_id"] for g in admin.list_groups(states_filter=["Stable"])}
        assert active in stable and idle not in stable
        d = admin.describe_groups([active, idle])
        a = d[active]
        assert (a["error"], a["group_state"], a["protocol_type"], a["protocol_data"]) == (None, "Stable", "consumer", "range")
        got = {}
        for m in a["members"]:
            assert m["client_host"] == "/127.0.0.1" and m["member_metadata"]["topics"] == [topic]
            got[m["client_id"]] = sorted((t["topic"], p) for t in m["member_assignment"]["assigned_partitions"]
                                         for p in t["partitions"])
        assert got == {name: sorted(tps) for name, tps in owned.items()}
        assert (d[idle]["group_state"], d[idle]["members"]) == ("Empty", [])
        # one OffsetFetch v8 for both groups
        offsets = admin.list_group_offsets({active: None, idle: None})
        assert {(tp.partition, om.offset) for tp, om in offsets[active].items()} == {(p, 10) for p in range(P)}
        assert {(tp.partition, om.offset) for tp, om in offsets[idle].items()} == {(p, 4) for p in range(P)}
        # DescribeGroups v6 of an unknown group: GROUP_ID_NOT_FOUND
        assert "GroupIdNotFound" in admin.describe_groups(["no-such-group"])["no-such-group"]["error"]
    finally:
        admin.close()


def test_kafkajs_admin_lists_and_describes_groups_and_offsets(broker, active_and_empty_group):
    topic, active, idle, members, owned = active_and_empty_group
    listed, described, fetched_active, fetched_idle = js_group_admin(broker.bootstrap, [
        {"op": "listGroups"},
        {"op": "describeGroups", "groupIds": [active, idle]},
        {"op": "fetchOffsets", "groupId": active, "topics": [topic]},
        {"op": "fetchOffsets", "groupId": idle, "topics": [topic]},
    ])
    assert all(r["ok"] for r in (listed, described, fetched_active, fetched_idle)), (listed, described)
    groups = {g["groupId"]: g["protocolType"] for g in listed["result"]["groups"]}
    assert groups[active] == "consumer" and groups[idle] == ""
    by_id = {g["groupId"]: g for g in described["result"]["groups"]}
    a = by_id[active]
    assert (a["state"], a["protocol"], a["protocolType"], a["errorCode"]) == ("Stable", "range", "consumer", 0)
    got = {m["clientId"]: sorted((t, p) for t, ps in m["assignment"].items() for p in ps) for m in a["members"]}
    assert got == {name: sorted(tps) for name, tps in owned.items()}
    assert all(m["subscription"] == [topic] and m["clientHost"] == "/127.0.0.1" for m in a["members"])
    assert (by_id[idle]["state"], by_id[idle]["members"]) == ("Empty", [])
    offs = {int(p["partition"]): int(p["offset"]) for t in fetched_active["result"] for p in t["partitions"]}
    assert offs == {p: 10 for p in range(P)}
    offs = {int(p["partition"]): int(p["offset"]) for t in fetched_idle["result"] for p in t["partitions"]}
    assert offs == {p: 4 for p in range(P)}


def test_admins_reset_alter_and_delete_offsets_and_groups(broker, spawn, active_and_empty_group):
    topic, active, idle, members, owned = active_and_empty_group
    cf = cf_admin(broker.bootstrap)

    # An active group's offsets cannot be altered (Kafka: UNKNOWN_MEMBER_ID), nor the group deleted.
    f = cf.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(active, [TopicPartition(topic, 0, 1)])])[active]
    assert [tp.error.code() for tp in f.result(timeout=30).topic_partitions] == [25]  # UNKNOWN_MEMBER_ID
    with pytest.raises(KafkaException) as exc:
        cf.delete_consumer_groups([active], request_timeout=20)[active].result(timeout=30)
    assert exc.value.args[0].code() == 68  # NON_EMPTY_GROUP

    # confluent: alter the empty group's offsets
    cf_commit_standalone(broker.bootstrap, idle, {(topic, 0): 1, (topic, 1): 2})
    # kafka-python: reset to earliest / latest / an explicit offset (clamped to the log)
    kp = kp_admin(broker.bootstrap)
    try:
        res = kp.reset_group_offsets(idle, {KTP(topic, 2): OffsetSpec.EARLIEST, KTP(topic, 3): OffsetSpec.LATEST,
                                            KTP(topic, 4): 7, KTP(topic, 5): 99})
        assert {tp.partition: (r["error"].__name__, r["offset"]) for tp, r in res.items()} == {
            2: ("NoError", 0), 3: ("NoError", 10), 4: ("NoError", 7), 5: ("NoError", 10)}
        assert kp.alter_group_offsets(active, {KTP(topic, 0): OffsetAndMetadata(0, "", -1)}) == \
            {KTP(topic, 0): __import__("kafka.errors").errors.UnknownMemberIdError}
        offsets = kp.list_group_offsets(idle)[idle]
        assert {tp.partition: om.offset for tp, om in offsets.items()} == {0: 1, 1: 2, 2: 0, 3: 10, 4: 7, 5: 10}
        # OffsetDelete: refused for a topic the active group consumes; done for the empty group
        res = kp.delete_group_offsets(active, [KTP(topic, 0)])
        assert res == {KTP(topic, 0): __import__("kafka.errors").errors.GroupSubscribedToTopicError}
        assert kp.delete_group_offsets(idle, [KTP(topic, 5), KTP(topic, 4)]) == {
            KTP(topic, 5): __import__("kafka.errors").errors.NoError, KTP(topic, 4): __import__("kafka.errors").errors.NoError}
        offsets = kp.list_group_offsets(idle)[idle]
        assert {tp.partition: om.offset for tp, om in offsets.items()} == {0: 1, 1: 2, 2: 0, 3: 10}
    finally:
        kp.close()

    # kafkajs: set offsets, then reset a topic to the earliest
    r = js_group_admin(broker.bootstrap, [
        {"op": "setOffsets", "groupId": idle, "topic": topic, "partitions": [{"partition": 3, "offset": 8}]},
        {"op": "fetchOffsets", "groupId": idle, "topics": [topic]},
    ])
    assert r[0]["ok"], r
    offs = {int(p["partition"]): int(p["offset"]) for t in r[1]["result"] for p in t["partitions"]}
    assert offs == {0: 1, 1: 2, 2: 0, 3: 8, 4: -1, 5: -1}

    # A member of the reset group resumes from the new offsets.
    m = spawn("kp", broker.bootstrap, idle, [topic], "kp-resumes")
    wait_assignment([m], all_partitions(topic, P), timeout=30)
    want = {(topic, 0, o) for o in range(1, 10)} | {(topic, 1, o) for o in range(2, 10)} | \
        {(topic, 2, o) for o in range(10)} | {(topic, 3, 8), (topic, 3, 9)} | \
        {(topic, 4, o) for o in range(10)} | {(topic, 5, o) for o in range(10)}  # 4, 5: no offset -> earliest
    wait_records([m], want)
    markers = drain(broker.bootstrap, [m], topic, P)
    assert sorted((e["t"], e["p"], e["o"]) for e in m.records()) == sorted(want | markers)
    wait_committed([m], {(topic, p): 10 for p in range(P)})
    m.close()

    # DeleteGroups: the empty group and its offsets go; an unknown group is GROUP_ID_NOT_FOUND
    res = cf.delete_consumer_groups([idle, "no-such-group"], request_timeout=20)
    assert res[idle].result(timeout=30) is None
    with pytest.raises(KafkaException) as exc:
        res["no-such-group"].result(timeout=30)
    assert exc.value.args[0].code() == 69  # GROUP_ID_NOT_FOUND
    assert idle not in {g.group_id for g in cf.list_consumer_groups().result().valid}
    gone = cf.list_consumer_group_offsets([ConsumerGroupTopicPartitions(idle, [TopicPartition(topic, 0)])])[idle].result()
    assert [tp.offset for tp in gone.topic_partitions] == [-1001]  # OFFSET_INVALID: nothing committed

    # kafkajs and kafka-python delete groups too, once their members are gone
    close_all(members)
    r = js_group_admin(broker.bootstrap, [{"op": "deleteGroups", "groupIds": [active]}])
    assert r[0]["ok"], r
    kp = kp_admin(broker.bootstrap)
    try:
        assert kp.delete_groups([active]) == {active: "GroupIdNotFoundError"}
    finally:
        kp.close()
