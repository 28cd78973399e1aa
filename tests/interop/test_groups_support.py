"""Shared machinery of the consumer-group interop tests (test_groups_*.py); no tests here.

* Group members run as separate processes, so a test can stop them cleanly or SIGKILL them:
  `Worker("cf"|"kp"|"js", ...)` runs a confluent-kafka / kafka-python consumer (this file
  run as a script, `python test_groups_support.py worker '<json>'`) or a kafkajs consumer
  (`js/group_consumer.mjs`); `KcatWorker` runs `kcat -G` (librdkafka's balanced consumer).
  Every member prints one JSON event per line, with `ts` from CLOCK_MONOTONIC (comparable
  across processes): ready / assigned / revoked (with the member's full `owned` list after the
  event) / rec / committed / commit_failed / error / closed.
* Records are processed at least once: the Python and kafkajs members commit synchronously
  after every batch, so a record may be processed twice only if the member that processed it
  first had not committed it (the "uncommitted window"); `check_group_delivery` asserts that.
* `Raw`: a blocking wire-protocol connection that encodes requests and decodes responses with
  kafka-python's generated protocol classes (every version of every API), for exact error
  codes.
"""
from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# Fast group settings for the brokers of the group tests (a test of the initial delay sets it).
FAST_GROUPS = {
    "group.initial.rebalance.delay.ms": 0,
    "group.min.session.timeout.ms": 500,
}
SESSION_MS = 3000          # session.timeout.ms of members in kill tests
HEARTBEAT_MS = 300


# ============================================================================ raw protocol

class Raw:
    """One connection; `call(Request, version, **fields)` returns the decoded response."""

    def __init__(self, bootstrap: str, timeout: float = 30.0, client_id: str = "rivulet-groups-raw"):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client_id = client_id
        self.cid = 0
        self.pending: dict[int, tuple] = {}

    def send(self, request_cls, version: int, **fields) -> int:
        self.cid += 1
        req = request_cls(version=version, **_structs(request_cls, fields))
        req.with_header(correlation_id=self.cid, client_id=self.client_id)
        self.sock.sendall(req.encode(header=True, framed=True))
        self.pending[self.cid] = (request_cls, version)
        return self.cid

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("connection closed by the broker")
            buf += chunk
        return bytes(buf)

    def recv(self):
        (size,) = struct.unpack(">i", self._recv_exact(4))
        data = self._recv_exact(size)
        (cid,) = struct.unpack(">i", data[:4])
        request_cls, version = self.pending.pop(cid)
        response_cls = _response_class(request_cls)
        return response_cls.decode(data, version=version, header=True)

    def call(self, request_cls, version: int, **fields):
        self.send(request_cls, version, **fields)
        return self.recv()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _structs(cls, fields: dict) -> dict:
    """Nested dicts (and lists of dicts) to kafka-python's generated struct classes."""
    out = {}
    for name, value in fields.items():
        field = cls._struct.fields.get(name)
        if field is not None and (field.is_struct() or field.is_struct_array()) and value is not None:
            sub = field.data_class
            conv = lambda v: sub(**_structs(sub, v)) if isinstance(v, dict) else v  # noqa: E731
            value = [conv(v) for v in value] if isinstance(value, list) else conv(value)
        out[name] = value
    return out


def _response_class(request_cls):
    import importlib
    module = importlib.import_module(request_cls.__module__)
    return getattr(module, request_cls.__name__.split("_v")[0].replace("Request", "Response"))


def consumer_subscription(topics: Sequence[str], user_data: bytes = b"") -> bytes:
    """ConsumerProtocolSubscription v0 (what a JoinGroup of protocol type "consumer" carries)."""
    out = struct.pack(">hi", 0, len(topics))
    for t in topics:
        out += struct.pack(">h", len(t)) + t.encode()
    return out + struct.pack(">i", len(user_data)) + user_data


