"""Scale: many partitions on one broker (issue 11, file descriptors).

A log holds one file descriptor (its active segment); older segments' files go through a
bounded cache and index files are not held open. So a broker hosts partitions up to its
descriptor limit minus a cache and a reserve, refuses (POLICY_VIOLATION) a topic creation
that would take it past that, and starts again after any state it accepted.

The data dir is on /dev/shm when there is one, so the test measures descriptors and memory
rather than the disk's fsync rate (each new partition fsyncs a few small files); there the
full scale test (100 topics x 100 partitions, written to, restarted, read) takes about 35 s
with a debug build. Without /dev/shm, or with RIVULET_SCALE_TEST=0, a tenth of it runs
(10 topics x 100); RIVULET_SCALE_TEST=1 forces the full one.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from kclients import NewTopic, cf_create_topics, cf_producer, kp_create_topics
from rivulet_harness import Broker, wait_until
from confluent_kafka import Consumer, TopicPartition

POLICY_VIOLATION = 44
FULL = os.environ.get("RIVULET_SCALE_TEST", "1" if Path("/dev/shm").is_dir() else "0") == "1"


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture
def fast_dir():
    base = "/dev/shm" if Path("/dev/shm").is_dir() else None
    path = Path(tempfile.mkdtemp(prefix="rivulet-scale-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class LimitedBroker(Broker):
    """A broker started under `prlimit --nofile=N:N` (soft and hard)."""

    def __init__(self, workdir, nofile: int, **kw):
        super().__init__(workdir, **kw)
        self.nofile = nofile

    def command(self) -> list[str]:
        return ["prlimit", f"--nofile={self.nofile}:{self.nofile}"] + super().command()


def create_many(bootstrap: str, topics: list[str], partitions: int) -> None:
    for i in range(0, len(topics), 10):
        codes = cf_create_topics(bootstrap, [NewTopic(t, partitions, 1) for t in topics[i:i + 10]])
        assert set(codes.values()) == {0}, codes


def write_one_each(bootstrap: str, topics: list[str], partitions: int) -> None:
    producer = cf_producer(bootstrap, **{"linger.ms": 50, "batch.num.messages": 10000})
    failed = []
    for t in topics:
        for p in range(partitions):
            producer.produce(t, value=b"%s-%d" % (t.encode(), p), partition=p,
                             on_delivery=lambda err, msg: err and failed.append(err))
        producer.poll(0)
    assert producer.flush(120) == 0
    assert failed == []


def read_one_each(bootstrap: str, topics: list[str], partitions: int) -> dict:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "scale-check",
                         "enable.auto.commit": False, "enable.partition.eof": False})
    consumer.assign([TopicPartition(t, p, 0) for t in topics for p in range(partitions)])
    got = {}
    deadline = time.monotonic() + 120
    try:
        while len(got) < len(topics) * partitions and time.monotonic() < deadline:
            for m in consumer.consume(1000, timeout=1.0):
                if m.error() is None:
                    got[(m.topic(), m.partition())] = m.value()
    finally:
        consumer.close()
    return got


def test_many_partitions_hold_one_descriptor_each_and_survive_a_restart(fast_dir):
    topic_count = 100 if FULL else 10
    partitions = 100
    total = topic_count * partitions
    broker = Broker(fast_dir / "broker", name="scale-broker")
    try:
        broker.start()
        base_fds = open_fds(broker.pid)
        topics = [f"scale-{i}" for i in range(topic_count)]
        started = time.monotonic()
        create_many(broker.bootstrap, topics, partitions)
        created_s = time.monotonic() - started
        write_one_each(broker.bootstrap, topics, partitions)
        fds, rss = open_fds(broker.pid), broker.rss_bytes()
        print(f"\n{total} partitions: created in {created_s:.1f}s; {fds} descriptors "
              f"({base_fds} before), RSS {rss / 2**20:.0f} MiB")
        # One per partition, and less than a handful more for everything else here.
        # (Not `fds - base_fds`: a descriptor open at the baseline may have closed since,
        # e.g. the metadata log's import; seen as 9,999 more with 13 before.)
        assert total <= fds <= total + base_fds + 64, (fds, base_fds)
        broker.stop()
        started = time.monotonic()
        broker.start()
        # The listener is up before the logs are loaded: wait for them.
        wait_until(lambda: open_fds(broker.pid) >= total, 120, f"{total} logs to be open again")
        restart_s = time.monotonic() - started
        fds, rss = open_fds(broker.pid), broker.rss_bytes()
        print(f"after restart ({restart_s:.1f}s): {fds} descriptors, RSS {rss / 2**20:.0f} MiB")
        assert total <= fds <= total + base_fds + 64, fds
        got = read_one_each(broker.bootstrap, topics, partitions)
        assert len(got) == total
        assert all(v == b"%s-%d" % (t.encode(), p) for (t, p), v in got.items())
        fds, rss = open_fds(broker.pid), broker.rss_bytes()
        print(f"after reading every partition: {fds} descriptors, RSS {rss / 2**20:.0f} MiB")
    finally:
        broker.close()


def test_a_creation_past_the_descriptor_budget_is_refused_and_the_broker_restarts(fast_dir):
    # 2,048 descriptors: a cache of 128 and a reserve of 1,024 leave 896 partitions.
    broker = LimitedBroker(fast_dir / "limited", nofile=2048, name="limited-broker")
    try:
        broker.start()
        b = broker.bootstrap
        # 896 in all; leave 50 for __consumer_offsets, which the reading below creates.
        assert cf_create_topics(b, [NewTopic("fits", 700, 1)]) == {"fits": 0}
        assert cf_create_topics(b, [NewTopic("too-many", 200, 1)]) == {"too-many": POLICY_VIOLATION}
        assert kp_create_topics(b, {"too-many-kp": {"num_partitions": 197, "replication_factor": 1}}) == \
            {"too-many-kp": POLICY_VIOLATION}
        assert cf_create_topics(b, [NewTopic("still-fits", 146, 1)]) == {"still-fits": 0}
        assert cf_create_topics(b, [NewTopic("one-more", 51, 1)]) == {"one-more": POLICY_VIOLATION}
        write_one_each(b, ["fits", "still-fits"], 146)
        broker.kill9()
        broker.start()
        wait_until(lambda: open_fds(broker.pid) >= 846, 30, "the logs to be open again")
        got = read_one_each(broker.bootstrap, ["fits", "still-fits"], 146)
        assert len(got) == 2 * 146
    finally:
        broker.close()
