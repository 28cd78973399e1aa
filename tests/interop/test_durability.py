"""Durability: graceful restart (SIGTERM), crash (kill -9), torn tail writes, multi-segment
logs. Every test gets its own broker (function-scoped) because it restarts it."""
from __future__ import annotations

import re
import threading
import time

import kwire
from kclients import (NewTopic, cf_admin, cf_create_topics, cf_delete_topics, cf_produce, cf_producer, cf_read,
                      cf_watermarks, comparable, kcat_read, kp_create_topics, kp_produce, kp_producer, kp_read, rec)

T0 = 1_700_000_000_000
# Tiny segments so that a few KB of data spans many segment files. (Apache Kafka 4.x requires
# log.segment.bytes >= 1 MiB since KIP-1030; Rivulet is asked to accept small values for tests.)
SMALL_SEGMENT_BYTES = 1024
SEGMENT_NAME = re.compile(r"^(\d{20})\.log$")
# Records a producer may have unanswered in the kill -9 tests of flush.messages=1 topics.
IN_FLIGHT = 600


def rich_records(n, partitions=1, tag=b"r"):
    out = []
    for i in range(n):
        value = None if i % 17 == 5 else (b"" if i % 13 == 4 else tag + b"-val-%05d-" % i + bytes([i % 256]) * (i % 40))
        # never both key and value null (kafka-python refuses to send such a record)
        key = None if (i % 11 == 3 and value is not None) else tag + b"-key-%05d" % i
        out.append(rec(
            value=value,
            key=key,
            headers=[("seq", b"%d" % i), ("dup", b"a"), ("dup", b"\x00\xff%d" % (i % 3))] if i % 2 else [],
            timestamp=T0 + i * 10,
            partition=i % partitions))
    return out


def with_offsets(records, partitions=1):
    nxt = [0] * partitions
    out = []
    for r in records:
        out.append(dict(r, offset=nxt[r["partition"]]))
        nxt[r["partition"]] += 1
    return out


def read_all(broker, topic, partitions):
    """Every record of every partition, read by confluent-kafka and kafka-python (must agree)."""
    got = []
    for p in range(partitions):
        a = cf_read(broker.bootstrap, topic, p)
        b = kp_read(broker.bootstrap, topic, p)
        assert comparable(a) == comparable(b), f"clients disagree on partition {p}"
        got += a
    return comparable(got)


def expected_sorted(records, partitions):
    recs = with_offsets(records, partitions)
    return comparable(sorted(recs, key=lambda r: (r["partition"], r["offset"])))


def segments(broker, topic, partition=0):
    d = broker.partition_dir(topic, partition)
    names = sorted(p.name for p in d.glob("*.log"))
    for n in names:
        assert SEGMENT_NAME.match(n), f"bad segment file name {n!r} in {d}"
    return [int(SEGMENT_NAME.match(n).group(1)) for n in names]


def produce_acked(broker, topic, records, **conf):
    """Produce with acks=all; every record must be acknowledged (offsets are checked by the
    exact read-back comparisons)."""
    res = cf_produce(broker.bootstrap, topic, records, acks="all", **conf)
    assert [r["error"] for r in res] == [None] * len(records)
    return res


# ------------------------------------------------------------------------------ graceful restart

def test_graceful_restart_preserves_every_record_byte_for_byte(broker_factory):
    b = broker_factory()
    topic, parts = "durable", 2
    assert cf_create_topics(b.bootstrap, [NewTopic(topic, parts, 1)]) == {topic: 0}
    plain = rich_records(150, parts, b"plain")
    produce_acked(b, topic, plain)
    zipped = rich_records(150, parts, b"zstd")
    produce_acked(b, topic, zipped, compression_type="zstd", linger_ms=50)
    want = expected_sorted(plain + zipped, parts)
    before = read_all(b, topic, parts)
    assert before == want

    b.stop()  # asserts exit code 0
    assert b.clean_shutdown_marker().is_file(), "graceful shutdown must write .kafka_cleanshutdown"
    b.start()

    md = cf_admin(b.bootstrap).list_topics(timeout=15)
    assert sorted(md.topics[topic].partitions) == [0, 1]
    assert read_all(b, topic, parts) == want
    assert [cf_watermarks(b.bootstrap, topic, p) for p in range(parts)] == [(0, 150), (0, 150)]
    res = cf_produce(b.bootstrap, topic, [rec(b"after-restart", partition=p) for p in range(parts)])
    assert [(r["partition"], r["offset"]) for r in res] == [(0, 150), (1, 150)]


