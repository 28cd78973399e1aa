"""Consumer groups on the wire: every version of the group APIs and Kafka's error codes.

Requests are encoded and responses decoded by kafka-python's generated protocol classes
(`Raw`), so each test states exactly what a client sends and what the broker answers:
FindCoordinator (single and batched keys), JoinGroup v0-v9 (MEMBER_ID_REQUIRED only from v4),
SyncGroup, Heartbeat, LeaveGroup (single and batched), OffsetCommit/OffsetFetch, ListGroups
(state and type filters), DescribeGroups, DeleteGroups, OffsetDelete; session and rebalance
timeouts, the initial rebalance delay, group.max.size, static-member fencing.
"""
from __future__ import annotations

import threading
import time

import pytest
from kafka.protocol.admin.groups import DeleteGroupsRequest, DescribeGroupsRequest, ListGroupsRequest
from kafka.protocol.consumer.group import (HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest,
                                           OffsetDeleteRequest, OffsetFetchRequest, SyncGroupRequest)
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest

from test_groups_support import FAST_GROUPS, Raw, consumer_assignment, consumer_subscription, create_topic

BROKER_OVERRIDES = dict(FAST_GROUPS)


@pytest.fixture(scope="module", autouse=True)
def _committed_topic(broker):
    """The topic the raw OffsetCommits name: Kafka answers UNKNOWN_TOPIC_OR_PARTITION to a
    commit for a topic that does not exist, and stores nothing."""
    create_topic(broker.bootstrap, "t", 2)

NONE, ILLEGAL_GENERATION, INCONSISTENT_GROUP_PROTOCOL, INVALID_GROUP_ID = 0, 22, 23, 24
UNKNOWN_MEMBER_ID, INVALID_SESSION_TIMEOUT, REBALANCE_IN_PROGRESS = 25, 26, 27
COORDINATOR_NOT_AVAILABLE, NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND = 15, 68, 69
GROUP_SUBSCRIBED_TO_TOPIC, MEMBER_ID_REQUIRED, GROUP_MAX_SIZE_REACHED, FENCED_INSTANCE_ID = 86, 79, 81, 82
UNKNOWN_TOPIC_OR_PARTITION = 3

SUB = consumer_subscription(["t"])
_n = iter(range(1 << 30))


def gid(prefix="g") -> str:
    return f"{prefix}-{next(_n)}"


def sync_version(join_version: int) -> int:
    return min(join_version, 5)


