//! The client against an independent Kafka implementation, librdkafka's mock
//! cluster, so that a bug shared by our client and our broker cannot hide
//! itself: produce (keyed, every codec), fetch, group membership and commits,
//! leader moves, and librdkafka reading what we wrote and vice versa.
//!
//! Needs the `rdkafka-interop` feature (it builds librdkafka from source):
//! `cargo test -p rivulet-client --features rdkafka-interop --test rdkafka_mock`.

#![cfg(feature = "rdkafka-interop")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use rivulet_client::partitioner::partition_for_key;
use rivulet_client::{ClientConfig, Consumer, ConsumerRecord, Producer, ProducerRecord, TopicPartition};

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
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let producer = Producer::new(config(&mock).set("compression.type", codec).set("enable.idempotence", "false")).await.unwrap();
        for i in 0..100 {
            let key = format!("user-{i}");
            let metadata = producer.send(ProducerRecord::new("keys").key(key.clone()).value(format!("{codec}:{i}"))).await.unwrap().await.unwrap();
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
        assignment.add_partition_offset("keys", p, Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut seen = BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < 500 && std::time::Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            let key = message.key().unwrap();
            assert_eq!(message.partition(), partition_for_key(key, 5));
            seen.insert(String::from_utf8(message.payload().unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(seen.len(), 500, "every record of every codec read by librdkafka");
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
        let (partition, _) = producer.send(FutureRecord::to("agree").key(&key).payload("v"), Duration::from_secs(10)).await.unwrap();
        assert_eq!(partition, partition_for_key(key.as_bytes(), 7), "key {key}");
    }
    // And our consumer reads librdkafka's lz4 batches.
    let mut consumer = Consumer::new(config(&mock).set("auto.offset.reset", "earliest")).await.unwrap();
    consumer.assign(&(0..7).map(|p| TopicPartition::new("agree", p)).collect::<Vec<_>>()).unwrap();
    let records = read(&mut consumer, 200).await;
    assert_eq!(records.len(), 200);
    for record in records {
        assert_eq!(record.partition, partition_for_key(record.key.as_deref().unwrap(), 7));
        assert_eq!(record.value.as_deref(), Some(&b"v"[..]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_split_partitions_and_commit_on_the_mock() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("grouped", 4, 1).unwrap();
    let producer = Producer::new(config(&mock).set("enable.idempotence", "false")).await.unwrap();
    for p in 0..4 {
        for i in 0..10 {
            producer.send(ProducerRecord::new("grouped").partition(p).value(format!("{p}:{i}"))).await.unwrap();
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

    // A second member joins; each member polls on its own task.
    let mut b = Consumer::new(member()).await.unwrap();
    b.subscribe(&["grouped"]).unwrap();
    let task_a = tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while a.assignment().len() != 2 && tokio::time::Instant::now() < deadline {
            a.poll(Duration::from_millis(100)).await.unwrap();
        }
        a
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while b.assignment().len() != 2 && tokio::time::Instant::now() < deadline {
        b.poll(Duration::from_millis(100)).await.unwrap();
    }
    let a = task_a.await.unwrap();
    let owned: BTreeSet<TopicPartition> = a.assignment().into_iter().chain(b.assignment()).collect();
    assert_eq!(owned.len(), 4, "a={:?} b={:?}", a.assignment(), b.assignment());
    let committed = b.committed(&(0..4).map(|p| TopicPartition::new("grouped", p)).collect::<Vec<_>>()).await.unwrap();
    assert!(committed.values().all(|o| o.offset == 10), "the mock kept our commits: {committed:?}");
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_producer_follows_a_leader_move() {
    let mock = MockCluster::new(3).unwrap();
    mock.create_topic("moving", 1, 3).unwrap();
    mock.partition_leader("moving", 0, Some(1)).unwrap();
    let producer = Producer::new(config(&mock).set("enable.idempotence", "false").set("retry.backoff.ms", "50")).await.unwrap();
    for i in 0..20 {
        producer.send(ProducerRecord::new("moving").value(format!("before-{i}"))).await.unwrap().await.unwrap();
    }
    // NOT_LEADER_OR_FOLLOWER from broker 1 now: the producer refreshes metadata and retries on 2.
    mock.partition_leader("moving", 0, Some(2)).unwrap();
    for i in 0..20 {
        let metadata = producer.send(ProducerRecord::new("moving").value(format!("after-{i}"))).await.unwrap().await.unwrap();
        assert_eq!(metadata.offset, 20 + i);
    }
    producer.close().await.unwrap();
    let mut consumer = Consumer::new(config(&mock).set("auto.offset.reset", "earliest")).await.unwrap();
    consumer.assign(&[TopicPartition::new("moving", 0)]).unwrap();
    let records = read(&mut consumer, 40).await;
    assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), (0..40).collect::<Vec<_>>());
}
