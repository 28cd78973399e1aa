"""Consume (Fetch) and ListOffsets: earliest, latest, explicit offsets (also inside compressed
batches), timestamps, watermarks, and auto.offset.reset after an out-of-range fetch.
Consumers use manual assignment only (no group APIs)."""
from __future__ import annotations

import pytest
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END
from confluent_kafka.admin import OffsetSpec

from kclients import (CfReader, KpReader, KpTopicPartition, NewTopic, TopicPartition, cf_admin,
                      cf_create_topics, cf_produce, cf_read, cf_watermarks, comparable, js_admin,
                      kcat, kcat_query_offset, kcat_read, kp_produce, kp_read, rec)

T0 = 1_700_000_000_000


def create(broker, topic, partitions=1):
    assert cf_create_topics(broker.bootstrap, [NewTopic(topic, partitions, 1)]) == {topic: 0}


def offsets(records):
    return [r["offset"] for r in records]


def fill(broker, topic, n, ts_step=1000, per_batch=10):
    """n text records with timestamps T0 + i*ts_step, in batches of `per_batch`."""
    recs = [rec(b"value-%04d" % i, key=b"key-%04d" % i, timestamp=T0 + i * ts_step, partition=0,
                headers=[("i", b"%d" % i)]) for i in range(n)]
    for s in range(0, n, per_batch):
        assert kp_produce(broker.bootstrap, topic, recs[s:s + per_batch], linger_ms=100) == \
            [{"partition": 0, "offset": i} for i in range(s, min(n, s + per_batch))]
    return [dict(r, offset=i) for i, r in enumerate(recs)]


# ------------------------------------------------------------------------------ earliest / latest

def test_consume_from_earliest_returns_every_record_exactly_once_in_order(broker, topic):
    create(broker, topic)
    want = comparable(fill(broker, topic, 200, per_batch=7))
    assert comparable(cf_read(broker.bootstrap, topic, 0, OFFSET_BEGINNING)) == want
    # tiny fetch sizes force many Fetch round trips
    assert comparable(cf_read(broker.bootstrap, topic, 0, OFFSET_BEGINNING, fetch_message_max_bytes=1024,
                              fetch_max_bytes=1024, message_max_bytes=1000)) == want
    assert comparable(kp_read(broker.bootstrap, topic, 0, "beginning")) == want
    assert comparable(kp_read(broker.bootstrap, topic, 0, "beginning", max_partition_fetch_bytes=1024,
                              fetch_max_bytes=1024)) == want
    assert comparable(kcat_read(broker.bootstrap, topic, 0, "beginning")) == want


def test_consume_from_latest_sees_only_records_produced_afterwards(broker, topic):
    create(broker, topic)
    fill(broker, topic, 20)
    with CfReader(broker.bootstrap, topic, 0, OFFSET_END) as cf, \
            KpReader(broker.bootstrap, topic, 0, "end") as kp:
        cf.wait_eof_at(20)
        assert kp.position() == 20
        res = cf_produce(broker.bootstrap, topic, [rec(b"new-%d" % i, partition=0) for i in range(3)])
        assert offsets(res) == [20, 21, 22]
        got_cf = cf.read_until_eof(min_records=3)
        got_kp = kp.read_until_offset(23)
    want = [(20, b"new-0"), (21, b"new-1"), (22, b"new-2")]
    assert [(r["offset"], r["value"]) for r in got_cf] == want
    assert [(r["offset"], r["value"]) for r in got_kp] == want


def test_consume_latest_with_kcat_on_idle_partition_returns_nothing(broker, topic):
    create(broker, topic)
    fill(broker, topic, 5)
    assert kcat_read(broker.bootstrap, topic, 0, "end") == []


# ------------------------------------------------------------------------------ explicit offsets

@pytest.mark.parametrize("start", [0, 1, 9, 10, 37, 49])
def test_consume_from_offset_starts_exactly_there(broker, topic, start):
    create(broker, topic)
    want = comparable(fill(broker, topic, 50, per_batch=10))[start:]
    assert comparable(cf_read(broker.bootstrap, topic, 0, start)) == want
    assert comparable(kp_read(broker.bootstrap, topic, 0, start)) == want
    assert comparable(kcat_read(broker.bootstrap, topic, 0, start)) == want


