"""Idempotent producer: KIP-98 sequence rules on the wire, retries after lost responses with
confluent-kafka, kafka-python and kafkajs (the `rivulet.testing.drop.produce.response.every`
hook drops every Nth produce response after the append, so the client retries a write that
happened), and producer state across broker restarts (SIGTERM and kill -9)."""
from __future__ import annotations

import base64
import time

import pytest

from kclients import b64, cf_producer, kp_producer
from rivulet_harness import node_script
from test_transactions_support import (INVALID_PRODUCER_EPOCH, NONE, OUT_OF_ORDER_SEQUENCE_NUMBER, create_topic,
                                       hwm, idem_batch, raw, raw_init_pid, raw_produce, read_topic)

DROP_EVERY = 5


def vals(prefix: str, n: int, start: int = 0) -> list[bytes]:
    return [f"{prefix}-{i}".encode() for i in range(start, start + n)]


# ============================================================================ wire rules

def test_sequence_rules_on_the_wire(broker, topic):
    """Duplicates are answered with the original offset and append nothing; a gap is
    OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch is INVALID_PRODUCER_EPOCH; a newer epoch must
    start at sequence 0; an unknown producer may start anywhere (Kafka since KIP-360)."""
    create_topic(broker.bootstrap, topic, 1)
    with raw(broker.bootstrap) as c:
        err, pid, epoch = raw_init_pid(c)
        assert (err, epoch) == (NONE, 0) and pid >= 0
        assert raw_produce(c, topic, 0, idem_batch(pid, 0, 0, vals("a", 3))) == (NONE, 0)
        assert raw_produce(c, topic, 0, idem_batch(pid, 0, 3, vals("a", 2, 3))) == (NONE, 3)
        # the retry of either of the last batches: original offsets, nothing written
        assert raw_produce(c, topic, 0, idem_batch(pid, 0, 0, vals("a", 3))) == (NONE, 0)
        assert raw_produce(c, topic, 0, idem_batch(pid, 0, 3, vals("a", 2, 3))) == (NONE, 3)
        assert hwm(broker.bootstrap, topic, 0) == 5
        # a gap, and a batch overlapping the last one without being it
        assert raw_produce(c, topic, 0, idem_batch(pid, 0, 6, [b"x"]))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
        assert raw_produce(c, topic, 0, idem_batch(pid, 0, 4, [b"x"]))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
        # a bumped epoch starts over at 0; then the old epoch is fenced
        assert raw_produce(c, topic, 0, idem_batch(pid, 1, 7, [b"x"]))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
        assert raw_produce(c, topic, 0, idem_batch(pid, 1, 0, [b"e1"])) == (NONE, 5)
        assert raw_produce(c, topic, 0, idem_batch(pid, 0, 5, [b"x"]))[0] == INVALID_PRODUCER_EPOCH
        # a producer this partition never saw may start at any sequence
        err, pid2, _ = raw_init_pid(c)
        assert pid2 != pid
        assert raw_produce(c, topic, 0, idem_batch(pid2, 0, 42, [b"late"])) == (NONE, 6)
        assert raw_produce(c, topic, 0, idem_batch(pid2, 0, 43, [b"late2"])) == (NONE, 7)
        # sequences wrap after 2^31-1
        err, pid3, _ = raw_init_pid(c)
        assert raw_produce(c, topic, 0, idem_batch(pid3, 0, 2**31 - 2, [b"w1", b"w2"])) == (NONE, 8)
        assert raw_produce(c, topic, 0, idem_batch(pid3, 0, 0, [b"w3"])) == (NONE, 10)
        assert raw_produce(c, topic, 0, idem_batch(pid3, 0, 2**31 - 2, [b"w1", b"w2"])) == (NONE, 8)
    got = read_topic(broker.bootstrap, topic, 1, "read_uncommitted")[0]
    assert [r["value"] for r in got] == vals("a", 5) + [b"e1", b"late", b"late2", b"w1", b"w2", b"w3"]


# ============================================================================ retries, real clients

def check_exactly_once(bootstrap: str, topic: str, partitions: int, sent: dict, reported: dict) -> None:
    """Every value in `sent` ({partition: [values in send order]}) is in its partition exactly
    once, in send order, at the offset the client was told (when it reports offsets)."""
    got = read_topic(bootstrap, topic, partitions, "read_uncommitted")
    for p in range(partitions):
        values = [r["value"] for r in got[p]]
        assert values == sent[p], (f"partition {p}: {len(values)} records for {len(sent[p])} sent; "
                                   f"duplicates: {len(values) - len(set(values))}")
        for r in got[p]:
            if r["value"] in reported:
                assert reported[r["value"]] == (p, r["offset"]), r