def consumer_assignment(tps: dict, user_data: bytes = b"") -> bytes:
    """ConsumerProtocolAssignment v0: {topic: [partitions]}."""
    out = struct.pack(">hi", 0, len(tps))
    for t, ps in tps.items():
        out += struct.pack(">h", len(t)) + t.encode() + struct.pack(">i", len(ps))
        out += b"".join(struct.pack(">i", p) for p in ps)
    return out + struct.pack(">i", len(user_data)) + user_data


def decode_assignment(data: bytes) -> dict:
    """ConsumerProtocolAssignment (any version; the fields after user_data are ignored)."""
    if not data:
        return {}
    pos = 2
    (n,) = struct.unpack_from(">i", data, pos)
    pos += 4
    out = {}
    for _ in range(n):
        (ln,) = struct.unpack_from(">h", data, pos)
        pos += 2
        t = data[pos:pos + ln].decode()
        pos += ln
        (k,) = struct.unpack_from(">i", data, pos)
        pos += 4
        out[t] = list(struct.unpack_from(f">{k}i", data, pos))
        pos += 4 * k
    return out


# ============================================================================ members

def _emit(ev: dict) -> None:
    ev["ts"] = time.monotonic()
    sys.stdout.write(json.dumps(ev) + "\n")
    sys.stdout.flush()


def _stdin_commands() -> "queue.Queue[str]":
    q: "queue.Queue[str]" = queue.Queue()

    def pump():
        for line in sys.stdin:
            q.put(line.strip())
        q.put("eof")
    threading.Thread(target=pump, daemon=True).start()
    return q


def _text(b) -> Optional[str]:
    return None if b is None else b.decode("utf-8", errors="replace")


