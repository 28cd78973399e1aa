"""Transactions with real clients: atomic commit and abort across partitions and topics as seen
by read_committed and read_uncommitted consumers (confluent-kafka, kafka-python, kcat), written
by confluent-kafka, kafka-python and kafkajs producers; zombie fencing; the transaction
timeout and its bounds."""
from __future__ import annotations

import base64

import pytest
from confluent_kafka import KafkaError, KafkaException

from kclients import b64, kcat_read, kp_producer
from rivulet_harness import node_script
from test_transactions_support import (INVALID_PRODUCER_EPOCH, INVALID_TRANSACTION_TIMEOUT, NONE, PRODUCER_FENCED,
                                       TXN_BROKER, cf_send_all, cf_txn_producer, create_topic, kp_read_topic, lso, raw,
                                       raw_init_pid, read_topic, values)

BROKER_OVERRIDES = TXN_BROKER


def topics_for(topic: str) -> tuple[str, str]:
    return f"{topic}-a", f"{topic}-b"


def expect(by_txn: dict, which: list, ta: str, tb: str) -> dict:
    """{(topic, partition): [values]} of the transactions in `which`, in order."""
    out = {(t, p): [] for t in (ta, tb) for p in range(2)}
    for name in which:
        for t, p, v in by_txn[name]:
            out[(t, p)].append(v)
    return out


def seen(bootstrap: str, ta: str, tb: str, isolation: str) -> dict:
    out = {}
    for t in (ta, tb):
        for p, vs in values(read_topic(bootstrap, t, 2, isolation)).items():
            out[(t, p)] = vs
    return out


def txn_records(name: str, ta: str, tb: str, n: int = 3) -> list:
    return [(t, p, f"{name}-{t[-1]}{p}-{i}".encode()) for t in (ta, tb) for p in range(2) for i in range(n)]


def test_confluent_commit_and_abort_across_topics(broker, topic):
    ta, tb = topics_for(topic)
    create_topic(broker.bootstrap, ta, 2)
    create_topic(broker.bootstrap, tb, 2)
    producer = cf_txn_producer(broker.bootstrap, f"{topic}-tx")
    producer.init_transactions(30)
    by_txn = {}
    for name, commit in [("t1", True), ("t2", False), ("t3", True), ("t4", False)]:
        by_txn[name] = txn_records(name, ta, tb)
        producer.begin_transaction()
        cf_send_all(producer, by_txn[name])
        (producer.commit_transaction if commit else producer.abort_transaction)(30)
    committed = expect(by_txn, ["t1", "t3"], ta, tb)
    everything = expect(by_txn, ["t1", "t2", "t3", "t4"], ta, tb)
    assert seen(broker.bootstrap, ta, tb, "read_committed") == committed
    assert seen(broker.bootstrap, ta, tb, "read_uncommitted") == everything
    # kafka-python and kcat read_committed agree
    for t in (ta, tb):
        assert kp_read_topic(broker.bootstrap, t, 2, "read_committed") == {p: committed[(t, p)] for p in range(2)}
        assert kp_read_topic(broker.bootstrap, t, 2, "read_uncommitted") == {p: everything[(t, p)] for p in range(2)}
    for p in range(2):
        got = kcat_read(broker.bootstrap, ta, p, extra=["-X", "isolation.level=read_committed"])
        assert [r["value"] for r in got] == committed[(ta, p)]
    # control records occupy offsets: 4 transactions of 3 records + 4 markers per partition
    recs = read_topic(broker.bootstrap, ta, 2, "read_uncommitted")[0]
    assert [r["offset"] for r in recs] == [0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14]
    assert lso(broker.bootstrap, ta, 0) == 16


def test_kafka_python_commit_and_abort(broker, topic):
    ta, tb = topics_for(topic)
    create_topic(broker.bootstrap, ta, 2)
    create_topic(broker.bootstrap, tb, 2)
    producer = kp_producer(broker.bootstrap, transactional_id=f"{topic}-tx", enable_idempotence=True, acks="all")
    by_txn = {}
    try:
        producer.init_transactions()
        for name, commit in [("k1", False), ("k2", True), ("k3", False)]:
            by_txn[name] = txn_records(name, ta, tb)
            producer.begin_transaction()
            futures = [producer.send(t, value=v, partition=p) for t, p, v in by_txn[name]]
            producer.flush()
            for f in futures:
                f.get(timeout=30)
            if commit:
                producer.commit_transaction()
            else:
                producer.abort_transaction()
    finally:
        producer.close(timeout=10)
    assert seen(broker.bootstrap, ta, tb, "read_committed") == expect(by_txn, ["k2"], ta, tb)
    assert seen(broker.bootstrap, ta, tb, "read_uncommitted") == expect(by_txn, ["k1", "k2", "k3"], ta, tb)


