"""Consumer groups under churn: members join, leave and die while records flow.

Two groups consume one topic at once (publish/subscribe): one of confluent-kafka and
kafka-python members (range: both speak the classic consumer protocol), one of kafkajs
members (kafkajs names its assignor "RoundRobinAssigner", so it cannot share a group with
the others). Members are added, closed and SIGKILLed on a fixed pseudo-random schedule while
a producer writes. Afterwards: no record lost in either group; a record processed twice only
if the member that processed it first had not committed it yet; never two members owning one
partition at the same time.
"""
from __future__ import annotations

import json
import random
import threading
import time

from confluent_kafka import Producer

from kclients import cf_conf
from test_groups_support import (FAST_GROUPS, SESSION_MS, all_partitions, check_exclusive_ownership,
                                 check_group_delivery, close_all, create_topic, gtopic, produce_values, spawn,
                                 wait_assignment, wait_committed, ends_of, wait_records)

__all__ = ["spawn", "gtopic"]  # fixtures
BROKER_OVERRIDES = dict(FAST_GROUPS)
P = 6
CHURN_S = 14.0
STEP_S = 1.0


class PacedProducer(threading.Thread):
    """Produces to every partition at about `rate` records/s until stopped; `written` holds
    the (topic, partition, offset) of every acknowledged record."""

    def __init__(self, bootstrap: str, topic: str, rate: float = 300.0):
        super().__init__(daemon=True)
        self.topic, self.rate = topic, rate
        self.producer = Producer(cf_conf(bootstrap, {"linger.ms": 5, "acks": "all", "enable.idempotence": False}))
        self.written: set = set()
        self.errors: list = []
        self.stop_event = threading.Event()

    def _cb(self, err, msg):
        if err is not None:
            self.errors.append(err)
        else:
            self.written.add((msg.topic(), msg.partition(), msg.offset()))

    def run(self):
        i = 0
        start = time.monotonic()
        while not self.stop_event.is_set():
            self.producer.produce(self.topic, value=f"churn-{i}".encode(), partition=i % P, on_delivery=self._cb)
            i += 1
            self.producer.poll(0)
            ahead = i / self.rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
        assert self.producer.flush(30) == 0

    def finish(self) -> set:
        self.stop_event.set()
        self.join(60)
        assert not self.errors, self.errors[:5]
        return set(self.written)


def test_members_joining_leaving_and_dying_while_records_flow(broker, spawn, gtopic, tmp_path):
    topic = gtopic
    create_topic(broker.bootstrap, topic, P)
    rng = random.Random(20241122)
    groups = {
        "mixed": {"group": f"mixed-{topic}", "kinds": ["cf", "kp"], "members": [], "all": []},
        "js": {"group": f"js-{topic}", "kinds": ["js"], "members": [], "all": []},
    }
    counter = iter(range(1000))

    def add(g):
        kind = rng.choice(g["kinds"])
        w = spawn(kind, broker.bootstrap, g["group"], [topic], f"{kind}-{next(counter)}", session_ms=SESSION_MS,
                  sleep_per_record_ms=2, batch=20, max_bytes=4096)
        g["members"].append(w)
        g["all"].append(w)

    for g in groups.values():
        for _ in range(3):
            add(g)
    for g in groups.values():
        wait_assignment(g["members"], all_partitions(topic, P), timeout=40)

    producer = PacedProducer(broker.bootstrap, topic)
    producer.start()
    actions = []
    deadline = time.monotonic() + CHURN_S
    while time.monotonic() < deadline:
        time.sleep(STEP_S)
        for name, g in groups.items():
            live = g["members"]
            choices = ["add"] * (len(live) < 5) + ["close", "kill"] * (len(live) > 2)
            action = rng.choice(choices)
            if action == "add":
                add(g)
            else:
                victim = live.pop(rng.randrange(len(live)))
                victim.kill() if action == "kill" else victim.close()
            actions.append((name, action))
    written = producer.finish()
    assert len(written) > 2000, len(written)

    for name, g in groups.items():
        # the survivors (and partitions of killed members, once expired) drain the topic
        wait_records(g["all"], written, timeout=SESSION_MS / 1000 + 40)
        wait_committed(g["all"], ends_of(written))
    # A barrier, not a pause: late deliveries show before each group's markers.
    markers = produce_values(broker.bootstrap, topic, P, 1, tag="marker")
    for g in groups.values():
        wait_records(g["all"], markers, timeout=SESSION_MS / 1000 + 40)
    report = {}
    for name, g in groups.items():
        with open(tmp_path / f"events-{name}.jsonl", "w") as f:  # for the post-mortem
            for w in g["all"]:
                for e in w.snapshot():
                    f.write(json.dumps(e) + "\n")
        dups = check_group_delivery(g["all"], written)
        zombies = check_exclusive_ownership(g["all"])
        report[name] = (len(g["all"]), dups, f"{len(zombies)} zombie overlaps")
        close_all(g["members"])
    kills = sum(1 for _, a in actions if a == "kill")
    assert kills >= 2 and any(a == "add" for _, a in actions), actions
    print(f"churn: {len(written)} records, actions {actions}, members/duplicates {report}")