def test_consume_from_relative_end_offset_with_kcat(broker, topic):
    create(broker, topic)
    want = comparable(fill(broker, topic, 30))
    assert comparable(kcat_read(broker.bootstrap, topic, 0, -4)) == want[-4:]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_consume_from_offset_inside_compressed_batch_starts_exactly_there(broker, topic, codec):
    create(broker, topic)
    recs = [rec(b"c-%03d" % i, key=b"%d" % i, timestamp=T0 + i, partition=0) for i in range(30)]
    # three compressed batches of ten: offsets [0..9], [10..19], [20..29]
    for s in (0, 10, 20):
        res = cf_produce(broker.bootstrap, topic, recs[s:s + 10], compression_type=codec, linger_ms=1000,
                         batch_num_messages=10)
        assert offsets(res) == list(range(s, s + 10))
    want = comparable([dict(r, offset=i) for i, r in enumerate(recs)])
    for start in (14, 10, 19, 29, 3):
        assert comparable(cf_read(broker.bootstrap, topic, 0, start)) == want[start:], start
        assert comparable(kp_read(broker.bootstrap, topic, 0, start)) == want[start:], start
    assert comparable(kcat_read(broker.bootstrap, topic, 0, 14)) == want[14:]


# ------------------------------------------------------------------------------ timestamps

def test_offsets_for_times_returns_first_offset_at_or_after_timestamp(broker, topic):
    create(broker, topic)
    fill(broker, topic, 20, ts_step=1000, per_batch=5)
    cases = {T0 - 1: 0, T0: 0, T0 + 5000: 5, T0 + 5500: 6, T0 + 19000: 19, 0: 0}
    c = CfReader(broker.bootstrap, topic, 0, OFFSET_BEGINNING)
    try:
        for ts, off in cases.items():
            [tp] = c.consumer.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert (tp.offset, tp.error) == (off, None), ts
        # past the last record: no such offset -> -1 (OFFSET_END)
        [tp] = c.consumer.offsets_for_times([TopicPartition(topic, 0, T0 + 20000)], timeout=10)
        assert tp.offset == -1
    finally:
        c.close()

    with KpReader(broker.bootstrap, topic, 0) as kp:
        tpk = KpTopicPartition(topic, 0)
        for ts, off in cases.items():
            got = kp.consumer.offsets_for_times({tpk: ts})[tpk]
            assert (got.offset, got.timestamp) == (off, T0 + off * 1000), ts
        assert kp.consumer.offsets_for_times({tpk: T0 + 20000})[tpk] is None

    for ts, off in cases.items():
        assert kcat_query_offset(broker.bootstrap, topic, 0, ts) == off, ts
    assert kcat_query_offset(broker.bootstrap, topic, 0, T0 + 20000) == -1

    res = js_admin(broker.bootstrap, [{"op": "fetchTopicOffsetsByTimestamp", "topic": topic, "timestamp": ts}
                                      for ts in [T0 + 5500, T0 + 20000]])
    assert [r["ok"] for r in res] == [True, True], res
    assert res[0]["result"] == [{"partition": 0, "offset": "6"}]
    # kafkajs replaces the broker's -1 ("no such offset") with the high watermark
    assert res[1]["result"] == [{"partition": 0, "offset": "20"}]


def test_consume_from_timestamp_starts_at_first_record_at_or_after_it(broker, topic):
    create(broker, topic)
    want = comparable(fill(broker, topic, 20, ts_step=1000, per_batch=20))
    assert comparable(kcat_read(broker.bootstrap, topic, 0, f"s@{T0 + 7500}")) == want[8:]
    assert comparable(kcat_read(broker.bootstrap, topic, 0, f"s@{T0 + 7000}")) == want[7:]
    # consume with confluent from the offset offsets_for_times resolved
    c = CfReader(broker.bootstrap, topic, 0, OFFSET_BEGINNING)
    try:
        [tp] = c.consumer.offsets_for_times([TopicPartition(topic, 0, T0 + 12345)], timeout=10)
    finally:
        c.close()
    assert comparable(cf_read(broker.bootstrap, topic, 0, tp.offset)) == want[13:]


# ------------------------------------------------------------------------------ ListOffsets

