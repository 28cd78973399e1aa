//! Consumer groups against our broker: membership with each assignor,
//! cooperative rebalancing, commits, and the admin client's view of the group.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestBroker;
use rivulet_client::{
    Admin, ClientConfig, Consumer, ConsumerRecord, NewTopic, OffsetAndMetadata, Producer,
    ProducerRecord, RebalanceListener, TopicPartition,
};

async fn produce(broker: &TestBroker, topic: &str, partitions: i32, per_partition: i32) {
    let producer = Producer::new(broker.config()).await.unwrap();
    for p in 0..partitions {
        for i in 0..per_partition {
            producer
                .send(
                    ProducerRecord::new(topic)
                        .partition(p)
                        .value(format!("{p}-{i}")),
                )
                .await
                .unwrap();
        }
    }
    producer.close().await.unwrap();
}

fn group_config(broker: &TestBroker, group: &str, strategy: &str) -> ClientConfig {
    broker
        .config()
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", strategy)
        .set("heartbeat.interval.ms", "100")
        .set("session.timeout.ms", "6000")
}

type EventLog = Vec<(String, Vec<TopicPartition>)>;

#[derive(Default, Clone)]
struct Events(Arc<Mutex<EventLog>>);

impl RebalanceListener for Events {
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .unwrap()
            .push(("revoked".into(), partitions.to_vec()));
    }
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .unwrap()
            .push(("assigned".into(), partitions.to_vec()));
    }
}

/// A member polling on its own task, as each consumer has its own thread in
/// Java: a rebalance blocks the JoinGroup of one member until the others rejoin.
struct Member {
    assignment: Arc<Mutex<Vec<TopicPartition>>>,
    records: Arc<Mutex<Vec<ConsumerRecord>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<Consumer>,
}

impl Member {
    fn spawn(mut consumer: Consumer) -> Member {
        let assignment = Arc::new(Mutex::new(Vec::new()));
        let records = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (a, r, s) = (
            Arc::clone(&assignment),
            Arc::clone(&records),
            Arc::clone(&stop),
        );
        let task = tokio::spawn(async move {
            while !s.load(std::sync::atomic::Ordering::Acquire) {
                let batch = consumer.poll(Duration::from_millis(50)).await.unwrap();
                r.lock().unwrap().extend(batch);
                *a.lock().unwrap() = consumer.assignment();
            }
            consumer
        });
        Member {
            assignment,
            records,
            stop,
            task,
        }
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.assignment.lock().unwrap().clone()
    }

    fn records(&self) -> Vec<ConsumerRecord> {
        self.records.lock().unwrap().clone()
    }

