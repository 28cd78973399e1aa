"""Log compaction with real clients: after the cleaner runs, a compacted topic holds the latest
record of each key, in offset order with the original offsets (below the active segment;
the active segment is never cleaned, as in Kafka); tombstones stay for delete.retention.ms
from the cleaning that first keeps them (KIP-534's delete horizon); keyless records are refused with INVALID_RECORD; and a kill -9 while the
cleaner rewrites a big topic loses nothing."""
from __future__ import annotations

import random
import struct
import time

import kafka.errors
import pytest
from confluent_kafka import KafkaError

from kclients import cf_produce, cf_read, cf_watermarks, kcat_read, kp_producer, kp_read, rec
from rivulet_harness import wait_until
from test_log_management_support import (cf_offsets, cleaner_checkpoint, compacted_model, create_topic, segments,
                                         set_topic_config, wait_cleaned_to)

BROKER_OVERRIDES = {"log.cleaner.backoff.ms": "100", "log.retention.check.interval.ms": "200"}

COMPACT = {"cleanup.policy": "compact", "segment.bytes": "1000", "min.cleanable.dirty.ratio": "0.01"}


def produce(bootstrap, topic, specs):
    """Produce (key, value) pairs one per batch with confluent-kafka; returns them as records
    with their offsets."""
    res = cf_produce(bootstrap, topic, [rec(v, key=k) for k, v in specs], batch_num_messages=1, linger_ms=0)
    assert [r["error"] for r in res] == [None] * len(specs), res
    return [{"offset": r["offset"], "key": k, "value": v} for r, (k, v) in zip(res, specs)]


def val(key: bytes, n: int) -> bytes:
    return key + b"=%d;" % n + b"." * 80


def as_tuples(records):
    return [(r["offset"], r["key"], r["value"]) for r in records]


def active_base(broker, topic) -> int:
    return segments(broker.partition_dir(topic, 0))[-1][0]


def test_compaction_keeps_the_latest_record_per_key_in_offset_order(broker, topic):
    b = broker.bootstrap
    create_topic(b, topic, config=COMPACT)
    keys = [b"k%d" % i for i in range(10)]
    specs = [(k, val(k, r)) for r in range(4) for k in keys]
    specs += [(b"k3", None), (b"k7", None)]
    specs += [(k, val(k, r)) for r in range(4, 6) for k in keys if k not in (b"k3", b"k7")]
    produced = produce(b, topic, specs)
    assert [r["offset"] for r in produced] == list(range(len(specs)))
    segments_before = len(segments(broker.partition_dir(topic, 0)))
    end = active_base(broker, topic)
    wait_cleaned_to(broker.data_dir, topic, end)
    expected = compacted_model(produced, end)
    # What compaction must have removed: every older value of a key updated before `end`.
    assert len(expected) < len(produced) and all(r["offset"] >= end or r["key"] not in
                                                 {x["key"] for x in produced if end > x["offset"] > r["offset"]}
                                                 for r in expected)
    got = kp_read(b, topic, offset="beginning")
    assert as_tuples(got) == as_tuples(expected)
    got = cf_read(b, topic, offset=0, min_records=len(expected))
    assert as_tuples(got) == as_tuples(expected)
    # The tombstones are kept (delete.retention.ms is a day) and read as null values.
    assert [(r["key"], r["value"]) for r in got if r["value"] is None] == [(b"k3", None), (b"k7", None)]
    # kcat (librdkafka 2.0) reads the same keys and values.
    assert [(r["offset"], r["key"]) for r in kcat_read(b, topic)] == [(r["offset"], r["key"]) for r in expected]
    # Offsets never change: the high watermark and the log start stay.
    assert cf_offsets(b, topic) == (0, len(specs))
    # (Segments merge only when a later pass finds them small: never more than before.)
    assert len(segments(broker.partition_dir(topic, 0))) <= segments_before


def batch_headers(partition_dir) -> list:
    """(base offset, attributes, base timestamp) of every batch in a partition's .log files,
    read from the bytes on disk (Kafka's v2 batch header)."""
    out = []
    for log_file in sorted(partition_dir.glob("*.log")):
        data = log_file.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            base_offset, length = struct.unpack_from(">qi", data, pos)
            attributes, = struct.unpack_from(">h", data, pos + 21)
            base_timestamp, = struct.unpack_from(">q", data, pos + 27)
            out.append((base_offset, attributes, base_timestamp))
            pos += 12 + length
    return out