def run_cf_worker(spec: dict) -> None:
    """A confluent-kafka group member (librdkafka's classic protocol)."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition
    assignor = spec.get("assignor", "range")
    cooperative = assignor == "cooperative-sticky"
    conf = {
        "bootstrap.servers": spec["bootstrap"],
        "broker.address.family": "v4",
        "group.id": spec["group"],
        "client.id": spec.get("name", "cf"),
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "session.timeout.ms": spec.get("session_ms", 6000),
        "heartbeat.interval.ms": spec.get("heartbeat_ms", HEARTBEAT_MS),
        "max.poll.interval.ms": spec.get("max_poll_ms", 30000),
        "partition.assignment.strategy": assignor,
        "fetch.wait.max.ms": 100,
        "topic.metadata.refresh.interval.ms": spec.get("metadata_refresh_ms", 1000),
        "error_cb": lambda err: _emit({"ev": "error", "msg": str(err), "code": err.code()}),
    }
    if spec.get("instance_id"):
        conf["group.instance.id"] = spec["instance_id"]
    conf.update(spec.get("conf", {}))
    owned: set = set()
    c = Consumer(conf)

    def on_assign(consumer, tps):
        owned.update((tp.topic, tp.partition) for tp in tps)
        _emit({"ev": "assigned", "tps": sorted([tp.topic, tp.partition] for tp in tps),
               "owned": sorted(owned), "member": consumer.memberid()})

    def on_revoke(consumer, tps):
        gone = {(tp.topic, tp.partition) for tp in tps}
        owned.difference_update(gone)
        _emit({"ev": "revoked", "tps": sorted(gone), "owned": sorted(owned)})

    def on_lost(consumer, tps):
        gone = {(tp.topic, tp.partition) for tp in tps}
        owned.difference_update(gone)
        _emit({"ev": "revoked", "lost": True, "tps": sorted(gone), "owned": sorted(owned)})

    topics = spec["topics"]
    c.subscribe(topics, on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    _emit({"ev": "ready", "cooperative": cooperative})
    commands = _stdin_commands()
    sleep_s = spec.get("sleep_per_record_ms", 0) / 1000
    while True:
        try:
            cmd = commands.get_nowait()
        except queue.Empty:
            cmd = None
        if cmd in ("close", "eof"):
            # from here on it processes nothing: say so before the client leaves the group
            _emit({"ev": "revoked", "closing": True, "tps": sorted(owned), "owned": []})
            c.close()
            _emit({"ev": "closed"})
            return
        if cmd and cmd.startswith("subscribe "):
            topics = cmd.split(" ", 1)[1].split(",")
            c.subscribe(topics, on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
            _emit({"ev": "subscribed", "topics": topics})
        msgs = c.consume(num_messages=spec.get("batch", 100), timeout=0.1)
        last = {}
        for m in msgs:
            if m.error():
                _emit({"ev": "error", "msg": str(m.error())})
                continue
            _emit({"ev": "rec", "t": m.topic(), "p": m.partition(), "o": m.offset(),
                   "k": _text(m.key()), "v": _text(m.value())})
            last[(m.topic(), m.partition())] = m.offset()
            if sleep_s:
                time.sleep(sleep_s)
        if last and spec.get("commit", "batch") == "batch":
            offsets = [TopicPartition(t, p, o + 1) for (t, p), o in sorted(last.items())]
            try:
                c.commit(offsets=offsets, asynchronous=False)
                _emit({"ev": "committed", "offsets": [[t, p, o + 1] for (t, p), o in sorted(last.items())]})
            except KafkaException as exc:
                _emit({"ev": "commit_failed", "msg": str(exc)})


def run_kp_worker(spec: dict) -> None:
    """A kafka-python group member."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.consumer.subscription_state import ConsumerRebalanceListener
    from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
    from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
    from kafka.errors import KafkaError
    from kafka.structs import OffsetAndMetadata
    assignors = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor,
                 "sticky": StickyPartitionAssignor, "cooperative-sticky": CooperativeStickyAssignor}
    kwargs = dict(
        bootstrap_servers=spec["bootstrap"], group_id=spec["group"], client_id=spec.get("name", "kp"),
        enable_auto_commit=False, auto_offset_reset="earliest",
        session_timeout_ms=spec.get("session_ms", 6000), heartbeat_interval_ms=spec.get("heartbeat_ms", HEARTBEAT_MS),
        max_poll_interval_ms=spec.get("max_poll_ms", 30000), fetch_max_wait_ms=100, request_timeout_ms=30000,
        metadata_max_age_ms=spec.get("metadata_refresh_ms", 1000),
        partition_assignment_strategy=[assignors[spec.get("assignor", "range")]],
    )
    if spec.get("instance_id"):
        kwargs["group_instance_id"] = spec["instance_id"]
    kwargs.update(spec.get("conf", {}))
    if spec.get("debug"):
        import logging
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
    owned: set = set()

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            gone = {(tp.topic, tp.partition) for tp in revoked}
            owned.difference_update(gone)
            _emit({"ev": "revoked", "tps": sorted(gone), "owned": sorted(owned)})

        def on_partitions_assigned(self, assigned):
            owned.update((tp.topic, tp.partition) for tp in assigned)
            _emit({"ev": "assigned", "tps": sorted([tp.topic, tp.partition] for tp in assigned),
                   "owned": sorted(owned)})

        def on_partitions_lost(self, lost):
            gone = {(tp.topic, tp.partition) for tp in lost}
            owned.difference_update(gone)
            _emit({"ev": "revoked", "lost": True, "tps": sorted(gone), "owned": sorted(owned)})

    c = KafkaConsumer(**kwargs)
    c.subscribe(spec["topics"], listener=Listener())
    _emit({"ev": "ready"})
    commands = _stdin_commands()
    sleep_s = spec.get("sleep_per_record_ms", 0) / 1000
    while True:
        try:
            cmd = commands.get_nowait()
        except queue.Empty:
            cmd = None
        if cmd in ("close", "eof"):
            _emit({"ev": "revoked", "closing": True, "tps": sorted(owned), "owned": []})
            c.close(autocommit=False)
            _emit({"ev": "closed"})
            return
        if cmd and cmd.startswith("subscribe "):
            topics = cmd.split(" ", 1)[1].split(",")
            c.subscribe(topics, listener=Listener())
            _emit({"ev": "subscribed", "topics": topics})
        # kafka-python 3.0.12 can lose a JoinGroup/SyncGroup round that completes after a
        # poll() timed out waiting for it (coordinator/base.py join_group_async: the member
        # never applies the assignment nor heartbeats again, and is expired). Long polls make
        # a rebalance finish inside one poll() call (poll returns as soon as records arrive).
        batch = c.poll(timeout_ms=1000 if owned else 2000, max_records=spec.get("batch", 100))
        last = {}
        for tp, recs in batch.items():
            for r in recs:
                _emit({"ev": "rec", "t": r.topic, "p": r.partition, "o": r.offset,
                       "k": _text(r.key), "v": _text(r.value)})
                last[(r.topic, r.partition)] = r.offset
                if sleep_s:
                    time.sleep(sleep_s)
        if last and spec.get("commit", "batch") == "batch":
            try:
                c.commit({TopicPartition(t, p): OffsetAndMetadata(o + 1, "", -1) for (t, p), o in last.items()})
                _emit({"ev": "committed", "offsets": [[t, p, o + 1] for (t, p), o in sorted(last.items())]})
            except KafkaError as exc:
                _emit({"ev": "commit_failed", "msg": repr(exc)})


