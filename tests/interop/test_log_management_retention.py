"""Retention with real clients: set retention.ms / retention.bytes on a live topic and watch
whole segments go from the oldest on, exactly where Kafka's rules say (time: a segment's
largest timestamp; size: from the oldest while the rest still exceeds the limit); the log
start offset moves to the first remaining segment; consumers asking for older offsets get
OFFSET_OUT_OF_RANGE and reset (or report it when told not to reset)."""
from __future__ import annotations

import time

import kafka.errors
import pytest
from confluent_kafka import KafkaError

from kclients import CfReader, KpReader, cf_produce, cf_read, kp_produce, kp_read, rec
from rivulet_harness import wait_until
from test_log_management_support import (cf_offsets, create_topic, now_ms, segment_holding, segments,
                                         set_topic_config, wait_log_start)

BROKER_OVERRIDES = {"log.retention.check.interval.ms": "100"}

SMALL = {"segment.bytes": "1000"}
HOUR = 3_600_000


def one_per_batch(bootstrap, topic, records):
    """Produce with confluent-kafka, one record per batch (small segments)."""
    res = cf_produce(bootstrap, topic, records, batch_num_messages=1, linger_ms=0)
    assert [r["error"] for r in res] == [None] * len(records)
    return [r["offset"] for r in res]


def body(i: int) -> bytes:
    return b"record-%03d-" % i + b"x" * 90


def test_retention_ms_deletes_segments_older_than_the_limit(broker, topic):
    b = broker.bootstrap
    create_topic(b, topic, config=SMALL)
    old = now_ms() - 2 * HOUR
    # 30 records two hours old, then 6 fresh ones.
    one_per_batch(b, topic, [rec(body(i), key=b"k", timestamp=old + i) for i in range(30)])
    one_per_batch(b, topic, [rec(body(i), key=b"k") for i in range(30, 36)])
    pdir = broker.partition_dir(topic, 0)
    before = segments(pdir)
    assert len(before) >= 6, before
    # The segment holding offset 30 holds fresh records: it and the ones after it stay.
    expected_start = segment_holding(pdir, 30)
    assert cf_offsets(b, topic) == (0, 36)

    set_topic_config(b, topic, retention_ms=HOUR)
    wait_log_start(b, topic, expected_start)
    assert segments(pdir) == [(base, size) for base, size in before if base >= expected_start]
    assert cf_offsets(b, topic) == (expected_start, 36)

    # A consumer at offset 0 resets to the new start (auto.offset.reset=earliest) ...
    got = cf_read(b, topic, offset=0, min_records=36 - expected_start)
    assert [(r["offset"], r["value"]) for r in got] == [(i, body(i)) for i in range(expected_start, 36)]
    got = kp_read(b, topic, offset=0)
    assert [r["offset"] for r in got] == list(range(expected_start, 36))
    # ... or reports OFFSET_OUT_OF_RANGE when it may not reset.
    with CfReader(b, topic, 0, 0, auto_offset_reset="error") as reader:
        deadline = time.monotonic() + 20
        while True:
            try:
                reader.poll_once()
            except Exception as exc:  # noqa: BLE001 - the error event is what we wait for
                err = exc.args[0]
                break
            assert time.monotonic() < deadline, "no offset-out-of-range error reported"
    assert err.code() == KafkaError._AUTO_OFFSET_RESET and "Offset out of range" in err.str(), err
    with KpReader(b, topic, 0, 0, auto_offset_reset="none") as reader:
        with pytest.raises(kafka.errors.OffsetOutOfRangeError):
            for _ in range(50):
                reader.poll_once()

    # The new start survives a restart (segments are gone; the checkpoint agrees).
    broker.restart()
    assert cf_offsets(b, topic) == (expected_start, 36)


def kafka_size_retention(sizes: list, limit: int) -> int:
    """How many segments, oldest first, Kafka's size retention deletes
    (UnifiedLog.deleteRetentionSizeBreachedSegments)."""
    excess = sum(sizes) - limit
    n = 0
    for size in sizes:
        if excess - size < 0:
            break
        excess -= size
        n += 1
    return n


