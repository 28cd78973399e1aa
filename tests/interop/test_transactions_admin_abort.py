"""WriteTxnMarkers: an operator aborts a hanging transaction, as `kafka-transactions.sh abort`
does. A hanging transaction is a transactional batch on a partition that no coordinator knows
of (here: written with the producer id of a plain idempotent producer, as a lost
AddPartitionsToTxn or a buggy client leaves one); it holds the last stable offset back for
good. kafka-python's abort_transaction (DescribeProducers, then WriteTxnMarkers with the
producer id and epoch) and a hand-encoded WriteTxnMarkers v1 (kwire) write the marker; the LSO
moves on, read_committed consumers see everything but the aborted records, across a restart;
markers from an older producer epoch or coordinator epoch are refused with Kafka's codes."""
from __future__ import annotations

import struct

from kafka import TopicPartition as KpTP
from kafka.admin import AbortTransactionSpec

import time

from kclients import cf_producer
from rivulet_harness import broker_binary, run_tool
from kwire import Conn, compact_string, uvarint
from test_transactions_support import (NONE, TXN_BROKER, cf_send_all, cf_txn_producer, create_topic, hwm, idem_batch, kp_admin,
                                       kp_read_topic, lso, raw, raw_init_pid, raw_produce, read_partition)

BROKER_OVERRIDES = TXN_BROKER

API_WRITE_TXN_MARKERS = 27
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_PRODUCER_EPOCH = 47
TRANSACTION_COORDINATOR_FENCED = 52


def plain(bootstrap: str, topic: str, vals: list) -> None:
    producer = cf_producer(bootstrap, linger_ms=0)
    cf_send_all(producer, [(topic, 0, v) for v in vals])


def hanging(bootstrap: str, topic: str, value: bytes, pid_epoch=None, sequence: int = 0,
            partition: int = 0, timestamp=None) -> tuple:
    """Writes a transactional batch no coordinator knows of; returns (pid, epoch, offset)."""
    with raw(bootstrap) as c:
        if pid_epoch is None:
            err, pid, epoch = raw_init_pid(c)
            assert err == NONE
        else:
            pid, epoch = pid_epoch
        err, offset = raw_produce(c, topic, partition, idem_batch(pid, epoch, sequence, [value], transactional=True,
                                                                  timestamp=timestamp))
        assert err == NONE, err
    return pid, epoch, offset


def open_transactions(bootstrap: str, topic: str) -> dict:
    """{producer id: (current transaction start offset, epoch, coordinator epoch)} from
    DescribeProducers (kafka-python), for producers with an open transaction."""
    admin = kp_admin(bootstrap)
    try:
        tp = KpTP(topic, 0)
        states = admin.describe_producers([tp])[tp].active_producers
    finally:
        admin.close()
    return {s.producer_id: (s.current_transaction_start_offset, s.producer_epoch, s.coordinator_epoch)
            for s in states if s.current_transaction_start_offset >= 0}


def committed(bootstrap: str, topic: str) -> list:
    return [r["value"] for r in read_partition(bootstrap, topic, 0, "read_committed")]


def uncommitted(bootstrap: str, topic: str) -> list:
    return [r["value"] for r in read_partition(bootstrap, topic, 0, "read_uncommitted")]


def test_kafka_python_aborts_a_hanging_transaction(broker, topic):
    b = broker.bootstrap
    create_topic(b, topic, 1)
    plain(b, topic, [b"a", b"b"])
    pid, epoch, offset = hanging(b, topic, b"hanging")
    assert offset == 2
    plain(b, topic, [b"c", b"d"])
    # The open transaction holds the LSO at its first offset for good: read_committed
    # consumers stop there.
    assert (lso(b, topic, 0), hwm(b, topic, 0)) == (2, 5)
    assert committed(b, topic) == [b"a", b"b"]
    opened = open_transactions(b, topic)
    assert list(opened) == [pid] and opened[pid][:2] == (2, epoch)

    admin = kp_admin(b)
    try:
        admin.abort_transaction(AbortTransactionSpec(topic_partition=KpTP(topic, 0), producer_id=pid,
                                                     producer_epoch=epoch, coordinator_epoch=opened[pid][2]))
    finally:
        admin.close()
    # The ABORT marker takes offset 5; the LSO moves to the end.
    assert (lso(b, topic, 0), hwm(b, topic, 0)) == (6, 6)
    assert open_transactions(b, topic) == {}
    assert committed(b, topic) == [b"a", b"b", b"c", b"d"]
    assert uncommitted(b, topic) == [b"a", b"b", b"hanging", b"c", b"d"]
    assert kp_read_topic(b, topic, 1, "read_committed") == {0: [b"a", b"b", b"c", b"d"]}
    # The marker and the aborted-transaction index survive a restart.
    broker.stop()
    broker.start()
    assert (lso(b, topic, 0), hwm(b, topic, 0)) == (6, 6)
    assert committed(b, topic) == [b"a", b"b", b"c", b"d"]
    assert kp_read_topic(b, topic, 1, "read_committed") == {0: [b"a", b"b", b"c", b"d"]}


