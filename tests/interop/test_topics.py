"""CreateTopics / DeleteTopics / topic auto-creation, with confluent-kafka, kafka-python,
kafkajs, kcat and raw Metadata/Produce requests.

Kafka error codes asserted here: UNKNOWN_TOPIC_OR_PARTITION=3, MESSAGE_TOO_LARGE=10,
INVALID_TOPIC_EXCEPTION=17, TOPIC_ALREADY_EXISTS=36, INVALID_PARTITIONS=37,
INVALID_REPLICATION_FACTOR=38, INVALID_CONFIG=40.
"""
from __future__ import annotations


import pytest

import kwire
from kclients import (KafkaError, NewTopic, cf_admin, cf_create_topics, cf_delete_topics, cf_produce,
                      cf_producer, cf_read, js_admin, js_admin1, js_error_types,
                      js_produce, js_topic_errors, kcat_produce, kp_create_topics, kp_delete_topics,
                      kp_produce, kp_read, rec)
from rivulet_harness import wait_until

UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
INVALID_TOPIC_EXCEPTION = 17
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_CONFIG = 40

INVALID_NAMES = ["bad name!", ".", "..", "slash/name", "x" * 250, "uni\u00e9code"]


def raw_topics(bootstrap, topics=None):
    with kwire.Conn.to(bootstrap) as c:
        return kwire.metadata_v4(c, topics, allow_auto_topic_creation=False).topics


def partition_count(bootstrap, topic):
    t = raw_topics(bootstrap, [topic])[topic]
    assert t["error"] == 0, f"topic {topic} has error {t['error']}"
    return len(t["partitions"])


def exists(bootstrap, topic) -> bool:
    return topic in raw_topics(bootstrap)


def batch_value_size_for(batch_size: int) -> int:
    """Value length V such that a single-record batch (null key, no headers) is exactly
    `batch_size` bytes on the wire (the size Kafka compares to max.message.bytes)."""
    for v in range(max(0, batch_size - 100), batch_size):
        if len(kwire.record_batch([(None, b"x" * v, [])], 0)) == batch_size:
            return v
    raise AssertionError(f"no value size gives a {batch_size}-byte batch")


# ------------------------------------------------------------------------------ create

def test_create_topic_with_partitions_and_configs_by_each_admin_client(broker, topic):
    configs = {"retention.ms": "3600000", "segment.bytes": "1048576", "max.message.bytes": "200000",
               "cleanup.policy": "delete"}
    t1, t2, t3 = f"{topic}-cf", f"{topic}-kp", f"{topic}-js"
    assert cf_create_topics(broker.bootstrap, [NewTopic(t1, 4, 1, config=configs)]) == {t1: 0}
    assert kp_create_topics(broker.bootstrap, {t2: {"num_partitions": 2, "replication_factor": 1,
                                                    "configs": configs}}) == {t2: 0}
    res = js_admin1(broker.bootstrap, {"op": "createTopics", "topics": [
        {"topic": t3, "numPartitions": 3, "replicationFactor": 1,
         "configEntries": [{"name": k, "value": v} for k, v in configs.items()]}]})
    assert res == {"ok": True, "result": True}
    assert [partition_count(broker.bootstrap, t) for t in (t1, t2, t3)] == [4, 2, 3]
    # partition directories exist on disk for each partition
    for t, n in ((t1, 4), (t2, 2), (t3, 3)):
        for p in range(n):
            assert broker.partition_dir(t, p).is_dir(), f"missing {broker.partition_dir(t, p)}"


