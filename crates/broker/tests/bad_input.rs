//! Bad input on the wire, against a real broker in-process: every malformed,
//! oversized, truncated or unsupported request gets an error answer or a closed
//! connection, never a panic, a hang or unbounded memory, and the next client is
//! served normally.
//!
//! One broker serves every case in turn (starting one costs more than the cases);
//! after each, a fresh connection must get correct ApiVersions and Metadata
//! answers and no thread may have panicked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use broker::clock::SystemClock;
use broker::{BrokerConfig, RunningBroker};
use bytes::{BufMut, Bytes, BytesMut};
use protocol::frame::{decode_response, encode_request};
use protocol::kafka::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    RequestHeader,
};
use protocol::kafka::protocol::{Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a closed connection may take to show EOF, and an answer to arrive.
const WAIT: Duration = Duration::from_secs(5);

/// Panics on the runtimes' worker threads since the tests started: the broker's
/// tasks run there, and a panicking connection task would otherwise go unseen.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // The runtime's threads, where the broker runs; a test's own failed
            // assertion (on the test thread) fails that test already.
            if std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("tokio-runtime-worker"))
            {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
    });
}

struct Harness {
    broker: Option<RunningBroker>,
    address: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Harness {
        count_panics();
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerConfig::from_pairs(vec![
            ("listeners".into(), "PLAINTEXT://127.0.0.1:0".into()),
            (
                "log.dirs".into(),
                dir.path().join("logs").display().to_string(),
            ),
            ("num.partitions".into(), "1".into()),
        ])
        .unwrap();
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

    async fn connect(&self) -> TcpStream {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(self.address))
            .await
            .expect("connect timed out")
            .unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }

    /// A new client is answered correctly, and nothing has panicked.
    async fn assert_healthy(&self, after: &str) {
        assert_eq!(
            PANICS.load(Ordering::SeqCst),
            0,
            "a thread panicked (after {after})"
        );
        let mut stream = self.connect().await;
        let versions = api_versions(&mut stream, 3, 1).await;
        assert_eq!(versions.error_code, 0, "after {after}");
        assert_advertises_core_apis(&versions, after);
        let request = MetadataRequest::default().with_topics(Some(vec![]));
        let frame = round_trip(&mut stream, ApiKey::Metadata, 12, 2, &request).await;
        let (correlation_id, metadata): (i32, MetadataResponse) =
            decode_response(ApiKey::Metadata, 12, frame).unwrap();
        assert_eq!(correlation_id, 2, "after {after}");
        assert_eq!(metadata.brokers.len(), 1, "after {after}: {metadata:?}");
        assert!(metadata.cluster_id.is_some(), "after {after}");
        assert_eq!(
            PANICS.load(Ordering::SeqCst),
            0,
            "a thread panicked (after {after})"
        );
    }

    async fn shutdown(mut self) {
        let broker = self.broker.take().unwrap();
        tokio::time::timeout(Duration::from_secs(15), broker.shutdown())
            .await
            .expect("shutdown hung")
            .unwrap();
    }
}

fn header(key: ApiKey, version: i16, correlation_id: i32) -> RequestHeader {
    header_raw(key as i16, version, correlation_id)
}

fn header_raw(key: i16, version: i16, correlation_id: i32) -> RequestHeader {
    RequestHeader::default()
        .with_request_api_key(key)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("bad-input-test")))
}

/// Writes a request and reads one response frame (without its size prefix).
async fn round_trip<M: Encodable>(
    stream: &mut TcpStream,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &M,
) -> Bytes {
    let frame = encode_request(&header(key, version, correlation_id), body).unwrap();
    stream.write_all(&frame).await.unwrap();
    read_frame(stream)
        .await
        .unwrap_or_else(|| panic!("{key:?} v{version}: connection closed instead of an answer"))
}

