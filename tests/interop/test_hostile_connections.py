"""Hostile and careless connections (issue 11): each gets its exact outcome (a closed
connection or Kafka's error), the broker's memory stays bounded, and normal clients are
served the whole time.

The cases, from distinct loopback source addresses (all of 127.0.0.0/8 reaches the
listener, so 127.0.0.x stand for distinct client IPs):
  - many connections: up to `max.connections.per.ip` from each of 16 addresses are
    served; one more from an address is closed at once; an override applies per address;
  - slowloris: a size prefix, then a byte now and then: closed when the request has not
    arrived `rivulet.socket.request.read.timeout.ms` after its prefix; while such
    requests hold the whole request pool, others wait for them, no longer;
  - large Produce requests pipelined behind a request that waits (a JoinGroup in its
    initial rebalance delay): the connection is muted after 16 MiB, then all answered;
    before, the broker read 500 requests ahead of the one it was processing;
  - Fetch requests pipelined by a client that reads no responses: the broker stops
    processing them at 16 MiB of unwritten responses and closes the connection after
    `connections.max.idle.ms` without progress;
  - a huge size prefix, garbage bytes, truncated frames, an unknown API key or version.

While the module runs, confluent-kafka produces to a topic kafka-python consumes, and
kafka-python produces to a topic confluent-kafka consumes (`steady`); the broker's RSS is
sampled every 50 ms. Each test checks the broker is alive and under RSS_BOUND_BYTES; the
last checks both consumers read exactly what was produced.
"""
from __future__ import annotations

import random
import socket
import struct
import threading
import time

import pytest
from confluent_kafka.admin import NewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

import kwire
from kclients import CfReader, cf_create_topics, cf_produce, cf_producer, cf_read, kp_producer, rec
from rivulet_harness import wait_until

MIB = 1024 * 1024
REQUEST_MAX = 8 * MIB
POOL = 32 * MIB
READ_TIMEOUT_S = 2.0
IDLE_S = 5.0
PER_IP = 24

BROKER_OVERRIDES = {
    "max.connections.per.ip": str(PER_IP),
    "max.connections.per.ip.overrides": "127.0.0.9:2",
    "socket.request.max.bytes": str(REQUEST_MAX),
    "queued.max.request.bytes": str(POOL),
    "message.max.bytes": str(5 * MIB),
    "rivulet.socket.request.read.timeout.ms": str(int(READ_TIMEOUT_S * 1000)),
    "connections.max.idle.ms": str(int(IDLE_S * 1000)),
    "group.initial.rebalance.delay.ms": "3000",
}

# A debug broker idles at ~15-20 MiB. The request pool is 32 MiB and a connection holds at
# most 16 MiB of unwritten responses plus one; every case stays well under this. Before the
# bounds, the pipelined Produce case alone read 160 MiB ahead and the non-reading Fetch
# client queued up to 500 responses of 8 MiB.
RSS_BOUND_BYTES = 128 * MIB
CLOSE_S = 10.0
# A close that must come at once, not from connections.max.idle.ms.
AT_ONCE_S = IDLE_S - 1

API_JOIN_GROUP = 11
ERR_UNSUPPORTED_VERSION = 35
TCP_ESTABLISHED = 1


# ============================================================================ raw connections

class RawConn(kwire.Conn):
    """kwire's blocking connection, from a chosen loopback source address."""

    def __init__(self, broker, source: str, timeout: float = 10.0):  # noqa: D401 - no super()
        self.sock = socket.create_connection((broker.host, broker.port), timeout=timeout,
                                             source_address=(source, 0))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        self.next_cid = 1

    def expect_closed(self, timeout: float = AT_ONCE_S) -> bytes:
        """Waits for the broker to close; returns what it sent before (should be nothing)."""
        received = bytearray()
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"the broker kept the connection open {timeout}s; "
                                     f"received {bytes(received[:64])!r}")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                return bytes(received)
            if not chunk:
                return bytes(received)
            received += chunk

    def tcp_state(self) -> int:
        """The kernel's TCP state of this socket (Linux TCP_INFO), without reading."""
        return self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def send_expect_close(broker, source: str, payload: bytes, shutdown_write: bool = False) -> None:
    with RawConn(broker, source) as c:
        try:
            c.send_raw(payload)
            if shutdown_write:
                c.sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            return  # closed before it read everything: closed all the same
        received = c.expect_closed()
        assert received == b"", f"the broker answered {payload[:16]!r}... with {received[:64]!r}"


