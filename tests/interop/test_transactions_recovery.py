"""Transactions that outlive their producer or the broker: a transaction left open by a killed
producer holds back the last stable offset until the coordinator aborts it at its timeout; the
operator's view of that (ListTransactions, DescribeTransactions, DescribeProducers with
kafka-python's admin client); broker restarts (SIGTERM and kill -9) with committed, aborted
and open transactions."""
from __future__ import annotations

import struct
import time

import pytest
from kafka import TopicPartition as KpTP
from kafka.errors import TransactionalIdNotFoundError

from kclients import cf_producer
from rivulet_harness import wait_until
from test_transactions_support import (NONE, TXN_BROKER, Proc, cf_send_all, cf_txn_producer, close_all_procs,
                                       create_topic, hwm, idem_batch, kp_admin, lso, raw, raw_init_pid, raw_produce,
                                       read_topic, values)

BROKER_OVERRIDES = TXN_BROKER


@pytest.fixture(autouse=True)
def _procs():
    yield
    close_all_procs()


def state_of(admin, txn_id: str) -> str:
    return str(admin.describe_transactions([txn_id])[txn_id].state.value)


def open_txn_start(admin, topic: str, partition: int) -> dict:
    """{producer id: current transaction start offset} of producers with an open transaction."""
    tp = KpTP(topic, partition)
    states = admin.describe_producers([tp])[tp].active_producers
    return {s.producer_id: s.current_transaction_start_offset for s in states if s.current_transaction_start_offset >= 0}


def test_killed_producers_transaction_is_aborted_at_its_timeout(broker, topic, tmp_path):
    """A producer writes to two partitions in a transaction and is killed with SIGKILL. Until
    its transaction.timeout.ms the transaction is Ongoing, listed and described, and holds the
    LSO at its first offset (a non-transactional record written after it is invisible to
    read_committed); then the coordinator aborts it: the LSO moves to the high watermark,
    read_committed sees everything but the aborted records."""
    create_topic(broker.bootstrap, topic, 2)
    cf_send_all(cf_producer(broker.bootstrap), [(topic, 0, b"before-0"), (topic, 1, b"before-1")])
    tx = f"{topic}-tx"
    holder = Proc.python("hold-open", {"bootstrap": broker.bootstrap, "transactional_id": tx,
                                       "transaction_timeout_ms": 4000,
                                       "records": [[topic, p, f"open-{p}-{i}"] for p in range(2) for i in range(3)]},
                         tmp_path, "holder")
    holder.wait_for(lambda e: e["ev"] == "open", 30, "the open transaction")
    started = time.monotonic()
    holder.kill9()
    cf_send_all(cf_producer(broker.bootstrap), [(topic, 0, b"after-0")])

    admin = kp_admin(broker.bootstrap)
    try:
        listed = [t for ts in admin.list_transactions().values() for t in ts if t.transactional_id == tx]
        assert len(listed) == 1 and str(listed[0].state.value) == "Ongoing", listed
        pid = listed[0].producer_id
        assert [t.transactional_id for ts in admin.list_transactions(state_filters=["Ongoing"]).values()
                for t in ts if t.transactional_id == tx] == [tx]
        assert [t for ts in admin.list_transactions(producer_id_filters=[pid]).values() for t in ts][0].producer_id == pid
        assert not [t for ts in admin.list_transactions(state_filters=["CompleteCommit"]).values()
                    for t in ts if t.transactional_id == tx]
        running = lambda ms: [t.transactional_id for ts in admin.list_transactions(duration_filter_ms=ms).values()  # noqa: E731
                              for t in ts if t.transactional_id == tx]
        assert running(1) == [tx] and running(600_000) == []
        desc = admin.describe_transactions([tx])[tx]
        assert str(desc.state.value) == "Ongoing" and desc.producer_id == pid
        assert desc.transaction_timeout_ms == 4000 and desc.transaction_start_time_ms > 0
        assert desc.topic_partitions == {KpTP(topic, 0), KpTP(topic, 1)}
        # which producer holds back the LSO of each partition, and where
        for p in range(2):
            assert open_txn_start(admin, topic, p) == {pid: 1}
            assert lso(broker.bootstrap, topic, p) == 1
        assert hwm(broker.bootstrap, topic, 0) == 5
        assert values(read_topic(broker.bootstrap, topic, 2, "read_committed")) == {0: [b"before-0"], 1: [b"before-1"]}

        wait_until(lambda: state_of(admin, tx) == "CompleteAbort", 20, "the coordinator to abort the transaction")
        assert time.monotonic() - started >= 3.0, "aborted before its timeout"
        assert admin.describe_transactions([tx])[tx].producer_epoch > desc.producer_epoch, "the producer was not fenced"
        for p in range(2):
            assert open_txn_start(admin, topic, p) == {}
        assert lso(broker.bootstrap, topic, 0) == hwm(broker.bootstrap, topic, 0) == 6
        assert lso(broker.bootstrap, topic, 1) == hwm(broker.bootstrap, topic, 1) == 5
        assert values(read_topic(broker.bootstrap, topic, 2, "read_committed")) == {
            0: [b"before-0", b"after-0"], 1: [b"before-1"]}
        assert values(read_topic(broker.bootstrap, topic, 2, "read_uncommitted"))[0] == (
            [b"before-0"] + [f"open-0-{i}".encode() for i in range(3)] + [b"after-0"])
        with pytest.raises(TransactionalIdNotFoundError):
            admin.describe_transactions(["no-such-transactional-id"])
    finally:
        admin.close()


