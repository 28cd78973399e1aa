"""Consumer groups under concurrent load, on the wire.

Many groups, each with several members (one thread and one connection each, speaking the
protocol as a client does), join, sync, heartbeat, commit, leave, go silent until expired and
come back, all at once. Checked: every assignment a member receives is the one its
generation's leader made, for that member and that generation (so no two members ever own a
partition in one generation, and no generation completes twice); members only ever move to
newer generations; commits are accepted only from the current generation; and when the churn
stops, every group settles into a Stable generation of exactly its live members (no wedged
group, no lost JoinGroup/SyncGroup answer).
"""
from __future__ import annotations

import random
import threading
import time
from collections import defaultdict

from kafka.protocol.admin.groups import DescribeGroupsRequest
from kafka.protocol.consumer.group import (HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
                                           OffsetCommitRequest, SyncGroupRequest)

import pytest

from test_groups_support import FAST_GROUPS, Raw, create_topic

BROKER_OVERRIDES = dict(FAST_GROUPS)
GROUPS, MEMBERS, PARTITIONS = 12, 4, 8

@pytest.fixture(scope="module", autouse=True)
def _committed_topic(broker):
    """The topic the raw OffsetCommits name: Kafka answers UNKNOWN_TOPIC_OR_PARTITION to a
    commit for a topic that does not exist, and stores nothing."""
    create_topic(broker.bootstrap, "t", MEMBERS)

CHURN_S = 8.0
SESSION_MS = 1000

NONE, ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS, MEMBER_ID_REQUIRED = 0, 22, 25, 27, 79


class StressMember(threading.Thread):
    def __init__(self, bootstrap, group, index, seed, log, stop, settle):
        super().__init__(daemon=True)
        self.bootstrap, self.group, self.index = bootstrap, group, index
        self.rng = random.Random(seed)
        self.log, self.stop_churn, self.settle = log, stop, settle
        self.member_id, self.generation = "", -1
        self.synced_generation = -1
        self.gone = False        # left or silent at the end: not expected in the final group
        self.errors: list = []
        self.generations: list = []

    # -- protocol
    def join_group(self, raw):
        while True:
            r = raw.call(JoinGroupRequest, 5, group_id=self.group, session_timeout_ms=SESSION_MS,
                         rebalance_timeout_ms=3000, member_id=self.member_id, group_instance_id=None,
                         protocol_type="stress", protocols=[{"name": "rr", "metadata": b"m"}])
            if r.error_code == MEMBER_ID_REQUIRED:
                self.member_id = r.member_id
                continue
            if r.error_code == UNKNOWN_MEMBER_ID:
                self.member_id = ""
                continue
            if r.error_code != NONE:
                self.errors.append(("join", r.error_code))
                time.sleep(0.05)
                continue
            return r

    def sync_group(self, raw, r):
        self.generation = r.generation_id
        assignments = []
        if r.leader == self.member_id:
            nonce = f"{self.group}/{r.generation_id}/{self.member_id}/{time.monotonic_ns()}"
            ids = sorted(m.member_id for m in r.members)
            for i, mid in enumerate(ids):
                parts = [p for p in range(PARTITIONS) if p % len(ids) == i]
                assignments.append({"member_id": mid, "assignment":
                                    f"{r.generation_id}|{mid}|{nonce}|{','.join(map(str, parts))}".encode()})
        s = raw.call(SyncGroupRequest, 3, group_id=self.group, generation_id=r.generation_id,
                     member_id=self.member_id, group_instance_id=None, assignments=assignments)
        if s.error_code == NONE:
            self.log.append((self.group, r.generation_id, self.member_id, s.assignment))
            self.synced_generation = r.generation_id
            self.generations.append(r.generation_id)
        return s.error_code

    def heartbeat(self, raw):
        return raw.call(HeartbeatRequest, 3, group_id=self.group, generation_id=self.generation,
                        member_id=self.member_id, group_instance_id=None).error_code

    def commit(self, raw):
        r = raw.call(OffsetCommitRequest, 7, group_id=self.group, generation_id_or_member_epoch=self.generation,
                     member_id=self.member_id, group_instance_id=None,
                     topics=[{"name": "t", "partitions": [{"partition_index": self.index, "committed_offset": 1}]}])
        return r.topics[0].partitions[0].error_code

    # -- behaviour
    def run(self):
        try:
            self._run()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(("exception", repr(exc)))

    def _run(self):
        raw = Raw(self.bootstrap, timeout=30)
        try:
            while not self.settle.is_set():
                r = self.join_group(raw)
                code = self.sync_group(raw, r)
                if code == UNKNOWN_MEMBER_ID:
                    self.member_id = ""
                if code != NONE:
                    continue
                while not self.settle.is_set():
                    time.sleep(0.1)
                    code = self.heartbeat(raw)
                    if code == UNKNOWN_MEMBER_ID:
                        self.member_id = ""
                    if code != NONE:
                        break
                    roll = self.rng.random() if not self.stop_churn.is_set() else 1.0
                    if roll < 0.03:  # leave, come back a little later
                        raw.call(LeaveGroupRequest, 3, group_id=self.group,
                                 members=[{"member_id": self.member_id}])
                        self.member_id = ""
                        time.sleep(self.rng.uniform(0, 0.3))
                        break
                    if roll < 0.05:  # go silent past the session timeout (a GC pause, a crash)
                        time.sleep(SESSION_MS / 1000 * 1.5)
                        break
                    if roll < 0.25:
                        code = self.commit(raw)
                        if code not in (NONE, REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID):
                            self.errors.append(("commit", code))
        finally:
            raw.close()


