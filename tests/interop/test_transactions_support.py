"""Shared machinery of the transaction interop tests (test_transactions_*.py); no tests here.

* Brokers: `TXN_BROKER` overrides make the coordinator's timeout sweep and group joins fast.
* Readers: `read_topic` reads every partition of a topic to its end with confluent-kafka in
  read_committed or read_uncommitted (librdkafka reports EOF at the last stable offset in
  read_committed), `kp_read_topic` does the same with kafka-python.
* `Raw` (from test_groups_support) plus `idem_batch` / `raw_init_pid` / `raw_produce` /
  `raw_list_offset`: exact wire-level checks of the KIP-98 rules (duplicates answered with the
  original offset, OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH...).
* Client processes that a test can SIGKILL, run from this file as a script
  (`python test_transactions_support.py <role> '<json>'`), printing one JSON event per line:
  - `processor`: a confluent-kafka consume-transform-produce loop (group member,
    read_committed, `send_offsets_to_transaction`), events produced / offsets_sent / committed /
    idle / error;
  - `hold-open`: a transactional producer that writes, flushes, prints `open` and sleeps with
    the transaction open (to be killed).
  `Proc` runs either (or `node js/txn_*.mjs`) and collects the events.
"""
from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

TXN_BROKER = {
    # the coordinator's sweep of timed-out transactions (Kafka: 10 s)
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": 200,
    "group.initial.rebalance.delay.ms": 0,
    "group.min.session.timeout.ms": 500,
}

# Kafka error codes used by the tests.
NONE = 0
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
DUPLICATE_SEQUENCE_NUMBER = 46
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
INVALID_TRANSACTION_TIMEOUT = 50
PRODUCER_FENCED = 90


def create_topic(bootstrap: str, name: str, partitions: int, **configs) -> None:
    from confluent_kafka.admin import NewTopic
    from kclients import cf_create_topics
    topic = NewTopic(name, partitions, 1, config={k.replace("_", "."): str(v) for k, v in configs.items()})
    assert cf_create_topics(bootstrap, [topic]) == {name: 0}


# ============================================================================ readers

def read_partition(bootstrap: str, topic: str, partition: int, isolation: str, timeout: float = 30.0) -> list[dict]:
    """Every record of one partition up to its end (LSO in read_committed) with confluent-kafka."""
    from kclients import CfReader, OFFSET_BEGINNING
    with CfReader(bootstrap, topic, partition, OFFSET_BEGINNING, isolation_level=isolation) as r:
        return r.read_until_eof(timeout=timeout)


def read_topic(bootstrap: str, topic: str, partitions: int, isolation: str) -> dict:
    """{partition: [records]} for every partition."""
    return {p: read_partition(bootstrap, topic, p, isolation) for p in range(partitions)}


def values(by_partition: dict) -> dict:
    return {p: [r["value"] for r in recs] for p, recs in by_partition.items()}


def kp_read_topic(bootstrap: str, topic: str, partitions: int, isolation: str) -> dict:
    """{partition: [values]} with kafka-python, up to the end offset its isolation level sees."""
    from kclients import KpReader
    out = {}
    for p in range(partitions):
        with KpReader(bootstrap, topic, p, "beginning", isolation_level=isolation) as r:
            out[p] = [rec["value"] for rec in r.read_to_end()]
    return out


# ============================================================================ raw protocol

def raw(bootstrap: str):
    from test_groups_support import Raw
    return Raw(bootstrap, client_id="rivulet-txn-raw")


def idem_batch(producer_id: int, epoch: int, base_sequence: int, values_: Sequence[bytes],
               transactional: bool = False, timestamp: Optional[int] = None) -> bytes:
    """An uncompressed v2 record batch carrying a producer id, epoch and base sequence."""
    from kwire import _crc32c, varint
    ts = int(time.time() * 1000) if timestamp is None else timestamp
    body = bytearray()
    for i, v in enumerate(values_):
        rb = b"\x00" + varint(0) + varint(i) + varint(-1) + varint(len(v)) + v + varint(0)
        body += varint(len(rb)) + rb
    attributes = 0x10 if transactional else 0
    n = len(values_)
    after_crc = struct.pack(">hiqqqhii", attributes, n - 1, ts, ts, producer_id, epoch, base_sequence, n) + bytes(body)
    after_length = struct.pack(">ibI", -1, 2, _crc32c(after_crc)) + after_crc
    return struct.pack(">qi", 0, len(after_length)) + after_length