class Worker:
    """A group member in its own process: kind "cf" (confluent-kafka), "kp" (kafka-python) or
    "js" (kafkajs). Events accumulate in `events`; see the module docstring."""

    def __init__(self, kind: str, bootstrap: str, group: str, topics: Sequence[str], name: str,
                 workdir: Path, **spec):
        self.kind, self.name, self.group = kind, name, group
        self.events: list[dict] = []
        self.cond = threading.Condition()
        self.stderr_path = Path(workdir) / f"member-{name}.stderr.log"
        if kind in ("cf", "kp"):
            doc = dict(spec, bootstrap=bootstrap, group=group, topics=list(topics), name=name)
            cmd = [sys.executable, str(HERE / "test_groups_support.py"), f"worker-{kind}", json.dumps(doc)]
        elif kind == "js":
            doc = {"brokers": [bootstrap], "groupId": group, "topics": list(topics), "name": name,
                   "clientId": name, "sessionTimeout": spec.get("session_ms", 6000),
                   "rebalanceTimeout": spec.get("rebalance_ms", 10000),
                   "heartbeatInterval": spec.get("heartbeat_ms", HEARTBEAT_MS),
                   "sleepPerRecordMs": spec.get("sleep_per_record_ms", 0), "commit": spec.get("commit", "batch"),
                   "maxBytesPerPartition": spec.get("max_bytes", 1 << 20)}
            cmd = ["node", str(HERE / "js" / "group_consumer.mjs"), json.dumps(doc)]
        else:
            raise ValueError(kind)
        self.stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     cwd=str(HERE), start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.killed_at: Optional[float] = None
        LIVE_WORKERS.append(self)

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            ev["name"] = self.name
            with self.cond:
                self.events.append(ev)
                self.cond.notify_all()
        with self.cond:
            self.events.append({"ev": "exit", "ts": time.monotonic(), "name": self.name})
            self.cond.notify_all()

    # ---------------------------------------------------------------- views
    def snapshot(self) -> list:
        with self.cond:
            return list(self.events)

    def of(self, kind: str) -> list:
        return [e for e in self.snapshot() if e["ev"] == kind]

    @property
    def owned(self) -> set:
        """What the member owns now, by its own account (empty once it is dead)."""
        if not self.alive():
            return set()
        own: set = set()
        for e in self.snapshot():
            if e["ev"] in ("assigned", "revoked"):
                own = {tuple(tp) for tp in e["owned"]} if "owned" in e else own
        return own

    def records(self) -> list:
        return self.of("rec")

    def committed(self) -> dict:
        out: dict = {}
        for e in self.of("committed"):
            for t, p, o in e["offsets"]:
                out[(t, p)] = o
        return out

    def alive(self) -> bool:
        return self.proc.poll() is None and self.killed_at is None

    def wait(self, pred: Callable[[dict], bool], timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        with self.cond:
            seen = 0
            while True:
                for e in self.events[seen:]:
                    if pred(e):
                        return e
                seen = len(self.events)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.name}: timed out after {timeout}s waiting for {what}; "
                                         f"last events: {self.events[-8:]}; stderr: {self.stderr_tail()}")
                self.cond.wait(left)

    def send(self, command: str) -> None:
        self.proc.stdin.write((command + "\n").encode())
        self.proc.stdin.flush()

    def close(self, timeout: float = 30.0) -> None:
        """Clean shutdown (the client leaves the group, unless it is a static member)."""
        if self.proc.poll() is None:
            try:
                self.send("close")
            except BrokenPipeError:
                pass
            try:
                code = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"{self.name} did not close within {timeout}s; stderr: {self.stderr_tail()}")
            assert code == 0, f"{self.name} exited with {code}; stderr: {self.stderr_tail()}"
        self.reader.join(5)
        self._done()

    def kill(self) -> float:
        """SIGKILL (no LeaveGroup, no commit); returns when it happened (monotonic)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.killed_at = time.monotonic()
            self.proc.wait(10)
        self.reader.join(5)
        self._done()
        return self.killed_at or time.monotonic()

    def _done(self):
        if self in LIVE_WORKERS:
            LIVE_WORKERS.remove(self)
        if self.stderr is not None:
            self.stderr.close()

    def stderr_tail(self, n: int = 3000) -> str:
        try:
            return self.stderr_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def __repr__(self):
        return f"<Worker {self.kind} {self.name} owned={sorted(self.owned)}>"


class KcatWorker(Worker):
    """`kcat -G group topics` (librdkafka 2.0's balanced consumer, auto-commit); events are
    built from its JSON records (stdout) and rebalance notices (stderr)."""

    ASSIGN = re.compile(r"% Group (\S+) rebalanced \(memberid ([^)]*)\): (assigned|revoked): (.*)")

    def __init__(self, bootstrap: str, group: str, topics: Sequence[str], name: str, workdir: Path,
                 extra: Sequence[str] = ()):
        self.kind, self.name, self.group = "kcat", name, group
        self.events = []
        self.cond = threading.Condition()
        self.stderr_path = Path(workdir) / f"member-{name}.stderr.log"
        cmd = ["kcat", "-b", bootstrap, "-G", group, *topics, "-J", "-u", "-X", "broker.address.family=v4",
               "-X", "auto.offset.reset=earliest", "-X", f"client.id={name}",
               "-X", "session.timeout.ms=6000", "-X", f"heartbeat.interval.ms={HEARTBEAT_MS}",
               "-X", "auto.commit.interval.ms=200", "-X", "fetch.wait.max.ms=100", *extra]
        self.stderr = None
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self._owned: set = set()
        self.err_lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.err_reader = threading.Thread(target=self._read_err, daemon=True)
        self.err_reader.start()
        self.killed_at = None
        LIVE_WORKERS.append(self)

    def _read(self):
        for line in self.proc.stdout:
            try:
                j = json.loads(line)
            except ValueError:
                continue
            ev = {"ev": "rec", "t": j["topic"], "p": j["partition"], "o": j["offset"], "k": j.get("key"),
                  "v": j.get("payload"), "ts": time.monotonic(), "name": self.name}
            with self.cond:
                self.events.append(ev)
                self.cond.notify_all()
        with self.cond:
            self.events.append({"ev": "exit", "ts": time.monotonic(), "name": self.name})
            self.cond.notify_all()

    def _read_err(self):
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.err_lines.append(line)
            m = self.ASSIGN.search(line)
            if not m:
                continue
            tps = set()
            for t, p in re.findall(r"(\S+) \[(\d+)\]", m.group(4)):
                tps.add((t, int(p)))
            with self.cond:
                if m.group(3) == "assigned":
                    self._owned |= tps
                else:
                    self._owned -= tps
                self.events.append({"ev": m.group(3), "tps": sorted(tps), "owned": sorted(self._owned),
                                    "member": m.group(2), "ts": time.monotonic(), "name": self.name})
                self.cond.notify_all()

    def close(self, timeout: float = 30.0) -> None:
        """SIGTERM: kcat commits its offsets and leaves the group."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"{self.name} did not stop within {timeout}s")
        self.reader.join(5)
        self._done()

    def stderr_tail(self, n: int = 3000) -> str:
        return "\n".join(self.err_lines)[-n:]


LIVE_WORKERS: list[Worker] = []


def kill_leftover_workers():
    for w in list(LIVE_WORKERS):
        try:
            w.kill()
        except Exception:  # noqa: BLE001
            pass


_topic_counter = iter(range(1, 1 << 30))


@pytest.fixture
def gtopic(request) -> str:
    """A short unique topic name (the group tests print many of them)."""
    base = re.sub(r"[^a-zA-Z0-9]+", "-", request.node.originalname.removeprefix("test_"))[:24].strip("-")
    return f"{base}-{os.getpid() % 1000}-{next(_topic_counter)}"


@pytest.fixture
def spawn(tmp_path):
    """`spawn(kind, bootstrap, group, topics, name, **spec)` starts a member process ("cf", "kp",
    "js" or "kcat"); members still running at the end of the test are killed."""
    def make(kind, bootstrap, group, topics, name, **spec):
        if kind == "kcat":
            return KcatWorker(bootstrap, group, topics, name, tmp_path, **spec)
        return Worker(kind, bootstrap, group, topics, name, tmp_path, **spec)
    yield make
    kill_leftover_workers()


# ============================================================================ assertions

def owners(workers: Iterable[Worker]) -> dict:
    """{(topic, partition): [names of live members claiming it]}."""
    out = defaultdict(list)
    for w in workers:
        for tp in w.owned:
            out[tp].append(w.name)
    return dict(out)


def wait_assignment(workers: Sequence[Worker], partitions: Iterable[tuple], timeout: float = 30.0,
                    per_member: Optional[Sequence[int]] = None, settle: float = 0.3,
                    check: Optional[Callable[[dict], bool]] = None) -> dict:
    """Wait until the live `workers` own `partitions` exactly once between them (each member
    owning as many as `per_member` says, in any order, and `check(assignment)` true) and that
    holds for `settle` seconds. Returns {worker name: sorted partitions}."""
    want = set(partitions)
    deadline = time.monotonic() + timeout
    stable_since = None
    last = None
    while True:
        live = [w for w in workers if w.alive()]
        _fail_on_crash(workers)
        own = {w.name: sorted(w.owned) for w in live}
        claims = owners(live)
        ok = set(claims) == want and all(len(v) == 1 for v in claims.values())
        if ok and per_member is not None:
            ok = sorted(len(v) for v in own.values()) == sorted(per_member)
        if ok and check is not None:
            ok = bool(check(own))
        if ok and own == last:
            if stable_since is None:
                stable_since = time.monotonic()
            if time.monotonic() - stable_since >= settle:
                return own
        else:
            stable_since = None
        last = own if ok else None
        if time.monotonic() > deadline:
            raise AssertionError(f"no exact assignment of {sorted(want)} within {timeout}s: {own}; "
                                 f"recent events: {[w.snapshot()[-4:] for w in workers]}")
        time.sleep(0.05)


def _fail_on_crash(workers: Sequence[Worker]) -> None:
    for w in workers:
        if w.killed_at is None and w.proc.poll() is not None and w.proc.returncode != 0:
            raise AssertionError(f"member {w.name} died (exit {w.proc.returncode}); last events "
                                 f"{w.snapshot()[-5:]}; stderr: {w.stderr_tail()}")


def wait_records(workers: Sequence[Worker], expected: set, timeout: float = 30.0) -> None:
    """Wait until the group has processed every (topic, partition, offset) in `expected`."""
    deadline = time.monotonic() + timeout
    while True:
        _fail_on_crash(workers)
        got = {(e["t"], e["p"], e["o"]) for w in workers for e in w.records()}
        missing = expected - got
        if not missing:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(missing)} of {len(expected)} records never processed, e.g. "
                                 f"{sorted(missing)[:10]}; per member: "
                                 f"{ {w.name: len(w.records()) for w in workers} }")
        time.sleep(0.05)


