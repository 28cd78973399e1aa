"""DescribeConfigs, AlterConfigs and IncrementalAlterConfigs with confluent-kafka and
kafka-python: every config listed with its value, source and synonyms (Kafka's rules,
ConfigHelper.configSynonyms), changes validated with INVALID_CONFIG and a message, applied
to the running logs at once, and kept across restarts (clean and kill -9)."""
from __future__ import annotations

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import ResourceType

from kclients import cf_produce, cf_read, rec
from test_log_management_support import (DEFAULT, DYNAMIC_BROKER, DYNAMIC_DEFAULT_BROKER, DYNAMIC_TOPIC,
                                         KAFKA_TOPIC_CONFIGS, STATIC_BROKER, cf_alter_legacy, cf_describe,
                                         cf_incremental, cf_summary, create_topic, kp_describe, kp_summary,
                                         raw_describe, raw_incremental,
                                         src)

# A static broker value, so one topic config's source is STATIC_BROKER_CONFIG.
BROKER_OVERRIDES = {"log.retention.bytes": "5000000"}
BROKER = 4  # ConfigResource type


def test_cf_describe_topic_lists_every_config_with_source_and_synonyms(broker, topic):
    create_topic(broker.bootstrap, topic, config={"retention.ms": "3600000", "cleanup.policy": "compact,delete"})
    entries = cf_describe(broker.bootstrap, topic)
    assert KAFKA_TOPIC_CONFIGS <= set(entries), KAFKA_TOPIC_CONFIGS - set(entries)
    assert all(e.value is not None and not e.is_read_only and not e.is_sensitive for e in entries.values())
    # The topic's own override; log.retention.hours=168 (Kafka's only default among the
    # retention synonyms) is not listed, as Kafka drops synonyms before the primary key.
    assert cf_summary(entries, "retention.ms") == ("3600000", DYNAMIC_TOPIC, False, [("retention.ms", "3600000", DYNAMIC_TOPIC)])
    assert cf_summary(entries, "cleanup.policy") == (
        "compact,delete", DYNAMIC_TOPIC, False,
        [("cleanup.policy", "compact,delete", DYNAMIC_TOPIC), ("log.cleanup.policy", "delete", DEFAULT)])
    # From server.properties / --override.
    value, source, is_default, _ = cf_summary(entries, "retention.bytes")
    assert (value, source, is_default) == ("5000000", STATIC_BROKER, False)
    # Kafka's defaults.
    assert cf_summary(entries, "segment.bytes") == ("1073741824", DEFAULT, True, [("log.segment.bytes", "1073741824", DEFAULT)])
    assert cf_summary(entries, "max.message.bytes") == ("1048588", DEFAULT, True, [("message.max.bytes", "1048588", DEFAULT)])
    assert cf_summary(entries, "segment.ms") == ("604800000", DEFAULT, True, [])
    assert cf_summary(entries, "min.cleanable.dirty.ratio") == ("0.5", DEFAULT, True, [("log.cleaner.min.cleanable.ratio", "0.5", DEFAULT)])
    assert cf_summary(entries, "leader.replication.throttled.replicas") == ("", DEFAULT, True, [])
    defaults = {name for name, e in entries.items() if e.is_default}
    assert set(entries) - defaults == {"retention.ms", "cleanup.policy", "retention.bytes"}
    assert all(src(entries[n].source) == DEFAULT for n in defaults)


def test_kp_describe_topic_and_broker_in_kafkas_synonym_order(broker, topic):
    create_topic(broker.bootstrap, topic, config={"max.message.bytes": "20000"})
    entries = kp_describe(broker.bootstrap, topic)
    assert KAFKA_TOPIC_CONFIGS <= set(entries)
    assert kp_summary(entries, "max.message.bytes") == (
        "20000", DYNAMIC_TOPIC, False, [("max.message.bytes", "20000", DYNAMIC_TOPIC), ("message.max.bytes", "1048588", DEFAULT)])
    # The static value first, then Kafka's default: both synonyms, in that order.
    assert kp_summary(entries, "retention.bytes") == (
        "5000000", STATIC_BROKER, False, [("log.retention.bytes", "5000000", STATIC_BROKER), ("log.retention.bytes", "-1", DEFAULT)])
    assert kp_summary(entries, "retention.ms") == ("604800000", DEFAULT, False, [])
    assert kp_summary(entries, "flush.ms") == ("9223372036854775807", DEFAULT, False, [])
    assert entries["retention.ms"]["config_type"] == "LONG"
    assert entries["cleanup.policy"]["config_type"] == "LIST"
    assert entries["min.cleanable.dirty.ratio"]["config_type"] == "DOUBLE"
    assert entries["preallocate"]["config_type"] == "BOOLEAN"

    brokers = kp_describe(broker.bootstrap, "1", kind="broker")
    assert kp_summary(brokers, "log.retention.bytes") == (
        "5000000", STATIC_BROKER, False, [("log.retention.bytes", "5000000", STATIC_BROKER), ("log.retention.bytes", "-1", DEFAULT)])
    assert kp_summary(brokers, "log.retention.hours") == ("168", DEFAULT, False, [("log.retention.hours", "168", DEFAULT)])
    assert kp_summary(brokers, "log.retention.ms") == (None, DEFAULT, False, [])
    assert kp_summary(brokers, "log.dirs") == (str(broker.data_dir), STATIC_BROKER, True, [("log.dirs", str(broker.data_dir), STATIC_BROKER)])
    assert kp_summary(brokers, "node.id") == ("1", STATIC_BROKER, True, [("node.id", "1", STATIC_BROKER), ("node.id", "1", DEFAULT)])


