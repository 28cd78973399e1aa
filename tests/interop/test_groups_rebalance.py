"""Consumer groups: rebalances.

A member that leaves (clean close) or dies (SIGKILL) hands its partitions over, the others
continuing from the committed offsets (at once on a leave; after the session timeout on a
kill); a member joining, a subscription changing and partitions being added rebalance the
group; cooperative-sticky moves only the partitions that change owner; a static member
(group.instance.id) restarted within its session gets its partitions back without a
rebalance.
"""
from __future__ import annotations

import time

import pytest

from test_groups_support import (FAST_GROUPS, HEARTBEAT_MS, SESSION_MS, all_partitions, close_all, create_topic,
                                 drain, ends_of, exactly_once, gtopic, is_marker, produce_values, spawn,
                                 wait_assignment, wait_committed, wait_records)

__all__ = ["spawn", "gtopic"]  # fixtures
BROKER_OVERRIDES = dict(FAST_GROUPS)
P = 6


def _first_assignment_of(members, tps: set, after: float) -> float:
    """When a member first reported owning any of `tps` after `after`."""
    times = [e["ts"] for m in members for e in m.of("assigned")
             if e["ts"] > after and {tuple(tp) for tp in e["owned"]} & tps]
    assert times, f"nobody took over {sorted(tps)}"
    return min(times)


@pytest.mark.parametrize("kind", ["cf", "kp", "js"])
@pytest.mark.parametrize("how", ["close", "kill"])
def test_survivors_take_over_a_departed_members_partitions_from_its_commits(broker, spawn, gtopic, kind, how):
    topic, group = gtopic, f"g-{gtopic}"
    create_topic(broker.bootstrap, topic, P)
    members = [spawn(kind, broker.bootstrap, group, [topic], f"{kind}{i}", session_ms=SESSION_MS)
               for i in range(3)]
    owned = wait_assignment(members, all_partitions(topic, P), per_member=[2, 2, 2], timeout=40)
    first = produce_values(broker.bootstrap, topic, P, 20, tag="a")
    wait_records(members, first)
    wait_committed(members, ends_of(first))

    victim, survivors = members[1], [members[0], members[2]]
    victim_tps = {tuple(tp) for tp in owned[victim.name]}
    if how == "kill":
        gone_at = victim.kill()
    else:
        gone_at = time.monotonic()
        victim.close()
    second = produce_values(broker.bootstrap, topic, P, 20, tag="b", start=20)
    wait_assignment(survivors, all_partitions(topic, P), per_member=[3, 3], timeout=SESSION_MS / 1000 + 20)
    took_over = _first_assignment_of(survivors, victim_tps, gone_at) - gone_at
    if how == "kill":
        # expired after its session timeout (counted from its last heartbeat, at most one
        # heartbeat interval before the kill), then one heartbeat round and the rebalance
        assert SESSION_MS / 1000 - HEARTBEAT_MS / 1000 - 0.2 <= took_over <= SESSION_MS / 1000 + 2.0, took_over
    else:
        assert took_over < 2.0, f"a LeaveGroup should rebalance at once; took {took_over:.2f}s"

    wait_records(survivors, second)
    markers = drain(broker.bootstrap, survivors, topic, P)
    # Every record exactly once across the group: the survivors resumed the victim's
    # partitions at its committed offsets (20), none of 0..19 again.
    exactly_once(members, first | second | markers)
    resumed = sorted(e["o"] for m in survivors for e in m.records()
                     if (e["t"], e["p"]) in victim_tps and not is_marker(e))
    assert resumed[0] == 20 and len(resumed) == 40, resumed
    close_all(survivors)


@pytest.mark.parametrize("kinds", [("cf", "cf", "cf"), ("kp", "kp", "kp"), ("js", "js", "js")], ids="-".join)
def test_a_new_member_triggers_a_rebalance(broker, spawn, gtopic, kinds):
    topic, group = gtopic, f"g-{gtopic}"
    create_topic(broker.bootstrap, topic, P)
    a, b = (spawn(k, broker.bootstrap, group, [topic], f"{k}{i}") for i, k in enumerate(kinds[:2]))
    wait_assignment([a, b], all_partitions(topic, P), per_member=[3, 3], timeout=40)
    first = produce_values(broker.bootstrap, topic, P, 10, tag="a")
    wait_records([a, b], first)
    wait_committed([a, b], ends_of(first))
    joined = time.monotonic()
    c = spawn(kinds[2], broker.bootstrap, group, [topic], f"{kinds[2]}2")
    wait_assignment([a, b, c], all_partitions(topic, P), per_member=[2, 2, 2], timeout=30)
    assert c.of("assigned")[-1]["ts"] - joined < 10
    second = produce_values(broker.bootstrap, topic, P, 10, tag="b", start=10)
    wait_records([a, b, c], second)
    markers = drain(broker.bootstrap, [a, b, c], topic, P)
    exactly_once([a, b, c], first | second | markers)
    close_all([a, b, c])