def wait_committed(workers: Sequence[Worker], ends: dict, timeout: float = 30.0) -> None:
    """Wait until the members have committed (and been acknowledged) up to `ends`
    ({(topic, partition): next offset})."""
    deadline = time.monotonic() + timeout
    while True:
        _fail_on_crash(workers)
        done = defaultdict(int)
        for w in workers:
            for tp, o in w.committed().items():
                done[tp] = max(done[tp], o)
        short = {tp: (done[tp], o) for tp, o in ends.items() if done[tp] < o}
        if not short:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"commits did not reach {short} (committed, wanted) within {timeout}s")
        time.sleep(0.05)


def ends_of(records: set) -> dict:
    """{(topic, partition): offset after the last record} of a (topic, partition, offset) set."""
    out: dict = {}
    for t, p, o in records:
        out[(t, p)] = max(out.get((t, p), 0), o + 1)
    return out


def close_all(workers: Sequence[Worker], timeout: float = 30.0) -> None:
    """Close members in parallel."""
    for w in workers:
        if w.proc.poll() is None and not isinstance(w, KcatWorker):
            try:
                w.send("close")
            except BrokenPipeError:
                pass
    for w in workers:
        w.close(timeout)


def check_group_delivery(workers: Sequence[Worker], expected: set) -> dict:
    """Every expected record processed at least once; any record processed more than once was
    not yet committed when it was processed again (no successful commit covering it had been
    acknowledged to any member before the second processing began). Returns duplicate counts."""
    recs = sorted((e for w in workers for e in w.records()), key=lambda e: e["ts"])
    got = {(e["t"], e["p"], e["o"]) for e in recs}
    missing = expected - got
    assert not missing, f"lost records: {sorted(missing)[:20]} ({len(missing)} in all)"
    commits = defaultdict(list)  # (t, p) -> [(ts, next offset)]
    for w in workers:
        for e in w.of("committed"):
            for t, p, o in e["offsets"]:
                commits[(t, p)].append((e["ts"], o))
    first_seen = {}
    dups = defaultdict(int)
    bad = []
    for e in recs:
        key = (e["t"], e["p"], e["o"])
        if key not in first_seen:
            first_seen[key] = e
            continue
        dups[e["name"]] += 1
        covered = [(ts, o) for ts, o in commits[(e["t"], e["p"])] if ts < e["ts"] and o > e["o"]]
        if covered:
            bad.append((key, first_seen[key]["name"], e["name"], covered[0]))
    assert not bad, (f"{len(bad)} records processed again after a commit covering them had been "
                     f"acknowledged (record, first member, second member, (commit ts, offset)): {bad[:10]}")
    return dict(dups)


