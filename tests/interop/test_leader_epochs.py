"""OffsetForLeaderEpoch (API 23, v2-4) and Fetch from a replica, on one node.

- Raw frames (kwire): the exact (epoch, end offset) answers of the leader epoch cache, the
  current-leader-epoch checks, unknown topics and partitions, every version and replica id.
  One node has one leader epoch per partition (0: a restart keeps it), so the answers for
  older epochs of a multi-epoch log are covered by the Rust tests (broker
  `partition_follower_tests.rs`, replication `epochs_tests.rs`).
- librdkafka (confluent-kafka) validates a position that carries a leader epoch with
  OffsetForLeaderEpoch (KIP-320) before it fetches: assign() with an epoch and an offset
  past where that epoch ends reports "log truncation detected ... broker end offset is 3",
  which it can only know from this API's answer (without the API it would fetch and get
  OFFSET_OUT_OF_RANGE); a valid one is read from.
- A Fetch with a replica id from a broker that is not a replica gets Kafka's errors:
  NOT_LEADER_OR_FOLLOWER, or UNKNOWN_LEADER_EPOCH when it names the current epoch.
"""
from __future__ import annotations

import time

import kwire
import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from kclients import NewTopic, cf_conf, cf_create_topics

NONE, UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER = 0, 3, 6
FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH = 74, 75


def _topic_with_records(broker, topic: str, counts: list) -> None:
    """A topic of len(counts) partitions, partition i holding counts[i] records."""
    assert cf_create_topics(broker.bootstrap, [NewTopic(topic, len(counts), 1)]) == {topic: 0}
    with kwire.Conn.to(broker.bootstrap) as c:
        for partition, n in enumerate(counts):
            for i in range(n):
                answer = kwire.produce_v3(c, topic, partition, kwire.record_batch([(None, b"v%d" % i, [])], 0))
                assert (answer["error"], answer["base_offset"]) == (0, i), answer


def test_api_versions_advertises_offset_for_leader_epoch_v2_to_v4(broker):
    with kwire.Conn.to(broker.bootstrap) as c:
        versions = kwire.api_versions(c, 3)
    assert versions.error_code == 0
    assert versions.api_keys[kwire.API_OFFSET_FOR_LEADER_EPOCH] == (2, 4)


