"""Shared helpers of the log-management interop tests (test_log_management_*.py); no tests here.

Configs are described and altered through confluent-kafka's AdminClient and kafka-python's
KafkaAdminClient; partitions are inspected on disk (segment files, the cleaner checkpoint) so
tests can state exactly which offsets a retention pass or a cleaning must leave.
"""
from __future__ import annotations

import socket
import struct
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, OffsetSpec,
                                   ResourceType)
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType as KpResourceType

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kclients import cf_admin, cf_create_topics, kp_admin  # noqa: E402
from rivulet_harness import wait_until  # noqa: E402

# Kafka's ConfigSource ids (DescribeConfigs).
DYNAMIC_TOPIC = 1
DYNAMIC_BROKER = 2
DYNAMIC_DEFAULT_BROKER = 3
STATIC_BROKER = 4
DEFAULT = 5
KP_SOURCE = {"DYNAMIC_TOPIC_CONFIG": DYNAMIC_TOPIC, "DYNAMIC_BROKER_CONFIG": DYNAMIC_BROKER,
             "DYNAMIC_DEFAULT_BROKER_CONFIG": DYNAMIC_DEFAULT_BROKER, "STATIC_BROKER_CONFIG": STATIC_BROKER,
             "DEFAULT_CONFIG": DEFAULT}

# Every topic config Kafka 4 lists for a topic, except the two tiered-storage switches
# (remote.log.copy.disable, remote.log.delete.on.disable) that Rivulet, without tiering, lacks.
KAFKA_TOPIC_CONFIGS = {
    "cleanup.policy", "compression.gzip.level", "compression.lz4.level", "compression.type",
    "compression.zstd.level", "delete.retention.ms", "file.delete.delay.ms", "flush.messages", "flush.ms",
    "follower.replication.throttled.replicas", "index.interval.bytes",
    "leader.replication.throttled.replicas", "local.retention.bytes", "local.retention.ms",
    "max.compaction.lag.ms", "max.message.bytes", "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms", "message.timestamp.type", "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms", "min.insync.replicas", "preallocate", "remote.storage.enable",
    "retention.bytes", "retention.ms", "segment.bytes", "segment.index.bytes", "segment.jitter.ms",
    "segment.ms", "unclean.leader.election.enable",
}


def src(value) -> int:
    """A confluent-kafka ConfigSource (enum or int) as Kafka's id."""
    return int(getattr(value, "value", value))


# ============================================================================ topics

def create_topic(bootstrap: str, name: str, partitions: int = 1, config: Optional[dict] = None) -> None:
    codes = cf_create_topics(bootstrap, [NewTopic(name, partitions, 1, config=dict(config or {}))])
    assert codes == {name: 0}, codes


# ============================================================================ configs (confluent-kafka)

def cf_describe(bootstrap: str, name: str, kind=ResourceType.TOPIC) -> dict:
    """DescribeConfigs via confluent-kafka: {config name: ConfigEntry}."""
    admin = cf_admin(bootstrap)
    resource = ConfigResource(kind, name)
    return admin.describe_configs([resource], request_timeout=20)[resource].result(timeout=30)


def cf_summary(entries: dict, name: str) -> tuple:
    """(value, source id, is_default, [(synonym name, value, source id)]) of one described config.
    confluent-kafka keys synonyms by name, so a name listed under two sources shows once."""
    e = entries[name]
    return (e.value, src(e.source), e.is_default,
            [(s.name, s.value, src(s.source)) for s in e.synonyms.values()])


def cf_incremental(bootstrap: str, name: str, ops: Sequence[tuple], kind=ResourceType.TOPIC,
                   validate_only: bool = False):
    """IncrementalAlterConfigs via confluent-kafka; ops = [(key, "SET"|"DELETE"|"APPEND"|"SUBTRACT", value)].
    Returns None on success, else the KafkaError."""
    entries = [ConfigEntry(key, value, incremental_operation=getattr(AlterConfigOpType, op))
               for key, op, value in ops]
    resource = ConfigResource(kind, name, incremental_configs=entries)
    admin = cf_admin(bootstrap)
    fut = admin.incremental_alter_configs([resource], validate_only=validate_only, request_timeout=20)[resource]
    try:
        fut.result(timeout=30)
        return None
    except KafkaException as exc:
        return exc.args[0]