def join_group_v0_frame(group: str, correlation_id: int) -> bytes:
    body = (kwire.string(group) + struct.pack(">i", 30_000) + kwire.string("")
            + kwire.string("consumer") + struct.pack(">i", 1) + kwire.string("range")
            + struct.pack(">i", 0))
    return kwire.frame(kwire.request_header(API_JOIN_GROUP, 0, correlation_id, "hostile", False) + body)


def produce_v3_frame(topic: str, batch: bytes, correlation_id: int) -> bytes:
    body = (kwire.string(None) + struct.pack(">hi", 1, 30_000) + struct.pack(">i", 1)
            + kwire.string(topic) + struct.pack(">ii", 1, 0) + struct.pack(">i", len(batch)) + batch)
    return kwire.frame(kwire.request_header(kwire.API_PRODUCE, 3, correlation_id, "hostile", False) + body)


def fetch_v4_frame(topic: str, max_bytes: int, correlation_id: int) -> bytes:
    body = (struct.pack(">iiiib", -1, 0, 1, max_bytes, 0) + struct.pack(">i", 1) + kwire.string(topic)
            + struct.pack(">i", 1) + struct.pack(">iqi", 0, 0, max_bytes))
    return kwire.frame(kwire.request_header(kwire.API_FETCH, 4, correlation_id, "hostile", False) + body)


def read_produce_v3(c: RawConn, correlation_id: int, topic: str) -> tuple:
    r = kwire.Reader(c.recv_frame())
    assert r.i32() == correlation_id
    topics = r.array(lambda x: (x.string(), x.array(lambda y: (y.i32(), y.i16(), y.i64(), y.i64()))))
    assert [(name, [p[0] for p in parts]) for name, parts in topics] == [(topic, [0])], topics
    _, error, base_offset, _ = topics[0][1][0]
    return error, base_offset


# ============================================================================ the steady clients

class Steady:
    """confluent-kafka -> kafka-python and kafka-python -> confluent-kafka, each on its own
    topic, during every case; and a sampler of the broker's RSS."""

    def __init__(self, broker):
        self.broker = broker
        self.stop = threading.Event()
        self.cf_topic, self.kp_topic = "steady-from-confluent", "steady-from-kafka-python"
        assert cf_create_topics(broker.bootstrap, [NewTopic(self.cf_topic, 1, 1), NewTopic(self.kp_topic, 1, 1)]) \
            == {self.cf_topic: 0, self.kp_topic: 0}
        self.produced = {self.cf_topic: [], self.kp_topic: []}
        self.consumed = {self.cf_topic: [], self.kp_topic: []}
        self.failures: list[str] = []
        self.rss_max = 0
        self.rss_samples = 0
        self.rss_window = 0  # the highest since the current test began
        self.rss_by_test: dict[str, int] = {}
        bodies = (self._cf_produce, self._kp_produce, self._kp_consume, self._cf_consume, self._sample)
        self.threads = {f.__name__: threading.Thread(target=self._run, args=(f,), daemon=True, name=f.__name__)
                        for f in bodies}
        for t in self.threads.values():
            t.start()

    def _run(self, body):
        try:
            body()
        except Exception as exc:  # noqa: BLE001 - reported by the last test
            self.failures.append(f"{body.__name__}: {exc!r}")

    def _cf_produce(self):
        producer = cf_producer(self.broker.bootstrap, linger_ms=0, message_timeout_ms=120_000)
        errors = []
        i = 0
        while not self.stop.is_set():
            value = b"cf-%d" % i

            def done(err, msg, value=value):
                if err is None:
                    self.produced[self.cf_topic].append((msg.offset(), value))
                else:
                    errors.append(str(err))
            producer.produce(self.cf_topic, value=value, partition=0, on_delivery=done)
            producer.poll(0)
            i += 1
            self.stop.wait(0.02)
        assert producer.flush(60) == 0
        assert errors == []

    def _kp_produce(self):
        producer = kp_producer(self.broker.bootstrap, linger_ms=0, request_timeout_ms=120_000)
        i = 0
        while not self.stop.is_set():
            value = b"kp-%d" % i
            meta = producer.send(self.kp_topic, value=value, partition=0).get(timeout=120)
            self.produced[self.kp_topic].append((meta.offset, value))
            i += 1
            self.stop.wait(0.02)
        producer.close(30)

    def _done(self, topic) -> bool:
        producer = "_cf_produce" if topic == self.cf_topic else "_kp_produce"
        return (self.stop.is_set() and not self.threads[producer].is_alive()
                and len(self.consumed[topic]) >= len(self.produced[topic]))

    def _kp_consume(self):
        consumer = KafkaConsumer(bootstrap_servers=self.broker.bootstrap, enable_auto_commit=False,
                                 auto_offset_reset="earliest", consumer_timeout_ms=200)
        consumer.assign([KpTopicPartition(self.cf_topic, 0)])
        consumer.seek_to_beginning()
        try:
            while not self._done(self.cf_topic):
                for r in consumer:
                    self.consumed[self.cf_topic].append((r.offset, r.value))
        finally:
            consumer.close()

    def _cf_consume(self):
        with CfReader(self.broker.bootstrap, self.kp_topic, 0, 0) as reader:
            while not self._done(self.kp_topic):
                if reader.poll_once(0.2) == "record":
                    r = reader.records[-1]
                    self.consumed[self.kp_topic].append((r["offset"], r["value"]))

    def _sample(self):
        while not self.stop.is_set():
            if self.broker.is_running():
                rss = self.broker.rss_bytes()
                self.rss_max = max(self.rss_max, rss)
                self.rss_window = max(self.rss_window, rss)
                self.rss_samples += 1
            self.stop.wait(0.05)

    def check_alive(self):
        assert self.broker.is_running(), f"broker died:\n{self.broker.stderr_tail()}"
        assert self.rss_max < RSS_BOUND_BYTES, f"broker RSS reached {self.rss_max} bytes"

    def finish(self):
        self.stop.set()
        for name in ("_cf_produce", "_kp_produce", "_sample", "_kp_consume", "_cf_consume"):
            self.threads[name].join(120)
        return self