@pytest.mark.parametrize("version", [2, 3, 4])
def test_offset_for_leader_epoch_answers_from_the_epoch_cache(broker, topic, version):
    _topic_with_records(broker, topic, [3, 0])
    query = [(topic, [(0, -1, 0), (1, -1, 0)]), ("no-such-topic", [(0, -1, 0)])]
    with kwire.Conn.to(broker.bootstrap) as c:
        answers = kwire.offset_for_leader_epoch(c, version, query)
        # Epoch 0 ends at the log end; a partition with no batch has no epoch yet; the
        # epoch after the latest, and -1, are UNDEFINED (-1, -1).
        assert answers == {
            (topic, 0): (NONE, 0, 3),
            (topic, 1): (NONE, -1, -1),
            ("no-such-topic", 0): (UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
        }
        answers = kwire.offset_for_leader_epoch(c, version, [(topic, [(0, 0, 1), (0, 0, -1)])])
        assert answers == {(topic, 0): (NONE, -1, -1)}
        answers = kwire.offset_for_leader_epoch(c, version, [(topic, [(0, 0, 0), (7, -1, 0)])])
        assert answers == {(topic, 0): (NONE, 0, 3), (topic, 7): (UNKNOWN_TOPIC_OR_PARTITION, -1, -1)}
        # The current leader epoch: a newer one is not known here yet; -1 is not checked,
        # any other negative one is older than ours.
        assert kwire.offset_for_leader_epoch(c, version, [(topic, [(0, 1, 0)])]) == {
            (topic, 0): (UNKNOWN_LEADER_EPOCH, -1, -1)}
        assert kwire.offset_for_leader_epoch(c, version, [(topic, [(0, -2, 0)])]) == {
            (topic, 0): (FENCED_LEADER_EPOCH, -1, -1)}


@pytest.mark.parametrize("replica_id", [-1, -2, 1, 2])
def test_offset_for_leader_epoch_answers_consumers_tools_and_brokers_alike(broker, topic, replica_id):
    _topic_with_records(broker, topic, [2])
    with kwire.Conn.to(broker.bootstrap) as c:
        for version in (3, 4):
            answers = kwire.offset_for_leader_epoch(c, version, [(topic, [(0, 0, 0)])], replica_id=replica_id)
            assert answers == {(topic, 0): (NONE, 0, 2)}


def test_the_answer_survives_a_restart(broker_factory, topic):
    b = broker_factory()
    _topic_with_records(b, topic, [2])
    b.restart()
    with kwire.Conn.to(b.bootstrap) as c:
        answer = kwire.produce_v3(c, topic, 0, kwire.record_batch([(None, b"after", [])], 0))
        assert (answer["error"], answer["base_offset"]) == (0, 2)
        assert kwire.offset_for_leader_epoch(c, 4, [(topic, [(0, 0, 0)])]) == {(topic, 0): (NONE, 0, 3)}


def _poll_error(consumer: Consumer, timeout: float = 30.0) -> KafkaError:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = consumer.poll(0.2)
        if m is not None and m.error() and m.error().code() != KafkaError._PARTITION_EOF:
            return m.error()
        assert m is None or m.error(), f"unexpected record at {m.offset()}"
    raise AssertionError(f"no consumer error within {timeout}s")


def test_librdkafka_validates_a_position_with_a_leader_epoch(broker, topic):
    _topic_with_records(broker, topic, [3])
    conf = cf_conf(broker.bootstrap, {"group.id": f"{topic}-g", "enable.auto.commit": False,
                                      "auto.offset.reset": "error", "enable.partition.eof": True})
    consumer = Consumer(conf)
    try:
        # A position in epoch 0 that epoch 0 never reached: truncation, known only from
        # OffsetForLeaderEpoch's answer (0, 3).
        consumer.assign([TopicPartition(topic, 0, 5, leader_epoch=0)])
        error = _poll_error(consumer)
        # With auto.offset.reset=error, librdkafka reports the truncation it detected as an
        # offset reset error; the broker's end offset in the message is the API's answer.
        assert error.code() == KafkaError._AUTO_OFFSET_RESET, error
        assert ("Partition log truncation detected at offset 5 (leader epoch 0): "
                "broker end offset is 3 (offset leader epoch 0)") in error.str(), error
    finally:
        consumer.close()
    consumer = Consumer(conf)
    try:
        # A valid position in epoch 0: validated, then read from there.
        consumer.assign([TopicPartition(topic, 0, 1, leader_epoch=0)])
        got = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(got) < 2:
            m = consumer.poll(0.2)
            if m is not None and not m.error():
                got.append((m.offset(), m.value(), m.leader_epoch()))
        assert got == [(1, b"v1", 0), (2, b"v2", 0)]
    finally:
        consumer.close()


@pytest.mark.parametrize("version", [4, 12])
def test_a_replica_fetch_from_a_broker_that_is_not_a_replica_is_refused(broker, topic, version):
    _topic_with_records(broker, topic, [3])
    with kwire.Conn.to(broker.bootstrap) as c:
        # This node (1) is the only replica; 2 is no broker, 1 is the leader itself.
        for replica_id in (2, 1):
            answer = kwire.fetch(c, version, topic, 0, 0, replica_id=replica_id, max_wait_ms=500)
            assert (answer["error"], answer["high_watermark"], answer["last_stable_offset"],
                    answer["records"]) == (NOT_LEADER_OR_FOLLOWER, -1, -1, b""), answer
        if version >= 12:
            # Naming the current epoch, the sender may be a replica the metadata has not
            # reached yet (a reassignment): UNKNOWN_LEADER_EPOCH, so it retries.
            answer = kwire.fetch(c, version, topic, 0, 0, replica_id=2, current_leader_epoch=0,
                                 last_fetched_epoch=0)
            assert (answer["error"], answer["diverging_epoch"]) == (UNKNOWN_LEADER_EPOCH, None), answer
            answer = kwire.fetch(c, version, topic, 0, 0, replica_id=2, current_leader_epoch=1)
            assert answer["error"] == UNKNOWN_LEADER_EPOCH, answer
        # A consumer's fetch in the same request shape is served as before.
        answer = kwire.fetch(c, version, topic, 0, 1)
        assert (answer["error"], answer["high_watermark"]) == (NONE, 3), answer
        assert [(base, n) for base, n, _ in kwire.batch_offsets(answer["records"])] == [(1, 1), (2, 1)]
        assert [epoch for _, _, epoch in kwire.batch_offsets(answer["records"])] == [0, 0]