def test_topic_config_max_message_bytes_limits_that_topic_exactly(broker, topic):
    assert cf_create_topics(broker.bootstrap, [NewTopic(topic, 1, 1, config={"max.message.bytes": "2000"})]) \
        == {topic: 0}
    v_ok = batch_value_size_for(2000)
    with kwire.Conn.to(broker.bootstrap) as c:
        r1 = kwire.produce_v3(c, topic, 0, kwire.record_batch([(None, b"a" * v_ok, [])], 1000))
        r2 = kwire.produce_v3(c, topic, 0, kwire.record_batch([(None, b"b" * (v_ok + 1), [])], 1000))
        r3 = kwire.produce_v3(c, topic, 0, kwire.record_batch([(None, b"c", [])], 1000))
    assert (r1["error"], r1["base_offset"]) == (0, 0)
    assert r2["error"] == MESSAGE_TOO_LARGE
    assert (r3["error"], r3["base_offset"]) == (0, 1)
    # confluent-kafka sees the same limit as a delivery error
    [d] = cf_produce(broker.bootstrap, topic, [rec(b"d" * (v_ok + 1))], message_max_bytes=100000)
    assert d["error"] is not None and d["error"].code() == KafkaError.MSG_SIZE_TOO_LARGE
    got = cf_read(broker.bootstrap, topic, 0)
    assert [(r["offset"], r["value"]) for r in got] == [(0, b"a" * v_ok), (1, b"c")]


def test_topic_config_segment_bytes_rolls_a_segment_per_oversized_batch(broker, topic):
    # 1 MiB is a valid segment.bytes in every Kafka version; three ~700 KB batches cannot share
    # a segment, so the log must have exactly three segments with base offsets 0, 1, 2.
    res = js_admin1(broker.bootstrap, {"op": "createTopics", "topics": [
        {"topic": topic, "numPartitions": 1, "replicationFactor": 1,
         "configEntries": [{"name": "segment.bytes", "value": "1048576"}]}]})
    assert res == {"ok": True, "result": True}
    values = [bytes([65 + i]) * 700_000 for i in range(3)]
    for v in values:  # one request (= one batch) per record
        [d] = cf_produce(broker.bootstrap, topic, [rec(v, partition=0)], linger_ms=0)
        assert d["error"] is None
    logs = sorted(p.name for p in broker.partition_dir(topic, 0).glob("*.log"))
    assert logs == [f"{i:020d}.log" for i in range(3)]
    assert [r["value"] for r in cf_read(broker.bootstrap, topic, 0)] == values


def test_create_validate_only_creates_nothing(broker, topic):
    t1, t2, t3 = f"{topic}-cf", f"{topic}-kp", f"{topic}-js"
    assert cf_create_topics(broker.bootstrap, [NewTopic(t1, 3, 1)], validate_only=True) == {t1: 0}
    assert kp_create_topics(broker.bootstrap, {t2: {"num_partitions": 3, "replication_factor": 1}},
                            validate_only=True) == {t2: 0}
    res = js_admin1(broker.bootstrap, {"op": "createTopics", "validateOnly": True,
                                       "topics": [{"topic": t3, "numPartitions": 3, "replicationFactor": 1}]})
    assert res == {"ok": True, "result": True}
    listed = raw_topics(broker.bootstrap)
    assert t1 not in listed and t2 not in listed and t3 not in listed
    assert not broker.partition_dir(t1, 0).exists()
    # and the name is still free
    assert cf_create_topics(broker.bootstrap, [NewTopic(t1, 1, 1)]) == {t1: 0}


def test_create_validate_only_still_reports_errors(broker, topic):
    assert cf_create_topics(broker.bootstrap, [NewTopic(topic, 0, 1)], validate_only=True) == \
        {topic: INVALID_PARTITIONS}
    assert kp_create_topics(broker.bootstrap, {topic: {"num_partitions": 1, "replication_factor": 3}},
                            validate_only=True) == {topic: INVALID_REPLICATION_FACTOR}
    assert not exists(broker.bootstrap, topic)


