//! A producer's pipelined Produce requests on one connection with
//! `flush.messages=1`: the connection appends a Produce while earlier ones wait for
//! their fsync (`network::answers`), and every answer still comes in request
//! order, with the offsets the appends got in that order; requests of other APIs
//! and acks=0 produces in the pipeline keep their places.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use broker::clock::SystemClock;
use broker::{BrokerConfig, RunningBroker};
use bytes::Bytes;
use protocol::frame::{decode_response, encode_request};
use protocol::kafka::messages::create_topics_request::CreatableTopic;
use protocol::kafka::messages::produce_request::{PartitionProduceData, TopicProduceData};
use protocol::kafka::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    ProduceRequest, ProduceResponse, RequestHeader, TopicName,
};
use protocol::kafka::protocol::{Encodable, StrBytes};
use protocol::records::builder::{BatchBuilder, NewRecord};
use protocol::records::compression::Compression;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(20);
const PRODUCE_VERSION: i16 = 9;
const PARTITIONS: i32 = 3;
const RECORDS_PER_BATCH: i64 = 2;

fn encode<M: Encodable>(key: ApiKey, version: i16, correlation_id: i32, body: &M) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("pipeline-test")));
    encode_request(&header, body).unwrap().to_vec()
}

fn batch(tag: i64) -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None);
    for i in 0..RECORDS_PER_BATCH {
        let value = format!("{tag}-{i}");
        builder.append(&NewRecord {
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(value.as_bytes()),
            headers: &[],
        });
    }
    Bytes::from(builder.build().unwrap())
}

/// A produce of one batch to each of `partitions` of topic `t`.
fn produce(acks: i16, partitions: &[i32], tag: i64) -> ProduceRequest {
    let data = partitions
        .iter()
        .map(|&p| {
            PartitionProduceData::default()
                .with_index(p)
                .with_records(Some(batch(tag)))
        })
        .collect();
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_data(data)])
}

async fn read_frame(stream: &mut TcpStream) -> Bytes {
    let read = async {
        let mut size = [0u8; 4];
        stream.read_exact(&mut size).await.unwrap();
        let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
        stream.read_exact(&mut frame).await.unwrap();
        Bytes::from(frame)
    };
    tokio::time::timeout(WAIT, read).await.expect("no answer")
}

async fn start(dir: &tempfile::TempDir) -> RunningBroker {
    let pairs = vec![
        ("listeners", "PLAINTEXT://127.0.0.1:0".to_string()),
        ("log.dirs", dir.path().join("logs").display().to_string()),
        ("log.flush.interval.messages", "1".to_string()),
    ];
    let config =
        BrokerConfig::from_pairs(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            .unwrap();
    RunningBroker::start(config, Arc::new(SystemClock))
        .await
        .unwrap()
}

/// What one request in the pipeline expects back.
enum Expect {
    /// Produce: each partition's error code and base offset.
    Produce(Vec<(i32, i16, i64)>),
    ApiVersions,
    Nothing,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_produces_are_appended_and_answered_in_request_order() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(&dir).await;
    let mut stream = TcpStream::connect(running.addresses[0]).await.unwrap();
    stream.set_nodelay(true).unwrap();

    let create = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_num_partitions(PARTITIONS)
            .with_replication_factor(1)]);
    stream
        .write_all(&encode(ApiKey::CreateTopics, 5, 1, &create))
        .await
        .unwrap();
    let (_, created): (i32, CreateTopicsResponse) =
        decode_response(ApiKey::CreateTopics, 5, read_frame(&mut stream).await).unwrap();
    assert_eq!(created.topics[0].error_code, 0);

    // Thirty requests written at once: produces to every partition, with an
    // ApiVersions, an acks=0 produce and a produce naming a partition that does
    // not exist among them.
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    let mut next_offset = [0i64; PARTITIONS as usize];
    let all: Vec<i32> = (0..PARTITIONS).collect();
    for id in 100..130 {
        let (request, expect) = match id {
            110 => {
                let request = ApiVersionsRequest::default()
                    .with_client_software_name(StrBytes::from_static_str("pipeline-test"))
                    .with_client_software_version(StrBytes::from_static_str("1.0"));
                (
                    encode(ApiKey::ApiVersions, 3, id, &request),
                    Expect::ApiVersions,
                )
            }
            115 => {
                next_offset[1] += RECORDS_PER_BATCH;
                let request = produce(0, &[1], i64::from(id));
                (
                    encode(ApiKey::Produce, PRODUCE_VERSION, id, &request),
                    Expect::Nothing,
                )
            }
            120 => {
                let offset = next_offset[0];
                next_offset[0] += RECORDS_PER_BATCH;
                let request = produce(-1, &[0, 7], i64::from(id));
                let expect = Expect::Produce(vec![(0, 0, offset), (7, 3, -1)]);
                (
                    encode(ApiKey::Produce, PRODUCE_VERSION, id, &request),
                    expect,
                )
            }
            _ => {
                let mut partitions = Vec::new();
                for &p in &all {
                    partitions.push((p, 0, next_offset[p as usize]));
                    next_offset[p as usize] += RECORDS_PER_BATCH;
                }
                let request = produce(-1, &all, i64::from(id));
                let expect = Expect::Produce(partitions);
                (
                    encode(ApiKey::Produce, PRODUCE_VERSION, id, &request),
                    expect,
                )
            }
        };
        wire.extend_from_slice(&request);
        expected.push((id, expect));
    }
    stream.write_all(&wire).await.unwrap();

    for (id, expect) in expected {
        let (key, version) = match expect {
            Expect::Nothing => continue,
            Expect::ApiVersions => (ApiKey::ApiVersions, 3),
            Expect::Produce(_) => (ApiKey::Produce, PRODUCE_VERSION),
        };
        let frame = read_frame(&mut stream).await;
        let correlation_id = i32::from_be_bytes(frame[..4].try_into().unwrap());
        assert_eq!(correlation_id, id, "answers out of request order");
        match expect {
            Expect::ApiVersions => {
                let (_, response): (i32, ApiVersionsResponse) =
                    decode_response(key, version, frame).unwrap();
                assert_eq!(response.error_code, 0);
            }
            Expect::Produce(partitions) => {
                let (_, response): (i32, ProduceResponse) =
                    decode_response(key, version, frame).unwrap();
                assert_eq!(response.responses.len(), 1);
                let got: Vec<(i32, i16, i64)> = response.responses[0]
                    .partition_responses
                    .iter()
                    .map(|p| (p.index, p.error_code, p.base_offset))
                    .collect();
                assert_eq!(got, partitions, "request {id}");
            }
            Expect::Nothing => unreachable!(),
        }
    }
    // The acks=0 produce was appended in its place: the next produce to its
    // partition follows it.
    let request = produce(-1, &[1], 0);
    stream
        .write_all(&encode(ApiKey::Produce, PRODUCE_VERSION, 200, &request))
        .await
        .unwrap();
    let (id, response): (i32, ProduceResponse) = decode_response(
        ApiKey::Produce,
        PRODUCE_VERSION,
        read_frame(&mut stream).await,
    )
    .unwrap();
    assert_eq!(id, 200);
    let answer = &response.responses[0].partition_responses[0];
    assert_eq!((answer.error_code, answer.base_offset), (0, next_offset[1]));

    tokio::time::timeout(WAIT, running.shutdown())
        .await
        .expect("shutdown hung")
        .unwrap();
}
