//! A broker served over the in-memory network (`network::transport::MemNetwork`):
//! the same accept loop, connection tasks and handlers as over TCP, with no
//! socket between the client and the broker. This is the seam the deterministic
//! simulation builds on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use broker::clock::SystemClock;
use broker::network::{accept_loop, Connector, Limits, MemNetwork};
use broker::{BrokerConfig, RunningBroker};
use protocol::frame::{decode_response, encode_request};
use protocol::kafka::messages::create_topics_request::CreatableTopic;
use protocol::kafka::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    RequestHeader, TopicName,
};
use protocol::kafka::protocol::{Encodable, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long an answer may take.
const WAIT: Duration = Duration::from_secs(10);

fn encode<M: Encodable>(key: ApiKey, version: i16, correlation_id: i32, body: &M) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("mem-test")));
    encode_request(&header, body).unwrap().to_vec()
}

/// Sends one request and reads its response frame (without the size prefix).
async fn round_trip<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, request: &[u8]) -> Vec<u8> {
    stream.write_all(request).await.unwrap();
    let read = async {
        let mut size = [0u8; 4];
        stream.read_exact(&mut size).await.unwrap();
        let size = i32::from_be_bytes(size);
        assert!((0..1 << 24).contains(&size), "response size {size}");
        let mut frame = vec![0u8; size as usize];
        stream.read_exact(&mut frame).await.unwrap();
        frame
    };
    tokio::time::timeout(WAIT, read).await.expect("no response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_served_over_the_in_memory_network() {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig::from_pairs(vec![
        (
            "listeners".to_string(),
            "PLAINTEXT://127.0.0.1:0".to_string(),
        ),
        (
            "log.dirs".to_string(),
            dir.path().join("logs").display().to_string(),
        ),
    ])
    .unwrap();
    let running = RunningBroker::start(config, Arc::new(SystemClock))
        .await
        .unwrap();
    let network = MemNetwork::new();
    let address: SocketAddr = "10.0.0.1:9092".parse().unwrap();
    let listener = network.bind(address).unwrap();
    let limits = Limits::new(&running.broker.config);
    let serving = tokio::spawn(accept_loop(Arc::clone(&running.broker), listener, limits));

    let mut client = network
        .connector("10.0.0.2".parse().unwrap())
        .connect(address)
        .await
        .unwrap();
    let request = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("mem-test"))
        .with_client_software_version(StrBytes::from_static_str("1.0"));
    let frame = round_trip(&mut client, &encode(ApiKey::ApiVersions, 3, 7, &request)).await;
    let (correlation_id, response): (i32, ApiVersionsResponse) =
        decode_response(ApiKey::ApiVersions, 3, frame.into()).unwrap();
    assert_eq!((correlation_id, response.error_code), (7, 0));
    let keys: Vec<i16> = response.api_keys.iter().map(|k| k.api_key).collect();
    assert!(keys.contains(&(ApiKey::Produce as i16)), "{keys:?}");
    assert!(keys.contains(&(ApiKey::Fetch as i16)), "{keys:?}");

    // A request that goes through the controller and storage, on the same connection.
    let request = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("over-memory")))
            .with_num_partitions(2)
            .with_replication_factor(1)])
        .with_timeout_ms(10_000);
    let frame = round_trip(&mut client, &encode(ApiKey::CreateTopics, 5, 8, &request)).await;
    let (correlation_id, response): (i32, CreateTopicsResponse) =
        decode_response(ApiKey::CreateTopics, 5, frame.into()).unwrap();
    assert_eq!(correlation_id, 8);
    assert_eq!(response.topics.len(), 1);
    let topic = &response.topics[0];
    assert_eq!(
        (topic.name.as_str(), topic.error_code, topic.num_partitions),
        ("over-memory", 0, 2)
    );
    assert!(running
        .broker
        .metadata
        .image()
        .topic("over-memory")
        .is_some());

    tokio::time::timeout(Duration::from_secs(15), running.shutdown())
        .await
        .expect("shutdown hung")
        .unwrap();
    // The in-memory accept loop stops with the broker.
    tokio::time::timeout(WAIT, serving)
        .await
        .expect("accept loop did not stop")
        .unwrap();
}