DELETE_HORIZON_BIT = 0x40


def test_tombstones_stay_for_delete_retention_ms_from_the_cleaning_that_keeps_them(broker, topic):
    """KIP-534, as Kafka has it: the first cleaning that keeps a tombstone stamps its batch with
    a delete horizon (the cleaning's time + delete.retention.ms) and the first cleaning after
    that horizon drops it; a shorter delete.retention.ms set later does not move a horizon
    already stamped. Record timestamps never change."""
    b = broker.bootstrap
    create_topic(b, topic, config=COMPACT)  # delete.retention.ms: the default, a day
    t0 = int(time.time() * 1000) - 3_600_000
    # No cleaning can start before the records exist: the horizon's lower bound. (Taken
    # after producing, it raced a cleaning that started while the last records went in.)
    before_clean = time.time() * 1000
    specs = [(b"a", val(b"a", 1)), (b"b", val(b"b", 1)), (b"c", val(b"c", 1)), (b"b", None), (b"a", val(b"a", 2))]
    res = cf_produce(b, topic, [rec(v, key=k, timestamp=t0 + i) for i, (k, v) in enumerate(specs)],
                     batch_num_messages=1, linger_ms=0)
    assert [r["error"] for r in res] == [None] * len(specs), res
    produced = [{"offset": r["offset"], "key": k, "value": v} for r, (k, v) in zip(res, specs)]
    produced += produce(b, topic, [(b"f%d" % i, val(b"f", i)) for i in range(12)])
    end = active_base(broker, topic)
    assert end > 4, "the tombstone must be in a segment the cleaner may clean"
    wait_cleaned_to(broker.data_dir, topic, end)
    got = cf_read(b, topic, offset=0, min_records=1)
    assert as_tuples(got) == as_tuples(compacted_model(produced, end))
    assert (3, b"b", None) in as_tuples(got)
    # The producer's timestamps, unchanged by the horizon stamped on the tombstone's batch.
    assert [(r["offset"], r["timestamp"]) for r in got if r["offset"] < 5] == [(2, t0 + 2), (3, t0 + 3), (4, t0 + 4)]
    # On disk: the tombstone's batch carries the delete-horizon bit and, as its base
    # timestamp, a horizon a day after the cleaning; the other kept batches none.
    headers = {o: (attrs, ts) for o, attrs, ts in batch_headers(broker.partition_dir(topic, 0))}
    attrs, horizon = headers[3]
    assert attrs & DELETE_HORIZON_BIT
    assert before_clean + 86_400_000 <= horizon <= time.time() * 1000 + 86_400_000
    assert not headers[2][0] & DELETE_HORIZON_BIT and not headers[4][0] & DELETE_HORIZON_BIT

    # A shorter delete.retention.ms now: b's horizon, stamped a day out, stays; a new
    # tombstone for c gets 3 s.
    set_topic_config(b, topic, delete_retention_ms=3000)
    c_produced_at = time.time() * 1000
    c_tombstone = produce(b, topic, [(b"c", None)])[0]["offset"]
    produced += [{"offset": c_tombstone, "key": b"c", "value": None}]
    produced += produce(b, topic, [(b"g%d" % i, val(b"g", i)) for i in range(12)])
    end2 = active_base(broker, topic)
    assert end2 > end
    wait_cleaned_to(broker.data_dir, topic, end2)
    got = kp_read(b, topic, offset="beginning")
    assert as_tuples(got) == as_tuples(compacted_model(produced, end2))
    assert {r["key"] for r in got if r["value"] is None} == {b"b", b"c"}
    # kafka-python computes the same timestamps from the horizon-stamped batch.
    assert [(r["offset"], r["timestamp"]) for r in got if r["offset"] in (3, 4)] == [(3, t0 + 3), (4, t0 + 4)]

    # c's tombstone is stamped with a horizon 3 s after the cleaning that kept it.
    c_attrs, c_horizon = {o: (attrs, ts) for o, attrs, ts in batch_headers(broker.partition_dir(topic, 0))}[c_tombstone]
    assert c_attrs & DELETE_HORIZON_BIT
    assert c_produced_at + 3000 <= c_horizon <= time.time() * 1000 + 3000
    # Past c's horizon, the next cleaning drops c's tombstone (and with it every trace of c);
    # b's stays.
    wait_until(lambda: time.time() * 1000 > c_horizon, 10, "c's delete horizon to pass")
    produced += produce(b, topic, [(b"h%d" % i, val(b"h", i)) for i in range(12)])
    end3 = active_base(broker, topic)
    assert end3 > end2
    wait_cleaned_to(broker.data_dir, topic, end3)
    expected = [r for r in compacted_model(produced, end3) if r["key"] != b"c"]
    got = cf_read(b, topic, offset=0, min_records=len(expected))
    assert as_tuples(got) == as_tuples(expected)
    assert (3, b"b", None) in as_tuples(got)
    assert [r["offset"] for r in kp_read(b, topic, offset="beginning")] == [r["offset"] for r in expected]


