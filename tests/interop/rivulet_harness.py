"""Process harness for the Rivulet interop suite: the Broker class and tool runners.

The broker contract (see the brief for the binary):
    rivulet serve --override node.id=1 --override listeners=PLAINTEXT://127.0.0.1:<port>
                  --override log.dirs=<dir> [--override key=value ...]
It logs to stderr, is ready when the port accepts TCP connections, exits 0 on SIGTERM after
writing `<log.dirs>/.kafka_cleanshutdown`.
"""
from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterable, Optional

REPO_ROOT = Path(__file__).resolve().parents[2]
JS_DIR = REPO_ROOT / "tests" / "interop" / "js"

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
STDERR_TAIL_LINES = 80

# Every Broker that is currently running or was started and not yet closed by its fixture.
# conftest.py prints their stderr tails when a test fails.
LIVE_BROKERS: list["Broker"] = []


@atexit.register
def _kill_leftover_brokers() -> None:
    """Safety net (e.g. after Ctrl-C): never leave broker processes behind."""
    for b in list(LIVE_BROKERS):
        b._hard_kill()


class HarnessError(AssertionError):
    """A failure of the environment or of the broker process (not of a client)."""


def broker_binary() -> Path:
    env = os.environ.get("RIVULET_BIN")
    path = Path(env) if env else REPO_ROOT / "target" / "debug" / "rivulet"
    return path


def check_broker_binary() -> Path:
    path = broker_binary()
    if not path.is_file() or not os.access(path, os.X_OK):
        how = "RIVULET_BIN" if os.environ.get("RIVULET_BIN") else "default path"
        raise HarnessError(
            f"Rivulet broker binary not found or not executable at {path} ({how}). "
            "Build it with `cargo build --workspace` (scripts/test.sh does) or set RIVULET_BIN."
        )
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    """Poll `cond` until it returns a truthy value; return that value or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last_exc: Optional[BaseException] = None
    while True:
        try:
            value = cond()
            if value:
                return value
            last_exc = None
        except Exception as exc:  # noqa: BLE001 - reported below
            last_exc = exc
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}{extra}")
        time.sleep(interval)


def _accepting(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = STDERR_TAIL_LINES) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return "<no stderr file>"
    text = data.decode("utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:])


class Broker:
    """One Rivulet broker process with its own port and data dir.

    `start()` may be called again after `stop()`/`kill9()`; it reuses the same port and data
    directory. `overrides` are passed as `--override key=value` (in addition to node.id,
    listeners and log.dirs, which the harness always sets).
    """

    def __init__(self, workdir: Path, overrides: Optional[dict] = None, port: Optional[int] = None,
                 name: str = "broker", properties: Optional[dict] = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = port or free_port()
        self.data_dir = self.workdir / "data"
        self.stderr_path = self.workdir / "broker.stderr.log"
        self.stdout_path = self.workdir / "broker.stdout.log"
        self.overrides: dict = dict(overrides or {})
        # Optional server.properties content, passed with --config (overrides still win).
        self.properties: Optional[dict] = dict(properties) if properties is not None else None
        self.config_path = self.workdir / "server.properties"
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0
        self.last_exit_code: Optional[int] = None

    # ------------------------------------------------------------------ properties
    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self) -> list[str]:
        cmd = [str(check_broker_binary()), "serve"]
        if self.properties is not None:
            self.config_path.write_text("".join(f"{k}={v}\n" for k, v in self.properties.items()))
            cmd += ["--config", str(self.config_path)]
        cmd += ["--override", "node.id=1",
               "--override", f"listeners=PLAINTEXT://{self.host}:{self.port}",
               "--override", f"log.dirs={self.data_dir}"]
        for k, v in self.overrides.items():
            cmd += ["--override", f"{k}={v}"]
        return cmd

    # ------------------------------------------------------------------ lifecycle
    def start(self, extra_overrides: Optional[dict] = None, timeout: float = READY_TIMEOUT_S) -> "Broker":
        """Start (or restart) the broker and wait until the port accepts connections.

        `extra_overrides` are merged into this broker's overrides permanently (they apply to
        later restarts too).
        """
        if self.is_running():
            raise HarnessError(f"{self.name} is already running (pid {self.proc.pid})")
        if extra_overrides:
            self.overrides.update(extra_overrides)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if _accepting(self.host, self.port):
            raise HarnessError(f"port {self.port} already accepts connections before {self.name} started "
                               "(a previous broker process is still alive?)")
        cmd = self.command()
        self.starts += 1
        with open(self.stderr_path, "ab") as err:
            err.write(f"\n===== harness: start #{self.starts}: {' '.join(cmd)}\n".encode())
        err = open(self.stderr_path, "ab")
        out = open(self.stdout_path, "ab")
        try:
            env = dict(os.environ)
            env.setdefault("RUST_BACKTRACE", "1")
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         cwd=str(self.workdir), env=env, start_new_session=True)
        finally:
            err.close()
            out.close()
        if self not in LIVE_BROKERS:
            LIVE_BROKERS.append(self)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                self.last_exit_code = code
                raise HarnessError(
                    f"{self.name} exited with code {code} before becoming ready on {self.bootstrap}.\n"
                    f"--- stderr tail ({self.stderr_path}) ---\n{self.stderr_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() >= deadline:
                self._hard_kill()
                raise HarnessError(
                    f"{self.name} did not accept connections on {self.bootstrap} within {timeout:.0f}s.\n"
                    f"--- stderr tail ({self.stderr_path}) ---\n{self.stderr_tail()}")
            time.sleep(0.05)

    def stop(self, timeout: float = STOP_TIMEOUT_S, expect_code: Optional[int] = 0) -> int:
        """Graceful shutdown: SIGTERM, wait, and (by default) assert exit code 0."""
        if self.proc is None:
            raise HarnessError(f"{self.name} was never started")
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._hard_kill()
                raise HarnessError(
                    f"{self.name} did not exit within {timeout:.0f}s of SIGTERM (killed it).\n"
                    f"--- stderr tail ---\n{self.stderr_tail()}")
        code = self.proc.returncode
        self.last_exit_code = code
        self._note(f"stopped with SIGTERM, exit code {code}")
        if expect_code is not None and code != expect_code:
            raise HarnessError(
                f"{self.name} exited with code {code} after SIGTERM, expected {expect_code}.\n"
                f"--- stderr tail ---\n{self.stderr_tail()}")
        return code

    def kill9(self) -> None:
        """SIGKILL the broker and reap it (simulates a crash / power cut of the process)."""
        if self.proc is None or self.proc.poll() is not None:
            raise HarnessError(f"{self.name} is not running; cannot kill -9")
        # the whole process group (the broker runs in its own session), like a machine crash
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT_S)
        wait_until(lambda: not _accepting(self.host, self.port), 10, f"port {self.port} to close after kill -9")
        self.last_exit_code = self.proc.returncode
        self._note("killed with SIGKILL")

    def restart(self, extra_overrides: Optional[dict] = None) -> "Broker":
        self.stop()
        return self.start(extra_overrides)

    def _hard_kill(self) -> None:
        # Only while the broker itself is alive (its pid, and so its process-group id, cannot
        # have been reused yet): kill its whole group, which also ends stray children.
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001
            pass

    def close(self, check_clean_exit: bool = True) -> None:
        """Fixture teardown: stop if running (asserting a clean exit) and unregister."""
        try:
            if self.is_running():
                if check_clean_exit:
                    self.stop()
                else:
                    self._hard_kill()
        finally:
            self._hard_kill()
            if self in LIVE_BROKERS:
                LIVE_BROKERS.remove(self)

    # ------------------------------------------------------------------ introspection
    def _note(self, msg: str) -> None:
        with open(self.stderr_path, "ab") as err:
            err.write(f"===== harness: {msg}\n".encode())

    def stderr_tail(self, lines: int = STDERR_TAIL_LINES) -> str:
        return tail(self.stderr_path, lines)

    def rss_bytes(self) -> int:
        """Resident set size of the broker process (Linux /proc)."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise HarnessError("VmRSS not found")

    def partition_dir(self, topic: str, partition: int) -> Path:
        return self.data_dir / f"{topic}-{partition}"

    def clean_shutdown_marker(self) -> Path:
        return self.data_dir / ".kafka_cleanshutdown"

    def __repr__(self) -> str:
        state = "running" if self.is_running() else f"stopped({self.last_exit_code})"
        return f"<Broker {self.name} {self.bootstrap} {state} data={self.data_dir}>"


