"""Our own client (`crates/client`, rivulet-client): its idempotent producer retries lost
responses without writing twice, and its transactional producer's commits and aborts are seen
right by confluent-kafka's read_committed and read_uncommitted readers.

The client is a library; `bench/transactions/client-driver` is a small program around it. It
is built here on first use into the repository's target directory (cargo), or taken from
RIVULET_CLIENT_DRIVER.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from rivulet_harness import REPO_ROOT, run_tool
from test_transactions_support import TXN_BROKER, create_topic, read_topic, values

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


def test_rust_client_idempotent_retries_write_once(driver, broker_factory, topic):
    b = broker_factory(overrides={"rivulet.testing.drop.produce.response.every": 5})
    create_topic(b.bootstrap, topic, 3)
    lines = run_driver(driver, ["idempotent", b.bootstrap, topic, 3, 300, "request.timeout.ms=1500",
                                "retry.backoff.ms=50", "linger.ms=0"])
    reported = {}
    for line in lines:
        value, partition, offset = line.split()
        reported[value.encode()] = (int(partition), int(offset))
    assert len(reported) == 300
    assert b.stderr_path.read_text(errors="replace").count("test hook: dropping") >= 3
    got = read_topic(b.bootstrap, topic, 3, "read_uncommitted")
    for p in range(3):
        want = [f"rs-{i}".encode() for i in range(p, 300, 3)]
        assert [r["value"] for r in got[p]] == want, f"partition {p}"
        assert all(reported[r["value"]] == (p, r["offset"]) for r in got[p])


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
