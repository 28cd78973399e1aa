"""Produce: acks 0/1/all, keys, headers, null/empty values, compression codecs, record size
limits, explicit partitions and exact returned offsets. Every produced record is read back by
a *different* client than the one that wrote it."""
from __future__ import annotations

import pytest

import kwire
from kclients import (KafkaError, NewTopic, cf_create_topics, cf_produce, cf_read, cf_watermarks,
                      comparable, js_error_types, js_produce, kcat_produce, kcat_read, kp_produce,
                      kp_read, rec, wait_hwm)
from rivulet_harness import node_script

DEFAULT_MAX_MESSAGE_BYTES = 1048588
T0 = 1_700_000_000_000  # explicit CreateTime base for deterministic timestamps


def create(broker, topic, partitions=1):
    assert cf_create_topics(broker.bootstrap, [NewTopic(topic, partitions, 1)]) == {topic: 0}


def batch_value_size_for(batch_size: int) -> int:
    for v in range(batch_size - 100, batch_size):
        if len(kwire.record_batch([(None, b"x" * v, [])], 0)) == batch_size:
            return v
    raise AssertionError("unreachable")


def kv(records):
    return [(r["offset"], r["key"], r["value"]) for r in records]


# ------------------------------------------------------------------------------ acks

ACKS = {"0": 0, "1": 1, "all": -1}


def _produce_ten(client, broker, topic, acks):
    values = [b"acks-%s-%02d" % (acks.encode(), i) for i in range(10)]
    keys = [b"k%02d" % i for i in range(10)]
    if client == "confluent":
        res = cf_produce(broker.bootstrap, topic, [rec(v, key=k, partition=0) for k, v in zip(keys, values)],
                         acks=str(ACKS[acks]))
        assert all(r["error"] is None for r in res), res
        offsets = [r["offset"] for r in res]
    elif client == "kafka-python":
        res = kp_produce(broker.bootstrap, topic, [rec(v, key=k, partition=0) for k, v in zip(keys, values)],
                         acks=ACKS[acks] if acks != "all" else "all")
        offsets = [r["offset"] for r in res]
    elif client == "kafkajs":
        res = js_produce(broker.bootstrap, topic, [[rec(v, key=k, partition=0) for k, v in zip(keys, values)]],
                         acks=ACKS[acks])
        assert res["sends"][0]["ok"], res
        offsets = res["sends"][0]["offsets"]
    elif client == "kcat":
        kcat_produce(broker.bootstrap, topic, [k + b":" + v for k, v in zip(keys, values)], partition=0,
                     key_delim=":", acks=ACKS[acks])
        offsets = None
    else:
        raise AssertionError(client)
    return keys, values, offsets


@pytest.mark.parametrize("acks", ["0", "1", "all"])
@pytest.mark.parametrize("client", ["confluent", "kafka-python", "kafkajs", "kcat"])
def test_produce_with_acks_stores_every_record_in_order(broker, topic, client, acks):
    create(broker, topic)
    keys, values, offsets = _produce_ten(client, broker, topic, acks)
    if acks == "0":
        # acks=0: the broker sends no response, so whatever offsets a client reports are its
        # own invention (kafka-python reports 0..n-1, confluent None, kafkajs nothing). The
        # broker's behaviour is checked by reading the log back.
        wait_hwm(broker.bootstrap, topic, 0, 10)
    elif client != "kcat":
        assert offsets == list(range(10))
    reader = kp_read if client != "kafka-python" else cf_read
    got = reader(broker.bootstrap, topic, 0)
    assert kv(got) == [(i, keys[i], values[i]) for i in range(10)]
    assert cf_watermarks(broker.bootstrap, topic, 0) == (0, 10)


# ------------------------------------------------------------------------------ keys, headers, values

BIN = bytes(range(256))
TRICKY = [
    rec(b"v1", key=b"k1", headers=[("h", b"1"), ("h", b"2"), ("bin", BIN)], timestamp=T0),
    rec(None, key=b"tombstone", timestamp=T0 + 1),
    rec(b"", key=b"", timestamp=T0 + 2),
    rec(b"", key=None, timestamp=T0 + 3),
    rec(None, key=None, timestamp=T0 + 4),
    rec(BIN * 4, key=BIN, headers=[("empty", b""), ("null", None), ("", b"empty-name"), ("h", b"3")],
        timestamp=T0 + 5),
    rec(b"\x00", key=b"\xff", headers=[("dup", b"a"), ("other", b"b"), ("dup", b"c")], timestamp=T0 + 6),
]


