//! `rivulet-client`: an async Kafka client for Rust, shaped like Kafka's Java
//! client: a [`Producer`], a [`Consumer`] with consumer-group membership, and an
//! [`Admin`] client, configured with Kafka's property names.
//!
//! It speaks the Kafka protocol through the same wire layer as the Rivulet broker
//! (the `protocol` crate), so it works with any Kafka broker, not only Rivulet.
//!
//! ```no_run
//! use rivulet_client::{Admin, ClientConfig, Consumer, NewTopic, Producer, ProducerRecord};
//! use std::time::Duration;
//!
//! # async fn run() -> Result<(), rivulet_client::ClientError> {
//! let config = ClientConfig::new().set("bootstrap.servers", "127.0.0.1:9092");
//!
//! let admin = Admin::new(config.clone()).await?;
//! admin.create_topics(&[NewTopic::new("greetings", 3, 1)]).await?;
//!
//! let producer = Producer::new(config.clone()).await?;
//! producer.send(ProducerRecord::new("greetings").key("k").value("hello")).await?.await?;
//!
//! let mut consumer = Consumer::new(config.set("group.id", "readers").set("auto.offset.reset", "earliest")).await?;
//! consumer.subscribe(&["greetings"])?;
//! for record in consumer.poll(Duration::from_secs(1)).await? {
//!     println!("{}: {:?}", record.offset, record.value);
//! }
//! consumer.close().await?;
//! # Ok(()) }
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
pub mod connection;
pub mod consumer;
pub mod error;
pub mod partitioner;
pub mod producer;
pub mod rpc;

pub use admin::{Admin, NewTopic};
pub use config::ClientConfig;
pub use consumer::{Consumer, ConsumerRecord, RebalanceListener};
pub use rpc::OffsetAndMetadata;
pub use error::{ClientError, Result};
pub use producer::{ConsumerGroupMetadata, DeliveryFuture, Producer, ProducerRecord, RecordMetadata};
pub use protocol::{ErrorCode, TopicPartition};