def hook_fired(broker) -> int:
    return broker.stderr_path.read_text(errors="replace").count("test hook: dropping this produce response")


@pytest.fixture
def dropping_broker(broker_factory):
    return broker_factory(overrides={"rivulet.testing.drop.produce.response.every": DROP_EVERY})


def cf_produce_tracked(producer, topic: str, records: list) -> dict:
    """Produce (partition, value) pairs; returns {value: (partition, offset)} of the reports."""
    reported, errors = {}, []

    def cb(err, msg):
        if err is not None:
            errors.append(err)
        else:
            reported[msg.value()] = (msg.partition(), msg.offset())

    for i, (p, v) in enumerate(records):
        producer.produce(topic, value=v, partition=p, on_delivery=cb)
        if i % 20 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    assert not errors, errors[:5]
    return reported


def spread(n: int, partitions: int, prefix: str = "v") -> tuple[list, dict]:
    records = [(i % partitions, f"{prefix}-{i}".encode()) for i in range(n)]
    sent = {p: [v for q, v in records if q == p] for p in range(partitions)}
    return records, sent


RETRY_CONF = dict(linger_ms=0, batch_num_messages=25, request_timeout_ms=1000, socket_timeout_ms=1000,
                  retry_backoff_ms=50, message_timeout_ms=60000)


def test_drop_hook_duplicates_without_idempotence(dropping_broker, topic):
    """The control experiment: the same retries without idempotence write records twice."""
    create_topic(dropping_broker.bootstrap, topic, 3)
    records, sent = spread(300, 3)
    producer = cf_producer(dropping_broker.bootstrap, enable_idempotence=False, retries=100, **RETRY_CONF)
    cf_produce_tracked(producer, topic, records)
    assert hook_fired(dropping_broker) > 0
    got = read_topic(dropping_broker.bootstrap, topic, 3, "read_uncommitted")
    total = sum(len(v) for v in got.values())
    assert total > 300, "the drop hook made no retry write twice"


def test_confluent_idempotent_retries_write_once(dropping_broker, topic):
    create_topic(dropping_broker.bootstrap, topic, 3)
    records, sent = spread(600, 3)
    producer = cf_producer(dropping_broker.bootstrap, enable_idempotence=True, **RETRY_CONF)
    reported = cf_produce_tracked(producer, topic, records)
    assert hook_fired(dropping_broker) >= 3
    check_exactly_once(dropping_broker.bootstrap, topic, 3, sent, reported)


def test_kafka_python_idempotent_retries_write_once(dropping_broker, topic):
    create_topic(dropping_broker.bootstrap, topic, 3)
    records, sent = spread(300, 3)
    producer = kp_producer(dropping_broker.bootstrap, enable_idempotence=True, acks="all", linger_ms=0,
                           batch_size=400, request_timeout_ms=1000, retry_backoff_ms=50, retries=100,
                           max_in_flight_requests_per_connection=5, delivery_timeout_ms=60000)
    try:
        futures = []
        for i in range(0, len(records), 15):  # about one produce request per flush
            futures += [(v, producer.send(topic, value=v, partition=p)) for p, v in records[i:i + 15]]
            producer.flush(timeout=60)
        reported = {}
        for v, f in futures:
            md = f.get(timeout=60)
            reported[v] = (md.partition, md.offset)
    finally:
        producer.close(timeout=10)
    assert hook_fired(dropping_broker) >= 3
    check_exactly_once(dropping_broker.bootstrap, topic, 3, sent, reported)


def test_kafkajs_idempotent_retries_write_once(dropping_broker, topic):
    create_topic(dropping_broker.bootstrap, topic, 3)
    # 40 sends of 5 records (one produce request each, one batch per partition)
    steps = []
    sent = {p: [] for p in range(3)}
    for s in range(40):
        messages = []
        for i in range(5):
            p = (s + i) % 3
            v = f"js-{s}-{i}".encode()
            messages.append({"partition": p, "value": b64(v)})
            sent[p].append(v)
        steps.append({"p": "a", "op": "send", "topic": topic, "messages": messages})
    result = node_script("txn_producer", {"brokers": [dropping_broker.bootstrap], "requestTimeout": 1500, "sendTimeout": 1000,
                                          "retries": 10, "producers": {"a": {"idempotent": True}},
                                          "steps": steps}, timeout=150)
    failed = [s for s in result["steps"] if not s["ok"]]
    assert not failed, failed[:3]
    assert hook_fired(dropping_broker) >= 3
    reported = {}
    for step, r in zip(steps, result["steps"]):
        for m, off in zip(step["messages"], r["offsets"]):
            reported[base64.b64decode(m["value"])] = (m["partition"], off)
    check_exactly_once(dropping_broker.bootstrap, topic, 3, sent, reported)


