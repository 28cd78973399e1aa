"""pytest fixtures for the Rivulet interop suite.

Fixtures
  broker          module-scoped default broker (shared by the tests of one module; tests use
                  unique topic names from the `topic` fixture so they do not interfere).
  broker_factory  function-scoped factory: `broker_factory(overrides={...})` starts a fresh
                  broker with its own port + data dir; all are stopped (SIGTERM, exit code 0
                  asserted) at the end of the test.
  topic           a unique, valid topic name derived from the test name.

When a test fails, the stderr tail of every broker alive during it is attached to the report.
"""
from __future__ import annotations

import itertools
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rivulet_harness import LIVE_BROKERS, Broker, HarnessError, check_broker_binary  # noqa: E402

_counter = itertools.count()


@pytest.fixture(scope="session")
def rivulet_bin():
    """The broker binary; without it the whole session stops with one clear message."""
    message = None
    try:
        return check_broker_binary()
    except HarnessError as exc:
        message = str(exc)
    pytest.exit(message, returncode=1)


@pytest.fixture(scope="module")
def broker(rivulet_bin, tmp_path_factory, request):
    overrides = getattr(request.module, "BROKER_OVERRIDES", {})
    name = request.module.__name__.rsplit(".", 1)[-1]
    b = Broker(tmp_path_factory.mktemp(f"{name}-broker"), overrides=overrides, name=f"{name}-broker")
    try:
        b.start()
        yield b
    finally:
        b.close()


@pytest.fixture
def broker_factory(rivulet_bin, tmp_path):
    made: list[Broker] = []

    def make(overrides=None, start=True, name=None, properties=None) -> Broker:
        b = Broker(tmp_path / f"broker{len(made)}", overrides=overrides,
                   name=name or f"broker{len(made)}", properties=properties)
        made.append(b)
        if start:
            b.start()
        return b

    yield make
    errors = []
    for b in made:
        try:
            b.close()
        except Exception as exc:  # noqa: BLE001 - report all, fail once
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def topic(request) -> str:
    base = re.sub(r"[^a-zA-Z0-9._-]+", "_", request.node.name.removeprefix("test_"))
    return f"{base[:180]}-{next(_counter)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)  # for the `compat` fixture's teardown
    if report.failed:
        for b in list(LIVE_BROKERS):
            report.sections.append(
                (f"rivulet {b.name} stderr tail ({call.when}; {b.stderr_path})", b.stderr_tail()))


# ---------------------------------------------------------------- compatibility table
# Tests of client compatibility (test_old_clients.py) record, through the `compat`
# fixture, which client and version they ran at which protocol level and what it did.
# At the end of the session the rows are printed and written to
# target/interop-compat.md; `scripts/compat-table.py` puts that table in the README.

COMPAT_ROWS: list[dict] = []
COMPAT_FILE = Path(__file__).resolve().parents[2] / "target" / "interop-compat.md"


@pytest.fixture
def compat(request):
    """compat(client=..., version=..., level=..., calls=...): one row of the table,
    marked passed only if the test passes. Call it before the client runs, so that a
    test that fails still leaves its row, marked FAIL; it returns the row, for a
    version only the run learns."""
    rows = []

    def record(**row):
        row["test"] = request.node.nodeid.split("::")[-1]
        rows.append(row)
        return row

    yield record
    report = getattr(request.node, "rep_call", None)
    for row in rows:
        row["result"] = "pass" if report is not None and report.passed else "FAIL"
        COMPAT_ROWS.append(row)


def _compat_table() -> str:
    lines = ["| client | version | protocol level it ran at | exercised | result |",
             "|---|---|---|---|---|"]
    for row in sorted(COMPAT_ROWS, key=lambda r: (r["client"], r["version"], r["level"])):
        lines.append(f"| {row['client']} | {row['version']} | {row['level']} | {row['calls']} | {row['result']} |")
    return "\n".join(lines) + "\n"


def pytest_terminal_summary(terminalreporter):
    if not COMPAT_ROWS:
        return
    table = _compat_table()
    terminalreporter.write_sep("=", "client versions this run exercised")
    terminalreporter.write(table)
    try:
        COMPAT_FILE.parent.mkdir(parents=True, exist_ok=True)
        COMPAT_FILE.write_text(table)
        terminalreporter.write_line(f"(written to {COMPAT_FILE})")
    except OSError as exc:  # the table is a report, not a test
        terminalreporter.write_line(f"could not write {COMPAT_FILE}: {exc}")