/// One response frame, or `None` at EOF.
async fn read_frame(stream: &mut TcpStream) -> Option<Bytes> {
    let read = async {
        let mut size = [0u8; 4];
        if stream.read_exact(&mut size).await.is_err() {
            return None;
        }
        let size = i32::from_be_bytes(size);
        assert!((0..1 << 24).contains(&size), "response size {size}");
        let mut frame = vec![0u8; size as usize];
        stream.read_exact(&mut frame).await.ok()?;
        Some(Bytes::from(frame))
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("no answer and no close within the timeout")
}

async fn api_versions(
    stream: &mut TcpStream,
    version: i16,
    correlation_id: i32,
) -> ApiVersionsResponse {
    let request = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("bad-input-test"))
        .with_client_software_version(StrBytes::from_static_str("1.0"));
    let frame = round_trip(
        stream,
        ApiKey::ApiVersions,
        version,
        correlation_id,
        &request,
    )
    .await;
    let (got, response): (i32, ApiVersionsResponse) =
        decode_response(ApiKey::ApiVersions, version, frame).unwrap();
    assert_eq!(got, correlation_id);
    response
}

fn assert_advertises_core_apis(response: &ApiVersionsResponse, context: &str) {
    let find = |key: ApiKey| {
        response
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| (k.min_version, k.max_version))
            .unwrap_or_else(|| panic!("{context}: {key:?} not advertised in {response:?}"))
    };
    assert_eq!(find(ApiKey::Produce), (0, 13), "{context}");
    find(ApiKey::Fetch);
    find(ApiKey::Metadata);
    find(ApiKey::ApiVersions);
}

/// The broker closes the connection: EOF (or a reset) within the timeout, with
/// no answer before it.
async fn assert_closed(stream: &mut TcpStream, case: &str) {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
        Err(_) => {
            panic!("{case}: the broker neither answered nor closed the connection within {WAIT:?}")
        }
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!(
            "{case}: expected a closed connection, got {n} bytes: {:02x?}",
            &buf[..n]
        ),
    }
}

/// A raw frame: size prefix, then header fields and body bytes as given.
fn raw_frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// A request header (v1: key, version, correlation id, client id) and raw body.
fn frame_with_body(key: i16, version: i16, body: &[u8]) -> Vec<u8> {
    let mut payload = BytesMut::new();
    payload.put_i16(key);
    payload.put_i16(version);
    payload.put_i32(77);
    payload.put_i16(-1);
    payload.extend_from_slice(body);
    raw_frame(&payload)
}

/// A request frame for any version, even one the codec cannot encode: the header
/// as the key's header version for `version` says, then `body` as given.
fn frame_any_version(key: ApiKey, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut payload = BytesMut::new();
    header(key, version, correlation_id)
        .encode(&mut payload, key.request_header_version(version))
        .unwrap();
    payload.extend_from_slice(body);
    raw_frame(&payload)
}