@pytest.mark.parametrize("kind", ["cf", "kp"])
def test_a_subscription_change_rebalances(broker, spawn, gtopic, kind):
    t1, t2, group = f"{gtopic}-x", f"{gtopic}-y", f"g-{gtopic}"
    create_topic(broker.bootstrap, t1, 4)
    create_topic(broker.bootstrap, t2, 2)
    a, b = (spawn(kind, broker.bootstrap, group, [t1], f"{kind}{i}") for i in range(2))
    wait_assignment([a, b], all_partitions(t1, 4), per_member=[2, 2], timeout=40)
    a.send(f"subscribe {t1},{t2}")
    b.send(f"subscribe {t1},{t2}")
    owned = wait_assignment([a, b], all_partitions(t1, 4) | all_partitions(t2, 2), per_member=[3, 3], timeout=30)
    assert all(m.of("subscribed") for m in (a, b))
    # range assigns each topic on its own: two of t1 and one of t2 each
    for tps in owned.values():
        assert sorted(t for t, _ in tps) == sorted([t1, t1, t2]), owned
    expected = produce_values(broker.bootstrap, t2, 2, 10) | produce_values(broker.bootstrap, t1, 4, 5)
    wait_records([a, b], expected)
    exactly_once([a, b], expected)
    # one member drops t2: the other gets all of t2
    a.send(f"subscribe {t1}")
    owned = wait_assignment([a, b], all_partitions(t1, 4) | all_partitions(t2, 2), timeout=30,
                            check=lambda own: {t for t, _ in own[a.name]} == {t1})
    assert {t for t, _ in owned[a.name]} == {t1}, owned
    assert {tuple(tp) for tp in owned[b.name] if tp[0] == t2} == all_partitions(t2, 2), owned
    close_all([a, b])


def _create_partitions(bootstrap: str, topic: str, total: int) -> None:
    from confluent_kafka.admin import NewPartitions
    from kclients import cf_admin
    admin = cf_admin(bootstrap)
    fs = admin.create_partitions([NewPartitions(topic, total)], operation_timeout=10, request_timeout=20)
    for f in fs.values():
        f.result(timeout=30)


@pytest.mark.parametrize("kind", ["cf", "kp"])
def test_added_partitions_are_assigned_after_a_rebalance(broker, spawn, gtopic, kind):
    topic, group = gtopic, f"g-{gtopic}"
    create_topic(broker.bootstrap, topic, 4)
    members = [spawn(kind, broker.bootstrap, group, [topic], f"{kind}{i}", metadata_refresh_ms=500) for i in range(2)]
    wait_assignment(members, all_partitions(topic, 4), per_member=[2, 2], timeout=40)
    _create_partitions(broker.bootstrap, topic, 6)
    wait_assignment(members, all_partitions(topic, 6), per_member=[3, 3], timeout=30)
    expected = produce_values(broker.bootstrap, topic, 6, 5)
    wait_records(members, expected)
    exactly_once(members, expected)
    close_all(members)


