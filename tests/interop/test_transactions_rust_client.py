"""Our own client (`crates/client`, rivulet-client): its idempotent producer retries lost
responses without writing twice, its transactional producer's commits and aborts are seen right
by confluent-kafka's read_committed and read_uncommitted readers, and its admin client (the
`rivulet transactions` operator commands) lists and describes transactions.

Idempotent produce and the admin commands go through the `rivulet` binary's client commands
(`rivulet produce`, `rivulet transactions`). The CLI has no transactional produce, so
`bench/transactions/client-driver` wraps the crate's Producer for that; it is built here on
first use into the repository's target directory (cargo), or taken from RIVULET_CLIENT_DRIVER.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from rivulet_harness import REPO_ROOT, broker_binary, run_tool
from test_transactions_support import TXN_BROKER, cf_send_all, cf_txn_producer, create_topic, read_topic, values

DRIVER_DIR = REPO_ROOT / "bench" / "transactions" / "client-driver"


@pytest.fixture(scope="module")
def driver() -> Path:
    env = os.environ.get("RIVULET_CLIENT_DRIVER")
    if env:
        return Path(env)
    target = REPO_ROOT / "target"
    proc = subprocess.run(["cargo", "build", "-j", "2", "--quiet"], cwd=DRIVER_DIR,
                          env=dict(os.environ, CARGO_TARGET_DIR=str(target)),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=1200)
    assert proc.returncode == 0, f"building the rivulet-client driver failed:\n{proc.stderr.decode()[-4000:]}"
    return target / "debug" / "rivulet-client-txn-driver"


def run_driver(driver: Path, args: list, timeout: float = 120.0) -> list[str]:
    proc = run_tool([str(driver), *map(str, args)], timeout=timeout, check=False)
    lines = proc.stdout.decode().splitlines()
    assert proc.returncode == 0, f"driver failed: {lines[-3:]}\n{proc.stderr.decode()[-3000:]}"
    return lines


def cli(args: list, stdin: bytes = b"", timeout: float = 120.0, stream: str = "stdout") -> str:
    proc = run_tool([str(broker_binary()), *map(str, args)], input=stdin, timeout=timeout, check=False)
    assert proc.returncode == 0, f"rivulet {args[0]} failed: {proc.stdout.decode()[-2000:]}\n{proc.stderr.decode()[-3000:]}"
    return getattr(proc, stream).decode()


def test_rust_client_idempotent_retries_write_once(broker_factory, topic):
    b = broker_factory(overrides={"rivulet.testing.drop.produce.response.every": 5})
    create_topic(b.bootstrap, topic, 3)
    n = 300
    stdin = "".join(json.dumps({"value": f"rs-{i}", "partition": i % 3}) + "\n" for i in range(n)).encode()
    out = cli(["produce", "-b", b.bootstrap, "--json", "--verbose", "-X", "enable.idempotence=true",
               "-X", "linger.ms=0", "-X", "batch.size=100", "-X", "request.timeout.ms=1000",
               "-X", "retry.backoff.ms=50", topic], stdin, stream="stderr")
    reported = {}
    lines = [line for line in out.split() if line.startswith(f"{topic}-")]
    for i, line in enumerate(lines):  # --verbose: "<topic>-<partition>@<offset>" on stderr, in input order
        where, offset = line.rsplit("@", 1)
        reported[f"rs-{i}".encode()] = (int(where.rsplit("-", 1)[1]), int(offset))
    assert len(reported) == n
    assert b.stderr_path.read_text(errors="replace").count("test hook: dropping") >= 3
    got = read_topic(b.bootstrap, topic, 3, "read_uncommitted")
    for p in range(3):
        want = [f"rs-{i}".encode() for i in range(p, n, 3)]
        assert [r["value"] for r in got[p]] == want, f"partition {p}"
        assert all(reported[r["value"]] == (p, r["offset"]) for r in got[p])


def test_rust_client_admin_lists_and_describes_transactions(broker_factory, topic):
    b = broker_factory(overrides=TXN_BROKER)
    create_topic(b.bootstrap, topic, 2)
    tx = f"{topic}-tx"
    producer = cf_txn_producer(b.bootstrap, tx)
    producer.init_transactions(30)
    producer.begin_transaction()
    cf_send_all(producer, [(topic, 0, b"a"), (topic, 1, b"b")])
    listed = [line.split() for line in cli(["transactions", "list", "-b", b.bootstrap]).splitlines()[1:]]
    assert [(row[0], row[-1]) for row in listed if row and row[0] == tx] == [(tx, "Ongoing")]
    described = cli(["transactions", "describe", "-b", b.bootstrap, "--transactional-id", tx])
    assert "Ongoing" in described and f"{topic}-0" in described and f"{topic}-1" in described, described
    producer.commit_transaction(30)
    assert "CompleteCommit" in cli(["transactions", "describe", "-b", b.bootstrap, "--transactional-id", tx])


def test_rust_client_commit_and_abort(driver, broker_factory, topic):
    b = broker_factory(overrides=TXN_BROKER)
    create_topic(b.bootstrap, topic, 2)
    spec = ["c3", "a2", "c1", "a1"]
    run_driver(driver, ["txn", b.bootstrap, f"{topic}-tx", topic, 2, ",".join(spec)])

    def expected(kinds):
        return {p: [f"rs-{t}-{p}-{i}".encode() for t, s in enumerate(spec) if s[0] in kinds for i in range(int(s[1:]))]
                for p in range(2)}

    assert values(read_topic(b.bootstrap, topic, 2, "read_committed")) == expected("c")
    assert values(read_topic(b.bootstrap, topic, 2, "read_uncommitted")) == expected("ca")
