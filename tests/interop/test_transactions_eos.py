"""Consume-transform-produce exactly once: a processor (a consumer group member reading
read_committed, a transactional producer, `send_offsets_to_transaction`) moves every record of
an input topic to an output topic; it is killed with SIGKILL in the middle of a transaction
(records written, offsets not committed) and restarted with the same transactional.id. The
output, counted record by record with read_committed, holds every input record exactly once,
in order per partition. Processors: confluent-kafka and kafkajs."""
from __future__ import annotations

import pytest

from kclients import cf_producer
from test_transactions_support import (TXN_BROKER, Proc, cf_send_all, close_all_procs, create_topic, kp_admin,
                                       read_topic, transform, values)

BROKER_OVERRIDES = TXN_BROKER
PARTITIONS = 3
RECORDS = 1500


@pytest.fixture(autouse=True)
def _procs():
    yield
    close_all_procs()


def fill_input(bootstrap: str, topic: str) -> dict:
    create_topic(bootstrap, topic, PARTITIONS)
    records = [(topic, i % PARTITIONS, f"in-{i}".encode()) for i in range(RECORDS)]
    cf_send_all(cf_producer(bootstrap, linger_ms=20), records)
    return {p: [v for _, q, v in records if q == p] for p in range(PARTITIONS)}


def check_output(bootstrap: str, sent: dict, output: str, group: str, input_topic: str) -> None:
    got = values(read_topic(bootstrap, output, PARTITIONS, "read_committed"))
    for p in range(PARTITIONS):
        want = [transform(v) for v in sent[p]]
        assert len(got[p]) == len(want) and got[p] == want, (
            f"partition {p}: {len(got[p])} output records for {len(want)} input records; "
            f"duplicates {len(got[p]) - len(set(got[p]))}, missing {len(set(want) - set(got[p]))}")
    # the aborted attempt is in the log, invisible to read_committed
    uncommitted = sum(len(v) for v in values(read_topic(bootstrap, output, PARTITIONS, "read_uncommitted")).values())
    assert uncommitted > RECORDS, "the kill did not land inside a transaction that had written records"
    admin = kp_admin(bootstrap)
    try:
        offsets = admin.list_group_offsets({group: None})[group]
    finally:
        admin.close()
    assert {tp.partition: om.offset for tp, om in offsets.items() if tp.topic == input_topic} == {
        p: len(sent[p]) for p in range(PARTITIONS)}


def run_with_kill(make, bootstrap: str, topic: str, kill_after: str = "produced") -> None:
    """Starts a processor that pauses inside each transaction (after writing the records, or
    after sending the offsets too); kills it in such a pause after some transactions have
    committed; starts a second one that runs to the end of the input."""
    pause = {"pause_in_txn_s": 0.3} if kill_after == "produced" else {"pause_after_offsets_s": 0.3}
    first = make("first", exit_when_idle_s=0, **pause)
    first.wait_for(lambda e: e["ev"] == "committed" and e["total"] >= RECORDS // 4, 60, "a quarter committed")
    n = len(first.of(kill_after))
    first.wait_for(lambda e: e["ev"] == kill_after and len(first.of(kill_after)) > n, 30, "a transaction in flight")
    first.kill9()
    group, input_topic = f"{topic}-g", f"{topic}-in"
    # A processor exits after 2 s without work. On a loaded machine the group can still
    # be rebalancing away from the killed member then, so a restart may stop short of
    # the end; like an operator, keep restarting (same transactional.id) until the
    # committed offsets reach the end. Exactly-once must hold across every restart.
    for attempt in range(4):
        nxt = make(f"restart-{attempt}", exit_when_idle_s=2)
        nxt.wait_for(lambda e: e["ev"] == "idle", 90, "the restarted processor to drain the input")
        assert nxt.wait_exit(30) == 0
        if caught_up(bootstrap, group, input_topic):
            return
    raise AssertionError("four restarts did not bring the group's offsets to the end of the input")


def caught_up(bootstrap: str, group: str, input_topic: str) -> bool:
    admin = kp_admin(bootstrap)
    try:
        offsets = admin.list_group_offsets({group: None})[group]
    finally:
        admin.close()
    committed = {tp.partition: om.offset for tp, om in offsets.items() if tp.topic == input_topic}
    return committed == {p: RECORDS // PARTITIONS for p in range(PARTITIONS)}


@pytest.mark.parametrize("kill_after", ["produced", "offsets_sent"])
def test_confluent_consume_transform_produce_exactly_once_across_kill(broker, topic, tmp_path, kill_after):
    """Killed after writing a transaction's records, or after sending its offsets too (the
    group then has pending transactional offsets, which the new instance's InitProducerId
    aborts before its consumer fetches the committed offsets)."""
    inp, out, group, tx = f"{topic}-in", f"{topic}-out", f"{topic}-g", f"{topic}-tx"
    sent = fill_input(broker.bootstrap, inp)
    create_topic(broker.bootstrap, out, PARTITIONS)

    def make(name, **kw):
        return Proc.python("processor", dict(bootstrap=broker.bootstrap, input=inp, output=out, group=group,
                                             transactional_id=tx, batch=50, session_ms=2000, **kw), tmp_path, name)

    run_with_kill(make, broker.bootstrap, topic, kill_after)
    check_output(broker.bootstrap, sent, out, group, inp)


def test_kafkajs_consume_transform_produce_exactly_once_across_kill(broker, topic, tmp_path):
    inp, out, group, tx = f"{topic}-in", f"{topic}-out", f"{topic}-g", f"{topic}-tx"
    sent = fill_input(broker.bootstrap, inp)
    create_topic(broker.bootstrap, out, PARTITIONS)

    def make(name, exit_when_idle_s, pause_in_txn_s=0):
        return Proc.node("txn_processor", {"brokers": [broker.bootstrap], "input": inp, "output": out,
                                           "groupId": group, "transactionalId": tx, "sessionTimeout": 2000,
                                           "pauseInTxnMs": int(pause_in_txn_s * 1000),
                                           "exitWhenIdleMs": int(exit_when_idle_s * 1000), "batch": 50},
                         tmp_path, name)

    run_with_kill(make, broker.bootstrap, topic)
    check_output(broker.bootstrap, sent, out, group, inp)