@pytest.mark.parametrize("kind", ["cf", "kp"])
def test_cooperative_sticky_moves_only_the_partitions_that_change_owner(broker, spawn, gtopic, kind):
    topic, group = gtopic, f"g-{gtopic}"
    create_topic(broker.bootstrap, topic, P)
    spec = {"assignor": "cooperative-sticky"}
    a, b = (spawn(kind, broker.bootstrap, group, [topic], f"{kind}{i}", **spec) for i in range(2))
    before = wait_assignment([a, b], all_partitions(topic, P), per_member=[3, 3], timeout=40)
    first = produce_values(broker.bootstrap, topic, P, 10, tag="a")
    wait_records([a, b], first)
    wait_committed([a, b], ends_of(first))
    mark = time.monotonic()
    c = spawn(kind, broker.bootstrap, group, [topic], f"{kind}2", **spec)
    after = wait_assignment([a, b, c], all_partitions(topic, P), per_member=[2, 2, 2], timeout=30)
    for m in (a, b):
        kept = {tuple(tp) for tp in after[m.name]}
        assert kept <= {tuple(tp) for tp in before[m.name]}, f"{m.name} got new partitions: {before} -> {after}"
        revoked = [e for e in m.of("revoked") if e["ts"] > mark]
        # incremental: only the partition that moved to the new member was revoked, never all
        gave_up = {tuple(tp) for e in revoked for tp in e["tps"]}
        assert gave_up == {tuple(tp) for tp in before[m.name]} - kept, (m.name, revoked, before, after)
        assert all(e["owned"] for e in revoked), f"{m.name} was left with nothing during the rebalance"
        # and it never stopped owning the partitions it kept
        assert all(set(map(tuple, e["owned"])) >= kept for e in m.of("revoked") + m.of("assigned") if e["ts"] > mark)
    assert {tuple(tp) for e in c.of("assigned") for tp in e["tps"]} == {tuple(tp) for tp in after[c.name]}
    second = produce_values(broker.bootstrap, topic, P, 10, tag="b", start=10)
    wait_records([a, b, c], second)
    markers = drain(broker.bootstrap, [a, b, c], topic, P)
    exactly_once([a, b, c], first | second | markers)
    close_all([a, b, c])


@pytest.mark.parametrize("kind", ["cf", "kp"])
def test_a_restarted_static_member_gets_its_partitions_back_without_a_rebalance(broker, spawn, gtopic, kind):
    topic, group = gtopic, f"g-{gtopic}"
    create_topic(broker.bootstrap, topic, P)
    spec = {"session_ms": 10000, "assignor": "range"}
    members = [spawn(kind, broker.bootstrap, group, [topic], f"{kind}{i}", instance_id=f"inst-{i}", **spec)
               for i in range(3)]
    owned = wait_assignment(members, all_partitions(topic, P), per_member=[2, 2, 2], timeout=40)
    first = produce_values(broker.bootstrap, topic, P, 10, tag="a")
    wait_records(members, first)
    wait_committed(members, ends_of(first))
    mark = time.monotonic()
    members[1].kill()
    back = spawn(kind, broker.bootstrap, group, [topic], f"{kind}1-again", instance_id="inst-1", **spec)
    members = [members[0], back, members[2]]
    now_owned = wait_assignment(members, all_partitions(topic, P), per_member=[2, 2, 2], timeout=20)
    assert sorted(now_owned[back.name]) == sorted(owned[f"{kind}1"]), (owned, now_owned)
    assert back.of("assigned")[0]["ts"] - mark < 5.0
    second = produce_values(broker.bootstrap, topic, P, 10, tag="b", start=10)
    wait_records(members, second)
    # The thing under test is a timeout: the killed instance's session (counted from the
    # kill) must pass without a rebalance. Wait it out and two heartbeats more, then show
    # every member still owns and reads its partitions with a third batch.
    time.sleep(max(0.0, mark + spec["session_ms"] / 1000 + 2 * HEARTBEAT_MS / 1000 - time.monotonic()))
    third = produce_values(broker.bootstrap, topic, P, 10, tag="c", start=20)
    wait_records(members, third)
    markers = drain(broker.bootstrap, members, topic, P)
    for m in (members[0], members[2]):
        late = [e for e in m.snapshot() if e["ev"] in ("assigned", "revoked") and e["ts"] > mark]
        assert not late, f"{m.name} went through a rebalance: {late}"
    # kafka-python reports an empty revocation before its first assignment: none after it
    first_assigned = back.of("assigned")[0]["ts"]
    assert len(back.of("assigned")) == 1, back.of("assigned")
    assert not [e for e in back.of("revoked") if e["ts"] > first_assigned], back.of("revoked")
    # it resumed at its committed offsets
    resumed = sorted(e["o"] for e in back.records() if not is_marker(e))
    assert resumed == sorted(list(range(10, 30)) * 2), resumed
    exactly_once([members[0], back, members[2]], second | third | markers)
    close_all(members)