FENCED = re.compile(r"unknown.?member|illegal.?generation|generation id is not valid|commitfailed", re.I)


def _fenced_at(w: Worker) -> list:
    """When the member's commits were refused as a stale or removed member's."""
    return [e["ts"] for e in w.of("commit_failed") if FENCED.search(e.get("msg", ""))]


def check_exclusive_ownership(workers: Sequence[Worker]) -> list:
    """At no moment did two members claim one partition (each member's own account: a member
    reports a revocation before it rejoins or leaves and an assignment after it synced; a
    killed member's claim ends at the kill) -- except a member the coordinator had already
    removed without its knowing (it stopped heartbeating, e.g. kafkajs heartbeats only between
    batches): such a zombie's commits are refused, which is the fencing Kafka promises, and
    `check_group_delivery` checks what that means for the records. Returns those overlaps."""
    fenced = {w.name: _fenced_at(w) for w in workers}
    assigned_at = {w.name: [e["ts"] for e in w.of("assigned")] for w in workers}
    zombie_overlaps = []

    def zombie(name: str, since: float) -> bool:
        # refused as stale after its latest assignment before `since`, before any newer one
        start = max([t for t in assigned_at[name] if t <= since], default=float("-inf"))
        nxt = min([t for t in assigned_at[name] if t > since], default=float("inf"))
        return any(start < t < nxt for t in fenced[name])

    timeline = []
    for w in workers:
        for e in w.snapshot():
            if e["ev"] in ("assigned", "revoked") and "owned" in e:
                timeline.append((e["ts"], w.name, frozenset(tuple(tp) for tp in e["owned"])))
            elif e["ev"] == "exit":
                timeline.append((e["ts"], w.name, frozenset()))
        if w.killed_at is not None:
            timeline.append((w.killed_at, w.name, frozenset()))
    timeline.sort(key=lambda x: x[0])
    current: dict = {}
    for ts, name, owned in timeline:
        current[name] = owned
        claims = defaultdict(list)
        for n, tps in current.items():
            for tp in tps:
                claims[tp].append(n)
        both = {tp: ns for tp, ns in claims.items() if len(ns) > 1}
        real = {tp: ns for tp, ns in both.items() if sum(not zombie(n, ts) for n in ns) > 1}
        assert not real, f"at {ts:.3f} partitions had two owners: {real}"
        if both:
            zombie_overlaps.append((ts, both))
    return zombie_overlaps


