//! `rivulet-client`: an async Kafka client for Rust, shaped like Kafka's Java
//! client: a [`Producer`], a [`Consumer`] with consumer-group membership, and an
//! [`Admin`] client, configured with Kafka's property names.
//!
//! It speaks the Kafka protocol through the same wire layer as the Rivulet broker
//! (the `protocol` crate), so it works with any Kafka broker, not only Rivulet.
//!
//! This example runs as a doctest against a broker started in the process (the
//! hidden lines); point `bootstrap.servers` at any Kafka cluster instead.
//!
//! ```
//! use rivulet_client::{Admin, ClientConfig, Consumer, NewTopic, Producer, ProducerRecord};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let broker_config = broker::BrokerConfig::from_pairs(vec![
//! #     ("listeners".into(), "PLAINTEXT://127.0.0.1:0".into()),
//! #     ("log.dirs".into(), dir.path().display().to_string()),
//! #     ("group.initial.rebalance.delay.ms".into(), "0".into()),
//! #     ("offsets.topic.num.partitions".into(), "1".into()),
//! # ])?;
//! # let running = broker::RunningBroker::start(broker_config, std::sync::Arc::new(broker::clock::SystemClock)).await?;
//! # let bootstrap = running.addresses[0].to_string();
//! let config = ClientConfig::new().set("bootstrap.servers", bootstrap);
//!
//! let admin = Admin::new(config.clone()).await?;
//! admin.create_topics(&[NewTopic::new("greetings", 3, 1)]).await?;
//!
//! let producer = Producer::new(config.clone()).await?;
//! let written = producer.send(ProducerRecord::new("greetings").key("k").value("hello")).await?.await?;
//! producer.close().await?;
//!
//! let mut consumer = Consumer::new(config.set("group.id", "readers").set("auto.offset.reset", "earliest")).await?;
//! consumer.subscribe(&["greetings"])?;
//! let mut read = Vec::new();
//! while read.is_empty() {
//!     read = consumer.poll(Duration::from_millis(500)).await?;
//! }
//! assert_eq!(read[0].value.as_deref(), Some(&b"hello"[..]));
//! assert_eq!((read[0].partition, read[0].offset), (written.partition, written.offset));
//! consumer.close().await?;
//! # running.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Module map: [`connection`] (one broker connection, version negotiation,
//! pipelining), [`cluster`] (metadata cache, connection pool, coordinators),
//! [`producer`], [`consumer`] (fetching, groups, [`consumer::assignor`]s),
//! [`admin`], [`partitioner`] (Java-compatible murmur2, sticky), [`error`].

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod config_keys;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod partitioner;
pub mod producer;
pub mod rpc;

pub use admin::{Admin, NewTopic};
pub use config::ClientConfig;
pub use consumer::{Consumer, ConsumerRecord, RebalanceListener};
pub use error::{ClientError, Result};
pub use producer::{
    ConsumerGroupMetadata, DeliveryFuture, Producer, ProducerRecord, RecordMetadata,
};
pub use protocol::{ErrorCode, TopicPartition};
pub use rpc::OffsetAndMetadata;