def test_topic_configs_and_empty_topics_survive_restart(broker_factory):
    b = broker_factory()
    assert cf_create_topics(b.bootstrap, [NewTopic("empty", 3, 1),
                                          NewTopic("limited", 1, 1, config={"max.message.bytes": "2000"})]) == \
        {"empty": 0, "limited": 0}
    b.stop()
    b.start()
    md = cf_admin(b.bootstrap).list_topics(timeout=15)
    assert sorted(md.topics["empty"].partitions) == [0, 1, 2]
    assert [cf_watermarks(b.bootstrap, "empty", p) for p in range(3)] == [(0, 0)] * 3
    # the topic-level max.message.bytes is still enforced after the restart
    with kwire.Conn.to(b.bootstrap) as c:
        big = kwire.produce_v3(c, "limited", 0, kwire.record_batch([(None, b"x" * 3000, [])], T0))
        small = kwire.produce_v3(c, "limited", 0, kwire.record_batch([(None, b"x" * 100, [])], T0))
    assert big["error"] == kwire.ERR_MESSAGE_TOO_LARGE
    assert (small["error"], small["base_offset"]) == (0, 0)


def test_deleted_topic_stays_deleted_after_restart(broker_factory):
    b = broker_factory()
    assert cf_create_topics(b.bootstrap, [NewTopic("gone", 1, 1), NewTopic("kept", 1, 1)]) == {"gone": 0, "kept": 0}
    produce_acked(b, "gone", rich_records(5))
    assert cf_delete_topics(b.bootstrap, ["gone"]) == {"gone": 0}
    b.stop()
    b.start()
    topics = cf_admin(b.bootstrap).list_topics(timeout=15).topics
    assert "gone" not in topics and "kept" in topics


# ------------------------------------------------------------------------------ kill -9

def test_kill9_keeps_every_answered_metadata_change(broker_factory):
    """Every metadata change the controller answered is in the metadata log (committed through
    the quorum) before the answer: topic creation with configs, new partitions, a topic config
    change, a broker config change and a deletion all survive kill -9. confluent-kafka makes the
    changes; kafka-python and confluent-kafka read them back after the restart."""
    from confluent_kafka.admin import ConfigResource, NewPartitions
    b = broker_factory()
    assert cf_create_topics(b.bootstrap, [NewTopic("m-compact", 2, 1, config={"cleanup.policy": "compact"}),
                                          NewTopic("m-grow", 1, 1), NewTopic("m-gone", 1, 1)]) == \
        {"m-compact": 0, "m-grow": 0, "m-gone": 0}
    admin = cf_admin(b.bootstrap)
    for fut in admin.create_partitions([NewPartitions("m-grow", 3)], request_timeout=20).values():
        assert fut.result(timeout=30) is None
    topic_cfg = ConfigResource(ConfigResource.Type.TOPIC, "m-compact",
                               set_config={"cleanup.policy": "compact", "retention.ms": "3600000"})
    broker_cfg = ConfigResource(ConfigResource.Type.BROKER, "1", set_config={"log.retention.ms": "7200000"})
    for fut in admin.alter_configs([topic_cfg, broker_cfg]).values():
        fut.result(timeout=30)
    assert cf_delete_topics(b.bootstrap, ["m-gone"]) == {"m-gone": 0}

    b.kill9()
    b.start()
    md = cf_admin(b.bootstrap).list_topics(timeout=15)
    assert {t: sorted(md.topics[t].partitions) for t in md.topics if t.startswith("m-")} == \
        {"m-compact": [0, 1], "m-grow": [0, 1, 2]}
    from test_log_management_support import kp_describe
    topic = kp_describe(b.bootstrap, "m-compact")
    assert (topic["cleanup.policy"]["value"], topic["retention.ms"]["value"]) == ("compact", "3600000")
    assert kp_describe(b.bootstrap, "1", kind="broker")["log.retention.ms"]["value"] == "7200000"
    # The grown partitions take records at once.
    res = cf_produce(b.bootstrap, "m-grow", [rec(b"after", partition=p) for p in range(3)])
    assert [(r["partition"], r["offset"]) for r in res] == [(0, 0), (1, 0), (2, 0)]