class Member:
    """A raw group member on its own connection (JoinGroup and SyncGroup block)."""

    def __init__(self, bootstrap, group, instance=None, session=10000, rebalance=10000, version=9,
                 protocols=None, protocol_type="consumer"):
        self.raw = Raw(bootstrap)
        self.group, self.instance, self.version = group, instance, version
        self.session, self.rebalance = session, rebalance
        self.protocols = protocols or [("range", SUB)]
        self.protocol_type = protocol_type
        self.member_id, self.generation, self.leader, self.members = "", -1, None, []

    def send_join(self):
        kw = dict(group_id=self.group, session_timeout_ms=self.session, member_id=self.member_id,
                  protocol_type=self.protocol_type,
                  protocols=[{"name": n, "metadata": m} for n, m in self.protocols])
        if self.version >= 1:
            kw["rebalance_timeout_ms"] = self.rebalance
        if self.version >= 5:
            kw["group_instance_id"] = self.instance
        self.raw.send(JoinGroupRequest, self.version, **kw)

    def recv_join(self):
        r = self.raw.recv()
        if r.error_code in (NONE, MEMBER_ID_REQUIRED):
            self.member_id = r.member_id
        if r.error_code == NONE:
            self.generation, self.leader, self.members = r.generation_id, r.leader, r.members
        return r

    def join(self):
        """Join, answering MEMBER_ID_REQUIRED; blocks until the join phase completes."""
        self.send_join()
        r = self.recv_join()
        if r.error_code == MEMBER_ID_REQUIRED:
            self.send_join()
            r = self.recv_join()
        return r

    def send_sync(self, assignments=None, generation=None):
        kw = dict(group_id=self.group, generation_id=self.generation if generation is None else generation,
                  member_id=self.member_id,
                  assignments=[{"member_id": m, "assignment": a} for m, a in (assignments or {}).items()])
        v = sync_version(self.version)
        if v >= 3:
            kw["group_instance_id"] = self.instance
        if v >= 5:
            kw["protocol_type"], kw["protocol_name"] = self.protocol_type, "range"
        self.raw.send(SyncGroupRequest, v, **kw)

    def sync(self, assignments=None, generation=None):
        self.send_sync(assignments, generation)
        return self.raw.recv()

    def heartbeat(self, generation=None, member_id=None):
        kw = dict(group_id=self.group, generation_id=self.generation if generation is None else generation,
                  member_id=self.member_id if member_id is None else member_id)
        if self.version >= 5:
            kw["group_instance_id"] = self.instance
        return self.raw.call(HeartbeatRequest, 4 if self.version >= 5 else 2, **kw).error_code

    def commit(self, offset, generation=None, partition=0):
        return self.raw.call(OffsetCommitRequest, 8, group_id=self.group,
                             generation_id_or_member_epoch=self.generation if generation is None else generation,
                             member_id=self.member_id, group_instance_id=self.instance, topics=[
                                 {"name": "t", "partitions": [{"partition_index": partition, "committed_offset": offset}]}]
                             ).topics[0].partitions[0].error_code

    def leave(self):
        r = self.raw.call(LeaveGroupRequest, 5, group_id=self.group,
                          members=[{"member_id": self.member_id, "group_instance_id": self.instance}])
        return r.error_code, [m.error_code for m in r.members]

    def close(self):
        self.raw.close()


def stable_group(bootstrap, group, n, **kw):
    """n members joined at once (joins pipelined), leader synced: a Stable group."""
    members = [Member(bootstrap, group, **kw) for _ in range(n)]
    for m in members:  # get member ids first (v4+)
        if m.version >= 4 and m.instance is None:
            m.send_join()
            assert m.recv_join().error_code == MEMBER_ID_REQUIRED
    for m in members:
        m.send_join()
    for m in members:
        assert m.recv_join().error_code == NONE
    gens = {m.generation for m in members}
    assert len(gens) == 1, gens
    leader = next(m for m in members if m.member_id == m.leader)
    assignments = {m.member_id: consumer_assignment({"t": [i]}) for i, m in enumerate(members)}
    for m in members:
        if m is not leader:
            m.send_sync()
    leader.send_sync(assignments)
    for m in members:
        r = m.raw.recv()
        assert r.error_code == NONE and r.assignment == assignments[m.member_id]
    return members


def wait_state(bootstrap, group, state, timeout=5.0):
    deadline = time.monotonic() + timeout
    while describe(bootstrap, group).group_state != state:
        assert time.monotonic() < deadline, f"{group} never reached {state}"
        time.sleep(0.02)


def describe(bootstrap, group, version=5):
    with Raw(bootstrap) as raw:
        return raw.call(DescribeGroupsRequest, version, groups=[group], include_authorized_operations=False).groups[0]


# ---------------------------------------------------------------------------- FindCoordinator

def test_find_coordinator_single_key_and_batched(broker):
    with Raw(broker.bootstrap) as raw:
        for v in range(0, 4):
            kw = {"key": "some-group"}
            if v >= 1:
                kw["key_type"] = 0
            r = raw.call(FindCoordinatorRequest, v, **kw)
            assert (r.error_code, r.node_id, r.host, r.port) == (0, 1, "127.0.0.1", broker.port), (v, r)
        for v in range(4, 7):
            r = raw.call(FindCoordinatorRequest, v, key_type=0, coordinator_keys=["a", "b", "c"])
            assert [(c.key, c.error_code, c.node_id, c.port) for c in r.coordinators] == \
                [(k, 0, 1, broker.port) for k in "abc"], (v, r)
        # transactional ids (key type 1) are coordinated here too; an unknown type is refused
        r = raw.call(FindCoordinatorRequest, 4, key_type=1, coordinator_keys=["tx"])
        assert [(c.error_code, c.node_id) for c in r.coordinators] == [(0, 1)]
        r = raw.call(FindCoordinatorRequest, 4, key_type=7, coordinator_keys=["x"])
        assert r.coordinators[0].error_code == 42  # INVALID_REQUEST