def test_describe_unknown_topic_fails(broker):
    with pytest.raises(Exception) as info:
        cf_describe(broker.bootstrap, "no-such-topic-here")
    assert info.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_incremental_alter_set_delete_append_subtract(broker, topic):
    b = broker.bootstrap
    create_topic(b, topic)
    assert cf_incremental(b, topic, [("retention.ms", "SET", "7200000"), ("cleanup.policy", "APPEND", "compact")]) is None
    entries = cf_describe(b, topic)
    assert cf_summary(entries, "retention.ms")[:3] == ("7200000", DYNAMIC_TOPIC, False)
    # APPEND starts from the value in force (delete) and keeps the order.
    assert cf_summary(entries, "cleanup.policy")[:3] == ("delete,compact", DYNAMIC_TOPIC, False)

    assert cf_incremental(b, topic, [("cleanup.policy", "SUBTRACT", "delete")]) is None
    assert cf_summary(cf_describe(b, topic), "cleanup.policy")[:3] == ("compact", DYNAMIC_TOPIC, False)

    assert cf_incremental(b, topic, [("retention.ms", "DELETE", None), ("cleanup.policy", "DELETE", None)]) is None
    entries = cf_describe(b, topic)
    assert cf_summary(entries, "retention.ms")[:3] == ("604800000", DEFAULT, True)
    assert cf_summary(entries, "cleanup.policy") == ("delete", DEFAULT, True, [("log.cleanup.policy", "delete", DEFAULT)])

    # validate_only changes nothing.
    assert cf_incremental(b, topic, [("retention.ms", "SET", "1000")], validate_only=True) is None
    assert cf_summary(cf_describe(b, topic), "retention.ms")[:2] == ("604800000", DEFAULT)


@pytest.mark.parametrize("ops, fragment", [
    ([("retention.ms", "SET", "soon")], "Invalid value soon for configuration retention.ms"),
    ([("min.cleanable.dirty.ratio", "SET", "1.5")], "min.cleanable.dirty.ratio"),
    ([("cleanup.policy", "SET", "shred")], "cleanup.policy"),
    ([("segment.bytes", "SET", "3")], "segment.bytes"),
    ([("compression.type", "SET", "zip")], "compression.type"),
    ([("no.such.config", "SET", "1")], "no.such.config"),
    ([("retention.ms", "APPEND", "5")], "retention.ms"),
    # One bad key refuses the whole resource: retention.ms stays as it was.
    ([("retention.ms", "SET", "1000"), ("max.message.bytes", "SET", "-5")], "max.message.bytes"),
])
def test_invalid_values_are_refused_with_invalid_config(broker, topic, ops, fragment):
    create_topic(broker.bootstrap, topic)
    err = cf_incremental(broker.bootstrap, topic, ops)
    assert err is not None and err.code() == KafkaError.INVALID_CONFIG, err
    assert fragment in err.str(), err.str()
    entries = cf_describe(broker.bootstrap, topic)
    assert {n for n, e in entries.items() if src(e.source) == DYNAMIC_TOPIC} == set()


def test_legacy_alter_configs_replaces_the_whole_set(broker, topic):
    b = broker.bootstrap
    create_topic(b, topic, config={"retention.ms": "3600000", "cleanup.policy": "compact"})
    assert cf_alter_legacy(b, topic, {"max.message.bytes": "20000"}) is None
    entries = cf_describe(b, topic)
    overridden = {n: e.value for n, e in entries.items() if src(e.source) == DYNAMIC_TOPIC}
    assert overridden == {"max.message.bytes": "20000"}
    assert cf_summary(entries, "cleanup.policy")[:2] == ("delete", DEFAULT)
    err = cf_alter_legacy(b, topic, {"retention.ms": "x"})
    assert err.code() == KafkaError.INVALID_CONFIG and "retention.ms" in err.str()


