//! Connection limits and muting, against a real broker in-process: Kafka's
//! connection quotas (`max.connections`, `max.connections.per.ip` with overrides,
//! `max.connection.creation.rate`), a connection muted while it has enough in
//! flight, a request body that does not arrive in time, and a client that reads
//! no responses.
//!
//! Clients connect from distinct loopback addresses (127.0.0.2, ...): all of
//! 127.0.0.0/8 reaches the listener on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use broker::clock::SystemClock;
use broker::{BrokerConfig, RunningBroker};
use bytes::Bytes;
use protocol::frame::{decode_response, encode_request};
use protocol::kafka::messages::join_group_request::JoinGroupRequestProtocol;
use protocol::kafka::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, GroupId, JoinGroupRequest, JoinGroupResponse,
    RequestHeader,
};
use protocol::kafka::protocol::{Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// How long an answer or a close may take to show.
const WAIT: Duration = Duration::from_secs(10);

struct Harness {
    broker: Option<RunningBroker>,
    address: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start(overrides: &[(&str, &str)]) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let mut pairs = vec![
            (
                "listeners".to_string(),
                "PLAINTEXT://127.0.0.1:0".to_string(),
            ),
            (
                "log.dirs".to_string(),
                dir.path().join("logs").display().to_string(),
            ),
        ];
        pairs.extend(
            overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let config = BrokerConfig::from_pairs(pairs).unwrap();
        let broker = RunningBroker::start(config, Arc::new(SystemClock))
            .await
            .unwrap();
        let address = broker.addresses[0];
        Harness {
            broker: Some(broker),
            address,
            _dir: dir,
        }
    }

    /// A connection from `source` (a loopback address).
    async fn connect_from(&self, source: Ipv4Addr) -> TcpStream {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((source, 0))).unwrap();
        let stream = tokio::time::timeout(WAIT, socket.connect(self.address))
            .await
            .expect("connect timed out")
            .unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }

    async fn connect(&self) -> TcpStream {
        self.connect_from(Ipv4Addr::LOCALHOST).await
    }

    async fn shutdown(mut self) {
        let broker = self.broker.take().unwrap();
        tokio::time::timeout(Duration::from_secs(15), broker.shutdown())
            .await
            .expect("shutdown hung")
            .unwrap();
    }
}

fn encode<M: Encodable>(key: ApiKey, version: i16, correlation_id: i32, body: &M) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("limits-test")));
    encode_request(&header, body).unwrap().to_vec()
}

fn api_versions_request(correlation_id: i32) -> Vec<u8> {
    encode(
        ApiKey::ApiVersions,
        3,
        correlation_id,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("limits-test"))
            .with_client_software_version(StrBytes::from_static_str("1.0")),
    )
}

/// One response frame (without its size prefix), or `None` at EOF or reset.
async fn read_frame(stream: &mut TcpStream) -> Option<Bytes> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).await.ok()?;
    let size = i32::from_be_bytes(size);
    assert!((0..1 << 24).contains(&size), "response size {size}");
    let mut frame = vec![0u8; size as usize];
    stream.read_exact(&mut frame).await.ok()?;
    Some(Bytes::from(frame))
}

/// ApiVersions is answered on `stream`, within `WAIT`.
async fn assert_served(stream: &mut TcpStream, case: &str) {
    stream.write_all(&api_versions_request(41)).await.unwrap();
    let frame = tokio::time::timeout(WAIT, read_frame(stream))
        .await
        .unwrap_or_else(|_| panic!("{case}: no answer within {WAIT:?}"))
        .unwrap_or_else(|| panic!("{case}: closed instead of answering"));
    let (correlation_id, response): (i32, ApiVersionsResponse) =
        decode_response(ApiKey::ApiVersions, 3, frame).unwrap();
    assert_eq!((correlation_id, response.error_code), (41, 0), "{case}");
}

/// The broker closes `stream` (EOF or reset) within `WAIT`, sending nothing.
async fn assert_closed(stream: &mut TcpStream, case: &str) {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
        Err(_) => panic!("{case}: still open after {WAIT:?}"),
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("{case}: expected a close, got {n} bytes"),
    }
}