def write_txn_markers_v1(bootstrap: str, markers: list) -> list:
    """Hand-encoded WriteTxnMarkers v1 (flexible). `markers`: [(pid, epoch, commit, coordinator
    epoch, {topic: [partitions]})]. Returns [(pid, {(topic, partition): error code})]."""
    body = uvarint(len(markers) + 1)
    for pid, epoch, commit, coordinator_epoch, topics in markers:
        body += struct.pack(">qh?", pid, epoch, commit)
        body += uvarint(len(topics) + 1)
        for name, partitions in topics.items():
            body += compact_string(name) + uvarint(len(partitions) + 1)
            body += b"".join(struct.pack(">i", p) for p in partitions) + uvarint(0)
        body += struct.pack(">i", coordinator_epoch) + uvarint(0)
    body += uvarint(0)
    with Conn.to(bootstrap) as conn:
        r = conn.request(API_WRITE_TXN_MARKERS, 1, body, flexible=True)
        r.tagged_fields()  # response header v1

        def partition(x):
            index, error = x.i32(), x.i16()
            x.tagged_fields()
            return index, error

        def topic(x):
            name = x.compact_string()
            parts = x.compact_array(partition)
            x.tagged_fields()
            return name, parts

        def marker(x):
            pid = x.i64()
            topics = x.compact_array(topic)
            x.tagged_fields()
            return pid, {(name, index): error for name, parts in topics for index, error in parts}

        out = r.compact_array(marker)
        r.tagged_fields()
        assert r.remaining() == 0
        return out


def test_hand_encoded_markers_abort_and_commit_with_epochs_checked(broker, topic):
    b = broker.bootstrap
    create_topic(b, topic, 1)
    plain(b, topic, [b"a"])
    pid, epoch, first = hanging(b, topic, b"aborted")
    assert first == 1
    # An unknown partition is answered on its own; the known one gets its marker (coordinator
    # epoch 5 from now on).
    assert write_txn_markers_v1(b, [(pid, epoch, False, 5, {topic: [0, 7]})]) == [
        (pid, {(topic, 0): NONE, (topic, 7): UNKNOWN_TOPIC_OR_PARTITION})]
    assert (lso(b, topic, 0), hwm(b, topic, 0)) == (3, 3)
    assert committed(b, topic) == [b"a"]

    # The same producer opens another transaction nobody coordinates.
    _, _, second = hanging(b, topic, b"committed", pid_epoch=(pid, epoch), sequence=1)
    assert second == 3 and lso(b, topic, 0) == 3
    # An older producer epoch, or an older coordinator epoch, is refused and writes nothing.
    assert write_txn_markers_v1(b, [(pid, epoch - 1, True, 5, {topic: [0]})]) == [
        (pid, {(topic, 0): INVALID_PRODUCER_EPOCH})]
    assert write_txn_markers_v1(b, [(pid, epoch, True, 4, {topic: [0]})]) == [
        (pid, {(topic, 0): TRANSACTION_COORDINATOR_FENCED})]
    assert (lso(b, topic, 0), hwm(b, topic, 0)) == (3, 4)
    # A COMMIT marker with the current epochs makes the record visible to read_committed.
    assert write_txn_markers_v1(b, [(pid, epoch, True, 5, {topic: [0]})]) == [(pid, {(topic, 0): NONE})]
    assert (lso(b, topic, 0), hwm(b, topic, 0)) == (5, 5)
    assert committed(b, topic) == [b"a", b"committed"]
    assert uncommitted(b, topic) == [b"a", b"aborted", b"committed"]
    assert open_transactions(b, topic) == {}


