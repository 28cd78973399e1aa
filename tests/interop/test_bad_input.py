"""Raw-socket robustness and ApiVersions tests (no client library: kwire encodes the bytes).

After every bad input the broker must still be alive and serve a fresh client normally.
"""
from __future__ import annotations

import socket
import struct
import time

import pytest

import kwire
from kclients import NewTopic, cf_create_topics, cf_produce, kp_read, rec

REQUIRED_APIS = {kwire.API_PRODUCE, kwire.API_FETCH, kwire.API_LIST_OFFSETS, kwire.API_METADATA,
                 kwire.API_VERSIONS, kwire.API_CREATE_TOPICS, kwire.API_DELETE_TOPICS}
CLOSE_TIMEOUT_S = 10.0
_health_counter = iter(range(10**6))


def assert_healthy(broker):
    """The broker process is alive and a fresh client can create/produce/consume."""
    assert broker.is_running(), f"broker died:\n{broker.stderr_tail()}"
    with kwire.Conn.to(broker.bootstrap) as c:
        assert kwire.api_versions(c, 3).error_code == 0
    topic = f"health-{next(_health_counter)}"
    assert cf_create_topics(broker.bootstrap, [NewTopic(topic, 1, 1)]) == {topic: 0}
    res = cf_produce(broker.bootstrap, topic, [rec(b"alive-%d" % i, partition=0) for i in range(3)])
    assert [(r["offset"], r["error"]) for r in res] == [(0, None), (1, None), (2, None)]
    assert [(r["offset"], r["value"]) for r in kp_read(broker.bootstrap, topic, 0)] == \
        [(0, b"alive-0"), (1, b"alive-1"), (2, b"alive-2")]


def send_and_expect_close(broker, payload: bytes):
    """Send `payload` on a fresh connection; the broker must close it without answering."""
    with kwire.Conn.to(broker.bootstrap) as c:
        try:
            c.send_raw(payload)
        except (BrokenPipeError, ConnectionResetError):
            return  # already closed by the broker: fine
        received = bytearray()
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"broker kept the connection open {CLOSE_TIMEOUT_S}s after bad input "
                                     f"{payload[:32]!r}...; received {bytes(received[:64])!r}")
            c.sock.settimeout(left)
            try:
                chunk = c.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        assert bytes(received) == b"", f"broker answered bad input with {bytes(received[:64])!r}"


# ------------------------------------------------------------------------------ ApiVersions

def test_api_versions_v0_to_v3_round_trip_and_agree(broker):
    seen = {}
    with kwire.Conn.to(broker.bootstrap) as c:
        for v in range(4):
            resp = kwire.api_versions(c, v)
            assert resp.error_code == 0, v
            if v >= 1:
                assert resp.throttle_time_ms == 0, v
            seen[v] = resp.api_keys
    assert seen[0] == seen[1] == seen[2] == seen[3]
    keys = seen[3]
    assert REQUIRED_APIS <= set(keys), sorted(keys)
    for k, (lo, hi) in keys.items():
        assert 0 <= lo <= hi, (k, lo, hi)
    lo, hi = keys[kwire.API_VERSIONS]
    assert lo == 0 and hi >= 3, (lo, hi)


def test_api_versions_without_client_id_is_answered(broker):
    with kwire.Conn.to(broker.bootstrap) as c:
        r = c.request(kwire.API_VERSIONS, 0, b"", flexible=False, client_id=None)
        assert kwire.decode_api_versions(r, 0).error_code == 0


def test_api_versions_unsupported_version_gets_v0_response_with_error_35(broker):
    with kwire.Conn.to(broker.bootstrap) as c:
        # A client newer than the broker: ApiVersions v99, flexible header + v3-style body.
        r = c.request(kwire.API_VERSIONS, 99, kwire.api_versions_body(3), flexible=True)
        resp = kwire.decode_api_versions(r, 0)  # must be exactly the v0 layout
        assert resp.error_code == kwire.ERR_UNSUPPORTED_VERSION
        # KIP-511: the error response lists (at least) ApiVersions' own supported range, so the
        # client can retry with a version the broker speaks. Apache Kafka lists only that key.
        assert kwire.API_VERSIONS in resp.api_keys, resp.api_keys
        lo, hi = resp.api_keys[kwire.API_VERSIONS]
        assert lo == 0 and hi >= 3, (lo, hi)
        # the connection stays usable: clients retry with a supported version on it
        assert kwire.api_versions(c, 3).error_code == 0
    assert_healthy(broker)