def test_kp_alter_configs_both_apis(broker, topic):
    from kafka.admin import ConfigResource as KCR, ConfigResourceType
    from kclients import kp_admin
    b = broker.bootstrap
    create_topic(b, topic)
    admin = kp_admin(b)
    try:
        res = admin.alter_configs([KCR(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "86400000"})], incremental=True)
        assert res == {"topic": {topic: "OK"}}, res
        res = admin.alter_configs([KCR(ConfigResourceType.TOPIC, topic, configs={"cleanup.policy": ("APPEND", "compact")})], incremental=True)
        assert res == {"topic": {topic: "OK"}}, res
        res = admin.alter_configs([KCR(ConfigResourceType.TOPIC, topic, configs={"segment.ms": "0"})], incremental=True)
        assert "InvalidConfigurationError" in str(res["topic"][topic]) and "segment.ms" in str(res["topic"][topic]), res
        res = admin.alter_configs([KCR(ConfigResourceType.TOPIC, topic, configs={"retention.bytes": "123456"})], incremental=False)
        assert res == {"topic": {topic: "OK"}}, res
    finally:
        admin.close()
    entries = kp_describe(b, topic)
    overridden = {n: e["value"] for n, e in entries.items() if e["config_source"] == "DYNAMIC_TOPIC_CONFIG"}
    # kafka-python's legacy AlterConfigs sends the other overrides along, so all three remain.
    assert overridden == {"retention.ms": "86400000", "cleanup.policy": "delete,compact", "retention.bytes": "123456"}


def test_topic_config_changes_apply_to_produce_at_once(broker, topic):
    b = broker.bootstrap
    create_topic(b, topic)
    big = b"x" * 3000
    assert [r["error"] for r in cf_produce(b, topic, [rec(big, key=b"k")])] == [None]
    assert cf_incremental(b, topic, [("max.message.bytes", "SET", "2000")]) is None
    res = cf_produce(b, topic, [rec(big, key=b"k")], message_timeout_ms=5000, retries=0)
    assert res[0]["error"] is not None and res[0]["error"].code() == KafkaError.MSG_SIZE_TOO_LARGE, res
    # compact: keyless records are refused from now on.
    assert cf_incremental(b, topic, [("max.message.bytes", "DELETE", None), ("cleanup.policy", "SET", "compact"),
                                     ("message.timestamp.type", "SET", "LogAppendTime")]) is None
    res = cf_produce(b, topic, [rec(b"no key")], message_timeout_ms=5000, retries=0)
    assert res[0]["error"] is not None and res[0]["error"].code() == KafkaError.INVALID_RECORD, res
    res = cf_produce(b, topic, [rec(big, key=b"k2", timestamp=1000)])
    assert res == [{"partition": 0, "offset": 1, "error": None}]
    got = cf_read(b, topic, min_records=2)
    assert [(r["offset"], r["key"], len(r["value"])) for r in got] == [(0, b"k", 3000), (1, b"k2", 3000)]
    # LogAppendTime: the broker's clock, not the producer's 1000.
    assert got[0]["timestamp_type"] == "create" and got[1]["timestamp_type"] == "append" and got[1]["timestamp"] > 1000


def test_configs_survive_restart_and_kill9(broker_factory, topic):
    broker = broker_factory()
    b = broker.bootstrap
    create_topic(b, topic, config={"retention.ms": "3600000"})
    assert cf_incremental(b, topic, [("cleanup.policy", "SET", "compact,delete"), ("segment.bytes", "SET", "100000")]) is None
    assert cf_incremental(b, "1", [("log.retention.bytes", "SET", "7777777")], kind=ResourceType.BROKER) is None
    # Neither client can name the cluster-wide default resource (""): on the wire.
    assert raw_incremental(b, BROKER, "", [("log.cleaner.min.cleanable.ratio", "SET", "0.25")]) == (0, None)

    def snapshot():
        entries = kp_describe(broker.bootstrap, topic)
        return {n: kp_summary(entries, n) for n in sorted(entries)}

    before = snapshot()
    assert before["cleanup.policy"][:2] == ("compact,delete", DYNAMIC_TOPIC)
    assert before["retention.bytes"] == ("7777777", DYNAMIC_BROKER, False, [
        ("log.retention.bytes", "7777777", DYNAMIC_BROKER), ("log.retention.bytes", "-1", DEFAULT)])
    assert before["min.cleanable.dirty.ratio"] == ("0.25", DYNAMIC_DEFAULT_BROKER, False, [
        ("log.cleaner.min.cleanable.ratio", "0.25", DYNAMIC_DEFAULT_BROKER), ("log.cleaner.min.cleanable.ratio", "0.5", DEFAULT)])
    broker.restart()
    assert snapshot() == before
    # Config changes are fsynced metadata records: a crash right after keeps them.
    assert cf_incremental(b, topic, [("retention.ms", "DELETE", None), ("max.message.bytes", "SET", "4000")]) is None
    after_change = snapshot()
    broker.kill9()
    broker.start()
    assert snapshot() == after_change
    entries = cf_describe(broker.bootstrap, topic)
    assert cf_summary(entries, "max.message.bytes")[:2] == ("4000", DYNAMIC_TOPIC)
    assert cf_summary(entries, "retention.ms")[:2] == ("604800000", DEFAULT)