def raw_init_pid(conn, transactional_id: Optional[str] = None, timeout_ms: int = 60000, version: int = 1):
    """InitProducerId; returns (error_code, producer_id, epoch)."""
    from kafka.protocol.producer.transaction import InitProducerIdRequest
    kw = dict(transactional_id=transactional_id, transaction_timeout_ms=timeout_ms)
    if version >= 3:
        kw.update(producer_id=-1, producer_epoch=-1)
    r = conn.call(InitProducerIdRequest, version, **kw)
    return r.error_code, r.producer_id, r.producer_epoch


def raw_produce(conn, topic: str, partition: int, batch: bytes, version: int = 7,
                transactional_id: Optional[str] = None) -> tuple:
    """Produce one batch; returns (error_code, base_offset)."""
    from kafka.protocol.producer.produce import ProduceRequest
    r = conn.call(ProduceRequest, version, transactional_id=transactional_id, acks=-1, timeout_ms=10000,
                  topic_data=[{"name": topic, "partition_data": [{"index": partition, "records": batch}]}])
    part = r.responses[0].partition_responses[0]
    return part.error_code, part.base_offset


def raw_list_offset(conn, topic: str, partition: int, isolation: int, timestamp: int = -1) -> int:
    """ListOffsets v4 latest (-1) in an isolation level: the HWM (0) or the LSO (1)."""
    from kafka.protocol.consumer.offsets import ListOffsetsRequest
    r = conn.call(ListOffsetsRequest, 4, replica_id=-1, isolation_level=isolation,
                  topics=[{"name": topic, "partitions": [{"partition_index": partition, "current_leader_epoch": -1,
                                                           "timestamp": timestamp}]}])
    part = r.topics[0].partitions[0]
    assert part.error_code == 0, part
    return part.offset


def lso(bootstrap: str, topic: str, partition: int) -> int:
    with raw(bootstrap) as c:
        return raw_list_offset(c, topic, partition, 1)


def hwm(bootstrap: str, topic: str, partition: int) -> int:
    with raw(bootstrap) as c:
        return raw_list_offset(c, topic, partition, 0)


# ============================================================================ clients

def cf_txn_producer(bootstrap: str, transactional_id: str, **conf):
    from confluent_kafka import Producer
    from kclients import cf_conf
    base = {"transactional.id": transactional_id, "linger.ms": 5, "transaction.timeout.ms": 60000}
    base.update({k.replace("_", "."): v for k, v in conf.items()})
    base.setdefault("message.timeout.ms", base["transaction.timeout.ms"])
    return Producer(cf_conf(bootstrap, base))


def cf_send_all(producer, records: Sequence[tuple]) -> None:
    """Produce (topic, partition, value) tuples and flush; delivery errors fail."""
    errors = []

    def cb(err, msg):
        if err is not None:
            errors.append(err)

    for topic, partition, value in records:
        producer.produce(topic, value=value, partition=partition, on_delivery=cb)
    assert producer.flush(30) == 0
    assert not errors, errors


def kp_admin(bootstrap: str):
    from kclients import kp_admin as make
    return make(bootstrap)


# ============================================================================ processes

LIVE_PROCS: list["Proc"] = []


def _emit(ev: dict) -> None:
    ev.setdefault("ts", time.monotonic())
    sys.stdout.write(json.dumps(ev) + "\n")
    sys.stdout.flush()