def expected(records, partition=0):
    return [dict(r, partition=partition, offset=i) for i, r in enumerate(records)]


def test_keys_headers_null_and_empty_values_round_trip_confluent_to_kafka_python(broker, topic):
    create(broker, topic)
    res = cf_produce(broker.bootstrap, topic, [dict(r, partition=0) for r in TRICKY])
    assert [(r["offset"], r["error"]) for r in res] == [(i, None) for i in range(len(TRICKY))]
    want = comparable(expected(TRICKY))
    assert comparable(kp_read(broker.bootstrap, topic, 0)) == want
    assert comparable(cf_read(broker.bootstrap, topic, 0)) == want


def test_keys_headers_null_and_empty_values_round_trip_kafka_python_to_confluent(broker, topic):
    create(broker, topic)
    # kafka-python refuses to send a record whose key and value are both None ("Need at least
    # one: key or value") and header values that are None ("All headers items must be (str,
    # bytes) tuples"): those are left out here (confluent-kafka covers them above).
    records = [dict(r, headers=[(k, v) for k, v in r["headers"] if v is not None])
               for r in TRICKY if not (r["key"] is None and r["value"] is None)]
    assert len(records) == len(TRICKY) - 1
    res = kp_produce(broker.bootstrap, topic, [dict(r, partition=0) for r in records])
    assert [r["offset"] for r in res] == list(range(len(records)))
    want = comparable(expected(records))
    assert comparable(cf_read(broker.bootstrap, topic, 0)) == want
    assert comparable(kp_read(broker.bootstrap, topic, 0)) == want


def test_keys_headers_null_and_empty_values_round_trip_kafkajs_to_confluent(broker, topic):
    create(broker, topic)
    # kafkajs takes headers as an object: it cannot encode null header values, and duplicate
    # keys are grouped (values of one key are adjacent, in order). Use records it can express.
    records = [
        rec(b"v1", key=b"k1", headers=[("h", b"1"), ("h", b"2"), ("bin", BIN)], timestamp=T0),
        rec(None, key=b"tombstone", timestamp=T0 + 1),
        rec(b"", key=b"", timestamp=T0 + 2),
        rec(b"", key=None, timestamp=T0 + 3),
        rec(None, key=None, timestamp=T0 + 4),
        rec(BIN * 4, key=BIN, headers=[("empty", b""), ("", b"empty-name")], timestamp=T0 + 5),
    ]
    res = js_produce(broker.bootstrap, topic, [[dict(r, partition=0) for r in records]])
    assert res["sends"][0]["ok"] and res["sends"][0]["offsets"] == list(range(len(records))), res
    assert comparable(cf_read(broker.bootstrap, topic, 0)) == comparable(expected(records))


def test_kcat_keys_duplicate_headers_and_null_values_round_trip_to_confluent(broker, topic):
    create(broker, topic)
    kcat_produce(broker.bootstrap, topic, [b"k1:v1", b"k2:", b":v3", b"k4:v4"], key_delim=":",
                 headers=["h=1", "h=2", "x=y"], null_empty=True, partition=0)
    got = cf_read(broker.bootstrap, topic, 0)
    hdrs = [("h", b"1"), ("h", b"2"), ("x", b"y")]
    # -Z: empty key / value are sent as NULL
    assert [(r["offset"], r["key"], r["value"], r["headers"]) for r in got] == [
        (0, b"k1", b"v1", hdrs), (1, b"k2", None, hdrs), (2, None, b"v3", hdrs), (3, b"k4", b"v4", hdrs)]
    assert kcat_read(broker.bootstrap, topic, 0) == got


def test_explicit_create_time_timestamps_are_preserved(broker, topic):
    create(broker, topic)
    stamps = [T0 + 5000, T0, T0 + 10, 1, T0 + 99999]  # deliberately not monotonic
    cf_produce(broker.bootstrap, topic, [rec(b"%d" % i, timestamp=t, partition=0) for i, t in enumerate(stamps)])
    got = kp_read(broker.bootstrap, topic, 0)
    assert [(r["timestamp"], r["timestamp_type"]) for r in got] == [(t, "create") for t in stamps]
    got = cf_read(broker.bootstrap, topic, 0)
    assert [(r["timestamp"], r["timestamp_type"]) for r in got] == [(t, "create") for t in stamps]