def test_create_duplicate_topic_fails_with_topic_already_exists(broker, topic):
    assert cf_create_topics(broker.bootstrap, [NewTopic(topic, 2, 1)]) == {topic: 0}
    assert cf_create_topics(broker.bootstrap, [NewTopic(topic, 5, 1)]) == {topic: TOPIC_ALREADY_EXISTS}
    assert kp_create_topics(broker.bootstrap, {topic: {"num_partitions": 5, "replication_factor": 1}}) == \
        {topic: TOPIC_ALREADY_EXISTS}
    # kafkajs maps TOPIC_ALREADY_EXISTS (and only that) to a `false` result
    res = js_admin1(broker.bootstrap, {"op": "createTopics",
                                       "topics": [{"topic": topic, "numPartitions": 5, "replicationFactor": 1}]})
    assert res == {"ok": True, "result": False}
    assert cf_create_topics(broker.bootstrap, [NewTopic(topic, 5, 1)], validate_only=True) == \
        {topic: TOPIC_ALREADY_EXISTS}
    assert partition_count(broker.bootstrap, topic) == 2


@pytest.mark.parametrize("name", INVALID_NAMES, ids=["space-bang", "dot", "dotdot", "slash", "len250", "unicode"])
def test_create_invalid_topic_name_fails_with_invalid_topic_exception(broker, name):
    assert cf_create_topics(broker.bootstrap, [NewTopic(name, 1, 1)]) == {name: INVALID_TOPIC_EXCEPTION}
    assert kp_create_topics(broker.bootstrap, {name: {"num_partitions": 1, "replication_factor": 1}}) == \
        {name: INVALID_TOPIC_EXCEPTION}
    res = js_admin1(broker.bootstrap, {"op": "createTopics",
                                       "topics": [{"topic": name, "numPartitions": 1, "replicationFactor": 1}]})
    assert not res["ok"]
    assert js_topic_errors(res["error"]) == {name: "INVALID_TOPIC_EXCEPTION"}, res
    assert name not in raw_topics(broker.bootstrap)


def test_create_topic_name_of_249_chars_is_valid(broker):
    name = "n" * 249
    assert cf_create_topics(broker.bootstrap, [NewTopic(name, 1, 1)]) == {name: 0}
    assert partition_count(broker.bootstrap, name) == 1


@pytest.mark.parametrize("partitions", [0, -2])
def test_create_with_non_positive_partitions_fails_with_invalid_partitions(broker, topic, partitions):
    if partitions == 0:  # confluent-kafka refuses -2 client-side, 0 reaches the broker
        assert cf_create_topics(broker.bootstrap, [NewTopic(topic, 0, 1)]) == {topic: INVALID_PARTITIONS}
    assert kp_create_topics(broker.bootstrap, {topic: {"num_partitions": partitions, "replication_factor": 1}}) \
        == {topic: INVALID_PARTITIONS}
    res = js_admin1(broker.bootstrap, {"op": "createTopics",
                                       "topics": [{"topic": topic, "numPartitions": partitions,
                                                   "replicationFactor": 1}]})
    assert not res["ok"] and js_topic_errors(res["error"]) == {topic: "INVALID_PARTITIONS"}, res
    assert not exists(broker.bootstrap, topic)


@pytest.mark.parametrize("rf", [3, 0])
def test_create_with_impossible_replication_factor_fails_with_invalid_replication_factor(broker, topic, rf):
    assert cf_create_topics(broker.bootstrap, [NewTopic(topic, 1, rf)]) == {topic: INVALID_REPLICATION_FACTOR}
    assert kp_create_topics(broker.bootstrap, {topic: {"num_partitions": 1, "replication_factor": rf}}) == \
        {topic: INVALID_REPLICATION_FACTOR}
    res = js_admin1(broker.bootstrap, {"op": "createTopics",
                                       "topics": [{"topic": topic, "numPartitions": 1, "replicationFactor": rf}]})
    assert not res["ok"] and js_topic_errors(res["error"]) == {topic: "INVALID_REPLICATION_FACTOR"}, res
    assert not exists(broker.bootstrap, topic)


@pytest.mark.parametrize("config", [{"no.such.config": "1"}, {"retention.ms": "not-a-number"},
                                    {"cleanup.policy": "shred"}],
                         ids=["unknown-name", "bad-long", "bad-enum"])