def describe_all(bootstrap, groups):
    with Raw(bootstrap) as raw:
        r = raw.call(DescribeGroupsRequest, 5, groups=list(groups), include_authorized_operations=False)
    return {g.group_id: g for g in r.groups}


def test_many_groups_and_members_churning_at_once_never_share_a_partition_nor_wedge(broker):
    log: list = []
    stop, settle = threading.Event(), threading.Event()
    groups = [f"stress-{i}" for i in range(GROUPS)]
    threads = [StressMember(broker.bootstrap, g, i, seed=gi * 100 + i, log=log, stop=stop, settle=settle)
               for gi, g in enumerate(groups) for i in range(MEMBERS)]
    for t in threads:
        t.start()
    time.sleep(CHURN_S)
    stop.set()  # no more leaving / going silent: the groups must settle

    deadline = time.monotonic() + 20
    while True:
        d = describe_all(broker.bootstrap, groups)
        by_group = defaultdict(set)
        for t in threads:
            by_group[t.group].add(t.member_id)
        settled = all(d[g].group_state == "Stable" and {m.member_id for m in d[g].members} == by_group[g]
                      and all(t.synced_generation == t.generation for t in threads if t.group == g)
                      for g in groups)
        if settled:
            break
        assert time.monotonic() < deadline, {g: (d[g].group_state, len(d[g].members)) for g in groups}
        time.sleep(0.2)
    settle.set()
    for t in threads:
        t.join(30)
        assert not t.is_alive(), f"{t.group}/{t.index} is stuck"
    errors = [(t.group, t.index, e) for t in threads for e in t.errors]
    assert not errors, errors[:10]

    # every received assignment is its generation's leader's, for this member and this generation
    per_generation = defaultdict(dict)
    for group, gen, member, assignment in log:
        a_gen, a_member, nonce, parts = assignment.decode().split("|")
        assert (int(a_gen), a_member) == (gen, member), (group, gen, member, assignment)
        per_generation[(group, gen)][member] = (nonce, parts)
    for (group, gen), members in per_generation.items():
        nonces = {n for n, _ in members.values()}
        assert len(nonces) == 1, f"{group} generation {gen} was assigned twice: {members}"
        owned = [p for _, parts in members.values() for p in parts.split(",") if p]
        assert len(owned) == len(set(owned)), f"{group} generation {gen}: a partition owned twice: {members}"
    for t in threads:
        assert t.generations == sorted(t.generations), (t.group, t.index, t.generations)
    rebalances = len(per_generation)
    assert rebalances > GROUPS * 3, f"too little churn to mean anything: {rebalances} generations"
    print(f"stress: {len(threads)} members in {GROUPS} groups, {rebalances} generations, {len(log)} syncs")