# ------------------------------------------------------------------------------ compression

def _records(n, tag):
    return [rec(b"%s-value-%03d-" % (tag.encode(), i) + b"z" * (i % 7) * 10, key=b"key-%03d" % i,
                headers=[("seq", b"%d" % i), ("codec", tag.encode())], timestamp=T0 + i, partition=0)
            for i in range(n)]


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_confluent_compressed_batches_read_back_exactly_by_kafka_python(broker, topic, codec):
    create(broker, topic)
    records = _records(30, codec)
    res = cf_produce(broker.bootstrap, topic, records, compression_type=codec, linger_ms=200)
    assert [r["offset"] for r in res] == list(range(30))
    assert comparable(kp_read(broker.bootstrap, topic, 0)) == comparable(expected(records))


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_kafka_python_compressed_batches_read_back_exactly_by_confluent(broker, topic, codec):
    create(broker, topic)
    records = _records(30, codec)
    res = kp_produce(broker.bootstrap, topic, records, compression_type=None if codec == "none" else codec,
                     linger_ms=200)
    assert [r["offset"] for r in res] == list(range(30))
    assert comparable(cf_read(broker.bootstrap, topic, 0)) == comparable(expected(records))


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_kcat_compressed_batches_read_back_exactly_by_kafka_python(broker, topic, codec):
    create(broker, topic)
    lines = [b"k%03d:kcat-%s-%03d" % (i, codec.encode(), i) for i in range(30)]
    kcat_produce(broker.bootstrap, topic, lines, key_delim=":", compression=codec, partition=0,
                 extra=["-X", "linger.ms=200"])
    got = kp_read(broker.bootstrap, topic, 0)
    assert kv(got) == [(i, b"k%03d" % i, b"kcat-%s-%03d" % (codec.encode(), i)) for i in range(30)]


def test_kafkajs_codec_availability():
    """Documents which kafkajs codecs are installed: gzip is built in; snappy (kafkajs-snappy,
    pure JS) and lz4 (kafkajs-lz4, native `lz4` addon) are required; zstd is NOT available
    (@kafkajs/zstd's native dependency does not build on Node 20) and zstd interop is covered
    by confluent-kafka, kafka-python and kcat instead."""
    codecs = node_script("produce", {"brokers": ["127.0.0.1:1"], "sends": []})["codecs"]
    assert (codecs["gzip"], codecs["snappy"], codecs["lz4"], codecs["zstd"]) == (True, True, True, False), codecs


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4"])
def test_kafkajs_compressed_batches_read_back_exactly_by_confluent_and_kafka_python(broker, topic, codec):
    create(broker, topic)
    records = [dict(r, headers=[("seq", r["headers"][0][1])]) for r in _records(30, codec)]
    res = js_produce(broker.bootstrap, topic, [records[:15], records[15:]], compression=codec)
    assert [s["ok"] for s in res["sends"]] == [True, True], res
    assert res["sends"][0]["offsets"] + res["sends"][1]["offsets"] == list(range(30))
    want = comparable(expected(records))
    assert comparable(cf_read(broker.bootstrap, topic, 0)) == want
    assert comparable(kp_read(broker.bootstrap, topic, 0)) == want


# ------------------------------------------------------------------------------ size limits

def test_record_batch_exactly_at_message_max_bytes_is_accepted_and_one_byte_over_is_rejected(broker, topic):
    create(broker, topic)
    v = batch_value_size_for(DEFAULT_MAX_MESSAGE_BYTES)
    assert len(kwire.record_batch([(None, b"x" * v, [])], 0)) == DEFAULT_MAX_MESSAGE_BYTES
    with kwire.Conn.to(broker.bootstrap, timeout=30) as c:
        ok = kwire.produce_v3(c, topic, 0, kwire.record_batch([(None, b"a" * v, [])], T0))
        too_big = kwire.produce_v3(c, topic, 0, kwire.record_batch([(None, b"b" * (v + 1), [])], T0))
    assert (ok["error"], ok["base_offset"]) == (0, 0)
    assert too_big["error"] == kwire.ERR_MESSAGE_TOO_LARGE
    assert cf_watermarks(broker.bootstrap, topic, 0) == (0, 1)
    got = cf_read(broker.bootstrap, topic, 0)
    assert [(r["offset"], r["value"]) for r in got] == [(0, b"a" * v)]