def test_create_with_unknown_or_invalid_config_fails_with_invalid_config(broker, topic, config):
    assert cf_create_topics(broker.bootstrap, [NewTopic(topic, 1, 1, config=config)]) == {topic: INVALID_CONFIG}
    assert kp_create_topics(broker.bootstrap, {topic: {"num_partitions": 1, "replication_factor": 1,
                                                       "configs": config}}) == {topic: INVALID_CONFIG}
    res = js_admin1(broker.bootstrap, {"op": "createTopics", "topics": [
        {"topic": topic, "numPartitions": 1, "replicationFactor": 1,
         "configEntries": [{"name": k, "value": v} for k, v in config.items()]}]})
    assert not res["ok"] and js_topic_errors(res["error"]) == {topic: "INVALID_CONFIG"}, res
    assert not exists(broker.bootstrap, topic)


def test_create_batch_with_good_and_bad_topics_reports_per_topic_results(broker, topic):
    good, dup, bad = f"{topic}-good", f"{topic}-dup", f"{topic}-bad"
    assert cf_create_topics(broker.bootstrap, [NewTopic(dup, 1, 1)]) == {dup: 0}
    got = cf_create_topics(broker.bootstrap, [NewTopic(good, 2, 1), NewTopic(dup, 1, 1),
                                              NewTopic(bad, 1, 3)])
    assert got == {good: 0, dup: TOPIC_ALREADY_EXISTS, bad: INVALID_REPLICATION_FACTOR}
    assert partition_count(broker.bootstrap, good) == 2
    assert not exists(broker.bootstrap, bad)


def test_create_with_default_partitions_uses_num_partitions_1(broker, topic):
    # kafka-python sends num_partitions=-1 / replication_factor=-1 when omitted (CreateTopics v4+)
    assert kp_create_topics(broker.bootstrap, {topic: {}}) == {topic: 0}
    assert partition_count(broker.bootstrap, topic) == 1


# ------------------------------------------------------------------------------ delete

def test_delete_topic_removes_it_from_metadata_for_all_clients(broker, topic):
    t1, t2, t3 = f"{topic}-cf", f"{topic}-kp", f"{topic}-js"
    assert cf_create_topics(broker.bootstrap, [NewTopic(t, 2, 1) for t in (t1, t2, t3)]) == {t1: 0, t2: 0, t3: 0}
    cf_produce(broker.bootstrap, t1, [rec(b"x", partition=0)])
    assert cf_delete_topics(broker.bootstrap, [t1]) == {t1: 0}
    assert kp_delete_topics(broker.bootstrap, [t2]) == {t2: 0}
    res = js_admin(broker.bootstrap, [{"op": "deleteTopics", "topics": [t3]}, {"op": "listTopics"}])
    assert res[0]["ok"], res[0]
    assert res[1]["ok"] and not {t1, t2, t3} & set(res[1]["result"]), res[1]
    md = cf_admin(broker.bootstrap).list_topics(timeout=15)
    assert not {t1, t2, t3} & set(md.topics)
    specific = raw_topics(broker.bootstrap, [t1, t2, t3])
    assert {t: specific[t]["error"] for t in (t1, t2, t3)} == {t: UNKNOWN_TOPIC_OR_PARTITION for t in (t1, t2, t3)}


def test_delete_unknown_topic_fails_with_unknown_topic_or_partition(broker, topic):
    assert cf_delete_topics(broker.bootstrap, [topic]) == {topic: UNKNOWN_TOPIC_OR_PARTITION}
    assert kp_delete_topics(broker.bootstrap, [topic]) == {topic: UNKNOWN_TOPIC_OR_PARTITION}
    res = js_admin1(broker.bootstrap, {"op": "deleteTopics", "topics": [topic]})
    assert not res["ok"] and "UNKNOWN_TOPIC_OR_PARTITION" in js_error_types(res["error"]), res