def test_keyless_records_are_refused_with_invalid_record(broker, topic):
    b = broker.bootstrap
    create_topic(b, topic, config={"cleanup.policy": "compact,delete"})
    assert produce(b, topic, [(b"k", b"v")])[0]["offset"] == 0
    res = cf_produce(b, topic, [rec(b"no key")], message_timeout_ms=5000, retries=0)
    assert res[0]["error"] is not None and res[0]["error"].code() == KafkaError.INVALID_RECORD, res
    # One keyless record refuses its whole batch (kafka-python batches these three); the
    # answer's KIP-467 record_errors name it, so only it fails as invalid and the other two
    # fail as part of a refused batch.
    producer = kp_producer(b, linger_ms=500, retries=0)
    try:
        futures = [producer.send(topic, value=b"1", key=b"a"), producer.send(topic, value=b"2"),
                   producer.send(topic, value=b"3", key=b"c")]
        producer.flush(timeout=30)
        for i, f in enumerate(futures):
            with pytest.raises(kafka.errors.KafkaError) as failed:
                f.get(timeout=30)
            if i == 1:
                assert isinstance(failed.value, kafka.errors.InvalidRecordError), failed.value
            else:
                assert not isinstance(failed.value, kafka.errors.InvalidRecordError), failed.value
                assert "part of a batch which had one more more invalid records" in str(failed.value)
    finally:
        producer.close(timeout=10)
    assert cf_watermarks(b, topic) == (0, 1)
    assert as_tuples(cf_read(b, topic, offset=0, min_records=1)) == [(0, b"k", b"v")]


def test_kill9_while_cleaning_a_big_topic_loses_nothing(broker_factory, topic):
    """The cleaner is throttled so a cleaning of ~9 MB takes seconds; the broker is killed
    while the cleaned segments are being written (`.cleaned` files on disk), twice. After each
    restart every key's latest value is still there, at its offset, and nothing else changed.
    A SIGTERM during a cleaning stops it promptly; then an unthrottled cleaning finishes and
    leaves exactly one record per key."""
    broker = broker_factory(overrides={"log.cleaner.backoff.ms": "100",
                                       "log.cleaner.io.max.bytes.per.second": "3000000"})
    b = broker.bootstrap
    create_topic(b, topic, config={"segment.bytes": "1048576", "cleanup.policy": "delete"})
    nkeys, rounds = 3000, 20
    values = {}
    specs = []
    for r in range(rounds):
        for i in range(nkeys):
            key = b"key-%05d" % i
            specs.append((key, b"%s round %d " % (key, r) + b"#" * 120))
    res = cf_produce(b, topic, [rec(v, key=k) for k, v in specs], linger_ms=20, batch_size=500000)
    assert [r["error"] for r in res] == [None] * len(specs)
    assert [r["offset"] for r in res] == list(range(len(specs)))
    for offset, (k, v) in enumerate(specs):
        values[offset] = (k, v)
    latest = {}
    for offset, (k, _) in enumerate(specs):
        latest[k] = offset
    pdir = broker.partition_dir(topic, 0)
    assert len(segments(pdir)) >= 5

    def check_nothing_lost():
        got = cf_read(b, topic, offset=0, min_records=1, timeout=60)
        offsets = [r["offset"] for r in got]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
        for r in got:
            assert (r["key"], r["value"]) == values[r["offset"]], r["offset"]
        present = {r["offset"] for r in got}
        missing = [k for k, o in latest.items() if o not in present]
        assert not missing, f"{len(missing)} keys lost their latest value, e.g. {missing[:5]}"
        assert cf_watermarks(b, topic) == (0, len(specs))
        return got

    set_topic_config(b, topic, cleanup_policy="compact")
    for attempt in range(2):
        wait_until(lambda: list(pdir.glob("*.cleaned")), 60, "the cleaner to write .cleaned files", interval=0.02)
        time.sleep(random.uniform(0.0, 0.4))
        broker.kill9()
        leftovers = {p.name: p.stat().st_ino for p in pdir.iterdir() if p.suffix in (".cleaned", ".swap")}
        assert leftovers, "the kill should have caught the cleaner mid-way"
        broker.start()
        check_nothing_lost()
        # The broker serves once its logs are open: the killed cleaner's files are gone
        # by then (the new cleaner may be writing its own, under the same names).
        still = [n for n, ino in leftovers.items() if (pdir / n).exists() and (pdir / n).stat().st_ino == ino]
        assert not still, still

    # A graceful stop in the middle of a (throttled, slow) cleaning stops the cleaning at
    # once and removes its partial output.
    wait_until(lambda: list(pdir.glob("*.cleaned")), 60, "the cleaner to write .cleaned files", interval=0.02)
    started = time.monotonic()
    broker.stop()
    assert time.monotonic() - started < 5, "a cleaning in progress held up the shutdown"
    assert not [p for p in pdir.iterdir() if p.suffix in (".cleaned", ".swap")]
    check_files = segments(pdir)
    # Unthrottled, the cleaning completes: one record per key below the active segment.
    broker.start(extra_overrides={"log.cleaner.io.max.bytes.per.second": "1e12"})
    assert len(check_files) >= 5
    end = active_base(broker, topic)
    wait_cleaned_to(broker.data_dir, topic, end, timeout=60)
    got = check_nothing_lost()
    produced = [{"offset": o, "key": k, "value": v} for o, (k, v) in values.items()]
    assert as_tuples(got) == as_tuples(compacted_model(produced, end))


