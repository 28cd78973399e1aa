"""DeleteRecords, CreatePartitions, DescribeLogDirs, DescribeCluster and ElectLeaders with
confluent-kafka and kafka-python: exact low watermarks, the records that remain, segment
files removed, new partitions usable and configured like the topic, sizes equal to the
files on disk."""
from __future__ import annotations

import os

import pytest
from confluent_kafka import OFFSET_END, ElectionType, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import NewPartitions
from kafka import TopicPartition as KTP
from kafka.admin import NewPartitions as KpNewPartitions

from kclients import (CfReader, cf_admin, cf_produce, cf_read, kcat_metadata, kp_admin, kp_produce, kp_read,
                      rec)
from rivulet_harness import wait_until
from test_log_management_support import Raw, cf_offsets, create_topic, segments

BROKER_OVERRIDES = {"log.retention.check.interval.ms": "200", "log.flush.offset.checkpoint.interval.ms": "200"}


def cf_delete_records(bootstrap: str, topic: str, offset: int, partition: int = 0):
    """DeleteRecords via confluent-kafka: the new low watermark, or the KafkaError."""
    admin = cf_admin(bootstrap)
    tp = TopicPartition(topic, partition, offset)
    fut = admin.delete_records([tp], request_timeout=20)[tp]
    try:
        return fut.result(timeout=30).low_watermark
    except KafkaException as exc:
        return exc.args[0]


def values(records):
    return [(r["offset"], r["value"]) for r in records]


def produce_numbered(bootstrap: str, topic: str, n: int, partition: int = 0, start: int = 0):
    res = cf_produce(bootstrap, topic, [rec(b"v%03d" % i, key=b"k%d" % i, partition=partition) for i in range(start, start + n)],
                     batch_num_messages=1, linger_ms=0)
    assert [r["error"] for r in res] == [None] * n
    return res


def test_delete_records_moves_the_log_start_and_removes_segments(broker, topic):
    b = broker.bootstrap
    create_topic(b, topic, config={"segment.bytes": "400"})
    produce_numbered(b, topic, 20)
    pdir = broker.partition_dir(topic, 0)
    bases_before = [base for base, _ in segments(pdir)]
    assert len(bases_before) > 3, bases_before

    assert cf_delete_records(b, topic, 7) == 7
    assert cf_offsets(b, topic) == (7, 20)
    # Only segments wholly below 7 are gone; the one holding 7 stays.
    holding = max(base for base in bases_before if base <= 7)
    assert [base for base, _ in segments(pdir)] == [base for base in bases_before if base >= holding]
    assert values(cf_read(b, topic, offset=0, min_records=13)) == [(i, b"v%03d" % i) for i in range(7, 20)]
    assert values(kp_read(b, topic, offset="beginning")) == [(i, b"v%03d" % i) for i in range(7, 20)]

    # Below the log start: nothing moves, the answer is the current low watermark.
    assert cf_delete_records(b, topic, 3) == 7
    # Past the high watermark: OFFSET_OUT_OF_RANGE.
    err = cf_delete_records(b, topic, 21)
    assert isinstance(err, KafkaError) and err.code() == KafkaError.OFFSET_OUT_OF_RANGE, err

    admin = kp_admin(b)
    try:
        res = admin.delete_records({KTP(topic, 0): 12})
    finally:
        admin.close()
    assert res == {KTP(topic, 0): {"partition_index": 0, "low_watermark": 12, "error_code": 0}}, res
    assert values(kp_read(b, topic, offset="beginning")) == [(i, b"v%03d" % i) for i in range(12, 20)]

    # OFFSET_END (-1): up to the high watermark; the log stays appendable at 20.
    assert cf_delete_records(b, topic, OFFSET_END) == 20
    assert cf_offsets(b, topic) == (20, 20)
    produce_numbered(b, topic, 2, start=20)
    assert values(cf_read(b, topic, offset=0, min_records=2)) == [(20, b"v020"), (21, b"v021")]

    # The log start offset is checkpointed: a restart keeps it.
    broker.restart()
    assert cf_offsets(b, topic) == (20, 22)


def checkpointed_log_start(data_dir, topic: str, partition: int):
    """The partition's entry in Kafka's `log-start-offset-checkpoint` (version, count, then
    `topic partition offset` lines), or None."""
    path = data_dir / "log-start-offset-checkpoint"
    if not path.exists():
        return None
    for line in path.read_text().splitlines()[2:]:
        name, p, offset = line.rsplit(" ", 2)
        if (name, int(p)) == (topic, partition):
            return int(offset)
    return None


