"""Clients of the last decade (issue 19): the Go clients Debian ships, and
kafka-python speaking the protocol of Kafka 0.9 and 0.10 (message formats 0 and 1,
the request versions Kafka 4 removed). Each produces keyed records (with headers
where its format has them) with a codec, consumes them in a group of two, commits,
and makes admin calls; the outcomes are checked exactly. Each test records what it
ran in the compatibility table (conftest.py `compat`, scripts/compat-table.py).

kafkajs 0.8.1 and 1.3.0 (npm) run from tests/interop/js-old.

The Go programs are in tests/interop/go, built by scripts/build-go-clients.sh (the
test script runs it) into target/go/bin.
"""
from __future__ import annotations

import json
import time

import pytest

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

import kafka as kafka_python
from rivulet_harness import REPO_ROOT, run_tool, wait_until

GO_BIN = REPO_ROOT / "target" / "go" / "bin"
RECORDS = 20


def go(program: str, *args: str, timeout: float = 150.0) -> dict:
    path = GO_BIN / program
    assert path.is_file(), f"{path} missing: run scripts/build-go-clients.sh (scripts/test.sh does)"
    return json.loads(run_tool([str(path), *args], timeout=timeout).stdout)


def expected_records(headers: bool) -> list[dict]:
    """Record i: key ki, value vi, header h=i, on partition i % 2 at offset i // 2."""
    out = []
    for p in (0, 1):
        for i in range(p, RECORDS, 2):
            rec = {"partition": p, "offset": i // 2, "key": f"k{i}", "value": f"v{i}"}
            if headers is not None:
                rec["headers"] = {"h": str(i)} if headers else {}
            out.append(rec)
    return out


def produced_positions() -> list[list[int]]:
    return [[i % 2, i // 2] for i in range(RECORDS)]


@pytest.mark.parametrize("version,codec", [
    ("0.10.2.0", "snappy"),   # Produce v2 / Fetch v3-4: message format 1, down-converted fetches
    ("0.11.0.0", "lz4"),      # message format 2, admin at DescribeConfigs v0, CreateTopics v1
    ("2.1.0", "gzip"),        # the case: ListTopics sends DescribeConfigs v0
])
def test_sarama(broker, topic, compat, version, codec):
    headers = version != "0.10.2.0"
    compat(client="sarama (Go, Debian golang-github-shopify-sarama-dev)", version="1.22.1",
           level=f"Kafka {version}, {codec}",
           calls="produce (keys" + (", headers" if headers else "") + "), group of two, commit, "
                 "ListConsumerGroupOffsets, CreateTopic, ListTopics, DescribeConfig, AlterConfig, DeleteTopic")
    out = go("saramacheck", broker.bootstrap, topic, version, codec)
    assert out == {
        "admin_version": "0.11.0.0" if version == "0.10.2.0" else version,
        "topics": [topic, f"{topic}-doomed"],
        "partitions": 2,
        "retention_ms": "604800000",
        "altered_retention_ms": "86400000",
        "produced": produced_positions(),
        "consumed": expected_records(headers),
        "member_partition_counts": [1, 1],
        "committed": {"0": 10, "1": 10},
        "deleted": True,
        "errors": [],
    }


def test_kafka_go(broker, topic, compat):
    compat(client="kafka-go (Go, Debian golang-github-segmentio-kafka-go-dev)", version="0.2.1",
           level="its own (message format 1), snappy",
           calls="produce (keys), group of two with sync commits, resume at committed offsets, "
                 "CreateTopics, ReadPartitions, DeleteTopics")
    out = go("kafkagocheck", broker.bootstrap, topic, "snappy")
    assert out == {
        "partitions": 2,
        "consumed": expected_records(None),
        "member_partition_counts": [1, 1],
        # Two more records, read by a new member from the committed offsets.
        "resumed": [{"partition": 0, "offset": 10, "key": "k20", "value": "v20"},
                    {"partition": 1, "offset": 10, "key": "k21", "value": "v21"}],
        "deleted": True,
    }


def test_confluent_kafka_go(broker, topic, compat):
    row = compat(client="confluent-kafka-go (Go, Debian golang-github-confluentinc-confluent-kafka-go-dev)",
                 version="0.11.6", level="negotiated (ApiVersions), zstd",
                 calls="produce (keys, headers), group of two, commit, Committed, CreateTopics, "
                       "DescribeConfigs, AlterConfigs, DeleteTopics")
    out = go("ckgcheck", broker.bootstrap, topic, "zstd")
    librdkafka = out.pop("librdkafka")
    row["version"] = f"0.11.6 on librdkafka {librdkafka}"
    assert out == {
        "retention_ms": "604800000",
        "altered_retention_ms": "86400000",
        "produced": produced_positions(),
        "consumed": expected_records(True),
        "member_partition_counts": [1, 1],
        "committed": {"0": 10, "1": 10},
        "deleted": True,
    }


@pytest.mark.parametrize("api_version,codec", [((0, 10), "gzip"), ((0, 9), "snappy")])
def test_kafka_python_speaking_old_protocols(broker, topic, compat, api_version, codec):
    """kafka-python pinned to a pre-0.11 broker: Produce v1/v2 with message formats 0/1,
    Fetch v1/v2 answered with down-converted message sets, ListOffsets v0, groups v0."""
    level = ".".join(map(str, api_version))
    compat(client="kafka-python", version=kafka_python.__version__,
           level=f"Kafka {level} (message format {0 if api_version == (0, 9) else 1}), {codec}; admin at 0.11",
           calls="produce (keys), group of two, commit, committed, CreateTopics, AlterConfigs, "
                 "DescribeConfigs, DeleteTopics")
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, api_version=api_version,
                             compression_type=codec, acks="all")
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, api_version=(0, 11))
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1),
                         NewTopic(f"{topic}-doomed", num_partitions=1, replication_factor=1)])
    produced = []
    for i in range(RECORDS):
        meta = producer.send(topic, key=b"k%d" % i, value=b"v%d" % i, partition=i % 2).get(timeout=30)
        produced.append([meta.partition, meta.offset])
    producer.close()
    assert produced == produced_positions()

    # A group of two; each takes one partition, reads it, commits.
    group = f"{topic}-group"
    consumers = [KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, api_version=api_version,
                               group_id=group, auto_offset_reset="earliest", enable_auto_commit=False)
                 for _ in range(2)]
    seen: dict = {}

    def poll_all():
        for c in consumers:
            for records in c.poll(timeout_ms=200).values():
                for r in records:
                    seen[(r.partition, r.offset)] = (r.key.decode(), r.value.decode(), r.timestamp)
        return len(seen) >= RECORDS and all(len(c.assignment()) == 1 for c in consumers)

    wait_until(poll_all, timeout=60, what="both members to read all records")
    for c in consumers:
        c.commit()
    committed = {p: consumers[0].committed(TopicPartition(topic, p)) for p in (0, 1)}
    for c in consumers:
        c.close()
    got = [{"partition": p, "offset": o, "key": k, "value": v} for (p, o), (k, v, _) in sorted(seen.items())]
    assert got == expected_records(None)
    # Message format 0 has no timestamps; format 1 carries the producer's.
    stamps = {ts for (_, _, ts) in seen.values()}
    if api_version == (0, 9):
        assert stamps == {None}
    else:
        assert all(isinstance(ts, int) and ts > 1_600_000_000_000 for ts in stamps)
    assert committed == {0: 10, 1: 10}

    # Admin at Kafka 0.11's versions: DescribeConfigs v0, CreateTopics/DeleteTopics v0-1.
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "86400000"})
    admin.alter_configs([resource])
    described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    # {resource_type: {resource_name: {config_key: {config data}}}}
    (by_name,) = described.values()
    values = {key: data["value"] for key, data in by_name[topic].items()}
    assert values["retention.ms"] == "86400000"
    admin.delete_topics([f"{topic}-doomed"])
    wait_until(lambda: f"{topic}-doomed" not in admin.list_topics(), timeout=30, what="topic deleted")
    admin.close()


