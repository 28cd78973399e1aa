#!/usr/bin/env python3
"""Idempotence and transaction benchmarks for Rivulet (not a test: it prints figures).

  .venv/bin/python bench/transactions/bench_transactions.py [--bin target/release/rivulet] [what ...]

what (default: all):
  idempotence  produce throughput with and without `enable.idempotence`, same workload:
               kcat -P (librdkafka) sending --records records of --size bytes from a file to
               a fresh 6-partition topic, acks=all, max.in.flight=5, linger.ms=5 in both
               (idempotence requires acks=all and at most 5 in flight, so the plain run uses
               the same; --linger-ms changes both); runs alternate plain / idempotent --runs
               times each; reports records/s per run, the medians and their ratio, and the
               broker's CPU time per record (steadier than throughput on a shared machine).
  commit       latency of transactions of --txn-records records (100 bytes, spread over 3
               partitions) with confluent-kafka: begin, produce, commit_transaction();
               --txns transactions after 20 warm-up ones. Reports the commit_transaction()
               call (flush of the records + EndTxn: markers written to every partition) and
               the whole transaction, p50/p90/p99/max.

The broker is started here (fresh data dir, default settings) from --bin, copied first so a
concurrent rebuild cannot swap it mid-run.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "interop"))

from rivulet_harness import Broker  # noqa: E402
from test_transactions_support import create_topic, hwm  # noqa: E402


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


# ---------------------------------------------------------------------------- idempotence

def kcat_run(bootstrap: str, topic: str, data: Path, idempotent: bool, linger_ms: int) -> float:
    args = ["kcat", "-P", "-b", bootstrap, "-t", topic, "-X", "broker.address.family=v4",
            "-X", "acks=all", "-X", f"linger.ms={linger_ms}", "-X", "max.in.flight.requests.per.connection=5",
            "-X", f"enable.idempotence={'true' if idempotent else 'false'}",
            "-X", "queue.buffering.max.messages=1000000", "-X", "queue.buffering.max.kbytes=1048576"]
    with open(data, "rb") as f:
        t0 = time.perf_counter()
        subprocess.run(args, stdin=f, check=True, timeout=600)
        return time.perf_counter() - t0


def producers_on(bootstrap: str, topic: str) -> int:
    """How many producer ids partition 0 of `topic` knows (DescribeProducers)."""
    from kafka import TopicPartition
    from test_transactions_support import kp_admin
    admin = kp_admin(bootstrap)
    try:
        tp = TopicPartition(topic, 0)
        return len(admin.describe_producers([tp])[tp].active_producers)
    finally:
        admin.close()


def bench_idempotence(broker: Broker, records: int, size: int, runs: int, linger_ms: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="rivulet-bench-idem-"))
    data = work / "records.txt"
    line = b"x" * (size - 1)
    with open(data, "wb") as f:
        for i in range(records):
            tag = b"%09d" % i
            f.write(tag + line[len(tag):] + b"\n")
    results = {False: [], True: []}
    cpu = {False: [], True: []}
    try:
        for run in range(runs):
            for idempotent in (False, True) if run % 2 == 0 else (True, False):
                topic = f"idem-{int(idempotent)}-{run}"
                create_topic(broker.bootstrap, topic, 6)
                c0 = cpu_seconds(broker.pid)
                elapsed = kcat_run(broker.bootstrap, topic, data, idempotent, linger_ms)
                c1 = cpu_seconds(broker.pid)
                total = sum(hwm(broker.bootstrap, topic, p) for p in range(6))
                assert total == records, f"{topic}: {total} records for {records} sent"
                assert producers_on(broker.bootstrap, topic) == (1 if idempotent else 0), "idempotence not in use"
                rate = records / elapsed
                results[idempotent].append(rate)
                cpu[idempotent].append((c1 - c0) / records * 1e6)
                print(f"  run {run} {'idempotent' if idempotent else 'plain     '}: {rate:>10,.0f} records/s "
                      f"({elapsed:.2f} s, broker CPU {(c1 - c0) / records * 1e6:.2f} us/record)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    plain, idem = statistics.median(results[False]), statistics.median(results[True])
    print(f"idempotence: {records:,} records of {size} B, 6 partitions, acks=all, linger.ms={linger_ms}, "
          f"max.in.flight=5")
    print(f"  plain      median {plain:>10,.0f} records/s  ({plain * size / 1e6:.1f} MB/s), "
          f"broker CPU {statistics.median(cpu[False]):.2f} us/record")
    print(f"  idempotent median {idem:>10,.0f} records/s  ({idem * size / 1e6:.1f} MB/s), "
          f"broker CPU {statistics.median(cpu[True]):.2f} us/record")
    print(f"  ratio idempotent/plain = {idem / plain:.3f}  (cost {100 * (1 - idem / plain):+.1f}%)", flush=True)


# ---------------------------------------------------------------------------- commit latency

def bench_commit(broker: Broker, txns: int, per_txn: int) -> None:
    from confluent_kafka import Producer
    from kclients import cf_conf
    topic = "txn-latency"
    create_topic(broker.bootstrap, topic, 3)
    producer = Producer(cf_conf(broker.bootstrap, {"transactional.id": "bench-txn", "linger.ms": 1}))
    producer.init_transactions(30)
    value = b"v" * 100
    commits, whole = [], []
    c0 = None
    for i in range(txns + 20):
        if i == 20:
            c0 = cpu_seconds(broker.pid)
        t0 = time.perf_counter()
        producer.begin_transaction()
        for j in range(per_txn):
            producer.produce(topic, value=value, partition=j % 3)
        t1 = time.perf_counter()
        producer.commit_transaction(30)
        t2 = time.perf_counter()
        if i >= 20:
            commits.append(t2 - t1)
            whole.append(t2 - t0)
    c1 = cpu_seconds(broker.pid)
    print(f"commit: {txns} transactions of {per_txn} records (100 B, 3 partitions), confluent-kafka, linger.ms=1")
    print(f"  commit_transaction() {summary_ms(commits)}")
    print(f"  whole transaction    {summary_ms(whole)}")
    print(f"  broker CPU {(c1 - c0) / txns * 1000:.2f} ms/transaction", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", nargs="*", default=["idempotence", "commit"])
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "rivulet"))
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--linger-ms", type=int, default=5)
    ap.add_argument("--txns", type=int, default=500)
    ap.add_argument("--txn-records", type=int, default=100)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rivulet-bench-txn-"))
    binary = work / "rivulet"
    shutil.copy(args.bin, binary)
    os.environ["RIVULET_BIN"] = str(binary)
    broker = Broker(work / "broker", overrides={}, name="bench")
    env_load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"== {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
          f"load average {' '.join(env_load)}, broker {args.bin}", flush=True)
    try:
        broker.start()
        for what in args.what:
            {"idempotence": lambda: bench_idempotence(broker, args.records, args.size, args.runs, args.linger_ms),
             "commit": lambda: bench_commit(broker, args.txns, args.txn_records)}[what]()
    finally:
        broker.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