def test_max_compaction_lag_forces_cleaning_of_old_dirty_data(broker, topic):
    """Below min.cleanable.dirty.ratio a log is cleaned only once its oldest dirty data is
    older than max.compaction.lag.ms, measured from the first dirty batch (not from the
    log's oldest record, which here is hours old)."""
    b = broker.bootstrap
    # segment.ms: the first fresh record rolls a new segment (its timestamp is hours
    # after the old ones'), so the dirty part after the first cleaning is all fresh.
    create_topic(b, topic, config={**COMPACT, "min.cleanable.dirty.ratio": "0.9", "max.compaction.lag.ms": "3600000",
                                   "segment.ms": "100"})
    old = int(time.time() * 1000) - 2 * 3_600_000
    res = cf_produce(b, topic, [rec(val(b"u%d" % i, i), key=b"u%d" % i, timestamp=old + i) for i in range(60)],
                     batch_num_messages=1, linger_ms=0)
    assert [r["error"] for r in res] == [None] * 60
    fresh_start = produce(b, topic, [(b"f0", val(b"f", 0))])[0]["offset"]
    assert active_base(broker, topic) == fresh_start
    wait_cleaned_to(broker.data_dir, topic, fresh_start)  # dirty ratio 1.0: cleaned at once
    assert cleaner_checkpoint(broker.data_dir)[(topic, 0)] == fresh_start
    # A little fresh data: the dirty ratio stays far below 0.9, and it is not old.
    produce(b, topic, [(b"f%d" % (i % 3), val(b"f", i)) for i in range(1, 13)])
    end = active_base(broker, topic)
    assert end > fresh_start
    waiting_since = time.monotonic()
    # The thing under test is a wait: for 1.5 s (15 cleaner passes) the log stays as it is,
    # while the cleaner is shown to be running by cleaning another log meanwhile.
    control = f"{topic}-control"
    create_topic(b, control, config=COMPACT)
    produce(b, control, [(b"k", val(b"k", i)) for i in range(24)])
    control_end = active_base(broker, control)
    assert control_end > 0
    wait_cleaned_to(broker.data_dir, control, control_end)
    time.sleep(max(0.0, waiting_since + 1.5 - time.monotonic()))
    assert cleaner_checkpoint(broker.data_dir)[(topic, 0)] == fresh_start, "fresh dirty data below the ratio must wait"
    set_topic_config(b, topic, max_compaction_lag_ms=500)
    wait_cleaned_to(broker.data_dir, topic, end)