def test_admin_view_of_a_committed_transaction(broker, topic):
    create_topic(broker.bootstrap, topic, 1)
    tx = f"{topic}-tx"
    producer = cf_txn_producer(broker.bootstrap, tx)
    producer.init_transactions(30)
    admin = kp_admin(broker.bootstrap)
    try:
        assert state_of(admin, tx) == "Empty"
        producer.begin_transaction()
        cf_send_all(producer, [(topic, 0, b"a"), (topic, 0, b"b")])
        assert state_of(admin, tx) == "Ongoing"
        pid = admin.describe_transactions([tx])[tx].producer_id
        assert open_txn_start(admin, topic, 0) == {pid: 0}
        producer.commit_transaction(30)
        assert state_of(admin, tx) == "CompleteCommit"
        assert admin.describe_transactions([tx])[tx].topic_partitions == set()
        assert open_txn_start(admin, topic, 0) == {}
        tp = KpTP(topic, 0)
        (state,) = admin.describe_producers([tp])[tp].active_producers
        assert (state.producer_id, state.last_sequence, state.current_transaction_start_offset) == (pid, 1, -1)
    finally:
        admin.close()


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_broker_restart_with_open_and_completed_transactions(broker_factory, topic, how):
    """Committed, aborted and open transactions (and an idempotent producer's last batch) before
    a restart; after it: read_committed is unchanged and stops at the open transaction, which
    is still Ongoing and which its producer (alive across the restart) then commits."""
    b = broker_factory(overrides=TXN_BROKER)
    create_topic(b.bootstrap, topic, 2)
    tx = f"{topic}-tx"
    producer = cf_txn_producer(b.bootstrap, tx)
    producer.init_transactions(30)
    recs = {name: [(topic, p, f"{name}-{p}-{i}".encode()) for p in range(2) for i in range(2)]
            for name in ("c1", "a1", "c2", "open")}
    for name, commit in [("c1", True), ("a1", False), ("c2", True)]:
        producer.begin_transaction()
        cf_send_all(producer, recs[name])
        (producer.commit_transaction if commit else producer.abort_transaction)(30)
    producer.begin_transaction()
    cf_send_all(producer, recs["open"])
    with raw(b.bootstrap) as c:
        _, pid, _ = raw_init_pid(c)
        assert raw_produce(c, topic, 1, idem_batch(pid, 0, 0, [b"idem-0", b"idem-1"])) == (NONE, 11)
    committed = {p: [v for name in ("c1", "c2") for t, q, v in recs[name] if q == p] for p in range(2)}
    assert values(read_topic(b.bootstrap, topic, 2, "read_committed")) == committed

    if how == "kill9":
        b.kill9()
    else:
        b.stop()
    b.start()
    admin = kp_admin(b.bootstrap)
    try:
        assert state_of(admin, tx) == "Ongoing"
        assert lso(b.bootstrap, topic, 0) == lso(b.bootstrap, topic, 1) == 9
        assert values(read_topic(b.bootstrap, topic, 2, "read_committed")) == committed
        with raw(b.bootstrap) as c:
            assert raw_produce(c, topic, 1, idem_batch(pid, 0, 0, [b"idem-0", b"idem-1"])) == (NONE, 11)
        producer.commit_transaction(60)
        assert state_of(admin, tx) == "CompleteCommit"
    finally:
        admin.close()
    committed = {p: [v for name in ("c1", "c2", "open") for t, q, v in recs[name] if q == p] for p in range(2)}
    committed[1] += [b"idem-0", b"idem-1"]
    assert values(read_topic(b.bootstrap, topic, 2, "read_committed")) == committed
    assert lso(b.bootstrap, topic, 0) == hwm(b.bootstrap, topic, 0) == 12
    # and a new instance of the transactional id still works after the restart
    successor = cf_txn_producer(b.bootstrap, tx)
    successor.init_transactions(30)
    successor.begin_transaction()
    cf_send_all(successor, [(topic, 0, b"after")])
    successor.commit_transaction(30)
    assert values(read_topic(b.bootstrap, topic, 1, "read_committed"))[0][-1] == b"after"