def test_recreated_topic_after_delete_starts_empty_at_offset_zero(broker, topic):
    assert cf_create_topics(broker.bootstrap, [NewTopic(topic, 1, 1)]) == {topic: 0}
    res = cf_produce(broker.bootstrap, topic, [rec(b"old-%d" % i, partition=0) for i in range(5)])
    assert [r["offset"] for r in res] == [0, 1, 2, 3, 4]
    assert cf_delete_topics(broker.bootstrap, [topic]) == {topic: 0}
    assert cf_create_topics(broker.bootstrap, [NewTopic(topic, 1, 1)]) == {topic: 0}
    assert cf_read(broker.bootstrap, topic, 0) == []
    res = kp_produce(broker.bootstrap, topic, [rec(b"new", partition=0)])
    assert res == [{"partition": 0, "offset": 0}]
    assert [(r["offset"], r["value"]) for r in kp_read(broker.bootstrap, topic, 0)] == [(0, b"new")]


def test_produce_to_deleted_topic_with_auto_create_off_fails_with_unknown_topic(broker_factory):
    b = broker_factory({"auto.create.topics.enable": "false"})
    topic = "doomed"
    assert cf_create_topics(b.bootstrap, [NewTopic(topic, 1, 1)]) == {topic: 0}
    assert cf_produce(b.bootstrap, topic, [rec(b"before")])[0]["offset"] == 0
    assert cf_delete_topics(b.bootstrap, [topic]) == {topic: 0}

    with kwire.Conn.to(b.bootstrap) as c:
        r = kwire.produce_v3(c, topic, 0, kwire.record_batch([(None, b"after", [])], 1000))
    assert r["error"] == UNKNOWN_TOPIC_OR_PARTITION

    [d] = cf_produce(b.bootstrap, topic, [rec(b"after")], topic_metadata_propagation_max_ms=1000,
                     message_timeout_ms=10000)
    # librdkafka surfaces the broker's UNKNOWN_TOPIC_OR_PARTITION metadata error either as the
    # broker code or as its local alias _UNKNOWN_TOPIC; both mean the broker said "no such topic".
    assert d["error"] is not None and d["error"].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART,
                                                            KafkaError._UNKNOWN_TOPIC), d

    res = js_produce(b.bootstrap, topic, [[rec(b"after", partition=0)]], retries=1)
    assert not res["sends"][0]["ok"]
    assert "UNKNOWN_TOPIC_OR_PARTITION" in js_error_types(res["sends"][0]["error"]), res
    assert not exists(b.bootstrap, topic)


# ------------------------------------------------------------------------------ auto-create

def test_auto_create_on_metadata_request_with_allow_flag(broker, topic):
    with kwire.Conn.to(broker.bootstrap) as c:
        md = kwire.metadata_v4(c, [topic], allow_auto_topic_creation=True)
        # Kafka may answer the creating request with LEADER_NOT_AVAILABLE(5) or NONE.
        assert md.topics[topic]["error"] in (0, 5), md.topics[topic]
    wait_until(lambda: raw_topics(broker.bootstrap, [topic])[topic]["error"] == 0, 10,
               f"auto-created {topic} to appear")
    assert partition_count(broker.bootstrap, topic) == 1


def test_auto_create_by_confluent_producer_metadata_lookup(broker, topic):
    p = cf_producer(broker.bootstrap, allow_auto_create_topics=True)
    p.list_topics(topic=topic, timeout=10)
    wait_until(lambda: exists(broker.bootstrap, topic), 10, f"{topic} to be auto-created")
    assert partition_count(broker.bootstrap, topic) == 1


