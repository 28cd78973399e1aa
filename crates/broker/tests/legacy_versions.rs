//! The request versions Kafka 4 removed (KIP-896), against a real broker in-process:
//! served with `legacy.api.versions.enable` (the default), refused as Kafka 4 does
//! without it. Requests and answers are encoded with Kafka 3.9's codec
//! (`legacy_messages`); the message sets are kafka-python's bytes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use broker::clock::SystemClock;
use broker::{BrokerConfig, RunningBroker};
use bytes::Bytes;
use protocol::frame::{decode_response, encode_request};
use protocol::kafka::legacy_messages as old;
use protocol::kafka::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, TopicName,
};
use protocol::kafka::protocol::{Decodable, Encodable, StrBytes};
use protocol::records::message_set;
use protocol::records::{Compression, DecompressionBudget};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

/// kafka-python 3.0.12, magic 0: (k0, v0), (null, v1).
const MAGIC0: &str = "0000000000000000000000128697724c0000000000026b300000000276300000000000000001000000104c9f5bc20000ffffffff000000027631";
/// kafka-python 3.0.12, magic 1, gzip: (k0, v0) at 1700000000000, (k1, null) at ...001.
const GZIP1: &str = "000000000000000000000055d146dfdb01010000000000000000ffffffff0000003f1f8b0800767b116b02ff63608003a99255810e8c400663f7f9a7192011a66c031059660055019294d03e2efb19ae8a11accaf03f1000008a750f1b4a000000";

fn hex(s: &str) -> Bytes {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect::<Vec<u8>>()
        .into()
}

fn name(s: &str) -> TopicName {
    StrBytes::from_string(s.to_string()).into()
}

struct Client {
    stream: TcpStream,
    next_id: i32,
}

impl Client {
    async fn connect(address: SocketAddr) -> Client {
        let stream = TcpStream::connect(address).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Client { stream, next_id: 1 }
    }

    async fn send<M: Encodable>(&mut self, key: ApiKey, version: i16, body: &M) -> i32 {
        let id = self.next_id;
        self.next_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(StrBytes::from_static_str("legacy-test")));
        let frame = encode_request(&header, body).unwrap();
        self.stream.write_all(&frame).await.unwrap();
        id
    }

    async fn read(&mut self) -> Option<Bytes> {
        let read = async {
            let mut size = [0u8; 4];
            self.stream.read_exact(&mut size).await.ok()?;
            let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
            self.stream.read_exact(&mut frame).await.ok()?;
            Some(Bytes::from(frame))
        };
        tokio::time::timeout(WAIT, read)
            .await
            .expect("no answer and no close")
    }

    async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &Req,
    ) -> Resp {
        let id = self.send(key, version, body).await;
        let frame = self
            .read()
            .await
            .unwrap_or_else(|| panic!("{key:?} v{version}: connection closed"));
        let (got, response) = decode_response(key, version, frame).unwrap();
        assert_eq!(got, id);
        response
    }
}

async fn start(legacy: Option<bool>) -> (RunningBroker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut pairs = vec![
        (
            "listeners".to_string(),
            "PLAINTEXT://127.0.0.1:0".to_string(),
        ),
        (
            "log.dirs".into(),
            dir.path().join("logs").display().to_string(),
        ),
        ("num.partitions".into(), "1".into()),
    ];
    if let Some(legacy) = legacy {
        pairs.push(("legacy.api.versions.enable".into(), legacy.to_string()));
    }
    let config = BrokerConfig::from_pairs(pairs).unwrap();
    let broker = RunningBroker::start(config, Arc::new(SystemClock))
        .await
        .unwrap();
    (broker, dir)
}

async fn floors(client: &mut Client) -> Vec<(i16, i16)> {
    let request = ApiVersionsRequest::default();
    let response: ApiVersionsResponse = client.call(ApiKey::ApiVersions, 0, &request).await;
    response
        .api_keys
        .iter()
        .filter(|k| [0, 1, 2, 8, 9, 19, 20, 27, 32, 35].contains(&k.api_key))
        .map(|k| (k.api_key, k.min_version))
        .collect()
}