# ---------------------------------------------------------------------------- JoinGroup / SyncGroup

@pytest.mark.parametrize("version", range(0, 10))
def test_join_sync_heartbeat_leave_in_every_join_version(broker, version):
    group = gid()
    m = Member(broker.bootstrap, group, version=version)
    m.send_join()
    first = m.recv_join()
    if version >= 4:
        assert first.error_code == MEMBER_ID_REQUIRED and first.member_id.startswith("rivulet-groups-raw-"), first
        assert first.generation_id == -1
        if version >= 7:
            assert first.protocol_name is None, "Kafka sends a null protocol name from v7"
        m.send_join()
        first = m.recv_join()
    assert first.error_code == NONE, first
    assert (first.generation_id, first.leader, first.protocol_name) == (1, m.member_id, "range")
    assert [(x.member_id, x.metadata) for x in first.members] == [(m.member_id, SUB)]
    if version >= 7:
        assert first.protocol_type == "consumer"
    r = m.sync({m.member_id: consumer_assignment({"t": [0, 1]})})
    assert (r.error_code, r.assignment) == (NONE, consumer_assignment({"t": [0, 1]}))
    assert m.heartbeat() == NONE
    assert m.commit(5) == NONE
    d = describe(broker.bootstrap, group)
    assert (d.group_state, d.protocol_data, len(d.members)) == ("Stable", "range", 1)
    # leave with the version that matches the client's era
    with Raw(broker.bootstrap) as raw:
        if version < 5:
            r = raw.call(LeaveGroupRequest, min(version, 2), group_id=group, member_id=m.member_id)
            assert r.error_code == NONE
        else:
            r = raw.call(LeaveGroupRequest, 3, group_id=group, members=[{"member_id": m.member_id}])
            assert (r.error_code, [x.error_code for x in r.members]) == (NONE, [NONE])
    assert describe(broker.bootstrap, group).group_state == "Empty"
    m.close()


def test_join_v0_uses_the_session_timeout_as_the_rebalance_timeout(broker):
    group = gid()
    a = Member(broker.bootstrap, group, version=0, session=1500)
    b = Member(broker.bootstrap, group, version=0, session=1500)
    a.join()
    a.sync({a.member_id: b""})
    b.send_join()  # a must rejoin within its rebalance timeout = its session timeout (1.5 s)
    t0 = time.monotonic()
    r = b.recv_join()
    waited = time.monotonic() - t0
    assert r.error_code == NONE and [x.member_id for x in r.members] == [b.member_id], r
    assert 1.2 < waited < 3.0, waited


def test_bad_joins_get_kafkas_error_codes(broker):
    group = gid()
    with Raw(broker.bootstrap) as raw:
        def join(**kw):
            base = dict(group_id=group, session_timeout_ms=10000, rebalance_timeout_ms=10000, member_id="",
                        group_instance_id=None, protocol_type="consumer",
                        protocols=[{"name": "range", "metadata": SUB}])
            base.update(kw)
            return raw.call(JoinGroupRequest, 7, **base)
        assert join(group_id="").error_code == INVALID_GROUP_ID
        assert join(session_timeout_ms=100).error_code == INVALID_SESSION_TIMEOUT       # < group.min.session.timeout.ms
        assert join(session_timeout_ms=1_900_000).error_code == INVALID_SESSION_TIMEOUT  # > group.max.session.timeout.ms
        assert join(member_id="made-up").error_code == UNKNOWN_MEMBER_ID
        assert join(protocol_type="").error_code == INCONSISTENT_GROUP_PROTOCOL
        assert join(protocols=[]).error_code == INCONSISTENT_GROUP_PROTOCOL
    members = stable_group(broker.bootstrap, group, 1)
    with Raw(broker.bootstrap) as raw:
        for kw in ({"protocol_type": "connect"}, {"protocols": [{"name": "roundrobin", "metadata": SUB}]}):
            base = dict(group_id=group, session_timeout_ms=10000, rebalance_timeout_ms=10000, member_id="",
                        group_instance_id=None, protocol_type="consumer",
                        protocols=[{"name": "range", "metadata": SUB}])
            base.update(kw)
            r = raw.call(JoinGroupRequest, 7, **base)
            assert r.error_code == INCONSISTENT_GROUP_PROTOCOL, (kw, r)
    # the group is untouched
    assert describe(broker.bootstrap, group).group_state == "Stable"
    for m in members:
        m.close()