def cf_alter_legacy(bootstrap: str, name: str, configs: dict, kind=ResourceType.TOPIC):
    """AlterConfigs (the whole set of overrides) via confluent-kafka. None on success, else the error."""
    resource = ConfigResource(kind, name, set_config=dict(configs))
    admin = cf_admin(bootstrap)
    fut = admin.alter_configs([resource], request_timeout=20)[resource]
    try:
        fut.result(timeout=30)
        return None
    except KafkaException as exc:
        return exc.args[0]


def set_topic_config(bootstrap: str, topic: str, **configs) -> None:
    """SET topic configs (keys with '_' for '.') and assert success."""
    ops = [(k.replace("_", "."), "SET", str(v)) for k, v in configs.items()]
    err = cf_incremental(bootstrap, topic, ops)
    assert err is None, err


# ============================================================================ configs (kafka-python)

def kp_describe(bootstrap: str, name: str, kind: str = "topic") -> dict:
    """DescribeConfigs via kafka-python with synonyms, every key: {name: {value, config_source,
    read_only, synonyms: [{name, value, source}], config_type, ...}}."""
    rtype = KpResourceType.TOPIC if kind == "topic" else KpResourceType.BROKER
    admin = kp_admin(bootstrap)
    try:
        out = admin.describe_configs([KpConfigResource(rtype, name)], include_synonyms=True, config_filter="all")
    finally:
        admin.close()
    return out[kind][name]


class Raw:
    """One blocking connection speaking kafka-python's generated request classes; for what
    neither client can send (the cluster-wide broker default resource, name "")."""

    def __init__(self, bootstrap: str, timeout: float = 20.0):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.cid = 0

    def _exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("connection closed by the broker")
            buf += chunk
        return bytes(buf)

    def call(self, request_cls, response_cls, version: int, **fields):
        self.cid += 1
        req = request_cls(version=version, **_structs(request_cls, fields))
        req.with_header(correlation_id=self.cid, client_id="rivulet-logmgmt-raw")
        self.sock.sendall(req.encode(header=True, framed=True))
        (size,) = struct.unpack(">i", self._exact(4))
        return response_cls.decode(self._exact(size), version=version, header=True)

    def close(self):
        self.sock.close()


def _structs(cls, fields: dict) -> dict:
    """Nested dicts (and lists of them) to kafka-python's generated struct classes."""
    out = {}
    for name, value in fields.items():
        field = cls._struct.fields.get(name)
        if field is not None and (field.is_struct() or field.is_struct_array()) and value is not None:
            sub = field.data_class
            conv = lambda v: sub(**_structs(sub, v)) if isinstance(v, dict) else v  # noqa: E731
            value = [conv(v) for v in value] if isinstance(value, list) else conv(value)
        out[name] = value
    return out


OPS = {"SET": 0, "DELETE": 1, "APPEND": 2, "SUBTRACT": 3}


def raw_incremental(bootstrap: str, resource_type: int, name: str, ops: Sequence[tuple]) -> tuple:
    """IncrementalAlterConfigs v1 on the wire: (error code, message) of the one resource."""
    from kafka.protocol.admin import IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse
    raw = Raw(bootstrap)
    try:
        resp = raw.call(IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, 1, validate_only=False,
                        resources=[{"resource_type": resource_type, "resource_name": name,
                                    "configs": [{"name": k, "config_operation": OPS[op], "value": v} for k, op, v in ops]}])
    finally:
        raw.close()
    (r,) = resp.responses
    return r.error_code, r.error_message


def raw_describe(bootstrap: str, resource_type: int, name: str, documentation: bool = False, keys=None) -> tuple:
    """DescribeConfigs v4 on the wire with synonyms: (error code, {name: (value, source id,
    read_only, [(synonym name, value, source id)])}), or with `documentation`, {name:
    (config type id, documentation)}."""
    from kafka.protocol.admin import DescribeConfigsRequest, DescribeConfigsResponse
    raw = Raw(bootstrap)
    try:
        resp = raw.call(DescribeConfigsRequest, DescribeConfigsResponse, 4, include_synonyms=True,
                        include_documentation=documentation,
                        resources=[{"resource_type": resource_type, "resource_name": name, "configuration_keys": keys}])
    finally:
        raw.close()
    (r,) = resp.results
    if documentation:
        return r.error_code, {c.name: (c.config_type, c.documentation) for c in r.configs}
    return r.error_code, {c.name: (c.value, c.config_source, c.read_only,
                                   [(s.name, s.value, s.source) for s in c.synonyms]) for c in r.configs}