OLD_VENV_PYTHON = REPO_ROOT / ".venv-old-clients" / "bin" / "python"
OLD_KAFKA_PYTHON = REPO_ROOT / "tests" / "interop" / "old" / "kafka_python_old.py"


@pytest.mark.parametrize("api_version,admin_version", [("0.9", 0), ("0.10.1", 0), ("1.0", 1)])
def test_oldest_kafka_python(broker, topic, compat, api_version, admin_version):
    """kafka-python 1.4.3 (2018), the oldest release that runs on this Python, from its
    own venv, at the protocol of Kafka 0.9 (message format 0), 0.10.1 (format 1) and
    1.0 (format 2); admin calls through its protocol classes (it has no admin client)."""
    compat(client="kafka-python (oldest that runs on Python 3.11)", version="1.4.3",
           level=f"Kafka {api_version}, gzip",
           calls=f"produce (keys), group of two, commit, committed, CreateTopics v{admin_version}, "
                 "DescribeConfigs v0, DeleteTopics v0")
    assert OLD_VENV_PYTHON.is_file(), "run scripts/install-test-deps.sh (.venv-old-clients)"
    out = json.loads(run_tool([str(OLD_VENV_PYTHON), str(OLD_KAFKA_PYTHON), broker.bootstrap, topic,
                               api_version, "gzip", str(admin_version)], timeout=150).stdout)
    assert out == {
        "version": "1.4.3",
        "created": [[topic, 0], [f"{topic}-doomed", 0]],
        "produced": produced_positions(),
        "members": [1, 1],
        "committed": {"0": 10, "1": 10},
        "consumed": expected_records(None),
        "retention_ms": [["retention.ms", "604800000"]],
        "deleted": [[f"{topic}-doomed", 0]],
    }