def test_stale_generations_unknown_members_and_rebalances_are_answered_with_kafkas_codes(broker):
    group = gid()
    a, b = stable_group(broker.bootstrap, group, 2)
    g = a.generation
    assert a.heartbeat(generation=g - 1) == ILLEGAL_GENERATION
    assert a.heartbeat(member_id="ghost") == UNKNOWN_MEMBER_ID
    assert a.sync(generation=g + 1).error_code == ILLEGAL_GENERATION
    assert a.commit(1, generation=g - 1) == ILLEGAL_GENERATION
    with Raw(broker.bootstrap) as raw:
        r = raw.call(SyncGroupRequest, 5, group_id="no-such-group", generation_id=1, member_id="x",
                     group_instance_id=None, protocol_type="consumer", protocol_name="range", assignments=[])
        assert r.error_code == UNKNOWN_MEMBER_ID
        r = raw.call(SyncGroupRequest, 5, group_id=group, generation_id=g, member_id=a.member_id,
                     group_instance_id=None, protocol_type="consumer", protocol_name="roundrobin", assignments=[])
        assert r.error_code == INCONSISTENT_GROUP_PROTOCOL
    # a new member starts a rebalance: the others learn it from their heartbeats
    c = Member(broker.bootstrap, group)
    c.send_join()
    assert c.recv_join().error_code == MEMBER_ID_REQUIRED
    c.send_join()
    wait_state(broker.bootstrap, group, "PreparingRebalance")
    assert a.heartbeat() == REBALANCE_IN_PROGRESS
    assert describe(broker.bootstrap, group).group_state == "PreparingRebalance"
    # commits are still accepted from the current generation while preparing (Kafka does too)
    assert a.commit(2) == NONE
    assert a.sync().error_code == REBALANCE_IN_PROGRESS
    a.send_join()
    b.send_join()
    for m in (a, b, c):
        r = m.recv_join()
        assert (r.error_code, r.generation_id) == (NONE, g + 1)
    # members of the new generation: commits wait for the sync (REBALANCE_IN_PROGRESS),
    # the old generation is fenced
    assert describe(broker.bootstrap, group).group_state == "CompletingRebalance"
    assert b.commit(3) == REBALANCE_IN_PROGRESS
    assert b.heartbeat() == NONE
    assert b.heartbeat(generation=g) == ILLEGAL_GENERATION
    assert b.commit(3, generation=g) == ILLEGAL_GENERATION
    for m in (a, b, c):
        m.close()