def kp_incremental(bootstrap: str, name: str, configs: dict, kind: str = "topic"):
    """IncrementalAlterConfigs via kafka-python; configs = {key: (op name, value) or value (SET)}.
    Returns "OK" or the error text kafka-python reports."""
    rtype = KpResourceType.TOPIC if kind == "topic" else KpResourceType.BROKER
    admin = kp_admin(bootstrap)
    try:
        out = admin.alter_configs([KpConfigResource(rtype, name, configs=dict(configs))], incremental=True,
                                  raise_on_unknown=False)
    finally:
        admin.close()
    return str(out[kind][name])


def kp_summary(entries: dict, name: str) -> tuple:
    """(value, source id, read_only, [(synonym name, value, source id)]) in the broker's order."""
    e = entries[name]
    return (e["value"], KP_SOURCE[e["config_source"]], e["read_only"],
            [(s["name"], s["value"], KP_SOURCE[s["source"]]) for s in e["synonyms"]])


# ============================================================================ offsets

def cf_offsets(bootstrap: str, topic: str, partition: int = 0) -> tuple:
    """(earliest, latest) via the AdminClient's ListOffsets."""
    admin = cf_admin(bootstrap)
    tp = TopicPartition(topic, partition)
    out = []
    for spec in (OffsetSpec.earliest(), OffsetSpec.latest()):
        out.append(admin.list_offsets({tp: spec}, request_timeout=20)[tp].result(timeout=30).offset)
    return tuple(out)


def wait_log_start(bootstrap: str, topic: str, expected: int, partition: int = 0, timeout: float = 20.0) -> None:
    last = []

    def reached():
        last[:] = [cf_offsets(bootstrap, topic, partition)]
        return last[0][0] == expected

    try:
        wait_until(reached, timeout, f"log start offset of {topic}[{partition}] to become {expected}", interval=0.1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; (earliest, latest) is {last[0] if last else None}") from None


# ============================================================================ disk

def segments(partition_dir: Path) -> list:
    """[(base offset, .log size)] of a partition directory, by base offset."""
    out = []
    for p in partition_dir.glob("*.log"):
        stem = p.name[:-4]
        if len(stem) == 20 and stem.isdigit():
            try:
                size = p.stat().st_size
            except FileNotFoundError:
                continue  # renamed to .deleted by retention between the listing and the stat
            out.append((int(stem), size))
    return sorted(out)


def segment_holding(partition_dir: Path, offset: int) -> int:
    """Base offset of the segment that holds `offset` (the greatest base <= offset)."""
    return max(base for base, _ in segments(partition_dir) if base <= offset)


def cleaner_checkpoint(data_dir: Path) -> dict:
    """{(topic, partition): offset} from `cleaner-offset-checkpoint` (Kafka's checkpoint format)."""
    path = data_dir / "cleaner-offset-checkpoint"
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return {}
    out = {}
    for line in lines[2:]:
        parts = line.split()
        if len(parts) == 3:
            out[(parts[0], int(parts[1]))] = int(parts[2])
    return out


def wait_cleaned_to(data_dir: Path, topic: str, offset: int, partition: int = 0, timeout: float = 30.0) -> None:
    """Wait until the cleaner's checkpoint says `topic[partition]` is clean up to `offset`."""
    wait_until(lambda: cleaner_checkpoint(data_dir).get((topic, partition), -1) >= offset, timeout,
               f"the cleaner to clean {topic}[{partition}] up to {offset} "
               f"(checkpoint: {cleaner_checkpoint(data_dir)})", interval=0.1)


def compacted_model(records: Sequence[dict], active_base: int) -> list:
    """What a cleaning that covered every offset below `active_base` leaves: below it, the latest
    record of each key (tombstones included); from it on, everything. `records` are the
    produced records in offset order with their offsets."""
    latest = {}
    for r in records:
        if r["offset"] < active_base:
            latest[r["key"]] = r["offset"]
    return [r for r in records if r["offset"] >= active_base or latest[r["key"]] == r["offset"]]


def now_ms() -> int:
    return int(time.time() * 1000)
