#!/usr/bin/env python3
"""The log cleaner under load, end to end through a running broker.

1. Starts the broker (a release build; `--bin`) and fills `--rounds` topics `keyed<r>`
   with `--gib` GiB of keyed records each (`--keys` distinct keys, `--value-bytes`
   values) while they are still `cleanup.policy=delete`, so nothing is cleaned yet.
2. Each round: produces to topic `other` (`--partitions` partitions) as fast as one
   confluent-kafka producer process can for `--seconds` (the baseline), then produces
   again while `keyed<r>` is switched to `cleanup.policy=compact` and cleaned, counting
   the bytes acknowledged within the cleaning's window (from the broker's
   "cleaner pass done" line, which also gives the cleaner's rate).
3. Prints one line per round and the medians. Pairs are adjacent in time, so a change
   in the (shared) machine's load hits both halves of a pair alike.

Usage: .venv/bin/python bench/cleaner/produce_while_cleaning.py --bin target/release/rivulet
       [--gib 1] [--keys 100000] [--value-bytes 1000] [--seconds 10] [--partitions 3]
       [--rounds 3] [--override key=value ...] [--dir /tmp] [--keep]
"""
from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing as mp
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def produce_for(bootstrap: str, topic: str, seconds: float, value_bytes: int, stop_file: str, out: mp.Queue) -> None:
    """One producer process: keyless records spread over the partitions, acks=1, for
    `seconds` or until `stop_file` exists; reports (acked bytes, elapsed seconds, samples)
    where samples are (wall-clock time, acked bytes so far) every ~100 ms."""
    acked = [0]

    def on_delivery(err, msg):
        if err is None:
            acked[0] += len(msg.value())

    p = Producer({"bootstrap.servers": bootstrap, "acks": 1, "linger.ms": 5, "batch.size": 1000000,
                  "queue.buffering.max.kbytes": 262144, "enable.idempotence": False,
                  "broker.address.family": "v4", "sticky.partitioning.linger.ms": 0})
    value = os.urandom(value_bytes // 2).hex().encode()[:value_bytes]
    started = time.monotonic()
    deadline = started + seconds
    samples = []
    next_sample = 0.0
    n = 0
    while True:
        n += 1
        if n % 200 == 0:
            now = time.monotonic()
            if now >= next_sample:
                samples.append((time.time(), acked[0]))
                next_sample = now + 0.1
            if now >= deadline or os.path.exists(stop_file):
                break
        try:
            p.produce(topic, value, on_delivery=on_delivery)
        except BufferError:
            p.poll(0.01)
        p.poll(0)
    p.flush(60)
    samples.append((time.time(), acked[0]))
    out.put((acked[0], time.monotonic() - started, samples, time.process_time()))


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_producer(bootstrap, topic, seconds, value_bytes, stop_file):
    q = mp.Queue()
    proc = mp.Process(target=produce_for, args=(bootstrap, topic, seconds, value_bytes, stop_file, q))
    proc.start()
    return proc, q


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--value-bytes", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3, help="baseline + cleaning pairs, each on its own keyed topic")
    ap.add_argument("--override", action="append", default=[])
    ap.add_argument("--dir", default=None)
    ap.add_argument("--keep", action="store_true", help="keep the work directory (broker log)")
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rivulet-cleaner-bench", dir=a.dir))
    binary = work / "rivulet"
    shutil.copy(a.bin, binary)
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    cmd = [str(binary), "serve", "--override", "node.id=1", "--override", f"listeners=PLAINTEXT://{bootstrap}",
           "--override", f"log.dirs={work / 'data'}", "--override", "log.cleaner.backoff.ms=200"]
    for o in a.override:
        cmd += ["--override", o]
    log_path = work / "broker.log"
    broker = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(log_path, "wb"),
                              env={**os.environ, "RUST_LOG": "info"}, start_new_session=True)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        topics = [NewTopic(f"keyed{r}", 1, 1, config={"cleanup.policy": "delete", "segment.bytes": str(128 << 20),
                                                       "retention.ms": "-1"}) for r in range(a.rounds)]
        topics.append(NewTopic("other", a.partitions, 1, config={"retention.ms": "-1"}))
        for f in admin.create_topics(topics).values():
            f.result()

        # 1. Fill one keyed topic per round.
        target = int(a.gib * (1 << 30))
        p = Producer({"bootstrap.servers": bootstrap, "acks": 1, "linger.ms": 20, "batch.size": 1000000,
                      "queue.buffering.max.kbytes": 262144, "enable.idempotence": False, "broker.address.family": "v4"})
        value = os.urandom(a.value_bytes // 2).hex().encode()[:a.value_bytes]
        for r in range(a.rounds):
            started = time.monotonic()
            sent = 0
            i = 0
            while sent < target:
                key = b"key-%010d" % ((i * 2654435761) % a.keys)
                try:
                    p.produce(f"keyed{r}", value, key)
                except BufferError:
                    p.poll(0.01)
                    continue
                sent += len(value) + len(key)
                i += 1
                if i % 1000 == 0:
                    p.poll(0)
            p.flush(120)
            size = sum(f.stat().st_size for f in (work / "data" / f"keyed{r}-0").glob("*.log"))
            print(f"filled keyed{r}-0: {i} records, {size / 1e6:.0f} MB on disk in {time.monotonic() - started:.1f} s", flush=True)
        del p

        rounds = []
        for r in range(a.rounds):
            # 2. Baseline produce rate, no cleaning.
            stop_file = work / f"stop{r}"
            broker_cpu = cpu_seconds(broker.pid)
            proc, q = run_producer(bootstrap, "other", a.seconds, a.value_bytes, str(stop_file))
            base_bytes, base_s, _, base_client_cpu = q.get()
            proc.join()
            base = base_bytes / 1e6 / base_s
            base_broker_cpu = (cpu_seconds(broker.pid) - broker_cpu) / base_s

            # 3. Produce while the cleaner compacts keyed<r>.
            mark = log_path.stat().st_size
            broker_cpu = cpu_seconds(broker.pid)
            proc, q = run_producer(bootstrap, "other", 3600, a.value_bytes, str(stop_file))
            time.sleep(1.0)  # the producer is up to speed before the cleaning starts
            res = ConfigResource(ResourceType.TOPIC, f"keyed{r}", incremental_configs=[
                ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET)])
            admin.incremental_alter_configs([res])[res].result()
            done = None
            deadline = time.monotonic() + 1800
            while done is None and time.monotonic() < deadline:
                time.sleep(0.2)
                with open(log_path, "rb") as f:
                    f.seek(mark)
                    for line in f.read().decode(errors="replace").splitlines():
                        if "cleaner pass done" in line and f"keyed{r}-0" in line:
                            done = line
            stop_file.touch()
            during_bytes, during_s, samples, during_client_cpu = q.get()
            proc.join()
            during_broker_cpu = (cpu_seconds(broker.pid) - broker_cpu) / during_s
            if done is None:
                print("the cleaner did not finish", file=sys.stderr)
                return 1
            fields = dict(re.findall(r'(\w+)="?([0-9.]+)"?', done))
            seconds = float(fields["seconds"])
            bytes_in = int(fields["bytes_in"])
            # The cleaning's window from the broker's log line (its UTC timestamp is the
            # end); the producer's acknowledged bytes within that window.
            stamp = done.split()[0].rstrip("Z")
            end = datetime.datetime.fromisoformat(stamp).replace(tzinfo=datetime.timezone.utc).timestamp()
            window = [(ts, b) for ts, b in samples if end - seconds <= ts <= end]
            if len(window) >= 2:
                during = (window[-1][1] - window[0][1]) / 1e6 / (window[-1][0] - window[0][0])
            else:
                during = during_bytes / 1e6 / during_s
            # 4. Baseline again, to take drift out (the machine is shared): the cleaning
            # window is compared with the mean of the windows either side of it.
            broker_cpu = cpu_seconds(broker.pid)
            proc, q = run_producer(bootstrap, "other", a.seconds, a.value_bytes, str(work / f"never{r}"))
            after_bytes, after_s, _, after_client_cpu = q.get()
            proc.join()
            after = after_bytes / 1e6 / after_s
            after_broker_cpu = (cpu_seconds(broker.pid) - broker_cpu) / after_s
            base_mean = (base + after) / 2
            row = {"round": r, "cleaned_mb": round(bytes_in / 1e6), "after_mb": round(int(fields["bytes_out"]) / 1e6),
                   "clean_s": seconds, "cleaner_mb_s": round(bytes_in / 1e6 / seconds, 1),
                   "produce_mb_s_before": round(base, 1), "produce_mb_s_cleaning": round(during, 1),
                   "produce_mb_s_after": round(after, 1),
                   "produce_change_pct": round((during - base_mean) / base_mean * 100, 1),
                   "noise_before_vs_after_pct": round((after - base) / base * 100, 1),
                   # CPU seconds per second: the broker's (cleaner included) and the producer's.
                   "broker_cpu": [round(base_broker_cpu, 2), round(during_broker_cpu, 2), round(after_broker_cpu, 2)],
                   "client_cpu": [round(base_client_cpu / base_s, 2), round(during_client_cpu / during_s, 2),
                                  round(after_client_cpu / after_s, 2)],
                   "load_avg_1m": os.getloadavg()[0]}
            print(json.dumps(row), flush=True)
            rounds.append(row)
        med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
        print(json.dumps({"median_cleaner_mb_s": med([x["cleaner_mb_s"] for x in rounds]),
                          "median_produce_change_pct": med([x["produce_change_pct"] for x in rounds])}))
        del admin
        return 0
    finally:
        broker.send_signal(signal.SIGTERM)
        try:
            broker.wait(60)
        except subprocess.TimeoutExpired:
            broker.kill()
        if a.keep:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