def test_static_members_are_fenced_by_their_replacement(broker):
    group = gid()
    a, b = stable_group(broker.bootstrap, group, 2, instance=None)
    s = Member(broker.bootstrap, group, instance="inst-s")
    # a static member joins without MEMBER_ID_REQUIRED, and rebalances the group
    s.send_join()
    wait_state(broker.bootstrap, group, "PreparingRebalance")
    assert a.heartbeat() == REBALANCE_IN_PROGRESS
    for m in (a, b):
        m.send_join()
    for m in (a, b, s):
        assert m.recv_join().error_code == NONE
    leader = next(m for m in (a, b, s) if m.member_id == m.leader)
    for m in (a, b, s):
        if m is not leader:
            m.send_sync()
    leader.send_sync({a.member_id: b"A", b.member_id: b"B", s.member_id: b"S"})
    assert [m.raw.recv().assignment for m in (a, b, s)] == [b"A", b"B", b"S"]
    # s restarts: same instance id, new member id, same assignment, same generation
    s2 = Member(broker.bootstrap, group, instance="inst-s")
    r = s2.join()
    assert (r.error_code, r.generation_id) == (NONE, s.generation) and s2.member_id != s.member_id
    assert s2.sync().assignment == b"S"
    assert a.heartbeat() == NONE, "no rebalance"
    # the old incarnation is fenced everywhere
    assert s.heartbeat() == FENCED_INSTANCE_ID
    assert s.commit(1) == FENCED_INSTANCE_ID
    assert s.sync().error_code == FENCED_INSTANCE_ID
    r = s.raw.call(JoinGroupRequest, 7, group_id=group, session_timeout_ms=10000, rebalance_timeout_ms=10000,
                   member_id=s.member_id, group_instance_id="inst-s", protocol_type="consumer",
                   protocols=[{"name": "range", "metadata": SUB}])
    assert r.error_code == FENCED_INSTANCE_ID
    assert s.leave() == (NONE, [FENCED_INSTANCE_ID])
    assert s2.commit(1) == NONE
    for m in (a, b, s, s2):
        m.close()


def test_leave_group_single_and_batched_members(broker):
    group = gid()
    a, b, c = stable_group(broker.bootstrap, group, 3)
    s = Member(broker.bootstrap, group, instance="inst-leave")
    s.send_join()
    # (a join of a follower reaching a Stable group first would just get its current
    # generation back, as in Kafka: wait for the rebalance before the others rejoin)
    wait_state(broker.bootstrap, group, "PreparingRebalance")
    for m in (a, b, c):
        m.send_join()
    for m in (a, b, c, s):
        assert m.recv_join().error_code == NONE
    with Raw(broker.bootstrap) as raw:
        # v3+: several members at once, a static one by instance id alone (the admin's
        # removeMembersFromConsumerGroup), an unknown one
        r = raw.call(LeaveGroupRequest, 3, group_id=group, members=[
            {"member_id": a.member_id}, {"member_id": "", "group_instance_id": "inst-leave"},
            {"member_id": "ghost"}])
        assert r.error_code == NONE
        assert [(x.member_id, x.group_instance_id, x.error_code) for x in r.members] == [
            (a.member_id, None, NONE), ("", "inst-leave", NONE), ("ghost", None, UNKNOWN_MEMBER_ID)]
        # v0-2: one member; an unknown one is a top-level error
        assert raw.call(LeaveGroupRequest, 0, group_id=group, member_id=b.member_id).error_code == NONE
        assert raw.call(LeaveGroupRequest, 1, group_id=group, member_id="ghost").error_code == UNKNOWN_MEMBER_ID
        # an unknown group: Kafka answers per member
        r = raw.call(LeaveGroupRequest, 4, group_id="no-such-group", members=[{"member_id": "x"}])
        assert (r.error_code, [x.error_code for x in r.members]) == (NONE, [UNKNOWN_MEMBER_ID])
        assert raw.call(LeaveGroupRequest, 0, group_id="no-such-group", member_id="x").error_code == UNKNOWN_MEMBER_ID
    # c is the only one left: the rebalance completes around it
    assert a.heartbeat() == UNKNOWN_MEMBER_ID
    d = describe(broker.bootstrap, group)
    assert [m.member_id for m in d.members] == [c.member_id], d
    for m in (a, b, c, s):
        m.close()


# ---------------------------------------------------------------------------- timeouts