def exactly_once(workers: Sequence[Worker], expected: set) -> dict:
    """Every expected record processed exactly once; returns {member: set of partitions it read}."""
    seen = defaultdict(list)
    for w in workers:
        for e in w.records():
            seen[(e["t"], e["p"], e["o"])].append(w.name)
    missing = expected - set(seen)
    assert not missing, f"lost: {sorted(missing)[:20]}"
    twice = {k: v for k, v in seen.items() if len(v) > 1}
    assert not twice, f"processed more than once: {list(twice.items())[:20]}"
    by_member = defaultdict(set)
    for (t, p, _), names in seen.items():
        by_member[names[0]].add((t, p))
    return dict(by_member)


# ============================================================================ data

def produce_values(bootstrap: str, topic: str, partitions: int, per_partition: int, tag: str = "r",
                   start: int = 0) -> set:
    """Produce `per_partition` records to each partition (value "<tag>-<p>-<i>"); returns the
    (topic, partition, offset) set written."""
    from kclients import cf_produce, rec
    records = [rec(f"{tag}-{p}-{i}".encode(), key=f"k{i}".encode(), partition=p)
               for i in range(start, start + per_partition) for p in range(partitions)]
    results = cf_produce(bootstrap, topic, records)
    assert all(r["error"] is None for r in results), [r for r in results if r["error"]][:3]
    return {(topic, r["partition"], r["offset"]) for r in results}