def test_list_offsets_earliest_latest_and_watermarks(broker, topic):
    create(broker, topic, 2)
    fill(broker, topic, 12)
    assert cf_watermarks(broker.bootstrap, topic, 0) == (0, 12)
    assert cf_watermarks(broker.bootstrap, topic, 1) == (0, 0)

    admin = cf_admin(broker.bootstrap)
    specs = {TopicPartition(topic, 0): OffsetSpec.earliest(), TopicPartition(topic, 1): OffsetSpec.latest()}
    got = {tp.partition: f.result(timeout=20).offset for tp, f in admin.list_offsets(specs).items()}
    assert got == {0: 0, 1: 0}
    got = {tp.partition: f.result(timeout=20).offset
           for tp, f in admin.list_offsets({TopicPartition(topic, 0): OffsetSpec.latest()}).items()}
    assert got == {0: 12}
    res = admin.list_offsets({TopicPartition(topic, 0): OffsetSpec.for_timestamp(T0 + 3000)})
    assert [(f.result(timeout=20).offset, f.result().timestamp) for f in res.values()] == [(3, T0 + 3000)]
    # MAX_TIMESTAMP (-3, ListOffsets v7+): offset and timestamp of the record with the largest timestamp
    res = admin.list_offsets({TopicPartition(topic, 0): OffsetSpec.max_timestamp()})
    assert [(f.result(timeout=20).offset, f.result().timestamp) for f in res.values()] == [(11, T0 + 11000)]

    with KpReader(broker.bootstrap, topic, 0) as kp:
        tps = [KpTopicPartition(topic, 0), KpTopicPartition(topic, 1)]
        assert kp.consumer.beginning_offsets(tps) == {tps[0]: 0, tps[1]: 0}
        assert kp.consumer.end_offsets(tps) == {tps[0]: 12, tps[1]: 0}

    assert kcat_query_offset(broker.bootstrap, topic, 0, -1) == 12  # LATEST
    assert kcat_query_offset(broker.bootstrap, topic, 0, -2) == 0  # EARLIEST

    [r] = js_admin(broker.bootstrap, [{"op": "fetchTopicOffsets", "topic": topic}])
    assert r["ok"], r
    assert sorted(r["result"], key=lambda x: x["partition"]) == [
        {"partition": 0, "offset": "12", "high": "12", "low": "0"},
        {"partition": 1, "offset": "0", "high": "0", "low": "0"}]


def test_list_offsets_on_empty_partition(broker, topic):
    create(broker, topic)
    assert cf_watermarks(broker.bootstrap, topic, 0) == (0, 0)
    c = CfReader(broker.bootstrap, topic, 0, OFFSET_BEGINNING)
    try:
        [tp] = c.consumer.offsets_for_times([TopicPartition(topic, 0, T0)], timeout=10)
        assert tp.offset == -1
    finally:
        c.close()
    assert cf_read(broker.bootstrap, topic, 0) == []
    assert kcat_read(broker.bootstrap, topic, 0, "beginning") == []


# ------------------------------------------------------------------------------ offset reset

def test_fetch_beyond_end_resets_to_earliest_when_configured(broker, topic):
    create(broker, topic)
    want = comparable(fill(broker, topic, 10))
    with CfReader(broker.bootstrap, topic, 0, 1000, auto_offset_reset="earliest") as cf:
        assert comparable(cf.read_until_eof(min_records=10)) == want
    with KpReader(broker.bootstrap, topic, 0, 1000, auto_offset_reset="earliest") as kp:
        assert comparable(kp.read_until_offset(10)) == want
    got = kcat_read(broker.bootstrap, topic, 0, 1000, extra=["-X", "auto.offset.reset=earliest"])
    assert comparable(got) == want


def test_fetch_beyond_end_resets_to_latest_when_configured(broker, topic):
    create(broker, topic)
    fill(broker, topic, 10)
    with CfReader(broker.bootstrap, topic, 0, 1000, auto_offset_reset="latest") as cf, \
            KpReader(broker.bootstrap, topic, 0, 1000, auto_offset_reset="latest") as kp:
        cf.wait_eof_at(10)
        kp.wait_position(10)
        assert cf.records == [] and kp.records == []
        res = cf_produce(broker.bootstrap, topic, [rec(b"n0", partition=0), rec(b"n1", partition=0)])
        assert offsets(res) == [10, 11]
        got_cf = cf.read_until_eof(min_records=2)
        got_kp = kp.read_until_offset(12)
    assert [(r["offset"], r["value"]) for r in got_cf] == [(10, b"n0"), (11, b"n1")]
    assert [(r["offset"], r["value"]) for r in got_kp] == [(10, b"n0"), (11, b"n1")]
    # kcat with the (default) latest reset: nothing old is re-read
    assert kcat_read(broker.bootstrap, topic, 0, 1000, extra=["-X", "auto.offset.reset=latest"]) == []


def test_kcat_consumes_each_partition_of_a_multi_partition_topic_independently(broker, topic):
    create(broker, topic, 3)
    cf_produce(broker.bootstrap, topic, [rec(b"p%d-%d" % (i % 3, i // 3), partition=i % 3) for i in range(9)])
    for p in range(3):
        got = kcat_read(broker.bootstrap, topic, p, "beginning")
        assert [(r["partition"], r["offset"], r["value"]) for r in got] == \
            [(p, i, b"p%d-%d" % (p, i)) for i in range(3)]
    # kcat without -p reads all partitions; per-partition order must hold
    proc = kcat(broker.bootstrap, ["-C", "-t", topic, "-o", "beginning", "-e", "-f", "%p:%o:%s\n", "-q"])
    lines = proc.stdout.decode().split()
    assert sorted(lines) == sorted(f"{i % 3}:{i // 3}:p{i % 3}-{i // 3}" for i in range(9))
    for p in range(3):
        assert [l for l in lines if l.startswith(f"{p}:")] == [f"{p}:{i}:p{p}-{i}" for i in range(3)]