@pytest.fixture(scope="module")
def steady(broker):
    s = Steady(broker)
    wait_until(lambda: all(len(v) >= 5 for v in s.consumed.values()), 60,
               "both steady consumers to read their first records")
    yield s
    s.finish()


@pytest.fixture(autouse=True)
def _alive_after_each(request):
    if "steady" in request.fixturenames:
        request.getfixturevalue("steady").rss_window = 0
    yield
    if "steady" in request.fixturenames:
        s = request.getfixturevalue("steady")
        s.rss_by_test[request.node.name] = s.rss_window
        s.check_alive()


# ============================================================================ connection counts

def test_connections_over_the_per_ip_limit_are_closed_at_once(broker, steady):
    conns = []
    try:
        for a in range(10, 26):
            for _ in range(PER_IP):
                conns.append(RawConn(broker, f"127.0.0.{a}"))
        for c in conns:
            assert kwire.api_versions(c, 3).error_code == 0
        for a in (10, 25):
            with RawConn(broker, f"127.0.0.{a}") as over:
                assert over.expect_closed() == b"", f"connection {PER_IP + 1} from 127.0.0.{a}"
        # max.connections.per.ip.overrides=127.0.0.9:2
        overridden = [RawConn(broker, "127.0.0.9") for _ in range(2)]
        conns += overridden
        for c in overridden:
            assert kwire.api_versions(c, 3).error_code == 0
        with RawConn(broker, "127.0.0.9") as over:
            assert over.expect_closed() == b"", "the third from 127.0.0.9 (override 2)"
    finally:
        for c in conns:
            c.close()

    # Closing frees the slots, once the broker has seen the closes.
    def served_again():
        with RawConn(broker, "127.0.0.10") as c:
            return kwire.api_versions(c, 3).error_code == 0
    wait_until(served_again, 20, "127.0.0.10 to be served again")


# ============================================================================ slowloris

def pool_exhaustions(broker) -> int:
    """How many times the broker has logged that reads wait for request memory."""
    return broker.stderr_path.read_text(errors="replace").count("request memory pool exhausted")


def trickle_until_closed(conns: list, started: float, timeout: float) -> list:
    """Sends one byte on every open connection every 100 ms until the broker closes each;
    returns when each closed, in seconds since `started`."""
    closed_at = [None] * len(conns)
    while None in closed_at:
        assert time.monotonic() - started < timeout, f"still open after {timeout}s: {closed_at}"
        for i, c in enumerate(conns):
            if closed_at[i] is not None:
                continue
            c.sock.settimeout(0.01)
            try:
                data = c.sock.recv(64)
                assert data == b"", f"the broker answered a partial request with {data!r}"
                closed_at[i] = time.monotonic() - started
                continue
            except socket.timeout:
                pass
            except (ConnectionResetError, BrokenPipeError):
                closed_at[i] = time.monotonic() - started
                continue
            try:
                c.sock.send(b"\x00")
            except (ConnectionResetError, BrokenPipeError):
                closed_at[i] = time.monotonic() - started
        time.sleep(0.1)  # the trickle's pace, not a wait for an outcome
    return closed_at