/// Sends `bytes` on a new connection and expects the broker to close it.
async fn send_expect_close(harness: &Harness, case: &str, bytes: &[u8]) {
    let mut stream = harness.connect().await;
    // The broker may close before reading everything: a failed write is fine.
    let _ = stream.write_all(bytes).await;
    assert_closed(&mut stream, case).await;
    harness.assert_healthy(case).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_unsupported_requests_close_only_their_connection() {
    let harness = Harness::start().await;
    harness.assert_healthy("start-up").await;

    send_expect_close(
        &harness,
        "HTTP garbage",
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await;
    send_expect_close(
        &harness,
        "binary garbage",
        &[0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03, 0xff, 0xfe],
    )
    .await;
    send_expect_close(
        &harness,
        "size prefix 0x7fffffff",
        &0x7fff_ffffi32.to_be_bytes(),
    )
    .await;
    send_expect_close(&harness, "negative size", &(-1i32).to_be_bytes()).await;
    send_expect_close(&harness, "size i32::MIN", &i32::MIN.to_be_bytes()).await;
    send_expect_close(&harness, "zero-length frame", &0i32.to_be_bytes()).await;
    send_expect_close(
        &harness,
        "header too short (4 bytes)",
        &raw_frame(&[0, 18, 0, 3]),
    )
    .await;
    send_expect_close(
        &harness,
        "header too short (7 bytes)",
        &raw_frame(&[0, 3, 0, 12, 0, 0, 0]),
    )
    .await;
    send_expect_close(
        &harness,
        "unknown api key 9999",
        &frame_with_body(9999, 0, &[]),
    )
    .await;
    send_expect_close(&harness, "unknown api key -1", &frame_with_body(-1, 0, &[])).await;
    send_expect_close(
        &harness,
        "client id longer than the frame",
        &raw_frame(&[0, 18, 0, 2, 0, 0, 0, 1, 0x7f, 0xff, b'x']),
    )
    .await;

    // A v13-shaped body (empty compact topic array, three booleans, no tags).
    send_expect_close(
        &harness,
        "Metadata v99",
        &frame_any_version(ApiKey::Metadata, 99, 5, &[1, 0, 0, 0]),
    )
    .await;
    send_expect_close(
        &harness,
        "Metadata v-1",
        &frame_with_body(ApiKey::Metadata as i16, -1, &[0, 0, 0, 0]),
    )
    .await;
    // Advertised from v0 as Kafka does (KAFKA-18659), refused below v3.
    send_expect_close(
        &harness,
        "Produce v1",
        &frame_with_body(
            ApiKey::Produce as i16,
            1,
            &[0, 1, 0, 0, 0x75, 0x30, 0, 0, 0, 0],
        ),
    )
    .await;
    // A served API the vendored codec has no v99 type for, and an API it knows that
    // the broker does not serve.
    send_expect_close(
        &harness,
        "Fetch v99",
        &frame_with_body(ApiKey::Fetch as i16, 99, &[]),
    )
    .await;
    send_expect_close(
        &harness,
        "DescribeAcls v1 (not served)",
        &frame_with_body(ApiKey::DescribeAcls as i16, 1, &[0; 16]),
    )
    .await;

    // Array lengths that claim the world: the 6-byte body that once aborted the
    // process (Vec::with_capacity of 0x7fffffff elements), v1 and flexible v12.
    send_expect_close(
        &harness,
        "Metadata topics array of 0x7fffffff",
        &frame_with_body(ApiKey::Metadata as i16, 1, &[0x7f, 0xff, 0xff, 0xff]),
    )
    .await;
    let mut flexible = BytesMut::new();
    flexible.put_i16(ApiKey::Metadata as i16);
    flexible.put_i16(12);
    flexible.put_i32(78);
    flexible.put_i16(-1);
    flexible.put_u8(0); // header tagged fields
    flexible.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // compact array length u32::MAX
    send_expect_close(
        &harness,
        "Metadata v12 compact array of u32::MAX - 1",
        &raw_frame(&flexible),
    )
    .await;
    // A topic name claiming 32767 bytes inside a 1-element array.
    send_expect_close(
        &harness,
        "Metadata string of 0x7fff",
        &frame_with_body(ApiKey::Metadata as i16, 1, &[0, 0, 0, 1, 0x7f, 0xff, b't']),
    )
    .await;
    // Produce records (bytes) claiming 0x7fffffff.
    let mut produce = BytesMut::new();
    produce.put_i16(-1); // transactional id
    produce.put_i16(1); // acks
    produce.put_i32(1000); // timeout
    produce.put_i32(1); // one topic
    produce.put_i16(1);
    produce.put_u8(b't');
    produce.put_i32(1); // one partition
    produce.put_i32(0);
    produce.put_i32(0x7fff_ffff); // records length
    produce.extend_from_slice(&[0; 16]);
    send_expect_close(
        &harness,
        "Produce v3 records of 0x7fffffff bytes",
        &frame_with_body(ApiKey::Produce as i16, 3, &produce),
    )
    .await;

    // A truncated frame, then the client closes its side.
    {
        let mut stream = harness.connect().await;
        let frame = encode_request(
            &header(ApiKey::ApiVersions, 3, 9),
            &ApiVersionsRequest::default(),
        )
        .unwrap();
        stream.write_all(&frame[..frame.len() - 3]).await.unwrap();
        stream.shutdown().await.unwrap();
        assert_closed(&mut stream, "truncated frame then close").await;
        harness.assert_healthy("truncated frame then close").await;
    }
    // A size prefix of 0x7fffffff, then the client closes at once.
    {
        let mut stream = harness.connect().await;
        stream
            .write_all(&0x7fff_ffffi32.to_be_bytes())
            .await
            .unwrap();
        drop(stream);
        harness.assert_healthy("size 0x7fffffff then close").await;
    }
    // A valid request, then garbage on the same connection: the answer comes, then
    // the close.
    {
        let mut stream = harness.connect().await;
        let response = api_versions(&mut stream, 2, 11).await;
        assert_eq!(response.error_code, 0);
        stream
            .write_all(&frame_with_body(4242, 0, &[]))
            .await
            .unwrap();
        assert_closed(&mut stream, "unknown key after a good request").await;
        harness
            .assert_healthy("unknown key after a good request")
            .await;
    }

    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_answers_every_version_and_the_unknown_one() {
    let harness = Harness::start().await;

    // KIP-511: a version newer than the broker's gets a v0 answer with
    // UNSUPPORTED_VERSION and the ApiVersions range, and the connection stays open.
    let mut stream = harness.connect().await;
    // The body a v4 client sends (software name and version, compact, no tags).
    let frame = frame_any_version(
        ApiKey::ApiVersions,
        99,
        31,
        &[5, b'j', b'a', b'v', b'a', 4, b'4', b'.', b'1', 0],
    );
    stream.write_all(&frame).await.unwrap();
    let answer = read_frame(&mut stream)
        .await
        .expect("ApiVersions v99 closed the connection");
    let (correlation_id, response): (i32, ApiVersionsResponse) =
        decode_response(ApiKey::ApiVersions, 0, answer).unwrap();
    assert_eq!(correlation_id, 31);
    assert_eq!(response.error_code, 35, "UNSUPPORTED_VERSION");
    let listed: Vec<(i16, i16, i16)> = response
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect();
    assert_eq!(listed, vec![(18, 0, 4)]);
    // The client retries with a version the broker speaks, on the same connection.
    let response = api_versions(&mut stream, 3, 32).await;
    assert_eq!(response.error_code, 0);
    drop(stream);

    for version in 0..=4 {
        let mut stream = harness.connect().await;
        let response = api_versions(&mut stream, version, 100 + i32::from(version)).await;
        assert_eq!(response.error_code, 0, "v{version}");
        assert_advertises_core_apis(&response, &format!("ApiVersions v{version}"));
    }
    harness.assert_healthy("ApiVersions of every version").await;
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_garbage_connections() {
    let harness = Harness::start().await;
    let address = harness.address;
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..200u32 {
        clients.spawn(async move {
            let mut stream = TcpStream::connect(address).await.unwrap();
            let garbage: Vec<u8> = match i % 4 {
                0 => b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(), // a TLS ClientHello
                1 => (-5i32).to_be_bytes().to_vec(),
                2 => frame_with_body(9999, 0, &[1, 2, 3]),
                _ => frame_with_body(ApiKey::Metadata as i16, 1, &[0x7f, 0xff, 0xff, 0xff]),
            };
            let _ = stream.write_all(&garbage).await;
            let mut buf = [0u8; 16];
            match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
                Err(_) => panic!("connection {i} was neither answered nor closed"),
                Ok(Ok(0)) | Ok(Err(_)) => {}
                Ok(Ok(n)) => panic!("connection {i}: {n} unexpected bytes"),
            }
        });
    }
    while let Some(result) = clients.join_next().await {
        result.unwrap();
    }
    harness
        .assert_healthy("200 concurrent garbage connections")
        .await;
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_does_not_block_others() {
    let harness = Harness::start().await;
    let address = harness.address;
    // Slowloris: announce 1000 bytes, then send one every 50 ms (the trickle's pace).
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
    let slow = tokio::spawn(async move {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.set_nodelay(true).unwrap();
        stream.write_all(&1000i32.to_be_bytes()).await.unwrap();
        started_tx.send(()).unwrap();
        let mut sent = 0;
        while done_rx.try_recv().is_err() {
            if stream.write_all(&[0u8]).await.is_err() {
                return Err(sent);
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Still open, and not answered: the request is still coming in.
        let mut buf = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(10), stream.read(&mut buf)).await {
            Err(_) => Ok(sent),
            Ok(read) => panic!("the slow request ended early: {read:?} after {sent} bytes"),
        }
    });
    started_rx.await.unwrap();
    // Meanwhile other clients are answered promptly, again and again.
    for round in 0..10 {
        let answered = tokio::time::timeout(
            Duration::from_secs(1),
            harness.assert_healthy(&format!("slowloris round {round}")),
        )
        .await;
        assert!(
            answered.is_ok(),
            "round {round}: other clients waited over a second behind the slow one"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done_tx.send(()).unwrap();
    let sent = slow
        .await
        .unwrap()
        .expect("the slow client stayed connected throughout");
    assert!(
        sent > 10,
        "the slow request was still arriving: {sent} bytes"
    );
    harness.shutdown().await;
}