/// Creates `topic` with CreateTopics of `version`.
async fn create_topic(c: &mut Client, version: i16, topic: &str, partitions: i32) {
    let created: old::CreateTopicsResponse = c
        .call(
            ApiKey::CreateTopics,
            version,
            &old::CreateTopicsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![old::create_topics_request::CreatableTopic::default()
                    .with_name(name(topic))
                    .with_num_partitions(partitions)
                    .with_replication_factor(1)]),
        )
        .await;
    assert_eq!(created.topics[0].error_code, 0);
}

fn produce(topic: &str, set: Bytes) -> old::ProduceRequest {
    use old::produce_request::{PartitionProduceData, TopicProduceData};
    old::ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(set))])])
}

fn fetch(topic: &str, offset: i64, max_bytes: i32) -> old::FetchRequest {
    use old::fetch_request::{FetchPartition, FetchTopic};
    old::FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(max_bytes)])])
}

fn produced(response: &old::ProduceResponse) -> (i16, i64) {
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_clients_produce_and_fetch_message_sets() {
    let (broker, _dir) = start(None).await;
    let mut c = Client::connect(broker.addresses[0]).await;
    assert_eq!(
        floors(&mut c).await,
        vec![
            (0, 0),
            (1, 0),
            (2, 0),
            (8, 0),
            (9, 0),
            (19, 0),
            (20, 0),
            (27, 0),
            (32, 0),
            (35, 0)
        ]
    );
    let topic = "legacy";
    create_topic(&mut c, 0, topic, 1).await;

    // Produce v0 (magic 0), v2 (magic 1, gzip): four records at offsets 0-3.
    let r: old::ProduceResponse = c
        .call(ApiKey::Produce, 0, &produce(topic, hex(MAGIC0)))
        .await;
    assert_eq!(produced(&r), (0, 0));
    let r: old::ProduceResponse = c
        .call(ApiKey::Produce, 2, &produce(topic, hex(GZIP1)))
        .await;
    assert_eq!(produced(&r), (0, 2));

    // Fetch v0 gets magic 0, v3 magic 1, each message at its offset.
    let expected = [
        (0, -1, Some(&b"k0"[..]), Some(&b"v0"[..])),
        (1, -1, None, Some(&b"v1"[..])),
        (2, 1_700_000_000_000, Some(&b"k0"[..]), Some(&b"v0"[..])),
        (3, 1_700_000_000_001, Some(&b"k1"[..]), None),
    ];
    for (version, magic) in [(0, 0), (1, 0), (2, 1), (3, 1)] {
        let r: old::FetchResponse = c
            .call(ApiKey::Fetch, version, &fetch(topic, 0, 1 << 20))
            .await;
        let p = &r.responses[0].partitions[0];
        assert_eq!((p.error_code, p.high_watermark), (0, 4), "Fetch v{version}");
        let set = p.records.clone().unwrap();
        let (messages, _) =
            message_set::messages(&set, &mut DecompressionBudget::new(1 << 20)).unwrap();
        let got: Vec<_> = messages
            .iter()
            .map(|m| {
                assert_eq!(m.magic, magic, "Fetch v{version}");
                (m.offset, m.timestamp, m.key.as_deref(), m.value.as_deref())
            })
            .collect();
        let want: Vec<_> = expected
            .iter()
            .map(|&(o, t, k, v)| (o, if magic == 0 { -1 } else { t }, k, v))
            .collect();
        assert_eq!(got, want, "Fetch v{version}");
    }
    // A partition max of one byte still gets one whole message.
    let r: old::FetchResponse = c.call(ApiKey::Fetch, 2, &fetch(topic, 1, 1)).await;
    let set = r.responses[0].partitions[0].records.clone().unwrap();
    let (messages, _) =
        message_set::messages(&set, &mut DecompressionBudget::new(1 << 20)).unwrap();
    assert_eq!(
        messages.iter().map(|m| m.offset).collect::<Vec<_>>(),
        vec![1]
    );

    // ListOffsets v0: the offsets as a list.
    use old::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    for (timestamp, max, want) in [(-1, 1, vec![4]), (-2, 1, vec![0]), (-1, 0, vec![])] {
        let request = old::ListOffsetsRequest::default()
            .with_replica_id((-1).into())
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(timestamp)
                    .with_max_num_offsets(max)])]);
        let r: old::ListOffsetsResponse = c.call(ApiKey::ListOffsets, 0, &request).await;
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, &p.old_style_offsets),
            (0, &want),
            "ts {timestamp}"
        );
    }

    // Garbage and lying sizes in a message set: CORRUPT_MESSAGE, and the
    // connection serves on.
    let mut corrupt = hex(MAGIC0).to_vec();
    corrupt[25] ^= 1;
    let mut huge = hex(MAGIC0).to_vec();
    huge[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
    for (case, set) in [("crc", corrupt), ("size", huge), ("garbage", vec![0u8; 40])] {
        let r: old::ProduceResponse = c
            .call(ApiKey::Produce, 1, &produce(topic, set.into()))
            .await;
        assert_eq!(produced(&r), (2, -1), "{case}");
    }
    let r: old::FetchResponse = c.call(ApiKey::Fetch, 0, &fetch(topic, 4, 1 << 20)).await;
    assert_eq!(r.responses[0].partitions[0].high_watermark, 4);
    broker.shutdown().await.unwrap();
}