def test_kill9_loses_no_acknowledged_record(broker_factory):
    b = broker_factory()
    topic, parts = "crashy", 3
    assert cf_create_topics(b.bootstrap, [NewTopic(topic, parts, 1)]) == {topic: 0}
    records = rich_records(300, parts, b"k9")
    produce_acked(b, topic, records[:100])
    produce_acked(b, topic, records[100:200], compression_type="gzip", linger_ms=20)
    kp = kp_produce(b.bootstrap, topic, records[200:], acks="all", compression_type="lz4")
    assert len(kp) == 100
    want = expected_sorted(records, parts)

    b.kill9()
    assert not b.clean_shutdown_marker().exists(), \
        "a .kafka_cleanshutdown left from an earlier run would make the next start skip recovery"
    b.start()
    assert read_all(b, topic, parts) == want
    res = cf_produce(b.bootstrap, topic, [rec(b"next", partition=p) for p in range(parts)])
    assert [(r["partition"], r["offset"]) for r in res] == [(p, 100) for p in range(parts)]


def test_kill9_during_continuous_produce_keeps_every_acknowledged_record(broker_factory):
    b = broker_factory()
    topic = "stream"
    assert cf_create_topics(b.bootstrap, [NewTopic(topic, 1, 1)]) == {topic: 0}
    total = 20_000
    values = [b"stream-%06d" % i for i in range(total)]
    acked = {}  # offset -> value
    lock = threading.Lock()
    producer = cf_producer(b.bootstrap, acks="all", linger_ms=2, message_timeout_ms=5000, retries=0)

    def make_cb(v):
        def cb(err, msg):
            if err is None:
                with lock:
                    acked[msg.offset()] = v
        return cb

    killed = False
    for v in values:
        while True:
            try:
                producer.produce(topic, value=v, partition=0, on_delivery=make_cb(v))
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        if not killed and len(acked) >= 2000:
            b.kill9()
            killed = True
    producer.flush(30)  # everything not acked by now fails (broker is down)
    assert killed, "the broker was never killed (too few acknowledgements)"
    n_acked = len(acked)
    assert sorted(acked) == list(range(n_acked)), "acked offsets must be contiguous from 0"

    b.start()
    got = cf_read(b.bootstrap, topic, 0, min_records=n_acked, timeout=60)
    # The log is a prefix of the produced sequence that contains every acknowledged record
    # (records in flight at the kill may or may not have been persisted).
    assert len(got) >= n_acked
    assert [r["offset"] for r in got] == list(range(len(got)))
    assert [r["value"] for r in got] == values[:len(got)]
    assert all(acked[o] == got[o]["value"] for o in acked)
    res = cf_produce(b.bootstrap, topic, [rec(b"after", partition=0)])
    assert res[0]["offset"] == len(got)