def test_idempotent_producer_across_broker_restarts(broker_factory, topic):
    """confluent-kafka keeps producing (with lost responses) while the broker is killed with
    SIGKILL and later stopped with SIGTERM and restarted: still every record once, in order."""
    b = broker_factory(overrides={"rivulet.testing.drop.produce.response.every": 7})
    create_topic(b.bootstrap, topic, 2)
    records, sent = spread(900, 2)
    producer = cf_producer(b.bootstrap, enable_idempotence=True, **RETRY_CONF)
    reported, errors = {}, []

    def cb(err, msg):
        if err is not None:
            errors.append(err)
        else:
            reported[msg.value()] = (msg.partition(), msg.offset())

    def produce_range(lo, hi):
        for i in range(lo, hi):
            p, v = records[i]
            producer.produce(topic, value=v, partition=p, on_delivery=cb)
            producer.poll(0)
            time.sleep(0.002)

    produce_range(0, 300)
    b.kill9()
    b.start()
    produce_range(300, 600)
    b.stop()
    b.start()
    produce_range(600, 900)
    assert producer.flush(60) == 0
    assert not errors, errors[:5]
    check_exactly_once(b.bootstrap, topic, 2, sent, reported)


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_duplicate_of_last_batch_detected_after_restart(broker_factory, topic, how):
    """After a restart the producer state is rebuilt (snapshot + log): the retry of a producer's
    last batch is answered with its original offset, a gap is still out of order, and the next
    sequence is accepted."""
    b = broker_factory()
    create_topic(b.bootstrap, topic, 1)
    with raw(b.bootstrap) as c:
        _, pid, _ = raw_init_pid(c)
        _, other, _ = raw_init_pid(c)
        for k in range(4):
            assert raw_produce(c, topic, 0, idem_batch(pid, 0, 3 * k, vals("p", 3, 3 * k))) == (NONE, 6 * k)
            assert raw_produce(c, topic, 0, idem_batch(other, 0, 3 * k, vals("o", 3, 3 * k))) == (NONE, 6 * k + 3)
    if how == "kill9":
        b.kill9()
    else:
        b.stop()
    b.start()
    with raw(b.bootstrap) as c:
        assert raw_produce(c, topic, 0, idem_batch(pid, 0, 9, vals("p", 3, 9))) == (NONE, 18)
        assert raw_produce(c, topic, 0, idem_batch(other, 0, 9, vals("o", 3, 9))) == (NONE, 21)
        assert hwm(b.bootstrap, topic, 0) == 24
        assert raw_produce(c, topic, 0, idem_batch(pid, 0, 13, [b"gap"]))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
        assert raw_produce(c, topic, 0, idem_batch(pid, 0, 12, [b"p-12"])) == (NONE, 24)
        assert raw_produce(c, topic, 0, idem_batch(pid, 0, 12, [b"p-12"])) == (NONE, 24)
    got = read_topic(b.bootstrap, topic, 1, "read_uncommitted")[0]
    assert len(got) == 25 and got[-1]["value"] == b"p-12"


def test_duplicate_detected_after_restart_with_rolled_segments(broker_factory, topic):
    """Tiny segments (a producer snapshot at every roll), then kill -9: state comes from the
    newest snapshot plus the log after it."""
    b = broker_factory()
    create_topic(b.bootstrap, topic, 1, segment_bytes=300)
    with raw(b.bootstrap) as c:
        _, pid, _ = raw_init_pid(c)
        for k in range(20):
            assert raw_produce(c, topic, 0, idem_batch(pid, 0, 2 * k, vals("p", 2, 2 * k))) == (NONE, 2 * k)
    assert len(list(b.partition_dir(topic, 0).glob("*.snapshot"))) >= 1
    b.kill9()
    b.start()
    with raw(b.bootstrap) as c:
        assert raw_produce(c, topic, 0, idem_batch(pid, 0, 38, vals("p", 2, 38))) == (NONE, 38)
        assert raw_produce(c, topic, 0, idem_batch(pid, 0, 41, [b"x"]))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
        assert raw_produce(c, topic, 0, idem_batch(pid, 0, 40, [b"p-40"])) == (NONE, 40)