# ---------------------------------------------------------------------- external tools

def run_tool(cmd: list[str], *, input: Optional[bytes] = None, timeout: float = 30.0,
             check: bool = True, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """Run a command with a hard timeout; on failure raise with its stdout/stderr."""
    try:
        proc = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"command timed out after {timeout}s: {cmd!r}\n"
            f"stdout: {(exc.stdout or b'')[-2000:]!r}\nstderr: {(exc.stderr or b'')[-4000:]!r}") from None
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed with exit code {proc.returncode}: {cmd!r}\n"
            f"stdout: {proc.stdout[-2000:]!r}\nstderr: {proc.stderr[-4000:]!r}")
    return proc


def kcat(bootstrap: str, args: Iterable[str], *, input: Optional[bytes] = None,
         timeout: float = 30.0, check: bool = True) -> subprocess.CompletedProcess:
    """Run `kcat -b <bootstrap> <args...>` with a timeout."""
    return run_tool(["kcat", "-b", bootstrap, *args], input=input, timeout=timeout, check=check)


def node_script(script: str, args: dict, *, timeout: float = 60.0) -> object:
    """Run `node tests/interop/js/<script>.mjs` with JSON args (on stdin) and return the
    `result` of its single JSON output document. Raises if the script reports ok:false at top
    level or exits non-zero."""
    path = JS_DIR / f"{script}.mjs"
    if not (JS_DIR / "node_modules" / "kafkajs").is_dir():
        raise HarnessError("kafkajs is not installed: run scripts/install-test-deps.sh")
    proc = run_tool(["node", str(path), "-"], input=json.dumps(args).encode(), timeout=timeout)
    lines = [l for l in proc.stdout.decode().splitlines() if l.strip()]
    if not lines:
        raise AssertionError(f"{script}.mjs printed nothing; stderr:\n{proc.stderr.decode()[-4000:]}")
    doc = json.loads(lines[-1])
    if not doc.get("ok"):
        raise AssertionError(f"{script}.mjs failed: {doc.get('error')}\nstderr:\n{proc.stderr.decode()[-4000:]}")
    return doc["result"]