def test_flush_messages_1_acknowledges_exact_records_and_kill9_keeps_every_acknowledged_one(broker_factory):
    """A topic with flush.messages=1: every append is fsynced (one group commit for all the
    appends waiting) before it is acknowledged. Two clients' records come back exactly; then
    kill -9 during a continuous produce to six partitions keeps every acknowledged record."""
    b = broker_factory()
    topic, parts = "synced", 6
    assert cf_create_topics(b.bootstrap, [NewTopic(topic, parts, 1, config={"flush.messages": "1"})]) == {topic: 0}
    records = rich_records(600, parts, b"fm1")
    produce_acked(b, topic, records[:300])
    produce_acked(b, topic, records[300:450], compression_type="zstd", linger_ms=20)
    kp = kp_produce(b.bootstrap, topic, records[450:], acks=1, linger_ms=0)
    assert len(kp) == 150
    want = expected_sorted(records, parts)
    assert read_all(b, topic, parts) == want

    # Each partition's stream continues at offset 100 (600 records over 6 partitions).
    values = {p: [] for p in range(parts)}
    acked = {}  # (partition, offset) -> value
    answered = [0]  # delivery reports, success or not
    lock = threading.Lock()
    producer = cf_producer(b.bootstrap, acks="all", linger_ms=1, message_timeout_ms=5000, retries=0)

    def make_cb(v):
        def cb(err, msg):
            with lock:
                answered[0] += 1
                if err is None:
                    acked[(msg.partition(), msg.offset())] = v
        return cb

    # At most IN_FLIGHT records unanswered, so that none waits out message.timeout.ms in
    # the client's queue on a slow machine (a record failed locally would leave a gap).
    killed = False
    deadline = time.monotonic() + 90
    i = 0
    while not killed:
        assert time.monotonic() < deadline, f"only {len(acked)} records acknowledged in 90 s"
        if i - answered[0] >= IN_FLIGHT:
            producer.poll(0.01)
            continue
        p = i % parts
        v = b"synced-%06d" % i
        try:
            producer.produce(topic, value=v, partition=p, on_delivery=make_cb(v))
        except BufferError:
            producer.poll(0.05)
            continue
        values[p].append(v)
        i += 1
        producer.poll(0)
        if len(acked) >= 3000:
            b.kill9()
            killed = True
    producer.flush(30)  # everything not acknowledged by now fails (the broker is down)
    assert killed, "the broker was never killed (too few acknowledgements)"

    b.start()
    for p in range(parts):
        mine = sorted(o for (q, o) in acked if q == p)
        assert mine == list(range(100, 100 + len(mine))), f"acknowledged offsets of {p} are not contiguous"
        got = cf_read(b.bootstrap, topic, p, 100, min_records=len(mine), timeout=60)
        # A prefix of what was sent to the partition, holding every acknowledged record (those in
        # flight at the kill may or may not be there).
        assert len(got) >= len(mine)
        assert [r["offset"] for r in got] == list(range(100, 100 + len(got)))
        assert [r["value"] for r in got] == values[p][:len(got)]
        assert all(acked[(p, o)] == got[o - 100]["value"] for o in mine)
    assert comparable(cf_read(b.bootstrap, topic, 0, 0))[:100] == [r for r in want if r[0] == 0]


