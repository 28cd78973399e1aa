"""Drives an old kafka-python release (the oldest on PyPI that still imports on this
Python: 1.4.3, from June 2018; 1.4.2 and older use `async` as a name) against a
broker, from its own venv (`.venv-old-clients`), and prints one JSON object for
tests/interop/test_old_clients.py. 1.4.3 has no admin client, so the admin calls go
through its protocol classes (CreateTopics, DescribeConfigs, DeleteTopics at the
version given) on its network client, as its own admin client later did.

Usage: python kafka_python_old.py BOOTSTRAP TOPIC API_VERSION CODEC ADMIN_VERSION
"""
import json
import sys
import threading
import time

import kafka
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.client_async import KafkaClient
from kafka.protocol import admin as admin_api

RECORDS = 20


def call(client, request, timeout=30.0):
    deadline = time.time() + timeout
    node = client.least_loaded_node()
    while not client.ready(node):
        client.poll(timeout_ms=100)
        if time.time() > deadline:
            raise SystemExit("broker not ready")
    future = client.send(node, request)
    client.poll(future=future, timeout_ms=int(timeout * 1000))
    if not future.is_done or future.failed():
        raise SystemExit("request failed: %r" % (future.exception,))
    return future.value


def main():
    bootstrap, topic, api, codec, admin_version = sys.argv[1:6]
    api_version = tuple(int(x) for x in api.split("."))
    admin_v = int(admin_version)
    out = {"version": kafka.__version__}
    client = KafkaClient(bootstrap_servers=bootstrap, api_version=api_version)
    create = admin_api.CreateTopicsRequest[admin_v](
        create_topic_requests=[(topic, 2, 1, [], []), (topic + "-doomed", 1, 1, [], [])],
        timeout=10000, **({"validate_only": False} if admin_v >= 1 else {}))
    out["created"] = sorted([t[0], t[1]] for t in call(client, create).topic_error_codes)

    producer = KafkaProducer(bootstrap_servers=bootstrap, api_version=api_version,
                             compression_type=codec, acks="all")
    out["produced"] = []
    for i in range(RECORDS):
        meta = producer.send(topic, key=b"k%d" % i, value=b"v%d" % i, partition=i % 2).get(timeout=30)
        out["produced"].append([meta.partition, meta.offset])
    producer.close()

    # One thread per member: a member's poll blocks in a rebalance until the
    # other member rejoins, so one thread cannot drive both.
    seen = {}
    assigned = [set(), set()]
    lock = threading.Lock()
    stop = threading.Event()
    committed = {}

    def member(i):
        c = KafkaConsumer(topic, bootstrap_servers=bootstrap, api_version=api_version,
                          group_id=topic + "-group", auto_offset_reset="earliest",
                          enable_auto_commit=False, session_timeout_ms=10000,
                          heartbeat_interval_ms=500)
        while not stop.is_set():
            for records in c.poll(timeout_ms=200).values():
                for r in records:
                    with lock:
                        seen[(r.partition, r.offset)] = (r.key.decode(), r.value.decode())
            with lock:
                assigned[i] = {tp.partition for tp in c.assignment()}
            c.commit()
        c.close()

    threads = [threading.Thread(target=member, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    deadline = time.time() + 60
    while True:
        with lock:
            done = len(seen) >= RECORDS and all(len(a) == 1 for a in assigned)
        if done or time.time() > deadline:
            break
        time.sleep(0.05)
    # Each member's loop ends with a commit of what it read, so once both have
    # stopped, the group's offsets are read back by a consumer of their own.
    stop.set()
    for t in threads:
        t.join(30)
    if not done:
        raise SystemExit("timed out: %d records, assignments %r" % (len(seen), assigned))
    if any(t.is_alive() for t in threads):
        raise SystemExit("a member did not stop within 30 s")
    reader = KafkaConsumer(bootstrap_servers=bootstrap, api_version=api_version,
                           group_id=topic + "-group", enable_auto_commit=False)
    for p in (0, 1):
        committed[str(p)] = reader.committed(TopicPartition(topic, p))
    reader.close()
    out["members"] = sorted(len(a) for a in assigned)
    out["committed"] = committed
    out["consumed"] = [{"partition": p, "offset": o, "key": k, "value": v}
                       for (p, o), (k, v) in sorted(seen.items())]

    describe = admin_api.DescribeConfigsRequest[0](resources=[(2, topic, ["retention.ms"])])
    resource = call(client, describe).resources[0]
    out["retention_ms"] = [[entry[0], entry[1]] for entry in resource[4]]
    delete = admin_api.DeleteTopicsRequest[0](topics=[topic + "-doomed"], timeout=10000)
    out["deleted"] = [list(t) for t in call(client, delete).topic_error_codes]
    client.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