class Proc:
    """A client process printing JSON events on stdout; SIGKILL-able."""

    def __init__(self, cmd: list, workdir: Path, name: str):
        self.name = name
        self.events: list[dict] = []
        self.cond = threading.Condition()
        self.stderr_path = Path(workdir) / f"{name}.stderr.log"
        self.stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.stderr,
                                     cwd=str(HERE), start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()
        LIVE_PROCS.append(self)

    @classmethod
    def python(cls, role: str, doc: dict, workdir: Path, name: str) -> "Proc":
        return cls([sys.executable, str(HERE / "test_transactions_support.py"), role, json.dumps(doc)], workdir, name)

    @classmethod
    def node(cls, script: str, doc: dict, workdir: Path, name: str) -> "Proc":
        return cls(["node", str(HERE / "js" / f"{script}.mjs"), json.dumps(doc)], workdir, name)

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self.cond:
                self.events.append(ev)
                self.cond.notify_all()
        with self.cond:
            self.events.append({"ev": "exit"})
            self.cond.notify_all()

    def of(self, kind: str) -> list:
        with self.cond:
            return [e for e in self.events if e["ev"] == kind]

    def wait_for(self, pred, timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        with self.cond:
            seen = 0
            while True:
                for ev in self.events[seen:]:
                    if ev["ev"] == "error":
                        raise AssertionError(f"{self.name} failed: {ev}\n{self.stderr_tail()}")
                    if pred(ev):
                        return ev
                    if ev["ev"] == "exit":
                        raise AssertionError(f"{self.name} exited (code {self.proc.poll()}) before {what}\n"
                                             f"{self.stderr_tail()}")
                seen = len(self.events)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.name}: timed out after {timeout}s waiting for {what}; "
                                         f"last events {self.events[-5:]}\n{self.stderr_tail()}")
                self.cond.wait(left)

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running after {timeout}s; last events "
                                 f"{self.events[-5:]}\n{self.stderr_tail()}") from None

    def kill9(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        self.stderr.close()
        if self in LIVE_PROCS:
            LIVE_PROCS.remove(self)

    def stderr_tail(self, n: int = 4000) -> str:
        try:
            return self.stderr_path.read_bytes()[-n:].decode(errors="replace")
        except FileNotFoundError:
            return ""


def close_all_procs() -> None:
    for p in list(LIVE_PROCS):
        p.close()


# ============================================================================ roles

def transform(value: bytes) -> bytes:
    return b"out-" + value


def run_processor(spec: dict) -> None:
    """Consume-transform-produce, exactly once: each poll's records go to the output topic (same
    partition, transformed) in one transaction with the consumer's positions."""
    from confluent_kafka import Consumer, KafkaException, Producer
    from kclients import cf_conf
    consumer = Consumer(cf_conf(spec["bootstrap"], {
        "group.id": spec["group"], "isolation.level": "read_committed", "enable.auto.commit": False,
        "auto.offset.reset": "earliest", "session.timeout.ms": spec.get("session_ms", 3000),
        "heartbeat.interval.ms": 300, "fetch.wait.max.ms": 100}))
    producer = Producer(cf_conf(spec["bootstrap"], {
        "transactional.id": spec["transactional_id"], "linger.ms": 5,
        "transaction.timeout.ms": spec.get("transaction_timeout_ms", 60000)}))
    producer.init_transactions(30)
    _emit({"ev": "ready"})
    consumer.subscribe([spec["input"]])
    idle_since = time.monotonic()
    total = 0
    while True:
        msgs = consumer.consume(spec.get("batch", 50), 0.2)
        msgs = [m for m in msgs if m.error() is None]
        if not msgs:
            if spec.get("exit_when_idle_s") and time.monotonic() - idle_since > spec["exit_when_idle_s"]:
                break
            continue
        idle_since = time.monotonic()
        producer.begin_transaction()
        for m in msgs:
            producer.produce(spec["output"], key=m.key(), value=transform(m.value()), partition=m.partition())
        producer.flush(30)
        _emit({"ev": "produced", "n": len(msgs)})
        if spec.get("pause_in_txn_s"):
            time.sleep(spec["pause_in_txn_s"])
        positions = consumer.position(consumer.assignment())
        producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
        _emit({"ev": "offsets_sent"})
        if spec.get("pause_after_offsets_s"):
            time.sleep(spec["pause_after_offsets_s"])
        try:
            producer.commit_transaction(30)
        except KafkaException as exc:
            err = exc.args[0]
            if err.txn_requires_abort():
                producer.abort_transaction(30)
                raise
            raise
        total += len(msgs)
        _emit({"ev": "committed", "n": len(msgs), "total": total})
    _emit({"ev": "idle", "total": total})
    consumer.close()


def run_hold_open(spec: dict) -> None:
    """Begin a transaction, write `records` ([topic, partition, value]), flush, print `open`,
    and sleep with it open (the test kills this process)."""
    from confluent_kafka import Producer
    from kclients import cf_conf
    producer = Producer(cf_conf(spec["bootstrap"], {
        "transactional.id": spec["transactional_id"], "linger.ms": 0,
        "transaction.timeout.ms": spec["transaction_timeout_ms"],
        "message.timeout.ms": spec["transaction_timeout_ms"],
        "socket.timeout.ms": min(10000, spec["transaction_timeout_ms"])}))
    producer.init_transactions(30)
    producer.begin_transaction()
    for topic, partition, value in spec["records"]:
        producer.produce(topic, value=value.encode(), partition=partition)
    assert producer.flush(30) == 0
    _emit({"ev": "open"})
    time.sleep(600)


if __name__ == "__main__":
    role, doc = sys.argv[1], json.loads(sys.argv[2])
    try:
        {"processor": run_processor, "hold-open": run_hold_open}[role](doc)
    except Exception as exc:  # noqa: BLE001 - reported as an event, then exit non-zero
        import traceback
        traceback.print_exc()
        _emit({"ev": "error", "msg": repr(exc)})
        sys.exit(1)