@pytest.mark.parametrize("client", ["confluent", "kafka-python", "kafkajs"])
def test_client_record_at_limit_accepted_over_limit_rejected_and_log_unchanged(broker, topic, client):
    create(broker, topic)
    v = batch_value_size_for(DEFAULT_MAX_MESSAGE_BYTES)
    at_limit, over = rec(b"a" * v, partition=0), rec(b"b" * (v + 1), partition=0)
    after = rec(b"after", partition=0)
    if client == "confluent":
        conf = dict(message_max_bytes=4_000_000, batch_size=4_000_000, linger_ms=0)
        [r1] = cf_produce(broker.bootstrap, topic, [at_limit], **conf)
        [r2] = cf_produce(broker.bootstrap, topic, [over], **conf)
        [r3] = cf_produce(broker.bootstrap, topic, [after], **conf)
        assert (r1["offset"], r1["error"]) == (0, None)
        assert r2["error"] is not None and r2["error"].code() == KafkaError.MSG_SIZE_TOO_LARGE
        assert (r3["offset"], r3["error"]) == (1, None)
    elif client == "kafka-python":
        from kafka.errors import MessageSizeTooLargeError
        conf = dict(max_request_size=4_000_000, linger_ms=0, retries=0)
        assert kp_produce(broker.bootstrap, topic, [at_limit], **conf) == [{"partition": 0, "offset": 0}]
        with pytest.raises(MessageSizeTooLargeError):
            kp_produce(broker.bootstrap, topic, [over], **conf)
        assert kp_produce(broker.bootstrap, topic, [after], **conf) == [{"partition": 0, "offset": 1}]
    else:
        res = js_produce(broker.bootstrap, topic, [[at_limit], [over], [after]], retries=0)
        assert res["sends"][0]["ok"] and res["sends"][0]["offsets"] == [0], res["sends"][0]
        assert not res["sends"][1]["ok"]
        assert "MESSAGE_TOO_LARGE" in js_error_types(res["sends"][1]["error"]), res["sends"][1]
        assert res["sends"][2]["ok"] and res["sends"][2]["offsets"] == [1], res["sends"][2]
    assert cf_watermarks(broker.bootstrap, topic, 0) == (0, 2)
    got = kp_read(broker.bootstrap, topic, 0) if client != "kafka-python" else cf_read(broker.bootstrap, topic, 0)
    assert [(r["offset"], r["value"]) for r in got] == [(0, b"a" * v), (1, b"after")]


# ------------------------------------------------------------------------------ partitions

@pytest.mark.parametrize("client", ["confluent", "kafka-python", "kafkajs"])
def test_explicit_partitions_get_offsets_zero_to_n_minus_one_each(broker, topic, client):
    create(broker, topic, 3)
    records = [rec(b"p%d-%02d" % (i % 3, i // 3), key=b"%d" % i, partition=i % 3, timestamp=T0 + i)
               for i in range(30)]
    if client == "confluent":
        res = cf_produce(broker.bootstrap, topic, records)
        got = [(r["partition"], r["offset"]) for r in res]
    elif client == "kafka-python":
        got = [(r["partition"], r["offset"]) for r in kp_produce(broker.bootstrap, topic, records)]
    else:
        res = js_produce(broker.bootstrap, topic, [records[:12], records[12:]])
        assert all(s["ok"] for s in res["sends"]), res
        got = list(zip([r["partition"] for r in records], res["sends"][0]["offsets"] + res["sends"][1]["offsets"]))
    assert got == [(i % 3, i // 3) for i in range(30)]
    for p in range(3):
        want = [(i // 3, b"%d" % i, b"p%d-%02d" % (p, i // 3)) for i in range(30) if i % 3 == p]
        assert kv(cf_read(broker.bootstrap, topic, p)) == want
        assert cf_watermarks(broker.bootstrap, topic, p) == (0, 10)