/// A message set of one lz4 wrapper (magic 1) around one message whose value is
/// `value_len` zero bytes: a few KiB that decompress to `value_len` + 34.
fn lz4_wrapper(value_len: usize) -> Bytes {
    let mut inner = Vec::new();
    message_set::write_message(
        &mut inner,
        1,
        0,
        0,
        false,
        None,
        Some(&vec![0u8; value_len]),
    );
    let compressed = protocol::records::compression::compress(Compression::Lz4, &inner).unwrap();
    let mut body = vec![1u8, 3];
    body.extend_from_slice(&0i64.to_be_bytes());
    body.extend_from_slice(&(-1i32).to_be_bytes());
    body.extend_from_slice(&(compressed.len() as i32).to_be_bytes());
    body.extend_from_slice(&compressed);
    let mut crc = flate2::Crc::new();
    crc.update(&body);
    let mut set = Vec::new();
    set.extend_from_slice(&0i64.to_be_bytes());
    set.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    set.extend_from_slice(&crc.sum().to_be_bytes());
    set.extend_from_slice(&body);
    set.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_decompression_budget_covers_a_whole_legacy_request() {
    let (broker, _dir) = start(None).await;
    let mut c = Client::connect(broker.addresses[0]).await;
    let topic = "bounded";
    create_topic(&mut c, 0, topic, 1).await;
    // 80 partitions' worth (one partition named 80 times) of 1 MiB each once
    // decompressed, in a request of under 400 KiB: each alone is far under the
    // 64 MiB bound, together they are 80 MiB.
    use old::produce_request::{PartitionProduceData, TopicProduceData};
    let set = lz4_wrapper(1 << 20);
    assert!(set.len() < 5000, "{}", set.len());
    let request = old::ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(
                (0..80)
                    .map(|_| {
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(set.clone()))
                    })
                    .collect(),
            )]);
    let r: old::ProduceResponse = c.call(ApiKey::Produce, 2, &request).await;
    let codes: Vec<i16> = r.responses[0]
        .partition_responses
        .iter()
        .map(|p| p.error_code)
        .collect();
    // 63 x (1 MiB + 34) fit in 64 MiB; the 64th goes past it and is
    // MESSAGE_TOO_LARGE (10), as is every one after it.
    let mut want = vec![0i16; 63];
    want.extend([10i16; 17]);
    assert_eq!(codes, want);
    // A fetch v2 of all 63 records: down-conversion shares one 64 MiB budget for
    // the response too (each record costs its decompressed batch and its
    // message, 2 MiB), so the answer stops at 31 messages rather than 63 MiB.
    let r: old::FetchResponse = c.call(ApiKey::Fetch, 2, &fetch(topic, 0, i32::MAX)).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (0, 63));
    let fetched = p.records.clone().unwrap();
    let (messages, _) = message_set::messages(&fetched, &mut DecompressionBudget::new(0)).unwrap();
    assert_eq!(
        messages.iter().map(|m| m.offset).collect::<Vec<_>>(),
        (0..31).collect::<Vec<i64>>()
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_admin_and_offset_versions_are_answered() {
    let (broker, _dir) = start(Some(true)).await;
    let mut c = Client::connect(broker.addresses[0]).await;
    let topic = "admin";
    create_topic(&mut c, 1, topic, 2).await;

    // DescribeConfigs v0: is_default marks Kafka's defaults.
    use old::describe_configs_request::DescribeConfigsResource;
    let request = old::DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("admin"))
            .with_configuration_keys(Some(vec![StrBytes::from_static_str("retention.ms")])),
    ]);
    let r: old::DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, 0, &request).await;
    let config = &r.results[0].configs[0];
    assert_eq!(
        (
            r.results[0].error_code,
            config.name.as_str(),
            config.value.as_deref(),
            config.is_default
        ),
        (0, "retention.ms", Some("604800000"), true)
    );

    // OffsetCommit v0 and v1 (simple commits), read back with OffsetFetch v0.
    use old::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    for (version, partition, offset) in [(0, 0, 7), (1, 1, 9)] {
        let request = old::OffsetCommitRequest::default()
            .with_group_id(StrBytes::from_static_str("old-group").into())
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(partition)
                    .with_committed_offset(offset)
                    .with_commit_timestamp(-1)
                    .with_committed_metadata(Some(StrBytes::from_static_str("m")))])]);
        let r: old::OffsetCommitResponse = c.call(ApiKey::OffsetCommit, version, &request).await;
        assert_eq!(
            r.topics[0].partitions[0].error_code, 0,
            "OffsetCommit v{version}"
        );
    }
    let request = old::OffsetFetchRequest::default()
        .with_group_id(StrBytes::from_static_str("old-group").into())
        .with_topics(Some(vec![
            old::offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(name(topic))
                .with_partition_indexes(vec![0, 1]),
        ]));
    let r: old::OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 0, &request).await;
    let got: Vec<(i32, i64, i16)> = r.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset, p.error_code))
        .collect();
    assert_eq!(got, vec![(0, 7, 0), (1, 9, 0)]);

    // DescribeLogDirs v0, DeleteTopics v0.
    let r: old::DescribeLogDirsResponse = c
        .call(
            ApiKey::DescribeLogDirs,
            0,
            &old::DescribeLogDirsRequest::default().with_topics(None),
        )
        .await;
    assert_eq!(r.results.len(), 1);
    assert_eq!(r.results[0].error_code, 0);
    let r: old::DeleteTopicsResponse = c
        .call(
            ApiKey::DeleteTopics,
            0,
            &old::DeleteTopicsRequest::default()
                .with_timeout_ms(5000)
                .with_topic_names(vec![name(topic)]),
        )
        .await;
    let deleted = &r.responses[0];
    assert_eq!(
        (
            deleted.name.as_deref().map(|n| n.as_str()),
            deleted.error_code
        ),
        (Some("admin"), 0)
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_4_floors_when_legacy_versions_are_off() {
    let (broker, _dir) = start(Some(false)).await;
    let mut c = Client::connect(broker.addresses[0]).await;
    assert_eq!(
        floors(&mut c).await,
        vec![
            (0, 0),
            (1, 4),
            (2, 1),
            (8, 2),
            (9, 1),
            (19, 2),
            (20, 1),
            (27, 1),
            (32, 1),
            (35, 1)
        ]
    );
    // DescribeConfigs v0 closes the connection, as Kafka 4 does.
    c.send(
        ApiKey::DescribeConfigs,
        0,
        &old::DescribeConfigsRequest::default(),
    )
    .await;
    assert!(c.read().await.is_none(), "DescribeConfigs v0 was answered");
    // So does Produce v2 (advertised from v0 for KAFKA-18659 only).
    let mut c = Client::connect(broker.addresses[0]).await;
    c.send(ApiKey::Produce, 2, &produce("x", hex(MAGIC0))).await;
    assert!(c.read().await.is_none(), "Produce v2 was answered");
    broker.shutdown().await.unwrap();
}
