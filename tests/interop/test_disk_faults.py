"""Disk faults with real clients (issue 11): a log dir on a small tmpfs that fills up while
confluent-kafka produces, and a compacted log the cleaner cannot read.

Full disk: appends to the full directory are refused (KAFKA_STORAGE_ERROR, retried by the
client until its delivery timeout) and rolled back; nothing acknowledged is lost; the
other log dir serves on; once space returns, produce works again; a restart and a kill -9
keep everything acknowledged. The tmpfs needs root (`mount -t tmpfs`); without it the test
is skipped.

Uncleanable log: the cleaner fails on it, marks it uncleanable, says so, and cleans the
other compacted logs.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kclients import cf_producer, cf_read, kp_read
from rivulet_harness import wait_until
from test_log_management_support import cleaner_checkpoint, create_topic


def mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {result.stderr.strip()}")


def remount(path: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path = tmp_path / "small"
    mount_tmpfs(path, "4m")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def produce_values(bootstrap: str, topic: str, values: list[bytes]) -> list[bytes]:
    """Produces `values` with idempotence; returns those acknowledged, in order."""
    producer = cf_producer(bootstrap, **{"enable.idempotence": True, "message.timeout.ms": 4000,
                                         "linger.ms": 5, "batch.size": 16384})
    acked: list[bytes] = []

    def report(err, msg):
        if err is None:
            acked.append(msg.value())

    for v in values:
        while True:
            try:
                producer.produce(topic, value=v, partition=0, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    producer.flush(60)
    return acked


def read_values(bootstrap: str, topic: str) -> list[bytes]:
    return [r["value"] for r in kp_read(bootstrap, topic, timeout=60)]


def test_a_full_log_dir_refuses_appends_loses_nothing_and_recovers(broker_factory, small_disk, tmp_path):
    big = tmp_path / "big"
    broker = broker_factory(overrides={"log.dirs": f"{small_disk},{big}",
                                       "metadata.log.dir": str(tmp_path / "meta")})
    b = broker.bootstrap
    # One log per log dir: the first goes to the emptiest, the first listed.
    create_topic(b, "on-small")
    create_topic(b, "on-big")
    assert (small_disk / "on-small-0").is_dir() and (big / "on-big-0").is_dir()
    sent = [b"%06d" % i + b"x" * 1018 for i in range(8000)]  # 1 KiB each, twice the disk
    acked = produce_values(b, "on-small", sent)
    print(f"\n{len(acked)} of {len(sent)} acknowledged before the disk filled")
    assert 1000 < len(acked) < len(sent), f"{len(acked)} acknowledged"
    assert broker.is_running()
    # The other log dir serves on.
    assert produce_values(b, "on-big", [b"b%d" % i for i in range(100)]) == [b"b%d" % i for i in range(100)]
    # Nothing acknowledged is lost; nothing is there twice; nothing was made up.
    got = read_values(b, "on-small")
    assert len(got) == len(set(got))
    assert set(acked) <= set(got) <= set(sent)
    assert got == sorted(got), "in the order sent"
    # Space returns: produce works again.
    remount(small_disk, "64m")
    more = [b"more-%d" % i for i in range(200)]
    assert produce_values(b, "on-small", more) == more
    before_restart = read_values(b, "on-small")
    assert before_restart[-200:] == more
    # A restart and a crash keep everything acknowledged.
    broker.stop()
    broker.start()
    assert read_values(b, "on-small") == before_restart
    broker.kill9()
    broker.start()
    assert read_values(broker.bootstrap, "on-small") == before_restart
    assert [r["value"] for r in cf_read(broker.bootstrap, "on-big", min_records=100)] == \
        [b"b%d" % i for i in range(100)]


COMPACT_FAST = {"cleanup.policy": "compact", "segment.bytes": "1024",
                "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "0"}


def produce_keyed(bootstrap: str, topic: str, rounds: int) -> None:
    producer = cf_producer(bootstrap, **{"linger.ms": 0})
    for i in range(rounds):
        for k in range(4):
            producer.produce(topic, key=b"k%d" % k, value=b"v%d-%d" % (k, i) + b"." * 100, partition=0)
        producer.flush(30)


def test_a_log_the_cleaner_cannot_read_is_skipped_while_others_are_cleaned(broker_factory):
    broker = broker_factory(overrides={"log.cleaner.backoff.ms": "100"})
    b = broker.bootstrap
    # The broken log starts as delete-policy so the cleaner leaves it alone until it is broken.
    create_topic(b, "broken", config={"cleanup.policy": "delete", "segment.bytes": "1024"})
    produce_keyed(b, "broken", 20)
    first = sorted(broker.partition_dir("broken", 0).glob("*.log"))[0]
    data = bytearray(first.read_bytes())
    # The first record's length varint becomes an overlong varint: unreadable.
    data[61:66] = b"\xff\xff\xff\xff\xff"
    first.write_bytes(bytes(data))
    from kclients import cf_admin
    from confluent_kafka.admin import ConfigResource
    admin = cf_admin(b)
    resource = ConfigResource(ConfigResource.Type.TOPIC, "broken", set_config=COMPACT_FAST)
    for fut in admin.alter_configs([resource]).values():
        fut.result(timeout=30)
    create_topic(b, "healthy", config=COMPACT_FAST)
    produce_keyed(b, "healthy", 20)
    wait_until(lambda: "marked uncleanable" in broker.stderr_tail(400), 30,
               "the cleaner to report the broken log")
    wait_until(lambda: cleaner_checkpoint(broker.data_dir).get(("healthy", 0), -1) > 0, 30,
               "the healthy log to be cleaned")
    # Later writes to the healthy log are cleaned too: the cleaner did not stop.
    cleaned = cleaner_checkpoint(broker.data_dir)[("healthy", 0)]
    produce_keyed(b, "healthy", 20)
    wait_until(lambda: cleaner_checkpoint(broker.data_dir).get(("healthy", 0), -1) > cleaned, 30,
               "the healthy log to be cleaned again")
    assert ("broken", 0) not in cleaner_checkpoint(broker.data_dir)