def js_txn(bootstrap: str, producers: dict, steps: list, timeout: float = 90.0) -> list:
    return node_script("txn_producer", {"brokers": [bootstrap], "producers": producers, "steps": steps},
                       timeout=timeout)["steps"]


def js_send(p: str, records: list) -> list:
    """One send step per topic of (topic, partition, value) records."""
    steps = []
    for t in sorted({r[0] for r in records}):
        steps.append({"p": p, "op": "send", "topic": t,
                      "messages": [{"partition": q, "value": b64(v)} for tt, q, v in records if tt == t]})
    return steps


def test_kafkajs_commit_and_abort(broker, topic):
    ta, tb = topics_for(topic)
    create_topic(broker.bootstrap, ta, 2)
    create_topic(broker.bootstrap, tb, 2)
    by_txn = {name: txn_records(name, ta, tb) for name in ("j1", "j2", "j3")}
    steps = []
    for name, end in [("j1", "commit"), ("j2", "abort"), ("j3", "commit")]:
        steps += [{"p": "a", "op": "begin"}] + js_send("a", by_txn[name]) + [{"p": "a", "op": end}]
    results = js_txn(broker.bootstrap, {"a": {"transactionalId": f"{topic}-tx"}}, steps)
    assert all(r["ok"] for r in results), [r for r in results if not r["ok"]]
    assert seen(broker.bootstrap, ta, tb, "read_committed") == expect(by_txn, ["j1", "j3"], ta, tb)
    assert seen(broker.bootstrap, ta, tb, "read_uncommitted") == expect(by_txn, ["j1", "j2", "j3"], ta, tb)


def test_confluent_zombie_is_fenced(broker, topic):
    """A second instance with the same transactional.id fences the first: the first's open
    transaction is aborted, its later writes and its commit fail, and only the new instance's
    transaction is visible to read_committed."""
    create_topic(broker.bootstrap, topic, 2)
    tx = f"{topic}-tx"
    zombie = cf_txn_producer(broker.bootstrap, tx)
    zombie.init_transactions(30)
    zombie.begin_transaction()
    cf_send_all(zombie, [(topic, p, f"zombie-{p}".encode()) for p in range(2)])
    successor = cf_txn_producer(broker.bootstrap, tx)
    successor.init_transactions(30)
    successor.begin_transaction()
    cf_send_all(successor, [(topic, p, f"new-{p}".encode()) for p in range(2)])
    successor.commit_transaction(30)

    # the zombie's next write is refused with INVALID_PRODUCER_EPOCH: librdkafka's fatal _FENCED
    try:
        zombie.produce(topic, value=b"zombie-late", partition=0)
        zombie.flush(10)
    except (KafkaException, SystemError):  # the fatal error surfaces through flush's callbacks
        pass
    with pytest.raises(KafkaException) as info:
        zombie.commit_transaction(10)
    err = info.value.args[0]
    assert err.fatal() and err.code() == KafkaError._FENCED, err
    assert values(read_topic(broker.bootstrap, topic, 2, "read_committed")) == {0: [b"new-0"], 1: [b"new-1"]}
    assert values(read_topic(broker.bootstrap, topic, 2, "read_uncommitted")) == {
        0: [b"zombie-0", b"new-0"], 1: [b"zombie-1", b"new-1"]}


def test_kafkajs_zombie_is_fenced(broker, topic):
    create_topic(broker.bootstrap, topic, 1)
    tx = f"{topic}-tx"
    steps = ([{"p": "old", "op": "begin"}] + js_send("old", [(topic, 0, b"old-1")])
             + [{"p": "new", "op": "begin"}] + js_send("new", [(topic, 0, b"new-1")]) + [{"p": "new", "op": "commit"}]
             + js_send("old", [(topic, 0, b"old-2")]) + [{"p": "old", "op": "commit"}])
    # each producer connects (InitProducerId) at its first step: "new" fences "old" mid-transaction
    results = js_txn(broker.bootstrap, {"old": {"transactionalId": tx}, "new": {"transactionalId": tx}}, steps)
    assert [r["ok"] for r in results] == [True, True, True, True, True, False, False], results
    old_errors = [e for r in results[5:] for e in _types(r["error"])]
    assert {"PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH"} & set(old_errors), old_errors
    assert values(read_topic(broker.bootstrap, topic, 1, "read_committed")) == {0: [b"new-1"]}