/// Nothing arrives on `stream` for `quiet`: the test of a wait that must happen.
async fn assert_nothing_for(stream: &mut TcpStream, quiet: Duration, case: &str) {
    let mut buf = [0u8; 64];
    if let Ok(read) = tokio::time::timeout(quiet, stream.read(&mut buf)).await {
        panic!("{case}: expected no answer for {quiet:?}, got {read:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_ip_limit_are_closed_at_once_and_other_addresses_served() {
    let harness = Harness::start(&[
        ("max.connections.per.ip", "2"),
        (
            "max.connections.per.ip.overrides",
            "127.0.0.3:0,127.0.0.4:3",
        ),
    ])
    .await;
    let local = Ipv4Addr::LOCALHOST;
    let mut first = harness.connect_from(local).await;
    let mut second = harness.connect_from(local).await;
    assert_served(&mut first, "first from 127.0.0.1").await;
    assert_served(&mut second, "second from 127.0.0.1").await;
    let mut third = harness.connect_from(local).await;
    assert_closed(&mut third, "third from 127.0.0.1").await;

    let other = Ipv4Addr::new(127, 0, 0, 2);
    let mut others = Vec::new();
    for i in 0..2 {
        let mut stream = harness.connect_from(other).await;
        assert_served(&mut stream, &format!("127.0.0.2 #{i}")).await;
        others.push(stream);
    }
    let mut refused = harness.connect_from(Ipv4Addr::new(127, 0, 0, 3)).await;
    assert_closed(&mut refused, "127.0.0.3 (override 0)").await;
    let overridden = Ipv4Addr::new(127, 0, 0, 4);
    for i in 0..3 {
        let mut stream = harness.connect_from(overridden).await;
        assert_served(&mut stream, &format!("127.0.0.4 #{i} (override 3)")).await;
        others.push(stream);
    }
    let mut fourth = harness.connect_from(overridden).await;
    assert_closed(&mut fourth, "127.0.0.4 #3").await;

    // A closed connection frees its address's slot once the broker sees the close.
    drop(first);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut again = harness.connect_from(local).await;
        again.write_all(&api_versions_request(41)).await.unwrap();
        if tokio::time::timeout(WAIT, read_frame(&mut again))
            .await
            .expect("answered or closed")
            .is_some()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "127.0.0.1 never got its slot back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_served(&mut second, "the second, throughout").await;
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_max_connections_a_new_connection_waits_for_a_slot() {
    let harness = Harness::start(&[("max.connections", "2")]).await;
    let mut first = harness.connect().await;
    let mut second = harness.connect().await;
    assert_served(&mut first, "first").await;
    assert_served(&mut second, "second").await;
    // Kafka's acceptor waits with the connection accepted: it stays open, unread.
    let mut third = harness.connect().await;
    third.write_all(&api_versions_request(41)).await.unwrap();
    assert_nothing_for(&mut third, Duration::from_secs(1), "third, two open").await;
    drop(first);
    let frame = tokio::time::timeout(WAIT, read_frame(&mut third))
        .await
        .expect("the third is served once a slot is free")
        .expect("answered, not closed");
    let (correlation_id, _): (i32, ApiVersionsResponse) =
        decode_response(ApiKey::ApiVersions, 3, frame).unwrap();
    assert_eq!(correlation_id, 41);
    assert_served(&mut second, "second, throughout").await;
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_faster_than_the_creation_rate_are_delayed() {
    // Two samples of 1 s: at 2/s the third connection in the first second waits
    // 500 ms, the fourth 500 ms more, the fifth a whole window (see quotas.rs).
    let harness = Harness::start(&[
        ("max.connection.creation.rate", "2"),
        ("quota.window.num", "2"),
    ])
    .await;
    let start = Instant::now();
    let mut streams = Vec::new();
    for i in 0..5 {
        let mut stream = harness.connect().await;
        assert_served(&mut stream, &format!("connection {i}")).await;
        streams.push(stream);
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1900),
        "five connections at 2/s were served in {elapsed:?}"
    );
    harness.shutdown().await;
}

/// A JoinGroup that waits `group.initial.rebalance.delay.ms` for more members.
fn join_group_request() -> Vec<u8> {
    let request = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("muted")))
        .with_session_timeout_ms(30_000)
        .with_member_id(StrBytes::from_static_str(""))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(Bytes::from_static(&[0, 0, 0, 0, 0, 0]))]);
    encode(ApiKey::JoinGroup, 0, 7, &request)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_muted_while_its_requests_wait() {
    let harness = Harness::start(&[("group.initial.rebalance.delay.ms", "3000")]).await;
    let mut client = harness.connect().await;
    client.write_all(&join_group_request()).await.unwrap();
    // 1 MiB frames pipelined behind the waiting JoinGroup: the broker reads 15 of
    // them (16 requests in flight), the socket buffers take a few more, then the
    // client's writes stall. Without muting it read up to 500 of them.
    let mut chunk = (1i32 << 20).to_be_bytes().to_vec();
    chunk.resize(4 + (1 << 20), 0xab);
    let mut written = 0usize;
    loop {
        match tokio::time::timeout(Duration::from_secs(1), client.write_all(&chunk)).await {
            Ok(Ok(())) => written += chunk.len(),
            Ok(Err(e)) => panic!("write failed after {written} bytes: {e}"),
            Err(_) => break,
        }
        assert!(
            written <= 64 << 20,
            "the broker kept reading past {written} bytes"
        );
    }
    assert!(
        written >= 15 << 20,
        "read ahead only {written} bytes: pipelining is gone"
    );
    // The JoinGroup is answered; the garbage behind it then closes the connection.
    let frame = tokio::time::timeout(WAIT, read_frame(&mut client))
        .await
        .expect("JoinGroup answered")
        .expect("answered before the close");
    let (correlation_id, response): (i32, JoinGroupResponse) =
        decode_response(ApiKey::JoinGroup, 0, frame).unwrap();
    assert_eq!((correlation_id, response.error_code), (7, 0));
    assert_closed(&mut client, "garbage after the JoinGroup").await;
    let mut other = harness.connect().await;
    assert_served(&mut other, "a new client").await;
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_trickling_in_is_closed_at_the_read_timeout() {
    let harness = Harness::start(&[("rivulet.socket.request.read.timeout.ms", "1000")]).await;
    let mut slow = harness.connect().await;
    let started = Instant::now();
    slow.write_all(&1000i32.to_be_bytes()).await.unwrap();
    let mut other = harness.connect().await;
    let closed_after = loop {
        assert!(
            started.elapsed() < WAIT,
            "a request trickling in was still open after {WAIT:?}"
        );
        let mut buf = [0u8; 16];
        match tokio::time::timeout(Duration::from_millis(100), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break started.elapsed(),
            Ok(Ok(n)) => panic!("answered a partial request with {n} bytes"),
            Err(_) => {}
        }
        if slow.write_all(&[0]).await.is_err() {
            break started.elapsed();
        }
        assert_served(&mut other, "another client, meanwhile").await;
    };
    assert!(
        closed_after >= Duration::from_millis(900),
        "closed after {closed_after:?}, before the 1 s read timeout"
    );
    assert_served(&mut other, "another client, after").await;
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_no_responses_is_closed_when_idle() {
    let harness = Harness::start(&[("connections.max.idle.ms", "1500")]).await;
    let mut client = harness.connect().await;
    let requests: Vec<u8> = (0..1000).flat_map(api_versions_request).collect();
    let started = Instant::now();
    // ApiVersions answers are ~15 times their requests: the broker's writes stall
    // first, then it mutes the connection, then closes it as idle.
    let closed = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "a client reading nothing was never closed"
        );
        match tokio::time::timeout(Duration::from_secs(1), client.write_all(&requests)).await {
            Ok(Ok(())) | Err(_) => {}
            Ok(Err(_)) => break started.elapsed(),
        }
    };
    assert!(
        closed >= Duration::from_millis(1500),
        "closed after {closed:?}, before connections.max.idle.ms"
    );
    let mut other = harness.connect().await;
    assert_served(&mut other, "a new client").await;
    harness.shutdown().await;
}
