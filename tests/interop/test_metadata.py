"""Metadata: brokers and topics as seen by kcat, confluent-kafka, kafka-python, kafkajs and a
raw Metadata v4 request."""
from __future__ import annotations

import kwire
from kclients import (NewTopic, cf_admin, cf_create_topics, js_admin, js_admin1, kcat_metadata,
                      kp_admin)


def _create(broker, topic, partitions):
    assert cf_create_topics(broker.bootstrap, [NewTopic(topic, partitions, 1)]) == {topic: 0}


def test_confluent_lists_single_broker_with_node_id_1_and_advertised_host_port(broker):
    md = cf_admin(broker.bootstrap).list_topics(timeout=15)
    assert list(md.brokers) == [1]
    b = md.brokers[1]
    assert (b.id, b.host, b.port) == (1, "127.0.0.1", broker.port)
    assert md.controller_id == 1
    assert md.cluster_id


def test_kcat_lists_single_broker_with_node_id_1_and_advertised_host_port(broker):
    md = kcat_metadata(broker.bootstrap)
    assert md["brokers"] == [{"id": 1, "name": f"127.0.0.1:{broker.port}"}]


def test_kafka_python_describe_cluster_reports_broker_1_and_controller_1(broker):
    admin = kp_admin(broker.bootstrap)
    try:
        cluster = admin.describe_cluster()
    finally:
        admin.close()
    brokers = [(b.get("broker_id", b.get("node_id")), b["host"], b["port"]) for b in cluster["brokers"]]
    assert brokers == [(1, "127.0.0.1", broker.port)]
    assert cluster["controller_id"] == 1


def test_kafkajs_describe_cluster_reports_broker_1_and_controller_1(broker):
    res = js_admin1(broker.bootstrap, {"op": "describeCluster"})
    assert res["ok"], res
    assert [(b["nodeId"], b["host"], b["port"]) for b in res["result"]["brokers"]] == \
        [(1, "127.0.0.1", broker.port)]
    assert res["result"]["controller"] == 1


def test_raw_metadata_v4_lists_broker_and_cluster_id(broker):
    with kwire.Conn.to(broker.bootstrap) as c:
        md = kwire.metadata_v4(c, None, allow_auto_topic_creation=False)
    assert md.brokers == [(1, "127.0.0.1", broker.port, None)]
    assert md.controller_id == 1
    assert md.cluster_id, "cluster id must be a non-empty string"


def test_created_topic_is_listed_with_partition_count_and_leader_1_by_all_clients(broker, topic):
    _create(broker, topic, 3)

    md = cf_admin(broker.bootstrap).list_topics(timeout=15)
    t = md.topics[topic]
    assert t.error is None
    assert sorted(t.partitions) == [0, 1, 2]
    for p in t.partitions.values():
        assert (p.leader, p.replicas, p.isrs, p.error) == (1, [1], [1], None)

    km = kcat_metadata(broker.bootstrap)
    [kt] = [x for x in km["topics"] if x["topic"] == topic]
    assert sorted(p["partition"] for p in kt["partitions"]) == [0, 1, 2]
    for p in kt["partitions"]:
        assert p["leader"] == 1
        assert p["replicas"] == [{"id": 1}]
        assert p["isrs"] == [{"id": 1}]

    admin = kp_admin(broker.bootstrap)
    try:
        assert topic in admin.list_topics()
        [desc] = admin.describe_topics([topic])
    finally:
        admin.close()
    assert desc["name"] == topic and desc["error_code"] == 0
    assert desc["is_internal"] is False
    parts = sorted(desc["partitions"], key=lambda p: p["partition_index"])
    assert [(p["partition_index"], p["leader_id"], p["replica_nodes"], p["isr_nodes"], p["error_code"])
            for p in parts] == [(i, 1, [1], [1], 0) for i in range(3)]

    res = js_admin(broker.bootstrap, [{"op": "listTopics"}, {"op": "fetchTopicMetadata", "topics": [topic]}])
    assert res[0]["ok"] and topic in res[0]["result"], res[0]
    assert res[1]["ok"], res[1]
    [jt] = res[1]["result"]["topics"]
    assert jt["name"] == topic
    assert sorted((p["partitionId"], p["leader"], p["replicas"], p["isr"], p["partitionErrorCode"])
                  for p in jt["partitions"]) == [(i, 1, [1], [1], 0) for i in range(3)]


def test_raw_metadata_for_specific_topic_reports_partitions_and_leader(broker, topic):
    _create(broker, topic, 2)
    with kwire.Conn.to(broker.bootstrap) as c:
        md = kwire.metadata_v4(c, [topic], allow_auto_topic_creation=False)
    assert list(md.topics) == [topic]
    t = md.topics[topic]
    assert t["error"] == 0 and t["internal"] is False
    assert {i: (p["error"], p["leader"], p["replicas"], p["isr"]) for i, p in t["partitions"].items()} == \
        {0: (0, 1, [1], [1]), 1: (0, 1, [1], [1])}


def test_metadata_for_unknown_topic_without_auto_create_flag_reports_unknown_topic(broker, topic):
    # allow_auto_topic_creation=false in the request: must not create even though the broker
    # has auto.create.topics.enable=true.
    with kwire.Conn.to(broker.bootstrap) as c:
        md = kwire.metadata_v4(c, [topic], allow_auto_topic_creation=False)
        assert md.topics[topic]["error"] == kwire.ERR_UNKNOWN_TOPIC_OR_PARTITION
        assert md.topics[topic]["partitions"] == {}
        md_all = kwire.metadata_v4(c, None, allow_auto_topic_creation=False)
    assert topic not in md_all.topics
    assert topic not in cf_admin(broker.bootstrap).list_topics(timeout=15).topics


def test_fresh_broker_lists_exactly_the_created_topics(broker_factory):
    b = broker_factory()
    assert cf_create_topics(b.bootstrap, [NewTopic("alpha", 1, 1), NewTopic("beta", 2, 1)]) == \
        {"alpha": 0, "beta": 0}
    assert sorted(cf_admin(b.bootstrap).list_topics(timeout=15).topics) == ["alpha", "beta"]
    assert sorted(t["topic"] for t in kcat_metadata(b.bootstrap)["topics"]) == ["alpha", "beta"]
    res = js_admin1(b.bootstrap, {"op": "listTopics"})
    assert res["ok"] and sorted(res["result"]) == ["alpha", "beta"], res


def test_advertised_listeners_override_is_what_metadata_reports(broker_factory):
    b = broker_factory(start=False)
    b.start({"advertised.listeners": f"PLAINTEXT://localhost:{b.port}"})
    with kwire.Conn.to(b.bootstrap) as c:
        md = kwire.metadata_v4(c, None, allow_auto_topic_creation=False)
    assert md.brokers == [(1, "localhost", b.port, None)]
    assert kcat_metadata(b.bootstrap)["brokers"] == [{"id": 1, "name": f"localhost:{b.port}"}]