def test_pipelined_requests_are_answered_in_order(broker):
    with kwire.Conn.to(broker.bootstrap) as c:
        frames = b"".join(
            kwire.frame(kwire.request_header(kwire.API_VERSIONS, v, 100 + i, "pipe", v >= 3)
                        + kwire.api_versions_body(v))
            for i, v in enumerate([3, 0, 2, 1, 3]))
        c.send_raw(frames)
        for i, v in enumerate([3, 0, 2, 1, 3]):
            r = kwire.Reader(c.recv_frame())
            assert r.i32() == 100 + i
            assert kwire.decode_api_versions(r, v).error_code == 0


def test_request_dribbled_one_byte_at_a_time_is_answered(broker):
    with kwire.Conn.to(broker.bootstrap) as c:
        data = kwire.frame(kwire.request_header(kwire.API_VERSIONS, 3, 7, "slow", True) + kwire.api_versions_body(3))
        for i in range(len(data)):
            c.send_raw(data[i:i + 1])
            time.sleep(0.002)
        r = kwire.Reader(c.recv_frame())
        assert r.i32() == 7
        assert kwire.decode_api_versions(r, 3).error_code == 0


# ------------------------------------------------------------------------------ bad frames

BAD_INPUTS = {
    "http-request": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "huge-length-0x7fffffff": struct.pack(">i", 0x7FFFFFFF) + b"\x00" * 64,
    "negative-length-minus-1": struct.pack(">i", -1) + b"\x00" * 16,
    "negative-length-int-min": struct.pack(">i", -(2 ** 31)) + b"\x00" * 16,
    "zero-length-frame": struct.pack(">i", 0),
    "garbage-header-api-key-minus-1": kwire.frame(b"\xff\xff\xff\xff\xde\xad\xbe\xef\x00\x00"),
    "unknown-api-key-9999": kwire.frame(kwire.request_header(9999, 0, 1, "x", False)),
    "unknown-api-key-9999-with-body": kwire.frame(kwire.request_header(9999, 3, 1, "x", False) + b"\x01" * 40),
    "metadata-with-truncated-body": kwire.frame(kwire.request_header(kwire.API_METADATA, 4, 1, "x", False)
                                                + struct.pack(">i", 5)),
    "produce-with-garbage-body": kwire.frame(kwire.request_header(kwire.API_PRODUCE, 3, 1, "x", False)
                                             + b"\xff" * 64),
    "header-shorter-than-fixed-fields": kwire.frame(b"\x00\x12\x00"),
    "client-id-length-past-frame-end": kwire.frame(struct.pack(">hhih", kwire.API_VERSIONS, 0, 1, 500) + b"ab"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_frame_closes_connection_and_broker_stays_healthy(broker, name):
    rss_before = broker.rss_bytes()
    send_and_expect_close(broker, BAD_INPUTS[name])
    # a 2 GiB length prefix must not make the broker allocate it
    assert broker.rss_bytes() - rss_before < 256 * 1024 * 1024
    assert_healthy(broker)


def test_truncated_frame_then_client_close_leaves_broker_healthy(broker):
    with kwire.Conn.to(broker.bootstrap) as c:
        c.send_raw(struct.pack(">i", 100) + b"\x00\x12\x00\x03\x00\x00\x00\x01" + b"\x00\x00")
    with kwire.Conn.to(broker.bootstrap) as c:
        c.send_raw(struct.pack(">i", 1_000_000) + b"\x00" * 1000)  # large frame, abandoned midway
    with kwire.Conn.to(broker.bootstrap) as c:
        c.send_raw(b"\x00\x00")  # not even a full length prefix
    assert_healthy(broker)


def test_many_connections_opened_and_dropped_leave_broker_healthy(broker):
    for _ in range(200):
        s = socket.create_connection(("127.0.0.1", broker.port), timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
        s.close()
    assert_healthy(broker)


def test_bad_input_on_one_connection_does_not_affect_another(broker):
    with kwire.Conn.to(broker.bootstrap) as good:
        assert kwire.api_versions(good, 3).error_code == 0
        send_and_expect_close(broker, BAD_INPUTS["unknown-api-key-9999"])
        assert kwire.api_versions(good, 3).error_code == 0