    async fn stop(self) -> Consumer {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        self.task.await.unwrap()
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_one_reads_everything_and_commits() {
    let broker = TestBroker::start().await;
    Admin::new(broker.config())
        .await
        .unwrap()
        .create_topics(&[NewTopic::new("g1", 3, 1)])
        .await
        .unwrap();
    produce(&broker, "g1", 3, 10).await;
    let mut consumer =
        Consumer::new(group_config(&broker, "solo", "range").set("enable.auto.commit", "false"))
            .await
            .unwrap();
    consumer.subscribe(&["g1"]).unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen.len() < 30 && tokio::time::Instant::now() < deadline {
        seen.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    assert_eq!(seen.len(), 30);
    assert_eq!(consumer.assignment().len(), 3);
    consumer.commit_sync().await.unwrap();
    let tps: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new("g1", p)).collect();
    let committed = consumer.committed(&tps).await.unwrap();
    assert!(
        tps.iter().all(|tp| committed[tp].offset == 10),
        "{committed:?}"
    );
    consumer.close().await.unwrap();

    // A new member of the group starts at the committed offsets: nothing to read.
    produce(&broker, "g1", 1, 2).await;
    let mut again = Consumer::new(group_config(&broker, "solo", "range"))
        .await
        .unwrap();
    again.subscribe(&["g1"]).unwrap();
    let mut more = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while more.len() < 2 && tokio::time::Instant::now() < deadline {
        more.extend(again.poll(Duration::from_millis(200)).await.unwrap());
    }
    assert_eq!(
        more.iter()
            .map(|r| (r.partition, r.offset))
            .collect::<Vec<_>>(),
        vec![(0, 10), (0, 11)]
    );
    again.close().await.unwrap();
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_split_partitions_with_range_and_roundrobin() {
    let broker = TestBroker::start().await;
    Admin::new(broker.config())
        .await
        .unwrap()
        .create_topics(&[NewTopic::new("g2", 4, 1)])
        .await
        .unwrap();
    produce(&broker, "g2", 4, 5).await;
    for strategy in ["range", "roundrobin", "sticky"] {
        let group = format!("pair-{strategy}");
        let mut a = Consumer::new(group_config(&broker, &group, strategy))
            .await
            .unwrap();
        let mut b = Consumer::new(group_config(&broker, &group, strategy))
            .await
            .unwrap();
        a.subscribe(&["g2"]).unwrap();
        b.subscribe(&["g2"]).unwrap();
        let (a, b) = (Member::spawn(a), Member::spawn(b));
        wait_until("a split of 2 and 2", || {
            a.assignment().len() == 2
                && b.assignment().len() == 2
                && a.records().len() + b.records().len() >= 20
        })
        .await;
        let all: BTreeSet<TopicPartition> =
            a.assignment().into_iter().chain(b.assignment()).collect();
        assert_eq!(all.len(), 4, "{strategy}: every partition has one owner");
        let seen: Vec<ConsumerRecord> = a.records().into_iter().chain(b.records()).collect();
        let unique: BTreeSet<(i32, i64)> = seen.iter().map(|r| (r.partition, r.offset)).collect();
        assert_eq!(unique.len(), 20, "{strategy}: every record read");
        a.stop().await.close().await.unwrap();
        b.stop().await.close().await.unwrap();
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_revokes_only_what_moves() {
    let broker = TestBroker::start().await;
    Admin::new(broker.config())
        .await
        .unwrap()
        .create_topics(&[NewTopic::new("coop", 4, 1)])
        .await
        .unwrap();
    let mut a = Consumer::new(group_config(&broker, "coop-group", "cooperative-sticky"))
        .await
        .unwrap();
    let events = Events::default();
    a.set_rebalance_listener(events.clone());
    a.subscribe(&["coop"]).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while a.assignment().len() < 4 && tokio::time::Instant::now() < deadline {
        a.poll(Duration::from_millis(100)).await.unwrap();
    }
    assert_eq!(a.assignment().len(), 4);
    let before: BTreeSet<TopicPartition> = a.assignment().into_iter().collect();
    events.0.lock().unwrap().clear();

    let mut b = Consumer::new(group_config(&broker, "coop-group", "cooperative-sticky"))
        .await
        .unwrap();
    b.subscribe(&["coop"]).unwrap();
    let (a, b) = (Member::spawn(a), Member::spawn(b));
    wait_until("a split of 2 and 2", || {
        a.assignment().len() == 2 && b.assignment().len() == 2
    })
    .await;
    let after_a: BTreeSet<TopicPartition> = a.assignment().into_iter().collect();
    assert!(after_a.is_subset(&before), "a keeps part of what it had");
    let log = events.0.lock().unwrap().clone();
    let revoked: Vec<TopicPartition> = log
        .iter()
        .filter(|(k, _)| k == "revoked")
        .flat_map(|(_, p)| p.clone())
        .collect();
    assert_eq!(
        revoked.len(),
        2,
        "only the two partitions that moved were revoked: {log:?}"
    );
    assert!(revoked.iter().all(|tp| !after_a.contains(tp)));
    a.stop().await.close().await.unwrap();
    b.stop().await.close().await.unwrap();
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_sees_members_offsets_and_lag_and_can_reset_and_delete() {
    let broker = TestBroker::start().await;
    let admin = Admin::new(broker.config()).await.unwrap();
    admin
        .create_topics(&[NewTopic::new("adm", 2, 1)])
        .await
        .unwrap();
    produce(&broker, "adm", 2, 6).await;
    let mut consumer = Consumer::new(
        group_config(&broker, "watched", "range")
            .set("max.poll.records", "3")
            .set("enable.auto.commit", "false"),
    )
    .await
    .unwrap();
    consumer.subscribe(&["adm"]).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut seen = 0;
    while seen < 3 && tokio::time::Instant::now() < deadline {
        seen += consumer
            .poll(Duration::from_millis(200))
            .await
            .unwrap()
            .len();
    }
    consumer.commit_sync().await.unwrap();

    let groups = admin.list_groups().await.unwrap();
    assert!(groups.iter().any(|g| g.group_id == "watched"), "{groups:?}");
    let description = &admin.describe_groups(&["watched"]).await.unwrap()[0];
    assert_eq!(description.state, "Stable");
    assert_eq!(description.protocol, "range");
    assert_eq!(description.members.len(), 1);
    assert_eq!(description.members[0].assignment.len(), 2);
    let offsets = admin
        .list_consumer_group_offsets("watched", None)
        .await
        .unwrap();
    assert!(!offsets.is_empty());

    // With a live member, offsets cannot be deleted from its subscribed topics.
    let tp0 = TopicPartition::new("adm", 0);
    let error = admin
        .delete_consumer_group_offsets("watched", std::slice::from_ref(&tp0))
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Some(rivulet_client::ErrorCode::GroupSubscribedToTopic),
        "{error}"
    );
    consumer.close().await.unwrap();

    let mut reset = BTreeMap::new();
    reset.insert(tp0.clone(), OffsetAndMetadata::new(1));
    admin
        .alter_consumer_group_offsets("watched", &reset)
        .await
        .unwrap();
    assert_eq!(
        admin
            .list_consumer_group_offsets("watched", None)
            .await
            .unwrap()[&tp0]
            .offset,
        1
    );
    admin
        .delete_consumer_group_offsets("watched", std::slice::from_ref(&tp0))
        .await
        .unwrap();
    assert!(!admin
        .list_consumer_group_offsets("watched", None)
        .await
        .unwrap()
        .contains_key(&tp0));
    admin.delete_groups(&["watched"]).await.unwrap();
    assert!(!admin
        .list_groups()
        .await
        .unwrap()
        .iter()
        .any(|g| g.group_id == "watched"));
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_manages_topics_and_describes_the_cluster() {
    let broker = TestBroker::start().await;
    let admin = Admin::new(broker.config()).await.unwrap();
    admin
        .create_topics(&[NewTopic::new("t-a", 3, 1), NewTopic::new("t-b", 1, 1)])
        .await
        .unwrap();
    let error = admin
        .create_topics(&[NewTopic::new("t-a", 3, 1)])
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Some(rivulet_client::ErrorCode::TopicAlreadyExists)
    );
    assert!(error.hint().is_some());
    let names: Vec<String> = admin
        .list_topics(false)
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.clone())
        .collect();
    assert_eq!(names, vec!["t-a", "t-b"]);
    let described = admin.describe_topics(&["t-a"]).await.unwrap();
    assert_eq!(described[0].partitions.len(), 3);
    assert!(described[0]
        .partitions
        .iter()
        .all(|p| p.leader == 1 && p.isr == vec![1]));
    admin.delete_topics(&["t-b"]).await.unwrap();
    let error = admin.describe_topics(&["t-b"]).await.unwrap_err();
    assert_eq!(
        error.code(),
        Some(rivulet_client::ErrorCode::UnknownTopicOrPartition)
    );
    let cluster = admin.describe_cluster().await.unwrap();
    assert_eq!(cluster.brokers.len(), 1);
    assert_eq!(cluster.brokers[0].node_id, 1);
    assert!(cluster.cluster_id.is_some());
    let q = [(
        TopicPartition::new("t-a", 0),
        rivulet_client::rpc::LATEST_TIMESTAMP,
    )];
    assert_eq!(admin.list_offsets(&q).await.unwrap()[&q[0].0].offset, 0);
    broker.stop().await;
}