def test_delete_records_survives_kill9_once_checkpointed(broker_factory, topic):
    broker = broker_factory(overrides={"log.flush.offset.checkpoint.interval.ms": "200"})
    b = broker.bootstrap
    create_topic(b, topic)
    produce_numbered(b, topic, 10)
    assert cf_delete_records(b, topic, 6) == 6
    # Killed once the new start is in the checkpoint on disk.
    wait_until(lambda: checkpointed_log_start(broker.data_dir, topic, 0) == 6, 10,
               "log-start-offset-checkpoint to hold the new log start offset")
    broker.kill9()
    broker.start()
    assert cf_offsets(b, topic) == (6, 10)
    assert values(cf_read(b, topic, offset=0, min_records=4)) == [(i, b"v%03d" % i) for i in range(6, 10)]


def test_delete_records_on_the_wire_per_partition_errors(broker, topic):
    """Both clients refuse unknown partitions themselves; on the wire each partition gets its
    own answer: the new low watermark, UNKNOWN_TOPIC_OR_PARTITION (3), OFFSET_OUT_OF_RANGE (1)."""
    from kafka.protocol.admin import DeleteRecordsRequest, DeleteRecordsResponse
    create_topic(broker.bootstrap, topic, partitions=2)
    produce_numbered(broker.bootstrap, topic, 5)
    raw = Raw(broker.bootstrap)
    try:
        resp = raw.call(DeleteRecordsRequest, DeleteRecordsResponse, 2, timeout_ms=10000, topics=[
            {"name": topic, "partitions": [{"partition_index": 0, "offset": 2}, {"partition_index": 1, "offset": 1},
                                           {"partition_index": 7, "offset": 0}]},
            {"name": "no-such-topic-dr", "partitions": [{"partition_index": 0, "offset": 0}]}])
    finally:
        raw.close()
    got = {(t.name, p.partition_index): (p.low_watermark, p.error_code) for t in resp.topics for p in t.partitions}
    assert got == {(topic, 0): (2, 0), (topic, 1): (-1, 1), (topic, 7): (-1, 3), ("no-such-topic-dr", 0): (-1, 3)}


def test_create_partitions_with_both_clients(broker, topic):
    b = broker.bootstrap
    create_topic(b, topic, config={"cleanup.policy": "compact"})
    admin = cf_admin(b)
    assert admin.create_partitions([NewPartitions(topic, 3)], request_timeout=20)[topic].result(timeout=30) is None
    meta = kcat_metadata(b, topic)
    assert sorted(p["partition"] for p in meta["topics"][0]["partitions"]) == [0, 1, 2]

    # validate_only: nothing changes.
    kp = kp_admin(b)
    try:
        res = kp.create_partitions({topic: KpNewPartitions(5)}, validate_only=True)
        assert [r.error_code for r in res.results] == [0]
        assert len(kcat_metadata(b, topic)["topics"][0]["partitions"]) == 3
        res = kp.create_partitions({topic: KpNewPartitions(5)})
        assert [r.error_code for r in res.results] == [0]
        # Not an increase: INVALID_PARTITIONS with Kafka's message.
        res = kp.create_partitions({topic: KpNewPartitions(4)}, raise_errors=False)
        assert [(r.error_code, r.error_message) for r in res.results] == [
            (37, f"The topic {topic} currently has 5 partition(s); 4 would not be an increase.")]
        res = kp.create_partitions({"no-such-topic-cp": KpNewPartitions(2)}, raise_errors=False)
        assert [r.error_code for r in res.results] == [3]
    finally:
        kp.close()
    with pytest.raises(KafkaException) as info:
        admin.create_partitions([NewPartitions(topic, 5)], request_timeout=20)[topic].result(timeout=30)
    assert info.value.args[0].code() == KafkaError.INVALID_PARTITIONS

    # The new partitions are usable and carry the topic's configs (compact: a key is required).
    assert kp_produce(b, topic, [rec(b"p4", key=b"k", partition=4), rec(b"p2", key=b"k", partition=2)]) == [
        {"partition": 4, "offset": 0}, {"partition": 2, "offset": 0}]
    res = cf_produce(b, topic, [rec(b"no key", partition=3)], message_timeout_ms=5000, retries=0)
    assert res[0]["error"].code() == KafkaError.INVALID_RECORD, res
    assert values(cf_read(b, topic, partition=4, min_records=1)) == [(0, b"p4")]
    assert broker.partition_dir(topic, 4).is_dir()