def test_retention_bytes_deletes_from_the_oldest_while_over_the_limit(broker, topic):
    b = broker.bootstrap
    create_topic(b, topic, config={**SMALL, "retention.ms": "-1"})
    res = kp_produce(b, topic, [rec(body(i), key=b"k%d" % i) for i in range(40)], batch_size=1, linger_ms=0)
    assert [r["offset"] for r in res] == list(range(40))
    pdir = broker.partition_dir(topic, 0)
    before = segments(pdir)
    limit = 2500
    n = kafka_size_retention([size for _, size in before], limit)
    assert 0 < n < len(before) - 1, (before, n)
    expected_start = before[n][0]

    set_topic_config(b, topic, retention_bytes=limit)
    wait_log_start(b, topic, expected_start)
    after = segments(pdir)
    assert after == before[n:]
    assert sum(size for _, size in after) <= limit + after[0][1]
    got = cf_read(b, topic, offset=0, min_records=40 - expected_start)
    assert [(r["offset"], r["key"], r["value"]) for r in got] == [(i, b"k%d" % i, body(i)) for i in range(expected_start, 40)]

    # More data: each pass keeps the log within the limit plus one segment.
    kp_produce(b, topic, [rec(body(i), key=b"k%d" % i) for i in range(40, 60)], batch_size=1, linger_ms=0)

    def within_limit():
        now = segments(pdir)
        return now if kafka_size_retention([size for _, size in now], limit) == 0 else None
    now = wait_until(within_limit, 20, f"retention to bring {topic} within retention.bytes again")
    assert now[0][0] > expected_start, (now, expected_start)  # 2 KiB more: segments went
    assert cf_offsets(b, topic) == (now[0][0], 60)


def test_time_retention_with_a_short_segment_ms(broker, topic):
    """segment.ms rolls segments on append; retention.ms then drops each as it ages, and once
    everything is older than retention.ms the active segment goes too (after a roll): the log
    is empty at its end offset and keeps its offsets."""
    b = broker.bootstrap
    create_topic(b, topic, config={"segment.ms": "300", "retention.ms": "2500"})
    for i in range(4):
        one_per_batch(b, topic, [rec(b"r%d" % i, key=b"k")])
        time.sleep(0.4)
    pdir = broker.partition_dir(topic, 0)
    # Each append came more than segment.ms after the previous one: one record per segment.
    bases = [base for base, _ in segments(pdir)]
    assert bases[:4] == [0, 1, 2, 3], bases
    # The oldest segments go first, one at a time as each ages past retention.ms (watched on
    # disk, which is cheap enough to see every step).
    firsts = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        first = segments(pdir)[0][0]
        if not firsts or firsts[-1] != first:
            firsts.append(first)
        if first == 4:
            break
        time.sleep(0.01)
    assert firsts == [0, 1, 2, 3, 4], firsts
    assert cf_offsets(b, topic) == (4, 4)
    assert [base for base, _ in segments(pdir)] == [4]
    assert cf_read(b, topic, offset=0) == []
    assert one_per_batch(b, topic, [rec(b"again", key=b"k")]) == [4]
    assert [(r["offset"], r["value"]) for r in cf_read(b, topic, offset=0, min_records=1)] == [(4, b"again")]


def test_compact_delete_topics_also_expire_by_time(broker, topic):
    b = broker.bootstrap
    create_topic(b, topic, config={**SMALL, "cleanup.policy": "compact,delete", "min.cleanable.dirty.ratio": "0.99"})
    old = now_ms() - 2 * HOUR
    one_per_batch(b, topic, [rec(body(i), key=b"k%d" % i, timestamp=old) for i in range(20)])
    one_per_batch(b, topic, [rec(body(i), key=b"k%d" % i) for i in range(20, 26)])
    pdir = broker.partition_dir(topic, 0)
    expected_start = segment_holding(pdir, 20)
    set_topic_config(b, topic, retention_ms=HOUR)
    wait_log_start(b, topic, expected_start)
    got = cf_read(b, topic, offset=0, min_records=26 - expected_start)
    assert [r["offset"] for r in got] == list(range(expected_start, 26))