def test_slowloris_is_closed_at_the_read_timeout(broker, steady):
    conns = [RawConn(broker, "127.0.0.3") for _ in range(3)]
    try:
        started = time.monotonic()
        for c in conns:
            c.send_raw(struct.pack(">i", REQUEST_MAX) + b"\x00" * 10)
        closed_at = trickle_until_closed(conns, started, READ_TIMEOUT_S + CLOSE_S)
    finally:
        for c in conns:
            c.close()
    # 24 MiB of the 32 MiB pool: reserved at once, so each closes at its read timeout.
    for t in closed_at:
        assert READ_TIMEOUT_S - 0.1 <= t <= READ_TIMEOUT_S + 5, closed_at


def test_slowloris_holding_the_whole_pool_delays_others_until_its_read_timeout(broker, steady):
    conns = [RawConn(broker, "127.0.0.3") for _ in range(5)]
    answered = {}
    try:
        exhausted_before = pool_exhaustions(broker)
        started = time.monotonic()
        for c in conns:
            c.send_raw(struct.pack(">i", REQUEST_MAX) + b"\x00" * 10)
        # The other client must come after the pool is full, not race the broker's
        # reads of the five sizes: the broker says when reads start to wait.
        wait_until(lambda: pool_exhaustions(broker) > exhausted_before, READ_TIMEOUT_S / 2,
                   "the broker to report its request memory pool exhausted")

        def other_client():
            with RawConn(broker, "127.0.0.11", timeout=30) as c:
                answered["error"] = kwire.api_versions(c, 3).error_code
                answered["after"] = time.monotonic() - started
        other = threading.Thread(target=other_client, daemon=True)
        other.start()
        closed_at = trickle_until_closed(conns, started, 2 * READ_TIMEOUT_S + CLOSE_S)
        other.join(CLOSE_S)
    finally:
        for c in conns:
            c.close()
    # Four fill the pool; the fifth waits for memory and then has its own read timeout.
    first_four, fifth = sorted(closed_at)[:4], max(closed_at)
    assert all(READ_TIMEOUT_S - 0.1 <= t <= READ_TIMEOUT_S + 5 for t in first_four), closed_at
    assert 2 * READ_TIMEOUT_S - 0.2 <= fifth <= 2 * READ_TIMEOUT_S + 5, closed_at
    # The other client's small request waited behind the pool, and no longer than that.
    assert answered.get("error") == 0, answered
    assert READ_TIMEOUT_S - 0.5 <= answered["after"] <= READ_TIMEOUT_S + 5, answered


# ============================================================================ pipelining

def test_large_produces_pipelined_behind_a_waiting_request_are_muted_then_all_answered(broker, steady, topic):
    assert cf_create_topics(broker.bootstrap, [NewTopic(topic, 1, 1)]) == {topic: 0}
    values = [bytes([i]) * (4 * MIB) for i in range(40)]
    frames = [join_group_v0_frame(f"{topic}-group", 1)]
    frames += [produce_v3_frame(topic, kwire.record_batch([(None, v, [])], int(time.time() * 1000)), 2 + i)
               for i, v in enumerate(values)]
    with RawConn(broker, "127.0.0.4", timeout=60) as c:
        sender = threading.Thread(target=lambda: c.send_raw(b"".join(frames)), daemon=True)
        sender.start()
        # The JoinGroup waits out group.initial.rebalance.delay.ms with 160 MiB behind it.
        r = kwire.Reader(c.recv_frame())
        assert r.i32() == 1
        assert r.i16() == kwire.ERR_NONE
        results = [read_produce_v3(c, 2 + i, topic) for i in range(len(values))]
        sender.join(10)
    assert results == [(kwire.ERR_NONE, i) for i in range(len(values))]
    got = cf_read(broker.bootstrap, topic, 0, min_records=len(values), timeout=60)
    assert [(r["offset"], r["value"]) for r in got] == list(enumerate(values))