OLD_KAFKAJS = REPO_ROOT / "tests" / "interop" / "js-old"


def test_oldest_kafkajs(broker, topic, compat):
    """kafkajs 0.8.1 (2018), the oldest release on npm with a consumer (0.1.0-0.3.1 only
    produce), from tests/interop/js-old. It picks Produce v2 (message format 1, no
    headers) and Fetch v3 (down-converted to format 1), JoinGroup v0 and OffsetCommit v2,
    and gzip. It has no admin client (that came in 1.1.0, and 1.1.0 and 1.2.0 are not on
    npm; 1.0.0 and 1.0.1 have none), so the admin calls are made with 1.3.0, the oldest
    release on npm that has one."""
    compat(client="kafkajs (oldest with a consumer on npm)", version="0.8.1, admin client 1.3.0",
           level="Produce v2, Fetch v3 (message format 1), JoinGroup v0, OffsetCommit v2, gzip",
           calls="produce (keys), group of two, commit; with 1.3.0: CreateTopics, fetchOffsets (OffsetFetch), "
                 "setOffsets")
    script = OLD_KAFKAJS / "oldcheck.mjs"
    assert (OLD_KAFKAJS / "node_modules" / "kafkajs-0.8.1").is_dir(), \
        "run scripts/install-test-deps.sh (tests/interop/js-old)"
    out = json.loads(run_tool(["node", str(script), broker.bootstrap, topic, "0.8.1"], timeout=150).stdout)
    assert out == {
        "client": "0.8.1",
        "admin": "1.3.0",
        "created": True,
        "produced": produced_positions(),
        "consumed": expected_records(None),
        "member_partitions": [[0], [1]],
        "committed": {"0": 10, "1": 10},
        "set_offsets": {"0": 3, "1": 7},
    }