def test_a_member_that_does_not_rejoin_within_the_rebalance_timeout_is_dropped(broker):
    """max.poll.interval.ms is the rebalance timeout: a member stuck in processing (heartbeats
    alive, no rejoin) is removed when it passes."""
    group = gid()
    a, b = stable_group(broker.bootstrap, group, 2, session=30000, rebalance=1000)
    stop = threading.Event()

    def keep_b_alive():  # b heartbeats (its session is fine) but never rejoins
        while not stop.is_set():
            b.heartbeat()
            time.sleep(0.2)
    t = threading.Thread(target=keep_b_alive, daemon=True)
    t.start()
    a.protocols = [("range", consumer_subscription(["t", "u"]))]  # new subscription: rebalance
    t0 = time.monotonic()
    a.send_join()
    r = a.recv_join()
    waited = time.monotonic() - t0
    stop.set()
    t.join()
    assert r.error_code == NONE and [m.member_id for m in r.members] == [a.member_id], r
    assert 0.8 < waited < 2.5, waited
    assert b.heartbeat() == UNKNOWN_MEMBER_ID
    for m in (a, b):
        m.close()


def test_a_member_whose_session_expires_is_removed(broker):
    group = gid()
    a, b = stable_group(broker.bootstrap, group, 2, session=1000)
    t0 = time.monotonic()
    while a.heartbeat() == NONE:  # b never heartbeats
        assert time.monotonic() - t0 < 5, "b was never expired"
        time.sleep(0.1)
    expired_after = time.monotonic() - t0
    assert 0.7 < expired_after < 2.0, expired_after
    assert a.heartbeat() == REBALANCE_IN_PROGRESS
    r = a.join()
    assert r.error_code == NONE and [m.member_id for m in r.members] == [a.member_id]
    assert b.heartbeat() == UNKNOWN_MEMBER_ID
    for m in (a, b):
        m.close()


def test_the_initial_rebalance_delay_gathers_the_first_members_into_one_generation(broker_factory):
    b = broker_factory(overrides={"group.initial.rebalance.delay.ms": 1000})
    group = gid()
    members = [Member(b.bootstrap, group) for _ in range(3)]
    for m in members:
        m.send_join()
        assert m.recv_join().error_code == MEMBER_ID_REQUIRED
    t0 = time.monotonic()
    for m in members:
        m.send_join()
        time.sleep(0.4)  # each arrival pushes the end of the delay back (up to the rebalance timeout)
    answers = [m.recv_join() for m in members]
    waited = time.monotonic() - t0
    assert all(r.error_code == NONE and r.generation_id == 1 for r in answers), answers
    assert len(next(r for r in answers if r.members).members) == 3
    assert 1.6 < waited < 3.0, waited
    for m in members:
        m.close()


def test_group_max_size_refuses_extra_members(broker_factory):
    b = broker_factory(overrides=dict(FAST_GROUPS, **{"group.max.size": 2}))
    group = gid()
    members = stable_group(b.bootstrap, group, 2)
    extra = Member(b.bootstrap, group)
    r = extra.join()
    assert r.error_code == GROUP_MAX_SIZE_REACHED, r
    static = Member(b.bootstrap, group, instance="inst-x")
    assert static.join().error_code == GROUP_MAX_SIZE_REACHED
    assert members[0].heartbeat() == NONE, "the group is not disturbed"
    for m in members + [extra, static]:
        m.close()


# ---------------------------------------------------------------------------- admin APIs