def _types(err) -> list:
    out, stack = [], [err]
    while stack:
        e = stack.pop()
        if not e:
            continue
        out.append(e.get("type"))
        stack.extend(e.get("errors") or [])
        stack.append(e.get("cause"))
    return [t for t in out if t]


def test_transaction_timeout_above_the_maximum_is_refused(broker_factory, topic):
    b = broker_factory(overrides={"transaction.max.timeout.ms": 5000})
    with raw(b.bootstrap) as c:
        assert raw_init_pid(c, "tx-long", timeout_ms=5001)[0] == INVALID_TRANSACTION_TIMEOUT
        assert raw_init_pid(c, "tx-long", timeout_ms=5000)[0] == NONE
        assert raw_init_pid(c, "tx-zero", timeout_ms=0)[0] == INVALID_TRANSACTION_TIMEOUT
    producer = cf_txn_producer(b.bootstrap, f"{topic}-tx", transaction_timeout_ms=10000)
    with pytest.raises(KafkaException) as info:
        producer.init_transactions(10)
    assert "INVALID_TRANSACTION_TIMEOUT" in str(info.value) or info.value.args[0].code() == INVALID_TRANSACTION_TIMEOUT


def test_read_committed_with_interleaved_transactions_across_segments(broker, topic):
    """Three producers' transactions interleave on one partition of tiny segments: B opens
    first, C aborts, D opens, B aborts after several rolls (its ABORT marker lands in a segment
    past D's first offset, the LSO). A read_committed fetch from 0 must list B's abort as well as
    C's, so none of B's records are delivered."""
    create_topic(broker.bootstrap, topic, 1, segment_bytes=200)
    pb, pc, pd = (cf_txn_producer(broker.bootstrap, f"{topic}-{n}", linger_ms=0) for n in "bcd")
    for p in (pb, pc, pd):
        p.init_transactions(30)
        p.begin_transaction()
    cf_send_all(pb, [(topic, 0, b"b-1")])
    cf_send_all(pc, [(topic, 0, b"c-1")])
    pc.abort_transaction(30)
    cf_send_all(pd, [(topic, 0, b"d-1")])
    for i in range(4):  # rolls
        cf_send_all(pb, [(topic, 0, f"b-{i + 2}".encode())])
    pb.abort_transaction(30)
    assert lso(broker.bootstrap, topic, 0) == 3, "D's transaction holds the LSO"
    assert len(list(broker.partition_dir(topic, 0).glob("*.log"))) >= 3
    for reader in (read_topic, lambda b, t, n, i: {0: [{"value": v} for v in kp_read_topic(b, t, n, i)[0]]}):
        assert values(reader(broker.bootstrap, topic, 1, "read_committed")) == {0: []}
    pd.commit_transaction(30)
    assert values(read_topic(broker.bootstrap, topic, 1, "read_committed")) == {0: [b"d-1"]}


def test_init_producer_id_with_an_old_epoch_is_fenced(broker, topic):
    """KIP-360: a producer may ask InitProducerId for a bump of its current epoch; an older
    instance (a zombie) is fenced (PRODUCER_FENCED from v4, INVALID_PRODUCER_EPOCH before)."""
    from kafka.protocol.producer.transaction import InitProducerIdRequest
    tx = f"{topic}-tx"

    def init(conn, version, pid=-1, epoch=-1):
        r = conn.call(InitProducerIdRequest, version, transactional_id=tx, transaction_timeout_ms=60000,
                      producer_id=pid, producer_epoch=epoch)
        return r.error_code, r.producer_id, r.producer_epoch

    with raw(broker.bootstrap) as c:
        err, pid, e0 = init(c, 4)
        assert err == NONE
        assert init(c, 4)[2] == e0 + 1  # a new instance
        assert init(c, 4, pid, e0)[0] == PRODUCER_FENCED
        assert init(c, 3, pid, e0)[0] == INVALID_PRODUCER_EPOCH
        assert init(c, 4, pid, e0 + 1) == (NONE, pid, e0 + 2)  # the current one bumps its own epoch