def test_dynamic_broker_configs_are_topic_defaults(broker_factory, topic):
    broker = broker_factory()
    b = broker.bootstrap
    create_topic(b, topic)
    assert cf_incremental(b, "1", [("log.retention.ms", "SET", "7200000")], kind=ResourceType.BROKER) is None
    assert raw_incremental(b, BROKER, "", [("log.segment.bytes", "SET", "2097152")]) == (0, None)
    entries = cf_describe(b, topic)
    # From log.retention.ms on, every synonym: the lower-priority default log.retention.hours too.
    assert cf_summary(entries, "retention.ms") == ("7200000", DYNAMIC_BROKER, False, [
        ("log.retention.ms", "7200000", DYNAMIC_BROKER), ("log.retention.hours", "168", DEFAULT)])
    assert cf_summary(entries, "segment.bytes")[:3] == ("2097152", DYNAMIC_DEFAULT_BROKER, False)
    brokers = kp_describe(b, "1", kind="broker")
    assert kp_summary(brokers, "log.retention.ms") == ("7200000", DYNAMIC_BROKER, False, [
        ("log.retention.ms", "7200000", DYNAMIC_BROKER), ("log.retention.hours", "168", DEFAULT)])
    # The cluster-wide default resource lists only what is set there.
    assert raw_describe(b, BROKER, "") == (0, {
        "log.segment.bytes": ("2097152", DYNAMIC_DEFAULT_BROKER, False, [("log.segment.bytes", "2097152", DYNAMIC_DEFAULT_BROKER)])})
    # A topic override still wins.
    assert cf_incremental(b, topic, [("retention.ms", "SET", "1000000")]) is None
    assert cf_summary(cf_describe(b, topic), "retention.ms")[:2] == ("1000000", DYNAMIC_TOPIC)
    # Only topic defaults are dynamic: the others are read-only.
    err = cf_incremental(b, "1", [("log.dirs", "SET", "/elsewhere")], kind=ResourceType.BROKER)
    assert err.code() == KafkaError.INVALID_REQUEST and "log.dirs" in err.str(), err
    err = cf_incremental(b, "1", [("log.retention.ms", "SET", "forever")], kind=ResourceType.BROKER)
    assert err is not None and "log.retention.ms" in err.str(), err
    assert cf_incremental(b, "1", [("log.retention.ms", "DELETE", None)], kind=ResourceType.BROKER) is None
    assert cf_incremental(b, topic, [("retention.ms", "DELETE", None)]) is None
    assert cf_summary(cf_describe(b, topic), "retention.ms") == ("604800000", DEFAULT, True, [])


def test_describe_with_documentation_and_selected_keys(broker, topic):
    create_topic(broker.bootstrap, topic)
    code, docs = raw_describe(broker.bootstrap, 2, topic, documentation=True, keys=["retention.ms", "cleanup.policy"])
    assert code == 0 and set(docs) == {"retention.ms", "cleanup.policy"}
    # Kafka's ConfigType ids: LONG 5, LIST 7; each with its documentation.
    assert docs["retention.ms"][0] == 5 and docs["cleanup.policy"][0] == 7
    assert all(doc for _, doc in docs.values()), docs
    code, plain = raw_describe(broker.bootstrap, 2, topic, keys=["retention.ms"])
    assert code == 0 and plain == {"retention.ms": ("604800000", DEFAULT, False, [])}
    code, docs = raw_describe(broker.bootstrap, 2, "no-such-topic-doc", documentation=True)
    assert (code, docs) == (3, {})
