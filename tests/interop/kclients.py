"""Thin, uniform wrappers around the four real clients used by the interop suite.

Every consume helper returns records normalized to plain dicts:
    {"partition": int, "offset": int, "key": bytes|None, "value": bytes|None,
     "headers": [(str, bytes|None), ...], "timestamp": int, "timestamp_type": "create"|"append"|None}
so results from confluent-kafka (librdkafka 2.16), kafka-python 3.x, kcat (librdkafka 2.0)
and kafkajs can be compared with `==`.

None of the consumers join a group or commit offsets: Rivulet does not implement the group
APIs yet. confluent-kafka insists on a `group.id`, so one is set with auto-commit off; it is
only used for manual `assign()`.
"""
from __future__ import annotations

import base64
import json
import time
from typing import Iterable, Optional, Sequence

from confluent_kafka import (OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException,
                             Producer, TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition
from kafka.admin import KafkaAdminClient

from rivulet_harness import kcat, node_script

GROUP_ID_UNUSED = "rivulet-interop-no-group"  # required by confluent-kafka, never joined


def rec(value, key=None, headers=None, timestamp=None, partition=None, offset=None) -> dict:
    """Build a record spec (for producing) / expected record (for comparing)."""
    return {"key": key, "value": value, "headers": list(headers or []), "timestamp": timestamp,
            "partition": partition, "offset": offset}


def comparable(records: Iterable[dict], fields=("partition", "offset", "key", "value", "headers",
                                                  "timestamp")) -> list:
    """Project records onto `fields` (as tuples) for exact comparisons."""
    out = []
    for r in records:
        out.append(tuple(tuple(r[f]) if f == "headers" else r[f] for f in fields))
    return out


def b64(v: Optional[bytes]) -> Optional[str]:
    return None if v is None else base64.b64encode(v).decode()


# ============================================================================ confluent-kafka

def _dots(conf: dict) -> dict:
    """kwargs use '_' where librdkafka uses '.': compression_type -> compression.type."""
    return {k.replace("_", "."): v for k, v in conf.items()}


def cf_conf(bootstrap: str, extra: Optional[dict] = None) -> dict:
    conf = {
        "bootstrap.servers": bootstrap,
        "socket.timeout.ms": 10000,
        "broker.address.family": "v4",
    }
    conf.update(extra or {})
    return conf


def _cf_norm(m) -> dict:
    ts_type, ts = m.timestamp()
    return {
        "partition": m.partition(), "offset": m.offset(), "key": m.key(), "value": m.value(),
        "headers": [(k, v) for k, v in (m.headers() or [])], "timestamp": ts,
        "timestamp_type": {1: "create", 2: "append"}.get(ts_type),
    }


def cf_produce(bootstrap: str, topic: str, records: Sequence[dict], *, flush_timeout: float = 60.0,
               **conf) -> list[dict]:
    """Produce `records` (see `rec`) with confluent-kafka and wait for every delivery report.

    Returns one dict per record, in order: {"partition", "offset", "error"} where error is the
    KafkaError (or None). Extra librdkafka config via kwargs with '_' for '.', e.g.
    acks="all", compression_type="zstd", linger_ms=50.
    """
    producer = cf_producer(bootstrap, **conf)
    results: list[Optional[dict]] = [None] * len(records)

    def make_cb(i):
        def cb(err, msg):
            results[i] = {"partition": msg.partition(), "offset": msg.offset(), "error": err}
        return cb

    for i, r in enumerate(records):
        kwargs = {"topic": topic, "value": r.get("value"), "key": r.get("key"), "on_delivery": make_cb(i)}
        if r.get("headers"):
            kwargs["headers"] = list(r["headers"])
        if r.get("partition") is not None:
            kwargs["partition"] = r["partition"]
        if r.get("timestamp") is not None:
            kwargs["timestamp"] = r["timestamp"]
        while True:
            try:
                producer.produce(**kwargs)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(flush_timeout)
    assert remaining == 0, f"confluent producer: {remaining} messages not delivered within {flush_timeout}s"
    assert all(r is not None for r in results), "missing delivery reports"
    return results  # type: ignore[return-value]


class CfReader:
    """confluent-kafka Consumer on one manually assigned partition (no group membership)."""

    def __init__(self, bootstrap: str, topic: str, partition: int, offset: int, **conf):
        base = {
            "group.id": GROUP_ID_UNUSED,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
            "allow.auto.create.topics": False,
        }
        base.update(_dots(conf))
        self.errors: list = []
        # Coordinator-related errors are expected (no group APIs yet): collect, don't fail.
        base["error_cb"] = self.errors.append
        self.topic, self.partition = topic, partition
        self.consumer = Consumer(cf_conf(bootstrap, base))
        self.consumer.assign([TopicPartition(topic, partition, offset)])
        self.records: list[dict] = []
        self.last_eof: Optional[int] = None  # offset of the latest PARTITION_EOF event

    def poll_once(self, timeout: float = 0.2) -> Optional[str]:
        m = self.consumer.poll(timeout)
        if m is None:
            return None
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                self.last_eof = m.offset()
                return "eof"
            raise KafkaException(m.error())
        self.records.append(_cf_norm(m))
        return "record"

    def read_until_eof(self, min_records: int = 0, timeout: float = 30.0) -> list[dict]:
        """Poll until at least `min_records` new records arrived and then the partition EOF is
        reported (i.e. the consumer is at the high watermark). Returns the new records."""
        start = len(self.records)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ev = self.poll_once()
            if ev == "eof" and len(self.records) - start >= min_records:
                return self.records[start:]
        raise AssertionError(
            f"confluent consumer: no EOF after >= {min_records} records within {timeout}s on "
            f"{self.topic}[{self.partition}]; got {len(self.records) - start}: "
            f"{[r['offset'] for r in self.records[start:]][:50]}")

    def position(self) -> int:
        return self.consumer.position([TopicPartition(self.topic, self.partition)])[0].offset

    def wait_eof_at(self, expected: int, timeout: float = 20.0) -> None:
        """Poll until the fetcher reports PARTITION_EOF at offset `expected` (librdkafka's
        position() only moves when a record is consumed, so an offset reset to END, or an
        OFFSET_END assignment, is observed through the EOF event's offset)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.poll_once(0.1) == "eof" and self.last_eof == expected:
                return
        raise AssertionError(f"confluent consumer: last EOF at {self.last_eof}, expected {expected}; "
                             f"records read: {[r['offset'] for r in self.records][:50]}")

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def cf_read(bootstrap: str, topic: str, partition: int = 0, offset: int = OFFSET_BEGINNING,
            min_records: int = 0, timeout: float = 30.0, **conf) -> list[dict]:
    """Read from `offset` until EOF with confluent-kafka."""
    with CfReader(bootstrap, topic, partition, offset, **conf) as r:
        return r.read_until_eof(min_records=min_records, timeout=timeout)


def cf_admin(bootstrap: str) -> AdminClient:
    return AdminClient(cf_conf(bootstrap))


def cf_producer(bootstrap: str, **conf) -> Producer:
    base = {"enable.idempotence": False, "linger.ms": 5, "message.timeout.ms": 30000, "acks": "all"}
    base.update(_dots(conf))
    return Producer(cf_conf(bootstrap, base))


def _future_code(fut, timeout: float = 30.0) -> int:
    try:
        fut.result(timeout=timeout)
        return 0
    except KafkaException as exc:
        return exc.args[0].code()


def cf_create_topics(bootstrap: str, topics: Sequence[NewTopic], validate_only: bool = False) -> dict:
    """CreateTopics via confluent-kafka AdminClient; returns {topic: kafka error code (0 = ok)}."""
    admin = cf_admin(bootstrap)  # must outlive the futures (else they fail with _DESTROY)
    fs = admin.create_topics(list(topics), operation_timeout=10, request_timeout=20,
                             validate_only=validate_only)
    return {t: _future_code(f) for t, f in fs.items()}


def cf_delete_topics(bootstrap: str, topics: Sequence[str]) -> dict:
    admin = cf_admin(bootstrap)
    fs = admin.delete_topics(list(topics), operation_timeout=10, request_timeout=20)
    return {t: _future_code(f) for t, f in fs.items()}


# ============================================================================ kafka-python

def _kp_norm(r) -> dict:
    return {
        "partition": r.partition, "offset": r.offset, "key": r.key, "value": r.value,
        "headers": [(k, v) for k, v in (r.headers or [])], "timestamp": r.timestamp,
        "timestamp_type": {0: "create", 1: "append"}.get(r.timestamp_type),
    }


def kp_producer(bootstrap: str, **conf) -> KafkaProducer:
    base = dict(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all", linger_ms=5,
                retries=3, request_timeout_ms=30000, max_block_ms=30000)
    base.update(conf)
    return KafkaProducer(**base)


def kp_produce(bootstrap: str, topic: str, records: Sequence[dict], **conf) -> list[dict]:
    """Produce with kafka-python; returns [{"partition", "offset"}] (raises on send errors)."""
    producer = kp_producer(bootstrap, **conf)
    try:
        futures = []
        for r in records:
            futures.append(producer.send(topic, value=r.get("value"), key=r.get("key"),
                                         headers=list(r.get("headers") or []),
                                         partition=r.get("partition"), timestamp_ms=r.get("timestamp")))
        producer.flush(timeout=60)
        out = []
        for f in futures:
            md = f.get(timeout=60)
            out.append({"partition": md.partition, "offset": md.offset})
        return out
    finally:
        producer.close(timeout=10)


class KpReader:
    """kafka-python KafkaConsumer with group_id=None on one assigned partition."""

    def __init__(self, bootstrap: str, topic: str, partition: int, offset=None, **conf):
        base = dict(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                    auto_offset_reset="earliest", fetch_max_wait_ms=100, request_timeout_ms=30000)
        base.update(conf)
        self.consumer = KafkaConsumer(**base)
        self.tp = KpTopicPartition(topic, partition)
        self.consumer.assign([self.tp])
        if offset == "beginning":
            self.consumer.seek_to_beginning(self.tp)
        elif offset == "end":
            self.consumer.seek_to_end(self.tp)
        elif offset is not None:
            self.consumer.seek(self.tp, offset)
        self.records: list[dict] = []

    def poll_once(self, timeout_ms: int = 200) -> int:
        batch = self.consumer.poll(timeout_ms=timeout_ms)
        n = 0
        for tp, recs in batch.items():
            assert tp == self.tp, f"unexpected partition {tp}"
            self.records.extend(_kp_norm(r) for r in recs)
            n += len(recs)
        return n

    def end_offset(self) -> int:
        return self.consumer.end_offsets([self.tp])[self.tp]

    def position(self) -> int:
        return self.consumer.position(self.tp)

    def read_until_offset(self, end_offset: int, timeout: float = 30.0) -> list[dict]:
        """Poll until the consumer position reaches `end_offset`; returns the new records."""
        start = len(self.records)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.consumer.position(self.tp) == end_offset:
                return self.records[start:]
            self.poll_once()
        raise AssertionError(
            f"kafka-python consumer did not reach offset {end_offset} within {timeout}s; "
            f"got offsets {[r['offset'] for r in self.records[start:]][:50]}")

    def read_to_end(self, timeout: float = 30.0) -> list[dict]:
        """Read until the high watermark observed now."""
        return self.read_until_offset(self.end_offset(), timeout=timeout)

    def wait_position(self, expected: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll_once(100)
            if self.consumer.position(self.tp) == expected:
                return
        raise AssertionError(f"kafka-python position is {self.consumer.position(self.tp)}, expected {expected}")

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def kp_read(bootstrap: str, topic: str, partition: int = 0, offset="beginning", timeout: float = 30.0,
            **conf) -> list[dict]:
    """Read from `offset` up to the current high watermark with kafka-python."""
    with KpReader(bootstrap, topic, partition, offset, **conf) as r:
        return r.read_to_end(timeout=timeout)


def kp_admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)


# ============================================================================ kcat

def kcat_read(bootstrap: str, topic: str, partition: int = 0, offset="beginning",
              extra: Sequence[str] = (), timeout: float = 30.0) -> list[dict]:
    """Consume with `kcat -C -e -J` from `offset` (int, 'beginning', 'end', 's@<ts>') to EOF.
    kcat's JSON envelope carries key/payload as text, so use it with UTF-8 data only."""
    proc = kcat(bootstrap, ["-C", "-t", topic, "-p", str(partition), "-o", str(offset), "-e", "-J",
                            "-q", "-X", "broker.address.family=v4", *extra], timeout=timeout)
    out = []
    for line in proc.stdout.decode("utf-8").splitlines():
        if not line.strip():
            continue
        j = json.loads(line)
        hdrs = j.get("headers") or []
        out.append({
            "partition": j["partition"], "offset": j["offset"],
            "key": None if j.get("key") is None else j["key"].encode(),
            "value": None if j.get("payload") is None else j["payload"].encode(),
            "headers": [(hdrs[i], None if hdrs[i + 1] is None else hdrs[i + 1].encode())
                        for i in range(0, len(hdrs), 2)],
            "timestamp": j.get("ts"), "timestamp_type": j.get("tstype"),
        })
    return out


def kcat_produce(bootstrap: str, topic: str, lines: Sequence[bytes], *, partition: Optional[int] = None,
                 key_delim: Optional[str] = None, headers: Sequence[str] = (),
                 compression: Optional[str] = None, acks=None, null_empty: bool = False,
                 extra: Sequence[str] = (), timeout: float = 30.0, check: bool = True):
    """Produce newline-delimited `lines` with `kcat -P`."""
    args = ["-P", "-t", topic, "-X", "broker.address.family=v4"]
    if partition is not None:
        args += ["-p", str(partition)]
    if key_delim is not None:
        args += ["-K", key_delim]
    for h in headers:
        args += ["-H", h]
    if compression is not None:
        args += ["-X", f"compression.codec={compression}"]
    if acks is not None:
        args += ["-X", f"acks={acks}"]
    if null_empty:
        args.append("-Z")
    args += list(extra)
    data = b"".join(l + b"\n" for l in lines)
    return kcat(bootstrap, args, input=data, timeout=timeout, check=check)


def kcat_metadata(bootstrap: str, topic: Optional[str] = None) -> dict:
    args = ["-L", "-J", "-X", "broker.address.family=v4"]
    if topic is not None:
        args += ["-t", topic]
    return json.loads(kcat(bootstrap, args).stdout)


def kcat_query_offset(bootstrap: str, topic: str, partition: int, timestamp: int) -> int:
    """`kcat -Q -t topic:partition:ts` (ListOffsets by timestamp)."""
    proc = kcat(bootstrap, ["-Q", "-J", "-X", "broker.address.family=v4", "-t",
                            f"{topic}:{partition}:{timestamp}"])
    doc = json.loads(proc.stdout)
    return doc[topic][str(partition)]["offset"]


# ============================================================================ kafkajs

def _js_msg(r: dict) -> dict:
    m = {"key": b64(r.get("key")), "value": b64(r.get("value"))}
    if r.get("partition") is not None:
        m["partition"] = r["partition"]
    if r.get("timestamp") is not None:
        m["timestamp"] = r["timestamp"]
    if r.get("headers"):
        m["headers"] = [[k, b64(v)] for k, v in r["headers"]]
    return m


def js_produce(bootstrap: str, topic: str, sends: Sequence[Sequence[dict]], *, acks: int = -1,
               compression: str = "none", timeout: float = 90.0, **opts) -> dict:
    """Produce with kafkajs; each element of `sends` is one producer.send() call."""
    args = {"brokers": [bootstrap], "topic": topic, "acks": acks, "compression": compression,
            "sends": [{"messages": [_js_msg(r) for r in batch]} for batch in sends]}
    args.update(opts)
    return node_script("produce", args, timeout=timeout)


def js_admin(bootstrap: str, ops: Sequence[dict], timeout: float = 90.0, **opts) -> list:
    args = {"brokers": [bootstrap], "ops": list(ops)}
    args.update(opts)
    return node_script("admin", args, timeout=timeout)


def js_admin1(bootstrap: str, op: dict, **kw):
    """Run one admin op; returns its {ok, result|error} entry."""
    return js_admin(bootstrap, [op], **kw)[0]


def kp_create_topics(bootstrap: str, spec: dict, validate_only: bool = False) -> dict:
    """CreateTopics via kafka-python; spec = {name: {num_partitions, replication_factor, configs}}.
    Returns {name: error code}."""
    admin = kp_admin(bootstrap)
    try:
        res = admin.create_topics(spec, validate_only=validate_only, raise_errors=False, timeout_ms=10000)
    finally:
        admin.close()
    return {t["name"]: t["error_code"] for t in res["topics"]}


def kp_delete_topics(bootstrap: str, topics: Sequence[str]) -> dict:
    admin = kp_admin(bootstrap)
    try:
        res = admin.delete_topics(list(topics), raise_errors=False, timeout_ms=10000)
    finally:
        admin.close()
    return {t["name"]: t["error_code"] for t in res["topics"]}


def js_error_types(err: Optional[dict]) -> list:
    """All kafkajs error `type`s in a serialized error tree (aggregate errors, causes)."""
    out = []
    stack = [err]
    while stack:
        e = stack.pop()
        if not e:
            continue
        if e.get("type"):
            out.append(e["type"])
        stack.extend(e.get("errors") or [])
        stack.append(e.get("cause"))
    return out


def js_topic_errors(err: dict) -> dict:
    """{topic: type} of every per-topic kafkajs error (KafkaJSCreateTopicError etc.) anywhere in a
    serialized error tree (aggregate errors, retry wrappers' causes)."""
    out = {}
    stack = [err]
    while stack:
        e = stack.pop()
        if not e:
            continue
        if e.get("topic") is not None and e.get("type"):
            out[e["topic"]] = e["type"]
        stack.extend(e.get("errors") or [])
        stack.append(e.get("cause"))
    return out


def cf_watermarks(bootstrap: str, topic: str, partition: int = 0) -> tuple:
    """(low, high) watermarks via confluent-kafka Consumer.get_watermark_offsets (ListOffsets)."""
    c = Consumer(cf_conf(bootstrap, {"group.id": GROUP_ID_UNUSED, "enable.auto.commit": False,
                                     "allow.auto.create.topics": False}))
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    finally:
        c.close()


def wait_hwm(bootstrap: str, topic: str, partition: int, expected: int, timeout: float = 20.0) -> None:
    """Poll until the partition's high watermark equals `expected` (e.g. after acks=0)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cf_watermarks(bootstrap, topic, partition)
        if last[1] == expected:
            return
        if last[1] > expected:
            raise AssertionError(f"high watermark {last[1]} overshot expected {expected}")
        time.sleep(0.1)
    raise AssertionError(f"high watermark of {topic}[{partition}] is {last}, expected {expected}")
