//! The client against our broker, in-process: produce with every partitioner,
//! codec and acks setting, then read back exactly what was written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::TestBroker;
use rivulet_client::partitioner::partition_for_key;
use rivulet_client::{
    Admin, Consumer, ConsumerRecord, NewTopic, Producer, ProducerRecord, TopicPartition,
};

async fn read_all(
    broker: &TestBroker,
    partitions: &[TopicPartition],
    expected: usize,
) -> Vec<ConsumerRecord> {
    let mut consumer = Consumer::new(broker.config().set("auto.offset.reset", "earliest"))
        .await
        .unwrap();
    consumer.assign(partitions).unwrap();
    let mut records = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while records.len() < expected && tokio::time::Instant::now() < deadline {
        records.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    consumer.close().await.unwrap();
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_land_on_murmur2_partitions_in_order() {
    let broker = TestBroker::start().await;
    let admin = Admin::new(broker.config()).await.unwrap();
    admin
        .create_topics(&[NewTopic::new("keyed", 4, 1)])
        .await
        .unwrap();
    let producer = Producer::new(broker.config()).await.unwrap();
    let mut deliveries = Vec::new();
    for i in 0..200 {
        let key = format!("key-{}", i % 17);
        deliveries.push((
            key.clone(),
            i,
            producer
                .send(ProducerRecord::new("keyed").key(key).value(format!("v{i}")))
                .await
                .unwrap(),
        ));
    }
    let mut per_partition = [0i64; 4];
    for (key, _, delivery) in deliveries {
        let metadata = delivery.await.unwrap();
        assert_eq!(
            metadata.partition,
            partition_for_key(key.as_bytes(), 4),
            "key {key}"
        );
        assert_eq!(
            metadata.offset, per_partition[metadata.partition as usize],
            "offsets are consecutive per partition"
        );
        per_partition[metadata.partition as usize] += 1;
    }
    producer.close().await.unwrap();
    let partitions: Vec<TopicPartition> = (0..4).map(|p| TopicPartition::new("keyed", p)).collect();
    let records = read_all(&broker, &partitions, 200).await;
    assert_eq!(records.len(), 200);
    for p in 0..4 {
        let values: Vec<i64> = records
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| r.offset)
            .collect();
        assert_eq!(
            values,
            (0..per_partition[p as usize]).collect::<Vec<_>>(),
            "partition {p} reads back in order"
        );
    }
    for record in &records {
        let key = String::from_utf8(record.key.clone().unwrap().to_vec()).unwrap();
        assert_eq!(record.partition, partition_for_key(key.as_bytes(), 4));
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_and_acks_setting_round_trips() {
    let broker = TestBroker::start().await;
    let admin = Admin::new(broker.config()).await.unwrap();
    let cases = [
        ("none", "all"),
        ("gzip", "1"),
        ("snappy", "all"),
        ("lz4", "1"),
        ("zstd", "all"),
        ("none", "0"),
    ];
    for (codec, acks) in cases {
        let topic = format!("codec-{codec}-acks-{acks}");
        admin
            .create_topics(&[NewTopic::new(&topic, 1, 1)])
            .await
            .unwrap();
        let producer = Producer::new(
            broker
                .config()
                .set("compression.type", codec)
                .set("acks", acks)
                .set("linger.ms", "20"),
        )
        .await
        .unwrap();
        let mut deliveries = Vec::new();
        for i in 0..50 {
            let record = ProducerRecord::new(&topic)
                .value(format!("{codec}-{i}-{}", "x".repeat(i)))
                .header("n", Some(bytes::Bytes::from(i.to_string())));
            deliveries.push(producer.send(record).await.unwrap());
        }
        for (i, delivery) in deliveries.into_iter().enumerate() {
            let metadata = delivery.await.unwrap();
            let expected = if acks == "0" { -1 } else { i as i64 };
            assert_eq!(metadata.offset, expected, "{codec} acks={acks}");
        }
        producer.close().await.unwrap();
        let records = read_all(&broker, &[TopicPartition::new(topic.as_str(), 0)], 50).await;
        assert_eq!(records.len(), 50, "{codec} acks={acks}");
        for (i, record) in records.iter().enumerate() {
            assert_eq!(record.offset, i as i64);
            assert_eq!(
                record.value.as_deref(),
                Some(format!("{codec}-{i}-{}", "x".repeat(i)).as_bytes())
            );
            assert_eq!(record.headers.len(), 1);
            assert_eq!(record.headers[0].key, "n");
        }
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_records_stick_to_a_partition_per_batch() {
    let broker = TestBroker::start().await;
    let admin = Admin::new(broker.config()).await.unwrap();
    admin
        .create_topics(&[NewTopic::new("sticky", 3, 1)])
        .await
        .unwrap();
    let producer = Producer::new(
        broker
            .config()
            .set("batch.size", "1000")
            .set("linger.ms", "50"),
    )
    .await
    .unwrap();
    let mut deliveries = Vec::new();
    for i in 0..300 {
        deliveries.push(
            producer
                .send(ProducerRecord::new("sticky").value(format!("{i:0>90}")))
                .await
                .unwrap(),
        );
    }
    let mut partitions = Vec::new();
    for delivery in deliveries {
        partitions.push(delivery.await.unwrap().partition);
    }
    let switches = partitions.windows(2).filter(|w| w[0] != w[1]).count();
    // 300 records of ~100 bytes with batch.size 1000: a switch about every 10 records.
    assert!((10..=60).contains(&switches), "switches: {switches}");
    let used: std::collections::BTreeSet<i32> = partitions.iter().copied().collect();
    assert_eq!(used.len(), 3, "keyless records spread over all partitions");
    producer.close().await.unwrap();
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_partitions_seek_pause_and_max_poll_records() {
    let broker = TestBroker::start().await;
    let admin = Admin::new(broker.config()).await.unwrap();
    admin
        .create_topics(&[NewTopic::new("explicit", 2, 1)])
        .await
        .unwrap();
    let producer = Producer::new(broker.config()).await.unwrap();
    for i in 0..30 {
        producer
            .send(
                ProducerRecord::new("explicit")
                    .partition(i % 2)
                    .value(i.to_string()),
            )
            .await
            .unwrap();
    }
    producer.flush().await.unwrap();
    let error = producer
        .send(ProducerRecord::new("explicit").partition(9).value("x"))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("UNKNOWN_TOPIC_OR_PARTITION"),
        "{error}"
    );
    producer.close().await.unwrap();

    let p0 = TopicPartition::new("explicit", 0);
    let p1 = TopicPartition::new("explicit", 1);
    let mut consumer = Consumer::new(
        broker
            .config()
            .set("auto.offset.reset", "earliest")
            .set("max.poll.records", "4"),
    )
    .await
    .unwrap();
    consumer.assign(&[p0.clone(), p1.clone()]).unwrap();
    consumer.pause(std::slice::from_ref(&p1)).unwrap();
    consumer.seek(&p0, 10).unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.len() < 5 && tokio::time::Instant::now() < deadline {
        let batch = consumer.poll(Duration::from_millis(200)).await.unwrap();
        assert!(batch.len() <= 4, "max.poll.records");
        seen.extend(batch);
    }
    assert!(
        seen.iter().all(|r| r.partition == 0),
        "paused partition returns nothing"
    );
    assert_eq!(
        seen.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![10, 11, 12, 13, 14]
    );
    consumer.resume(std::slice::from_ref(&p1)).unwrap();
    consumer.seek_to_end(std::slice::from_ref(&p0)).unwrap();
    let mut rest = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while rest.len() < 15 && tokio::time::Instant::now() < deadline {
        rest.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    assert_eq!(rest.len(), 15);
    assert!(rest.iter().all(|r| r.partition == 1));
    assert_eq!(consumer.position(&p0).await.unwrap(), 15);
    assert_eq!(
        consumer
            .end_offsets(std::slice::from_ref(&p0))
            .await
            .unwrap()[&p0],
        15
    );
    consumer.close().await.unwrap();
    broker.stop().await;
}
