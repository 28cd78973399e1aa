//! The client against an independent Kafka implementation, librdkafka's mock
//! cluster, so that a bug shared by our client and our broker cannot hide
//! itself: produce (keyed, every codec), fetch, group membership and commits,
//! leader moves, and librdkafka reading what we wrote and vice versa. One test
//! puts a librdkafka consumer and ours in one group on our broker, so each must
//! decode the other's consumer-protocol subscription or assignment.
//!
//! Needs the `rdkafka-interop` feature (it builds librdkafka from source):
//! `cargo test -p rivulet-client --features rdkafka-interop --test rdkafka_mock`.

#![cfg(feature = "rdkafka-interop")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use rivulet_client::partitioner::partition_for_key;
use rivulet_client::{
    ClientConfig, Consumer, ConsumerRecord, Producer, ProducerRecord, TopicPartition,
};

/// `RUST_LOG=rivulet_client=debug` shows the client's side of a failure.
fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn config(mock: &MockCluster<'static, rdkafka::producer::DefaultProducerContext>) -> ClientConfig {
    ClientConfig::new().set("bootstrap.servers", mock.bootstrap_servers())
}

async fn read(consumer: &mut Consumer, expected: usize) -> Vec<ConsumerRecord> {
    let mut records = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while records.len() < expected && tokio::time::Instant::now() < deadline {
        records.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_producer_writes_what_librdkafka_reads_on_murmur2_partitions() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("keys", 5, 1).unwrap();
    // librdkafka as the rdkafka crate builds it here has no zstd (its `zstd`
    // feature is off); zstd is read back by our consumer in the broker tests.
    for codec in ["none", "gzip", "snappy", "lz4"] {
        let producer = Producer::new(
            config(&mock)
                .set("compression.type", codec)
                .set("enable.idempotence", "false"),
        )
        .await
        .unwrap();
        for i in 0..100 {
            let key = format!("user-{i}");
            let metadata = producer
                .send(
                    ProducerRecord::new("keys")
                        .key(key.clone())
                        .value(format!("{codec}:{i}")),
                )
                .await
                .unwrap()
                .await
                .unwrap();
            assert_eq!(metadata.partition, partition_for_key(key.as_bytes(), 5));
        }
        producer.close().await.unwrap();
    }
    // librdkafka reads every record back, on the partition murmur2 chose.
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", "reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for p in 0..5 {
        assignment
            .add_partition_offset("keys", p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut seen = BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < 400 && std::time::Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            let key = message.key().unwrap();
            assert_eq!(message.partition(), partition_for_key(key, 5));
            seen.insert(String::from_utf8(message.payload().unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(
        seen.len(),
        400,
        "every record of every codec read by librdkafka"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafkas_murmur2_random_partitioner_agrees_with_ours() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("agree", 7, 1).unwrap();
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("partitioner", "murmur2_random")
        .set("compression.type", "lz4")
        .create()
        .unwrap();
    for i in 0..200 {
        let key = format!("k{i}-{}", "x".repeat(i % 13));
        let partition = producer
            .send(
                FutureRecord::to("agree").key(&key).payload("v"),
                Duration::from_secs(10),
            )
            .await
            .unwrap()
            .partition;
        assert_eq!(partition, partition_for_key(key.as_bytes(), 7), "key {key}");
    }
    // And our consumer reads librdkafka's lz4 batches.
    let mut consumer = Consumer::new(config(&mock).set("auto.offset.reset", "earliest"))
        .await
        .unwrap();
    consumer
        .assign(
            &(0..7)
                .map(|p| TopicPartition::new("agree", p))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    let records = read(&mut consumer, 200).await;
    assert_eq!(records.len(), 200);
    for record in records {
        assert_eq!(
            record.partition,
            partition_for_key(record.key.as_deref().unwrap(), 7)
        );
        assert_eq!(record.value.as_deref(), Some(&b"v"[..]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_member_joins_reads_and_commits_on_the_mock() {
    init_logging();
    let mock = MockCluster::new(1).unwrap();
    // The mock advertises JoinGroup v6 and SyncGroup v4 (flexible) but reads
    // their arrays with a non-flexible i32 count (rdkafka_mock_handlers.c,
    // librdkafka 2.12.1) and closes the connection; librdkafka itself never
    // sends those versions. Cap the group APIs at the versions librdkafka uses.
    use rdkafka::types::RDKafkaApiKey;
    for (api, max) in [
        (RDKafkaApiKey::JoinGroup, 5),
        (RDKafkaApiKey::SyncGroup, 3),
        (RDKafkaApiKey::Heartbeat, 3),
        (RDKafkaApiKey::LeaveGroup, 1),
    ] {
        mock.apiversion(api, Some(0), Some(max)).unwrap();
    }
    mock.create_topic("grouped", 4, 1).unwrap();
    let producer = Producer::new(config(&mock).set("enable.idempotence", "false"))
        .await
        .unwrap();
    for p in 0..4 {
        for i in 0..10 {
            producer
                .send(
                    ProducerRecord::new("grouped")
                        .partition(p)
                        .value(format!("{p}:{i}")),
                )
                .await
                .unwrap();
        }
    }
    producer.close().await.unwrap();
    let member = || {
        config(&mock)
            .set("group.id", "mock-group")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("heartbeat.interval.ms", "200")
            .set("session.timeout.ms", "6000")
            .set("partition.assignment.strategy", "roundrobin")
    };
    let mut a = Consumer::new(member()).await.unwrap();
    a.subscribe(&["grouped"]).unwrap();
    let first = read(&mut a, 40).await;
    assert_eq!(first.len(), 40, "a lone member gets every partition");
    a.commit_sync().await.unwrap();

    a.close().await.unwrap();

    // librdkafka reads the group's offsets as we committed them.
    let reader: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", "mock-group")
        .create()
        .unwrap();
    let mut wanted = TopicPartitionList::new();
    for p in 0..4 {
        wanted.add_partition("grouped", p);
    }
    let committed = reader
        .committed_offsets(wanted, Duration::from_secs(10))
        .unwrap();
    for element in committed.elements() {
        assert_eq!(
            element.offset(),
            Offset::Offset(10),
            "partition {}",
            element.partition()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_producer_follows_a_leader_move() {
    let mock = MockCluster::new(3).unwrap();
    mock.create_topic("moving", 1, 3).unwrap();
    mock.partition_leader("moving", 0, Some(1)).unwrap();
    let producer = Producer::new(
        config(&mock)
            .set("enable.idempotence", "false")
            .set("retry.backoff.ms", "50"),
    )
    .await
    .unwrap();
    for i in 0..20 {
        producer
            .send(ProducerRecord::new("moving").value(format!("before-{i}")))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // NOT_LEADER_OR_FOLLOWER from broker 1 now: the producer refreshes metadata and retries on 2.
    mock.partition_leader("moving", 0, Some(2)).unwrap();
    for i in 0..20 {
        let metadata = producer
            .send(ProducerRecord::new("moving").value(format!("after-{i}")))
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(metadata.offset, 20 + i);
    }
    producer.close().await.unwrap();
    let mut consumer = Consumer::new(config(&mock).set("auto.offset.reset", "earliest"))
        .await
        .unwrap();
    consumer
        .assign(&[TopicPartition::new("moving", 0)])
        .unwrap();
    let records = read(&mut consumer, 40).await;
    assert_eq!(
        records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..40).collect::<Vec<_>>()
    );
}

/// librdkafka and our consumer in one group on our broker: whichever is the
/// leader, the other must decode its assignment (consumer protocol), and
/// together they own every partition once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_and_our_consumer_share_a_group_on_our_broker() {
    let broker = common::TestBroker::start().await;
    rivulet_client::Admin::new(broker.config())
        .await
        .unwrap()
        .create_topics(&[rivulet_client::NewTopic::new("shared", 4, 1)])
        .await
        .unwrap();
    let theirs: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.address)
        .set("group.id", "mixed")
        .set("partition.assignment.strategy", "range")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "200")
        .create()
        .unwrap();
    theirs.subscribe(&["shared"]).unwrap();
    let theirs = std::sync::Arc::new(theirs);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (theirs, stop) = (std::sync::Arc::clone(&theirs), std::sync::Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let _ = theirs.poll(Duration::from_millis(50));
            }
        })
    };
    let mut ours = Consumer::new(
        broker
            .config()
            .set("group.id", "mixed")
            .set("partition.assignment.strategy", "range")
            .set("heartbeat.interval.ms", "200"),
    )
    .await
    .unwrap();
    ours.subscribe(&["shared"]).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        ours.poll(Duration::from_millis(100)).await.unwrap();
        let their_partitions: Vec<i32> = theirs
            .assignment()
            .unwrap()
            .elements()
            .iter()
            .map(|e| e.partition())
            .collect();
        let our_partitions: Vec<i32> = ours.assignment().iter().map(|tp| tp.partition).collect();
        if their_partitions.len() == 2 && our_partitions.len() == 2 {
            let all: BTreeSet<i32> = their_partitions.into_iter().chain(our_partitions).collect();
            assert_eq!(all, (0..4).collect());
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no 2+2 split: theirs {their_partitions:?}, ours {our_partitions:?}"
        );
    }
    ours.close().await.unwrap();
    stop.store(true, std::sync::atomic::Ordering::Release);
    poller.join().unwrap();
    broker.stop().await;
}