def test_create_partitions_survive_restart(broker_factory, topic):
    broker = broker_factory()
    b = broker.bootstrap
    create_topic(b, topic)
    admin = cf_admin(b)  # outlives its futures
    assert admin.create_partitions([NewPartitions(topic, 4)], request_timeout=20)[topic].result(timeout=30) is None
    produce_numbered(b, topic, 3, partition=3)
    broker.kill9()
    broker.start()
    assert len(kcat_metadata(b, topic)["topics"][0]["partitions"]) == 4
    assert values(cf_read(b, topic, partition=3, min_records=3)) == [(i, b"v%03d" % i) for i in range(3)]


def test_describe_log_dirs_sizes_are_the_files_on_disk(broker, topic):
    b = broker.bootstrap
    create_topic(b, topic, partitions=2, config={"segment.bytes": "500"})
    produce_numbered(b, topic, 12, partition=0)
    produce_numbered(b, topic, 3, partition=1)
    admin = kp_admin(b)
    try:
        dirs = admin.describe_log_dirs({topic: [0, 1]})
    finally:
        admin.close()
    (entry,) = dirs
    assert entry["broker"] == 1
    (log_dir,) = entry["log_dirs"]
    assert log_dir["error_code"] == 0 and log_dir["log_dir"] == str(broker.data_dir)
    (t,) = log_dir["topics"]
    assert t["name"] == topic
    sizes = {p["partition_index"]: p["partition_size"] for p in t["partitions"]}
    on_disk = {p: sum(size for _, size in segments(broker.partition_dir(topic, p))) for p in (0, 1)}
    assert sizes == on_disk and on_disk[0] > on_disk[1] > 0, (sizes, on_disk)
    assert all(p["offset_lag"] == 0 and p["is_future_key"] is False for p in t["partitions"])
    # v4: the file system's size and the space left to the broker, as Kafka's FileStore gives
    # them (statvfs: blocks and blocks available to unprivileged users, times the block size).
    st = os.statvfs(broker.data_dir)
    assert log_dir["total_bytes"] == st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize
    assert 0 < log_dir["usable_bytes"] <= log_dir["total_bytes"]
    assert abs(log_dir["usable_bytes"] - free) < 64 * 1024 * 1024, (log_dir["usable_bytes"], free)


def test_describe_cluster_with_both_clients(broker):
    b = broker.bootstrap
    meta = (broker.data_dir / "meta.properties").read_text()
    cluster_id = next(line.split("=", 1)[1] for line in meta.splitlines() if line.startswith("cluster.id="))
    cf = cf_admin(b)  # outlives its future
    d = cf.describe_cluster(include_authorized_operations=True, request_timeout=20).result(timeout=30)
    assert d.cluster_id == cluster_id
    assert d.controller.id == 1 and (d.controller.host, d.controller.port) == ("127.0.0.1", broker.port)
    assert [(n.id, n.host, n.port) for n in d.nodes] == [(1, "127.0.0.1", broker.port)]
    # No authorizer: every operation Kafka defines on the cluster.
    assert sorted(op.name for op in d.authorized_operations) == sorted(
        ["ALTER", "ALTER_CONFIGS", "CLUSTER_ACTION", "CREATE", "DESCRIBE", "DESCRIBE_CONFIGS", "IDEMPOTENT_WRITE"])
    admin = kp_admin(b)
    try:
        kd = admin.describe_cluster()
    finally:
        admin.close()
    assert kd["cluster_id"] == cluster_id and kd["controller_id"] == 1
    assert kd["brokers"] == [{"broker_id": 1, "host": "127.0.0.1", "port": broker.port, "rack": None, "is_fenced": False}]
    assert sorted(kd["authorized_operations"]) == sorted(op.name for op in d.authorized_operations)


def test_elect_leaders_is_not_needed_on_one_node(broker, topic):
    create_topic(broker.bootstrap, topic)
    admin = cf_admin(broker.bootstrap)
    # (confluent-kafka 2.16's elect_leaders fails on any keyword argument)
    res = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition(topic, 0), TopicPartition(topic, 9)]).result(timeout=30)
    codes = {tp.partition: err.code() if err else 0 for tp, err in res.items()}
    assert codes == {0: KafkaError.ELECTION_NOT_NEEDED, 9: KafkaError.UNKNOWN_TOPIC_OR_PART}