def test_auto_create_on_produce_by_kcat_kafka_python_and_kafkajs(broker, topic):
    t1, t2, t3 = f"{topic}-kcat", f"{topic}-kp", f"{topic}-js"
    kcat_produce(broker.bootstrap, t1, [b"one", b"two", b"three"])
    assert kp_produce(broker.bootstrap, t2, [rec(b"one"), rec(b"two")]) == \
        [{"partition": 0, "offset": 0}, {"partition": 0, "offset": 1}]
    res = js_produce(broker.bootstrap, t3, [[rec(b"one", partition=0)]])
    assert res["sends"][0]["ok"] and res["sends"][0]["offsets"] == [0], res
    assert [partition_count(broker.bootstrap, t) for t in (t1, t2, t3)] == [1, 1, 1]
    assert [(r["offset"], r["value"]) for r in cf_read(broker.bootstrap, t1, 0)] == \
        [(0, b"one"), (1, b"two"), (2, b"three")]
    assert [(r["offset"], r["value"]) for r in cf_read(broker.bootstrap, t3, 0)] == [(0, b"one")]


def test_auto_create_disabled_nothing_is_created_by_metadata_or_produce(broker_factory):
    b = broker_factory({"auto.create.topics.enable": "false"})
    topic = "never-created"
    with kwire.Conn.to(b.bootstrap) as c:
        md = kwire.metadata_v4(c, [topic], allow_auto_topic_creation=True)
        assert md.topics[topic]["error"] == UNKNOWN_TOPIC_OR_PARTITION
        r = kwire.produce_v3(c, topic, 0, kwire.record_batch([(None, b"v", [])], 1000))
        assert r["error"] == UNKNOWN_TOPIC_OR_PARTITION

    t = cf_producer(b.bootstrap, allow_auto_create_topics=True).list_topics(topic=topic, timeout=10).topics[topic]
    assert t.error is not None and t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART

    proc = kcat_produce(b.bootstrap, topic, [b"v"], check=False, timeout=60,
                        extra=["-X", "topic.metadata.propagation.max.ms=1000",
                               "-X", "message.timeout.ms=5000"])
    assert b"nknown topic" in proc.stderr, proc.stderr

    res = js_produce(b.bootstrap, topic, [[rec(b"v", partition=0)]], retries=1)
    assert not res["sends"][0]["ok"]
    assert "UNKNOWN_TOPIC_OR_PARTITION" in js_error_types(res["sends"][0]["error"]), res

    # A barrier, not a pause: metadata changes are applied in order, so once a topic created
    # now is visible, a (buggy) asynchronous creation requested before it would be too.
    barrier = "created-after"
    assert cf_create_topics(b.bootstrap, [NewTopic(barrier, 1, 1)]) == {barrier: 0}
    wait_until(lambda: barrier in raw_topics(b.bootstrap), 10, "the barrier topic to be visible")
    assert set(raw_topics(b.bootstrap)) == {barrier}
    assert not b.partition_dir(topic, 0).exists()


def test_num_partitions_override_applies_to_auto_created_and_default_created_topics(broker_factory):
    b = broker_factory({"num.partitions": "3"})
    kcat_produce(b.bootstrap, "auto3", [b"x"])
    assert partition_count(b.bootstrap, "auto3") == 3
    assert kp_create_topics(b.bootstrap, {"default3": {}}) == {"default3": 0}
    assert partition_count(b.bootstrap, "default3") == 3
    # explicit partition counts still win
    assert cf_create_topics(b.bootstrap, [NewTopic("explicit1", 1, 1)]) == {"explicit1": 0}
    assert partition_count(b.bootstrap, "explicit1") == 1


def test_config_file_is_read_and_overrides_take_precedence(broker_factory):
    # server.properties disables auto-creation and sets num.partitions=2; --override sets 4.
    b = broker_factory({"num.partitions": "4"},
                       properties={"auto.create.topics.enable": "false", "num.partitions": "2"})
    with kwire.Conn.to(b.bootstrap) as c:
        md = kwire.metadata_v4(c, ["from-config"], allow_auto_topic_creation=True)
    assert md.topics["from-config"]["error"] == UNKNOWN_TOPIC_OR_PARTITION
    assert kp_create_topics(b.bootstrap, {"defaulted": {}}) == {"defaulted": 0}
    assert partition_count(b.bootstrap, "defaulted") == 4
    assert raw_topics(b.bootstrap).keys() == {"defaulted"}
