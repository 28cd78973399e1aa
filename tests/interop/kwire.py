"""A tiny, self-contained Kafka wire-protocol client for the raw-socket tests.

Only what the tests need: ApiVersions v0-v3 (+ unsupported versions), Metadata v4 and
Produce v3 with a hand-built v2 record batch. Written from the Kafka protocol spec; no
client library involved, so the bytes on the wire are exactly what the test says.
"""
from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Optional

try:  # fast path; the pinned venv has it (kafka-python's crc32c extra)
    from crc32c import crc32c as _crc32c
except ImportError:  # pragma: no cover - pure Python fallback
    def _crc32c(data: bytes) -> int:
        crc = 0xFFFFFFFF
        for b in data:
            crc ^= b
            for _ in range(8):
                crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        return crc ^ 0xFFFFFFFF

API_PRODUCE = 0
API_FETCH = 1
API_LIST_OFFSETS = 2
API_METADATA = 3
API_VERSIONS = 18
API_CREATE_TOPICS = 19
API_DELETE_TOPICS = 20
API_OFFSET_FOR_LEADER_EPOCH = 23

ERR_NONE = 0
ERR_UNKNOWN_TOPIC_OR_PARTITION = 3
ERR_MESSAGE_TOO_LARGE = 10
ERR_UNSUPPORTED_VERSION = 35


# ---------------------------------------------------------------------------- primitives

def varint(n: int) -> bytes:
    """Zig-zag varint (Kafka record fields)."""
    z = (n << 1) ^ (n >> 63)
    return uvarint(z & 0xFFFFFFFFFFFFFFFF)


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def string(s: Optional[str]) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def compact_string(s: Optional[str]) -> bytes:
    if s is None:
        return uvarint(0)
    b = s.encode()
    return uvarint(len(b) + 1) + b


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"truncated: need {n} bytes at {self.pos}, have {len(self.data) - self.pos}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def i8(self) -> int:
        return struct.unpack(">b", self.take(1))[0]

    def i16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def i32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def i64(self) -> int:
        return struct.unpack(">q", self.take(8))[0]

    def boolean(self) -> bool:
        return self.i8() != 0

    def uvarint(self) -> int:
        shift = result = 0
        while True:
            b = self.take(1)[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise ValueError("uvarint too long")

    def string(self) -> Optional[str]:
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def compact_string(self) -> Optional[str]:
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1).decode()

    def array(self, item):
        n = self.i32()
        return None if n < 0 else [item(self) for _ in range(n)]

    def compact_array(self, item):
        n = self.uvarint()
        return None if n == 0 else [item(self) for _ in range(n - 1)]

    def tagged_fields(self) -> dict:
        tags = {}
        for _ in range(self.uvarint()):
            tag = self.uvarint()
            size = self.uvarint()
            tags[tag] = self.take(size)
        return tags

    def remaining(self) -> int:
        return len(self.data) - self.pos


# ---------------------------------------------------------------------------- framing

def request_header(api_key: int, api_version: int, correlation_id: int, client_id: Optional[str],
                   flexible: bool) -> bytes:
    """Request header v1 (non-flexible) or v2 (flexible: + empty tagged fields)."""
    h = struct.pack(">hhi", api_key, api_version, correlation_id) + string(client_id)
    if flexible:
        h += uvarint(0)
    return h


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