def test_list_groups_filters_by_state_and_type(broker):
    empty, stable, preparing, completing = gid("empty"), gid("stable"), gid("preparing"), gid("completing")
    with Raw(broker.bootstrap) as raw:
        raw.call(OffsetCommitRequest, 8, group_id=empty, generation_id_or_member_epoch=-1, member_id="",
                 group_instance_id=None, topics=[{"name": "t", "partitions": [{"partition_index": 0, "committed_offset": 1}]}])
    s = stable_group(broker.bootstrap, stable, 1)
    p = stable_group(broker.bootstrap, preparing, 2, session=30000, rebalance=30000)
    p[0].protocols = [("range", consumer_subscription(["t", "x"]))]
    p[0].send_join()  # waits for p[1], which does not rejoin
    c = Member(broker.bootstrap, completing)
    c.join()  # joined, never synced
    wait_state(broker.bootstrap, preparing, "PreparingRebalance")
    ours = {empty, stable, preparing, completing}
    with Raw(broker.bootstrap) as raw:
        r = raw.call(ListGroupsRequest, 0)
        assert {(g.group_id, g.protocol_type) for g in r.groups if g.group_id in ours} == {
            (empty, ""), (stable, "consumer"), (preparing, "consumer"), (completing, "consumer")}
        r = raw.call(ListGroupsRequest, 4, states_filter=[])
        states = {g.group_id: g.group_state for g in r.groups if g.group_id in ours}
        assert states == {empty: "Empty", stable: "Stable", preparing: "PreparingRebalance",
                          completing: "CompletingRebalance"}
        for state, want in (("Stable", stable), ("preparingrebalance", preparing), ("CompletingRebalance", completing)):
            r = raw.call(ListGroupsRequest, 4, states_filter=[state])
            assert {g.group_id for g in r.groups} & ours == {want}, state
        r = raw.call(ListGroupsRequest, 4, states_filter=["Empty", "Stable"])
        assert {g.group_id for g in r.groups} & ours == {empty, stable}
        r = raw.call(ListGroupsRequest, 5, states_filter=[], types_filter=["classic"])
        assert {g.group_id for g in r.groups} & ours == ours and all(g.group_type == "classic" for g in r.groups)
        r = raw.call(ListGroupsRequest, 5, states_filter=[], types_filter=["consumer"])
        assert not {g.group_id for g in r.groups} & ours
    for m in s + p + [c]:
        m.close()


@pytest.mark.parametrize("version", range(0, 7))
def test_describe_groups_in_every_version(broker, version):
    group = gid()
    a, b = stable_group(broker.bootstrap, group, 2)
    with Raw(broker.bootstrap, client_id="describer") as raw:
        kw = {"groups": [group, "no-such-group"]}
        if version >= 3:
            kw["include_authorized_operations"] = True
        r = raw.call(DescribeGroupsRequest, version, **kw)
    g, missing = r.groups
    assert (g.error_code, g.group_state, g.protocol_type, g.protocol_data) == (NONE, "Stable", "consumer", "range")
    got = sorted((m.member_id, m.client_id, m.client_host, m.member_metadata, m.member_assignment) for m in g.members)
    want = sorted((m.member_id, "rivulet-groups-raw", "/127.0.0.1", SUB, consumer_assignment({"t": [i]}))
                  for i, m in enumerate((a, b)))
    assert [x[:4] for x in got] == [x[:4] for x in want]
    assert sorted(x[4] for x in got) == sorted(x[4] for x in want)
    if version >= 3:
        assert g.authorized_operations not in (0, -2147483648)
    if version >= 6:
        assert missing.error_code == GROUP_ID_NOT_FOUND
    else:
        assert (missing.error_code, missing.group_state, missing.members) == (NONE, "Dead", [])
    for m in (a, b):
        m.close()