def test_a_client_that_reads_no_fetch_responses_is_held_to_a_bound_and_closed_when_idle(broker, steady, topic):
    assert cf_create_topics(broker.bootstrap, [NewTopic(topic, 1, 1)]) == {topic: 0}
    res = cf_produce(broker.bootstrap, topic,
                     [rec(bytes([i]) * MIB, partition=0) for i in range(8)], message_max_bytes=5 * MIB)
    assert [(r["offset"], r["error"]) for r in res] == [(i, None) for i in range(8)]
    with RawConn(broker, "127.0.0.5") as c:
        c.send_raw(b"".join(fetch_v4_frame(topic, REQUEST_MAX, 1 + i) for i in range(200)))
        sent = time.monotonic()
        # Nothing is read: the broker's writes stall, it stops processing at 16 MiB of
        # unwritten responses and closes after connections.max.idle.ms without progress.
        wait_until(lambda: c.tcp_state() != TCP_ESTABLISHED, IDLE_S + 20,
                   "the broker to close a client that reads nothing")
        closed_after = time.monotonic() - sent
    assert closed_after >= IDLE_S - 0.5, f"closed after {closed_after:.1f}s, before the idle timeout"


# ============================================================================ bad frames

def test_a_huge_size_prefix_is_closed_without_allocating_it(broker, steady):
    for size in (0x7FFFFFFF, REQUEST_MAX + 1, -1):
        send_expect_close(broker, "127.0.0.6", struct.pack(">i", size) + b"\x00" * 64)
    # Exactly socket.request.max.bytes is read (reserved from the pool); an abandoned one
    # gives its memory back when the client goes.
    with RawConn(broker, "127.0.0.6") as c:
        c.send_raw(struct.pack(">i", REQUEST_MAX) + b"\x00" * MIB)
    with RawConn(broker, "127.0.0.6") as c:
        assert kwire.api_versions(c, 3).error_code == 0


def test_garbage_bytes_are_closed(broker, steady):
    rng = random.Random(11)
    send_expect_close(broker, "127.0.0.7", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    for _ in range(5):
        send_expect_close(broker, "127.0.0.7", rng.randbytes(4096))
    # A valid size prefix around garbage.
    send_expect_close(broker, "127.0.0.7", kwire.frame(b"\xde\xad\xbe\xef" * 64))


def test_truncated_frames_are_closed(broker, steady):
    # The body cut short by the client's close.
    send_expect_close(broker, "127.0.0.8", struct.pack(">i", 1000) + b"\x00\x12\x00\x03" + b"\x00" * 6,
                      shutdown_write=True)
    # Not even a whole size prefix.
    send_expect_close(broker, "127.0.0.8", b"\x00\x00", shutdown_write=True)
    # A whole frame holding part of a header, and one holding a cut Metadata body.
    send_expect_close(broker, "127.0.0.8", kwire.frame(b"\x00\x12\x00"))
    send_expect_close(broker, "127.0.0.8", kwire.frame(
        kwire.request_header(kwire.API_METADATA, 4, 1, "hostile", False) + struct.pack(">i", 5)))


def test_unknown_api_keys_and_versions(broker, steady):
    send_expect_close(broker, "127.0.0.8", kwire.frame(kwire.request_header(9999, 0, 1, "hostile", False)))
    send_expect_close(broker, "127.0.0.8", kwire.frame(
        kwire.request_header(kwire.API_METADATA, 99, 1, "hostile", True) + b"\x01\x00\x00\x00"))
    # KIP-511: ApiVersions at an unknown version is answered with UNSUPPORTED_VERSION,
    # and the connection stays usable.
    with RawConn(broker, "127.0.0.8") as c:
        r = c.request(kwire.API_VERSIONS, 99, kwire.api_versions_body(3), flexible=True)
        assert kwire.decode_api_versions(r, 0).error_code == ERR_UNSUPPORTED_VERSION
        assert kwire.api_versions(c, 3).error_code == 0


# ============================================================================ the steady clients, last

def test_zz_the_steady_clients_were_served_throughout_and_rss_stayed_bounded(broker, steady):
    steady.finish()
    assert steady.failures == []
    for topic, produced in steady.produced.items():
        assert len(produced) >= 20, topic
        prefix = b"cf" if topic == steady.cf_topic else b"kp"
        assert produced == [(i, b"%s-%d" % (prefix, i)) for i in range(len(produced))], topic
        assert steady.consumed[topic] == produced, topic
    assert steady.rss_samples > 20
    print(f"\nbroker RSS max {steady.rss_max / MIB:.1f} MiB over {steady.rss_samples} samples "
          f"(bound {RSS_BOUND_BYTES / MIB:.0f} MiB); highest during each case:")
    for name, rss in steady.rss_by_test.items():
        print(f"  {rss / MIB:6.1f} MiB  {name}" if rss else f"  (no sample, under 50 ms)  {name}")
    assert steady.rss_max < RSS_BOUND_BYTES