def test_open_transaction_aborted_by_a_new_instance_after_kill9(broker_factory, topic, tmp_path):
    """The broker is killed while a transaction is open and its producer is killed too; after the
    restart a new instance with the same transactional.id fences it and aborts it at once."""
    b = broker_factory(overrides=TXN_BROKER)
    create_topic(b.bootstrap, topic, 1)
    tx = f"{topic}-tx"
    holder = Proc.python("hold-open", {"bootstrap": b.bootstrap, "transactional_id": tx,
                                       "transaction_timeout_ms": 60000,
                                       "records": [[topic, 0, f"open-{i}"] for i in range(3)]}, tmp_path, "holder")
    holder.wait_for(lambda e: e["ev"] == "open", 30, "the open transaction")
    holder.kill9()
    b.kill9()
    b.start()
    assert lso(b.bootstrap, topic, 0) == 0 and hwm(b.bootstrap, topic, 0) == 3
    successor = cf_txn_producer(b.bootstrap, tx)
    successor.init_transactions(30)
    assert lso(b.bootstrap, topic, 0) == hwm(b.bootstrap, topic, 0) == 4
    successor.begin_transaction()
    cf_send_all(successor, [(topic, 0, b"new")])
    successor.commit_transaction(30)
    assert values(read_topic(b.bootstrap, topic, 1, "read_committed")) == {0: [b"new"]}


# ---------------------------------------------------------------------------- a crash between
# PrepareCommit/PrepareAbort and the markers

def java_hash_partition(s: str, partitions: int) -> int:
    h = 0
    for ch in s:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    if h >= 2**31:
        h -= 2**32
    return 0 if h == -2**31 else abs(h) % partitions


def append_record_to_log(partition_dir, key: bytes, value: bytes) -> int:
    """Appends a one-record batch at the log end of the partition's last segment (the broker
    must be down and restart unclean, so recovery indexes it). Returns its offset."""
    from kwire import _crc32c, varint
    segment = sorted(partition_dir.glob("*.log"))[-1]
    data = segment.read_bytes()
    next_offset, pos = int(segment.stem), 0
    while pos + 12 <= len(data):
        base, length = struct.unpack(">qi", data[pos:pos + 12])
        last_delta = struct.unpack(">i", data[pos + 23:pos + 27])[0]
        next_offset, pos = base + last_delta + 1, pos + 12 + length
    ts = int(time.time() * 1000)
    rec = b"\x00" + varint(0) + varint(0) + varint(len(key)) + key + varint(len(value)) + value + varint(0)
    after_crc = struct.pack(">hiqqqhii", 0, 0, ts, ts, -1, -1, -1, 1) + varint(len(rec)) + rec
    after_length = struct.pack(">ibI", 0, 2, _crc32c(after_crc)) + after_crc
    with open(segment, "ab") as f:
        f.write(struct.pack(">qi", next_offset, len(after_length)) + after_length)
    return next_offset


def txn_state_value(pid: int, epoch: int, timeout_ms: int, status: int, partitions: dict, start_ms: int) -> bytes:
    def s(x: str) -> bytes:
        return struct.pack(">h", len(x)) + x.encode()
    out = struct.pack(">hqhib", 0, pid, epoch, timeout_ms, status) + struct.pack(">i", len(partitions))
    for topic, ps in sorted(partitions.items()):
        out += s(topic) + struct.pack(">i", len(ps)) + b"".join(struct.pack(">i", p) for p in ps)
    return out + struct.pack(">qq", int(time.time() * 1000), start_ms)


@pytest.mark.parametrize("outcome", ["commit", "abort"])
def test_a_prepared_transaction_is_completed_at_start_up(broker_factory, topic, tmp_path, outcome):
    """The broker dies after persisting PrepareCommit (or PrepareAbort) and before writing any
    marker (simulated: the Prepare record is appended to __transaction_state while it is down).
    At start-up the coordinator writes the markers and completes the transaction."""
    b = broker_factory(overrides=TXN_BROKER)
    create_topic(b.bootstrap, topic, 2)
    tx = f"{topic}-tx"
    holder = Proc.python("hold-open", {"bootstrap": b.bootstrap, "transactional_id": tx,
                                       "transaction_timeout_ms": 60000,
                                       "records": [[topic, p, f"held-{p}-{i}"] for p in range(2) for i in range(2)]},
                         tmp_path, "holder")
    holder.wait_for(lambda e: e["ev"] == "open", 30, "the open transaction")
    holder.kill9()
    admin = kp_admin(b.bootstrap)
    try:
        desc = admin.describe_transactions([tx])[tx]
    finally:
        admin.close()
    assert str(desc.state.value) == "Ongoing"
    b.kill9()
    key = struct.pack(">h", 0) + struct.pack(">h", len(tx)) + tx.encode()
    value = txn_state_value(desc.producer_id, desc.producer_epoch, desc.transaction_timeout_ms,
                            2 if outcome == "commit" else 3, {topic: [0, 1]}, desc.transaction_start_time_ms)
    append_record_to_log(b.partition_dir("__transaction_state", java_hash_partition(tx, 50)), key, value)
    b.start()
    admin = kp_admin(b.bootstrap)
    try:
        assert state_of(admin, tx) == ("CompleteCommit" if outcome == "commit" else "CompleteAbort")
    finally:
        admin.close()
    held = {p: [f"held-{p}-{i}".encode() for i in range(2)] for p in range(2)}
    assert values(read_topic(b.bootstrap, topic, 2, "read_committed")) == (
        held if outcome == "commit" else {0: [], 1: []})
    for p in range(2):
        assert lso(b.bootstrap, topic, p) == hwm(b.bootstrap, topic, p) == 3