MARKER_TAG = "marker"


def drain(bootstrap: str, workers: Sequence[Worker], topic: str, partitions: int, timeout: float = 30.0) -> set:
    """A barrier in place of a pause before checking what a group processed: produce one
    marker record to each partition and wait until the group has processed every one.
    Members read a partition in order, so whatever the group was going to deliver before a
    marker (a late duplicate, a record past the expected ones) has been delivered by then.
    Returns the markers' (topic, partition, offset) set; `is_marker` tells their events."""
    markers = produce_values(bootstrap, topic, partitions, 1, tag=MARKER_TAG)
    wait_records(workers, markers, timeout)
    return markers


def is_marker(event: dict) -> bool:
    return (event.get("v") or "").startswith(MARKER_TAG + "-")


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    from confluent_kafka.admin import NewTopic
    from kclients import cf_create_topics
    assert cf_create_topics(bootstrap, [NewTopic(name, partitions, 1)]) == {name: 0}


def all_partitions(topic: str, n: int) -> set:
    return {(topic, p) for p in range(n)}


# ============================================================================ entry point

if __name__ == "__main__":
    role, doc = sys.argv[1], json.loads(sys.argv[2])
    try:
        if role == "worker-cf":
            run_cf_worker(doc)
        elif role == "worker-kp":
            run_kp_worker(doc)
        else:
            raise SystemExit(f"unknown role {role}")
    except Exception as exc:  # noqa: BLE001 - reported as an event, then exit non-zero
        import traceback
        traceback.print_exc()
        _emit({"ev": "error", "msg": repr(exc)})
        sys.exit(1)