class Conn:
    """A blocking socket with Kafka framing and timeouts."""

    def __init__(self, host: str, port: int, timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        self.next_cid = 1

    @classmethod
    def to(cls, bootstrap: str, timeout: float = 10.0) -> "Conn":
        host, port = bootstrap.rsplit(":", 1)
        return cls(host, int(port), timeout)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError(f"connection closed after {len(buf)}/{n} bytes")
            buf += chunk
        return bytes(buf)

    def recv_frame(self) -> bytes:
        (size,) = struct.unpack(">i", self.recv_exact(4))
        if size < 0 or size > 64 * 1024 * 1024:
            raise ValueError(f"implausible response size {size}")
        return self.recv_exact(size)

    def request(self, api_key: int, api_version: int, body: bytes, flexible: bool,
                client_id: Optional[str] = "rivulet-raw-test") -> Reader:
        """Send one request and return a Reader positioned after the correlation id
        (response header v0). Asserts the correlation id matches."""
        cid = self.next_cid
        self.next_cid += 1
        self.send_raw(frame(request_header(api_key, api_version, cid, client_id, flexible) + body))
        r = Reader(self.recv_frame())
        got = r.i32()
        assert got == cid, f"correlation id mismatch: sent {cid}, got {got}"
        return r

    def wait_closed(self, timeout: float) -> str:
        """Wait until the peer closes the connection. Returns 'eof' or 'reset'; raises
        AssertionError if it is still open after `timeout` (any bytes received are drained)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"broker kept the connection open for {timeout}s")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                return "reset"
            if not chunk:
                return "eof"

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------- ApiVersions

@dataclass
class ApiVersionsResponse:
    error_code: int
    api_keys: dict  # api_key -> (min, max)
    throttle_time_ms: Optional[int] = None
    tagged_fields: dict = field(default_factory=dict)


def api_versions_body(version: int) -> bytes:
    if version >= 3:
        return compact_string("rivulet-raw-test") + compact_string("0.0.1") + uvarint(0)
    return b""


def decode_api_versions(r: Reader, version: int) -> ApiVersionsResponse:
    """Decode an ApiVersions response body of `version` (header already consumed: ApiVersions
    responses always use response header v0)."""
    error = r.i16()
    if version >= 3:
        def entry(x: Reader):
            k, lo, hi = x.i16(), x.i16(), x.i16()
            x.tagged_fields()
            return k, (lo, hi)
        keys = r.compact_array(entry) or []
        throttle = r.i32()
        tags = r.tagged_fields()
    else:
        keys = r.array(lambda x: (x.i16(), (x.i16(), x.i16()))) or []
        throttle = r.i32() if version >= 1 else None
        tags = {}
    if r.remaining():
        raise ValueError(f"{r.remaining()} trailing bytes in ApiVersions v{version} response")
    d = dict(keys)
    assert len(d) == len(keys), f"duplicate api keys in ApiVersions response: {keys}"
    return ApiVersionsResponse(error, d, throttle, tags)


def api_versions(conn: Conn, version: int) -> ApiVersionsResponse:
    r = conn.request(API_VERSIONS, version, api_versions_body(version), flexible=version >= 3)
    return decode_api_versions(r, version)


# ---------------------------------------------------------------------------- Metadata v4

@dataclass
class MetadataV4:
    brokers: list  # [(node_id, host, port, rack)]
    cluster_id: Optional[str]
    controller_id: int
    topics: dict  # name -> {"error": int, "internal": bool, "partitions": {idx: {...}}}


def metadata_v4(conn: Conn, topics: Optional[list], allow_auto_topic_creation: bool) -> MetadataV4:
    if topics is None:
        body = struct.pack(">i", -1)
    else:
        body = struct.pack(">i", len(topics)) + b"".join(string(t) for t in topics)
    body += struct.pack(">b", 1 if allow_auto_topic_creation else 0)
    r = conn.request(API_METADATA, 4, body, flexible=False)
    r.i32()  # throttle
    brokers = r.array(lambda x: (x.i32(), x.string(), x.i32(), x.string()))
    cluster_id = r.string()
    controller = r.i32()

    def partition(x: Reader):
        return {"error": x.i16(), "index": x.i32(), "leader": x.i32(),
                "replicas": x.array(lambda y: y.i32()), "isr": x.array(lambda y: y.i32())}
        # (offline_replicas only exists from v5 on)

    def topic(x: Reader):
        err, name, internal = x.i16(), x.string(), x.boolean()
        parts = x.array(partition) or []
        return name, {"error": err, "internal": internal, "partitions": {p["index"]: p for p in parts}}

    tlist = r.array(topic) or []
    if r.remaining():
        raise ValueError(f"{r.remaining()} trailing bytes in Metadata v4 response")
    return MetadataV4(brokers, cluster_id, controller, dict(tlist))


# ---------------------------------------------------------------------------- Produce v3

def record_batch(records: list, base_timestamp: int) -> bytes:
    """Uncompressed magic-2 record batch. `records` = [(key, value, [(hkey, hval)])]."""
    body = bytearray()
    for i, (key, value, headers) in enumerate(records):
        rb = bytearray()
        rb += b"\x00"  # attributes
        rb += varint(0)  # timestamp delta
        rb += varint(i)  # offset delta
        rb += varint(-1) if key is None else varint(len(key)) + key
        rb += varint(-1) if value is None else varint(len(value)) + value
        rb += varint(len(headers))
        for hk, hv in headers:
            hkb = hk.encode()
            rb += varint(len(hkb)) + hkb
            rb += varint(-1) if hv is None else varint(len(hv)) + hv
        body += varint(len(rb)) + rb
    n = len(records)
    after_crc = (struct.pack(">hiqqqhii", 0, n - 1, base_timestamp, base_timestamp, -1, -1, -1, n)
                 + bytes(body))
    crc = _crc32c(after_crc)
    after_length = struct.pack(">ibI", -1, 2, crc) + after_crc  # leader epoch, magic, crc
    return struct.pack(">qi", 0, len(after_length)) + after_length


def produce_v3(conn: Conn, topic: str, partition: int, batch: bytes, acks: int = -1,
               timeout_ms: int = 10000) -> dict:
    """Produce one batch; returns {"error", "base_offset", "log_append_time"}."""
    body = (string(None) + struct.pack(">hi", acks, timeout_ms)
            + struct.pack(">i", 1) + string(topic)
            + struct.pack(">i", 1) + struct.pack(">i", partition)
            + struct.pack(">i", len(batch)) + batch)
    r = conn.request(API_PRODUCE, 3, body, flexible=False)
    topics = r.array(lambda x: (x.string(), x.array(lambda y: {
        "index": y.i32(), "error": y.i16(), "base_offset": y.i64(), "log_append_time": y.i64()})))
    r.i32()  # throttle
    assert len(topics) == 1 and topics[0][0] == topic, f"unexpected produce response {topics}"
    parts = topics[0][1]
    assert len(parts) == 1 and parts[0]["index"] == partition, f"unexpected produce response {parts}"
    return parts[0]


# ---------------------------------------------------------------------------- OffsetForLeaderEpoch

def offset_for_leader_epoch(conn: Conn, version: int, topics: list, replica_id: int = -1) -> dict:
    """OffsetForLeaderEpoch v2-4. `topics` = [(topic, [(partition, current_leader_epoch,
    leader_epoch)])]. Returns {(topic, partition): (error, leader_epoch, end_offset)}."""
    flexible = version >= 4
    arr = (lambda n: uvarint(n + 1)) if flexible else (lambda n: struct.pack(">i", n))
    name = compact_string if flexible else string
    tags = uvarint(0) if flexible else b""
    body = struct.pack(">i", replica_id) if version >= 3 else b""
    body += arr(len(topics))
    for topic, parts in topics:
        body += name(topic) + arr(len(parts))
        for partition, current, epoch in parts:
            body += struct.pack(">iii", partition, current, epoch) + tags
        body += tags
    body += tags
    r = conn.request(API_OFFSET_FOR_LEADER_EPOCH, version, body, flexible=flexible)
    if flexible:
        r.tagged_fields()  # response header v1
    r.i32()  # throttle
    out = {}
    read_array = r.compact_array if flexible else r.array
    read_name = (lambda: r.compact_string()) if flexible else (lambda: r.string())

    def topic(_):
        t = read_name()

        def partition(x: Reader):
            err, index, epoch, end = x.i16(), x.i32(), x.i32(), x.i64()
            if flexible:
                x.tagged_fields()
            out[(t, index)] = (err, epoch, end)

        (r.compact_array if flexible else r.array)(partition)
        if flexible:
            r.tagged_fields()

    read_array(topic)
    if flexible:
        r.tagged_fields()
    if r.remaining():
        raise ValueError(f"{r.remaining()} trailing bytes in OffsetForLeaderEpoch v{version} response")
    return out


# ---------------------------------------------------------------------------- Fetch v4 / v12 (replica id)

def fetch(conn: Conn, version: int, topic: str, partition: int, fetch_offset: int, replica_id: int = -1,
          current_leader_epoch: int = -1, last_fetched_epoch: int = -1, max_wait_ms: int = 0,
          max_bytes: int = 1 << 20) -> dict:
    """One partition's Fetch, v4 (non-flexible) or v12 (flexible, topic names, replica id in
    the body). Returns {"error", "high_watermark", "last_stable_offset", "log_start_offset",
    "records", "diverging_epoch": (epoch, end_offset) or None, "top_error"}."""
    assert version in (4, 12), version
    flexible = version >= 12
    if not flexible:
        body = (struct.pack(">iiiib", replica_id, max_wait_ms, 1, max_bytes, 0) + struct.pack(">i", 1)
                + string(topic) + struct.pack(">i", 1) + struct.pack(">iqi", partition, fetch_offset, max_bytes))
    else:
        body = (struct.pack(">iiiibii", replica_id, max_wait_ms, 1, max_bytes, 0, 0, -1)
                + uvarint(2) + compact_string(topic) + uvarint(2)
                + struct.pack(">iiqiqi", partition, current_leader_epoch, fetch_offset, last_fetched_epoch, -1,
                              max_bytes) + uvarint(0)
                + uvarint(0)  # topic tags
                + uvarint(1)  # no forgotten topics
                + compact_string("") + uvarint(0))
    r = conn.request(API_FETCH, version, body, flexible=flexible)
    if flexible:
        r.tagged_fields()
    r.i32()  # throttle
    top_error = 0
    if flexible:
        top_error = r.i16()
        r.i32()  # session id
    parts = []

    def partition_data(x: Reader):
        p = {"index": x.i32(), "error": x.i16(), "high_watermark": x.i64(), "last_stable_offset": x.i64(),
             "diverging_epoch": None, "top_error": top_error}
        if flexible:
            p["log_start_offset"] = x.i64()
            x.compact_array(lambda y: (y.i64(), y.i64(), y.tagged_fields()))
            x.i32()  # preferred read replica
            n = x.uvarint()
            p["records"] = b"" if n == 0 else x.take(n - 1)
            tags = x.tagged_fields()
            if 0 in tags:
                d = Reader(tags[0])
                p["diverging_epoch"] = (d.i32(), d.i64())
        else:
            x.array(lambda y: (y.i64(), y.i64()))
            n = x.i32()
            p["records"] = b"" if n < 0 else x.take(n)
        parts.append(p)

    def topic_data(x: Reader):
        name = x.compact_string() if flexible else x.string()
        assert name == topic, name
        (x.compact_array if flexible else x.array)(partition_data)
        if flexible:
            x.tagged_fields()

    (r.compact_array if flexible else r.array)(topic_data)
    if flexible:
        r.tagged_fields()
    assert [p["index"] for p in parts] == [partition], parts
    return parts[0]


def batch_offsets(records: bytes) -> list:
    """(base offset, last offset delta + 1, partition leader epoch) of each batch in `records`."""
    out = []
    pos = 0
    while pos + 12 <= len(records):
        base, length = struct.unpack(">qi", records[pos:pos + 12])
        if pos + 12 + length > len(records):
            break
        epoch, = struct.unpack(">i", records[pos + 12:pos + 16])
        last_delta, = struct.unpack(">i", records[pos + 23:pos + 27])
        out.append((base, last_delta + 1, epoch))
        pos += 12 + length
    return out
