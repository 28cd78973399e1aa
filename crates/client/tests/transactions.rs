//! Transactions, idempotence and records deletion against our broker: a
//! transactional producer's aborted records never reach a read_committed
//! consumer, offsets sent to a transaction commit with it, and the admin
//! client sees the transactions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::TestBroker;
use rivulet_client::rpc::EARLIEST_TIMESTAMP;
use rivulet_client::{
    Admin, Consumer, ConsumerRecord, NewTopic, Producer, ProducerRecord, TopicPartition,
};

async fn read(
    broker: &TestBroker,
    topic: &str,
    isolation: &str,
    expected: usize,
) -> Vec<ConsumerRecord> {
    let mut consumer = Consumer::new(
        broker
            .config()
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", isolation),
    )
    .await
    .unwrap();
    consumer.assign(&[TopicPartition::new(topic, 0)]).unwrap();
    let mut records = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        records.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
        if records.len() >= expected
            && consumer
                .lag(&TopicPartition::new(topic, 0))
                .is_some_and(|l| l <= 1)
        {
            break;
        }
    }
    consumer.close().await.unwrap();
    records
}

fn values(records: &[ConsumerRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_records_are_invisible_to_read_committed() {
    let broker = TestBroker::start().await;
    let admin = Admin::new(broker.config()).await.unwrap();
    admin
        .create_topics(&[NewTopic::new("txn", 1, 1)])
        .await
        .unwrap();
    let producer = Producer::new(broker.config().set("transactional.id", "tx-1"))
        .await
        .unwrap();
    let outside = producer
        .send(ProducerRecord::new("txn").value("x"))
        .await
        .unwrap_err();
    assert!(
        outside.to_string().contains("INVALID_TXN_STATE") || outside.to_string().contains("init"),
        "{outside}"
    );
    producer.init_transactions().await.unwrap();
    for (values, commit) in [
        (vec!["a", "b", "c"], true),
        (vec!["d", "e"], false),
        (vec!["f"], true),
    ] {
        producer.begin_transaction().unwrap();
        for v in values {
            producer
                .send(ProducerRecord::new("txn").value(v))
                .await
                .unwrap();
        }
        if commit {
            producer.commit_transaction().await.unwrap();
        } else {
            producer.abort_transaction().await.unwrap();
        }
    }
    assert_eq!(
        values(&read(&broker, "txn", "read_committed", 4).await),
        vec!["a", "b", "c", "f"]
    );
    assert_eq!(
        values(&read(&broker, "txn", "read_uncommitted", 6).await),
        vec!["a", "b", "c", "d", "e", "f"]
    );

    let listed = admin.list_transactions().await.unwrap();
    assert!(
        listed.iter().any(|t| t.transactional_id == "tx-1"),
        "{listed:?}"
    );
    let described = admin.describe_transactions(&["tx-1"]).await.unwrap();
    assert_eq!(described[0].state, "CompleteCommit");
    producer.close().await.unwrap();
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_sent_to_a_transaction_commit_with_it() {
    let broker = TestBroker::start().await;
    let admin = Admin::new(broker.config()).await.unwrap();
    admin
        .create_topics(&[NewTopic::new("in", 1, 1), NewTopic::new("out", 1, 1)])
        .await
        .unwrap();
    let plain = Producer::new(broker.config()).await.unwrap();
    for i in 0..5 {
        plain
            .send(ProducerRecord::new("in").value(i.to_string()))
            .await
            .unwrap();
    }
    plain.close().await.unwrap();

    let mut consumer = Consumer::new(
        broker
            .config()
            .set("group.id", "etl")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed"),
    )
    .await
    .unwrap();
    consumer.subscribe(&["in"]).unwrap();
    let mut input = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while input.len() < 5 && tokio::time::Instant::now() < deadline {
        input.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    assert_eq!(input.len(), 5);
    let producer = Producer::new(broker.config().set("transactional.id", "etl-1"))
        .await
        .unwrap();
    producer.init_transactions().await.unwrap();
    producer.begin_transaction().unwrap();
    for record in &input {
        producer
            .send(ProducerRecord::new("out").value(record.value.clone().unwrap()))
            .await
            .unwrap();
    }
    let mut offsets = BTreeMap::new();
    offsets.insert(TopicPartition::new("in", 0), 5);
    producer
        .send_offsets_to_transaction(&offsets, &consumer.group_metadata().unwrap())
        .await
        .unwrap();
    producer.commit_transaction().await.unwrap();
    let committed = admin
        .list_consumer_group_offsets("etl", None)
        .await
        .unwrap();
    assert_eq!(committed[&TopicPartition::new("in", 0)].offset, 5);
    assert_eq!(
        values(&read(&broker, "out", "read_committed", 5).await).len(),
        5
    );
    consumer.close().await.unwrap();
    producer.close().await.unwrap();
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_moves_the_log_start_offset() {
    let broker = TestBroker::start().await;
    let admin = Admin::new(broker.config()).await.unwrap();
    admin
        .create_topics(&[NewTopic::new("trim", 1, 1)])
        .await
        .unwrap();
    let producer = Producer::new(broker.config()).await.unwrap();
    for i in 0..10 {
        producer
            .send(ProducerRecord::new("trim").value(i.to_string()))
            .await
            .unwrap();
    }
    producer.close().await.unwrap();
    let tp = TopicPartition::new("trim", 0);
    let low = admin
        .delete_records(&BTreeMap::from([(tp.clone(), 4)]))
        .await
        .unwrap();
    assert_eq!(low[&tp], 4);
    assert_eq!(
        admin
            .list_offsets(&[(tp.clone(), EARLIEST_TIMESTAMP)])
            .await
            .unwrap()[&tp]
            .offset,
        4
    );
    let records = read(&broker, "trim", "read_uncommitted", 6).await;
    assert_eq!(records.first().map(|r| r.offset), Some(4));
    broker.stop().await;
}