def test_flush_messages_1_two_clients_producing_through_kill9_keep_every_acknowledged_record(broker_factory):
    """flush.messages=1, two independent producers at once until kill -9: confluent-kafka
    (acks=all) to partitions 0-2 and kafka-python (acks=1) to partitions 3-5. After the
    restart each partition holds an unbroken prefix of what was sent to it, with every
    record either client saw acknowledged at the offset it was given; both clients read
    the same records back, and kcat agrees on one partition."""
    b = broker_factory()
    topic, parts = "synced2", 6
    assert cf_create_topics(b.bootstrap, [NewTopic(topic, parts, 1, config={"flush.messages": "1"})]) == {topic: 0}
    sent = {p: [] for p in range(parts)}
    acked = {}  # (partition, offset) -> value
    lock = threading.Lock()
    killed = threading.Event()
    enough = threading.Event()

    per_client = [0, 0]  # acknowledged: confluent-kafka (partitions 0-2), kafka-python (3-5)
    answered = [0, 0]  # answers, success or not, per client

    def note(p, offset, v):
        with lock:
            acked[(p, offset)] = v
            per_client[p // 3] += 1
            answered[p // 3] += 1
            if per_client[0] >= 2000 and per_client[1] >= 1000:
                enough.set()

    def failed(client):
        with lock:
            answered[client] += 1

    def confluent():
        producer = cf_producer(b.bootstrap, acks="all", linger_ms=1, message_timeout_ms=5000, retries=0)

        def make_cb(v):
            def cb(err, msg):
                if err is None:
                    note(msg.partition(), msg.offset(), v)
                else:
                    failed(0)
            return cb

        # At most IN_FLIGHT unanswered: none waits out its timeout in the client's queue.
        i = 0
        while not killed.is_set():
            if i - answered[0] >= IN_FLIGHT:
                producer.poll(0.01)
                continue
            p = i % 3
            v = b"cf-%07d" % i
            try:
                producer.produce(topic, value=v, partition=p, on_delivery=make_cb(v))
            except BufferError:
                producer.poll(0.05)
                continue
            sent[p].append(v)
            producer.poll(0)
            i += 1
            if per_client[0] >= 2000:
                time.sleep(0.001)  # its share is in: leave the CPU to kafka-python
        producer.flush(30)  # what was not acknowledged by now fails: the broker is down

    def kafka_python():
        producer = kp_producer(b.bootstrap, acks=1, linger_ms=1, retries=0, request_timeout_ms=5000,
                               delivery_timeout_ms=6000, max_block_ms=5000,
                               max_in_flight_requests_per_connection=5)
        i = 0
        while not killed.is_set():
            if i - answered[1] >= IN_FLIGHT:
                time.sleep(0.01)
                continue
            p = 3 + i % 3
            v = b"kp-%07d" % i
            try:
                future = producer.send(topic, value=v, partition=p)
            except Exception:  # the broker is gone: the buffer or the metadata times out
                break
            sent[p].append(v)
            future.add_callback(lambda md, v=v: note(md.partition, md.offset, v))
            future.add_errback(lambda _: failed(1))
            i += 1
        producer.flush(timeout=30)  # what was not acknowledged by now has expired
        producer.close(timeout=10)

    threads = [threading.Thread(target=confluent), threading.Thread(target=kafka_python)]
    for t in threads:
        t.start()
    reached = enough.wait(120)
    b.kill9()
    killed.set()
    for t in threads:
        t.join(90)
        assert not t.is_alive(), "a producer did not finish after the broker was killed"
    assert reached, f"only {per_client} records acknowledged before the kill"

    b.start()
    for p in range(parts):
        mine = sorted(o for (q, o) in acked if q == p)
        assert mine == list(range(len(mine))), f"acknowledged offsets of {p} are not contiguous"
        got = cf_read(b.bootstrap, topic, p, 0, min_records=len(mine), timeout=60)
        assert comparable(kp_read(b.bootstrap, topic, p)) == comparable(got), f"clients disagree on {p}"
        # A prefix of what was sent, holding every acknowledged record (those in flight at the
        # kill may or may not be there).
        assert len(got) >= len(mine)
        assert [r["offset"] for r in got] == list(range(len(got)))
        assert [r["value"] for r in got] == sent[p][:len(got)]
        assert all(acked[(p, o)] == got[o]["value"] for o in mine)
    tail = kcat_read(b.bootstrap, topic, 4)
    assert [(r["offset"], r["value"]) for r in tail] == [(o, sent[4][o]) for o in range(len(tail))]
    res = cf_produce(b.bootstrap, topic, [rec(b"after", partition=p) for p in range(parts)], acks="all")
    assert [r["error"] for r in res] == [None] * parts
    assert [r["offset"] for r in res] == [len(cf_read(b.bootstrap, topic, p)) - 1 for p in range(parts)]


def test_torn_tail_write_after_kill9_is_truncated_and_acknowledged_records_survive(broker_factory):
    b = broker_factory()
    topic = "torn"
    assert cf_create_topics(b.bootstrap, [NewTopic(topic, 1, 1)]) == {topic: 0}
    records = rich_records(50)
    produce_acked(b, topic, records[:25])
    produce_acked(b, topic, records[25:], compression_type="snappy", linger_ms=20)
    b.kill9()
    # Simulate a write torn by the crash: a partial record batch at the end of the active segment.
    last = max(segments(b, topic))
    log = b.partition_dir(topic, 0) / f"{last:020d}.log"
    partial = kwire.record_batch([(b"torn", b"t" * 500, [])], T0)[:200]
    with open(log, "ab") as f:
        f.write(partial)
    b.start()
    want = expected_sorted(records, 1)
    assert read_all(b, topic, 1) == want
    res = cf_produce(b.bootstrap, topic, [rec(b"after-torn", partition=0)])
    assert res[0]["offset"] == 50
    got = cf_read(b.bootstrap, topic, 0, 49)
    assert [(r["offset"], r["value"]) for r in got] == [(49, records[49]["value"]), (50, b"after-torn")]


# ------------------------------------------------------------------------------ segments

def _produce_small_batches(b, topic, records, per_batch=3, first_offset=0):
    p = cf_producer(b.bootstrap, acks="all", linger_ms=0)
    offsets = []

    def cb(err, msg):
        assert err is None, err
        offsets.append(msg.offset())

    for s in range(0, len(records), per_batch):
        for r in records[s:s + per_batch]:
            p.produce(topic, value=r["value"], key=r["key"], headers=r["headers"] or None,
                      timestamp=r["timestamp"], partition=0, on_delivery=cb)
        assert p.flush(30) == 0
    assert offsets == list(range(first_offset, first_offset + len(records)))


def test_segment_files_are_named_by_20_digit_base_offset_with_index_files(broker_factory):
    b = broker_factory({"log.segment.bytes": SMALL_SEGMENT_BYTES})
    topic = "segmented"
    assert kp_create_topics(b.bootstrap, {topic: {"num_partitions": 1, "replication_factor": 1}}) == {topic: 0}
    records = rich_records(120)
    _produce_small_batches(b, topic, records)
    bases = segments(b, topic)
    assert len(bases) >= 5, f"expected many segments with log.segment.bytes={SMALL_SEGMENT_BYTES}, got {bases}"
    assert bases[0] == 0 and bases == sorted(set(bases))
    d = b.partition_dir(topic, 0)
    for base in bases:
        assert (d / f"{base:020d}.index").is_file(), f"missing index for segment {base}"
        assert (d / f"{base:020d}.timeindex").is_file(), f"missing time index for segment {base}"
    # each segment's name is the offset of its first record
    for base in bases:
        first = cf_read(b.bootstrap, topic, 0, base)[0]
        assert first["offset"] == base


def _check_segmented_log(b, topic, records, bases):
    want = expected_sorted(records, 1)
    assert read_all(b, topic, 1) == want
    # tiny fetches: each Fetch returns about one batch, crossing every segment boundary
    got = cf_read(b.bootstrap, topic, 0, 0, fetch_message_max_bytes=1000, fetch_max_bytes=1000,
                  message_max_bytes=1000)
    assert comparable(got) == want
    for base in bases[1:]:
        for start in (base - 1, base):
            assert comparable(cf_read(b.bootstrap, topic, 0, start)) == want[start:], start
            assert comparable(kp_read(b.bootstrap, topic, 0, start)) == want[start:], start


def test_multiple_segments_survive_graceful_restart_and_reads_across_boundaries_are_exact(broker_factory):
    b = broker_factory({"log.segment.bytes": SMALL_SEGMENT_BYTES})
    topic = "multi-seg"
    assert cf_create_topics(b.bootstrap, [NewTopic(topic, 1, 1)]) == {topic: 0}
    records = rich_records(120)
    _produce_small_batches(b, topic, records)
    bases = segments(b, topic)
    assert len(bases) >= 5, bases
    _check_segmented_log(b, topic, records, bases)
    b.stop()
    assert b.clean_shutdown_marker().is_file()
    b.start()
    assert set(bases) <= set(segments(b, topic))
    _check_segmented_log(b, topic, records, bases)
    more = rich_records(30, tag=b"more")
    _produce_small_batches(b, topic, more, first_offset=120)
    offs = [r["offset"] for r in cf_read(b.bootstrap, topic, 0, 120)]
    assert offs == list(range(120, 150))


def test_multiple_segments_survive_kill9(broker_factory):
    b = broker_factory({"log.segment.bytes": SMALL_SEGMENT_BYTES})
    topic = "multi-seg-crash"
    assert cf_create_topics(b.bootstrap, [NewTopic(topic, 1, 1)]) == {topic: 0}
    records = rich_records(120)
    _produce_small_batches(b, topic, records)
    bases = segments(b, topic)
    assert len(bases) >= 5, bases
    b.kill9()
    b.start()
    assert set(bases) <= set(segments(b, topic))
    _check_segmented_log(b, topic, records, bases)
