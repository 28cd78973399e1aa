#!/usr/bin/env python3
"""Consumer-group benchmarks for Rivulet (not a test: it prints figures).

  .venv/bin/python bench/groups/bench_groups.py [--bin target/release/rivulet] [what ...]

what (default: all):
  rebalance     rebalance latency of a 3-member group, measured on the wire: from the
                moment the last member's JoinGroup is sent until all three members hold
                their SyncGroup answer (the coordinator's part: join completion, the
                leader's assignment, the sync fan-out). --runs N (default 300).
  rebalance-cf  the same seen by librdkafka (confluent-kafka): a third consumer subscribes
                to a Stable group of two; time until all three have their assignment.
                Includes the client's own heartbeat round (heartbeat.interval.ms=100).
  commits       produce throughput with and without 1,000 groups committing once per
                second each (every group is a real member: JoinGroup, SyncGroup,
                heartbeats every 3 s, OffsetCommit of 4 partitions with its generation),
                one continuous kcat producer, measured from the high watermarks over
                alternating windows (baseline, with commits) x --rounds, then baseline,
                --phase-s seconds each; reports records/s per window, the ratio of the
                means, commit round trips, broker CPU; and the load alone (no producer).

The broker is started here (fresh data dir, group.initial.rebalance.delay.ms=0) from --bin,
copied first so a concurrent rebuild cannot swap it mid-run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "interop"))

from kafka.protocol.consumer.group import (HeartbeatRequest, JoinGroupRequest, OffsetCommitRequest,  # noqa: E402
                                           SyncGroupRequest)

from rivulet_harness import Broker  # noqa: E402
from test_groups_support import Raw, consumer_assignment, consumer_subscription, create_topic  # noqa: E402

NONE = 0


def _str(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def summary_ms(values) -> str:
    ms = [v * 1000 for v in values]
    return (f"n={len(ms)} p50={pct(ms, 50):.2f} ms p90={pct(ms, 90):.2f} ms p99={pct(ms, 99):.2f} ms "
            f"max={max(ms):.2f} ms mean={statistics.mean(ms):.2f} ms")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------- rebalance

def bench_rebalance(bootstrap: str, runs: int) -> list:
    """Three raw members; each run every member rejoins with new metadata (so the first join
    starts a rebalance and the others join it), the leader assigns, all sync."""
    group = "bench-rebalance"
    conns = [Raw(bootstrap, client_id=f"m{i}") for i in range(3)]
    ids = [""] * 3

    def send_join(i, run):
        conns[i].send(JoinGroupRequest, 5, group_id=group, session_timeout_ms=30000, rebalance_timeout_ms=30000,
                      member_id=ids[i], group_instance_id=None, protocol_type="consumer",
                      protocols=[{"name": "range", "metadata": consumer_subscription(["t"], str(run).encode())}])

    for i in range(3):  # member ids
        send_join(i, -1)
        r = conns[i].recv()
        ids[i] = r.member_id
    times = []
    for run in range(runs + 1):
        order = [run % 3, (run + 1) % 3, (run + 2) % 3]
        for i in order[:2]:
            send_join(i, run)
        time.sleep(0.005)  # the first two are waiting in the join phase
        t0 = time.perf_counter()
        send_join(order[2], run)
        answers = [conns[i].recv() for i in range(3)]
        assert all(a.error_code == NONE for a in answers), answers
        gen = answers[0].generation_id
        leader = next(i for i in range(3) if answers[i].leader == ids[i])
        for i in range(3):
            if i != leader:
                conns[i].send(SyncGroupRequest, 3, group_id=group, generation_id=gen, member_id=ids[i],
                              group_instance_id=None, assignments=[])
        conns[leader].send(SyncGroupRequest, 3, group_id=group, generation_id=gen, member_id=ids[leader],
                           group_instance_id=None, assignments=[
                               {"member_id": ids[i], "assignment": consumer_assignment({"t": [i * 2, i * 2 + 1]})}
                               for i in range(3)])
        syncs = [conns[i].recv() for i in range(3)]
        t1 = time.perf_counter()
        assert all(s.error_code == NONE for s in syncs), syncs
        if run > 0:  # the first run also warms up
            times.append(t1 - t0)
    for c in conns:
        c.close()
    return times


def bench_rebalance_cf(bootstrap: str, runs: int) -> list:
    from confluent_kafka import Consumer
    create_topic(bootstrap, "bench-cf-rebalance", 6)
    times = []
    for run in range(runs):
        group = f"bench-cf-{run}"
        assigned = {}
        consumers = []

        def make(name):
            def on_assign(c, tps):
                assigned[name] = (time.perf_counter(), len(tps))
            c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "broker.address.family": "v4",
                          "heartbeat.interval.ms": 100, "session.timeout.ms": 6000,
                          "enable.auto.commit": False})
            c.subscribe(["bench-cf-rebalance"], on_assign=on_assign)
            consumers.append((name, c))
            return c

        make("a")
        make("b")
        deadline = time.monotonic() + 20
        while not (len(assigned) == 2 and sum(n for _, n in assigned.values()) == 6):
            for _, c in consumers:
                c.poll(0.01)
            assert time.monotonic() < deadline
        time.sleep(0.3)
        for _, c in consumers:
            c.poll(0)
        assigned.clear()
        t0 = time.perf_counter()
        make("c")
        while not (len(assigned) == 3 and sum(n for _, n in assigned.values()) == 6):
            for _, c in consumers:
                c.poll(0.005)
            assert time.monotonic() < deadline + 20
        times.append(max(t for t, _ in assigned.values()) - t0)
        for _, c in consumers:
            c.close()
    return times


# ---------------------------------------------------------------------------- commits

class Producer:
    """kcat -P fed by `yes` (100-byte records, linger.ms=5, acks=all) producing flat out for the
    whole benchmark; throughput is read from the topic's high watermarks, so the windows with
    and without the commit load are measured on one continuous stream."""

    def __init__(self, bootstrap: str, topic: str, partitions: int):
        from confluent_kafka import Consumer
        self.topic, self.partitions = topic, partitions
        self.yes = subprocess.Popen(["yes", "x" * 99], stdout=subprocess.PIPE)
        self.kcat = subprocess.Popen(
            ["kcat", "-P", "-b", bootstrap, "-t", topic, "-X", "broker.address.family=v4", "-X", "linger.ms=5",
             "-X", "acks=all", "-X", "queue.buffering.max.messages=1000000", "-X", "batch.size=1000000"],
            stdin=self.yes.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.yes.stdout.close()
        self.watcher = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-watermarks",
                                 "broker.address.family": "v4"})

    def appended(self) -> int:
        from confluent_kafka import TopicPartition
        return sum(self.watcher.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10, cached=False)[1]
                   for p in range(self.partitions))

    def window(self, seconds: float) -> dict:
        """Records appended per second over `seconds` (and per 1 s sample)."""
        samples = []
        t0, n0 = time.monotonic(), self.appended()
        t, n = t0, n0
        while t - t0 < seconds:
            time.sleep(1.0)
            t1, n1 = time.monotonic(), self.appended()
            samples.append((n1 - n) / (t1 - t))
            t, n = t1, n1
        return {"rate": (n - n0) / (t - t0), "samples": samples, "seconds": t - t0}

    def stop(self):
        self.kcat.terminate()
        self.yes.terminate()
        self.kcat.wait(30)
        self.yes.wait(30)
        self.watcher.close()


class CommitLoad:
    """`groups` single-member groups spread over `threads` connections; once per second every
    group commits 4 partitions with its generation; heartbeats every 3 s."""

    def __init__(self, bootstrap: str, groups: int = 1000, threads: int = 4):
        self.bootstrap, self.groups, self.threads = bootstrap, groups, threads
        self.stop = threading.Event()
        self.latencies: list = []
        self.errors: list = []
        self.commits = 0
        self.members = {}  # group -> (member_id, generation)
        self.lock = threading.Lock()

    def join_all(self):
        """JoinGroup v3 (no MEMBER_ID_REQUIRED) + SyncGroup for every group, pipelined."""
        ids = [f"bench-load-{i}" for i in range(self.groups)]
        with Raw(self.bootstrap, client_id="bench-load") as raw:
            for chunk in range(0, len(ids), 100):
                part = ids[chunk:chunk + 100]
                for g in part:
                    raw.send(JoinGroupRequest, 3, group_id=g, session_timeout_ms=30000, rebalance_timeout_ms=30000,
                             member_id="", protocol_type="consumer",
                             protocols=[{"name": "range", "metadata": consumer_subscription(["load"])}])
                joined = [raw.recv() for _ in part]
                for g, r in zip(part, joined):
                    assert r.error_code == NONE, r
                    raw.send(SyncGroupRequest, 3, group_id=g, generation_id=r.generation_id, member_id=r.member_id,
                             group_instance_id=None, assignments=[
                                 {"member_id": r.member_id, "assignment": consumer_assignment({"load": [0, 1, 2, 3]})}])
                    self.members[g] = (r.member_id, r.generation_id)
                for _ in part:
                    assert raw.recv().error_code == NONE

    def worker(self, mine: list):
        """Commits spread evenly over each second, one request in flight, so the latency is a
        request's round trip. Requests are hand-encoded (OffsetCommit v7, Heartbeat v3) and
        answers only checked for errors, so the generator costs a few percent of a core
        instead of competing with the producer and the broker for the two CPUs."""
        sock = socket.create_connection(tuple(self.bootstrap.rsplit(":", 1)[0:1]) + (int(self.bootstrap.rsplit(":", 1)[1]),))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile("rb")
        offset = 0
        slot = 1.0 / len(mine)
        start = time.monotonic()
        cid = 0

        def call(api_key: int, version: int, body: bytes) -> bytes:
            nonlocal cid
            cid += 1
            header = struct.pack(">hhi", api_key, version, cid) + _str("bench-load")
            sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
            size = struct.unpack(">i", reader.read(4))[0]
            data = reader.read(size)
            assert struct.unpack_from(">i", data)[0] == cid
            return data[4:]

        try:
            while not self.stop.is_set():
                offset += 1
                for k, g in enumerate(mine):
                    due = start + (offset - 1) + k * slot
                    delay = due - time.monotonic()
                    if delay > 0 and self.stop.wait(delay):
                        return
                    member, gen = self.members[g]
                    t = time.perf_counter()
                    body = (_str(g) + struct.pack(">i", gen) + _str(member) + struct.pack(">h", -1)
                            + struct.pack(">i", 1) + _str("load") + struct.pack(">i", 4)
                            + b"".join(struct.pack(">iqih", p, offset, -1, -1) for p in range(4)))
                    resp = call(8, 7, body)  # OffsetCommit v7: throttle, [name, [partition, error]]
                    lat = time.perf_counter() - t
                    name_len = struct.unpack_from(">h", resp, 8)[0]
                    base = 10 + name_len + 4
                    codes = {struct.unpack_from(">h", resp, base + 6 * i + 4)[0] for i in range(4)}
                    hb = None
                    if (offset + k) % 3 == 0:  # each member heartbeats every 3 s
                        resp = call(12, 3, _str(g) + struct.pack(">i", gen) + _str(member) + struct.pack(">h", -1))
                        hb = struct.unpack_from(">h", resp, 4)[0]
                    with self.lock:
                        self.latencies.append(lat)
                        self.commits += 1
                        if codes != {NONE} or hb not in (None, NONE):
                            self.errors.append((codes, hb))
        finally:
            sock.close()

    def start(self):
        names = sorted(self.members)
        self.pool = [threading.Thread(target=self.worker, args=(names[i::self.threads],), daemon=True)
                     for i in range(self.threads)]
        for t in self.pool:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.pool:
            t.join(30)


def bench_commits(broker: Broker, phase_s: float, groups: int, rounds: int) -> dict:
    bootstrap = broker.bootstrap
    from confluent_kafka.admin import NewTopic
    from kclients import cf_create_topics
    # bounded disk use: small segments, 1 GB retention, checked every 2 s (broker override)
    assert cf_create_topics(bootstrap, [NewTopic("bench-produce", 6, 1, config={
        "segment.bytes": str(64 << 20), "retention.bytes": str(1 << 30)})]) == {"bench-produce": 0}
    create_topic(bootstrap, "load", 4)
    load = CommitLoad(bootstrap, groups=groups)
    t = time.perf_counter()
    load.join_all()
    join_s = time.perf_counter() - t
    load_only_members = dict(load.members)
    # what the load alone costs the broker (no producer)
    cpu0, wall0 = cpu_seconds(broker.pid), time.monotonic()
    load.start()
    time.sleep(10)
    load.finish()
    load_only = {"broker_cpu_percent": 100 * (cpu_seconds(broker.pid) - cpu0) / (time.monotonic() - wall0),
                 "commits_per_s": load.commits / (time.monotonic() - wall0),
                 "commit_latency": summary_ms(load.latencies)}
    load = CommitLoad(bootstrap, groups=groups)
    load.members = load_members = dict(load_only_members)
    producer = Producer(bootstrap, "bench-produce", 6)
    windows = []
    try:
        time.sleep(3)  # ramp-up
        for phase in ["baseline", "with-commits"] * rounds + ["baseline"]:
            if phase == "with-commits":
                load = CommitLoad(bootstrap, groups=groups)
                load.members = load_members
                load.start()
                time.sleep(2)  # the load at its steady state
                commits_before, lat_before = load.commits, len(load.latencies)
            cpu0, wall0 = cpu_seconds(broker.pid), time.monotonic()
            res = producer.window(phase_s)
            cpu1, wall1 = cpu_seconds(broker.pid), time.monotonic()
            res["phase"] = phase
            res["broker_cpu_percent"] = 100 * (cpu1 - cpu0) / (wall1 - wall0)
            if phase == "with-commits":
                res["commits_per_s"] = (load.commits - commits_before) / (wall1 - wall0)
                res["latencies"] = load.latencies[lat_before:]
                load.finish()
                res["errors"] = load.errors[:5]
                time.sleep(1)
            windows.append(res)
    finally:
        producer.stop()
    results = {"windows": windows, "load_only": load_only}
    results["join_groups_s"] = join_s
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", nargs="*", default=["rebalance", "rebalance-cf", "commits"])
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "rivulet"))
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--cf-runs", type=int, default=30)
    ap.add_argument("--phase-s", type=float, default=10.0)
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3, help="baseline/with-commits window pairs")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rivulet-groups-bench-"))
    binary = work / "rivulet"
    shutil.copy2(args.bin, binary)
    os.environ["RIVULET_BIN"] = str(binary)
    broker = Broker(work / "broker", overrides={"group.initial.rebalance.delay.ms": 0,
                                                "log.retention.check.interval.ms": 2000})
    broker.start()
    try:
        print(f"broker: {args.bin} (copied to {binary}); {os.cpu_count()} CPUs; "
              f"load average {os.getloadavg()[0]:.2f}")
        if "rebalance" in args.what:
            times = bench_rebalance(broker.bootstrap, args.runs)
            print(f"rebalance, 3 members, last JoinGroup sent -> all 3 SyncGroup answers: {summary_ms(times)}")
        if "rebalance-cf" in args.what:
            times = bench_rebalance_cf(broker.bootstrap, args.cf_runs)
            print(f"rebalance, librdkafka: 3rd consumer subscribes -> all 3 assigned: {summary_ms(times)}")
        if "commits" in args.what:
            r = bench_commits(broker, args.phase_s, args.groups, args.rounds)
            lo = r["load_only"]
            print(f"{args.groups} groups joined+synced in {r['join_groups_s']:.2f} s")
            print(f"load alone: {lo['commits_per_s']:.0f} OffsetCommit/s (4 partitions each) + heartbeats, "
                  f"broker CPU {lo['broker_cpu_percent']:.1f}% of one core; commit round trip {lo['commit_latency']}")
            print(f"producer: kcat -P, 100-byte records, acks=all, 6 partitions; {args.phase_s:.0f} s windows")
            for w in r["windows"]:
                extra = ""
                if w["phase"] == "with-commits":
                    extra = f"; {w['commits_per_s']:.0f} OffsetCommit/s, round trip {summary_ms(w['latencies'])}"
                    if w["errors"]:
                        extra += f"; errors {w['errors']}"
                print(f"  {w['phase']:13s} {w['rate']:9.0f} records/s (1 s samples {min(w['samples']):.0f}.."
                      f"{max(w['samples']):.0f}), broker CPU {w['broker_cpu_percent']:.0f}%{extra}")
            base = [w["rate"] for w in r["windows"] if w["phase"] == "baseline"]
            load = [w["rate"] for w in r["windows"] if w["phase"] == "with-commits"]
            print(f"  mean baseline {statistics.mean(base):.0f}, mean with commits {statistics.mean(load):.0f}: "
                  f"ratio {statistics.mean(load) / statistics.mean(base):.3f}")
    finally:
        broker.stop()
        broker.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