def test_delete_groups_and_offset_delete_error_codes(broker):
    topic, other = gid("topic"), gid("other")
    create_topic(broker.bootstrap, topic, 2)
    create_topic(broker.bootstrap, other, 1)
    active, idle = gid("active"), gid("idle")
    members = stable_group(broker.bootstrap, active, 1, protocols=[("range", consumer_subscription([topic]))])
    with Raw(broker.bootstrap) as raw:
        for g in (active, idle):
            gen, mid = (members[0].generation, members[0].member_id) if g == active else (-1, "")
            r = raw.call(OffsetCommitRequest, 8, group_id=g, generation_id_or_member_epoch=gen, member_id=mid,
                         group_instance_id=None, topics=[
                             {"name": topic, "partitions": [{"partition_index": 0, "committed_offset": 1}]},
                             {"name": other, "partitions": [{"partition_index": 0, "committed_offset": 2}]}])
            assert [p.error_code for t in r.topics for p in t.partitions] == [NONE, NONE]
        r = raw.call(OffsetDeleteRequest, 0, group_id=active, topics=[
            {"name": topic, "partitions": [{"partition_index": 0}]},
            {"name": other, "partitions": [{"partition_index": 0}]}])
        assert (r.error_code, [(t.name, p.error_code) for t in r.topics for p in t.partitions]) == \
            (NONE, [(topic, GROUP_SUBSCRIBED_TO_TOPIC), (other, NONE)])
        # As Kafka's KafkaApis: a partition the cluster does not have is
        # UNKNOWN_TOPIC_OR_PARTITION, never reported deleted.
        r = raw.call(OffsetDeleteRequest, 0, group_id=idle, topics=[
            {"name": other, "partitions": [{"partition_index": 0}, {"partition_index": 7}]},
            {"name": "no-such-topic", "partitions": [{"partition_index": 0}]}])
        assert (r.error_code, [(t.name, p.partition_index, p.error_code) for t in r.topics for p in t.partitions]) == \
            (NONE, [(other, 0, NONE), (other, 7, UNKNOWN_TOPIC_OR_PARTITION),
                    ("no-such-topic", 0, UNKNOWN_TOPIC_OR_PARTITION)])
        r = raw.call(OffsetDeleteRequest, 0, group_id="no-such-group", topics=[
            {"name": topic, "partitions": [{"partition_index": 0}]}])
        assert r.error_code == GROUP_ID_NOT_FOUND
        r = raw.call(OffsetFetchRequest, 8, groups=[{"group_id": active, "topics": None}], require_stable=False)
        assert [(t.name, p.committed_offset) for t in r.groups[0].topics for p in t.partitions] == [(topic, 1)]
        for v in (0, 1, 2):
            r = raw.call(DeleteGroupsRequest, v, groups_names=[active, idle, "no-such-group"])
            assert [(x.group_id, x.error_code) for x in r.results] == [
                (active, NON_EMPTY_GROUP), (idle, NONE if v == 0 else GROUP_ID_NOT_FOUND), ("no-such-group", GROUP_ID_NOT_FOUND)]
    members[0].close()


def test_offset_commit_limits_and_standalone_commits(broker):
    group = gid("solo")
    with Raw(broker.bootstrap) as raw:
        def commit(gen, member, metadata, version=8):
            return raw.call(OffsetCommitRequest, version, group_id=group, generation_id_or_member_epoch=gen,
                            member_id=member, group_instance_id=None, topics=[{"name": "t", "partitions": [
                                {"partition_index": 0, "committed_offset": 3, "committed_metadata": metadata},
                                {"partition_index": 1, "committed_offset": 4, "committed_metadata": "ok"}]}]
                            ).topics[0].partitions
        # offset.metadata.max.bytes (4096): that partition only is refused
        assert [p.error_code for p in commit(-1, "", "x" * 4097)] == [12, NONE]  # OFFSET_METADATA_TOO_LARGE
        assert [p.error_code for p in commit(-1, "", "x" * 4096)] == [NONE, NONE]
        # a standalone group (no members) takes commits with generation -1 only
        assert [p.error_code for p in commit(3, "", None)] == [UNKNOWN_MEMBER_ID] * 2
        assert [p.error_code for p in commit(-1, "someone", None)] == [NONE, NONE]
        r = raw.call(OffsetFetchRequest, 1, group_id=group, topics=[{"name": "t", "partition_indexes": [0, 1]}])
        assert [(p.committed_offset, p.metadata) for p in r.topics[0].partitions] == [(3, ""), (4, "ok")]
        # an unknown group refuses a generation it cannot know of
        r = raw.call(OffsetCommitRequest, 8, group_id=gid("never"), generation_id_or_member_epoch=1, member_id="m",
                     group_instance_id=None, topics=[{"name": "t", "partitions": [{"partition_index": 0, "committed_offset": 1}]}])
        assert r.topics[0].partitions[0].error_code == ILLEGAL_GENERATION
        assert describe(broker.bootstrap, group).group_state == "Empty"
