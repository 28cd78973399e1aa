"""Volume sanity: 20 000 records into 3 partitions from two concurrent producers
(confluent-kafka and kafka-python); counts and per-partition order must be exact for every
consumer (confluent-kafka, kafka-python, kcat)."""
from __future__ import annotations

import threading
from collections import Counter

import pytest

from kclients import NewTopic, cf_create_topics, cf_produce, cf_read, kcat, kp_produce, kp_read, rec

N_PER_PRODUCER = 10_000
PARTITIONS = 3


def _records(tag: bytes):
    return [rec(b"%s-%06d-" % (tag, i) + b"x" * (i % 50), key=b"%s%d" % (tag, i), partition=i % PARTITIONS)
            for i in range(N_PER_PRODUCER)]


def _check_partition(p: int, got: list, cf_recs, kp_recs):
    assert [r["offset"] for r in got] == list(range(len(got))), f"partition {p}: offsets not contiguous"
    by_tag = {b"cf": [], b"kp": []}
    for r in got:
        by_tag[r["value"][:2]].append(r["value"])
    # per producer: exactly its records for this partition, in the order it sent them
    assert by_tag[b"cf"] == [r["value"] for r in cf_recs if r["partition"] == p]
    assert by_tag[b"kp"] == [r["value"] for r in kp_recs if r["partition"] == p]


@pytest.mark.timeout(300)
def test_twenty_thousand_records_from_two_concurrent_producers_exact_counts_and_order(broker, topic):
    assert cf_create_topics(broker.bootstrap, [NewTopic(topic, PARTITIONS, 1)]) == {topic: 0}
    cf_recs, kp_recs = _records(b"cf"), _records(b"kp")
    results = {}
    errors = []

    def run(name, fn):
        try:
            results[name] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=("cf", lambda: cf_produce(
            broker.bootstrap, topic, cf_recs, linger_ms=5, compression_type="lz4",
            max_in_flight_requests_per_connection=1))),
        threading.Thread(target=run, args=("kp", lambda: kp_produce(
            broker.bootstrap, topic, kp_recs, linger_ms=5, compression_type="gzip",
            max_in_flight_requests_per_connection=1))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    if errors:
        raise errors[0]
    assert all(r["error"] is None for r in results["cf"])
    # each producer's offsets per partition are strictly increasing
    for name in ("cf", "kp"):
        for p in range(PARTITIONS):
            offs = [r["offset"] for r in results[name] if r["partition"] == p]
            assert offs == sorted(offs) and len(set(offs)) == len(offs), (name, p)

    expected_counts = {p: 2 * len(range(p, N_PER_PRODUCER, PARTITIONS)) for p in range(PARTITIONS)}
    assert sum(expected_counts.values()) == 2 * N_PER_PRODUCER

    for p in range(PARTITIONS):
        got_cf = cf_read(broker.bootstrap, topic, p, min_records=expected_counts[p], timeout=120)
        assert len(got_cf) == expected_counts[p]
        _check_partition(p, got_cf, cf_recs, kp_recs)
        got_kp = kp_read(broker.bootstrap, topic, p, timeout=120)
        assert [(r["offset"], r["value"]) for r in got_kp] == [(r["offset"], r["value"]) for r in got_cf]

    proc = kcat(broker.bootstrap, ["-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%p %o\n",
                                   "-X", "broker.address.family=v4"], timeout=120)
    counts = Counter(int(line.split()[0]) for line in proc.stdout.decode().splitlines())
    assert dict(counts) == expected_counts