def test_rivulet_cli_finds_and_aborts_a_hanging_transaction(broker, topic):
    """rivulet-client through `rivulet transactions describe-producers|abort`, as an operator
    uses kafka-transactions.sh: find the producer holding the LSO, abort by start offset."""
    from test_transactions_rust_client import cli
    b = broker.bootstrap
    create_topic(b, topic, 1)
    plain(b, topic, [b"a"])
    pid, epoch, first = hanging(b, topic, b"stuck")
    plain(b, topic, [b"b"])
    assert (first, lso(b, topic, 0)) == (1, 1)
    rows = [line.split() for line in cli(["transactions", "describe-producers", "-b", b, "--topic", topic,
                                          "--partition", "0"]).splitlines()]
    assert rows[0][0] == "PRODUCER-ID" and rows[0][-1] == "CURRENT-TRANSACTION-START-OFFSET"
    # The raw producer's own row, open at offset 1: epoch, no marker seen yet (coordinator
    # epoch -1), last sequence 0, its batch's timestamp, the transaction's first offset.
    (row,) = [r for r in rows[1:] if r[0] == str(pid)]
    assert row[:4] == [str(pid), str(epoch), "-1", "0"] and int(row[4]) > 0 and row[5] == "1", row
    # An offset where no transaction starts is a usage error naming what to look at.
    res = run_tool([str(broker_binary()), "transactions", "abort", "-b", b, "--topic", topic, "--partition", "0",
                    "--start-offset", "2"], timeout=60, check=False)
    assert res.returncode == 2 and b"describe-producers" in res.stderr, res.stderr
    out = cli(["transactions", "abort", "-b", b, "--topic", topic, "--partition", "0", "--start-offset", "1"])
    assert f"producer {pid} (epoch {epoch})" in out, out
    assert (lso(b, topic, 0), hwm(b, topic, 0)) == (4, 4)
    assert committed(b, topic) == [b"a", b"b"]
    assert uncommitted(b, topic) == [b"a", b"stuck", b"b"]
    assert open_transactions(b, topic) == {}


def test_rivulet_cli_finds_hanging_transactions_but_not_coordinated_ones(broker, topic):
    """`rivulet transactions find-hanging`, as kafka-transactions.sh find-hanging: an open
    transaction whose last write is older than --max-transaction-timeout and that no
    coordinator has on record for its partition. A coordinated transaction with equally old
    records is not listed."""
    from test_transactions_rust_client import cli
    b = broker.bootstrap
    create_topic(b, topic, 2)
    twenty_minutes_ago = int(time.time() * 1000) - 20 * 60_000
    pid, epoch, start = hanging(b, topic, b"stuck", partition=0, timestamp=twenty_minutes_ago)
    coordinated = cf_txn_producer(b, f"{topic}-tx")
    coordinated.init_transactions(30)
    coordinated.begin_transaction()
    coordinated.produce(topic, b"old but coordinated", partition=1, timestamp=twenty_minutes_ago)
    assert coordinated.flush(30) == 0

    def rows(*args):
        lines = cli(["transactions", "find-hanging", "-b", b, *args]).splitlines()
        assert lines[0].split()[:3] == ["TOPIC", "PARTITION", "PRODUCER-ID"], lines
        return [line.split() for line in lines[1:] if line.split() and line.split()[0] == topic]

    found = rows("--topic", topic)
    assert [r[:6] for r in found] == [[topic, "0", str(pid), str(epoch), "-1", str(start)]], found
    assert int(found[0][7]) in (19, 20, 21)  # minutes since its last write
    assert [r[:3] for r in rows("--broker-id", "1")] == [[topic, "0", str(pid)]]
    assert rows("--topic", topic, "--partition", "1") == []
    assert rows("--topic", topic, "--max-transaction-timeout", "30") == []

    cli(["transactions", "abort", "-b", b, "--topic", topic, "--partition", "0", "--start-offset", str(start)])
    assert rows("--topic", topic) == []
    coordinated.commit_transaction(30)
    assert (lso(b, topic, 0), lso(b, topic, 1)) == (hwm(b, topic, 0), hwm(b, topic, 1))
